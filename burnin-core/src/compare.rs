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
//!
//! # Hardware truth (SPEC §10.1)
//! See [`DeviceResult::compare_report`].

use std::collections::{HashMap, HashSet};
use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::{AddrAssignType, DeviceReport, InterfaceReport, Mac, PciDevice, SerialNumber};

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

/// Rules an operation may add to the comparison of SPEC §3.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct Rules {
    /// `requireLink`: an interface without carrier makes its MAC's
    /// scanstatus `"0"` (see [`DeviceResult::compare_report`]).
    pub require_link: bool,
    /// `requireCabling` (SPEC §11.1): a cabling finding makes its
    /// interface's MAC `"0"` (see [`DeviceResult::add_cabling`]).
    pub require_cabling: bool,
    /// `requirePcieWidth` (SPEC §11.1): a network card whose PCIe link
    /// trained narrower than its maximum width makes its MAC `"0"`.
    pub require_pcie_width: bool,
}

impl Rules {
    /// The rules of an operation with `requireLink` set as given.
    pub fn require_link(require_link: bool) -> Self {
        Rules {
            require_link,
            ..Rules::default()
        }
    }
}

/// What a finding that fails its interface's MAC ends with: `; RULE fails
/// it` (the rule's name as the API spells it).
fn fails_it(rule: &str) -> String {
    format!("; {rule} fails it")
}

/// Most serials a [`FindingKind::SharedMac`] finding names; the rest are
/// counted.
pub const MAX_NAMED_SERIALS: usize = 3;

/// What a [`HardwareFinding`] is about. On the wire in camelCase
/// (`"macOverridden"`); a kind this build does not know reads as
/// [`FindingKind::Other`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub enum FindingKind {
    /// The permanent address is compared; the current one differs
    /// (informational).
    MacOverridden,
    /// No permanent address is known and the kernel says software assigned
    /// the current one (`random`, `stolen` or `set`): the compared address
    /// may not be the card's.
    SoftwareAddress,
    /// A network card (PCI class `0x02xxxx`) with no network interface.
    NoDriver,
    /// The same MAC was reported by another device of the operation.
    SharedMac,
    /// `requireLink` failed this interface.
    NoLink,
    /// Another board answered the same operation with the same serial and
    /// other facts (a cloned or re-used serial): the serial fails.
    SerialConflict,
    /// The device's clock is further from the edge's than the tolerance.
    Clock,
    /// MES could not be asked about the device (an outage): undecided,
    /// not reported to the factory.
    MesOutage,
    /// The device is not cabled as the edge's cabling plan says (SPEC
    /// §11.1), or is not the unit the plan puts where it is.
    Cabling,
    /// A network card's PCIe link trained below its maximum width or speed
    /// (SPEC §11.1).
    PcieLink,
    /// A kind written by a newer burnin.
    #[serde(other)]
    Other,
}

/// Something about a device's hardware beyond its `macinfo`, with the
/// sentence shown to people (`scan`'s table, `scan --json`, `GET
/// /scans/{id}`): `{"kind", "interface"?, "message"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HardwareFinding {
    /// What it is about.
    pub kind: FindingKind,
    /// The interface it concerns, if one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interface: Option<String>,
    /// What was found, e.g. `enp4s0: MAC overridden by software (current
    /// 02:00:00:00:00:01)`.
    pub message: String,
}

impl fmt::Display for HardwareFinding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl HardwareFinding {
    /// Whether a rule (`requireCabling`, `requirePcieWidth`) made this
    /// finding fail its interface's MAC: its message then ends with `;
    /// requireCabling fails it` (resp. `requirePcieWidth`). Read back from
    /// a store, a finding has only its kind and words, so the words say it.
    pub fn fails_interface(&self) -> bool {
        match self.kind {
            FindingKind::Cabling => self.message.ends_with(&fails_it("requireCabling")),
            FindingKind::PcieLink => self.message.ends_with(&fails_it("requirePcieWidth")),
            _ => false,
        }
    }

    pub(crate) fn new(kind: FindingKind, interface: Option<&str>, message: String) -> Self {
        HardwareFinding {
            kind,
            interface: interface.map(str::to_owned),
            message,
        }
    }
}

/// The outcome for one device, serialized as a `scaninfo` entry of the log:
/// `{"macinfo": [...], "sn": "...", "result": "0"|"1"}`.
///
/// `findings` is serialized only when there are some (stores, APIs); the
/// factory log is written by [`crate::payload::log`], which never carries
/// them.
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
    /// What the hardware showed beyond the comparison (SPEC §10.1), in a
    /// fixed order: per interface in report order, then PCI devices by
    /// slot, then MACs shared with other devices.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub findings: Vec<HardwareFinding>,
    /// Where the device is, from the edge's cabling plan (SPEC §11.1); not
    /// in the factory payloads, left out when unknown.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location: Option<crate::Location>,
}

