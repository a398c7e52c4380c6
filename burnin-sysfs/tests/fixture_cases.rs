//! The probe on fixture trees laid out the way the kernel does.

use std::path::Path;

use burnin_core::{
    AddrAssignType, DeviceReport, DeviceResult, FindingKind, HardwareProbe, InterfaceReport,
    LinkState, MesAnswer, OperationId, PciDevice, ProbeError, Rules, Timestamp,
};
use burnin_sysfs::{
    FIXTURE_PERMADDR_FILE, Hostname, MAX_FILE_BYTES, PLACEHOLDER_SERIALS, PermanentSource, Problem,
    Rejected, Scan, Subject, SysfsError, SysfsProbe,
};
use burnin_testkit::fixture::{Fixture, PciIds, USB_CONTROLLER_SLOT};

fn probe(fx: &Fixture) -> SysfsProbe {
    SysfsProbe::new(fx.root()).with_hostname(Hostname::Fixed("dut-1".into()))
}

fn scan(fx: &Fixture) -> Scan {
    probe(fx).scan().expect("scan succeeds")
}

fn names(scan: &Scan) -> Vec<&str> {
    scan.hardware
        .interfaces
        .iter()
        .map(|i| i.interface.as_str())
        .collect()
}

fn pci(slot: &str, ids: PciIds<'_>, driver: Option<&str>) -> PciDevice {
    PciDevice {
        pcie_link: None,
        slot: slot.into(),
        vendor: ids.vendor.into(),
        device: ids.device.into(),
        class: ids.class.into(),
        driver: driver.map(Into::into),
    }
}

fn nic(name: &str, mac: &str, pci: PciDevice) -> InterfaceReport {
    InterfaceReport {
        lldp: None,
        interface: name.into(),
        macaddr: mac.parse().unwrap(),
        permaddr: None,
        // What the fixture writes for every NIC, as a kernel would.
        addr_assign_type: Some(AddrAssignType::Permanent),
        link: Some(LinkState {
            carrier: Some(true),
            operstate: Some("up".into()),
            speed_mbps: Some(1000),
        }),
        pci,
    }
}

#[test]
fn plain_pci_nics() {
    let dir = tempfile::tempdir().unwrap();
    let fx = Fixture::new(dir.path())
        .serial("Q186I15901")
        .pci_device("0000:00:00.0", PciIds::HOST_BRIDGE, None)
        .pci_nic("enp5s0", "0000:05:00.0", "E0:18:7D:2E:CA:69", "e1000e")
        .pci_nic("enp4s0", "0000:04:00.0", "e0:18:7d:2e:ca:68", "igb");
    let s = scan(&fx);
    assert_eq!(s.warnings, vec![]);
    assert_eq!(s.hardware.sn.as_str(), "Q186I15901");
    assert_eq!(s.hardware.hostname, "dut-1");
    let igb = pci("0000:04:00.0", PciIds::I210, Some("igb"));
    let e1000e = pci("0000:05:00.0", PciIds::I210, Some("e1000e"));
    // Sorted by interface name, whatever order the directory lists them in.
    assert_eq!(
        s.hardware.interfaces,
        vec![
            nic("enp4s0", "e0:18:7d:2e:ca:68", igb.clone()),
            nic("enp5s0", "e0:18:7d:2e:ca:69", e1000e.clone()),
        ]
    );
    // Sorted by slot.
    assert_eq!(
        s.hardware.pci_devices,
        vec![pci("0000:00:00.0", PciIds::HOST_BRIDGE, None), igb, e1000e]
    );
}

#[test]
fn multi_port_card_reports_each_function() {
    let dir = tempfile::tempdir().unwrap();
    let fx = Fixture::new(dir.path())
        .serial("SN1")
        .pci_device("0000:06:00.0", PciIds::X710, Some("i40e"))
        .pci_device("0000:06:00.1", PciIds::X710, Some("i40e"))
        .net_on_pci("enp6s0f0", "0000:06:00.0", "3c:fd:fe:00:00:10")
        .net_on_pci("enp6s0f1", "0000:06:00.1", "3c:fd:fe:00:00:11");
    let s = scan(&fx);
    assert_eq!(s.warnings, vec![]);
    assert_eq!(
        s.hardware.interfaces,
        vec![
            nic(
                "enp6s0f0",
                "3c:fd:fe:00:00:10",
                pci("0000:06:00.0", PciIds::X710, Some("i40e"))
            ),
            nic(
                "enp6s0f1",
                "3c:fd:fe:00:00:11",
                pci("0000:06:00.1", PciIds::X710, Some("i40e"))
            ),
        ]
    );
    assert_eq!(s.hardware.pci_devices.len(), 2);
}

