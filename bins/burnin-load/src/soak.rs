//! The soak, `burnin-load soak`: many operations in a row through one
//! `burnin-edge serve` (SQLite state database on disk, `--keep 1h`), each
//! posted as soon as the one before is done. Every `--every` operations it
//! samples the serve's RSS, the state database's size on disk (with its
//! WAL), the mean time per operation over the block, and the live page's
//! replay buffer and board (`burnin_live_events`, `burnin_live_operations`
//! from `/metrics`). It checks that every operation ended `done` with a
//! notification carrying every device and no error, writes the samples as
//! a table and an SVG chart, and judges flatness after warm-up
//! ([`verdict`]). Exit 1 if an operation failed or a curve grew.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use burnin_testkit::FactoryStandIn;

use crate::agents::{self, Sim};
use crate::broker;
use crate::chart::{self, Series};
use crate::record::say;
use crate::sample;
use crate::spawn::{self, Env, Serve};

/// What the soak is asked to do.
pub(crate) struct Soak {
    pub(crate) operations: usize,
    pub(crate) devices: u32,
    pub(crate) every: usize,
    /// `serve --settle` (the early end's wait for a twin).
    pub(crate) settle: humantime::Duration,
    /// `serve --keep`.
    pub(crate) keep: humantime::Duration,
    pub(crate) connections: usize,
    /// Where the chart goes.
    pub(crate) chart: PathBuf,
}

/// One sample, taken after `ops` operations.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Sample {
    pub(crate) ops: usize,
    pub(crate) rss_kib: u64,
    pub(crate) store_bytes: u64,
    /// Mean POST-to-done time over the block before this sample.
    pub(crate) ms_per_op: f64,
    pub(crate) live_events: u64,
    pub(crate) live_operations: u64,
}

/// How much a curve may grow from the end of warm-up to the end and still
/// count as flat.
const RSS_GROWTH: f64 = 0.10;
const TIME_GROWTH: f64 = 0.50;
const STORE_PER_OP_GROWTH: f64 = 0.10;

/// Whether the curves are flat after warm-up: compares the last sample
/// with the first one taken after `warm_up` operations. RSS may grow by
/// 10 %, the time per operation by 50 % (a shared machine's noise), the
/// store's bytes per operation kept by 10 % (with `--keep` longer than the
/// soak every operation is kept, so the file itself grows by design); the
/// replay buffer and the board may not grow at all. Returns one line per
/// curve, and whether all passed.
pub(crate) fn verdict(samples: &[Sample], warm_up: usize, kept_all: bool) -> (Vec<String>, bool) {
    let (Some(from), Some(last)) = (samples.iter().find(|s| s.ops >= warm_up), samples.last())
    else {
        return (vec!["too few samples to judge".into()], false);
    };
    if from.ops == last.ops {
        return (
            vec![format!(
                "too few samples to judge: warm-up ends at {warm_up} operations, the last sample is at {}",
                last.ops
            )],
            false,
        );
    }
    let growth = |a: f64, b: f64| if a > 0.0 { b / a - 1.0 } else { f64::INFINITY };
    let mut lines = Vec::new();
    let mut ok = true;
    let mut judge = |name: &str, a: f64, b: f64, allowed: f64, unit: &str| {
        let g = growth(a, b);
        let pass = g <= allowed || (a == 0.0 && b == 0.0);
        ok &= pass;
        lines.push(format!(
            "{name}: {a:.1} {unit} at {} operations, {b:.1} {unit} at {}: {:+.1} % (at most {:+.0} %) {}",
            from.ops,
            last.ops,
            if g.is_finite() { g * 100.0 } else { 0.0 },
            allowed * 100.0,
            if pass { "flat" } else { "GROWS" }
        ));
    };
    judge(
        "serve RSS",
        from.rss_kib as f64 / 1024.0,
        last.rss_kib as f64 / 1024.0,
        RSS_GROWTH,
        "MiB",
    );
    judge(
        "time per operation",
        from.ms_per_op,
        last.ms_per_op,
        TIME_GROWTH,
        "ms",
    );
    if kept_all {
        judge(
            "store bytes per operation kept",
            from.store_bytes as f64 / from.ops as f64,
            last.store_bytes as f64 / last.ops as f64,
            STORE_PER_OP_GROWTH,
            "B",
        );
    } else {
        judge(
            "store size",
            from.store_bytes as f64 / 1_048_576.0,
            last.store_bytes as f64 / 1_048_576.0,
            STORE_PER_OP_GROWTH,
            "MiB",
        );
    }
    judge(
        "live replay buffer",
        from.live_events as f64,
        last.live_events as f64,
        0.0,
        "events",
    );
    judge(
        "live board",
        from.live_operations as f64,
        last.live_operations as f64,
        0.0,
        "operations",
    );
    (lines, ok)
}

