use std::time::Duration;

use super::*;
use crate::{DeviceReport, InterfaceReport, Mac, MesAnswer, OperationParams, PciDevice};

fn t(s: u64) -> Timestamp {
    Timestamp::from_unix_seconds(1_800_000_000 + s)
}
fn sn(s: &str) -> SerialNumber {
    s.parse().unwrap()
}
fn mac(n: u8) -> Mac {
    Mac::new([2, 0, 0, 0, 0, n])
}
fn report(op: &OperationId, s: &str, macs: &[u8]) -> Vec<u8> {
    DeviceReport {
        operation_id: Some(op.clone()),
        sn: sn(s),
        hostname: format!("host-{s}"),
        agent_version: "t".into(),
        collected_at: t(0),
        interfaces: macs
            .iter()
            .enumerate()
            .map(|(i, &m)| InterfaceReport {
                lldp: None,
                interface: format!("eth{i}"),
                macaddr: mac(m),
                permaddr: None,
                addr_assign_type: None,
                link: None,
                pci: PciDevice {
                    pcie_link: None,
                    slot: format!("0000:0{i}:00.0"),
                    vendor: "0x8086".into(),
                    device: "0x1533".into(),
                    class: "0x020000".into(),
                    driver: None,
                },
            })
            .collect(),
        pci_devices: vec![],
    }
    .to_json()
}

fn op(expected: &[&str]) -> Operation {
    let mut p = OperationParams::new(OperationId::Number(9));
    p.expected = expected.iter().map(|s| sn(s)).collect();
    p.window = Duration::from_secs(10);
    p.settle = Duration::ZERO;
    Operation::new(p, t(0))
}

fn states(b: &Board, id: &OperationId) -> Vec<(String, DeviceState, bool)> {
    b.operation(id)
        .unwrap()
        .devices
        .iter()
        .map(|d| (d.sn.to_string(), d.state, d.expected))
        .collect()
}

fn accept(b: &mut Board, o: &mut Operation, s: &str, macs: &[u8]) {
    let id = o.id().clone();
    assert!(matches!(
        o.handle_reply(&report(&id, s, macs)),
        crate::ReplyOutcome::Accepted(_)
    ));
    b.reply(o, &sn(s));
}

