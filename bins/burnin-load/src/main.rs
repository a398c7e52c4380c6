//! # burnin-load
//!
//! The load harness: burnin against the original Python design, side by
//! side, in one run, on the local RabbitMQ.
//!
//! ```text
//! cargo build --release -p burnin-edge -p burnin-agent -p burnin-load
//! target/release/burnin-load            # every scenario (about 5 minutes here)
//! target/release/burnin-load --quick    # 200 devices at 20 ms, both sides
//! target/release/burnin-load fault      # 1,000 devices, connections closed mid-window
//! ```
//!
//! Each scenario gets a factory stand-in (MES with a latency knob that
//! applies to MES lookups only; `/log`, `/pair`, `/notify` answer at once),
//! simulated agents on a vhost of their own, then the real `burnin-edge
//! scan` binary (found next to this one) with `--expect-file` of every
//! serial. **Command to notification** is the time from starting the
//! `burnin-edge` (or `seed_edge.py`) process to the stand-in receiving the
//! `/notify` POST; the process's whole run time is shown too. The bound is
//! `devices × latency / 64` (burnin's MES concurrency).
//!
//! The baseline is `../shared/baseline/seed_edge.py` (Python, pika,
//! requests; needs `pip install pika requests`) on a vhost of its own (its
//! command has no expiration and it consumes `hwinfo_queue` without an
//! operation filter, so it must never share a vhost with burnin). Its
//! agents: for 200 devices, 200 real `seed_agent.py` processes (one per
//! device, as deployed); for 1,000 devices, simulated agents that answer
//! with the seed's exact reply format (1,000 Python processes would need
//! about 23 GB). The table says which.
//!
//! burnin's agents: for 200 and 1,000 devices, one burnin-amqp connection
//! per device (see [`agents`]); for 10,000, one AMQP channel per device,
//! 100 per connection, labelled as such. Past that, run several harness
//! processes (each holds its share of the connections), or spread the
//! agents over the nodes of a RabbitMQ cluster; the broker needs an
//! open-file limit above the connection count (`rabbitmqctl status`,
//! "Sockets … limit").
#![allow(clippy::print_stdout, clippy::print_stderr)]

mod agents;
mod broker;
mod factory;

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{ExitCode, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use burnin_amqp::testing::TestVhost;
use clap::{Parser, Subcommand};

use agents::{Fleet, Sim};
use factory::{Factory, Hit};

/// MES lookups burnin-edge runs at once (its default).
const MES_CONCURRENCY: u32 = 64;

/// burnin's load harness: burnin and the Python baseline side by side.
#[derive(Debug, Parser)]
#[command(name = "burnin-load", version)]
struct Cli {
    #[command(subcommand)]
    command: Option<Cmd>,
    /// Only 200 devices at 20 ms, both sides (for scripts/bench).
    #[arg(long)]
    quick: bool,
    /// Leave out the 10,000-device scenario.
    #[arg(long)]
    no_10k: bool,
    /// Only the 10,000-device scenario (for profiling it).
    #[arg(long, conflicts_with_all = ["quick", "no_10k"])]
    only_10k: bool,
    /// Devices per connection in the 10,000-device scenario.
    #[arg(long, default_value_t = 100)]
    per_connection: usize,
    /// Where seed_edge.py and seed_agent.py are.
    #[arg(long, value_name = "DIR", default_value = "../shared/baseline")]
    baseline_dir: PathBuf,
    /// Where burnin-edge and burnin-agent are (default: next to this binary).
    #[arg(long, value_name = "DIR")]
    bin_dir: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// 1,000 devices; the edge's connection and a tenth of the agents' are
    /// closed by the broker mid-window; every device must be reported
    /// exactly once.
    Fault {
        /// Devices.
        #[arg(long, default_value_t = 1000)]
        devices: u32,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(3);
        }
    };
    match rt.block_on(run(cli)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(3)
        }
    }
}

struct Env {
    edge: PathBuf,
    agent: PathBuf,
    baseline: PathBuf,
    tmp: tempfile::TempDir,
}

