//! Helpers shared by the broker tests: simulated devices, a raw lapin
//! client playing the other side, and trivial MES / reporter adapters.
#![allow(dead_code, unreachable_pub, missing_docs)]

use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use burnin_amqp::AmqpConfig;
use burnin_core::agent::{Agent, CommandOutcome};
use burnin_core::edge::{EdgePorts, Observer, OperationReport, run_operation};
use burnin_core::memory::StaticProbe;
use burnin_core::{
    CommandPublisher, Delivery, DeviceReport, FactoryReporter, Hardware, InterfaceReport, Mac,
    MesAnswer, MesError, MesSource, OperationId, OperationParams, Payload, PciDevice, ReplyStream,
    ReportError, ScanCommand, SerialNumber, Timestamp, TransportError,
};
use burnin_local::SystemClock;
use futures::StreamExt;
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicGetOptions, BasicPublishOptions,
    ConfirmSelectOptions, QueueDeclareOptions,
};
use lapin::types::FieldTable;
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties};
use tokio::sync::{mpsc, oneshot};

pub fn sn(i: usize) -> SerialNumber {
    SerialNumber::new(format!("SN{i:05}")).unwrap()
}

pub fn mac(i: usize) -> Mac {
    Mac::new([0x02, 0, 0, (i >> 16) as u8, (i >> 8) as u8, i as u8])
}

pub fn hardware(i: usize) -> Hardware {
    Hardware {
        sn: sn(i),
        hostname: format!("dut-{i}"),
        interfaces: vec![InterfaceReport {
            lldp: None,
            interface: "eth0".into(),
            macaddr: mac(i),
            permaddr: None,
            addr_assign_type: None,
            link: None,
            pci: PciDevice {
                pcie_link: None,
                slot: "0000:01:00.0".into(),
                vendor: "0x8086".into(),
                device: "0x1533".into(),
                class: "0x020000".into(),
                driver: Some("igb".into()),
            },
        }],
        pci_devices: vec![],
    }
}

/// A config for tests: quick backoff and short timeouts.
pub fn config(url: &str) -> AmqpConfig {
    let mut c = AmqpConfig::new(url);
    c.backoff_base = Duration::from_millis(100);
    c.backoff_cap = Duration::from_secs(1);
    c.confirm_timeout = Duration::from_secs(3);
    c.heartbeat = Duration::from_secs(5);
    c
}

pub fn now_plus(d: Duration) -> Timestamp {
    Timestamp::from_system_time(SystemTime::now() + d)
}

pub fn command(op: OperationId, reply_to: &str, within: Duration) -> Vec<u8> {
    ScanCommand {
        operation_id: op,
        operator_id: None,
        scan_mode: None,
        reply_to: reply_to.into(),
        deadline: now_plus(within),
        run: None,
        remaining_ms: None,
    }
    .to_json()
}

/// The reply of device `i` to operation `op` (a number), as an agent
/// sends it (agent version `0.1.0`, received now).
pub fn reply_body(op: u64, i: usize) -> Vec<u8> {
    DeviceReport::new(
        Some(OperationId::Number(op)),
        hardware(i),
        "0.1.0",
        now_plus(Duration::ZERO),
    )
    .to_json()
}

/// The next reply `replies` hands over.
///
/// # Panics
/// If none comes within `within`, the stream ended, or it is a transport
/// error.
pub async fn next_delivery(replies: &mut impl ReplyStream, within: Duration) -> Delivery {
    tokio::time::timeout(within, replies.next_reply())
        .await
        .unwrap()
        .unwrap()
        .unwrap()
}

