//! docs/architecture.md's crate table names every crate of the workspace
//! (and no crate that is gone).

use std::path::Path;

#[test]
fn the_crate_table_lists_every_workspace_member() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let manifest = std::fs::read_to_string(root.join("Cargo.toml")).unwrap();
    let members_line = manifest
        .lines()
        .find(|l| l.trim_start().starts_with("members"))
        .expect("a members line in Cargo.toml");
    let members: Vec<&str> = members_line.split('"').skip(1).step_by(2).collect();
    assert!(members.len() >= 10, "{members:?}");
    let doc = std::fs::read_to_string(root.join("docs/architecture.md")).unwrap();
    let rows: Vec<&str> = doc
        .lines()
        .filter(|l| l.starts_with("| `"))
        .filter_map(|l| l.split('`').nth(1))
        .collect();
    let missing: Vec<_> = members.iter().filter(|m| !rows.contains(m)).collect();
    let stale: Vec<_> = rows
        .iter()
        .filter(|r| r.starts_with("burnin-") || r.starts_with("bins/"))
        .filter(|r| !members.contains(r))
        .collect();
    assert!(
        missing.is_empty() && stale.is_empty(),
        "docs/architecture.md's crate table: missing {missing:?}, not a crate {stale:?}"
    );
}
