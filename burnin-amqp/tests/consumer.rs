//! One consumer per reply queue (SPEC §11.3), against the real broker, one
//! vhost per test: a second edge is refused on a classic and on a quorum
//! queue, replies are never split, a queue declared without
//! `x-single-active-consumer` is a clear error, and an edge that
//! reconnects consumes exclusively again (or says who holds the queue).

mod common;

use std::time::Duration;

use burnin_amqp::{AmqpConfig, AmqpError, QueueType, SINGLE_ACTIVE_CONSUMER};
use burnin_core::{DeviceReport, ReplyStream, TransportError};
use burnin_testkit::vhost::TestVhost;
use common::*;
use lapin::options::{BasicConsumeOptions, QueueDeclareOptions};
use lapin::types::{AMQPValue, FieldTable};

const SECS: fn(u64) -> Duration = Duration::from_secs;

fn typed(url: &str, queue_type: QueueType) -> AmqpConfig {
    let mut c = config(url);
    c.reply_queue_type = queue_type;
    c
}

/// The serial numbers of every reply `replies` hands over within `within`
/// of each other (acked), in order.
async fn drain_serials(replies: &mut impl ReplyStream, within: Duration) -> Vec<String> {
    let mut out = Vec::new();
    while let Ok(Some(next)) = tokio::time::timeout(within, replies.next_reply()).await {
        let d = next.unwrap();
        out.push(
            DeviceReport::from_slice(&d.body)
                .unwrap()
                .sn
                .as_str()
                .to_owned(),
        );
        d.ack().await.unwrap();
    }
    out
}

async fn second_edge_is_refused_and_replies_are_not_split(queue_type: QueueType) {
    let Some(vhost) = TestVhost::new(&format!("one-consumer-{queue_type}")) else {
        return;
    };
    let url = vhost.url();
    let (first, mut first_replies) = burnin_amqp::edge::connect(typed(&url, queue_type))
        .await
        .unwrap();
    let err = burnin_amqp::edge::connect(typed(&url, queue_type))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, AmqpError::QueueInUse { queue, .. } if queue == "hwinfo_queue"),
        "{err:?}"
    );
    let text = err.to_string();
    assert!(
        text.contains("another consumer holds queue \"hwinfo_queue\"")
            && text.contains("split")
            && text.contains("another vhost"),
        "{text}"
    );
    assert!(
        matches!(TransportError::from(err), TransportError::Refused(_)),
        "not retried: a second edge does not go away by itself"
    );

    // Every reply goes to the one consumer.
    const N: usize = 30;
    let raw = Raw::connect(&url).await;
    for i in 0..N {
        raw.publish("", "hwinfo_queue", &reply_body(8, i)).await;
    }
    let got = drain_serials(&mut first_replies, SECS(2)).await;
    assert_eq!(got.len(), N, "{got:?}");

    // Once the first edge is gone, the next one may consume.
    first.close().await;
    let (next, _replies) = burnin_amqp::edge::connect(typed(&url, queue_type))
        .await
        .unwrap();
    next.close().await;
    raw.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_edge_on_a_classic_queue_is_refused() {
    second_edge_is_refused_and_replies_are_not_split(QueueType::Classic).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_edge_on_a_quorum_queue_is_refused() {
    second_edge_is_refused_and_replies_are_not_split(QueueType::Quorum).await;
}

/// A consumer that is not an edge of this release (an older edge, a tool
/// reading the queue) also keeps the edge out, on both queue types: the
/// classic queue refuses the exclusive consume, the quorum queue shows
/// the consumer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn any_other_consumer_keeps_the_edge_out() {
    let Some(vhost) = TestVhost::new("other-consumer") else {
        return;
    };
    let url = vhost.url();
    for (queue, queue_type) in [
        ("classic_q", QueueType::Classic),
        ("quorum_q", QueueType::Quorum),
    ] {
        let mut c = typed(&url, queue_type);
        c.reply_queue = queue.into();
        // Declared by the edge, then its consumer goes away.
        let (p, _s) = burnin_amqp::edge::connect(c.clone()).await.unwrap();
        p.close().await;
        let raw = Raw::connect(&url).await;
        let _consumer = raw
            .ch
            .basic_consume(
                queue.into(),
                "".into(),
                BasicConsumeOptions::default(),
                FieldTable::default(),
            )
            .await
            .unwrap();
        let err = burnin_amqp::edge::connect(c.clone()).await.unwrap_err();
        assert!(
            matches!(&err, AmqpError::QueueInUse { queue: q, .. } if q == queue),
            "{queue_type}: {err:?}"
        );
        raw.close().await;
        let (p, _s) = burnin_amqp::edge::connect(c).await.unwrap();
        p.close().await;
    }
}

