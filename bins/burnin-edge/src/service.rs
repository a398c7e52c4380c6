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
//! * **Shutdown** ([`App::shutdown`]): operations stop where they are
//!   (replies handed over but not acked return to the broker); writes to
//!   the store that have started are completed. What was recorded resumes
//!   on the next start.

use std::sync::Arc;

use burnin_core::edge::OperationReport;
use burnin_core::edge::{self, EdgePorts, Observer, ReplyRouter};
use burnin_core::{
    FactoryReporter, MesAnswer, MesError, MesSource, Operation, OperationId, PayloadKind,
    ReplyOutcome, ReportError, SerialNumber, StoreError, Target, TransportError,
};
use burnin_local::SystemClock;
use burnin_store::SqliteStore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::bounds::{
    BoundedMes, BoundedPublisher, BoundedReplies, BoundedReporter, BoundedStore, Bounds, Waits,
};
use crate::broker::{self, BrokerLink, Connector};
use crate::metrics::{Metrics, ServeObserver, TimedMes, TimedReporter};

/// Everything the API and the operations share; see the [module docs](self).
pub struct App {
    pub(crate) store: SqliteStore,
    bounded_store: BoundedStore<SqliteStore>,
    bounds: Bounds,
    waits: Waits,
    router: ReplyRouter,
    broker: BrokerLink,
    connector: Arc<dyn Connector>,
    mes: TimedMes,
    reporter: TimedReporter,
    metrics: Arc<Metrics>,
    observer: Observers,
    pub(crate) api_token: Option<String>,
    pub(crate) reply_queue: String,
    pub(crate) require_link: bool,
    pair_unavailable: Option<String>,
    direct_burn_unavailable: Option<String>,
    tasks: TaskTracker,
    stop: CancellationToken,
    pub(crate) live: Arc<crate::live::Live>,
    http: crate::listener::HttpLimits,
    keep: Option<std::time::Duration>,
}

impl std::fmt::Debug for App {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("App")
            .field("store", &self.store)
            .field("broker", &self.connector.describe())
            .field("token", &self.api_token.is_some())
            .field("reply_queue", &self.reply_queue)
            .finish_non_exhaustive()
    }
}

/// Builds an [`App`]; see [`App::builder`].
#[must_use]
pub struct AppBuilder {
    store: SqliteStore,
    connector: Arc<dyn Connector>,
    mes: Box<dyn MesSource>,
    reporter: Box<dyn FactoryReporter>,
    metrics: Metrics,
    observers: Vec<Arc<dyn Observer>>,
    bounds: Bounds,
    api_token: Option<String>,
    reply_queue: String,
    require_link: bool,
    pair_unavailable: Option<String>,
    direct_burn_unavailable: Option<String>,
    live: crate::live::Limits,
    http: crate::listener::HttpLimits,
    keep: Option<std::time::Duration>,
}

impl AppBuilder {
    /// Limits of the live event streams ([`crate::live`]).
    pub fn live_limits(mut self, limits: crate::live::Limits) -> Self {
        self.live = limits;
        self
    }

    /// Limits of the HTTP server ([`crate::listener`]).
    pub fn http_limits(mut self, limits: crate::listener::HttpLimits) -> Self {
        self.http = limits;
        self
    }

    /// Delete finished operations older than `keep` from the store (checked
    /// at start and every 10 minutes); `None` (the default) keeps everything.
    pub fn keep(mut self, keep: Option<std::time::Duration>) -> Self {
        self.keep = keep;
        self
    }

    /// Require `Authorization: Bearer TOKEN` on every route but `/healthz`
    /// (`None` or an empty token: no token needed).
    pub fn api_token(mut self, token: Option<String>) -> Self {
        self.api_token = token.filter(|t| !t.is_empty());
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
        self.require_link = require_link;
        self
    }

    /// Refuse operations for `target` with 400 and `why` (its URL is not
    /// configured). Every target is available by default.
    pub fn target_unavailable(mut self, target: Target, why: impl Into<String>) -> Self {
        match target {
            Target::Pair => self.pair_unavailable = Some(why.into()),
            Target::DirectBurn => self.direct_burn_unavailable = Some(why.into()),
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
        let bounds = self.bounds;
        let metrics = Arc::new(self.metrics);
        // Event ids start at the start time in microseconds, so they keep
        // growing across restarts (see burnin_core::live).
        let first_id = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX));
        let live = crate::live::Live::new(first_id, self.live);
        let mut observers: Vec<Arc<dyn Observer>> = vec![
            Arc::new(ServeObserver {
                metrics: metrics.clone(),
            }),
            live.observer(),
        ];
        observers.extend(self.observers);
        Arc::new(App {
            bounded_store: BoundedStore::new(self.store.clone(), bounds.store, waits.clone()),
            store: self.store,
            bounds,
            router: ReplyRouter::new(),
            broker: BrokerLink::new(),
            connector: self.connector,
            // Timed outside, bounded inside: a lookup that runs out of
            // time is counted as unavailable.
            mes: TimedMes {
                inner: Box::new(BoundedMes::new(self.mes, bounds.mes, waits.clone())),
                metrics: metrics.clone(),
            },
            reporter: TimedReporter {
                inner: Box::new(BoundedReporter::new(
                    self.reporter,
                    bounds.delivery,
                    waits.clone(),
                )),
                metrics: metrics.clone(),
            },
            waits,
            observer: Observers(observers),
            metrics,
            api_token: self.api_token,
            reply_queue: self.reply_queue,
            require_link: self.require_link,
            pair_unavailable: self.pair_unavailable,
            direct_burn_unavailable: self.direct_burn_unavailable,
            tasks: TaskTracker::new(),
            stop: CancellationToken::new(),
            live,
            http: self.http,
            keep: self.keep,
        })
    }
}

