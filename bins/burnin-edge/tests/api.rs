//! The service's HTTP API in one process: the axum router driven with
//! `tower::ServiceExt::oneshot` (no socket), over burnin-core's in-memory
//! broker, a SQLite store in memory, a MES file and payloads written to a
//! folder. Simulated agents (the core's agent use case over the memory
//! broker) answer the scans. No RabbitMQ is needed: these pass with the
//! broker stopped. `tests/serve.rs` runs the same API end to end through
//! the real binary and a real broker.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use burnin_core::agent::{Agent, serve as agent_serve};
use burnin_core::memory::{MemoryBroker, StaticProbe};
use burnin_core::{Hardware, InterfaceReport, Mac, SerialNumber, Target};
use burnin_local::{FileMes, OutDirReporter, SystemClock};
use burnin_service::{App, MemoryConnector, router};
use burnin_store::SqliteStore;
use serde_json::{Value, json};
use tower::ServiceExt;

const TOKEN: &str = "t0ken";
const VIEWER: &str = "v1ewer";

/// One service over the memory broker, started, with its out-dir.
struct Harness {
    app: Arc<App>,
    broker: MemoryBroker,
    out: tempfile::TempDir,
    agents: Vec<tokio::task::JoinHandle<()>>,
}

fn sn(s: &str) -> SerialNumber {
    SerialNumber::new(s).unwrap()
}

fn hardware(serial: &str, macs: &[&str]) -> Hardware {
    let interfaces: Vec<InterfaceReport> = macs
        .iter()
        .enumerate()
        .map(|(i, mac)| {
            serde_json::from_value(json!({
                "interface": format!("enp{}s0", i + 1),
                "macaddr": mac,
                "pci": {"slot": format!("0000:0{}:00.0", i + 1), "vendor": "0x8086",
                        "device": "0x1533", "class": "0x020000", "driver": "igb"}
            }))
            .unwrap()
        })
        .collect();
    Hardware {
        sn: sn(serial),
        hostname: format!("host-{serial}"),
        pci_devices: interfaces.iter().map(|i| i.pci.clone()).collect(),
        interfaces,
    }
}

impl Harness {
    /// MES knows `mes`; `pair` says whether the Pair API is configured.
    async fn start(mes: &[(&str, &[&str])], pair: bool) -> Harness {
        let broker = MemoryBroker::new();
        let out = tempfile::tempdir().unwrap();
        let records = FileMes::from_records(mes.iter().map(|(s, macs)| {
            (
                sn(s),
                macs.iter().map(|m| m.parse::<Mac>().unwrap()).collect(),
            )
        }));
        let mut builder = App::builder(
            std::sync::Arc::new(SqliteStore::in_memory().unwrap()),
            MemoryConnector::new(broker.clone(), "hwinfo_queue"),
            Box::new(records),
            Box::new(OutDirReporter::new(out.path()).unwrap()),
        )
        .api_token(Some(TOKEN.into()))
        .viewer_token(Some(VIEWER.into()));
        if !pair {
            builder = builder.target_unavailable(Target::Pair, "--pair-url is not configured");
        }
        let app = builder.build();
        app.start().await.unwrap();
        Harness {
            app,
            broker,
            out,
            agents: Vec::new(),
        }
    }

    /// A simulated device answering every scan command.
    fn agent(&mut self, hw: Hardware) {
        let (mut source, sink) = self.broker.agent();
        self.agents.push(tokio::spawn(async move {
            let mut agent = Agent::new(
                StaticProbe::new(hw),
                sink,
                SystemClock,
                "hwinfo_queue",
                "test",
            );
            let _ = agent_serve(
                &mut agent,
                &mut source,
                std::future::pending(),
                |_| {},
                |_| {},
            )
            .await;
        }));
    }

