//! # burnin-lldp
//!
//! What the agent makes of the IEEE 802.1AB (LLDP) frames a switch sends
//! down the cable (SPEC §11.1): a parser ([`parse`], [`parse_frame`]) that
//! turns one LLDPDU into a [`burnin_core::LldpNeighbor`], and a
//! [`NeighbourTable`] that keeps the latest frame per (interface, chassis,
//! port) until its TTL runs out.
//!
//! ## Design overview
//!
//! The crate is **sans-IO**: it opens no socket and reads no clock.
//! `burnin-agent` owns the raw packet sockets and passes each received
//! frame in with the time it read (`now`); the table answers with the
//! neighbours and the next deadline ([`NeighbourTable::poll_timeout`]). So
//! the parser is fuzzed (`fuzz/fuzz_targets/lldp.rs`, replayed by
//! `burnin-fuzz-replay`) and the table is tested with a fake clock, and the
//! same code reads the hex LLDPDUs of fixture trees (`burnin-sysfs`).
//! It is its own crate, not a module of `burnin-sysfs`, so that this
//! promise is kept by its manifest (burnin-core and thiserror only).
//!
//! ## What a frame must be
//!
//! Everything a frame says is what a device on the other end *claims*:
//!
//! * An LLDPDU over [`MAX_LLDPDU`] bytes (an Ethernet payload) is
//!   [`FrameError::Oversized`]; a TLV longer than the bytes left is
//!   [`FrameError::Truncated`]. Chassis ID, Port ID and TTL must come first,
//!   in that order, once each, with the lengths 802.1AB allows; a reserved
//!   ID subtype is refused. Such a frame is dropped whole and counted
//!   ([`Stats`]); nothing of it is kept.
//! * A malformed *optional* TLV (a Management Address or 802.1 VLAN TLV
//!   whose inner lengths do not add up) is ignored, and the rest of the
//!   frame kept, as 802.1AB asks.
//! * Text (names, descriptions, non-MAC ids) is decoded as UTF-8 with
//!   invalid bytes and control characters replaced by U+FFFD, so no
//!   escape sequence or line break reaches a log line or a terminal; an id
//!   that is not printable text is shown as lower-case hex pairs joined by
//!   `:`. MAC-valued ids are in lower-case colon form.
//! * A TTL of 0 (a shutdown LLDPDU) removes that neighbour at once.
//! * At most [`MAX_NEIGHBOURS`] neighbours are kept per interface; a frame
//!   from one more (a hub passing on a whole room's LLDP, a device making up
//!   chassis ids) is counted in [`Stats::over_limit`] and dropped until an
//!   entry expires.
//!
//! ## Getting started
//!
//! ```
//! use std::time::{Duration, Instant};
//! use burnin_lldp::{Builder, NeighbourTable};
//!
//! let mut table = NeighbourTable::new();
//! table.listen("enp4s0");
//! let t0 = Instant::now();
//! let pdu = Builder::new(4, &[0x44, 0x38, 0x39, 0xff, 0, 7], 5, b"swp7", 4).build();
//! table.handle_lldpdu("enp4s0", &pdu, t0)?;
//! let heard = table.neighbours("enp4s0", t0 + Duration::from_secs(1)).unwrap();
//! assert_eq!(heard[0].port_id, "swp7");
//! assert_eq!(heard[0].age_secs, 1);
//! // After its TTL, it is gone.
//! assert_eq!(table.neighbours("enp4s0", t0 + Duration::from_secs(4)), Some(vec![]));
//! # Ok::<(), burnin_lldp::FrameError>(())
//! ```

use std::net::{Ipv4Addr, Ipv6Addr};

use burnin_core::{LldpIdSubtype, LldpNeighbor};

mod table;
mod tlv;

pub use table::{MAX_NEIGHBOURS, NeighbourTable, Outcome, Stats};
pub use tlv::{Builder, MAX_TLV_VALUE, Tlv, Tlvs, tlvs, types, write_tlv};

/// The LLDP ethertype.
pub const ETHERTYPE: u16 = 0x88cc;
/// The nearest-bridge group address LLDP frames are sent to.
pub const NEAREST_BRIDGE: [u8; 6] = [0x01, 0x80, 0xc2, 0x00, 0x00, 0x0e];
/// The largest LLDPDU accepted, in bytes: one standard Ethernet payload.
pub const MAX_LLDPDU: usize = 1500;

/// One LLDPDU as heard: the neighbour it describes (age 0) and how long
/// to keep it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lldpdu {
    /// The neighbour, with `age_secs` 0.
    pub neighbor: LldpNeighbor,
    /// The TTL TLV, in seconds; 0 means the neighbour is shutting down.
    pub ttl_secs: u16,
}

