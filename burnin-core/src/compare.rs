//! The comparison of SPEC §3: what a device reported against what MES recorded.
//!
//! # Order
//! A [`DeviceResult`]'s `macinfo` lists the scanned interfaces in the order
//! the device reported them, then the MES MACs that no interface has, in MES
//! order. The same inputs always give the same bytes.
//!
//! # Duplicates
//! * A MAC that MES lists twice (in any form) counts once.
//! * A MAC reported by two interfaces of one device matches (at most) on the
//!   first of them; the second is `"0"`, because two cards sharing an
//!   address is itself a defect the factory must see. The MES MAC is present
//!   on the device, so it is not also listed as missing.
//! * An interface whose address is all-zero, broadcast or multicast is listed
//!   and is `"0"` even if MES lists that address; MES listing it does not make
//!   it missing either, since the device did report it.

use std::collections::HashSet;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::{InterfaceReport, Mac, SerialNumber};

/// What MES said about a serial number.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MesAnswer {
    /// MES knows the device and recorded these MACs (in MES order).
    Record(Vec<Mac>),
    /// MES does not know the device (HTTP 404).
    Unknown,
}

/// Per-MAC status: `"1"` when the interface's MAC is in the MES record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ScanStatus {
    /// `"1"`: the MAC is recorded in MES for this serial.
    Match,
    /// `"0"`: not recorded, invalid, or a MES MAC no interface has.
    Mismatch,
}

/// A device's verdict: `"1"` (Pass) or `"0"` (Fail).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Verdict {
    /// `"1"`: at least one entry and every entry matched.
    Pass,
    /// `"0"`: anything else.
    Fail,
}

impl Verdict {
    /// `true` for [`Verdict::Pass`].
    pub fn passed(self) -> bool {
        self == Verdict::Pass
    }

    /// The wire form: `"1"` or `"0"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Pass => "1",
            Verdict::Fail => "0",
        }
    }
}

impl ScanStatus {
    /// The wire form: `"1"` or `"0"`.
    pub fn as_str(self) -> &'static str {
        match self {
            ScanStatus::Match => "1",
            ScanStatus::Mismatch => "0",
        }
    }
}

impl Serialize for Verdict {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for Verdict {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        match <std::borrow::Cow<'de, str>>::deserialize(d)?.as_ref() {
            "1" => Ok(Verdict::Pass),
            "0" => Ok(Verdict::Fail),
            other => Err(serde::de::Error::custom(format!(
                "result {other:?} is neither \"1\" nor \"0\""
            ))),
        }
    }
}

impl<'de> Deserialize<'de> for ScanStatus {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        match <std::borrow::Cow<'de, str>>::deserialize(d)?.as_ref() {
            "1" => Ok(ScanStatus::Match),
            "0" => Ok(ScanStatus::Mismatch),
            other => Err(serde::de::Error::custom(format!(
                "scanstatus {other:?} is neither \"1\" nor \"0\""
            ))),
        }
    }
}

impl Serialize for ScanStatus {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

/// One line of a device's `macinfo`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MacInfo {
    /// The interface name; empty for a MES MAC the device does not have.
    pub interface: String,
    /// The address.
    pub macaddr: Mac,
    /// Whether it matched.
    pub scanstatus: ScanStatus,
}

/// Why a device ended with the result it has, beyond its `macinfo`.
///
/// Not part of the wire format: a result read back from a store (see
/// [`crate::store`]) has [`Finding::Compared`].
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Finding {
    /// The device replied and MES answered with a record.
    #[default]
    Compared,
    /// The device replied but MES does not know its serial (404).
    UnknownToMes,
    /// The device was expected but did not reply before the window closed.
    NoReply,
    /// The device replied but its MES lookup failed; the text says why.
    MesFailed(String),
}

/// The outcome for one device, serialized as a `scaninfo` entry of the log:
/// `{"macinfo": [...], "sn": "...", "result": "0"|"1"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceResult {
    /// Per-MAC statuses, in the documented order.
    pub macinfo: Vec<MacInfo>,
    /// The device's serial number.
    pub sn: SerialNumber,
    /// The verdict.
    pub result: Verdict,
    /// Why (not serialized into the factory payloads).
    #[serde(skip, default)]
    pub finding: Finding,
}

