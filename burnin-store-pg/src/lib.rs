//! # burnin-store-pg
//!
//! burnin-edge's [`OperationStore`] in **PostgreSQL** (`serve --store
//! postgres://…`, SPEC §10.3): the same port, the same rules as the
//! embedded SQLite store (`burnin-store`, still the default), for a factory
//! that runs more than one `serve` and already trusts PostgreSQL with its
//! data. Several edges may share one database; [`Leadership`] makes exactly
//! one of them active.
//!
//! ## Design overview
//!
//! | table | one row per | holds |
//! | --- | --- | --- |
//! | `burnin_operations` | run of an operation | id (as JSON: `42` and `"42"` differ), parameters (JSON), state, start, deadline, end, error, results and errors (JSON, once collection ended) |
//! | `burnin_replies` | accepted reply | the raw body, its serial (unique per run), when it arrived |
//! | `burnin_deliveries` | delivery attempt | kind, outcome, error text, time, and a random token that makes a retried insert harmless |
//! | `burnin_schema` | applied migration | its version and when it was applied |
//!
//! The layout and the JSON documents are the SQLite store's, so payloads
//! are rebuilt from stored results byte for byte, with the same
//! `Idempotency-Key`, whichever edge sends them.
//!
//! **Commit before ack.** Every [`OperationStore`] call returns only once
//! PostgreSQL has committed it (`synchronous_commit` as the server is
//! configured: on by default, so the commit is flushed to the WAL). One
//! writer task owns the write connection and commits every call queued
//! while the previous commit was in flight **in one transaction** (group
//! commit, up to [`MAX_BATCH`] calls): concurrent replies of a large
//! operation share one WAL flush instead of paying one each. A call that
//! fails inside a batch does not fail the others: the batch is then run
//! again one call per transaction.
//!
//! **PostgreSQL going away.** When the connection breaks (a restart, a
//! failover, a network cut) the writer reconnects and runs the batch
//! again, for up to [`PgStore::set_retry_for`] (default 30 s) before
//! giving up with a retryable [`StoreError::Io`] that names the database
//! (URL without password) and what to do. Running a batch again is
//! harmless: replies are keyed by (run, serial), deliveries by their token,
//! `begin` recognises its own row, `results` and `finish` are updates of the
//! same values. Meanwhile the edge holds the replies it has not recorded
//! unacknowledged, so the broker keeps them. A restart ends every session
//! with SQLSTATE 57P01 (*terminating connection due to administrator
//! command*); like the other 57P0x and class 08 codes it counts as a lost
//! connection, never as a refused statement, and messages spell it out
//! ([`explain`]: the driver alone would say `db error`). Statements are
//! not prepared ahead, so a new session after a restart has nothing stale.
//!
//! **Schema changes** are numbered migrations ([`SCHEMA_VERSION`]) applied
//! under a transaction-scoped advisory lock, so two edges starting at once
//! do not race; a database written by a newer burnin is refused
//! ([`Error::NewerSchema`]), never changed.
//!
//! **TLS** is not built in (no TLS crate is linked): reach PostgreSQL on
//! the loopback or a private network, or through a local TLS tunnel. A URL
//! asking for `sslmode=require` is refused with that advice.
//!
//! ## Getting started
//!
//! ```no_run
//! use burnin_core::{OperationId, OperationParams, OperationStore, Timestamp};
//! use burnin_store_pg::PgStore;
//!
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! let store = PgStore::connect("postgres://burnin@db.factory/burnin").await?;
//! let params = OperationParams::new(OperationId::Number(42));
//! let now = Timestamp::from_unix_seconds(1_800_000_000);
//! store.begin(&params, now, now.saturating_add(params.window)).await?;
//! for stored in store.unfinished().await? {
//!     let op = burnin_core::Operation::restore(stored);
//!     // hand `op` to burnin_core::edge::run
//! #   drop(op);
//! }
//! # Ok(()) }
//! ```

pub mod leader;
mod schema;

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use burnin_core::store::{
    OperationColumns, OperationRecord, RunSummary, StoredOperation, StoredReply, operation_key,
    params_from_json, params_to_json, to_millis,
};
use burnin_core::{
    Candidacy, DeviceResult, Election, OperationId, OperationParams, OperationReads,
    OperationState, OperationStore, PayloadKind, ReportError, SerialNumber, StoreError, Timestamp,
};
use tokio::sync::{Mutex, mpsc, oneshot};
use tokio_postgres::{Client, GenericClient, NoTls};

pub use leader::{LOCK_KEY, Leadership, Role};
pub use schema::SCHEMA_VERSION;

/// The most calls one transaction commits (group commit).
pub const MAX_BATCH: usize = 256;

