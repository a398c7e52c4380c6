//! The live routes over HTTP: device states in `GET /scans/{id}`,
//! Server-Sent Events, and finding a serial across operations (SPEC §10.2),
//! read from the [`Live`] board.
//!
//! | route | answer |
//! | --- | --- |
//! | `GET /events` | `text/event-stream` of every operation's changes |
//! | `GET /scans/{id}/events` | the same, for one operation |
//! | `GET /devices/{sn}` | `[{"operationId", "state", "started", "device"}]`: the serial in every operation kept, newest first |
//!
//! **The stream.** The first event is `hello` (`{"lastEventId": N}`), then
//! one event per change, named `device`, `operation` or `delivery`, whose
//! `id:` is the event id and whose `data:` is the
//! [`Event`](burnin_core::live::Event) as JSON. A client that reconnects
//! with `Last-Event-ID: N` gets every event after N first. The server keeps
//! the last [`burnin_core::live::DEFAULT_CAPACITY`] events (of all
//! operations); if the client asks for an older id — or for one this
//! process never issued, e.g. after a restart — it gets a `reset` event
//! (`{"lastEventId": M}`) and must read `GET /scans/{id}` again; the store is
//! the source of truth, so nothing is lost, only replayed differently. A
//! comment line is sent every 15 s so proxies keep the stream open. At most
//! [`Limits::streams_per_operation`](crate::live::Limits::streams_per_operation) streams per operation (and as many for
//! `/events`) are served at once; beyond, 503 with a JSON error.
//!
//! **Snapshots.** `GET /scans/{id}` and `GET /scans` carry
//! `"lastEventId"`: the id of the last event the snapshot includes. Events
//! with a greater id are news. An operation that finished in this process
//! (and is still on its board) also carries `"collected"` (when collection
//! ended) and `"replyCounts"` (`{"accepted", "duplicate", "rejected",
//! "redelivered"}`, as `scan --json` names them): `scan --edge-url`
//! prints them; the store does not keep them.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use burnin_core::live::{Board, LiveDevice, Since};
use burnin_core::{OperationId, OperationView, SerialNumber};
use futures::Stream;
use serde_json::{Value, json};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::live::{Live, StreamPermit};
use crate::service::App;

/// An operation as the API shows it: the store's view with live device
/// states (from the board while it is there, else from the store's
/// results) and `lastEventId`.
pub(crate) fn operation_json(mut doc: Value, view: &OperationView, board: &Board) -> Value {
    let live = board.operation(&view.params.operation_id);
    let devices: Vec<LiveDevice> = match live {
        Some(l) => l.devices.clone(),
        None => stored_devices(view),
    };
    if let Some(map) = doc.as_object_mut() {
        map.insert("devices".into(), json!(devices));
        map.insert("lastEventId".into(), json!(board.last_id()));
        if let Some(l) = live {
            // State, error and finish time change together on the board;
            // the store's copy may lag, so never mix the two (a "failed"
            // state without its error). The store only lags: it never knows more.
            map.insert("state".into(), json!(l.state));
            map.insert("replies".into(), json!(l.replies));
            if let Some(e) = &l.error {
                map.insert("error".into(), json!(e));
            }
            if let Some(f) = l.finished {
                map.insert("finished".into(), json!(f));
            }
            // What `scan --edge-url` prints as a local scan would.
            if let Some(c) = l.collected {
                map.insert("collected".into(), json!(c));
            }
            if let Some(c) = l.counters {
                map.insert(
                    "replyCounts".into(),
                    json!({
                        "accepted": c.accepted,
                        "duplicate": c.duplicates,
                        "conflict": c.conflicts,
                        "rejected": c.rejected,
                        "redelivered": c.redelivered,
                    }),
                );
            }
        }
    }
    doc
}

fn stored_devices(view: &OperationView) -> Vec<LiveDevice> {
    let expected = &view.params.expected;
    match &view.results {
        Some(results) => results
            .iter()
            .map(|r| LiveDevice::from_result(r, expected.contains(&r.sn), None))
            .collect(),
        None => {
            let mut seen = std::collections::HashSet::new();
            expected
                .iter()
                .filter(|sn| seen.insert(*sn))
                .map(waiting)
                .collect()
        }
    }
}

fn waiting(sn: &SerialNumber) -> LiveDevice {
    LiveDevice {
        sn: sn.clone(),
        state: burnin_core::live::DeviceState::Waiting,
        expected: true,
        hostname: None,
        result: None,
        macinfo: Vec::new(),
        details: Vec::new(),
        findings: Vec::new(),
    }
}

fn too_many(what: &str, limit: usize) -> Response {
    (
        StatusCode::SERVICE_UNAVAILABLE,
        axum::Json(json!({"error": format!(
            "too many live streams for {what} (at most {limit}); close another page or try again later"
        )})),
    )
        .into_response()
}

/// The `Last-Event-ID` header: `Err(())` if it is not a whole number.
fn last_event_id(headers: &HeaderMap) -> Result<Option<u64>, ()> {
    match headers.get("last-event-id") {
        None => Ok(None),
        Some(v) => match v.to_str().ok().map(str::trim).map(str::parse::<u64>) {
            Some(Ok(n)) => Ok(Some(n)),
            _ => Err(()),
        },
    }
}

/// `GET /events`.
pub(crate) async fn all_events(State(app): State<Arc<App>>, headers: HeaderMap) -> Response {
    events(app, None, &headers)
}

