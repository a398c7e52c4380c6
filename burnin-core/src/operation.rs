//! The scan operation state machine (SPEC §5, §6), sans-IO.
//!
//! ```text
//! Collecting ──(all expected replied | deadline)──▶ Reporting ──▶ Done
//!                                                          └────▶ Failed
//! ```
//!
//! Inputs are `handle_*` calls, outputs `poll_*` calls; the caller owns the
//! clock and the I/O (see [`crate::edge::run_operation`] for the driver).
//!
//! * **Replies** ([`Operation::handle_reply`]): the first reply from a serial
//!   stands; later ones are counted as duplicates. Replies that do not parse,
//!   name another operation, or arrive after collection ended are rejected
//!   with a [`RejectReason`] for the rejected queue — never dropped.
//! * **MES** ([`Operation::handle_mes_answer`]): the caller looks up every
//!   accepted serial (as soon as it is accepted) and hands in the answer.
//! * **Results** are ordered: expected serials in the order given, then
//!   serials nobody expected, sorted. Arrival order never shows, so the same
//!   scan always gives the same log.
//! * **Reporting** ([`Operation::poll_payload`] /
//!   [`Operation::handle_delivery`]): the log first; then Pair or directBurn
//!   only if the log was delivered and at least one device passed; then the
//!   notification, carrying `error` if anything went wrong (a failed
//!   delivery, a failed MES lookup, a lost broker). An operation with an
//!   error ends [`OperationState::Failed`], else [`OperationState::Done`].
//!   A device whose MES lookup failed is reported as Fail — it is never
//!   paired unverified.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::time::Duration;

use crate::store::StoredOperation;
use crate::{
    DeviceReport, DeviceResult, MesAnswer, MesError, OperationId, ParseError, Payload, PayloadKind,
    ReportError, Rules, ScanCommand, SerialNumber, Target, Timestamp, payload,
};

/// What an operation is asked to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OperationParams {
    /// The operation id, echoed in every payload.
    pub operation_id: OperationId,
    /// Operator, sent in the command and in directBurn.
    pub operator_id: Option<String>,
    /// Scan mode, sent in the command and in directBurn (default 1 there).
    pub scan_mode: Option<i64>,
    /// Where passing devices go.
    pub target: Target,
    /// Serials that must answer; collection ends early once all have.
    pub expected: Vec<SerialNumber>,
    /// How long to collect.
    pub window: Duration,
    /// The queue agents reply to.
    pub reply_to: String,
    /// `requireLink` (SPEC §10.1): an interface without carrier fails its
    /// MAC. Off by default.
    pub require_link: bool,
}

impl OperationParams {
    /// Parameters with the defaults of SPEC §7: Pair target, no expected
    /// serials, a 30 s window, replies to `hwinfo_queue`.
    pub fn new(operation_id: OperationId) -> Self {
        OperationParams {
            operation_id,
            operator_id: None,
            scan_mode: None,
            target: Target::Pair,
            expected: Vec::new(),
            window: Duration::from_secs(30),
            reply_to: "hwinfo_queue".into(),
            require_link: false,
        }
    }
}

/// Where an operation is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OperationState {
    /// Waiting for replies.
    Collecting,
    /// Delivering payloads.
    Reporting,
    /// Every payload delivered, no error.
    Done,
    /// Finished with an error (carried in the notification if it could be sent).
    Failed,
}

impl OperationState {
    /// `collecting`, `reporting`, `done` or `failed`.
    pub fn as_str(self) -> &'static str {
        match self {
            OperationState::Collecting => "collecting",
            OperationState::Reporting => "reporting",
            OperationState::Done => "done",
            OperationState::Failed => "failed",
        }
    }

    /// The state named `name` ([`as_str`](Self::as_str)), if there is one.
    pub fn from_name(name: &str) -> Option<Self> {
        [
            OperationState::Collecting,
            OperationState::Reporting,
            OperationState::Done,
            OperationState::Failed,
        ]
        .into_iter()
        .find(|st| st.as_str() == name)
    }
}

