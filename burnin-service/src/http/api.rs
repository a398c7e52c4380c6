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
//! `serve --require-link`). Every body is a type of [`super::body`]
//! (an operation is [`Operation`]); every error is an [`ApiError`].
//!
//! **Ids in the path** ([`OperationPath`]). The segment is
//! percent-decoded. `/scans/42` finds the operation whose id is the JSON number `42` if there is one, else the
//! one whose id is the string `"42"`; a segment written as a JSON string
//! (`/scans/%2242%22`, i.e. `"42"` with its quotes) is always the string id;
//! any other segment is a string id.
//!
//! **Other web sites.** Before any route, [`crate::guard`] refuses a `POST`
//! that is not `application/json` (415), a request whose `Origin` is not the
//! edge's own or let in with `--allow-origin` (403) and, without a token, a
//! `Host` that does not name the edge (421).
//!
//! **Token.** With `--api-token`, every route but `/healthz`,
//! `/openapi.json` and the page needs `Authorization: Bearer TOKEN`
//! (the document's `bearerAuth` scheme), compared in constant time
//! (`subtle`; only the length can be told apart); otherwise 401. The
//! read-only `--viewer-token` (for a screen on the wall) is taken for every
//! `GET` (reading and streaming); anything else with it — starting a scan —
//! is 403 saying it is the viewer token. Errors are
//! `{"error": "<what is wrong and what to do>"}`.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, QueryRejection};
use axum::extract::{DefaultBodyLimit, FromRef, FromRequestParts, Path, Query, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use burnin_core::{OperationId, OperationView, StoreError};
use burnin_local::SystemClock;
use serde::Deserialize;
use subtle::ConstantTimeEq;

use super::body::{
    Error, Health, Operation, Role as RoleBody, ScanRequest, ScanStarted, Unavailable,
};
use super::error::ApiError;
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
/// `/healthz` (open); handlers take the sub-state they use ([`super::HttpState`]), return a body of
/// [`super::body`] or an [`ApiError`], and carry a `#[utoipa::path]`
/// (with `security(("bearerAuth" = []))` when guarded) listed in
/// [`super::openapi`].
pub fn router(app: Arc<App>) -> Router {
    let state = super::HttpState::new(app);
    let guarded = Router::new()
        .route("/scans", get(list_scans).post(create_scan))
        .route("/scans/{operation_id}", get(get_scan))
        .route("/metrics", get(metrics))
        .route("/events", get(super::events::all_events))
        .route(
            "/scans/{operation_id}/events",
            get(super::events::operation_events),
        )
        .route("/devices/{sn}", get(super::events::find_device))
        .layer(middleware::from_fn_with_state(state.clone(), authorize));
    Router::new()
        .route("/healthz", get(healthz))
        .route("/openapi.json", get(super::openapi::serve_document))
        .merge(super::page::routes())
        .merge(guarded)
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .layer(middleware::from_fn_with_state(
            state.clone(),
            crate::guard::check,
        ))
        .with_state(state)
}

async fn authorize(
    State(token): State<super::ApiToken>,
    headers: HeaderMap,
    request: Request,
    next: Next,
) -> Response {
    if let Some(full) = &token.full {
        let given = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .unwrap_or("");
        let same = |t: &str| bool::from(given.as_bytes().ct_eq(t.as_bytes()));
        // Both are compared, so the time taken does not tell which matched.
        let is_full = same(full);
        let is_viewer = token.viewer.as_deref().is_some_and(same);
        if !is_full && !is_viewer {
            return ApiError::unauthorized().into_response();
        }
        let reads = matches!(*request.method(), Method::GET | Method::HEAD);
        if !is_full && !reads {
            return ApiError::viewer_only().into_response();
        }
    }
    next.run(request).await
}

/// The operation an `{operationId}` path segment names (see the module
/// docs): a segment written as a JSON string is that string id; any other
/// names the number id if one is known, else the string id. 404 if none
/// is known.
#[derive(Debug)]
pub struct OperationPath(pub OperationView);

impl<S> FromRequestParts<S> for OperationPath
where
    S: Send + Sync,
    crate::Store: FromRef<S>,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let store = crate::Store::from_ref(state);
        let Path(raw) = Path::<String>::from_request_parts(parts, state)
            .await
            .map_err(|e| ApiError::bad_request(format!("path operationId: {}", e.body_text())))?;
        let quoted = serde_json::from_str::<String>(&raw)
            .ok()
            .and_then(|s| OperationId::text(s).ok());
        let found = match quoted {
            Some(id) => store.get(&id).await,
            None => store.find(&raw).await,
        };
        match found {
            Ok(Some(view)) => Ok(OperationPath(view)),
            Ok(None) => Err(ApiError::unknown_operation(&raw)),
            Err(e) => Err(ApiError::store(&e)),
        }
    }
}

