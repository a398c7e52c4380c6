//! One HTTP request with timeout, retries and redacted errors: the part the
//! MES source and the reporter share.

use std::error::Error as _;
use std::time::{Duration, Instant, SystemTime};

use reqwest::header::{self, HeaderMap, HeaderValue};
use reqwest::{Method, StatusCode};
use tracing::debug;
use url::Url;

use crate::config::{HttpConfig, HttpError};
use crate::limit::{Limiter, Sample};
use crate::redact::{MASK, Redacted, redact};

/// How much of an error body is quoted in a message.
pub(crate) const ERROR_BODY_QUOTE: usize = 512;

/// What a request may send.
pub(crate) struct Request<'a> {
    pub(crate) method: Method,
    pub(crate) url: &'a Url,
    /// Extra headers (the `Authorization` header is added by the engine).
    pub(crate) headers: HeaderMap,
    pub(crate) body: Option<&'a [u8]>,
    /// Largest 2xx body accepted (a larger one is a final failure), or
    /// `None` when the caller does not need the body.
    pub(crate) body_limit: Option<usize>,
    /// Whether 404 is an answer (MES: unknown device) rather than a failure.
    pub(crate) not_found_is_answer: bool,
    /// A POST carrying an `Idempotency-Key`: 409 ("still processing this
    /// key") is retried, 422 ("key reused with another body") is final
    /// with a message saying so.
    pub(crate) idempotent: bool,
    /// Held while an attempt is in flight (not while backing off); each
    /// attempt's outcome is reported to it.
    pub(crate) in_flight: Option<&'a Limiter>,
}

/// A response the caller has to interpret: a 2xx, or a 404 when asked for.
#[derive(Debug)]
pub(crate) struct Answer {
    pub(crate) status: StatusCode,
    pub(crate) body: Vec<u8>,
    /// The `Content-Type` header, if any and readable.
    pub(crate) content_type: Option<String>,
    /// The server's clock (`Date` header), if given.
    pub(crate) date: Option<SystemTime>,
}

/// What one `OPTIONS` request to an endpoint got (see [`Engine::probe`]).
#[derive(Debug, Clone)]
pub(crate) struct ProbeAnswer {
    pub(crate) status: StatusCode,
    pub(crate) date: Option<SystemTime>,
    /// `body: …` (the first ≤ 512 bytes) or `empty body`.
    pub(crate) quoted: String,
}

/// Why a request did not produce an [`Answer`]. Messages are redacted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Failure {
    /// Kept failing with retryable errors until the attempts ran out.
    Exhausted(String),
    /// Failed for good (a 4xx, a redirect, a body over the limit).
    Final(String),
}

/// The outcome of one attempt.
enum Attempt {
    Answer(Answer),
    Retry {
        message: String,
        retry_after: Option<Duration>,
    },
    Final(String),
}

/// The shared client and retry policy.
#[derive(Debug)]
pub(crate) struct Engine {
    client: reqwest::Client,
    authorization: Option<HeaderValue>,
    /// Every token of the configuration (a server may echo either).
    secrets: Vec<String>,
    timeout: Duration,
    attempts: u32,
    backoff_base: Duration,
    backoff_cap: Duration,
    retry_after_cap: Duration,
}

