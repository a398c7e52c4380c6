//! The cluster run: 3,000 devices spread over the three nodes
//! of the project's cluster (`scripts/cluster`), the durable `scan` given
//! every node and a quorum reply queue, MES at 20 ms; optionally the node
//! holding the most agents is stopped mid-window. The fault run's checker
//! ([`crate::check`]) decides whether every device was reported exactly
//! once, and the run fails if it was not.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{Context as _, anyhow, bail};
use burnin_testkit::cluster::{ClusterVhost, NODES, node_name};

use crate::agents::{self, Sim};
use crate::check;
use crate::fault;
use crate::record::say;
use crate::scenarios::factory_for;
use crate::spawn::{self, Broker, Env, Store};
use crate::table::{self, Row};

/// MES latency of the cluster run.
const MES_MS: u64 = 20;
/// When the node is stopped, after `scan` started.
const STOP_AT: Duration = Duration::from_millis(1000);
/// With a node stopped, replies are spread over this long (probe delays),
/// so the node goes while agents on it are still answering.
const SPREAD: Duration = Duration::from_secs(8);

/// What the run is asked to do.
pub(crate) struct Plan {
    pub(crate) devices: u32,
    pub(crate) connections: usize,
    pub(crate) stop_node: bool,
    /// `scripts/cluster`.
    pub(crate) script: PathBuf,
    /// The edge's MES concurrency, for the table's bound.
    pub(crate) concurrency: u32,
}

