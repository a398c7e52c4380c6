//! The live page in a real browser: Debian's headless Chromium through
//! ChromeDriver (fantoccini), against the real `burnin-edge serve`, the
//! factory stand-in and real `burnin-agent run` processes on a vhost of
//! their own. Each step saves a screenshot under `target/browser/`.
//!
//! The 1,000-device test also measures, in the browser, the time from the
//! last reply to the page showing every device's final result, and prints
//! it (a figure, not an assertion).

mod support;

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use burnin_testkit::vhost::TestVhost;
use burnin_testkit::{AgentFleet, Device, FactoryStandIn};
use serde_json::json;
use support::{Browser, Serve};

const TOKEN: &str = "floor-operator-token";
const VIEWER: &str = "wall-screen-token";

fn row_text(b: &Browser, sn: &str) -> String {
    b.js(
        "const r = document.querySelector(`tr[data-sn=\"${arguments[0]}\"]`); return r ? r.innerText : '';",
        vec![json!(sn)],
    )
    .as_str()
    .unwrap_or_default()
    .to_owned()
}

fn states_are(pairs: &[(&str, &str)]) -> String {
    let cond: Vec<String> = pairs
        .iter()
        .map(|(sn, st)| {
            format!("(document.querySelector('tr[data-sn=\"{sn}\"]') || {{dataset: {{}}}}).dataset.state === '{st}'")
        })
        .collect();
    format!("return {};", cond.join(" && "))
}

/// A device's reply as an agent sends it: one card.
fn reply_body(op: u64, sn: &str, hostname: &str, interface: &str, mac: &str) -> serde_json::Value {
    json!({
        "operationId": op, "sn": sn, "hostname": hostname,
        "agentVersion": "browser-test", "collectedAt": "2026-11-30T00:00:00Z",
        "interfaces": [{"interface": interface, "macaddr": mac,
            "pci": {"slot": "0000:01:00.0", "vendor": "0x8086", "device": "0x1533",
                    "class": "0x020000", "driver": "igb"}}],
        "pciDevices": [],
    })
}

/// Sends each body to the reply queue as agents would (persistent,
/// confirmed), on one AMQP connection; returns when the broker confirmed the
/// last one (milliseconds since the Unix epoch).
fn send_replies(
    vhost: &TestVhost,
    op: u64,
    deadline: burnin_core::Timestamp,
    bodies: Vec<serde_json::Value>,
) -> f64 {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        use burnin_core::ReplySink;
        let config = burnin_amqp::AmqpConfig::new(vhost.url());
        let (_commands, sink) = burnin_amqp::agent::connect(config).await.unwrap();
        let sink = std::sync::Arc::new(sink);
        let mut tasks = tokio::task::JoinSet::new();
        for body in bodies {
            let reply = burnin_core::OutgoingReply {
                reply_to: "hwinfo_queue".into(),
                operation_id: burnin_core::OperationId::Number(op),
                body: body.to_string().into_bytes(),
                deadline,
            };
            let sink = sink.clone();
            tasks.spawn(async move { sink.send(&reply).await });
        }
        while let Some(r) = tasks.join_next().await {
            r.unwrap().unwrap();
        }
        // Every reply is confirmed by the broker now: the last one is sent.
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_millis() as f64
    })
}