#[test]
fn virtio_nic_reports_its_pci_device() {
    let dir = tempfile::tempdir().unwrap();
    let fx = Fixture::new(dir.path()).serial("SN1").virtio_nic(
        "eth0",
        "0000:00:03.0",
        "52:54:00:12:34:56",
    );
    let s = scan(&fx);
    assert_eq!(s.warnings, vec![]);
    assert_eq!(
        s.hardware.interfaces,
        vec![nic(
            "eth0",
            "52:54:00:12:34:56",
            pci("0000:00:03.0", PciIds::VIRTIO_NET, Some("virtio-pci"))
        )]
    );
}

#[test]
fn virtio_device_not_on_pci_is_not_scanned() {
    // A virtio-mmio NIC (no PCI parent) is not a PCI-backed interface.
    let dir = tempfile::tempdir().unwrap();
    let fx = Fixture::new(dir.path())
        .serial("SN1")
        .write(
            "devices/platform/a000000.virtio_mmio/virtio0/net/eth1/address",
            "52:54:00:00:00:01\n",
        )
        .symlink(
            "devices/platform/a000000.virtio_mmio/virtio0/subsystem",
            "../../../bus/virtio",
        )
        .symlink(
            "devices/platform/a000000.virtio_mmio/virtio0/net/eth1/device",
            "../../../virtio0",
        )
        .symlink(
            "class/net/eth1",
            "../../devices/platform/a000000.virtio_mmio/virtio0/net/eth1",
        );
    let s = scan(&fx);
    assert_eq!(names(&s), Vec::<&str>::new());
    assert_eq!(s.warnings, vec![]);
}

#[test]
fn usb_nic_is_excluded() {
    let dir = tempfile::tempdir().unwrap();
    let fx = Fixture::new(dir.path())
        .serial("SN1")
        .pci_nic("enp4s0", "0000:04:00.0", "e0:18:7d:2e:ca:68", "igb")
        .usb_nic("enx00e04c680001", "00:e0:4c:68:00:01");
    assert!(fx.root().join("class/net/enx00e04c680001/device").exists());
    let s = scan(&fx);
    assert_eq!(names(&s), vec!["enp4s0"]);
    assert_eq!(s.warnings, vec![]);
    // The USB controller is a PCI device and is listed as one.
    let slots: Vec<_> = s
        .hardware
        .pci_devices
        .iter()
        .map(|d| d.slot.as_str())
        .collect();
    assert_eq!(slots, vec![USB_CONTROLLER_SLOT, "0000:04:00.0"]);
}

#[test]
fn virtual_interfaces_are_excluded() {
    let dir = tempfile::tempdir().unwrap();
    let fx = Fixture::new(dir.path())
        .serial("SN1")
        .pci_nic("enp4s0", "0000:04:00.0", "e0:18:7d:2e:ca:68", "igb")
        .loopback()
        .bridge("br0", "02:42:ac:11:00:01")
        .bridge("docker0", "02:42:ac:11:00:02")
        .vlan("enp4s0.100", "enp4s0", "e0:18:7d:2e:ca:68")
        .veth("veth1a2b3c", "6a:1b:2c:3d:4e:5f")
        .tun("tun0")
        .pci_nic("enp5s0", "0000:05:00.0", "e0:18:7d:2e:ca:69", "igb")
        .pci_nic("enp6s0", "0000:06:00.0", "e0:18:7d:2e:ca:6a", "igb")
        .bond("bond0", "e0:18:7d:2e:ca:69", &["enp5s0", "enp6s0"]);
    let s = scan(&fx);
    assert_eq!(names(&s), vec!["enp4s0", "enp5s0", "enp6s0"]);
    assert_eq!(s.warnings, vec![]);
}