/// Which nodes run (`scripts/cluster status`).
pub(crate) fn running_nodes(script: &Path) -> anyhow::Result<Vec<usize>> {
    let out = Command::new("bash")
        .arg(script)
        .arg("status")
        .output()
        .with_context(|| format!("cannot run {} status", script.display()))?;
    if !out.status.success() {
        bail!(
            "{} status failed: {}",
            script.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    let text = String::from_utf8_lossy(&out.stdout);
    Ok((1..=NODES)
        .filter(|&n| {
            text.lines()
                .any(|l| l.starts_with(&format!("{} up", node_name(n))))
        })
        .collect())
}

/// Runs it; true if every check passed. Nodes this run had to start are
/// stopped again at the end (their data kept), so the cluster is left as
/// it was found.
pub(crate) async fn run(env: &Env, plan: &Plan) -> anyhow::Result<bool> {
    if !plan.script.is_file() {
        bail!(
            "{} not found; run burnin-load from the repository (or give --cluster-script scripts/cluster)",
            plan.script.display()
        );
    }
    let before = running_nodes(&plan.script)?;
    if before.len() < NODES {
        say!(
            "the cluster runs nodes {before:?} of 1..={NODES}: starting it with `{} up` (about 25 s the first time); nodes started here are stopped again at the end",
            plan.script.display()
        );
    }
    let result = match ClusterVhost::with_script("load", &plan.script) {
        Ok(cluster) => {
            let r = on_cluster(env, plan, &cluster).await;
            // Dropping it starts a stopped node again and deletes the vhost.
            drop(cluster);
            r
        }
        Err(e) => Err(anyhow!(
            "the project's RabbitMQ cluster cannot be used: {e}. Start it with `scripts/cluster up` (README, Scaling out) and try again"
        )),
    };
    stop_started(&plan.script, &before);
    result
}

/// Stops the nodes that were not running `before` (their data kept), so
/// the cluster is left as it was found.
pub(crate) fn stop_started(script: &Path, before: &[usize]) {
    for n in (1..=NODES).filter(|n| !before.contains(n)) {
        say!("stopping {} again (it was not running)", node_name(n));
        let _ = Command::new("bash")
            .arg(script)
            .args(["stop-node", &n.to_string()])
            .output();
    }
}

/// Each node's OS process id.
fn node_pids(cluster: &ClusterVhost) -> Vec<String> {
    (1..=NODES)
        .filter_map(|n| {
            let out = cluster.try_ctl(n, &["eval", "os:getpid()."]).ok()?;
            let pid = out.trim().trim_matches('"').to_owned();
            pid.chars().all(|c| c.is_ascii_digit()).then_some(pid)
        })
        .collect()
}

/// Devices and connections per node, from `rabbitmqctl list_connections`
/// (connection `c` of the fleet carries the devices of chunk `c`).
fn agents_per_node(
    conns: &[(String, usize)],
    devices: usize,
    per_conn: usize,
) -> BTreeMap<usize, (usize, usize)> {
    let mut per_node = BTreeMap::new();
    for (name, node) in conns {
        let Some(c) = name
            .strip_prefix(AGENTS_NAME)
            .and_then(|c| c.parse::<usize>().ok())
        else {
            continue;
        };
        let held = devices.saturating_sub(c * per_conn).min(per_conn);
        let e: &mut (usize, usize) = per_node.entry(*node).or_default();
        e.0 += held;
        e.1 += 1;
    }
    per_node
}

const AGENTS_NAME: &str = "burnin-load cluster agents ";

fn show(per_node: &BTreeMap<usize, (usize, usize)>) -> String {
    (1..=NODES)
        .map(|n| {
            let (d, c) = per_node.get(&n).copied().unwrap_or_default();
            format!("mq{n} {d} devices ({c} connections)")
        })
        .collect::<Vec<_>>()
        .join(", ")
}

async fn on_cluster(env: &Env, plan: &Plan, cluster: &ClusterVhost) -> anyhow::Result<bool> {
    let n = plan.devices as usize;
    let devices: Vec<Sim> = (0..plan.devices).map(|i| Sim::new("CLUSTER", i)).collect();
    say!(
        "cluster: {NODES} nodes of {} (vhost {}): {}",
        plan.script.display(),
        cluster.name(),
        cluster.urls().join(" ")
    );
    let factory = factory_for(&devices, MES_MS)?;
    let spread = if plan.stop_node {
        SPREAD
    } else {
        Duration::ZERO
    };
    let delay = move |i: usize| spread.mul_f64(i as f64 / n.max(1) as f64);
    say!("starting {n} burnin agents, each connection given all {NODES} nodes…");
    let fleet = agents::start_burnin(&cluster.urls(), &devices, plan.connections, delay, |c| {
        format!("{AGENTS_NAME}{c}")
    })
    .await?;
    let per_conn = agents::per_connection(n, plan.connections);
    let chunks = n.div_ceil(per_conn);
    let mut problems = Vec::new();
    let conns = cluster
        .try_connections()
        .map_err(|e| anyhow!("cannot list the cluster's connections: {e}"))?;
    let before = agents_per_node(&conns, n, per_conn);
    say!("burnin: {}", fleet.label);
    say!(
        "agents per node (rabbitmqctl list_connections): {}",
        show(&before)
    );
    let counted: usize = before.values().map(|(d, _)| d).sum();
    if counted != n || before.len() != NODES {
        problems.push(format!(
            "the agents are not spread over all {NODES} nodes: {} ({counted} of {n} devices seen)",
            show(&before)
        ));
    }
    let victim = plan
        .stop_node
        .then(|| {
            before
                .iter()
                .max_by_key(|(_, (d, _))| *d)
                .map(|(node, (d, _))| (*node, *d))
        })
        .flatten();
    let broker = Broker {
        urls: cluster.urls(),
        pids: node_pids(cluster),
        edge_args: vec!["--reply-queue-type".into(), "quorum".into()],
    };
    let stopper = victim.map(|(node, held)| {
        say!(
            "node {} holds the most agents ({held} devices): it is stopped {:.1} s after scan starts, replies spread over {:.0} s",
            node_name(node),
            STOP_AT.as_secs_f64(),
            SPREAD.as_secs_f64()
        );
        let script = plan.script.clone();
        tokio::spawn(async move {
            tokio::time::sleep(STOP_AT).await;
            let started = std::time::Instant::now();
            let out = tokio::process::Command::new("bash")
                .arg(&script)
                .args(["stop-node", &node.to_string()])
                .output()
                .await;
            (out, started.elapsed())
        })
    });
    let op = 8_000_001u64;
    let window = "60s";
    eprintln!("{n} @ {MES_MS} ms on the cluster: burnin scan, durable…");
    let run = spawn::scan(env, &broker, &factory, &devices, op, window, Store::Disk).await;
    if let Some(stopper) = stopper {
        match stopper.await {
            Ok((Ok(out), took)) if out.status.success() => say!(
                "stopped {} ({:.1} s for `scripts/cluster stop-node`)",
                victim.map_or(String::new(), |(v, _)| node_name(v)),
                took.as_secs_f64()
            ),
            Ok((Ok(out), _)) => problems.push(format!(
                "stop-node failed: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            )),
            Ok((Err(e), _)) => problems.push(format!("cannot run stop-node: {e}")),
            Err(e) => problems.push(format!("the stopping task failed: {e}")),
        }
    }
    let run = run?;
    if let Some((v, _)) = victim {
        // Every agent connection is back, none on the stopped node.
        let mut after = Vec::new();
        for _ in 0..30 {
            after = cluster
                .try_connections()
                .map_err(|e| anyhow!("cannot list the cluster's connections: {e}"))?;
            if agents_per_node(&after, n, per_conn)
                .values()
                .map(|(_, c)| c)
                .sum::<usize>()
                == chunks
            {
                break;
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
        let after = agents_per_node(&after, n, per_conn);
        say!("agents per node afterwards: {}", show(&after));
        if after.contains_key(&v) {
            problems.push(format!(
                "agents are still on the stopped node {}",
                node_name(v)
            ));
        }
    }
    let label = fleet.label.clone();
    fleet.stop().await;

    let mut findings = check::check(&fault::record(op, &devices, &run));
    findings.problems.extend(problems);
    let scenario = match victim {
        Some((v, _)) => format!(
            "{} @ {MES_MS} ms, {NODES}-node cluster, mq{v} stopped",
            thousands(n)
        ),
        None => format!("{} @ {MES_MS} ms, {NODES}-node cluster", thousands(n)),
    };
    let row = Row {
        scenario,
        devices: n,
        latency_ms: MES_MS,
        durable: run.timing,
        memory: None,
        serve: None,
        baseline: None,
        agents: format!(
            "burnin: {label}, each connection given all {NODES} nodes; edge: scan --state-db FILE, {NODES} × --amqp-url, --reply-queue-type quorum"
        ),
    };
    table::print(std::slice::from_ref(&row), plan.concurrency);
    if let Some(p) = &row.durable.problem {
        findings.problems.push(p.clone());
    }
    say!(
        "edge stderr lines mentioning a reconnect: {}",
        run.stderr.matches("reconnect").count()
    );
    for l in &findings.lines {
        say!("{l}");
    }
    for p in &findings.problems {
        say!("PROBLEM: {p}");
    }
    if findings.passed() {
        say!("cluster run: every device reported exactly once; every check passed");
    } else {
        say!("cluster run: {} check(s) FAILED", findings.problems.len());
    }
    Ok(findings.passed())
}

/// 3000 → `3,000`.
fn thousands(n: usize) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, ch) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(ch);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn devices_are_counted_per_node_from_connection_names() {
        // 250 devices, 100 per connection: connections 0, 1 hold 100, 2 holds 50.
        let conns = vec![
            (format!("{AGENTS_NAME}0"), 2),
            (format!("{AGENTS_NAME}1"), 3),
            (format!("{AGENTS_NAME}2"), 2),
            ("burnin-edge host 1".to_owned(), 1),
        ];
        let per_node = agents_per_node(&conns, 250, 100);
        assert_eq!(per_node.get(&2), Some(&(150, 2)));
        assert_eq!(per_node.get(&3), Some(&(100, 1)));
        assert_eq!(per_node.get(&1), None);
        assert_eq!(
            show(&per_node),
            "mq1 0 devices (0 connections), mq2 150 devices (2 connections), mq3 100 devices (1 connections)"
        );
    }

    #[test]
    fn thousands_are_grouped() {
        assert_eq!(thousands(3000), "3,000");
        assert_eq!(thousands(200), "200");
        assert_eq!(thousands(1_234_567), "1,234,567");
    }
}
