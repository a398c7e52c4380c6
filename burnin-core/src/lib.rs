//! # burnin-core
//!
//! The pure heart of burnin: everything the product decides, and nothing it
//! does to the outside world.
//!
//! burnin checks, before a batch leaves the burn-in room, that every device's
//! network cards carry the MAC addresses the factory MES recorded for its
//! serial number. An agent on each device answers a fanout scan with its
//! sysfs facts; the edge compares them with MES and reports to the factory.
//!
//! ## Design overview
//!
//! This crate is deterministic and sans-IO. It has **no sockets, files or
//! clocks of its own**: no tokio, lapin, reqwest or rusqlite, no `std::fs`,
//! `std::net`, `SystemTime::now` or `Instant::now` (CI checks the dependency
//! tree; clippy's `disallowed-methods` bans the clock calls). Time comes in
//! as a [`Timestamp`] value or through the [`Clock`] port.
//!
//! * **Model** — [`Mac`], [`SerialNumber`], [`OperationId`], the wire
//!   documents [`ScanCommand`] and [`DeviceReport`] (SPEC §4), parsed with
//!   size limits and errors that name the bad field.
//! * **Rules** — [`DeviceResult::compare`] applies SPEC §3;
//!   [`DeviceResult::compare_report`] adds SPEC §10.1 (the permanent address
//!   is compared, `requireLink`, [`HardwareFinding`]s such as a card with no
//!   driver; [`note_shared_macs`] across devices); [`payload`] builds the
//!   four factory documents of SPEC §5 byte for byte.
//! * **Cabling** — [`cabling`] parses the edge's cabling plan (SPEC
//!   §11.1), places devices ([`Location`]) from their LLDP neighbours and
//!   words the cabling findings; [`DeviceResult::add_cabling`] applies
//!   `requireCabling`, and [`DeviceResult::compare_report`] words PCIe links
//!   below their maximum (`requirePcieWidth`).
//! * **State machine** — [`Operation`] runs one scan operation:
//!   `handle_*` methods take inputs (replies, MES answers, the time),
//!   `poll_*` methods say what to do next (payload to deliver, deadline).
//! * **Ports** — the traits adapters implement ([`ports`]): command
//!   publisher and reply stream (edge), command source and reply sink
//!   (agent), MES source, hardware probe, factory reporter, clock.
//! * **Use cases** — [`edge::run_operation`] and [`agent::Agent`] drive the
//!   state machine over the ports; [`memory`] is an in-process transport so
//!   both run in one process (tests, `burnin-edge demo`).
//! * **Live state** — [`live::Board`] follows running operations device by
//!   device (`waiting`, `replied`, `passed`, `failed`) and numbers every
//!   change, for a page or a Server-Sent Events stream.
//!
//! ## Getting started
//!
//! ```
//! use burnin_core::{DeviceResult, Mac, MesAnswer, payload, OperationId};
//!
//! let report = burnin_core::DeviceReport::from_slice(br#"{
//!   "operationId": 7, "sn": "Q186I15901", "hostname": "dut-17",
//!   "agentVersion": "0.1.0", "collectedAt": "2026-11-25T10:00:00Z",
//!   "interfaces": [{"interface": "enp4s0", "macaddr": "e0:18:7d:2e:ca:68",
//!     "pci": {"slot": "0000:04:00.0", "vendor": "0x8086", "device": "0x1533",
//!             "class": "0x020000", "driver": "igb"}}],
//!   "pciDevices": []}"#).unwrap();
//! let mes = MesAnswer::Record(vec!["E0-18-7D-2E-CA-68".parse::<Mac>().unwrap()]);
//! let result = DeviceResult::compare(report.sn.clone(), &report.interfaces, &mes);
//! assert!(result.result.passed());
//!
//! let log = payload::log(&OperationId::Number(7), &[result]);
//! assert!(log.body_str().starts_with(r#"{"operationid":7,"pairInfo":[]"#));
//! ```

mod compare;
mod ids;
mod mac;
mod model;
mod time;

pub mod agent;
pub mod cabling;
pub mod edge;
pub mod live;
pub mod memory;
pub mod operation;
pub mod payload;
pub mod ports;
pub mod request;
pub mod store;

pub use cabling::Location;
pub use compare::{
    DeviceResult, Finding, FindingKind, HardwareFinding, MAX_NAMED_SERIALS, MacInfo, MesAnswer,
    Rules, ScanStatus, Verdict, note_shared_macs,
};
pub use ids::{OperationId, OperationIdError, SerialNumber, SerialNumberError};
pub use mac::{Mac, MacParseError};
pub use model::{
    AddrAssignType, DeviceReport, Hardware, InterfaceReport, LinkState, LldpIdSubtype,
    LldpNeighbor, MAX_COMMAND_BYTES, MAX_REPLY_BYTES, ParseError, PciDevice, PcieLink, ScanCommand,
};
pub use operation::{Operation, OperationParams, OperationState, RejectReason, ReplyOutcome};
pub use payload::{Payload, PayloadKind, Target};
pub use ports::{
    Clock, CommandPublisher, CommandSource, Delivery, FactoryReporter, HardwareProbe, MesError,
    MesSource, OutgoingReply, ProbeError, ReplySink, ReplyStream, ReportError, TransportError,
};
pub use store::{
    Candidacy, DeliveryRecord, Election, NoStore, OperationReads, OperationStore, OperationView,
    RunSummary, StateStore, StoreError, StoredOperation, StoredReply,
};
pub use time::{Timestamp, TimestampError, human_duration};
