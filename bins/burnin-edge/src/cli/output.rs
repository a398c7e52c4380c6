//! What the user sees while a scan runs: progress on stderr (the result
//! table and JSON are `burnin_service::report`'s).

use std::io::IsTerminal;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use burnin_core::edge::Observer;
use burnin_core::operation::Counters;
use burnin_core::{
    MesAnswer, MesError, Operation, PayloadKind, ReplyOutcome, ReportError, SerialNumber,
    TransportError,
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
        let msg = || {
            format!(
                "{} MES lookups done, {} duplicate, {} rejected",
                c.mes_done, c.duplicates, c.rejected
            )
        };
        if let Some(bar) = &self.bar {
            bar.set_position(c.accepted as u64);
            bar.set_message(msg());
            return;
        }
        // Formatted only for the line printed (once a second at most), not
        // for every reply and MES answer.
        let mut last = self.last_line.lock().unwrap_or_else(|e| e.into_inner());
        if force || last.is_none_or(|t| t.elapsed() >= Duration::from_secs(1)) {
            *last = Some(Instant::now());
            let expected = match op.expected_count() {
                0 => String::new(),
                n => format!("/{n}"),
            };
            eprintln!("collecting: {}{expected} replies, {}", c.accepted, msg());
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

    fn delivery_waiting(
        &self,
        op: &Operation,
        kind: PayloadKind,
        error: &ReportError,
        retry_at: burnin_core::Timestamp,
    ) {
        // The bar is gone by now: collection has ended.
        eprintln!(
            "waiting for the factory: {error}; sending the {kind} again at {retry_at}, \
             for up to {} in all (--delivery-outage-wait); nothing is lost meanwhile",
            burnin_core::human_duration(op.params().delivery_outage_wait),
        );
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
