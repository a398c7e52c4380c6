//! burnin-amqp on the project's 3-node RabbitMQ cluster (`scripts/cluster`,
//! started by the test if needed): failover between nodes, connection
//! names, quorum reply queues, and a node lost mid-window (SPEC §10.3).
//! These tests stop cluster nodes, so they run one at a time (see
//! `burnin_testkit::cluster`).

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use burnin_amqp::{AmqpConfig, QueueType};
use burnin_core::edge::{EdgePorts, NoObserver, run_operation};
use burnin_core::{DeviceReport, OperationId, OperationParams, PayloadKind, ReplyStream, Verdict};
use burnin_local::SystemClock;
use burnin_testkit::cluster::ClusterVhost;
use common::*;

const SECS: fn(u64) -> Duration = Duration::from_secs;

fn cluster_config(cluster: &ClusterVhost, name: String) -> AmqpConfig {
    let mut c = config(&cluster.url(1));
    c.other_urls = cluster.urls()[1..].to_vec();
    c.reply_queue_type = QueueType::Quorum;
    c.connection_name = Some(name);
    c
}

/// Waits (at most 60 s: each `rabbitmqctl` call takes a second or two
/// on a busy machine) until the vhost has exactly `n` connections.
async fn wait_for_connections(cluster: &ClusterVhost, n: usize) -> Vec<(String, usize)> {
    let started = std::time::Instant::now();
    loop {
        let conns = tokio::task::block_in_place(|| cluster.connections());
        if conns.len() == n {
            return conns;
        }
        assert!(
            started.elapsed() < SECS(60),
            "expected {n} connections within 60 s, have {}: {conns:?}",
            conns.len()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// `rabbitmqctl list_queues` of the test's vhost, on a running node: one
/// line per queue with `columns`, tab-separated (or why it could not be
/// read).
fn list_queues(cluster: &ClusterVhost, columns: &[&str]) -> String {
    let mut args = vec![
        "list_queues",
        "-p",
        cluster.name(),
        "--quiet",
        "--no-table-headers",
    ];
    args.extend_from_slice(columns);
    cluster
        .try_ctl(cluster.any_running(), &args)
        .unwrap_or_else(|e| e)
}

/// The reply queue as the cluster sees it: leader, online members,
/// consumers, ready and unacknowledged messages (or why it could not be
/// read).
fn reply_queue_state(cluster: &ClusterVhost) -> String {
    list_queues(
        cluster,
        &[
            "name",
            "leader",
            "online",
            "consumers",
            "messages_ready",
            "messages_unacknowledged",
        ],
    )
    .lines()
    .filter(|l| l.starts_with("hwinfo_queue\t"))
    .collect::<Vec<_>>()
    .join("; ")
}

/// How long device `i` of 60 takes to read its hardware. Even devices
/// answer in a burst from 0.3 s to 2.6 s, while the node is stopping (it
/// stops ~0.3 s after the command and takes about a second), odd ones
/// spread from 1 s to 15.5 s, so some answer after it is gone however long
/// stopping takes on a busy machine. The burst is what found RabbitMQ
/// channels that nack every publish after a quorum queue's leader left
/// (see `burnin_amqp::link`): with replies spread alone, one run in about
/// eight met it.
fn probe_time(i: usize) -> Duration {
    let k = i as u64 / 2;
    if i.is_multiple_of(2) {
        Duration::from_millis(300 + 80 * k)
    } else {
        SECS(1) + Duration::from_millis(500 * k)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_stopped_mid_window_loses_no_device_and_reports_each_once() {
    // The adapters' reconnects and retries, with times: shown when the
    // test fails.
    let _ = tracing_subscriber::fmt()
        .with_env_filter("burnin_amqp=info")
        .with_ansi(false)
        .with_test_writer()
        .try_init();
    let Some(cluster) = ClusterVhost::new("failover") else {
        return;
    };
    // 60 agents over the three nodes, the busiest node stopped.
    const AGENTS: usize = 60;
    let mut edge_config = cluster_config(&cluster, "burnin-edge cluster-test".into());
    edge_config.reannounce = Some(Duration::from_secs(1));
    let (publisher, mut replies) = burnin_amqp::edge::connect(edge_config).await.unwrap();
    let mut agents = Vec::new();
    for i in 0..AGENTS {
        // One connection per agent, as a real device holds, each to a
        // node picked at random from the three. Devices take 0.3 to 15.5 s to
        // read their hardware, so the node dies while its devices are
        // answering, however long stopping it takes on a busy machine.
        let c = cluster_config(&cluster, format!("burnin-agent {}", sn(i)));
        agents.push(start_slow_agent(c, i, probe_time(i)).await);
    }

    // Every connection names itself; the fleet is spread over the nodes.
    let conns = wait_for_connections(&cluster, AGENTS + 1).await;
    let conns_before = conns.clone();
    let names: BTreeSet<&str> = conns.iter().map(|(n, _)| n.as_str()).collect();
    assert!(names.contains("burnin-edge cluster-test"), "{conns:?}");
    for i in 0..AGENTS {
        assert!(
            names.contains(format!("burnin-agent {}", sn(i)).as_str()),
            "{conns:?}"
        );
    }
    let mut per_node: BTreeMap<usize, usize> = BTreeMap::new();
    for (name, node) in &conns {
        if name.starts_with("burnin-agent") {
            *per_node.entry(*node).or_default() += 1;
        }
    }
    // Random order leaves a node without any of 60 agents with a
    // probability of 3 × (2/3)^60 ≈ 1e-10.
    assert_eq!(
        per_node.len(),
        3,
        "random order should spread {AGENTS} agents over the 3 nodes: {per_node:?}"
    );
    assert_eq!(per_node.values().sum::<usize>(), AGENTS, "{per_node:?}");
    let queues = list_queues(&cluster, &["name", "type"]);
    assert!(
        queues
            .lines()
            .any(|l| l.starts_with("hwinfo_queue\t") && l.ends_with("quorum")),
        "{queues}"
    );

    // The node holding the most agents stops while they are answering:
    // their replies fail over to another node (the agents that reconnect
    // also get the command again, and skip it: answered once).
    let (victim, on_victim) = per_node
        .iter()
        .max_by_key(|(_, n)| **n)
        .map(|(node, n)| (*node, *n))
        .unwrap();
    assert!(
        per_node.values().all(|n| *n <= on_victim),
        "{per_node:?}: node {victim} is not the busiest"
    );
    let edge_node = conns
        .iter()
        .find(|(n, _)| n == "burnin-edge cluster-test")
        .map_or(0, |(_, node)| *node);
    let queue_before = reply_queue_state(&cluster);
    eprintln!(
        "agents per node {per_node:?}; the edge on node {edge_node}; reply queue {queue_before}; stopping node {victim} ({on_victim} agents)"
    );
    let op = OperationId::Number(9001);
    let mut params = OperationParams::new(op.clone());
    params.expected = (0..AGENTS).map(sn).collect();
    params.window = SECS(60);
    // The edge's own use case runs the operation (publish, re-announce
    // every second, collect, dedupe, report) while the node goes down.
    let published = std::time::Instant::now();
    let operation = tokio::spawn(async move {
        let reporter = NullReporter::default();
        let report = run_operation(
            params,
            EdgePorts {
                publisher: &publisher,
                replies: &mut replies,
                mes: &SimMes,
                reporter: &reporter,
                clock: &SystemClock,
                observer: &NoObserver,
                store: &burnin_core::NoStore,
            },
        )
        .await;
        let payloads = std::mem::take(&mut *reporter.0.lock().unwrap());
        (report, payloads, publisher, replies)
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    tokio::task::block_in_place(|| cluster.stop_node(victim));
    let stopped = published.elapsed();
    // Agents of the victim whose probe was still running when the node
    // was gone: their reply crossed the node loss.
    let victim_agents: Vec<usize> = (0..AGENTS)
        .filter(|i| {
            conns_before
                .iter()
                .any(|(n, node)| *node == victim && *n == format!("burnin-agent {}", sn(*i)))
        })
        .collect();
    let late = victim_agents
        .iter()
        .filter(|i| probe_time(**i) > stopped)
        .count();
    eprintln!(
        "node {victim} stopped {:.1} s after the command; {late} of its {} agents were still reading their hardware",
        stopped.as_secs_f64(),
        victim_agents.len()
    );
    assert!(
        late > 0,
        "stopping node {victim} took {:.1} s, longer than every probe of its agents: no reply crossed the node loss",
        stopped.as_secs_f64()
    );

    let (report, payloads, publisher, mut replies) = tokio::time::timeout(SECS(75), operation)
        .await
        .expect("the operation ends within its 60 s window")
        .expect("the operation task does not panic");
    eprintln!(
        "operation done {:.1} s after the command: {:?}",
        published.elapsed().as_secs_f64(),
        report.counters
    );
    // What each agent did: its outcomes and the connection losses it saw,
    // for the messages below.
    // An agent records its outcome once the broker confirmed its reply,
    // which may be after the edge already has that reply (the operation
    // can end first): each gets up to 5 s to say how operation 9001 went.
    let mut outcomes: Vec<Vec<String>> = Vec::new();
    let until = tokio::time::Instant::now() + SECS(5);
    for a in &mut agents {
        let mut o: Vec<String> = Vec::new();
        loop {
            let settled = o
                .iter()
                .any(|x| x.starts_with("replied") || x.starts_with("could not deliver"));
            let next = if settled {
                a.outcomes.try_recv().ok()
            } else {
                tokio::time::timeout_at(until, a.outcomes.recv())
                    .await
                    .ok()
                    .flatten()
            };
            match next {
                Some(x) => o.push(x),
                None => break,
            }
        }
        outcomes.push(o);
    }
    let story = |i: usize| {
        format!(
            "{} (on node {}): outcomes {:?}, transport errors {:?}",
            sn(i),
            conns_before
                .iter()
                .find(|(n, _)| *n == format!("burnin-agent {}", sn(i)))
                .map_or(0, |(_, node)| *node),
            outcomes[i],
            agents[i].transport_errors.lock().unwrap()
        )
    };
    // Every device reported exactly once, each passed, nothing failed.
    assert_eq!(report.error, None);
    let reported: Vec<&str> = report.devices.iter().map(|d| d.sn.as_str()).collect();
    let unique: BTreeSet<&str> = reported.iter().copied().collect();
    assert_eq!(reported.len(), AGENTS, "{reported:?}");
    assert_eq!(
        unique.len(),
        AGENTS,
        "a device reported twice: {reported:?}"
    );
    let failed: Vec<String> = report
        .devices
        .iter()
        .filter(|d| d.result != Verdict::Pass)
        .map(|d| {
            let i: usize = d.sn.as_str()[2..].parse().unwrap();
            story(i)
        })
        .collect();
    if !failed.is_empty() {
        // Where did the missing replies go? The queue's counts, then what
        // the edge's consumer still receives, then (the edge's connection
        // closed, so unacknowledged messages return) what is left in the
        // queue.
        let missing: BTreeSet<String> = report
            .devices
            .iter()
            .filter(|d| d.result != Verdict::Pass)
            .map(|d| d.sn.as_str().to_owned())
            .collect();
        let after_window = reply_queue_state(&cluster);
        let mut late = Vec::new();
        while let Ok(Some(next)) = tokio::time::timeout(SECS(5), replies.next_reply()).await {
            let Ok(d) = next else { continue };
            let r = DeviceReport::from_slice(&d.body).unwrap();
            late.push(format!("{} (redelivered {})", r.sn, d.redelivered));
        }
        publisher.close().await;
        tokio::time::sleep(SECS(2)).await;
        let after_close = reply_queue_state(&cluster);
        let survivor = (1..=3).find(|n| *n != victim).unwrap();
        let raw = Raw::connect(&cluster.url(survivor)).await;
        let left: Vec<String> = raw
            .drain("hwinfo_queue")
            .await
            .iter()
            .map(|d| {
                let r = DeviceReport::from_slice(&d.data).unwrap();
                format!("{} (redelivered {})", r.sn, d.redelivered)
            })
            .collect();
        panic!(
            "node {victim} stopped {:.1} s after the command (the edge on node {edge_node}; \
             reply queue before: {queue_before}); devices without a reply: {failed:?}\n\
             missing {missing:?}; reply queue after the window: {after_window}; \
             the edge's consumer then received {late:?}; after closing the edge: {after_close}; \
             left in the queue: {left:?}",
            stopped.as_secs_f64()
        );
    }
    assert_eq!(report.counters.accepted, AGENTS, "{:?}", report.counters);
    let log = payloads
        .iter()
        .find(|p| p.kind == PayloadKind::Log)
        .expect("the log was delivered");
    let log: serde_json::Value = serde_json::from_slice(&log.body).unwrap();
    assert_eq!(
        log["scaninfo"].as_array().map(Vec::len),
        Some(AGENTS),
        "{log}"
    );
    // Each agent answered the operation once (repeats of the command are
    // skipped): a second copy the edge saw is a reply whose confirm was
    // lost with the node and that the agent sent again, which the edge
    // counts as a duplicate and reports once.
    for (i, o) in outcomes.iter().enumerate() {
        let replied = o
            .iter()
            .filter(|o| o.starts_with("replied to operation 9001"))
            .count();
        assert_eq!(replied, 1, "{}", story(i));
    }
    // Anything left on the queue is a device already reported.
    while let Ok(Some(next)) = tokio::time::timeout(SECS(3), replies.next_reply()).await {
        let Ok(d) = next else { continue };
        let r = DeviceReport::from_slice(&d.body).unwrap();
        assert!(unique.contains(r.sn.as_str()), "{}", r.sn);
        let _ = d.ack().await;
    }
    // Everyone is on the surviving nodes now.
    let conns = wait_for_connections(&cluster, AGENTS + 1).await;
    assert!(conns.iter().all(|(_, node)| *node != victim), "{conns:?}");
    // The fault really hit the victim's devices.
    for (i, a) in agents.iter().enumerate() {
        if victim_agents.contains(&i) {
            assert!(
                !a.transport_errors.lock().unwrap().is_empty(),
                "agent {i} on node {victim} saw no connection loss"
            );
        }
    }
    publisher.withdraw(&op);
    for a in agents {
        a.stop().await;
    }
    publisher.close().await;
}