/// Runs it; true if every operation was done and every curve flat.
pub(crate) async fn run(env: &Env, s: &Soak) -> anyhow::Result<bool> {
    if s.every == 0 || s.operations < 2 * s.every {
        bail!(
            "--every {} with --operations {}: give at least two samples' worth of operations",
            s.every,
            s.operations
        );
    }
    let devices: Vec<Sim> = (0..s.devices).map(|i| Sim::new("SOAK", i)).collect();
    let v = broker::vhost("load-soak")?;
    let f = FactoryStandIn::start_on("127.0.0.1:0", false).map_err(anyhow::Error::msg)?;
    for d in &devices {
        let macs: Vec<&str> = d.macs.iter().map(String::as_str).collect();
        f.set_mes(&d.sn, &macs);
    }
    say!(
        "soak: {} operations of {} devices through one serve (--keep {}, --settle {}), sampled every {}",
        s.operations,
        s.devices,
        s.keep,
        s.settle,
        s.every
    );
    let fleet = agents::start_burnin(
        &[v.url()],
        &devices,
        s.connections,
        |_| Duration::ZERO,
        |c| format!("burnin-load soak agents {c}"),
    )
    .await?;
    say!("burnin: {}", fleet.label);
    let db = env.state_dir.join("soak.sqlite3");
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", db.display()));
    }
    let log = env.tmp.path().join("soak-serve.log");
    let token = format!("soak-{:08x}", std::process::id());
    let args: Vec<String> = [
        "--amqp-url",
        &v.url(),
        "--state-db",
        &db.display().to_string(),
        "--keep",
        &s.keep.to_string(),
        "--settle",
        &s.settle.to_string(),
    ]
    .iter()
    .map(|a| (*a).to_owned())
    .collect();
    let port = spawn::free_port()?;
    let serve = Serve::launch(env, &f, port, &token, &args, log, "info")?;
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()?;
    serve
        .wait_healthy(&http, Duration::from_secs(30), |st| st.is_success())
        .await?;
    let expected: Vec<&str> = devices.iter().map(|d| d.sn.as_str()).collect();
    let started = Instant::now();
    let mut samples = Vec::new();
    let mut problems = Vec::new();
    let mut block = Duration::ZERO;
    say!(
        "| operations | serve RSS (MiB) | store on disk (MiB) | ms per operation (block mean) | live replay buffer (events) | live board (operations) |"
    );
    say!("| ---: | ---: | ---: | ---: | ---: | ---: |");
    for i in 1..=s.operations {
        let op = 5_000_000 + i as u64;
        let t0 = Instant::now();
        let body = serde_json::json!({"operationId": op, "expected": expected, "windowSecs": 60});
        let view = serve
            .run_operation(
                &http,
                &body,
                op,
                Duration::from_secs(120),
                Duration::from_millis(2),
            )
            .await?;
        let state = view["state"].as_str().unwrap_or_default();
        block += t0.elapsed();
        if state != "done" {
            problems.push(format!("operation {op} ended {state}"));
        }
        if i % s.every == 0 {
            problems.extend(check_notifications(&f, s.every, &expected));
            let metrics = http
                .get(format!("{}/metrics", serve.base))
                .bearer_auth(&serve.token)
                .send()
                .await
                .context("GET /metrics")?
                .text()
                .await?;
            let sample = Sample {
                ops: i,
                rss_kib: sample::proc_field(serve.pid(), "status", "VmRSS:").unwrap_or(0),
                store_bytes: ["", "-wal"]
                    .iter()
                    .filter_map(|x| std::fs::metadata(format!("{}{x}", db.display())).ok())
                    .map(|m| m.len())
                    .sum(),
                ms_per_op: block.as_secs_f64() * 1000.0 / s.every as f64,
                live_events: gauge(&metrics, "burnin_live_events")?,
                live_operations: gauge(&metrics, "burnin_live_operations")?,
            };
            block = Duration::ZERO;
            say!(
                "| {} | {:.1} | {:.1} | {:.1} | {} | {} |",
                sample.ops,
                sample.rss_kib as f64 / 1024.0,
                sample.store_bytes as f64 / 1_048_576.0,
                sample.ms_per_op,
                sample.live_events,
                sample.live_operations
            );
            samples.push(sample);
        }
    }
    drop(serve);
    fleet.stop().await;
    // A soak shorter than --keep deletes nothing: every operation is still
    // in the store, and its file grows by design.
    let kept_all = started.elapsed() < Duration::from(s.keep);
    let warm_up = (s.operations * 2 / 5).max(s.every);
    let (lines, flat) = verdict(&samples, warm_up, kept_all);
    say!("after warm-up (from {warm_up} operations):");
    for l in &lines {
        say!("  {l}");
    }
    let panels = vec![
        series("serve RSS (MiB)", &samples, |x| x.rss_kib as f64 / 1024.0),
        series("state database on disk (MiB)", &samples, |x| {
            x.store_bytes as f64 / 1_048_576.0
        }),
        series(
            "time per operation (ms, mean of each block)",
            &samples,
            |x| x.ms_per_op,
        ),
        series("live page's replay buffer (events)", &samples, |x| {
            x.live_events as f64
        }),
    ];
    let title = format!(
        "burnin-edge serve soak: {} operations × {} devices, --keep {}",
        s.operations, s.devices, s.keep
    );
    std::fs::write(&s.chart, chart::svg(&title, "operations", &panels))
        .with_context(|| format!("cannot write the chart {}", s.chart.display()))?;
    say!("chart: {}", s.chart.display());
    for p in problems.iter().take(20) {
        say!("PROBLEM: {p}");
    }
    let ok = problems.is_empty() && flat;
    say!(
        "soak: {} ({} problem(s); curves {})",
        if ok { "passed" } else { "FAILED" },
        problems.len(),
        if flat { "flat" } else { "NOT flat" }
    );
    Ok(ok)
}

