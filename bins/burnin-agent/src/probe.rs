//! `burnin-agent probe`: print this device's report once.

use std::io::Write;

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
    let report = DeviceReport::new(
        None,
        scan.hardware,
        env!("CARGO_PKG_VERSION"),
        SystemClock.now(),
    );
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
