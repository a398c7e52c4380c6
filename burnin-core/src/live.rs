//! Live state of running operations, for people watching (SPEC §10.2).
//!
//! A [`Board`] follows operations as the edge runs them and answers two
//! questions: *what does operation X look like now?* ([`Board::operation`])
//! and *what changed since event N?* ([`Board::since`]). It is pure: the
//! edge feeds it from its [`Observer`](crate::edge::Observer) hooks and wraps
//! it in a lock; a web server turns [`Event`]s into Server-Sent Events.
//!
//! # Device states
//!
//! ```text
//! waiting ──(reply recorded)──▶ replied ──(its MES answer in)──▶ passed | failed | undecided
//!    └──────────────────(window closed, no reply)──────────────────▶ failed
//! ```
//!
//! Every expected serial is `waiting` from the moment the operation is
//! tracked; a serial nobody expected appears when its reply is recorded
//! (before MES is asked), marked `expected: false`. A device becomes
//! `passed`/`failed` as soon as its MES answer is in ([`Board::verdict`],
//! from [`Operation::verdict`]): results follow MES (SPEC §10.1), so the
//! verdict is known then, while others are still collected. When the
//! operation's results are fixed — collection has ended and every MES
//! answer is in, before any payload is sent — every device is set from
//! them ([`Board::results`]): silent ones fail, and findings that need
//! every device (a MAC shared with another device) are added to the
//! verdicts already shown, never changing them.
//! A failed device carries its reasons in words ([`details`]): which MAC
//! is not in MES, which card is missing, that MES does not know the serial,
//! that no reply came before the deadline.
//!
//! # Events and their ids
//!
//! Every change is an [`Event`] with an id one greater than the previous
//! one: a device's new state, the operation's state, or a delivery to the
//! factory. The first id is chosen by the caller ([`Board::new`]); the edge
//! uses the time it started in microseconds, so ids keep growing across a
//! restart as long as it emitted fewer than a million events a second on
//! average.
//!
//! A watcher reads a snapshot (which carries [`Board::last_id`]) and then
//! asks for the events after that id. The board keeps the last
//! `capacity` events (all operations together); [`Board::since`] answers
//! [`Since::Gap`] when a requested id is older than that (or newer than
//! anything this board issued, e.g. from before a restart): the watcher must
//! read a fresh snapshot — the store stays the source of truth — and go on
//! from its id. Nothing is lost either way, only replay is bounded.
//!
//! Finished operations stay on the board until more than
//! `keep_finished` newer ones have finished; after that their snapshot
//! comes from the store.

use std::collections::{HashMap, VecDeque};
use std::fmt;

use serde::Serialize;

use crate::edge::OperationReport;
use crate::{
    DeviceResult, Finding, FindingKind, HardwareFinding, Location, Mac, MacInfo, Operation,
    OperationId, OperationState, PayloadKind, ScanStatus, SerialNumber, Timestamp,
};

/// Where a device is in an operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum DeviceState {
    /// Expected, no reply yet.
    Waiting,
    /// Its reply is recorded; MES has not answered yet.
    Replied,
    /// Every MAC matched MES.
    Passed,
    /// Something did not match, or it did not reply; see the findings.
    Failed,
    /// MES could not be asked (an outage that outlasted the operation's MES
    /// outage wait): no verdict, and not reported to the factory.
    Undecided,
}

impl DeviceState {
    /// `waiting`, `replied`, `passed` or `failed`.
    pub fn as_str(self) -> &'static str {
        match self {
            DeviceState::Waiting => "waiting",
            DeviceState::Replied => "replied",
            DeviceState::Passed => "passed",
            DeviceState::Failed => "failed",
            DeviceState::Undecided => "undecided",
        }
    }
}

impl fmt::Display for DeviceState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One device as a watcher sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LiveDevice {
    /// The serial number.
    pub sn: SerialNumber,
    /// Its state.
    pub state: DeviceState,
    /// Whether the operation named it in `expected`.
    pub expected: bool,
    /// The host name it reported, once it replied.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
    /// `"1"` or `"0"` once passed or failed (the log's `result`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub result: Option<&'static str>,
    /// Per-MAC statuses once passed or failed (the log's `macinfo`).
    pub macinfo: Vec<MacInfo>,
    /// Why it failed (or what else is worth knowing), in words ([`details`]).
    pub details: Vec<String>,
    /// The hardware findings of SPEC §10.1, as `GET /scans/{id}` shows them
    /// (`{"kind", "interface"?, "message"}`); left out when none.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub findings: Vec<HardwareFinding>,
    /// Where it is (SPEC §11.1: `{"place", "switch", "port", "planned"}`),
    /// from the edge's cabling plan; left out when unknown.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub location: Option<Location>,
}

