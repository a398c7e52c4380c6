//! `GET /openapi.json` checked by real tools against a live `serve`: the
//! document is valid OpenAPI 3.1 (openapi-spec-validator from PyPI) and
//! covers every route; schemathesis generates requests from it (a bounded
//! number per operation) and fails on any 5xx or any response — status,
//! content type, headers, body — the document does not describe; Redocly's
//! linter (npm) passes it with its recommended rules, without a warning; and
//! a Python client generated from it by openapi-python-client (PyPI) runs a
//! scan against a live `serve` with a token. All are installed by
//! `scripts/setup`.

mod support;

use std::path::Path;
use std::process::Command;

use burnin_amqp::testing::TestVhost;
use burnin_testkit::{AgentFleet, FactoryStandIn};
use support::{Serve, devices, http};

fn require(tool: &str, check: &[&str]) {
    let ok = Command::new(check[0])
        .args(&check[1..])
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(ok, "{tool} is not installed; run `bash scripts/setup`");
}

#[test]
fn the_document_is_valid_openapi_3_1_covers_every_route_and_serve_keeps_to_it() {
    require(
        "openapi-spec-validator",
        &["python3", "-c", "import openapi_spec_validator"],
    );
    require("schemathesis", &["schemathesis", "--version"]);
    let Some(vhost) = TestVhost::new("openapi") else {
        return;
    };
    let factory = FactoryStandIn::start();
    factory.set_mes("OA-1", &["02:00:00:0e:00:01"]);
    let dir = tempfile::tempdir().unwrap();
    let serve = Serve::start(&vhost.url(), &factory, &dir.path().join("s.db"), None, &[]);

    let (status, body) = http(&serve.addr, "GET", "/openapi.json", None, None);
    assert_eq!(status, 200);
    let doc: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(doc["openapi"], "3.1.0");
    let paths: Vec<&str> = doc["paths"]
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    for route in [
        "/scans",
        "/scans/{operationId}",
        "/scans/{operationId}/events",
        "/events",
        "/devices/{sn}",
        "/healthz",
        "/metrics",
        "/openapi.json",
        "/",
        "/assets/app.js",
        "/assets/app.css",
    ] {
        assert!(
            paths.contains(&route),
            "{route} is not documented: {paths:?}"
        );
    }
    let file = dir.path().join("openapi.json");
    std::fs::write(&file, &body).unwrap();
    let out = Command::new("python3")
        .args([
            "-c",
            "import json, sys; from openapi_spec_validator import validate; validate(json.load(open(sys.argv[1]))); print('valid')",
        ])
        .arg(&file)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "openapi-spec-validator refused the document:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );

    // Property-based: requests generated from the document, bounded so CI
    // stays quick. The event streams never end, so they are left out here
    // (tests/events.rs covers them); positive-data acceptance is not
    // checked because some rules span fields (directBurn needs operatorId).
    let out = Command::new("schemathesis")
        .arg("run")
        .arg(serve.url("/openapi.json"))
        .args([
            "--max-examples",
            "25",
            "--seed",
            "20261130",
            "--exclude-path-regex",
            "events",
            "--request-timeout",
            "10",
            "--checks",
            "not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance,response_headers_conformance",
        ])
        .current_dir(dir.path())
        .output()
        .unwrap();
    let report = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "schemathesis found responses the document does not describe:\n{report}\n{}\nserve log:\n{}",
        String::from_utf8_lossy(&out.stderr),
        serve.stderr()
    );
    let summary: Vec<&str> = report.lines().filter(|l| l.contains("generated")).collect();
    eprintln!("schemathesis: {summary:?}");
}

