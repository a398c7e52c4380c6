//! Simulated devices, three ways:
//!
//! * [`start_connected`]: one real broker connection per device through
//!   burnin-amqp (`agent::connect`), served by burnin-core's `Agent` and
//!   `serve`, exactly as `burnin-agent run` does it; only the hardware
//!   probe is a fixed answer (`StaticProbe`, or a delayed one for the
//!   fault run). lapin runs one I/O thread per connection.
//! * [`start_multiplexed`]: for 10,000 devices, where 10,000 connections
//!   (and 10,000 lapin threads) in one process on two cores is past what
//!   this machine does well: one AMQP **channel** per device, many
//!   channels per connection. Each channel declares its own server-named,
//!   exclusive, auto-delete queue bound to the command exchange, consumes
//!   it, and answers with burnin-core's `Agent` through a reply sink that
//!   publishes on that channel (persistent, mandatory, `correlation_id`,
//!   publisher confirms; retried until the deadline): the agent protocol of
//!   SPEC §4, with connections shared.
//! * [`start_seed_multiplexed`]: the baseline's agents, simulated the same
//!   way: each channel answers a command with the seed's reply
//!   (`{"sn", "macinfo": [{"interface", "macaddr"}], "operationId"}`,
//!   persistent, to `hwinfo_queue`, no confirms), as `seed_agent.py` does.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use std::time::Instant;

use anyhow::Context as _;
use async_trait::async_trait;
use burnin_amqp::AmqpConfig;
use burnin_core::agent::{Agent, serve};
use burnin_core::memory::StaticProbe;
use burnin_core::{
    Hardware, HardwareProbe, InterfaceReport, Mac, OutgoingReply, PciDevice, ProbeError, ReplySink,
    SerialNumber, TransportError,
};
use burnin_local::SystemClock;
use futures::StreamExt;
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicPublishOptions, BasicQosOptions,
    ConfirmSelectOptions, ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions,
};
use lapin::types::FieldTable;
use lapin::{
    BasicProperties, Channel, Confirmation, Connection, ConnectionProperties, ExchangeKind,
};
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinSet;

/// When simulated agents got the command and had their reply confirmed
/// (first and last), for a run's breakdown.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct Marks {
    pub(crate) command: Option<(Instant, Instant)>,
    pub(crate) replied: Option<(Instant, Instant)>,
}

static MARKS: Mutex<Marks> = Mutex::new(Marks {
    command: None,
    replied: None,
});

fn mark(slot: fn(&mut Marks) -> &mut Option<(Instant, Instant)>) {
    let now = Instant::now();
    let mut m = MARKS.lock().unwrap_or_else(|e| e.into_inner());
    let s = slot(&mut m);
    *s = Some(match *s {
        None => (now, now),
        Some((a, b)) => (a.min(now), b.max(now)),
    });
}

/// The marks since the last call, reset.
pub(crate) fn take_marks() -> Marks {
    std::mem::take(&mut *MARKS.lock().unwrap_or_else(|e| e.into_inner()))
}

/// The agent version simulated agents report.
const VERSION: &str = concat!("burnin-load ", env!("CARGO_PKG_VERSION"));

/// One simulated device.
#[derive(Debug, Clone)]
pub(crate) struct Sim {
    pub(crate) sn: String,
    pub(crate) macs: Vec<String>,
}

impl Sim {
    /// Device number `i`: serial `<prefix><i:06>`, two NICs with
    /// locally administered MACs derived from `i`.
    pub(crate) fn new(prefix: &str, i: u32) -> Self {
        let b = i.to_be_bytes();
        let macs = (1..=2u8)
            .map(|nic| {
                format!(
                    "02:{nic:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
                    b[0], b[1], b[2], b[3]
                )
            })
            .collect();
        Sim {
            sn: format!("{prefix}{i:06}"),
            macs,
        }
    }

