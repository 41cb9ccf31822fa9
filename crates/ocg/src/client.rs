//! A participant's side of OCG-C, sans-IO: the lookup ladder, the reconnect ladder, logon with
//! the encrypted password, logon-driven replay in both directions, heartbeats and test
//! requests, and de-duplication of Execution Reports by Execution ID.
//!
//! The runtime opens the connections the client asks for ([`ClientAction::Connect`]), reports
//! the outcome (`handle_connected` / `handle_connect_failed` / `handle_closed`), feeds received
//! bytes, writes [`ClientAction::Send`] bytes, and calls `handle_timeout` at `poll_timeout`.
//! The client has one connection at a time.

use std::collections::{BTreeSet, VecDeque};
use std::net::SocketAddr;

use rand::SeedableRng;
use rand_chacha::ChaCha20Rng;
use rsa::RsaPublicKey;
use serde::{Deserialize, Serialize};
use twinsite_core::time::NANOS_PER_SEC;
use twinsite_core::{CompId, Timestamp};

use crate::enums::*;
use crate::error::EncodeError;
use crate::frame::{self, FrameDecoder, Header, RawFrame};
use crate::messages::*;
use crate::password::{self, Padding};
use crate::session::{
    InboundSequencer, Liveness, LivenessEvent, OutboundLog, SeqVerdict, StoredMessage, TimerConfig,
};
use crate::wire::{FixedStr, VarStr};

#[derive(Debug, Clone)]
pub struct ClientConfig {
    pub comp_id: CompId,
    pub password: String,
    /// Sent with the next logon as a password change.
    pub new_password: Option<String>,
    pub public_key: RsaPublicKey,
    pub padding: Padding,
    /// The four Lookup Service endpoints, in the order HKEX gives them: primary-site primary,
    /// primary-site mirror, backup-site primary, backup-site mirror.
    pub lookup_endpoints: Vec<SocketAddr>,
    pub lookup_backoff_ns: u64,
    /// How long to wait for a Lookup Response before treating the attempt as failed.
    pub lookup_response_timeout_ns: u64,
    pub reconnect_wait_ns: u64,
    pub logon_reply_timeout_ns: u64,
    pub logon_retry_wait_ns: u64,
    pub logout_reply_timeout_ns: u64,
    pub timers: TimerConfig,
    pub retained_outbound_max: usize,
    /// Seed for the RSA padding randomness (deterministic tests and drills).
    pub rng_seed: u64,
}

impl ClientConfig {
    /// Reference defaults (§1.7, §3.1) for the timers.
    pub fn new(
        comp_id: CompId,
        password: &str,
        public_key: RsaPublicKey,
        lookup_endpoints: Vec<SocketAddr>,
    ) -> Self {
        ClientConfig {
            comp_id,
            password: password.to_owned(),
            new_password: None,
            public_key,
            padding: Padding::Pkcs1v15,
            lookup_endpoints,
            lookup_backoff_ns: twinsite_core::limits::OCG_LOOKUP_BACKOFF_SECS * NANOS_PER_SEC,
            lookup_response_timeout_ns: 10 * NANOS_PER_SEC,
            reconnect_wait_ns: twinsite_core::limits::OCG_RECONNECT_WAIT_SECS * NANOS_PER_SEC,
            logon_reply_timeout_ns: 60 * NANOS_PER_SEC,
            logon_retry_wait_ns: 60 * NANOS_PER_SEC,
            logout_reply_timeout_ns: 60 * NANOS_PER_SEC,
            timers: TimerConfig::default(),
            retained_outbound_max: 1_000_000,
            rng_seed: 0,
        }
    }
}

/// The participant's durable session state: survives reconnects (and the participant's own
/// restarts, if the runtime saves it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClientState {
    pub in_next: u32,
    pub out_next: u32,
    pub outbound: OutboundLog,
    /// Execution IDs already delivered today.
    pub exec_ids_seen: BTreeSet<String>,
    pub duplicates_dropped: u64,
}

