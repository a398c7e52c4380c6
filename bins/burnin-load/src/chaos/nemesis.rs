//! Injects the planned faults, logs each with its time, and says honestly
//! which could not be injected.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use burnin_testkit::FactoryStandIn;
use burnin_testkit::cluster::{NODES, node_name};
use burnin_testkit::pg::PrivatePg;

use super::edges::{Edges, NAMES};
use super::plan::{FACTORY_DOWN, Fault, MES_STALL, Planned, RETRY_AFTER, choose};
use crate::broker;
use crate::record::say;
use crate::spawn::Env;

/// What the faults act on.
pub(crate) struct World<'a> {
    pub(crate) env: &'a Env,
    pub(crate) edges: &'a Edges,
    pub(crate) factory: &'a FactoryStandIn,
    pub(crate) pg: Arc<PrivatePg>,
    /// `scripts/cluster`.
    pub(crate) script: PathBuf,
    pub(crate) vhost: String,
    /// Every agent connection's name (simulated and real agents).
    pub(crate) agent_conns: Vec<String>,
    /// MES latency outside a stall.
    pub(crate) mes_latency: Duration,
    /// When the campaign began: every time logged is since then.
    pub(crate) t0: Instant,
}

/// What became of one planned fault.
#[derive(Debug, Clone)]
pub(crate) struct Injection {
    /// The operation's number (0-based).
    pub(crate) op: usize,
    pub(crate) planned: Planned,
    /// When it was injected (since the campaign began), if it was.
    pub(crate) at: Option<Duration>,
    /// What was done, or why it could not be.
    pub(crate) what: String,
    /// For the active edge stopped (or PostgreSQL restarted): how long
    /// until an edge was active again.
    pub(crate) takeover: Option<Duration>,
    /// Something wrong seen while injecting or healing (an edge that
    /// did not stop on SIGTERM, two active edges, a node that would not
    /// start again).
    pub(crate) problem: Option<String>,
}

impl Injection {
    pub(crate) fn injected(&self) -> bool {
        self.at.is_some()
    }
}

