//! Flags both `scan` and `serve` take for how an operation judges what it
//! hears (SPEC §11.3): the settle time, the clock tolerance, requireClock
//! and the MES outage wait; and SPEC §11.1's cabling plan, requireCabling
//! and requirePcieWidth.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use burnin_core::cabling::CablingPlan;

use burnin_core::OperationParams;
use burnin_core::request::{MAX_MES_OUTAGE_WAIT, MAX_SETTLE};

/// The operation rules and timings shared by `scan` and `serve` (for
/// `serve`: the defaults of a `POST /scans` that does not set them).
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct RuleArgs {
    /// Once every expected serial has replied, keep collecting this long
    /// before the early end, so a second board answering with the same
    /// serial (a cloned serial) is caught as a conflict (0s: end at once).
    #[arg(long, env = "BURNIN_SETTLE", value_name = "DURATION", default_value = "500ms",
          value_parser = humantime::parse_duration)]
    pub(crate) settle: Duration,

    /// A device whose clock (its reply's collectedAt) is further than this
    /// from the edge's gets a finding such as "device clock is 8 h 0 min
    /// ahead of the edge".
    #[arg(long, env = "BURNIN_CLOCK_TOLERANCE", value_name = "DURATION", default_value = "2m",
          value_parser = humantime::parse_duration)]
    pub(crate) clock_tolerance: Duration,

    /// requireClock: a device whose clock is off by more than
    /// --clock-tolerance fails (by default that is only a finding).
    #[arg(long, env = "BURNIN_REQUIRE_CLOCK")]
    pub(crate) require_clock: bool,

    /// How long to keep retrying a MES lookup that fails for any reason but
    /// 404 (MES down, timeouts, 5xx) before the device is left undecided.
    /// An undecided device is never reported to the factory as failed:
    /// the log and Pair are withheld, the notification names MES, and
    /// `scan` exits 3.
    #[arg(long, env = "BURNIN_MES_OUTAGE_WAIT", value_name = "DURATION", default_value = "10m",
          value_parser = humantime::parse_duration)]
    pub(crate) mes_outage_wait: Duration,

    /// The cabling plan (SPEC §11.1): CSV with the header
    /// `switch,port,location,sn,interface` (sn and interface may be empty).
    /// Devices get a location ("B3 shelf 12 left") from the row their LLDP
    /// neighbours match, else from a row naming their serial (planned), and
    /// findings when cabled elsewhere. A plan that does not parse is
    /// refused at start with its line and column.
    #[arg(long, env = "BURNIN_CABLING_PLAN", value_name = "FILE")]
    pub(crate) cabling_plan: Option<PathBuf>,

    /// requireCabling: a cabling finding (cabled to another port than the
    /// plan says, no LLDP neighbour where the plan expects one, the wrong
    /// unit at a planned place, or no LLDP from the agent) fails that
    /// interface's MAC (scanstatus "0").
    #[arg(long, env = "BURNIN_REQUIRE_CABLING")]
    pub(crate) require_cabling: bool,

    /// requirePcieWidth: a network card whose PCIe link trained narrower
    /// than its maximum width (x4 of x8) fails its MAC.
    #[arg(long, env = "BURNIN_REQUIRE_PCIE_WIDTH")]
    pub(crate) require_pcie_width: bool,
}

/// Reads and parses a cabling plan, or says which file and where it is
/// wrong: `--cabling-plan plan.csv: line 3, column 9: port is empty`.
pub(crate) fn read_cabling_plan(path: &Path) -> Result<CablingPlan, String> {
    let bytes = std::fs::read(path)
        .map_err(|e| format!("--cabling-plan {}: cannot read it: {e}", path.display()))?;
    CablingPlan::parse(&bytes).map_err(|e| format!("--cabling-plan {}: {e}", path.display()))
}

impl RuleArgs {
    /// Sets these on `p` (reading the cabling plan), or says which flag is
    /// out of range or which plan is wrong.
    pub(crate) fn apply(&self, p: &mut OperationParams) -> Result<(), String> {
        if self.settle > MAX_SETTLE {
            return Err(format!(
                "--settle {} is too long; give at most {}",
                humantime::format_duration(self.settle),
                humantime::format_duration(MAX_SETTLE)
            ));
        }
        if self.mes_outage_wait > MAX_MES_OUTAGE_WAIT {
            return Err(format!(
                "--mes-outage-wait {} is too long; give at most {}",
                humantime::format_duration(self.mes_outage_wait),
                humantime::format_duration(MAX_MES_OUTAGE_WAIT)
            ));
        }
        p.settle = self.settle;
        p.clock_tolerance = self.clock_tolerance;
        p.require_clock = self.require_clock;
        p.mes_outage_wait = self.mes_outage_wait;
        p.require_cabling = self.require_cabling;
        p.require_pcie_width = self.require_pcie_width;
        p.cabling = match &self.cabling_plan {
            Some(path) => Some(Arc::new(read_cabling_plan(path)?)),
            None => None,
        };
        Ok(())
    }
}