/// A store failure, naming the database and what to do.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The URL cannot be used.
    #[error("--store {url}: {reason}")]
    InvalidUrl {
        /// The URL, password hidden.
        url: String,
        /// What is wrong.
        reason: String,
    },
    /// PostgreSQL cannot be reached or refused the login.
    #[error(
        "cannot connect to PostgreSQL at {url}: {}; check that it runs, \
         the host, port, user and database name, and pg_hba.conf",
        explain(.source)
    )]
    Connect {
        /// The URL, password hidden.
        url: String,
        /// The driver's error.
        #[source]
        source: tokio_postgres::Error,
    },
    /// The database was written by a newer burnin.
    #[error(
        "PostgreSQL database {url} has burnin schema version {found}, newer than the {known} \
         this program knows. Nothing was changed; run the newer burnin-edge that wrote it, \
         or give another database"
    )]
    NewerSchema {
        /// The URL, password hidden.
        url: String,
        /// Its version.
        found: i32,
        /// The newest version this build knows.
        known: i32,
    },
    /// A statement failed.
    #[error("PostgreSQL database {url}: {action} failed: {}", explain(.source))]
    Sql {
        /// The URL, password hidden.
        url: String,
        /// What was being done.
        action: String,
        /// The driver's error.
        #[source]
        source: tokio_postgres::Error,
    },
    /// A stored row could not be read back.
    #[error("PostgreSQL database {url}: {detail}")]
    BadRecord {
        /// The URL, password hidden.
        url: String,
        /// What is wrong.
        detail: String,
    },
}

impl From<Error> for StoreError {
    fn from(e: Error) -> Self {
        StoreError::Io(e.to_string())
    }
}

/// What the store knows of one operation (the same shape the SQLite store answers with).
pub use burnin_core::store::{DeliveryRecord, OperationView};

/// `url` with any password replaced by `***`, for logs and errors.
///
/// ```
/// assert_eq!(
///     burnin_store_pg::redact_url("postgres://edge:s3cret@db:5432/burnin"),
///     "postgres://edge:***@db:5432/burnin"
/// );
/// ```
pub fn redact_url(url: &str) -> String {
    let Some(scheme_end) = url.find("://") else {
        return if url.contains("password") {
            "<connection string with a password>".into()
        } else {
            url.to_owned()
        };
    };
    let start = scheme_end + 3;
    let rest = &url[start..];
    let Some(at) = rest.rfind('@') else {
        return url.to_owned();
    };
    match rest[..at].find(':') {
        Some(colon) => format!("{}{}:***{}", &url[..start], &rest[..colon], &rest[at..]),
        None => url.to_owned(),
    }
}

/// Parses and checks a `postgres://` URL.
pub(crate) fn parse_url(url: &str) -> Result<tokio_postgres::Config, Error> {
    let shown = redact_url(url);
    let mut config: tokio_postgres::Config = url.parse().map_err(|e| Error::InvalidUrl {
        url: shown.clone(),
        reason: format!("{e}; give postgres://USER[:PASSWORD]@HOST[:PORT]/DATABASE"),
    })?;
    if config.get_ssl_mode() == tokio_postgres::config::SslMode::Require {
        return Err(Error::InvalidUrl {
            url: shown,
            reason: "sslmode=require: this build has no TLS for PostgreSQL; reach it on the \
                     loopback or a private network, or through a local TLS tunnel"
                .into(),
        });
    }
    if config.get_connect_timeout().is_none() {
        config.connect_timeout(Duration::from_secs(5));
    }
    if config.get_application_name().is_none() {
        config.application_name("burnin-edge");
    }
    Ok(config)
}

/// A driver error as a sentence: tokio-postgres shows only `db error` or
/// `error connecting to server`, the cause (PostgreSQL's own message and
/// SQLSTATE, the socket's error) is in its source. The SQLSTATEs a
/// restart produces are explained.
///
/// 57P01 (`admin_shutdown`) is what PostgreSQL sends every session when it
/// stops or restarts in `fast` mode — and when an administrator ends one
/// with `pg_terminate_backend`; 57P02 after another server process
/// crashed; 57P03 while it starts up or shuts down.
pub fn explain(e: &tokio_postgres::Error) -> String {
    if let Some(db) = e.as_db_error() {
        let code = db.code().code();
        let why = match code {
            "57P01" => {
                ": PostgreSQL is shutting down or restarting, or an administrator ended the session"
            }
            "57P02" => ": a PostgreSQL server process crashed and the server is restarting",
            "57P03" => ": PostgreSQL is starting up or shutting down",
            _ => "",
        };
        let mut text = format!("{}: {} (SQLSTATE {code}{why})", db.severity(), db.message());
        if let Some(detail) = db.detail() {
            text.push_str("; ");
            text.push_str(detail);
        }
        return text;
    }
    let mut text = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// Opens one connection, its driver task spawned.
pub(crate) async fn open(config: &tokio_postgres::Config, shown: &str) -> Result<Client, Error> {
    open_watched(config, shown).await.map(|(client, _)| client)
}

/// Opens one connection, its driver task spawned; the receiver gets why
/// the connection ended ([`explain`]ed), once it has.
pub(crate) async fn open_watched(
    config: &tokio_postgres::Config,
    shown: &str,
) -> Result<(Client, oneshot::Receiver<String>), Error> {
    let (client, connection) = config.connect(NoTls).await.map_err(|e| Error::Connect {
        url: shown.to_owned(),
        source: e,
    })?;
    let (ended, why) = oneshot::channel();
    tokio::spawn(async move {
        let reason = match connection.await {
            Ok(()) => "the connection was closed".to_owned(),
            Err(e) => {
                let reason = explain(&e);
                tracing::debug!(error = %reason, "PostgreSQL connection ended");
                reason
            }
        };
        let _ = ended.send(reason);
    });
    Ok((client, why))
}

/// The PostgreSQL operation store; see the [crate docs](crate). Cheap to
/// clone (all clones share the connections).
#[derive(Clone)]
pub struct PgStore {
    inner: Arc<Inner>,
}

struct Inner {
    config: tokio_postgres::Config,
    shown: String,
    jobs: mpsc::Sender<Job>,
    reader: Mutex<Option<Client>>,
    retry_for: std::sync::Mutex<Duration>,
}

impl fmt::Debug for PgStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PgStore")
            .field("url", &self.inner.shown)
            .finish()
    }
}

