//! The FACTORY flags (SPEC §7): HTTP endpoints, or a MES file and an output
//! folder. Shared by `scan` and `serve`.

use std::path::PathBuf;
use std::time::Duration;

use burnin_core::{FactoryReporter, MesSource, Target};
use burnin_http::{HttpConfig, HttpMesSource, HttpReporter};
use burnin_local::{FileMes, OutDirReporter};
use burnin_service::Bounds;

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

/// The factory adapters, built and checked.
pub(crate) struct Factory {
    pub(crate) mes: Box<dyn MesSource>,
    /// The HTTP MES source again (a clone sharing its limit), to read the
    /// adaptive concurrency limit; `None` with `--mes-file`.
    pub(crate) mes_http: Option<HttpMesSource>,
    pub(crate) reporter: Box<dyn FactoryReporter>,
    /// Where payloads go, for the user (redacted URLs or the folder).
    pub(crate) describe: String,
    /// How long each lookup and delivery may take (the HTTP retry budget).
    pub(crate) bounds: Bounds,
}

impl FactoryArgs {
    /// Builds the adapters for `target`; the error names the flag and the fix.
    pub(crate) fn build(&self, target: Target) -> Result<Factory, String> {
        let factory = self.build_any()?;
        self.check_target(target)?;
        Ok(factory)
    }

    /// Whether payloads for `target` have somewhere to go; the error names
    /// the missing flag.
    pub(crate) fn check_target(&self, target: Target) -> Result<(), String> {
        if self.out_dir.is_some() {
            return Ok(());
        }
        match target {
            Target::Pair if self.pair_url.is_none() => {
                Err("--target pair needs --pair-url URL (or use --target direct-burn)".into())
            }
            Target::DirectBurn if self.direct_burn_url.is_none() => {
                Err("--target direct-burn needs --direct-burn-url URL".into())
            }
            _ => Ok(()),
        }
    }

    /// Builds the adapters without choosing a target (`serve`: each
    /// operation names its own; see [`check_target`](Self::check_target)).
    pub(crate) fn build_any(&self) -> Result<Factory, String> {
        match (&self.mes_file, &self.out_dir) {
            (Some(file), Some(dir)) => {
                let mes = FileMes::load(file).map_err(|e| e.to_string())?;
                let reporter = OutDirReporter::new(dir).map_err(|e| e.to_string())?;
                return Ok(Factory {
                    describe: format!("MES file {}, payloads to {}", file.display(), dir.display()),
                    mes: Box::new(mes),
                    mes_http: None,
                    reporter: Box::new(reporter),
                    bounds: Bounds::default(),
                });
            }
            (Some(_), None) => {
                return Err(
                    "--mes-file needs --out-dir DIR (where the payloads are written)".into(),
                );
            }
            (None, Some(_)) => {
                return Err(
                    "--out-dir needs --mes-file FILE (the MES records to compare with)".into(),
                );
            }
            (None, None) => {}
        }
        let (config, mes_url, log_url) = self.http_config(self.http_retries + 1)?;
        let mes = HttpMesSource::new(&config).map_err(|e| e.to_string())?;
        let reporter = HttpReporter::new(&config).map_err(|e| e.to_string())?;
        Ok(Factory {
            describe: format!(
                "MES {}, log {}",
                burnin_http::redact_url(mes_url).replace("%7Bsn%7D", "{sn}"),
                burnin_http::redact_url(log_url)
            ),
            mes: Box::new(mes.clone()),
            mes_http: Some(mes),
            reporter: Box::new(reporter),
            bounds: Bounds::for_http(config.request_budget()),
        })
    }

    /// What `check` probes: the adapters, over HTTP with one attempt per
    /// request (a check should answer in seconds), or the files.
    pub(crate) fn probes(&self) -> Result<Probes, String> {
        match (&self.mes_file, &self.out_dir) {
            (Some(file), Some(dir)) => Ok(Probes::Files {
                mes: FileMes::load(file).map_err(|e| e.to_string()),
                mes_file: file.clone(),
                out_dir: dir.clone(),
            }),
            (None, None) => {
                let (config, mes_url, _) = self.http_config(1)?;
                Ok(Probes::Http {
                    mes: HttpMesSource::new(&config).map_err(|e| e.to_string())?,
                    reporter: HttpReporter::new(&config).map_err(|e| e.to_string())?,
                    mes_url: burnin_http::redact_url(mes_url).replace("%7Bsn%7D", "{sn}"),
                })
            }
            // The same messages as for scan and serve.
            _ => Err(self
                .build_any()
                .err()
                .unwrap_or_else(|| "give --mes-file and --out-dir together".into())),
        }
    }

    /// The HTTP configuration with `attempts` per request, and the MES
    /// and log URLs as given; the error names the missing flag.
    fn http_config(&self, attempts: u32) -> Result<(HttpConfig, &str, &str), String> {
        let (Some(mes_url), Some(log_url), Some(notify_url)) =
            (&self.mes_url, &self.log_url, &self.notify_url)
        else {
            let missing: Vec<&str> = [
                ("--mes-url", self.mes_url.is_none()),
                ("--log-url", self.log_url.is_none()),
                ("--notify-url", self.notify_url.is_none()),
            ]
            .into_iter()
            .filter_map(|(f, m)| m.then_some(f))
            .collect();
            return Err(format!(
                "no factory configured: missing {}; give --mes-url, --log-url and --notify-url \
                 (and --pair-url or --direct-burn-url), or --mes-file and --out-dir",
                missing.join(", ")
            ));
        };
        let mut b = HttpConfig::builder(mes_url, log_url, notify_url)
            .timeout(self.http_timeout)
            .attempts(attempts)
            .mes_concurrency(self.mes_concurrency as usize)
            .mes_concurrency_max(self.mes_concurrency_max as usize);
        if let Some(u) = &self.pair_url {
            b = b.pair_url(u);
        }
        if let Some(u) = &self.direct_burn_url {
            b = b.direct_burn_url(u);
        }
        if let Some(t) = &self.factory_token {
            b = b.token(t);
        }
        if let Some(t) = &self.mes_token {
            b = b.mes_token(t);
        }
        if let Some(f) = &self.http_ca_file {
            b = b.ca_file(f);
        }
        let config = b.build().map_err(|e| e.to_string())?;
        Ok((config, mes_url, log_url))
    }
}

/// What `burnin-edge check` probes (see [`FactoryArgs::probes`]).
pub(crate) enum Probes {
    /// MES and the factory APIs over HTTP.
    Http {
        mes: HttpMesSource,
        reporter: HttpReporter,
        /// `--mes-url`, redacted.
        mes_url: String,
    },
    /// `--mes-file` and `--out-dir`.
    Files {
        /// The file loaded, or why it could not be.
        mes: Result<FileMes, String>,
        mes_file: PathBuf,
        out_dir: PathBuf,
    },
}
