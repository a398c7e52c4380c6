//! The MES source: `GET --mes-url` with the serial in place of `{sn}`.

use std::sync::Arc;
use std::time::SystemTime;

use async_trait::async_trait;
use burnin_core::{Mac, MesAnswer, MesError, MesSource, SerialNumber};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use reqwest::header::{self, HeaderMap, HeaderValue};
use reqwest::{Method, StatusCode};
use serde::Deserialize;
use url::Url;

use crate::config::{HttpConfig, HttpError, MAX_MES_BODY, SN_PLACEHOLDER};
use crate::engine::{Engine, Failure, Request};
use crate::limit::Limiter;

/// Everything but the RFC 3986 unreserved characters is percent-encoded.
const SERIAL: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// Percent-encodes a serial number for any position in a URL: every byte
/// outside `A-Z a-z 0-9 - . _ ~` becomes `%XX`.
///
/// ```
/// assert_eq!(burnin_http::encode_serial("A/B%+?#"), "A%2FB%25%2B%3F%23");
/// assert_eq!(burnin_http::encode_serial("Q186I15901"), "Q186I15901");
/// ```
pub fn encode_serial(sn: &str) -> String {
    utf8_percent_encode(sn, SERIAL).to_string()
}

/// [`MesSource`] over HTTP. Cheap to clone; clones share the connection
/// pool and the adaptive concurrency limit.
///
/// * `200` with `{"sn": "<the serial asked>", "macs": ["<MAC>", ...]}` →
///   [`MesAnswer::Record`] (MACs in any form of SPEC §3, in MES order;
///   other fields are ignored).
/// * `404` → [`MesAnswer::Unknown`].
/// * Another serial, a body that is not that JSON, a bad MAC, a body over
///   1 MiB, a 4xx other than 404/429 or a redirect →
///   [`MesError::BadAnswer`] (asking again will not help).
/// * Connect errors, timeouts, 429 and 5xx still failing after the retries
///   → [`MesError::Unavailable`].
///
/// At most [`concurrency_limit`](Self::concurrency_limit) requests are in
/// flight; further lookups wait for a slot (first come, first served), so
/// callers may start thousands at once. The limit starts at
/// [`HttpConfig::mes_concurrency`] and adapts to how MES answers, within
/// `1 ..= `[`HttpConfig::mes_concurrency_max`]; see *Adaptive concurrency*
/// in the [crate docs](crate).
#[derive(Debug, Clone)]
pub struct HttpMesSource {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    engine: Engine,
    template: String,
    /// Whether `{sn}` is in the path (where `.` and `..` would be resolved away).
    in_path: bool,
    slots: Limiter,
}

#[derive(Deserialize)]
struct Record {
    sn: String,
    macs: Vec<String>,
}

impl HttpMesSource {
    /// Creates the source (its own HTTP client and bound).
    ///
    /// # Errors
    /// [`HttpError::Client`] if the TLS client cannot be set up.
    pub fn new(config: &HttpConfig) -> Result<Self, HttpError> {
        let prefix = config
            .mes_template
            .split(SN_PLACEHOLDER)
            .next()
            .unwrap_or_default();
        Ok(HttpMesSource {
            inner: Arc::new(Inner {
                engine: Engine::new(
                    config,
                    config.mes_token.as_deref().or(config.token.as_deref()),
                    if config.mes_token.is_some() {
                        "--mes-token"
                    } else {
                        "--factory-token"
                    },
                )?,
                template: config.mes_template.clone(),
                in_path: !prefix.contains(['?', '#']),
                slots: Limiter::new(config.mes_concurrency, config.mes_concurrency_max),
            }),
        })
    }

    /// The current limit on MES requests in flight (for the
    /// `burnin_mes_concurrency_limit` gauge and `scan --json`).
    pub fn concurrency_limit(&self) -> usize {
        self.inner.slots.limit()
    }

    /// MES requests in flight now (the `burnin_mes_in_flight` gauge).
    pub fn in_flight(&self) -> usize {
        self.inner.slots.in_flight()
    }

