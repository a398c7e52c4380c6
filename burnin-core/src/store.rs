//! The operation store port: what the edge records so a crash loses nothing.
//!
//! SPEC §6: the edge records each operation, each accepted reply (raw JSON)
//! and what it must still POST. [`edge::run`](crate::edge::run) calls the
//! store at these points. It waits for each call to return before going
//! on, except [`OperationStore::reply`]: see *Concurrent replies* below.
//!
//! | when | call | what it guarantees |
//! | --- | --- | --- |
//! | before publishing the command | [`OperationStore::begin`] | the operation exists (a running id is refused: 409) |
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

use async_trait::async_trait;

use crate::{
    DeviceResult, OperationId, OperationParams, OperationState, PayloadKind, ReportError,
    SerialNumber, Timestamp,
};

/// A store failure.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// An operation with this id is already running.
    #[error("operation {0} is already running")]
    Running(OperationId),
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
    /// Accepted reply bodies, in arrival order.
    pub replies: Vec<Vec<u8>>,
    /// The results and errors, once collection ended.
    pub results: Option<(Vec<DeviceResult>, Vec<String>)>,
    /// Delivery outcomes so far, in order (`Err` holds the error text).
    pub deliveries: Vec<(PayloadKind, Result<(), String>)>,
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
    /// The device results, once collection ended.
    pub results: Option<Vec<DeviceResult>>,
    /// Delivery attempts, in order.
    pub deliveries: Vec<DeliveryRecord>,
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

/// Where the edge records operations; see the [module docs](self).
///
/// Implementations must make each call durable before returning, and may
/// be called concurrently (see *Concurrent replies* in the
/// [module docs](self)): batching the calls that wait at the same moment
/// into one commit is what makes a durable store fast.
#[async_trait]
pub trait OperationStore: Send + Sync {
    /// Records a new operation. [`StoreError::Running`] if one with the
    /// same id is not finished.
    async fn begin(
        &self,
        params: &OperationParams,
        started: Timestamp,
        deadline: Timestamp,
    ) -> Result<(), StoreError>;

    /// Records an accepted reply (its raw body).
    async fn reply(
        &self,
        operation: &OperationId,
        sn: &SerialNumber,
        body: &[u8],
        received: Timestamp,
    ) -> Result<(), StoreError>;

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

/// A store that keeps nothing: for one-shot runs that need no resume.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoStore;

#[async_trait]
impl OperationStore for NoStore {
    async fn begin(
        &self,
        _: &OperationParams,
        _: Timestamp,
        _: Timestamp,
    ) -> Result<(), StoreError> {
        Ok(())
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
