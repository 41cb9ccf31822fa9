//! Sans-IO implementation of the HKEX OCG-C binary trading protocol.
//!
//! Bytes in, events and bytes out; the caller passes `now` into every call and owns sockets,
//! timers and threads. Layers:
//!
//! * Codec: [`wire`] primitives, [`messages`] (all 28 message types), [`frame`] (framing,
//!   CRC-32C, the streaming [`FrameDecoder`]).
//! * [`server`]: the exchange side. [`OcgServer`] manages every connection and every Comp ID's
//!   [`DurableSession`] (the serialisable state a backup site needs), and emits
//!   [`ServerAction`]s. [`throttle`] and [`cod`] are its sans-IO components.
//! * [`client`]: a participant's side ([`OcgClient`]): lookup ladder, reconnect ladder, logon,
//!   replay, de-duplication by Execution ID.
//!
//! Facts come from `shared/reference/ocg-c-and-trading-rules.md` §1-§3; choices where the
//! reference is silent are listed in `docs/ocg.md`.

pub mod enums;
pub mod error;
pub mod frame;
pub mod messages;
pub mod wire;

#[cfg(test)]
mod codec_tests;

pub use enums::*;
pub use error::{DecodeError, EncodeError, FieldError};
pub use frame::{decode_frame, decode_one, encode, FrameDecoder, Header, RawFrame};
pub use messages::*;
pub use wire::{Block, Char, Decimal, FixedStr, Group, VarStr, WireField};

pub mod accessors;
pub mod client;
pub mod cod;
pub mod lookup;
pub mod password;
pub mod server;
pub mod session;
pub mod throttle;

pub use client::{
    ClientAction, ClientConfig, ClientError, ClientState, ConnectPurpose, OcgClient, StopReason,
};
pub use lookup::{LookupOutcome, LookupService};
pub use server::{
    ConnectionId, DisconnectReason, DurableSession, LogonSequences, OcgServer, ParticipantConfig,
    ServerAction, ServerConfig, ServerError,
};
#[cfg(test)]
mod client_tests;
#[cfg(test)]
mod server_tests;
