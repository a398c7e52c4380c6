//! # burnin-load
//!
//! The load harness: burnin against the original Python design, side by
//! side, in one run, on the local RabbitMQ.
//!
//! ```text
//! cargo build --release -p burnin-edge -p burnin-agent -p burnin-load
//! target/release/burnin-load            # every scenario
//! target/release/burnin-load --quick    # 200 devices at 20 ms
//! target/release/burnin-load fault      # 1,000 devices, connections closed mid-window
//! target/release/burnin-load cluster    # 3,000 devices on the 3 nodes of scripts/cluster
//! target/release/burnin-load cluster --stop-node   # …the busiest node stopped mid-window
//! target/release/burnin-load chaos --operations 50 --seed 7   # random faults, checked
//! target/release/burnin-load soak --operations 5000 # one serve, RSS/store/time/buffer charted
//! target/release/burnin-load curve                   # durable scan, 200 to 20,000 devices, charted
//! ```
//!
//! Each device count gets a vhost, a factory stand-in (burnin-testkit's,
//! with its MES-only latency knob), burnin's simulated devices (burnin-core's
//! `Agent` on burnin-amqp's agent adapter, several per connection) and the
//! baseline's. At each MES latency it runs, one after the other:
//! `burnin-edge scan` with `--state-db` on disk (the **durable** path, the
//! figure that counts), the same with the in-memory store (the reference
//! for the durable goal), `burnin-edge serve` driven over its HTTP API
//! (for 1,000 devices at 20 ms), and `bench/baseline/seed_edge.py`.
//! **Command to notification** is the time from starting the edge process
//! (or `POST /scans`) to the stand-in receiving `/notify`.
//!
//! Every run's output — with the machine (cores, memory, broker version),
//! the state folder's file system, the load and the busiest processes — is
//! written to a record file (`--record`, default
//! `target/burnin-load/<kind>-<time>.txt`); the runs the README quotes are
//! committed under `bench/results/`.
//!
//! Modules: [`cli`] (flags), [`scenarios`] (the table run), [`fault`] and
//! [`check`] (the fault run and its falsifiable checker), [`cluster`] (the
//! run on the project's 3-node cluster, same checker), [`chaos`] (the
//! seeded fault campaign and its checker), [`soak`] (the long run through
//! one serve), [`curve`] (the cost by device count), [`chart`] (their SVG
//! charts), [`spawn`] (the
//! programs under test), [`agents`] (simulated devices), [`analysis`]
//! (figures from what the stand-in saw), [`table`] (table and goals),
//! [`sample`] (machine, load, CPU), [`broker`] (vhosts, limits, closes),
//! [`record`] (the record file).
#![allow(clippy::print_stdout, clippy::print_stderr)]

mod agents;
mod analysis;
mod broker;
mod chaos;
mod chart;
mod check;
mod cli;
mod cluster;
mod curve;
mod edgelog;
mod fault;
mod record;
mod sample;
mod scenarios;
mod soak;
mod spawn;
mod table;

use std::path::PathBuf;
use std::process::{ExitCode, Stdio};

use anyhow::{Context as _, bail};
use burnin_core::Clock as _;
use clap::Parser as _;

use cli::{Cli, Cmd};
use record::say;
use spawn::Env;