/// A quorum reply queue made by an older release (no
/// `x-single-active-consumer`): the error names the queue, the argument
/// and the fix, and nothing is deleted. The rejected queue keeps
/// `x-queue-type` alone, so an older one is used as it is.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_quorum_queue_without_single_active_consumer_is_a_clear_error() {
    let Some(vhost) = TestVhost::new("no-sac") else {
        return;
    };
    let url = vhost.url();
    let raw = Raw::connect(&url).await;
    let mut quorum = FieldTable::default();
    quorum.insert(
        "x-queue-type".into(),
        AMQPValue::LongString("quorum".into()),
    );
    for name in ["hwinfo_queue", "hwinfo_queue.rejected"] {
        raw.ch
            .queue_declare(
                name.into(),
                QueueDeclareOptions {
                    durable: true,
                    ..Default::default()
                },
                quorum.clone(),
            )
            .await
            .unwrap();
    }
    raw.publish("", "hwinfo_queue", b"keep me").await;

    let err = burnin_amqp::edge::connect(typed(&url, QueueType::Quorum))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, AmqpError::Conflict { kind: "queue", name, argument: Some(a), .. }
            if name == "hwinfo_queue" && a == SINGLE_ACTIVE_CONSUMER),
        "{err:?}"
    );
    let text = err.to_string();
    for want in [
        "queue \"hwinfo_queue\"",
        "argument \"x-single-active-consumer\" differs",
        "rabbitmqctl delete_queue hwinfo_queue",
        "Stop every edge using the queue",
    ] {
        assert!(text.contains(want), "{want:?} missing: {text}");
    }
    assert_eq!(raw.drain("hwinfo_queue").await.len(), 1, "nothing deleted");

    // Deleted and declared anew, it works; the older rejected queue stays.
    raw.ch
        .queue_delete("hwinfo_queue".into(), Default::default())
        .await
        .unwrap();
    let (p, _s) = burnin_amqp::edge::connect(typed(&url, QueueType::Quorum))
        .await
        .unwrap();
    p.close().await;
    let args = vhost.ctl(&[
        "list_queues",
        "-p",
        vhost.name(),
        "--quiet",
        "--no-table-headers",
        "name",
        "arguments",
    ]);
    let line = |q: &str| {
        args.lines()
            .find(|l| l.split_whitespace().next() == Some(q))
            .unwrap_or_else(|| panic!("no {q} in {args}"))
            .to_owned()
    };
    assert!(
        line("hwinfo_queue").contains(SINGLE_ACTIVE_CONSUMER),
        "{args}"
    );
    assert!(
        !line("hwinfo_queue.rejected").contains(SINGLE_ACTIVE_CONSUMER),
        "{args}"
    );
    raw.close().await;
}

/// A TCP relay to the broker on 127.0.0.1:5672 whose connections can be
/// frozen (silent, not closed: a dead peer only heartbeats reveal) or cut
/// (closed, and new ones refused until it is opened again).
struct Relay {
    port: u16,
    mode: tokio::sync::watch::Sender<Mode>,
    opened: std::sync::Arc<std::sync::atomic::AtomicU64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Open,
    /// Connections up to this number go silent; later ones flow.
    Freeze(u64),
    Down,
}

impl Relay {
    async fn start() -> Relay {
        use std::sync::atomic::Ordering;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let (mode, rx) = tokio::sync::watch::channel(Mode::Open);
        let opened = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
        let count = opened.clone();
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                if *rx.borrow() == Mode::Down {
                    continue;
                }
                let my_id = count.fetch_add(1, Ordering::SeqCst) + 1;
                let mut rx = rx.clone();
                tokio::spawn(async move {
                    let Ok(broker) = tokio::net::TcpStream::connect("127.0.0.1:5672").await else {
                        return;
                    };
                    let (mut cr, mut cw) = client.into_split();
                    let (mut br, mut bw) = broker.into_split();
                    let relay = async {
                        tokio::select! {
                            _ = tokio::io::copy(&mut cr, &mut bw) => {}
                            _ = tokio::io::copy(&mut br, &mut cw) => {}
                        }
                    };
                    let stop = async {
                        rx.wait_for(|m| match m {
                            Mode::Down => true,
                            Mode::Freeze(n) => *n >= my_id,
                            Mode::Open => false,
                        })
                        .await
                        .is_ok_and(|m| matches!(*m, Mode::Freeze(_)))
                    };
                    tokio::select! {
                        () = relay => {}
                        frozen = stop => {
                            if frozen {
                                // Hold the sockets open, silent.
                                tokio::time::sleep(SECS(120)).await;
                            }
                        }
                    }
                });
            }
        });
        Relay { port, mode, opened }
    }

    fn url(&self, vhost: &TestVhost) -> String {
        format!(
            "amqp://guest:guest@127.0.0.1:{}/{}",
            self.port,
            vhost.name()
        )
    }

    fn freeze_current(&self) {
        let n = self.opened.load(std::sync::atomic::Ordering::SeqCst);
        self.mode.send_replace(Mode::Freeze(n));
    }

    fn set(&self, mode: Mode) {
        self.mode.send_replace(mode);
    }
}

