//! Keeps `docs/protocol.md`'s HTTP API section true to the API: every
//! route of `GET /openapi.json` is in its route table (and every route of
//! the table is in the document), and its `GET /scans/{id}` example
//! matches the document's operation schema — every required field there,
//! each of the right type, and no field the API does not have (checked
//! with Python's `jsonschema`, installed with openapi-spec-validator by
//! `scripts/setup`). burnin-testkit's `protocol_doc.rs` checks the rest of
//! the file with burnin-core's parsers.

use std::collections::BTreeSet;
use std::process::Command;

use serde_json::Value;

const DOC: &str = include_str!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../docs/protocol.md"
));

/// `METHOD /path` of each route of the route table (the first column's
/// backticked items; a query such as `?limit=N` left off).
fn table_routes() -> BTreeSet<String> {
    let section = DOC
        .split("\n## ")
        .find(|s| s.contains("`burnin-edge serve` HTTP API"))
        .expect("docs/protocol.md has a section on the serve HTTP API");
    let mut routes = BTreeSet::new();
    for line in section.lines().filter(|l| l.starts_with("| `")) {
        let first = line.split(" | ").next().unwrap_or_default();
        for item in first.trim_start_matches("| ").split(", ") {
            let route = item.trim().trim_matches('`');
            let route = route.split('?').next().unwrap_or(route);
            routes.insert(route.to_owned());
        }
    }
    routes
}

fn document() -> Value {
    serde_json::from_str(&burnin_service::http::openapi::document()).unwrap()
}

#[test]
fn every_route_of_the_api_is_in_the_route_table_and_no_other() {
    let doc = document();
    let mut api = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for method in item.as_object().unwrap().keys() {
            api.insert(format!("{} {path}", method.to_ascii_uppercase()));
        }
    }
    assert!(api.len() >= 12, "{api:?}");
    let table = table_routes();
    let missing: Vec<_> = api.difference(&table).collect();
    assert!(
        missing.is_empty(),
        "routes of /openapi.json missing from docs/protocol.md's route table: {missing:?}"
    );
    let extra: Vec<_> = table.difference(&api).collect();
    assert!(
        extra.is_empty(),
        "routes in docs/protocol.md's route table that /openapi.json does not have: {extra:?}"
    );
}

/// The body of the one ```json `tag` block.
fn block(tag: &str) -> String {
    let open = format!("```json {tag}\n");
    let mut found = DOC.match_indices(&open);
    let (at, _) = found
        .next()
        .unwrap_or_else(|| panic!("docs/protocol.md has no ```json {tag} block"));
    assert!(found.next().is_none(), "two ```json {tag} blocks");
    let rest = &DOC[at + open.len()..];
    rest[..rest.find("```").unwrap()].trim().to_owned()
}

/// Validates `example` against the component schema `name` of the OpenAPI
/// document, every object schema closed (`additionalProperties: false`);
/// the errors, one per line.
fn schema_errors(name: &str, example: &str) -> String {
    let dir = tempfile::tempdir().unwrap();
    let doc = dir.path().join("openapi.json");
    std::fs::write(&doc, burnin_service::http::openapi::document()).unwrap();
    let ex = dir.path().join("example.json");
    std::fs::write(&ex, example).unwrap();
    let script = r##"
import json, sys
import jsonschema
doc = json.load(open(sys.argv[1]))
example = json.load(open(sys.argv[2]))
schemas = doc["components"]["schemas"]
def close(node):
    if isinstance(node, dict):
        if "properties" in node:
            node.setdefault("additionalProperties", False)
        for v in node.values():
            close(v)
    elif isinstance(node, list):
        for v in node:
            close(v)
close(schemas)
schema = {"$ref": "#/components/schemas/" + sys.argv[3], "components": {"schemas": schemas}}
validator = jsonschema.Draft202012Validator(schema)
for e in sorted(validator.iter_errors(example), key=str):
    print("/".join(map(str, e.absolute_path)) or "(top)", ":", e.message)
"##;
    let out = Command::new("python3")
        .args(["-c", script])
        .arg(&doc)
        .arg(&ex)
        .arg(name)
        .output()
        .unwrap_or_else(|e| panic!("python3 is needed: {e}"));
    assert!(
        out.status.success(),
        "python3 with jsonschema is needed (run `bash scripts/setup`): {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn the_operation_example_is_what_the_api_answers() {
    let example = block("operation");
    let errors = schema_errors("Operation", &example);
    assert!(
        errors.is_empty(),
        "docs/protocol.md's GET /scans/{{id}} example does not match the API's operation:\n{errors}"
    );
    // The check itself finds a field left out and one the API does not have.
    let mut doc: Value = serde_json::from_str(&example).unwrap();
    doc.as_object_mut().unwrap().remove("lastEventId");
    doc["devices"][0]["colour"] = "green".into();
    let errors = schema_errors("Operation", &doc.to_string());
    assert!(
        errors.contains("'lastEventId' is a required property"),
        "{errors}"
    );
    assert!(errors.contains("'colour' was unexpected"), "{errors}");
}
