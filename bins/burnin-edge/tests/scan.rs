//! `burnin-edge scan` end to end, through real processes: a vhost of its own
//! on the real broker, a factory stand-in on 127.0.0.1, real
//! `burnin-agent run` processes on fixture sysfs trees, and the real
//! `burnin-edge scan` binary.

mod support;

use std::process::Command;
use std::time::Duration;

use burnin_testkit::vhost::TestVhost;
use burnin_testkit::{AgentFleet, Device, FactoryStandIn, binary};
use serde_json::{Value, json};
use support::{FileFactory, Run, factory_args, scan_without_panic as scan};

/// [`scan`] with the FACTORY flags for the stand-in `f`, then the broker
/// flags `broker` (`--amqp-url` …), then `extra`.
fn scan_factory(f: &FactoryStandIn, broker: &[&str], extra: &[&str]) -> Run {
    let factory = factory_args(f);
    let args: Vec<&str> = factory
        .iter()
        .map(String::as_str)
        .chain(broker.iter().copied())
        .chain(extra.iter().copied())
        .collect();
    scan(&args)
}

/// The POSTs as (path, Idempotency-Key), the key's run number shown as
/// `RUN` (a scan without --state-db numbers its run by its start time);
/// every key of one scan names the same run.
fn posts(f: &FactoryStandIn) -> Vec<(String, String)> {
    let mut runs = std::collections::BTreeSet::new();
    let out = f
        .requests()
        .into_iter()
        .filter(|r| r.method == "POST")
        .map(|r| {
            let key = r.header("idempotency-key").unwrap_or_default().to_owned();
            let parts: Vec<&str> = key.rsplitn(3, ':').collect();
            let shown = match parts.as_slice() {
                [kind, run, op] if run.parse::<u64>().is_ok() => {
                    runs.insert(run.to_string());
                    format!("{op}:RUN:{kind}")
                }
                _ => key.clone(),
            };
            (r.path.clone(), shown)
        })
        .collect();
    assert!(runs.len() <= 1, "one scan, one run: {runs:?}");
    out
}

#[test]
fn five_devices_pass_and_the_window_ends_early() {
    let Some(vhost) = TestVhost::new("scan-pass") else {
        return;
    };
    let factory = FactoryStandIn::start();
    let devices: Vec<Device> = (1..=5)
        .map(|i| {
            let a = format!("02:00:00:00:0{i}:01");
            let b = format!("02:00:00:00:0{i}:02");
            factory.set_mes(&format!("PASS-{i}"), &[&b.to_uppercase(), &a]);
            Device::new(&format!("PASS-{i}"), &[&a, &b])
        })
        .collect();
    let _fleet = AgentFleet::start(&vhost, &devices, &[]);
    let url = vhost.url();
    let mut extra = vec!["--operation-id", "501", "--window", "30s"];
    for d in &devices {
        extra.extend(["--expect", d.sn.as_str()]);
    }
    let run = scan_factory(&factory, &["--amqp-url", &url], &extra);
    assert_eq!(run.code, Some(0), "{}\n{}", run.stdout, run.stderr);
    assert!(
        run.elapsed < Duration::from_secs(15),
        "took {:?}: should end as soon as all 5 replied",
        run.elapsed
    );
    assert!(
        run.stdout
            .contains("operation 501: 5 devices, 5 passed, 0 failed"),
        "{}",
        run.stdout
    );
    assert_eq!(
        posts(&factory),
        vec![
            ("/log".into(), "501:RUN:log".into()),
            ("/pair".into(), "501:RUN:pair".into()),
            ("/notify".into(), "501:RUN:notify".into()),
        ]
    );
    let pair = factory.requests_to("/pair")[0].json();
    assert_eq!(
        pair,
        json!({"snArray": ["PASS-1", "PASS-2", "PASS-3", "PASS-4", "PASS-5"], "operationId": 501})
    );
    for r in factory.requests() {
        if r.method == "POST" {
            assert_eq!(r.header("content-type"), Some("application/json"));
        }
    }
    assert_eq!(factory.requests_to("/mes/PASS-3").len(), 1);
}