impl LiveDevice {
    fn waiting(sn: SerialNumber, expected: bool) -> Self {
        LiveDevice {
            sn,
            state: DeviceState::Waiting,
            expected,
            hostname: None,
            result: None,
            macinfo: Vec::new(),
            details: Vec::new(),
            findings: Vec::new(),
            location: None,
        }
    }

    /// A device with its final result.
    pub fn from_result(d: &DeviceResult, expected: bool, hostname: Option<String>) -> Self {
        LiveDevice {
            sn: d.sn.clone(),
            state: if d.is_undecided() {
                DeviceState::Undecided
            } else if d.result.passed() {
                DeviceState::Passed
            } else {
                DeviceState::Failed
            },
            expected,
            hostname,
            result: Some(d.result.as_str()),
            macinfo: d.macinfo.clone(),
            details: details(d),
            findings: d.findings.clone(),
            location: d.location.clone(),
        }
    }
}

/// What became of one payload sent to the factory.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LiveDelivery {
    /// `log`, `pair`, `directBurn` or `notify`.
    pub kind: &'static str,
    /// Whether the factory accepted it.
    pub ok: bool,
    /// Why not.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// 1 for the first delivery of this kind seen by this board, 2 for the
    /// next (a resend after a restart or a failure), …
    pub attempt: u32,
}

/// One operation as a watcher sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LiveOperation {
    /// The operation id.
    pub operation_id: OperationId,
    /// Its state.
    pub state: OperationState,
    /// When collection started.
    pub started: Timestamp,
    /// When collection ends at the latest.
    pub deadline: Timestamp,
    /// When it finished.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub finished: Option<Timestamp>,
    /// Replies accepted so far.
    pub replies: usize,
    /// How many serials are expected.
    pub expected: usize,
    /// What went wrong, as the notification says it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Every device: expected ones in the order given, then the others in
    /// order of arrival (final results order unexpected ones by serial).
    pub devices: Vec<LiveDevice>,
    /// Deliveries so far, in order.
    pub deliveries: Vec<LiveDelivery>,
    /// When collection ended, once the operation finished on this board.
    #[serde(skip)]
    pub collected: Option<Timestamp>,
    /// Every reply counter, once the operation finished on this board
    /// (`replies` above is the accepted ones, kept live).
    #[serde(skip)]
    pub counters: Option<crate::operation::Counters>,
}

/// What changed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "type", rename_all = "camelCase")]
pub enum Change {
    /// A device changed state (the device as it is now).
    Device {
        /// The device.
        device: LiveDevice,
    },
    /// The operation changed state (or was first seen).
    Operation {
        /// Its state.
        state: OperationState,
        /// When collection started.
        started: Timestamp,
        /// Its deadline.
        deadline: Timestamp,
        /// Replies accepted so far.
        replies: usize,
        /// Serials expected.
        expected: usize,
        /// When it finished.
        #[serde(skip_serializing_if = "Option::is_none")]
        finished: Option<Timestamp>,
        /// Its error, if any.
        #[serde(skip_serializing_if = "Option::is_none")]
        error: Option<String>,
    },
    /// A payload was delivered, or its delivery failed.
    Delivery {
        /// The outcome.
        delivery: LiveDelivery,
    },
}

impl Change {
    /// `device`, `operation` or `delivery` (the SSE event name).
    pub fn kind(&self) -> &'static str {
        match self {
            Change::Device { .. } => "device",
            Change::Operation { .. } => "operation",
            Change::Delivery { .. } => "delivery",
        }
    }
}

/// One change, numbered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Event {
    /// Greater than every earlier event's id.
    pub id: u64,
    /// The operation it belongs to.
    pub operation_id: OperationId,
    /// What changed.
    #[serde(flatten)]
    pub change: Change,
}

/// The answer of [`Board::since`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Since {
    /// Every event after the id asked for (possibly none), oldest first.
    Events(Vec<Event>),
    /// Events after that id are no longer (or were never) on this board:
    /// read a fresh snapshot.
    Gap,
}

