//! Where a device is, and how it is cabled (SPEC §11.1): the edge's
//! cabling plan ([`CablingPlan`]), a device's [`Location`], and the
//! cabling findings ([`CablingFinding`]).
//!
//! This module only decides; it reads no file. The edge reads the plan's
//! bytes and hands them to [`CablingPlan::parse`], which refuses a plan
//! that does not parse with its line and column ([`PlanError`]).
//!
//! # The plan
//!
//! CSV (RFC 4180 fields: `"…"` quotes a field with commas, `""` is a quote
//! in it) with the header row `switch,port,location,sn,interface`:
//!
//! ```text
//! switch,port,location,sn,interface
//! leaf-07,swp7,B3 shelf 12 left,Q186I15901,enp4s0
//! leaf-07,swp8,"B3 shelf 12, right",,
//! ```
//!
//! * `switch`, `port` and `location` are required; `sn` and `interface`
//!   may be empty. A row naming a switch/port that an earlier row named is
//!   an error, and so is a row naming a serial and interface (or a serial
//!   without interface) an earlier row named.
//! * Unquoted fields are trimmed of spaces and tabs; blank lines are
//!   skipped; a UTF-8 byte order mark is ignored; line ends are `\n` or
//!   `\r\n`. A quoted field ends on its line. Control characters are
//!   refused anywhere. Columns count characters from 1.
//!
//! # Matching (SPEC §11.1)
//!
//! A neighbour matches a row when the row's `switch` equals the
//! neighbour's `systemName`, else its `chassisId`, and the row's `port`
//! equals its `portId` (both compared ignoring ASCII case: host names and
//! MAC-valued ids are case-blind). A device's [`Location`] is the row its
//! neighbours match, looking at its interfaces by name; without a match, a
//! row naming its serial gives the planned location (`planned: true`).
//! What a neighbour says about itself is never a location without a row of
//! the plan that names it.
//!
//! # Findings
//!
//! [`CablingPlan::findings`] compares a reply with the rows naming its
//! serial, and the rows its neighbours match with the serial they name.
//! The words are [`CablingFinding`]'s `Display`, the house's one wording:
//! the edge files each as a [`HardwareFinding`](crate::HardwareFinding) of
//! kind [`FindingKind::Cabling`](crate::FindingKind::Cabling), which
//! [`crate::live::reasons`] shows.
//!
//! An interface the plan names on which the agent did not listen (an older
//! agent, or one without `CAP_NET_RAW`) cannot be checked: that is not a
//! finding, unless `requireCabling` is set — a check that was asked for and
//! cannot be confirmed does not pass, as with `requireLink`.
//!
//! # The plan and stored operations
//!
//! The plan is the edge's configuration, not part of an operation: the
//! operation does not record it or its digest. An operation resumed after a
//! restart, or taken over by a standby, is judged with the plan of the
//! process that finishes it (the rules `requireCabling` and
//! `requirePcieWidth` *are* recorded with the operation). Once results are
//! fixed, each device's location is stored with its result, so what was
//! shown and reported stays as it was whatever plan a later process reads.

use std::collections::HashMap;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::{DeviceReport, InterfaceReport, LldpNeighbor, SerialNumber};

/// Where a device is: `{"place": "B3 shelf 12 left", "switch": "leaf-07",
/// "port": "swp7", "planned": false}`.
///
/// `planned: false` when one of the device's LLDP neighbours matched a plan
/// row (the device *is* there); `planned: true` when no neighbour matched
/// and a plan row naming the device's serial gave the place it *should* be
/// in. A neighbour's self-reported system name is never a location by
/// itself: without the plan there is no location.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Location {
    /// What operators call the place (the plan's `location` column).
    pub place: String,
    /// The switch, as the plan names it.
    pub switch: String,
    /// The switch port, as the plan names it.
    pub port: String,
    /// Whether the place comes only from a plan row naming the serial (no
    /// LLDP neighbour matched).
    pub planned: bool,
}

