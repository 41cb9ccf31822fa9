//! Retransmission service (§3.2), server and client, sans-IO.
//!
//! The TCP link carries the same 16-byte packet header as multicast. The server keeps the last
//! 50,000 messages of each channel, serves at most 10,000 sequence numbers per request and 1,000
//! requests per user per day (all channels), expects a Logon within 5 s, sends a heartbeat every
//! 30 s and disconnects a client that does not echo it byte for byte within 5 s. Requests are
//! served serially, answered with a Retransmission Response and then the messages with their
//! original sequence numbers. Output for a connection goes only to that connection.

use crate::message::{
    Logon, LogonResponse, Message, RetransmissionRequest, RetransmissionResponse, SequenceReset,
};
use crate::packet::{heartbeat, Packet, PacketBuilder, PacketHeader, StreamDeframer};
use crate::wire::{DecodeError, NulStr};
use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use twinsite_core::limits::{
    OMD_MAX_PAYLOAD, OMD_RTS_HEARTBEAT_ECHO_SECS, OMD_RTS_MAX_PER_REQUEST,
    OMD_RTS_MAX_REQUESTS_PER_DAY, OMD_RTS_RETAINED_PER_CHANNEL,
};
use twinsite_core::time::NANOS_PER_SEC;
use twinsite_core::Timestamp;

/// SessionStatus of Logon Response (102).
pub mod session_status {
    pub const ACTIVE: u8 = 0;
    pub const INVALID_USERNAME_OR_IP: u8 = 5;
    pub const ALREADY_CONNECTED: u8 = 100;
}

/// RetransStatus of Retransmission Response (202).
pub mod retrans_status {
    pub const ACCEPTED: u8 = 0;
    pub const UNKNOWN_CHANNEL: u8 = 1;
    pub const NOT_AVAILABLE: u8 = 2;
    pub const EXCEEDS_RANGE: u8 = 100;
    pub const EXCEEDS_DAILY_REQUESTS: u8 = 101;
}

/// Server limits and timers; defaults are the documented values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RtsServerConfig {
    /// Usernames allowed to log on.
    pub users: BTreeSet<String>,
    /// Channels the service retransmits (refresh channels are never served).
    pub channels: BTreeSet<u16>,
    pub retained_per_channel: u32,
    pub max_per_request: u32,
    pub max_requests_per_day: u32,
    pub logon_timeout_ns: u64,
    pub heartbeat_interval_ns: u64,
    pub heartbeat_response_timeout_ns: u64,
}

impl RtsServerConfig {
    pub fn new(
        users: impl IntoIterator<Item = String>,
        channels: impl IntoIterator<Item = u16>,
    ) -> Self {
        RtsServerConfig {
            users: users.into_iter().collect(),
            channels: channels.into_iter().collect(),
            retained_per_channel: OMD_RTS_RETAINED_PER_CHANNEL,
            max_per_request: OMD_RTS_MAX_PER_REQUEST,
            max_requests_per_day: OMD_RTS_MAX_REQUESTS_PER_DAY,
            logon_timeout_ns: 5 * NANOS_PER_SEC,
            heartbeat_interval_ns: 30 * NANOS_PER_SEC,
            heartbeat_response_timeout_ns: OMD_RTS_HEARTBEAT_ECHO_SECS * NANOS_PER_SEC,
        }
    }
}

/// The last N messages of each channel, by sequence number.
///
/// Messages are kept as they were sent: a real-time channel records each Line A packet
/// ([`RetransmissionStore::record_packet`]: one copy of its messages, about a dozen at load)
/// instead of a copy per message; single messages can be recorded too
/// ([`RetransmissionStore::record_copy`]). Either way exactly the last `capacity` messages are
/// served, message by message.
#[derive(Debug, Clone, Default)]
pub struct RetransmissionStore {
    capacity: u32,
    /// Per channel (a handful, searched linearly): the retained messages, oldest first.
    channels: Vec<(u16, Kept)>,
}

/// A run of consecutive messages recorded at once (a packet's messages, or one message).
#[derive(Debug, Clone, Copy)]
struct Chunk {
    /// Sequence number of the chunk's first message.
    first_seq: u32,
    /// Messages in the chunk.
    count: u32,
    /// Absolute number of the block holding the chunk's bytes.
    block: u64,
    /// The chunk's bytes in its block.
    start: u32,
    end: u32,
}

/// One channel's retained messages, oldest first, in fixed-size blocks: recording a chunk is
/// one copy to the end of the newest block (a new block when it does not fit); once the
/// channel holds more than its capacity, the window's start mark moves on, chunks wholly before
/// it are forgotten, and blocks holding only forgotten chunks are recycled. No byte is ever
/// moved again and, once warm, nothing is allocated.
#[derive(Debug, Clone, Default)]
struct Kept {
    /// Sequence number of the oldest retained message (meaningless while `count` is 0).
    first_seq: u32,
    /// Messages retained (the window `first_seq..first_seq + count`).
    count: u32,
    /// The chunks holding the window, oldest first; the first may start before the window.
    chunks: VecDeque<Chunk>,
    /// The blocks holding the chunks, oldest first; `blocks[0]` is block `first_block`.
    blocks: VecDeque<Vec<u8>>,
    first_block: u64,
    /// Recycled blocks.
    spare: Vec<Vec<u8>>,
}

impl Kept {
    /// Bytes per block (a chunk larger than this gets a block of its own size).
    const BLOCK: usize = 64 * 1024;

    fn len(&self) -> usize {
        self.count as usize
    }

    fn last_seq(&self) -> Option<u32> {
        (self.count > 0).then(|| self.first_seq.wrapping_add(self.count - 1))
    }

    fn clear(&mut self) {
        self.count = 0;
        self.chunks.clear();
        while let Some(block) = self.blocks.pop_front() {
            self.recycle(block);
        }
        self.first_block = 0;
    }

    fn recycle(&mut self, mut block: Vec<u8>) {
        if self.spare.len() < 2 && block.capacity() == Self::BLOCK {
            block.clear();
            self.spare.push(block);
        }
    }

