//! `burnin-agent probe`: print this device's report once.

use std::io::Write;
use std::time::Duration;

use burnin_core::{Clock, DeviceReport};
use burnin_local::SystemClock;
use clap::builder::BoolishValueParser;
use clap::{ArgAction, Args};

use crate::device::DeviceArgs;
use crate::exit;

/// Flags of `probe`.
#[derive(Debug, Args)]
pub(crate) struct ProbeArgs {
    #[command(flatten)]
    device: DeviceArgs,

    /// Indent the JSON for people (the wire form is compact).
    #[arg(
        long,
        env = "BURNIN_PRETTY",
        action = ArgAction::SetTrue,
        value_parser = BoolishValueParser::new()
    )]
    pretty: bool,

    /// Listen for LLDP frames this long before printing, 0 to 60 s, e.g.
    /// 35s (switches send one every 30 s); 0 does not listen and leaves
    /// lldp out.
    #[arg(long, env = "BURNIN_LLDP_WAIT", value_name = "DURATION", default_value = "0s",
          value_parser = parse_lldp_wait)]
    lldp_wait: Duration,
}

/// The longest `--lldp-wait`.
const MAX_LLDP_WAIT: Duration = Duration::from_secs(60);

fn parse_lldp_wait(text: &str) -> Result<Duration, String> {
    let d = humantime::parse_duration(text).map_err(|e| e.to_string())?;
    if d > MAX_LLDP_WAIT {
        return Err(format!(
            "{} is longer than {}",
            humantime::format_duration(d),
            humantime::format_duration(MAX_LLDP_WAIT)
        ));
    }
    Ok(d)
}

/// Runs `probe`; returns the exit code.
pub(crate) fn run(args: &ProbeArgs) -> u8 {
    match probe(args) {
        Ok(()) => exit::OK,
        Err(e) => {
            // Every error here already names its cause.
            eprintln!("burnin-agent probe: error: {e}");
            exit::INTERNAL
        }
    }
}

fn probe(args: &ProbeArgs) -> anyhow::Result<()> {
    let scan = args.device.probe().scan()?;
    for w in &scan.warnings {
        eprintln!("burnin-agent probe: warning: {w}");
    }
    let mut hardware = scan.hardware;
    if !args.lldp_wait.is_zero() {
        listen(args, &mut hardware)?;
    }
    let report = DeviceReport::new(None, hardware, env!("CARGO_PKG_VERSION"), SystemClock.now());
    let mut body = if args.pretty {
        serde_json::to_vec_pretty(&report)
            .map_err(|e| anyhow::anyhow!("cannot serialize the report: {e}"))?
    } else {
        report.to_json()
    };
    body.push(b'\n');
    let mut out = std::io::stdout().lock();
    out.write_all(&body)
        .and_then(|()| out.flush())
        .map_err(|e| anyhow::anyhow!("cannot write the report to stdout: {e}"))?;
    Ok(())
}

/// Listens on the reported interfaces for `--lldp-wait`, then adds what was
/// heard.
fn listen(args: &ProbeArgs, hardware: &mut burnin_core::Hardware) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| anyhow::anyhow!("cannot start the async runtime: {e}"))?;
    // The listener logs (a refused socket, new neighbours) on stderr.
    burnin_cli::init_logging(burnin_cli::LogFormat::Text);
    runtime.block_on(async {
        let names = hardware.interfaces.iter().map(|i| i.interface.as_str());
        let Some(heard) = args.device.listener(names) else {
            return;
        };
        tokio::time::sleep(args.lldp_wait).await;
        heard.fill(hardware);
        let s = heard.stats();
        if s.malformed + s.oversized + s.over_limit > 0 {
            eprintln!(
                "burnin-agent probe: LLDP frames dropped: {} malformed, {} oversized, {} over the {} neighbours kept per interface",
                s.malformed,
                s.oversized,
                s.over_limit,
                burnin_lldp::MAX_NEIGHBOURS
            );
        }
    });
    Ok(())
}
