//! `burnin-edge check` as a library: a pre-shift check of everything an operation needs
//! — the broker login and declarations, MES, the factory endpoints, the
//! state database and the clock — without starting an operation.
//!
//! [`run`] gives one [`CheckLine`] per check: ok, failed (with the fix)
//! or skipped (with why); [`render`] prints them as `burnin-edge check`
//! does, and a line serialises as `check --json` shows it. What each check
//! does, and does not do:
//!
//! * **broker**: logs in as `scan`/`serve` would and declares the exchange,
//!   the reply queue and the rejected queue with the edge's arguments
//!   (login, vhost, `configure` permission, conflicting declarations);
//!   reads the reply queue only when it is empty with no consumer
//!   ([`burnin_amqp::check_edge`]). No command is published, no reply
//!   taken: `write` on the exchange is therefore not proven.
//! * **mes**: one lookup of `--probe-serial`, one attempt: 200 (a record)
//!   and 404 (unknown) both prove MES answers; the line says which.
//! * **factory endpoints**: one `OPTIONS` request to each configured URL,
//!   with the token, one attempt — never a POST of a payload. Any answer
//!   passes except 401/403/407 (the token or proxy credentials refused),
//!   a 3xx (burnin does not follow redirects) and 502/503/504 (a proxy or
//!   the server says it is down). With `--out-dir`: a file is created and
//!   removed in the folder.
//! * **state-db**: an existing file is opened read-write and a table is
//!   created inside a transaction that is rolled back; a file not there yet
//!   needs a folder this user may create files in (a file is created and
//!   removed there). A PostgreSQL `--store` is not checked (skip).
//! * **clock**: the local clock against the `Date` header of the MES or a
//!   factory answer; more than 2 minutes apart fails (deadlines in
//!   commands are absolute times).

use std::fmt::Write as _;
use std::io::ErrorKind;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use burnin_core::{MesAnswer, MesError, MesSource, PayloadKind, SerialNumber};
use burnin_store::writable::{Refusal, WriteRefused, try_write};
use serde::Serialize;

use crate::factory::{FactoryConfig, Probes};

/// The largest clock difference that passes.
const CLOCK_TOLERANCE: Duration = Duration::from_secs(120);

/// What to check: the flags of `burnin-edge check`.
#[derive(Debug, Clone)]
pub struct CheckConfig {
    /// The edge's broker settings (as `scan`/`serve` would log in).
    pub amqp: burnin_amqp::AmqpConfig,
    /// A serial to look up on MES (required with an HTTP MES).
    pub probe_serial: Option<SerialNumber>,
    /// MES and the factory endpoints, or the files.
    pub factory: FactoryConfig,
    /// The SQLite state database `serve` will use.
    pub state_db: PathBuf,
    /// `serve` uses a PostgreSQL store instead: the state-db check is
    /// skipped (this check does not connect to PostgreSQL).
    pub postgres_store: bool,
    /// The cabling plan `scan`/`serve` will read (SPEC §11.1), if any:
    /// checked to parse.
    pub cabling_plan: Option<PathBuf>,
}

/// How a check ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum CheckStatus {
    /// Passed.
    Ok,
    /// Failed: the line has a fix.
    Fail,
    /// Not checked: the detail says why.
    Skip,
}

/// One check's line; serialises as `{"check", "status", "detail", "fix"?}`.
#[derive(Debug, Clone, Serialize)]
pub struct CheckLine {
    /// Which check (`broker`, `mes`, `log-url`, `state-db`, `clock`, …).
    pub check: String,
    /// How it ended.
    pub status: CheckStatus,
    /// What was found.
    pub detail: String,
    /// What to do about a failure.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fix: Option<String>,
}

impl CheckLine {
    fn ok(check: &str, detail: impl Into<String>) -> Self {
        CheckLine {
            check: check.into(),
            status: CheckStatus::Ok,
            detail: detail.into(),
            fix: None,
        }
    }
    fn fail(check: &str, detail: impl Into<String>, fix: impl Into<String>) -> Self {
        CheckLine {
            check: check.into(),
            status: CheckStatus::Fail,
            detail: detail.into(),
            fix: Some(fix.into()),
        }
    }
    fn skip(check: &str, detail: impl Into<String>) -> Self {
        CheckLine {
            check: check.into(),
            status: CheckStatus::Skip,
            detail: detail.into(),
            fix: None,
        }
    }
}

