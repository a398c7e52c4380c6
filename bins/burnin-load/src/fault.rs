//! The fault run: 1,000 devices while the broker closes the edge's
//! connection and every tenth agent connection mid-window; then the
//! checker ([`crate::check`]) decides, and the run fails if any check does.

use std::time::Duration;

use burnin_testkit::FactoryStandIn;

use crate::agents::{self, Sim};
use crate::broker;
use crate::check::{self, Post, Record};
use crate::record::say;
use crate::spawn::{self, Env, Store};

/// What the checker needs from a `scan` run of operation `op` that
/// asked every one of `devices`.
pub(crate) fn record(op: u64, devices: &[Sim], run: &spawn::Run) -> Record {
    Record {
        op: op.to_string(),
        expected: devices.iter().map(|d| d.sn.clone()).collect(),
        posts: run
            .requests
            .iter()
            .filter(|r| r.method == "POST")
            .map(|r| Post {
                path: r.path.clone(),
                key: r.header("idempotency-key").map(str::to_owned),
                body: r.body.clone(),
            })
            .collect(),
        replies: run.replies,
    }
}

/// Runs it; true if every check passed.
pub(crate) async fn run(env: &Env, n: u32, connections: usize) -> anyhow::Result<bool> {
    let devices: Vec<Sim> = (0..n).map(|i| Sim::new("FAULT", i)).collect();
    let v = broker::vhost("load-fault")?;
    let f = FactoryStandIn::start_on("127.0.0.1:0", false).map_err(anyhow::Error::msg)?;
    for d in &devices {
        let macs: Vec<&str> = d.macs.iter().map(String::as_str).collect();
        f.set_mes(&d.sn, &macs);
    }
    f.set_mes_latency(Duration::from_millis(20));
    // Replies spread over 4 s (probe delays), so the closes at 1.5 s hit
    // agents before, while and after they reply, and an edge with
    // replies in flight.
    let spread = Duration::from_secs(4);
    let delay = move |i: usize| spread.mul_f64(i as f64 / f64::from(n.max(1)));
    let name = |c: usize| format!("burnin-load agents {c}");
    say!("starting {n} burnin agents…");
    let fleet = agents::start_burnin(&[v.url()], &devices, connections, delay, name).await?;
    let conns = devices
        .len()
        .div_ceil(agents::per_connection(devices.len(), connections));
    let victims: Vec<String> = (0..conns).filter(|c| c % 10 == 3).map(name).collect();
    say!("burnin: {}", fleet.label);
    // The edge is told its connection's name, and that exact name is
    // closed: its default name may change without this run noticing.
    let edge_name = format!("burnin-load fault edge {}", v.name());
    let mut broker_of_edge = spawn::Broker::local(&v);
    broker_of_edge
        .edge_args
        .extend(["--connection-name".to_owned(), edge_name.clone()]);
    let vname = v.name().to_owned();
    let wanted = victims.len();
    let mut targets = victims;
    targets.push(edge_name.clone());
    let closer = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(1500)).await;
        tokio::task::spawn_blocking(move || broker::close_connections(None, &vname, &targets))
            .await
            .map_err(anyhow::Error::from)
            .and_then(|r| r)
    });
    let op = 7_000_001u64;
    let run = spawn::scan(env, &broker_of_edge, &f, &devices, op, "30s", Store::Disk).await?;
    let closed_names = closer.await??;
    let closed = closed_names.len();
    fleet.stop().await;

    say!(
        "closed {closed} connections broker-side at 1.5 s (meant: the edge's and {wanted} agent connections, every tenth): {}",
        closed_names.join(", ")
    );
    let t = &run.timing;
    say!(
        "command to notification {}, process {:.3} s; {}",
        t.shown(),
        t.total_s,
        t.phases
    );
    say!(
        "edge stderr lines mentioning a reconnect: {}",
        run.stderr.matches("reconnect").count()
    );
    let record = record(op, &devices, &run);
    let mut findings = check::check(&record);
    if !closed_names.contains(&edge_name) {
        findings.problems.push(format!(
            "the edge's connection {edge_name:?} was not closed (not open at 1.5 s?)"
        ));
    }
    if closed != wanted + 1 {
        findings.problems.push(format!(
            "closed {closed} connections, meant to close {}",
            wanted + 1
        ));
    }
    if let Some(p) = &t.problem {
        findings.problems.push(p.clone());
    }
    for l in &findings.lines {
        say!("{l}");
    }
    for p in &findings.problems {
        say!("PROBLEM: {p}");
    }
    if findings.passed() {
        say!("fault run: every check passed");
    } else {
        say!("fault run: {} check(s) FAILED", findings.problems.len());
    }
    Ok(findings.passed())
}
