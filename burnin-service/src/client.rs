//! A client of a running `burnin-edge serve` ([`EdgeClient`]): one
//! operation through it, as `burnin-edge scan --edge-url URL` runs it, for a one-off scan on a vhost whose reply queue
//! `serve` consumes (an edge is the only consumer of its reply queue,
//! SPEC §11.3).
//!
//! 1. `POST /scans` with the flags that make sense for an operation
//!    ([`ScanRequest`]): operation id, operator id, scan mode, target,
//!    expected serials, window (whole seconds) and `requireLink` when
//!    `--require-link` is given (else the serve's own default applies).
//! 2. Follow `GET /scans/{id}/events` (Server-Sent Events) until the
//!    operation is `done` or `failed`, printing progress on stderr; after
//!    opening the stream, and after a `reset` event or a lost stream, read
//!    `GET /scans/{id}` so an end that came before the stream is not missed.
//! 3. Read `GET /scans/{id}` and turn it into the report a local scan makes
//!    ([`report`]), so the table and `--json` document read the same.
//!
//! The broker, the factory and the store are the serve's: those flags are
//! not used here. Errors ([`Failure`]): 401 (a missing or wrong
//! `--api-token`) and 400/409/413 (bad input, the operation already
//! running) are refused input (`scan` exits 2) with the serve's message;
//! the serve unreachable, 503 (a standby, which names the active edge, or
//! shutting down) and other answers are failures (exit 3).
//!
//! Counters and the collection time come from the serve's `replyCounts`
//! and `collected` (an operation that finished in that process); if the
//! serve restarted since, `replies` gives the accepted count, the others
//! show 0, and collection is taken to have ended when the operation did.

use std::time::{Duration, Instant};

use burnin_core::edge::OperationReport;
use burnin_core::operation::Counters;
use burnin_core::{
    DeviceResult, Finding, OperationId, OperationParams, OperationState, SerialNumber, Target,
    Timestamp,
};
use reqwest::{StatusCode, Url};
use serde::Serialize;
use serde_json::Value;

/// How long following an operation may take beyond its window: the
/// serve's reporting (MES lookups, factory deliveries with retries).
const REPORTING_ALLOWANCE: Duration = Duration::from_secs(15 * 60);
/// Each request but the event stream.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// The body of `POST /scans` (SPEC §7). A new field of the API (such as
/// `rescan`) is one more field here, set in [`ScanRequest::new`] or by
/// the caller.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ScanRequest<'a> {
    operation_id: &'a OperationId,
    #[serde(skip_serializing_if = "Option::is_none")]
    operator_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    scan_mode: Option<i64>,
    target: Target,
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    expected: &'a [SerialNumber],
    window_secs: u64,
    /// Only when `--require-link` is given: otherwise the serve's default.
    #[serde(skip_serializing_if = "Option::is_none")]
    require_link: Option<bool>,
    /// Only when `--rescan` is given.
    #[serde(skip_serializing_if = "Option::is_none")]
    rescan: Option<bool>,
    /// Only when `--require-clock` is given: otherwise the serve's default.
    #[serde(skip_serializing_if = "Option::is_none")]
    require_clock: Option<bool>,
    /// Only when `--require-cabling` is given: otherwise the serve's default.
    #[serde(skip_serializing_if = "Option::is_none")]
    require_cabling: Option<bool>,
    /// Only when `--require-pcie-width` is given: otherwise the serve's
    /// default.
    #[serde(skip_serializing_if = "Option::is_none")]
    require_pcie_width: Option<bool>,
}

impl<'a> ScanRequest<'a> {
    /// The request for `params`; the error names the flag.
    pub fn new(params: &'a OperationParams) -> Result<Self, String> {
        if params.window.subsec_nanos() != 0 {
            return Err(format!(
                "--window {} with --edge-url: give whole seconds (the API takes windowSecs)",
                humantime::format_duration(params.window)
            ));
        }
        Ok(ScanRequest {
            operation_id: &params.operation_id,
            operator_id: params.operator_id.as_deref(),
            scan_mode: params.scan_mode,
            target: params.target,
            expected: &params.expected,
            window_secs: params.window.as_secs(),
            require_link: params.require_link.then_some(true),
            rescan: params.rescan.then_some(true),
            require_clock: params.require_clock.then_some(true),
            require_cabling: params.require_cabling.then_some(true),
            require_pcie_width: params.require_pcie_width.then_some(true),
        })
    }
}

