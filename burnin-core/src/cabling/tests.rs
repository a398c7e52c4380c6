use proptest::prelude::*;

use super::*;
use crate::{DeviceResult, FindingKind, Mac, MesAnswer, Rules, ScanStatus};

const PLAN: &str = "switch,port,location,sn,interface\n\
leaf-07,swp7,B3 shelf 12,SN1,enp4s0\n\
leaf-07,swp8,\"B3 shelf 12, right\",SN2,\n\
44:38:39:ff:00:09,swp1,B4 shelf 1,,\n";

fn plan() -> CablingPlan {
    CablingPlan::parse(PLAN.as_bytes()).unwrap()
}

fn err(text: &str) -> PlanError {
    CablingPlan::parse(text.as_bytes()).unwrap_err()
}

fn at(text: &str) -> (usize, usize, String) {
    let e = err(text);
    (e.line, e.column, e.kind.to_string())
}

/// One neighbour as JSON: `(systemName, portId)`.
fn neighbour(name: Option<&str>, port: &str) -> String {
    let name = name.map_or("null".to_owned(), |n| format!("{n:?}"));
    format!(
        r#"{{"chassisId":"44:38:39:ff:00:09","chassisIdSubtype":"mac","systemName":{name},
            "portId":{port:?},"portIdSubtype":"ifName","ageSecs":3}}"#
    )
}

/// A reply of `sn`: each interface `(name, mac byte, lldp JSON or None)`.
fn reply(sn: &str, interfaces: &[(&str, u8, Option<Vec<String>>)]) -> DeviceReport {
    let ifs: Vec<String> = interfaces
        .iter()
        .map(|(name, mac, lldp)| {
            let lldp = match lldp {
                None => String::new(),
                Some(list) => format!(r#","lldp":[{}]"#, list.join(",")),
            };
            format!(
                r#"{{"interface":{name:?},"macaddr":"02:00:00:00:00:{mac:02x}"{lldp},
                   "pci":{{"slot":"0000:0{mac}:00.0","vendor":"0x8086","device":"0x1533",
                           "class":"0x020000","driver":"igb"}}}}"#
            )
        })
        .collect();
    let body = format!(
        r#"{{"operationId":1,"sn":{sn:?},"hostname":"h","agentVersion":"0.3.0",
            "collectedAt":"2026-12-03T10:00:00Z","interfaces":[{}],"pciDevices":[]}}"#,
        ifs.join(",")
    );
    DeviceReport::from_slice(body.as_bytes()).unwrap()
}

fn words(p: &CablingPlan, r: &DeviceReport, strict: bool) -> Vec<String> {
    p.findings(r, strict)
        .iter()
        .map(ToString::to_string)
        .collect()
}

#[test]
fn a_plan_parses_with_quotes_blanks_bom_and_crlf() {
    let p = plan();
    assert_eq!(p.rows().len(), 3);
    assert_eq!(p.rows()[1].location, "B3 shelf 12, right");
    assert_eq!(p.rows()[1].interface, None);
    assert_eq!(p.rows()[2].sn, None);
    let crlf = "\u{feff}Switch, Port ,location,sn,interface\r\n\r\n  leaf-01 , swp1 ,\"say \"\"hi\"\"\" ,,\r\n";
    let p = CablingPlan::parse(crlf.as_bytes()).unwrap();
    assert_eq!(p.rows()[0].switch, "leaf-01");
    assert_eq!(p.rows()[0].port, "swp1");
    assert_eq!(p.rows()[0].location, "say \"hi\"");
    assert_eq!(p.rows()[0].line, 3);
    // A header alone is an empty plan.
    assert!(
        CablingPlan::parse(b"switch,port,location,sn,interface\n")
            .unwrap()
            .rows()
            .is_empty()
    );
}

