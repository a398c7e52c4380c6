//! burnin-store-pg against the real PostgreSQL on 127.0.0.1:5432 (trust
//! auth, user postgres), one database per test ([`TestDb`]: fails without
//! PostgreSQL unless `BURNIN_SKIP_PG_TESTS=1`). Outages here are network
//! cuts, made with a TCP proxy the test can cut ([`Proxy`]), so the server
//! other sessions use is never restarted; tests/restart.rs restarts a
//! private server for real.

#![allow(clippy::print_stderr)]

use std::time::{Duration, Instant};

use burnin_core::{
    OperationId, OperationParams, OperationState, OperationStore, PayloadKind, ReportError,
    SerialNumber, StoreError, Target, Timestamp,
};
use burnin_store_pg::{Error, Leadership, PgStore, Role};
use burnin_testkit::pg::{PgProxy as Proxy, TestDb};

fn sn(s: &str) -> SerialNumber {
    SerialNumber::new(s).unwrap()
}

fn t(secs: u64) -> Timestamp {
    Timestamp::from_unix_seconds(1_800_000_000 + secs)
}

/// Every field away from its default, so a field the store drops fails
/// the round trips below (PostgreSQL once forgot `requireLink`: a standby
/// taking over would have stopped checking links).
fn params(id: u64, expected: &[&str]) -> OperationParams {
    let mut p = OperationParams::new(OperationId::Number(id));
    p.expected = expected.iter().map(|s| sn(s)).collect();
    p.operator_id = Some("op-7".into());
    p.scan_mode = Some(2);
    p.target = Target::DirectBurn;
    p.window = Duration::from_millis(12_345);
    p.reply_to = "hwinfo_queue_b".into();
    p.require_link = true;
    // The rules and timings of SPEC §11.3 are kept too, so an operation a
    // standby takes over applies them.
    p.require_clock = true;
    p.settle = Duration::from_millis(1_500);
    p.clock_tolerance = Duration::from_secs(30);
    p.mes_outage_wait = Duration::from_secs(90);
    // SPEC §11.1's rules too.
    p.require_cabling = true;
    p.require_pcie_width = true;
    p
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operation_round_trips_and_resumes_like_the_sqlite_store() {
    let Some(db) = TestDb::new("roundtrip") else {
        return;
    };
    let store = PgStore::connect(&db.url()).await.unwrap();
    let mut p = params(42, &["A1", "B2"]);
    let id = p.operation_id.clone();
    assert_eq!(store.begin(&p, t(0), t(30)).await, Ok(1));
    p.run = 1;
    assert!(matches!(
        store.begin(&p, t(1), t(31)).await,
        Err(StoreError::Running(ref running)) if *running == id
    ));
    store
        .reply(&id, &sn("A1"), b"{\"a\":1}", t(2))
        .await
        .unwrap();
    store
        .reply(&id, &sn("B2"), b"{\"b\":2}", t(3))
        .await
        .unwrap();
    // Another board's reply for a serial (a conflict) is kept too; the
    // same write retried after a lost connection is not.
    store
        .reply(&id, &sn("A1"), b"{\"a\":9}", t(4))
        .await
        .unwrap();
    store
        .reply(&id, &sn("A1"), b"{\"a\":9}", t(4))
        .await
        .unwrap();

    let unfinished = store.unfinished().await.unwrap();
    assert_eq!(unfinished.len(), 1);
    let u = &unfinished[0];
    assert_eq!(u.params, p);
    assert_eq!((u.started, u.deadline), (t(0), t(30)));
    let replies: Vec<(&[u8], Timestamp)> = u
        .replies
        .iter()
        .map(|r| (r.body.as_slice(), r.received))
        .collect();
    assert_eq!(
        replies,
        [
            (&b"{\"a\":1}"[..], t(2)),
            (&b"{\"b\":2}"[..], t(3)),
            (&b"{\"a\":9}"[..], t(4))
        ]
    );
    assert!(u.results.is_none());

    store
        .results(&id, &[], &["MES was slow".into()])
        .await
        .unwrap();
    store.delivery(&id, PayloadKind::Log, Ok(())).await.unwrap();
    let refused = ReportError::Refused {
        kind: PayloadKind::Pair,
        message: "400".into(),
    };
    store
        .delivery(&id, PayloadKind::Pair, Err(&refused))
        .await
        .unwrap();
    let u = store.unfinished().await.unwrap().remove(0);
    assert_eq!(u.results, Some((vec![], vec!["MES was slow".to_owned()])));
    assert_eq!(u.deliveries.len(), 2);
    assert_eq!(u.deliveries[0], (PayloadKind::Log, Ok(())));
    assert_eq!(u.deliveries[1].0, PayloadKind::Pair);
    assert!(u.deliveries[1].1.as_ref().unwrap_err().contains("400"));

    store
        .finish(&id, OperationState::Failed, Some("pair refused"), t(40))
        .await
        .unwrap();
    assert!(store.unfinished().await.unwrap().is_empty());
    let v = store.get(&id).await.unwrap().unwrap();
    assert_eq!(v.state, OperationState::Failed);
    assert_eq!(v.error.as_deref(), Some("pair refused"));
    assert_eq!(v.replies, 3);
    assert_eq!(v.finished, Some(t(40)));
    assert_eq!(store.find("42").await.unwrap().unwrap().params, p);
    assert!(store.find("43").await.unwrap().is_none());

    // A finished id is held; a rescan runs it again and queries show the
    // latest run with the list of runs.
    assert!(matches!(
        store.begin(&p, t(100), t(130)).await,
        Err(StoreError::Held { run: 1, .. })
    ));
    p.rescan = true;
    assert_eq!(store.begin(&p, t(100), t(130)).await, Ok(2));
    let v = store.get(&id).await.unwrap().unwrap();
    assert_eq!((v.state, v.replies), (OperationState::Collecting, 0));
    assert_eq!(v.params.run, 2);
    let runs: Vec<(u64, OperationState)> = v.runs.iter().map(|r| (r.run, r.state)).collect();
    assert_eq!(
        runs,
        [(1, OperationState::Failed), (2, OperationState::Collecting)]
    );
    let mut text = params(0, &[]);
    text.operation_id = OperationId::text("42").unwrap();
    store.begin(&text, t(101), t(131)).await.unwrap();
    assert_eq!(
        store.list(10).await.unwrap().len(),
        2,
        "42 and \"42\" differ"
    );
    let counts = store.count_by_state().await.unwrap();
    assert_eq!(counts, [(OperationState::Collecting, 2)]);
    // Recording into an operation that does not run is an error naming it.
    let e = store
        .reply(&OperationId::Number(7), &sn("X"), b"{}", t(5))
        .await
        .unwrap_err();
    assert!(e.to_string().contains("no running operation 7"), "{e}");

    // --keep: finished runs older than the cutoff go, with their rows;
    // running ones never.
    assert_eq!(store.unfinished_ids().await.unwrap().len(), 2);
    assert_eq!(store.prune(t(39)).await.unwrap(), 0);
    assert_eq!(store.prune(t(1000)).await.unwrap(), 1);
    assert_eq!(db.psql("SELECT COUNT(*) FROM burnin_replies"), "0");
    assert_eq!(db.psql("SELECT COUNT(*) FROM burnin_deliveries"), "0");
    assert_eq!(store.list(10).await.unwrap().len(), 2);
    let mut ids = store.unfinished_ids().await.unwrap();
    ids.sort_by_key(|i| format!("{i:?}"));
    assert_eq!(ids.len(), 2);
    assert!(ids.contains(&id) && ids.contains(&text.operation_id));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_replies_are_committed_in_batches_and_none_is_lost() {
    let Some(db) = TestDb::new("batch") else {
        return;
    };
    let store = PgStore::connect(&db.url()).await.unwrap();
    let p = params(1, &[]);
    store.begin(&p, t(0), t(30)).await.unwrap();
    let mut tasks = Vec::new();
    for i in 0..600 {
        let (store, id) = (store.clone(), p.operation_id.clone());
        tasks.push(tokio::spawn(async move {
            store
                .reply(
                    &id,
                    &sn(&format!("SN{i:04}")),
                    format!("{{\"i\":{i}}}").as_bytes(),
                    t(1),
                )
                .await
        }));
    }
    for task in tasks {
        task.await.unwrap().unwrap();
    }
    assert_eq!(
        db.psql("SELECT COUNT(DISTINCT sn) FROM burnin_replies"),
        "600"
    );
    // Fewer transactions than replies: they were grouped.
    let commits: i64 = db
        .psql("SELECT xact_commit FROM pg_stat_database WHERE datname = current_database()")
        .parse()
        .unwrap();
    eprintln!("600 concurrent replies: {commits} commits in this database");
    assert!(commits < 600, "one commit per reply: {commits}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migrations_are_versioned_and_a_newer_schema_is_refused_untouched() {
    let Some(db) = TestDb::new("schema") else {
        return;
    };
    // Two edges starting at once migrate once.
    let url = db.url();
    let (a, b) = tokio::join!(PgStore::connect(&url), PgStore::connect(&url));
    a.unwrap();
    b.unwrap();
    assert_eq!(
        db.psql("SELECT string_agg(version::text, ',' ORDER BY version) FROM burnin_schema"),
        "1,2"
    );
    db.psql("INSERT INTO burnin_schema (version) VALUES (7)");
    let e = PgStore::connect(&db.url()).await.unwrap_err();
    assert!(matches!(e, Error::NewerSchema { found: 7, .. }), "{e}");
    let text = e.to_string();
    assert!(
        text.contains("newer") && text.contains("Nothing was changed"),
        "{text}"
    );
    assert_eq!(db.psql("SELECT MAX(version) FROM burnin_schema"), "7");

    let e = PgStore::connect("postgres://postgres:pw@127.0.0.1:1/none")
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains("cannot connect") && !e.contains(":pw@"), "{e}");
}

/// PostgreSQL away mid-operation (restart, network cut): writes wait and
/// complete once it is back; an outage longer than the retry time fails
/// with a retryable error naming the database, and the store works again
/// afterwards.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_survive_postgresql_going_away_and_coming_back() {
    let Some(db) = TestDb::new("outage") else {
        return;
    };
    let proxy = Proxy::start().await;
    let store = PgStore::connect(&db.url_via(proxy.port())).await.unwrap();
    let p = params(5, &[]);
    let id = p.operation_id.clone();
    store.begin(&p, t(0), t(30)).await.unwrap();
    store.reply(&id, &sn("A"), b"{}", t(1)).await.unwrap();

    proxy.cut();
    let pending = {
        let (store, id) = (store.clone(), id.clone());
        tokio::spawn(async move { store.reply(&id, &sn("B"), b"{}", t(2)).await })
    };
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(
        !pending.is_finished(),
        "the write waits while PostgreSQL is away"
    );
    proxy.restore();
    let started = Instant::now();
    pending.await.unwrap().unwrap();
    assert!(started.elapsed() < Duration::from_secs(10));
    assert_eq!(
        db.psql("SELECT string_agg(sn, ',' ORDER BY sn) FROM burnin_replies"),
        "A,B"
    );

    store.set_retry_for(Duration::from_secs(1));
    proxy.cut();
    let e = store.reply(&id, &sn("C"), b"{}", t(3)).await.unwrap_err();
    assert!(e.is_retryable(), "{e}");
    let text = e.to_string();
    assert!(
        text.contains(&format!("127.0.0.1:{}", proxy.port())) && text.contains("PostgreSQL runs"),
        "{text}"
    );
    proxy.restore();
    store.reply(&id, &sn("C"), b"{}", t(3)).await.unwrap();
    store
        .finish(&id, OperationState::Done, None, t(9))
        .await
        .unwrap();
    assert_eq!(store.get(&id).await.unwrap().unwrap().replies, 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exactly_one_edge_is_active_and_a_standby_takes_over_when_its_session_dies() {
    let Some(db) = TestDb::new("leader") else {
        return;
    };
    PgStore::connect(&db.url()).await.unwrap();
    let first = Leadership::start(&db.url(), "edge-a:8080").await.unwrap();
    let second = Leadership::start(&db.url(), "edge-b:8080").await.unwrap();
    assert_eq!(first.role(), Role::Active);
    assert_eq!(second.role(), Role::Standby);
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(
        second.role(),
        Role::Standby,
        "the lock stays with the first"
    );
    assert_eq!(
        second.active_identity().await.unwrap().unwrap().0,
        "edge-a:8080"
    );

    // The first edge's lock session dies (as when its process is killed).
    // pg_locks is server-wide, and other tests' edges hold the same key in
    // their own databases: only this database's holder.
    let pid = db.psql(
        "SELECT l.pid FROM pg_locks l JOIN pg_database d ON d.oid = l.database \
         WHERE l.locktype = 'advisory' AND l.granted AND l.objid = 1651666540 \
         AND d.datname = current_database()",
    );
    assert!(!pid.is_empty(), "the advisory lock is held");
    let killed = Instant::now();
    db.psql(&format!("SELECT pg_terminate_backend({pid})"));
    tokio::time::timeout(Duration::from_secs(10), second.active())
        .await
        .expect("the standby takes over within 10 s");
    let took = killed.elapsed();
    eprintln!("standby active {took:?} after the active's session died");
    tokio::time::timeout(Duration::from_secs(5), first.lost())
        .await
        .expect("the old active notices it lost the lock");
    assert_eq!(first.role(), Role::Lost);
    assert_eq!(
        second.active_identity().await.unwrap().unwrap().0,
        "edge-b:8080"
    );
}

/// SPEC §11.1: a reply whose enp4s0 is cabled to leaf-07 swp9 (the plan
/// says swp7) and whose enp5s0 card trained at x4 of x8.
fn cabling_reply(op: u64, at: Timestamp) -> Vec<u8> {
    let card = |slot: &str, width: u32| {
        format!(
            r#"{{"slot":"{slot}","vendor":"0x8086","device":"0x1533","class":"0x020000",
                "driver":"igb","pcieLink":{{"speed":"8.0 GT/s PCIe","width":{width},
                "maxSpeed":"8.0 GT/s PCIe","maxWidth":8}}}}"#
        )
    };
    format!(
        r#"{{"operationId":{op},"sn":"CAB-1","hostname":"h","agentVersion":"0.3.0",
            "collectedAt":"{at}","interfaces":[
            {{"interface":"enp4s0","macaddr":"02:00:00:00:00:04","lldp":[{{
              "chassisId":"44:38:39:ff:00:07","chassisIdSubtype":"mac","systemName":"leaf-07",
              "portId":"swp9","portIdSubtype":"ifName","ageSecs":3}}],"pci":{}}},
            {{"interface":"enp5s0","macaddr":"02:00:00:00:00:05","lldp":[],"pci":{}}}],
            "pciDevices":[]}}"#,
        card("0000:04:00.0", 8),
        card("0000:05:00.0", 4)
    )
    .into_bytes()
}