    /// Keep `count` (>= 1) consecutive messages from `seq_num`, whose bytes are `bytes`.
    fn push(&mut self, seq_num: u32, count: u32, bytes: &[u8], capacity: u32) {
        if self
            .last_seq()
            .is_some_and(|last| last.wrapping_add(1) != seq_num)
        {
            self.clear();
        }
        if self.count == 0 {
            self.first_seq = seq_num;
        }
        let fits = self
            .blocks
            .back()
            .is_some_and(|b| b.len() + bytes.len() <= b.capacity());
        if !fits {
            let block = match self.spare.pop() {
                Some(b) if bytes.len() <= Self::BLOCK => b,
                _ => Vec::with_capacity(Self::BLOCK.max(bytes.len())),
            };
            self.blocks.push_back(block);
        }
        let block_no = self.first_block + self.blocks.len() as u64 - 1;
        let block = self
            .blocks
            .back_mut()
            .expect("Invariant: a block was just ensured");
        let start = block.len() as u32;
        block.extend_from_slice(bytes);
        self.chunks.push_back(Chunk {
            first_seq: seq_num,
            count,
            block: block_no,
            start,
            end: block.len() as u32,
        });
        self.count = self.count.saturating_add(count);
        if self.count > capacity {
            // The window moves on; chunks wholly before it are forgotten, then their blocks.
            self.first_seq = self.first_seq.wrapping_add(self.count - capacity);
            self.count = capacity;
            while let Some(&oldest) = self.chunks.front() {
                if self.first_seq.wrapping_sub(oldest.first_seq) < oldest.count {
                    break;
                }
                self.chunks.pop_front();
            }
            let live = self.chunks.front().map_or(u64::MAX, |c| c.block);
            while self.first_block < live {
                let Some(block) = self.blocks.pop_front() else {
                    break;
                };
                self.first_block += 1;
                self.recycle(block);
            }
        }
    }

    /// The messages `begin..=end` (within the window), in order; `None` if the recorded
    /// bytes do not frame (never for the publisher's own packets).
    fn range(&self, begin: u32, end: u32) -> Option<Vec<(u32, &[u8])>> {
        let origin = self.chunks.front()?.first_seq;
        let target = begin.wrapping_sub(origin);
        let at = self
            .chunks
            .partition_point(|c| c.first_seq.wrapping_sub(origin) <= target)
            .checked_sub(1)?;
        let mut out = Vec::with_capacity(end.wrapping_sub(begin) as usize + 1);
        for chunk in self.chunks.range(at..) {
            let block = self
                .blocks
                .get(chunk.block.checked_sub(self.first_block)? as usize)?;
            let mut rest = block.get(chunk.start as usize..chunk.end as usize)?;
            let mut seq = chunk.first_seq;
            for left in (1..=chunk.count).rev() {
                let size = if left == 1 {
                    // A chunk's last message runs to its end (a single message recorded on
                    // its own need not carry a MsgSize).
                    rest.len()
                } else {
                    if rest.len() < 4 {
                        return None;
                    }
                    let size = crate::wire::u16_at(rest, 0) as usize;
                    if size < 4 || size > rest.len() {
                        return None;
                    }
                    size
                };
                let (msg, next) = rest.split_at(size);
                if seq.wrapping_sub(begin) <= end.wrapping_sub(begin) {
                    out.push((seq, msg));
                    if seq == end {
                        return Some(out);
                    }
                }
                rest = next;
                seq = seq.wrapping_add(1);
            }
        }
        None
    }
}

impl RetransmissionStore {
    pub fn new(capacity: u32) -> Self {
        RetransmissionStore {
            capacity: capacity.max(1),
            channels: Vec::new(),
        }
    }

    fn kept(&self, channel: u16) -> Option<&Kept> {
        self.channels
            .iter()
            .find(|(c, _)| *c == channel)
            .map(|(_, k)| k)
    }

    fn kept_mut(&mut self, channel: u16) -> &mut Kept {
        let at = match self.channels.iter().position(|(c, _)| *c == channel) {
            Some(at) => at,
            None => {
                self.channels.push((channel, Kept::default()));
                self.channels.len() - 1
            }
        };
        &mut self.channels[at].1
    }

    /// Keep a published message. Sequence numbers must increase by one; a jump (which only a
    /// caller bug produces) restarts the channel's store.
    pub fn record(&mut self, channel: u16, seq_num: u32, bytes: Vec<u8>) {
        self.record_copy(channel, seq_num, &bytes);
    }

    /// [`RetransmissionStore::record`] of a copy of `bytes` (a copy into the channel's
    /// blocks; no allocation once they are warm).
    pub fn record_copy(&mut self, channel: u16, seq_num: u32, bytes: &[u8]) {
        let capacity = self.capacity;
        self.kept_mut(channel).push(seq_num, 1, bytes, capacity);
    }

    /// Keep every message of a packet as sent (one copy of its messages): the same as
    /// [`RetransmissionStore::record_copy`] of each message with its sequence number. A
    /// heartbeat keeps nothing; a packet starting with a Sequence Reset (100) forgets the
    /// channel's messages (the reset itself is never retransmitted). Returns false (and keeps
    /// nothing) for bytes whose packet header does not frame them (PktSize); messages whose
    /// MsgSize fields do not frame the packet are refused when requested (never served).
    pub fn record_packet(&mut self, channel: u16, packet: &[u8]) -> bool {
        // The header is checked here; the messages' framing when they are served.
        let Ok(header) = PacketHeader::decode(packet) else {
            return false;
        };
        if header.pkt_size as usize != packet.len() {
            return false;
        }
        let count = header.msg_count as u32;
        let body = &packet[PacketHeader::LEN..];
        if count == 0 {
            return body.is_empty();
        }
        if crate::packet::raw_msg_type(body) == Some(SequenceReset::MSG_TYPE) {
            self.reset(channel);
            return true;
        }
        let capacity = self.capacity;
        self.kept_mut(channel)
            .push(header.seq_num, count, body, capacity);
        true
    }

    /// Messages retained for `channel`.
    pub fn retained(&self, channel: u16) -> usize {
        self.kept(channel).map_or(0, Kept::len)
    }

    /// Forget a channel's messages (Sequence Reset).
    pub fn reset(&mut self, channel: u16) {
        self.channels.retain(|(c, _)| *c != channel);
    }

