//! Secrets never reach output (SPEC §7, §8), and the README's
//! least-privilege broker users work: an agent user and an edge user with
//! only the documented permissions run the real agent, scan and serve —
//! with a broker password each, a factory token and an API token, JSON logs
//! at debug level — and none of those secrets appears in anything they
//! print.

#![allow(clippy::print_stderr)]

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use burnin_testkit::vhost::TestVhost;
use burnin_testkit::{Device, FactoryStandIn, binary, wait_for_agents};

const AGENT_PW: &str = "agentPW-s3cr3t-1";
const EDGE_PW: &str = "edgePW-s3cr3t-2";
const FACTORY_TOKEN: &str = "factoryTOKEN-s3cr3t-3";
const API_TOKEN: &str = "apiTOKEN-s3cr3t-4";

/// The README's "Securing the broker" permissions.
const AGENT_PERMS: [&str; 3] = [
    r"^amq\.gen-.*$",
    r"^(amq\.default|amq\.gen-.*)$",
    r"^(devicescan|amq\.gen-.*)$",
];
const EDGE_PERMS: [&str; 3] = [
    r"^(devicescan|hwinfo_queue|hwinfo_queue\.rejected)$",
    r"^(devicescan|amq\.default)$",
    r"^hwinfo_queue$",
];

fn http(port: u16, method: &str, path: &str, body: &str) -> (u16, String) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {API_TOKEN}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    let status = out
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = out.split("\r\n\r\n").nth(1).unwrap_or_default().to_owned();
    (status, body)
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn output_of(mut child: Child) -> String {
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let start = Instant::now();
    while matches!(child.try_wait(), Ok(None)) && start.elapsed() < Duration::from_secs(15) {
        std::thread::sleep(Duration::from_millis(100));
    }
    let _ = child.kill();
    let out = child.wait_with_output().unwrap();
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[test]
fn least_privilege_users_work_and_no_secret_is_ever_printed() {
    let Some(vhost) = TestVhost::new("secrets") else {
        return;
    };
    vhost.add_user(
        "sec-agent",
        AGENT_PW,
        AGENT_PERMS[0],
        AGENT_PERMS[1],
        AGENT_PERMS[2],
    );
    vhost.add_user(
        "sec-edge",
        EDGE_PW,
        EDGE_PERMS[0],
        EDGE_PERMS[1],
        EDGE_PERMS[2],
    );
    let agent_url = vhost.url_for("sec-agent", AGENT_PW);
    let edge_url = vhost.url_for("sec-edge", EDGE_PW);

    let factory = FactoryStandIn::start();
    factory.set_mes("SEC-1", &["02:00:00:00:0b:01"]);
    let dir = tempfile::tempdir().unwrap();
    let tree = dir.path().join("dut");
    Device::new("SEC-1", &["02:00:00:00:0b:01"]).write_tree(&tree);
    let mes_url = factory.url("/mes/{sn}");
    let (log_url, pair_url, notify_url) = (
        factory.url("/log"),
        factory.url("/pair"),
        factory.url("/notify"),
    );
    let factory_flags = [
        "--mes-url",
        &mes_url,
        "--log-url",
        &log_url,
        "--pair-url",
        &pair_url,
        "--notify-url",
        &notify_url,
        "--factory-token",
        FACTORY_TOKEN,
        "--log-format",
        "json",
    ];
    let edge = binary("burnin-edge");
    let mut outputs = Vec::new();

    // The edge user declares the exchange and queues (the agent user may not).
    let first = Command::new(&edge)
        .args([
            "scan",
            "--amqp-url",
            &edge_url,
            "--operation-id",
            "900",
            "--window",
            "1s",
        ])
        .args(factory_flags)
        .env("RUST_LOG", "debug")
        .output()
        .unwrap();
    outputs.push(format!(
        "{}{}",
        String::from_utf8_lossy(&first.stdout),
        String::from_utf8_lossy(&first.stderr)
    ));
    assert_ne!(
        first.status.code(),
        Some(3),
        "edge user refused: {}",
        outputs[0]
    );

    let agent = Command::new(binary("burnin-agent"))
        .args([
            "run",
            "--amqp-url",
            &agent_url,
            "--log-format",
            "json",
            "--sysfs-root",
        ])
        .arg(&tree)
        .env("RUST_LOG", "debug")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
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
        1,
    );

    let scan = Command::new(&edge)
        .args([
            "scan",
            "--amqp-url",
            &edge_url,
            "--operation-id",
            "901",
            "--expect",
            "SEC-1",
        ])
        .args(factory_flags)
        .env("RUST_LOG", "debug")
        .output()
        .unwrap();
    let scan_out = format!(
        "{}{}",
        String::from_utf8_lossy(&scan.stdout),
        String::from_utf8_lossy(&scan.stderr)
    );
    assert_eq!(scan.status.code(), Some(0), "{scan_out}");
    outputs.push(scan_out);

    let port = free_port();
    let state = dir.path().join("state.sqlite3");
    let serve = Command::new(&edge)
        .args(["serve", "--amqp-url", &edge_url, "--api-token", API_TOKEN])
        .args(["--listen", &format!("127.0.0.1:{port}"), "--state-db"])
        .arg(&state)
        .args(factory_flags)
        .env("RUST_LOG", "debug")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let start = Instant::now();
    while TcpStream::connect(("127.0.0.1", port)).is_err()
        || http(port, "GET", "/healthz", "").0 != 200
    {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "serve did not get ready"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let (status, body) = http(
        port,
        "POST",
        "/scans",
        r#"{"operationId": 902, "expected": ["SEC-1"], "windowSecs": 20}"#,
    );
    assert_eq!(status, 202, "{body}");
    let start = Instant::now();
    loop {
        let (_, body) = http(port, "GET", "/scans/902", "");
        if body.contains(r#""state":"done""#) {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "operation 902: {body}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    outputs.push(output_of(serve));
    outputs.push(output_of(agent));

    // The token was really sent (so its absence from logs means something).
    let notify = factory.requests_to("/notify");
    assert!(notify.len() >= 3, "three operations notified");
    assert_eq!(
        notify[0].header("authorization"),
        Some(format!("Bearer {FACTORY_TOKEN}").as_str())
    );
    let everything = outputs.join("\n");
    assert!(
        everything.contains("\"level\":\"DEBUG\""),
        "debug logs were on"
    );
    for secret in [AGENT_PW, EDGE_PW, FACTORY_TOKEN, API_TOKEN] {
        assert!(
            !everything.contains(secret),
            "{secret} was printed:\n{everything}"
        );
    }
}