/// Resumes `stored` as an edge with the plan does after a restart or a
/// takeover, and fixes its results: the stored rules decide.
fn judge_resumed(mut stored: burnin_core::StoredOperation) -> burnin_core::DeviceResult {
    stored.params.cabling = Some(std::sync::Arc::new(
        burnin_core::cabling::CablingPlan::parse(
            b"switch,port,location,sn,interface\nleaf-07,swp7,B3 shelf 12,CAB-1,enp4s0\n",
        )
        .unwrap(),
    ));
    let deadline = stored.deadline;
    let mut op = burnin_core::Operation::restore(stored);
    let sn: SerialNumber = "CAB-1".parse().unwrap();
    let macs = ["02:00:00:00:00:04", "02:00:00:00:00:05"];
    op.handle_mes_answer(
        &sn,
        Ok(burnin_core::MesAnswer::Record(
            macs.iter().map(|m| m.parse().unwrap()).collect(),
        )),
    );
    op.handle_timeout(deadline);
    assert!(op.poll_collection_end());
    assert!(op.poll_results());
    op.results()[0].clone()
}

/// The words of a resumed device's findings, and its statuses.
fn verdict(d: &burnin_core::DeviceResult) -> (Vec<String>, Vec<&'static str>) {
    (
        burnin_core::live::details(d),
        d.macinfo.iter().map(|m| m.scanstatus.as_str()).collect(),
    )
}

