//! # burnin-sysfs
//!
//! The hardware probe of burnin: what a device reports about itself, read
//! from a sysfs tree (`/sys`, or any directory laid out the same way).
//!
//! [`SysfsProbe`] implements [`burnin_core::HardwareProbe`]. It reports
//!
//! * every **network interface backed by a PCI device** (SPEC §3): an entry of
//!   `class/net` whose `device` link leads to a device whose `subsystem`
//!   resolves to `bus/pci`, or, for virtio NICs, to `bus/virtio` while the
//!   virtio device's parent directory is itself a PCI device. The reported
//!   slot is that PCI device's directory name (`0000:04:00.0`). Interfaces
//!   without a `device` link (lo, bridges, bond masters, vlans, veth, docker,
//!   tun) and those on other buses (USB NICs) are not scanned.
//!   A bond member reports `bonding_slave/perm_hwaddr`, its own permanent
//!   address, never the bond's shared address in `address`;
//! * for each of those interfaces (SPEC §10.1): its **permanent address**
//!   (`permaddr`, see below), `addr_assign_type`, and its **link**:
//!   `carrier`, `operstate` and `speed` (Mbit/s). A link value that cannot
//!   be read is `null`, never a warning (the kernel refuses `carrier` and
//!   `speed` while an interface is down), and a speed of -1 (unknown) is
//!   `null`. [`SysfsProbe::interface_facts`] reads the same facts for any
//!   interface, scanned or not;
//! * every **PCI device** of `bus/pci/devices` with vendor, device, class and
//!   driver (the name of the `driver` link's target, `None` when unbound),
//!   and its **PCIe link** (`pcieLink`, SPEC §11.1) from
//!   `current_link_speed`, `current_link_width`, `max_link_speed` and
//!   `max_link_width`, each as the kernel writes it and absent where it has
//!   none;
//! * in a fixture tree, each interface's **LLDP neighbours** from
//!   [`FIXTURE_LLDP_FILE`] (on `/sys`, `burnin-agent` listens for them);
//! * the **serial number**: the one configured with
//!   [`SysfsProbe::with_serial`] (`--serial`), else the first usable value of
//!   `class/dmi/id/product_serial`, `board_serial`, `chassis_serial`,
//!   skipping empty files and firmware placeholders ([`PLACEHOLDER_SERIALS`]);
//! * the **host name** ([`Hostname`]).
//!
//! ## Permanent addresses
//!
//! The burned-in address the factory programmed is what MES recorded; the
//! current address (`address`) can be changed by software (bonding,
//! NetworkManager or systemd-networkd MAC policies, udev, `ip link set
//! address`). The kernel tells the permanent one over rtnetlink only
//! (`IFLA_PERM_ADDRESS`, what `ethtool -P` and `ip -d link` show), so
//! where it comes from depends on the root ([`PermanentSource`]):
//!
//! * **`/sys`** (the root resolves to it): one `RTM_GETLINK` dump of the
//!   probe's network namespace ([`netlink`]), made once per scan and only if
//!   there is a PCI NIC; else a bond member's `bonding_slave/perm_hwaddr`.
//!   If netlink cannot be used (a sandbox without `AF_NETLINK`), the scan
//!   says so in one [`Warning`] ([`Subject::PermanentAddresses`]) and
//!   goes on with `perm_hwaddr`.
//! * **Any other root** is not this kernel's tree (a fixture, a copy), so
//!   this kernel's netlink facts are never mixed in. A fixture carries a
//!   permanent address in `class/net/<if>/burnin_permaddr`
//!   ([`FIXTURE_PERMADDR_FILE`], one MAC as in `address`; see
//!   `burnin_testkit::fixture::Fixture::permaddr`), else a bond member's `perm_hwaddr`. A
//!   `burnin_permaddr` that does not hold a MAC is a [`Warning`] and the
//!   interface is left out, like a bad `address`.
//!
//! An all-zero permanent address means none. A **bond member** keeps
//! reporting `perm_hwaddr` as its `macaddr` (SPEC §3, so an older edge
//! still compares the card's own address) and reports it as `permaddr` too.
//!
//! ## Rules the probe keeps
//!
//! * **Bounded reads.** No file is read past [`MAX_FILE_BYTES`] (4 KiB);
//!   a larger file, or one that is not UTF-8, is a [`Problem`].
//! * **Confined to the root.** Every link is resolved (canonicalized) before
//!   use, and a path that resolves outside the sysfs root is never read:
//!   the interface or PCI device it belongs to is skipped with a
//!   [`Warning`] ([`Problem::OutsideRoot`]).
//! * **Tolerant of hot-plug.** An interface or PCI device that vanishes while
//!   it is being read (any of its files disappears *and* its entry is gone)
//!   is left out silently: it no longer exists.
//! * **Bad address → skipped and warned, never guessed.** An interface whose
//!   address file is unreadable, too large, not UTF-8 or not a 6-byte MAC is
//!   left out of [`Hardware::interfaces`] and listed in [`Scan::warnings`]
//!   with the interface's name, the file and what it held. Leaving it out
//!   means the card shows as *missing* when the edge compares with MES (MES's
//!   MAC gets `scanstatus` "0"), so the device fails as it should; the
//!   warning says why. (An address that parses but is all-zero, broadcast or
//!   multicast *is* reported, SPEC §3: the comparison then never matches it.)
//!   [`HardwareProbe::probe`] logs each warning with `tracing::warn!`;
//!   `burnin-agent probe` prints them on stderr.
//! * **Order.** Interfaces are sorted by name, PCI devices by slot (string
//!   order, which is numeric order for the kernel's fixed-width slot names).
//! * **Host name.** A host name that cannot be read is a warning and is
//!   reported as the empty string: it is informational, and must not stop a
//!   device's MACs from being checked.
//!
//! Failures that stop the probe are [`SysfsError`]s: the root (or its
//! `class/net`) cannot be read, or no serial number could be found. They
//! convert into [`burnin_core::ProbeError`].
//!
//! The probe does blocking file reads (and, on `/sys`, one blocking
//! netlink dump) inside its `async fn`, so the crate stays free of any
//! async runtime. A scan reads small files only: a typical device takes
//! well under a millisecond, and a large one (64 NICs, 256 PCI devices,
//! `benches/probe.rs`) a few milliseconds (figures in the README). A caller whose runtime
//! must not block that long can run [`SysfsProbe::scan`] on a blocking
//! thread instead.
//!
//! ## Getting started
//!
//! ```no_run
//! use burnin_sysfs::SysfsProbe;
//!
//! let scan = SysfsProbe::new("/sys").scan()?;
//! for w in &scan.warnings {
//!     eprintln!("warning: {w}");
//! }
//! for i in &scan.hardware.interfaces {
//!     println!("{} {} at {}", i.interface, i.macaddr, i.pci.slot);
//! }
//! # Ok::<(), burnin_sysfs::SysfsError>(())
//! ```
//!
//! `burnin_testkit::fixture::Fixture` lays out sysfs-like trees the way
//! the kernel does, for tests, harnesses and benchmarks.

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};

