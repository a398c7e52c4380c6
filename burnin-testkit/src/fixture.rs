//! Test support: sysfs-like trees laid out the way the kernel does.
//!
//! [`Fixture`] writes real directories, files and **relative** symbolic
//! links under a root of your choice (usually a temporary directory), so the
//! tree can be moved and a real `burnin-agent` process can be pointed at it
//! with `--sysfs-root`:
//!
//! ```text
//! class/net/<if>          -> ../../devices/pci0000:00/<slot>/net/<if>
//! devices/pci0000:00/<slot>/{vendor,device,class}
//! devices/pci0000:00/<slot>/subsystem -> ../../../bus/pci
//! devices/pci0000:00/<slot>/driver    -> ../../../bus/pci/drivers/<driver>
//! devices/pci0000:00/<slot>/net/<if>/{address,addr_len,type}
//! devices/pci0000:00/<slot>/net/<if>/{addr_assign_type,carrier,operstate,speed}
//! devices/pci0000:00/<slot>/net/<if>/burnin_permaddr   (optional, see below)
//! devices/pci0000:00/<slot>/net/<if>/burnin_lldp       (optional, Fixture::lldp)
//! devices/pci0000:00/<slot>/{current,max}_link_{speed,width} (optional, Fixture::pcie_link)
//! devices/pci0000:00/<slot>/net/<if>/device -> ../../../<slot>
//! devices/pci0000:00/<slot>/virtio<N>/net/<if>   (virtio NICs)
//! devices/pci0000:00/0000:00:14.0/usb1/1-<n>/1-<n>:1.0/net/<if>   (USB NICs)
//! devices/virtual/net/<if>                        (lo, bridges, bonds, ...)
//! bus/pci/devices/<slot>  -> ../../../devices/pci0000:00/<slot>
//! class/dmi/id            -> ../../devices/virtual/dmi/id
//! ```
//!
//! ```
//! use burnin_sysfs::SysfsProbe;
//! use burnin_testkit::fixture::Fixture;
//! let dir = tempfile::tempdir().unwrap();
//! let fx = Fixture::new(dir.path())
//!     .serial("SN1")
//!     .pci_nic("enp4s0", "0000:04:00.0", "e0:18:7d:2e:ca:68", "igb")
//!     .loopback();
//! let hw = SysfsProbe::new(fx.root()).scan().unwrap().hardware;
//! assert_eq!(hw.sn.as_str(), "SN1");
//! assert_eq!(hw.interfaces.len(), 1);
//! ```
//!
//! # Permanent addresses
//!
//! The kernel gives a permanent address over rtnetlink only, never in
//! sysfs, and a probe of any root but `/sys` does not ask this kernel (the
//! tree is not its). A fixture interface carries one in the file
//! `class/net/<if>/burnin_permaddr` ([`burnin_sysfs::FIXTURE_PERMADDR_FILE`]): one
//! MAC, as in `address`. [`Fixture::permaddr`] writes it and
//! [`Fixture::set_address`] writes the old address there before changing
//! the current one. A bond member's `bonding_slave/perm_hwaddr` is read as
//! on a real kernel.
//!
//! ```
//! use burnin_sysfs::SysfsProbe;
//! use burnin_testkit::fixture::Fixture;
//! let dir = tempfile::tempdir().unwrap();
//! let fx = Fixture::new(dir.path())
//!     .serial("SN1")
//!     .pci_nic("enp4s0", "0000:04:00.0", "e0:18:7d:2e:ca:68", "igb")
//!     .set_address("enp4s0", "02:00:00:00:00:01");
//! let i = &SysfsProbe::new(fx.root()).scan().unwrap().hardware.interfaces[0];
//! assert_eq!(i.macaddr.to_string(), "02:00:00:00:00:01");
//! assert_eq!(i.permaddr.unwrap().to_string(), "e0:18:7d:2e:ca:68");
//! ```
//!
//! # Panics
//!
//! Every method panics, naming the path, when the file system refuses a
//! write: this is test support, where a panic is the clearest failure.

