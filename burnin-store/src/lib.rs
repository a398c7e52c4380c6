//! # burnin-store
//!
//! burnin-edge's durable [`OperationStore`]: one embedded SQLite database
//! (rusqlite with the **bundled** SQLite, so nothing needs installing) that
//! records every operation, every accepted reply and every delivery, so an
//! edge that crashes resumes where it stopped (SPEC §6).
//!
//! ## Design overview
//!
//! | table | one row per | holds |
//! | --- | --- | --- |
//! | `operations` | run of an operation | id (as JSON: `42` and `"42"` are different ids), its run number (`run_no`: 1, 2, … per id), parameters (JSON), state, start, deadline, end, error, and — once collection ended — the results and errors (JSON) |
//! | `replies` | recorded reply | the raw reply body, its serial (one per serial and run, but for a conflicting second board), when it was received |
//! | `deliveries` | delivery attempt of a payload | kind (`log`, `pair`, `directBurn`, `notify`), outcome, error text, time |
//!
//! Payloads are **not** stored as bytes: they are rebuilt from the stored
//! results by `burnin_core::payload`, which is deterministic, so a payload
//! sent again after a restart is byte-identical and carries the same
//! `Idempotency-Key` (`burnin_core::Payload::idempotency_key`, which names
//! the run).
//!
//! **Runs.** An operation id names one run (SPEC §11.3). An id that is not
//! finished cannot be begun again ([`StoreError::Running`], the API's 409);
//! a finished one is refused too ([`StoreError::Held`], naming its last
//! run) unless a rescan is asked for, which begins run *n* + 1. The store
//! keeps every run (nothing is deleted but by `prune`); every query
//! ([`SqliteStore::get`], [`SqliteStore::list`]) shows the latest run of an
//! id, with the list of all its runs. Rows written before runs were
//! numbered read as run 0.
//!
//! **Durability.** Every [`OperationStore`] call is committed before it
//! returns; `burnin-edge` acks a reply to the broker only after its
//! [`OperationStore::reply`] returned. The database runs in WAL mode with
//! `synchronous=FULL` ([`Durability::Full`], the default): each commit is
//! fsynced, so neither a killed process (SIGKILL, OOM, panic) nor a power
//! loss or kernel crash loses a reply that was acked. With
//! [`Durability::Normal`] a killed process still loses nothing (the WAL is
//! written before the commit returns), but a power loss may lose the last
//! commits.
//!
//! **Group commit.** One writer thread (`burnin-store-writer`) does every
//! write. It takes the first waiting call, then every call queued
//! meanwhile — up to [`MAX_BATCH`] — runs them all in **one transaction**,
//! commits (one fsync), and only then answers each caller with its own
//! result. So the calls that arrive while a commit runs share the next
//! one; across every operation sharing the store, as the writer sees all
//! of them. A call that fails (say, a reply for an operation that is not
//! running) fails alone and leaves nothing behind; if the commit itself
//! fails, every call of that transaction gets the error (and its reply
//! stays unacked in the broker). `burnin_core::edge::run` keeps many
//! `reply` calls in flight for this (see *Concurrent replies* in
//! `burnin_core::store`). [`SqliteStore::write_stats`] counts calls and
//! transactions, and with `RUST_LOG=burnin_store=debug` each transaction
//! logs a debug event `state database committed` once it is committed,
//! with `calls`, `replies` (how many were replies), `first_received_ms`
//! (when the earliest of those replies was received, Unix milliseconds),
//! `waited_ms` (how long its oldest call waited for the writer) and
//! `took_ms` (running and committing it): the line's own time is the
//! commit's. The load harness reads them to show when an operation's first
//! reply was received and when it was committed.
//!
//! `cargo bench -p burnin-store --bench commit_rate` measures it on a file
//! on the project's disk (it prints the file system and refuses tmpfs);
//! the raw output is in `burnin-store/benches/results/commit_rate.txt`. On
//! the 2-core development VM (ext4 on virtio, shared with other builds:
//! load average 10 during the run), 1.5 KiB replies, median of 3 runs:
//!
//! | synchronous | in flight | replies/s | replies per commit |
//! | --- | --- | --- | --- |
//! | FULL | 1 (one at a time, no group commit) | 690 (1,260 on an idle machine) | 1 |
//! | FULL | 16 | 6,100 | ~11 |
//! | FULL | 256 (the edge's default prefetch) | **29,800** | ~170 |
//! | FULL | 1,024 | 44,700 | ~550 |
//! | FULL | 4 operations × 256 | 40,000 | ~570 |
//! | NORMAL | 256 | 55,200 | ~160 |
//!
//! FULL stays the default: with group commit it costs about half of
//! NORMAL's rate once replies arrive together, which is when rate matters.
//!
//! **Schema changes** are numbered migrations ([`SCHEMA_VERSION`], kept in
//! `PRAGMA user_version`, and `PRAGMA application_id` marks the file as
//! burnin's). The store never resets or deletes a database: a file that is
//! not SQLite, a SQLite database of another program, or one written by a
//! newer burnin is an [`Error`] naming the file and what to do, and the
//! file is left untouched (a file that does not start with the SQLite
//! header is not even opened by SQLite).
//!
//! **Threads.** rusqlite is blocking. The connection sits behind a mutex;
//! the writer thread takes it for each transaction, so an
//! [`OperationStore`] call never blocks the caller's thread: it queues its
//! work and awaits a oneshot answer (tokio's, which needs no runtime, so
//! plain executors work too). The query methods ([`SqliteStore::get`],
//! [`SqliteStore::list`], [`SqliteStore::unfinished`]) are blocking: call
//! them from `spawn_blocking` in async code (they take the same lock, and
//! are quick). Dropping the last clone of a store lets the writer finish
//! what it took, ends it and closes the database.
//!
//! ## Getting started
//!
//! ```no_run
//! use burnin_core::{OperationId, OperationParams, OperationStore, Timestamp};
//! use burnin_store::SqliteStore;
//!
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! let store = SqliteStore::open("burnin-edge.sqlite3")?;
//! let params = OperationParams::new(OperationId::Number(42));
//! let now = Timestamp::from_unix_seconds(1_800_000_000);
//! store.begin(&params, now, now.saturating_add(params.window)).await?;
//! // … after a crash, on the next start:
//! for stored in store.unfinished()? {
//!     let op = burnin_core::Operation::restore(stored);
//!     // hand `op` to burnin_core::edge::run
//! #   drop(op);
//! }
//! # Ok(()) }
//! ```

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, mpsc};
use std::time::{Duration, Instant, SystemTime};

