//! Configuration: the FACTORY flags of SPEC §7, validated once at start-up.

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use burnin_core::PayloadKind;
use url::Url;

use crate::redact::redact;

/// The placeholder the MES URL template must contain.
pub const SN_PLACEHOLDER: &str = "{sn}";

/// Default per-request timeout (`--http-timeout`).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);
/// Default number of attempts per request (the first one included; the
/// edge's `--http-retries` counts the retries after it, default 4).
pub const DEFAULT_ATTEMPTS: u32 = 5;
/// Default starting limit on MES requests in flight (`--mes-concurrency`);
/// the limit then adapts (see the crate docs).
pub const DEFAULT_MES_CONCURRENCY: usize = 64;
/// Default ceiling of the adaptive MES limit (`--mes-concurrency-max`).
pub const DEFAULT_MES_CONCURRENCY_MAX: usize = 256;
/// Default first backoff step (the jitter range before the second attempt).
pub const DEFAULT_BACKOFF_BASE: Duration = Duration::from_millis(200);
/// Default largest backoff step.
pub const DEFAULT_BACKOFF_CAP: Duration = Duration::from_secs(5);
/// Default largest wait honoured from a `Retry-After` header.
pub const DEFAULT_RETRY_AFTER_CAP: Duration = Duration::from_secs(30);
/// Largest MES body accepted (SPEC §8: network input is size-limited).
pub const MAX_MES_BODY: usize = 1024 * 1024;
/// Largest 2xx body of a factory POST that is read to judge delivery
/// (a larger one is refused: an acknowledgement is short).
pub const MAX_FACTORY_BODY: usize = 1024 * 1024;

/// A configuration that cannot be used. Raised at construction, before the
/// first device is looked up.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum HttpError {
    /// The MES URL template has no `{sn}`.
    #[error(
        "MES URL template {template} has no {{sn}} placeholder; \
         put {{sn}} where the serial number goes, e.g. http://mes/api/device_info/{{sn}}"
    )]
    MissingPlaceholder {
        /// The template (redacted).
        template: String,
    },
    /// A URL does not parse or is not `http`/`https`.
    #[error("{flag} {url} is not a usable URL: {reason}; give an absolute http:// or https:// URL")]
    InvalidUrl {
        /// The flag the URL came from, e.g. `--log-url`.
        flag: &'static str,
        /// The URL (redacted).
        url: String,
        /// What is wrong.
        reason: String,
    },
    /// A numeric or textual setting is out of range.
    #[error("{setting} is invalid: {reason}")]
    InvalidSetting {
        /// The setting, e.g. `--http-retries`.
        setting: &'static str,
        /// What is wrong and what to give instead.
        reason: String,
    },
    /// The HTTP client could not be created (TLS set-up).
    #[error("cannot create the HTTP client: {0}")]
    Client(String),
}

/// Validated settings for [`HttpMesSource`](crate::HttpMesSource) and
/// [`HttpReporter`](crate::HttpReporter). Build it with
/// [`HttpConfig::builder`].
///
/// `Debug` never shows the token, and every URL it shows is redacted.
#[derive(Clone)]
pub struct HttpConfig {
    pub(crate) mes_template: String,
    pub(crate) log_url: Url,
    pub(crate) notify_url: Url,
    pub(crate) pair_url: Option<Url>,
    pub(crate) direct_burn_url: Option<Url>,
    pub(crate) token: Option<String>,
    pub(crate) mes_token: Option<String>,
    /// `--http-ca-file`: the file and the certificates read from it.
    pub(crate) ca: Option<(PathBuf, Vec<reqwest::Certificate>)>,
    pub(crate) timeout: Duration,
    pub(crate) attempts: u32,
    pub(crate) mes_concurrency: usize,
    pub(crate) mes_concurrency_max: usize,
    pub(crate) backoff_base: Duration,
    pub(crate) backoff_cap: Duration,
    pub(crate) retry_after_cap: Duration,
}

