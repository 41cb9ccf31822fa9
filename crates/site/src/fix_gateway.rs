//! The FIX gateway: FIXT.1.1 acceptor sessions (crate `twinsite-fix`) for the Comp IDs
//! configured with `protocol = "fix"`, sans-IO like [`twinsite_ocg::OcgServer`].
//!
//! Application messages are mapped to the OCG-C binary messages the exchange core already
//! understands ([`to_ocg`]), so a FIX order becomes exactly the engine command a binary order
//! would (and the journal carries the same input). The core's replies (OCG-C Execution Reports,
//! Mass Cancel Reports, Business Message Rejects) are mapped back ([`reply_to_fix`]):
//! cancel and amend rejects become OrderCancelReject (35=9), a mass cancel that answers a
//! QuoteCancel becomes a QuoteStatusReport. Throttle (UserRequest) and party entitlement
//! requests are answered here, as the binary server answers its throttle request itself.
//!
//! Each Comp ID's durable [`SessionState`] (sequence numbers and the stored outbound messages a
//! resend may need) lives here between connections and is replicated by the site runtime, so a
//! FIX participant continues its session at the backup site.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::net::IpAddr;

use rsa::RsaPrivateKey;
use twinsite_core::{BrokerId, ClOrdId, CompId, OrderId, Qty, SecurityCode, Timestamp};
use twinsite_fix::app::entitlement::{PartyEntitlement, Throttle as FixThrottle};
use twinsite_fix::app::quote::quote_status;
use twinsite_fix::app::{
    self, CxlRejResponseTo, MassCancelScope, ParticipantMessage, Parties, PartyEntitlementsReport,
    QuoteStatusReport, UserResponse,
};
use twinsite_fix::codec::{BodyWriter, FrameSplitter};
use twinsite_fix::password::{session_status, LogonCredentials, LogonDecision, RsaLogonVerifier};
use twinsite_fix::session::{Action, StoredMessage};
use twinsite_fix::{LogonVerifier, Message as FixMessage, Session, SessionConfig, SessionState};
use twinsite_ocg::throttle::{Throttle, ThrottleConfig};
use twinsite_ocg::{self as ocg, ConnectionId, Decimal, FixedStr, VarStr};

use crate::exchange::transact_time;

/// The exchange's CompID on the FIX interface (TargetCompID of every participant).
pub const EXCHANGE_COMP_ID: &str = "HKEX";

/// Stored outbound messages kept per Comp ID for resends.
const RESEND_STORE_MAX: usize = 200_000;
/// A connection that has not sent a Logon within this time is closed.
const LOGON_WAIT_NS: u64 = 60_000_000_000;

/// A FIX Comp ID from the configuration.
#[derive(Debug, Clone)]
pub struct FixParticipant {
    pub comp_id: CompId,
    pub password: String,
    pub source_ips: Vec<IpAddr>,
    /// The first is the default submitting broker.
    pub brokers: Vec<BrokerId>,
    pub throttle_units: u32,
}

/// What the runtime must do.
#[derive(Debug, Clone, PartialEq)]
pub enum FixAction {
    Send {
        connection: ConnectionId,
        bytes: Vec<u8>,
    },
    /// Close the connection (after the bytes already sent).
    Disconnect {
        connection: ConnectionId,
        reason: String,
    },
    SessionUp {
        comp_id: CompId,
        connection: ConnectionId,
        /// The Logon's sequence numbers and ours before it was taken.
        sequences: Option<twinsite_ocg::LogonSequences>,
    },
    SessionDown {
        comp_id: CompId,
        connection: ConnectionId,
        cause: String,
    },
    /// The participant sent a ResendRequest (answered by the session layer).
    ResendRequest {
        comp_id: CompId,
        begin: u64,
        end: u64,
    },
    /// A business message for the exchange core, mapped to its OCG-C form.
    Deliver {
        comp_id: CompId,
        seq: u32,
        poss_resend: bool,
        message: Box<ocg::Message>,
    },
}

struct Slot {
    cfg: FixParticipant,
    /// `None` while a connection's session holds it.
    state: Option<SessionState>,
    conn: Option<ConnectionId>,
    throttle: Throttle,
    /// Mass cancel requests in flight: ClOrdID -> scope (the OCG-C report does not carry a
    /// market segment) or `None` for a QuoteCancel (answered with a QuoteStatusReport).
    mass_cancels: BTreeMap<String, Option<MassCancelScope>>,
}

struct Conn {
    ip: IpAddr,
    since: Timestamp,
    pending: Vec<u8>,
    comp: Option<CompId>,
    session: Option<Session>,
    up: bool,
}

/// The Logout text of a logon refused while logons are closed (Session Status 7).
pub const LOGONS_NOT_ALLOWED_TEXT: &str = "logons are not allowed now";

/// The FIX acceptor sessions of a site.
pub struct FixServer {
    keys: Vec<RsaPrivateKey>,
    password_tolerance_secs: u64,
    throttle: ThrottleConfig,
    slots: BTreeMap<CompId, Slot>,
    conns: BTreeMap<ConnectionId, Conn>,
    accepted: BTreeSet<ConnectionId>,
    actions: VecDeque<FixAction>,
    logons_allowed: bool,
}

impl FixServer {
    pub fn new(
        keys: Vec<RsaPrivateKey>,
        password_tolerance_secs: u64,
        throttle: ThrottleConfig,
    ) -> FixServer {
        FixServer {
            keys,
            password_tolerance_secs,
            throttle,
            slots: BTreeMap::new(),
            conns: BTreeMap::new(),
            accepted: BTreeSet::new(),
            actions: VecDeque::new(),
            logons_allowed: true,
        }
    }

    /// Register a Comp ID with its durable state (a fresh one at the start of the day, the
    /// replicated one at a newly active site).
    pub fn add_participant(&mut self, p: FixParticipant, state: Option<SessionState>) {
        let mut state =
            state.unwrap_or_else(|| SessionState::new(EXCHANGE_COMP_ID, p.comp_id.as_str()));
        // A replicated state whose stored messages run past its next outbound number (a newly
        // active site that opened before the old term's tail was applied, then applied it):
        // the participant may have seen those messages, so numbering continues after them
        // rather than the session layer refusing the state (which would stop the core).
        if let Some(last) = state.outbound.back().map(|m| m.seq) {
            if last >= state.next_outbound_seq {
                tracing::error!(
                    comp_id = %p.comp_id,
                    next_outbound = state.next_outbound_seq,
                    last_stored = last,
                    "FIX session state stored messages past its next outbound number; continuing after them"
                );
                state.next_outbound_seq = last + 1;
            }
        }
        self.slots.insert(
            p.comp_id,
            Slot {
                throttle: Throttle::new(self.throttle, p.throttle_units),
                cfg: p,
                state: Some(state),
                conn: None,
                mass_cancels: BTreeMap::new(),
            },
        );
    }

