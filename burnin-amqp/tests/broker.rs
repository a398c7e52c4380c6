//! burnin-amqp against the real RabbitMQ on 127.0.0.1:5672, one vhost per
//! test (see `burnin_testkit::vhost`).

mod common;

use std::collections::HashSet;
use std::time::Duration;

use burnin_amqp::{AmqpError, QueueType};
use burnin_core::edge::{NoObserver, Observer};
use burnin_core::{
    CommandPublisher, Delivery, DeviceReport, OperationId, OperationParams, ReplyStream,
    TransportError,
};
use burnin_testkit::vhost::TestVhost;
use common::*;
use lapin::options::QueueDeclareOptions;
use lapin::types::{AMQPValue, FieldTable};

const SECS: fn(u64) -> Duration = Duration::from_secs;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fanout_to_50_agents_gets_one_persistent_correlated_reply_each() {
    let Some(vhost) = TestVhost::new("fanout") else {
        return;
    };
    let url = vhost.url();
    // The edge declares the reply queue; its own consumer is closed so the
    // test can read the raw messages with their properties.
    let (publisher, stream) = burnin_amqp::edge::connect(config(&url)).await.unwrap();
    stream.close().await;
    drop(publisher);

    let mut agents = Vec::new();
    for i in 0..50 {
        agents.push(start_agent(config(&url), i).await);
    }
    let raw = Raw::connect(&url).await;
    raw.publish_command(OperationId::Number(4711), SECS(30))
        .await;
    let replies = raw.collect("hwinfo_queue", 50, SECS(30)).await;
    assert_eq!(replies.len(), 50);

    let mut serials = HashSet::new();
    for d in &replies {
        let report = DeviceReport::from_slice(&d.data).expect("reply is a device report");
        assert_eq!(report.operation_id, Some(OperationId::Number(4711)));
        let i: usize = report.sn.as_str()[2..].parse().unwrap();
        assert_eq!(report.interfaces[0].macaddr, mac(i));
        assert_eq!(report.agent_version, "0.1.0-test");
        assert!(
            serials.insert(report.sn.clone()),
            "two replies from {}",
            report.sn
        );
        assert_eq!(*d.properties.delivery_mode(), Some(2), "persistent");
        assert_eq!(
            d.properties
                .correlation_id()
                .as_ref()
                .map(|c| c.to_string()),
            Some("4711".into())
        );
        assert_eq!(
            d.properties.content_type().as_ref().map(|c| c.to_string()),
            Some("application/json".into())
        );
    }
    for mut a in agents {
        assert_eq!(a.next_outcome(SECS(5)).await, "replied to operation 4711");
        a.stop().await;
    }
    // Nothing more arrived (one reply each).
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(raw.drain("hwinfo_queue").await.is_empty());
    raw.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn command_has_the_spec_properties() {
    let Some(vhost) = TestVhost::new("command") else {
        return;
    };
    let url = vhost.url();
    let (publisher, _stream) = burnin_amqp::edge::connect(config(&url)).await.unwrap();
    let raw = Raw::connect(&url).await;
    raw.declare_queue("spy").await;
    raw.ch
        .queue_bind(
            "spy".into(),
            "devicescan".into(),
            "".into(),
            Default::default(),
            FieldTable::default(),
        )
        .await
        .unwrap();
    let cmd = burnin_core::ScanCommand {
        operation_id: OperationId::Text("op-7".into()),
        operator_id: Some("alice".into()),
        scan_mode: Some(2),
        reply_to: "hwinfo_queue".into(),
        deadline: now_plus(SECS(30)),
        // As an edge before run numbers sends it.
        run: None,
        remaining_ms: None,
    };
    publisher
        .publish(&cmd, Duration::from_millis(30_000))
        .await
        .unwrap();
    let got = raw.collect("spy", 1, SECS(5)).await;
    assert_eq!(got.len(), 1);
    let p = &got[0].properties;
    assert_eq!(got[0].data, cmd.to_json());
    assert_eq!(
        p.expiration().as_ref().map(|e| e.to_string()),
        Some("30000".into())
    );
    assert_eq!(
        p.content_type().as_ref().map(|e| e.to_string()),
        Some("application/json".into())
    );
    assert_eq!(*p.delivery_mode(), Some(2));
    raw.close().await;
    publisher.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reply_without_queue_is_retried_until_the_queue_exists() {
    let Some(vhost) = TestVhost::new("noqueue") else {
        return;
    };
    let url = vhost.url();
    let mut agent = start_agent(config(&url), 1).await;
    let raw = Raw::connect(&url).await;
    raw.publish_command(OperationId::Number(1), SECS(30)).await;
    // The agent's reply is returned (no such queue) and retried meanwhile.
    tokio::time::sleep(SECS(2)).await;
    assert_eq!(
        vhost.messages("hwinfo_queue"),
        None,
        "nobody declared it yet"
    );
    assert!(agent.outcomes.try_recv().is_err(), "still retrying");

    let (_publisher, mut stream) = burnin_amqp::edge::connect(config(&url)).await.unwrap();
    assert_eq!(agent.next_outcome(SECS(10)).await, "replied to operation 1");
    let d = next_delivery(&mut stream, SECS(5)).await;
    let report = DeviceReport::from_slice(&d.body).unwrap();
    assert_eq!(report.sn, sn(1));
    d.ack().await.unwrap();
    // Exactly once.
    assert!(
        tokio::time::timeout(Duration::from_millis(500), stream.next_reply())
            .await
            .is_err()
    );
    agent.stop().await;
    raw.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reply_gives_up_at_the_deadline_naming_the_operation() {
    let Some(vhost) = TestVhost::new("deadline") else {
        return;
    };
    let url = vhost.url();
    let mut agent = start_agent(config(&url), 1).await;
    let raw = Raw::connect(&url).await;
    raw.publish_command(OperationId::Text("op-late".into()), SECS(3))
        .await;
    let outcome = agent.next_outcome(SECS(10)).await;
    assert!(
        outcome.contains("could not deliver the reply to operation op-late"),
        "{outcome}"
    );
    assert!(outcome.contains("deadline"), "{outcome}");
    assert!(
        outcome.contains("312"),
        "names the broker's NO_ROUTE: {outcome}"
    );
    agent.stop().await;
    raw.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agent_reconnects_after_the_broker_closes_its_connection() {
    let Some(vhost) = TestVhost::new("agentclose") else {
        return;
    };
    let url = vhost.url();
    let (publisher, mut stream) = burnin_amqp::edge::connect(config(&url)).await.unwrap();
    let mut agent = start_agent(config(&url), 3).await;
    assert!(publisher.is_connected().await);

    vhost.close_all_connections();
    // The edge reports the loss once and reconnects too.
    let e = tokio::time::timeout(SECS(10), stream.next_reply())
        .await
        .unwrap()
        .unwrap()
        .unwrap_err();
    assert!(e.is_retryable(), "{e}");

    // Publish until the agent, re-bound, answers (commands sent while it
    // had no queue are gone: fanout).
    let raw = Raw::connect(&url).await;
    let delivery = publish_until_answered(&raw, &mut stream, 9, SECS(20))
        .await
        .expect("the agent answered after reconnecting")
        .unwrap();
    assert_eq!(DeviceReport::from_slice(&delivery.body).unwrap().sn, sn(3));
    delivery.ack().await.unwrap();
    assert!(
        !agent.transport_errors.lock().unwrap().is_empty(),
        "the loss was reported"
    );
    assert_eq!(agent.next_outcome(SECS(5)).await, "replied to operation 9");
    assert!(publisher.is_connected().await, "the edge reconnected too");
    publisher.close().await;
    assert!(!publisher.is_connected().await);
    agent.stop().await;
    raw.close().await;
}

/// Closes every connection of the vhost when the `at`-th reply is handed
/// over, and hands it over (with what was buffered meanwhile) only once the
/// adapter has noticed the loss, so the core's ack of it must fail.
struct ClosingStream<'a> {
    inner: burnin_amqp::AmqpReplyStream,
    vhost: &'a TestVhost,
    seen: usize,
    at: usize,
    held: std::collections::VecDeque<Option<Result<burnin_core::Delivery, TransportError>>>,
}

#[async_trait::async_trait]
impl ReplyStream for ClosingStream<'_> {
    async fn next_reply(&mut self) -> Option<Result<burnin_core::Delivery, TransportError>> {
        if let Some(next) = self.held.pop_front() {
            return next;
        }
        let next = self.inner.next_reply().await;
        if matches!(next, Some(Ok(_))) {
            self.seen += 1;
            if self.seen == self.at {
                self.vhost.close_all_connections();
                let mut lost = None;
                while lost.is_none() {
                    match self.inner.next_reply().await {
                        Some(Ok(d)) => self.held.push_back(Some(Ok(d))),
                        other => lost = Some(other),
                    }
                }
                self.held.push_back(lost.unwrap());
            }
        }
        next
    }
}

#[derive(Default)]
struct Errors(std::sync::Mutex<Vec<String>>);
impl Observer for Errors {
    fn transport_error(&self, e: &TransportError) {
        self.0.lock().unwrap().push(e.to_string());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn edge_connection_lost_mid_window_records_every_reply_once() {
    let Some(vhost) = TestVhost::new("edgeclose") else {
        return;
    };
    let url = vhost.url();
    const N: usize = 40;
    let (publisher, stream) = burnin_amqp::edge::connect(config(&url)).await.unwrap();
    // Replies already waiting on the queue (agents answered quickly).
    let raw = Raw::connect(&url).await;
    for i in 0..N {
        raw.publish("", "hwinfo_queue", &reply_body(77, i)).await;
    }
    raw.close().await;

    let mut replies = ClosingStream {
        inner: stream,
        vhost: &vhost,
        seen: 0,
        at: 5,
        held: Default::default(),
    };
    let mut params = OperationParams::new(OperationId::Number(77));
    params.expected = (0..N).map(sn).collect();
    params.window = SECS(40);
    let errors = Errors::default();
    let reporter = NullReporter::default();
    let report = run_sim_operation(params, &publisher, &mut replies, &reporter, &errors).await;
    assert_eq!(report.error, None);
    assert_eq!(
        report.counters.accepted, N,
        "every reply recorded once: {:?}",
        report.counters
    );
    assert_eq!(report.devices.len(), N);
    assert!(report.all_passed());
    assert!(
        !errors.0.lock().unwrap().is_empty(),
        "the loss was observed"
    );

    // Replies handed over but not acked before the loss come back
    // (redelivered) — during the operation (counted as duplicates) or
    // after it ended; none is lost, none recorded twice.
    let recorded: HashSet<_> = report.devices.iter().map(|d| d.sn.clone()).collect();
    let mut redelivered = 0;
    while let Ok(Some(next)) = tokio::time::timeout(SECS(3), replies.next_reply()).await {
        let Ok(d) = next else { continue };
        assert!(d.redelivered, "only redeliveries are left");
        let r = DeviceReport::from_slice(&d.body).unwrap();
        assert!(recorded.contains(&r.sn));
        redelivered += 1;
        d.ack().await.unwrap();
    }
    assert!(
        report.counters.duplicates + redelivered >= 1,
        "the reply in hand when the connection closed came back: {:?}",
        report.counters
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(vhost.messages("hwinfo_queue"), Some(0));
    publisher.close().await;
}

/// Acks go out in batches (`multiple` over an unbroken run of delivery
/// tags): replies settled together, out of order, around two still held
/// and one rejected, are each acknowledged once, the held ones are not
/// covered by a neighbour's ack, and the channel stays usable.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replies_settled_together_and_out_of_order_are_each_acked_once() {
    let Some(vhost) = TestVhost::new("ackbatch") else {
        return;
    };
    let url = vhost.url();
    const N: usize = 30;
    let (publisher, mut stream) = burnin_amqp::edge::connect(config(&url)).await.unwrap();
    let raw = Raw::connect(&url).await;
    for i in 0..N {
        raw.publish("", "hwinfo_queue", &reply_body(8, i)).await;
    }
    let mut taken = Vec::new();
    for _ in 0..N {
        taken.push(next_delivery(&mut stream, SECS(10)).await);
    }
    // Delivery tags 1..=30 in order. Hold the 1st and the 10th; reject the
    // 20th; settle every other one at the same moment, last first.
    let tenth = taken.remove(9);
    let first = taken.remove(0);
    let rejected = taken.remove(17);
    let settled = taken.into_iter().rev().map(Delivery::ack);
    for outcome in futures::future::join_all(settled).await {
        outcome.unwrap();
    }
    rejected.reject("malformed: a test").await.unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        vhost.messages("hwinfo_queue"),
        Some(2),
        "only the two held replies are left unacknowledged"
    );
    tenth.ack().await.unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(vhost.messages("hwinfo_queue"), Some(1));
    first.ack().await.unwrap();

    // The channel took every ack (a tag acked twice would have closed it):
    // a new reply is delivered on it for the first time, and acked.
    raw.publish("", "hwinfo_queue", &reply_body(8, N)).await;
    let late = next_delivery(&mut stream, SECS(10)).await;
    assert!(!late.redelivered);
    late.ack().await.unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(vhost.messages("hwinfo_queue"), Some(0));
    assert_eq!(raw.drain("hwinfo_queue.rejected").await.len(), 1);
    raw.close().await;
    publisher.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_replies_end_in_the_rejected_queue_with_a_reason() {
    let Some(vhost) = TestVhost::new("rejected") else {
        return;
    };
    let url = vhost.url();
    let (publisher, mut stream) = burnin_amqp::edge::connect(config(&url)).await.unwrap();
    let raw = Raw::connect(&url).await;
    let unknown_op = reply_body(999, 1);
    let mut oversize = b"{\"pad\":\"".to_vec();
    oversize.resize(burnin_core::MAX_REPLY_BYTES + 10, b'x');
    oversize.extend_from_slice(b"\"}");
    let good = reply_body(5, 2);
    raw.publish("", "hwinfo_queue", b"this is not json").await;
    raw.publish("", "hwinfo_queue", &oversize).await;
    raw.publish("", "hwinfo_queue", &unknown_op).await;
    raw.publish("", "hwinfo_queue", &good).await;

    let mut params = OperationParams::new(OperationId::Number(5));
    params.expected = vec![sn(2)];
    params.window = SECS(20);
    let reporter = NullReporter::default();
    let report = run_sim_operation(params, &publisher, &mut stream, &reporter, &NoObserver).await;
    assert_eq!(report.counters.accepted, 1);
    assert_eq!(report.counters.rejected, 3, "{:?}", report.counters);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(vhost.messages("hwinfo_queue"), Some(0), "main queue empty");

    let rejected = raw.drain("hwinfo_queue.rejected").await;
    assert_eq!(rejected.len(), 3);
    let bodies: Vec<&[u8]> = rejected.iter().map(|d| d.data.as_slice()).collect();
    assert!(bodies.contains(&&b"this is not json"[..]));
    assert!(
        bodies.contains(&oversize.as_slice()),
        "the oversize body is kept whole"
    );
    assert!(bodies.contains(&unknown_op.as_slice()));
    let reason_of = |body: &[u8]| {
        let d = rejected.iter().find(|d| d.data == body).unwrap();
        header(d, "x-burnin-reason").expect("reason header")
    };
    let r = reason_of(b"this is not json");
    assert!(r.starts_with("malformed: device report is invalid"), "{r}");
    let r = reason_of(&oversize);
    assert!(
        r.starts_with("malformed") && r.contains("limit is 1048576 bytes"),
        "{r}"
    );
    let r = reason_of(&unknown_op);
    assert!(
        r.starts_with("unknown operation") && r.contains("999"),
        "{r}"
    );
    for d in &rejected {
        assert_eq!(*d.properties.delivery_mode(), Some(2));
    }
    raw.close().await;
    publisher.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agent_skips_foreign_malformed_and_oversize_commands_and_keeps_serving() {
    let Some(vhost) = TestVhost::new("badcmd") else {
        return;
    };
    let url = vhost.url();
    let (_publisher, _stream) = burnin_amqp::edge::connect(config(&url)).await.unwrap();
    _stream.close().await;
    let mut agent = start_agent(config(&url), 4).await;
    let raw = Raw::connect(&url).await;
    raw.declare_queue("other_queue").await;
    raw.publish(
        "devicescan",
        "",
        &command(OperationId::Number(1), "other_queue", SECS(30)),
    )
    .await;
    let o = agent.next_outcome(SECS(5)).await;
    assert!(o.contains("not this agent's reply queue"), "{o}");
    raw.publish("devicescan", "", b"{\"operationId\":").await;
    let o = agent.next_outcome(SECS(5)).await;
    assert!(o.starts_with("skipped a malformed command"), "{o}");
    let mut big = command(OperationId::Number(2), "hwinfo_queue", SECS(30));
    big.truncate(big.len() - 1);
    big.extend_from_slice(b",\"pad\":\"");
    big.resize(burnin_core::MAX_COMMAND_BYTES + 1, b'x');
    big.extend_from_slice(b"\"}");
    raw.publish("devicescan", "", &big).await;
    let o = agent.next_outcome(SECS(5)).await;
    assert!(
        o.starts_with("skipped a malformed command") && o.contains("limit"),
        "{o}"
    );

    raw.publish_command(OperationId::Number(3), SECS(30)).await;
    assert_eq!(agent.next_outcome(SECS(5)).await, "replied to operation 3");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(vhost.messages("other_queue"), Some(0));
    assert_eq!(
        vhost.messages("hwinfo_queue"),
        Some(1),
        "only operation 3 was answered"
    );
    agent.stop().await;
    raw.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conflicting_declarations_are_clear_errors_and_delete_nothing() {
    let Some(vhost) = TestVhost::new("conflict") else {
        return;
    };
    let url = vhost.url();
    let raw = Raw::connect(&url).await;
    let mut args = FieldTable::default();
    args.insert(
        "x-queue-type".into(),
        AMQPValue::LongString("quorum".into()),
    );
    raw.ch
        .queue_declare(
            "hwinfo_queue".into(),
            QueueDeclareOptions {
                durable: true,
                ..Default::default()
            },
            args,
        )
        .await
        .unwrap();
    raw.publish("", "hwinfo_queue", b"keep me").await;

    let err = burnin_amqp::edge::connect(config(&url)).await.unwrap_err();
    let text = err.to_string();
    assert!(
        matches!(&err, AmqpError::Conflict { kind: "queue", name, argument: Some(a), .. } if name == "hwinfo_queue" && a == "x-queue-type"),
        "{err:?}"
    );
    assert!(
        text.contains("delete") && text.contains("another name"),
        "{text}"
    );
    let kept = raw.drain("hwinfo_queue").await;
    assert_eq!(kept.len(), 1, "nothing deleted");
    assert_eq!(kept[0].data, b"keep me");

    // The same queue type without x-single-active-consumer (as an older
    // release declared it) is named too: see tests/consumer.rs.
    let mut quorum = config(&url);
    quorum.reply_queue_type = QueueType::Quorum;
    let err = burnin_amqp::edge::connect(quorum.clone())
        .await
        .unwrap_err();
    assert!(
        matches!(&err, AmqpError::Conflict { kind: "queue", name, argument: Some(a), .. } if name == "hwinfo_queue" && a == "x-single-active-consumer"),
        "{err:?}"
    );
    assert_eq!(raw.drain("hwinfo_queue").await.len(), 0, "drained above");
    // Declared anew, the same queue type is accepted.
    raw.ch
        .queue_delete("hwinfo_queue".into(), Default::default())
        .await
        .unwrap();
    let (p, _s) = burnin_amqp::edge::connect(quorum).await.unwrap();
    p.close().await;

    // An exchange of another type.
    raw.ch
        .exchange_declare(
            "devicescan2".into(),
            lapin::ExchangeKind::Direct,
            Default::default(),
            FieldTable::default(),
        )
        .await
        .unwrap();
    let mut c = config(&url);
    c.exchange = "devicescan2".into();
    c.reply_queue = "other".into();
    let err = burnin_amqp::agent::connect(c).await.unwrap_err();
    assert!(
        matches!(
            &err,
            AmqpError::Conflict {
                kind: "exchange",
                ..
            }
        ),
        "{err:?}"
    );
    assert!(err.to_string().contains("devicescan2"), "{err}");
    raw.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn least_privilege_agent_user_can_serve_and_nothing_else() {
    let Some(vhost) = TestVhost::new("leastpriv") else {
        return;
    };
    let user = format!("agent-{}", vhost.name());
    // The README's lines (SPEC §8).
    vhost.add_user(
        &user,
        "agentpw",
        r"^amq\.gen-.*$",
        r"^(amq\.default|amq\.gen-.*)$",
        r"^(devicescan|amq\.gen-.*)$",
    );
    let agent_url = vhost.url_for(&user, "agentpw");

    // Before the edge declared the exchange, the agent may not create it.
    let err = burnin_amqp::agent::connect(config(&agent_url))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("devicescan"), "{err}");
    assert!(
        err.is_retryable(),
        "waiting for the edge is worth retrying: {err}"
    );

    let (_publisher, mut stream) = burnin_amqp::edge::connect(config(&vhost.url()))
        .await
        .unwrap();
    let mut agent = start_agent(config(&agent_url), 8).await;
    let raw = Raw::connect(&vhost.url()).await;
    raw.publish_command(OperationId::Number(8), SECS(30)).await;
    assert_eq!(agent.next_outcome(SECS(10)).await, "replied to operation 8");
    let d = next_delivery(&mut stream, SECS(5)).await;
    assert_eq!(DeviceReport::from_slice(&d.body).unwrap().sn, sn(8));
    d.ack().await.unwrap();
    agent.stop().await;

    // The agent's user cannot publish commands …
    let as_agent = Raw::connect(&agent_url).await;
    let published = as_agent
        .ch
        .basic_publish(
            "devicescan".into(),
            "".into(),
            Default::default(),
            b"{}",
            Default::default(),
        )
        .await;
    let refused = match published {
        Err(e) => e.to_string(),
        Ok(confirm) => match confirm.await {
            Err(e) => e.to_string(),
            Ok(c) => panic!("publishing to devicescan was allowed: {c:?}"),
        },
    };
    assert!(
        refused.contains("ACCESS_REFUSED") || refused.contains("403"),
        "{refused}"
    );
    // … nor consume replies.
    let ch = as_agent.conn.create_channel().await.unwrap();
    let consumed = ch
        .basic_consume(
            "hwinfo_queue".into(),
            "".into(),
            Default::default(),
            FieldTable::default(),
        )
        .await;
    let e = match consumed {
        Ok(_) => panic!("consuming hwinfo_queue was allowed"),
        Err(e) => e.to_string(),
    };
    assert!(e.contains("ACCESS_REFUSED") || e.contains("403"), "{e}");
    as_agent.close().await;
    raw.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_broker_and_bad_ca_file_are_clear_errors() {
    let mut c = config("amqp://guest:hunter2@127.0.0.1:1/none");
    c.connect_timeout = SECS(3);
    let err = burnin_amqp::edge::connect(c).await.unwrap_err();
    assert!(err.is_retryable());
    let text = err.to_string();
    assert!(
        text.contains("127.0.0.1:1") && !text.contains("hunter2"),
        "{text}"
    );

    let mut c = config("amqps://guest:hunter2@127.0.0.1:5671/");
    c.ca_file = Some("/nonexistent/ca.pem".into());
    let err = burnin_amqp::agent::connect(c.clone()).await.unwrap_err();
    assert!(matches!(err, AmqpError::CaFile { .. }), "{err:?}");
    let dir = std::env::temp_dir().join(format!("burnin-amqp-ca-{}", std::process::id()));
    std::fs::write(&dir, "not a certificate").unwrap();
    c.ca_file = Some(dir.clone());
    let err = burnin_amqp::agent::connect(c).await.unwrap_err();
    let _ = std::fs::remove_file(&dir);
    assert!(err.to_string().contains("BEGIN CERTIFICATE"), "{err}");

    let err = burnin_amqp::agent::connect(config("http://guest:hunter2@host/"))
        .await
        .unwrap_err();
    assert!(matches!(err, AmqpError::InvalidUrl { .. }), "{err:?}");
    assert!(!err.to_string().contains("hunter2"), "{err}");
}

/// A TCP relay to the broker whose current connections can be frozen
/// (bytes stop flowing both ways, nothing is closed): a dead peer only
/// heartbeats can detect.
async fn freezable_relay() -> (u16, tokio::sync::watch::Sender<u64>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let (freeze, frozen) = tokio::sync::watch::channel(0u64);
    tokio::spawn(async move {
        let mut id = 0u64;
        while let Ok((client, _)) = listener.accept().await {
            id += 1;
            let my_id = id;
            let mut frozen = frozen.clone();
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
                tokio::select! {
                    () = relay => {}
                    () = async { let _ = frozen.wait_for(|f| *f >= my_id).await.is_ok(); } => {
                        // Hold the sockets open, silent, for a long time.
                        tokio::time::sleep(Duration::from_secs(120)).await;
                    }
                }
            });
        }
    });
    (port, freeze)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agent_detects_a_silent_dead_connection_by_heartbeat_and_reconnects() {
    let Some(vhost) = TestVhost::new("heartbeat") else {
        return;
    };
    let (port, freeze) = freezable_relay().await;
    let (_publisher, mut stream) = burnin_amqp::edge::connect(config(&vhost.url()))
        .await
        .unwrap();
    let mut c = config(&format!(
        "amqp://guest:guest@127.0.0.1:{port}/{}",
        vhost.name()
    ));
    c.heartbeat = SECS(1);
    let agent = start_agent(c, 21).await;
    // Freeze the agent's connection (the first through the relay).
    freeze.send(1).unwrap();
    let detected = tokio::time::timeout(SECS(15), async {
        loop {
            if !agent.transport_errors.lock().unwrap().is_empty() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await;
    assert!(detected.is_ok(), "the dead connection was not detected");
    let raw = Raw::connect(&vhost.url()).await;
    let delivery = publish_until_answered(&raw, &mut stream, 21, SECS(20))
        .await
        .expect("the agent answered over a new connection")
        .unwrap();
    assert_eq!(DeviceReport::from_slice(&delivery.body).unwrap().sn, sn(21));
    delivery.ack().await.unwrap();
    agent.stop().await;
    raw.close().await;
}

/// SPEC §10.3: a device that (re)connects while a window is open — as after
/// its broker node died, with a fresh queue that never saw the command —
/// still answers, because the edge announces the open command again; a
/// device that already answered skips the repeats; a withdrawn command is
/// not announced any more.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_device_that_connects_mid_window_answers_the_reannounced_command_once() {
    let Some(vhost) = TestVhost::new("reannounce") else {
        return;
    };
    let url = vhost.url();
    let mut edge_config = config(&url);
    edge_config.reannounce = Some(Duration::from_millis(500));
    let (publisher, mut replies) = burnin_amqp::edge::connect(edge_config).await.unwrap();
    let mut early = start_agent(config(&url), 1).await;
    let op = OperationId::Number(77);
    let cmd = burnin_core::ScanCommand::from_slice(&command(op.clone(), "hwinfo_queue", SECS(10)))
        .unwrap();
    publisher.publish(&cmd, SECS(10)).await.unwrap();
    assert_eq!(publisher.open_commands(), 1);
    assert_eq!(early.next_outcome(SECS(5)).await, "replied to operation 77");

    let mut late = start_agent(config(&url), 2).await;
    assert_eq!(late.next_outcome(SECS(3)).await, "replied to operation 77");
    assert_eq!(
        early.next_outcome(SECS(3)).await,
        "skipped operation 77: already answered"
    );

    let mut serials = Vec::new();
    while serials.len() < 2 {
        let d = tokio::time::timeout(SECS(5), replies.next_reply())
            .await
            .expect("two replies in time")
            .unwrap()
            .unwrap();
        serials.push(DeviceReport::from_slice(&d.body).unwrap().sn);
        d.ack().await.unwrap();
    }
    serials.sort();
    assert_eq!(serials, [sn(1), sn(2)]);
    // One reply each, however often the command was announced.
    assert!(
        tokio::time::timeout(Duration::from_millis(1500), replies.next_reply())
            .await
            .is_err(),
        "a device answered twice"
    );

    publisher.withdraw(&op);
    assert_eq!(publisher.open_commands(), 0);
    tokio::time::sleep(Duration::from_millis(600)).await;
    let mut third = start_agent(config(&url), 3).await;
    assert!(
        tokio::time::timeout(Duration::from_millis(1500), third.outcomes.recv())
            .await
            .is_err(),
        "a withdrawn command was announced again"
    );
    for a in [early, late, third] {
        a.stop().await;
    }
    publisher.close().await;
}