#[test]
fn bond_members_report_their_permanent_address() {
    let dir = tempfile::tempdir().unwrap();
    let fx = Fixture::new(dir.path())
        .serial("SN1")
        .pci_nic("enp5s0", "0000:05:00.0", "e0:18:7d:2e:ca:69", "igb")
        .pci_nic("enp6s0", "0000:06:00.0", "e0:18:7d:2e:ca:6a", "igb")
        .bond("bond0", "e0:18:7d:2e:ca:69", &["enp5s0", "enp6s0"]);
    // Both members now show the bond's address in `address`.
    let shown = std::fs::read_to_string(fx.root().join("class/net/enp6s0/address")).unwrap();
    assert_eq!(shown.trim(), "e0:18:7d:2e:ca:69");
    let s = scan(&fx);
    let macs: Vec<_> = s
        .hardware
        .interfaces
        .iter()
        .map(|i| i.macaddr.to_string())
        .collect();
    assert_eq!(macs, vec!["e0:18:7d:2e:ca:69", "e0:18:7d:2e:ca:6a"]);
}

#[test]
fn bond_member_without_readable_permanent_address_is_warned_not_guessed() {
    let dir = tempfile::tempdir().unwrap();
    let fx = Fixture::new(dir.path())
        .serial("SN1")
        .pci_nic("enp5s0", "0000:05:00.0", "e0:18:7d:2e:ca:69", "igb")
        .pci_nic("enp6s0", "0000:06:00.0", "e0:18:7d:2e:ca:6a", "igb")
        .bond("bond0", "e0:18:7d:2e:ca:69", &["enp5s0", "enp6s0"])
        .remove("devices/pci0000:00/0000:06:00.0/net/enp6s0/bonding_slave/perm_hwaddr");
    let s = scan(&fx);
    assert_eq!(names(&s), vec!["enp5s0"]);
    assert_eq!(s.warnings.len(), 1);
    assert_eq!(s.warnings[0].subject, Subject::Interface("enp6s0".into()));
    assert_eq!(s.warnings[0].problem, Problem::Missing);
    assert!(
        s.warnings[0]
            .path
            .ends_with("enp6s0/bonding_slave/perm_hwaddr")
    );
}

#[test]
fn unbound_pci_devices_have_no_driver() {
    let dir = tempfile::tempdir().unwrap();
    let fx = Fixture::new(dir.path())
        .serial("SN1")
        .pci_device("0000:07:00.0", PciIds::I210, None)
        // An interface whose PCI device has no driver link.
        .pci_device("0000:08:00.0", PciIds::I210, None)
        .net_on_pci("enp8s0", "0000:08:00.0", "e0:18:7d:2e:ca:70");
    let s = scan(&fx);
    assert_eq!(
        s.hardware.pci_devices,
        vec![
            pci("0000:07:00.0", PciIds::I210, None),
            pci("0000:08:00.0", PciIds::I210, None)
        ]
    );
    assert_eq!(
        s.hardware.interfaces,
        vec![nic(
            "enp8s0",
            "e0:18:7d:2e:ca:70",
            pci("0000:08:00.0", PciIds::I210, None)
        )]
    );
}

#[test]
fn all_zero_and_multicast_addresses_are_still_reported() {
    let dir = tempfile::tempdir().unwrap();
    let fx = Fixture::new(dir.path())
        .serial("SN1")
        .pci_nic("enp4s0", "0000:04:00.0", "00:00:00:00:00:00", "igb")
        .pci_nic("enp5s0", "0000:05:00.0", "ff:ff:ff:ff:ff:ff", "igb")
        .pci_nic("enp6s0", "0000:06:00.0", "01:00:5e:00:00:01", "igb");
    let s = scan(&fx);
    assert_eq!(s.warnings, vec![]);
    let macs: Vec<_> = s.hardware.interfaces.iter().map(|i| i.macaddr).collect();
    assert_eq!(macs.len(), 3);
    assert_eq!(macs[0].to_string(), "00:00:00:00:00:00");
    assert!(macs.iter().all(|m| !m.is_valid_card_address()));
}

#[test]
fn dmi_serial_fallback_order_skips_placeholders() {
    // product_serial wins when usable.
    let dir = tempfile::tempdir().unwrap();
    let fx = Fixture::new(dir.path())
        .dmi("product_serial", "PROD1")
        .dmi("board_serial", "BOARD1")
        .dmi("chassis_serial", "CHASSIS1");
    assert_eq!(scan(&fx).hardware.sn.as_str(), "PROD1");

    // Each placeholder (any case, padded) in product_serial falls back to board.
    for placeholder in PLACEHOLDER_SERIALS {
        for shown in [
            placeholder.to_string(),
            format!("  {}  ", placeholder.to_uppercase()),
        ] {
            let fx = fx.clone().dmi("product_serial", &shown);
            assert_eq!(
                scan(&fx).hardware.sn.as_str(),
                "BOARD1",
                "product_serial {shown:?}"
            );
        }
    }

    // Empty product, placeholder board → chassis.
    let fx = fx
        .dmi("product_serial", "")
        .dmi("board_serial", "Default string");
    assert_eq!(scan(&fx).hardware.sn.as_str(), "CHASSIS1");

    // Missing product, value with a space in board (not a serial) → chassis.
    let fx = fx
        .remove("devices/virtual/dmi/id/product_serial")
        .dmi("board_serial", "AB 12");
    assert_eq!(scan(&fx).hardware.sn.as_str(), "CHASSIS1");
}

