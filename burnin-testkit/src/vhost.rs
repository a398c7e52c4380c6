//! Test support: a throw-away vhost on the local
//! RabbitMQ, so tests never share queues and can run in parallel.
//!
//! ```no_run
//! # fn main() {
//! let Some(vhost) = burnin_testkit::vhost::TestVhost::new("fanout") else { return };
//! let config = burnin_amqp::AmqpConfig::new(vhost.url());
//! // … the vhost (and every user made with add_user) is deleted on drop.
//! # }
//! ```
//!
//! The broker must listen on 127.0.0.1:5672 with the `guest` user, and
//! `rabbitmqctl` must work (run as root or the rabbitmq user). If it does
//! not, [`TestVhost::new`] **panics** with the reason and the fix (`bash
//! scripts/setup` installs and starts RabbitMQ): a test that needs the
//! broker never passes without it. Only when the environment variable
//! `BURNIN_SKIP_BROKER_TESTS=1` is set does it print `SKIP <test>: no
//! broker (<reason>)` to stderr and return `None`, and the test returns
//! early — for a machine that deliberately runs without RabbitMQ.

#![allow(clippy::print_stderr)]

use std::net::{SocketAddr, TcpStream};
use std::process::Command;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// A vhost created for one test, deleted (with its users) on drop.
#[derive(Debug)]
pub struct TestVhost {
    name: String,
    users: Mutex<Vec<String>>,
}

/// Why the broker cannot be used, if it cannot.
pub fn broker_unavailable() -> Option<String> {
    let addr: SocketAddr = ([127, 0, 0, 1], 5672).into();
    if let Err(e) = TcpStream::connect_timeout(&addr, Duration::from_secs(2)) {
        return Some(format!("RabbitMQ is not listening on {addr}: {e}"));
    }
    match Command::new("rabbitmqctl").arg("--version").output() {
        Err(e) => Some(format!("rabbitmqctl cannot be run: {e}")),
        Ok(o) if !o.status.success() => Some(format!(
            "rabbitmqctl --version failed: {}",
            String::from_utf8_lossy(&o.stderr).trim()
        )),
        Ok(_) => None,
    }
}

/// Whether `BURNIN_SKIP_BROKER_TESTS=1` is set: broker-backed tests may
/// then be skipped (each prints `SKIP <test>: no broker`).
pub fn skip_broker_tests() -> bool {
    std::env::var("BURNIN_SKIP_BROKER_TESTS").is_ok_and(|v| v.trim() == "1")
}

/// What a broker-backed test does when the broker cannot be used (`why`):
/// returns after printing `SKIP <test>: no broker (<why>)` when
/// [`skip_broker_tests`], else panics with `why` and the fix. `<test>` is
/// the running test's name (libtest names the thread after it), else
/// `label`.
///
/// # Panics
/// Unless `BURNIN_SKIP_BROKER_TESTS=1` is set.
pub fn skip_or_fail(label: &str, why: &str) {
    let current = std::thread::current();
    let test = match current.name() {
        Some(n) if n != "main" => n.to_owned(),
        _ => label.to_owned(),
    };
    if skip_broker_tests() {
        eprintln!("SKIP {test}: no broker ({why})");
        return;
    }
    panic!(
        "{test} needs RabbitMQ on 127.0.0.1:5672 and rabbitmqctl: {why}. \
         Run `bash scripts/setup` (installs and starts RabbitMQ), or set \
         BURNIN_SKIP_BROKER_TESTS=1 to skip the broker-backed tests."
    );
}

/// How long one `rabbitmqctl` call may take (seconds): some of its
/// commands wait forever by default, and a test must fail rather than hang.
const CTL_TIMEOUT_SECS: &str = "60";

impl TestVhost {
    /// A new vhost whose name starts with `burnin-test-<label>-`, with
    /// full permissions for `guest`; `None` (after printing `SKIP <test>:
    /// no broker`) only if the broker cannot be used and
    /// `BURNIN_SKIP_BROKER_TESTS=1` is set.
    ///
    /// # Panics
    /// If the broker cannot be used (unless `BURNIN_SKIP_BROKER_TESTS=1`),
    /// or `rabbitmqctl` fails on a reachable broker.
    pub fn new(label: &str) -> Option<TestVhost> {
        if let Some(why) = broker_unavailable() {
            skip_or_fail(label, &why);
            return None;
        }
        let name = format!(
            "burnin-test-{label}-{}-{}-{:08x}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::SeqCst),
            fastrand::u32(..)
        );
        let vhost = TestVhost {
            name,
            users: Mutex::new(Vec::new()),
        };
        vhost.ctl(&["add_vhost", &vhost.name]);
        vhost.ctl(&[
            "set_permissions",
            "-p",
            &vhost.name,
            "guest",
            ".*",
            ".*",
            ".*",
        ]);
        Some(vhost)
    }

