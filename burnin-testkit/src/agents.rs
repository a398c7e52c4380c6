//! Real `burnin-agent run` processes on fixture sysfs trees.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use crate::fixture::Fixture;
use crate::vhost::TestVhost;

/// A simulated device: a serial number and the MACs of its PCI NICs.
#[derive(Debug, Clone)]
pub struct Device {
    /// The serial number its DMI reports.
    pub sn: String,
    /// One PCI NIC per MAC, `enp<N>s0` at `0000:<N>:00.0`.
    pub macs: Vec<String>,
}

impl Device {
    /// A device with `sn` and one NIC per MAC.
    pub fn new(sn: &str, macs: &[&str]) -> Self {
        Device {
            sn: sn.to_owned(),
            macs: macs.iter().map(|m| (*m).to_owned()).collect(),
        }
    }

    /// Checks the serial number and MACs and that `root` can be written,
    /// then lays out the tree: for a command line, where bad input must get
    /// a clear error, not a panic.
    ///
    /// # Errors
    /// A message naming the bad serial, MAC or folder and what to do.
    pub fn try_write_tree(&self, root: &std::path::Path) -> Result<(), String> {
        burnin_core::SerialNumber::new(self.sn.clone())
            .map_err(|e| format!("serial number {:?} cannot be used: {e}", self.sn))?;
        for mac in &self.macs {
            mac.parse::<burnin_core::Mac>()
                .map_err(|e| format!("{e}; give a MAC such as 02:00:00:00:01:01"))?;
        }
        std::fs::create_dir_all(root).map_err(|e| {
            format!(
                "cannot create the folder {}: {e}; pick a folder you can write",
                root.display()
            )
        })?;
        let probe = root.join(".burnin-testkit-write-check");
        std::fs::write(&probe, b"")
            .and_then(|()| std::fs::remove_file(&probe))
            .map_err(|e| {
                format!(
                    "cannot write into {}: {e}; pick a folder you can write",
                    root.display()
                )
            })?;
        self.write_tree(root);
        Ok(())
    }

    /// Lays out this device's sysfs tree under `root`.
    ///
    /// # Panics
    /// If the file system refuses a write (test support; see
    /// [`try_write_tree`](Self::try_write_tree) for a command line).
    pub fn write_tree(&self, root: &std::path::Path) {
        let mut fx = Fixture::new(root).serial(&self.sn);
        for (i, mac) in self.macs.iter().enumerate() {
            let bus = i + 1;
            fx = fx.pci_nic(
                &format!("enp{bus}s0"),
                &format!("0000:{bus:02x}:00.0"),
                mac,
                "igb",
            );
        }
        // Something the probe must ignore.
        fx.loopback();
    }
}

/// The path of a workspace binary (`burnin-agent`, `burnin-edge`), built
/// first if needed (once per test process), so tests of one crate can run
/// another crate's binary.
///
/// With `BURNIN_TEST_BINARIES_BUILT=1` (set by `scripts/test`, which builds
/// them before the tests start) no build is run: a cargo started from
/// inside a test sees the test's environment, re-runs some dependencies'
/// build scripts, and the next test build then rebuilds them again.
///
/// # Panics
/// If it cannot be built.
pub fn binary(name: &str) -> PathBuf {
    static BUILT: OnceLock<Vec<String>> = OnceLock::new();
    let dir = std::env::current_exe()
        .ok()
        .and_then(|exe| {
            // target/<profile>/deps/<test> → target/<profile>
            let deps = exe.parent()?;
            Some(if deps.ends_with("deps") {
                deps.parent()?.to_path_buf()
            } else {
                deps.to_path_buf()
            })
        })
        .unwrap_or_else(|| panic!("cannot locate the target directory"));
    BUILT.get_or_init(|| {
        if std::env::var("BURNIN_TEST_BINARIES_BUILT").is_ok_and(|v| v == "1") {
            return vec![];
        }
        let profile_release = dir.ends_with("release");
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let mut cmd = Command::new(cargo);
        cmd.args([
            "build",
            "--quiet",
            "-p",
            "burnin-agent",
            "-p",
            "burnin-edge",
        ]);
        if profile_release {
            cmd.arg("--release");
        }
        let status = cmd
            .status()
            .unwrap_or_else(|e| panic!("cannot run cargo build: {e}"));
        assert!(
            status.success(),
            "cargo build of the burnin binaries failed"
        );
        vec![]
    });
    let path = dir.join(name);
    assert!(path.exists(), "{} was not built", path.display());
    path
}

/// Waits until `n` agents consume their command queues: `list_consumers`
/// returns the queue names of the broker's consumers (`rabbitmqctl
/// list_consumers … queue_name`), and agent queues are server-named
/// `amq.gen-*`.
///
/// # Panics
/// If fewer than `n` are there after 30 s.
pub fn wait_for_agents(list_consumers: impl Fn() -> String, n: usize) {
    let start = Instant::now();
    loop {
        let consumers = list_consumers()
            .lines()
            .filter(|q| q.trim().starts_with("amq.gen-"))
            .count();
        if consumers >= n {
            return;
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "only {consumers} of {n} agents consume their command queue after 30 s"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// A fleet of `burnin-agent run` processes, killed on drop.
pub struct AgentFleet {
    children: Vec<(String, Child)>,
    _trees: tempfile::TempDir,
}

impl AgentFleet {
    /// Starts one agent per device against `vhost` (extra flags in
    /// `args`), and waits until every one consumes its command queue.
    ///
    /// # Panics
    /// If an agent cannot be started or does not get ready within 30 s.
    pub fn start(vhost: &TestVhost, devices: &[Device], args: &[&str]) -> Self {
        let trees = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
        let agent = binary("burnin-agent");
        let mut children = Vec::new();
        for (i, d) in devices.iter().enumerate() {
            let root = trees.path().join(format!("dev{i}"));
            d.write_tree(&root);
            let child = Command::new(&agent)
                .arg("run")
                .arg("--amqp-url")
                .arg(vhost.url())
                .arg("--sysfs-root")
                .arg(&root)
                .args(args)
                .env("RUST_LOG", "warn")
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::inherit())
                .spawn()
                .unwrap_or_else(|e| panic!("cannot start {}: {e}", agent.display()));
            children.push((d.sn.clone(), child));
        }
        let fleet = AgentFleet {
            children,
            _trees: trees,
        };
        wait_for_agents(
            || {
                vhost.ctl(&[
                    "list_consumers",
                    "-p",
                    vhost.name(),
                    "--quiet",
                    "--no-table-headers",
                    "queue_name",
                ])
            },
            devices.len(),
        );
        fleet
    }

    /// Kills the agent of serial `sn` (SIGKILL).
    pub fn kill(&mut self, sn: &str) {
        for (s, c) in &mut self.children {
            if s == sn {
                let _ = c.kill();
                let _ = c.wait();
            }
        }
    }

    /// Whether every agent is still running.
    pub fn all_running(&mut self) -> bool {
        self.children
            .iter_mut()
            .all(|(_, c)| matches!(c.try_wait(), Ok(None)))
    }
}

impl Drop for AgentFleet {
    fn drop(&mut self) {
        for (_, c) in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}
