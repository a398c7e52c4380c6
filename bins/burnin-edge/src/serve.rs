//! `burnin-edge serve`: the long-running edge (SPEC §6, §7).
//!
//! One process, one broker connection, any number of operations at once:
//!
//! * **HTTP** ([`crate::serve_api`]): operations are started with
//!   `POST /scans` and watched with `GET /scans/{id}`; `/healthz`,
//!   `/metrics`.
//! * **Operations**: each runs `burnin_core::edge::run` in a task of its
//!   own, with its replies from the shared reply queue through a
//!   [`ReplyRouter`]. Every reply is committed to the state database before
//!   it is acked; results and deliveries are recorded as they happen.
//! * **Broker**: a task connects (retrying with backoff, at most ~4 s apart,
//!   while the broker is unreachable — the API is up meanwhile and `/healthz` says 503), then
//!   pumps the reply queue into the router. burnin-amqp reconnects by
//!   itself after a lost connection; if the reply consumer ends for good
//!   the task connects afresh.
//! * **Resume**: on start, every unfinished operation in `--state-db` is
//!   restored and run again before the broker is consumed, so no reply of
//!   a resumed operation is refused as unknown. Collecting ones keep
//!   collecting until their deadline (the command is published again for
//!   the rest of the window), past-deadline ones are reported, undelivered
//!   payloads are sent again with the same `Idempotency-Key`.
//! * **Shutdown** (SIGTERM, SIGINT): the listener stops accepting and
//!   in-flight HTTP requests finish; operations stop where they are
//!   (replies handed over but not acked return to the broker); writes to
//!   the database that have started are completed; exit 0. What was
//!   recorded resumes on the next start.

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use burnin_amqp::AmqpConfig;
use burnin_amqp::edge::AmqpCommandPublisher;
use burnin_core::edge::{self, EdgePorts, ReplyRouter};
use burnin_core::{CommandPublisher, Operation, ScanCommand, Target, TransportError};
use burnin_local::SystemClock;
use burnin_store::SqliteStore;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::broker::BrokerArgs;
use crate::exit;
use crate::factory::FactoryArgs;
use crate::serve_metrics::{Metrics, ServeObserver, TimedMes, TimedReporter};

/// Flags of `burnin-edge serve`.
#[derive(Debug, clap::Args)]
pub(crate) struct ServeArgs {
    /// Address the HTTP API listens on.
    #[arg(
        long,
        env = "BURNIN_LISTEN",
        value_name = "ADDR",
        default_value = "127.0.0.1:8080"
    )]
    listen: SocketAddr,

    /// Require `Authorization: Bearer TOKEN` on every route but /healthz.
    #[arg(
        long,
        env = "BURNIN_API_TOKEN",
        value_name = "TOKEN",
        hide_env_values = true
    )]
    api_token: Option<String>,

    /// The state database (SQLite) operations are recorded in and resumed from.
    #[arg(
        long,
        env = "BURNIN_STATE_DB",
        value_name = "FILE",
        default_value = "burnin-edge.sqlite3"
    )]
    state_db: PathBuf,

    #[command(flatten)]
    broker: BrokerArgs,

    #[command(flatten)]
    factory: FactoryArgs,
}

/// Everything the API and the operations share.
pub(crate) struct App {
    pub(crate) store: SqliteStore,
    pub(crate) router: ReplyRouter,
    pub(crate) broker: BrokerLink,
    pub(crate) mes: TimedMes,
    pub(crate) reporter: TimedReporter,
    pub(crate) metrics: Arc<Metrics>,
    pub(crate) observer: ServeObserver,
    pub(crate) api_token: Option<String>,
    pub(crate) reply_queue: String,
    /// Why a target cannot be used (its URL is not configured), per target.
    pub(crate) pair_unavailable: Option<String>,
    pub(crate) direct_burn_unavailable: Option<String>,
    pub(crate) tasks: TaskTracker,
    pub(crate) stop: CancellationToken,
}

