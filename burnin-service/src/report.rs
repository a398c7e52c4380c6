//! The JSON documents `scan --json` prints and the API answers with.
//!
//! * A device: `{"sn", "result": "0"|"1", "macinfo": [{"interface",
//!   "macaddr", "scanstatus"}], "findings"?: [{"kind", "interface"?,
//!   "message"}], "details"?: ["…"]}` ([`device_json`]): `macinfo` as in
//!   the log payload; `findings` (SPEC §10.1: MAC overridden by software, a
//!   card with no driver, a MAC another device reported, requireLink) and
//!   `details` (why the device has its result, in the words the table, the
//!   API and the page use: [`burnin_core::live::details`]) only when there
//!   are some.
//! * An operation's report: `{"operationId", "state", "devices": [...],
//!   "replies": {"accepted", "duplicate", "conflict", "rejected", "redelivered"},
//!   "error"?}` ([`report_json`]).
//!
//! **`replies`** counts the reply messages this operation handled, as the
//! edge saw them (field names are stable; tools such as the load harness's
//! fault checker read them):
//!
//! | field | counts |
//! | --- | --- |
//! | `accepted` | replies recorded: one per serial |
//! | `duplicate` | further replies from a serial that had already replied (acked, counted, the first stands) |
//! | `rejected` | replies moved to the rejected queue (did not parse, too large, or named another operation) |
//! | `redelivered` | replies the broker flagged as delivered before (an earlier delivery was not acked, e.g. a lost connection), whatever their outcome — each is also in one of the three above |
//!
//! So `accepted + duplicate + rejected` is every reply message handled, and
//! `redelivered` is how many of those the broker had handed over before.

use burnin_core::DeviceResult;
use burnin_core::edge::OperationReport;
use serde_json::{Value, json};

/// One device as `scan --json` and the API show it: `{"sn", "result",
/// "macinfo", "findings"?, "details"?}`.
pub fn device_json(d: &DeviceResult) -> Value {
    let mut doc = json!({
        "sn": d.sn,
        "result": d.result.as_str(),
        "macinfo": d.macinfo,
    });
    if let Some(map) = doc.as_object_mut() {
        if !d.findings.is_empty() {
            map.insert("findings".into(), json!(d.findings));
        }
        let details = burnin_core::live::details(d);
        if !details.is_empty() {
            map.insert("details".into(), json!(details));
        }
    }
    doc
}

/// The `scan --json` document: `{"operationId", "state", "devices": [...],
/// "replies": {...}, "error"?}` (see the [module docs](self)).
pub fn report_json(report: &OperationReport) -> Value {
    let devices: Vec<_> = report.devices.iter().map(device_json).collect();
    let c = &report.counters;
    let mut doc = json!({
        "operationId": report.operation_id,
        "state": report.state.as_str(),
        "devices": devices,
        "replies": {
            "accepted": c.accepted,
            "duplicate": c.duplicates,
            "conflict": c.conflicts,
            "rejected": c.rejected,
            "redelivered": c.redelivered,
        },
    });
    if let (Some(e), Some(map)) = (&report.error, doc.as_object_mut()) {
        map.insert("error".into(), e.clone().into());
    }
    doc
}

#[cfg(test)]
mod tests {
    use burnin_core::operation::Counters;
    use burnin_core::{OperationId, OperationState, Timestamp};

    use super::*;

    #[test]
    fn the_report_names_every_reply_count() {
        let t = Timestamp::from_unix_seconds(1_800_000_000);
        let report = OperationReport {
            operation_id: OperationId::Number(5),
            state: OperationState::Failed,
            devices: vec![],
            error: Some("the broker closed".into()),
            counters: Counters {
                accepted: 7,
                duplicates: 2,
                conflicts: 1,
                rejected: 1,
                redelivered: 3,
                mes_done: 7,
            },
            expected: 0,
            started: t,
            collected: t,
            finished: t,
        };
        assert_eq!(
            report_json(&report),
            json!({
                "operationId": 5,
                "state": "failed",
                "devices": [],
                "replies": {"accepted": 7, "duplicate": 2, "conflict": 1, "rejected": 1, "redelivered": 3},
                "error": "the broker closed",
            })
        );
    }
}
