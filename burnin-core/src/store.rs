//! The operation store port: what the edge records so a crash loses nothing.
//!
//! SPEC §6: the edge records each operation, each accepted reply (raw JSON)
//! and what it must still POST. [`edge::run`](crate::edge::run) calls the
//! store at these points. It waits for each call to return before going
//! on, except [`OperationStore::reply`]: see *Concurrent replies* below.
//!
//! | when | call | what it guarantees |
//! | --- | --- | --- |
//! | before publishing the command | [`OperationStore::begin`] | the run exists and has its number (a running id is refused, and so is a finished one unless a rescan was asked for: 409) |
//! | a reply is accepted, **before** it is acked | [`OperationStore::reply`] | the broker's copy is dropped only once ours is durable |
//! | collection ended, MES answered | [`OperationStore::results`] | the results (and errors so far) are fixed; every payload is derived from them |
//! | each payload delivered or failed | [`OperationStore::delivery`] | a restart sends only what was not delivered, with the same `Idempotency-Key` |
//! | the end | [`OperationStore::finish`] | final state and error |
//!
//! ## Concurrent replies (group commit)
//!
//! [`edge::run`](crate::edge::run) does not wait for one
//! [`reply`](OperationStore::reply) call to return before it takes the next
//! delivery: every reply accepted while earlier ones are being recorded is
//! handed to the store at once, so one operation may have many `reply`
//! calls in flight (up to
//! [`MAX_PENDING_RECORDS`](crate::edge::MAX_PENDING_RECORDS)), and several
//! operations sharing a store add theirs. Each reply is acked to the broker
//! only after *its* call returned `Ok`. A store should therefore make
//! concurrent calls cheap — ideally commit all calls waiting at a moment
//! in one transaction (one fsync), answering each caller once that
//! transaction is durable, and failing only the calls of a transaction that
//! did not commit. The port itself is unchanged: one call per fact, no
//! batch method, so a store that simply commits each call on its own stays
//! correct (just slower). Replies of one operation may be recorded in any
//! order; [`StoredOperation::replies`] lists them in the order recorded.
//!
//! On start, a long-running edge loads every unfinished operation
//! ([`StoredOperation`]) and hands each to
//! [`Operation::restore`](crate::Operation::restore) and
//! [`edge::run`](crate::edge::run): collecting operations keep collecting
//! until their deadline (MES lookups are repeated for the replies already
//! recorded), past-deadline ones are reported, undelivered payloads are
//! sent again. Payloads are rebuilt from the stored results, so a resent
//! body is byte-identical to the first attempt.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use async_trait::async_trait;

use crate::{
    DeviceResult, OperationId, OperationParams, OperationState, PayloadKind, ReportError,
    SerialNumber, Target, Timestamp,
};

/// A store failure.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// An operation with this id is already running.
    #[error("operation {0} is already running")]
    Running(OperationId),
    /// This id already ran (SPEC §11.3: an operation id names one run) and
    /// no rescan was asked for.
    #[error(
        "operation {id} already ran (run {run}, started {started}, {state}); to scan it again \
         ask for a rescan (--rescan, or \"rescan\": true in POST /scans), or use a new id"
    )]
    Held {
        /// The id.
        id: OperationId,
        /// Its latest run.
        run: u64,
        /// When that run started.
        started: Timestamp,
        /// How that run ended.
        state: OperationState,
    },
    /// The store could not be read or written; the message names the file.
    #[error("{0}")]
    Io(String),
}

impl StoreError {
    /// Whether trying again later may succeed.
    pub fn is_retryable(&self) -> bool {
        matches!(self, StoreError::Io(_))
    }
}

/// Everything the store knows of an unfinished operation.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredOperation {
    /// What the operation was asked to do.
    pub params: OperationParams,
    /// When collection started.
    pub started: Timestamp,
    /// When collection ends.
    pub deadline: Timestamp,
    /// Accepted (and conflicting) replies, in the order recorded.
    pub replies: Vec<StoredReply>,
    /// The results and errors, once collection ended.
    pub results: Option<(Vec<DeviceResult>, Vec<String>)>,
    /// Delivery outcomes so far, in order (`Err` holds the error text).
    pub deliveries: Vec<(PayloadKind, Result<(), String>)>,
}