    /// The URL looked up for `sn` (not redacted: it is what is sent).
    ///
    /// # Errors
    /// [`MesError::BadAnswer`] when the serial cannot be placed in the URL:
    /// `.` or `..` as a path segment would be resolved away by any HTTP
    /// client (RFC 3986 §5.2.4), asking MES for a different resource.
    pub fn url_for(&self, sn: &SerialNumber) -> Result<Url, MesError> {
        let encoded = encode_serial(sn.as_str());
        let bad = |message: String| MesError::BadAnswer {
            sn: sn.clone(),
            message,
        };
        if self.inner.in_path && (encoded == "." || encoded == "..") {
            return Err(bad(format!(
                "the serial {sn:?} cannot be sent in a URL path (it is a dot segment, \
                 which HTTP clients resolve away); put {{sn}} in the query of --mes-url \
                 (e.g. ?sn={{sn}}) to look it up"
            )));
        }
        let raw = self.inner.template.replace(SN_PLACEHOLDER, &encoded);
        Url::parse(&raw).map_err(|e| {
            bad(format!(
                "the MES URL {} does not parse: {e}",
                crate::redact_url(&raw)
            ))
        })
    }
}

/// What one MES lookup got, with the server's clock
/// ([`HttpMesSource::lookup_dated`]).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct DatedAnswer {
    /// The record, or unknown (404).
    pub answer: MesAnswer,
    /// The server's clock, from the `Date` header of the answer.
    pub server_date: Option<SystemTime>,
}

impl HttpMesSource {
    /// [`lookup`](MesSource::lookup), also returning the server's `Date`
    /// header (`burnin-edge check` compares it with the local clock).
    ///
    /// # Errors
    /// As [`lookup`](MesSource::lookup).
    pub async fn lookup_dated(&self, sn: &SerialNumber) -> Result<DatedAnswer, MesError> {
        let url = self.url_for(sn)?;
        let mut headers = HeaderMap::new();
        headers.insert(header::ACCEPT, HeaderValue::from_static("application/json"));
        let answer = self
            .inner
            .engine
            .execute(Request {
                method: Method::GET,
                url: &url,
                headers,
                body: None,
                body_limit: Some(MAX_MES_BODY),
                not_found_is_answer: true,
                idempotent: false,
                in_flight: Some(&self.inner.slots),
            })
            .await
            .map_err(|f| match f {
                Failure::Exhausted(message) => MesError::Unavailable {
                    sn: sn.clone(),
                    message,
                },
                Failure::Final(message) => MesError::BadAnswer {
                    sn: sn.clone(),
                    message,
                },
            })?;
        let server_date = answer.date;
        if answer.status == StatusCode::NOT_FOUND {
            return Ok(DatedAnswer {
                answer: MesAnswer::Unknown,
                server_date,
            });
        }
        parse_record(sn, &answer.body)
            .map(|macs| DatedAnswer {
                answer: MesAnswer::Record(macs),
                server_date,
            })
            .map_err(|problem| MesError::BadAnswer {
                sn: sn.clone(),
                message: self.inner.engine.scrub(format!(
                    "GET {}: HTTP {}, {problem}",
                    crate::redact::redact(&url),
                    answer.status
                )),
            })
    }
}

#[async_trait]
impl MesSource for HttpMesSource {
    async fn lookup(&self, sn: &SerialNumber) -> Result<MesAnswer, MesError> {
        self.lookup_dated(sn).await.map(|d| d.answer)
    }
}