use std::fs;
use std::os::unix::fs::symlink;
use std::path::{Component, Path, PathBuf};

/// The identity of a PCI device as sysfs writes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PciIds<'a> {
    /// `vendor`, e.g. `0x8086`.
    pub vendor: &'a str,
    /// `device`, e.g. `0x1533`.
    pub device: &'a str,
    /// `class`, e.g. `0x020000`.
    pub class: &'a str,
}

impl PciIds<'static> {
    /// Intel I210 Gigabit Ethernet (driver `igb`): the default NIC.
    pub const I210: PciIds<'static> = PciIds {
        vendor: "0x8086",
        device: "0x1533",
        class: "0x020000",
    };
    /// Intel X710 10 GbE (driver `i40e`), a multi-port card.
    pub const X710: PciIds<'static> = PciIds {
        vendor: "0x8086",
        device: "0x1572",
        class: "0x020000",
    };
    /// virtio network device (driver `virtio-pci`).
    pub const VIRTIO_NET: PciIds<'static> = PciIds {
        vendor: "0x1af4",
        device: "0x1000",
        class: "0x020000",
    };
    /// Intel xHCI USB controller (driver `xhci_hcd`).
    pub const XHCI: PciIds<'static> = PciIds {
        vendor: "0x8086",
        device: "0xa36d",
        class: "0x0c0330",
    };
    /// Intel host bridge (no driver).
    pub const HOST_BRIDGE: PciIds<'static> = PciIds {
        vendor: "0x8086",
        device: "0x3e0f",
        class: "0x060000",
    };
}

/// The slot of the USB controller [`Fixture::usb_nic`] creates.
pub const USB_CONTROLLER_SLOT: &str = "0000:00:14.0";

/// A builder of sysfs-like trees. See the [module docs](self).
#[derive(Debug, Clone)]
pub struct Fixture {
    root: PathBuf,
    next_virtio: u32,
    next_usb_port: u32,
}

impl Fixture {
    /// Lays out an empty tree at `root` (created if needed): `class/net`,
    /// `bus/pci/{devices,drivers}`, `bus/virtio`, `bus/usb`, `devices`.
    pub fn new(root: impl Into<PathBuf>) -> Self {
        let fx = Fixture {
            root: root.into(),
            next_virtio: 0,
            next_usb_port: 1,
        };
        for dir in [
            "class/net",
            "bus/pci/devices",
            "bus/pci/drivers",
            "bus/virtio/devices",
            "bus/virtio/drivers",
            "bus/usb/devices",
            "bus/usb/drivers",
            "devices/pci0000:00",
            "devices/virtual/net",
        ] {
            fx.mkdir(dir);
        }
        fx
    }

    /// The tree's root.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Writes `class/dmi/id/<file>` (e.g. `board_serial`) with `value` and a
    /// newline, as the kernel does.
    pub fn dmi(self, file: &str, value: &str) -> Self {
        self.mkdir("devices/virtual/dmi/id");
        self.mkdir("class/dmi");
        self.link("class/dmi/id", "devices/virtual/dmi/id");
        self.write(
            &format!("devices/virtual/dmi/id/{file}"),
            format!("{value}\n"),
        )
    }

    /// Writes `class/dmi/id/product_serial`.
    pub fn serial(self, sn: &str) -> Self {
        self.dmi("product_serial", sn)
    }

