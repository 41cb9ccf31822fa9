//! China Stock Connect northbound (OTP-CSC) trading inside the deterministic engine.
//!
//! Securities whose segment is `SSE` or `SZSE` are China Connect securities. They have their own
//! books, their own order slab, their own timetable (the mainland one) and their own rules
//! (OCG reference §4.2): limit orders only, no amendment, buys in multiples of 100 shares (STAR:
//! at least 200), odd lots only when selling the whole odd lot, at most 1,000,000 shares, RMB 0.01
//! tick, daily price limits, no cancellation 09:20-09:25 and 14:57-15:00, call auctions at a single
//! price, sells checked against holdings, and the daily quota per link.
//! Order ids and execution ids share the engine's counters, so they stay unique across the day.
//! See docs/china-connect.md for every inferred choice.

use crate::book::{Level, Order, Orders, SideBook, NIL};
use crate::hash::StableHasher;
use crate::refdata::Security;
use crate::types::*;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use twinsite_core::limits;
use twinsite_core::time::NANOS_PER_SEC;
use twinsite_core::{
    BrokerId, ClOrdId, MarketSegment, OrderId, Price, Qty, SecurityCode, Side, Timestamp,
};

/// China Connect trading phases (mainland timetable, HK time).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum CcPhase {
    /// Before 09:10: no input.
    NotOpen,
    /// 09:10-09:15: orders and cancels accepted and held until the opening call auction.
    OpeningInputHeld,
    /// 09:15-09:20: opening call auction, cancels allowed.
    OpeningCall,
    /// 09:20-09:25: opening call auction, no cancellation.
    OpeningCallNoCancel,
    /// 09:25-09:30: the opening auction has run; input held until continuous trading.
    MorningInputHeld,
    /// 09:30-11:30: continuous trading.
    ContinuousMorning,
    /// 11:30-12:55: lunch, no input.
    LunchBreak,
    /// 12:55-13:00: input held until the afternoon session.
    AfternoonInputHeld,
    /// 13:00-14:57: continuous trading.
    ContinuousAfternoon,
    /// 14:57-15:00: closing call auction, no cancellation.
    ClosingCall,
    /// After 15:00: closed.
    Closed,
}

impl CcPhase {
    /// Order input accepted (09:10-11:30 and 12:55-15:00).
    pub fn accepts_input(self) -> bool {
        !matches!(
            self,
            CcPhase::NotOpen | CcPhase::LunchBreak | CcPhase::Closed
        )
    }
    /// Orders received now wait for the next session.
    pub fn holds_input(self) -> bool {
        matches!(
            self,
            CcPhase::OpeningInputHeld | CcPhase::MorningInputHeld | CcPhase::AfternoonInputHeld
        )
    }
    pub fn is_call(self) -> bool {
        matches!(
            self,
            CcPhase::OpeningCall | CcPhase::OpeningCallNoCancel | CcPhase::ClosingCall
        )
    }
    pub fn is_continuous(self) -> bool {
        matches!(
            self,
            CcPhase::ContinuousMorning | CcPhase::ContinuousAfternoon
        )
    }
    fn is_opening(self) -> bool {
        matches!(self, CcPhase::OpeningCall | CcPhase::OpeningCallNoCancel)
    }
    /// No cancellation 09:20-09:25 and 14:57-15:00.
    pub fn no_cancel(self) -> bool {
        matches!(self, CcPhase::OpeningCallNoCancel | CcPhase::ClosingCall)
    }
    /// A quota balance at or below zero stops buying for the rest of the day (continuous
    /// trading, the closing call and the held windows after the opening auction). Before that
    /// (09:10-09:25) buys are only refused while the balance is not positive.
    pub fn quota_stops_for_day(self) -> bool {
        matches!(
            self,
            CcPhase::MorningInputHeld
                | CcPhase::ContinuousMorning
                | CcPhase::LunchBreak
                | CcPhase::AfternoonInputHeld
                | CcPhase::ContinuousAfternoon
                | CcPhase::ClosingCall
        )
    }
}

/// One scheduled China Connect phase change.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct CcTransition {
    pub at: Timestamp,
    pub phase: CcPhase,
}

/// The China Connect timetable as absolute timestamps. Empty (the default) means the China
/// Connect phase follows the HK phase (see [`follow_hk`]).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CcSchedule {
    pub transitions: Vec<CcTransition>,
}

/// (HKT seconds of day, phase): the northbound day (OCG reference §4.2).
pub const CC_DAY: &[(u32, CcPhase)] = &[
    (9 * 3600 + 10 * 60, CcPhase::OpeningInputHeld),
    (9 * 3600 + 15 * 60, CcPhase::OpeningCall),
    (9 * 3600 + 20 * 60, CcPhase::OpeningCallNoCancel),
    (9 * 3600 + 25 * 60, CcPhase::MorningInputHeld),
    (9 * 3600 + 30 * 60, CcPhase::ContinuousMorning),
    (11 * 3600 + 30 * 60, CcPhase::LunchBreak),
    (12 * 3600 + 55 * 60, CcPhase::AfternoonInputHeld),
    (13 * 3600, CcPhase::ContinuousAfternoon),
    (14 * 3600 + 57 * 60, CcPhase::ClosingCall),
    (15 * 3600, CcPhase::Closed),
];

/// The HK day's compressed schedules start at 09:00; the China Connect one is anchored there too
/// so both compress alike.
const COMPRESSION_ANCHOR_SOD: u32 = 9 * 3600;

impl CcSchedule {
    /// A real-time northbound day on `date` (HKT).
    pub fn for_date(year: i32, month: u32, day: u32) -> CcSchedule {
        let midnight = Timestamp::from_hkt(year, month, day, 0, 0, 0);
        CcSchedule {
            transitions: CC_DAY
                .iter()
                .map(|&(sod, phase)| CcTransition {
                    at: midnight.plus_nanos(sod as u64 * NANOS_PER_SEC),
                    phase,
                })
                .collect(),
        }
    }
    /// The same day with 09:00 HKT at `start`, `speed` times faster than real time (the same
    /// anchor as `Schedule::compressed(FULL_DAY, start, speed)`).
    pub fn compressed(start: Timestamp, speed: u64) -> CcSchedule {
        let speed = speed.max(1);
        CcSchedule {
            transitions: CC_DAY
                .iter()
                .map(|&(sod, phase)| CcTransition {
                    at: start
                        .plus_nanos((sod - COMPRESSION_ANCHOR_SOD) as u64 * NANOS_PER_SEC / speed),
                    phase,
                })
                .collect(),
        }
    }
    pub fn manual() -> CcSchedule {
        CcSchedule::default()
    }
}

