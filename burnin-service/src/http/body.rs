//! The JSON bodies of the API: each is the Rust type the handlers return
//! and the schema `GET /openapi.json` publishes (utoipa's `ToSchema`), so
//! the document cannot describe a body the server does not send.
//!
//! Fields are declared in the order they go on the wire (alphabetical by
//! their JSON names). Values the core already writes as JSON
//! ([`Timestamp`], [`SerialNumber`], [`Mac`], [`FindingKind`]) are kept
//! as core types and described as strings; the closed sets a client
//! branches on (states, targets, roles, `"1"`/`"0"`) are enums here, each
//! converted from its core type with an exhaustive `match`.

use burnin_core::live::{Board, LiveDevice};
use burnin_core::{
    FindingKind, HardwareFinding, Mac, MacInfo as CoreMacInfo, OperationId as CoreOperationId,
    OperationView, SerialNumber, Timestamp,
};
use serde::Serialize;
use utoipa::openapi::RefOr;
use utoipa::openapi::extensions::ExtensionsBuilder;
use utoipa::openapi::schema::{ObjectBuilder, OneOfBuilder, Schema, SchemaType, Type};
use utoipa::{PartialSchema, ToSchema};

/// The schema of an operation id: a whole number or a string of 1 to 128
/// printable characters, echoed with the JSON type it came in as.
fn operation_id_schema() -> RefOr<Schema> {
    OneOfBuilder::new()
        .item(
            ObjectBuilder::new()
                .schema_type(Type::Integer)
                .format(Some(utoipa::openapi::SchemaFormat::KnownFormat(
                    utoipa::openapi::KnownFormat::Int64,
                )))
                .minimum(Some(0)),
        )
        .item(
            ObjectBuilder::new()
                .schema_type(Type::String)
                .min_length(Some(1))
                .max_length(Some(CoreOperationId::MAX_LEN)),
        )
        .description(Some(
            "An operation id: a whole number or a string (1 to 128 printable characters), \
             echoed with the JSON type it came in as.",
        ))
        .into()
}

/// The body of `POST /scans` (SPEC §7). The server reads it with
/// [`burnin_core::request::parse_scan_request_from`], which refuses
/// unknown fields and names the field at fault; this type is what a client
/// sends.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ScanRequest {
    /// How far a device's clock may be from the edge's before it gets a
    /// finding (default `serve --clock-tolerance`, 120).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub clock_tolerance_secs: Option<u64>,
    /// Serials that must answer; collection ends once all have.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expected: Option<Vec<String>>,
    /// How long a failing MES lookup is retried before its device is left
    /// undecided (0 to 86400; default `serve --mes-outage-wait`, 600).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mes_outage_wait_secs: Option<u64>,
    /// How long, in all, the operation keeps trying a factory payload whose
    /// endpoint is down (unreachable, timeouts, 5xx, 429) before giving it
    /// up (0 to 86400; default `serve --delivery-outage-wait`, 600).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub delivery_outage_wait_secs: Option<u64>,
    /// The operation id.
    #[schema(schema_with = operation_id_schema)]
    pub operation_id: CoreOperationId,
    /// Operator, sent in the command and in directBurn.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub operator_id: Option<String>,
    /// Run an id the edge already holds again (a new run, with idempotency
    /// keys of its own); without it such an id is refused with 409.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rescan: Option<bool>,
    /// A cabling finding (SPEC §11.1: cabled to another port than the
    /// edge's plan says, no LLDP neighbour where it expects one, the wrong
    /// unit at a planned place) fails that interface's MAC (default: `serve
    /// --require-cabling`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub require_cabling: Option<bool>,
    /// A device whose clock is off by more than the clock tolerance fails.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub require_clock: Option<bool>,
    /// An interface without carrier fails its MAC (default: `serve
    /// --require-link`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub require_link: Option<bool>,
    /// A network card whose PCIe link trained narrower than its maximum
    /// width fails its MAC (SPEC §11.1; default: `serve
    /// --require-pcie-width`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub require_pcie_width: Option<bool>,
    /// Scan mode, sent in the command and in directBurn.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scan_mode: Option<i64>,
    /// How long collection goes on after every expected serial replied, to
    /// catch a second board with the same serial (0 to 60000; default
    /// `serve --settle`, 500).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub settle_ms: Option<u64>,
    /// `pair` (default) or `directBurn`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target: Option<Target>,
    /// How long to collect, in seconds (default 30).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub window_secs: Option<u64>,
}