impl fmt::Debug for HttpConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpConfig")
            .field("mes_template", &crate::redact_url(&self.mes_template))
            .field("log_url", &redact(&self.log_url))
            .field("notify_url", &redact(&self.notify_url))
            .field("pair_url", &self.pair_url.as_ref().map(redact))
            .field(
                "direct_burn_url",
                &self.direct_burn_url.as_ref().map(redact),
            )
            .field("token", &self.token.as_ref().map(|_| crate::redact::MASK))
            .field(
                "mes_token",
                &self.mes_token.as_ref().map(|_| crate::redact::MASK),
            )
            .field(
                "ca_file",
                &self
                    .ca
                    .as_ref()
                    .map(|(p, certs)| (p.display().to_string(), certs.len())),
            )
            .field("timeout", &self.timeout)
            .field("attempts", &self.attempts)
            .field("mes_concurrency", &self.mes_concurrency)
            .field("mes_concurrency_max", &self.mes_concurrency_max)
            .field("backoff_base", &self.backoff_base)
            .field("backoff_cap", &self.backoff_cap)
            .field("retry_after_cap", &self.retry_after_cap)
            .finish()
    }
}

impl HttpConfig {
    /// Starts a configuration from the three required FACTORY flags:
    /// `--mes-url` (a template containing `{sn}`), `--log-url` and
    /// `--notify-url`. Nothing is checked until [`HttpConfigBuilder::build`].
    pub fn builder(
        mes_url_template: impl Into<String>,
        log_url: impl Into<String>,
        notify_url: impl Into<String>,
    ) -> HttpConfigBuilder {
        HttpConfigBuilder {
            mes_template: mes_url_template.into(),
            log_url: log_url.into(),
            notify_url: notify_url.into(),
            pair_url: None,
            direct_burn_url: None,
            token: None,
            mes_token: None,
            ca_file: None,
            timeout: DEFAULT_TIMEOUT,
            attempts: DEFAULT_ATTEMPTS,
            mes_concurrency: DEFAULT_MES_CONCURRENCY,
            mes_concurrency_max: DEFAULT_MES_CONCURRENCY_MAX,
            backoff_base: DEFAULT_BACKOFF_BASE,
            backoff_cap: DEFAULT_BACKOFF_CAP,
            retry_after_cap: DEFAULT_RETRY_AFTER_CAP,
        }
    }

    /// The per-request timeout.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// Attempts per request (the first try included).
    pub fn attempts(&self) -> u32 {
        self.attempts
    }

    /// The longest one request may take, retries included: every attempt
    /// running into the timeout, and the longest wait before each retry
    /// (the backoff cap, or the `Retry-After` cap if larger). With the
    /// defaults: 5 × 10 s + 4 × 30 s = 170 s.
    pub fn request_budget(&self) -> Duration {
        let waits = self.attempts.saturating_sub(1);
        self.timeout.saturating_mul(self.attempts).saturating_add(
            self.backoff_cap
                .max(self.retry_after_cap)
                .saturating_mul(waits),
        )
    }

    /// The limit on MES requests in flight the adaptive limiter starts
    /// at (at most [`mes_concurrency_max`](Self::mes_concurrency_max)).
    pub fn mes_concurrency(&self) -> usize {
        self.mes_concurrency
    }

    /// The ceiling of the adaptive MES limit.
    pub fn mes_concurrency_max(&self) -> usize {
        self.mes_concurrency_max
    }

    /// The URL a payload kind is posted to, if configured.
    pub fn url_for(&self, kind: PayloadKind) -> Option<&Url> {
        match kind {
            PayloadKind::Log => Some(&self.log_url),
            PayloadKind::Notify => Some(&self.notify_url),
            PayloadKind::Pair => self.pair_url.as_ref(),
            PayloadKind::DirectBurn => self.direct_burn_url.as_ref(),
        }
    }
}

/// Builder for [`HttpConfig`]; every setting has the SPEC default.
#[derive(Clone)]
#[must_use]
pub struct HttpConfigBuilder {
    mes_template: String,
    log_url: String,
    notify_url: String,
    pair_url: Option<String>,
    direct_burn_url: Option<String>,
    token: Option<String>,
    mes_token: Option<String>,
    ca_file: Option<PathBuf>,
    timeout: Duration,
    attempts: u32,
    mes_concurrency: usize,
    mes_concurrency_max: usize,
    backoff_base: Duration,
    backoff_cap: Duration,
    retry_after_cap: Duration,
}

