//! A stand-in for MES and the factory's REST APIs, on 127.0.0.1.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;

use axum::extract::{Path, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};

/// The largest POST body the stand-in takes: the payloads of 100,000
/// devices and more.
const BODY_LIMIT: usize = 64 << 20;

/// One request the stand-in received.
#[derive(Debug, Clone)]
pub struct Recorded {
    /// `GET` or `POST`.
    pub method: String,
    /// The path as sent (still percent-encoded).
    pub path: String,
    /// Headers, lower-case names.
    pub headers: HashMap<String, String>,
    /// The body.
    pub body: Vec<u8>,
    /// When it arrived.
    pub at: Instant,
    /// The latency injected before it was answered ([`set_latency`] plus,
    /// for MES lookups, [`set_mes_latency`]): it was answered at about
    /// `at + delay`.
    ///
    /// [`set_latency`]: FactoryStandIn::set_latency
    /// [`set_mes_latency`]: FactoryStandIn::set_mes_latency
    pub delay: Duration,
    /// The status it was answered with: an injected one
    /// ([`script`](FactoryStandIn::script), [`down`](FactoryStandIn::down),
    /// [`mes_failing`](FactoryStandIn::mes_failing)), else 200, or 404
    /// for a serial MES does not know (decided when it arrived).
    pub status: u16,
    /// For an MES lookup: how many lookups the stand-in was answering
    /// when this one arrived, itself included — how far the client's
    /// concurrency limit had opened by then. 0 for the factory POSTs.
    pub in_flight: usize,
}

impl Recorded {
    /// The body as JSON.
    ///
    /// # Panics
    /// If it is not JSON.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("{} {} body is not JSON: {e}", self.method, self.path))
    }

    /// A header's value.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(String::as_str)
    }
}

#[derive(Default)]
struct Inner {
    mes: HashMap<String, Vec<String>>,
    requests: Vec<Recorded>,
    /// Statuses to answer before behaving normally, per path.
    scripted: HashMap<String, VecDeque<u16>>,
    /// Paths that always answer 503.
    down: Vec<String>,
    /// Every MES lookup answers this (status, `Retry-After` seconds).
    mes_failing: Option<(u16, Option<u32>)>,
    latency: Duration,
    mes_latency: Duration,
    echo: bool,
    /// MES lookups received and not yet answered.
    mes_in_flight: usize,
}

/// An HTTP server standing in for MES and the factory:
///
/// * `GET /mes/{sn}` → 200 `{"sn", "macs"}` for a known serial, else 404
///   (also as `GET /device_info/{sn}`, the Python baseline's route);
/// * `POST /log`, `/pair`, `/directBurn`, `/notify` → 200 `{}`.
///
/// Every request is recorded. Latency, scripted statuses and paths that
/// are down can be injected. It runs on a runtime thread of its own, so
/// synchronous tests can use it.
#[derive(Clone)]
pub struct FactoryStandIn {
    addr: SocketAddr,
    inner: Arc<Mutex<Inner>>,
    _runtime: Arc<RuntimeThread>,
}