/// `GET /scans/{id}/events`; the id is read as in `GET /scans/{id}`.
pub(crate) async fn operation_events(
    State(app): State<Arc<App>>,
    Path(raw): Path<String>,
    headers: HeaderMap,
) -> Response {
    // The id as `GET /scans/{id}` reads it: a quoted segment is a string
    // id; a number names the number id if one is known, else the string.
    let quoted = serde_json::from_str::<String>(&raw)
        .ok()
        .and_then(|s| OperationId::text(s).ok());
    let found = match quoted {
        Some(id) => app.store.get(&id).await,
        None => app.store.find(&raw).await,
    };
    match found {
        Ok(Some(view)) => events(app, Some(view.params.operation_id), &headers),
        Ok(None) => (
            StatusCode::NOT_FOUND,
            axum::Json(json!({"error": format!("no operation {raw:?} is known; start it with POST /scans")})),
        )
            .into_response(),
        Err(e) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            axum::Json(json!({"error": e.to_string()})),
        )
            .into_response(),
    }
}

fn events(app: Arc<App>, op: Option<OperationId>, headers: &HeaderMap) -> Response {
    let Ok(after) = last_event_id(headers) else {
        return (
            StatusCode::BAD_REQUEST,
            axum::Json(json!({"error": "header Last-Event-ID: give the id of the last event received (a whole number), or leave it out"})),
        )
            .into_response();
    };
    let live = app.live.clone();
    let Some(permit) = live.open_stream(op.clone()) else {
        let what = op.map_or_else(
            || "all operations".to_owned(),
            |id| format!("operation {id}"),
        );
        return too_many(&what, live.limits.streams_per_operation);
    };
    let stream = event_stream(live, op, after, app.stop_token(), permit);
    Sse::new(stream)
        .keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
        .into_response()
}

struct Cursor {
    live: Arc<Live>,
    op: Option<OperationId>,
    after: u64,
    rx: watch::Receiver<u64>,
    queue: std::collections::VecDeque<SseEvent>,
    stop: CancellationToken,
    _permit: StreamPermit,
}

fn event_stream(
    live: Arc<Live>,
    op: Option<OperationId>,
    after: Option<u64>,
    stop: CancellationToken,
    permit: StreamPermit,
) -> impl Stream<Item = Result<SseEvent, Infallible>> + Send + 'static {
    let rx = live.changed.subscribe();
    let now = live.board().last_id();
    let mut queue = std::collections::VecDeque::new();
    queue.push_back(
        SseEvent::default()
            .event("hello")
            .data(json!({"lastEventId": now}).to_string()),
    );
    let cursor = Cursor {
        live,
        op,
        after: after.unwrap_or(now),
        rx,
        queue,
        stop,
        _permit: permit,
    };
    futures::stream::unfold(cursor, |mut c| async move {
        loop {
            if let Some(e) = c.queue.pop_front() {
                return Some((Ok(e), c));
            }
            let (since, last) = {
                let b = c.live.board();
                (b.since(c.after, c.op.as_ref()), b.last_id())
            };
            match since {
                Since::Gap => {
                    c.after = last;
                    c.queue.push_back(
                        SseEvent::default()
                            .event("reset")
                            .id(last.to_string())
                            .data(json!({"lastEventId": last}).to_string()),
                    );
                }
                Since::Events(events) => {
                    c.after = last;
                    for e in events {
                        let data = serde_json::to_string(&e).unwrap_or_default();
                        c.queue.push_back(
                            SseEvent::default()
                                .event(e.change.kind())
                                .id(e.id.to_string())
                                .data(data),
                        );
                    }
                    if c.queue.is_empty() {
                        c.rx.mark_unchanged();
                        if c.live.board().last_id() != c.after {
                            continue;
                        }
                        tokio::select! {
                            () = c.stop.cancelled() => return None,
                            changed = c.rx.changed() => if changed.is_err() { return None },
                        }
                    }
                }
            }
        }
    })
}

/// `GET /devices/{sn}`: the serial in the operations on the board and the
/// last 100 in the store, newest first.
pub(crate) async fn find_device(State(app): State<Arc<App>>, Path(raw): Path<String>) -> Response {
    let sn: SerialNumber = match raw.parse() {
        Ok(sn) => sn,
        Err(e) => {
            return (
                StatusCode::BAD_REQUEST,
                axum::Json(json!({"error": format!("path sn: {e}")})),
            )
                .into_response();
        }
    };
    let views = match app.store.list(SEARCH_DEPTH).await {
        Ok(v) => v,
        Err(e) => {
            return (
                StatusCode::INTERNAL_SERVER_ERROR,
                axum::Json(json!({"error": e.to_string()})),
            )
                .into_response();
        }
    };
    let board = app.live.board();
    let mut hits: Vec<Value> = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for l in board.operations() {
        if let Some(d) = l.devices.iter().find(|d| d.sn == sn) {
            seen.insert(l.operation_id.clone());
            hits.push(json!({"operationId": l.operation_id, "state": l.state, "started": l.started, "device": d}));
        }
    }
    for v in &views {
        if seen.contains(&v.params.operation_id) {
            continue;
        }
        if let Some(d) = stored_devices(v).into_iter().find(|d| d.sn == sn) {
            hits.push(json!({"operationId": v.params.operation_id, "state": v.state, "started": v.started, "device": d}));
        }
    }
    hits.sort_by(|a, b| b["started"].as_str().cmp(&a["started"].as_str()));
    axum::Json(Value::Array(hits)).into_response()
}

/// How many stored operations `GET /devices/{sn}` searches.
const SEARCH_DEPTH: usize = 100;