#[test]
fn devices_go_from_waiting_to_replied_to_passed_or_failed() {
    let mut b = Board::new(100, 1000, 8);
    let mut o = op(&["B", "A", "C"]);
    let id = o.id().clone();
    b.track(&o);
    use DeviceState::*;
    assert_eq!(
        states(&b, &id),
        vec![
            ("B".into(), Waiting, true),
            ("A".into(), Waiting, true),
            ("C".into(), Waiting, true)
        ]
    );
    accept(&mut b, &mut o, "A", &[1]);
    accept(&mut b, &mut o, "X", &[9]);
    assert_eq!(
        states(&b, &id)[1..],
        [
            ("A".into(), Replied, true),
            ("C".into(), Waiting, true),
            ("X".into(), Replied, false)
        ]
    );
    assert_eq!(
        b.operation(&id).unwrap().devices[1].hostname.as_deref(),
        Some("host-A")
    );
    assert_eq!(b.operation(&id).unwrap().replies, 2);

    o.handle_mes_answer(&sn("A"), Ok(MesAnswer::Record(vec![mac(1)])));
    o.handle_mes_answer(&sn("X"), Ok(MesAnswer::Record(vec![mac(8)])));
    o.handle_timeout(t(10));
    b.state(&o);
    assert!(o.poll_results());
    b.results(&o);
    let v = b.operation(&id).unwrap();
    assert_eq!(v.state, OperationState::Reporting);
    let by = |s: &str| v.devices.iter().find(|d| d.sn.as_str() == s).unwrap();
    assert_eq!(by("A").state, Passed);
    assert_eq!(by("A").result, Some("1"));
    assert_eq!(by("B").state, Failed);
    assert_eq!(by("B").details, vec!["no reply before the window closed"]);
    assert_eq!(by("X").state, Failed);
    assert!(!by("X").expected);
    assert_eq!(
        by("X").details,
        vec![
            "eth0 02:00:00:00:00:09 is not in MES",
            "card 02:00:00:00:00:08 recorded in MES is missing"
        ]
    );

    // Events: operation (101), A replied, X replied, operation reporting,
    // then one per device that changed, then the operation again? No: the
    // state did not change at results, so no second operation event.
    let Since::Events(all) = b.since(100, None) else {
        panic!("gap")
    };
    let kinds: Vec<(u64, &str)> = all.iter().map(|e| (e.id, e.change.kind())).collect();
    assert_eq!(
        kinds,
        vec![
            (101, "operation"),
            (102, "device"),
            (103, "device"),
            (104, "operation"),
            (105, "device"),
            (106, "device"),
            (107, "device"),
            (108, "device"),
        ]
    );
    let json = serde_json::to_value(&all[1]).unwrap();
    assert_eq!(json["type"], "device");
    assert_eq!(json["operationId"], 9);
    assert_eq!(json["device"]["state"], "replied");
    assert_eq!(json["device"]["sn"], "A");

    // Deliveries and the end.
    let log = o.poll_payload().unwrap();
    b.delivery(&o, log.kind, Err("log could not be delivered: 503".into()));
    o.handle_delivery(
        log.kind,
        Err(crate::ReportError::Unavailable {
            kind: log.kind,
            message: "503".into(),
        }),
    );
    let Since::Events(after) = b.since(108, Some(&id)) else {
        panic!("gap")
    };
    assert_eq!(after[0].change.kind(), "delivery");
    let json = serde_json::to_value(&after[0]).unwrap();
    assert_eq!(json["delivery"]["kind"], "log");
    assert_eq!(json["delivery"]["ok"], false);
    assert_eq!(json["delivery"]["attempt"], 1);
}

#[test]
fn since_reports_a_gap_past_the_buffer_and_filters_by_operation() {
    let mut b = Board::new(0, 3, 8);
    let mut o = op(&["A", "B", "C"]);
    b.track(&o); // 1
    accept(&mut b, &mut o, "A", &[1]); // 2
    let mut p = OperationParams::new(OperationId::Text("other".into()));
    p.expected = vec![sn("Z")];
    let mut other = Operation::new(p, t(1));
    b.track(&other); // 3
    accept(&mut b, &mut other, "Z", &[1]); // 4
    assert_eq!(b.last_id(), 4);
    // 1 fell out of the buffer (capacity 3): asking after 0 is a gap.
    assert_eq!(b.since(0, None), Since::Gap);
    let Since::Events(e) = b.since(1, None) else {
        panic!()
    };
    assert_eq!(e.iter().map(|e| e.id).collect::<Vec<_>>(), vec![2, 3, 4]);
    let Since::Events(e) = b.since(1, Some(&OperationId::Number(9))) else {
        panic!()
    };
    assert_eq!(e.iter().map(|e| e.id).collect::<Vec<_>>(), vec![2]);
    assert_eq!(b.since(4, None), Since::Events(vec![]));
    // An id this board never issued (from before a restart): a gap.
    assert_eq!(b.since(5, None), Since::Gap);
    // Newest first.
    assert_eq!(
        b.operations()
            .iter()
            .map(|o| o.operation_id.to_string())
            .collect::<Vec<_>>(),
        vec!["other", "9"]
    );
}

