//! # burnin-service: the edge service as a library
//!
//! `burnin-edge serve` is this crate plus flags; other factory tools embed
//! it. It holds the long-running service — the [`App`] and its operation
//! runner, the HTTP API and page ([`router`]), the metrics, the broker
//! supervision and leadership on a shared store — so it can be tested in
//! one process without a socket or a broker. It depends on no command-line
//! crate (clap, clap_complete, indicatif): `bins/burnin-edge` turns flags
//! into configuration and makes one call per subcommand ([`serve`],
//! [`oneshot::OneShot::run`], [`client::EdgeClient::scan`], [`check::run`],
//! [`demo::prepare`]).
//!
//! ## Design overview
//!
//! The modules form a tree (a workspace test, `module_cycles`, keeps it
//! one): [`http`] → [`service`] → [`stack`], [`broker`], [`live`],
//! [`bounds`], [`metrics`]; [`oneshot`] and [`demo`] → [`stack`];
//! [`oneshot`] and [`check`] → [`factory`]; [`report`], [`guard`],
//! [`listener`] and [`client`] are leaves.
//!
//! | module | what it is |
//! | --- | --- |
//! | [`service`] | [`App`]: the store, the reply router, the broker link, the factory adapters, metrics and observers; runs each operation in a task; resumes unfinished operations at start; active or standby ([`Role`]) on a store that offers an election |
//! | [`Store`] | the operation store: any [`burnin_core::StateStore`] — SQLite (`burnin_store::SqliteStore`, one edge) or PostgreSQL (`burnin_store_pg::PgStore`, several edges, one active) |
//! | [`http`] | [`router`]: `POST /scans`, `GET /scans/{id}`, `GET /scans`, the live routes, `/healthz`, `/metrics`, `/openapi.json`, the page (axum) |
//! | [`metrics`] | [`Metrics`]: the Prometheus registry, the MES/reporter decorators, the observer that counts replies and devices |
//! | [`broker`] | [`Connector`] (RabbitMQ or in memory), [`BrokerLink`], and the task that keeps one connection up and routes replies |
//! | [`bounds`] | [`Bounds`]: every wait of an operation bounded, the store's health |
//! | [`stack`] | [`PortStack`]: the one place an operation's ports are composed and bounded, for `serve`, `scan` and `demo` |
//! | [`factory`] | [`factory::FactoryConfig`]: MES and the factory endpoints over HTTP, or a MES file and an output folder; builds the adapters |
//! | [`oneshot`] | one operation through the broker, start to finish (`burnin-edge scan`) |
//! | [`client`] | a client of a running serve's API: one operation through it (`scan --edge-url`) |
//! | [`check`] | the pre-shift check of the broker, MES, the factory endpoints, the state database and the clock (`burnin-edge check`) |
//! | [`demo`] | a whole operation in one process with simulated devices (`burnin-edge demo`) |
//! | [`report`] | the JSON shapes of a device and of an operation's report (`scan --json` and the API) |
//! | [`live`] | device states live (`waiting`, `replied`, `passed`, `failed`, `undecided`) for the event streams and the page, `--keep` retention |
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
pub mod check;
pub mod client;
pub mod demo;
pub mod factory;
pub mod guard;
pub mod http;
pub mod listener;
pub mod live;
pub mod metrics;
pub mod oneshot;
pub mod report;
pub mod service;
pub mod stack;

use std::future::Future;
use std::sync::Arc;

pub use bounds::{Bounds, Waits};
pub use broker::{AmqpConnector, BrokerLink, Connector, Link, MemoryConnector};
pub use http::api::router;
pub use metrics::Metrics;
pub use service::{App, AppBuilder, Role};
pub use stack::PortStack;
/// The operation store a service runs on: any [`burnin_core::StateStore`]
/// (SQLite, `burnin_store::SqliteStore`; PostgreSQL, several edges and one
/// active, `burnin_store_pg::PgStore`), shared by the service's tasks.
pub type Store = Arc<dyn burnin_core::StateStore>;

/// Completes on SIGINT or SIGTERM (systemd stops services with SIGTERM):
/// the `shutdown` future `burnin-edge serve` gives [`serve`].
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = term => {}
    }
}

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
