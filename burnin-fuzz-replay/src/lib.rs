//! # burnin-fuzz-replay
//!
//! The bodies of burnin's fuzz targets, shared by the cargo-fuzz crate in
//! `fuzz/` (which lives outside the workspace and needs nightly) and by this
//! crate's `tests/replay.rs`, which runs every file of the committed corpora
//! (`fuzz/corpus/<target>/`) through the same functions in the normal test
//! run. A fuzz target and its replay are therefore the same code.
//!
//! Each function takes arbitrary bytes, calls one pure parser (no I/O) and
//! **panics** when the parser panics or breaks one of its promises, which
//! is how a fuzzer learns about a failure. The promises checked:
//!
//! | target | parser | checked beyond "does not panic" |
//! |---|---|---|
//! | [`mac`] | [`Mac::parse`] | display re-parses to the same address, in canonical form; serde round trip; error input ≤ 64 chars |
//! | [`reply`] | [`DeviceReport::from_slice`] | `to_json` parses back to an equal report and re-serializes identically |
//! | [`command`] | [`ScanCommand::from_slice`] | the same round trip |
//! | [`serve_request`] | [`burnin_core::request::parse_scan_request`] (the `POST /scans` body of `serve`) | an accepted request has a window in range, unique expected serials, an operator for directBurn |
//! | [`mes_body`] | `burnin_http::parse_mes_record` (the real 200-body parser of [`burnin_http::HttpMesSource`]) and [`FileMes::from_json`] | accepted records are the asked serial with exactly the body's MACs; `FileMes` round trips through `to_json` |
//! | [`lldp`] | [`burnin_lldp::parse`] and [`burnin_lldp::parse_frame`] (LLDPDUs and Ethernet frames the agent hears), through [`burnin_lldp::NeighbourTable`] | no control characters in names and ids, ids not empty, an accepted LLDPDU ≤ 1500 bytes is what the table keeps (or removes, TTL 0), errors are counted and keep nothing |
//! | [`cabling_plan`] | [`burnin_core::cabling::CablingPlan::parse`] (the edge's `--cabling-plan` CSV) | an accepted plan's rows have switch, port and location, no control characters, increasing lines and no switch/port twice; an error's line and column lie inside the input |
//! | [`sysfs_files`] | the file-content parsing of [`burnin_sysfs::SysfsProbe`] (`burnin_sysfs::fuzz`) | 4 KiB bound, trimmed text, addresses are what `Mac::parse` reads, serials are never placeholders, error texts ≤ 64 chars |
//!
//! Not for production use: these functions panic by design.

use burnin_core::{DeviceReport, Mac, ScanCommand, SerialNumber};
use burnin_local::FileMes;
use burnin_sysfs::{Problem, Rejected};

/// The serial asked of MES when the input does not start with one.
pub const DEFAULT_SERIAL: &str = "Q186I15901";

/// A target's body.
pub type Target = fn(&[u8]);

/// Every target, by the name of its corpus directory and fuzz binary.
pub const TARGETS: [(&str, Target); 8] = [
    ("mac", mac),
    ("reply", reply),
    ("command", command),
    ("mes_body", mes_body),
    ("sysfs_files", sysfs_files),
    ("serve_request", serve_request),
    ("lldp", lldp),
    ("cabling_plan", cabling_plan),
];

/// [`burnin_core::cabling::CablingPlan::parse`] on any bytes: a plan or an
/// error with a position inside the input, never a panic.
pub fn cabling_plan(data: &[u8]) {
    use burnin_core::cabling::{CablingPlan, PlanErrorKind};
    match CablingPlan::parse(data) {
        Ok(plan) => {
            let mut ports = std::collections::HashSet::new();
            let mut line = 0;
            for r in plan.rows() {
                assert!(r.line > line, "lines go up: {r:?}");
                line = r.line;
                for text in [&r.switch, &r.port, &r.location] {
                    assert!(!text.is_empty(), "{r:?}");
                    assert!(!text.chars().any(char::is_control), "{r:?}");
                }
                assert!(
                    ports.insert((r.switch.to_ascii_lowercase(), r.port.to_ascii_lowercase())),
                    "switch/port twice: {r:?}"
                );
            }
        }
        Err(e) => {
            assert!(e.line >= 1 && e.column >= 1, "{e}");
            assert!(!e.to_string().is_empty());
            if !matches!(e.kind, PlanErrorKind::TooLarge(_)) {
                let lines = 1 + data.iter().filter(|&&b| b == b'\n').count();
                assert!(e.line <= lines, "{e}: the input has {lines} lines");
                let text = String::from_utf8_lossy(data);
                let at = text.split('\n').nth(e.line - 1).unwrap_or("");
                assert!(
                    e.column <= at.chars().count() + 1,
                    "{e}: line {} has {} characters",
                    e.line,
                    at.chars().count()
                );
            }
        }
    }
}

