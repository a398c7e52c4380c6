//! `burnin-edge serve` end to end, through real processes: a vhost of its
//! own on the real broker, the factory stand-in on 127.0.0.1, real
//! `burnin-agent run` processes, the real `burnin-edge serve` binary (killed
//! with SIGKILL for the crash tests) and plain HTTP/1.1 over TCP.

mod support;

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use burnin_testkit::vhost::TestVhost;
use burnin_testkit::{AgentFleet, FactoryStandIn, binary};
use serde_json::{Value, json};
use support::{
    Serve, assert_log_has_each_once_passing, devices, factory_args, free_port, http, sns,
};

const TOKEN: &str = "s3cret-token";

/// [`Serve::start`] with [`TOKEN`] and the stand-in's directBurn URL too.
fn start_serve(amqp_url: &str, factory: &FactoryStandIn, db: &Path, extra: &[&str]) -> Serve {
    let direct_burn = factory.url("/directBurn");
    let mut args = vec!["--direct-burn-url", direct_burn.as_str()];
    args.extend_from_slice(extra);
    Serve::start(amqp_url, factory, db, Some(TOKEN), &args)
}

/// `/metrics` of `serve`, parsed by [`parse_prometheus`].
fn metrics(serve: &Serve) -> BTreeMap<String, f64> {
    let (status, text) = http(&serve.addr, "GET", "/metrics", Some(TOKEN), None);
    assert_eq!(status, 200, "{text}");
    parse_prometheus(&text)
}

/// Parses Prometheus/OpenMetrics text strictly enough to catch a broken
/// exposition: `# HELP`/`# TYPE`/`# EOF` comments and `name{labels} value`
/// samples with valid names and float values. Keys are `name{labels}`.
fn parse_prometheus(text: &str) -> BTreeMap<String, f64> {
    let mut out = BTreeMap::new();
    let mut typed = HashMap::new();
    assert!(text.ends_with("# EOF\n"), "no # EOF line:\n{text}");
    for line in text.lines() {
        if let Some(c) = line.strip_prefix("# ") {
            let mut it = c.splitn(3, ' ');
            match (it.next(), it.next(), it.next()) {
                (Some("TYPE"), Some(name), Some(kind)) => {
                    assert!(
                        ["counter", "gauge", "histogram"].contains(&kind),
                        "bad TYPE {line}"
                    );
                    typed.insert(name.to_owned(), kind.to_owned());
                }
                (Some("HELP"), Some(_), _) | (Some("EOF"), None, None) => {}
                _ => panic!("bad comment line {line:?}"),
            }
            continue;
        }
        let (key, value) = line
            .rsplit_once(' ')
            .unwrap_or_else(|| panic!("bad line {line:?}"));
        let name = key.split('{').next().unwrap();
        assert!(
            !name.is_empty()
                && name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':'),
            "bad metric name in {line:?}"
        );
        assert!(
            typed.keys().any(|t| name.starts_with(t.as_str())),
            "sample {line:?} has no TYPE"
        );
        if let Some(labels) = key.strip_prefix(name)
            && !labels.is_empty()
        {
            assert!(
                labels.starts_with('{') && labels.ends_with('}'),
                "bad labels {line:?}"
            );
            for pair in labels[1..labels.len() - 1].split(',') {
                let (k, v) = pair
                    .split_once('=')
                    .unwrap_or_else(|| panic!("bad label {line:?}"));
                assert!(
                    !k.is_empty() && v.starts_with('"') && v.ends_with('"'),
                    "bad label {line:?}"
                );
            }
        }
        let v: f64 = value
            .parse()
            .unwrap_or_else(|_| panic!("bad value in {line:?}"));
        out.insert(key.to_owned(), v);
    }
    out
}

fn metric(m: &BTreeMap<String, f64>, key: &str) -> f64 {
    *m.get(key)
        .unwrap_or_else(|| panic!("no metric {key} in {m:#?}"))
}

