//! Commands in, events out. Everything the gateways and the feed need is in the events.

use crate::china::CcPhase;
use serde::{Deserialize, Serialize};
use twinsite_core::{
    BrokerId, ClOrdId, CompId, MarketSegment, OrderId, Price, Qty, SecurityCode, Side, Timestamp,
};

/// HK order types (OCG reference §5.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum OrderType {
    /// At-auction: no price, auction sessions only, matched first at the IEP.
    AtAuction,
    /// At-auction limit: auction sessions only, matched at the IEP if the price allows.
    AtAuctionLimit,
    /// Limit: trades only at the best opposite queue; remainder rests.
    Limit,
    /// Enhanced limit: up to 10 queues; remainder rests at the limit price.
    EnhancedLimit,
    /// Special limit: up to 10 queues; remainder cancelled (IOC).
    SpecialLimit,
    /// Special limit all-or-nothing: fully filled at once or rejected (FOK).
    SpecialLimitFok,
}

impl OrderType {
    pub fn is_auction(self) -> bool {
        matches!(self, OrderType::AtAuction | OrderType::AtAuctionLimit)
    }
    pub fn has_price(self) -> bool {
        !matches!(self, OrderType::AtAuction)
    }
}

/// Who entered an order: the broker and the session (Comp ID) it came through.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Owner {
    pub broker: BrokerId,
    pub session: CompId,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewOrder {
    pub owner: Owner,
    pub cl_ord_id: ClOrdId,
    pub security: SecurityCode,
    pub side: Side,
    pub order_type: OrderType,
    /// Required for every type but at-auction; must be absent for at-auction.
    pub price: Option<Price>,
    pub qty: Qty,
    /// Short sell flag (the book side is Sell).
    pub short_sell: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Amend {
    pub owner: Owner,
    /// The amend request's own client order id (becomes the order's current id).
    pub cl_ord_id: ClOrdId,
    pub orig_cl_ord_id: ClOrdId,
    pub security: SecurityCode,
    pub side: Side,
    pub order_id: Option<OrderId>,
    pub price: Option<Price>,
    pub qty: Qty,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cancel {
    pub owner: Owner,
    pub cl_ord_id: ClOrdId,
    pub orig_cl_ord_id: Option<ClOrdId>,
    pub security: SecurityCode,
    pub side: Side,
    pub order_id: Option<OrderId>,
    /// On-behalf-of cancel: the broker that owns the order (another broker of the same EP).
    pub owning_broker: Option<BrokerId>,
}

/// Mass cancel scope (OCG Mass Cancel Request Type 1 / 7 / 9).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum MassCancelScope {
    Security(SecurityCode),
    All,
    Segment(MarketSegment),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MassCancel {
    pub owner: Owner,
    pub cl_ord_id: ClOrdId,
    pub scope: MassCancelScope,
    pub side: Option<Side>,
    /// On-behalf-of mass cancel: the broker whose orders are cancelled.
    pub owning_broker: Option<BrokerId>,
}

/// Trading phases (OMD Trading Session Sub-ID in the comments).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Phase {
    /// 100: not yet open.
    NotYetOpen,
    /// 1: POS order input.
    PosOrderInput,
    /// 101: POS no-cancellation.
    PosNoCancel,
    /// 108: POS random matching (matching happens at a seeded random moment).
    PosRandomMatching,
    /// 7: blocking (after POS matching until continuous trading).
    PosBlocking,
    /// 3: continuous trading, morning.
    ContinuousMorning,
    /// Extended morning session: only extended-trading securities trade; others wait.
    ExtendedMorning,
    /// 3: continuous trading, afternoon.
    ContinuousAfternoon,
    /// 105: CAS reference price fixing.
    CasReferencePriceFixing,
    /// 5: CAS order input.
    CasOrderInput,
    /// 106: CAS no-cancellation.
    CasNoCancel,
    /// 107: CAS random close (closing at a seeded random moment).
    CasRandomClose,
    /// Day closed.
    DayClosed,
}

impl Phase {
    /// OMD Trading Session Sub-ID.
    pub fn omd_sub_id(self) -> u8 {
        match self {
            Phase::NotYetOpen => 100,
            Phase::PosOrderInput => 1,
            Phase::PosNoCancel => 101,
            Phase::PosRandomMatching => 108,
            Phase::PosBlocking => 7,
            Phase::ContinuousMorning | Phase::ContinuousAfternoon | Phase::ExtendedMorning => 3,
            Phase::CasReferencePriceFixing => 105,
            Phase::CasOrderInput => 5,
            Phase::CasNoCancel => 106,
            Phase::CasRandomClose => 107,
            Phase::DayClosed => 100,
        }
    }
    /// OMD Trading Session Status.
    pub fn omd_status(self) -> u8 {
        match self {
            Phase::NotYetOpen => 0,
            Phase::PosOrderInput
            | Phase::PosNoCancel
            | Phase::PosRandomMatching
            | Phase::PosBlocking => 20,
            Phase::ContinuousMorning | Phase::ContinuousAfternoon | Phase::ExtendedMorning => 30,
            Phase::CasReferencePriceFixing
            | Phase::CasOrderInput
            | Phase::CasNoCancel
            | Phase::CasRandomClose => 40,
            Phase::DayClosed => 100,
        }
    }
    pub fn is_continuous(self) -> bool {
        matches!(
            self,
            Phase::ContinuousMorning | Phase::ContinuousAfternoon | Phase::ExtendedMorning
        )
    }
    pub fn is_pos(self) -> bool {
        matches!(
            self,
            Phase::PosOrderInput
                | Phase::PosNoCancel
                | Phase::PosRandomMatching
                | Phase::PosBlocking
        )
    }
    pub fn is_cas(self) -> bool {
        matches!(
            self,
            Phase::CasReferencePriceFixing
                | Phase::CasOrderInput
                | Phase::CasNoCancel
                | Phase::CasRandomClose
        )
    }
    /// Phases in which cancels and amends are refused.
    pub fn no_cancel(self) -> bool {
        matches!(
            self,
            Phase::PosNoCancel
                | Phase::PosRandomMatching
                | Phase::PosBlocking
                | Phase::CasReferencePriceFixing
                | Phase::CasNoCancel
                | Phase::CasRandomClose
                | Phase::DayClosed
        )
    }
}

/// Commands: everything that changes engine state. Each is applied with a timestamp.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Command {
    NewOrder(NewOrder),
    Amend(Amend),
    Cancel(Cancel),
    MassCancel(MassCancel),
    /// Cancel-on-disconnect fired for a session: cancel its resting orders (restatement 104).
    CancelOnDisconnect {
        session: CompId,
    },
    /// Operations: cancel a broker's orders (broker suspended, restatement 105).
    SuspendBroker {
        broker: BrokerId,
    },
    /// Move time forward: runs scheduled phase changes, random matching and price sampling.
    Tick,
    /// Operations: force a phase now (overrides the schedule until the next scheduled change).
    SetPhase(Phase),
    Halt {
        security: Option<SecurityCode>,
    },
    Resume {
        security: Option<SecurityCode>,
    },
}