use std::collections::HashMap;

use async_trait::async_trait;
use burnin_core::{
    AddrAssignType, Hardware, HardwareProbe, InterfaceReport, LinkState, Mac, PciDevice, PcieLink,
    ProbeError, SerialNumber,
};

pub mod netlink;
mod read;
mod serial;

/// The probe's file-content parsing without the file system, for the fuzz
/// targets (`fuzz/`, `burnin-fuzz-replay`): each function takes a file's raw
/// bytes and runs exactly the code a scan runs on them. Not part of the
/// supported API.
#[doc(hidden)]
pub mod fuzz {
    use std::path::Path;

    use burnin_core::{Mac, SerialNumber};

    use crate::{Problem, Rejected};

    /// Any small attribute file (`vendor`, `device`, `class`): its text.
    pub fn attribute(bytes: &[u8]) -> Result<String, Problem> {
        crate::read::text_of(bytes.to_vec())
    }

    /// An interface's `address` or `bonding_slave/perm_hwaddr` file.
    pub fn address(bytes: &[u8]) -> Result<Mac, Problem> {
        crate::address_of(&attribute(bytes)?)
    }

    /// A DMI serial file (`product_serial`, ...).
    pub fn dmi_serial(bytes: &[u8]) -> Result<SerialNumber, Rejected> {
        crate::serial::judge(attribute(bytes).map_err(Rejected::Unreadable)?)
    }

