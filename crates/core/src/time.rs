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
    /// `YYYYMMDD-HH:MM:SS` and, for `frac_digits` 1 to 9, `.` and that many digits of the
    /// second (truncated), written into `out` without allocating (OCG-C TransactTime, FIX
    /// UTCTimestamp); returns the length written. Years past 9999 keep their low four digits.
    pub fn write_utc(self, frac_digits: usize, out: &mut [u8; UTC_TEXT_MAX_LEN]) -> usize {
        let (y, mo, d, h, mi, s, nanos) = self.to_utc_civil();
        let put = |out: &mut [u8; UTC_TEXT_MAX_LEN], at: usize, width: usize, mut v: u32| {
            for i in (at..at + width).rev() {
                out[i] = b'0' + (v % 10) as u8;
                v /= 10;
            }
        };
        put(out, 0, 4, y.rem_euclid(10_000) as u32);
        put(out, 4, 2, mo);
        put(out, 6, 2, d);
        out[8] = b'-';
        put(out, 9, 2, h);
        out[11] = b':';
        put(out, 12, 2, mi);
        out[14] = b':';
        put(out, 15, 2, s);
        let digits = frac_digits.min(9);
        if digits == 0 {
            return 17;
        }
        out[17] = b'.';
        put(out, 18, digits, nanos / 10u32.pow(9 - digits as u32));
        18 + digits
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

/// Longest text [`Timestamp::write_utc`] writes: `YYYYMMDD-HH:MM:SS.sssssssss`.
pub const UTC_TEXT_MAX_LEN: usize = 27;

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
