//! Test support: a throw-away vhost on the
//! project's own 3-node RabbitMQ cluster (`scripts/cluster`), for the fault
//! tests of SPEC §10.3.
//!
//! ```no_run
//! # fn main() {
//! use burnin_testkit::cluster::ClusterVhost;
//! let Some(cluster) = ClusterVhost::new("failover") else { return };
//! let config = burnin_amqp::AmqpConfig::cluster(cluster.urls());
//! cluster.stop_node(2);
//! // … every node is running again, and the vhost deleted, on drop.
//! # }
//! ```
//!
//! [`ClusterVhost::new`] runs `scripts/cluster up` (found by walking up
//! from the test's crate directory), which starts the three nodes if they
//! are not running (about 25 s the first time) and is a no-op otherwise.
//! Tests that use the cluster stop and start its nodes, so they must not
//! overlap: within one test binary a [`ClusterVhost`] holds a process-wide
//! lock, and the workspace's `.config/nextest.toml` puts every test binary
//! named `cluster*` into a test group that runs one test at a time.
//!
//! Like [`TestVhost`](crate::vhost::TestVhost): when the cluster cannot
//! be used the test fails with the reason and the fix, unless
//! `BURNIN_SKIP_BROKER_TESTS=1` is set, in which case it prints
//! `SKIP <test>: no broker (…)` and returns early.

#![allow(clippy::print_stderr)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Mutex, MutexGuard};

static EXCLUSIVE: Mutex<()> = Mutex::new(());

/// The cluster's node count.
pub const NODES: usize = 3;

/// A vhost on the 3-node test cluster; see the [module docs](self).
#[derive(Debug)]
pub struct ClusterVhost {
    name: String,
    base_urls: Vec<String>,
    script: PathBuf,
    _exclusive: MutexGuard<'static, ()>,
}

/// The node name of node `n` (1-based).
pub fn node_name(n: usize) -> String {
    format!("burnin-mq{n}@localhost")
}

fn find_script() -> Option<PathBuf> {
    let start = std::env::var_os("CARGO_MANIFEST_DIR")
        .map(PathBuf::from)
        .or_else(|| std::env::current_dir().ok())?;
    start
        .ancestors()
        .map(|d| d.join("scripts/cluster"))
        .find(|p| p.is_file())
}

/// The same rule as every broker-backed test: fail with the fix, unless
/// `BURNIN_SKIP_BROKER_TESTS=1` is set (then print `SKIP <test>: ...`).
fn unusable(why: String) -> Option<ClusterVhost> {
    crate::vhost::skip_or_fail(
        "cluster",
        &format!("the project's RabbitMQ cluster (scripts/cluster up) cannot be used: {why}"),
    );
    None
}

impl ClusterVhost {
    /// Starts the cluster if needed and makes a vhost whose name starts
    /// with `burnin-cluster-<label>-`, with full permissions for `guest`.
    ///
    /// # Panics
    /// If the cluster cannot be started (unless `BURNIN_SKIP_BROKER_TESTS=1`), or `rabbitmqctl`
    /// fails on a running cluster.
    pub fn new(label: &str) -> Option<ClusterVhost> {
        let Some(script) = find_script() else {
            return unusable("scripts/cluster not found above the crate directory".into());
        };
        match ClusterVhost::with_script(label, &script) {
            Ok(v) => Some(v),
            Err(why) => unusable(why),
        }
    }

