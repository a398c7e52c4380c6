//! # burnin-cli
//!
//! What `burnin-agent` and `burnin-edge` share as command lines, so it is
//! written once:
//!
//! * [`parse`]: parses the flags; `--help` and `--version` print and exit
//!   0, any other clap error prints clap's message and exits
//!   [`EXIT_USAGE`] (2, SPEC §7).
//! * [`init_logging`]: tracing to stderr, as text or one JSON object per
//!   line ([`LogFormat`], `--log-format`); levels from `RUST_LOG`.
//!
//! * [`BrokerArgs`]: the broker flags (`--amqp-url`, `--amqp-ca-file`,
//!   `--exchange`, `--connection-name`) and [`host_name`]. The URL and
//!   CA-file rules are `burnin_amqp::AmqpConfig::validate`'s, next to the
//!   code that uses them.
//!
//! ## Logging levels
//!
//! `RUST_LOG` is a list of `LEVEL` and `TARGET=LEVEL` (`debug`,
//! `info,burnin_amqp=debug`; tracing-subscriber's `Targets` syntax — no
//! span filters or regexes, which keeps the agent binary small). Without
//! it: `info`, and lapin's and amq-protocol's own messages left out: they
//! are for their developers (a refused login came out as a raw `Close {
//! reply_code: 403, … }` and "aborting recovery" while burnin kept
//! retrying), and burnin reports every broker error itself, in words
//! (`RUST_LOG=info,lapin=warn` shows them again). A `RUST_LOG` that does not parse is reported as
//! a warning and the default is used.
//!
//! ```no_run
//! use clap::Parser;
//!
//! #[derive(Parser)]
//! struct Cli {
//!     #[arg(long, value_enum, default_value_t = burnin_cli::LogFormat::Text)]
//!     log_format: burnin_cli::LogFormat,
//! }
//!
//! fn main() -> std::process::ExitCode {
//!     let cli: Cli = match burnin_cli::parse() {
//!         Ok(cli) => cli,
//!         Err(code) => return code,
//!     };
//!     burnin_cli::init_logging(cli.log_format);
//!     tracing::info!("started");
//!     std::process::ExitCode::SUCCESS
//! }
//! ```

mod broker;

pub use broker::{BrokerArgs, host_name};

use std::io::IsTerminal;
use std::process::ExitCode;

use tracing_subscriber::filter::{LevelFilter, Targets};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

/// The `--help` paragraph on logging, as a literal (for `concat!`), so
/// both binaries say the same: put it in each command's `after_help`.
#[macro_export]
macro_rules! logging_help {
    () => {
        "Logging: lines go to stderr (the journal under systemd); --log-format json \
         writes one JSON object per line. RUST_LOG sets the levels: a LEVEL (error, warn, \
         info, debug, trace) and/or TARGET=LEVEL pairs, separated by commas, e.g. \
         RUST_LOG=debug or RUST_LOG=info,burnin_amqp=debug. Unset: info, with the AMQP \
         library's own messages off (burnin reports broker errors itself; \
         RUST_LOG=info,lapin=warn shows them)."
    };
}

/// Exit code for bad arguments or configuration (SPEC §7).
pub const EXIT_USAGE: u8 = 2;

/// Parses the process's arguments into `C`. On `--help` or `--version`
/// prints them and returns exit code 0; on any other error prints clap's
/// message (naming the flag) and returns [`EXIT_USAGE`]. Either way the
/// caller returns the code from `main`.
pub fn parse<C: clap::Parser>() -> Result<C, ExitCode> {
    parse_from(std::env::args_os())
}

/// [`parse`] over the given arguments (the first is the program name).
pub fn parse_from<C, I, T>(args: I) -> Result<C, ExitCode>
where
    C: clap::Parser,
    I: IntoIterator<Item = T>,
    T: Into<std::ffi::OsString> + Clone,
{
    C::try_parse_from(args).map_err(|e| {
        let _ = e.print();
        ExitCode::from(exit_code(&e))
    })
}

/// The exit code for a clap error: 0 for `--help`/`--version` (they are
/// printed to stdout), else [`EXIT_USAGE`].
pub fn exit_code(e: &clap::Error) -> u8 {
    if e.use_stderr() { EXIT_USAGE } else { 0 }
}

/// `--log-format`: how log lines on stderr look.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines (coloured when stderr is a terminal).
    #[default]
    Text,
    /// One JSON object per line (for journald and log shippers).
    Json,
}

/// The default levels: `info`, lapin and amq-protocol off (see the
/// [crate docs](crate)).
fn default_filter() -> Targets {
    Targets::new()
        .with_default(LevelFilter::INFO)
        .with_target("lapin", LevelFilter::OFF)
        .with_target("amq_protocol", LevelFilter::OFF)
}

/// Sends tracing events to stderr in `format`, levels from `RUST_LOG` (see
/// the [crate docs](crate)). A second call does nothing.
pub fn init_logging(format: LogFormat) {
    let from_env = std::env::var("RUST_LOG").ok();
    let parsed = from_env.as_deref().map(str::parse::<Targets>);
    let filter = match &parsed {
        Some(Ok(targets)) => targets.clone(),
        _ => default_filter(),
    };
    let fmt = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_target(false);
    let registry = tracing_subscriber::registry().with(filter);
    let _ = match format {
        LogFormat::Text => registry
            .with(fmt.with_ansi(std::io::stderr().is_terminal()))
            .try_init(),
        LogFormat::Json => registry.with(fmt.json().flatten_event(true)).try_init(),
    };
    if let Some(Err(e)) = parsed {
        tracing::warn!("RUST_LOG is not a list of LEVEL or TARGET=LEVEL ({e}); logging at info");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, clap::Parser)]
    #[command(name = "t", version)]
    struct Cli {
        #[arg(long)]
        n: u8,
    }

    #[test]
    fn clap_errors_are_exit_2_and_help_is_exit_0() {
        use clap::Parser;
        let e = Cli::try_parse_from(["t", "--n", "300"]).unwrap_err();
        assert_eq!(exit_code(&e), EXIT_USAGE);
        let e = Cli::try_parse_from(["t"]).unwrap_err();
        assert_eq!(exit_code(&e), EXIT_USAGE);
        let e = Cli::try_parse_from(["t", "--bogus"]).unwrap_err();
        assert_eq!(exit_code(&e), EXIT_USAGE);
        for flag in ["--help", "--version"] {
            let e = Cli::try_parse_from(["t", flag]).unwrap_err();
            assert_eq!(exit_code(&e), 0, "{flag}");
        }
        let cli: Cli = parse_from(["t", "--n", "7"]).unwrap();
        assert_eq!(cli.n, 7);
        assert!(parse_from::<Cli, _, _>(["t", "--n", "x"]).is_err());
    }

    #[test]
    fn lapin_chatter_is_left_out_by_default() {
        let f = default_filter();
        assert!(f.would_enable("burnin_edge", &tracing::Level::INFO));
        assert!(!f.would_enable("burnin_edge", &tracing::Level::DEBUG));
        assert!(!f.would_enable("lapin::channel", &tracing::Level::INFO));
        // burnin says what a lapin error means; lapin's own ERROR lines
        // (raw `Close { … }`, "aborting recovery") are not shown.
        assert!(!f.would_enable("lapin::channel", &tracing::Level::ERROR));
        assert!(!f.would_enable("amq_protocol", &tracing::Level::ERROR));
    }
}