    /// A host name file: `None` when it holds no name.
    pub fn hostname(bytes: &[u8]) -> Result<Option<String>, Problem> {
        Ok(crate::hostname_of(&attribute(bytes)?))
    }

    /// The driver name reported for a `driver` link resolving to `target`.
    pub fn driver_name(target: &str) -> String {
        crate::read::name_of(Path::new(target))
    }
}

pub use read::MAX_FILE_BYTES;
pub use serial::{DMI_SERIAL_FILES, PLACEHOLDER_SERIALS, Rejected, SerialAttempt, is_placeholder};

use read::{Fault, Tree, name_of, read_bounded};

/// The default sysfs root.
pub const DEFAULT_ROOT: &str = "/sys";

/// The file a sysfs tree that is not this kernel's (a fixture) may hold in
/// an interface's directory, `class/net/<if>/burnin_permaddr`, to give that
/// interface a permanent address: one MAC, as in `address`. The kernel
/// writes no such file; it is read only with [`PermanentSource::Files`].
pub const FIXTURE_PERMADDR_FILE: &str = "burnin_permaddr";

/// The file a fixture tree may hold in an interface's directory,
/// `class/net/<if>/burnin_lldp`, to give that interface LLDP neighbours
/// (SPEC §11.1): one LLDPDU per line as hex (the TLVs from Chassis ID to
/// End, no Ethernet header), each heard at age 0. Without the file the
/// interface reports no `lldp` (not listened on); an empty file reports
/// `[]`. Read with [`PermanentSource::Files`] only, like
/// [`FIXTURE_PERMADDR_FILE`]; on `/sys` the agent's listener hears them.
pub const FIXTURE_LLDP_FILE: &str = "burnin_lldp";

/// Where permanent addresses come from (see the [crate docs](crate)).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum PermanentSource {
    /// [`Netlink`](Self::Netlink) when the root is this kernel's `/sys`
    /// (after resolving links), else [`Files`](Self::Files).
    #[default]
    Auto,
    /// rtnetlink `IFLA_PERM_ADDRESS` of the probe's network namespace, else
    /// a bond member's `bonding_slave/perm_hwaddr`.
    Netlink,
    /// The tree's files only: [`FIXTURE_PERMADDR_FILE`], else
    /// `bonding_slave/perm_hwaddr`. Never mixes in this kernel's netlink
    /// facts, so a fixture tree reports only what it holds.
    Files,
}

/// Link and address facts of one interface, read from its `class/net`
/// directory (any interface, scanned or not); every value is `None` when
/// its file is missing, unreadable or unparsable.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct InterfaceFacts {
    /// `addr_assign_type`.
    pub addr_assign_type: Option<AddrAssignType>,
    /// `carrier`, `operstate` and `speed` (a speed of -1 or below is
    /// `None`).
    pub link: LinkState,
}

/// Where the host name comes from.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Hostname {
    /// The kernel's: `/proc/sys/kernel/hostname`, else `/etc/hostname`.
    #[default]
    Kernel,
    /// The first line of this file.
    File(PathBuf),
    /// This name (tests, simulated devices).
    Fixed(String),
}

/// The hardware probe over a sysfs root.
///
/// ```no_run
/// use burnin_sysfs::{Hostname, SysfsProbe};
/// let probe = SysfsProbe::new("/sys")
///     .with_serial("Q186I15901".parse()?)
///     .with_hostname(Hostname::Fixed("dut-17".into()));
/// let hardware = probe.scan()?.hardware;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone)]
pub struct SysfsProbe {
    root: PathBuf,
    serial: Option<SerialNumber>,
    hostname: Hostname,
    permanent: PermanentSource,
}

impl Default for SysfsProbe {
    fn default() -> Self {
        SysfsProbe::new(DEFAULT_ROOT)
    }
}

/// What one scan found: the hardware facts and what had to be skipped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scan {
    /// The facts reported to the edge.
    pub hardware: Hardware,
    /// Interfaces and PCI devices left out, and other oddities, each naming
    /// the file and the problem.
    pub warnings: Vec<Warning>,
}

/// Something the probe skipped, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Warning {
    /// What was affected.
    pub subject: Subject,
    /// The file or link at fault.
    pub path: PathBuf,
    /// What was wrong with it.
    pub problem: Problem,
}

