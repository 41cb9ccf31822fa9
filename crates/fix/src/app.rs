//! Typed application messages: builders (`to_message`) and parsers (`from_message`) between FIX
//! [`Message`]s and twinsite's domain types.
//!
//! Parsers assume the message already passed the dictionary (the session layer validates before
//! delivering). What is left is what the dictionary cannot express, and each failure says which
//! answer FIX prescribes ([`MappingError`]):
//! * a value that does not fit the domain type (a price finer than 0.001, a fractional quantity,
//!   a security code with leading zeros, a ClOrdID longer than 20) is a session Reject with
//!   SessionRejectReason 5 "value is incorrect (out of range)";
//! * a conditionally required field that is missing or forbidden (Price on a limit order, no Price
//!   on a market order, SecurityID on a per-security mass cancel) is a BusinessMessageReject with
//!   BusinessRejectReason 5.
//!
//! Parties: OCG-C's FIX interface carries broker ids, the broker location and the BCAN as
//! Parties entries; the public material does not give the PartyRole values, so twinsite uses the
//! standard FIX roles: 1 Executing Firm = Submitting Broker ID, 13 Order Origination Firm =
//! Owning Broker ID (OBO), 54 Sender Location = Broker Location ID, 3 Client ID = BCAN,
//! 17 Contra Firm = Counterparty Broker ID; PartyIDSource `D` (proprietary).

pub mod entitlement;
pub mod quote;

pub use entitlement::{
    PartyEntitlementsReport, PartyEntitlementsRequest, UserRequest, UserResponse,
};
pub use quote::{Quote, QuoteCancel, QuoteStatusReport};

use twinsite_core::{
    BrokerId, ClOrdId, MarketSegment, OrderId, Price, Qty, SecurityCode, Side, Timestamp,
};

use crate::codec::BodyWriter;
use crate::message::{Field, Message, SessionRejectReason, Violation};
use crate::time::{
    format_utc_timestamp, parse_utc_timestamp, write_utc_timestamp, TimePrecision,
    UTC_TIMESTAMP_MAX_LEN,
};

/// Why a validated message still cannot become a domain value, and the answer FIX prescribes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MappingError {
    /// Answer with a session Reject (35=3) carrying this violation.
    #[error("session reject: {0}")]
    Reject(Violation),
    /// Answer with a BusinessMessageReject (35=j).
    #[error("business reject {reason} on tag {ref_tag_id:?}: {text}")]
    BusinessReject {
        reason: u32,
        ref_tag_id: Option<u32>,
        text: String,
    },
}

impl MappingError {
    fn value(tag: u32, text: impl Into<String>) -> MappingError {
        MappingError::Reject(Violation::new(
            SessionRejectReason::ValueIsIncorrect,
            Some(tag),
            text,
        ))
    }
    fn conditional(tag: u32, text: impl Into<String>) -> MappingError {
        MappingError::BusinessReject {
            reason: business_reject_reason::CONDITIONALLY_REQUIRED_FIELD_MISSING,
            ref_tag_id: Some(tag),
            text: text.into(),
        }
    }
    fn missing(tag: u32) -> MappingError {
        MappingError::Reject(Violation::new(
            SessionRejectReason::RequiredTagMissing,
            Some(tag),
            format!("required tag {tag} missing"),
        ))
    }

    /// The BusinessMessageReject to send for a `BusinessReject` (None for a session Reject,
    /// which goes through [`crate::session::Session::reject`]).
    pub fn business_reject(
        &self,
        ref_seq_num: u64,
        ref_msg_type: &str,
    ) -> Option<BusinessMessageReject> {
        match self {
            MappingError::Reject(_) => None,
            MappingError::BusinessReject { reason, text, .. } => Some(BusinessMessageReject {
                ref_seq_num: Some(ref_seq_num),
                ref_msg_type: ref_msg_type.to_string(),
                business_reject_ref_id: None,
                reason: *reason,
                text: Some(text.clone()),
            }),
        }
    }
}

impl MappingError {
    /// Send the prescribed answer for the received message `ref_seq_num` on `session`: a
    /// session Reject or a BusinessMessageReject.
    pub fn answer(
        &self,
        session: &mut crate::session::Session,
        now: Timestamp,
        ref_seq_num: u64,
        ref_msg_type: &str,
    ) {
        match self {
            MappingError::Reject(v) => session.reject(now, ref_seq_num, ref_msg_type, v),
            MappingError::BusinessReject { .. } => {
                if let Some(bmr) = self.business_reject(ref_seq_num, ref_msg_type) {
                    // Built from the dictionary's own fields; it cannot fail validation.
                    let _ = session.send(now, bmr.to_message());
                }
            }
        }
    }
}

/// A message a participant may send to the exchange, parsed.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum ParticipantMessage {
    NewOrderSingle(NewOrderSingle),
    OrderCancelRequest(OrderCancelRequest),
    OrderCancelReplaceRequest(OrderCancelReplaceRequest),
    OrderMassCancelRequest(OrderMassCancelRequest),
    Quote(Quote),
    QuoteCancel(QuoteCancel),
    UserRequest(UserRequest),
    PartyEntitlementsRequest(PartyEntitlementsRequest),
}

impl ParticipantMessage {
    /// Parse a delivered message; exchange-to-participant types (ExecutionReport, ...) answer
    /// BusinessRejectReason 3 "unsupported message type".
    pub fn parse(m: &Message) -> Result<ParticipantMessage, MappingError> {
        Ok(match m.msg_type.as_str() {
            "D" => ParticipantMessage::NewOrderSingle(NewOrderSingle::from_message(m)?),
            "F" => ParticipantMessage::OrderCancelRequest(OrderCancelRequest::from_message(m)?),
            "G" => ParticipantMessage::OrderCancelReplaceRequest(
                OrderCancelReplaceRequest::from_message(m)?,
            ),
            "q" => {
                ParticipantMessage::OrderMassCancelRequest(OrderMassCancelRequest::from_message(m)?)
            }
            "S" => ParticipantMessage::Quote(Quote::from_message(m)?),
            "Z" => ParticipantMessage::QuoteCancel(QuoteCancel::from_message(m)?),
            "BE" => ParticipantMessage::UserRequest(UserRequest::from_message(m)?),
            "CU" => ParticipantMessage::PartyEntitlementsRequest(
                PartyEntitlementsRequest::from_message(m)?,
            ),
            other => {
                return Err(MappingError::BusinessReject {
                    reason: business_reject_reason::UNSUPPORTED_MESSAGE_TYPE,
                    ref_tag_id: Some(35),
                    text: format!("MsgType {other} is not accepted from participants"),
                })
            }
        })
    }
}