struct Tracked {
    view: LiveOperation,
    index: HashMap<SerialNumber, usize>,
}

impl Tracked {
    fn device_mut(&mut self, sn: &SerialNumber) -> &mut LiveDevice {
        let n = match self.index.get(sn) {
            Some(&n) => n,
            None => {
                let n = self.view.devices.len();
                self.view
                    .devices
                    .push(LiveDevice::waiting(sn.clone(), false));
                self.index.insert(sn.clone(), n);
                n
            }
        };
        &mut self.view.devices[n]
    }

    fn operation_change(&self) -> Change {
        let v = &self.view;
        Change::Operation {
            state: v.state,
            started: v.started,
            deadline: v.deadline,
            replies: v.replies,
            expected: v.expected,
            finished: v.finished,
            error: v.error.clone(),
        }
    }
}

/// Live state of operations and the recent events; see the
/// [module docs](self).
pub struct Board {
    ops: HashMap<OperationId, Tracked>,
    finished_order: VecDeque<OperationId>,
    keep_finished: usize,
    events: VecDeque<Event>,
    capacity: usize,
    next_id: u64,
}

impl fmt::Debug for Board {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Board")
            .field("operations", &self.ops.len())
            .field("events", &self.events.len())
            .field("next_id", &self.next_id)
            .finish()
    }
}

/// Events a board keeps for replay by default: enough for several
/// 10,000-device operations (two events per device plus a few).
pub const DEFAULT_CAPACITY: usize = 65_536;
/// Finished operations a board keeps by default.
pub const DEFAULT_KEEP_FINISHED: usize = 32;

impl Board {
    /// An empty board whose first event will have id `first_id + 1`
    /// (at least 1), keeping the last `capacity` events (at least 1) and
    /// `keep_finished` finished operations.
    pub fn new(first_id: u64, capacity: usize, keep_finished: usize) -> Self {
        Board {
            ops: HashMap::new(),
            finished_order: VecDeque::new(),
            keep_finished,
            events: VecDeque::new(),
            capacity: capacity.max(1),
            next_id: first_id.saturating_add(1),
        }
    }

    /// The id of the last event issued (the first id minus one before any).
    pub fn last_id(&self) -> u64 {
        self.next_id - 1
    }

    /// How many events are kept for replay now (at most the capacity).
    pub fn buffered_events(&self) -> usize {
        self.events.len()
    }

    /// How many operations are on the board now (running, and finished
    /// ones kept).
    pub fn tracked_operations(&self) -> usize {
        self.ops.len()
    }

    /// An operation's live state, if it is on the board.
    pub fn operation(&self, id: &OperationId) -> Option<&LiveOperation> {
        self.ops.get(id).map(|t| &t.view)
    }

    /// Every operation on the board, newest start first.
    pub fn operations(&self) -> Vec<&LiveOperation> {
        let mut all: Vec<&LiveOperation> = self.ops.values().map(|t| &t.view).collect();
        all.sort_by_key(|o| std::cmp::Reverse(o.started));
        all
    }

    /// The events after `after` — of one operation, or of all — or
    /// [`Since::Gap`] if some of them are no longer kept.
    pub fn since(&self, after: u64, operation: Option<&OperationId>) -> Since {
        if after > self.last_id() {
            return Since::Gap;
        }
        let oldest = self.events.front().map_or(self.next_id, |e| e.id);
        if after.saturating_add(1) < oldest {
            return Since::Gap;
        }
        let start = self.events.partition_point(|e| e.id <= after);
        Since::Events(
            self.events
                .range(start..)
                .filter(|e| operation.is_none_or(|id| &e.operation_id == id))
                .cloned()
                .collect(),
        )
    }

    fn emit(&mut self, operation_id: OperationId, change: Change) {
        let id = self.next_id;
        self.next_id += 1;
        if self.events.len() == self.capacity {
            self.events.pop_front();
        }
        self.events.push_back(Event {
            id,
            operation_id,
            change,
        });
    }

    fn emit_device(&mut self, id: &OperationId, sn: &SerialNumber) {
        let change = self.ops.get(id).and_then(|t| {
            t.index.get(sn).map(|&n| Change::Device {
                device: t.view.devices[n].clone(),
            })
        });
        if let Some(change) = change {
            self.emit(id.clone(), change);
        }
    }