    /// Adds a PCI device at `slot` (`0000:04:00.0`), bound to `driver` if
    /// given.
    pub fn pci_device(self, slot: &str, ids: PciIds<'_>, driver: Option<&str>) -> Self {
        let dir = pci_dir(slot);
        self.mkdir(&dir);
        let fx = self
            .write(&format!("{dir}/vendor"), format!("{}\n", ids.vendor))
            .write(&format!("{dir}/device"), format!("{}\n", ids.device))
            .write(&format!("{dir}/class"), format!("{}\n", ids.class));
        fx.link(&format!("{dir}/subsystem"), "bus/pci");
        fx.link(&format!("bus/pci/devices/{slot}"), &dir);
        if let Some(driver) = driver {
            fx.mkdir(&format!("bus/pci/drivers/{driver}"));
            fx.link(
                &format!("{dir}/driver"),
                &format!("bus/pci/drivers/{driver}"),
            );
            fx.link(&format!("bus/pci/drivers/{driver}/{slot}"), &dir);
        }
        fx
    }

    /// Adds an Intel I210 at `slot` bound to `driver`, with interface
    /// `ifname` whose `address` file holds `mac`.
    pub fn pci_nic(self, ifname: &str, slot: &str, mac: &str, driver: &str) -> Self {
        self.pci_device(slot, PciIds::I210, Some(driver))
            .net_on_pci(ifname, slot, mac)
    }

    /// Adds interface `ifname` to the existing PCI device at `slot`.
    pub fn net_on_pci(self, ifname: &str, slot: &str, mac: &str) -> Self {
        let dev = pci_dir(slot);
        self.net_interface(ifname, &dev, mac)
    }

    /// Adds a virtio NIC: a virtio PCI device at `slot` (driver
    /// `virtio-pci`) holding `virtio<N>` (bus `virtio`, driver `virtio_net`)
    /// with interface `ifname`, the way QEMU/KVM guests show it.
    pub fn virtio_nic(mut self, ifname: &str, slot: &str, mac: &str) -> Self {
        let n = self.next_virtio;
        self.next_virtio += 1;
        let fx = self.pci_device(slot, PciIds::VIRTIO_NET, Some("virtio-pci"));
        let vdev = format!("{}/virtio{n}", pci_dir(slot));
        fx.mkdir(&vdev);
        fx.mkdir("bus/virtio/drivers/virtio_net");
        fx.link(&format!("{vdev}/subsystem"), "bus/virtio");
        fx.link(&format!("{vdev}/driver"), "bus/virtio/drivers/virtio_net");
        fx.link(&format!("bus/virtio/devices/virtio{n}"), &vdev);
        let fx = fx
            .write(&format!("{vdev}/vendor"), "0x1af4\n")
            .write(&format!("{vdev}/device"), "0x0001\n");
        fx.net_interface(ifname, &vdev, mac)
    }

    /// Adds a USB NIC on the xHCI controller at [`USB_CONTROLLER_SLOT`]
    /// (created on first use): `usb1/1-<n>/1-<n>:1.0/net/<ifname>`, whose
    /// `device` is a USB interface (bus `usb`).
    pub fn usb_nic(mut self, ifname: &str, mac: &str) -> Self {
        let port = self.next_usb_port;
        self.next_usb_port += 1;
        let mut fx = self;
        if !fx.root.join(pci_dir(USB_CONTROLLER_SLOT)).exists() {
            fx = fx.pci_device(USB_CONTROLLER_SLOT, PciIds::XHCI, Some("xhci_hcd"));
        }
        let hub = format!("{}/usb1", pci_dir(USB_CONTROLLER_SLOT));
        let dev = format!("{hub}/1-{port}");
        let intf = format!("{dev}/1-{port}:1.0");
        fx.mkdir(&intf);
        fx.mkdir("bus/usb/drivers/r8152");
        for d in [&hub, &dev, &intf] {
            fx.link(&format!("{d}/subsystem"), "bus/usb");
        }
        fx.link(&format!("{intf}/driver"), "bus/usb/drivers/r8152");
        fx.link(&format!("bus/usb/devices/1-{port}:1.0"), &intf);
        fx.net_interface(ifname, &intf, mac)
    }

