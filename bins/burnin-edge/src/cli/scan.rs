//! `burnin-edge scan`: run one operation through the broker and exit.

use std::path::PathBuf;
use std::time::Duration;

use burnin_amqp::AmqpError;
use burnin_core::edge::{OperationReport, report_abort};
use burnin_core::{
    OperationId, OperationParams, OperationState, PayloadKind, SerialNumber, StoreError, Target,
};
use burnin_local::SystemClock;
use burnin_service::bounds::Waits;
use burnin_service::{Bounds, PortStack};
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
    /// "macinfo", "findings"?}], "replies": {"accepted", "duplicate", "rejected",
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
    let mut push = |sn: SerialNumber| {
        if !out.contains(&sn) {
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
    let rt = match crate::runtime() {
        Ok(rt) => rt,
        Err(code) => return code,
    };
    let code = rt.block_on(async move {
        // reqwest's client must be built inside the runtime.
        let factory = match args.factory.build(params.target) {
            Ok(f) => f,
            Err(e) => return usage(&e),
        };
        let bounds = factory.bounds;
        let waits = Waits::new();
        let ports = PortStack::new(bounds, waits.clone(), factory.mes, factory.reporter, store);
        // The connection attempt has its own timeout; declaring the queues
        // and starting the consumer get the broker bound on top.
        let connect_budget = amqp.connect_timeout.saturating_add(bounds.broker);
        // A MES outage is waited out before reporting (SPEC §11.3).
        let limit = params
            .window
            .saturating_add(params.mes_outage_wait)
            .saturating_add(bounds.reporting())
            .saturating_add(GRACE);
        tracing::info!(
            broker = %amqp.redacted_url(),
            factory = %factory.describe,
            "starting scan; it ends within {} at the latest (connecting {}, window {}, MES outage wait {}, reporting budget {}, grace {})",
            humantime::format_duration(connect_budget.saturating_add(limit)),
            humantime::format_duration(connect_budget),
            humantime::format_duration(params.window),
            humantime::format_duration(params.mes_outage_wait),
            humantime::format_duration(bounds.reporting()),
            humantime::format_duration(GRACE),
        );
        let progress = Progress::new(params.expected.len());
        let shown = amqp.redacted_url();
        let connected = match tokio::time::timeout(connect_budget, burnin_amqp::edge::connect(amqp)).await {
            Ok(Ok(c)) => Ok(c),
            Ok(Err(e @ AmqpError::QueueInUse { .. })) => {
                return queue_in_use(&e, &params, args.json, &progress);
            }
            Ok(Err(e)) => Err(e.to_string()),
            Err(_) => Err(format!(
                "connecting to the broker at {shown} did not finish within {}: it accepted the \
                 connection but did not complete the AMQP handshake and the declarations; check \
                 that this is RabbitMQ's port and that the broker is not blocked (rabbitmqctl status)",
                humantime::format_duration(connect_budget)
            )),
        };
        let report = match connected {
            Ok((publisher, replies)) => {
                // Recorded only once the broker is usable, so a scan that
                // could not start leaves nothing unfinished in --state-db.
                let op = match ports.start(params.clone(), &SystemClock).await {
                    Ok(op) => op,
                    Err(e @ StoreError::Held { .. }) => {
                        close(&publisher, bounds).await;
                        return usage(&format!(
                            "{e} (--state-db {})",
                            store_path(&args.state_db)
                        ));
                    }
                    Err(StoreError::Running(id)) => {
                        close(&publisher, bounds).await;
                        return usage(&format!(
                            "operation {id} is unfinished in --state-db {path}; let `burnin-edge serve \
                             --state-db {path}` resume it, or use another --operation-id",
                            path = store_path(&args.state_db),
                        ));
                    }
                    Err(e) => {
                        close(&publisher, bounds).await;
                        let error = format!("the operation could not be recorded: {e}");
                        eprintln!("error: {error}");
                        let report =
                            report_abort(params, error, ports.reporter(), &SystemClock, &progress)
                                .await;
                        print_report(&report, args.json, factory.mes_http.as_ref());
                        return exit_code(&report);
                    }
                };
                let started = op.started();
                let id = op.id().clone();
                let expected = op.expected_count();
                let run = ports.run(op, &publisher, replies, &SystemClock, &progress);
                // The last resort: every wait above has a bound of its own,
                // so this only fires if something unforeseen hangs.
                let report = match tokio::time::timeout(limit, run).await {
                    Ok(report) => report,
                    Err(_) => {
                        let waiting = waits.oldest().map_or_else(
                            || "no call in progress could be named".to_owned(),
                            |(what, since)| {
                                format!(
                                    "still waiting for {what} after {}",
                                    humantime::format_duration(Duration::from_secs(since.as_secs()))
                                )
                            },
                        );
                        let error = format!(
                            "the operation stalled: {waiting}; gave up at its bound of {} \
                             (window + reporting budget + grace)",
                            humantime::format_duration(limit)
                        );
                        eprintln!("error: {error}");
                        stalled_report(id, error, expected, started, &progress)
                    }
                };
                close(&publisher, bounds).await;
                report
            }
            Err(e) => {
                let error = format!("the broker could not be used: {e}");
                eprintln!("error: {error}");
                eprintln!("sending the notification with this error");
                let report =
                    report_abort(params, error, ports.reporter(), &SystemClock, &progress).await;
                // No device was asked: no table, only what became of the
                // notification (the --json document stays, for scripts).
                if args.json {
                    let limit = factory
                        .mes_http
                        .as_ref()
                        .map(HttpMesSource::concurrency_limit);
                    println!("{}", json(&report, limit));
                } else {
                    println!("{}", notification_outcome(&report, &progress));
                }
                return exit_code(&report);
            }
        };
        print_report(&report, args.json, factory.mes_http.as_ref());
        exit_code(&report)
    });
    // A store write that ran out of its bound may still sit in the
    // blocking pool: do not wait for it.
    rt.shutdown_timeout(Duration::from_secs(1));
    code
}

/// Another edge consumes the reply queue (SPEC §11.3): exit 3 naming it.
/// Nothing is sent to the factory: the operation never started here, and
/// the edge holding the queue may be running one of the same id, whose
/// notification (same `Idempotency-Key`) must not be preempted.
fn queue_in_use(e: &AmqpError, params: &OperationParams, as_json: bool, progress: &Progress) -> u8 {
    let AmqpError::QueueInUse { queue, detail } = e else {
        return exit::INTERNAL;
    };
    let error = format!(
        "another edge consumes {queue} on this vhost ({detail}); use its API \
         (`burnin-edge scan --edge-url URL`, the URL of its `serve`) or another vhost"
    );
    eprintln!("error: {error}");
    if as_json {
        let now = burnin_core::Clock::now(&SystemClock);
        let report = OperationReport {
            operation_id: params.operation_id.clone(),
            state: OperationState::Failed,
            devices: Vec::new(),
            error: Some(error),
            counters: progress.counters(),
            expected: params.expected.len(),
            started: now,
            collected: now,
            finished: now,
        };
        println!("{}", json(&report, None));
    } else {
        println!(
            "operation {}: not started; nothing was sent to the factory",
            params.operation_id
        );
    }
    exit::INTERNAL
}

/// After the reporting budget, what is left for closing and the store.
const GRACE: Duration = Duration::from_secs(5);

/// Closes the broker connection, giving up after the broker bound.
async fn close(publisher: &burnin_amqp::AmqpCommandPublisher, bounds: Bounds) {
    if tokio::time::timeout(bounds.broker, publisher.close())
        .await
        .is_err()
    {
        tracing::warn!("the broker did not acknowledge closing the connection; leaving it");
    }
}

fn store_path(state_db: &Option<PathBuf>) -> String {
    state_db
        .as_ref()
        .map_or_else(|| ":memory:".to_owned(), |p| p.display().to_string())
}

/// What a stalled operation has: no results (they were never computed),
/// the reply counters seen so far, and the error.
fn stalled_report(
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
