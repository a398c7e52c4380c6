//! Permanent (burned-in) addresses over rtnetlink: one `RTM_GETLINK` dump
//! of the caller's network namespace, the `IFLA_PERM_ADDRESS` of each
//! interface — what `ethtool -P` and `ip -d link` show.
//!
//! Built on netlink-sys (the socket) and netlink-packet-route (the
//! messages); this crate has no unsafe code of its own. The dump is
//! synchronous: the kernel answers it at once, and the probe needs no async
//! runtime.
//!
//! **Robust to what it does not need.** Only two attributes of each link
//! message are decoded (`IFLA_IFNAME`, `IFLA_PERM_ADDRESS`, each with
//! [`LinkAttribute::parse_with_param`]); the others are skipped without
//! being parsed, so an attribute this crate version cannot decode (a newer
//! kernel's) never costs a NIC its permanent address. Statistics are not
//! requested (`RTEXT_FILTER_SKIP_STATS`), which keeps the dump small.
//!
//! The kernel sends `IFLA_PERM_ADDRESS` only when the device has a non-zero
//! permanent address (Linux ≥ 5.6): virtual interfaces and drivers that do
//! not set one are absent from the map.

use std::collections::HashMap;
use std::fmt;

use burnin_core::Mac;
use netlink_packet_core::{
    Emitable, NLM_F_DUMP, NLM_F_REQUEST, NetlinkBuffer, NetlinkHeader, NetlinkMessage,
    NetlinkPayload, NlaBuffer, NlasIterator, ParseableParametrized,
};
use netlink_packet_route::RouteNetlinkMessage;
use netlink_packet_route::link::{LinkAttribute, LinkExtentMask, LinkHeader, LinkMessage};
use netlink_sys::{Socket, SocketAddr, protocols::NETLINK_ROUTE};

/// `NLMSG_ERROR`.
const NLMSG_ERROR: u16 = 2;
/// `NLMSG_DONE`.
const NLMSG_DONE: u16 = 3;
/// `RTM_NEWLINK`: one interface of the dump.
const RTM_NEWLINK: u16 = 16;
/// `IFLA_IFNAME`.
const IFLA_IFNAME: u16 = 3;
/// `IFLA_PERM_ADDRESS`.
const IFLA_PERM_ADDRESS: u16 = 54;
/// Receive buffer: the kernel fills dump datagrams up to 32 KiB.
const RECV_BYTES: usize = 64 * 1024;
/// A dump of more datagrams than this is refused (a namespace with
/// hundreds of thousands of interfaces, or a kernel that never says done).
const MAX_DATAGRAMS: usize = 4096;

/// Why the dump could not be read; the probe then falls back to sysfs
/// (`bonding_slave/perm_hwaddr`) and warns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetlinkError {
    /// What failed, e.g. `opening a NETLINK_ROUTE socket: Address family not
    /// supported by protocol` (a sandbox without `AF_NETLINK`).
    pub message: String,
}

impl fmt::Display for NetlinkError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "rtnetlink link dump failed: {}", self.message)
    }
}

impl std::error::Error for NetlinkError {}

fn err(what: &str, e: impl fmt::Display) -> NetlinkError {
    NetlinkError {
        message: format!("{what}: {e}"),
    }
}

/// The permanent address of every interface of this network namespace that
/// has a 6-byte one, by interface name.
///
/// # Errors
/// The socket cannot be opened (no `AF_NETLINK` in a sandbox), the request
/// cannot be sent, or the kernel answers with an error.
pub fn permanent_addresses() -> Result<HashMap<String, Mac>, NetlinkError> {
    let mut socket =
        Socket::new(NETLINK_ROUTE).map_err(|e| err("opening a NETLINK_ROUTE socket", e))?;
    socket
        .bind_auto()
        .map_err(|e| err("binding the netlink socket", e))?;
    socket
        .connect(&SocketAddr::new(0, 0))
        .map_err(|e| err("connecting the netlink socket", e))?;

    let mut request = LinkMessage::default();
    request
        .attributes
        .push(LinkAttribute::ExtMask(vec![LinkExtentMask::SkipStats]));
    let mut packet = NetlinkMessage::new(
        NetlinkHeader::default(),
        NetlinkPayload::from(RouteNetlinkMessage::GetLink(request)),
    );
    packet.header.flags = NLM_F_DUMP | NLM_F_REQUEST;
    packet.header.sequence_number = 1;
    packet.finalize();
    let mut out = vec![0; packet.buffer_len()];
    packet.serialize(&mut out);
    socket
        .send(&out, 0)
        .map_err(|e| err("sending RTM_GETLINK", e))?;

    let mut found = HashMap::new();
    let mut buf: Vec<u8> = Vec::with_capacity(RECV_BYTES);
    for _ in 0..MAX_DATAGRAMS {
        buf.clear();
        let len = socket
            .recv(&mut buf, 0)
            .map_err(|e| err("receiving the link dump", e))?;
        if len > buf.len() {
            return Err(err(
                "receiving the link dump",
                format!("a {len}-byte datagram exceeds the {RECV_BYTES}-byte buffer"),
            ));
        }
        if read_datagram(&buf, &mut found)? {
            return Ok(found);
        }
    }
    Err(err(
        "receiving the link dump",
        format!("no end after {MAX_DATAGRAMS} datagrams"),
    ))
}