    /// Adds a virtual interface (no `device` link) under
    /// `devices/virtual/net`.
    pub fn virtual_nic(self, ifname: &str, mac: &str) -> Self {
        let dir = format!("devices/virtual/net/{ifname}");
        self.mkdir(&dir);
        self.link(&format!("{dir}/subsystem"), "class/net");
        self.link(&format!("class/net/{ifname}"), &dir);
        self.write(&format!("{dir}/address"), format!("{mac}\n"))
            .write(&format!("{dir}/addr_len"), "6\n")
    }

    /// Adds `lo` (all-zero address).
    pub fn loopback(self) -> Self {
        self.virtual_nic("lo", "00:00:00:00:00:00")
    }

    /// Adds a bridge (`bridge/` directory).
    pub fn bridge(self, ifname: &str, mac: &str) -> Self {
        let fx = self.virtual_nic(ifname, mac);
        fx.write(
            &format!("devices/virtual/net/{ifname}/bridge/stp_state"),
            "0\n",
        )
    }

    /// Adds a vlan `ifname` on top of `lower` (which must exist).
    pub fn vlan(self, ifname: &str, lower: &str, mac: &str) -> Self {
        let fx = self.virtual_nic(ifname, mac);
        fx.link(
            &format!("devices/virtual/net/{ifname}/lower_{lower}"),
            &format!("class/net/{lower}"),
        );
        fx
    }

    /// Adds one end of a veth pair.
    pub fn veth(self, ifname: &str, mac: &str) -> Self {
        self.virtual_nic(ifname, mac)
    }

    /// Adds a tun device (no hardware address, `tun_flags`).
    pub fn tun(self, ifname: &str) -> Self {
        let dir = format!("devices/virtual/net/{ifname}");
        let fx = self.virtual_nic(ifname, "");
        fx.write(&format!("{dir}/addr_len"), "0\n")
            .write(&format!("{dir}/tun_flags"), "0x1001\n")
    }

    /// Adds bond master `ifname` with address `mac` and enslaves `members`
    /// (which must exist): each member gets `bonding_slave/perm_hwaddr`
    /// holding its own address, then its `address` is overwritten with the
    /// bond's, as the kernel does.
    pub fn bond(self, ifname: &str, mac: &str, members: &[&str]) -> Self {
        let mut fx = self.virtual_nic(ifname, mac);
        let dir = format!("devices/virtual/net/{ifname}");
        fx = fx.write(
            &format!("{dir}/bonding/slaves"),
            format!("{}\n", members.join(" ")),
        );
        for member in members {
            let real = fs::canonicalize(fx.root.join("class/net").join(member))
                .unwrap_or_else(|e| panic!("bond member {member} must exist first: {e}"));
            let rel = real
                .strip_prefix(fs::canonicalize(&fx.root).expect("fixture root"))
                .expect("member inside the fixture")
                .to_string_lossy()
                .into_owned();
            let own = fs::read_to_string(real.join("address")).expect("member address");
            fx = fx
                .write(&format!("{rel}/bonding_slave/perm_hwaddr"), own)
                .write(&format!("{rel}/bonding_slave/state"), "active\n")
                .write(&format!("{rel}/address"), format!("{mac}\n"))
                .write(&format!("{rel}/addr_assign_type"), "3\n");
            fx.link(&format!("{rel}/master"), &dir);
            fx.link(&format!("{dir}/lower_{member}"), &rel);
        }
        fx
    }

    /// Gives interface `ifname` the permanent address `mac`: writes
    /// [`FIXTURE_PERMADDR_FILE`](burnin_sysfs::FIXTURE_PERMADDR_FILE) in its
    /// directory, the fixture's stand-in for the kernel's
    /// `IFLA_PERM_ADDRESS` (read with [`PermanentSource::Files`](burnin_sysfs::PermanentSource),
    /// the default for any root but `/sys`).
    pub fn permaddr(self, ifname: &str, mac: &str) -> Self {
        self.write(
            &format!("class/net/{ifname}/{}", burnin_sysfs::FIXTURE_PERMADDR_FILE),
            format!("{mac}\n"),
        )
    }