    pub(crate) fn hardware(&self) -> anyhow::Result<Hardware> {
        let interfaces = self
            .macs
            .iter()
            .enumerate()
            .map(|(k, m)| {
                let mac: Mac = m.parse().context("simulated MAC")?;
                Ok(InterfaceReport {
                    interface: format!("enp{}s0", k + 1),
                    macaddr: mac,
                    pci: pci(k + 1),
                })
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        Ok(Hardware {
            sn: SerialNumber::new(self.sn.clone()).context("simulated serial")?,
            hostname: format!("dut-{}", self.sn),
            pci_devices: interfaces.iter().map(|i| i.pci.clone()).collect(),
            interfaces,
        })
    }

    /// Lays out this device's sysfs tree (for real agent processes).
    pub(crate) fn write_tree(&self, root: &std::path::Path) {
        let mut fx = burnin_sysfs::fixture::Fixture::new(root).serial(&self.sn);
        for (k, mac) in self.macs.iter().enumerate() {
            fx = fx.pci_nic(
                &format!("enp{}s0", k + 1),
                &format!("0000:{:02x}:00.0", k + 1),
                mac,
                "igb",
            );
        }
        fx.loopback();
    }
}

fn pci(bus: usize) -> PciDevice {
    PciDevice {
        slot: format!("0000:{bus:02x}:00.0"),
        vendor: "0x8086".into(),
        device: "0x1533".into(),
        class: "0x020000".into(),
        driver: Some("igb".into()),
    }
}

/// A probe that answers after a delay (the fault run spreads replies over
/// a few seconds so connections can be closed while replies are flowing).
#[derive(Debug, Clone)]
pub(crate) struct DelayedProbe {
    inner: StaticProbe,
    delay: Duration,
}

#[async_trait]
impl HardwareProbe for DelayedProbe {
    async fn probe(&self) -> Result<Hardware, ProbeError> {
        mark(|m| &mut m.command);
        if !self.delay.is_zero() {
            tokio::time::sleep(self.delay).await;
        }
        self.inner.probe().await
    }
}

/// Running simulated agents; stopped by [`Fleet::stop`] or on drop.
pub(crate) struct Fleet {
    stop: watch::Sender<bool>,
    tasks: JoinSet<()>,
    /// Extra connections held open (multiplexed fleets).
    conns: Vec<Connection>,
    pub(crate) label: String,
}

impl Fleet {
    fn new(label: String) -> (Self, watch::Receiver<bool>) {
        let (stop, rx) = watch::channel(false);
        (
            Fleet {
                stop,
                tasks: JoinSet::new(),
                conns: Vec::new(),
                label,
            },
            rx,
        )
    }

    pub(crate) async fn stop(mut self) {
        let _ = self.stop.send(true);
        for c in self.conns.drain(..) {
            let _ = c.close(200, "burnin-load done".into()).await;
        }
        let _ = tokio::time::timeout(Duration::from_secs(20), async {
            while self.tasks.join_next().await.is_some() {}
        })
        .await;
        self.tasks.abort_all();
    }
}

async fn stopped(mut rx: watch::Receiver<bool>) {
    let _ = rx.wait_for(|s| *s).await;
}

/// One burnin-amqp connection per device; returns once every agent
/// consumes its command queue. `delay(i)` (fault run) delays device `i`'s
/// probe; `name(i)` is its broker connection name.
pub(crate) async fn start_connected(
    url: &str,
    devices: &[Sim],
    delay: impl Fn(usize) -> Duration,
    name: impl Fn(usize) -> String,
) -> anyhow::Result<Fleet> {
    let (mut fleet, rx) = Fleet::new(format!(
        "{} burnin-amqp connections, one per device",
        devices.len()
    ));
    let ready = Arc::new(AtomicUsize::new(0));
    // Connecting a thousand at once makes the broker refuse some
    // handshakes on two cores; 32 at a time is quick enough.
    let gate = Arc::new(Semaphore::new(32));
    let (err_tx, mut err_rx) = tokio::sync::mpsc::unbounded_channel::<String>();
    for (i, d) in devices.iter().enumerate() {
        let mut config = AmqpConfig::new(url);
        config.connection_name = Some(name(i));
        config.connect_timeout = Duration::from_secs(30);
        let probe = DelayedProbe {
            inner: StaticProbe::new(d.hardware()?),
            delay: delay(i),
        };
        let (ready, gate, rx, err_tx) = (ready.clone(), gate.clone(), rx.clone(), err_tx.clone());
        let sn = d.sn.clone();
        fleet.tasks.spawn(async move {
            let permit = gate.acquire_owned().await;
            let (mut source, sink) = match burnin_amqp::agent::connect(config).await {
                Ok(halves) => halves,
                Err(e) => {
                    let _ = err_tx.send(format!("agent {sn}: {e}"));
                    return;
                }
            };
            drop(permit);
            ready.fetch_add(1, Ordering::SeqCst);
            let mut agent = Agent::new(probe, sink.clone(), SystemClock, "hwinfo_queue", VERSION);
            let on_outcome = |o: &burnin_core::agent::CommandOutcome| {
                if matches!(o, burnin_core::agent::CommandOutcome::Replied(_)) {
                    mark(|m| &mut m.replied);
                }
            };
            let _ = serve(&mut agent, &mut source, stopped(rx), on_outcome, |_| {}).await;
            source.close().await;
        });
    }
    drop(err_tx);
    wait_ready(&ready, devices.len(), &mut err_rx).await?;
    Ok(fleet)
}

async fn wait_ready(
    ready: &AtomicUsize,
    n: usize,
    errors: &mut tokio::sync::mpsc::UnboundedReceiver<String>,
) -> anyhow::Result<()> {
    let start = std::time::Instant::now();
    loop {
        if let Ok(e) = errors.try_recv() {
            anyhow::bail!("a simulated agent could not connect: {e}");
        }
        let r = ready.load(Ordering::SeqCst);
        if r >= n {
            return Ok(());
        }
        anyhow::ensure!(
            start.elapsed() < Duration::from_secs(300),
            "only {r} of {n} simulated agents connected within 300 s"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Which protocol a multiplexed channel speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Speaks {
    Burnin,
    Seed,
}

/// One channel per device over `devices / per_conn` connections, burnin's
/// agent protocol.
pub(crate) async fn start_multiplexed(
    url: &str,
    devices: &[Sim],
    per_conn: usize,
) -> anyhow::Result<Fleet> {
    start_mux(url, devices, per_conn, Speaks::Burnin).await
}

/// The baseline's agents: one channel per device, the seed's reply format.
pub(crate) async fn start_seed_multiplexed(
    url: &str,
    devices: &[Sim],
    per_conn: usize,
) -> anyhow::Result<Fleet> {
    start_mux(url, devices, per_conn, Speaks::Seed).await
}

async fn start_mux(
    url: &str,
    devices: &[Sim],
    per_conn: usize,
    speaks: Speaks,
) -> anyhow::Result<Fleet> {
    let per_conn = per_conn.max(1);
    let (mut fleet, rx) = Fleet::new(format!(
        "{} devices as one AMQP channel each, {per_conn} per connection ({} connections)",
        devices.len(),
        devices.len().div_ceil(per_conn)
    ));
    // Heartbeats on, frames small, like burnin-amqp's connections.
    let uri = format!("{url}?heartbeat=20&frame_max=8192");
    let mut set = JoinSet::new();
    let gate = Arc::new(Semaphore::new(8));
    for (c, chunk) in devices.chunks(per_conn).enumerate() {
        let uri = uri.clone();
        let chunk = chunk.to_vec();
        let gate = gate.clone();
        set.spawn(async move {
            let _permit = gate.acquire_owned().await;
            let props = ConnectionProperties::default()
                .with_connection_name(format!("burnin-load mux {c}").into());
            let conn = Connection::connect(&uri, props)
                .await
                .with_context(|| format!("simulated-agent connection {c}"))?;
            let mut channels = Vec::with_capacity(chunk.len());
            for d in chunk {
                let ch = open_agent_channel(&conn, speaks).await?;
                channels.push((d, ch));
            }
            anyhow::Ok((conn, channels))
        });
    }
    while let Some(done) = set.join_next().await {
        let (conn, channels) = done??;
        for (d, (ch, consumer)) in channels {
            let rx = rx.clone();
            match speaks {
                Speaks::Burnin => {
                    let hw = d.hardware()?;
                    fleet
                        .tasks
                        .spawn(burnin_channel_agent(ch, consumer, hw, rx));
                }
                Speaks::Seed => {
                    fleet.tasks.spawn(seed_channel_agent(ch, consumer, d, rx));
                }
            }
        }
        fleet.conns.push(conn);
    }
    Ok(fleet)
}

async fn open_agent_channel(
    conn: &Connection,
    speaks: Speaks,
) -> anyhow::Result<(Channel, lapin::Consumer)> {
    let ch = conn.create_channel().await?;
    ch.exchange_declare(
        "devicescan".into(),
        ExchangeKind::Fanout,
        ExchangeDeclareOptions {
            durable: true,
            ..ExchangeDeclareOptions::default()
        },
        FieldTable::default(),
    )
    .await?;
    let q = ch
        .queue_declare(
            "".into(),
            QueueDeclareOptions {
                exclusive: true,
                auto_delete: true,
                ..QueueDeclareOptions::default()
            },
            FieldTable::default(),
        )
        .await?;
    ch.queue_bind(
        q.name().clone(),
        "devicescan".into(),
        "".into(),
        QueueBindOptions::default(),
        FieldTable::default(),
    )
    .await?;
    if speaks == Speaks::Burnin {
        ch.basic_qos(4, BasicQosOptions::default()).await?;
        ch.confirm_select(ConfirmSelectOptions::default()).await?;
    }
    let consumer = ch
        .basic_consume(
            q.name().clone(),
            "".into(),
            BasicConsumeOptions {
                no_ack: speaks == Speaks::Seed,
                ..BasicConsumeOptions::default()
            },
            FieldTable::default(),
        )
        .await?;
    Ok((ch, consumer))
}

/// burnin's reply sink over one channel in confirm mode.
struct ChannelSink {
    ch: Channel,
}

#[async_trait]
impl ReplySink for ChannelSink {
    async fn send(&self, reply: &OutgoingReply) -> Result<(), TransportError> {
        let props = BasicProperties::default()
            .with_content_type("application/json".into())
            .with_delivery_mode(2)
            .with_correlation_id(reply.operation_id.to_string().into());
        let until = reply.deadline.system_time();
        loop {
            let outcome = async {
                let confirm = self
                    .ch
                    .basic_publish(
                        "".into(),
                        reply.reply_to.as_str().into(),
                        BasicPublishOptions {
                            mandatory: true,
                            ..BasicPublishOptions::default()
                        },
                        &reply.body,
                        props.clone(),
                    )
                    .await
                    .map_err(|e| e.to_string())?;
                match tokio::time::timeout(Duration::from_secs(10), confirm).await {
                    Ok(Ok(Confirmation::Ack(None) | Confirmation::NotRequested)) => Ok(()),
                    Ok(Ok(other)) => Err(format!("not delivered: {other:?}")),
                    Ok(Err(e)) => Err(e.to_string()),
                    Err(_) => Err("no confirm within 10 s".to_owned()),
                }
            }
            .await;
            match outcome {
                Ok(()) => return Ok(()),
                Err(why) if std::time::SystemTime::now() >= until => {
                    return Err(TransportError::DeadlinePassed(why));
                }
                Err(_) if !self.ch.status().connected() => return Err(TransportError::Closed),
                Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
    }
}

async fn burnin_channel_agent(
    ch: Channel,
    mut consumer: lapin::Consumer,
    hw: Hardware,
    stop: watch::Receiver<bool>,
) {
    let mut agent = Agent::new(
        StaticProbe::new(hw),
        ChannelSink { ch },
        SystemClock,
        "hwinfo_queue",
        VERSION,
    );
    let stop = stopped(stop);
    tokio::pin!(stop);
    loop {
        let next = tokio::select! {
            () = &mut stop => return,
            next = consumer.next() => next,
        };
        let Some(Ok(d)) = next else { return };
        // As burnin-amqp's agent: the queue is this channel's alone, so
        // acking on receipt loses nothing.
        let _ = d.acker.ack(BasicAckOptions::default()).await;
        mark(|m| &mut m.command);
        if let burnin_core::agent::CommandOutcome::Replied(_) = agent.handle_command(&d.data).await
        {
            mark(|m| &mut m.replied);
        }
    }
}

async fn seed_channel_agent(
    ch: Channel,
    mut consumer: lapin::Consumer,
    d: Sim,
    stop: watch::Receiver<bool>,
) {
    let macinfo: Vec<serde_json::Value> = d
        .macs
        .iter()
        .enumerate()
        .map(|(k, m)| serde_json::json!({"interface": format!("enp{}s0", k + 1), "macaddr": m}))
        .collect();
    let stop = stopped(stop);
    tokio::pin!(stop);
    loop {
        let next = tokio::select! {
            () = &mut stop => return,
            next = consumer.next() => next,
        };
        let Some(Ok(delivery)) = next else { return };
        let Ok(cmd) = serde_json::from_slice::<serde_json::Value>(&delivery.data) else {
            continue;
        };
        let body = serde_json::json!({
            "sn": d.sn,
            "macinfo": macinfo,
            "operationId": cmd.get("operationId").cloned().unwrap_or_default(),
        })
        .to_string();
        let _ = ch
            .basic_publish(
                "".into(),
                "hwinfo_queue".into(),
                BasicPublishOptions::default(),
                body.as_bytes(),
                BasicProperties::default().with_delivery_mode(2),
            )
            .await;
    }
}