/// Reads one datagram's messages into `found`; `Ok(true)` at the end of the
/// dump.
fn read_datagram(mut bytes: &[u8], found: &mut HashMap<String, Mac>) -> Result<bool, NetlinkError> {
    while !bytes.is_empty() {
        let msg =
            NetlinkBuffer::new_checked(bytes).map_err(|e| err("reading a netlink message", e))?;
        let len = (msg.length() as usize).max(1);
        match msg.message_type() {
            NLMSG_DONE => return Ok(true),
            NLMSG_ERROR => {
                let code = msg
                    .payload()
                    .get(..4)
                    .map(|b| i32::from_ne_bytes([b[0], b[1], b[2], b[3]]))
                    .unwrap_or_default();
                if code != 0 {
                    return Err(err(
                        "the kernel answered RTM_GETLINK",
                        std::io::Error::from_raw_os_error(-code),
                    ));
                }
            }
            RTM_NEWLINK => link(msg.payload(), found),
            _ => {}
        }
        // Messages are 4-byte aligned within a datagram.
        let next = len.div_ceil(4) * 4;
        bytes = bytes.get(next..).unwrap_or_default();
    }
    Ok(false)
}

/// One `RTM_NEWLINK` payload: its name and permanent address, if both are
/// there and decode.
fn link(payload: &[u8], found: &mut HashMap<String, Mac>) {
    let header_len = LinkHeader::default().buffer_len();
    let Ok(header) = LinkHeader::parse(payload) else {
        return;
    };
    let family = header.interface_family;
    let mut name = None;
    let mut perm = None;
    for nla in NlasIterator::new(payload.get(header_len..).unwrap_or_default()) {
        let Ok(nla) = nla else { break };
        if !matches!(nla.kind(), IFLA_IFNAME | IFLA_PERM_ADDRESS) {
            continue;
        }
        match decode(&nla, family) {
            Some(LinkAttribute::IfName(n)) => name = Some(n),
            Some(LinkAttribute::PermAddress(bytes)) => {
                perm = <[u8; 6]>::try_from(bytes.as_slice()).ok().map(Mac::new)
            }
            _ => {}
        }
    }
    if let (Some(name), Some(mac)) = (name, perm)
        && mac.octets() != [0; 6]
    {
        found.insert(name, mac);
    }
}

fn decode(
    nla: &NlaBuffer<&[u8]>,
    family: netlink_packet_route::AddressFamily,
) -> Option<LinkAttribute> {
    LinkAttribute::parse_with_param(nla, family).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A datagram as the kernel writes it: two links (one with a permanent
    /// address, one without), then DONE.
    fn datagram() -> Vec<u8> {
        let mut out = Vec::new();
        let mut push = |attrs: Vec<LinkAttribute>| {
            let mut m = LinkMessage::default();
            m.attributes = attrs;
            let mut p = NetlinkMessage::new(
                NetlinkHeader::default(),
                NetlinkPayload::from(RouteNetlinkMessage::NewLink(m)),
            );
            p.header.flags = 2;
            p.finalize();
            let mut b = vec![0; p.buffer_len()];
            p.serialize(&mut b);
            out.extend_from_slice(&b);
        };
        push(vec![
            LinkAttribute::IfName("eth0".into()),
            LinkAttribute::Address(vec![2, 0, 0, 0, 0, 9]),
            LinkAttribute::PermAddress(vec![0xe0, 0x18, 0x7d, 0x2e, 0xca, 0x68]),
        ]);
        push(vec![LinkAttribute::IfName("veth0".into())]);
        push(vec![
            LinkAttribute::IfName("ib0".into()),
            LinkAttribute::PermAddress(vec![1; 20]),
        ]);
        // DONE: header only (plus the 4-byte status the kernel adds).
        let mut done = vec![0u8; 20];
        done[..4].copy_from_slice(&20u32.to_ne_bytes());
        done[4..6].copy_from_slice(&NLMSG_DONE.to_ne_bytes());
        out.extend_from_slice(&done);
        out
    }

    #[test]
    fn a_dump_datagram_yields_names_and_permanent_addresses() {
        let mut found = HashMap::new();
        assert!(read_datagram(&datagram(), &mut found).unwrap());
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(found["eth0"].to_string(), "e0:18:7d:2e:ca:68");
    }

    #[test]
    fn truncated_and_error_messages() {
        let d = datagram();
        let mut found = HashMap::new();
        // A truncated datagram is an error, never a panic.
        assert!(read_datagram(&d[..10], &mut found).is_err());
        // An NLMSG_ERROR with -EPERM.
        let mut e = vec![0u8; 36];
        e[..4].copy_from_slice(&36u32.to_ne_bytes());
        e[4..6].copy_from_slice(&NLMSG_ERROR.to_ne_bytes());
        e[16..20].copy_from_slice(&(-1i32).to_ne_bytes());
        let msg = read_datagram(&e, &mut found).unwrap_err().to_string();
        assert!(msg.contains("Operation not permitted"), "{msg}");
    }

    #[test]
    fn the_real_dump_lists_no_zero_or_odd_addresses() {
        // Whatever this machine has: every entry is a usable 6-byte address.
        match permanent_addresses() {
            Ok(map) => {
                for (name, mac) in map {
                    assert!(!name.is_empty());
                    assert_ne!(mac.octets(), [0; 6]);
                }
            }
            Err(e) => eprintln!("skipping: {e}"),
        }
    }
}