/// What a [`Warning`] is about.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Subject {
    /// A network interface, left out of the report.
    Interface(String),
    /// A PCI device (slot), left out of the report.
    PciDevice(String),
    /// The host name, reported as the empty string.
    Hostname,
    /// Permanent addresses over rtnetlink: interfaces are reported with
    /// `bonding_slave/perm_hwaddr` or no permanent address.
    PermanentAddresses,
    /// A fixture interface's LLDP neighbours ([`FIXTURE_LLDP_FILE`]): the
    /// file or one of its lines is left out.
    Lldp(String),
}

/// What was wrong with a file or link.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Problem {
    /// It could not be read.
    #[error("cannot be read: {error}")]
    Unreadable {
        /// The operating system's message.
        error: String,
    },
    /// It does not exist although its interface or device still does.
    #[error("does not exist")]
    Missing,
    /// It is empty.
    #[error("is empty")]
    Empty,
    /// It is larger than the read limit.
    #[error("is larger than {limit} bytes")]
    TooLarge {
        /// The limit, [`MAX_FILE_BYTES`].
        limit: u64,
    },
    /// It is not UTF-8 text.
    #[error("is not UTF-8 text")]
    NotUtf8,
    /// It is a link that resolves outside the sysfs root.
    #[error("resolves to {}, outside the sysfs root; not followed", target.display())]
    OutsideRoot {
        /// Where it leads.
        target: PathBuf,
    },
    /// A line of a fixture's [`FIXTURE_LLDP_FILE`] is not a hex LLDPDU.
    #[error("line {line} {why}; dropped")]
    BadLldpdu {
        /// The line (1-based).
        line: usize,
        /// What is wrong with it.
        why: String,
    },
    /// It does not hold a 6-byte MAC address.
    #[error("holds {content:?}, which is not a 6-byte MAC address")]
    NotAMac {
        /// Its content (trimmed, at most 64 characters).
        content: String,
    },
}

impl fmt::Display for Warning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.subject {
            Subject::Interface(name) => write!(f, "interface {name} not reported: ")?,
            Subject::PciDevice(slot) => write!(f, "PCI device {slot} not reported: ")?,
            Subject::Hostname => write!(f, "host name reported as \"\": ")?,
            Subject::PermanentAddresses => {
                write!(f, "permanent addresses not read from the kernel: ")?
            }
            Subject::Lldp(name) => write!(f, "LLDP neighbours of {name}: ")?,
        }
        write!(f, "{} {}", self.path.display(), self.problem)
    }
}

/// A failure that stops the probe.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SysfsError {
    /// The sysfs root, or a directory every sysfs tree has, cannot be read.
    #[error(
        "cannot read {}: {source}; check the sysfs root (--sysfs-root, default /sys)",
        path.display()
    )]
    RootUnreadable {
        /// The directory.
        path: PathBuf,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// No configured serial and no usable DMI serial.
    #[error(
        "no usable serial number: {}; pass this device's serial number with --serial \
         (or BURNIN_SERIAL)",
        attempts.iter().map(ToString::to_string).collect::<Vec<_>>().join("; ")
    )]
    NoSerial {
        /// Each DMI file read, and why it was not used.
        attempts: Vec<SerialAttempt>,
    },
}

impl From<SysfsError> for ProbeError {
    fn from(e: SysfsError) -> Self {
        match e {
            SysfsError::RootUnreadable { .. } => ProbeError::Unreadable(e.to_string()),
            SysfsError::NoSerial { .. } => ProbeError::NoSerial(e.to_string()),
        }
    }
}

impl SysfsProbe {
    /// A probe of the sysfs tree at `root`, with the serial number from DMI
    /// and the kernel's host name.
    pub fn new(root: impl Into<PathBuf>) -> Self {
        SysfsProbe {
            root: root.into(),
            serial: None,
            hostname: Hostname::Kernel,
            permanent: PermanentSource::Auto,
        }
    }

    /// Chooses where permanent addresses come from (default
    /// [`PermanentSource::Auto`]).
    pub fn with_permanent_source(mut self, source: PermanentSource) -> Self {
        self.permanent = source;
        self
    }

