//! Throttle (reference §1.12): per Comp ID, `units x msgs_per_unit` business messages in each
//! one-second window aligned to the clock second; excess is rejected with the milliseconds left
//! in the window.

use serde::{Deserialize, Serialize};
use twinsite_core::time::NANOS_PER_MILLI;
use twinsite_core::Timestamp;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ThrottleConfig {
    /// Messages per second per throttle unit (2 at HKEX).
    pub msgs_per_unit: u32,
    /// Window length; one second at HKEX. Drills may shorten it.
    pub window_ns: u64,
}

impl Default for ThrottleConfig {
    fn default() -> Self {
        ThrottleConfig {
            msgs_per_unit: twinsite_core::limits::OCG_THROTTLE_MSGS_PER_UNIT,
            window_ns: twinsite_core::time::NANOS_PER_SEC,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Throttle {
    limit: u32,
    window_ns: u64,
    window: u64,
    used: u32,
    rejected: u32,
}

impl Throttle {
    pub fn new(config: ThrottleConfig, units: u32) -> Self {
        assert!(
            config.window_ns > 0,
            "Condition failed: throttle window is zero"
        );
        Throttle {
            limit: config.msgs_per_unit.saturating_mul(units),
            window_ns: config.window_ns,
            window: 0,
            used: 0,
            rejected: 0,
        }
    }

    /// Count one business message. `Err(ms)` if over the limit: milliseconds left in the window
    /// (at least 1).
    pub fn admit(&mut self, now: Timestamp) -> Result<(), u64> {
        let window = now.0 / self.window_ns;
        if window != self.window {
            self.window = window;
            self.used = 0;
            self.rejected = 0;
        }
        if self.used < self.limit {
            self.used += 1;
            return Ok(());
        }
        self.rejected += 1;
        let left_ns = (window + 1) * self.window_ns - now.0;
        Err(left_ns.div_ceil(NANOS_PER_MILLI).max(1))
    }
}

impl Throttle {
    /// Messages rejected in the current window (gross-violation detection).
    pub fn rejected_in_window(&self) -> u32 {
        self.rejected
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn four_units_admit_eight_per_clock_second() {
        // Reference §1.12: throttle 4 => 8 messages accepted in a second, the 9th-12th rejected.
        let mut t = Throttle::new(ThrottleConfig::default(), 4);
        let base = 1_700_000_000_000_000_000u64;
        for i in 0..8 {
            assert_eq!(t.admit(Timestamp(base + 700_000_000 + i)), Ok(()));
        }
        assert_eq!(t.admit(Timestamp(base + 750_000_000)), Err(250));
        assert_eq!(t.admit(Timestamp(base + 999_999_999)), Err(1));
        // The window is aligned to the clock second, not to the first message.
        assert_eq!(t.admit(Timestamp(base + 1_000_000_000)), Ok(()));
    }
}