/// Runs every check, in order: broker, MES and the factory endpoints (or
/// the files), the state database, the clock.
///
/// # Errors
///
/// A configuration that cannot be checked (an incomplete factory, or an
/// HTTP MES without `probe_serial`), in words naming the flag.
pub async fn run(config: CheckConfig) -> Result<Vec<CheckLine>, String> {
    // reqwest's client must be built inside the runtime.
    let probes = config.factory.probes()?;
    if matches!(probes, Probes::Http { .. }) && config.probe_serial.is_none() {
        return Err(
            "check needs --probe-serial SN with --mes-url: a serial to look up on MES \
             (a known one shows its record; an unknown one still proves MES answers)"
                .into(),
        );
    }
    let mut lines = vec![check_broker(config.amqp).await];
    let mut dates = Vec::new();
    lines.extend(check_factory(&probes, config.probe_serial.as_ref(), &mut dates).await);
    lines.push(if config.postgres_store {
        CheckLine::skip(
            "state-db",
            "--store (PostgreSQL) is used: not checked here; --state-db is not used",
        )
    } else {
        check_state_db(&config.state_db)
    });
    lines.push(check_clock(&dates));
    if let Some(path) = &config.cabling_plan {
        lines.push(check_cabling_plan(path));
    }
    Ok(lines)
}

/// Whether the cabling plan parses, and how many rows it has.
fn check_cabling_plan(path: &Path) -> CheckLine {
    const NAME: &str = "cabling-plan";
    let shown = path.display();
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) => {
            return CheckLine::fail(
                NAME,
                format!("{shown}: cannot read it: {e}"),
                "give --cabling-plan a readable file (or leave it out)",
            );
        }
    };
    match burnin_core::cabling::CablingPlan::parse(&bytes) {
        Ok(plan) => {
            let named = plan.rows().iter().filter(|r| r.sn.is_some()).count();
            CheckLine::ok(
                NAME,
                format!(
                    "{shown}: {} rows, {named} naming a serial",
                    plan.rows().len()
                ),
            )
        }
        Err(e) => CheckLine::fail(
            NAME,
            format!("{shown}: {e}"),
            format!(
                "fix line {} of the plan; scan and serve refuse to start with it",
                e.line
            ),
        ),
    }
}

/// Whether every check passed or was skipped.
pub fn passed(lines: &[CheckLine]) -> bool {
    lines.iter().all(|l| l.status != CheckStatus::Fail)
}

/// The lines as `burnin-edge check` prints them: `ok`, `FAIL` or `skip`,
/// the check's name, what was found, and the fix after a failure.
pub fn render(lines: &[CheckLine]) -> String {
    let width = lines.iter().map(|l| l.check.len()).max().unwrap_or(0);
    let mut out = String::new();
    for l in lines {
        let status = match l.status {
            CheckStatus::Ok => "ok",
            CheckStatus::Fail => "FAIL",
            CheckStatus::Skip => "skip",
        };
        let _ = write!(out, "{status:<4}  {:<width$}  {}", l.check, l.detail);
        if let Some(f) = &l.fix {
            let _ = write!(out, " — fix: {f}");
        }
        out.push('\n');
    }
    out
}

async fn check_broker(config: burnin_amqp::AmqpConfig) -> CheckLine {
    let names = format!(
        "{}, {}, {}",
        config.exchange,
        config.reply_queue,
        config.rejected_queue()
    );
    match burnin_amqp::check_edge(config).await {
        Ok(c) => {
            let read = if c.read_checked {
                "read allowed".to_owned()
            } else if c.consumers > 0 {
                format!(
                    "read not tried ({} consumer(s) on the reply queue: an edge is running)",
                    c.consumers
                )
            } else {
                format!("read not tried ({} replies waiting; none taken)", c.waiting)
            };
            CheckLine::ok(
                "broker",
                format!("{}: logged in, declared {names}; {read}", c.url),
            )
        }
        Err(e) => {
            let text = e.to_string();
            let fix = broker_fix(&e, &text);
            CheckLine::fail("broker", text, fix)
        }
    }
}