/// Order reject codes (OCG Order Reject Code).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum RejectCode {
    /// 3: order exceeds limit (size).
    ExceedsLimit,
    /// 6: duplicate order (client order id reused).
    Duplicate,
    /// 13: incorrect quantity (board lots).
    IncorrectQty,
    /// 16: price outside the current price band (spread, 9-times, 24-spread, POS/CAS bands).
    PriceOutsideBand,
    /// 19: reference price not available.
    ReferencePriceUnavailable,
    /// 99: other (phase, unknown security, halted, FOK not fillable...).
    Other,
}
impl RejectCode {
    pub fn ocg_code(self) -> u16 {
        match self {
            RejectCode::ExceedsLimit => 3,
            RejectCode::Duplicate => 6,
            RejectCode::IncorrectQty => 13,
            RejectCode::PriceOutsideBand => 16,
            RejectCode::ReferencePriceUnavailable => 19,
            RejectCode::Other => 99,
        }
    }
}

/// Cancel / amend reject codes (OCG Cancel Reject Code / Amend Reject Code).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum CancelRejectCode {
    /// 0: too late (filled, or a no-cancellation period).
    TooLate,
    /// 1: unknown order.
    UnknownOrder,
    /// 6: duplicate client order id.
    Duplicate,
    /// 8 (amend only): price outside band.
    PriceOutsideBand,
    /// 99: other.
    Other,
}
impl CancelRejectCode {
    pub fn ocg_code(self) -> u16 {
        match self {
            CancelRejectCode::TooLate => 0,
            CancelRejectCode::UnknownOrder => 1,
            CancelRejectCode::Duplicate => 6,
            CancelRejectCode::PriceOutsideBand => 8,
            CancelRejectCode::Other => 99,
        }
    }
}

