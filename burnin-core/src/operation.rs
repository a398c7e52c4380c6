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
//! * **Replies** ([`Operation::handle_reply_at`]): the first reply from a
//!   serial stands; a later one with the same facts (host name, MACs,
//!   permanent MACs) is counted as a duplicate. A later one whose facts
//!   differ is a **conflict** — two boards answering as one serial (a
//!   cloned or re-used serial): the serial fails with a finding naming both
//!   boards, and the log carries the first reply's MACs with result `"0"`.
//!   Replies that do not parse, name another operation, or arrive after
//!   collection ended are rejected with a [`RejectReason`] for the rejected
//!   queue — never dropped.
//! * **Early end**: once every expected serial has replied, collection goes
//!   on for [`OperationParams::settle`] (default 500 ms) so a twin answering
//!   the same command is caught, then ends.
//! * **Clocks**: each reply's `collectedAt` is compared with the time the
//!   edge received it; a device whose clock is further off than
//!   [`OperationParams::clock_tolerance`] gets a finding ("device clock is
//!   8 h 0 min ahead of the edge"), informational unless `requireClock`.
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
//! * **MES outages**: a lookup that failed for any reason but 404 (after the
//!   driver retried it for [`OperationParams::mes_outage_wait`]) leaves its
//!   device **undecided**. An undecided device is never reported to the
//!   factory as failed: when any device is undecided, the log and Pair are
//!   withheld and only the notification is sent, with an empty `scanInfo`
//!   and an error naming MES and the devices (the whole operation can be
//!   run again with a rescan once MES answers).

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
    /// Which run of the operation id this is (SPEC §11.3), assigned by the
    /// store when the run begins ([`crate::OperationStore::begin`]): 1, 2, …
    /// with a store; the start time in milliseconds since the Unix epoch
    /// without one (so runs never repeat); 0 for an operation recorded
    /// before runs were numbered.
    pub run: u64,
    /// Whether a new run of an id the store already holds was asked for
    /// (`--rescan`, `"rescan": true`); without it such an id is refused.
    pub rescan: bool,
    /// How long collection goes on after every expected serial replied, so
    /// a second board answering with the same serial is caught.
    pub settle: Duration,
    /// How far a device's clock may be from the edge's before it gets a
    /// finding.
    pub clock_tolerance: Duration,
    /// `requireClock`: a device whose clock is off by more than
    /// [`clock_tolerance`](Self::clock_tolerance) fails. Off by default.
    pub require_clock: bool,
    /// How long a MES lookup that fails (other than with 404) is retried
    /// before its device is left undecided.
    pub mes_outage_wait: Duration,
    /// How long, in all, the operation waits out a factory outage: a
    /// payload whose delivery failed in a way that may pass (the endpoint
    /// unreachable, timeouts, 5xx, 429 after the reporter's own attempts)
    /// is tried again until this much time has passed since the first such
    /// failure of any of its payloads, and only then given up. The
    /// operation stays `reporting` meanwhile; a refusal (another 4xx) is
    /// never retried. Zero: give up after the reporter's attempts.
    pub delivery_outage_wait: Duration,
    /// `requireCabling` (SPEC §11.1): a cabling finding fails its
    /// interface's MAC. Off by default.
    pub require_cabling: bool,
    /// `requirePcieWidth` (SPEC §11.1): a network card narrower than its
    /// maximum PCIe width fails its MAC. Off by default.
    pub require_pcie_width: bool,
    /// The edge's cabling plan (SPEC §11.1), if it has one: devices get a
    /// location and cabling findings. Edge configuration, not recorded with
    /// the operation (see [`crate::cabling`]): whoever runs or resumes the
    /// operation sets it.
    pub cabling: Option<std::sync::Arc<crate::cabling::CablingPlan>>,
}