impl serde::Serialize for OperationState {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl fmt::Display for OperationState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a reply was not recorded; sent as the `x-burnin-reason` header.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum RejectReason {
    /// Not a device report (or too large).
    Malformed(ParseError),
    /// Names an operation that is not active (or none).
    UnknownOperation(Option<OperationId>),
    /// For this operation, but collection had ended.
    Late(OperationId),
}

impl fmt::Display for RejectReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RejectReason::Malformed(e) => write!(f, "malformed: {e}"),
            RejectReason::UnknownOperation(Some(op)) => {
                write!(f, "unknown operation: no active operation {op}")
            }
            RejectReason::UnknownOperation(None) => {
                f.write_str("unknown operation: the reply names no operation (operationId null)")
            }
            RejectReason::Late(op) => {
                write!(f, "late: operation {op} had stopped collecting replies")
            }
        }
    }
}

/// What became of a reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReplyOutcome {
    /// Recorded; look this serial up in MES.
    Accepted(SerialNumber),
    /// A second reply from a serial; the first stands.
    Duplicate(SerialNumber),
    /// Not recorded; move it to the rejected queue.
    Rejected(RejectReason),
}

/// Counters, for progress and metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counters {
    /// Replies accepted (one per serial).
    pub accepted: usize,
    /// Replies from a serial that had already replied.
    pub duplicates: usize,
    /// Replies rejected.
    pub rejected: usize,
    /// Replies the broker marked as delivered before (its `redelivered`
    /// flag: an earlier delivery was not acked, e.g. the connection was
    /// lost), whatever their outcome; each is also counted above.
    pub redelivered: usize,
    /// MES answers received (success or failure).
    pub mes_done: usize,
}

/// One scan operation; see the [module docs](self).
#[derive(Debug)]
pub struct Operation {
    params: OperationParams,
    started: Timestamp,
    deadline: Timestamp,
    state: OperationState,
    replies: HashMap<SerialNumber, DeviceReport>,
    arrival: Vec<SerialNumber>,
    expected: HashSet<SerialNumber>,
    mes: HashMap<SerialNumber, Result<MesAnswer, MesError>>,
    counters: Counters,
    errors: Vec<String>,
    results: Vec<DeviceResult>,
    next: Option<PayloadKind>,
    reporting_started: bool,
    aborted: bool,
}

impl Operation {
    /// Starts collecting at `now`; the deadline is `now + window`, rounded
    /// up to a whole second so it is exactly what the command carries on the
    /// wire (RFC 3339 with seconds).
    pub fn new(params: OperationParams, now: Timestamp) -> Self {
        let end = now.saturating_add(params.window);
        let whole = Timestamp::from_unix_seconds(end.unix_seconds());
        let deadline = if whole < end {
            Timestamp::from_unix_seconds(end.unix_seconds() + 1)
        } else {
            whole
        };
        Self::with_deadline(params, now, deadline)
    }

    /// Rebuilds an unfinished operation from what a store recorded (see
    /// [`crate::store`]): its accepted replies are replayed; if its results
    /// were recorded it resumes reporting after the deliveries already made.
    /// MES answers are not stored: while collecting, the driver looks every
    /// replied serial up again ([`Operation::mes_outstanding`]).
    pub fn restore(stored: StoredOperation) -> Self {
        let mut op = Self::with_deadline(stored.params, stored.started, stored.deadline);
        for body in &stored.replies {
            op.handle_reply(body);
        }
        if let Some((results, errors)) = stored.results {
            op.state = OperationState::Reporting;
            op.results = results;
            op.errors = errors;
            op.reporting_started = true;
            op.aborted = op.results.is_empty() && op.replies.is_empty() && !op.errors.is_empty();
            op.next = Some(if op.aborted {
                PayloadKind::Notify
            } else {
                PayloadKind::Log
            });
            for (kind, outcome) in stored.deliveries {
                op.apply_delivery(kind, outcome);
            }
        }
        op
    }

    fn with_deadline(params: OperationParams, started: Timestamp, deadline: Timestamp) -> Self {
        let expected = params.expected.iter().cloned().collect();
        Operation {
            params,
            started,
            deadline,
            state: OperationState::Collecting,
            replies: HashMap::new(),
            arrival: Vec::new(),
            expected,
            mes: HashMap::new(),
            counters: Counters::default(),
            errors: Vec::new(),
            results: Vec::new(),
            next: None,
            reporting_started: false,
            aborted: false,
        }
    }

