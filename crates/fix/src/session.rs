//! The FIXT.1.1 session layer, sans-IO, for both roles.
//!
//! A [`Session`] is one connection. Its durable part, [`SessionState`] (sequence numbers and the
//! outbound business messages a resend may need), is a plain serde struct the runtime persists
//! and replicates; a new connection starts from it with [`Session::acceptor`] or
//! [`Session::initiator`], and [`Session::into_state`] hands it back.
//!
//! Driving a session (the quinn-proto shape):
//! * input: [`Session::handle_bytes`], [`Session::handle_timeout`], [`Session::handle_disconnect`];
//! * commands: [`Session::send`], [`Session::logout`], [`Session::reset_sequence`];
//! * output: [`Session::poll_action`] until `None`, and [`Session::poll_timeout`] for the next
//!   deadline. Every input takes `now`; the session never reads a clock.
//!
//! Recovery follows OCG-C (reference §1.8), which FIX shares with the binary gateway: the
//! Logon's NextExpectedMsgSeqNum (789) drives replay. If it is above our next outbound number
//! we log out; if below, we replay from it after our Logon reply, business messages with
//! PossDupFlag=Y and OrigSendingTime, admin messages (including the Logon itself) as
//! SequenceReset-GapFill. Neither side sends a ResendRequest because of the Logon's own number.

use std::collections::{BTreeMap, VecDeque};

use serde::{Deserialize, Serialize};
use twinsite_core::Timestamp;

use crate::codec::{self, FrameSplitter, BEGIN_STRING};
use crate::dictionary;
use crate::message::{read_frame, Field, Message, Received, SessionRejectReason as R, Violation};
use crate::password::{session_status, LogonCredentials, LogonDecision, LogonVerifier};
use crate::time::{write_utc_timestamp, TimePrecision, UTC_TIMESTAMP_MAX_LEN};

/// DefaultApplVerID (1137) for FIX 5.0 SP2.
pub const DEFAULT_APPL_VER_ID: &str = "9";

/// Configuration of one session. Defaults follow OCG-C (reference §1.7) where it says, FIX
/// otherwise.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionConfig {
    /// Our CompID: SenderCompID on what we send, TargetCompID on what we receive.
    pub local_comp_id: String,
    /// The peer's CompID.
    pub remote_comp_id: String,
    /// HeartBtInt an initiator proposes. An acceptor adopts the peer's value if it lies within
    /// `heartbeat_interval_min_secs..=heartbeat_interval_max_secs`.
    pub heartbeat_interval_secs: u64,
    pub heartbeat_interval_min_secs: u64,
    pub heartbeat_interval_max_secs: u64,
    /// Largest accepted difference between SendingTime and our clock.
    pub sending_time_tolerance_secs: u64,
    /// Silent heartbeat intervals before we send a TestRequest.
    pub test_request_after_intervals: u32,
    /// Further intervals without an answer before we log out and disconnect.
    pub logout_after_intervals: u32,
    /// Time allowed for the Logon exchange.
    pub logon_timeout_secs: u64,
    /// Time we wait for the peer's Logout reply.
    pub logout_timeout_secs: u64,
    /// Outbound business messages kept for resend; older ones are gap-filled.
    pub resend_store_max: usize,
    /// Out-of-order inbound messages held while a gap is being filled.
    pub inbound_queue_max: usize,
    /// Fractional digits of SendingTime.
    pub time_precision: TimePrecision,
    /// Whether a SequenceReset in Reset mode from the peer is honoured. OCG-C refuses it from
    /// participants (acceptor default false); participants accept it from the exchange.
    pub accept_sequence_reset_from_peer: bool,
}

impl SessionConfig {
    /// Exchange side defaults.
    pub fn acceptor(local_comp_id: &str, remote_comp_id: &str) -> SessionConfig {
        SessionConfig {
            local_comp_id: local_comp_id.to_string(),
            remote_comp_id: remote_comp_id.to_string(),
            heartbeat_interval_secs: twinsite_core::limits::OCG_HEARTBEAT_SECS,
            heartbeat_interval_min_secs: 1,
            heartbeat_interval_max_secs: 300,
            sending_time_tolerance_secs: 120,
            test_request_after_intervals: twinsite_core::limits::OCG_TEST_REQUEST_AFTER_INTERVALS,
            logout_after_intervals: twinsite_core::limits::OCG_LOGOUT_AFTER_INTERVALS,
            logon_timeout_secs: 60,
            logout_timeout_secs: 60,
            resend_store_max: 200_000,
            inbound_queue_max: 10_000,
            time_precision: TimePrecision::Millis,
            accept_sequence_reset_from_peer: false,
        }
    }

    /// Participant side defaults.
    pub fn initiator(local_comp_id: &str, remote_comp_id: &str) -> SessionConfig {
        SessionConfig {
            accept_sequence_reset_from_peer: true,
            ..SessionConfig::acceptor(local_comp_id, remote_comp_id)
        }
    }
}

/// An outbound business message kept for resend: its body as it was written (what a resend
/// writes again after a new header), not a second, parsed copy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredMessage {
    pub seq: u64,
    pub sending_time: Timestamp,
    pub poss_resend: bool,
    /// Inline (no allocation per stored message); serialized as a string.
    pub msg_type: crate::message::FieldValue,
    /// The body fields in wire form (`tag=value` SOH ..., no header or trailer), see
    /// [`codec::encode_body`].
    pub body: Vec<u8>,
}

impl StoredMessage {
    /// The stored message as fields (for inspection; resends use the bytes).
    pub fn message(&self) -> Message {
        Message {
            msg_type: self.msg_type.clone(),
            body: codec::tokenize(&self.body).unwrap_or_default(),
        }
    }
}

/// The durable session: what must survive a disconnect, a restart or a site failover.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionState {
    pub local_comp_id: String,
    pub remote_comp_id: String,
    /// MsgSeqNum of the next message we send.
    pub next_outbound_seq: u64,
    /// MsgSeqNum we expect next from the peer.
    pub next_inbound_seq: u64,
    /// Business messages sent (or queued while disconnected), ascending by `seq`.
    pub outbound: VecDeque<StoredMessage>,
}

