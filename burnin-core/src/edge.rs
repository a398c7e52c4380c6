//! The edge use case: run scan operations end to end.
//!
//! [`start`] records a new operation in the [`OperationStore`] (refusing an
//! id that is still running); [`run`] then drives it over the ports: it
//! publishes the command (and takes replies while the broker has yet to
//! confirm it: a command fanned out to many agents' queues is confirmed
//! once it reached them all, and the first agents answer long before),
//! records each reply **before** acknowledging it
//! (rejected replies go to the rejected queue with their reason), starts
//! each MES lookup as soon as its reply is accepted (the MES source bounds
//! concurrency), stops collecting when every expected serial has replied or
//! the window closes, waits for outstanding lookups and records, stores the
//! results, then delivers the log, Pair or directBurn, and the notification
//! in SPEC §5 order, recording each delivery. [`run_operation`] is both in
//! one call.
//!
//! ## Replies are recorded concurrently (group commit)
//!
//! An accepted reply becomes a *record-then-ack* future — `store.reply(..)`,
//! and only once that returned `Ok`, `delivery.ack()` — which the loop
//! keeps in a set and polls alongside the next reply, the MES lookups and
//! the deadline. So the use case does not wait for one reply's commit
//! before taking the next delivery: every reply that arrives while a commit
//! is running is handed to the store at once, and a store that batches
//! concurrent calls (burnin-store's writer commits everything queued in one
//! transaction) turns them into one fsync. Each reply is still acked only
//! after *its* call returned, so nothing acked can be lost; a reply whose
//! call failed is not acked (the broker keeps it) and the operation records
//! the error.
//!
//! This was chosen over a batch method on the [`OperationStore`] port: the
//! port stays one call per fact, every store (the in-memory one, SQLite,
//! PostgreSQL) works unchanged, batching is the store's own business (it
//! sees the calls of *every* operation sharing it, which a per-operation
//! batch would not), and the core stays sans-IO — it only composes the
//! futures the ports give it, with no timer, thread or runtime. At most
//! [`MAX_PENDING_RECORDS`] records are in flight per operation; while that
//! many wait, no further reply is taken (the broker's prefetch usually
//! bounds it first).
//!
//! An operation restored from the store ([`Operation::restore`]) goes
//! through the same [`run`]: if it was collecting, the command is published
//! again for the rest of the window (agents answer each operation once) and
//! its recorded replies are looked up again; if it was reporting, only the
//! payloads not yet delivered are sent, byte-identical, with the same
//! `Idempotency-Key`.
//!
//! It never fails as a Rust error: whatever goes wrong (the broker, MES, a
//! factory API, the store) ends up in the [`OperationReport`]'s `error` and
//! in the notification, and the operation ends [`OperationState::Failed`].
//!
//! Several operations at once share one reply queue through a
//! [`ReplyRouter`], which hands each reply to its operation.
//!
//! Everything worth showing a user goes through an [`Observer`]; the core
//! itself does not log.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};

use async_trait::async_trait;
use futures::channel::mpsc;
use futures::stream::FuturesUnordered;
use futures::{FutureExt, StreamExt};

use crate::operation::{Counters, RejectReason};
use crate::{
    Clock, CommandPublisher, Delivery, DeviceReport, DeviceResult, FactoryReporter, MesAnswer,
    MesError, MesSource, Operation, OperationId, OperationParams, OperationState, OperationStore,
    PayloadKind, ReplyOutcome, ReplyStream, ReportError, SerialNumber, StoreError, Timestamp,
    TransportError,
};