#[test]
fn serial_override_wins_over_dmi() {
    let dir = tempfile::tempdir().unwrap();
    let fx = Fixture::new(dir.path()).serial("PROD1");
    let s = probe(&fx)
        .with_serial("OVERRIDE-7".parse().unwrap())
        .scan()
        .unwrap();
    assert_eq!(s.hardware.sn.as_str(), "OVERRIDE-7");
    // And needs no DMI at all.
    let dir = tempfile::tempdir().unwrap();
    let fx = Fixture::new(dir.path());
    let s = probe(&fx)
        .with_serial("OVERRIDE-7".parse().unwrap())
        .scan()
        .unwrap();
    assert_eq!(s.hardware.sn.as_str(), "OVERRIDE-7");
}

#[test]
fn no_serial_says_what_was_read_and_suggests_the_flag() {
    let dir = tempfile::tempdir().unwrap();
    let fx = Fixture::new(dir.path())
        .dmi("product_serial", "To Be Filled By O.E.M.")
        .dmi("board_serial", " ")
        .pci_nic("enp4s0", "0000:04:00.0", "e0:18:7d:2e:ca:68", "igb");
    let err = probe(&fx).scan().unwrap_err();
    let SysfsError::NoSerial { attempts } = &err else {
        panic!("expected NoSerial, got {err:?}");
    };
    let got: Vec<_> = attempts
        .iter()
        .map(|a| {
            (
                a.path.file_name().unwrap().to_str().unwrap(),
                a.rejected.clone(),
            )
        })
        .collect();
    assert_eq!(
        got,
        vec![
            (
                "product_serial",
                Rejected::Placeholder("To Be Filled By O.E.M.".into())
            ),
            ("board_serial", Rejected::Empty),
            ("chassis_serial", Rejected::Missing),
        ]
    );
    let msg = err.to_string();
    for needle in [
        "class/dmi/id/product_serial holds the placeholder \"To Be Filled By O.E.M.\"",
        "class/dmi/id/board_serial is empty",
        "class/dmi/id/chassis_serial does not exist",
        "--serial",
    ] {
        assert!(msg.contains(needle), "{needle:?} not in {msg}");
    }
    // The port's error keeps the kind and the message.
    let port = ProbeError::from(err);
    assert!(
        matches!(&port, ProbeError::NoSerial(m) if m == &msg),
        "{port:?}"
    );
    assert!(!port.is_retryable());
}

#[test]
fn unreadable_dmi_file_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let fx = Fixture::new(dir.path())
        .write("devices/virtual/dmi/id/product_serial", vec![0xff, 0xfe])
        .dmi("board_serial", "0");
    let err = probe(&fx).scan().unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains("product_serial is not UTF-8 text"), "{msg}");
    assert!(
        msg.contains("board_serial holds the placeholder \"0\""),
        "{msg}"
    );
}

