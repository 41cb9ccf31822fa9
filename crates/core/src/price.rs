//! Integer prices and quantities with explicit scales.
//!
//! * [`Price`]: 1/1000 of the currency unit (`Price(12_340)` is HK$12.34). This is the OMD-C
//!   price resolution (Int32, 3 implied decimals) and the engine's working unit.
//! * OCG-C carries prices and quantities as `Decimal`: a signed Int64 with 8 implied decimals.
//!   Conversions from that form are exact or rejected, never rounded.
//! * [`Qty`]: whole shares.

use serde::{Deserialize, Serialize};
use std::fmt;

/// Implied decimals of [`Price`].
pub const PRICE_DECIMALS: u32 = 3;
/// One currency unit in [`Price`] units.
pub const PRICE_ONE: i64 = 1_000;
/// OCG-C Decimal scale: value × 10^8.
pub const OCG_DECIMAL_SCALE: i64 = 100_000_000;
/// OCG-C Decimal units per [`Price`] unit.
const OCG_PER_PRICE: i64 = OCG_DECIMAL_SCALE / PRICE_ONE;

/// A conversion that cannot be done exactly.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PriceError {
    #[error(
        "price {0} (Decimal x10^8) has more than 3 decimals; the exchange's resolution is 0.001"
    )]
    TooPrecise(i64),
    #[error("price {0} (Decimal x10^8) is zero or negative")]
    NotPositive(i64),
    #[error("quantity {0} (Decimal x10^8) is not a whole number of shares")]
    FractionalQty(i64),
    #[error("quantity {0} (Decimal x10^8) is negative")]
    NegativeQty(i64),
    #[error("value {0} does not fit the target field")]
    OutOfRange(i64),
}

/// A price in 1/1000 of the currency unit.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, Default,
)]
#[serde(transparent)]
pub struct Price(pub i64);

impl Price {
    pub const ZERO: Price = Price(0);

    /// From an OCG-C Decimal (Int64 × 10^8). Exact or rejected; must be positive.
    pub fn from_ocg_decimal(d: i64) -> Result<Price, PriceError> {
        if d <= 0 {
            return Err(PriceError::NotPositive(d));
        }
        if d % OCG_PER_PRICE != 0 {
            return Err(PriceError::TooPrecise(d));
        }
        Ok(Price(d / OCG_PER_PRICE))
    }

    /// To an OCG-C Decimal (Int64 × 10^8). Always exact.
    pub fn to_ocg_decimal(self) -> i64 {
        self.0.saturating_mul(OCG_PER_PRICE)
    }

    /// From an OMD-C Int32 price (3 implied decimals): same scale.
    pub fn from_omd(v: i32) -> Price {
        Price(v as i64)
    }

    /// To an OMD-C Int32 price (3 implied decimals).
    pub fn to_omd(self) -> Result<i32, PriceError> {
        i32::try_from(self.0).map_err(|_| PriceError::OutOfRange(self.0))
    }

    /// Parse a decimal string such as `"12.34"`; more than 3 decimals is rejected.
    pub fn parse(s: &str) -> Result<Price, PriceError> {
        let s = s.trim();
        if !s.is_ascii() {
            return Err(PriceError::OutOfRange(0));
        }
        let (neg, s) = match s.strip_prefix('-') {
            Some(r) => (true, r),
            None => (false, s),
        };
        let (int, frac) = s.split_once('.').unwrap_or((s, ""));
        if int.is_empty() && frac.is_empty() {
            return Err(PriceError::OutOfRange(0));
        }
        if frac.len() > PRICE_DECIMALS as usize {
            let extra = &frac[PRICE_DECIMALS as usize..];
            if extra.bytes().any(|b| b != b'0') {
                return Err(PriceError::TooPrecise(0));
            }
        }
        let int_v: i64 = if int.is_empty() {
            0
        } else {
            int.parse().map_err(|_| PriceError::OutOfRange(0))?
        };
        let mut frac_v: i64 = 0;
        for (i, b) in frac.bytes().take(PRICE_DECIMALS as usize).enumerate() {
            if !b.is_ascii_digit() {
                return Err(PriceError::OutOfRange(0));
            }
            frac_v += (b - b'0') as i64 * 10i64.pow(PRICE_DECIMALS - 1 - i as u32);
        }
        let v = int_v
            .checked_mul(PRICE_ONE)
            .and_then(|v| v.checked_add(frac_v))
            .ok_or(PriceError::OutOfRange(int_v))?;
        Ok(Price(if neg { -v } else { v }))
    }
}

