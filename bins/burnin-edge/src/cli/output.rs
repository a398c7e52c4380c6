//! What the user sees: progress on stderr, the result table or JSON on stdout.

use std::io::IsTerminal;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use burnin_core::edge::{Observer, OperationReport};
use burnin_core::operation::Counters;
use burnin_core::{
    DeviceResult, Finding, MesAnswer, MesError, Operation, OperationState, PayloadKind,
    ReplyOutcome, ReportError, SerialNumber, TransportError,
};
use indicatif::{ProgressBar, ProgressStyle};

/// Shows collection progress: a live bar on a terminal, plain lines (at most
/// one a second) otherwise.
pub(crate) struct Progress {
    bar: Option<ProgressBar>,
    last_line: Mutex<Option<Instant>>,
    /// Each payload delivered so far and its error, if it failed.
    deliveries: Mutex<Vec<(PayloadKind, Option<String>)>>,
    /// The operation's counters as last seen.
    counters: Mutex<Counters>,
    /// When a "waiting for MES" line was last printed.
    last_waiting: Mutex<Option<Instant>>,
}

impl Progress {
    pub(crate) fn new(expected: usize) -> Self {
        let bar = std::io::stderr().is_terminal().then(|| {
            let bar = if expected > 0 {
                ProgressBar::new(expected as u64)
            } else {
                ProgressBar::new_spinner()
            };
            let template = if expected > 0 {
                "{spinner} [{elapsed_precise}] {bar:30} {pos}/{len} replies · {msg}"
            } else {
                "{spinner} [{elapsed_precise}] {pos} replies · {msg}"
            };
            if let Ok(style) = ProgressStyle::with_template(template) {
                bar.set_style(style);
            }
            bar.enable_steady_tick(Duration::from_millis(200));
            bar
        });
        Progress {
            bar,
            last_line: Mutex::new(None),
            deliveries: Mutex::new(Vec::new()),
            counters: Mutex::new(Counters::default()),
            last_waiting: Mutex::new(None),
        }
    }

    /// The operation's counters as last seen.
    pub(crate) fn counters(&self) -> Counters {
        *self.counters.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Whether `kind` was delivered: `None` not attempted, `Some(None)`
    /// delivered, `Some(Some(error))` failed.
    pub(crate) fn delivery(&self, kind: PayloadKind) -> Option<Option<String>> {
        let deliveries = self.deliveries.lock().unwrap_or_else(|e| e.into_inner());
        deliveries
            .iter()
            .rev()
            .find(|(k, _)| *k == kind)
            .map(|(_, e)| e.clone())
    }

    fn update(&self, op: &Operation, force: bool) {
        let c = op.counters();
        *self.counters.lock().unwrap_or_else(|e| e.into_inner()) = c;
        let msg = format!(
            "{} MES lookups done, {} duplicate, {} rejected",
            c.mes_done, c.duplicates, c.rejected
        );
        if let Some(bar) = &self.bar {
            bar.set_position(c.accepted as u64);
            bar.set_message(msg);
            return;
        }
        let mut last = self.last_line.lock().unwrap_or_else(|e| e.into_inner());
        if force || last.is_none_or(|t| t.elapsed() >= Duration::from_secs(1)) {
            *last = Some(Instant::now());
            let expected = match op.expected_count() {
                0 => String::new(),
                n => format!("/{n}"),
            };
            eprintln!("collecting: {}{expected} replies, {msg}", c.accepted);
        }
    }
}

impl Observer for Progress {
    fn published(&self, op: &Operation, result: &Result<(), TransportError>) {
        match result {
            Ok(()) => tracing::info!(
                operation = %op.id(),
                deadline = %op.deadline(),
                reply_queue = %op.params().reply_to,
                "scan command published"
            ),
            Err(e) => {
                tracing::error!(operation = %op.id(), "could not publish the scan command: {e}")
            }
        }
    }

    fn reply(&self, op: &Operation, outcome: &ReplyOutcome) {
        match outcome {
            ReplyOutcome::Accepted(sn) => tracing::debug!(%sn, "reply accepted"),
            ReplyOutcome::Duplicate(sn) => {
                tracing::info!(%sn, "duplicate reply counted; the first one stands")
            }
            ReplyOutcome::Conflict(sn) => tracing::warn!(
                %sn,
                "another board answered with serial {sn} (a cloned or re-used serial?): \
                 the serial fails with a finding naming both"
            ),
            ReplyOutcome::Rejected(reason) => {
                tracing::warn!("reply moved to the rejected queue: {reason}")
            }
        }
        self.update(op, false);
    }

    fn transport_error(&self, error: &TransportError) {
        tracing::warn!("broker: {error}");
    }

