//! The exchange's deterministic core at a site: OCG-C business messages in, engine commands,
//! Execution Reports and market events out. No IO and no clock: `now` comes with every call, so
//! the same inputs give the same outputs on every node (the replicated journal carries the
//! inputs).

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use twinsite_core::{
    BrokerId, ClOrdId, CompId, MarketSegment, OrderId, ParticipantKind, Price, Qty, SecurityCode,
    Side, Timestamp,
};
use twinsite_engine::{
    Amend, Cancel, CancelReason, CancelRejectCode, Command, Engine, Event, MassCancel,
    MassCancelScope, MatchKind, NewOrder, OrderInfo, OrderType, Owner, RejectCode,
    RESTATE_BROKER_SUSPENDED, RESTATE_SYSTEM_CANCEL,
};
use twinsite_ocg::enums::order_reject_code;
use twinsite_ocg::*;

/// What the exchange knows about a session (from configuration or registration).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionProfile {
    pub comp_id: CompId,
    pub firm: String,
    pub kind: ParticipantKind,
    /// Broker ids this session may submit for; the first is its own.
    pub brokers: Vec<BrokerId>,
    pub throttle_units: u32,
}

/// A message for one session.
#[derive(Debug, Clone, PartialEq)]
pub struct Reply {
    pub comp_id: CompId,
    pub message: Message,
}

/// Everything one input produced.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Output {
    pub replies: Vec<Reply>,
    /// All engine events, for the market-data feed and activity tracking.
    pub events: Vec<Event>,
}

/// OCG-C `Transaction Time`: `YYYYMMDD-HH:MM:SS.ssssss` UTC.
pub fn transact_time(now: Timestamp) -> Time25 {
    // YYYYMMDD-HH:MM:SS.ffffff, one per Execution Report: written without allocating.
    let mut b = [0u8; twinsite_core::time::UTC_TEXT_MAX_LEN];
    let n = now.write_utc(6, &mut b);
    FixedStr::new(std::str::from_utf8(&b[..n]).unwrap_or_default())
}

/// A request that could not become an engine command: answered at once.
enum Refusal {
    /// Execution Report reject (new order) with an Order Reject Code.
    OrderReject(u16, String),
    CancelReject(u16, String),
    AmendReject(u16, String),
    MassCancelReject(String),
    /// With a specific Mass Cancel Reject Code (8: unknown market segment).
    MassCancelRejectCode(u16, String),
    Business(BusinessRejectCode, String),
}

#[derive(Serialize, Deserialize)]
struct ExchangeSnapshot {
    #[serde(with = "bytes_as_base64")]
    engine: Vec<u8>,
    profiles: Vec<SessionProfile>,
    next_exec_id: u64,
}

mod bytes_as_base64 {
    use serde::{Deserialize, Deserializer, Serializer};
    pub fn serialize<S: Serializer>(b: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(std::str::from_utf8(b).unwrap_or(""))
    }
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        Ok(String::deserialize(d)?.into_bytes())
    }
}

/// The deterministic core.
pub struct Exchange {
    pub engine: Engine,
    /// Shared so that a message's handling holds its session's profile without copying it.
    profiles: BTreeMap<CompId, std::sync::Arc<SessionProfile>>,
    /// broker -> firm, for the on-behalf-of same-firm rule.
    broker_firm: BTreeMap<BrokerId, String>,
    next_exec_id: u64,
}

fn id21(s: &str) -> Id21 {
    FixedStr::new(s)
}

impl Exchange {
    pub fn new(engine: Engine, profiles: Vec<SessionProfile>) -> Exchange {
        let mut x = Exchange {
            engine,
            profiles: BTreeMap::new(),
            broker_firm: BTreeMap::new(),
            next_exec_id: 1,
        };
        for p in profiles {
            x.add_profile(p);
        }
        x
    }

    pub fn add_profile(&mut self, p: SessionProfile) {
        for b in &p.brokers {
            self.broker_firm.insert(*b, p.firm.clone());
        }
        self.profiles.insert(p.comp_id, std::sync::Arc::new(p));
    }

    pub fn profile(&self, comp: &CompId) -> Option<&SessionProfile> {
        self.profiles.get(comp).map(|p| &**p)
    }

    pub fn profiles(&self) -> impl Iterator<Item = &SessionProfile> {
        self.profiles.values().map(|p| &**p)
    }

    /// Live orders: OTP-C and China Connect.
    pub fn live_orders(&self) -> usize {
        self.engine.live_orders() + self.engine.china().live_orders()
    }

    /// The execution id counter (part of the replicated state).
    pub fn next_exec_id(&self) -> u64 {
        self.next_exec_id
    }

    /// Serialize the whole core (engine, execution id counter, session profiles).
    pub fn snapshot(&self) -> Vec<u8> {
        let snap = ExchangeSnapshot {
            engine: self.engine.snapshot(),
            profiles: self.profiles.values().map(|p| (**p).clone()).collect(),
            next_exec_id: self.next_exec_id,
        };
        serde_json::to_vec(&snap).expect("exchange snapshot serializes")
    }

