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