#[test]
fn a_duplicate_reply_changes_nothing_and_restored_operations_show_their_replies() {
    let mut b = Board::new(0, 100, 8);
    let mut o = op(&["A", "B"]);
    b.track(&o);
    accept(&mut b, &mut o, "A", &[1]);
    let before = b.last_id();
    b.reply(&o, &sn("A"));
    assert_eq!(b.last_id(), before, "no event for a device already replied");

    let mut fresh = Board::new(0, 100, 8);
    let restored = Operation::restore(crate::StoredOperation {
        params: o.params().clone(),
        started: o.started(),
        deadline: o.deadline(),
        replies: vec![crate::StoredReply {
            body: report(o.id(), "A", &[1]),
            received: o.started(),
        }],
        results: None,
        deliveries: vec![],
    });
    fresh.track(&restored);
    assert_eq!(
        states(&fresh, o.id()),
        vec![
            ("A".into(), DeviceState::Replied, true),
            ("B".into(), DeviceState::Waiting, true)
        ]
    );
}

#[test]
fn finished_operations_beyond_the_bound_leave_the_board() {
    let mut b = Board::new(0, 100, 1);
    for n in 0..3u64 {
        let mut p = OperationParams::new(OperationId::Number(n));
        p.expected = vec![sn("A")];
        let mut o = Operation::new(p, t(n));
        o.handle_abort("broker unreachable");
        b.track(&o);
        b.finished(&crate::edge::OperationReport {
            operation_id: o.id().clone(),
            state: OperationState::Failed,
            devices: vec![],
            error: Some("broker unreachable".into()),
            counters: o.counters(),
            expected: 1,
            started: t(n),
            collected: t(n),
            finished: t(n + 1),
        });
    }
    assert!(b.operation(&OperationId::Number(0)).is_none());
    assert!(b.operation(&OperationId::Number(1)).is_none());
    let last = b.operation(&OperationId::Number(2)).unwrap();
    assert_eq!(last.state, OperationState::Failed);
    assert_eq!(last.error.as_deref(), Some("broker unreachable"));
    assert_eq!(last.finished, Some(t(3)));
}

#[test]
fn once_results_are_fixed_devices_follow_the_log_order() {
    let mut b = Board::new(0, 100, 8);
    let mut o = op(&["E"]);
    b.track(&o);
    accept(&mut b, &mut o, "Z", &[1]);
    accept(&mut b, &mut o, "E", &[2]);
    accept(&mut b, &mut o, "M", &[3]);
    let order = |b: &Board| -> Vec<String> {
        b.operation(&OperationId::Number(9))
            .unwrap()
            .devices
            .iter()
            .map(|d| d.sn.to_string())
            .collect()
    };
    assert_eq!(
        order(&b),
        vec!["E", "Z", "M"],
        "arrival order while collecting"
    );
    for s in ["Z", "E", "M"] {
        o.handle_mes_answer(&sn(s), Ok(MesAnswer::Unknown));
    }
    assert!(o.poll_collection_end());
    assert!(o.poll_results());
    b.results(&o);
    assert_eq!(
        order(&b),
        vec!["E", "M", "Z"],
        "expected first, then sorted"
    );
    // The index follows: a later change finds the right device.
    let d = &b.operation(&OperationId::Number(9)).unwrap().devices[1];
    assert_eq!(d.sn.as_str(), "M");
    assert_eq!(d.state, DeviceState::Failed);
}

