//! Identifiers and small enumerations: securities, brokers, sessions, sides, sites.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// An identifier that failed validation; the message names the offending value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdError {
    #[error("security code {0:?} is not a number from 1 to 999999 without leading zeros")]
    SecurityCode(String),
    #[error("broker id {0:?} is not a number from 1 to 99999999 without leading zeros")]
    BrokerId(String),
    #[error("comp id {0:?} must be 1 to 11 printable ASCII characters")]
    CompId(String),
    #[error("client order id {0:?} must be 1 to 20 printable ASCII characters")]
    ClOrdId(String),
    #[error("unknown {what} {value:?}")]
    Unknown { what: &'static str, value: String },
}

fn parse_no_leading_zero(s: &str, max: u64) -> Option<u64> {
    if s.is_empty() || s.len() > 1 && s.starts_with('0') || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let v: u64 = s.parse().ok()?;
    (1..=max).contains(&v).then_some(v)
}

/// A security code: HK codes 1..=99999, mainland (China Connect) codes are six digits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct SecurityCode(pub u32);

impl FromStr for SecurityCode {
    type Err = IdError;
    fn from_str(s: &str) -> Result<Self, IdError> {
        parse_no_leading_zero(s, 999_999)
            .map(|v| SecurityCode(v as u32))
            .ok_or_else(|| IdError::SecurityCode(s.to_string()))
    }
}
impl fmt::Display for SecurityCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// A broker id (Submitting / Owning Broker ID): numeric, no leading zeros.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct BrokerId(pub u32);

impl FromStr for BrokerId {
    type Err = IdError;
    fn from_str(s: &str) -> Result<Self, IdError> {
        parse_no_leading_zero(s, 99_999_999)
            .map(|v| BrokerId(v as u32))
            .ok_or_else(|| IdError::BrokerId(s.to_string()))
    }
}
impl fmt::Display for BrokerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// Inline ASCII string of at most N bytes; `Copy`, hashable, ordered, no allocation.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct InlineStr<const N: usize> {
    len: u8,
    bytes: [u8; N],
}

impl<const N: usize> InlineStr<N> {
    /// Printable ASCII (0x21..=0x7E), 1..=N bytes.
    pub fn new(s: &str) -> Option<Self> {
        let b = s.as_bytes();
        if b.is_empty() || b.len() > N || !b.iter().all(|c| (0x21..=0x7e).contains(c)) {
            return None;
        }
        let mut bytes = [0u8; N];
        bytes[..b.len()].copy_from_slice(b);
        Some(InlineStr {
            len: b.len() as u8,
            bytes,
        })
    }
    pub fn as_str(&self) -> &str {
        // Only printable ASCII is ever stored.
        std::str::from_utf8(&self.bytes[..self.len as usize]).unwrap_or("")
    }
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes[..self.len as usize]
    }
}
impl<const N: usize> fmt::Debug for InlineStr<N> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.as_str())
    }
}
impl<const N: usize> fmt::Display for InlineStr<N> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

macro_rules! inline_id {
    ($(#[$m:meta])* $name:ident, $n:expr, $err:ident) => {
        $(#[$m])*
        #[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub struct $name(pub InlineStr<$n>);
        impl $name {
            pub const MAX_LEN: usize = $n;
            pub fn new(s: &str) -> Result<Self, IdError> {
                InlineStr::new(s).map($name).ok_or_else(|| IdError::$err(s.to_string()))
            }
            pub fn as_str(&self) -> &str { self.0.as_str() }
        }
        impl FromStr for $name {
            type Err = IdError;
            fn from_str(s: &str) -> Result<Self, IdError> { Self::new(s) }
        }
        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result { write!(f, "{}({:?})", stringify!($name), self.as_str()) }
        }
        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result { f.write_str(self.as_str()) }
        }
        impl Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> { s.serialize_str(self.as_str()) }
        }
        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = String::deserialize(d)?;
                Self::new(&s).map_err(serde::de::Error::custom)
            }
        }
    };
}

inline_id!(
    /// A session identifier assigned by the exchange: OCG-C Comp ID, char[12] NUL-terminated,
    /// so at most 11 characters.
    CompId, 11, CompId
);
inline_id!(
    /// A participant's client order id (OCG-C char[21] NUL-terminated: at most 20 characters).
    ClOrdId, 20, ClOrdId
);

/// An exchange-assigned order id, unique per trading day across all securities.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct OrderId(pub u64);
impl fmt::Display for OrderId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// Buy or sell. Short sell is a sell with a flag, not a side of the book.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Side {
    Buy,
    Sell,
}
impl Side {
    pub fn opposite(self) -> Side {
        match self {
            Side::Buy => Side::Sell,
            Side::Sell => Side::Buy,
        }
    }
}

