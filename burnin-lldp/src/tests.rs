use std::time::{Duration, Instant};

use burnin_core::LldpIdSubtype;
use proptest::prelude::*;

use super::*;

const CHASSIS: [u8; 6] = [0x44, 0x38, 0x39, 0xff, 0x00, 0x07];

fn leaf07(port: &str, ttl: u16) -> Vec<u8> {
    Builder::new(4, &CHASSIS, 5, port.as_bytes(), ttl)
        .system_name("leaf-07")
        .port_description("B3-12")
        .mgmt_ipv4([10, 0, 0, 7])
        .port_vlan(100)
        .build()
}

fn ethernet(lldpdu: &[u8]) -> Vec<u8> {
    let mut f = NEAREST_BRIDGE.to_vec();
    f.extend_from_slice(&CHASSIS);
    f.extend_from_slice(&ETHERTYPE.to_be_bytes());
    f.extend_from_slice(lldpdu);
    f
}

#[test]
fn the_spec_example() {
    let heard = parse(&leaf07("swp7", 120)).unwrap();
    assert_eq!(heard.ttl_secs, 120);
    let json = serde_json::to_string(&heard.neighbor).unwrap();
    assert_eq!(
        json,
        r#"{"chassisId":"44:38:39:ff:00:07","chassisIdSubtype":"mac","systemName":"leaf-07","portId":"swp7","portIdSubtype":"ifName","portDescription":"B3-12","mgmtAddress":"10.0.0.7","vlan":100,"ageSecs":0}"#
    );
    assert_eq!(parse_frame(&ethernet(&leaf07("swp7", 120))).unwrap(), heard);
    // An 802.1Q tag before the ethertype; padding after End.
    let mut tagged = NEAREST_BRIDGE.to_vec();
    tagged.extend_from_slice(&CHASSIS);
    tagged.extend_from_slice(&[0x81, 0x00, 0x00, 0x64, 0x88, 0xcc]);
    tagged.extend_from_slice(&leaf07("swp7", 120));
    tagged.extend_from_slice(&[0; 20]);
    assert_eq!(parse_frame(&tagged).unwrap(), heard);
    assert_eq!(
        parse_frame(&ethernet(&[])[..13]),
        Err(FrameError::NotLldp { ethertype: 0 })
    );
}

#[test]
fn subtypes_and_values_are_shown_by_their_802_1ab_names() {
    let cases: [(u8, &[u8], LldpIdSubtype, &str); 7] = [
        (
            1,
            b"chassis-1",
            LldpIdSubtype::ChassisComponent,
            "chassis-1",
        ),
        (2, b"uplink", LldpIdSubtype::IfAlias, "uplink"),
        (3, b"slot 3", LldpIdSubtype::PortComponent, "slot 3"),
        (
            4,
            &[0xAA, 0xBB, 0xCC, 0, 1, 2],
            LldpIdSubtype::Mac,
            "aa:bb:cc:00:01:02",
        ),
        (
            5,
            &[1, 10, 0, 0, 7],
            LldpIdSubtype::NetworkAddress,
            "10.0.0.7",
        ),
        (6, b"eth0", LldpIdSubtype::IfName, "eth0"),
        (7, &[0, 1, 0xff], LldpIdSubtype::Local, "00:01:ff"),
    ];
    for (n, value, subtype, shown) in cases {
        let h = parse(&Builder::new(n, value, 6, b"circuit-9", 30).build()).unwrap();
        assert_eq!(
            (
                &h.neighbor.chassis_id_subtype,
                h.neighbor.chassis_id.as_str()
            ),
            (&subtype, shown)
        );
        assert_eq!(h.neighbor.port_id_subtype, LldpIdSubtype::AgentCircuitId);
    }
    let v6 = parse(
        &Builder::new(
            5,
            &[
                &[2u8][..],
                &[0xfe, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1],
            ]
            .concat(),
            3,
            &CHASSIS,
            30,
        )
        .build(),
    )
    .unwrap();
    assert_eq!(v6.neighbor.chassis_id, "fe80::1");
    assert_eq!(v6.neighbor.port_id, "44:38:39:ff:00:07");
    for reserved in [0u8, 8, 255] {
        assert_eq!(
            parse(&Builder::new(reserved, b"x", 5, b"p", 30).build()),
            Err(FrameError::ReservedSubtype {
                tlv: "Chassis ID",
                subtype: reserved
            })
        );
        assert!(matches!(
            parse(&Builder::new(4, &CHASSIS, reserved, b"p", 30).build()),
            Err(FrameError::ReservedSubtype { tlv: "Port ID", .. })
        ));
    }
}