/// Every POST to the same endpoint carried the same key and byte-identical body.
fn assert_resends_identical(factory: &FactoryStandIn, op: &str) {
    let mut by_path: HashMap<String, Vec<(String, Vec<u8>)>> = HashMap::new();
    for r in factory.requests() {
        if r.method == "POST" {
            by_path.entry(r.path.clone()).or_default().push((
                r.header("idempotency-key").unwrap_or_default().to_owned(),
                r.body.clone(),
            ));
        }
    }
    for (path, sent) in by_path {
        let kind = path.trim_start_matches('/');
        for (key, body) in &sent {
            // Run 1 in serve's store; the id as JSON (900, "deliver-1").
            let id = if op.parse::<u64>().is_ok() {
                op.to_owned()
            } else {
                format!("{op:?}")
            };
            assert_eq!(key, &format!("{id}:1:{kind}"), "{path}");
            assert_eq!(body, &sent[0].1, "{path} was resent with another body");
        }
    }
}

#[test]
fn api_answers_validates_and_guards_with_the_token() {
    let Some(vhost) = TestVhost::new("serve-api") else {
        return;
    };
    let factory = FactoryStandIn::start();
    let dir = tempfile::tempdir().unwrap();
    let mut serve = start_serve(&vhost.url(), &factory, &dir.path().join("s.db"), &[]);

    // 401 without or with a wrong token, on every route but /healthz.
    for path in ["/scans", "/scans/1", "/metrics"] {
        assert_eq!(http(&serve.addr, "GET", path, None, None).0, 401, "{path}");
        assert_eq!(
            http(&serve.addr, "GET", path, Some("wrong"), None).0,
            401,
            "{path}"
        );
        assert_eq!(
            http(&serve.addr, "GET", path, Some(&format!("{TOKEN}x")), None).0,
            401
        );
    }
    let (status, body) = http(
        &serve.addr,
        "POST",
        "/scans",
        Some("wrong"),
        Some(br#"{"operationId": 1}"#),
    );
    assert_eq!(status, 401, "{body}");
    assert!(body.contains("API token"), "{body}");

    // /healthz needs no token and turns 200 once the broker is connected.
    let start = Instant::now();
    while http(&serve.addr, "GET", "/healthz", None, None).0 != 200 {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "{}",
            serve.stderr()
        );
        std::thread::sleep(Duration::from_millis(100));
    }

    // 202 with the deadline, then 409 for the same running id.
    let before = std::time::SystemTime::now();
    let (status, doc) = serve.post(&json!({"operationId": 77, "windowSecs": 3}));
    assert_eq!(status, 202, "{doc}");
    assert_eq!(doc["operationId"], json!(77));
    let deadline = humantime::parse_rfc3339(doc["deadline"].as_str().unwrap()).unwrap();
    let ahead = deadline.duration_since(before).unwrap();
    assert!(
        ahead >= Duration::from_secs(2) && ahead <= Duration::from_secs(5),
        "{ahead:?}"
    );
    let (status, doc) = serve.post(&json!({"operationId": 77}));
    assert_eq!(status, 409, "{doc}");
    assert!(doc["error"].as_str().unwrap().contains("already running"));
    // The string "77" is another operation.
    let (status, doc) = serve.post(&json!({"operationId": "77", "windowSecs": 1}));
    assert_eq!(status, 202, "{doc}");

    // 400 naming the field.
    for (body, field) in [
        (json!({}), "operationId"),
        (json!({"operationId": 1, "windowSecs": 0}), "windowSecs"),
        (json!({"operationId": 1, "windowSecs": 3601}), "windowSecs"),
        (json!({"operationId": 1, "target": "sideways"}), "target"),
        (
            json!({"operationId": 1, "expected": ["bad serial"]}),
            "expected",
        ),
        (json!({"operationId": -5}), "operationId"),
    ] {
        let (status, doc) = serve.post(&body);
        assert_eq!(status, 400, "{body}: {doc}");
        assert!(
            doc["error"].as_str().unwrap().contains(field),
            "{body}: {doc}"
        );
    }
    let (status, body) = http(
        &serve.addr,
        "POST",
        "/scans",
        Some(TOKEN),
        Some(b"{not json"),
    );
    assert_eq!(status, 400, "{body}");
    // A 2 MB body is refused without being read.
    let big = format!(
        r#"{{"operationId": 1, "operatorId": "{}"}}"#,
        "x".repeat(2 << 20)
    );
    let (status, body) = http(
        &serve.addr,
        "POST",
        "/scans",
        Some(TOKEN),
        Some(big.as_bytes()),
    );
    assert_eq!(status, 413, "{body}");
    assert!(body.contains("larger than"), "{body}");

    // 404 for an unknown id; the list is newest first.
    let (status, doc) = serve.get("/scans/no-such-op");
    assert_eq!(status, 404, "{doc}");
    let (status, doc) = serve.get("/scans?limit=10");
    assert_eq!(status, 200);
    let ids: Vec<&Value> = doc
        .as_array()
        .unwrap()
        .iter()
        .map(|d| &d["operationId"])
        .collect();
    assert_eq!(ids, vec![&json!("77"), &json!(77)]);
    assert_eq!(serve.get("/scans?limit=x").0, 400);
    let (_, one) = serve.get("/scans?limit=1");
    assert_eq!(one.as_array().unwrap().len(), 1);

    // No agents: both end with no device and are reported.
    let doc = serve.wait_finished("77", Duration::from_secs(20));
    assert_eq!(
        doc["operationId"],
        json!(77),
        "digits find the number first"
    );
    let doc = serve.wait_finished("%2277%22", Duration::from_secs(20));
    assert_eq!(
        doc["operationId"],
        json!("77"),
        "a quoted segment is the string id"
    );
    assert_eq!(serve.sigterm(), Some(0), "graceful shutdown exits 0");
}