/// Why a scan through the serve stopped.
#[derive(Debug, Clone)]
pub struct Failure {
    /// The serve refused what was asked (401, 400, 409, 413): the caller's
    /// input is wrong (`scan` exits 2). Otherwise the serve could not be
    /// used or could not finish (`scan` exits 3).
    pub refused_input: bool,
    /// What happened and what to do, without the token.
    pub message: String,
}

impl Failure {
    fn usage(message: String) -> Self {
        Failure {
            refused_input: true,
            message,
        }
    }
    fn internal(message: String) -> Self {
        Failure {
            refused_input: false,
            message,
        }
    }
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

/// What [`EdgeClient::scan`] reports while it follows an operation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Progress {
    /// The serve accepted the operation; it collects until `deadline`.
    Started {
        /// The operation's id as the serve holds it.
        id: OperationId,
        /// The serve's `deadline`, as it wrote it.
        deadline: String,
    },
    /// The operation's state changed (`collecting`, `reporting`, `done`, …).
    State(String),
    /// Devices that replied so far (at most once a second).
    Replies(usize),
}

/// A client of one serve's API.
pub struct EdgeClient {
    http: reqwest::Client,
    base: Url,
    /// The base URL for messages (no password).
    shown: String,
    token: Option<String>,
}

impl EdgeClient {
    /// A client of the serve at `url` (`http://` or `https://`), sending
    /// `token` as a bearer token; the error names `--edge-url`. Call it
    /// inside a tokio runtime.
    ///
    /// # Errors
    ///
    /// `url` is not an HTTP URL, or no HTTP client could be made.
    pub fn new(url: &str, token: Option<String>) -> Result<Self, String> {
        let shown = burnin_http::redact_url(url);
        let base = Url::parse(url).map_err(|e| {
            format!("--edge-url {shown}: {e}; give the serve's URL, such as http://127.0.0.1:8080")
        })?;
        if !matches!(base.scheme(), "http" | "https") || base.cannot_be_a_base() {
            return Err(format!(
                "--edge-url {shown}: give an http:// or https:// URL, such as http://127.0.0.1:8080"
            ));
        }
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .build()
            .map_err(|e| format!("cannot make an HTTP client: {e}"))?;
        Ok(EdgeClient {
            http,
            base,
            shown,
            token: token.filter(|t| !t.is_empty()),
        })
    }

    /// `<base>/scans[/<id>[/events]]`; the id as the API reads it (a
    /// number as digits, a string JSON-quoted).
    fn url(&self, id: Option<&OperationId>, events: bool) -> Url {
        let mut url = self.base.clone();
        if let Ok(mut path) = url.path_segments_mut() {
            path.pop_if_empty().push("scans");
            if let Some(id) = id {
                path.push(&serde_json::to_string(id).unwrap_or_default());
                if events {
                    path.push("events");
                }
            }
        }
        url
    }

    fn request(&self, method: reqwest::Method, url: Url) -> reqwest::RequestBuilder {
        let r = self.http.request(method, url);
        match &self.token {
            Some(t) => r.bearer_auth(t),
            None => r,
        }
    }

    fn unreachable(&self, e: &reqwest::Error) -> Failure {
        let why = if e.is_timeout() {
            "no answer in time".to_owned()
        } else if e.is_connect() {
            "nothing answers there".to_owned()
        } else {
            e.to_string().replace(self.base.as_str(), &self.shown)
        };
        Failure::internal(format!(
            "cannot use the edge at {} ({why}); is `burnin-edge serve` running there? \
             Check --edge-url (the serve's --listen address)",
            self.shown
        ))
    }

