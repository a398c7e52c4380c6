//! A PostgreSQL database written by the previous release migrates in place.
//! `tests/fixtures/main-8de4c43.sql` is `pg_dump --no-owner` of a database
//! written by `burnin-edge serve --store postgres://…` of main at 8de4c43
//! (schema 1) with real agents: operation 6001 finished (FX-1 passed, FX-2
//! failed), operation "op-6002" left collecting by a SIGKILLed edge with
//! both replies recorded.

use std::process::Command;

use burnin_core::{
    MesAnswer, Operation, OperationId, OperationState, OperationStore, PayloadKind, StoreError,
    Timestamp,
};
use burnin_store_pg::{PgStore, SCHEMA_VERSION};
use burnin_testkit::pg::TestDb;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_of_the_previous_release_migrates_in_place_and_keeps_everything() {
    let Some(db) = TestDb::new("upgrade") else {
        return;
    };
    let url = db.url();
    let name = url.rsplit('/').next().unwrap();
    let fixture = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/main-8de4c43.sql"
    );
    let out = Command::new("psql")
        .args([
            "-h",
            "127.0.0.1",
            "-U",
            "postgres",
            "-q",
            "-v",
            "ON_ERROR_STOP=1",
        ])
        .args(["-d", name, "-f", fixture])
        .output()
        .expect("psql runs");
    assert!(
        out.status.success(),
        "restoring the fixture: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(db.psql("SELECT MAX(version) FROM burnin_schema"), "1");

    let store = PgStore::connect(&url).await.unwrap();
    assert_eq!(
        db.psql("SELECT MAX(version) FROM burnin_schema"),
        SCHEMA_VERSION.to_string()
    );
    let done = store
        .get(&OperationId::Number(6001))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(done.state, OperationState::Done);
    assert_eq!(done.params.run, 0, "a run from before run numbers");
    let verdicts: Vec<(String, bool)> = done
        .results
        .clone()
        .unwrap()
        .iter()
        .map(|d| (d.sn.to_string(), d.result.passed()))
        .collect();
    assert_eq!(
        verdicts,
        [("FX-1".to_owned(), true), ("FX-2".to_owned(), false)]
    );
    assert_eq!(done.deliveries.len(), 3);

    let mut unfinished = store.unfinished().await.unwrap();
    assert_eq!(unfinished.len(), 1);
    let stored = unfinished.remove(0);
    assert_eq!(
        stored.params.operation_id,
        OperationId::text("op-6002").unwrap()
    );
    assert_eq!(stored.replies.len(), 2);
    let deadline = stored.deadline;
    let mut op = Operation::restore(stored);
    op.handle_timeout(deadline);
    for sn in op.mes_outstanding() {
        op.handle_mes_answer(&sn, Ok(MesAnswer::Unknown));
    }
    let log = op.poll_payload().unwrap();
    assert_eq!(log.kind, PayloadKind::Log);
    assert_eq!(
        log.idempotency_key(),
        "op-6002:log",
        "the key it began with"
    );

    // The old id is held; a rescan is run 1.
    let mut p = done.params.clone();
    let t = Timestamp::from_unix_seconds(1_900_000_000);
    let held = store.begin(&p, t, t).await;
    assert!(
        matches!(held, Err(StoreError::Held { run: 0, .. })),
        "{held:?}"
    );
    p.rescan = true;
    assert_eq!(store.begin(&p, t, t).await, Ok(1));
    drop(store);
    // Opening again migrates nothing twice.
    PgStore::connect(&url).await.unwrap();
    assert_eq!(
        db.psql("SELECT string_agg(version::text, ',' ORDER BY version) FROM burnin_schema"),
        "1,2"
    );
}
