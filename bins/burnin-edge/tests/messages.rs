//! What a newcomer meets in the first hour, said clearly: a wrong broker
//! password, a state database this user may not write, and help texts
//! that agree with what is accepted. Real processes, the real broker.
#![allow(clippy::print_stderr)]

mod support;

use std::process::{Command, Stdio};
use std::time::{Duration, SystemTime};

use burnin_testkit::binary;
use burnin_testkit::vhost::TestVhost;
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

/// `burnin-edge serve --state-db db` run as the user nobody (through
/// util-linux's setpriv): its exit code and stderr. `None` when this test
/// does not run as root (it cannot switch users then).
fn serve_as_nobody(db: &std::path::Path, listen: &str) -> Option<(Option<i32>, String)> {
    let root = std::fs::metadata("/proc/self")
        .map(|m| std::os::unix::fs::MetadataExt::uid(&m) == 0)
        .unwrap_or(false);
    if !root {
        eprintln!("skipped: switching to the user nobody needs root");
        return None;
    }
    let out = Command::new("setpriv")
        .args(["--reuid=nobody", "--regid=nogroup", "--clear-groups"])
        .arg(binary("burnin-edge"))
        .args([
            "serve",
            "--amqp-url",
            "amqp://guest:guest@127.0.0.1:5672/%2f",
        ])
        .arg("--mes-file")
        .arg(db.with_file_name("mes.json"))
        .args(["--out-dir", "/tmp"])
        .args(["--listen", listen, "--state-db"])
        .arg(db)
        .env_remove("RUST_LOG")
        .output()
        .expect("setpriv (util-linux) runs");
    Some((
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    ))
}

#[test]
fn a_state_db_this_user_may_not_write_is_named_a_permissions_problem() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let db = dir.path().join("state.sqlite3");
    std::fs::write(dir.path().join("mes.json"), "{}").unwrap();
    // A real state database, made by root (as after a first start by hand).
    drop(burnin_store::SqliteStore::open(&db).unwrap());
    let Some((code, stderr)) = serve_as_nobody(&db, "127.0.0.1:0") else {
        return;
    };
    assert_eq!(code, Some(2), "{stderr}");
    let shown = db.display().to_string();
    for want in [
        "this process may not write the file",
        &format!("{shown} is owned by root (uid 0) with mode 0644"),
        "runs as nobody (uid 65534)",
        "permissions problem",
        &format!("chown nobody {shown}"),
    ] {
        assert!(stderr.contains(want), "{want:?} not in: {stderr}");
    }
    for wrong in ["cannot read it", "move it away", "readonly database"] {
        assert!(!stderr.contains(wrong), "{wrong:?} in: {stderr}");
    }

    // The file is theirs now, but its folder is not: SQLite keeps its
    // -wal and -shm files there.
    std::os::unix::fs::chown(&db, Some(65534), Some(65534)).unwrap();
    let (code, stderr) = serve_as_nobody(&db, "127.0.0.1:0").unwrap();
    assert_eq!(code, Some(2), "{stderr}");
    let folder = dir.path().display().to_string();
    assert!(
        stderr.contains("may not write its folder")
            && stderr.contains(&format!("{folder} is owned by root (uid 0) with mode 0755"))
            && stderr.contains(&format!("chown nobody {folder}")),
        "{stderr}"
    );

    // Both theirs: the store opens, and serve goes on to listen (on a
    // port nobody may not bind, so it stops there).
    std::os::unix::fs::chown(dir.path(), Some(65534), Some(65534)).unwrap();
    let (code, stderr) = serve_as_nobody(&db, "127.0.0.1:1").unwrap();
    assert_eq!(code, Some(2), "{stderr}");
    assert!(
        stderr.contains("--listen 127.0.0.1:1: cannot listen there")
            && !stderr.contains("may not write"),
        "{stderr}"
    );
}

#[test]
fn while_the_broker_is_down_post_scans_is_503_with_retry_after() {
    use std::io::{Read, Write};
    let factory = burnin_testkit::FactoryStandIn::start();
    let dir = tempfile::tempdir().unwrap();
    // Nothing listens on port 1: the broker stays down.
    let serve = support::Serve::start(
        "amqp://guest:guest@127.0.0.1:1/%2f",
        &factory,
        &dir.path().join("s.db"),
        None,
        &[],
    );
    let (status, doc) = serve.get("/healthz");
    assert_eq!(status, 503, "{doc}");
    let body = r#"{"operationId": "down-1", "windowSecs": 5}"#;
    let mut s = std::net::TcpStream::connect(&serve.addr).unwrap();
    write!(
        s,
        "POST /scans HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        serve.addr,
        body.len()
    )
    .unwrap();
    let mut answer = String::new();
    s.read_to_string(&mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
    assert!(
        answer
            .to_ascii_lowercase()
            .contains("\r\nretry-after: 5\r\n"),
        "{answer}"
    );
    assert!(answer.contains("the broker connection is down"), "{answer}");
    let (status, list) = serve.get("/scans");
    assert_eq!(status, 200);
    assert_eq!(list, serde_json::json!([]), "nothing was started");
}

fn help(binary_name: &str, args: &[&str]) -> String {
    let out = Command::new(binary(binary_name))
        .args(args)
        .arg("--help")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn help_texts_list_the_post_fields_and_rust_log_and_say_higher_where_they_mean_it() {
    let serve = help("burnin-edge", &["serve"]);
    // Every field of POST /scans, as the API document names them.
    let doc: serde_json::Value =
        serde_json::from_str(&burnin_service::http::openapi::document()).unwrap();
    let fields = doc["components"]["schemas"]["ScanRequest"]["properties"]
        .as_object()
        .unwrap();
    assert!(fields.len() >= 7, "{fields:?}");
    for field in fields.keys() {
        assert!(
            serve.contains(&format!("\n    {field} ")),
            "serve --help does not list the POST /scans field {field}:\n{serve}"
        );
    }
    assert!(serve.contains("Content-Type: application/json"), "{serve}");
    for (bin, args) in [
        ("burnin-edge", vec![]),
        ("burnin-edge", vec!["serve"]),
        ("burnin-edge", vec!["scan"]),
        ("burnin-edge", vec!["demo"]),
        ("burnin-agent", vec![]),
        ("burnin-agent", vec!["run"]),
        ("burnin-agent", vec!["probe"]),
    ] {
        let text = help(bin, &args);
        assert!(
            text.contains("RUST_LOG=info,burnin_amqp=debug") && text.contains("Unset: info"),
            "{bin} {args:?} --help does not document RUST_LOG:\n{text}"
        );
    }
    for file in ["burnin-edge", "burnin-agent"] {
        let path = format!(
            "{}/../../packaging/default/{file}",
            env!("CARGO_MANIFEST_DIR")
        );
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.contains("\n#RUST_LOG="), "{path}");
    }
    // The limit is a ceiling: a start above it is lowered.
    let scan = help("burnin-edge", &["scan"])
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    assert!(
        scan.contains("the adaptive limit never goes above it (a --mes-concurrency start above it is lowered to it)"),
        "{scan}"
    );
    assert!(!scan.contains("a lower --mes-concurrency start"), "{scan}");
}