impl DeviceResult {
    /// Compares a device's scanned interfaces with MES's answer (no
    /// [`Rules`], no findings: the SPEC §3 comparison alone).
    pub fn compare(sn: SerialNumber, interfaces: &[InterfaceReport], mes: &MesAnswer) -> Self {
        Self::compare_with(sn, interfaces, mes, Rules::default())
    }

    /// [`compare`](Self::compare) with an operation's [`Rules`].
    pub fn compare_with(
        sn: SerialNumber,
        interfaces: &[InterfaceReport],
        mes: &MesAnswer,
        rules: Rules,
    ) -> Self {
        match mes {
            MesAnswer::Record(macs) => Self::with_record(sn, interfaces, macs, rules),
            MesAnswer::Unknown => Self::unmatched(sn, interfaces, Finding::UnknownToMes),
        }
    }

    /// Compares a whole device report with MES's answer under `rules` and
    /// adds the report's [findings](HardwareFinding) (all but
    /// [`FindingKind::SharedMac`], which needs the other devices:
    /// [`note_shared_macs`]).
    ///
    /// # Hardware truth (SPEC §10.1)
    /// * **Which address.** Each interface is compared by its
    ///   [`InterfaceReport::compared_address`]: the permanent (burned-in)
    ///   address when the agent reported one, else its current `macaddr`. The
    ///   log's `macaddr` is the address compared, so the factory sees the card's
    ///   own address even when software changed the current one.
    /// * **Findings** ([`HardwareFinding`], [`DeviceResult::findings`]) say what
    ///   the comparison alone does not: a current address overridden by software
    ///   (informational), an address assigned by software with no permanent
    ///   address known, a network card (PCI class `0x02xxxx`) with no network
    ///   interface — named as the likely missing card when MES expects MACs the
    ///   device did not show —, a MAC another device of the operation reported
    ///   too ([`note_shared_macs`]), and an interface failed by `requireLink`.
    ///   Findings are not part of the factory payloads: the log, Pair,
    ///   directBurn and notification bodies are the same with or without them.
    /// * **`requireLink`** ([`Rules::require_link`](Rules#structfield.require_link)): an interface whose
    ///   `carrier` is not reported as `true` — down, unreadable (null) or not
    ///   reported at all by an older agent — gets `"0"`. A check that was asked
    ///   for and cannot be confirmed does not pass. Its MAC still counts as
    ///   present on the device, so the MES MAC is not also listed as missing.
    /// * **Across devices.** A (valid) compared address reported by two devices
    ///   of one operation is a finding on both, naming the other serial (at most
    ///   [`MAX_NAMED_SERIALS`], then a count); results still follow MES.
    ///   All-zero, broadcast and multicast addresses are already failures and
    ///   are not cross-checked.
    pub fn compare_report(report: &DeviceReport, mes: &MesAnswer, rules: Rules) -> Self {
        let mut r = Self::compare_with(report.sn.clone(), &report.interfaces, mes, rules);
        r.add_report_findings(report, rules);
        r
    }

    /// Adds the findings a report shows by itself (see
    /// [`compare_report`](Self::compare_report)); the missing cards named
    /// are those of this result's `macinfo`.
    pub fn add_report_findings(&mut self, report: &DeviceReport, rules: Rules) {
        for i in &report.interfaces {
            if let Some(current) = i.overridden_address() {
                self.findings.push(HardwareFinding::new(
                    FindingKind::MacOverridden,
                    Some(&i.interface),
                    format!(
                        "{}: MAC overridden by software (current {current})",
                        i.interface
                    ),
                ));
            } else if i.permaddr.is_none()
                && let Some(
                    how @ (AddrAssignType::Random | AddrAssignType::Stolen | AddrAssignType::Set),
                ) = &i.addr_assign_type
            {
                self.findings.push(HardwareFinding::new(
                    FindingKind::SoftwareAddress,
                    Some(&i.interface),
                    format!(
                        "{}: address {} was assigned by software ({}) and no permanent \
                         address was reported; it may not be the card's",
                        i.interface,
                        i.macaddr,
                        how.as_str()
                    ),
                ));
            }
            if rules.require_link {
                let carrier = i.link.as_ref().map(|l| l.carrier);
                let why = match carrier {
                    Some(Some(true)) => None,
                    Some(Some(false)) => Some("no carrier"),
                    Some(None) => Some("carrier unknown (the interface may be down)"),
                    None => Some("link state not reported by the agent"),
                };
                if let Some(why) = why {
                    self.findings.push(HardwareFinding::new(
                        FindingKind::NoLink,
                        Some(&i.interface),
                        format!("{}: no link ({why}); requireLink fails it", i.interface),
                    ));
                }
            }
        }
        self.add_pcie_findings(report, rules);
        let missing: Vec<Mac> = self.missing_cards().collect();
        let orphans: Vec<&PciDevice> = report
            .pci_devices
            .iter()
            .filter(|d| is_network_class(&d.class))
            .filter(|d| !report.interfaces.iter().any(|i| i.pci.slot == d.slot))
            .collect();
        for d in orphans {
            let ids = format!("{}:{}", hex_id(&d.vendor), hex_id(&d.device));
            let mut message = match &d.driver {
                None => format!("network card at {} ({ids}) has no driver", d.slot),
                Some(driver) => format!(
                    "network card at {} ({ids}) has no network interface (driver {driver})",
                    d.slot
                ),
            };
            match missing.as_slice() {
                [] => {}
                [one] => message.push_str(&format!("; likely the missing card {one}")),
                many => {
                    message.push_str(&format!("; likely one of the {} missing cards", many.len()))
                }
            }
            self.findings
                .push(HardwareFinding::new(FindingKind::NoDriver, None, message));
        }
    }