impl App {
    /// A builder for an app over `store`, the broker `connector`, MES and
    /// the factory reporter.
    pub fn builder(
        store: SqliteStore,
        connector: impl Connector,
        mes: Box<dyn MesSource>,
        reporter: Box<dyn FactoryReporter>,
    ) -> AppBuilder {
        AppBuilder {
            store,
            connector: Arc::new(connector),
            mes,
            reporter,
            metrics: Metrics::new(),
            observers: Vec::new(),
            bounds: Bounds::default(),
            api_token: None,
            reply_queue: burnin_amqp::DEFAULT_REPLY_QUEUE.into(),
            require_link: false,
            pair_unavailable: None,
            direct_burn_unavailable: None,
            live: crate::live::Limits::default(),
            http: crate::listener::HttpLimits::default(),
            keep: None,
        }
    }

    /// The live state of operations (device states, events).
    pub fn live(&self) -> &Arc<crate::live::Live> {
        &self.live
    }

    /// The HTTP server's limits.
    pub fn http_limits(&self) -> crate::listener::HttpLimits {
        self.http
    }

    /// Resumes every unfinished operation of the store, then starts the
    /// broker task. Call once; the error names what could not be read.
    pub async fn start(self: &Arc<Self>) -> Result<(), String> {
        self.resume().await?;
        self.tasks
            .spawn(broker::supervise(self.clone(), self.connector.clone()));
        if let Some(keep) = self.keep {
            self.tasks.spawn(crate::live::retention(
                self.store.clone(),
                keep,
                self.stop.clone(),
            ));
        }
        Ok(())
    }

    /// Stops operations and the broker task, waits for them, and for the
    /// store's writes in progress.
    pub async fn shutdown(&self) {
        self.stop.cancel();
        self.tasks.close();
        self.tasks.wait().await;
        // Writes already handed to the database finish before we return.
        self.store.barrier().await;
    }

    /// Whether [`shutdown`](Self::shutdown) has begun.
    pub fn is_stopping(&self) -> bool {
        self.stop.is_cancelled()
    }

    /// The operation store.
    pub fn store(&self) -> &SqliteStore {
        &self.store
    }

    /// The service's metrics.
    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    /// The broker link (publishing, `/healthz`).
    pub fn broker(&self) -> &BrokerLink {
        &self.broker
    }

    /// The broker, for logs (password redacted).
    pub fn broker_description(&self) -> String {
        self.connector.describe()
    }

    /// The bound of each wait of an operation.
    pub fn bounds(&self) -> Bounds {
        self.bounds
    }

    /// The waits in progress, across operations (what a stalled one waits for).
    pub fn waits(&self) -> &Waits {
        &self.waits
    }

    /// Whether the API needs a token.
    pub fn has_token(&self) -> bool {
        self.api_token.is_some()
    }

    pub(crate) fn router(&self) -> &ReplyRouter {
        &self.router
    }

    pub(crate) fn stop_token(&self) -> CancellationToken {
        self.stop.clone()
    }

    /// Runs `op` in a task of its own until it ends or the service stops.
    pub fn spawn_operation(self: &Arc<Self>, op: Operation) {
        // Registered before the command is published (inside `run`), so no
        // reply can arrive before its route exists.
        let mut replies = BoundedReplies::new(
            self.router.register(op.id().clone()),
            self.bounds.broker,
            self.waits.clone(),
        );
        let app = self.clone();
        self.tasks.spawn(async move {
            let id = op.id().clone();
            let publisher = BoundedPublisher::new(&app.broker, app.waits.clone());
            let ports = EdgePorts {
                publisher: &publisher,
                replies: &mut replies,
                mes: &app.mes,
                reporter: &app.reporter,
                store: &app.bounded_store,
                clock: &SystemClock,
                observer: &app.observer,
            };
            tokio::select! {
                () = app.stop.cancelled() => {
                    tracing::info!(operation = %id, "stopped by shutdown; it resumes on the next start");
                }
                _report = edge::run(op, ports) => {}
            }
        });
    }

    /// Why operations for `target` are refused, if they are.
    pub fn target_unavailable(&self, target: Target) -> Option<&str> {
        match target {
            Target::Pair => self.pair_unavailable.as_deref(),
            Target::DirectBurn => self.direct_burn_unavailable.as_deref(),
        }
    }

    /// Restores and runs every unfinished operation of the store.
    async fn resume(self: &Arc<Self>) -> Result<(), String> {
        let store = self.store.clone();
        let unfinished = tokio::task::spawn_blocking(move || store.unfinished())
            .await
            .map_err(|e| e.to_string())?
            .map_err(|e| e.to_string())?;
        for stored in unfinished {
            let op = Operation::restore(stored);
            tracing::info!(
                operation = %op.id(),
                state = %op.state(),
                deadline = %op.deadline(),
                replies = op.counters().accepted,
                "resuming an unfinished operation"
            );
            self.metrics.started("resumed");
            self.spawn_operation(op);
        }
        Ok(())
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