#[test]
fn failing_devices_give_exact_documents_and_exit_1() {
    let Some(vhost) = TestVhost::new("scan-fail") else {
        return;
    };
    let factory = FactoryStandIn::start();
    factory.set_mes("OK-1", &["02:00:00:00:01:01"]);
    factory.set_mes("WRONG-2", &["02:00:00:00:02:01", "02:00:00:00:02:99"]);
    factory.set_mes("MISSING-3", &["02-00-00-00-03-01", "02:00:00:00:03:02"]);
    let devices = [
        Device::new("OK-1", &["02:00:00:00:01:01"]),
        Device::new("WRONG-2", &["02:00:00:00:02:01", "02:00:00:00:02:02"]),
        Device::new("MISSING-3", &["02:00:00:00:03:01"]),
        Device::new("UNKNOWN-4", &["02:00:00:00:04:01"]),
    ];
    let _fleet = AgentFleet::start(&vhost, &devices, &[]);
    let url = vhost.url();
    let run = scan_factory(
        &factory,
        &["--amqp-url", &url],
        &[
            "--operation-id",
            "op-fail",
            "--window",
            "4s",
            "--expect",
            "OK-1",
            "--expect",
            "WRONG-2",
            "--expect",
            "MISSING-3",
            "--expect",
            "UNKNOWN-4",
            "--expect",
            "SILENT-5",
        ],
    );
    assert_eq!(run.code, Some(1), "{}\n{}", run.stdout, run.stderr);
    let log = &factory.requests_to("/log")[0];
    assert_eq!(
        String::from_utf8_lossy(&log.body),
        concat!(
            r#"{"operationid":"op-fail","pairInfo":[],"scaninfo":["#,
            r#"{"macinfo":[{"interface":"enp1s0","macaddr":"02:00:00:00:01:01","scanstatus":"1"}],"sn":"OK-1","result":"1"},"#,
            r#"{"macinfo":[{"interface":"enp1s0","macaddr":"02:00:00:00:02:01","scanstatus":"1"},"#,
            r#"{"interface":"enp2s0","macaddr":"02:00:00:00:02:02","scanstatus":"0"},"#,
            r#"{"interface":"","macaddr":"02:00:00:00:02:99","scanstatus":"0"}],"sn":"WRONG-2","result":"0"},"#,
            r#"{"macinfo":[{"interface":"enp1s0","macaddr":"02:00:00:00:03:01","scanstatus":"1"},"#,
            r#"{"interface":"","macaddr":"02:00:00:00:03:02","scanstatus":"0"}],"sn":"MISSING-3","result":"0"},"#,
            r#"{"macinfo":[{"interface":"enp1s0","macaddr":"02:00:00:00:04:01","scanstatus":"0"}],"sn":"UNKNOWN-4","result":"0"},"#,
            r#"{"macinfo":[],"sn":"SILENT-5","result":"0"}]}"#
        )
    );
    let notify = &factory.requests_to("/notify")[0];
    assert_eq!(
        String::from_utf8_lossy(&notify.body),
        concat!(
            r#"{"operationId":"op-fail","scanInfo":["#,
            r#"{"serialNo":"OK-1","result":"Success"},{"serialNo":"WRONG-2","result":"Fail"},"#,
            r#"{"serialNo":"MISSING-3","result":"Fail"},{"serialNo":"UNKNOWN-4","result":"Fail"},"#,
            r#"{"serialNo":"SILENT-5","result":"Fail"}]}"#
        )
    );
    assert_eq!(
        factory.requests_to("/pair")[0].json(),
        json!({"snArray": ["OK-1"], "operationId": "op-fail"})
    );
    for line in [
        "WRONG-2    FAIL    enp2s0 02:00:00:00:02:02 is not in MES; card 02:00:00:00:02:99 recorded in MES is missing",
        "MISSING-3  FAIL    card 02:00:00:00:03:02 recorded in MES is missing",
        "UNKNOWN-4  FAIL    serial number unknown to MES",
        "SILENT-5   FAIL    no reply before the window closed",
    ] {
        assert!(run.stdout.contains(line), "{line:?} not in\n{}", run.stdout);
    }
}