/// Starts a scan: records the operation and publishes its command.
#[utoipa::path(post, path = "/scans", operation_id = "createScan", tag = "scans",
    request_body = ScanRequest,
    security(("bearerAuth" = [])),
    responses(
        (status = 202, description = "started", body = ScanStarted),
        (status = 400, description = "a field is wrong (the message names it)", body = Error),
        (status = 409, description = "an operation with this id is running, or already ran and `rescan` is not set", body = Error),
        (status = 413, description = "body over 2 MiB", body = Error),
        (status = 415, description = "not `Content-Type: application/json`", body = Error),
        (status = 500, description = "the store failed", body = Error),
        (status = 503, description = "the broker connection is down (`Retry-After: 5`), shutting down, or this edge is a standby: `active` names the active edge to send it to (`Retry-After: 2`)",
            body = Unavailable,
            headers(("Retry-After" = u32, description = "seconds to wait before trying again"))),
    ))]
pub(crate) async fn create_scan(
    State(app): State<Arc<App>>,
    body: Result<Bytes, BytesRejection>,
) -> Result<(StatusCode, Json<ScanStarted>), ApiError> {
    let body = match body {
        Ok(b) => b,
        Err(e) if e.status() == StatusCode::PAYLOAD_TOO_LARGE => {
            return Err(ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("the request body is larger than {MAX_BODY} bytes"),
            ));
        }
        Err(e) => return Err(ApiError::bad_request(format!("bad request body: {e}"))),
    };
    let params = burnin_core::request::parse_scan_request_from(&body, &app.runner.defaults)
        .map_err(|e| ApiError::bad_request(e.to_string()))?;
    if let Some(why) = app.target_unavailable(params.target) {
        return Err(ApiError::bad_request(format!(
            "field target: this server cannot deliver it: {why}"
        )));
    }
    if app.is_stopping() {
        return Err(ApiError::unavailable(
            "shutting down; try again",
            None,
            None,
        ));
    }
    if app.role() != Role::Active {
        return Err(standby(&app).await);
    }
    // The same signal as /healthz: an operation started now could not
    // publish its command, so it is refused while the client can retry.
    if !app.broker().up_within(BROKER_WAIT).await {
        return Err(ApiError::unavailable(
            "the broker connection is down (GET /healthz says so too); burnin-edge \
             keeps reconnecting: try again in a few seconds, and check the broker \
             if it stays down",
            Some(RoleBody::Active),
            Some(Some(app.advertised().to_owned())),
        )
        .retry_after(5));
    }
    match burnin_core::edge::start(params, &SystemClock, app.recording_store()).await {
        Ok(op) => {
            let started = ScanStarted {
                deadline: op.deadline(),
                operation_id: op.id().clone(),
            };
            let id = op.id().clone();
            tracing::info!(operation = %id, deadline = %op.deadline(), expected = op.expected_count(), "operation started");
            if !app.spawn_operation(op) && app.role() != Role::Active {
                // Lost the lock between the check and the start: the
                // operation is recorded, and the active edge runs it
                // (its sweep finds it).
                tracing::warn!(operation = %id, "recorded, but this edge stopped being active; the active edge runs it");
            }
            app.metrics().started("api");
            Ok((StatusCode::ACCEPTED, Json(started)))
        }
        Err(StoreError::Running(id)) => Err(ApiError::new(
            StatusCode::CONFLICT,
            format!("operation {id} is already running; wait for it to finish (GET /scans/{id})"),
        )),
        Err(e @ StoreError::Held { .. }) => Err(ApiError::new(StatusCode::CONFLICT, e.to_string())),
        Err(e) => {
            tracing::error!("could not record a new operation: {e}");
            Err(ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("the operation could not be recorded: {e}"),
            ))
        }
    }
}

/// One operation with its devices' live states.
#[utoipa::path(get, path = "/scans/{operationId}", operation_id = "getScan", tag = "scans",
    params(("operationId" = String, Path, description = "a number, a string, or a JSON string in quotes (`\"42\"`: the string id)")),
    security(("bearerAuth" = [])),
    responses(
        (status = 200, description = "the operation", body = Operation),
        (status = 400, description = "the path is not UTF-8 once percent-decoded", body = Error),
        (status = 404, description = "no operation with this id is known", body = Error),
        (status = 500, description = "the store failed", body = Error),
    ))]