impl App {
    /// Runs `op` in a task of its own until it ends or `serve` stops.
    pub(crate) fn spawn_operation(self: &Arc<Self>, op: Operation) {
        // Registered before the command is published (inside `run`), so no
        // reply can arrive before its route exists.
        let mut replies = self.router.register(op.id().clone());
        let app = self.clone();
        self.tasks.spawn(async move {
            let id = op.id().clone();
            let ports = EdgePorts {
                publisher: &app.broker,
                replies: &mut replies,
                mes: &app.mes,
                reporter: &app.reporter,
                store: &app.store,
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

    pub(crate) fn target_unavailable(&self, target: Target) -> Option<&str> {
        match target {
            Target::Pair => self.pair_unavailable.as_deref(),
            Target::DirectBurn => self.direct_burn_unavailable.as_deref(),
        }
    }
}

/// The broker's publisher once connected; publishing waits for it (up to
/// the operation's window) while the broker is unreachable.
pub(crate) struct BrokerLink {
    rx: watch::Receiver<Option<Arc<AmqpCommandPublisher>>>,
}

impl BrokerLink {
    /// Whether the broker connection is up (for `/healthz`).
    pub(crate) async fn is_up(&self) -> bool {
        let current = self.rx.borrow().clone();
        match current {
            Some(p) => tokio::time::timeout(Duration::from_secs(2), p.is_connected())
                .await
                .unwrap_or(false),
            None => false,
        }
    }
}

#[async_trait]
impl CommandPublisher for BrokerLink {
    async fn publish(&self, command: &ScanCommand, window: Duration) -> Result<(), TransportError> {
        let until = tokio::time::Instant::now() + window;
        let mut rx = self.rx.clone();
        let publisher = match tokio::time::timeout_at(until, rx.wait_for(Option::is_some)).await {
            Ok(Ok(p)) => p.clone(),
            Ok(Err(_)) => return Err(TransportError::Closed),
            Err(_) => {
                return Err(TransportError::Unavailable(format!(
                    "the broker stayed unreachable for the whole window of operation {}",
                    command.operation_id
                )));
            }
        };
        let Some(publisher) = publisher else {
            return Err(TransportError::Closed);
        };
        let left = until.saturating_duration_since(tokio::time::Instant::now());
        publisher.publish(command, left).await
    }
}

/// Connects (retrying while the broker is unreachable) and pumps replies
/// into the router until `stop`.
async fn broker_loop(
    app: Arc<App>,
    config: AmqpConfig,
    tx: watch::Sender<Option<Arc<AmqpCommandPublisher>>>,
) {
    let mut attempt: u32 = 0;
    loop {
        let connected = tokio::select! {
            () = app.stop.cancelled() => return,
            c = burnin_amqp::edge::connect(config.clone()) => c,
        };
        match connected {
            Ok((publisher, mut stream)) => {
                attempt = 0;
                tracing::info!(broker = %config.redacted_url(), "connected to the broker; consuming replies");
                let publisher = Arc::new(publisher);
                tx.send_replace(Some(publisher.clone()));
                let metrics = app.metrics.clone();
                let on_reject = move |reason: &burnin_core::RejectReason| {
                    metrics.reply("rejected");
                    tracing::warn!("reply moved to the rejected queue: {reason}");
                };
                let metrics = app.metrics.clone();
                let on_error = move |e: &TransportError| {
                    metrics.transport_error();
                    tracing::warn!("broker: {e}");
                };
                let stopped = tokio::select! {
                    () = app.stop.cancelled() => true,
                    () = app.router.pump(&mut stream, &on_reject, &on_error) => false,
                };
                tx.send_replace(None);
                publisher.close().await;
                if stopped {
                    return;
                }
                tracing::error!("the reply consumer ended; connecting again");
            }
            Err(e) => {
                tracing::warn!(broker = %config.redacted_url(), "cannot use the broker yet: {e}");
            }
        }
        // At most ~4 s between attempts, so /healthz turns 200 soon after
        // the broker is back.
        let delay = config.backoff(attempt.min(4));
        attempt = attempt.saturating_add(1);
        tokio::select! {
            () = app.stop.cancelled() => return,
            () = tokio::time::sleep(delay) => {}
        }
    }
}

pub(crate) fn run(args: ServeArgs) -> u8 {
    let amqp = match args.broker.config("burnin-edge serve") {
        Ok(c) => c,
        Err(e) => return usage(&e),
    };
    let store = match SqliteStore::open(&args.state_db) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {e}");
            return exit::USAGE;
        }
    };
    let rt = match crate::runtime() {
        Ok(rt) => rt,
        Err(code) => return code,
    };
    rt.block_on(async move {
        let factory = match args.factory.build_any() {
            Ok(f) => f,
            Err(e) => return usage(&e),
        };
        let listener = match tokio::net::TcpListener::bind(args.listen).await {
            Ok(l) => l,
            Err(e) => {
                return usage(&format!(
                    "--listen {}: cannot listen there: {e}; give a free ADDR:PORT",
                    args.listen
                ));
            }
        };
        let metrics = Arc::new(Metrics::new());
        let (tx, rx) = watch::channel(None);
        let app = Arc::new(App {
            store,
            router: ReplyRouter::new(),
            broker: BrokerLink { rx },
            mes: TimedMes {
                inner: factory.mes,
                metrics: metrics.clone(),
            },
            reporter: TimedReporter {
                inner: factory.reporter,
                metrics: metrics.clone(),
            },
            observer: ServeObserver {
                metrics: metrics.clone(),
            },
            metrics,
            api_token: args.api_token.filter(|t| !t.is_empty()),
            reply_queue: args.broker.reply_queue().to_owned(),
            pair_unavailable: args.factory.check_target(Target::Pair).err(),
            direct_burn_unavailable: args.factory.check_target(Target::DirectBurn).err(),
            tasks: TaskTracker::new(),
            stop: CancellationToken::new(),
        });
        tracing::info!(
            listen = %listener.local_addr().map_or_else(|_| args.listen.to_string(), |a| a.to_string()),
            state_db = %app.store.path(),
            broker = %amqp.redacted_url(),
            factory = %factory.describe,
            token = app.api_token.is_some(),
            "burnin-edge serve starting"
        );
        match serve(listener, app, amqp, tx, shutdown_signal()).await {
            Ok(()) => exit::PASSED,
            Err(e) => {
                eprintln!("error: {e}");
                exit::INTERNAL
            }
        }
    })
}

/// Resumes what the store holds, runs the broker and the API until
/// `shutdown` completes, then stops everything (mini-redis style: tests
/// and `main` share it).
pub(crate) async fn serve(
    listener: tokio::net::TcpListener,
    app: Arc<App>,
    amqp: AmqpConfig,
    tx: watch::Sender<Option<Arc<AmqpCommandPublisher>>>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), String> {
    resume(&app).await?;
    let broker = tokio::spawn(broker_loop(app.clone(), amqp, tx));
    let stop = app.stop.clone();
    tokio::spawn(async move {
        shutdown.await;
        tracing::info!(
            "shutting down: no new requests or replies; what is recorded stays recorded"
        );
        stop.cancel();
    });
    let router = crate::serve_api::router(app.clone());
    let stop = app.stop.clone();
    let served = axum::serve(listener, router)
        .with_graceful_shutdown(async move { stop.cancelled().await })
        .await
        .map_err(|e| format!("the HTTP server failed: {e}"));
    app.stop.cancel();
    app.tasks.close();
    app.tasks.wait().await;
    let _ = broker.await;
    // Writes already handed to the database finish before we exit.
    app.store.barrier().await;
    tracing::info!("stopped");
    served
}

/// Restores and runs every unfinished operation of the store.
async fn resume(app: &Arc<App>) -> Result<(), String> {
    let store = app.store.clone();
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
        app.metrics.started("resumed");
        app.spawn_operation(op);
    }
    Ok(())
}

async fn shutdown_signal() {
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

fn usage(message: &str) -> u8 {
    eprintln!("error: {message}");
    eprintln!("\nFor more information, try 'burnin-edge serve --help'.");
    exit::USAGE
}
