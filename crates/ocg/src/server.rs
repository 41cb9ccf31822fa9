//! The exchange side of OCG-C: one [`OcgServer`] per gateway handles every connection and every
//! Comp ID. It is sans-IO: the runtime reports accepted connections, received bytes, closed
//! connections and the time; the server answers with [`ServerAction`]s.
//!
//! Each Comp ID's [`DurableSession`] (sequence numbers, the business messages a replay may need,
//! password and lock state, the Cancel on Disconnect deadline) is a plain serialisable struct
//! kept apart from the connection, so a backup site can take it over and the participant can
//! continue the same session there (reference §3.3).
//!
//! Call order, as in quinn: `handle_*`, then drain `poll_action`, then arm a timer for
//! `poll_timeout` and call `handle_timeout` when it fires. Time must not go backwards.

use std::collections::{BTreeMap, VecDeque};
use std::net::IpAddr;

use rsa::RsaPrivateKey;
use serde::{Deserialize, Serialize};
use twinsite_core::time::NANOS_PER_SEC;
use twinsite_core::{CompId, Timestamp};

use crate::cod::{CancelOnDisconnect, DownCause};
use crate::enums::*;
use crate::error::{DecodeError, EncodeError};
use crate::frame::{self, FrameDecoder, Header, RawFrame};
use crate::messages::*;
use crate::password::{self, Credentials};
use crate::session::{
    InboundSequencer, Liveness, LivenessEvent, OutboundLog, SeqVerdict, StoredMessage, TimerConfig,
};
use crate::throttle::{Throttle, ThrottleConfig};
use crate::wire::{FixedStr, VarStr};

/// The runtime's handle for one TCP connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct ConnectionId(pub u64);

/// Server settings. Every timer is here so a drill can run faster than real time.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServerConfig {
    /// Comp ID written in the header of messages OCG-C sends (the reference says the header
    /// carries the sender's Comp ID; the exchange's own value is not documented).
    pub exchange_comp_id: FixedStr<12>,
    pub timers: TimerConfig,
    /// Time a new connection has to send its Logon.
    pub logon_timeout_ns: u64,
    /// Time the initiator of a Logout waits for the reply before closing.
    pub logout_reply_timeout_ns: u64,
    /// Allowed distance between the password's timestamp and the server clock.
    pub password_time_tolerance_ns: u64,
    /// Answer a bad password with a silent drop instead of Logout (Session Status 5); the
    /// reference contradicts itself here (§1.6).
    pub bad_password_silent: bool,
    pub max_logon_failures: u32,
    pub password_expiry_days: i64,
    /// Logon reply says "password due to expire" (status 2) within this many days of expiry.
    pub password_warning_days: i64,
    pub throttle: ThrottleConfig,
    /// Gross throttle violation: after this many rejected messages in one window the session is
    /// logged out and dropped (the reference allows it; the threshold is not documented).
    pub throttle_rejects_before_logout: Option<u32>,
    /// Replayed frames emitted per call; the rest follow on later calls (a replay in progress is
    /// what makes a second Resend Request fatal).
    pub replay_batch: usize,
    /// Business messages retained per Comp ID for replay.
    pub retained_outbound_max: usize,
    pub max_frame_len: usize,
    /// Test Message Indicator put in Logon replies, if any.
    pub test_message_indicator: Option<TestMessageIndicator>,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            exchange_comp_id: FixedStr::new("OCGC"),
            timers: TimerConfig::default(),
            logon_timeout_ns: 60 * NANOS_PER_SEC,
            logout_reply_timeout_ns: 60 * NANOS_PER_SEC,
            password_time_tolerance_ns: 120 * NANOS_PER_SEC,
            bad_password_silent: false,
            max_logon_failures: twinsite_core::limits::OCG_MAX_LOGON_FAILURES,
            password_expiry_days: twinsite_core::limits::OCG_PASSWORD_EXPIRY_DAYS as i64,
            password_warning_days: 7,
            throttle: ThrottleConfig::default(),
            throttle_rejects_before_logout: None,
            replay_batch: 1_000,
            retained_outbound_max: 1_000_000,
            max_frame_len: frame::MAX_FRAME_LEN,
            test_message_indicator: None,
        }
    }
}

/// A Comp ID's static profile.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ParticipantConfig {
    pub comp_id: CompId,
    /// Registered source IPs (at most 4).
    pub source_ips: Vec<IpAddr>,
    pub throttle_units: u32,
}

/// The part of a session that survives a connection and is replicated to the backup site.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DurableSession {
    pub comp_id: CompId,
    /// Next inbound sequence number expected from the participant.
    pub in_next: u32,
    /// Next outbound sequence number to assign.
    pub out_next: u32,
    pub outbound: OutboundLog,
    pub credentials: Credentials,
    /// Set by an exchange-side outage: business messages generated while the participant is
    /// disconnected carry PossResend = 1; cleared at the next logon.
    pub poss_resend_pending: bool,
    pub cancel_on_disconnect: CancelOnDisconnect,
}

impl DurableSession {
    /// Start of a trading day: both sequences at 1.
    pub fn new(comp_id: CompId, credentials: Credentials, cod_delay_ns: Option<u64>) -> Self {
        DurableSession {
            comp_id,
            in_next: 1,
            out_next: 1,
            outbound: OutboundLog::default(),
            credentials,
            poss_resend_pending: false,
            cancel_on_disconnect: CancelOnDisconnect {
                delay_ns: cod_delay_ns,
                deadline: None,
            },
        }
    }

    /// Messages from `from_seq` on were generated while the participant was disconnected by an
    /// exchange-side outage: their replay carries PossResend = 1.
    pub fn mark_poss_resend(&mut self, from_seq: u32) {
        self.outbound.mark_poss_resend(from_seq);
    }