/// Sees what an operation does, for progress bars, logs and metrics.
/// Every method has an empty default.
pub trait Observer: Send + Sync {
    /// [`run`] took the operation over (new or restored), before publishing.
    fn running(&self, _operation: &Operation) {}
    /// The command was published (or not).
    fn published(&self, _operation: &Operation, _result: &Result<(), TransportError>) {}
    /// A reply was handled; `operation` shows the new counters.
    fn reply(&self, _operation: &Operation, _outcome: &ReplyOutcome) {}
    /// A broker fault the transport is recovering from, or an ack that failed.
    fn transport_error(&self, _error: &TransportError) {}
    /// The store could not record something.
    fn store_error(&self, _operation: &OperationId, _error: &StoreError) {}
    /// `sn`'s MES lookup failed with `error` (other than 404) and will be
    /// tried again at `retry_at`: MES is having an outage and the device
    /// waits for it (see [`OperationParams::mes_outage_wait`]).
    fn mes_waiting(
        &self,
        _operation: &Operation,
        _sn: &SerialNumber,
        _error: &MesError,
        _retry_at: Timestamp,
    ) {
    }
    /// A MES answer arrived.
    fn mes_answer(
        &self,
        _operation: &Operation,
        _sn: &SerialNumber,
        _answer: &Result<MesAnswer, MesError>,
    ) {
    }
    /// `sn`'s MES answer was taken: [`Operation::verdict`] now gives its
    /// result (results follow MES, SPEC §10.1), before collection ends.
    fn verdict(&self, _operation: &Operation, _sn: &SerialNumber) {}
    /// Collection ended (all expected replied, deadline, or an error).
    fn collection_ended(&self, _operation: &Operation) {}
    /// The results are fixed (collection ended, every MES answer in), before
    /// any payload is sent: `operation.results()` has every device.
    fn results(&self, _operation: &Operation) {}
    /// A payload was delivered (or not).
    fn delivered(&self, _kind: PayloadKind, _result: &Result<(), ReportError>) {}
    /// Delivering `operation`'s `kind` payload failed with `error`, which
    /// may pass, and it will be tried again at `retry_at`: the factory's
    /// endpoint is having an outage (see
    /// [`OperationParams::delivery_outage_wait`]).
    fn delivery_waiting(
        &self,
        _operation: &Operation,
        _kind: PayloadKind,
        _error: &ReportError,
        _retry_at: Timestamp,
    ) {
    }
    /// A payload of `operation` was delivered (or not); by default calls
    /// [`Observer::delivered`]. `operation` does not yet count it.
    fn delivery(
        &self,
        _operation: &Operation,
        kind: PayloadKind,
        result: &Result<(), ReportError>,
    ) {
        self.delivered(kind, result);
    }
    /// The operation finished.
    fn finished(&self, _report: &OperationReport) {}
}

/// An [`Observer`] that ignores everything.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoObserver;
impl Observer for NoObserver {}

/// The adapters one operation runs on.
pub struct EdgePorts<'a> {
    /// Sends the command.
    pub publisher: &'a dyn CommandPublisher,
    /// Receives replies.
    pub replies: &'a mut dyn ReplyStream,
    /// Looks serials up.
    pub mes: &'a dyn MesSource,
    /// Delivers payloads.
    pub reporter: &'a dyn FactoryReporter,
    /// Records the operation ([`NoStore`](crate::NoStore) to keep nothing).
    pub store: &'a dyn OperationStore,
    /// Tells and waits for the time.
    pub clock: &'a dyn Clock,
    /// Watches.
    pub observer: &'a dyn Observer,
}

/// How an operation ended.
#[derive(Debug, Clone)]
pub struct OperationReport {
    /// The operation.
    pub operation_id: OperationId,
    /// [`OperationState::Done`] or [`OperationState::Failed`].
    pub state: OperationState,
    /// Every device, in the order of the log.
    pub devices: Vec<DeviceResult>,
    /// What went wrong, as sent in the notification.
    pub error: Option<String>,
    /// Reply and MES counters.
    pub counters: Counters,
    /// Serials that were expected.
    pub expected: usize,
    /// When collection started.
    pub started: Timestamp,
    /// When collection ended.
    pub collected: Timestamp,
    /// When the last payload was delivered.
    pub finished: Timestamp,
}

