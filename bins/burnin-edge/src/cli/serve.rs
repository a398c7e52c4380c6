//! `burnin-edge serve`: flags → adapters → [`burnin_service::serve`].

use std::net::SocketAddr;
use std::path::PathBuf;

use burnin_core::Target;
use burnin_service::{AmqpConnector, App, Store};
use burnin_store::SqliteStore;
use burnin_store_pg::PgStore;

use crate::cli::broker_args::EdgeBrokerArgs;
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

    /// A read-only token (needs --api-token): it may read the API and
    /// stream events (e.g. a screen on the burn-in room's wall) but never
    /// start a scan (403).
    #[arg(
        long,
        env = "BURNIN_VIEWER_TOKEN",
        value_name = "TOKEN",
        hide_env_values = true
    )]
    viewer_token: Option<String>,

    /// requireLink for every operation whose POST /scans body does not set
    /// "requireLink": an interface without carrier fails its MAC.
    #[arg(long, env = "BURNIN_REQUIRE_LINK")]
    require_link: bool,

    #[command(flatten)]
    rules: crate::cli::rule_args::RuleArgs,

    /// The state database (SQLite) operations are recorded in and resumed
    /// from: the default store, for one edge. Not used with --store.
    #[arg(
        long,
        env = "BURNIN_STATE_DB",
        value_name = "FILE",
        default_value = "burnin-edge.sqlite3"
    )]
    state_db: PathBuf,

    /// Keep operations in PostgreSQL instead of --state-db:
    /// postgres://USER[:PASSWORD]@HOST[:PORT]/DATABASE (no TLS: loopback or a
    /// private network). Several serve processes may share one database:
    /// exactly one is active (PostgreSQL advisory lock), the others are
    /// standbys that answer GET requests, answer POST /scans with 503
    /// naming the active edge, and take over the running operations within
    /// seconds when the active one dies. The password is never logged.
    #[arg(long, env = "BURNIN_STORE", value_name = "URL", hide_env_values = true)]
    store: Option<String>,

    /// The URL clients should use to reach this edge's API, recorded with
    /// the active edge's lock so a standby's 503 can name it (with --store).
    /// Its host and origin are also this edge's own: without --api-token the
    /// API answers only requests whose Host is the --listen address,
    /// localhost, 127.0.0.1, [::1] or this URL's host (421 otherwise), and
    /// pages of this origin may use it. Default: http://HOST:PORT from
    /// --listen (this machine's host name when listening on every address).
    #[arg(long, env = "BURNIN_ADVERTISE_URL", value_name = "URL")]
    advertise_url: Option<String>,

    /// Let web pages of this origin (scheme://host[:port], e.g.
    /// http://10.0.0.5:3000) use the API besides the edge's own page;
    /// repeat for several (in BURNIN_ALLOW_ORIGIN, separated by commas). A
    /// request whose Origin is neither is refused with 403, so another web
    /// site the operator opens cannot start or read scans.
    #[arg(
        long,
        env = "BURNIN_ALLOW_ORIGIN",
        value_name = "ORIGIN",
        value_delimiter = ',',
        value_parser = burnin_service::guard::parse_origin
    )]
    allow_origin: Vec<String>,

    /// Delete finished operations older than this from the store (e.g.
    /// `30d`, `12h`); checked at start (by the active edge) and then every
    /// sixth of this, at most every 10 minutes and at least every second.
    /// Without it every operation is kept.
    #[arg(long, env = "BURNIN_KEEP", value_name = "DURATION", value_parser = humantime::parse_duration)]
    keep: Option<std::time::Duration>,

    /// HTTP connections served at once, so slow or broken clients cannot
    /// use up the edge's file descriptors. At the cap a new connection
    /// closes the oldest one not answered yet (its request still coming),
    /// so a flood cannot lock out /healthz or the API; when every
    /// connection has been answered, new ones get 503 and are closed.
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
    broker: EdgeBrokerArgs,

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
    let viewer = args.viewer_token.as_deref().filter(|t| !t.is_empty());
    if let Some(viewer) = viewer {
        match args.api_token.as_deref().filter(|t| !t.is_empty()) {
            None => {
                return usage(
                    "--viewer-token (BURNIN_VIEWER_TOKEN) needs --api-token (BURNIN_API_TOKEN): \
                     without it anyone may start scans, and a read-only token means nothing",
                );
            }
            Some(full) if full == viewer => {
                return usage(
                    "--viewer-token is the same as --api-token; give the screens a token of their own",
                );
            }
            Some(_) => {}
        }
    }
    let mut defaults = burnin_core::OperationParams::new(burnin_core::OperationId::Number(0));
    if let Err(e) = args.rules.apply(&mut defaults) {
        return usage(&e);
    }
    let amqp = match args
        .broker
        .config(&format!("burnin-edge {}", burnin_cli::host_name()))
    {
        Ok(c) => c,
        Err(e) => return usage(&e),
    };
    let sqlite = match &args.store {
        Some(_) => None,
        None => match SqliteStore::open(&args.state_db) {
            Ok(s) => Some(s),
            Err(e) => {
                eprintln!("error: {e}");
                return exit::USAGE;
            }
        },
    };
    let rt = match crate::runtime() {
        Ok(rt) => rt,
        Err(code) => return code,
    };
    rt.block_on(async move {
        let store: Store = match (sqlite, &args.store) {
            (Some(s), _) => std::sync::Arc::new(s),
            (None, Some(url)) => match PgStore::connect(url).await {
                Ok(s) => std::sync::Arc::new(s),
                Err(e) => {
                    eprintln!("error: {e}");
                    return exit::USAGE;
                }
            },
            (None, None) => return usage("give --state-db FILE or --store URL"),
        };
        // reqwest's client must be built inside the runtime.
        let factory_config = args.factory.config();
        let factory = match factory_config.build_any() {
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
        let advertise = args.advertise_url.clone().unwrap_or_else(|| {
            let port = listener
                .local_addr()
                .map_or(args.listen.port(), |a| a.port());
            let ip = args.listen.ip();
            if ip.is_unspecified() {
                format!("http://{}:{port}", burnin_cli::host_name())
            } else {
                format!("http://{}", std::net::SocketAddr::new(ip, port))
            }
        });
        let mut builder = App::builder(
            store,
            AmqpConnector::new(amqp),
            factory.mes,
            factory.reporter,
        )
        .api_token(args.api_token)
        .viewer_token(args.viewer_token)
        .advertise(advertise)
        .allow_origins(args.allow_origin)
        .require_link(args.require_link)
        .operation_defaults(&defaults)
        .bounds(factory.bounds)
        .keep(args.keep)
        .http_limits(burnin_service::listener::HttpLimits {
            max_connections: args.max_connections as usize,
            header_read_timeout: args.header_timeout,
        })
        .live_limits(burnin_service::live::Limits {
            streams_per_operation: args.max_streams as usize,
            ..burnin_service::live::Limits::default()
        })
        .reply_queue(args.broker.reply_queue());
        if let Some(mes) = factory.mes_http {
            builder = builder.mes_limit_gauges(mes);
        }
        for target in [Target::Pair, Target::DirectBurn] {
            if let Err(why) = factory_config.check_target(target) {
                builder = builder.target_unavailable(target, why);
            }
        }
        let app = builder.build();
        tracing::info!(
            listen = %listener.local_addr().map_or_else(|_| args.listen.to_string(), |a| a.to_string()),
            store = %app.store().describe(),
            advertise = %app.advertised(),
            broker = %app.broker_description(),
            factory = %factory.describe,
            token = app.has_token(),
            "burnin-edge serve starting"
        );
        match burnin_service::serve(listener, app, burnin_service::shutdown_signal()).await {
            Ok(()) => exit::PASSED,
            Err(e) => {
                eprintln!("error: {e}");
                exit::INTERNAL
            }
        }
    })
}

fn usage(message: &str) -> u8 {
    eprintln!("error: {message}");
    eprintln!("\nFor more information, try 'burnin-edge serve --help'.");
    exit::USAGE
}