    /// Rebuild from [`Exchange::snapshot`].
    pub fn restore(bytes: &[u8]) -> Result<Exchange, String> {
        let snap: ExchangeSnapshot =
            serde_json::from_slice(bytes).map_err(|e| format!("exchange snapshot: {e}"))?;
        let engine = Engine::restore(&snap.engine)?;
        let mut x = Exchange::new(engine, snap.profiles);
        x.next_exec_id = snap.next_exec_id;
        Ok(x)
    }

    /// The engine's state hash combined with this layer's counter.
    pub fn state_hash(&self) -> u64 {
        self.engine.state_hash() ^ self.next_exec_id.wrapping_mul(0x9e37_79b9_7f4a_7c15)
    }

    fn exec_id(&mut self) -> Id21 {
        let id = self.next_exec_id;
        self.next_exec_id += 1;
        FixedStr::number(id)
    }

    /// Apply an engine command that did not come from a participant message (phase changes,
    /// cancel on disconnect, halts, time).
    pub fn on_command(&mut self, cmd: &Command, now: Timestamp) -> Output {
        let mut out = Output::default();
        let events = self.engine.apply(cmd, now);
        self.report(&events, None, now, &mut out);
        out.events = events;
        out
    }

    /// A business message delivered in sequence by a session.
    pub fn on_business(
        &mut self,
        comp: &CompId,
        seq: u32,
        msg: &Message,
        now: Timestamp,
    ) -> Output {
        // Most inputs answer with one report: room for it without growing to four.
        let mut out = Output {
            replies: Vec::with_capacity(1),
            events: Vec::new(),
        };
        let Some(profile) = self.profiles.get(comp).cloned() else {
            return out;
        };
        if let Some(m) = Self::entitlements(&profile, seq, msg) {
            out.replies.push(Reply {
                comp_id: *comp,
                message: m,
            });
            return out;
        }
        match self.map(&profile, msg) {
            Ok(cmds) => {
                for cmd in cmds {
                    let events = self.engine.apply(&cmd, now);
                    self.report(&events, Some((&profile, msg)), now, &mut out);
                    if out.events.is_empty() {
                        out.events = events;
                    } else {
                        out.events.extend(events);
                    }
                }
            }
            Err(r) => {
                let m = self.refusal(r, msg, seq, now);
                out.replies.push(Reply {
                    comp_id: *comp,
                    message: m,
                });
            }
        }
        // Time moves on for every command; scheduled engine actions ran inside `apply`.
        out
    }

    /// Throttle Entitlement and Party Entitlements requests, answered from configuration: the
    /// session's throttle (2 messages per second per throttle unit) and its broker ids.
    fn entitlements(p: &SessionProfile, seq: u32, msg: &Message) -> Option<Message> {
        match msg {
            Message::ThrottleEntitlementRequest(r) => Some(Message::ThrottleEntitlementResponse(
                ThrottleEntitlementResponse {
                    user_request_id: Some(r.user_request_id.clone()),
                    username: Some(r.username.clone()),
                    throttles: Some(Group(vec![ThrottleEntry {
                        // Reject (0) when exceeded, rate throttle (0), N messages per 1 second (unit 0).
                        throttle_action: Some(0),
                        throttle_type: Some(0),
                        throttle_no_messages: Some(
                            p.throttle_units
                                .saturating_mul(twinsite_core::limits::OCG_THROTTLE_MSGS_PER_UNIT),
                        ),
                        throttle_time_interval: Some(1),
                        throttle_time_unit: Some(0),
                    }])),
                },
            )),
            Message::PartyEntitlementsRequest(r) => {
                Some(Message::PartyEntitlementsReport(PartyEntitlementsReport {
                    entitlement_report_id: Some(id21(&format!("{}-{seq}", p.comp_id))),
                    entitlement_request_id: r.entitlement_request_id.clone(),
                    request_result: Some(0),
                    total_no_party_list: Some(p.brokers.len() as u16),
                    last_fragment: Some(1),
                    broker_id: p.brokers.first().map(FixedStr::display),
                    entitlements: None,
                }))
            }
            _ => None,
        }
    }

    // ------------------------------------------------------------------ inbound mapping

    fn broker(&self, p: &SessionProfile, field: Option<&Broker12>) -> Result<BrokerId, Refusal> {
        let b = match field {
            Some(f) => f
                .as_str()
                .parse::<BrokerId>()
                .map_err(|e| Refusal::Business(BusinessRejectCode::UnknownId, e.to_string()))?,
            None => p.brokers[0],
        };
        if !p.brokers.contains(&b) {
            return Err(Refusal::Business(
                BusinessRejectCode::UnknownId,
                format!("submitting broker {b} is not assigned to this session"),
            ));
        }
        Ok(b)
    }