impl Engine {
    /// An engine sending `token` (from `setting`, for the error) as a
    /// Bearer token on every request.
    pub(crate) fn new(
        config: &HttpConfig,
        token: Option<&str>,
        setting: &'static str,
    ) -> Result<Self, HttpError> {
        let mut builder = reqwest::Client::builder()
            // A redirect would turn a POST into a GET and may cross hosts;
            // the factory URLs are configured, so a 3xx is reported instead.
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(config.timeout)
            .user_agent(concat!("burnin-http/", env!("CARGO_PKG_VERSION")));
        if let Some((_, certs)) = &config.ca {
            // In addition to the system's roots (rustls-platform-verifier).
            builder = builder.tls_certs_merge(certs.iter().cloned());
        }
        let client = builder
            .build()
            .map_err(|e| HttpError::Client(describe(&e)))?;
        let authorization = match token {
            Some(t) => {
                let mut v = HeaderValue::from_str(&format!("Bearer {t}")).map_err(|_| {
                    HttpError::InvalidSetting {
                        setting,
                        reason: "it cannot be sent in an HTTP header".into(),
                    }
                })?;
                v.set_sensitive(true);
                Some(v)
            }
            None => None,
        };
        Ok(Engine {
            client,
            authorization,
            secrets: [&config.token, &config.mes_token]
                .into_iter()
                .flatten()
                .cloned()
                .collect(),
            timeout: config.timeout,
            attempts: config.attempts,
            backoff_base: config.backoff_base,
            backoff_cap: config.backoff_cap,
            retry_after_cap: config.retry_after_cap,
        })
    }

    /// Replaces every token wherever it appears (a server may echo it).
    pub(crate) fn scrub(&self, mut text: String) -> String {
        for t in &self.secrets {
            if text.contains(t.as_str()) {
                text = text.replace(t.as_str(), MASK);
            }
        }
        text
    }

    /// One `OPTIONS` request to `url` (with the token), no retry, within
    /// the timeout: whether the endpoint answers at all. Any status is an
    /// answer; the error (connect, TLS, timeout) is redacted.
    pub(crate) async fn probe(&self, url: &Url) -> Result<ProbeAnswer, String> {
        let shown = redact(url);
        let attempt = async {
            let mut request = self
                .client
                .request(Method::OPTIONS, url.clone())
                .build()
                .map_err(|e| describe(&e))?;
            if let Some(auth) = &self.authorization {
                request
                    .headers_mut()
                    .insert(header::AUTHORIZATION, auth.clone());
            }
            let mut resp = self
                .client
                .execute(request)
                .await
                .map_err(|e| describe(&e))?;
            let date = server_date(resp.headers());
            let quoted = match read_limited(&mut resp, ERROR_BODY_QUOTE, false).await {
                Ok((body, truncated)) => quote_body(&body, truncated),
                Err(_) => "body unreadable".to_owned(),
            };
            Ok::<_, String>(ProbeAnswer {
                status: resp.status(),
                date,
                quoted,
            })
        };
        match tokio::time::timeout(self.timeout, attempt).await {
            Ok(Ok(a)) => Ok(a),
            Ok(Err(e)) => Err(self.scrub(format!("OPTIONS {shown}: {e}"))),
            Err(_) => Err(format!(
                "OPTIONS {shown}: no complete answer within {:?} (--http-timeout)",
                self.timeout
            )),
        }
    }

