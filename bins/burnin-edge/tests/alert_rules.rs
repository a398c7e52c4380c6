//! The alert rules shipped in `packaging/prometheus/` against the metrics
//! a real `burnin-edge serve` exports: every metric a rule names exists,
//! every series of the promtool tests is named as the edge names it, every
//! alert has a test that makes it fire, and `promtool test rules` passes
//! (Debian's prometheus package; `scripts/setup` installs it). A rule with
//! a misspelt or removed metric fails here. The broker gauge the rules use
//! is checked going to 0 and back with a real broker.

mod support;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use burnin_testkit::FactoryStandIn;
use burnin_testkit::vhost::TestVhost;
use support::{Serve, http};

fn prometheus_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../packaging/prometheus")
}

/// The sample names a `/metrics` text offers to PromQL: those of its
/// samples, and those its `# TYPE` lines imply for families with no
/// sample yet (a counter `x` is queried as `x_total`, a histogram as
/// `x_bucket`, `x_sum`, `x_count`, an info metric as `x_info`).
fn exported(text: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let mut parts = rest.split_whitespace();
            let (Some(name), Some(kind)) = (parts.next(), parts.next()) else {
                continue;
            };
            let suffixes: &[&str] = match kind {
                "counter" => &["_total"],
                "histogram" => &["_bucket", "_sum", "_count"],
                "info" => &["_info"],
                _ => &[""],
            };
            names.extend(suffixes.iter().map(|s| format!("{name}{s}")));
        } else if !line.starts_with('#') && !line.trim().is_empty() {
            let end = line.find(['{', ' ']).unwrap_or(line.len());
            names.insert(line[..end].to_owned());
        }
    }
    names
}

/// Every `burnin_…` name in the rules (comments left out): metric names,
/// since no label, function or alert of ours is spelt that way.
fn burnin_names(rules: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for line in rules.lines().filter(|l| !l.trim_start().starts_with('#')) {
        let mut rest = line;
        while let Some(at) = rest.find("burnin_") {
            let before = rest[..at].chars().next_back();
            let tail = &rest[at..];
            let end = tail
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == ':'))
                .unwrap_or(tail.len());
            if !before.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_') {
                names.insert(tail[..end].to_owned());
            }
            rest = &tail[end..];
        }
    }
    names
}

/// The metric name of each `series:` of the promtool tests.
fn series_names(tests: &str) -> Vec<String> {
    tests
        .lines()
        .filter_map(|l| l.trim_start().strip_prefix("- series:"))
        .map(|s| {
            let s = s.trim().trim_matches('\'').trim_matches('"');
            s[..s.find('{').unwrap_or(s.len())].to_owned()
        })
        .collect()
}

/// Each `- alert: NAME` of the rules.
fn alerts(rules: &str) -> Vec<String> {
    rules
        .lines()
        .filter_map(|l| l.trim_start().strip_prefix("- alert:"))
        .map(|a| a.trim().to_owned())
        .collect()
}

/// The alerts some promtool test expects to fire (an `alertname:` whose
/// `exp_alerts` is not empty).
fn alerts_tested_firing(tests: &str) -> BTreeSet<String> {
    let lines: Vec<&str> = tests.lines().map(str::trim).collect();
    lines
        .windows(2)
        .filter_map(|w| {
            let name = w[0].strip_prefix("alertname:")?.trim();
            (w[1] == "exp_alerts:").then(|| name.to_owned())
        })
        .collect()
}

fn promtool(args: &[&str]) -> String {
    let out = Command::new("promtool")
        .args(args)
        .current_dir(prometheus_dir())
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "cannot run promtool ({e}): install Debian's prometheus package \
                 (`bash scripts/setup` does)"
            )
        });
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "promtool {args:?} failed:\n{text}");
    text
}

