//! A state database written by an earlier release opens and migrates in
//! place. The fixture `tests/fixtures/main-8de4c43.sqlite3` was written by
//! `burnin-edge scan --state-db` of main at 8de4c43 (schema 1) with real
//! agents: operation 5001 finished (FX-1 passed, FX-2 failed), operation
//! "op-5002" left collecting by a SIGKILLed edge with both replies recorded.

use burnin_core::{
    MesAnswer, Operation, OperationId, OperationState, OperationStore, PayloadKind, StoreError,
    Timestamp,
};
use burnin_store::{SCHEMA_VERSION, SqliteStore};

fn fixture() -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("old.sqlite3");
    std::fs::copy(
        concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/main-8de4c43.sqlite3"
        ),
        &path,
    )
    .unwrap();
    (dir, path)
}

fn user_version(path: &std::path::Path) -> i64 {
    rusqlite::Connection::open(path)
        .unwrap()
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .unwrap()
}

#[test]
fn a_database_of_the_previous_release_migrates_in_place_and_keeps_everything() {
    let (_dir, path) = fixture();
    assert_eq!(user_version(&path), 1, "the fixture is the old schema");
    let store = SqliteStore::open(&path).unwrap();

    // The finished operation reads as before, as run 0 (before run numbers).
    let done = store.get(&OperationId::Number(5001)).unwrap().unwrap();
    assert_eq!(done.state, OperationState::Done);
    assert_eq!(done.params.run, 0);
    let results = done.results.unwrap();
    let verdicts: Vec<(&str, bool)> = results
        .iter()
        .map(|d| (d.sn.as_str(), d.result.passed()))
        .collect();
    assert_eq!(verdicts, [("FX-1", true), ("FX-2", false)]);
    assert_eq!(done.runs.len(), 1);
    assert_eq!(done.deliveries.len(), 3);

    // The interrupted one resumes with its replies and their times.
    let unfinished = store.unfinished().unwrap();
    assert_eq!(unfinished.len(), 1);
    let stored = unfinished.into_iter().next().unwrap();
    assert_eq!(
        stored.params.operation_id,
        OperationId::text("op-5002").unwrap()
    );
    assert_eq!(stored.replies.len(), 2);
    assert!(stored.replies.iter().all(|r| r.received > stored.started));
    let deadline = stored.deadline;
    let mut op = Operation::restore(stored);
    assert_eq!(op.counters().accepted, 2);
    // Its payloads keep the key form it would have been sent with.
    op.handle_timeout(deadline);
    for sn in op.mes_outstanding() {
        op.handle_mes_answer(&sn, Ok(MesAnswer::Unknown));
    }
    let log = op.poll_payload().unwrap();
    assert_eq!(log.kind, PayloadKind::Log);
    assert_eq!(log.idempotency_key(), "op-5002:log");
    drop(store);
    assert_eq!(user_version(&path), SCHEMA_VERSION, "migrated in place");

    // Reopened: nothing is migrated twice; the old id is held, a rescan
    // is run 1 (the old run was 0).
    let store = SqliteStore::open(&path).unwrap();
    let mut p = done.params.clone();
    let t = Timestamp::from_unix_seconds(1_900_000_000);
    let rt = tokio_block(store.begin(&p, t, t));
    assert!(matches!(rt, Err(StoreError::Held { run: 0, .. })), "{rt:?}");
    p.rescan = true;
    assert_eq!(tokio_block(store.begin(&p, t, t)), Ok(1));
    let v = store.get(&OperationId::Number(5001)).unwrap().unwrap();
    let runs: Vec<u64> = v.runs.iter().map(|r| r.run).collect();
    assert_eq!(runs, [0, 1]);
}

fn tokio_block<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap()
        .block_on(f)
}