    /// Runs `req` with retries; see the crate docs for the policy.
    pub(crate) async fn execute(&self, req: Request<'_>) -> Result<Answer, Failure> {
        // Redacted only when a message shows it: the path of every MES
        // lookup that succeeds logs nothing (debug events off) and so
        // formats nothing.
        let shown = Redacted(req.url);
        let mut attempt = 1;
        loop {
            let started = Instant::now();
            let outcome = {
                let slot = match req.in_flight {
                    Some(s) => match s.acquire().await {
                        Ok(p) => Some(p),
                        Err(_) => {
                            return Err(Failure::Final("the HTTP client was shut down".into()));
                        }
                    },
                    None => None,
                };
                let outcome = match tokio::time::timeout(self.timeout, self.attempt(&req)).await {
                    Ok(outcome) => outcome,
                    Err(_) => Attempt::Retry {
                        message: format!(
                            "no complete answer within {:?} (--http-timeout)",
                            self.timeout
                        ),
                        retry_after: None,
                    },
                };
                if let Some(slot) = slot {
                    slot.finish(match &outcome {
                        Attempt::Answer(_) | Attempt::Final(_) => Sample::Answered,
                        Attempt::Retry { retry_after, .. } => Sample::Overload {
                            retry_after: retry_after.map(|d| d.min(self.retry_after_cap)),
                        },
                    });
                }
                outcome
            };
            let elapsed_ms = started.elapsed().as_millis() as u64;
            match outcome {
                Attempt::Answer(a) => {
                    debug!(method = %req.method, url = %shown, attempt, status = a.status.as_u16(), elapsed_ms, "HTTP request done");
                    return Ok(a);
                }
                Attempt::Final(message) => {
                    let message = self.scrub(format!("{} {shown}: {message}", req.method));
                    debug!(method = %req.method, url = %shown, attempt, elapsed_ms, error = %message, "HTTP request failed for good");
                    return Err(Failure::Final(message));
                }
                Attempt::Retry {
                    message,
                    retry_after,
                } => {
                    let message = self.scrub(format!("{} {shown}: {message}", req.method));
                    debug!(method = %req.method, url = %shown, attempt, elapsed_ms, error = %message, "HTTP request failed");
                    if attempt >= self.attempts {
                        return Err(Failure::Exhausted(format!(
                            "gave up after {attempt} attempt{} (--http-retries); last: {message}",
                            if attempt == 1 { "" } else { "s" }
                        )));
                    }
                    let delay = match retry_after {
                        Some(d) => d.min(self.retry_after_cap),
                        None => self.backoff(attempt),
                    };
                    debug!(method = %req.method, url = %shown, attempt, delay_ms = delay.as_millis() as u64, "retrying");
                    tokio::time::sleep(delay).await;
                    attempt += 1;
                }
            }
        }
    }

    /// Full jitter: a random wait in `[0, min(cap, base × 2^(attempt-1))]`.
    fn backoff(&self, attempt: u32) -> Duration {
        let step = self
            .backoff_base
            .saturating_mul(1u32 << (attempt - 1).min(31))
            .min(self.backoff_cap);
        let nanos = u64::try_from(step.as_nanos()).unwrap_or(u64::MAX);
        Duration::from_nanos(fastrand::u64(0..=nanos))
    }

