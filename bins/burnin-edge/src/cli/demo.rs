//! `burnin-edge demo`: a whole operation in one process, no servers.
//!
//! Simulated devices (built from the core model) answer over the in-memory
//! broker; MES is a file written next to the reports; reports are files.
//! Among the devices, one has a wrong card, one a missing card, one is
//! unknown to MES and one never answers — so every kind of result shows.

use std::path::PathBuf;
use std::time::Duration;

use burnin_core::agent::{Agent, serve};
use burnin_core::memory::{MemoryBroker, StaticProbe};
use burnin_core::{
    Hardware, InterfaceReport, Mac, OperationId, OperationParams, PciDevice, SerialNumber,
};
use burnin_local::{FileMes, OutDirReporter, SystemClock};

use crate::cli::output::Progress;
use crate::exit;
use burnin_service::bounds::Waits;
use burnin_service::report::{json, table};
use burnin_service::{Bounds, PortStack};

/// Flags of `burnin-edge demo`.
#[derive(Debug, clap::Args)]
pub(crate) struct DemoArgs {
    /// How many simulated devices (at least 5 to show every kind of failure).
    #[arg(long, env = "BURNIN_DEVICES", default_value_t = 12,
          value_parser = clap::value_parser!(u32).range(1..=100_000))]
    devices: u32,

    /// Where the MES file and the payloads are written.
    #[arg(long, env = "BURNIN_OUT_DIR", default_value = "burnin-demo")]
    out_dir: PathBuf,

    /// How long to wait for replies (the silent device makes the demo wait
    /// this long).
    #[arg(long, env = "BURNIN_WINDOW", value_name = "DURATION", default_value = "2s", value_parser = crate::cli::scan::parse_window)]
    window: Duration,

    /// Print the result as JSON (`{"operationId", "state", "devices": [...]}`)
    /// instead of a table.
    #[arg(long)]
    json: bool,
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

pub(crate) fn run(args: DemoArgs) -> u8 {
    let rt = match crate::runtime() {
        Ok(rt) => rt,
        Err(code) => return code,
    };
    rt.block_on(demo(args))
}

async fn demo(args: DemoArgs) -> u8 {
    let n = args.devices;
    let devices: Vec<Device> = (1..=n).map(|i| device(i, n)).collect();

    let reporter = match OutDirReporter::new(&args.out_dir) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: {e}");
            return exit::USAGE;
        }
    };
    let mes_path = args.out_dir.join("mes.json");
    let records = FileMes::from_records(
        devices
            .iter()
            .filter_map(|d| Some((d.hardware.sn.clone(), d.mes.clone()?))),
    );
    if let Err(e) = std::fs::write(&mes_path, records.to_json()) {
        eprintln!(
            "error: cannot write {}: {e}; check --out-dir",
            mes_path.display()
        );
        return exit::USAGE;
    }
    let mes = match FileMes::load(&mes_path) {
        Ok(m) => m,
        Err(e) => {
            eprintln!("error: {e}");
            return exit::INTERNAL;
        }
    };

    let broker = MemoryBroker::new();
    let (publisher, replies) = broker.edge("hwinfo_queue");
    let mut agents = Vec::new();
    for d in &devices {
        if d.silent {
            continue;
        }
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

    let op = OperationId::Number(1001);
    let mut params = OperationParams::new(op);
    params.expected = devices.iter().map(|d| d.hardware.sn.clone()).collect();
    params.window = args.window;
    eprintln!(
        "demo: {n} simulated devices ({} answering), MES file {}, window {}",
        agents.len(),
        mes_path.display(),
        humantime::format_duration(args.window)
    );
    let progress = Progress::new(params.expected.len());
    // The ports as scan and serve compose them; nothing is kept.
    let ports = PortStack::new(
        Bounds::default(),
        Waits::new(),
        Box::new(mes),
        Box::new(reporter),
        burnin_core::NoStore,
    );
    let report = match ports.start(params, &SystemClock).await {
        Ok(op) => {
            ports
                .run(op, &publisher, replies, &SystemClock, &progress)
                .await
        }
        // NoStore records nothing, so it refuses nothing; said all the same.
        Err(e) => {
            eprintln!("error: the demo could not start its operation: {e}");
            return exit::INTERNAL;
        }
    };
    for a in agents {
        a.abort();
    }

    if args.json {
        println!("{}", json(&report, None));
        return exit_code(&report);
    }
    print!("{}", table(&report));
    println!("\nfiles in {}:", args.out_dir.display());
    let mut files: Vec<_> = std::fs::read_dir(&args.out_dir)
        .map(|rd| rd.filter_map(|e| Some(e.ok()?.path())).collect())
        .unwrap_or_default();
    files.sort();
    for f in files {
        println!("  {}", f.display());
    }
    exit_code(&report)
}

/// The demo exits as `scan` would (SPEC §7): 1 when a device failed, as
/// the default demo's do on purpose.
fn exit_code(report: &burnin_core::edge::OperationReport) -> u8 {
    crate::cli::scan::exit_code(report)
}