/// The fix for a broker error, by its kind (and the broker's words).
fn broker_fix(e: &burnin_amqp::AmqpError, text: &str) -> String {
    use burnin_amqp::AmqpError;
    let lower = text.to_ascii_lowercase();
    match e {
        AmqpError::AccessRefused { .. } => {
            "give the edge's broker user configure, write and read on the exchange and both \
             queues (README, least privilege), e.g. rabbitmqctl set_permissions -p VHOST USER …"
                .into()
        }
        AmqpError::Conflict { .. } => {
            "the object exists with other arguments: see the message (delete it after draining, \
             or use --reply-queue/--exchange with another name)"
                .into()
        }
        AmqpError::CaFile { .. } => "give --amqp-ca-file a readable PEM CA certificate".into(),
        _ if lower.contains("access_refused")
            || lower.contains("password")
            || lower.contains("login") =>
        {
            "check the user name and password in --amqp-url (BURNIN_AMQP_URL); \
             `rabbitmqctl authenticate_user USER PASSWORD` on the broker tells which"
                .into()
        }
        _ if lower.contains("vhost") => {
            "check the vhost at the end of --amqp-url and that the user has permissions on it \
             (rabbitmqctl list_permissions -p VHOST)"
                .into()
        }
        _ if lower.contains("certificate") || lower.contains("tls") => {
            "give --amqp-ca-file the CA that signed the broker's certificate, and use the host \
             name the certificate names"
                .into()
        }
        _ => "check the host and port in --amqp-url, that RabbitMQ runs there, and any \
              firewall between"
            .into(),
    }
}

/// MES and the factory endpoints; the server `Date`s seen go to `dates`.
async fn check_factory(
    probes: &Probes,
    serial: Option<&SerialNumber>,
    dates: &mut Vec<(String, SystemTime, SystemTime)>,
) -> Vec<CheckLine> {
    let mut lines = Vec::new();
    match probes {
        Probes::Http {
            mes,
            reporter,
            mes_url,
        } => {
            let Some(sn) = serial else {
                return lines;
            };
            lines.push(match mes.lookup_dated(sn).await {
                Ok(d) => {
                    if let Some(at) = d.server_date {
                        dates.push(("MES".into(), at, SystemTime::now()));
                    }
                    match d.answer {
                        MesAnswer::Record(macs) => CheckLine::ok(
                            "mes",
                            format!(
                                "{mes_url}: 200, a record for {sn} with {} card(s)",
                                macs.len()
                            ),
                        ),
                        MesAnswer::Unknown => CheckLine::ok(
                            "mes",
                            format!(
                                "{mes_url}: 404, {sn} is unknown to MES (MES answers; give a \
                                 known serial to see a record)"
                            ),
                        ),
                    }
                }
                Err(e) => {
                    let fix = mes_fix(&e);
                    CheckLine::fail("mes", e.to_string(), fix)
                }
            });
            for kind in [
                PayloadKind::Log,
                PayloadKind::Notify,
                PayloadKind::Pair,
                PayloadKind::DirectBurn,
            ] {
                let Some(probe) = reporter.probe(kind).await else {
                    continue;
                };
                let name = format!("{kind}-url");
                lines.push(match probe {
                    Ok(p) => {
                        if let Some(at) = p.server_date {
                            dates.push((p.url.clone(), at, SystemTime::now()));
                        }
                        endpoint_line(&name, &p)
                    }
                    Err(e) => CheckLine::fail(
                        &name,
                        e,
                        "check the URL, that the server is up and reachable from this machine \
                         (firewall, proxy), and --http-ca-file for a private CA",
                    ),
                });
            }
        }
        Probes::Files {
            mes,
            mes_file,
            out_dir,
        } => {
            lines.push(match mes {
                Ok(m) => {
                    let known = match serial {
                        Some(sn) => match m.lookup(sn).await {
                            Ok(MesAnswer::Record(macs)) => {
                                format!("; {sn} has {} card(s)", macs.len())
                            }
                            _ => format!("; {sn} is not in it"),
                        },
                        None => String::new(),
                    };
                    CheckLine::ok(
                        "mes",
                        format!("{}: {} record(s){known}", mes_file.display(), m.len()),
                    )
                }
                Err(e) => CheckLine::fail(
                    "mes",
                    e.clone(),
                    "give --mes-file a readable JSON file {\"<sn>\": [\"<mac>\", …]}",
                ),
            });
            lines.push(check_out_dir(out_dir));
        }
    }
    lines
}

/// `--out-dir`: writable, or creatable (scan and serve create it).
fn check_out_dir(out_dir: &Path) -> CheckLine {
    const NAME: &str = "out-dir";
    let fix = "create the folder, or let the user the edge runs as write it (chown/chmod)";
    if out_dir.is_dir() {
        return match writable_dir(out_dir) {
            Ok(()) => CheckLine::ok(
                NAME,
                format!("{}: this user may write there", out_dir.display()),
            ),
            Err(e) => CheckLine::fail(NAME, format!("{}: {e}", out_dir.display()), fix),
        };
    }
    let Some(parent) = out_dir.ancestors().skip(1).find(|a| {
        let a = if a.as_os_str().is_empty() {
            Path::new(".")
        } else {
            a
        };
        a.exists()
    }) else {
        return CheckLine::fail(
            NAME,
            format!("{}: no folder of it exists", out_dir.display()),
            fix,
        );
    };
    let parent = if parent.as_os_str().is_empty() {
        Path::new(".")
    } else {
        parent
    };
    match writable_dir(parent) {
        Ok(()) => CheckLine::ok(
            NAME,
            format!(
                "{}: not there yet; it is created at the first run ({} is writable)",
                out_dir.display(),
                parent.display()
            ),
        ),
        Err(e) => CheckLine::fail(
            NAME,
            format!(
                "{}: not there yet, and it cannot be created in {}: {e}",
                out_dir.display(),
                parent.display()
            ),
            fix,
        ),
    }
}