    async fn attempt(&self, req: &Request<'_>) -> Attempt {
        let mut builder = self
            .client
            .request(req.method.clone(), req.url.clone())
            .headers(req.headers.clone());
        if let Some(body) = req.body {
            builder = builder.body(body.to_vec());
        }
        let mut request = match builder.build() {
            Ok(r) => r,
            Err(e) => return Attempt::Final(describe(&e)),
        };
        if let Some(auth) = &self.authorization {
            // Replaces the Basic credentials reqwest derives from user info
            // in the URL: the token wins.
            request
                .headers_mut()
                .insert(header::AUTHORIZATION, auth.clone());
        }
        let mut resp = match self.client.execute(request).await {
            Ok(r) => r,
            Err(e) if e.is_builder() => return Attempt::Final(describe(&e)),
            Err(e) => {
                return Attempt::Retry {
                    message: describe(&e),
                    retry_after: None,
                };
            }
        };
        let status = resp.status();
        let answer =
            status.is_success() || (status == StatusCode::NOT_FOUND && req.not_found_is_answer);
        if answer {
            let content_type = resp
                .headers()
                .get(header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned);
            let date = server_date(resp.headers());
            let Some(limit) = req.body_limit.filter(|_| status.is_success()) else {
                // The body is not needed: read a little so the connection
                // can be reused, and ignore the rest.
                let _ = read_limited(&mut resp, ERROR_BODY_QUOTE, false).await;
                return Attempt::Answer(Answer {
                    status,
                    body: Vec::new(),
                    content_type,
                    date,
                });
            };
            return match read_limited(&mut resp, limit, true).await {
                Ok((body, false)) => Attempt::Answer(Answer {
                    status,
                    body,
                    content_type,
                    date,
                }),
                Ok((_, true)) => Attempt::Final(format!(
                    "HTTP {status}: the body is larger than {limit} bytes; \
                     the server must answer with a smaller document"
                )),
                Err(e) => Attempt::Retry {
                    message: format!(
                        "HTTP {status}, then reading the body failed: {}",
                        describe(&e)
                    ),
                    retry_after: None,
                },
            };
        }
        let in_progress = req.idempotent && status == StatusCode::CONFLICT;
        let retry_after = if status == StatusCode::TOO_MANY_REQUESTS
            || status == StatusCode::SERVICE_UNAVAILABLE
            || in_progress
        {
            retry_after(resp.headers(), SystemTime::now())
        } else {
            None
        };
        let location = resp
            .headers()
            .get(header::LOCATION)
            .and_then(|v| v.to_str().ok())
            .map(|l| {
                req.url
                    .join(l)
                    .map(|u| redact(&u))
                    .unwrap_or_else(|_| "<invalid URL>".into())
            });
        let quoted = match read_limited(&mut resp, ERROR_BODY_QUOTE, false).await {
            Ok((body, truncated)) => quote_body(&body, truncated),
            Err(_) => "body unreadable".to_owned(),
        };
        if in_progress {
            Attempt::Retry {
                message: format!(
                    "HTTP {status} (the server is still processing this Idempotency-Key), {quoted}"
                ),
                retry_after,
            }
        } else if req.idempotent && status == StatusCode::UNPROCESSABLE_ENTITY {
            Attempt::Final(format!(
                "HTTP {status}: the server says this Idempotency-Key was already used with \
                 another body, so this payload was not taken (not retried: the same key \
                 would be refused again; check that no other edge or run reuses operation \
                 ids), {quoted}"
            ))
        } else if status == StatusCode::TOO_MANY_REQUESTS || status.is_server_error() {
            Attempt::Retry {
                message: format!("HTTP {status}, {quoted}"),
                retry_after,
            }
        } else if status.is_redirection() {
            Attempt::Final(format!(
                "HTTP {status} redirect to {}; redirects are not followed: configure the final URL",
                location
                    .as_deref()
                    .unwrap_or("nowhere (no Location header)")
            ))
        } else {
            Attempt::Final(format!("HTTP {status}, {quoted}"))
        }
    }
}

/// The `Date` header (RFC 9110 §6.6.1), if present and valid.
pub(crate) fn server_date(headers: &HeaderMap) -> Option<SystemTime> {
    let value = headers.get(header::DATE)?.to_str().ok()?;
    httpdate::parse_http_date(value.trim()).ok()
}

/// Reads at most `limit` bytes, streaming (never more than `limit` plus one
/// chunk in memory); `true` when the body is larger than that. With
/// `refuse_declared`, a `Content-Length` over the limit is refused unread.
async fn read_limited(
    resp: &mut reqwest::Response,
    limit: usize,
    refuse_declared: bool,
) -> Result<(Vec<u8>, bool), reqwest::Error> {
    if refuse_declared && resp.content_length().is_some_and(|n| n > limit as u64) {
        return Ok((Vec::new(), true));
    }
    let mut buf = Vec::new();
    while let Some(chunk) = resp.chunk().await? {
        let room = limit - buf.len();
        if chunk.len() > room {
            buf.extend_from_slice(&chunk[..room]);
            return Ok((buf, true));
        }
        buf.extend_from_slice(&chunk);
    }
    Ok((buf, false))
}

/// `body: <first ≤ 512 bytes, lossy UTF-8, control characters as spaces>`.
pub(crate) fn quote_body(body: &[u8], truncated: bool) -> String {
    let text: String = String::from_utf8_lossy(body)
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    let text = text.trim();
    if text.is_empty() {
        "empty body".to_owned()
    } else if truncated {
        format!("body (first {} bytes): {text}", body.len())
    } else {
        format!("body: {text}")
    }
}

