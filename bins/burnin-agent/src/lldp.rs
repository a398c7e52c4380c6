//! The LLDP listener (SPEC §11.1): one raw packet socket per reported
//! interface, feeding [`burnin_lldp::NeighbourTable`]; and the probe that
//! adds what was heard to each report without ever waiting for a frame.
//!
//! Each socket is `AF_PACKET`/`SOCK_RAW` for ethertype 0x88cc. A packet
//! socket cannot be bound to an interface without building a `sockaddr_ll`
//! by hand (unsafe code, which the workspace forbids), and
//! `SO_BINDTODEVICE` does not filter packet sockets; so each socket gets a
//! three-instruction classic BPF filter that accepts frames of its
//! interface's index only (`SKF_AD_IFINDEX`), attached with socket2's safe
//! `attach_filter`, and frames queued before the filter are drained.
//! The interface index comes from `SIOCGIFINDEX` on the socket itself, so
//! it is this network namespace's, whatever the sysfs root.
//!
//! Frames are read on the agent's runtime (tokio `AsyncFd`, one small task
//! per interface) into one 2 KiB buffer per thread; a frame is handled
//! in microseconds under a mutex that a report takes only to copy the
//! neighbours out. Malformed and oversized frames are counted by the table
//! and logged at debug level.
//!
//! Not yet done: the agent does not join the LLDP group address
//! (`01:80:c2:00:00:0e`) with `PACKET_ADD_MEMBERSHIP` as lldpd does, which
//! also needs a hand-built struct. veth pairs and most NICs pass the frames
//! anyway; a NIC whose multicast filter drops them shows no neighbour.

use std::collections::HashSet;
use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

use async_trait::async_trait;
use burnin_core::{Hardware, HardwareProbe, ProbeError};
use burnin_lldp::{ETHERTYPE, FrameError, NeighbourTable, Outcome};
use clap::ValueEnum;
use rustix::net::{AddressFamily, Protocol, RecvFlags, SocketFlags, SocketType};
use socket2::{SockFilter, SockRef};
use tokio::io::unix::AsyncFd;

/// Where LLDP neighbours come from (`--lldp`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum LldpSource {
    /// Listen when the sysfs root is this kernel's `/sys`; in a fixture
    /// tree, read its `burnin_lldp` files instead.
    Auto,
    /// Listen on the reported interfaces' names in this network namespace,
    /// whatever the sysfs root (a fixture tree whose interfaces are veth
    /// pairs of the same names, in tests).
    Listen,
    /// Do not listen (`lldp` is left out, fixture files still read).
    Off,
}

/// Receive buffer per interface: a frame longer than this is oversized
/// (an LLDPDU is at most 1500 bytes plus an 18-byte header).
const BUFFER: usize = 2048;

thread_local! {
    static FRAME: std::cell::RefCell<[u8; BUFFER]> = const { std::cell::RefCell::new([0; BUFFER]) };
}

/// The neighbours heard so far, shared by the listening tasks and reports.
#[derive(Debug, Clone, Default)]
pub(crate) struct Heard {
    table: Arc<Mutex<NeighbourTable>>,
    started: Arc<Mutex<HashSet<String>>>,
    refused: Arc<std::sync::atomic::AtomicBool>,
}

impl Heard {
    /// Starts listening on `ifname` unless it already is (or listening was
    /// refused once: no `CAP_NET_RAW`, said once in the log). Must run in
    /// the agent's tokio runtime.
    pub(crate) fn listen(&self, ifname: &str) {
        use std::sync::atomic::Ordering;
        if self.refused.load(Ordering::Relaxed) {
            return;
        }
        {
            let mut started = self.started.lock().unwrap_or_else(PoisonError::into_inner);
            if !started.insert(ifname.to_owned()) {
                return;
            }
        }
        match open(ifname) {
            Ok(fd) => {
                self.lock().listen(ifname);
                tracing::debug!(interface = ifname, "listening for LLDP frames");
                tokio::spawn(read_frames(ifname.to_owned(), fd, self.table.clone()));
            }
            Err(e) if is_refused(&e) => {
                self.refused.store(true, Ordering::Relaxed);
                tracing::warn!(
                    "not listening for LLDP neighbours: opening a raw packet socket was refused \
                     ({e}); grant CAP_NET_RAW (the packaged unit does) to report them; \
                     replies leave out lldp"
                );
            }
            Err(e) => {
                tracing::warn!(
                    interface = ifname,
                    "not listening for LLDP neighbours on {ifname}: {e}"
                );
            }
        }
    }

    /// Adds the neighbours heard so far to every interface that has none
    /// from its source (a fixture file): never waits for a frame.
    pub(crate) fn fill(&self, hw: &mut Hardware) {
        let now = Instant::now();
        let table = self.lock();
        for i in &mut hw.interfaces {
            if i.lldp.is_none() {
                i.lldp = table.neighbours(&i.interface, now);
            }
        }
    }

