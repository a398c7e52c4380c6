//! The operation store port: what the edge records so a crash loses nothing.
//!
//! SPEC §6: the edge records each operation, each accepted reply (raw JSON)
//! and what it must still POST. [`edge::run`](crate::edge::run) calls the
//! store at these points, and waits for each call to return before going
//! on:
//!
//! | when | call | what it guarantees |
//! | --- | --- | --- |
//! | before publishing the command | [`OperationStore::begin`] | the operation exists (a running id is refused: 409) |
//! | a reply is accepted, **before** it is acked | [`OperationStore::reply`] | the broker's copy is dropped only once ours is durable |
//! | collection ended, MES answered | [`OperationStore::results`] | the results (and errors so far) are fixed; every payload is derived from them |
//! | each payload delivered or failed | [`OperationStore::delivery`] | a restart sends only what was not delivered, with the same `Idempotency-Key` |
//! | the end | [`OperationStore::finish`] | final state and error |
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

/// Where the edge records operations; see the [module docs](self).
///
/// Implementations must make each call durable before returning.
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
