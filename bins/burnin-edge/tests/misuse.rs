//! What a factory meets in real use and must never read as a bad board
//! (SPEC §11.3): the same operation id twice, twin serials, a device clock
//! hours off, an MES outage, a MES URL that is wrong. Real agents on
//! fixture trees, the real broker (a vhost per test), the factory
//! stand-in, and the real `burnin-edge`.

mod support;

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use burnin_testkit::vhost::TestVhost;
use burnin_testkit::{AgentFleet, Device, FactoryStandIn, binary, wait_for_agents};
use serde_json::{Value, json};
use support::{Run, Serve, factory_args, scan_without_panic as scan};

fn scan_factory(f: &FactoryStandIn, vhost: &TestVhost, extra: &[&str]) -> Run {
    let factory = factory_args(f);
    let url = vhost.url();
    let args: Vec<&str> = factory
        .iter()
        .map(String::as_str)
        .chain(["--amqp-url", url.as_str()])
        .chain(extra.iter().copied())
        .collect();
    scan(&args)
}

/// The Idempotency-Keys of the POSTs so far, in order.
fn keys(f: &FactoryStandIn) -> Vec<String> {
    f.requests()
        .into_iter()
        .filter(|r| r.method == "POST")
        .map(|r| r.header("idempotency-key").unwrap_or_default().to_owned())
        .collect()
}

fn two_devices(f: &FactoryStandIn, prefix: &str) -> Vec<Device> {
    support::devices(f, prefix, 2, 0x21)
}

/// Reported by the factory on main before runs: the second scan of an id
/// got "FAIL no reply before the window closed" for every device (the
/// agents skipped an id they had answered), and its log went out under
/// the first scan's key with every result "0".
#[test]
fn the_same_id_twice_without_a_store_is_two_runs_and_both_pass() {
    let Some(vhost) = TestVhost::new("same-id") else {
        return;
    };
    let factory = FactoryStandIn::start();
    let devices = two_devices(&factory, "TWICE");
    let _fleet = AgentFleet::start(&vhost, &devices, &[]);
    let expect = [
        "--operation-id",
        "7001",
        "--expect",
        "TWICE-1",
        "--expect",
        "TWICE-2",
    ];
    let first = scan_factory(&factory, &vhost, &expect);
    assert_eq!(first.code, Some(0), "{}\n{}", first.stdout, first.stderr);
    let first_keys = keys(&factory);
    factory.clear_requests();
    let again = scan_factory(&factory, &vhost, &expect);
    assert_eq!(again.code, Some(0), "{}\n{}", again.stdout, again.stderr);
    assert!(
        again.stdout.contains("2 devices, 2 passed, 0 failed"),
        "{}",
        again.stdout
    );
    let again_keys = keys(&factory);
    assert_eq!(first_keys.len(), 3);
    assert_eq!(again_keys.len(), 3);
    for (a, b) in first_keys.iter().zip(&again_keys) {
        assert_ne!(
            a, b,
            "a key is never sent twice (with a body that may differ)"
        );
        assert!(a.starts_with("7001:") && b.starts_with("7001:"), "{a} {b}");
    }
}

#[test]
fn a_state_db_refuses_a_held_id_and_rescan_runs_it_again() {
    let Some(vhost) = TestVhost::new("rescan") else {
        return;
    };
    let factory = FactoryStandIn::start();
    let devices = two_devices(&factory, "RESCAN");
    let _fleet = AgentFleet::start(&vhost, &devices, &[]);
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("state.sqlite3");
    let db = db.to_str().unwrap();
    let args = [
        "--operation-id",
        "7002",
        "--expect",
        "RESCAN-1",
        "--expect",
        "RESCAN-2",
        "--state-db",
        db,
    ];
    let first = scan_factory(&factory, &vhost, &args);
    assert_eq!(first.code, Some(0), "{}\n{}", first.stdout, first.stderr);
    assert_eq!(
        keys(&factory),
        ["7002:1:log", "7002:1:pair", "7002:1:notify"]
    );
    factory.clear_requests();

    let held = scan_factory(&factory, &vhost, &args);
    assert_eq!(held.code, Some(2), "{}\n{}", held.stdout, held.stderr);
    assert!(
        held.stderr
            .contains("operation 7002 already ran (run 1, started 20")
            && held.stderr.contains("--rescan"),
        "{}",
        held.stderr
    );
    assert!(
        keys(&factory).is_empty(),
        "nothing is sent for a refused id"
    );

    let mut rescan: Vec<&str> = args.to_vec();
    rescan.push("--rescan");
    let second = scan_factory(&factory, &vhost, &rescan);
    assert_eq!(second.code, Some(0), "{}\n{}", second.stdout, second.stderr);
    assert!(
        second.stdout.contains("2 devices, 2 passed, 0 failed"),
        "{}",
        second.stdout
    );
    assert_eq!(
        keys(&factory),
        ["7002:2:log", "7002:2:pair", "7002:2:notify"]
    );
}