/// One recorded reply: its raw body and when the edge received it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredReply {
    /// The raw reply body.
    pub body: Vec<u8>,
    /// When the edge received it.
    pub received: Timestamp,
}

/// One run of an operation id, as listed beside its latest run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunSummary {
    /// Its number.
    pub run: u64,
    /// Its state as last recorded.
    pub state: OperationState,
    /// When it started.
    pub started: Timestamp,
    /// When it finished.
    pub finished: Option<Timestamp>,
}

/// What a store knows of one operation (its latest run), for an API to
/// show. Every store that keeps operations for reading (SQLite,
/// PostgreSQL) answers with this one shape, so the edge's API does not
/// care which store it runs on.
#[derive(Debug, Clone, PartialEq)]
pub struct OperationView {
    /// What it was asked to do.
    pub params: OperationParams,
    /// Its state as last recorded (`collecting` until the results are recorded).
    pub state: OperationState,
    /// When collection started.
    pub started: Timestamp,
    /// When collection ends (or ended) at the latest.
    pub deadline: Timestamp,
    /// When it finished.
    pub finished: Option<Timestamp>,
    /// The error the notification carried.
    pub error: Option<String>,
    /// Accepted replies recorded.
    pub replies: u64,
    /// Replies that arrived after the run stopped collecting (recorded,
    /// not reported).
    pub late_replies: u64,
    /// The device results, once collection ended.
    pub results: Option<Vec<DeviceResult>>,
    /// Delivery attempts, in order.
    pub deliveries: Vec<DeliveryRecord>,
    /// Every run of this id, oldest first (the last is this one).
    pub runs: Vec<RunSummary>,
}

/// One recorded delivery outcome of an [`OperationView`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveryRecord {
    /// Which payload.
    pub kind: PayloadKind,
    /// `None` if delivered, else why not.
    pub error: Option<String>,
    /// When the outcome was recorded.
    pub at: Timestamp,
}

// How the SQL stores (SQLite in burnin-store, PostgreSQL in
// burnin-store-pg) keep operations in columns, and how a row read back
// becomes an [`OperationView`] or a [`StoredOperation`]: one decoding for
// both stores, so the two cannot drift apart. Pure: no database here.

/// An operation's parameters as the SQL stores keep them: one JSON
/// document (`operationId`, `operatorId`, `scanMode`, `target`,
/// `expected`, `windowMs`, `replyTo`, and the optional `requireLink`,
/// `requireClock`, `requireCabling`, `requirePcieWidth`, `settleMs`,
/// `clockToleranceMs`, `mesOutageWaitMs`). The edge's cabling plan is not
/// in it (edge configuration, see [`crate::cabling`]).
///
/// The optional fields are written only when they differ from their
/// defaults and read as the default when absent, so rows written before
/// they existed still read. The run number is not in the document: each
/// store keeps it in a column of its own.
///
/// # Errors
/// If the parameters cannot be encoded (not expected: every field is
/// plain data).
pub fn params_to_json(p: &OperationParams) -> Result<String, String> {
    serde_json::to_string(&ParamsDoc::from_params(p)).map_err(|e| e.to_string())
}

/// The parameters [`params_to_json`] wrote.
///
/// # Errors
/// If `text` is not such a document (names the field or the bad target).
pub fn params_from_json(text: &str) -> Result<OperationParams, String> {
    serde_json::from_str::<ParamsDoc>(text)
        .map_err(|e| e.to_string())
        .and_then(ParamsDoc::into_params)
}

#[derive(serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct ParamsDoc {
    operation_id: OperationId,
    operator_id: Option<String>,
    scan_mode: Option<i64>,
    target: String,
    expected: Vec<SerialNumber>,
    window_ms: u64,
    reply_to: String,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    require_link: bool,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    require_clock: bool,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    require_cabling: bool,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    require_pcie_width: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    settle_ms: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    clock_tolerance_ms: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    mes_outage_wait_ms: Option<u64>,
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// `Some(d in ms)` unless `d` is the default.
fn unless_default(d: Duration, default: Duration) -> Option<u64> {
    (d != default).then(|| millis(d))
}