pub(crate) async fn get_scan(
    State(app): State<Arc<App>>,
    OperationPath(view): OperationPath,
) -> Json<Operation> {
    Json(Operation::new(&view, &app.http.live.board()))
}

#[derive(Debug, Deserialize)]
pub(crate) struct ListQuery {
    limit: Option<String>,
}

/// The most recent operations, newest first.
#[utoipa::path(get, path = "/scans", operation_id = "listScans", tag = "scans",
    params(("limit" = Option<u32>, Query, minimum = 0, maximum = 1000, description = "how many, 0 to 1000 (default 20)")),
    security(("bearerAuth" = [])),
    responses(
        (status = 200, description = "operations, newest first", body = Vec<Operation>),
        (status = 400, description = "bad limit", body = Error),
        (status = 500, description = "the store failed", body = Error),
    ))]
pub(crate) async fn list_scans(
    State(app): State<Arc<App>>,
    q: Result<Query<ListQuery>, QueryRejection>,
) -> Result<Json<Vec<Operation>>, ApiError> {
    // A malformed query (e.g. `limit` twice) is a JSON 400 like every error.
    let Ok(Query(q)) = q else {
        return Err(ApiError::bad_request(format!(
            "query: give at most one limit, a number from 0 to {MAX_LIMIT}"
        )));
    };
    let limit = match q.limit.as_deref().map(str::parse::<usize>) {
        None => 20,
        Some(Ok(n)) if n <= MAX_LIMIT => n,
        Some(_) => {
            return Err(ApiError::bad_request(format!(
                "query limit: give a number from 0 to {MAX_LIMIT}"
            )));
        }
    };
    let views = app
        .store
        .list(limit)
        .await
        .map_err(|e| ApiError::store(&e))?;
    let board = app.http.live.board();
    Ok(Json(
        views.iter().map(|v| Operation::new(v, &board)).collect(),
    ))
}

/// The edge's role, and on the active edge whether it can work (the
/// broker connection is up and the store records). Never needs the token.
#[utoipa::path(get, path = "/healthz", operation_id = "getHealth", tag = "service",
    security(()),
    responses(
        (status = 200, description = "active with the broker up, or standby", body = Health),
        (status = 503, description = "active, and the broker is down or the store cannot record", body = Unavailable),
    ))]
pub(crate) async fn healthz(State(app): State<Arc<App>>) -> Result<Json<Health>, ApiError> {
    if app.role() == Role::Standby {
        // A standby consumes nothing: it is healthy while it waits.
        return Ok(Json(Health {
            active: Some(app.active_edge().await),
            broker: None,
            role: RoleBody::Standby,
        }));
    }
    if let Some(why) = app.store_health.failing() {
        return Err(ApiError::unavailable(
            format!(
                "the operation store cannot record: {why}; operations cannot be kept \
                 until it can (check the disk of the state database)"
            ),
            Some(RoleBody::Active),
            None,
        ));
    }
    if app.broker().is_up().await {
        Ok(Json(Health {
            active: None,
            broker: Some("up"),
            role: RoleBody::Active,
        }))
    } else {
        Err(ApiError::unavailable(
            "the broker connection is down; burnin-edge keeps reconnecting",
            Some(RoleBody::Active),
            None,
        ))
    }
}

/// 503 for `POST /scans` on a standby, naming the active edge.
async fn standby(app: &App) -> ApiError {
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
    ApiError::unavailable(message, Some(RoleBody::Standby), Some(active)).retry_after(2)
}

/// Prometheus metrics (OpenMetrics text).
#[utoipa::path(get, path = "/metrics", operation_id = "getMetrics", tag = "service",
    security(("bearerAuth" = [])),
    responses(
        (status = 200, description = "metrics", content_type = "application/openmetrics-text; version=1.0.0; charset=utf-8", body = String),
        (status = 500, description = "the store failed", body = Error),
    ))]
pub(crate) async fn metrics(State(app): State<Arc<App>>) -> Result<impl IntoResponse, ApiError> {
    let counts = app
        .store
        .count_by_state()
        .await
        .map_err(|e| ApiError::store(&e))?;
    Ok((
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        app.metrics().render(&counts),
    ))
}