impl OperationReport {
    /// Whether every device passed and nothing failed.
    pub fn all_passed(&self) -> bool {
        self.state == OperationState::Done
            && !self.devices.is_empty()
            && self.devices.iter().all(|d| d.result.passed())
    }
}

/// How many accepted replies of one operation may be waiting for the store
/// (and then their ack) at once before [`run`] stops taking replies.
pub const MAX_PENDING_RECORDS: usize = 1024;

type Lookup<'a> = Pin<Box<dyn Future<Output = Looked> + Send + 'a>>;

/// One MES attempt for a serial.
struct Looked {
    sn: SerialNumber,
    answer: Result<MesAnswer, MesError>,
    /// Attempts made so far (1 for the first).
    attempt: u32,
    /// When the first attempt failed (set once one did).
    failing_since: Option<Timestamp>,
}

/// The command being published (until the broker confirmed it).
type Publishing<'a> = Pin<Box<dyn Future<Output = Result<(), TransportError>> + Send + 'a>>;

/// A reply being recorded, then acked.
type Record<'a> = Pin<Box<dyn Future<Output = Recorded> + Send + 'a>>;

/// How recording (and then acking) one reply went.
struct Recorded {
    stored: Result<(), StoreError>,
    acked: Result<(), TransportError>,
}

enum Event {
    Published(Result<(), TransportError>),
    Reply(Option<Result<Delivery, TransportError>>),
    Mes(Looked),
    Recorded(Recorded),
    Deadline,
}

/// Records a new run of an operation starting now and numbers it;
/// [`StoreError::Running`] if its id is still running,
/// [`StoreError::Held`] if it already ran and no rescan was asked for.
pub async fn start(
    params: OperationParams,
    clock: &dyn Clock,
    store: &dyn OperationStore,
) -> Result<Operation, StoreError> {
    let mut op = Operation::new(params, clock.now());
    let run = store
        .begin(op.params(), op.started(), op.deadline())
        .await?;
    op.handle_run(run);
    Ok(op)
}

/// The first MES retry after a failed lookup; each next one waits twice as
/// long, up to [`MES_RETRY_MAX`].
pub const MES_RETRY_FIRST: std::time::Duration = std::time::Duration::from_secs(1);
/// The longest wait between two MES retries of one device.
pub const MES_RETRY_MAX: std::time::Duration = std::time::Duration::from_secs(30);

/// The pause before retry `n` (0 for the first) of an outage, MES's or the
/// factory's: [`MES_RETRY_FIRST`] doubling up to [`MES_RETRY_MAX`].
fn outage_backoff(n: u32) -> std::time::Duration {
    MES_RETRY_FIRST
        .saturating_mul(1 << n.min(16))
        .min(MES_RETRY_MAX)
}

/// Starts and runs a new operation; a store refusal ends it failed at once.
pub async fn run_operation(params: OperationParams, ports: EdgePorts<'_>) -> OperationReport {
    match start(params.clone(), ports.clock, ports.store).await {
        Ok(op) => run(op, ports).await,
        Err(e) => {
            let mut op = Operation::new(params, ports.clock.now());
            op.handle_abort(format!("the operation could not be recorded: {e}"));
            let collected = ports.clock.now();
            finish(
                op,
                collected,
                ports.reporter,
                &crate::NoStore,
                ports.clock,
                ports.observer,
            )
            .await
        }
    }
}

/// Reports an operation that could not start — e.g. the broker is
/// unreachable — with `error`: only the notification is sent (SPEC §7: "the
/// notification carries the error if it can be sent").
pub async fn report_abort(
    params: OperationParams,
    error: String,
    reporter: &dyn FactoryReporter,
    clock: &dyn Clock,
    observer: &dyn Observer,
) -> OperationReport {
    let now = clock.now();
    let mut op = Operation::new(params, now);
    op.handle_abort(error);
    finish(op, now, reporter, &crate::NoStore, clock, observer).await
}