async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let nofile = broker::raise_nofile();
    let bin_dir = match cli.bin_dir.clone() {
        Some(d) => d,
        None => std::env::current_exe()?
            .parent()
            .context("this binary has no directory")?
            .to_path_buf(),
    };
    let env = Env {
        edge: bin_dir.join("burnin-edge"),
        agent: bin_dir.join("burnin-agent"),
        baseline: cli.baseline_dir.clone(),
        tmp: tempfile::tempdir()?,
    };
    for b in [&env.edge, &env.agent] {
        if !b.exists() {
            bail!(
                "{} not found; build it first: cargo build --release -p burnin-edge -p burnin-agent -p burnin-load",
                b.display()
            );
        }
    }
    // Fail before minutes of work, not after.
    drop(broker::vhost("load-check")?);
    match cli.command {
        Some(Cmd::Fault { devices }) => {
            need_fds(nofile, u64::from(devices))?;
            broker::check_socket_limit(u64::from(devices) + 1)?;
            fault(&env, devices).await
        }
        None => {
            check_python(&env.baseline)?;
            let biggest = if cli.quick { 400 } else { 2000 };
            need_fds(nofile, biggest)?;
            broker::check_socket_limit(biggest)?;
            table(&env, &cli).await
        }
    }
}

fn need_fds(have: u64, devices: u64) -> anyhow::Result<()> {
    if have < devices + 100 {
        bail!(
            "this process may open only {have} files and needs one socket per simulated agent ({devices}); \
             raise the limit (`ulimit -n 20000`) and try again"
        );
    }
    Ok(())
}