/// One write, as queued for the writer.
#[derive(Debug, Clone)]
enum Write {
    Begin {
        id: OperationId,
        key: String,
        doc: String,
        started: i64,
        deadline: i64,
        rescan: bool,
        /// Where the run number is written once the insert committed.
        run: Arc<std::sync::atomic::AtomicU64>,
    },
    Reply {
        key: String,
        sn: String,
        body: Vec<u8>,
        received: i64,
    },
    LateReply {
        key: String,
        sn: String,
        body: Vec<u8>,
        received: i64,
    },
    Results {
        key: String,
        results: String,
        errors: String,
    },
    Delivery {
        key: String,
        kind: &'static str,
        error: Option<String>,
        at: i64,
        token: i64,
    },
    Finish {
        key: String,
        state: &'static str,
        error: Option<String>,
        finished: i64,
    },
}

struct Job {
    write: Write,
    done: oneshot::Sender<Result<(), StoreError>>,
}

/// Whether `e` means the connection is gone (as opposed to a statement
/// PostgreSQL refused): then reconnecting and trying again may succeed.
fn connection_lost(e: &tokio_postgres::Error) -> bool {
    if e.is_closed() {
        return true;
    }
    match e.code() {
        // Class 08 (connection exception), 57P01..57P03 (admin shutdown,
        // crash shutdown, cannot connect now).
        Some(code) => {
            let c = code.code();
            c.starts_with("08") || matches!(c, "57P01" | "57P02" | "57P03")
        }
        // No SQLSTATE: an I/O error on the socket.
        None => true,
    }
}

/// What a call that failed for good tells its caller.
fn refused(shown: &str, action: &str, e: &tokio_postgres::Error) -> StoreError {
    StoreError::Io(format!(
        "PostgreSQL database {shown}: {action} failed: {}",
        explain(e)
    ))
}

impl PgStore {
    /// Connects to the database at `url` (`postgres://USER[:PASSWORD]@HOST[:PORT]/DB`),
    /// applies the migrations up to [`SCHEMA_VERSION`], and starts the writer.
    ///
    /// # Errors
    /// A bad URL, an unreachable server, a refused login, or a database of a
    /// newer schema: the error names the database (password hidden) and
    /// what to do.
    pub async fn connect(url: &str) -> Result<Self, Error> {
        let config = parse_url(url)?;
        let shown = redact_url(url);
        let mut client = open(&config, &shown).await?;
        schema::migrate(&mut client, &shown).await?;
        let (tx, rx) = mpsc::channel(MAX_BATCH * 4);
        let inner = Arc::new(Inner {
            config,
            shown,
            jobs: tx,
            reader: Mutex::new(Some(client)),
            retry_for: std::sync::Mutex::new(Duration::from_secs(30)),
        });
        tokio::spawn(writer(Arc::downgrade(&inner), rx));
        Ok(PgStore { inner })
    }

    /// The database URL, password hidden.
    pub fn url(&self) -> &str {
        &self.inner.shown
    }

    /// How long a write keeps trying while PostgreSQL is unreachable
    /// before it fails (default 30 s).
    pub fn set_retry_for(&self, d: Duration) {
        *self
            .inner
            .retry_for
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = d;
    }

    async fn write(&self, write: Write) -> Result<(), StoreError> {
        let (done, wait) = oneshot::channel();
        self.inner
            .jobs
            .send(Job { write, done })
            .await
            .map_err(|_| StoreError::Io(format!("PostgreSQL store {}: closed", self.url())))?;
        wait.await.map_err(|_| {
            StoreError::Io(format!(
                "PostgreSQL store {}: the writer stopped before committing",
                self.url()
            ))
        })?
    }

    /// Runs a read with the reader connection, reconnecting once if it was
    /// lost.
    async fn read<T>(&self, action: &str, f: impl AsyncFnOnceClient<T>) -> Result<T, Error> {
        let mut slot = self.inner.reader.lock().await;
        if slot.as_ref().is_none_or(Client::is_closed) {
            *slot = Some(open(&self.inner.config, &self.inner.shown).await?);
        }
        let client = slot.as_ref().ok_or_else(|| Error::BadRecord {
            url: self.inner.shown.clone(),
            detail: "no connection".into(),
        })?;
        f.call(client).await.map_err(|e| Error::Sql {
            url: self.inner.shown.clone(),
            action: action.to_owned(),
            source: e,
        })
    }

    /// The latest run of operation `id`, if any.
    ///
    /// # Errors
    /// If the database cannot be read.
    pub async fn get(&self, id: &OperationId) -> Result<Option<OperationView>, Error> {
        let k = operation_key(id);
        let rows = self
            .read("looking an operation up", Query::Latest(k))
            .await?;
        match rows.into_iter().next() {
            Some(run) => Ok(Some(self.view(run).await?)),
            None => Ok(None),
        }
    }