#[test]
fn a_bad_plan_is_refused_with_its_line_and_column() {
    let h = "switch,port,location,sn,interface\n";
    assert_eq!(at("").0, 1);
    assert!(at("\n\n").2.contains("empty"));
    assert_eq!(
        at("switch,port,place,sn,interface\n"),
        (
            1,
            13,
            "the header must be switch,port,location,sn,interface; found \"switch,port,place,sn,interface\"".into()
        )
    );
    assert_eq!(at("switch,port,location,sn\n").1, 24);
    assert_eq!(
        at(&format!("{h}leaf-07,swp7,B3\n")),
        (
            2,
            16,
            "3 fields; a row has 5: switch,port,location,sn,interface".into()
        )
    );
    assert_eq!(at(&format!("{h}leaf-07,swp7,B3,,,x\n")).1, 19);
    assert_eq!(
        at(&format!("{h}leaf-07,swp7,\"B3 shelf,SN1,\n")),
        (2, 14, "quoted field not closed on this line".into())
    );
    assert_eq!(at(&format!("{h}leaf-07,swp7,\"B3\"x,,\n")).1, 18);
    assert_eq!(at(&format!("{h}leaf-07,swp7,B3 \"12\",,\n")).1, 17);
    assert_eq!(
        at(&format!("{h}leaf-07,swp7,B3\u{7},,\n")),
        (2, 16, "control character '\\u{7}'".into())
    );
    assert_eq!(
        at(&format!("{h}leaf-07,,B3,,\n")),
        (2, 9, "port is empty".into())
    );
    assert_eq!(at(&format!("{h} ,swp1,B3,,\n")).2, "switch is empty");
    assert_eq!(at(&format!("{h}leaf-07,swp7,,,\n")).1, 14);
    assert_eq!(at(&format!("{h}leaf-07,swp7,B3,bad sn,\n")).1, 17);
    assert!(
        at(&format!("{h}leaf-07,swp7,B3,bad sn,\n"))
            .2
            .starts_with("sn: ")
    );
    assert_eq!(
        at(&format!("{h}leaf-07,swp7,B3,SN1,eth 0\n")),
        (
            2,
            21,
            "interface \"eth 0\" is not an interface name (1 to 15 characters, no spaces or /)"
                .into()
        )
    );
    let long = "x".repeat(MAX_FIELD_BYTES + 1);
    assert_eq!(
        at(&format!("{h}leaf-07,swp7,{long},,\n")).2,
        format!("location is longer than {MAX_FIELD_BYTES} bytes")
    );
    // Not UTF-8: the line and the column of the first bad byte.
    let mut bytes = format!("{h}leaf-07,swp7,B").into_bytes();
    bytes.extend_from_slice(&[0xff, b',', b',', b'\n']);
    let e = CablingPlan::parse(&bytes).unwrap_err();
    assert_eq!((e.line, e.column, e.kind), (2, 15, PlanErrorKind::NotUtf8));
    let big = vec![b'a'; MAX_PLAN_BYTES + 1];
    assert!(matches!(
        CablingPlan::parse(&big).unwrap_err().kind,
        PlanErrorKind::TooLarge(_)
    ));
    // The Display names line and column.
    assert_eq!(
        err(&format!("{h}leaf-07,,B3,,\n")).to_string(),
        "line 2, column 9: port is empty"
    );
}

#[test]
fn a_switch_port_or_a_unit_planned_twice_is_an_error() {
    let h = "switch,port,location,sn,interface\n";
    assert_eq!(
        at(&format!("{h}leaf-07,swp7,B3,,\n\nLEAF-07,swp7,B4,,\n")),
        (4, 1, "LEAF-07 swp7 is already planned on line 2".into())
    );
    assert_eq!(
        at(&format!(
            "{h}leaf-07,swp7,B3,SN1,enp4s0\nleaf-07,swp8,B3,SN1,enp4s0\n"
        )),
        (3, 17, "SN SN1 enp4s0 is already planned on line 2".into())
    );
    assert_eq!(
        at(&format!("{h}leaf-07,swp7,B3,SN1,\nleaf-07,swp8,B3,SN1,\n")).2,
        "SN SN1 is already planned on line 2"
    );
    // One unit on two switch ports by two interfaces is a plan.
    assert!(
        CablingPlan::parse(
            format!("{h}leaf-07,swp7,B3,SN1,enp4s0f0\nleaf-08,swp7,B3,SN1,enp4s0f1\n").as_bytes()
        )
        .is_ok()
    );
}

