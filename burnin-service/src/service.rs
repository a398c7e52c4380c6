//! The service's state and its operation runner.
//!
//! [`App`] is everything the HTTP API, the broker task and the running
//! operations share: the operation store, the reply router, the broker
//! link, the factory adapters (wrapped in the metrics decorators), the
//! metrics and observers, the API token, and the task tracker and
//! cancellation token that stop it all. Build it with [`App::builder`].
//!
//! * **Operations** ([`App::spawn_operation`]): each runs
//!   [`burnin_core::edge::run`] in a task of its own, with its replies from
//!   the shared reply queue through the [`ReplyRouter`]. Every reply is
//!   committed to the store before it is acked; results and deliveries
//!   are recorded as they happen.
//! * **Start** ([`App::start`]): every unfinished operation in the store is
//!   restored and run again *before* the broker is consumed, so no reply of
//!   a resumed operation is refused as unknown. Collecting ones keep
//!   collecting until their deadline (the command is published again for
//!   the rest of the window), past-deadline ones are reported, undelivered
//!   payloads are sent again with the same `Idempotency-Key`. Then the
//!   broker task ([`crate::broker`]) connects and pumps replies.
//! * **Active or standby** ([`Role`]): on a store only one edge uses
//!   (SQLite) the edge is always active. On a store that offers an
//!   [`Election`](burnin_core::Election) (PostgreSQL) several edges may
//!   run; exactly one is active — on PostgreSQL the one holding the
//!   store's advisory lock ([`burnin_store_pg::Leadership`]; why a lock in the database and not,
//!   say, RabbitMQ's single active consumer is explained there: the lock
//!   lives with the data it guards, and a single consumer alone would not
//!   stop a second edge from beginning, resuming and reporting operations).
//!   A standby consumes nothing, publishes nothing and answers `POST
//!   /scans` with 503 naming the active edge; reads come from the shared
//!   store. When it gets the lock it does what *Start* above does (resume,
//!   then consume). It consumes the reply queue exclusively, as every edge
//!   does ([`burnin_amqp::edge`]): while the old active's broker connection
//!   is still open (a frozen process, a host cut off) the broker refuses the
//!   new active's consumer, and its broker task tries again every few
//!   seconds (`/healthz` 503) until the broker drops that connection — at
//!   once if the old process is gone, else after two missed heartbeats;
//!   replies wait in the queue meanwhile. An active edge that loses its lock session stops acting
//!   — operations and the broker task of its term are cancelled, its
//!   queued store writes are committed or failed — and campaigns again as a
//!   standby. While active on a shared store it also looks every
//!   [`SWEEP`] for unfinished operations it does not run (one begun by an
//!   edge in the instant it lost the lock, one whose final write failed
//!   while PostgreSQL was away) and runs them.
//! * **Shutdown** ([`App::shutdown`]): operations stop where they are
//!   (replies handed over but not acked return to the broker); writes to
//!   the store that have started are completed. What was recorded resumes
//!   on the next start.

use std::collections::HashSet;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use burnin_core::edge::OperationReport;
use burnin_core::edge::{self, Observer, ReplyRouter};
use burnin_core::{
    Candidacy, FactoryReporter, MesAnswer, MesError, MesSource, Operation, OperationId,
    OperationParams, PayloadKind, ReplyOutcome, ReportError, SerialNumber, StoreError, Target,
    TransportError,
};
use burnin_local::SystemClock;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::Store;
use crate::bounds::{BoundedStore, Bounds, Waits};
use crate::broker::{self, BrokerLink, Connector};
use crate::metrics::{Metrics, ServeObserver};
use crate::stack::PortStack;

/// How often an active edge on a shared store looks for unfinished
/// operations nobody runs (see the [module docs](self)).
pub const SWEEP: Duration = Duration::from_secs(5);

/// Whether this edge acts on operations; see the [module docs](self).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Role {
    /// Runs operations: takes `POST /scans`, consumes replies, reports.
    Active,
    /// Waits for the active edge's lock; answers reads only.
    Standby,
}

impl Role {
    /// `active` or `standby`.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Active => "active",
            Role::Standby => "standby",
        }
    }
}

/// One term as the active edge: what it started stops when it ends.
#[derive(Clone)]
struct Term {
    token: CancellationToken,
    tasks: TaskTracker,
}

