//! MAC addresses: parsing every form factories write, one canonical display.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A 6-byte hardware (MAC) address.
///
/// Parses `e0:18:7d:2e:ca:68`, `E0-18-7D-2E-CA-68`, `e0187d2eca68` and
/// `e018.7d2e.ca68` in any case, with surrounding whitespace trimmed.
/// Displays (and serializes) in lower-case colon form.
///
/// ```
/// use burnin_core::Mac;
/// let mac: Mac = " E018.7D2E.CA68 ".parse().unwrap();
/// assert_eq!(mac.to_string(), "e0:18:7d:2e:ca:68");
/// assert!(mac.is_valid_card_address());
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Mac([u8; 6]);

/// A string that is not a MAC address in any accepted form.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "{input:?} is not a MAC address; expected 6 hex bytes such as \
     e0:18:7d:2e:ca:68, E0-18-7D-2E-CA-68, e0187d2eca68 or e018.7d2e.ca68"
)]
pub struct MacParseError {
    input: String,
}

impl MacParseError {
    /// The rejected input (truncated to 64 characters).
    pub fn input(&self) -> &str {
        &self.input
    }
}

impl Mac {
    /// Builds an address from its bytes.
    pub const fn new(bytes: [u8; 6]) -> Self {
        Mac(bytes)
    }

    /// The six bytes.
    pub const fn octets(&self) -> [u8; 6] {
        self.0
    }

    /// Whether this can be a network card's own address.
    ///
    /// All-zero, broadcast and multicast (group bit set) addresses are never
    /// valid card addresses: an interface reporting one never matches MES.
    pub fn is_valid_card_address(&self) -> bool {
        self.0 != [0; 6] && self.0 != [0xff; 6] && self.0[0] & 0x01 == 0
    }

    /// Parses any accepted form; see the type's documentation.
    pub fn parse(input: &str) -> Result<Mac, MacParseError> {
        let err = || MacParseError {
            input: input.chars().take(64).collect(),
        };
        let s = input.trim().as_bytes();
        // (group length, separator) of each accepted form, keyed by length.
        let (group, sep) = match s.len() {
            17 if s[2] == b':' => (2, b':'),
            17 if s[2] == b'-' => (2, b'-'),
            14 => (4, b'.'),
            12 => (12, 0),
            _ => return Err(err()),
        };
        let mut hex = [0u8; 12];
        let mut n = 0;
        for (i, &c) in s.iter().enumerate() {
            if group < 12 && (i + 1) % (group + 1) == 0 {
                if c != sep {
                    return Err(err());
                }
                continue;
            }
            hex[n] = match c {
                b'0'..=b'9' => c - b'0',
                b'a'..=b'f' => c - b'a' + 10,
                b'A'..=b'F' => c - b'A' + 10,
                _ => return Err(err()),
            };
            n += 1;
        }
        if n != 12 {
            return Err(err());
        }
        let mut out = [0u8; 6];
        for (i, byte) in out.iter_mut().enumerate() {
            *byte = hex[2 * i] << 4 | hex[2 * i + 1];
        }
        Ok(Mac(out))
    }
}

impl FromStr for Mac {
    type Err = MacParseError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Mac::parse(s)
    }
}

impl Mac {
    /// The canonical text form in a fixed buffer (no allocation, no
    /// formatting machinery: payloads write tens of thousands of these).
    pub(crate) fn text(&self) -> [u8; 17] {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let mut out = [b':'; 17];
        for (i, b) in self.0.iter().enumerate() {
            out[3 * i] = HEX[usize::from(b >> 4)];
            out[3 * i + 1] = HEX[usize::from(b & 0x0f)];
        }
        out
    }
}

impl fmt::Display for Mac {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let text = self.text();
        // `text` holds only ASCII hex digits and colons.
        f.write_str(std::str::from_utf8(&text).unwrap_or_default())
    }
}

impl fmt::Debug for Mac {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Mac({self})")
    }
}

impl Serialize for Mac {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let text = self.text();
        s.serialize_str(std::str::from_utf8(&text).unwrap_or_default())
    }
}

impl<'de> Deserialize<'de> for Mac {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        Mac::parse(&s).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const M: Mac = Mac([0xe0, 0x18, 0x7d, 0x2e, 0xca, 0x68]);

    #[test]
    fn parses_every_form() {
        for s in [
            "e0:18:7d:2e:ca:68",
            "E0-18-7D-2E-CA-68",
            "e0187d2eca68",
            "e018.7d2e.ca68",
            "  E0:18:7d:2E:ca:68\n",
        ] {
            assert_eq!(Mac::parse(s), Ok(M), "{s}");
        }
    }

    #[test]
    fn rejects_malformed() {
        for s in [
            "",
            "e0:18:7d:2e:ca",
            "e0:18:7d:2e:ca:6g",
            "e0:18-7d:2e:ca:68",
            "e0:18:7d:2e:ca:68:00",
            "e0187d2eca6",
            "e0187d2eca688",
            "e018.7d2e:ca68",
            "e0:18:7d:2e:ca:+8",
            "é0:18:7d:2e:ca:68",
            "e0 18 7d 2e ca 68",
        ] {
            let e = Mac::parse(s).unwrap_err();
            assert!(e.to_string().contains(&format!("{s:?}")), "{e}");
        }
    }

    #[test]
    fn card_address_validity() {
        assert!(M.is_valid_card_address());
        assert!(!Mac([0; 6]).is_valid_card_address());
        assert!(!Mac([0xff; 6]).is_valid_card_address());
        assert!(!Mac([0x01, 0x00, 0x5e, 0, 0, 1]).is_valid_card_address());
        assert!(!Mac([0x33, 0x33, 0, 0, 0, 1]).is_valid_card_address());
    }

    #[test]
    fn serde_is_a_string() {
        assert_eq!(serde_json::to_string(&M).unwrap(), "\"e0:18:7d:2e:ca:68\"");
        let m: Mac = serde_json::from_str("\"E0-18-7D-2E-CA-68\"").unwrap();
        assert_eq!(m, M);
        let e = serde_json::from_str::<Mac>("\"nope\"").unwrap_err();
        assert!(e.to_string().contains("\"nope\" is not a MAC address"));
    }

    fn forms(b: [u8; 6]) -> Vec<String> {
        let h: Vec<String> = b.iter().map(|x| format!("{x:02x}")).collect();
        vec![
            h.join(":"),
            h.join("-").to_uppercase(),
            h.concat(),
            format!("{}{}.{}{}.{}{}", h[0], h[1], h[2], h[3], h[4], h[5]),
            format!("\t{}  ", h.join(":").to_uppercase()),
        ]
    }

    proptest! {
        #[test]
        fn every_form_parses_to_one_value(b in any::<[u8; 6]>()) {
            for f in forms(b) {
                let m = Mac::parse(&f).unwrap();
                prop_assert_eq!(m, Mac(b));
                prop_assert_eq!(m.to_string(), forms(b)[0].clone());
            }
        }

        #[test]
        fn display_round_trips(b in any::<[u8; 6]>()) {
            let m = Mac(b);
            prop_assert_eq!(Mac::parse(&m.to_string()).unwrap(), m);
            // Normalising twice changes nothing.
            prop_assert_eq!(Mac::parse(&Mac::parse(&m.to_string()).unwrap().to_string()).unwrap(), m);
        }

        #[test]
        fn never_panics(s in ".{0,40}") {
            let _ = Mac::parse(&s);
        }
    }
}
