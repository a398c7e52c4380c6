//! The state database's disk full, for real: a 256 KiB tmpfs (the test
//! runs as root, as CI does; it fails loudly when it cannot mount).
//! Reported on main: `/healthz` still answered 200 while every commit
//! failed.

mod support;

use std::process::Command;
use std::time::{Duration, Instant};

use burnin_testkit::FactoryStandIn;
use burnin_testkit::vhost::TestVhost;
use serde_json::json;
use support::Serve;

/// A tmpfs mounted for the test, unmounted (lazily) on drop, even when
/// the test fails.
struct Tmpfs(std::path::PathBuf);

impl Tmpfs {
    fn mount(dir: &std::path::Path, size: &str) -> Tmpfs {
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir)
            .output()
            .expect("mount runs");
        assert!(
            out.status.success(),
            "cannot mount a tmpfs at {} (this test needs root, as CI has): {}",
            dir.display(),
            String::from_utf8_lossy(&out.stderr)
        );
        Tmpfs(dir.to_owned())
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// Fills the file system of `dir` with one file; returns its path.
fn fill(dir: &std::path::Path) -> std::path::PathBuf {
    use std::io::Write;
    let path = dir.join("filler");
    let mut f = std::fs::File::create(&path).unwrap();
    let block = vec![0u8; 4096];
    while f.write_all(&block).is_ok() {}
    let _ = f.sync_all();
    path
}

#[test]
fn healthz_reports_a_store_that_cannot_commit_and_recovers_with_it() {
    let Some(vhost) = TestVhost::new("disk-full") else {
        return;
    };
    let factory = FactoryStandIn::start();
    let dir = tempfile::tempdir().unwrap();
    let disk = dir.path().join("disk");
    std::fs::create_dir(&disk).unwrap();
    let _tmpfs = Tmpfs::mount(&disk, "256k");
    let serve = Serve::start(
        &vhost.url(),
        &factory,
        &disk.join("state.sqlite3"),
        None,
        &[],
    );
    let start = Instant::now();
    while serve.get("/healthz").0 != 200 {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "{}",
            serve.stderr()
        );
        std::thread::sleep(Duration::from_millis(100));
    }

    let filler = fill(&disk);
    let (status, doc) = serve.post(&json!({"operationId": 1, "windowSecs": 1}));
    assert_eq!(status, 500, "{doc}");
    assert!(doc["error"].as_str().unwrap().contains("full"), "{doc}");
    let (status, health) = serve.get("/healthz");
    assert_eq!(status, 503, "{health}");
    let error = health["error"].as_str().unwrap();
    assert!(
        error.starts_with("the operation store cannot record:") && error.contains("full"),
        "{error}"
    );
    // What the alert rule BurninStoreFailing reads.
    assert_eq!(serve.metric("burnin_store_failing"), Some(1.0));

    // Room again: the next commit clears it.
    std::fs::remove_file(filler).unwrap();
    let (status, doc) = serve.post(&json!({"operationId": 2, "windowSecs": 1}));
    assert_eq!(status, 202, "{doc}");
    let (status, health) = serve.get("/healthz");
    assert_eq!(status, 200, "{health}");
    assert_eq!(serve.metric("burnin_store_failing"), Some(0.0));
    drop(serve);
}