use async_trait::async_trait;
use burnin_core::store::{
    OperationColumns, OperationRecord, RunSummary, StoredOperation, StoredReply, from_millis,
    operation_key, params_from_json, params_to_json, to_millis,
};
use burnin_core::{
    DeviceResult, OperationId, OperationParams, OperationReads, OperationState, OperationStore,
    PayloadKind, ReportError, SerialNumber, StoreError, Timestamp,
};
use rusqlite::{Connection, OptionalExtension, params};
use tokio::sync::oneshot;

/// The schema version this build writes (`PRAGMA user_version`).
pub const SCHEMA_VERSION: i64 = 2;

/// `PRAGMA application_id` of a burnin state database ("brnn").
const APPLICATION_ID: i64 = 0x6272_6E6E;

/// At most this many calls are committed in one transaction.
pub const MAX_BATCH: usize = 1024;

/// The first 16 bytes of every SQLite database file.
const SQLITE_HEADER: &[u8; 16] = b"SQLite format 3\0";

/// Migration `n` takes the schema from version `n` to `n + 1`.
const MIGRATIONS: &[&str] = &[
    // 0 → 1
    "CREATE TABLE operations (
        run           INTEGER PRIMARY KEY,
        operation_id  TEXT    NOT NULL,
        params        TEXT    NOT NULL,
        state         TEXT    NOT NULL
                      CHECK (state IN ('collecting', 'reporting', 'done', 'failed')),
        started_ms    INTEGER NOT NULL,
        deadline_ms   INTEGER NOT NULL,
        finished_ms   INTEGER,
        error         TEXT,
        results       TEXT,
        errors        TEXT
    );
    CREATE UNIQUE INDEX operations_running ON operations (operation_id)
        WHERE finished_ms IS NULL;
    CREATE INDEX operations_by_id ON operations (operation_id, run);
    CREATE TABLE replies (
        seq           INTEGER PRIMARY KEY,
        run           INTEGER NOT NULL REFERENCES operations (run),
        sn            TEXT    NOT NULL,
        body          BLOB    NOT NULL,
        received_ms   INTEGER NOT NULL,
        UNIQUE (run, sn)
    );
    CREATE TABLE deliveries (
        seq           INTEGER PRIMARY KEY,
        run           INTEGER NOT NULL REFERENCES operations (run),
        kind          TEXT    NOT NULL
                      CHECK (kind IN ('log', 'pair', 'directBurn', 'notify')),
        ok            INTEGER NOT NULL,
        error         TEXT,
        at_ms         INTEGER NOT NULL
    );
    CREATE INDEX deliveries_by_run ON deliveries (run, seq);",
    // 1 → 2: runs are numbered per operation id (`run_no`; NULL for rows
    // written before, which read as run 0 and keep their old idempotency
    // keys), and a serial may have several replies in one run (a second
    // board answering with the same serial is recorded as a conflict), so
    // `replies` loses its UNIQUE (run, sn); a reply that came after its run
    // stopped collecting is kept too, marked `late`.
    "ALTER TABLE operations ADD COLUMN run_no INTEGER;
    CREATE TABLE replies_v2 (
        seq           INTEGER PRIMARY KEY,
        run           INTEGER NOT NULL REFERENCES operations (run),
        sn            TEXT    NOT NULL,
        body          BLOB    NOT NULL,
        received_ms   INTEGER NOT NULL,
        late          INTEGER NOT NULL DEFAULT 0
    );
    INSERT INTO replies_v2 (seq, run, sn, body, received_ms)
        SELECT seq, run, sn, body, received_ms FROM replies;
    DROP TABLE replies;
    ALTER TABLE replies_v2 RENAME TO replies;
    CREATE INDEX replies_by_run ON replies (run, seq);",
];

/// A store failure, naming the database file and what to do.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The file is not a SQLite database (or is damaged). It was not changed.
    #[error(
        "state database {path} cannot be used: {detail}. The file was left untouched; \
         move it away (or restore it from a backup) or give another --state-db FILE"
    )]
    NotADatabase {
        /// The file.
        path: String,
        /// What is wrong with it.
        detail: String,
    },
    /// The file is a SQLite database of another program.
    #[error(
        "state database {path} is a SQLite database but not burnin's ({detail}). \
         The file was left untouched; give another --state-db FILE"
    )]
    Foreign {
        /// The file.
        path: String,
        /// Why it is not burnin's.
        detail: String,
    },
    /// The file was written by a newer burnin.
    #[error(
        "state database {path} has schema version {found}, newer than the {known} this \
         program knows. The file was left untouched; run the newer burnin-edge that wrote it, \
         or give another --state-db FILE"
    )]
    NewerSchema {
        /// The file.
        path: String,
        /// Its version.
        found: i64,
        /// The newest version this build knows.
        known: i64,
    },
    /// SQLite failed while doing `action`.
    #[error("state database {path}: {action} failed: {source}")]
    Sqlite {
        /// The file.
        path: String,
        /// What was being done.
        action: String,
        /// SQLite's error.
        #[source]
        source: rusqlite::Error,
    },
    /// This process may not write the file, a `-wal`/`-shm` file beside it,
    /// or its folder: a question of ownership or permissions (or a
    /// read-only file system), not a damaged file. Nothing was changed.
    #[error(
        "state database {path}: this process may not write {what}: {detail}. \
         It is a permissions problem, not a damaged file (it was left untouched); {fix}"
    )]
    NotWritable {
        /// The database file.
        path: String,
        /// What cannot be written: the file, its `-wal`/`-shm`, its folder.
        what: String,
        /// The owner and mode found, and who this process runs as.
        detail: String,
        /// What to do.
        fix: String,
    },
    /// A stored row could not be read back.
    #[error("state database {path}: {detail}")]
    BadRecord {
        /// The file.
        path: String,
        /// What is wrong.
        detail: String,
    },
    /// The writer thread could not be started.
    #[error("state database {path}: starting its writer thread failed: {source}")]
    Thread {
        /// The file.
        path: String,
        /// The OS's error.
        #[source]
        source: std::io::Error,
    },
}