    // ---- getters ----

    /// The parameters.
    pub fn params(&self) -> &OperationParams {
        &self.params
    }
    /// The operation id.
    pub fn id(&self) -> &OperationId {
        &self.params.operation_id
    }
    /// When collection started.
    pub fn started(&self) -> Timestamp {
        self.started
    }
    /// When collection ends at the latest.
    pub fn deadline(&self) -> Timestamp {
        self.deadline
    }
    /// The current state.
    pub fn state(&self) -> OperationState {
        self.state
    }
    /// The counters.
    pub fn counters(&self) -> Counters {
        self.counters
    }
    /// How many serials are expected (0 when none were named).
    pub fn expected_count(&self) -> usize {
        self.expected.len()
    }
    /// Accepted replies, in arrival order.
    pub fn replies(&self) -> impl Iterator<Item = &DeviceReport> {
        self.arrival.iter().filter_map(|sn| self.replies.get(sn))
    }
    /// The accepted reply of `sn`, if it replied.
    pub fn reply(&self, sn: &SerialNumber) -> Option<&DeviceReport> {
        self.replies.get(sn)
    }
    /// Errors so far (they end up in the notification).
    pub fn errors(&self) -> &[String] {
        &self.errors
    }
    /// The device results, once collection has ended (empty before).
    pub fn results(&self) -> &[DeviceResult] {
        &self.results
    }
    /// The error text the notification carries, if any.
    pub fn error(&self) -> Option<String> {
        (!self.errors.is_empty()).then(|| self.errors.join("; "))
    }
    /// The scan command to publish.
    pub fn command(&self) -> ScanCommand {
        ScanCommand {
            operation_id: self.params.operation_id.clone(),
            operator_id: self.params.operator_id.clone(),
            scan_mode: self.params.scan_mode,
            reply_to: self.params.reply_to.clone(),
            deadline: self.deadline,
        }
    }
    /// Serials whose MES answer is still outstanding.
    pub fn mes_pending(&self) -> usize {
        self.replies.len() - self.mes.len()
    }

    // ---- inputs ----

    /// Notes that the reply about to be handled was marked redelivered by
    /// the broker (counted in [`Counters::redelivered`]).
    pub fn handle_redelivered(&mut self) {
        self.counters.redelivered += 1;
    }

    /// Takes a raw reply body.
    pub fn handle_reply(&mut self, body: &[u8]) -> ReplyOutcome {
        let outcome = match DeviceReport::from_slice(body) {
            Err(e) => ReplyOutcome::Rejected(RejectReason::Malformed(e)),
            Ok(report) => self.handle_report(report),
        };
        match &outcome {
            ReplyOutcome::Accepted(_) => self.counters.accepted += 1,
            ReplyOutcome::Duplicate(_) => self.counters.duplicates += 1,
            ReplyOutcome::Rejected(_) => self.counters.rejected += 1,
        }
        outcome
    }

    fn handle_report(&mut self, report: DeviceReport) -> ReplyOutcome {
        if report.operation_id.as_ref() != Some(&self.params.operation_id) {
            return ReplyOutcome::Rejected(RejectReason::UnknownOperation(report.operation_id));
        }
        if self.replies.contains_key(&report.sn) {
            return ReplyOutcome::Duplicate(report.sn);
        }
        if self.state != OperationState::Collecting {
            return ReplyOutcome::Rejected(RejectReason::Late(self.params.operation_id.clone()));
        }
        let sn = report.sn.clone();
        self.arrival.push(sn.clone());
        self.replies.insert(sn.clone(), report);
        ReplyOutcome::Accepted(sn)
    }

    /// Takes MES's answer for an accepted serial. Answers for serials that
    /// did not reply, or a second answer, are ignored.
    pub fn handle_mes_answer(&mut self, sn: &SerialNumber, answer: Result<MesAnswer, MesError>) {
        if self.replies.contains_key(sn) && !self.mes.contains_key(sn) {
            self.counters.mes_done += 1;
            self.mes.insert(sn.clone(), answer);
        }
    }

