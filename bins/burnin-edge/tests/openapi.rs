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

use burnin_testkit::vhost::TestVhost;
use burnin_testkit::{AgentFleet, Device, FactoryStandIn};
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

/// A serve with a token on a vhost of its own, and two devices known to
/// MES answering it.
struct Scene {
    // Dropped in this order: the agents, the serve, then its folder and
    // the stand-in; the vhost last.
    _fleet: AgentFleet,
    serve: Serve,
    dir: tempfile::TempDir,
    factory: FactoryStandIn,
    devices: Vec<Device>,
    _vhost: TestVhost,
}

impl Scene {
    fn start(name: &str, prefix: &str, base: u8, token: &str) -> Option<Scene> {
        let vhost = TestVhost::new(name)?;
        let factory = FactoryStandIn::start();
        let devices = devices(&factory, prefix, 2, base);
        let dir = tempfile::tempdir().unwrap();
        // A cabling plan (SPEC §11.1) placing the first device and the
        // one that never answers, so answers carry `location`.
        let plan = dir.path().join("plan.csv");
        std::fs::write(
            &plan,
            format!(
                "switch,port,location,sn,interface\n\
                 leaf-07,swp1,B3 shelf 1,{prefix}-1,\n\
                 leaf-07,swp2,B3 shelf 2,{prefix}-GONE,\n"
            ),
        )
        .unwrap();
        let serve = Serve::start(
            &vhost.url(),
            &factory,
            &dir.path().join("s.db"),
            Some(token),
            &["--cabling-plan", plan.to_str().unwrap()],
        );
        let fleet = AgentFleet::start(&vhost, &devices, &[]);
        Some(Scene {
            _fleet: fleet,
            serve,
            dir,
            factory,
            devices,
            _vhost: vhost,
        })
    }
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
    let token = "py-client-token";
    let Some(scene) = Scene::start("openapi-client", "PY", 0x0c, token) else {
        return;
    };
    let (factory, dir, serve, present) = (&scene.factory, &scene.dir, &scene.serve, &scene.devices);
    factory.set_mes("PY-GONE", &["02:00:00:0c:ff:01"]);

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

/// Checks answers a live serve gave against the document: argv is the
/// document and a JSON list of `[method, path template, status, body]`.
/// Each body must be valid for the schema documented for that operation and
/// status, every object schema closed (`additionalProperties: false`), so a
/// field the document does not name fails too.
const CHECK_ANSWERS: &str = r##"
import json, sys
import jsonschema
doc = json.load(open(sys.argv[1]))
answers = json.load(open(sys.argv[2]))
def close(node):
    if isinstance(node, dict):
        if "properties" in node:
            node.setdefault("additionalProperties", False)
        for v in node.values():
            close(v)
    elif isinstance(node, list):
        for v in node:
            close(v)
schemas = doc["components"]["schemas"]
close(schemas)
failures = []
for method, path, status, body in answers:
    response = doc["paths"][path][method.lower()]["responses"].get(str(status))
    if response is None:
        failures.append(f"{method} {path} {status}: status not documented")
        continue
    schema = dict(response["content"]["application/json"]["schema"])
    close(schema)
    schema["components"] = {"schemas": schemas}
    for e in jsonschema.Draft202012Validator(schema).iter_errors(body):
        where = "/".join(map(str, e.absolute_path)) or "(top)"
        failures.append(f"{method} {path} {status} at {where}: {e.message}")
print("\n".join(failures))
sys.exit(1 if failures else 0)
"##;

#[test]
fn every_answer_of_a_real_scan_is_what_the_document_says_field_for_field() {
    require(
        "jsonschema (with openapi-spec-validator)",
        &["python3", "-c", "import jsonschema"],
    );
    let token = "answers-token";
    let Some(scene) = Scene::start("openapi-answers", "AN", 0x0d, token) else {
        return;
    };
    let (factory, dir, serve) = (&scene.factory, &scene.dir, &scene.serve);
    // AN-2's MES record names another MAC: it fails, with a `"0"` line for
    // each address; AN-GONE is expected and never answers.
    factory.set_mes("AN-2", &["02:00:00:0d:ff:01"]);
    factory.set_mes("AN-GONE", &["02:00:00:0d:ff:02"]);

    let mut answers: Vec<serde_json::Value> = Vec::new();
    let mut ask =
        |method: &str, template: &str, path: &str, token: Option<&str>, body: Option<&str>| {
            let (status, text) = http(&serve.addr, method, path, token, body.map(str::as_bytes));
            let json: serde_json::Value = serde_json::from_str(&text)
                .unwrap_or_else(|e| panic!("{method} {path}: {status} is not JSON ({e}): {text}"));
            answers.push(serde_json::json!([method, template, status, json]));
            (status, json)
        };
    let scan = r#"{"operationId": 7, "expected": ["AN-1", "AN-2", "AN-GONE"], "windowSecs": 3, "requireLink": true, "requireCabling": false, "requirePcieWidth": true}"#;
    let (status, started) = ask("POST", "/scans", "/scans", Some(token), Some(scan));
    assert_eq!(status, 202, "{started}");
    let (status, _) = ask("POST", "/scans", "/scans", Some(token), Some(scan));
    assert_eq!(status, 409);
    let (status, collecting) = ask("GET", "/scans/{operationId}", "/scans/7", Some(token), None);
    assert_eq!(
        (status, &collecting["state"]),
        (200, &serde_json::json!("collecting"))
    );
    let done = serve.wait_finished("7", std::time::Duration::from_secs(30));
    assert_eq!(done["state"], "done", "{done}");
    let (status, done) = ask("GET", "/scans/{operationId}", "/scans/7", Some(token), None);
    assert_eq!(status, 200);
    let states: Vec<&str> = done["devices"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["state"].as_str().unwrap())
        .collect();
    assert_eq!(states, ["passed", "failed", "failed"], "{done}");
    // Planned places (no LLDP in these fixtures), the rules as asked.
    assert_eq!(
        done["devices"][0]["location"],
        serde_json::json!({"place": "B3 shelf 1", "switch": "leaf-07", "port": "swp1", "planned": true}),
        "{done}"
    );
    assert_eq!(done["devices"][2]["location"]["place"], "B3 shelf 2");
    assert!(done["devices"][1].get("location").is_none(), "{done}");
    assert_eq!(
        (&done["requireCabling"], &done["requirePcieWidth"]),
        (&serde_json::json!(false), &serde_json::json!(true))
    );
    assert!(
        done["replyCounts"].is_object() && done["collected"].is_string(),
        "{done}"
    );
    assert_eq!(
        ask("GET", "/scans", "/scans?limit=5", Some(token), None).0,
        200
    );
    assert_eq!(
        ask("GET", "/devices/{sn}", "/devices/AN-2", Some(token), None).0,
        200
    );
    assert_eq!(ask("GET", "/healthz", "/healthz", None, None).0, 200);
    for (method, template, path, token, body, want) in [
        (
            "POST",
            "/scans",
            "/scans",
            Some(token),
            Some(r#"{"operationId": 8, "windowSecs": 0}"#),
            400,
        ),
        ("GET", "/scans", "/scans?limit=many", Some(token), None, 400),
        (
            "GET",
            "/scans/{operationId}",
            "/scans/%22no-such%22",
            Some(token),
            None,
            404,
        ),
        ("GET", "/scans/{operationId}", "/scans/7", None, None, 401),
        (
            "GET",
            "/devices/{sn}",
            "/devices/AN-1",
            Some("wrong"),
            None,
            401,
        ),
    ] {
        assert_eq!(
            ask(method, template, path, token, body).0,
            want,
            "{method} {path}"
        );
    }

    let doc = dir.path().join("openapi.json");
    std::fs::write(&doc, burnin_service::http::openapi::document()).unwrap();
    let file = dir.path().join("answers.json");
    std::fs::write(&file, serde_json::to_string(&answers).unwrap()).unwrap();
    let out = Command::new("python3")
        .args(["-c", CHECK_ANSWERS])
        .arg(&doc)
        .arg(&file)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "answers the document does not describe:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