/// BusinessRejectReason (380) values OCG-C uses.
pub mod business_reject_reason {
    pub const OTHER: u32 = 0;
    pub const UNKNOWN_ID: u32 = 1;
    pub const UNKNOWN_SECURITY: u32 = 2;
    pub const UNSUPPORTED_MESSAGE_TYPE: u32 = 3;
    pub const APPLICATION_NOT_AVAILABLE: u32 = 4;
    pub const CONDITIONALLY_REQUIRED_FIELD_MISSING: u32 = 5;
    /// Text then holds the milliseconds left in the throttle window.
    pub const THROTTLE_LIMIT_EXCEEDED: u32 = 8;
}

/// Security exchange (207) of every OTP-C instrument.
pub const SECURITY_EXCHANGE: &str = "XHKG";
/// SecurityIDSource (22): exchange symbol.
pub const SECURITY_ID_SOURCE: &str = "8";

macro_rules! char_enum {
    ($(#[$m:meta])* $name:ident, $tag:literal { $($variant:ident = $code:literal),* $(,)? }) => {
        $(#[$m])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
        pub enum $name { $($variant),* }
        impl $name {
            pub const TAG: u32 = $tag;
            pub fn code(self) -> &'static str {
                match self { $($name::$variant => $code),* }
            }
            pub fn from_code(code: &str) -> Result<$name, MappingError> {
                match code {
                    $($code => Ok($name::$variant),)*
                    _ => Err(MappingError::value(
                        $tag,
                        format!("{} {code:?} is not supported", stringify!($name)),
                    )),
                }
            }
        }
    };
}

char_enum!(
    /// Side (54). Short selling is a side in FIX.
    OrderSide, 54 { Buy = "1", Sell = "2", SellShort = "5" }
);
char_enum!(OrdType, 40 { Market = "1", Limit = "2" });
char_enum!(
    /// TimeInForce (59); absent means Day.
    TimeInForce, 59 { Day = "0", ImmediateOrCancel = "3", FillOrKill = "4", AtCrossing = "9" }
);
char_enum!(OrderCapacity, 528 { Agency = "A", Principal = "P" });
char_enum!(LotType, 1093 { OddLot = "1", BoardLot = "2" });
char_enum!(
    /// ExecType (150).
    ExecType, 150 {
        New = "0", Cancelled = "4", Replaced = "5", Rejected = "8", Expired = "C",
        Restated = "D", Trade = "F", TradeCancel = "H", Triggered = "L",
    }
);
char_enum!(
    /// OrdStatus (39).
    OrdStatus, 39 {
        New = "0", PartiallyFilled = "1", Filled = "2", Cancelled = "4", PendingCancel = "6",
        Rejected = "8", PendingNew = "A", Expired = "C", PendingReplace = "E",
    }
);
char_enum!(CxlRejResponseTo, 434 { Cancel = "1", Replace = "2" });

impl OrderSide {
    /// The book side and the short-sell flag.
    pub fn book_side(self) -> (Side, bool) {
        match self {
            OrderSide::Buy => (Side::Buy, false),
            OrderSide::Sell => (Side::Sell, false),
            OrderSide::SellShort => (Side::Sell, true),
        }
    }
}

/// The party ids twinsite maps (see the module documentation for roles).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Parties {
    pub submitting_broker: Option<BrokerId>,
    pub owning_broker: Option<BrokerId>,
    pub broker_location: Option<String>,
    pub bcan: Option<String>,
    pub counterparty_broker: Option<BrokerId>,
}

pub mod party_role {
    pub const EXECUTING_FIRM: u32 = 1;
    pub const CLIENT_ID: u32 = 3;
    pub const ORDER_ORIGINATION_FIRM: u32 = 13;
    pub const CONTRA_FIRM: u32 = 17;
    pub const SENDER_LOCATION: u32 = 54;
}

/// Where a message's fields are written: a [`Message`] (fields as text) or a
/// [`BodyWriter`] (the wire form, no intermediate field list). Both get the same fields in the
/// same order from the same code, so `to_message` and `write_body` always agree.
pub trait FieldSink {
    fn put(&mut self, tag: u32, value: &str);
    fn put_uint(&mut self, tag: u32, n: u64);
    /// A price, as its `Display` form.
    fn put_price(&mut self, tag: u32, price: Price);
    /// A UTCTimestamp with microseconds (TransactTime, as OCG-C's binary Transaction Time).
    fn put_time(&mut self, tag: u32, t: Timestamp) {
        let mut buf = [0u8; UTC_TIMESTAMP_MAX_LEN];
        let n = write_utc_timestamp(t, TimePrecision::Micros, &mut buf);
        // The formatter writes ASCII only.
        self.put(tag, std::str::from_utf8(&buf[..n]).unwrap_or_default());
    }
}

impl FieldSink for Message {
    fn put(&mut self, tag: u32, value: &str) {
        self.push(tag, value);
    }
    fn put_uint(&mut self, tag: u32, n: u64) {
        self.push(tag, n.to_string());
    }
    fn put_price(&mut self, tag: u32, price: Price) {
        self.push(tag, price.to_string());
    }
}

impl FieldSink for BodyWriter {
    fn put(&mut self, tag: u32, value: &str) {
        self.str(tag, value);
    }
    fn put_uint(&mut self, tag: u32, n: u64) {
        self.uint(tag, n);
    }
    fn put_price(&mut self, tag: u32, price: Price) {
        self.price(tag, price);
    }
}

impl Parties {
    fn write(&self, m: &mut impl FieldSink) {
        enum Id<'a> {
            Broker(BrokerId),
            Text(&'a str),
        }
        let ids = [
            (
                party_role::EXECUTING_FIRM,
                self.submitting_broker.map(Id::Broker),
            ),
            (
                party_role::ORDER_ORIGINATION_FIRM,
                self.owning_broker.map(Id::Broker),
            ),
            (
                party_role::SENDER_LOCATION,
                self.broker_location.as_deref().map(Id::Text),
            ),
            (party_role::CLIENT_ID, self.bcan.as_deref().map(Id::Text)),
            (
                party_role::CONTRA_FIRM,
                self.counterparty_broker.map(Id::Broker),
            ),
        ];
        let present = ids.iter().filter(|(_, v)| v.is_some()).count();
        if present == 0 {
            return;
        }
        m.put_uint(453, present as u64);
        for (role, id) in &ids {
            let Some(id) = id else { continue };
            match id {
                // A broker id's text is its number.
                Id::Broker(b) => m.put_uint(448, u64::from(b.0)),
                Id::Text(t) => m.put(448, t),
            }
            m.put(447, "D");
            m.put_uint(452, u64::from(*role));
        }
    }

    fn read(m: &Message) -> Result<Parties, MappingError> {
        let mut p = Parties::default();
        for entry in m.group(453) {
            let get = |tag| {
                entry
                    .iter()
                    .find(|f: &&Field| f.tag == tag)
                    .map(|f| f.value.as_str())
            };
            let id = get(448).unwrap_or_default();
            let broker = || {
                id.parse::<BrokerId>()
                    .map_err(|e| MappingError::value(448, e.to_string()))
            };
            match get(452).and_then(|r| r.parse::<u32>().ok()) {
                Some(party_role::EXECUTING_FIRM) => p.submitting_broker = Some(broker()?),
                Some(party_role::ORDER_ORIGINATION_FIRM) => p.owning_broker = Some(broker()?),
                Some(party_role::CONTRA_FIRM) => p.counterparty_broker = Some(broker()?),
                Some(party_role::SENDER_LOCATION) => p.broker_location = Some(id.to_string()),
                Some(party_role::CLIENT_ID) => p.bcan = Some(id.to_string()),
                _ => {
                    return Err(MappingError::value(
                        452,
                        format!("PartyRole {:?} is not used", get(452)),
                    ))
                }
            }
        }
        Ok(p)
    }
}