    /// Gives interface `ifname` the LLDP neighbours of these LLDPDUs (the
    /// TLVs from Chassis ID to End, no Ethernet header; build them with
    /// `burnin_lldp::Builder`): writes
    /// [`FIXTURE_LLDP_FILE`](burnin_sysfs::FIXTURE_LLDP_FILE), one hex
    /// LLDPDU per line (SPEC §11.1). No LLDPDUs writes an empty file: the
    /// interface was listened on and heard nothing.
    pub fn lldp(self, ifname: &str, lldpdus: &[&[u8]]) -> Self {
        let mut text = String::new();
        for pdu in lldpdus {
            for b in *pdu {
                text.push_str(&format!("{b:02x}"));
            }
            text.push('\n');
        }
        self.write(
            &format!("class/net/{ifname}/{}", burnin_sysfs::FIXTURE_LLDP_FILE),
            text,
        )
    }

    /// Writes the PCIe link files of the PCI device at `slot` as the kernel
    /// does (`current_link_speed`, `current_link_width`, `max_link_speed`,
    /// `max_link_width`), e.g. `("8.0 GT/s PCIe", 4)` now of
    /// `("16.0 GT/s PCIe", 8)` at most; a `None` leaves that pair's files
    /// out.
    pub fn pcie_link(
        self,
        slot: &str,
        current: Option<(&str, u32)>,
        max: Option<(&str, u32)>,
    ) -> Self {
        let mut fx = self;
        for (prefix, value) in [("current", current), ("max", max)] {
            if let Some((speed, width)) = value {
                fx = fx
                    .write(
                        &format!("bus/pci/devices/{slot}/{prefix}_link_speed"),
                        format!("{speed}\n"),
                    )
                    .write(
                        &format!("bus/pci/devices/{slot}/{prefix}_link_width"),
                        format!("{width}\n"),
                    );
            }
        }
        fx
    }

    /// Changes interface `ifname`'s current address to `mac` the way `ip
    /// link set address` (or NetworkManager, a udev rule) does: the old
    /// address stays its permanent one (written with
    /// [`permaddr`](Self::permaddr) unless one is set already) and
    /// `addr_assign_type` becomes 3 (set).
    pub fn set_address(self, ifname: &str, mac: &str) -> Self {
        let dir = self.root.join("class/net").join(ifname);
        let old = fs::read_to_string(dir.join("address"))
            .unwrap_or_else(|e| panic!("interface {ifname} must exist first: {e}"));
        let fx = if dir.join(burnin_sysfs::FIXTURE_PERMADDR_FILE).exists() {
            self
        } else {
            self.permaddr(ifname, old.trim())
        };
        fx.write(&format!("class/net/{ifname}/address"), format!("{mac}\n"))
            .write(&format!("class/net/{ifname}/addr_assign_type"), "3\n")
    }

    /// Sets interface `ifname`'s link files: `carrier` (`None`: unreadable,
    /// as the kernel answers EINVAL while the interface is down),
    /// `operstate`, and `speed` in Mbit/s (`None`: unreadable; the kernel
    /// writes -1 for unknown).
    pub fn link_state(
        self,
        ifname: &str,
        carrier: Option<bool>,
        operstate: &str,
        speed: Option<i64>,
    ) -> Self {
        let at = |file: &str| format!("class/net/{ifname}/{file}");
        let fx = match carrier {
            Some(c) => self.write(&at("carrier"), format!("{}\n", u8::from(c))),
            None => self.unreadable(&at("carrier")),
        };
        let fx = fx.write(&at("operstate"), format!("{operstate}\n"));
        match speed {
            Some(n) => fx.write(&at("speed"), format!("{n}\n")),
            None => fx.unreadable(&at("speed")),
        }
    }

