//! `GET /openapi.json`: the API described as OpenAPI 3.1, generated with
//! utoipa from the Rust types below and the path declarations in this
//! module (one per route of [`crate::router`]).
//!
//! The schemas mirror the JSON the handlers write (`super::api`,
//! [`crate::live`]); the test suite keeps them honest: it validates the
//! document with openapi-spec-validator and runs schemathesis against a
//! live `serve` from it, failing on any response the document does not
//! describe (`bins/burnin-edge/tests/openapi.rs`).

#![allow(dead_code)]

use axum::http::header;
use axum::response::IntoResponse;
use serde::Serialize;
use utoipa::{OpenApi, ToSchema};

/// An operation id: a whole number or a string (echoed as given).
#[derive(Serialize, ToSchema)]
#[serde(untagged)]
pub enum OperationIdDoc {
    /// A number id.
    Number(u64),
    /// A string id (1 to 128 printable characters).
    Text(String),
}

/// `POST /scans` body (SPEC §7).
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ScanRequestDoc {
    /// The operation id.
    pub operation_id: OperationIdDoc,
    /// Operator, sent in the command and in directBurn.
    pub operator_id: Option<String>,
    /// Scan mode, sent in the command and in directBurn.
    pub scan_mode: Option<i64>,
    /// `pair` (default) or `directBurn`.
    pub target: Option<TargetDoc>,
    /// Serials that must answer; collection ends once all have.
    pub expected: Option<Vec<String>>,
    /// How long to collect, in seconds (default 30).
    pub window_secs: Option<u64>,
    /// An interface without carrier fails its MAC (default: `serve --require-link`).
    pub require_link: Option<bool>,
    /// Run an id the edge already holds again (a new run, with
    /// idempotency keys of its own); without it such an id is refused
    /// with 409.
    pub rescan: Option<bool>,
    /// requireClock: a device whose clock is off by more than the clock
    /// tolerance fails.
    pub require_clock: Option<bool>,
    /// How long collection goes on after every expected serial replied,
    /// to catch a second board with the same serial (0 to 60000; default
    /// `serve --settle`, 500).
    pub settle_ms: Option<u64>,
    /// How far a device's clock may be from the edge's before it gets a
    /// finding (default `serve --clock-tolerance`, 120).
    pub clock_tolerance_secs: Option<u64>,
    /// How long a failing MES lookup is retried before its device is left
    /// undecided (0 to 86400; default `serve --mes-outage-wait`, 600).
    pub mes_outage_wait_secs: Option<u64>,
}

/// One run of an operation id.
#[derive(Serialize, ToSchema)]
pub struct RunDoc {
    /// Its number (0: recorded before runs were numbered).
    pub run: u64,
    /// Its state.
    pub state: OperationStateDoc,
    /// When it started.
    pub started: String,
    /// When it finished.
    #[schema(required = false)]
    pub finished: Option<String>,
}

/// Where passing devices go.
#[derive(Serialize, ToSchema)]
pub enum TargetDoc {
    /// The Pair API.
    #[serde(rename = "pair")]
    Pair,
    /// The directBurn API.
    #[serde(rename = "directBurn")]
    DirectBurn,
}

/// `POST /scans` answer.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ScanStartedDoc {
    /// The operation id.
    pub operation_id: OperationIdDoc,
    /// When collection ends (RFC 3339).
    pub deadline: String,
}

/// Every error: what is wrong and what to do.
#[derive(Serialize, ToSchema)]
pub struct ErrorDoc {
    /// The message.
    pub error: String,
}

/// An operation's state.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum OperationStateDoc {
    /// Waiting for replies.
    Collecting,
    /// Delivering payloads.
    Reporting,
    /// Every payload delivered, no error.
    Done,
    /// Finished with an error.
    Failed,
}