    /// The source [`PermanentSource::Auto`] resolves to for this root:
    /// [`PermanentSource::Netlink`] iff the root resolves to `/sys`.
    pub fn permanent_source(&self) -> PermanentSource {
        match self.permanent {
            PermanentSource::Auto => {
                let real = std::fs::canonicalize(&self.root).unwrap_or_else(|_| self.root.clone());
                if real == Path::new(DEFAULT_ROOT) {
                    PermanentSource::Netlink
                } else {
                    PermanentSource::Files
                }
            }
            other => other,
        }
    }

    /// The address and link facts of interface `ifname` (scanned or not),
    /// read exactly as a scan reads them. Values that cannot be read are
    /// `None`; an interface that does not exist has only `None`s.
    pub fn interface_facts(&self, ifname: &str) -> InterfaceFacts {
        match Tree::open(&self.root) {
            Ok(tree) => match tree.resolve(&self.root.join("class/net").join(ifname)) {
                Ok(dir) => facts(&tree, &dir),
                Err(_) => InterfaceFacts::default(),
            },
            Err(_) => InterfaceFacts::default(),
        }
    }

    /// Reports `sn` instead of reading DMI (`--serial`).
    pub fn with_serial(mut self, sn: SerialNumber) -> Self {
        self.serial = Some(sn);
        self
    }

    /// Takes the host name from `source`.
    pub fn with_hostname(mut self, source: Hostname) -> Self {
        self.hostname = source;
        self
    }

    /// The sysfs root as configured.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Reads everything once.
    pub fn scan(&self) -> Result<Scan, SysfsError> {
        let tree = Tree::open(&self.root).map_err(|source| SysfsError::RootUnreadable {
            path: self.root.clone(),
            source,
        })?;
        // Paths are built on the root as given, so warnings show them the way
        // the user wrote it; every read resolves them inside the tree.
        let class_net = self.root.join("class/net");
        let mut names = list_dir(&class_net).map_err(|source| SysfsError::RootUnreadable {
            path: self.root.join("class/net"),
            source,
        })?;
        names.sort();

        let sn = match &self.serial {
            Some(sn) => sn.clone(),
            None => {
                serial::from_dmi(&tree).map_err(|attempts| SysfsError::NoSerial { attempts })?
            }
        };

        let mut warnings = Vec::new();
        let buses = Buses::of(&tree);
        let mut permanent = Permanent::new(self.permanent_source());

        let mut interfaces = Vec::new();
        for name in names {
            let entry = class_net.join(&name);
            match interface(
                &tree,
                &buses,
                &self.root,
                &entry,
                &name,
                &mut permanent,
                &mut warnings,
            ) {
                Ok(Some(report)) => interfaces.push(report),
                Ok(None) => {}
                Err((path, problem)) => {
                    if still_there(&entry) {
                        warnings.push(Warning {
                            subject: Subject::Interface(name),
                            path,
                            problem,
                        });
                    }
                }
            }
        }

        let pci_root = self.root.join("bus/pci/devices");
        let mut slots = match list_dir(&pci_root) {
            Ok(slots) => slots,
            // A machine without PCI has no bus/pci.
            Err(e) if e.kind() == io::ErrorKind::NotFound => Vec::new(),
            Err(source) => {
                return Err(SysfsError::RootUnreadable {
                    path: self.root.join("bus/pci/devices"),
                    source,
                });
            }
        };
        slots.sort();
        let mut pci_devices = Vec::new();
        for slot in slots {
            let entry = pci_root.join(&slot);
            let result = match tree.resolve(&entry) {
                Ok(dir) => pci_device(&tree, &dir, &entry),
                Err(fault) => Err((entry.clone(), fault)),
            };
            match result {
                Ok(dev) => pci_devices.push(dev),
                Err((_, Fault::Missing)) if !still_there(&entry) => {}
                Err((path, fault)) => warnings.push(Warning {
                    subject: Subject::PciDevice(slot),
                    path,
                    problem: problem_of(fault),
                }),
            }
        }

        if let Some(Err(e)) = permanent.netlink {
            warnings.push(Warning {
                subject: Subject::PermanentAddresses,
                path: PathBuf::from("rtnetlink RTM_GETLINK"),
                problem: Problem::Unreadable { error: e.message },
            });
        }

        let hostname = match self.hostname() {
            Ok(h) => h,
            Err((path, problem)) => {
                warnings.push(Warning {
                    subject: Subject::Hostname,
                    path,
                    problem,
                });
                String::new()
            }
        };

        Ok(Scan {
            hardware: Hardware {
                sn,
                hostname,
                interfaces,
                pci_devices,
            },
            warnings,
        })
    }

