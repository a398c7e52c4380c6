//! `burnin-edge serve`: flags → adapters → [`burnin_edge::serve`].

use std::net::SocketAddr;
use std::path::PathBuf;

use burnin_core::Target;
use burnin_edge::{AmqpConnector, App};
use burnin_store::SqliteStore;

use crate::cli::broker_args::BrokerArgs;
use crate::cli::factory::FactoryArgs;
use crate::exit;

/// Flags of `burnin-edge serve`.
#[derive(Debug, clap::Args)]
pub(crate) struct ServeArgs {
    /// Address the HTTP API listens on. An address other than loopback
    /// needs --api-token: without a token the API stays on this machine.
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

    /// requireLink for every operation whose POST /scans body does not set
    /// "requireLink": an interface without carrier fails its MAC.
    #[arg(long, env = "BURNIN_REQUIRE_LINK")]
    require_link: bool,

    /// The state database (SQLite) operations are recorded in and resumed from.
    #[arg(
        long,
        env = "BURNIN_STATE_DB",
        value_name = "FILE",
        default_value = "burnin-edge.sqlite3"
    )]
    state_db: PathBuf,

    /// Delete finished operations older than this from the state database
    /// (e.g. `30d`, `12h`); checked at start and every 10 minutes. Without
    /// it every operation is kept.
    #[arg(long, env = "BURNIN_KEEP", value_name = "DURATION", value_parser = humantime::parse_duration)]
    keep: Option<std::time::Duration>,

    /// HTTP connections served at once; beyond, new ones get 503 and are
    /// closed, so slow or broken clients cannot use up the edge's file
    /// descriptors.
    #[arg(
        long,
        env = "BURNIN_MAX_CONNECTIONS",
        value_name = "N",
        default_value_t = 512,
        value_parser = clap::value_parser!(u32).range(1..)
    )]
    max_connections: u32,

    /// Close an HTTP connection that has not sent a whole request head
    /// within this time.
    #[arg(long, env = "BURNIN_HEADER_TIMEOUT", value_name = "DURATION", default_value = "5s", value_parser = humantime::parse_duration)]
    header_timeout: std::time::Duration,

    /// Live event streams (the page, `GET /events`) served at once per
    /// operation, and for all operations together; beyond, 503.
    #[arg(
        long,
        env = "BURNIN_MAX_STREAMS",
        value_name = "N",
        default_value_t = 64,
        value_parser = clap::value_parser!(u32).range(1..)
    )]
    max_streams: u32,

    #[command(flatten)]
    broker: BrokerArgs,

    #[command(flatten)]
    factory: FactoryArgs,
}

pub(crate) fn run(args: ServeArgs) -> u8 {
    if !args.listen.ip().is_loopback() && args.api_token.as_deref().is_none_or(str::is_empty) {
        return usage(&format!(
            "--listen {}: the API would be open to the network without a token; \
             set --api-token (BURNIN_API_TOKEN), or listen on 127.0.0.1",
            args.listen
        ));
    }
    let amqp = match args.broker.config(&format!(
        "burnin-edge {}",
        crate::cli::broker_args::host_name()
    )) {
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
        // reqwest's client must be built inside the runtime.
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
        let mut builder = App::builder(
            store,
            AmqpConnector::new(amqp),
            factory.mes,
            factory.reporter,
        )
        .api_token(args.api_token)
        .require_link(args.require_link)
        .bounds(factory.bounds)
        .keep(args.keep)
        .http_limits(burnin_edge::listener::HttpLimits {
            max_connections: args.max_connections as usize,
            header_read_timeout: args.header_timeout,
        })
        .live_limits(burnin_edge::live::Limits {
            streams_per_operation: args.max_streams as usize,
            ..burnin_edge::live::Limits::default()
        })
        .reply_queue(args.broker.reply_queue());
        if let Some(mes) = factory.mes_http {
            let mut metrics = burnin_edge::Metrics::new();
            let limit = mes.clone();
            metrics.gauge_fn(
                "burnin_mes_concurrency_limit",
                "The adaptive limit on MES lookups in flight",
                move || i64::try_from(limit.concurrency_limit()).unwrap_or(i64::MAX),
            );
            metrics.gauge_fn(
                "burnin_mes_in_flight",
                "MES lookups in flight now",
                move || i64::try_from(mes.in_flight()).unwrap_or(i64::MAX),
            );
            builder = builder.metrics(metrics);
        }
        for target in [Target::Pair, Target::DirectBurn] {
            if let Err(why) = args.factory.check_target(target) {
                builder = builder.target_unavailable(target, why);
            }
        }
        let app = builder.build();
        tracing::info!(
            listen = %listener.local_addr().map_or_else(|_| args.listen.to_string(), |a| a.to_string()),
            state_db = %app.store().path(),
            broker = %app.broker_description(),
            factory = %factory.describe,
            token = app.has_token(),
            "burnin-edge serve starting"
        );
        match burnin_edge::serve(listener, app, shutdown_signal()).await {
            Ok(()) => exit::PASSED,
            Err(e) => {
                eprintln!("error: {e}");
                exit::INTERNAL
            }
        }
    })
}

/// SIGINT or SIGTERM (systemd stops services with SIGTERM).
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