/// `Retry-After` as delay-seconds or an HTTP-date (RFC 9110 §10.2.3).
pub(crate) fn retry_after(headers: &HeaderMap, now: SystemTime) -> Option<Duration> {
    let value = headers.get(header::RETRY_AFTER)?.to_str().ok()?.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = httpdate::parse_http_date(value).ok()?;
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

/// A reqwest error without its URL (which may hold credentials): what
/// failed, then the chain of causes.
pub(crate) fn describe(e: &reqwest::Error) -> String {
    let what = if e.is_connect() {
        "could not connect (is the server up and the URL right?)"
    } else if e.is_timeout() {
        "timed out"
    } else if e.is_builder() {
        "could not build the request"
    } else if e.is_body() || e.is_decode() {
        "the body could not be transferred"
    } else {
        "the request failed"
    };
    let mut text = what.to_owned();
    let mut last = String::new();
    let mut source = e.source();
    while let Some(cause) = source {
        let s = cause.to_string();
        // hyper repeats causes; keep the message short.
        if !s.is_empty() && !last.contains(&s) {
            text.push_str(": ");
            text.push_str(&s);
        }
        last = s;
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_forms() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let mut h = HeaderMap::new();
        assert_eq!(retry_after(&h, now), None);
        h.insert(header::RETRY_AFTER, HeaderValue::from_static(" 7 "));
        assert_eq!(retry_after(&h, now), Some(Duration::from_secs(7)));
        let later = httpdate::fmt_http_date(now + Duration::from_secs(12));
        h.insert(header::RETRY_AFTER, HeaderValue::from_str(&later).unwrap());
        assert_eq!(retry_after(&h, now), Some(Duration::from_secs(12)));
        let earlier = httpdate::fmt_http_date(now - Duration::from_secs(12));
        h.insert(
            header::RETRY_AFTER,
            HeaderValue::from_str(&earlier).unwrap(),
        );
        assert_eq!(retry_after(&h, now), Some(Duration::ZERO));
        h.insert(header::RETRY_AFTER, HeaderValue::from_static("soon"));
        assert_eq!(retry_after(&h, now), None);
        h.insert(header::RETRY_AFTER, HeaderValue::from_static("-3"));
        assert_eq!(retry_after(&h, now), None);
    }

    #[test]
    fn quoting() {
        assert_eq!(quote_body(b"", false), "empty body");
        assert_eq!(quote_body(b"bad\nsn\r\n", false), "body: bad sn");
        assert_eq!(
            quote_body(b"ab\xffc", true),
            "body (first 4 bytes): ab\u{fffd}c"
        );
    }

    #[test]
    fn full_jitter_stays_under_the_step() {
        let cfg = HttpConfig::builder("http://m/{sn}", "http://f/l", "http://f/n")
            .backoff(Duration::from_millis(100), Duration::from_millis(350))
            .build()
            .unwrap();
        let e = Engine::new(&cfg, cfg.token.as_deref(), "--factory-token").unwrap();
        for _ in 0..200 {
            assert!(e.backoff(1) <= Duration::from_millis(100));
            assert!(e.backoff(2) <= Duration::from_millis(200));
            assert!(e.backoff(3) <= Duration::from_millis(350));
            assert!(e.backoff(40) <= Duration::from_millis(350));
        }
        // Not constant: jitter spreads the waits.
        let waits: std::collections::HashSet<_> = (0..50).map(|_| e.backoff(3)).collect();
        assert!(waits.len() > 1);
    }

    #[test]
    fn scrub_removes_the_token() {
        let cfg = HttpConfig::builder("http://m/{sn}", "http://f/l", "http://f/n")
            .token("tok-123")
            .build()
            .unwrap();
        let e = Engine::new(&cfg, cfg.token.as_deref(), "--factory-token").unwrap();
        assert_eq!(e.scrub("echo Bearer tok-123!".into()), "echo Bearer ***!");
    }
}