/// [`Mac::parse`] on any UTF-8 input.
pub fn mac(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match Mac::parse(text) {
        Ok(m) => {
            let shown = m.to_string();
            assert_eq!(shown.len(), 17, "{shown:?}");
            assert_eq!(shown, shown.to_ascii_lowercase());
            assert_eq!(Mac::parse(&shown), Ok(m), "display of {text:?}");
            let json = serde_json::to_string(&m).expect("a MAC serializes");
            assert_eq!(json, format!("\"{shown}\""));
            assert_eq!(serde_json::from_str::<Mac>(&json).ok(), Some(m));
        }
        Err(e) => {
            assert!(
                e.input().chars().count() <= 64,
                "error keeps {:?}",
                e.input()
            );
            assert!(text.starts_with(e.input()));
        }
    }
}

/// [`DeviceReport::from_slice`]; an accepted report round trips.
pub fn reply(data: &[u8]) {
    if let Ok(report) = DeviceReport::from_slice(data) {
        let json = report.to_json();
        let again = DeviceReport::from_slice(&json).unwrap_or_else(|e| {
            panic!(
                "re-serialized report does not parse: {e}; json {}",
                String::from_utf8_lossy(&json)
            )
        });
        assert_eq!(again, report);
        assert_eq!(again.to_json(), json);
    }
}

/// [`burnin_core::request::parse_scan_request`], the `POST /scans` body of
/// `burnin-edge serve`: an accepted request keeps its promises (window in
/// range, expected serials unique, directBurn has an operator).
pub fn serve_request(data: &[u8]) {
    use burnin_core::request::{MAX_WINDOW, parse_scan_request};
    match parse_scan_request(data, "hwinfo_queue") {
        Ok(p) => {
            assert!(
                !p.window.is_zero() && p.window <= MAX_WINDOW,
                "{:?}",
                p.window
            );
            for (i, sn) in p.expected.iter().enumerate() {
                assert!(!p.expected[..i].contains(sn), "duplicate {sn}");
            }
            if p.target == burnin_core::Target::DirectBurn {
                assert!(p.operator_id.is_some());
            }
            assert_eq!(p.reply_to, "hwinfo_queue");
        }
        Err(e) => {
            let text = e.to_string();
            assert!(
                text.starts_with("field ") || text.starts_with("bad request body"),
                "{text}"
            );
        }
    }
}

/// [`ScanCommand::from_slice`]; an accepted command round trips.
pub fn command(data: &[u8]) {
    if let Ok(cmd) = ScanCommand::from_slice(data) {
        let json = cmd.to_json();
        let again = ScanCommand::from_slice(&json).unwrap_or_else(|e| {
            panic!(
                "re-serialized command does not parse: {e}; json {}",
                String::from_utf8_lossy(&json)
            )
        });
        assert_eq!(again, cmd);
        assert_eq!(again.to_json(), json);
    }
}

/// The MES bodies: an HTTP 200 body and the `--mes-file` document.
///
/// When the input's first line is a valid serial number, it is the serial
/// asked and the rest is the body; otherwise the whole input is the body
/// and [`DEFAULT_SERIAL`] is asked. The whole input is also given to
/// [`FileMes::from_json`].
pub fn mes_body(data: &[u8]) {
    let (sn, body) = split_serial(data);
    match burnin_http::parse_mes_record(&sn, body) {
        Ok(macs) => {
            // The oracle: the body read as plain JSON.
            let value: serde_json::Value =
                serde_json::from_slice(body).expect("an accepted body is JSON");
            assert_eq!(value["sn"].as_str(), Some(sn.as_str()));
            let listed = value["macs"].as_array().expect("macs is an array");
            assert_eq!(listed.len(), macs.len());
            for (raw, m) in listed.iter().zip(&macs) {
                assert_eq!(Mac::parse(raw.as_str().expect("a string")).as_ref(), Ok(m));
            }
        }
        Err(message) => assert!(!message.is_empty()),
    }

    if let Ok(file) = FileMes::from_json(data) {
        let json = file.to_json();
        let again = FileMes::from_json(&json).unwrap_or_else(|e| {
            panic!(
                "re-serialized MES file does not parse: {e}; json {}",
                String::from_utf8_lossy(&json)
            )
        });
        assert_eq!(again.len(), file.len());
        assert_eq!(again.to_json(), json);
    }
}

fn split_serial(data: &[u8]) -> (SerialNumber, &[u8]) {
    if let Some(nl) = data.iter().position(|&b| b == b'\n')
        && let Ok(first) = std::str::from_utf8(&data[..nl])
        && let Ok(sn) = SerialNumber::new(first)
    {
        return (sn, &data[nl + 1..]);
    }
    let sn = SerialNumber::new(DEFAULT_SERIAL).expect("the default serial is valid");
    (sn, data)
}