impl DeviceResult {
    /// Compares a device's scanned interfaces with MES's answer.
    pub fn compare(sn: SerialNumber, interfaces: &[InterfaceReport], mes: &MesAnswer) -> Self {
        match mes {
            MesAnswer::Record(macs) => Self::with_record(sn, interfaces, macs),
            MesAnswer::Unknown => Self::unmatched(sn, interfaces, Finding::UnknownToMes),
        }
    }

    /// An expected device that never replied: Fail with no `macinfo`.
    pub fn no_reply(sn: SerialNumber) -> Self {
        DeviceResult {
            macinfo: Vec::new(),
            sn,
            result: Verdict::Fail,
            finding: Finding::NoReply,
        }
    }

    /// A device whose MES lookup failed: every interface `"0"`, Fail.
    pub fn mes_failed(sn: SerialNumber, interfaces: &[InterfaceReport], why: String) -> Self {
        Self::unmatched(sn, interfaces, Finding::MesFailed(why))
    }

    /// Interfaces that did not match (name and MAC), in report order.
    pub fn mismatched_interfaces(&self) -> impl Iterator<Item = &MacInfo> {
        self.macinfo
            .iter()
            .filter(|m| !m.interface.is_empty() && m.scanstatus == ScanStatus::Mismatch)
    }

    /// MES MACs that no interface of the device has.
    pub fn missing_cards(&self) -> impl Iterator<Item = Mac> + '_ {
        self.macinfo
            .iter()
            .filter(|m| m.interface.is_empty())
            .map(|m| m.macaddr)
    }

    fn unmatched(sn: SerialNumber, interfaces: &[InterfaceReport], finding: Finding) -> Self {
        let macinfo = interfaces
            .iter()
            .map(|i| MacInfo {
                interface: i.interface.clone(),
                macaddr: i.macaddr,
                scanstatus: ScanStatus::Mismatch,
            })
            .collect();
        DeviceResult {
            macinfo,
            sn,
            result: Verdict::Fail,
            finding,
        }
    }

    fn with_record(sn: SerialNumber, interfaces: &[InterfaceReport], mes: &[Mac]) -> Self {
        // Devices have a handful of cards: linear scans over these short
        // lists beat hashing (see benches/compare.rs). A long MES list (a
        // broken or hostile record) is hashed so the work stays linear.
        if mes.len() > LINEAR_LIMIT || interfaces.len() > LINEAR_LIMIT {
            return Self::with_record_hashed(sn, interfaces, mes);
        }
        let mut claimed: Vec<Mac> = Vec::with_capacity(interfaces.len());
        let mut macinfo = Vec::with_capacity(interfaces.len() + mes.len());
        for i in interfaces {
            let matched = i.macaddr.is_valid_card_address()
                && mes.contains(&i.macaddr)
                && !claimed.contains(&i.macaddr);
            if matched {
                claimed.push(i.macaddr);
            }
            macinfo.push(MacInfo {
                interface: i.interface.clone(),
                macaddr: i.macaddr,
                scanstatus: if matched {
                    ScanStatus::Match
                } else {
                    ScanStatus::Mismatch
                },
            });
        }
        for (n, &mac) in mes.iter().enumerate() {
            let on_device = interfaces.iter().any(|i| i.macaddr == mac);
            let listed_before = mes[..n].contains(&mac);
            if !on_device && !listed_before {
                macinfo.push(MacInfo {
                    interface: String::new(),
                    macaddr: mac,
                    scanstatus: ScanStatus::Mismatch,
                });
            }
        }
        Self::compared(sn, macinfo)
    }

    fn with_record_hashed(sn: SerialNumber, interfaces: &[InterfaceReport], mes: &[Mac]) -> Self {
        let recorded: HashSet<Mac> = mes.iter().copied().collect();
        let on_device: HashSet<Mac> = interfaces.iter().map(|i| i.macaddr).collect();
        let mut claimed = HashSet::with_capacity(interfaces.len());
        let mut macinfo: Vec<MacInfo> = interfaces
            .iter()
            .map(|i| {
                let matched = i.macaddr.is_valid_card_address()
                    && recorded.contains(&i.macaddr)
                    && claimed.insert(i.macaddr);
                MacInfo {
                    interface: i.interface.clone(),
                    macaddr: i.macaddr,
                    scanstatus: if matched {
                        ScanStatus::Match
                    } else {
                        ScanStatus::Mismatch
                    },
                }
            })
            .collect();
        let mut listed = HashSet::with_capacity(mes.len());
        for &mac in mes {
            if !on_device.contains(&mac) && listed.insert(mac) {
                macinfo.push(MacInfo {
                    interface: String::new(),
                    macaddr: mac,
                    scanstatus: ScanStatus::Mismatch,
                });
            }
        }
        Self::compared(sn, macinfo)
    }

    /// Pass iff there is at least one entry and every entry matched (a
    /// missing card's entry never does).
    fn compared(sn: SerialNumber, macinfo: Vec<MacInfo>) -> Self {
        let pass = !macinfo.is_empty() && macinfo.iter().all(|m| m.scanstatus == ScanStatus::Match);
        DeviceResult {
            macinfo,
            sn,
            result: if pass { Verdict::Pass } else { Verdict::Fail },
            finding: Finding::Compared,
        }
    }
}

