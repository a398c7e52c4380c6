//! The service's HTTP API (SPEC §7), on axum: [`router`].
//!
//! | route | answer |
//! | --- | --- |
//! | `POST /scans` | 202 `{"operationId", "deadline"}`; 400 naming the bad field; 409 running; 413 body over 2 MiB; 415 not JSON; 503 while the broker is down (`Retry-After: 5`; the signal `/healthz` uses), while shutting down, or on a standby (`{"error", "role": "standby", "active"}`, `Retry-After: 2`) |
//! | `GET /scans/{operationId}` | 200 the operation; 404 unknown |
//! | `GET /scans?limit=N` | 200 `[operation, …]`, newest first (default 20, at most 1000) |
//! | `GET /healthz` | active: 200 `{"broker": "up", "role": "active"}`, 503 while the broker is not connected; standby: 200 `{"role": "standby", "active"}` (never needs the token) |
//! | `GET /metrics` | Prometheus text ([`crate::metrics`]) |
//!
//! `POST /scans` takes `requireLink` (SPEC §10.1; default off, or on with
//! `serve --require-link`). An operation is shown as `{"operationId",
//! "state", "devices": [{"sn", "result", "macinfo", "findings"?}],
//! "error"?}` ([`crate::report::device_json`]) plus `started`, `deadline`,
//! `finished`, `replies` (accepted so far), `expected`, `target`,
//! `requireLink` and
//! `deliveries` (`[{"kind", "ok", "error"?, "at"}]`). `devices` stays empty
//! until collection has ended and every MES answer is in; `state` is the
//! one last recorded (`collecting` until the results are recorded).
//!
//! **Ids in the path.** The segment is percent-decoded. `/scans/42` finds
//! the operation whose id is the JSON number `42` if there is one, else the
//! one whose id is the string `"42"`; a segment written as a JSON string
//! (`/scans/%2242%22`, i.e. `"42"` with its quotes) is always the string id;
//! any other segment is a string id.
//!
//! **Other web sites.** Before any route, [`crate::guard`] refuses a `POST`
//! that is not `application/json` (415), a request whose `Origin` is not the
//! edge's own or let in with `--allow-origin` (403) and, without a token, a
//! `Host` that does not name the edge (421).
//!
//! **Token.** With `--api-token`, every route but `/healthz` needs
//! `Authorization: Bearer TOKEN`, compared in constant time (`subtle`; only
//! the length can be told apart); otherwise 401. Errors are
//! `{"error": "<what is wrong and what to do>"}`.

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, Path, Query, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use burnin_core::OperationView;
use burnin_core::{OperationId, StoreError, Target};
use burnin_local::SystemClock;
use serde::Deserialize;
use serde_json::{Value, json};
use subtle::ConstantTimeEq;

use crate::report::device_json;
use crate::service::{App, Role};

/// The largest request body accepted (2 MiB, for 20,000 serials).
pub const MAX_BODY: usize = burnin_core::request::MAX_REQUEST_BYTES;
/// How long `POST /scans` waits for a broker connection being made (at
/// start) before answering 503.
const BROKER_WAIT: std::time::Duration = std::time::Duration::from_secs(3);
/// The most operations `GET /scans` returns.
const MAX_LIMIT: usize = 1000;

/// The whole API over `app`, ready to serve or to drive with
/// `tower::ServiceExt::oneshot`.
///
/// **Adding a route**: add it to `guarded` below (token-checked) or next to
/// `/healthz` (open); handlers take `State<Arc<App>>`.
pub fn router(app: Arc<App>) -> Router {
    let guarded = Router::new()
        .route("/scans", get(list).post(create))
        .route("/scans/{operation_id}", get(show))
        .route("/metrics", get(metrics))
        .route("/events", get(super::events::all_events))
        .route(
            "/scans/{operation_id}/events",
            get(super::events::operation_events),
        )
        .route("/devices/{sn}", get(super::events::find_device))
        .layer(middleware::from_fn_with_state(app.clone(), authorize));
    Router::new()
        .route("/healthz", get(healthz))
        .route("/openapi.json", get(super::openapi::serve_document))
        .merge(super::page::routes())
        .merge(guarded)
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .layer(middleware::from_fn_with_state(
            app.site().clone(),
            crate::guard::check,
        ))
        .with_state(app)
}

fn error(status: StatusCode, message: impl Into<String>) -> Response {
    (status, axum::Json(json!({ "error": message.into() }))).into_response()
}