    /// A non-success answer as a failure: the serve's `error` message and
    /// the exit code its status means.
    async fn refused(&self, what: &str, response: reqwest::Response) -> Failure {
        let status = response.status();
        let body = response.text().await.unwrap_or_default();
        let said = serde_json::from_str::<Value>(&body)
            .ok()
            .and_then(|v| v["error"].as_str().map(str::to_owned))
            .unwrap_or_else(|| body.chars().take(300).collect());
        let shown = &self.shown;
        match status {
            StatusCode::UNAUTHORIZED => Failure::usage(format!(
                "the edge at {shown} refused {what} (401): give --api-token (BURNIN_API_TOKEN) \
                 the value of its serve --api-token"
            )),
            StatusCode::BAD_REQUEST | StatusCode::CONFLICT | StatusCode::PAYLOAD_TOO_LARGE => {
                Failure::usage(format!(
                    "the edge at {shown} refused {what} ({status}): {said}"
                ))
            }
            _ => Failure::internal(format!(
                "the edge at {shown} could not do {what} ({status}): {said}"
            )),
        }
    }

    async fn start(&self, body: &ScanRequest<'_>) -> Result<Value, Failure> {
        let response = self
            .request(reqwest::Method::POST, self.url(None, false))
            .timeout(REQUEST_TIMEOUT)
            .json(body)
            .send()
            .await
            .map_err(|e| self.unreachable(&e))?;
        if response.status() != StatusCode::ACCEPTED {
            return Err(self.refused("starting the scan", response).await);
        }
        response.json().await.map_err(|e| {
            Failure::internal(format!(
                "the edge at {} answered POST /scans with a body that is not JSON: {e}",
                self.shown
            ))
        })
    }

    async fn snapshot(&self, id: &OperationId) -> Result<Value, Failure> {
        let response = self
            .request(reqwest::Method::GET, self.url(Some(id), false))
            .timeout(REQUEST_TIMEOUT)
            .send()
            .await
            .map_err(|e| self.unreachable(&e))?;
        if !response.status().is_success() {
            return Err(self
                .refused(&format!("reading operation {id}"), response)
                .await);
        }
        response.json().await.map_err(|e| {
            Failure::internal(format!(
                "the edge at {} answered GET /scans/{id} with a body that is not JSON: {e}",
                self.shown
            ))
        })
    }