#[test]
fn direct_burn_with_operator_and_scan_mode_and_json_output() {
    let Some(vhost) = TestVhost::new("scan-burn") else {
        return;
    };
    let factory = FactoryStandIn::start();
    factory.set_mes("BURN-1", &["02:00:00:00:05:01"]);
    let _fleet = AgentFleet::start(
        &vhost,
        &[Device::new("BURN-1", &["02:00:00:00:05:01"])],
        &[],
    );
    let url = vhost.url();
    let run = scan_factory(
        &factory,
        &["--amqp-url", &url],
        &[
            "--operation-id",
            "77",
            "--target",
            "direct-burn",
            "--operator-id",
            "OPR-9",
            "--scan-mode",
            "2",
            "--expect",
            "BURN-1",
            "--json",
        ],
    );
    assert_eq!(run.code, Some(0), "{}\n{}", run.stdout, run.stderr);
    assert_eq!(
        String::from_utf8_lossy(&factory.requests_to("/directBurn")[0].body),
        r#"{"snArray":["BURN-1"],"operationId":77,"operatorId":"OPR-9","scanMode":2}"#
    );
    assert!(factory.requests_to("/pair").is_empty());
    assert_eq!(
        posts(&factory)
            .iter()
            .map(|p| p.1.as_str())
            .collect::<Vec<_>>(),
        ["77:RUN:log", "77:RUN:directBurn", "77:RUN:notify"]
    );
    let doc: Value = serde_json::from_str(run.stdout.trim()).unwrap();
    assert_eq!(doc["operationId"], 77);
    assert_eq!(doc["devices"][0]["sn"], "BURN-1");
    assert_eq!(doc["devices"][0]["result"], "1");
    assert_eq!(
        doc["replies"],
        json!({"accepted": 1, "duplicate": 0, "conflict": 0, "rejected": 0, "redelivered": 0})
    );
    // One lookup closes no window of the adaptive limit: still the start.
    assert_eq!(doc["mesConcurrencyLimit"], 64, "{doc}");
}

#[test]
fn mes_recovers_but_the_log_api_stays_down() {
    let Some(vhost) = TestVhost::new("scan-down") else {
        return;
    };
    let factory = FactoryStandIn::start();
    factory.set_mes("FLAKY-1", &["02:00:00:00:06:01"]);
    factory.script("/mes/FLAKY-1", &[503, 503]);
    factory.down("/log");
    let _fleet = AgentFleet::start(
        &vhost,
        &[Device::new("FLAKY-1", &["02:00:00:00:06:01"])],
        &[],
    );
    let url = vhost.url();
    let run = scan_factory(
        &factory,
        &["--amqp-url", &url],
        &[
            "--operation-id",
            "88",
            "--expect",
            "FLAKY-1",
            // 2 retries: three attempts, and no outage wait after them.
            "--http-retries",
            "2",
            "--http-timeout",
            "2s",
            "--delivery-outage-wait",
            "0s",
        ],
    );
    assert_eq!(run.code, Some(3), "{}\n{}", run.stdout, run.stderr);
    assert_eq!(
        factory.requests_to("/mes/FLAKY-1").len(),
        3,
        "503, 503, then 200"
    );
    assert_eq!(factory.requests_to("/log").len(), 3, "three attempts");
    assert!(
        factory.requests_to("/pair").is_empty(),
        "no Pair after a failed log"
    );
    let notify = factory.requests_to("/notify");
    assert_eq!(notify.len(), 1);
    let n = notify[0].json();
    assert_eq!(
        n["scanInfo"],
        json!([{"serialNo": "FLAKY-1", "result": "Success"}])
    );
    let error = n["error"].as_str().unwrap();
    assert!(error.starts_with("log could not be delivered"), "{error}");
    assert!(error.contains("503"), "{error}");
    assert!(
        run.stdout.contains("error: log could not be delivered"),
        "{}",
        run.stdout
    );
}