    /// A [`FindingKind::PcieLink`] finding for each network card whose
    /// link trained below its maximum (SPEC §11.1): each interface's card,
    /// then the network cards of `pciDevices` no interface has, by slot;
    /// one per slot. With `requirePcieWidth`, a card narrower than its
    /// maximum width fails the MAC of its interface.
    fn add_pcie_findings(&mut self, report: &DeviceReport, rules: Rules) {
        let mut seen: Vec<&str> = Vec::new();
        let cards = report
            .interfaces
            .iter()
            .map(|i| (Some(i.interface.as_str()), &i.pci))
            .chain(
                report
                    .pci_devices
                    .iter()
                    .filter(|d| is_network_class(&d.class))
                    .filter(|d| !report.interfaces.iter().any(|i| i.pci.slot == d.slot))
                    .map(|d| (None, d)),
            );
        for (interface, pci) in cards {
            let Some(link) = &pci.pcie_link else {
                continue;
            };
            let Some(words) = pcie_degraded(link) else {
                continue;
            };
            if seen.contains(&pci.slot.as_str()) {
                continue;
            }
            seen.push(&pci.slot);
            let mut message = format!("PCIe link of {} degraded: {words}", pci.slot);
            if rules.require_pcie_width
                && link.is_narrower()
                && let Some(name) = interface
            {
                message.push_str(&fails_it("requirePcieWidth"));
                self.fail_interface(name);
            }
            self.findings.push(HardwareFinding::new(
                FindingKind::PcieLink,
                interface,
                message,
            ));
        }
    }

    /// Adds the cabling findings of a reply against the edge's plan (SPEC
    /// §11.1, [`crate::cabling`]) and sets [`location`](Self::location).
    /// With `requireCabling` each finding fails its interface's MAC.
    pub fn add_cabling(
        &mut self,
        plan: &crate::cabling::CablingPlan,
        report: &DeviceReport,
        rules: Rules,
    ) {
        self.location = plan.locate(report);
        for f in plan.findings(report, rules.require_cabling) {
            let mut message = f.to_string();
            if rules.require_cabling {
                message.push_str(&fails_it("requireCabling"));
                self.fail_interface(f.interface());
            }
            self.findings.push(HardwareFinding::new(
                FindingKind::Cabling,
                Some(f.interface()),
                message,
            ));
        }
    }

    /// The MAC of interface `name` `"0"`, and the device Fail.
    fn fail_interface(&mut self, name: &str) {
        let mut failed = false;
        for m in self.macinfo.iter_mut().filter(|m| m.interface == name) {
            m.scanstatus = ScanStatus::Mismatch;
            failed = true;
        }
        if failed {
            self.result = Verdict::Fail;
        }
    }

    /// Whether a MES outage left this device undecided
    /// ([`FindingKind::MesOutage`]).
    pub fn is_undecided(&self) -> bool {
        self.findings
            .iter()
            .any(|f| f.kind == FindingKind::MesOutage)
    }

    /// Marks the device undecided: MES could not be asked (see
    /// [`crate::operation`]'s *MES outages*). The reason is in the result's
    /// [`Finding::MesFailed`]; the finding says what became of the device.
    pub fn mark_undecided(&mut self) {
        let why = match &self.finding {
            Finding::MesFailed(why) => why.as_str(),
            _ => "no answer",
        };
        let message =
            format!("undecided: MES could not be asked ({why}); not reported to the factory");
        self.findings
            .push(HardwareFinding::new(FindingKind::MesOutage, None, message));
    }