/// Why an order left the book without being filled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum CancelReason {
    /// The participant asked (Cancel Request).
    Requested,
    /// Remainder of a special limit order (IOC).
    ImmediateOrCancel,
    /// Unsolicited, with the OCG Exec Restatement Reason code.
    Restated(u16),
    /// End of an auction or day: Exec Type Expire.
    Expired,
}
pub const RESTATE_FAILED_REPLACE: u16 = 100;
pub const RESTATE_OBO_SINGLE: u16 = 101;
pub const RESTATE_OBO_MASS: u16 = 102;
pub const RESTATE_MASS_CANCEL: u16 = 103;
pub const RESTATE_CANCEL_ON_DISCONNECT: u16 = 104;
pub const RESTATE_BROKER_SUSPENDED: u16 = 105;
pub const RESTATE_SYSTEM_CANCEL: u16 = 107;

/// The order as the gateway reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderInfo {
    pub order_id: OrderId,
    pub owner: Owner,
    pub cl_ord_id: ClOrdId,
    pub security: SecurityCode,
    pub side: Side,
    pub order_type: OrderType,
    pub price: Option<Price>,
    pub qty: Qty,
    pub cum_qty: Qty,
    pub leaves_qty: Qty,
}

/// How a trade was matched (OCG Match Type: 4 auto-match, 5 auction).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum MatchKind {
    Continuous,
    Auction,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Event {
    // ---- to the order's session ----
    Accepted(OrderInfo),
    Rejected {
        owner: Owner,
        cl_ord_id: ClOrdId,
        security: SecurityCode,
        side: Side,
        code: RejectCode,
        reason: &'static str,
    },
    Fill {
        order: OrderInfo,
        exec_id: u64,
        trade_id: u64,
        price: Price,
        qty: Qty,
        counterparty: BrokerId,
        aggressor: bool,
        kind: MatchKind,
    },
    Cancelled {
        order: OrderInfo,
        reason: CancelReason,
        /// For OBO cancels: who asked.
        by: Option<BrokerId>,
    },
    /// Amend accepted. `order` is the order after the amend (a new order id if replaced).
    Amended {
        order: OrderInfo,
        old_order_id: OrderId,
        orig_cl_ord_id: ClOrdId,
        replaced: bool,
    },
    CancelRejected {
        owner: Owner,
        cl_ord_id: ClOrdId,
        orig_cl_ord_id: Option<ClOrdId>,
        order_id: Option<OrderId>,
        security: SecurityCode,
        code: CancelRejectCode,
        reason: &'static str,
    },
    AmendRejected {
        owner: Owner,
        cl_ord_id: ClOrdId,
        orig_cl_ord_id: ClOrdId,
        security: SecurityCode,
        code: CancelRejectCode,
        reason: &'static str,
    },
    MassCancelReport {
        owner: Owner,
        cl_ord_id: ClOrdId,
        scope: MassCancelScope,
        report_id: u64,
        cancelled: u32,
        rejected: Option<&'static str>,
    },
    // ---- market data ----
    BookAdd {
        security: SecurityCode,
        order_id: OrderId,
        side: Side,
        /// None for at-auction orders.
        price: Option<Price>,
        qty: Qty,
        broker: BrokerId,
    },
    BookModify {
        security: SecurityCode,
        order_id: OrderId,
        side: Side,
        price: Option<Price>,
        qty: Qty,
    },
    BookDelete {
        security: SecurityCode,
        order_id: OrderId,
        side: Side,
    },
    Trade {
        security: SecurityCode,
        trade_id: u64,
        price: Price,
        qty: Qty,
        buyer: BrokerId,
        seller: BrokerId,
        buy_order: OrderId,
        sell_order: OrderId,
        aggressor: Option<Side>,
        kind: MatchKind,
        time: Timestamp,
    },
    Iep {
        security: SecurityCode,
        price: Option<Price>,
        volume: Qty,
    },
    Nominal {
        security: SecurityCode,
        price: Price,
    },
    ReferencePrice {
        security: SecurityCode,
        price: Price,
        lower: Price,
        upper: Price,
    },
    ClosingPrice {
        security: SecurityCode,
        price: Price,
    },
    PhaseChanged {
        phase: Phase,
    },
    SecurityStatus {
        security: SecurityCode,
        halted: bool,
    },
    // ---- China Connect northbound ----
    /// The China Connect phase changed (only with a China Connect schedule; without one the
    /// China Connect phase follows the HK phase and `PhaseChanged` announces both).
    CcPhaseChanged {
        phase: CcPhase,
    },
    /// Daily quota balance of a link (OMD-C Stock Connect Daily Quota Balance, msg 80), whole
    /// RMB, published whenever it changes. `market` is `Sse` (SH) or `Szse` (SZ); direction NB.
    QuotaBalance {
        market: MarketSegment,
        balance: i64,
    },
}
