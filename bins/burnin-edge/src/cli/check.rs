//! `burnin-edge check`: flags → [`burnin_service::check::CheckConfig`] →
//! one line per check (see [`burnin_service::check`] for what each does).
//! Exit 0 when nothing failed, 3 otherwise, 2 for bad arguments.

use std::path::PathBuf;

use burnin_core::SerialNumber;
use burnin_service::check::{self, CheckConfig};
use serde_json::json;

use crate::cli::broker_args::EdgeBrokerArgs;
use crate::cli::factory::FactoryArgs;
use crate::exit;

/// Flags of `burnin-edge check`.
#[derive(Debug, clap::Args)]
pub(crate) struct CheckArgs {
    /// A serial to look up on MES (required with --mes-url): a 200 record
    /// or a 404 both prove MES answers; the line says which.
    #[arg(long, env = "BURNIN_PROBE_SERIAL", value_name = "SN")]
    probe_serial: Option<String>,

    /// The SQLite state database `serve` will use (checked writable).
    #[arg(
        long,
        env = "BURNIN_STATE_DB",
        value_name = "FILE",
        default_value = "burnin-edge.sqlite3"
    )]
    state_db: PathBuf,

    /// `serve`'s PostgreSQL store, if used: the state-db check is then
    /// skipped (this check does not connect to PostgreSQL).
    #[arg(long, env = "BURNIN_STORE", value_name = "URL", hide_env_values = true)]
    store: Option<String>,

    /// Print `{"ok": bool, "checks": [{"check", "status" ("ok", "fail" or
    /// "skip"), "detail", "fix"?}]}` instead of lines.
    #[arg(long, env = "BURNIN_JSON")]
    json: bool,

    /// The cabling plan `scan`/`serve` will read (SPEC §11.1): checked to
    /// parse, with the line and column of what is wrong.
    #[arg(long, env = "BURNIN_CABLING_PLAN", value_name = "FILE")]
    cabling_plan: Option<PathBuf>,

    #[command(flatten)]
    broker: EdgeBrokerArgs,

    #[command(flatten)]
    factory: FactoryArgs,
}

pub(crate) fn run(args: CheckArgs) -> u8 {
    let amqp = match args
        .broker
        .config(&format!("burnin-edge {} (check)", burnin_cli::host_name()))
    {
        Ok(c) => c,
        Err(e) => return usage(&e),
    };
    let probe_serial = match args
        .probe_serial
        .as_deref()
        .map(|s| SerialNumber::new(s.trim()))
    {
        None => None,
        Some(Ok(sn)) => Some(sn),
        Some(Err(e)) => return usage(&format!("--probe-serial: {e}")),
    };
    let config = CheckConfig {
        amqp,
        probe_serial,
        factory: args.factory.config(),
        state_db: args.state_db,
        postgres_store: args.store.is_some(),
        cabling_plan: args.cabling_plan,
    };
    let rt = match crate::runtime() {
        Ok(rt) => rt,
        Err(code) => return code,
    };
    let lines = match rt.block_on(check::run(config)) {
        Ok(l) => l,
        Err(e) => return usage(&e),
    };
    let ok = check::passed(&lines);
    if args.json {
        println!("{}", json!({"ok": ok, "checks": lines}));
    } else {
        print!("{}", check::render(&lines));
    }
    if ok { exit::PASSED } else { exit::INTERNAL }
}

fn usage(message: &str) -> u8 {
    eprintln!("error: {message}");
    exit::USAGE
}
