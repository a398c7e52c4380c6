//! Real kernel objects, not fixtures: in a network namespace of the test's
//! own (`unshare --net --mount`, with a sysfs mounted over `/sys` for that
//! namespace only), create every kind of virtual interface this kernel
//! offers, change an address with `ip link set address`, and check that
//!
//! * the probe reports **none** of them as a NIC,
//! * `addr_assign_type`, `carrier` and `operstate` read as the kernel says
//!   (`ip -j -d link show`; `set` after `ip link set address`),
//! * the rtnetlink dump lists exactly the permanent addresses `ip` shows.
//!
//! Kinds: veth, bridge, macvlan, vxlan and tap are expected; dummy, bond,
//! vlan and ipvlan are tried and, where the kernel has no module for them
//! (the project's VMs: no modules, no modprobe), reported as not available.
//!
//! Needs root and `unshare`; otherwise it prints why and checks nothing.
//! The namespaces are anonymous: they end with the child process, taking
//! every interface with them, and the test also deletes what it made and
//! checks that none of its interfaces is visible outside.

// Reports what was created and skipped.
#![allow(clippy::print_stderr, clippy::print_stdout)]

use std::collections::HashMap;
use std::process::Command;

use burnin_core::AddrAssignType;
use burnin_sysfs::{PermanentSource, SysfsProbe};
use serde_json::Value;

const CHILD_ENV: &str = "BURNIN_NETNS_CHILD";
const NAMES: &[&str] = &[
    "bnv0", "bnv1", "bnbr0", "bnmv0", "bnvx0", "bntap0", "bndum0", "bnbond0", "bnvl0", "bnipv0",
];

