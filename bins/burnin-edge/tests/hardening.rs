//! A server a bad client cannot starve: 1,500 connections that send half a
//! request head (and some that send nothing) are cut within the header
//! timeout, at the connection cap the oldest of them make room for new
//! ones, and while a flood holds more connections than the cap,
//! `/healthz`, the page and the API answer within a second. A scan running
//! meanwhile completes. Real `burnin-edge serve`, real agents, a vhost of
//! its own, the factory stand-in.

mod support;

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use burnin_testkit::vhost::TestVhost;
use burnin_testkit::{AgentFleet, FactoryStandIn};
use serde_json::json;
use support::{Serve, http};

const FLOOD: usize = 1500;

/// What the server did to a flood connection so far.
#[derive(Debug, PartialEq, Eq, Clone, Copy)]
enum Fate {
    Open,
    Refused503,
    Closed,
}

fn fate(s: &mut TcpStream, seen: &mut Vec<u8>) -> Fate {
    let mut buf = [0u8; 512];
    loop {
        match s.read(&mut buf) {
            Ok(0) => {
                return if seen.starts_with(b"HTTP/1.1 503") {
                    Fate::Refused503
                } else {
                    Fate::Closed
                };
            }
            Ok(n) => seen.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == ErrorKind::WouldBlock || e.kind() == ErrorKind::TimedOut => {
                return Fate::Open;
            }
            Err(_) => {
                return if seen.starts_with(b"HTTP/1.1 503") {
                    Fate::Refused503
                } else {
                    Fate::Closed
                };
            }
        }
    }
}