    /// Is this connection one of the FIX gateway's (accepted and not yet closed by the
    /// transport)?
    pub fn owns(&self, connection: ConnectionId) -> bool {
        self.accepted.contains(&connection)
    }

    pub fn is_fix(&self, comp: &CompId) -> bool {
        self.slots.contains_key(comp)
    }

    pub fn comp_ids(&self) -> impl Iterator<Item = &CompId> {
        self.slots.keys()
    }

    pub fn set_logons_allowed(&mut self, allowed: bool) {
        self.logons_allowed = allowed;
    }

    /// Service shutdown: every established session is logged out (reference §1.7).
    pub fn shutdown(&mut self, now: Timestamp) {
        let up: Vec<ConnectionId> = self
            .conns
            .iter()
            .filter(|(_, c)| c.up)
            .map(|(id, _)| *id)
            .collect();
        for id in up {
            if let Some(s) = self.conns.get_mut(&id).and_then(|c| c.session.as_mut()) {
                s.logout(now, "service shutdown");
            }
            self.pump(id, now);
        }
    }

    /// The durable session of a Comp ID, wherever it is held now.
    pub fn durable(&self, comp: &CompId) -> Option<&SessionState> {
        let slot = self.slots.get(comp)?;
        match (&slot.state, slot.conn) {
            (Some(s), _) => Some(s),
            (None, Some(c)) => self.conns.get(&c)?.session.as_ref().map(|s| s.state()),
            (None, None) => None,
        }
    }

    pub fn poll_action(&mut self) -> Option<FixAction> {
        self.actions.pop_front()
    }

    pub fn handle_accept(&mut self, connection: ConnectionId, ip: IpAddr, now: Timestamp) {
        self.accepted.insert(connection);
        self.conns.insert(
            connection,
            Conn {
                ip,
                since: now,
                pending: Vec::new(),
                comp: None,
                session: None,
                up: false,
            },
        );
    }

    pub fn handle_bytes(&mut self, connection: ConnectionId, bytes: &[u8], now: Timestamp) {
        let Some(c) = self.conns.get_mut(&connection) else {
            return;
        };
        if let Some(s) = c.session.as_mut() {
            s.handle_bytes(now, bytes);
            self.pump(connection, now);
            return;
        }
        c.pending.extend_from_slice(bytes);
        let Some((sender, target)) = twinsite_fix::identify_logon(&c.pending) else {
            // A complete first frame that is not a Logon, or junk that never frames: close.
            let mut splitter = FrameSplitter::new();
            splitter.push(&c.pending);
            if splitter.next_frame().is_some() || c.pending.len() > 64 * 1024 {
                self.close(connection, "first message is not a Logon".into(), now);
            }
            return;
        };
        let ip = c.ip;
        let comp = CompId::new(&sender).ok();
        let slot = comp.and_then(|k| self.slots.get_mut(&k));
        let refuse = match &slot {
            None => Some(format!("unknown SenderCompID {sender:?}")),
            Some(_) if target != EXCHANGE_COMP_ID => {
                Some(format!("TargetCompID {target:?} is not {EXCHANGE_COMP_ID}"))
            }
            Some(s) if !s.cfg.source_ips.contains(&ip) => {
                Some(format!("source IP {ip} not registered for {sender}"))
            }
            Some(s) if s.conn.is_some() => Some(format!("{sender} already has a live session")),
            Some(_) => None,
        };
        let (Some(slot), None) = (slot, refuse.clone()) else {
            // Silent drop, as the binary gateway does for these cases.
            self.close(connection, refuse.unwrap_or_default(), now);
            return;
        };
        let comp = slot.cfg.comp_id;
        let state = slot
            .state
            .take()
            .unwrap_or_else(|| SessionState::new(EXCHANGE_COMP_ID, comp.as_str()));
        slot.conn = Some(connection);
        let password = slot.cfg.password.clone();
        let mut rsa = RsaLogonVerifier::new(
            self.keys.clone(),
            self.password_tolerance_secs,
            move |c: &str| (c == comp.as_str()).then(|| password.clone()),
        );
        let allowed = self.logons_allowed;
        let verifier = move |cred: &LogonCredentials, now: Timestamp| {
            if !allowed {
                return LogonDecision::Reject {
                    session_status: session_status::LOGONS_NOT_ALLOWED,
                    text: LOGONS_NOT_ALLOWED_TEXT.into(),
                };
            }
            rsa.verify(cred, now)
        };
        let mut session = Session::acceptor(
            SessionConfig::acceptor(EXCHANGE_COMP_ID, comp.as_str()),
            state,
            Box::new(verifier),
            now,
        );
        let c = self.conns.get_mut(&connection).expect("present");
        session.handle_bytes(now, &std::mem::take(&mut c.pending));
        c.session = Some(session);
        c.comp = Some(comp);
        self.pump(connection, now);
    }

    /// The transport closed (or the runtime closed it after a `Disconnect`).
    pub fn handle_closed(&mut self, connection: ConnectionId, now: Timestamp) {
        self.accepted.remove(&connection);
        self.release(connection, "connection closed", now);
    }

    pub fn poll_timeout(&self) -> Option<Timestamp> {
        self.conns
            .values()
            .filter_map(|c| match &c.session {
                Some(s) => s.poll_timeout(),
                None => Some(c.since.plus_nanos(LOGON_WAIT_NS)),
            })
            .min()
    }

    pub fn handle_timeout(&mut self, now: Timestamp) {
        let ids: Vec<ConnectionId> = self.conns.keys().copied().collect();
        for id in ids {
            let Some(c) = self.conns.get_mut(&id) else {
                continue;
            };
            match c.session.as_mut() {
                Some(s) => {
                    if s.poll_timeout().is_some_and(|t| t <= now) {
                        s.handle_timeout(now);
                        self.pump(id, now);
                    }
                }
                None => {
                    if c.since.plus_nanos(LOGON_WAIT_NS) <= now {
                        self.close(id, "no Logon".into(), now);
                    }
                }
            }
        }
    }

