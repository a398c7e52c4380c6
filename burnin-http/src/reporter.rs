//! The factory reporter: POSTs the log, Pair, directBurn and notification.

use std::sync::Arc;
use std::time::SystemTime;

use async_trait::async_trait;
use burnin_core::{FactoryReporter, Payload, PayloadKind, ReportError};
use reqwest::Method;
use reqwest::header::{self, HeaderMap, HeaderName, HeaderValue};

use crate::config::{HttpConfig, HttpError, MAX_FACTORY_BODY};
use crate::engine::{Answer, ERROR_BODY_QUOTE, Engine, Failure, Request, quote_body};

/// The `Idempotency-Key` header.
pub const IDEMPOTENCY_KEY: HeaderName = HeaderName::from_static("idempotency-key");

/// [`FactoryReporter`] over HTTP. Cheap to clone.
///
/// Each payload is POSTed as-is to its URL with `Content-Type:
/// application/json`, the payload's
/// [`idempotency_key`](burnin_core::Payload::idempotency_key) as
/// `Idempotency-Key` and, with a token, `Authorization: Bearer <token>`.
///
/// What counts as **delivered** (the factory contract; see *Factory
/// contract* in the [crate docs](crate)): a 2xx whose body is empty
/// (whitespace only counts as empty) or JSON that is not an object with
/// `"success": false`.
///
/// * A 2xx with `{"success": false, …}`, a 2xx whose body is not JSON
///   (an HTML page: usually a proxy or login page), a 2xx body over
///   1 MiB, 422 (the key was used before with another body), a 4xx other
///   than 409/429, a redirect, or a kind without a configured URL
///   (`--pair-url`, `--direct-burn-url`) → [`ReportError::Refused`].
/// * 409 (the server is still processing this key), 429, 5xx, connect
///   errors and timeouts are retried with backoff (`Retry-After`
///   honoured on 409, 429 and 503); still failing after the retries →
///   [`ReportError::Unavailable`] (delivering again later may succeed;
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
                engine: Engine::new(config, config.token.as_deref(), "--factory-token")?,
                config: config.clone(),
            }),
        })
    }
}

/// What one `OPTIONS` request to a factory endpoint got
/// ([`HttpReporter::probe`]).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct EndpointProbe {
    /// The endpoint (redacted).
    pub url: String,
    /// The HTTP status of the answer (any status proves the server answers).
    pub status: u16,
    /// The server's clock, from its `Date` header.
    pub server_date: Option<SystemTime>,
    /// `body: …` (the first ≤ 512 bytes) or `empty body`.
    pub body: String,
}

impl HttpReporter {
    /// Whether the endpoint of `kind` answers, without posting anything:
    /// one `OPTIONS` request with the token, no retry, within the
    /// timeout (`burnin-edge check`). `None` when no URL is configured for
    /// `kind`; `Err` names what failed (connect, TLS, timeout), redacted.
    /// Any HTTP status is an answer; judging it is the caller's.
    pub async fn probe(&self, kind: PayloadKind) -> Option<Result<EndpointProbe, String>> {
        let url = self.inner.config.url_for(kind)?;
        Some(self.inner.engine.probe(url).await.map(|a| EndpointProbe {
            url: crate::redact::redact(url),
            status: a.status.as_u16(),
            server_date: a.date,
            body: a.quoted,
        }))
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
        let answer = self
            .inner
            .engine
            .execute(Request {
                method: Method::POST,
                url,
                headers,
                body: Some(&payload.body),
                body_limit: Some(MAX_FACTORY_BODY),
                not_found_is_answer: false,
                idempotent: true,
                in_flight: None,
            })
            .await
            .map_err(|f| match f {
                Failure::Exhausted(message) => ReportError::Unavailable { kind, message },
                Failure::Final(message) => ReportError::Refused { kind, message },
            })?;
        delivered(&answer).map_err(|problem| ReportError::Refused {
            kind,
            message: self.inner.engine.scrub(format!(
                "POST {}: HTTP {}, {problem}",
                crate::redact::redact(url),
                answer.status
            )),
        })
    }
}

/// What a delivered reply is: see [`HttpReporter`]. The error says what
/// was wrong, with the start of the body.
fn delivered(answer: &Answer) -> Result<(), String> {
    let text = answer.body.trim_ascii();
    if text.is_empty() {
        return Ok(());
    }
    let shown = &answer.body[..answer.body.len().min(ERROR_BODY_QUOTE)];
    let truncated = answer.body.len() > ERROR_BODY_QUOTE;
    match serde_json::from_slice::<serde_json::Value>(text) {
        Ok(doc) => {
            if doc.get("success") == Some(&serde_json::Value::Bool(false)) {
                Err(format!(
                    "but its JSON says \"success\": false, so the payload was not taken \
                     (not retried; the server's reason should be in the body), {}",
                    quote_body(shown, truncated)
                ))
            } else {
                Ok(())
            }
        }
        Err(_) => {
            let ctype = answer.content_type.as_deref().unwrap_or("none given");
            let hint = if ctype.to_ascii_lowercase().contains("html") {
                "an HTML page in answer to a POST is usually a proxy or login page, not the \
                 factory API: check the URL and any proxy between"
            } else {
                "the endpoint must answer with an empty body or JSON"
            };
            Err(format!(
                "but the body is not JSON (content type {ctype}), so delivery is not \
                 confirmed (not retried); {hint}; {}",
                quote_body(shown, truncated)
            ))
        }
    }
}