fn check_python(dir: &Path) -> anyhow::Result<()> {
    for f in ["seed_edge.py", "seed_agent.py"] {
        if !dir.join(f).exists() {
            bail!(
                "{} not found; give --baseline-dir (the folder with the Python baseline)",
                dir.join(f).display()
            );
        }
    }
    let ok = std::process::Command::new("python3")
        .args(["-c", "import pika, requests"])
        .stderr(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    if !ok {
        bail!(
            "the baseline needs Python 3 with pika and requests: `python3 -m pip install pika requests`"
        );
    }
    Ok(())
}

fn sims(prefix: &str, range: std::ops::Range<u32>) -> Vec<Sim> {
    range.map(|i| Sim::new(prefix, i)).collect()
}

fn factory_for(devices: &[Sim]) -> anyhow::Result<Factory> {
    let f = Factory::start()?;
    for d in devices {
        f.set_mes(&d.sn, &d.macs);
    }
    Ok(f)
}

/// One timed run of an edge.
#[derive(Debug, Clone, Default)]
struct Timing {
    /// Process start → the stand-in received /notify.
    notify_s: Option<f64>,
    /// Process start → exit.
    total_s: f64,
    /// Devices in the /log, and how many passed.
    logged: usize,
    passed: usize,
    /// Where the time went.
    phases: String,
    problem: Option<String>,
}

fn secs(d: Duration) -> f64 {
    d.as_secs_f64()
}

fn analyse(t0: Instant, hits: &[Hit], expected: usize) -> Timing {
    let since = |i: Instant| secs(i.saturating_duration_since(t0));
    let mes: Vec<&Hit> = hits
        .iter()
        .filter(|h| h.route == "/mes" || h.route == "/device_info")
        .collect();
    let first = |route: &str| hits.iter().find(|h| h.route == route);
    let mut t = Timing {
        notify_s: first("/notify").map(|h| since(h.at)),
        ..Timing::default()
    };
    if let Some(log) = first("/log") {
        let v: serde_json::Value = serde_json::from_slice(&log.body).unwrap_or_default();
        if let Some(infos) = v.get("scaninfo").and_then(|s| s.as_array()) {
            t.logged = infos.len();
            t.passed = infos.iter().filter(|i| i["result"] == "1").count();
        }
    }
    let mut p = String::new();
    if let (Some(a), Some(b)) = (
        mes.iter().map(|h| h.at).min(),
        mes.iter().map(|h| h.done).max(),
    ) {
        let _ = write!(
            p,
            "first MES GET {:.3}s, last MES answer {:.3}s ({} GETs)",
            since(a),
            since(b),
            mes.len()
        );
    }
    for route in ["/log", "/pair", "/notify"] {
        if let Some(h) = first(route) {
            let _ = write!(p, ", {route} {:.3}s", since(h.at));
        }
    }
    t.phases = p;
    if t.logged != expected || t.passed != expected {
        t.problem = Some(format!(
            "the log lists {} devices, {} passed; expected {expected} passing",
            t.logged, t.passed
        ));
    }
    t
}

fn write_expect_file(env: &Env, devices: &[Sim]) -> anyhow::Result<PathBuf> {
    let path = env.tmp.path().join(format!("expect-{}.txt", devices.len()));
    let mut s = String::new();
    for d in devices {
        s.push_str(&d.sn);
        s.push('\n');
    }
    std::fs::write(&path, s)?;
    Ok(path)
}

/// Runs `burnin-edge scan` once.
async fn run_burnin(
    env: &Env,
    vhost: &TestVhost,
    factory: &Factory,
    devices: &[Sim],
    op: u64,
    window: &str,
) -> anyhow::Result<(Timing, String, Vec<Vec<u8>>)> {
    let expect = write_expect_file(env, devices)?;
    factory.take_hits();
    agents::take_marks();
    let base = factory.base();
    let broker_pid = broker::pid();
    let cpu0 = (cpu_ticks("self"), broker_pid.as_deref().and_then(cpu_ticks));
    let t0 = Instant::now();
    let child = tokio::process::Command::new(&env.edge)
        .arg("scan")
        .args(["--amqp-url", &vhost.url()])
        .args(["--mes-url", &format!("{base}/mes/{{sn}}")])
        .args(["--log-url", &format!("{base}/log")])
        .args(["--notify-url", &format!("{base}/notify")])
        .args(["--pair-url", &format!("{base}/pair")])
        .args(["--operation-id", &op.to_string()])
        .arg("--expect-file")
        .arg(&expect)
        .args(["--window", window, "--json"])
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("running {}", env.edge.display()))?;
    // The edge's CPU time: sampled until it exits.
    let edge_pid = child.id().map(|p| p.to_string());
    let sampler = tokio::spawn(async move {
        let mut last = None;
        while let Some(t) = edge_pid.as_deref().and_then(cpu_ticks) {
            last = Some(t);
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        last
    });
    let out = child.wait_with_output().await?;
    let total = t0.elapsed();
    let edge_cpu = sampler.await.ok().flatten();
    let cpu1 = (cpu_ticks("self"), broker_pid.as_deref().and_then(cpu_ticks));
    let marks = agents::take_marks();
    let hits = factory.take_hits();
    let logs = hits
        .iter()
        .filter(|h| h.route == "/log")
        .map(|h| h.body.clone())
        .collect();
    let mut t = analyse(t0, &hits, devices.len());
    t.total_s = secs(total);
    let since = |i: Instant| secs(i.saturating_duration_since(t0));
    let mut agents_line = String::new();
    if let Some((a, b)) = marks.command {
        let _ = write!(
            agents_line,
            "agents got the command {:.3}–{:.3}s",
            since(a),
            since(b)
        );
    }
    if let Some((a, b)) = marks.replied {
        let _ = write!(
            agents_line,
            ", replies confirmed {:.3}–{:.3}s",
            since(a),
            since(b)
        );
    }
    let tick = |a: Option<u64>, b: Option<u64>| match (a, b) {
        (Some(a), Some(b)) => format!("{:.2}", b.saturating_sub(a) as f64 / 100.0),
        _ => "?".into(),
    };
    t.phases = format!(
        "{agents_line}; {}; CPU s: edge {}, broker {}, harness (agents + stand-in) {}",
        t.phases,
        edge_cpu.map_or("?".into(), |c| format!("{:.2}", c as f64 / 100.0)),
        tick(cpu0.1, cpu1.1),
        tick(cpu0.0, cpu1.0),
    );
    if !out.status.success() {
        t.problem = Some(format!(
            "burnin-edge scan exited with {}: {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok((t, String::from_utf8_lossy(&out.stderr).into_owned(), logs))
}

/// Runs `seed_edge.py` once.
async fn run_baseline(
    env: &Env,
    vhost: &TestVhost,
    factory: &Factory,
    n: usize,
    op: u64,
) -> anyhow::Result<Timing> {
    factory.take_hits();
    let t0 = Instant::now();
    let out = tokio::process::Command::new("python3")
        .arg(env.baseline.join("seed_edge.py"))
        .arg(vhost.url())
        .arg(factory.base())
        .arg(op.to_string())
        .arg(n.to_string())
        .arg("600")
        .stdin(Stdio::null())
        .output()
        .await
        .context("running seed_edge.py")?;
    let total = t0.elapsed();
    let mut t = analyse(t0, &factory.take_hits(), n);
    t.total_s = secs(total);
    if !out.status.success() {
        t.problem = Some(format!(
            "seed_edge.py exited with {}: {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    // Leftovers would be read by the next baseline run.
    vhost.ctl(&["purge_queue", "-p", vhost.name(), "hwinfo_queue"]);
    Ok(t)
}

/// Real seed_agent.py processes, killed on drop.
struct SeedAgents {
    children: Vec<std::process::Child>,
}

impl Drop for SeedAgents {
    fn drop(&mut self) {
        for c in &mut self.children {
            let _ = c.kill();
        }
        for c in &mut self.children {
            let _ = c.wait();
        }
    }
}

async fn start_seed_agents(
    env: &Env,
    vhost: &TestVhost,
    devices: &[Sim],
) -> anyhow::Result<SeedAgents> {
    use std::io::BufRead as _;
    let mut agents = SeedAgents {
        children: Vec::new(),
    };
    let mut stdouts = Vec::new();
    for (i, d) in devices.iter().enumerate() {
        let root = env.tmp.path().join(format!("seed-{i}"));
        d.write_tree(&root);
        let mut child = std::process::Command::new("python3")
            .arg(env.baseline.join("seed_agent.py"))
            .arg(vhost.url())
            .arg(&root)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .context("starting seed_agent.py")?;
        stdouts.push(child.stdout.take());
        agents.children.push(child);
    }
    // Each prints "ready" once consuming.
    let waited = tokio::task::spawn_blocking(move || {
        for out in stdouts.into_iter().flatten() {
            let mut line = String::new();
            let _ = std::io::BufReader::new(out).read_line(&mut line);
            if line.trim() != "ready" {
                return false;
            }
        }
        true
    })
    .await?;
    if !waited {
        bail!("a seed_agent.py did not get ready (is the broker up and pika installed?)");
    }
    Ok(agents)
}

/// One row of the table.
struct Row {
    scenario: String,
    devices: usize,
    latency_ms: u64,
    burnin: Timing,
    baseline: Option<Timing>,
    agents: String,
}

fn bound_s(devices: usize, latency_ms: u64) -> f64 {
    devices as f64 * latency_ms as f64 / 1000.0 / f64::from(MES_CONCURRENCY)
}

async fn table(env: &Env, cli: &Cli) -> anyhow::Result<ExitCode> {
    let quick = cli.quick;
    let started = Instant::now();
    println!("burnin-load: {}", machine());
    let footprint = footprint(env).await?;
    println!("{footprint}");

    let mut rows = Vec::new();
    let mut op = 9_000_000u64;
    if !cli.only_10k {
        let small = sims("LOAD", 0..200);
        let large = sims("LOAD", 0..1000);

        // burnin: one vhost, agents added as the device count grows.
        let bv = broker::vhost("load-burnin")?;
        let bfactory = factory_for(&large)?;
        eprintln!("starting 200 simulated burnin agents (one connection each)…");
        let mut bfleets: Vec<Fleet> = Vec::new();
        bfleets.push(
            agents::start_connected(
                &bv.url(),
                &small,
                |_| Duration::ZERO,
                |i| format!("burnin-load agent {i}"),
            )
            .await?,
        );
        // baseline: real seed_agent.py processes for 200 devices.
        let pv = broker::vhost("load-seed")?;
        let pfactory = factory_for(&large)?;
        eprintln!("starting 200 seed_agent.py processes…");
        let seed_agents = start_seed_agents(env, &pv, &small).await?;

        let latencies: &[u64] = if quick { &[20] } else { &[0, 20] };
        for &ms in latencies {
            bfactory.set_mes_latency(Duration::from_millis(ms));
            pfactory.set_mes_latency(Duration::from_millis(ms));
            op += 1;
            eprintln!("200 devices, {ms} ms: burnin…");
            let (b, _, _) = run_burnin(env, &bv, &bfactory, &small, op, "60s").await?;
            eprintln!("200 devices, {ms} ms: baseline…");
            let p = run_baseline(env, &pv, &pfactory, small.len(), op).await?;
            rows.push(Row {
                scenario: format!("200 @ {ms} ms"),
                devices: 200,
                latency_ms: ms,
                burnin: b,
                baseline: Some(p),
                agents:
                    "burnin: 200 burnin-amqp connections; baseline: 200 seed_agent.py processes"
                        .into(),
            });
        }
        drop(seed_agents);
        drop(pv);

        if !quick {
            eprintln!("adding 800 simulated burnin agents (one connection each)…");
            bfleets.push(
                agents::start_connected(
                    &bv.url(),
                    &large[200..],
                    |_| Duration::ZERO,
                    |i| format!("burnin-load agent {}", i + 200),
                )
                .await?,
            );
            let pv = broker::vhost("load-seed-sim")?;
            eprintln!("starting 1,000 simulated seed agents…");
            let pfleet = agents::start_seed_multiplexed(&pv.url(), &large, 50).await?;
            for ms in [0u64, 20] {
                bfactory.set_mes_latency(Duration::from_millis(ms));
                pfactory.set_mes_latency(Duration::from_millis(ms));
                op += 1;
                eprintln!("1,000 devices, {ms} ms: burnin…");
                let (b, _, _) = run_burnin(env, &bv, &bfactory, &large, op, "60s").await?;
                eprintln!("1,000 devices, {ms} ms: baseline…");
                let p = run_baseline(env, &pv, &pfactory, large.len(), op).await?;
                rows.push(Row {
                scenario: format!("1,000 @ {ms} ms"),
                devices: 1000,
                latency_ms: ms,
                burnin: b,
                baseline: Some(p),
                agents: format!(
                    "burnin: 1,000 burnin-amqp connections; baseline: simulated seed agents ({})",
                    pfleet.label
                ),
            });
            }
            pfleet.stop().await;
            drop(pv);
        }
        for f in bfleets {
            f.stop().await;
        }
        drop(bv);
    }

    if cli.only_10k || (!quick && !cli.no_10k) {
        let huge = sims("LOAD", 0..10_000);
        let v = broker::vhost("load-10k")?;
        let f = factory_for(&huge)?;
        f.set_mes_latency(Duration::from_millis(20));
        eprintln!("starting 10,000 simulated burnin agents (multiplexed)…");
        let fleet = agents::start_multiplexed(&v.url(), &huge, cli.per_connection).await?;
        op += 1;
        eprintln!("10,000 devices, 20 ms: burnin…");
        let (b, _, _) = run_burnin(env, &v, &f, &huge, op, "120s").await?;
        rows.push(Row {
            scenario: "10,000 @ 20 ms".into(),
            devices: 10_000,
            latency_ms: 20,
            burnin: b,
            baseline: None,
            agents: format!("burnin alone: {}", fleet.label),
        });
        fleet.stop().await;
        drop(v);
    }

    print_table(&rows);
    println!();
    println!("{}", goals(&rows, &footprint));
    println!(
        "(harness run took {:.0} s)",
        started.elapsed().as_secs_f64()
    );
    let failed = rows.iter().any(|r| {
        r.burnin.problem.is_some() || r.baseline.as_ref().is_some_and(|b| b.problem.is_some())
    });
    Ok(if failed {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

fn fmt_s(t: &Timing) -> String {
    match t.notify_s {
        Some(n) => format!("{n:.3}"),
        None => "no /notify".into(),
    }
}

fn print_table(rows: &[Row]) {
    println!();
    println!("Command to notification (seconds; process run time in brackets)");
    println!();
    println!(
        "| scenario | devices | MES latency | burnin s | baseline s | ratio | bound s (devices × latency / {MES_CONCURRENCY}) |"
    );
    println!("| --- | ---: | ---: | ---: | ---: | ---: | ---: |");
    for r in rows {
        let b = format!("{} ({:.3})", fmt_s(&r.burnin), r.burnin.total_s);
        let (p, ratio) = match &r.baseline {
            Some(p) => (
                format!("{} ({:.3})", fmt_s(p), p.total_s),
                match (p.notify_s, r.burnin.notify_s) {
                    (Some(a), Some(b)) if b > 0.0 => format!("{:.1}×", a / b),
                    _ => "–".into(),
                },
            ),
            None => ("–".into(), "–".into()),
        };
        println!(
            "| {} | {} | {} ms | {b} | {p} | {ratio} | {:.3} |",
            r.scenario,
            r.devices,
            r.latency_ms,
            bound_s(r.devices, r.latency_ms)
        );
    }
    println!();
    for r in rows {
        println!("{}: {}", r.scenario, r.agents);
        println!("  burnin phases: {}", r.burnin.phases);
        if let Some(p) = &r.baseline {
            println!("  baseline phases: {}", p.phases);
        }
        for problem in [Some(&r.burnin), r.baseline.as_ref()]
            .into_iter()
            .flatten()
            .filter_map(|t| t.problem.as_ref())
        {
            println!("  PROBLEM: {problem}");
        }
    }
}

fn goals(rows: &[Row], fp: &Footprint) -> String {
    let mut s = String::from("Goals\n");
    let mark = |ok: bool| if ok { "met" } else { "MISSED" };
    if let Some(r) = rows
        .iter()
        .find(|r| r.devices == 1000 && r.latency_ms == 20)
        && let Some(b) = r.burnin.notify_s
    {
        {
            let _ = writeln!(s, "  1,000 @ 20 ms ≤ 1.0 s: {b:.3} s — {}", mark(b <= 1.0));
            if let Some(p) = r.baseline.as_ref().and_then(|p| p.notify_s) {
                let _ = writeln!(
                    s,
                    "  1,000 @ 20 ms ≥ 20× baseline: {:.1}× — {}",
                    p / b,
                    mark(p / b >= 20.0)
                );
            }
        }
    }
    if let Some(b) = rows
        .iter()
        .find(|r| r.devices == 10_000)
        .and_then(|r| r.burnin.notify_s)
    {
        let _ = writeln!(s, "  10,000 @ 20 ms ≤ 4 s: {b:.3} s — {}", mark(b <= 4.0));
    }
    if let Some(rss) = fp.agent_rss_kib {
        let mb = rss as f64 / 1024.0;
        let _ = writeln!(s, "  agent RSS ≤ 5 MB: {mb:.1} MiB — {}", mark(mb <= 5.0));
    }
    let mb = fp.agent_size as f64 / 1024.0 / 1024.0;
    let _ = writeln!(
        s,
        "  agent binary ≤ 6 MB: {mb:.1} MiB — {}",
        mark(mb <= 6.0)
    );
    s
}

fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|m| m.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let mem = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines()
                .find(|l| l.starts_with("MemTotal"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|k| k.parse::<u64>().ok())
        })
        .map_or_else(
            || "?".into(),
            |k| format!("{:.0} GiB", k as f64 / 1024.0 / 1024.0),
        );
    let rabbit = std::process::Command::new("rabbitmqctl")
        .arg("version")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default();
    format!(
        "{cores} cores ({cpu}), {mem} RAM, RabbitMQ {rabbit}, on one machine (broker, edge, agents and stand-in share the cores)"
    )
}

/// The agent's footprint and the binaries' sizes.
struct Footprint {
    agent_rss_kib: Option<u64>,
    agent_pss_kib: Option<u64>,
    agent_anon_kib: Option<u64>,
    agent_threads: Option<u64>,
    seed_rss_kib: Option<u64>,
    agent_size: u64,
    edge_size: u64,
}

impl std::fmt::Display for Footprint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mib =
            |k: Option<u64>| k.map_or("?".into(), |k| format!("{:.1} MiB", k as f64 / 1024.0));
        writeln!(f, "Footprint")?;
        writeln!(
            f,
            "  burnin-agent run, idle while connected: RSS {}, PSS {}, anonymous {}, {} threads",
            mib(self.agent_rss_kib),
            mib(self.agent_pss_kib),
            mib(self.agent_anon_kib),
            self.agent_threads.map_or("?".into(), |t| t.to_string())
        )?;
        writeln!(
            f,
            "  seed_agent.py, idle while connected: RSS {}",
            mib(self.seed_rss_kib)
        )?;
        writeln!(
            f,
            "  stripped release binaries: burnin-agent {:.2} MiB ({} bytes), burnin-edge {:.2} MiB ({} bytes)",
            self.agent_size as f64 / 1048576.0,
            self.agent_size,
            self.edge_size as f64 / 1048576.0,
            self.edge_size
        )
    }
}

/// utime + stime of a process in clock ticks (1/100 s on Linux).
fn cpu_ticks(pid: &str) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &stat[stat.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    // After the command: state is field 3, utime 14, stime 15 (1-based).
    Some(f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?)
}

fn proc_field(pid: u32, file: &str, field: &str) -> Option<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/{file}")).ok()?;
    text.lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l[field.len()..].split_whitespace().next())
        .and_then(|v| v.parse().ok())
}

async fn footprint(env: &Env) -> anyhow::Result<Footprint> {
    let v = broker::vhost("load-rss")?;
    let dev = Sim::new("RSS", 1);
    let root = env.tmp.path().join("rss-agent");
    dev.write_tree(&root);
    let mut agent = std::process::Command::new(&env.agent)
        .arg("run")
        .args(["--amqp-url", &v.url()])
        .arg("--sysfs-root")
        .arg(&root)
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .context("starting burnin-agent run")?;
    let consumers = |v: &TestVhost| {
        v.ctl(&[
            "list_consumers",
            "-p",
            v.name(),
            "--quiet",
            "--no-table-headers",
            "queue_name",
        ])
        .lines()
        .filter(|l| !l.trim().is_empty())
        .count()
    };
    let t0 = Instant::now();
    while consumers(&v) < 1 && t0.elapsed() < Duration::from_secs(30) {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // Let it settle as an idle agent would be.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let pid = agent.id();
    let fp_agent = (
        proc_field(pid, "status", "VmRSS:"),
        proc_field(pid, "smaps_rollup", "Pss:"),
        proc_field(pid, "smaps_rollup", "Anonymous:"),
        proc_field(pid, "status", "Threads:"),
    );
    let _ = agent.kill();
    let _ = agent.wait();

    let mut seed_rss = None;
    if env.baseline.join("seed_agent.py").exists() {
        let seed = start_seed_agents(env, &v, std::slice::from_ref(&Sim::new("RSSSEED", 1))).await;
        if let Ok(seed) = seed {
            tokio::time::sleep(Duration::from_secs(1)).await;
            seed_rss = seed
                .children
                .first()
                .and_then(|c| proc_field(c.id(), "status", "VmRSS:"));
        }
    }
    Ok(Footprint {
        agent_rss_kib: fp_agent.0,
        agent_pss_kib: fp_agent.1,
        agent_anon_kib: fp_agent.2,
        agent_threads: fp_agent.3,
        seed_rss_kib: seed_rss,
        agent_size: std::fs::metadata(&env.agent)?.len(),
        edge_size: std::fs::metadata(&env.edge)?.len(),
    })
}

/// The fault run.
async fn fault(env: &Env, n: u32) -> anyhow::Result<ExitCode> {
    println!("burnin-load fault: {}", machine());
    let devices = sims("FAULT", 0..n);
    let v = broker::vhost("load-fault")?;
    let f = factory_for(&devices)?;
    f.set_mes_latency(Duration::from_millis(20));
    // Replies spread over 4 s (probe delays), so the closes at 1.5 s hit
    // agents before, while and after they reply, and an edge with
    // replies in flight.
    let spread = Duration::from_secs(4);
    let delay = move |i: usize| spread.mul_f64(i as f64 / f64::from(n.max(1)));
    let name = |i: usize| format!("burnin-load agent {i}");
    eprintln!("starting {n} simulated burnin agents (one connection each)…");
    let fleet = agents::start_connected(&v.url(), &devices, delay, name).await?;
    let victims: Vec<String> = (0..n as usize).filter(|i| i % 10 == 3).map(name).collect();
    let vname = v.name().to_owned();
    let closer = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(1500)).await;
        let vh = vname.clone();
        let victims2 = victims.clone();
        tokio::task::spawn_blocking(move || {
            broker::close_connections(&vh, &victims2, "burnin-edge scan")
        })
        .await
        .map_err(anyhow::Error::from)
        .and_then(|r| r)
        .map(|closed| (closed, victims.len()))
    });
    let (t, stderr, logs) = run_burnin(env, &v, &f, &devices, 7_000_001, "30s").await?;
    let (closed, wanted) = closer.await??;
    fleet.stop().await;

    println!(
        "closed {closed} connections broker-side at 1.5 s (wanted the edge's and {wanted} agents', every tenth)"
    );
    println!(
        "command to notification {}, process {:.3} s; {}",
        fmt_s(&t),
        t.total_s,
        t.phases
    );
    let reconnects = stderr.matches("reconnect").count();
    println!("edge stderr lines mentioning a reconnect: {reconnects}");
    if let Some(p) = &t.problem {
        println!("PROBLEM: {p}");
    }
    let ok = check_exactly_once(&devices, &logs);
    Ok(if ok && t.problem.is_none() && closed == wanted + 1 {
        ExitCode::SUCCESS
    } else {
        if closed != wanted + 1 {
            println!(
                "PROBLEM: closed {closed} connections, meant to close {}",
                wanted + 1
            );
        }
        ExitCode::from(1)
    })
}

/// Prints `lost = 0` or the missing and duplicated serials; true if none.
fn check_exactly_once(devices: &[Sim], logs: &[Vec<u8>]) -> bool {
    use std::collections::BTreeMap;
    println!("/log POSTs received: {}", logs.len());
    let Some(first) = logs.first() else {
        println!("lost = {} (no /log was posted)", devices.len());
        return false;
    };
    if logs.iter().any(|l| l != first) {
        println!("PROBLEM: the /log POSTs differ");
    }
    let v: serde_json::Value = serde_json::from_slice(first).unwrap_or_default();
    let mut seen: BTreeMap<String, (usize, bool)> = BTreeMap::new();
    for info in v["scaninfo"].as_array().into_iter().flatten() {
        let sn = info["sn"].as_str().unwrap_or_default().to_owned();
        let has_macs = info["macinfo"].as_array().is_some_and(|m| !m.is_empty());
        let e = seen.entry(sn).or_default();
        e.0 += 1;
        e.1 |= info["result"] == "1" && has_macs;
    }
    let missing: Vec<&str> = devices
        .iter()
        .filter(|d| !seen.get(&d.sn).is_some_and(|(_, replied)| *replied))
        .map(|d| d.sn.as_str())
        .collect();
    let duplicated: Vec<&String> = seen
        .iter()
        .filter(|(_, (c, _))| *c > 1)
        .map(|(s, _)| s)
        .collect();
    let unexpected = seen.len().saturating_sub(devices.len());
    if missing.is_empty() && duplicated.is_empty() && unexpected == 0 {
        println!(
            "lost = 0, duplicated = 0: all {} devices reported exactly once, all passed",
            devices.len()
        );
        true
    } else {
        println!("lost = {}: {missing:?}", missing.len());
        println!("duplicated = {}: {duplicated:?}", duplicated.len());
        if unexpected > 0 {
            println!("unexpected serials in the log: {unexpected}");
        }
        false
    }
}