proptest! {
    #[test]
    fn any_bytes_end_in_a_plan_or_an_error(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let _ = CablingPlan::parse(&bytes);
        let mut with_header = b"switch,port,location,sn,interface\n".to_vec();
        with_header.extend_from_slice(&bytes);
        let _ = CablingPlan::parse(&with_header);
    }

    #[test]
    fn any_csv_like_text_ends_in_a_plan_or_an_error_with_a_position(
        body in "[a-z0-9 ,\"\r\n\t:.-]{0,300}"
    ) {
        let text = format!("switch,port,location,sn,interface\n{body}");
        if let Err(e) = CablingPlan::parse(text.as_bytes()) {
            prop_assert!(e.line >= 2);
            prop_assert!(e.column >= 1);
            let line = text.split('\n').nth(e.line - 1).unwrap_or("");
            prop_assert!(e.column <= line.chars().count() + 1, "{e} on {line:?}");
        }
    }
}

#[test]
fn a_device_is_where_its_neighbours_match_the_plan_else_where_its_serial_is_planned() {
    let p = plan();
    // Matched by system name (case-blind), first interface by name.
    let r = reply(
        "SN9",
        &[
            ("enp5s0", 5, Some(vec![neighbour(Some("leaf-07"), "swp8")])),
            ("enp4s0", 4, Some(vec![neighbour(Some("LEAF-07"), "swp7")])),
        ],
    );
    assert_eq!(
        p.locate(&r),
        Some(Location {
            place: "B3 shelf 12".into(),
            switch: "leaf-07".into(),
            port: "swp7".into(),
            planned: false
        })
    );
    // Without a system name, by chassis id.
    let r = reply("SN9", &[("eth0", 1, Some(vec![neighbour(None, "swp1")]))]);
    assert_eq!(p.locate(&r).unwrap().place, "B4 shelf 1");
    // A system name the plan does not know is never a location; the
    // serial's planned place is.
    let r = reply(
        "SN2",
        &[("eth0", 1, Some(vec![neighbour(Some("B9 forged"), "x")]))],
    );
    assert_eq!(
        p.locate(&r),
        Some(Location {
            place: "B3 shelf 12, right".into(),
            switch: "leaf-07".into(),
            port: "swp8".into(),
            planned: true
        })
    );
    let r = reply(
        "SN9",
        &[("eth0", 1, Some(vec![neighbour(Some("B9 forged"), "x")]))],
    );
    assert_eq!(p.locate(&r), None);
    assert_eq!(p.planned(&"SN1".parse().unwrap()).unwrap().port, "swp7");
    assert_eq!(p.planned(&"SN9".parse().unwrap()), None);
}

