//! The operation store `serve` runs on: [`Store`], SQLite or PostgreSQL.
//!
//! **Why an enum and not a trait object.** The write side is already a
//! port ([`OperationStore`]); what the service needs beyond it — reads for
//! the API, resuming, `--keep` pruning, a barrier at shutdown — differs
//! between the two stores only in being blocking (SQLite, run on the
//! blocking pool) or async (PostgreSQL). Two variants, both in this
//! workspace, both known when `serve` is built: an enum keeps each call a
//! plain `match` with no boxed futures, and the one thing only the shared
//! store has ([`Store::is_shared`]: several edges, one active) stays
//! visible at the call sites that care.
//!
//! | | [`Store::Sqlite`] | [`Store::Postgres`] |
//! | --- | --- | --- |
//! | flag | `--state-db FILE` (default) | `--store postgres://…` |
//! | edges on it | one | several, one active ([`burnin_store_pg::Leadership`]) |
//! | commit before ack | yes (group commit, fsync) | yes (group commit, WAL flush) |
//! | outage | — | writes wait up to 30 s, then fail retryably |
//!
//! Every read answers with [`burnin_core::OperationView`], the shape both
//! stores share; errors are [`StoreError::Io`] naming the file or database.

use async_trait::async_trait;
use burnin_core::store::StoredOperation;
use burnin_core::{
    DeviceResult, OperationId, OperationParams, OperationState, OperationStore, OperationView,
    PayloadKind, ReportError, SerialNumber, StoreError, Timestamp,
};
use burnin_store::SqliteStore;
use burnin_store_pg::PgStore;

/// The service's operation store; see the [module docs](self). Cheap to
/// clone (clones share the connections).
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum Store {
    /// The embedded SQLite database (one edge).
    Sqlite(SqliteStore),
    /// A PostgreSQL database (several edges, one active).
    Postgres(PgStore),
}

impl From<SqliteStore> for Store {
    fn from(s: SqliteStore) -> Self {
        Store::Sqlite(s)
    }
}

impl From<PgStore> for Store {
    fn from(s: PgStore) -> Self {
        Store::Postgres(s)
    }
}

/// Runs a blocking SQLite call on the blocking pool.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, burnin_store::Error> + Send + 'static,
) -> Result<T, StoreError> {
    match tokio::task::spawn_blocking(f).await {
        Ok(r) => r.map_err(StoreError::from),
        Err(e) => Err(StoreError::Io(format!(
            "the state database task failed: {e}"
        ))),
    }
}

impl Store {
    /// The file or the database URL (password hidden), for logs.
    pub fn describe(&self) -> String {
        match self {
            Store::Sqlite(s) => s.path().to_owned(),
            Store::Postgres(s) => s.url().to_owned(),
        }
    }

    /// How `/metrics` names it (`burnin_store_info`): its kind (`sqlite`,
    /// `postgres`) and the SQLite file, or PostgreSQL's `HOST:PORT/DATABASE`
    /// as the URL gives it (no user, no password, no parameters), so the
    /// edges sharing one database carry the same label when they are given
    /// the same host and port.
    pub fn metric_labels(&self) -> (&'static str, String) {
        match self {
            Store::Sqlite(s) => ("sqlite", s.path().to_owned()),
            Store::Postgres(s) => {
                let url = s.url();
                let rest = url.split_once("://").map_or(url, |(_, r)| r);
                let rest = rest.rsplit_once('@').map_or(rest, |(_, r)| r);
                let rest = rest.split_once('?').map_or(rest, |(r, _)| r);
                ("postgres", rest.to_owned())
            }
        }
    }

    /// Whether several edges may share it (then one is active at a time).
    pub fn is_shared(&self) -> bool {
        matches!(self, Store::Postgres(_))
    }

    /// The latest run of operation `id`, if any.
    ///
    /// # Errors
    /// If the store cannot be read.
    pub async fn get(&self, id: &OperationId) -> Result<Option<OperationView>, StoreError> {
        match self {
            Store::Sqlite(s) => {
                let (s, id) = (s.clone(), id.clone());
                blocking(move || s.get(&id)).await
            }
            Store::Postgres(s) => Ok(s.get(id).await?),
        }
    }

    /// Finds an operation by an id written as text (number first).
    ///
    /// # Errors
    /// If the store cannot be read.
    pub async fn find(&self, raw: &str) -> Result<Option<OperationView>, StoreError> {
        match self {
            Store::Sqlite(s) => {
                let (s, raw) = (s.clone(), raw.to_owned());
                blocking(move || s.find(&raw)).await
            }
            Store::Postgres(s) => Ok(s.find(raw).await?),
        }
    }

