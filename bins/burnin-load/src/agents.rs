//! Simulated devices:
//!
//! * [`start_burnin`]: burnin's agents — burnin-core's `Agent` on
//!   **burnin-amqp's agent adapter** (`agent::connect_shared`: each device
//!   its own server-named queue, its own confirm-mode reply channel, the
//!   adapter's retries and reconnects), several devices per broker
//!   connection. Only the hardware probe is a fixed answer
//!   (`StaticProbe`, delayed for the fault run) instead of sysfs.
//! * [`start_seed_multiplexed`]: the baseline's agents for 1,000 devices,
//!   one AMQP channel each: each answers a command with the seed's reply
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
    Hardware, HardwareProbe, InterfaceReport, Mac, PciDevice, ProbeError, SerialNumber,
};
use burnin_local::SystemClock;
use futures::StreamExt;
use lapin::options::{
    BasicConsumeOptions, BasicPublishOptions, ExchangeDeclareOptions, QueueBindOptions,
    QueueDeclareOptions,
};
use lapin::types::FieldTable;
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties, ExchangeKind};
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
                    lldp: None,
                    interface: format!("enp{}s0", k + 1),
                    macaddr: mac,
                    permaddr: None,
                    addr_assign_type: None,
                    link: None,
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
    pub(crate) fn write_tree(&self, root: &std::path::Path) -> anyhow::Result<()> {
        let macs: Vec<&str> = self.macs.iter().map(String::as_str).collect();
        burnin_testkit::Device::new(&self.sn, &macs)
            .try_write_tree(root)
            .map_err(anyhow::Error::msg)
    }
}

fn pci(bus: usize) -> PciDevice {
    PciDevice {
        pcie_link: None,
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

/// Devices per connection when `devices` share at most `connections`
/// connections (the last connection may hold fewer).
pub(crate) fn per_connection(devices: usize, connections: usize) -> usize {
    devices
        .div_ceil(connections.clamp(1, devices.max(1)))
        .max(1)
}

/// burnin's agents for `devices` over `connections` broker connections
/// (burnin-amqp's `agent::connect_shared`, connection `c` named
/// `name(c)`); returns once every agent consumes its command queue.
/// `urls` are the broker, or the nodes of one cluster: each connection
/// tries them in a fresh random order, as a device given every node does.
/// `delay(i)` (fault runs) delays device `i`'s probe.
pub(crate) async fn start_burnin(
    urls: &[String],
    devices: &[Sim],
    connections: usize,
    delay: impl Fn(usize) -> Duration,
    name: impl Fn(usize) -> String,
) -> anyhow::Result<Fleet> {
    let per_conn = per_connection(devices.len(), connections);
    let chunks = devices.len().div_ceil(per_conn);
    let (mut fleet, rx) = Fleet::new(format!(
        "{} burnin agents on burnin-amqp's adapter, {per_conn} per connection ({chunks} connections)",
        devices.len()
    ));
    let ready = Arc::new(AtomicUsize::new(0));
    // Connecting many at once makes the broker refuse some handshakes on
    // two cores; 8 connections at a time is quick enough.
    let gate = Arc::new(Semaphore::new(8));
    let (err_tx, mut err_rx) = tokio::sync::mpsc::unbounded_channel::<String>();
    for (c, chunk) in devices.chunks(per_conn).enumerate() {
        let mut config = AmqpConfig::cluster(urls.iter().cloned());
        config.connection_name = Some(name(c));
        config.connect_timeout = Duration::from_secs(30);
        let first = c * per_conn;
        let probes = chunk
            .iter()
            .enumerate()
            .map(|(k, d)| {
                Ok(DelayedProbe {
                    inner: StaticProbe::new(d.hardware()?),
                    delay: delay(first + k),
                })
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        let (ready, gate, rx, err_tx) = (ready.clone(), gate.clone(), rx.clone(), err_tx.clone());
        fleet.tasks.spawn(async move {
            let permit = gate.acquire_owned().await;
            let halves = match burnin_amqp::agent::connect_shared(config, probes.len()).await {
                Ok(h) => h,
                Err(e) => {
                    let _ = err_tx.send(format!("agent connection {c}: {e}"));
                    return;
                }
            };
            drop(permit);
            let mut agents = JoinSet::new();
            for (probe, (mut source, sink)) in probes.into_iter().zip(halves) {
                let rx = rx.clone();
                agents.spawn(async move {
                    let mut agent = Agent::new(probe, sink, SystemClock, "hwinfo_queue", VERSION);
                    let on_outcome = |o: &burnin_core::agent::CommandOutcome| {
                        if matches!(o, burnin_core::agent::CommandOutcome::Replied(_)) {
                            mark(|m| &mut m.replied);
                        }
                    };
                    let _ = serve(&mut agent, &mut source, stopped(rx), on_outcome, |_| {}).await;
                    source.close().await;
                });
            }
            ready.fetch_add(agents.len(), Ordering::SeqCst);
            while agents.join_next().await.is_some() {}
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

/// The baseline's agents: one channel per device, the seed's reply format.
pub(crate) async fn start_seed_multiplexed(
    url: &str,
    devices: &[Sim],
    per_conn: usize,
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
                let ch = open_seed_channel(&conn).await?;
                channels.push((d, ch));
            }
            anyhow::Ok((conn, channels))
        });
    }
    while let Some(done) = set.join_next().await {
        let (conn, channels) = done??;
        for (d, (ch, consumer)) in channels {
            let rx = rx.clone();
            fleet.tasks.spawn(seed_channel_agent(ch, consumer, d, rx));
        }
        fleet.conns.push(conn);
    }
    Ok(fleet)
}

async fn open_seed_channel(conn: &Connection) -> anyhow::Result<(Channel, lapin::Consumer)> {
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
    let consumer = ch
        .basic_consume(
            q.name().clone(),
            "".into(),
            BasicConsumeOptions {
                no_ack: true,
                ..BasicConsumeOptions::default()
            },
            FieldTable::default(),
        )
        .await?;
    Ok((ch, consumer))
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
