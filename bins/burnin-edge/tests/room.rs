//! The room view of the live page (SPEC §11.2) in a real browser (Debian's
//! headless Chromium through ChromeDriver), fed by a stand-in for the edge's
//! API: the page's own files, `GET /scans`, `GET /scans/{id}` and an event
//! stream whose events the test pushes. The stand-in lets the test give
//! devices any location — switches, ports, planned places — and any text a
//! device could send, markup included. It sends no Content-Security-Policy,
//! so what keeps markup inert here is the page itself (text, never HTML).
//! The same page against the real edge is `browser.rs`.
//!
//! Each step saves a screenshot under `target/browser/room-*.png`.

mod support;

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};
use support::Browser;

const INDEX: &str = include_str!("../../../burnin-service/assets/index.html");
const SCRIPT: &str = include_str!("../../../burnin-service/assets/app.js");
const STYLE: &str = include_str!("../../../burnin-service/assets/app.css");

/// What the stand-in answers: the operation (as `GET /scans/{id}`) and the
/// events pushed so far (each `(id, event)`; the stream sends them in order).
#[derive(Default)]
struct State {
    operation: Value,
    events: Vec<(u64, Value)>,
}

/// The edge's API as far as the page reads it, on a free port of
/// 127.0.0.1; one thread per connection, stopped with the test process.
struct Edge {
    addr: String,
    state: Arc<Mutex<State>>,
}

impl Edge {
    fn start(operation: Value) -> Edge {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let state = Arc::new(Mutex::new(State {
            operation,
            events: Vec::new(),
        }));
        let shared = state.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let state = shared.clone();
                std::thread::spawn(move || {
                    let _ = answer(stream, &state);
                });
            }
        });
        Edge { addr, state }
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Sends `device` (as the edge's event) to every page watching.
    fn push_device(&self, device: Value) {
        let mut s = self.state.lock().unwrap();
        let id = 1000 + s.events.len() as u64 + 1;
        let op = s.operation["operationId"].clone();
        s.events.push((
            id,
            json!({"id": id, "operationId": op, "type": "device", "device": device}),
        ));
    }
}