impl ParamsDoc {
    fn from_params(p: &OperationParams) -> Self {
        let defaults = OperationParams::new(p.operation_id.clone());
        ParamsDoc {
            operation_id: p.operation_id.clone(),
            operator_id: p.operator_id.clone(),
            scan_mode: p.scan_mode,
            target: p.target.as_str().into(),
            expected: p.expected.clone(),
            window_ms: u64::try_from(p.window.as_millis()).unwrap_or(u64::MAX),
            reply_to: p.reply_to.clone(),
            require_link: p.require_link,
            require_clock: p.require_clock,
            require_cabling: p.require_cabling,
            require_pcie_width: p.require_pcie_width,
            settle_ms: unless_default(p.settle, defaults.settle),
            clock_tolerance_ms: unless_default(p.clock_tolerance, defaults.clock_tolerance),
            mes_outage_wait_ms: unless_default(p.mes_outage_wait, defaults.mes_outage_wait),
        }
    }

    fn into_params(self) -> Result<OperationParams, String> {
        let mut p = OperationParams::new(self.operation_id);
        p.operator_id = self.operator_id;
        p.scan_mode = self.scan_mode;
        p.target = Target::from_name(&self.target)
            .ok_or_else(|| format!("unknown target {:?}", self.target))?;
        p.expected = self.expected;
        p.window = Duration::from_millis(self.window_ms);
        p.reply_to = self.reply_to;
        p.require_link = self.require_link;
        p.require_clock = self.require_clock;
        p.require_cabling = self.require_cabling;
        p.require_pcie_width = self.require_pcie_width;
        if let Some(ms) = self.settle_ms {
            p.settle = Duration::from_millis(ms);
        }
        if let Some(ms) = self.clock_tolerance_ms {
            p.clock_tolerance = Duration::from_millis(ms);
        }
        if let Some(ms) = self.mes_outage_wait_ms {
            p.mes_outage_wait = Duration::from_millis(ms);
        }
        Ok(p)
    }
}

/// The key an SQL store files an operation under: the id's JSON text, so
/// `42` and `"42"` stay apart.
pub fn operation_key(id: &OperationId) -> String {
    serde_json::to_string(id).unwrap_or_else(|_| format!("{id:?}"))
}

/// A time as the SQL stores keep it: milliseconds since the Unix epoch
/// (0 for times before it, `i64::MAX` far in the future).
pub fn to_millis(t: Timestamp) -> i64 {
    t.system_time()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// The time [`to_millis`] wrote as `ms` (a negative value reads as the
/// Unix epoch).
pub fn from_millis(ms: i64) -> Timestamp {
    let ms = u64::try_from(ms).unwrap_or(0);
    Timestamp::from_system_time(SystemTime::UNIX_EPOCH + Duration::from_millis(ms))
}

/// The columns of an operation row as the SQL stores write them, but for
/// its parameters (which each store decodes itself): the state by name
/// ([`OperationState::as_str`]), times by [`to_millis`], the results and
/// errors as JSON arrays once collection ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OperationColumns {
    /// The run number (`None` for a row written before runs were numbered:
    /// run 0).
    pub run: Option<i64>,
    /// The state's name.
    pub state: String,
    /// When collection started.
    pub started_ms: i64,
    /// When collection ends.
    pub deadline_ms: i64,
    /// When it finished, if it did.
    pub finished_ms: Option<i64>,
    /// The error the notification carried.
    pub error: Option<String>,
    /// The device results (JSON), once collection ended.
    pub results: Option<String>,
    /// The errors so far (JSON), once collection ended.
    pub errors: Option<String>,
}

impl OperationColumns {
    /// Decodes the row of the operation asked to do `params`.
    ///
    /// # Errors
    /// What is wrong with the row, naming the column: `unknown state
    /// "…"`, `results: …` or `errors: …` (the JSON error).
    pub fn decode(self, mut params: OperationParams) -> Result<OperationRecord, String> {
        params.run = self.run.and_then(|r| u64::try_from(r).ok()).unwrap_or(0);
        let state = OperationState::from_name(&self.state)
            .ok_or_else(|| format!("unknown state {:?}", self.state))?;
        let results = self
            .results
            .map(|r| serde_json::from_str::<Vec<DeviceResult>>(&r))
            .transpose()
            .map_err(|e| format!("results: {e}"))?;
        let errors = self
            .errors
            .map(|r| serde_json::from_str::<Vec<String>>(&r))
            .transpose()
            .map_err(|e| format!("errors: {e}"))?;
        Ok(OperationRecord {
            params,
            state,
            started: from_millis(self.started_ms),
            deadline: from_millis(self.deadline_ms),
            finished: self.finished_ms.map(from_millis),
            error: self.error,
            results,
            errors,
        })
    }
}