    /// Makes `rel` unreadable even for root: a directory where a file is
    /// expected (reading it fails with "Is a directory").
    pub fn unreadable(self, rel: &str) -> Self {
        let path = self.root.join(rel);
        remove(&path);
        fs::create_dir_all(&path).unwrap_or_else(|e| panic!("create {}: {e}", path.display()));
        self
    }

    /// Writes raw bytes to `rel` (a path below the root), creating parent
    /// directories: for broken and hostile files.
    pub fn write(self, rel: &str, bytes: impl AsRef<[u8]>) -> Self {
        let path = self.root.join(rel);
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent)
                .unwrap_or_else(|e| panic!("create {}: {e}", parent.display()));
        }
        fs::write(&path, bytes).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
        self
    }

    /// Makes `rel` a symbolic link to `target` exactly as given (absolute
    /// or relative), replacing what was there: for links that leave the
    /// tree or dangle.
    pub fn symlink(self, rel: &str, target: impl AsRef<Path>) -> Self {
        let path = self.root.join(rel);
        remove(&path);
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent)
                .unwrap_or_else(|e| panic!("create {}: {e}", parent.display()));
        }
        symlink(target.as_ref(), &path)
            .unwrap_or_else(|e| panic!("symlink {}: {e}", path.display()));
        self
    }

    /// Removes `rel` (file, link or directory tree) if it exists.
    pub fn remove(self, rel: &str) -> Self {
        remove(&self.root.join(rel));
        self
    }

    /// The net directory, links and address of interface `ifname` whose
    /// `device` is the directory `dev` (relative to the root).
    fn net_interface(self, ifname: &str, dev: &str, mac: &str) -> Self {
        let dir = format!("{dev}/net/{ifname}");
        self.mkdir(&dir);
        self.link(&format!("{dir}/device"), dev);
        self.link(&format!("{dir}/subsystem"), "class/net");
        self.link(&format!("class/net/{ifname}"), &dir);
        self.write(&format!("{dir}/address"), format!("{mac}\n"))
            .write(&format!("{dir}/addr_len"), "6\n")
            .write(&format!("{dir}/type"), "1\n")
            .write(&format!("{dir}/addr_assign_type"), "0\n")
            .write(&format!("{dir}/carrier"), "1\n")
            .write(&format!("{dir}/operstate"), "up\n")
            .write(&format!("{dir}/speed"), "1000\n")
    }

    fn mkdir(&self, rel: &str) {
        let path = self.root.join(rel);
        fs::create_dir_all(&path).unwrap_or_else(|e| panic!("create {}: {e}", path.display()));
    }

    /// A relative link at `at` to `target`, both relative to the root.
    fn link(&self, at: &str, target: &str) {
        let path = self.root.join(at);
        let depth = Path::new(at)
            .parent()
            .map(|p| {
                p.components()
                    .filter(|c| matches!(c, Component::Normal(_)))
                    .count()
            })
            .unwrap_or(0);
        let mut rel = PathBuf::new();
        for _ in 0..depth {
            rel.push("..");
        }
        rel.push(target);
        remove(&path);
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent)
                .unwrap_or_else(|e| panic!("create {}: {e}", parent.display()));
        }
        symlink(&rel, &path).unwrap_or_else(|e| panic!("symlink {}: {e}", path.display()));
    }
}

/// Where the PCI device `slot` lives, relative to the root.
fn pci_dir(slot: &str) -> String {
    format!("devices/pci0000:00/{slot}")
}

fn remove(path: &Path) {
    match path.symlink_metadata() {
        Ok(m) if m.is_dir() => {
            fs::remove_dir_all(path).unwrap_or_else(|e| panic!("remove {}: {e}", path.display()))
        }
        Ok(_) => fs::remove_file(path).unwrap_or_else(|e| panic!("remove {}: {e}", path.display())),
        Err(_) => {}
    }
}