impl fmt::Debug for HttpConfigBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpConfigBuilder")
            .field("mes_template", &crate::redact_url(&self.mes_template))
            .field("token", &self.token.as_ref().map(|_| crate::redact::MASK))
            .field(
                "mes_token",
                &self.mes_token.as_ref().map(|_| crate::redact::MASK),
            )
            .finish_non_exhaustive()
    }
}

impl HttpConfigBuilder {
    /// `--pair-url`: where Pair payloads go. Without it, delivering a Pair
    /// payload is refused.
    pub fn pair_url(mut self, url: impl Into<String>) -> Self {
        self.pair_url = Some(url.into());
        self
    }

    /// `--direct-burn-url`: where directBurn payloads go. Without it,
    /// delivering a directBurn payload is refused.
    pub fn direct_burn_url(mut self, url: impl Into<String>) -> Self {
        self.direct_burn_url = Some(url.into());
        self
    }

    /// `--factory-token`: sent as `Authorization: Bearer <token>` on every
    /// factory POST, and on the MES GETs too unless a
    /// [`mes_token`](Self::mes_token) is given. Never logged.
    pub fn token(mut self, token: impl Into<String>) -> Self {
        self.token = Some(token.into());
        self
    }

    /// `--mes-token`: sent as `Authorization: Bearer <token>` on the MES
    /// GETs instead of the factory token (which then goes to the factory
    /// POSTs only). Never logged.
    pub fn mes_token(mut self, token: impl Into<String>) -> Self {
        self.mes_token = Some(token.into());
        self
    }

