//! The factory payloads of SPEC §5, byte-compatible with the original tool.
//!
//! Each builder returns a [`Payload`]: the compact JSON body plus what the
//! reporter needs to deliver it (its kind and `Idempotency-Key`).

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::{DeviceResult, OperationId, SerialNumber, Verdict};

/// Which factory endpoint a payload is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum PayloadKind {
    /// The deviceScan log (`--log-url`).
    Log,
    /// Pair (`--pair-url`).
    Pair,
    /// directBurn (`--direct-burn-url`).
    DirectBurn,
    /// The notification (`--notify-url`).
    Notify,
}

impl PayloadKind {
    /// Every kind, in reporting order.
    pub const ALL: [PayloadKind; 4] = [
        PayloadKind::Log,
        PayloadKind::Pair,
        PayloadKind::DirectBurn,
        PayloadKind::Notify,
    ];

    /// The name used in `Idempotency-Key` and in file names:
    /// `log`, `pair`, `directBurn` or `notify`.
    pub fn as_str(self) -> &'static str {
        match self {
            PayloadKind::Log => "log",
            PayloadKind::Pair => "pair",
            PayloadKind::DirectBurn => "directBurn",
            PayloadKind::Notify => "notify",
        }
    }

    /// The kind named `name` ([`as_str`](Self::as_str)), if there is one.
    pub fn from_name(name: &str) -> Option<Self> {
        PayloadKind::ALL.into_iter().find(|k| k.as_str() == name)
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Display for PayloadKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where passing devices are sent. Named `pair` or `directBurn` (its
/// [`PayloadKind`]'s name) in requests, the store and the API; serialises
/// itself so.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
pub enum Target {
    /// The Pair API.
    #[default]
    #[serde(rename = "pair")]
    Pair,
    /// The directBurn API.
    #[serde(rename = "directBurn")]
    DirectBurn,
}

impl Target {
    /// `pair` or `directBurn`.
    pub fn as_str(self) -> &'static str {
        self.kind().as_str()
    }

    /// The target named `name` ([`as_str`](Self::as_str)), if there is one.
    pub fn from_name(name: &str) -> Option<Self> {
        [Target::Pair, Target::DirectBurn]
            .into_iter()
            .find(|t| t.as_str() == name)
    }

    /// The payload kind this target is delivered as.
    pub fn kind(self) -> PayloadKind {
        match self {
            Target::Pair => PayloadKind::Pair,
            Target::DirectBurn => PayloadKind::DirectBurn,
        }
    }
}

/// A JSON body ready to POST.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Payload {
    /// The endpoint it is for.
    pub kind: PayloadKind,
    /// The operation it belongs to.
    pub operation_id: OperationId,
    /// The run of the operation (SPEC §11.3); 0 for an operation begun
    /// before runs were numbered (its key keeps the old form).
    pub run: u64,
    /// Compact JSON.
    pub body: Vec<u8>,
}

impl Payload {
    /// The same payload for `run` of its operation.
    pub fn with_run(mut self, run: u64) -> Self {
        self.run = run;
        self
    }

    /// The `Idempotency-Key`: identical on every retry and after a
    /// restart, and different for every (operation, run, kind), so a key
    /// is never sent with two different bodies.
    ///
    /// `<operationId>:<run>:<kind>`, where `<operationId>` is the id's
    /// JSON text (`7001`, or `"op-7"` with its quotes, so the number `42`
    /// and the string `"42"` never share a key) with every non-ASCII
    /// character escaped as `\uXXXX` (so any id fits an HTTP header).
    /// An operation recorded before runs were numbered (run 0, read from
    /// an older state database) keeps the key it was first sent with,
    /// `<operationId>:<kind>`.
    pub fn idempotency_key(&self) -> String {
        match self.run {
            0 => format!("{}:{}", self.operation_id, self.kind),
            run => format!("{}:{run}:{}", key_segment(&self.operation_id), self.kind),
        }
    }