impl SessionState {
    /// A fresh trading day: both sequences at 1.
    pub fn new(local_comp_id: &str, remote_comp_id: &str) -> SessionState {
        SessionState {
            local_comp_id: local_comp_id.to_string(),
            remote_comp_id: remote_comp_id.to_string(),
            next_outbound_seq: 1,
            next_inbound_seq: 1,
            outbound: VecDeque::new(),
        }
    }

    fn check_invariants(&self) {
        assert!(
            self.next_outbound_seq >= 1,
            "Invariant: sequence numbers start at 1"
        );
        assert!(
            self.next_inbound_seq >= 1,
            "Invariant: sequence numbers start at 1"
        );
        if let Some(last) = self.outbound.back() {
            assert!(
                last.seq < self.next_outbound_seq,
                "Invariant: stored messages precede the next outbound number"
            );
        }
    }
}

/// A received application message (or a session Reject the peer sent us).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Inbound {
    pub seq: u64,
    pub poss_dup: bool,
    pub poss_resend: bool,
    pub sending_time: Timestamp,
    pub message: Message,
}

/// Why the session asks the runtime to close the connection.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DisconnectReason {
    #[error("logout completed")]
    LogoutCompleted,
    #[error("the peer logged out: {0}")]
    PeerLoggedOut(String),
    #[error("logon refused: {0}")]
    LogonRejected(String),
    #[error("unknown CompID or refused by the verifier (silent drop)")]
    SilentDrop,
    #[error("first message was not a Logon")]
    NotLogon,
    #[error("no Logon within the timeout")]
    LogonTimeout,
    #[error("no Logout reply within the timeout")]
    LogoutTimeout,
    #[error("no message from the peer after a TestRequest")]
    HeartbeatTimeout,
    #[error("protocol violation: {0}")]
    Protocol(String),
}

/// What the runtime must do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Write these bytes to the connection.
    Send(Vec<u8>),
    /// The Logon exchange completed; the session is live.
    Established,
    /// An application message (or an inbound session Reject) in sequence.
    Deliver(Inbound),
    /// Close the connection (after writing any `Send` before it).
    Disconnect { reason: DisconnectReason },
}

/// Counters for tests and metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SessionStats {
    pub garbled_frames: u64,
    pub rejects_sent: u64,
    pub business_rejects_sent: u64,
    pub duplicates_ignored: u64,
    pub resend_requests_sent: u64,
    pub messages_resent: u64,
}

/// API misuse when sending.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SendError {
    #[error("message type {0} is a session message; the session layer sends those")]
    AdminMessage(String),
    #[error("message does not match the dictionary: {0}")]
    Invalid(Violation),
    #[error("the session is closed")]
    Closed,
    #[error("the new sequence number must be above {0}")]
    SequenceNotAbove(u64),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Acceptor: connected, waiting for the peer's Logon.
    AwaitingLogon {
        since: Timestamp,
    },
    /// Initiator: Logon sent, waiting for the reply.
    LogonSent {
        at: Timestamp,
    },
    Active,
    LogoutSent {
        at: Timestamp,
    },
    Closed,
}

/// Produces the Logon's credential fields (1400/1402/1404 or 554) at `now`.
pub type CredentialSource = Box<dyn FnMut(Timestamp) -> Vec<Field> + Send>;

enum Role {
    Acceptor(Box<dyn LogonVerifier + Send>),
    Initiator(CredentialSource),
}

/// A ResendRequest we sent and have not seen answered.
#[derive(Debug, Clone, Copy)]
struct ResendRequestSent {
    /// BeginSeqNo we asked from.
    from: u64,
    /// When we asked.
    at: Timestamp,
    /// The highest inbound number seen since.
    until: u64,
}

enum Queued {
    /// Received early, with its arrival time (its SendingTime was checked against that).
    Pending(Box<Received>, Timestamp),
    /// Already acted on out of order (a ResendRequest); only its number remains to consume.
    Handled,
}

/// One FIX session connection.
pub struct Session {
    config: SessionConfig,
    role: Role,
    state: SessionState,
    phase: Phase,
    splitter: FrameSplitter,
    actions: VecDeque<Action>,
    heartbeat_interval_secs: u64,
    last_sent: Timestamp,
    last_received: Timestamp,
    test_request_sent: Option<Timestamp>,
    test_request_counter: u64,
    /// Our outstanding ResendRequest, if any.
    resend_request: Option<ResendRequestSent>,
    queued: BTreeMap<u64, Queued>,
    stats: SessionStats,
    /// The sequence numbers of the Logon that established this session.
    logon: Option<LogonSeqNums>,
    /// ResendRequests (BeginSeqNo, EndSeqNo) the counterparty sent and we answered, not yet
    /// taken by the runtime (activity tracking).
    resend_requests: Vec<(u64, u64)>,
}

/// The sequence numbers of the Logon that established a session: what the counterparty
/// presented (MsgSeqNum 34, NextExpectedMsgSeqNum 789) and ours at that moment, before the
/// Logon was taken (for activity tracking after a failover).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogonSeqNums {
    pub msg_seq_num: u64,
    pub next_expected: u64,
    pub our_next_inbound: u64,
    pub our_next_outbound: u64,
}

const NANOS_PER_SEC: u64 = 1_000_000_000;

impl Session {
    /// An exchange-side session for a new connection. The runtime has already matched the
    /// connection to `state` (see [`identify_logon`]).
    pub fn acceptor(
        config: SessionConfig,
        state: SessionState,
        verifier: Box<dyn LogonVerifier + Send>,
        now: Timestamp,
    ) -> Session {
        Session::new(
            config,
            state,
            Role::Acceptor(verifier),
            Phase::AwaitingLogon { since: now },
            now,
        )
    }