    fn hostname(&self) -> Result<String, (PathBuf, Problem)> {
        let files: Vec<PathBuf> = match &self.hostname {
            Hostname::Fixed(name) => return Ok(name.clone()),
            Hostname::File(path) => vec![path.clone()],
            Hostname::Kernel => vec!["/proc/sys/kernel/hostname".into(), "/etc/hostname".into()],
        };
        let mut last = None;
        for path in files {
            match read_bounded(&path) {
                Ok(text) => {
                    if let Some(name) = hostname_of(&text) {
                        return Ok(name);
                    }
                    last = Some((path, Problem::Empty));
                }
                Err(fault) => last = Some((path, problem_of(fault))),
            }
        }
        Err(last.unwrap_or_else(|| (PathBuf::new(), Problem::Missing)))
    }
}

#[async_trait]
impl HardwareProbe for SysfsProbe {
    /// Scans once; each [`Warning`] is logged with `tracing::warn!`.
    async fn probe(&self) -> Result<Hardware, ProbeError> {
        let scan = self.scan()?;
        for w in &scan.warnings {
            tracing::warn!(root = %self.root.display(), "{w}");
        }
        Ok(scan.hardware)
    }
}

/// The canonical bus directories interfaces are classified by.
struct Buses {
    pci: Option<PathBuf>,
    virtio: Option<PathBuf>,
}

impl Buses {
    fn of(tree: &Tree) -> Buses {
        let bus = |name: &str| tree.resolve(&tree.root().join("bus").join(name)).ok();
        Buses {
            pci: bus("pci"),
            virtio: bus("virtio"),
        }
    }

    fn is(bus: &Option<PathBuf>, subsystem: &Path) -> bool {
        bus.as_deref() == Some(subsystem)
    }
}

type Failure = (PathBuf, Fault);

/// Permanent addresses for one scan: the netlink dump is made once, on
/// first need (a device without PCI NICs never opens the socket).
struct Permanent {
    source: PermanentSource,
    netlink: Option<Result<HashMap<String, Mac>, netlink::NetlinkError>>,
}

impl Permanent {
    fn new(source: PermanentSource) -> Self {
        Permanent {
            source,
            netlink: None,
        }
    }

    /// The kernel's permanent address of `name` (netlink sources only).
    fn kernel(&mut self, name: &str) -> Option<Mac> {
        if self.source != PermanentSource::Netlink {
            return None;
        }
        let dump = self
            .netlink
            .get_or_insert_with(netlink::permanent_addresses);
        dump.as_ref().ok().and_then(|m| m.get(name).copied())
    }
}

/// Reads `addr_assign_type`, `carrier`, `operstate` and `speed` in the
/// canonical interface directory `dir`.
fn facts(tree: &Tree, dir: &Path) -> InterfaceFacts {
    let read = |file: &str| tree.read_in(dir, file).ok();
    InterfaceFacts {
        addr_assign_type: read("addr_assign_type")
            .and_then(|t| t.parse::<u32>().ok())
            .map(AddrAssignType::from_kernel),
        link: LinkState {
            carrier: read("carrier").and_then(|t| match t.as_str() {
                "1" => Some(true),
                "0" => Some(false),
                _ => None,
            }),
            operstate: read("operstate").filter(|t| {
                !t.is_empty() && t.len() <= 32 && t.bytes().all(|b| b.is_ascii_graphic())
            }),
            speed_mbps: read("speed")
                .and_then(|t| t.parse::<i64>().ok())
                .and_then(|n| u32::try_from(n).ok()),
        },
    }
}