    /// The body as text (it is always UTF-8 JSON).
    pub fn body_str(&self) -> &str {
        std::str::from_utf8(&self.body).unwrap_or_default()
    }
}

/// An operation id as its JSON text, ASCII only (see
/// [`Payload::idempotency_key`]).
pub fn key_segment(id: &OperationId) -> String {
    let json = serde_json::to_string(id).unwrap_or_else(|_| id.to_string());
    let mut out = String::with_capacity(json.len());
    for c in json.chars() {
        if c.is_ascii() {
            out.push(c);
        } else {
            let mut units = [0u16; 2];
            for u in c.encode_utf16(&mut units) {
                out.push_str(&format!("\\u{u:04x}"));
            }
        }
    }
    out
}

/// `bytes_per_device` sizes the buffer up front (an estimate; a log entry is
/// ~30 bytes plus ~75 per MAC line).
fn payload<T: Serialize>(
    kind: PayloadKind,
    op: &OperationId,
    doc: &T,
    devices: &[DeviceResult],
    bytes_per_device: impl Fn(&DeviceResult) -> usize,
) -> Payload {
    let capacity = 128 + devices.iter().map(bytes_per_device).sum::<usize>();
    Payload {
        kind,
        operation_id: op.clone(),
        run: 0,
        body: crate::model::to_json_sized(doc, capacity),
    }
}

fn log_entry_size(d: &DeviceResult) -> usize {
    40 + d.sn.as_str().len()
        + d.macinfo
            .iter()
            .map(|m| 64 + m.interface.len())
            .sum::<usize>()
}

fn sn_entry_size(d: &DeviceResult) -> usize {
    4 + d.sn.as_str().len()
}

/// The deviceScan log:
/// `{"operationid": <op>, "pairInfo": [], "scaninfo": [...]}`.
///
/// Written by hand rather than through serde's derive: it is the one large
/// payload (≈ 330 bytes per 4-NIC device) and most of it is text that never
/// needs escaping (keys, MACs, `"0"`/`"1"`), so only the interface names and
/// serials go through serde_json's escaping. The golden tests pin the bytes,
/// and they are equal to serializing the [`DeviceResult`]s with serde.
pub fn log(op: &OperationId, devices: &[DeviceResult]) -> Payload {
    let capacity = 64 + devices.iter().map(log_entry_size).sum::<usize>();
    let mut out = Vec::with_capacity(capacity);
    out.extend_from_slice(b"{\"operationid\":");
    json_into(&mut out, op);
    out.extend_from_slice(b",\"pairInfo\":[],\"scaninfo\":[");
    for (i, d) in devices.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.extend_from_slice(b"{\"macinfo\":[");
        for (j, m) in d.macinfo.iter().enumerate() {
            if j > 0 {
                out.push(b',');
            }
            out.extend_from_slice(b"{\"interface\":");
            json_into(&mut out, m.interface.as_str());
            out.extend_from_slice(b",\"macaddr\":\"");
            out.extend_from_slice(&m.macaddr.text());
            out.extend_from_slice(b"\",\"scanstatus\":\"");
            out.extend_from_slice(m.scanstatus.as_str().as_bytes());
            out.extend_from_slice(b"\"}");
        }
        out.extend_from_slice(b"],\"sn\":");
        json_into(&mut out, d.sn.as_str());
        out.extend_from_slice(b",\"result\":\"");
        out.extend_from_slice(d.result.as_str().as_bytes());
        out.extend_from_slice(b"\"}");
    }
    out.extend_from_slice(b"]}");
    Payload {
        kind: PayloadKind::Log,
        operation_id: op.clone(),
        run: 0,
        body: out,
    }
}

/// Appends `value` as JSON (strings escaped).
fn json_into<T: Serialize + ?Sized>(out: &mut Vec<u8>, value: &T) {
    // Writing a string or an operation id into a Vec cannot fail.
    let _ = serde_json::to_writer(&mut *out, value);
}