/// Everything the API and the operations share; see the [module docs](self).
/// Its parts by concern: the store, the broker side, the operation runner,
/// leadership, and what the HTTP layer reads.
pub struct App {
    pub(crate) store: Store,
    /// The operations' ports: MES, reporter and store, bounded and timed.
    ports: PortStack<Store>,
    /// Whether the store's latest write failed (`/healthz`).
    pub(crate) store_health: crate::bounds::StoreHealth,
    metrics: Arc<Metrics>,
    broker: BrokerSide,
    pub(crate) runner: Runner,
    leadership: Leadership,
    pub(crate) http: HttpShared,
}

/// The broker side: one connection's link, the router that hands each
/// reply to its operation, and how to connect.
struct BrokerSide {
    link: BrokerLink,
    router: ReplyRouter,
    connector: Arc<dyn Connector>,
    reply_queue: String,
}

/// The operation runner: what runs, with which defaults, until when.
pub(crate) struct Runner {
    observer: Observers,
    /// The rules and timings of operations whose `POST /scans` body does
    /// not set them (`serve --settle`, `--clock-tolerance`,
    /// `--require-clock`, `--mes-outage-wait`).
    pub(crate) defaults: OperationParams,
    unavailable: Unavailable,
    tasks: TaskTracker,
    stop: CancellationToken,
    running: Arc<Mutex<HashSet<OperationId>>>,
    /// `--keep`: how long finished operations are kept.
    keep: Option<std::time::Duration>,
}

/// Active or standby, and what being active holds (see [`Role`]).
struct Leadership {
    role: watch::Sender<Role>,
    advertise: String,
    term: Mutex<Option<Term>>,
    candidacy: Mutex<Option<Arc<dyn Candidacy>>>,
    active_seen: Mutex<Option<(Instant, Option<String>)>>,
}

/// What the HTTP layer reads: the token, the site checks, the server's
/// limits and the live view (see [`crate::http`]'s sub-states).
pub(crate) struct HttpShared {
    pub(crate) api_token: Option<String>,
    pub(crate) viewer_token: Option<String>,
    pub(crate) site: Arc<crate::guard::Site>,
    limits: crate::listener::HttpLimits,
    pub(crate) live: Arc<crate::live::Live>,
}

impl std::fmt::Debug for App {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("App")
            .field("store", &self.store.describe())
            .field("role", &self.role())
            .field("broker", &self.broker.connector.describe())
            .field("token", &self.http.api_token.is_some())
            .field("viewer_token", &self.http.viewer_token.is_some())
            .field("reply_queue", &self.broker.reply_queue)
            .finish_non_exhaustive()
    }
}

/// Builds an [`App`]; see [`App::builder`].
#[must_use]
pub struct AppBuilder {
    store: Store,
    advertise: Option<String>,
    connector: Arc<dyn Connector>,
    mes: Box<dyn MesSource>,
    reporter: Box<dyn FactoryReporter>,
    metrics: Metrics,
    observers: Vec<Arc<dyn Observer>>,
    bounds: Bounds,
    reply_queue: String,
    /// requireLink and the settle, clock and outage defaults.
    defaults: OperationParams,
    unavailable: Unavailable,
    keep: Option<std::time::Duration>,
    http: HttpOptions,
}

/// What the builder keeps for the HTTP layer.
#[derive(Default)]
struct HttpOptions {
    api_token: Option<String>,
    viewer_token: Option<String>,
    allowed_origins: Vec<String>,
    limits: crate::listener::HttpLimits,
    live: crate::live::Limits,
}

/// Why operations for a target are refused, per target.
#[derive(Debug, Default)]
struct Unavailable {
    pair: Option<String>,
    direct_burn: Option<String>,
}

impl AppBuilder {
    /// Let web pages of these origins use the API besides the edge's own
    /// (`serve --allow-origin`; each checked with
    /// [`crate::guard::parse_origin`] first). See [`crate::guard`].
    pub fn allow_origins(mut self, origins: Vec<String>) -> Self {
        self.http.allowed_origins = origins;
        self
    }

    /// Limits of the live event streams ([`crate::live`]).
    pub fn live_limits(mut self, limits: crate::live::Limits) -> Self {
        self.http.live = limits;
        self
    }

    /// Limits of the HTTP server ([`crate::listener`]).
    pub fn http_limits(mut self, limits: crate::listener::HttpLimits) -> Self {
        self.http.limits = limits;
        self
    }

