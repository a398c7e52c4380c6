//! `burnin-edge check` end to end: the real binary against a vhost of its
//! own on the real broker and the factory stand-in on 127.0.0.1.

mod support;

use std::path::Path;
use std::process::Command;

use burnin_testkit::vhost::TestVhost;
use burnin_testkit::{FactoryStandIn, binary};
use serde_json::Value;
use support::factory_args;

struct Checked {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

impl Checked {
    /// The line of `check` (its name is the second column).
    fn line(&self, check: &str) -> &str {
        self.stdout
            .lines()
            .find(|l| l.split_whitespace().nth(1) == Some(check))
            .unwrap_or_else(|| panic!("no {check} line in:\n{}", self.stdout))
    }
}

/// Runs `burnin-edge check` with the stand-in's URLs, `--amqp-url url`,
/// `--state-db db`, then `extra`.
fn check(f: &FactoryStandIn, url: &str, db: &Path, extra: &[&str]) -> Checked {
    let out = Command::new(binary("burnin-edge"))
        .arg("check")
        .args(factory_args(f))
        .args(["--amqp-url", url, "--state-db"])
        .arg(db)
        .args(extra)
        .env_remove("BURNIN_STORE")
        .output()
        .unwrap();
    let c = Checked {
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    };
    assert!(!c.stderr.contains("panicked"), "{}", c.stderr);
    c
}

#[test]
fn everything_passes_against_the_broker_and_the_stand_in() {
    let Some(vhost) = TestVhost::new("check-pass") else {
        return;
    };
    let f = FactoryStandIn::start();
    f.set_mes("KNOWN-1", &["02:00:00:00:00:01", "02:00:00:00:00:02"]);
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("state.sqlite3");
    let c = check(&f, &vhost.url(), &db, &["--probe-serial", "KNOWN-1"]);
    assert_eq!(c.code, Some(0), "{}\n{}", c.stdout, c.stderr);
    let broker = c.line("broker");
    assert!(broker.starts_with("ok"), "{broker}");
    assert!(
        broker.contains("declared devicescan, hwinfo_queue, hwinfo_queue.rejected"),
        "{broker}"
    );
    assert!(broker.contains("read allowed"), "{broker}");
    assert!(!broker.contains("guest:guest"), "{broker}");
    let mes = c.line("mes");
    assert!(
        mes.contains("200, a record for KNOWN-1 with 2 card(s)"),
        "{mes}"
    );
    for name in ["log-url", "notify-url", "pair-url", "directBurn-url"] {
        let l = c.line(name);
        assert!(l.starts_with("ok"), "{l}");
        // axum answers OPTIONS on a POST route with 405.
        assert!(l.contains("OPTIONS answered 405"), "{l}");
    }
    let db_line = c.line("state-db");
    assert!(
        db_line.contains("not there yet; serve creates it"),
        "{db_line}"
    );
    assert!(!db.exists(), "check must not create the database");
    let clock = c.line("clock");
    assert!(
        clock.starts_with("ok") && clock.contains("within 2 min"),
        "{clock}"
    );
    // Nothing was posted, nothing declared beyond the edge's own objects,
    // and no reply taken.
    assert!(f.requests().iter().all(|r| r.method != "POST"));
    let mut queues: Vec<String> = vhost.queues().into_iter().map(|(q, _)| q).collect();
    queues.sort();
    assert_eq!(queues, ["hwinfo_queue", "hwinfo_queue.rejected"]);

    // An unknown serial still proves MES answers; an existing database
    // is written in a transaction that is rolled back; --json.
    std::fs::write(&db, b"").unwrap();
    let c = check(
        &f,
        &vhost.url(),
        &db,
        &["--probe-serial", "NOBODY-9", "--json"],
    );
    assert_eq!(c.code, Some(0), "{}\n{}", c.stdout, c.stderr);
    let doc: Value = serde_json::from_str(&c.stdout).unwrap();
    assert_eq!(doc["ok"], true, "{doc}");
    let by = |name: &str| {
        doc["checks"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["check"] == name)
            .cloned()
            .unwrap_or_else(|| panic!("{name} in {doc}"))
    };
    assert_eq!(by("mes")["status"], "ok");
    assert!(
        by("mes")["detail"]
            .as_str()
            .unwrap()
            .contains("404, NOBODY-9 is unknown to MES"),
        "{doc}"
    );
    assert!(
        by("state-db")["detail"]
            .as_str()
            .unwrap()
            .contains("writable (a write was tried and rolled back)"),
        "{doc}"
    );
    assert_eq!(std::fs::metadata(&db).unwrap().len(), 0, "nothing kept");
}

#[test]
fn a_wrong_broker_password_fails_with_the_fix() {
    let Some(vhost) = TestVhost::new("check-password") else {
        return;
    };
    let f = FactoryStandIn::start();
    let dir = tempfile::tempdir().unwrap();
    let url = vhost.url_for("guest", "not-the-password");
    let c = check(
        &f,
        &url,
        &dir.path().join("s.sqlite3"),
        &["--probe-serial", "X1"],
    );
    assert_eq!(c.code, Some(3), "{}\n{}", c.stdout, c.stderr);
    let broker = c.line("broker");
    assert!(broker.starts_with("FAIL"), "{broker}");
    assert!(
        broker.contains("fix: check the user name and password"),
        "{broker}"
    );
    assert!(!c.stdout.contains("not-the-password"), "{}", c.stdout);
    // The other checks still ran and passed.
    assert!(c.line("mes").starts_with("ok"), "{}", c.stdout);
    assert!(c.line("state-db").starts_with("ok"), "{}", c.stdout);
}

#[test]
fn mes_down_fails_with_the_fix() {
    let Some(vhost) = TestVhost::new("check-mes") else {
        return;
    };
    let f = FactoryStandIn::start();
    f.down("/mes/X1");
    let dir = tempfile::tempdir().unwrap();
    let c = check(
        &f,
        &vhost.url(),
        &dir.path().join("s.sqlite3"),
        &["--probe-serial", "X1"],
    );
    assert_eq!(c.code, Some(3), "{}\n{}", c.stdout, c.stderr);
    let mes = c.line("mes");
    assert!(mes.starts_with("FAIL"), "{mes}");
    assert!(mes.contains("HTTP 503"), "{mes}");
    assert!(
        mes.contains("fix: check --mes-url, that MES is up"),
        "{mes}"
    );
    assert_eq!(
        f.requests_to("/mes/X1").len(),
        1,
        "a check tries once, it does not retry"
    );
    assert!(c.line("broker").starts_with("ok"), "{}", c.stdout);
}

#[test]
fn an_unwritable_state_db_folder_fails_with_the_fix() {
    let Some(vhost) = TestVhost::new("check-db") else {
        return;
    };
    let f = FactoryStandIn::start();
    let dir = tempfile::tempdir().unwrap();
    // A folder that does not exist is as unwritable as one of another
    // user's, and does not depend on the tests running as root or not.
    let db = dir.path().join("missing").join("s.sqlite3");
    let c = check(&f, &vhost.url(), &db, &["--probe-serial", "X1"]);
    assert_eq!(c.code, Some(3), "{}\n{}", c.stdout, c.stderr);
    let line = c.line("state-db");
    assert!(line.starts_with("FAIL"), "{line}");
    assert!(line.contains("it does not exist"), "{line}");
    assert!(line.contains("fix: create"), "{line}");

    // A file that is not a database.
    let junk = dir.path().join("junk.sqlite3");
    std::fs::write(&junk, vec![b'x'; 4096]).unwrap();
    let c = check(&f, &vhost.url(), &junk, &["--probe-serial", "X1"]);
    assert_eq!(c.code, Some(3), "{}", c.stdout);
    assert!(
        c.line("state-db").contains("not an SQLite database"),
        "{}",
        c.stdout
    );
}

/// A server on 127.0.0.1 that answers every request with `401` and a
/// body echoing nothing; returns its base URL.
fn refusing_server() -> String {
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for sock in listener.incoming() {
            let Ok(mut sock) = sock else { return };
            let mut buf = [0u8; 4096];
            let _ = sock.read(&mut buf);
            let _ = sock.write_all(
                b"HTTP/1.1 401 Unauthorized\r\ncontent-length: 13\r\nconnection: close\r\n\r\ninvalid token",
            );
        }
    });
    format!("http://{addr}")
}

