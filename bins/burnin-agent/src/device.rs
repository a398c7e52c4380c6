//! Flags every subcommand that reads this device shares.

use std::path::PathBuf;

use burnin_core::SerialNumber;
use burnin_sysfs::SysfsProbe;
use clap::Args;

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
}