/// Up to this many MACs, membership is a linear scan.
const LINEAR_LIMIT: usize = 16;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::PciDevice;
    use proptest::prelude::*;

    fn iface(name: &str, mac: [u8; 6]) -> InterfaceReport {
        InterfaceReport {
            interface: name.into(),
            macaddr: Mac::new(mac),
            pci: PciDevice {
                slot: "0000:04:00.0".into(),
                vendor: "0x8086".into(),
                device: "0x1533".into(),
                class: "0x020000".into(),
                driver: Some("igb".into()),
            },
        }
    }

    fn sn() -> SerialNumber {
        SerialNumber::new("SN1").unwrap()
    }

    const A: [u8; 6] = [0xe0, 0x18, 0x7d, 0x2e, 0xca, 0x68];
    const B: [u8; 6] = [0xe0, 0x18, 0x7d, 0x2e, 0xca, 0x69];
    const C: [u8; 6] = [0xe0, 0x18, 0x7d, 0x2e, 0xca, 0x6a];

    #[test]
    fn wrong_mac_and_missing_card_in_documented_order() {
        let r = DeviceResult::compare(
            sn(),
            &[iface("eth0", A), iface("eth1", C)],
            &MesAnswer::Record(vec![Mac::new(B), Mac::new(A)]),
        );
        let got = serde_json::to_string(&r).unwrap();
        assert_eq!(
            got,
            r#"{"macinfo":[{"interface":"eth0","macaddr":"e0:18:7d:2e:ca:68","scanstatus":"1"},{"interface":"eth1","macaddr":"e0:18:7d:2e:ca:6a","scanstatus":"0"},{"interface":"","macaddr":"e0:18:7d:2e:ca:69","scanstatus":"0"}],"sn":"SN1","result":"0"}"#
        );
        assert_eq!(r.mismatched_interfaces().count(), 1);
        assert_eq!(r.missing_cards().collect::<Vec<_>>(), vec![Mac::new(B)]);
    }

    #[test]
    fn duplicates() {
        // MES lists A twice: counts once.
        let r = DeviceResult::compare(
            sn(),
            &[iface("eth0", A)],
            &MesAnswer::Record(vec![Mac::new(A), Mac::new(A)]),
        );
        assert_eq!(r.result, Verdict::Pass);
        assert_eq!(r.macinfo.len(), 1);
        // Two interfaces with A: the second is "0", A is not missing.
        let r = DeviceResult::compare(
            sn(),
            &[iface("eth0", A), iface("eth1", A)],
            &MesAnswer::Record(vec![Mac::new(A)]),
        );
        let s: Vec<_> = r.macinfo.iter().map(|m| m.scanstatus.as_str()).collect();
        assert_eq!(s, ["1", "0"]);
        assert_eq!(r.result, Verdict::Fail);
    }

    #[test]
    fn invalid_addresses_never_match() {
        for bad in [[0; 6], [0xff; 6], [0x01, 0, 0x5e, 0, 0, 1]] {
            let r = DeviceResult::compare(
                sn(),
                &[iface("eth0", bad)],
                &MesAnswer::Record(vec![Mac::new(bad)]),
            );
            assert_eq!(r.result, Verdict::Fail);
            assert_eq!(r.macinfo.len(), 1, "listed once, not also missing");
        }
    }

    #[test]
    fn unknown_silent_and_empty() {
        let r = DeviceResult::compare(sn(), &[iface("eth0", A)], &MesAnswer::Unknown);
        assert_eq!(r.result, Verdict::Fail);
        assert_eq!(r.macinfo[0].scanstatus, ScanStatus::Mismatch);
        assert_eq!(r.finding, Finding::UnknownToMes);
        let r = DeviceResult::no_reply(sn());
        assert_eq!(
            serde_json::to_string(&r).unwrap(),
            r#"{"macinfo":[],"sn":"SN1","result":"0"}"#
        );
        // No interfaces and an empty record: nothing to pass on.
        let r = DeviceResult::compare(sn(), &[], &MesAnswer::Record(vec![]));
        assert_eq!(r.result, Verdict::Fail);
    }

    fn arb_mac() -> impl Strategy<Value = Mac> {
        // A small space so device and MES lists collide often.
        (0u8..6, any::<bool>()).prop_map(|(n, invalid)| {
            if invalid && n == 0 {
                Mac::new([0; 6])
            } else {
                Mac::new([0x02, 0, 0, 0, 0, n])
            }
        })
    }

    proptest! {
        #[test]
        fn comparison_properties(
            device in proptest::collection::vec(arb_mac(), 0..5),
            mes in proptest::collection::vec(arb_mac(), 0..5),
            seed in any::<u64>(),
        ) {
            let ifaces: Vec<_> = device.iter().enumerate()
                .map(|(i, m)| iface(&format!("eth{i}"), m.octets())).collect();
            let r = DeviceResult::compare(sn(), &ifaces, &MesAnswer::Record(mes.clone()));
            // Every interface appears exactly once, in order.
            let names: Vec<_> = r.macinfo.iter().filter(|m| !m.interface.is_empty())
                .map(|m| m.interface.clone()).collect();
            let want: Vec<_> = ifaces.iter().map(|i| i.interface.clone()).collect();
            prop_assert_eq!(names, want);
            // Every MES MAC appears; one not on the device exactly once.
            for m in &mes {
                let n = r.macinfo.iter().filter(|e| e.macaddr == *m).count();
                prop_assert!(n >= 1);
                if !device.contains(m) {
                    prop_assert_eq!(n, 1);
                }
            }
            // The hashed path (long lists) gives the same result.
            prop_assert_eq!(
                &DeviceResult::with_record_hashed(sn(), &ifaces, &mes),
                &r
            );
            // Pass iff non-empty and all "1".
            let all = !r.macinfo.is_empty()
                && r.macinfo.iter().all(|m| m.scanstatus == ScanStatus::Match);
            prop_assert_eq!(r.result.passed(), all);
            // Invalid card addresses never pass.
            for e in &r.macinfo {
                if !e.macaddr.is_valid_card_address() {
                    prop_assert_eq!(e.scanstatus, ScanStatus::Mismatch);
                }
            }
            // The order of the MES list does not change the verdict or the
            // interfaces' statuses.
            let mut shuffled = mes.clone();
            let len = shuffled.len();
            if len > 1 {
                shuffled.rotate_left((seed as usize) % len);
                shuffled.swap(0, (seed as usize / 7) % len);
            }
            let r2 = DeviceResult::compare(sn(), &ifaces, &MesAnswer::Record(shuffled));
            prop_assert_eq!(r2.result, r.result);
            prop_assert_eq!(&r2.macinfo[..ifaces.len()], &r.macinfo[..ifaces.len()]);
            let mut a: Vec<_> = r.missing_cards().collect();
            let mut b: Vec<_> = r2.missing_cards().collect();
            a.sort();
            b.sort();
            prop_assert_eq!(a, b);
        }
    }
}