    fn map(&self, p: &SessionProfile, msg: &Message) -> Result<Vec<Command>, Refusal> {
        let owner = |b: BrokerId| Owner {
            broker: b,
            session: p.comp_id,
        };
        let cl = |f: Option<&Id21>| -> Result<ClOrdId, Refusal> {
            let s = f.map(|x| x.as_str()).unwrap_or("");
            ClOrdId::new(s).map_err(|e| {
                Refusal::Business(
                    BusinessRejectCode::ConditionallyRequiredFieldMissing,
                    e.to_string(),
                )
            })
        };
        let sec =
            |f: Option<&Id21>| -> Option<SecurityCode> { f.and_then(|x| x.as_str().parse().ok()) };
        let order_id = |f: Option<&Id21>| -> Result<Option<OrderId>, Refusal> {
            match f {
                None => Ok(None),
                Some(x) => x
                    .as_str()
                    .parse::<u64>()
                    .map(|v| Some(OrderId(v)))
                    .map_err(|_| {
                        Refusal::CancelReject(
                            cancel_reject_code::UNKNOWN_ORDER,
                            "order id is not numeric".into(),
                        )
                    }),
            }
        };
        match msg {
            Message::NewOrder(o) => {
                let b = self.broker(p, Some(&o.submitting_broker_id))?;
                let reject =
                    |text: &str| Refusal::OrderReject(order_reject_code::OTHER, text.into());
                let cl_ord_id =
                    ClOrdId::new(o.cl_ord_id.as_str()).map_err(|e| reject(&e.to_string()))?;
                let security = o
                    .security_id
                    .as_str()
                    .parse()
                    .map_err(|_| reject("unknown security"))?;
                self.tradable(p, security).map_err(|t| reject(&t))?;
                if o.lot_type == Some(LotType::OddLot) {
                    return Err(reject("odd-lot and special-lot orders are not supported"));
                }
                let order_type = match (
                    o.ord_type,
                    o.time_in_force.unwrap_or(TimeInForce::Day),
                    o.max_price_levels,
                ) {
                    (OrdType::Market, TimeInForce::AtCrossing, _) => OrderType::AtAuction,
                    (OrdType::Limit, TimeInForce::AtCrossing, _) => OrderType::AtAuctionLimit,
                    (OrdType::Limit, TimeInForce::Day, Some(1)) => OrderType::Limit,
                    (OrdType::Limit, TimeInForce::Day, None) => OrderType::EnhancedLimit,
                    (OrdType::Limit, TimeInForce::ImmediateOrCancel, _) => OrderType::SpecialLimit,
                    (OrdType::Limit, TimeInForce::FillOrKill, _) => OrderType::SpecialLimitFok,
                    (_, _, Some(n)) if n != 1 => {
                        return Err(reject("max price levels must be 1 if present"))
                    }
                    _ => {
                        return Err(reject(
                            "order type and time in force combination not supported",
                        ))
                    }
                };
                let price = match (order_type.has_price(), o.price) {
                    (true, Some(d)) => Some(d.to_price().map_err(|e| {
                        Refusal::OrderReject(order_reject_code::PRICE_OUTSIDE_BAND, e.to_string())
                    })?),
                    (true, None) => return Err(reject("price required for a limit order")),
                    (false, Some(_)) => {
                        return Err(reject(
                            "price must be absent for a market (at-auction) order",
                        ))
                    }
                    (false, None) => None,
                };
                let qty = o.order_qty.to_qty().map_err(|e| {
                    Refusal::OrderReject(order_reject_code::INCORRECT_QUANTITY, e.to_string())
                })?;
                Ok(vec![Command::NewOrder(NewOrder {
                    owner: owner(b),
                    cl_ord_id,
                    security,
                    side: o.side.book_side(),
                    order_type,
                    price,
                    qty,
                    short_sell: o.side == twinsite_ocg::Side::SellShort,
                })])
            }
            Message::AmendRequest(a) => {
                let b = self.broker(p, a.submitting_broker_id.as_ref())?;
                let rej = |t: &str| Refusal::AmendReject(99, t.into());
                let cl_ord_id =
                    cl(a.cl_ord_id.as_ref()).map_err(|_| rej("client order id required"))?;
                let orig = ClOrdId::new(a.orig_cl_ord_id.as_str())
                    .map_err(|_| rej("original client order id invalid"))?;
                let security =
                    sec(a.security_id.as_ref()).ok_or_else(|| rej("unknown security"))?;
                let side = a.side.ok_or_else(|| rej("side required"))?.book_side();
                let price = match a.price {
                    Some(d) => Some(
                        d.to_price()
                            .map_err(|e| Refusal::AmendReject(8, e.to_string()))?,
                    ),
                    None => None,
                };
                let qty = a.order_qty.to_qty().map_err(|e| rej(&e.to_string()))?;
                let order_id =
                    order_id(a.order_id.as_ref()).map_err(|_| rej("order id is not numeric"))?;
                Ok(vec![Command::Amend(Amend {
                    owner: owner(b),
                    cl_ord_id,
                    orig_cl_ord_id: orig,
                    security,
                    side,
                    order_id,
                    price,
                    qty,
                })])
            }
            Message::CancelRequest(c) => {
                let b = self.broker(p, c.submitting_broker_id.as_ref())?;
                let rej = |t: &str| Refusal::CancelReject(cancel_reject_code::OTHER, t.into());
                let cl_ord_id =
                    cl(c.cl_ord_id.as_ref()).map_err(|_| rej("client order id required"))?;
                let orig = ClOrdId::new(c.orig_cl_ord_id.as_str())
                    .map_err(|_| rej("original client order id invalid"))?;
                let security =
                    sec(c.security_id.as_ref()).ok_or_else(|| rej("unknown security"))?;
                let side = c.side.ok_or_else(|| rej("side required"))?.book_side();
                Ok(vec![Command::Cancel(Cancel {
                    owner: owner(b),
                    cl_ord_id,
                    orig_cl_ord_id: Some(orig),
                    security,
                    side,
                    order_id: order_id(c.order_id.as_ref())?,
                    owning_broker: None,
                })])
            }
            Message::OboCancelRequest(c) => {
                let b = self.broker(p, c.submitting_broker_id.as_ref())?;
                let rej = |t: &str| Refusal::CancelReject(cancel_reject_code::OTHER, t.into());
                let owning: BrokerId = c
                    .owning_broker_id
                    .as_str()
                    .parse()
                    .map_err(|_| rej("owning broker id invalid"))?;
                self.same_firm(p, owning)
                    .map_err(|t| Refusal::CancelReject(cancel_reject_code::UNKNOWN_ORDER, t))?;
                let cl_ord_id =
                    cl(c.cl_ord_id.as_ref()).map_err(|_| rej("client order id required"))?;
                let security =
                    sec(c.security_id.as_ref()).ok_or_else(|| rej("unknown security"))?;
                let side = c.side.ok_or_else(|| rej("side required"))?.book_side();
                Ok(vec![Command::Cancel(Cancel {
                    owner: owner(b),
                    cl_ord_id,
                    orig_cl_ord_id: None,
                    security,
                    side,
                    order_id: order_id(Some(&c.order_id))?,
                    owning_broker: Some(owning),
                })])
            }
            Message::MassCancelRequest(m) => {
                let b = self.broker(p, m.submitting_broker_id.as_ref())?;
                let scope = Self::scope(
                    m.mass_cancel_request_type,
                    m.security_id.as_ref(),
                    m.market_segment_id.as_ref(),
                )?;
                let cl_ord_id = cl(m.cl_ord_id.as_ref())
                    .map_err(|_| Refusal::MassCancelReject("client order id required".into()))?;
                Ok(vec![Command::MassCancel(MassCancel {
                    owner: owner(b),
                    cl_ord_id,
                    scope,
                    side: m.side.map(|s| s.book_side()),
                    owning_broker: None,
                })])
            }
            Message::OboMassCancelRequest(m) => {
                let b = self.broker(p, m.submitting_broker_id.as_ref())?;
                let owning: BrokerId =
                    m.owning_broker_id.as_str().parse().map_err(|_| {
                        Refusal::MassCancelReject("owning broker id invalid".into())
                    })?;
                self.same_firm(p, owning)
                    .map_err(Refusal::MassCancelReject)?;
                let scope = Self::scope(
                    m.mass_cancel_request_type,
                    m.security_id.as_ref(),
                    m.market_segment_id.as_ref(),
                )?;
                let cl_ord_id = cl(m.cl_ord_id.as_ref())
                    .map_err(|_| Refusal::MassCancelReject("client order id required".into()))?;
                Ok(vec![Command::MassCancel(MassCancel {
                    owner: owner(b),
                    cl_ord_id,
                    scope,
                    side: m.side.map(|s| s.book_side()),
                    owning_broker: Some(owning),
                })])
            }
            Message::Quote(q) => {
                // A quote is two limit orders (bid and offer) entered together.
                let b = self.broker(p, Some(&q.submitting_broker_id))?;
                let reject = |t: String| Refusal::Business(BusinessRejectCode::Other, t);
                let security = q.security_id.as_str().parse().map_err(|_| {
                    Refusal::Business(
                        BusinessRejectCode::UnknownSecurity,
                        "unknown security".into(),
                    )
                })?;
                self.tradable(p, security)
                    .map_err(|t| Refusal::Business(BusinessRejectCode::UnknownSecurity, t))?;
                let mut cmds = Vec::new();
                for (id, side, px, sz) in [
                    (&q.quote_bid_id, Side::Buy, q.bid_px, q.bid_size),
                    (&q.quote_offer_id, Side::Sell, q.offer_px, q.offer_size),
                ] {
                    cmds.push(Command::NewOrder(NewOrder {
                        owner: owner(b),
                        cl_ord_id: ClOrdId::new(id.as_str()).map_err(|e| reject(e.to_string()))?,
                        security,
                        side,
                        order_type: OrderType::Limit,
                        price: Some(px.to_price().map_err(|e| reject(e.to_string()))?),
                        qty: sz.to_qty().map_err(|e| reject(e.to_string()))?,
                        short_sell: false,
                    }));
                }
                Ok(cmds)
            }
            Message::QuoteCancel(q) => {
                let b = self.broker(p, q.submitting_broker_id.as_ref())?;
                let scope = match sec(q.security_id.as_ref()) {
                    Some(s) => MassCancelScope::Security(s),
                    None => MassCancelScope::All,
                };
                let cl_ord_id = ClOrdId::new(q.quote_msg_id.as_str())
                    .map_err(|e| Refusal::Business(BusinessRejectCode::Other, e.to_string()))?;
                Ok(vec![Command::MassCancel(MassCancel {
                    owner: owner(b),
                    cl_ord_id,
                    scope,
                    side: None,
                    owning_broker: None,
                })])
            }
            other => Err(Refusal::Business(
                BusinessRejectCode::UnsupportedMessageType,
                format!("{} is not supported", other.name()),
            )),
        }
    }