/// After its connection went silent, the edge reconnects and consumes
/// exclusively again, once the broker dropped the dead connection's
/// consumer (until then the queue is "in use" by that consumer: the
/// edge keeps trying for three heartbeats).
async fn reconnects_and_consumes_exclusively(queue_type: QueueType) {
    let Some(vhost) = TestVhost::new(&format!("reconsume-{queue_type}")) else {
        return;
    };
    let relay = Relay::start().await;
    let mut c = typed(&relay.url(&vhost), queue_type);
    c.heartbeat = SECS(1);
    let (first, mut replies) = burnin_amqp::edge::connect(c).await.unwrap();
    relay.freeze_current();
    let lost = tokio::time::timeout(SECS(15), replies.next_reply())
        .await
        .unwrap()
        .unwrap();
    assert!(
        matches!(lost, Err(TransportError::Unavailable(_))),
        "{lost:?}"
    );
    let raw = Raw::connect(&vhost.url()).await;
    raw.publish("", "hwinfo_queue", &reply_body(9, 1)).await;
    assert_eq!(drain_serials(&mut replies, SECS(15)).await, ["SN00001"]);
    let err = burnin_amqp::edge::connect(typed(&vhost.url(), queue_type))
        .await
        .unwrap_err();
    assert!(matches!(err, AmqpError::QueueInUse { .. }), "{err:?}");
    raw.close().await;
    first.close().await;
}

/// If another edge took the queue while this one was cut off, this one
/// is refused when it is back, and (after three heartbeats of trying) ends
/// its reply stream with the refusal; the other keeps every reply.
async fn refused_after_reconnecting_when_another_edge_took_over(queue_type: QueueType) {
    let Some(vhost) = TestVhost::new(&format!("taken-{queue_type}")) else {
        return;
    };
    let relay = Relay::start().await;
    let mut c = typed(&relay.url(&vhost), queue_type);
    c.heartbeat = SECS(1);
    let (first, mut replies) = burnin_amqp::edge::connect(c).await.unwrap();
    relay.set(Mode::Down);
    let lost = tokio::time::timeout(SECS(10), replies.next_reply())
        .await
        .unwrap()
        .unwrap();
    assert!(
        matches!(lost, Err(TransportError::Unavailable(_))),
        "{lost:?}"
    );
    // The broker drops the closed connection's consumer a moment later.
    let started = std::time::Instant::now();
    let (second, mut second_replies) = loop {
        match burnin_amqp::edge::connect(typed(&vhost.url(), queue_type)).await {
            Ok(c) => break c,
            Err(AmqpError::QueueInUse { .. }) if started.elapsed() < SECS(10) => {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(e) => panic!("{e:?}"),
        }
    };
    relay.set(Mode::Open);
    let refused = tokio::time::timeout(SECS(30), replies.next_reply())
        .await
        .unwrap();
    match refused {
        Some(Err(TransportError::Refused(why))) => {
            assert!(why.contains("another consumer holds queue"), "{why}")
        }
        other => panic!("expected the refusal, got {other:?}"),
    }
    assert!(
        tokio::time::timeout(SECS(5), replies.next_reply())
            .await
            .unwrap()
            .is_none(),
        "the stream ends"
    );
    let raw = Raw::connect(&vhost.url()).await;
    for i in 0..5 {
        raw.publish("", "hwinfo_queue", &reply_body(9, i)).await;
    }
    assert_eq!(drain_serials(&mut second_replies, SECS(2)).await.len(), 5);
    raw.close().await;
    first.close().await;
    second.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_classic_edge_consumes_exclusively_after_reconnecting() {
    reconnects_and_consumes_exclusively(QueueType::Classic).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_quorum_edge_consumes_exclusively_after_reconnecting() {
    reconnects_and_consumes_exclusively(QueueType::Quorum).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_classic_edge_is_refused_after_reconnecting_if_another_took_the_queue() {
    refused_after_reconnecting_when_another_edge_took_over(QueueType::Classic).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_quorum_edge_is_refused_after_reconnecting_if_another_took_the_queue() {
    refused_after_reconnecting_when_another_edge_took_over(QueueType::Quorum).await;
}