#[test]
fn malformed_frames_are_refused_with_the_reason() {
    let good = leaf07("swp7", 120);
    // Every prefix that cuts a TLV, or ends before the TTL, is refused;
    // one that ends between TLVs after the TTL is a valid LLDPDU.
    let mut boundaries = vec![0];
    for t in tlvs(&good) {
        boundaries.push(boundaries.last().unwrap() + 2 + t.unwrap().value.len());
    }
    for cut in 0..good.len() {
        let between = boundaries[3..].contains(&cut);
        assert_eq!(
            parse(&good[..cut]).is_ok(),
            between,
            "prefix of {cut} bytes"
        );
    }
    // Without End it is fine (802.1AB-2016).
    let no_end = Builder::new(4, &CHASSIS, 5, b"swp7", 120).build_without_end();
    assert!(parse(&no_end).is_ok());
    // Out of order, duplicated, bad lengths.
    let mut out = Vec::new();
    write_tlv(&mut out, types::PORT_ID, b"\x05swp7");
    assert!(matches!(
        parse(&out),
        Err(FrameError::Mandatory { position: 1, .. })
    ));
    let dup = Builder::new(4, &CHASSIS, 5, b"swp7", 120)
        .tlv(types::TTL, &[0, 9])
        .build();
    assert_eq!(parse(&dup), Err(FrameError::Duplicate { kind: types::TTL }));
    let short_ttl = {
        let mut out = Vec::new();
        write_tlv(&mut out, types::CHASSIS_ID, b"\x07c");
        write_tlv(&mut out, types::PORT_ID, b"\x07p");
        write_tlv(&mut out, types::TTL, &[9]);
        out
    };
    assert!(matches!(
        parse(&short_ttl),
        Err(FrameError::BadLength { kind: 3, .. })
    ));
    let empty_id = Builder::new(4, &[], 5, b"p", 1).build();
    assert!(matches!(
        parse(&empty_id),
        Err(FrameError::BadLength { kind: 1, .. })
    ));
    let end_with_value = Builder::new(4, &CHASSIS, 5, b"p", 1)
        .tlv(types::END, b"x")
        .build();
    assert!(matches!(
        parse(&end_with_value),
        Err(FrameError::BadLength { kind: 0, .. })
    ));
    // A malformed optional TLV is ignored, the frame kept.
    let odd_mgmt = Builder::new(4, &CHASSIS, 5, b"p", 1)
        .tlv(types::MANAGEMENT_ADDRESS, &[40, 1, 2])
        .tlv(types::ORGANIZATIONAL, &[0x00, 0x80, 0xc2, 0x01, 0])
        .build();
    let h = parse(&odd_mgmt).unwrap();
    assert_eq!((h.neighbor.mgmt_address, h.neighbor.vlan), (None, None));
    assert_eq!(
        parse(&Builder::new(4, &CHASSIS, 5, b"p", 1).port_vlan(0).build())
            .unwrap()
            .neighbor
            .vlan,
        None,
        "PVID 0 means none"
    );
}