    /// What the table counted.
    pub(crate) fn stats(&self) -> burnin_lldp::Stats {
        self.lock().stats()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, NeighbourTable> {
        self.table.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

fn is_refused(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::PermissionDenied | io::ErrorKind::Unsupported
    ) || e.raw_os_error() == Some(1) // EPERM
        || e.raw_os_error() == Some(97) // EAFNOSUPPORT (RestrictAddressFamilies)
}

/// A non-blocking packet socket receiving LLDP frames of `ifname` only.
fn open(ifname: &str) -> io::Result<OwnedFd> {
    let protocol = std::num::NonZeroU32::new(u32::from(ETHERTYPE.to_be()))
        .map(Protocol::from_raw)
        .ok_or_else(|| io::Error::other("ethertype 0"))?;
    let fd = rustix::net::socket_with(
        AddressFamily::PACKET,
        SocketType::RAW,
        SocketFlags::NONBLOCK | SocketFlags::CLOEXEC,
        Some(protocol),
    )?;
    let index = rustix::net::netdevice::name_to_index(&fd, ifname)?;
    SockRef::from(&fd).attach_filter(&only_interface(index))?;
    // Frames of any interface may have arrived before the filter.
    let mut buf = [0u8; BUFFER];
    while rustix::net::recv(&fd, &mut buf[..], RecvFlags::empty()).is_ok() {}
    Ok(fd)
}

/// `ld ifidx; jeq #index, accept, drop` (classic BPF).
fn only_interface(index: u32) -> [SockFilter; 4] {
    const LD_W_ABS: u16 = 0x20;
    const JEQ_K: u16 = 0x15;
    const RET_K: u16 = 0x06;
    // SKF_AD_OFF (-0x1000) + SKF_AD_IFINDEX (8).
    const AD_IFINDEX: u32 = 0xffff_f000 + 8;
    [
        SockFilter::new(LD_W_ABS, 0, 0, AD_IFINDEX),
        SockFilter::new(JEQ_K, 0, 1, index),
        SockFilter::new(RET_K, 0, 0, u32::MAX),
        SockFilter::new(RET_K, 0, 0, 0),
    ]
}

async fn read_frames(ifname: String, fd: OwnedFd, table: Arc<Mutex<NeighbourTable>>) {
    // `AsyncFd::new` is deprecated because a `T` that does not own its
    // descriptor could close it while registered; an `OwnedFd` owns it for
    // as long as the AsyncFd lives, which is the contract `register` (the
    // unsafe replacement) states.
    #[allow(deprecated)]
    let fd = match AsyncFd::new(fd) {
        Ok(fd) => fd,
        Err(e) => {
            tracing::warn!(interface = %ifname, "not listening for LLDP neighbours on {ifname}: {e}");
            return;
        }
    };
    loop {
        let mut ready = match fd.readable().await {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!(interface = %ifname, "stopped listening for LLDP on {ifname}: {e}");
                return;
            }
        };
        // Read and handled at once, in the one buffer of this thread (the
        // agent's runtime has one), so listening costs no buffer per
        // interface.
        let read = ready.try_io(|fd| {
            FRAME.with_borrow_mut(|buf| {
                let (_, len) =
                    rustix::net::recv(fd.get_ref().as_fd(), &mut buf[..], RecvFlags::TRUNC)?;
                let now = Instant::now();
                let mut t = table.lock().unwrap_or_else(PoisonError::into_inner);
                Ok(if len > buf.len() {
                    Err(t.handle_oversized(len))
                } else {
                    t.handle_frame(&ifname, &buf[..len], now)
                })
            })
        });
        let outcome = match read {
            Ok(Ok(outcome)) => outcome,
            Ok(Err(e)) => {
                tracing::warn!(interface = %ifname, "stopped listening for LLDP on {ifname}: {e}");
                return;
            }
            Err(_would_block) => continue,
        };
        log_frame(&ifname, outcome);
    }
}

fn log_frame(ifname: &str, outcome: Result<Outcome, FrameError>) {
    match outcome {
        Ok(Outcome::Added) => tracing::info!(interface = ifname, "new LLDP neighbour"),
        Ok(Outcome::OverLimit) => tracing::debug!(
            interface = ifname,
            "LLDP neighbour not kept: {} already on {ifname}",
            burnin_lldp::MAX_NEIGHBOURS
        ),
        Ok(_) => {}
        Err(e) => tracing::debug!(interface = ifname, "LLDP frame dropped: {e}"),
    }
}

/// The sysfs probe plus the neighbours heard: what `run` answers with.
#[derive(Debug, Clone)]
pub(crate) struct ListeningProbe<P> {
    pub(crate) inner: P,
    pub(crate) heard: Option<Heard>,
}

#[async_trait]
impl<P: HardwareProbe> HardwareProbe for ListeningProbe<P> {
    async fn probe(&self) -> Result<Hardware, ProbeError> {
        let mut hw = self.inner.probe().await?;
        if let Some(heard) = &self.heard {
            // A card hot-plugged since the start is listened on from now.
            for i in &hw.interfaces {
                heard.listen(&i.interface);
            }
            heard.fill(&mut hw);
        }
        Ok(hw)
    }
}