    /// Follows the operation's events until it is done or failed; returns
    /// its final snapshot. A lost stream is opened again (with the last
    /// event id) until `until`.
    async fn follow(
        &self,
        id: &OperationId,
        until: Instant,
        on: &mut (dyn FnMut(Progress) + Send),
    ) -> Result<Value, Failure> {
        let mut last_id: Option<String> = None;
        let mut shown = Shown {
            on,
            state: None,
            replied: std::collections::HashSet::new(),
            last_line: None,
        };
        loop {
            let mut request = self
                .request(reqwest::Method::GET, self.url(Some(id), true))
                .header(reqwest::header::ACCEPT, "text/event-stream");
            if let Some(last) = &last_id {
                request = request.header("Last-Event-ID", last.as_str());
            }
            let opened = tokio::time::timeout(REQUEST_TIMEOUT, request.send()).await;
            let lost = match opened {
                Ok(Ok(response)) if response.status().is_success() => {
                    // Anything that happened before the stream opened.
                    let snap = self.snapshot(id).await?;
                    shown.snapshot(&snap);
                    if finished(&snap) {
                        return Ok(snap);
                    }
                    match self
                        .read_events(id, response, &mut last_id, &mut shown)
                        .await
                    {
                        Ok(true) => return self.snapshot(id).await,
                        Ok(false) => "the serve closed the event stream".to_owned(),
                        Err(e) => e,
                    }
                }
                Ok(Ok(response)) => {
                    return Err(self
                        .refused(&format!("following operation {id}"), response)
                        .await);
                }
                Ok(Err(e)) => self.unreachable(&e).message,
                Err(_) => "no answer in time".to_owned(),
            };
            if Instant::now() >= until {
                return Err(Failure::internal(format!(
                    "lost the edge at {} while following operation {id} ({lost}); the operation \
                     goes on there: GET {}",
                    self.shown,
                    self.url(Some(id), false)
                )));
            }
            tracing::warn!("following operation {id}: {lost}; opening the event stream again");
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }

    /// Reads events until the operation is done or failed (`Ok(true)`),
    /// the stream ends (`Ok(false)`) or breaks (`Err`).
    async fn read_events(
        &self,
        id: &OperationId,
        mut response: reqwest::Response,
        last_id: &mut Option<String>,
        shown: &mut Shown<'_>,
    ) -> Result<bool, String> {
        let mut parser = SseParser::default();
        loop {
            let chunk = match response.chunk().await {
                Ok(Some(c)) => c,
                Ok(None) => return Ok(false),
                Err(e) => return Err(e.to_string()),
            };
            for event in parser.push(&chunk) {
                if let Some(i) = &event.id {
                    *last_id = Some(i.clone());
                }
                let data: Value = serde_json::from_str(&event.data).unwrap_or(Value::Null);
                match event.name.as_str() {
                    "operation" => {
                        shown.operation(&data);
                        if matches!(data["state"].as_str(), Some("done" | "failed")) {
                            return Ok(true);
                        }
                    }
                    "device" => shown.device(&data["device"]),
                    "reset" => {
                        let snap = self.snapshot(id).await.map_err(|f| f.message)?;
                        shown.snapshot(&snap);
                        if finished(&snap) {
                            return Ok(true);
                        }
                    }
                    _ => {}
                }
            }
        }
    }
}

/// Whether a snapshot shows the operation ended.
fn finished(doc: &Value) -> bool {
    matches!(doc["state"].as_str(), Some("done" | "failed")) && doc.get("finished").is_some()
}

/// Progress for the caller: the state when it changes, replies at most
/// once a second.
struct Shown<'a> {
    on: &'a mut (dyn FnMut(Progress) + Send),
    state: Option<String>,
    replied: std::collections::HashSet<String>,
    last_line: Option<Instant>,
}

impl Shown<'_> {
    fn snapshot(&mut self, doc: &Value) {
        for d in doc["devices"].as_array().into_iter().flatten() {
            self.device(d);
        }
        self.operation(doc);
    }

    fn operation(&mut self, doc: &Value) {
        let state = doc["state"].as_str().unwrap_or_default();
        if !state.is_empty() && self.state.as_deref() != Some(state) {
            self.state = Some(state.to_owned());
            (self.on)(Progress::State(state.to_owned()));
        }
    }

    fn device(&mut self, d: &Value) {
        if d["state"].as_str() == Some("waiting") {
            return;
        }
        if let Some(sn) = d["sn"].as_str() {
            self.replied.insert(sn.to_owned());
        }
        if self
            .last_line
            .is_none_or(|t| t.elapsed() >= Duration::from_secs(1))
        {
            self.last_line = Some(Instant::now());
            (self.on)(Progress::Replies(self.replied.len()));
        }
    }
}

/// One Server-Sent Event.
#[derive(Debug, Default, PartialEq, Eq)]
struct SseEvent {
    name: String,
    id: Option<String>,
    data: String,
}

/// Splits a `text/event-stream` into events (the WHATWG rules this API
/// uses: `event:`, `id:`, `data:` lines, comments, a blank line ends an
/// event; CRLF or LF).
#[derive(Debug, Default)]
struct SseParser {
    buffer: Vec<u8>,
    current: SseEvent,
    has_data: bool,
}