    fn emit_operation(&mut self, id: &OperationId) {
        if let Some(change) = self.ops.get(id).map(Tracked::operation_change) {
            self.emit(id.clone(), change);
        }
    }

    /// Puts an operation on the board (if it is not yet): every expected
    /// serial waiting, every recorded reply replied, results if fixed.
    pub fn track(&mut self, op: &Operation) {
        if self.ops.contains_key(op.id()) {
            return;
        }
        let mut tracked = Tracked {
            view: LiveOperation {
                operation_id: op.id().clone(),
                state: op.state(),
                started: op.started(),
                deadline: op.deadline(),
                finished: None,
                replies: op.counters().accepted,
                expected: op.expected_count(),
                error: op.error(),
                devices: Vec::with_capacity(op.params().expected.len()),
                deliveries: Vec::new(),
                collected: None,
                counters: None,
            },
            index: HashMap::with_capacity(op.params().expected.len()),
        };
        for sn in &op.params().expected {
            if !tracked.index.contains_key(sn) {
                tracked.index.insert(sn.clone(), tracked.view.devices.len());
                let mut d = LiveDevice::waiting(sn.clone(), true);
                d.location = op.location(sn);
                tracked.view.devices.push(d);
            }
        }
        for report in op.replies() {
            let d = tracked.device_mut(&report.sn);
            d.state = DeviceState::Replied;
            d.hostname = Some(report.hostname.clone());
            d.location = op.location(&report.sn);
        }
        let id = op.id().clone();
        self.ops.insert(id.clone(), tracked);
        self.emit_operation(&id);
        if !op.results().is_empty() {
            self.results(op);
        }
    }

    /// A reply was handled: an accepted one makes its device `replied`.
    pub fn reply(&mut self, op: &Operation, sn: &SerialNumber) {
        self.track(op);
        let Some(t) = self.ops.get_mut(op.id()) else {
            return;
        };
        t.view.replies = op.counters().accepted;
        let hostname = op.reply(sn).map(|r| r.hostname.clone());
        let location = op.location(sn);
        let d = t.device_mut(sn);
        if d.state != DeviceState::Waiting {
            return;
        }
        d.state = DeviceState::Replied;
        d.hostname = hostname;
        d.location = location;
        self.emit_device(op.id(), sn);
    }

    /// `sn`'s MES lookup is failing and being retried (a MES outage): its
    /// details say so, and why, until the answer comes.
    pub fn mes_waiting(&mut self, op: &Operation, sn: &SerialNumber) {
        self.track(op);
        let Some(why) = op.mes_waiting(sn) else {
            return;
        };
        let Some(t) = self.ops.get_mut(op.id()) else {
            return;
        };
        let text = format!("waiting for MES: {why}");
        let d = t.device_mut(sn);
        if d.state != DeviceState::Replied || d.details.first() == Some(&text) {
            return;
        }
        d.details = vec![text];
        self.emit_device(op.id(), sn);
    }

    /// `sn`'s verdict may be known (its MES answer is in, or a conflicting
    /// reply came after it): its device shows it ([`Operation::verdict`]).
    pub fn verdict(&mut self, op: &Operation, sn: &SerialNumber) {
        self.track(op);
        let Some(r) = op.verdict(sn) else {
            return;
        };
        let hostname = op.reply(sn).map(|rep| rep.hostname.clone());
        let Some(t) = self.ops.get_mut(op.id()) else {
            return;
        };
        let d = t.device_mut(sn);
        let next = LiveDevice::from_result(&r, d.expected, hostname.or_else(|| d.hostname.clone()));
        if *d == next {
            return;
        }
        *d = next;
        self.emit_device(op.id(), sn);
    }

    /// The operation's state may have changed (e.g. collection ended).
    pub fn state(&mut self, op: &Operation) {
        self.track(op);
        let Some(t) = self.ops.get_mut(op.id()) else {
            return;
        };
        let error = op.error();
        if t.view.state == op.state() && t.view.error == error {
            return;
        }
        t.view.state = op.state();
        t.view.error = error;
        t.view.replies = op.counters().accepted;
        self.emit_operation(op.id());
    }