impl World<'_> {
    fn now(&self) -> Duration {
        self.t0.elapsed()
    }

    /// Logs `what` for operation `op`, with the time since the campaign began.
    pub(crate) fn log(&self, op: usize, what: &str) {
        say!(
            "[{:>9.3} s] op {:>3} | {what}",
            self.now().as_secs_f64(),
            op + 1
        );
    }

    /// Waits until `op_t0 + planned.at`, injects it, heals it, and
    /// returns what happened.
    pub(crate) async fn inject(&self, op: usize, planned: &Planned, op_t0: Instant) -> Injection {
        // What takes rabbitmqctl a second or two (which nodes run) is
        // asked before the fault is due, so it strikes on time.
        let running = match planned.fault {
            Fault::NodeStop { .. } | Fault::CloseAgents { .. } => {
                futures::future::join_all((1..=NODES).map(|m| self.node_running(m))).await
            }
            _ => Vec::new(),
        };
        tokio::time::sleep_until((op_t0 + planned.at).into()).await;
        let mut out = Injection {
            op,
            planned: planned.clone(),
            at: None,
            what: String::new(),
            takeover: None,
            problem: None,
        };
        self.log(op, &format!("fault: {}", planned.fault));
        match &planned.fault {
            Fault::NodeStop { node, down_for } => {
                self.node_stop(&mut out, &running, *node, *down_for).await
            }
            Fault::KillActive => self.kill_active(&mut out).await,
            Fault::TermEdge { active } => self.term_edge(&mut out, *active).await,
            Fault::PgRestart => self.pg_restart(&mut out).await,
            Fault::CloseAgents { pick } => self.close_agents(&mut out, &running, *pick).await,
            Fault::Mes5xx { status, burst } => {
                out.at = Some(self.now());
                self.factory.mes_failing(*status, None);
                tokio::time::sleep(*burst).await;
                self.factory.mes_normal();
                out.what = format!("MES answered {status} for {:.1} s", burst.as_secs_f64());
            }
            Fault::Mes429 { burst } => {
                out.at = Some(self.now());
                self.factory.mes_failing(429, Some(RETRY_AFTER));
                tokio::time::sleep(*burst).await;
                self.factory.mes_normal();
                out.what = format!(
                    "MES answered 429 Retry-After: {RETRY_AFTER} for {:.1} s",
                    burst.as_secs_f64()
                );
            }
            Fault::MesStall { burst } => {
                out.at = Some(self.now());
                self.factory.set_mes_latency(MES_STALL);
                tokio::time::sleep(*burst).await;
                self.factory.set_mes_latency(self.mes_latency);
                out.what = format!(
                    "MES lookups arriving in {:.1} s waited {:.0} s each",
                    burst.as_secs_f64(),
                    MES_STALL.as_secs_f64()
                );
            }
            Fault::FactoryDown { path } => {
                out.at = Some(self.now());
                self.factory.down(path);
                tokio::time::sleep(FACTORY_DOWN).await;
                self.factory.up(path);
                out.what = format!(
                    "{path} answered 503 for {:.0} s",
                    FACTORY_DOWN.as_secs_f64()
                );
            }
        }
        if let Some(at) = out.at {
            let late = at.saturating_sub(op_t0.duration_since(self.t0) + planned.at);
            out.what = format!(
                "{} [injected {:.2} s after POST, {:.2} s after its planned time]",
                out.what,
                (at.saturating_sub(op_t0.duration_since(self.t0))).as_secs_f64(),
                late.as_secs_f64()
            );
        }
        let verb = if out.injected() {
            "healed"
        } else {
            "NOT INJECTED"
        };
        self.log(op, &format!("{verb}: {}", out.what));
        if let Some(p) = &out.problem {
            self.log(op, &format!("PROBLEM: {p}"));
        }
        out
    }

    async fn node_running(&self, n: usize) -> bool {
        tokio::process::Command::new("rabbitmqctl")
            .args(["-n", &node_name(n), "-q", "ping"])
            .output()
            .await
            .is_ok_and(|o| o.status.success())
    }

    async fn cluster_script(&self, args: &[&str]) -> Result<(), String> {
        let out = tokio::process::Command::new("bash")
            .arg(&self.script)
            .args(args)
            .output()
            .await
            .map_err(|e| format!("cannot run {}: {e}", self.script.display()))?;
        if out.status.success() {
            Ok(())
        } else {
            Err(String::from_utf8_lossy(&out.stderr).trim().to_owned())
        }
    }

    /// `running`: whether each node answered a ping just before.
    async fn node_stop(&self, out: &mut Injection, running: &[bool], n: usize, down_for: Duration) {
        if let Some(m) = running.iter().position(|up| !up) {
            out.what = format!(
                "{} is not running: stopping mq{n} could take the quorum away",
                node_name(m + 1)
            );
            return;
        }
        let started = Instant::now();
        if let Err(e) = self.cluster_script(&["stop-node", &n.to_string()]).await {
            out.what = format!("scripts/cluster stop-node {n} failed: {e}");
            return;
        }
        // Injected when stop-node returns: the node is down by then.
        let at = self.now();
        if self.node_running(n).await {
            out.what = format!("mq{n} still answers a ping after stop-node");
            return;
        }
        out.at = Some(at);
        self.log(
            out.op,
            &format!(
                "stopped mq{n} ({:.1} s for stop-node)",
                started.elapsed().as_secs_f64()
            ),
        );
        tokio::time::sleep(down_for).await;
        let restarting = Instant::now();
        match self.cluster_script(&["start-node", &n.to_string()]).await {
            Ok(()) => {
                out.what = format!(
                    "mq{n} down {:.1} s, started again in {:.1} s",
                    started.elapsed().as_secs_f64() - restarting.elapsed().as_secs_f64(),
                    restarting.elapsed().as_secs_f64()
                )
            }
            Err(e) => {
                out.what = format!("mq{n} stopped");
                out.problem = Some(format!("mq{n} did not start again: {e}"));
                let _ = self.cluster_script(&["up"]).await;
            }
        }
    }

    /// The active edge, waiting up to 10 s for one; notes two.
    async fn find_active(&self, out: &mut Injection) -> Option<usize> {
        let active = self.edges.active().await;
        if active.len() > 1 {
            out.problem = Some("both edges said they were active".into());
        }
        match active.first() {
            Some(&i) => Some(i),
            None => self
                .edges
                .await_active(Duration::from_secs(10))
                .await
                .map(|(i, _)| i),
        }
    }

    /// After the active edge `gone` stopped: how long until another is.
    async fn takeover(&self, out: &mut Injection, since: Instant) {
        let limit = Duration::from_secs(30);
        loop {
            let active = self.edges.active().await;
            if !active.is_empty() {
                out.takeover = Some(since.elapsed());
                return;
            }
            if since.elapsed() > limit {
                out.problem = Some(format!(
                    "no edge became active within {:.0} s",
                    limit.as_secs_f64()
                ));
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn restart(&self, out: &mut Injection, i: usize) -> String {
        match self.edges.start(self.env, self.factory, i).await {
            Ok(()) => {
                let role = self
                    .edges
                    .health(i)
                    .await
                    .map_or("?".to_owned(), |(_, r)| r);
                format!("restarted, now {role}")
            }
            Err(e) => {
                out.problem = Some(format!("edge {} did not start again: {e:#}", NAMES[i]));
                "not restarted".into()
            }
        }
    }

    async fn kill_active(&self, out: &mut Injection) {
        let _edges = self.edges.exclusive.lock().await;
        let Some(i) = self.find_active(out).await else {
            out.what = "no edge was active for 10 s".into();
            return;
        };
        let pid = self.edges.pid(i);
        let killed = Instant::now();
        let at = self.now();
        if !self.edges.kill(i) {
            out.what = format!("edge {} was not running", NAMES[i]);
            return;
        }
        out.at = Some(at);
        self.log(
            out.op,
            &format!("SIGKILLed active edge {} (pid {pid:?})", NAMES[i]),
        );
        self.takeover(out, killed).await;
        let restarted = self.restart(out, i).await;
        out.what = format!(
            "edge {} SIGKILLed; another active after {}; {restarted}",
            NAMES[i],
            out.takeover
                .map_or("—".into(), |t| format!("{:.2} s", t.as_secs_f64()))
        );
    }

    async fn term_edge(&self, out: &mut Injection, active: bool) {
        let _edges = self.edges.exclusive.lock().await;
        let Some(a) = self.find_active(out).await else {
            out.what = "no edge was active for 10 s".into();
            return;
        };
        let i = if active { a } else { 1 - a };
        let role = if active { "active" } else { "standby" };
        if self.edges.pid(i).is_none() {
            out.what = format!("the {role} edge {} was not running", NAMES[i]);
            return;
        }
        let stopped = Instant::now();
        out.at = Some(self.now());
        let exit = self.edges.term(i, Duration::from_secs(15)).await;
        let took = stopped.elapsed();
        self.log(
            out.op,
            &format!(
                "SIGTERMed {role} edge {}: {exit:?} after {:.2} s",
                NAMES[i],
                took.as_secs_f64()
            ),
        );
        match &exit {
            Ok(Some(0)) => {}
            Ok(code) => {
                out.problem = Some(format!(
                    "edge {} exited with {code:?} on SIGTERM, not 0",
                    NAMES[i]
                ))
            }
            Err(e) => out.problem = Some(format!("edge {}: {e}", NAMES[i])),
        }
        if active {
            self.takeover(out, stopped).await;
        }
        // An operator starting it again.
        tokio::time::sleep(Duration::from_millis(500)).await;
        let restarted = self.restart(out, i).await;
        out.what = format!(
            "{role} edge {} SIGTERMed, exited in {:.2} s{}; {restarted}",
            NAMES[i],
            took.as_secs_f64(),
            out.takeover.map_or(String::new(), |t| format!(
                "; another active after {:.2} s",
                t.as_secs_f64()
            ))
        );
    }

    async fn pg_restart(&self, out: &mut Injection) {
        let pg = self.pg.clone();
        let started = Instant::now();
        let at = self.now();
        let restarted = tokio::task::spawn_blocking(move || pg.try_restart()).await;
        match restarted {
            Ok(Ok(took)) => {
                out.at = Some(at);
                // Every lock session ended: an edge is elected again.
                self.takeover(out, started).await;
                out.what = format!(
                    "pg_ctl restart -m fast took {:.2} s; an edge active {} after it began",
                    took.as_secs_f64(),
                    out.takeover
                        .map_or("—".into(), |t| format!("{:.2} s", t.as_secs_f64()))
                );
            }
            Ok(Err(e)) => out.what = e,
            Err(e) => out.what = format!("the restart task failed: {e}"),
        }
    }

    /// `running`: whether each node answered a ping just before.
    async fn close_agents(&self, out: &mut Injection, running: &[bool], pick: u64) {
        let n = self.agent_conns.len();
        let k = n.div_ceil(10);
        let names: Vec<String> = choose(pick, n, k)
            .into_iter()
            .map(|i| self.agent_conns[i].clone())
            .collect();
        // Any running node closes connections on every node; one stopped
        // meanwhile (a node stop of the same operation) is skipped.
        let nodes: Vec<String> = running
            .iter()
            .enumerate()
            .filter(|(_, up)| **up)
            .map(|(m, _)| node_name(m + 1))
            .collect();
        if nodes.is_empty() {
            out.what = "no broker node answers".into();
            return;
        }
        let vhost = self.vhost.clone();
        let wanted = names.clone();
        let closed = tokio::task::spawn_blocking(move || {
            let mut last = None;
            for node in &nodes {
                match broker::close_connections(Some(node), &vhost, &wanted) {
                    Ok(closed) => return Ok(closed),
                    Err(e) => last = Some(e),
                }
            }
            Err(last.unwrap_or_else(|| anyhow::anyhow!("no broker node answers")))
        })
        .await;
        // Injected when rabbitmqctl returns: the broker has closed them.
        let at = self.now();
        match closed {
            Ok(Ok(closed)) if !closed.is_empty() => {
                out.at = Some(at);
                out.what = format!(
                    "closed {} of the {k} agent connections meant (of {n}): {}",
                    closed.len(),
                    closed.join(", ")
                );
            }
            Ok(Ok(_)) => {
                out.what = format!("none of the {k} agent connections meant was open to close")
            }
            // rabbitmqctl's first line says why; its diagnostics follow.
            Ok(Err(e)) => out.what = format!("{e:#}").lines().next().unwrap_or("").to_owned(),
            Err(e) => out.what = format!("the closing task failed: {e}"),
        }
    }
}
