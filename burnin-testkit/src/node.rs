//! A private RabbitMQ node for tests that must own the broker: its own node
//! name, ports, data, log and config directories — never the shared node.
//! Used for TLS (a listener with a CA made in the test) and for tests that
//! stop and start the broker.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

static NEXT: AtomicU32 = AtomicU32::new(0);

/// TLS material for the node's listener (PEM files).
#[derive(Debug, Clone)]
pub struct NodeTls {
    /// The CA certificate.
    pub ca: PathBuf,
    /// The server certificate (valid for `localhost` and 127.0.0.1).
    pub cert: PathBuf,
    /// The server's private key.
    pub key: PathBuf,
}

/// A RabbitMQ node of the test's own; stopped and deleted on drop.
#[derive(Debug)]
pub struct PrivateNode {
    name: String,
    port: u16,
    dist_port: u16,
    dir: tempfile::TempDir,
    tls: bool,
}

/// A port below Linux's ephemeral range (32768–60999), so no client
/// socket can hold it, picked from the process id to keep parallel test
/// processes apart.
fn pick_port() -> u16 {
    loop {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let port = 21000 + ((std::process::id() * 7 + n * 2) % 10_000) as u16;
        let free = |p: u16| std::net::TcpListener::bind(("127.0.0.1", p)).is_ok();
        if port != 25672 && free(port) && free(port + 1) {
            return port;
        }
    }
}

impl PrivateNode {
    /// Starts a node listening on 127.0.0.1 — with `tls`, only on an AMQPS
    /// listener using these files — and waits until it is up (≤ 90 s).
    ///
    /// # Panics
    /// If `rabbitmq-server` is missing or the node does not start (the
    /// message includes the end of the node's log).
    pub fn start(tls: Option<&NodeTls>) -> PrivateNode {
        let dir = tempfile::Builder::new()
            .prefix("burnin-node-")
            .tempdir()
            .unwrap_or_else(|e| panic!("tempdir: {e}"));
        let port = pick_port();
        let name = format!(
            "burnin-test-{}-{}@localhost",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        let mut conf = String::from("loopback_users = none\n");
        match tls {
            None => conf.push_str(&format!("listeners.tcp.default = 127.0.0.1:{port}\n")),
            Some(t) => {
                let copy = |src: &Path, name: &str| {
                    let dst = dir.path().join(name);
                    std::fs::copy(src, &dst)
                        .unwrap_or_else(|e| panic!("copy {}: {e}", src.display()));
                    dst.display().to_string()
                };
                conf.push_str(&format!(
                    "listeners.tcp = none\nlisteners.ssl.default = 127.0.0.1:{port}\n\
                     ssl_options.cacertfile = {}\nssl_options.certfile = {}\nssl_options.keyfile = {}\n\
                     ssl_options.verify = verify_none\nssl_options.fail_if_no_peer_cert = false\n",
                    copy(&t.ca, "ca.pem"),
                    copy(&t.cert, "server.pem"),
                    copy(&t.key, "server.key"),
                ));
            }
        }
        let write = |name: &str, text: &str| {
            std::fs::write(dir.path().join(name), text)
                .unwrap_or_else(|e| panic!("write {name}: {e}"));
        };
        write("rabbitmq.conf", &conf);
        write("enabled_plugins", "[].\n");
        // rabbitmq-server drops to the rabbitmq user: it must own the files.
        let _ = Command::new("chown")
            .args(["-R", "rabbitmq:rabbitmq"])
            .arg(dir.path())
            .status();
        let node = PrivateNode {
            name,
            port,
            dist_port: port + 1,
            dir,
            tls: tls.is_some(),
        };
        node.boot();
        node
    }

    fn boot(&self) {
        let d = self.dir.path();
        let status = Command::new("rabbitmq-server")
            .arg("-detached")
            .env("RABBITMQ_NODENAME", &self.name)
            .env("RABBITMQ_DIST_PORT", self.dist_port.to_string())
            .env("RABBITMQ_MNESIA_BASE", d.join("mnesia"))
            .env("RABBITMQ_LOG_BASE", d.join("log"))
            .env("RABBITMQ_CONFIG_FILE", d.join("rabbitmq.conf"))
            .env("RABBITMQ_ENABLED_PLUGINS_FILE", d.join("enabled_plugins"))
            .env("RABBITMQ_PID_FILE", d.join("pid"))
            .status()
            .unwrap_or_else(|e| panic!("cannot run rabbitmq-server: {e}"));
        assert!(status.success(), "rabbitmq-server -detached failed");
        let start = Instant::now();
        while !self.is_up() {
            assert!(
                start.elapsed() < Duration::from_secs(90),
                "private node {} did not start; its log ends:\n{}",
                self.name,
                self.log_tail()
            );
            std::thread::sleep(Duration::from_millis(500));
        }
    }

    fn is_up(&self) -> bool {
        std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok()
    }

    /// The end of the node's log, for failure messages.
    pub fn log_tail(&self) -> String {
        let log = self
            .dir
            .path()
            .join("log")
            .join(format!("{}.log", self.name));
        let text = std::fs::read_to_string(log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }

    /// The AMQP(S) port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `amqp://guest:guest@localhost:PORT/%2f` (or `amqps://`).
    pub fn url(&self) -> String {
        self.url_for("guest", "guest")
    }

    /// The URL for another user.
    pub fn url_for(&self, user: &str, password: &str) -> String {
        let scheme = if self.tls { "amqps" } else { "amqp" };
        format!("{scheme}://{user}:{password}@localhost:{}/%2f", self.port)
    }

    /// Runs `rabbitmqctl -n NODE args…` and returns its stdout.
    ///
    /// # Panics
    /// If it fails.
    pub fn ctl(&self, args: &[&str]) -> String {
        let out = Command::new("rabbitmqctl")
            .arg("-n")
            .arg(&self.name)
            .args(args)
            .output()
            .unwrap_or_else(|e| panic!("rabbitmqctl: {e}"));
        assert!(
            out.status.success(),
            "rabbitmqctl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Stops the node (its data stays), e.g. to test an unreachable broker.
    pub fn stop(&self) {
        let _ = Command::new("rabbitmqctl")
            .arg("-n")
            .arg(&self.name)
            .arg("stop")
            .output();
        let start = Instant::now();
        while self.is_up() && start.elapsed() < Duration::from_secs(30) {
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Starts the stopped node again, on the same ports and data.
    pub fn restart(&self) {
        self.boot();
    }
}

impl Drop for PrivateNode {
    fn drop(&mut self) {
        self.stop();
    }
}