/// The China Connect phase that follows an HK phase when no China Connect schedule is set.
pub fn follow_hk(p: Phase) -> CcPhase {
    match p {
        Phase::NotYetOpen => CcPhase::NotOpen,
        Phase::PosOrderInput => CcPhase::OpeningCall,
        Phase::PosNoCancel => CcPhase::OpeningCallNoCancel,
        Phase::PosRandomMatching | Phase::PosBlocking => CcPhase::MorningInputHeld,
        Phase::ContinuousMorning => CcPhase::ContinuousMorning,
        Phase::ExtendedMorning => CcPhase::LunchBreak,
        Phase::ContinuousAfternoon => CcPhase::ContinuousAfternoon,
        Phase::CasReferencePriceFixing
        | Phase::CasOrderInput
        | Phase::CasNoCancel
        | Phase::CasRandomClose => CcPhase::ClosingCall,
        Phase::DayClosed => CcPhase::Closed,
    }
}

/// Mainland board, derived from the code and name (no extra reference-data field).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Board {
    Main,
    /// SZSE 300xxx / 301xxx.
    ChiNext,
    /// SSE 688xxx / 689xxx: buys at least 200 shares, in steps of one share.
    Star,
    /// Risk alert (name starts with `ST ` or `*ST`): sell-only northbound.
    RiskAlert,
}

impl Board {
    pub fn of(s: &Security) -> Board {
        let name = s.name.trim_start();
        if name.starts_with("*ST") || name == "ST" || name.starts_with("ST ") {
            return Board::RiskAlert;
        }
        match (s.segment, s.code.0 / 1000) {
            (MarketSegment::Sse, 688 | 689) => Board::Star,
            (MarketSegment::Szse, 300 | 301) => Board::ChiNext,
            _ => Board::Main,
        }
    }
    /// Default daily price limit, basis points either side of the previous close.
    pub fn limit_bps(self) -> i64 {
        match self {
            Board::Main => limits::CC_LIMIT_MAIN_BPS,
            Board::ChiNext | Board::Star => limits::CC_LIMIT_GROWTH_BPS,
            Board::RiskAlert => limits::CC_LIMIT_RISK_ALERT_BPS,
        }
    }
}

/// Minimum STAR Market order size.
pub const STAR_MIN_SHARES: u64 = 200;

/// Daily price limits: previous close times (1 +- bps), rounded half-up to the RMB 0.01 tick.
pub fn price_limits(prev_close: Price, bps: i64) -> (Price, Price) {
    let tick = limits::CC_TICK as i128;
    let round = |num: i128| -> i64 {
        // num is price * 10_000 in 1/1000 units; half-up to the tick.
        let unit = 10_000 * tick;
        (((num + unit / 2) / unit) * tick) as i64
    };
    let p = prev_close.0 as i128;
    let lo = round(p * (10_000 - bps as i128)).max(limits::CC_TICK);
    let hi = round(p * (10_000 + bps as i128));
    (Price(lo), Price(hi))
}

/// Per-market quota state (Shanghai Connect, Shenzhen Connect).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Quota {
    /// Balance in 1/1000 RMB: quota - buy orders + sell trades + adjustments.
    pub balance: i64,
    /// Buying stopped for the rest of the day.
    pub stopped: bool,
}

/// Per-security China Connect state.
#[derive(Debug, Clone)]
pub struct CcSec {
    pub def: Security,
    pub board: Board,
    /// Daily price limits.
    pub lower: Price,
    pub upper: Price,
    pub bids: SideBook,
    pub asks: SideBook,
    pub last_trade: Option<Price>,
    pub trade_seq: u64,
    pub halted: bool,
    /// Indicative call-auction price and volume.
    pub iep: Option<(Price, Qty)>,
    pub closing_auction_traded: bool,
    pub closing: Option<Price>,
    pub volume: u64,
    pub turnover: u128,
}

impl CcSec {
    fn new(def: Security) -> CcSec {
        let board = Board::of(&def);
        let bps = def.price_limit_bps.unwrap_or(board.limit_bps());
        let (lower, upper) = price_limits(def.prev_close, bps);
        CcSec {
            def,
            board,
            lower,
            upper,
            bids: SideBook::new(Side::Buy),
            asks: SideBook::new(Side::Sell),
            last_trade: None,
            trade_seq: 0,
            halted: false,
            iep: None,
            closing_auction_traded: false,
            closing: None,
            volume: 0,
            turnover: 0,
        }
    }
    pub fn book(&self, side: Side) -> &SideBook {
        match side {
            Side::Buy => &self.bids,
            Side::Sell => &self.asks,
        }
    }
    fn book_mut(&mut self, side: Side) -> &mut SideBook {
        match side {
            Side::Buy => &mut self.bids,
            Side::Sell => &mut self.asks,
        }
    }
    pub fn best_bid(&self) -> Option<Price> {
        self.bids.best(Side::Buy)
    }
    pub fn best_ask(&self) -> Option<Price> {
        self.asks.best(Side::Sell)
    }
    fn market(&self) -> usize {
        market_index(self.def.segment)
    }
}

fn market_index(m: MarketSegment) -> usize {
    match m {
        MarketSegment::Szse => 1,
        _ => 0,
    }
}
const MARKETS: [MarketSegment; 2] = [MarketSegment::Sse, MarketSegment::Szse];

/// The engine's shared counters and clock, lent to the China Connect module per command.
pub struct Ctx<'a> {
    pub now: Timestamp,
    pub next_order_id: &'a mut u64,
    pub next_exec_id: &'a mut u64,
    pub next_report_id: &'a mut u64,
}

/// China Connect configuration (from `EngineConfig`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CcConfig {
    pub schedule: CcSchedule,
    /// Daily quota per link in RMB.
    pub daily_quota: i64,
    /// Shares each broker holds and may sell today.
    pub holdings: Vec<(BrokerId, SecurityCode, u64)>,
}

/// The China Connect state held inside the engine.
#[derive(Debug, Clone)]
pub struct ChinaConnect {
    schedule: CcSchedule,
    next_transition: usize,
    phase: CcPhase,
    secs: Vec<CcSec>,
    index: BTreeMap<SecurityCode, u32>,
    orders: Orders,
    /// Accepted orders waiting for the next session, in arrival order (slab indices).
    held: Vec<u32>,
    /// (broker, client order id) -> order id (0 for request ids). Separate from OTP-C: CCEPs
    /// trade on their own platform.
    ids: BTreeMap<(BrokerId, ClOrdId), u64>,
    /// Commutative digest of `ids` for the state hash.
    ids_digest: u64,
    /// Shares available to sell (holdings less open sell orders).
    holdings: BTreeMap<(BrokerId, SecurityCode), u64>,
    quota: [Quota; 2],
    daily_quota: i64,
}