#[test]
fn devices_go_from_waiting_to_passed_or_failed_live_with_the_mismatch_shown() {
    let Some(vhost) = TestVhost::new("browser") else {
        return;
    };
    let factory = FactoryStandIn::start();
    factory.set_mes("LIVE-1", &["02:00:00:0a:00:01"]);
    factory.set_mes("LIVE-2", &["02:00:00:0a:00:99"]);
    factory.set_mes("LIVE-3", &["02:00:00:0a:00:03"]);
    factory.set_mes("LIVE-X", &["02:00:00:0a:00:0f"]);
    // LIVE-X answers too, though no operation expects it.
    let _fleet = AgentFleet::start(
        &vhost,
        &[
            Device::new("LIVE-1", &["02:00:00:0a:00:01"]),
            Device::new("LIVE-2", &["02:00:00:0a:00:02"]),
            Device::new("LIVE-X", &["02:00:00:0a:00:0f"]),
        ],
        &[],
    );
    let dir = tempfile::tempdir().unwrap();
    let serve = Serve::start(&vhost.url(), &factory, &dir.path().join("s.db"), None, &[]);
    let b = Browser::start();

    b.goto(&serve.url("/"));
    b.wait_until(
        "the page to load with no operation",
        Duration::from_secs(10),
        "return !document.getElementById('app').hidden && document.getElementById('conn').textContent === 'live'",
    );
    let shown = b.js(
        "return document.getElementById('running-none').hidden",
        vec![],
    );
    assert_eq!(shown, json!(false), "says no operation is running");
    b.screenshot("live-1-idle");
    // Marks this page load: a reload would forget it.
    b.js("window.sameLoad = 'yes'; return true", vec![]);

    let (status, _) = serve.post(&json!({
        "operationId": 7,
        "expected": ["LIVE-1", "LIVE-2", "LIVE-3"],
        "windowSecs": 8,
    }));
    assert_eq!(status, 202);
    // LIVE-3 has no agent: collection runs to the deadline. The others'
    // verdicts are shown as soon as MES answered (results follow MES),
    // while the window is still open, and LIVE-3 waits, with a countdown.
    b.wait_until(
        "LIVE-1 passed and LIVE-2 failed while collecting, LIVE-3 waiting",
        Duration::from_secs(6),
        &states_are(&[
            ("LIVE-1", "passed"),
            ("LIVE-2", "failed"),
            ("LIVE-3", "waiting"),
        ]),
    );
    let title = b.js(
        "return document.getElementById('op-title').textContent",
        vec![],
    );
    assert_eq!(title, json!("Operation 7 \u{2014} collecting replies"));
    let countdown = b.js(
        "return document.getElementById('op-countdown').textContent",
        vec![],
    );
    assert!(
        countdown.as_str().unwrap().starts_with("Deadline in "),
        "{countdown}"
    );
    assert!(row_text(&b, "LIVE-3").contains("waiting"), "state in words");
    assert!(
        row_text(&b, "LIVE-2").contains("02:00:00:0a:00:02 is not in MES"),
        "the reason with the verdict, before the window closed"
    );
    // The replies count the expected ones against the expected total; the
    // unexpected LIVE-X apart.
    b.wait_until(
        "LIVE-X in the table",
        Duration::from_secs(5),
        "return document.querySelector('tr[data-sn=\"LIVE-X\"]') !== null",
    );
    assert_eq!(
        b.js(
            "return document.getElementById('op-replies').textContent",
            vec![]
        ),
        json!("Replies: 2 of 3 expected replied, 1 not expected.")
    );
    let running = b.js(
        "return document.getElementById('running').innerText",
        vec![],
    );
    assert!(
        running
            .as_str()
            .unwrap()
            .contains("2 of 3 expected replied, 1 not expected"),
        "{running}"
    );
    b.screenshot("live-2-collecting");

    b.wait_until(
        "the final results",
        Duration::from_secs(15),
        &states_are(&[
            ("LIVE-1", "passed"),
            ("LIVE-2", "failed"),
            ("LIVE-3", "failed"),
        ]),
    );
    b.wait_until(
        "the notification delivered",
        Duration::from_secs(10),
        "return document.getElementById('deliveries').innerText.includes('notify: delivered')",
    );
    let one = row_text(&b, "LIVE-1");
    assert!(
        one.contains("passed") && one.contains("every MAC matches MES"),
        "{one}"
    );
    let two = row_text(&b, "LIVE-2");
    assert!(two.contains("failed"), "{two}");
    assert!(
        two.contains("02:00:00:0a:00:02 is not in MES"),
        "the MAC not in MES is named: {two}"
    );
    assert!(
        two.contains("card 02:00:00:0a:00:99 recorded in MES is missing"),
        "the missing card is named: {two}"
    );
    let three = row_text(&b, "LIVE-3");
    assert!(
        three.contains("no reply before the window closed"),
        "{three}"
    );
    let deliveries = b.js(
        "return document.getElementById('deliveries').innerText",
        vec![],
    );
    let deliveries = deliveries.as_str().unwrap();
    assert!(deliveries.contains("log: delivered"), "{deliveries}");
    assert!(deliveries.contains("pair: delivered"), "{deliveries}");
    let summary = b.js(
        "return document.getElementById('op-summary').textContent",
        vec![],
    );
    assert_eq!(
        summary,
        json!("4 devices: 2 passed, 2 failed, 0 replied, 0 waiting.")
    );
    let recent_or_running = b.js("return document.querySelector('nav').innerText", vec![]);
    assert!(
        recent_or_running
            .as_str()
            .unwrap()
            .contains("Operation 7 \u{2014} done (2 of 3 expected replied, 1 not expected)"),
        "never \"3 of 3\": {recent_or_running}"
    );
    assert_eq!(
        b.js("return window.sameLoad", vec![]),
        json!("yes"),
        "the page was not reloaded"
    );
    // Table semantics for screen readers.
    let semantics = b.js(
        "const t = document.getElementById('devices'); return [t.caption.textContent, t.tHead.rows[0].cells[1].getAttribute('scope')]",
        vec![],
    );
    assert_eq!(
        semantics,
        json!(["Devices of the selected operation (failed first)", "col"])
    );
    b.screenshot("live-3-final");

    // Failed first in the table; then only the devices that did not pass.
    let order = b.js(
        "return [...document.querySelectorAll('#devices tbody tr')].map(r => r.dataset.sn)",
        vec![],
    );
    assert_eq!(order, json!(["LIVE-2", "LIVE-3", "LIVE-1", "LIVE-X"]));
    let choose = |v: &str| {
        b.js(
            "const s = document.getElementById('only'); s.value = arguments[0]; s.dispatchEvent(new Event('change')); return location.search",
            vec![json!(v)],
        )
    };
    assert_eq!(
        choose("problems"),
        json!("?only=problems"),
        "the filter is in the URL"
    );
    let visible = b.js(
        "return [...document.querySelectorAll('#devices tbody tr')].filter(r => r.offsetParent !== null).map(r => r.dataset.sn)",
        vec![],
    );
    assert_eq!(visible, json!(["LIVE-2", "LIVE-3"]));
    choose("");

    // Find a serial across operations.
    b.type_into("#find", "LIVE-2");
    b.click("#find-form button");
    b.wait_until(
        "the search result",
        Duration::from_secs(5),
        "return document.getElementById('find-results').innerText.includes('LIVE-2')",
    );
    let found = b.js(
        "return document.getElementById('find-results').innerText",
        vec![],
    );
    assert_eq!(found, json!("Operation 7: LIVE-2 failed"));
    b.screenshot("live-4-find");

    // A second operation: a screen that did not pick one follows it.
    let (status, _) = serve.post(&json!({
        "operationId": "second",
        "expected": ["LIVE-1"],
        "windowSecs": 5,
    }));
    assert_eq!(status, 202);
    b.wait_until(
        "the page to follow the new running operation",
        Duration::from_secs(10),
        "return document.getElementById('op-title').textContent.startsWith('Operation \"second\"')",
    );
    b.wait_until(
        "LIVE-1 passed in the second operation",
        Duration::from_secs(10),
        &states_are(&[("LIVE-1", "passed")]),
    );
    let recent = b.js("return document.getElementById('recent').innerText", vec![]);
    assert!(
        recent
            .as_str()
            .unwrap()
            .contains("Operation 7 \u{2014} done"),
        "{recent}"
    );
    // The finished operation, no longer selected, is counted the same way.
    assert!(
        recent
            .as_str()
            .unwrap()
            .contains("Operation 7 \u{2014} done (2 of 3 expected replied, 1 not expected)"),
        "{recent}"
    );
    // A small screen: the lists stack above the table, nothing is cut off.
    b.set_window(400, 800);
    b.wait_until(
        "no horizontal scrolling on a phone (after the relayout)",
        Duration::from_secs(5),
        "return window.innerWidth <= 420 && document.documentElement.scrollWidth <= document.documentElement.clientWidth",
    );
    b.screenshot("live-5-small-screen");
}

