//! Flags every subcommand that reads this device shares.

use std::path::PathBuf;

use burnin_core::SerialNumber;
use burnin_sysfs::SysfsProbe;
use clap::Args;

use crate::lldp::{Heard, LldpSource};

/// Where this device's facts come from (`#[command(flatten)]` it).
#[derive(Debug, Clone, Args)]
pub(crate) struct DeviceArgs {
    /// Root of the sysfs tree to read (a fixture directory in tests).
    #[arg(
        long,
        env = "BURNIN_SYSFS_ROOT",
        value_name = "DIR",
        default_value = burnin_sysfs::DEFAULT_ROOT
    )]
    pub(crate) sysfs_root: PathBuf,

    /// This device's serial number: 1 to 64 printable ASCII characters, no
    /// spaces. [default: the first usable value of class/dmi/id/product_serial,
    /// board_serial, chassis_serial, skipping empty and placeholder values]
    #[arg(long, env = "BURNIN_SERIAL", value_name = "SN")]
    pub(crate) serial: Option<SerialNumber>,

    /// Where LLDP neighbours come from: auto listens on every reported
    /// interface when the sysfs root is /sys (needs CAP_NET_RAW; without
    /// it, replies leave lldp out) and reads `class/net/<if>/burnin_lldp` in
    /// a fixture tree; listen also listens with a fixture tree, on this
    /// network namespace's interfaces of the same names; off never listens.
    #[arg(long, env = "BURNIN_LLDP", value_name = "SOURCE", value_enum, default_value_t = LldpSource::Auto)]
    pub(crate) lldp: LldpSource,
}

impl DeviceArgs {
    /// The hardware probe these flags describe.
    pub(crate) fn probe(&self) -> SysfsProbe {
        let probe = SysfsProbe::new(&self.sysfs_root);
        match &self.serial {
            Some(sn) => probe.with_serial(sn.clone()),
            None => probe,
        }
    }

    /// Whether to listen for LLDP frames (see `--lldp`).
    pub(crate) fn listens(&self) -> bool {
        match self.lldp {
            LldpSource::Off => false,
            LldpSource::Listen => true,
            LldpSource::Auto => {
                self.probe().permanent_source() == burnin_sysfs::PermanentSource::Netlink
            }
        }
    }

    /// A listener when [`listens`](Self::listens), listening on `interfaces`
    /// from now (inside a tokio runtime).
    pub(crate) fn listener<'a>(
        &self,
        interfaces: impl IntoIterator<Item = &'a str>,
    ) -> Option<Heard> {
        if !self.listens() {
            return None;
        }
        let heard = Heard::default();
        for i in interfaces {
            heard.listen(i);
        }
        Some(heard)
    }
}