impl SseParser {
    fn push(&mut self, bytes: &[u8]) -> Vec<SseEvent> {
        self.buffer.extend_from_slice(bytes);
        let mut out = Vec::new();
        while let Some(end) = self.buffer.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = self.buffer.drain(..=end).collect();
            let line = String::from_utf8_lossy(&line);
            let line = line.trim_end_matches(['\n', '\r']);
            if line.is_empty() {
                let event = std::mem::take(&mut self.current);
                if std::mem::take(&mut self.has_data) || !event.name.is_empty() {
                    out.push(SseEvent {
                        name: if event.name.is_empty() {
                            "message".to_owned()
                        } else {
                            event.name
                        },
                        ..event
                    });
                }
                continue;
            }
            if line.starts_with(':') {
                continue;
            }
            let (field, value) = line.split_once(':').unwrap_or((line, ""));
            let value = value.strip_prefix(' ').unwrap_or(value);
            match field {
                "event" => self.current.name = value.to_owned(),
                "id" => self.current.id = Some(value.to_owned()),
                "data" => {
                    if self.has_data {
                        self.current.data.push('\n');
                    }
                    self.current.data.push_str(value);
                    self.has_data = true;
                }
                _ => {}
            }
        }
        out
    }
}

/// The serve's final snapshot as the report a local scan would have made,
/// with, per device, the serve's own words where this version has no
/// finding that reads the same: the API shows a device's reasons in words,
/// and the finding whose words are exactly the serve's is taken back.
///
/// # Errors
///
/// The snapshot lacks a field, or a field has another shape.
pub fn report(doc: &Value) -> Result<(OperationReport, Vec<Option<String>>), String> {
    let field = |name: &str| -> Result<&Value, String> {
        doc.get(name)
            .ok_or_else(|| format!("the serve's answer has no {name:?}: {doc}"))
    };
    let time = |name: &str| -> Result<Timestamp, String> {
        serde_json::from_value(field(name)?.clone()).map_err(|e| format!("{name:?}: {e}"))
    };
    let operation_id: OperationId = serde_json::from_value(field("operationId")?.clone())
        .map_err(|e| format!("operationId: {e}"))?;
    let state = match field("state")?.as_str() {
        Some("done") => OperationState::Done,
        _ => OperationState::Failed,
    };
    let mut devices = Vec::new();
    let mut words = Vec::new();
    for d in field("devices")?.as_array().into_iter().flatten() {
        // A device still waiting in a failed operation has no result.
        if d.get("result").is_none() {
            continue;
        }
        let mut result: DeviceResult =
            serde_json::from_value(d.clone()).map_err(|e| format!("device {d}: {e}"))?;
        let details: Vec<String> = d["details"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|s| s.as_str().map(str::to_owned))
            .collect();
        words.push(restore_finding(&mut result, &details));
        devices.push(result);
    }
    let counters = match doc.get("replyCounts") {
        Some(c) => Counters {
            accepted: count(&c["accepted"]),
            duplicates: count(&c["duplicate"]),
            conflicts: count(&c["conflict"]),
            rejected: count(&c["rejected"]),
            redelivered: count(&c["redelivered"]),
            mes_done: 0,
        },
        None => Counters {
            accepted: count(field("replies")?),
            ..Counters::default()
        },
    };
    let finished = time("finished")?;
    let collected = if doc.get("collected").is_some() {
        time("collected")?
    } else {
        finished
    };
    let report = OperationReport {
        operation_id,
        state,
        devices,
        error: doc["error"].as_str().map(str::to_owned),
        counters,
        expected: doc["expected"].as_array().map_or(0, Vec::len),
        started: time("started")?,
        collected,
        finished,
    };
    Ok((report, words))
}

fn count(v: &Value) -> usize {
    v.as_u64()
        .and_then(|n| usize::try_from(n).ok())
        .unwrap_or(0)
}

/// The API shows a device's reasons in words, not its finding (no reply,
/// unknown to MES, MES failed). Finds the finding whose words are exactly
/// the serve's, so the table reads as a local scan's; `Some(words)` when
/// none is (a serve of another version): the table then shows its words.
fn restore_finding(d: &mut DeviceResult, details: &[String]) -> Option<String> {
    let mut candidates = vec![Finding::Compared, Finding::NoReply, Finding::UnknownToMes];
    if let Some(why) = details
        .iter()
        .find_map(|s| s.strip_prefix("MES lookup failed: "))
    {
        candidates.push(Finding::MesFailed(why.to_owned()));
    }
    for finding in candidates {
        d.finding = finding;
        if burnin_core::live::details(d) == details {
            return None;
        }
    }
    d.finding = Finding::Compared;
    Some(details.join("; "))
}