/// A device's state.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum DeviceStateDoc {
    /// Expected, no reply yet.
    Waiting,
    /// Reply recorded, results not fixed yet.
    Replied,
    /// Every MAC matched MES.
    Passed,
    /// A mismatch, or no reply; see `findings`.
    Failed,
    /// MES could not be asked (an outage outlasting the operation's MES
    /// outage wait): no verdict, not reported to the factory.
    Undecided,
}

/// `"1"` (match/pass) or `"0"`.
#[derive(Serialize, ToSchema)]
pub enum BitDoc {
    /// Match / pass.
    #[serde(rename = "1")]
    One,
    /// Mismatch / fail.
    #[serde(rename = "0")]
    Zero,
}

/// One line of a device's `macinfo` (as in the log payload).
#[derive(Serialize, ToSchema)]
pub struct MacInfoDoc {
    /// The interface; empty for a MES MAC the device does not have.
    pub interface: String,
    /// The address, `xx:xx:xx:xx:xx:xx`.
    pub macaddr: String,
    /// Whether it matched.
    pub scanstatus: BitDoc,
}

/// A device of an operation, live.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DeviceDoc {
    /// The serial number.
    pub sn: String,
    /// Its state.
    pub state: DeviceStateDoc,
    /// Whether the operation expected it.
    pub expected: bool,
    /// Its host name, once it replied.
    #[schema(required = false)]
    pub hostname: Option<String>,
    /// The log's result once passed or failed.
    #[schema(required = false)]
    pub result: Option<BitDoc>,
    /// Per-MAC statuses once passed or failed.
    pub macinfo: Vec<MacInfoDoc>,
    /// Why it failed (and hardware findings), in words.
    pub details: Vec<String>,
    /// Hardware findings (SPEC §10.1); left out when none.
    #[schema(required = false)]
    pub findings: Vec<HardwareFindingDoc>,
}

/// A hardware finding (SPEC §10.1).
#[derive(Serialize, ToSchema)]
pub struct HardwareFindingDoc {
    /// `macOverridden`, `softwareAddress`, `noDriver`, `sharedMac`, `noLink`, …
    pub kind: String,
    /// The interface it concerns, if one.
    #[schema(required = false)]
    pub interface: Option<String>,
    /// The sentence shown to people.
    pub message: String,
}

/// A delivery to the factory.
#[derive(Serialize, ToSchema)]
pub struct DeliveryDoc {
    /// `log`, `pair`, `directBurn` or `notify`.
    pub kind: String,
    /// Whether it was accepted.
    pub ok: bool,
    /// Why not.
    #[schema(required = false)]
    pub error: Option<String>,
    /// When (RFC 3339).
    pub at: String,
}

/// An operation (`GET /scans/{operationId}`, items of `GET /scans`).
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct OperationDoc {
    /// The operation id.
    pub operation_id: OperationIdDoc,
    /// Its state.
    pub state: OperationStateDoc,
    /// When collection started.
    pub started: String,
    /// When collection ends at the latest.
    pub deadline: String,
    /// When it finished.
    #[schema(required = false)]
    pub finished: Option<String>,
    /// Replies accepted so far.
    pub replies: u64,
    /// Serials expected.
    pub expected: Vec<String>,
    /// `pair` or `directBurn`.
    pub target: TargetDoc,
    /// Whether an interface without carrier fails its MAC (SPEC §10.1).
    pub require_link: bool,
    /// Every device: expected ones from the start, others once they replied.
    pub devices: Vec<DeviceDoc>,
    /// Deliveries so far.
    pub deliveries: Vec<DeliveryDoc>,
    /// What went wrong.
    #[schema(required = false)]
    pub error: Option<String>,
    /// The last event this snapshot includes (see `GET /events`).
    pub last_event_id: u64,
    /// Which run of the id this is (the latest).
    #[schema(required = false)]
    pub run: Option<u64>,
    /// Every run of the id, oldest first.
    #[schema(required = false)]
    pub runs: Option<Vec<RunDoc>>,
    /// Replies recorded after this run stopped collecting (a twin
    /// answering late, a slow device); left out when none.
    #[schema(required = false)]
    pub late_replies: Option<u64>,
    /// When collection ended: only for an operation that finished in this
    /// process (and is still in its memory).
    #[schema(required = false)]
    pub collected: Option<String>,
    /// Every reply counter, as `scan --json` names them: only for an
    /// operation that finished in this process (and is still in its memory).
    #[schema(required = false)]
    pub reply_counts: Option<ReplyCountsDoc>,
}