    /// The messages `begin..=end`, if all are retained.
    pub fn range(&self, channel: u16, begin: u32, end: u32) -> Option<Vec<(u32, &[u8])>> {
        let kept = self.kept(channel)?;
        let first = kept.first_seq;
        let last = kept.last_seq()?;
        if begin < first || end > last || begin > end {
            return None;
        }
        kept.range(begin, end)
    }
}

/// A TCP connection, named by the runtime.
pub type ConnectionId = u64;

#[derive(Debug, Clone)]
enum ServerState {
    ExpectLogon {
        deadline: Timestamp,
    },
    LoggedOn {
        user: String,
        next_heartbeat: Timestamp,
        /// The heartbeat sent and not yet echoed, with its deadline.
        awaiting_echo: Option<(Vec<u8>, Timestamp)>,
    },
    Closing,
}

#[derive(Debug, Clone)]
struct ServerSession {
    state: ServerState,
    deframer: StreamDeframer,
    out: VecDeque<Vec<u8>>,
}

/// What the server reports (for logs and drills).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RtsServerEvent {
    LoggedOn {
        connection: ConnectionId,
        user: String,
    },
    Rejected {
        connection: ConnectionId,
        status: u8,
    },
    Served {
        connection: ConnectionId,
        channel: u16,
        begin: u32,
        end: u32,
        status: u8,
    },
    /// The connection must be closed once its output is sent.
    Closing {
        connection: ConnectionId,
        reason: &'static str,
    },
}

/// The retransmission server for all channels of one site.
#[derive(Debug, Clone)]
pub struct RtsServer {
    config: RtsServerConfig,
    store: RetransmissionStore,
    sessions: BTreeMap<ConnectionId, ServerSession>,
    requests_today: HashMap<String, u32>,
    events: VecDeque<RtsServerEvent>,
}

impl RtsServer {
    pub fn new(config: RtsServerConfig) -> RtsServer {
        RtsServer {
            store: RetransmissionStore::new(config.retained_per_channel),
            config,
            sessions: BTreeMap::new(),
            requests_today: HashMap::new(),
            events: VecDeque::new(),
        }
    }

    /// Where published messages are kept: call `record` for every real-time message.
    pub fn store_mut(&mut self) -> &mut RetransmissionStore {
        &mut self.store
    }

    /// A new business day: request counters restart.
    pub fn start_of_day(&mut self) {
        self.requests_today.clear();
    }

    /// A client connected.
    pub fn accept(&mut self, connection: ConnectionId, now: Timestamp) {
        self.sessions.insert(
            connection,
            ServerSession {
                state: ServerState::ExpectLogon {
                    deadline: now.plus_nanos(self.config.logon_timeout_ns),
                },
                deframer: StreamDeframer::default(),
                out: VecDeque::new(),
            },
        );
    }

    /// The runtime closed (or lost) the connection.
    pub fn handle_closed(&mut self, connection: ConnectionId) {
        self.sessions.remove(&connection);
    }

    /// Bytes from a client.
    pub fn handle_data(&mut self, connection: ConnectionId, bytes: &[u8], now: Timestamp) {
        let Some(session) = self.sessions.get_mut(&connection) else {
            return;
        };
        session.deframer.push(bytes);
        loop {
            let Some(session) = self.sessions.get_mut(&connection) else {
                return;
            };
            if matches!(session.state, ServerState::Closing) {
                return;
            }
            match session.deframer.next_packet() {
                Ok(Some(packet)) => self.handle_packet(connection, &packet, now),
                Ok(None) => return,
                Err(_) => return self.close(connection, "corrupt stream"),
            }
        }
    }

    fn handle_packet(&mut self, connection: ConnectionId, bytes: &[u8], now: Timestamp) {
        let Ok(packet) = Packet::parse(bytes) else {
            return self.close(connection, "malformed packet");
        };
        if packet.header.is_heartbeat() {
            if let Some(session) = self.sessions.get_mut(&connection) {
                if let ServerState::LoggedOn { awaiting_echo, .. } = &mut session.state {
                    if awaiting_echo
                        .as_ref()
                        .is_some_and(|(sent, _)| sent == bytes)
                    {
                        *awaiting_echo = None;
                    }
                }
            }
            return;
        }
        for (_, raw) in packet.messages() {
            match Message::decode(raw) {
                Ok(Message::Logon(logon)) => self.logon(connection, &logon, now),
                Ok(Message::RetransmissionRequest(request)) => {
                    self.retransmission(connection, &request, now)
                }
                _ => return self.close(connection, "unexpected message"),
            }
        }
    }

    fn logon(&mut self, connection: ConnectionId, logon: &Logon, now: Timestamp) {
        let user = logon.username.text();
        let Some(session) = self.sessions.get(&connection) else {
            return;
        };
        if !matches!(session.state, ServerState::ExpectLogon { .. }) {
            return self.close(connection, "second logon");
        }
        let already = self
            .sessions
            .values()
            .any(|s| matches!(&s.state, ServerState::LoggedOn { user: u, .. } if *u == user));
        let status = if !self.config.users.contains(&user) {
            session_status::INVALID_USERNAME_OR_IP
        } else if already {
            session_status::ALREADY_CONNECTED
        } else {
            session_status::ACTIVE
        };
        self.send(
            connection,
            &LogonResponse {
                session_status: status,
            }
            .into(),
            0,
            now,
        );
        if status != session_status::ACTIVE {
            self.events
                .push_back(RtsServerEvent::Rejected { connection, status });
            return self.close(connection, "logon rejected");
        }
        if let Some(session) = self.sessions.get_mut(&connection) {
            session.state = ServerState::LoggedOn {
                user: user.clone(),
                next_heartbeat: now.plus_nanos(self.config.heartbeat_interval_ns),
                awaiting_echo: None,
            };
        }
        self.events
            .push_back(RtsServerEvent::LoggedOn { connection, user });
    }