/// ValueChecksGrp entry: ValueCheckType (1869: 1 price, 2 notional) and ValueCheckAction
/// (1870: 0 do not check, 1 check).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ValueCheck {
    pub check_type: u32,
    pub action: u32,
}

/// DisclosureInstructionGrp entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Disclosure {
    pub disclosure_type: u32,
    pub instruction: u32,
}

/// The terms shared by NewOrderSingle and OrderCancelReplaceRequest.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct OrderTerms {
    pub parties: Parties,
    pub security: SecurityCode,
    pub transact_time: Timestamp,
    pub side: OrderSide,
    pub ord_type: OrdType,
    /// Required for limit orders, forbidden for market orders.
    pub price: Option<Price>,
    pub qty: Qty,
    pub time_in_force: TimeInForce,
    /// PositionEffect C: a buy covering a short.
    pub position_close: bool,
    pub order_restrictions: Option<String>,
    pub max_price_levels: Option<u32>,
    pub order_capacity: Option<OrderCapacity>,
    pub text: Option<String>,
    pub value_checks: Vec<ValueCheck>,
    pub disclosure: Vec<Disclosure>,
    pub lot_type: Option<LotType>,
}

impl OrderTerms {
    fn write(&self, m: &mut impl FieldSink) {
        self.parties.write(m);
        write_instrument(m, self.security);
        m.put_time(60, self.transact_time);
        m.put(54, self.side.code());
        m.put(40, self.ord_type.code());
        if let Some(p) = self.price {
            m.put_price(44, p);
        }
        m.put_uint(38, self.qty.0);
        if self.time_in_force != TimeInForce::Day {
            m.put(59, self.time_in_force.code());
        }
        if self.position_close {
            m.put(77, "C");
        }
        if let Some(v) = &self.order_restrictions {
            m.put(529, v);
        }
        if let Some(v) = self.max_price_levels {
            m.put_uint(1090, u64::from(v));
        }
        if let Some(c) = self.order_capacity {
            m.put(528, c.code());
        }
        if let Some(v) = &self.text {
            m.put(58, v);
        }
        if !self.value_checks.is_empty() {
            m.put_uint(1868, self.value_checks.len() as u64);
            for c in &self.value_checks {
                m.put_uint(1869, u64::from(c.check_type));
                m.put_uint(1870, u64::from(c.action));
            }
        }
        if !self.disclosure.is_empty() {
            m.put_uint(1812, self.disclosure.len() as u64);
            for d in &self.disclosure {
                m.put_uint(1813, u64::from(d.disclosure_type));
                m.put_uint(1814, u64::from(d.instruction));
            }
        }
        if let Some(l) = self.lot_type {
            m.put(1093, l.code());
        }
    }

    fn read(m: &Message) -> Result<OrderTerms, MappingError> {
        let ord_type = OrdType::from_code(required(m, 40)?)?;
        let price = optional(m, 44).map(|v| parse_price(44, v)).transpose()?;
        match (ord_type, price) {
            (OrdType::Limit, None) => {
                return Err(MappingError::conditional(
                    44,
                    "Price (44) is required for a limit order",
                ))
            }
            (OrdType::Market, Some(_)) => {
                return Err(MappingError::conditional(
                    44,
                    "Price (44) must be absent for a market order",
                ))
            }
            _ => {}
        }
        let pairs = |count_tag: u32| -> Result<Vec<(u32, u32)>, MappingError> {
            m.group(count_tag)
                .iter()
                .map(|entry| {
                    let a = entry
                        .first()
                        .map(|f| f.value.parse().unwrap_or(0))
                        .unwrap_or(0);
                    let b = entry
                        .get(1)
                        .map(|f| f.value.parse().unwrap_or(0))
                        .unwrap_or(0);
                    Ok((a, b))
                })
                .collect()
        };
        Ok(OrderTerms {
            parties: Parties::read(m)?,
            security: parse_security(m)?,
            transact_time: parse_time(60, required(m, 60)?)?,
            side: OrderSide::from_code(required(m, 54)?)?,
            ord_type,
            price,
            qty: parse_qty(38, required(m, 38)?)?,
            time_in_force: optional(m, 59)
                .map(TimeInForce::from_code)
                .transpose()?
                .unwrap_or(TimeInForce::Day),
            position_close: optional(m, 77) == Some("C"),
            order_restrictions: optional(m, 529).map(str::to_string),
            max_price_levels: optional(m, 1090).map(|v| parse_u32(1090, v)).transpose()?,
            order_capacity: optional(m, 528).map(OrderCapacity::from_code).transpose()?,
            text: optional(m, 58).map(str::to_string),
            value_checks: pairs(1868)?
                .into_iter()
                .map(|(check_type, action)| ValueCheck { check_type, action })
                .collect(),
            disclosure: pairs(1812)?
                .into_iter()
                .map(|(disclosure_type, instruction)| Disclosure {
                    disclosure_type,
                    instruction,
                })
                .collect(),
            lot_type: optional(m, 1093).map(LotType::from_code).transpose()?,
        })
    }

    /// A limit order with defaults (Day, no optional fields).
    pub fn limit(
        security: SecurityCode,
        side: OrderSide,
        price: Price,
        qty: Qty,
        transact_time: Timestamp,
    ) -> Self {
        OrderTerms {
            parties: Parties::default(),
            security,
            transact_time,
            side,
            ord_type: OrdType::Limit,
            price: Some(price),
            qty,
            time_in_force: TimeInForce::Day,
            position_close: false,
            order_restrictions: None,
            max_price_levels: None,
            order_capacity: None,
            text: None,
            value_checks: Vec::new(),
            disclosure: Vec::new(),
            lot_type: None,
        }
    }
}

/// NewOrderSingle (D).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct NewOrderSingle {
    pub cl_ord_id: ClOrdId,
    pub terms: OrderTerms,
}

impl NewOrderSingle {
    pub fn to_message(&self) -> Message {
        let mut m = Message::new("D").with(11, self.cl_ord_id.as_str());
        self.terms.write(&mut m);
        m
    }
    /// The body in wire form (the fields of [`NewOrderSingle::to_message`]).
    pub fn write_body(&self, w: &mut BodyWriter) {
        w.put(11, self.cl_ord_id.as_str());
        self.terms.write(w);
    }
    pub fn from_message(m: &Message) -> Result<Self, MappingError> {
        Ok(NewOrderSingle {
            cl_ord_id: parse_cl_ord_id(11, required(m, 11)?)?,
            terms: OrderTerms::read(m)?,
        })
    }
}