    /// A participant-side session: sends the Logon immediately.
    pub fn initiator(
        config: SessionConfig,
        state: SessionState,
        credentials: CredentialSource,
        now: Timestamp,
    ) -> Session {
        let mut s = Session::new(
            config,
            state,
            Role::Initiator(credentials),
            Phase::LogonSent { at: now },
            now,
        );
        s.heartbeat_interval_secs = s.config.heartbeat_interval_secs;
        let mut logon = s.logon_message(None);
        if let Role::Initiator(credentials) = &mut s.role {
            logon.body.extend(credentials(now));
        }
        logon.push(1137, DEFAULT_APPL_VER_ID);
        s.send_admin(now, logon);
        s
    }

    fn new(
        config: SessionConfig,
        state: SessionState,
        role: Role,
        phase: Phase,
        now: Timestamp,
    ) -> Session {
        assert!(
            state.local_comp_id == config.local_comp_id
                && state.remote_comp_id == config.remote_comp_id,
            "Condition failed: session state {}->{} used with config {}->{}",
            state.local_comp_id,
            state.remote_comp_id,
            config.local_comp_id,
            config.remote_comp_id
        );
        state.check_invariants();
        Session {
            heartbeat_interval_secs: config.heartbeat_interval_secs,
            config,
            role,
            state,
            phase,
            splitter: FrameSplitter::new(),
            actions: VecDeque::new(),
            last_sent: now,
            last_received: now,
            test_request_sent: None,
            test_request_counter: 0,
            resend_request: None,
            queued: BTreeMap::new(),
            stats: SessionStats::default(),
            logon: None,
            resend_requests: Vec::new(),
        }
    }

    pub fn state(&self) -> &SessionState {
        &self.state
    }

    pub fn into_state(self) -> SessionState {
        self.state
    }

    pub fn phase(&self) -> Phase {
        self.phase
    }

    pub fn is_established(&self) -> bool {
        matches!(self.phase, Phase::Active | Phase::LogoutSent { .. })
    }

    pub fn stats(&self) -> SessionStats {
        self.stats
    }

    /// The sequence numbers of the Logon that established the session (None before it).
    pub fn logon_seq_nums(&self) -> Option<LogonSeqNums> {
        self.logon
    }

    /// The ResendRequests (BeginSeqNo, EndSeqNo; 0 = infinity) the counterparty sent and this
    /// session answered since the last call.
    pub fn take_resend_requests(&mut self) -> Vec<(u64, u64)> {
        std::mem::take(&mut self.resend_requests)
    }

    pub fn heartbeat_interval_secs(&self) -> u64 {
        self.heartbeat_interval_secs
    }

    /// The next action for the runtime, in order.
    pub fn poll_action(&mut self) -> Option<Action> {
        self.actions.pop_front()
    }

    /// All pending actions.
    pub fn drain_actions(&mut self) -> Vec<Action> {
        self.actions.drain(..).collect()
    }

    /// Bytes received from the connection.
    pub fn handle_bytes(&mut self, now: Timestamp, bytes: &[u8]) {
        if self.phase == Phase::Closed {
            return;
        }
        // Frames are read straight from `bytes` (the splitter keeps only an incomplete tail).
        let mut splitter = std::mem::take(&mut self.splitter);
        splitter.feed(bytes, |frame| {
            match frame {
                Err(_) => self.stats.garbled_frames += 1,
                Ok(frame) => self.on_frame(now, frame),
            }
            self.phase != Phase::Closed
        });
        self.splitter = splitter;
        self.state.check_invariants();
    }

    /// The transport closed. The durable state stays valid for the next connection.
    pub fn handle_disconnect(&mut self) {
        self.phase = Phase::Closed;
        self.queued.clear();
    }

    /// The next time [`Session::handle_timeout`] must be called.
    pub fn poll_timeout(&self) -> Option<Timestamp> {
        let secs = |s: u64| s.saturating_mul(NANOS_PER_SEC);
        match self.phase {
            Phase::AwaitingLogon { since } => {
                Some(since.plus_nanos(secs(self.config.logon_timeout_secs)))
            }
            Phase::LogonSent { at } => Some(at.plus_nanos(secs(self.config.logon_timeout_secs))),
            Phase::LogoutSent { at } => Some(at.plus_nanos(secs(self.config.logout_timeout_secs))),
            Phase::Closed => None,
            Phase::Active => {
                let hb = secs(self.heartbeat_interval_secs.max(1));
                let heartbeat = self.last_sent.plus_nanos(hb);
                let liveness = match self.test_request_sent {
                    Some(at) => at.plus_nanos(hb * self.config.logout_after_intervals as u64),
                    None => self
                        .last_received
                        .plus_nanos(hb * self.config.test_request_after_intervals as u64),
                };
                Some(heartbeat.min(liveness))
            }
        }
    }

    /// Run the timers due at `now`.
    pub fn handle_timeout(&mut self, now: Timestamp) {
        let Some(deadline) = self.poll_timeout() else {
            return;
        };
        if now < deadline {
            return;
        }
        match self.phase {
            Phase::AwaitingLogon { .. } | Phase::LogonSent { .. } => {
                self.disconnect(DisconnectReason::LogonTimeout)
            }
            Phase::LogoutSent { .. } => self.disconnect(DisconnectReason::LogoutTimeout),
            Phase::Closed => {}
            Phase::Active => self.on_active_timeout(now),
        }
    }

    fn on_active_timeout(&mut self, now: Timestamp) {
        let hb = self.heartbeat_interval_secs.max(1) * NANOS_PER_SEC;
        if let Some(at) = self.test_request_sent {
            if now >= at.plus_nanos(hb * self.config.logout_after_intervals as u64) {
                self.logout_and_disconnect(
                    now,
                    "no response to TestRequest",
                    DisconnectReason::HeartbeatTimeout,
                );
                return;
            }
        } else if now
            >= self
                .last_received
                .plus_nanos(hb * self.config.test_request_after_intervals as u64)
        {
            self.test_request_counter += 1;
            let id = format!("TEST{}", self.test_request_counter);
            self.send_admin(now, Message::new("1").with(112, id));
            self.test_request_sent = Some(now);
        }
        if now >= self.last_sent.plus_nanos(hb) {
            self.send_admin(now, Message::new("0"));
        }
    }