/// The answer to `POST /scans`: the operation started.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ScanStarted {
    /// When collection ends at the latest (RFC 3339).
    #[schema(value_type = String, format = DateTime)]
    pub deadline: Timestamp,
    /// The operation id, as given.
    #[schema(schema_with = operation_id_schema)]
    pub operation_id: CoreOperationId,
}

/// Every error: what is wrong and what to do.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Error {
    /// The message.
    pub error: String,
}

/// A 503: `GET /healthz` while the active edge cannot work, `POST /scans`
/// while the broker is down, on a standby, or while shutting down.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Unavailable {
    /// On `POST /scans`: the active edge as it advertised itself
    /// (`--advertise-url`), null if none is recorded; send `POST /scans`
    /// there. `GET /healthz` leaves it out.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
    pub active: Option<Option<String>>,
    /// What is wrong and what to do.
    pub error: String,
    /// This edge's role; left out while shutting down.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub role: Option<Role>,
}

/// An edge's role (`serve --store postgres://…`: one active, the others
/// standbys; with SQLite always active).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Runs operations.
    Active,
    /// Answers reads; `POST /scans` goes to the active edge.
    Standby,
}

impl From<crate::service::Role> for Role {
    fn from(r: crate::service::Role) -> Self {
        match r {
            crate::service::Role::Active => Role::Active,
            crate::service::Role::Standby => Role::Standby,
        }
    }
}

/// The answer to `GET /healthz` when the edge can work.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Health {
    /// On a standby: the active edge as it advertised itself
    /// (`--advertise-url`), null if none is recorded. The active edge
    /// leaves it out.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
    pub active: Option<Option<String>>,
    /// `up`: the active edge's broker connection (a standby has none and
    /// leaves it out).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
    pub broker: Option<&'static str>,
    /// This edge's role.
    pub role: Role,
}

/// An operation's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum OperationState {
    /// Waiting for replies.
    Collecting,
    /// Delivering payloads.
    Reporting,
    /// Every payload delivered, no error.
    Done,
    /// Finished with an error.
    Failed,
}

impl From<burnin_core::OperationState> for OperationState {
    fn from(s: burnin_core::OperationState) -> Self {
        use burnin_core::OperationState as S;
        match s {
            S::Collecting => OperationState::Collecting,
            S::Reporting => OperationState::Reporting,
            S::Done => OperationState::Done,
            S::Failed => OperationState::Failed,
        }
    }
}

/// Where passing devices are sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
pub enum Target {
    /// The Pair API.
    #[serde(rename = "pair")]
    Pair,
    /// The directBurn API.
    #[serde(rename = "directBurn")]
    DirectBurn,
}

impl From<burnin_core::Target> for Target {
    fn from(t: burnin_core::Target) -> Self {
        match t {
            burnin_core::Target::Pair => Target::Pair,
            burnin_core::Target::DirectBurn => Target::DirectBurn,
        }
    }
}

/// A device's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum DeviceState {
    /// Expected, no reply yet.
    Waiting,
    /// Reply recorded, MES has not answered yet.
    Replied,
    /// Every MAC matched MES.
    Passed,
    /// A mismatch, or no reply; see `details`.
    Failed,
    /// MES could not be asked (an outage outlasting the operation's MES
    /// outage wait): no verdict, not reported to the factory.
    Undecided,
}

impl From<burnin_core::live::DeviceState> for DeviceState {
    fn from(s: burnin_core::live::DeviceState) -> Self {
        use burnin_core::live::DeviceState as S;
        match s {
            S::Waiting => DeviceState::Waiting,
            S::Replied => DeviceState::Replied,
            S::Passed => DeviceState::Passed,
            S::Failed => DeviceState::Failed,
            S::Undecided => DeviceState::Undecided,
        }
    }
}

