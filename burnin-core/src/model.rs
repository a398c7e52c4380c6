//! The wire model of SPEC §4: the scan command and the device report.

use serde::{Deserialize, Serialize};

use crate::{Mac, OperationId, SerialNumber, Timestamp};

/// Largest accepted scan command, in bytes (SPEC §4).
pub const MAX_COMMAND_BYTES: usize = 64 * 1024;
/// Largest accepted device report, in bytes (SPEC §4).
pub const MAX_REPLY_BYTES: usize = 1024 * 1024;

/// Facts about one PCI device, as read from sysfs.
///
/// Values are kept as the kernel writes them (`"0x8086"`, `"0x020000"`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PciDevice {
    /// PCI address, e.g. `0000:04:00.0`.
    pub slot: String,
    /// Vendor id, e.g. `0x8086`.
    pub vendor: String,
    /// Device id, e.g. `0x1533`.
    pub device: String,
    /// Class code, e.g. `0x020000`.
    pub class: String,
    /// Bound driver's name; `None` (JSON `null`) when unbound.
    pub driver: Option<String>,
    /// The PCIe link (SPEC §11.1); `None` (not written) when the kernel
    /// has none of its four files (conventional PCI), or from an older
    /// agent.
    #[serde(default, rename = "pcieLink", skip_serializing_if = "Option::is_none")]
    pub pcie_link: Option<PcieLink>,
}

/// A PCI device's PCIe link as the kernel writes it (SPEC §11.1): sysfs
/// `current_link_speed`, `current_link_width`, `max_link_speed` and
/// `max_link_width`. A value the kernel has no file for is `None` and not
/// written.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PcieLink {
    /// `current_link_speed`, e.g. `8.0 GT/s PCIe`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub speed: Option<String>,
    /// `current_link_width`, the number of lanes (`4` for x4).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub width: Option<u32>,
    /// `max_link_speed`, e.g. `16.0 GT/s PCIe`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_speed: Option<String>,
    /// `max_link_width`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_width: Option<u32>,
}

impl PcieLink {
    /// Whether the link trained narrower than its maximum (both widths
    /// known).
    pub fn is_narrower(&self) -> bool {
        matches!((self.width, self.max_width), (Some(w), Some(m)) if w < m)
    }
}

/// One LLDP neighbour heard on an interface (SPEC §11.1), as the agent
/// reports it: from the latest IEEE 802.1AB frame of that (interface,
/// chassis, port) whose TTL has not run out.
///
/// Everything here is what a device on the other end of the cable *said*;
/// none of it is trusted as a location without the cabling plan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LldpNeighbor {
    /// The Chassis ID; a MAC-valued id in lower-case colon form.
    pub chassis_id: String,
    /// How the Chassis ID is to be read.
    pub chassis_id_subtype: LldpIdSubtype,
    /// System Name TLV, when sent.
    #[serde(default)]
    pub system_name: Option<String>,
    /// The Port ID; a MAC-valued id in lower-case colon form.
    pub port_id: String,
    /// How the Port ID is to be read.
    pub port_id_subtype: LldpIdSubtype,
    /// Port Description TLV, when sent.
    #[serde(default)]
    pub port_description: Option<String>,
    /// The first Management Address TLV (IPv4 or IPv6 text, or a MAC),
    /// when sent.
    #[serde(default)]
    pub mgmt_address: Option<String>,
    /// The IEEE 802.1 Port VLAN ID, when sent and not 0.
    #[serde(default)]
    pub vlan: Option<u16>,
    /// Seconds since the frame was received.
    pub age_secs: u64,
}