    /// A reply of the exchange core for a FIX Comp ID: mapped, numbered, stored for resend,
    /// and sent if the session is up. Returns the MsgSeqNum.
    pub fn send_business(
        &mut self,
        comp: &CompId,
        reply: &ocg::Message,
        now: Timestamp,
    ) -> Result<u64, String> {
        let slot = self
            .slots
            .get_mut(comp)
            .ok_or_else(|| format!("{comp} is not a FIX Comp ID"))?;
        let msg = reply_to_fix(reply, now, &mut slot.mass_cancels)
            .ok_or_else(|| format!("{} has no FIX form", reply.name()))?;
        self.send_fix(comp, msg, now)
    }

    /// Number, store and (with a live session) send a reply whose body is already in wire
    /// form. Not checked against the dictionary at run time: every reply [`reply_to_fix`] makes
    /// is checked in the tests (and by `Session::send_body` in debug builds).
    fn send_fix(&mut self, comp: &CompId, msg: FixReply, now: Timestamp) -> Result<u64, String> {
        let slot = self.slots.get_mut(comp).expect("known comp");
        if let Some(state) = slot.state.as_mut() {
            // No connection: numbered and stored; the next logon replays it.
            let seq = state.next_outbound_seq;
            state.next_outbound_seq += 1;
            if state.outbound.len() >= RESEND_STORE_MAX {
                state.outbound.pop_front();
            }
            state.outbound.push_back(StoredMessage {
                seq,
                sending_time: now,
                poss_resend: false,
                msg_type: msg.msg_type.into(),
                body: msg.body,
            });
            return Ok(seq);
        }
        let conn = slot.conn.expect("state held by a connection");
        let s = self
            .conns
            .get_mut(&conn)
            .and_then(|c| c.session.as_mut())
            .expect("connection holds the session");
        let seq = s
            .send_body(now, msg.msg_type, msg.body)
            .map_err(|e| format!("{e:?}"))?;
        self.pump(conn, now);
        Ok(seq)
    }

    fn session(&mut self, conn: ConnectionId) -> Option<&mut Session> {
        self.conns.get_mut(&conn)?.session.as_mut()
    }

    fn pump(&mut self, conn: ConnectionId, now: Timestamp) {
        loop {
            let Some(c) = self.conns.get_mut(&conn) else {
                return;
            };
            let Some(comp) = c.comp else { return };
            if let Some(s) = c.session.as_mut() {
                for (begin, end) in s.take_resend_requests() {
                    self.actions.push_back(FixAction::ResendRequest {
                        comp_id: comp,
                        begin,
                        end,
                    });
                }
            }
            let Some(a) = c.session.as_mut().and_then(|s| s.poll_action()) else {
                return;
            };
            match a {
                Action::Send(bytes) => self.actions.push_back(FixAction::Send {
                    connection: conn,
                    bytes,
                }),
                Action::Established => {
                    c.up = true;
                    let n = |v: u64| u32::try_from(v).unwrap_or(u32::MAX);
                    let sequences = c
                        .session
                        .as_ref()
                        .and_then(|s| s.logon_seq_nums())
                        .map(|l| twinsite_ocg::LogonSequences {
                            logon_seq: n(l.msg_seq_num),
                            next_expected: n(l.next_expected),
                            exchange_in_next: n(l.our_next_inbound),
                            exchange_out_next: n(l.our_next_outbound),
                        });
                    self.actions.push_back(FixAction::SessionUp {
                        comp_id: comp,
                        connection: conn,
                        sequences,
                    });
                }
                Action::Deliver(inbound) => self.on_app(conn, comp, inbound, now),
                Action::Disconnect { reason } => {
                    self.close(conn, reason.to_string(), now);
                    return;
                }
            }
        }
    }

    /// Close from our side: the runtime writes what was queued, then closes.
    fn close(&mut self, conn: ConnectionId, reason: String, now: Timestamp) {
        if !self.conns.contains_key(&conn) {
            return;
        }
        self.release(conn, &reason, now);
        self.actions.push_back(FixAction::Disconnect {
            connection: conn,
            reason,
        });
    }

    fn release(&mut self, conn: ConnectionId, cause: &str, _now: Timestamp) {
        let Some(c) = self.conns.remove(&conn) else {
            return;
        };
        let (Some(comp), Some(mut session)) = (c.comp, c.session) else {
            return;
        };
        // Anything the session still wanted to write goes out before the close.
        while let Some(a) = session.poll_action() {
            if let Action::Send(bytes) = a {
                self.actions.push_back(FixAction::Send {
                    connection: conn,
                    bytes,
                });
            }
        }
        session.handle_disconnect();
        if let Some(slot) = self.slots.get_mut(&comp) {
            slot.state = Some(session.into_state());
            slot.conn = None;
        }
        if c.up {
            self.actions.push_back(FixAction::SessionDown {
                comp_id: comp,
                connection: conn,
                cause: cause.to_string(),
            });
        }
    }