/// Publishes the command of operation `op` (see [`Raw::publish_command`],
/// 30 s) every 500 ms until `replies` hands over a reply: for an agent that
/// is (re)connecting, whose new queue never sees the commands fanned out
/// before it was bound. `None` if no reply came within `limit`.
pub async fn publish_until_answered(
    raw: &Raw,
    replies: &mut impl ReplyStream,
    op: u64,
    limit: Duration,
) -> Option<Result<Delivery, TransportError>> {
    tokio::time::timeout(limit, async {
        loop {
            raw.publish_command(OperationId::Number(op), Duration::from_secs(30))
                .await;
            if let Ok(Some(r)) =
                tokio::time::timeout(Duration::from_millis(500), replies.next_reply()).await
            {
                break r;
            }
        }
    })
    .await
    .ok()
}

/// Runs operation `params` through the core's edge use case over
/// `publisher` and `replies`, with [`SimMes`], the system clock and no
/// store; payloads go to `reporter`, events to `observer`.
pub async fn run_sim_operation(
    params: OperationParams,
    publisher: &dyn CommandPublisher,
    replies: &mut dyn ReplyStream,
    reporter: &NullReporter,
    observer: &dyn Observer,
) -> OperationReport {
    run_operation(
        params,
        EdgePorts {
            publisher,
            replies,
            mes: &SimMes,
            reporter,
            clock: &SystemClock,
            observer,
            store: &burnin_core::NoStore,
        },
    )
    .await
}

/// A running simulated agent.
pub struct RunningAgent {
    pub outcomes: mpsc::UnboundedReceiver<String>,
    pub transport_errors: Arc<Mutex<Vec<String>>>,
    pub stop: Option<oneshot::Sender<()>>,
    pub task: tokio::task::JoinHandle<Result<(), TransportError>>,
}

impl RunningAgent {
    pub async fn next_outcome(&mut self, within: Duration) -> String {
        tokio::time::timeout(within, self.outcomes.recv())
            .await
            .expect("no agent outcome in time")
            .expect("agent stopped")
    }

    pub async fn stop(mut self) {
        let _ = self.stop.take().unwrap().send(());
        let _ = tokio::time::timeout(Duration::from_secs(10), self.task).await;
    }
}

/// Connects an agent for device `i` and serves it with the core's agent
/// use case; outcomes are reported as their Display text.
pub async fn start_agent(config: AmqpConfig, i: usize) -> RunningAgent {
    start_slow_agent(config, i, Duration::ZERO).await
}

/// Device `i`'s hardware, read in `delay` (a slow probe).
pub struct SlowProbe(pub StaticProbe, pub Duration);

#[async_trait]
impl burnin_core::HardwareProbe for SlowProbe {
    async fn probe(&self) -> Result<Hardware, burnin_core::ProbeError> {
        tokio::time::sleep(self.1).await;
        self.0.probe().await
    }
}

/// Like [`start_agent`], with a probe that takes `delay`.
pub async fn start_slow_agent(config: AmqpConfig, i: usize, delay: Duration) -> RunningAgent {
    let reply_queue = config.reply_queue.clone();
    let (mut source, sink) = burnin_amqp::agent::connect(config)
        .await
        .expect("agent connects");
    let (tx, outcomes) = mpsc::unbounded_channel();
    let (stop, stopped) = oneshot::channel::<()>();
    let transport_errors = Arc::new(Mutex::new(Vec::new()));
    let errs = transport_errors.clone();
    let task = tokio::spawn(async move {
        let mut agent = Agent::new(
            SlowProbe(StaticProbe::new(hardware(i)), delay),
            sink.clone(),
            SystemClock,
            reply_queue,
            "0.1.0-test",
        );
        let r = burnin_core::agent::serve(
            &mut agent,
            &mut source,
            async {
                let _ = stopped.await;
            },
            |o: &CommandOutcome| {
                let _ = tx.send(o.to_string());
            },
            |e: &TransportError| errs.lock().unwrap().push(e.to_string()),
        )
        .await;
        sink.close().await;
        r
    });
    RunningAgent {
        outcomes,
        transport_errors,
        stop: Some(stop),
        task,
    }
}