/// One run of an operation as an SQL store read it back
/// ([`OperationColumns::decode`]): what its [`OperationView`] and its
/// [`StoredOperation`] are made of.
#[derive(Debug, Clone, PartialEq)]
pub struct OperationRecord {
    /// What it was asked to do.
    pub params: OperationParams,
    /// Its state as last recorded.
    pub state: OperationState,
    /// When collection started.
    pub started: Timestamp,
    /// When collection ends (or ended) at the latest.
    pub deadline: Timestamp,
    /// When it finished.
    pub finished: Option<Timestamp>,
    /// The error the notification carried.
    pub error: Option<String>,
    /// The device results, once collection ended.
    pub results: Option<Vec<DeviceResult>>,
    /// The errors so far, once collection ended.
    pub errors: Option<Vec<String>>,
}

impl OperationRecord {
    /// What an API shows of this run: with `replies`, the number of
    /// accepted replies as SQL counts them (`COUNT(*)`; a negative count
    /// reads as 0), and its delivery attempts in order.
    pub fn into_view(
        self,
        (replies, late_replies): (i64, i64),
        deliveries: Vec<DeliveryRecord>,
        runs: Vec<RunSummary>,
    ) -> OperationView {
        OperationView {
            params: self.params,
            state: self.state,
            started: self.started,
            deadline: self.deadline,
            finished: self.finished,
            error: self.error,
            replies: u64::try_from(replies).unwrap_or(0),
            late_replies: u64::try_from(late_replies).unwrap_or(0),
            results: self.results,
            deliveries,
            runs,
        }
    }

    /// What [`Operation::restore`](crate::Operation::restore) takes: with
    /// the reply bodies in the order recorded and the delivery attempts in
    /// order. The results count only with the errors beside them.
    pub fn into_stored(
        self,
        replies: Vec<StoredReply>,
        deliveries: Vec<DeliveryRecord>,
    ) -> StoredOperation {
        let results = match (self.results, self.errors) {
            (Some(r), Some(e)) => Some((r, e)),
            _ => None,
        };
        StoredOperation {
            params: self.params,
            started: self.started,
            deadline: self.deadline,
            replies,
            results,
            deliveries: deliveries
                .into_iter()
                .map(|d| (d.kind, d.error.map_or(Ok(()), Err)))
                .collect(),
        }
    }
}

impl DeliveryRecord {
    /// Decodes a delivery row as the SQL stores write it: the payload
    /// kind by name ([`PayloadKind::as_str`]), the error (`None` if
    /// delivered), when by [`to_millis`].
    ///
    /// # Errors
    /// `unknown payload kind "…"`.
    pub fn from_columns(kind: &str, error: Option<String>, at_ms: i64) -> Result<Self, String> {
        let kind =
            PayloadKind::from_name(kind).ok_or_else(|| format!("unknown payload kind {kind:?}"))?;
        Ok(DeliveryRecord {
            kind,
            error,
            at: from_millis(at_ms),
        })
    }
}

/// Where the edge records operations; see the [module docs](self).
///
/// Implementations must make each call durable before returning, and may
/// be called concurrently (see *Concurrent replies* in the
/// [module docs](self)): batching the calls that wait at the same moment
/// into one commit is what makes a durable store fast.
#[async_trait]
pub trait OperationStore: Send + Sync {
    /// Records a new run of an operation and returns its run number: 1
    /// for an id the store does not hold, else one more than its latest
    /// run. [`StoreError::Running`] if a run of the id is not finished;
    /// [`StoreError::Held`] if one finished and `params.rescan` is not set.
    async fn begin(
        &self,
        params: &OperationParams,
        started: Timestamp,
        deadline: Timestamp,
    ) -> Result<u64, StoreError>;

    /// Records an accepted reply (its raw body), or a conflicting one
    /// (another board answering with the same serial): a store keeps every
    /// call, in order, and no uniqueness by serial.
    async fn reply(
        &self,
        operation: &OperationId,
        sn: &SerialNumber,
        body: &[u8],
        received: Timestamp,
    ) -> Result<(), StoreError>;