/// A string enum of `"1"` and `"0"` whose generated-client members are
/// named `one_name` and `zero_name` (`x-enum-varnames`), not `VALUE_0`.
fn bit_schema(description: &str, one_name: &str, zero_name: &str) -> RefOr<Schema> {
    ObjectBuilder::new()
        .schema_type(SchemaType::new(Type::String))
        .description(Some(description))
        .enum_values(Some(["1", "0"]))
        .extensions(Some(
            ExtensionsBuilder::new()
                .add("x-enum-varnames", serde_json::json!([one_name, zero_name]))
                .build(),
        ))
        .into()
}

/// A device's verdict, as the factory log has it: `"1"` passed, `"0"`
/// failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Verdict {
    /// `"1"`: at least one MAC and every MAC matched.
    #[serde(rename = "1")]
    Pass,
    /// `"0"`: anything else.
    #[serde(rename = "0")]
    Fail,
}

impl PartialSchema for Verdict {
    fn schema() -> RefOr<Schema> {
        bit_schema(
            "A device's verdict as the factory log has it: `\"1\"` passed, `\"0\"` failed.",
            "PASS",
            "FAIL",
        )
    }
}

impl ToSchema for Verdict {}

impl Verdict {
    /// The verdict written as the log's `result` (`"1"` or `"0"`).
    fn from_log(result: &str) -> Self {
        if result == burnin_core::Verdict::Pass.as_str() {
            Verdict::Pass
        } else {
            Verdict::Fail
        }
    }
}

/// Whether an interface's MAC is recorded in MES for the serial: `"1"`
/// matches, `"0"` does not.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum ScanStatus {
    /// `"1"`: the MAC is recorded in MES for this serial.
    #[serde(rename = "1")]
    Match,
    /// `"0"`: not recorded, invalid, or a MES MAC no interface has.
    #[serde(rename = "0")]
    Mismatch,
}

impl PartialSchema for ScanStatus {
    fn schema() -> RefOr<Schema> {
        bit_schema(
            "Whether the MAC is recorded in MES for the serial: `\"1\"` matches, `\"0\"` \
             does not (not recorded, invalid, or a MES MAC no interface has).",
            "MATCH",
            "MISMATCH",
        )
    }
}

impl ToSchema for ScanStatus {}

impl From<burnin_core::ScanStatus> for ScanStatus {
    fn from(s: burnin_core::ScanStatus) -> Self {
        match s {
            burnin_core::ScanStatus::Match => ScanStatus::Match,
            burnin_core::ScanStatus::Mismatch => ScanStatus::Mismatch,
        }
    }
}

/// One line of a device's `macinfo` (as in the factory log).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct MacInfo {
    /// The interface; empty for a MES MAC the device does not have.
    pub interface: String,
    /// The address, `xx:xx:xx:xx:xx:xx`.
    #[schema(value_type = String)]
    pub macaddr: Mac,
    /// Whether it matched.
    pub scanstatus: ScanStatus,
}

impl From<&CoreMacInfo> for MacInfo {
    fn from(m: &CoreMacInfo) -> Self {
        MacInfo {
            interface: m.interface.clone(),
            macaddr: m.macaddr,
            scanstatus: m.scanstatus.into(),
        }
    }
}

/// A hardware finding (SPEC §10.1).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Finding {
    /// The interface it concerns, if one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub interface: Option<String>,
    /// `macOverridden`, `softwareAddress`, `noDriver`, `sharedMac`,
    /// `noLink`, `serialConflict`, `clock`, `mesOutage`; a newer edge may
    /// add kinds.
    #[schema(value_type = String)]
    pub kind: FindingKind,
    /// The sentence shown to people.
    pub message: String,
}

impl From<&HardwareFinding> for Finding {
    fn from(f: &HardwareFinding) -> Self {
        Finding {
            interface: f.interface.clone(),
            kind: f.kind,
            message: f.message.clone(),
        }
    }
}

