//! The body of a request to start a scan (`POST /scans` of `burnin-edge
//! serve`, SPEC §7), parsed and validated into [`OperationParams`].
//!
//! ```
//! use burnin_core::request::parse_scan_request;
//! let p = parse_scan_request(br#"{"operationId": 42, "expected": ["Q186I15901"]}"#, "hwinfo_queue").unwrap();
//! assert_eq!(p.expected.len(), 1);
//! assert!(parse_scan_request(br#"{"operationId": 42, "windowSecs": 0}"#, "hwinfo_queue")
//!     .unwrap_err().to_string().starts_with("field windowSecs"));
//! ```
//!
//! Unknown fields are refused (a typo such as `windowsecs` must not be
//! silently ignored); `expected` serials are deduplicated, first position
//! kept; the window defaults to 30 s and must be 1 s to [`MAX_WINDOW`];
//! `requireLink` (SPEC §10.1, a boolean) defaults to `false`, or to the
//! server's setting ([`parse_scan_request_with`]).

use std::time::Duration;

use serde::Deserialize;

use crate::{OperationId, OperationParams, SerialNumber, Target};

/// The longest collection window accepted (one hour).
pub const MAX_WINDOW: Duration = Duration::from_secs(3600);
/// The largest request body accepted, in bytes (2 MiB: 20,000 serials of
/// the longest kind, 64 bytes, with their quotes and commas take 1.4 MB).
pub const MAX_REQUEST_BYTES: usize = 2 * 1024 * 1024;
/// The longest operator id accepted, in bytes.
pub const MAX_OPERATOR: usize = 128;

/// A request body that cannot start a scan.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RequestError {
    /// A field is missing, of the wrong type or out of range.
    #[error("field {field}: {message}")]
    Field {
        /// The JSON path of the field, e.g. `windowSecs`, `expected[2]`.
        field: String,
        /// What is wrong and what to give.
        message: String,
    },
    /// The body is not a JSON object of the documented shape, or too large.
    #[error("bad request body: {0}")]
    Body(String),
}

fn field(field: &str, message: impl Into<String>) -> RequestError {
    RequestError::Field {
        field: field.to_owned(),
        message: message.into(),
    }
}

/// The body of `POST /scans`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct ScanRequest {
    operation_id: OperationId,
    operator_id: Option<String>,
    scan_mode: Option<i64>,
    target: Option<Target>,
    expected: Option<Vec<SerialNumber>>,
    window_secs: Option<u64>,
    require_link: Option<bool>,
    rescan: Option<bool>,
    require_clock: Option<bool>,
    settle_ms: Option<u64>,
    clock_tolerance_secs: Option<u64>,
    mes_outage_wait_secs: Option<u64>,
    require_cabling: Option<bool>,
    require_pcie_width: Option<bool>,
}

/// Largest `settleMs` a request may ask for.
pub const MAX_SETTLE: Duration = Duration::from_secs(60);
/// Largest `mesOutageWaitSecs` a request may ask for.
pub const MAX_MES_OUTAGE_WAIT: Duration = Duration::from_secs(24 * 3600);

/// Parses and validates a start-scan body; replies will go to `reply_queue`.
pub fn parse_scan_request(body: &[u8], reply_queue: &str) -> Result<OperationParams, RequestError> {
    parse_scan_request_with(body, reply_queue, false)
}

/// [`parse_scan_request`] for a server whose operations require link unless
/// a body says otherwise: `requireLink` absent means `require_link_default`
/// (`burnin-edge serve --require-link`).
pub fn parse_scan_request_with(
    body: &[u8],
    reply_queue: &str,
    require_link_default: bool,
) -> Result<OperationParams, RequestError> {
    let mut defaults = OperationParams::new(OperationId::Number(0));
    defaults.reply_to = reply_queue.to_owned();
    defaults.require_link = require_link_default;
    parse_scan_request_from(body, &defaults)
}