/// Default of [`OperationParams::settle`].
pub const DEFAULT_SETTLE: Duration = Duration::from_millis(500);
/// Default of [`OperationParams::clock_tolerance`].
pub const DEFAULT_CLOCK_TOLERANCE: Duration = Duration::from_secs(120);
/// Default of [`OperationParams::mes_outage_wait`].
pub const DEFAULT_MES_OUTAGE_WAIT: Duration = Duration::from_secs(600);
/// Default of [`OperationParams::delivery_outage_wait`].
pub const DEFAULT_DELIVERY_OUTAGE_WAIT: Duration = Duration::from_secs(600);

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
            run: 0,
            rescan: false,
            settle: DEFAULT_SETTLE,
            clock_tolerance: DEFAULT_CLOCK_TOLERANCE,
            require_clock: false,
            mes_outage_wait: DEFAULT_MES_OUTAGE_WAIT,
            delivery_outage_wait: DEFAULT_DELIVERY_OUTAGE_WAIT,
            require_cabling: false,
            require_pcie_width: false,
            cabling: None,
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
    /// A second reply from a serial with the same facts; the first stands.
    Duplicate(SerialNumber),
    /// A second reply from a serial whose facts differ from the first: two
    /// boards answer as one serial. Recorded (like an accepted reply); the
    /// serial fails.
    Conflict(SerialNumber),
    /// Not recorded; move it to the rejected queue.
    Rejected(RejectReason),
}