impl Default for ClientState {
    fn default() -> Self {
        ClientState {
            in_next: 1,
            out_next: 1,
            outbound: OutboundLog::default(),
            exec_ids_seen: BTreeSet::new(),
            duplicates_dropped: 0,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnectPurpose {
    Lookup,
    Trading,
}

/// Why the client stopped trying.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StopReason {
    LogonRejected(Option<SessionStatus>),
    /// OCG-C expects a sequence number the client never sent: manual intervention.
    NextExpectedTooHigh {
        next_expected: u32,
        next_to_send: u32,
    },
    LoggedOut,
}

// Deliver carries a whole message; boxing it would cost an allocation per report for nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientAction {
    /// Open a TCP connection (closing any previous one first).
    Connect {
        endpoint: SocketAddr,
        purpose: ConnectPurpose,
    },
    Send(Vec<u8>),
    /// Close the current connection.
    Close,
    /// An application message from the exchange, in sequence and not a duplicate.
    Deliver {
        seq: u32,
        poss_dup: bool,
        poss_resend: bool,
        message: Message,
    },
    LoggedOn {
        status: SessionStatus,
        next_expected: u32,
    },
    /// The session ended; the client will reconnect by itself unless it stopped.
    SessionLost,
    Stopped(StopReason),
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClientError {
    #[error("{0} is not a business message a participant sends")]
    NotABusinessMessage(&'static str),
    #[error(transparent)]
    Encode(#[from] EncodeError),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Target {
    Primary,
    Secondary,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Idle,
    LookupWait { until: Timestamp, index: usize },
    LookupConnecting { index: usize },
    LookupAwait { index: usize, deadline: Timestamp },
    TradingWait { until: Timestamp, target: Target },
    TradingConnecting { target: Target },
    AwaitLogonReply { target: Target, deadline: Timestamp },
    Active { target: Target },
    LoggingOut { deadline: Timestamp },
    Stopped,
}

pub struct OcgClient {
    config: ClientConfig,
    state: ClientState,
    phase: Phase,
    gateways: Option<(SocketAddr, SocketAddr)>,
    decoder: FrameDecoder,
    inbound: InboundSequencer,
    liveness: Option<Liveness>,
    actions: VecDeque<ClientAction>,
    rng: ChaCha20Rng,
    header_comp_id: FixedStr<12>,
}

impl OcgClient {
    pub fn new(config: ClientConfig, state: ClientState) -> Self {
        assert_eq!(
            config.lookup_endpoints.len(),
            twinsite_core::limits::OCG_LOOKUP_ENDPOINTS,
            "Condition failed: four lookup endpoints"
        );
        let rng = ChaCha20Rng::seed_from_u64(config.rng_seed);
        let header_comp_id = FixedStr::new(config.comp_id.as_str());
        OcgClient {
            config,
            state,
            phase: Phase::Idle,
            gateways: None,
            decoder: FrameDecoder::default(),
            inbound: InboundSequencer::default(),
            liveness: None,
            actions: VecDeque::new(),
            rng,
            header_comp_id,
        }
    }

    pub fn state(&self) -> &ClientState {
        &self.state
    }

    pub fn is_logged_on(&self) -> bool {
        matches!(self.phase, Phase::Active { .. })
    }

    /// Begin with the first Lookup Service endpoint.
    pub fn start(&mut self, now: Timestamp) {
        self.connect_lookup(0, now);
    }

    pub fn poll_action(&mut self) -> Option<ClientAction> {
        self.actions.pop_front()
    }

    pub fn poll_timeout(&self) -> Option<Timestamp> {
        let phase = match self.phase {
            Phase::LookupWait { until, .. } | Phase::TradingWait { until, .. } => Some(until),
            Phase::LookupAwait { deadline, .. }
            | Phase::AwaitLogonReply { deadline, .. }
            | Phase::LoggingOut { deadline } => Some(deadline),
            _ => None,
        };
        let live = match self.phase {
            Phase::Active { .. } | Phase::LoggingOut { .. } => {
                self.liveness.as_ref().map(Liveness::next_deadline)
            }
            _ => None,
        };
        [phase, live].into_iter().flatten().min()
    }

    /// The connection the client asked for is open.
    pub fn handle_connected(&mut self, now: Timestamp) {
        self.decoder = FrameDecoder::default();
        self.inbound = InboundSequencer::default();
        match self.phase {
            Phase::LookupConnecting { index } => {
                let req = LookupRequest {
                    type_of_service: LOOKUP_SERVICE_ORDER_INPUT,
                    protocol_type: LOOKUP_PROTOCOL_BINARY,
                };
                // Lookup messages always carry sequence number 1 and leave the session alone.
                let bytes = frame::encode(1, false, false, &self.header_comp_id, &req.into())
                    .expect("fits");
                self.actions.push_back(ClientAction::Send(bytes));
                let deadline = now.plus_nanos(self.config.lookup_response_timeout_ns);
                self.phase = Phase::LookupAwait { index, deadline };
            }
            Phase::TradingConnecting { target } => self.send_logon(target, now),
            _ => {}
        }
    }

    /// The connection attempt failed.
    pub fn handle_connect_failed(&mut self, now: Timestamp) {
        match self.phase {
            Phase::LookupConnecting { index } => self.lookup_failed(index, now),
            Phase::TradingConnecting { target } => self.trading_failed(target, now),
            _ => {}
        }
    }

    /// The current connection closed or broke.
    pub fn handle_closed(&mut self, now: Timestamp) {
        match self.phase {
            Phase::LookupAwait { index, .. } => self.lookup_failed(index, now),
            Phase::AwaitLogonReply { target, .. } => {
                self.state.out_next -= 1; // the Logon was not taken
                self.trading_failed(target, now)
            }
            Phase::Active { .. } => self.session_lost(now),
            Phase::LoggingOut { .. } => self.stop(StopReason::LoggedOut),
            _ => {}
        }
    }

    pub fn handle_bytes(&mut self, bytes: &[u8], now: Timestamp) {
        self.decoder.feed(bytes);
        loop {
            match self.decoder.next_frame() {
                Ok(Some(f)) => self.on_frame(f, now),
                Ok(None) => return,
                Err(_) => {
                    // A frame the client cannot trust: drop the connection (reference §1.3).
                    self.actions.push_back(ClientAction::Close);
                    self.handle_closed(now);
                    return;
                }
            }
            if matches!(
                self.phase,
                Phase::Idle | Phase::Stopped | Phase::LookupWait { .. } | Phase::TradingWait { .. }
            ) {
                return;
            }
        }
    }

    pub fn handle_timeout(&mut self, now: Timestamp) {
        match self.phase {
            Phase::LookupWait { until, index } if now >= until => self.connect_lookup(index, now),
            Phase::LookupAwait { index, deadline } if now >= deadline => {
                self.actions.push_back(ClientAction::Close);
                self.lookup_failed(index, now);
            }
            Phase::TradingWait { until, target } if now >= until => self.connect_trading(target),
            Phase::AwaitLogonReply { target, deadline } if now >= deadline => {
                // Reference §1.7: no reply in 60 s, retry after another 60 s.
                self.actions.push_back(ClientAction::Close);
                self.state.out_next -= 1;
                let until = now.plus_nanos(self.config.logon_retry_wait_ns);
                self.phase = Phase::TradingWait { until, target };
            }
            Phase::LoggingOut { deadline } if now >= deadline => {
                self.actions.push_back(ClientAction::Close);
                self.stop(StopReason::LoggedOut);
            }
            Phase::Active { .. } => self.liveness_timeout(now),
            _ => {}
        }
    }

    /// Send a business message. It takes the next sequence number and is kept for replay; while
    /// disconnected it is sent by the next logon's replay. Returns its sequence number.
    pub fn send(&mut self, msg: Message, now: Timestamp) -> Result<u32, ClientError> {
        if !is_client_business_type(msg.msg_type()) {
            return Err(ClientError::NotABusinessMessage(msg.name()));
        }
        let seq = self.state.out_next;
        let bytes = frame::encode(seq, false, false, &self.header_comp_id, &msg)?;
        self.state.out_next += 1;
        let stored = StoredMessage {
            seq,
            msg_type: msg.msg_type(),
            frame: bytes.clone(),
            poss_resend: false,
        };
        self.state
            .outbound
            .push(stored, self.config.retained_outbound_max);
        if self.is_logged_on() {
            self.transmit(bytes, now);
        }
        Ok(seq)
    }

    /// Log out in good order; the connection closes on the reply or after the timeout.
    pub fn logout(&mut self, now: Timestamp) {
        if self.is_logged_on() {
            self.send_admin(
                Message::Logout(Logout {
                    logout_text: None,
                    session_status: None,
                }),
                now,
            );
            self.phase = Phase::LoggingOut {
                deadline: now.plus_nanos(self.config.logout_reply_timeout_ns),
            };
        }
    }

    fn connect_lookup(&mut self, index: usize, _now: Timestamp) {
        let endpoint = self.config.lookup_endpoints[index];
        self.phase = Phase::LookupConnecting { index };
        self.actions.push_back(ClientAction::Connect {
            endpoint,
            purpose: ConnectPurpose::Lookup,
        });
    }

    fn lookup_failed(&mut self, index: usize, now: Timestamp) {
        // Reference §3.1: strictly in order, cycling, 5 s after any failure or reject.
        let next = (index + 1) % self.config.lookup_endpoints.len();
        self.phase = Phase::LookupWait {
            until: now.plus_nanos(self.config.lookup_backoff_ns),
            index: next,
        };
    }

    fn connect_trading(&mut self, target: Target) {
        let Some((primary, secondary)) = self.gateways else {
            self.phase = Phase::LookupConnecting { index: 0 };
            self.actions.push_back(ClientAction::Connect {
                endpoint: self.config.lookup_endpoints[0],
                purpose: ConnectPurpose::Lookup,
            });
            return;
        };
        let endpoint = if target == Target::Primary {
            primary
        } else {
            secondary
        };
        self.phase = Phase::TradingConnecting { target };
        self.actions.push_back(ClientAction::Connect {
            endpoint,
            purpose: ConnectPurpose::Trading,
        });
    }

    /// Reference §3.2: primary, then secondary, then the Lookup Service again.
    fn trading_failed(&mut self, target: Target, now: Timestamp) {
        self.liveness = None;
        match target {
            Target::Primary => {
                let until = now.plus_nanos(self.config.reconnect_wait_ns);
                self.phase = Phase::TradingWait {
                    until,
                    target: Target::Secondary,
                };
            }
            Target::Secondary => {
                self.gateways = None;
                let until = now.plus_nanos(self.config.lookup_backoff_ns);
                self.phase = Phase::LookupWait { until, index: 0 };
            }
        }
    }

    fn session_lost(&mut self, now: Timestamp) {
        self.liveness = None;
        self.actions.push_back(ClientAction::SessionLost);
        // After a drop: wait 10 s, then the same primary first.
        let until = now.plus_nanos(self.config.reconnect_wait_ns);
        self.phase = Phase::TradingWait {
            until,
            target: Target::Primary,
        };
    }

    fn stop(&mut self, reason: StopReason) {
        self.liveness = None;
        self.phase = Phase::Stopped;
        self.actions.push_back(ClientAction::Stopped(reason));
    }

    fn send_logon(&mut self, target: Target, now: Timestamp) {
        let c = &self.config;
        let enc = |pw: &str, rng: &mut ChaCha20Rng| {
            password::encrypt_password(&c.public_key, c.padding, now, pw, rng)
                .ok()
                .and_then(|s| FixedStr::new_checked(&s).ok())
        };
        let logon = Logon {
            password: enc(&c.password, &mut self.rng),
            new_password: c
                .new_password
                .as_deref()
                .and_then(|p| enc(p, &mut self.rng)),
            next_expected_sequence: self.state.in_next,
            session_status: None,
            text: None,
            test_message_indicator: None,
        };
        let seq = self.state.out_next;
        self.state.out_next += 1;
        let bytes =
            frame::encode(seq, false, false, &self.header_comp_id, &logon.into()).expect("fits");
        self.actions.push_back(ClientAction::Send(bytes));
        let deadline = now.plus_nanos(self.config.logon_reply_timeout_ns);
        self.phase = Phase::AwaitLogonReply { target, deadline };
    }

    fn on_frame(&mut self, f: RawFrame, now: Timestamp) {
        match self.phase {
            Phase::LookupAwait { index, .. } => self.on_lookup_response(index, f, now),
            Phase::AwaitLogonReply { target, .. } => self.on_logon_reply(target, f, now),
            Phase::Active { .. } | Phase::LoggingOut { .. } => self.on_session_frame(f, now),
            _ => {}
        }
    }

    fn on_lookup_response(&mut self, index: usize, f: RawFrame, now: Timestamp) {
        // The client closes the short-lived lookup connection itself.
        self.actions.push_back(ClientAction::Close);
        let gateways = match f.message() {
            Ok(Message::LookupResponse(r)) if r.status == LookupStatus::Accepted => {
                let addr = |ip: &Option<FixedStr<16>>, port: Option<u16>| -> Option<SocketAddr> {
                    Some(SocketAddr::new(ip.as_ref()?.as_str().parse().ok()?, port?))
                };
                addr(&r.primary_ip, r.primary_port).zip(addr(&r.secondary_ip, r.secondary_port))
            }
            _ => None,
        };
        match gateways {
            Some(g) => {
                self.gateways = Some(g);
                self.connect_trading(Target::Primary);
            }
            None => self.lookup_failed(index, now),
        }
    }

    fn on_logon_reply(&mut self, target: Target, f: RawFrame, now: Timestamp) {
        match f.message() {
            Ok(Message::Logon(reply)) => self.logon_accepted(target, &f, reply, now),
            Ok(Message::Logout(l)) => {
                // A failed logon does not consume the Logon's number at OCG-C.
                self.state.out_next -= 1;
                self.actions.push_back(ClientAction::Close);
                match l.session_status {
                    Some(SessionStatus::LogonsNotAllowed) | None => {
                        let until = now.plus_nanos(self.config.logon_retry_wait_ns);
                        self.phase = Phase::TradingWait { until, target };
                    }
                    status => self.stop(StopReason::LogonRejected(status)),
                }
            }
            _ => {
                self.actions.push_back(ClientAction::Close);
                self.handle_closed(now);
            }
        }
    }

    fn logon_accepted(&mut self, target: Target, f: &RawFrame, reply: Logon, now: Timestamp) {
        let seq = f.header.seq;
        let next_to_send = self.state.out_next;
        let n = reply.next_expected_sequence;
        if n > next_to_send {
            self.phase = Phase::Active { target };
            self.send_admin(
                Message::Logout(Logout {
                    logout_text: Some(VarStr::truncated("next expected sequence too high")),
                    session_status: None,
                }),
                now,
            );
            self.actions.push_back(ClientAction::Close);
            self.stop(StopReason::NextExpectedTooHigh {
                next_expected: n,
                next_to_send,
            });
            return;
        }
        if seq == self.state.in_next {
            self.state.in_next = seq + 1;
        } else if seq > self.state.in_next {
            // OCG-C replays in_next..seq-1 and gap-fills over its Logon; no Resend Request.
            self.inbound.expect_replay_through(seq);
        }
        let mut liveness = Liveness::new(self.config.timers, now);
        liveness.on_received(now);
        self.liveness = Some(liveness);
        self.phase = Phase::Active { target };
        self.actions.push_back(ClientAction::LoggedOn {
            status: reply.session_status.unwrap_or(SessionStatus::Active),
            next_expected: n,
        });
        if n < next_to_send {
            // Replay n..logon-1 and gap-fill over our Logon's own number.
            self.replay(n.max(1), next_to_send - 1, now);
        }
    }

    fn on_session_frame(&mut self, f: RawFrame, now: Timestamp) {
        if let Some(l) = self.liveness.as_mut() {
            l.on_received(now);
        }
        let verdict = self.inbound.classify(self.state.in_next, &f);
        match verdict {
            SeqVerdict::Process => self.process(f, now),
            SeqVerdict::Duplicate | SeqVerdict::Dropped | SeqVerdict::Queued => {}
            SeqVerdict::TooLow { .. } => {
                self.send_admin(
                    Message::Logout(Logout {
                        logout_text: Some(VarStr::truncated("sequence number lower than expected")),
                        session_status: None,
                    }),
                    now,
                );
                self.actions.push_back(ClientAction::Close);
                self.session_lost(now);
                return;
            }
            SeqVerdict::Gap { from, to } => {
                self.send_admin(
                    Message::ResendRequest(ResendRequest {
                        start_sequence: from,
                        end_sequence: to,
                    }),
                    now,
                );
            }
        }
        while matches!(self.phase, Phase::Active { .. } | Phase::LoggingOut { .. }) {
            if let Some(next) = self.inbound.take_ready(self.state.in_next) {
                self.process(next, now);
                continue;
            }
            if let Some((from, to)) = self.inbound.next_gap(self.state.in_next) {
                self.send_admin(
                    Message::ResendRequest(ResendRequest {
                        start_sequence: from,
                        end_sequence: to,
                    }),
                    now,
                );
            }
            break;
        }
    }

    fn process(&mut self, f: RawFrame, now: Timestamp) {
        let h = f.header.clone();
        self.state.in_next = h.seq + 1;
        let Ok(msg) = f.message() else {
            // The exchange sent something this client cannot read; skip it (its number is used).
            return;
        };
        match msg {
            Message::Heartbeat(_) => {}
            Message::TestRequest(t) => self.send_admin(
                Message::Heartbeat(Heartbeat {
                    reference_test_request_id: Some(t.test_request_id),
                }),
                now,
            ),
            Message::ResendRequest(r) => {
                let last = self.state.out_next - 1;
                let end = if r.end_sequence == 0 {
                    last
                } else {
                    r.end_sequence.min(last)
                };
                self.replay(r.start_sequence.max(1), end, now);
            }
            Message::SequenceReset(r) => {
                // Gap Fill moves forward only; Reset mode (OCG-C only) sets the number outright.
                if r.gap_fill != Some(GapFill::GapFill) || r.new_sequence_number > h.seq {
                    self.state.in_next = r.new_sequence_number;
                }
            }
            Message::Logout(_) => {
                if !matches!(self.phase, Phase::LoggingOut { .. }) {
                    self.send_admin(
                        Message::Logout(Logout {
                            logout_text: None,
                            session_status: None,
                        }),
                        now,
                    );
                    self.actions.push_back(ClientAction::Close);
                    self.session_lost(now);
                } else {
                    self.actions.push_back(ClientAction::Close);
                    self.stop(StopReason::LoggedOut);
                }
            }
            Message::Logon(_) => {}
            Message::ExecutionReport(er) => {
                // Reference §1.8: dedupe by Execution ID (PossResend after an outage).
                if let Some(id) = &er.exec_id {
                    if !self.state.exec_ids_seen.insert(id.as_str().to_owned()) {
                        self.state.duplicates_dropped += 1;
                        return;
                    }
                }
                self.deliver(&h, Message::ExecutionReport(er));
            }
            other => self.deliver(&h, other),
        }
    }

    fn deliver(&mut self, h: &Header, message: Message) {
        self.actions.push_back(ClientAction::Deliver {
            seq: h.seq,
            poss_dup: h.poss_dup,
            poss_resend: h.poss_resend,
            message,
        });
    }

    fn replay(&mut self, from: u32, end: u32, now: Timestamp) {
        let mut next = from;
        let frames = self
            .state
            .outbound
            .replay(&mut next, end, usize::MAX, &self.header_comp_id);
        for f in frames {
            self.transmit(f, now);
        }
    }

    fn liveness_timeout(&mut self, now: Timestamp) {
        let Some(event) = self.liveness.as_mut().and_then(|l| l.poll(now)) else {
            return;
        };
        match event {
            LivenessEvent::SendHeartbeat => self.send_admin(
                Message::Heartbeat(Heartbeat {
                    reference_test_request_id: None,
                }),
                now,
            ),
            LivenessEvent::SendTestRequest(id) => self.send_admin(
                Message::TestRequest(TestRequest {
                    test_request_id: id,
                }),
                now,
            ),
            LivenessEvent::Dead => {
                self.send_admin(
                    Message::Logout(Logout {
                        logout_text: Some(VarStr::truncated("heartbeat timeout")),
                        session_status: None,
                    }),
                    now,
                );
                self.actions.push_back(ClientAction::Close);
                self.session_lost(now);
            }
        }
    }

    fn send_admin(&mut self, msg: Message, now: Timestamp) {
        let seq = self.state.out_next;
        self.state.out_next += 1;
        let bytes = frame::encode(seq, false, false, &self.header_comp_id, &msg).expect("fits");
        self.transmit(bytes, now);
    }

    fn transmit(&mut self, bytes: Vec<u8>, now: Timestamp) {
        if let Some(l) = self.liveness.as_mut() {
            l.on_sent(now);
        }
        self.actions.push_back(ClientAction::Send(bytes));
    }
}