/// OrderCancelReplaceRequest (G).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct OrderCancelReplaceRequest {
    pub cl_ord_id: ClOrdId,
    pub orig_cl_ord_id: ClOrdId,
    pub order_id: Option<OrderId>,
    pub terms: OrderTerms,
}

impl OrderCancelReplaceRequest {
    pub fn to_message(&self) -> Message {
        let mut m = Message::new("G")
            .with(11, self.cl_ord_id.as_str())
            .with(41, self.orig_cl_ord_id.as_str())
            .with_opt(37, self.order_id.map(|o| o.to_string()));
        self.terms.write(&mut m);
        m
    }
    pub fn from_message(m: &Message) -> Result<Self, MappingError> {
        Ok(OrderCancelReplaceRequest {
            cl_ord_id: parse_cl_ord_id(11, required(m, 11)?)?,
            orig_cl_ord_id: parse_cl_ord_id(41, required(m, 41)?)?,
            order_id: optional(m, 37).map(|v| parse_order_id(37, v)).transpose()?,
            terms: OrderTerms::read(m)?,
        })
    }
}

/// OrderCancelRequest (F); with an owning broker in Parties it is an on-behalf-of cancel.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct OrderCancelRequest {
    pub cl_ord_id: ClOrdId,
    /// Required unless `order_id` is given (OBO cancel).
    pub orig_cl_ord_id: Option<ClOrdId>,
    pub order_id: Option<OrderId>,
    pub parties: Parties,
    pub security: SecurityCode,
    pub side: OrderSide,
    pub transact_time: Timestamp,
    pub text: Option<String>,
}

impl OrderCancelRequest {
    pub fn to_message(&self) -> Message {
        let mut m = Message::new("F")
            .with(11, self.cl_ord_id.as_str())
            .with_opt(41, self.orig_cl_ord_id.map(|c| c.as_str().to_string()))
            .with_opt(37, self.order_id.map(|o| o.to_string()));
        self.parties.write(&mut m);
        write_instrument(&mut m, self.security);
        m.push(54, self.side.code());
        m.push(60, format_time(self.transact_time));
        push_opt(&mut m, 58, self.text.clone());
        m
    }
    pub fn from_message(m: &Message) -> Result<Self, MappingError> {
        let orig_cl_ord_id = optional(m, 41)
            .map(|v| parse_cl_ord_id(41, v))
            .transpose()?;
        let order_id = optional(m, 37).map(|v| parse_order_id(37, v)).transpose()?;
        if orig_cl_ord_id.is_none() && order_id.is_none() {
            return Err(MappingError::conditional(
                41,
                "OrigClOrdID (41) or OrderID (37) is required",
            ));
        }
        Ok(OrderCancelRequest {
            cl_ord_id: parse_cl_ord_id(11, required(m, 11)?)?,
            orig_cl_ord_id,
            order_id,
            parties: Parties::read(m)?,
            security: parse_security(m)?,
            side: OrderSide::from_code(required(m, 54)?)?,
            transact_time: parse_time(60, required(m, 60)?)?,
            text: optional(m, 58).map(str::to_string),
        })
    }
}

/// What an OrderMassCancelRequest covers (MassCancelRequestType 530).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum MassCancelScope {
    /// 1: one security.
    Security(SecurityCode),
    /// 7: all orders of the broker.
    All,
    /// 9: a market segment.
    MarketSegment(MarketSegment),
}

impl MassCancelScope {
    pub fn code(self) -> &'static str {
        match self {
            MassCancelScope::Security(_) => "1",
            MassCancelScope::All => "7",
            MassCancelScope::MarketSegment(_) => "9",
        }
    }

    fn write(self, m: &mut Message) {
        m.push(530, self.code());
        match self {
            MassCancelScope::Security(s) => write_instrument(m, s),
            MassCancelScope::MarketSegment(seg) => m.push(1300, seg.code()),
            MassCancelScope::All => {}
        }
    }

    fn read(m: &Message) -> Result<MassCancelScope, MappingError> {
        match required(m, 530)? {
            "1" => {
                if optional(m, 48).is_none() {
                    return Err(MappingError::conditional(
                        48,
                        "SecurityID (48) is required for MassCancelRequestType 1",
                    ));
                }
                Ok(MassCancelScope::Security(parse_security(m)?))
            }
            "7" => Ok(MassCancelScope::All),
            "9" => {
                let v = optional(m, 1300).ok_or_else(|| {
                    MappingError::conditional(
                        1300,
                        "MarketSegmentID (1300) is required for MassCancelRequestType 9",
                    )
                })?;
                v.parse::<MarketSegment>()
                    .map(MassCancelScope::MarketSegment)
                    .map_err(|e| MappingError::value(1300, e.to_string()))
            }
            other => Err(MappingError::value(
                530,
                format!("MassCancelRequestType {other:?} is not supported"),
            )),
        }
    }
}

/// OrderMassCancelRequest (q).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct OrderMassCancelRequest {
    pub cl_ord_id: ClOrdId,
    pub parties: Parties,
    pub scope: MassCancelScope,
    /// Absent = both sides.
    pub side: Option<OrderSide>,
    pub transact_time: Timestamp,
}

impl OrderMassCancelRequest {
    pub fn to_message(&self) -> Message {
        let mut m = Message::new("q").with(11, self.cl_ord_id.as_str());
        self.parties.write(&mut m);
        self.scope.write(&mut m);
        push_opt(&mut m, 54, self.side.map(|s| s.code().to_string()));
        m.push(60, format_time(self.transact_time));
        m
    }
    pub fn from_message(m: &Message) -> Result<Self, MappingError> {
        Ok(OrderMassCancelRequest {
            cl_ord_id: parse_cl_ord_id(11, required(m, 11)?)?,
            parties: Parties::read(m)?,
            scope: MassCancelScope::read(m)?,
            side: optional(m, 54).map(OrderSide::from_code).transpose()?,
            transact_time: parse_time(60, required(m, 60)?)?,
        })
    }
}

/// ExecutionReport (8).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ExecutionReport {
    pub order_id: OrderId,
    pub cl_ord_id: Option<ClOrdId>,
    pub orig_cl_ord_id: Option<ClOrdId>,
    /// Inline up to 24 bytes (no allocation per report).
    pub exec_id: crate::message::FieldValue,
    pub exec_type: ExecType,
    pub ord_status: OrdStatus,
    pub parties: Parties,
    pub security: SecurityCode,
    pub side: OrderSide,
    pub ord_type: Option<OrdType>,
    pub price: Option<Price>,
    pub qty: Option<Qty>,
    pub time_in_force: Option<TimeInForce>,
    pub cum_qty: Qty,
    pub leaves_qty: Qty,
    pub last_qty: Option<Qty>,
    pub last_px: Option<Price>,
    pub transact_time: Option<Timestamp>,
    /// OrdRejReason (103): OCG-C Order Reject Code.
    pub ord_rej_reason: Option<u32>,
    /// ExecRestatementReason (378), e.g. 104 cancel on disconnect.
    pub exec_restatement_reason: Option<u32>,
    pub text: Option<String>,
    /// RejectText (1328): the exchange's reason text.
    pub reject_text: Option<String>,
    pub lot_type: Option<LotType>,
    pub trd_match_id: Option<String>,
    /// ExecRefID (19): the execution a trade cancel refers to.
    pub exec_ref_id: Option<String>,
    pub aggressor: Option<bool>,
    /// ExchangeTradeType (5681, custom).
    pub exchange_trade_type: Option<char>,
}