    /// Finds an operation by an id written as text (a URL path segment),
    /// number first, as the SQLite store does.
    ///
    /// # Errors
    /// If the database cannot be read.
    pub async fn find(&self, raw: &str) -> Result<Option<OperationView>, Error> {
        if let Ok(id @ OperationId::Number(_)) = OperationId::from_cli(raw)
            && let Some(v) = self.get(&id).await?
        {
            return Ok(Some(v));
        }
        match OperationId::text(raw) {
            Ok(id) => self.get(&id).await,
            Err(_) => Ok(None),
        }
    }

    /// The `limit` most recently begun operations (latest run of each id),
    /// newest first.
    ///
    /// # Errors
    /// If the database cannot be read.
    pub async fn list(&self, limit: usize) -> Result<Vec<OperationView>, Error> {
        let runs = self
            .read(
                "listing operations",
                Query::Recent(i64::try_from(limit).unwrap_or(i64::MAX)),
            )
            .await?;
        let mut out = Vec::with_capacity(runs.len());
        for run in runs {
            out.push(self.view(run).await?);
        }
        Ok(out)
    }

    /// How many operations (latest run of each id) are in each state.
    ///
    /// # Errors
    /// If the database cannot be read.
    pub async fn count_by_state(&self) -> Result<Vec<(OperationState, u64)>, Error> {
        let rows = self
            .read(
                "counting operations",
                Rows(
                    "SELECT o.state, COUNT(*) FROM burnin_operations o
                 JOIN (SELECT MAX(run) AS run FROM burnin_operations GROUP BY operation_id) l
                   ON o.run = l.run
                 GROUP BY o.state",
                    vec![],
                ),
            )
            .await?;
        Ok(rows
            .iter()
            .filter_map(|r| {
                let s: String = r.get(0);
                let n: i64 = r.get(1);
                Some((
                    OperationState::from_name(&s)?,
                    u64::try_from(n).unwrap_or(0),
                ))
            })
            .collect())
    }

    /// Every unfinished operation, oldest first, as
    /// [`Operation::restore`](burnin_core::Operation::restore) takes it.
    ///
    /// # Errors
    /// If the database cannot be read or a row is damaged.
    pub async fn unfinished(&self) -> Result<Vec<StoredOperation>, Error> {
        let runs = self
            .read("listing unfinished operations", Query::Unfinished)
            .await?;
        let mut out = Vec::with_capacity(runs.len());
        for run in runs {
            let row = self.row(run).await?;
            let bodies = self
                .read(
                    "reading replies",
                    Rows(
                        "SELECT body, received_ms FROM burnin_replies
                         WHERE run = $1 AND NOT late ORDER BY seq",
                        vec![Param::I64(run)],
                    ),
                )
                .await?;
            let replies = bodies
                .iter()
                .map(|r| StoredReply {
                    body: r.get(0),
                    received: burnin_core::store::from_millis(r.get(1)),
                })
                .collect();
            out.push(row.into_stored(replies, self.deliveries(run).await?));
        }
        Ok(out)
    }

    /// The ids of the unfinished operations, oldest first: a cheap check
    /// (no replies are read) for an active edge looking for operations it
    /// does not run yet.
    ///
    /// # Errors
    /// If the database cannot be read or an id is damaged.
    pub async fn unfinished_ids(&self) -> Result<Vec<OperationId>, Error> {
        let rows = self
            .read(
                "listing unfinished operations",
                Rows(
                    "SELECT operation_id FROM burnin_operations WHERE finished_ms IS NULL ORDER BY run",
                    vec![],
                ),
            )
            .await?;
        rows.iter()
            .map(|r| {
                let k: String = r.get(0);
                serde_json::from_str(&k).map_err(|e| Error::BadRecord {
                    url: self.inner.shown.clone(),
                    detail: format!("operation id {k:?}: {e}"),
                })
            })
            .collect()
    }