impl From<Error> for StoreError {
    fn from(e: Error) -> Self {
        StoreError::Io(e.to_string())
    }
}

/// How hard each commit is pushed to the disk; see the [crate docs](crate).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Durability {
    /// `synchronous=FULL`: every commit is fsynced; survives power loss.
    #[default]
    Full,
    /// `synchronous=NORMAL`: survives a killed process, not a power loss.
    Normal,
}

/// What the store knows of one operation (shared with the PostgreSQL store).
pub use burnin_core::store::{DeliveryRecord, OperationView};

/// The durable operation store; see the [crate docs](crate).
#[derive(Clone)]
pub struct SqliteStore {
    /// Declared first so it drops first: the writer finishes, then the
    /// connection closes.
    writer: Arc<Writer>,
    inner: Arc<Inner>,
}

/// The writer thread's queue and handle. Dropping the last one closes the
/// queue and waits for the thread to commit what it took and end, so the
/// database is closed when the last [`SqliteStore`] clone is gone.
struct Writer {
    queue: Option<mpsc::Sender<Job>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for Writer {
    fn drop(&mut self) {
        drop(self.queue.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

struct Inner {
    conn: Mutex<Connection>,
    path: String,
    /// Whether runs are numbered by their start time (an in-memory
    /// database, which forgets earlier runs when the process ends).
    runs_by_time: bool,
    /// Calls the writer took, and the transactions it ran for them.
    calls: AtomicU64,
    transactions: AtomicU64,
}

/// What the writer did so far; see [`SqliteStore::write_stats`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct WriteStats {
    /// [`OperationStore`] calls (and barriers) written.
    pub calls: u64,
    /// Transactions they were committed in (one per group commit).
    pub transactions: u64,
}

/// The work of one [`OperationStore`] call, run inside the batch's
/// transaction (under a savepoint of its own).
type Work = Box<dyn FnOnce(&Connection, &str) -> Result<(), StoreError> + Send>;

/// One call waiting for the writer: its work, and where its caller waits.
struct Job {
    work: Work,
    done: oneshot::Sender<Result<(), StoreError>>,
    /// When it was queued.
    queued: Instant,
    /// When the reply it records was received, for a reply.
    received: Option<Timestamp>,
}

impl fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SqliteStore")
            .field("path", &self.inner.path)
            .finish()
    }
}

impl SqliteStore {
    /// Opens (creating if needed) the database at `path` with
    /// [`Durability::Full`], migrating its schema to [`SCHEMA_VERSION`].
    ///
    /// # Errors
    /// A file that is not a burnin state database, or one of a newer
    /// schema: the error names the file and what to do; the file is left
    /// as it was.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, Error> {
        Self::open_with(path, Durability::Full)
    }

    /// Like [`open`](Self::open) with a chosen [`Durability`].
    ///
    /// # Errors
    /// As [`open`](Self::open).
    pub fn open_with(path: impl AsRef<Path>, durability: Durability) -> Result<Self, Error> {
        let path: PathBuf = path.as_ref().to_path_buf();
        let shown = path.display().to_string();
        check_access(&path, &shown)?;
        check_header(&path, &shown)?;
        let conn = Connection::open(&path).map_err(|e| Error::Sqlite {
            path: shown.clone(),
            action: "opening it (does its folder exist, and may this user write there?)".into(),
            source: e,
        })?;
        Self::setup(conn, shown, durability, true, false)
    }

    /// A database in memory: the same code paths, nothing kept. Runs are
    /// numbered 1, 2, … as in a file; for a one-shot process see
    /// [`in_memory_one_shot`](Self::in_memory_one_shot).
    ///
    /// # Errors
    /// If SQLite cannot allocate it.
    pub fn in_memory() -> Result<Self, Error> {
        Self::memory(false)
    }

    /// A database in memory for a one-shot process (`burnin-edge scan`
    /// without `--state-db`). It cannot know the runs of earlier processes,
    /// so it numbers each run by its start time in milliseconds since the
    /// Unix epoch (as `burnin_core::NoStore` does): agents answer every
    /// run, and the idempotency keys of two one-shot scans of one id never
    /// collide.
    ///
    /// # Errors
    /// If SQLite cannot allocate it.
    pub fn in_memory_one_shot() -> Result<Self, Error> {
        Self::memory(true)
    }

    fn memory(runs_by_time: bool) -> Result<Self, Error> {
        let conn = Connection::open_in_memory().map_err(|e| Error::Sqlite {
            path: ":memory:".into(),
            action: "opening an in-memory database".into(),
            source: e,
        })?;
        Self::setup(
            conn,
            ":memory:".into(),
            Durability::Normal,
            false,
            runs_by_time,
        )
    }