/// Results follow MES (SPEC §10.1): a device is passed or failed once its
/// MES answer is in, while the window is still open for the others, and
/// the fixed results only add what needs every device.
#[test]
fn a_verdict_is_shown_once_its_mes_answer_is_in_not_at_the_end_of_the_window() {
    let mut b = Board::new(0, 1000, 8);
    let mut o = op(&["A", "B", "C", "OFF"]);
    let id = o.id().clone();
    b.track(&o);
    accept(&mut b, &mut o, "A", &[1]);
    accept(&mut b, &mut o, "B", &[2]);
    // C and A share a MAC: a cross-device finding, known only at the end.
    accept(&mut b, &mut o, "C", &[1]);
    use DeviceState::*;
    o.handle_mes_answer(&sn("A"), Ok(MesAnswer::Record(vec![mac(1)])));
    b.verdict(&o, &sn("A"));
    o.handle_mes_answer(&sn("B"), Ok(MesAnswer::Record(vec![mac(7)])));
    b.verdict(&o, &sn("B"));
    o.handle_mes_answer(&sn("C"), Ok(MesAnswer::Record(vec![mac(1)])));
    b.verdict(&o, &sn("C"));
    assert_eq!(o.state(), OperationState::Collecting, "the window is open");
    let by = |b: &Board, s: &str| {
        b.operation(&id)
            .unwrap()
            .devices
            .iter()
            .find(|d| d.sn.as_str() == s)
            .unwrap()
            .clone()
    };
    assert_eq!(by(&b, "A").state, Passed);
    assert_eq!(by(&b, "A").result, Some("1"));
    assert_eq!(by(&b, "A").hostname.as_deref(), Some("host-A"));
    assert_eq!(by(&b, "B").state, Failed);
    assert_eq!(
        by(&b, "B").details,
        vec![
            "eth0 02:00:00:00:00:02 is not in MES",
            "card 02:00:00:00:00:07 recorded in MES is missing"
        ]
    );
    assert_eq!(by(&b, "C").state, Passed);
    assert_eq!(by(&b, "OFF").state, Waiting);
    let last = b.last_id();
    // Asked again with nothing new: no event.
    b.verdict(&o, &sn("A"));
    assert_eq!(b.last_id(), last);

    // The window closes: the silent device fails; the shared MAC is added
    // to A and C, whose verdicts stay.
    o.handle_timeout(t(10));
    b.state(&o);
    assert!(o.poll_results());
    b.results(&o);
    assert_eq!(by(&b, "OFF").state, Failed);
    for s in ["A", "C"] {
        let d = by(&b, s);
        assert_eq!(
            d.state, Passed,
            "{s}: a cross-device finding never changes a verdict"
        );
        assert!(
            d.findings.iter().any(|f| f.kind == FindingKind::SharedMac),
            "{s}: the later finding is added: {:?}",
            d.findings
        );
    }
    assert_eq!(by(&b, "B").state, Failed);
}

/// A second board answering as a serial already passed fails it at once.
#[test]
fn a_conflicting_reply_after_the_verdict_fails_the_device_at_once() {
    let mut b = Board::new(0, 1000, 8);
    let mut o = op(&["A", "OFF"]);
    let id = o.id().clone();
    b.track(&o);
    accept(&mut b, &mut o, "A", &[1]);
    o.handle_mes_answer(&sn("A"), Ok(MesAnswer::Record(vec![mac(1)])));
    b.verdict(&o, &sn("A"));
    assert_eq!(
        b.operation(&id).unwrap().devices[0].state,
        DeviceState::Passed
    );
    assert!(matches!(
        o.handle_reply(&report(&id, "A", &[5])),
        crate::ReplyOutcome::Conflict(_)
    ));
    b.verdict(&o, &sn("A"));
    let a = &b.operation(&id).unwrap().devices[0];
    assert_eq!(a.state, DeviceState::Failed, "{:?}", a.details);
}

