//! A whole operation in one process, no servers: what `burnin-edge demo`
//! runs.
//!
//! Simulated devices (built from the core model) answer over the in-memory
//! broker; MES is a file written next to the reports; reports are files.
//! Among the devices, one has a wrong card, one a missing card, one is
//! unknown to MES and one never answers — so every kind of result shows.

use std::path::{Path, PathBuf};
use std::time::Duration;

use burnin_core::agent::{Agent, serve};
use burnin_core::edge::{Observer, OperationReport};
use burnin_core::memory::{MemoryBroker, StaticProbe};
use burnin_core::{
    Hardware, InterfaceReport, Mac, OperationId, OperationParams, PciDevice, SerialNumber,
};
use burnin_local::{FileMes, OutDirReporter, SystemClock};

use crate::{Bounds, PortStack, Waits};

/// A demo run about to start: what [`prepare`] made.
#[derive(Debug)]
pub struct Demo {
    devices: Vec<Device>,
    mes: FileMes,
    reporter: OutDirReporter,
    /// The MES file written.
    pub mes_path: PathBuf,
    window: Duration,
}

/// How a demo failed before its operation ran.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DemoError {
    /// The folder could not be used (the user's input).
    Folder(String),
    /// Something else.
    Internal(String),
}

impl std::fmt::Display for DemoError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DemoError::Folder(m) | DemoError::Internal(m) => f.write_str(m),
        }
    }
}

/// Simulates `devices` devices, writes their MES file into `out_dir` (where
/// the payloads go too), for an operation with this `window`.
///
/// # Errors
///
/// The folder cannot be created or written.
pub fn prepare(devices: u32, out_dir: &Path, window: Duration) -> Result<Demo, DemoError> {
    let devices: Vec<Device> = (1..=devices).map(|i| device(i, devices)).collect();
    let reporter = OutDirReporter::new(out_dir).map_err(|e| DemoError::Folder(e.to_string()))?;
    let mes_path = out_dir.join("mes.json");
    let records = FileMes::from_records(
        devices
            .iter()
            .filter_map(|d| Some((d.hardware.sn.clone(), d.mes.clone()?))),
    );
    std::fs::write(&mes_path, records.to_json()).map_err(|e| {
        DemoError::Folder(format!(
            "cannot write {}: {e}; check --out-dir",
            mes_path.display()
        ))
    })?;
    let mes = FileMes::load(&mes_path).map_err(|e| DemoError::Internal(e.to_string()))?;
    Ok(Demo {
        devices,
        mes,
        reporter,
        mes_path,
        window,
    })
}

impl Demo {
    /// How many simulated devices answer (all but the silent one).
    pub fn answering(&self) -> usize {
        self.devices.iter().filter(|d| !d.silent).count()
    }

    /// How many devices the operation expects.
    pub fn expected(&self) -> usize {
        self.devices.len()
    }

    /// Runs the operation, telling `observer`, with the ports composed as
    /// `scan` and `serve` compose them; nothing is kept.
    ///
    /// # Errors
    ///
    /// The operation could not start (never expected: nothing is recorded).
    pub async fn run(self, observer: &dyn Observer) -> Result<OperationReport, DemoError> {
        let broker = MemoryBroker::new();
        let (publisher, replies) = broker.edge("hwinfo_queue");
        let mut agents = Vec::new();
        for d in self.devices.iter().filter(|d| !d.silent) {
            let (mut source, sink) = broker.agent();
            let probe = StaticProbe::new(d.hardware.clone());
            agents.push(tokio::spawn(async move {
                let mut agent = Agent::new(
                    probe,
                    sink,
                    SystemClock,
                    "hwinfo_queue",
                    env!("CARGO_PKG_VERSION"),
                );
                let _ = serve(
                    &mut agent,
                    &mut source,
                    std::future::pending(),
                    |outcome| {
                        if outcome.is_error() {
                            tracing::error!("simulated agent: {outcome}");
                        }
                    },
                    |e| tracing::warn!("simulated agent: {e}"),
                )
                .await;
            }));
        }
        let mut params = OperationParams::new(OperationId::Number(1001));
        params.expected = self.devices.iter().map(|d| d.hardware.sn.clone()).collect();
        params.window = self.window;
        let ports = PortStack::new(
            Bounds::default(),
            Waits::new(),
            Box::new(self.mes),
            Box::new(self.reporter),
            burnin_core::NoStore,
        );
        let report = match ports.start(params, &SystemClock).await {
            Ok(op) => Ok(ports
                .run(op, &publisher, replies, &SystemClock, observer)
                .await),
            // NoStore records nothing, so it refuses nothing; said all the same.
            Err(e) => Err(DemoError::Internal(format!(
                "the demo could not start its operation: {e}"
            ))),
        };
        for a in agents {
            a.abort();
        }
        report
    }
}

/// What is wrong with a simulated device.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Defect {
    None,
    WrongCard,
    MissingCard,
    UnknownToMes,
    Silent,
}

fn defect(i: u32, n: u32) -> Defect {
    match i {
        _ if n >= 5 && i == n => Defect::Silent,
        3 if n >= 5 => Defect::WrongCard,
        5 if n >= 5 => Defect::MissingCard,
        7 if n >= 8 => Defect::UnknownToMes,
        _ => Defect::None,
    }
}

fn mac(device: u32, port: u8) -> Mac {
    let d = device.to_be_bytes();
    Mac::new([0x02, 0xb1, d[1], d[2], d[3], port])
}

#[derive(Debug)]
struct Device {
    hardware: Hardware,
    mes: Option<Vec<Mac>>,
    silent: bool,
}

fn device(i: u32, n: u32) -> Device {
    let sn = SerialNumber::new(format!("DEMO{i:05}")).expect("DEMO and digits is a valid serial");
    let ports: u8 = if i.is_multiple_of(4) { 4 } else { 2 };
    let interfaces: Vec<InterfaceReport> = (0..ports)
        .map(|p| InterfaceReport {
            lldp: None,
            interface: format!("enp{}s0f{p}", 4 + p / 2),
            macaddr: mac(i, p),
            permaddr: None,
            addr_assign_type: None,
            link: None,
            pci: PciDevice {
                pcie_link: None,
                slot: format!("0000:{:02x}:00.{}", 4 + p / 2, p % 2),
                vendor: "0x8086".into(),
                device: "0x1521".into(),
                class: "0x020000".into(),
                driver: Some("igb".into()),
            },
        })
        .collect();
    let mut mes: Vec<Mac> = interfaces.iter().map(|i| i.macaddr).collect();
    let d = defect(i, n);
    match d {
        Defect::WrongCard => mes[1] = Mac::new([0x02, 0xee, 0, 0, 0, 1]),
        Defect::MissingCard => mes.push(mac(i, 9)),
        _ => {}
    }
    Device {
        hardware: Hardware {
            pci_devices: interfaces.iter().map(|i| i.pci.clone()).collect(),
            sn,
            hostname: format!("dut-{i}"),
            interfaces,
        },
        mes: (d != Defect::UnknownToMes).then_some(mes),
        silent: d == Defect::Silent,
    }
}
