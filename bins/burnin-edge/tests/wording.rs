//! One wording: a device of each reason the end-to-end setup can produce,
//! through `scan` (its table and `--json`) and through `serve` (`GET
//! /scans/{id}`): every device's reasons read the same everywhere.

mod support;

use std::collections::BTreeMap;
use std::time::Duration;

use burnin_testkit::vhost::TestVhost;
use burnin_testkit::{AgentFleet, Device, FactoryStandIn};
use serde_json::Value;
use support::{Serve, factory_args, scan_without_panic as scan};

/// The serials and what each is made to show.
const SERIALS: [&str; 7] = [
    "OK-1",      // passes: no reasons
    "WRONG-2",   // a MAC not in MES, and a card MES has that is missing
    "MISSING-3", // a card MES has that is missing
    "UNKNOWN-4", // serial number unknown to MES
    "SILENT-5",  // no reply
    "NOCARDS-6", // no cards, none in MES
    "TWICE-7",   // the same MAC on two interfaces
];

fn setup(factory: &FactoryStandIn) -> Vec<Device> {
    factory.set_mes("OK-1", &["02:00:00:00:01:01"]);
    factory.set_mes("WRONG-2", &["02:00:00:00:02:01", "02:00:00:00:02:99"]);
    factory.set_mes("MISSING-3", &["02:00:00:00:03:01", "02:00:00:00:03:02"]);
    factory.set_mes("NOCARDS-6", &[]);
    factory.set_mes("TWICE-7", &["02:00:00:00:07:01"]);
    vec![
        Device::new("OK-1", &["02:00:00:00:01:01"]),
        Device::new("WRONG-2", &["02:00:00:00:02:01", "02:00:00:00:02:02"]),
        Device::new("MISSING-3", &["02:00:00:00:03:01"]),
        Device::new("UNKNOWN-4", &["02:00:00:00:04:01"]),
        Device::new("NOCARDS-6", &[]),
        Device::new("TWICE-7", &["02:00:00:00:07:01", "02:00:00:00:07:01"]),
    ]
}

/// Each device's `details` joined with `; ` (absent: empty).
fn details_by_sn(devices: &Value) -> BTreeMap<String, String> {
    devices
        .as_array()
        .expect("devices")
        .iter()
        .map(|d| {
            let words: Vec<&str> = d["details"]
                .as_array()
                .map(|a| a.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default();
            (d["sn"].as_str().expect("sn").to_owned(), words.join("; "))
        })
        .collect()
}

/// The table's details column by serial (rows `SN  RESULT  DETAILS`).
fn table_by_sn(stdout: &str) -> BTreeMap<String, String> {
    stdout
        .lines()
        .filter_map(|l| {
            let sn = SERIALS.iter().find(|sn| l.starts_with(&format!("{sn} ")))?;
            let rest = l[sn.len()..].trim_start();
            let details = rest
                .strip_prefix("PASS")
                .or_else(|| rest.strip_prefix("FAIL"))?
                .trim();
            Some(((*sn).to_owned(), details.to_owned()))
        })
        .collect()
}

#[test]
fn scan_table_scan_json_and_the_api_word_every_reason_alike() {
    let Some(vhost) = TestVhost::new("wording") else {
        return;
    };
    let factory = FactoryStandIn::start();
    let _fleet = AgentFleet::start(&vhost, &setup(&factory), &[]);
    let url = vhost.url();
    let mut common: Vec<String> = factory_args(&factory);
    common.extend([
        "--amqp-url".into(),
        url.clone(),
        "--window".into(),
        "3s".into(),
    ]);
    for sn in SERIALS {
        common.extend(["--expect".into(), sn.into()]);
    }
    let run_with = |id: &str, json: bool| {
        let mut args: Vec<&str> = common.iter().map(String::as_str).collect();
        args.extend(["--operation-id", id]);
        if json {
            args.push("--json");
        }
        scan(&args)
    };

    let table = run_with("words-table", false);
    assert_eq!(table.code, Some(1), "{}\n{}", table.stdout, table.stderr);
    let from_table = table_by_sn(&table.stdout);

    let json = run_with("words-json", true);
    assert_eq!(json.code, Some(1), "{}\n{}", json.stdout, json.stderr);
    let doc: Value = serde_json::from_str(&json.stdout).expect("scan --json");
    let from_json = details_by_sn(&doc["devices"]);

    let dir = tempfile::tempdir().unwrap();
    let serve = Serve::start(&url, &factory, &dir.path().join("state.db"), None, &[]);
    let (status, body) = serve.post(&serde_json::json!({
        "operationId": "words-api",
        "expected": SERIALS,
        "windowSecs": 3,
    }));
    assert_eq!(status, 202, "{body}");
    let shown = serve.wait_finished("words-api", Duration::from_secs(30));
    let from_api = details_by_sn(&shown["devices"]);

    let want: BTreeMap<String, String> = [
        ("OK-1", ""),
        (
            "WRONG-2",
            "enp2s0 02:00:00:00:02:02 is not in MES; card 02:00:00:00:02:99 recorded in MES is missing",
        ),
        ("MISSING-3", "card 02:00:00:00:03:02 recorded in MES is missing"),
        ("UNKNOWN-4", "serial number unknown to MES"),
        ("SILENT-5", "no reply before the window closed"),
        ("NOCARDS-6", "no network cards reported and none in MES"),
        ("TWICE-7", "enp2s0 02:00:00:00:07:01 duplicates enp1s0"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    assert_eq!(from_table, want, "scan's table:\n{}", table.stdout);
    assert_eq!(from_json, want, "scan --json:\n{}", json.stdout);
    assert_eq!(from_api, want, "GET /scans/words-api:\n{shown}");
}