#[test]
fn the_alert_rules_name_only_metrics_the_edge_exports_and_pass_their_promtool_tests() {
    let Some(vhost) = TestVhost::new("alert-rules") else {
        return;
    };
    let factory = FactoryStandIn::start();
    let dir = tempfile::tempdir().unwrap();
    let serve = Serve::start(&vhost.url(), &factory, &dir.path().join("s.db"), None, &[]);
    // One operation first: a family shows its names only once it has a
    // sample (the delivery histogram, operations started).
    let (status, doc) = serve.post(&serde_json::json!({"operationId": 1, "windowSecs": 1}));
    assert_eq!(status, 202, "{doc}");
    serve.wait_finished("1", Duration::from_secs(30));
    let (status, text) = http(&serve.addr, "GET", "/metrics", None, None);
    assert_eq!(status, 200, "{text}");
    let exported = exported(&text);
    for name in [
        "burnin_operations_started_total",
        "burnin_factory_request_duration_seconds_count",
        "burnin_broker_connected",
        "burnin_store_info",
    ] {
        assert!(exported.contains(name), "{name} not in {exported:?}");
    }

    let rules = std::fs::read_to_string(prometheus_dir().join("burnin.rules.yml")).unwrap();
    let tests = std::fs::read_to_string(prometheus_dir().join("burnin.rules.test.yml")).unwrap();

    let used = burnin_names(&rules);
    assert!(used.len() >= 8, "{used:?}");
    let unknown: Vec<&String> = used.difference(&exported).collect();
    assert!(
        unknown.is_empty(),
        "the rules name metrics burnin-edge does not export: {unknown:?}\nit exports: {exported:?}"
    );
    // `up` is Prometheus's own; everything else the tests feed is the edge's.
    let fed: Vec<String> = series_names(&tests)
        .into_iter()
        .filter(|n| n != "up" && !exported.contains(n))
        .collect();
    assert!(
        fed.is_empty(),
        "the promtool tests feed series burnin-edge does not export: {fed:?}"
    );
    let firing = alerts_tested_firing(&tests);
    let untested: Vec<String> = alerts(&rules)
        .into_iter()
        .filter(|a| !firing.contains(a))
        .collect();
    assert!(
        untested.is_empty(),
        "no promtool test makes these alerts fire: {untested:?}"
    );

    promtool(&["check", "rules", "burnin.rules.yml"]);
    let out = promtool(&["test", "rules", "burnin.rules.test.yml"]);
    assert!(out.contains("SUCCESS"), "{out}");
}

/// Polls `series` until it reads `want`.
fn wait_metric(serve: &Serve, series: &str, want: f64) {
    let start = Instant::now();
    loop {
        let got = serve.metric(series);
        if got == Some(want) {
            return;
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "{series} is {got:?}, not {want}, after 30 s:\n{}",
            serve.stderr()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn the_broker_and_store_gauges_follow_a_lost_broker_connection() {
    let Some(vhost) = TestVhost::new("broker-gauge") else {
        return;
    };
    let factory = FactoryStandIn::start();
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("s.db");
    let serve = Serve::start(&vhost.url(), &factory, &db, None, &[]);
    wait_metric(&serve, "burnin_broker_connected", 1.0);
    assert_eq!(serve.metric("burnin_edge_active"), Some(1.0));
    assert_eq!(serve.metric("burnin_store_failing"), Some(0.0));
    assert_eq!(
        serve.metric(&format!(
            r#"burnin_store_info{{kind="sqlite",store="{}"}}"#,
            db.display()
        )),
        Some(1.0)
    );

    // The broker refuses the edge (no permissions on its vhost) and closes
    // its connection: down, and stays down while it reconnects in vain.
    vhost.ctl(&["clear_permissions", "-p", vhost.name(), "guest"]);
    vhost.close_all_connections();
    wait_metric(&serve, "burnin_broker_connected", 0.0);
    assert_eq!(serve.get("/healthz").0, 503);
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(serve.metric("burnin_broker_connected"), Some(0.0));

    // Allowed again: back up.
    vhost.ctl(&[
        "set_permissions",
        "-p",
        vhost.name(),
        "guest",
        ".*",
        ".*",
        ".*",
    ]);
    wait_metric(&serve, "burnin_broker_connected", 1.0);
    assert_eq!(serve.get("/healthz").0, 200);
}