/// A plain lapin client, playing whatever the test needs.
pub struct Raw {
    pub conn: Connection,
    pub ch: Channel,
}

impl Raw {
    pub async fn connect(url: &str) -> Raw {
        let conn = Connection::connect(url, ConnectionProperties::default())
            .await
            .unwrap();
        let ch = conn.create_channel().await.unwrap();
        ch.confirm_select(ConfirmSelectOptions::default())
            .await
            .unwrap();
        Raw { conn, ch }
    }

    pub async fn publish(&self, exchange: &str, routing_key: &str, body: &[u8]) {
        let props = BasicProperties::default().with_delivery_mode(2);
        let confirm = self
            .ch
            .basic_publish(
                exchange.into(),
                routing_key.into(),
                BasicPublishOptions::default(),
                body,
                props,
            )
            .await
            .unwrap()
            .await
            .unwrap();
        assert!(confirm.is_ack());
    }

    /// Publishes the scan command of operation `op` to the `devicescan`
    /// exchange, as the edge does: replies to `hwinfo_queue`, due within
    /// `within`.
    pub async fn publish_command(&self, op: OperationId, within: Duration) {
        self.publish("devicescan", "", &command(op, "hwinfo_queue", within))
            .await;
    }

    /// Declares the plain (classic, transient) queue `name`.
    pub async fn declare_queue(&self, name: &str) {
        self.ch
            .queue_declare(
                name.into(),
                QueueDeclareOptions::default(),
                FieldTable::default(),
            )
            .await
            .unwrap();
    }

    /// Takes every message now in `queue` (acked).
    pub async fn drain(&self, queue: &str) -> Vec<lapin::message::Delivery> {
        let mut out = Vec::new();
        while let Some(m) = self
            .ch
            .basic_get(queue.into(), BasicGetOptions::default())
            .await
            .unwrap()
        {
            m.delivery
                .acker
                .ack(BasicAckOptions::default())
                .await
                .unwrap();
            out.push(m.delivery);
        }
        out
    }

    /// Consumes `queue` until `n` messages arrived or `within` passed.
    pub async fn collect(
        &self,
        queue: &str,
        n: usize,
        within: Duration,
    ) -> Vec<lapin::message::Delivery> {
        let mut consumer = self
            .ch
            .basic_consume(
                queue.into(),
                "".into(),
                BasicConsumeOptions::default(),
                FieldTable::default(),
            )
            .await
            .unwrap();
        let mut out = Vec::new();
        let _ = tokio::time::timeout(within, async {
            while out.len() < n {
                let Some(Ok(d)) = consumer.next().await else {
                    break;
                };
                d.acker.ack(BasicAckOptions::default()).await.unwrap();
                out.push(d);
            }
        })
        .await;
        out
    }

    pub async fn close(self) {
        let _ = self.conn.close(200, "OK".into()).await;
    }
}

/// MES knows every simulated device with its one MAC.
pub struct SimMes;

#[async_trait]
impl MesSource for SimMes {
    async fn lookup(&self, sn: &SerialNumber) -> Result<MesAnswer, MesError> {
        let i: usize = sn.as_str()[2..].parse().unwrap();
        Ok(MesAnswer::Record(vec![mac(i)]))
    }
}

/// Accepts every payload.
#[derive(Default)]
pub struct NullReporter(pub Mutex<Vec<Payload>>);

#[async_trait]
impl FactoryReporter for NullReporter {
    async fn deliver(&self, payload: &Payload) -> Result<(), ReportError> {
        self.0.lock().unwrap().push(payload.clone());
        Ok(())
    }
}

pub fn header(d: &lapin::message::Delivery, name: &str) -> Option<String> {
    let headers = d.properties.headers().as_ref()?;
    match headers.inner().get(name)? {
        lapin::types::AMQPValue::LongString(s) => Some(s.to_string()),
        other => Some(format!("{other:?}")),
    }
}
