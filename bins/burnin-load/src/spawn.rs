//! Starting the programs under test: `burnin-edge scan`, `burnin-edge
//! serve` driven over its HTTP API, `seed_edge.py`, `seed_agent.py`, and
//! `burnin-agent run` for its footprint.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant, SystemTime};

use anyhow::{Context as _, bail};
use burnin_testkit::FactoryStandIn;
use burnin_testkit::vhost::TestVhost;

use crate::agents::{self, Sim};
use crate::analysis::{Timing, analyse, secs};
use crate::broker;
use crate::check::Replies;
use crate::edgelog::{self, EDGE_LOG};
use crate::sample::{MachineTicks, cpu_ticks, proc_field, tick_span};

/// Paths and settings every run needs.
pub(crate) struct Env {
    pub(crate) edge: PathBuf,
    pub(crate) agent: PathBuf,
    pub(crate) baseline: PathBuf,
    pub(crate) tmp: tempfile::TempDir,
    /// Where state databases go (on disk, checked).
    pub(crate) state_dir: PathBuf,
    /// Extra flags for the edge (`--mes-concurrency-max N` when it has it).
    pub(crate) edge_flags: Vec<String>,
}

/// Where an edge keeps its operations.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Store {
    /// `--state-db FILE` on the project's disk.
    Disk,
    /// No `--state-db`: `scan`'s in-memory store.
    Memory,
}

/// Where `scan` finds the broker: the local node's vhost, or every node
/// of a cluster; whose CPU time the breakdown counts as the broker's.
pub(crate) struct Broker {
    /// Given to the edge as one `--amqp-url` each.
    pub(crate) urls: Vec<String>,
    /// The broker nodes' OS process ids.
    pub(crate) pids: Vec<String>,
    /// More flags for the edge (`--reply-queue-type quorum` on a cluster).
    pub(crate) edge_args: Vec<String>,
}

impl Broker {
    /// `vhost` on the local node.
    pub(crate) fn local(vhost: &TestVhost) -> Broker {
        Broker {
            urls: vec![vhost.url()],
            pids: broker::pid().into_iter().collect(),
            edge_args: Vec::new(),
        }
    }

    /// Every node's CPU ticks, summed (`None` if one cannot be read).
    fn cpu_ticks(&self) -> Option<u64> {
        if self.pids.is_empty() {
            return None;
        }
        self.pids.iter().map(|p| cpu_ticks(p)).sum()
    }
}

/// What one burnin run left.
pub(crate) struct Run {
    pub(crate) timing: Timing,
    /// The edge's own reply counts, when it reports them.
    pub(crate) replies: Option<Replies>,
    pub(crate) stderr: String,
    /// Every request the stand-in received during the run.
    pub(crate) requests: Vec<burnin_testkit::Recorded>,
}

fn factory_args(factory: &FactoryStandIn) -> Vec<String> {
    vec![
        "--mes-url".into(),
        factory.url("/mes/{sn}"),
        "--log-url".into(),
        factory.url("/log"),
        "--notify-url".into(),
        factory.url("/notify"),
        "--pair-url".into(),
        factory.url("/pair"),
    ]
}