#[test]
fn healthz_is_503_while_the_broker_is_unreachable_and_200_once_it_is_back() {
    let Some(vhost) = TestVhost::new("serve-health") else {
        return;
    };
    // The vhost is gone: the broker refuses the connection.
    vhost.ctl(&["delete_vhost", vhost.name()]);
    let factory = FactoryStandIn::start();
    let dir = tempfile::tempdir().unwrap();
    let serve = start_serve(&vhost.url(), &factory, &dir.path().join("s.db"), &[]);
    std::thread::sleep(Duration::from_millis(500));
    for _ in 0..3 {
        let (status, body) = http(&serve.addr, "GET", "/healthz", None, None);
        assert_eq!(status, 503, "{body}");
        std::thread::sleep(Duration::from_millis(200));
    }
    // The API works meanwhile.
    assert_eq!(serve.get("/scans").0, 200);
    vhost.ctl(&["add_vhost", vhost.name()]);
    vhost.ctl(&[
        "set_permissions",
        "-p",
        vhost.name(),
        "guest",
        ".*",
        ".*",
        ".*",
    ]);
    let back = Instant::now();
    while http(&serve.addr, "GET", "/healthz", None, None).0 != 200 {
        assert!(
            back.elapsed() < Duration::from_secs(20),
            "still 503 20 s after the broker came back:\n{}",
            serve.stderr()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    eprintln!("healthz 200 {:?} after the vhost came back", back.elapsed());
    assert!(
        !serve.stderr().contains("guest:guest"),
        "password in the log"
    );
}

#[test]
fn two_operations_at_once_each_report_only_their_own_devices_and_metrics_match() {
    let Some(vhost) = TestVhost::new("serve-two") else {
        return;
    };
    let factory = FactoryStandIn::start();
    let dir = tempfile::tempdir().unwrap();
    let serve = start_serve(&vhost.url(), &factory, &dir.path().join("s.db"), &[]);
    let a = devices(&factory, "A", 3, 0xa);
    let b = devices(&factory, "B", 4, 0xb);

    let fleet_a = AgentFleet::start(&vhost, &a, &[]);
    // Operation 1 collects for 8 s: fleet A answers it.
    let (status, doc) = serve.post(&json!({"operationId": 1, "windowSecs": 8}));
    assert_eq!(status, 202, "{doc}");
    serve.wait_for("1", Duration::from_secs(10), |d| d["replies"] == json!(3));
    // Fleet A leaves, fleet B arrives; operation 2 starts while 1 still collects.
    drop(fleet_a);
    let _fleet_b = AgentFleet::start(&vhost, &b, &[]);
    let expected: Vec<&str> = b.iter().map(|d| d.sn.as_str()).collect();
    let (status, doc) =
        serve.post(&json!({"operationId": "batch-2", "expected": expected, "windowSecs": 8}));
    assert_eq!(status, 202, "{doc}");
    assert_eq!(serve.get("/scans/1").1["state"], json!("collecting"));

    let two = serve.wait_finished("batch-2", Duration::from_secs(20));
    let one = serve.wait_finished("1", Duration::from_secs(20));
    assert_eq!(one["state"], json!("done"), "{one}");
    assert_eq!(two["state"], json!("done"), "{two}");
    assert_eq!(sns(&one["devices"]), vec!["A-1", "A-2", "A-3"]);
    assert_eq!(sns(&two["devices"]), vec!["B-1", "B-2", "B-3", "B-4"]);
    assert!(
        one["devices"]
            .as_array()
            .unwrap()
            .iter()
            .all(|d| d["result"] == json!("1"))
    );

    let logs = factory.requests_to("/log");
    assert_eq!(logs.len(), 2);
    for log in &logs {
        let body = log.json();
        let op = body["operationid"].clone();
        let got: Vec<String> = body["scaninfo"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d["sn"].as_str().unwrap().to_owned())
            .collect();
        let want = if op == json!(1) { "A" } else { "B" };
        assert!(got.iter().all(|sn| sn.starts_with(want)), "{op}: {got:?}");
        // Run 1 of each id in serve's store; the id as JSON (1, "op").
        assert_eq!(
            log.header("idempotency-key").unwrap(),
            format!("{op}:1:log")
        );
    }

    let m = metrics(&serve);
    assert_eq!(
        metric(&m, r#"burnin_replies_total{outcome="accepted"}"#),
        7.0
    );
    assert_eq!(
        metric(&m, r#"burnin_replies_total{outcome="duplicate"}"#),
        0.0
    );
    assert_eq!(metric(&m, r#"burnin_devices_total{result="pass"}"#), 7.0);
    assert_eq!(metric(&m, r#"burnin_devices_total{result="fail"}"#), 0.0);
    assert_eq!(metric(&m, r#"burnin_operations{state="done"}"#), 2.0);
    assert_eq!(metric(&m, r#"burnin_operations{state="collecting"}"#), 0.0);
    assert_eq!(
        metric(&m, r#"burnin_operations_started_total{how="api"}"#),
        2.0
    );
    assert_eq!(
        metric(
            &m,
            r#"burnin_factory_requests_total{endpoint="mes",status="ok"}"#
        ),
        7.0
    );
    for kind in ["log", "pair", "notify"] {
        assert_eq!(
            metric(
                &m,
                &format!(r#"burnin_factory_requests_total{{endpoint="{kind}",status="ok"}}"#)
            ),
            2.0,
            "{kind}"
        );
        assert_eq!(
            metric(
                &m,
                &format!(r#"burnin_factory_request_duration_seconds_count{{endpoint="{kind}"}}"#)
            ),
            2.0
        );
    }
    assert_eq!(
        metric(
            &m,
            r#"burnin_factory_request_duration_seconds_count{endpoint="mes"}"#
        ),
        7.0
    );
    assert_eq!(
        factory
            .requests()
            .iter()
            .filter(|r| r.method == "GET")
            .count(),
        7
    );
    // The adaptive MES limit: within 1..=256 (--mes-concurrency-max), and
    // nothing in flight once both operations are done.
    let limit = metric(&m, "burnin_mes_concurrency_limit");
    assert!((1.0..=256.0).contains(&limit), "{limit}");
    assert_eq!(metric(&m, "burnin_mes_in_flight"), 0.0);
    // The live board holds both operations and their events.
    assert_eq!(metric(&m, "burnin_live_operations"), 2.0);
    assert!(metric(&m, "burnin_live_events") >= 2.0 * 7.0);
}

#[test]
fn a_killed_serve_resumes_and_reports_all_20_devices_exactly_once() {
    let Some(vhost) = TestVhost::new("serve-crash") else {
        return;
    };
    let factory = FactoryStandIn::start();
    // Slow factory: the operation is still busy when the process dies.
    factory.set_latency(Duration::from_millis(400));
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("state.db");
    let fleet_devices = devices(&factory, "DUT", 20, 0x20);
    let _fleet = AgentFleet::start(&vhost, &fleet_devices, &[]);
    let mut serve = start_serve(&vhost.url(), &factory, &db, &[]);
    let expected: Vec<&str> = fleet_devices.iter().map(|d| d.sn.as_str()).collect();
    let (status, doc) =
        serve.post(&json!({"operationId": 900, "expected": expected, "windowSecs": 10}));
    assert_eq!(status, 202, "{doc}");
    // Kill as soon as the first reply is recorded, while the rest arrive.
    let at_kill = serve.wait_for("900", Duration::from_secs(10), |d| {
        d["replies"].as_u64() >= Some(1)
    });
    let killed = Instant::now();
    serve.sigkill();
    eprintln!("SIGKILL with {} of 20 replies recorded", at_kill["replies"]);

    let serve = start_serve(&vhost.url(), &factory, &db, &[]);
    let doc = serve.wait_finished("900", Duration::from_secs(30));
    eprintln!(
        "restart to done: {:?} (replies recorded {})",
        killed.elapsed(),
        doc["replies"]
    );
    assert_eq!(doc["state"], json!("done"), "{doc}\n{}", serve.stderr());
    assert!(serve.stderr().contains("resuming an unfinished operation"));
    let mut got = sns(&doc["devices"]);
    got.sort();
    let mut want: Vec<String> = expected.iter().map(|s| (*s).to_owned()).collect();
    want.sort();
    assert_eq!(got, want);

    // The delivered log has every device exactly once.
    let logs = factory.requests_to("/log");
    assert!(!logs.is_empty());
    let last = logs.last().unwrap().json();
    assert_log_has_each_once_passing(&last, &want);
    assert_resends_identical(&factory, "900");
    assert_eq!(
        factory.requests_to("/notify").last().unwrap().json()["error"],
        Value::Null
    );
    let m = metrics(&serve);
    assert_eq!(
        metric(&m, r#"burnin_operations_started_total{how="resumed"}"#),
        1.0
    );
    assert_eq!(metric(&m, r#"burnin_operations{state="done"}"#), 1.0);
}

#[test]
fn a_delivery_that_failed_before_a_crash_is_delivered_after_the_restart() {
    let Some(vhost) = TestVhost::new("serve-deliver") else {
        return;
    };
    let factory = FactoryStandIn::start();
    factory.down("/log");
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("state.db");
    let devs = devices(&factory, "D", 2, 0x30);
    let _fleet = AgentFleet::start(&vhost, &devs, &[]);
    let retry = ["--http-retries", "100", "--http-timeout", "2s"];
    let mut serve = start_serve(&vhost.url(), &factory, &db, &retry);
    let (status, doc) = serve
        .post(&json!({"operationId": "deliver-1", "expected": ["D-1", "D-2"], "windowSecs": 5}));
    assert_eq!(status, 202, "{doc}");
    // The log keeps failing (503) while serve retries; then it dies.
    let start = Instant::now();
    while factory.requests_to("/log").len() < 2 {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "{}",
            serve.stderr()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    serve.sigkill();
    assert!(factory.requests_to("/pair").is_empty());
    assert!(factory.requests_to("/notify").is_empty());
    let failed_attempts = factory.requests_to("/log").len();

    factory.up("/log");
    let serve = start_serve(&vhost.url(), &factory, &db, &retry);
    let doc = serve.wait_finished("deliver-1", Duration::from_secs(20));
    assert_eq!(doc["state"], json!("done"), "{doc}");
    assert_eq!(doc["error"], Value::Null);
    assert!(factory.requests_to("/log").len() > failed_attempts);
    assert_eq!(factory.requests_to("/pair").len(), 1);
    assert_eq!(factory.requests_to("/notify").len(), 1);
    assert_resends_identical(&factory, "deliver-1");
    let log = factory.requests_to("/log").last().unwrap().json();
    assert_eq!(log["scaninfo"].as_array().unwrap().len(), 2);
    let kinds: Vec<&str> = doc["deliveries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, vec!["log", "pair", "notify"]);
}

#[test]
fn a_corrupt_state_db_is_a_clear_error_and_stays_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("burnin-edge.sqlite3");
    let garbage: Vec<u8> = (0..50_000u32).map(|i| (i * 31 % 253) as u8).collect();
    std::fs::write(&db, &garbage).unwrap();
    let out = Command::new(binary("burnin-edge"))
        .arg("serve")
        .args(["--amqp-url", "amqp://guest:guest@127.0.0.1:1/x"])
        .args(["--mes-file", "/nonexistent", "--out-dir", "/nonexistent"])
        .args(["--listen", &format!("127.0.0.1:{}", free_port())])
        .arg("--state-db")
        .arg(&db)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains(&db.display().to_string()), "{stderr}");
    assert!(stderr.contains("not a SQLite database"), "{stderr}");
    assert!(stderr.contains("left untouched"), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert_eq!(std::fs::read(&db).unwrap(), garbage);
    let names: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
    assert_eq!(names.len(), 1, "no -wal or -journal file was made");
}

#[test]
fn scan_records_into_the_state_db_that_serve_reads() {
    let Some(vhost) = TestVhost::new("serve-scan-db") else {
        return;
    };
    let factory = FactoryStandIn::start();
    let devs = devices(&factory, "S", 2, 0x40);
    let _fleet = AgentFleet::start(&vhost, &devs, &[]);
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("state.db");
    let url = vhost.url();
    // serve consumes the reply queue of `vhost` and an edge is the only
    // consumer of its queue, so the scan beside it uses a vhost of its own.
    let Some(other) = TestVhost::new("serve-scan-db-2") else {
        return;
    };
    let other_url = other.url();
    let scan = |id: &str, url: &str| {
        Command::new(binary("burnin-edge"))
            .arg("scan")
            .args(["--amqp-url", url, "--operation-id", id, "--window", "5s"])
            .args(["--expect", "S-1", "--expect", "S-2"])
            .arg("--state-db")
            .arg(&db)
            .args(factory_args(&factory))
            .output()
            .unwrap()
    };
    let out = scan("scan-1", &url);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let serve = start_serve(&vhost.url(), &factory, &db, &[]);
    let (status, doc) = serve.get("/scans/scan-1");
    assert_eq!(status, 200, "{doc}");
    assert_eq!(doc["state"], json!("done"));
    assert_eq!(sns(&doc["devices"]), vec!["S-1", "S-2"]);
    assert_eq!(doc["replies"], json!(2));
    // An id running in serve is refused by scan with exit 2, nothing sent.
    let (status, _) = serve.post(&json!({"operationId": "scan-2", "windowSecs": 30}));
    assert_eq!(status, 202);
    factory.clear_requests();
    let out = scan("scan-2", &other_url);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("unfinished in --state-db"), "{stderr}");
    assert!(factory.requests().iter().all(|r| r.method != "POST"));
}

/// A reply of device `sn` (one NIC) to operation `op`, as an agent sends it.
fn device_reply(op: u64, sn: &str, n: usize) -> Vec<u8> {
    use burnin_core::{DeviceReport, Hardware, InterfaceReport, PciDevice, Timestamp};
    let hw = Hardware {
        sn: sn.parse().unwrap(),
        hostname: format!("host-{sn}"),
        interfaces: vec![InterfaceReport {
            lldp: None,
            interface: "eth0".into(),
            macaddr: format!("02:00:00:00:{:02x}:{:02x}", n / 256, n % 256)
                .parse()
                .unwrap(),
            permaddr: None,
            addr_assign_type: None,
            link: None,
            pci: PciDevice {
                pcie_link: None,
                slot: "0000:01:00.0".into(),
                vendor: "0x8086".into(),
                device: "0x1533".into(),
                class: "0x020000".into(),
                driver: Some("igb".into()),
            },
        }],
        pci_devices: vec![],
    };
    DeviceReport::new(
        Some(burnin_core::OperationId::Number(op)),
        hw,
        "burst-test",
        Timestamp::from_unix_seconds(1_800_000_000),
    )
    .to_json()
}

/// Group commit must not ack what is not durable: serve is SIGKILLed while
/// 1,000 replies, published straight to the reply queue with publisher
/// confirms, pour in. Every reply is then in the state database or still
/// in the broker (the unacked ones are requeued when serve dies), and after
/// a restart all 1,000 devices are recorded and reported exactly once.
#[test]
fn a_serve_killed_during_a_burst_of_1000_replies_loses_none_it_acked() {
    const N: usize = 1000;
    const OP: u64 = 4242;
    let Some(vhost) = TestVhost::new("serve-burst") else {
        return;
    };
    let factory = FactoryStandIn::start();
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("state.db");
    let mut serve = start_serve(&vhost.url(), &factory, &db, &[]);
    let serials: Vec<String> = (0..N).map(|i| format!("BURST-{i:04}")).collect();
    // MES knows none of them (each device fails as unknown): what matters
    // here is that every reply is recorded.
    let (status, doc) =
        serve.post(&json!({"operationId": OP, "expected": serials, "windowSecs": 120}));
    assert_eq!(status, 202, "{doc}");

    // The burst: one confirmed publish after another, from a thread of
    // its own, so serve records them as they arrive.
    let url = vhost.url();
    let bodies: Vec<(String, Vec<u8>)> = serials
        .iter()
        .enumerate()
        .map(|(i, sn)| (sn.clone(), device_reply(OP, sn, i)))
        .collect();
    let publisher = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            use burnin_core::ReplySink as _;
            let (_commands, sink) = burnin_amqp::agent::connect(burnin_amqp::AmqpConfig::new(url))
                .await
                .expect("publisher connects");
            let deadline = burnin_core::Timestamp::from_system_time(
                std::time::SystemTime::now() + Duration::from_secs(60),
            );
            // 8 confirmed publishes in flight at a time.
            let gate = std::sync::Arc::new(tokio::sync::Semaphore::new(8));
            let mut sends = tokio::task::JoinSet::new();
            for (sn, body) in bodies {
                let permit = gate.clone().acquire_owned().await.unwrap();
                let sink = sink.clone();
                sends.spawn(async move {
                    let reply = burnin_core::OutgoingReply {
                        reply_to: "hwinfo_queue".into(),
                        operation_id: burnin_core::OperationId::Number(OP),
                        body,
                        deadline,
                    };
                    sink.send(&reply)
                        .await
                        .unwrap_or_else(|e| panic!("{sn} was not confirmed: {e}"));
                    drop(permit);
                });
            }
            while let Some(sent) = sends.join_next().await {
                sent.expect("a publish task");
            }
            sink.close().await;
        });
    });

    let started = Instant::now();
    let at_kill = serve.wait_for(&OP.to_string(), Duration::from_secs(60), |d| {
        d["replies"].as_u64() >= Some(200)
    });
    serve.sigkill();
    eprintln!("killed {:?} into the burst", started.elapsed());
    let recorded_at_kill = at_kill["replies"].as_u64().unwrap();
    publisher
        .join()
        .expect("every reply confirmed by the broker");

    // What survived: the file, read directly, and the broker's queue.
    let store = burnin_store::SqliteStore::open(&db).unwrap();
    let unfinished = store.unfinished().unwrap();
    assert_eq!(unfinished.len(), 1);
    let stored: std::collections::BTreeSet<String> = unfinished[0]
        .replies
        .iter()
        .map(|b| {
            burnin_core::DeviceReport::from_slice(&b.body)
                .unwrap()
                .sn
                .to_string()
        })
        .collect();
    drop(store);
    let in_queue = vhost.messages("hwinfo_queue").unwrap();
    eprintln!(
        "SIGKILL: serve showed {recorded_at_kill} replies recorded; after it the file holds {}, \
         the reply queue {in_queue} (sum {})",
        stored.len(),
        stored.len() as u64 + in_queue
    );
    assert!(recorded_at_kill < N as u64, "the kill came after the burst");
    assert_eq!(stored.len(), unfinished[0].replies.len(), "no reply twice");
    assert!(
        stored.len() as u64 >= recorded_at_kill,
        "the file holds fewer replies ({}) than serve showed ({recorded_at_kill})",
        stored.len()
    );
    assert!(
        stored.len() as u64 + in_queue >= N as u64,
        "{} in the file + {in_queue} in the queue < {N}: an acked reply was lost",
        stored.len()
    );

    // Restarted, serve takes the rest from the queue: all 1,000, once each.
    let serve = start_serve(&vhost.url(), &factory, &db, &[]);
    let doc = serve.wait_finished(&OP.to_string(), Duration::from_secs(120));
    eprintln!("restarted serve finished after {:?}", started.elapsed());
    assert_eq!(doc["replies"], json!(N), "{}", serve.stderr());
    let mut got = sns(&doc["devices"]);
    got.sort();
    assert_eq!(got, serials, "every device exactly once");
    let logs = factory.requests_to("/log");
    let last = logs.last().unwrap().json();
    assert_eq!(last["scaninfo"].as_array().unwrap().len(), N);
    assert_eq!(vhost.messages("hwinfo_queue"), Some(0));
}

/// Without a token the API stays on this machine: a non-loopback `--listen`
/// without `--api-token` is refused (exit 2) before anything is opened.
#[test]
fn listening_beyond_loopback_needs_a_token() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("burnin-edge.sqlite3");
    let out = Command::new(binary("burnin-edge"))
        .arg("serve")
        .args(["--amqp-url", "amqp://guest:guest@127.0.0.1:1/x"])
        .args(["--mes-file", "/nonexistent", "--out-dir", "/nonexistent"])
        .args(["--listen", &format!("0.0.0.0:{}", free_port())])
        .arg("--state-db")
        .arg(&db)
        .env_remove("BURNIN_API_TOKEN")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("--listen 0.0.0.0:"), "{stderr}");
    assert!(stderr.contains("--api-token"), "{stderr}");
    assert!(!db.exists(), "nothing was opened");
}

/// A viewer token without an operator token, or equal to it, is refused at
/// start (exit 2), before anything is opened.
#[test]
fn a_viewer_token_needs_an_api_token_of_its_own() {
    for (api, want) in [
        (None, "needs --api-token"),
        (Some("same-token"), "the same as --api-token"),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("burnin-edge.sqlite3");
        let mut cmd = Command::new(binary("burnin-edge"));
        cmd.arg("serve")
            .args(["--amqp-url", "amqp://guest:guest@127.0.0.1:1/x"])
            .args(["--mes-file", "/nonexistent", "--out-dir", "/nonexistent"])
            .args(["--listen", &format!("127.0.0.1:{}", free_port())])
            .arg("--state-db")
            .arg(&db)
            .args(["--viewer-token", "same-token"])
            .env_remove("BURNIN_API_TOKEN")
            .env_remove("BURNIN_VIEWER_TOKEN");
        if let Some(t) = api {
            cmd.args(["--api-token", t]);
        }
        let out = cmd.output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{stderr}");
        assert!(stderr.contains(want), "{stderr}");
        assert!(
            !stderr.contains("same-token"),
            "no token is printed: {stderr}"
        );
        assert!(!db.exists(), "nothing was opened");
    }
}
