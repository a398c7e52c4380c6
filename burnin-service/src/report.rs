//! What an operation's report looks like: the result table `scan` prints
//! ([`table`]), and the JSON documents `scan --json` prints and the API
//! answers with.
//!
//! * A device: `{"sn", "result": "0"|"1", "macinfo": [{"interface",
//!   "macaddr", "scanstatus"}], "findings"?: [{"kind", "interface"?,
//!   "message"}], "details"?: ["…"], "location"?: {"place", "switch",
//!   "port", "planned"}}` ([`device_json`]): `macinfo` as in
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

use std::time::Duration;

use burnin_core::edge::OperationReport;
use burnin_core::{DeviceResult, Finding, OperationState, SerialNumber};
use serde_json::{Value, json};

/// One device as `scan --json` and the API show it: `{"sn", "result",
/// "macinfo", "findings"?, "details"?, "location"?}` (the location of SPEC
/// §11.1, when the edge's cabling plan gives one).
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
        if let Some(location) = &d.location {
            map.insert("location".into(), json!(location));
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

/// Why a device has its result, for the table: burnin-core's
/// [`details`](burnin_core::live::details) (the one wording the API and
/// the page show too), joined with `; `.
pub fn details(d: &DeviceResult) -> String {
    burnin_core::live::details(d).join("; ")
}

/// The result table.
pub fn table(report: &OperationReport) -> String {
    table_with(report, details)
}

/// The result table, with each device's details in the words `words`
/// gives (called once per device, in order).
pub fn table_with(
    report: &OperationReport,
    mut words: impl FnMut(&DeviceResult) -> String,
) -> String {
    let width = report
        .devices
        .iter()
        .map(|d| d.sn.as_str().len())
        .max()
        .unwrap_or(0)
        .max("SERIAL".len());
    // The LOCATION column only when the edge's cabling plan placed some
    // device (SPEC §11.1).
    let places: Vec<Option<String>> = report
        .devices
        .iter()
        .map(|d| d.location.as_ref().map(location_words))
        .collect();
    let place_width = places
        .iter()
        .flatten()
        .map(|p| p.chars().count())
        .max()
        .map(|w| w.max("LOCATION".len()));
    let mut out = if report.devices.is_empty() && report.state == OperationState::Done {
        "no device answered and none was expected (--expect): the log and notification list no device; \
         check --exchange, the broker's vhost, and that the agents are running\n"
            .to_owned()
    } else if let Some(pw) = place_width {
        format!("{:width$}  RESULT  {:pw$}  DETAILS\n", "SERIAL", "LOCATION")
    } else {
        format!("{:width$}  RESULT  DETAILS\n", "SERIAL")
    };
    for (d, place) in report.devices.iter().zip(&places) {
        let result = if d.is_undecided() {
            "UNDECIDED"
        } else if d.result.passed() {
            "PASS"
        } else {
            "FAIL"
        };
        let line = match place_width {
            Some(pw) => format!(
                "{:width$}  {result:6}  {:pw$}  {}",
                d.sn,
                place.as_deref().unwrap_or("-"),
                words(d)
            ),
            None => format!("{:width$}  {result:6}  {}", d.sn, words(d)),
        };
        out.push_str(line.trim_end());
        out.push('\n');
    }
    let passed = report.devices.iter().filter(|d| d.result.passed()).count();
    let undecided = report.devices.iter().filter(|d| d.is_undecided()).count();
    out.push_str(&format!(
        "\noperation {}: {} devices, {passed} passed, {} failed{}; {} replies, {} duplicate{}, {} rejected{}; collected in {}, reported in {}\n",
        report.operation_id,
        report.devices.len(),
        report.devices.len() - passed - undecided,
        match undecided {
            0 => String::new(),
            n => format!(", {n} undecided (MES could not be asked; not reported)"),
        },
        report.counters.accepted,
        report.counters.duplicates,
        match report.counters.conflicts {
            0 => String::new(),
            n => format!(", {n} conflicting (another board with the same serial)"),
        },
        report.counters.rejected,
        match report.counters.redelivered {
            0 => String::new(),
            n => format!(", {n} redelivered"),
        },
        secs(report.collected.saturating_since(report.started)),
        secs(report.finished.saturating_since(report.collected)),
    ));
    if let Some(e) = &report.error {
        out.push_str(&format!("error: {e}\n"));
    }
    out
}

/// A location as the table shows it: `B3 shelf 12 left (leaf-07 swp7)`,
/// or `B3 shelf 12 left (planned)` when no LLDP neighbour confirmed it.
pub fn location_words(l: &burnin_core::Location) -> String {
    if l.planned {
        format!("{} (planned)", l.place)
    } else {
        format!("{} ({} {})", l.place, l.switch, l.port)
    }
}

fn secs(d: Duration) -> String {
    format!("{:.1} s", d.as_secs_f64())
}

/// A hint when every device MES was asked about was unknown to it (404),
/// for more than one device: the MES URL is then more likely wrong than
/// every serial. `url_for` gives the URL asked for a serial, to name it.
pub fn mes_hint(
    report: &OperationReport,
    url_for: impl Fn(&SerialNumber) -> Option<String>,
) -> Option<String> {
    let asked: Vec<&DeviceResult> = report
        .devices
        .iter()
        .filter(|d| !matches!(d.finding, Finding::NoReply))
        .collect();
    let unknown = asked
        .iter()
        .filter(|d| matches!(d.finding, Finding::UnknownToMes))
        .count();
    if unknown < 2 || unknown != asked.len() {
        return None;
    }
    let mut hint = format!(
        "every serial looked up ({unknown}) was unknown to MES (404): the MES URL may be wrong \
         (check --mes-url)"
    );
    if let Some(url) = asked.first().and_then(|d| url_for(&d.sn)) {
        hint.push_str(&format!("; for {} it asked {url}", asked[0].sn));
    }
    Some(hint)
}

/// The `scan --json` document as text: [`report_json`], plus
/// `"mesConcurrencyLimit"`: the adaptive MES limit at the end, with
/// `--mes-url` (absent with `--mes-file`).
pub fn json(report: &OperationReport, mes_limit: Option<usize>) -> String {
    json_with_hint(report, mes_limit, None)
}

/// [`json()`], plus `"hint"` ([`mes_hint`]) when there is one.
pub fn json_with_hint(
    report: &OperationReport,
    mes_limit: Option<usize>,
    hint: Option<String>,
) -> String {
    let mut doc = report_json(report);
    if let Some(map) = doc.as_object_mut() {
        if let Some(limit) = mes_limit {
            map.insert("mesConcurrencyLimit".into(), limit.into());
        }
        if let Some(hint) = hint {
            map.insert("hint".into(), hint.into());
        }
    }
    doc.to_string()
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

#[cfg(test)]
mod table_tests {
    use super::*;
    use burnin_core::{DeviceReport, MesAnswer, Rules};

    fn report(body: serde_json::Value) -> DeviceReport {
        DeviceReport::from_slice(body.to_string().as_bytes()).unwrap()
    }

    /// The table's details name each SPEC §10.1 finding, and say why a
    /// requireLink failure is "0" instead of blaming MES.
    #[test]
    fn details_show_findings_and_link_failures() {
        let r = report(serde_json::json!({
            "operationId": 1, "sn": "A", "hostname": "h", "agentVersion": "t",
            "collectedAt": "2026-11-30T10:00:00Z",
            "interfaces": [
                {"interface": "eth0", "macaddr": "52:54:00:00:00:99", "permaddr": "02:00:00:00:00:01",
                 "link": {"carrier": true, "operstate": "up", "speedMbps": 1000},
                 "pci": {"slot": "0000:01:00.0", "vendor": "0x8086", "device": "0x1533", "class": "0x020000", "driver": "igb"}},
                {"interface": "eth1", "macaddr": "02:00:00:00:00:02",
                 "link": {"carrier": false, "operstate": "down", "speedMbps": null},
                 "pci": {"slot": "0000:02:00.0", "vendor": "0x8086", "device": "0x1533", "class": "0x020000", "driver": "igb"}}],
            "pciDevices": [{"slot": "0000:03:00.0", "vendor": "0x8086", "device": "0x1533", "class": "0x020000", "driver": null}]
        }));
        let mes = MesAnswer::Record(
            [
                "02:00:00:00:00:01",
                "02:00:00:00:00:02",
                "02:00:00:00:00:03",
            ]
            .iter()
            .map(|m| m.parse().unwrap())
            .collect(),
        );
        let d = DeviceResult::compare_report(&r, &mes, Rules::require_link(true));
        assert_eq!(
            details(&d),
            "eth1 02:00:00:00:00:02 has no link (requireLink); card 02:00:00:00:00:03 recorded in MES is missing; \
             eth0: MAC overridden by software (current 52:54:00:00:00:99); \
             network card at 0000:03:00.0 (8086:1533) has no driver; likely the missing card 02:00:00:00:00:03"
        );
        // A device MES does not know still shows its findings.
        let d = DeviceResult::compare_report(&r, &MesAnswer::Unknown, Rules::require_link(true));
        assert!(details(&d).starts_with("serial number unknown to MES; eth0: MAC overridden"));
        assert!(details(&d).contains("eth1: no link (no carrier)"));
        // `scan --json` carries the findings and the details in the same
        // words as the table; a device without findings has no
        // `findings`, one with nothing to say no `details` either.
        let doc = device_json(&d);
        assert_eq!(doc["findings"][0]["kind"], "macOverridden");
        assert_eq!(doc["details"][0], "serial number unknown to MES");
        let plain = DeviceResult::compare(r.sn.clone(), &r.interfaces[..1], &mes);
        let doc = device_json(&plain);
        assert_eq!(
            doc.as_object().unwrap().keys().collect::<Vec<_>>(),
            ["details", "macinfo", "result", "sn"]
        );
        assert_eq!(doc["details"].as_array().unwrap().len(), 2, "{doc}");
    }
}