    /// The results are fixed: every device passed or failed.
    pub fn results(&mut self, op: &Operation) {
        self.track(op);
        let id = op.id().clone();
        let mut changed = Vec::new();
        if let Some(t) = self.ops.get_mut(&id) {
            for r in op.results() {
                let hostname = op.reply(&r.sn).map(|rep| rep.hostname.clone());
                let d = t.device_mut(&r.sn);
                let next =
                    LiveDevice::from_result(r, d.expected, hostname.or_else(|| d.hostname.clone()));
                if *d != next {
                    *d = next;
                    changed.push(r.sn.clone());
                }
            }
        }
        // Devices now follow the results' order (expected ones as given,
        // then the others sorted), as the log and the store have them.
        if let Some(t) = self.ops.get_mut(&id) {
            let rank: HashMap<&SerialNumber, usize> = op
                .results()
                .iter()
                .enumerate()
                .map(|(n, r)| (&r.sn, n))
                .collect();
            t.view
                .devices
                .sort_by_key(|d| rank.get(&d.sn).copied().unwrap_or(usize::MAX));
            t.index = t
                .view
                .devices
                .iter()
                .enumerate()
                .map(|(n, d)| (d.sn.clone(), n))
                .collect();
        }
        for sn in &changed {
            self.emit_device(&id, sn);
        }
        self.state(op);
    }

    /// A payload was delivered (`Ok`) or not (`Err` with the reason).
    pub fn delivery(&mut self, op: &Operation, kind: PayloadKind, outcome: Result<(), String>) {
        self.track(op);
        let Some(t) = self.ops.get_mut(op.id()) else {
            return;
        };
        let attempt = 1 + t
            .view
            .deliveries
            .iter()
            .filter(|d| d.kind == kind.as_str())
            .count() as u32;
        let delivery = LiveDelivery {
            kind: kind.as_str(),
            ok: outcome.is_ok(),
            error: outcome.err(),
            attempt,
        };
        t.view.deliveries.push(delivery.clone());
        self.emit(op.id().clone(), Change::Delivery { delivery });
        self.state(op);
    }

    /// The operation finished (also for one that never ran, e.g. refused
    /// at start: it is put on the board from the report).
    pub fn finished(&mut self, report: &OperationReport) {
        let id = report.operation_id.clone();
        if !self.ops.contains_key(&id) {
            let mut tracked = Tracked {
                view: LiveOperation {
                    operation_id: id.clone(),
                    state: report.state,
                    started: report.started,
                    deadline: report.collected,
                    finished: None,
                    replies: report.counters.accepted,
                    expected: report.expected,
                    error: None,
                    devices: Vec::new(),
                    deliveries: Vec::new(),
                    collected: None,
                    counters: None,
                },
                index: HashMap::new(),
            };
            for r in &report.devices {
                tracked
                    .index
                    .insert(r.sn.clone(), tracked.view.devices.len());
                tracked
                    .view
                    .devices
                    .push(LiveDevice::from_result(r, true, None));
            }
            self.ops.insert(id.clone(), tracked);
        }
        if let Some(t) = self.ops.get_mut(&id) {
            t.view.state = report.state;
            t.view.finished = Some(report.finished);
            t.view.error = report.error.clone();
            t.view.replies = report.counters.accepted;
            t.view.collected = Some(report.collected);
            t.view.counters = Some(report.counters);
        }
        self.emit_operation(&id);
        self.finished_order.retain(|o| o != &id);
        self.finished_order.push_back(id);
        while self.finished_order.len() > self.keep_finished {
            if let Some(old) = self.finished_order.pop_front() {
                self.ops.remove(&old);
            }
        }
    }

    /// Forgets an operation (e.g. pruned from the store).
    pub fn forget(&mut self, id: &OperationId) {
        self.ops.remove(id);
        self.finished_order.retain(|o| o != id);
    }
}

/// One reason a device has the result it has; see [`reasons`]. Which
/// reasons apply and how they are worded (`Display`) live here once, so
/// every front end says the same.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reason {
    /// Expected but silent until the window closed.
    NoReply,
    /// MES answered 404 for the serial.
    UnknownToMes,
    /// The MES lookup failed after retries.
    MesFailed(String),
    /// A finding this version has no words for (its `Debug` form).
    Other(String),
    /// An interface whose MAC did not match, and why.
    Mismatch {
        /// The interface name.
        interface: String,
        /// The address compared.
        mac: Mac,
        /// Why it did not match.
        why: MismatchWhy,
    },
    /// A MAC MES recorded that no card has.
    MissingCard(Mac),
    /// The device reported no card and MES lists none.
    NoCards,
    /// A hardware finding of SPEC §10.1 (its message).
    Hardware(String),
}