    /// Send an application message. It is stored for resend and gets the next sequence number
    /// even while the peer is not logged on (it is then delivered by the logon replay), which is
    /// how messages generated during a disconnect reach the participant.
    pub fn send(&mut self, now: Timestamp, message: Message) -> Result<u64, SendError> {
        self.send_with(now, message, false)
    }

    /// As [`Session::send`], marked PossResend=Y (a message re-sent under a new number, e.g.
    /// after an exchange-side outage).
    pub fn send_with(
        &mut self,
        now: Timestamp,
        message: Message,
        poss_resend: bool,
    ) -> Result<u64, SendError> {
        if message.is_admin() {
            return Err(SendError::AdminMessage(message.msg_type.into_string()));
        }
        dictionary::validate(&message.msg_type, &message.body).map_err(SendError::Invalid)?;
        let body = codec::encode_body(&message.body);
        self.send_encoded(now, message.msg_type, body, poss_resend)
    }

    /// Send an application message whose body the caller wrote in wire form
    /// ([`codec::BodyWriter`] or [`codec::encode_body`]): as [`Session::send`] but without
    /// building a [`Message`] and without checking the body against the dictionary at run time
    /// (the gateway's replies are checked in its tests; debug builds check every one here).
    pub fn send_body(
        &mut self,
        now: Timestamp,
        msg_type: &str,
        body: Vec<u8>,
    ) -> Result<u64, SendError> {
        if crate::message::is_admin_msg_type(msg_type) {
            return Err(SendError::AdminMessage(msg_type.to_string()));
        }
        debug_assert_eq!(
            codec::tokenize(&body)
                .map_err(|e| e.to_string())
                .and_then(|f| dictionary::validate(msg_type, &f).map_err(|v| v.to_string())),
            Ok(()),
            "Invariant: an outbound {msg_type} passes the dictionary: {}",
            codec::to_pipes(&body)
        );
        self.send_encoded(now, msg_type.into(), body, false)
    }

    fn send_encoded(
        &mut self,
        now: Timestamp,
        msg_type: crate::message::FieldValue,
        body: Vec<u8>,
        poss_resend: bool,
    ) -> Result<u64, SendError> {
        let seq = self.state.next_outbound_seq;
        self.state.next_outbound_seq += 1;
        if self.state.outbound.len() >= self.config.resend_store_max.max(1) {
            self.state.outbound.pop_front();
        }
        let stored = StoredMessage {
            seq,
            sending_time: now,
            poss_resend,
            msg_type,
            body,
        };
        if self.phase == Phase::Active {
            let bytes = self.encode(seq, now, None, poss_resend, &stored.msg_type, &stored.body);
            self.emit(now, bytes);
        }
        self.state.outbound.push_back(stored);
        self.state.check_invariants();
        Ok(seq)
    }

    /// Start a logout. Without a live session the connection is simply closed.
    pub fn logout(&mut self, now: Timestamp, text: &str) {
        match self.phase {
            Phase::Active => {
                self.send_admin(
                    now,
                    Message::new("5").with_opt(58, (!text.is_empty()).then_some(text)),
                );
                self.phase = Phase::LogoutSent { at: now };
            }
            Phase::Closed | Phase::LogoutSent { .. } => {}
            Phase::AwaitingLogon { .. } | Phase::LogonSent { .. } => {
                self.disconnect(DisconnectReason::LogoutCompleted)
            }
        }
    }

    /// Emergency SequenceReset in Reset mode (exchange operations): our next outbound number
    /// becomes `new_next_outbound_seq`. Earlier stored messages can no longer be replayed.
    pub fn reset_sequence(
        &mut self,
        now: Timestamp,
        new_next_outbound_seq: u64,
    ) -> Result<(), SendError> {
        if new_next_outbound_seq <= self.state.next_outbound_seq {
            return Err(SendError::SequenceNotAbove(self.state.next_outbound_seq));
        }
        if self.phase == Phase::Closed {
            return Err(SendError::Closed);
        }
        let seq = self.state.next_outbound_seq;
        let reset = Message::new("4")
            .with(123, "N")
            .with(36, new_next_outbound_seq.to_string());
        let bytes = self.encode_message(seq, now, None, false, &reset);
        self.emit(now, bytes);
        self.state.next_outbound_seq = new_next_outbound_seq;
        self.state.outbound.clear();
        Ok(())
    }

    fn on_frame(&mut self, now: Timestamp, frame: &[u8]) {
        let Ok(r) = read_frame(frame) else {
            self.stats.garbled_frames += 1;
            return;
        };
        self.last_received = now;
        self.test_request_sent = None;
        if r.header.begin_string != BEGIN_STRING {
            let text = format!("BeginString must be {BEGIN_STRING}");
            self.logout_and_disconnect(now, &text, DisconnectReason::Protocol(text.clone()));
            return;
        }
        let Some(seq) = r.header.msg_seq_num else {
            let text = "MsgSeqNum (34) missing or invalid".to_string();
            self.logout_and_disconnect(now, &text, DisconnectReason::Protocol(text.clone()));
            return;
        };
        match self.phase {
            Phase::Closed => {}
            Phase::AwaitingLogon { .. } if r.header.msg_type == "A" => self.on_logon(now, r, seq),
            Phase::AwaitingLogon { .. } => self.disconnect(DisconnectReason::NotLogon),
            Phase::LogonSent { .. } if r.header.msg_type == "A" => self.on_logon(now, r, seq),
            Phase::LogonSent { .. } if r.header.msg_type == "5" => {
                let text = r.message.get(58).unwrap_or("logout").to_string();
                self.disconnect(DisconnectReason::LogonRejected(text));
            }
            Phase::LogonSent { .. } => self.disconnect(DisconnectReason::NotLogon),
            Phase::Active | Phase::LogoutSent { .. } => self.on_established_frame(now, r, seq),
        }
    }

