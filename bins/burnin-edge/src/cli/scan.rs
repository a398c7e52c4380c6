//! `burnin-edge scan`: flags → one operation through the broker
//! ([`burnin_service::oneshot`]) or through a serve
//! ([`burnin_service::client`]) → the table or `--json`, and the exit code.

use std::path::PathBuf;
use std::time::Duration;

use burnin_core::edge::OperationReport;
use burnin_core::{
    OperationId, OperationParams, OperationState, PayloadKind, SerialNumber, Target,
};
use burnin_local::SystemClock;
use burnin_service::oneshot::{GRACE, OneShot, ScanEnd};
use burnin_store::SqliteStore;

use crate::cli::broker_args::EdgeBrokerArgs;
use crate::cli::factory::FactoryArgs;
use crate::cli::output::Progress;
use crate::exit;
use burnin_http::HttpMesSource;
use burnin_service::report::{json, table};

/// Flags of `burnin-edge scan`.
#[derive(Debug, clap::Args)]
pub(crate) struct ScanArgs {
    /// The operation id, echoed in every payload: digits only (no leading
    /// zero) is sent as a JSON number, anything else as a string.
    #[arg(long, env = "BURNIN_OPERATION_ID", value_name = "ID")]
    operation_id: String,

    /// Operator, sent in the command and in directBurn (required with `--target direct-burn`).
    #[arg(long, env = "BURNIN_OPERATOR_ID", value_name = "ID")]
    operator_id: Option<String>,

    /// Factory scan mode, sent in the command and in directBurn (default there: 1).
    #[arg(long, env = "BURNIN_SCAN_MODE", value_name = "N")]
    scan_mode: Option<i64>,

    /// Where passing devices are sent after the log.
    #[arg(long, env = "BURNIN_TARGET", value_enum, default_value_t = TargetArg::Pair)]
    target: TargetArg,

    /// A serial that must answer (repeat the flag); collection ends as soon
    /// as every expected serial has replied. Serials may contain commas, so
    /// none is split: for many serials use --expect-file.
    #[arg(long = "expect", env = "BURNIN_EXPECT", value_name = "SN")]
    expect: Vec<String>,

    /// A file of expected serials, one per line (`#` comments and blank lines ignored).
    #[arg(long, env = "BURNIN_EXPECT_FILE", value_name = "FILE")]
    expect_file: Option<PathBuf>,

    /// How long to collect replies: a number with a unit, from 1s to 1h
    /// (30s, 2m, 1m30s).
    #[arg(long, env = "BURNIN_WINDOW", value_name = "DURATION", default_value = "30s",
          value_parser = parse_window)]
    window: Duration,

    /// requireLink: an interface without carrier (link down, unreadable,
    /// or not reported by an older agent) makes its MAC's scanstatus "0".
    #[arg(long, env = "BURNIN_REQUIRE_LINK")]
    require_link: bool,

    /// Run an operation id again that --state-db already holds (a new run
    /// of it, with idempotency keys of its own). Without it such an id is
    /// refused (exit 2), naming when it ran.
    #[arg(long, env = "BURNIN_RESCAN")]
    rescan: bool,

    #[command(flatten)]
    rules: crate::cli::rule_args::RuleArgs,

    /// Print `{"operationId", "state", "devices": [{"sn", "result",
    /// "macinfo", "findings"?, "details"?, "location"?}], "replies": {"accepted", "duplicate", "rejected",
    /// "redelivered"}, "error"?}` instead of a table. `replies` counts reply
    /// messages as the edge saw them: accepted (one per serial), duplicate
    /// (a serial's further replies), rejected (to the rejected queue);
    /// redelivered = how many of those the broker flagged as delivered
    /// before.
    #[arg(long, env = "BURNIN_JSON")]
    json: bool,

    /// Record the operation in this SQLite state database (the one `serve`
    /// uses) instead of in memory; an id unfinished there is refused.
    #[arg(long, env = "BURNIN_STATE_DB", value_name = "FILE")]
    state_db: Option<PathBuf>,

    /// Run the operation through the running `burnin-edge serve` at URL
    /// (its API: POST /scans, then its event stream) instead of consuming
    /// the reply queue here: for a one-off scan while serve runs on the
    /// vhost (one edge consumes a reply queue). Prints the same table or
    /// JSON, with the same exit codes. The broker, factory and --state-db
    /// flags are the serve's; given here, they are not used.
    #[arg(long, env = "BURNIN_EDGE_URL", value_name = "URL")]
    edge_url: Option<String>,

    /// The serve's --api-token, sent as `Authorization: Bearer` (with --edge-url).
    #[arg(
        long,
        env = "BURNIN_API_TOKEN",
        value_name = "TOKEN",
        hide_env_values = true
    )]
    api_token: Option<String>,

    #[command(flatten)]
    broker: EdgeBrokerArgs,

    #[command(flatten)]
    factory: FactoryArgs,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum TargetArg {
    /// The Pair API (`--pair-url`).
    Pair,
    /// The directBurn API (`--direct-burn-url`, `--operator-id`).
    DirectBurn,
}

