//! What a newcomer meets in the first hour, said clearly: a wrong broker
//! password, a state database this user may not write, and help texts
//! that agree with what is accepted. Real processes, the real broker.

mod support;

use std::process::{Command, Stdio};
use std::time::{Duration, SystemTime};

use burnin_amqp::testing::TestVhost;
use burnin_testkit::binary;
use support::free_port;

fn nonce() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
        ^ u64::from(std::process::id())
}

/// One clear line per attempt naming the fix; no raw lapin output, no
/// "aborting" while retrying; never the password.
fn assert_login_refused_clearly(stderr: &str, password: &str, at_least: usize) {
    let lines: Vec<&str> = stderr
        .lines()
        .filter(|l| l.contains("refused the login"))
        .collect();
    assert!(lines.len() >= at_least, "{stderr}");
    for line in &lines {
        assert!(
            line.contains("(403 ACCESS_REFUSED): check the user and password in --amqp-url")
                && line.contains("guest:***@127.0.0.1:5672"),
            "{line}"
        );
    }
    for raw in ["Close {", "ShortString", "AMQPError", "aborting"] {
        assert!(!stderr.contains(raw), "{raw:?} in:\n{stderr}");
    }
    assert!(!stderr.contains(password), "the password leaked:\n{stderr}");
}

/// `burnin-edge ARGS` at the default log level (no RUST_LOG).
fn edge(args: &[&str]) -> Command {
    let mut cmd = Command::new(binary("burnin-edge"));
    cmd.args(args)
        .env_remove("RUST_LOG")
        .env_remove("BURNIN_LOG_FORMAT")
        .stdin(Stdio::null());
    cmd
}

#[test]
fn a_wrong_broker_password_is_one_clear_line_in_serve_and_scan() {
    let Some(vhost) = TestVhost::new("edgepw") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let mes = dir.path().join("mes.json");
    std::fs::write(&mes, "{}").unwrap();
    let out_dir = dir.path().join("out");
    let password = format!("wrong{:x}", nonce());
    let url = vhost.url_for("guest", &password);
    let factory = [
        "--mes-file",
        mes.to_str().unwrap(),
        "--out-dir",
        out_dir.to_str().unwrap(),
    ];

    // serve keeps trying, saying why each time.
    let listen = format!("127.0.0.1:{}", free_port());
    let db = dir.path().join("s.db");
    let mut args = vec!["serve", "--amqp-url", &url, "--listen", &listen];
    args.extend(["--state-db", db.to_str().unwrap()]);
    args.extend(factory);
    let child = edge(&args)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_secs(3));
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert_login_refused_clearly(&stderr, &password, 2);
    assert!(
        !stderr.contains("cannot use the broker yet: cannot use"),
        "said once: {stderr}"
    );

    // scan gives up after its connect bound: exit 3, the same line.
    let mut args = vec!["scan", "--amqp-url", &url, "--operation-id", "1"];
    args.extend(["--window", "1s"]);
    args.extend(factory);
    let out = edge(&args).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    assert_login_refused_clearly(&stderr, &password, 1);
    assert!(
        stderr.contains("error: the broker could not be used"),
        "{stderr}"
    );
}