    fn retransmission(
        &mut self,
        connection: ConnectionId,
        request: &RetransmissionRequest,
        now: Timestamp,
    ) {
        let Some(ServerState::LoggedOn { user, .. }) =
            self.sessions.get(&connection).map(|s| s.state.clone())
        else {
            return self.close(connection, "request before logon");
        };
        let used = self.requests_today.entry(user).or_insert(0);
        let (begin, end) = (request.begin_seq_num, request.end_seq_num);
        let status = if *used >= self.config.max_requests_per_day {
            retrans_status::EXCEEDS_DAILY_REQUESTS
        } else if !self.config.channels.contains(&request.channel_id) {
            retrans_status::UNKNOWN_CHANNEL
        } else if end < begin || end - begin >= self.config.max_per_request {
            retrans_status::EXCEEDS_RANGE
        } else if self.store.range(request.channel_id, begin, end).is_none() {
            retrans_status::NOT_AVAILABLE
        } else {
            retrans_status::ACCEPTED
        };
        *used = used.saturating_add(1);
        let response = RetransmissionResponse {
            channel_id: request.channel_id,
            retrans_status: status,
            begin_seq_num: begin,
            end_seq_num: end,
        };
        self.send(connection, &response.into(), 0, now);
        self.events.push_back(RtsServerEvent::Served {
            connection,
            channel: request.channel_id,
            begin,
            end,
            status,
        });
        if status == retrans_status::EXCEEDS_DAILY_REQUESTS {
            return self.close(connection, "daily request limit");
        }
        if status != retrans_status::ACCEPTED {
            return;
        }
        let packets = self.retransmission_packets(request.channel_id, begin, end, now);
        if let Some(session) = self.sessions.get_mut(&connection) {
            session.out.extend(packets);
        }
    }

    fn retransmission_packets(
        &self,
        channel: u16,
        begin: u32,
        end: u32,
        now: Timestamp,
    ) -> Vec<Vec<u8>> {
        let mut packets = Vec::new();
        let mut builder = PacketBuilder::new(OMD_MAX_PAYLOAD);
        for (seq, bytes) in self.store.range(channel, begin, end).unwrap_or_default() {
            if !builder.push_raw(seq, bytes) {
                packets.push(builder.finish(now));
                let accepted = builder.push_raw(seq, bytes);
                debug_assert!(accepted, "Invariant: a published message fits a packet");
            }
        }
        if !builder.is_empty() {
            packets.push(builder.finish(now));
        }
        packets
    }

    fn send(&mut self, connection: ConnectionId, msg: &Message, seq: u32, now: Timestamp) {
        if let Some(session) = self.sessions.get_mut(&connection) {
            let mut builder = PacketBuilder::new(OMD_MAX_PAYLOAD);
            builder.push_raw(seq, &msg.to_bytes());
            session.out.push_back(builder.finish(now));
        }
    }

    fn close(&mut self, connection: ConnectionId, reason: &'static str) {
        if let Some(session) = self.sessions.get_mut(&connection) {
            if !matches!(session.state, ServerState::Closing) {
                session.state = ServerState::Closing;
                self.events
                    .push_back(RtsServerEvent::Closing { connection, reason });
            }
        }
    }

    /// Logon timeouts, heartbeats, heartbeat-echo timeouts.
    pub fn handle_timeout(&mut self, now: Timestamp) {
        let mut to_close = Vec::new();
        for (&connection, session) in self.sessions.iter_mut() {
            match &mut session.state {
                ServerState::ExpectLogon { deadline } if now >= *deadline => {
                    to_close.push((connection, "logon timeout"));
                }
                ServerState::LoggedOn {
                    next_heartbeat,
                    awaiting_echo,
                    ..
                } => {
                    if awaiting_echo.as_ref().is_some_and(|(_, d)| now >= *d) {
                        to_close.push((connection, "heartbeat not echoed"));
                    } else if now >= *next_heartbeat {
                        let hb = heartbeat(0, now);
                        *awaiting_echo = Some((
                            hb.clone(),
                            now.plus_nanos(self.config.heartbeat_response_timeout_ns),
                        ));
                        *next_heartbeat = now.plus_nanos(self.config.heartbeat_interval_ns);
                        session.out.push_back(hb);
                    }
                }
                _ => {}
            }
        }
        for (connection, reason) in to_close {
            self.close(connection, reason);
        }
    }

    pub fn poll_timeout(&self) -> Option<Timestamp> {
        self.sessions
            .values()
            .filter_map(|s| match &s.state {
                ServerState::ExpectLogon { deadline } => Some(*deadline),
                ServerState::LoggedOn {
                    next_heartbeat,
                    awaiting_echo,
                    ..
                } => Some(awaiting_echo.as_ref().map_or(*next_heartbeat, |(_, d)| *d)),
                ServerState::Closing => None,
            })
            .min()
    }

    /// The next bytes for `connection` (and only for it).
    pub fn poll_transmit(&mut self, connection: ConnectionId) -> Option<Vec<u8>> {
        self.sessions.get_mut(&connection)?.out.pop_front()
    }

    /// A connection whose output is sent and which must now be closed; it is forgotten.
    pub fn poll_close(&mut self) -> Option<ConnectionId> {
        let connection = self
            .sessions
            .iter()
            .find(|(_, s)| matches!(s.state, ServerState::Closing) && s.out.is_empty())
            .map(|(c, _)| *c)?;
        self.sessions.remove(&connection);
        Some(connection)
    }

    pub fn poll_event(&mut self) -> Option<RtsServerEvent> {
        self.events.pop_front()
    }
}

// ---------------------------------------------------------------------------------------------
// Client.

/// Client timers; defaults: 5 s for the logon response, 5 s of silence during a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RtsClientConfig {
    pub username: String,
    pub logon_timeout_ns: u64,
    pub request_timeout_ns: u64,
}

impl RtsClientConfig {
    pub fn new(username: &str) -> Self {
        RtsClientConfig {
            username: username.to_string(),
            logon_timeout_ns: 5 * NANOS_PER_SEC,
            request_timeout_ns: 5 * NANOS_PER_SEC,
        }
    }
}