type Reject = (RejectCode, &'static str);

impl ChinaConnect {
    pub fn new(cfg: CcConfig, securities: Vec<Security>) -> ChinaConnect {
        let mut secs: Vec<CcSec> = securities.into_iter().map(CcSec::new).collect();
        secs.sort_by_key(|s| s.def.code);
        secs.dedup_by_key(|s| s.def.code);
        let index = secs
            .iter()
            .enumerate()
            .map(|(i, s)| (s.def.code, i as u32))
            .collect();
        let mut holdings = BTreeMap::new();
        for &(b, c, q) in &cfg.holdings {
            *holdings.entry((b, c)).or_insert(0) += q;
        }
        let q = Quota {
            balance: cfg.daily_quota.saturating_mul(1000),
            stopped: false,
        };
        ChinaConnect {
            schedule: cfg.schedule,
            next_transition: 0,
            phase: CcPhase::NotOpen,
            secs,
            index,
            orders: Orders::default(),
            held: Vec::new(),
            ids: BTreeMap::new(),
            ids_digest: 0,
            holdings,
            quota: [q, q],
            daily_quota: cfg.daily_quota,
        }
    }

    // ------------------------------------------------------------------ accessors

    pub fn phase(&self) -> CcPhase {
        self.phase
    }
    pub fn has(&self, code: SecurityCode) -> bool {
        self.index.contains_key(&code)
    }
    pub fn security(&self, code: SecurityCode) -> Option<&CcSec> {
        self.index.get(&code).map(|&i| &self.secs[i as usize])
    }
    pub fn securities(&self) -> impl Iterator<Item = &CcSec> {
        self.secs.iter()
    }
    /// Quota balance of a link in whole RMB (rounded down).
    pub fn quota_balance(&self, market: MarketSegment) -> i64 {
        self.quota[market_index(market)].balance.div_euclid(1000)
    }
    /// Has buying stopped for the day on this link?
    pub fn quota_stopped(&self, market: MarketSegment) -> bool {
        self.quota[market_index(market)].stopped
    }
    /// Shares a broker may still sell.
    pub fn available(&self, broker: BrokerId, code: SecurityCode) -> u64 {
        self.holdings.get(&(broker, code)).copied().unwrap_or(0)
    }
    pub fn live_orders(&self) -> usize {
        self.orders.live
    }
    /// Orders accepted in a held window and not yet released.
    pub fn held_orders(&self) -> Vec<OrderInfo> {
        self.held.iter().map(|&i| self.info(i)).collect()
    }
    pub fn order(&self, id: OrderId) -> Option<OrderInfo> {
        self.orders.find(id).map(|i| self.info(i))
    }
    /// Resting orders of one side in priority order.
    pub fn book_orders(&self, code: SecurityCode, side: Side) -> Vec<OrderInfo> {
        let Some(&si) = self.index.get(&code) else {
            return Vec::new();
        };
        let b = self.secs[si as usize].book(side);
        let mut out = Vec::new();
        for p in b.prices_best_first(side) {
            out.extend(
                self.orders
                    .fifo(&b.levels[&p])
                    .into_iter()
                    .map(|i| self.info(i)),
            );
        }
        out
    }

    fn info(&self, idx: u32) -> OrderInfo {
        let o = self.orders.get(idx);
        OrderInfo {
            order_id: o.id,
            owner: o.owner,
            cl_ord_id: o.cl_ord_id,
            security: self.secs[o.sec as usize].def.code,
            side: o.side,
            order_type: o.order_type,
            price: o.price,
            qty: o.qty,
            cum_qty: o.cum,
            leaves_qty: Qty(o.leaves()),
        }
    }

    // ------------------------------------------------------------------ time

    /// Run the China Connect transitions due by `ctx.now`.
    pub fn advance(&mut self, ctx: &mut Ctx, out: &mut Vec<Event>) {
        while let Some(t) = self.schedule.transitions.get(self.next_transition).copied() {
            if t.at > ctx.now {
                break;
            }
            self.next_transition += 1;
            self.enter_phase(t.phase, true, ctx, out);
        }
    }

    /// The HK phase changed: with no China Connect schedule the China Connect phase follows it
    /// (no separate phase event: the HK one announces it).
    pub fn on_hk_phase(&mut self, p: Phase, ctx: &mut Ctx, out: &mut Vec<Event>) {
        if self.schedule.transitions.is_empty() {
            self.enter_phase(follow_hk(p), false, ctx, out);
        }
    }

    fn enter_phase(&mut self, p: CcPhase, announce: bool, ctx: &mut Ctx, out: &mut Vec<Event>) {
        let prev = self.phase;
        if p == prev {
            return;
        }
        if prev.is_opening() && !p.is_opening() {
            self.run_auctions(ctx, out);
        }
        if prev == CcPhase::ClosingCall {
            self.run_auctions(ctx, out);
        }
        self.phase = p;
        if announce {
            out.push(Event::CcPhaseChanged { phase: p });
        }
        if p.is_call() || p.is_continuous() {
            self.release_held(ctx, out);
        }
        if p == CcPhase::Closed {
            self.close_day(out);
        }
        if p.quota_stops_for_day() {
            for q in &mut self.quota {
                if q.balance <= 0 {
                    q.stopped = true;
                }
            }
        }
    }

    fn release_held(&mut self, ctx: &mut Ctx, out: &mut Vec<Event>) {
        let held = std::mem::take(&mut self.held);
        for idx in held {
            self.process(idx, ctx, out);
        }
    }

    /// Closing price: the closing auction price when it traded, else the last trade, else the
    /// previous close (simplification: the mainland uses the last minute's VWAP when the closing
    /// auction does not trade). Then every order expires.
    fn close_day(&mut self, out: &mut Vec<Event>) {
        for s in &mut self.secs {
            let c = s.last_trade.unwrap_or(s.def.prev_close);
            s.closing = Some(c);
            out.push(Event::ClosingPrice {
                security: s.def.code,
                price: c,
            });
        }
        for idx in std::mem::take(&mut self.held) {
            self.drop_order(idx, false, CancelReason::Expired, None, out);
        }
        let all = self.collect(|_| true);
        for idx in all {
            self.drop_order(idx, true, CancelReason::Expired, None, out);
        }
    }

    // ------------------------------------------------------------------ quota and holdings

    fn publish_quota(&self, m: usize, out: &mut Vec<Event>) {
        out.push(Event::QuotaBalance {
            market: MARKETS[m],
            balance: self.quota[m].balance.div_euclid(1000),
        });
    }

    fn adjust_quota(&mut self, m: usize, delta: i64, out: &mut Vec<Event>) {
        if delta == 0 {
            return;
        }
        let q = &mut self.quota[m];
        q.balance += delta;
        if q.balance <= 0 && self.phase.quota_stops_for_day() {
            q.stopped = true;
        }
        self.publish_quota(m, out);
    }

    /// Give back what an order's unfilled quantity held: quota for a buy, shares for a sell.
    fn give_back(&mut self, idx: u32, out: &mut Vec<Event>) {
        let (si, side, price, leaves, broker) = {
            let o = self.orders.get(idx);
            (
                o.sec as usize,
                o.side,
                o.price.unwrap_or_default(),
                o.leaves(),
                o.owner.broker,
            )
        };
        if leaves == 0 {
            return;
        }
        match side {
            Side::Buy => {
                let m = self.secs[si].market();
                self.adjust_quota(m, price.0 * leaves as i64, out);
            }
            Side::Sell => {
                let code = self.secs[si].def.code;
                *self.holdings.entry((broker, code)).or_insert(0) += leaves;
            }
        }
    }

    fn record_id(&mut self, b: BrokerId, c: ClOrdId, v: u64) {
        if self.ids.insert((b, c), v).is_none() {
            let mut h = StableHasher::default();
            h.u64(b.0 as u64);
            h.bytes(c.as_str().as_bytes());
            h.u64(v);
            self.ids_digest = self.ids_digest.wrapping_add(h.finish());
        }
    }

    // ------------------------------------------------------------------ validation

    fn check(&self, si: usize, o: &NewOrder) -> Result<(), Reject> {
        let s = &self.secs[si];
        if !self.phase.accepts_input() {
            return Err((
                RejectCode::Other,
                "outside China Connect order input hours (09:10-11:30, 12:55-15:00)",
            ));
        }
        if s.halted {
            return Err((RejectCode::Other, "security is halted"));
        }
        if o.order_type != OrderType::Limit {
            return Err((RejectCode::Other, "China Connect accepts limit orders only"));
        }
        let Some(p) = o.price else {
            return Err((RejectCode::Other, "China Connect accepts limit orders only"));
        };
        if o.short_sell {
            return Err((
                RejectCode::Other,
                "short selling not modelled for China Connect",
            ));
        }
        if !s.def.spread_table.is_valid(p) || p.0 % limits::CC_TICK != 0 {
            return Err((
                RejectCode::PriceOutsideBand,
                "price not on the RMB 0.01 tick",
            ));
        }
        if p < s.lower || p > s.upper {
            return Err((
                RejectCode::PriceOutsideBand,
                "price outside the daily price limit",
            ));
        }
        let q = o.qty.0;
        if q == 0 {
            return Err((RejectCode::IncorrectQty, "quantity must be positive"));
        }
        if q > limits::CC_MAX_ORDER_SHARES {
            return Err((
                RejectCode::ExceedsLimit,
                "quantity exceeds 1,000,000 shares",
            ));
        }
        match o.side {
            Side::Buy => {
                if s.board == Board::RiskAlert {
                    return Err((
                        RejectCode::Other,
                        "risk-alert securities are sell-only northbound",
                    ));
                }
                if s.board == Board::Star {
                    if q < STAR_MIN_SHARES {
                        return Err((
                            RejectCode::IncorrectQty,
                            "STAR Market orders are at least 200 shares",
                        ));
                    }
                } else if !q.is_multiple_of(limits::CC_BUY_LOT) {
                    return Err((
                        RejectCode::IncorrectQty,
                        "buy orders in multiples of 100 shares",
                    ));
                }
                let quota = &self.quota[s.market()];
                if quota.stopped {
                    return Err((
                        RejectCode::Other,
                        "daily quota used up: no more buy orders today",
                    ));
                }
                if quota.balance <= 0 {
                    return Err((
                        RejectCode::Other,
                        "daily quota balance is zero: buy orders rejected",
                    ));
                }
            }
            Side::Sell => {
                let avail = self.available(o.owner.broker, s.def.code);
                if q > avail {
                    return Err((RejectCode::Other, "sell exceeds holdings (no day trading)"));
                }
                let odd_ok = if s.board == Board::Star {
                    q >= STAR_MIN_SHARES || q == avail
                } else {
                    q.is_multiple_of(limits::CC_BUY_LOT)
                        || q % limits::CC_BUY_LOT == avail % limits::CC_BUY_LOT
                };
                if !odd_ok {
                    return Err((
                        RejectCode::IncorrectQty,
                        "odd lots only in one sell order of the whole odd lot",
                    ));
                }
            }
        }
        Ok(())
    }

    // ------------------------------------------------------------------ new order

    pub fn new_order(&mut self, o: &NewOrder, ctx: &mut Ctx, out: &mut Vec<Event>) {
        let reject = |out: &mut Vec<Event>, (code, reason): Reject| {
            out.push(Event::Rejected {
                owner: o.owner,
                cl_ord_id: o.cl_ord_id,
                security: o.security,
                side: o.side,
                code,
                reason,
            })
        };
        let Some(&si) = self.index.get(&o.security) else {
            return reject(out, (RejectCode::Other, "unknown security"));
        };
        let si = si as usize;
        if self.ids.contains_key(&(o.owner.broker, o.cl_ord_id)) {
            return reject(out, (RejectCode::Duplicate, "duplicate client order id"));
        }
        if let Err(r) = self.check(si, o) {
            return reject(out, r);
        }
        let id = OrderId(*ctx.next_order_id);
        *ctx.next_order_id += 1;
        self.record_id(o.owner.broker, o.cl_ord_id, id.0);
        let idx = self.orders.insert(Order {
            id,
            owner: o.owner,
            cl_ord_id: o.cl_ord_id,
            sec: si as u32,
            side: o.side,
            order_type: OrderType::Limit,
            price: o.price,
            qty: o.qty,
            cum: Qty(0),
            short_sell: false,
            prev: NIL,
            next: NIL,
        });
        out.push(Event::Accepted(self.info(idx)));
        let price = o.price.unwrap_or_default();
        match o.side {
            Side::Buy => {
                let m = self.secs[si].market();
                self.adjust_quota(m, -(price.0 * o.qty.0 as i64), out);
            }
            Side::Sell => {
                let e = self
                    .holdings
                    .entry((o.owner.broker, o.security))
                    .or_insert(0);
                *e -= o.qty.0;
            }
        }
        if self.phase.holds_input() {
            self.held.push(idx);
        } else {
            self.process(idx, ctx, out);
        }
    }

    /// Put an accepted order to work: rest it in a call auction, match it in continuous trading.
    fn process(&mut self, idx: u32, ctx: &mut Ctx, out: &mut Vec<Event>) {
        let si = self.orders.get(idx).sec as usize;
        if self.phase.is_continuous() && !self.secs[si].halted {
            self.match_continuous(idx, si, ctx, out);
            if self.orders.get(idx).leaves() == 0 {
                self.orders.remove(idx);
                return;
            }
        }
        self.rest(idx, out);
        if self.phase.is_call() {
            self.update_iep(si, out);
        }
    }

    fn rest(&mut self, idx: u32, out: &mut Vec<Event>) {
        let (si, side, price, qty, id, broker) = {
            let o = self.orders.get(idx);
            (
                o.sec as usize,
                o.side,
                o.price.unwrap_or_default(),
                o.leaves(),
                o.id,
                o.owner.broker,
            )
        };
        let level = self.secs[si].book_mut(side).levels.entry(price);
        self.orders.push_back(level, idx);
        out.push(Event::BookAdd {
            security: self.secs[si].def.code,
            order_id: id,
            side,
            price: Some(price),
            qty: Qty(qty),
            broker,
        });
    }

    /// Price-time matching of an incoming limit order against the opposite book, at the resting
    /// orders' prices, through as many levels as its limit allows.
    fn match_continuous(&mut self, idx: u32, si: usize, ctx: &mut Ctx, out: &mut Vec<Event>) {
        let (side, limit) = {
            let o = self.orders.get(idx);
            (o.side, o.price.unwrap_or_default())
        };
        let opp = side.opposite();
        while self.orders.get(idx).leaves() > 0 {
            let Some(best) = self.secs[si].book(opp).best(opp) else {
                break;
            };
            let crosses = match side {
                Side::Buy => best <= limit,
                Side::Sell => best >= limit,
            };
            if !crosses {
                break;
            }
            let passive = self.secs[si].book(opp).levels[&best].head;
            let q = self
                .orders
                .get(idx)
                .leaves()
                .min(self.orders.get(passive).leaves());
            let (b, s) = match side {
                Side::Buy => (idx, passive),
                Side::Sell => (passive, idx),
            };
            self.execute(
                si,
                b,
                s,
                best,
                q,
                Some(side),
                MatchKind::Continuous,
                ctx,
                out,
            );
            self.after_fill_passive(si, passive, opp, q, out);
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn execute(
        &mut self,
        si: usize,
        buy: u32,
        sell: u32,
        price: Price,
        q: u64,
        aggressor: Option<Side>,
        kind: MatchKind,
        ctx: &mut Ctx,
        out: &mut Vec<Event>,
    ) {
        let s = &mut self.secs[si];
        s.trade_seq += 1;
        let trade_id = s.trade_seq;
        s.last_trade = Some(price);
        s.volume += q;
        s.turnover += price.0 as u128 * q as u128;
        let code = s.def.code;
        let m = s.market();
        self.orders.update(buy, |o| o.cum.0 += q);
        self.orders.update(sell, |o| o.cum.0 += q);
        let (bb, sb) = (
            self.orders.get(buy).owner.broker,
            self.orders.get(sell).owner.broker,
        );
        let pairs = match aggressor {
            Some(Side::Sell) => [(sell, bb, true), (buy, sb, false)],
            Some(Side::Buy) => [(buy, sb, true), (sell, bb, false)],
            None => [(buy, sb, false), (sell, bb, false)],
        };
        for (i, cp, aggr) in pairs {
            let exec_id = *ctx.next_exec_id;
            *ctx.next_exec_id += 1;
            out.push(Event::Fill {
                order: self.info(i),
                exec_id,
                trade_id,
                price,
                qty: Qty(q),
                counterparty: cp,
                aggressor: aggr,
                kind,
            });
        }
        out.push(Event::Trade {
            security: code,
            trade_id,
            price,
            qty: Qty(q),
            buyer: bb,
            seller: sb,
            buy_order: self.orders.get(buy).id,
            sell_order: self.orders.get(sell).id,
            aggressor,
            kind,
            time: ctx.now,
        });
        // Quota: sell trades add their value; a buy filled below its limit gives back the
        // difference (it was counted at its limit price on acceptance).
        let buy_limit = self.orders.get(buy).price.unwrap_or(price);
        let delta = price.0 * q as i64 + (buy_limit.0 - price.0) * q as i64;
        self.adjust_quota(m, delta, out);
    }

    fn after_fill_passive(
        &mut self,
        si: usize,
        idx: u32,
        side: Side,
        q: u64,
        out: &mut Vec<Event>,
    ) {
        let (price, leaves, id) = {
            let o = self.orders.get(idx);
            (o.price.unwrap_or_default(), o.leaves(), o.id)
        };
        let code = self.secs[si].def.code;
        let book = self.secs[si].book_mut(side);
        let level: &mut Level = book
            .levels
            .get_mut(&price)
            .expect("resting order's level exists");
        level.qty -= q;
        if leaves == 0 {
            self.orders.unlink(level, idx, 0);
            if level.count == 0 {
                book.levels.remove(&price);
            }
            out.push(Event::BookDelete {
                security: code,
                order_id: id,
                side,
            });
            self.orders.remove(idx);
        } else {
            out.push(Event::BookModify {
                security: code,
                order_id: id,
                side,
                price: Some(price),
                qty: Qty(leaves),
            });
        }
    }

    // ------------------------------------------------------------------ call auctions

    /// The call-auction price: most volume, then least unmatched volume at that price; further
    /// ties: SSE the midpoint of the tied prices (rounded half-up to the tick), SZSE the tied
    /// price closest to the reference (previous close before the first trade, else the last
    /// trade), the higher on equal distance.
    pub fn auction_price(&self, si: usize) -> Option<(Price, Qty)> {
        let s = &self.secs[si];
        let mut cands: Vec<Price> = s
            .bids
            .levels
            .keys()
            .chain(s.asks.levels.keys())
            .copied()
            .collect();
        cands.sort();
        cands.dedup();
        let mut best: Option<(u64, u64)> = None;
        let mut tied: Vec<Price> = Vec::new();
        for p in cands {
            let b: u64 = s.bids.levels.range(p..).map(|(_, l)| l.qty).sum();
            let a: u64 = s.asks.levels.range(..=p).map(|(_, l)| l.qty).sum();
            let vol = b.min(a);
            if vol == 0 {
                continue;
            }
            let imb = b.abs_diff(a);
            let key = (vol, imb);
            match best {
                Some((bv, bi)) if (vol, std::cmp::Reverse(imb)) < (bv, std::cmp::Reverse(bi)) => {}
                Some(k) if k == key => tied.push(p),
                _ => {
                    best = Some(key);
                    tied.clear();
                    tied.push(p);
                }
            }
        }
        let (vol, _) = best?;
        let price = if tied.len() == 1 {
            tied[0]
        } else if s.def.segment == MarketSegment::Sse {
            let (lo, hi) = (tied[0].0, tied[tied.len() - 1].0);
            let t = limits::CC_TICK;
            Price(((lo + hi) / 2 + t / 2) / t * t)
        } else {
            let r = s.last_trade.unwrap_or(s.def.prev_close);
            *tied
                .iter()
                .min_by_key(|p| ((p.0 - r.0).abs(), std::cmp::Reverse(p.0)))
                .expect("non-empty")
        };
        Some((price, Qty(vol)))
    }

    fn update_iep(&mut self, si: usize, out: &mut Vec<Event>) {
        let iep = self.auction_price(si);
        let s = &mut self.secs[si];
        if s.iep != iep {
            s.iep = iep;
            out.push(Event::Iep {
                security: s.def.code,
                price: iep.map(|x| x.0),
                volume: iep.map_or(Qty(0), |x| x.1),
            });
        }
    }

    /// Every security's call auction (a halted security does not match; its orders stay).
    fn run_auctions(&mut self, ctx: &mut Ctx, out: &mut Vec<Event>) {
        for si in 0..self.secs.len() {
            if self.secs[si].halted {
                continue;
            }
            let traded_before = self.secs[si].trade_seq;
            self.auction_one(si, ctx, out);
            let s = &mut self.secs[si];
            s.iep = None;
            if self.phase == CcPhase::ClosingCall {
                s.closing_auction_traded = s.trade_seq > traded_before;
            }
        }
    }

    /// Match one security's book at its call-auction price, if there is one.
    fn auction_one(&mut self, si: usize, ctx: &mut Ctx, out: &mut Vec<Event>) {
        if let Some((px, _)) = self.auction_price(si) {
            let queue = |side: Side, this: &Self| -> Vec<u32> {
                let b = this.secs[si].book(side);
                let mut v = Vec::new();
                for p in b.prices_best_first(side) {
                    let ok = match side {
                        Side::Buy => p >= px,
                        Side::Sell => p <= px,
                    };
                    if !ok {
                        break;
                    }
                    v.extend(this.orders.fifo(&b.levels[&p]));
                }
                v
            };
            let buys = queue(Side::Buy, self);
            let sells = queue(Side::Sell, self);
            let (mut bi, mut ai) = (0, 0);
            while bi < buys.len() && ai < sells.len() {
                let (b, a) = (buys[bi], sells[ai]);
                let q = self.orders.get(b).leaves().min(self.orders.get(a).leaves());
                self.execute(si, b, a, px, q, None, MatchKind::Auction, ctx, out);
                let (bl, al) = (self.orders.get(b).leaves(), self.orders.get(a).leaves());
                self.after_fill_passive(si, b, Side::Buy, q, out);
                self.after_fill_passive(si, a, Side::Sell, q, out);
                if bl == 0 {
                    bi += 1;
                }
                if al == 0 {
                    ai += 1;
                }
            }
        }
    }

    // ------------------------------------------------------------------ cancel / amend

    fn lookup(
        &self,
        broker: BrokerId,
        orig: Option<&ClOrdId>,
        order_id: Option<OrderId>,
        sec: SecurityCode,
    ) -> Option<u32> {
        let by_cl = orig
            .and_then(|c| self.ids.get(&(broker, *c)).copied())
            .filter(|&v| v != 0);
        let id = match (by_cl, order_id) {
            (Some(a), Some(b)) if a != b.0 => return None,
            (Some(a), _) => OrderId(a),
            (None, Some(b)) if orig.is_none() => b,
            _ => return None,
        };
        let idx = self.orders.find(id)?;
        let o = self.orders.get(idx);
        (o.owner.broker == broker && self.secs[o.sec as usize].def.code == sec).then_some(idx)
    }

    /// Why cancels are refused now, if they are.
    fn cancel_refusal(&self) -> Option<&'static str> {
        if self.phase.no_cancel() {
            Some("no cancellation 09:20-09:25 and 14:57-15:00")
        } else if !self.phase.accepts_input() {
            Some("outside China Connect order input hours (09:10-11:30, 12:55-15:00)")
        } else {
            None
        }
    }

    pub fn cancel(&mut self, c: &Cancel, out: &mut Vec<Event>) {
        let rej = |out: &mut Vec<Event>, code, reason| {
            out.push(Event::CancelRejected {
                owner: c.owner,
                cl_ord_id: c.cl_ord_id,
                orig_cl_ord_id: c.orig_cl_ord_id,
                order_id: c.order_id,
                security: c.security,
                code,
                reason,
            })
        };
        if self.ids.contains_key(&(c.owner.broker, c.cl_ord_id)) {
            return rej(
                out,
                CancelRejectCode::Duplicate,
                "duplicate client order id",
            );
        }
        self.record_id(c.owner.broker, c.cl_ord_id, 0);
        let owner_broker = c.owning_broker.unwrap_or(c.owner.broker);
        if c.owning_broker.is_some()
            && (c.owning_broker == Some(c.owner.broker) || c.order_id.is_none())
        {
            return rej(
                out,
                CancelRejectCode::Other,
                "on-behalf-of cancel needs another broker's order id",
            );
        }
        let Some(idx) = self.lookup(
            owner_broker,
            c.orig_cl_ord_id.as_ref(),
            c.order_id,
            c.security,
        ) else {
            return rej(out, CancelRejectCode::UnknownOrder, "unknown order");
        };
        if self.orders.get(idx).side != c.side {
            return rej(
                out,
                CancelRejectCode::UnknownOrder,
                "side does not match the order",
            );
        }
        if let Some(why) = self.cancel_refusal() {
            return rej(out, CancelRejectCode::TooLate, why);
        }
        let (reason, by) = match c.owning_broker {
            Some(_) => (
                CancelReason::Restated(RESTATE_OBO_SINGLE),
                Some(c.owner.broker),
            ),
            None => (CancelReason::Requested, None),
        };
        self.remove_any(idx, reason, by, out);
    }

    /// Amendment is not allowed northbound: cancel and re-enter.
    pub fn amend(&mut self, a: &Amend, out: &mut Vec<Event>) {
        let dup = self.ids.contains_key(&(a.owner.broker, a.cl_ord_id));
        if !dup {
            self.record_id(a.owner.broker, a.cl_ord_id, 0);
        }
        out.push(Event::AmendRejected {
            owner: a.owner,
            cl_ord_id: a.cl_ord_id,
            orig_cl_ord_id: a.orig_cl_ord_id,
            security: a.security,
            code: if dup {
                CancelRejectCode::Duplicate
            } else {
                CancelRejectCode::Other
            },
            reason: if dup {
                "duplicate client order id"
            } else {
                "amendment not allowed for China Connect orders: cancel and re-enter"
            },
        });
    }

    /// Mass cancel whose scope is a China Connect security or market.
    pub fn mass_cancel(&mut self, m: &MassCancel, ctx: &mut Ctx, out: &mut Vec<Event>) {
        let report_id = *ctx.next_report_id;
        *ctx.next_report_id += 1;
        let report = |out: &mut Vec<Event>, cancelled, rejected| {
            out.push(Event::MassCancelReport {
                owner: m.owner,
                cl_ord_id: m.cl_ord_id,
                scope: m.scope,
                report_id,
                cancelled,
                rejected,
            })
        };
        if self.ids.contains_key(&(m.owner.broker, m.cl_ord_id)) {
            return report(out, 0, Some("duplicate client order id"));
        }
        self.record_id(m.owner.broker, m.cl_ord_id, 0);
        if let Some(why) = self.cancel_refusal() {
            return report(out, 0, Some(why));
        }
        let n = self.cancel_for_broker(m, out);
        report(out, n, None);
    }

    /// Cancel a broker's orders for a mass cancel (any scope; scope `All` comes from the engine
    /// after the OTP-C part). Nothing is cancelled in a no-cancel window.
    pub fn cancel_for_broker(&mut self, m: &MassCancel, out: &mut Vec<Event>) -> u32 {
        if self.cancel_refusal().is_some() {
            return 0;
        }
        let broker = m.owning_broker.unwrap_or(m.owner.broker);
        let (reason, by) = match m.owning_broker {
            Some(_) => (
                CancelReason::Restated(RESTATE_OBO_MASS),
                Some(m.owner.broker),
            ),
            None => (CancelReason::Restated(RESTATE_MASS_CANCEL), None),
        };
        let (scope, side) = (m.scope, m.side);
        let codes: Vec<(SecurityCode, MarketSegment)> = self
            .secs
            .iter()
            .map(|s| (s.def.code, s.def.segment))
            .collect();
        self.cancel_where(reason, by, out, |o| {
            let (code, seg) = codes[o.sec as usize];
            o.owner.broker == broker
                && side.is_none_or(|s| s == o.side)
                && match scope {
                    MassCancelScope::All => true,
                    MassCancelScope::Security(c) => c == code,
                    MassCancelScope::Segment(g) => g == seg,
                }
        })
    }

    /// Unsolicited cancels (cancel on disconnect, broker suspension): every order matching
    /// `pred`, held orders first, then by security code, bids then asks, priority order. Not
    /// applied in the no-cancel windows (the mainland market accepts no cancellation then).
    pub fn cancel_where(
        &mut self,
        reason: CancelReason,
        by: Option<BrokerId>,
        out: &mut Vec<Event>,
        pred: impl Fn(&Order) -> bool,
    ) -> u32 {
        if self.cancel_refusal().is_some() {
            return 0;
        }
        let mut victims: Vec<u32> = self
            .held
            .iter()
            .copied()
            .filter(|&i| pred(self.orders.get(i)))
            .collect();
        victims.extend(self.collect(&pred));
        for &i in &victims {
            self.remove_any(i, reason, by, out);
        }
        victims.len() as u32
    }

    fn collect(&self, pred: impl Fn(&Order) -> bool) -> Vec<u32> {
        let mut v = Vec::new();
        for s in &self.secs {
            for side in [Side::Buy, Side::Sell] {
                let b = s.book(side);
                for p in b.prices_best_first(side) {
                    for i in self.orders.fifo(&b.levels[&p]) {
                        if pred(self.orders.get(i)) {
                            v.push(i);
                        }
                    }
                }
            }
        }
        v
    }

    /// Remove an order whether it is held or resting.
    fn remove_any(
        &mut self,
        idx: u32,
        reason: CancelReason,
        by: Option<BrokerId>,
        out: &mut Vec<Event>,
    ) {
        if let Some(pos) = self.held.iter().position(|&i| i == idx) {
            self.held.remove(pos);
            self.drop_order(idx, false, reason, by, out);
        } else {
            self.drop_order(idx, true, reason, by, out);
        }
    }

    fn drop_order(
        &mut self,
        idx: u32,
        resting: bool,
        reason: CancelReason,
        by: Option<BrokerId>,
        out: &mut Vec<Event>,
    ) {
        let info = self.info(idx);
        let (si, side, price, leaves) = {
            let o = self.orders.get(idx);
            (
                o.sec as usize,
                o.side,
                o.price.unwrap_or_default(),
                o.leaves(),
            )
        };
        if resting {
            let book = self.secs[si].book_mut(side);
            let level = book
                .levels
                .get_mut(&price)
                .expect("resting order's level exists");
            self.orders.unlink(level, idx, leaves);
            if level.count == 0 {
                book.levels.remove(&price);
            }
        }
        out.push(Event::Cancelled {
            order: info,
            reason,
            by,
        });
        if resting {
            out.push(Event::BookDelete {
                security: info.security,
                order_id: info.order_id,
                side,
            });
        }
        self.give_back(idx, out);
        self.orders.remove(idx);
        if resting && self.phase.is_call() {
            self.update_iep(si, out);
        }
    }

    /// Halt or resume one security or all. A halted security takes no new orders and does not
    /// trade (held orders released meanwhile rest without matching); resumed in continuous
    /// trading, a crossed book is first uncrossed by a call auction at the resumption.
    pub fn set_halt(
        &mut self,
        sec: Option<SecurityCode>,
        halted: bool,
        ctx: &mut Ctx,
        out: &mut Vec<Event>,
    ) {
        let mut resumed = Vec::new();
        for (si, s) in self.secs.iter_mut().enumerate() {
            if sec.is_none_or(|c| c == s.def.code) && (sec.is_none() || s.halted != halted) {
                if s.halted && !halted {
                    resumed.push(si);
                }
                s.halted = halted;
                out.push(Event::SecurityStatus {
                    security: s.def.code,
                    halted,
                });
            }
        }
        if self.phase.is_continuous() {
            for si in resumed {
                self.auction_one(si, ctx, out);
            }
        }
    }

    // ------------------------------------------------------------------ hashing, snapshots

    /// O(securities + held orders), whatever the number of resting orders: the live orders
    /// (held and resting) enter through [`Orders::digest`], the held ones again by id in
    /// arrival order (the held list is empty outside the held windows). Within a level,
    /// priority order is order-id order ([`ChinaConnect::check_invariants`] checks it).
    pub fn state_hash(&self) -> u64 {
        self.hash_with(self.orders.live as u64, self.orders.digest())
    }

    /// [`ChinaConnect::state_hash`] recomputed by walking every held and resting order (the test
    /// oracle for the incremental digest).
    #[doc(hidden)]
    pub fn state_hash_walked(&self) -> u64 {
        let mut n = 0u64;
        let mut digest = 0u64;
        let mut add = |i: u32| {
            n += 1;
            digest = digest.wrapping_add(crate::book::order_hash(self.orders.get(i)));
        };
        for &i in &self.held {
            add(i);
        }
        for s in &self.secs {
            for side in [Side::Buy, Side::Sell] {
                for l in s.book(side).levels.values() {
                    for i in self.orders.fifo(l) {
                        add(i);
                    }
                }
            }
        }
        self.hash_with(n, digest)
    }

    fn hash_with(&self, live: u64, orders_digest: u64) -> u64 {
        let mut h = StableHasher::default();
        h.u64(self.phase as u64);
        h.u64(self.next_transition as u64);
        h.i64(self.daily_quota);
        for q in &self.quota {
            h.i64(q.balance);
            h.u64(q.stopped as u64);
        }
        h.u64(self.ids.len() as u64);
        h.u64(self.ids_digest);
        for ((b, c), v) in &self.holdings {
            h.u64(b.0 as u64);
            h.u64(c.0 as u64);
            h.u64(*v);
        }
        h.u64(live);
        h.u64(orders_digest);
        h.u64(self.held.len() as u64);
        for &i in &self.held {
            h.u64(self.orders.get(i).id.0);
        }
        for s in &self.secs {
            h.u64(s.def.code.0 as u64);
            h.i64(s.last_trade.map_or(-1, |p| p.0));
            h.u64(s.trade_seq);
            h.u64(s.halted as u64 | (s.closing_auction_traded as u64) << 1);
            h.i64(s.iep.map_or(-1, |p| p.0 .0));
            h.i64(s.closing.map_or(-1, |p| p.0));
            h.u64(s.volume);
        }
        h.finish()
    }

    pub fn snapshot(&self) -> CcSnapshot {
        let snap_order = |i: u32| {
            let o = self.orders.get(i);
            CcOrderSnap {
                id: o.id,
                owner: o.owner,
                cl_ord_id: o.cl_ord_id,
                sec: self.secs[o.sec as usize].def.code,
                side: o.side,
                price: o.price.unwrap_or_default(),
                qty: o.qty,
                cum: o.cum,
            }
        };
        let mut resting = Vec::new();
        for s in &self.secs {
            for side in [Side::Buy, Side::Sell] {
                let b = s.book(side);
                for l in b.levels.values() {
                    resting.extend(self.orders.fifo(l).into_iter().map(snap_order));
                }
            }
        }
        CcSnapshot {
            phase: Some(self.phase),
            next_transition: self.next_transition,
            quota: self.quota.to_vec(),
            ids: self.ids.iter().map(|(k, &v)| (k.0, k.1, v)).collect(),
            holdings: self.holdings.iter().map(|(k, &v)| (k.0, k.1, v)).collect(),
            secs: self
                .secs
                .iter()
                .map(|s| CcSecSnap {
                    code: s.def.code,
                    last_trade: s.last_trade,
                    trade_seq: s.trade_seq,
                    halted: s.halted,
                    iep: s.iep,
                    closing_auction_traded: s.closing_auction_traded,
                    closing: s.closing,
                    volume: s.volume,
                    turnover: s.turnover,
                })
                .collect(),
            held: self.held.iter().map(|&i| snap_order(i)).collect(),
            resting,
        }
    }

    /// Rebuild the state from a snapshot over freshly constructed securities.
    pub fn restore(&mut self, snap: CcSnapshot) -> Result<(), String> {
        self.phase = snap.phase.unwrap_or(CcPhase::NotOpen);
        self.next_transition = snap.next_transition;
        if snap.quota.len() == 2 {
            self.quota = [snap.quota[0], snap.quota[1]];
        }
        for (b, c, v) in snap.ids {
            self.record_id(b, c, v);
        }
        self.holdings = snap
            .holdings
            .into_iter()
            .map(|(b, c, v)| ((b, c), v))
            .collect();
        for s in snap.secs {
            let &si = self
                .index
                .get(&s.code)
                .ok_or_else(|| format!("China Connect snapshot: unknown security {}", s.code))?;
            let st = &mut self.secs[si as usize];
            st.last_trade = s.last_trade;
            st.trade_seq = s.trade_seq;
            st.halted = s.halted;
            st.iep = s.iep;
            st.closing_auction_traded = s.closing_auction_traded;
            st.closing = s.closing;
            st.volume = s.volume;
            st.turnover = s.turnover;
        }
        let insert = |this: &mut Self, o: CcOrderSnap| -> Result<u32, String> {
            let &si = this
                .index
                .get(&o.sec)
                .ok_or_else(|| format!("China Connect snapshot: unknown security {}", o.sec))?;
            Ok(this.orders.insert(Order {
                id: o.id,
                owner: o.owner,
                cl_ord_id: o.cl_ord_id,
                sec: si,
                side: o.side,
                order_type: OrderType::Limit,
                price: Some(o.price),
                qty: o.qty,
                cum: o.cum,
                short_sell: false,
                prev: NIL,
                next: NIL,
            }))
        };
        for o in snap.held {
            let idx = insert(self, o)?;
            self.held.push(idx);
        }
        for o in snap.resting {
            let (side, price) = (o.side, o.price);
            let idx = insert(self, o)?;
            let si = self.orders.get(idx).sec as usize;
            let level = self.secs[si].book_mut(side).levels.entry(price);
            self.orders.push_back(level, idx);
        }
        Ok(())
    }

    // ------------------------------------------------------------------ invariants

    pub fn check_invariants(&self) -> Result<(), String> {
        let mut seen = 0usize;
        for &i in &self.held {
            let o = self.orders.get(i);
            if o.prev != NIL || o.next != NIL || o.cum.0 != 0 {
                return Err(format!(
                    "held China Connect order {} is linked or filled",
                    o.id
                ));
            }
            if self.orders.find(o.id) != Some(i) {
                return Err(format!("held order {} not reachable by id", o.id));
            }
            seen += 1;
        }
        for s in &self.secs {
            if (self.phase.is_continuous() || self.phase.holds_input()) && !s.halted {
                if let (Some(b), Some(a)) = (s.best_bid(), s.best_ask()) {
                    if b >= a {
                        return Err(format!(
                            "China Connect security {} crossed: bid {b} >= ask {a}",
                            s.def.code
                        ));
                    }
                }
            }
            for side in [Side::Buy, Side::Sell] {
                for (&p, l) in &s.book(side).levels {
                    if l.count == 0 {
                        return Err(format!("security {}: empty level {p}", s.def.code));
                    }
                    if p < s.lower || p > s.upper {
                        return Err(format!(
                            "security {}: level {p} outside the price limits",
                            s.def.code
                        ));
                    }
                    let fifo = self.orders.fifo(l);
                    if fifo.len() != l.count as usize {
                        return Err(format!("security {}: level {p} count mismatch", s.def.code));
                    }
                    let mut q = 0;
                    let mut prev_id = 0;
                    for i in fifo {
                        let o = self.orders.get(i);
                        // The state hash relies on this (it hashes the set of orders).
                        if o.id.0 <= prev_id {
                            return Err(format!(
                                "security {}: level {p} out of order-id order at order {}",
                                s.def.code, o.id
                            ));
                        }
                        prev_id = o.id.0;
                        if o.price != Some(p) || o.side != side || o.leaves() == 0 {
                            return Err(format!("order {} misplaced or empty", o.id));
                        }
                        if self.orders.find(o.id) != Some(i) {
                            return Err(format!("order {} not reachable by id", o.id));
                        }
                        q += o.leaves();
                        seen += 1;
                    }
                    if q != l.qty {
                        return Err(format!(
                            "security {}: level {p} quantity {} != orders {q}",
                            s.def.code, l.qty
                        ));
                    }
                }
            }
        }
        if seen != self.orders.live {
            return Err(format!(
                "{} live China Connect orders but {seen} in books or held",
                self.orders.live
            ));
        }
        Ok(())
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CcOrderSnap {
    id: OrderId,
    owner: Owner,
    cl_ord_id: ClOrdId,
    sec: SecurityCode,
    side: Side,
    price: Price,
    qty: Qty,
    cum: Qty,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CcSecSnap {
    code: SecurityCode,
    last_trade: Option<Price>,
    trade_seq: u64,
    halted: bool,
    iep: Option<(Price, Qty)>,
    closing_auction_traded: bool,
    closing: Option<Price>,
    volume: u64,
    turnover: u128,
}

/// The China Connect part of an engine snapshot.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct CcSnapshot {
    phase: Option<CcPhase>,
    next_transition: usize,
    quota: Vec<Quota>,
    ids: Vec<(BrokerId, ClOrdId, u64)>,
    holdings: Vec<(BrokerId, SecurityCode, u64)>,
    secs: Vec<CcSecSnap>,
    held: Vec<CcOrderSnap>,
    resting: Vec<CcOrderSnap>,
}
