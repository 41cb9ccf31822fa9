//! twinsite-omd: a sans-IO implementation of OMD-C (and the OMD-CC layouts).
//!
//! Bytes in, events and bytes out; the current time is always a parameter. Nothing here opens
//! a socket, reads a clock or spawns a task: the runtime (`crates/site`) does that.
//!
//! * [`wire`], [`message`], [`packet`]: the codec (every message of the reference catalogue).
//! * [`publisher`]: per-channel sequencing, Line A/B packetisation, heartbeats, reset, DR.
#![forbid(unsafe_code)]

#[macro_use]
pub mod wire;
pub mod message;
pub mod packet;
pub mod publisher;

pub use message::Message;
pub use packet::{Packet, PacketBuilder, PacketHeader};
pub use publisher::{
    ChannelPublisher, Datagram, DrChannelPublisher, DrStatus, Line, PublisherConfig,
};
pub use wire::{BookSide, DecodeError};

#[cfg(test)]
mod codec_tests;
