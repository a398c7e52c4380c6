//! A factory stand-in made for timing: MES (`GET /mes/{sn}` for burnin,
//! `GET /device_info/{sn}` for the baseline; same answer) with a latency
//! knob that applies to MES lookups only, and `POST /log`, `/pair`,
//! `/directBurn`, `/notify` answering 200 at once. Every request is
//! recorded with the instant it arrived (and, for MES, when it was
//! answered), so a run can be broken down into phases.
//!
//! burnin-testkit's `FactoryStandIn` does the same for the tests, but
//! records no times and has no `/device_info` route; it was being edited
//! by someone else while this harness was written, so the harness keeps
//! its own small one.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};

/// One request.
#[derive(Debug, Clone)]
pub(crate) struct Hit {
    /// `/mes`, `/device_info`, `/log`, `/notify`, …
    pub(crate) route: String,
    /// When the request arrived.
    pub(crate) at: Instant,
    /// When it was answered (MES only; POSTs are answered at once).
    pub(crate) done: Instant,
    /// POST bodies.
    pub(crate) body: Vec<u8>,
}

#[derive(Default)]
struct Inner {
    mes: HashMap<String, Arc<[u8]>>,
    hits: Vec<Hit>,
    mes_latency: Duration,
}

type Shared = Arc<Mutex<Inner>>;

fn lock(s: &Shared) -> MutexGuard<'_, Inner> {
    s.lock().unwrap_or_else(|e| e.into_inner())
}

/// The stand-in, serving on the caller's tokio runtime.
#[derive(Clone)]
pub(crate) struct Factory {
    addr: SocketAddr,
    inner: Shared,
}

impl Factory {
    /// Starts on an ephemeral port of 127.0.0.1, on a runtime thread of its
    /// own (so the simulated agents' work does not delay its answers).
    pub(crate) fn start() -> anyhow::Result<Self> {
        let inner: Shared = Arc::default();
        let std_listener = std::net::TcpListener::bind("127.0.0.1:0")?;
        std_listener.set_nonblocking(true)?;
        let addr = std_listener.local_addr()?;
        let app = Router::new()
            .route("/mes/{sn}", get(mes))
            .route("/device_info/{sn}", get(device_info))
            .route("/{endpoint}", post(endpoint))
            .with_state(inner.clone());
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("factory-stand-in")
            .enable_all()
            .build()?;
        std::thread::Builder::new()
            .name("factory-stand-in".into())
            .spawn(move || {
                rt.block_on(async move {
                    if let Ok(listener) = tokio::net::TcpListener::from_std(std_listener) {
                        let _ = axum::serve(listener, app).await;
                    }
                });
            })?;
        Ok(Factory { addr, inner })
    }

    /// `http://127.0.0.1:PORT`.
    pub(crate) fn base(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub(crate) fn set_mes(&self, sn: &str, macs: &[String]) {
        let body = serde_json::json!({"sn": sn, "macs": macs}).to_string();
        lock(&self.inner)
            .mes
            .insert(sn.to_owned(), Arc::from(body.into_bytes()));
    }

    pub(crate) fn set_mes_latency(&self, latency: Duration) {
        lock(&self.inner).mes_latency = latency;
    }

    pub(crate) fn take_hits(&self) -> Vec<Hit> {
        std::mem::take(&mut lock(&self.inner).hits)
    }
}

async fn lookup(state: Shared, route: &str, sn: String) -> Response {
    let at = Instant::now();
    let (latency, body) = {
        let inner = lock(&state);
        (inner.mes_latency, inner.mes.get(&sn).cloned())
    };
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }
    lock(&state).hits.push(Hit {
        route: route.to_owned(),
        at,
        done: Instant::now(),
        body: Vec::new(),
    });
    match body {
        Some(b) => (
            StatusCode::OK,
            [("content-type", "application/json")],
            b.to_vec(),
        )
            .into_response(),
        None => (StatusCode::NOT_FOUND, "no such device").into_response(),
    }
}

async fn mes(State(state): State<Shared>, Path(sn): Path<String>) -> Response {
    lookup(state, "/mes", sn).await
}

async fn device_info(State(state): State<Shared>, Path(sn): Path<String>) -> Response {
    lookup(state, "/device_info", sn).await
}

async fn endpoint(
    State(state): State<Shared>,
    Path(endpoint): Path<String>,
    body: Bytes,
) -> Response {
    let at = Instant::now();
    lock(&state).hits.push(Hit {
        route: format!("/{endpoint}"),
        at,
        done: at,
        body: body.to_vec(),
    });
    (StatusCode::OK, [("content-type", "application/json")], "{}").into_response()
}