fn answer(mut stream: TcpStream, state: &Mutex<State>) -> std::io::Result<()> {
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut line = String::new();
    reader.read_line(&mut line)?;
    let path = line.split_whitespace().nth(1).unwrap_or("/").to_owned();
    loop {
        let mut header = String::new();
        if reader.read_line(&mut header)? == 0 || header == "\r\n" {
            break;
        }
    }
    let path = path.split('?').next().unwrap_or("/");
    let reply = |stream: &mut TcpStream, ctype: &str, body: &str| {
        write!(
            stream,
            "HTTP/1.1 200 OK\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\nCache-Control: no-cache\r\nConnection: close\r\n\r\n{body}",
            body.len()
        )
    };
    match path {
        "/" => reply(&mut stream, "text/html; charset=utf-8", INDEX),
        "/assets/app.js" => reply(&mut stream, "text/javascript; charset=utf-8", SCRIPT),
        "/assets/app.css" => reply(&mut stream, "text/css; charset=utf-8", STYLE),
        "/scans" => {
            let op = state.lock().unwrap().operation.clone();
            reply(&mut stream, "application/json", &json!([op]).to_string())
        }
        "/events" => {
            write!(
                stream,
                "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\n\r\n"
            )?;
            write!(stream, "event: hello\ndata: {{\"lastEventId\": 1000}}\n\n")?;
            stream.flush()?;
            let mut sent = 0;
            loop {
                let news: Vec<(u64, Value)> = state.lock().unwrap().events[sent..].to_vec();
                for (id, ev) in &news {
                    let kind = ev["type"].as_str().unwrap_or("device");
                    write!(stream, "event: {kind}\nid: {id}\ndata: {ev}\n\n")?;
                }
                sent += news.len();
                stream.flush()?;
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        p if p.starts_with("/scans/") => {
            let op = state.lock().unwrap().operation.clone();
            reply(&mut stream, "application/json", &op.to_string())
        }
        _ => write!(
            stream,
            "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
        ),
    }
}

/// Markup a lying device could send: none of it may run or become an element.
const IMG: &str = "<img src=x onerror=\"window.__pwned='img'\">";
const SCRIPT_TAG: &str = "<script>window.__pwned='script'</script>";

fn device(sn: &str, state: &str, location: Value, details: &[&str]) -> Value {
    let mut d = json!({
        "sn": sn, "state": state, "expected": true, "macinfo": [],
        "details": details, "location": location,
    });
    if state != "waiting" {
        d["hostname"] = json!(format!("host-{sn}"));
    }
    if state == "passed" || state == "failed" {
        d["result"] = json!(if state == "passed" { "1" } else { "0" });
    }
    d
}

fn no_reply(sn: &str) -> Value {
    let mut d = device(
        sn,
        "failed",
        Value::Null,
        &["no reply before the window closed"],
    );
    d.as_object_mut().unwrap().remove("hostname");
    d
}

fn at(switch: &str, port: &str, place: &str) -> Value {
    json!({"place": place, "switch": switch, "port": port, "planned": false})
}

fn operation() -> Value {
    let mut markup = device(
        "MARK-1",
        "failed",
        json!({"place": IMG, "switch": format!("<i>leaf-99</i>{SCRIPT_TAG}"), "port": "<b>swp1</b>", "planned": false}),
        &[
            &format!("enp1s0{IMG} 02:00:00:00:00:01 is not in MES"),
            SCRIPT_TAG,
        ],
    );
    markup["hostname"] = json!(IMG);
    let mut stranger = device("X-1", "replied", Value::Null, &[]);
    stranger["expected"] = json!(false);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let started = burnin_core::Timestamp::from_unix_seconds(now - 20);
    let deadline = burnin_core::Timestamp::from_unix_seconds(now + 600);
    json!({
        "operationId": 5,
        "state": "collecting",
        "started": started.to_string(),
        "deadline": deadline.to_string(),
        "target": "pair",
        "expected": ["R-10", "R-2", "R-7", "R-1", "R-31", "Z-1", "A-9", "MARK-1"],
        "replies": 7,
        "lastEventId": 1000,
        "deliveries": [],
        "devices": [
            device("R-10", "failed", at("leaf-07", "swp10", "B3 shelf 12 right"),
                &["enp4s0 02:00:00:00:10:01 is not in MES"]),
            device("R-2", "passed", at("leaf-07", "swp2", "B3 shelf 2 left"), &[]),
            device("R-7", "waiting", at("leaf-07", "swp7", "B3 shelf 7 left"), &[]),
            device("R-1", "replied",
                json!({"place": "B3 shelf 1 left", "switch": "leaf-07", "port": "swp1", "planned": true}), &[]),
            device("R-31", "passed", at("leaf-03", "swp1", "B1 shelf 1 left"), &[]),
            no_reply("Z-1"),
            device("A-9", "waiting", Value::Null, &[]),
            markup,
            stranger,
        ],
    })
}

fn js_str(b: &Browser, script: &str) -> String {
    b.js(script, vec![]).as_str().unwrap_or_default().to_owned()
}

fn nothing_injected(b: &Browser) {
    assert_eq!(
        b.js(
            "return [typeof window.__pwned, document.querySelectorAll('img, script:not([src]), b, i').length]",
            vec![]
        ),
        json!(["undefined", 0]),
        "markup a device sent ran or became an element"
    );
}

#[test]
fn the_room_groups_orders_colours_opens_filters_and_never_runs_what_a_device_sent() {
    let edge = Edge::start(operation());
    let b = Browser::start();
    b.goto(&edge.url("/"));
    b.wait_until(
        "the room",
        Duration::from_secs(10),
        "return document.querySelectorAll('#room .tile').length === 9",
    );

    // Groups: switches in natural order, "unplaced" last.
    let groups = b.js(
        "return [...document.querySelectorAll('#room section.switch')].map(s => s.dataset.switch)",
        vec![],
    );
    let groups: Vec<String> = serde_json::from_value(groups).unwrap();
    assert_eq!(groups.len(), 4, "{groups:?}");
    let pos = |name: &str| groups.iter().position(|g| g == name).unwrap();
    assert!(pos("leaf-03") < pos("leaf-07"), "{groups:?}");
    assert_eq!(groups[3], "", "unplaced last: {groups:?}");
    let heading = js_str(
        &b,
        "return document.querySelector('#room section.switch:last-child h4').textContent",
    );
    assert_eq!(heading, "unplaced (3 devices)");
    // Tiles by port in natural order: swp2 before swp10.
    let leaf07 = b.js(
        "return [...document.querySelectorAll('#room section[data-switch=\"leaf-07\"] .tile')].map(t => t.dataset.sn + ' ' + t.dataset.state + ' ' + t.querySelector('.t-top').textContent)",
        vec![],
    );
    assert_eq!(
        leaf07,
        json!([
            "R-1 replied \u{2709} swp1",
            "R-2 passed \u{2714} swp2",
            "R-7 waiting \u{25CB} swp7",
            "R-10 failed \u{2716} swp10"
        ])
    );
    let unplaced = b.js(
        "return [...document.querySelectorAll('#room section[data-switch=\"\"] .tile')].map(t => t.dataset.sn)",
        vec![],
    );
    assert_eq!(unplaced, json!(["A-9", "X-1", "Z-1"]));
    // Coloured by state: a failed tile and a passed one differ.
    let colours = b.js(
        "const c = (sn) => getComputedStyle(document.querySelector(`.tile[data-sn=\"${sn}\"]`)).backgroundColor; return [c('R-10'), c('R-2'), c('R-7')]",
        vec![],
    );
    let colours: Vec<String> = serde_json::from_value(colours).unwrap();
    assert!(
        colours[0] != colours[1] && colours[1] != colours[2],
        "{colours:?}"
    );
    // Counts and progress on top; replies counted against the expected
    // total for expected devices only (X-1 was not expected).
    let counts = b.js(
        "return ['failed', 'waiting', 'replied', 'passed'].map(s => document.querySelector(`.count[data-state=\"${s}\"]`).innerText.replace(/\\s+/g, ' '))",
        vec![],
    );
    assert_eq!(
        counts,
        json!([
            "3 \u{2716} failed",
            "2 \u{25CB} waiting",
            "2 \u{2709} replied",
            "2 \u{2714} passed"
        ])
    );
    // Z-1 and the waiting never replied; X-1 did, unexpected: it is not
    // one of the 8 expected.
    assert_eq!(
        js_str(
            &b,
            "return document.getElementById('op-replies').textContent"
        ),
        "Replies: 5 of 8 expected replied, 1 not expected."
    );
    let sidebar = js_str(&b, "return document.getElementById('running').innerText");
    assert!(
        sidebar.contains("(5 of 8 expected replied, 1 not expected)"),
        "the sidebar counts the same: {sidebar}"
    );
    assert_eq!(
        b.js(
            "return document.getElementById('progress').getAttribute('aria-valuenow')",
            vec![]
        ),
        json!("56"),
        "5 of 9 devices have a verdict"
    );
    // Failed first in the table.
    let table = b.js(
        "return [...document.querySelectorAll('#devices tbody tr')].map(r => r.dataset.state)",
        vec![],
    );
    assert_eq!(
        table,
        json!([
            "failed", "failed", "failed", "passed", "waiting", "replied", "passed", "waiting",
            "replied"
        ])
    );
    nothing_injected(&b);
    b.screenshot("room-1-overview");

    // Keyboard: a tile is a button reached by Tab; Enter opens its details,
    // Escape closes them and gives the focus back, visibly.
    assert_eq!(
        b.js(
            "const t = document.querySelector('.tile[data-sn=\"R-1\"]'); t.focus(); return [t.tagName, t.tabIndex, document.activeElement === t]",
            vec![]
        ),
        json!(["BUTTON", 0, true])
    );
    b.type_into(".tile[data-sn=\"R-1\"]", "\u{E007}");
    b.wait_until(
        "the details dialog",
        Duration::from_secs(5),
        "return document.getElementById('device-dialog').open",
    );
    let details = js_str(
        &b,
        "return document.getElementById('device-dialog').innerText",
    );
    assert!(details.contains("R-1"), "{details}");
    assert!(details.contains("B3 shelf 1 left"), "{details}");
    assert!(details.contains("planned"), "the planned mark: {details}");
    assert!(details.contains("leaf-07 swp1"), "{details}");
    assert!(details.contains("replied"), "{details}");
    b.screenshot("room-2-details");
    b.type_into("#dd-close", "\u{E00C}");
    b.wait_until(
        "the dialog closed, the focus back on the tile",
        Duration::from_secs(5),
        "return !document.getElementById('device-dialog').open && document.activeElement.dataset.sn === 'R-1'",
    );
    let focus = b.js(
        "const t = document.activeElement; const s = getComputedStyle(t); return [t.matches(':focus-visible'), s.outlineStyle, parseFloat(s.outlineWidth) >= 3]",
        vec![],
    );
    assert_eq!(focus, json!([true, "solid", true]), "visible focus");
    b.screenshot("room-3-focus");

    // Space opens too; the markup device's details are text.
    b.js(
        "document.querySelector('.tile[data-sn=\"MARK-1\"]').focus(); return true",
        vec![],
    );
    b.type_into(".tile[data-sn=\"MARK-1\"]", " ");
    b.wait_until(
        "the markup device's details",
        Duration::from_secs(5),
        "return document.getElementById('device-dialog').open && document.getElementById('dd-title').textContent === 'MARK-1'",
    );
    assert_eq!(
        js_str(&b, "return document.getElementById('dd-host').textContent"),
        IMG,
        "the host name is shown as the text it is"
    );
    assert!(js_str(&b, "return document.getElementById('dd-place').textContent").starts_with(IMG));
    assert!(
        js_str(
            &b,
            "return document.getElementById('dd-reasons').textContent"
        )
        .contains(SCRIPT_TAG)
    );
    nothing_injected(&b);
    b.screenshot("room-4-markup-as-text");
    b.click("#dd-close");

    // Live: R-7 fails; its tile changes and it moves up the table.
    edge.push_device(device(
        "R-7",
        "failed",
        at("leaf-07", "swp7", "B3 shelf 7 left"),
        &["no reply before the window closed"],
    ));
    b.wait_until(
        "R-7 failed live",
        Duration::from_secs(5),
        "return document.querySelector('.tile[data-sn=\"R-7\"]').dataset.state === 'failed'",
    );
    let first = b.js(
        "return [...document.querySelectorAll('#devices tbody tr')].slice(0, 4).map(r => r.dataset.sn)",
        vec![],
    );
    assert_eq!(first, json!(["R-10", "R-7", "Z-1", "MARK-1"]));

    // Filters in the URL: a wall screen opens ?only=failed&wall=1.
    b.goto(&edge.url("/?only=failed&wall=1"));
    b.wait_until(
        "the filtered wall",
        Duration::from_secs(10),
        "return document.querySelectorAll('#room .tile').length === 9 && document.body.classList.contains('wall')",
    );
    let visible = b.js(
        "return [...document.querySelectorAll('#room .tile')].filter(t => t.offsetParent !== null).map(t => t.dataset.sn).sort()",
        vec![],
    );
    assert_eq!(
        visible,
        json!(["MARK-1", "R-10", "Z-1"]),
        "only the failed (the stand-in's snapshot has R-7 waiting)"
    );
    assert_eq!(
        b.js(
            "return [document.querySelector('nav').offsetParent, document.getElementById('only').value, parseFloat(getComputedStyle(document.querySelector('.tile')).fontSize) >= 24]",
            vec![]
        ),
        json!([null, "failed", true]),
        "large type, no sidebar"
    );
    b.screenshot("room-5-wall-failed");
    b.goto(&edge.url("/?wall=1"));
    b.wait_until(
        "the whole wall",
        Duration::from_secs(10),
        "return document.querySelectorAll('#room .tile').length === 9",
    );
    b.screenshot("room-6-wall");

    // The filter chosen on the page goes into the URL.
    b.goto(&edge.url("/"));
    b.wait_until(
        "the room",
        Duration::from_secs(10),
        "return document.querySelectorAll('#room .tile').length === 9",
    );
    b.js(
        "const s = document.getElementById('only'); s.value = 'problems'; s.dispatchEvent(new Event('change')); return true",
        vec![],
    );
    assert_eq!(js_str(&b, "return location.search"), "?only=problems");

    // A phone: nothing is cut off, the details column included.
    b.js(
        "const s = document.getElementById('only'); s.value = ''; s.dispatchEvent(new Event('change')); return true",
        vec![],
    );
    b.set_window(390, 844);
    std::thread::sleep(Duration::from_millis(300));
    let wide = b.js(
        "return [...document.querySelectorAll('body *')].filter(e => e.getBoundingClientRect().right > window.innerWidth + 0.5 && e.offsetParent !== null).map(e => e.tagName + '#' + e.id + '.' + e.className).slice(0, 10)",
        vec![],
    );
    assert_eq!(wide, json!([]), "elements wider than a phone");
    b.wait_until(
        "no horizontal scrolling and every details cell inside the screen",
        Duration::from_secs(5),
        "return window.innerWidth <= 420 && document.documentElement.scrollWidth <= document.documentElement.clientWidth && [...document.querySelectorAll('#devices td.details')].every(td => td.getBoundingClientRect().right <= window.innerWidth)",
    );
    b.js(
        "document.getElementById('devices').scrollIntoView(); return true",
        vec![],
    );
    b.screenshot("room-7-phone-table");
    b.js(
        "document.querySelector('.tile[data-sn=\"R-10\"]').click(); return true",
        vec![],
    );
    b.wait_until(
        "the dialog on a phone, inside the screen",
        Duration::from_secs(5),
        "const r = document.getElementById('device-dialog').getBoundingClientRect(); return document.getElementById('device-dialog').open && r.left >= 0 && r.right <= window.innerWidth",
    );
    b.screenshot("room-8-phone-details");
    nothing_injected(&b);
}