#[test]
fn serve_answers_409_for_a_held_id_and_a_rescan_is_run_2_with_both_runs_listed() {
    let Some(vhost) = TestVhost::new("serve-rescan") else {
        return;
    };
    let factory = FactoryStandIn::start();
    let devices = two_devices(&factory, "SRV");
    let _fleet = AgentFleet::start(&vhost, &devices, &[]);
    let dir = tempfile::tempdir().unwrap();
    let serve = Serve::start(
        &vhost.url(),
        &factory,
        &dir.path().join("s.sqlite3"),
        None,
        &[],
    );
    let body = json!({"operationId": 7003, "expected": ["SRV-1", "SRV-2"]});
    let (status, doc) = serve.post(&body);
    assert_eq!(status, 202, "{doc}");
    let done = serve.wait_finished("7003", Duration::from_secs(30));
    assert_eq!(done["state"], "done", "{done}");

    let (status, doc) = serve.post(&body);
    assert_eq!(status, 409, "{doc}");
    assert!(
        doc["error"]
            .as_str()
            .unwrap()
            .contains("already ran (run 1"),
        "{doc}"
    );
    // Still the first run, untouched.
    let (_, shown) = serve.get("/scans/7003");
    assert_eq!(shown["run"], 1, "{shown}");

    let mut again = body.clone();
    again["rescan"] = json!(true);
    let (status, doc) = serve.post(&again);
    assert_eq!(status, 202, "{doc}");
    let done = serve.wait_for("7003", Duration::from_secs(30), |d| {
        d["run"] == 2 && d["state"] == "done" && d["runs"][1]["state"] == "done"
    });
    let passed: Vec<&Value> = done["devices"].as_array().unwrap().iter().collect();
    assert!(
        passed.iter().all(|d| d["result"] == "1"),
        "the agents answered run 2: {done}"
    );
    let runs: Vec<(u64, String)> = done["runs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["run"].as_u64().unwrap(),
                r["state"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(runs, [(1, "done".to_owned()), (2, "done".to_owned())]);
    let logs: Vec<String> = factory
        .requests_to("/log")
        .iter()
        .map(|r| r.header("idempotency-key").unwrap().to_owned())
        .collect();
    assert_eq!(logs, ["7003:1:log", "7003:2:log"]);
}

/// Reported on main: two boards answering as C1 gave PASS or FAIL by
/// which answered first, with both boards' MACs mixed, and no finding.
#[test]
fn twin_serials_are_a_conflict_that_names_both_boards() {
    let Some(vhost) = TestVhost::new("twins") else {
        return;
    };
    let factory = FactoryStandIn::start();
    factory.set_mes("C1", &["02:00:00:00:c1:01"]);
    let twins = [
        Device::new("C1", &["02:00:00:00:c1:01"]),
        Device::new("C1", &["02:00:00:00:c1:99"]),
    ];
    let _fleet = AgentFleet::start(&vhost, &twins, &[]);
    for round in 0..2 {
        factory.clear_requests();
        let run = scan_factory(
            &factory,
            &vhost,
            &[
                "--operation-id",
                &format!("C1-{round}"),
                "--expect",
                "C1",
                "--json",
            ],
        );
        assert_eq!(run.code, Some(1), "{}\n{}", run.stdout, run.stderr);
        let doc: Value = serde_json::from_str(run.stdout.trim()).unwrap();
        let c1 = &doc["devices"][0];
        assert_eq!(c1["result"], "0", "{doc}");
        let conflict = c1["findings"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["kind"] == "serialConflict")
            .unwrap_or_else(|| panic!("no conflict finding: {doc}"));
        let message = conflict["message"].as_str().unwrap();
        assert!(
            message.starts_with("2 boards answered as C1: host ")
                && message.contains("02:00:00:00:c1:01")
                && message.contains("02:00:00:00:c1:99"),
            "{message}"
        );
        assert_eq!(doc["replies"]["conflict"], 1, "{doc}");
        // The log carries one board's MACs (the first reply's), failed.
        let log = factory.requests_to("/log")[0].json();
        let macs: Vec<&str> = log["scaninfo"][0]["macinfo"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|m| m["interface"] != "")
            .map(|m| m["macaddr"].as_str().unwrap())
            .collect();
        assert_eq!(macs.len(), 1, "{log}");
        assert_eq!(log["scaninfo"][0]["result"], "0");
        assert!(factory.requests_to("/pair").is_empty());
    }
}

/// libfaketime, as Debian's `faketime` package installs it.
const LIBFAKETIME: &str = "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1";

/// An agent whose wall clock is shifted by `offset` (libfaketime's
/// `FAKETIME`, e.g. `+8h`), preloaded into the agent itself so it is this
/// test's own child.
fn agent_with_clock(vhost: &TestVhost, root: &Path, device: &Device, offset: &str) -> Child {
    assert!(
        Path::new(LIBFAKETIME).exists(),
        "{LIBFAKETIME} is missing: install Debian's faketime package (bash scripts/setup does)"
    );
    device.write_tree(root);
    Command::new(binary("burnin-agent"))
        .args(["run", "--amqp-url", &vhost.url(), "--sysfs-root"])
        .arg(root)
        .env("LD_PRELOAD", LIBFAKETIME)
        .env("FAKETIME", offset)
        .env("FAKETIME_DONT_FAKE_MONOTONIC", "1")
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap()
}

struct Agents(Vec<Child>);
impl Drop for Agents {
    fn drop(&mut self) {
        for c in &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Reported on main: an agent 8 h ahead (a hardware clock in local time
/// at UTC+8) skipped every command as expired, and the scan read it as a
/// dead board.
#[test]
fn devices_whose_clocks_are_hours_off_answer_and_get_a_clock_finding() {
    let Some(vhost) = TestVhost::new("clock") else {
        return;
    };
    let factory = FactoryStandIn::start();
    let devices = two_devices(&factory, "CLK");
    let trees = tempfile::tempdir().unwrap();
    let _agents = Agents(vec![
        agent_with_clock(&vhost, &trees.path().join("a"), &devices[0], "+8h"),
        agent_with_clock(&vhost, &trees.path().join("b"), &devices[1], "-1d"),
    ]);
    wait_for_agents(
        || {
            vhost.ctl(&[
                "list_consumers",
                "-p",
                vhost.name(),
                "--quiet",
                "--no-table-headers",
                "queue_name",
            ])
        },
        2,
    );
    let expect = ["--expect", "CLK-1", "--expect", "CLK-2"];
    let mut args = vec!["--operation-id", "601"];
    args.extend(expect);
    let run = scan_factory(&factory, &vhost, &args);
    assert_eq!(
        run.code,
        Some(0),
        "informational: {}\n{}",
        run.stdout,
        run.stderr
    );
    assert!(
        run.stdout
            .contains("device clock is 8 h 0 min ahead of the edge"),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout
            .contains("device clock is 24 h 0 min behind the edge"),
        "{}",
        run.stdout
    );
    // requireClock makes it a failure, of both.
    let mut args = vec!["--operation-id", "602", "--require-clock"];
    args.extend(expect);
    let run = scan_factory(&factory, &vhost, &args);
    assert_eq!(run.code, Some(1), "{}\n{}", run.stdout, run.stderr);
    assert!(run.stdout.contains("0 passed, 2 failed"), "{}", run.stdout);
    assert!(
        run.stdout.contains("requireClock fails it"),
        "{}",
        run.stdout
    );
}

/// Reported on main: with MES down every device was failed and the log
/// said `"result": "0"` for each — an outage read as bad boards.
#[test]
fn an_mes_outage_is_waited_out_and_the_devices_get_their_real_verdicts() {
    let Some(vhost) = TestVhost::new("mes-back") else {
        return;
    };
    let factory = FactoryStandIn::start();
    let devices = two_devices(&factory, "OUT");
    let _fleet = AgentFleet::start(&vhost, &devices, &[]);
    factory.down("/mes/OUT-1");
    factory.down("/mes/OUT-2");
    let f = std::sync::Arc::new(factory);
    let back = {
        let f = f.clone();
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_secs(4));
            f.up("/mes/OUT-1");
            f.up("/mes/OUT-2");
        })
    };
    let run = scan_factory(
        &f,
        &vhost,
        &[
            "--operation-id",
            "801",
            "--expect",
            "OUT-1",
            "--expect",
            "OUT-2",
            "--http-retries",
            "1",
            "--mes-outage-wait",
            "60s",
        ],
    );
    back.join().unwrap();
    assert_eq!(run.code, Some(0), "{}\n{}", run.stdout, run.stderr);
    assert!(
        run.stderr.contains("waiting for MES: OUT-"),
        "{}",
        run.stderr
    );
    assert!(
        run.stdout.contains("2 devices, 2 passed, 0 failed"),
        "{}",
        run.stdout
    );
    let log = f.requests_to("/log");
    assert_eq!(log.len(), 1);
    assert_eq!(log[0].json()["scaninfo"][0]["result"], "1");
}

#[test]
fn an_mes_outage_past_the_wait_reports_no_device_as_failed() {
    let Some(vhost) = TestVhost::new("mes-down") else {
        return;
    };
    let factory = FactoryStandIn::start();
    let devices = two_devices(&factory, "DOWN");
    let _fleet = AgentFleet::start(&vhost, &devices, &[]);
    factory.down("/mes/DOWN-1");
    let run = scan_factory(
        &factory,
        &vhost,
        &[
            "--operation-id",
            "802",
            "--expect",
            "DOWN-1",
            "--expect",
            "DOWN-2",
            "--http-retries",
            "1",
            "--mes-outage-wait",
            "3s",
        ],
    );
    assert_eq!(run.code, Some(3), "{}\n{}", run.stdout, run.stderr);
    assert!(
        run.stdout
            .contains("DOWN-1  UNDECIDED  undecided: MES could not be asked"),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout.contains("1 passed, 0 failed, 1 undecided"),
        "{}",
        run.stdout
    );
    // No log and no pairing: nothing reported as failed, nothing paired.
    assert!(factory.requests_to("/log").is_empty());
    assert!(factory.requests_to("/pair").is_empty());
    let notify = factory.requests_to("/notify")[0].json();
    assert_eq!(notify["scanInfo"], json!([]), "{notify}");
    let error = notify["error"].as_str().unwrap();
    assert!(
        error.starts_with("MES could not be asked about 1 device(s) (DOWN-1)"),
        "{error}"
    );
    // The cause once, not "MES lookup failed: MES lookup for … failed".
    assert!(!error.contains("MES lookup for"), "{error}");
}

#[test]
fn a_mes_url_that_answers_404_for_every_serial_is_named() {
    let Some(vhost) = TestVhost::new("mes-404") else {
        return;
    };
    let factory = FactoryStandIn::start();
    let devices = two_devices(&factory, "NF");
    let _fleet = AgentFleet::start(&vhost, &devices, &[]);
    let wrong = factory.url("/device-info/{sn}");
    let run = scan(&[
        "--mes-url",
        &wrong,
        "--log-url",
        &factory.url("/log"),
        "--notify-url",
        &factory.url("/notify"),
        "--pair-url",
        &factory.url("/pair"),
        "--amqp-url",
        &vhost.url(),
        "--operation-id",
        "901",
        "--expect",
        "NF-1",
        "--expect",
        "NF-2",
    ]);
    assert_eq!(run.code, Some(1), "{}\n{}", run.stdout, run.stderr);
    let asked = factory.url("/device-info/NF-1");
    assert!(
        run.stdout.contains(&format!(
            "hint: every serial looked up (2) was unknown to MES (404): the MES URL may be wrong \
             (check --mes-url); for NF-1 it asked {asked}"
        )),
        "{}",
        run.stdout
    );
}
