//! The live page at `GET /`: one HTML file, a stylesheet and a script,
//! embedded in the binary (`include_str!`; no build step, no Node).
//!
//! The page holds no data: it needs no token to load, and asks for a
//! token (when `--api-token` is set; the read-only `--viewer-token` is
//! enough to watch) the first time the API answers 401. It keeps the token
//! in memory, or in `localStorage` when the user ticks "remember on this
//! screen" (a wall screen that survives reloads; "forget the token" removes
//! it), and sends it as `Authorization: Bearer`. It reads `GET /scans`,
//! `GET /scans/{id}`, `GET /devices/{sn}` and the event stream `GET
//! /events` (with `fetch`, so the token never goes into a URL). What it
//! shows:
//!
//! * running operations with a countdown to their deadline, and the recent
//!   ones; opening `/` selects the running operation (else the most recent)
//!   and follows new running operations until the user picks one;
//! * for the selected operation, the counts by state and a progress bar of
//!   the devices with a verdict; the replies counted against the expected
//!   total only for expected devices (those nobody expected apart);
//! * the room (SPEC §11.2): a tile per device, grouped by switch (the
//!   device's `location.switch`; devices without one under "unplaced"),
//!   ordered by port in natural order (`swp2` before `swp10`), coloured by
//!   state next to its icon and word (never colour alone). A tile is a
//!   button (Tab reaches it, Enter or Space opens it) that opens a modal
//!   dialog with the serial, the place, the switch port, a "planned" mark
//!   when the place comes from the cabling plan alone, and the reasons;
//!   Escape closes it and the focus goes back to the tile;
//! * a table of devices, failed first — serial, state, location, host name,
//!   and details (which MAC is not in MES, which card is missing, no reply
//!   before the window closed) — updated in place, batched once per
//!   animation frame; on a phone each row is a card, so no column is cut
//!   off;
//! * the state of the log, Pair/directBurn and notification deliveries;
//! * a search for a serial across operations.
//!
//! URL parameters: `?only=failed` (or `problems` — not passed —, `waiting`,
//! `undecided`, `passed`) filters tiles and table, and the filter chosen on
//! the page is written back to the URL; `?wall=1` is a large-type version
//! for a screen on the burn-in room's wall (the room and the counts only).
//!
//! Whatever a device sent (serial, host name, interface names in the
//! reasons, LLDP names in its location) is shown as text (`textContent`),
//! never parsed as markup; the policy below also allows no inline script.

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