    /// Fails the device because other boards answered with its serial
    /// (`twins`, in arrival order) and names every board: host name and
    /// MACs. The `macinfo` stays the first reply's, every entry `"0"`.
    pub fn add_conflict(&mut self, first: &DeviceReport, twins: &[DeviceReport]) {
        fn board(r: &DeviceReport) -> String {
            let macs: Vec<String> = r
                .interfaces
                .iter()
                .map(|i| i.compared_address().to_string())
                .collect();
            let macs = if macs.is_empty() {
                "no network card".to_owned()
            } else {
                macs.join(", ")
            };
            format!("host {:?} ({macs})", r.hostname)
        }
        let mut boards = vec![board(first)];
        boards.extend(twins.iter().map(board));
        let message = format!(
            "{} boards answered as {}: {}; a cloned or re-used serial? The first reply is logged, \
             failed",
            boards.len(),
            self.sn,
            boards.join(" and ")
        );
        self.fail_every_mac();
        self.findings.push(HardwareFinding::new(
            FindingKind::SerialConflict,
            None,
            message,
        ));
    }

    /// Adds a [`FindingKind::Clock`] finding when the device collected its
    /// facts at `collected` by its own clock, the edge received them at
    /// `received`, and the two differ by more than `tolerance`. With
    /// `require_clock` the device then fails.
    pub fn add_clock_finding(
        &mut self,
        collected: crate::Timestamp,
        received: crate::Timestamp,
        tolerance: std::time::Duration,
        require_clock: bool,
    ) {
        let (off, way) = if collected >= received {
            (collected.saturating_since(received), "ahead of")
        } else {
            (received.saturating_since(collected), "behind")
        };
        if off <= tolerance {
            return;
        }
        let mut message = format!(
            "device clock is {} {way} the edge",
            crate::time::human_duration(off)
        );
        if require_clock {
            message.push_str("; requireClock fails it");
            self.fail_every_mac();
        }
        self.findings
            .push(HardwareFinding::new(FindingKind::Clock, None, message));
    }

    /// Every `macinfo` entry `"0"` and the device Fail.
    fn fail_every_mac(&mut self) {
        for m in &mut self.macinfo {
            m.scanstatus = ScanStatus::Mismatch;
        }
        self.result = Verdict::Fail;
    }