/// Found by the fault campaign (seed 20261203, operations 9, 10, 31, 32):
/// a factory endpoint down for a few seconds outlasted the reporter's
/// attempts and the operation's results never reached the factory. Now
/// the log is sent again (same body, same key) until the endpoint is
/// back, within --delivery-outage-wait, and the Pair and notification
/// follow as if nothing had happened.
#[test]
fn a_factory_outage_of_seconds_is_waited_out_and_nothing_is_lost() {
    let Some(vhost) = TestVhost::new("scan-outage") else {
        return;
    };
    let factory = FactoryStandIn::start();
    factory.set_mes("OUT-1", &["02:00:00:00:06:02"]);
    // Two deliveries' worth of attempts fail (3 attempts each), the third
    // delivery goes through.
    factory.script("/log", &[503; 6]);
    let _fleet = AgentFleet::start(&vhost, &[Device::new("OUT-1", &["02:00:00:00:06:02"])], &[]);
    let url = vhost.url();
    let run = scan_factory(
        &factory,
        &["--amqp-url", &url],
        &[
            "--operation-id",
            "89",
            "--expect",
            "OUT-1",
            "--http-retries",
            "2",
        ],
    );
    assert_eq!(run.code, Some(0), "{}\n{}", run.stdout, run.stderr);
    let logs = factory.requests_to("/log");
    assert_eq!(logs.len(), 7, "6 answered 503, the 7th 200");
    assert!(
        logs.iter().all(|r| r.body == logs[0].body
            && r.header("idempotency-key") == logs[0].header("idempotency-key")),
        "every attempt sends the same body under the same key"
    );
    assert_eq!(factory.requests_to("/pair").len(), 1);
    let notify = factory.requests_to("/notify");
    assert_eq!(notify.len(), 1);
    let n = notify[0].json();
    assert_eq!(
        n,
        json!({"operationId": 89, "scanInfo": [{"serialNo": "OUT-1", "result": "Success"}]})
    );
    assert_eq!(
        run.stderr
            .matches("waiting for the factory: log could not be delivered")
            .count(),
        2,
        "{}",
        run.stderr
    );
}