#[test]
fn a_refused_token_fails_the_endpoint_line() {
    let Some(vhost) = TestVhost::new("check-token") else {
        return;
    };
    let f = FactoryStandIn::start();
    let refusing = refusing_server();
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(binary("burnin-edge"))
        .arg("check")
        .args(["--mes-url", &f.url("/mes/{sn}")])
        .args(["--log-url", &format!("{refusing}/log")])
        .args(["--notify-url", &f.url("/notify")])
        .args(["--factory-token", "tok-SECRET", "--probe-serial", "X1"])
        .args(["--amqp-url", &vhost.url(), "--state-db"])
        .arg(dir.path().join("s.sqlite3"))
        .env_remove("BURNIN_STORE")
        .output()
        .unwrap();
    let c = Checked {
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    };
    assert_eq!(c.code, Some(3), "{}\n{}", c.stdout, c.stderr);
    let log = c.line("log-url");
    assert!(log.starts_with("FAIL"), "{log}");
    assert!(log.contains("OPTIONS answered 401"), "{log}");
    assert!(
        log.contains("fix: the token was refused: check --factory-token"),
        "{log}"
    );
    assert!(c.line("notify-url").starts_with("ok"), "{}", c.stdout);
    assert!(!c.stdout.contains("tok-SECRET"), "{}", c.stdout);
    // With no --pair-url or --direct-burn-url, no line for them.
    assert!(!c.stdout.contains("pair-url"), "{}", c.stdout);
}