    fn setup(
        mut conn: Connection,
        path: String,
        durability: Durability,
        on_disk: bool,
        runs_by_time: bool,
    ) -> Result<Self, Error> {
        let sql = |action: &str| {
            let path = path.clone();
            let action = action.to_owned();
            move |source| Error::Sqlite {
                path,
                action,
                source,
            }
        };
        // Read-only checks first: a file we must not touch is refused
        // before anything is written to it.
        let probe = (|| -> rusqlite::Result<(i64, i64, Vec<String>)> {
            let version: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
            let app: i64 = conn.query_row("PRAGMA application_id", [], |r| r.get(0))?;
            let mut stmt = conn.prepare(
                "SELECT name FROM sqlite_master WHERE name NOT LIKE 'sqlite_%' ORDER BY name",
            )?;
            let names = stmt
                .query_map([], |r| r.get::<_, String>(0))?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            Ok((version, app, names))
        })();
        let (version, app, names) = probe.map_err(|e| Error::NotADatabase {
            path: path.clone(),
            detail: format!("SQLite cannot read it: {e}"),
        })?;
        if version > SCHEMA_VERSION {
            return Err(Error::NewerSchema {
                path,
                found: version,
                known: SCHEMA_VERSION,
            });
        }
        if version > 0 && app != APPLICATION_ID {
            return Err(Error::Foreign {
                path,
                detail: format!("its application id is {app:#x}, burnin's is {APPLICATION_ID:#x}"),
            });
        }
        if version == 0 && !names.is_empty() {
            let shown: Vec<_> = names.iter().take(5).map(String::as_str).collect();
            return Err(Error::Foreign {
                path,
                detail: format!("it holds {} but no burnin schema", shown.join(", ")),
            });
        }
        conn.busy_timeout(Duration::from_secs(10))
            .map_err(sql("setting the busy timeout"))?;
        if on_disk {
            let mode: String = conn
                .query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))
                .map_err(sql("switching to WAL mode"))?;
            if !mode.eq_ignore_ascii_case("wal") {
                return Err(Error::BadRecord {
                    path,
                    detail: format!(
                        "SQLite refused WAL mode (journal mode stays {mode}); put the file on a local file system"
                    ),
                });
            }
        }
        let sync = match durability {
            Durability::Full => "PRAGMA synchronous = FULL",
            Durability::Normal => "PRAGMA synchronous = NORMAL",
        };
        conn.execute_batch(sync)
            .map_err(sql("setting synchronous"))?;
        for (from, migration) in MIGRATIONS.iter().enumerate().skip(version as usize) {
            let to = from + 1;
            let tx = conn
                .transaction()
                .map_err(sql(&format!("starting migration {from} → {to}")))?;
            tx.execute_batch(migration)
                .map_err(sql(&format!("migration {from} → {to}")))?;
            tx.execute_batch(&format!(
                "PRAGMA user_version = {to}; PRAGMA application_id = {APPLICATION_ID};"
            ))
            .map_err(sql(&format!("recording schema version {to}")))?;
            tx.commit()
                .map_err(sql(&format!("committing migration {from} → {to}")))?;
        }
        let inner = Arc::new(Inner {
            conn: Mutex::new(conn),
            path,
            runs_by_time,
            calls: AtomicU64::new(0),
            transactions: AtomicU64::new(0),
        });
        let (tx, rx) = mpsc::channel();
        let writer = inner.clone();
        let thread = std::thread::Builder::new()
            .name("burnin-store-writer".into())
            .spawn(move || write_loop(&writer, &rx))
            .map_err(|source| Error::Thread {
                path: inner.path.clone(),
                source,
            })?;
        Ok(SqliteStore {
            writer: Arc::new(Writer {
                queue: Some(tx),
                thread: Some(thread),
            }),
            inner,
        })
    }

    /// The file (or `:memory:`).
    pub fn path(&self) -> &str {
        &self.inner.path
    }

    /// How many calls the writer committed, in how many transactions
    /// (`calls / transactions` is the mean group size).
    pub fn write_stats(&self) -> WriteStats {
        WriteStats {
            calls: self.inner.calls.load(Ordering::Relaxed),
            transactions: self.inner.transactions.load(Ordering::Relaxed),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Connection> {
        self.inner.lock()
    }

    /// The latest run of operation `id`, if any.
    ///
    /// # Errors
    /// If the database cannot be read.
    pub fn get(&self, id: &OperationId) -> Result<Option<OperationView>, Error> {
        let conn = self.lock();
        let run: Option<i64> = conn
            .query_row(
                "SELECT run FROM operations WHERE operation_id = ?1 ORDER BY run DESC LIMIT 1",
                [operation_key(id)],
                |r| r.get(0),
            )
            .optional()
            .map_err(|e| self.sql("looking an operation up", e))?;
        run.map(|run| self.view(&conn, run)).transpose()
    }

    /// Finds an operation by an id written as text (a URL path segment):
    /// digits only (no leading zero, fitting `u64`) are tried as the number
    /// first, then as the string; anything else is the string. So
    /// `/scans/42` finds operation `42` if there is one, else `"42"`.
    ///
    /// # Errors
    /// If the database cannot be read.
    pub fn find(&self, raw: &str) -> Result<Option<OperationView>, Error> {
        if let Ok(id @ OperationId::Number(_)) = OperationId::from_cli(raw)
            && let Some(v) = self.get(&id)?
        {
            return Ok(Some(v));
        }
        match OperationId::text(raw) {
            Ok(id) => self.get(&id),
            Err(_) => Ok(None),
        }
    }

    /// The `limit` most recently begun operations (latest run of each id),
    /// newest first.
    ///
    /// # Errors
    /// If the database cannot be read.
    pub fn list(&self, limit: usize) -> Result<Vec<OperationView>, Error> {
        let conn = self.lock();
        let runs: Vec<i64> = (|| {
            let mut stmt = conn.prepare(
                "SELECT MAX(run) AS last FROM operations GROUP BY operation_id
                 ORDER BY last DESC LIMIT ?1",
            )?;
            stmt.query_map([i64::try_from(limit).unwrap_or(i64::MAX)], |r| r.get(0))?
                .collect::<rusqlite::Result<Vec<i64>>>()
        })()
        .map_err(|e| self.sql("listing operations", e))?;
        runs.into_iter().map(|run| self.view(&conn, run)).collect()
    }

    /// Deletes every operation that finished before `finished_before`,
    /// with its replies and deliveries (`serve --keep`); running operations
    /// are never touched. Returns how many runs were deleted.
    ///
    /// # Errors
    /// If the database cannot be written.
    pub fn prune(&self, finished_before: Timestamp) -> Result<usize, Error> {
        let cutoff = to_millis(finished_before);
        let mut conn = self.lock();
        let deleted = (|| {
            let tx = conn.transaction()?;
            let old = "SELECT run FROM operations
                       WHERE finished_ms IS NOT NULL AND finished_ms < ?1";
            tx.execute(
                &format!("DELETE FROM replies WHERE run IN ({old})"),
                [cutoff],
            )?;
            tx.execute(
                &format!("DELETE FROM deliveries WHERE run IN ({old})"),
                [cutoff],
            )?;
            let n = tx.execute(
                "DELETE FROM operations WHERE finished_ms IS NOT NULL AND finished_ms < ?1",
                [cutoff],
            )?;
            tx.commit()?;
            Ok(n)
        })()
        .map_err(|e: rusqlite::Error| self.sql("pruning finished operations", e))?;
        Ok(deleted)
    }

    /// How many operations (latest run of each id) are in each state.
    ///
    /// # Errors
    /// If the database cannot be read.
    pub fn count_by_state(&self) -> Result<Vec<(OperationState, u64)>, Error> {
        let conn = self.lock();
        let rows = (|| {
            let mut stmt = conn.prepare(
                "SELECT o.state, COUNT(*) FROM operations o
                 JOIN (SELECT MAX(run) AS run FROM operations GROUP BY operation_id) l
                   ON o.run = l.run
                 GROUP BY o.state",
            )?;
            stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))?
                .collect::<rusqlite::Result<Vec<_>>>()
        })()
        .map_err(|e| self.sql("counting operations", e))?;
        Ok(rows
            .into_iter()
            .filter_map(|(s, n)| {
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
    pub fn unfinished(&self) -> Result<Vec<StoredOperation>, Error> {
        let conn = self.lock();
        let runs: Vec<i64> = (|| {
            let mut stmt =
                conn.prepare("SELECT run FROM operations WHERE finished_ms IS NULL ORDER BY run")?;
            stmt.query_map([], |r| r.get(0))?
                .collect::<rusqlite::Result<Vec<i64>>>()
        })()
        .map_err(|e| self.sql("listing unfinished operations", e))?;
        let mut out = Vec::with_capacity(runs.len());
        for run in runs {
            let row = self.row(&conn, run)?;
            let replies = (|| {
                let mut stmt = conn.prepare(
                    "SELECT body, received_ms FROM replies WHERE run = ?1 AND late = 0 ORDER BY seq",
                )?;
                stmt.query_map([run], |r| {
                    Ok(StoredReply {
                        body: r.get(0)?,
                        received: from_millis(r.get(1)?),
                    })
                })?
                .collect::<rusqlite::Result<Vec<_>>>()
            })()
            .map_err(|e| self.sql("reading replies", e))?;
            out.push(row.into_stored(replies, self.deliveries(&conn, run)?));
        }
        Ok(out)
    }

    /// Waits until every call made before this one is committed (for a
    /// clean shutdown).
    pub async fn barrier(&self) {
        let _ = self.write(|_, _| Ok(())).await;
    }

    fn sql(&self, action: &str, source: rusqlite::Error) -> Error {
        Error::Sqlite {
            path: self.inner.path.clone(),
            action: action.to_owned(),
            source,
        }
    }

    fn bad(&self, run: i64, detail: impl fmt::Display) -> Error {
        Error::BadRecord {
            path: self.inner.path.clone(),
            detail: format!("operation row {run}: {detail}"),
        }
    }

    fn row(&self, conn: &Connection, run: i64) -> Result<OperationRecord, Error> {
        type Raw = (
            String,
            String,
            i64,
            i64,
            Option<i64>,
            Option<String>,
            Option<String>,
            Option<String>,
            Option<i64>,
        );
        let raw: Raw = conn
            .query_row(
                "SELECT params, state, started_ms, deadline_ms, finished_ms, error, results, errors,
                        run_no
                 FROM operations WHERE run = ?1",
                [run],
                |r| {
                    Ok((
                        r.get(0)?,
                        r.get(1)?,
                        r.get(2)?,
                        r.get(3)?,
                        r.get(4)?,
                        r.get(5)?,
                        r.get(6)?,
                        r.get(7)?,
                        r.get(8)?,
                    ))
                },
            )
            .map_err(|e| self.sql("reading an operation", e))?;
        let (params, state, started, deadline, finished, error, results, errors, run_no) = raw;
        let params = params_from_json(&params)
            .map_err(|e| self.bad(run, format_args!("parameters: {e}")))?;
        OperationColumns {
            run: run_no,
            state,
            started_ms: started,
            deadline_ms: deadline,
            finished_ms: finished,
            error,
            results,
            errors,
        }
        .decode(params)
        .map_err(|detail| self.bad(run, detail))
    }

    fn deliveries(&self, conn: &Connection, run: i64) -> Result<Vec<DeliveryRecord>, Error> {
        let raw = (|| {
            let mut stmt = conn
                .prepare("SELECT kind, error, at_ms FROM deliveries WHERE run = ?1 ORDER BY seq")?;
            stmt.query_map([run], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, Option<String>>(1)?,
                    r.get::<_, i64>(2)?,
                ))
            })?
            .collect::<rusqlite::Result<Vec<_>>>()
        })()
        .map_err(|e| self.sql("reading deliveries", e))?;
        raw.into_iter()
            .map(|(kind, error, at)| {
                DeliveryRecord::from_columns(&kind, error, at)
                    .map_err(|detail| self.bad(run, detail))
            })
            .collect()
    }

    fn view(&self, conn: &Connection, run: i64) -> Result<OperationView, Error> {
        let row = self.row(conn, run)?;
        let replies: (i64, i64) = conn
            .query_row(
                "SELECT COUNT(*) FILTER (WHERE late = 0), COUNT(*) FILTER (WHERE late <> 0)
                 FROM replies WHERE run = ?1",
                [run],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .map_err(|e| self.sql("counting replies", e))?;
        Ok(row.into_view(replies, self.deliveries(conn, run)?, self.runs(conn, run)?))
    }

    /// Every run of the id of row `run`, oldest first.
    fn runs(&self, conn: &Connection, run: i64) -> Result<Vec<RunSummary>, Error> {
        let raw = (|| {
            let mut stmt = conn.prepare_cached(
                "SELECT run_no, state, started_ms, finished_ms FROM operations
                 WHERE operation_id = (SELECT operation_id FROM operations WHERE run = ?1)
                 ORDER BY run",
            )?;
            stmt.query_map([run], |r| {
                Ok((
                    r.get::<_, Option<i64>>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, i64>(2)?,
                    r.get::<_, Option<i64>>(3)?,
                ))
            })?
            .collect::<rusqlite::Result<Vec<_>>>()
        })()
        .map_err(|e| self.sql("listing runs", e))?;
        raw.into_iter()
            .map(|(no, state, started, finished)| {
                Ok(RunSummary {
                    run: no.and_then(|n| u64::try_from(n).ok()).unwrap_or(0),
                    state: OperationState::from_name(&state)
                        .ok_or_else(|| self.bad(run, format_args!("unknown state {state:?}")))?,
                    started: from_millis(started),
                    finished: finished.map(from_millis),
                })
            })
            .collect()
    }

    /// Queues `work` for the writer thread and waits until the
    /// transaction it joined is committed (see *Group commit* in the
    /// [crate docs](crate)). Works on any executor: the caller only awaits a
    /// oneshot channel. `work` must make at most one change (one writing
    /// statement; reads are free): see [`commit_batch`].
    async fn write<F>(&self, work: F) -> Result<(), StoreError>
    where
        F: FnOnce(&Connection, &str) -> Result<(), StoreError> + Send + 'static,
    {
        self.write_reply(None, work).await
    }

    /// [`write`](Self::write) for a call that records a reply `received`
    /// then (for the writer's debug event).
    async fn write_reply<F>(&self, received: Option<Timestamp>, work: F) -> Result<(), StoreError>
    where
        F: FnOnce(&Connection, &str) -> Result<(), StoreError> + Send + 'static,
    {
        let stopped = || {
            StoreError::Io(format!(
                "state database {}: its writer thread stopped; restart burnin-edge",
                self.inner.path
            ))
        };
        let (done, answer) = oneshot::channel();
        self.writer
            .queue
            .as_ref()
            .ok_or_else(stopped)?
            .send(Job {
                work: Box::new(work),
                done,
                queued: Instant::now(),
                received,
            })
            .map_err(|_| stopped())?;
        answer.await.map_err(|_| stopped())?
    }
}

/// The writer thread: takes the first waiting call, then every call queued
/// meanwhile (up to [`MAX_BATCH`]), commits them in one transaction and
/// answers each caller. Ends when every [`SqliteStore`] clone is dropped.
fn write_loop(inner: &Inner, queue: &mpsc::Receiver<Job>) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    while let Ok(first) = queue.recv() {
        // Lock first, then drain: calls queued while a reader held the
        // connection join this transaction too.
        let mut conn = inner.lock();
        batch.push(first);
        while batch.len() < MAX_BATCH {
            match queue.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        inner.calls.fetch_add(batch.len() as u64, Ordering::Relaxed);
        inner.transactions.fetch_add(1, Ordering::Relaxed);
        if tracing::enabled!(tracing::Level::DEBUG) {
            let began = Instant::now();
            let calls = batch.len();
            let waited = batch
                .iter()
                .map(|j| began.saturating_duration_since(j.queued))
                .max()
                .unwrap_or_default();
            let received = batch.iter().filter_map(|j| j.received);
            let replies = received.clone().count();
            let first_received_ms = received.min().map(to_millis);
            commit_batch(&mut conn, &inner.path, &mut batch);
            tracing::debug!(
                calls,
                replies,
                first_received_ms,
                waited_ms = waited.as_secs_f64() * 1e3,
                took_ms = began.elapsed().as_secs_f64() * 1e3,
                "state database committed"
            );
        } else {
            commit_batch(&mut conn, &inner.path, &mut batch);
        }
    }
}

/// Runs every job in one transaction, commits once, then answers: each job
/// its own result if the commit succeeded, the commit's error to all
/// otherwise.
///
/// Every job makes at most **one** change (one writing statement), so a
/// job that fails leaves no trace without a savepoint of its own: SQLite
/// undoes a failed statement and keeps the transaction (savepoints cost
/// about a third of a small job). If an error ended the whole transaction
/// (SQLite does that on a full disk, an I/O error or out of memory), every
/// job of the batch is answered with that error, none is committed.
fn commit_batch(conn: &mut Connection, path: &str, batch: &mut Vec<Job>) {
    let count = batch.len();
    let tx = match conn.transaction() {
        Ok(tx) => tx,
        Err(e) => {
            for job in batch.drain(..) {
                let _ = job.done.send(Err(io(path, "starting a transaction", &e)));
            }
            return;
        }
    };
    let mut answers = Vec::with_capacity(count);
    let mut aborted = None;
    for Job { work, done, .. } in batch.drain(..) {
        if aborted.is_some() {
            answers.push((done, Ok(())));
            continue;
        }
        let result = work(&tx, path);
        if let Err(e) = &result
            && tx.is_autocommit()
        {
            aborted = Some(e.to_string());
        }
        answers.push((done, result));
    }
    let committed = match aborted {
        Some(e) => Err(StoreError::Io(format!(
            "{e} (the transaction of {count} records was rolled back; none was recorded)"
        ))),
        None => tx
            .commit()
            .map_err(|e| io(path, &format!("committing {count} records"), e)),
    };
    for (done, result) in answers {
        let _ = done.send(match &committed {
            Ok(()) => result,
            Err(e) => Err(e.clone()),
        });
    }
}

impl Inner {
    fn lock(&self) -> MutexGuard<'_, Connection> {
        self.conn.lock().unwrap_or_else(|e| e.into_inner())
    }
}