    fn on_app(
        &mut self,
        conn: ConnectionId,
        comp: CompId,
        inbound: twinsite_fix::Inbound,
        now: Timestamp,
    ) {
        let msg_type = inbound.message.msg_type.clone();
        let slot = self.slots.get_mut(&comp).expect("known comp");
        if let Err(ms_left) = slot.throttle.admit(now) {
            let bmr = app::BusinessMessageReject::throttle(
                inbound.seq,
                &msg_type,
                inbound.message.get(11),
                ms_left,
            );
            if let Some(s) = self.session(conn) {
                let _ = s.send(now, bmr.to_message());
            }
            return;
        }
        let parsed = match ParticipantMessage::parse(&inbound.message) {
            Ok(p) => p,
            Err(e) => {
                if let Some(s) = self.session(conn) {
                    e.answer(s, now, inbound.seq, &msg_type);
                }
                return;
            }
        };
        let default_broker = slot.cfg.brokers[0];
        let answer = match &parsed {
            ParticipantMessage::UserRequest(r) => Some(
                UserResponse {
                    user_request_id: r.user_request_id.clone(),
                    username: r.username.clone(),
                    user_status: None,
                    text: None,
                    throttles: vec![FixThrottle {
                        action: 2,
                        throttle_type: 0,
                        messages: slot
                            .cfg
                            .throttle_units
                            .saturating_mul(self.throttle.msgs_per_unit),
                        interval: (self.throttle.window_ns / 1_000_000_000).max(1) as u32,
                        unit: 0,
                    }],
                }
                .to_message(),
            ),
            ParticipantMessage::PartyEntitlementsRequest(r) => Some(
                PartyEntitlementsReport {
                    entitlement_report_id: format!("{}-{}", comp, inbound.seq),
                    entitlement_request_id: Some(r.entitlement_request_id.clone()),
                    request_result: Some(0),
                    total_party_lists: Some(slot.cfg.brokers.len() as u32),
                    last_fragment: Some(true),
                    parties: slot
                        .cfg
                        .brokers
                        .iter()
                        .map(|b| PartyEntitlement {
                            broker_id: b.to_string(),
                            entitlements: Vec::new(),
                        })
                        .collect(),
                }
                .to_message(),
            ),
            _ => None,
        };
        if let Some(m) = answer {
            if let Some(s) = self.session(conn) {
                let _ = s.send(now, m);
            }
            return;
        }
        match &parsed {
            ParticipantMessage::OrderMassCancelRequest(r) => {
                slot.mass_cancels
                    .insert(r.cl_ord_id.as_str().to_string(), Some(r.scope));
            }
            ParticipantMessage::QuoteCancel(q) => {
                slot.mass_cancels.insert(q.quote_msg_id.clone(), None);
            }
            _ => {}
        }
        match to_ocg(&parsed, default_broker) {
            Ok(message) => self.actions.push_back(FixAction::Deliver {
                comp_id: comp,
                seq: u32::try_from(inbound.seq).unwrap_or(u32::MAX),
                poss_resend: inbound.poss_resend,
                message: Box::new(message),
            }),
            Err(text) => {
                let bmr = app::BusinessMessageReject {
                    ref_seq_num: Some(inbound.seq),
                    ref_msg_type: msg_type.to_string(),
                    business_reject_ref_id: inbound.message.get(11).map(str::to_string),
                    reason: app::business_reject_reason::OTHER,
                    text: Some(text),
                };
                if let Some(s) = self.session(conn) {
                    let _ = s.send(now, bmr.to_message());
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------- FIX -> OCG-C

fn fixed<const N: usize>(s: &str) -> Result<FixedStr<N>, String> {
    FixedStr::new_checked(s).map_err(|e| format!("{s:?}: {e}"))
}

fn text50(s: &Option<String>) -> Option<ocg::Text50> {
    s.as_deref().map(VarStr::truncated)
}

fn side(s: app::OrderSide) -> ocg::Side {
    match s {
        app::OrderSide::Buy => ocg::Side::Buy,
        app::OrderSide::Sell => ocg::Side::Sell,
        app::OrderSide::SellShort => ocg::Side::SellShort,
    }
}

fn ord_type(t: app::OrdType) -> ocg::OrdType {
    match t {
        app::OrdType::Market => ocg::OrdType::Market,
        app::OrdType::Limit => ocg::OrdType::Limit,
    }
}

fn tif(t: app::TimeInForce) -> ocg::TimeInForce {
    match t {
        app::TimeInForce::Day => ocg::TimeInForce::Day,
        app::TimeInForce::ImmediateOrCancel => ocg::TimeInForce::ImmediateOrCancel,
        app::TimeInForce::FillOrKill => ocg::TimeInForce::FillOrKill,
        app::TimeInForce::AtCrossing => ocg::TimeInForce::AtCrossing,
    }
}

/// A number's decimal text, written on the stack (no allocation on the order path).
fn number_text(n: u32, buf: &mut [u8; 20]) -> &str {
    // Decimal digits are ASCII.
    std::str::from_utf8(twinsite_fix::codec::decimal(u64::from(n), buf)).unwrap_or_default()
}

fn broker(p: &Parties, default: BrokerId) -> Result<ocg::Broker12, String> {
    fixed(number_text(
        p.submitting_broker.unwrap_or(default).0,
        &mut [0; 20],
    ))
}

fn location(p: &Parties) -> Result<Option<ocg::Location11>, String> {
    p.broker_location.as_deref().map(fixed).transpose()
}

fn sec(s: SecurityCode) -> ocg::Id21 {
    FixedStr::new(number_text(s.0, &mut [0; 20]))
}

fn mass_type(
    scope: MassCancelScope,
) -> (
    ocg::MassCancelRequestType,
    Option<ocg::Id21>,
    Option<FixedStr<20>>,
) {
    match scope {
        MassCancelScope::Security(s) => (ocg::MassCancelRequestType::Security, Some(sec(s)), None),
        MassCancelScope::All => (ocg::MassCancelRequestType::All, None, None),
        MassCancelScope::MarketSegment(g) => (
            ocg::MassCancelRequestType::MarketSegment,
            None,
            Some(FixedStr::new(g.code())),
        ),
    }
}

/// The OCG-C business message a FIX application message stands for (the exchange core maps
/// it to engine commands). `Err` is a text for a BusinessMessageReject.
pub fn to_ocg(m: &ParticipantMessage, default_broker: BrokerId) -> Result<ocg::Message, String> {
    Ok(match m {
        ParticipantMessage::NewOrderSingle(o) => {
            let t = &o.terms;
            ocg::Message::NewOrder(ocg::NewOrder {
                cl_ord_id: fixed(o.cl_ord_id.as_str())?,
                submitting_broker_id: broker(&t.parties, default_broker)?,
                security_id: sec(t.security),
                security_id_source: ocg::SECURITY_ID_SOURCE_EXCHANGE_SYMBOL,
                security_exchange: Some(FixedStr::new(ocg::SECURITY_EXCHANGE_XHKG)),
                broker_location_id: location(&t.parties)?,
                transact_time: transact_time(t.transact_time),
                side: side(t.side),
                ord_type: ord_type(t.ord_type),
                price: t.price.map(Decimal::from_price),
                order_qty: Decimal::from_qty(t.qty),
                time_in_force: Some(tif(t.time_in_force)),
                position_effect: t.position_close.then_some(ocg::PositionEffect::Close),
                order_restrictions: t.order_restrictions.as_deref().map(fixed).transpose()?,
                max_price_levels: t.max_price_levels.map(|v| v.min(255) as u8),
                order_capacity: t.order_capacity.map(|c| match c {
                    app::OrderCapacity::Agency => ocg::OrderCapacity::Agency,
                    app::OrderCapacity::Principal => ocg::OrderCapacity::Principal,
                }),
                text: text50(&t.text),
                execution_instructions: None,
                disclosure_instructions: 0,
                lot_type: t.lot_type.map(|l| match l {
                    app::LotType::OddLot => ocg::LotType::OddLot,
                    app::LotType::BoardLot => ocg::LotType::BoardLot,
                }),
                submitting_bcan: t.parties.bcan.as_deref().map(fixed).transpose()?,
            })
        }
        ParticipantMessage::OrderCancelReplaceRequest(a) => {
            let t = &a.terms;
            ocg::Message::AmendRequest(ocg::AmendRequest {
                cl_ord_id: Some(fixed(a.cl_ord_id.as_str())?),
                submitting_broker_id: Some(broker(&t.parties, default_broker)?),
                security_id: Some(sec(t.security)),
                security_id_source: Some(ocg::SECURITY_ID_SOURCE_EXCHANGE_SYMBOL),
                security_exchange: Some(FixedStr::new(ocg::SECURITY_EXCHANGE_XHKG)),
                broker_location_id: location(&t.parties)?,
                transact_time: Some(transact_time(t.transact_time)),
                side: Some(side(t.side)),
                orig_cl_ord_id: fixed(a.orig_cl_ord_id.as_str())?,
                order_id: a.order_id.map(|o| FixedStr::new(&o.to_string())),
                ord_type: ord_type(t.ord_type),
                price: t.price.map(Decimal::from_price),
                order_qty: Decimal::from_qty(t.qty),
                time_in_force: Some(tif(t.time_in_force)),
                position_effect: t.position_close.then_some(ocg::PositionEffect::Close),
                order_restrictions: t.order_restrictions.as_deref().map(fixed).transpose()?,
                max_price_levels: t.max_price_levels.map(|v| v.min(255) as u8),
                order_capacity: None,
                text: text50(&t.text),
                execution_instructions: None,
                disclosure_instructions: None,
            })
        }
        ParticipantMessage::OrderCancelRequest(c) => match c.parties.owning_broker {
            Some(owning) => ocg::Message::OboCancelRequest(ocg::OboCancelRequest {
                cl_ord_id: Some(fixed(c.cl_ord_id.as_str())?),
                submitting_broker_id: Some(broker(&c.parties, default_broker)?),
                security_id: Some(sec(c.security)),
                security_id_source: Some(ocg::SECURITY_ID_SOURCE_EXCHANGE_SYMBOL),
                security_exchange: None,
                broker_location_id: location(&c.parties)?,
                transact_time: Some(transact_time(c.transact_time)),
                side: Some(side(c.side)),
                orig_cl_ord_id: c.orig_cl_ord_id.map(|x| FixedStr::new(x.as_str())),
                order_id: FixedStr::new(
                    &c.order_id
                        .ok_or("OrderID (37) is required for an on-behalf-of cancel")?
                        .to_string(),
                ),
                owning_broker_id: fixed(&owning.to_string())?,
                text: text50(&c.text),
            }),
            None => ocg::Message::CancelRequest(ocg::CancelRequest {
                cl_ord_id: Some(fixed(c.cl_ord_id.as_str())?),
                submitting_broker_id: Some(broker(&c.parties, default_broker)?),
                security_id: Some(sec(c.security)),
                security_id_source: Some(ocg::SECURITY_ID_SOURCE_EXCHANGE_SYMBOL),
                security_exchange: None,
                broker_location_id: location(&c.parties)?,
                transact_time: Some(transact_time(c.transact_time)),
                side: Some(side(c.side)),
                orig_cl_ord_id: fixed(
                    c.orig_cl_ord_id
                        .ok_or("OrigClOrdID (41) is required")?
                        .as_str(),
                )?,
                order_id: c.order_id.map(|o| FixedStr::new(&o.to_string())),
                text: text50(&c.text),
            }),
        },
        ParticipantMessage::OrderMassCancelRequest(r) => {
            let (t, security_id, market_segment_id) = mass_type(r.scope);
            let cl_ord_id = Some(fixed(r.cl_ord_id.as_str())?);
            let submitting_broker_id = Some(broker(&r.parties, default_broker)?);
            let transact_time = Some(transact_time(r.transact_time));
            match r.parties.owning_broker {
                Some(owning) => ocg::Message::OboMassCancelRequest(ocg::OboMassCancelRequest {
                    cl_ord_id,
                    submitting_broker_id,
                    security_id,
                    security_id_source: None,
                    security_exchange: None,
                    broker_location_id: location(&r.parties)?,
                    transact_time,
                    side: r.side.map(side),
                    mass_cancel_request_type: t,
                    market_segment_id,
                    owning_broker_id: fixed(&owning.to_string())?,
                }),
                None => ocg::Message::MassCancelRequest(ocg::MassCancelRequest {
                    cl_ord_id,
                    submitting_broker_id,
                    security_id,
                    security_id_source: None,
                    security_exchange: None,
                    broker_location_id: location(&r.parties)?,
                    transact_time,
                    side: r.side.map(side),
                    mass_cancel_request_type: t,
                    market_segment_id,
                }),
            }
        }
        ParticipantMessage::Quote(q) => ocg::Message::Quote(ocg::Quote {
            submitting_broker_id: broker(&q.parties, default_broker)?,
            broker_location_id: location(&q.parties)?,
            security_id: sec(q.security),
            security_id_source: ocg::SECURITY_ID_SOURCE_EXCHANGE_SYMBOL,
            security_exchange: None,
            quote_bid_id: fixed(&q.bid_id)?,
            quote_offer_id: fixed(&q.offer_id)?,
            quote_type: q.quote_type.map(|v| v.min(255) as u8),
            side: q.side.map(side),
            bid_size: Decimal::from_qty(q.bid_size),
            offer_size: Decimal::from_qty(q.offer_size),
            bid_px: Decimal::from_price(q.bid_px),
            offer_px: Decimal::from_price(q.offer_px),
            transact_time: transact_time(q.transact_time),
            position_effect: q.position_close.then_some(ocg::PositionEffect::Close),
            order_restrictions: q.order_restrictions.as_deref().map(fixed).transpose()?,
            text: text50(&q.text),
            execution_instructions: None,
            submitting_bcan: fixed(q.parties.bcan.as_deref().unwrap_or("0"))?,
        }),
        ParticipantMessage::QuoteCancel(q) => ocg::Message::QuoteCancel(ocg::QuoteCancel {
            submitting_broker_id: Some(broker(&q.parties, default_broker)?),
            broker_location_id: location(&q.parties)?,
            security_id: q.securities.first().map(|s| sec(*s)),
            security_id_source: None,
            security_exchange: None,
            quote_msg_id: fixed(&q.quote_msg_id)?,
            quote_cancel_type: q.cancel_type.min(255) as u8,
        }),
        ParticipantMessage::UserRequest(_) | ParticipantMessage::PartyEntitlementsRequest(_) => {
            return Err("answered by the gateway".into())
        }
    })
}

// ---------------------------------------------------------------------------- OCG-C -> FIX

fn fix_side(s: Option<ocg::Side>) -> app::OrderSide {
    match s {
        Some(ocg::Side::Sell) => app::OrderSide::Sell,
        Some(ocg::Side::SellShort) => app::OrderSide::SellShort,
        _ => app::OrderSide::Buy,
    }
}

fn fix_status(s: Option<ocg::OrdStatus>) -> app::OrdStatus {
    use ocg::OrdStatus as O;
    match s {
        Some(O::New) | None => app::OrdStatus::New,
        Some(O::PartiallyFilled) => app::OrdStatus::PartiallyFilled,
        Some(O::Filled) => app::OrdStatus::Filled,
        Some(O::Cancelled) => app::OrdStatus::Cancelled,
        Some(O::PendingCancel) => app::OrdStatus::PendingCancel,
        Some(O::Rejected) => app::OrdStatus::Rejected,
        Some(O::PendingNew) => app::OrdStatus::PendingNew,
        Some(O::Expired) => app::OrdStatus::Expired,
        Some(O::PendingAmend) => app::OrdStatus::PendingReplace,
    }
}

fn cl(f: &Option<ocg::Id21>) -> Option<ClOrdId> {
    f.as_ref().and_then(|x| ClOrdId::new(x.as_str()).ok())
}

fn oid(f: &Option<ocg::Id21>) -> Option<OrderId> {
    f.as_ref()
        .and_then(|x| x.as_str().parse().ok())
        .map(OrderId)
}

fn bid(f: &Option<ocg::Broker12>) -> Option<BrokerId> {
    f.as_ref().and_then(|x| x.as_str().parse().ok())
}

fn qty(d: Option<Decimal>) -> Option<Qty> {
    d.and_then(|d| d.to_qty().ok())
}

fn reason(r: &Option<ocg::Reason75>) -> Option<String> {
    r.as_ref()
        .map(|r| r.as_str().to_string())
        .filter(|s| !s.is_empty())
}

/// A reply for a FIX session: its MsgType and body in wire form (what is sent and stored for
/// resend).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FixReply {
    pub msg_type: &'static str,
    pub body: Vec<u8>,
}

impl FixReply {
    fn of(m: FixMessage) -> Option<FixReply> {
        let msg_type = match m.msg_type.as_str() {
            "8" => "8",
            "9" => "9",
            "r" => "r",
            "j" => "j",
            "AI" => "AI",
            _ => return None,
        };
        Some(FixReply {
            msg_type,
            body: twinsite_fix::codec::encode_body(&m.body),
        })
    }

    /// The reply as fields (tests, inspection).
    pub fn message(&self) -> FixMessage {
        FixMessage {
            msg_type: self.msg_type.into(),
            body: twinsite_fix::codec::tokenize(&self.body).unwrap_or_default(),
        }
    }
}

/// The FIX message for an exchange-core reply (None for a type FIX does not carry).
/// `mass_cancels` holds the scopes of mass cancel requests in flight (see [`FixServer`]).
/// Execution Reports, the bulk of the traffic, are written straight into their body.
pub fn reply_to_fix(
    m: &ocg::Message,
    now: Timestamp,
    mass_cancels: &mut BTreeMap<String, Option<MassCancelScope>>,
) -> Option<FixReply> {
    reply_to_fix_message(m, now, mass_cancels)
}

fn reply_to_fix_message(
    m: &ocg::Message,
    now: Timestamp,
    mass_cancels: &mut BTreeMap<String, Option<MassCancelScope>>,
) -> Option<FixReply> {
    match m {
        ocg::Message::ExecutionReport(er) => {
            let exec_type = match er.exec_type {
                Some(ocg::ExecType::CancelReject) | Some(ocg::ExecType::AmendReject) => {
                    let amend = er.exec_type == Some(ocg::ExecType::AmendReject);
                    let r = app::OrderCancelReject {
                        order_id: oid(&er.order_id),
                        cl_ord_id: cl(&er.cl_ord_id)
                            .unwrap_or_else(|| ClOrdId::new("NONE").expect("valid")),
                        orig_cl_ord_id: cl(&er.orig_cl_ord_id),
                        ord_status: fix_status(er.ord_status),
                        response_to: if amend {
                            CxlRejResponseTo::Replace
                        } else {
                            CxlRejResponseTo::Cancel
                        },
                        reason: if amend {
                            er.amend_reject_code
                        } else {
                            er.cancel_reject_code
                        }
                        .map(u32::from),
                        text: reason(&er.reason),
                        transact_time: Some(now),
                    };
                    return FixReply::of(r.to_message());
                }
                Some(ocg::ExecType::New) | None => app::ExecType::New,
                Some(ocg::ExecType::Reject) => app::ExecType::Rejected,
                Some(ocg::ExecType::Expire) => app::ExecType::Expired,
                Some(ocg::ExecType::Trade) => app::ExecType::Trade,
                Some(ocg::ExecType::Cancel) => app::ExecType::Cancelled,
                Some(ocg::ExecType::Amend) => app::ExecType::Replaced,
                Some(ocg::ExecType::TradeCancel) => app::ExecType::TradeCancel,
                Some(ocg::ExecType::TriggeredBySystem) => app::ExecType::Triggered,
            };
            let security = er
                .security_id
                .as_ref()
                .and_then(|s| s.as_str().parse().ok())
                .unwrap_or(SecurityCode(0));
            let mut r = app::ExecutionReport::new(
                oid(&er.order_id).unwrap_or(OrderId(0)),
                er.exec_id.as_ref().map_or("0", |e| e.as_str()),
                exec_type,
                fix_status(er.ord_status),
                security,
                fix_side(er.side),
                qty(er.cum_qty).unwrap_or(Qty(0)),
                qty(er.leaves_qty).unwrap_or(Qty(0)),
            );
            r.cl_ord_id = cl(&er.cl_ord_id);
            r.orig_cl_ord_id = cl(&er.orig_cl_ord_id);
            r.parties = Parties {
                submitting_broker: bid(&er.submitting_broker_id),
                owning_broker: bid(&er.owning_broker_id),
                broker_location: None,
                bcan: None,
                counterparty_broker: bid(&er.counterparty_broker_id),
            };
            r.ord_type = er.ord_type.map(|t| match t {
                ocg::OrdType::Market => app::OrdType::Market,
                ocg::OrdType::Limit => app::OrdType::Limit,
            });
            r.price = er.price.and_then(|p| p.to_price().ok());
            r.qty = qty(er.order_qty);
            r.time_in_force = er.time_in_force.map(|t| match t {
                ocg::TimeInForce::Day => app::TimeInForce::Day,
                ocg::TimeInForce::ImmediateOrCancel => app::TimeInForce::ImmediateOrCancel,
                ocg::TimeInForce::FillOrKill => app::TimeInForce::FillOrKill,
                ocg::TimeInForce::AtCrossing => app::TimeInForce::AtCrossing,
            });
            r.last_qty = qty(er.last_qty);
            r.last_px = er.last_px.and_then(|p| p.to_price().ok());
            r.transact_time = Some(now);
            r.ord_rej_reason = er.order_reject_code.map(u32::from);
            r.exec_restatement_reason = er.exec_restatement_reason.map(u32::from);
            r.reject_text = reason(&er.reason);
            r.lot_type = er.lot_type.map(|l| match l {
                ocg::LotType::OddLot => app::LotType::OddLot,
                ocg::LotType::BoardLot => app::LotType::BoardLot,
            });
            r.trd_match_id = er.trade_match_id.as_ref().map(|t| t.as_str().to_string());
            r.aggressor = er
                .aggressor_indicator
                .map(|a| a == ocg::AggressorIndicator::Aggressor);
            let mut body = BodyWriter::with_capacity(256);
            r.write_body(&mut body);
            Some(FixReply {
                msg_type: "8",
                body: body.into_bytes(),
            })
        }
        ocg::Message::OrderMassCancelReport(r) => {
            let key = r
                .cl_ord_id
                .as_ref()
                .map(|c| c.as_str().to_string())
                .unwrap_or_default();
            let accepted = r.mass_cancel_response != ocg::MassCancelResponse::Rejected;
            let known = mass_cancels.remove(&key);
            let security = r
                .security_id
                .as_ref()
                .and_then(|s| s.as_str().parse::<SecurityCode>().ok());
            if let Some(None) = known {
                // The answer to a QuoteCancel.
                return FixReply::of(
                    QuoteStatusReport {
                        parties: Parties {
                            submitting_broker: bid(&r.submitting_broker_id),
                            ..Parties::default()
                        },
                        security,
                        bid_id: None,
                        offer_id: None,
                        quote_type: None,
                        transact_time: now,
                        quote_msg_id: Some(key),
                        cancel_type: Some(1),
                        status: if accepted {
                            quote_status::CANCEL_FOR_SYMBOL
                        } else {
                            quote_status::REJECTED
                        },
                        reject_reason: r.mass_cancel_reject_code.map(u32::from),
                        text: None,
                        reject_text: reason(&r.reason),
                    }
                    .to_message(),
                );
            }
            let scope = match (known.flatten(), r.mass_cancel_request_type, security) {
                (Some(s), _, _) => s,
                (None, ocg::MassCancelRequestType::Security, Some(s)) => {
                    MassCancelScope::Security(s)
                }
                _ => MassCancelScope::All,
            };
            FixReply::of(
                app::OrderMassCancelReport {
                    cl_ord_id: ClOrdId::new(&key).ok(),
                    mass_action_report_id: r.mass_action_report_id.as_str().to_string(),
                    scope,
                    accepted,
                    reject_reason: r.mass_cancel_reject_code.map(u32::from),
                    parties: Parties {
                        submitting_broker: bid(&r.submitting_broker_id),
                        ..Parties::default()
                    },
                    side: None,
                    transact_time: now,
                    text: reason(&r.reason),
                }
                .to_message(),
            )
        }
        ocg::Message::BusinessMessageReject(b) => {
            let ref_msg_type = match b.reference_message_type {
                11 => "D",
                12 => "G",
                13 | 23 => "F",
                14 | 24 => "q",
                16 => "S",
                17 => "Z",
                25 => "BE",
                27 => "CU",
                _ => "D",
            };
            if ref_msg_type == "S" {
                return FixReply::of(
                    QuoteStatusReport {
                        parties: Parties::default(),
                        security: None,
                        bid_id: None,
                        offer_id: None,
                        quote_type: None,
                        transact_time: now,
                        quote_msg_id: None,
                        cancel_type: None,
                        status: quote_status::REJECTED,
                        reject_reason: Some(99),
                        text: None,
                        reject_text: reason(&b.reason),
                    }
                    .to_message(),
                );
            }
            FixReply::of(
                app::BusinessMessageReject {
                    ref_seq_num: b.reference_sequence_number.map(u64::from),
                    ref_msg_type: ref_msg_type.into(),
                    business_reject_ref_id: b
                        .business_reject_reference_id
                        .as_ref()
                        .map(|x| x.as_str().to_string()),
                    reason: b.business_reject_code as u32,
                    text: reason(&b.reason),
                }
                .to_message(),
            )
        }
        _ => None,
    }
}

/// The FIX durable sessions of a config's `protocol = "fix"` participants, fresh.
pub fn fresh_states(comps: impl Iterator<Item = CompId>) -> BTreeMap<CompId, SessionState> {
    comps
        .map(|c| (c, SessionState::new(EXCHANGE_COMP_ID, c.as_str())))
        .collect()
}

#[cfg(test)]
mod tests {
    //! Every reply the gateway writes without building a FIX `Message` (and without checking it
    //! at run time) must pass the dictionary: checked here for every reply type and, by
    //! property tests, for Execution Reports with any combination of fields.

    use super::*;
    use proptest::prelude::*;
    use twinsite_core::{Price, Qty};
    use twinsite_fix::dictionary::validate;

    fn check(reply: &FixReply) -> Result<(), String> {
        let fields = twinsite_fix::codec::tokenize(&reply.body).map_err(|e| e.to_string())?;
        validate(reply.msg_type, &fields)
            .map_err(|v| format!("{}: {v}", twinsite_fix::codec::to_pipes(&reply.body)))
    }

    fn now() -> Timestamp {
        Timestamp::from_hkt(2023, 11, 25, 10, 0, 0)
    }

    fn pick<T: Copy>(all: &[T], i: usize) -> T {
        all[i % all.len()]
    }

    #[derive(Debug, Clone)]
    struct ErSeed {
        exec_type: usize,
        ord_status: usize,
        side: usize,
        optional: u64,
        qty: u64,
        px: i64,
        text: String,
    }

    fn er_seed() -> impl Strategy<Value = ErSeed> {
        (
            0usize..64,
            0usize..64,
            0usize..8,
            any::<u64>(),
            0u64..1_000_000_000,
            1i64..10_000_000,
            "[ -~]{0,60}",
        )
            .prop_map(
                |(exec_type, ord_status, side, optional, qty, px, text)| ErSeed {
                    exec_type,
                    ord_status,
                    side,
                    optional,
                    qty,
                    px,
                    text,
                },
            )
    }

    fn execution_report(s: &ErSeed) -> ocg::ExecutionReport {
        let on = |bit: u32| s.optional & (1 << bit) != 0;
        let qty = Decimal::from_qty(Qty(s.qty));
        let px = Decimal::from_price(Price(s.px));
        ocg::ExecutionReport {
            cl_ord_id: on(0).then(|| FixedStr::new("C1")),
            submitting_broker_id: on(1).then(|| FixedStr::new("2001")),
            security_id: on(2).then(|| FixedStr::new("5")),
            side: on(3).then(|| pick(ocg::Side::ALL, s.side)),
            orig_cl_ord_id: on(4).then(|| FixedStr::new("C0")),
            order_id: on(5).then(|| FixedStr::new("123456")),
            owning_broker_id: on(6).then(|| FixedStr::new("2002")),
            ord_type: on(7).then(|| pick(ocg::OrdType::ALL, s.side)),
            price: on(8).then_some(px),
            order_qty: on(9).then_some(qty),
            time_in_force: on(10).then(|| pick(ocg::TimeInForce::ALL, s.side)),
            reason: on(11).then(|| VarStr::truncated(&s.text)),
            exec_id: on(12).then(|| FixedStr::new("E77")),
            ord_status: on(13).then(|| pick(ocg::OrdStatus::ALL, s.ord_status)),
            exec_type: on(14).then(|| pick(ocg::ExecType::ALL, s.exec_type)),
            cum_qty: on(15).then_some(qty),
            leaves_qty: on(16).then_some(qty),
            order_reject_code: on(17).then_some(s.qty as u16),
            lot_type: on(18).then(|| pick(ocg::LotType::ALL, s.side)),
            exec_restatement_reason: on(19).then_some(104),
            cancel_reject_code: on(20).then_some(s.qty as u16),
            amend_reject_code: on(21).then_some(s.qty as u16),
            counterparty_broker_id: on(22).then(|| FixedStr::new("2003")),
            last_qty: on(23).then_some(qty),
            last_px: on(24).then_some(px),
            trade_match_id: on(25).then(|| FixedStr::new("T-1")),
            aggressor_indicator: on(26).then(|| pick(ocg::AggressorIndicator::ALL, s.side)),
            ..ocg::ExecutionReport::default()
        }
    }

    #[test]
    fn every_exec_type_and_status_passes_the_dictionary() {
        for (i, _) in ocg::ExecType::ALL.iter().enumerate() {
            for (j, _) in ocg::OrdStatus::ALL.iter().enumerate() {
                for optional in [0, u64::MAX] {
                    let seed = ErSeed {
                        exec_type: i,
                        ord_status: j,
                        side: i + j,
                        optional,
                        qty: 400,
                        px: 65_200,
                        text: "reason".into(),
                    };
                    let er = ocg::Message::ExecutionReport(execution_report(&seed));
                    let reply = reply_to_fix(&er, now(), &mut BTreeMap::new()).expect("FIX form");
                    check(&reply).unwrap();
                }
            }
        }
    }

    #[test]
    fn execution_report_bytes_are_those_of_the_typed_message() {
        // The direct writer and `ExecutionReport::to_message` share one field list.
        let seed = ErSeed {
            exec_type: 4,
            ord_status: 1,
            side: 1,
            optional: u64::MAX,
            qty: 400,
            px: 65_200,
            text: "x".into(),
        };
        let er = ocg::Message::ExecutionReport(execution_report(&seed));
        let reply = reply_to_fix(&er, now(), &mut BTreeMap::new()).expect("FIX form");
        let typed = app::ExecutionReport::from_message(&reply.message()).unwrap();
        assert_eq!(
            twinsite_fix::codec::encode_body(&typed.to_message().body),
            reply.body
        );
    }

    #[test]
    fn mass_cancel_reports_and_business_rejects_pass_the_dictionary() {
        for (i, t) in ocg::MassCancelRequestType::ALL.iter().enumerate() {
            for response in ocg::MassCancelResponse::ALL {
                for memo in [
                    None,
                    Some(None),
                    Some(Some(MassCancelScope::All)),
                    Some(Some(MassCancelScope::Security(SecurityCode(5)))),
                ] {
                    let report = ocg::OrderMassCancelReport {
                        cl_ord_id: Some(FixedStr::new("M1")),
                        submitting_broker_id: Some(FixedStr::new("2001")),
                        security_id: (i % 2 == 0).then(|| FixedStr::new("5")),
                        security_id_source: None,
                        security_exchange: None,
                        broker_location_id: None,
                        transact_time: FixedStr::new("20231125-02:00:00.000000"),
                        mass_cancel_request_type: *t,
                        owning_broker_id: None,
                        mass_action_report_id: FixedStr::new("R1"),
                        mass_cancel_response: *response,
                        mass_cancel_reject_code: Some(99),
                        reason: Some(VarStr::truncated("no")),
                    };
                    let mut memos = BTreeMap::new();
                    if let Some(m) = memo {
                        memos.insert("M1".to_string(), m);
                    }
                    let m = ocg::Message::OrderMassCancelReport(report);
                    let reply = reply_to_fix(&m, now(), &mut memos).expect("FIX form");
                    check(&reply).unwrap();
                }
            }
        }
        for code in ocg::BusinessRejectCode::ALL {
            for reference in [0u8, 11, 12, 13, 14, 16, 17, 23, 24, 25, 27] {
                let m = ocg::Message::BusinessMessageReject(ocg::BusinessMessageReject {
                    business_reject_code: *code,
                    reason: Some(VarStr::truncated("refused")),
                    reference_message_type: reference,
                    reference_field_name: None,
                    reference_sequence_number: Some(7),
                    business_reject_reference_id: Some(FixedStr::new("C9")),
                });
                let reply = reply_to_fix(&m, now(), &mut BTreeMap::new()).expect("FIX form");
                check(&reply).unwrap();
            }
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig {
            cases: 512,
            rng_seed: proptest::test_runner::RngSeed::Fixed(0x5EED_F1C5),
            failure_persistence: None,
            ..ProptestConfig::default()
        })]
        #[test]
        fn any_execution_report_passes_the_dictionary(seed in er_seed()) {
            let er = ocg::Message::ExecutionReport(execution_report(&seed));
            let reply = reply_to_fix(&er, now(), &mut BTreeMap::new()).expect("FIX form");
            prop_assert_eq!(check(&reply), Ok(()));
        }
    }
}