use burnin_core::request::MAX_WINDOW;

/// Reads expected serials: `--expect` values then the file's lines, each
/// validated, duplicates dropped (first position kept).
pub(crate) fn expected_serials(
    flags: &[String],
    file: Option<&PathBuf>,
) -> Result<Vec<SerialNumber>, String> {
    let mut out: Vec<SerialNumber> = Vec::new();
    // A set beside the list: a list searched for each serial made reading
    // 10,000 of them cost 50 million comparisons.
    let mut seen: std::collections::HashSet<SerialNumber> = std::collections::HashSet::new();
    let mut push = |sn: SerialNumber| {
        if seen.insert(sn.clone()) {
            out.push(sn);
        }
    };
    for raw in flags {
        let sn = SerialNumber::new(raw.trim()).map_err(|e| format!("--expect {raw:?}: {e}"))?;
        push(sn);
    }
    if let Some(path) = file {
        let text = std::fs::read_to_string(path).map_err(|e| {
            format!(
                "--expect-file {}: {e}; give a readable text file with one serial per line",
                path.display()
            )
        })?;
        for (n, line) in text.lines().enumerate() {
            let line = line.split('#').next().unwrap_or_default().trim();
            if line.is_empty() {
                continue;
            }
            let sn = SerialNumber::new(line)
                .map_err(|e| format!("--expect-file {} line {}: {e}", path.display(), n + 1))?;
            push(sn);
        }
    }
    Ok(out)
}

impl ScanArgs {
    fn params(&self) -> Result<OperationParams, String> {
        let id = OperationId::from_cli(&self.operation_id)
            .map_err(|e| format!("--operation-id: {e}"))?;
        if self.window < Duration::from_secs(1) || self.window > MAX_WINDOW {
            return Err(format!(
                "--window {} is out of range; give a duration between 1s and 1h",
                humantime::format_duration(self.window)
            ));
        }
        let target = match self.target {
            TargetArg::Pair => Target::Pair,
            TargetArg::DirectBurn => Target::DirectBurn,
        };
        if target == Target::DirectBurn && self.operator_id.is_none() {
            return Err("--target direct-burn needs --operator-id ID (sent in directBurn)".into());
        }
        let mut p = OperationParams::new(id);
        p.operator_id = self.operator_id.clone();
        p.scan_mode = self.scan_mode;
        p.target = target;
        p.expected = expected_serials(&self.expect, self.expect_file.as_ref())?;
        p.window = self.window;
        p.reply_to = self.broker.reply_queue().to_owned();
        p.require_link = self.require_link;
        p.rescan = self.rescan;
        self.rules.apply(&mut p)?;
        Ok(p)
    }
}

