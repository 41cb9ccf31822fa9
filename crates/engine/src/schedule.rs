//! The trading day's timetable as absolute timestamps, so a drill can compress it.

use crate::types::Phase;
use serde::{Deserialize, Serialize};
use twinsite_core::time::NANOS_PER_SEC;
use twinsite_core::Timestamp;

/// One scheduled phase change.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Transition {
    pub at: Timestamp,
    pub phase: Phase,
}

/// A day's timetable: phase changes in time order, plus the nominal-price sampling interval
/// used for the CAS reference price and non-CAS closing prices.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Schedule {
    pub transitions: Vec<Transition>,
    /// Interval between the five nominal-price samples ending at the close of continuous trading.
    pub sample_interval_ns: u64,
}

/// (HKT seconds of day, phase): the full-day timetable (OCG reference §5.1).
pub const FULL_DAY: &[(u32, Phase)] = &[
    (9 * 3600, Phase::PosOrderInput),
    (9 * 3600 + 15 * 60, Phase::PosNoCancel),
    (9 * 3600 + 20 * 60, Phase::PosRandomMatching),
    (9 * 3600 + 22 * 60, Phase::PosBlocking),
    (9 * 3600 + 30 * 60, Phase::ContinuousMorning),
    (12 * 3600, Phase::ExtendedMorning),
    (13 * 3600, Phase::ContinuousAfternoon),
    (16 * 3600, Phase::CasReferencePriceFixing),
    (16 * 3600 + 60, Phase::CasOrderInput),
    (16 * 3600 + 6 * 60, Phase::CasNoCancel),
    (16 * 3600 + 8 * 60, Phase::CasRandomClose),
    (16 * 3600 + 10 * 60, Phase::DayClosed),
];

/// Half day (Christmas, New Year and Lunar New Year eves): no extended morning or afternoon;
/// CAS from 12:00, random close 12:08 to 12:10.
pub const HALF_DAY: &[(u32, Phase)] = &[
    (9 * 3600, Phase::PosOrderInput),
    (9 * 3600 + 15 * 60, Phase::PosNoCancel),
    (9 * 3600 + 20 * 60, Phase::PosRandomMatching),
    (9 * 3600 + 22 * 60, Phase::PosBlocking),
    (9 * 3600 + 30 * 60, Phase::ContinuousMorning),
    (12 * 3600, Phase::CasReferencePriceFixing),
    (12 * 3600 + 60, Phase::CasOrderInput),
    (12 * 3600 + 6 * 60, Phase::CasNoCancel),
    (12 * 3600 + 8 * 60, Phase::CasRandomClose),
    (12 * 3600 + 10 * 60, Phase::DayClosed),
];

impl Schedule {
    /// A real-time day on `date` (HKT) from a timetable such as [`FULL_DAY`].
    pub fn for_date(year: i32, month: u32, day: u32, table: &[(u32, Phase)]) -> Schedule {
        let midnight = Timestamp::from_hkt(year, month, day, 0, 0, 0);
        Schedule {
            transitions: table
                .iter()
                .map(|&(sod, phase)| Transition {
                    at: midnight.plus_nanos(sod as u64 * NANOS_PER_SEC),
                    phase,
                })
                .collect(),
            sample_interval_ns: 15 * NANOS_PER_SEC,
        }
    }

    /// The same timetable starting at `start` (in place of the first transition) and running
    /// `speed` times faster than real time.
    pub fn compressed(table: &[(u32, Phase)], start: Timestamp, speed: u64) -> Schedule {
        let speed = speed.max(1);
        let t0 = table.first().map(|x| x.0).unwrap_or(0);
        Schedule {
            transitions: table
                .iter()
                .map(|&(sod, phase)| Transition {
                    at: start.plus_nanos((sod - t0) as u64 * NANOS_PER_SEC / speed),
                    phase,
                })
                .collect(),
            sample_interval_ns: 15 * NANOS_PER_SEC / speed,
        }
    }

    /// A schedule with no automatic changes (phases set by command only).
    pub fn manual() -> Schedule {
        Schedule {
            transitions: Vec::new(),
            sample_interval_ns: 15 * NANOS_PER_SEC,
        }
    }

    /// Check the transitions are in time order.
    pub fn validate(&self) -> Result<(), String> {
        for w in self.transitions.windows(2) {
            if w[1].at < w[0].at {
                return Err(format!(
                    "{:?} at {} is before {:?} at {}",
                    w[1].phase, w[1].at.0, w[0].phase, w[0].at.0
                ));
            }
        }
        Ok(())
    }
}