/// Drives an operation — new from [`start`], or restored — to its end; see
/// the [module docs](self).
pub async fn run(mut op: Operation, ports: EdgePorts<'_>) -> OperationReport {
    let EdgePorts {
        publisher,
        replies,
        mes,
        reporter,
        store,
        clock,
        observer,
    } = ports;
    let id = op.id().clone();
    let outage_wait = op.params().mes_outage_wait;
    let attempt = move |sn: SerialNumber,
                        attempt: u32,
                        failing_since: Option<Timestamp>,
                        not_before: Option<Timestamp>|
          -> Lookup<'_> {
        Box::pin(async move {
            if let Some(at) = not_before {
                clock.sleep_until(at).await;
            }
            let answer = mes.lookup(&sn).await;
            Looked {
                sn,
                answer,
                attempt,
                failing_since,
            }
        })
    };
    let lookup = move |sn: SerialNumber| attempt(sn, 1, None, None);

    observer.running(&op);
    op.handle_timeout(clock.now());
    // Published while replies are taken (see the module docs).
    let mut publishing: Option<Publishing<'_>> = None;
    if op.state() == OperationState::Collecting {
        let now = clock.now();
        let window = op.deadline().saturating_since(now);
        let command = op.command(now);
        publishing = Some(Box::pin(async move {
            publisher.publish(&command, window).await
        }));
    }

    let mut lookups: FuturesUnordered<Lookup<'_>> =
        op.mes_outstanding().into_iter().map(lookup).collect();
    let mut records: FuturesUnordered<Record<'_>> = FuturesUnordered::new();
    // Re-armed whenever the operation's next wake-up changes (the settle
    // time after the last expected reply ends collection early).
    let mut wake_at = op.poll_timeout().unwrap_or(op.deadline());
    let mut timer = clock.sleep_until(wake_at).fuse();
    let mut ended_seen = false;
    loop {
        if let Some(at) = op.poll_timeout()
            && at != wake_at
        {
            wake_at = at;
            timer = clock.sleep_until(at).fuse();
        }
        let collecting = !op.poll_collection_end();
        if !collecting && !ended_seen {
            ended_seen = true;
            observer.collection_ended(&op);
            if replies.close() {
                // Replies routed to this operation but not yet handled are late.
                while let Some(Ok(delivery)) = replies.next_reply().await {
                    let handled = handle_delivery(&mut op, delivery, store, clock, observer).await;
                    records.extend(handled.record);
                    lookups.extend(handled.lookup.map(lookup));
                }
            }
        }
        if !collecting && lookups.is_empty() && records.is_empty() && publishing.is_none() {
            break;
        }
        let take_replies = collecting && records.len() < MAX_PENDING_RECORDS;
        let event = {
            let next_lookup = async {
                match lookups.next().await {
                    Some(looked) => Event::Mes(looked),
                    None => futures::future::pending().await,
                }
            }
            .fuse();
            let next_record = async {
                match records.next().await {
                    Some(recorded) => Event::Recorded(recorded),
                    None => futures::future::pending().await,
                }
            }
            .fuse();
            let next_reply = async {
                if take_replies {
                    Event::Reply(replies.next_reply().await)
                } else {
                    futures::future::pending().await
                }
            }
            .fuse();
            let next_published = async {
                match &mut publishing {
                    Some(p) => Event::Published(p.await),
                    None => futures::future::pending().await,
                }
            }
            .fuse();
            futures::pin_mut!(next_published, next_lookup, next_record, next_reply);
            futures::select_biased! {
                e = next_published => e,
                e = next_lookup => e,
                e = next_record => e,
                e = next_reply => e,
                () = &mut timer => Event::Deadline,
            }
        };
        match event {
            Event::Published(published) => {
                publishing = None;
                observer.published(&op, &published);
                if let Err(e) = published {
                    let error = format!("could not publish the scan command: {e}");
                    if op.counters().accepted == 0 {
                        op.handle_abort(error);
                    } else {
                        op.handle_error(error);
                    }
                }
            }
            Event::Mes(Looked {
                sn,
                answer: Err(e),
                attempt: n,
                failing_since,
            }) if !outage_wait.is_zero()
                && clock
                    .now()
                    .saturating_since(failing_since.unwrap_or(clock.now()))
                    < outage_wait =>
            {
                // An outage, not a verdict: try again later (SPEC §11.3).
                let now = clock.now();
                let since = failing_since.unwrap_or(now);
                let backoff = outage_backoff(n - 1);
                let give_up = since.saturating_add(outage_wait);
                let retry_at = now.saturating_add(backoff).min(give_up);
                op.handle_mes_waiting(&sn, e.reason());
                observer.mes_waiting(&op, &sn, &e, retry_at);
                lookups.push(attempt(sn, n + 1, Some(since), Some(retry_at)));
            }
            Event::Mes(Looked { sn, answer, .. }) => {
                observer.mes_answer(&op, &sn, &answer);
                op.handle_mes_answer(&sn, answer);
                observer.verdict(&op, &sn);
            }
            Event::Reply(None) => {
                op.handle_error("the broker closed the reply queue consumer; replies stopped");
            }
            Event::Reply(Some(Err(e))) if e.is_retryable() => observer.transport_error(&e),
            Event::Reply(Some(Err(e))) => {
                op.handle_error(format!("replies could not be received: {e}"));
            }
            Event::Reply(Some(Ok(delivery))) => {
                let handled = handle_delivery(&mut op, delivery, store, clock, observer).await;
                records.extend(handled.record);
                lookups.extend(handled.lookup.map(lookup));
            }
            Event::Recorded(Recorded { stored, acked }) => {
                if let Err(e) = stored {
                    // Not acked: the broker keeps its copy.
                    observer.store_error(&id, &e);
                    op.handle_error(format!("a reply could not be recorded: {e}"));
                }
                if let Err(e) = acked {
                    // The broker will deliver it again; it then counts as a duplicate.
                    observer.transport_error(&e);
                }
            }
            Event::Deadline => {
                // Spent: a new timer is armed at the top of the loop if
                // collection goes on.
                wake_at = Timestamp::from_unix_seconds(0);
                timer = futures::future::pending::<()>().boxed().fuse();
            }
        }
        op.handle_timeout(clock.now());
    }
    let collected = clock.now();
    let mut unrecorded = Vec::new();
    if op.poll_results() {
        observer.results(&op);
        if let Err(e) = store.results(&id, op.results(), op.errors()).await {
            observer.store_error(&id, &e);
            unrecorded.push(format!("the results could not be recorded: {e}"));
        }
    }
    finish_recording(op, collected, reporter, store, clock, observer, unrecorded).await
}

