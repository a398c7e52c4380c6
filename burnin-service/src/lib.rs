//! # burnin-edge as a library: the edge service
//!
//! `burnin-edge serve` is this library plus flags. The library holds the
//! long-running service — the [`App`] state and its operation runner, the
//! HTTP API ([`router`]), the metrics, and the broker supervision — so it
//! can be tested in one process without a socket or a broker, and other
//! factory tools can embed it. The `burnin-edge` binary (`src/main.rs`
//! and `src/cli/`) parses flags, builds the adapters and calls [`serve`];
//! `scan` and `demo` are binary-only (they run one operation with
//! `burnin_core::edge::run_operation`).
//!
//! **Why a library target of burnin-edge and not a crate of its own**: the
//! service and the binary ship together (one package, one version, one
//! `.deb`), and the service's dependencies (axum, prometheus-client,
//! burnin-store) are the binary's anyway; a second crate would add a
//! manifest and a name to keep in step for nothing. Nothing here depends
//! on the binary: the modules form a tree without cycles —
//! [`api`] → [`service`] → [`broker`], [`metrics`]; [`report`] is shared
//! by the API and `scan --json`.
//!
//! ## Design overview
//!
//! | module | what it is |
//! | --- | --- |
//! | [`service`] | [`App`]: the store, the reply router, the broker link, the factory adapters, metrics and observers; runs each operation in a task; resumes unfinished operations at start; active or standby ([`Role`]) on a shared store |
//! | [`store`] | [`Store`]: SQLite (`--state-db`, default) or PostgreSQL (`--store postgres://…`, several edges, one active) |
//! | [`api`] | [`router`]: `POST /scans`, `GET /scans/{id}`, `GET /scans`, `/healthz`, `/metrics` (axum) |
//! | [`metrics`] | [`Metrics`]: the Prometheus registry, the MES/reporter decorators, the observer that counts replies and devices |
//! | [`broker`] | [`Connector`] (RabbitMQ or in memory), [`BrokerLink`], and the task that keeps one connection up and routes replies |
//! | [`report`] | the JSON shapes of a device and of an operation's report |
//! | [`live`] | device states live (`waiting`, `replied`, `passed`, `failed`), Server-Sent Events with `Last-Event-ID` replay, finding a serial, `--keep` retention |
//! | `page` | the page at `/` (embedded HTML, CSS and JavaScript) |
//! | [`openapi`] | `GET /openapi.json` (OpenAPI 3.1, utoipa) |
//! | [`guard`] | no requests from other web sites: `POST` only as JSON, no foreign `Origin`, without a token no foreign `Host` (DNS rebinding) |
//! | [`listener`] | the accept loop [`serve`] uses: header read timeout, connection cap, graceful shutdown |
//!
//! One operation flows like this: `POST /scans` → [`burnin_core::edge::start`]
//! records it in the store → [`App::spawn_operation`] registers its route in
//! the reply router and runs [`burnin_core::edge::run`] in a task → the
//! command is published through the [`BrokerLink`] → the broker task pumps
//! each reply to its operation → MES lookups, results, the log, Pair or
//! directBurn, and the notification, each recorded in the store.
//!
//! The service does not listen or handle signals by itself: [`serve`] takes
//! a bound listener and a shutdown future (tokio's mini-redis pattern), so a
//! test can serve on port 0 and stop when it likes — or skip the socket and
//! drive [`router`] with `tower::ServiceExt::oneshot`.
//!
//! ## Getting started
//!
//! A service over the in-memory broker, a state database in memory, a MES
//! file and payloads written to a folder:
//!
//! ```no_run
//! use burnin_core::memory::MemoryBroker;
//! use burnin_service::{App, MemoryConnector};
//! use burnin_local::{FileMes, OutDirReporter};
//! use burnin_store::SqliteStore;
//!
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! let broker = MemoryBroker::new();
//! let app = App::builder(
//!     std::sync::Arc::new(SqliteStore::in_memory()?),
//!     MemoryConnector::new(broker.clone(), "hwinfo_queue"),
//!     Box::new(FileMes::load("mes.json".as_ref())?),
//!     Box::new(OutDirReporter::new("out")?),
//! )
//! .api_token(Some("s3cret".into()))
//! .build();
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:8080").await?;
//! burnin_service::serve(listener, app, async {
//!     let _ = tokio::signal::ctrl_c().await;
//! })
//! .await?;
//! # Ok(()) }
//! ```
//!
//! For RabbitMQ, pass an [`AmqpConnector`] built from a checked
//! [`burnin_amqp::AmqpConfig`] instead.

pub mod bounds;
pub mod broker;
pub mod guard;
pub mod http;
pub mod listener;
pub mod live;
pub mod metrics;
pub mod report;
pub mod service;

use std::future::Future;
use std::sync::Arc;

pub use bounds::{Bounds, Waits};
pub use broker::{AmqpConnector, BrokerLink, Connector, Link, MemoryConnector};
pub use http::api::router;
pub use metrics::Metrics;
pub use service::{App, AppBuilder, Role};
/// The operation store a service runs on: any [`burnin_core::StateStore`]
/// (SQLite, `burnin_store::SqliteStore`; PostgreSQL, several edges and one
/// active, `burnin_store_pg::PgStore`), shared by the service's tasks.
pub type Store = Arc<dyn burnin_core::StateStore>;

/// Runs the service on `listener` until `shutdown` completes: resumes what
/// the store holds ([`App::start`]), serves the API, then stops accepting,
/// lets in-flight requests finish and stops everything ([`App::shutdown`]).
///
/// The error says what failed (the store could not be read at start).
/// HTTP is served by [`listener::serve_http`] with the app's
/// [`HttpLimits`](listener::HttpLimits).
pub async fn serve(
    listener: tokio::net::TcpListener,
    app: Arc<App>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), String> {
    if let Ok(addr) = listener.local_addr() {
        app.site().listening_on(addr);
    }
    app.start().await?;
    let stop = app.stop_token();
    tokio::spawn(async move {
        shutdown.await;
        tracing::info!(
            "shutting down: no new requests or replies; what is recorded stays recorded"
        );
        stop.cancel();
    });
    listener::serve_http(
        listener,
        router(app.clone()),
        app.http_limits(),
        app.stop_token(),
    )
    .await;
    app.shutdown().await;
    tracing::info!("stopped");
    Ok(())
}