/// Largest plan [`CablingPlan::parse`] reads.
pub const MAX_PLAN_BYTES: usize = 8 << 20;
/// Longest field of a plan row, in bytes.
pub const MAX_FIELD_BYTES: usize = 256;
/// Longest interface name (Linux `IFNAMSIZ` minus the terminating zero).
pub const MAX_INTERFACE_LEN: usize = 15;

/// The header row a plan starts with.
pub const HEADER: [&str; 5] = ["switch", "port", "location", "sn", "interface"];

/// One row of the plan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlanRow {
    /// The switch, as its LLDP `systemName` or `chassisId`.
    pub switch: String,
    /// The port, as its LLDP `portId`.
    pub port: String,
    /// What operators call the place.
    pub location: String,
    /// The unit that belongs there, if the plan says.
    pub sn: Option<SerialNumber>,
    /// Its interface cabled there, if the plan says.
    pub interface: Option<String>,
    /// The line of the plan it is on (from 1).
    pub line: usize,
}

impl PlanRow {
    fn location(&self, planned: bool) -> Location {
        Location {
            place: self.location.clone(),
            switch: self.switch.clone(),
            port: self.port.clone(),
            planned,
        }
    }
}

/// A parsed cabling plan; see the [module docs](self).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CablingPlan {
    rows: Vec<PlanRow>,
    /// (switch, port), ASCII-lower-cased → row.
    by_port: HashMap<(String, String), usize>,
    /// serial → its rows, in plan order.
    by_sn: HashMap<SerialNumber, Vec<usize>>,
}

/// Why a plan was refused, and where: `line 3, column 9: …`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}, column {column}: {kind}")]
pub struct PlanError {
    /// The line (from 1).
    pub line: usize,
    /// The column (from 1, in characters).
    pub column: usize,
    /// What is wrong.
    pub kind: PlanErrorKind,
}

/// What is wrong with a plan; see [`PlanError`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PlanErrorKind {
    /// The plan is larger than [`MAX_PLAN_BYTES`].
    #[error("the plan is {0} bytes; the limit is {MAX_PLAN_BYTES}")]
    TooLarge(usize),
    /// Not UTF-8 text.
    #[error("not UTF-8 text; save the plan as UTF-8")]
    NotUtf8,
    /// No header row.
    #[error(
        "the plan is empty; its first line must be the header switch,port,location,sn,interface"
    )]
    Empty,
    /// The first row is not the header.
    #[error("the header must be switch,port,location,sn,interface; found {0:?}")]
    BadHeader(String),
    /// A row without 5 fields.
    #[error("{0} fields; a row has 5: switch,port,location,sn,interface")]
    FieldCount(usize),
    /// A quoted field not closed on its line.
    #[error("quoted field not closed on this line")]
    OpenQuote,
    /// Something after a closing quote.
    #[error("expected , or the end of the line after a closing quote")]
    AfterQuote,
    /// A quote inside an unquoted field.
    #[error("a quote inside an unquoted field; quote the whole field and double the quote (\"\")")]
    StrayQuote,
    /// A control character.
    #[error("control character {0:?}")]
    Control(char),
    /// A required field is empty.
    #[error("{0} is empty")]
    Missing(&'static str),
    /// A field is longer than [`MAX_FIELD_BYTES`].
    #[error("{0} is longer than {MAX_FIELD_BYTES} bytes")]
    TooLong(&'static str),
    /// Not a serial number.
    #[error("sn: {0}")]
    BadSerial(String),
    /// Not an interface name.
    #[error(
        "interface {0:?} is not an interface name (1 to {MAX_INTERFACE_LEN} characters, no spaces or /)"
    )]
    BadInterface(String),
    /// A switch/port an earlier row named.
    #[error("{switch} {port} is already planned on line {first}")]
    DuplicatePort {
        /// The switch.
        switch: String,
        /// The port.
        port: String,
        /// The earlier row's line.
        first: usize,
    },
    /// A serial (and interface) an earlier row named.
    #[error("SN {sn}{} is already planned on line {first}", .interface.as_ref().map(|i| format!(" {i}")).unwrap_or_default())]
    DuplicateUnit {
        /// The serial.
        sn: SerialNumber,
        /// The interface, if named.
        interface: Option<String>,
        /// The earlier row's line.
        first: usize,
    },
}