/// Where a device is (SPEC §11.1).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Location {
    /// What operators call the place (the plan's `location` column), e.g.
    /// `B3 shelf 12 left`.
    pub place: String,
    /// `false`: one of the device's LLDP neighbours matched the plan row
    /// (it is there). `true`: no neighbour matched; a plan row naming its
    /// serial says it should be there.
    pub planned: bool,
    /// The switch port, as the plan names it.
    pub port: String,
    /// The switch, as the plan names it.
    pub switch: String,
}

impl From<&burnin_core::Location> for Location {
    fn from(l: &burnin_core::Location) -> Self {
        Location {
            place: l.place.clone(),
            planned: l.planned,
            port: l.port.clone(),
            switch: l.switch.clone(),
        }
    }
}

/// A device of an operation, as it is now.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Device {
    /// Why it failed (and what else is worth knowing), in words.
    pub details: Vec<String>,
    /// Whether the operation expected it.
    pub expected: bool,
    /// Hardware findings (SPEC §10.1); left out when none.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    #[schema(required = false)]
    pub findings: Vec<Finding>,
    /// Its host name, once it replied.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
    /// Where it is, from the edge's cabling plan (SPEC §11.1); left out
    /// when unknown (no plan, or the plan neither matches its LLDP
    /// neighbours nor names its serial).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub location: Option<Location>,
    /// Per-MAC statuses, once passed or failed.
    pub macinfo: Vec<MacInfo>,
    /// The log's result, once passed or failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub result: Option<Verdict>,
    /// The serial number.
    #[schema(value_type = String)]
    pub sn: SerialNumber,
    /// Its state.
    pub state: DeviceState,
}

impl From<&LiveDevice> for Device {
    fn from(d: &LiveDevice) -> Self {
        Device {
            details: d.details.clone(),
            expected: d.expected,
            findings: d.findings.iter().map(Finding::from).collect(),
            hostname: d.hostname.clone(),
            location: d.location.as_ref().map(Location::from),
            macinfo: d.macinfo.iter().map(MacInfo::from).collect(),
            result: d.result.map(Verdict::from_log),
            sn: d.sn.clone(),
            state: d.state.into(),
        }
    }
}

/// A delivery to the factory, as the store recorded it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Delivery {
    /// When (RFC 3339).
    #[schema(value_type = String, format = DateTime)]
    pub at: Timestamp,
    /// Why it was not accepted.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// `log`, `pair`, `directBurn` or `notify`.
    pub kind: &'static str,
    /// Whether it was accepted.
    pub ok: bool,
}

/// One run of an operation id.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Run {
    /// When it finished.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub finished: Option<Timestamp>,
    /// Its number (0: recorded before runs were numbered).
    pub run: u64,
    /// When it started.
    #[schema(value_type = String, format = DateTime)]
    pub started: Timestamp,
    /// Its state.
    pub state: OperationState,
}

/// The reply messages an operation handled (`replyCounts`), as `scan
/// --json` names them.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ReplyCounts {
    /// Recorded: one per serial.
    pub accepted: u64,
    /// Further replies from a serial whose facts differ (another board).
    pub conflict: u64,
    /// Further replies from a serial that had already replied.
    pub duplicate: u64,
    /// Flagged by the broker as delivered before (each also counted
    /// above).
    pub redelivered: u64,
    /// Moved to the rejected queue.
    pub rejected: u64,
}

