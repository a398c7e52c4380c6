//! `agent::connect_shared`: many agents over one connection, each with its
//! own queue and reply channel, answering like single-connection agents —
//! also after the broker closed their connection.

mod common;

use std::collections::HashSet;
use std::time::Duration;

use burnin_core::agent::{Agent, CommandOutcome};
use burnin_core::memory::StaticProbe;
use burnin_core::{DeviceReport, OperationId};
use burnin_local::SystemClock;
use burnin_testkit::vhost::TestVhost;
use common::*;
use tokio::sync::mpsc;

const SECS: fn(u64) -> Duration = Duration::from_secs;

fn connections(vhost: &TestVhost) -> usize {
    vhost
        .ctl(&["list_connections", "--quiet", "--no-table-headers", "vhost"])
        .lines()
        .filter(|l| l.trim() == vhost.name())
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_agents_on_one_connection_reply_once_each_also_after_a_reconnect() {
    let Some(vhost) = TestVhost::new("shared") else {
        return;
    };
    let url = vhost.url();
    let (publisher, stream) = burnin_amqp::edge::connect(config(&url)).await.unwrap();
    stream.close().await;
    drop(publisher);

    let halves = burnin_amqp::agent::connect_shared(config(&url), 20)
        .await
        .unwrap();
    assert_eq!(halves.len(), 20);
    let (tx, mut outcomes) = mpsc::unbounded_channel::<String>();
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    for (i, (mut source, sink)) in halves.into_iter().enumerate() {
        let tx = tx.clone();
        let mut stop = stop_rx.clone();
        tokio::spawn(async move {
            let mut agent = Agent::new(
                StaticProbe::new(hardware(i)),
                sink,
                SystemClock,
                "hwinfo_queue",
                "0.1.0-test",
            );
            let _ = burnin_core::agent::serve(
                &mut agent,
                &mut source,
                async move {
                    let _ = stop.wait_for(|s| *s).await;
                },
                |o: &CommandOutcome| {
                    let _ = tx.send(o.to_string());
                },
                |_| {},
            )
            .await;
        });
    }
    let raw = Raw::connect(&url).await;
    // The agents' one connection plus the raw client's.
    assert_eq!(connections(&vhost), 2, "20 agents share one connection");
    raw.close().await;

    for (round, op) in [(0, 5001u64), (1, 5002)] {
        if round == 1 {
            // The broker drops every connection; the agents reconnect once
            // and re-declare their queues.
            vhost.close_all_connections();
            tokio::time::sleep(SECS(1)).await;
        }
        let raw = Raw::connect(&url).await;
        // Wait for the 20 queues to be consumed again.
        let start = std::time::Instant::now();
        loop {
            let n = vhost
                .ctl(&[
                    "list_consumers",
                    "-p",
                    vhost.name(),
                    "--quiet",
                    "--no-table-headers",
                    "queue_name",
                ])
                .lines()
                .filter(|q| q.trim().starts_with("amq.gen-"))
                .count();
            if n >= 20 {
                break;
            }
            assert!(start.elapsed() < SECS(30), "only {n} agents consume again");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        raw.publish(
            "devicescan",
            "",
            &command(OperationId::Number(op), "hwinfo_queue", SECS(30)),
        )
        .await;
        let replies = raw.collect("hwinfo_queue", 20, SECS(30)).await;
        assert_eq!(replies.len(), 20);
        let mut serials = HashSet::new();
        for d in &replies {
            let report = DeviceReport::from_slice(&d.data).unwrap();
            assert_eq!(report.operation_id, Some(OperationId::Number(op)));
            assert!(
                serials.insert(report.sn.clone()),
                "two replies from {}",
                report.sn
            );
            assert_eq!(*d.properties.delivery_mode(), Some(2));
            assert_eq!(
                d.properties
                    .correlation_id()
                    .as_ref()
                    .map(|c| c.to_string()),
                Some(op.to_string())
            );
        }
        for _ in 0..20 {
            let o = tokio::time::timeout(SECS(5), outcomes.recv())
                .await
                .unwrap()
                .unwrap();
            assert_eq!(o, format!("replied to operation {op}"));
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert!(raw.drain("hwinfo_queue").await.is_empty(), "one reply each");
        raw.close().await;
    }
    let _ = stop_tx.send(true);
}