#[test]
fn bad_arguments_exit_2() {
    let f = FactoryStandIn::start();
    let dir = tempfile::tempdir().unwrap();
    // --mes-url without --probe-serial.
    let c = check(
        &f,
        "amqp://guest:guest@127.0.0.1:5672/%2f",
        &dir.path().join("s.sqlite3"),
        &[],
    );
    assert_eq!(c.code, Some(2), "{}\n{}", c.stdout, c.stderr);
    assert!(
        c.stderr.contains("check needs --probe-serial SN"),
        "{}",
        c.stderr
    );
    let c = check(
        &f,
        "amqp://guest:guest@127.0.0.1:5672/%2f",
        &dir.path().join("s.sqlite3"),
        &[
            "--probe-serial",
            "X1",
            "--http-ca-file",
            "/nonexistent/ca.pem",
        ],
    );
    assert_eq!(c.code, Some(2), "{}\n{}", c.stdout, c.stderr);
    assert!(
        c.stderr.contains("--http-ca-file is invalid"),
        "{}",
        c.stderr
    );
}

#[test]
fn with_files_mes_and_out_dir_are_checked_and_the_clock_is_skipped() {
    let Some(vhost) = TestVhost::new("check-files") else {
        return;
    };
    let files = support::FileFactory::new(r#"{"F-1": ["02:00:00:00:00:01"]}"#);
    let db = files.dir().join("s.sqlite3");
    let out = Command::new(binary("burnin-edge"))
        .arg("check")
        .args(["--mes-file", files.mes.to_str().unwrap()])
        .args(["--out-dir", files.out.to_str().unwrap()])
        .args([
            "--amqp-url",
            &vhost.url(),
            "--probe-serial",
            "F-1",
            "--state-db",
        ])
        .arg(&db)
        .env_remove("BURNIN_STORE")
        .output()
        .unwrap();
    let c = Checked {
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    };
    assert_eq!(c.code, Some(0), "{}\n{}", c.stdout, c.stderr);
    assert!(
        c.line("mes").contains("1 record(s); F-1 has 1 card(s)"),
        "{}",
        c.stdout
    );
    let out_dir = c.line("out-dir");
    assert!(
        out_dir.starts_with("ok") && out_dir.contains("not there yet; it is created"),
        "{out_dir}"
    );
    assert!(!files.out.exists(), "check creates nothing");
    assert!(c.line("clock").starts_with("skip"), "{}", c.stdout);
}