fn mes_fix(e: &MesError) -> String {
    let text = e.to_string();
    if !e.is_retryable() && (text.contains("HTTP 401") || text.contains("HTTP 403")) {
        "MES refused the credentials: check --mes-token (or --factory-token when no --mes-token)"
            .into()
    } else if e.is_retryable() {
        "check --mes-url, that MES is up and reachable from this machine (firewall, proxy), \
         and --http-ca-file for a private CA"
            .into()
    } else {
        "MES answered, but not as burnin expects: see docs/protocol.md §6 for the answer MES \
         must give"
            .into()
    }
}

/// Any answer passes but refused credentials, a redirect, or a proxy or
/// server saying it is down.
fn endpoint_line(name: &str, p: &burnin_http::EndpointProbe) -> CheckLine {
    let detail = format!("{}: OPTIONS answered {}", p.url, p.status);
    match p.status {
        401 | 403 => CheckLine::fail(
            name,
            format!("{detail} ({})", p.body),
            "the token was refused: check --factory-token",
        ),
        407 => CheckLine::fail(
            name,
            detail,
            "a proxy asks for credentials: burnin does not use proxies; reach the server directly",
        ),
        300..=399 => CheckLine::fail(
            name,
            format!("{detail} (a redirect)"),
            "burnin does not follow redirects: configure the final URL",
        ),
        502..=504 => CheckLine::fail(
            name,
            format!("{detail} ({})", p.body),
            "the server (or a proxy in front of it) says it is unavailable: check the factory API",
        ),
        _ => CheckLine::ok(name, format!("{detail}: reachable (nothing was posted)")),
    }
}

/// The state database: writable now (existing file) or creatable.
fn check_state_db(path: &Path) -> CheckLine {
    const NAME: &str = "state-db";
    let shown = path.display().to_string();
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    match std::fs::metadata(path) {
        Ok(meta) if !meta.is_file() => CheckLine::fail(
            NAME,
            format!("{shown} is not a file"),
            "give --state-db the path of a file (it is created if missing)",
        ),
        Ok(meta) => {
            if let Err(e) = try_write(path) {
                return CheckLine::fail(NAME, format!("{shown}: {e}"), sqlite_fix(&e, &meta));
            }
            // SQLite also creates its journal files next to the database.
            if let Err(e) = writable_dir(&dir) {
                return CheckLine::fail(
                    NAME,
                    format!("{shown}: its folder {}: {e}", dir.display()),
                    format!(
                        "SQLite writes journal files beside the database: let the user the edge \
                         runs as ({}) write {}",
                        whoami(),
                        dir.display()
                    ),
                );
            }
            CheckLine::ok(
                NAME,
                format!("{shown}: writable (a write was tried and rolled back)"),
            )
        }
        Err(e) if e.kind() == ErrorKind::NotFound => match writable_dir(&dir) {
            Ok(()) => CheckLine::ok(
                NAME,
                format!(
                    "{shown}: not there yet; serve creates it ({} is writable)",
                    dir.display()
                ),
            ),
            Err(e) => CheckLine::fail(
                NAME,
                format!(
                    "{shown}: not there yet, and its folder {}: {e}",
                    dir.display()
                ),
                format!(
                    "create {} and let the user the edge runs as ({}) write it, or give \
                     --state-db another path",
                    dir.display(),
                    whoami()
                ),
            ),
        },
        Err(e) => CheckLine::fail(
            NAME,
            format!("{shown}: {e}"),
            format!(
                "let the user the edge runs as ({}) reach the file (permissions of its folders)",
                whoami()
            ),
        ),
    }
}

/// The fix for a database [`try_write`] could not write.
fn sqlite_fix(e: &WriteRefused, meta: &std::fs::Metadata) -> String {
    use std::os::unix::fs::MetadataExt;
    let owner = format!(
        "it is owned by uid {} with mode {:o}; this check runs as {}",
        meta.uid(),
        meta.mode() & 0o7777,
        whoami()
    );
    match e.refusal {
        Refusal::Permission => format!(
            "this user may not write the database ({owner}): chown it to the user the edge \
             runs as, or run the edge as its owner; do not move it away"
        ),
        Refusal::NotADatabase => {
            "it is not an SQLite database: give --state-db another path, or move the file away"
                .into()
        }
        Refusal::Busy => {
            "another process holds the database's write lock for over 5 s: is a serve stuck? \
             Try again, or stop the other process"
                .into()
        }
        Refusal::Other => format!("check the file and its folder ({owner})"),
    }
}