/// [`parse_scan_request`] with the edge's defaults taken from `defaults`
/// (its operation id is ignored): the reply queue, the edge's cabling
/// plan, and the rules and timings a request does not set (`requireLink`,
/// `requireClock`, `requireCabling`, `requirePcieWidth`, `settleMs`,
/// `clockToleranceSecs`, `mesOutageWaitSecs`). `rescan` is
/// `false` unless the request sets it.
///
/// # Errors
/// As [`parse_scan_request`]; out-of-range timings name their field.
pub fn parse_scan_request_from(
    body: &[u8],
    defaults: &OperationParams,
) -> Result<OperationParams, RequestError> {
    if body.len() > MAX_REQUEST_BYTES {
        return Err(RequestError::Body(format!(
            "{} bytes; the limit is {MAX_REQUEST_BYTES}",
            body.len()
        )));
    }
    let mut de = serde_json::Deserializer::from_slice(body);
    let req: ScanRequest = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner().to_string();
        if path == "." || path.is_empty() {
            RequestError::Body(inner)
        } else {
            field(&path, inner)
        }
    })?;
    de.end().map_err(|e| RequestError::Body(e.to_string()))?;
    let window = match req.window_secs {
        None => Duration::from_secs(30),
        Some(s) if s == 0 || s > MAX_WINDOW.as_secs() => {
            return Err(field(
                "windowSecs",
                format!("{s} is out of range; give 1 to {}", MAX_WINDOW.as_secs()),
            ));
        }
        Some(s) => Duration::from_secs(s),
    };
    if let Some(op) = &req.operator_id
        && (op.is_empty() || op.len() > MAX_OPERATOR || op.chars().any(char::is_control))
    {
        return Err(field(
            "operatorId",
            format!("give 1 to {MAX_OPERATOR} characters without control characters"),
        ));
    }
    let target = req.target.unwrap_or_default();
    if target == Target::DirectBurn && req.operator_id.is_none() {
        return Err(field(
            "operatorId",
            "target \"directBurn\" needs operatorId (sent in directBurn)",
        ));
    }
    let mut seen = std::collections::HashSet::new();
    let mut expected: Vec<SerialNumber> = req.expected.unwrap_or_default();
    expected.retain(|sn| seen.insert(sn.clone()));
    let bounded =
        |name: &str, value: Option<u64>, unit: Duration, max: Duration, default| match value {
            None => Ok(default),
            Some(v) => {
                let d = unit.saturating_mul(u32::try_from(v).unwrap_or(u32::MAX));
                if d > max {
                    Err(field(
                        name,
                        format!(
                            "{v} is out of range; give 0 to {}",
                            max.as_nanos() / unit.as_nanos()
                        ),
                    ))
                } else {
                    Ok(d)
                }
            }
        };
    let mut p = OperationParams::new(req.operation_id);
    p.operator_id = req.operator_id;
    p.scan_mode = req.scan_mode;
    p.target = target;
    p.expected = expected;
    p.window = window;
    p.reply_to = defaults.reply_to.clone();
    p.require_link = req.require_link.unwrap_or(defaults.require_link);
    p.require_clock = req.require_clock.unwrap_or(defaults.require_clock);
    p.require_cabling = req.require_cabling.unwrap_or(defaults.require_cabling);
    p.require_pcie_width = req
        .require_pcie_width
        .unwrap_or(defaults.require_pcie_width);
    p.cabling = defaults.cabling.clone();
    p.rescan = req.rescan.unwrap_or(false);
    p.settle = bounded(
        "settleMs",
        req.settle_ms,
        Duration::from_millis(1),
        MAX_SETTLE,
        defaults.settle,
    )?;
    p.clock_tolerance = bounded(
        "clockToleranceSecs",
        req.clock_tolerance_secs,
        Duration::from_secs(1),
        Duration::from_secs(7 * 24 * 3600),
        defaults.clock_tolerance,
    )?;
    p.mes_outage_wait = bounded(
        "mesOutageWaitSecs",
        req.mes_outage_wait_secs,
        Duration::from_secs(1),
        MAX_MES_OUTAGE_WAIT,
        defaults.mes_outage_wait,
    )?;
    Ok(p)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(body: &str) -> Result<OperationParams, String> {
        parse_scan_request(body.as_bytes(), "hwinfo_queue").map_err(|e| e.to_string())
    }

    #[test]
    fn a_full_request_parses() {
        let p = parse(
            r#"{"operationId": "B-7", "operatorId": "op", "scanMode": 2, "target": "directBurn",
                "expected": ["A", "B", "A"], "windowSecs": 5}"#,
        )
        .unwrap();
        assert_eq!(p.operation_id, OperationId::text("B-7").unwrap());
        assert_eq!(p.target, Target::DirectBurn);
        assert_eq!(p.expected.len(), 2);
        assert_eq!(p.window, Duration::from_secs(5));
        let p = parse(r#"{"operationId": 42}"#).unwrap();
        assert_eq!(p.operation_id, OperationId::Number(42));
        assert_eq!(p.window, Duration::from_secs(30));
        assert_eq!(p.target, Target::Pair);
        assert!(!p.require_link);
        assert!(
            parse(r#"{"operationId": 42, "requireLink": true}"#)
                .unwrap()
                .require_link
        );
        let p = parse(
            r#"{"operationId": 42, "rescan": true, "requireClock": true, "settleMs": 0,
                "clockToleranceSecs": 30, "mesOutageWaitSecs": 120}"#,
        )
        .unwrap();
        assert!(p.rescan && p.require_clock);
        assert_eq!(p.settle, Duration::ZERO);
        assert_eq!(p.clock_tolerance, Duration::from_secs(30));
        assert_eq!(p.mes_outage_wait, Duration::from_secs(120));
        let e = parse(r#"{"operationId": 42, "settleMs": 60001}"#).unwrap_err();
        assert_eq!(e, "field settleMs: 60001 is out of range; give 0 to 60000");
        let e = parse(r#"{"operationId": 42, "mesOutageWaitSecs": 86401}"#).unwrap_err();
        assert_eq!(
            e,
            "field mesOutageWaitSecs: 86401 is out of range; give 0 to 86400"
        );
        assert!(
            !parse(r#"{"operationId": 42, "requireLink": false}"#)
                .unwrap()
                .require_link
        );
        // A server default applies only where the body is silent.
        let with = |body: &str| {
            parse_scan_request_with(body.as_bytes(), "q", true)
                .unwrap()
                .require_link
        };
        assert!(with(r#"{"operationId": 42}"#));
        assert!(!with(r#"{"operationId": 42, "requireLink": false}"#));
    }

    #[test]
    fn bad_requests_name_the_field() {
        for (body, needle) in [
            (r#"{}"#, "operationId"),
            (r#"{"operationId": 1, "windowSecs": 0}"#, "windowSecs"),
            (r#"{"operationId": 1, "windowSecs": 3601}"#, "windowSecs"),
            (r#"{"operationId": 1, "target": "burn"}"#, "target"),
            (
                r#"{"operationId": 1, "expected": ["has space"]}"#,
                "expected",
            ),
            (r#"{"operationId": -1}"#, "operationId"),
            (r#"{"operationId": ""}"#, "operationId"),
            (r#"{"operationId": 1, "windowsecs": 5}"#, "windowsecs"),
            (r#"{"operationId": 1, "requireLink": "yes"}"#, "requireLink"),
            (r#"{"operationId": 1, "requirelink": true}"#, "requirelink"),
            (
                r#"{"operationId": 1, "target": "directBurn"}"#,
                "operatorId",
            ),
            ("not json", "bad request body"),
        ] {
            let e = parse(body).unwrap_err();
            assert!(e.contains(needle), "{body}: {e}");
        }
    }

    #[test]
    fn oversize_and_trailing_bodies_are_refused() {
        let big = format!(
            r#"{{"operationId": 1, "operatorId": "{}"}}"#,
            "x".repeat(MAX_REQUEST_BYTES)
        );
        assert!(parse(&big).unwrap_err().starts_with("bad request body"));
        assert!(parse(r#"{"operationId": 1} {}"#).is_err());
    }
}