#[test]
fn bad_address_files_are_warned_and_skipped() {
    let dir = tempfile::tempdir().unwrap();
    let oversize = "e0:18:7d:2e:ca:6b".repeat(MAX_FILE_BYTES as usize / 10);
    let fx = Fixture::new(dir.path())
        .serial("SN1")
        .pci_nic("enp4s0", "0000:04:00.0", "e0:18:7d:2e:ca:68", "igb")
        .pci_nic("enp5s0", "0000:05:00.0", "", "igb")
        .write(
            "devices/pci0000:00/0000:05:00.0/net/enp5s0/address",
            [0xe0, 0x18, 0xff, 0xfe, b'\n'],
        )
        .pci_nic("enp6s0", "0000:06:00.0", &oversize, "igb")
        .pci_nic("enp7s0", "0000:07:00.0", "e0:18:7d:2e:ca", "igb")
        .pci_nic(
            "ib0",
            "0000:08:00.0",
            "80:00:02:08:fe:80:00:00:00:00:00:00:00:02:c9:03:00:0a:bc:de",
            "mlx4_core",
        )
        .pci_nic("enp9s0", "0000:09:00.0", "e0:18:7d:2e:ca:6d", "igb")
        .remove("devices/pci0000:00/0000:09:00.0/net/enp9s0/address");
    let s = scan(&fx);
    assert_eq!(names(&s), vec!["enp4s0"]);
    let got: Vec<_> = s
        .warnings
        .iter()
        .map(|w| match &w.subject {
            Subject::Interface(n) => (n.as_str(), w.problem.clone()),
            other => panic!("unexpected {other:?}"),
        })
        .collect();
    assert_eq!(
        got,
        vec![
            ("enp5s0", Problem::NotUtf8),
            (
                "enp6s0",
                Problem::TooLarge {
                    limit: MAX_FILE_BYTES
                }
            ),
            (
                "enp7s0",
                Problem::NotAMac {
                    content: "e0:18:7d:2e:ca".into()
                }
            ),
            ("enp9s0", Problem::Missing),
            (
                "ib0",
                Problem::NotAMac {
                    content: "80:00:02:08:fe:80:00:00:00:00:00:00:00:02:c9:03:00:0a:bc:de".into()
                }
            ),
        ]
    );
    let shown = s.warnings[2].to_string();
    assert!(
        shown.starts_with("interface enp7s0 not reported: ")
            && shown.ends_with("/class/net/enp7s0/address holds \"e0:18:7d:2e:ca\", which is not a 6-byte MAC address"),
        "{shown}"
    );
    // The PCI devices themselves are all still listed.
    assert_eq!(s.hardware.pci_devices.len(), 6);
}

#[test]
fn links_leaving_the_root_are_not_followed() {
    let outside = tempfile::tempdir().unwrap();
    // A complete, plausible PCI NIC, but outside the root.
    let elsewhere =
        Fixture::new(outside.path()).pci_nic("enp9s0", "0000:09:00.0", "e0:18:7d:2e:ca:99", "igb");
    let real = std::fs::canonicalize(elsewhere.root().join("class/net/enp9s0")).unwrap();

    let dir = tempfile::tempdir().unwrap();
    let fx = Fixture::new(dir.path())
        .serial("SN1")
        .pci_nic("enp4s0", "0000:04:00.0", "e0:18:7d:2e:ca:68", "igb")
        .symlink("class/net/enp9s0", &real)
        // An interface inside the root whose device link leaves it.
        .pci_nic("enp5s0", "0000:05:00.0", "e0:18:7d:2e:ca:69", "igb")
        .symlink(
            "devices/pci0000:00/0000:05:00.0/net/enp5s0/device",
            elsewhere.root().join("devices/pci0000:00/0000:09:00.0"),
        )
        // A PCI device entry that leaves the root.
        .symlink(
            "bus/pci/devices/0000:09:00.0",
            elsewhere.root().join("devices/pci0000:00/0000:09:00.0"),
        )
        // An address file that is a link leaving the root.
        .pci_nic("enp6s0", "0000:06:00.0", "e0:18:7d:2e:ca:6a", "igb")
        .symlink(
            "devices/pci0000:00/0000:06:00.0/net/enp6s0/address",
            elsewhere.root().join("class/net/enp9s0/address"),
        )
        // A PCI attribute that is a link leaving the root.
        .pci_device("0000:07:00.0", PciIds::I210, None)
        .symlink(
            "devices/pci0000:00/0000:07:00.0/vendor",
            elsewhere.root().join("bus/pci/devices/0000:09:00.0/vendor"),
        )
        // A DMI serial link that leaves the root.
        .symlink(
            "devices/virtual/dmi/id/board_serial",
            outside.path().join("x"),
        );
    let s = scan(&fx);
    assert_eq!(names(&s), vec!["enp4s0"]);
    let subjects: Vec<_> = s.warnings.iter().map(|w| w.subject.clone()).collect();
    assert_eq!(
        subjects,
        vec![
            Subject::Interface("enp5s0".into()),
            Subject::Interface("enp6s0".into()),
            Subject::Interface("enp9s0".into()),
            Subject::PciDevice("0000:07:00.0".into()),
            Subject::PciDevice("0000:09:00.0".into()),
        ]
    );
    for w in &s.warnings {
        assert!(
            matches!(&w.problem, Problem::OutsideRoot { target } if target.starts_with(std::fs::canonicalize(outside.path()).unwrap())),
            "{w}"
        );
    }
    let slots: Vec<_> = s
        .hardware
        .pci_devices
        .iter()
        .map(|d| d.slot.as_str())
        .collect();
    assert_eq!(slots, vec!["0000:04:00.0", "0000:05:00.0", "0000:06:00.0"]);
}