    /// May this session trade the security? A CCEP session (OTP-CSC) trades SSE and SZSE
    /// securities only, an EP session (OTP-C) Hong Kong securities only; for the other the
    /// security does not exist on its platform, so it gets the engine's "unknown security"
    /// reject. A code known to neither is left to the engine.
    fn tradable(&self, p: &SessionProfile, security: SecurityCode) -> Result<(), String> {
        let cc = self.engine.china().has(security);
        let hk = self.engine.security(security).is_some();
        match p.kind {
            ParticipantKind::Ccep if hk && !cc => Err(format!(
                "unknown security: {security} is not an SSE or SZSE security (OTP-CSC)"
            )),
            ParticipantKind::Ep if cc && !hk => Err(format!(
                "unknown security: {security} is a China Connect security (OTP-CSC only)"
            )),
            ParticipantKind::InformationVendor => {
                Err("unknown security: an information vendor does not trade".into())
            }
            _ => Ok(()),
        }
    }

    /// The failover purge (`[failover] orders = "cancel"`): every resting order of every
    /// participant is cancelled with an unsolicited cancel Execution Report, Exec Restatement
    /// Reason 107 (system cancel), queued for each owner's next logon. Brokers in ascending
    /// order, so every node produces the same events. China Connect orders in a no-cancel
    /// window (09:20-09:25, 14:57-15:00) stay, as the mainland market accepts no cancellation
    /// then.
    pub fn purge_orders(&mut self, now: Timestamp) -> Output {
        let brokers: std::collections::BTreeSet<BrokerId> = self
            .profiles
            .values()
            .flat_map(|p| p.brokers.iter().copied())
            .collect();
        let mut out = Output::default();
        for broker in brokers {
            let mut events = self.engine.apply(&Command::SuspendBroker { broker }, now);
            for e in &mut events {
                if let Event::Cancelled {
                    reason: reason @ CancelReason::Restated(RESTATE_BROKER_SUSPENDED),
                    ..
                } = e
                {
                    *reason = CancelReason::Restated(RESTATE_SYSTEM_CANCEL);
                }
            }
            self.report(&events, None, now, &mut out);
            out.events.extend(events);
        }
        out
    }

