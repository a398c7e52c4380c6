//! TLVs: the 7-bit type and 9-bit length header of IEEE 802.1AB, read and
//! written.

use crate::FrameError;

/// TLV types this crate reads (802.1AB-2016, Table 8-1).
pub mod types {
    /// End of LLDPDU.
    pub const END: u8 = 0;
    /// Chassis ID (mandatory, first).
    pub const CHASSIS_ID: u8 = 1;
    /// Port ID (mandatory, second).
    pub const PORT_ID: u8 = 2;
    /// Time To Live (mandatory, third).
    pub const TTL: u8 = 3;
    /// Port Description.
    pub const PORT_DESCRIPTION: u8 = 4;
    /// System Name.
    pub const SYSTEM_NAME: u8 = 5;
    /// System Description.
    pub const SYSTEM_DESCRIPTION: u8 = 6;
    /// System Capabilities.
    pub const CAPABILITIES: u8 = 7;
    /// Management Address.
    pub const MANAGEMENT_ADDRESS: u8 = 8;
    /// Organizationally Specific.
    pub const ORGANIZATIONAL: u8 = 127;
}

/// The longest TLV value the 9-bit length can say.
pub const MAX_TLV_VALUE: usize = 511;

/// One TLV of an LLDPDU.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tlv<'a> {
    /// Its type (0..=127).
    pub kind: u8,
    /// Its value (at most [`MAX_TLV_VALUE`] bytes).
    pub value: &'a [u8],
}

/// The TLVs of `lldpdu` in order, each checked against the bytes left; the
/// iterator ends after the first error, after an End TLV, or at the end of
/// the data. Bytes after an End TLV (Ethernet padding) are not read.
pub fn tlvs(lldpdu: &[u8]) -> Tlvs<'_> {
    Tlvs {
        data: lldpdu,
        offset: 0,
        done: false,
    }
}

/// The iterator of [`tlvs`].
#[derive(Debug, Clone)]
pub struct Tlvs<'a> {
    data: &'a [u8],
    offset: usize,
    done: bool,
}

impl<'a> Iterator for Tlvs<'a> {
    type Item = Result<Tlv<'a>, FrameError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done || self.offset >= self.data.len() {
            return None;
        }
        let rest = &self.data[self.offset..];
        let [b0, b1, ..] = *rest else {
            self.done = true;
            return Some(Err(FrameError::Truncated {
                offset: self.offset,
            }));
        };
        let kind = b0 >> 1;
        let len = (usize::from(b0 & 1) << 8) | usize::from(b1);
        let Some(value) = rest.get(2..2 + len) else {
            self.done = true;
            return Some(Err(FrameError::Truncated {
                offset: self.offset,
            }));
        };
        self.offset += 2 + len;
        if kind == types::END {
            self.done = true;
        }
        Some(Ok(Tlv { kind, value }))
    }
}

/// Appends a TLV to `out`; values longer than [`MAX_TLV_VALUE`] are cut
/// there, and `kind` is taken modulo 128 (what the header can say).
pub fn write_tlv(out: &mut Vec<u8>, kind: u8, value: &[u8]) {
    let value = &value[..value.len().min(MAX_TLV_VALUE)];
    let len = value.len();
    out.push(((kind & 0x7f) << 1) | (len >> 8) as u8);
    out.push(len as u8);
    out.extend_from_slice(value);
}

/// Builds LLDPDUs (tests, fixtures, benchmarks): Chassis ID, Port ID and
/// TTL first, then the optional TLVs in the order added, then End.
///
/// ```
/// use burnin_lldp::{Builder, parse};
/// let pdu = Builder::new(4, &[0x44, 0x38, 0x39, 0xff, 0, 7], 5, b"swp7", 120)
///     .system_name("leaf-07")
///     .build();
/// let heard = parse(&pdu)?;
/// assert_eq!(heard.neighbor.chassis_id, "44:38:39:ff:00:07");
/// assert_eq!(heard.neighbor.system_name.as_deref(), Some("leaf-07"));
/// # Ok::<(), burnin_lldp::FrameError>(())
/// ```
#[derive(Debug, Clone)]
pub struct Builder {
    out: Vec<u8>,
}

impl Builder {
    /// An LLDPDU from these mandatory TLVs (subtypes by their 802.1AB
    /// numbers).
    pub fn new(
        chassis_subtype: u8,
        chassis: &[u8],
        port_subtype: u8,
        port: &[u8],
        ttl: u16,
    ) -> Self {
        let mut out = Vec::with_capacity(64);
        let mut id = Vec::with_capacity(1 + chassis.len().max(port.len()));
        id.push(chassis_subtype);
        id.extend_from_slice(chassis);
        write_tlv(&mut out, types::CHASSIS_ID, &id);
        id.clear();
        id.push(port_subtype);
        id.extend_from_slice(port);
        write_tlv(&mut out, types::PORT_ID, &id);
        write_tlv(&mut out, types::TTL, &ttl.to_be_bytes());
        Builder { out }
    }

    /// Adds any TLV.
    pub fn tlv(mut self, kind: u8, value: &[u8]) -> Self {
        write_tlv(&mut self.out, kind, value);
        self
    }

    /// Adds a System Name TLV.
    pub fn system_name(self, name: &str) -> Self {
        self.tlv(types::SYSTEM_NAME, name.as_bytes())
    }

    /// Adds a Port Description TLV.
    pub fn port_description(self, text: &str) -> Self {
        self.tlv(types::PORT_DESCRIPTION, text.as_bytes())
    }

    /// Adds a Management Address TLV for an IPv4 address (interface
    /// numbering unknown, no OID).
    pub fn mgmt_ipv4(self, addr: [u8; 4]) -> Self {
        let mut v = vec![5, 1];
        v.extend_from_slice(&addr);
        v.extend_from_slice(&[1, 0, 0, 0, 0, 0]);
        self.tlv(types::MANAGEMENT_ADDRESS, &v)
    }

    /// Adds an IEEE 802.1 Port VLAN ID TLV.
    pub fn port_vlan(self, pvid: u16) -> Self {
        let mut v = vec![0x00, 0x80, 0xc2, 0x01];
        v.extend_from_slice(&pvid.to_be_bytes());
        self.tlv(types::ORGANIZATIONAL, &v)
    }

    /// The LLDPDU, ended by an End TLV.
    pub fn build(mut self) -> Vec<u8> {
        write_tlv(&mut self.out, types::END, &[]);
        self.out
    }

    /// The LLDPDU without its End TLV (802.1AB-2016 makes End optional).
    pub fn build_without_end(self) -> Vec<u8> {
        self.out
    }
}