    /// Header checks for a live session, then sequencing, then dispatch.
    fn on_established_frame(&mut self, now: Timestamp, r: Received, seq: u64) {
        if !self.header_ok(now, now, &r, seq) {
            self.drain_queue(now);
            return;
        }
        let expected = self.state.next_inbound_seq;
        let is_reset = r.header.msg_type == "4" && r.message.get(123) != Some("Y");
        if is_reset {
            self.on_sequence_reset_mode(now, &r, seq);
            return;
        }
        if seq > expected {
            self.on_seq_too_high(now, r, seq);
            return;
        }
        if seq < expected {
            if r.header.poss_dup {
                self.stats.duplicates_ignored += 1;
            } else {
                let text = format!("MsgSeqNum too low, expecting {expected} but received {seq}");
                self.logout_and_disconnect(now, &text, DisconnectReason::Protocol(text.clone()));
            }
            return;
        }
        self.process_in_sequence(now, r, seq);
        self.drain_queue(now);
    }

    /// CompIDs, SendingTime (against `received_at`), PossDup/OrigSendingTime. Returns false if
    /// the message was consumed (rejected, or the session ended).
    fn header_ok(
        &mut self,
        now: Timestamp,
        received_at: Timestamp,
        r: &Received,
        seq: u64,
    ) -> bool {
        let h = &r.header;
        let in_sequence = seq == self.state.next_inbound_seq;
        let comp_tag = if h.sender_comp_id.as_deref() != Some(self.config.remote_comp_id.as_str()) {
            Some(49)
        } else if h.target_comp_id.as_deref() != Some(self.config.local_comp_id.as_str()) {
            Some(56)
        } else {
            None
        };
        if let Some(tag) = comp_tag {
            let v = Violation::new(R::CompIdProblem, Some(tag), "CompID problem");
            self.reject(now, seq, &h.msg_type, &v);
            if in_sequence {
                self.state.next_inbound_seq += 1;
            }
            self.logout_and_disconnect(
                now,
                "CompID problem",
                DisconnectReason::Protocol("CompID problem".into()),
            );
            return false;
        }
        let time_violation = match h.sending_time {
            None if !h.sending_time_present => Some(Violation::new(
                R::RequiredTagMissing,
                Some(52),
                "SendingTime (52) missing",
            )),
            None => Some(Violation::new(
                R::IncorrectDataFormat,
                Some(52),
                "SendingTime (52) malformed",
            )),
            Some(t)
                if t.0.abs_diff(received_at.0)
                    > self.config.sending_time_tolerance_secs * NANOS_PER_SEC =>
            {
                let v = Violation::new(
                    R::SendingTimeAccuracyProblem,
                    Some(52),
                    "SendingTime accuracy problem",
                );
                self.fatal_reject(now, seq, &h.msg_type, &v);
                return false;
            }
            Some(_) => None,
        };
        let dup_violation = if h.poss_dup && h.msg_type != "4" {
            match (
                h.orig_sending_time,
                h.orig_sending_time_present,
                h.sending_time,
            ) {
                (_, false, _) => Some(Violation::new(
                    R::RequiredTagMissing,
                    Some(122),
                    "OrigSendingTime (122) required with PossDupFlag",
                )),
                (None, true, _) => Some(Violation::new(
                    R::IncorrectDataFormat,
                    Some(122),
                    "OrigSendingTime (122) malformed",
                )),
                (Some(orig), true, Some(sending)) if orig > sending => {
                    let v = Violation::new(
                        R::SendingTimeAccuracyProblem,
                        Some(122),
                        "OrigSendingTime later than SendingTime",
                    );
                    self.fatal_reject(now, seq, &h.msg_type, &v);
                    return false;
                }
                _ => None,
            }
        } else {
            None
        };
        if let Some(v) = time_violation.or(dup_violation) {
            if in_sequence {
                self.reject(now, seq, &h.msg_type, &v);
                self.state.next_inbound_seq += 1;
                return false;
            }
            // Out of sequence: sequencing decides (queue, duplicate or too low); a queued
            // message is checked again when its turn comes.
            return true;
        }
        true
    }

    fn fatal_reject(&mut self, now: Timestamp, seq: u64, msg_type: &str, v: &Violation) {
        self.reject(now, seq, msg_type, v);
        if seq == self.state.next_inbound_seq {
            self.state.next_inbound_seq += 1;
        }
        self.logout_and_disconnect(now, &v.text, DisconnectReason::Protocol(v.text.clone()));
    }

    fn on_seq_too_high(&mut self, now: Timestamp, r: Received, seq: u64) {
        let expected = self.state.next_inbound_seq;
        match r.header.msg_type.as_str() {
            // A Logout is honoured at once; a ResendRequest is answered at once so that two
            // sides with gaps cannot deadlock, and its number is consumed later.
            "5" => {
                self.on_logout(now, &r);
                return;
            }
            "2" if dictionary::validate("2", &r.message.body).is_ok() => {
                self.on_resend_request(now, &r, seq);
                self.queue(seq, Queued::Handled);
            }
            _ => self.queue(seq, Queued::Pending(Box::new(r), now)),
        }
        // One ResendRequest at a time (OCG-C kills a session that sends a second one while it
        // is still resending). Ask again only if a whole heartbeat interval passed without any
        // progress, which means the request or its answer was lost.
        let interval = self.heartbeat_interval_secs.max(1) * NANOS_PER_SEC;
        let stalled = self
            .resend_request
            .is_some_and(|r| r.from == expected && now.saturating_sub(r.at) >= interval);
        if self.resend_request.is_none() || stalled {
            let request = Message::new("2")
                .with(7, expected.to_string())
                .with(16, "0");
            self.send_admin(now, request);
            self.stats.resend_requests_sent += 1;
            self.resend_request = Some(ResendRequestSent {
                from: expected,
                at: now,
                until: seq,
            });
        }
        if let Some(r) = &mut self.resend_request {
            r.until = r.until.max(seq);
        }
    }