    /// How this edge names itself to clients of a standby (`serve
    /// --advertise-url`): recorded with the active edge's lock, so a
    /// standby's 503 can say where to send `POST /scans`. Default
    /// `burnin-edge`.
    pub fn advertise(mut self, url: impl Into<String>) -> Self {
        self.advertise = Some(url.into());
        self
    }

    /// Delete finished operations older than `keep` from the store (checked
    /// at start and every sixth of `keep`, at most every 10 minutes); `None` (the default) keeps everything.
    pub fn keep(mut self, keep: Option<std::time::Duration>) -> Self {
        self.keep = keep;
        self
    }

    /// Require `Authorization: Bearer TOKEN` on every route but `/healthz`
    /// (`None` or an empty token: no token needed).
    pub fn api_token(mut self, token: Option<String>) -> Self {
        self.http.api_token = token.filter(|t| !t.is_empty());
        self
    }

    /// A read-only token (`serve --viewer-token`): it may read and stream
    /// (every `GET` the API token may) but never start a scan (403). Only
    /// used with an [`api_token`](Self::api_token); `None` or empty: none.
    pub fn viewer_token(mut self, token: Option<String>) -> Self {
        self.http.viewer_token = token.filter(|t| !t.is_empty());
        self
    }

    /// The reply queue named in commands (default `hwinfo_queue`); must be
    /// the queue the connector consumes.
    pub fn reply_queue(mut self, name: impl Into<String>) -> Self {
        self.reply_queue = name.into();
        self
    }

    /// requireLink (SPEC §10.1) for operations whose `POST /scans` body does
    /// not say (`serve --require-link`); off by default.
    pub fn require_link(mut self, require_link: bool) -> Self {
        self.defaults.require_link = require_link;
        self
    }

    /// The settle time, clock tolerance, requireClock, requireCabling,
    /// requirePcieWidth and the MES and delivery outage waits of operations
    /// whose `POST /scans` body does not set them, and the edge's cabling
    /// plan (SPEC §11.1; every operation this edge runs or resumes is judged
    /// with it): taken from `defaults` (its other fields are ignored). SPEC
    /// §11.3's defaults otherwise.
    pub fn operation_defaults(mut self, defaults: &OperationParams) -> Self {
        self.defaults.settle = defaults.settle;
        self.defaults.clock_tolerance = defaults.clock_tolerance;
        self.defaults.require_clock = defaults.require_clock;
        self.defaults.mes_outage_wait = defaults.mes_outage_wait;
        self.defaults.delivery_outage_wait = defaults.delivery_outage_wait;
        self.defaults.require_cabling = defaults.require_cabling;
        self.defaults.require_pcie_width = defaults.require_pcie_width;
        self.defaults.cabling = defaults.cabling.clone();
        self
    }

    /// Refuse operations for `target` with 400 and `why` (its URL is not
    /// configured). Every target is available by default.
    pub fn target_unavailable(mut self, target: Target, why: impl Into<String>) -> Self {
        match target {
            Target::Pair => self.unavailable.pair = Some(why.into()),
            Target::DirectBurn => self.unavailable.direct_burn = Some(why.into()),
        }
        self
    }

    /// Use these metrics (e.g. with gauges of your own registered in
    /// [`Metrics::registry_mut`]) instead of fresh ones.
    pub fn metrics(mut self, metrics: Metrics) -> Self {
        self.metrics = metrics;
        self
    }

    /// Also tell `observer` what every operation does (after the service's
    /// own logging and metrics observer).
    pub fn observer(mut self, observer: Arc<dyn Observer>) -> Self {
        self.observers.push(observer);
        self
    }

    /// Also export the adaptive MES limit of `mes` (a clone of the HTTP MES
    /// source the app looks up with, sharing its limit) as the gauges
    /// `burnin_mes_concurrency_limit` and `burnin_mes_in_flight`.
    pub fn mes_limit_gauges(mut self, mes: burnin_http::HttpMesSource) -> Self {
        let limit = mes.clone();
        self.metrics.gauge_fn(
            "burnin_mes_concurrency_limit",
            "The adaptive limit on MES lookups in flight",
            move || i64::try_from(limit.concurrency_limit()).unwrap_or(i64::MAX),
        );
        self.metrics.gauge_fn(
            "burnin_mes_in_flight",
            "MES lookups in flight now",
            move || i64::try_from(mes.in_flight()).unwrap_or(i64::MAX),
        );
        self
    }