/// An LLDP Chassis ID or Port ID subtype by its 802.1AB name, on the wire
/// as `"chassisComponent"`, `"ifAlias"`, `"portComponent"`, `"mac"`,
/// `"networkAddress"`, `"ifName"`, `"agentCircuitId"` or `"local"`.
///
/// A name this build does not know is kept as [`LldpIdSubtype::Other`],
/// so a newer agent's report still parses.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum LldpIdSubtype {
    /// Chassis ID subtype 1 (`entPhysicalAlias` of a chassis component).
    ChassisComponent,
    /// Chassis ID subtype 2, Port ID subtype 1 (interface alias).
    IfAlias,
    /// Chassis ID subtype 3, Port ID subtype 2.
    PortComponent,
    /// Chassis ID subtype 4, Port ID subtype 3 (a MAC address).
    Mac,
    /// Chassis ID subtype 5, Port ID subtype 4 (an IANA family and address).
    NetworkAddress,
    /// Chassis ID subtype 6, Port ID subtype 5 (interface name).
    IfName,
    /// Port ID subtype 6 (agent circuit id, RFC 3046).
    AgentCircuitId,
    /// Chassis ID subtype 7, Port ID subtype 7 (locally assigned).
    Local,
    /// Anything else, as reported.
    Other(String),
}

impl LldpIdSubtype {
    /// The Chassis ID subtype numbered `n` by 802.1AB; `None` when reserved.
    pub fn chassis(n: u8) -> Option<Self> {
        Some(match n {
            1 => Self::ChassisComponent,
            2 => Self::IfAlias,
            3 => Self::PortComponent,
            4 => Self::Mac,
            5 => Self::NetworkAddress,
            6 => Self::IfName,
            7 => Self::Local,
            _ => return None,
        })
    }

    /// The Port ID subtype numbered `n` by 802.1AB; `None` when reserved.
    pub fn port(n: u8) -> Option<Self> {
        Some(match n {
            1 => Self::IfAlias,
            2 => Self::PortComponent,
            3 => Self::Mac,
            4 => Self::NetworkAddress,
            5 => Self::IfName,
            6 => Self::AgentCircuitId,
            7 => Self::Local,
            _ => return None,
        })
    }

    /// The wire form.
    pub fn as_str(&self) -> &str {
        match self {
            Self::ChassisComponent => "chassisComponent",
            Self::IfAlias => "ifAlias",
            Self::PortComponent => "portComponent",
            Self::Mac => "mac",
            Self::NetworkAddress => "networkAddress",
            Self::IfName => "ifName",
            Self::AgentCircuitId => "agentCircuitId",
            Self::Local => "local",
            Self::Other(s) => s,
        }
    }
}

impl Serialize for LldpIdSubtype {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for LldpIdSubtype {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        Ok(match s.as_ref() {
            "chassisComponent" => Self::ChassisComponent,
            "ifAlias" => Self::IfAlias,
            "portComponent" => Self::PortComponent,
            "mac" => Self::Mac,
            "networkAddress" => Self::NetworkAddress,
            "ifName" => Self::IfName,
            "agentCircuitId" => Self::AgentCircuitId,
            "local" => Self::Local,
            _ => Self::Other(s.into_owned()),
        })
    }
}

/// One scanned network interface and the PCI device behind it.
///
/// `permaddr`, `addrAssignType` and `link` are the phase-2 facts of SPEC
/// §10.1. They are optional on the wire: a report of an older agent has
/// none of them and parses as `None`, and `None` is not written, so a
/// report without them is byte for byte what an older agent sent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InterfaceReport {
    /// Interface name, e.g. `enp4s0`.
    pub interface: String,
    /// Its current hardware address (a bond member's permanent address,
    /// SPEC §3, so older edges keep comparing the right one).
    pub macaddr: Mac,
    /// The burned-in address the kernel knows (rtnetlink
    /// `IFLA_PERM_ADDRESS`, else a bond member's `perm_hwaddr`); `None`
    /// when it knows none. The edge compares this one when present
    /// ([`InterfaceReport::compared_address`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub permaddr: Option<Mac>,
    /// How the kernel says the current address was assigned
    /// (`addr_assign_type`).
    #[serde(
        default,
        rename = "addrAssignType",
        skip_serializing_if = "Option::is_none"
    )]
    pub addr_assign_type: Option<AddrAssignType>,
    /// Link state; `None` from agents that do not report it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub link: Option<LinkState>,
    /// The LLDP neighbours heard on it (SPEC §11.1): `None` (not written)
    /// when the agent does not listen (an older agent, or one not permitted
    /// to), `Some(vec![])` when it listened and heard nothing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lldp: Option<Vec<LldpNeighbor>>,
    /// The PCI device that backs it.
    pub pci: PciDevice,
}

