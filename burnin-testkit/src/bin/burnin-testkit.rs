//! `burnin-testkit`: the test harness's pieces as commands, for trying
//! burnin by hand without devices or a factory.
//!
//! ```text
//! burnin-testkit fixture DIR --serial SN --mac MAC [--mac MAC]...
//!     Lay out a sysfs-like tree for `burnin-agent --sysfs-root DIR`.
//! burnin-testkit factory [--listen 127.0.0.1:8081] [--mes-file FILE]
//!     Stand in for MES (GET /mes/{sn}) and the factory (POST /log, /pair,
//!     /directBurn, /notify), printing every request it receives.
//! ```
#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::path::PathBuf;
use std::process::ExitCode;

use burnin_testkit::{Device, FactoryStandIn};
use clap::{Parser, Subcommand};

/// Pieces of burnin's test harness, for trying burnin by hand.
#[derive(Debug, Parser)]
#[command(name = "burnin-testkit", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Lay out a sysfs-like tree of a device with PCI NICs.
    Fixture {
        /// Where to write the tree (created).
        dir: PathBuf,
        /// The serial number in DMI.
        #[arg(long)]
        serial: String,
        /// A NIC's MAC address (repeat for more NICs).
        #[arg(long = "mac", required = true)]
        macs: Vec<String>,
    },
    /// Run the MES and factory stand-in until Ctrl+C.
    Factory {
        /// Address to listen on.
        #[arg(long, default_value = "127.0.0.1:8081")]
        listen: String,
        /// MES records, `{"<sn>": ["<mac>", ...]}`.
        #[arg(long)]
        mes_file: Option<PathBuf>,
    },
}

fn main() -> ExitCode {
    match Cli::parse().command {
        Command::Fixture { dir, serial, macs } => {
            let macs: Vec<&str> = macs.iter().map(String::as_str).collect();
            if let Err(e) = Device::new(&serial, &macs).try_write_tree(&dir) {
                eprintln!("error: {e}");
                return ExitCode::from(2);
            }
            println!("wrote a sysfs tree for {serial} to {}", dir.display());
            ExitCode::SUCCESS
        }
        Command::Factory { listen, mes_file } => {
            let factory = match FactoryStandIn::start_on(&listen, true) {
                Ok(f) => f,
                Err(e) => {
                    eprintln!("error: {e}");
                    return ExitCode::from(2);
                }
            };
            if let Some(path) = mes_file {
                let text = match std::fs::read_to_string(&path) {
                    Ok(t) => t,
                    Err(e) => {
                        eprintln!("error: cannot read {}: {e}", path.display());
                        return ExitCode::from(2);
                    }
                };
                let records: std::collections::HashMap<String, Vec<String>> =
                    match serde_json::from_str(&text) {
                        Ok(r) => r,
                        Err(e) => {
                            eprintln!(
                                "error: {} is not {{\"<sn>\": [\"<mac>\", ...]}}: {e}",
                                path.display()
                            );
                            return ExitCode::from(2);
                        }
                    };
                for (sn, macs) in &records {
                    let macs: Vec<&str> = macs.iter().map(String::as_str).collect();
                    factory.set_mes(sn, &macs);
                }
            }
            println!(
                "factory stand-in on {}: GET /mes/{{sn}}, POST /log /pair /directBurn /notify",
                factory.url("")
            );
            // Serve until killed (Ctrl+C).
            loop {
                std::thread::park();
            }
        }
    }
}
