//! Test support (cargo feature `testing`): a throw-away database on the
//! local PostgreSQL, and a TCP proxy in front of it that a test can cut.
//!
//! ```no_run
//! # async fn demo() {
//! use burnin_store_pg::testing::{PgProxy, TestDb};
//! let Some(db) = TestDb::new("example") else { return };
//! let proxy = PgProxy::start().await;
//! let store = burnin_store_pg::PgStore::connect(&db.url_via(proxy.port())).await.unwrap();
//! proxy.cut(); // PostgreSQL "goes away" for everything behind the proxy
//! proxy.restore();
//! # drop(store); }
//! ```
//!
//! PostgreSQL must listen on 127.0.0.1:5432 with trust authentication for
//! the user `postgres` (`bash scripts/setup` sets that up), and `psql` must
//! be installed. If it cannot be used, [`TestDb::new`] **panics** with the
//! reason and the fix: a test that needs PostgreSQL never passes without
//! it. Only when `BURNIN_SKIP_PG_TESTS=1` is set does it print `SKIP
//! <test>: no PostgreSQL (<reason>)` and return `None` — for a machine that
//! deliberately runs without PostgreSQL (the same rule as the broker's
//! `BURNIN_SKIP_BROKER_TESTS=1`).
//!
//! Outages are made with [`PgProxy`], never by stopping the server: the
//! machine's PostgreSQL is shared with other tests and sessions.

#![allow(clippy::print_stderr)]

use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use tokio::net::{TcpListener, TcpStream};

/// Whether `BURNIN_SKIP_PG_TESTS=1` is set.
pub fn skip_pg_tests() -> bool {
    std::env::var("BURNIN_SKIP_PG_TESTS").is_ok_and(|v| v.trim() == "1")
}

/// A database of its own for one test, dropped (`WITH (FORCE)`) on drop.
#[derive(Debug)]
pub struct TestDb {
    name: String,
}

fn psql(database: &str, sql: &str) -> Result<String, String> {
    let out = Command::new("psql")
        .args(["-h", "127.0.0.1", "-U", "postgres", "-d", database, "-qAtc"])
        .arg(sql)
        .output()
        .map_err(|e| format!("psql cannot be run: {e}"))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).trim().to_owned())
    }
}

impl TestDb {
    /// A new database named `burnin_test_<label>_…`; `None` (after printing
    /// `SKIP <test>`) only if PostgreSQL cannot be used and
    /// `BURNIN_SKIP_PG_TESTS=1` is set.
    ///
    /// # Panics
    /// If PostgreSQL cannot be used and `BURNIN_SKIP_PG_TESTS=1` is not set.
    pub fn new(label: &str) -> Option<TestDb> {
        let label: String = label
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
            .collect();
        let name = format!(
            "burnin_test_{label}_{}_{:08x}",
            std::process::id(),
            fastrand::u32(..)
        );
        match psql("postgres", &format!("CREATE DATABASE {name}")) {
            Ok(_) => Some(TestDb { name }),
            Err(why) => {
                let current = std::thread::current();
                let test = match current.name() {
                    Some(n) if n != "main" => n.to_owned(),
                    _ => label,
                };
                assert!(
                    skip_pg_tests(),
                    "{test} needs PostgreSQL on 127.0.0.1:5432 (user postgres, trust auth) \
                     and psql: {why}. Run `bash scripts/setup` (installs and starts it), or \
                     set BURNIN_SKIP_PG_TESTS=1 to skip the PostgreSQL-backed tests."
                );
                eprintln!("SKIP {test}: no PostgreSQL ({why})");
                None
            }
        }
    }

    /// The database's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// `postgres://postgres@127.0.0.1:5432/<name>`.
    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:5432/{}", self.name)
    }

    /// The URL through a proxy on `port` of 127.0.0.1 ([`PgProxy::port`]).
    pub fn url_via(&self, port: u16) -> String {
        format!("postgres://postgres@127.0.0.1:{port}/{}", self.name)
    }

    /// Runs `sql` with psql in this database; its output, trimmed.
    ///
    /// # Panics
    /// If psql fails (the message has its stderr).
    pub fn psql(&self, sql: &str) -> String {
        psql(&self.name, sql).unwrap_or_else(|e| panic!("{sql}: {e}"))
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let _ = psql(
            "postgres",
            &format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name),
        );
    }
}

/// A TCP proxy on 127.0.0.1 to PostgreSQL on 127.0.0.1:5432 that a test
/// can cut: while cut, it closes every connection through it and refuses
/// new ones (as a restarting or unreachable server would). Runs on the
/// caller's tokio runtime.
#[derive(Debug)]
pub struct PgProxy {
    port: u16,
    cut: Arc<AtomicBool>,
    generation: Arc<tokio::sync::watch::Sender<u64>>,
}

impl PgProxy {
    /// Starts the proxy on a free port.
    ///
    /// # Panics
    /// If no port of 127.0.0.1 can be bound.
    pub async fn start() -> PgProxy {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("binding a port of 127.0.0.1 for the PostgreSQL proxy");
        let port = listener
            .local_addr()
            .expect("the proxy's local address")
            .port();
        let cut = Arc::new(AtomicBool::new(false));
        let (gen_tx, _) = tokio::sync::watch::channel(0u64);
        let generation = Arc::new(gen_tx);
        let (c, g) = (cut.clone(), generation.clone());
        tokio::spawn(async move {
            loop {
                let Ok((mut inbound, _)) = listener.accept().await else {
                    return;
                };
                if c.load(Ordering::SeqCst) {
                    drop(inbound);
                    continue;
                }
                let mut killed = g.subscribe();
                tokio::spawn(async move {
                    let Ok(mut outbound) = TcpStream::connect("127.0.0.1:5432").await else {
                        return;
                    };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => {}
                        _ = killed.changed() => {}
                    }
                });
            }
        });
        PgProxy {
            port,
            cut,
            generation,
        }
    }

    /// The port it listens on (127.0.0.1).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Closes every connection through the proxy and refuses new ones.
    pub fn cut(&self) {
        self.cut.store(true, Ordering::SeqCst);
        self.generation.send_modify(|g| *g += 1);
    }

    /// Accepts connections again.
    pub fn restore(&self) {
        self.cut.store(false, Ordering::SeqCst);
    }
}
