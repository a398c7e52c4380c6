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

const TOKEN: &str = "floor-screen-token";

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

#[test]
fn devices_go_from_waiting_to_passed_or_failed_live_with_the_mismatch_shown() {
    let Some(vhost) = TestVhost::new("browser") else {
        return;
    };
    let factory = FactoryStandIn::start();
    factory.set_mes("LIVE-1", &["02:00:00:0a:00:01"]);
    factory.set_mes("LIVE-2", &["02:00:00:0a:00:99"]);
    factory.set_mes("LIVE-3", &["02:00:00:0a:00:03"]);
    let _fleet = AgentFleet::start(
        &vhost,
        &[
            Device::new("LIVE-1", &["02:00:00:0a:00:01"]),
            Device::new("LIVE-2", &["02:00:00:0a:00:02"]),
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
        "windowSecs": 6,
    }));
    assert_eq!(status, 202);
    // LIVE-3 has no agent: collection runs to the deadline, so the replied
    // devices are seen as replied, and LIVE-3 waiting, with a countdown.
    b.wait_until(
        "LIVE-1 and LIVE-2 replied, LIVE-3 waiting",
        Duration::from_secs(5),
        &states_are(&[
            ("LIVE-1", "replied"),
            ("LIVE-2", "replied"),
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
    assert!(row_text(&b, "LIVE-1").contains("replied"));
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
        json!("3 devices: 1 passed, 2 failed, 0 replied, 0 waiting.")
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
        json!(["Devices of the selected operation", "col"])
    );
    b.screenshot("live-3-final");

    // Only the devices that did not pass.
    b.click("#only-problems");
    let visible = b.js(
        "return [...document.querySelectorAll('#devices tbody tr')].filter(r => r.offsetParent !== null).map(r => r.dataset.sn)",
        vec![],
    );
    assert_eq!(visible, json!(["LIVE-2", "LIVE-3"]));
    b.click("#only-problems");

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
    // A small screen: the lists stack above the table, nothing is cut off.
    b.set_window(400, 800);
    b.wait_until(
        "no horizontal scrolling on a phone (after the relayout)",
        Duration::from_secs(5),
        "return window.innerWidth <= 420 && document.documentElement.scrollWidth <= document.documentElement.clientWidth",
    );
    b.screenshot("live-5-small-screen");
}

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
        &[],
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

    b.type_into("#token", TOKEN);
    b.click("#token-form button");
    b.wait_until(
        "the data",
        Duration::from_secs(10),
        &states_are(&[("TOK-1", "passed")]),
    );
    let title = b.js(
        "return document.getElementById('op-title').textContent",
        vec![],
    );
    assert_eq!(title, json!("Operation 21 \u{2014} done"));
    b.screenshot("token-3-data");

    // Kept for the tab: a reload asks no more.
    b.goto(&serve.url("/"));
    b.wait_until(
        "the data after a reload, without the prompt",
        Duration::from_secs(10),
        &states_are(&[("TOK-1", "passed")]),
    );
    assert_eq!(
        b.js(
            "return document.getElementById('token-form').hidden",
            vec![]
        ),
        json!(true)
    );
    assert!(!serve.stderr().contains(TOKEN), "the token is never logged");
}

/// 1,000 devices: the page stays whole, and the time from the last reply
/// to the page showing every final result is measured in the browser and
/// printed. The devices are simulated by one AMQP connection that sends
/// each device's reply as an agent would (persistent, confirmed, to the
/// reply queue); the edge, the broker, MES (the stand-in) and the page are
/// real.
#[test]
fn a_thousand_devices_reach_the_page_and_the_latency_is_printed() {
    const N: usize = 1000;
    let Some(vhost) = TestVhost::new("browser-1000") else {
        return;
    };
    let factory = FactoryStandIn::start();
    let sns: Vec<String> = (0..N).map(|i| format!("K-{i:04}")).collect();
    let mac = |i: usize| format!("02:00:01:{:02x}:{:02x}:01", i / 256, i % 256);
    for (i, sn) in sns.iter().enumerate() {
        // Every 10th device has a card MES does not know.
        if i % 10 == 0 {
            factory.set_mes(sn, &["02:ff:ff:ff:ff:01"]);
        } else {
            factory.set_mes(sn, &[&mac(i)]);
        }
    }
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
        serve.post(&json!({"operationId": 1000, "expected": sns, "windowSecs": 60}));
    assert_eq!(status, 202, "{started}");
    b.wait_until(
        "1,000 waiting devices",
        Duration::from_secs(15),
        "return document.querySelectorAll('#devices tbody tr').length === 1000",
    );
    b.screenshot("k-1-waiting");

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let deadline = burnin_core::Timestamp::parse(started["deadline"].as_str().unwrap()).unwrap();
    let last_reply_ms = rt.block_on(async {
        use burnin_core::ReplySink;
        let config = burnin_amqp::AmqpConfig::new(vhost.url());
        let (_commands, sink) = burnin_amqp::agent::connect(config).await.unwrap();
        let sink = std::sync::Arc::new(sink);
        let mut tasks = tokio::task::JoinSet::new();
        for (i, sn) in sns.iter().enumerate() {
            let body = json!({
                "operationId": 1000, "sn": sn, "hostname": format!("host-{i}"),
                "agentVersion": "browser-test", "collectedAt": "2026-11-30T00:00:00Z",
                "interfaces": [{"interface": "enp1s0", "macaddr": mac(i),
                    "pci": {"slot": "0000:01:00.0", "vendor": "0x8086", "device": "0x1533",
                            "class": "0x020000", "driver": "igb"}}],
                "pciDevices": [],
            });
            let reply = burnin_core::OutgoingReply {
                reply_to: "hwinfo_queue".into(),
                operation_id: burnin_core::OperationId::Number(1000),
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
    });

    let waited = Instant::now();
    b.wait_until(
        "every device final on the page",
        Duration::from_secs(60),
        "return '1000' in window.burninLive.finalShownAt",
    );
    let shown = b.js("return window.burninLive.finalShownAt['1000']", vec![]);
    let shown = shown.as_f64().unwrap();
    let summary = b.js(
        "return document.getElementById('op-summary').textContent",
        vec![],
    );
    assert_eq!(
        summary,
        json!("1000 devices: 900 passed, 100 failed, 0 replied, 0 waiting.")
    );
    let failed_text = row_text(&b, "K-0010");
    assert!(failed_text.contains("is not in MES"), "{failed_text}");
    b.screenshot("k-2-final");
    let latency = shown - last_reply_ms;
    println!(
        "live page, {N} devices: last reply confirmed → every result shown in the browser: {latency:.0} ms (polled for {:?})",
        waited.elapsed()
    );
    let doc = serve.wait_finished("1000", Duration::from_secs(30));
    assert_eq!(doc["devices"].as_array().unwrap().len(), N);
}