#[test]
fn vanished_entries_are_left_out_silently() {
    let dir = tempfile::tempdir().unwrap();
    let fx = Fixture::new(dir.path())
        .serial("SN1")
        .pci_nic("enp4s0", "0000:04:00.0", "e0:18:7d:2e:ca:68", "igb")
        .pci_nic("enp5s0", "0000:05:00.0", "e0:18:7d:2e:ca:69", "igb")
        // Hot-unplugged: the device directory is gone, links dangle.
        .remove("devices/pci0000:00/0000:05:00.0");
    let s = scan(&fx);
    assert_eq!(names(&s), vec!["enp4s0"]);
    assert_eq!(s.warnings, vec![]);
    assert_eq!(s.hardware.pci_devices.len(), 1);
}

#[test]
fn unreadable_root_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("no-such-sysfs");
    let err = SysfsProbe::new(&missing).scan().unwrap_err();
    assert!(matches!(err, SysfsError::RootUnreadable { .. }), "{err:?}");
    let msg = err.to_string();
    assert!(
        msg.contains("no-such-sysfs") && msg.contains("--sysfs-root"),
        "{msg}"
    );

    // A directory that is not a sysfs tree.
    let err = SysfsProbe::new(dir.path())
        .with_serial("SN1".parse().unwrap())
        .scan()
        .unwrap_err();
    assert!(err.to_string().contains("class/net"), "{err}");
    let port = ProbeError::from(err);
    assert!(matches!(port, ProbeError::Unreadable(_)));
}

#[test]
fn no_pci_bus_means_no_pci_devices() {
    let dir = tempfile::tempdir().unwrap();
    let fx = Fixture::new(dir.path())
        .serial("SN1")
        .loopback()
        .remove("bus/pci");
    let s = scan(&fx);
    assert_eq!(s.hardware.pci_devices, vec![]);
    assert_eq!(s.hardware.interfaces, vec![]);
}

#[test]
fn hostname_sources() {
    let dir = tempfile::tempdir().unwrap();
    let fx = Fixture::new(dir.path()).serial("SN1");
    let file = dir.path().join("hostname");
    std::fs::write(&file, "dut-42\nsecond line\n").unwrap();
    let s = SysfsProbe::new(fx.root())
        .with_hostname(Hostname::File(file))
        .scan()
        .unwrap();
    assert_eq!(s.hardware.hostname, "dut-42");

    let s = SysfsProbe::new(fx.root())
        .with_hostname(Hostname::File(dir.path().join("none")))
        .scan()
        .unwrap();
    assert_eq!(s.hardware.hostname, "");
    assert_eq!(s.warnings.len(), 1);
    assert_eq!(s.warnings[0].subject, Subject::Hostname);

    let kernel = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
    let s = SysfsProbe::new(fx.root()).scan().unwrap();
    assert_eq!(s.hardware.hostname, kernel.trim());
}

#[test]
fn hardware_probe_port_returns_the_scan() {
    let dir = tempfile::tempdir().unwrap();
    let fx = Fixture::new(dir.path())
        .serial("SN1")
        .pci_nic("enp4s0", "0000:04:00.0", "e0:18:7d:2e:ca:68", "igb")
        .pci_nic("enp5s0", "0000:05:00.0", "zz", "igb");
    let p = probe(&fx);
    let port: &dyn HardwareProbe = &p;
    let hw = futures::executor::block_on(port.probe()).unwrap();
    assert_eq!(hw, p.scan().unwrap().hardware);
    assert_eq!(hw.interfaces.len(), 1);

    let bad = SysfsProbe::new(Path::new("/nonexistent/sysfs"));
    let err = futures::executor::block_on(bad.probe()).unwrap_err();
    assert!(matches!(err, ProbeError::Unreadable(_)));
}

/// What the edge makes of a scan (SPEC §10.1), MES recording `mes`.
fn judge(s: &Scan, mes: &[&str], rules: Rules) -> DeviceResult {
    let report = DeviceReport::new(
        Some(OperationId::Number(1)),
        s.hardware.clone(),
        "test",
        Timestamp::from_unix_seconds(1_800_000_000),
    );
    let mes = mes.iter().map(|m| m.parse().unwrap()).collect();
    DeviceResult::compare_report(&report, &MesAnswer::Record(mes), rules)
}

