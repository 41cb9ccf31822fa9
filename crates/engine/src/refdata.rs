//! Reference data: securities (spread tables live in `twinsite_core::spread`).
//!
//! Parsed from TOML text (the caller reads the file; the engine never touches disk). A realistic
//! sample ships in `data/securities.toml` and is available as [`sample`].

use serde::{Deserialize, Serialize};
use twinsite_core::{MarketSegment, Price, SecurityCode};

pub use twinsite_core::spread::{SpreadTable, MIN_PRICE};

/// A listed security.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Security {
    pub code: SecurityCode,
    pub name: String,
    pub segment: MarketSegment,
    pub lot_size: u64,
    pub spread_table: SpreadTable,
    /// Previous closing price, written as a decimal (`65.30` or `"65.30"`).
    #[serde(deserialize_with = "de_price", serialize_with = "ser_price")]
    pub prev_close: Price,
    /// Instrument type as on OMD (EQTY, TRST, WRNT, BOND...).
    #[serde(default = "default_instrument")]
    pub instrument: String,
    /// Eligible for the pre-opening session (enhanced POS: equities, funds, REITs).
    #[serde(default = "yes")]
    pub pos: bool,
    /// Eligible for the closing auction session.
    #[serde(default = "yes")]
    pub cas: bool,
    /// Covered by the volatility control mechanism (flag only; see docs/engine.md).
    #[serde(default)]
    pub vcm: bool,
    /// Short selling allowed.
    #[serde(default = "yes")]
    pub short_sell: bool,
    /// Trades in the extended morning session.
    #[serde(default)]
    pub extended: bool,
    /// China Connect: price limit in basis points (+-), if any.
    #[serde(default)]
    pub price_limit_bps: Option<i64>,
    /// Currency (HKD for OTP-C, CNY for China Connect).
    #[serde(default = "hkd")]
    pub currency: String,
}
fn ser_price<S: serde::Serializer>(p: &Price, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&p.to_string())
}

/// Accept a price as a TOML float or string and convert it exactly (via its shortest decimal form).
fn de_price<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Price, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum P {
        F(f64),
        I(i64),
        S(String),
    }
    let text = match P::deserialize(d)? {
        P::F(f) => format!("{f}"),
        P::I(i) => i.to_string(),
        P::S(s) => s,
    };
    Price::parse(&text).map_err(|e| serde::de::Error::custom(format!("price {text:?}: {e}")))
}

fn yes() -> bool {
    true
}
fn default_instrument() -> String {
    "EQTY".into()
}
fn hkd() -> String {
    "HKD".into()
}

#[derive(Debug, Deserialize)]
struct File {
    security: Vec<Security>,
}

/// A reference data file that cannot be used; the message names the security and the field.
#[derive(Debug, thiserror::Error)]
pub enum RefDataError {
    #[error("reference data is not valid TOML: {0}")]
    Toml(#[from] toml::de::Error),
    #[error("security {code}: {problem}")]
    Invalid { code: SecurityCode, problem: String },
    #[error("security {0} is listed twice")]
    Duplicate(SecurityCode),
}

/// Parse and validate reference data; securities are returned sorted by code.
pub fn parse(text: &str) -> Result<Vec<Security>, RefDataError> {
    let mut f: File = toml::from_str(text)?;
    f.security.sort_by_key(|s| s.code);
    for w in f.security.windows(2) {
        if w[0].code == w[1].code {
            return Err(RefDataError::Duplicate(w[0].code));
        }
    }
    for s in &f.security {
        let bad = |problem: &str| RefDataError::Invalid {
            code: s.code,
            problem: problem.into(),
        };
        if s.lot_size == 0 {
            return Err(bad("lot_size must be positive"));
        }
        if !s.spread_table.is_valid(s.prev_close) {
            return Err(bad("prev_close is not a valid price on its spread table"));
        }
    }
    Ok(f.security)
}

/// The shipped sample: a few dozen Main Board and GEM securities of different price bands,
/// lot sizes and spread tables.
pub fn sample() -> Vec<Security> {
    parse(SAMPLE_TOML).expect("shipped sample reference data is valid")
}

/// The text of `data/securities.toml`.
pub const SAMPLE_TOML: &str = include_str!("../../../data/securities.toml");

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sample_reference_data_loads() {
        let s = sample();
        assert!(s.len() >= 30);
        assert!(s.iter().any(|x| x.segment == MarketSegment::Gem));
        assert!(s.iter().any(|x| x.spread_table == SpreadTable::PartB));
    }
}
