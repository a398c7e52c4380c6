//! `burnin-edge demo`: a whole operation in one process, no servers
//! ([`burnin_service::demo`]), printed as `scan` prints one.

use std::path::PathBuf;
use std::time::Duration;

use burnin_service::demo::{self, DemoError};
use burnin_service::report::{json, table};

use crate::cli::output::Progress;
use crate::exit;

/// Flags of `burnin-edge demo`.
#[derive(Debug, clap::Args)]
pub(crate) struct DemoArgs {
    /// How many simulated devices (at least 5 to show every kind of failure).
    #[arg(long, env = "BURNIN_DEVICES", default_value_t = 12,
          value_parser = clap::value_parser!(u32).range(1..=100_000))]
    devices: u32,

    /// Where the MES file and the payloads are written.
    #[arg(long, env = "BURNIN_OUT_DIR", default_value = "burnin-demo")]
    out_dir: PathBuf,

    /// How long to wait for replies (the silent device makes the demo wait
    /// this long).
    #[arg(long, env = "BURNIN_WINDOW", value_name = "DURATION", default_value = "2s", value_parser = crate::cli::scan::parse_window)]
    window: Duration,

    /// Print the result as JSON (`{"operationId", "state", "devices": [...]}`)
    /// instead of a table.
    #[arg(long)]
    json: bool,
}

pub(crate) fn run(args: DemoArgs) -> u8 {
    let rt = match crate::runtime() {
        Ok(rt) => rt,
        Err(code) => return code,
    };
    rt.block_on(run_demo(args))
}

async fn run_demo(args: DemoArgs) -> u8 {
    let demo = match demo::prepare(args.devices, &args.out_dir, args.window) {
        Ok(d) => d,
        Err(e) => {
            eprintln!("error: {e}");
            return match e {
                DemoError::Folder(_) => exit::USAGE,
                DemoError::Internal(_) => exit::INTERNAL,
            };
        }
    };
    eprintln!(
        "demo: {} simulated devices ({} answering), MES file {}, window {}",
        args.devices,
        demo.answering(),
        demo.mes_path.display(),
        humantime::format_duration(args.window)
    );
    let progress = Progress::new(demo.expected());
    let report = match demo.run(&progress).await {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: {e}");
            return exit::INTERNAL;
        }
    };
    // The demo exits as `scan` would (SPEC §7): 1 when a device failed, as
    // the default demo's do on purpose.
    let code = crate::cli::scan::exit_code(&report);
    if args.json {
        println!("{}", json(&report, None));
        return code;
    }
    print!("{}", table(&report));
    println!("\nfiles in {}:", args.out_dir.display());
    let mut files: Vec<_> = std::fs::read_dir(&args.out_dir)
        .map(|rd| rd.filter_map(|e| Some(e.ok()?.path())).collect())
        .unwrap_or_default();
    files.sort();
    for f in files {
        println!("  {}", f.display());
    }
    code
}