/// Bad input (issue #24): a system name that lies.
#[test]
fn a_forged_system_name_is_text_and_nothing_more() {
    let forged = "leaf-07\u{1b}[2J\r\nB3 shelf 1<script>alert(1)</script>";
    let mut name = forged.as_bytes().to_vec();
    name.extend_from_slice(&[0xff, 0xfe]);
    let h = parse(
        &Builder::new(7, b"leaf-07\n", 5, b"swp7\x00", 120)
            .tlv(types::SYSTEM_NAME, &name)
            .build(),
    )
    .unwrap();
    let shown = h.neighbor.system_name.unwrap();
    assert_eq!(
        shown,
        "leaf-07\u{fffd}[2J\u{fffd}\u{fffd}B3 shelf 1<script>alert(1)</script>\u{fffd}\u{fffd}"
    );
    assert!(!shown.chars().any(char::is_control));
    // Ids that are not printable are shown as hex, never as text with a
    // line break or NUL in it.
    assert_eq!(h.neighbor.chassis_id, "6c:65:61:66:2d:30:37:0a");
    assert_eq!(h.neighbor.port_id, "73:77:70:37:00");
    // The second System Name TLV does not replace the first.
    let two = Builder::new(4, &CHASSIS, 5, b"p", 1)
        .system_name("a")
        .system_name("b")
        .build();
    assert_eq!(
        parse(&two).unwrap().neighbor.system_name.as_deref(),
        Some("a")
    );
}

/// Bad input (issue #24): an 8 KiB TLV. The 9-bit length cannot say more
/// than 511 bytes, so it arrives as 8 KiB of TLVs (oversized) or as a TLV
/// whose length runs past the data (truncated).
#[test]
fn an_8_kib_tlv_is_dropped_and_counted() {
    let big = vec![b'A'; 8 * 1024];
    let mut b = Builder::new(4, &CHASSIS, 5, b"swp7", 120);
    for chunk in big.chunks(MAX_TLV_VALUE - 4) {
        b = b.tlv(
            types::ORGANIZATIONAL,
            &[&[0x00, 0x12, 0x0f, 0x99][..], chunk].concat(),
        );
    }
    let pdu = b.build();
    assert!(pdu.len() > 8 * 1024);
    assert!(matches!(
        parse(&pdu),
        Err(FrameError::Oversized {
            limit: MAX_LLDPDU,
            ..
        })
    ));
    // The header says 511 bytes; 8 KiB follow, but in a frame cut at 1500.
    let mut claims = leaf07("swp7", 120);
    claims.pop();
    claims.pop();
    claims.extend_from_slice(&[(types::SYSTEM_NAME << 1) | 1, 0xff]);
    claims.extend_from_slice(&[b'x'; 100]);
    assert!(matches!(parse(&claims), Err(FrameError::Truncated { .. })));
    // write_tlv never writes a length it cannot say.
    let mut out = Vec::new();
    write_tlv(&mut out, types::SYSTEM_NAME, &big);
    assert_eq!(out.len(), 2 + MAX_TLV_VALUE);

    let mut t = NeighbourTable::new();
    t.listen("enp4s0");
    let now = Instant::now();
    assert!(t.handle_lldpdu("enp4s0", &pdu, now).is_err());
    assert!(t.handle_lldpdu("enp4s0", &claims, now).is_err());
    assert!(t.handle_frame("enp4s0", &ethernet(&pdu), now).is_err());
    let _ = t.handle_oversized(9000);
    let s = t.stats();
    assert_eq!(
        (s.frames, s.oversized, s.malformed, s.accepted),
        (4, 3, 1, 0)
    );
    assert_eq!(t.neighbours("enp4s0", now), Some(vec![]));
}

