//! twinsite-omd: a sans-IO implementation of OMD-C (and the OMD-CC layouts).
//!
//! Bytes in, events and bytes out; the current time is always a parameter. Nothing here opens
//! a socket, reads a clock or spawns a task: the runtime (`crates/site`) does that.
//!
//! * [`wire`], [`message`], [`packet`]: the codec (every message of the reference catalogue).
#![forbid(unsafe_code)]

#[macro_use]
pub mod wire;
pub mod message;
pub mod packet;

pub use message::Message;
pub use packet::{Packet, PacketBuilder, PacketHeader};
pub use wire::{BookSide, DecodeError};

#[cfg(test)]
mod codec_tests;