/// Reply messages an operation handled (`replyCounts`).
#[derive(Serialize, ToSchema)]
pub struct ReplyCountsDoc {
    /// Recorded: one per serial.
    pub accepted: u64,
    /// Further replies from a serial that had already replied.
    pub duplicate: u64,
    /// Further replies from a serial whose facts differ (another board).
    pub conflict: u64,
    /// Moved to the rejected queue.
    pub rejected: u64,
    /// Flagged by the broker as delivered before (each also counted above).
    pub redelivered: u64,
}

/// A serial found in an operation (`GET /devices/{sn}`).
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DeviceHitDoc {
    /// The operation.
    pub operation_id: OperationIdDoc,
    /// Its state.
    pub state: OperationStateDoc,
    /// When it started.
    pub started: String,
    /// The device in it.
    pub device: DeviceDoc,
}

/// An edge's role (`serve --store postgres://…`: one active, the others
/// standbys; with SQLite always active).
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum RoleDoc {
    /// Runs operations.
    Active,
    /// Answers reads; `POST /scans` goes to the active edge.
    Standby,
}

/// `GET /healthz` answer.
#[derive(Serialize, ToSchema)]
pub struct HealthDoc {
    /// `up` (the active edge's broker connection; a standby has none).
    pub broker: Option<String>,
    /// This edge's role.
    pub role: RoleDoc,
    /// On a standby: the active edge as it advertised itself
    /// (`--advertise-url`), null if none is recorded.
    pub active: Option<String>,
}

/// An error that comes with the edge's role: `/healthz` while the broker
/// is down, `POST /scans` on a standby.
#[derive(Serialize, ToSchema)]
pub struct RoleErrorDoc {
    /// What is wrong and what to do.
    pub error: String,
    /// This edge's role.
    pub role: Option<RoleDoc>,
    /// The active edge as it advertised itself (`--advertise-url`), null if
    /// none is recorded; send `POST /scans` there.
    pub active: Option<String>,
}

/// Starts a scan operation.
#[utoipa::path(post, path = "/scans", request_body = ScanRequestDoc,
    responses(
        (status = 202, description = "started", body = ScanStartedDoc),
        (status = 400, description = "a field is wrong (the message names it)", body = ErrorDoc),
        (status = 401, description = "missing or wrong API token", body = ErrorDoc),
        (status = 409, description = "an operation with this id is running", body = ErrorDoc),
        (status = 413, description = "body over 2 MiB", body = ErrorDoc),
        (status = 500, description = "the store failed", body = ErrorDoc),
        (status = 503, description = "the broker connection is down (`Retry-After: 5`), shutting down, or this edge is a standby: `active` names the active edge to send it to (`Retry-After: 2`)", body = RoleErrorDoc),
        (status = 415, description = "not `Content-Type: application/json`", body = ErrorDoc),
        (status = 403, description = "a request from a web page of another origin (`Origin` not the edge's own nor given with `--allow-origin`)", body = ErrorDoc),
        (status = 421, description = "without an API token: a `Host` that does not name this edge (DNS rebinding)", body = ErrorDoc),
    ))]
fn create() {}

/// The most recent operations, newest first.
#[utoipa::path(get, path = "/scans",
    params(("limit" = Option<u32>, Query, description = "how many, 0 to 1000 (default 20)")),
    responses(
        (status = 200, description = "operations", body = Vec<OperationDoc>),
        (status = 400, description = "bad limit", body = ErrorDoc),
        (status = 401, description = "missing or wrong API token", body = ErrorDoc),
        (status = 500, description = "the store failed", body = ErrorDoc),
        (status = 403, description = "a request from a web page of another origin (`Origin` not the edge's own nor given with `--allow-origin`)", body = ErrorDoc),
        (status = 421, description = "without an API token: a `Host` that does not name this edge (DNS rebinding)", body = ErrorDoc),
    ))]