#[test]
fn file_mode_needs_no_http_server_and_ids_keep_their_json_type() {
    let Some(vhost) = TestVhost::new("scan-files") else {
        return;
    };
    let files = FileFactory::new(r#"{"FILE-1": ["02:00:00:00:07:01"]}"#);
    let _fleet = AgentFleet::start(
        &vhost,
        &[Device::new("FILE-1", &["02:00:00:00:07:01"])],
        &[],
    );
    for (id, json_id) in [("1234", json!(1234)), ("0042", json!("0042"))] {
        let run = scan(&files.scan_args(&vhost.url(), id, &["--expect", "FILE-1"]));
        assert_eq!(run.code, Some(0), "{}\n{}", run.stdout, run.stderr);
        for kind in ["log", "pair", "notify"] {
            let doc = files.read(&format!("{id}.{kind}.json"));
            let key = if kind == "log" {
                "operationid"
            } else {
                "operationId"
            };
            assert_eq!(doc[key], json_id, "{kind}");
        }
    }
}

#[test]
fn unreachable_broker_exits_3_quickly_and_notifies() {
    let files = FileFactory::new("{}");
    let run = scan(&files.scan_args("amqp://guest:hunter2@127.0.0.1:1/%2f", "9", &[]));
    assert_eq!(run.code, Some(3), "{}", run.stderr);
    assert!(run.elapsed < Duration::from_secs(10), "{:?}", run.elapsed);
    assert!(
        run.stderr.contains("the broker could not be used"),
        "{}",
        run.stderr
    );
    assert!(!run.stderr.contains("hunter2") && !run.stdout.contains("hunter2"));
    let notify = files.read("9.notify.json");
    assert!(
        notify["error"].as_str().unwrap().contains("broker"),
        "{notify}"
    );
    assert!(
        !files.out.join("9.log.json").exists(),
        "nothing scanned, nothing logged"
    );
    // No empty result table: the error (stderr) and what became of the
    // notification (stdout), nothing else.
    assert!(!run.stdout.contains("SERIAL"), "{}", run.stdout);
    assert_eq!(
        run.stdout.trim(),
        "operation 9: not started; the notification with the error was delivered"
    );
}

#[test]
fn an_operation_with_no_roster_and_no_reply_exits_4_and_says_so() {
    let Some(vhost) = TestVhost::new("scan-empty") else {
        return;
    };
    let files = FileFactory::new("{}");
    let url = vhost.url();
    // No agent on this vhost and no --expect.
    let run = scan(&files.scan_args(&url, "31", &["--window", "1s"]));
    assert_eq!(run.code, Some(4), "{}\n{}", run.stdout, run.stderr);
    assert!(
        run.stdout
            .starts_with("no device answered and none was expected"),
        "{}",
        run.stdout
    );
    let run = scan(&files.scan_args(&url, "32", &["--window", "1s", "--json"]));
    assert_eq!(run.code, Some(4), "{}\n{}", run.stdout, run.stderr);
    let doc: Value = serde_json::from_str(run.stdout.trim()).unwrap();
    assert_eq!(doc["state"], "done");
    assert_eq!(doc["devices"], json!([]));
    assert_eq!(
        doc["replies"],
        json!({"accepted": 0, "duplicate": 0, "conflict": 0, "rejected": 0, "redelivered": 0})
    );
    // The factory still gets the (empty) log and the notification, byte
    // for byte what an HTTP endpoint would receive.
    assert_eq!(
        std::fs::read_to_string(files.out.join("32.notify.json")).unwrap(),
        r#"{"operationId":32,"scanInfo":[]}"#
    );
    assert!(!files.out.join("32.pair.json").exists(), "nothing to pair");
}

#[test]
fn bad_arguments_exit_2_naming_the_flag() {
    let files = FileFactory::new("{}");
    let bad_expect = files.dir().join("expect.txt");
    std::fs::write(&bad_expect, "GOOD-1\n# comment\n\nBAD SERIAL\n").unwrap();
    let m = files.mes.to_str().unwrap();
    let o = files.out.to_str().unwrap();
    let amqp = "amqp://guest:guest@127.0.0.1:5672/%2f";
    let e = bad_expect.to_str().unwrap();
    // `--amqp-url amqp --mes-file m --out-dir o --operation-id 1`, then `extra`.
    let with = |extra| files.scan_args(amqp, "1", extra);
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (files.scan_args("http://x/", "1", &[]), "--amqp-url"),
        (files.scan_args("not a url", "1", &[]), "--amqp-url"),
        (
            vec!["--amqp-url", amqp, "--operation-id", "1"],
            "no factory configured",
        ),
        (
            vec!["--amqp-url", amqp, "--mes-file", m, "--operation-id", "1"],
            "--out-dir",
        ),
        (
            vec![
                "--amqp-url",
                amqp,
                "--mes-url",
                "http://mes/api/device",
                "--log-url",
                "http://f/log",
                "--notify-url",
                "http://f/n",
                "--pair-url",
                "http://f/p",
                "--operation-id",
                "1",
            ],
            "{sn}",
        ),
        (
            vec![
                "--amqp-url",
                amqp,
                "--mes-url",
                "http://mes/{sn}",
                "--log-url",
                "http://f/log",
                "--notify-url",
                "http://f/n",
                "--operation-id",
                "1",
            ],
            "--pair-url",
        ),
        (with(&["--expect-file", "/nonexistent/x"]), "--expect-file"),
        (with(&["--expect-file", e]), "line 4"),
        (with(&["--window", "5 parsecs"]), "--window"),
        (with(&["--window", "2h"]), "--window"),
        (with(&["--window", "500ms"]), "between 1s and 1h"),
        (
            vec![
                "--amqp-url",
                "amqps://u:hunter2@127.0.0.1/%2f",
                "--amqp-ca-file",
                "/nonexistent/ca.pem",
                "--mes-file",
                m,
                "--out-dir",
                o,
                "--operation-id",
                "1",
            ],
            "--amqp-ca-file /nonexistent/ca.pem",
        ),
        (files.scan_args(amqp, "", &[]), "--operation-id"),
        (with(&["--target", "direct-burn"]), "--operator-id"),
        (
            vec![
                "--amqp-url",
                amqp,
                "--mes-file",
                "/nonexistent.json",
                "--out-dir",
                o,
                "--operation-id",
                "1",
            ],
            "--mes-file",
        ),
        (
            vec!["--amqp-url", amqp, "--mes-file", m, "--out-dir", o],
            "--operation-id",
        ),
        (with(&["--expect", "A B"]), "--expect"),
    ];
    for (case, needle) in cases {
        let run = scan(&case);
        assert_eq!(run.code, Some(2), "{case:?}: {}", run.stderr);
        assert!(
            run.stderr.contains(needle),
            "{case:?}: {needle:?} not in {}",
            run.stderr
        );
        assert!(!run.stderr.contains("hunter2"));
    }
}

