//! `burnin-edge`: the edge server's command line.
//!
//! A thin frontend: it parses flags, builds adapters, and runs a use case
//! of `burnin-core` (`scan`, `demo`) or the service of the `burnin_edge`
//! library (`serve`), and maps the outcome to an exit code (SPEC §7):
//! 0 all devices passed, 1 completed with a failing device, 2 bad arguments
//! or configuration, 3 an internal error.
#![allow(clippy::print_stdout, clippy::print_stderr)]

mod cli;

use std::process::ExitCode;

use clap::{CommandFactory, Parser, Subcommand};

use cli::{check, demo, scan, serve};

/// Exit codes of SPEC §7.
pub(crate) mod exit {
    /// Every device passed.
    pub(crate) const PASSED: u8 = 0;
    /// The operation completed with a failing device.
    pub(crate) const DEVICE_FAILED: u8 = 1;
    /// Bad arguments or configuration.
    pub(crate) const USAGE: u8 = burnin_cli::EXIT_USAGE;
    /// An internal error: the broker or a factory API could not be used,
    /// or a stage did not answer within its bound.
    pub(crate) const INTERNAL: u8 = 3;
    /// `scan`: the operation completed, but no device was expected and
    /// none answered (nothing to report; check the exchange and vhost).
    pub(crate) const NO_DEVICES: u8 = 4;
}

/// Check that every device's network cards carry the MACs the factory MES
/// recorded for its serial number, then report to the factory.
#[derive(Debug, Parser)]
#[command(
    name = "burnin-edge",
    version,
    propagate_version = true,
    after_help = burnin_cli::logging_help!()
)]
struct Cli {
    /// Log format on stderr.
    #[arg(long, global = true, env = "BURNIN_LOG_FORMAT", value_enum, default_value_t = burnin_cli::LogFormat::Text)]
    log_format: burnin_cli::LogFormat,

    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run one scan operation through the broker: publish the command,
    /// collect replies, compare with MES, report to the factory, and exit
    /// (0 all passed, 1 a device failed, 2 bad arguments, 3 internal error
    /// or a stage that did not answer in time, 4 no device expected and
    /// none answered).
    #[command(after_help = burnin_cli::logging_help!())]
    Scan(Box<scan::ScanArgs>),
    /// Run as a service: start operations over HTTP (POST /scans), several
    /// at once, recorded in a SQLite state database (or PostgreSQL with
    /// --store, shared by an active edge and standbys) and resumed after a
    /// crash; /healthz and Prometheus /metrics. Stops on SIGTERM/SIGINT.
    #[command(after_help = concat!(
        "HTTP API (docs/protocol.md; GET /openapi.json describes it):\n",
        "  POST /scans  start an operation, Content-Type: application/json, body:\n",
        "    operationId   number or string (required)\n",
        "    operatorId    string, sent in the command and in directBurn\n",
        "    scanMode      integer, sent in the command and in directBurn\n",
        "    target        \"pair\" (default) or \"directBurn\" (needs operatorId and --direct-burn-url)\n",
        "    expected      [serial, ...]: collection ends once all have answered (up to 20,000)\n",
        "    windowSecs    1 to 3600 (default 30)\n",
        "    requireLink   true/false (default: --require-link)\n",
        "    rescan        true: run an id this edge already holds again (a new run); else 409\n",
        "    requireClock  true/false (default: --require-clock)\n",
        "    requireCabling  true/false (default: --require-cabling; needs --cabling-plan)\n",
        "    requirePcieWidth  true/false (default: --require-pcie-width)\n",
        "    settleMs      0 to 60000 (default: --settle)\n",
        "    clockToleranceSecs  (default: --clock-tolerance)\n",
        "    mesOutageWaitSecs   0 to 86400 (default: --mes-outage-wait)\n",
        "    deliveryOutageWaitSecs  0 to 86400 (default: --delivery-outage-wait)\n",
        "  e.g. curl -H 'Content-Type: application/json' -d '{\"operationId\": 42, \"expected\": [\"SN1\"]}' http://127.0.0.1:8080/scans\n",
        "  GET /scans/{id}, GET /scans?limit=N, GET /events, GET /devices/{sn}, GET /healthz, GET /metrics, GET / (the live page)\n\n",
        burnin_cli::logging_help!()
    ))]
    Serve(Box<serve::ServeArgs>),
    /// Run a whole simulated operation in one process: no broker, no MES,
    /// no factory servers needed. Exits as scan does (1: a device failed,
    /// as the default demo's do on purpose).
    #[command(after_help = burnin_cli::logging_help!())]
    Demo(demo::DemoArgs),
    /// Check before a shift, with the same settings as scan and serve: the
    /// broker login and declarations, MES (--probe-serial), the factory
    /// endpoints (OPTIONS, nothing posted), the state database (writable)
    /// and the clock. One line per check, with the fix when it fails; exit
    /// 0 when nothing failed, 3 otherwise, 2 for bad arguments.
    Check(Box<check::CheckArgs>),
    /// Print shell completions to stdout.
    Completions {
        /// The shell.
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
}

/// The async runtime every subcommand runs on (two workers: the edge waits on
/// the network, it does not compute); an error is printed and becomes exit 3.
/// Its threads are named `burnin-edge` (not tokio's `tokio-runtime-w`), so
/// `top -H`, `ps -L` and `perf report --comms burnin-edge` show them as
/// the edge's.
pub(crate) fn runtime() -> Result<tokio::runtime::Runtime, u8> {
    built(
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("burnin-edge"),
    )
}

/// The runtime of a one-shot `scan`: one thread. A scan is one operation,
/// one task that takes each reply, records it and looks it up; on two
/// threads replies and MES answers crossed between them, a wake-up each
/// (the kernel's task switches were 5.8 % of the edge's samples in a
/// profile of 10,000 devices, 3.6 % on one thread: README, "Where the
/// edge's CPU goes"). The broker client's I/O and the store's commits keep
/// their own threads.
pub(crate) fn single_thread_runtime() -> Result<tokio::runtime::Runtime, u8> {
    built(tokio::runtime::Builder::new_current_thread().thread_name("burnin-edge"))
}

fn built(builder: &mut tokio::runtime::Builder) -> Result<tokio::runtime::Runtime, u8> {
    builder.enable_all().build().map_err(|e| {
        eprintln!("error: cannot start the async runtime: {e}");
        exit::INTERNAL
    })
}

fn main() -> ExitCode {
    // Clap errors exit 2, --help and --version 0 (shared with burnin-agent).
    let cli: Cli = match burnin_cli::parse() {
        Ok(cli) => cli,
        Err(code) => return code,
    };
    burnin_cli::init_logging(cli.log_format);
    ExitCode::from(run(cli))
}

fn run(cli: Cli) -> u8 {
    match cli.command {
        Command::Demo(args) => demo::run(args),
        Command::Scan(args) => scan::run(*args),
        Command::Serve(args) => serve::run(*args),
        Command::Check(args) => check::run(*args),
        Command::Completions { shell } => {
            clap_complete::generate(
                shell,
                &mut Cli::command(),
                "burnin-edge",
                &mut std::io::stdout(),
            );
            exit::PASSED
        }
    }
}