/// Counters, for progress and metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counters {
    /// Replies accepted (one per serial).
    pub accepted: usize,
    /// Replies from a serial that had already replied, with the same facts.
    pub duplicates: usize,
    /// Replies from a serial that had already replied, with other facts
    /// (another board answering as the same serial).
    pub conflicts: usize,
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
    /// When the edge received each accepted reply.
    received: HashMap<SerialNumber, Timestamp>,
    /// Further replies of a serial whose facts differ from the first.
    conflicts: HashMap<SerialNumber, Vec<DeviceReport>>,
    arrival: Vec<SerialNumber>,
    /// The latest time the operation was told.
    now: Timestamp,
    /// When the early end happens (every expected serial replied, plus
    /// the settle time).
    settle_until: Option<Timestamp>,
    /// Serials whose MES lookup is failing and being retried, with why.
    mes_waiting: HashMap<SerialNumber, String>,
    expected: HashSet<SerialNumber>,
    /// How many of `expected` have replied: kept as replies come, so the
    /// early end is decided in constant time per reply (checking every
    /// expected serial on each reply cost 10,000 devices up to 50 million
    /// lookups, 15 % of the edge's CPU in a profile).
    expected_replied: usize,
    mes: HashMap<SerialNumber, Result<MesAnswer, MesError>>,
    counters: Counters,
    errors: Vec<String>,
    results: Vec<DeviceResult>,
    next: Option<PayloadKind>,
    reporting_started: bool,
    aborted: bool,
    /// Devices left undecided by a MES outage: the log and Pair are
    /// withheld.
    undecided: Vec<SerialNumber>,
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
        for reply in &stored.replies {
            op.handle_reply_at(&reply.body, reply.received);
        }
        if let Some((results, errors)) = stored.results {
            op.state = OperationState::Reporting;
            op.results = results;
            op.errors = errors;
            op.reporting_started = true;
            op.aborted = op.results.is_empty() && op.replies.is_empty() && !op.errors.is_empty();
            op.undecided = op
                .results
                .iter()
                .filter(|d| d.is_undecided())
                .map(|d| d.sn.clone())
                .collect();
            op.next = Some(if op.withheld() {
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
            received: HashMap::new(),
            conflicts: HashMap::new(),
            arrival: Vec::new(),
            now: started,
            settle_until: None,
            mes_waiting: HashMap::new(),
            expected,
            expected_replied: 0,
            mes: HashMap::new(),
            counters: Counters::default(),
            errors: Vec::new(),
            results: Vec::new(),
            next: None,
            reporting_started: false,
            aborted: false,
            undecided: Vec::new(),
        }
    }

    // ---- getters ----

    /// Where `sn` is by the edge's cabling plan (SPEC §11.1): from its
    /// reply's LLDP neighbours once it replied, else where the plan puts it
    /// (`planned`); `None` without a plan or a matching row.
    pub fn location(&self, sn: &SerialNumber) -> Option<crate::Location> {
        let plan = self.params.cabling.as_ref()?;
        match self.replies.get(sn) {
            Some(report) => plan.locate(report),
            None => plan.planned(sn),
        }
    }

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
    /// The replies of other boards that answered as `sn` (empty unless a
    /// conflict).
    pub fn conflicting_replies(&self, sn: &SerialNumber) -> &[DeviceReport] {
        self.conflicts.get(sn).map_or(&[], Vec::as_slice)
    }
    /// Why `sn`'s MES lookup is being retried, while it is.
    pub fn mes_waiting(&self, sn: &SerialNumber) -> Option<&str> {
        self.mes_waiting.get(sn).map(String::as_str)
    }
    /// Serials left undecided by a MES outage (empty unless reporting
    /// found some).
    pub fn undecided(&self) -> &[SerialNumber] {
        &self.undecided
    }
    /// A hint for the operator when every MES answer was "unknown" (404)
    /// for more than one device: the MES URL is then more likely wrong than
    /// every serial.
    pub fn mes_hint(&self) -> Option<String> {
        let unknown = self
            .mes
            .values()
            .filter(|a| matches!(a, Ok(MesAnswer::Unknown)))
            .count();
        (unknown >= 2 && unknown == self.mes.len()).then(|| {
            format!(
                "every serial looked up ({unknown}) was unknown to MES (404): \
                 the MES URL may be wrong"
            )
        })
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
    /// The scan command to publish at `now`: it carries the run and how
    /// much of the window is left, so agents need not trust their clocks.
    pub fn command(&self, now: Timestamp) -> ScanCommand {
        let remaining = self.deadline.saturating_since(now);
        ScanCommand {
            operation_id: self.params.operation_id.clone(),
            operator_id: self.params.operator_id.clone(),
            scan_mode: self.params.scan_mode,
            reply_to: self.params.reply_to.clone(),
            deadline: self.deadline,
            run: (self.params.run > 0).then_some(self.params.run),
            remaining_ms: Some(u64::try_from(remaining.as_millis()).unwrap_or(u64::MAX)),
        }
    }
    /// Serials whose MES answer is still outstanding.
    pub fn mes_pending(&self) -> usize {
        self.replies.len() - self.mes.len()
    }

    // ---- inputs ----

    /// Takes the run number the store gave this operation when it began
    /// ([`crate::OperationStore::begin`]).
    pub fn handle_run(&mut self, run: u64) {
        self.params.run = run;
    }

    /// Notes that the reply about to be handled was marked redelivered by
    /// the broker (counted in [`Counters::redelivered`]).
    pub fn handle_redelivered(&mut self) {
        self.counters.redelivered += 1;
    }

    /// Takes a raw reply body received at the latest time the operation
    /// was told ([`handle_reply_at`](Self::handle_reply_at) with that time).
    pub fn handle_reply(&mut self, body: &[u8]) -> ReplyOutcome {
        self.handle_reply_at(body, self.now)
    }

    /// Takes a raw reply body the edge received at `received`.
    pub fn handle_reply_at(&mut self, body: &[u8], received: Timestamp) -> ReplyOutcome {
        self.now = self.now.max(received);
        let outcome = match DeviceReport::from_slice(body) {
            Err(e) => ReplyOutcome::Rejected(RejectReason::Malformed(e)),
            Ok(report) => self.handle_report(report, received),
        };
        match &outcome {
            ReplyOutcome::Accepted(_) => self.counters.accepted += 1,
            ReplyOutcome::Duplicate(_) => self.counters.duplicates += 1,
            ReplyOutcome::Conflict(_) => self.counters.conflicts += 1,
            ReplyOutcome::Rejected(_) => self.counters.rejected += 1,
        }
        outcome
    }

    fn handle_report(&mut self, report: DeviceReport, received: Timestamp) -> ReplyOutcome {
        if report.operation_id.as_ref() != Some(&self.params.operation_id) {
            return ReplyOutcome::Rejected(RejectReason::UnknownOperation(report.operation_id));
        }
        if let Some(first) = self.replies.get(&report.sn) {
            let twins = self
                .conflicts
                .get(&report.sn)
                .map_or(&[][..], Vec::as_slice);
            if same_board(first, &report) || twins.iter().any(|t| same_board(t, &report)) {
                return ReplyOutcome::Duplicate(report.sn);
            }
            let sn = report.sn.clone();
            self.conflicts.entry(sn.clone()).or_default().push(report);
            return ReplyOutcome::Conflict(sn);
        }
        if self.state != OperationState::Collecting {
            return ReplyOutcome::Rejected(RejectReason::Late(self.params.operation_id.clone()));
        }
        let sn = report.sn.clone();
        if self.expected.contains(&sn) {
            self.expected_replied += 1;
        }
        self.arrival.push(sn.clone());
        self.replies.insert(sn.clone(), report);
        self.received.insert(sn.clone(), received);
        if self.settle_until.is_none() && self.all_expected_replied() {
            self.settle_until = Some(received.saturating_add(self.params.settle));
        }
        ReplyOutcome::Accepted(sn)
    }

    /// Notes that `sn`'s MES lookup failed with `why` and is being retried
    /// (a MES outage; see the [module docs](self)).
    pub fn handle_mes_waiting(&mut self, sn: &SerialNumber, why: impl Into<String>) {
        if self.replies.contains_key(sn) && !self.mes.contains_key(sn) {
            self.mes_waiting.insert(sn.clone(), why.into());
        }
    }

    /// Takes MES's answer for an accepted serial. Answers for serials that
    /// did not reply, or a second answer, are ignored.
    pub fn handle_mes_answer(&mut self, sn: &SerialNumber, answer: Result<MesAnswer, MesError>) {
        if self.replies.contains_key(sn) && !self.mes.contains_key(sn) {
            self.counters.mes_done += 1;
            self.mes_waiting.remove(sn);
            self.mes.insert(sn.clone(), answer);
        }
    }

    /// Tells the operation the time; collection ends at the deadline, or
    /// once the settle time after the last expected reply has passed.
    pub fn handle_timeout(&mut self, now: Timestamp) {
        self.now = self.now.max(now);
        if self.state == OperationState::Collecting
            && (now >= self.deadline || self.settle_until.is_some_and(|s| now >= s))
        {
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
        !self.expected.is_empty() && self.expected_replied == self.expected.len()
    }

    /// Ends collection if every expected serial replied and the settle time
    /// has passed (by the latest time told). Returns whether collection is
    /// over.
    pub fn poll_collection_end(&mut self) -> bool {
        if self.state == OperationState::Collecting
            && self.settle_until.is_some_and(|s| self.now >= s)
        {
            self.stop_collecting();
        }
        self.state != OperationState::Collecting
    }

    fn stop_collecting(&mut self) {
        self.state = OperationState::Reporting;
    }

    /// The next deadline the caller must wake up for (while collecting):
    /// the window's end, or the end of the settle time if that is sooner.
    pub fn poll_timeout(&self) -> Option<Timestamp> {
        (self.state == OperationState::Collecting).then(|| {
            self.settle_until
                .map_or(self.deadline, |s| s.min(self.deadline))
        })
    }

    /// Whether the log and Pair are withheld: the scan never ran, or a MES
    /// outage left devices undecided. Only the notification is sent.
    fn withheld(&self) -> bool {
        self.aborted || !self.undecided.is_empty()
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
            self.next = Some(if self.withheld() {
                PayloadKind::Notify
            } else {
                PayloadKind::Log
            });
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
        let run = self.params.run;
        if self.withheld() {
            // Only the notification, and no device in it: none is reported
            // as failed when it was not decided (see the module docs).
            return Some(payload::notify(op, &[], self.error().as_deref()).with_run(run));
        }
        Some(
            match kind {
                PayloadKind::Log => payload::log(op, &self.results),
                PayloadKind::Pair => payload::pair(op, &self.results),
                PayloadKind::DirectBurn => payload::direct_burn(
                    op,
                    &self.results,
                    self.params.operator_id.as_deref().unwrap_or_default(),
                    self.params.scan_mode.unwrap_or(1),
                ),
                PayloadKind::Notify => payload::notify(op, &self.results, self.error().as_deref()),
            }
            .with_run(run),
        )
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

    /// One device's result from its reply and MES answer, as it stands
    /// without the cross-device findings (shared MACs), with why it is
    /// undecided if MES could not be asked.
    fn device_result(&self, sn: &SerialNumber) -> (DeviceResult, Option<String>) {
        let mut rules = Rules::require_link(self.params.require_link);
        rules.require_cabling = self.params.require_cabling;
        rules.require_pcie_width = self.params.require_pcie_width;
        let plan = self.params.cabling.as_ref();
        let Some(report) = self.replies.get(sn) else {
            let mut r = DeviceResult::no_reply(sn.clone());
            r.location = plan.and_then(|p| p.planned(sn));
            return (r, None);
        };
        let mut undecided = None;
        let mut r = match self.mes.get(sn) {
            Some(Ok(answer)) => DeviceResult::compare_report(report, answer, rules),
            failed => {
                let why = match failed {
                    Some(Err(e)) => e.reason(),
                    _ => "no MES answer".to_owned(),
                };
                let mut r = DeviceResult::mes_failed(sn.clone(), &report.interfaces, why.clone());
                r.add_report_findings(report, rules);
                r.mark_undecided();
                undecided = Some(why);
                r
            }
        };
        if let Some(plan) = plan {
            r.add_cabling(plan, report, rules);
        }
        if let Some(twins) = self.conflicts.get(sn) {
            r.add_conflict(report, twins);
        }
        if let Some(&received) = self.received.get(sn) {
            r.add_clock_finding(
                report.collected_at,
                received,
                self.params.clock_tolerance,
                self.params.require_clock,
            );
        }
        (r, undecided)
    }

    /// `sn`'s verdict as soon as it is known: once its reply and its MES
    /// answer are in (SPEC §10.1: results follow MES), before collection
    /// ends; its entry of [`Operation::results`] once those are fixed.
    /// `None` while it has not replied or MES has not answered.
    ///
    /// Cross-device findings (a MAC shared with another device) never
    /// change a verdict and are only added to the fixed results; a later
    /// reply of another board as the same serial (a conflict) does fail it,
    /// and the verdict asked for again says so.
    pub fn verdict(&self, sn: &SerialNumber) -> Option<DeviceResult> {
        if self.reporting_started {
            return self.results.iter().find(|r| &r.sn == sn).cloned();
        }
        if !self.replies.contains_key(sn) || !self.mes.contains_key(sn) {
            return None;
        }
        Some(self.device_result(sn).0)
    }

    fn build_results(&mut self) {
        let mut undecided: Vec<(SerialNumber, String)> = Vec::new();
        let mut result_for = |sn: &SerialNumber| -> DeviceResult {
            let (r, why) = self.device_result(sn);
            if let Some(why) = why {
                undecided.push((sn.clone(), why));
            }
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
        if let Some((_, first)) = undecided.first() {
            let names: Vec<&str> = undecided
                .iter()
                .take(crate::compare::MAX_NAMED_SERIALS)
                .map(|(sn, _)| sn.as_str())
                .collect();
            let more = match undecided.len().saturating_sub(names.len()) {
                0 => String::new(),
                n => format!(" and {n} more"),
            };
            self.errors.push(format!(
                "MES could not be asked about {} device(s) ({}{more}) for {}: {first}; \
                 they were not reported to the factory (no log, no pairing) — run the \
                 operation again (rescan) once MES answers",
                undecided.len(),
                names.join(", "),
                crate::time::human_duration(self.params.mes_outage_wait),
            ));
            self.undecided = undecided.into_iter().map(|(sn, _)| sn).collect();
        }
        self.results = results;
    }
}

/// Whether two replies come from the same board: the same host name and the
/// same (current, permanent) addresses.
fn same_board(a: &DeviceReport, b: &DeviceReport) -> bool {
    fn macs(r: &DeviceReport) -> Vec<(crate::Mac, Option<crate::Mac>)> {
        let mut v: Vec<_> = r
            .interfaces
            .iter()
            .map(|i| (i.macaddr, i.permaddr))
            .collect();
        v.sort();
        v
    }
    a.hostname == b.hostname && macs(a) == macs(b)
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
                            pcie_link: None,
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
        // Collection ends the moment every expected serial replied; the
        // settle time has tests of its own.
        p.settle = Duration::ZERO;
        Operation::new(p, t(0))
    }

    #[test]
    fn full_run_with_early_end() {
        let mut o = op(&["B", "A"]);
        assert_eq!(o.command(t(0)).deadline, t(10));
        let id = o.id().clone();
        assert_eq!(
            o.handle_reply(&report(&id, "A", &[1])),
            ReplyOutcome::Accepted(sn("A"))
        );
        assert!(!o.poll_collection_end());
        assert_eq!(
            o.handle_reply(&report(&id, "A", &[1])),
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
        // Expected order (B, A); A's repeat was the same board (a duplicate).
        assert!(log.body_str().contains(r#""sn":"B","result":"0"}"#));
        assert!(log.body_str().find(r#""sn":"B""#) < log.body_str().find(r#""sn":"A""#));
        assert!(log.body_str().contains("02:00:00:00:00:01"));
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
    fn a_mes_outage_leaves_devices_undecided_and_unreported() {
        let mut o = op(&["A", "B"]);
        let id = o.id().clone();
        o.handle_reply(&report(&id, "A", &[1]));
        o.handle_reply(&report(&id, "B", &[2]));
        o.poll_collection_end();
        o.handle_mes_waiting(&sn("A"), "connection refused");
        assert_eq!(o.mes_waiting(&sn("A")), Some("connection refused"));
        o.handle_mes_answer(
            &sn("A"),
            Err(MesError::Unavailable {
                sn: sn("A"),
                message: "timed out".into(),
            }),
        );
        o.handle_mes_answer(&sn("B"), Ok(MesAnswer::Record(vec![mac(2)])));
        assert_eq!(o.mes_waiting(&sn("A")), None);
        // No log, no Pair: only the notification, with no device in it.
        let n = o.poll_payload().unwrap();
        assert_eq!(n.kind, PayloadKind::Notify);
        assert!(
            n.body_str().contains(r#""scanInfo":[]"#),
            "{}",
            n.body_str()
        );
        let error = o.error().unwrap();
        assert!(
            error.starts_with(
                "MES could not be asked about 1 device(s) (A) for 10 min 0 s: timed out;"
            ),
            "{error}"
        );
        assert_eq!(
            error.matches("timed out").count(),
            1,
            "the cause once: {error}"
        );
        assert_eq!(o.undecided(), [sn("A")]);
        let a = &o.results()[0];
        assert!(a.is_undecided(), "{a:?}");
        assert!(!o.results()[1].is_undecided());
        assert!(o.results()[1].result.passed(), "B got its real verdict");
        o.handle_delivery(PayloadKind::Notify, Ok(()));
        assert_eq!(o.state(), OperationState::Failed);
        assert_eq!(o.poll_payload(), None);

        // Restored after a crash while notifying: still only the notification.
        let r = Operation::restore(StoredOperation {
            params: o.params().clone(),
            started: o.started(),
            deadline: o.deadline(),
            replies: vec![],
            results: Some((o.results().to_vec(), o.errors().to_vec())),
            deliveries: vec![],
        });
        let mut r = r;
        assert_eq!(r.poll_payload().unwrap().body_str(), n.body_str());
    }

    #[test]
    fn twin_serials_are_a_conflict_that_fails_the_serial() {
        let mut o = op(&["C1"]);
        let id = o.id().clone();
        let first = report(&id, "C1", &[1]);
        assert_eq!(o.handle_reply(&first), ReplyOutcome::Accepted(sn("C1")));
        // The same board again (a re-announced command): a duplicate.
        assert_eq!(o.handle_reply(&first), ReplyOutcome::Duplicate(sn("C1")));
        let twin = report(&id, "C1", &[9]);
        assert_eq!(o.handle_reply(&twin), ReplyOutcome::Conflict(sn("C1")));
        assert_eq!(o.handle_reply(&twin), ReplyOutcome::Duplicate(sn("C1")));
        assert_eq!(o.conflicting_replies(&sn("C1")).len(), 1);
        assert_eq!((o.counters().duplicates, o.counters().conflicts), (2, 1));
        o.handle_timeout(t(10));
        o.handle_mes_answer(&sn("C1"), Ok(MesAnswer::Record(vec![mac(1)])));
        let log = o.poll_payload().unwrap();
        // The first board's MACs, failed; the twin's MAC never reaches the log.
        assert_eq!(
            log.body_str(),
            r#"{"operationid":9,"pairInfo":[],"scaninfo":[{"macinfo":[{"interface":"eth0","macaddr":"02:00:00:00:00:01","scanstatus":"0"}],"sn":"C1","result":"0"}]}"#
        );
        let c1 = &o.results()[0];
        let finding = c1
            .findings
            .iter()
            .find(|f| f.kind == crate::compare::FindingKind::SerialConflict)
            .expect("a conflict finding");
        assert_eq!(
            finding.message,
            "2 boards answered as C1: host \"h\" (02:00:00:00:00:01) and host \"h\" \
             (02:00:00:00:00:09); a cloned or re-used serial? The first reply is logged, failed"
        );
        // A restored operation (replies in the order recorded) agrees.
        let mut r = Operation::restore(StoredOperation {
            params: o.params().clone(),
            started: o.started(),
            deadline: o.deadline(),
            replies: [&first, &twin]
                .into_iter()
                .map(|b| crate::StoredReply {
                    body: b.clone(),
                    received: t(1),
                })
                .collect(),
            results: None,
            deliveries: vec![],
        });
        r.handle_timeout(t(10));
        r.handle_mes_answer(&sn("C1"), Ok(MesAnswer::Record(vec![mac(1)])));
        assert_eq!(r.poll_payload().unwrap().body_str(), log.body_str());
    }

    #[test]
    fn the_early_end_waits_the_settle_time_for_a_twin() {
        let mut p = OperationParams::new(OperationId::Number(9));
        p.expected = vec![sn("C1")];
        p.window = Duration::from_secs(10);
        assert_eq!(p.settle, DEFAULT_SETTLE);
        let mut o = Operation::new(p, t(0));
        let id = o.id().clone();
        let at = |ms: u64| t(1).saturating_add(Duration::from_millis(ms));
        o.handle_reply_at(&report(&id, "C1", &[1]), at(0));
        assert!(!o.poll_collection_end(), "settling");
        assert_eq!(o.poll_timeout(), Some(at(500)));
        o.handle_timeout(at(300));
        assert_eq!(
            o.handle_reply_at(&report(&id, "C1", &[9]), at(300)),
            ReplyOutcome::Conflict(sn("C1"))
        );
        o.handle_timeout(at(499));
        assert_eq!(o.state(), OperationState::Collecting);
        o.handle_timeout(at(500));
        assert_eq!(o.state(), OperationState::Reporting);
    }

    #[test]
    fn a_clock_far_off_is_a_finding_and_optionally_a_failure() {
        for (require, passes) in [(false, true), (true, false)] {
            let mut p = OperationParams::new(OperationId::Number(9));
            p.window = Duration::from_secs(10);
            p.require_clock = require;
            let mut o = Operation::new(p, t(0));
            let id = o.id().clone();
            // report() says collectedAt = t(0); the edge got it 8 h later
            // by its clock, i.e. the device is 8 h behind. Then one ahead.
            o.handle_reply_at(&report(&id, "LATE", &[1]), t(8 * 3600));
            let mut ahead = DeviceReport::from_slice(&report(&id, "AHEAD", &[2])).unwrap();
            ahead.collected_at = t(8 * 3600 + 3 * 3600 + 5 * 60);
            o.handle_reply_at(&ahead.to_json(), t(8 * 3600));
            let mut near = DeviceReport::from_slice(&report(&id, "NEAR", &[3])).unwrap();
            near.collected_at = t(8 * 3600 + 119);
            o.handle_reply_at(&near.to_json(), t(8 * 3600));
            o.handle_timeout(t(8 * 3600 + 10));
            for (s, m) in [("LATE", 1), ("AHEAD", 2), ("NEAR", 3)] {
                o.handle_mes_answer(&sn(s), Ok(MesAnswer::Record(vec![mac(m)])));
            }
            assert!(o.poll_results());
            let by = |s: &str| o.results().iter().find(|d| d.sn.as_str() == s).unwrap();
            let clock = |s: &str| -> Vec<String> {
                by(s)
                    .findings
                    .iter()
                    .filter(|f| f.kind == crate::compare::FindingKind::Clock)
                    .map(|f| f.message.clone())
                    .collect()
            };
            let suffix = if require {
                "; requireClock fails it"
            } else {
                ""
            };
            assert_eq!(
                clock("LATE"),
                [format!("device clock is 8 h 0 min behind the edge{suffix}")]
            );
            assert_eq!(
                clock("AHEAD"),
                [format!(
                    "device clock is 3 h 5 min ahead of the edge{suffix}"
                )]
            );
            assert!(clock("NEAR").is_empty(), "within the 2 min tolerance");
            assert_eq!(by("LATE").result.passed(), passes);
            assert!(by("NEAR").result.passed());
        }
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
            replies: [&a, &b]
                .into_iter()
                .map(|body| crate::StoredReply {
                    body: body.clone(),
                    received: t(1),
                })
                .collect(),
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
