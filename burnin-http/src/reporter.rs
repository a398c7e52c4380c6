//! The factory reporter: POSTs the log, Pair, directBurn and notification.

use std::sync::Arc;

use async_trait::async_trait;
use burnin_core::{FactoryReporter, Payload, PayloadKind, ReportError};
use reqwest::Method;
use reqwest::header::{self, HeaderMap, HeaderName, HeaderValue};

use crate::config::{HttpConfig, HttpError};
use crate::engine::{Engine, Failure, Request};

/// The `Idempotency-Key` header.
pub const IDEMPOTENCY_KEY: HeaderName = HeaderName::from_static("idempotency-key");

/// [`FactoryReporter`] over HTTP. Cheap to clone.
///
/// Each payload is POSTed as-is to its URL with `Content-Type:
/// application/json`, `Idempotency-Key: <operationId>:<kind>` and, with a
/// token, `Authorization: Bearer <token>`. Any 2xx is delivery; the
/// response body is ignored.
///
/// * A kind without a configured URL (`--pair-url`, `--direct-burn-url`),
///   a 4xx other than 429, or a redirect → [`ReportError::Refused`].
/// * Connect errors, timeouts, 429 and 5xx still failing after the retries
///   → [`ReportError::Unavailable`] (delivering again later may succeed;
///   the `Idempotency-Key` makes that safe).
#[derive(Debug, Clone)]
pub struct HttpReporter {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    engine: Engine,
    config: HttpConfig,
}

impl HttpReporter {
    /// Creates the reporter (its own HTTP client).
    ///
    /// # Errors
    /// [`HttpError::Client`] if the TLS client cannot be set up.
    pub fn new(config: &HttpConfig) -> Result<Self, HttpError> {
        Ok(HttpReporter {
            inner: Arc::new(Inner {
                engine: Engine::new(config)?,
                config: config.clone(),
            }),
        })
    }
}

fn flag(kind: PayloadKind) -> &'static str {
    match kind {
        PayloadKind::Log => "--log-url",
        PayloadKind::Pair => "--pair-url",
        PayloadKind::DirectBurn => "--direct-burn-url",
        PayloadKind::Notify => "--notify-url",
    }
}

#[async_trait]
impl FactoryReporter for HttpReporter {
    async fn deliver(&self, payload: &Payload) -> Result<(), ReportError> {
        let kind = payload.kind;
        let Some(url) = self.inner.config.url_for(kind) else {
            return Err(ReportError::Refused {
                kind,
                message: format!(
                    "no URL is configured for {kind} payloads; set {} (BURNIN_{}) \
                     or choose the other target",
                    flag(kind),
                    flag(kind)
                        .trim_start_matches("--")
                        .replace('-', "_")
                        .to_uppercase()
                ),
            });
        };
        let mut headers = HeaderMap::new();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        let key = payload.idempotency_key();
        let key = HeaderValue::from_str(&key).map_err(|_| ReportError::Refused {
            kind,
            message: format!(
                "the Idempotency-Key {key:?} cannot be sent in an HTTP header; \
                 use an operation id of printable ASCII"
            ),
        })?;
        headers.insert(IDEMPOTENCY_KEY, key);
        self.inner
            .engine
            .execute(Request {
                method: Method::POST,
                url,
                headers,
                body: Some(&payload.body),
                body_limit: None,
                not_found_is_answer: false,
                in_flight: None,
            })
            .await
            .map(|_| ())
            .map_err(|f| match f {
                Failure::Exhausted(message) => ReportError::Unavailable { kind, message },
                Failure::Final(message) => ReportError::Refused { kind, message },
            })
    }
}