pub(crate) fn run(args: ScanArgs) -> u8 {
    // Everything that can be checked without a network is checked first.
    let params = match args.params() {
        Ok(p) => p,
        Err(e) => return usage(&e),
    };
    if let Some(url) = &args.edge_url {
        if let Some(plan) = &args.rules.cabling_plan {
            return usage(&format!(
                "--cabling-plan {} with --edge-url: the serve judges with its own plan                  (serve --cabling-plan); leave it out here",
                plan.display()
            ));
        }
        return crate::cli::remote::run(url, args.api_token.clone(), &params, args.json);
    }
    let amqp = match args.broker.config(&format!(
        "burnin-edge {} (scan {})",
        burnin_cli::host_name(),
        params.operation_id
    )) {
        Ok(c) => c,
        Err(e) => return usage(&e),
    };
    // Without --state-db the same store runs in memory: one code path.
    let store = match &args.state_db {
        Some(path) => SqliteStore::open(path),
        None => SqliteStore::in_memory_one_shot(),
    };
    let store = match store {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {e}");
            return exit::USAGE;
        }
    };
    let rt = match crate::single_thread_runtime() {
        Ok(rt) => rt,
        Err(code) => return code,
    };
    let code = rt.block_on(async move {
        // reqwest's client must be built inside the runtime.
        let factory = match args.factory.config().build(params.target) {
            Ok(f) => f,
            Err(e) => return usage(&e),
        };
        let mes_http = factory.mes_http.clone();
        let job = OneShot {
            params: params.clone(),
            amqp,
            factory,
            store,
            store_shown: args.state_db.as_ref().map_or_else(
                || ":memory:".to_owned(),
                |p| p.display().to_string(),
            ),
        };
        let (connect, limit) = job.budgets();
        tracing::info!(
            broker = %job.amqp.redacted_url(),
            factory = %job.factory.describe,
            "starting scan; it ends within {} at the latest (connecting {}, window {}, MES outage wait {}, factory outage wait {}, reporting budget {}, grace {})",
            humantime::format_duration(connect.saturating_add(limit)),
            humantime::format_duration(connect),
            humantime::format_duration(params.window),
            humantime::format_duration(params.mes_outage_wait),
            humantime::format_duration(params.delivery_outage_wait),
            humantime::format_duration(job.factory.bounds.reporting()),
            humantime::format_duration(GRACE),
        );
        let progress = Progress::new(params.expected.len());
        let report = match job.run(&progress).await {
            ScanEnd::Ran(report) => report,
            ScanEnd::NotRecorded(report) => {
                eprintln!("error: {}", report.error.as_deref().unwrap_or_default());
                report
            }
            ScanEnd::Refused(why) => return usage(&why),
            ScanEnd::Stalled {
                operation_id,
                error,
                expected,
                started,
            } => {
                eprintln!("error: {error}");
                failed_report(operation_id, error, expected, started, &progress)
            }
            ScanEnd::QueueInUse(error) => {
                // Nothing is sent to the factory: see ScanEnd::QueueInUse.
                eprintln!("error: {error}");
                if args.json {
                    let now = burnin_core::Clock::now(&SystemClock);
                    let report =
                        failed_report(params.operation_id, error, params.expected.len(), now, &progress);
                    println!("{}", json(&report, None));
                } else {
                    println!(
                        "operation {}: not started; nothing was sent to the factory",
                        params.operation_id
                    );
                }
                return exit::INTERNAL;
            }
            ScanEnd::BrokerFailed(report) => {
                eprintln!("error: {}", report.error.as_deref().unwrap_or_default());
                // No device was asked: no table, only what became of the
                // notification (the --json document stays, for scripts).
                if args.json {
                    let limit = mes_http.as_ref().map(HttpMesSource::concurrency_limit);
                    println!("{}", json(&report, limit));
                } else {
                    println!("{}", notification_outcome(&report, &progress));
                }
                return exit_code(&report);
            }
        };
        print_report(&report, args.json, mes_http.as_ref());
        exit_code(&report)
    });
    // A store write that ran out of its bound may still sit in the
    // blocking pool: do not wait for it.
    rt.shutdown_timeout(Duration::from_secs(1));
    code
}