    /// Records a reply that arrived after its operation stopped collecting
    /// (a second board with the same serial answering late, or a slow
    /// device): kept with the latest run of `operation`, marked late, so
    /// nothing a device said is lost; it changes no result. The default
    /// keeps nothing (a store without history, such as [`NoStore`]).
    async fn late_reply(
        &self,
        operation: &OperationId,
        sn: &SerialNumber,
        body: &[u8],
        received: Timestamp,
    ) -> Result<(), StoreError> {
        let _ = (operation, sn, body, received);
        Ok(())
    }

    /// Records the results and the errors so far: collection is over.
    async fn results(
        &self,
        operation: &OperationId,
        results: &[DeviceResult],
        errors: &[String],
    ) -> Result<(), StoreError>;

    /// Records a delivery outcome.
    async fn delivery(
        &self,
        operation: &OperationId,
        kind: PayloadKind,
        outcome: Result<(), &ReportError>,
    ) -> Result<(), StoreError>;

    /// Records the final state.
    async fn finish(
        &self,
        operation: &OperationId,
        state: OperationState,
        error: Option<&str>,
        finished: Timestamp,
    ) -> Result<(), StoreError>;
}

/// The read side of an operation store, and what a long-running edge
/// needs of it beyond [`OperationStore`]: the API's reads, resuming at
/// start, `--keep` pruning, a barrier at shutdown, and — for a store that
/// several edges share — the [`Election`] of the active one.
///
/// Every read answers with [`OperationView`] (the latest run of an id);
/// errors are [`StoreError::Io`] naming the file or database. A store
/// whose calls block runs them off the async threads itself.
#[async_trait]
pub trait OperationReads: Send + Sync {
    /// The file or the database URL (password hidden), for logs.
    fn describe(&self) -> String;

    /// What kind of store it is, for `/metrics` (`sqlite`, `postgres`).
    fn kind(&self) -> &'static str;

    /// The store as a `/metrics` label: the same for every edge that
    /// shares it, and never a secret. By default [`describe`](Self::describe);
    /// a database server's store gives its `HOST:PORT/DATABASE`.
    fn label(&self) -> String {
        self.describe()
    }

    /// The latest run of operation `id`, if any.
    async fn get(&self, id: &OperationId) -> Result<Option<OperationView>, StoreError>;

    /// Finds an operation by an id written as text: the number id if the
    /// text is a number the store holds, else the string id.
    async fn find(&self, raw: &str) -> Result<Option<OperationView>, StoreError>;

    /// The `limit` most recently begun operations, newest first.
    async fn list(&self, limit: usize) -> Result<Vec<OperationView>, StoreError>;

    /// How many operations (latest run of each id) are in each state.
    async fn count_by_state(&self) -> Result<Vec<(OperationState, u64)>, StoreError>;

    /// Every unfinished operation, oldest first, with what it recorded.
    async fn unfinished(&self) -> Result<Vec<StoredOperation>, StoreError>;

    /// The ids of the unfinished operations. The default reads
    /// [`unfinished`](Self::unfinished); a store that can answer without
    /// reading replies should.
    async fn unfinished_ids(&self) -> Result<Vec<OperationId>, StoreError> {
        Ok(self
            .unfinished()
            .await?
            .into_iter()
            .map(|o| o.params.operation_id)
            .collect())
    }

    /// Deletes finished operations older than `finished_before`; how many.
    async fn prune(&self, finished_before: Timestamp) -> Result<usize, StoreError>;

    /// Waits until every write handed over before this call is committed
    /// (or has failed). The default returns at once (every write already
    /// waits for its commit).
    async fn barrier(&self) {}

    /// The election of the active edge, for a store several edges share;
    /// `None` (the default) for a store only one edge uses, which is then
    /// active from the start.
    fn election(&self) -> Option<&dyn Election> {
        None
    }
}

/// A whole operation store: writes ([`OperationStore`]) and reads
/// ([`OperationReads`]). Implemented for every type that has both.
pub trait StateStore: OperationStore + OperationReads {}

impl<T: OperationStore + OperationReads + ?Sized> StateStore for T {}

/// Choosing the one active edge among those sharing a store.
#[async_trait]
pub trait Election: Send + Sync {
    /// Starts campaigning as `identity` (how this edge names itself to
    /// clients of a standby). Returns once the first attempt was made.
    async fn campaign(&self, identity: &str) -> Result<Arc<dyn Candidacy>, StoreError>;

