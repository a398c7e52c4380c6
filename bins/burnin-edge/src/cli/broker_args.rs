//! The broker flags of `scan`, `serve` and `check`: the ones both binaries
//! take ([`burnin_cli::BrokerArgs`]) and the edge's own (the reply queue it
//! consumes, its type, the prefetch).

use burnin_amqp::{AmqpConfig, DEFAULT_REPLY_QUEUE, QueueType};

/// How to reach RabbitMQ and what to declare there.
#[derive(Debug, Clone, clap::Args)]
#[command(next_help_heading = "Broker")]
pub(crate) struct EdgeBrokerArgs {
    #[command(flatten)]
    common: burnin_cli::BrokerArgs,

    /// The durable queue agents reply to (rejected replies go to NAME.rejected).
    #[arg(
        long,
        env = "BURNIN_REPLY_QUEUE",
        value_name = "NAME",
        default_value = DEFAULT_REPLY_QUEUE
    )]
    reply_queue: String,

    /// The reply queue's type; quorum survives a node loss in a cluster.
    #[arg(long, env = "BURNIN_REPLY_QUEUE_TYPE", value_enum, default_value_t = ReplyQueueType::Classic)]
    reply_queue_type: ReplyQueueType,

    /// Unacknowledged replies the broker may hand over at once.
    #[arg(long, env = "BURNIN_PREFETCH", value_name = "N", default_value_t = 256,
          value_parser = clap::value_parser!(u16).range(1..))]
    prefetch: u16,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum ReplyQueueType {
    Classic,
    Quorum,
}

impl EdgeBrokerArgs {
    /// The reply queue's name.
    pub(crate) fn reply_queue(&self) -> &str {
        &self.reply_queue
    }

    /// The adapter configuration, named `connection_name` unless
    /// `--connection-name` says otherwise, checked by
    /// [`AmqpConfig::validate`]; the error names the flag. `--amqp-url` is
    /// not required by clap: `scan --edge-url` needs no broker.
    pub(crate) fn config(&self, connection_name: &str) -> Result<AmqpConfig, String> {
        let mut c = self.common.config(connection_name, &self.reply_queue)?;
        c.reply_queue_type = match self.reply_queue_type {
            ReplyQueueType::Classic => QueueType::Classic,
            ReplyQueueType::Quorum => QueueType::Quorum,
        };
        c.prefetch = self.prefetch;
        // An edge is started by hand or by systemd: say soon that the
        // broker cannot be reached.
        c.connect_timeout = std::time::Duration::from_secs(5);
        Ok(c)
    }
}