impl ExecutionReport {
    /// The mandatory part; every optional field empty.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        order_id: OrderId,
        exec_id: &str,
        exec_type: ExecType,
        ord_status: OrdStatus,
        security: SecurityCode,
        side: OrderSide,
        cum_qty: Qty,
        leaves_qty: Qty,
    ) -> ExecutionReport {
        ExecutionReport {
            order_id,
            cl_ord_id: None,
            orig_cl_ord_id: None,
            exec_id: exec_id.into(),
            exec_type,
            ord_status,
            parties: Parties::default(),
            security,
            side,
            ord_type: None,
            price: None,
            qty: None,
            time_in_force: None,
            cum_qty,
            leaves_qty,
            last_qty: None,
            last_px: None,
            transact_time: None,
            ord_rej_reason: None,
            exec_restatement_reason: None,
            text: None,
            reject_text: None,
            lot_type: None,
            trd_match_id: None,
            exec_ref_id: None,
            aggressor: None,
            exchange_trade_type: None,
        }
    }

    pub fn to_message(&self) -> Message {
        let mut m = Message::new("8");
        self.write(&mut m);
        m
    }

    /// The body in wire form, for [`crate::session::Session::send_body`]: the same fields as
    /// [`ExecutionReport::to_message`], written straight into the buffer.
    pub fn write_body(&self, w: &mut BodyWriter) {
        self.write(w);
    }

    fn write(&self, m: &mut impl FieldSink) {
        m.put_uint(37, self.order_id.0);
        if let Some(c) = &self.cl_ord_id {
            m.put(11, c.as_str());
        }
        if let Some(c) = &self.orig_cl_ord_id {
            m.put(41, c.as_str());
        }
        m.put(17, &self.exec_id);
        m.put(150, self.exec_type.code());
        m.put(39, self.ord_status.code());
        self.parties.write(m);
        write_instrument(m, self.security);
        m.put(54, self.side.code());
        if let Some(t) = self.ord_type {
            m.put(40, t.code());
        }
        if let Some(p) = self.price {
            m.put_price(44, p);
        }
        if let Some(q) = self.qty {
            m.put_uint(38, q.0);
        }
        if let Some(t) = self.time_in_force {
            m.put(59, t.code());
        }
        if let Some(t) = &self.text {
            m.put(58, t);
        }
        if let Some(t) = &self.reject_text {
            m.put(1328, t);
        }
        m.put_uint(14, self.cum_qty.0);
        m.put_uint(151, self.leaves_qty.0);
        if let Some(q) = self.last_qty {
            m.put_uint(32, q.0);
        }
        if let Some(p) = self.last_px {
            m.put_price(31, p);
        }
        if let Some(t) = self.transact_time {
            m.put_time(60, t);
        }
        if let Some(v) = self.ord_rej_reason {
            m.put_uint(103, u64::from(v));
        }
        if let Some(v) = self.exec_restatement_reason {
            m.put_uint(378, u64::from(v));
        }
        if let Some(l) = self.lot_type {
            m.put(1093, l.code());
        }
        if let Some(v) = &self.exec_ref_id {
            m.put(19, v);
        }
        if let Some(v) = &self.trd_match_id {
            m.put(880, v);
        }
        if let Some(c) = self.exchange_trade_type {
            m.put(5681, c.encode_utf8(&mut [0; 4]));
        }
        if let Some(a) = self.aggressor {
            m.put(1057, if a { "Y" } else { "N" });
        }
    }

    pub fn from_message(m: &Message) -> Result<Self, MappingError> {
        let price = |tag| optional(m, tag).map(|v| parse_price(tag, v)).transpose();
        let qty = |tag| optional(m, tag).map(|v| parse_qty(tag, v)).transpose();
        let number = |tag| optional(m, tag).map(|v| parse_u32(tag, v)).transpose();
        let text = |tag| optional(m, tag).map(str::to_string);
        Ok(ExecutionReport {
            order_id: parse_order_id(37, required(m, 37)?)?,
            cl_ord_id: optional(m, 11)
                .map(|v| parse_cl_ord_id(11, v))
                .transpose()?,
            orig_cl_ord_id: optional(m, 41)
                .map(|v| parse_cl_ord_id(41, v))
                .transpose()?,
            exec_id: required(m, 17)?.into(),
            exec_type: ExecType::from_code(required(m, 150)?)?,
            ord_status: OrdStatus::from_code(required(m, 39)?)?,
            parties: Parties::read(m)?,
            security: parse_security(m)?,
            side: OrderSide::from_code(required(m, 54)?)?,
            ord_type: optional(m, 40).map(OrdType::from_code).transpose()?,
            price: price(44)?,
            qty: qty(38)?,
            time_in_force: optional(m, 59).map(TimeInForce::from_code).transpose()?,
            cum_qty: parse_qty(14, required(m, 14)?)?,
            leaves_qty: parse_qty(151, required(m, 151)?)?,
            last_qty: qty(32)?,
            last_px: price(31)?,
            transact_time: optional(m, 60).map(|v| parse_time(60, v)).transpose()?,
            ord_rej_reason: number(103)?,
            exec_restatement_reason: number(378)?,
            text: text(58),
            reject_text: text(1328),
            lot_type: optional(m, 1093).map(LotType::from_code).transpose()?,
            trd_match_id: text(880),
            exec_ref_id: text(19),
            aggressor: optional(m, 1057).map(|v| v == "Y"),
            exchange_trade_type: optional(m, 5681).and_then(|v| v.chars().next()),
        })
    }
}

/// OrderCancelReject (9): FIX's separate answer to a refused cancel or amend.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct OrderCancelReject {
    /// `None` is written as `NONE` (unknown order).
    pub order_id: Option<OrderId>,
    pub cl_ord_id: ClOrdId,
    pub orig_cl_ord_id: Option<ClOrdId>,
    pub ord_status: OrdStatus,
    pub response_to: CxlRejResponseTo,
    /// CxlRejReason (102): OCG-C Cancel/Amend Reject Code.
    pub reason: Option<u32>,
    pub text: Option<String>,
    pub transact_time: Option<Timestamp>,
}