/// MES lookups burnin-edge runs at once without the adaptive limiter.
const FIXED_MES_CONCURRENCY: u32 = 64;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let kind = match cli.command {
        Some(Cmd::Fault { .. }) => "fault",
        Some(Cmd::Chaos { .. }) => "chaos",
        Some(Cmd::Soak { .. }) => "soak",
        Some(Cmd::Curve { .. }) => "curve",
        Some(Cmd::Cluster {
            stop_node: true, ..
        }) => "cluster-stop-node",
        Some(Cmd::Cluster { .. }) => "cluster",
        None if cli.quick => "quick",
        None if cli.only_10k => "10k",
        None => "table",
    };
    let now = burnin_local::SystemClock.now().to_string();
    let path = cli
        .record
        .clone()
        .unwrap_or_else(|| record::default_path(kind, &now));
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
    say!("burnin-load {kind}, started {now}");
    let code = match rt.block_on(run(cli, &path)) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(e) => {
            say!("error: {e:#}");
            ExitCode::from(3)
        }
    };
    say!(
        "finished {}; {}",
        burnin_local::SystemClock.now(),
        sample::load()
    );
    match record::write(&path) {
        Ok(p) => eprintln!("burnin-load: raw output written to {}", p.display()),
        Err(e) => eprintln!("burnin-load: {e:#}"),
    }
    code
}

/// Resolves a folder given relative to the working directory, else to the
/// repository this binary was built in.
fn in_repo(path: &std::path::Path) -> PathBuf {
    let from_build = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .join(path);
    spawn::first_existing(&[path.to_path_buf(), from_build]).unwrap_or_else(|| path.to_path_buf())
}

