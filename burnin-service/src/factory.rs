//! The factory a service talks to: MES and the four payload endpoints
//! over HTTP, or a MES file and an output folder (SPEC §7's FACTORY
//! flags), as plain configuration ([`FactoryConfig`]) that builds the
//! adapters ([`Factory`]) or `check`'s probes ([`Probes`]).
//!
//! The errors name the `burnin-edge` flag a value comes from (`--mes-url`
//! and so on), since that is where a user sets it; an embedding tool that
//! names its settings otherwise maps the words.

use std::path::PathBuf;
use std::time::Duration;

use burnin_core::{FactoryReporter, MesSource, Target};
use burnin_http::{HttpConfig, HttpMesSource, HttpReporter};
use burnin_local::{FileMes, OutDirReporter};

use crate::Bounds;

/// Where MES records come from and where payloads go: each field is the
/// `burnin-edge` flag of the same name. [`Default`] is the flags' defaults
/// (10 s per request, 4 retries, 64 lookups in flight to start, 256 at
/// most) with nothing configured.
#[derive(Clone)]
pub struct FactoryConfig {
    /// MES lookup URL template; `{sn}` is replaced by the percent-encoded serial.
    pub mes_url: Option<String>,
    /// deviceScan log endpoint (POST).
    pub log_url: Option<String>,
    /// Notification endpoint (POST).
    pub notify_url: Option<String>,
    /// Pair endpoint (POST).
    pub pair_url: Option<String>,
    /// directBurn endpoint (POST).
    pub direct_burn_url: Option<String>,
    /// `Authorization: Bearer` on every factory POST, and on MES lookups
    /// unless `mes_token` is set.
    pub factory_token: Option<String>,
    /// `Authorization: Bearer` on MES lookups.
    pub mes_token: Option<String>,
    /// A PEM CA trusted besides the system's roots.
    pub http_ca_file: Option<PathBuf>,
    /// Timeout of each HTTP request.
    pub http_timeout: Duration,
    /// Retries per request after the first attempt.
    pub http_retries: u32,
    /// MES lookups in flight to start with (the limit then adapts).
    pub mes_concurrency: u32,
    /// The most MES lookups ever in flight.
    pub mes_concurrency_max: u32,
    /// MES records from a JSON file instead of `mes_url`.
    pub mes_file: Option<PathBuf>,
    /// Payloads written to this folder instead of POSTed.
    pub out_dir: Option<PathBuf>,
}

impl Default for FactoryConfig {
    fn default() -> Self {
        FactoryConfig {
            mes_url: None,
            log_url: None,
            notify_url: None,
            pair_url: None,
            direct_burn_url: None,
            factory_token: None,
            mes_token: None,
            http_ca_file: None,
            http_timeout: Duration::from_secs(10),
            http_retries: 4,
            mes_concurrency: 64,
            mes_concurrency_max: 256,
            mes_file: None,
            out_dir: None,
        }
    }
}

/// The tokens are never shown; the URLs are redacted.
impl std::fmt::Debug for FactoryConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let url = |u: &Option<String>| u.as_deref().map(burnin_http::redact_url);
        f.debug_struct("FactoryConfig")
            .field("mes_url", &url(&self.mes_url))
            .field("log_url", &url(&self.log_url))
            .field("notify_url", &url(&self.notify_url))
            .field("pair_url", &url(&self.pair_url))
            .field("direct_burn_url", &url(&self.direct_burn_url))
            .field(
                "factory_token",
                &self.factory_token.as_ref().map(|_| "<redacted>"),
            )
            .field("mes_token", &self.mes_token.as_ref().map(|_| "<redacted>"))
            .field("mes_file", &self.mes_file)
            .field("out_dir", &self.out_dir)
            .finish_non_exhaustive()
    }
}

/// The factory adapters, built and checked.
pub struct Factory {
    /// Where MES records come from.
    pub mes: Box<dyn MesSource>,
    /// The HTTP MES source again (a clone sharing its limit), to read the
    /// adaptive concurrency limit; `None` with `--mes-file`.
    pub mes_http: Option<HttpMesSource>,
    /// Where payloads go.
    pub reporter: Box<dyn FactoryReporter>,
    /// Where payloads go, for the user (redacted URLs or the folder).
    pub describe: String,
    /// How long each lookup and delivery may take (the HTTP retry budget).
    pub bounds: Bounds,
}

impl std::fmt::Debug for Factory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Factory")
            .field("describe", &self.describe)
            .field("bounds", &self.bounds)
            .finish_non_exhaustive()
    }
}

impl FactoryConfig {
    /// Builds the adapters for `target`; the error names the flag and the fix.
    pub fn build(&self, target: Target) -> Result<Factory, String> {
        let factory = self.build_any()?;
        self.check_target(target)?;
        Ok(factory)
    }

    /// Whether payloads for `target` have somewhere to go; the error names
    /// the missing flag.
    pub fn check_target(&self, target: Target) -> Result<(), String> {
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
    pub fn build_any(&self) -> Result<Factory, String> {
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
    pub fn probes(&self) -> Result<Probes, String> {
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

/// What `burnin-edge check` probes (see [`FactoryConfig::probes`]).
pub enum Probes {
    /// MES and the factory APIs over HTTP.
    Http {
        /// MES, one attempt per lookup.
        mes: HttpMesSource,
        /// The factory endpoints, one attempt per probe.
        reporter: HttpReporter,
        /// `--mes-url`, redacted.
        mes_url: String,
    },
    /// `--mes-file` and `--out-dir`.
    Files {
        /// The file loaded, or why it could not be.
        mes: Result<FileMes, String>,
        /// `--mes-file`.
        mes_file: PathBuf,
        /// `--out-dir`.
        out_dir: PathBuf,
    },
}