    /// How long a standby whose candidacy ended waits before campaigning
    /// again.
    fn retry_interval(&self) -> Duration;
}

/// One edge's candidacy in an [`Election`].
#[async_trait]
pub trait Candidacy: Send + Sync {
    /// Completes once this edge is active (at once if it is).
    async fn active(&self);

    /// Completes once this edge, having been active, lost the office (the
    /// session that held it ended).
    async fn lost(&self);

    /// Who is active, as it named itself, and since when (Unix ms); `None`
    /// if nobody has been.
    async fn active_identity(&self) -> Result<Option<(String, i64)>, StoreError>;
}

/// A shared store is still one store: calls go to the shared value.
#[async_trait]
impl<T: OperationStore + ?Sized> OperationStore for Arc<T> {
    async fn begin(
        &self,
        params: &OperationParams,
        started: Timestamp,
        deadline: Timestamp,
    ) -> Result<u64, StoreError> {
        (**self).begin(params, started, deadline).await
    }
    async fn reply(
        &self,
        operation: &OperationId,
        sn: &SerialNumber,
        body: &[u8],
        received: Timestamp,
    ) -> Result<(), StoreError> {
        (**self).reply(operation, sn, body, received).await
    }
    async fn late_reply(
        &self,
        operation: &OperationId,
        sn: &SerialNumber,
        body: &[u8],
        received: Timestamp,
    ) -> Result<(), StoreError> {
        (**self).late_reply(operation, sn, body, received).await
    }
    async fn results(
        &self,
        operation: &OperationId,
        results: &[DeviceResult],
        errors: &[String],
    ) -> Result<(), StoreError> {
        (**self).results(operation, results, errors).await
    }
    async fn delivery(
        &self,
        operation: &OperationId,
        kind: PayloadKind,
        outcome: Result<(), &ReportError>,
    ) -> Result<(), StoreError> {
        (**self).delivery(operation, kind, outcome).await
    }
    async fn finish(
        &self,
        operation: &OperationId,
        state: OperationState,
        error: Option<&str>,
        finished: Timestamp,
    ) -> Result<(), StoreError> {
        (**self).finish(operation, state, error, finished).await
    }
}

/// A store that keeps nothing: for one-shot runs that need no resume.
///
/// It cannot know earlier runs, so it numbers each run by its start time
/// in milliseconds since the Unix epoch: runs never repeat, agents answer
/// every one, and idempotency keys never collide.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoStore;

