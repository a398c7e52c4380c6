//! A scan that never ends cannot happen: each stall a peer can cause —
//! a port that accepts TCP but never speaks AMQP, a broker that never
//! confirms the command, an MES that never answers — ends the real
//! `burnin-edge scan` by its documented bound (connecting + window +
//! reporting budget + grace), with exit 3 and a message naming what it was
//! waiting for, and the notification carries it. These are correctness
//! bounds, not speed figures: each run is far below its bound.

mod support;

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use burnin_testkit::vhost::TestVhost;
use burnin_testkit::{AgentFleet, Device, FactoryStandIn};
use support::{FileFactory, scan};

/// A TCP port that accepts connections and never sends a byte.
fn silent_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for conn in listener.incoming().flatten() {
            held.push(conn);
        }
    });
    port
}

/// The bound `scan` documents, for a factory of files (every bound at its
/// default: MES and deliveries 30 s, store and broker 10 s, grace 5 s,
/// connecting 5 s + 10 s).
fn file_bound(window: Duration) -> Duration {
    let reporting = Duration::from_secs(30 + 3 * 30 + 5 * 10);
    Duration::from_secs(15) + window + reporting + Duration::from_secs(5)
}

#[test]
fn a_port_that_accepts_tcp_but_never_speaks_amqp_ends_the_scan_with_exit_3() {
    let port = silent_port();
    let files = FileFactory::new("{}");
    let url = format!("amqp://guest:guest@127.0.0.1:{port}/%2f");
    let run = scan(&files.scan_args(&url, "61", &["--window", "2s"]));
    assert_eq!(run.code, Some(3), "{}\n{}", run.stdout, run.stderr);
    assert!(
        run.elapsed < file_bound(Duration::from_secs(2)),
        "{:?}",
        run.elapsed
    );
    assert!(
        run.stderr.contains("the broker could not be used")
            && run.stderr.contains(&format!("127.0.0.1:{port}")),
        "{}",
        run.stderr
    );
    let notify = files.read("61.notify.json");
    assert!(
        notify["error"].as_str().unwrap().contains("broker"),
        "{notify}"
    );
    eprintln!("ended after {:?}", run.elapsed);
}

#[test]
fn an_mes_that_never_answers_ends_the_scan_with_exit_3_naming_mes() {
    let Some(vhost) = TestVhost::new("stall-mes") else {
        return;
    };
    let mes_port = silent_port();
    let factory = FactoryStandIn::start();
    let _fleet = AgentFleet::start(
        &vhost,
        &[Device::new("SLOW-1", &["02:00:00:00:09:01"])],
        &[],
    );
    let mes_url = format!("http://127.0.0.1:{mes_port}/mes/{{sn}}");
    let (log, notify, pair) = (
        factory.url("/log"),
        factory.url("/notify"),
        factory.url("/pair"),
    );
    let run = scan(&[
        "--amqp-url",
        &vhost.url(),
        "--mes-url",
        &mes_url,
        "--log-url",
        &log,
        "--notify-url",
        &notify,
        "--pair-url",
        &pair,
        "--operation-id",
        "62",
        "--expect",
        "SLOW-1",
        "--window",
        "5s",
        "--http-timeout",
        "1s",
        "--http-retries",
        "1",
        "--mes-outage-wait",
        "3s",
    ]);
    assert_eq!(run.code, Some(3), "{}\n{}", run.stdout, run.stderr);
    // The bound: connecting 15 s + window 5 s + the MES outage wait 3 s +
    // reporting (MES, three deliveries: each 2 × 1 s + 30 s Retry-After
    // cap + 1 s; store 5 × 10 s) + grace 5 s.
    let request = Duration::from_secs(2 + 30 + 1);
    let bound = Duration::from_secs(15 + 5 + 3 + 50 + 5) + request * 4;
    assert!(run.elapsed < bound, "{:?} >= {bound:?}", run.elapsed);
    assert!(
        run.stdout
            .contains("MES could not be asked about 1 device(s) (SLOW-1)"),
        "{}",
        run.stdout
    );
    let sent = factory.requests_to("/notify");
    assert_eq!(sent.len(), 1);
    let error = sent[0].json()["error"].as_str().unwrap().to_owned();
    assert!(
        error.contains("MES could not be asked about 1 device(s) (SLOW-1)"),
        "{error}"
    );
    assert!(
        factory.requests_to("/log").is_empty(),
        "an undecided device is never logged as failed"
    );
    assert!(
        factory.requests_to("/pair").is_empty(),
        "never paired unverified"
    );
    eprintln!("ended after {:?}: {error}", run.elapsed);
}

