//! HKEX spread tables: which prices are valid and how many spreads (ticks) lie between two prices.
//!
//! One definition for the whole workspace: the engine validates and walks prices with it, the
//! OMD product builder uses it for the aggregate-book "within 10 ticks" rule and the broker-queue
//! spread markers. Prices are in 1/1000 of the currency unit ([`Price`]).
//!
//! A table is a list of bands `(upper bound inclusive, tick)`, ascending. A price `p` in band
//! `(lo, hi]` is valid when `(p - lo)` is a multiple of the band's tick. Moving down from `p` uses
//! the tick of the band `p` is in; moving up from a band's upper bound uses the next band's tick.
//! Every walk ([`SpreadTable::shift`], [`SpreadTable::spreads_between`]) is computed band by band
//! with arithmetic, not tick by tick; it gives exactly the result of stepping one tick at a time
//! with [`SpreadTable::up`] / [`SpreadTable::down`] (a test checks this for all three tables).

use crate::price::Price;
use serde::{Deserialize, Serialize};

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

fn div_ceil(a: i64, b: i64) -> i64 {
    // a >= 0, b > 0
    (a + b - 1) / b
}

impl SpreadTable {
    /// The OMD Security Definition spread table code ("01", "03"; "CN" for China Connect).
    pub fn code(self) -> &'static str {
        match self {
            SpreadTable::PartA => "01",
            SpreadTable::PartB => "03",
            SpreadTable::ChinaConnect => "CN",
        }
    }

    /// The bands: (upper bound inclusive, tick), ascending.
    pub fn bands(self) -> &'static [(i64, i64)] {
        match self {
            SpreadTable::PartA => PART_A,
            SpreadTable::PartB => PART_B,
            SpreadTable::ChinaConnect => CHINA,
        }
    }

    /// The highest price of the table (the last band's upper bound).
    pub fn max_price(self) -> Price {
        let b = self.bands();
        Price(b[b.len() - 1].0)
    }

    /// The tick for an order resting at `p` (band chosen by the price itself: a price at a
    /// band's upper bound uses that band's tick). This is also the step down from `p`.
    pub fn tick_at(self, p: Price) -> i64 {
        let b = self.bands();
        b[self.band_down(p.0)].1
    }

    /// The step from `p` to the next price up (a band's upper bound steps with the next band's
    /// tick). Beyond the table, the last band's tick.
    pub fn tick_up(self, p: Price) -> i64 {
        let b = self.bands();
        match self.band_up(p.0) {
            Some(i) => b[i].1,
            None => b[b.len() - 1].1,
        }
    }

    /// The step from `p` to the next price down (the tick of the band `p` is in).
    pub fn tick_down(self, p: Price) -> i64 {
        self.tick_at(p)
    }

    /// Index of the band `p` is in for a step down (first band with `p <= hi`; the last band
    /// beyond the table).
    fn band_down(self, p: i64) -> usize {
        let b = self.bands();
        b.iter().position(|&(hi, _)| p <= hi).unwrap_or(b.len() - 1)
    }

    /// Index of the band a step up from `p` uses (first band with `p < hi`), None at or beyond
    /// the top of the table.
    fn band_up(self, p: i64) -> Option<usize> {
        self.bands().iter().position(|&(hi, _)| p < hi)
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

    /// `p` moved by `n` spreads (positive up, negative down), clamped to the table.
    pub fn shift(self, p: Price, n: i32) -> Price {
        let b = self.bands();
        let mut q = p.0;
        let mut left = n.unsigned_abs() as i64;
        if n > 0 {
            let max = self.max_price().0;
            while left > 0 {
                let Some(i) = self.band_up(q) else { break };
                let t = b[i].1;
                // Steps possible before passing the top of the table.
                let possible = (max - q).div_euclid(t);
                if possible <= 0 {
                    break;
                }
                // Steps with this tick: until the band's upper bound is reached (or passed).
                let to_exit = div_ceil(b[i].0 - q, t);
                let m = left.min(to_exit).min(possible);
                q += m * t;
                left -= m;
            }
        } else {
            while left > 0 {
                let i = self.band_down(q);
                let t = b[i].1;
                // Steps possible before going below the lowest price.
                let possible = (q - MIN_PRICE.0).div_euclid(t);
                if possible <= 0 {
                    break;
                }
                // Steps with this tick: until the band's lower bound is reached (the first band
                // has none).
                let to_exit = if i == 0 {
                    possible
                } else {
                    div_ceil(q - b[i - 1].0, t)
                };
                let m = left.min(to_exit).min(possible);
                q -= m * t;
                left -= m;
            }
        }
        Price(q)
    }

    /// Number of spreads between two prices: the steps [`SpreadTable::up`] takes from the lower
    /// to reach (or pass) the higher, counting at most `cap + 1`.
    pub fn spreads_between(self, a: Price, b: Price, cap: u32) -> u32 {
        let (lo, hi) = if a <= b { (a.0, b.0) } else { (b.0, a.0) };
        let bands = self.bands();
        let max = self.max_price().0;
        let limit = cap as i64 + 1;
        let mut q = lo;
        let mut n: i64 = 0;
        while q < hi && n < limit {
            let Some(i) = self.band_up(q) else { break };
            let t = bands[i].1;
            let possible = (max - q).div_euclid(t);
            if possible <= 0 {
                break;
            }
            let to_exit = div_ceil(bands[i].0.min(hi) - q, t);
            let m = to_exit.min(possible).min(limit - n);
            q += m * t;
            n += m;
        }
        n as u32
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The definitions: one tick at a time.
    fn shift_stepping(t: SpreadTable, p: Price, n: i32) -> Price {
        let mut q = p;
        for _ in 0..n.unsigned_abs() {
            let next = if n > 0 { t.up(q) } else { t.down(q) };
            match next {
                Some(x) => q = x,
                None => break,
            }
        }
        q
    }
    fn spreads_stepping(t: SpreadTable, a: Price, b: Price, cap: u32) -> u32 {
        let (mut lo, hi) = if a <= b { (a, b) } else { (b, a) };
        let mut n = 0;
        while lo < hi && n <= cap {
            match t.up(lo) {
                Some(x) => lo = x,
                None => break,
            }
            n += 1;
        }
        n
    }

    const TABLES: [SpreadTable; 3] = [
        SpreadTable::PartA,
        SpreadTable::PartB,
        SpreadTable::ChinaConnect,
    ];

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
        assert_eq!(t.tick_up(Price(250)), 5);
        assert_eq!(t.tick_down(Price(250)), 1);
        assert_eq!(t.tick_up(Price(20_000)), 20);
        assert_eq!(t.tick_down(Price(20_000)), 10);
    }

    #[test]
    fn walks_across_every_band_boundary_match_stepping() {
        for t in TABLES {
            let mut edges: Vec<i64> = vec![MIN_PRICE.0, MIN_PRICE.0 + 1, 0, 1, 5];
            for &(hi, tick) in t.bands().iter().take(12) {
                for d in [-2 * tick, -tick, -1, 0, 1, tick, 2 * tick] {
                    edges.push(hi + d);
                }
            }
            for &p in &edges {
                for n in [-700, -40, -25, -10, -3, -1, 0, 1, 3, 10, 25, 40, 700] {
                    assert_eq!(
                        t.shift(Price(p), n),
                        shift_stepping(t, Price(p), n),
                        "{t:?} shift {p} by {n}"
                    );
                }
                for &q in &edges {
                    for cap in [0, 1, 9, 24, 25, 100, 5_000] {
                        assert_eq!(
                            t.spreads_between(Price(p), Price(q), cap),
                            spreads_stepping(t, Price(p), Price(q), cap),
                            "{t:?} spreads between {p} and {q} cap {cap}"
                        );
                    }
                }
            }
        }
    }

    proptest! {
        #[test]
        fn shift_and_spreads_match_one_tick_at_a_time(
            table in 0usize..3,
            p in -100i64..11_000_000,
            q in -100i64..11_000_000,
            n in -400i32..400,
            cap in 0u32..300,
        ) {
            let t = TABLES[table];
            // Prices near each other, the common case, as well as far apart.
            let near = p + (q % 50_000);
            for (a, b) in [(p, q), (p, near)] {
                prop_assert_eq!(
                    t.spreads_between(Price(a), Price(b), cap),
                    spreads_stepping(t, Price(a), Price(b), cap),
                    "{:?} spreads between {} and {} cap {}", t, a, b, cap
                );
            }
            prop_assert_eq!(
                t.shift(Price(p), n),
                shift_stepping(t, Price(p), n),
                "{:?} shift {} by {}", t, p, n
            );
        }
    }
}