    /// An expected device that never replied: Fail with no `macinfo`.
    pub fn no_reply(sn: SerialNumber) -> Self {
        DeviceResult {
            macinfo: Vec::new(),
            sn,
            result: Verdict::Fail,
            finding: Finding::NoReply,
            findings: Vec::new(),
            location: None,
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
                macaddr: i.compared_address(),
                scanstatus: ScanStatus::Mismatch,
            })
            .collect();
        DeviceResult {
            macinfo,
            sn,
            result: Verdict::Fail,
            finding,
            findings: Vec::new(),
            location: None,
        }
    }

    fn with_record(
        sn: SerialNumber,
        interfaces: &[InterfaceReport],
        mes: &[Mac],
        rules: Rules,
    ) -> Self {
        // Devices have a handful of cards: linear scans over these short
        // lists beat hashing (see benches/compare.rs). A long MES list (a
        // broken or hostile record) is hashed so the work stays linear.
        if mes.len() > LINEAR_LIMIT || interfaces.len() > LINEAR_LIMIT {
            return Self::with_record_hashed(sn, interfaces, mes, rules);
        }
        let mut claimed: Vec<Mac> = Vec::with_capacity(interfaces.len());
        let mut macinfo = Vec::with_capacity(interfaces.len() + mes.len());
        for i in interfaces {
            let mac = i.compared_address();
            let matched = mac.is_valid_card_address()
                && linked(i, rules)
                && mes.contains(&mac)
                && !claimed.contains(&mac);
            if matched {
                claimed.push(mac);
            }
            macinfo.push(MacInfo {
                interface: i.interface.clone(),
                macaddr: mac,
                scanstatus: if matched {
                    ScanStatus::Match
                } else {
                    ScanStatus::Mismatch
                },
            });
        }
        for (n, &mac) in mes.iter().enumerate() {
            let on_device = interfaces.iter().any(|i| i.compared_address() == mac);
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

    fn with_record_hashed(
        sn: SerialNumber,
        interfaces: &[InterfaceReport],
        mes: &[Mac],
        rules: Rules,
    ) -> Self {
        let recorded: HashSet<Mac> = mes.iter().copied().collect();
        let on_device: HashSet<Mac> = interfaces.iter().map(|i| i.compared_address()).collect();
        let mut claimed = HashSet::with_capacity(interfaces.len());
        let mut macinfo: Vec<MacInfo> = interfaces
            .iter()
            .map(|i| {
                let mac = i.compared_address();
                let matched = mac.is_valid_card_address()
                    && linked(i, rules)
                    && recorded.contains(&mac)
                    && claimed.insert(mac);
                MacInfo {
                    interface: i.interface.clone(),
                    macaddr: mac,
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
            findings: Vec::new(),
            location: None,
        }
    }
}

/// Up to this many MACs, membership is a linear scan.
const LINEAR_LIMIT: usize = 16;

/// Whether `requireLink` (if set) lets this interface match.
fn linked(i: &InterfaceReport, rules: Rules) -> bool {
    !rules.require_link || i.link.as_ref().and_then(|l| l.carrier) == Some(true)
}

/// PCI class `0x02xxxx` (network controller), in the kernel's `0x` form or
/// without the prefix.
fn is_network_class(class: &str) -> bool {
    let hex = class.strip_prefix("0x").unwrap_or(class);
    hex.len() == 6 && hex.starts_with("02")
}

/// `x4 of x8, 8.0 GT/s of 16.0 GT/s` for a link below its maximum width or
/// speed (the parts known), `None` for one at its maximum or not known.
fn pcie_degraded(link: &crate::PcieLink) -> Option<String> {
    fn rate(s: &str) -> Option<f64> {
        s.split_whitespace().next()?.parse::<f64>().ok()
    }
    fn shown(s: &str) -> &str {
        s.trim().strip_suffix("PCIe").unwrap_or(s).trim()
    }
    let slower = match (link.speed.as_deref(), link.max_speed.as_deref()) {
        (Some(s), Some(m)) => matches!((rate(s), rate(m)), (Some(s), Some(m)) if s < m),
        _ => false,
    };
    if !link.is_narrower() && !slower {
        return None;
    }
    let mut parts = Vec::new();
    if let (Some(w), Some(m)) = (link.width, link.max_width) {
        parts.push(format!("x{w} of x{m}"));
    }
    if let (Some(s), Some(m)) = (link.speed.as_deref(), link.max_speed.as_deref()) {
        parts.push(format!("{} of {}", shown(s), shown(m)));
    }
    Some(parts.join(", "))
}

/// `0x8086` → `8086`, as `lspci -n` shows ids.
fn hex_id(id: &str) -> &str {
    id.strip_prefix("0x").unwrap_or(id)
}

/// Adds a [`FindingKind::SharedMac`] finding to every device whose
/// compared (valid) address another device of `results` reported too,
/// naming the others (see [`DeviceResult::compare_report`]). Each device's own
/// duplicates are left to the comparison (`"0"` on the second interface).
/// Linear in the number of `macinfo` entries.
pub fn note_shared_macs(results: &mut [DeviceResult]) {
    // Every (valid) reported address → the devices reporting it, in order.
    let mut owners: HashMap<Mac, Vec<usize>> = HashMap::new();
    for (n, d) in results.iter().enumerate() {
        for m in d.macinfo.iter().filter(|m| !m.interface.is_empty()) {
            if !m.macaddr.is_valid_card_address() {
                continue;
            }
            let list = owners.entry(m.macaddr).or_default();
            if list.last() != Some(&n) {
                list.push(n);
            }
        }
    }
    let mut notes: Vec<(usize, HardwareFinding)> = Vec::new();
    for (n, d) in results.iter().enumerate() {
        let mut seen: Vec<Mac> = Vec::new();
        for m in d.macinfo.iter().filter(|m| !m.interface.is_empty()) {
            let Some(list) = owners.get(&m.macaddr) else {
                continue;
            };
            if list.len() < 2 || seen.contains(&m.macaddr) {
                continue;
            }
            seen.push(m.macaddr);
            let others: Vec<&str> = list
                .iter()
                .filter(|&&o| o != n)
                .map(|&o| results[o].sn.as_str())
                .collect();
            let mut named = others
                .iter()
                .take(MAX_NAMED_SERIALS)
                .copied()
                .collect::<Vec<_>>()
                .join(", ");
            if others.len() > MAX_NAMED_SERIALS {
                named.push_str(&format!(" and {} more", others.len() - MAX_NAMED_SERIALS));
            }
            notes.push((
                n,
                HardwareFinding::new(
                    FindingKind::SharedMac,
                    Some(&m.interface),
                    format!(
                        "{}: MAC {} also reported by {named}",
                        m.interface, m.macaddr
                    ),
                ),
            ));
        }
    }
    for (n, f) in notes {
        results[n].findings.push(f);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::PciDevice;
    use proptest::prelude::*;

    fn iface(name: &str, mac: [u8; 6]) -> InterfaceReport {
        InterfaceReport::new(
            name,
            Mac::new(mac),
            PciDevice {
                pcie_link: None,
                slot: "0000:04:00.0".into(),
                vendor: "0x8086".into(),
                device: "0x1533".into(),
                class: "0x020000".into(),
                driver: Some("igb".into()),
            },
        )
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

    fn pci(slot: &str, class: &str, driver: Option<&str>) -> PciDevice {
        PciDevice {
            pcie_link: None,
            slot: slot.into(),
            vendor: "0x8086".into(),
            device: "0x1533".into(),
            class: class.into(),
            driver: driver.map(Into::into),
        }
    }

    fn report(
        sn: &str,
        interfaces: Vec<InterfaceReport>,
        pci_devices: Vec<PciDevice>,
    ) -> DeviceReport {
        DeviceReport {
            operation_id: None,
            sn: sn.parse().unwrap(),
            hostname: "h".into(),
            agent_version: "t".into(),
            collected_at: crate::Timestamp::from_unix_seconds(1_800_000_000),
            interfaces,
            pci_devices,
        }
    }

    fn linked(mut i: InterfaceReport, carrier: Option<bool>) -> InterfaceReport {
        i.link = Some(crate::LinkState {
            carrier,
            operstate: Some(if carrier == Some(true) { "up" } else { "down" }.into()),
            speed_mbps: None,
        });
        i
    }

    #[test]
    fn the_permanent_address_is_compared_and_an_override_is_noted() {
        let mut eth0 = iface("eth0", C);
        eth0.permaddr = Some(Mac::new(A));
        eth0.addr_assign_type = Some(AddrAssignType::Set);
        let r = DeviceResult::compare_report(
            &report("SN1", vec![eth0.clone()], vec![]),
            &MesAnswer::Record(vec![Mac::new(A)]),
            Rules::default(),
        );
        assert_eq!(r.result, Verdict::Pass, "the burned-in address is in MES");
        assert_eq!(
            r.macinfo[0].macaddr,
            Mac::new(A),
            "the log shows what was compared"
        );
        assert_eq!(r.findings.len(), 1);
        assert_eq!(r.findings[0].kind, FindingKind::MacOverridden);
        assert_eq!(
            r.findings[0].message,
            "eth0: MAC overridden by software (current e0:18:7d:2e:ca:6a)"
        );
        // MES recorded the current (software) address: not the card's.
        let r = DeviceResult::compare_report(
            &report("SN1", vec![eth0.clone()], vec![]),
            &MesAnswer::Record(vec![Mac::new(C)]),
            Rules::default(),
        );
        assert_eq!(r.result, Verdict::Fail);
        // Equal permanent and current addresses: nothing to note.
        eth0.permaddr = Some(Mac::new(C));
        let r = DeviceResult::compare_report(
            &report("SN1", vec![eth0.clone()], vec![]),
            &MesAnswer::Record(vec![Mac::new(C)]),
            Rules::default(),
        );
        assert_eq!((r.result, r.findings.len()), (Verdict::Pass, 0));
        // An all-zero permanent address is "none known".
        eth0.permaddr = Some(Mac::new([0; 6]));
        assert_eq!(eth0.compared_address(), Mac::new(C));
        // No permanent address, but software set the current one.
        eth0.permaddr = None;
        let r = DeviceResult::compare_report(
            &report("SN1", vec![eth0], vec![]),
            &MesAnswer::Record(vec![Mac::new(C)]),
            Rules::default(),
        );
        assert_eq!(r.result, Verdict::Pass, "informational only");
        assert_eq!(r.findings[0].kind, FindingKind::SoftwareAddress);
        assert!(r.findings[0].message.contains("assigned by software (set)"));
    }

    #[test]
    fn a_network_card_without_driver_is_named_as_the_likely_missing_card() {
        let devices = vec![
            pci("0000:03:00.0", "0x020000", None),
            pci("0000:04:00.0", "0x020000", Some("igb")),
            pci("0000:00:1f.0", "0x060100", None),
        ];
        let r = DeviceResult::compare_report(
            &report("SN1", vec![iface("eth0", A)], devices.clone()),
            &MesAnswer::Record(vec![Mac::new(A), Mac::new(B)]),
            Rules::default(),
        );
        assert_eq!(r.result, Verdict::Fail);
        let texts: Vec<_> = r.findings.iter().map(|f| f.message.as_str()).collect();
        assert_eq!(
            texts,
            [
                "network card at 0000:03:00.0 (8086:1533) has no driver; likely the missing card e0:18:7d:2e:ca:69"
            ]
        );
        assert_eq!(r.findings[0].kind, FindingKind::NoDriver);
        // MES expects no more than was found: named, not blamed.
        let r = DeviceResult::compare_report(
            &report("SN1", vec![iface("eth0", A)], devices.clone()),
            &MesAnswer::Record(vec![Mac::new(A)]),
            Rules::default(),
        );
        assert_eq!(r.result, Verdict::Pass);
        assert_eq!(
            r.findings[0].message,
            "network card at 0000:03:00.0 (8086:1533) has no driver"
        );
        // Two cards missing; a bound card without an interface.
        let mut devices = devices;
        devices[0].driver = Some("e1000e".into());
        let r = DeviceResult::compare_report(
            &report("SN1", vec![], devices),
            &MesAnswer::Record(vec![Mac::new(A), Mac::new(B)]),
            Rules::default(),
        );
        assert_eq!(
            r.findings[0].message,
            "network card at 0000:03:00.0 (8086:1533) has no network interface (driver e1000e); likely one of the 2 missing cards"
        );
        // Found for devices MES does not know, too.
        let r = DeviceResult::compare_report(
            &report("SN1", vec![], vec![pci("0000:03:00.0", "0x028000", None)]),
            &MesAnswer::Unknown,
            Rules::default(),
        );
        assert_eq!(r.findings.len(), 1);
    }

    #[test]
    fn require_link_fails_interfaces_without_carrier() {
        let ifaces = vec![
            linked(iface("eth0", A), Some(true)),
            linked(iface("eth1", B), Some(false)),
            linked(iface("eth2", C), None),
        ];
        let mes = MesAnswer::Record(vec![Mac::new(A), Mac::new(B), Mac::new(C)]);
        let off = DeviceResult::compare_report(
            &report("SN1", ifaces.clone(), vec![]),
            &mes,
            Rules::default(),
        );
        assert_eq!((off.result, off.findings.len()), (Verdict::Pass, 0));
        let on = DeviceResult::compare_report(
            &report("SN1", ifaces, vec![]),
            &mes,
            Rules::require_link(true),
        );
        let s: Vec<_> = on.macinfo.iter().map(|m| m.scanstatus.as_str()).collect();
        assert_eq!(s, ["1", "0", "0"], "no card is listed as missing");
        assert_eq!(on.result, Verdict::Fail);
        let texts: Vec<_> = on.findings.iter().map(|f| f.message.as_str()).collect();
        assert_eq!(
            texts,
            [
                "eth1: no link (no carrier); requireLink fails it",
                "eth2: no link (carrier unknown (the interface may be down)); requireLink fails it"
            ]
        );
        // An older agent reports no link state: requireLink cannot be met.
        let r = DeviceResult::compare_report(
            &report("SN1", vec![iface("eth0", A)], vec![]),
            &MesAnswer::Record(vec![Mac::new(A)]),
            Rules::require_link(true),
        );
        assert_eq!(r.result, Verdict::Fail);
        assert!(r.findings[0].message.contains("not reported by the agent"));
    }

    #[test]
    fn a_mac_on_two_devices_is_noted_on_both() {
        let mes = |m: [u8; 6]| MesAnswer::Record(vec![Mac::new(m)]);
        let mut results = vec![
            DeviceResult::compare(
                SerialNumber::new("S1").unwrap(),
                &[iface("eth0", A)],
                &mes(A),
            ),
            DeviceResult::compare(
                SerialNumber::new("S2").unwrap(),
                &[iface("eth0", B)],
                &mes(B),
            ),
            DeviceResult::compare(
                SerialNumber::new("S3").unwrap(),
                &[iface("eth1", A)],
                &mes(C),
            ),
            DeviceResult::compare(
                SerialNumber::new("S4").unwrap(),
                &[iface("eth0", [0; 6])],
                &mes(C),
            ),
            DeviceResult::compare(
                SerialNumber::new("S5").unwrap(),
                &[iface("eth0", [0; 6])],
                &mes(C),
            ),
        ];
        note_shared_macs(&mut results);
        let texts = |n: usize| -> Vec<String> {
            results[n]
                .findings
                .iter()
                .map(|f| f.message.clone())
                .collect()
        };
        assert_eq!(
            texts(0),
            ["eth0: MAC e0:18:7d:2e:ca:68 also reported by S3"]
        );
        assert_eq!(
            texts(2),
            ["eth1: MAC e0:18:7d:2e:ca:68 also reported by S1"]
        );
        assert!(texts(1).is_empty());
        assert!(
            texts(3).is_empty(),
            "invalid addresses are not cross-checked"
        );
        assert_eq!(results[0].result, Verdict::Pass, "results still follow MES");
        // Many devices: a few named, the rest counted.
        let mut many: Vec<_> = (0..6)
            .map(|n| {
                DeviceResult::compare(
                    SerialNumber::new(format!("M{n}")).unwrap(),
                    &[iface("eth0", A)],
                    &mes(A),
                )
            })
            .collect();
        note_shared_macs(&mut many);
        assert_eq!(
            many[0].findings[0].message,
            "eth0: MAC e0:18:7d:2e:ca:68 also reported by M1, M2, M3 and 2 more"
        );
    }

    #[test]
    fn findings_round_trip_and_are_absent_when_empty() {
        let r = DeviceResult::compare(
            sn(),
            &[iface("eth0", A)],
            &MesAnswer::Record(vec![Mac::new(A)]),
        );
        assert!(!serde_json::to_string(&r).unwrap().contains("findings"));
        let mut r2 = r.clone();
        r2.findings.push(HardwareFinding::new(
            FindingKind::NoLink,
            Some("eth0"),
            "eth0: no link".into(),
        ));
        let text = serde_json::to_string(&r2).unwrap();
        assert!(
            text.ends_with(
                r#""findings":[{"kind":"noLink","interface":"eth0","message":"eth0: no link"}]}"#
            ),
            "{text}"
        );
        let back: DeviceResult = serde_json::from_str(&text).unwrap();
        assert_eq!(back, r2);
        let newer: HardwareFinding =
            serde_json::from_str(r#"{"kind":"somethingNew","message":"m"}"#).unwrap();
        assert_eq!(newer.kind, FindingKind::Other);
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
        /// Permanent vs current: the verdict depends only on the compared
        /// addresses, the log shows them, and a difference is always noted.
        #[test]
        fn the_compared_address_decides(
            pairs in proptest::collection::vec((arb_mac(), proptest::option::of(arb_mac())), 0..5),
            mes in proptest::collection::vec(arb_mac(), 0..5),
        ) {
            let ifaces: Vec<_> = pairs.iter().enumerate().map(|(n, (cur, perm))| {
                let mut i = iface(&format!("eth{n}"), cur.octets());
                i.permaddr = *perm;
                i
            }).collect();
            let answer = MesAnswer::Record(mes.clone());
            let r = DeviceResult::compare_report(&report("SN1", ifaces.clone(), vec![]), &answer, Rules::default());
            // Same as comparing interfaces that carry only the compared address.
            let plain: Vec<_> = ifaces.iter()
                .map(|i| iface(&i.interface, i.compared_address().octets())).collect();
            let p = DeviceResult::compare(sn(), &plain, &answer);
            prop_assert_eq!(&r.macinfo, &p.macinfo);
            prop_assert_eq!(r.result, p.result);
            let overridden = ifaces.iter().filter(|i| i.compared_address() != i.macaddr).count();
            let noted = r.findings.iter().filter(|f| f.kind == FindingKind::MacOverridden).count();
            prop_assert_eq!(overridden, noted);
            // The factory log is the same with and without the findings.
            let mut bare = r.clone();
            bare.findings.clear();
            let op = crate::OperationId::Number(1);
            prop_assert_eq!(crate::payload::log(&op, &[r]).body, crate::payload::log(&op, &[bare]).body);
        }

        /// Across devices: a device gets a shared-MAC finding for a MAC iff
        /// another device reported that (valid) address; verdicts never change.
        #[test]
        fn shared_macs_across_devices(
            devices in proptest::collection::vec(proptest::collection::vec(arb_mac(), 0..3), 1..5),
        ) {
            let mut results: Vec<_> = devices.iter().enumerate().map(|(d, macs)| {
                let ifaces: Vec<_> = macs.iter().enumerate()
                    .map(|(n, m)| iface(&format!("eth{n}"), m.octets())).collect();
                DeviceResult::compare(SerialNumber::new(format!("D{d}")).unwrap(), &ifaces, &MesAnswer::Record(macs.clone()))
            }).collect();
            let before: Vec<_> = results.iter().map(|r| (r.result, r.macinfo.clone())).collect();
            note_shared_macs(&mut results);
            for (d, r) in results.iter().enumerate() {
                prop_assert_eq!(&(r.result, r.macinfo.clone()), &before[d]);
                let mut own: Vec<Mac> = devices[d].clone();
                own.sort();
                own.dedup();
                for m in own {
                    let elsewhere = devices.iter().enumerate()
                        .any(|(o, macs)| o != d && macs.contains(&m));
                    let want = elsewhere && m.is_valid_card_address();
                    let noted = r.findings.iter().filter(|f| f.kind == FindingKind::SharedMac
                        && f.message.contains(&m.to_string())).count();
                    prop_assert_eq!(noted, usize::from(want), "device {} mac {}", d, m);
                }
            }
        }

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
                &DeviceResult::with_record_hashed(sn(), &ifaces, &mes, Rules::default()),
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