    fn mes_answer(&self, op: &Operation, sn: &SerialNumber, answer: &Result<MesAnswer, MesError>) {
        if let Err(e) = answer {
            tracing::error!(%sn, "{e}; the device is left undecided (not reported)");
        }
        self.update(op, false);
    }

    fn mes_waiting(
        &self,
        op: &Operation,
        sn: &SerialNumber,
        error: &MesError,
        retry_at: burnin_core::Timestamp,
    ) {
        // One line a second at most, however many devices wait.
        let mut last = self.last_waiting.lock().unwrap_or_else(|e| e.into_inner());
        if last.is_some_and(|t| t.elapsed() < Duration::from_secs(1)) {
            return;
        }
        *last = Some(Instant::now());
        let line = format!(
            "waiting for MES: {sn}: {}; trying again at {retry_at}, for up to {} in all \
             (--mes-outage-wait); the device stays undecided until MES answers",
            error.reason(),
            burnin_core::human_duration(op.params().mes_outage_wait),
        );
        match &self.bar {
            Some(bar) => bar.println(line),
            None => eprintln!("{line}"),
        }
    }

    fn collection_ended(&self, op: &Operation) {
        if let Some(bar) = &self.bar {
            self.update(op, true);
            bar.finish_and_clear();
        }
        let c = op.counters();
        let expected = match op.expected_count() {
            0 => String::new(),
            n => format!(" of {n} expected"),
        };
        eprintln!(
            "collected {} replies{expected} ({} duplicate, {} rejected); waiting for {} MES lookups, then reporting",
            c.accepted,
            c.duplicates,
            c.rejected,
            op.mes_pending()
        );
    }