    /// Record an exchange-side outage (site failover): messages produced until the next logon
    /// carry PossResend = 1. The outage itself starts no Cancel on Disconnect; a timer already
    /// started by an earlier client-side drop keeps running (its trigger was the client).
    pub fn begin_exchange_outage(&mut self) {
        self.poss_resend_pending = true;
    }

    /// The manual "initialise sequence" agreed with the participant after a catastrophe
    /// (reference §3.3). Earlier messages become unavailable for replay.
    pub fn initialise_sequences(&mut self, in_next: u32, out_next: u32) {
        self.in_next = in_next;
        self.out_next = out_next;
        self.outbound = OutboundLog::starting_after(out_next.saturating_sub(1));
    }
}

/// Why the server closed a connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DisconnectReason {
    BadFraming(DecodeError),
    MessageBeforeLogon,
    UnknownCompId,
    UnregisteredSourceIp,
    MalformedLogon,
    /// A second connection for a Comp ID with a live session: both are dropped.
    DuplicateLogon,
    /// The first logon of the day must carry sequence number 1.
    SequenceAboveOneAtStartOfDay,
    SequenceTooLow {
        received: u32,
        expected: u32,
    },
    NextExpectedTooHigh {
        next_expected: u32,
        next_to_send: u32,
    },
    LogonRejected(SessionStatus),
    LogonTimeout,
    SecondResendRequest,
    ThrottleAbuse,
    HeartbeatTimeout,
    ClientLogout,
    LogoutTimeout,
    ExchangeLogout,
    ExchangeOutage,
}

/// The sequence numbers of an accepted Logon (what the participant presented, and the
/// exchange's next expected inbound and next outbound numbers before the Logon was taken), for
/// activity tracking after a failover.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogonSequences {
    /// The Logon's own sequence number.
    pub logon_seq: u32,
    /// The Logon's Next Expected Sequence Number (what the participant has received).
    pub next_expected: u32,
    pub exchange_in_next: u32,
    pub exchange_out_next: u32,
}

