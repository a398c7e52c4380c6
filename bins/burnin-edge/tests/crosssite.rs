//! No scans from another web site (`burnin_service::guard`): the real
//! `burnin-edge serve` on 127.0.0.1, asked over TCP with the headers a
//! browser would send, and headless Chromium on a page served from another
//! origin (another port of 127.0.0.1), trying the requests a browser sends
//! without a preflight: a `fetch` with a `text/plain` body and an HTML form
//! posted as `text/plain`. And a name re-pointed at 127.0.0.1 (DNS
//! rebinding, through Chromium's `--host-resolver-rules`).

mod support;

use std::io::{Read, Write};
use std::net::TcpListener;
use std::time::Duration;

use burnin_testkit::vhost::TestVhost;
use burnin_testkit::{FactoryStandIn, binary};
use serde_json::{Value, json};
use support::{Browser, Serve, request};

/// The operation ids `GET /scans` lists (asked the way curl would).
fn operations(serve: &Serve) -> Vec<String> {
    let (status, doc) = serve.get("/scans");
    assert_eq!(status, 200, "{doc}");
    doc.as_array()
        .unwrap()
        .iter()
        .map(|o| match &o["operationId"] {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        })
        .collect()
}

fn body(id: &str) -> Vec<u8> {
    json!({"operationId": id, "windowSecs": 1})
        .to_string()
        .into_bytes()
}

fn error_of(text: &str) -> String {
    serde_json::from_str::<Value>(text)
        .ok()
        .and_then(|d| d["error"].as_str().map(str::to_owned))
        .unwrap_or_else(|| panic!("not a JSON error: {text}"))
}

#[test]
fn a_post_is_taken_only_as_json() {
    let Some(vhost) = TestVhost::new("xsite-json") else {
        return;
    };
    let factory = FactoryStandIn::start();
    let dir = tempfile::tempdir().unwrap();
    let serve = Serve::start(&vhost.url(), &factory, &dir.path().join("s.db"), None, &[]);
    let addr = serve.addr.as_str();
    for (i, ct) in [
        Some("text/plain"),
        Some("text/plain;charset=UTF-8"),
        Some("application/x-www-form-urlencoded"),
        Some("multipart/form-data; boundary=x"),
        Some("application/jsonx"),
        None,
    ]
    .into_iter()
    .enumerate()
    {
        let mut headers = vec![("Host", addr)];
        if let Some(ct) = ct {
            headers.push(("Content-Type", ct));
        }
        let (status, text) = request(
            addr,
            "POST",
            "/scans",
            &headers,
            Some(&body(&format!("ct-{i}"))),
        );
        assert_eq!(status, 415, "{ct:?}: {text}");
        let error = error_of(&text);
        assert!(
            error.contains("Content-Type: application/json"),
            "{ct:?}: {error}"
        );
    }
    assert_eq!(operations(&serve), Vec::<String>::new(), "nothing started");
    for (id, ct) in [
        ("json-1", "application/json"),
        ("json-2", "application/json; charset=utf-8"),
        ("json-3", "Application/JSON"),
    ] {
        let (status, text) = request(
            addr,
            "POST",
            "/scans",
            &[("Host", addr), ("Content-Type", ct)],
            Some(&body(id)),
        );
        assert_eq!(status, 202, "{ct}: {text}");
    }
}

#[test]
fn a_foreign_origin_is_refused_unless_let_in() {
    let Some(vhost) = TestVhost::new("xsite-origin") else {
        return;
    };
    let factory = FactoryStandIn::start();
    let dir = tempfile::tempdir().unwrap();
    let serve = Serve::start(
        &vhost.url(),
        &factory,
        &dir.path().join("s.db"),
        None,
        &["--allow-origin", "http://127.0.0.1:1"],
    );
    let addr = serve.addr.as_str();
    let own = format!("http://{addr}");
    let post = |id: &str, origin: &str| {
        request(
            addr,
            "POST",
            "/scans",
            &[
                ("Host", addr),
                ("Content-Type", "application/json"),
                ("Origin", origin),
            ],
            Some(&body(id)),
        )
    };
    for (i, origin) in [
        "http://127.0.0.1:2",
        "https://evil.example",
        "null",
        "http://localhost:1",
    ]
    .into_iter()
    .enumerate()
    {
        let (status, text) = post(&format!("o-{i}"), origin);
        assert_eq!(status, 403, "{origin}: {text}");
        let error = error_of(&text);
        assert!(
            error.contains(origin) && error.contains("--allow-origin"),
            "{error}"
        );
        // Reading is refused too.
        let (status, text) = request(
            addr,
            "GET",
            "/scans",
            &[("Host", addr), ("Origin", origin)],
            None,
        );
        assert_eq!(status, 403, "{origin}: {text}");
    }
    assert_eq!(operations(&serve), Vec::<String>::new(), "nothing started");
    assert_eq!(post("own", &own).0, 202, "its own page");
    assert_eq!(
        post("let-in", "http://127.0.0.1:1").0,
        202,
        "--allow-origin"
    );
    // By another name of this machine: the origin of that name.
    let (status, text) = request(
        addr,
        "POST",
        "/scans",
        &[
            ("Host", "localhost"),
            ("Content-Type", "application/json"),
            ("Origin", "http://localhost"),
        ],
        Some(&body("by-localhost")),
    );
    assert_eq!(status, 202, "{text}");
}

