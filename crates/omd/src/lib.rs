//! twinsite-omd: a sans-IO implementation of OMD-C (and the OMD-CC layouts).
//!
//! Bytes in, events and bytes out; the current time is always a parameter. Nothing here opens
//! a socket, reads a clock or spawns a task: the runtime (`crates/site`) does that.
//!
//! * [`wire`], [`message`], [`packet`]: the codec (every message of the reference catalogue).
//! * [`products`]: messages of each product from [`MarketEvent`]s (book, ticker, statistics).
//! * [`image`]: the market image a client rebuilds; also the refresh service's source.
//! * [`rts`]: retransmission server and client; [`refresh`]: snapshot cycles.
//! * [`handler`]: the reference feed handler (arbitration, gap recovery, reset, DR).
//! * [`publisher`]: per-channel sequencing, Line A/B packetisation, heartbeats, reset, DR.
//!
//! A minimal round trip, publisher to handler:
//!
//! ```
//! use twinsite_core::{BrokerId, OrderId, Price, Qty, SecurityCode, Side, Timestamp};
//! use twinsite_omd::{
//!     ChannelPublisher, FeedHandler, HandlerConfig, MarketEvent, Product, ProductBuilder,
//!     PublisherConfig, RtsClientConfig,
//! };
//!
//! let now = Timestamp::from_secs(1_800_000_000);
//! let mut builder = ProductBuilder::new(Product::SecuritiesFullTick);
//! let mut publisher = ChannelPublisher::new(PublisherConfig::new(21), now);
//! let mut config = HandlerConfig::new(21);
//! config.refresh_after_sequence_reset = false; // start of day: nothing to rebuild
//! let mut handler = FeedHandler::new([config], RtsClientConfig::new("user01"));
//!
//! publisher.sequence_reset(now);
//! let mut messages = Vec::new();
//! let event = MarketEvent::OrderAdded {
//!     security: SecurityCode(700),
//!     order_id: OrderId(1),
//!     side: Side::Buy,
//!     price: Price(385_200),
//!     qty: Qty(100),
//!     broker: BrokerId(1234),
//!     odd_lot: false,
//! };
//! builder.on_event(&event, &mut messages).unwrap();
//! builder.end_batch(&mut messages);
//! for msg in &messages {
//!     publisher.publish(msg, now).unwrap();
//! }
//! publisher.flush_all(now);
//! while let Some(datagram) = publisher.poll_transmit() {
//!     handler.handle_realtime(21, datagram.line, &datagram.bytes, now);
//! }
//! let channel = handler.channel(21).unwrap();
//! assert!(channel.is_live());
//! assert_eq!(channel.image().order_count(), 1);
//! ```
#![forbid(unsafe_code)]

#[macro_use]
pub mod wire;
pub mod handler;
pub mod image;
pub mod message;
pub mod packet;
pub mod products;
pub mod publisher;
pub mod refresh;
pub mod rts;

pub use handler::{ChannelHandler, FeedHandler, HandlerConfig, HandlerEvent, Problem};
pub use image::MarketImage;
pub use message::Message;
pub use packet::{Packet, PacketBuilder, PacketHeader};
pub use products::{MarketEvent, Product, ProductBuilder, ProductError};
pub use publisher::{
    ChannelPublisher, Datagram, DrChannelPublisher, DrStatus, Line, PublisherConfig,
};
pub use refresh::{RefreshConfig, RefreshService};
pub use rts::{RtsClient, RtsClientConfig, RtsClientEvent, RtsServer, RtsServerConfig};
pub use wire::{BookSide, DecodeError};

#[cfg(test)]
mod codec_tests;