impl OrderCancelReject {
    pub fn to_message(&self) -> Message {
        Message::new("9")
            .with(
                37,
                self.order_id
                    .map_or_else(|| "NONE".to_string(), |o| o.to_string()),
            )
            .with(11, self.cl_ord_id.as_str())
            .with_opt(41, self.orig_cl_ord_id.map(|c| c.as_str().to_string()))
            .with(39, self.ord_status.code())
            .with(434, self.response_to.code())
            .with_opt(102, self.reason.map(|r| r.to_string()))
            .with_opt(58, self.text.clone())
            .with_opt(60, self.transact_time.map(format_time))
    }
    pub fn from_message(m: &Message) -> Result<Self, MappingError> {
        let order_id = match required(m, 37)? {
            "NONE" => None,
            v => Some(parse_order_id(37, v)?),
        };
        Ok(OrderCancelReject {
            order_id,
            cl_ord_id: parse_cl_ord_id(11, required(m, 11)?)?,
            orig_cl_ord_id: optional(m, 41)
                .map(|v| parse_cl_ord_id(41, v))
                .transpose()?,
            ord_status: OrdStatus::from_code(required(m, 39)?)?,
            response_to: CxlRejResponseTo::from_code(required(m, 434)?)?,
            reason: optional(m, 102).map(|v| parse_u32(102, v)).transpose()?,
            text: optional(m, 58).map(str::to_string),
            transact_time: optional(m, 60).map(|v| parse_time(60, v)).transpose()?,
        })
    }
}

/// OrderMassCancelReport (r).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct OrderMassCancelReport {
    pub cl_ord_id: Option<ClOrdId>,
    pub mass_action_report_id: String,
    pub scope: MassCancelScope,
    /// MassCancelResponse (531): `false` = 0 rejected, `true` = the scope's code echoed.
    pub accepted: bool,
    /// MassCancelRejectReason (532): 8 unknown market segment, 99 other.
    pub reject_reason: Option<u32>,
    pub parties: Parties,
    pub side: Option<OrderSide>,
    pub transact_time: Timestamp,
    pub text: Option<String>,
}

impl OrderMassCancelReport {
    pub fn to_message(&self) -> Message {
        let mut m = Message::new("r")
            .with_opt(11, self.cl_ord_id.map(|c| c.as_str().to_string()))
            .with(1369, self.mass_action_report_id.clone());
        self.scope.write(&mut m);
        m.push(
            531,
            if self.accepted {
                self.scope.code()
            } else {
                "0"
            },
        );
        push_opt(&mut m, 532, self.reject_reason.map(|r| r.to_string()));
        self.parties.write(&mut m);
        push_opt(&mut m, 54, self.side.map(|s| s.code().to_string()));
        m.push(60, format_time(self.transact_time));
        push_opt(&mut m, 58, self.text.clone());
        m
    }
    pub fn from_message(m: &Message) -> Result<Self, MappingError> {
        Ok(OrderMassCancelReport {
            cl_ord_id: optional(m, 11)
                .map(|v| parse_cl_ord_id(11, v))
                .transpose()?,
            mass_action_report_id: required(m, 1369)?.to_string(),
            scope: MassCancelScope::read(m)?,
            accepted: required(m, 531)? != "0",
            reject_reason: optional(m, 532).map(|v| parse_u32(532, v)).transpose()?,
            parties: Parties::read(m)?,
            side: optional(m, 54).map(OrderSide::from_code).transpose()?,
            transact_time: parse_time(60, required(m, 60)?)?,
            text: optional(m, 58).map(str::to_string),
        })
    }
}

/// BusinessMessageReject (j).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct BusinessMessageReject {
    pub ref_seq_num: Option<u64>,
    pub ref_msg_type: String,
    pub business_reject_ref_id: Option<String>,
    pub reason: u32,
    pub text: Option<String>,
}

impl BusinessMessageReject {
    /// Throttle exceeded: Text holds the milliseconds left in the window (OCG-C §1.12).
    pub fn throttle(
        ref_seq_num: u64,
        ref_msg_type: &str,
        ref_id: Option<&str>,
        millis_left: u64,
    ) -> Self {
        BusinessMessageReject {
            ref_seq_num: Some(ref_seq_num),
            ref_msg_type: ref_msg_type.to_string(),
            business_reject_ref_id: ref_id.map(str::to_string),
            reason: business_reject_reason::THROTTLE_LIMIT_EXCEEDED,
            text: Some(millis_left.to_string()),
        }
    }
    pub fn to_message(&self) -> Message {
        Message::new("j")
            .with_opt(45, self.ref_seq_num.map(|s| s.to_string()))
            .with(372, self.ref_msg_type.clone())
            .with_opt(379, self.business_reject_ref_id.clone())
            .with(380, self.reason.to_string())
            .with_opt(58, self.text.clone())
    }
    pub fn from_message(m: &Message) -> Result<Self, MappingError> {
        Ok(BusinessMessageReject {
            ref_seq_num: optional(m, 45).and_then(crate::message::parse_seq_num),
            ref_msg_type: required(m, 372)?.to_string(),
            business_reject_ref_id: optional(m, 379).map(str::to_string),
            reason: parse_u32(380, required(m, 380)?)?,
            text: optional(m, 58).map(str::to_string),
        })
    }
}

fn push_opt(m: &mut Message, tag: u32, value: Option<String>) {
    if let Some(v) = value {
        m.push(tag, v);
    }
}

fn required(m: &Message, tag: u32) -> Result<&str, MappingError> {
    m.get(tag).ok_or_else(|| MappingError::missing(tag))
}

fn optional(m: &Message, tag: u32) -> Option<&str> {
    m.get(tag)
}

fn write_instrument(m: &mut impl FieldSink, security: SecurityCode) {
    // A security code's text is its number.
    m.put_uint(48, u64::from(security.0));
    m.put(22, SECURITY_ID_SOURCE);
    m.put(207, SECURITY_EXCHANGE);
}

fn parse_security(m: &Message) -> Result<SecurityCode, MappingError> {
    let v = required(m, 48)?;
    if optional(m, 22).is_some_and(|s| s != SECURITY_ID_SOURCE) {
        return Err(MappingError::value(
            22,
            "SecurityIDSource must be 8 (exchange symbol)",
        ));
    }
    v.parse()
        .map_err(|e: twinsite_core::IdError| MappingError::value(48, e.to_string()))
}

fn parse_cl_ord_id(tag: u32, v: &str) -> Result<ClOrdId, MappingError> {
    ClOrdId::new(v).map_err(|e| MappingError::value(tag, e.to_string()))
}

fn parse_order_id(tag: u32, v: &str) -> Result<OrderId, MappingError> {
    v.parse::<u64>()
        .map(OrderId)
        .map_err(|_| MappingError::value(tag, format!("OrderID {v:?} is not an exchange order id")))
}

fn parse_u32(tag: u32, v: &str) -> Result<u32, MappingError> {
    v.parse()
        .map_err(|_| MappingError::value(tag, format!("{v:?} is not a number in range")))
}

