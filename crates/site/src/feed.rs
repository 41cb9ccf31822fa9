//! Market-data input from the core: engine events in commit order, with their time.

use twinsite_core::Timestamp;
use twinsite_engine::Event;

/// What the core hands the market-data feed.
#[derive(Debug, Clone, PartialEq)]
pub enum FeedInput {
    Events {
        events: Vec<Event>,
        now: Timestamp,
    },
    /// The site became active (after a site failover when `failover`): publish from here on.
    Active {
        failover: bool,
        now: Timestamp,
    },
    /// The site stopped serving.
    Standby {
        now: Timestamp,
    },
}
