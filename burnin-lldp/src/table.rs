//! The neighbour table: the latest frame per (interface, chassis, port)
//! until its TTL runs out.

use std::time::{Duration, Instant};

use burnin_core::LldpNeighbor;

use crate::{FrameError, Lldpdu, lldpdu_of, parse};

/// Neighbours kept per interface. One switch port has one neighbour; a few
/// more cover a hub or a media converter that passes LLDP on. Frames from
/// more are counted ([`Stats::over_limit`]) and dropped, so a device that
/// makes up chassis ids cannot grow the agent's memory.
pub const MAX_NEIGHBOURS: usize = 8;

/// What the table did with frames, since it was made.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    /// Frames handed in.
    pub frames: u64,
    /// Frames kept (a new neighbour or a newer frame of a known one).
    pub accepted: u64,
    /// Shutdown frames (TTL 0) that removed a neighbour.
    pub shutdowns: u64,
    /// Frames dropped as malformed or truncated.
    pub malformed: u64,
    /// Frames dropped as larger than [`crate::MAX_LLDPDU`].
    pub oversized: u64,
    /// Frames of a new neighbour dropped because its interface already
    /// had [`MAX_NEIGHBOURS`].
    pub over_limit: u64,
    /// Frames for an interface the table does not listen on.
    pub unknown_interface: u64,
}

/// What one frame did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Outcome {
    /// A neighbour not heard before (or since it expired).
    Added,
    /// A newer frame of a known neighbour.
    Refreshed,
    /// A shutdown frame (TTL 0) removed it (or it was not known).
    Removed,
    /// A new neighbour on an interface already at [`MAX_NEIGHBOURS`]: not
    /// kept, counted.
    OverLimit,
    /// The interface is not listened on: not kept, counted.
    UnknownInterface,
}

#[derive(Debug, Clone)]
struct Entry {
    neighbor: LldpNeighbor,
    received: Instant,
    expires: Instant,
}

#[derive(Debug, Clone)]
struct Interface {
    name: String,
    neighbours: Vec<Entry>,
}

/// The neighbours heard per interface (see the [crate docs](crate)).
///
/// Methods that depend on time take `now`; the table never reads a clock.
#[derive(Debug, Clone, Default)]
pub struct NeighbourTable {
    interfaces: Vec<Interface>,
    stats: Stats,
}

impl NeighbourTable {
    /// An empty table listening on no interface.
    pub fn new() -> Self {
        NeighbourTable::default()
    }

    /// Starts keeping neighbours of `ifname` (its report then has `[]`
    /// until something is heard).
    pub fn listen(&mut self, ifname: &str) {
        if self.interface(ifname).is_none() {
            self.interfaces.push(Interface {
                name: ifname.to_owned(),
                neighbours: Vec::new(),
            });
        }
    }

    /// Whether [`listen`](Self::listen) was called for `ifname`.
    pub fn is_listening(&self, ifname: &str) -> bool {
        self.interface(ifname).is_some()
    }

    /// The counters.
    pub fn stats(&self) -> Stats {
        self.stats
    }

    /// Handles a whole Ethernet frame received on `ifname` at `now`.
    pub fn handle_frame(
        &mut self,
        ifname: &str,
        frame: &[u8],
        now: Instant,
    ) -> Result<Outcome, FrameError> {
        self.stats.frames += 1;
        let heard = lldpdu_of(frame).and_then(parse);
        self.handle_parsed(ifname, heard, now)
    }

    /// Handles one LLDPDU (no Ethernet header) received on `ifname` at
    /// `now`.
    pub fn handle_lldpdu(
        &mut self,
        ifname: &str,
        lldpdu: &[u8],
        now: Instant,
    ) -> Result<Outcome, FrameError> {
        self.stats.frames += 1;
        self.handle_parsed(ifname, parse(lldpdu), now)
    }

    /// Counts a frame the caller could not take whole (longer than its
    /// receive buffer): dropped as oversized.
    pub fn handle_oversized(&mut self, len: usize) -> FrameError {
        self.stats.frames += 1;
        self.stats.oversized += 1;
        FrameError::Oversized {
            len,
            limit: crate::MAX_LLDPDU,
        }
    }

    fn handle_parsed(
        &mut self,
        ifname: &str,
        heard: Result<Lldpdu, FrameError>,
        now: Instant,
    ) -> Result<Outcome, FrameError> {
        let heard = match heard {
            Ok(h) => h,
            Err(e) => {
                match e {
                    FrameError::Oversized { .. } => self.stats.oversized += 1,
                    _ => self.stats.malformed += 1,
                }
                return Err(e);
            }
        };
        let Some(at) = self.interfaces.iter().position(|i| i.name == ifname) else {
            self.stats.unknown_interface += 1;
            return Ok(Outcome::UnknownInterface);
        };
        let list = &mut self.interfaces[at].neighbours;
        list.retain(|e| e.expires > now);
        let same = |e: &Entry| {
            e.neighbor.chassis_id == heard.neighbor.chassis_id
                && e.neighbor.chassis_id_subtype == heard.neighbor.chassis_id_subtype
                && e.neighbor.port_id == heard.neighbor.port_id
                && e.neighbor.port_id_subtype == heard.neighbor.port_id_subtype
        };
        let known = list.iter().position(same);
        if heard.ttl_secs == 0 {
            if let Some(i) = known {
                list.remove(i);
            }
            self.stats.shutdowns += 1;
            return Ok(Outcome::Removed);
        }
        let entry = Entry {
            expires: now + Duration::from_secs(u64::from(heard.ttl_secs)),
            received: now,
            neighbor: heard.neighbor,
        };
        match known {
            Some(i) => {
                list[i] = entry;
                self.stats.accepted += 1;
                Ok(Outcome::Refreshed)
            }
            None if list.len() >= MAX_NEIGHBOURS => {
                self.stats.over_limit += 1;
                Ok(Outcome::OverLimit)
            }
            None => {
                // Kept in (chassis, port) order, so reports are stable.
                let key = |e: &Entry| (e.neighbor.chassis_id.clone(), e.neighbor.port_id.clone());
                let k = key(&entry);
                let i = list.partition_point(|e| key(e) < k);
                list.insert(i, entry);
                self.stats.accepted += 1;
                Ok(Outcome::Added)
            }
        }
    }

    /// Forgets every neighbour whose TTL has run out by `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
        for i in &mut self.interfaces {
            i.neighbours.retain(|e| e.expires > now);
        }
    }

    /// When the next neighbour expires, if any is kept.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.interfaces
            .iter()
            .flat_map(|i| i.neighbours.iter().map(|e| e.expires))
            .min()
    }

    /// The neighbours of `ifname` alive at `now`, with their age; `None`
    /// when the table does not listen on it (the report leaves `lldp` out).
    pub fn neighbours(&self, ifname: &str, now: Instant) -> Option<Vec<LldpNeighbor>> {
        let i = self.interface(ifname)?;
        Some(
            i.neighbours
                .iter()
                .filter(|e| e.expires > now)
                .map(|e| LldpNeighbor {
                    age_secs: now.saturating_duration_since(e.received).as_secs(),
                    ..e.neighbor.clone()
                })
                .collect(),
        )
    }

    fn interface(&self, ifname: &str) -> Option<&Interface> {
        self.interfaces.iter().find(|i| i.name == ifname)
    }
}