/// A positive price with at most three decimals, exactly.
pub fn parse_price(tag: u32, v: &str) -> Result<Price, MappingError> {
    // Checked here first: core's `Price::parse` slices by byte index and must only see ASCII.
    let well_formed = !v.is_empty()
        && v.len() <= 24
        && v.bytes().all(|c| c.is_ascii_digit() || c == b'.')
        && v.bytes().filter(|&c| c == b'.').count() <= 1;
    if !well_formed {
        return Err(MappingError::value(
            tag,
            format!("price {v:?} is not a positive decimal"),
        ));
    }
    match Price::parse(v) {
        Ok(p) if p.0 > 0 => Ok(p),
        Ok(_) => Err(MappingError::value(
            tag,
            format!("price {v} must be positive"),
        )),
        Err(e) => Err(MappingError::value(tag, format!("price {v}: {e}"))),
    }
}

/// A whole, non-negative number of shares; `400`, `400.0` and `400.00` are equal, `400.5` is
/// refused.
pub fn parse_qty(tag: u32, v: &str) -> Result<Qty, MappingError> {
    let (int, frac) = v.split_once('.').unwrap_or((v, ""));
    let whole = !int.is_empty()
        && int.len() <= 15
        && int.bytes().all(|c| c.is_ascii_digit())
        && frac.bytes().all(|c| c == b'0');
    if !whole {
        return Err(MappingError::value(
            tag,
            format!("quantity {v} is not a whole number of shares"),
        ));
    }
    int.parse()
        .map(Qty)
        .map_err(|_| MappingError::value(tag, format!("quantity {v} out of range")))
}

fn parse_time(tag: u32, v: &str) -> Result<Timestamp, MappingError> {
    parse_utc_timestamp(v).ok_or_else(|| {
        MappingError::Reject(Violation::new(
            SessionRejectReason::IncorrectDataFormat,
            Some(tag),
            format!("{v:?} is not a UTCTimestamp"),
        ))
    })
}