/// What the client reports to its owner.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RtsClientEvent {
    LoggedOn,
    /// Logon refused (status 5 or 100) or not answered; the connection should be closed.
    LogonFailed {
        status: Option<u8>,
    },
    /// The server answered a request; on a non-zero status no messages follow.
    Response {
        channel: u16,
        begin: u32,
        end: u32,
        status: u8,
    },
    /// A retransmitted message with its original sequence number.
    Message {
        channel: u16,
        seq_num: u32,
        bytes: Vec<u8>,
    },
    /// Every message of the accepted request has arrived.
    Complete {
        channel: u16,
        begin: u32,
        end: u32,
    },
    /// The request stalled, or the stream was corrupt; the connection should be closed.
    Failed {
        channel: Option<u16>,
        reason: String,
    },
}

/// API misuse by the client's owner.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RtsClientError {
    #[error("the retransmission client is not logged on")]
    NotLoggedOn,
    #[error("range {begin}..={end} is empty or longer than {max} sequence numbers")]
    BadRange { begin: u32, end: u32, max: u32 },
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum ClientState {
    Disconnected,
    AwaitLogonResponse {
        deadline: Timestamp,
    },
    Ready,
    AwaitResponse {
        request: RetransmissionRequest,
        deadline: Timestamp,
    },
    Receiving {
        request: RetransmissionRequest,
        next_seq: u32,
        deadline: Timestamp,
    },
    Failed,
}

/// The retransmission client: one TCP session, requests served one at a time.
#[derive(Debug, Clone)]
pub struct RtsClient {
    config: RtsClientConfig,
    state: ClientState,
    deframer: StreamDeframer,
    queue: VecDeque<RetransmissionRequest>,
    out: VecDeque<Vec<u8>>,
    events: VecDeque<RtsClientEvent>,
}

impl RtsClient {
    pub fn new(config: RtsClientConfig) -> RtsClient {
        RtsClient {
            config,
            state: ClientState::Disconnected,
            deframer: StreamDeframer::default(),
            queue: VecDeque::new(),
            out: VecDeque::new(),
            events: VecDeque::new(),
        }
    }

    /// The runtime connected TCP: send the Logon.
    pub fn connected(&mut self, now: Timestamp) {
        self.deframer = StreamDeframer::default();
        self.out.clear();
        let logon = Logon {
            username: NulStr::new(&self.config.username),
        };
        self.out.push_back(tcp_packet(&logon.into()));
        self.state = ClientState::AwaitLogonResponse {
            deadline: now.plus_nanos(self.config.logon_timeout_ns),
        };
    }

    /// The connection is gone; an outstanding request fails.
    pub fn handle_closed(&mut self) {
        if let Some(request) = self.outstanding() {
            self.events.push_back(RtsClientEvent::Failed {
                channel: Some(request.channel_id),
                reason: "connection closed".into(),
            });
        }
        self.state = ClientState::Disconnected;
        self.queue.clear();
        self.out.clear();
    }

    pub fn is_logged_on(&self) -> bool {
        matches!(
            self.state,
            ClientState::Ready | ClientState::AwaitResponse { .. } | ClientState::Receiving { .. }
        )
    }

    /// True if no request is queued or outstanding.
    pub fn is_idle(&self) -> bool {
        self.queue.is_empty() && matches!(self.state, ClientState::Ready)
    }

    fn outstanding(&self) -> Option<RetransmissionRequest> {
        match &self.state {
            ClientState::AwaitResponse { request, .. } | ClientState::Receiving { request, .. } => {
                Some(request.clone())
            }
            _ => None,
        }
    }

    /// Queue a request for `begin..=end` on `channel`.
    pub fn request(
        &mut self,
        channel: u16,
        begin: u32,
        end: u32,
        now: Timestamp,
    ) -> Result<(), RtsClientError> {
        if !self.is_logged_on() {
            return Err(RtsClientError::NotLoggedOn);
        }
        if end < begin || end - begin >= OMD_RTS_MAX_PER_REQUEST {
            return Err(RtsClientError::BadRange {
                begin,
                end,
                max: OMD_RTS_MAX_PER_REQUEST,
            });
        }
        self.queue.push_back(RetransmissionRequest {
            channel_id: channel,
            begin_seq_num: begin,
            end_seq_num: end,
        });
        self.send_next(now);
        Ok(())
    }

    fn send_next(&mut self, now: Timestamp) {
        if self.state != ClientState::Ready {
            return;
        }
        if let Some(request) = self.queue.pop_front() {
            self.out.push_back(tcp_packet(&request.clone().into()));
            self.state = ClientState::AwaitResponse {
                request,
                deadline: now.plus_nanos(self.config.request_timeout_ns),
            };
        }
    }

    /// Bytes from the server.
    pub fn handle_data(&mut self, bytes: &[u8], now: Timestamp) {
        self.deframer.push(bytes);
        loop {
            if self.state == ClientState::Failed {
                return;
            }
            match self.deframer.next_packet() {
                Ok(Some(packet)) => self.handle_packet(&packet, now),
                Ok(None) => return,
                Err(e) => return self.fail(format!("corrupt stream: {e}")),
            }
        }
    }

    fn handle_packet(&mut self, bytes: &[u8], now: Timestamp) {
        let packet = match Packet::parse(bytes) {
            Ok(p) => p,
            Err(e) => return self.fail(format!("malformed packet: {e}")),
        };
        if packet.header.is_heartbeat() {
            // Echo an exact copy (§1.3).
            self.out.push_back(bytes.to_vec());
            return;
        }
        for (seq, raw) in packet.messages() {
            self.handle_message(seq, raw, now);
        }
    }