fn list() {}

/// One operation with its devices' live states.
#[utoipa::path(get, path = "/scans/{operationId}",
    params(("operationId" = String, Path, description = "a number, a string, or a JSON string in quotes")),
    responses(
        (status = 200, description = "the operation", body = OperationDoc),
        (status = 401, description = "missing or wrong API token", body = ErrorDoc),
        (status = 404, description = "unknown", body = ErrorDoc),
        (status = 500, description = "the store failed", body = ErrorDoc),
        (status = 403, description = "a request from a web page of another origin (`Origin` not the edge's own nor given with `--allow-origin`)", body = ErrorDoc),
        (status = 421, description = "without an API token: a `Host` that does not name this edge (DNS rebinding)", body = ErrorDoc),
    ))]
fn show() {}

/// Server-Sent Events of one operation (see `GET /events`).
#[utoipa::path(get, path = "/scans/{operationId}/events",
    params(
        ("operationId" = String, Path, description = "as in GET /scans/{operationId}"),
        ("Last-Event-ID" = Option<u64>, Header, description = "replay the events after this id"),
    ),
    responses(
        (status = 200, description = "`text/event-stream`: `hello`, then `device`, `operation`, `delivery` events (`data` is JSON, `id` the event id), `reset` when replay is not possible", content_type = "text/event-stream", body = String),
        (status = 400, description = "bad Last-Event-ID", body = ErrorDoc),
        (status = 401, description = "missing or wrong API token", body = ErrorDoc),
        (status = 404, description = "unknown", body = ErrorDoc),
        (status = 503, description = "too many streams for this operation", body = ErrorDoc),
        (status = 403, description = "a request from a web page of another origin (`Origin` not the edge's own nor given with `--allow-origin`)", body = ErrorDoc),
        (status = 421, description = "without an API token: a `Host` that does not name this edge (DNS rebinding)", body = ErrorDoc),
    ))]
fn operation_events() {}

/// Server-Sent Events of every operation.
#[utoipa::path(get, path = "/events",
    params(("Last-Event-ID" = Option<u64>, Header, description = "replay the events after this id")),
    responses(
        (status = 200, description = "`text/event-stream` (see GET /scans/{operationId}/events)", content_type = "text/event-stream", body = String),
        (status = 400, description = "bad Last-Event-ID", body = ErrorDoc),
        (status = 401, description = "missing or wrong API token", body = ErrorDoc),
        (status = 503, description = "too many streams", body = ErrorDoc),
        (status = 403, description = "a request from a web page of another origin (`Origin` not the edge's own nor given with `--allow-origin`)", body = ErrorDoc),
        (status = 421, description = "without an API token: a `Host` that does not name this edge (DNS rebinding)", body = ErrorDoc),
    ))]
fn all_events() {}

/// A serial in every operation kept, newest first.
#[utoipa::path(get, path = "/devices/{sn}",
    params(("sn" = String, Path, description = "the serial number")),
    responses(
        (status = 200, description = "where it was seen", body = Vec<DeviceHitDoc>),
        (status = 400, description = "not a valid serial number", body = ErrorDoc),
        (status = 401, description = "missing or wrong API token", body = ErrorDoc),
        (status = 500, description = "the store failed", body = ErrorDoc),
        (status = 403, description = "a request from a web page of another origin (`Origin` not the edge's own nor given with `--allow-origin`)", body = ErrorDoc),
        (status = 421, description = "without an API token: a `Host` that does not name this edge (DNS rebinding)", body = ErrorDoc),
    ))]
fn find_device() {}