fn io(path: &str, action: &str, e: impl fmt::Display) -> StoreError {
    StoreError::Io(format!("state database {path}: {action} failed: {e}"))
}

/// The run of the unfinished operation `id`.
fn running(conn: &Connection, path: &str, id: &OperationId) -> Result<i64, StoreError> {
    conn.prepare_cached(
        "SELECT run FROM operations WHERE operation_id = ?1 AND finished_ms IS NULL",
    )
    .and_then(|mut stmt| stmt.query_row([operation_key(id)], |r| r.get(0)).optional())
    .map_err(|e| io(path, "looking the operation up", e))?
    .ok_or_else(|| {
        StoreError::Io(format!(
            "state database {path}: no running operation {id} to record into"
        ))
    })
}

/// Runs a blocking read on tokio's blocking pool (the reads take the
/// connection's lock, which the writer thread holds while it commits).
async fn off_thread<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, Error> + Send + 'static,
) -> Result<T, StoreError> {
    match tokio::task::spawn_blocking(f).await {
        Ok(r) => r.map_err(StoreError::from),
        Err(e) => Err(StoreError::Io(format!(
            "the state database task failed: {e}"
        ))),
    }
}

#[async_trait]
impl OperationReads for SqliteStore {
    fn describe(&self) -> String {
        self.path().to_owned()
    }
    fn kind(&self) -> &'static str {
        "sqlite"
    }
    async fn get(&self, id: &OperationId) -> Result<Option<OperationView>, StoreError> {
        let (s, id) = (self.clone(), id.clone());
        off_thread(move || s.get(&id)).await
    }
    async fn find(&self, raw: &str) -> Result<Option<OperationView>, StoreError> {
        let (s, raw) = (self.clone(), raw.to_owned());
        off_thread(move || s.find(&raw)).await
    }
    async fn list(&self, limit: usize) -> Result<Vec<OperationView>, StoreError> {
        let s = self.clone();
        off_thread(move || s.list(limit)).await
    }
    async fn count_by_state(&self) -> Result<Vec<(OperationState, u64)>, StoreError> {
        let s = self.clone();
        off_thread(move || s.count_by_state()).await
    }
    async fn unfinished(&self) -> Result<Vec<StoredOperation>, StoreError> {
        let s = self.clone();
        off_thread(move || s.unfinished()).await
    }
    async fn prune(&self, finished_before: Timestamp) -> Result<usize, StoreError> {
        let s = self.clone();
        off_thread(move || s.prune(finished_before)).await
    }
    async fn barrier(&self) {
        SqliteStore::barrier(self).await;
    }
}

