//! FIX UTCTimestamp: `YYYYMMDD-HH:MM:SS[.sss|.ssssss|.sssssssss]`, always UTC.

use twinsite_core::time::days_from_civil;
use twinsite_core::Timestamp;

/// Fractional-second digits written in a UTCTimestamp.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum TimePrecision {
    Seconds,
    Millis,
    Micros,
    Nanos,
}

/// Format a timestamp as a FIX UTCTimestamp.
pub fn format_utc_timestamp(t: Timestamp, precision: TimePrecision) -> String {
    let mut buf = [0u8; UTC_TIMESTAMP_MAX_LEN];
    let n = write_utc_timestamp(t, precision, &mut buf);
    // Only ASCII digits and separators are written.
    buf[..n].iter().map(|&c| c as char).collect()
}

/// Longest UTCTimestamp: `YYYYMMDD-HH:MM:SS.sssssssss`.
pub const UTC_TIMESTAMP_MAX_LEN: usize = twinsite_core::time::UTC_TEXT_MAX_LEN;

/// [`format_utc_timestamp`] into a buffer, without allocating; returns the length written.
/// Years past 9999 are written with their low four digits (no FIX timestamp gets there).
pub fn write_utc_timestamp(
    t: Timestamp,
    precision: TimePrecision,
    out: &mut [u8; UTC_TIMESTAMP_MAX_LEN],
) -> usize {
    let digits = match precision {
        TimePrecision::Seconds => 0,
        TimePrecision::Millis => 3,
        TimePrecision::Micros => 6,
        TimePrecision::Nanos => 9,
    };
    t.write_utc(digits, out)
}

/// Parse a FIX UTCTimestamp; `None` if it is not exactly one of the four allowed shapes or names
/// an impossible date or time (leap second 60 is accepted as FIX allows it).
pub fn parse_utc_timestamp(s: &str) -> Option<Timestamp> {
    let b = s.as_bytes();
    if b.len() < 17 || b[8] != b'-' || b[11] != b':' || b[14] != b':' {
        return None;
    }
    let number = |from: usize, to: usize| -> Option<u32> {
        let part = &b[from..to];
        if !part.iter().all(u8::is_ascii_digit) {
            return None;
        }
        Some(
            part.iter()
                .fold(0u32, |acc, d| acc * 10 + (d - b'0') as u32),
        )
    };
    let year = number(0, 4)? as i32;
    let month = number(4, 6)?;
    let day = number(6, 8)?;
    let hour = number(9, 11)?;
    let minute = number(12, 14)?;
    let second = number(15, 17)?;
    let nanos = match b.len() {
        17 => 0,
        21 | 24 | 27 if b[17] == b'.' => {
            let digits = b.len() - 18;
            number(18, b.len())? * 10u32.pow(9 - digits as u32)
        }
        _ => return None,
    };
    if year < 1970 || !(1..=12).contains(&month) || day == 0 || day > days_in_month(year, month) {
        return None;
    }
    if hour > 23 || minute > 59 || second > 60 {
        return None;
    }
    let days = days_from_civil(year, month, day);
    let secs = days as u64 * 86_400 + (hour * 3600 + minute * 60 + second) as u64;
    Some(Timestamp(
        secs.checked_mul(1_000_000_000)?.checked_add(nanos as u64)?,
    ))
}

fn days_in_month(year: i32, month: u32) -> u32 {
    match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        _ if (year % 4 == 0 && year % 100 != 0) || year % 400 == 0 => 29,
        _ => 28,
    }
}

/// Format `YYYYMMDDHHMMSS` (UTC), the prefix of the encrypted password plaintext.
pub fn format_password_time(t: Timestamp) -> String {
    let (y, mo, d, h, mi, s, _) = t.to_utc_civil();
    format!("{y:04}{mo:02}{d:02}{h:02}{mi:02}{s:02}")
}

/// Parse `YYYYMMDDHHMMSS` (UTC).
pub fn parse_password_time(s: &str) -> Option<Timestamp> {
    if s.len() != 14 || !s.bytes().all(|c| c.is_ascii_digit()) {
        return None;
    }
    parse_utc_timestamp(&format!(
        "{}-{}:{}:{}",
        &s[..8],
        &s[8..10],
        &s[10..12],
        &s[12..14]
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn parses_all_precisions() {
        let t = Timestamp::from_hkt(2023, 11, 25, 9, 30, 0);
        assert_eq!(parse_utc_timestamp("20231125-01:30:00"), Some(t));
        assert_eq!(
            parse_utc_timestamp("20231125-01:30:00.123"),
            Some(t.plus_nanos(123_000_000))
        );
        assert_eq!(
            parse_utc_timestamp("20231125-01:30:00.123456"),
            Some(t.plus_nanos(123_456_000))
        );
        assert_eq!(
            parse_utc_timestamp("20231125-01:30:00.123456789"),
            Some(t.plus_nanos(123_456_789))
        );
    }

    #[test]
    fn rejects_malformed() {
        for bad in [
            "",
            "20231125-1:30:00",
            "20231125-01:30:00.1",
            "20231132-01:30:00",
            "20230229-01:30:00",
            "20231125-24:00:00",
            "2023112501:30:00x",
            "20231125-01:30:00.12a",
        ] {
            assert_eq!(parse_utc_timestamp(bad), None, "{bad}");
        }
        assert!(parse_utc_timestamp("20240229-00:00:00").is_some());
    }

    #[test]
    fn password_time_round_trips() {
        let t = Timestamp::from_secs(1_700_000_000);
        assert_eq!(format_password_time(t), "20231114221320");
        assert_eq!(parse_password_time("20231114221320"), Some(t));
    }

    proptest! {
        #![proptest_config(crate::proptest_config(256))]
        #[test]
        fn format_parse_round_trip(ns in 0u64..4_000_000_000_000_000_000) {
            let t = Timestamp(ns);
            let nanos = format_utc_timestamp(t, TimePrecision::Nanos);
            prop_assert_eq!(parse_utc_timestamp(&nanos), Some(t));
            let ms = Timestamp(ns / 1_000_000 * 1_000_000);
            let millis = format_utc_timestamp(t, TimePrecision::Millis);
            prop_assert_eq!(parse_utc_timestamp(&millis), Some(ms));
        }
        #[test]
        fn buffer_formatting_matches_the_formatter(ns in any::<u64>()) {
            let t = Timestamp(ns);
            let (y, mo, d, h, mi, s, nanos) = t.to_utc_civil();
            let base = format!("{y:04}{mo:02}{d:02}-{h:02}:{mi:02}:{s:02}");
            prop_assert_eq!(format_utc_timestamp(t, TimePrecision::Seconds), base.clone());
            prop_assert_eq!(
                format_utc_timestamp(t, TimePrecision::Millis),
                format!("{base}.{:03}", nanos / 1_000_000)
            );
            prop_assert_eq!(
                format_utc_timestamp(t, TimePrecision::Micros),
                format!("{base}.{:06}", nanos / 1_000)
            );
            prop_assert_eq!(
                format_utc_timestamp(t, TimePrecision::Nanos),
                format!("{base}.{nanos:09}")
            );
        }
        #[test]
        fn arbitrary_strings_never_panic(s in "\\PC{0,30}") {
            let _ = parse_utc_timestamp(&s);
            let _ = parse_password_time(&s);
        }
    }
}