#[test]
fn without_a_token_a_foreign_host_is_refused() {
    let Some(vhost) = TestVhost::new("xsite-host") else {
        return;
    };
    let factory = FactoryStandIn::start();
    let dir = tempfile::tempdir().unwrap();
    let serve = Serve::start(
        &vhost.url(),
        &factory,
        &dir.path().join("s.db"),
        None,
        &["--advertise-url", "http://line-3.example:8080"],
    );
    let addr = serve.addr.as_str();
    let port = addr.rsplit(':').next().unwrap();
    for host in ["evil.example", &format!("evil.example:{port}"), "10.0.0.5"] {
        for path in ["/scans", "/", "/events", "/healthz"] {
            let (status, text) = request(addr, "GET", path, &[("Host", host)], None);
            assert_eq!(status, 421, "{host} {path}: {text}");
            let error = error_of(&text);
            assert!(
                error.contains(host) && error.contains("--advertise-url"),
                "{error}"
            );
        }
        let (status, _) = request(
            addr,
            "POST",
            "/scans",
            &[("Host", host), ("Content-Type", "application/json")],
            Some(&body("rebound")),
        );
        assert_eq!(status, 421);
    }
    assert_eq!(operations(&serve), Vec::<String>::new(), "nothing started");
    for host in [
        addr.to_owned(),
        format!("localhost:{port}"),
        "localhost".to_owned(),
        format!("[::1]:{port}"),
        "line-3.example:8080".to_owned(),
    ] {
        let (status, text) = request(addr, "GET", "/scans", &[("Host", &host)], None);
        assert_eq!(status, 200, "{host}: {text}");
    }
}

#[test]
fn with_a_token_any_host_may_be_used_but_origins_are_still_checked() {
    let Some(vhost) = TestVhost::new("xsite-token") else {
        return;
    };
    let factory = FactoryStandIn::start();
    let dir = tempfile::tempdir().unwrap();
    let serve = Serve::start(
        &vhost.url(),
        &factory,
        &dir.path().join("s.db"),
        Some("tok"),
        &[],
    );
    let addr = serve.addr.as_str();
    let auth = [("Authorization", "Bearer tok")];
    let (status, text) = request(
        addr,
        "GET",
        "/scans",
        &[("Host", "edge.plant.example"), auth[0]],
        None,
    );
    assert_eq!(status, 200, "a proxy's name: {text}");
    let (status, text) = request(
        addr,
        "GET",
        "/scans",
        &[
            ("Host", "edge.plant.example"),
            ("Origin", "http://evil.example"),
            auth[0],
        ],
        None,
    );
    assert_eq!(status, 403, "{text}");
}

#[test]
fn a_bad_allow_origin_is_refused_at_start() {
    let out = std::process::Command::new(binary("burnin-edge"))
        .args([
            "serve",
            "--amqp-url",
            "amqp://127.0.0.1:1/%2f",
            "--mes-file",
            "/nonexistent",
            "--out-dir",
            "/nonexistent",
            "--allow-origin",
            "http://edge.example/page",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("--allow-origin") && stderr.contains("scheme://host[:port]"),
        "{stderr}"
    );
}

/// A one-page web site on another port of 127.0.0.1: every request gets
/// `html`. Runs until the test ends.
fn other_site(html: String) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut s) = stream else { continue };
            let mut buf = [0u8; 4096];
            let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
            let _ = s.read(&mut buf);
            let _ = write!(
                s,
                "HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{html}",
                html.len()
            );
        }
    });
    url
}