/// What [`handle_delivery`] leaves to the loop.
struct Handled<'a> {
    /// The serial to look up, if the reply was accepted.
    lookup: Option<SerialNumber>,
    /// Recording and then acking the accepted reply.
    record: Option<Record<'a>>,
}

/// Settles a rejected or duplicate reply at once; an accepted one comes
/// back as a record-then-ack future (see the [module docs](self)).
async fn handle_delivery<'a>(
    op: &mut Operation,
    delivery: Delivery,
    store: &'a dyn OperationStore,
    clock: &dyn Clock,
    observer: &dyn Observer,
) -> Handled<'a> {
    if delivery.redelivered {
        op.handle_redelivered();
    }
    let received = clock.now();
    let outcome = op.handle_reply_at(&delivery.body, received);
    observer.reply(op, &outcome);
    let settled = match outcome {
        ReplyOutcome::Rejected(reason) => delivery.reject(&reason.to_string()).await,
        // Safe even while the first copy is being recorded: that copy stays
        // unacked (and so kept by the broker) until it is durable.
        ReplyOutcome::Duplicate(_) => delivery.ack().await,
        // Recorded like an accepted reply, so a restored operation still
        // knows both boards; nothing more to look up.
        ReplyOutcome::Conflict(sn) => {
            let id = op.id().clone();
            let record: Record<'a> = Box::pin(async move {
                let stored = store.reply(&id, &sn, &delivery.body, received).await;
                let acked = match stored {
                    Ok(()) => delivery.ack().await,
                    Err(_) => Ok(()),
                };
                Recorded { stored, acked }
            });
            return Handled {
                lookup: None,
                record: Some(record),
            };
        }
        ReplyOutcome::Accepted(sn) => {
            let id = op.id().clone();
            let serial = sn.clone();
            let record: Record<'a> = Box::pin(async move {
                let stored = store.reply(&id, &serial, &delivery.body, received).await;
                let acked = match stored {
                    Ok(()) => delivery.ack().await,
                    Err(_) => Ok(()),
                };
                Recorded { stored, acked }
            });
            return Handled {
                lookup: Some(sn),
                record: Some(record),
            };
        }
    };
    if let Err(e) = settled {
        // The broker will deliver it again; it then counts as a duplicate.
        observer.transport_error(&e);
    }
    Handled {
        lookup: None,
        record: None,
    }
}

