//! The broker flags both binaries take, defined once.

use std::path::PathBuf;

use burnin_amqp::{AmqpConfig, DEFAULT_EXCHANGE};

/// How to reach RabbitMQ: the broker's URLs, its CA, the exchange scan
/// commands travel on and the connection's name. Flatten it into a
/// command's flags (`#[command(flatten)]`); [`BrokerArgs::config`] turns it
/// into a checked [`AmqpConfig`].
#[derive(Debug, Clone, clap::Args)]
#[command(next_help_heading = "Broker")]
pub struct BrokerArgs {
    /// RabbitMQ URL, `amqp://USER:PASSWORD@HOST:5672/VHOST` or `amqps://…`
    /// for TLS. For a cluster give every node (repeat the flag, or a comma
    /// list in the variable; percent-encode a comma in a password as %2C):
    /// they are tried in random order and failed over. The password is
    /// never logged.
    #[arg(
        long,
        env = "BURNIN_AMQP_URL",
        value_name = "URL",
        hide_env_values = true,
        value_delimiter = ','
    )]
    pub amqp_url: Vec<String>,

    /// PEM file with the CA that signed the broker's certificate (`amqps://`
    /// with a private CA); added to the system's trusted roots.
    #[arg(long, env = "BURNIN_AMQP_CA_FILE", value_name = "FILE")]
    pub amqp_ca_file: Option<PathBuf>,

    /// The fanout exchange scan commands travel on (the edge publishes to
    /// it, agents bind their queues to it).
    #[arg(long, env = "BURNIN_EXCHANGE", value_name = "NAME", default_value = DEFAULT_EXCHANGE)]
    pub exchange: String,

    /// The name this process gives its broker connection, as `rabbitmqctl
    /// list_connections name` and the management UI show it (default:
    /// `burnin-agent SERIAL`, or `burnin-edge HOST` and what it runs).
    #[arg(long, env = "BURNIN_AMQP_CONNECTION_NAME", value_name = "NAME")]
    pub connection_name: Option<String>,
}

impl BrokerArgs {
    /// The adapter configuration, named `default_name` unless
    /// `--connection-name` is given, with the reply queue `reply_queue`;
    /// checked by [`AmqpConfig::validate`] (URL, names, CA file). The error
    /// names the flag and never the password.
    ///
    /// # Errors
    /// No `--amqp-url`, or what [`AmqpConfig::validate`] refuses.
    pub fn config(&self, default_name: &str, reply_queue: &str) -> Result<AmqpConfig, String> {
        if self.amqp_url.iter().all(|u| u.trim().is_empty()) {
            return Err(
                "--amqp-url URL is required (or BURNIN_AMQP_URL): the broker, \
                 amqp://USER:PASSWORD@HOST:5672/VHOST"
                    .into(),
            );
        }
        let mut c = AmqpConfig::cluster(self.amqp_url.iter().cloned());
        c.exchange.clone_from(&self.exchange);
        reply_queue.clone_into(&mut c.reply_queue);
        c.ca_file.clone_from(&self.amqp_ca_file);
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

/// This machine's host name, for connection names and the edge's identity.
pub fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "unknown-host".into())
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        broker: BrokerArgs,
    }

    #[test]
    fn the_connection_name_flag_replaces_the_default() {
        let cli = Cli::try_parse_from(["x", "--amqp-url", "amqp://u:p@h:5672/v"]).unwrap();
        let c = cli.broker.config("burnin-agent S1", "q").unwrap();
        assert_eq!(c.connection_name.as_deref(), Some("burnin-agent S1"));
        assert_eq!(c.reply_queue, "q");
        assert_eq!(c.exchange, DEFAULT_EXCHANGE);
        let cli = Cli::try_parse_from([
            "x",
            "--amqp-url",
            "amqp://u:p@h:5672/v",
            "--connection-name",
            "harness-7",
        ])
        .unwrap();
        let c = cli.broker.config("burnin-agent S1", "q").unwrap();
        assert_eq!(c.connection_name.as_deref(), Some("harness-7"));
    }

    #[test]
    fn no_url_is_an_error_naming_the_flag() {
        let cli = Cli::try_parse_from(["x"]).unwrap();
        let e = cli.broker.config("n", "q").unwrap_err();
        assert!(e.contains("--amqp-url"), "{e}");
    }
}