    fn queue(&mut self, seq: u64, entry: Queued) {
        if self.queued.len() < self.config.inbound_queue_max || self.queued.contains_key(&seq) {
            self.queued.insert(seq, entry);
        }
    }

    fn drain_queue(&mut self, now: Timestamp) {
        loop {
            let expected = self.state.next_inbound_seq;
            while let Some((&first, _)) = self.queued.first_key_value() {
                if first >= expected {
                    break;
                }
                self.queued.pop_first();
            }
            if !self.is_established() {
                break;
            }
            match self.queued.remove(&expected) {
                None => break,
                Some(Queued::Handled) => self.state.next_inbound_seq += 1,
                Some(Queued::Pending(r, arrived)) => {
                    // SendingTime is judged at arrival: a gap that takes long to fill must
                    // not turn a message that was on time into a SendingTime violation.
                    if self.header_ok(now, arrived, &r, expected) {
                        self.process_in_sequence(now, *r, expected);
                    }
                }
            }
        }
        if self
            .resend_request
            .is_some_and(|r| self.state.next_inbound_seq > r.until)
        {
            self.resend_request = None;
        }
    }

    /// `seq` is the expected number. Validate, then dispatch.
    fn process_in_sequence(&mut self, now: Timestamp, r: Received, seq: u64) {
        debug_assert_eq!(seq, self.state.next_inbound_seq);
        if let Some(v) = header_violation(&r)
            .or_else(|| dictionary::validate(&r.message.msg_type, &r.message.body).err())
        {
            self.state.next_inbound_seq += 1;
            let msg_type = r.message.msg_type.as_str();
            if v.reason == R::InvalidMsgType
                && dictionary::UNSUPPORTED_MSG_TYPES.contains(&msg_type)
            {
                self.business_reject(now, seq, msg_type, 3, "unsupported message type");
            } else {
                self.reject(now, seq, msg_type, &v);
            }
            return;
        }
        let msg_type = r.message.msg_type.clone();
        if msg_type != "4" {
            self.state.next_inbound_seq += 1;
        }
        match msg_type.as_str() {
            "0" => {}
            "1" => {
                let id = r.message.get(112).unwrap_or_default().to_string();
                self.send_admin(now, Message::new("0").with(112, id));
            }
            "2" => self.on_resend_request(now, &r, seq),
            "4" => self.on_gap_fill(now, &r, seq),
            "5" => self.on_logout(now, &r),
            "A" => {
                let text = "Logon received on a live session".to_string();
                self.logout_and_disconnect(now, &text, DisconnectReason::Protocol(text.clone()));
            }
            _ => self.actions.push_back(Action::Deliver(Inbound {
                seq,
                poss_dup: r.header.poss_dup,
                poss_resend: r.header.poss_resend,
                sending_time: r.header.sending_time.unwrap_or(now),
                message: r.message,
            })),
        }
    }

    fn on_gap_fill(&mut self, now: Timestamp, r: &Received, seq: u64) {
        let new_seq = r
            .message
            .get(36)
            .and_then(crate::message::parse_seq_num)
            .unwrap_or(0);
        if new_seq <= seq {
            self.state.next_inbound_seq += 1;
            let v = Violation::new(
                R::ValueIsIncorrect,
                Some(36),
                format!("NewSeqNo {new_seq} does not advance past {seq}"),
            );
            self.reject(now, seq, "4", &v);
            return;
        }
        self.state.next_inbound_seq = new_seq;
    }

    fn on_sequence_reset_mode(&mut self, now: Timestamp, r: &Received, seq: u64) {
        if !self.config.accept_sequence_reset_from_peer {
            let v = Violation::new(
                R::ValueIsIncorrect,
                Some(123),
                "SequenceReset in Reset mode is not accepted from participants",
            );
            self.reject(now, seq, "4", &v);
            return;
        }
        let Some(new_seq) = r.message.get(36).and_then(crate::message::parse_seq_num) else {
            let v = Violation::new(
                R::RequiredTagMissing,
                Some(36),
                "NewSeqNo (36) missing or invalid",
            );
            self.reject(now, seq, "4", &v);
            return;
        };
        if new_seq < self.state.next_inbound_seq {
            let v = Violation::new(
                R::ValueIsIncorrect,
                Some(36),
                "SequenceReset may not lower the sequence number",
            );
            self.reject(now, seq, "4", &v);
            return;
        }
        self.state.next_inbound_seq = new_seq;
        self.drain_queue(now);
    }

    fn on_logout(&mut self, now: Timestamp, r: &Received) {
        let text = r.message.get(58).unwrap_or_default().to_string();
        if matches!(self.phase, Phase::LogoutSent { .. }) {
            self.disconnect(DisconnectReason::LogoutCompleted);
        } else {
            self.send_admin(now, Message::new("5"));
            self.disconnect(DisconnectReason::PeerLoggedOut(text));
        }
    }

