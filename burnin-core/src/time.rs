//! Wall-clock instants as they travel in JSON (RFC 3339, UTC, seconds).

use std::fmt;
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// An instant on the wall clock, written as RFC 3339 in UTC
/// (`2026-11-25T10:00:00Z`).
///
/// burnin-core never reads the clock: a `Timestamp` is always handed in (see
/// [`Clock`](crate::Clock)). Parsing accepts `Z` times with optional
/// fractional seconds and drops the fraction — the wire precision is whole
/// seconds, so a parsed document writes back to an equal one; offsets other
/// than `Z` are refused.
///
/// ```
/// use burnin_core::Timestamp;
/// let t: Timestamp = "2026-11-25T10:00:00Z".parse().unwrap();
/// assert_eq!(t.to_string(), "2026-11-25T10:00:00Z");
/// ```
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(SystemTime);

/// A duration in the words the edge uses in findings and errors: `8 h 0
/// min`, `5 min 3 s`, `42 s`, `850 ms`.
///
/// ```
/// use std::time::Duration;
/// use burnin_core::human_duration;
/// assert_eq!(human_duration(Duration::from_secs(8 * 3600)), "8 h 0 min");
/// assert_eq!(human_duration(Duration::from_secs(600)), "10 min 0 s");
/// assert_eq!(human_duration(Duration::from_millis(500)), "500 ms");
/// assert_eq!(human_duration(Duration::from_millis(8 * 3_600_000 - 600)), "8 h 0 min");
/// ```
pub fn human_duration(d: Duration) -> String {
    let s = d.as_secs();
    match s {
        0 => format!("{} ms", d.as_millis()),
        1..60 => format!("{s} s"),
        60..3600 => format!("{} min {} s", s / 60, s % 60),
        // Hours to the nearest minute: 7:59:59.4 reads "8 h 0 min".
        _ => {
            let minutes = (d.as_millis() + 30_000) / 60_000;
            format!("{} h {} min", minutes / 60, minutes % 60)
        }
    }
}

/// A string that is not an RFC 3339 UTC timestamp.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{input:?} is not an RFC 3339 UTC time such as 2026-11-25T10:00:00Z")]
pub struct TimestampError {
    input: String,
}

impl Timestamp {
    /// Wraps a `SystemTime`.
    pub const fn from_system_time(t: SystemTime) -> Self {
        Timestamp(t)
    }

    /// The `SystemTime`.
    pub const fn system_time(self) -> SystemTime {
        self.0
    }

    /// Seconds since the Unix epoch (0 for times before it).
    pub fn unix_seconds(self) -> u64 {
        self.0
            .duration_since(SystemTime::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0)
    }

    /// A timestamp from Unix seconds.
    pub fn from_unix_seconds(secs: u64) -> Self {
        Timestamp(SystemTime::UNIX_EPOCH + Duration::from_secs(secs))
    }

    /// This instant plus `d` (saturating far in the future).
    pub fn saturating_add(self, d: Duration) -> Self {
        Timestamp(self.0.checked_add(d).unwrap_or(self.0))
    }

    /// How long from `earlier` to `self`; zero if `earlier` is later.
    pub fn saturating_since(self, earlier: Timestamp) -> Duration {
        self.0.duration_since(earlier.0).unwrap_or(Duration::ZERO)
    }

    /// Parses RFC 3339 in UTC.
    pub fn parse(s: &str) -> Result<Self, TimestampError> {
        let err = || TimestampError {
            input: s.chars().take(64).collect(),
        };
        if !s.ends_with('Z') {
            return Err(err());
        }
        let t = humantime::parse_rfc3339(s).map_err(|_| err())?;
        let secs = t
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_err(|_| err())?
            .as_secs();
        Ok(Timestamp::from_unix_seconds(secs))
    }
}

impl std::str::FromStr for Timestamp {
    type Err = TimestampError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Timestamp::parse(s)
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Times before 1970 or after 9999 cannot be written in RFC 3339;
        // they never come from a sane clock, so clamp rather than fail.
        let max = SystemTime::UNIX_EPOCH + Duration::from_secs(253_402_300_799);
        let t = self.0.clamp(SystemTime::UNIX_EPOCH, max);
        write!(f, "{}", humantime::format_rfc3339_seconds(t))
    }
}

impl fmt::Debug for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Full precision: two instants in the same second must not look equal.
        write!(f, "Timestamp({})", humantime::format_rfc3339_nanos(self.0))
    }
}

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        Timestamp::parse(&s).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_rejects() {
        let t = Timestamp::parse("2026-11-25T10:00:00Z").unwrap();
        assert_eq!(t.to_string(), "2026-11-25T10:00:00Z");
        assert_eq!(Timestamp::from_unix_seconds(t.unix_seconds()), t);
        // The fraction is dropped, so parse → display → parse is stable
        // (found by the `command` and `reply` fuzz targets).
        let frac = Timestamp::parse("2026-11-25T10:00:00.250Z").unwrap();
        assert_eq!(frac, t);
        assert_eq!(Timestamp::parse(&frac.to_string()).unwrap(), frac);
        assert!(Timestamp::parse("2026-11-25T10:00:00+02:00").is_err());
        assert!(Timestamp::parse("yesterday").is_err());
        assert!(Timestamp::parse("").is_err());
    }
}