    /// Tells the operation the time; collection ends at the deadline.
    pub fn handle_timeout(&mut self, now: Timestamp) {
        if self.state == OperationState::Collecting && now >= self.deadline {
            self.stop_collecting();
        }
    }

    /// The scan could not start (the command was not published, the broker
    /// is unreachable): no device was asked, so nothing is logged or paired;
    /// only the notification, carrying `error`, is sent.
    pub fn handle_abort(&mut self, error: impl Into<String>) {
        if self.state == OperationState::Collecting {
            self.aborted = true;
        }
        self.handle_error(error);
    }

    /// Ends the operation with an internal error (e.g. the broker is gone):
    /// collection stops and the notification will carry `error`.
    pub fn handle_error(&mut self, error: impl Into<String>) {
        self.errors.push(error.into());
        if self.state == OperationState::Collecting {
            self.stop_collecting();
        }
    }

    /// Whether collection can end now: every expected serial replied (and at
    /// least one was expected).
    pub fn all_expected_replied(&self) -> bool {
        !self.expected.is_empty() && self.expected.iter().all(|sn| self.replies.contains_key(sn))
    }

    /// Ends collection if every expected serial replied. Returns whether
    /// collection is over.
    pub fn poll_collection_end(&mut self) -> bool {
        if self.state == OperationState::Collecting && self.all_expected_replied() {
            self.stop_collecting();
        }
        self.state != OperationState::Collecting
    }

    fn stop_collecting(&mut self) {
        self.state = OperationState::Reporting;
    }

    /// The next deadline the caller must wake up for (while collecting).
    pub fn poll_timeout(&self) -> Option<Timestamp> {
        (self.state == OperationState::Collecting).then_some(self.deadline)
    }

    /// Starts reporting once collection has ended and every MES answer is
    /// in: builds the results (and errors) the payloads derive from.
    /// Returns `true` the one time it does so — the moment to store them.
    pub fn poll_results(&mut self) -> bool {
        if self.state != OperationState::Reporting
            || self.reporting_started
            || self.mes_pending() > 0
        {
            return false;
        }
        self.reporting_started = true;
        if self.aborted {
            // The scan never ran: nothing to log, only the error to notify.
            self.next = Some(PayloadKind::Notify);
        } else {
            self.build_results();
            self.next = Some(PayloadKind::Log);
        }
        true
    }

    /// Serials that replied but whose MES answer is still needed (empty
    /// once reporting started).
    pub fn mes_outstanding(&self) -> Vec<SerialNumber> {
        if self.reporting_started {
            return Vec::new();
        }
        self.arrival
            .iter()
            .filter(|sn| !self.mes.contains_key(*sn))
            .cloned()
            .collect()
    }

    /// The next payload to deliver. `None` while collecting or waiting for
    /// MES, and when finished.
    pub fn poll_payload(&mut self) -> Option<Payload> {
        self.poll_results();
        if self.state != OperationState::Reporting || !self.reporting_started {
            return None;
        }
        let op = &self.params.operation_id;
        let kind = self.next?;
        Some(match kind {
            PayloadKind::Log => payload::log(op, &self.results),
            PayloadKind::Pair => payload::pair(op, &self.results),
            PayloadKind::DirectBurn => payload::direct_burn(
                op,
                &self.results,
                self.params.operator_id.as_deref().unwrap_or_default(),
                self.params.scan_mode.unwrap_or(1),
            ),
            PayloadKind::Notify => payload::notify(op, &self.results, self.error().as_deref()),
        })
    }

    /// Takes the outcome of delivering the payload of `kind`.
    pub fn handle_delivery(&mut self, kind: PayloadKind, outcome: Result<(), ReportError>) {
        self.apply_delivery(kind, outcome.map_err(|e| e.to_string()));
    }

