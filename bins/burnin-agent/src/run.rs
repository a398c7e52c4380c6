//! `burnin-agent run`: serve scan commands from RabbitMQ until SIGINT or
//! SIGTERM (SPEC §4, §7).
//!
//! Wiring only: flags → [`burnin_amqp::AmqpConfig`], the sysfs probe (with
//! the LLDP listener, started before connecting), the system clock, then
//! [`burnin_core::agent::serve`]. On a signal the reply in flight is
//! finished and the connection closed before exiting 0.
//!
//! The runtime is tokio's current-thread one: the agent does one thing at
//! a time, and one thread (plus lapin's I/O thread) keeps its memory small.

use std::time::Duration;

use burnin_amqp::{AmqpError, DEFAULT_REPLY_QUEUE};
use burnin_cli::LogFormat;
use burnin_core::agent::{Agent, CommandOutcome, serve};
use burnin_core::{HardwareProbe, TransportError};
use burnin_local::SystemClock;
use clap::Args;

use crate::device::DeviceArgs;
use crate::exit;
use crate::lldp::ListeningProbe;

/// Flags of `run`.
#[derive(Debug, Args)]
pub(crate) struct RunArgs {
    #[command(flatten)]
    broker: burnin_cli::BrokerArgs,

    #[command(flatten)]
    device: DeviceArgs,

    /// The only queue this agent replies to; a command naming another
    /// replyTo is logged and not answered.
    #[arg(long, env = "BURNIN_REPLY_QUEUE", value_name = "NAME", default_value = DEFAULT_REPLY_QUEUE)]
    reply_queue: String,

    /// Log line format (logs go to stderr).
    #[arg(long, env = "BURNIN_LOG_FORMAT", value_name = "FORMAT", value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
}

/// Runs `run`; returns the exit code.
pub(crate) fn run(args: RunArgs) -> u8 {
    burnin_cli::init_logging(args.log_format);
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            tracing::error!("cannot start the async runtime: {e}");
            return exit::INTERNAL;
        }
    };
    runtime.block_on(serve_until_signal(args))
}

async fn serve_until_signal(args: RunArgs) -> u8 {
    // Checked before probing; named after the serial once it is known.
    let mut config = match args.broker.config("burnin-agent", &args.reply_queue) {
        Ok(c) => c,
        Err(e) => {
            tracing::error!("{e}");
            return exit::USAGE;
        }
    };
    let probe = args.device.probe();
    // Fail early, where an operator sees it, rather than on every command.
    let heard = match probe.probe().await {
        Ok(hw) => {
            tracing::info!(
                sn = %hw.sn,
                hostname = %hw.hostname,
                interfaces = hw.interfaces.len(),
                "probed this device"
            );
            // `rabbitmqctl list_connections name` then shows which device
            // is on which node (SPEC §10.3).
            if args.broker.connection_name.is_none() {
                config.connection_name = Some(format!("burnin-agent {}", hw.sn));
            }
            // LLDP neighbours are heard from the start (SPEC §11.1).
            args.device
                .listener(hw.interfaces.iter().map(|i| i.interface.as_str()))
        }
        Err(e) => {
            tracing::error!("cannot probe this device: {e}");
            return exit::INTERNAL;
        }
    };
    let probe = ListeningProbe {
        inner: probe,
        heard,
    };

    let mut shutdown = Box::pin(shutdown_signal());
    let url = config.redacted_url();
    tracing::info!(url = %url, exchange = %config.exchange, reply_queue = %config.reply_queue, "connecting to the broker");
    let mut attempt = 0;
    let (mut source, sink) = loop {
        let connected = tokio::select! {
            r = burnin_amqp::agent::connect(config.clone()) => r,
            () = &mut shutdown => return exit::OK,
        };
        match connected {
            Ok(halves) => break halves,
            Err(e) if e.is_retryable() => {
                let delay = config.backoff(attempt);
                tracing::warn!(retry_in = ?delay, "{e}");
                tokio::select! {
                    () = tokio::time::sleep(delay) => {}
                    () = &mut shutdown => return exit::OK,
                }
                attempt += 1;
            }
            Err(e) => {
                tracing::error!("{e}");
                return match e {
                    AmqpError::InvalidUrl { .. }
                    | AmqpError::InvalidConfig { .. }
                    | AmqpError::CaFile { .. } => exit::USAGE,
                    _ => exit::INTERNAL,
                };
            }
        }
    };
    tracing::info!(url = %url, "connected; serving scan commands");

    let mut agent = Agent::new(
        probe,
        sink.clone(),
        SystemClock,
        config.reply_queue.clone(),
        env!("CARGO_PKG_VERSION"),
    );
    let served = serve(
        &mut agent,
        &mut source,
        shutdown,
        log_outcome,
        |e: &TransportError| {
            tracing::warn!("{e}");
        },
    )
    .await;
    // Finish cleanly: close the connection (the agent's queue goes with it).
    tokio::time::timeout(Duration::from_secs(5), sink.close())
        .await
        .ok();
    match served {
        Ok(()) => {
            tracing::info!("stopped");
            exit::OK
        }
        Err(e) => {
            tracing::error!("stopped serving: {e}");
            exit::INTERNAL
        }
    }
}

fn log_outcome(outcome: &CommandOutcome) {
    match outcome {
        CommandOutcome::Replied(_) => tracing::info!("{outcome}"),
        // The edge announces an open command again every few seconds
        // (SPEC §10.3): the repeats are expected.
        CommandOutcome::AlreadyAnswered(..) => tracing::debug!("{outcome}"),
        o if o.is_error() => tracing::error!("{outcome}"),
        _ => tracing::warn!("{outcome}"),
    }
}

/// Completes on SIGINT or SIGTERM (systemd stops services with SIGTERM).
async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let term = async {
        match signal(SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(e) => {
                tracing::warn!("cannot watch SIGTERM: {e}");
                std::future::pending::<()>().await;
            }
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => tracing::info!("SIGINT: finishing the command in flight, then stopping"),
        () = term => tracing::info!("SIGTERM: finishing the command in flight, then stopping"),
    }
}
