//! Two `burnin-edge serve` on one PostgreSQL store (SPEC §10.3), through
//! real processes: the real binary, a vhost of its own on the real broker,
//! real `burnin-agent run` processes, the factory stand-in on 127.0.0.1, a
//! database of its own on the real PostgreSQL (`TestDb`: fails without
//! PostgreSQL unless `BURNIN_SKIP_PG_TESTS=1`), and for the outages either
//! a TCP proxy in front of PostgreSQL that the test cuts (a network cut;
//! the machine's server is shared and never stopped) or a private server
//! of the test's own that it really stops and starts again (`PrivatePg`:
//! a restart, whose sessions end with SQLSTATE 57P01). Every wait is
//! bounded.

#![allow(clippy::print_stderr)]

mod support;

use std::path::Path;
use std::time::{Duration, Instant};

use burnin_testkit::pg::{PgProxy, PrivatePg, TestDb};
use burnin_testkit::vhost::TestVhost;
use burnin_testkit::{AgentFleet, Device, FactoryStandIn};
use serde_json::{Value, json};
use support::{Serve, assert_log_has_each_once_passing, devices, free_port, sns};

/// Starts `burnin-edge serve --store <store>` (no API token) on a free
/// port of 127.0.0.1, its log in `dir`, and waits until it listens.
fn start_edge(amqp_url: &str, factory: &FactoryStandIn, store: &str, dir: &Path) -> Serve {
    let port = free_port();
    let log = dir.join(format!("serve-{port}.log"));
    Serve::launch(amqp_url, factory, port, log, None, |cmd| {
        cmd.args(["--store", store])
            // Not used with --store: proves the flag wins.
            .arg("--state-db")
            .arg(dir.join(format!("unused-{port}.sqlite3")));
    })
}

/// The factory got exactly one log, one pair and one notification for
/// operation `op`, each with its `Idempotency-Key`, nothing else was
/// POSTed, and the log has each of `want` exactly once, passing.
fn assert_reported_exactly_once(factory: &FactoryStandIn, op: &str, want: &[String]) {
    let posts: Vec<_> = factory
        .requests()
        .into_iter()
        .filter(|r| r.method == "POST")
        .collect();
    let paths: Vec<&str> = posts.iter().map(|r| r.path.as_str()).collect();
    assert_eq!(
        paths,
        ["/log", "/pair", "/notify"],
        "one log, one pair, one notification, in order"
    );
    for r in &posts {
        let kind = r.path.trim_start_matches('/');
        assert_eq!(
            r.header("idempotency-key"),
            // Run 1 of the id in the shared store, whichever edge sent it.
            Some(format!("{op}:1:{kind}").as_str()),
            "{}",
            r.path
        );
    }
    assert_log_has_each_once_passing(&posts[0].json(), want);
    assert_eq!(posts[2].json()["error"], Value::Null, "{}", posts[2].json());
}

fn sorted_sns(devices: &[Device]) -> Vec<String> {
    let mut v: Vec<String> = devices.iter().map(|d| d.sn.clone()).collect();
    v.sort();
    v
}

/// The `standby` example of docs/protocol.md, with `active` replaced.
fn documented_standby_answer(active: &str) -> Value {
    let doc = include_str!(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../docs/protocol.md"
    ));
    let block = doc
        .split("```json standby\n")
        .nth(1)
        .and_then(|rest| rest.split("```").next())
        .expect("docs/protocol.md has a ```json standby block");
    serde_json::from_str(&block.replace("http://edge-a:8080", active)).unwrap()
}