/// SPEC §10.1 end to end: real agents on fixture trees that carry a
/// software-changed address (with the card's permanent one), a cable
/// pulled out, and a card with no driver; `scan --require-link` shows the
/// findings in the table and in `--json`, compares the permanent address,
/// and writes the seed's log format.
#[test]
fn hardware_truth_reaches_the_table_and_the_json() {
    use burnin_testkit::fixture::{Fixture, PciIds};
    use std::process::{Child, Stdio};

    let Some(vhost) = TestVhost::new("scan-hwtruth") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    // HW-1: software set the current address; the burned-in one is in MES.
    // A second card sits on the bus with no driver; MES expects it.
    Fixture::new(dir.path().join("hw1"))
        .serial("HW-1")
        .pci_nic("enp1s0", "0000:01:00.0", "02:00:00:00:08:01", "igb")
        .set_address("enp1s0", "52:54:00:00:08:99")
        .pci_device("0000:03:00.0", PciIds::I210, None);
    // HW-2: its only card has no carrier.
    Fixture::new(dir.path().join("hw2"))
        .serial("HW-2")
        .pci_nic("enp1s0", "0000:01:00.0", "02:00:00:00:08:02", "igb")
        .link_state("enp1s0", Some(false), "down", Some(-1));
    let mes = dir.path().join("mes.json");
    std::fs::write(
        &mes,
        r#"{"HW-1": ["02:00:00:00:08:01", "02:00:00:00:08:03"], "HW-2": ["02:00:00:00:08:02"]}"#,
    )
    .unwrap();
    struct Kill(Vec<Child>);
    impl Drop for Kill {
        fn drop(&mut self) {
            for c in &mut self.0 {
                let _ = c.kill();
                let _ = c.wait();
            }
        }
    }
    let agent = binary("burnin-agent");
    let _agents = Kill(
        ["hw1", "hw2"]
            .iter()
            .map(|d| {
                Command::new(&agent)
                    .args(["run", "--amqp-url", &vhost.url(), "--sysfs-root"])
                    .arg(dir.path().join(d))
                    .env("RUST_LOG", "warn")
                    .stdin(Stdio::null())
                    .stdout(Stdio::null())
                    .spawn()
                    .unwrap()
            })
            .collect(),
    );
    burnin_testkit::wait_for_agents(
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
    let out = dir.path().join("out");
    let base = |id: &'static str| -> Vec<String> {
        [
            "--amqp-url",
            &vhost.url(),
            "--mes-file",
            mes.to_str().unwrap(),
            "--out-dir",
            out.to_str().unwrap(),
            "--expect",
            "HW-1",
            "--expect",
            "HW-2",
            "--require-link",
            "--operation-id",
            id,
        ]
        .iter()
        .map(|s| s.to_string())
        .collect()
    };
    let owned = base("8801");
    let run = scan(&owned.iter().map(String::as_str).collect::<Vec<_>>());
    assert_eq!(run.code, Some(1), "{}\n{}", run.stdout, run.stderr);
    let line = |sn: &str| -> String {
        run.stdout
            .lines()
            .find(|l| l.starts_with(sn))
            .unwrap_or_else(|| panic!("no {sn} row in {}", run.stdout))
            .to_owned()
    };
    assert!(
        line("HW-1").contains("card 02:00:00:00:08:03 recorded in MES is missing")
            && line("HW-1").contains("enp1s0: MAC overridden by software (current 52:54:00:00:08:99)")
            && line("HW-1").contains(
                "network card at 0000:03:00.0 (8086:1533) has no driver; likely the missing card 02:00:00:00:08:03"
            ),
        "{}",
        run.stdout
    );
    assert!(
        line("HW-2").contains("enp1s0 02:00:00:00:08:02 has no link (requireLink)"),
        "{}",
        run.stdout
    );
    // The log: the permanent address, the seed's format.
    let log = std::fs::read_to_string(out.join("8801.log.json")).unwrap();
    assert_eq!(
        log,
        concat!(
            r#"{"operationid":8801,"pairInfo":[],"scaninfo":["#,
            r#"{"macinfo":[{"interface":"enp1s0","macaddr":"02:00:00:00:08:01","scanstatus":"1"},"#,
            r#"{"interface":"","macaddr":"02:00:00:00:08:03","scanstatus":"0"}],"sn":"HW-1","result":"0"},"#,
            r#"{"macinfo":[{"interface":"enp1s0","macaddr":"02:00:00:00:08:02","scanstatus":"0"}],"sn":"HW-2","result":"0"}]}"#
        )
    );

    let mut owned = base("8802");
    owned.push("--json".into());
    let run = scan(&owned.iter().map(String::as_str).collect::<Vec<_>>());
    assert_eq!(run.code, Some(1), "{}\n{}", run.stdout, run.stderr);
    let doc: Value = serde_json::from_str(&run.stdout).unwrap();
    let kinds = |n: usize| -> Vec<&str> {
        doc["devices"][n]["findings"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f["kind"].as_str().unwrap())
            .collect()
    };
    assert_eq!(kinds(0), ["macOverridden", "noDriver"]);
    assert_eq!(kinds(1), ["noLink"]);
    assert_eq!(
        doc["devices"][1]["findings"][0]["message"],
        "enp1s0: no link (no carrier); requireLink fails it"
    );
}

