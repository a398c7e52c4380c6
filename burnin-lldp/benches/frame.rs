//! How long the agent takes to handle one LLDP frame: parse an Ethernet
//! frame like lldpd's (Chassis ID, Port ID, TTL, System Name and
//! Description, Capabilities, Management Address, Port Description, two
//! organizational TLVs, End) and keep it in the neighbour table of an agent
//! listening on 4 interfaces. Budget (issue #24): ≤ 5 µs.

use std::hint::black_box;
use std::time::Instant;

use burnin_lldp::{Builder, ETHERTYPE, NEAREST_BRIDGE, NeighbourTable, parse_frame, types};
use criterion::{Criterion, criterion_group, criterion_main};

fn frame() -> Vec<u8> {
    let chassis = [0x44, 0x38, 0x39, 0xff, 0x00, 0x07];
    let pdu = Builder::new(4, &chassis, 5, b"swp7", 120)
        .system_name("leaf-07")
        .tlv(
            types::SYSTEM_DESCRIPTION,
            b"Debian GNU/Linux 12 (bookworm) Linux 6.1.0 x86_64",
        )
        .tlv(types::CAPABILITIES, &[0, 0x14, 0, 0x14])
        .mgmt_ipv4([10, 0, 0, 7])
        .port_description("B3-12")
        .port_vlan(100)
        .tlv(
            types::ORGANIZATIONAL,
            &[0x00, 0x12, 0x0f, 0x01, 0x03, 0x6c, 0x03, 0x00, 0x10],
        )
        .build();
    let mut f = NEAREST_BRIDGE.to_vec();
    f.extend_from_slice(&chassis);
    f.extend_from_slice(&ETHERTYPE.to_be_bytes());
    f.extend_from_slice(&pdu);
    f
}

fn bench(c: &mut Criterion) {
    let f = frame();
    let mut table = NeighbourTable::new();
    for i in ["enp4s0", "enp5s0", "enp6s0", "enp7s0"] {
        table.listen(i);
    }
    let now = Instant::now();
    c.bench_function("parse one lldpd-like frame", |b| {
        b.iter(|| parse_frame(black_box(&f)))
    });
    c.bench_function("handle one frame (parse + table)", |b| {
        b.iter(|| table.handle_frame(black_box("enp6s0"), black_box(&f), now))
    });
    c.bench_function("neighbours of one interface (report)", |b| {
        b.iter(|| table.neighbours(black_box("enp6s0"), now))
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
