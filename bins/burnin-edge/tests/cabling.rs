//! SPEC §11.1 end to end: real `burnin-agent run` processes on fixture
//! sysfs trees (LLDP neighbours in `burnin_lldp`, the four PCIe link
//! files), a vhost of their own on the real broker, and the real
//! `burnin-edge scan` and `serve` with a cabling plan.
//!
//! The units, and what the plan says of them:
//!
//! | unit | its fixture | the plan |
//! | --- | --- | --- |
//! | CAB-1 | enp1s0 hears leaf-07 swp9 | CAB-1 enp1s0 on leaf-07 swp7 (B3 shelf 12) |
//! | CAB-2 | enp1s0 listened, heard nobody | CAB-2 on leaf-07 swp8 (B3 shelf 13) |
//! | CAB-3 | enp1s0 hears leaf-07 swp10 | swp10 is B3 shelf 14, for CAB-9 |
//! | CAB-4 | hears leaf-07 swp11 as planned; its card at x4 of x8 | CAB-4 enp1s0 on swp11 (B3 shelf 15) |
//! | OLD-5 | an older agent's reply: no `lldp`, no `pcieLink` | OLD-5 on swp12 (B3 shelf 16) |
//!
//! The last test runs two `serve`s on one PostgreSQL store and kills the
//! active one mid-window: the standby applies the operation's rules.

mod support;

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use burnin_testkit::fixture::Fixture;
use burnin_testkit::vhost::TestVhost;
use burnin_testkit::{FactoryStandIn, binary};
use serde_json::{Value, json};
use support::{Serve, scan_without_panic as scan};

const PLAN: &str = "switch,port,location,sn,interface
leaf-07,swp7,B3 shelf 12,CAB-1,enp1s0
leaf-07,swp8,B3 shelf 13,CAB-2,
leaf-07,swp10,B3 shelf 14,CAB-9,
leaf-07,swp11,B3 shelf 15,CAB-4,enp1s0
leaf-07,swp12,B3 shelf 16,OLD-5,
";

const UNITS: [&str; 5] = ["CAB-1", "CAB-2", "CAB-3", "CAB-4", "OLD-5"];

fn mac(n: usize) -> String {
    format!("02:00:00:00:0c:{n:02x}")
}

/// The LLDPDU leaf-07 sends on `port`.
fn from_leaf07(port: &str) -> Vec<u8> {
    burnin_lldp::Builder::new(4, &[0x44, 0x38, 0x39, 0xff, 0, 7], 5, port.as_bytes(), 120)
        .system_name("leaf-07")
        .build()
}

/// Writes the five fixture trees under `dir` and the MES file (every MAC
/// known), and returns the MES file's path.
fn trees(dir: &Path) -> std::path::PathBuf {
    let slot = "0000:01:00.0";
    for (n, sn) in UNITS.iter().enumerate() {
        let fx = Fixture::new(dir.join(sn))
            .serial(sn)
            .pci_nic("enp1s0", slot, &mac(n + 1), "igb");
        match *sn {
            "CAB-1" => fx.lldp("enp1s0", &[&from_leaf07("swp9")]),
            "CAB-2" => fx.lldp("enp1s0", &[]),
            "CAB-3" => fx.lldp("enp1s0", &[&from_leaf07("swp10")]),
            "CAB-4" => fx.lldp("enp1s0", &[&from_leaf07("swp11")]).pcie_link(
                slot,
                Some(("8.0 GT/s PCIe", 4)),
                Some(("8.0 GT/s PCIe", 8)),
            ),
            _ => fx,
        };
    }
    let mes = dir.join("mes.json");
    let records: serde_json::Map<String, Value> = UNITS
        .iter()
        .enumerate()
        .map(|(n, sn)| (sn.to_string(), json!([mac(n + 1)])))
        .collect();
    std::fs::write(&mes, Value::Object(records).to_string()).unwrap();
    std::fs::write(dir.join("plan.csv"), PLAN).unwrap();
    mes
}

/// The agents, killed on drop.
struct Agents(Vec<Child>);

