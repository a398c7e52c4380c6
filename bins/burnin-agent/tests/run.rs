//! `burnin-agent run` as a real process against the local RabbitMQ: it
//! answers a scan through the broker, and stops cleanly on SIGTERM.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, SystemTime};

use burnin_amqp::AmqpConfig;
use burnin_core::{
    CommandPublisher, DeviceReport, OperationId, ReplyStream, ScanCommand, Timestamp,
};
use burnin_testkit::fixture::Fixture;
use burnin_testkit::vhost::TestVhost;

fn spawn_agent(url: &str, root: &std::path::Path, extra: &[&str]) -> Child {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_burnin-agent"));
    cmd.arg("run")
        .args([
            "--sysfs-root",
            root.to_str().unwrap(),
            "--serial",
            "RUN-SN-1",
        ])
        .args(extra)
        .env("BURNIN_AMQP_URL", url)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for var in [
        "BURNIN_SYSFS_ROOT",
        "BURNIN_SERIAL",
        "BURNIN_EXCHANGE",
        "BURNIN_REPLY_QUEUE",
        "BURNIN_AMQP_CA_FILE",
        "BURNIN_LOG_FORMAT",
    ] {
        cmd.env_remove(var);
    }
    cmd.spawn().expect("burnin-agent starts")
}

fn terminate(child: &Child) {
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_answers_a_scan_and_stops_on_sigterm() {
    let Some(vhost) = TestVhost::new("agentbin") else {
        return;
    };
    let password = format!("pw{:x}", fastrand_u64());
    let user = format!("bin-{}", vhost.name());
    // The least-privilege agent user of the README.
    vhost.add_user(
        &user,
        &password,
        r"^amq\.gen-.*$",
        r"^(amq\.default|amq\.gen-.*)$",
        r"^(devicescan|amq\.gen-.*)$",
    );
    let (publisher, mut replies) = burnin_amqp::edge::connect(AmqpConfig::new(vhost.url()))
        .await
        .unwrap();

    let dir = tempfile::tempdir().unwrap();
    Fixture::new(dir.path()).pci_nic("enp4s0", "0000:04:00.0", "E0:18:7D:2E:CA:68", "igb");
    let child = spawn_agent(
        &vhost.url_for(&user, &password),
        dir.path(),
        &["--log-format", "json"],
    );

    // Publish until the agent is bound and answers.
    let deadline = Timestamp::from_system_time(SystemTime::now() + Duration::from_secs(60));
    let command = ScanCommand {
        operation_id: OperationId::Text("bin-1".into()),
        operator_id: None,
        scan_mode: None,
        reply_to: "hwinfo_queue".into(),
        deadline,
        // As an edge before run numbers sends it.
        run: None,
        remaining_ms: None,
    };
    let delivery = tokio::time::timeout(Duration::from_secs(30), async {
        loop {
            publisher
                .publish(&command, Duration::from_secs(60))
                .await
                .unwrap();
            if let Ok(Some(r)) =
                tokio::time::timeout(Duration::from_millis(500), replies.next_reply()).await
            {
                break r.unwrap();
            }
        }
    })
    .await
    .expect("the agent answered");
    let report = DeviceReport::from_slice(&delivery.body).unwrap();
    assert_eq!(report.sn.as_str(), "RUN-SN-1");
    assert_eq!(report.operation_id, Some(OperationId::Text("bin-1".into())));
    assert_eq!(
        report.interfaces[0].macaddr.to_string(),
        "e0:18:7d:2e:ca:68"
    );
    delivery.ack().await.unwrap();

    terminate(&child);
    let out = tokio::task::spawn_blocking(move || child.wait_with_output().unwrap())
        .await
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(out.stdout.is_empty());
    assert!(stderr.contains("replied to operation bin-1"), "{stderr}");
    assert!(stderr.contains("SIGTERM"), "{stderr}");
    for line in stderr.lines() {
        serde_json::from_str::<serde_json::Value>(line)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
    }
    assert!(stderr.contains(&format!("{user}:***@")), "{stderr}");
    assert!(!stderr.contains(&password), "password leaked: {stderr}");
    // The connection is gone with the process: its queue too.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        vhost
            .queues()
            .iter()
            .all(|(q, _)| !q.starts_with("amq.gen-")),
        "{:?}",
        vhost.queues()
    );
    publisher.close().await;
}

#[test]
fn bad_configuration_exits_2_without_leaking_the_password() {
    let dir = tempfile::tempdir().unwrap();
    Fixture::new(dir.path()).pci_nic("enp4s0", "0000:04:00.0", "E0:18:7D:2E:CA:68", "igb");
    let out = spawn_agent(
        "amqp://u:sekrit@127.0.0.1:5672/%2f",
        dir.path(),
        &["--reply-queue", "amq.nope"],
    )
    .wait_with_output()
    .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("amq."), "{stderr}");

    let out = spawn_agent("ftp://u:sekrit@host/", dir.path(), &[])
        .wait_with_output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("u:***@host") && !stderr.contains("sekrit"),
        "{stderr}"
    );
}

fn fastrand_u64() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
        ^ u64::from(std::process::id())
}

/// Checks the log of a process whose login the broker refused: one clear
/// line per attempt naming the fix, no raw lapin output, no "aborting"
/// while it retries, and never the password.
fn assert_login_refused_clearly(stderr: &str, password: &str) {
    let lines: Vec<&str> = stderr
        .lines()
        .filter(|l| l.contains("refused the login"))
        .collect();
    assert!(lines.len() >= 2, "it keeps trying, saying so:\n{stderr}");
    for line in &lines {
        assert!(
            line.contains("(403 ACCESS_REFUSED): check the user and password in --amqp-url")
                && line.contains("guest:***@127.0.0.1:5672"),
            "{line}"
        );
    }
    for raw in ["Close {", "ShortString", "AMQPError", "aborting", "ERROR"] {
        assert!(!stderr.contains(raw), "{raw:?} in:\n{stderr}");
    }
    assert!(!stderr.contains(password), "the password leaked:\n{stderr}");
}

#[test]
fn a_wrong_password_is_one_clear_line_per_attempt_and_the_agent_keeps_trying() {
    let Some(vhost) = TestVhost::new("agentpw") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    Fixture::new(dir.path()).pci_nic("enp4s0", "0000:04:00.0", "E0:18:7D:2E:CA:68", "igb");
    let password = format!("wrong{:x}", fastrand_u64());
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_burnin-agent"));
    cmd.args(["run", "--sysfs-root", dir.path().to_str().unwrap()])
        .args(["--serial", "PW-1"])
        .env("BURNIN_AMQP_URL", vhost.url_for("guest", &password))
        .env_remove("RUST_LOG")
        .env_remove("BURNIN_LOG_FORMAT")
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let child = cmd.spawn().unwrap();
    std::thread::sleep(Duration::from_secs(3));
    terminate(&child);
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(0),
        "still running until SIGTERM: {stderr}"
    );
    assert_login_refused_clearly(&stderr, &password);
}