    /// Bound each wait of an operation by these (default: [`Bounds::default`];
    /// for HTTP adapters [`Bounds::for_http`] with their request budget). A
    /// wait that runs out fails the operation with a message naming it.
    pub fn bounds(mut self, bounds: Bounds) -> Self {
        self.bounds = bounds;
        self
    }

    /// The app, not yet started (see [`App::start`]).
    pub fn build(self) -> Arc<App> {
        let waits = Waits::new();
        let mut bounds = self.bounds;
        // A shared store (PostgreSQL) retries a write through an outage for
        // 30 s itself, so its bound is a second more (its own error, which
        // names the database, wins).
        if self.store.election().is_some() {
            bounds.store = bounds.store.max(std::time::Duration::from_secs(31));
        }
        // On its own store an edge is active from the start; on a shared
        // one it is a standby until it holds the lock.
        let role = watch::Sender::new(if self.store.election().is_some() {
            Role::Standby
        } else {
            Role::Active
        });
        let mut metrics = self.metrics;
        let watched = role.subscribe();
        metrics.gauge_fn(
            "burnin_edge_active",
            "1 while this edge is the active one (runs operations), 0 while it is a standby",
            move || i64::from(*watched.borrow() == Role::Active),
        );
        let broker = BrokerLink::new();
        let up = broker.up_now();
        metrics.gauge_fn(
            "burnin_broker_connected",
            "1 while this edge's broker connection is up, 0 while it is down (a standby makes none)",
            move || i64::from(up()),
        );
        let store_health = crate::bounds::StoreHealth::default();
        let failing = store_health.clone();
        metrics.gauge_fn(
            "burnin_store_failing",
            "1 from a failed write to the operation store (a full disk, PostgreSQL unreachable) until a write succeeds",
            move || i64::from(failing.failing().is_some()),
        );
        let (kind, name) = (self.store.kind(), self.store.label());
        // A gauge at 1 named `…_info`, Prometheus's convention for labels
        // worth joining on.
        let store_info = prometheus_client::metrics::family::Family::<
            Vec<(String, String)>,
            prometheus_client::metrics::gauge::Gauge,
        >::default();
        store_info
            .get_or_create(&vec![
                ("kind".to_owned(), kind.to_owned()),
                ("store".to_owned(), name),
            ])
            .set(1);
        metrics.registry_mut().register(
            "burnin_store_info",
            "The operation store this edge uses (always 1); edges sharing one carry the same labels",
            store_info,
        );
        // Event ids start at the start time in microseconds, so they keep
        // growing across restarts (see burnin_core::live).
        let first_id = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX));
        let live = crate::live::Live::new(first_id, self.http.live);
        let board = live.clone();
        metrics.gauge_fn(
            "burnin_live_events",
            "Events the live page's stream keeps for replay (bounded by its capacity)",
            move || i64::try_from(board.board().buffered_events()).unwrap_or(i64::MAX),
        );
        let board = live.clone();
        metrics.gauge_fn(
            "burnin_live_operations",
            "Operations on the live board: running ones and the finished ones kept in memory",
            move || i64::try_from(board.board().tracked_operations()).unwrap_or(i64::MAX),
        );
        let metrics = Arc::new(metrics);
        let mut observers: Vec<Arc<dyn Observer>> = vec![
            Arc::new(ServeObserver {
                metrics: metrics.clone(),
            }),
            live.observer(),
        ];
        observers.extend(self.observers);
        let advertise = self.advertise.unwrap_or_else(|| "burnin-edge".into());
        let site = Arc::new(crate::guard::Site::new(
            &advertise,
            self.http.allowed_origins,
            self.http.api_token.is_some(),
        ));
        let router = ReplyRouter::new();
        let ports = PortStack::new(bounds, waits, self.mes, self.reporter, self.store.clone())
            .with_metrics(&metrics)
            .with_store_health(store_health.clone());
        router.on_late(Arc::new(LateRecorder {
            store: ports.store().clone(),
            metrics: metrics.clone(),
        }));
        Arc::new(App {
            ports,
            store_health,
            store: self.store,
            metrics,
            broker: BrokerSide {
                link: broker,
                router,
                connector: self.connector,
                reply_queue: self.reply_queue.clone(),
            },
            runner: Runner {
                observer: Observers(observers),
                defaults: {
                    let mut d = self.defaults;
                    d.reply_to.clone_from(&self.reply_queue);
                    d
                },
                unavailable: self.unavailable,
                tasks: TaskTracker::new(),
                stop: CancellationToken::new(),
                running: Arc::new(Mutex::new(HashSet::new())),
                keep: self.keep,
            },
            leadership: Leadership {
                role,
                advertise,
                term: Mutex::new(None),
                candidacy: Mutex::new(None),
                active_seen: Mutex::new(None),
            },
            http: HttpShared {
                viewer_token: self.http.api_token.as_ref().and(self.http.viewer_token),
                api_token: self.http.api_token,
                site,
                limits: self.http.limits,
                live,
            },
        })
    }
}