struct RuntimeThread {
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for RuntimeThread {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl FactoryStandIn {
    /// Starts the server on an ephemeral port of 127.0.0.1.
    ///
    /// # Panics
    /// If it cannot bind.
    pub fn start() -> Self {
        Self::start_on("127.0.0.1:0", false).unwrap_or_else(|e| panic!("factory stand-in: {e}"))
    }

    /// Starts the server on `addr`; with `echo`, every request is printed
    /// to stdout (method, path, Idempotency-Key, body) as it arrives.
    ///
    /// # Errors
    /// A message naming the address and what to do when it is not an
    /// address, is taken, or the runtime cannot start.
    pub fn start_on(addr: &str, echo: bool) -> Result<Self, String> {
        let std_listener = std::net::TcpListener::bind(addr).map_err(|e| {
            let hint = match e.kind() {
                std::io::ErrorKind::AddrInUse => {
                    "another process listens there; stop it or pick another address with --listen"
                }
                std::io::ErrorKind::PermissionDenied => {
                    "ports below 1024 need root; pick a port above 1024 with --listen"
                }
                _ => "give an address such as 127.0.0.1:8081 with --listen",
            };
            format!("cannot listen on {addr}: {e}; {hint}")
        })?;
        std_listener
            .set_nonblocking(true)
            .map_err(|e| format!("cannot use the socket on {addr}: {e}"))?;
        let local = std_listener
            .local_addr()
            .map_err(|e| format!("cannot use the socket on {addr}: {e}"))?;
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("factory-stand-in")
            .enable_all()
            .build()
            .map_err(|e| format!("cannot start the stand-in's runtime: {e}"))?;
        let inner = Arc::new(Mutex::new(Inner {
            echo,
            ..Inner::default()
        }));
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let state = inner.clone();
        let thread = std::thread::Builder::new()
            .name("factory-stand-in".into())
            .spawn(move || {
                rt.block_on(async move {
                    let Ok(listener) = tokio::net::TcpListener::from_std(std_listener) else {
                        return;
                    };
                    let app = Router::new()
                        .route("/mes/{sn}", get(mes))
                        .route("/device_info/{sn}", get(mes))
                        .route("/{endpoint}", post(endpoint))
                        // axum's default of 2 MB refused the /log of 20,000
                        // devices (about 2.6 MB); a factory API that takes
                        // a batch that size has to accept it.
                        .layer(axum::extract::DefaultBodyLimit::max(BODY_LIMIT))
                        .with_state(state);
                    let _ = axum::serve(listener, app)
                        .with_graceful_shutdown(async {
                            let _ = stop_rx.await;
                        })
                        .await;
                });
            })
            .map_err(|e| format!("cannot start the stand-in's thread: {e}"))?;
        Ok(FactoryStandIn {
            addr: local,
            inner,
            _runtime: Arc::new(RuntimeThread {
                shutdown: Some(stop_tx),
                thread: Some(thread),
            }),
        })
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// `http://127.0.0.1:PORT` + `path`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// The server's address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// MES records `macs` for `sn`.
    pub fn set_mes(&self, sn: &str, macs: &[&str]) {
        self.lock().mes.insert(
            sn.to_owned(),
            macs.iter().map(|m| (*m).to_owned()).collect(),
        );
    }

    /// The next requests to `path` get these statuses (then normal answers).
    pub fn script(&self, path: &str, statuses: &[u16]) {
        self.lock()
            .scripted
            .entry(path.to_owned())
            .or_default()
            .extend(statuses);
    }

    /// `path` answers 503 until [`up`](Self::up).
    pub fn down(&self, path: &str) {
        self.lock().down.push(path.to_owned());
    }

    /// `path` answers normally again.
    pub fn up(&self, path: &str) {
        self.lock().down.retain(|p| p != path);
    }

    /// Until [`mes_normal`](Self::mes_normal), every MES lookup (`GET
    /// /mes/…`, `GET /device_info/…`) answers `status` — with
    /// `Retry-After: <secs>` when `retry_after` is given — instead of the
    /// record: MES overloaded (`429`) or failing (`5xx`) as a whole, for
    /// every serial at once. Scripted statuses of a path come first.
    pub fn mes_failing(&self, status: u16, retry_after: Option<u32>) {
        self.lock().mes_failing = Some((status, retry_after));
    }

    /// MES lookups are answered normally again (see
    /// [`mes_failing`](Self::mes_failing)).
    pub fn mes_normal(&self) {
        self.lock().mes_failing = None;
    }

    /// Every request waits this long before being answered.
    pub fn set_latency(&self, latency: Duration) {
        self.lock().latency = latency;
    }

    /// MES lookups (`GET /mes/…`, `GET /device_info/…`) wait this long
    /// (on top of [`set_latency`](Self::set_latency)) before being
    /// answered; the factory POSTs are not slowed. The load harness's
    /// latency knob.
    pub fn set_mes_latency(&self, latency: Duration) {
        self.lock().mes_latency = latency;
    }

    /// Takes every request so far, in arrival order, and forgets them.
    pub fn take_requests(&self) -> Vec<Recorded> {
        std::mem::take(&mut self.lock().requests)
    }

    /// Every request so far, in arrival order.
    pub fn requests(&self) -> Vec<Recorded> {
        self.lock().requests.clone()
    }

    /// The requests to `path`.
    pub fn requests_to(&self, path: &str) -> Vec<Recorded> {
        self.requests()
            .into_iter()
            .filter(|r| r.path == path)
            .collect()
    }

    /// Forgets the recorded requests.
    pub fn clear_requests(&self) {
        self.lock().requests.clear();
    }
}

/// An injected answer: its status and `Retry-After` seconds.
type Forced = Option<(StatusCode, Option<u32>)>;

/// Records the request and decides on an injected answer, if any. `mes`
/// is the serial of an MES lookup.
fn record(
    state: &Arc<Mutex<Inner>>,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    body: &[u8],
    mes: Option<&str>,
) -> (Duration, Forced) {
    let mut inner = state.lock().unwrap_or_else(|e| e.into_inner());
    let at = Instant::now();
    let path = uri.path().to_owned();
    let delay = if method == Method::GET {
        inner.latency + inner.mes_latency
    } else {
        inner.latency
    };
    if inner.echo {
        #[allow(clippy::print_stdout)]
        {
            let key = headers
                .get("idempotency-key")
                .map(|v| {
                    format!(
                        " (Idempotency-Key: {})",
                        String::from_utf8_lossy(v.as_bytes())
                    )
                })
                .unwrap_or_default();
            println!("{method} {path}{key}");
            if !body.is_empty() {
                println!("  {}", String::from_utf8_lossy(body));
            }
        }
    }
    let scripted = inner
        .scripted
        .get_mut(&path)
        .and_then(VecDeque::pop_front)
        .map(|s| (s, None));
    let forced = scripted
        .or_else(|| inner.down.contains(&path).then_some((503, None)))
        .or_else(|| mes.and(inner.mes_failing))
        .and_then(|(s, after)| Some((StatusCode::from_u16(s).ok()?, after)));
    let in_flight = if mes.is_some() {
        inner.mes_in_flight += 1;
        inner.mes_in_flight
    } else {
        0
    };
    let status = match (forced, mes) {
        (Some((s, _)), _) => s.as_u16(),
        (None, Some(sn)) if !inner.mes.contains_key(sn) => 404,
        (None, _) => 200,
    };
    inner.requests.push(Recorded {
        method: method.to_string(),
        path: path.clone(),
        headers: headers
            .iter()
            .map(|(k, v)| {
                (
                    k.as_str().to_owned(),
                    String::from_utf8_lossy(v.as_bytes()).into_owned(),
                )
            })
            .collect(),
        body: body.to_vec(),
        at,
        delay,
        status,
        in_flight,
    });
    (delay, forced)
}

/// The injected answer, with `Retry-After` when it has one.
fn injected((status, retry_after): (StatusCode, Option<u32>)) -> Response {
    match retry_after {
        Some(secs) => (
            status,
            [("retry-after", secs.to_string())],
            "injected failure",
        )
            .into_response(),
        None => (status, "injected failure").into_response(),
    }
}

async fn mes(
    State(state): State<Arc<Mutex<Inner>>>,
    Path(sn): Path<String>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    let (latency, forced) = record(&state, &method, &uri, &headers, b"", Some(&sn));
    // Counted as answered when the handler ends, or when the client gave
    // up and the handler was dropped.
    let _answering = Answering(&state);
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }
    if let Some(forced) = forced {
        return injected(forced);
    }
    let macs = state
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .mes
        .get(&sn)
        .cloned();
    match macs {
        Some(macs) => {
            let body = serde_json::json!({"sn": sn, "macs": macs}).to_string();
            (StatusCode::OK, [("content-type", "application/json")], body).into_response()
        }
        None => (StatusCode::NOT_FOUND, "no such device").into_response(),
    }
}

/// One MES lookup being answered: leaves the in-flight count on drop.
struct Answering<'a>(&'a Arc<Mutex<Inner>>);

impl Drop for Answering<'_> {
    fn drop(&mut self) {
        let mut inner = self.0.lock().unwrap_or_else(|e| e.into_inner());
        inner.mes_in_flight = inner.mes_in_flight.saturating_sub(1);
    }
}

async fn endpoint(
    State(state): State<Arc<Mutex<Inner>>>,
    Path(_endpoint): Path<String>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let (latency, forced) = record(&state, &method, &uri, &headers, &body, None);
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }
    match forced {
        Some(forced) => injected(forced),
        None => (StatusCode::OK, [("content-type", "application/json")], "{}").into_response(),
    }
}
