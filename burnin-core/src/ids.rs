//! Identifiers: serial numbers and operation ids.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A device serial number: 1 to 64 printable ASCII characters, no spaces.
///
/// It is kept exactly as given; placing it in a URL (percent-encoding) is the
/// HTTP adapter's job.
///
/// ```
/// use burnin_core::SerialNumber;
/// let sn: SerialNumber = "Q186I15901".parse().unwrap();
/// assert_eq!(sn.as_str(), "Q186I15901");
/// assert!("has space".parse::<SerialNumber>().is_err());
/// ```
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SerialNumber(String);

/// Why a string is not a [`SerialNumber`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SerialNumberError {
    /// The serial was empty.
    #[error("serial number is empty; expected 1 to 64 printable ASCII characters")]
    Empty,
    /// The serial was longer than 64 characters.
    #[error("serial number {shown:?} is {len} characters long; at most 64 are allowed")]
    TooLong {
        /// The first 64 characters.
        shown: String,
        /// Its length in characters.
        len: usize,
    },
    /// The serial held a space, a control or a non-ASCII character.
    #[error(
        "serial number {shown:?} contains {bad:?}; only printable ASCII without spaces is allowed"
    )]
    BadCharacter {
        /// The serial (first 64 characters).
        shown: String,
        /// The first offending character.
        bad: char,
    },
}

impl SerialNumber {
    /// The longest serial number accepted, in characters.
    pub const MAX_LEN: usize = 64;

    /// Validates a serial number.
    pub fn new(s: impl Into<String>) -> Result<Self, SerialNumberError> {
        let s = s.into();
        let shown = || s.chars().take(Self::MAX_LEN).collect::<String>();
        if s.is_empty() {
            return Err(SerialNumberError::Empty);
        }
        if let Some(bad) = s.chars().find(|c| !c.is_ascii_graphic()) {
            return Err(SerialNumberError::BadCharacter {
                shown: shown(),
                bad,
            });
        }
        if s.len() > Self::MAX_LEN {
            return Err(SerialNumberError::TooLong {
                shown: shown(),
                len: s.len(),
            });
        }
        Ok(SerialNumber(s))
    }

    /// The serial as given.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for SerialNumber {
    type Err = SerialNumberError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        SerialNumber::new(s)
    }
}

impl fmt::Display for SerialNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // `pad` honours width and alignment, for tables.
        f.pad(&self.0)
    }
}

impl fmt::Debug for SerialNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.0)
    }
}

impl AsRef<str> for SerialNumber {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl Serialize for SerialNumber {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for SerialNumber {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        SerialNumber::new(s).map_err(serde::de::Error::custom)
    }
}

/// An operation id, opaque to burnin, echoed back with the JSON type it came in.
///
/// On a command line (see [`OperationId::from_cli`]) a value of digits only,
/// without a leading zero and fitting a `u64`, is a number; anything else is a
/// string. A string id is 1 to 128 printable characters (no control
/// characters), so it fits an AMQP `correlation_id` and a log line.
///
/// ```
/// use burnin_core::OperationId;
/// assert_eq!(OperationId::from_cli("42").unwrap(), OperationId::Number(42));
/// assert_eq!(OperationId::from_cli("042").unwrap(), OperationId::Text("042".into()));
/// assert_eq!(serde_json::to_string(&OperationId::Number(42)).unwrap(), "42");
/// ```
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Debug)]
pub enum OperationId {
    /// A JSON number (non-negative integer).
    Number(u64),
    /// A JSON string.
    Text(String),
}

/// Why a value is not an [`OperationId`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum OperationIdError {
    /// Empty string.
    #[error("operation id is empty")]
    Empty,
    /// Longer than 128 bytes.
    #[error("operation id is {0} bytes long; at most 128 are allowed")]
    TooLong(usize),
    /// Holds a control character.
    #[error("operation id {0:?} contains a control character")]
    ControlCharacter(String),
}

impl OperationId {
    /// The longest string id accepted, in bytes.
    pub const MAX_LEN: usize = 128;

    /// Validates a string id.
    pub fn text(s: impl Into<String>) -> Result<Self, OperationIdError> {
        let s = s.into();
        if s.is_empty() {
            return Err(OperationIdError::Empty);
        }
        if s.len() > Self::MAX_LEN {
            return Err(OperationIdError::TooLong(s.len()));
        }
        if s.chars().any(char::is_control) {
            return Err(OperationIdError::ControlCharacter(s));
        }
        Ok(OperationId::Text(s))
    }

