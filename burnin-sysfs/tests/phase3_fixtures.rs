//! SPEC §11.1 in fixture trees: `class/net/<if>/burnin_lldp` (hex LLDPDUs,
//! age 0) and the four PCIe link files.

use burnin_core::{DeviceReport, LldpIdSubtype};
use burnin_lldp::Builder;
use burnin_sysfs::{FIXTURE_LLDP_FILE, Hostname, Problem, Subject, SysfsProbe};
use burnin_testkit::fixture::Fixture;

const LEAF07: [u8; 6] = [0x44, 0x38, 0x39, 0xff, 0x00, 0x07];

fn fixture(dir: &std::path::Path) -> Fixture {
    Fixture::new(dir)
        .serial("SN1")
        .pci_nic("enp4s0", "0000:04:00.0", "e0:18:7d:2e:ca:68", "igb")
        .pci_nic("enp5s0", "0000:05:00.0", "e0:18:7d:2e:ca:69", "igb")
        .pci_nic("enp6s0", "0000:06:00.0", "e0:18:7d:2e:ca:6a", "igb")
}

fn probe(fx: &Fixture) -> SysfsProbe {
    SysfsProbe::new(fx.root()).with_hostname(Hostname::Fixed("dut-1".into()))
}

#[test]
fn lldp_neighbours_from_the_fixture_file() {
    let dir = tempfile::tempdir().unwrap();
    let swp7 = Builder::new(4, &LEAF07, 5, b"swp7", 120)
        .system_name("leaf-07")
        .port_description("B3-12")
        .mgmt_ipv4([10, 0, 0, 7])
        .port_vlan(100)
        .build();
    let older_swp7 = Builder::new(4, &LEAF07, 5, b"swp7", 120)
        .system_name("old")
        .build();
    let fx = fixture(dir.path())
        .lldp("enp4s0", &[&older_swp7, &swp7])
        .lldp("enp5s0", &[]);
    let scan = probe(&fx).scan().unwrap();
    assert!(scan.warnings.is_empty(), "{:?}", scan.warnings);
    let i = &scan.hardware.interfaces;
    let heard = i[0].lldp.as_ref().expect("enp4s0 listened");
    assert_eq!(heard.len(), 1, "the latest frame per chassis and port");
    let n = &heard[0];
    assert_eq!(
        (
            n.chassis_id.as_str(),
            &n.chassis_id_subtype,
            n.port_id.as_str(),
            &n.port_id_subtype
        ),
        (
            "44:38:39:ff:00:07",
            &LldpIdSubtype::Mac,
            "swp7",
            &LldpIdSubtype::IfName
        )
    );
    assert_eq!(n.system_name.as_deref(), Some("leaf-07"));
    assert_eq!((n.vlan, n.age_secs), (Some(100), 0));
    assert_eq!(i[1].lldp, Some(vec![]), "listened, heard nothing");
    assert_eq!(i[2].lldp, None, "no file: not listened on");

    // On the wire, exactly SPEC §11.1's form.
    let report = DeviceReport::new(
        None,
        scan.hardware,
        "0.1.0",
        "2026-12-03T10:00:00Z".parse().unwrap(),
    );
    let json = String::from_utf8(report.to_json()).unwrap();
    assert!(json.contains(r#""lldp":[{"chassisId":"44:38:39:ff:00:07","chassisIdSubtype":"mac","systemName":"leaf-07","portId":"swp7","portIdSubtype":"ifName","portDescription":"B3-12","mgmtAddress":"10.0.0.7","vlan":100,"ageSecs":0}]"#), "{json}");
    assert!(json.contains(r#""lldp":[]"#));
    assert_eq!(json.matches("\"lldp\"").count(), 2);
}

#[test]
fn bad_lldp_lines_are_warnings_and_the_rest_is_kept() {
    let dir = tempfile::tempdir().unwrap();
    let good = Builder::new(4, &LEAF07, 5, b"swp7", 120).build();
    let hex: String = good.iter().map(|b| format!("{b:02x}")).collect();
    let fx = fixture(dir.path())
        .write(
            &format!("class/net/enp4s0/{FIXTURE_LLDP_FILE}"),
            format!("zz\n\n{}\n{hex}\n0203\n", &hex[..hex.len() - 8]),
        )
        .write(
            &format!("class/net/enp5s0/{FIXTURE_LLDP_FILE}"),
            "00".repeat(4000),
        );
    let scan = probe(&fx).scan().unwrap();
    let i = &scan.hardware.interfaces;
    assert_eq!(i.len(), 3, "an LLDP problem never hides a card");
    assert_eq!(i[0].lldp.as_ref().unwrap().len(), 1);
    assert_eq!(i[1].lldp, None);
    let lines: Vec<_> = scan
        .warnings
        .iter()
        .filter_map(|w| match (&w.subject, &w.problem) {
            (Subject::Lldp(name), Problem::BadLldpdu { line, .. }) => Some((name.as_str(), *line)),
            _ => None,
        })
        .collect();
    assert_eq!(lines, [("enp4s0", 1), ("enp4s0", 3), ("enp4s0", 5)]);
    let big = scan
        .warnings
        .iter()
        .find(|w| w.subject == Subject::Lldp("enp5s0".into()))
        .unwrap();
    assert!(matches!(big.problem, Problem::TooLarge { .. }));
    assert!(
        big.to_string().starts_with("LLDP neighbours of enp5s0: "),
        "{big}"
    );
}

#[test]
fn pcie_link_files_as_the_kernel_writes_them() {
    let dir = tempfile::tempdir().unwrap();
    let fx = fixture(dir.path())
        .pcie_link(
            "0000:04:00.0",
            Some(("8.0 GT/s PCIe", 4)),
            Some(("16.0 GT/s PCIe", 8)),
        )
        .pcie_link("0000:05:00.0", None, Some(("Unknown", 8)))
        .write("bus/pci/devices/0000:05:00.0/current_link_width", "x4\n");
    let hw = probe(&fx).scan().unwrap().hardware;
    let link = hw.interfaces[0].pci.pcie_link.clone().unwrap();
    assert_eq!(link.speed.as_deref(), Some("8.0 GT/s PCIe"));
    assert_eq!((link.width, link.max_width), (Some(4), Some(8)));
    assert_eq!(link.max_speed.as_deref(), Some("16.0 GT/s PCIe"));
    assert!(link.is_narrower());
    assert_eq!(hw.pci_devices[0].pcie_link, Some(link));
    let partial = hw.interfaces[1].pci.pcie_link.clone().unwrap();
    assert_eq!(
        (partial.speed, partial.width),
        (None, None),
        "unparsable width is absent"
    );
    assert_eq!(partial.max_speed.as_deref(), Some("Unknown"));
    assert_eq!(hw.interfaces[2].pci.pcie_link, None, "conventional PCI");
    let json = String::from_utf8(
        DeviceReport::new(None, hw, "0.1.0", "2026-12-03T10:00:00Z".parse().unwrap()).to_json(),
    )
    .unwrap();
    assert!(json.contains(r#""driver":"igb","pcieLink":{"speed":"8.0 GT/s PCIe","width":4,"maxSpeed":"16.0 GT/s PCIe","maxWidth":8}}"#), "{json}");
    assert!(
        json.contains(r#""pcieLink":{"maxSpeed":"Unknown","maxWidth":8}"#),
        "{json}"
    );
}