/// The page asks for a token once; the read-only viewer token is enough to
/// watch. The token survives a reload only when "remember on this screen"
/// was ticked.
#[test]
fn with_a_token_the_page_asks_once_then_shows_the_data() {
    let Some(vhost) = TestVhost::new("browser-token") else {
        return;
    };
    let factory = FactoryStandIn::start();
    factory.set_mes("TOK-1", &["02:00:00:0b:00:01"]);
    let _fleet = AgentFleet::start(&vhost, &[Device::new("TOK-1", &["02:00:00:0b:00:01"])], &[]);
    let dir = tempfile::tempdir().unwrap();
    let serve = Serve::start(
        &vhost.url(),
        &factory,
        &dir.path().join("s.db"),
        Some(TOKEN),
        &["--viewer-token", VIEWER],
    );
    let (status, _) =
        serve.post(&json!({"operationId": 21, "expected": ["TOK-1"], "windowSecs": 5}));
    assert_eq!(status, 202);
    serve.wait_finished("21", Duration::from_secs(20));

    let b = Browser::start();
    b.goto(&serve.url("/"));
    b.wait_until(
        "the token prompt",
        Duration::from_secs(10),
        "return document.getElementById('token-form').offsetParent !== null && document.getElementById('app').offsetParent === null",
    );
    b.screenshot("token-1-prompt");

    b.type_into("#token", "not-the-token");
    b.click("#token-form button");
    b.wait_until(
        "the refusal",
        Duration::from_secs(10),
        "return document.getElementById('token-error').textContent.includes('refused')",
    );
    assert_eq!(
        b.js("return document.getElementById('app').offsetParent === null && document.body.innerText.includes('No operation') === false", vec![]),
        json!(true),
        "no data is shown while the token is refused"
    );
    b.screenshot("token-2-refused");

    // The wall screen's read-only token, not remembered.
    b.type_into("#token", VIEWER);
    b.click("#token-form button");
    b.wait_until(
        "the data",
        Duration::from_secs(10),
        &states_are(&[("TOK-1", "passed")]),
    );
    assert_eq!(
        b.js(
            "return [localStorage.length, sessionStorage.length]",
            vec![]
        ),
        json!([0, 0]),
        "kept in memory only"
    );
    let title = b.js(
        "return document.getElementById('op-title').textContent",
        vec![],
    );
    assert_eq!(title, json!("Operation 21 \u{2014} done"));
    b.screenshot("token-3-data");

    // Not remembered: a reload asks again.
    b.goto(&serve.url("/"));
    b.wait_until(
        "the prompt again after a reload",
        Duration::from_secs(10),
        "return document.getElementById('token-form').offsetParent !== null",
    );
    // Remembered on this screen: a reload asks no more.
    b.type_into("#token", VIEWER);
    b.click("#remember");
    b.click("#token-form button");
    b.wait_until(
        "the data",
        Duration::from_secs(10),
        &states_are(&[("TOK-1", "passed")]),
    );
    b.goto(&serve.url("/?only=passed&wall=1"));
    b.wait_until(
        "the data after a reload, without the prompt",
        Duration::from_secs(10),
        &states_are(&[("TOK-1", "passed")]),
    );
    assert_eq!(
        b.js(
            "return [document.getElementById('token-form').hidden, document.getElementById('forget').hidden]",
            vec![]
        ),
        json!([true, false])
    );
    b.screenshot("token-4-remembered-wall");
    // Forgotten: asked again.
    b.click("#forget");
    b.wait_until(
        "the prompt after forgetting",
        Duration::from_secs(10),
        "return document.getElementById('token-form').offsetParent !== null && localStorage.length === 0",
    );
    let log = serve.stderr();
    assert!(!log.contains(TOKEN), "the token is never logged");
    assert!(!log.contains(VIEWER), "the viewer token is never logged");
    // The viewer token starts nothing.
    let (status, body) = support::http(
        &serve.addr,
        "POST",
        "/scans",
        Some(VIEWER),
        Some(json!({"operationId": 22}).to_string().as_bytes()),
    );
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("read-only viewer token"), "{body}");
}