impl Drop for Agents {
    fn drop(&mut self) {
        for c in &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn start_agents(vhost: &TestVhost, dir: &Path) -> Agents {
    let agent = binary("burnin-agent");
    let agents = Agents(
        UNITS
            .iter()
            .map(|sn| {
                Command::new(&agent)
                    .args(["run", "--amqp-url", &vhost.url(), "--sysfs-root"])
                    .arg(dir.join(sn))
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
        UNITS.len(),
    );
    agents
}

/// Each device's `(sn, result, location, [finding messages])` of a JSON
/// report (`scan --json` or `GET /scans/{id}`).
fn devices(doc: &Value) -> Vec<(String, String, Value, Vec<String>)> {
    doc["devices"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            (
                d["sn"].as_str().unwrap().to_owned(),
                d["result"].as_str().unwrap_or("").to_owned(),
                d.get("location").cloned().unwrap_or(Value::Null),
                d["findings"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|f| f["message"].as_str().unwrap().to_owned())
                    .collect(),
            )
        })
        .collect()
}

fn at(place: &str, port: &str, planned: bool) -> Value {
    json!({"place": place, "switch": "leaf-07", "port": port, "planned": planned})
}

/// The log a scan of the five writes, each unit's one MAC with `status`.
fn log(op: u64, status: [&str; 5]) -> String {
    let entries: Vec<String> = UNITS
        .iter()
        .enumerate()
        .map(|(n, sn)| {
            let result = status[n];
            format!(
                r#"{{"macinfo":[{{"interface":"enp1s0","macaddr":"{}","scanstatus":"{result}"}}],"sn":"{sn}","result":"{result}"}}"#,
                mac(n + 1)
            )
        })
        .collect();
    format!(
        r#"{{"operationid":{op},"pairInfo":[],"scaninfo":[{}]}}"#,
        entries.join(",")
    )
}

#[test]
fn scan_places_units_finds_bad_cabling_and_narrow_links_and_the_rules_fail_them() {
    let Some(vhost) = TestVhost::new("scan-cabling") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let mes = trees(dir.path());
    let plan = dir.path().join("plan.csv");
    let out = dir.path().join("out");

    // A plan that does not parse is refused at start, by line and column.
    let bad = dir.path().join("bad.csv");
    std::fs::write(
        &bad,
        "switch,port,location,sn,interface\nleaf-07,swp7,B3,,\nleaf-07,swp7,B4,,\n",
    )
    .unwrap();
    let run = scan(&[
        "--amqp-url",
        &vhost.url(),
        "--mes-file",
        mes.to_str().unwrap(),
        "--out-dir",
        out.to_str().unwrap(),
        "--operation-id",
        "9100",
        "--cabling-plan",
        bad.to_str().unwrap(),
    ]);
    assert_eq!(run.code, Some(2), "{}\n{}", run.stdout, run.stderr);
    assert!(
        run.stderr.contains(&format!(
            "--cabling-plan {}: line 3, column 1: leaf-07 swp7 is already planned on line 2",
            bad.display()
        )),
        "{}",
        run.stderr
    );

    let _agents = start_agents(&vhost, dir.path());
    let base = |id: &str, extra: &[&str]| -> Vec<String> {
        let mut args: Vec<String> = [
            "--amqp-url",
            &vhost.url(),
            "--mes-file",
            mes.to_str().unwrap(),
            "--out-dir",
            out.to_str().unwrap(),
            "--cabling-plan",
            plan.to_str().unwrap(),
            "--operation-id",
            id,
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        for sn in UNITS {
            args.extend(["--expect".to_owned(), sn.to_owned()]);
        }
        args.extend(extra.iter().map(|s| s.to_string()));
        args
    };
    let run_with = |args: Vec<String>| scan(&args.iter().map(String::as_str).collect::<Vec<_>>());

    // Without the rules: every unit passes; the findings and places say
    // what is wrong and where each is.
    let run = run_with(base("9101", &["--json"]));
    assert_eq!(run.code, Some(0), "{}\n{}", run.stdout, run.stderr);
    let doc: Value = serde_json::from_str(&run.stdout).unwrap();
    let pcie = "PCIe link of 0000:01:00.0 degraded: x4 of x8, 8.0 GT/s of 8.0 GT/s";
    assert_eq!(
        devices(&doc),
        vec![
            (
                "CAB-1".into(),
                "1".into(),
                at("B3 shelf 12", "swp7", true),
                vec!["enp1s0 cabled to leaf-07 swp9, plan says leaf-07 swp7 (B3 shelf 12)".into()]
            ),
            (
                "CAB-2".into(),
                "1".into(),
                at("B3 shelf 13", "swp8", true),
                vec!["no LLDP neighbour on enp1s0, plan says leaf-07 swp8".into()]
            ),
            (
                "CAB-3".into(),
                "1".into(),
                at("B3 shelf 14", "swp10", false),
                vec!["B3 shelf 14 should hold SN CAB-9".into()]
            ),
            (
                "CAB-4".into(),
                "1".into(),
                at("B3 shelf 15", "swp11", false),
                vec![pcie.into()]
            ),
            (
                "OLD-5".into(),
                "1".into(),
                at("B3 shelf 16", "swp12", true),
                vec![]
            ),
        ]
    );
    assert_eq!(doc["devices"][2]["findings"][0]["kind"], "cabling");
    assert_eq!(doc["devices"][3]["findings"][0]["kind"], "pcieLink");
    // The factory's log is what it always was.
    assert_eq!(
        std::fs::read_to_string(out.join("9101.log.json")).unwrap(),
        log(9101, ["1"; 5])
    );

    // With requireCabling and requirePcieWidth: each finding fails its
    // MAC, and the older agent's unconfirmable cabling fails too.
    let run = run_with(base("9102", &["--require-cabling", "--require-pcie-width"]));
    assert_eq!(run.code, Some(1), "{}\n{}", run.stdout, run.stderr);
    for line in [
        "SERIAL  RESULT  LOCATION                     DETAILS",
        "CAB-1   FAIL    B3 shelf 12 (planned)        enp1s0 cabled to leaf-07 swp9, plan says leaf-07 swp7 (B3 shelf 12); requireCabling fails it",
        "CAB-2   FAIL    B3 shelf 13 (planned)        no LLDP neighbour on enp1s0, plan says leaf-07 swp8; requireCabling fails it",
        "CAB-3   FAIL    B3 shelf 14 (leaf-07 swp10)  B3 shelf 14 should hold SN CAB-9; requireCabling fails it",
        "CAB-4   FAIL    B3 shelf 15 (leaf-07 swp11)  PCIe link of 0000:01:00.0 degraded: x4 of x8, 8.0 GT/s of 8.0 GT/s; requirePcieWidth fails it",
        "OLD-5   FAIL    B3 shelf 16 (planned)        enp1s0 did not report LLDP (agent not listening), plan says leaf-07 swp12; requireCabling fails it",
    ] {
        assert!(run.stdout.contains(line), "{line:?} not in\n{}", run.stdout);
    }
    assert_eq!(
        std::fs::read_to_string(out.join("9102.log.json")).unwrap(),
        log(9102, ["0"; 5])
    );
    // One rule at a time: requirePcieWidth alone fails only the narrow card.
    let run = run_with(base("9103", &["--require-pcie-width", "--json"]));
    assert_eq!(run.code, Some(1), "{}\n{}", run.stdout, run.stderr);
    let doc: Value = serde_json::from_str(&run.stdout).unwrap();
    let results: Vec<String> = devices(&doc).into_iter().map(|d| d.1).collect();
    assert_eq!(results, ["1", "1", "1", "0", "1"]);
}

#[test]
fn serve_shows_locations_and_applies_the_cabling_rules_asked_for() {
    let Some(vhost) = TestVhost::new("serve-cabling") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    trees(dir.path());
    let plan = dir.path().join("plan.csv");
    let factory = FactoryStandIn::start();
    for (n, sn) in UNITS.iter().enumerate() {
        factory.set_mes(sn, &[&mac(n + 1)]);
    }

    // A bad plan: serve refuses to start, naming the line and column.
    let bad = dir.path().join("bad.csv");
    std::fs::write(
        &bad,
        "switch,port,location,sn,interface\nleaf-07,swp7,\"B3,,\n",
    )
    .unwrap();
    let out = Command::new(binary("burnin-edge"))
        .args([
            "serve",
            "--amqp-url",
            &vhost.url(),
            "--listen",
            "127.0.0.1:0",
        ])
        .arg("--state-db")
        .arg(dir.path().join("bad.db"))
        .arg("--cabling-plan")
        .arg(&bad)
        .args(["--mes-url", &factory.url("/mes/{sn}")])
        .args(["--log-url", &factory.url("/log")])
        .args(["--notify-url", &factory.url("/notify")])
        .args(["--pair-url", &factory.url("/pair")])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .contains("line 2, column 14: quoted field not closed on this line"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let _agents = start_agents(&vhost, dir.path());
    // requirePcieWidth by default; requireCabling as each request says.
    let serve = Serve::start(
        &vhost.url(),
        &factory,
        &dir.path().join("s.db"),
        None,
        &[
            "--cabling-plan",
            plan.to_str().unwrap(),
            "--require-pcie-width",
        ],
    );
    let mut expected: Vec<&str> = UNITS.to_vec();
    expected.push("CAB-9");
    let (status, body) = serve.post(&json!({
        "operationId": 9201, "expected": expected, "windowSecs": 4, "requireCabling": true
    }));
    assert_eq!(status, 202, "{body}");
    let done = serve.wait_finished("9201", Duration::from_secs(30));
    assert_eq!(
        (&done["requireCabling"], &done["requirePcieWidth"]),
        (&json!(true), &json!(true)),
        "{done}"
    );
    let got = devices(&done);
    let results: Vec<&str> = got.iter().map(|d| d.1.as_str()).collect();
    assert_eq!(results, ["0", "0", "0", "0", "0", "0"], "{done}");
    // The unit that never came still shows where it should be.
    assert_eq!(got[5].0, "CAB-9");
    assert_eq!(got[5].2, at("B3 shelf 14", "swp10", true));
    assert_eq!(
        done["devices"][2]["details"],
        json!(["B3 shelf 14 should hold SN CAB-9; requireCabling fails it"])
    );
    // Where a serial was seen, with its location.
    let (status, seen) = serve.get("/devices/CAB-3");
    assert_eq!(status, 200, "{seen}");
    assert_eq!(
        seen[0]["device"]["location"],
        at("B3 shelf 14", "swp10", false)
    );

    // A request that leaves requireCabling off: findings only.
    let (status, body) = serve.post(&json!({
        "operationId": 9202, "expected": UNITS, "windowSecs": 4, "requirePcieWidth": false
    }));
    assert_eq!(status, 202, "{body}");
    let done = serve.wait_finished("9202", Duration::from_secs(30));
    let got = devices(&done);
    let results: Vec<&str> = got.iter().map(|d| d.1.as_str()).collect();
    assert_eq!(results, ["1", "1", "1", "1", "1"], "{done}");
    assert_eq!(
        got[0].3,
        ["enp1s0 cabled to leaf-07 swp9, plan says leaf-07 swp7 (B3 shelf 12)"]
    );
    // The factory's logs carry none of it.
    let logs = factory.requests_to("/log");
    assert_eq!(String::from_utf8_lossy(&logs[1].body), log(9202, ["1"; 5]));
}

/// Two `serve`s on one PostgreSQL store, both with the plan: the active
/// one is killed mid-window, and the standby that takes the operation over
/// applies the rules the request asked for (recorded with the operation,
/// not configured on the standby).
#[test]
fn a_standby_taking_over_applies_the_cabling_rules_of_the_operation() {
    use burnin_testkit::pg::TestDb;

    let Some(db) = TestDb::new("cabling_takeover") else {
        return;
    };
    let Some(vhost) = TestVhost::new("cabling-takeover") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    trees(dir.path());
    let plan = dir.path().join("plan.csv");
    let factory = FactoryStandIn::start();
    for (n, sn) in UNITS.iter().enumerate() {
        factory.set_mes(sn, &[&mac(n + 1)]);
    }
    let edge = |name: &str| {
        let port = support::free_port();
        Serve::launch(
            &vhost.url(),
            &factory,
            port,
            dir.path().join(format!("{name}.log")),
            None,
            |cmd| {
                cmd.args(["--store", &db.url()])
                    .arg("--cabling-plan")
                    .arg(&plan);
            },
        )
    };
    let _agents = start_agents(&vhost, dir.path());
    let mut a = edge("a");
    a.wait_role("active", Duration::from_secs(20));
    let b = edge("b");
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(b.role(), "standby", "{}", b.stderr());
    // No `expected`: the window runs its whole length, so the kill lands
    // inside it.
    let (status, body) = a.post(&json!({
        "operationId": 9301, "windowSecs": 12,
        "requireCabling": true, "requirePcieWidth": true
    }));
    assert_eq!(status, 202, "{body}");
    a.wait_for("9301", Duration::from_secs(10), |d| {
        d["replies"].as_u64() >= Some(5)
    });
    a.sigkill();
    b.wait_role("active", Duration::from_secs(10));
    assert!(
        b.stderr().contains("resuming an unfinished operation"),
        "{}",
        b.stderr()
    );
    let done = b.wait_finished("9301", Duration::from_secs(40));
    assert_eq!(done["state"], "done", "{done}\n{}", b.stderr());
    assert_eq!(
        (&done["requireCabling"], &done["requirePcieWidth"]),
        (&json!(true), &json!(true))
    );
    let got = devices(&done);
    let by = |sn: &str| got.iter().find(|d| d.0 == sn).unwrap().clone();
    for sn in UNITS {
        assert_eq!(by(sn).1, "0", "{sn} under both rules: {done}");
    }
    assert_eq!(
        by("CAB-1").3,
        [
            "enp1s0 cabled to leaf-07 swp9, plan says leaf-07 swp7 (B3 shelf 12); requireCabling fails it"
        ]
    );
    assert_eq!(
        by("CAB-4").3,
        [
            "PCIe link of 0000:01:00.0 degraded: x4 of x8, 8.0 GT/s of 8.0 GT/s; requirePcieWidth fails it"
        ]
    );
    assert_eq!(by("CAB-3").2, at("B3 shelf 14", "swp10", false));
}