/// A failed operation without results (they were never computed): the
/// reply counters seen so far, and the error.
fn failed_report(
    operation_id: OperationId,
    error: String,
    expected: usize,
    started: burnin_core::Timestamp,
    progress: &Progress,
) -> OperationReport {
    let now = burnin_core::Clock::now(&SystemClock);
    OperationReport {
        operation_id,
        state: OperationState::Failed,
        devices: Vec::new(),
        error: Some(error),
        counters: progress.counters(),
        expected,
        started,
        collected: now,
        finished: now,
    }
}

fn print_report(report: &OperationReport, as_json: bool, mes: Option<&HttpMesSource>) {
    let hint = burnin_service::report::mes_hint(report, |sn| {
        mes.and_then(|m| m.url_for(sn).ok())
            .map(|u| burnin_http::redact_url(u.as_str()))
    });
    if as_json {
        let limit = mes.map(HttpMesSource::concurrency_limit);
        println!(
            "{}",
            burnin_service::report::json_with_hint(report, limit, hint)
        );
    } else {
        print!("{}", table(report));
        if let Some(h) = hint {
            println!("hint: {h}");
        }
    }
}

fn usage(message: &str) -> u8 {
    eprintln!("error: {message}");
    eprintln!("\nFor more information, try 'burnin-edge scan --help'.");
    exit::USAGE
}

/// What became of the notification of an operation that could not start.
fn notification_outcome(report: &OperationReport, progress: &Progress) -> String {
    match progress.delivery(PayloadKind::Notify) {
        Some(None) => format!(
            "operation {}: not started; the notification with the error was delivered",
            report.operation_id
        ),
        Some(Some(e)) => format!(
            "operation {}: not started; the notification could not be delivered either: {e}",
            report.operation_id
        ),
        None => format!(
            "operation {}: not started; no notification was sent",
            report.operation_id
        ),
    }
}

/// `--window`: a duration from 1 s to 1 h (the range operations take). The
/// error gives examples that are accepted (humantime's own "time unit
/// needed, for example 30sec or 30ms" suggested one that is not).
pub(crate) fn parse_window(text: &str) -> Result<Duration, String> {
    let range = "give a duration between 1s and 1h with its unit, for example 30s, 2m or 1m30s";
    let d = humantime::parse_duration(text)
        .map_err(|_| format!("{text:?} is not a duration; {range}"))?;
    if d < Duration::from_secs(1) || d > MAX_WINDOW {
        return Err(format!("{text} is out of range; {range}"));
    }
    Ok(d)
}

/// SPEC §7: 0 all passed, 1 completed with a failing device, 3 internal
/// error; and 4 when the operation completed with no device at all (none
/// expected, none answered).
pub(crate) fn exit_code(report: &OperationReport) -> u8 {
    match report.state {
        OperationState::Done if report.devices.is_empty() => exit::NO_DEVICES,
        OperationState::Done if report.all_passed() => exit::PASSED,
        OperationState::Done => exit::DEVICE_FAILED,
        _ => exit::INTERNAL,
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[test]
    fn every_window_the_error_suggests_is_accepted() {
        for bad in ["30", "30ms", "999ms", "2h", "soon", ""] {
            let e = parse_window(bad).unwrap_err();
            assert!(e.contains("for example 30s, 2m or 1m30s"), "{bad}: {e}");
            for example in ["30s", "2m", "1m30s"] {
                assert!(parse_window(example).is_ok(), "{example}");
            }
        }
        assert_eq!(parse_window("1s"), Ok(Duration::from_secs(1)));
        assert_eq!(parse_window("1h"), Ok(MAX_WINDOW));
    }

    #[derive(Debug, Parser)]
    struct Wrap {
        #[command(flatten)]
        scan: ScanArgs,
    }

    #[test]
    fn a_serial_with_a_comma_stays_one_serial() {
        let w = Wrap::try_parse_from([
            "scan",
            "--amqp-url",
            "amqp://h/",
            "--operation-id",
            "1",
            "--expect",
            "A,B",
            "--expect",
            "C",
        ])
        .unwrap();
        let sns = expected_serials(&w.scan.expect, None).unwrap();
        let sns: Vec<&str> = sns.iter().map(SerialNumber::as_str).collect();
        assert_eq!(sns, ["A,B", "C"]);
    }
}