/// What the runtime must do.
// Deliver carries a whole message; boxing it would cost an allocation per order for nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServerAction {
    /// Write these bytes to the connection.
    Send {
        connection: ConnectionId,
        bytes: Vec<u8>,
    },
    /// Close the connection. `silent`: no Logout was sent (bad CRC, unknown Comp ID, ...).
    Disconnect {
        connection: ConnectionId,
        silent: bool,
        reason: DisconnectReason,
    },
    /// Logon accepted.
    SessionUp {
        comp_id: CompId,
        connection: ConnectionId,
        /// The sequence numbers the Logon presented and the exchange's own at that moment.
        sequences: LogonSequences,
    },
    SessionDown {
        comp_id: CompId,
        connection: ConnectionId,
        cause: DownCause,
    },
    /// A business message for the trading engine, in sequence.
    Deliver {
        comp_id: CompId,
        seq: u32,
        poss_resend: bool,
        message: Message,
    },
    /// The Cancel on Disconnect delay expired: cancel the Comp ID's orders and quotes.
    CancelOnDisconnect { comp_id: CompId },
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ServerError {
    #[error("unknown comp id {0}")]
    UnknownCompId(CompId),
    #[error(transparent)]
    Encode(#[from] EncodeError),
    #[error("{0} is not a message OCG-C sends to a participant")]
    NotAnExchangeMessage(&'static str),
}

#[derive(Debug)]
struct Participant {
    config: ParticipantConfig,
    durable: DurableSession,
    throttle: Throttle,
    live: Option<ConnectionId>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    AwaitLogon {
        deadline: Timestamp,
    },
    Active,
    LoggingOut {
        deadline: Timestamp,
        cause: DownCause,
    },
}

#[derive(Debug)]
struct Connection {
    source_ip: IpAddr,
    decoder: FrameDecoder,
    phase: Phase,
    comp_id: Option<CompId>,
    liveness: Option<Liveness>,
    inbound: InboundSequencer,
    /// Replay in progress: next number to send and the last one.
    replay: Option<(u32, u32)>,
    /// Next outbound number to transmit live; numbers from here to `out_next` are stored
    /// business messages waiting behind a replay.
    live_cursor: u32,
    /// Administrative messages waiting for a replay to finish (they take their number when sent).
    pending_admin: VecDeque<Message>,
}

/// Outcome of a logon's checks, before anything is sent.
enum LogonVerdict {
    Silent(DisconnectReason),
    Logout {
        status: Option<SessionStatus>,
        text: &'static str,
        reason: DisconnectReason,
    },
    Accept {
        status: SessionStatus,
        text: Option<String>,
    },
}

/// The sans-IO OCG-C server.
pub struct OcgServer {
    config: ServerConfig,
    keys: Vec<RsaPrivateKey>,
    participants: BTreeMap<CompId, Participant>,
    connections: BTreeMap<ConnectionId, Connection>,
    actions: VecDeque<ServerAction>,
    logons_allowed: bool,
    last_now: Timestamp,
}

impl OcgServer {
    /// `keys`: the RSA private keys whose public halves participants encrypt with; two during a
    /// rotation.
    pub fn new(config: ServerConfig, keys: Vec<RsaPrivateKey>) -> Self {
        assert!(
            (1..=2).contains(&keys.len()),
            "Condition failed: one or two logon keys"
        );
        assert!(
            config.replay_batch > 0,
            "Condition failed: replay batch is zero"
        );
        OcgServer {
            config,
            keys,
            participants: BTreeMap::new(),
            connections: BTreeMap::new(),
            actions: VecDeque::new(),
            logons_allowed: true,
            last_now: Timestamp(0),
        }
    }

    /// Register a Comp ID with its durable state (fresh for the day, or taken over from the
    /// other site).
    pub fn add_participant(&mut self, config: ParticipantConfig, mut durable: DurableSession) {
        // A state whose stored messages run past its next outbound number cannot come from this
        // server (numbers only grow): the participant may have seen those messages, so numbering
        // continues after them rather than reusing their numbers (and the outbound log's
        // ascending order holds).
        if let Some(last) = durable.outbound.iter().last().map(|m| m.seq) {
            durable.out_next = durable.out_next.max(last.saturating_add(1));
        }
        assert_eq!(
            config.comp_id, durable.comp_id,
            "Condition failed: state of another comp id"
        );
        assert!(config.source_ips.len() <= twinsite_core::limits::OCG_MAX_SOURCE_IPS);
        let throttle = Throttle::new(self.config.throttle, config.throttle_units);
        let comp_id = config.comp_id;
        self.participants.insert(
            comp_id,
            Participant {
                config,
                durable,
                throttle,
                live: None,
            },
        );
    }

    pub fn durable(&self, comp_id: &CompId) -> Option<&DurableSession> {
        self.participants.get(comp_id).map(|p| &p.durable)
    }

    /// Mutable access for operations (password reset, manual sequence initialisation).
    pub fn durable_mut(&mut self, comp_id: &CompId) -> Option<&mut DurableSession> {
        self.participants.get_mut(comp_id).map(|p| &mut p.durable)
    }

    /// Replace the logon keys (start or end of a rotation).
    pub fn set_keys(&mut self, keys: Vec<RsaPrivateKey>) {
        assert!(
            (1..=2).contains(&keys.len()),
            "Condition failed: one or two logon keys"
        );
        self.keys = keys;
    }

    /// Outside permitted hours logons get Session Status 7.
    pub fn set_logons_allowed(&mut self, allowed: bool) {
        self.logons_allowed = allowed;
    }

    /// The connection holding the Comp ID's live session.
    pub fn live_connection(&self, comp_id: &CompId) -> Option<ConnectionId> {
        self.participants.get(comp_id).and_then(|p| p.live)
    }

    pub fn poll_action(&mut self) -> Option<ServerAction> {
        self.actions.pop_front()
    }

    /// The earliest time `handle_timeout` has work to do.
    pub fn poll_timeout(&self) -> Option<Timestamp> {
        let conns = self.connections.values().filter_map(|c| {
            let phase = match c.phase {
                Phase::AwaitLogon { deadline } | Phase::LoggingOut { deadline, .. } => {
                    Some(deadline)
                }
                Phase::Active => None,
            };
            let replay = c.replay.map(|_| self.last_now);
            let live = c.liveness.as_ref().map(Liveness::next_deadline);
            [phase, replay, live].into_iter().flatten().min()
        });
        let cod = self
            .participants
            .values()
            .filter_map(|p| p.durable.cancel_on_disconnect.deadline);
        conns.chain(cod).min()
    }

    /// A TCP connection was accepted from `source_ip`.
    pub fn handle_accept(&mut self, connection: ConnectionId, source_ip: IpAddr, now: Timestamp) {
        self.tick(now);
        let conn = Connection {
            source_ip,
            decoder: FrameDecoder::new(self.config.max_frame_len),
            phase: Phase::AwaitLogon {
                deadline: now.plus_nanos(self.config.logon_timeout_ns),
            },
            comp_id: None,
            liveness: None,
            inbound: InboundSequencer::default(),
            replay: None,
            live_cursor: 0,
            pending_admin: VecDeque::new(),
        };
        let previous = self.connections.insert(connection, conn);
        assert!(
            previous.is_none(),
            "Condition failed: connection id reused while open"
        );
    }

    /// Bytes arrived on a connection.
    pub fn handle_bytes(&mut self, connection: ConnectionId, bytes: &[u8], now: Timestamp) {
        self.tick(now);
        let Some(conn) = self.connections.get_mut(&connection) else {
            return;
        };
        conn.decoder.feed(bytes);
        loop {
            let Some(conn) = self.connections.get_mut(&connection) else {
                return;
            };
            match conn.decoder.next_frame() {
                Ok(Some(frame)) => self.on_frame(connection, frame, now),
                Ok(None) => return,
                Err(e) => {
                    // Reference §1.3: a checksum failure drops the connection without Logout.
                    let cause = DownCause::ClientDropped;
                    self.close(
                        connection,
                        true,
                        DisconnectReason::BadFraming(e),
                        cause,
                        now,
                    );
                    return;
                }
            }
        }
    }

    /// The peer closed the connection (or it broke).
    pub fn handle_closed(&mut self, connection: ConnectionId, now: Timestamp) {
        self.tick(now);
        let Some(conn) = self.connections.remove(&connection) else {
            return;
        };
        let cause = match conn.phase {
            Phase::LoggingOut { cause, .. } => cause,
            _ => DownCause::ClientDropped,
        };
        self.session_down(connection, conn.comp_id, cause, now);
    }

    pub fn handle_timeout(&mut self, now: Timestamp) {
        self.tick(now);
        let ids: Vec<ConnectionId> = self.connections.keys().copied().collect();
        for id in ids {
            self.connection_timeout(id, now);
        }
        for p in self.participants.values_mut() {
            if p.live.is_none() && p.durable.cancel_on_disconnect.poll(now) {
                self.actions.push_back(ServerAction::CancelOnDisconnect {
                    comp_id: p.config.comp_id,
                });
            }
        }
    }

    /// Send a business message (Execution Report, reports, BMR, ...) to a Comp ID. It takes the
    /// next sequence number and is kept for replay; if the participant is not connected it is
    /// delivered by the next logon's replay. Returns its sequence number.
    pub fn send_business(
        &mut self,
        comp_id: &CompId,
        msg: Message,
        now: Timestamp,
    ) -> Result<u32, ServerError> {
        self.tick(now);
        if msg.is_admin() || matches!(msg.msg_type(), 7 | 8) {
            return Err(ServerError::NotAnExchangeMessage(msg.name()));
        }
        let part = self
            .participants
            .get_mut(comp_id)
            .ok_or(ServerError::UnknownCompId(*comp_id))?;
        let conn = part
            .live
            .and_then(|id| self.connections.get_mut(&id).map(|c| (id, c)));
        let seq = store_business(part, conn.is_some(), &self.config, &msg)?;
        if let Some((id, conn)) = conn {
            pump(id, conn, part, &self.config, &mut self.actions, now);
        }
        Ok(seq)
    }

    /// Exchange-initiated Logout of a Comp ID's live session (service shutdown); the connection
    /// closes when the participant answers or after the logout timeout.
    pub fn logout(&mut self, comp_id: &CompId, text: &str, now: Timestamp) {
        self.tick(now);
        let Some(id) = self.live_connection(comp_id) else {
            return;
        };
        let msg = logout_msg(Some(SessionStatus::LogoutComplete), text);
        self.send_admin(id, msg, now);
        if let Some(conn) = self.connections.get_mut(&id) {
            let deadline = now.plus_nanos(self.config.logout_reply_timeout_ns);
            conn.phase = Phase::LoggingOut {
                deadline,
                cause: DownCause::ExchangeLogout,
            };
        }
    }

    /// Service shutdown: every live session is logged out (reference §1.7).
    pub fn shutdown(&mut self, now: Timestamp) {
        let live: Vec<CompId> = self
            .participants
            .values()
            .filter(|p| p.live.is_some())
            .map(|p| p.config.comp_id)
            .collect();
        for comp in live {
            self.logout(&comp, "service shutdown", now);
        }
    }

    /// Emergency Sequence Reset in Reset mode (OCG-C only, reference §1.8): the participant's
    /// next expected number becomes `new_out_next`, which must move forward.
    pub fn send_sequence_reset(&mut self, comp_id: &CompId, new_out_next: u32, now: Timestamp) {
        self.tick(now);
        let Some(part) = self.participants.get_mut(comp_id) else {
            return;
        };
        let d = &mut part.durable;
        assert!(
            new_out_next > d.out_next,
            "Condition failed: a sequence reset moves forward"
        );
        let seq = d.out_next;
        let reset = Message::SequenceReset(SequenceReset {
            gap_fill: Some(GapFill::Reset),
            new_sequence_number: new_out_next,
        });
        let bytes = encode_or_panic(seq, &self.config.exchange_comp_id, &reset);
        d.out_next = new_out_next;
        d.outbound.push_evicted_through(new_out_next - 1);
        if let Some(id) = part.live {
            if let Some(conn) = self.connections.get_mut(&id) {
                conn.live_cursor = new_out_next;
                self.actions.push_back(ServerAction::Send {
                    connection: id,
                    bytes,
                });
                mark_sent(conn, true, now);
            }
        }
    }

    /// An OCG-C outage (or the switch to the other site): every connection is dropped without
    /// Logout, no Cancel on Disconnect starts, and messages generated until each participant's
    /// next logon carry PossResend = 1.
    pub fn exchange_outage(&mut self, now: Timestamp) {
        self.tick(now);
        let ids: Vec<ConnectionId> = self.connections.keys().copied().collect();
        for id in ids {
            self.close(
                id,
                true,
                DisconnectReason::ExchangeOutage,
                DownCause::ExchangeOutage,
                now,
            );
        }
        for p in self.participants.values_mut() {
            p.durable.begin_exchange_outage();
        }
    }

    fn tick(&mut self, now: Timestamp) {
        debug_assert!(
            now >= self.last_now,
            "Condition failed: time went backwards"
        );
        self.last_now = self.last_now.max(now);
    }

    fn connection_timeout(&mut self, id: ConnectionId, now: Timestamp) {
        let Some(conn) = self.connections.get_mut(&id) else {
            return;
        };
        match conn.phase {
            Phase::AwaitLogon { deadline } if now >= deadline => {
                let cause = DownCause::ClientDropped;
                self.close(id, true, DisconnectReason::LogonTimeout, cause, now);
                return;
            }
            Phase::LoggingOut { deadline, cause } if now >= deadline => {
                self.close(id, false, DisconnectReason::LogoutTimeout, cause, now);
                return;
            }
            Phase::AwaitLogon { .. } => return,
            _ => {}
        }
        if let Some(comp) = conn.comp_id {
            if let Some(part) = self.participants.get_mut(&comp) {
                pump(id, conn, part, &self.config, &mut self.actions, now);
            }
        }
        let event = self
            .connections
            .get_mut(&id)
            .and_then(|c| c.liveness.as_mut()?.poll(now));
        match event {
            Some(LivenessEvent::SendHeartbeat) => self.send_admin(
                id,
                Message::Heartbeat(Heartbeat {
                    reference_test_request_id: None,
                }),
                now,
            ),
            Some(LivenessEvent::SendTestRequest(test_request_id)) => self.send_admin(
                id,
                Message::TestRequest(TestRequest { test_request_id }),
                now,
            ),
            Some(LivenessEvent::Dead) => {
                self.send_admin(id, logout_msg(None, "heartbeat timeout"), now);
                let cause = DownCause::HeartbeatTimeout;
                self.close(id, false, DisconnectReason::HeartbeatTimeout, cause, now);
            }
            None => {}
        }
    }

    fn on_frame(&mut self, id: ConnectionId, frame: RawFrame, now: Timestamp) {
        let Some(conn) = self.connections.get_mut(&id) else {
            return;
        };
        if let Phase::AwaitLogon { .. } = conn.phase {
            self.on_logon_frame(id, frame, now);
            return;
        }
        let comp = conn
            .comp_id
            .expect("Invariant: a logged-on connection has a comp id");
        if let Some(l) = conn.liveness.as_mut() {
            l.on_received(now);
        }
        let expected = self.participants[&comp].durable.in_next;
        match conn.inbound.classify(expected, &frame) {
            SeqVerdict::Process => self.process_in_sequence(id, comp, frame, now),
            SeqVerdict::Duplicate | SeqVerdict::Dropped | SeqVerdict::Queued => {}
            SeqVerdict::TooLow { expected } => {
                // Reference §1.7: Logout and disconnect; the inbound number is not advanced.
                let reason = DisconnectReason::SequenceTooLow {
                    received: frame.header.seq,
                    expected,
                };
                self.send_admin(
                    id,
                    logout_msg(None, "sequence number lower than expected"),
                    now,
                );
                self.close(id, false, reason, DownCause::ProtocolViolation, now);
                return;
            }
            SeqVerdict::Gap { from, to } => {
                let msg = Message::ResendRequest(ResendRequest {
                    start_sequence: from,
                    end_sequence: to,
                });
                self.send_admin(id, msg, now);
            }
        }
        self.drain_ready(id, comp, now);
    }

    /// Process queued messages that became in-sequence, and ask for any hole left.
    fn drain_ready(&mut self, id: ConnectionId, comp: CompId, now: Timestamp) {
        loop {
            let Some(conn) = self.connections.get_mut(&id) else {
                return;
            };
            let expected = self.participants[&comp].durable.in_next;
            if let Some(next) = conn.inbound.take_ready(expected) {
                self.process_in_sequence(id, comp, next, now);
                continue;
            }
            if let Some((from, to)) = conn.inbound.next_gap(expected) {
                let msg = Message::ResendRequest(ResendRequest {
                    start_sequence: from,
                    end_sequence: to,
                });
                self.send_admin(id, msg, now);
            }
            return;
        }
    }

    fn process_in_sequence(
        &mut self,
        id: ConnectionId,
        comp: CompId,
        frame: RawFrame,
        now: Timestamp,
    ) {
        let header = frame.header.clone();
        let part = self
            .participants
            .get_mut(&comp)
            .expect("Invariant: live comp id is registered");
        part.durable.in_next = header.seq + 1;
        let msg = match frame.message() {
            Ok(m) => m,
            Err(e) => {
                self.reject(id, comp, &header, &e, now);
                return;
            }
        };
        if header.comp_id.as_str() != comp.as_str() {
            let e = Message::Reject(Reject {
                message_reject_code: MessageRejectCode::CompIdProblem,
                reason: Some(VarStr::truncated("comp id does not match the session")),
                reference_message_type: Some(header.msg_type),
                reference_field_name: None,
                reference_sequence_number: header.seq,
                cl_ord_id: None,
            });
            self.send_stored(id, comp, e, now);
            return;
        }
        match msg {
            Message::Heartbeat(_) => {}
            Message::TestRequest(t) => {
                let hb = Heartbeat {
                    reference_test_request_id: Some(t.test_request_id),
                };
                self.send_admin(id, Message::Heartbeat(hb), now);
            }
            Message::ResendRequest(r) => self.on_resend_request(id, comp, &header, r, now),
            Message::SequenceReset(r) => self.on_sequence_reset(id, comp, &header, r, now),
            Message::Logout(_) => self.on_client_logout(id, now),
            m if is_client_business_type(m.msg_type()) => {
                self.on_business(id, comp, &header, m, now)
            }
            other => {
                let code = MessageRejectCode::InvalidMessageType;
                let text = format!("{} is not accepted from a participant", other.name());
                self.send_stored(id, comp, reject_msg(code, &text, &header), now);
            }
        }
    }

    fn on_business(
        &mut self,
        id: ConnectionId,
        comp: CompId,
        header: &Header,
        msg: Message,
        now: Timestamp,
    ) {
        let part = self.participants.get_mut(&comp).expect("registered");
        match part.throttle.admit(now) {
            Ok(()) => {
                if let Message::ThrottleEntitlementRequest(req) = &msg {
                    // The session layer owns the throttle, so it answers this itself.
                    let units = part.config.throttle_units;
                    let response = throttle_entitlement(req, units, &self.config.throttle);
                    self.send_stored(id, comp, response, now);
                    return;
                }
                self.actions.push_back(ServerAction::Deliver {
                    comp_id: comp,
                    seq: header.seq,
                    poss_resend: header.poss_resend,
                    message: msg,
                })
            }
            Err(ms_left) => {
                let bmr = BusinessMessageReject {
                    business_reject_code: BusinessRejectCode::ThrottleLimitExceeded,
                    reason: Some(VarStr::truncated(&ms_left.to_string())),
                    reference_message_type: header.msg_type,
                    reference_field_name: None,
                    reference_sequence_number: Some(header.seq),
                    business_reject_reference_id: client_reference(&msg),
                };
                self.send_stored(id, comp, Message::BusinessMessageReject(bmr), now);
                let rejected = self.participants[&comp].throttle.rejected_in_window();
                if self
                    .config
                    .throttle_rejects_before_logout
                    .is_some_and(|max| rejected > max)
                {
                    self.send_admin(id, logout_msg(None, "throttle limit grossly exceeded"), now);
                    let reason = DisconnectReason::ThrottleAbuse;
                    self.close(id, false, reason, DownCause::ProtocolViolation, now);
                }
            }
        }
    }

    fn on_resend_request(
        &mut self,
        id: ConnectionId,
        comp: CompId,
        header: &Header,
        r: ResendRequest,
        now: Timestamp,
    ) {
        let conn = self.connections.get_mut(&id).expect("open");
        if conn.replay.is_some() {
            // Reference §1.8: a second Resend Request during a resend kills the session.
            self.close(
                id,
                true,
                DisconnectReason::SecondResendRequest,
                DownCause::ProtocolViolation,
                now,
            );
            return;
        }
        let last = self.participants[&comp].durable.out_next - 1;
        let end = if r.end_sequence == 0 {
            last
        } else {
            r.end_sequence.min(last)
        };
        if r.start_sequence == 0 || r.start_sequence > end {
            let text = "resend range is empty or beyond the last message sent";
            self.send_stored(
                id,
                comp,
                reject_msg(MessageRejectCode::ValueIncorrect, text, header),
                now,
            );
            return;
        }
        conn.replay = Some((r.start_sequence, end));
        let part = self.participants.get_mut(&comp).expect("registered");
        pump(id, conn, part, &self.config, &mut self.actions, now);
    }

    fn on_sequence_reset(
        &mut self,
        id: ConnectionId,
        comp: CompId,
        header: &Header,
        r: SequenceReset,
        now: Timestamp,
    ) {
        if r.gap_fill != Some(GapFill::GapFill) {
            // Reference §1.8: Reset mode is for OCG-C only.
            let text = "sequence reset mode is not accepted from a participant";
            self.send_stored(
                id,
                comp,
                reject_msg(MessageRejectCode::ValueIncorrect, text, header),
                now,
            );
            return;
        }
        let part = self.participants.get_mut(&comp).expect("registered");
        if r.new_sequence_number > header.seq {
            part.durable.in_next = r.new_sequence_number;
        } else {
            let text = "gap fill must move the sequence number forward";
            self.send_stored(
                id,
                comp,
                reject_msg(MessageRejectCode::ValueIncorrect, text, header),
                now,
            );
        }
    }

    fn on_client_logout(&mut self, id: ConnectionId, now: Timestamp) {
        let conn = self.connections.get_mut(&id).expect("open");
        if let Phase::LoggingOut { cause, .. } = conn.phase {
            // The participant answered our Logout.
            self.close(id, false, DisconnectReason::ExchangeLogout, cause, now);
            return;
        }
        self.send_admin(id, logout_msg(Some(SessionStatus::LogoutComplete), ""), now);
        self.close(
            id,
            false,
            DisconnectReason::ClientLogout,
            DownCause::ClientLogout,
            now,
        );
    }

    fn reject(
        &mut self,
        id: ConnectionId,
        comp: CompId,
        header: &Header,
        e: &DecodeError,
        now: Timestamp,
    ) {
        let (code, _bit) = e.reject_code();
        let code = MessageRejectCode::from_wire(code).unwrap_or(MessageRejectCode::Other);
        self.send_stored(id, comp, reject_msg(code, &e.to_string(), header), now);
    }

    fn on_logon_frame(&mut self, id: ConnectionId, frame: RawFrame, now: Timestamp) {
        let verdict = self.check_logon(id, &frame, now);
        let comp = CompId::new(frame.header.comp_id.as_str()).ok();
        match verdict {
            LogonVerdict::Silent(reason) => {
                if reason == DisconnectReason::DuplicateLogon {
                    // Reference §1.6: both connections are dropped.
                    let other = comp.and_then(|c| self.live_connection(&c));
                    if let Some(other) = other {
                        let cause = DownCause::ProtocolViolation;
                        self.close(other, true, DisconnectReason::DuplicateLogon, cause, now);
                    }
                }
                self.close(id, true, reason, DownCause::ClientDropped, now);
            }
            LogonVerdict::Logout {
                status,
                text,
                reason,
            } => {
                let comp = comp.expect("Invariant: logout verdicts follow identification");
                let part = self.participants.get_mut(&comp).expect("registered");
                let seq = part.durable.out_next;
                part.durable.out_next += 1;
                let bytes = encode_or_panic(
                    seq,
                    &self.config.exchange_comp_id,
                    &logout_msg(status, text),
                );
                self.actions.push_back(ServerAction::Send {
                    connection: id,
                    bytes,
                });
                self.close(id, false, reason, DownCause::ClientDropped, now);
            }
            LogonVerdict::Accept { status, text } => {
                let comp = comp.expect("Invariant: accepted logons are identified");
                self.accept_logon(id, comp, &frame, status, text, now);
            }
        }
    }

    /// Every check of a Logon, in the reference's order; nothing is sent here, but password
    /// failure counters and password changes are recorded.
    fn check_logon(&mut self, id: ConnectionId, frame: &RawFrame, now: Timestamp) -> LogonVerdict {
        use DisconnectReason as R;
        let header = &frame.header;
        if header.msg_type != Logon::MSG_TYPE {
            return LogonVerdict::Silent(R::MessageBeforeLogon);
        }
        let Some(comp) = CompId::new(header.comp_id.as_str()).ok() else {
            return LogonVerdict::Silent(R::UnknownCompId);
        };
        let Some(part) = self.participants.get_mut(&comp) else {
            return LogonVerdict::Silent(R::UnknownCompId);
        };
        let source_ip = self.connections[&id].source_ip;
        if !part.config.source_ips.contains(&source_ip) {
            return LogonVerdict::Silent(R::UnregisteredSourceIp);
        }
        let Ok(Message::Logon(logon)) = frame.message() else {
            return LogonVerdict::Silent(R::MalformedLogon);
        };
        if part.live.is_some() {
            return LogonVerdict::Silent(R::DuplicateLogon);
        }
        let d = &mut part.durable;
        if d.in_next == 1 && header.seq > 1 {
            return LogonVerdict::Silent(R::SequenceAboveOneAtStartOfDay);
        }
        if header.seq < d.in_next && !header.poss_dup {
            let reason = R::SequenceTooLow {
                received: header.seq,
                expected: d.in_next,
            };
            return LogonVerdict::Logout {
                status: None,
                text: "sequence number lower than expected",
                reason,
            };
        }
        let logout = |status: SessionStatus, text| LogonVerdict::Logout {
            status: Some(status),
            text,
            reason: R::LogonRejected(status),
        };
        if !self.logons_allowed {
            return logout(
                SessionStatus::LogonsNotAllowed,
                "logons not allowed at this time",
            );
        }
        let cfg = &self.config;
        let creds = &mut d.credentials;
        if creds.locked {
            return logout(SessionStatus::AccountLocked, "account locked");
        }
        let plain = logon.password.as_ref().and_then(|p| {
            password::decrypt_password(&self.keys, p.as_str(), now, cfg.password_time_tolerance_ns)
                .ok()
        });
        if !plain
            .as_ref()
            .is_some_and(|p| creds.matches(comp.as_str(), p))
        {
            creds.failures += 1;
            if creds.failures >= cfg.max_logon_failures {
                creds.locked = true;
            }
            if cfg.bad_password_silent {
                return LogonVerdict::Silent(R::LogonRejected(
                    SessionStatus::InvalidUsernameOrPassword,
                ));
            }
            return match creds.locked {
                true => logout(SessionStatus::AccountLocked, "account locked"),
                false => logout(
                    SessionStatus::InvalidUsernameOrPassword,
                    "invalid username or password",
                ),
            };
        }
        creds.failures = 0;
        let today = password::hkt_day(now);
        if today > creds.expires_day {
            return logout(SessionStatus::PasswordExpired, "password expired");
        }
        let mut status = SessionStatus::Active;
        if let Some(new) = &logon.new_password {
            let new = password::decrypt_password(
                &self.keys,
                new.as_str(),
                now,
                cfg.password_time_tolerance_ns,
            );
            let checked = new
                .ok()
                .filter(|n| creds.check_new(comp.as_str(), n, today).is_ok());
            let Some(new) = checked else {
                return logout(
                    SessionStatus::NewPasswordViolatesPolicy,
                    "new password violates policy",
                );
            };
            creds.change(comp.as_str(), &new, today, cfg.password_expiry_days);
            status = SessionStatus::PasswordChanged;
        } else if creds.must_change {
            return logout(
                SessionStatus::PasswordChangeRequired,
                "password change required",
            );
        }
        let days_left = creds.expires_day - today;
        if status == SessionStatus::Active && days_left <= cfg.password_warning_days {
            status = SessionStatus::PasswordDueToExpire;
        }
        if logon.next_expected_sequence > d.out_next {
            let reason = R::NextExpectedTooHigh {
                next_expected: logon.next_expected_sequence,
                next_to_send: d.out_next,
            };
            return LogonVerdict::Logout {
                status: None,
                text: "next expected sequence number too high",
                reason,
            };
        }
        LogonVerdict::Accept {
            status,
            text: Some(days_left.to_string()),
        }
    }

    fn accept_logon(
        &mut self,
        id: ConnectionId,
        comp: CompId,
        frame: &RawFrame,
        status: SessionStatus,
        text: Option<String>,
        now: Timestamp,
    ) {
        let Message::Logon(logon) = frame.message().expect("checked") else {
            unreachable!("checked")
        };
        let part = self.participants.get_mut(&comp).expect("registered");
        let conn = self.connections.get_mut(&id).expect("open");
        let d = &mut part.durable;
        let seq = frame.header.seq;
        let sequences = LogonSequences {
            logon_seq: seq,
            next_expected: logon.next_expected_sequence,
            exchange_in_next: d.in_next,
            exchange_out_next: d.out_next,
        };
        if seq == d.in_next {
            d.in_next = seq + 1;
        } else if seq > d.in_next {
            // The participant replays in_next..seq-1 and gap-fills over its Logon (§1.8).
            conn.inbound.expect_replay_through(seq);
        }
        let reply = Message::Logon(Logon {
            password: None,
            new_password: None,
            next_expected_sequence: d.in_next,
            session_status: Some(status),
            text: text.map(|t| VarStr::truncated(&t)),
            test_message_indicator: self.config.test_message_indicator,
        });
        let s = d.out_next;
        d.out_next += 1;
        d.poss_resend_pending = false;
        d.cancel_on_disconnect.on_logon();
        let bytes = encode_or_panic(s, &self.config.exchange_comp_id, &reply);
        self.actions.push_back(ServerAction::Send {
            connection: id,
            bytes,
        });
        conn.phase = Phase::Active;
        conn.comp_id = Some(comp);
        conn.live_cursor = d.out_next;
        let mut liveness = Liveness::new(self.config.timers, now);
        liveness.on_received(now);
        conn.liveness = Some(liveness);
        if logon.next_expected_sequence < s {
            // Replay N..S-1 and gap-fill over the Logon reply's own number S.
            conn.replay = Some((logon.next_expected_sequence.max(1), s));
        }
        part.live = Some(id);
        self.actions.push_back(ServerAction::SessionUp {
            comp_id: comp,
            connection: id,
            sequences,
        });
        pump(id, conn, part, &self.config, &mut self.actions, now);
    }

    /// Send an administrative message now, or after the replay in progress.
    fn send_admin(&mut self, id: ConnectionId, msg: Message, now: Timestamp) {
        let Some(conn) = self.connections.get_mut(&id) else {
            return;
        };
        let Some(comp) = conn.comp_id else { return };
        let part = self.participants.get_mut(&comp).expect("registered");
        conn.pending_admin.push_back(msg);
        pump(id, conn, part, &self.config, &mut self.actions, now);
    }

    /// Send a replayable message (Reject, BMR) generated by the session itself.
    fn send_stored(&mut self, id: ConnectionId, comp: CompId, msg: Message, now: Timestamp) {
        let part = self.participants.get_mut(&comp).expect("registered");
        let conn = self.connections.get_mut(&id).expect("open");
        store_business(part, true, &self.config, &msg).expect("session messages fit a frame");
        pump(id, conn, part, &self.config, &mut self.actions, now);
    }

    fn close(
        &mut self,
        id: ConnectionId,
        silent: bool,
        reason: DisconnectReason,
        cause: DownCause,
        now: Timestamp,
    ) {
        let Some(conn) = self.connections.remove(&id) else {
            return;
        };
        self.actions.push_back(ServerAction::Disconnect {
            connection: id,
            silent,
            reason,
        });
        self.session_down(id, conn.comp_id, cause, now);
    }

    fn session_down(
        &mut self,
        id: ConnectionId,
        comp: Option<CompId>,
        cause: DownCause,
        now: Timestamp,
    ) {
        let Some(comp) = comp else { return };
        let Some(part) = self.participants.get_mut(&comp) else {
            return;
        };
        if part.live != Some(id) {
            return;
        }
        part.live = None;
        part.durable
            .cancel_on_disconnect
            .on_session_down(cause, now);
        self.actions.push_back(ServerAction::SessionDown {
            comp_id: comp,
            connection: id,
            cause,
        });
    }
}

/// Give a business message its number and keep it for replay. `connected`: the participant has
/// a live session (otherwise an outage may flag it PossResend).
fn store_business(
    part: &mut Participant,
    connected: bool,
    config: &ServerConfig,
    msg: &Message,
) -> Result<u32, EncodeError> {
    let d = &mut part.durable;
    let seq = d.out_next;
    let poss_resend = d.poss_resend_pending && !connected;
    let frame = frame::encode(seq, false, poss_resend, &config.exchange_comp_id, msg)?;
    d.out_next += 1;
    let stored = StoredMessage {
        seq,
        msg_type: msg.msg_type(),
        frame,
        poss_resend,
    };
    d.outbound.push(stored, config.retained_outbound_max);
    Ok(seq)
}

/// Move a connection's output forward: the replay in progress (one batch), then live business
/// messages waiting behind it, then administrative messages.
fn pump(
    id: ConnectionId,
    conn: &mut Connection,
    part: &mut Participant,
    config: &ServerConfig,
    actions: &mut VecDeque<ServerAction>,
    now: Timestamp,
) {
    let comp = &config.exchange_comp_id;
    let mut sent = false;
    if let Some((mut next, end)) = conn.replay {
        for bytes in part
            .durable
            .outbound
            .replay(&mut next, end, config.replay_batch, comp)
        {
            actions.push_back(ServerAction::Send {
                connection: id,
                bytes,
            });
            sent = true;
        }
        conn.replay = (next <= end).then_some((next, end));
        if conn.replay.is_some() {
            mark_sent(conn, sent, now);
            return;
        }
    }
    let d = &mut part.durable;
    while conn.live_cursor < d.out_next {
        let seq = conn.live_cursor;
        // Live numbers are business messages; one evicted by the retention cap is gap-filled.
        let bytes = match d.outbound.get(seq) {
            Some(m) => m.frame.clone(),
            None => crate::session::gap_fill(seq, seq + 1, comp),
        };
        actions.push_back(ServerAction::Send {
            connection: id,
            bytes,
        });
        sent = true;
        conn.live_cursor = seq + 1;
    }
    while let Some(msg) = conn.pending_admin.pop_front() {
        let seq = d.out_next;
        d.out_next += 1;
        conn.live_cursor = d.out_next;
        let bytes = encode_or_panic(seq, comp, &msg);
        actions.push_back(ServerAction::Send {
            connection: id,
            bytes,
        });
        sent = true;
    }
    mark_sent(conn, sent, now);
}

fn mark_sent(conn: &mut Connection, sent: bool, now: Timestamp) {
    if let (true, Some(l)) = (sent, conn.liveness.as_mut()) {
        l.on_sent(now);
    }
}

fn encode_or_panic(seq: u32, comp: &FixedStr<12>, msg: &Message) -> Vec<u8> {
    frame::encode(seq, false, false, comp, msg).expect("Invariant: session messages fit a frame")
}

fn logout_msg(status: Option<SessionStatus>, text: &str) -> Message {
    Message::Logout(Logout {
        logout_text: (!text.is_empty()).then(|| VarStr::truncated(text)),
        session_status: status,
    })
}

fn reject_msg(code: MessageRejectCode, text: &str, header: &Header) -> Message {
    Message::Reject(Reject {
        message_reject_code: code,
        reason: Some(VarStr::truncated(text)),
        reference_message_type: Some(header.msg_type),
        reference_field_name: None,
        reference_sequence_number: header.seq,
        cl_ord_id: None,
    })
}

/// Throttle Entitlement Response for a Comp ID: one inbound-rate throttle, reject on excess.
fn throttle_entitlement(
    req: &ThrottleEntitlementRequest,
    units: u32,
    t: &ThrottleConfig,
) -> Message {
    let seconds = (t.window_ns / NANOS_PER_SEC).max(1);
    Message::ThrottleEntitlementResponse(ThrottleEntitlementResponse {
        user_request_id: Some(req.user_request_id.clone()),
        username: Some(req.username.clone()),
        throttles: Some(crate::wire::Group(vec![ThrottleEntry {
            throttle_action: Some(2),
            throttle_type: Some(0),
            throttle_no_messages: Some(units.saturating_mul(t.msgs_per_unit)),
            throttle_time_interval: Some(u16::try_from(seconds).unwrap_or(u16::MAX)),
            throttle_time_unit: Some(0),
        }])),
    })
}

/// The participant's own identifier of a business message, echoed in a BMR.
fn client_reference(msg: &Message) -> Option<Id21> {
    match msg {
        Message::NewOrder(m) => Some(m.cl_ord_id.clone()),
        Message::AmendRequest(m) => m.cl_ord_id.clone(),
        Message::CancelRequest(m) => m.cl_ord_id.clone(),
        Message::MassCancelRequest(m) => m.cl_ord_id.clone(),
        Message::OboCancelRequest(m) => m.cl_ord_id.clone(),
        Message::OboMassCancelRequest(m) => m.cl_ord_id.clone(),
        Message::Quote(m) => Some(m.quote_bid_id.clone()),
        Message::QuoteCancel(m) => Some(m.quote_msg_id.clone()),
        Message::TradeCaptureReport(m) => m.trade_report_id.clone(),
        Message::PartyEntitlementsRequest(m) => m.entitlement_request_id.clone(),
        _ => None,
    }
}
