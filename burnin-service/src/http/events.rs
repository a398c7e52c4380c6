//! The live routes over HTTP: Server-Sent Events and finding a serial
//! across operations (SPEC §10.2), read from the [`Live`] board. A
//! snapshot (`GET /scans/{id}`) takes its device states from the board
//! too ([`super::body::Operation::new`]).
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
//! [`crate::live::Limits::streams_per_operation`] streams per operation (and as many for
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

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use burnin_core::live::Since;
use burnin_core::{OperationId, SerialNumber};
use futures::Stream;
use serde::Serialize;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::api::OperationPath;
use super::body::{Device, DeviceSighting, Error, stored_devices};
use super::error::ApiError;
use crate::live::{Live, StreamPermit};
use crate::service::App;

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

/// Server-Sent Events of every operation.
#[utoipa::path(get, path = "/events", operation_id = "streamEvents", tag = "live",
    params(("Last-Event-ID" = Option<u64>, Header, description = "replay the events after this id")),
    security(("bearerAuth" = [])),
    responses(
        (status = 200, description = "`text/event-stream`: `hello` (`{\"lastEventId\"}`), then `device`, `operation` and `delivery` events (`data` is JSON, `id` the event id), `reset` when replay is not possible", content_type = "text/event-stream", body = String),
        (status = 400, description = "bad Last-Event-ID", body = Error),
        (status = 503, description = "too many streams", body = Error),
    ))]
pub(crate) async fn all_events(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
) -> Result<Sse<impl Stream<Item = Result<SseEvent, Infallible>>>, ApiError> {
    events(&app, None, &headers)
}

/// Server-Sent Events of one operation (see `GET /events`); the id is
/// read as in `GET /scans/{operationId}`.
#[utoipa::path(get, path = "/scans/{operationId}/events", operation_id = "streamScanEvents", tag = "live",
    params(
        ("operationId" = String, Path, description = "as in GET /scans/{operationId}"),
        ("Last-Event-ID" = Option<u64>, Header, description = "replay the events after this id"),
    ),
    security(("bearerAuth" = [])),
    responses(
        (status = 200, description = "`text/event-stream` of this operation's events (see `GET /events`)", content_type = "text/event-stream", body = String),
        (status = 400, description = "bad Last-Event-ID, or a path that is not UTF-8", body = Error),
        (status = 404, description = "no operation with this id is known", body = Error),
        (status = 500, description = "the store failed", body = Error),
        (status = 503, description = "too many streams for this operation", body = Error),
    ))]
pub(crate) async fn operation_events(
    State(app): State<Arc<App>>,
    OperationPath(view): OperationPath,
    headers: HeaderMap,
) -> Result<Sse<impl Stream<Item = Result<SseEvent, Infallible>>>, ApiError> {
    events(&app, Some(view.params.operation_id), &headers)
}

fn events(
    app: &App,
    op: Option<OperationId>,
    headers: &HeaderMap,
) -> Result<Sse<impl Stream<Item = Result<SseEvent, Infallible>> + use<>>, ApiError> {
    let after = last_event_id(headers).map_err(|()| {
        ApiError::bad_request(
            "header Last-Event-ID: give the id of the last event received (a whole number), or leave it out",
        )
    })?;
    let live = app.http.live.clone();
    let Some(permit) = live.open_stream(op.clone()) else {
        let what = op.map_or_else(
            || "all operations".to_owned(),
            |id| format!("operation {id}"),
        );
        return Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            format!(
                "too many live streams for {what} (at most {}); close another page or try again later",
                live.limits.streams_per_operation
            ),
        ));
    };
    let stream = event_stream(live, op, after, app.stop_token(), permit);
    Ok(Sse::new(stream).keep_alive(KeepAlive::new().interval(Duration::from_secs(15))))
}

/// The data of the `hello` and `reset` events.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Marker {
    /// The last event the stream's client knows of.
    last_event_id: u64,
}

fn marker(last_event_id: u64) -> String {
    serde_json::to_string(&Marker { last_event_id }).unwrap_or_default()
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
    queue.push_back(SseEvent::default().event("hello").data(marker(now)));
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
                            .data(marker(last)),
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

/// A serial in every operation kept, newest first: the operations on the
/// board and the last [`SEARCH_DEPTH`] in the store.
#[utoipa::path(get, path = "/devices/{sn}", operation_id = "findDevice", tag = "live",
    params(("sn" = String, Path, description = "the serial number")),
    security(("bearerAuth" = [])),
    responses(
        (status = 200, description = "where it was seen, newest first", body = Vec<DeviceSighting>),
        (status = 400, description = "not a valid serial number", body = Error),
        (status = 500, description = "the store failed", body = Error),
    ))]
pub(crate) async fn find_device(
    State(store): State<crate::Store>,
    State(live): State<Arc<crate::live::Live>>,
    Path(raw): Path<String>,
) -> Result<Json<Vec<DeviceSighting>>, ApiError> {
    let sn: SerialNumber = raw
        .parse()
        .map_err(|e| ApiError::bad_request(format!("path sn: {e}")))?;
    let views = store
        .list(SEARCH_DEPTH)
        .await
        .map_err(|e| ApiError::store(&e))?;
    let board = live.board();
    let mut hits = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for l in board.operations() {
        if let Some(d) = l.devices.iter().find(|d| d.sn == sn) {
            seen.insert(l.operation_id.clone());
            hits.push(DeviceSighting {
                device: Device::from(d),
                operation_id: l.operation_id.clone(),
                started: l.started,
                state: l.state.into(),
            });
        }
    }
    drop(board);
    for v in &views {
        if seen.contains(&v.params.operation_id) {
            continue;
        }
        if let Some(d) = stored_devices(v).iter().find(|d| d.sn == sn) {
            hits.push(DeviceSighting {
                device: Device::from(d),
                operation_id: v.params.operation_id.clone(),
                started: v.started,
                state: v.state.into(),
            });
        }
    }
    hits.sort_by_key(|h| std::cmp::Reverse(h.started));
    Ok(Json(hits))
}

/// How many stored operations `GET /devices/{sn}` searches.
const SEARCH_DEPTH: usize = 100;