#[async_trait]
impl OperationStore for SqliteStore {
    async fn begin(
        &self,
        params: &OperationParams,
        started: Timestamp,
        deadline: Timestamp,
    ) -> Result<u64, StoreError> {
        let id = params.operation_id.clone();
        let rescan = params.rescan;
        let doc = params_to_json(params)
            .map_err(|e| StoreError::Io(format!("operation {id}: parameters: {e}")))?;
        let numbered = Arc::new(Mutex::new(0u64));
        let out = numbered.clone();
        let by_time = self.inner.runs_by_time.then(|| to_millis(started));
        self.write(move |tx, path| {
            let key = operation_key(&id);
            let latest: Option<(Option<i64>, String, i64, Option<i64>)> = tx
                .query_row(
                    "SELECT run_no, state, started_ms, finished_ms FROM operations
                     WHERE operation_id = ?1 ORDER BY run DESC LIMIT 1",
                    [&key],
                    |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
                )
                .optional()
                .map_err(|e| io(path, "looking the operation up", e))?;
            if let Some((run_no, state, started_ms, finished)) = latest {
                if finished.is_none() {
                    return Err(StoreError::Running(id));
                }
                if !rescan {
                    return Err(StoreError::Held {
                        id,
                        run: run_no.and_then(|n| u64::try_from(n).ok()).unwrap_or(0),
                        started: from_millis(started_ms),
                        state: OperationState::from_name(&state).unwrap_or(OperationState::Failed),
                    });
                }
            }
            let next: i64 = tx
                .query_row(
                    "SELECT COALESCE(MAX(COALESCE(run_no, 0)), 0) + 1 FROM operations
                     WHERE operation_id = ?1",
                    [&key],
                    |r| r.get(0),
                )
                .map_err(|e| io(path, "numbering the run", e))?;
            let next = by_time.map_or(next, |ms| next.max(ms));
            tx.execute(
                "INSERT INTO operations
                     (operation_id, run_no, params, state, started_ms, deadline_ms)
                 VALUES (?1, ?2, ?3, 'collecting', ?4, ?5)",
                params![key, next, doc, to_millis(started), to_millis(deadline)],
            )
            .map_err(|e| io(path, "recording a new operation", e))?;
            *out.lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner) =
                u64::try_from(next).unwrap_or(1);
            Ok(())
        })
        .await?;
        let run = *numbered
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        Ok(run)
    }

    async fn reply(
        &self,
        operation: &OperationId,
        sn: &SerialNumber,
        body: &[u8],
        received: Timestamp,
    ) -> Result<(), StoreError> {
        let (id, sn, body) = (operation.clone(), sn.clone(), body.to_vec());
        self.write_reply(Some(received), move |conn, path| {
            let run = running(conn, path, &id)?;
            conn.prepare_cached(
                "INSERT INTO replies (run, sn, body, received_ms) VALUES (?1, ?2, ?3, ?4)",
            )
            .and_then(|mut stmt| stmt.execute(params![run, sn.as_str(), body, to_millis(received)]))
            .map_err(|e| io(path, &format!("recording the reply of {sn}"), e))?;
            Ok(())
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
        let (id, sn, body) = (operation.clone(), sn.clone(), body.to_vec());
        self.write(move |conn, path| {
            let run: i64 = conn
                .query_row(
                    "SELECT run FROM operations WHERE operation_id = ?1 ORDER BY run DESC LIMIT 1",
                    [operation_key(&id)],
                    |r| r.get(0),
                )
                .optional()
                .map_err(|e| io(path, "looking the operation up", e))?
                .ok_or_else(|| {
                    StoreError::Io(format!(
                        "state database {path}: no operation {id} is recorded"
                    ))
                })?;
            conn.execute(
                "INSERT INTO replies (run, sn, body, received_ms, late) VALUES (?1, ?2, ?3, ?4, 1)",
                params![run, sn.as_str(), body, to_millis(received)],
            )
            .map_err(|e| io(path, &format!("recording the late reply of {sn}"), e))?;
            Ok(())
        })
        .await
    }

    async fn results(
        &self,
        operation: &OperationId,
        results: &[DeviceResult],
        errors: &[String],
    ) -> Result<(), StoreError> {
        let id = operation.clone();
        let results = serde_json::to_string(results)
            .map_err(|e| StoreError::Io(format!("operation {id}: results: {e}")))?;
        let errors = serde_json::to_string(errors)
            .map_err(|e| StoreError::Io(format!("operation {id}: errors: {e}")))?;
        self.write(move |conn, path| {
            let run = running(conn, path, &id)?;
            conn.execute(
                "UPDATE operations SET results = ?2, errors = ?3, state = 'reporting' WHERE run = ?1",
                params![run, results, errors],
            )
            .map_err(|e| io(path, "recording the results", e))?;
            Ok(())
        })
        .await
    }

    async fn delivery(
        &self,
        operation: &OperationId,
        kind: PayloadKind,
        outcome: Result<(), &ReportError>,
    ) -> Result<(), StoreError> {
        let id = operation.clone();
        let error = outcome.err().map(ToString::to_string);
        let now = to_millis(Timestamp::from_system_time(SystemTime::now()));
        self.write(move |conn, path| {
            let run = running(conn, path, &id)?;
            conn.execute(
                "INSERT INTO deliveries (run, kind, ok, error, at_ms) VALUES (?1, ?2, ?3, ?4, ?5)",
                params![run, kind.as_str(), error.is_none(), error, now],
            )
            .map_err(|e| io(path, &format!("recording the {kind} delivery"), e))?;
            Ok(())
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
        let id = operation.clone();
        let error = error.map(str::to_owned);
        self.write(move |conn, path| {
            let run = running(conn, path, &id)?;
            conn.execute(
                "UPDATE operations SET state = ?2, error = ?3, finished_ms = ?4 WHERE run = ?1",
                params![run, state.as_str(), error, to_millis(finished)],
            )
            .map_err(|e| io(path, "recording the end of the operation", e))?;
            Ok(())
        })
        .await
    }
}

/// Refuses, without opening it with SQLite, a non-empty file that does not
/// start with the SQLite header.
fn check_header(path: &Path, shown: &str) -> Result<(), Error> {
    use std::io::Read;
    let mut file = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => {
            return Err(Error::NotADatabase {
                path: shown.into(),
                detail: format!("it cannot be read: {e}"),
            });
        }
    };
    let mut head = Vec::with_capacity(16);
    if let Err(e) = file.by_ref().take(16).read_to_end(&mut head) {
        return Err(Error::NotADatabase {
            path: shown.into(),
            detail: format!("it cannot be read: {e}"),
        });
    }
    if head.is_empty() || head == SQLITE_HEADER {
        return Ok(());
    }
    Err(Error::NotADatabase {
        path: shown.into(),
        detail: "it is not a SQLite database (its first bytes are not the SQLite header)".into(),
    })
}

/// Refuses a state database this process may not write — the file, a
/// `-wal` or `-shm` file beside it, or the folder SQLite creates those in —
/// with [`Error::NotWritable`], before SQLite says something vaguer
/// ("attempt to write a readonly database", "unable to open"). Nothing is
/// changed: the file is opened for writing without writing, and the
/// folder is tried with an empty file created and removed at once.
fn check_access(path: &Path, shown: &str) -> Result<(), Error> {
    use std::io::ErrorKind;
    let with = |suffix: &str| {
        let mut p = path.as_os_str().to_owned();
        p.push(suffix);
        PathBuf::from(p)
    };
    let (wal, shm) = (with("-wal"), with("-shm"));
    for (p, what) in [
        (path, "the file"),
        (wal.as_path(), "its -wal file"),
        (shm.as_path(), "its -shm file"),
    ] {
        match std::fs::OpenOptions::new().read(true).write(true).open(p) {
            Err(e)
                if matches!(
                    e.kind(),
                    ErrorKind::PermissionDenied | ErrorKind::ReadOnlyFilesystem
                ) =>
            {
                return Err(not_writable(shown, p, what, &e));
            }
            _ => {}
        }
    }
    if wal.exists() && shm.exists() {
        return Ok(());
    }
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let probe = with(&format!("-burnin-probe-{}", std::process::id()));
    match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&probe)
    {
        Ok(_) => {
            let _ = std::fs::remove_file(&probe);
            Ok(())
        }
        Err(e)
            if matches!(
                e.kind(),
                ErrorKind::PermissionDenied | ErrorKind::ReadOnlyFilesystem
            ) =>
        {
            Err(not_writable(
                shown,
                &dir,
                "its folder (SQLite keeps FILE-wal and FILE-shm beside the file)",
                &e,
            ))
        }
        // A missing folder and the like are reported by SQLite's open.
        Err(_) => Ok(()),
    }
}

/// [`Error::NotWritable`] for `target`: its owner and mode, who this
/// process runs as, and the fix.
fn not_writable(shown: &str, target: &Path, what: &str, e: &std::io::Error) -> Error {
    use std::os::unix::fs::MetadataExt;
    let me = std::fs::metadata("/proc/self").map(|m| m.uid()).ok();
    let me_name = me.map_or_else(|| "this user".to_owned(), user_name);
    let target_shown = target.display();
    if e.kind() == std::io::ErrorKind::ReadOnlyFilesystem {
        return Error::NotWritable {
            path: shown.into(),
            what: what.into(),
            detail: format!("{target_shown} is on a read-only file system"),
            fix: "put --state-db on a writable file system".into(),
        };
    }
    let found = std::fs::metadata(target).map(|m| {
        format!(
            "{target_shown} is owned by {} with mode {:04o}",
            user_name(m.uid()),
            m.mode() & 0o7777
        )
    });
    let detail = format!(
        "{}, and this process runs as {me_name}",
        found.unwrap_or_else(|_| format!("{target_shown}: {e}"))
    );
    let fix = format!(
        "give it to the user burnin runs as (`chown {} {target_shown}`), or run burnin as its owner",
        me.map_or_else(
            || "USER".to_owned(),
            |_| me_name.split(' ').next().unwrap_or("USER").to_owned()
        )
    );
    Error::NotWritable {
        path: shown.into(),
        what: what.into(),
        detail,
        fix,
    }
}

/// `name (uid N)` from /etc/passwd, or `uid N`.
fn user_name(uid: u32) -> String {
    let name = std::fs::read_to_string("/etc/passwd")
        .ok()
        .and_then(|text| {
            text.lines().find_map(|line| {
                let mut fields = line.split(':');
                let name = fields.next()?;
                let id: u32 = fields.nth(1)?.parse().ok()?;
                (id == uid).then(|| name.to_owned())
            })
        });
    match name {
        Some(n) => format!("{n} (uid {uid})"),
        None => format!("uid {uid}"),
    }
}

pub mod writable;

#[cfg(test)]
mod tests;