    /// Like [`new`](Self::new), with the `scripts/cluster` at `script`,
    /// and an error (what failed, and the fix) where `new` would fail the
    /// test: for tools such as the load harness, which run outside a
    /// crate directory and must not panic.
    pub fn with_script(label: &str, script: &Path) -> Result<ClusterVhost, String> {
        let exclusive = EXCLUSIVE.lock().unwrap_or_else(|e| e.into_inner());
        if !Path::new("/usr/lib/rabbitmq/bin/rabbitmq-server").exists() {
            return Err("rabbitmq-server is not installed (bash scripts/setup)".into());
        }
        let out = Command::new("bash")
            .arg(script)
            .arg("up")
            .output()
            .map_err(|e| format!("cannot run {}: {e}", script.display()))?;
        if !out.status.success() {
            return Err(format!(
                "{} up failed: {}",
                script.display(),
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
        let base_urls: Vec<String> = String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter(|l| l.starts_with("amqp://"))
            .map(str::to_owned)
            .collect();
        if base_urls.len() != NODES {
            return Err(format!(
                "{} up printed {base_urls:?}, not {NODES} URLs",
                script.display()
            ));
        }
        let name = format!(
            "burnin-cluster-{label}-{}-{:08x}",
            std::process::id(),
            fastrand::u32(..)
        );
        let vhost = ClusterVhost {
            name,
            base_urls,
            script: script.to_path_buf(),
            _exclusive: exclusive,
        };
        vhost.try_ctl(1, &["add_vhost", &vhost.name])?;
        vhost.try_ctl(
            1,
            &[
                "set_permissions",
                "-p",
                &vhost.name,
                "guest",
                ".*",
                ".*",
                ".*",
            ],
        )?;
        Ok(vhost)
    }

    /// The vhost's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Node `n`'s URL (1-based) for this vhost, as guest.
    pub fn url(&self, n: usize) -> String {
        let base = &self.base_urls[n - 1];
        let root = base.strip_suffix("%2f").unwrap_or(base);
        format!("{root}{}", self.name)
    }

    /// Every node's URL for this vhost.
    pub fn urls(&self) -> Vec<String> {
        (1..=NODES).map(|n| self.url(n)).collect()
    }

    /// Node `n`'s AMQP port.
    pub fn port(&self, n: usize) -> u16 {
        url::Url::parse(&self.base_urls[n - 1])
            .ok()
            .and_then(|u| u.port())
            .unwrap_or(0)
    }

    /// Runs `rabbitmqctl -n <node n> args…` and returns its stdout.
    ///
    /// # Panics
    /// If it fails.
    pub fn ctl(&self, n: usize, args: &[&str]) -> String {
        self.try_ctl(n, args).unwrap_or_else(|e| panic!("{e}"))
    }

    /// Like [`ctl`](Self::ctl), with an error saying what failed.
    pub fn try_ctl(&self, n: usize, args: &[&str]) -> Result<String, String> {
        let out = Command::new("rabbitmqctl")
            .arg("-n")
            .arg(node_name(n))
            .args(args)
            .output()
            .map_err(|e| format!("rabbitmqctl {args:?}: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "rabbitmqctl -n {} {args:?} failed: {}{}",
                node_name(n),
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// A running node to ask (the first one that answers a ping).
    pub fn any_running(&self) -> usize {
        (1..=NODES)
            .find(|&n| {
                Command::new("rabbitmqctl")
                    .args(["-n", &node_name(n), "-q", "ping"])
                    .output()
                    .is_ok_and(|o| o.status.success())
            })
            .unwrap_or(1)
    }

    /// This vhost's client connections: `(connection_name, node)`.
    ///
    /// # Panics
    /// If `rabbitmqctl list_connections` fails.
    pub fn connections(&self) -> Vec<(String, usize)> {
        self.try_connections().unwrap_or_else(|e| panic!("{e}"))
    }

    /// Like [`connections`](Self::connections), with an error saying what failed.
    pub fn try_connections(&self) -> Result<Vec<(String, usize)>, String> {
        let ports: Vec<u16> = (1..=NODES).map(|n| self.port(n)).collect();
        Ok(self
            .try_ctl(
                self.any_running(),
                &[
                    "list_connections",
                    "--quiet",
                    "--no-table-headers",
                    "vhost",
                    "port",
                    "client_properties",
                ],
            )?
            .lines()
            .filter_map(|l| {
                let mut it = l.splitn(3, '\t');
                let (vhost, port, props) = (it.next()?, it.next()?, it.next()?);
                if vhost != self.name {
                    return None;
                }
                let port: u16 = port.trim().parse().ok()?;
                let node = ports.iter().position(|&p| p == port)? + 1;
                let name = props
                    .split("{\"connection_name\",\"")
                    .nth(1)
                    .and_then(|r| r.split('"').next())
                    .unwrap_or("")
                    .to_owned();
                Some((name, node))
            })
            .collect())
    }

    /// Stops node `n` (its data is kept): `scripts/cluster stop-node n`.
    ///
    /// # Panics
    /// If the script fails.
    pub fn stop_node(&self, n: usize) {
        self.script(&["stop-node", &n.to_string()]);
    }

    /// Like [`stop_node`](Self::stop_node), with an error saying what failed.
    pub fn try_stop_node(&self, n: usize) -> Result<(), String> {
        self.try_script(&["stop-node", &n.to_string()])
    }

    /// Starts node `n` again and waits until it runs.
    ///
    /// # Panics
    /// If the script fails.
    pub fn start_node(&self, n: usize) {
        self.script(&["start-node", &n.to_string()]);
    }

    fn script(&self, args: &[&str]) {
        self.try_script(args).unwrap_or_else(|e| panic!("{e}"));
    }

    fn try_script(&self, args: &[&str]) -> Result<(), String> {
        let out = Command::new("bash")
            .arg(&self.script)
            .args(args)
            .output()
            .map_err(|e| format!("scripts/cluster {args:?}: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "scripts/cluster {args:?} failed: {}",
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        Ok(())
    }
}

impl Drop for ClusterVhost {
    fn drop(&mut self) {
        // The next test finds the whole cluster again.
        let _ = Command::new("bash").arg(&self.script).arg("up").output();
        let _ = Command::new("rabbitmqctl")
            .args([
                "-n",
                &node_name(self.any_running()),
                "delete_vhost",
                &self.name,
            ])
            .output();
    }
}