/// Takes the stand-in's requests and checks the last `n` operations each
/// got one notification naming every device as passing, with no error.
fn check_notifications(f: &FactoryStandIn, n: usize, expected: &[&str]) -> Vec<String> {
    let notes: Vec<serde_json::Value> = f
        .take_requests()
        .into_iter()
        .filter(|r| r.path == "/notify")
        .map(|r| r.json())
        .collect();
    let mut problems = Vec::new();
    if notes.len() != n {
        problems.push(format!(
            "{} notifications for the last {n} operations",
            notes.len()
        ));
    }
    for note in &notes {
        let passed = note["scanInfo"]
            .as_array()
            .map_or(0, |a| a.iter().filter(|d| d["result"] == "Success").count());
        if passed != expected.len() || note.get("error").is_some() {
            problems.push(format!(
                "operation {}: {passed} of {} devices passed; {}",
                note["operationId"],
                expected.len(),
                note["error"]
            ));
        }
    }
    problems
}

fn gauge(metrics: &str, name: &str) -> anyhow::Result<u64> {
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
        .and_then(|v| v.trim().parse::<f64>().ok())
        .map(|v| v as u64)
        .with_context(|| {
            format!("/metrics has no {name}: is this burnin-edge older than the soak?")
        })
}

fn series(title: &str, samples: &[Sample], y: impl Fn(&Sample) -> f64) -> Series {
    Series::one(
        title,
        samples.iter().map(|s| (s.ops as f64, y(s))).collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(ops: usize, rss_mib: u64, ms: f64, events: u64) -> Sample {
        Sample {
            ops,
            rss_kib: rss_mib * 1024,
            store_bytes: ops as u64 * 10_000,
            ms_per_op: ms,
            live_events: events,
            live_operations: 32,
        }
    }

    #[test]
    fn flat_curves_pass_and_each_kind_of_growth_fails() {
        let flat = [
            at(500, 20, 40.0, 30_000),
            at(1000, 30, 41.0, 65_536),
            at(1500, 31, 39.0, 65_536),
            at(2000, 31, 42.0, 65_536),
        ];
        let (lines, ok) = verdict(&flat, 1000, true);
        assert!(ok, "{lines:#?}");
        assert_eq!(lines.len(), 5);

        let mut leak = flat;
        leak[3].rss_kib = 40 * 1024;
        let (lines, ok) = verdict(&leak, 1000, true);
        assert!(!ok);
        assert!(lines[0].ends_with("GROWS"), "{}", lines[0]);

        let mut buffer = flat;
        buffer[3].live_events += 1;
        assert!(!verdict(&buffer, 1000, true).1);

        let mut slower = flat;
        slower[3].ms_per_op = 80.0;
        assert!(!verdict(&slower, 1000, true).1);

        let mut fat = flat;
        fat[3].store_bytes *= 2;
        assert!(!verdict(&fat, 1000, true).1);
        // Pruned: the file itself must stay flat.
        assert!(!verdict(&flat, 1000, false).1);

        assert!(
            !verdict(&flat[..1], 1000, true).1,
            "one sample proves nothing"
        );
    }
}
