//! The table run: one loop over device counts — each gets a vhost, a
//! stand-in, burnin's agents and the baseline's, then every side runs at
//! each MES latency.

use std::time::{Duration, Instant};

use burnin_testkit::FactoryStandIn;

use crate::agents::{self, Fleet, Sim};
use crate::broker;
use crate::cli::Cli;
use crate::record::say;
use crate::spawn::{self, Env, Store};
use crate::table::{self, Row};

/// Who plays the baseline's devices.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Seeds {
    /// Real `seed_agent.py` processes.
    Real,
    /// Simulated, one AMQP channel each, the seed's reply format.
    Simulated,
    /// No baseline.
    None,
}

/// One device count and what runs at it.
struct Group {
    devices: u32,
    latencies: &'static [u64],
    /// The latency at which serve is driven too, if any.
    serve_at: Option<u64>,
    seeds: Seeds,
    window_secs: u64,
    /// How many times each latency runs (on the same agents).
    runs: u32,
}

fn groups(cli: &Cli) -> Vec<Group> {
    let small = |latencies| Group {
        devices: 200,
        latencies,
        serve_at: None,
        seeds: Seeds::Real,
        window_secs: 60,
        runs: 1,
    };
    let huge = Group {
        devices: 10_000,
        latencies: &[20],
        serve_at: None,
        seeds: Seeds::None,
        window_secs: 120,
        runs: cli.runs_10k.max(1),
    };
    if cli.quick {
        return vec![small(&[20])];
    }
    if cli.only_10k {
        return vec![huge];
    }
    let mut g = vec![
        small(&[0, 20]),
        Group {
            devices: 1000,
            latencies: &[0, 20],
            serve_at: Some(20),
            seeds: Seeds::Simulated,
            window_secs: 60,
            runs: 1,
        },
    ];
    if !cli.no_10k {
        g.push(huge);
    }
    g
}

/// A factory stand-in that knows `devices`, its MES answering after `ms`.
pub(crate) fn factory_for(devices: &[Sim], ms: u64) -> anyhow::Result<FactoryStandIn> {
    let f = FactoryStandIn::start_on("127.0.0.1:0", false).map_err(anyhow::Error::msg)?;
    for d in devices {
        let macs: Vec<&str> = d.macs.iter().map(String::as_str).collect();
        f.set_mes(&d.sn, &macs);
    }
    f.set_mes_latency(Duration::from_millis(ms));
    Ok(f)
}

/// Runs every group; returns the rows.
pub(crate) async fn run(env: &Env, cli: &Cli) -> anyhow::Result<Vec<Row>> {
    let mut rows = Vec::new();
    let mut op = 9_000_000u64;
    for g in groups(cli) {
        let devices: Vec<Sim> = (0..g.devices).map(|i| Sim::new("LOAD", i)).collect();
        let n = devices.len();
        let label = |n: usize| match n {
            200 => "200".to_owned(),
            1000 => "1,000".to_owned(),
            10_000 => "10,000".to_owned(),
            n => n.to_string(),
        };
        broker::wait_idle(&format!("{} devices", label(n))).await;
        let bv = broker::vhost(&format!("load-burnin-{n}"))?;
        let bfactory = factory_for(&devices, 0)?;
        say!("{} devices: starting burnin's agents…", label(n));
        let fleet = agents::start_burnin(
            &[bv.url()],
            &devices,
            cli.connections,
            |_| Duration::ZERO,
            |c| format!("burnin-load agents {c}"),
        )
        .await?;
        let pv = match g.seeds {
            Seeds::None => None,
            _ => Some(broker::vhost(&format!("load-seed-{n}"))?),
        };
        let pfactory = factory_for(&devices, 0)?;
        let (mut seeds, mut seed_fleet): (Option<spawn::Processes>, Option<Fleet>) = (None, None);
        if let Some(pv) = &pv {
            match g.seeds {
                Seeds::Real => {
                    say!(
                        "{} devices: starting {} seed_agent.py processes…",
                        label(n),
                        n
                    );
                    seeds = Some(spawn::start_seed_agents(env, pv, &devices).await?);
                }
                Seeds::Simulated => {
                    say!("{} devices: starting simulated seed agents…", label(n));
                    seed_fleet =
                        Some(agents::start_seed_multiplexed(&pv.url(), &devices, 50).await?);
                }
                Seeds::None => {}
            }
        }
        let seed_label = match g.seeds {
            Seeds::Real => format!("baseline: {n} seed_agent.py processes"),
            Seeds::Simulated => format!(
                "baseline: simulated seed agents ({})",
                seed_fleet.as_ref().map_or("", |f| f.label.as_str())
            ),
            Seeds::None => "no baseline".into(),
        };
        let runs = g
            .latencies
            .iter()
            .flat_map(|&ms| (1..=g.runs).map(move |run| (ms, run)));
        for (ms, run) in runs {
            let scenario = if run == 1 {
                format!("{} @ {ms} ms", label(n))
            } else {
                format!("{} @ {ms} ms (run {run})", label(n))
            };
            bfactory.set_mes_latency(Duration::from_millis(ms));
            pfactory.set_mes_latency(Duration::from_millis(ms));
            let window = format!("{}s", g.window_secs);
            op += 1;
            eprintln!("{scenario}: burnin scan, durable…");
            let target = spawn::Broker::local(&bv);
            let durable =
                spawn::scan(env, &target, &bfactory, &devices, op, &window, Store::Disk).await?;
            op += 1;
            eprintln!("{scenario}: burnin scan, in memory…");
            let memory = spawn::scan(
                env,
                &target,
                &bfactory,
                &devices,
                op,
                &window,
                Store::Memory,
            )
            .await?;
            let serve = if g.serve_at == Some(ms) {
                op += 1;
                eprintln!("{scenario}: burnin serve…");
                Some(
                    spawn::serve(env, &bv, &bfactory, &devices, op, g.window_secs)
                        .await?
                        .timing,
                )
            } else {
                None
            };
            let baseline = match &pv {
                Some(pv) => {
                    eprintln!("{scenario}: baseline…");
                    Some(spawn::baseline(env, pv, &pfactory, n, op).await?)
                }
                None => None,
            };
            rows.push(Row {
                scenario,
                devices: n,
                latency_ms: ms,
                durable: durable.timing,
                memory: Some(memory.timing),
                serve,
                baseline,
                agents: format!("burnin: {}; {seed_label}", fleet.label),
            });
        }
        drop(seeds.take());
        if let Some(f) = seed_fleet.take() {
            f.stop().await;
        }
        fleet.stop().await;
        drop(pv);
        drop(bv);
    }
    Ok(rows)
}

/// The whole table run: machine, footprint, scenarios, table, goals.
pub(crate) async fn table(env: &Env, cli: &Cli, concurrency: u32) -> anyhow::Result<bool> {
    let started = Instant::now();
    let footprint = match spawn::footprint(env).await {
        Ok(f) => {
            say!("{f}");
            Some(f)
        }
        Err(e) => {
            say!("Footprint: not measured: {e:#}");
            None
        }
    };
    let rows = run(env, cli).await?;
    table::print(&rows, concurrency);
    say!();
    say!("{}", table::DIFFERENCES);
    say!();
    say!("{}", table::goals(&rows, footprint.as_ref()));
    say!(
        "(harness run took {:.0} s)",
        started.elapsed().as_secs_f64()
    );
    Ok(!rows.iter().any(Row::failed))
}
