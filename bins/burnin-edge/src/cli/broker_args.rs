//! The broker flags shared by `scan` and `serve`.

use std::path::PathBuf;
use std::time::Duration;

use burnin_amqp::{AmqpConfig, QueueType};

/// How to reach RabbitMQ and what to declare there.
#[derive(Debug, Clone, clap::Args)]
#[command(next_help_heading = "Broker")]
pub(crate) struct BrokerArgs {
    /// RabbitMQ URL, `amqp://USER:PASSWORD@HOST:5672/VHOST` or `amqps://…`.
    /// For a cluster give every node (repeat the flag, or a comma list in
    /// the variable; percent-encode a comma in a password as %2C): they are
    /// tried in random order and failed over.
    #[arg(
        long,
        env = "BURNIN_AMQP_URL",
        value_name = "URL",
        hide_env_values = true,
        value_delimiter = ','
    )]
    amqp_url: Vec<String>,

    /// PEM file with the CA that signed the broker's certificate (for `amqps://`).
    #[arg(long, env = "BURNIN_AMQP_CA_FILE", value_name = "FILE")]
    amqp_ca_file: Option<PathBuf>,

    /// The fanout exchange scan commands are published to.
    #[arg(
        long,
        env = "BURNIN_EXCHANGE",
        value_name = "NAME",
        default_value = "devicescan"
    )]
    exchange: String,

    /// The durable queue agents reply to (rejected replies go to NAME.rejected).
    #[arg(
        long,
        env = "BURNIN_REPLY_QUEUE",
        value_name = "NAME",
        default_value = "hwinfo_queue"
    )]
    reply_queue: String,

    /// The reply queue's type; quorum survives a node loss in a cluster.
    #[arg(long, env = "BURNIN_REPLY_QUEUE_TYPE", value_enum, default_value_t = ReplyQueueType::Classic)]
    reply_queue_type: ReplyQueueType,

    /// Unacknowledged replies the broker may hand over at once.
    #[arg(long, env = "BURNIN_PREFETCH", value_name = "N", default_value_t = 256,
          value_parser = clap::value_parser!(u16).range(1..))]
    prefetch: u16,

    /// The name this edge's broker connection shows in the management UI
    /// and `rabbitmqctl list_connections name`, instead of the default
    /// `burnin-edge HOST` (`… (scan OP)`, `… (check)`): to tell edges apart
    /// on one vhost, or to find this one connection from a script.
    #[arg(long, env = "BURNIN_AMQP_CONNECTION_NAME", value_name = "NAME")]
    connection_name: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum ReplyQueueType {
    Classic,
    Quorum,
}

impl BrokerArgs {
    /// The reply queue's name.
    pub(crate) fn reply_queue(&self) -> &str {
        &self.reply_queue
    }

    /// The adapter configuration, checked by [`AmqpConfig::validate`]
    /// (URL, names, CA file: the rules both binaries share); the error
    /// names the flag. The connection is named `default_name` unless
    /// `--connection-name` was given.
    pub(crate) fn config(&self, default_name: &str) -> Result<AmqpConfig, String> {
        // Not required by clap: `scan --edge-url` needs no broker.
        if self.amqp_url.iter().all(|u| u.trim().is_empty()) {
            return Err(
                "--amqp-url URL is required (or BURNIN_AMQP_URL): the broker, \
                 amqp://USER:PASSWORD@HOST:5672/VHOST"
                    .into(),
            );
        }
        let mut c = AmqpConfig::cluster(self.amqp_url.iter().cloned());
        c.exchange = self.exchange.clone();
        c.reply_queue = self.reply_queue.clone();
        c.reply_queue_type = match self.reply_queue_type {
            ReplyQueueType::Classic => QueueType::Classic,
            ReplyQueueType::Quorum => QueueType::Quorum,
        };
        c.prefetch = self.prefetch;
        c.ca_file = self.amqp_ca_file.clone();
        c.connect_timeout = Duration::from_secs(5);
        c.connection_name = Some(match &self.connection_name {
            Some(name) if name.trim().is_empty() => {
                return Err("--connection-name NAME must not be empty".into());
            }
            Some(name) => name.clone(),
            None => default_name.to_owned(),
        });
        c.validate().map_err(|e| e.to_string())?;
        Ok(c)
    }
}

/// This machine's host name, for connection names (`burnin-edge HOST`,
/// SPEC §10.3) and the edge's identity.
pub(crate) fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "unknown-host".into())
}