fn fresh_db(env: &Env, name: &str) -> anyhow::Result<PathBuf> {
    let path = env.state_dir.join(name);
    for suffix in ["", "-wal", "-shm", "-journal"] {
        let mut p = path.clone().into_os_string();
        p.push(suffix);
        let _ = std::fs::remove_file(PathBuf::from(p));
    }
    Ok(path)
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

/// The breakdown line: agent marks, the edge's marks (from its log), the
/// stand-in's phases and CPU seconds.
fn breakdown(
    t0: Instant,
    phases: &str,
    edge: &edgelog::EdgeMarks,
    edge_cpu: String,
    broker: String,
    harness: String,
    machine: String,
) -> String {
    let since = |i: Instant| secs(i.saturating_duration_since(t0));
    let marks = agents::take_marks();
    let mut line = String::new();
    if let Some((a, b)) = marks.command {
        let _ = write!(
            line,
            "agents got the command {:.3}–{:.3}s",
            since(a),
            since(b)
        );
    }
    if let Some((a, b)) = marks.replied {
        let _ = write!(line, ", replies confirmed {:.3}–{:.3}s", since(a), since(b));
    }
    let edge = edge.shown();
    if !edge.is_empty() {
        let _ = write!(line, "; {edge}");
    }
    format!(
        "{line}; {phases}; CPU s: edge {edge_cpu}, broker {broker}, harness (agents + stand-in) {harness}; {machine}"
    )
}

/// Runs `burnin-edge scan` once (`--json`, `--expect-file` of every
/// device). With [`Store::Disk`] its state database is a fresh file in
/// the state folder.
pub(crate) async fn scan(
    env: &Env,
    broker: &Broker,
    factory: &FactoryStandIn,
    devices: &[Sim],
    op: u64,
    window: &str,
    store: Store,
) -> anyhow::Result<Run> {
    let expect = write_expect_file(env, devices)?;
    factory.clear_requests();
    agents::take_marks();
    let cpu0 = (cpu_ticks("self"), broker.cpu_ticks());
    let machine0 = MachineTicks::now();
    let mut cmd = tokio::process::Command::new(&env.edge);
    cmd.arg("scan");
    for url in &broker.urls {
        cmd.args(["--amqp-url", url]);
    }
    cmd.args(&broker.edge_args)
        .args(factory_args(factory))
        .args(["--operation-id", &op.to_string()])
        .arg("--expect-file")
        .arg(&expect)
        .args(["--window", window, "--json"])
        .args(&env.edge_flags);
    if store == Store::Disk {
        cmd.arg("--state-db")
            .arg(fresh_db(env, &format!("scan-{op}.sqlite3"))?);
    }
    let t0 = Instant::now();
    let wall0 = SystemTime::now();
    let child = cmd
        .env("RUST_LOG", EDGE_LOG)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("running {}", env.edge.display()))?;
    // The edge's CPU time and peak RSS: sampled until it exits.
    let edge_pid = child.id();
    let sampler = tokio::spawn(async move {
        let (mut cpu, mut peak) = (None, None);
        while let Some(t) = edge_pid.and_then(|p| cpu_ticks(&p.to_string())) {
            cpu = Some(t);
            peak = edge_pid
                .and_then(|p| crate::sample::proc_field(p, "status", "VmHWM:"))
                .or(peak);
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        (cpu, peak)
    });
    let out = child.wait_with_output().await?;
    let total = t0.elapsed();
    let (edge_cpu, edge_peak) = sampler.await.unwrap_or_default();
    let cpu1 = (cpu_ticks("self"), broker.cpu_ticks());
    let machine1 = MachineTicks::now();
    let machine = machine0.map_or("machine CPU s: ?".into(), |m| m.shown(machine1));
    let requests = factory.take_requests();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let mut t = analyse(t0, &requests, devices.len());
    t.total_s = secs(total);
    let span = |a: Option<u64>, b: Option<u64>| Some(b?.saturating_sub(a?) as f64 / 100.0);
    t.cpu = crate::analysis::Cpu {
        edge: edge_cpu.map(|c| c as f64 / 100.0),
        broker: span(cpu0.1, cpu1.1),
        harness: span(cpu0.0, cpu1.0),
        stolen_pct: machine0.zip(machine1).and_then(|(a, b)| a.stolen_pct(b)),
    };
    t.edge_peak_rss_kib = edge_peak;
    t.phases = breakdown(
        t0,
        &t.phases,
        &edgelog::read(&stderr, wall0),
        edge_cpu.map_or("?".into(), |c| format!("{:.2}", c as f64 / 100.0)),
        tick_span(cpu0.1, cpu1.1),
        tick_span(cpu0.0, cpu1.0),
        machine,
    );
    if !out.status.success() {
        t.problem = Some(format!(
            "burnin-edge scan exited with {}: {}",
            out.status,
            edgelog::without_debug(&stderr).trim()
        ));
    }
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
    Ok(Run {
        timing: t,
        replies: Replies::from_scan_json(&doc),
        stderr,
        requests,
    })
}

/// A running `burnin-edge serve`, stopped (SIGTERM, then SIGKILL) on drop.
pub(crate) struct Serve {
    child: std::process::Child,
    /// `http://127.0.0.1:<port>`.
    pub(crate) base: String,
    /// Its `--api-token`.
    pub(crate) token: String,
    /// Where its stderr goes.
    pub(crate) log: PathBuf,
}

impl Drop for Serve {
    fn drop(&mut self) {
        if self.sigterm(Duration::from_secs(10)).is_none() {
            self.sigkill();
        }
    }
}

/// A free port of 127.0.0.1 (free when asked).
pub(crate) fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

impl Serve {
    /// Starts `burnin-edge serve --listen 127.0.0.1:<port> --api-token
    /// <token>` against `factory` (MES, log, notify and pair URLs) with
    /// `args` (broker, store, …) and the harness's edge flags, its stderr
    /// to `log` (`RUST_LOG` as `rust_log`). Returns at once; see
    /// [`Serve::wait_healthy`].
    pub(crate) fn launch(
        env: &Env,
        factory: &FactoryStandIn,
        port: u16,
        token: &str,
        args: &[String],
        log: PathBuf,
        rust_log: &str,
    ) -> anyhow::Result<Serve> {
        let child = std::process::Command::new(&env.edge)
            .arg("serve")
            .args(args)
            .args(factory_args(factory))
            .args(["--listen", &format!("127.0.0.1:{port}")])
            .args(["--api-token", token])
            .args(&env.edge_flags)
            .env("RUST_LOG", rust_log)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::from(
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(&log)
                    .with_context(|| format!("cannot write {}", log.display()))?,
            ))
            .spawn()
            .with_context(|| format!("starting {} serve", env.edge.display()))?;
        Ok(Serve {
            child,
            base: format!("http://127.0.0.1:{port}"),
            token: token.to_owned(),
            log,
        })
    }

    /// Its OS process id.
    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }

    /// What it logged so far, debug lines left out.
    pub(crate) fn stderr(&self) -> String {
        edgelog::without_debug(&std::fs::read_to_string(&self.log).unwrap_or_default())
    }

    /// Waits until `/healthz` answers `ok(status)` (at most `limit`).
    pub(crate) async fn wait_healthy(
        &self,
        http: &reqwest::Client,
        limit: Duration,
        ok: impl Fn(reqwest::StatusCode) -> bool,
    ) -> anyhow::Result<()> {
        let up = Instant::now();
        loop {
            let answered = http
                .get(format!("{}/healthz", self.base))
                .send()
                .await
                .is_ok_and(|r| ok(r.status()));
            if answered {
                return Ok(());
            }
            if up.elapsed() > limit {
                bail!(
                    "burnin-edge serve ({}) did not answer /healthz as wanted within {limit:?}: {}",
                    self.base,
                    self.stderr().trim()
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// `POST /scans` with `body` (operation `op`), then `GET /scans/{op}`
    /// every `poll` until it is `done` or `failed`; the last view. An
    /// answer other than 202, or no end within `limit` of the POST, is an
    /// error naming the operation.
    pub(crate) async fn run_operation(
        &self,
        http: &reqwest::Client,
        body: &serde_json::Value,
        op: u64,
        limit: Duration,
        poll: Duration,
    ) -> anyhow::Result<serde_json::Value> {
        let t0 = Instant::now();
        let started = http
            .post(format!("{}/scans", self.base))
            .bearer_auth(&self.token)
            .json(body)
            .send()
            .await
            .context("POST /scans")?;
        if started.status() != reqwest::StatusCode::ACCEPTED {
            bail!(
                "operation {op}: POST /scans answered {}: {}",
                started.status(),
                started.text().await.unwrap_or_default()
            );
        }
        loop {
            let v: serde_json::Value = http
                .get(format!("{}/scans/{op}", self.base))
                .bearer_auth(&self.token)
                .send()
                .await
                .context("GET /scans/{id}")?
                .json()
                .await
                .context("GET /scans/{id} body")?;
            if matches!(v["state"].as_str(), Some("done" | "failed")) {
                return Ok(v);
            }
            if t0.elapsed() > limit {
                bail!("operation {op} was not done {limit:?} after POST /scans: {v}");
            }
            tokio::time::sleep(poll).await;
        }
    }

    /// SIGKILL, reaped.
    pub(crate) fn sigkill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Sends SIGTERM (unless it has exited).
    pub(crate) fn term(&mut self) {
        if self.exited().is_some() {
            return;
        }
        if let Some(pid) = rustix::process::Pid::from_raw(self.child.id() as i32) {
            let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
        }
    }

    /// Its exit status, if it has exited.
    pub(crate) fn exited(&mut self) -> Option<std::process::ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    /// SIGTERM, then waits for it to exit (at most `limit`, blocking);
    /// its exit status, `None` if it still runs.
    pub(crate) fn sigterm(&mut self, limit: Duration) -> Option<std::process::ExitStatus> {
        self.term();
        let until = Instant::now() + limit;
        loop {
            if let Some(status) = self.exited() {
                return Some(status);
            }
            if Instant::now() >= until {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// Runs one operation through `burnin-edge serve`'s HTTP API: starts
/// serve (state database on disk), waits for `/healthz`, then times from
/// `POST /scans` — polling `GET /scans/{id}` every 20 ms until `done` or
/// `failed` — with the notification as the stand-in received it.
pub(crate) async fn serve(
    env: &Env,
    vhost: &TestVhost,
    factory: &FactoryStandIn,
    devices: &[Sim],
    op: u64,
    window_secs: u64,
) -> anyhow::Result<Run> {
    let port = free_port()?;
    let db = fresh_db(env, &format!("serve-{op}.sqlite3"))?;
    let log = env.tmp.path().join(format!("serve-{op}.log"));
    let token = format!("load-{op}-{:08x}", std::process::id());
    let mut args = vec![
        "--amqp-url".to_owned(),
        vhost.url(),
        "--state-db".to_owned(),
    ];
    args.push(db.display().to_string());
    let serve = Serve::launch(env, factory, port, &token, &args, log.clone(), EDGE_LOG)?;
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()?;
    serve
        .wait_healthy(&http, Duration::from_secs(30), |s| s.is_success())
        .await?;
    factory.clear_requests();
    agents::take_marks();
    let serve_pid = serve.child.id().to_string();
    let broker_pid = broker::pid();
    let cpu0 = (
        cpu_ticks("self"),
        broker_pid.as_deref().and_then(cpu_ticks),
        cpu_ticks(&serve_pid),
    );
    let machine0 = MachineTicks::now();
    let body = serde_json::json!({
        "operationId": op,
        "expected": devices.iter().map(|d| d.sn.as_str()).collect::<Vec<_>>(),
        "windowSecs": window_secs,
    });
    let t0 = Instant::now();
    let wall0 = SystemTime::now();
    let view = serve
        .run_operation(
            &http,
            &body,
            op,
            Duration::from_secs(window_secs + 60),
            Duration::from_millis(20),
        )
        .await?;
    let total = t0.elapsed();
    let cpu1 = (
        cpu_ticks("self"),
        broker_pid.as_deref().and_then(cpu_ticks),
        cpu_ticks(&serve_pid),
    );
    let machine = machine0.map_or("machine CPU s: ?".into(), |m| m.shown(MachineTicks::now()));
    let requests = factory.take_requests();
    let stderr = std::fs::read_to_string(&log).unwrap_or_default();
    let mut t = analyse(t0, &requests, devices.len());
    t.total_s = secs(total);
    t.phases = breakdown(
        t0,
        &t.phases,
        &edgelog::read(&stderr, wall0),
        tick_span(cpu0.2, cpu1.2),
        tick_span(cpu0.1, cpu1.1),
        tick_span(cpu0.0, cpu1.0),
        machine,
    );
    if view["state"] != "done" {
        t.problem = Some(format!(
            "serve ended the operation {}: {}",
            view["state"], view["error"]
        ));
    }
    drop(serve);
    Ok(Run {
        timing: t,
        replies: None,
        stderr,
        requests,
    })
}

/// The window given to `seed_edge.py`, seconds: it looks MES up one device
/// at a time, so 50 ms per device (2.5× the 20 ms scenarios) plus 30 s.
/// When a reply is missing it waits out the whole window, so it must not
/// be needlessly long (it was 600 s, and held a harness run for 10 min).
fn baseline_window(devices: usize) -> u64 {
    30 + (devices as u64).div_ceil(20)
}

/// Runs `seed_edge.py` once.
pub(crate) async fn baseline(
    env: &Env,
    vhost: &TestVhost,
    factory: &FactoryStandIn,
    n: usize,
    op: u64,
) -> anyhow::Result<Timing> {
    factory.clear_requests();
    let t0 = Instant::now();
    let out = tokio::process::Command::new("python3")
        .arg(env.baseline.join("seed_edge.py"))
        .arg(vhost.url())
        .arg(factory.url(""))
        .arg(op.to_string())
        .arg(n.to_string())
        .arg(baseline_window(n).to_string())
        .stdin(Stdio::null())
        .output()
        .await
        .context("running seed_edge.py")?;
    let total = t0.elapsed();
    let mut t = analyse(t0, &factory.take_requests(), n);
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

/// Child processes (seed_agent.py, burnin-agent run), killed on drop.
pub(crate) struct Processes {
    pub(crate) children: Vec<std::process::Child>,
}

impl Drop for Processes {
    fn drop(&mut self) {
        for c in &mut self.children {
            let _ = c.kill();
        }
        for c in &mut self.children {
            let _ = c.wait();
        }
    }
}

/// One `seed_agent.py` per device, each on a sysfs tree of its own;
/// returns once each printed `ready`.
pub(crate) async fn start_seed_agents(
    env: &Env,
    vhost: &TestVhost,
    devices: &[Sim],
) -> anyhow::Result<Processes> {
    use std::io::BufRead as _;
    let mut agents = Processes {
        children: Vec::new(),
    };
    let mut stdouts = Vec::new();
    for (i, d) in devices.iter().enumerate() {
        let root = env.tmp.path().join(format!("seed-{}-{i}", d.sn));
        d.write_tree(&root)?;
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

/// One real `burnin-agent run` per device, on a sysfs tree of its own
/// under `dir`, given every URL in `urls` (the nodes of one cluster) and
/// the connection name `name(device)`; returns at once (the caller waits
/// for them to consume, e.g. by counting the broker's consumers).
pub(crate) fn start_real_agents(
    env: &Env,
    urls: &[String],
    devices: &[Sim],
    dir: &Path,
    name: impl Fn(&Sim) -> String,
) -> anyhow::Result<Processes> {
    let mut agents = Processes {
        children: Vec::new(),
    };
    for d in devices {
        let root = dir.join(format!("agent-{}", d.sn));
        d.write_tree(&root)?;
        let mut cmd = std::process::Command::new(&env.agent);
        cmd.arg("run");
        for url in urls {
            cmd.args(["--amqp-url", url]);
        }
        let child = cmd
            .arg("--sysfs-root")
            .arg(&root)
            .args(["--connection-name", &name(d)])
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .with_context(|| format!("starting {} run", env.agent.display()))?;
        agents.children.push(child);
    }
    Ok(agents)
}

/// The agent's footprint and the binaries' sizes.
pub(crate) struct Footprint {
    pub(crate) agent_rss_kib: Option<u64>,
    pub(crate) agent_pss_kib: Option<u64>,
    pub(crate) agent_anon_kib: Option<u64>,
    pub(crate) agent_threads: Option<u64>,
    pub(crate) seed_rss_kib: Option<u64>,
    pub(crate) agent_size: u64,
    pub(crate) edge_size: u64,
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
        write!(
            f,
            "  binaries as built: burnin-agent {:.2} MiB ({} bytes), burnin-edge {:.2} MiB ({} bytes)",
            self.agent_size as f64 / 1048576.0,
            self.agent_size,
            self.edge_size as f64 / 1048576.0,
            self.edge_size
        )
    }
}

/// Starts one real `burnin-agent run` (and one `seed_agent.py`), lets them
/// idle while connected, and reads their memory.
pub(crate) async fn footprint(env: &Env) -> anyhow::Result<Footprint> {
    let v = broker::vhost("load-rss")?;
    let dev = Sim::new("RSS", 1);
    let root = env.tmp.path().join("rss-agent");
    dev.write_tree(&root)?;
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
        .filter(|q| q.trim().starts_with("amq.gen-"))
        .count()
    };
    let t0 = Instant::now();
    while consumers(&v) < 1 {
        if t0.elapsed() > Duration::from_secs(30) {
            let _ = agent.kill();
            let _ = agent.wait();
            bail!("burnin-agent run did not consume its command queue within 30 s");
        }
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

/// The first of `candidates` that exists.
pub(crate) fn first_existing(candidates: &[PathBuf]) -> Option<PathBuf> {
    candidates.iter().find(|p| p.exists()).cloned()
}

/// `--mes-concurrency-max N` if this burnin-edge has the flag.
pub(crate) fn mes_flags(edge: &Path, max: u32) -> Vec<String> {
    let help = std::process::Command::new(edge)
        .args(["scan", "--help"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default();
    if help.contains("--mes-concurrency-max") {
        vec!["--mes-concurrency-max".into(), max.to_string()]
    } else {
        Vec::new()
    }
}