fn sh(args: &[&str]) -> Result<String, String> {
    let out = Command::new(args[0])
        .args(&args[1..])
        .output()
        .map_err(|e| format!("{}: {e}", args[0]))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(format!(
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

fn must(args: &[&str]) {
    if let Err(e) = sh(args) {
        panic!("{e}");
    }
}

fn is_root() -> bool {
    sh(&["id", "-u"]).is_ok_and(|u| u.trim() == "0")
}

#[test]
fn kernel_objects_in_a_namespace_of_its_own() {
    if !is_root() {
        eprintln!("skipping: network namespaces need root");
        return;
    }
    if sh(&["unshare", "--version"]).is_err() || sh(&["ip", "-V"]).is_err() {
        eprintln!("skipping: unshare (util-linux) or ip (iproute2) is not installed");
        return;
    }
    let exe = std::env::current_exe().unwrap();
    let out = Command::new("unshare")
        .args(["--net", "--mount", "--"])
        .arg(&exe)
        .args(["--exact", "in_the_namespace", "--ignored", "--nocapture"])
        .args(["--test-threads", "1"])
        .env(CHILD_ENV, "1")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    println!("{stdout}");
    eprintln!("{stderr}");
    assert!(out.status.success(), "the in-namespace checks failed");
    assert!(
        stdout.contains("1 passed"),
        "the in-namespace test did not run"
    );
    // Nothing it made is visible here.
    let here = sh(&["ip", "-o", "link", "show"]).unwrap();
    for name in NAMES {
        assert!(
            !here.contains(&format!(" {name}:")) && !here.contains(&format!(" {name}@")),
            "{name} leaked into the test's own namespace"
        );
    }
}

/// Runs inside `unshare --net --mount` (started by the test above).
#[test]
#[ignore = "run by kernel_objects_in_a_namespace_of_its_own inside unshare"]
fn in_the_namespace() {
    assert_eq!(
        std::env::var(CHILD_ENV).as_deref(),
        Ok("1"),
        "only runs inside the namespace the other test makes"
    );
    must(&["mount", "-t", "sysfs", "sysfs", "/sys"]);
    must(&["ip", "link", "set", "lo", "up"]);

    // What this kernel offers for certain, then what it may not.
    must(&[
        "ip", "link", "add", "bnv0", "type", "veth", "peer", "name", "bnv1",
    ]);
    must(&["ip", "link", "add", "bnbr0", "type", "bridge"]);
    must(&[
        "ip", "link", "add", "bnmv0", "link", "bnv0", "type", "macvlan",
    ]);
    must(&[
        "ip", "link", "add", "bnvx0", "type", "vxlan", "id", "42", "dstport", "4789",
    ]);
    must(&["ip", "tuntap", "add", "bntap0", "mode", "tap"]);
    let optional: [(&str, &[&str]); 4] = [
        ("dummy", &["ip", "link", "add", "bndum0", "type", "dummy"]),
        ("bond", &["ip", "link", "add", "bnbond0", "type", "bond"]),
        (
            "vlan",
            &[
                "ip", "link", "add", "link", "bnv0", "name", "bnvl0", "type", "vlan", "id", "7",
            ],
        ),
        (
            "ipvlan",
            &[
                "ip", "link", "add", "bnipv0", "link", "bnv1", "type", "ipvlan",
            ],
        ),
    ];
    for (kind, cmd) in optional {
        match sh(cmd) {
            Ok(_) => println!("created a {kind} interface"),
            Err(e) => println!("{kind}: not available on this kernel ({e})"),
        }
    }
    // Software sets an address; both veth ends up (carrier), the bridge up
    // with no ports (its carrier differs between kernels: checked against
    // ip only), the tap up with no reader (no carrier), the macvlan left
    // down (carrier unreadable).
    must(&["ip", "link", "set", "bnv0", "address", "02:00:00:00:0b:01"]);
    for up in ["bnv0", "bnv1", "bnbr0", "bntap0"] {
        must(&["ip", "link", "set", up, "up"]);
    }

    let probe = SysfsProbe::new("/sys").with_serial("NETNS-TEST".parse().unwrap());
    assert_eq!(probe.permanent_source(), PermanentSource::Netlink);
    let scan = probe.scan().unwrap();
    assert_eq!(
        scan.hardware.interfaces,
        vec![],
        "no virtual interface is a NIC"
    );
    assert!(scan.warnings.is_empty(), "{:?}", scan.warnings);

    // Link state settles asynchronously (the kernel's linkwatch applies
    // operstate changes up to a second later): wait until both veth ends
    // are up and two ip snapshots 100 ms apart agree, then compare.
    let ip_now = || -> Vec<Value> {
        serde_json::from_str(&sh(&["ip", "-j", "-d", "link", "show"]).unwrap()).unwrap()
    };
    let state = |links: &[Value]| -> Vec<(Value, Value)> {
        links
            .iter()
            .map(|l| (l["flags"].clone(), l["operstate"].clone()))
            .collect()
    };
    let started = std::time::Instant::now();
    let ip = loop {
        let before = ip_now();
        let settled = ["bnv0", "bnv1"].iter().all(|n| {
            before
                .iter()
                .any(|l| l["ifname"] == *n && l["operstate"] == "UP")
        });
        std::thread::sleep(std::time::Duration::from_millis(100));
        let after = ip_now();
        if settled && state(&before) == state(&after) {
            break after;
        }
        assert!(
            started.elapsed() < std::time::Duration::from_secs(10),
            "link state did not settle: {after:?}"
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
    };
    let mut seen = Vec::new();
    for link in &ip {
        let name = link["ifname"].as_str().unwrap();
        let facts = probe.interface_facts(name);
        let flags: Vec<&str> = link["flags"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(Value::as_str)
            .collect();
        // carrier can be read only while the interface is up.
        let carrier = flags.contains(&"UP").then(|| flags.contains(&"LOWER_UP"));
        assert_eq!(facts.link.carrier, carrier, "{name} carrier ({flags:?})");
        assert_eq!(
            facts.link.operstate.as_deref(),
            link["operstate"].as_str().map(str::to_lowercase).as_deref(),
            "{name} operstate"
        );
        let raw = std::fs::read_to_string(format!("/sys/class/net/{name}/addr_assign_type"))
            .unwrap()
            .trim()
            .parse::<u32>()
            .unwrap();
        assert_eq!(
            facts.addr_assign_type,
            Some(AddrAssignType::from_kernel(raw)),
            "{name}"
        );
        println!(
            "{name}: kind {:?} carrier {:?} operstate {:?} speed {:?} addr_assign_type {:?}",
            link["linkinfo"]["info_kind"].as_str().unwrap_or("-"),
            facts.link.carrier,
            facts.link.operstate,
            facts.link.speed_mbps,
            facts.addr_assign_type
        );
        seen.push(name.to_owned());
    }
    for name in ["lo", "bnv0", "bnv1", "bnbr0", "bnmv0", "bnvx0", "bntap0"] {
        assert!(seen.iter().any(|s| s == name), "{name} missing from ip");
    }
    let facts = |n: &str| probe.interface_facts(n);
    assert_eq!(facts("bnv0").addr_assign_type, Some(AddrAssignType::Set));
    assert_eq!(facts("bnv1").addr_assign_type, Some(AddrAssignType::Random));
    assert_eq!(
        facts("lo").addr_assign_type,
        Some(AddrAssignType::Permanent)
    );
    assert_eq!(facts("bnv0").link.carrier, Some(true));
    assert_eq!(
        facts("bntap0").link.carrier,
        Some(false),
        "a tap nobody reads"
    );
    assert_eq!(facts("bnmv0").link.carrier, None, "down: unreadable");

    // The netlink dump: exactly the permanent addresses ip shows (none of
    // these virtual interfaces has one).
    let dump = burnin_sysfs::netlink::permanent_addresses().unwrap();
    let want: HashMap<String, String> = ip
        .iter()
        .filter_map(|l| {
            Some((
                l["ifname"].as_str()?.to_owned(),
                l["permaddr"].as_str()?.to_lowercase(),
            ))
        })
        .collect();
    let got: HashMap<String, String> = dump.into_iter().map(|(k, v)| (k, v.to_string())).collect();
    assert_eq!(got, want);

    // Clean up what was made (the namespace would take it anyway).
    for name in NAMES {
        let _ = sh(&["ip", "link", "del", name]);
    }
    let left = sh(&["ip", "-o", "link", "show"]).unwrap();
    assert_eq!(left.lines().count(), 1, "only lo is left: {left}");
    must(&["umount", "/sys"]);
}