/// TransactTime precision: microseconds, as OCG-C's binary Transaction Time.
fn format_time(t: Timestamp) -> String {
    format_utc_timestamp(t, TimePrecision::Micros)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dictionary::validate;
    use proptest::prelude::*;

    fn t() -> Timestamp {
        Timestamp::from_secs(1_700_000_000).plus_nanos(123_456_000)
    }

    fn full_order() -> NewOrderSingle {
        let mut terms = OrderTerms::limit(
            SecurityCode(5),
            OrderSide::SellShort,
            Price(38_550),
            Qty(400),
            t(),
        );
        terms.parties = Parties {
            submitting_broker: Some(BrokerId(1234)),
            owning_broker: None,
            broker_location: Some("77".into()),
            bcan: Some("BCAN1".into()),
            counterparty_broker: None,
        };
        terms.time_in_force = TimeInForce::ImmediateOrCancel;
        terms.order_restrictions = Some("2 5".into());
        terms.max_price_levels = Some(1);
        terms.order_capacity = Some(OrderCapacity::Principal);
        terms.text = Some("ref1".into());
        terms.value_checks = vec![ValueCheck {
            check_type: 1,
            action: 0,
        }];
        terms.disclosure = vec![Disclosure {
            disclosure_type: 100,
            instruction: 0,
        }];
        terms.lot_type = Some(LotType::BoardLot);
        NewOrderSingle {
            cl_ord_id: ClOrdId::new("42").unwrap(),
            terms,
        }
    }

    #[test]
    fn new_order_round_trips_and_validates() {
        let order = full_order();
        let m = order.to_message();
        assert_eq!(validate("D", &m.body), Ok(()));
        assert_eq!(m.get(44), Some("38.550"));
        let mut w = BodyWriter::default();
        order.write_body(&mut w);
        assert_eq!(w.as_bytes(), crate::codec::encode_body(&m.body));
        assert_eq!(NewOrderSingle::from_message(&m), Ok(order));
    }

    #[test]
    fn replace_cancel_and_mass_cancel_round_trip() {
        let replace = OrderCancelReplaceRequest {
            cl_ord_id: ClOrdId::new("43").unwrap(),
            orig_cl_ord_id: ClOrdId::new("42").unwrap(),
            order_id: Some(OrderId(9)),
            terms: full_order().terms,
        };
        let m = replace.to_message();
        assert_eq!(validate("G", &m.body), Ok(()));
        assert_eq!(OrderCancelReplaceRequest::from_message(&m), Ok(replace));

        let cancel = OrderCancelRequest {
            cl_ord_id: ClOrdId::new("44").unwrap(),
            orig_cl_ord_id: None,
            order_id: Some(OrderId(9)),
            parties: Parties {
                owning_broker: Some(BrokerId(99)),
                ..Parties::default()
            },
            security: SecurityCode(700),
            side: OrderSide::Buy,
            transact_time: t(),
            text: None,
        };
        let m = cancel.to_message();
        assert_eq!(validate("F", &m.body), Ok(()));
        assert_eq!(OrderCancelRequest::from_message(&m), Ok(cancel));

        for scope in [
            MassCancelScope::Security(SecurityCode(5)),
            MassCancelScope::All,
            MassCancelScope::MarketSegment(MarketSegment::Gem),
        ] {
            let mass = OrderMassCancelRequest {
                cl_ord_id: ClOrdId::new("45").unwrap(),
                parties: Parties::default(),
                scope,
                side: Some(OrderSide::Sell),
                transact_time: t(),
            };
            let m = mass.to_message();
            assert_eq!(validate("q", &m.body), Ok(()));
            assert_eq!(OrderMassCancelRequest::from_message(&m), Ok(mass));
            let report = OrderMassCancelReport {
                cl_ord_id: Some(ClOrdId::new("45").unwrap()),
                mass_action_report_id: "R1".into(),
                scope,
                accepted: true,
                reject_reason: None,
                parties: Parties::default(),
                side: None,
                transact_time: t(),
                text: None,
            };
            let m = report.to_message();
            assert_eq!(validate("r", &m.body), Ok(()));
            assert_eq!(OrderMassCancelReport::from_message(&m), Ok(report));
        }
    }

    #[test]
    fn reports_and_rejects_round_trip() {
        let mut er = ExecutionReport::new(
            OrderId(7),
            "X1",
            ExecType::Trade,
            OrdStatus::PartiallyFilled,
            SecurityCode(5),
            OrderSide::Buy,
            Qty(100),
            Qty(300),
        );
        er.cl_ord_id = Some(ClOrdId::new("42").unwrap());
        er.last_qty = Some(Qty(100));
        er.last_px = Some(Price(38_500));
        er.price = Some(Price(38_550));
        er.transact_time = Some(t());
        er.trd_match_id = Some("M1".into());
        er.aggressor = Some(true);
        er.exchange_trade_type = Some('P');
        er.parties.counterparty_broker = Some(BrokerId(4321));
        let m = er.to_message();
        assert_eq!(validate("8", &m.body), Ok(()));
        let mut w = BodyWriter::default();
        er.write_body(&mut w);
        assert_eq!(w.as_bytes(), crate::codec::encode_body(&m.body));
        assert_eq!(
            crate::codec::to_pipes(w.as_bytes()),
            "37=7|11=42|17=X1|150=F|39=1|453=1|448=4321|447=D|452=17|48=5|22=8|207=XHKG|54=1|\
             44=38.550|14=100|151=300|32=100|31=38.500|60=20231114-22:13:20.123456|880=M1|\
             5681=P|1057=Y|"
        );
        assert_eq!(ExecutionReport::from_message(&m), Ok(er));

        let reject = OrderCancelReject {
            order_id: None,
            cl_ord_id: ClOrdId::new("46").unwrap(),
            orig_cl_ord_id: Some(ClOrdId::new("1").unwrap()),
            ord_status: OrdStatus::Rejected,
            response_to: CxlRejResponseTo::Cancel,
            reason: Some(1),
            text: Some("unknown order".into()),
            transact_time: Some(t()),
        };
        let m = reject.to_message();
        assert_eq!(m.get(37), Some("NONE"));
        assert_eq!(validate("9", &m.body), Ok(()));
        assert_eq!(OrderCancelReject::from_message(&m), Ok(reject));

        let bmr = BusinessMessageReject::throttle(12, "D", Some("42"), 350);
        let m = bmr.to_message();
        assert_eq!(validate("j", &m.body), Ok(()));
        assert_eq!(m.get(380), Some("8"));
        assert_eq!(BusinessMessageReject::from_message(&m), Ok(bmr));
    }

    fn with_replaced(m: &Message, tag: u32, value: Option<&str>) -> Message {
        let mut out = m.clone();
        out.body.retain(|f| f.tag != tag);
        if let Some(v) = value {
            out.push(tag, v);
        }
        out
    }

    fn reject_reason(e: MappingError) -> (String, Option<u32>) {
        match e {
            MappingError::Reject(v) => (format!("reject {}", v.reason.code()), v.ref_tag_id),
            MappingError::BusinessReject {
                reason, ref_tag_id, ..
            } => (format!("bmr {reason}"), ref_tag_id),
        }
    }

    #[test]
    fn out_of_range_values_and_conditional_fields_get_the_right_answer() {
        let m = full_order().to_message();
        let cases = [
            (44, Some("38.5501"), "reject 5"),
            (44, Some("0"), "reject 5"),
            (38, Some("400.5"), "reject 5"),
            (48, Some("0005"), "reject 5"),
            (11, Some("123456789012345678901"), "reject 5"),
            (44, None, "bmr 5"),
        ];
        for (tag, value, expected) in cases {
            let bad = with_replaced(&m, tag, value);
            let e = NewOrderSingle::from_message(&bad).unwrap_err();
            assert_eq!(
                reject_reason(e),
                (expected.to_string(), Some(tag)),
                "{tag}={value:?}"
            );
        }
        let market = with_replaced(&with_replaced(&m, 40, Some("1")), 59, Some("3"));
        assert_eq!(
            reject_reason(NewOrderSingle::from_message(&market).unwrap_err()),
            ("bmr 5".to_string(), Some(44))
        );
        let qty_ok = with_replaced(&m, 38, Some("400.00"));
        assert_eq!(
            NewOrderSingle::from_message(&qty_ok).unwrap().terms.qty,
            Qty(400)
        );

        let mass = Message::new("q")
            .with(11, "1")
            .with(530, "1")
            .with(60, "20231114-22:13:20");
        assert_eq!(
            reject_reason(OrderMassCancelRequest::from_message(&mass).unwrap_err()),
            ("bmr 5".to_string(), Some(48))
        );
        let e = OrderMassCancelRequest::from_message(&mass).unwrap_err();
        let bmr = e.business_reject(7, "q").unwrap();
        assert_eq!(
            bmr.reason,
            business_reject_reason::CONDITIONALLY_REQUIRED_FIELD_MISSING
        );
        assert_eq!(bmr.ref_seq_num, Some(7));
    }

    #[test]
    fn participant_messages_parse_and_exchange_types_are_refused() {
        let m = full_order().to_message();
        assert!(matches!(
            ParticipantMessage::parse(&m),
            Ok(ParticipantMessage::NewOrderSingle(_))
        ));
        let er = ExecutionReport::new(
            OrderId(1),
            "X",
            ExecType::New,
            OrdStatus::New,
            SecurityCode(5),
            OrderSide::Buy,
            Qty(0),
            Qty(1),
        );
        assert_eq!(
            reject_reason(ParticipantMessage::parse(&er.to_message()).unwrap_err()),
            ("bmr 3".to_string(), Some(35))
        );
    }

    proptest! {
        #![proptest_config(crate::proptest_config(256))]
        #[test]
        fn order_round_trips(
            price in 1i64..10_000_000,
            qty in 0u64..10_000_000_000,
            security in 1u32..999_999,
            side in 0usize..3,
            tif in 0usize..4,
            cl in "[0-9A-Za-z]{1,20}",
            nanos in 0u64..4_000_000_000_000_000_000,
        ) {
            let sides = [OrderSide::Buy, OrderSide::Sell, OrderSide::SellShort];
            let tifs = [
                TimeInForce::Day,
                TimeInForce::ImmediateOrCancel,
                TimeInForce::FillOrKill,
                TimeInForce::AtCrossing,
            ];
            let time = Timestamp(nanos / 1_000 * 1_000);
            let mut terms = OrderTerms::limit(
                SecurityCode(security), sides[side], Price(price), Qty(qty), time);
            terms.time_in_force = tifs[tif];
            let order = NewOrderSingle { cl_ord_id: ClOrdId::new(&cl).unwrap(), terms };
            let m = order.to_message();
            prop_assert_eq!(validate("D", &m.body), Ok(()));
            let mut w = BodyWriter::default();
            order.write_body(&mut w);
            prop_assert_eq!(w.as_bytes(), &crate::codec::encode_body(&m.body)[..]);
            let bytes = crate::codec::encode(crate::codec::BEGIN_STRING, &{
                let mut f = vec![Field::new(35, "D")];
                f.extend(m.body.iter().cloned());
                f
            });
            let received = crate::message::read_frame(&bytes).unwrap();
            prop_assert_eq!(NewOrderSingle::from_message(&received.message), Ok(order));
        }

        #[test]
        fn arbitrary_field_values_never_panic(
            values in proptest::collection::vec((0usize..12, "\\PC{0,12}"), 0..12),
        ) {
            let tags = [11, 37, 38, 40, 41, 44, 48, 54, 59, 60, 453, 530];
            let mut m = full_order().to_message();
            for (i, v) in &values {
                m = with_replaced(&m, tags[*i], Some(v));
            }
            let _ = NewOrderSingle::from_message(&m);
            let _ = OrderCancelRequest::from_message(&m);
            let _ = OrderMassCancelRequest::from_message(&m);
            let _ = ExecutionReport::from_message(&m);
            let _ = OrderCancelReject::from_message(&m);
        }
    }
}
