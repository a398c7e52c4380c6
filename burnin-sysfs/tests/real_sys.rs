//! The probe on this machine's real `/sys`.

use std::fs;
use std::path::Path;

use burnin_sysfs::SysfsProbe;

#[test]
fn real_sys_reports_every_pci_backed_interface() {
    let sys = Path::new("/sys");
    if !sys.join("class/net").is_dir() {
        assert!(
            std::env::var_os("CI").is_none(),
            "/sys/class/net is missing on CI"
        );
        eprintln!("skipping: no /sys/class/net on this machine");
        return;
    }
    // The DMI serial may be absent (VMs, containers) or root-only: pass one.
    let scan = SysfsProbe::new(sys)
        .with_serial("REAL-SYS-TEST".parse().unwrap())
        .scan()
        .expect("the real /sys can be probed");
    for w in &scan.warnings {
        eprintln!("warning: {w}");
    }

    // Every reported interface sits on a PCI slot that exists.
    for i in &scan.hardware.interfaces {
        let slot = sys.join("bus/pci/devices").join(&i.pci.slot);
        assert!(
            slot.exists(),
            "{} reports slot {} which is not in /sys/bus/pci/devices",
            i.interface,
            i.pci.slot
        );
        assert!(
            scan.hardware.pci_devices.contains(&i.pci),
            "{}'s PCI device {:?} is not among the PCI devices",
            i.interface,
            i.pci
        );
        // The address matches what the kernel shows (no bonds here expected;
        // a bond member would show the bond's address instead).
        if !sys
            .join("class/net")
            .join(&i.interface)
            .join("bonding_slave")
            .exists()
        {
            let shown =
                fs::read_to_string(sys.join("class/net").join(&i.interface).join("address"))
                    .unwrap();
            assert_eq!(i.macaddr, shown.trim().parse().unwrap(), "{}", i.interface);
        }
    }

    // Every class/net entry whose device is PCI-backed (directly or a
    // virtio device on PCI) is reported.
    let bus_pci = fs::canonicalize(sys.join("bus/pci")).ok();
    let mut expected = Vec::new();
    for entry in fs::read_dir(sys.join("class/net")).unwrap() {
        let entry = entry.unwrap();
        let name = entry.file_name().into_string().unwrap();
        let Ok(device) = fs::canonicalize(entry.path().join("device")) else {
            continue;
        };
        let on_pci = |d: &Path| fs::canonicalize(d.join("subsystem")).ok() == bus_pci;
        let backed = on_pci(&device)
            || device.parent().is_some_and(|p| {
                fs::canonicalize(device.join("subsystem")).ok()
                    == fs::canonicalize(sys.join("bus/virtio")).ok()
                    && on_pci(p)
            });
        if backed {
            expected.push(name);
        }
    }
    expected.sort();
    let reported: Vec<_> = scan
        .hardware
        .interfaces
        .iter()
        .map(|i| i.interface.clone())
        .collect();
    assert_eq!(reported, expected);

    // Every PCI device is listed.
    let mut slots: Vec<_> = fs::read_dir(sys.join("bus/pci/devices"))
        .map(|d| {
            d.map(|e| e.unwrap().file_name().into_string().unwrap())
                .collect()
        })
        .unwrap_or_default();
    slots.sort();
    let listed: Vec<_> = scan
        .hardware
        .pci_devices
        .iter()
        .map(|d| d.slot.clone())
        .collect();
    assert_eq!(listed, slots);

    // On this project's machines eth0 is a virtio NIC on PCI.
    let eth0_link = fs::read_link(sys.join("class/net/eth0"))
        .map(|l| l.to_string_lossy().into_owned())
        .unwrap_or_default();
    if eth0_link.contains("/virtio") && eth0_link.contains("pci") {
        let eth0 = scan
            .hardware
            .interfaces
            .iter()
            .find(|i| i.interface == "eth0")
            .expect("eth0 (virtio on PCI) is reported");
        assert!(
            eth0_link.contains(&format!("/{}/virtio", eth0.pci.slot)),
            "{eth0_link} vs {}",
            eth0.pci.slot
        );
        assert_eq!(eth0.pci.driver.as_deref(), Some("virtio-pci"));
    }
}