    /// Deletes every operation that finished before `finished_before`,
    /// with its replies and deliveries (`serve --keep`), in one statement;
    /// running operations are never touched. Returns how many runs were
    /// deleted.
    ///
    /// # Errors
    /// If the database cannot be written.
    pub async fn prune(&self, finished_before: Timestamp) -> Result<usize, Error> {
        let rows = self
            .read(
                "pruning finished operations",
                Rows(
                    "WITH old AS (SELECT run FROM burnin_operations
                                   WHERE finished_ms IS NOT NULL AND finished_ms < $1),
                          r AS (DELETE FROM burnin_replies WHERE run IN (SELECT run FROM old)),
                          d AS (DELETE FROM burnin_deliveries WHERE run IN (SELECT run FROM old)),
                          o AS (DELETE FROM burnin_operations WHERE run IN (SELECT run FROM old)
                                RETURNING run)
                     SELECT COUNT(*) FROM o",
                    vec![Param::I64(to_millis(finished_before))],
                ),
            )
            .await?;
        let n: i64 = rows.first().map_or(0, |r| r.get(0));
        Ok(usize::try_from(n).unwrap_or(0))
    }

    /// Waits until every write queued before this call is committed.
    pub async fn barrier(&self) {
        // An update of nothing, queued behind the others.
        let _ = self
            .write(Write::Results {
                key: String::new(),
                results: String::new(),
                errors: String::new(),
            })
            .await;
    }

    fn bad(&self, run: i64, detail: impl fmt::Display) -> Error {
        Error::BadRecord {
            url: self.inner.shown.clone(),
            detail: format!("operation row {run}: {detail}"),
        }
    }

    async fn row(&self, run: i64) -> Result<OperationRecord, Error> {
        let rows = self
            .read("reading an operation", Rows(
                "SELECT params, state, started_ms, deadline_ms, finished_ms, error, results, errors,
                        run_no
                 FROM burnin_operations WHERE run = $1",
                vec![Param::I64(run)],
            ))
            .await?;
        let r = rows
            .first()
            .ok_or_else(|| self.bad(run, "vanished while being read"))?;
        let params: String = r.get(0);
        let state: String = r.get(1);
        let params = params_from_json(&params)
            .map_err(|e| self.bad(run, format_args!("parameters: {e}")))?;
        OperationColumns {
            run: r.get(8),
            state,
            started_ms: r.get(2),
            deadline_ms: r.get(3),
            finished_ms: r.get(4),
            error: r.get(5),
            results: r.get(6),
            errors: r.get(7),
        }
        .decode(params)
        .map_err(|detail| self.bad(run, detail))
    }

    async fn deliveries(&self, run: i64) -> Result<Vec<DeliveryRecord>, Error> {
        let rows = self
            .read(
                "reading deliveries",
                Rows(
                    "SELECT kind, error, at_ms FROM burnin_deliveries WHERE run = $1 ORDER BY seq",
                    vec![Param::I64(run)],
                ),
            )
            .await?;
        rows.iter()
            .map(|r| {
                let kind: String = r.get(0);
                DeliveryRecord::from_columns(&kind, r.get(1), r.get(2))
                    .map_err(|detail| self.bad(run, detail))
            })
            .collect()
    }

    async fn view(&self, run: i64) -> Result<OperationView, Error> {
        let row = self.row(run).await?;
        let n = self
            .read(
                "counting replies",
                Rows(
                    "SELECT COUNT(*) FILTER (WHERE NOT late), COUNT(*) FILTER (WHERE late)
                     FROM burnin_replies WHERE run = $1",
                    vec![Param::I64(run)],
                ),
            )
            .await?;
        let replies: (i64, i64) = n.first().map_or((0, 0), |r| (r.get(0), r.get(1)));
        Ok(row.into_view(replies, self.deliveries(run).await?, self.runs(run).await?))
    }

    /// Every run of the id of row `run`, oldest first.
    async fn runs(&self, run: i64) -> Result<Vec<RunSummary>, Error> {
        let rows = self
            .read(
                "listing runs",
                Rows(
                    "SELECT run_no, state, started_ms, finished_ms FROM burnin_operations
                     WHERE operation_id = (SELECT operation_id FROM burnin_operations WHERE run = $1)
                     ORDER BY run",
                    vec![Param::I64(run)],
                ),
            )
            .await?;
        rows.iter()
            .map(|r| {
                let no: Option<i64> = r.get(0);
                let state: String = r.get(1);
                let finished: Option<i64> = r.get(3);
                Ok(RunSummary {
                    run: no.and_then(|n| u64::try_from(n).ok()).unwrap_or(0),
                    state: OperationState::from_name(&state)
                        .ok_or_else(|| self.bad(run, format_args!("unknown state {state:?}")))?,
                    started: burnin_core::store::from_millis(r.get(2)),
                    finished: finished.map(burnin_core::store::from_millis),
                })
            })
            .collect()
    }
}

/// A read, run with the reader connection (a trait rather than a closure
/// so the borrowed client's lifetime stays simple).
trait AsyncFnOnceClient<T> {
    async fn call(self, client: &Client) -> Result<T, tokio_postgres::Error>;
}

enum Param {
    I64(i64),
}