/// One field of a line, and the column it starts at.
struct Field {
    text: String,
    column: usize,
}

/// Splits one line into fields (see the module docs for the rules).
fn split_line(line: &str, line_no: usize) -> Result<Vec<Field>, PlanError> {
    let err = |column: usize, kind| PlanError {
        line: line_no,
        column,
        kind,
    };
    let chars: Vec<char> = line.chars().collect();
    let mut fields = Vec::new();
    let mut i = 0;
    loop {
        // Leading blanks of an unquoted field (or before a quote).
        let start = i;
        while i < chars.len() && (chars[i] == ' ' || chars[i] == '\t') {
            i += 1;
        }
        if i < chars.len() && chars[i] == '"' {
            let open = i;
            i += 1;
            let mut text = String::new();
            loop {
                match chars.get(i) {
                    None => return Err(err(open + 1, PlanErrorKind::OpenQuote)),
                    Some('"') if chars.get(i + 1) == Some(&'"') => {
                        text.push('"');
                        i += 2;
                    }
                    Some('"') => {
                        i += 1;
                        break;
                    }
                    Some(&c) if c.is_control() => {
                        return Err(err(i + 1, PlanErrorKind::Control(c)));
                    }
                    Some(&c) => {
                        text.push(c);
                        i += 1;
                    }
                }
            }
            while i < chars.len() && (chars[i] == ' ' || chars[i] == '\t') {
                i += 1;
            }
            fields.push(Field {
                text,
                column: open + 1,
            });
            match chars.get(i) {
                None => return Ok(fields),
                Some(',') => i += 1,
                Some(_) => return Err(err(i + 1, PlanErrorKind::AfterQuote)),
            }
        } else {
            let mut text = String::new();
            let column = i + 1;
            loop {
                match chars.get(i) {
                    None | Some(',') => break,
                    Some('"') => return Err(err(i + 1, PlanErrorKind::StrayQuote)),
                    Some(&c) if c.is_control() && c != '\t' => {
                        return Err(err(i + 1, PlanErrorKind::Control(c)));
                    }
                    Some(&c) => {
                        text.push(c);
                        i += 1;
                    }
                }
            }
            let trimmed = text.trim_end_matches([' ', '\t']).to_owned();
            fields.push(Field {
                text: trimmed,
                column: if text.is_empty() { start + 1 } else { column },
            });
            match chars.get(i) {
                None => return Ok(fields),
                _ => i += 1,
            }
        }
    }
}

fn key(switch: &str, port: &str) -> (String, String) {
    (switch.to_ascii_lowercase(), port.to_ascii_lowercase())
}

impl CablingPlan {
    /// Parses a plan (see the [module docs](self)).
    ///
    /// # Errors
    /// The first thing wrong, with its line and column.
    pub fn parse(bytes: &[u8]) -> Result<Self, PlanError> {
        if bytes.len() > MAX_PLAN_BYTES {
            return Err(PlanError {
                line: 1,
                column: 1,
                kind: PlanErrorKind::TooLarge(bytes.len()),
            });
        }
        let text = match std::str::from_utf8(bytes) {
            Ok(t) => t,
            Err(e) => {
                let good = &bytes[..e.valid_up_to()];
                let line = 1 + good.iter().filter(|&&b| b == b'\n').count();
                let line_start = good.iter().rposition(|&b| b == b'\n').map_or(0, |p| p + 1);
                // The prefix is valid UTF-8 up to valid_up_to.
                let column = 1 + String::from_utf8_lossy(&good[line_start..]).chars().count();
                return Err(PlanError {
                    line,
                    column,
                    kind: PlanErrorKind::NotUtf8,
                });
            }
        };
        let text = text.strip_prefix('\u{feff}').unwrap_or(text);
        let mut plan = CablingPlan::default();
        let mut header_seen = false;
        for (n, raw) in text.split('\n').enumerate() {
            let line_no = n + 1;
            let line = raw.strip_suffix('\r').unwrap_or(raw);
            if line.trim_matches([' ', '\t']).is_empty() {
                continue;
            }
            let fields = split_line(line, line_no)?;
            if !header_seen {
                header_seen = true;
                let names: Vec<String> = fields
                    .iter()
                    .map(|f| f.text.trim().to_ascii_lowercase())
                    .collect();
                if names != HEADER {
                    let column = fields
                        .iter()
                        .zip(HEADER)
                        .find(|(f, h)| f.text.trim().to_ascii_lowercase() != *h)
                        .map_or_else(
                            || {
                                fields
                                    .get(HEADER.len())
                                    .map_or(line.chars().count() + 1, |f| f.column)
                            },
                            |(f, _)| f.column,
                        );
                    return Err(PlanError {
                        line: line_no,
                        column,
                        kind: PlanErrorKind::BadHeader(line.chars().take(200).collect()),
                    });
                }
                continue;
            }
            plan.add_row(fields, line, line_no)?;
        }
        if !header_seen {
            return Err(PlanError {
                line: 1,
                column: 1,
                kind: PlanErrorKind::Empty,
            });
        }
        Ok(plan)
    }