    fn apply_delivery(&mut self, kind: PayloadKind, outcome: Result<(), String>) {
        if self.next != Some(kind) {
            return;
        }
        let failed = outcome.is_err();
        if let Err(e) = outcome {
            self.errors.push(e);
        }
        self.next = match kind {
            PayloadKind::Log if !failed && self.results.iter().any(|d| d.result.passed()) => {
                Some(self.params.target.kind())
            }
            PayloadKind::Log | PayloadKind::Pair | PayloadKind::DirectBurn => {
                Some(PayloadKind::Notify)
            }
            PayloadKind::Notify => {
                self.state = if self.errors.is_empty() {
                    OperationState::Done
                } else {
                    OperationState::Failed
                };
                None
            }
        };
    }

    fn build_results(&mut self) {
        let rules = Rules::require_link(self.params.require_link);
        let mut failed_lookups = Vec::new();
        let mut result_for = |sn: &SerialNumber| -> DeviceResult {
            let Some(report) = self.replies.get(sn) else {
                return DeviceResult::no_reply(sn.clone());
            };
            let mut r = match self.mes.get(sn) {
                Some(Ok(answer)) => return DeviceResult::compare_report(report, answer, rules),
                Some(Err(e)) => {
                    failed_lookups.push(e.to_string());
                    DeviceResult::mes_failed(sn.clone(), &report.interfaces, e.to_string())
                }
                None => {
                    DeviceResult::mes_failed(sn.clone(), &report.interfaces, "no MES answer".into())
                }
            };
            r.add_report_findings(report, rules);
            r
        };
        let mut results: Vec<DeviceResult> = Vec::with_capacity(self.arrival.len());
        let mut seen = HashSet::with_capacity(self.expected.len());
        for sn in &self.params.expected {
            if seen.insert(sn) {
                results.push(result_for(sn));
            }
        }
        let mut unexpected: Vec<&SerialNumber> = self
            .arrival
            .iter()
            .filter(|sn| !self.expected.contains(*sn))
            .collect();
        unexpected.sort();
        results.extend(unexpected.into_iter().map(&mut result_for));
        crate::note_shared_macs(&mut results);
        match failed_lookups.len() {
            0 => {}
            1 => self.errors.push(failed_lookups.remove(0)),
            n => self.errors.push(format!(
                "{n} MES lookups failed; first: {}",
                failed_lookups[0]
            )),
        }
        self.results = results;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{InterfaceReport, Mac, PciDevice};

    fn t(s: u64) -> Timestamp {
        Timestamp::from_unix_seconds(1_800_000_000 + s)
    }
    fn sn(s: &str) -> SerialNumber {
        s.parse().unwrap()
    }
    fn mac(n: u8) -> Mac {
        Mac::new([2, 0, 0, 0, 0, n])
    }
    fn report(op: &OperationId, s: &str, macs: &[u8]) -> Vec<u8> {
        let r = DeviceReport {
            operation_id: Some(op.clone()),
            sn: sn(s),
            hostname: "h".into(),
            agent_version: "t".into(),
            collected_at: t(0),
            interfaces: macs
                .iter()
                .enumerate()
                .map(|(i, &m)| {
                    InterfaceReport::new(
                        format!("eth{i}"),
                        mac(m),
                        PciDevice {
                            slot: format!("0000:0{i}:00.0"),
                            vendor: "0x8086".into(),
                            device: "0x1533".into(),
                            class: "0x020000".into(),
                            driver: None,
                        },
                    )
                })
                .collect(),
            pci_devices: vec![],
        };
        r.to_json()
    }

    fn op(expected: &[&str]) -> Operation {
        let mut p = OperationParams::new(OperationId::Number(9));
        p.expected = expected.iter().map(|s| sn(s)).collect();
        p.window = Duration::from_secs(10);
        Operation::new(p, t(0))
    }

    #[test]
    fn full_run_with_early_end() {
        let mut o = op(&["B", "A"]);
        assert_eq!(o.command().deadline, t(10));
        let id = o.id().clone();
        assert_eq!(
            o.handle_reply(&report(&id, "A", &[1])),
            ReplyOutcome::Accepted(sn("A"))
        );
        assert!(!o.poll_collection_end());
        assert_eq!(
            o.handle_reply(&report(&id, "A", &[7])),
            ReplyOutcome::Duplicate(sn("A"))
        );
        assert_eq!(
            o.handle_reply(&report(&id, "B", &[2])),
            ReplyOutcome::Accepted(sn("B"))
        );
        assert!(o.poll_collection_end());
        assert_eq!(o.poll_payload(), None, "waits for MES");
        o.handle_mes_answer(&sn("A"), Ok(MesAnswer::Record(vec![mac(1)])));
        o.handle_mes_answer(&sn("B"), Ok(MesAnswer::Record(vec![mac(3)])));
        let log = o.poll_payload().unwrap();
        assert_eq!(log.kind, PayloadKind::Log);
        // Expected order (B, A), and the first reply of A stands (MAC 1).
        assert!(log.body_str().contains(r#""sn":"B","result":"0"}"#));
        assert!(log.body_str().find(r#""sn":"B""#) < log.body_str().find(r#""sn":"A""#));
        assert!(log.body_str().contains("02:00:00:00:00:01"));
        assert!(!log.body_str().contains("02:00:00:00:00:07"));
        o.handle_delivery(PayloadKind::Log, Ok(()));
        let pair = o.poll_payload().unwrap();
        assert_eq!(pair.body_str(), r#"{"snArray":["A"],"operationId":9}"#);
        o.handle_delivery(PayloadKind::Pair, Ok(()));
        let n = o.poll_payload().unwrap();
        assert_eq!(n.kind, PayloadKind::Notify);
        o.handle_delivery(PayloadKind::Notify, Ok(()));
        assert_eq!(o.state(), OperationState::Done);
        assert_eq!(o.poll_payload(), None);
        assert_eq!(o.counters().duplicates, 1);
    }

    #[test]
    fn rejections_and_late_replies() {
        let mut o = op(&[]);
        let other = OperationId::Number(8);
        assert!(matches!(
            o.handle_reply(&report(&other, "A", &[1])),
            ReplyOutcome::Rejected(RejectReason::UnknownOperation(Some(_)))
        ));
        let ReplyOutcome::Rejected(r) = o.handle_reply(b"{\"sn\": 1}") else {
            panic!("malformed accepted")
        };
        assert!(
            r.to_string()
                .starts_with("malformed: device report is invalid at sn")
        );
        o.handle_timeout(t(9));
        assert_eq!(o.state(), OperationState::Collecting);
        o.handle_timeout(t(10));
        assert_eq!(o.state(), OperationState::Reporting);
        let id = o.id().clone();
        assert_eq!(
            o.handle_reply(&report(&id, "Z", &[1])),
            ReplyOutcome::Rejected(RejectReason::Late(id.clone()))
        );
        assert_eq!(o.counters().rejected, 3);
    }

    #[test]
    fn failed_log_means_no_pair_and_an_error() {
        let mut o = op(&["A", "S"]);
        let id = o.id().clone();
        o.handle_reply(&report(&id, "A", &[1]));
        o.handle_mes_answer(&sn("A"), Ok(MesAnswer::Record(vec![mac(1)])));
        o.handle_timeout(t(11));
        let log = o.poll_payload().unwrap();
        // The silent expected serial is Fail with no macinfo.
        assert!(
            log.body_str()
                .contains(r#"{"macinfo":[],"sn":"S","result":"0"}"#)
        );
        o.handle_delivery(
            PayloadKind::Log,
            Err(ReportError::Unavailable {
                kind: PayloadKind::Log,
                message: "503".into(),
            }),
        );
        let n = o.poll_payload().unwrap();
        assert_eq!(n.kind, PayloadKind::Notify);
        assert!(
            n.body_str()
                .contains(r#""error":"log could not be delivered: 503""#)
        );
        o.handle_delivery(PayloadKind::Notify, Ok(()));
        assert_eq!(o.state(), OperationState::Failed);
    }

    #[test]
    fn mes_failure_fails_the_device_and_reports_the_error() {
        let mut o = op(&["A"]);
        let id = o.id().clone();
        o.handle_reply(&report(&id, "A", &[1]));
        o.poll_collection_end();
        o.handle_mes_answer(
            &sn("A"),
            Err(MesError::Unavailable {
                sn: sn("A"),
                message: "timed out".into(),
            }),
        );
        let log = o.poll_payload().unwrap();
        assert!(log.body_str().contains(r#""result":"0""#));
        o.handle_delivery(PayloadKind::Log, Ok(()));
        let n = o.poll_payload().unwrap();
        assert_eq!(n.kind, PayloadKind::Notify, "nothing passed: no Pair");
        assert!(n.body_str().contains("MES lookup for A failed: timed out"));
    }

    #[test]
    fn an_aborted_scan_only_notifies_the_error() {
        let mut o = op(&["A"]);
        o.handle_abort("broker unreachable");
        let n = o.poll_payload().unwrap();
        assert_eq!(
            n.body_str(),
            r#"{"operationId":9,"scanInfo":[],"error":"broker unreachable"}"#
        );
        o.handle_delivery(PayloadKind::Notify, Ok(()));
        assert_eq!(o.state(), OperationState::Failed);
        assert_eq!(o.poll_payload(), None);
    }

    #[test]
    fn restore_replays_replies_and_deliveries() {
        let mut o = op(&["A", "B"]);
        let id = o.id().clone();
        let a = report(&id, "A", &[1]);
        let b = report(&id, "B", &[2]);
        o.handle_reply(&a);
        o.handle_reply(&b);
        o.handle_mes_answer(&sn("A"), Ok(MesAnswer::Record(vec![mac(1)])));
        o.handle_mes_answer(&sn("B"), Ok(MesAnswer::Unknown));
        assert!(o.poll_collection_end());
        assert!(o.poll_results());
        assert!(!o.poll_results(), "once");
        let log = o.poll_payload().unwrap();
        o.handle_delivery(PayloadKind::Log, Ok(()));
        let pair = o.poll_payload().unwrap();

        // Crash while collecting: replies come back, MES is asked again.
        let stored = StoredOperation {
            params: o.params().clone(),
            started: o.started(),
            deadline: o.deadline(),
            replies: vec![a.clone(), b.clone()],
            results: None,
            deliveries: vec![],
        };
        let r = Operation::restore(stored.clone());
        assert_eq!(r.state(), OperationState::Collecting);
        assert_eq!(r.counters().accepted, 2);
        assert_eq!(r.mes_outstanding(), vec![sn("A"), sn("B")]);

        // Crash after the log was delivered: Pair is next, byte-identical.
        let mut r = Operation::restore(StoredOperation {
            results: Some((o.results().to_vec(), o.errors().to_vec())),
            deliveries: vec![(PayloadKind::Log, Ok(()))],
            ..stored.clone()
        });
        assert!(r.mes_outstanding().is_empty());
        assert_eq!(r.poll_payload(), Some(pair));

        // Crash before any delivery: the log again, identical.
        let mut r = Operation::restore(StoredOperation {
            results: Some((o.results().to_vec(), o.errors().to_vec())),
            ..stored.clone()
        });
        assert_eq!(r.poll_payload(), Some(log));

        // A failed log replays into the notification's error.
        let mut r = Operation::restore(StoredOperation {
            results: Some((o.results().to_vec(), vec![])),
            deliveries: vec![(
                PayloadKind::Log,
                Err("log could not be delivered: 503".into()),
            )],
            ..stored
        });
        let n = r.poll_payload().unwrap();
        assert_eq!(n.kind, PayloadKind::Notify);
        assert!(
            n.body_str()
                .ends_with(r#""error":"log could not be delivered: 503"}"#)
        );
    }

    #[test]
    fn direct_burn_defaults() {
        let mut p = OperationParams::new(OperationId::Text("x".into()));
        p.target = Target::DirectBurn;
        p.operator_id = Some("op1".into());
        let mut o = Operation::new(p, t(0));
        let id = o.id().clone();
        o.handle_reply(&report(&id, "A", &[1]));
        o.handle_mes_answer(&sn("A"), Ok(MesAnswer::Record(vec![mac(1)])));
        o.handle_timeout(t(31));
        o.poll_payload().unwrap();
        o.handle_delivery(PayloadKind::Log, Ok(()));
        let d = o.poll_payload().unwrap();
        assert_eq!(
            d.body_str(),
            r#"{"snArray":["A"],"operationId":"x","operatorId":"op1","scanMode":1}"#
        );
    }
}
