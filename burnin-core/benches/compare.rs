//! Compare 10,000 devices with 4 NICs each against MES and build all four
//! factory payloads (goal: ≤ 10 ms on a 2-core machine).

use std::hint::black_box;

use burnin_core::{
    DeviceResult, InterfaceReport, Mac, MesAnswer, OperationId, PciDevice, SerialNumber, payload,
};
use criterion::{Criterion, criterion_group, criterion_main};

const DEVICES: usize = 10_000;
const NICS: usize = 4;

fn fleet() -> Vec<(SerialNumber, Vec<InterfaceReport>, MesAnswer)> {
    (0..DEVICES)
        .map(|d| {
            let sn = SerialNumber::new(format!("Q186I{d:05}")).unwrap_or_else(|e| panic!("{e}"));
            let macs: Vec<Mac> = (0..NICS)
                .map(|n| Mac::new([0x02, 0x18, (d >> 8) as u8, d as u8, n as u8, 0x01]))
                .collect();
            let ifaces = macs
                .iter()
                .enumerate()
                .map(|(n, &m)| InterfaceReport {
                    lldp: None,
                    interface: format!("enp{n}s0"),
                    macaddr: m,
                    permaddr: None,
                    addr_assign_type: None,
                    link: None,
                    pci: PciDevice {
                        pcie_link: None,
                        slot: format!("0000:0{n}:00.0"),
                        vendor: "0x8086".into(),
                        device: "0x1533".into(),
                        class: "0x020000".into(),
                        driver: Some("igb".into()),
                    },
                })
                .collect();
            // Every 10th device has a wrong card in MES.
            let mut mes = macs.clone();
            if d % 10 == 0 {
                mes[0] = Mac::new([0x02, 0, 0, 0, 0, 0x99]);
            }
            (sn, ifaces, MesAnswer::Record(mes))
        })
        .collect()
}

fn bench(c: &mut Criterion) {
    let fleet = fleet();
    let op = OperationId::Number(1001);
    let mut g = c.benchmark_group("operation");
    g.sample_size(30);
    g.bench_function("compare+payloads 10k devices x 4 NICs", |b| {
        b.iter(|| {
            let results: Vec<DeviceResult> = fleet
                .iter()
                .map(|(sn, ifaces, mes)| DeviceResult::compare(sn.clone(), ifaces, mes))
                .collect();
            let p = [
                payload::log(&op, &results),
                payload::pair(&op, &results),
                payload::direct_burn(&op, &results, "OP1", 1),
                payload::notify(&op, &results, None),
            ];
            black_box(p)
        })
    });
    // The two halves, to see where the time goes.
    g.bench_function("compare only, 10k devices x 4 NICs", |b| {
        b.iter(|| {
            let results: Vec<DeviceResult> = fleet
                .iter()
                .map(|(sn, ifaces, mes)| DeviceResult::compare(sn.clone(), ifaces, mes))
                .collect();
            black_box(results)
        })
    });
    let results: Vec<DeviceResult> = fleet
        .iter()
        .map(|(sn, ifaces, mes)| DeviceResult::compare(sn.clone(), ifaces, mes))
        .collect();
    g.bench_function("four payloads only, 10k devices x 4 NICs", |b| {
        b.iter(|| {
            black_box([
                payload::log(&op, &results),
                payload::pair(&op, &results),
                payload::direct_burn(&op, &results, "OP1", 1),
                payload::notify(&op, &results, None),
            ])
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
