//! The FACTORY flags (SPEC §7): HTTP endpoints, or a MES file and an output
//! folder. Shared by `scan`, `serve` and `check`; they become a
//! [`FactoryConfig`], which builds the adapters.

use std::path::PathBuf;
use std::time::Duration;

use burnin_service::factory::FactoryConfig;

/// Where MES records come from and where payloads go.
#[derive(Debug, Clone, clap::Args)]
#[command(next_help_heading = "Factory (HTTP, or --mes-file and --out-dir)")]
pub(crate) struct FactoryArgs {
    /// MES lookup URL template; `{sn}` is replaced by the percent-encoded serial.
    #[arg(
        long,
        env = "BURNIN_MES_URL",
        value_name = "TEMPLATE",
        conflicts_with = "mes_file"
    )]
    mes_url: Option<String>,

    /// deviceScan log endpoint (POST).
    #[arg(
        long,
        env = "BURNIN_LOG_URL",
        value_name = "URL",
        conflicts_with = "out_dir"
    )]
    log_url: Option<String>,

    /// Notification endpoint (POST).
    #[arg(
        long,
        env = "BURNIN_NOTIFY_URL",
        value_name = "URL",
        conflicts_with = "out_dir"
    )]
    notify_url: Option<String>,

    /// Pair endpoint (POST); needed with `--target pair`.
    #[arg(
        long,
        env = "BURNIN_PAIR_URL",
        value_name = "URL",
        conflicts_with = "out_dir"
    )]
    pair_url: Option<String>,

    /// directBurn endpoint (POST); needed with `--target direct-burn`.
    #[arg(
        long,
        env = "BURNIN_DIRECT_BURN_URL",
        value_name = "URL",
        conflicts_with = "out_dir"
    )]
    direct_burn_url: Option<String>,

    /// Sent as `Authorization: Bearer TOKEN` on every factory POST, and on
    /// the MES lookups too unless --mes-token is given.
    #[arg(
        long,
        env = "BURNIN_FACTORY_TOKEN",
        value_name = "TOKEN",
        hide_env_values = true
    )]
    factory_token: Option<String>,

    /// Sent as `Authorization: Bearer TOKEN` on the MES lookups instead of
    /// --factory-token.
    #[arg(
        long,
        env = "BURNIN_MES_TOKEN",
        value_name = "TOKEN",
        hide_env_values = true
    )]
    mes_token: Option<String>,

    /// PEM file with the CA that signed an `https://` MES or factory
    /// server's certificate (trusted in addition to the system's roots).
    #[arg(long, env = "BURNIN_HTTP_CA_FILE", value_name = "FILE")]
    http_ca_file: Option<PathBuf>,

    /// Timeout of each HTTP request.
    #[arg(long, env = "BURNIN_HTTP_TIMEOUT", value_name = "DURATION", default_value = "10s",
          value_parser = humantime::parse_duration)]
    http_timeout: Duration,

    /// Retries per HTTP request after the first attempt (connect errors,
    /// timeouts, 429 and 5xx are retried, with backoff): 4 means up to 5
    /// attempts, 0 no retry.
    #[arg(long, env = "BURNIN_HTTP_RETRIES", value_name = "N", default_value_t = 4,
          value_parser = clap::value_parser!(u32).range(0..=100))]
    http_retries: u32,

    /// MES lookups in flight to start with. The limit then adapts: it grows
    /// while MES latency stays near its lowest, shrinks when latency rises
    /// and on timeouts, 5xx and 429 (honouring Retry-After), between 1 and
    /// --mes-concurrency-max.
    #[arg(long, env = "BURNIN_MES_CONCURRENCY", value_name = "N", default_value_t = 64,
          value_parser = clap::value_parser!(u32).range(1..=4096))]
    mes_concurrency: u32,

    /// The most MES lookups ever in flight: the adaptive limit never goes
    /// above it (a --mes-concurrency start above it is lowered to it).
    #[arg(long, env = "BURNIN_MES_CONCURRENCY_MAX", value_name = "N", default_value_t = 256,
          value_parser = clap::value_parser!(u32).range(1..=4096))]
    mes_concurrency_max: u32,

    /// MES records from a JSON file `{"<sn>": ["<mac>", ...]}` instead of `--mes-url`.
    #[arg(long, env = "BURNIN_MES_FILE", value_name = "FILE")]
    mes_file: Option<PathBuf>,

    /// Write each payload to `DIR/<op>.<kind>.json` instead of POSTing it.
    #[arg(long, env = "BURNIN_OUT_DIR", value_name = "DIR")]
    out_dir: Option<PathBuf>,
}

impl FactoryArgs {
    /// The configuration these flags give.
    pub(crate) fn config(&self) -> FactoryConfig {
        FactoryConfig {
            mes_url: self.mes_url.clone(),
            log_url: self.log_url.clone(),
            notify_url: self.notify_url.clone(),
            pair_url: self.pair_url.clone(),
            direct_burn_url: self.direct_burn_url.clone(),
            factory_token: self.factory_token.clone(),
            mes_token: self.mes_token.clone(),
            http_ca_file: self.http_ca_file.clone(),
            http_timeout: self.http_timeout,
            http_retries: self.http_retries,
            mes_concurrency: self.mes_concurrency,
            mes_concurrency_max: self.mes_concurrency_max,
            mes_file: self.mes_file.clone(),
            out_dir: self.out_dir.clone(),
        }
    }
}