    fn handle_message(&mut self, seq: u32, raw: &[u8], now: Timestamp) {
        match (&self.state, Message::decode(raw)) {
            (ClientState::AwaitLogonResponse { .. }, Ok(Message::LogonResponse(r))) => {
                if r.session_status == session_status::ACTIVE {
                    self.state = ClientState::Ready;
                    self.events.push_back(RtsClientEvent::LoggedOn);
                    self.send_next(now);
                } else {
                    self.state = ClientState::Failed;
                    self.events.push_back(RtsClientEvent::LogonFailed {
                        status: Some(r.session_status),
                    });
                }
            }
            (
                ClientState::AwaitResponse { request, .. },
                Ok(Message::RetransmissionResponse(r)),
            ) => {
                let request = request.clone();
                self.events.push_back(RtsClientEvent::Response {
                    channel: r.channel_id,
                    begin: r.begin_seq_num,
                    end: r.end_seq_num,
                    status: r.retrans_status,
                });
                if r.retrans_status == retrans_status::ACCEPTED {
                    self.state = ClientState::Receiving {
                        next_seq: request.begin_seq_num,
                        request,
                        deadline: now.plus_nanos(self.config.request_timeout_ns),
                    };
                } else if r.retrans_status == retrans_status::EXCEEDS_DAILY_REQUESTS {
                    self.state = ClientState::Failed;
                } else {
                    self.state = ClientState::Ready;
                    self.send_next(now);
                }
            }
            (
                ClientState::Receiving {
                    request, next_seq, ..
                },
                _,
            ) if seq == *next_seq => {
                let request = request.clone();
                self.events.push_back(RtsClientEvent::Message {
                    channel: request.channel_id,
                    seq_num: seq,
                    bytes: raw.to_vec(),
                });
                if seq >= request.end_seq_num {
                    self.events.push_back(RtsClientEvent::Complete {
                        channel: request.channel_id,
                        begin: request.begin_seq_num,
                        end: request.end_seq_num,
                    });
                    self.state = ClientState::Ready;
                    self.send_next(now);
                } else {
                    self.state = ClientState::Receiving {
                        request,
                        next_seq: seq + 1,
                        deadline: now.plus_nanos(self.config.request_timeout_ns),
                    };
                }
            }
            _ => self.fail(format!(
                "unexpected message {:?} (seq {seq})",
                raw.get(2..4)
            )),
        }
    }

    fn fail(&mut self, reason: String) {
        let channel = self.outstanding().map(|r| r.channel_id);
        self.state = ClientState::Failed;
        self.events
            .push_back(RtsClientEvent::Failed { channel, reason });
    }

    pub fn handle_timeout(&mut self, now: Timestamp) {
        match &self.state {
            ClientState::AwaitLogonResponse { deadline } if now >= *deadline => {
                self.state = ClientState::Failed;
                self.events
                    .push_back(RtsClientEvent::LogonFailed { status: None });
            }
            ClientState::AwaitResponse { deadline, .. }
            | ClientState::Receiving { deadline, .. }
                if now >= *deadline =>
            {
                self.fail("request timed out".into());
            }
            _ => {}
        }
    }

    pub fn poll_timeout(&self) -> Option<Timestamp> {
        match &self.state {
            ClientState::AwaitLogonResponse { deadline }
            | ClientState::AwaitResponse { deadline, .. }
            | ClientState::Receiving { deadline, .. } => Some(*deadline),
            _ => None,
        }
    }

    /// True when there is no session: connect (to the next RTS endpoint) and call `connected`.
    pub fn wants_connection(&self) -> bool {
        self.state == ClientState::Disconnected
    }

    /// True once the client has given up on this connection: close it and reconnect (to
    /// another RTS endpoint).
    pub fn wants_disconnect(&self) -> bool {
        self.state == ClientState::Failed
    }

    pub fn poll_transmit(&mut self) -> Option<Vec<u8>> {
        self.out.pop_front()
    }

    pub fn poll_event(&mut self) -> Option<RtsClientEvent> {
        self.events.pop_front()
    }
}

/// A TCP request packet: PktSize, MsgCount 1, SeqNum 0, SendTime 0 (§3.2).
fn tcp_packet(msg: &Message) -> Vec<u8> {
    let bytes = msg.to_bytes();
    let mut out = vec![0u8; PacketHeader::LEN];
    PacketHeader {
        pkt_size: (PacketHeader::LEN + bytes.len()) as u16,
        msg_count: 1,
        filler: b' ',
        seq_num: 0,
        send_time: 0,
    }
    .encode(&mut out);
    out.extend_from_slice(&bytes);
    out
}