impl EdgeClient {
    /// Runs `params` through the serve: starts the operation, follows its
    /// events (reporting [`Progress`] to `on`) until it is done or failed,
    /// and returns its report as a local scan makes it, with the serve's
    /// words per device ([`report`]).
    ///
    /// # Errors
    ///
    /// [`Failure`]: refused input, or the serve unreachable or lost.
    pub async fn scan(
        &self,
        params: &OperationParams,
        on: &mut (dyn FnMut(Progress) + Send),
    ) -> Result<(OperationReport, Vec<Option<String>>), Failure> {
        let body = ScanRequest::new(params).map_err(Failure::usage)?;
        let started = self.start(&body).await?;
        let id: OperationId = serde_json::from_value(started["operationId"].clone())
            .unwrap_or_else(|_| params.operation_id.clone());
        on(Progress::Started {
            id: id.clone(),
            deadline: started["deadline"].as_str().unwrap_or("?").to_owned(),
        });
        let until = Instant::now() + params.window + REPORTING_ALLOWANCE;
        let last = self.follow(&id, until, on).await?;
        report(&last).map_err(|e| {
            Failure::internal(format!(
                "the edge at {} answered GET /scans/{id} in a shape this scan cannot read ({e}); \
                 is it the same burnin version?",
                self.shown
            ))
        })
    }

    /// The serve's URL as shown in messages (no password).
    pub fn shown(&self) -> &str {
        &self.shown
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_are_split_as_the_stream_arrives() {
        let mut p = SseParser::default();
        assert!(
            p.push(b"event: hello\ndata: {\"lastEventId\": 4}\n")
                .is_empty()
        );
        let got = p.push(b"\n: keep-alive\n\nevent: device\r\nid: 5\r\ndata: {\"a\":\r\ndata: 1}\r\n\r\nevent: oper");
        assert_eq!(
            got,
            [
                SseEvent {
                    name: "hello".into(),
                    id: None,
                    data: "{\"lastEventId\": 4}".into()
                },
                SseEvent {
                    name: "device".into(),
                    id: Some("5".into()),
                    data: "{\"a\":\n1}".into()
                },
            ]
        );
        let got = p.push(b"ation\nid: 6\ndata:{}\n\n");
        assert_eq!(got[0].name, "operation");
        assert_eq!(got[0].data, "{}");
    }

    #[test]
    fn the_request_carries_the_flags_and_needs_whole_seconds() {
        let mut p = OperationParams::new(OperationId::Text("A-1".into()));
        p.window = Duration::from_secs(90);
        p.expected = vec!["S1".parse().unwrap()];
        p.target = Target::DirectBurn;
        p.operator_id = Some("op".into());
        p.scan_mode = Some(2);
        let body = serde_json::to_value(ScanRequest::new(&p).unwrap()).unwrap();
        assert_eq!(
            body,
            serde_json::json!({"operationId": "A-1", "operatorId": "op", "scanMode": 2,
                "target": "directBurn", "expected": ["S1"], "windowSecs": 90})
        );
        p.require_link = true;
        let body = serde_json::to_value(ScanRequest::new(&p).unwrap()).unwrap();
        assert_eq!(body["requireLink"], true);
        p.window = Duration::from_millis(1500);
        assert!(ScanRequest::new(&p).unwrap_err().contains("whole seconds"));
    }

    #[tokio::test]
    async fn ids_are_put_in_the_path_as_the_api_reads_them() {
        let c = EdgeClient::new("http://127.0.0.1:8080/edge/", None).unwrap();
        assert_eq!(
            c.url(Some(&OperationId::Number(42)), true).as_str(),
            "http://127.0.0.1:8080/edge/scans/42/events"
        );
        assert_eq!(
            c.url(Some(&OperationId::Text("42 a/b".into())), false)
                .as_str(),
            "http://127.0.0.1:8080/edge/scans/%2242%20a%2Fb%22"
        );
        assert!(EdgeClient::new("ftp://h/", None).is_err());
        assert!(EdgeClient::new("not a url", None).is_err());
    }
}