impl InterfaceReport {
    /// An interface with only the facts of SPEC §4 (no permanent address,
    /// assign type or link state).
    pub fn new(interface: impl Into<String>, macaddr: Mac, pci: PciDevice) -> Self {
        InterfaceReport {
            interface: interface.into(),
            macaddr,
            permaddr: None,
            addr_assign_type: None,
            link: None,
            lldp: None,
            pci,
        }
    }

    /// The address the edge compares with MES (SPEC §10.1): the permanent
    /// address when one is reported, else `macaddr`. An all-zero permanent
    /// address means "none known" (the kernel never sends one; a device
    /// that does is not trusted over its current address).
    pub fn compared_address(&self) -> Mac {
        match self.permaddr {
            Some(p) if p.octets() != [0; 6] => p,
            _ => self.macaddr,
        }
    }

    /// The current address when software changed it: `Some(macaddr)` when a
    /// permanent address is compared and the current one differs.
    pub fn overridden_address(&self) -> Option<Mac> {
        let compared = self.compared_address();
        (compared != self.macaddr).then_some(self.macaddr)
    }
}

/// How the current address was assigned: the kernel's `addr_assign_type`
/// (`NET_ADDR_*`), on the wire as `"permanent"`, `"random"`, `"stolen"` or
/// `"set"`.
///
/// A value this build does not know (a newer kernel's) is kept as
/// [`AddrAssignType::Other`] with its text, so a newer agent's report
/// still parses and nothing it said is lost.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum AddrAssignType {
    /// `0`: the address was programmed into the hardware.
    Permanent,
    /// `1`: generated at random (veth, many virtual devices).
    Random,
    /// `2`: taken from another device (e.g. a bond's or vlan's lower).
    Stolen,
    /// `3`: set from user space (`ip link set address`, NetworkManager,
    /// systemd-networkd, udev).
    Set,
    /// Anything else, as reported.
    Other(String),
}

impl AddrAssignType {
    /// From the number in sysfs `addr_assign_type`.
    pub fn from_kernel(n: u32) -> Self {
        match n {
            0 => AddrAssignType::Permanent,
            1 => AddrAssignType::Random,
            2 => AddrAssignType::Stolen,
            3 => AddrAssignType::Set,
            n => AddrAssignType::Other(n.to_string()),
        }
    }

    /// The wire form.
    pub fn as_str(&self) -> &str {
        match self {
            AddrAssignType::Permanent => "permanent",
            AddrAssignType::Random => "random",
            AddrAssignType::Stolen => "stolen",
            AddrAssignType::Set => "set",
            AddrAssignType::Other(s) => s,
        }
    }
}

impl Serialize for AddrAssignType {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for AddrAssignType {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        Ok(match s.as_ref() {
            "permanent" => AddrAssignType::Permanent,
            "random" => AddrAssignType::Random,
            "stolen" => AddrAssignType::Stolen,
            "set" => AddrAssignType::Set,
            _ => AddrAssignType::Other(s.into_owned()),
        })
    }
}

/// An interface's link (SPEC §10.1). Each value is `None` (JSON `null`)
/// when the kernel would not say: `carrier` and `speed` cannot be read
/// while an interface is administratively down, and a speed of -1 means
/// unknown.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LinkState {
    /// Whether the physical link is up (`carrier`).
    #[serde(default)]
    pub carrier: Option<bool>,
    /// RFC 2863 operational state as the kernel names it (`up`, `down`,
    /// `lowerlayerdown`, `dormant`, `testing`, `notpresent`, `unknown`).
    #[serde(default)]
    pub operstate: Option<String>,
    /// Negotiated speed in Mbit/s.
    #[serde(default)]
    pub speed_mbps: Option<u32>,
}