/// A statement and its parameters, returning its rows.
struct Rows(&'static str, Vec<Param>);

impl AsyncFnOnceClient<Vec<tokio_postgres::Row>> for Rows {
    async fn call(
        self,
        client: &Client,
    ) -> Result<Vec<tokio_postgres::Row>, tokio_postgres::Error> {
        let values: Vec<i64> = self.1.iter().map(|Param::I64(v)| *v).collect();
        let params: Vec<&(dyn tokio_postgres::types::ToSql + Sync)> = values
            .iter()
            .map(|v| v as &(dyn tokio_postgres::types::ToSql + Sync))
            .collect();
        client.query(self.0, &params).await
    }
}

/// Reads that return runs.
enum Query {
    Latest(String),
    Recent(i64),
    Unfinished,
}

impl AsyncFnOnceClient<Vec<i64>> for Query {
    async fn call(self, client: &Client) -> Result<Vec<i64>, tokio_postgres::Error> {
        let rows =
            match self {
                Query::Latest(k) => {
                    client
                        .query(
                            "SELECT run FROM burnin_operations WHERE operation_id = $1
                         ORDER BY run DESC LIMIT 1",
                            &[&k],
                        )
                        .await?
                }
                Query::Recent(limit) => {
                    client
                        .query(
                            "SELECT MAX(run) AS last FROM burnin_operations GROUP BY operation_id
                         ORDER BY last DESC LIMIT $1",
                            &[&limit],
                        )
                        .await?
                }
                Query::Unfinished => client
                    .query(
                        "SELECT run FROM burnin_operations WHERE finished_ms IS NULL ORDER BY run",
                        &[],
                    )
                    .await?,
            };
        Ok(rows.iter().map(|r| r.get(0)).collect())
    }
}

/// The writer: takes every queued write, commits them in one transaction,
/// answers each; reconnects and retries while PostgreSQL is away.
async fn writer(inner: std::sync::Weak<Inner>, mut rx: mpsc::Receiver<Job>) {
    let mut client: Option<Client> = None;
    while let Some(first) = rx.recv().await {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        let Some(inner) = inner.upgrade() else {
            return;
        };
        let retry_for = *inner
            .retry_for
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let give_up = tokio::time::Instant::now() + retry_for;
        let writes: Vec<Write> = batch.iter().map(|j| j.write.clone()).collect();
        let mut attempt = 0u32;
        let outcomes = loop {
            let result = match client.as_mut().filter(|c| !c.is_closed()) {
                Some(c) => run_batch(c, &writes, &inner.shown).await,
                None => match open(&inner.config, &inner.shown).await {
                    Ok(c) => {
                        if attempt > 0 {
                            tracing::info!(url = %inner.shown, "reconnected to PostgreSQL");
                        }
                        client = Some(c);
                        continue;
                    }
                    Err(e) => Err(e.to_string()),
                },
            };
            match result {
                Ok(outcomes) => break outcomes,
                Err(why) => {
                    client = None;
                    let delay = Duration::from_millis(100 * 2u64.pow(attempt.min(4)))
                        .mul_f64(0.5 + fastrand::f64() / 2.0);
                    if tokio::time::Instant::now() + delay >= give_up {
                        let msg = format!(
                            "PostgreSQL database {} could not be written for {retry_for:?}: {why}; \
                             check that PostgreSQL runs and accepts connections",
                            inner.shown
                        );
                        break writes
                            .iter()
                            .map(|_| Err(StoreError::Io(msg.clone())))
                            .collect();
                    }
                    tracing::warn!(url = %inner.shown, error = %why, retry_in = ?delay, "PostgreSQL unavailable; retrying the write");
                    tokio::time::sleep(delay).await;
                    attempt += 1;
                }
            }
        };
        drop(inner);
        for (job, outcome) in batch.into_iter().zip(outcomes) {
            let _ = job.done.send(outcome);
        }
    }
}

/// Runs `writes` in one transaction; on a refused statement, again one
/// per transaction so each call gets its own outcome. `Err` only when the
/// connection was lost (the caller reconnects and runs them again).
async fn run_batch(
    client: &mut Client,
    writes: &[Write],
    shown: &str,
) -> Result<Vec<Result<(), StoreError>>, String> {
    let together = async {
        let tx = client.transaction().await?;
        let mut outcomes = Vec::with_capacity(writes.len());
        for w in writes {
            outcomes.push(apply(&tx, w, shown).await?);
        }
        tx.commit().await?;
        Ok::<_, tokio_postgres::Error>(outcomes)
    }
    .await;
    match together {
        Ok(outcomes) => return Ok(outcomes),
        Err(e) if connection_lost(&e) => return Err(explain(&e)),
        Err(_) if writes.len() == 1 => {}
        Err(e) => {
            tracing::debug!(error = %explain(&e), "a batched write was refused; committing one by one")
        }
    }
    let mut outcomes = Vec::with_capacity(writes.len());
    for w in writes {
        let one = async {
            let tx = client.transaction().await?;
            let outcome = apply(&tx, w, shown).await?;
            tx.commit().await?;
            Ok::<_, tokio_postgres::Error>(outcome)
        }
        .await;
        match one {
            Ok(o) => outcomes.push(o),
            Err(e) if connection_lost(&e) => return Err(explain(&e)),
            Err(e) => outcomes.push(Err(refused(shown, "a write", &e))),
        }
    }
    Ok(outcomes)
}

/// One write inside a transaction. `Ok(Err(_))` is the call's own failure
/// (e.g. the operation is already running); `Err` a statement error.
async fn apply(
    tx: &impl GenericClient,
    w: &Write,
    shown: &str,
) -> Result<Result<(), StoreError>, tokio_postgres::Error> {
    let running = |k: &str| {
        StoreError::Io(format!(
            "PostgreSQL database {shown}: no running operation {k} to record into"
        ))
    };
    match w {
        Write::Begin {
            id,
            key,
            doc,
            started,
            deadline,
            rescan,
            run,
        } => {
            let latest = tx
                .query_opt(
                    "SELECT params, started_ms, finished_ms, run_no, state FROM burnin_operations
                     WHERE operation_id = $1 ORDER BY run DESC LIMIT 1",
                    &[key],
                )
                .await?;
            if let Some(row) = latest {
                let (p, s, finished, no, state): (String, i64, Option<i64>, Option<i64>, String) =
                    (row.get(0), row.get(1), row.get(2), row.get(3), row.get(4));
                let no = no.and_then(|n| u64::try_from(n).ok()).unwrap_or(0);
                if finished.is_none() {
                    // Our own insert, committed before the connection broke.
                    if p == *doc && s == *started {
                        run.store(no, std::sync::atomic::Ordering::SeqCst);
                        return Ok(Ok(()));
                    }
                    return Ok(Err(StoreError::Running(id.clone())));
                }
                if !rescan {
                    return Ok(Err(StoreError::Held {
                        id: id.clone(),
                        run: no,
                        started: burnin_core::store::from_millis(s),
                        state: OperationState::from_name(&state).unwrap_or(OperationState::Failed),
                    }));
                }
            }
            let next: i64 = tx
                .query_one(
                    "SELECT COALESCE(MAX(COALESCE(run_no, 0)), 0) + 1 FROM burnin_operations
                     WHERE operation_id = $1",
                    &[key],
                )
                .await?
                .get(0);
            tx.execute(
                "INSERT INTO burnin_operations
                     (operation_id, run_no, params, state, started_ms, deadline_ms)
                 VALUES ($1, $2, $3, 'collecting', $4, $5)",
                &[key, &next, doc, started, deadline],
            )
            .await?;
            run.store(
                u64::try_from(next).unwrap_or(1),
                std::sync::atomic::Ordering::SeqCst,
            );
            Ok(Ok(()))
        }
        Write::Reply {
            key,
            sn,
            body,
            received,
        } => {
            let n = tx
                .execute(
                    "INSERT INTO burnin_replies (run, sn, body, received_ms)
                     SELECT run, $2, $3, $4 FROM burnin_operations
                      WHERE operation_id = $1 AND finished_ms IS NULL
                     ON CONFLICT (run, sn, md5(body)) DO NOTHING",
                    &[key, sn, body, received],
                )
                .await?;
            if n == 0 {
                // Either this very write again, retried after a lost
                // connection (fine), or no running operation.
                let found = tx
                    .query_opt(
                        "SELECT 1 FROM burnin_operations WHERE operation_id = $1 AND finished_ms IS NULL",
                        &[key],
                    )
                    .await?;
                if found.is_none() {
                    return Ok(Err(running(key)));
                }
            }
            Ok(Ok(()))
        }
        Write::LateReply {
            key,
            sn,
            body,
            received,
        } => {
            let n = tx
                .execute(
                    "INSERT INTO burnin_replies (run, sn, body, received_ms, late)
                     SELECT run, $2, $3, $4, true FROM burnin_operations
                      WHERE operation_id = $1 ORDER BY run DESC LIMIT 1
                     ON CONFLICT (run, sn, md5(body)) DO NOTHING",
                    &[key, sn, body, received],
                )
                .await?;
            if n == 0 {
                let found = tx
                    .query_opt(
                        "SELECT 1 FROM burnin_operations WHERE operation_id = $1",
                        &[key],
                    )
                    .await?;
                if found.is_none() {
                    return Ok(Err(StoreError::Io(format!(
                        "PostgreSQL database {shown}: no operation {key} is recorded"
                    ))));
                }
            }
            Ok(Ok(()))
        }
        Write::Results {
            key,
            results,
            errors,
        } => {
            if key.is_empty() {
                return Ok(Ok(())); // a barrier
            }
            let n = tx
                .execute(
                    "UPDATE burnin_operations SET results = $2, errors = $3, state = 'reporting'
                     WHERE operation_id = $1 AND finished_ms IS NULL",
                    &[key, results, errors],
                )
                .await?;
            Ok(if n == 0 { Err(running(key)) } else { Ok(()) })
        }
        Write::Delivery {
            key,
            kind,
            error,
            at,
            token,
        } => {
            let n = tx
                .execute(
                    "INSERT INTO burnin_deliveries (run, kind, ok, error, at_ms, token)
                     SELECT run, $2, $3, $4, $5, $6 FROM burnin_operations
                      WHERE operation_id = $1 AND finished_ms IS NULL
                     ON CONFLICT (token) DO NOTHING",
                    &[key, kind, &error.is_none(), error, at, token],
                )
                .await?;
            if n == 0 {
                let done = tx
                    .query_opt("SELECT 1 FROM burnin_deliveries WHERE token = $1", &[token])
                    .await?;
                if done.is_none() {
                    return Ok(Err(running(key)));
                }
            }
            Ok(Ok(()))
        }
        Write::Finish {
            key,
            state,
            error,
            finished,
        } => {
            let n = tx
                .execute(
                    "UPDATE burnin_operations SET state = $2, error = $3, finished_ms = $4
                     WHERE run = (SELECT run FROM burnin_operations
                                   WHERE operation_id = $1
                                     AND (finished_ms IS NULL OR finished_ms = $4)
                                   ORDER BY run DESC LIMIT 1)",
                    &[key, state, error, finished],
                )
                .await?;
            Ok(if n == 0 { Err(running(key)) } else { Ok(()) })
        }
    }
}

#[async_trait]
impl OperationReads for PgStore {
    fn describe(&self) -> String {
        self.url().to_owned()
    }
    fn kind(&self) -> &'static str {
        "postgres"
    }
    /// `HOST:PORT/DATABASE` as the URL gives them (no user, password or
    /// parameters), so edges given the same host and port share a label.
    fn label(&self) -> String {
        use tokio_postgres::config::Host;
        let config = &self.inner.config;
        let hosts: Vec<String> = config
            .get_hosts()
            .iter()
            .enumerate()
            .map(|(i, h)| {
                let host = match h {
                    Host::Tcp(name) => name.clone(),
                    Host::Unix(path) => path.display().to_string(),
                };
                let port = config.get_ports().get(i).or(config.get_ports().first());
                port.map_or(host.clone(), |p| format!("{host}:{p}"))
            })
            .collect();
        format!("{}/{}", hosts.join(","), config.get_dbname().unwrap_or(""))
    }
    async fn get(&self, id: &OperationId) -> Result<Option<OperationView>, StoreError> {
        Ok(PgStore::get(self, id).await?)
    }
    async fn find(&self, raw: &str) -> Result<Option<OperationView>, StoreError> {
        Ok(PgStore::find(self, raw).await?)
    }
    async fn list(&self, limit: usize) -> Result<Vec<OperationView>, StoreError> {
        Ok(PgStore::list(self, limit).await?)
    }
    async fn count_by_state(&self) -> Result<Vec<(OperationState, u64)>, StoreError> {
        Ok(PgStore::count_by_state(self).await?)
    }
    async fn unfinished(&self) -> Result<Vec<StoredOperation>, StoreError> {
        Ok(PgStore::unfinished(self).await?)
    }
    async fn unfinished_ids(&self) -> Result<Vec<OperationId>, StoreError> {
        Ok(PgStore::unfinished_ids(self).await?)
    }
    async fn prune(&self, finished_before: Timestamp) -> Result<usize, StoreError> {
        Ok(PgStore::prune(self, finished_before).await?)
    }
    async fn barrier(&self) {
        PgStore::barrier(self).await;
    }
    /// Several edges share a PostgreSQL store; one is active
    /// ([`Leadership`]).
    fn election(&self) -> Option<&dyn Election> {
        Some(self)
    }
}

