//! `burnin-agent`: the device side of burnin.
//!
//! A thin frontend over [`burnin_sysfs`] (and, for `run`, the RabbitMQ
//! transport): it parses flags, builds the probe, and maps outcomes to exit
//! codes: 0 success, 2 bad arguments, 3 the device could not be probed
//! (unreadable sysfs root, no serial number) or the output could not be
//! written. Errors go to stderr; `probe` prints only the report on stdout.
#![allow(clippy::print_stdout, clippy::print_stderr)]

mod device;
mod lldp;
mod probe;
mod run;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Exit codes (SPEC §7).
pub(crate) mod exit {
    /// Success.
    pub(crate) const OK: u8 = 0;
    /// Bad arguments or configuration.
    pub(crate) const USAGE: u8 = burnin_cli::EXIT_USAGE;
    /// The device could not be probed, or the output not written.
    pub(crate) const INTERNAL: u8 = 3;
}

/// Report this device's serial number and network cards to burnin's edge
/// server, which checks their MACs against the factory MES.
#[derive(Debug, Parser)]
#[command(
    name = "burnin-agent",
    version,
    propagate_version = true,
    after_help = burnin_cli::logging_help!()
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Print this device's report to stdout: the JSON it sends the edge,
    /// with operationId null.
    #[command(after_help = burnin_cli::logging_help!())]
    Probe(probe::ProbeArgs),
    /// Serve scan commands from RabbitMQ until SIGINT or SIGTERM: answer
    /// each with this device's report on the reply queue.
    #[command(after_help = burnin_cli::logging_help!())]
    Run(run::RunArgs),
}

fn main() -> ExitCode {
    // Clap errors exit 2, --help and --version 0 (shared with burnin-edge).
    let cli: Cli = match burnin_cli::parse() {
        Ok(cli) => cli,
        Err(code) => return code,
    };
    run(cli)
}

fn run(cli: Cli) -> ExitCode {
    let code = match cli.command {
        Command::Probe(args) => probe::run(&args),
        Command::Run(args) => run::run(args),
    };
    ExitCode::from(code)
}