    /// Answer a ResendRequest: replay stored business messages in the range with PossDupFlag=Y,
    /// gap-fill everything else. Sent in one batch, so there is never a resend "in progress".
    fn on_resend_request(&mut self, now: Timestamp, r: &Received, seq: u64) {
        let begin = r
            .message
            .get(7)
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0);
        let end = r
            .message
            .get(16)
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0);
        if begin == 0 || (end != 0 && end < begin) {
            let v = Violation::new(
                R::ValueIsIncorrect,
                Some(if begin == 0 { 7 } else { 16 }),
                "invalid resend range",
            );
            self.reject(now, seq, "2", &v);
            return;
        }
        self.resend_requests.push((begin, end));
        self.replay(now, begin, end);
    }

    /// Replay `begin..=end` (`end` 0 = everything sent so far).
    fn replay(&mut self, now: Timestamp, begin: u64, end: u64) {
        let last = self.state.next_outbound_seq - 1;
        let end = if end == 0 || end > last { last } else { end };
        if begin > end {
            return;
        }
        let start = self.state.outbound.partition_point(|m| m.seq < begin);
        let messages: Vec<StoredMessage> = self
            .state
            .outbound
            .iter()
            .skip(start)
            .take_while(|m| m.seq <= end)
            .cloned()
            .collect();
        let mut gap_start = begin;
        for m in messages {
            if m.seq > gap_start {
                self.gap_fill(now, gap_start, m.seq);
            }
            let bytes = self.encode(
                m.seq,
                now,
                Some(m.sending_time),
                m.poss_resend,
                &m.msg_type,
                &m.body,
            );
            self.emit(now, bytes);
            self.stats.messages_resent += 1;
            gap_start = m.seq + 1;
        }
        if gap_start <= end {
            self.gap_fill(now, gap_start, end + 1);
        }
    }

    fn gap_fill(&mut self, now: Timestamp, seq: u64, new_seq: u64) {
        let fill = Message::new("4")
            .with(123, "Y")
            .with(36, new_seq.to_string());
        let bytes = self.encode_message(seq, now, Some(now), false, &fill);
        self.emit(now, bytes);
    }

    fn on_logon(&mut self, now: Timestamp, r: Received, seq: u64) {
        let h = &r.header;
        let acceptor = matches!(self.role, Role::Acceptor(_));
        let comp_ok = h.sender_comp_id.as_deref() == Some(self.config.remote_comp_id.as_str())
            && h.target_comp_id.as_deref() == Some(self.config.local_comp_id.as_str());
        if !comp_ok {
            if acceptor {
                self.disconnect(DisconnectReason::SilentDrop);
            } else {
                self.logout_and_disconnect(
                    now,
                    "CompID problem",
                    DisconnectReason::Protocol("CompID problem".into()),
                );
            }
            return;
        }
        if let Some(text) = self.logon_problem(now, &r, seq) {
            self.logout_and_disconnect(now, &text, DisconnectReason::LogonRejected(text.clone()));
            return;
        }
        let next_expected = r
            .message
            .get(789)
            .and_then(crate::message::parse_seq_num)
            .unwrap_or(1);
        if next_expected > self.state.next_outbound_seq {
            let text = format!(
                "NextExpectedMsgSeqNum {next_expected} is higher than our next MsgSeqNum {}",
                self.state.next_outbound_seq
            );
            self.logout_and_disconnect(now, &text, DisconnectReason::LogonRejected(text.clone()));
            return;
        }
        let mut password_changed = false;
        if let Role::Acceptor(verifier) = &mut self.role {
            let credentials = logon_credentials(&r);
            match verifier.verify(&credentials, now) {
                LogonDecision::Accept { new_password } => password_changed = new_password.is_some(),
                LogonDecision::Drop => {
                    self.disconnect(DisconnectReason::SilentDrop);
                    return;
                }
                LogonDecision::Reject {
                    session_status,
                    text,
                } => {
                    let logout = Message::new("5")
                        .with(1409, session_status.to_string())
                        .with(58, text.clone());
                    self.send_admin(now, logout);
                    self.disconnect(DisconnectReason::LogonRejected(text));
                    return;
                }
            }
        }
        self.logon = Some(LogonSeqNums {
            msg_seq_num: seq,
            next_expected,
            our_next_inbound: self.state.next_inbound_seq,
            our_next_outbound: self.state.next_outbound_seq,
        });
        if seq == self.state.next_inbound_seq {
            self.state.next_inbound_seq += 1;
        }
        // Replay covers what we had sent before this Logon exchange; our own Logon reply falls
        // in the range and is gap-filled with the other session messages.
        let next_outbound_before_reply = self.state.next_outbound_seq;
        self.phase = Phase::Active;
        if acceptor {
            self.heartbeat_interval_secs = r
                .message
                .get(108)
                .and_then(|v| v.parse().ok())
                .unwrap_or(self.config.heartbeat_interval_secs);
            let status = if password_changed {
                session_status::PASSWORD_CHANGED
            } else {
                session_status::ACTIVE
            };
            let reply = self.logon_message(Some(status));
            self.send_admin(now, reply);
        }
        self.actions.push_back(Action::Established);
        if next_expected < next_outbound_before_reply {
            self.replay(now, next_expected, 0);
        }
    }

    /// Why a Logon cannot be accepted, as the Logout text; `None` if it can.
    fn logon_problem(&self, now: Timestamp, r: &Received, seq: u64) -> Option<String> {
        let h = &r.header;
        if r.message.get(141) == Some("Y") {
            return Some(
                "ResetSeqNumFlag (141) is not supported; resets are agreed with the exchange"
                    .into(),
            );
        }
        if let Some(v) =
            header_violation(r).or_else(|| dictionary::validate("A", &r.message.body).err())
        {
            return Some(format!("invalid Logon: {}", v.text));
        }
        match h.sending_time {
            Some(t)
                if t.0.abs_diff(now.0)
                    <= self.config.sending_time_tolerance_secs * NANOS_PER_SEC => {}
            _ => return Some("SendingTime accuracy problem".into()),
        }
        if seq < self.state.next_inbound_seq {
            return Some(format!(
                "MsgSeqNum too low, expecting {} but received {seq}",
                self.state.next_inbound_seq
            ));
        }
        let hb: u64 = r.message.get(108).and_then(|v| v.parse().ok()).unwrap_or(0);
        if matches!(self.role, Role::Acceptor(_))
            && !(self.config.heartbeat_interval_min_secs..=self.config.heartbeat_interval_max_secs)
                .contains(&hb)
        {
            return Some(format!("HeartBtInt {hb} out of range"));
        }
        None
    }

    fn logon_message(&self, session_status: Option<u32>) -> Message {
        let mut logon = Message::new("A")
            .with(98, "0")
            .with(108, self.heartbeat_interval_secs.to_string())
            .with(789, self.state.next_inbound_seq.to_string());
        if let Some(status) = session_status {
            logon.push(1409, status.to_string());
            logon.push(1137, DEFAULT_APPL_VER_ID);
        }
        logon
    }

    /// Send a session-level Reject (35=3) for the received message `ref_seq`; for the gateway's
    /// use when an application parser answers [`crate::app::MappingError::Reject`].
    pub fn reject(&mut self, now: Timestamp, ref_seq: u64, ref_msg_type: &str, v: &Violation) {
        let reject = Message::new("3")
            .with(45, ref_seq.to_string())
            .with_opt(371, v.ref_tag_id.map(|t| t.to_string()))
            .with(372, ref_msg_type)
            .with(373, v.reason.code().to_string())
            .with(58, v.text.clone());
        self.send_admin(now, reject);
        self.stats.rejects_sent += 1;
    }

    /// A BusinessMessageReject generated by the session layer (unsupported message type).
    fn business_reject(
        &mut self,
        now: Timestamp,
        ref_seq: u64,
        ref_msg_type: &str,
        reason: u32,
        text: &str,
    ) {
        let bmr = Message::new("j")
            .with(45, ref_seq.to_string())
            .with(372, ref_msg_type)
            .with(380, reason.to_string())
            .with(58, text);
        // Validated by construction; it is a business message, so it is stored for resend.
        let _ = self.send(now, bmr);
        self.stats.business_rejects_sent += 1;
    }

    fn logout_and_disconnect(&mut self, now: Timestamp, text: &str, reason: DisconnectReason) {
        self.send_admin(now, Message::new("5").with(58, text));
        self.disconnect(reason);
    }

    fn disconnect(&mut self, reason: DisconnectReason) {
        if self.phase == Phase::Closed {
            return;
        }
        self.phase = Phase::Closed;
        self.queued.clear();
        self.actions.push_back(Action::Disconnect { reason });
    }

    /// Send a session message: consumes a sequence number, is never stored (resends gap-fill it).
    fn send_admin(&mut self, now: Timestamp, message: Message) {
        debug_assert!(
            message.is_admin(),
            "Invariant: send_admin sends session messages only"
        );
        let seq = self.state.next_outbound_seq;
        self.state.next_outbound_seq += 1;
        let bytes = self.encode_message(seq, now, None, false, &message);
        self.emit(now, bytes);
    }

    fn emit(&mut self, now: Timestamp, bytes: Vec<u8>) {
        self.last_sent = now;
        self.actions.push_back(Action::Send(bytes));
    }

    fn encode_message(
        &self,
        seq: u64,
        now: Timestamp,
        orig_sending_time: Option<Timestamp>,
        poss_resend: bool,
        message: &Message,
    ) -> Vec<u8> {
        let body = codec::encode_body(&message.body);
        self.encode(
            seq,
            now,
            orig_sending_time,
            poss_resend,
            &message.msg_type,
            &body,
        )
    }

    /// The frame: the standard header, then `body` (wire form) as it is.
    fn encode(
        &self,
        seq: u64,
        now: Timestamp,
        orig_sending_time: Option<Timestamp>,
        poss_resend: bool,
        msg_type: &str,
        body: &[u8],
    ) -> Vec<u8> {
        let precision = self.config.time_precision;
        let mut seq_buf = [0u8; 20];
        let seq = codec::decimal(seq, &mut seq_buf);
        let mut time_buf = [0u8; UTC_TIMESTAMP_MAX_LEN];
        let time_len = write_utc_timestamp(now, precision, &mut time_buf);
        let sending_time = &time_buf[..time_len];
        let mut orig_buf = [0u8; UTC_TIMESTAMP_MAX_LEN];
        let orig = orig_sending_time
            .map(|t| write_utc_timestamp(t, precision, &mut orig_buf))
            .map(|n| &orig_buf[..n]);
        let mut header: [(u32, &[u8]); 8] = [(0, &[]); 8];
        let mut n = 0;
        macro_rules! put {
            ($tag:expr, $v:expr) => {{
                header[n] = ($tag, $v);
                n += 1;
            }};
        }
        put!(35, msg_type.as_bytes());
        put!(49, self.config.local_comp_id.as_bytes());
        put!(56, self.config.remote_comp_id.as_bytes());
        put!(34, seq);
        if orig.is_some() {
            put!(43, b"Y");
        }
        if poss_resend {
            put!(97, b"Y");
        }
        put!(52, sending_time);
        if let Some(o) = orig {
            put!(122, o);
        }
        codec::encode_with_body(BEGIN_STRING, &header[..n], body)
    }
}