/// Why an interface's MAC did not match; see [`Reason::Mismatch`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MismatchWhy {
    /// No carrier while the operation requires link.
    NoLink,
    /// Zero, broadcast or multicast: never a card's address.
    InvalidAddress,
    /// The same MAC already matched on this interface of the device.
    Duplicates(String),
    /// MES does not list it.
    NotInMes,
}

/// Why a device has the result it has: the device's finding (no reply,
/// unknown to MES, MES failed), then each interface whose MAC did not
/// match and why, then each MES MAC no card has, then the hardware findings
/// of SPEC §10.1 and §11.1 (also on passing devices; a requireLink failure
/// is said once, as its interface's mismatch; a requireCabling or
/// requirePcieWidth failure once, as its finding, which ends with
/// `; requireCabling fails it`). Empty for a device that passed with
/// nothing to remark.
pub fn reasons(d: &DeviceResult) -> Vec<Reason> {
    let mut out = Vec::new();
    // An undecided device's finding says why MES could not be asked; its
    // `macinfo` compared nothing, so no mismatch is named.
    let undecided = d.is_undecided();
    match &d.finding {
        Finding::Compared => {}
        Finding::NoReply => out.push(Reason::NoReply),
        Finding::UnknownToMes => out.push(Reason::UnknownToMes),
        Finding::MesFailed(_) if undecided => {}
        Finding::MesFailed(why) => out.push(Reason::MesFailed(why.clone())),
        #[allow(unreachable_patterns)]
        other => out.push(Reason::Other(format!("{other:?}"))),
    }
    let compared = matches!(d.finding, Finding::Compared) && !undecided;
    if compared {
        for m in d.mismatched_interfaces() {
            // A rule that failed this interface says so in its finding
            // (requireCabling, requirePcieWidth), once.
            if d.findings
                .iter()
                .any(|f| f.fails_interface() && f.interface.as_deref() == Some(&m.interface))
            {
                continue;
            }
            let why = if d.findings.iter().any(|f| {
                f.kind == FindingKind::NoLink && f.interface.as_deref() == Some(&m.interface)
            }) {
                MismatchWhy::NoLink
            } else if !m.macaddr.is_valid_card_address() {
                MismatchWhy::InvalidAddress
            } else if let Some(first) = d
                .macinfo
                .iter()
                .find(|o| o.macaddr == m.macaddr && o.scanstatus == ScanStatus::Match)
            {
                MismatchWhy::Duplicates(first.interface.clone())
            } else {
                MismatchWhy::NotInMes
            };
            out.push(Reason::Mismatch {
                interface: m.interface.clone(),
                mac: m.macaddr,
                why,
            });
        }
        out.extend(d.missing_cards().map(Reason::MissingCard));
        if d.macinfo.is_empty() {
            out.push(Reason::NoCards);
        }
    }
    out.extend(
        d.findings
            .iter()
            .filter(|f| f.kind != FindingKind::NoLink || !compared)
            .map(|f| Reason::Hardware(f.message.clone())),
    );
    out
}

/// Each reason in words: the one wording `scan`'s table, `scan --json`,
/// the API, the events and the page all show.
impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reason::NoReply => f.write_str("no reply before the window closed"),
            Reason::UnknownToMes => f.write_str("serial number unknown to MES"),
            Reason::MesFailed(why) => write!(f, "MES lookup failed: {why}"),
            Reason::Other(s) | Reason::Hardware(s) => f.write_str(s),
            Reason::Mismatch {
                interface,
                mac,
                why,
            } => {
                write!(f, "{interface} {mac} ")?;
                match why {
                    MismatchWhy::NoLink => f.write_str("has no link (requireLink)"),
                    MismatchWhy::InvalidAddress => f.write_str("is not a valid card address"),
                    MismatchWhy::Duplicates(first) => write!(f, "duplicates {first}"),
                    MismatchWhy::NotInMes => f.write_str("is not in MES"),
                }
            }
            Reason::MissingCard(mac) => write!(f, "card {mac} recorded in MES is missing"),
            Reason::NoCards => f.write_str("no network cards reported and none in MES"),
        }
    }
}

/// [`reasons`] in words (see [`Reason`]'s `Display`).
pub fn details(d: &DeviceResult) -> Vec<String> {
    reasons(d).iter().map(ToString::to_string).collect()
}

#[cfg(test)]
mod tests;