#[async_trait]
impl OperationStore for NoStore {
    async fn begin(
        &self,
        _: &OperationParams,
        started: Timestamp,
        _: Timestamp,
    ) -> Result<u64, StoreError> {
        Ok(u64::try_from(to_millis(started)).unwrap_or(1).max(1))
    }
    async fn reply(
        &self,
        _: &OperationId,
        _: &SerialNumber,
        _: &[u8],
        _: Timestamp,
    ) -> Result<(), StoreError> {
        Ok(())
    }
    async fn results(
        &self,
        _: &OperationId,
        _: &[DeviceResult],
        _: &[String],
    ) -> Result<(), StoreError> {
        Ok(())
    }
    async fn delivery(
        &self,
        _: &OperationId,
        _: PayloadKind,
        _: Result<(), &ReportError>,
    ) -> Result<(), StoreError> {
        Ok(())
    }
    async fn finish(
        &self,
        _: &OperationId,
        _: OperationState,
        _: Option<&str>,
        _: Timestamp,
    ) -> Result<(), StoreError> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stored_parameters_keep_every_field_and_old_rows_still_read() {
        let mut p = OperationParams::new(OperationId::Number(7));
        p.operator_id = Some("op-7".into());
        p.scan_mode = Some(2);
        p.target = Target::DirectBurn;
        p.expected = vec!["A".parse().unwrap()];
        p.window = Duration::from_millis(12_500);
        p.reply_to = "hwinfo_queue_b".into();
        p.require_link = true;
        p.require_clock = true;
        p.settle = Duration::from_millis(1500);
        p.clock_tolerance = Duration::from_secs(30);
        p.mes_outage_wait = Duration::from_secs(60);
        let text = params_to_json(&p).unwrap();
        assert!(
            text.contains(r#""requireClock":true,"settleMs":1500,"clockToleranceMs":30000,"mesOutageWaitMs":60000"#),
            "{text}"
        );
        assert_eq!(params_from_json(&text).unwrap(), p);
        p.require_clock = false;
        let defaults = OperationParams::new(p.operation_id.clone());
        p.settle = defaults.settle;
        p.clock_tolerance = defaults.clock_tolerance;
        p.mes_outage_wait = defaults.mes_outage_wait;
        let text = params_to_json(&p).unwrap();
        assert!(text.contains(r#""requireLink":true"#), "{text}");
        assert_eq!(params_from_json(&text).unwrap(), p);
        // Written before requireLink existed: reads as false.
        p.require_link = false;
        let old = params_to_json(&p).unwrap();
        assert!(!old.contains("requireLink"), "{old}");
        assert_eq!(params_from_json(&old).unwrap(), p);
        let bad = old.replace("directBurn", "burnBoth");
        let e = params_from_json(&bad).unwrap_err();
        assert!(e.contains("unknown target \"burnBoth\""), "{e}");
    }

    fn columns() -> OperationColumns {
        OperationColumns {
            run: Some(3),
            state: "reporting".into(),
            started_ms: 1_800_000_000_123,
            deadline_ms: 1_800_000_030_123,
            finished_ms: None,
            error: None,
            results: Some("[]".into()),
            errors: Some(r#"["MES lookup for X-1 failed"]"#.into()),
        }
    }

    #[test]
    fn times_keep_their_milliseconds_and_clamp_at_the_epoch() {
        let t = from_millis(1_800_000_000_123);
        assert_eq!(to_millis(t), 1_800_000_000_123);
        assert_eq!(to_millis(from_millis(-5)), 0);
        assert_eq!(from_millis(-5), from_millis(0));
    }

    #[test]
    fn numbers_and_strings_get_different_keys() {
        assert_eq!(operation_key(&OperationId::Number(42)), "42");
        assert_eq!(operation_key(&OperationId::text("42").unwrap()), r#""42""#);
    }

    #[test]
    fn a_row_decodes_into_its_view_and_its_stored_operation() {
        let params = OperationParams::new(OperationId::Number(7));
        let record = columns().decode(params.clone()).unwrap();
        assert_eq!(record.state, OperationState::Reporting);
        assert_eq!(to_millis(record.started), 1_800_000_000_123);
        let delivery =
            DeliveryRecord::from_columns("log", Some("503".into()), 1_800_000_031_000).unwrap();
        assert_eq!(delivery.kind, PayloadKind::Log);

        assert_eq!(record.params.run, 3);
        let view = record
            .clone()
            .into_view((-1, 2), vec![delivery.clone()], vec![]);
        assert_eq!(view.late_replies, 2);
        assert_eq!(view.replies, 0, "a negative count reads as 0");
        assert_eq!(view.results, Some(vec![]));
        assert_eq!(view.deliveries, vec![delivery.clone()]);

        let reply = StoredReply {
            body: b"{}".to_vec(),
            received: from_millis(1_800_000_001_000),
        };
        let stored = record.into_stored(vec![reply], vec![delivery]);
        assert_eq!(stored.params.run, 3);
        assert_eq!(
            stored.results,
            Some((vec![], vec!["MES lookup for X-1 failed".to_owned()]))
        );
        assert_eq!(
            stored.deliveries,
            vec![(PayloadKind::Log, Err("503".to_owned()))]
        );
    }

    #[test]
    fn results_count_only_with_their_errors() {
        let mut c = columns();
        c.errors = None;
        let stored = c
            .decode(OperationParams::new(OperationId::Number(7)))
            .unwrap()
            .into_stored(vec![], vec![]);
        assert_eq!(stored.results, None);
    }

    #[test]
    fn a_damaged_row_names_the_column() {
        let params = || OperationParams::new(OperationId::Number(7));
        let mut c = columns();
        c.state = "paused".into();
        assert_eq!(c.decode(params()).unwrap_err(), r#"unknown state "paused""#);
        let mut c = columns();
        c.results = Some("{".into());
        assert!(c.decode(params()).unwrap_err().starts_with("results: "));
        let mut c = columns();
        c.errors = Some("[1]".into());
        assert!(c.decode(params()).unwrap_err().starts_with("errors: "));
        assert_eq!(
            DeliveryRecord::from_columns("fax", None, 0).unwrap_err(),
            r#"unknown payload kind "fax""#
        );
    }
}