#[test]
fn a_standby_answers_reads_refuses_post_naming_the_active_and_takes_over_on_sigterm() {
    let Some(db) = TestDb::new("standby_roles") else {
        return;
    };
    let Some(vhost) = TestVhost::new("standby-roles") else {
        return;
    };
    let factory = FactoryStandIn::start();
    let dir = tempfile::tempdir().unwrap();
    let mut a = start_edge(&vhost.url(), &factory, &db.url(), dir.path());
    a.wait_role("active", Duration::from_secs(20));
    let b = start_edge(&vhost.url(), &factory, &db.url(), dir.path());
    // B stays standby while A holds the lock (several of its polls).
    std::thread::sleep(Duration::from_millis(2500));
    assert_eq!(b.role(), "standby", "{}", b.stderr());

    let (status, health) = b.get("/healthz");
    assert_eq!(status, 200, "{health}");
    assert_eq!(health, json!({"role": "standby", "active": a.url("")}));
    let (status, health) = a.get("/healthz");
    assert_eq!(status, 200, "{health}");
    assert_eq!(health, json!({"broker": "up", "role": "active"}));
    assert_eq!(a.active_gauge(), 1.0);
    assert_eq!(b.active_gauge(), 0.0);
    // What the alert rules read: both name the same store (so two active
    // ones would be seen), and only the active one connects to the broker.
    let store = |edge: &Serve| {
        let (_, text) = support::http(&edge.addr, "GET", "/metrics", None, None);
        text.lines()
            .find(|l| l.starts_with("burnin_store_info{"))
            .unwrap_or_else(|| panic!("no burnin_store_info:\n{text}"))
            .to_owned()
    };
    let db_at = db.url();
    let db_at = db_at.rsplit_once('@').unwrap().1;
    assert_eq!(
        store(&a),
        format!(r#"burnin_store_info{{kind="postgres",store="{db_at}"}} 1"#)
    );
    assert_eq!(store(&b), store(&a));
    assert_eq!(a.metric("burnin_broker_connected"), Some(1.0));
    assert_eq!(b.metric("burnin_broker_connected"), Some(0.0));

    // POST to the standby: 503 naming the active edge, as documented;
    // nothing is recorded.
    let (status, answer) = b.post(&json!({"operationId": 31, "windowSecs": 1}));
    assert_eq!(status, 503, "{answer}");
    assert_eq!(answer, documented_standby_answer(&a.url("")));
    assert_eq!(b.get("/scans/31").0, 404);

    // The active one takes it; both answer GET from the store.
    let (status, doc) = a.post(&json!({"operationId": 31, "windowSecs": 1}));
    assert_eq!(status, 202, "{doc}");
    let done = a.wait_finished("31", Duration::from_secs(20));
    assert_eq!(done["state"], json!("done"), "{done}");
    let seen = b.wait_finished("31", Duration::from_secs(5));
    assert_eq!(seen["state"], done["state"]);
    assert_eq!(seen["deliveries"], done["deliveries"]);
    let (status, list) = b.get("/scans");
    assert_eq!(status, 200, "{list}");
    assert_eq!(list.as_array().map(Vec::len), Some(1), "{list}");

    // A graceful stop frees the lock at once: B takes over.
    let stopped = Instant::now();
    assert_eq!(a.sigterm(), Some(0), "{}", a.stderr());
    b.wait_role("active", Duration::from_secs(10));
    eprintln!(
        "standby active {:?} after SIGTERM of the active",
        stopped.elapsed()
    );
    assert_eq!(b.active_gauge(), 1.0);
    let (status, health) = b.get("/healthz");
    // Active now: its broker connection comes up.
    assert!(matches!(status, 200 | 503), "{health}");
    assert_eq!(health["role"], json!("active"));
    let (status, doc) = b.post(&json!({"operationId": 32, "windowSecs": 1}));
    assert_eq!(status, 202, "{doc}");
    assert_eq!(
        b.wait_finished("32", Duration::from_secs(20))["state"],
        json!("done")
    );
}

#[test]
fn the_standby_finishes_an_operation_whose_active_edge_was_killed_mid_window() {
    let Some(db) = TestDb::new("standby_takeover") else {
        return;
    };
    let Some(vhost) = TestVhost::new("standby-takeover") else {
        return;
    };
    let factory = FactoryStandIn::start();
    let dir = tempfile::tempdir().unwrap();
    // Half the room answers the first edge; the other half starts only
    // after its command went out, so it answers the edge that takes over
    // (which publishes the command again for the rest of the window).
    let early = devices(&factory, "HA", 4, 0x31);
    let late = devices(&factory, "HB", 4, 0x32);
    let _early = AgentFleet::start(&vhost, &early, &[]);
    let mut a = start_edge(&vhost.url(), &factory, &db.url(), dir.path());
    a.wait_role("active", Duration::from_secs(20));
    let b = start_edge(&vhost.url(), &factory, &db.url(), dir.path());
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(b.role(), "standby", "{}", b.stderr());

    // No `expected`: collection runs for the whole window, so the kill is
    // sure to land inside it.
    let (status, doc) = a.post(&json!({"operationId": 4242, "windowSecs": 20}));
    assert_eq!(status, 202, "{doc}");
    a.wait_for("4242", Duration::from_secs(10), |d| {
        d["replies"].as_u64() >= Some(4)
    });
    let _late = AgentFleet::start(&vhost, &late, &[]);
    let at_kill = a.get("/scans/4242").1;
    assert_eq!(at_kill["state"], json!("collecting"), "{at_kill}");
    assert_eq!(
        at_kill["replies"],
        json!(4),
        "the late agents missed the first command"
    );
    let killed = Instant::now();
    a.sigkill();
    eprintln!(
        "SIGKILL of the active with {} replies recorded",
        at_kill["replies"]
    );
    let mut fleet_devices = early.clone();
    fleet_devices.extend(late.iter().cloned());

    let took = b.wait_role("active", Duration::from_secs(10));
    eprintln!("standby active {took:?} after SIGKILL of the active");
    assert!(
        b.stderr().contains("resuming an unfinished operation"),
        "{}",
        b.stderr()
    );
    let (_, health) = b.get("/healthz");
    assert_eq!(health["role"], json!("active"));
    assert!(
        factory.requests().iter().all(|r| r.method != "POST"),
        "nothing was reported before the window closed"
    );

    let doc = b.wait_finished("4242", Duration::from_secs(40));
    eprintln!(
        "operation done {:?} after the kill (window 20 s)",
        killed.elapsed()
    );
    assert_eq!(doc["state"], json!("done"), "{doc}\n{}", b.stderr());
    assert_eq!(doc["replies"], json!(8), "{doc}");
    let want = sorted_sns(&fleet_devices);
    let mut got = sns(&doc["devices"]);
    got.sort();
    assert_eq!(got, want);
    assert_reported_exactly_once(&factory, "4242", &want);
    assert_eq!(
        db.psql("SELECT COUNT(*) FROM burnin_replies"),
        "8",
        "each reply recorded once"
    );
    // The rejected queue holds nothing: no reply was refused as unknown.
    let rejected = vhost.ctl(&[
        "list_queues",
        "-p",
        vhost.name(),
        "--quiet",
        "--no-table-headers",
        "name",
        "messages",
    ]);
    assert!(
        rejected
            .lines()
            .filter(|l| l.contains("rejected"))
            .all(|l| l.trim_end().ends_with('0')),
        "{rejected}"
    );
}

#[test]
fn postgresql_cut_mid_operation_the_edge_stops_acting_and_finishes_once_it_is_back() {
    let Some(db) = TestDb::new("standby_outage") else {
        return;
    };
    let Some(vhost) = TestVhost::new("standby-outage") else {
        return;
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let proxy = rt.block_on(PgProxy::start());
    let factory = FactoryStandIn::start();
    let dir = tempfile::tempdir().unwrap();
    let fleet_devices = devices(&factory, "PG", 6, 0x32);
    let _fleet = AgentFleet::start(&vhost, &fleet_devices, &[]);
    let edge = start_edge(
        &vhost.url(),
        &factory,
        &db.url_via(proxy.port()),
        dir.path(),
    );
    edge.wait_role("active", Duration::from_secs(20));

    let (status, doc) = edge.post(&json!({"operationId": 5151, "windowSecs": 15}));
    assert_eq!(status, 202, "{doc}");
    edge.wait_for("5151", Duration::from_secs(10), |d| {
        d["replies"].as_u64() >= Some(1)
    });

    proxy.cut();
    let cut = Instant::now();
    // Its lock session is gone: it stops acting.
    let noticed = edge.wait_role("standby", Duration::from_secs(5));
    eprintln!("active edge stood down {noticed:?} after PostgreSQL went away");
    let (status, answer) = edge.post(&json!({"operationId": 5152, "windowSecs": 1}));
    assert_eq!(status, 503, "{answer}");
    std::thread::sleep(Duration::from_secs(5).saturating_sub(cut.elapsed()));
    proxy.restore();
    let restored = Instant::now();

    let back = edge.wait_role("active", Duration::from_secs(15));
    eprintln!("active again {back:?} after PostgreSQL came back");
    let doc = edge.wait_finished("5151", Duration::from_secs(45));
    eprintln!(
        "operation done {:?} after PostgreSQL came back",
        restored.elapsed()
    );
    assert_eq!(doc["state"], json!("done"), "{doc}\n{}", edge.stderr());
    let want = sorted_sns(&fleet_devices);
    assert_reported_exactly_once(&factory, "5151", &want);
    assert_eq!(db.psql("SELECT COUNT(*) FROM burnin_replies"), "6");
    assert_eq!(
        db.psql("SELECT COUNT(*) FROM burnin_operations WHERE operation_id = '5152'"),
        "0",
        "the POST refused while standing down recorded nothing"
    );
    drop(edge);
    drop(rt);
}

/// PostgreSQL really restarted mid-operation, on a private server
/// ([`PrivatePg`]) stopped for ~5 s and started again: unlike the proxy cut
/// above, the server ends each session with SQLSTATE 57P01 (*terminating
/// connection due to administrator command*), refuses connections while
/// down, and comes back with no session state. The active edge stands down
/// (its lock session died), refuses the POST made meanwhile without
/// recording it, becomes active again once PostgreSQL is back, and the
/// operation finishes with every device reported once. What it logs names
/// PostgreSQL and the reason, says it retries, and never shows the password.
#[test]
fn postgresql_restarted_mid_operation_the_edge_stands_down_and_finishes_once_it_is_back() {
    const PASSWORD: &str = "s3cret-pw-4711";
    let Some(pg) = PrivatePg::new("standby_restart") else {
        return;
    };
    let Some(vhost) = TestVhost::new("standby-restart") else {
        return;
    };
    let factory = FactoryStandIn::start();
    let dir = tempfile::tempdir().unwrap();
    let fleet_devices = devices(&factory, "PR", 6, 0x33);
    let _fleet = AgentFleet::start(&vhost, &fleet_devices, &[]);
    let edge = start_edge(
        &vhost.url(),
        &factory,
        &pg.url_with_password(PASSWORD),
        dir.path(),
    );
    edge.wait_role("active", Duration::from_secs(20));

    let (status, doc) = edge.post(&json!({"operationId": 6161, "windowSecs": 15}));
    assert_eq!(status, 202, "{doc}");
    edge.wait_for("6161", Duration::from_secs(10), |d| {
        d["replies"].as_u64() >= Some(1)
    });

    let stopped = Instant::now();
    let stopping = pg.stop();
    // Its lock session was ended by the server: it stops acting.
    edge.wait_role("standby", Duration::from_secs(5));
    let noticed = stopped.elapsed();
    eprintln!(
        "active edge stood down {noticed:?} after PostgreSQL began to stop (pg_ctl stop took {stopping:?})"
    );
    let (status, answer) = edge.post(&json!({"operationId": 6162, "windowSecs": 1}));
    assert_eq!(status, 503, "{answer}");
    std::thread::sleep(Duration::from_secs(5).saturating_sub(stopped.elapsed()));
    let starting = pg.start();
    let started = Instant::now();
    eprintln!(
        "PostgreSQL down {:?} (pg_ctl start took {starting:?})",
        stopped.elapsed() - starting
    );

    let back = edge.wait_role("active", Duration::from_secs(15));
    eprintln!("active again {back:?} after PostgreSQL was back");
    let doc = edge.wait_finished("6161", Duration::from_secs(45));
    eprintln!(
        "operation done {:?} after PostgreSQL was back",
        started.elapsed()
    );
    assert_eq!(doc["state"], json!("done"), "{doc}\n{}", edge.stderr());
    let want = sorted_sns(&fleet_devices);
    assert_reported_exactly_once(&factory, "6161", &want);
    assert_eq!(pg.psql("SELECT COUNT(*) FROM burnin_replies"), "6");
    assert_eq!(
        pg.psql("SELECT COUNT(*) FROM burnin_operations WHERE operation_id = '6162'"),
        "0",
        "the POST refused while standing down recorded nothing"
    );
    // What the operator reads: why it stood down (PostgreSQL's own 57P01,
    // explained), that it retries, and where — never the password.
    let stderr = edge.stderr();
    let lost = stderr
        .lines()
        .find(|l| l.contains("ERROR") && l.contains("lock") && l.contains("57P01"))
        .unwrap_or_else(|| panic!("no error naming the session's end (57P01):\n{stderr}"));
    for said in [
        "PostgreSQL",
        "terminating connection due to administrator command",
        "shutting down or restarting",
        "stop acting",
        "retrying",
    ] {
        assert!(lost.contains(said), "{said:?} not in {lost}");
    }
    let retry = stderr
        .lines()
        .find(|l| l.contains("PostgreSQL unavailable; retrying the write"))
        .unwrap_or_else(|| panic!("no retried write while it was down:\n{stderr}"));
    assert!(
        retry.contains(&format!("postgres://postgres:***@127.0.0.1:{}/", pg.port())),
        "{retry}"
    );
    assert!(!stderr.contains(PASSWORD), "the password leaked:\n{stderr}");
    eprintln!("{lost}\n{retry}");
    drop(edge);
}