async fn authorize(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    request: Request,
    next: Next,
) -> Response {
    if let Some(token) = &app.api_token {
        let given = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .unwrap_or("");
        if !bool::from(given.as_bytes().ct_eq(token.as_bytes())) {
            let mut r = error(
                StatusCode::UNAUTHORIZED,
                "missing or wrong API token; send Authorization: Bearer <the --api-token value>",
            );
            r.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                header::HeaderValue::from_static("Bearer"),
            );
            return r;
        }
    }
    next.run(request).await
}

async fn create(State(app): State<Arc<App>>, body: Result<Bytes, BytesRejection>) -> Response {
    let body = match body {
        Ok(b) => b,
        Err(e) if e.status() == StatusCode::PAYLOAD_TOO_LARGE => {
            return error(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("the request body is larger than {MAX_BODY} bytes"),
            );
        }
        Err(e) => return error(StatusCode::BAD_REQUEST, format!("bad request body: {e}")),
    };
    let params = match burnin_core::request::parse_scan_request_from(&body, &app.defaults) {
        Ok(p) => p,
        Err(e) => return error(StatusCode::BAD_REQUEST, e.to_string()),
    };
    if let Some(why) = app.target_unavailable(params.target) {
        return error(
            StatusCode::BAD_REQUEST,
            format!("field target: this server cannot deliver it: {why}"),
        );
    }
    if app.is_stopping() {
        return error(StatusCode::SERVICE_UNAVAILABLE, "shutting down; try again");
    }
    if app.role() != Role::Active {
        return standby(&app).await;
    }
    // The same signal as /healthz: an operation started now could not
    // publish its command, so it is refused while the client can retry.
    if !app.broker().up_within(BROKER_WAIT).await {
        let mut r = (
            StatusCode::SERVICE_UNAVAILABLE,
            axum::Json(json!({
                "error": "the broker connection is down (GET /healthz says so too); burnin-edge \
                          keeps reconnecting: try again in a few seconds, and check the broker \
                          if it stays down",
                "role": "active",
                "active": app.advertised(),
            })),
        )
            .into_response();
        r.headers_mut()
            .insert(header::RETRY_AFTER, header::HeaderValue::from_static("5"));
        return r;
    }
    match burnin_core::edge::start(params, &SystemClock, app.recording_store()).await {
        Ok(op) => {
            let doc = json!({
                "operationId": op.id(),
                "deadline": op.deadline(),
            });
            let id = op.id().clone();
            tracing::info!(operation = %id, deadline = %op.deadline(), expected = op.expected_count(), "operation started");
            if !app.spawn_operation(op) && app.role() != Role::Active {
                // Lost the lock between the check and the start: the
                // operation is recorded, and the active edge runs it
                // (its sweep finds it).
                tracing::warn!(operation = %id, "recorded, but this edge stopped being active; the active edge runs it");
            }
            app.metrics().started("api");
            (StatusCode::ACCEPTED, axum::Json(doc)).into_response()
        }
        Err(StoreError::Running(id)) => error(
            StatusCode::CONFLICT,
            format!("operation {id} is already running; wait for it to finish (GET /scans/{id})"),
        ),
        Err(e @ StoreError::Held { .. }) => error(StatusCode::CONFLICT, e.to_string()),
        Err(e) => {
            tracing::error!("could not record a new operation: {e}");
            error(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("the operation could not be recorded: {e}"),
            )
        }
    }
}

fn view_json(v: &OperationView) -> Value {
    let devices: Vec<Value> = v
        .results
        .as_deref()
        .unwrap_or_default()
        .iter()
        .map(device_json)
        .collect();
    let deliveries: Vec<Value> = v
        .deliveries
        .iter()
        .map(|d| {
            let mut doc = json!({"kind": d.kind.as_str(), "ok": d.error.is_none(), "at": d.at});
            if let (Some(e), Some(map)) = (&d.error, doc.as_object_mut()) {
                map.insert("error".into(), e.clone().into());
            }
            doc
        })
        .collect();
    let mut doc = json!({
        "operationId": v.params.operation_id,
        "state": v.state.as_str(),
        "devices": devices,
        "started": v.started,
        "deadline": v.deadline,
        "replies": v.replies,
        "expected": v.params.expected,
        "target": match v.params.target { Target::Pair => "pair", Target::DirectBurn => "directBurn" },
        "requireLink": v.params.require_link,
        "run": v.params.run,
        "runs": v.runs.iter().map(|r| {
            let mut doc = json!({"run": r.run, "state": r.state.as_str(), "started": r.started});
            if let (Some(f), Some(map)) = (r.finished, doc.as_object_mut()) {
                map.insert("finished".into(), json!(f));
            }
            doc
        }).collect::<Vec<_>>(),
        "deliveries": deliveries,
    });
    if let Some(map) = doc.as_object_mut() {
        if let Some(f) = v.finished {
            map.insert("finished".into(), json!(f));
        }
        if let Some(e) = &v.error {
            map.insert("error".into(), e.clone().into());
        }
        if v.late_replies > 0 {
            map.insert("lateReplies".into(), v.late_replies.into());
        }
    }
    doc
}