/// An operation (`GET /scans/{operationId}`, items of `GET /scans`): the
/// store's record with its devices' live states.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Operation {
    /// When collection ended: only for an operation that finished in this
    /// process (and is still in its memory).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub collected: Option<Timestamp>,
    /// When collection ends at the latest.
    #[schema(value_type = String, format = DateTime)]
    pub deadline: Timestamp,
    /// Deliveries so far.
    pub deliveries: Vec<Delivery>,
    /// Every device: expected ones from the start, others once they
    /// replied.
    pub devices: Vec<Device>,
    /// What went wrong.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Serials expected.
    #[schema(value_type = Vec<String>)]
    pub expected: Vec<SerialNumber>,
    /// When it finished.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub finished: Option<Timestamp>,
    /// The last event this snapshot includes (see `GET /events`).
    pub last_event_id: u64,
    /// Replies recorded after this run stopped collecting (a twin answering
    /// late, a slow device); left out when none.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub late_replies: Option<u64>,
    /// The operation id.
    #[schema(schema_with = operation_id_schema)]
    pub operation_id: CoreOperationId,
    /// Replies accepted so far.
    pub replies: u64,
    /// Every reply counter: only for an operation that finished in this
    /// process (and is still in its memory).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reply_counts: Option<ReplyCounts>,
    /// Whether a cabling finding fails its interface's MAC (SPEC §11.1).
    pub require_cabling: bool,
    /// Whether an interface without carrier fails its MAC (SPEC §10.1).
    pub require_link: bool,
    /// Whether a network card narrower than its maximum PCIe width fails
    /// its MAC (SPEC §11.1).
    pub require_pcie_width: bool,
    /// Which run of the id this is (the latest).
    pub run: u64,
    /// Every run of the id, oldest first.
    pub runs: Vec<Run>,
    /// When collection started.
    #[schema(value_type = String, format = DateTime)]
    pub started: Timestamp,
    /// Its state.
    pub state: OperationState,
    /// `pair` or `directBurn`.
    pub target: Target,
}

impl Operation {
    /// The operation `view` as the store records it, with what `board`
    /// knows of it (device states, and the state, replies, error and
    /// finish time, which change together there; the store only lags) and
    /// the board's last event id.
    pub fn new(view: &OperationView, board: &Board) -> Operation {
        let live = board.operation(&view.params.operation_id);
        let devices = match live {
            Some(l) => l.devices.iter().map(Device::from).collect(),
            None => stored_devices(view).iter().map(Device::from).collect(),
        };
        Operation {
            collected: live.and_then(|l| l.collected),
            deadline: view.deadline,
            deliveries: view
                .deliveries
                .iter()
                .map(|d| Delivery {
                    at: d.at,
                    error: d.error.clone(),
                    kind: d.kind.as_str(),
                    ok: d.error.is_none(),
                })
                .collect(),
            devices,
            error: live
                .and_then(|l| l.error.clone())
                .or_else(|| view.error.clone()),
            expected: view.params.expected.clone(),
            finished: live.and_then(|l| l.finished).or(view.finished),
            last_event_id: board.last_id(),
            late_replies: (view.late_replies > 0).then_some(view.late_replies),
            operation_id: view.params.operation_id.clone(),
            replies: live.map_or(view.replies, |l| l.replies as u64),
            reply_counts: live.and_then(|l| l.counters).map(|c| ReplyCounts {
                accepted: c.accepted as u64,
                conflict: c.conflicts as u64,
                duplicate: c.duplicates as u64,
                redelivered: c.redelivered as u64,
                rejected: c.rejected as u64,
            }),
            require_cabling: view.params.require_cabling,
            require_link: view.params.require_link,
            require_pcie_width: view.params.require_pcie_width,
            run: view.params.run,
            runs: view
                .runs
                .iter()
                .map(|r| Run {
                    finished: r.finished,
                    run: r.run,
                    started: r.started,
                    state: r.state.into(),
                })
                .collect(),
            started: view.started,
            state: live.map_or(view.state, |l| l.state).into(),
            target: view.params.target.into(),
        }
    }
}

/// Where a serial was seen (`GET /devices/{sn}`).
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DeviceSighting {
    /// The device in that operation.
    pub device: Device,
    /// The operation.
    #[schema(schema_with = operation_id_schema)]
    pub operation_id: CoreOperationId,
    /// When the operation started.
    #[schema(value_type = String, format = DateTime)]
    pub started: Timestamp,
    /// The operation's state.
    pub state: OperationState,
}

