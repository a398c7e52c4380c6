//! `burnin-agent probe` run as a real process on fixture trees.

use std::path::Path;
use std::process::{Command, Output};

use burnin_core::Timestamp;
use burnin_testkit::fixture::{Fixture, PciIds};
use serde_json::{Value, json};

fn agent(args: &[&str], envs: &[(&str, &Path)]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_burnin-agent"));
    cmd.args(args);
    for var in ["BURNIN_SYSFS_ROOT", "BURNIN_SERIAL", "BURNIN_PRETTY"] {
        cmd.env_remove(var);
    }
    for (k, v) in envs {
        cmd.env(k, v);
    }
    cmd.output().expect("burnin-agent runs")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// A device with every kind of interface the probe must tell apart.
fn device(root: &Path) -> Fixture {
    Fixture::new(root)
        .serial("To Be Filled By O.E.M.")
        .dmi("board_serial", "Q186I15901")
        .pci_device("0000:00:00.0", PciIds::HOST_BRIDGE, None)
        .pci_nic("enp4s0", "0000:04:00.0", "E0:18:7D:2E:CA:68", "igb")
        .pci_device("0000:06:00.0", PciIds::X710, Some("i40e"))
        .pci_device("0000:06:00.1", PciIds::X710, Some("i40e"))
        .net_on_pci("enp6s0f0", "0000:06:00.0", "3c:fd:fe:00:00:10")
        .net_on_pci("enp6s0f1", "0000:06:00.1", "3c:fd:fe:00:00:11")
        .bond("bond0", "3c:fd:fe:00:00:10", &["enp6s0f0", "enp6s0f1"])
        .virtio_nic("eth0", "0000:00:03.0", "52:54:00:12:34:56")
        .usb_nic("enx00e04c680001", "00:e0:4c:68:00:01")
        .pci_nic("enp7s0", "0000:07:00.0", "00:00:00:00:00:00", "igb")
        .pci_nic("enp8s0", "0000:08:00.0", "not-a-mac", "igb")
        .pci_device("0000:09:00.0", PciIds::I210, None)
        .loopback()
        .bridge("docker0", "02:42:ac:11:00:01")
        .veth("veth0", "6a:00:00:00:00:01")
        .tun("tun0")
        .vlan("enp4s0.100", "enp4s0", "e0:18:7d:2e:ca:68")
}

fn pci(slot: &str, ids: PciIds<'_>, driver: Option<&str>) -> Value {
    json!({"slot": slot, "vendor": ids.vendor, "device": ids.device, "class": ids.class, "driver": driver})
}

fn expected(hostname: &str, sn: &str) -> Value {
    let i210 = |slot: &str| pci(slot, PciIds::I210, Some("igb"));
    let x710 = |slot: &str| pci(slot, PciIds::X710, Some("i40e"));
    let virtio = pci("0000:00:03.0", PciIds::VIRTIO_NET, Some("virtio-pci"));
    let up = json!({"carrier": true, "operstate": "up", "speedMbps": 1000});
    json!({
        "operationId": null,
        "sn": sn,
        "hostname": hostname,
        "agentVersion": env!("CARGO_PKG_VERSION"),
        "collectedAt": "checked separately",
        "interfaces": [
            {"interface": "enp4s0", "macaddr": "e0:18:7d:2e:ca:68",
             "addrAssignType": "permanent", "link": up, "pci": i210("0000:04:00.0")},
            // Bond members: macaddr stays the permanent address (SPEC §3),
            // permaddr says so; the bond set the current one.
            {"interface": "enp6s0f0", "macaddr": "3c:fd:fe:00:00:10", "permaddr": "3c:fd:fe:00:00:10",
             "addrAssignType": "set", "link": up, "pci": x710("0000:06:00.0")},
            {"interface": "enp6s0f1", "macaddr": "3c:fd:fe:00:00:11", "permaddr": "3c:fd:fe:00:00:11",
             "addrAssignType": "set", "link": up, "pci": x710("0000:06:00.1")},
            {"interface": "enp7s0", "macaddr": "00:00:00:00:00:00",
             "addrAssignType": "permanent", "link": up, "pci": i210("0000:07:00.0")},
            {"interface": "eth0", "macaddr": "52:54:00:12:34:56",
             "addrAssignType": "permanent", "link": up, "pci": virtio.clone()},
        ],
        "pciDevices": [
            pci("0000:00:00.0", PciIds::HOST_BRIDGE, None),
            virtio,
            pci("0000:00:14.0", PciIds::XHCI, Some("xhci_hcd")),
            i210("0000:04:00.0"),
            x710("0000:06:00.0"),
            x710("0000:06:00.1"),
            i210("0000:07:00.0"),
            i210("0000:08:00.0"),
            pci("0000:09:00.0", PciIds::I210, None),
        ],
    })
}

/// Parses stdout, checks `collectedAt` lies between `before` and now, and
/// replaces it with the placeholder of [`expected`].
fn report(out: &Output, before: Timestamp) -> Value {
    let stdout = text(&out.stdout);
    assert!(stdout.ends_with('\n'), "{stdout:?}");
    let mut v: Value = serde_json::from_str(&stdout).expect("stdout is one JSON document");
    let at: Timestamp = v["collectedAt"]
        .as_str()
        .expect("collectedAt")
        .parse()
        .expect("RFC 3339");
    let after = Timestamp::from_system_time(std::time::SystemTime::now());
    // collectedAt has whole seconds.
    assert!(
        at.unix_seconds() >= before.unix_seconds() && at <= after,
        "{at} not in [{before}, {after}]"
    );
    v["collectedAt"] = json!("checked separately");
    v
}

fn kernel_hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .unwrap()
        .trim()
        .to_owned()
}

