//! The live page at `GET /`: one HTML file, a stylesheet and a script,
//! embedded in the binary (`include_str!`; no build step, no Node).
//!
//! The page holds no data: it needs no token to load, and asks for the
//! API token (when `--api-token` is set) the first time the API answers
//! 401, keeps it in the tab's `sessionStorage`, and sends it as
//! `Authorization: Bearer`. It reads `GET /scans`, `GET /scans/{id}`,
//! `GET /devices/{sn}` and the event stream `GET /events` (with `fetch`, so
//! the token never goes into a URL). What it shows:
//!
//! * running operations with a countdown to their deadline, and the recent
//!   ones; opening `/` selects the running operation (else the most recent)
//!   and follows new running operations until the user picks one;
//! * for the selected operation, a table of devices — serial, state
//!   (`waiting`, `replied`, `passed`, `failed` in words next to an icon,
//!   never by colour alone), host name, and details (which MAC is not in
//!   MES, which card is missing, no reply before the window closed) — updated in
//!   place, batched once per animation frame, so 1,000 devices stay fluid;
//! * the state of the log, Pair/directBurn and notification deliveries;
//! * a search for a serial across operations.

use axum::Router;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;

const INDEX: &str = include_str!("../../assets/index.html");
const SCRIPT: &str = include_str!("../../assets/app.js");
const STYLE: &str = include_str!("../../assets/app.css");

/// The page's policy: only its own script and style, API calls to itself.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

fn asset(body: &'static str, content_type: &'static str) -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "no-cache"),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            (header::CONTENT_SECURITY_POLICY, CSP),
        ],
        body,
    )
}

/// The live page (no token needed; it asks for one).
#[utoipa::path(get, path = "/", operation_id = "getPage", tag = "page",
    security(()),
    responses((status = 200, description = "HTML", content_type = "text/html", body = String)))]
pub(crate) async fn index() -> impl IntoResponse {
    asset(INDEX, "text/html; charset=utf-8")
}

/// The page's script.
#[utoipa::path(get, path = "/assets/app.js", operation_id = "getPageScript", tag = "page",
    security(()),
    responses((status = 200, description = "JavaScript", content_type = "text/javascript", body = String)))]
pub(crate) async fn script() -> impl IntoResponse {
    asset(SCRIPT, "text/javascript; charset=utf-8")
}

/// The page's stylesheet.
#[utoipa::path(get, path = "/assets/app.css", operation_id = "getPageStyle", tag = "page",
    security(()),
    responses((status = 200, description = "CSS", content_type = "text/css", body = String)))]
pub(crate) async fn style() -> impl IntoResponse {
    asset(STYLE, "text/css; charset=utf-8")
}

/// `/`, `/assets/app.js`, `/assets/app.css` (no token needed).
pub(crate) fn routes<S: Clone + Send + Sync + 'static>() -> Router<S> {
    Router::new()
        .route("/", get(index))
        .route("/assets/app.js", get(script))
        .route("/assets/app.css", get(style))
}