/// Reads one `class/net` entry: `Ok(None)` when it is not scanned.
fn interface(
    tree: &Tree,
    buses: &Buses,
    root: &Path,
    entry: &Path,
    name: &str,
    permanent: &mut Permanent,
    warnings: &mut Vec<Warning>,
) -> Result<Option<InterfaceReport>, (PathBuf, Problem)> {
    let fail = |path: &Path, fault: Fault| (path.to_path_buf(), problem_of(fault));
    let dir = match tree.resolve(entry) {
        Ok(dir) => dir,
        Err(Fault::Missing) => return Ok(None),
        Err(fault) => return Err(fail(entry, fault)),
    };
    let device = match tree.resolve(&dir.join("device")) {
        Ok(device) => device,
        // No device link: a virtual interface.
        Err(Fault::Missing) => return Ok(None),
        Err(fault) => return Err(fail(&entry.join("device"), fault)),
    };
    let subsystem = match tree.resolve(&device.join("subsystem")) {
        Ok(s) => s,
        Err(Fault::Missing) => return Ok(None),
        Err(fault) => return Err(fail(&entry.join("device/subsystem"), fault)),
    };
    let pci_dir = if Buses::is(&buses.pci, &subsystem) {
        device
    } else if Buses::is(&buses.virtio, &subsystem) {
        // A virtio NIC counts when its virtio device sits in a PCI device.
        let Some(parent) = device.parent() else {
            return Ok(None);
        };
        match tree.resolve(&parent.join("subsystem")) {
            Ok(s) if Buses::is(&buses.pci, &s) => parent.to_path_buf(),
            _ => return Ok(None),
        }
    } else {
        // USB and other buses are not scanned.
        return Ok(None);
    };

    // A bond member's own address is its permanent one (SPEC §3): it is
    // reported as `macaddr`, so older edges keep comparing the card's.
    let (text, shown, bonded) = match tree.resolve(&dir.join("bonding_slave")) {
        Ok(slave) => {
            let shown = entry.join("bonding_slave/perm_hwaddr");
            let text = tree.read_in(&slave, "perm_hwaddr");
            (text.map_err(|fault| fail(&shown, fault))?, shown, true)
        }
        Err(Fault::Missing) => {
            let shown = entry.join("address");
            let text = tree.read_in(&dir, "address");
            (text.map_err(|fault| fail(&shown, fault))?, shown, false)
        }
        Err(fault) => return Err(fail(&entry.join("bonding_slave"), fault)),
    };
    let macaddr = address_of(&text).map_err(|problem| (shown, problem))?;
    // The permanent address: the kernel's (netlink), else the fixture's
    // file, else the bond member's perm_hwaddr (already read above).
    let source = permanent.source;
    let fixture = || {
        if source != PermanentSource::Files {
            return Ok(None);
        }
        let shown = entry.join(FIXTURE_PERMADDR_FILE);
        match tree.read_in(&dir, FIXTURE_PERMADDR_FILE) {
            Ok(text) => address_of(&text).map(Some).map_err(|p| (shown, p)),
            Err(Fault::Missing) => Ok(None),
            Err(fault) => Err(fail(&shown, fault)),
        }
    };
    let permaddr = match permanent.kernel(name) {
        Some(mac) => Some(mac),
        None => fixture()?.or(bonded.then_some(macaddr)),
    }
    .filter(|mac| mac.octets() != [0; 6]);
    let facts = facts(tree, &dir);
    let lldp = if source == PermanentSource::Files {
        fixture_lldp(tree, &dir, &entry.join(FIXTURE_LLDP_FILE), name, warnings)
    } else {
        None
    };
    let shown_pci = root.join("bus/pci/devices").join(name_of(&pci_dir));
    let pci = pci_device(tree, &pci_dir, &shown_pci).map_err(|(path, fault)| fail(&path, fault))?;
    Ok(Some(InterfaceReport {
        lldp,
        interface: name.to_owned(),
        macaddr,
        permaddr,
        addr_assign_type: facts.addr_assign_type,
        link: Some(facts.link),
        pci,
    }))
}

/// The MAC address in an `address` or `perm_hwaddr` file's (trimmed) text.
fn address_of(text: &str) -> Result<Mac, Problem> {
    Mac::parse(text).map_err(|_| Problem::NotAMac {
        content: text.chars().take(64).collect(),
    })
}

/// The host name in a host name file's (trimmed) text: its first line.
fn hostname_of(text: &str) -> Option<String> {
    let first = text.lines().next().unwrap_or("").trim();
    (!first.is_empty()).then(|| first.to_owned())
}