#[test]
fn a_half_open_flood_is_cut_within_the_header_timeout_and_a_scan_completes_meanwhile() {
    let Some(vhost) = TestVhost::new("flood") else {
        return;
    };
    let factory = FactoryStandIn::start();
    let devices = support::devices(&factory, "FL", 5, 0x0c);
    let _fleet = AgentFleet::start(&vhost, &devices, &[]);
    let dir = tempfile::tempdir().unwrap();
    let serve = Serve::start(
        &vhost.url(),
        &factory,
        &dir.path().join("s.db"),
        None,
        &["--header-timeout", "3s", "--max-connections", "300"],
    );

    // The scan starts first and runs while the flood holds the server.
    let (status, doc) = serve.post(&json!({
        "operationId": "during-flood",
        "expected": ["FL-1", "FL-2", "FL-3", "FL-4", "FL-5", "FL-SILENT"],
        "windowSecs": 8,
    }));
    assert_eq!(status, 202, "{doc}");

    let flood_start = Instant::now();
    let mut conns: Vec<(TcpStream, Vec<u8>)> = (0..FLOOD)
        .map(|i| {
            let mut s = TcpStream::connect(&serve.addr).unwrap();
            // Every 10th sends nothing at all; the others half a head.
            if i % 10 != 0 {
                s.write_all(b"GET /scans HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Half: ")
                    .unwrap();
            }
            s.set_read_timeout(Some(Duration::from_millis(1))).unwrap();
            (s, Vec::new())
        })
        .collect();
    let opened = flood_start.elapsed();

    // At the cap of 300, each new connection closes the oldest one not
    // answered yet: those still open are among the newest 300.
    std::thread::sleep(Duration::from_millis(1000));
    let early: Vec<Fate> = conns.iter_mut().map(|(s, b)| fate(s, b)).collect();
    let open: Vec<usize> = (0..FLOOD).filter(|&i| early[i] == Fate::Open).collect();
    assert!(
        open.len() <= 300,
        "at most --max-connections are held: {} open",
        open.len()
    );
    assert!(
        open.iter().all(|&i| i >= FLOOD - 300),
        "the oldest were closed to make room, yet these older ones are open: {:?}",
        open.iter()
            .filter(|&&i| i < FLOOD - 300)
            .collect::<Vec<_>>()
    );

    // Within the header timeout (3 s) plus slack, every one is cut.
    let mut fates = early;
    let cut_by = loop {
        for (f, (s, b)) in fates.iter_mut().zip(conns.iter_mut()) {
            if *f == Fate::Open {
                *f = fate(s, b);
            }
        }
        let open = fates.iter().filter(|f| **f == Fate::Open).count();
        if open == 0 {
            break flood_start.elapsed();
        }
        assert!(
            flood_start.elapsed() < opened + Duration::from_secs(3 + 5),
            "{open} half-open connections are still open after {:?} (header timeout 3 s)",
            flood_start.elapsed()
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    let refused = fates.iter().filter(|f| **f == Fate::Refused503).count();
    eprintln!(
        "flood: {FLOOD} connections opened in {opened:?}; {refused} refused with 503; all cut after {cut_by:?}"
    );
    // None had been answered, so none was refused: each made room by
    // closing an older one.
    assert_eq!(
        refused, 0,
        "refused with 503 while unanswered ones were held"
    );
    assert!(
        cut_by <= opened + Duration::from_secs(3 + 2),
        "cut within the header timeout of the last one opened: {cut_by:?}"
    );

    // The scan ran meanwhile and reported.
    let doc = serve.wait_finished("during-flood", Duration::from_secs(30));
    assert_eq!(doc["state"], "done", "{doc}");
    let states: Vec<(&str, &str)> = doc["devices"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| (d["sn"].as_str().unwrap(), d["state"].as_str().unwrap()))
        .collect();
    assert_eq!(
        states,
        vec![
            ("FL-1", "passed"),
            ("FL-2", "passed"),
            ("FL-3", "passed"),
            ("FL-4", "passed"),
            ("FL-5", "passed"),
            ("FL-SILENT", "failed"),
        ]
    );
    assert_eq!(factory.requests_to("/notify").len(), 1);
    // And the API serves again.
    let (status, _) = http(&serve.addr, "GET", "/healthz", None, None);
    assert_eq!(status, 200);
}

/// `GET path` on a connection of its own; the status, or why there was
/// none, within `limit` of the connect.
fn timed_get(addr: &str, path: &str, limit: Duration) -> (Result<u16, String>, Duration) {
    let start = Instant::now();
    let result = (|| {
        let mut s = TcpStream::connect_timeout(&addr.parse().unwrap(), limit)
            .map_err(|e| format!("connect: {e}"))?;
        write!(
            s,
            "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
        )
        .map_err(|e| format!("write: {e}"))?;
        let mut head = Vec::new();
        let mut buf = [0u8; 4096];
        while !head.windows(2).any(|w| w == b"\r\n") {
            let left = limit
                .checked_sub(start.elapsed())
                .filter(|d| !d.is_zero())
                .ok_or("no status line in time")?;
            s.set_read_timeout(Some(left)).unwrap();
            match s.read(&mut buf) {
                Ok(0) => return Err(format!("closed without an answer ({} bytes)", head.len())),
                Ok(n) => head.extend_from_slice(&buf[..n]),
                Err(e) => return Err(format!("read: {e}")),
            }
        }
        let line = String::from_utf8_lossy(&head).into_owned();
        line.split(' ')
            .nth(1)
            .and_then(|c| c.parse().ok())
            .ok_or_else(|| format!("not an HTTP answer: {line:?}"))
    })();
    (result, start.elapsed())
}

/// Holds `n` half-open connections to `addr` (half a request head each)
/// until `stop`: those the server closes are opened again, at most
/// `refill` per 100 ms. Returns how many it opened in all and how many the
/// server closed.
fn flood(
    addr: String,
    n: usize,
    refill: usize,
    held: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
) -> std::thread::JoinHandle<(usize, usize)> {
    std::thread::spawn(move || {
        let open = |opened: &mut usize| {
            let mut s =
                TcpStream::connect_timeout(&addr.parse().unwrap(), Duration::from_secs(1)).ok()?;
            s.write_all(b"GET /scans HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Half: ")
                .ok()?;
            s.set_nonblocking(true).unwrap();
            *opened += 1;
            Some(s)
        };
        let (mut opened, mut closed) = (0, 0);
        let mut conns: Vec<TcpStream> = Vec::with_capacity(n);
        while conns.len() < n {
            if let Some(s) = open(&mut opened) {
                conns.push(s);
            }
        }
        held.store(conns.len(), Ordering::SeqCst);
        let mut buf = [0u8; 512];
        while !stop.load(Ordering::SeqCst) {
            std::thread::sleep(Duration::from_millis(100));
            conns.retain_mut(|s| match s.read(&mut buf) {
                Err(e) if e.kind() == ErrorKind::WouldBlock => true,
                _ => {
                    closed += 1;
                    false
                }
            });
            for _ in 0..refill.min(n - conns.len()) {
                if let Some(s) = open(&mut opened) {
                    conns.push(s);
                }
            }
            held.store(conns.len(), Ordering::SeqCst);
        }
        (opened, closed)
    })
}

#[test]
fn health_page_and_api_answer_within_a_second_while_a_flood_holds_more_connections_than_the_cap() {
    let Some(vhost) = TestVhost::new("flood-health") else {
        return;
    };
    let factory = FactoryStandIn::start();
    let devices = support::devices(&factory, "FH", 3, 0x0d);
    let _fleet = AgentFleet::start(&vhost, &devices, &[]);
    let dir = tempfile::tempdir().unwrap();
    // The default header timeout (5 s): the flood opens again what it cuts.
    let serve = Serve::start(
        &vhost.url(),
        &factory,
        &dir.path().join("s.db"),
        None,
        &["--max-connections", "512"],
    );
    let (status, doc) = serve.post(&json!({
        "operationId": "under-flood",
        "expected": ["FH-1", "FH-2", "FH-3", "FH-SILENT"],
        "windowSecs": 6,
    }));
    assert_eq!(status, 202, "{doc}");

    // 1,200 half-open connections from this one address, held: up to 1,000
    // a second opened again as the edge closes them.
    const HELD: usize = 1200;
    let held = Arc::new(AtomicUsize::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let flooder = flood(serve.addr.clone(), HELD, 100, held.clone(), stop.clone());
    let start = Instant::now();
    while held.load(Ordering::SeqCst) < HELD {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "the flood could not open {HELD} connections"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    let limit = Duration::from_secs(1);
    let mut answers = Vec::new();
    let mut slowest = Duration::ZERO;
    for round in 0..10 {
        for path in ["/healthz", "/", "/scans/under-flood"] {
            let (status, took) = timed_get(&serve.addr, path, limit);
            slowest = slowest.max(took);
            answers.push((
                round,
                path.to_owned(),
                status,
                took,
                held.load(Ordering::SeqCst),
            ));
        }
        std::thread::sleep(Duration::from_millis(300));
    }
    stop.store(true, Ordering::SeqCst);
    let (opened, closed) = flooder.join().unwrap();
    eprintln!(
        "flood: {opened} half-open connections opened, {closed} closed by the edge; slowest answer {slowest:?}"
    );
    let bad: Vec<_> = answers
        .iter()
        .filter(|(_, _, status, took, _)| *status != Ok(200) || *took > limit)
        .collect();
    assert!(
        bad.is_empty(),
        "not answered 200 within 1 s during the flood (round, path, status, time, flood connections held): {bad:?}\n{}",
        serve.stderr()
    );
    // The flood was more than the cap: the edge closed the surplus.
    assert!(
        closed >= HELD - 512,
        "the edge closed only {closed} of the flood's {opened} connections"
    );

    // The scan ran meanwhile and reported.
    let doc = serve.wait_finished("under-flood", Duration::from_secs(30));
    assert_eq!(doc["state"], "done", "{doc}");
    let states: Vec<(&str, &str)> = doc["devices"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| (d["sn"].as_str().unwrap(), d["state"].as_str().unwrap()))
        .collect();
    assert_eq!(
        states,
        vec![
            ("FH-1", "passed"),
            ("FH-2", "passed"),
            ("FH-3", "passed"),
            ("FH-SILENT", "failed"),
        ]
    );
    assert_eq!(factory.requests_to("/notify").len(), 1);
}

#[test]
fn event_streams_per_operation_are_capped_with_a_503() {
    let Some(vhost) = TestVhost::new("streams") else {
        return;
    };
    let factory = FactoryStandIn::start();
    let dir = tempfile::tempdir().unwrap();
    let serve = Serve::start(
        &vhost.url(),
        &factory,
        &dir.path().join("s.db"),
        None,
        &["--max-streams", "3"],
    );
    let open = |path: &str| {
        let mut s = TcpStream::connect(&serve.addr).unwrap();
        write!(s, "GET {path} HTTP/1.1\r\nHost: {}\r\n\r\n", serve.addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut buf = [0u8; 256];
        let n = s.read(&mut buf).unwrap();
        (s, String::from_utf8_lossy(&buf[..n]).into_owned())
    };
    let streams: Vec<_> = (0..3).map(|_| open("/events")).collect();
    for (_, head) in &streams {
        assert!(head.starts_with("HTTP/1.1 200"), "{head}");
        assert!(head.contains("text/event-stream"), "{head}");
    }
    let (_s, head) = open("/events");
    assert!(
        head.starts_with("HTTP/1.1 503"),
        "the fourth is refused: {head}"
    );
    drop(streams);
    // Closed streams free their places.
    let start = Instant::now();
    loop {
        let (_s, head) = open("/events");
        if head.starts_with("HTTP/1.1 200") {
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(5), "{head}");
        std::thread::sleep(Duration::from_millis(50));
    }
}
