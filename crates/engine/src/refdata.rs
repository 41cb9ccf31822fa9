//! Reference data: securities and spread tables.
//!
//! Parsed from TOML text (the caller reads the file; the engine never touches disk). A realistic
//! sample ships in `data/securities.toml` and is available as [`sample`].

use serde::{Deserialize, Serialize};
use twinsite_core::{MarketSegment, Price, SecurityCode};

/// A spread table (OMD Security Definition spread table code).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum SpreadTable {
    /// Code 01, Part A, after the August 2025 reduction (equities, REITs).
    #[serde(rename = "01")]
    PartA,
    /// Code 03, Part B (ETPs, debt).
    #[serde(rename = "03")]
    PartB,
    /// China Connect northbound: a flat RMB 0.01 tick.
    #[serde(rename = "CN")]
    ChinaConnect,
}

/// (upper bound of the band inclusive, tick), in 1/1000 units, ascending.
const PART_A: &[(i64, i64)] = &[
    (250, 1),
    (500, 5),
    (20_000, 10),
    (50_000, 20),
    (100_000, 50),
    (200_000, 100),
    (500_000, 200),
    (1_000_000, 500),
    (2_000_000, 1_000),
    (5_000_000, 2_000),
    (9_995_000, 5_000),
];
/// Part B as published by HKEX (medium confidence; the reference names the code only).
const PART_B: &[(i64, i64)] = &[
    (1_000, 1),
    (5_000, 2),
    (10_000, 5),
    (20_000, 10),
    (100_000, 20),
    (200_000, 50),
    (500_000, 100),
    (1_000_000, 200),
    (2_000_000, 500),
    (5_000_000, 1_000),
    (9_995_000, 2_000),
];
const CHINA: &[(i64, i64)] = &[(i64::MAX / 4, 10)];

/// Lowest quotable price in every table: 0.010 for HK tables, 0.01 for China Connect.
pub const MIN_PRICE: Price = Price(10);

impl SpreadTable {
    fn bands(self) -> &'static [(i64, i64)] {
        match self {
            SpreadTable::PartA => PART_A,
            SpreadTable::PartB => PART_B,
            SpreadTable::ChinaConnect => CHINA,
        }
    }
    pub fn max_price(self) -> Price {
        let b = self.bands();
        Price(b[b.len() - 1].0)
    }
    /// The tick for an order resting at `p` (band chosen by the price itself: a price at a
    /// band's upper bound uses that band's tick).
    pub fn tick_at(self, p: Price) -> i64 {
        for &(hi, tick) in self.bands() {
            if p.0 <= hi {
                return tick;
            }
        }
        self.bands()[self.bands().len() - 1].1
    }
    /// Is `p` a valid price on this table?
    pub fn is_valid(self, p: Price) -> bool {
        if p < MIN_PRICE || p > self.max_price() {
            return false;
        }
        let mut lo = 0;
        for &(hi, tick) in self.bands() {
            if p.0 <= hi {
                return (p.0 - lo) % tick == 0;
            }
            lo = hi;
        }
        false
    }
    /// The next valid price above `p` (p must be valid), or None at the top.
    pub fn up(self, p: Price) -> Option<Price> {
        let n = Price(p.0 + self.tick_up(p));
        (n <= self.max_price()).then_some(n)
    }
    /// The next valid price below `p`, or None at the bottom.
    pub fn down(self, p: Price) -> Option<Price> {
        let n = Price(p.0 - self.tick_down(p));
        (n >= MIN_PRICE).then_some(n)
    }
    fn tick_up(self, p: Price) -> i64 {
        // Moving up from a band's upper bound uses the next band's tick.
        for &(hi, tick) in self.bands() {
            if p.0 < hi {
                return tick;
            }
        }
        self.bands()[self.bands().len() - 1].1
    }
    fn tick_down(self, p: Price) -> i64 {
        self.tick_at(p)
    }
    /// `p` moved by `n` spreads (positive up, negative down), clamped to the table.
    pub fn shift(self, p: Price, n: i32) -> Price {
        let mut q = p;
        for _ in 0..n.unsigned_abs() {
            let next = if n > 0 { self.up(q) } else { self.down(q) };
            match next {
                Some(x) => q = x,
                None => break,
            }
        }
        q
    }
    /// Number of spreads between two valid prices (a <= b).
    pub fn spreads_between(self, a: Price, b: Price, cap: u32) -> u32 {
        let (mut lo, hi) = if a <= b { (a, b) } else { (b, a) };
        let mut n = 0;
        while lo < hi && n <= cap {
            match self.up(lo) {
                Some(x) => lo = x,
                None => break,
            }
            n += 1;
        }
        n
    }
}

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
    fn part_a_ticks_after_august_2025() {
        let t = SpreadTable::PartA;
        assert!(t.is_valid(Price(250)));
        assert!(!t.is_valid(Price(251)));
        assert!(t.is_valid(Price(255)));
        assert!(t.is_valid(Price(19_990)));
        assert!(t.is_valid(Price(20_020)));
        assert!(!t.is_valid(Price(20_030)));
        assert!(t.is_valid(Price(385_000)));
        assert!(t.is_valid(Price(385_200)));
        assert!(!t.is_valid(Price(385_100)));
        assert_eq!(t.up(Price(20_000)), Some(Price(20_020)));
        assert_eq!(t.down(Price(20_020)), Some(Price(20_000)));
        assert_eq!(t.down(Price(20_000)), Some(Price(19_990)));
        assert_eq!(t.up(Price(9_995_000)), None);
        assert_eq!(t.down(MIN_PRICE), None);
        assert_eq!(t.shift(Price(20_000), 2), Price(20_040));
        assert_eq!(t.spreads_between(Price(19_990), Price(20_040), 100), 3);
    }

    #[test]
    fn sample_reference_data_loads() {
        let s = sample();
        assert!(s.len() >= 30);
        assert!(s.iter().any(|x| x.segment == MarketSegment::Gem));
        assert!(s.iter().any(|x| x.spread_table == SpreadTable::PartB));
    }
}