/// Reads the facts of the PCI device whose canonical directory is `dir`;
/// failures name files below `shown`.
fn pci_device(tree: &Tree, dir: &Path, shown: &Path) -> Result<PciDevice, Failure> {
    let read = |file: &str| {
        tree.read_in(dir, file)
            .map_err(|fault| (shown.join(file), fault))
    };
    let vendor = read("vendor")?;
    let device = read("device")?;
    let class = read("class")?;
    let driver = match tree.resolve(&dir.join("driver")) {
        Ok(target) => Some(name_of(&target)),
        Err(Fault::Missing) => None,
        Err(fault) => return Err((shown.join("driver"), fault)),
    };
    Ok(PciDevice {
        pcie_link: pcie_link(tree, dir),
        slot: name_of(dir),
        vendor,
        device,
        class,
        driver,
    })
}

/// The PCIe link files of the PCI device in `dir` (SPEC §11.1); `None`
/// when it has none of them (conventional PCI). A file that cannot be read
/// or parsed counts as absent: the link is informational and must not
/// stop a device's MACs from being checked.
fn pcie_link(tree: &Tree, dir: &Path) -> Option<PcieLink> {
    let read = |file: &str| tree.read_in(dir, file).ok().filter(|t| !t.is_empty());
    let width = |file: &str| read(file).and_then(|t| t.parse::<u32>().ok());
    let link = PcieLink {
        speed: read("current_link_speed"),
        width: width("current_link_width"),
        max_speed: read("max_link_speed"),
        max_width: width("max_link_width"),
    };
    (link != PcieLink::default()).then_some(link)
}

/// The LLDP neighbours of a fixture interface: [`FIXTURE_LLDP_FILE`], one
/// LLDPDU per line as hex, each heard now (age 0) and kept as the agent's
/// listener keeps frames ([`burnin_lldp::NeighbourTable`]). `None` when the
/// file is missing (the interface is not listened on); a file that cannot
/// be read, or a line that is not hex or not an LLDPDU, is a [`Warning`]
/// (the rest is kept).
fn fixture_lldp(
    tree: &Tree,
    dir: &Path,
    shown: &Path,
    name: &str,
    warnings: &mut Vec<Warning>,
) -> Option<Vec<burnin_core::LldpNeighbor>> {
    let mut warn = |problem: Problem| {
        warnings.push(Warning {
            subject: Subject::Lldp(name.to_owned()),
            path: shown.to_path_buf(),
            problem,
        })
    };
    let text = match tree.read_in(dir, FIXTURE_LLDP_FILE) {
        Ok(text) => text,
        Err(Fault::Missing) => return None,
        Err(fault) => {
            warn(problem_of(fault));
            return None;
        }
    };
    // The listener's clock stands still here: every frame is age 0.
    let now = std::time::Instant::now();
    let mut table = burnin_lldp::NeighbourTable::new();
    table.listen(name);
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        let result = unhex(line)
            .ok_or_else(|| "is not hex".to_owned())
            .and_then(|pdu| {
                table
                    .handle_lldpdu(name, &pdu, now)
                    .map_err(|e| e.to_string())
            });
        if let Err(why) = result {
            warn(Problem::BadLldpdu { line: i + 1, why });
        }
    }
    table.neighbours(name, now)
}

/// Hex digits (pairs, no separators) as bytes.
fn unhex(text: &str) -> Option<Vec<u8>> {
    let digits = text.as_bytes();
    if !digits.len().is_multiple_of(2) {
        return None;
    }
    let digit = |b: u8| char::from(b).to_digit(16);
    digits
        .chunks(2)
        .map(|p| Some((digit(p[0])? * 16 + digit(p[1])?) as u8))
        .collect()
}

fn problem_of(fault: Fault) -> Problem {
    match fault {
        Fault::Missing => Problem::Missing,
        Fault::Problem(p) => p,
    }
}

/// Whether a directory entry still leads somewhere (a hot-unplugged device
/// leaves no entry, or briefly a dangling link).
fn still_there(entry: &Path) -> bool {
    entry.exists()
}

/// The names in `dir`, unsorted.
fn list_dir(dir: &Path) -> io::Result<Vec<String>> {
    let mut names = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        names.push(entry.file_name().to_string_lossy().into_owned());
    }
    Ok(names)
}
