//! # burnin-http
//!
//! The factory side of burnin over HTTP (SPEC §5): the MES lookups
//! ([`HttpMesSource`], a [`burnin_core::MesSource`]) and the four factory
//! POSTs ([`HttpReporter`], a [`burnin_core::FactoryReporter`]).
//!
//! ## Design overview
//!
//! burnin-core decides *what* to look up and *what* to post; this crate
//! only moves bytes. Both adapters are built from one validated
//! [`HttpConfig`] (the FACTORY flags of SPEC §7) and share one engine: a
//! reqwest client (rustls, no OpenSSL, no system proxy), a per-attempt
//! timeout, the retry loop below, and error messages with redacted URLs.
//! They never panic on network input: every answer is size-limited and
//! validated, and what is wrong comes back as the core's error enums
//! ([`burnin_core::MesError`], [`burnin_core::ReportError`]), whose
//! `is_retryable()` tells a passing fault from a final one.
//!
//! * **MES**: `GET` the template with `{sn}` replaced by the serial,
//!   percent-encoded with [`encode_serial`] (everything outside
//!   `A-Z a-z 0-9 - . _ ~`, so `A/B%+?#` is sent as `A%2FB%25%2B%3F%23`).
//!   200 → the record, 404 → unknown device; see [`HttpMesSource`].
//!   The requests in flight are bounded by an **adaptive limit** inside
//!   the source (see below), so the edge may start a lookup for every
//!   reply as it arrives.
//! * **Reporter**: `POST` the payload body as-is, with `Content-Type:
//!   application/json` and the payload's
//!   [`idempotency_key`](burnin_core::Payload::idempotency_key) as
//!   `Idempotency-Key`; see [`HttpReporter`] and *Factory contract* below.
//! * With a token, requests carry `Authorization: Bearer <token>` (marked
//!   sensitive in reqwest): the factory token
//!   ([`HttpConfigBuilder::token`], `--factory-token`) on the POSTs, the
//!   MES token ([`HttpConfigBuilder::mes_token`], `--mes-token`) on the MES
//!   GETs — or the factory token there too when no MES token is given (as
//!   before the MES token existed).
//! * `https://` URLs are verified against the system's roots plus, with
//!   [`HttpConfigBuilder::ca_file`] (`--http-ca-file`), a private CA.
//!
//! ## Getting started
//!
//! ```no_run
//! use std::time::Duration;
//! use burnin_core::{FactoryReporter, MesAnswer, MesSource, OperationId, payload};
//! use burnin_http::{HttpConfig, HttpMesSource, HttpReporter};
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let config = HttpConfig::builder(
//!     "http://mes.factory/api/device_info/{sn}",
//!     "http://factory/api/deviceScan",
//!     "http://factory/api/notify",
//! )
//! .pair_url("http://factory/api/pair")
//! .token("s3cret")
//! .timeout(Duration::from_secs(10))
//! .attempts(5)
//! .build()?; // a template without {sn} fails here, not at the first device
//!
//! let mes = HttpMesSource::new(&config)?;
//! match mes.lookup(&"Q186I15901".parse()?).await? {
//!     MesAnswer::Record(macs) => println!("MES lists {} cards", macs.len()),
//!     MesAnswer::Unknown => println!("MES does not know this device"),
//! }
//!
//! let reporter = HttpReporter::new(&config)?;
//! reporter.deliver(&payload::notify(&OperationId::Number(7), &[], None)).await?;
//! # Ok(())
//! # }
//! ```
//!
//! ## Retry policy
//!
//! Every request (GET and POST) is tried up to [`HttpConfig::attempts`]
//! times (default 5, the first try included; the edge's `--http-retries N`
//! counts the retries, so it gives `N + 1`). Each
//! attempt — from connecting to the last body byte — is limited by
//! `--http-timeout` (default 10 s).
//!
//! | outcome of an attempt | what happens |
//! | --- | --- |
//! | 2xx (MES: also 404) | an answer, judged by the adapter (see *Factory contract*) |
//! | connect error, timeout, connection lost mid-answer | retried |
//! | 429, 5xx | retried; `Retry-After` honoured (see below) |
//! | 409 to a factory POST ("still processing this key") | retried; `Retry-After` honoured |
//! | 422 to a factory POST ("key reused with another body") | final at once (`Refused`), never retried |
//! | other 4xx, 3xx | final at once (`BadAnswer` / `Refused`) |
//! | 2xx body over 1 MiB | final at once (`BadAnswer` / `Refused`) |
//!
//! Before attempt `n + 1` the engine waits a random duration in
//! `[0, min(cap, base × 2^(n−1))]` ("full jitter"; base 200 ms, cap 5 s by
//! default, see [`HttpConfigBuilder::backoff`]). Full jitter spreads the
//! retries of many edges hitting one recovering server best. When a 429 or
//! 503 answer carries `Retry-After` — delay-seconds or an HTTP-date — that
//! wait is used instead, capped at [`HttpConfigBuilder::retry_after_cap`]
//! (default 30 s) so a bad header cannot stall an operation.
//! When a 409 carries `Retry-After`, it is honoured the same way.
//! Once the attempts are used up the error is retryable
//! (`MesError::Unavailable` / `ReportError::Unavailable`): the edge may
//! deliver again later, and the `Idempotency-Key` makes that safe.
//!
//! **The total budget** of one request is bounded:
//! [`HttpConfig::request_budget`] = attempts × timeout + (attempts − 1) ×
//! max(backoff cap, `Retry-After` cap); with the defaults 5 × 10 s + 4 ×
//! 30 s = 170 s (most requests take far less: the waits are random up to
//! 5 s unless a server asks for longer). The edge bounds each lookup and
//! delivery by it.
//!
//! ## Factory contract
//!
//! What a MES or factory server must answer (also in the repository's
//! `docs/protocol.md`, "For MES and factory implementers"):
//!
//! * **Delivered** means a 2xx whose body is empty (or whitespace) or JSON
//!   that is not an object with `"success": false`. A 2xx with `"success":
//!   false` is a refusal (final, the body quoted); a 2xx whose body is not
//!   JSON — typically `200 text/html` from a proxy or a login page — is
//!   not taken as delivery either (final, naming the content type): the
//!   payload may never have reached the factory API. Neither is retried:
//!   the same request would get the same answer.
//! * **A replayed `Idempotency-Key`**: 409 means "a request with this key
//!   is still being processed" (as in the IETF Idempotency-Key draft) and
//!   is retried with the same key and body; 422 means "this key was used
//!   with another body" and is final, with a message saying so. A server
//!   that already completed a key should answer the replay as it answered
//!   the first time (a 2xx).
//! * **MES**: 200 `{"sn": "<serial>", "macs": ["<MAC>", ...]}` where `sn`
//!   equals the serial asked, exactly (case included; a record for
//!   another spelling is refused, the message says so); `"macs": []` is a
//!   device MES knows with no cards, so every card scanned on it fails
//!   (`scanstatus` "0") and the device fails. 404 is an unknown device.
//!   [`burnin_core::MesError::is_retryable`] tells an outage
//!   (`Unavailable`: connect errors, timeouts, 429, 5xx after the
//!   retries) from a bad answer (`BadAnswer`, final).
//!
//! The loop is hand-written (about 40 lines, [`fastrand`] for the jitter)
//! rather than taken from `backon`: backon's jitter adds a random amount
//! *on top of* the exponential delay instead of full jitter, a
//! `Retry-After` wait must replace the next delay, the MES concurrency slot
//! must be released while backing off, and every attempt is logged with its
//! number. The pieces that are standard come from crates: [`url`] for
//! parsing and redaction, [`percent_encoding`] for the serial, [`httpdate`]
//! for `Retry-After` dates.
//!
//! ## Adaptive concurrency
//!
//! A fixed bound leaves a strong MES idle and can still hurt a weak one, so
//! the MES limit adapts, in the style of TCP Vegas / Netflix's
//! concurrency-limits: it starts at [`HttpConfig::mes_concurrency`]
//! (`--mes-concurrency`, default 64) and, like TCP's slow start,
//! **doubles** every round trip while the latency stays at its floor.
//! When the latency rises it goes on a quarter as fast (HyStart++'s
//! conservative slow start: a busy CPU at the edge delays answers too)
//! and resumes doubling if a later round trip is as fast again; slow start
//! ends after 5 slow round trips, when MES refuses, or when the limit
//! first comes down. From then on it **grows**
//! in steps while the latency stays near the lowest seen, **shrinks** when
//! the latency rises (in proportion to the queue it implies) and
//! multiplicatively (×0.9, once per round trip) on overload — a timeout, a
//! connection failure, a 5xx or a 429 — and never goes above
//! [`HttpConfig::mes_concurrency_max`] (`--mes-concurrency-max`, default
//! 256) nor below 1. A 429 or 503 with `Retry-After` also holds the limit
//! from growing until that time (the request itself waits that long before
//! its retry). After slow start, decisions are taken once per window of
//! one round trip, at least 100 ms. The lowest latency is only the MES's
//! own if some answers did not queue, so the limiter **probes** it, as BBR
//! does: at the start, and whenever no answer was that fast for 5 s, it
//! lets at most 4 requests run for two round trips (the limit itself
//! stays; `burnin_mes_in_flight` dips). The exact rule, with its
//! constants, is documented in the source (`src/limit.rs`); the controller
//! is pure (time is passed in) and unit-tested on a simulated MES, and
//! `tests/http.rs` runs it against real stand-ins on 127.0.0.1 whose
//! latency is flat at 20 ms up to K requests in flight and rises in
//! proportion beyond (the limit settles within 25 % of K, from below and
//! from above), or that answer 429 beyond K, or that has no knee (the
//! limit reaches 256 within 5 round trips).
//!
//! Against a MES whose latency rises in proportion beyond a knee at K, the
//! limit settles about 6–12 % above K, or 1.5–3 requests above a knee
//! below 24 (a little queue is what tells it where the knee is); against one that refuses beyond K, between 0.9 K
//! and K. [`HttpMesSource::concurrency_limit`] and
//! [`HttpMesSource::in_flight`] read it (burnin-edge shows them as the
//! `burnin_mes_concurrency_limit` and `burnin_mes_in_flight` gauges and the
//! final limit in `scan --json`).
//!
//! Why a module of our own rather than a crate: the one Rust port of
//! concurrency-limits on crates.io, `congestion-limiter`, is a single 0.1.0
//! release; it has no way to honour `Retry-After`, reads the clock itself
//! (so it cannot be tested on simulated time), and is a larger dependency
//! than the ~200 lines here. The permits are a fair (FIFO) tokio
//! semaphore: growing adds permits, shrinking takes the free ones and
//! lets the rest lapse as requests end.
//!
//! ## Errors and secrets
//!
//! Error messages name the method, the URL redacted by [`redact_url`] (no
//! user info, no query values, no fragment), the status, and the first
//! ≤ 512 bytes of the body (lossy UTF-8, control characters as spaces),
//! e.g. `POST http://factory/api/pair: HTTP 400 Bad Request, body:
//! {"error":"unknown operation"}`. reqwest's own error text (which embeds
//! the full URL) is never used; only its kind and causes are. The token is
//! never logged, and any text a server echoes back is scrubbed of it before
//! it enters an error. [`HttpConfig`]'s `Debug` hides it too.
//!
//! ## Logging
//!
//! [`tracing`] events at `debug` level, one per attempt (`method`, redacted
//! `url`, `attempt`, `status` or `error`, `elapsed_ms`) and one per retry
//! (`delay_ms`). Bodies are not logged.
//!
//! ## Decisions where SPEC is silent
//!
//! * The MES concurrency limit counts requests **in flight**: a lookup
//!   holds a slot during an attempt, not while it backs off, so one slow
//!   device cannot starve the others. Every attempt is a sample for the
//!   adaptive limit; a final error (a 4xx, a bad body) counts as an answer
//!   (the server did answer), not as overload.
//! * A factory POST's 2xx is delivery only as *Factory contract* says. For
//!   MES, any 2xx is parsed as the record (`{"sn", "macs"}`; extra fields
//!   are ignored; `sn` must equal the serial asked exactly).
//! * The private CA of `--http-ca-file` is trusted **in addition to** the
//!   system's roots (reqwest's `tls_certs_merge`), so one file serves a
//!   MES behind a private CA and a factory API with a public certificate.
//! * [`HttpReporter::probe`] (`burnin-edge check`) sends `OPTIONS` — it
//!   never POSTs a payload — and [`HttpMesSource::lookup_dated`] returns
//!   the server's `Date`, so a check can compare clocks.
//! * Redirects are not followed (a 301/302 would turn a POST into a GET and
//!   could carry the token to another host); a 3xx is a final error naming
//!   the (redacted) target so the operator can configure it.
//! * `Retry-After` is honoured on 503 as well as 429 (RFC 9110 defines it
//!   for both).
//! * A serial `.` or `..` cannot be placed in a URL *path* (every client
//!   resolves dot segments away, which would ask MES for another resource),
//!   so such a lookup fails with `BadAnswer` saying to put `{sn}` in the
//!   query instead. In a query it works.
//! * Delivering a Pair or directBurn payload without its URL configured is
//!   `ReportError::Refused` naming the flag to set.
//! * User info in a URL (`http://user:pass@mes/...`) is sent as HTTP Basic
//!   credentials (reqwest's behaviour) unless a token is set: then every
//!   request carries the Bearer token only.
//! * The per-request timeout starts when the request gets its MES slot;
//!   waiting for a slot does not count against it.
//! * Requests carry `User-Agent: burnin-http/<version>`; MES GETs carry
//!   `Accept: application/json`.
//!
//! ## Crate features
//!
//! None. TLS is rustls with the aws-lc-rs provider (reqwest's `rustls`
//! feature); reqwest's system-proxy support is off.

mod config;
mod engine;
mod limit;
mod mes;
mod redact;
mod reporter;

pub use config::{
    DEFAULT_ATTEMPTS, DEFAULT_BACKOFF_BASE, DEFAULT_BACKOFF_CAP, DEFAULT_MES_CONCURRENCY,
    DEFAULT_MES_CONCURRENCY_MAX, DEFAULT_RETRY_AFTER_CAP, DEFAULT_TIMEOUT, HttpConfig,
    HttpConfigBuilder, HttpError, MAX_FACTORY_BODY, MAX_MES_BODY, SN_PLACEHOLDER,
};
#[doc(hidden)]
pub use mes::parse_record as parse_mes_record;
pub use mes::{DatedAnswer, HttpMesSource, encode_serial};
pub use redact::redact_url;
pub use reporter::{EndpointProbe, HttpReporter, IDEMPOTENCY_KEY};
