//! The fault campaign, `burnin-load chaos --operations N --seed S`: many
//! operations in a row through the API of two `serve` edges (active and
//! standby on one PostgreSQL store, a private server that can be
//! restarted), on the 3-node cluster of `scripts/cluster` with a quorum
//! reply queue, while 1–3 faults per operation, drawn from the seed
//! ([`plan`]), strike at random times ([`nemesis`]). Then the checker
//! ([`checker`]), a pure function of the recorded history, decides.
//!
//! The campaign runs on wall-clock time, so the same seed replays the same
//! *schedule* of faults (which, when, with what parameters), not the same
//! interleaving: where in the edge's work a fault lands still varies
//! from run to run.

pub(crate) mod checker;
mod edges;
mod nemesis;
pub(crate) mod plan;
mod report;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, anyhow, bail};
use burnin_testkit::FactoryStandIn;
use burnin_testkit::cluster::{ClusterVhost, NODES, node_name};
use burnin_testkit::pg::PrivatePg;

use crate::agents::{self, Sim};
use crate::record::say;
use crate::spawn::{self, Env};
use checker::{History, OpHistory, Post};
use edges::{EdgeSetup, Edges};
use nemesis::{Injection, World};

/// What the campaign is asked to do.
pub(crate) struct Campaign {
    pub(crate) operations: usize,
    pub(crate) seed: u64,
    pub(crate) devices: u32,
    /// How many of the devices are real `burnin-agent run` processes.
    pub(crate) real_agents: u32,
    pub(crate) connections: usize,
    /// `windowSecs` of each operation.
    pub(crate) window: Duration,
    /// Replies are spread over this long (probe delays).
    pub(crate) spread: Duration,
    /// How long past its window an operation may take.
    pub(crate) bound: Duration,
    /// `--http-retries` for the edges, if not their default.
    pub(crate) http_retries: Option<u32>,
    pub(crate) script: PathBuf,
    /// Only print the schedule.
    pub(crate) plan_only: bool,
}

/// MES latency outside the stalls.
const MES_LATENCY: Duration = Duration::from_millis(20);

impl Campaign {
    /// Faults are drawn within this long after `POST /scans`: while
    /// replies arrive (the operation reports within about a second of the
    /// last, while a burst drawn late in the span still lasts).
    fn span(&self) -> Duration {
        self.spread
    }

    fn replay(&self) -> String {
        format!(
            "burnin-load --connections {} chaos --operations {} --seed {} --devices {} --real-agents {} --window {}s --spread {}ms --bound {}s{}",
            self.connections,
            self.operations,
            self.seed,
            self.devices,
            self.real_agents,
            self.window.as_secs(),
            self.spread.as_millis(),
            self.bound.as_secs(),
            self.http_retries
                .map_or(String::new(), |n| format!(" --http-retries {n}"))
        )
    }
}

/// Whether MES's record for device `i` matches its cards: every 25th
/// (from the 13th) has a card MES does not know, so it must fail.
fn mes_passes(i: u32) -> bool {
    i % 25 != 12
}

/// Runs it; true if the checker found nothing wrong.
pub(crate) async fn run(env: &Env, c: &Campaign) -> anyhow::Result<bool> {
    let schedule = plan::plan(c.seed, c.operations, c.span());
    say!(
        "chaos: seed {}, {} operations, {} devices ({} real burnin-agent processes), window {} s, replies spread over {:.1} s, faults within {:.1} s of each POST, bound {} s, edges with {}",
        c.seed,
        c.operations,
        c.devices,
        c.real_agents,
        c.window.as_secs(),
        c.spread.as_secs_f64(),
        c.span().as_secs_f64(),
        c.bound.as_secs(),
        c.http_retries
            .map_or("their default --http-retries".into(), |n| format!(
                "--http-retries {n}"
            ))
    );
    say!("replay: {}", c.replay());
    say!("schedule (offsets from each POST /scans):");
    for (k, faults) in schedule.iter().enumerate() {
        let list: Vec<String> = faults
            .iter()
            .map(|p| format!("{:.2} s {}", p.at.as_secs_f64(), p.fault))
            .collect();
        say!("  op {:>3}: {}", k + 1, list.join("; "));
    }
    if c.plan_only {
        return Ok(true);
    }
    let setup = Instant::now();
    if c.real_agents > c.devices {
        bail!(
            "--real-agents {} is more than --devices {}",
            c.real_agents,
            c.devices
        );
    }
    if !c.script.is_file() {
        bail!(
            "{} not found; run burnin-load from the repository (or give --cluster-script scripts/cluster)",
            c.script.display()
        );
    }
    let before = crate::cluster::running_nodes(&c.script)?;
    if before.len() < NODES {
        say!(
            "the cluster runs nodes {before:?} of 1..={NODES}: starting it with `{} up` (about a minute); nodes started here are stopped again at the end",
            c.script.display()
        );
    }
    let result = async {
        let cluster = ClusterVhost::with_script("chaos", &c.script).map_err(|e| {
            anyhow!(
                "the project's RabbitMQ cluster cannot be used: {e}. Start it with `scripts/cluster up` (README, Scaling out) and try again"
            )
        })?;
        let pg = Arc::new(PrivatePg::try_new("chaos").map_err(anyhow::Error::msg)?);
        say!(
            "cluster vhost {} on {}; PostgreSQL: a private server on 127.0.0.1:{}",
            cluster.name(),
            cluster.urls().join(" "),
            pg.port()
        );
        let result = on_cluster(env, c, &cluster, pg, &schedule, setup).await;
        // Dropping the vhost starts any stopped node again and deletes it.
        drop(cluster);
        result
    }
    .await;
    crate::cluster::stop_started(&c.script, &before);
    result
}