/// Market segment, as in OCG-C Mass Cancel (`MAIN`, `GEM`, `NASD`, `ETS`) plus the two
/// China Connect northbound markets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum MarketSegment {
    Main,
    Gem,
    Nasd,
    Ets,
    Sse,
    Szse,
}
impl MarketSegment {
    pub fn code(self) -> &'static str {
        match self {
            MarketSegment::Main => "MAIN",
            MarketSegment::Gem => "GEM",
            MarketSegment::Nasd => "NASD",
            MarketSegment::Ets => "ETS",
            MarketSegment::Sse => "SSE",
            MarketSegment::Szse => "SZSE",
        }
    }
    pub fn is_china_connect(self) -> bool {
        matches!(self, MarketSegment::Sse | MarketSegment::Szse)
    }
}
impl FromStr for MarketSegment {
    type Err = IdError;
    fn from_str(s: &str) -> Result<Self, IdError> {
        Ok(match s {
            "MAIN" => MarketSegment::Main,
            "GEM" => MarketSegment::Gem,
            "NASD" => MarketSegment::Nasd,
            "ETS" => MarketSegment::Ets,
            "SSE" => MarketSegment::Sse,
            "SZSE" => MarketSegment::Szse,
            _ => {
                return Err(IdError::Unknown {
                    what: "market segment",
                    value: s.into(),
                })
            }
        })
    }
}

/// The two data-centre sites of the exchange.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Site {
    Primary,
    Backup,
}

/// A node of the replicated cluster: the two sites plus a witness that never serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NodeRole {
    Primary,
    Backup,
    Witness,
}

/// Trading platforms participants log in to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Platform {
    /// Orion Trading Platform - Securities Market (cash market), via OCG-C.
    #[serde(rename = "OTP-C")]
    OtpC,
    /// Orion Trading Platform - China Stock Connect (northbound).
    #[serde(rename = "OTP-CSC")]
    OtpCsc,
}

/// Who a participant is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum ParticipantKind {
    /// Exchange Participant: trades on OTP-C.
    #[serde(rename = "EP")]
    Ep,
    /// China Connect Exchange Participant: may log in to OTP-CSC only.
    #[serde(rename = "CCEP")]
    Ccep,
    /// Information vendor: consumes OMD-C / OMD-CC.
    #[serde(rename = "IV")]
    InformationVendor,
}
impl ParticipantKind {
    /// May this kind log in to the platform?
    pub fn may_log_in(self, platform: Platform) -> bool {
        matches!(
            (self, platform),
            (ParticipantKind::Ep, Platform::OtpC) | (ParticipantKind::Ccep, Platform::OtpCsc)
        )
    }
}
impl FromStr for ParticipantKind {
    type Err = IdError;
    fn from_str(s: &str) -> Result<Self, IdError> {
        Ok(match s.to_ascii_uppercase().as_str() {
            "EP" => ParticipantKind::Ep,
            "CCEP" => ParticipantKind::Ccep,
            "IV" | "INFORMATION-VENDOR" | "VENDOR" => ParticipantKind::InformationVendor,
            _ => {
                return Err(IdError::Unknown {
                    what: "participant kind (EP, CCEP or IV)",
                    value: s.into(),
                })
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn security_codes_have_no_leading_zeros() {
        assert_eq!("5".parse::<SecurityCode>(), Ok(SecurityCode(5)));
        assert!("0005".parse::<SecurityCode>().is_err());
        assert!("".parse::<SecurityCode>().is_err());
        assert_eq!("600519".parse::<SecurityCode>(), Ok(SecurityCode(600_519)));
    }

    #[test]
    fn comp_id_is_at_most_eleven_chars() {
        assert!(CompId::new("CO000000001").is_ok());
        assert!(CompId::new("CO0000000012").is_err());
        assert!(CompId::new("").is_err());
        assert!(CompId::new("A B").is_err());
    }

    #[test]
    fn ccep_may_log_in_to_otp_csc_only() {
        assert!(ParticipantKind::Ccep.may_log_in(Platform::OtpCsc));
        assert!(!ParticipantKind::Ccep.may_log_in(Platform::OtpC));
        assert!(ParticipantKind::Ep.may_log_in(Platform::OtpC));
        assert!(!ParticipantKind::Ep.may_log_in(Platform::OtpCsc));
        assert!(!ParticipantKind::InformationVendor.may_log_in(Platform::OtpC));
    }
}
