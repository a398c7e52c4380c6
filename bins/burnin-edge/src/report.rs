//! The JSON documents `scan --json` prints and the API answers with.
//!
//! * A device: `{"sn", "result": "0"|"1", "macinfo": [{"interface",
//!   "macaddr", "scanstatus"}]}` ([`device_json`]), as in the log payload.
//! * An operation's report: `{"operationId", "state", "devices": [...],
//!   "error"?}` ([`report_json`]).

use burnin_core::DeviceResult;
use burnin_core::edge::OperationReport;
use serde_json::{Value, json};

/// One device as `scan --json` and the API show it: `{"sn", "result", "macinfo"}`.
pub fn device_json(d: &DeviceResult) -> Value {
    json!({
        "sn": d.sn,
        "result": d.result.as_str(),
        "macinfo": d.macinfo,
    })
}

/// The `scan --json` document: `{"operationId", "state", "devices": [...], "error"?}`.
pub fn report_json(report: &OperationReport) -> Value {
    let devices: Vec<_> = report.devices.iter().map(device_json).collect();
    let mut doc = json!({
        "operationId": report.operation_id,
        "state": report.state.as_str(),
        "devices": devices,
    });
    if let (Some(e), Some(map)) = (&report.error, doc.as_object_mut()) {
        map.insert("error".into(), e.clone().into());
    }
    doc
}