/// Bad input (issue #24): 500 neighbours on one port.
#[test]
fn five_hundred_neighbours_on_one_port_keep_a_bounded_table() {
    let mut t = NeighbourTable::new();
    t.listen("enp4s0");
    t.listen("enp5s0");
    let now = Instant::now();
    for i in 0..500u16 {
        let [hi, lo] = i.to_be_bytes();
        let pdu = Builder::new(4, &[2, 0, 0, 0, hi, lo], 5, b"swp7", 120).build();
        let outcome = t.handle_lldpdu("enp4s0", &pdu, now).unwrap();
        let expected = if usize::from(i) < MAX_NEIGHBOURS {
            Outcome::Added
        } else {
            Outcome::OverLimit
        };
        assert_eq!(outcome, expected, "neighbour {i}");
    }
    let kept = t.neighbours("enp4s0", now).unwrap();
    assert_eq!(kept.len(), MAX_NEIGHBOURS);
    assert_eq!(t.stats().over_limit, 500 - MAX_NEIGHBOURS as u64);
    // The other port is not affected, and a known neighbour still refreshes.
    assert_eq!(
        t.handle_lldpdu("enp5s0", &leaf07("swp8", 120), now),
        Ok(Outcome::Added)
    );
    let first = Builder::new(4, &[2, 0, 0, 0, 0, 0], 5, b"swp7", 120).build();
    assert_eq!(
        t.handle_lldpdu("enp4s0", &first, now),
        Ok(Outcome::Refreshed)
    );
    // Once the flood's entries expire, room is made for the switch.
    let later = now + Duration::from_secs(121);
    assert_eq!(
        t.handle_lldpdu("enp4s0", &leaf07("swp7", 120), later),
        Ok(Outcome::Added)
    );
    assert_eq!(t.neighbours("enp4s0", later).unwrap().len(), 1);
}

#[test]
fn latest_frame_per_chassis_and_port_until_its_ttl() {
    let mut t = NeighbourTable::new();
    assert_eq!(
        t.neighbours("enp4s0", Instant::now()),
        None,
        "not listening"
    );
    t.listen("enp4s0");
    t.listen("enp4s0");
    let t0 = Instant::now();
    assert_eq!(t.poll_timeout(), None);
    assert_eq!(
        t.handle_lldpdu("enp4s0", &leaf07("swp7", 4), t0),
        Ok(Outcome::Added)
    );
    assert_eq!(t.poll_timeout(), Some(t0 + Duration::from_secs(4)));
    // The same chassis and port again: replaced, age from the new frame.
    let t1 = t0 + Duration::from_secs(2);
    let newer = Builder::new(4, &CHASSIS, 5, b"swp7", 4)
        .system_name("leaf-07b")
        .build();
    assert_eq!(
        t.handle_lldpdu("enp4s0", &newer, t1),
        Ok(Outcome::Refreshed)
    );
    let n = t.neighbours("enp4s0", t1 + Duration::from_secs(3)).unwrap();
    assert_eq!(n.len(), 1);
    assert_eq!(
        (n[0].system_name.as_deref(), n[0].age_secs),
        (Some("leaf-07b"), 3)
    );
    // A cable swap: another port appears beside the old one until it expires.
    let t2 = t1 + Duration::from_secs(3);
    assert_eq!(
        t.handle_lldpdu("enp4s0", &leaf07("swp9", 4), t2),
        Ok(Outcome::Added)
    );
    let ports: Vec<_> = t
        .neighbours("enp4s0", t2)
        .unwrap()
        .into_iter()
        .map(|n| n.port_id)
        .collect();
    assert_eq!(ports, ["swp7", "swp9"]);
    let t3 = t1 + Duration::from_secs(4);
    let ports: Vec<_> = t
        .neighbours("enp4s0", t3)
        .unwrap()
        .into_iter()
        .map(|n| n.port_id)
        .collect();
    assert_eq!(ports, ["swp9"]);
    t.handle_timeout(t3);
    assert_eq!(t.poll_timeout(), Some(t2 + Duration::from_secs(4)));
    // A shutdown frame removes it at once.
    assert_eq!(
        t.handle_lldpdu("enp4s0", &leaf07("swp9", 0), t3),
        Ok(Outcome::Removed)
    );
    assert_eq!(t.neighbours("enp4s0", t3), Some(vec![]));
    // Frames of an interface not listened on are counted, not kept.
    assert_eq!(
        t.handle_lldpdu("eth9", &leaf07("swp1", 4), t3),
        Ok(Outcome::UnknownInterface)
    );
    assert!(!t.is_listening("eth9"));
    let s = t.stats();
    assert_eq!(
        (s.frames, s.accepted, s.shutdowns, s.unknown_interface),
        (5, 3, 1, 1)
    );
}