#[test]
fn cabling_findings_in_the_one_wording() {
    let p = plan();
    // SN1's enp4s0 on swp9 instead of swp7.
    let r = reply(
        "SN1",
        &[("enp4s0", 4, Some(vec![neighbour(Some("leaf-07"), "swp9")]))],
    );
    assert_eq!(
        words(&p, &r, false),
        ["enp4s0 cabled to leaf-07 swp9, plan says leaf-07 swp7 (B3 shelf 12)"]
    );
    // Heard nobody.
    let r = reply("SN1", &[("enp4s0", 4, Some(vec![]))]);
    assert_eq!(
        words(&p, &r, false),
        ["no LLDP neighbour on enp4s0, plan says leaf-07 swp7"]
    );
    // Cabled right: nothing.
    let r = reply(
        "SN1",
        &[("enp4s0", 4, Some(vec![neighbour(Some("leaf-07"), "swp7")]))],
    );
    assert!(words(&p, &r, true).is_empty());
    // SN2 at SN1's place: both that SN2 is not where planned, and that the
    // place should hold SN1.
    let r = reply(
        "SN2",
        &[("eno1", 1, Some(vec![neighbour(Some("leaf-07"), "swp7")]))],
    );
    assert_eq!(
        words(&p, &r, false),
        [
            "eno1 cabled to leaf-07 swp7, plan says leaf-07 swp8 (B3 shelf 12, right)",
            "B3 shelf 12 should hold SN SN1"
        ]
    );
    // An older agent (no lldp): nothing to say, unless requireCabling.
    let r = reply("SN1", &[("enp4s0", 4, None)]);
    assert!(words(&p, &r, false).is_empty());
    assert_eq!(
        words(&p, &r, true),
        ["enp4s0 did not report LLDP (agent not listening), plan says leaf-07 swp7"]
    );
    // A unit the plan does not name, at an unnamed place: nothing.
    let r = reply("SN9", &[("eth0", 1, Some(vec![neighbour(None, "swp1")]))]);
    assert!(words(&p, &r, true).is_empty());
}

fn mes(bytes: &[u8]) -> MesAnswer {
    MesAnswer::Record(
        bytes
            .iter()
            .map(|b| format!("02:00:00:00:00:{b:02x}").parse::<Mac>().unwrap())
            .collect(),
    )
}

#[test]
fn require_cabling_fails_the_miscabled_interface_and_says_it_once() {
    let p = plan();
    let r = reply(
        "SN1",
        &[
            ("enp4s0", 4, Some(vec![neighbour(Some("leaf-07"), "swp9")])),
            ("enp5s0", 5, Some(vec![])),
        ],
    );
    for require in [false, true] {
        let rules = Rules {
            require_cabling: require,
            ..Rules::default()
        };
        let mut d = DeviceResult::compare_report(&r, &mes(&[4, 5]), rules);
        d.add_cabling(&p, &r, rules);
        assert!(d.location.as_ref().unwrap().planned);
        assert_eq!(d.findings[0].kind, FindingKind::Cabling);
        assert_eq!(d.findings[0].interface.as_deref(), Some("enp4s0"));
        let status: Vec<ScanStatus> = d.macinfo.iter().map(|m| m.scanstatus).collect();
        let details: Vec<&str> = d.findings.iter().map(|f| f.message.as_str()).collect();
        if require {
            assert!(!d.result.passed());
            assert_eq!(status, [ScanStatus::Mismatch, ScanStatus::Match]);
            assert_eq!(
                details,
                [
                    "enp4s0 cabled to leaf-07 swp9, plan says leaf-07 swp7 (B3 shelf 12); requireCabling fails it"
                ]
            );
        } else {
            assert!(d.result.passed());
            assert_eq!(
                details,
                ["enp4s0 cabled to leaf-07 swp9, plan says leaf-07 swp7 (B3 shelf 12)"]
            );
        }
    }
}

/// A reply whose one card (enp4s0 at 0000:04:00.0) trained as given, and a
/// second network card without an interface at 0000:05:00.0 at x1 of x4.
fn pcie_reply(width: u32, speed: &str) -> DeviceReport {
    let body = format!(
        r#"{{"operationId":1,"sn":"SN1","hostname":"h","agentVersion":"0.3.0",
            "collectedAt":"2026-12-03T10:00:00Z",
            "interfaces":[{{"interface":"enp4s0","macaddr":"02:00:00:00:00:04",
              "pci":{{"slot":"0000:04:00.0","vendor":"0x8086","device":"0x1533",
                     "class":"0x020000","driver":"igb",
                     "pcieLink":{{"speed":{speed:?},"width":{width},
                                 "maxSpeed":"16.0 GT/s PCIe","maxWidth":8}}}}}}],
            "pciDevices":[{{"slot":"0000:05:00.0","vendor":"0x8086","device":"0x1533",
                     "class":"0x020000","driver":"igb",
                     "pcieLink":{{"width":1,"maxWidth":4}}}}]}}"#
    );
    DeviceReport::from_slice(body.as_bytes()).unwrap()
}

