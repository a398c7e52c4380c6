//! Test support: a throw-away database on the
//! local PostgreSQL, a TCP proxy in front of it that a test can cut, and a
//! private PostgreSQL server that a test can really stop and restart.
//!
//! ```no_run
//! # async fn demo() {
//! use burnin_testkit::pg::{PgProxy, TestDb};
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
//! **Two kinds of outage**, because they differ on the wire:
//!
//! | | [`PgProxy`] | [`PrivatePg`] |
//! | --- | --- | --- |
//! | what happens | the network is cut: every connection through the proxy is closed (TCP FIN/reset) and new ones are refused | the server really shuts down (`pg_ctl stop -m fast` / `restart`): it ends each session with a `FATAL` error, SQLSTATE 57P01 (*terminating connection due to administrator command*), then refuses connections, then answers 57P03 (*the database system is starting up*) while it comes back |
//! | server | the machine's shared PostgreSQL on 127.0.0.1:5432 | a server of the test's own: `initdb` in a temporary directory, trust auth, 127.0.0.1 on a free port |
//! | cost | nothing | ≈ 1–2 s to create, ≈ 0.5 s per restart |
//! | use for | a network cut, an unreachable server | PostgreSQL restarted mid-operation |
//!
//! The machine's PostgreSQL is never stopped: it is shared with other tests
//! and sessions. [`PrivatePg`] needs the server binaries (`initdb`,
//! `pg_ctl`: `/usr/lib/postgresql/<version>/bin` as the Debian `postgresql`
//! package installs them, or on the `PATH`) and, when the test runs as root
//! (PostgreSQL refuses to), the `postgres` OS user and `runuser`. Without
//! them [`PrivatePg::new`] panics with the reason and the fix, or, with
//! `BURNIN_SKIP_PG_TESTS=1`, prints `SKIP <test>: ...` and returns `None`,
//! as [`TestDb::new`] does.

#![allow(clippy::print_stderr)]

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

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

/// The machine's shared PostgreSQL: 127.0.0.1:5432.
const SHARED_PORT: u16 = 5432;

