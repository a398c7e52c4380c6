//! `burnin-edge demo` as a real process.

use std::process::Command;

use serde_json::Value;

fn edge() -> Command {
    Command::new(env!("CARGO_BIN_EXE_burnin-edge"))
}

#[test]
fn demo_writes_the_factory_documents_and_a_table() {
    let dir = tempfile::tempdir().unwrap();
    let out = edge()
        .args(["demo", "--window", "1s", "--out-dir"])
        .arg(dir.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    // Four devices fail on purpose: exit 1, as `scan` would.
    assert_eq!(
        out.status.code(),
        Some(1),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for line in [
        "DEMO00003  FAIL    enp4s0f1 02:b1:00:00:03:01 is not in MES; card 02:ee:00:00:00:01 recorded in MES is missing",
        "DEMO00005  FAIL    card 02:b1:00:00:05:09 recorded in MES is missing",
        "DEMO00007  FAIL    serial number unknown to MES",
        "DEMO00012  FAIL    no reply before the window closed",
        "DEMO00001  PASS",
        "operation 1001: 12 devices, 8 passed, 4 failed",
    ] {
        assert!(stdout.contains(line), "missing {line:?} in\n{stdout}");
    }

    let read = |name: &str| -> Value {
        serde_json::from_slice(&std::fs::read(dir.path().join(name)).unwrap()).unwrap()
    };
    let log = read("1001.log.json");
    assert_eq!(log["operationid"], 1001);
    assert_eq!(log["pairInfo"], serde_json::json!([]));
    let scaninfo = log["scaninfo"].as_array().unwrap();
    assert_eq!(scaninfo.len(), 12);
    assert_eq!(
        scaninfo[11],
        serde_json::json!({"macinfo": [], "sn": "DEMO00012", "result": "0"})
    );
    assert_eq!(scaninfo[0]["macinfo"][0]["scanstatus"], "1");
    assert_eq!(scaninfo[0]["result"], "1");

    let pair = read("1001.pair.json");
    assert_eq!(pair["operationId"], 1001);
    assert_eq!(pair["snArray"].as_array().unwrap().len(), 8);

    let notify = read("1001.notify.json");
    assert_eq!(
        notify["scanInfo"][2],
        serde_json::json!({"serialNo": "DEMO00003", "result": "Fail"})
    );
    assert_eq!(notify["scanInfo"][0]["result"], "Success");
    assert!(notify.get("error").is_none());

    let mes = read("mes.json");
    assert!(
        mes.get("DEMO00007").is_none(),
        "the unknown device is not in MES"
    );
}

#[test]
fn demo_json_output_and_bad_flags() {
    let dir = tempfile::tempdir().unwrap();
    let out = edge()
        .args([
            "demo",
            "--devices",
            "3",
            "--window",
            "1s",
            "--json",
            "--out-dir",
        ])
        .arg(dir.path())
        .output()
        .unwrap();
    // The first three devices all pass: exit 0, as `scan` would.
    assert_eq!(out.status.code(), Some(0));
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["operationId"], 1001);
    assert_eq!(doc["state"], "done");
    assert_eq!(doc["devices"].as_array().unwrap().len(), 3);

    for bad in [
        vec!["demo", "--devices", "0"],
        vec!["demo", "--window", "soon"],
        vec!["demo", "--window", "30"],
        vec!["demo", "--window", "30ms"],
        vec!["demo", "--no-such-flag"],
    ] {
        let out = edge().args(&bad).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{bad:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("error:"), "{err}");
        if bad[1] == "--window" {
            // The example given is one that is accepted.
            assert!(err.contains("for example 30s, 2m or 1m30s"), "{err}");
            assert!(!err.contains("for example 30sec or 30ms"), "{err}");
        }
    }
    let help = edge().args(["demo", "--help"]).output().unwrap();
    assert_eq!(help.status.code(), Some(0));
    let help = String::from_utf8_lossy(&help.stdout);
    assert!(
        help.contains("[env: BURNIN_DEVICES=]") && help.contains("[default: 12]"),
        "{help}"
    );
}