/// A TCP proxy to RabbitMQ that forwards everything until the client's
/// first `basic.publish`, then swallows every later byte from the client
/// (the broker keeps talking: heartbeats flow, the connection looks
/// alive), so the publish is never confirmed and nothing the client sends
/// afterwards (a new channel, a close) is ever answered.
fn freezing_proxy(upstream: &str) -> (u16, Arc<AtomicBool>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let frozen = Arc::new(AtomicBool::new(false));
    let upstream = upstream.to_owned();
    let seen = frozen.clone();
    std::thread::spawn(move || {
        for client in listener.incoming().flatten() {
            let server = TcpStream::connect(&upstream).unwrap();
            let (mut c_read, mut s_write) =
                (client.try_clone().unwrap(), server.try_clone().unwrap());
            let (mut s_read, mut c_write) = (server, client);
            std::thread::spawn(move || {
                let _ = std::io::copy(&mut s_read, &mut c_write);
                let _ = c_write.shutdown(Shutdown::Both);
            });
            let seen = seen.clone();
            std::thread::spawn(move || {
                let mut header = [0u8; 8];
                if c_read.read_exact(&mut header).is_err() || s_write.write_all(&header).is_err() {
                    return;
                }
                let mut frozen = false;
                loop {
                    let mut head = [0u8; 7];
                    if c_read.read_exact(&mut head).is_err() {
                        return;
                    }
                    let size = u32::from_be_bytes([head[3], head[4], head[5], head[6]]) as usize;
                    let mut rest = vec![0u8; size + 1];
                    if c_read.read_exact(&mut rest).is_err() {
                        return;
                    }
                    // A method frame of class 60 (basic), method 40 (publish).
                    if head[0] == 1 && rest.len() >= 4 && rest[..4] == [0, 60, 0, 40] {
                        frozen = true;
                        seen.store(true, Ordering::SeqCst);
                    }
                    if !frozen
                        && (s_write.write_all(&head).is_err() || s_write.write_all(&rest).is_err())
                    {
                        return;
                    }
                }
            });
        }
    });
    (port, frozen)
}

#[test]
fn a_broker_that_never_confirms_the_command_ends_the_scan_with_exit_3() {
    let Some(vhost) = TestVhost::new("stall-confirm") else {
        return;
    };
    let (port, frozen) = freezing_proxy("127.0.0.1:5672");
    let url = vhost
        .url()
        .replace("127.0.0.1:5672", &format!("127.0.0.1:{port}"));
    assert!(url.contains(&port.to_string()), "{url}");
    let files = FileFactory::new("{}");
    let run = scan(&files.scan_args(&url, "63", &["--expect", "NEVER-1", "--window", "3s"]));
    assert!(frozen.load(Ordering::SeqCst), "the proxy saw the publish");
    assert_eq!(run.code, Some(3), "{}\n{}", run.stdout, run.stderr);
    assert!(
        run.elapsed < file_bound(Duration::from_secs(3)),
        "{:?}",
        run.elapsed
    );
    let needle = "did not confirm the scan command of operation 63";
    assert!(
        run.stdout.contains(needle),
        "{}\n{}",
        run.stdout,
        run.stderr
    );
    let notify = files.read("63.notify.json");
    assert!(
        notify["error"].as_str().unwrap().contains(needle),
        "{notify}"
    );
    eprintln!("ended after {:?}\n{}", run.elapsed, run.stderr);
}