#[test]
fn prints_the_expected_document() {
    let dir = tempfile::tempdir().unwrap();
    let fx = device(dir.path());
    let before = Timestamp::from_system_time(std::time::SystemTime::now());
    let root = fx.root().to_str().unwrap();
    let out = agent(&["probe", "--sysfs-root", root], &[]);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert_eq!(
        report(&out, before),
        expected(&kernel_hostname(), "Q186I15901")
    );
    // Compact on the wire: one line.
    assert_eq!(text(&out.stdout).lines().count(), 1);
    // The interface with a bad address is named on stderr, and nothing else is.
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.contains("warning: interface enp8s0 not reported: ")
            && stderr.contains("/class/net/enp8s0/address holds \"not-a-mac\""),
        "{stderr}"
    );
}

#[test]
fn env_variables_and_pretty_output() {
    let dir = tempfile::tempdir().unwrap();
    let fx = device(dir.path());
    let before = Timestamp::from_system_time(std::time::SystemTime::now());
    let out = agent(
        &["probe"],
        &[
            ("BURNIN_SYSFS_ROOT", fx.root()),
            ("BURNIN_SERIAL", Path::new("OVERRIDE-1")),
            ("BURNIN_PRETTY", Path::new("true")),
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).lines().count() > 10,
        "pretty output spans lines"
    );
    assert_eq!(
        report(&out, before),
        expected(&kernel_hostname(), "OVERRIDE-1")
    );

    // The flag wins over the variable.
    let out = agent(
        &["probe", "--serial", "FLAG-2"],
        &[
            ("BURNIN_SYSFS_ROOT", fx.root()),
            ("BURNIN_SERIAL", Path::new("OVERRIDE-1")),
        ],
    );
    assert_eq!(report(&out, before), expected(&kernel_hostname(), "FLAG-2"));
}

#[test]
fn bad_arguments_exit_2() {
    for args in [
        &["probe", "--no-such-flag"][..],
        &["probe", "--serial", "has space"],
        &["probe", "--serial", ""],
        &["no-such-command"],
        &[],
    ] {
        let out = agent(args, &[]);
        assert_eq!(
            out.status.code(),
            Some(2),
            "{args:?}: {}",
            text(&out.stderr)
        );
        assert!(out.stdout.is_empty(), "{args:?}");
        assert!(!text(&out.stderr).is_empty(), "{args:?}");
    }
    let out = agent(&["probe", "--serial", "has space"], &[]);
    assert!(
        text(&out.stderr).contains("\"has space\" contains ' '"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn unreadable_root_or_no_serial_exit_3() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("no-such-sysfs");
    let out = agent(
        &[
            "probe",
            "--sysfs-root",
            missing.to_str().unwrap(),
            "--serial",
            "SN1",
        ],
        &[],
    );
    assert_eq!(out.status.code(), Some(3));
    assert!(out.stdout.is_empty());
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("no-such-sysfs") && stderr.contains("--sysfs-root"),
        "{stderr}"
    );
    assert_eq!(
        stderr.matches("No such file").count(),
        1,
        "cause printed once: {stderr}"
    );

    let fx = Fixture::new(dir.path().join("sys"))
        .serial("Default string")
        .pci_nic("enp4s0", "0000:04:00.0", "e0:18:7d:2e:ca:68", "igb");
    let out = agent(&["probe", "--sysfs-root", fx.root().to_str().unwrap()], &[]);
    assert_eq!(out.status.code(), Some(3));
    assert!(out.stdout.is_empty());
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("product_serial holds the placeholder \"Default string\"")
            && stderr.contains("board_serial does not exist")
            && stderr.contains("--serial"),
        "{stderr}"
    );
}

#[test]
fn help_shows_each_flag_with_its_env_variable_and_default() {
    let out = agent(&["probe", "--help"], &[]);
    assert_eq!(out.status.code(), Some(0));
    let help = text(&out.stdout);
    for needle in [
        "--sysfs-root <DIR>",
        "BURNIN_SYSFS_ROOT",
        "[default: /sys]",
        "--serial <SN>",
        "BURNIN_SERIAL",
        "product_serial",
        "--pretty",
        "BURNIN_PRETTY",
    ] {
        assert!(help.contains(needle), "{needle:?} missing from:\n{help}");
    }
}

#[test]
fn probes_this_machine() {
    // The DMI serial may be missing here (VMs): pass one.
    let out = agent(&["probe", "--serial", "THIS-MACHINE"], &[]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    let report = burnin_core::DeviceReport::from_slice(&out.stdout).expect("a valid report");
    assert_eq!(report.sn.as_str(), "THIS-MACHINE");
    assert_eq!(v["operationId"], Value::Null);
    for i in &report.interfaces {
        assert!(
            Path::new("/sys/bus/pci/devices").join(&i.pci.slot).exists(),
            "{i:?}"
        );
        // SPEC §10.1: link state always; operstate is readable on any
        // interface (carrier and speed may be null).
        let link = i.link.as_ref().expect("link state is reported");
        assert!(link.operstate.is_some(), "{i:?}");
        assert!(i.addr_assign_type.is_some(), "{i:?}");
    }
}