impl App {
    /// A builder for an app over `store`, the broker `connector`, MES and
    /// the factory reporter.
    pub fn builder(
        store: Store,
        connector: impl Connector,
        mes: Box<dyn MesSource>,
        reporter: Box<dyn FactoryReporter>,
    ) -> AppBuilder {
        AppBuilder {
            store,
            advertise: None,
            connector: Arc::new(connector),
            mes,
            reporter,
            metrics: Metrics::new(),
            observers: Vec::new(),
            bounds: Bounds::default(),
            reply_queue: burnin_amqp::DEFAULT_REPLY_QUEUE.into(),
            defaults: OperationParams::new(OperationId::Number(0)),
            unavailable: Unavailable::default(),
            keep: None,
            http: HttpOptions::default(),
        }
    }

    /// The live state of operations (device states, events).
    pub fn live(&self) -> &Arc<crate::live::Live> {
        &self.http.live
    }

    /// The checks against requests of other web sites ([`crate::guard`]).
    pub fn site(&self) -> &Arc<crate::guard::Site> {
        &self.http.site
    }

    /// The HTTP server's limits.
    pub fn http_limits(&self) -> crate::listener::HttpLimits {
        self.http.limits
    }

    /// On its own store: resumes every unfinished operation, then starts
    /// the broker task. On a shared store: starts campaigning for the
    /// active role, and does the same each time it gets it (see the
    /// [module docs](self)). Call once; the error names what could not be
    /// read or reached.
    pub async fn start(self: &Arc<Self>) -> Result<(), String> {
        match self.store.election() {
            Some(election) => {
                let candidacy = election
                    .campaign(&self.leadership.advertise)
                    .await
                    .map_err(|e| e.to_string())?;
                self.runner.tasks.spawn(campaign(self.clone(), candidacy));
                Ok(())
            }
            None => self.take_office().await,
        }
    }

    /// Becomes active: resumes what the store holds, then consumes.
    async fn take_office(self: &Arc<Self>) -> Result<(), String> {
        let term = Term {
            token: self.runner.stop.child_token(),
            tasks: TaskTracker::new(),
        };
        *self
            .leadership
            .term
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(term.clone());
        self.resume().await?;
        self.spawn_in(
            &term,
            broker::supervise(
                self.broker.connector.clone(),
                self.broker.link.clone(),
                self.broker.router.clone(),
                self.metrics.clone(),
                term.token.clone(),
            ),
        );
        if let Some(keep) = self.runner.keep {
            self.spawn_in(
                &term,
                crate::live::retention(self.store.clone(), keep, term.token.clone()),
            );
        }
        if self.store.election().is_some() {
            self.spawn_in(&term, sweep(self.clone(), term.token.clone()));
        }
        // Shown (and POST taken) once what the store held runs again.
        self.leadership.role.send_replace(Role::Active);
        Ok(())
    }

    /// Stops acting: cancels the term's operations and broker task, waits
    /// for them, and for the store writes they handed over.
    async fn leave_office(&self) {
        self.leadership.role.send_replace(Role::Standby);
        let term = self
            .leadership
            .term
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(term) = term {
            term.token.cancel();
            term.tasks.close();
            term.tasks.wait().await;
        }
        self.store.barrier().await;
    }

    /// Runs `task` until it ends or `term` does.
    fn spawn_in(&self, term: &Term, task: impl std::future::Future<Output = ()> + Send + 'static) {
        self.runner.tasks.spawn(term.tasks.track_future(task));
    }

