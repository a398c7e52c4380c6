//! Keeps `docs/protocol.md` true: every JSON block in it parses, the
//! command, reply and `POST /scans` examples parse with burnin-core's own
//! parsers, and the four factory payload examples are byte for byte what
//! burnin-core's builders make from the example reply and MES records.

use burnin_core::{
    DeviceReport, DeviceResult, InterfaceReport, Mac, MesAnswer, OperationId, PciDevice,
    ScanCommand, SerialNumber, payload,
};

const DOC: &str = include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/protocol.md"));

/// The ```json blocks of the document: (tag after `json`, body).
fn json_blocks() -> Vec<(String, String)> {
    let mut blocks = Vec::new();
    let mut open: Option<(String, String)> = None;
    for line in DOC.lines() {
        match &mut open {
            None => {
                if let Some(info) = line.trim_start().strip_prefix("```json") {
                    open = Some((info.trim().to_owned(), String::new()));
                }
            }
            Some(_) if line.trim_start().starts_with("```") => {
                blocks.extend(open.take());
            }
            Some((_, body)) => {
                body.push_str(line);
                body.push('\n');
            }
        }
    }
    assert!(
        open.is_none(),
        "docs/protocol.md has an unclosed ```json block"
    );
    blocks
}

fn block(tag: &str) -> String {
    let found: Vec<String> = json_blocks()
        .into_iter()
        .filter(|(t, _)| t == tag)
        .map(|(_, b)| b.trim().to_owned())
        .collect();
    assert_eq!(
        found.len(),
        1,
        "docs/protocol.md must have exactly one ```json {tag} block"
    );
    found.into_iter().next().unwrap_or_default()
}

#[test]
fn every_json_block_is_json() {
    let blocks = json_blocks();
    assert!(blocks.len() >= 9, "only {} JSON blocks found", blocks.len());
    for (tag, body) in blocks {
        if let Err(e) = serde_json::from_str::<serde_json::Value>(&body) {
            panic!("docs/protocol.md ```json {tag} block is not JSON: {e}\n{body}");
        }
    }
}

#[test]
fn the_command_example_parses_and_round_trips() {
    let text = block("command");
    let cmd = ScanCommand::from_slice(text.as_bytes())
        .unwrap_or_else(|e| panic!("the command example does not parse: {e}"));
    assert_eq!(cmd.operation_id, OperationId::Number(7001));
    assert_eq!(cmd.reply_to, "hwinfo_queue");
    assert_eq!(
        String::from_utf8(cmd.to_json()).unwrap(),
        text,
        "as the edge writes it"
    );
}

fn reply() -> DeviceReport {
    let text = block("reply");
    let r = DeviceReport::from_slice(text.as_bytes())
        .unwrap_or_else(|e| panic!("the reply example does not parse: {e}"));
    assert_eq!(
        String::from_utf8(r.to_json()).unwrap(),
        text,
        "as the agent writes it"
    );
    r
}

#[test]
fn the_reply_example_parses_and_round_trips() {
    let r = reply();
    assert_eq!(r.sn.as_str(), "Q186I15901");
    assert_eq!(r.interfaces.len(), 2);
}

#[test]
fn the_scan_request_example_is_accepted() {
    let p =
        burnin_core::request::parse_scan_request(block("scan-request").as_bytes(), "hwinfo_queue")
            .unwrap_or_else(|e| panic!("the POST /scans example is refused: {e}"));
    assert_eq!(p.expected.len(), 2);
}

/// The two example devices, compared as the edge does.
fn results() -> Vec<DeviceResult> {
    let r = reply();
    let mes: serde_json::Value = serde_json::from_str(&block("mes")).unwrap();
    let macs: Vec<Mac> = mes["macs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m.as_str().unwrap().parse().unwrap())
        .collect();
    let first = DeviceResult::compare(r.sn.clone(), &r.interfaces, &MesAnswer::Record(macs));
    let second_if = InterfaceReport {
        lldp: None,
        interface: "enp4s0".into(),
        macaddr: "02:00:00:00:02:01".parse().unwrap(),
        permaddr: None,
        addr_assign_type: None,
        link: None,
        pci: PciDevice {
            pcie_link: None,
            slot: "0000:04:00.0".into(),
            vendor: "0x8086".into(),
            device: "0x1533".into(),
            class: "0x020000".into(),
            driver: Some("igb".into()),
        },
    };
    let second = DeviceResult::compare(
        SerialNumber::new("Q186I15902").unwrap(),
        &[second_if],
        &MesAnswer::Record(vec!["02:00:00:00:02:99".parse().unwrap()]),
    );
    vec![first, second]
}

fn same(tag: &str, built: &payload::Payload) {
    assert_eq!(
        block(tag),
        built.body_str(),
        "docs/protocol.md ```json {tag} differs from what burnin-core builds (right); update the document"
    );
}

#[test]
fn the_payload_examples_are_what_the_core_builds_byte_for_byte() {
    let op = OperationId::Number(7001);
    let devices = results();
    same("log", &payload::log(&op, &devices));
    same("pair", &payload::pair(&op, &devices));
    same(
        "directBurn",
        &payload::direct_burn(&op, &devices, "op-17", 1),
    );
    same("notify", &payload::notify(&op, &devices, None));
}