/// Delivers the payloads in order, recording each, and sums the operation up.
async fn finish(
    op: Operation,
    collected: Timestamp,
    reporter: &dyn FactoryReporter,
    store: &dyn OperationStore,
    clock: &dyn Clock,
    observer: &dyn Observer,
) -> OperationReport {
    finish_recording(op, collected, reporter, store, clock, observer, Vec::new()).await
}

/// [`finish`], with what could not be recorded so far. An operation whose
/// records are incomplete (a full disk) does not end `done`: it ends
/// [`OperationState::Failed`] with an error saying what was not recorded,
/// although every payload it sent was delivered — the store, which a
/// restart or a standby resumes from, does not know it.
async fn finish_recording(
    mut op: Operation,
    collected: Timestamp,
    reporter: &dyn FactoryReporter,
    store: &dyn OperationStore,
    clock: &dyn Clock,
    observer: &dyn Observer,
    mut unrecorded: Vec<String>,
) -> OperationReport {
    let id = op.id().clone();
    let mut outage = Outage::default();
    while let Some(payload) = op.poll_payload() {
        let result = outage
            .deliver(&op, &payload, reporter, clock, observer)
            .await;
        observer.delivery(&op, payload.kind, &result);
        if let Err(e) = store
            .delivery(&id, payload.kind, result.as_ref().map(|_| ()))
            .await
        {
            observer.store_error(&id, &e);
            let what = if result.is_ok() {
                "delivered"
            } else {
                "failed"
            };
            unrecorded.push(format!(
                "the {} payload was {what} but that could not be recorded: {e}",
                payload.kind
            ));
        }
        op.handle_delivery(payload.kind, result);
    }
    let (state, error) = if unrecorded.is_empty() {
        (op.state(), op.error())
    } else {
        let mut all: Vec<String> = op.error().into_iter().collect();
        all.extend(unrecorded);
        (OperationState::Failed, Some(all.join("; ")))
    };
    let finished = clock.now();
    if let Err(e) = store.finish(&id, state, error.as_deref(), finished).await {
        observer.store_error(&id, &e);
    }
    let report = OperationReport {
        operation_id: id,
        state,
        devices: op.results().to_vec(),
        error,
        counters: op.counters(),
        expected: op.expected_count(),
        started: op.started(),
        collected,
        finished,
    };
    observer.finished(&report);
    report
}

/// A factory outage an operation's deliveries wait out, for
/// [`OperationParams::delivery_outage_wait`] in all, counted from the
/// first failure of any of its payloads.
#[derive(Debug, Default)]
struct Outage {
    failing_since: Option<Timestamp>,
    retries: u32,
}