/// Runs `sql` with psql as `postgres` on 127.0.0.1:`port`, in `database`.
fn psql(port: u16, database: &str, sql: &str) -> Result<String, String> {
    let out = Command::new("psql")
        .args(["-h", "127.0.0.1", "-p", &port.to_string()])
        .args(["-U", "postgres", "-d", database, "-qAtc"])
        .arg(sql)
        .stdin(Stdio::null())
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
        match psql(SHARED_PORT, "postgres", &format!("CREATE DATABASE {name}")) {
            Ok(_) => Some(TestDb { name }),
            Err(why) => {
                let test = current_test(&label);
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
        format!("postgres://postgres@127.0.0.1:{SHARED_PORT}/{}", self.name)
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
        psql(SHARED_PORT, &self.name, sql).unwrap_or_else(|e| panic!("{sql}: {e}"))
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let _ = psql(
            SHARED_PORT,
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
                    let Ok(mut outbound) = TcpStream::connect(("127.0.0.1", SHARED_PORT)).await
                    else {
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

/// The name of the running test (the thread's), else `fallback`.
fn current_test(fallback: &str) -> String {
    match std::thread::current().name() {
        Some(n) if n != "main" => n.to_owned(),
        _ => fallback.to_owned(),
    }
}

/// How long `pg_ctl` may take to start or stop the private server.
const PG_CTL_WAIT: Duration = Duration::from_secs(30);

/// A PostgreSQL server of one test's own, which the test can really stop,
/// start and restart (see the [module docs](self) for when to use it
/// rather than [`PgProxy`]).
///
/// `initdb` into a temporary directory, trust authentication, listening
/// on 127.0.0.1 only at a free port, its Unix socket inside that
/// directory, small settings (`shared_buffers` 16 MB, 30 connections;
/// `fsync` stays on, so a commit is as durable as on a real server).
/// When the test runs as root, the server runs as the `postgres` OS user
/// (PostgreSQL refuses root) and the directory belongs to it. Dropping it
/// stops the server (`-m immediate`) and removes the directory.
///
/// ```no_run
/// # async fn demo() {
/// use burnin_testkit::pg::PrivatePg;
/// let Some(pg) = PrivatePg::new("example") else { return };
/// let store = burnin_store_pg::PgStore::connect(&pg.url()).await.unwrap();
/// let down = pg.restart(); // a real `pg_ctl restart -m fast`
/// # drop((store, down)); }
/// ```
#[derive(Debug)]
pub struct PrivatePg {
    root: PathBuf,
    bin: PathBuf,
    port: u16,
    /// `Some(uid, gid)` of the `postgres` user when run as root.
    run_as: Option<(u32, u32)>,
}

impl PrivatePg {
    /// Creates and starts a private server; `None` (after printing `SKIP
    /// <test>`) only if it cannot be and `BURNIN_SKIP_PG_TESTS=1` is set.
    ///
    /// # Panics
    /// If it cannot be created or started (no `initdb`, no `postgres`
    /// user when run as root, …) and `BURNIN_SKIP_PG_TESTS=1` is not set:
    /// the message says why and what to do.
    pub fn new(label: &str) -> Option<PrivatePg> {
        match Self::create(label) {
            Ok(pg) => Some(pg),
            Err(why) => {
                let test = current_test(label);
                assert!(
                    skip_pg_tests(),
                    "{test} needs a private PostgreSQL server of its own: {why}. Install the \
                     PostgreSQL server (`bash scripts/setup` does: Debian package postgresql, \
                     binaries in /usr/lib/postgresql/<version>/bin), or set \
                     BURNIN_SKIP_PG_TESTS=1 to skip the PostgreSQL-backed tests."
                );
                eprintln!("SKIP {test}: no private PostgreSQL ({why})");
                None
            }
        }
    }

    /// Like [`new`](Self::new), with an error (why, and the fix) where
    /// `new` would fail the test: for tools such as the load harness,
    /// which must not panic. `BURNIN_SKIP_PG_TESTS` is not read.
    pub fn try_new(label: &str) -> Result<PrivatePg, String> {
        Self::create(label).map_err(|why| {
            format!(
                "a private PostgreSQL server cannot be started: {why}. Install the PostgreSQL \
                 server (`bash scripts/setup` does: Debian package postgresql)"
            )
        })
    }

    fn create(label: &str) -> Result<PrivatePg, String> {
        let bin = server_bin_dir()?;
        let run_as = if current_uid()? == 0 {
            Some(postgres_user()?)
        } else {
            None
        };
        let label: String = label
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
            .collect();
        let root = std::env::temp_dir().join(format!(
            "burnin-pg-{label}-{}-{:08x}",
            std::process::id(),
            fastrand::u32(..)
        ));
        std::fs::create_dir(&root).map_err(|e| format!("cannot create {}: {e}", root.display()))?;
        let mut pg = PrivatePg {
            root,
            bin,
            port: 0,
            run_as,
        };
        pg.init()?;
        // A port found free may be taken before the server binds it: try
        // a few.
        let mut last = String::new();
        for _ in 0..3 {
            pg.port = free_port()?;
            pg.configure()?;
            match pg.pg_ctl(&["start", "-w", "-t", &PG_CTL_WAIT.as_secs().to_string()]) {
                Ok(()) => {
                    pg.watchdog();
                    return Ok(pg);
                }
                Err(e) => last = e,
            }
        }
        Err(last)
    }

    /// `initdb` into `<root>/data`, the directory handed to the server's
    /// user first.
    fn init(&self) -> Result<(), String> {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&self.root, std::fs::Permissions::from_mode(0o700))
            .map_err(|e| format!("cannot restrict {}: {e}", self.root.display()))?;
        if let Some((uid, gid)) = self.run_as {
            std::os::unix::fs::chown(&self.root, Some(uid), Some(gid)).map_err(|e| {
                format!(
                    "cannot give {} to the postgres user: {e}",
                    self.root.display()
                )
            })?;
        }
        let data = self.data();
        self.run(
            "initdb",
            &[
                "-D",
                &data,
                "-U",
                "postgres",
                "--auth=trust",
                "-E",
                "UTF8",
                "--no-locale",
                "--no-sync",
            ],
        )
        .map(drop)
    }

    /// Stops the server and removes its directory once this process is
    /// gone, should it die without running `Drop` (a test killed on its
    /// time limit): a shell of its own process group, its output to
    /// /dev/null (so nextest does not wait on it), polling every second.
    fn watchdog(&self) {
        use std::os::unix::process::CommandExt;
        let pg_ctl = self.bin.join("pg_ctl");
        let stop = format!(
            "{}'{}' -D '{}' stop -m immediate -w -t 10",
            if self.run_as.is_some() {
                "runuser -u postgres -- "
            } else {
                ""
            },
            pg_ctl.display(),
            self.data()
        );
        let script = format!(
            "while kill -0 {pid} 2>/dev/null; do sleep 1; done; \
             if [ -f '{data}/postmaster.pid' ]; then {stop}; fi; rm -rf '{root}'",
            pid = std::process::id(),
            data = self.data(),
            root = self.root.display(),
        );
        let spawned = Command::new("sh")
            .args(["-c", &script])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn();
        if let Err(e) = spawned {
            eprintln!("private PostgreSQL: no watchdog ({e}); a killed test leaves it running");
        }
    }

    /// Appends this server's settings (the last value of a setting wins).
    fn configure(&self) -> Result<(), String> {
        use std::io::Write as _;
        let conf = Path::new(&self.data()).join("postgresql.conf");
        let settings = format!(
            "\n# burnin PrivatePg\nlisten_addresses = '127.0.0.1'\nport = {}\n\
             unix_socket_directories = '{}'\nshared_buffers = 16MB\nmax_connections = 30\n\
             fsync = on\nhuge_pages = off\nlogging_collector = off\n",
            self.port,
            self.root.display()
        );
        std::fs::OpenOptions::new()
            .append(true)
            .open(&conf)
            .and_then(|mut f| f.write_all(settings.as_bytes()))
            .map_err(|e| format!("cannot write {}: {e}", conf.display()))
    }

    fn data(&self) -> String {
        self.root.join("data").display().to_string()
    }

    fn log_path(&self) -> PathBuf {
        self.root.join("server.log")
    }

    /// Runs the server binary `tool` (as the `postgres` user when root);
    /// its output, or why it failed.
    fn run(&self, tool: &str, args: &[&str]) -> Result<String, String> {
        let program = self.bin.join(tool);
        let mut cmd = match self.run_as {
            Some(_) => {
                let mut c = Command::new("runuser");
                c.args(["-u", "postgres", "--"]).arg(&program);
                c
            }
            None => Command::new(&program),
        };
        // The server inherits the working directory: one it can read.
        cmd.args(args).current_dir(&self.root).stdin(Stdio::null());
        let out = cmd.output().map_err(|e| {
            format!(
                "cannot run {}{}: {e}",
                if self.run_as.is_some() {
                    "runuser -u postgres -- "
                } else {
                    ""
                },
                program.display()
            )
        })?;
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).into_owned())
        } else {
            Err(format!(
                "{tool} {} failed ({}): {}{}",
                args.join(" "),
                out.status,
                String::from_utf8_lossy(&out.stderr).trim(),
                self.log_tail()
            ))
        }
    }

    fn pg_ctl(&self, args: &[&str]) -> Result<(), String> {
        let data = self.data();
        let log = self.log_path().display().to_string();
        let mut all = vec!["-D", &data, "-l", &log];
        all.extend_from_slice(args);
        self.run("pg_ctl", &all).map(drop)
    }

    /// Runs `pg_ctl args… -w -t 30` (waiting at most [`PG_CTL_WAIT`]);
    /// how long it took.
    ///
    /// # Panics
    /// If pg_ctl fails, naming `doing` (the message has its output and the
    /// server log).
    fn timed(&self, args: &[&str], doing: &str) -> Duration {
        let t = Instant::now();
        let wait = PG_CTL_WAIT.as_secs().to_string();
        let mut all = args.to_vec();
        all.extend(["-w", "-t", &wait]);
        self.pg_ctl(&all)
            .unwrap_or_else(|e| panic!("{doing} the private PostgreSQL: {e}"));
        t.elapsed()
    }

    fn log_tail(&self) -> String {
        let text = self.log();
        if text.is_empty() {
            return String::new();
        }
        let lines: Vec<&str> = text.lines().collect();
        let from = lines.len().saturating_sub(10);
        format!("\nserver log (last lines):\n{}", lines[from..].join("\n"))
    }

    /// The server's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    /// The port it listens on (127.0.0.1).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `postgres://postgres@127.0.0.1:<port>/postgres`.
    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    /// [`url`](Self::url) with `password` in it (trust authentication
    /// ignores it): for checking that messages never show it.
    pub fn url_with_password(&self, password: &str) -> String {
        format!(
            "postgres://postgres:{password}@127.0.0.1:{}/postgres",
            self.port
        )
    }

    /// Runs `sql` with psql in its `postgres` database; the output, trimmed.
    ///
    /// # Panics
    /// If psql fails (the message has its stderr).
    pub fn psql(&self, sql: &str) -> String {
        psql(self.port, "postgres", sql).unwrap_or_else(|e| panic!("{sql}: {e}"))
    }

    /// Stops the server (`pg_ctl stop -m fast`: every session is ended with
    /// SQLSTATE 57P01, as on a restart) and waits until it is down (at most
    /// 30 s); how long that took.
    ///
    /// # Panics
    /// If pg_ctl fails (the message has its output and the server log).
    pub fn stop(&self) -> Duration {
        self.timed(&["stop", "-m", "fast"], "stopping")
    }

    /// Starts the stopped server again and waits until it accepts
    /// connections (at most 30 s); how long that took.
    ///
    /// # Panics
    /// If pg_ctl fails (the message has its output and the server log).
    pub fn start(&self) -> Duration {
        self.timed(&["start"], "starting")
    }

    /// Restarts the server for real (`pg_ctl restart -m fast -w`: sessions
    /// ended with SQLSTATE 57P01, connections refused, then accepted
    /// again), bounded by 30 s for each half; how long it was down.
    ///
    /// # Panics
    /// If pg_ctl fails (the message has its output and the server log).
    pub fn restart(&self) -> Duration {
        self.timed(&["restart", "-m", "fast"], "restarting")
    }

    /// Like [`restart`](Self::restart), with an error (pg_ctl's output and
    /// the server log) where `restart` panics.
    pub fn try_restart(&self) -> Result<Duration, String> {
        let t = Instant::now();
        let wait = PG_CTL_WAIT.as_secs().to_string();
        self.pg_ctl(&["restart", "-m", "fast", "-w", "-t", &wait])
            .map_err(|e| format!("restarting the private PostgreSQL: {e}"))?;
        Ok(t.elapsed())
    }
}

impl Drop for PrivatePg {
    fn drop(&mut self) {
        if Path::new(&self.data()).join("postmaster.pid").exists() {
            let _ = self.pg_ctl(&["stop", "-m", "immediate", "-w", "-t", "10"]);
        }
        let _ = std::fs::remove_dir_all(&self.root);
    }
}

/// The directory of `initdb` and `pg_ctl`: the newest
/// `/usr/lib/postgresql/<version>/bin` that has them (Debian, Ubuntu), else
/// the `PATH`.
fn server_bin_dir() -> Result<PathBuf, String> {
    let has_tools = |d: &Path| d.join("initdb").is_file() && d.join("pg_ctl").is_file();
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let v = e.file_name().to_str()?.parse::<u32>().ok()?;
            let bin = e.path().join("bin");
            has_tools(&bin).then_some((v, bin))
        })
        .collect();
    versions.sort();
    if let Some((_, bin)) = versions.pop() {
        return Ok(bin);
    }
    std::env::var_os("PATH")
        .into_iter()
        .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .find(|d| has_tools(d))
        .ok_or_else(|| {
            "no initdb and pg_ctl in /usr/lib/postgresql/*/bin nor on the PATH".to_owned()
        })
}