/// SPEC §11.1: with the edge's cabling plan, a waiting device shows where
/// it should be (planned), a replied one where its LLDP neighbours say it
/// is, and the events carry it as `"location"`.
#[test]
fn devices_carry_their_location_from_the_plan_in_snapshots_and_events() {
    let plan = crate::cabling::CablingPlan::parse(
        b"switch,port,location,sn,interface\nleaf-07,swp7,B3 shelf 12,A,\nleaf-07,swp8,B3 shelf 13,B,\n",
    )
    .unwrap();
    let mut p = OperationParams::new(OperationId::Number(9));
    p.expected = vec![sn("A"), sn("B")];
    p.window = Duration::from_secs(10);
    p.cabling = Some(std::sync::Arc::new(plan));
    let mut o = Operation::new(p, t(0));
    let id = o.id().clone();
    let mut b = Board::new(100, 1000, 8);
    b.track(&o);
    let place = |b: &Board, n: usize| {
        b.operation(&id).unwrap().devices[n]
            .location
            .as_ref()
            .map(|l| (l.place.clone(), l.port.clone(), l.planned))
    };
    assert_eq!(
        place(&b, 0),
        Some(("B3 shelf 12".into(), "swp7".into(), true))
    );
    // A replies from B's place (its neighbour is leaf-07 swp8).
    let mut r = DeviceReport::from_slice(&report(&id, "A", &[1])).unwrap();
    r.interfaces[0].lldp = Some(vec![crate::LldpNeighbor {
        chassis_id: "44:38:39:ff:00:07".into(),
        chassis_id_subtype: crate::LldpIdSubtype::Mac,
        system_name: Some("leaf-07".into()),
        port_id: "swp8".into(),
        port_id_subtype: crate::LldpIdSubtype::IfName,
        port_description: None,
        mgmt_address: None,
        vlan: None,
        age_secs: 1,
    }]);
    let last = b.last_id();
    o.handle_reply(&r.to_json());
    b.reply(&o, &sn("A"));
    assert_eq!(
        place(&b, 0),
        Some(("B3 shelf 13".into(), "swp8".into(), false))
    );
    let Since::Events(events) = b.since(last, Some(&id)) else {
        panic!("gap");
    };
    let json = serde_json::to_value(&events[0]).unwrap();
    assert_eq!(
        json["device"]["location"],
        serde_json::json!({"place": "B3 shelf 13", "switch": "leaf-07", "port": "swp8", "planned": false})
    );
    o.handle_mes_answer(&sn("A"), Ok(MesAnswer::Record(vec![mac(1)])));
    o.handle_timeout(t(10));
    assert!(o.poll_results());
    b.results(&o);
    let v = b.operation(&id).unwrap();
    assert_eq!(
        v.devices[0].details,
        [
            "eth0 cabled to leaf-07 swp8, plan says leaf-07 swp7 (B3 shelf 12)",
            "B3 shelf 13 should hold SN B"
        ]
    );
    assert_eq!(v.devices[0].location.as_ref().unwrap().place, "B3 shelf 13");
    // B never replied: still where it should be.
    assert_eq!(
        place(&b, 1),
        Some(("B3 shelf 13".into(), "swp8".into(), true))
    );
}

/// A rule failure is said once (issue #24): a card failed by
/// requirePcieWidth or requireCabling shows the finding ending "…
/// requirePcieWidth fails it", not also "is not in MES" for its MAC.
#[test]
fn a_rule_failure_is_said_once_as_its_finding() {
    let body = r#"{"operationId":1,"sn":"SN1","hostname":"h","agentVersion":"0.3.0",
        "collectedAt":"2026-12-03T10:00:00Z",
        "interfaces":[{"interface":"enp4s0","macaddr":"02:00:00:00:00:04",
          "pci":{"slot":"0000:04:00.0","vendor":"0x8086","device":"0x1533",
                 "class":"0x020000","driver":"igb",
                 "pcieLink":{"speed":"8.0 GT/s PCIe","width":4,
                             "maxSpeed":"16.0 GT/s PCIe","maxWidth":8}}}],
        "pciDevices":[]}"#;
    let r = DeviceReport::from_slice(body.as_bytes()).unwrap();
    let rules = crate::Rules {
        require_pcie_width: true,
        ..crate::Rules::default()
    };
    let d = crate::DeviceResult::compare_report(&r, &MesAnswer::Record(vec![mac(4)]), rules);
    assert!(!d.result.passed());
    assert_eq!(
        details(&d),
        [
            "PCIe link of 0000:04:00.0 degraded: x4 of x8, 8.0 GT/s of 16.0 GT/s; requirePcieWidth fails it"
        ]
    );
}