    /// Stops operations and the broker task, waits for them, and for the
    /// store's writes in progress.
    pub async fn shutdown(&self) {
        self.runner.stop.cancel();
        self.runner.tasks.close();
        self.runner.tasks.wait().await;
        // Writes already handed to the database finish before we return.
        self.store.barrier().await;
    }

    /// This edge's role now.
    pub fn role(&self) -> Role {
        *self.leadership.role.borrow()
    }

    /// Completes once the edge is active (at once if it is).
    pub async fn active(&self) {
        let mut rx = self.leadership.role.subscribe();
        let _ = rx.wait_for(|r| *r == Role::Active).await;
    }

    /// What this edge advertises itself as (`--advertise-url`).
    pub fn advertised(&self) -> &str {
        &self.leadership.advertise
    }

    /// The active edge as it advertised itself: this one when active, else
    /// what the shared store records (read at most every 2 s); `None` if
    /// nobody is recorded or the store cannot tell.
    pub async fn active_edge(&self) -> Option<String> {
        if self.role() == Role::Active {
            return Some(self.leadership.advertise.clone());
        }
        if let Some((at, seen)) = self
            .leadership
            .active_seen
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
            && at.elapsed() < Duration::from_secs(2)
        {
            return seen;
        }
        let candidacy = self
            .leadership
            .candidacy
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()?;
        let seen =
            match tokio::time::timeout(Duration::from_secs(2), candidacy.active_identity()).await {
                Ok(Ok(found)) => found.map(|(identity, _)| identity),
                Ok(Err(e)) => {
                    tracing::warn!("cannot read which edge is active: {e}");
                    None
                }
                Err(_) => None,
            };
        *self
            .leadership
            .active_seen
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some((Instant::now(), seen.clone()));
        seen
    }

    /// Whether [`shutdown`](Self::shutdown) has begun.
    pub fn is_stopping(&self) -> bool {
        self.runner.stop.is_cancelled()
    }

    /// The operation store.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The store with every write bounded and its outcome kept for
    /// `/healthz` (what operations and `POST /scans` record through).
    pub(crate) fn recording_store(&self) -> &BoundedStore<Store> {
        self.ports.store()
    }

    /// The service's metrics.
    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    /// The broker link (publishing, `/healthz`).
    pub fn broker(&self) -> &BrokerLink {
        &self.broker.link
    }

    /// The broker, for logs (password redacted).
    pub fn broker_description(&self) -> String {
        self.broker.connector.describe()
    }

    /// The bound of each wait of an operation.
    pub fn bounds(&self) -> Bounds {
        self.ports.bounds()
    }

    /// The waits in progress, across operations (what a stalled one waits for).
    pub fn waits(&self) -> &Waits {
        self.ports.waits()
    }

    /// Whether the API needs a token.
    pub fn has_token(&self) -> bool {
        self.http.api_token.is_some()
    }

    pub(crate) fn stop_token(&self) -> CancellationToken {
        self.runner.stop.clone()
    }

    /// Runs `op` in a task of its own until it ends, the service stops or
    /// this edge stops being active. `false` (and nothing runs) if the
    /// edge is not active, or if `op` runs here already.
    pub fn spawn_operation(self: &Arc<Self>, op: Operation) -> bool {
        let Some(term) = self
            .leadership
            .term
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
            .filter(|t| !t.token.is_cancelled())
        else {
            tracing::warn!(operation = %op.id(), "not started here: this edge is not active; the active edge runs it");
            return false;
        };
        let Some(running) = Running::claim(&self.runner.running, op.id()) else {
            return false;
        };
        // Registered before the command is published (inside `run`), so no
        // reply can arrive before its route exists.
        let replies = self.broker.router.register(op.id().clone());
        let app = self.clone();
        let token = term.token.clone();
        self.spawn_in(&term, async move {
            let _running = running;
            let id = op.id().clone();
            tokio::select! {
                () = token.cancelled() => {
                    if app.runner.stop.is_cancelled() {
                        tracing::info!(operation = %id, "stopped by shutdown; it resumes on the next start");
                    } else {
                        tracing::warn!(operation = %id, "stopped: this edge is no longer active; the active edge resumes it");
                        // The store is the truth now; another edge runs it.
                        app.http.live.forget(&id);
                    }
                }
                _report = app.ports.run(op, &app.broker.link, replies, &SystemClock, &app.runner.observer) => {}
            }
        });
        true
    }