    fn same_firm(&self, p: &SessionProfile, owning: BrokerId) -> Result<(), String> {
        if p.brokers.contains(&owning) {
            return Err("on-behalf-of requests must name another broker's orders".into());
        }
        match self.broker_firm.get(&owning) {
            Some(f) if *f == p.firm => Ok(()),
            _ => Err(format!(
                "broker {owning} is not a broker of the same exchange participant"
            )),
        }
    }

    fn scope(
        t: MassCancelRequestType,
        sec: Option<&Id21>,
        seg: Option<&FixedStr<20>>,
    ) -> Result<MassCancelScope, Refusal> {
        match t {
            MassCancelRequestType::Security => sec
                .and_then(|s| s.as_str().parse().ok())
                .map(MassCancelScope::Security)
                .ok_or_else(|| {
                    Refusal::MassCancelReject(
                        "security id required for a security mass cancel".into(),
                    )
                }),
            MassCancelRequestType::All => Ok(MassCancelScope::All),
            MassCancelRequestType::MarketSegment => seg
                .and_then(|s| s.as_str().parse::<MarketSegment>().ok())
                .map(MassCancelScope::Segment)
                .ok_or_else(|| Refusal::MassCancelRejectCode(8, "unknown market segment".into())),
        }
    }

    fn refusal(&mut self, r: Refusal, msg: &Message, seq: u32, now: Timestamp) -> Message {
        let base = |m: &Message| -> ExecutionReport {
            let mut er = ExecutionReport {
                transact_time: Some(transact_time(now)),
                ..Default::default()
            };
            match m {
                Message::NewOrder(o) => {
                    er.cl_ord_id = Some(o.cl_ord_id.clone());
                    er.submitting_broker_id = Some(o.submitting_broker_id.clone());
                    er.security_id = Some(o.security_id.clone());
                    er.side = Some(o.side);
                    er.ord_type = Some(o.ord_type);
                    er.price = o.price;
                    er.order_qty = Some(o.order_qty);
                }
                Message::AmendRequest(a) => {
                    er.cl_ord_id = a.cl_ord_id.clone();
                    er.orig_cl_ord_id = Some(a.orig_cl_ord_id.clone());
                    er.security_id = a.security_id.clone();
                    er.side = a.side;
                    er.order_id = a.order_id.clone();
                }
                Message::CancelRequest(c) => {
                    er.cl_ord_id = c.cl_ord_id.clone();
                    er.orig_cl_ord_id = Some(c.orig_cl_ord_id.clone());
                    er.security_id = c.security_id.clone();
                    er.side = c.side;
                    er.order_id = c.order_id.clone();
                }
                Message::OboCancelRequest(c) => {
                    er.cl_ord_id = c.cl_ord_id.clone();
                    er.security_id = c.security_id.clone();
                    er.side = c.side;
                    er.order_id = Some(c.order_id.clone());
                    er.owning_broker_id = Some(c.owning_broker_id.clone());
                }
                _ => {}
            }
            er
        };
        match r {
            Refusal::OrderReject(code, text) => {
                let exec_id = self.exec_id();
                Message::ExecutionReport(ExecutionReport {
                    exec_id: Some(exec_id),
                    exec_type: Some(ExecType::Reject),
                    ord_status: Some(OrdStatus::Rejected),
                    order_reject_code: Some(code),
                    reason: Some(VarStr::truncated(&text)),
                    ..base(msg)
                })
            }
            Refusal::CancelReject(code, text) => {
                let exec_id = self.exec_id();
                Message::ExecutionReport(ExecutionReport {
                    exec_id: Some(exec_id),
                    exec_type: Some(ExecType::CancelReject),
                    ord_status: Some(OrdStatus::Rejected),
                    cancel_reject_code: Some(code),
                    reason: Some(VarStr::truncated(&text)),
                    ..base(msg)
                })
            }
            Refusal::AmendReject(code, text) => {
                let exec_id = self.exec_id();
                Message::ExecutionReport(ExecutionReport {
                    exec_id: Some(exec_id),
                    exec_type: Some(ExecType::AmendReject),
                    ord_status: Some(OrdStatus::Rejected),
                    amend_reject_code: Some(code),
                    reason: Some(VarStr::truncated(&text)),
                    ..base(msg)
                })
            }
            Refusal::MassCancelReject(text) => {
                self.refusal(Refusal::MassCancelRejectCode(99, text), msg, seq, now)
            }
            Refusal::MassCancelRejectCode(code, text) => {
                let (cl, t) = match msg {
                    Message::MassCancelRequest(m) => {
                        (m.cl_ord_id.clone(), m.mass_cancel_request_type)
                    }
                    Message::OboMassCancelRequest(m) => {
                        (m.cl_ord_id.clone(), m.mass_cancel_request_type)
                    }
                    _ => (None, MassCancelRequestType::All),
                };
                let exec_id = self.exec_id();
                Message::OrderMassCancelReport(OrderMassCancelReport {
                    cl_ord_id: cl,
                    submitting_broker_id: None,
                    security_id: None,
                    security_id_source: None,
                    security_exchange: None,
                    broker_location_id: None,
                    transact_time: transact_time(now),
                    mass_cancel_request_type: t,
                    owning_broker_id: None,
                    mass_action_report_id: exec_id,
                    mass_cancel_response: MassCancelResponse::Rejected,
                    mass_cancel_reject_code: Some(code),
                    reason: Some(VarStr::truncated(&text)),
                })
            }
            Refusal::Business(code, text) => {
                Message::BusinessMessageReject(BusinessMessageReject {
                    business_reject_code: code,
                    reason: Some(VarStr::truncated(&text)),
                    reference_message_type: msg.msg_type(),
                    reference_field_name: None,
                    reference_sequence_number: Some(seq),
                    business_reject_reference_id: None,
                })
            }
        }
    }

