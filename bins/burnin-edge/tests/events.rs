//! The event stream through the real `burnin-edge serve`: a client that
//! reconnects with `Last-Event-ID` gets exactly the events it missed; one
//! whose id is no longer kept (or was never issued) gets `reset`; and the
//! snapshot of `GET /scans/{id}` lists expected devices as waiting from the
//! start.

mod support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use burnin_testkit::vhost::TestVhost;
use burnin_testkit::{AgentFleet, Device, FactoryStandIn};
use serde_json::{Value, json};
use support::Serve;

/// Reads `/events` (with `Last-Event-ID` if given) until `n` events with
/// data arrived or 15 s passed; returns `(event, id, data)` triples.
fn read_events(addr: &str, last: Option<u64>, n: usize) -> Vec<(String, Option<u64>, Value)> {
    let mut s = TcpStream::connect(addr).unwrap();
    let mut head = format!("GET /events HTTP/1.1\r\nHost: {addr}\r\n");
    if let Some(id) = last {
        head.push_str(&format!("Last-Event-ID: {id}\r\n"));
    }
    head.push_str("\r\n");
    s.write_all(head.as_bytes()).unwrap();
    s.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let start = Instant::now();
    let mut text = String::new();
    let mut buf = [0u8; 65536];
    loop {
        if let Ok(k) = s.read(&mut buf) {
            if k == 0 {
                break;
            }
            text.push_str(&String::from_utf8_lossy(&buf[..k]));
        }
        let events = parse(&text);
        if events.len() >= n || start.elapsed() > Duration::from_secs(15) {
            return events;
        }
    }
    parse(&text)
}

fn parse(text: &str) -> Vec<(String, Option<u64>, Value)> {
    let Some((_, body)) = text.split_once("\r\n\r\n") else {
        return vec![];
    };
    let mut out = Vec::new();
    for block in body.split("\n\n") {
        let (mut event, mut id, mut data) = (String::from("message"), None, None);
        for line in block.lines() {
            if let Some(v) = line.strip_prefix("event: ") {
                event = v.into();
            } else if let Some(v) = line.strip_prefix("id: ") {
                id = v.trim().parse().ok();
            } else if let Some(v) = line.strip_prefix("data: ") {
                data = serde_json::from_str(v).ok();
            }
        }
        if let Some(d) = data {
            out.push((event, id, d));
        }
    }
    out
}

#[test]
fn a_reconnect_with_last_event_id_gets_exactly_what_it_missed() {
    let Some(vhost) = TestVhost::new("events") else {
        return;
    };
    let factory = FactoryStandIn::start();
    factory.set_mes("EV-1", &["02:00:00:0d:00:01"]);
    factory.set_mes("EV-2", &["02:00:00:0d:00:02"]);
    let _fleet = AgentFleet::start(
        &vhost,
        &[
            Device::new("EV-1", &["02:00:00:0d:00:01"]),
            Device::new("EV-2", &["02:00:00:0d:00:02"]),
        ],
        &[],
    );
    let dir = tempfile::tempdir().unwrap();
    let serve = Serve::start(&vhost.url(), &factory, &dir.path().join("s.db"), None, &[]);
    let hello = read_events(&serve.addr, None, 1);
    assert_eq!(hello[0].0, "hello");
    let start_id = hello[0].2["lastEventId"].as_u64().unwrap();

    let (status, _) = serve
        .post(&json!({"operationId": 5, "expected": ["EV-1", "EV-2", "EV-3"], "windowSecs": 3}));
    assert_eq!(status, 202);
    // Waiting from the start: EV-3 has no agent.
    let (_, doc) = serve.get("/scans/5");
    let ev3 = doc["devices"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["sn"] == "EV-3")
        .cloned()
        .unwrap();
    assert_eq!(ev3["state"], "waiting", "{doc}");
    serve.wait_finished("5", Duration::from_secs(20));

    // Everything since the hello: operation, 2 replied, reporting, 3
    // results, 3 deliveries, done.
    let all = read_events(&serve.addr, Some(start_id), 12);
    let kinds: Vec<&str> = all.iter().map(|e| e.0.as_str()).collect();
    assert_eq!(kinds[0], "hello");
    let events = &all[1..];
    assert_eq!(events.len(), 11, "{kinds:?}");
    let ids: Vec<u64> = events.iter().map(|e| e.1.unwrap()).collect();
    assert!(
        ids.windows(2).all(|w| w[1] == w[0] + 1),
        "consecutive: {ids:?}"
    );
    assert_eq!(ids[0], start_id + 1);
    for (_, id, data) in events {
        assert_eq!(data["id"].as_u64(), *id);
        assert_eq!(data["operationId"], 5);
    }
    let states: Vec<String> = events
        .iter()
        .filter(|e| e.0 == "device")
        .map(|e| {
            format!(
                "{}={}",
                e.2["device"]["sn"].as_str().unwrap(),
                e.2["device"]["state"].as_str().unwrap()
            )
        })
        .collect();
    assert_eq!(states.iter().filter(|s| s.ends_with("=replied")).count(), 2);
    assert!(states.contains(&"EV-1=passed".to_owned()), "{states:?}");
    assert!(states.contains(&"EV-3=failed".to_owned()), "{states:?}");
    assert_eq!(events.last().unwrap().2["state"], "done");

    // Reconnecting after the fifth: exactly the sixth onwards.
    let rest = read_events(&serve.addr, Some(ids[4]), 7);
    let rest_ids: Vec<u64> = rest[1..].iter().map(|e| e.1.unwrap()).collect();
    assert_eq!(rest_ids, ids[5..].to_vec());

    // An id this server never issued (e.g. from before a restart): reset.
    let reset = read_events(&serve.addr, Some(ids[10] + 1000), 2);
    assert_eq!(reset[1].0, "reset", "{reset:?}");
    assert_eq!(reset[1].2["lastEventId"], ids[10]);
    // A bad header is a clear 400.
    let (status, body) = {
        let mut s = TcpStream::connect(&serve.addr).unwrap();
        write!(
            s,
            "GET /events HTTP/1.1\r\nHost: {}\r\nLast-Event-ID: yesterday\r\nConnection: close\r\n\r\n",
            serve.addr
        )
        .unwrap();
        let mut t = String::new();
        let _ = s.read_to_string(&mut t);
        (t[9..12].to_owned(), t)
    };
    assert_eq!(status, "400", "{body}");
    assert!(body.contains("Last-Event-ID"), "{body}");
}