impl Outage {
    /// Delivers `payload`, and while delivery fails in a way that may pass
    /// (the endpoint unreachable, timeouts, 5xx, 429 after the reporter's
    /// own attempts), tries again after [`outage_backoff`], until the wait
    /// has run out. Every
    /// attempt sends the same bytes under the same `Idempotency-Key`, so an
    /// endpoint that did take an earlier attempt answers the replay as
    /// before. Returns the last outcome.
    async fn deliver(
        &mut self,
        op: &Operation,
        payload: &crate::Payload,
        reporter: &dyn FactoryReporter,
        clock: &dyn Clock,
        observer: &dyn Observer,
    ) -> Result<(), ReportError> {
        let wait = op.params().delivery_outage_wait;
        loop {
            let result = reporter.deliver(payload).await;
            let Err(e) = &result else {
                return result;
            };
            let now = clock.now();
            let give_up = self.failing_since.get_or_insert(now).saturating_add(wait);
            if !e.is_retryable() || now >= give_up {
                return result;
            }
            let backoff = outage_backoff(self.retries);
            self.retries += 1;
            let retry_at = now.saturating_add(backoff).min(give_up);
            observer.delivery_waiting(op, payload.kind, e, retry_at);
            clock.sleep_until(retry_at).await;
        }
    }
}

/// How many replies may wait for one operation before the router waits.
const ROUTE_BUFFER: usize = 256;

/// How many ended operations a [`ReplyRouter`] remembers, to tell a reply
/// that came after its operation's report from one naming no operation.
pub const REMEMBERED_ENDED: usize = 1024;

type Routes = Arc<Mutex<HashMap<OperationId, mpsc::Sender<Delivery>>>>;
type Ended = Arc<Mutex<std::collections::VecDeque<OperationId>>>;

/// What becomes of a reply that arrived after its operation stopped
/// collecting (a second board with the same serial answering late, or a
/// device that was slow): `serve` records it with the operation, logs a
/// warning and counts it. The handler settles the delivery (ack, or reject
/// if it could not be recorded).
#[async_trait]
pub trait LateReplies: Send + Sync {
    /// Handles `delivery`, a reply `report` for `operation`, which ended.
    async fn late(&self, operation: OperationId, report: DeviceReport, delivery: Delivery);
}

/// Shares one reply queue among several operations (`serve`): each reply
/// goes to the operation it names; replies that do not parse or name no
/// registered operation are rejected with their reason. A reply for an
/// operation that ended recently goes to the [`LateReplies`] handler if one
/// is set ([`ReplyRouter::on_late`]), else to the rejected queue as late.
#[derive(Clone, Default)]
pub struct ReplyRouter {
    routes: Routes,
    ended: Ended,
    late: Arc<Mutex<Option<Arc<dyn LateReplies>>>>,
}

impl std::fmt::Debug for ReplyRouter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReplyRouter")
            .field("operations", &self.len())
            .finish_non_exhaustive()
    }
}

/// One operation's replies from a [`ReplyRouter`]; unregisters on drop.
#[derive(Debug)]
pub struct RoutedReplies {
    id: OperationId,
    rx: mpsc::Receiver<Delivery>,
    routes: Routes,
    ended: Ended,
}