/// What a device's hardware probe found: everything of a reply but the
/// operation, agent version and time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hardware {
    /// The device's serial number.
    pub sn: SerialNumber,
    /// The device's host name.
    pub hostname: String,
    /// PCI-backed interfaces, in the order the probe found them.
    pub interfaces: Vec<InterfaceReport>,
    /// Every PCI device.
    pub pci_devices: Vec<PciDevice>,
}

/// A device's reply to a scan (SPEC §4).
///
/// Field names are exactly the wire names. Unknown fields are ignored so
/// newer agents can add facts without breaking older edges.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeviceReport {
    /// The operation answered; `null` from `burnin-agent probe`.
    pub operation_id: Option<OperationId>,
    /// The device's serial number.
    pub sn: SerialNumber,
    /// The device's host name.
    pub hostname: String,
    /// Version of the agent that answered.
    pub agent_version: String,
    /// When the facts were read.
    pub collected_at: Timestamp,
    /// PCI-backed interfaces.
    pub interfaces: Vec<InterfaceReport>,
    /// Every PCI device.
    pub pci_devices: Vec<PciDevice>,
}

impl DeviceReport {
    /// Builds a report from probed hardware.
    pub fn new(
        operation_id: Option<OperationId>,
        hardware: Hardware,
        agent_version: impl Into<String>,
        collected_at: Timestamp,
    ) -> Self {
        DeviceReport {
            operation_id,
            sn: hardware.sn,
            hostname: hardware.hostname,
            agent_version: agent_version.into(),
            collected_at,
            interfaces: hardware.interfaces,
            pci_devices: hardware.pci_devices,
        }
    }

    /// Parses a reply body, refusing bodies over [`MAX_REPLY_BYTES`].
    pub fn from_slice(body: &[u8]) -> Result<Self, ParseError> {
        parse(body, MAX_REPLY_BYTES, "device report")
    }

    /// The compact JSON body sent on the wire.
    pub fn to_json(&self) -> Vec<u8> {
        to_json(self)
    }
}

/// The scan command the edge fans out to every agent (SPEC §4).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ScanCommand {
    /// The operation this scan belongs to.
    pub operation_id: OperationId,
    /// Who started it, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub operator_id: Option<String>,
    /// Factory scan mode, when given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scan_mode: Option<i64>,
    /// Queue replies go to.
    pub reply_to: String,
    /// When the edge stops collecting; later replies are pointless.
    pub deadline: Timestamp,
    /// Which run of the operation this is (SPEC §11.3): agents answer each
    /// (operation, run) once, so a rescan is answered again. Absent from
    /// older edges, which agents treat as run 0.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run: Option<u64>,
    /// How much of the window was left when this command was published, in
    /// milliseconds. An agent answers until its own receipt time plus this,
    /// so a device whose clock is hours off still answers; without it (an
    /// older edge) the agent compares `deadline` with its own clock.
    #[serde(
        default,
        rename = "remainingMs",
        skip_serializing_if = "Option::is_none"
    )]
    pub remaining_ms: Option<u64>,
}

impl ScanCommand {
    /// Parses a command body, refusing bodies over [`MAX_COMMAND_BYTES`].
    pub fn from_slice(body: &[u8]) -> Result<Self, ParseError> {
        parse(body, MAX_COMMAND_BYTES, "scan command")
    }

    /// The compact JSON body sent on the wire.
    pub fn to_json(&self) -> Vec<u8> {
        to_json(self)
    }
}