async fn run(cli: Cli, record: &std::path::Path) -> anyhow::Result<bool> {
    let nofile = broker::raise_nofile();
    let bin_dir = match cli.bin_dir.clone() {
        Some(d) => d,
        None => std::env::current_exe()?
            .parent()
            .context("this binary has no directory")?
            .to_path_buf(),
    };
    let edge = bin_dir.join("burnin-edge");
    let agent = bin_dir.join("burnin-agent");
    for b in [&edge, &agent] {
        if !b.exists() {
            bail!(
                "{} not found; build it first: cargo build --release -p burnin-edge -p burnin-agent -p burnin-load",
                b.display()
            );
        }
    }
    std::fs::create_dir_all(&cli.state_dir).with_context(|| {
        format!(
            "cannot create the state folder {}; give --state-dir DIR on the project's disk",
            cli.state_dir.display()
        )
    })?;
    let fs = sample::fs_type(&cli.state_dir);
    if fs == "tmpfs" || fs == "ramfs" {
        bail!(
            "the state folder {} is on {fs}: production commits to a disk, so must the harness; give --state-dir DIR on the project's disk",
            cli.state_dir.display()
        );
    }
    let mut edge_flags = spawn::mes_flags(&edge, cli.mes_concurrency_max);
    let adaptive = !edge_flags.is_empty();
    let concurrency = if adaptive {
        cli.mes_concurrency_max
    } else {
        FIXED_MES_CONCURRENCY
    };
    if let Some(settle) = cli.settle {
        if matches!(cli.command, Some(Cmd::Soak { .. })) {
            bail!("soak sets the serve's --settle itself: give it after `soak`, not before");
        }
        edge_flags.extend(["--settle".to_owned(), settle.to_string()]);
    }
    let env = Env {
        edge,
        agent,
        baseline: in_repo(&cli.baseline_dir),
        tmp: tempfile::tempdir()?,
        state_dir: cli
            .state_dir
            .canonicalize()
            .unwrap_or(cli.state_dir.clone()),
        edge_flags,
    };
    say!("machine: {}", sample::machine());
    say!(
        "state databases: {} (file system {fs})",
        env.state_dir.display()
    );
    say!(
        "MES concurrency: {}",
        if !adaptive {
            format!(
                "this burnin-edge has no --mes-concurrency-max; its fixed {FIXED_MES_CONCURRENCY} in flight"
            )
        } else {
            format!(
                "adaptive, --mes-concurrency-max {}",
                cli.mes_concurrency_max
            )
        }
    );
    say!(
        "edge --settle: {}",
        cli.settle.map_or_else(
            || "the edge's default (500 ms after the last expected reply)".to_owned(),
            |s| s.to_string()
        )
    );
    let _ = broker::REPLY_QUEUE_V2.set(cli.reply_queue_v2);
    say!(
        "reply queue: {}",
        if cli.reply_queue_v2 {
            format!(
                "classic, queue-version 2 by a policy (rabbitmqctl {})",
                broker::REPLY_QUEUE_V2_POLICY
                    .map(|a| {
                        if a.chars()
                            .all(|c| c.is_ascii_alphanumeric() || "-_".contains(c))
                        {
                            a.to_owned()
                        } else {
                            format!("'{a}'")
                        }
                    })
                    .join(" ")
            )
        } else {
            "classic, the broker's default queue version".to_owned()
        }
    );
    say!("at start: {}", sample::load());
    if let Some(note) = &cli.note {
        say!("note: {note}");
    }
    let conns = cli.connections as u64 + 10;
    need_fds(nofile, conns)?;
    match &cli.command {
        Some(Cmd::Cluster {
            devices,
            stop_node,
            cluster_script,
        }) => {
            let plan = cluster::Plan {
                devices: *devices,
                connections: cli.connections,
                stop_node: *stop_node,
                script: in_repo(cluster_script),
                concurrency,
            };
            cluster::run(&env, &plan).await
        }
        Some(Cmd::Chaos {
            operations,
            seed,
            devices,
            real_agents,
            window,
            spread,
            bound,
            http_retries,
            plan_only,
            cluster_script,
        }) => {
            let campaign = chaos::Campaign {
                operations: *operations,
                seed: seed.unwrap_or_else(|| fastrand::u64(..)),
                devices: *devices,
                real_agents: *real_agents,
                connections: cli.connections,
                window: (*window).into(),
                spread: (*spread).into(),
                bound: (*bound).into(),
                http_retries: *http_retries,
                script: in_repo(cluster_script),
                plan_only: *plan_only,
            };
            chaos::run(&env, &campaign).await
        }
        Some(Cmd::Curve {
            points,
            latency_ms,
            chart,
        }) => {
            local_broker(conns)?;
            let plan = curve::Curve {
                points: points.clone(),
                latency_ms: *latency_ms,
                connections: cli.connections,
                chart: chart
                    .clone()
                    .unwrap_or_else(|| record.with_extension("svg")),
            };
            curve::run(&env, &plan).await
        }
        Some(Cmd::Soak {
            operations,
            devices,
            every,
            settle,
            keep,
            chart,
        }) => {
            local_broker(conns)?;
            let plan = soak::Soak {
                operations: *operations,
                devices: *devices,
                every: *every,
                settle: *settle,
                keep: *keep,
                connections: cli.connections,
                chart: chart
                    .clone()
                    .unwrap_or_else(|| record.with_extension("svg")),
            };
            soak::run(&env, &plan).await
        }
        Some(Cmd::Fault { devices }) => {
            local_broker(conns)?;
            fault::run(&env, *devices, cli.connections).await
        }
        None => {
            local_broker(conns)?;
            check_python(&env.baseline)?;
            scenarios::table(&env, &cli, concurrency).await
        }
    }
}

/// The local broker is there and takes `conns` more connections: fail
/// before minutes of work, not after.
fn local_broker(conns: u64) -> anyhow::Result<()> {
    drop(broker::vhost("load-check")?);
    broker::check_socket_limit(conns)
}

fn need_fds(have: u64, sockets: u64) -> anyhow::Result<()> {
    if have < sockets + 300 {
        bail!(
            "this process may open only {have} files and needs {sockets} sockets plus files; \
             raise the limit (`ulimit -n 20000`) and try again"
        );
    }
    Ok(())
}

fn check_python(dir: &std::path::Path) -> anyhow::Result<()> {
    for f in ["seed_edge.py", "seed_agent.py"] {
        if !dir.join(f).exists() {
            bail!(
                "{} not found; give --baseline-dir (the folder with the Python baseline, bench/baseline in the repository)",
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
            "the baseline needs Python 3 with pika and requests: `python3 -m pip install pika requests` (bash scripts/setup installs them)"
        );
    }
    Ok(())
}
