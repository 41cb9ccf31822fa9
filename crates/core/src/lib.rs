//! Domain types shared by every twinsite crate.
//!
//! Prices are integers in 1/1000 of the quote currency (the OMD-C resolution), quantities are
//! whole shares, timestamps are nanoseconds since the Unix epoch (UTC). Nothing here uses floats.
//! Every limit the exchange documents lives in [`limits`].

pub mod ids;
pub mod limits;
pub mod price;
pub mod spread;
pub mod text;
pub mod time;

pub use ids::{
    BrokerId, ClOrdId, CompId, IdError, MarketSegment, NodeRole, OrderId, ParticipantKind,
    Platform, SecurityCode, Side, Site,
};
pub use price::{Price, PriceError, Qty};
pub use spread::SpreadTable;
pub use time::Timestamp;