/// The contents of sysfs files as the probe reads them: the same bytes as
/// an attribute, an address file, a DMI serial file, a host name file, and
/// (when UTF-8) a `driver` link's target.
pub fn sysfs_files(data: &[u8]) {
    use burnin_sysfs::{MAX_FILE_BYTES, fuzz};

    let attribute = fuzz::attribute(data);
    match &attribute {
        Ok(text) => {
            assert!(data.len() as u64 <= MAX_FILE_BYTES);
            assert_eq!(text, text.trim());
        }
        Err(Problem::TooLarge { limit }) => {
            assert_eq!(*limit, MAX_FILE_BYTES);
            assert!(data.len() as u64 > MAX_FILE_BYTES);
        }
        Err(Problem::NotUtf8) => assert!(std::str::from_utf8(data).is_err()),
        Err(other) => panic!("content alone cannot be {other:?}"),
    }

    match fuzz::address(data) {
        Ok(m) => assert_eq!(Mac::parse(attribute.as_deref().unwrap()), Ok(m)),
        Err(Problem::NotAMac { content }) => {
            let text = attribute.as_deref().expect("read as text");
            assert!(Mac::parse(text).is_err());
            assert!(content.chars().count() <= 64);
            assert!(text.starts_with(&content));
        }
        Err(p) => assert_eq!(Err(&p), attribute.as_ref()),
    }

    match fuzz::dmi_serial(data) {
        Ok(sn) => {
            assert_eq!(Ok(sn.as_str()), attribute.as_deref());
            assert!(!burnin_sysfs::is_placeholder(sn.as_str()));
        }
        Err(Rejected::Empty) => assert_eq!(attribute.as_deref(), Ok("")),
        Err(Rejected::Placeholder(v)) => assert!(burnin_sysfs::is_placeholder(&v)),
        Err(Rejected::Invalid { value, reason }) => {
            assert!(value.chars().count() <= SerialNumber::MAX_LEN);
            assert!(!reason.is_empty());
        }
        Err(Rejected::Unreadable(p)) => assert_eq!(Err(&p), attribute.as_ref()),
        Err(other) => panic!("content alone cannot be {other:?}"),
    }

    match fuzz::hostname(data) {
        Ok(Some(name)) => {
            assert!(!name.is_empty() && !name.contains('\n'));
            assert_eq!(name, name.trim());
        }
        Ok(None) => assert!(
            attribute
                .as_deref()
                .unwrap()
                .lines()
                .next()
                .is_none_or(|l| l.trim().is_empty())
        ),
        Err(p) => assert_eq!(Err(&p), attribute.as_ref()),
    }

    if let Ok(target) = std::str::from_utf8(data) {
        let name = fuzz::driver_name(target);
        assert!(!name.contains('/'), "{name:?}");
    }
}

/// An LLDP frame as the agent's listener hands it to its neighbour table:
/// the input is tried as an LLDPDU (a fixture's `burnin_lldp` line) and as
/// a whole Ethernet frame (a raw socket's read).
pub fn lldp(data: &[u8]) {
    use std::time::Instant;

    use burnin_lldp::{MAX_LLDPDU, NeighbourTable, Outcome};

    let now = Instant::now();
    for as_frame in [false, true] {
        let mut table = NeighbourTable::new();
        table.listen("enp4s0");
        let (parsed, handled) = if as_frame {
            (
                burnin_lldp::parse_frame(data),
                table.handle_frame("enp4s0", data, now),
            )
        } else {
            (
                burnin_lldp::parse(data),
                table.handle_lldpdu("enp4s0", data, now),
            )
        };
        let kept = table.neighbours("enp4s0", now).expect("listening");
        let stats = table.stats();
        assert_eq!(stats.frames, 1);
        match parsed {
            Ok(heard) => {
                let n = &heard.neighbor;
                assert!(!n.chassis_id.is_empty() && !n.port_id.is_empty());
                for text in [&n.chassis_id, &n.port_id]
                    .into_iter()
                    .chain(&n.system_name)
                    .chain(&n.port_description)
                    .chain(&n.mgmt_address)
                {
                    assert!(!text.chars().any(char::is_control), "{text:?}");
                }
                assert_eq!(n.age_secs, 0);
                assert_ne!(n.vlan, Some(0));
                assert!(data.len() <= MAX_LLDPDU + 18);
                if heard.ttl_secs == 0 {
                    assert_eq!(handled, Ok(Outcome::Removed));
                    assert!(kept.is_empty());
                } else {
                    assert_eq!(handled, Ok(Outcome::Added));
                    assert_eq!(kept, vec![heard.neighbor.clone()]);
                }
            }
            Err(e) => {
                assert_eq!(handled, Err(e.clone()));
                assert!(kept.is_empty());
                assert_eq!(stats.malformed + stats.oversized, 1, "{e}");
                assert!(!e.to_string().is_empty());
            }
        }
    }
}