    /// Why operations for `target` are refused, if they are.
    pub fn target_unavailable(&self, target: Target) -> Option<&str> {
        match target {
            Target::Pair => self.runner.unavailable.pair.as_deref(),
            Target::DirectBurn => self.runner.unavailable.direct_burn.as_deref(),
        }
    }

    /// Restores and runs every unfinished operation of the store.
    async fn resume(self: &Arc<Self>) -> Result<(), String> {
        let unfinished = self.store.unfinished().await.map_err(|e| e.to_string())?;
        for mut stored in unfinished {
            // The plan is this edge's configuration (not recorded with the
            // operation; its rules are): see burnin_core::cabling.
            stored.params.cabling = self.runner.defaults.cabling.clone();
            let op = Operation::restore(stored);
            tracing::info!(
                operation = %op.id(),
                state = %op.state(),
                deadline = %op.deadline(),
                replies = op.counters().accepted,
                "resuming an unfinished operation"
            );
            if self.spawn_operation(op) {
                self.metrics.started("resumed");
            }
        }
        Ok(())
    }
}

/// An operation id this process runs; released on drop.
struct Running {
    set: Arc<Mutex<HashSet<OperationId>>>,
    id: OperationId,
}

impl Running {
    fn claim(set: &Arc<Mutex<HashSet<OperationId>>>, id: &OperationId) -> Option<Running> {
        let fresh = set
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(id.clone());
        fresh.then(|| Running {
            set: set.clone(),
            id: id.clone(),
        })
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.set
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&self.id);
    }
}

/// On a shared store: waits for the lock, acts while holding it, stops
/// acting when its session is lost, and campaigns again; until shutdown.
async fn campaign(app: Arc<App>, mut candidacy: Arc<dyn Candidacy>) {
    loop {
        *app.leadership
            .candidacy
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(candidacy.clone());
        tokio::select! {
            () = app.runner.stop.cancelled() => return,
            () = candidacy.active() => {}
        }
        let took = Instant::now();
        match app.take_office().await {
            Ok(()) => {
                tracing::info!(
                    advertise = %app.leadership.advertise,
                    resumed_in = ?took.elapsed(),
                    "this edge is active: it resumed the unfinished operations and consumes replies"
                );
                tokio::select! {
                    () = app.runner.stop.cancelled() => return,
                    () = candidacy.lost() => {}
                }
                tracing::error!(
                    "this edge lost the active edge's lock (its PostgreSQL session ended); \
                     it stops consuming and reporting and becomes a standby"
                );
            }
            Err(e) => tracing::error!(
                "this edge got the active edge's lock but cannot read the store: {e}; \
                 letting the lock go and trying again"
            ),
        }
        app.leave_office().await;
        drop(candidacy);
        *app.leadership
            .candidacy
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = None;
        let Some(election) = app.store.election() else {
            return;
        };
        candidacy = loop {
            tokio::select! {
                () = app.runner.stop.cancelled() => return,
                () = tokio::time::sleep(election.retry_interval()) => {}
            }
            match election.campaign(&app.leadership.advertise).await {
                Ok(l) => break l,
                Err(e) => tracing::warn!("standby cannot reach PostgreSQL yet: {e}"),
            }
        };
    }
}

/// While active on a shared store: runs the unfinished operations of the
/// store that no task of this process runs, every [`SWEEP`].
async fn sweep(app: Arc<App>, token: CancellationToken) {
    loop {
        tokio::select! {
            () = token.cancelled() => return,
            () = tokio::time::sleep(SWEEP) => {}
        }
        // What runs here, read *before* the store: an operation that ended
        // after this read had its final write committed (or failed) first.
        let here = app
            .runner
            .running
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        let orphans = match app.store.unfinished_ids().await {
            Ok(ids) => ids.into_iter().filter(|id| !here.contains(id)).count(),
            Err(e) => {
                tracing::warn!("cannot look for unfinished operations: {e}");
                continue;
            }
        };
        if orphans == 0 {
            continue;
        }
        match app.store.unfinished().await {
            Ok(unfinished) => {
                for stored in unfinished {
                    if here.contains(&stored.params.operation_id) {
                        continue;
                    }
                    let op = Operation::restore(stored);
                    tracing::info!(operation = %op.id(), state = %op.state(), "running an unfinished operation nobody ran");
                    if app.spawn_operation(op) {
                        app.metrics.started("resumed");
                    }
                }
            }
            Err(e) => tracing::warn!("cannot read unfinished operations: {e}"),
        }
    }
}