#[test]
fn a_network_card_below_its_maximum_link_is_a_finding_and_require_pcie_width_fails_it() {
    for require in [false, true] {
        let rules = Rules {
            require_pcie_width: require,
            ..Rules::default()
        };
        let r = pcie_reply(4, "8.0 GT/s PCIe");
        let d = DeviceResult::compare_report(&r, &mes(&[4]), rules);
        let pcie: Vec<&str> = d
            .findings
            .iter()
            .filter(|f| f.kind == FindingKind::PcieLink)
            .map(|f| f.message.as_str())
            .collect();
        let first = "PCIe link of 0000:04:00.0 degraded: x4 of x8, 8.0 GT/s of 16.0 GT/s";
        if require {
            assert_eq!(
                pcie,
                [
                    format!("{first}; requirePcieWidth fails it").as_str(),
                    "PCIe link of 0000:05:00.0 degraded: x1 of x4"
                ]
            );
            assert!(!d.result.passed());
            assert_eq!(d.macinfo[0].scanstatus, ScanStatus::Mismatch);
            // That it is said once, as the finding and not also as "is not
            // in MES", is live's to test (live/tests.rs): cabling does not
            // depend on live.
        } else {
            assert_eq!(
                pcie,
                [first, "PCIe link of 0000:05:00.0 degraded: x1 of x4"]
            );
            assert!(d.result.passed());
        }
    }
    // Slower at full width: a finding, but requirePcieWidth is about width.
    let rules = Rules {
        require_pcie_width: true,
        ..Rules::default()
    };
    let d = DeviceResult::compare_report(&pcie_reply(8, "8.0 GT/s PCIe"), &mes(&[4]), rules);
    assert!(d.result.passed());
    assert_eq!(
        d.findings[0].message,
        "PCIe link of 0000:04:00.0 degraded: x8 of x8, 8.0 GT/s of 16.0 GT/s"
    );
    // At its maximum: nothing.
    let d = DeviceResult::compare_report(&pcie_reply(8, "16.0 GT/s PCIe"), &mes(&[4]), rules);
    let pcie = d
        .findings
        .iter()
        .filter(|f| f.kind == FindingKind::PcieLink);
    assert_eq!(pcie.count(), 1, "{:?}", d.findings);
}

/// A unit with rows for two interfaces: each row judges its own, and a row
/// without interface judges only what no other row of the unit accounts for.
#[test]
fn a_unit_with_two_rows_is_judged_interface_by_interface() {
    let p = CablingPlan::parse(
        b"switch,port,location,sn,interface\n\
          leaf-07,swp7,B3 shelf 12,SN1,enp4s0\n\
          leaf-08,swp7,B3 shelf 12,SN1,\n",
    )
    .unwrap();
    // enp4s0 right, enp5s0 on the wrong switch.
    let r = reply(
        "SN1",
        &[
            ("enp4s0", 4, Some(vec![neighbour(Some("leaf-07"), "swp7")])),
            ("enp5s0", 5, Some(vec![neighbour(Some("leaf-09"), "swp7")])),
        ],
    );
    assert_eq!(
        words(&p, &r, true),
        ["enp5s0 cabled to leaf-09 swp7, plan says leaf-08 swp7 (B3 shelf 12)"]
    );
    // Both right.
    let r = reply(
        "SN1",
        &[
            ("enp4s0", 4, Some(vec![neighbour(Some("leaf-07"), "swp7")])),
            ("enp5s0", 5, Some(vec![neighbour(Some("leaf-08"), "swp7")])),
        ],
    );
    assert!(words(&p, &r, true).is_empty());
}