impl fmt::Display for Price {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sign = if self.0 < 0 { "-" } else { "" };
        let a = self.0.unsigned_abs();
        write!(
            f,
            "{sign}{}.{:03}",
            a / PRICE_ONE as u64,
            a % PRICE_ONE as u64
        )
    }
}

/// A quantity in whole shares.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, Default,
)]
#[serde(transparent)]
pub struct Qty(pub u64);

impl Qty {
    pub const ZERO: Qty = Qty(0);

    /// From an OCG-C Decimal (Int64 × 10^8): whole shares only.
    pub fn from_ocg_decimal(d: i64) -> Result<Qty, PriceError> {
        if d < 0 {
            return Err(PriceError::NegativeQty(d));
        }
        if d % OCG_DECIMAL_SCALE != 0 {
            return Err(PriceError::FractionalQty(d));
        }
        Ok(Qty((d / OCG_DECIMAL_SCALE) as u64))
    }

    /// To an OCG-C Decimal; saturates at i64::MAX (beyond any real quantity).
    pub fn to_ocg_decimal(self) -> i64 {
        i64::try_from(self.0)
            .ok()
            .and_then(|v| v.checked_mul(OCG_DECIMAL_SCALE))
            .unwrap_or(i64::MAX)
    }

    pub fn is_zero(self) -> bool {
        self.0 == 0
    }
}

impl fmt::Display for Qty {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn ocg_decimal_price_is_exact_or_rejected() {
        assert_eq!(Price::from_ocg_decimal(1_234_000_000), Ok(Price(12_340)));
        assert_eq!(
            Price::from_ocg_decimal(1_234_500_001),
            Err(PriceError::TooPrecise(1_234_500_001))
        );
        assert_eq!(Price::from_ocg_decimal(0), Err(PriceError::NotPositive(0)));
        assert_eq!(Price(12_340).to_ocg_decimal(), 1_234_000_000);
    }

    #[test]
    fn ocg_decimal_qty_must_be_whole_shares() {
        assert_eq!(Qty::from_ocg_decimal(400 * OCG_DECIMAL_SCALE), Ok(Qty(400)));
        assert!(Qty::from_ocg_decimal(OCG_DECIMAL_SCALE / 2).is_err());
        assert!(Qty::from_ocg_decimal(-1).is_err());
    }

    #[test]
    fn price_parse_and_display() {
        assert_eq!(Price::parse("12.34"), Ok(Price(12_340)));
        assert_eq!(Price::parse("0.001"), Ok(Price(1)));
        assert_eq!(Price::parse("385"), Ok(Price(385_000)));
        assert_eq!(Price::parse("1.2340"), Ok(Price(1_234)));
        assert!(Price::parse("1.2345").is_err());
        assert_eq!(Price(12_340).to_string(), "12.340");
    }

    proptest! {
        #[test]
        fn price_roundtrips_through_ocg_decimal(p in 1i64..10_000_000_000) {
            prop_assert_eq!(Price::from_ocg_decimal(Price(p).to_ocg_decimal()), Ok(Price(p)));
        }
        #[test]
        fn qty_roundtrips_through_ocg_decimal(q in 0u64..1_000_000_000) {
            prop_assert_eq!(Qty::from_ocg_decimal(Qty(q).to_ocg_decimal()), Ok(Qty(q)));
        }
        #[test]
        fn arbitrary_decimal_never_panics(d in any::<i64>()) {
            let _ = Price::from_ocg_decimal(d);
            let _ = Qty::from_ocg_decimal(d);
        }
        #[test]
        fn price_parse_never_panics(s in ".{0,24}") {
            let _ = Price::parse(&s);
        }
        #[test]
        fn price_parse_display_roundtrip(p in -10_000_000_000i64..10_000_000_000) {
            prop_assert_eq!(Price::parse(&Price(p).to_string()), Ok(Price(p)));
        }
    }
}