    /// The vhost's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// `amqp://guest:guest@127.0.0.1:5672/<vhost>`.
    pub fn url(&self) -> String {
        self.url_for("guest", "guest")
    }

    /// The URL for another user of this vhost.
    pub fn url_for(&self, user: &str, password: &str) -> String {
        format!("amqp://{user}:{password}@127.0.0.1:5672/{}", self.name)
    }

    /// Creates `user` with `password` and these permission regexes on this
    /// vhost; the user is deleted on drop. A user of that name left by an
    /// earlier run that was killed before its drop (users are per broker,
    /// not per vhost) is deleted first: each test names its own users.
    pub fn add_user(&self, user: &str, password: &str, configure: &str, write: &str, read: &str) {
        let _ = Command::new("rabbitmqctl")
            .args(["--timeout", CTL_TIMEOUT_SECS, "delete_user", user])
            .output();
        self.ctl(&["add_user", user, password]);
        self.users
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(user.to_owned());
        self.ctl(&[
            "set_permissions",
            "-p",
            &self.name,
            user,
            configure,
            write,
            read,
        ]);
    }

    /// Runs `rabbitmqctl args…` and returns its stdout.
    ///
    /// # Panics
    /// If it fails.
    pub fn ctl(&self, args: &[&str]) -> String {
        let out = Command::new("rabbitmqctl")
            .args(["--timeout", CTL_TIMEOUT_SECS])
            .args(args)
            .output()
            .unwrap_or_else(|e| panic!("rabbitmqctl {args:?}: {e}"));
        assert!(
            out.status.success(),
            "rabbitmqctl {args:?} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// The queues of this vhost with their message counts (ready + unacked).
    pub fn queues(&self) -> Vec<(String, u64)> {
        self.ctl(&[
            "list_queues",
            "-p",
            &self.name,
            "--quiet",
            "--no-table-headers",
            "name",
            "messages",
        ])
        .lines()
        .filter_map(|l| {
            let mut it = l.split_whitespace();
            Some((it.next()?.to_owned(), it.next()?.parse().ok()?))
        })
        .collect()
    }

    /// The message count of `queue`, `None` if it does not exist.
    pub fn messages(&self, queue: &str) -> Option<u64> {
        self.queues()
            .into_iter()
            .find(|(n, _)| n == queue)
            .map(|(_, m)| m)
    }

    /// Closes every client connection to this vhost (broker-side).
    pub fn close_all_connections(&self) {
        self.ctl(&[
            "close_all_connections",
            "-p",
            &self.name,
            "burnin test: forced close",
        ]);
    }
}

impl Drop for TestVhost {
    fn drop(&mut self) {
        let _ = Command::new("rabbitmqctl")
            .args(["--timeout", CTL_TIMEOUT_SECS, "delete_vhost", &self.name])
            .output();
        for user in self.users.lock().unwrap_or_else(|e| e.into_inner()).iter() {
            let _ = Command::new("rabbitmqctl")
                .args(["--timeout", CTL_TIMEOUT_SECS, "delete_user", user])
                .output();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_broker_fails_the_test_unless_skipping_is_asked_for() {
        let outcome = std::panic::catch_unwind(|| skip_or_fail("label", "nothing on 5672"));
        if skip_broker_tests() {
            assert!(outcome.is_ok(), "BURNIN_SKIP_BROKER_TESTS=1 must skip");
        } else {
            let err = outcome.expect_err("without BURNIN_SKIP_BROKER_TESTS=1 it must fail");
            let msg = err.downcast_ref::<String>().cloned().unwrap_or_default();
            assert!(msg.contains("bash scripts/setup"), "{msg}");
            assert!(msg.contains("nothing on 5672"), "{msg}");
            assert!(msg.contains("BURNIN_SKIP_BROKER_TESTS=1"), "{msg}");
        }
    }
}