    /// The `limit` most recently begun operations, newest first.
    ///
    /// # Errors
    /// If the store cannot be read.
    pub async fn list(&self, limit: usize) -> Result<Vec<OperationView>, StoreError> {
        match self {
            Store::Sqlite(s) => {
                let s = s.clone();
                blocking(move || s.list(limit)).await
            }
            Store::Postgres(s) => Ok(s.list(limit).await?),
        }
    }

    /// How many operations (latest run of each id) are in each state.
    ///
    /// # Errors
    /// If the store cannot be read.
    pub async fn count_by_state(&self) -> Result<Vec<(OperationState, u64)>, StoreError> {
        match self {
            Store::Sqlite(s) => {
                let s = s.clone();
                blocking(move || s.count_by_state()).await
            }
            Store::Postgres(s) => Ok(s.count_by_state().await?),
        }
    }

    /// Every unfinished operation, oldest first.
    ///
    /// # Errors
    /// If the store cannot be read or a row is damaged.
    pub async fn unfinished(&self) -> Result<Vec<StoredOperation>, StoreError> {
        match self {
            Store::Sqlite(s) => {
                let s = s.clone();
                blocking(move || s.unfinished()).await
            }
            Store::Postgres(s) => Ok(s.unfinished().await?),
        }
    }

    /// The ids of the unfinished operations (no replies read).
    ///
    /// # Errors
    /// If the store cannot be read.
    pub async fn unfinished_ids(&self) -> Result<Vec<OperationId>, StoreError> {
        match self {
            Store::Sqlite(_) => Ok(self
                .unfinished()
                .await?
                .into_iter()
                .map(|o| o.params.operation_id)
                .collect()),
            Store::Postgres(s) => Ok(s.unfinished_ids().await?),
        }
    }

    /// Deletes finished operations older than `finished_before`; how many.
    ///
    /// # Errors
    /// If the store cannot be written.
    pub async fn prune(&self, finished_before: Timestamp) -> Result<usize, StoreError> {
        match self {
            Store::Sqlite(s) => {
                let s = s.clone();
                blocking(move || s.prune(finished_before)).await
            }
            Store::Postgres(s) => Ok(s.prune(finished_before).await?),
        }
    }

    /// Waits until every write handed over before this call is committed
    /// (or has failed).
    pub async fn barrier(&self) {
        match self {
            Store::Sqlite(s) => s.barrier().await,
            Store::Postgres(s) => s.barrier().await,
        }
    }
}

#[async_trait]
impl OperationStore for Store {
    async fn begin(
        &self,
        params: &OperationParams,
        started: Timestamp,
        deadline: Timestamp,
    ) -> Result<u64, StoreError> {
        match self {
            Store::Sqlite(s) => s.begin(params, started, deadline).await,
            Store::Postgres(s) => s.begin(params, started, deadline).await,
        }
    }

    async fn reply(
        &self,
        operation: &OperationId,
        sn: &SerialNumber,
        body: &[u8],
        received: Timestamp,
    ) -> Result<(), StoreError> {
        match self {
            Store::Sqlite(s) => s.reply(operation, sn, body, received).await,
            Store::Postgres(s) => s.reply(operation, sn, body, received).await,
        }
    }

    async fn late_reply(
        &self,
        operation: &OperationId,
        sn: &SerialNumber,
        body: &[u8],
        received: Timestamp,
    ) -> Result<(), StoreError> {
        match self {
            Store::Sqlite(s) => s.late_reply(operation, sn, body, received).await,
            Store::Postgres(s) => s.late_reply(operation, sn, body, received).await,
        }
    }

    async fn results(
        &self,
        operation: &OperationId,
        results: &[DeviceResult],
        errors: &[String],
    ) -> Result<(), StoreError> {
        match self {
            Store::Sqlite(s) => s.results(operation, results, errors).await,
            Store::Postgres(s) => s.results(operation, results, errors).await,
        }
    }

    async fn delivery(
        &self,
        operation: &OperationId,
        kind: PayloadKind,
        outcome: Result<(), &ReportError>,
    ) -> Result<(), StoreError> {
        match self {
            Store::Sqlite(s) => s.delivery(operation, kind, outcome).await,
            Store::Postgres(s) => s.delivery(operation, kind, outcome).await,
        }
    }

    async fn finish(
        &self,
        operation: &OperationId,
        state: OperationState,
        error: Option<&str>,
        finished: Timestamp,
    ) -> Result<(), StoreError> {
        match self {
            Store::Sqlite(s) => s.finish(operation, state, error, finished).await,
            Store::Postgres(s) => s.finish(operation, state, error, finished).await,
        }
    }
}