/// The effective user id (the owner of `/proc/self`).
fn current_uid() -> Result<u32, String> {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/proc/self")
        .map(|m| m.uid())
        .map_err(|e| format!("cannot tell the current user (/proc/self: {e})"))
}

/// The `postgres` OS user's uid and gid, and that `runuser` is there.
fn postgres_user() -> Result<(u32, u32), String> {
    let passwd = std::fs::read_to_string("/etc/passwd")
        .map_err(|e| format!("cannot read /etc/passwd: {e}"))?;
    let ids = passwd
        .lines()
        .find_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            (f.len() > 3 && f[0] == "postgres")
                .then(|| Some((f[2].parse().ok()?, f[3].parse().ok()?)))
                .flatten()
        })
        .ok_or(
            "the test runs as root, which PostgreSQL refuses, and there is no `postgres` \
             OS user to run the server as",
        )?;
    let runuser = ["/usr/sbin/runuser", "/sbin/runuser", "/usr/bin/runuser"]
        .iter()
        .any(|p| Path::new(p).is_file());
    if !runuser {
        return Err(
            "the test runs as root, which PostgreSQL refuses, and `runuser` (util-linux) \
             is not installed to run the server as the postgres user"
                .into(),
        );
    }
    Ok(ids)
}

fn free_port() -> Result<u16, String> {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|e| format!("no free port on 127.0.0.1: {e}"))
}