    fn add_row(&mut self, fields: Vec<Field>, line: &str, line_no: usize) -> Result<(), PlanError> {
        let err = |column: usize, kind| PlanError {
            line: line_no,
            column,
            kind,
        };
        if fields.len() != HEADER.len() {
            let column = fields
                .get(HEADER.len())
                .map_or(line.chars().count() + 1, |f| f.column);
            return Err(err(column, PlanErrorKind::FieldCount(fields.len())));
        }
        for (f, name) in fields.iter().zip(HEADER) {
            if f.text.len() > MAX_FIELD_BYTES {
                return Err(err(f.column, PlanErrorKind::TooLong(name)));
            }
            if f.text.is_empty() && matches!(name, "switch" | "port" | "location") {
                return Err(err(f.column, PlanErrorKind::Missing(name)));
            }
        }
        let mut it = fields.into_iter();
        let (Some(switch), Some(port), Some(location), Some(sn), Some(interface)) =
            (it.next(), it.next(), it.next(), it.next(), it.next())
        else {
            return Err(err(1, PlanErrorKind::FieldCount(0)));
        };
        let sn_col = sn.column;
        let sn = if sn.text.is_empty() {
            None
        } else {
            Some(
                SerialNumber::new(sn.text)
                    .map_err(|e| err(sn_col, PlanErrorKind::BadSerial(e.to_string())))?,
            )
        };
        let interface = if interface.text.is_empty() {
            None
        } else if interface.text.chars().count() > MAX_INTERFACE_LEN
            || interface
                .text
                .chars()
                .any(|c| c.is_whitespace() || c == '/' || c == ':')
        {
            return Err(err(
                interface.column,
                PlanErrorKind::BadInterface(interface.text),
            ));
        } else {
            Some(interface.text)
        };
        let k = key(&switch.text, &port.text);
        if let Some(&first) = self.by_port.get(&k) {
            return Err(err(
                switch.column,
                PlanErrorKind::DuplicatePort {
                    switch: switch.text,
                    port: port.text,
                    first: self.rows[first].line,
                },
            ));
        }
        if let Some(sn) = &sn
            && let Some(first) = self
                .by_sn
                .get(sn)
                .into_iter()
                .flatten()
                .find(|&&r| self.rows[r].interface == interface)
        {
            return Err(err(
                sn_col,
                PlanErrorKind::DuplicateUnit {
                    sn: sn.clone(),
                    interface,
                    first: self.rows[*first].line,
                },
            ));
        }
        let n = self.rows.len();
        self.by_port.insert(k, n);
        if let Some(sn) = &sn {
            self.by_sn.entry(sn.clone()).or_default().push(n);
        }
        self.rows.push(PlanRow {
            switch: switch.text,
            port: port.text,
            location: location.text,
            sn,
            interface,
            line: line_no,
        });
        Ok(())
    }