/// Keeps replies that arrive after their operation stopped collecting (a
/// second board with the same serial answering late, or a slow device):
/// recorded with the operation's latest run, marked late, logged as a
/// warning and counted (`burnin_replies_total{outcome="late"}`), then
/// acked. One that cannot be recorded goes to the rejected queue, so it is
/// never lost.
struct LateRecorder {
    store: BoundedStore<Store>,
    metrics: Arc<Metrics>,
}

#[async_trait::async_trait]
impl edge::LateReplies for LateRecorder {
    async fn late(
        &self,
        operation: OperationId,
        report: burnin_core::DeviceReport,
        delivery: burnin_core::Delivery,
    ) {
        let received = burnin_core::Clock::now(&SystemClock);
        let recorded = burnin_core::OperationStore::late_reply(
            &self.store,
            &operation,
            &report.sn,
            &delivery.body,
            received,
        )
        .await;
        let settled = match recorded {
            Ok(()) => {
                self.metrics.reply("late");
                tracing::warn!(
                    operation = %operation,
                    sn = %report.sn,
                    hostname = %report.hostname,
                    "a reply arrived after operation {operation} stopped collecting: recorded with \
                     it, not reported (another board with the same serial, or a slow device?)"
                );
                delivery.ack().await
            }
            Err(e) => {
                self.metrics.reply("rejected");
                let reason = format!(
                    "late: operation {operation} had ended, and the reply could not be recorded: {e}"
                );
                tracing::warn!("{reason}");
                delivery.reject(&reason).await
            }
        };
        if let Err(e) = settled {
            tracing::warn!(operation = %operation, "settling a late reply failed: {e}");
        }
    }
}

/// Tells every observer, in order.
struct Observers(Vec<Arc<dyn Observer>>);

impl Observer for Observers {
    fn published(&self, op: &Operation, result: &Result<(), TransportError>) {
        self.0.iter().for_each(|o| o.published(op, result));
    }
    fn reply(&self, op: &Operation, outcome: &ReplyOutcome) {
        self.0.iter().for_each(|o| o.reply(op, outcome));
    }
    fn transport_error(&self, error: &TransportError) {
        self.0.iter().for_each(|o| o.transport_error(error));
    }
    fn store_error(&self, operation: &OperationId, error: &StoreError) {
        self.0.iter().for_each(|o| o.store_error(operation, error));
    }
    fn mes_answer(&self, op: &Operation, sn: &SerialNumber, answer: &Result<MesAnswer, MesError>) {
        self.0.iter().for_each(|o| o.mes_answer(op, sn, answer));
    }
    fn verdict(&self, op: &Operation, sn: &SerialNumber) {
        self.0.iter().for_each(|o| o.verdict(op, sn));
    }
    fn mes_waiting(
        &self,
        op: &Operation,
        sn: &SerialNumber,
        error: &MesError,
        retry_at: burnin_core::Timestamp,
    ) {
        self.0
            .iter()
            .for_each(|o| o.mes_waiting(op, sn, error, retry_at));
    }
    fn delivery_waiting(
        &self,
        op: &Operation,
        kind: PayloadKind,
        error: &ReportError,
        retry_at: burnin_core::Timestamp,
    ) {
        self.0
            .iter()
            .for_each(|o| o.delivery_waiting(op, kind, error, retry_at));
    }
    fn collection_ended(&self, op: &Operation) {
        self.0.iter().for_each(|o| o.collection_ended(op));
    }
    fn running(&self, op: &Operation) {
        self.0.iter().for_each(|o| o.running(op));
    }
    fn results(&self, op: &Operation) {
        self.0.iter().for_each(|o| o.results(op));
    }
    fn delivery(&self, op: &Operation, kind: PayloadKind, result: &Result<(), ReportError>) {
        self.0.iter().for_each(|o| o.delivery(op, kind, result));
    }
    fn delivered(&self, kind: PayloadKind, result: &Result<(), ReportError>) {
        self.0.iter().for_each(|o| o.delivered(kind, result));
    }
    fn finished(&self, report: &OperationReport) {
        self.0.iter().for_each(|o| o.finished(report));
    }
}
