//! burnin-amqp on the project's 3-node RabbitMQ cluster (`scripts/cluster`,
//! started by the test if needed): failover between nodes, connection
//! names, quorum reply queues, and a node lost mid-window (SPEC §10.3).
//! These tests stop cluster nodes, so they run one at a time (see
//! `burnin_amqp::testing_cluster`).

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use burnin_amqp::testing_cluster::ClusterVhost;
use burnin_amqp::{AmqpConfig, QueueType};
use burnin_core::{CommandPublisher, DeviceReport, OperationId, ReplyStream, ScanCommand};
use common::*;

const SECS: fn(u64) -> Duration = Duration::from_secs;

fn cluster_config(cluster: &ClusterVhost, name: String) -> AmqpConfig {
    let mut c = config(&cluster.url(1));
    c.other_urls = cluster.urls()[1..].to_vec();
    c.reply_queue_type = QueueType::Quorum;
    c.connection_name = Some(name);
    c
}

async fn wait_for_connections(cluster: &ClusterVhost, n: usize) -> Vec<(String, usize)> {
    for _ in 0..100 {
        let conns = cluster.connections();
        if conns.len() == n {
            return conns;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    panic!("expected {n} connections, have {:?}", cluster.connections());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_stopped_mid_window_loses_no_device_and_no_reply_is_doubled() {
    let Some(cluster) = ClusterVhost::new("failover") else {
        return;
    };
    const AGENTS: usize = 12;
    let mut edge_config = cluster_config(&cluster, "burnin-edge cluster-test".into());
    edge_config.reannounce = Some(Duration::from_secs(1));
    let (publisher, mut replies) = burnin_amqp::edge::connect(edge_config).await.unwrap();
    let mut agents = Vec::new();
    for i in 0..AGENTS {
        // Each device takes 2 s to read its hardware, so the node dies
        // while devices are answering.
        let c = cluster_config(&cluster, format!("burnin-agent {}", sn(i)));
        agents.push(start_slow_agent(c, i, SECS(2)).await);
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
    assert!(
        per_node.len() >= 2,
        "random order should spread 12 agents: {per_node:?}"
    );
    let queues = cluster.ctl(
        1,
        &[
            "list_queues",
            "-p",
            cluster.name(),
            "--quiet",
            "--no-table-headers",
            "name",
            "type",
        ],
    );
    assert!(
        queues
            .lines()
            .any(|l| l.starts_with("hwinfo_queue\t") && l.ends_with("quorum")),
        "{queues}"
    );

    // The node holding the most agents stops while they are answering:
    // their replies fail over to another node (the agents that reconnect
    // also get the command again, and skip it: answered once).
    let victim = *per_node.iter().max_by_key(|(_, n)| **n).unwrap().0;
    let op = OperationId::Number(9001);
    let cmd = ScanCommand::from_slice(&command(op.clone(), "hwinfo_queue", SECS(40))).unwrap();
    publisher.publish(&cmd, SECS(40)).await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    cluster.stop_node(victim);

    let mut seen = BTreeSet::new();
    let started = std::time::Instant::now();
    while seen.len() < AGENTS {
        assert!(
            started.elapsed() < SECS(35),
            "only {} of {AGENTS} replied: {seen:?}",
            seen.len()
        );
        let Ok(next) = tokio::time::timeout(SECS(5), replies.next_reply()).await else {
            continue;
        };
        match next.expect("the reply stream goes on") {
            Ok(d) => {
                let report = DeviceReport::from_slice(&d.body).unwrap();
                assert_eq!(report.operation_id, Some(op.clone()));
                // A redelivery after the edge's own failover is the same
                // device again; record it once.
                let fresh = seen.insert(report.sn.clone());
                assert!(fresh || d.redelivered, "{} answered twice", report.sn);
                let _ = d.ack().await;
            }
            Err(e) => assert!(e.is_retryable(), "{e}"),
        }
    }
    // Repeats of the command (every second) are answered by nobody again.
    let extra = tokio::time::timeout(SECS(3), replies.next_reply()).await;
    if let Ok(Some(Ok(d))) = &extra {
        panic!(
            "a device answered twice: {}",
            String::from_utf8_lossy(&d.body)
        );
    }
    // Everyone is on the surviving nodes now.
    let conns = wait_for_connections(&cluster, AGENTS + 1).await;
    assert!(conns.iter().all(|(_, node)| *node != victim), "{conns:?}");
    // The fault really hit the victim's devices mid-answer.
    for (i, a) in agents.iter().enumerate() {
        let was_on_victim = conns_before
            .iter()
            .any(|(n, node)| *node == victim && *n == format!("burnin-agent {}", sn(i)));
        if was_on_victim {
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