#[test]
fn redocly_lints_the_document_with_its_recommended_rules_without_a_problem() {
    require("Redocly CLI (redocly)", &["redocly", "--version"]);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("openapi.json");
    std::fs::write(&file, burnin_service::http::openapi::document()).unwrap();
    // In an empty folder, so no redocly.yaml of the machine's applies.
    let out = Command::new("redocly")
        .args(["lint", "--extends", "recommended", "--format", "json"])
        .arg(&file)
        .current_dir(dir.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let report: serde_json::Value = serde_json::from_str(&stdout)
        .unwrap_or_else(|e| panic!("redocly printed no JSON report ({e}):\n{stdout}\n{stderr}"));
    let problems: Vec<String> = report["problems"]
        .as_array()
        .unwrap_or_else(|| panic!("no problems list in {report}"))
        .iter()
        .map(|p| {
            format!(
                "{} {}: {} at {}",
                p["severity"], p["ruleId"], p["message"], p["location"][0]["pointer"]
            )
        })
        .collect();
    assert!(
        problems.is_empty() && report["totals"]["errors"] == 0 && report["totals"]["warnings"] == 0,
        "redocly lint (recommended) finds problems:\n{}\n{}",
        problems.join("\n"),
        report["totals"]
    );
    assert!(out.status.success(), "redocly lint failed:\n{stderr}");
}

/// Drives one scan through the generated client: `argv` is the base URL,
/// the token, the serials with an agent (comma-separated) and one expected
/// serial without.
const CLIENT_SCAN: &str = r#"
import sys, time
from burnin_client import AuthenticatedClient, Client
from burnin_client.api.scans import create_scan, get_scan, list_scans
from burnin_client.api.live import find_device
from burnin_client.api.service import get_health
from burnin_client.models import (
    DeviceState, Error, Health, Operation, OperationState, Role, ScanRequest,
    ScanStarted, ScanStatus, Target, Verdict,
)

base, token, present, absent = sys.argv[1], sys.argv[2], sys.argv[3].split(","), sys.argv[4]
client = AuthenticatedClient(base_url=base, token=token, raise_on_unexpected_status=True)

started = create_scan.sync(client=client, body=ScanRequest(
    operation_id="py-1", expected=present + [absent], window_secs=4, target=Target.PAIR))
assert isinstance(started, ScanStarted), started
assert started.operation_id == "py-1", started

limit = time.monotonic() + 30
while True:
    op = get_scan.sync(operation_id="py-1", client=client)
    assert isinstance(op, Operation), op
    if op.state in (OperationState.DONE, OperationState.FAILED):
        break
    assert time.monotonic() < limit, op
    time.sleep(0.1)
assert op.state == OperationState.DONE, op
assert op.target == Target.PAIR and op.expected == present + [absent], op
devices = {d.sn: d for d in op.devices}
assert sorted(devices) == sorted(present + [absent]), devices
for sn in present:
    d = devices[sn]
    assert d.state == DeviceState.PASSED and d.result == Verdict.PASS, d
    assert [m.scanstatus for m in d.macinfo] == [ScanStatus.MATCH], d
missing = devices[absent]
assert missing.state == DeviceState.FAILED and missing.result == Verdict.FAIL, missing
assert missing.details, missing
assert {d.kind for d in op.deliveries} == {"log", "pair", "notify"} and all(d.ok for d in op.deliveries), op

listed = list_scans.sync(client=client, limit=5)
assert [o.operation_id for o in listed] == ["py-1"], listed
seen = find_device.sync(sn=present[0], client=client)
assert [(s.operation_id, s.device.state) for s in seen] == [("py-1", DeviceState.PASSED)], seen

unknown = get_scan.sync(operation_id="no-such-operation", client=client)
assert isinstance(unknown, Error) and "no-such-operation" in unknown.error, unknown
wrong = AuthenticatedClient(base_url=base, token="not-" + token, raise_on_unexpected_status=True)
refused = get_scan.sync(operation_id="py-1", client=wrong)
assert isinstance(refused, Error) and "token" in refused.error, refused
health = get_health.sync(client=Client(base_url=base, raise_on_unexpected_status=True))
assert isinstance(health, Health) and health.role == Role.ACTIVE, health
print("scan py-1:", op.state, {sn: str(d.state) for sn, d in devices.items()})
"#;

/// Generates the Python client of `doc` into `dir/burnin_client`, failing
/// on any warning of the generator (a part of the API it left out).
fn generate_python_client(doc: &Path, dir: &Path) {
    // OpenMetrics text is text: the generator only knows text/plain.
    let config = dir.join("client.yaml");
    std::fs::write(
        &config,
        "content_type_overrides:\n  \"application/openmetrics-text; version=1.0.0; charset=utf-8\": text/plain\n",
    )
    .unwrap();
    let out = Command::new("openapi-python-client")
        .args(["generate", "--meta", "none", "--output-path"])
        .arg(dir.join("burnin_client"))
        .arg("--path")
        .arg(doc)
        .arg("--config")
        .arg(&config)
        .output()
        .unwrap();
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success() && !report.to_lowercase().contains("warning"),
        "openapi-python-client did not generate a whole client:\n{report}"
    );
}

#[test]
fn a_python_client_generated_from_the_document_runs_a_scan() {
    require(
        "openapi-python-client",
        &["openapi-python-client", "--version"],
    );
    require(
        "the generated client's dependencies (httpx, attrs, python-dateutil)",
        &["python3", "-c", "import httpx, attrs, dateutil"],
    );
    let Some(vhost) = TestVhost::new("openapi-client") else {
        return;
    };
    let factory = FactoryStandIn::start();
    let present = devices(&factory, "PY", 2, 0x0c);
    factory.set_mes("PY-GONE", &["02:00:00:0c:ff:01"]);
    let dir = tempfile::tempdir().unwrap();
    let token = "py-client-token";
    let serve = Serve::start(
        &vhost.url(),
        &factory,
        &dir.path().join("s.db"),
        Some(token),
        &[],
    );
    let _fleet = AgentFleet::start(&vhost, &present, &[]);

    let (status, body) = http(&serve.addr, "GET", "/openapi.json", None, None);
    assert_eq!(status, 200, "{body}");
    let doc = dir.path().join("openapi.json");
    std::fs::write(&doc, &body).unwrap();
    generate_python_client(&doc, dir.path());

    let sns: Vec<&str> = present.iter().map(|d| d.sn.as_str()).collect();
    let out = Command::new("python3")
        .args(["-c", CLIENT_SCAN])
        .arg(serve.url(""))
        .arg(token)
        .arg(sns.join(","))
        .arg("PY-GONE")
        .env("PYTHONPATH", dir.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "the generated client could not run the scan:\n{stdout}{}\nserve log:\n{}",
        String::from_utf8_lossy(&out.stderr),
        serve.stderr()
    );
    eprintln!("{stdout}");
}