/// The edge's role, and on the active edge whether the broker connection
/// is up (never needs the token).
#[utoipa::path(get, path = "/healthz",
    responses(
        (status = 200, description = "active with the broker up, or standby", body = HealthDoc),
        (status = 503, description = "active and the broker is down", body = RoleErrorDoc),
        (status = 403, description = "a request from a web page of another origin (`Origin` not the edge's own nor given with `--allow-origin`)", body = ErrorDoc),
        (status = 421, description = "without an API token: a `Host` that does not name this edge (DNS rebinding)", body = ErrorDoc),
    ))]
fn healthz() {}

/// Prometheus metrics (OpenMetrics text).
#[utoipa::path(get, path = "/metrics",
    responses(
        (status = 200, description = "metrics", content_type = "application/openmetrics-text; version=1.0.0; charset=utf-8", body = String),
        (status = 401, description = "missing or wrong API token", body = ErrorDoc),
        (status = 500, description = "the store failed", body = ErrorDoc),
        (status = 403, description = "a request from a web page of another origin (`Origin` not the edge's own nor given with `--allow-origin`)", body = ErrorDoc),
        (status = 421, description = "without an API token: a `Host` that does not name this edge (DNS rebinding)", body = ErrorDoc),
    ))]
fn metrics() {}

/// This document.
#[utoipa::path(get, path = "/openapi.json",
    responses((status = 200, description = "OpenAPI 3.1", content_type = "application/json", body = Object), (status = 403, description = "a request from a web page of another origin (`Origin` not the edge's own nor given with `--allow-origin`)", body = ErrorDoc), (status = 421, description = "without an API token: a `Host` that does not name this edge (DNS rebinding)", body = ErrorDoc)))]
fn openapi_json() {}

/// The live page (no token needed; it asks for one).
#[utoipa::path(get, path = "/",
    responses((status = 200, description = "HTML", content_type = "text/html", body = String), (status = 403, description = "a request from a web page of another origin (`Origin` not the edge's own nor given with `--allow-origin`)", body = ErrorDoc), (status = 421, description = "without an API token: a `Host` that does not name this edge (DNS rebinding)", body = ErrorDoc)))]
fn page() {}

/// The page's script.
#[utoipa::path(get, path = "/assets/app.js",
    responses((status = 200, description = "JavaScript", content_type = "text/javascript", body = String), (status = 403, description = "a request from a web page of another origin (`Origin` not the edge's own nor given with `--allow-origin`)", body = ErrorDoc), (status = 421, description = "without an API token: a `Host` that does not name this edge (DNS rebinding)", body = ErrorDoc)))]
fn page_script() {}

/// The page's stylesheet.
#[utoipa::path(get, path = "/assets/app.css",
    responses((status = 200, description = "CSS", content_type = "text/css", body = String), (status = 403, description = "a request from a web page of another origin (`Origin` not the edge's own nor given with `--allow-origin`)", body = ErrorDoc), (status = 421, description = "without an API token: a `Host` that does not name this edge (DNS rebinding)", body = ErrorDoc)))]
fn page_style() {}

/// The whole API.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "burnin-edge",
        description = "The edge of a burn-in line: start scans, watch devices live, read results. With `--api-token`, every route but /healthz, /openapi.json and the page needs `Authorization: Bearer TOKEN`."
    ),
    paths(
        create,
        list,
        show,
        operation_events,
        all_events,
        find_device,
        healthz,
        metrics,
        openapi_json,
        page,
        page_script,
        page_style
    ),
    components(schemas(
        ScanRequestDoc,
        ScanStartedDoc,
        ErrorDoc,
        OperationDoc,
        ReplyCountsDoc,
        DeviceDoc,
        DeliveryDoc,
        MacInfoDoc,
        DeviceHitDoc,
        HealthDoc,
        RoleErrorDoc,
        RoleDoc,
        RunDoc
    ))
)]
pub struct ApiDoc;

/// The document as JSON.
pub fn document() -> String {
    ApiDoc::openapi()
        .to_pretty_json()
        .unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"))
}

/// `GET /openapi.json`.
pub(crate) async fn serve_document() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "application/json")], document())
}