/// What a device sends reaches the page as text, never as markup: a host
/// name and an interface name (which the reasons quote) written as HTML,
/// through the real edge. Nothing runs, no element is made, and the text is
/// shown as sent — in the table, on the tile and in the details.
#[test]
fn what_a_device_sends_is_shown_as_text_never_as_markup() {
    const HOST: &str = "<img src=x onerror=\"window.__pwned='host'\">";
    const IFACE: &str = "<script>window.__pwned='iface'</script>";
    let Some(vhost) = TestVhost::new("browser-markup") else {
        return;
    };
    let factory = FactoryStandIn::start();
    factory.set_mes("MARK-1", &["02:00:00:0c:00:99"]);
    let dir = tempfile::tempdir().unwrap();
    let serve = Serve::start(&vhost.url(), &factory, &dir.path().join("s.db"), None, &[]);
    let b = Browser::start();
    b.goto(&serve.url("/"));
    b.wait_until(
        "the page",
        Duration::from_secs(10),
        "return document.getElementById('conn').textContent === 'live'",
    );
    let (status, started) =
        serve.post(&json!({"operationId": 66, "expected": ["MARK-1"], "windowSecs": 30}));
    assert_eq!(status, 202, "{started}");
    let deadline = burnin_core::Timestamp::parse(started["deadline"].as_str().unwrap()).unwrap();
    send_replies(
        &vhost,
        66,
        deadline,
        vec![reply_body(66, "MARK-1", HOST, IFACE, "02:00:00:0c:00:01")],
    );
    b.wait_until(
        "MARK-1 failed",
        Duration::from_secs(15),
        &states_are(&[("MARK-1", "failed")]),
    );
    let row = row_text(&b, "MARK-1");
    assert!(row.contains(HOST), "the host name as text: {row}");
    assert!(
        row.contains(&format!("{IFACE} 02:00:00:0c:00:01 is not in MES")),
        "the interface name as text in the reason: {row}"
    );
    b.click(".tile[data-sn=\"MARK-1\"]");
    b.wait_until(
        "the details",
        Duration::from_secs(5),
        "return document.getElementById('device-dialog').open",
    );
    assert_eq!(
        b.js(
            "return [document.getElementById('dd-host').textContent, document.getElementById('dd-reasons').textContent.includes(arguments[0])]",
            vec![json!(IFACE)]
        ),
        json!([HOST, true])
    );
    assert_eq!(
        b.js(
            "return [typeof window.__pwned, document.querySelectorAll('img, script:not([src])').length]",
            vec![]
        ),
        json!(["undefined", 0]),
        "nothing a device sent ran or became an element"
    );
    b.screenshot("markup-1-as-text");
}