    /// The rows, in plan order.
    pub fn rows(&self) -> &[PlanRow] {
        &self.rows
    }

    /// The row a neighbour matches: by `systemName`, else `chassisId`, and
    /// `portId`.
    pub fn row_for(&self, n: &LldpNeighbor) -> Option<&PlanRow> {
        let by_name = n
            .system_name
            .as_deref()
            .and_then(|name| self.by_port.get(&key(name, &n.port_id)));
        by_name
            .or_else(|| self.by_port.get(&key(&n.chassis_id, &n.port_id)))
            .map(|&r| &self.rows[r])
    }

    /// The first row naming `sn`, in plan order.
    fn first_row_of(&self, sn: &SerialNumber) -> Option<&PlanRow> {
        self.by_sn
            .get(sn)
            .and_then(|rows| rows.first())
            .map(|&r| &self.rows[r])
    }

    /// Where a serial should be: the first row naming it (`planned: true`),
    /// for a device that has not replied.
    pub fn planned(&self, sn: &SerialNumber) -> Option<Location> {
        self.first_row_of(sn).map(|r| r.location(true))
    }

    /// Where a device is (see the [module docs](self)): the row its
    /// neighbours match (interfaces by name), else [`planned`](Self::planned).
    pub fn locate(&self, report: &DeviceReport) -> Option<Location> {
        by_name(&report.interfaces)
            .into_iter()
            .flat_map(|i| i.lldp.iter().flatten())
            .find_map(|n| self.row_for(n))
            .map(|r| r.location(false))
            .or_else(|| self.planned(&report.sn))
    }

    /// The cabling findings of a reply, by interface name; with `strict`
    /// (`requireCabling`) also the interfaces the plan names on which the
    /// agent did not listen.
    pub fn findings(&self, report: &DeviceReport, strict: bool) -> Vec<CablingFinding> {
        let interfaces = by_name(&report.interfaces);
        let mut out = Vec::new();
        // The rows naming this serial: is it cabled where they say?
        let own: &[usize] = self.by_sn.get(&report.sn).map_or(&[], Vec::as_slice);
        let matches = |i: &InterfaceReport, row: &PlanRow| {
            i.lldp
                .iter()
                .flatten()
                .any(|n| self.row_for(n).is_some_and(|m| std::ptr::eq(m, row)))
        };
        for &r in own {
            let row = &self.rows[r];
            // Interfaces another row of this serial accounts for (names,
            // or is matched by) are not this row's to judge.
            let free = |i: &&InterfaceReport| {
                !own.iter().filter(|&&o| o != r).any(|&o| {
                    let other = &self.rows[o];
                    other.interface.as_deref() == Some(i.interface.as_str()) || matches(i, other)
                })
            };
            let checked: Option<&InterfaceReport> = match &row.interface {
                Some(name) => interfaces.iter().copied().find(|i| &i.interface == name),
                None if interfaces.iter().any(|i| matches(i, row)) => continue,
                // No interface named: of the interfaces no other row of
                // this serial accounts for, the first that heard someone,
                // else the first that listened, else the first.
                None => {
                    let free: Vec<&InterfaceReport> =
                        interfaces.iter().copied().filter(free).collect();
                    free.iter()
                        .copied()
                        .find(|i| i.lldp.as_ref().is_some_and(|l| !l.is_empty()))
                        .or_else(|| free.iter().copied().find(|i| i.lldp.is_some()))
                        .or_else(|| free.first().copied())
                }
            };
            let Some(i) = checked else {
                // The named interface is not on the device: the MAC check
                // says what is missing.
                continue;
            };
            if matches(i, row) {
                continue;
            }
            let planned = Planned {
                switch: row.switch.clone(),
                port: row.port.clone(),
            };
            let finding = match &i.lldp {
                None if strict => CablingFinding::NotListening {
                    interface: i.interface.clone(),
                    plan: planned,
                },
                None => continue,
                Some(heard) => match heard.first() {
                    None => CablingFinding::NoNeighbour {
                        interface: i.interface.clone(),
                        plan: planned,
                    },
                    Some(n) => CablingFinding::Miscabled {
                        interface: i.interface.clone(),
                        switch: n
                            .system_name
                            .clone()
                            .unwrap_or_else(|| n.chassis_id.clone()),
                        port: n.port_id.clone(),
                        plan: planned,
                        place: row.location.clone(),
                    },
                },
            };
            out.push(finding);
        }
        // The rows its neighbours match: is it the unit they name?
        let mut seen: Vec<usize> = Vec::new();
        for i in &interfaces {
            for n in i.lldp.iter().flatten() {
                let Some(row) = self.row_for(n) else {
                    continue;
                };
                let Some(sn) = &row.sn else {
                    continue;
                };
                if sn == &report.sn || seen.contains(&row.line) {
                    continue;
                }
                seen.push(row.line);
                out.push(CablingFinding::WrongUnit {
                    interface: i.interface.clone(),
                    place: row.location.clone(),
                    sn: sn.clone(),
                });
            }
        }
        out.sort_by(|a, b| a.interface().cmp(b.interface()));
        out
    }
}