/// A document that could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ParseError {
    /// The body exceeds the size limit.
    #[error("{what} is {len} bytes; the limit is {limit} bytes")]
    TooLarge {
        /// Which document.
        what: &'static str,
        /// Its size.
        len: usize,
        /// The limit.
        limit: usize,
    },
    /// The body is not the documented JSON.
    #[error("{what} is invalid at {path}: {message}")]
    Invalid {
        /// Which document.
        what: &'static str,
        /// The JSON path of the bad field (`.` for the document itself),
        /// e.g. `interfaces[0].macaddr`.
        path: String,
        /// What was wrong, with the offending value where there is one.
        message: String,
    },
}

impl ParseError {
    /// The JSON path of the bad field, if the body was parsed at all.
    pub fn path(&self) -> Option<&str> {
        match self {
            ParseError::Invalid { path, .. } => Some(path),
            ParseError::TooLarge { .. } => None,
        }
    }
}

/// Parses `body` as `T` with a size limit, naming the bad field on error.
pub(crate) fn parse<T: serde::de::DeserializeOwned>(
    body: &[u8],
    limit: usize,
    what: &'static str,
) -> Result<T, ParseError> {
    if body.len() > limit {
        return Err(ParseError::TooLarge {
            what,
            len: body.len(),
            limit,
        });
    }
    // The fast path: a good body parses once, without tracking the path
    // (which costs a reply about as much again). Only a bad one is parsed a
    // second time, to name the field.
    if let Ok(value) = serde_json::from_slice(body) {
        return Ok(value);
    }
    let mut de = serde_json::Deserializer::from_slice(body);
    let value = serde_path_to_error::deserialize(&mut de).map_err(|e| ParseError::Invalid {
        what,
        path: e.path().to_string(),
        message: e.inner().to_string(),
    })?;
    // Trailing bytes after the document (other than whitespace) are an error.
    de.end().map_err(|e| ParseError::Invalid {
        what,
        path: ".".into(),
        message: e.to_string(),
    })?;
    Ok(value)
}

pub(crate) fn to_json<T: Serialize>(value: &T) -> Vec<u8> {
    to_json_sized(value, 128)
}