    // ------------------------------------------------------------------ outbound mapping

    fn order_er(&mut self, o: &OrderInfo, now: Timestamp) -> ExecutionReport {
        let (ord_type, tif, max_levels) = match o.order_type {
            OrderType::AtAuction => (OrdType::Market, TimeInForce::AtCrossing, None),
            OrderType::AtAuctionLimit => (OrdType::Limit, TimeInForce::AtCrossing, None),
            OrderType::Limit => (OrdType::Limit, TimeInForce::Day, Some(1)),
            OrderType::EnhancedLimit => (OrdType::Limit, TimeInForce::Day, None),
            OrderType::SpecialLimit => (OrdType::Limit, TimeInForce::ImmediateOrCancel, None),
            OrderType::SpecialLimitFok => (OrdType::Limit, TimeInForce::FillOrKill, None),
        };
        ExecutionReport {
            cl_ord_id: Some(id21(o.cl_ord_id.as_str())),
            submitting_broker_id: Some(FixedStr::number(u64::from(o.owner.broker.0))),
            security_id: Some(FixedStr::number(u64::from(o.security.0))),
            security_id_source: Some(8),
            security_exchange: Some(FixedStr::new("XHKG")),
            transact_time: Some(transact_time(now)),
            side: Some(match o.side {
                Side::Buy => twinsite_ocg::Side::Buy,
                Side::Sell => twinsite_ocg::Side::Sell,
            }),
            order_id: Some(FixedStr::number(o.order_id.0)),
            ord_type: Some(ord_type),
            price: o.price.map(Decimal::from_price),
            order_qty: Some(Decimal::from_qty(o.qty)),
            time_in_force: Some(tif),
            max_price_levels: max_levels,
            exec_id: Some(self.exec_id()),
            cum_qty: Some(Decimal::from_qty(o.cum_qty)),
            leaves_qty: Some(Decimal::from_qty(o.leaves_qty)),
            lot_type: Some(LotType::BoardLot),
            ..Default::default()
        }
    }