/// The interfaces in order of name.
fn by_name(interfaces: &[InterfaceReport]) -> Vec<&InterfaceReport> {
    let mut v: Vec<&InterfaceReport> = interfaces.iter().collect();
    v.sort_by(|a, b| a.interface.cmp(&b.interface));
    v
}

/// A switch port as the plan names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Planned {
    /// The switch.
    pub switch: String,
    /// The port.
    pub port: String,
}

/// A cabling finding (SPEC §11.1); `Display` is its one wording.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum CablingFinding {
    /// `enp4s0 cabled to leaf-07 swp9, plan says leaf-07 swp7 (B3 shelf 12)`.
    Miscabled {
        /// The interface.
        interface: String,
        /// The switch it is cabled to (the neighbour's `systemName`, else
        /// its `chassisId`).
        switch: String,
        /// The port it is cabled to (`portId`).
        port: String,
        /// Where the plan says.
        plan: Planned,
        /// The plan row's location.
        place: String,
    },
    /// `no LLDP neighbour on enp4s0, plan says leaf-07 swp7`.
    NoNeighbour {
        /// The interface.
        interface: String,
        /// Where the plan says.
        plan: Planned,
    },
    /// `B3 shelf 12 should hold SN X`, on the device found there instead.
    WrongUnit {
        /// The interface whose neighbour matched the place's row.
        interface: String,
        /// The place.
        place: String,
        /// The serial the plan puts there.
        sn: SerialNumber,
    },
    /// `enp4s0 did not report LLDP (agent not listening), plan says leaf-07
    /// swp7` — only under `requireCabling`.
    NotListening {
        /// The interface.
        interface: String,
        /// Where the plan says.
        plan: Planned,
    },
}

impl CablingFinding {
    /// The interface it concerns.
    pub fn interface(&self) -> &str {
        match self {
            CablingFinding::Miscabled { interface, .. }
            | CablingFinding::NoNeighbour { interface, .. }
            | CablingFinding::WrongUnit { interface, .. }
            | CablingFinding::NotListening { interface, .. } => interface,
        }
    }
}

impl fmt::Display for CablingFinding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CablingFinding::Miscabled {
                interface,
                switch,
                port,
                plan,
                place,
            } => write!(
                f,
                "{interface} cabled to {switch} {port}, plan says {} {} ({place})",
                plan.switch, plan.port
            ),
            CablingFinding::NoNeighbour { interface, plan } => write!(
                f,
                "no LLDP neighbour on {interface}, plan says {} {}",
                plan.switch, plan.port
            ),
            CablingFinding::WrongUnit { place, sn, .. } => {
                write!(f, "{place} should hold SN {sn}")
            }
            CablingFinding::NotListening { interface, plan } => write!(
                f,
                "{interface} did not report LLDP (agent not listening), plan says {} {}",
                plan.switch, plan.port
            ),
        }
    }
}

#[cfg(test)]
mod tests;