fn passing(devices: &[DeviceResult]) -> Vec<&SerialNumber> {
    devices
        .iter()
        .filter(|d| d.result.passed())
        .map(|d| &d.sn)
        .collect()
}

/// Pair: `{"snArray": [passing serials], "operationId": <op>}`.
pub fn pair(op: &OperationId, devices: &[DeviceResult]) -> Payload {
    #[derive(Serialize)]
    #[serde(rename_all = "camelCase")]
    struct Pair<'a> {
        sn_array: Vec<&'a SerialNumber>,
        operation_id: &'a OperationId,
    }
    payload(
        PayloadKind::Pair,
        op,
        &Pair {
            sn_array: passing(devices),
            operation_id: op,
        },
        devices,
        sn_entry_size,
    )
}

/// directBurn: `{"snArray": [...], "operationId": <op>, "operatorId": "...", "scanMode": N}`.
pub fn direct_burn(
    op: &OperationId,
    devices: &[DeviceResult],
    operator_id: &str,
    scan_mode: i64,
) -> Payload {
    #[derive(Serialize)]
    #[serde(rename_all = "camelCase")]
    struct DirectBurn<'a> {
        sn_array: Vec<&'a SerialNumber>,
        operation_id: &'a OperationId,
        operator_id: &'a str,
        scan_mode: i64,
    }
    payload(
        PayloadKind::DirectBurn,
        op,
        &DirectBurn {
            sn_array: passing(devices),
            operation_id: op,
            operator_id,
            scan_mode,
        },
        devices,
        sn_entry_size,
    )
}