fn tlv_strategy() -> impl Strategy<Value = (u8, Vec<u8>)> {
    (
        0u8..128,
        proptest::collection::vec(any::<u8>(), 0..=MAX_TLV_VALUE),
    )
}

proptest! {
    /// TLV round trip: what write_tlv writes, tlvs reads back.
    #[test]
    fn tlv_round_trip(list in proptest::collection::vec(tlv_strategy(), 0..8)) {
        let mut out = Vec::new();
        for (kind, value) in &list {
            write_tlv(&mut out, *kind, value);
        }
        let mut back = Vec::new();
        for t in tlvs(&out) {
            let t = t.unwrap();
            back.push((t.kind, t.value.to_vec()));
        }
        // Reading stops at the first End TLV.
        let end = list.iter().position(|(k, _)| *k == types::END).map_or(list.len(), |i| i + 1);
        prop_assert_eq!(back, list[..end].to_vec());
    }

    /// An LLDPDU built from any ids and names parses back to them.
    #[test]
    fn lldpdu_round_trip(
        mac in any::<[u8; 6]>(),
        port in "[a-zA-Z0-9/ ._-]{1,64}",
        name in proptest::option::of("\\PC{0,60}"),
        ttl in 1u16..,
        vlan in proptest::option::of(1u16..4095),
    ) {
        let mut b = Builder::new(4, &mac, 5, port.as_bytes(), ttl);
        if let Some(n) = &name {
            b = b.system_name(n);
        }
        if let Some(v) = vlan {
            b = b.port_vlan(v);
        }
        let h = parse(&b.build()).unwrap();
        prop_assert_eq!(h.ttl_secs, ttl);
        prop_assert_eq!(h.neighbor.chassis_id, burnin_core::Mac::new(mac).to_string());
        prop_assert_eq!(h.neighbor.port_id, port);
        prop_assert_eq!(h.neighbor.system_name, name);
        prop_assert_eq!(h.neighbor.vlan, vlan);
    }

    /// Any bytes end in a neighbour or an error, never a panic; what is
    /// accepted keeps the promises of the crate docs.
    #[test]
    fn any_bytes_are_a_neighbour_or_an_error(data in proptest::collection::vec(any::<u8>(), 0..2048)) {
        check_any(&data);
    }

    /// The same, starting from a valid LLDPDU with bytes flipped.
    #[test]
    fn damaged_frames_are_a_neighbour_or_an_error(
        flips in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..6),
    ) {
        let mut pdu = leaf07("swp7", 120);
        for (at, b) in flips {
            let i = at.index(pdu.len());
            pdu[i] = b;
        }
        check_any(&pdu);
    }
}

fn check_any(data: &[u8]) {
    let mut t = NeighbourTable::new();
    t.listen("x");
    let now = Instant::now();
    match parse(data) {
        Ok(h) => {
            let n = &h.neighbor;
            for s in [&n.chassis_id, &n.port_id]
                .into_iter()
                .chain(&n.system_name)
                .chain(&n.port_description)
            {
                assert!(!s.chars().any(char::is_control), "{s:?}");
            }
            assert!(!n.chassis_id.is_empty() && !n.port_id.is_empty());
            assert_eq!(n.age_secs, 0);
            assert_ne!(n.vlan, Some(0));
            assert!(data.len() <= MAX_LLDPDU);
            let outcome = t.handle_lldpdu("x", data, now).unwrap();
            let kept = t.neighbours("x", now).unwrap();
            if h.ttl_secs == 0 {
                assert_eq!(outcome, Outcome::Removed);
                assert!(kept.is_empty());
            } else {
                assert_eq!(kept, vec![h.neighbor.clone()]);
            }
        }
        Err(e) => {
            assert!(!e.to_string().is_empty());
            assert_eq!(t.handle_lldpdu("x", data, now), Err(e));
            assert_eq!(t.neighbours("x", now), Some(vec![]));
        }
    }
}