/// Creates and removes a file in `dir`.
fn writable_dir(dir: &Path) -> Result<(), String> {
    let probe = dir.join(format!(".burnin-check-{}", std::process::id()));
    match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&probe)
    {
        Ok(_) => {
            let _ = std::fs::remove_file(&probe);
            Ok(())
        }
        Err(e) if e.kind() == ErrorKind::NotFound => Err("it does not exist".into()),
        Err(e) if e.kind() == ErrorKind::PermissionDenied => Err(format!(
            "this user ({}) may not create files there",
            whoami()
        )),
        Err(e) => Err(e.to_string()),
    }
}

/// `uid N` of this process (from /proc, no unsafe code).
fn whoami() -> String {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Uid:"))
                .and_then(|v| v.split_whitespace().nth(1).map(|u| format!("uid {u}")))
        })
        .unwrap_or_else(|| "this user".into())
}

/// The local clock against the first server `Date` seen.
fn check_clock(dates: &[(String, SystemTime, SystemTime)]) -> CheckLine {
    const NAME: &str = "clock";
    let Some((from, server, local)) = dates.first() else {
        return CheckLine::skip(
            NAME,
            "no HTTP answer with a Date header to compare with (files, or the servers failed)",
        );
    };
    // `Date` has whole seconds: the local time is cut the same way.
    let local_s = local
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let server_s = server
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let (diff, word) = if local_s >= server_s {
        (local_s - server_s, "ahead of")
    } else {
        (server_s - local_s, "behind")
    };
    let detail = format!(
        "this machine is {} {word} {from} (Date header)",
        humantime::format_duration(Duration::from_secs(diff))
    );
    if diff > CLOCK_TOLERANCE.as_secs() {
        CheckLine::fail(
            NAME,
            detail,
            "more than 2 min apart: synchronise this machine's clock (chrony or \
             systemd-timesyncd, `timedatectl status`), or the server's",
        )
    } else {
        CheckLine::ok(NAME, format!("{detail}; within 2 min"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cabling_plan_check_counts_rows_or_names_the_line() {
        let dir = tempfile::tempdir().unwrap();
        let good = dir.path().join("good.csv");
        std::fs::write(
            &good,
            "switch,port,location,sn,interface\nleaf-07,swp7,B3,SN1,\nleaf-07,swp8,B4,,\n",
        )
        .unwrap();
        let l = check_cabling_plan(&good);
        assert_eq!(l.status, CheckStatus::Ok, "{l:?}");
        assert!(l.detail.ends_with(": 2 rows, 1 naming a serial"), "{l:?}");
        let bad = dir.path().join("bad.csv");
        std::fs::write(&bad, "switch,port,location,sn,interface\nleaf-07,,B3,,\n").unwrap();
        let l = check_cabling_plan(&bad);
        assert_eq!(l.status, CheckStatus::Fail, "{l:?}");
        assert!(
            l.detail
                .ends_with("bad.csv: line 2, column 9: port is empty"),
            "{l:?}"
        );
        assert_eq!(l.check, "cabling-plan");
        let l = check_cabling_plan(&dir.path().join("missing.csv"));
        assert_eq!(l.status, CheckStatus::Fail, "{l:?}");
    }

    #[test]
    fn the_clock_fails_beyond_two_minutes_either_way() {
        let now = SystemTime::now();
        let at = |d: Duration, ahead: bool| {
            let server = if ahead { now + d } else { now - d };
            check_clock(&[("MES".into(), server, now)])
        };
        let l = at(Duration::from_secs(119), true);
        assert_eq!(l.status, CheckStatus::Ok, "{l:?}");
        let l = at(Duration::from_secs(121), true);
        assert_eq!(l.status, CheckStatus::Fail, "{l:?}");
        assert!(l.detail.contains("2m 1s behind MES"), "{l:?}");
        let l = at(Duration::from_secs(600), false);
        assert_eq!(l.status, CheckStatus::Fail, "{l:?}");
        assert!(l.detail.contains("10m ahead of MES"), "{l:?}");
        assert!(l.fix.unwrap().contains("timedatectl"));
        assert_eq!(check_clock(&[]).status, CheckStatus::Skip);
    }
}