/// The room with the edge's real cabling plan: a device whose LLDP
/// neighbour matches the plan is placed at its switch port; one whose
/// neighbour names a forged switch — markup for a name — is placed where
/// the plan puts its serial, marked planned, and the forged name reaches the
/// page only as text in its reason.
#[test]
fn the_room_places_devices_by_the_cabling_plan_and_a_forged_lldp_name_stays_text() {
    const FORGED: &str = "<img src=x onerror=\"window.__pwned='lldp'\">";
    let Some(vhost) = TestVhost::new("browser-cabling") else {
        return;
    };
    let factory = FactoryStandIn::start();
    factory.set_mes("CAB-1", &["02:00:00:0d:00:01"]);
    factory.set_mes("CAB-2", &["02:00:00:0d:00:02"]);
    let dir = tempfile::tempdir().unwrap();
    let plan = dir.path().join("plan.csv");
    std::fs::write(
        &plan,
        "switch,port,location,sn,interface\n\
         leaf-07,swp10,B3 shelf 10 left,CAB-1,\n\
         leaf-07,swp2,B3 shelf 2 left,CAB-2,\n",
    )
    .unwrap();
    let serve = Serve::start(
        &vhost.url(),
        &factory,
        &dir.path().join("s.db"),
        None,
        &["--cabling-plan", plan.to_str().unwrap()],
    );
    let b = Browser::start();
    b.goto(&serve.url("/"));
    b.wait_until(
        "the page",
        Duration::from_secs(10),
        "return document.getElementById('conn').textContent === 'live'",
    );
    let (status, started) = serve.post(&json!({
        "operationId": 77, "expected": ["CAB-1", "CAB-2", "CAB-3"], "windowSecs": 30
    }));
    assert_eq!(status, 202, "{started}");
    let deadline = burnin_core::Timestamp::parse(started["deadline"].as_str().unwrap()).unwrap();
    let neighbour = |system: &str, port: &str| {
        json!([{"chassisId": "44:38:39:ff:00:07", "chassisIdSubtype": "mac",
                "systemName": system, "portId": port, "portIdSubtype": "ifName",
                "portDescription": null, "mgmtAddress": null, "vlan": null, "ageSecs": 3}])
    };
    let mut one = reply_body(77, "CAB-1", "cab-1", "enp1s0", "02:00:00:0d:00:01");
    one["interfaces"][0]["lldp"] = neighbour("leaf-07", "swp10");
    let mut two = reply_body(77, "CAB-2", "cab-2", "enp1s0", "02:00:00:0d:00:02");
    two["interfaces"][0]["lldp"] = neighbour(FORGED, "swp9");
    send_replies(&vhost, 77, deadline, vec![one, two]);
    b.wait_until(
        "both verdicts while collecting",
        Duration::from_secs(15),
        &states_are(&[
            ("CAB-1", "passed"),
            ("CAB-2", "passed"),
            ("CAB-3", "waiting"),
        ]),
    );
    let groups = b.js(
        "return [...document.querySelectorAll('#room section.switch')].map(s => s.dataset.switch + ': ' + [...s.querySelectorAll('.tile')].map(t => t.dataset.sn + ' ' + t.querySelector('.t-top').textContent).join(', '))",
        vec![],
    );
    assert_eq!(
        groups,
        json!([
            "leaf-07: CAB-2 \u{2714} swp2, CAB-1 \u{2714} swp10",
            ": CAB-3 \u{25CB} waiting"
        ]),
        "by switch, by port in natural order (swp2 before swp10); CAB-3's place unknown until it answers"
    );
    b.click(".tile[data-sn=\"CAB-2\"]");
    b.wait_until(
        "CAB-2's details",
        Duration::from_secs(5),
        "return document.getElementById('device-dialog').open",
    );
    let place = b.js(
        "return document.getElementById('dd-place').textContent",
        vec![],
    );
    assert!(
        place
            .as_str()
            .unwrap()
            .starts_with("B3 shelf 2 left (planned"),
        "placed by its serial's plan row, not by what it heard: {place}"
    );
    let reasons = b.js(
        "return document.getElementById('dd-reasons').textContent",
        vec![],
    );
    assert!(
        reasons.as_str().unwrap().contains(FORGED),
        "the forged name, as text: {reasons}"
    );
    assert_eq!(
        b.js(
            "return [typeof window.__pwned, document.querySelectorAll('img, script:not([src])').length]",
            vec![]
        ),
        json!(["undefined", 0]),
        "nothing a device sent ran or became an element"
    );
    b.screenshot("cabling-1-details");
    b.click("#dd-close");
    b.wait_until(
        "the window closed: CAB-3 failed",
        Duration::from_secs(40),
        &states_are(&[("CAB-3", "failed")]),
    );
    b.screenshot("cabling-2-final");
}

