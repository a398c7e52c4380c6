//! Serial number resolution from DMI (SPEC §7).

use std::fmt;
use std::path::PathBuf;

use burnin_core::SerialNumber;

use crate::read::{Fault, Tree};

/// The DMI files tried, in order, below the sysfs root.
pub const DMI_SERIAL_FILES: [&str; 3] = [
    "class/dmi/id/product_serial",
    "class/dmi/id/board_serial",
    "class/dmi/id/chassis_serial",
];

/// Values firmware writes when nobody set a serial number (compared without
/// regard to case, after trimming whitespace).
pub const PLACEHOLDER_SERIALS: [&str; 5] = [
    "To Be Filled By O.E.M.",
    "Default string",
    "System Serial Number",
    "0",
    "None",
];

/// One DMI file that was read for the serial number and not used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SerialAttempt {
    /// The file read.
    pub path: PathBuf,
    /// Why its content was not used.
    pub rejected: Rejected,
}

/// Why a DMI file's content is not a usable serial number.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Rejected {
    /// The file does not exist.
    Missing,
    /// The file exists but could not be read (often: permission denied,
    /// the DMI serial files are readable by root only).
    Unreadable(crate::Problem),
    /// The file is empty (or whitespace only).
    Empty,
    /// The file holds a firmware placeholder such as "Default string".
    Placeholder(String),
    /// The file holds something that is not a valid serial number.
    Invalid {
        /// The content (trimmed, at most 64 characters shown).
        value: String,
        /// Why it is not a serial number.
        reason: String,
    },
}

impl fmt::Display for SerialAttempt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let path = self.path.display();
        match &self.rejected {
            Rejected::Missing => write!(f, "{path} does not exist"),
            Rejected::Unreadable(p) => write!(f, "{path} {p}"),
            Rejected::Empty => write!(f, "{path} is empty"),
            Rejected::Placeholder(v) => write!(f, "{path} holds the placeholder {v:?}"),
            Rejected::Invalid { value, reason } => {
                write!(f, "{path} holds {value:?}, which is not usable: {reason}")
            }
        }
    }
}

/// Whether `value` is a firmware placeholder rather than a serial number.
pub fn is_placeholder(value: &str) -> bool {
    let value = value.trim();
    PLACEHOLDER_SERIALS
        .iter()
        .any(|p| p.eq_ignore_ascii_case(value))
}

/// Tries the DMI files in order; returns the first usable serial, or every
/// attempt when none is.
pub(crate) fn from_dmi(tree: &Tree) -> Result<SerialNumber, Vec<SerialAttempt>> {
    let mut attempts = Vec::new();
    for rel in DMI_SERIAL_FILES {
        let path = tree.root().join(rel);
        let rejected = match tree.read(&path) {
            Err(Fault::Missing) => Rejected::Missing,
            Err(Fault::Problem(p)) => Rejected::Unreadable(p),
            Ok(v) => match judge(v) {
                Ok(sn) => return Ok(sn),
                Err(rejected) => rejected,
            },
        };
        attempts.push(SerialAttempt { path, rejected });
    }
    Err(attempts)
}

/// Whether the (trimmed) content of a DMI file is a usable serial number.
pub(crate) fn judge(v: String) -> Result<SerialNumber, Rejected> {
    if v.is_empty() {
        return Err(Rejected::Empty);
    }
    if is_placeholder(&v) {
        return Err(Rejected::Placeholder(v));
    }
    SerialNumber::new(v.as_str()).map_err(|e| Rejected::Invalid {
        value: v.chars().take(SerialNumber::MAX_LEN).collect(),
        reason: e.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_ignore_case_and_whitespace() {
        assert!(is_placeholder("To Be Filled By O.E.M."));
        assert!(is_placeholder(" to be filled by o.e.m.\n"));
        assert!(is_placeholder("DEFAULT STRING"));
        assert!(is_placeholder("0"));
        assert!(is_placeholder("none"));
        assert!(!is_placeholder("00"));
        assert!(!is_placeholder("Q186I15901"));
    }
}