/// Header anomalies found while splitting the frame.
fn header_violation(r: &Received) -> Option<Violation> {
    if let Some(tag) = r.header_duplicate {
        return Some(Violation::new(
            R::TagAppearsMoreThanOnce,
            Some(tag),
            format!("tag {tag} appears more than once"),
        ));
    }
    r.header_out_of_order.map(|tag| {
        Violation::new(
            R::TagSpecifiedOutOfRequiredOrder,
            Some(tag),
            format!("header tag {tag} after body fields"),
        )
    })
}

fn logon_credentials(r: &Received) -> LogonCredentials {
    let get = |tag| r.message.get(tag).map(str::to_string);
    LogonCredentials {
        sender_comp_id: r
            .header
            .sender_comp_id
            .as_deref()
            .unwrap_or_default()
            .to_string(),
        encrypted_password_method: get(1400),
        encrypted_password: get(1402),
        encrypted_new_password: get(1404),
        password: get(554),
        new_password: get(925),
    }
}

/// SenderCompID and TargetCompID of the first complete frame in `bytes`, if it is a Logon: lets
/// the runtime pick the session state before creating the [`Session`]. `None` until a whole
/// frame has arrived or if it is not a Logon.
pub fn identify_logon(bytes: &[u8]) -> Option<(String, String)> {
    let mut splitter = FrameSplitter::new();
    splitter.push(bytes);
    while let Some(frame) = splitter.next_frame() {
        let Ok(frame) = frame else { continue };
        let r = read_frame(&frame.bytes).ok()?;
        if r.header.msg_type != "A" {
            return None;
        }
        return Some((
            r.header.sender_comp_id?.into_string(),
            r.header.target_comp_id?.into_string(),
        ));
    }
    None
}