/// A store read's error as the API answers it (500, logged).
fn store_failed(e: &StoreError) -> Response {
    tracing::error!("{e}");
    error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string())
}

async fn show(State(app): State<Arc<App>>, Path(raw): Path<String>) -> Response {
    let quoted = serde_json::from_str::<String>(&raw)
        .ok()
        .and_then(|s| OperationId::text(s).ok());
    let found = match quoted {
        Some(id) => app.store.get(&id).await,
        None => app.store.find(&raw).await,
    };
    match found {
        Ok(Some(v)) => axum::Json(super::events::operation_json(
            view_json(&v),
            &v,
            &app.live.board(),
        ))
        .into_response(),
        Ok(None) => error(
            StatusCode::NOT_FOUND,
            format!("no operation {raw:?} is known; start it with POST /scans"),
        ),
        Err(e) => store_failed(&e),
    }
}

#[derive(Debug, Deserialize)]
struct ListQuery {
    limit: Option<String>,
}

async fn list(
    State(app): State<Arc<App>>,
    q: Result<Query<ListQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    // A malformed query (e.g. `limit` twice) is a JSON 400 like every error.
    let Ok(Query(q)) = q else {
        return error(
            StatusCode::BAD_REQUEST,
            format!("query: give at most one limit, a number from 0 to {MAX_LIMIT}"),
        );
    };
    let limit = match q.limit.as_deref().map(str::parse::<usize>) {
        None => 20,
        Some(Ok(n)) if n <= MAX_LIMIT => n,
        Some(_) => {
            return error(
                StatusCode::BAD_REQUEST,
                format!("query limit: give a number from 0 to {MAX_LIMIT}"),
            );
        }
    };
    match app.store.list(limit).await {
        Ok(views) => {
            let board = app.live.board();
            let docs = views
                .iter()
                .map(|v| super::events::operation_json(view_json(v), v, &board))
                .collect();
            drop(board);
            axum::Json(Value::Array(docs)).into_response()
        }
        Err(e) => store_failed(&e),
    }
}

async fn healthz(State(app): State<Arc<App>>) -> Response {
    if app.role() == Role::Standby {
        // A standby consumes nothing: it is healthy while it waits.
        let active = app.active_edge().await;
        return (
            StatusCode::OK,
            axum::Json(json!({"role": "standby", "active": active})),
        )
            .into_response();
    }
    if let Some(why) = app.store_health.failing() {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            axum::Json(json!({
                "error": format!(
                    "the operation store cannot record: {why}; operations cannot be kept \
                     until it can (check the disk of the state database)"
                ),
                "role": "active",
            })),
        )
            .into_response();
    }
    if app.broker().is_up().await {
        (
            StatusCode::OK,
            axum::Json(json!({"broker": "up", "role": "active"})),
        )
            .into_response()
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            axum::Json(json!({
                "error": "the broker connection is down; burnin-edge keeps reconnecting",
                "role": "active",
            })),
        )
            .into_response()
    }
}

/// 503 for `POST /scans` on a standby, naming the active edge.
async fn standby(app: &App) -> Response {
    let active = app.active_edge().await;
    let message = match &active {
        Some(a) => format!(
            "this edge is a standby; the active edge is {a}: send POST /scans there \
             (GET requests are answered here too)"
        ),
        None => "this edge is a standby and no active edge is recorded yet; \
                 try again in a few seconds"
            .to_owned(),
    };
    let mut r = (
        StatusCode::SERVICE_UNAVAILABLE,
        axum::Json(json!({"error": message, "role": "standby", "active": active})),
    )
        .into_response();
    r.headers_mut()
        .insert(header::RETRY_AFTER, header::HeaderValue::from_static("2"));
    r
}

async fn metrics(State(app): State<Arc<App>>) -> Response {
    let counts = match app.store.count_by_state().await {
        Ok(c) => c,
        Err(e) => return store_failed(&e),
    };
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        app.metrics().render(&counts),
    )
        .into_response()
}