/// 1,000 devices: the page stays whole, and the time from the last reply
/// to the page showing every final result is measured in the browser and
/// printed (a figure, not an assertion; see [`measure`]).
#[test]
fn a_thousand_devices_reach_the_page_and_the_latency_is_printed() {
    measure(1000);
}

/// The budget's harness (issue 24): 2,000 devices, the figures printed.
/// Run it on an optimised build:
/// `cargo test --release -p burnin-edge --test browser -- --ignored --nocapture two_thousand`.
#[test]
#[ignore = "a benchmark harness: run it on a release build, it prints figures"]
fn two_thousand_devices_harness_prints_the_time_to_every_final_state() {
    measure(2000);
}

/// `n` devices, one operation: the time from the last reply confirmed by
/// the broker, and from the last event the page received, to the page
/// showing every final state (measured in the browser, printed). The
/// devices are simulated by one AMQP connection that sends each device's
/// reply as an agent would (persistent, confirmed, to the reply queue); the
/// edge, the broker, MES (the stand-in) and the page are real.
#[allow(clippy::print_stdout, reason = "a harness prints its figures")]
fn measure(n: usize) {
    let op = n as u64;
    let Some(vhost) = TestVhost::new(&format!("browser-{n}")) else {
        return;
    };
    let factory = FactoryStandIn::start();
    let sns: Vec<String> = (0..n).map(|i| format!("K-{i:04}")).collect();
    let mac = |i: usize| format!("02:00:01:{:02x}:{:02x}:01", i / 256, i % 256);
    for (i, sn) in sns.iter().enumerate() {
        // Every 10th device has a card MES does not know.
        if i % 10 == 0 {
            factory.set_mes(sn, &["02:ff:ff:ff:ff:01"]);
        } else {
            factory.set_mes(sn, &[&mac(i)]);
        }
    }
    // A room of 48-port switches, every device cabled as planned.
    let place = |i: usize| {
        (
            format!("leaf-{:02}", i / 48 + 1),
            format!("swp{}", i % 48 + 1),
        )
    };
    let dir = tempfile::tempdir().unwrap();
    let plan = dir.path().join("plan.csv");
    let mut csv = String::from("switch,port,location,sn,interface\n");
    for (i, sn) in sns.iter().enumerate() {
        let (switch, port) = place(i);
        csv.push_str(&format!(
            "{switch},{port},row {} shelf {},{sn},\n",
            i / 48 + 1,
            i % 48 + 1
        ));
    }
    std::fs::write(&plan, csv).unwrap();
    let serve = Serve::start(
        &vhost.url(),
        &factory,
        &dir.path().join("s.db"),
        None,
        &["--cabling-plan", plan.to_str().unwrap()],
    );
    let b = Browser::start();
    b.goto(&serve.url("/"));
    b.wait_until(
        "the page",
        Duration::from_secs(10),
        "return document.getElementById('conn').textContent === 'live'",
    );

    let (status, started) =
        serve.post(&json!({"operationId": op, "expected": sns, "windowSecs": 60}));
    assert_eq!(status, 202, "{started}");
    b.wait_until(
        "every device waiting",
        Duration::from_secs(15),
        &format!(
            "return document.querySelectorAll('#devices tbody tr').length === {n} && document.querySelectorAll('#room .tile').length === {n}"
        ),
    );
    b.screenshot(&format!("k{n}-1-waiting"));

    let deadline = burnin_core::Timestamp::parse(started["deadline"].as_str().unwrap()).unwrap();
    let bodies = sns
        .iter()
        .enumerate()
        .map(|(i, sn)| {
            let mut body = reply_body(op, sn, &format!("host-{i}"), "enp1s0", &mac(i));
            let (switch, port) = place(i);
            body["interfaces"][0]["lldp"] = json!([{
                "chassisId": "44:38:39:ff:00:07", "chassisIdSubtype": "mac",
                "systemName": switch, "portId": port, "portIdSubtype": "ifName",
                "portDescription": null, "mgmtAddress": null, "vlan": null, "ageSecs": 3}]);
            body
        })
        .collect();
    let last_reply_ms = send_replies(&vhost, op, deadline, bodies);

    let waited = Instant::now();
    b.wait_until(
        "every device final on the page",
        Duration::from_secs(60),
        &format!("return '{op}' in window.burninLive.finalShownAt"),
    );
    let times = b.js(
        &format!(
            "const l = window.burninLive; return [l.finalShownAt['{op}'], l.lastDeviceEventAt, l.flushes, l.flushMs, l.flushMaxMs]"
        ),
        vec![],
    );
    let shown = times[0].as_f64().unwrap();
    let last_event = times[1].as_f64().unwrap();
    let summary = b.js(
        "return document.getElementById('op-summary').textContent",
        vec![],
    );
    assert_eq!(
        summary,
        json!(format!(
            "{n} devices: {} passed, {} failed, 0 replied, 0 waiting.",
            n - n / 10,
            n / 10
        ))
    );
    let failed_text = row_text(&b, "K-0010");
    assert!(failed_text.contains("is not in MES"), "{failed_text}");
    let groups = b.js(
        "return document.querySelectorAll('#room section.switch').length",
        vec![],
    );
    assert_eq!(groups, json!(n.div_ceil(48)), "one group per switch");
    b.screenshot(&format!("k{n}-2-final"));
    println!(
        "live page, {n} devices: last reply confirmed \u{2192} every final state shown: {:.0} ms; \
         last device event received by the page \u{2192} every final state shown: {:.0} ms; \
         {} frames drew the updates, {:.0} ms in all, the longest {:.0} ms (polled for {:?})",
        shown - last_reply_ms,
        shown - last_event,
        times[2],
        times[3].as_f64().unwrap_or_default(),
        times[4].as_f64().unwrap_or_default(),
        waited.elapsed()
    );
    let doc = serve.wait_finished(&op.to_string(), Duration::from_secs(30));
    assert_eq!(doc["devices"].as_array().unwrap().len(), n);
}