    /// Reads an id from a command line: digits only (no leading zero, fits
    /// `u64`) is a number, anything else a string.
    pub fn from_cli(s: &str) -> Result<Self, OperationIdError> {
        let numeric = !s.is_empty()
            && s.bytes().all(|b| b.is_ascii_digit())
            && (s == "0" || !s.starts_with('0'));
        match s.parse::<u64>() {
            Ok(n) if numeric => Ok(OperationId::Number(n)),
            _ => OperationId::text(s),
        }
    }
}

impl fmt::Display for OperationId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            OperationId::Number(n) => write!(f, "{n}"),
            OperationId::Text(s) => f.pad(s),
        }
    }
}

impl Serialize for OperationId {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            OperationId::Number(n) => s.serialize_u64(*n),
            OperationId::Text(t) => s.serialize_str(t),
        }
    }
}

impl<'de> Deserialize<'de> for OperationId {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = OperationId;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a non-negative integer or a string of 1 to 128 characters")
            }
            fn visit_u64<E: serde::de::Error>(self, n: u64) -> Result<OperationId, E> {
                Ok(OperationId::Number(n))
            }
            fn visit_i64<E: serde::de::Error>(self, n: i64) -> Result<OperationId, E> {
                u64::try_from(n)
                    .map(OperationId::Number)
                    .map_err(|_| E::custom(format!("operation id {n} is negative")))
            }
            fn visit_str<E: serde::de::Error>(self, s: &str) -> Result<OperationId, E> {
                OperationId::text(s).map_err(E::custom)
            }
        }
        d.deserialize_any(V)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serial_rules() {
        assert!(SerialNumber::new("A/B%+?#").is_ok());
        assert_eq!(SerialNumber::new(""), Err(SerialNumberError::Empty));
        let long = "x".repeat(65);
        assert!(matches!(
            SerialNumber::new(long),
            Err(SerialNumberError::TooLong { len: 65, .. })
        ));
        assert!(SerialNumber::new("x".repeat(64)).is_ok());
        let e = SerialNumber::new("AB 12").unwrap_err();
        assert_eq!(
            e.to_string(),
            "serial number \"AB 12\" contains ' '; only printable ASCII without spaces is allowed"
        );
        assert!(matches!(
            SerialNumber::new("ÄB12"),
            Err(SerialNumberError::BadCharacter { bad: 'Ä', .. })
        ));
        assert!(SerialNumber::new("A\tB").is_err());
    }

    #[test]
    fn operation_id_keeps_its_json_type() {
        let n: OperationId = serde_json::from_str("7").unwrap();
        assert_eq!(n, OperationId::Number(7));
        assert_eq!(serde_json::to_string(&n).unwrap(), "7");
        let t: OperationId = serde_json::from_str("\"7\"").unwrap();
        assert_eq!(t, OperationId::Text("7".into()));
        assert_eq!(serde_json::to_string(&t).unwrap(), "\"7\"");
        assert!(serde_json::from_str::<OperationId>("-1").is_err());
        assert!(serde_json::from_str::<OperationId>("1.5").is_err());
        assert!(serde_json::from_str::<OperationId>("\"\"").is_err());
        assert!(serde_json::from_str::<OperationId>("null").is_err());
    }

    #[test]
    fn display_pads_for_tables() {
        assert_eq!(
            format!("{:6}|", SerialNumber::new("AB").unwrap()),
            "AB    |"
        );
        assert_eq!(format!("{:>4}", OperationId::Text("x".into())), "   x");
    }

    #[test]
    fn operation_id_from_cli() {
        assert_eq!(OperationId::from_cli("0").unwrap(), OperationId::Number(0));
        assert_eq!(
            OperationId::from_cli("123").unwrap(),
            OperationId::Number(123)
        );
        assert_eq!(
            OperationId::from_cli("0123").unwrap(),
            OperationId::Text("0123".into())
        );
        assert_eq!(
            OperationId::from_cli("18446744073709551616").unwrap(),
            OperationId::Text("18446744073709551616".into())
        );
        assert_eq!(
            OperationId::from_cli("op-7").unwrap(),
            OperationId::Text("op-7".into())
        );
        assert!(OperationId::from_cli("").is_err());
        assert!(OperationId::from_cli(&"x".repeat(129)).is_err());
    }
}
