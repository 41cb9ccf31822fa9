//! Time as a value: nanoseconds since the Unix epoch, UTC. Nothing in the sans-IO crates or the
//! engine reads a clock; `now` is always passed in.

use serde::{Deserialize, Serialize};

/// Nanoseconds since 1970-01-01T00:00:00Z.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, Default,
)]
#[serde(transparent)]
pub struct Timestamp(pub u64);

pub const NANOS_PER_SEC: u64 = 1_000_000_000;
pub const NANOS_PER_MILLI: u64 = 1_000_000;
/// Hong Kong is UTC+8 all year (no daylight saving).
pub const HKT_OFFSET_SECS: i64 = 8 * 3600;

impl Timestamp {
    pub fn from_secs(s: u64) -> Timestamp {
        Timestamp(s * NANOS_PER_SEC)
    }
    pub fn from_millis(ms: u64) -> Timestamp {
        Timestamp(ms * NANOS_PER_MILLI)
    }
    pub fn secs(self) -> u64 {
        self.0 / NANOS_PER_SEC
    }
    pub fn millis(self) -> u64 {
        self.0 / NANOS_PER_MILLI
    }
    pub fn plus_nanos(self, n: u64) -> Timestamp {
        Timestamp(self.0.saturating_add(n))
    }
    pub fn saturating_sub(self, other: Timestamp) -> u64 {
        self.0.saturating_sub(other.0)
    }
    /// Seconds since local (HKT) midnight.
    pub fn hkt_seconds_of_day(self) -> u32 {
        ((self.secs() as i64 + HKT_OFFSET_SECS).rem_euclid(86_400)) as u32
    }
    /// A UTC timestamp for a civil date (proleptic Gregorian) and HKT time of day.
    pub fn from_hkt(year: i32, month: u32, day: u32, h: u32, m: u32, s: u32) -> Timestamp {
        let days = days_from_civil(year, month, day);
        let secs = days * 86_400 + (h * 3600 + m * 60 + s) as i64 - HKT_OFFSET_SECS;
        Timestamp::from_secs(secs.max(0) as u64)
    }
    /// Civil UTC date and time: (year, month, day, hour, minute, second, nanos).
    pub fn to_utc_civil(self) -> (i32, u32, u32, u32, u32, u32, u32) {
        let secs = self.secs() as i64;
        let (y, mo, d) = civil_from_days(secs.div_euclid(86_400));
        let sod = secs.rem_euclid(86_400) as u32;
        (
            y,
            mo,
            d,
            sod / 3600,
            sod / 60 % 60,
            sod % 60,
            (self.0 % NANOS_PER_SEC) as u32,
        )
    }
}

/// Days since 1970-01-01 (Howard Hinnant's algorithm).
pub fn days_from_civil(y: i32, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y } as i64;
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = m as i64;
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + d as i64 - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Civil date from days since 1970-01-01.
pub fn civil_from_days(z: i64) -> (i32, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    ((if m <= 2 { y + 1 } else { y }) as i32, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn hkt_conversion() {
        let t = Timestamp::from_hkt(2023, 11, 25, 8, 0, 0);
        assert_eq!(t.to_utc_civil(), (2023, 11, 25, 0, 0, 0, 0));
        assert_eq!(t.hkt_seconds_of_day(), 8 * 3600);
        let t = Timestamp::from_hkt(2023, 11, 25, 7, 0, 0);
        assert_eq!(t.to_utc_civil(), (2023, 11, 24, 23, 0, 0, 0));
    }
}