    fn delivered(&self, kind: PayloadKind, result: &Result<(), ReportError>) {
        self.deliveries
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push((kind, result.as_ref().err().map(ToString::to_string)));
        match result {
            Ok(()) => tracing::info!(payload = %kind, "delivered"),
            Err(e) => tracing::error!(payload = %kind, "{e}"),
        }
    }
}

/// Why a device has its result, for the table: burnin-core's
/// [`details`](burnin_core::live::details) (the one wording the API and
/// the page show too), joined with `; `.
pub(crate) fn details(d: &DeviceResult) -> String {
    burnin_core::live::details(d).join("; ")
}

/// The result table.
pub(crate) fn table(report: &OperationReport) -> String {
    table_with(report, details)
}

/// The result table, with each device's details in the words `words`
/// gives (called once per device, in order).
pub(crate) fn table_with(
    report: &OperationReport,
    mut words: impl FnMut(&DeviceResult) -> String,
) -> String {
    let width = report
        .devices
        .iter()
        .map(|d| d.sn.as_str().len())
        .max()
        .unwrap_or(0)
        .max("SERIAL".len());
    let mut out = if report.devices.is_empty() && report.state == OperationState::Done {
        "no device answered and none was expected (--expect): the log and notification list no device; \
         check --exchange, the broker's vhost, and that the agents are running\n"
            .to_owned()
    } else {
        format!("{:width$}  RESULT  DETAILS\n", "SERIAL")
    };
    for d in &report.devices {
        let result = if d.is_undecided() {
            "UNDECIDED"
        } else if d.result.passed() {
            "PASS"
        } else {
            "FAIL"
        };
        out.push_str(format!("{:width$}  {result:6}  {}", d.sn, words(d)).trim_end());
        out.push('\n');
    }
    let passed = report.devices.iter().filter(|d| d.result.passed()).count();
    let undecided = report.devices.iter().filter(|d| d.is_undecided()).count();
    out.push_str(&format!(
        "\noperation {}: {} devices, {passed} passed, {} failed{}; {} replies, {} duplicate{}, {} rejected{}; collected in {}, reported in {}\n",
        report.operation_id,
        report.devices.len(),
        report.devices.len() - passed - undecided,
        match undecided {
            0 => String::new(),
            n => format!(", {n} undecided (MES could not be asked; not reported)"),
        },
        report.counters.accepted,
        report.counters.duplicates,
        match report.counters.conflicts {
            0 => String::new(),
            n => format!(", {n} conflicting (another board with the same serial)"),
        },
        report.counters.rejected,
        match report.counters.redelivered {
            0 => String::new(),
            n => format!(", {n} redelivered"),
        },
        secs(report.collected.saturating_since(report.started)),
        secs(report.finished.saturating_since(report.collected)),
    ));
    if let Some(e) = &report.error {
        out.push_str(&format!("error: {e}\n"));
    }
    out
}

fn secs(d: Duration) -> String {
    format!("{:.1} s", d.as_secs_f64())
}

/// A hint when every device MES was asked about was unknown to it (404),
/// for more than one device: the MES URL is then more likely wrong than
/// every serial. `url_for` gives the URL asked for a serial, to name it.
pub(crate) fn mes_hint(
    report: &OperationReport,
    url_for: impl Fn(&SerialNumber) -> Option<String>,
) -> Option<String> {
    let asked: Vec<&DeviceResult> = report
        .devices
        .iter()
        .filter(|d| !matches!(d.finding, Finding::NoReply))
        .collect();
    let unknown = asked
        .iter()
        .filter(|d| matches!(d.finding, Finding::UnknownToMes))
        .count();
    if unknown < 2 || unknown != asked.len() {
        return None;
    }
    let mut hint = format!(
        "every serial looked up ({unknown}) was unknown to MES (404): the MES URL may be wrong \
         (check --mes-url)"
    );
    if let Some(url) = asked.first().and_then(|d| url_for(&d.sn)) {
        hint.push_str(&format!("; for {} it asked {url}", asked[0].sn));
    }
    Some(hint)
}

/// The `--json` document (see [`burnin_service::report::report_json`]), plus
/// `"mesConcurrencyLimit"`: the adaptive MES limit at the end, with
/// `--mes-url` (absent with `--mes-file`).
pub(crate) fn json(report: &OperationReport, mes_limit: Option<usize>) -> String {
    json_with_hint(report, mes_limit, None)
}

/// [`json`], plus `"hint"` ([`mes_hint`]) when there is one.
pub(crate) fn json_with_hint(
    report: &OperationReport,
    mes_limit: Option<usize>,
    hint: Option<String>,
) -> String {
    let mut doc = burnin_service::report::report_json(report);
    if let Some(map) = doc.as_object_mut() {
        if let Some(limit) = mes_limit {
            map.insert("mesConcurrencyLimit".into(), limit.into());
        }
        if let Some(hint) = hint {
            map.insert("hint".into(), hint.into());
        }
    }
    doc.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use burnin_core::{DeviceReport, MesAnswer, Rules};

    fn report(body: serde_json::Value) -> DeviceReport {
        DeviceReport::from_slice(body.to_string().as_bytes()).unwrap()
    }

    /// The table's details name each SPEC §10.1 finding, and say why a
    /// requireLink failure is "0" instead of blaming MES.
    #[test]
    fn details_show_findings_and_link_failures() {
        let r = report(serde_json::json!({
            "operationId": 1, "sn": "A", "hostname": "h", "agentVersion": "t",
            "collectedAt": "2026-11-30T10:00:00Z",
            "interfaces": [
                {"interface": "eth0", "macaddr": "52:54:00:00:00:99", "permaddr": "02:00:00:00:00:01",
                 "link": {"carrier": true, "operstate": "up", "speedMbps": 1000},
                 "pci": {"slot": "0000:01:00.0", "vendor": "0x8086", "device": "0x1533", "class": "0x020000", "driver": "igb"}},
                {"interface": "eth1", "macaddr": "02:00:00:00:00:02",
                 "link": {"carrier": false, "operstate": "down", "speedMbps": null},
                 "pci": {"slot": "0000:02:00.0", "vendor": "0x8086", "device": "0x1533", "class": "0x020000", "driver": "igb"}}],
            "pciDevices": [{"slot": "0000:03:00.0", "vendor": "0x8086", "device": "0x1533", "class": "0x020000", "driver": null}]
        }));
        let mes = MesAnswer::Record(
            [
                "02:00:00:00:00:01",
                "02:00:00:00:00:02",
                "02:00:00:00:00:03",
            ]
            .iter()
            .map(|m| m.parse().unwrap())
            .collect(),
        );
        let d = DeviceResult::compare_report(&r, &mes, Rules::require_link(true));
        assert_eq!(
            details(&d),
            "eth1 02:00:00:00:00:02 has no link (requireLink); card 02:00:00:00:00:03 recorded in MES is missing; \
             eth0: MAC overridden by software (current 52:54:00:00:00:99); \
             network card at 0000:03:00.0 (8086:1533) has no driver; likely the missing card 02:00:00:00:00:03"
        );
        // A device MES does not know still shows its findings.
        let d = DeviceResult::compare_report(&r, &MesAnswer::Unknown, Rules::require_link(true));
        assert!(details(&d).starts_with("serial number unknown to MES; eth0: MAC overridden"));
        assert!(details(&d).contains("eth1: no link (no carrier)"));
        // `scan --json` carries the findings; without any, the old shape.
        let doc = burnin_service::report::device_json(&d);
        assert_eq!(doc["findings"][0]["kind"], "macOverridden");
        let plain = DeviceResult::compare(r.sn.clone(), &r.interfaces[..1], &mes);
        let doc = burnin_service::report::device_json(&plain);
        assert_eq!(
            doc.as_object().unwrap().keys().collect::<Vec<_>>(),
            ["macinfo", "result", "sn"]
        );
    }
}