/// The devices of an operation the board no longer holds, from the
/// store: its results once collection ended, else every expected serial
/// waiting.
pub(crate) fn stored_devices(view: &OperationView) -> Vec<LiveDevice> {
    let expected = &view.params.expected;
    match &view.results {
        Some(results) => results
            .iter()
            .map(|r| LiveDevice::from_result(r, expected.contains(&r.sn), None))
            .collect(),
        None => {
            let mut seen = std::collections::HashSet::new();
            expected
                .iter()
                .filter(|sn| seen.insert(*sn))
                .map(|sn| waiting(sn.clone()))
                .collect()
        }
    }
}

fn waiting(sn: SerialNumber) -> LiveDevice {
    LiveDevice {
        sn,
        state: burnin_core::live::DeviceState::Waiting,
        expected: true,
        hostname: None,
        result: None,
        macinfo: Vec::new(),
        details: Vec::new(),
        findings: Vec::new(),
        location: None,
    }
}

#[cfg(test)]
mod tests {
    use burnin_core::{FindingKind, ScanStatus as CoreScanStatus};

    use super::*;

    /// Every field the document gives `POST /scans` is one the server's
    /// parser takes, with that JSON type (it refuses unknown fields).
    #[test]
    fn a_scan_request_with_every_field_is_what_the_server_parses() {
        let request = ScanRequest {
            clock_tolerance_secs: Some(90),
            expected: Some(vec!["Q186I15901".into()]),
            mes_outage_wait_secs: Some(60),
            delivery_outage_wait_secs: Some(30),
            operation_id: CoreOperationId::Number(42),
            operator_id: Some("op-17".into()),
            rescan: Some(true),
            require_cabling: Some(true),
            require_clock: Some(true),
            require_link: Some(true),
            require_pcie_width: Some(true),
            scan_mode: Some(1),
            settle_ms: Some(250),
            target: Some(Target::DirectBurn),
            window_secs: Some(20),
        };
        let body = serde_json::to_vec(&request).unwrap();
        let p = burnin_core::request::parse_scan_request(&body, "hwinfo_queue")
            .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&body)));
        assert_eq!(p.operation_id, CoreOperationId::Number(42));
        assert_eq!(p.target, burnin_core::Target::DirectBurn);
        assert!(p.require_link && p.require_clock && p.rescan);
        assert!(p.require_cabling && p.require_pcie_width);
        assert_eq!(p.window, std::time::Duration::from_secs(20));
        assert_eq!(p.settle, std::time::Duration::from_millis(250));
    }

    /// The event stream writes [`LiveDevice`] with the core's own
    /// serializer; a snapshot's [`Device`] must read the same.
    #[test]
    fn a_device_reads_as_the_event_stream_writes_it() {
        let sn: SerialNumber = "Q186I15901".parse().unwrap();
        let mac: Mac = "e0:18:7d:2e:ca:68".parse().unwrap();
        for (state, result, findings) in [
            (burnin_core::live::DeviceState::Waiting, None, vec![]),
            (
                burnin_core::live::DeviceState::Failed,
                Some("0"),
                vec![HardwareFinding {
                    kind: FindingKind::NoLink,
                    interface: Some("enp4s0".into()),
                    message: "enp4s0: no link".into(),
                }],
            ),
            (burnin_core::live::DeviceState::Passed, Some("1"), vec![]),
        ] {
            let live = LiveDevice {
                sn: sn.clone(),
                state,
                expected: true,
                hostname: Some("dut-1".into()),
                result,
                macinfo: vec![CoreMacInfo {
                    interface: "enp4s0".into(),
                    macaddr: mac,
                    scanstatus: CoreScanStatus::Mismatch,
                }],
                details: vec!["some words".into()],
                location: (state == burnin_core::live::DeviceState::Passed).then(|| {
                    burnin_core::Location {
                        place: "B3 shelf 12 left".into(),
                        switch: "leaf-07".into(),
                        port: "swp7".into(),
                        planned: false,
                    }
                }),
                findings,
            };
            assert_eq!(
                serde_json::to_value(Device::from(&live)).unwrap(),
                serde_json::to_value(&live).unwrap()
            );
        }
    }
}