#[test]
fn a_page_of_another_site_cannot_start_a_scan_in_chromium() {
    let Some(vhost) = TestVhost::new("xsite-browser") else {
        return;
    };
    let factory = FactoryStandIn::start();
    let dir = tempfile::tempdir().unwrap();
    let serve = Serve::start(&vhost.url(), &factory, &dir.path().join("s.db"), None, &[]);
    let edge = serve.url("");
    // The form's one field makes a text/plain body that is valid JSON:
    // name `{"operationId":"xsite-form","operatorId":"`, `=`, value `"}`.
    let page = format!(
        r#"<!doctype html><title>another site</title>
<iframe name="sink" id="sink"></iframe>
<form id="f" method="post" enctype="text/plain" action="{edge}/scans" target="sink">
<input type="hidden" name='{{"operationId":"xsite-form","operatorId":"' value='"}}'>
</form>"#
    );
    let site = other_site(page);
    // Chromium is also told that rebind.example is 127.0.0.1.
    let b = Browser::start_with(&["--host-resolver-rules=MAP rebind.example 127.0.0.1"]);
    b.goto(&format!("{site}/"));

    // 1. fetch with a text/plain body: no preflight, the body is sent.
    let outcome = b.js(
        "return fetch(arguments[0] + '/scans', {method: 'POST', mode: 'no-cors', \
         headers: {'Content-Type': 'text/plain'}, \
         body: JSON.stringify({operationId: 'xsite-fetch', windowSecs: 1})}) \
         .then(() => 'sent', e => 'error: ' + e)",
        vec![json!(edge)],
    );
    assert_eq!(outcome, json!("sent"), "the browser sent it");
    // 2. fetch as JSON: the browser asks first (preflight) and gives up.
    let outcome = b.js(
        "return fetch(arguments[0] + '/scans', {method: 'POST', \
         headers: {'Content-Type': 'application/json'}, \
         body: JSON.stringify({operationId: 'xsite-json', windowSecs: 1})}) \
         .then(r => 'answered ' + r.status, e => 'blocked')",
        vec![json!(edge)],
    );
    assert_eq!(outcome, json!("blocked"));
    // 3. the form, posted into the frame.
    b.js(
        "window.formDone = false; \
         document.getElementById('sink').onload = () => { window.formDone = true; }; \
         document.getElementById('f').submit(); return true",
        vec![],
    );
    b.wait_until(
        "the form's answer in the frame",
        Duration::from_secs(10),
        "return window.formDone === true",
    );
    b.screenshot("xsite-1-other-site");
    assert_eq!(
        operations(&serve),
        Vec::<String>::new(),
        "no scan was started from another site"
    );

    // 4. DNS rebinding: a name that resolves to 127.0.0.1, on the edge's
    // port, is a same-origin page for the browser. The edge does not
    // answer it, and a fetch from that page is refused too.
    let port = serve.addr.rsplit(':').next().unwrap();
    let rebound = format!("http://rebind.example:{port}");
    b.goto(&format!("{rebound}/"));
    let shown = b.js("return document.body.innerText", vec![]);
    assert!(
        shown
            .as_str()
            .unwrap_or_default()
            .contains("does not name this edge"),
        "{shown}"
    );
    let outcome = b.js(
        "return fetch('/scans', {method: 'POST', headers: {'Content-Type': 'application/json'}, \
         body: JSON.stringify({operationId: 'xsite-rebound', windowSecs: 1})}) \
         .then(r => r.status, e => 'error: ' + e)",
        vec![],
    );
    assert_eq!(outcome, json!(421));
    b.screenshot("xsite-2-rebound");
    assert_eq!(operations(&serve), Vec::<String>::new(), "still none");

    // The edge's own page still starts nothing by itself but can read.
    b.goto(&serve.url("/"));
    let status = b.js(
        "return fetch('/scans').then(r => r.status, e => 'error: ' + e)",
        vec![],
    );
    assert_eq!(status, json!(200));
    let status = b.js(
        "return fetch('/scans', {method: 'POST', headers: {'Content-Type': 'application/json'}, \
         body: JSON.stringify({operationId: 'own-page', windowSecs: 1})}).then(r => r.status)",
        vec![],
    );
    assert_eq!(status, json!(202), "the edge's own origin may POST");
}