#[async_trait]
impl Election for PgStore {
    async fn campaign(&self, identity: &str) -> Result<Arc<dyn Candidacy>, StoreError> {
        Ok(Arc::new(Leadership::for_store(self, identity).await?))
    }
    fn retry_interval(&self) -> Duration {
        Leadership::POLL
    }
}

#[async_trait]
impl OperationStore for PgStore {
    async fn begin(
        &self,
        params: &OperationParams,
        started: Timestamp,
        deadline: Timestamp,
    ) -> Result<u64, StoreError> {
        let doc = params_to_json(params).map_err(|e| {
            StoreError::Io(format!(
                "operation {}: parameters: {e}",
                params.operation_id
            ))
        })?;
        let run = Arc::new(std::sync::atomic::AtomicU64::new(0));
        self.write(Write::Begin {
            id: params.operation_id.clone(),
            key: operation_key(&params.operation_id),
            doc,
            started: to_millis(started),
            deadline: to_millis(deadline),
            rescan: params.rescan,
            run: run.clone(),
        })
        .await?;
        Ok(run.load(std::sync::atomic::Ordering::SeqCst))
    }

    async fn reply(
        &self,
        operation: &OperationId,
        sn: &SerialNumber,
        body: &[u8],
        received: Timestamp,
    ) -> Result<(), StoreError> {
        self.write(Write::Reply {
            key: operation_key(operation),
            sn: sn.as_str().to_owned(),
            body: body.to_vec(),
            received: to_millis(received),
        })
        .await
    }

