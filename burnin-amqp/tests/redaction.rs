//! No password appears in any log line, lapin's own included (its own test
//! binary: it installs a global trace-level subscriber).

mod common;

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use burnin_core::OperationId;
use burnin_testkit::vhost::TestVhost;
use common::*;

#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_password_in_captured_logs() {
    let Some(vhost) = TestVhost::new("redact") else {
        return;
    };
    let captured = Captured::default();
    let writer = captured.clone();
    tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .init();

    let password = format!("pw-{:016x}", fastrand::u64(..));
    let user = format!("redact-{}", vhost.name());
    vhost.add_user(&user, &password, ".*", ".*", ".*");
    let url = vhost.url_for(&user, &password);

    // Connect, serve, lose the connection, reconnect, retry a reply.
    let mut agent = start_agent(config(&url), 1).await;
    let raw = Raw::connect(&vhost.url()).await;
    raw.publish(
        "devicescan",
        "",
        &command(
            OperationId::Number(1),
            "hwinfo_queue",
            Duration::from_secs(2),
        ),
    )
    .await;
    let outcome = agent.next_outcome(Duration::from_secs(10)).await;
    tracing::error!("{outcome}");
    vhost.close_all_connections();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (publisher, _stream) = burnin_amqp::edge::connect(config(&url)).await.unwrap();
    publisher.close().await;
    agent.stop().await;

    // Errors carry the redacted URL too.
    let mut bad = config(&format!("amqp://{user}:{password}@127.0.0.1:1/x"));
    bad.connect_timeout = Duration::from_secs(2);
    let err = burnin_amqp::agent::connect(bad).await.unwrap_err();
    tracing::error!("{err}");
    let err = burnin_amqp::agent::connect(config(&format!(
        "amqp://{user}:{password}@127.0.0.1:5672/no-such-vhost"
    )))
    .await
    .unwrap_err();
    tracing::error!("{err} / {err:?}");
    let err = burnin_amqp::agent::connect(config(&format!("amqp://{user}:{password}@[::1/x")))
        .await
        .unwrap_err();
    tracing::error!("{err} / {err:?}");
    tracing::info!(config = ?config(&url), "config");
    raw.close().await;

    let logs = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    assert!(logs.lines().count() > 20, "lapin and burnin logged: {logs}");
    assert!(logs.contains("reconnect"), "{logs}");
    assert!(
        logs.contains(&format!("{user}:***@")),
        "URLs are shown redacted: {logs}"
    );
    assert!(!logs.contains(&password), "a password leaked into the logs");
}
