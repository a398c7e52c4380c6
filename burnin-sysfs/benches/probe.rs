//! How long one probe takes on a large device: 64 NICs (4 of them bond
//! members, 4 virtio, 8 with an address changed by software and a
//! permanent one in the fixture's file, 4 with their link down), 256 PCI
//! devices, and a handful of virtual interfaces. Every NIC's link facts
//! (carrier, operstate, speed, addr_assign_type) are read.
//!
//! Also: the rtnetlink link dump of this machine (what a probe of `/sys`
//! adds once per scan).

// Says why the netlink dump is not measured where it cannot be made.
#![allow(clippy::print_stderr)]

use std::hint::black_box;

use burnin_sysfs::{Hostname, SysfsProbe};
use burnin_testkit::fixture::{Fixture, PciIds};
use criterion::{Criterion, criterion_group, criterion_main};

fn big_tree(root: &std::path::Path) -> Fixture {
    let mut fx = Fixture::new(root).serial("BENCH0001").loopback();
    let mut pci = 0;
    for i in 0..64u32 {
        let slot = format!("0000:{:02x}:00.0", 0x40 + i);
        let mac = format!("e0:18:7d:2e:{:02x}:{:02x}", i / 256, i % 256);
        fx = if i < 4 {
            fx.virtio_nic(&format!("eth{i}"), &slot, &mac)
        } else {
            fx.pci_nic(&format!("enp{}s0", 0x40 + i), &slot, &mac, "igb")
        };
        pci += 1;
    }
    for i in 8..16u32 {
        fx = fx.set_address(
            &format!("enp{}s0", 0x40 + i),
            &format!("02:00:00:00:00:{i:02x}"),
        );
    }
    for i in 16..20u32 {
        fx = fx.link_state(&format!("enp{}s0", 0x40 + i), None, "down", None);
    }
    fx = fx.bond(
        "bond0",
        "e0:18:7d:2e:00:04",
        &["enp68s0", "enp69s0", "enp70s0", "enp71s0"],
    );
    for i in 0..8 {
        fx = fx.veth(&format!("veth{i}"), &format!("6a:00:00:00:00:{i:02x}"));
    }
    fx = fx.bridge("docker0", "02:42:ac:11:00:01").tun("tun0");
    let mut n = 0u32;
    while pci < 256 {
        let slot = format!("0000:{:02x}:{:02x}.{}", n / 64, (n / 8) % 8 + 0x10, n % 8);
        let driver = n.is_multiple_of(3).then_some("pcieport");
        fx = fx.pci_device(&slot, PciIds::HOST_BRIDGE, driver);
        pci += 1;
        n += 1;
    }
    fx
}

fn bench(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("temporary directory");
    let fx = big_tree(dir.path());
    let probe = SysfsProbe::new(fx.root()).with_hostname(Hostname::Fixed("bench".into()));
    let scan = probe.scan().expect("the bench tree can be probed");
    assert_eq!(scan.hardware.interfaces.len(), 64);
    assert_eq!(scan.hardware.pci_devices.len(), 256);
    assert!(scan.warnings.is_empty(), "{:?}", scan.warnings);
    assert_eq!(
        scan.hardware
            .interfaces
            .iter()
            .filter(|i| i.permaddr.is_some())
            .count(),
        12,
        "8 set by software, 4 bond members"
    );
    c.bench_function("probe 64 NICs, 256 PCI devices", |b| {
        b.iter(|| black_box(probe.scan().expect("scan")))
    });
    match burnin_sysfs::netlink::permanent_addresses() {
        Ok(_) => {
            c.bench_function("rtnetlink link dump (this machine)", |b| {
                b.iter(|| black_box(burnin_sysfs::netlink::permanent_addresses()))
            });
        }
        Err(e) => eprintln!("not measuring the netlink dump: {e}"),
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
