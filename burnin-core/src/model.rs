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
}

/// One scanned network interface and the PCI device behind it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InterfaceReport {
    /// Interface name, e.g. `enp4s0`.
    pub interface: String,
    /// Its hardware address (a bond member's permanent address).
    pub macaddr: Mac,
    /// The PCI device that backs it.
    pub pci: PciDevice,
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

    #[test]
    fn command_round_trip() {
        let body =
            br#"{"operationId":"op-1","replyTo":"hwinfo_queue","deadline":"2026-11-25T10:00:30Z"}"#;
        let c = ScanCommand::from_slice(body).unwrap();
        assert_eq!(c.operator_id, None);
        assert_eq!(c.to_json(), body.to_vec());
        let e = ScanCommand::from_slice(br#"{"operationId":1,"replyTo":5,"deadline":"x"}"#)
            .unwrap_err();
        assert_eq!(e.path(), Some("replyTo"));
    }
}