    async fn call(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<Vec<u8>>,
    ) -> (StatusCode, Value) {
        let mut req = Request::builder().method(method).uri(path);
        if let Some(t) = token {
            req = req.header(header::AUTHORIZATION, format!("Bearer {t}"));
        }
        if body.is_some() {
            req = req.header(header::CONTENT_TYPE, "application/json");
        }
        let req = req.body(body.map_or_else(Body::empty, Body::from)).unwrap();
        let resp = router(self.app.clone()).oneshot(req).await.unwrap();
        let status = resp.status();
        let bytes = axum::body::to_bytes(resp.into_body(), usize::MAX)
            .await
            .unwrap();
        let doc = serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()));
        (status, doc)
    }

    async fn get(&self, path: &str) -> (StatusCode, Value) {
        self.call("GET", path, Some(TOKEN), None).await
    }

    async fn post(&self, body: &Value) -> (StatusCode, Value) {
        self.call(
            "POST",
            "/scans",
            Some(TOKEN),
            Some(body.to_string().into_bytes()),
        )
        .await
    }

    /// Polls `GET /scans/{id}` until `done(doc)`, at most `limit`.
    async fn wait_for(&self, id: &str, limit: Duration, done: impl Fn(&Value) -> bool) -> Value {
        let start = Instant::now();
        loop {
            let (status, doc) = self.get(&format!("/scans/{id}")).await;
            if status == StatusCode::OK && done(&doc) {
                return doc;
            }
            assert!(
                start.elapsed() < limit,
                "operation {id} did not get there within {limit:?}: {status} {doc}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    async fn stop(self) {
        for a in &self.agents {
            a.abort();
        }
        tokio::time::timeout(Duration::from_secs(10), self.app.shutdown())
            .await
            .expect("the service stops within 10 s");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_or_wrong_token_is_401_and_healthz_needs_none() {
    let h = Harness::start(&[], true).await;
    for (method, path) in [("GET", "/scans"), ("GET", "/scans/1"), ("GET", "/metrics")] {
        for token in [None, Some("wrong"), Some("t0ken-but-longer")] {
            let (status, doc) = h.call(method, path, token, None).await;
            assert_eq!(
                status,
                StatusCode::UNAUTHORIZED,
                "{method} {path} {token:?}"
            );
            assert!(
                doc["error"]
                    .as_str()
                    .unwrap()
                    .contains("Authorization: Bearer"),
                "{doc}"
            );
        }
    }
    let body = json!({"operationId": 1}).to_string().into_bytes();
    let (status, _) = h.call("POST", "/scans", None, Some(body)).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    // Nothing was started by the refused POST.
    let (status, list) = h.get("/scans").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(list, json!([]));
    // The broker task connects to the memory broker soon after the start.
    let start = Instant::now();
    loop {
        let (status, doc) = h.call("GET", "/healthz", None, None).await;
        if status == StatusCode::OK {
            assert_eq!(doc, json!({"broker": "up", "role": "active"}));
            break;
        }
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{doc}");
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "/healthz stayed {doc}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    h.stop().await;
}

/// The viewer token reads and streams, and is refused (403, saying why)
/// where a scan would start; the operator's token starts it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_viewer_token_reads_and_streams_but_never_starts_a_scan() {
    let h = Harness::start(&[], true).await;
    for path in ["/scans", "/scans?limit=5", "/metrics", "/devices/X"] {
        let (status, doc) = h.call("GET", path, Some(VIEWER), None).await;
        assert_eq!(status, StatusCode::OK, "GET {path}: {doc}");
    }
    // The event stream opens (its headers; the body never ends).
    let req = Request::builder()
        .uri("/events")
        .header(header::AUTHORIZATION, format!("Bearer {VIEWER}"))
        .body(Body::empty())
        .unwrap();
    let resp = router(h.app.clone()).oneshot(req).await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(
        resp.headers()[header::CONTENT_TYPE],
        "text/event-stream",
        "the viewer streams"
    );
    drop(resp);

    let body = || {
        json!({"operationId": 5, "windowSecs": 1})
            .to_string()
            .into_bytes()
    };
    let (status, doc) = h.call("POST", "/scans", Some(VIEWER), Some(body())).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{doc}");
    let error = doc["error"].as_str().unwrap();
    assert!(
        error.contains("read-only viewer token") && error.contains("--api-token"),
        "says why and what to send: {error}"
    );
    let (_, list) = h.get("/scans").await;
    assert_eq!(list, json!([]), "nothing was started");
    // A viewer-token look-alike is no token at all.
    let (status, _) = h
        .call("POST", "/scans", Some("v1ewer-x"), Some(body()))
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, doc) = h.call("POST", "/scans", Some(TOKEN), Some(body())).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{doc}");
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_bodies_are_400_naming_the_field_and_unknown_ids_404() {
    let h = Harness::start(&[], false).await;
    for (body, field) in [
        (
            json!({"operationId": 1, "windowSecs": 0}),
            "field windowSecs",
        ),
        (
            json!({"operationId": 1, "windowSecs": 3601}),
            "field windowSecs",
        ),
        (json!({"operationId": 1, "windowSecs": "30"}), "windowSecs"),
        (
            json!({"operationId": 1, "expected": ["ok", "has space"]}),
            "expected[1]",
        ),
        (json!({"operationId": 1, "windowsecs": 5}), "windowsecs"),
        (json!({"operationId": 1, "target": "directburn"}), "target"),
        (json!({"expected": []}), "operationId"),
        // Pair is not configured on this server.
        (json!({"operationId": 1, "expected": ["A"]}), "field target"),
    ] {
        let (status, doc) = h.post(&body).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}: {doc}");
        let message = doc["error"].as_str().unwrap();
        assert!(
            message.contains(field),
            "{body}: {message:?} names no {field}"
        );
    }
    let (status, doc) = h
        .call("POST", "/scans", Some(TOKEN), Some(b"{not json".to_vec()))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{doc}");
    let (status, doc) = h.get("/scans?limit=many").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(doc["error"].as_str().unwrap().contains("limit"), "{doc}");
    // None of those started anything.
    let (_, list) = h.get("/scans").await;
    assert_eq!(list, json!([]));

    for path in ["/scans/404", "/scans/%22404%22", "/scans/no-such-op"] {
        let (status, doc) = h.get(path).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{path}: {doc}");
        assert!(
            doc["error"].as_str().unwrap().contains("POST /scans"),
            "{doc}"
        );
    }
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_thousand_serials_are_taken_and_a_body_over_the_limit_is_413() {
    let h = Harness::start(&[], true).await;
    let big = format!(
        r#"{{"operationId": 1, "operatorId": "{}"}}"#,
        "x".repeat(burnin_service::http::api::MAX_BODY)
    );
    let (status, doc) = h
        .call("POST", "/scans", Some(TOKEN), Some(big.into_bytes()))
        .await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{doc}");
    assert!(doc["error"].as_str().unwrap().contains("2097152"), "{doc}");
    let (_, list) = h.get("/scans").await;
    assert_eq!(list, json!([]));

    // 20,000 serials of the longest kind (64 bytes each): taken, in order.
    let serials: Vec<String> = (0..20_000).map(|i| format!("{i:0>64}")).collect();
    let body = json!({"operationId": "big", "expected": serials, "windowSecs": 1}).to_string();
    assert!(body.len() > 1_300_000, "{}", body.len());
    let took = Instant::now();
    let (status, doc) = h
        .call("POST", "/scans", Some(TOKEN), Some(body.into_bytes()))
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{doc}");
    eprintln!("POST /scans with 20,000 serials took {:?}", took.elapsed());
    let (status, doc) = h.get("/scans/big").await;
    assert_eq!(status, StatusCode::OK);
    let expected = doc["expected"].as_array().unwrap();
    assert_eq!(expected.len(), 20_000);
    assert_eq!(expected[19_999], json!(serials[19_999]));
    assert_eq!(doc["devices"].as_array().unwrap().len(), 20_000);
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_started_scan_is_202_then_409_while_running_then_done_with_every_device() {
    let mut h = Harness::start(
        &[
            ("DUT-1", &["02:00:00:00:01:01", "02:00:00:00:01:02"]),
            ("DUT-2", &["02:00:00:00:02:99"]),
        ],
        true,
    )
    .await;
    // DUT-1 passes, DUT-2 has a card MES does not know, DUT-3 never answers.
    h.agent(hardware(
        "DUT-1",
        &["02:00:00:00:01:01", "02:00:00:00:01:02"],
    ));
    h.agent(hardware("DUT-2", &["02:00:00:00:02:01"]));

    let body = json!({"operationId": 77, "expected": ["DUT-1", "DUT-2", "DUT-3"], "windowSecs": 2});
    let (status, doc) = h.post(&body).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{doc}");
    assert_eq!(doc["operationId"], json!(77));
    assert!(doc["deadline"].as_str().unwrap().ends_with('Z'), "{doc}");

    // Still collecting (DUT-3 is silent until the 2 s window closes): 409.
    let (status, again) = h.post(&body).await;
    assert_eq!(status, StatusCode::CONFLICT, "{again}");
    assert!(
        again["error"].as_str().unwrap().contains("already running"),
        "{again}"
    );

    let (status, live) = h.get("/scans/77").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(live["state"], "collecting", "{live}");

    let done = h
        .wait_for("77", Duration::from_secs(20), |d| d["state"] == "done")
        .await;
    let devices: Vec<(String, String)> = done["devices"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            (
                d["sn"].as_str().unwrap().to_owned(),
                d["result"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        devices,
        [
            ("DUT-1".to_owned(), "1".to_owned()),
            ("DUT-2".to_owned(), "0".to_owned()),
            ("DUT-3".to_owned(), "0".to_owned()),
        ]
    );
    assert_eq!(done["devices"][2]["macinfo"], json!([]));
    assert_eq!(done["replies"], json!(2));
    let kinds: Vec<&str> = done["deliveries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            assert_eq!(d["ok"], json!(true), "{d}");
            d["kind"].as_str().unwrap()
        })
        .collect();
    assert_eq!(kinds, ["log", "pair", "notify"]);
    assert!(done.get("error").is_none(), "{done}");

    // What the factory received (here: the out-dir).
    // Byte for byte what an HTTP factory would receive (no newline added).
    assert_eq!(
        std::fs::read_to_string(h.out.path().join("77.pair.json")).unwrap(),
        r#"{"snArray":["DUT-1"],"operationId":77}"#
    );
    let notify: Value =
        serde_json::from_slice(&std::fs::read(h.out.path().join("77.notify.json")).unwrap())
            .unwrap();
    assert_eq!(
        notify["scanInfo"],
        json!([{"serialNo": "DUT-1", "result": "Success"},
               {"serialNo": "DUT-2", "result": "Fail"},
               {"serialNo": "DUT-3", "result": "Fail"}])
    );

    // Finished: the id may be started again (a new run), and the list shows it.
    let (_, list) = h.get("/scans?limit=5").await;
    assert_eq!(list[0]["operationId"], json!(77), "{list}");

    // The metrics saw the same thing.
    let (status, text) = h.get("/metrics").await;
    assert_eq!(status, StatusCode::OK);
    let text = text.as_str().unwrap();
    for line in [
        "burnin_replies_total{outcome=\"accepted\"} 2",
        "burnin_devices_total{result=\"pass\"} 1",
        "burnin_devices_total{result=\"fail\"} 2",
        "burnin_operations{state=\"done\"} 1",
        "burnin_operations_started_total{how=\"api\"} 1",
    ] {
        assert!(text.lines().any(|l| l == line), "no {line:?} in\n{text}");
    }
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scan_whose_devices_all_answered_ends_before_its_window() {
    let mut h = Harness::start(&[("DUT-1", &["02:00:00:00:01:01"])], true).await;
    h.agent(hardware("DUT-1", &["02:00:00:00:01:01"]));
    let started = Instant::now();
    let (status, doc) = h
        .post(&json!({"operationId": "op-x", "expected": ["DUT-1"], "windowSecs": 600}))
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{doc}");
    // A string id stays a string; the 600 s window is not waited for.
    let done = h
        .wait_for("op-x", Duration::from_secs(20), |d| d["state"] == "done")
        .await;
    assert!(started.elapsed() < Duration::from_secs(60));
    assert_eq!(done["operationId"], json!("op-x"));
    assert_eq!(done["devices"][0]["result"], "1");
    h.stop().await;
}

/// SPEC §10.1 through the API: `requireLink` in the body, and every
/// device's findings in `GET /scans/{id}` (the factory payloads keep the
/// seed's format).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn require_link_and_hardware_findings_show_in_the_operation() {
    let mut h = Harness::start(
        &[
            ("A", &["02:00:00:00:0a:01"]),
            ("B", &["02:00:00:00:0b:01", "02:00:00:00:0b:02"]),
            ("C", &["02:00:00:00:0b:01"]),
        ],
        true,
    )
    .await;
    let nic = |mac: &str, extra: Value| -> InterfaceReport {
        let mut doc = json!({
            "interface": "enp1s0",
            "macaddr": mac,
            "link": {"carrier": true, "operstate": "up", "speedMbps": 1000},
            "pci": {"slot": "0000:01:00.0", "vendor": "0x8086",
                    "device": "0x1533", "class": "0x020000", "driver": "igb"}
        });
        for (k, v) in extra.as_object().unwrap() {
            doc[k] = v.clone();
        }
        serde_json::from_value(doc).unwrap()
    };
    let device = |serial: &str, i: InterfaceReport, extra_pci: Option<Value>| {
        let mut pci_devices = vec![i.pci.clone()];
        pci_devices.extend(extra_pci.map(|p| serde_json::from_value(p).unwrap()));
        Hardware {
            sn: sn(serial),
            hostname: serial.into(),
            interfaces: vec![i],
            pci_devices,
        }
    };
    // A: cable out. B: software changed its current address, and its
    // second card has no driver. C: reports B's burned-in address.
    h.agent(device(
        "A",
        nic(
            "02:00:00:00:0a:01",
            json!({"link": {"carrier": false, "operstate": "down", "speedMbps": null}}),
        ),
        None,
    ));
    h.agent(device(
        "B",
        nic(
            "52:54:00:00:00:99",
            json!({"permaddr": "02:00:00:00:0b:01", "addrAssignType": "set"}),
        ),
        Some(
            json!({"slot": "0000:03:00.0", "vendor": "0x8086", "device": "0x1533",
                    "class": "0x020000", "driver": null}),
        ),
    ));
    h.agent(device("C", nic("02:00:00:00:0b:01", json!({})), None));
    let (status, _) = h
        .post(&json!({"operationId": 601, "expected": ["A", "B", "C"],
                      "windowSecs": 10, "requireLink": true}))
        .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let doc = h
        .wait_for("601", Duration::from_secs(20), |d| d["state"] == "done")
        .await;
    assert_eq!(doc["requireLink"], json!(true));
    let devices = doc["devices"].as_array().unwrap();
    let messages = |n: usize| -> Vec<&str> {
        devices[n]["findings"]
            .as_array()
            .map(|f| f.iter().map(|f| f["message"].as_str().unwrap()).collect())
            .unwrap_or_default()
    };
    assert_eq!(devices[0]["result"], "0", "A has no link");
    assert_eq!(devices[0]["macinfo"][0]["scanstatus"], "0");
    assert_eq!(
        messages(0),
        ["enp1s0: no link (no carrier); requireLink fails it"]
    );
    assert_eq!(devices[0]["findings"][0]["kind"], "noLink");
    // B: the burned-in address is compared and logged.
    assert_eq!(devices[1]["macinfo"][0]["macaddr"], "02:00:00:00:0b:01");
    assert_eq!(devices[1]["result"], "0", "a card is missing");
    assert_eq!(
        messages(1),
        [
            "enp1s0: MAC overridden by software (current 52:54:00:00:00:99)",
            "network card at 0000:03:00.0 (8086:1533) has no driver; likely the missing card 02:00:00:00:0b:02",
            "enp1s0: MAC 02:00:00:00:0b:01 also reported by C",
        ]
    );
    assert_eq!(devices[2]["result"], "1", "results still follow MES");
    assert_eq!(
        messages(2),
        ["enp1s0: MAC 02:00:00:00:0b:01 also reported by B"]
    );
    // The log keeps the seed's format: no findings in it.
    let log = std::fs::read_to_string(h.out.path().join("601.log.json")).unwrap();
    assert!(
        !log.contains("findings") && !log.contains("permaddr"),
        "{log}"
    );
    assert!(log.contains(r#""macaddr":"02:00:00:00:0b:01""#), "{log}");
    h.stop().await;
}

/// A broker link that accepts the connection and never confirms anything.
struct NeverConfirms;

struct SilentLink;

#[async_trait::async_trait]
impl burnin_core::CommandPublisher for SilentLink {
    async fn publish(
        &self,
        _command: &burnin_core::ScanCommand,
        _window: Duration,
    ) -> Result<(), burnin_core::TransportError> {
        std::future::pending().await
    }
}

#[async_trait::async_trait]
impl burnin_service::Link for SilentLink {
    async fn is_connected(&self) -> bool {
        true
    }
    async fn close(&self) {}
}

#[async_trait::async_trait]
impl burnin_service::Connector for NeverConfirms {
    async fn connect(
        &self,
    ) -> Result<
        (
            Arc<dyn burnin_service::Link>,
            Box<dyn burnin_core::ReplyStream>,
        ),
        burnin_core::TransportError,
    > {
        let (_, replies) = MemoryBroker::new().edge("hwinfo_queue");
        Ok((Arc::new(SilentLink), Box::new(replies)))
    }
    fn describe(&self) -> String {
        "a broker that never confirms".into()
    }
}

/// A MES that never answers.
struct SilentMes;

#[async_trait::async_trait]
impl burnin_core::MesSource for SilentMes {
    async fn lookup(
        &self,
        _sn: &SerialNumber,
    ) -> Result<burnin_core::MesAnswer, burnin_core::MesError> {
        std::future::pending().await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_fails_an_operation_whose_command_is_never_confirmed_naming_the_wait() {
    let out = tempfile::tempdir().unwrap();
    let app = App::builder(
        std::sync::Arc::new(SqliteStore::in_memory().unwrap()),
        NeverConfirms,
        Box::new(FileMes::from_records([])),
        Box::new(OutDirReporter::new(out.path()).unwrap()),
    )
    .build();
    app.start().await.unwrap();
    let h = Harness {
        app,
        broker: MemoryBroker::new(),
        out,
        agents: Vec::new(),
    };
    let started = Instant::now();
    let (status, doc) = h
        .call(
            "POST",
            "/scans",
            None,
            Some(
                json!({"operationId": 90, "expected": ["X-1"], "windowSecs": 1})
                    .to_string()
                    .into_bytes(),
            ),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{doc}");
    // Window (1 s, rounded up to the next whole second) + reporting to files.
    let failed = h
        .wait_for("90", Duration::from_secs(30), |d| d["state"] == "failed")
        .await;
    let error = failed["error"].as_str().unwrap();
    assert!(
        error.contains("did not confirm the scan command of operation 90 within the window"),
        "{error}"
    );
    assert!(started.elapsed() < Duration::from_secs(30));
    let notify: Value =
        serde_json::from_slice(&std::fs::read(h.out.path().join("90.notify.json")).unwrap())
            .unwrap();
    assert_eq!(notify["error"].as_str(), Some(error));
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_fails_an_operation_whose_mes_never_answers_naming_mes() {
    let broker = MemoryBroker::new();
    let out = tempfile::tempdir().unwrap();
    let app = App::builder(
        std::sync::Arc::new(SqliteStore::in_memory().unwrap()),
        MemoryConnector::new(broker.clone(), "hwinfo_queue"),
        Box::new(SilentMes),
        Box::new(OutDirReporter::new(out.path()).unwrap()),
    )
    .bounds(burnin_service::Bounds {
        mes: Duration::from_secs(1),
        ..burnin_service::Bounds::default()
    })
    .build();
    app.start().await.unwrap();
    let mut h = Harness {
        app,
        broker,
        out,
        agents: Vec::new(),
    };
    h.agent(hardware("M-1", &["02:00:00:00:0a:01"]));
    let (status, doc) = h
        .post(
            &json!({"operationId": 91, "expected": ["M-1"], "windowSecs": 30,
                      "mesOutageWaitSecs": 2}),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{doc}");
    // M-1 answers at once, so collection ends long before the window; each
    // lookup then runs out after its 1 s bound, and is retried for the
    // 2 s MES outage wait (shown meanwhile), then M-1 is left undecided.
    let waiting = h
        .wait_for("91", Duration::from_secs(10), |d| {
            d["devices"][0]["details"][0]
                .as_str()
                .is_some_and(|s| s.starts_with("waiting for MES: no answer within 1 s"))
        })
        .await;
    assert_eq!(waiting["devices"][0]["state"], "replied", "{waiting}");
    let failed = h
        .wait_for("91", Duration::from_secs(20), |d| d["state"] == "failed")
        .await;
    let error = failed["error"].as_str().unwrap();
    assert!(
        error.starts_with(
            "MES could not be asked about 1 device(s) (M-1) for 2 s: no answer within 1 s"
        ),
        "{error}"
    );
    assert_eq!(failed["devices"][0]["state"], "undecided", "{failed}");
    assert!(
        !h.out.path().join("91.log.json").exists(),
        "an undecided device is never logged as failed"
    );
    assert!(
        !h.out.path().join("91.pair.json").exists(),
        "never paired unverified"
    );
    // The metrics count each lookup that ran out as unavailable: the first
    // and at least one retry.
    let (_, text) = h.get("/metrics").await;
    let text = text.as_str().unwrap().to_owned();
    let unavailable: f64 = text
        .lines()
        .find_map(|l| {
            l.strip_prefix(
                "burnin_factory_requests_total{endpoint=\"mes\",status=\"unavailable\"} ",
            )
        })
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("{text}"));
    assert!(unavailable >= 2.0, "{text}");
    h.stop().await;
}