/// Checks a 200 body; the error names the problem.
///
/// Public (hidden) only so the fuzz targets (`fuzz/`, `burnin-fuzz-replay`)
/// run the real parser; not part of the supported API.
#[doc(hidden)]
pub fn parse_record(sn: &SerialNumber, body: &[u8]) -> Result<Vec<Mac>, String> {
    let record: Record = serde_json::from_slice(body).map_err(|e| {
        format!("the body is not the MES JSON {{\"sn\": \"...\", \"macs\": [\"<MAC>\", ...]}}: {e}")
    })?;
    if record.sn != sn.as_str() {
        let hint = if record.sn.eq_ignore_ascii_case(sn.as_str()) {
            "serials are matched exactly, case included: MES must echo the serial as asked"
        } else {
            "check the MES URL template"
        };
        return Err(format!(
            "the record is for serial {:?}, not {:?}; {hint}",
            truncate(&record.sn),
            sn.as_str()
        ));
    }
    record
        .macs
        .iter()
        .enumerate()
        .map(|(i, m)| Mac::parse(m).map_err(|e| format!("macs[{i}] is not a MAC address: {e}")))
        .collect()
}

/// At most 64 characters of untrusted text.
fn truncate(s: &str) -> String {
    match s.char_indices().nth(64) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sn(s: &str) -> SerialNumber {
        s.parse().unwrap()
    }

    #[test]
    fn encodes_every_reserved_character() {
        assert_eq!(encode_serial("A/B%+?#"), "A%2FB%25%2B%3F%23");
        assert_eq!(encode_serial("a-b.c_d~e"), "a-b.c_d~e");
        assert_eq!(
            encode_serial("{}[]&=;:@!$'()*,\"<>\\^`|"),
            "%7B%7D%5B%5D%26%3D%3B%3A%40%21%24%27%28%29%2A%2C%22%3C%3E%5C%5E%60%7C"
        );
    }

    #[test]
    fn urls_keep_the_encoding() {
        let cfg = HttpConfig::builder("http://mes/api/{sn}/info", "http://f/l", "http://f/n")
            .build()
            .unwrap();
        let m = HttpMesSource::new(&cfg).unwrap();
        assert_eq!(
            m.url_for(&sn("A/B%+?#")).unwrap().as_str(),
            "http://mes/api/A%2FB%25%2B%3F%23/info"
        );
        let e = m.url_for(&sn("..")).unwrap_err();
        assert!(e.to_string().contains("dot segment"), "{e}");
        assert!(m.url_for(&sn("...")).is_ok());

        let cfg = HttpConfig::builder("http://mes/api?sn={sn}", "http://f/l", "http://f/n")
            .build()
            .unwrap();
        let m = HttpMesSource::new(&cfg).unwrap();
        assert_eq!(
            m.url_for(&sn("..")).unwrap().as_str(),
            "http://mes/api?sn=.."
        );
        assert_eq!(
            m.url_for(&sn("a&b=c")).unwrap().as_str(),
            "http://mes/api?sn=a%26b%3Dc"
        );
    }

    #[test]
    fn record_parsing() {
        let s = sn("Q1");
        let macs = parse_record(
            &s,
            br#"{"sn":"Q1","macs":["E0-18-7D-2E-CA-68","e018.7d2e.ca69"],"extra":1}"#,
        )
        .unwrap();
        assert_eq!(macs[0].to_string(), "e0:18:7d:2e:ca:68");
        assert_eq!(macs[1].to_string(), "e0:18:7d:2e:ca:69");
        assert!(
            parse_record(&s, br#"{"sn":"Q2","macs":[]}"#)
                .unwrap_err()
                .contains(r#"serial "Q2", not "Q1""#)
        );
        assert!(
            parse_record(&s, br#"{"sn":"Q1","macs":["e0:18","x"]}"#)
                .unwrap_err()
                .contains("macs[0]")
        );
        assert!(
            parse_record(&s, b"<html>")
                .unwrap_err()
                .contains("not the MES JSON")
        );
        assert!(
            parse_record(&s, br#"{"sn":"Q1"}"#)
                .unwrap_err()
                .contains("missing field `macs`")
        );
        let long = format!(r#"{{"sn":"{}","macs":[]}}"#, "x".repeat(1000));
        assert!(parse_record(&s, long.as_bytes()).unwrap_err().len() < 300);
    }
}