impl ReplyRouter {
    /// A router with no operation.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<OperationId, mpsc::Sender<Delivery>>> {
        self.routes.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Routes replies naming `id` to the returned stream (replacing any
    /// earlier registration of `id`).
    pub fn register(&self, id: OperationId) -> RoutedReplies {
        let (tx, rx) = mpsc::channel(ROUTE_BUFFER);
        self.lock().insert(id.clone(), tx);
        self.ended
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .retain(|e| *e != id);
        RoutedReplies {
            id,
            rx,
            routes: self.routes.clone(),
            ended: self.ended.clone(),
        }
    }

    /// Hands replies for operations that ended recently to `handler`.
    pub fn on_late(&self, handler: Arc<dyn LateReplies>) {
        *self.late.lock().unwrap_or_else(PoisonError::into_inner) = Some(handler);
    }

    /// The route of `id` (the lock is not held past this call).
    fn route(&self, id: &OperationId) -> Option<mpsc::Sender<Delivery>> {
        self.lock().get(id).cloned()
    }

    fn ended_recently(&self, id: &OperationId) -> bool {
        self.ended
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .contains(id)
    }

    /// How many operations are registered.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Whether no operation is registered.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Routes replies from `stream` until it ends. Registrations outlive
    /// the pump: after a reconnect, a new `pump` over the new stream goes on
    /// feeding the same operations (and one whose replies never resume
    /// simply collects until its deadline). `on_reject` and `on_error` see
    /// what is rejected and transport faults.
    pub async fn pump(
        &self,
        stream: &mut dyn ReplyStream,
        on_reject: &(dyn Fn(&RejectReason) + Send + Sync),
        on_error: &(dyn Fn(&TransportError) + Send + Sync),
    ) {
        while let Some(next) = stream.next_reply().await {
            let delivery = match next {
                Ok(d) => d,
                Err(e) => {
                    on_error(&e);
                    if e.is_retryable() {
                        continue;
                    }
                    break;
                }
            };
            let target = match DeviceReport::from_slice(&delivery.body) {
                Err(e) => Err(RejectReason::Malformed(e)),
                Ok(report) => match report.operation_id.clone() {
                    None => Err(RejectReason::UnknownOperation(None)),
                    Some(id) => match self.route(&id) {
                        Some(tx) => Ok((id, tx)),
                        None if self.ended_recently(&id) => {
                            let handler = self
                                .late
                                .lock()
                                .unwrap_or_else(PoisonError::into_inner)
                                .clone();
                            if let Some(handler) = handler {
                                handler.late(id, report, delivery).await;
                                continue;
                            }
                            Err(RejectReason::Late(id))
                        }
                        None => Err(RejectReason::UnknownOperation(Some(id))),
                    },
                },
            };
            let rejected = match target {
                // Wait for room (backpressure), then hand it over; if the
                // operation stopped collecting meanwhile, the reply is late.
                Ok((id, mut tx)) => match futures::future::poll_fn(|cx| tx.poll_ready(cx)).await {
                    Ok(()) => tx
                        .try_send(delivery)
                        .err()
                        .map(|e| (e.into_inner(), RejectReason::Late(id))),
                    Err(_) => Some((delivery, RejectReason::Late(id))),
                },
                Err(reason) => Some((delivery, reason)),
            };
            if let Some((delivery, reason)) = rejected {
                on_reject(&reason);
                if let Err(e) = delivery.reject(&reason.to_string()).await {
                    on_error(&e);
                }
            }
        }
    }
}

#[async_trait]
impl ReplyStream for RoutedReplies {
    async fn next_reply(&mut self) -> Option<Result<Delivery, TransportError>> {
        self.rx.next().await.map(Ok)
    }

    fn close(&mut self) -> bool {
        self.unregister();
        self.rx.close();
        true
    }
}

impl RoutedReplies {
    fn unregister(&self) {
        let mut routes = self.routes.lock().unwrap_or_else(PoisonError::into_inner);
        // Only remove our own registration, not a newer one for the same id.
        if routes
            .get(&self.id)
            .is_some_and(|tx| tx.is_connected_to(&self.rx))
        {
            routes.remove(&self.id);
            let mut ended = self.ended.lock().unwrap_or_else(PoisonError::into_inner);
            if !ended.contains(&self.id) {
                ended.push_back(self.id.clone());
                if ended.len() > REMEMBERED_ENDED {
                    ended.pop_front();
                }
            }
        }
    }
}

impl Drop for RoutedReplies {
    fn drop(&mut self) {
        self.unregister();
    }
}