/// [`to_json`] into a buffer of `capacity` bytes: large payloads (the log of
/// thousands of devices) then never grow and copy it.
pub(crate) fn to_json_sized<T: Serialize>(value: &T, capacity: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(capacity);
    // Serializing these types cannot fail: every map key is a string and no
    // Serialize impl returns an error.
    match serde_json::to_writer(&mut out, value) {
        Ok(()) => out,
        Err(_) => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) const SAMPLE: &str = r#"{"operationId": 1, "sn": "Q186I15901", "hostname": "dut-17",
   "agentVersion": "0.1.0", "collectedAt": "2026-11-25T10:00:00Z",
   "interfaces": [{"interface": "enp4s0", "macaddr": "e0:18:7d:2e:ca:68",
                   "pci": {"slot": "0000:04:00.0", "vendor": "0x8086",
                           "device": "0x1533", "class": "0x020000", "driver": "igb"}}],
   "pciDevices": [{"slot": "0000:04:00.0", "vendor": "0x8086", "device": "0x1533", "class": "0x020000", "driver": "igb"},
                  {"slot": "0000:00:1f.0", "vendor": "0x8086", "device": "0x1234", "class": "0x060100", "driver": null}]}"#;

    #[test]
    fn parses_the_spec_example_and_writes_it_back() {
        let r = DeviceReport::from_slice(SAMPLE.as_bytes()).unwrap();
        assert_eq!(r.operation_id, Some(OperationId::Number(1)));
        assert_eq!(r.interfaces[0].macaddr.to_string(), "e0:18:7d:2e:ca:68");
        assert_eq!(r.pci_devices[1].driver, None);
        let back: serde_json::Value = serde_json::from_slice(&r.to_json()).unwrap();
        let orig: serde_json::Value = serde_json::from_str(SAMPLE).unwrap();
        assert_eq!(back, orig);
    }

    #[test]
    fn phase_two_fields_parse_and_are_optional() {
        let body = SAMPLE.replace(
            r#""macaddr": "e0:18:7d:2e:ca:68","#,
            r#""macaddr": "02:00:00:00:00:01", "permaddr": "E0-18-7D-2E-CA-68",
               "addrAssignType": "set",
               "link": {"carrier": false, "operstate": "lowerlayerdown", "speedMbps": null},"#,
        );
        let r = DeviceReport::from_slice(body.as_bytes()).unwrap();
        let i = &r.interfaces[0];
        assert_eq!(i.permaddr, Some("e0:18:7d:2e:ca:68".parse().unwrap()));
        assert_eq!(i.addr_assign_type, Some(AddrAssignType::Set));
        assert_eq!(
            i.link,
            Some(LinkState {
                carrier: Some(false),
                operstate: Some("lowerlayerdown".into()),
                speed_mbps: None
            })
        );
        assert_eq!(i.compared_address(), "e0:18:7d:2e:ca:68".parse().unwrap());
        assert_eq!(
            i.overridden_address(),
            Some("02:00:00:00:00:01".parse().unwrap())
        );
        let json = String::from_utf8(r.to_json()).unwrap();
        assert!(
            json.contains(r#""permaddr":"e0:18:7d:2e:ca:68","addrAssignType":"set","link":{"carrier":false,"operstate":"lowerlayerdown","speedMbps":null}"#),
            "{json}"
        );
        assert_eq!(DeviceReport::from_slice(json.as_bytes()).unwrap(), r);
        // null and absent are the same; a newer kernel's assign type is kept.
        let body = SAMPLE.replace(
            r#""macaddr": "e0:18:7d:2e:ca:68","#,
            r#""macaddr": "e0:18:7d:2e:ca:68", "permaddr": null, "addrAssignType": "quantum",
               "link": {},"#,
        );
        let r = DeviceReport::from_slice(body.as_bytes()).unwrap();
        assert_eq!(r.interfaces[0].permaddr, None);
        assert_eq!(
            r.interfaces[0].addr_assign_type,
            Some(AddrAssignType::Other("quantum".into()))
        );
        assert_eq!(r.interfaces[0].link, Some(LinkState::default()));
        // Bad values name the field.
        for (bad, path) in [
            (r#""permaddr": "zz","#, "interfaces[0].permaddr"),
            (
                r#""link": {"speedMbps": -1},"#,
                "interfaces[0].link.speedMbps",
            ),
            (r#""link": {"carrier": 1},"#, "interfaces[0].link.carrier"),
        ] {
            let body = SAMPLE.replace(
                r#""macaddr": "e0:18:7d:2e:ca:68","#,
                &format!(r#""macaddr": "e0:18:7d:2e:ca:68", {bad}"#),
            );
            let e = DeviceReport::from_slice(body.as_bytes()).unwrap_err();
            assert_eq!(e.path(), Some(path), "{e}");
        }
        assert_eq!(AddrAssignType::from_kernel(3), AddrAssignType::Set);
        assert_eq!(AddrAssignType::from_kernel(9).as_str(), "9");
    }

    /// SPEC §11.1: `lldp` per interface and `pcieLink` per PCI device, with
    /// exactly the SPEC's names; absent stays absent, `[]` stays `[]`.
    #[test]
    fn phase_three_fields_parse_and_are_optional() {
        let old = DeviceReport::from_slice(SAMPLE.as_bytes()).unwrap();
        assert_eq!(old.interfaces[0].lldp, None);
        assert_eq!(old.pci_devices[0].pcie_link, None);
        assert!(!String::from_utf8(old.to_json()).unwrap().contains("lldp"));
        assert!(
            !String::from_utf8(old.to_json())
                .unwrap()
                .contains("pcieLink")
        );

        let neighbour = r#"{"chassisId":"44:38:39:ff:00:07","chassisIdSubtype":"mac","systemName":"leaf-07","portId":"swp7","portIdSubtype":"ifName","portDescription":"B3-12","mgmtAddress":"10.0.0.7","vlan":100,"ageSecs":12}"#;
        let link =
            r#"{"speed":"8.0 GT/s PCIe","width":4,"maxSpeed":"16.0 GT/s PCIe","maxWidth":8}"#;
        let body = SAMPLE
            .replace(
                r#""macaddr": "e0:18:7d:2e:ca:68","#,
                &format!(r#""macaddr": "e0:18:7d:2e:ca:68", "lldp": [{neighbour}],"#),
            )
            .replace(
                r#""class": "0x020000", "driver": "igb"}}]"#,
                &format!(r#""class": "0x020000", "driver": "igb", "pcieLink": {link}}}}}]"#),
            );
        let r = DeviceReport::from_slice(body.as_bytes()).unwrap();
        let n = &r.interfaces[0].lldp.as_ref().unwrap()[0];
        assert_eq!(n.chassis_id_subtype, LldpIdSubtype::Mac);
        assert_eq!(n.port_id_subtype, LldpIdSubtype::IfName);
        assert_eq!((n.vlan, n.age_secs), (Some(100), 12));
        let l = r.interfaces[0].pci.pcie_link.as_ref().unwrap();
        assert_eq!((l.width, l.max_width), (Some(4), Some(8)));
        assert!(l.is_narrower());
        let json = String::from_utf8(r.to_json()).unwrap();
        assert!(json.contains(&format!(r#""lldp":[{neighbour}]"#)), "{json}");
        assert!(json.contains(&format!(r#""pcieLink":{link}"#)), "{json}");
        assert_eq!(DeviceReport::from_slice(json.as_bytes()).unwrap(), r);

        // Listened, heard nothing; nulls written; partial links; new subtypes kept.
        let body = SAMPLE.replace(
            r#""macaddr": "e0:18:7d:2e:ca:68","#,
            r#""macaddr": "e0:18:7d:2e:ca:68", "lldp": [],"#,
        );
        let r = DeviceReport::from_slice(body.as_bytes()).unwrap();
        assert_eq!(r.interfaces[0].lldp, Some(vec![]));
        assert!(
            String::from_utf8(r.to_json())
                .unwrap()
                .contains(r#""lldp":[]"#)
        );
        let n = LldpNeighbor {
            chassis_id: "c".into(),
            chassis_id_subtype: LldpIdSubtype::Other("future".into()),
            system_name: None,
            port_id: "p".into(),
            port_id_subtype: LldpIdSubtype::AgentCircuitId,
            port_description: None,
            mgmt_address: None,
            vlan: None,
            age_secs: 0,
        };
        let text = serde_json::to_string(&n).unwrap();
        assert_eq!(
            text,
            r#"{"chassisId":"c","chassisIdSubtype":"future","systemName":null,"portId":"p","portIdSubtype":"agentCircuitId","portDescription":null,"mgmtAddress":null,"vlan":null,"ageSecs":0}"#
        );
        assert_eq!(serde_json::from_str::<LldpNeighbor>(&text).unwrap(), n);
        let partial = PcieLink {
            max_width: Some(8),
            ..PcieLink::default()
        };
        assert_eq!(
            serde_json::to_string(&partial).unwrap(),
            r#"{"maxWidth":8}"#
        );
        assert!(!partial.is_narrower());
        for n in 1..=7 {
            let c = LldpIdSubtype::chassis(n).unwrap();
            let p = LldpIdSubtype::port(n).unwrap();
            for s in [c, p] {
                let back: LldpIdSubtype =
                    serde_json::from_str(&serde_json::to_string(&s).unwrap()).unwrap();
                assert_eq!(back, s);
            }
        }
        assert_eq!(LldpIdSubtype::chassis(0), None);
        assert_eq!(LldpIdSubtype::port(8), None);
    }

    #[test]
    fn errors_name_the_field() {
        let cases = [
            (
                SAMPLE.replace("\"sn\": \"Q186I15901\"", "\"sn\": \"Q1 86\""),
                "sn",
            ),
            (
                SAMPLE.replace("e0:18:7d:2e:ca:68", "e0:18:7d"),
                "interfaces[0].macaddr",
            ),
            (SAMPLE.replace("\"hostname\": \"dut-17\",", ""), "."),
            (
                SAMPLE.replace("\"operationId\": 1", "\"operationId\": true"),
                "operationId",
            ),
            (
                SAMPLE.replace("\"0x1533\", \"class\"", "7, \"class\""),
                "interfaces[0].pci.device",
            ),
            (
                SAMPLE.replace("2026-11-25T10:00:00Z", "noon"),
                "collectedAt",
            ),
        ];
        for (body, path) in cases {
            let e = DeviceReport::from_slice(body.as_bytes()).unwrap_err();
            assert_eq!(e.path(), Some(path), "{e}");
        }
        let e = DeviceReport::from_slice(SAMPLE.replace("e0:18:7d:2e:ca:68", "zz").as_bytes())
            .unwrap_err();
        assert!(e.to_string().contains("\"zz\" is not a MAC address"), "{e}");
        let e = DeviceReport::from_slice(b"{} trailing").unwrap_err();
        assert!(matches!(e, ParseError::Invalid { .. }));
    }

    #[test]
    fn size_limits() {
        let big = vec![b' '; MAX_REPLY_BYTES + 1];
        assert!(matches!(
            DeviceReport::from_slice(&big),
            Err(ParseError::TooLarge { len, .. }) if len == MAX_REPLY_BYTES + 1
        ));
        let big = vec![b' '; MAX_COMMAND_BYTES + 1];
        assert!(matches!(
            ScanCommand::from_slice(&big),
            Err(ParseError::TooLarge { .. })
        ));
    }

    /// The command as the previous release's agents parse it (its
    /// `ScanCommand` at 8de4c43, field for field): a command of this edge,
    /// with `run` and `remainingMs`, still parses there, so those agents
    /// keep answering (docs/protocol.md §7 says what they do on a rescan).
    #[test]
    fn the_previous_release_parses_this_edges_command() {
        #[derive(Debug, serde::Deserialize)]
        #[serde(rename_all = "camelCase")]
        #[allow(dead_code)]
        struct PreviousScanCommand {
            operation_id: OperationId,
            #[serde(default)]
            operator_id: Option<String>,
            #[serde(default)]
            scan_mode: Option<i64>,
            reply_to: String,
            deadline: Timestamp,
        }
        let now = ScanCommand {
            operation_id: OperationId::Number(7001),
            operator_id: Some("op".into()),
            scan_mode: Some(1),
            reply_to: "hwinfo_queue".into(),
            deadline: "2026-11-25T10:00:30Z".parse().unwrap(),
            run: Some(2),
            remaining_ms: Some(29_000),
        };
        let old: PreviousScanCommand = parse(&now.to_json(), MAX_COMMAND_BYTES, "scan command")
            .expect("an older agent parses it");
        assert_eq!(old.operation_id, OperationId::Number(7001));
        assert_eq!(old.deadline, now.deadline);
    }

    #[test]
    fn command_round_trip() {
        let body =
            br#"{"operationId":"op-1","replyTo":"hwinfo_queue","deadline":"2026-11-25T10:00:30Z"}"#;
        let c = ScanCommand::from_slice(body).unwrap();
        assert_eq!(c.operator_id, None);
        assert_eq!(
            (c.run, c.remaining_ms),
            (None, None),
            "an older edge's command"
        );
        assert_eq!(c.to_json(), body.to_vec());
        let newer = br#"{"operationId":7,"replyTo":"q","deadline":"2026-11-25T10:00:30Z","run":2,"remainingMs":29500}"#;
        let c = ScanCommand::from_slice(newer).unwrap();
        assert_eq!((c.run, c.remaining_ms), (Some(2), Some(29_500)));
        assert_eq!(c.to_json(), newer.to_vec());
        let e = ScanCommand::from_slice(br#"{"operationId":1,"replyTo":5,"deadline":"x"}"#)
            .unwrap_err();
        assert_eq!(e.path(), Some("replyTo"));
    }
}
