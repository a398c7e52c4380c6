//! Flags both `scan` and `serve` take for how an operation judges what it
//! hears (SPEC §11.3): the settle time, the clock tolerance, requireClock
//! and the MES and delivery outage waits.

use std::time::Duration;

use burnin_core::OperationParams;
use burnin_core::request::{MAX_DELIVERY_OUTAGE_WAIT, MAX_MES_OUTAGE_WAIT, MAX_SETTLE};

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

    /// How long, in all, an operation keeps trying a factory payload (log,
    /// Pair, directBurn, notification) whose endpoint is unreachable, times
    /// out or answers 5xx/429 after the attempts of --http-retries, before
    /// giving it up. The operation stays "reporting" meanwhile, and each
    /// attempt sends the same body under the same Idempotency-Key. A
    /// refusal (any other 4xx) is never retried. 0s: give up after the
    /// --http-retries attempts.
    #[arg(long, env = "BURNIN_DELIVERY_OUTAGE_WAIT", value_name = "DURATION",
          default_value = "10m", value_parser = humantime::parse_duration)]
    pub(crate) delivery_outage_wait: Duration,
}

impl RuleArgs {
    /// Sets these on `p`, or says which flag is out of range.
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
        if self.delivery_outage_wait > MAX_DELIVERY_OUTAGE_WAIT {
            return Err(format!(
                "--delivery-outage-wait {} is too long; give at most {}",
                humantime::format_duration(self.delivery_outage_wait),
                humantime::format_duration(MAX_DELIVERY_OUTAGE_WAIT)
            ));
        }
        p.settle = self.settle;
        p.clock_tolerance = self.clock_tolerance;
        p.require_clock = self.require_clock;
        p.mes_outage_wait = self.mes_outage_wait;
        p.delivery_outage_wait = self.delivery_outage_wait;
        Ok(())
    }
}