/// The notification:
/// `{"operationId": <op>, "scanInfo": [{"serialNo", "result": "Success"|"Fail"}], "error"?}`.
pub fn notify(op: &OperationId, devices: &[DeviceResult], error: Option<&str>) -> Payload {
    #[derive(Serialize)]
    #[serde(rename_all = "camelCase")]
    struct Entry<'a> {
        serial_no: &'a SerialNumber,
        result: &'static str,
    }
    #[derive(Serialize)]
    #[serde(rename_all = "camelCase")]
    struct Notify<'a> {
        operation_id: &'a OperationId,
        scan_info: Vec<Entry<'a>>,
        #[serde(skip_serializing_if = "Option::is_none")]
        error: Option<&'a str>,
    }
    let scan_info = devices
        .iter()
        .map(|d| Entry {
            serial_no: &d.sn,
            result: match d.result {
                Verdict::Pass => "Success",
                Verdict::Fail => "Fail",
            },
        })
        .collect();
    payload(
        PayloadKind::Notify,
        op,
        &Notify {
            operation_id: op,
            scan_info,
            error,
        },
        devices,
        |d| 32 + d.sn.as_str().len(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{InterfaceReport, Mac, MesAnswer, PciDevice};

    /// The original tool's example data: one passing device with two cards,
    /// one failing with a wrong card.
    fn devices() -> Vec<DeviceResult> {
        let pci = PciDevice {
            pcie_link: None,
            slot: "0000:04:00.0".into(),
            vendor: "0x8086".into(),
            device: "0x1533".into(),
            class: "0x020000".into(),
            driver: Some("igb".into()),
        };
        let i = |n: &str, m: &str| InterfaceReport {
            lldp: None,
            interface: n.into(),
            macaddr: m.parse().unwrap(),
            permaddr: None,
            addr_assign_type: None,
            link: None,
            pci: pci.clone(),
        };
        let mac = |m: &str| m.parse::<Mac>().unwrap();
        vec![
            DeviceResult::compare(
                "Q186I15901".parse().unwrap(),
                &[
                    i("enp4s0", "e0:18:7d:2e:ca:68"),
                    i("enp5s0", "e0:18:7d:2e:ca:69"),
                ],
                &MesAnswer::Record(vec![mac("E0:18:7D:2E:CA:68"), mac("E0:18:7D:2E:CA:69")]),
            ),
            DeviceResult::compare(
                "Q186I15902".parse().unwrap(),
                &[i("enp4s0", "e0:18:7d:2e:ca:70")],
                &MesAnswer::Record(vec![mac("E0:18:7D:2E:CA:71")]),
            ),
        ]
    }

    #[test]
    fn golden_log() {
        let p = log(&OperationId::Number(1001), &devices());
        assert_eq!(p.idempotency_key(), "1001:log");
        assert_eq!(
            p.body_str(),
            concat!(
                r#"{"operationid":1001,"pairInfo":[],"scaninfo":["#,
                r#"{"macinfo":[{"interface":"enp4s0","macaddr":"e0:18:7d:2e:ca:68","scanstatus":"1"},"#,
                r#"{"interface":"enp5s0","macaddr":"e0:18:7d:2e:ca:69","scanstatus":"1"}],"sn":"Q186I15901","result":"1"},"#,
                r#"{"macinfo":[{"interface":"enp4s0","macaddr":"e0:18:7d:2e:ca:70","scanstatus":"0"},"#,
                r#"{"interface":"","macaddr":"e0:18:7d:2e:ca:71","scanstatus":"0"}],"sn":"Q186I15902","result":"0"}]}"#
            )
        );
    }

    #[test]
    fn the_hand_written_log_equals_serde() {
        #[derive(Serialize)]
        struct Log<'a> {
            operationid: &'a OperationId,
            #[serde(rename = "pairInfo")]
            pair_info: [(); 0],
            scaninfo: &'a [DeviceResult],
        }
        let mut devices = devices();
        devices[0].macinfo[0].interface = "we\"ird\\name\u{7}é".into();
        for op in [OperationId::Number(9), OperationId::Text("a\"b".into())] {
            let want = serde_json::to_vec(&Log {
                operationid: &op,
                pair_info: [],
                scaninfo: &devices,
            })
            .unwrap();
            assert_eq!(log(&op, &devices).body, want);
            assert_eq!(
                log(&op, &[]).body_str(),
                format!(
                    r#"{{"operationid":{},"pairInfo":[],"scaninfo":[]}}"#,
                    serde_json::to_string(&op).unwrap()
                )
            );
        }
    }

    /// The same devices reported by a phase-2 agent (permanent addresses,
    /// software-set current addresses, link state) and with findings: the
    /// four payloads are byte for byte those of the seed.
    #[test]
    fn phase_two_facts_and_findings_leave_the_payloads_unchanged() {
        let pci = PciDevice {
            pcie_link: None,
            slot: "0000:04:00.0".into(),
            vendor: "0x8086".into(),
            device: "0x1533".into(),
            class: "0x020000".into(),
            driver: Some("igb".into()),
        };
        let i = |n: &str, current: &str, perm: &str| {
            let mut i = InterfaceReport::new(n, current.parse().unwrap(), pci.clone());
            i.permaddr = Some(perm.parse().unwrap());
            i.addr_assign_type = Some(crate::AddrAssignType::Set);
            i.link = Some(crate::LinkState {
                carrier: Some(true),
                operstate: Some("up".into()),
                speed_mbps: Some(1000),
            });
            i
        };
        let mac = |m: &str| m.parse::<Mac>().unwrap();
        let report = |sn: &str, interfaces, pci_devices| crate::DeviceReport {
            operation_id: Some(OperationId::Number(1001)),
            sn: sn.parse().unwrap(),
            hostname: "h".into(),
            agent_version: "0.2.0".into(),
            collected_at: crate::Timestamp::from_unix_seconds(1_800_000_000),
            interfaces,
            pci_devices,
        };
        let mut orphan = pci.clone();
        orphan.slot = "0000:05:00.0".into();
        orphan.driver = None;
        let mut new = vec![
            DeviceResult::compare_report(
                &report(
                    "Q186I15901",
                    vec![
                        i("enp4s0", "02:00:00:00:00:01", "e0:18:7d:2e:ca:68"),
                        i("enp5s0", "02:00:00:00:00:02", "e0:18:7d:2e:ca:69"),
                    ],
                    vec![],
                ),
                &MesAnswer::Record(vec![mac("E0:18:7D:2E:CA:68"), mac("E0:18:7D:2E:CA:69")]),
                crate::Rules::require_link(true),
            ),
            DeviceResult::compare_report(
                &report(
                    "Q186I15902",
                    vec![i("enp4s0", "02:00:00:00:00:03", "e0:18:7d:2e:ca:70")],
                    vec![orphan],
                ),
                &MesAnswer::Record(vec![mac("E0:18:7D:2E:CA:71")]),
                crate::Rules::require_link(true),
            ),
        ];
        crate::note_shared_macs(&mut new);
        assert_eq!(new[0].findings.len(), 2, "{:?}", new[0].findings);
        assert_eq!(new[1].findings.len(), 2, "{:?}", new[1].findings);
        let old = devices();
        for op in [OperationId::Number(1001), OperationId::Text("op-7".into())] {
            assert_eq!(log(&op, &new), log(&op, &old));
            assert_eq!(pair(&op, &new), pair(&op, &old));
            assert_eq!(
                direct_burn(&op, &new, "OP42", 1),
                direct_burn(&op, &old, "OP42", 1)
            );
            assert_eq!(notify(&op, &new, None), notify(&op, &old, None));
        }
    }

    #[test]
    fn golden_pair_and_direct_burn() {
        let op = OperationId::Text("op-7".into());
        let p = pair(&op, &devices());
        assert_eq!(
            p.body_str(),
            r#"{"snArray":["Q186I15901"],"operationId":"op-7"}"#
        );
        assert_eq!(p.idempotency_key(), "op-7:pair");
        let d = direct_burn(&op, &devices(), "OP42", 1);
        assert_eq!(
            d.body_str(),
            r#"{"snArray":["Q186I15901"],"operationId":"op-7","operatorId":"OP42","scanMode":1}"#
        );
        assert_eq!(d.idempotency_key(), "op-7:directBurn");
    }

    #[test]
    fn golden_notify() {
        let op = OperationId::Number(5);
        assert_eq!(
            notify(&op, &devices(), None).body_str(),
            r#"{"operationId":5,"scanInfo":[{"serialNo":"Q186I15901","result":"Success"},{"serialNo":"Q186I15902","result":"Fail"}]}"#
        );
        assert_eq!(
            notify(&op, &devices(), Some("log POST failed: 503")).body_str(),
            r#"{"operationId":5,"scanInfo":[{"serialNo":"Q186I15901","result":"Success"},{"serialNo":"Q186I15902","result":"Fail"}],"error":"log POST failed: 503"}"#
        );
        assert_eq!(notify(&op, &[], None).idempotency_key(), "5:notify");
    }

    #[test]
    fn keys_name_the_run_and_never_collide() {
        let number = OperationId::Number(42);
        let text = OperationId::text("42").unwrap();
        let p = |id: &OperationId, run| notify(id, &[], None).with_run(run).idempotency_key();
        assert_eq!(p(&number, 1), "42:1:notify");
        assert_eq!(p(&number, 2), "42:2:notify");
        assert_eq!(p(&text, 1), r#""42":1:notify"#);
        // Run 0: an operation of an older state database keeps its key.
        assert_eq!(p(&number, 0), "42:notify");
        // Any id fits a header: non-ASCII is escaped, quotes are JSON's.
        let odd = OperationId::text("lot-é\"1").unwrap();
        assert_eq!(p(&odd, 3), r#""lot-\u00e9\"1":3:notify"#);
        let mut keys = std::collections::HashSet::new();
        // (Run 0 keys are the old form, where 42 and "42" did collide.)
        for id in [&number, &text, &odd] {
            for run in 1..4 {
                for kind in PayloadKind::ALL {
                    let mut payload = notify(id, &[], None).with_run(run);
                    payload.kind = kind;
                    assert!(keys.insert(payload.idempotency_key()));
                }
            }
        }
    }
}