/// Why a frame was dropped.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FrameError {
    /// Larger than [`MAX_LLDPDU`] (or than the agent's receive buffer).
    #[error("LLDPDU of {len} bytes is over the {limit}-byte limit")]
    Oversized {
        /// Its length (at least this many bytes when it did not fit).
        len: usize,
        /// The limit.
        limit: usize,
    },
    /// A TLV header or value runs past the end of the data.
    #[error("TLV at byte {offset} runs past the end of the LLDPDU")]
    Truncated {
        /// Where the TLV starts.
        offset: usize,
    },
    /// Not an Ethernet frame of ethertype 0x88cc.
    #[error("not an LLDP frame (ethertype {ethertype:#06x})")]
    NotLldp {
        /// The ethertype found (0 when the frame is too short to have one).
        ethertype: u16,
    },
    /// A mandatory TLV is missing or out of place.
    #[error("{expected} TLV expected as TLV {position}, found type {found}")]
    Mandatory {
        /// Which TLV was expected.
        expected: &'static str,
        /// Its position (1-based).
        position: usize,
        /// The type found there (`None` when the LLDPDU ended).
        found: FoundType,
    },
    /// A TLV has a length 802.1AB does not allow for its type.
    #[error("TLV type {kind} has length {len}, outside {min}..={max}")]
    BadLength {
        /// Its type.
        kind: u8,
        /// Its length.
        len: usize,
        /// The shortest allowed.
        min: usize,
        /// The longest allowed.
        max: usize,
    },
    /// A Chassis or Port ID subtype 802.1AB reserves.
    #[error("{tlv} subtype {subtype} is reserved")]
    ReservedSubtype {
        /// `Chassis ID` or `Port ID`.
        tlv: &'static str,
        /// The subtype.
        subtype: u8,
    },
    /// A second Chassis ID, Port ID or TTL TLV.
    #[error("more than one TLV of type {kind}")]
    Duplicate {
        /// Its type.
        kind: u8,
    },
}

/// The type of TLV found where a mandatory one was expected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FoundType(pub Option<u8>);

impl std::fmt::Display for FoundType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            Some(t) => write!(f, "{t}"),
            None => f.write_str("none (the LLDPDU ended)"),
        }
    }
}

/// Parses a whole Ethernet frame as an AF_PACKET raw socket delivers it:
/// destination, source, ethertype 0x88cc (an 802.1Q tag before it is
/// skipped), then the LLDPDU.
pub fn parse_frame(frame: &[u8]) -> Result<Lldpdu, FrameError> {
    parse(lldpdu_of(frame)?)
}

/// The LLDPDU of an Ethernet frame (see [`parse_frame`]).
pub fn lldpdu_of(frame: &[u8]) -> Result<&[u8], FrameError> {
    let ethertype = |at: usize| {
        frame
            .get(at..at + 2)
            .map_or(0, |b| u16::from_be_bytes([b[0], b[1]]))
    };
    let (kind, start) = match ethertype(12) {
        0x8100 | 0x88a8 => (ethertype(16), 18),
        other => (other, 14),
    };
    if kind != ETHERTYPE || frame.len() < start {
        return Err(FrameError::NotLldp { ethertype: kind });
    }
    Ok(&frame[start..])
}

/// Parses one LLDPDU (the TLVs from Chassis ID to End, no Ethernet header).
pub fn parse(lldpdu: &[u8]) -> Result<Lldpdu, FrameError> {
    if lldpdu.len() > MAX_LLDPDU {
        return Err(FrameError::Oversized {
            len: lldpdu.len(),
            limit: MAX_LLDPDU,
        });
    }
    let mut it = tlvs(lldpdu);
    let mut mandatory =
        |position: usize, kind: u8, expected: &'static str| match it.next().transpose()? {
            Some(t) if t.kind == kind => Ok(t.value),
            other => Err(FrameError::Mandatory {
                expected,
                position,
                found: FoundType(other.map(|t| t.kind)),
            }),
        };
    let chassis = mandatory(1, types::CHASSIS_ID, "Chassis ID")?;
    let port = mandatory(2, types::PORT_ID, "Port ID")?;
    let ttl = mandatory(3, types::TTL, "Time To Live")?;
    let (chassis_id_subtype, chassis_id) = id(chassis, types::CHASSIS_ID)?;
    let (port_id_subtype, port_id) = id(port, types::PORT_ID)?;
    let ttl_secs = match *ttl {
        [hi, lo, ..] => u16::from_be_bytes([hi, lo]),
        _ => return Err(bad_length(types::TTL, ttl.len(), 2, MAX_TLV_VALUE)),
    };

    let mut neighbor = LldpNeighbor {
        chassis_id,
        chassis_id_subtype,
        system_name: None,
        port_id,
        port_id_subtype,
        port_description: None,
        mgmt_address: None,
        vlan: None,
        age_secs: 0,
    };
    for t in it {
        let t = t?;
        match t.kind {
            types::END if !t.value.is_empty() => {
                return Err(bad_length(types::END, t.value.len(), 0, 0));
            }
            types::END => break,
            types::CHASSIS_ID | types::PORT_ID | types::TTL => {
                return Err(FrameError::Duplicate { kind: t.kind });
            }
            // The first of each is kept.
            types::PORT_DESCRIPTION if neighbor.port_description.is_none() => {
                neighbor.port_description = Some(text(t.value));
            }
            types::SYSTEM_NAME if neighbor.system_name.is_none() => {
                neighbor.system_name = Some(text(t.value));
            }
            types::MANAGEMENT_ADDRESS if neighbor.mgmt_address.is_none() => {
                neighbor.mgmt_address = mgmt_address(t.value);
            }
            types::ORGANIZATIONAL if neighbor.vlan.is_none() => {
                // IEEE 802.1 (00-80-C2) subtype 1: Port VLAN ID; 0 = none.
                if let [0x00, 0x80, 0xc2, 0x01, hi, lo] = *t.value {
                    neighbor.vlan = Some(u16::from_be_bytes([hi, lo])).filter(|&v| v != 0);
                }
            }
            _ => {}
        }
    }
    Ok(Lldpdu { neighbor, ttl_secs })
}

