//! The probe against the kernel's own tools on this machine's real `/sys`:
//! for every PCI network interface, `macaddr`, `permaddr`, `operstate` and
//! carrier equal what `ip -j -d link show` reports, `permaddr` equals
//! `ethtool -P`, and vendor, device, class and driver equal `lspci -n -k`.
//!
//! `scripts/setup` installs iproute2, ethtool and pciutils. Without a PCI
//! network interface (containers, some VMs) the test says so and checks
//! nothing; on CI a missing tool is a failure, not a skip.

// A skipped check prints why.
#![allow(clippy::print_stderr)]

use std::collections::HashMap;
use std::path::Path;
use std::process::Command;

use burnin_sysfs::{PermanentSource, SysfsProbe};
use serde_json::Value;

fn run(cmd: &str, args: &[&str]) -> Result<String, String> {
    let out = Command::new(cmd)
        .args(args)
        .output()
        .map_err(|e| format!("{cmd} cannot be run: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "{cmd} {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Skips (printing why) off CI; fails on CI, where setup installs the tools.
fn skip(reason: &str) {
    assert!(
        std::env::var_os("CI").is_none(),
        "{reason} (scripts/setup installs iproute2, ethtool and pciutils)"
    );
    eprintln!("skipping the oracle test: {reason}");
}

/// `lspci -vmm -n -k -D -s SLOT` as key → value.
fn lspci(slot: &str) -> HashMap<String, String> {
    let text = run("lspci", &["-vmm", "-n", "-k", "-D", "-s", slot]).unwrap();
    text.lines()
        .filter_map(|l| l.split_once(":\t"))
        .map(|(k, v)| (k.to_owned(), v.trim().to_owned()))
        .collect()
}

/// `ethtool -P IF`: the permanent address, `None` when all zero.
fn ethtool_perm(ifname: &str) -> Option<String> {
    let text = run("ethtool", &["-P", ifname]).unwrap();
    let mac = text
        .trim()
        .strip_prefix("Permanent address:")
        .unwrap_or_else(|| panic!("unexpected ethtool -P output {text:?}"))
        .trim()
        .to_lowercase();
    (mac != "00:00:00:00:00:00").then_some(mac)
}

#[test]
fn the_probe_agrees_with_ip_ethtool_and_lspci() {
    if !Path::new("/sys/class/net").is_dir() {
        return skip("no /sys/class/net on this machine");
    }
    for tool in ["ip", "ethtool", "lspci"] {
        if Command::new(tool).arg("-V").output().is_err()
            && Command::new(tool).arg("--version").output().is_err()
        {
            return skip(&format!("{tool} is not installed"));
        }
    }
    let probe = SysfsProbe::new("/sys").with_serial("ORACLE-TEST".parse().unwrap());
    assert_eq!(probe.permanent_source(), PermanentSource::Netlink);
    let scan = probe.scan().expect("the real /sys can be probed");
    for w in &scan.warnings {
        eprintln!("warning: {w}");
    }
    assert!(
        !scan
            .warnings
            .iter()
            .any(|w| w.subject == burnin_sysfs::Subject::PermanentAddresses),
        "the rtnetlink dump works as root: {:?}",
        scan.warnings
    );
    if scan.hardware.interfaces.is_empty() {
        return skip("this machine has no PCI network interface");
    }

    let ip: Vec<Value> =
        serde_json::from_str(&run("ip", &["-j", "-d", "link", "show"]).unwrap()).unwrap();
    let by_name: HashMap<&str, &Value> = ip
        .iter()
        .filter_map(|l| Some((l["ifname"].as_str()?, l)))
        .collect();

    for i in &scan.hardware.interfaces {
        let name = i.interface.as_str();
        let link = by_name
            .get(name)
            .unwrap_or_else(|| panic!("ip does not show {name}"));
        let address = link["address"].as_str().unwrap().to_lowercase();
        let bonded = Path::new("/sys/class/net")
            .join(name)
            .join("bonding_slave")
            .exists();
        if !bonded {
            assert_eq!(i.macaddr.to_string(), address, "{name}: macaddr vs ip");
        }
        // ip omits permaddr when it equals the current address.
        let ip_perm = link["permaddr"].as_str().map(str::to_lowercase);
        let ours = i.permaddr.map(|m| m.to_string());
        match &ip_perm {
            Some(p) => assert_eq!(ours.as_deref(), Some(p.as_str()), "{name}: permaddr vs ip"),
            None => assert!(
                ours.is_none() || ours.as_deref() == Some(address.as_str()),
                "{name}: ip shows no permaddr, the probe {ours:?}"
            ),
        }
        assert_eq!(ours, ethtool_perm(name), "{name}: permaddr vs ethtool -P");

        let link_state = i.link.as_ref().expect("the probe reports link state");
        assert_eq!(
            link_state.operstate.as_deref(),
            link["operstate"].as_str().map(str::to_lowercase).as_deref(),
            "{name}: operstate vs ip"
        );
        let flags: Vec<&str> = link["flags"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(Value::as_str)
            .collect();
        if flags.contains(&"UP") {
            assert_eq!(
                link_state.carrier,
                Some(flags.contains(&"LOWER_UP")),
                "{name}: carrier vs ip's LOWER_UP ({flags:?})"
            );
        }

        let pci = lspci(&i.pci.slot);
        assert_eq!(
            pci.get("Slot").map(String::as_str),
            Some(i.pci.slot.as_str())
        );
        let hex = |s: &str| s.trim_start_matches("0x").to_owned();
        assert_eq!(pci["Vendor"], hex(&i.pci.vendor), "{name}: vendor");
        assert_eq!(pci["Device"], hex(&i.pci.device), "{name}: device");
        let class = hex(&i.pci.class);
        assert_eq!(pci["Class"], class[..4], "{name}: class");
        let prog_if = pci.get("ProgIf").map(String::as_str).unwrap_or("00");
        assert_eq!(prog_if, &class[4..], "{name}: prog-if");
        assert_eq!(
            pci.get("Driver"),
            i.pci.driver.as_ref(),
            "{name}: driver vs lspci -k"
        );
        eprintln!(
            "{name}: {} perm {:?} {:?} at {} ({}) agrees with ip, ethtool and lspci",
            i.macaddr, ours, link_state, i.pci.slot, pci["Driver"]
        );
    }
}