    /// `--http-ca-file`: a PEM file of one or more CA certificates trusted
    /// for `https://` MES and factory URLs, in addition to the system's
    /// roots (a private CA). Read and checked by [`build`](Self::build).
    pub fn ca_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.ca_file = Some(path.into());
        self
    }

    /// `--http-timeout`: the limit for one attempt, from connecting to the
    /// last body byte (default 10 s).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Attempts per request, the first one included (default 5; at least
    /// 1). The edge's `--http-retries N` counts retries: it gives `N + 1`.
    pub fn attempts(mut self, attempts: u32) -> Self {
        self.attempts = attempts;
        self
    }

    /// `--mes-concurrency`: the MES requests in flight the adaptive limit
    /// starts at (default 64; at least 1; lowered to the ceiling if above
    /// it).
    pub fn mes_concurrency(mut self, start: usize) -> Self {
        self.mes_concurrency = start;
        self
    }

    /// `--mes-concurrency-max`: the adaptive limit never goes above this
    /// (default 256; at least 1).
    pub fn mes_concurrency_max(mut self, max: usize) -> Self {
        self.mes_concurrency_max = max;
        self
    }

    /// The backoff schedule: before attempt `n + 1` the wait is a random
    /// duration in `[0, min(cap, base × 2^(n-1))]` (full jitter). Defaults
    /// 200 ms and 5 s.
    pub fn backoff(mut self, base: Duration, cap: Duration) -> Self {
        self.backoff_base = base;
        self.backoff_cap = cap;
        self
    }

    /// The longest `Retry-After` honoured (default 30 s); a server asking
    /// for more is retried after this long.
    pub fn retry_after_cap(mut self, cap: Duration) -> Self {
        self.retry_after_cap = cap;
        self
    }

    /// Checks every setting.
    ///
    /// # Errors
    /// [`HttpError::MissingPlaceholder`] if the MES template has no `{sn}`,
    /// [`HttpError::InvalidUrl`] for a URL that does not parse or is not
    /// http(s), [`HttpError::InvalidSetting`] for a zero timeout, attempt
    /// count or concurrency bound, or a token that cannot be sent in a
    /// header.
    pub fn build(self) -> Result<HttpConfig, HttpError> {
        if !self.mes_template.contains(SN_PLACEHOLDER) {
            return Err(HttpError::MissingPlaceholder {
                template: crate::redact_url(&self.mes_template),
            });
        }
        // Check the template with a harmless serial in place.
        parse_url(
            "--mes-url",
            &self.mes_template.replace(SN_PLACEHOLDER, "sn"),
        )?;
        let log_url = parse_url("--log-url", &self.log_url)?;
        let notify_url = parse_url("--notify-url", &self.notify_url)?;
        let pair_url = self
            .pair_url
            .as_deref()
            .map(|u| parse_url("--pair-url", u))
            .transpose()?;
        let direct_burn_url = self
            .direct_burn_url
            .as_deref()
            .map(|u| parse_url("--direct-burn-url", u))
            .transpose()?;
        check_token("--factory-token", self.token.as_deref())?;
        check_token("--mes-token", self.mes_token.as_deref())?;
        let ca = self
            .ca_file
            .as_deref()
            .map(|p| read_ca_file(p).map(|certs| (p.to_owned(), certs)))
            .transpose()?;
        if self.timeout.is_zero() {
            return Err(invalid(
                "--http-timeout",
                "it is 0; give a duration such as 10s",
            ));
        }
        if self.attempts == 0 {
            return Err(invalid(
                "--http-retries",
                "it is 0 attempts; give at least 1 (--http-retries 0 is one attempt, no retry)",
            ));
        }
        if self.mes_concurrency == 0 {
            return Err(invalid(
                "--mes-concurrency",
                "it is 0; give the number of MES requests to start with in flight, at least 1 (default 64)",
            ));
        }
        if self.mes_concurrency_max == 0 {
            return Err(invalid(
                "--mes-concurrency-max",
                "it is 0; give the most MES requests ever allowed in flight, at least 1 (default 256)",
            ));
        }
        if self.backoff_cap < self.backoff_base {
            return Err(invalid(
                "backoff",
                format!(
                    "the cap {:?} is below the base {:?}; give a cap at least as large as the base",
                    self.backoff_cap, self.backoff_base
                ),
            ));
        }
        Ok(HttpConfig {
            mes_template: self.mes_template,
            log_url,
            notify_url,
            pair_url,
            direct_burn_url,
            token: self.token,
            mes_token: self.mes_token,
            ca,
            timeout: self.timeout,
            attempts: self.attempts,
            mes_concurrency: self.mes_concurrency.min(self.mes_concurrency_max),
            mes_concurrency_max: self.mes_concurrency_max,
            backoff_base: self.backoff_base,
            backoff_cap: self.backoff_cap,
            retry_after_cap: self.retry_after_cap,
        })
    }
}

/// A token must be non-empty and fit in a header; the error never echoes it.
fn check_token(setting: &'static str, token: Option<&str>) -> Result<(), HttpError> {
    let Some(token) = token else { return Ok(()) };
    if token.is_empty() {
        return Err(invalid(
            setting,
            "it is empty; give the token or leave the flag out",
        ));
    }
    if reqwest::header::HeaderValue::from_str(&format!("Bearer {token}")).is_err() {
        return Err(invalid(
            setting,
            "it contains characters that cannot be sent in an HTTP header \
             (control characters or non-ASCII); check the value",
        ));
    }
    Ok(())
}

/// Reads the PEM certificates of `--http-ca-file`; at least one is needed.
fn read_ca_file(path: &Path) -> Result<Vec<reqwest::Certificate>, HttpError> {
    let bad = |reason: String| invalid("--http-ca-file", reason);
    let pem = std::fs::read(path).map_err(|e| {
        bad(format!(
            "{} cannot be read: {e}; give a readable PEM file with the CA certificate",
            path.display()
        ))
    })?;
    let certs = reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| {
        bad(format!(
            "{} is not a PEM certificate bundle ({e}); give the CA certificate in PEM form \
             (-----BEGIN CERTIFICATE-----)",
            path.display()
        ))
    })?;
    if certs.is_empty() {
        return Err(bad(format!(
            "{} holds no certificate; give the CA certificate in PEM form \
             (-----BEGIN CERTIFICATE-----)",
            path.display()
        )));
    }
    Ok(certs)
}