/// SPEC §10.3: several `--amqp-url` values (a comma list, as in
/// `BURNIN_AMQP_URL`, and the flag repeated) are the nodes of one cluster;
/// a node that refuses connections is passed over for one that works,
/// whichever order they are tried in.
#[test]
fn several_amqp_urls_fail_over_past_a_dead_node() {
    let Some(vhost) = TestVhost::new("scan-nodes") else {
        return;
    };
    let factory = FactoryStandIn::start();
    factory.set_mes("NODES-1", &["02:00:00:00:51:01"]);
    let devices = [Device::new("NODES-1", &["02:00:00:00:51:01"])];
    let _fleet = AgentFleet::start(&vhost, &devices, &[]);
    let url = vhost.url();
    assert!(url.contains(":5672/"), "{url}");
    let dead = url.replace(":5672/", ":1/");
    let comma_list = format!("{dead},{url}");
    for (op, broker) in [
        ("511", vec!["--amqp-url", &comma_list]),
        ("512", vec!["--amqp-url", &dead, "--amqp-url", &url]),
    ] {
        let run = scan_factory(
            &factory,
            &broker,
            &[
                "--operation-id",
                op,
                "--window",
                "20s",
                "--expect",
                "NODES-1",
            ],
        );
        assert_eq!(run.code, Some(0), "{}\n{}", run.stdout, run.stderr);
        assert!(
            run.stdout
                .contains(&format!("operation {op}: 1 devices, 1 passed")),
            "{}",
            run.stdout
        );
        assert!(!run.stderr.contains("guest:guest"), "{}", run.stderr);
    }
}