#[test]
fn pci_nic_with_a_changed_current_address_reports_both() {
    let dir = tempfile::tempdir().unwrap();
    let fx = Fixture::new(dir.path())
        .serial("SN1")
        .pci_nic("enp4s0", "0000:04:00.0", "e0:18:7d:2e:ca:68", "igb")
        .pci_nic("enp5s0", "0000:05:00.0", "e0:18:7d:2e:ca:69", "igb")
        .set_address("enp4s0", "02:00:00:00:00:01");
    assert_eq!(
        SysfsProbe::new(fx.root()).permanent_source(),
        PermanentSource::Files,
        "a fixture root never uses this kernel's netlink"
    );
    let s = scan(&fx);
    assert_eq!(s.warnings, vec![]);
    let i = &s.hardware.interfaces[0];
    assert_eq!(i.macaddr.to_string(), "02:00:00:00:00:01");
    assert_eq!(i.permaddr.unwrap().to_string(), "e0:18:7d:2e:ca:68");
    assert_eq!(i.addr_assign_type, Some(AddrAssignType::Set));
    assert_eq!(s.hardware.interfaces[1].permaddr, None);

    // The edge compares the burned-in address and notes the override.
    let r = judge(
        &s,
        &["e0:18:7d:2e:ca:68", "e0:18:7d:2e:ca:69"],
        Rules::default(),
    );
    assert!(r.result.passed());
    assert_eq!(r.macinfo[0].macaddr.to_string(), "e0:18:7d:2e:ca:68");
    assert_eq!(
        r.findings[0].message,
        "enp4s0: MAC overridden by software (current 02:00:00:00:00:01)"
    );

    // Files mode only: the same tree with netlink forced has no such file
    // read (this machine's kernel has no enp4s0).
    let forced = SysfsProbe::new(fx.root())
        .with_serial("SN1".parse().unwrap())
        .with_hostname(Hostname::Fixed("h".into()))
        .with_permanent_source(PermanentSource::Netlink)
        .scan()
        .unwrap();
    assert_eq!(forced.hardware.interfaces[0].permaddr, None);
}

#[test]
fn a_bad_fixture_permanent_address_is_warned_not_guessed() {
    let dir = tempfile::tempdir().unwrap();
    let fx = Fixture::new(dir.path())
        .serial("SN1")
        .pci_nic("enp4s0", "0000:04:00.0", "e0:18:7d:2e:ca:68", "igb")
        .write(
            &format!("class/net/enp4s0/{FIXTURE_PERMADDR_FILE}"),
            "nonsense\n",
        );
    let s = scan(&fx);
    assert!(s.hardware.interfaces.is_empty());
    assert_eq!(s.warnings.len(), 1);
    assert!(
        s.warnings[0]
            .to_string()
            .contains("burnin_permaddr holds \"nonsense\""),
        "{}",
        s.warnings[0]
    );
}

#[test]
fn bond_of_two_pci_nics_reports_each_card_permanent_address() {
    let dir = tempfile::tempdir().unwrap();
    let fx = Fixture::new(dir.path())
        .serial("SN1")
        .pci_nic("enp5s0", "0000:05:00.0", "e0:18:7d:2e:ca:69", "igb")
        .pci_nic("enp6s0", "0000:06:00.0", "e0:18:7d:2e:ca:6a", "igb")
        .bond("bond0", "e0:18:7d:2e:ca:69", &["enp5s0", "enp6s0"]);
    let s = scan(&fx);
    let got: Vec<_> = s
        .hardware
        .interfaces
        .iter()
        .map(|i| {
            (
                i.interface.as_str(),
                i.macaddr.to_string(),
                i.permaddr.map(|m| m.to_string()),
                i.addr_assign_type.clone(),
            )
        })
        .collect();
    // macaddr stays the permanent one (SPEC §3, for older edges); permaddr
    // says so explicitly; the kernel marks the bond's address as set.
    assert_eq!(
        got,
        vec![
            (
                "enp5s0",
                "e0:18:7d:2e:ca:69".to_owned(),
                Some("e0:18:7d:2e:ca:69".to_owned()),
                Some(AddrAssignType::Set)
            ),
            (
                "enp6s0",
                "e0:18:7d:2e:ca:6a".to_owned(),
                Some("e0:18:7d:2e:ca:6a".to_owned()),
                Some(AddrAssignType::Set)
            ),
        ]
    );
    let r = judge(
        &s,
        &["e0:18:7d:2e:ca:69", "e0:18:7d:2e:ca:6a"],
        Rules::default(),
    );
    assert!(r.result.passed());
    assert_eq!(r.findings, vec![], "nothing to say about a healthy bond");
}