fn invalid(setting: &'static str, reason: impl Into<String>) -> HttpError {
    HttpError::InvalidSetting {
        setting,
        reason: reason.into(),
    }
}

fn parse_url(flag: &'static str, raw: &str) -> Result<Url, HttpError> {
    let err = |reason: String| HttpError::InvalidUrl {
        flag,
        url: crate::redact_url(raw),
        reason,
    };
    let url = Url::parse(raw).map_err(|e| err(e.to_string()))?;
    match url.scheme() {
        "http" | "https" => {}
        other => return Err(err(format!("the scheme is {other}:"))),
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(err("it has no host".into()));
    }
    Ok(url)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base() -> HttpConfigBuilder {
        HttpConfig::builder("http://mes/api/{sn}", "http://f/log", "http://f/notify")
    }

    #[test]
    fn defaults() {
        let c = base().build().unwrap();
        assert_eq!(c.timeout(), Duration::from_secs(10));
        assert_eq!(c.attempts(), 5);
        assert_eq!(c.mes_concurrency(), 64);
        assert_eq!(c.mes_concurrency_max(), 256);
        let low = base().mes_concurrency_max(16).build().unwrap();
        assert_eq!(
            low.mes_concurrency(),
            16,
            "the start is lowered to the ceiling"
        );
        assert!(c.url_for(PayloadKind::Pair).is_none());
        assert_eq!(
            c.url_for(PayloadKind::Log).unwrap().as_str(),
            "http://f/log"
        );
    }

    #[test]
    fn template_without_placeholder_is_rejected() {
        let e = HttpConfig::builder(
            "http://u:pw@mes/api/device_info/",
            "http://f/l",
            "http://f/n",
        )
        .build()
        .unwrap_err();
        assert!(matches!(e, HttpError::MissingPlaceholder { .. }));
        let text = e.to_string();
        assert!(text.contains("http://***@mes/api/device_info/"), "{text}");
        assert!(text.contains("{sn}"), "{text}");
        assert!(!text.contains("pw"), "{text}");
    }

    #[test]
    fn bad_urls_and_settings_are_named() {
        let e = HttpConfig::builder("http://mes/{sn}", "ftp://f/log", "http://f/n")
            .build()
            .unwrap_err();
        assert!(
            e.to_string()
                .starts_with("--log-url ftp://f/log is not a usable URL"),
            "{e}"
        );
        let e = base().pair_url("nope").build().unwrap_err();
        assert!(e.to_string().contains("--pair-url <invalid URL>"), "{e}");
        let c = base().build().unwrap();
        assert_eq!(c.request_budget(), Duration::from_secs(170));
        let c = base()
            .attempts(1)
            .timeout(Duration::from_secs(2))
            .build()
            .unwrap();
        assert_eq!(c.request_budget(), Duration::from_secs(2));
        let e = base().attempts(0).build().unwrap_err();
        assert!(e.to_string().contains("--http-retries"), "{e}");
        let e = base().timeout(Duration::ZERO).build().unwrap_err();
        assert!(e.to_string().contains("--http-timeout"), "{e}");
        let e = base().mes_concurrency(0).build().unwrap_err();
        assert!(
            e.to_string().contains("--mes-concurrency is invalid"),
            "{e}"
        );
        let e = base().mes_concurrency_max(0).build().unwrap_err();
        assert!(
            e.to_string().contains("--mes-concurrency-max is invalid"),
            "{e}"
        );
        let e = base().token("se\ncret").build().unwrap_err();
        assert!(!e.to_string().contains("se\ncret"), "{e}");
    }

    #[test]
    fn debug_hides_the_token() {
        let c = base().token("hunter2").build().unwrap();
        let d = format!("{c:?}");
        assert!(!d.contains("hunter2"), "{d}");
        assert!(d.contains("***"), "{d}");
        assert!(!format!("{:?}", base().token("hunter2")).contains("hunter2"));
    }
}