    fn status(o: &OrderInfo) -> OrdStatus {
        if o.leaves_qty.is_zero() && !o.cum_qty.is_zero() {
            OrdStatus::Filled
        } else if !o.cum_qty.is_zero() {
            OrdStatus::PartiallyFilled
        } else {
            OrdStatus::New
        }
    }

    /// Turn engine events into Execution Reports and Mass Cancel Reports for the sessions.
    fn report(
        &mut self,
        events: &[Event],
        request: Option<(&SessionProfile, &Message)>,
        now: Timestamp,
        out: &mut Output,
    ) {
        for ev in events {
            let (comp, msg) = match ev {
                Event::Accepted(o) => {
                    let er = ExecutionReport {
                        exec_type: Some(ExecType::New),
                        ord_status: Some(OrdStatus::New),
                        ..self.order_er(o, now)
                    };
                    (o.owner.session, Message::ExecutionReport(er))
                }
                Event::Rejected {
                    owner,
                    cl_ord_id,
                    security,
                    side,
                    code,
                    reason,
                } => {
                    let mut er = ExecutionReport {
                        cl_ord_id: Some(id21(cl_ord_id.as_str())),
                        submitting_broker_id: Some(FixedStr::number(u64::from(owner.broker.0))),
                        security_id: Some(FixedStr::number(u64::from(security.0))),
                        security_id_source: Some(8),
                        transact_time: Some(transact_time(now)),
                        side: Some(if *side == Side::Buy {
                            twinsite_ocg::Side::Buy
                        } else {
                            twinsite_ocg::Side::Sell
                        }),
                        exec_id: Some(self.exec_id()),
                        exec_type: Some(ExecType::Reject),
                        ord_status: Some(OrdStatus::Rejected),
                        order_reject_code: Some(code.ocg_code()),
                        reason: Some(VarStr::truncated(reason)),
                        ..Default::default()
                    };
                    if let Some((_, Message::NewOrder(o))) = request {
                        er.ord_type = Some(o.ord_type);
                        er.price = o.price;
                        er.order_qty = Some(o.order_qty);
                        er.side = Some(o.side);
                    }
                    (owner.session, Message::ExecutionReport(er))
                }
                Event::Fill {
                    order,
                    price,
                    qty,
                    counterparty,
                    aggressor,
                    kind,
                    trade_id,
                    ..
                } => {
                    let er = ExecutionReport {
                        exec_type: Some(ExecType::Trade),
                        ord_status: Some(Self::status(order)),
                        last_qty: Some(Decimal::from_qty(*qty)),
                        last_px: Some(Decimal::from_price(*price)),
                        counterparty_broker_id: Some(FixedStr::number(u64::from(counterparty.0))),
                        match_type: Some(match kind {
                            MatchKind::Continuous => MatchType::AutoMatch,
                            MatchKind::Auction => MatchType::CrossAuction,
                        }),
                        aggressor_indicator: match kind {
                            MatchKind::Continuous => Some(if *aggressor {
                                AggressorIndicator::Aggressor
                            } else {
                                AggressorIndicator::Passive
                            }),
                            MatchKind::Auction => None,
                        },
                        trade_match_id: Some(FixedStr::new(&format!(
                            "{}-{}",
                            order.security, trade_id
                        ))),
                        ..self.order_er(order, now)
                    };
                    (order.owner.session, Message::ExecutionReport(er))
                }
                Event::Cancelled { order, reason, by } => {
                    let (exec_type, status, restate) = match reason {
                        CancelReason::Expired => (ExecType::Expire, OrdStatus::Expired, None),
                        CancelReason::Restated(code) => {
                            (ExecType::Cancel, OrdStatus::Cancelled, Some(*code))
                        }
                        CancelReason::Requested | CancelReason::ImmediateOrCancel => {
                            (ExecType::Cancel, OrdStatus::Cancelled, None)
                        }
                    };
                    let mut er = ExecutionReport {
                        exec_type: Some(exec_type),
                        ord_status: Some(status),
                        exec_restatement_reason: restate,
                        owning_broker_id: by
                            .map(|_| FixedStr::number(u64::from(order.owner.broker.0))),
                        ..self.order_er(order, now)
                    };
                    // A requested cancel echoes the request's ids.
                    if let (CancelReason::Requested, Some((_, Message::CancelRequest(c)))) =
                        (reason, request)
                    {
                        er.orig_cl_ord_id = Some(c.orig_cl_ord_id.clone());
                        er.cl_ord_id = c.cl_ord_id.clone();
                    }
                    (order.owner.session, Message::ExecutionReport(er))
                }
                Event::Amended {
                    order,
                    orig_cl_ord_id,
                    ..
                } => {
                    let er = ExecutionReport {
                        exec_type: Some(ExecType::Amend),
                        ord_status: Some(Self::status(order)),
                        orig_cl_ord_id: Some(id21(orig_cl_ord_id.as_str())),
                        ..self.order_er(order, now)
                    };
                    (order.owner.session, Message::ExecutionReport(er))
                }
                Event::CancelRejected {
                    owner,
                    cl_ord_id,
                    orig_cl_ord_id,
                    order_id,
                    security,
                    code,
                    reason,
                } => {
                    let er = ExecutionReport {
                        cl_ord_id: Some(id21(cl_ord_id.as_str())),
                        orig_cl_ord_id: orig_cl_ord_id.map(|c| id21(c.as_str())),
                        order_id: order_id.map(|o| FixedStr::number(o.0)),
                        submitting_broker_id: Some(FixedStr::number(u64::from(owner.broker.0))),
                        security_id: Some(FixedStr::number(u64::from(security.0))),
                        transact_time: Some(transact_time(now)),
                        exec_id: Some(self.exec_id()),
                        exec_type: Some(ExecType::CancelReject),
                        ord_status: Some(if *code == CancelRejectCode::UnknownOrder {
                            OrdStatus::Rejected
                        } else {
                            OrdStatus::New
                        }),
                        cancel_reject_code: Some(code.ocg_code()),
                        reason: Some(VarStr::truncated(reason)),
                        ..Default::default()
                    };
                    (owner.session, Message::ExecutionReport(er))
                }
                Event::AmendRejected {
                    owner,
                    cl_ord_id,
                    orig_cl_ord_id,
                    security,
                    code,
                    reason,
                } => {
                    let er = ExecutionReport {
                        cl_ord_id: Some(id21(cl_ord_id.as_str())),
                        orig_cl_ord_id: Some(id21(orig_cl_ord_id.as_str())),
                        submitting_broker_id: Some(FixedStr::number(u64::from(owner.broker.0))),
                        security_id: Some(FixedStr::number(u64::from(security.0))),
                        transact_time: Some(transact_time(now)),
                        exec_id: Some(self.exec_id()),
                        exec_type: Some(ExecType::AmendReject),
                        ord_status: Some(if *code == CancelRejectCode::UnknownOrder {
                            OrdStatus::Rejected
                        } else {
                            OrdStatus::New
                        }),
                        amend_reject_code: Some(code.ocg_code()),
                        reason: Some(VarStr::truncated(reason)),
                        ..Default::default()
                    };
                    (owner.session, Message::ExecutionReport(er))
                }
                Event::MassCancelReport {
                    owner,
                    cl_ord_id,
                    scope,
                    report_id,
                    rejected,
                    ..
                } => {
                    let (t, sec, seg) = match scope {
                        MassCancelScope::Security(s) => (
                            MassCancelRequestType::Security,
                            Some(FixedStr::display(s)),
                            None,
                        ),
                        MassCancelScope::All => (MassCancelRequestType::All, None, None),
                        MassCancelScope::Segment(g) => {
                            (MassCancelRequestType::MarketSegment, None, Some(g.code()))
                        }
                    };
                    let _ = seg;
                    let resp = match (rejected, t) {
                        (Some(_), _) => MassCancelResponse::Rejected,
                        (None, MassCancelRequestType::Security) => MassCancelResponse::Security,
                        (None, MassCancelRequestType::All) => MassCancelResponse::All,
                        (None, MassCancelRequestType::MarketSegment) => {
                            MassCancelResponse::MarketSegment
                        }
                    };
                    let m = OrderMassCancelReport {
                        cl_ord_id: Some(id21(cl_ord_id.as_str())),
                        submitting_broker_id: Some(FixedStr::number(u64::from(owner.broker.0))),
                        security_id: sec,
                        security_id_source: None,
                        security_exchange: None,
                        broker_location_id: None,
                        transact_time: transact_time(now),
                        mass_cancel_request_type: t,
                        owning_broker_id: None,
                        mass_action_report_id: id21(&format!("M{report_id}")),
                        mass_cancel_response: resp,
                        mass_cancel_reject_code: rejected.map(|_| 99),
                        reason: rejected.map(VarStr::truncated),
                    };
                    (owner.session, Message::OrderMassCancelReport(m))
                }
                _ => continue,
            };
            out.replies.push(Reply {
                comp_id: comp,
                message: msg,
            });
        }
    }
}

/// Order reject code for an engine reject (re-exported for activity tracking).
pub fn ocg_reject_code(c: RejectCode) -> u16 {
    c.ocg_code()
}

/// A price for logs.
pub fn fmt_price(p: Option<Price>) -> String {
    p.map_or_else(|| "MKT".into(), |p| p.to_string())
}

/// Quantity helper for tests and logs.
pub fn shares(q: Qty) -> u64 {
    q.0
}