#[test]
fn pci_nic_with_no_driver_is_named_as_the_likely_missing_card() {
    let dir = tempfile::tempdir().unwrap();
    let fx = Fixture::new(dir.path())
        .serial("SN1")
        .pci_nic("enp4s0", "0000:04:00.0", "e0:18:7d:2e:ca:68", "igb")
        // The second card: on the bus, no driver bound, so no interface.
        .pci_device("0000:03:00.0", PciIds::I210, None)
        .pci_device("0000:00:00.0", PciIds::HOST_BRIDGE, None);
    let s = scan(&fx);
    assert_eq!(names(&s), vec!["enp4s0"]);
    let r = judge(
        &s,
        &["e0:18:7d:2e:ca:68", "e0:18:7d:2e:ca:69"],
        Rules::default(),
    );
    assert!(!r.result.passed());
    assert_eq!(r.findings.len(), 1, "{:?}", r.findings);
    assert_eq!(r.findings[0].kind, FindingKind::NoDriver);
    assert_eq!(
        r.findings[0].message,
        "network card at 0000:03:00.0 (8086:1533) has no driver; likely the missing card e0:18:7d:2e:ca:69"
    );
}

#[test]
fn link_state_unreadable_values_are_null_and_require_link_uses_carrier() {
    let dir = tempfile::tempdir().unwrap();
    let fx = Fixture::new(dir.path())
        .serial("SN1")
        .pci_nic("enp4s0", "0000:04:00.0", "e0:18:7d:2e:ca:68", "igb")
        .pci_nic("enp5s0", "0000:05:00.0", "e0:18:7d:2e:ca:69", "igb")
        .pci_nic("enp6s0", "0000:06:00.0", "e0:18:7d:2e:ca:6a", "igb")
        .pci_nic("enp7s0", "0000:07:00.0", "e0:18:7d:2e:ca:6b", "igb")
        // Up, speed unreadable.
        .link_state("enp4s0", Some(true), "up", None)
        // Cable out: no carrier, the kernel's unknown speed.
        .link_state("enp5s0", Some(false), "down", Some(-1))
        // Administratively down: carrier and speed cannot be read.
        .link_state("enp6s0", None, "down", None)
        .write("class/net/enp7s0/speed", "fast\n")
        .remove("class/net/enp7s0/addr_assign_type");
    let s = scan(&fx);
    assert_eq!(s.warnings, vec![], "unreadable link facts are not warnings");
    let links: Vec<_> = s
        .hardware
        .interfaces
        .iter()
        .map(|i| i.link.clone().unwrap())
        .collect();
    let l = |c, o: &str, sp| LinkState {
        carrier: c,
        operstate: Some(o.into()),
        speed_mbps: sp,
    };
    assert_eq!(
        links,
        vec![
            l(Some(true), "up", None),
            l(Some(false), "down", None),
            l(None, "down", None),
            l(Some(true), "up", None),
        ]
    );
    assert_eq!(s.hardware.interfaces[3].addr_assign_type, None);
    let mes = [
        "e0:18:7d:2e:ca:68",
        "e0:18:7d:2e:ca:69",
        "e0:18:7d:2e:ca:6a",
        "e0:18:7d:2e:ca:6b",
    ];
    assert!(judge(&s, &mes, Rules::default()).result.passed());
    let r = judge(&s, &mes, Rules::require_link(true));
    let statuses: Vec<_> = r.macinfo.iter().map(|m| m.scanstatus.as_str()).collect();
    assert_eq!(statuses, ["1", "0", "0", "1"]);
    // The same facts through the per-interface reader.
    let facts = probe(&fx).interface_facts("enp6s0");
    assert_eq!(facts.link, l(None, "down", None));
    assert_eq!(facts.addr_assign_type, Some(AddrAssignType::Permanent));
    assert_eq!(
        probe(&fx).interface_facts("nope"),
        burnin_sysfs::InterfaceFacts::default()
    );
}