async fn on_cluster(
    env: &Env,
    c: &Campaign,
    cluster: &ClusterVhost,
    pg: Arc<PrivatePg>,
    schedule: &[Vec<plan::Planned>],
    setup: Instant,
) -> anyhow::Result<bool> {
    let n = c.devices as usize;
    let devices: Vec<Sim> = (0..c.devices).map(|i| Sim::new("CHAOS", i)).collect();
    let factory = FactoryStandIn::start_on("127.0.0.1:0", false).map_err(anyhow::Error::msg)?;
    let mut expected = Vec::with_capacity(n);
    for (i, d) in (0u32..).zip(&devices) {
        let mut macs: Vec<&str> = d.macs.iter().map(String::as_str).collect();
        let pass = mes_passes(i);
        let other = format!("02:ee:{}", &d.macs[1][6..]);
        if !pass {
            macs[1] = &other;
        }
        factory.set_mes(&d.sn, &macs);
        expected.push((d.sn.clone(), pass));
    }
    factory.set_mes_latency(MES_LATENCY);
    let dir = env.state_dir.join(format!("chaos-{}", c.seed));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    say!("edge logs: {}", dir.display());

    // Devices: the first ones real processes, the rest burnin-amqp's
    // agent adapter, every connection given all three nodes.
    let urls = cluster.urls();
    let (real, simulated) = devices.split_at(c.real_agents as usize);
    let real_name = |d: &Sim| format!("burnin-load chaos agent {}", d.sn);
    let _real = spawn::start_real_agents(env, &urls, real, &dir, real_name)?;
    let first = real.len();
    let spread = c.spread;
    let delay = move |i: usize| spread.mul_f64((first + i) as f64 / n.max(1) as f64);
    let sim_name = |k: usize| format!("burnin-load chaos agents {k}");
    say!("starting {} simulated agents…", simulated.len());
    let fleet = agents::start_burnin(&urls, simulated, c.connections, delay, sim_name).await?;
    let per_conn = agents::per_connection(simulated.len(), c.connections);
    let mut agent_conns: Vec<String> = (0..simulated.len().div_ceil(per_conn.max(1)))
        .map(sim_name)
        .collect();
    agent_conns.extend(real.iter().map(real_name));
    wait_consumers(cluster, n).await?;
    say!(
        "agents: {} real burnin-agent run processes, {}; {} agent connections",
        real.len(),
        fleet.label,
        agent_conns.len()
    );

    let token = format!("chaos-{:016x}", fastrand::u64(..));
    let mut args = Vec::new();
    for url in &urls {
        args.extend(["--amqp-url".to_owned(), url.clone()]);
    }
    args.extend(
        ["--reply-queue-type", "quorum", "--store"]
            .map(str::to_owned)
            .into_iter()
            .chain([pg.url()]),
    );
    if let Some(n) = c.http_retries {
        args.extend(["--http-retries".to_owned(), n.to_string()]);
    }
    let edges = Edges::new(EdgeSetup {
        args,
        token,
        dir: dir.clone(),
        rust_log: "info".into(),
    })?;
    edges.start(env, &factory, 0).await?;
    if edges.await_active(Duration::from_secs(30)).await.is_none() {
        bail!(
            "edge A did not become active within 30 s: {}",
            edges.log(0).display()
        );
    }
    edges.start(env, &factory, 1).await?;
    say!(
        "edges: A {} and B {}, one PostgreSQL store; roles {:?} / {:?}",
        edges.base(0),
        edges.base(1),
        edges.health(0).await,
        edges.health(1).await
    );

    say!(
        "setup took {:.1} s (cluster, PostgreSQL, agents, edges)",
        setup.elapsed().as_secs_f64()
    );
    let t0 = Instant::now();
    let world = World {
        env,
        edges: &edges,
        factory: &factory,
        pg,
        script: c.script.clone(),
        vhost: cluster.name().to_owned(),
        agent_conns,
        mes_latency: MES_LATENCY,
        t0,
    };
    let sns: Vec<&str> = devices.iter().map(|d| d.sn.as_str()).collect();
    let mut ops = Vec::new();
    let mut injections: Vec<Injection> = Vec::new();
    let mut hints = 0;
    let mut preferred = 0;
    for (k, faults) in schedule.iter().enumerate() {
        let op = k as u64 + 1;
        if !edges.await_ready(Duration::from_secs(30)).await {
            say!("op {op}: no edge was active and ready within 30 s; posting anyway");
        }
        let body = serde_json::json!({
            "operationId": op,
            "expected": sns,
            "windowSecs": c.window.as_secs(),
        });
        let limit = c.window + c.bound;
        let op_t0 = Instant::now();
        let posted = t0.elapsed();
        world.log(k, &format!("POST /scans operation {op}"));
        let drive = async {
            let p = edges::post_scan(&edges, &mut preferred, &body, op_t0, limit).await;
            let finished = match p.accepted {
                Some(_) => edges::await_finished(&edges, op, op_t0, limit).await,
                None => None,
            };
            (p, finished)
        };
        let nemesis = futures::future::join_all(faults.iter().map(|p| world.inject(k, p, op_t0)));
        let ((p, finished), done) = tokio::join!(drive, nemesis);
        hints += p.hints_followed;
        let accepted_by = p.accepted.map(|(_, i, _)| edges::NAMES[i]);
        world.log(
            k,
            &format!(
                "operation {op}: accepted by {} after {} attempt(s) ({} hint(s) followed){}; {}",
                accepted_by.unwrap_or("no edge"),
                p.attempts,
                p.hints_followed,
                p.last_error
                    .as_deref()
                    .map_or(String::new(), |e| format!(", last refusal: {e}")),
                match &finished {
                    Some((at, state)) => format!("{state} {:.2} s after POST", at.as_secs_f64()),
                    None => "NOT FINISHED".into(),
                }
            ),
        );
        ops.push(OpHistory {
            op: op.to_string(),
            devices: expected.clone(),
            window: c.window,
            posted,
            accepted: p.accepted.map(|(at, _, _)| posted + at),
            finished: finished.map(|(at, state)| (posted + at, state)),
        });
        injections.extend(done);
    }
    let at_end = edges::all_operations(&edges).await;
    let starts = edges.starts();
    edges.stop_all();
    fleet.stop().await;

    let requests = factory.take_requests();
    let posts: Vec<Post> = requests
        .iter()
        .filter(|r| r.method == "POST")
        .map(|r| Post {
            path: r.path.clone(),
            key: r.header("idempotency-key").map(str::to_owned),
            body: r.body.clone(),
            status: r.status,
        })
        .collect();
    let incidents = injections
        .iter()
        .filter_map(|i| {
            i.problem
                .as_ref()
                .map(|p| format!("op {} ({}): {p}", i.op + 1, i.planned.fault))
        })
        .collect();
    let history = History {
        bound: c.bound,
        ops,
        posts,
        at_end,
        incidents,
    };
    let verdict = checker::check(&history);
    let mes: Vec<u16> = requests
        .iter()
        .filter(|r| r.method == "GET")
        .map(|r| r.status)
        .collect();
    report::print(&report::Report {
        campaign: c,
        verdict: &verdict,
        injections: &injections,
        history: &history,
        mes_statuses: &mes,
        hints,
        edge_starts: starts,
    });
    Ok(verdict.passed())
}

/// Waits until `n` agents consume their command queues (server-named
/// `amq.gen-*`) on the cluster.
async fn wait_consumers(cluster: &ClusterVhost, n: usize) -> anyhow::Result<()> {
    let t = Instant::now();
    loop {
        let node = cluster.any_running();
        let listed = cluster
            .try_ctl(
                node,
                &[
                    "list_consumers",
                    "-p",
                    cluster.name(),
                    "--quiet",
                    "--no-table-headers",
                    "queue_name",
                ],
            )
            .unwrap_or_default();
        let have = listed
            .lines()
            .filter(|q| q.trim().starts_with("amq.gen-"))
            .count();
        if have >= n {
            return Ok(());
        }
        if t.elapsed() > Duration::from_secs(60) {
            bail!(
                "only {have} of {n} agents consume their command queue after 60 s (asked {})",
                node_name(node)
            );
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}