/// Decode failures on the RTS link are reported as [`RtsClientEvent::Failed`]; this alias
/// documents the error type carried in the reason.
pub type RtsDecodeError = DecodeError;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::NominalPrice;
    use crate::publisher::Line;

    const T0: Timestamp = Timestamp(1_700_000_000_000_000_000);

    fn server() -> RtsServer {
        let mut s = RtsServer::new(RtsServerConfig::new(
            ["alice".to_string(), "bob".to_string()],
            [21u16],
        ));
        for seq in 1..=100u32 {
            let msg = Message::from(NominalPrice {
                security_code: seq,
                nominal_price: 1,
            });
            s.store_mut().record(21, seq, msg.to_bytes());
        }
        s
    }

    /// Shuttle bytes both ways until neither side has anything to send.
    fn pump(server: &mut RtsServer, conn: ConnectionId, client: &mut RtsClient, now: Timestamp) {
        loop {
            let mut moved = false;
            while let Some(bytes) = client.poll_transmit() {
                server.handle_data(conn, &bytes, now);
                moved = true;
            }
            while let Some(bytes) = server.poll_transmit(conn) {
                client.handle_data(&bytes, now);
                moved = true;
            }
            if !moved {
                return;
            }
        }
    }

    fn events(client: &mut RtsClient) -> Vec<RtsClientEvent> {
        std::iter::from_fn(|| client.poll_event()).collect()
    }

    fn logged_on(server: &mut RtsServer, conn: ConnectionId, user: &str) -> RtsClient {
        let mut client = RtsClient::new(RtsClientConfig::new(user));
        server.accept(conn, T0);
        client.connected(T0);
        pump(server, conn, &mut client, T0);
        assert_eq!(events(&mut client), vec![RtsClientEvent::LoggedOn]);
        client
    }

    #[test]
    fn logon_request_and_original_sequence_numbers() {
        let mut s = server();
        let mut c = logged_on(&mut s, 1, "alice");
        c.request(21, 40, 45, T0).unwrap();
        pump(&mut s, 1, &mut c, T0);
        let ev = events(&mut c);
        assert_eq!(
            ev[0],
            RtsClientEvent::Response {
                channel: 21,
                begin: 40,
                end: 45,
                status: 0
            }
        );
        let seqs: Vec<u32> = ev
            .iter()
            .filter_map(|e| match e {
                RtsClientEvent::Message { seq_num, .. } => Some(*seq_num),
                _ => None,
            })
            .collect();
        assert_eq!(seqs, (40..=45).collect::<Vec<_>>());
        assert!(matches!(ev.last(), Some(RtsClientEvent::Complete { .. })));
        assert!(c.is_idle());
    }

    #[test]
    fn refusals_carry_the_documented_status_codes() {
        let mut config = RtsServerConfig::new(["alice".to_string()], [21u16]);
        config.max_requests_per_day = 4;
        config.max_per_request = 10;
        let mut s = RtsServer::new(config);
        for seq in 1..=20u32 {
            s.store_mut()
                .record(21, seq, NominalPrice::default().to_bytes_for_test());
        }
        let mut c = logged_on(&mut s, 1, "alice");
        let status_of = |c: &mut RtsClient, s: &mut RtsServer, ch, b, e| {
            c.request(ch, b, e, T0).unwrap();
            pump(s, 1, c, T0);
            events(c)
                .into_iter()
                .find_map(|e| match e {
                    RtsClientEvent::Response { status, .. } => Some(status),
                    _ => None,
                })
                .unwrap()
        };
        assert_eq!(
            status_of(&mut c, &mut s, 22, 1, 2),
            retrans_status::UNKNOWN_CHANNEL
        );
        assert_eq!(
            status_of(&mut c, &mut s, 21, 1, 11),
            retrans_status::EXCEEDS_RANGE
        );
        assert_eq!(
            status_of(&mut c, &mut s, 21, 15, 21),
            retrans_status::NOT_AVAILABLE
        );
        assert_eq!(
            status_of(&mut c, &mut s, 21, 1, 2),
            retrans_status::ACCEPTED
        );
        assert_eq!(
            status_of(&mut c, &mut s, 21, 1, 2),
            retrans_status::EXCEEDS_DAILY_REQUESTS
        );
        assert!(c.wants_disconnect());
        assert_eq!(s.poll_close(), Some(1), "disconnected after the response");
    }

    #[test]
    fn bad_user_and_second_session_are_rejected() {
        let mut s = server();
        let _alice = logged_on(&mut s, 1, "alice");
        for (conn, user, status) in [(2, "mallory", 5u8), (3, "alice", 100u8)] {
            let mut c = RtsClient::new(RtsClientConfig::new(user));
            s.accept(conn, T0);
            c.connected(T0);
            pump(&mut s, conn, &mut c, T0);
            assert_eq!(
                events(&mut c),
                vec![RtsClientEvent::LogonFailed {
                    status: Some(status)
                }]
            );
            assert_eq!(s.poll_close(), Some(conn));
        }
    }

    #[test]
    fn logon_timeout_and_unechoed_heartbeat_disconnect() {
        let mut s = server();
        s.accept(9, T0);
        s.handle_timeout(T0.plus_nanos(5 * NANOS_PER_SEC));
        assert_eq!(s.poll_close(), Some(9));

        let mut c = logged_on(&mut s, 1, "alice");
        let t = T0.plus_nanos(30 * NANOS_PER_SEC);
        s.handle_timeout(t);
        pump(&mut s, 1, &mut c, t); // the client echoes
        s.handle_timeout(t.plus_nanos(6 * NANOS_PER_SEC));
        assert_eq!(s.poll_close(), None, "echoed heartbeat keeps the session");

        let t2 = t.plus_nanos(30 * NANOS_PER_SEC);
        s.handle_timeout(t2);
        let _ = s.poll_transmit(1); // lost: never reaches the client
        s.handle_timeout(t2.plus_nanos(5 * NANOS_PER_SEC));
        assert_eq!(s.poll_close(), Some(1));
    }

    #[test]
    fn a_session_never_receives_another_users_data() {
        let mut s = server();
        let mut alice = logged_on(&mut s, 1, "alice");
        let mut bob = logged_on(&mut s, 2, "bob");
        alice.request(21, 1, 50, T0).unwrap();
        while let Some(bytes) = alice.poll_transmit() {
            s.handle_data(1, &bytes, T0);
        }
        assert_eq!(s.poll_transmit(2), None, "bob's connection gets nothing");
        pump(&mut s, 2, &mut bob, T0);
        assert!(events(&mut bob).is_empty());
        pump(&mut s, 1, &mut alice, T0);
        assert_eq!(
            events(&mut alice)
                .iter()
                .filter(|e| matches!(e, RtsClientEvent::Message { .. }))
                .count(),
            50
        );
    }

    #[test]
    fn store_keeps_only_the_last_n() {
        let mut store = RetransmissionStore::new(10);
        for seq in 1..=25 {
            store.record(1, seq, vec![seq as u8]);
        }
        assert!(store.range(1, 15, 25).is_none());
        assert_eq!(store.range(1, 16, 25).unwrap().len(), 10);
        store.reset(1);
        assert!(store.range(1, 16, 25).is_none());
    }

    #[test]
    fn copies_reuse_forgotten_buffers_and_keep_each_channel_apart() {
        let mut store = RetransmissionStore::new(3);
        for seq in 1..=7u32 {
            let bytes = vec![seq as u8; seq as usize];
            store.record_copy(1, seq, &bytes);
            store.record_copy(2, seq, &[0xee, seq as u8]);
        }
        let kept = store.range(1, 5, 7).unwrap();
        assert_eq!(
            kept,
            vec![(5, &[5u8; 5][..]), (6, &[6u8; 6][..]), (7, &[7u8; 7][..])]
        );
        assert!(store.range(1, 4, 7).is_none());
        assert_eq!(store.range(2, 7, 7).unwrap(), vec![(7, &[0xee, 7][..])]);
        // A jump restarts the channel.
        store.record_copy(2, 20, &[1]);
        assert!(store.range(2, 7, 7).is_none());
        assert_eq!(store.range(2, 20, 20).unwrap().len(), 1);
    }

    #[test]
    fn the_ring_serves_every_message_of_its_window_through_many_compactions() {
        // Messages of varying sizes, many times the ring's compaction threshold.
        let bytes_of = |seq: u32| vec![(seq % 251) as u8; 4 + (seq as usize * 7) % 300];
        let mut store = RetransmissionStore::new(1_000);
        for seq in 1..=20_000u32 {
            store.record_copy(9, seq, &bytes_of(seq));
            if seq % 997 == 0 || seq == 20_000 {
                let first = seq.saturating_sub(999).max(1);
                assert_eq!(store.retained(9), (seq - first + 1) as usize);
                let kept = store.range(9, first, seq).unwrap();
                assert_eq!(kept.len(), (seq - first + 1) as usize);
                for (s, b) in kept {
                    assert_eq!(b, &bytes_of(s)[..], "message {s} after {seq}");
                }
                if first > 1 {
                    assert!(store.range(9, first - 1, seq).is_none());
                }
                assert!(store.range(9, first, seq + 1).is_none());
            }
        }
        // The blocks hold the retained bytes plus at most one block of forgotten ones.
        let kept = store.kept(9).unwrap();
        let live: usize = (19_001..=20_000).map(|s| bytes_of(s).len()).sum();
        let held: usize = kept.blocks.iter().map(Vec::len).sum();
        assert!(held <= live + Kept::BLOCK, "{held} bytes held for {live}");
    }

    #[test]
    fn packets_are_served_message_by_message_exactly_as_copies_are() {
        // The same messages kept two ways: Line A's packets (as the feed keeps them) and one
        // copy per message. Every window and every request must be answered the same.
        let config = crate::publisher::PublisherConfig::new(5);
        let t = T0;
        let mut publisher = crate::publisher::ChannelPublisher::new(config, t);
        publisher.sequence_reset(t);
        let capacity = 1_000u32;
        let mut by_packet = RetransmissionStore::new(capacity);
        let mut by_message = RetransmissionStore::new(capacity);
        // A stale message of the channel before the reset is forgotten by the reset packet.
        by_packet.record_copy(5, 77, &[1, 2, 3, 4]);
        let mut rng = 0x2545_f491_4f6c_dd1du64;
        let mut next = || {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            rng
        };
        let mut last = 0u32;
        for i in 0..6_000u32 {
            let msg: Message = if i % 5 == 0 {
                crate::message::LiquidityProvider {
                    security_code: i,
                    lp_broker_numbers: vec![7; (next() % 30) as usize],
                }
                .into()
            } else {
                NominalPrice {
                    security_code: i,
                    nominal_price: next() as i32,
                }
                .into()
            };
            last = publisher
                .publish_with(&msg, t, |seq, bytes| by_message.record_copy(5, seq, bytes))
                .unwrap();
            if next() % 20 == 0 {
                publisher.flush(t);
            }
            while let Some(d) = publisher.poll_transmit() {
                if d.line == Line::A {
                    assert!(by_packet.record_packet(5, &d.bytes));
                }
            }
            if i % 613 == 0 || i == 5_999 {
                publisher.flush(t);
                while let Some(d) = publisher.poll_transmit() {
                    if d.line == Line::A {
                        assert!(by_packet.record_packet(5, &d.bytes));
                    }
                }
                assert_eq!(by_packet.retained(5), by_message.retained(5));
                assert_eq!(by_packet.retained(5), last.min(capacity) as usize);
                let first = last.saturating_sub(capacity - 1).max(1);
                for (b, e) in [
                    (first, last),
                    (first.saturating_sub(1), last),
                    (first, last + 1),
                    (last, last),
                    (first, first),
                    (first + 3, first + 40),
                    (last.saturating_sub(17), last.saturating_sub(2)),
                    (e_of(first, next()), last),
                ] {
                    assert_eq!(
                        by_packet.range(5, b, e),
                        by_message.range(5, b, e),
                        "{b}..={e} at {last}"
                    );
                }
            }
        }
        assert!(last >= 6_000);
        // Heartbeats keep nothing; bytes that are no packet are refused.
        assert!(by_packet.record_packet(5, &heartbeat(last, T0)));
        assert_eq!(by_packet.retained(5), capacity as usize);
        assert!(!by_packet.record_packet(5, &[16, 0, 1]));
        assert!(!by_packet.record_packet(5, &[40, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]));
        assert_eq!(
            by_packet.range(5, last, last),
            by_message.range(5, last, last)
        );
    }

    /// A sequence number at or after `first`, spread by `r`.
    fn e_of(first: u32, r: u64) -> u32 {
        first + (r % 900) as u32
    }

    #[test]
    fn a_server_on_packets_replies_as_on_copies() {
        // Retransmission replies (response, then the messages in packets) are the same bytes
        // whether the store kept packets or message copies.
        let mut publisher =
            crate::publisher::ChannelPublisher::new(crate::publisher::PublisherConfig::new(21), T0);
        publisher.sequence_reset(T0);
        let mut config = RtsServerConfig::new(["alice".to_string()], [21u16]);
        config.retained_per_channel = 300;
        let mut on_packets = RtsServer::new(config.clone());
        let mut on_copies = RtsServer::new(config);
        for i in 0..1_000u32 {
            let msg = Message::from(NominalPrice {
                security_code: i,
                nominal_price: i as i32,
            });
            publisher
                .publish_with(&msg, T0, |seq, b| {
                    on_copies.store_mut().record_copy(21, seq, b)
                })
                .unwrap();
            if i % 50 == 49 {
                publisher.flush(T0);
            }
            while let Some(d) = publisher.poll_transmit() {
                if d.line == Line::A {
                    on_packets.store_mut().record_packet(21, &d.bytes);
                }
            }
        }
        let replies = |s: &mut RtsServer| {
            let mut c = logged_on(s, 1, "alice");
            let mut out = Vec::new();
            for (b, e) in [
                (700, 1_000),
                (701, 1_000),
                (900, 950),
                (650, 700),
                (1_000, 1_000),
            ] {
                c.request(21, b, e, T0).unwrap();
                while let Some(bytes) = c.poll_transmit() {
                    s.handle_data(1, &bytes, T0);
                }
                while let Some(bytes) = s.poll_transmit(1) {
                    c.handle_data(&bytes, T0);
                    out.push(bytes);
                }
                while c.poll_event().is_some() {}
            }
            out
        };
        let a = replies(&mut on_packets);
        assert_eq!(a, replies(&mut on_copies));
        assert!(a.len() > 8);
    }

    impl NominalPrice {
        fn to_bytes_for_test(&self) -> Vec<u8> {
            Message::from(self.clone()).to_bytes()
        }
    }
}