    async fn late_reply(
        &self,
        operation: &OperationId,
        sn: &SerialNumber,
        body: &[u8],
        received: Timestamp,
    ) -> Result<(), StoreError> {
        self.write(Write::LateReply {
            key: operation_key(operation),
            sn: sn.as_str().to_owned(),
            body: body.to_vec(),
            received: to_millis(received),
        })
        .await
    }

    async fn results(
        &self,
        operation: &OperationId,
        results: &[DeviceResult],
        errors: &[String],
    ) -> Result<(), StoreError> {
        let results = serde_json::to_string(results)
            .map_err(|e| StoreError::Io(format!("operation {operation}: results: {e}")))?;
        let errors = serde_json::to_string(errors)
            .map_err(|e| StoreError::Io(format!("operation {operation}: errors: {e}")))?;
        self.write(Write::Results {
            key: operation_key(operation),
            results,
            errors,
        })
        .await
    }

    async fn delivery(
        &self,
        operation: &OperationId,
        kind: PayloadKind,
        outcome: Result<(), &ReportError>,
    ) -> Result<(), StoreError> {
        self.write(Write::Delivery {
            key: operation_key(operation),
            kind: kind.as_str(),
            error: outcome.err().map(ToString::to_string),
            at: to_millis(Timestamp::from_system_time(SystemTime::now())),
            token: fastrand::i64(..),
        })
        .await
    }

    async fn finish(
        &self,
        operation: &OperationId,
        state: OperationState,
        error: Option<&str>,
        finished: Timestamp,
    ) -> Result<(), StoreError> {
        self.write(Write::Finish {
            key: operation_key(operation),
            state: state.as_str(),
            error: error.map(str::to_owned),
            finished: to_millis(finished),
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_checked_and_redacted() {
        assert_eq!(redact_url("postgres://u:pw@h/db"), "postgres://u:***@h/db");
        assert_eq!(redact_url("postgres://u@h/db"), "postgres://u@h/db");
        let e = parse_url("postgres://u:pw@h/db?sslmode=require")
            .unwrap_err()
            .to_string();
        assert!(e.contains("no TLS") && !e.contains("pw"), "{e}");
        let e = parse_url("mysql://u:pw@h/db").unwrap_err().to_string();
        assert!(e.contains("postgres://USER") && !e.contains("pw@"), "{e}");
        parse_url("postgres://postgres@127.0.0.1:5432/x").unwrap();
    }
}