/// SPEC §11.1: requireCabling and requirePcieWidth are kept with the
/// operation in PostgreSQL, so an operation a standby takes over still
/// applies them (and one started without them still does not).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cabling_rules_are_kept_so_a_taken_over_operation_applies_them() {
    let Some(db) = TestDb::new("cabling") else {
        return;
    };
    let store = PgStore::connect(&db.url()).await.unwrap();
    for (n, strict) in [(79, true), (80, false)] {
        let mut p = OperationParams::new(OperationId::Number(n));
        p.expected = vec![sn("CAB-1")];
        p.require_cabling = strict;
        p.require_pcie_width = strict;
        store.begin(&p, t(0), t(30)).await.unwrap();
        store
            .reply(&p.operation_id, &sn("CAB-1"), &cabling_reply(n, t(1)), t(1))
            .await
            .unwrap();
    }
    // Another process (the standby) reads them.
    let standby = PgStore::connect(&db.url()).await.unwrap();
    let mut unfinished = standby.unfinished().await.unwrap();
    unfinished.sort_by_key(|u| u.params.operation_id.to_string());
    assert_eq!(unfinished.len(), 2);
    let lax = judge_resumed(unfinished.pop().unwrap());
    let strict = judge_resumed(unfinished.pop().unwrap());
    assert_eq!(strict.location.as_ref().unwrap().place, "B3 shelf 12");
    assert_eq!(
        verdict(&strict),
        (
            vec![
                "PCIe link of 0000:05:00.0 degraded: x4 of x8, 8.0 GT/s of 8.0 GT/s; requirePcieWidth fails it".to_owned(),
                "enp4s0 cabled to leaf-07 swp9, plan says leaf-07 swp7 (B3 shelf 12); requireCabling fails it".to_owned(),
            ],
            vec!["0", "0"]
        )
    );
    assert_eq!(verdict(&lax).1, ["1", "1"]);
    // The results keep the location, for the page and GET /devices/{sn}.
    store
        .results(&OperationId::Number(79), std::slice::from_ref(&strict), &[])
        .await
        .unwrap();
    let view = standby
        .get(&OperationId::Number(79))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(view.results.unwrap()[0], strict);
}