fn bad_length(kind: u8, len: usize, min: usize, max: usize) -> FrameError {
    FrameError::BadLength {
        kind,
        len,
        min,
        max,
    }
}

/// A Chassis or Port ID TLV's subtype and value, as shown.
fn id(value: &[u8], kind: u8) -> Result<(LldpIdSubtype, String), FrameError> {
    let (tlv, subtype_of): (&'static str, fn(u8) -> Option<LldpIdSubtype>) =
        if kind == types::CHASSIS_ID {
            ("Chassis ID", LldpIdSubtype::chassis)
        } else {
            ("Port ID", LldpIdSubtype::port)
        };
    let [subtype, ref rest @ ..] = *value else {
        return Err(bad_length(kind, value.len(), 2, 256));
    };
    if rest.is_empty() || rest.len() > 255 {
        return Err(bad_length(kind, value.len(), 2, 256));
    }
    let subtype = subtype_of(subtype).ok_or(FrameError::ReservedSubtype { tlv, subtype })?;
    let shown = match subtype {
        LldpIdSubtype::Mac => hex(rest),
        LldpIdSubtype::NetworkAddress => address(rest).unwrap_or_else(|| hex(rest)),
        _ => printable(rest).unwrap_or_else(|| hex(rest)),
    };
    Ok((subtype, shown))
}

/// An IANA address family number and address: IPv4 and IPv6 as text, an
/// 802 (MAC) address in colon form.
fn address(value: &[u8]) -> Option<String> {
    match value {
        [1, a, b, c, d] => Some(Ipv4Addr::new(*a, *b, *c, *d).to_string()),
        [2, rest @ ..] if rest.len() == 16 => {
            let mut octets = [0u8; 16];
            octets.copy_from_slice(rest);
            Some(Ipv6Addr::from(octets).to_string())
        }
        [6, rest @ ..] if rest.len() == 6 => Some(hex(rest)),
        _ => None,
    }
}

/// The address of a Management Address TLV (802.1AB 8.5.9), if it is one
/// [`address`] shows and the TLV's lengths add up.
fn mgmt_address(value: &[u8]) -> Option<String> {
    let (&len, rest) = value.split_first()?;
    let len = usize::from(len);
    // address string length counts the subtype byte: 2..=32.
    if !(2..=32).contains(&len) {
        return None;
    }
    let addr = rest.get(..len)?;
    // Interface numbering subtype (1), number (4), OID length (1), OID.
    let tail = rest.get(len..)?;
    let oid_len = usize::from(*tail.get(5)?);
    if tail.len() != 6 + oid_len {
        return None;
    }
    address(addr)
}

/// `bytes` as text when it is UTF-8 without control characters.
fn printable(bytes: &[u8]) -> Option<String> {
    let s = std::str::from_utf8(bytes).ok()?;
    (!s.chars().any(char::is_control)).then(|| s.to_owned())
}

/// `bytes` as text: invalid UTF-8 and control characters become U+FFFD.
fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes)
        .chars()
        .map(|c| if c.is_control() { '\u{fffd}' } else { c })
        .collect()
}

/// Lower-case hex pairs joined by `:` (a MAC's colon form for 6 bytes).
fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 3);
    for (i, b) in bytes.iter().enumerate() {
        if i > 0 {
            s.push(':');
        }
        s.push(DIGITS[usize::from(b >> 4)] as char);
        s.push(DIGITS[usize::from(b & 15)] as char);
    }
    s
}

#[cfg(test)]
mod tests;
