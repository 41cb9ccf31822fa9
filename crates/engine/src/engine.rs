//! The OTP-C matching engine: a deterministic state machine.
//!
//! `apply(command, timestamp)` first runs every scheduled action due by `timestamp` (phase
//! changes, the random auction moments, nominal-price samples), then the command. No wall clock,
//! no unseeded randomness, and no hash-map iteration reaches events or the state hash.

use crate::book::{Level, Order, Orders, SideBook, NIL};
use crate::china::{CcConfig, CcSchedule, CcSnapshot, ChinaConnect, Ctx};
use crate::hash::StableHasher;
use crate::ids::ClOrdIds;
use crate::refdata::{Security, SpreadTable};
use crate::schedule::Schedule;
use crate::types::*;
use serde::{Deserialize, Serialize};
use twinsite_core::limits;
use twinsite_core::{
    BrokerId, ClOrdId, CompId, MarketSegment, OrderId, Price, Qty, SecurityCode, Side, Timestamp,
};

/// Configurable rule switches (see docs/engine.md for each choice).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EngineConfig {
    /// Seed for the random POS matching and CAS closing moments.
    pub seed: u64,
    pub schedule: Schedule,
    /// Enforce the 24-spread rule on orders that would rest.
    pub spread_rule_24: bool,
    /// Allow the larger of 24 spreads or 4% (the reported 2025 change).
    pub spread_rule_4pct: bool,
    /// Enforce the 9-times rule.
    pub nine_times_rule: bool,
    /// IEP tie-break when two prices are equally close to the reference: take the higher.
    pub iep_tie_higher: bool,
    /// CAS securities whose closing auction did not trade close at the reference price (true)
    /// or at the median of the nominal samples (false).
    pub cas_close_at_reference: bool,
    /// Maximum order size in board lots.
    pub max_lots: u64,
    /// China Connect timetable; empty: the China Connect phase follows the HK phase.
    #[serde(default)]
    pub cc_schedule: CcSchedule,
    /// China Connect daily quota per link (SH, SZ), RMB.
    #[serde(default = "cc_quota")]
    pub cc_daily_quota: i64,
    /// China Connect holdings: shares each broker may sell today (no day trading).
    #[serde(default)]
    pub cc_holdings: Vec<(BrokerId, SecurityCode, u64)>,
    /// Orders (live at once and ids in the day) and client order ids per broker to reserve
    /// room for up front, so that no command pays for reallocating a large vector
    /// (docs/operations.md, "Capacity"). Not part of the state: 0 reserves nothing.
    #[serde(default)]
    pub reserve_orders: usize,
}
fn cc_quota() -> i64 {
    limits::CC_DAILY_QUOTA_RMB as i64
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            seed: 0x7715_17e5,
            schedule: Schedule::manual(),
            spread_rule_24: true,
            spread_rule_4pct: false,
            nine_times_rule: true,
            iep_tie_higher: true,
            cas_close_at_reference: true,
            max_lots: limits::MAX_ORDER_BOARD_LOTS,
            cc_schedule: CcSchedule::manual(),
            cc_daily_quota: cc_quota(),
            cc_holdings: Vec::new(),
            reserve_orders: 0,
        }
    }
}

pub use crate::hash::FxHasher;

/// Per-security state.
#[derive(Debug, Clone)]
pub struct SecState {
    pub def: Security,
    pub bids: SideBook,
    pub asks: SideBook,
    pub last_trade: Option<Price>,
    pub trade_seq: u64,
    pub halted: bool,
    pub samples: Vec<Price>,
    pub reference: Option<Price>,
    pub iep: Option<(Price, Qty)>,
    pub nominal: Option<Price>,
    /// Highest bid / lowest ask recorded at the end of an auction's order input period.
    pub input_end_bid: Option<Price>,
    pub input_end_ask: Option<Price>,
    pub auction_done: bool,
    pub auction_traded: bool,
    pub closing: Option<Price>,
    pub volume: u64,
    pub turnover: u128,
    pub high: Option<Price>,
    pub low: Option<Price>,
    pub open: Option<Price>,
}

impl SecState {
    fn new(def: Security) -> SecState {
        SecState {
            def,
            bids: SideBook::new(Side::Buy),
            asks: SideBook::new(Side::Sell),
            last_trade: None,
            trade_seq: 0,
            halted: false,
            samples: Vec::new(),
            reference: None,
            iep: None,
            nominal: None,
            input_end_bid: None,
            input_end_ask: None,
            auction_done: false,
            auction_traded: false,
            closing: None,
            volume: 0,
            turnover: 0,
            high: None,
            low: None,
            open: None,
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
    /// Nominal price in continuous trading (OCG reference §5.4).
    pub fn continuous_nominal(&self) -> Price {
        let base = self.last_trade.unwrap_or(self.def.prev_close);
        match (self.best_bid(), self.best_ask()) {
            (Some(b), _) if b > base => b,
            (_, Some(a)) if a < base => a,
            _ => base,
        }
    }
}

/// Security code -> index into the engine's securities (sorted by code, no gaps): a binary
/// search over a small contiguous array.
#[derive(Debug, Clone, Default)]
struct SecIndex {
    codes: Vec<SecurityCode>,
    slots: Vec<u32>,
}

impl SecIndex {
    /// Codes must be pushed in ascending order.
    fn push(&mut self, c: SecurityCode) {
        debug_assert!(self.codes.last().is_none_or(|&l| l < c));
        self.slots.push(self.codes.len() as u32);
        self.codes.push(c);
    }
    #[inline]
    fn get(&self, c: &SecurityCode) -> Option<&u32> {
        self.codes.binary_search(c).ok().map(|i| &self.slots[i])
    }
    fn contains_key(&self, c: &SecurityCode) -> bool {
        self.codes.binary_search(c).is_ok()
    }
}

/// What a scheduled action does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
enum Timed {
    /// Take a nominal-price sample (ordered before phase changes at the same instant).
    Sample,
    /// Run the pending auction (POS matching or CAS close).
    Auction,
    /// Move to scheduled transition number n.
    Transition(usize),
}

/// The matching engine.
pub struct Engine {
    cfg: EngineConfig,
    now: Timestamp,
    phase: Phase,
    market_halted: bool,
    secs: Vec<SecState>,
    sec_index: SecIndex,
    orders: Orders,
    /// (broker, client order id) -> order id (0 for a non-order request id).
    ids: ClOrdIds,
    ids_digest: u64,
    next_order_id: u64,
    next_exec_id: u64,
    next_report_id: u64,
    next_transition: usize,
    pending_auction: Option<Timestamp>,
    sample_times: Vec<Timestamp>,
    next_sample: usize,
    random_counter: u64,
    commands: u64,
    /// China Connect northbound securities, books, quota and timetable.
    china: ChinaConnect,
}

fn splitmix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// One client-order-id table entry's contribution to the table digest (a sum over entries, so
/// independent of insertion order). A few 64x64->128 multiplies instead of a byte loop: the
/// digest is updated on almost every command. Platform-independent (fixed-width integers only).
fn id_entry_hash(b: BrokerId, c: &ClOrdId, v: u64) -> u64 {
    fn mum(a: u64, b: u64) -> u64 {
        let r = a as u128 * b as u128;
        (r as u64) ^ ((r >> 64) as u64)
    }
    let bytes = c.0.as_bytes();
    let mut w = [0u8; 24];
    w[..bytes.len()].copy_from_slice(bytes);
    let word = |i: usize| {
        let mut x = [0u8; 8];
        x.copy_from_slice(&w[i * 8..i * 8 + 8]);
        u64::from_le_bytes(x)
    };
    let key = (b.0 as u64) << 8 | bytes.len() as u64;
    let h = mum(
        word(0) ^ 0xa076_1d64_78bd_642f,
        word(1) ^ 0xe703_7ed1_a0b4_28db,
    ) ^ mum(word(2) ^ 0x8ebc_6af0_9c88_c6e3, key ^ 0x5899_65cc_7537_4cc3);
    mum(h ^ 0x1d8e_4e27_c47d_124f, splitmix(v))
}

impl Engine {
    pub fn new(cfg: EngineConfig, securities: Vec<Security>) -> Engine {
        let mut sec_index = SecIndex::default();
        let mut secs = Vec::with_capacity(securities.len());
        let (cc, mut sorted): (Vec<Security>, Vec<Security>) = securities
            .into_iter()
            .partition(|s| s.segment.is_china_connect());
        let china = ChinaConnect::new(
            CcConfig {
                schedule: cfg.cc_schedule.clone(),
                daily_quota: cfg.cc_daily_quota,
                holdings: cfg.cc_holdings.clone(),
            },
            cc,
        );
        sorted.sort_by_key(|s| s.code);
        sorted.dedup_by_key(|s| s.code);
        for s in sorted {
            sec_index.push(s.code);
            secs.push(SecState::new(s));
        }
        let sample_times = Self::sample_times(&cfg.schedule);
        let reserve = cfg.reserve_orders;
        Engine {
            cfg,
            now: Timestamp(0),
            phase: Phase::NotYetOpen,
            market_halted: false,
            secs,
            sec_index,
            orders: Orders::with_capacity(reserve, reserve),
            ids: ClOrdIds::with_run_capacity(reserve),
            ids_digest: 0,
            next_order_id: 1,
            next_exec_id: 1,
            next_report_id: 1,
            next_transition: 0,
            pending_auction: None,
            sample_times,
            next_sample: 0,
            random_counter: 0,
            commands: 0,
            china,
        }
    }

    /// The China Connect part and the shared counters it uses.
    fn cc(&mut self) -> (&mut ChinaConnect, Ctx<'_>) {
        let ctx = Ctx {
            now: self.now,
            next_order_id: &mut self.next_order_id,
            next_exec_id: &mut self.next_exec_id,
            next_report_id: &mut self.next_report_id,
        };
        (&mut self.china, ctx)
    }
    /// China Connect state (phase, books, quota, holdings).
    pub fn china(&self) -> &ChinaConnect {
        &self.china
    }

    fn sample_times(s: &Schedule) -> Vec<Timestamp> {
        let end = s
            .transitions
            .iter()
            .find(|t| matches!(t.phase, Phase::CasReferencePriceFixing | Phase::DayClosed))
            .map(|t| t.at);
        match end {
            Some(end) => (0..limits::CAS_REFERENCE_SAMPLES as u64)
                .rev()
                .map(|k| Timestamp(end.0.saturating_sub(k * s.sample_interval_ns)))
                .collect(),
            None => Vec::new(),
        }
    }

    pub fn config(&self) -> &EngineConfig {
        &self.cfg
    }
    pub fn phase(&self) -> Phase {
        self.phase
    }
    pub fn now(&self) -> Timestamp {
        self.now
    }
    pub fn securities(&self) -> impl Iterator<Item = &SecState> {
        self.secs.iter()
    }
    pub fn security(&self, code: SecurityCode) -> Option<&SecState> {
        self.sec_index.get(&code).map(|&i| &self.secs[i as usize])
    }
    pub fn live_orders(&self) -> usize {
        self.orders.live
    }
    pub fn commands_applied(&self) -> u64 {
        self.commands
    }

    /// An order by id, as the gateway reports it.
    pub fn order(&self, id: OrderId) -> Option<OrderInfo> {
        (self.orders.find(id).map(|i| self.info(i))).or_else(|| self.china.order(id))
    }

    /// Resting orders of one side of a security in priority order (at-auction queue first).
    pub fn book_orders(&self, code: SecurityCode, side: Side) -> Vec<OrderInfo> {
        let Some(&si) = self.sec_index.get(&code) else {
            return self.china.book_orders(code, side);
        };
        let b = self.secs[si as usize].book(side);
        let mut out: Vec<OrderInfo> = self
            .orders
            .fifo(&b.auction)
            .into_iter()
            .map(|i| self.info(i))
            .collect();
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

    /// Apply one command at `ts`; events are appended to `out`.
    pub fn apply_into(&mut self, cmd: &Command, ts: Timestamp, out: &mut Vec<Event>) {
        self.commands += 1;
        self.advance(ts, out);
        let (cc, mut ctx) = self.cc();
        cc.advance(&mut ctx, out);
        match cmd {
            Command::NewOrder(o) if self.china.has(o.security) => {
                let (cc, mut ctx) = self.cc();
                cc.new_order(o, &mut ctx, out)
            }
            Command::Amend(a) if self.china.has(a.security) => self.china.amend(a, out),
            Command::Cancel(c) if self.china.has(c.security) => self.china.cancel(c, out),
            Command::MassCancel(m) if self.cc_scope(m.scope) => {
                let (cc, mut ctx) = self.cc();
                cc.mass_cancel(m, &mut ctx, out)
            }
            Command::MassCancel(m) => {
                self.mass_cancel(m, out);
                // Scope All also covers the broker's China Connect orders, in the same report.
                if let (
                    MassCancelScope::All,
                    Some(Event::MassCancelReport { rejected: None, .. }),
                ) = (m.scope, out.last())
                {
                    let mut report = out.pop().expect("report");
                    let n = self.china.cancel_for_broker(m, out);
                    if let Event::MassCancelReport { cancelled, .. } = &mut report {
                        *cancelled += n;
                    }
                    out.push(report);
                }
            }
            Command::NewOrder(o) => self.new_order(o, out),
            Command::Amend(a) => self.amend(a, out),
            Command::Cancel(c) => self.cancel(c, out),
            Command::CancelOnDisconnect { session } => {
                let s = *session;
                let r = CancelReason::Restated(RESTATE_CANCEL_ON_DISCONNECT);
                self.cancel_where(out, r, None, |o| o.owner.session == s);
                self.china
                    .cancel_where(r, None, out, |o| o.owner.session == s);
            }
            Command::SuspendBroker { broker } => {
                let b = *broker;
                let r = CancelReason::Restated(RESTATE_BROKER_SUSPENDED);
                self.cancel_where(out, r, None, |o| o.owner.broker == b);
                self.china
                    .cancel_where(r, None, out, |o| o.owner.broker == b);
            }
            Command::Tick => {}
            Command::SetPhase(p) => self.enter_phase(*p, out),
            Command::Halt { security } => self.halt_any(*security, true, out),
            Command::Resume { security } => self.halt_any(*security, false, out),
        }
    }

    fn cc_scope(&self, scope: MassCancelScope) -> bool {
        match scope {
            MassCancelScope::Security(c) => self.china.has(c),
            MassCancelScope::Segment(g) => g.is_china_connect(),
            MassCancelScope::All => false,
        }
    }

    /// Halt / resume an HK or China Connect security, or everything (events in code order).
    fn halt_any(&mut self, sec: Option<SecurityCode>, halted: bool, out: &mut Vec<Event>) {
        match sec {
            Some(c) if self.china.has(c) => {
                let (cc, mut ctx) = self.cc();
                cc.set_halt(sec, halted, &mut ctx, out)
            }
            Some(_) => self.set_halt(sec, halted, out),
            None => {
                let start = out.len();
                self.set_halt(None, halted, out);
                let (cc, mut ctx) = self.cc();
                let mut ccev = Vec::new();
                cc.set_halt(None, halted, &mut ctx, &mut ccev);
                let n = ccev
                    .iter()
                    .take_while(|e| matches!(e, Event::SecurityStatus { .. }))
                    .count();
                out.extend(ccev.drain(..n));
                out[start..].sort_by_key(|e| match e {
                    Event::SecurityStatus { security, .. } => *security,
                    _ => SecurityCode(0),
                });
                out.extend(ccev);
            }
        }
    }

    /// Apply one command at `ts` and return its events.
    pub fn apply(&mut self, cmd: &Command, ts: Timestamp) -> Vec<Event> {
        let mut out = Vec::new();
        self.apply_into(cmd, ts, &mut out);
        out
    }

    // ------------------------------------------------------------------ time

    fn advance(&mut self, ts: Timestamp, out: &mut Vec<Event>) {
        if ts > self.now {
            self.now = ts;
        }
        loop {
            let mut next: Option<(Timestamp, Timed)> = None;
            let mut consider = |at: Timestamp, what: Timed| {
                if at <= self.now && next.is_none_or(|n| (at, what) < n) {
                    next = Some((at, what));
                }
            };
            if let Some(&at) = self.sample_times.get(self.next_sample) {
                consider(at, Timed::Sample);
            }
            if let Some(at) = self.pending_auction {
                consider(at, Timed::Auction);
            }
            if let Some(t) = self.cfg.schedule.transitions.get(self.next_transition) {
                consider(t.at, Timed::Transition(self.next_transition));
            }
            let Some((_, what)) = next else { break };
            match what {
                Timed::Sample => {
                    self.next_sample += 1;
                    for s in &mut self.secs {
                        let n = s.continuous_nominal();
                        s.samples.push(n);
                    }
                }
                Timed::Auction => {
                    self.pending_auction = None;
                    self.run_auctions(out);
                }
                Timed::Transition(i) => {
                    self.next_transition = i + 1;
                    let p = self.cfg.schedule.transitions[i].phase;
                    self.enter_phase(p, out);
                }
            }
        }
    }

    fn random_below(&mut self, n: u64) -> u64 {
        self.random_counter += 1;
        if n == 0 {
            return 0;
        }
        splitmix(self.cfg.seed ^ splitmix(self.random_counter)) % n
    }

    fn enter_phase(&mut self, p: Phase, out: &mut Vec<Event>) {
        let prev = self.phase;
        if p == prev {
            return;
        }
        // Auctions that have not run yet run when their session is left.
        let leaving_pos =
            prev.is_pos() && prev != Phase::PosBlocking && (p == Phase::PosBlocking || !p.is_pos());
        let leaving_cas = prev.is_cas() && !p.is_cas();
        if (leaving_pos || leaving_cas)
            && (self.pending_auction.take().is_some() || !self.all_auctions_done())
        {
            self.run_auctions(out);
        }
        self.phase = p;
        out.push(Event::PhaseChanged { phase: p });
        let (cc, mut ctx) = self.cc();
        cc.on_hk_phase(p, &mut ctx, out);
        let before_matching = matches!(
            p,
            Phase::PosOrderInput
                | Phase::PosNoCancel
                | Phase::CasReferencePriceFixing
                | Phase::CasOrderInput
                | Phase::CasNoCancel
        );
        // Entering an auction session, or going back to its input periods after its matching
        // ran (operations), means the auction has to run again.
        if (p.is_pos() && !prev.is_pos()) || (p.is_cas() && !prev.is_cas()) || before_matching {
            for s in &mut self.secs {
                s.auction_done = false;
                s.auction_traded = false;
                s.iep = None;
            }
        }
        match p {
            Phase::PosOrderInput | Phase::CasOrderInput => {
                for s in &mut self.secs {
                    s.auction_done = false;
                    s.auction_traded = false;
                    s.iep = None;
                }
            }
            Phase::PosNoCancel | Phase::CasNoCancel => {
                for s in &mut self.secs {
                    s.input_end_bid = s.best_bid();
                    s.input_end_ask = s.best_ask();
                }
            }
            Phase::PosRandomMatching | Phase::CasRandomClose => {
                // Matching at a seeded random moment before the next scheduled change.
                let end = self
                    .cfg
                    .schedule
                    .transitions
                    .get(self.next_transition)
                    .map(|t| t.at)
                    .filter(|&e| e > self.now);
                match end {
                    Some(e) => {
                        let off = self.random_below(e.0 - self.now.0);
                        self.pending_auction = Some(Timestamp(self.now.0 + off));
                    }
                    None => self.run_auctions(out),
                }
            }
            Phase::CasReferencePriceFixing => self.fix_reference_prices(out),
            Phase::DayClosed => self.close_day(out),
            _ => {}
        }
        if prev.is_pos() && p.is_continuous() {
            // Nothing further: leftovers were converted when the auction ran.
        }
    }

    fn all_auctions_done(&self) -> bool {
        self.secs
            .iter()
            .all(|s| s.auction_done || !self.auction_eligible(s))
    }

    fn auction_eligible(&self, s: &SecState) -> bool {
        if self.phase.is_pos() {
            s.def.pos
        } else if self.phase.is_cas() {
            s.def.cas
        } else {
            false
        }
    }

    fn median(v: &[Price]) -> Option<Price> {
        if v.is_empty() {
            return None;
        }
        let mut s = v.to_vec();
        s.sort();
        Some(s[(s.len() - 1) / 2])
    }

    fn fix_reference_prices(&mut self, out: &mut Vec<Event>) {
        for si in 0..self.secs.len() {
            let s = &mut self.secs[si];
            if !s.def.cas {
                continue;
            }
            let samples: Vec<Price> = s
                .samples
                .iter()
                .rev()
                .take(limits::CAS_REFERENCE_SAMPLES)
                .copied()
                .collect();
            let r = Self::median(&samples).unwrap_or_else(|| s.continuous_nominal());
            s.reference = Some(r);
            let (lo, hi) = Self::band(s.def.spread_table, r, limits::CAS_BAND_BPS);
            out.push(Event::ReferencePrice {
                security: s.def.code,
                price: r,
                lower: lo,
                upper: hi,
            });
            // Resting limit orders carry into the closing auction as at-auction limit orders.
            for side in [Side::Buy, Side::Sell] {
                let idxs: Vec<u32> = {
                    let b = self.secs[si].book(side);
                    b.levels
                        .values()
                        .flat_map(|l| self.orders.fifo(l))
                        .collect()
                };
                for i in idxs {
                    self.orders
                        .update(i, |o| o.order_type = OrderType::AtAuctionLimit);
                }
            }
        }
    }

    /// Price band of +-bps around `r`, rounded inwards to valid prices.
    fn band(t: SpreadTable, r: Price, bps: i64) -> (Price, Price) {
        let lo_raw = r.0 - r.0 * bps / 10_000;
        let hi_raw = r.0 + r.0 * bps / 10_000;
        // Round inwards onto the table.
        let mut lo = Price(lo_raw.max(crate::refdata::MIN_PRICE.0));
        while !t.is_valid(lo) && lo.0 < r.0 {
            lo.0 += 1;
        }
        let mut hi = Price(hi_raw.min(t.max_price().0));
        while !t.is_valid(hi) && hi.0 > r.0 {
            hi.0 -= 1;
        }
        (lo, hi)
    }

    fn close_day(&mut self, out: &mut Vec<Event>) {
        for si in 0..self.secs.len() {
            let s = &self.secs[si];
            let close = if s.def.cas && s.auction_traded {
                s.last_trade
            } else if s.def.cas && self.cfg.cas_close_at_reference && s.reference.is_some() {
                s.reference
            } else {
                let samples: Vec<Price> = s
                    .samples
                    .iter()
                    .rev()
                    .take(limits::CAS_REFERENCE_SAMPLES)
                    .copied()
                    .collect();
                Self::median(&samples)
                    .or(s.last_trade)
                    .or(Some(s.def.prev_close))
            };
            if let Some(c) = close {
                self.secs[si].closing = Some(c);
                out.push(Event::ClosingPrice {
                    security: self.secs[si].def.code,
                    price: c,
                });
            }
        }
        self.cancel_where(out, CancelReason::Expired, None, |_| true);
    }

    fn set_halt(&mut self, sec: Option<SecurityCode>, halted: bool, out: &mut Vec<Event>) {
        match sec {
            None => {
                self.market_halted = halted;
                for s in &mut self.secs {
                    s.halted = halted;
                    out.push(Event::SecurityStatus {
                        security: s.def.code,
                        halted,
                    });
                }
            }
            Some(code) => {
                if let Some(&i) = self.sec_index.get(&code) {
                    let s = &mut self.secs[i as usize];
                    if s.halted != halted {
                        s.halted = halted;
                        out.push(Event::SecurityStatus {
                            security: code,
                            halted,
                        });
                    }
                }
            }
        }
    }

    // ------------------------------------------------------------------ ids

    fn id_used(&self, b: BrokerId, c: &ClOrdId) -> bool {
        self.ids.contains(b, c)
    }
    fn record_id(&mut self, b: BrokerId, c: ClOrdId, order: u64) {
        if self.ids.insert(b, c, order).is_none() {
            self.ids_digest = self.ids_digest.wrapping_add(id_entry_hash(b, &c, order));
        }
    }

    fn lookup(
        &self,
        broker: BrokerId,
        orig: Option<&ClOrdId>,
        order_id: Option<OrderId>,
        sec: SecurityCode,
    ) -> Option<u32> {
        // Fast path when both ids are given: a live order's current client order id always maps
        // to that order in `ids`, so when the order named by id carries `orig`, the table would
        // give the same answer.
        if let (Some(c), Some(id)) = (orig, order_id) {
            if let Some(idx) = self.orders.find(id) {
                let o = self.orders.get(idx);
                if o.cl_ord_id == *c && o.owner.broker == broker {
                    return (self.secs[o.sec as usize].def.code == sec).then_some(idx);
                }
            }
        }
        let by_cl = orig
            .and_then(|c| self.ids.get(broker, c))
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

    // ------------------------------------------------------------------ validation

    fn reject(out: &mut Vec<Event>, o: &NewOrder, code: RejectCode, reason: &'static str) {
        out.push(Event::Rejected {
            owner: o.owner,
            cl_ord_id: o.cl_ord_id,
            security: o.security,
            side: o.side,
            code,
            reason,
        });
    }

    /// Checks that depend on the order alone and the phase (shared by new orders and replaces).
    fn check_order(
        &self,
        si: usize,
        side: Side,
        ot: OrderType,
        price: Option<Price>,
        qty: Qty,
    ) -> Result<(), (RejectCode, &'static str)> {
        let s = &self.secs[si];
        if s.halted {
            return Err((RejectCode::Other, "security is halted"));
        }
        // Phase and order type.
        let allowed = match self.phase {
            Phase::PosOrderInput | Phase::PosNoCancel => ot.is_auction() && s.def.pos,
            Phase::CasOrderInput | Phase::CasNoCancel => ot.is_auction() && s.def.cas,
            Phase::ContinuousMorning | Phase::ContinuousAfternoon => !ot.is_auction(),
            Phase::ExtendedMorning => !ot.is_auction() && s.def.extended,
            _ => false,
        };
        if !allowed {
            return Err((
                RejectCode::Other,
                "order type not allowed in the current trading session",
            ));
        }
        // Price presence and spread table.
        match (ot.has_price(), price) {
            (true, None) => return Err((RejectCode::Other, "price required for this order type")),
            (false, Some(_)) => {
                return Err((RejectCode::Other, "at-auction orders carry no price"))
            }
            (true, Some(p)) if !s.def.spread_table.is_valid(p) => {
                return Err((
                    RejectCode::PriceOutsideBand,
                    "price not on the spread table",
                ))
            }
            _ => {}
        }
        // Quantity: whole board lots, at most max_lots.
        let lots = qty.0 / s.def.lot_size;
        if qty.0 == 0 || lots * s.def.lot_size != qty.0 {
            return Err((
                RejectCode::IncorrectQty,
                "quantity is not a whole number of board lots",
            ));
        }
        if lots > self.cfg.max_lots {
            return Err((
                RejectCode::ExceedsLimit,
                "quantity exceeds 3,000 board lots",
            ));
        }
        let Some(p) = price else { return Ok(()) };
        // 9-times rule against the nominal price.
        if self.cfg.nine_times_rule {
            let nominal = if self.phase.is_continuous() {
                s.continuous_nominal()
            } else {
                s.def.prev_close
            };
            if p.0 as i128 * 9 <= nominal.0 as i128 || p.0 as i128 >= nominal.0 as i128 * 9 {
                return Err((
                    RejectCode::PriceOutsideBand,
                    "price 9 times or more away from the nominal price",
                ));
            }
        }
        // Auction bands.
        if self.phase.is_pos() {
            let (lo, hi) = Self::band(s.def.spread_table, s.def.prev_close, limits::POS_BAND_BPS);
            if p < lo || p > hi {
                return Err((
                    RejectCode::PriceOutsideBand,
                    "price outside +-15% of the previous close",
                ));
            }
        }
        if self.phase.is_cas() {
            let Some(r) = s.reference else {
                return Err((
                    RejectCode::ReferencePriceUnavailable,
                    "reference price not available",
                ));
            };
            let (lo, hi) = Self::band(s.def.spread_table, r, limits::CAS_BAND_BPS);
            if p < lo || p > hi {
                return Err((
                    RejectCode::PriceOutsideBand,
                    "price outside +-5% of the reference price",
                ));
            }
        }
        if matches!(self.phase, Phase::PosNoCancel | Phase::CasNoCancel) {
            let bad = match side {
                Side::Buy => s.input_end_ask.is_some_and(|a| p > a),
                Side::Sell => s.input_end_bid.is_some_and(|b| p < b),
            };
            if bad {
                return Err((
                    RejectCode::PriceOutsideBand,
                    "price outside the lowest ask / highest bid recorded at the end of order input",
                ));
            }
        }
        if self.phase.is_continuous() {
            let opp = match side {
                Side::Buy => s.best_ask(),
                Side::Sell => s.best_bid(),
            };
            let crosses = opp.is_some_and(|o| match side {
                Side::Buy => p >= o,
                Side::Sell => p <= o,
            });
            let t = s.def.spread_table;
            match ot {
                OrderType::Limit => {
                    if let Some(o) = opp {
                        let through = match side {
                            Side::Buy => p > o,
                            Side::Sell => p < o,
                        };
                        if through {
                            return Err((
                                RejectCode::PriceOutsideBand,
                                "limit order priced through the best opposite price",
                            ));
                        }
                    }
                }
                OrderType::EnhancedLimit => {
                    if let Some(o) = opp {
                        let lim = match side {
                            Side::Buy => p > t.shift(o, limits::ENHANCED_LIMIT_SPREADS as i32),
                            Side::Sell => p < t.shift(o, -(limits::ENHANCED_LIMIT_SPREADS as i32)),
                        };
                        if lim {
                            return Err((RejectCode::PriceOutsideBand, "enhanced limit order more than 9 spreads through the best opposite price"));
                        }
                    }
                }
                _ => {}
            }
            // 24-spread rule for orders that would rest without trading.
            let rests = matches!(ot, OrderType::Limit | OrderType::EnhancedLimit) && !crosses;
            if self.cfg.spread_rule_24 && rests {
                let anchor = s
                    .book(side)
                    .best(side)
                    .unwrap_or_else(|| s.continuous_nominal());
                let worse = match side {
                    Side::Buy => p < anchor,
                    Side::Sell => p > anchor,
                };
                if worse {
                    let n = t.spreads_between(p, anchor, limits::MAX_SPREADS_FROM_BEST + 1);
                    let pct_ok =
                        self.cfg.spread_rule_4pct && (anchor.0 - p.0).abs() * 100 <= anchor.0 * 4;
                    if n > limits::MAX_SPREADS_FROM_BEST && !pct_ok {
                        return Err((
                            RejectCode::PriceOutsideBand,
                            "price more than 24 spreads from the best price",
                        ));
                    }
                }
            }
        }
        Ok(())
    }

    // ------------------------------------------------------------------ new order

    fn new_order(&mut self, o: &NewOrder, out: &mut Vec<Event>) {
        let Some(&si) = self.sec_index.get(&o.security) else {
            return Self::reject(out, o, RejectCode::Other, "unknown security");
        };
        let si = si as usize;
        if self.id_used(o.owner.broker, &o.cl_ord_id) {
            return Self::reject(out, o, RejectCode::Duplicate, "duplicate client order id");
        }
        if o.short_sell && (o.side != Side::Sell || !self.secs[si].def.short_sell) {
            return Self::reject(out, o, RejectCode::Other, "short selling not allowed");
        }
        if let Err((code, reason)) = self.check_order(si, o.side, o.order_type, o.price, o.qty) {
            return Self::reject(out, o, code, reason);
        }
        if o.order_type == OrderType::SpecialLimitFok {
            let avail = self.fillable(
                si,
                o.side,
                o.price.unwrap_or_default(),
                limits::MAX_MATCH_QUEUES as usize,
                o.qty.0,
            );
            if avail < o.qty.0 {
                return Self::reject(
                    out,
                    o,
                    RejectCode::Other,
                    "all-or-nothing order cannot be filled completely",
                );
            }
        }
        let id = OrderId(self.next_order_id);
        self.next_order_id += 1;
        self.record_id(o.owner.broker, o.cl_ord_id, id.0);
        let order = Order {
            id,
            owner: o.owner,
            cl_ord_id: o.cl_ord_id,
            sec: si as u32,
            side: o.side,
            order_type: o.order_type,
            price: o.price,
            qty: o.qty,
            cum: Qty(0),
            short_sell: o.short_sell,
            prev: NIL,
            next: NIL,
        };
        let idx = self.orders.insert(order);
        out.push(Event::Accepted(self.info(idx)));
        self.process(idx, out);
    }

    /// Match (in continuous trading) and rest or cancel the remainder of a newly accepted order.
    fn process(&mut self, idx: u32, out: &mut Vec<Event>) {
        let (si, ot, side, price) = {
            let o = self.orders.get(idx);
            (o.sec as usize, o.order_type, o.side, o.price)
        };
        if ot.is_auction() {
            self.rest(idx, out);
            self.update_iep(si, out);
            return;
        }
        let max_levels = match ot {
            OrderType::Limit => 1,
            _ => limits::MAX_MATCH_QUEUES as usize,
        };
        self.match_continuous(idx, si, side, price.unwrap_or_default(), max_levels, out);
        let leaves = self.orders.get(idx).leaves();
        if leaves == 0 {
            self.orders.remove(idx);
        } else if matches!(ot, OrderType::SpecialLimit | OrderType::SpecialLimitFok) {
            let info = self.info(idx);
            self.orders.remove(idx);
            out.push(Event::Cancelled {
                order: info,
                reason: CancelReason::ImmediateOrCancel,
                by: None,
            });
        } else {
            self.rest(idx, out);
        }
        self.update_nominal(si, out);
    }

    fn rest(&mut self, idx: u32, out: &mut Vec<Event>) {
        let (si, side, price, qty, id, broker) = {
            let o = self.orders.get(idx);
            (
                o.sec as usize,
                o.side,
                o.price,
                o.leaves(),
                o.id,
                o.owner.broker,
            )
        };
        let book = self.secs[si].book_mut(side);
        match price {
            None => self.orders.push_back(&mut book.auction, idx),
            Some(p) => {
                let level = book.levels.entry(p);
                self.orders.push_back(level, idx);
            }
        }
        out.push(Event::BookAdd {
            security: self.secs[si].def.code,
            order_id: id,
            side,
            price,
            qty: Qty(qty),
            broker,
        });
    }

    /// Quantity available to an incoming order within `max_levels` queues up to `limit`.
    fn fillable(&self, si: usize, side: Side, limit: Price, max_levels: usize, want: u64) -> u64 {
        let s = &self.secs[si];
        let mut total = 0;
        for (&p, l) in s.book(side.opposite()).levels.best_first().take(max_levels) {
            let ok = match side {
                Side::Buy => p <= limit,
                Side::Sell => p >= limit,
            };
            if !ok || total >= want {
                break;
            }
            total += l.qty;
        }
        total
    }

    fn match_continuous(
        &mut self,
        idx: u32,
        si: usize,
        side: Side,
        limit: Price,
        max_levels: usize,
        out: &mut Vec<Event>,
    ) {
        let mut levels = 0;
        while levels < max_levels && self.orders.get(idx).leaves() > 0 {
            let opp = side.opposite();
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
            let mut level = self.secs[si]
                .book_mut(opp)
                .levels
                .pop_best()
                .map_or_else(Level::default, |(_, l)| l);
            while level.head != NIL && self.orders.get(idx).leaves() > 0 {
                let p_idx = level.head;
                let q = self
                    .orders
                    .get(idx)
                    .leaves()
                    .min(self.orders.get(p_idx).leaves());
                let (buy, sell) = match side {
                    Side::Buy => (idx, p_idx),
                    Side::Sell => (p_idx, idx),
                };
                self.execute(
                    si,
                    buy,
                    sell,
                    best,
                    q,
                    Some(side),
                    MatchKind::Continuous,
                    out,
                );
                level.qty -= q;
                if self.orders.get(p_idx).leaves() == 0 {
                    self.orders.unlink(&mut level, p_idx, 0);
                    out.push(Event::BookDelete {
                        security: self.secs[si].def.code,
                        order_id: self.orders.get(p_idx).id,
                        side: opp,
                    });
                    self.orders.remove(p_idx);
                } else {
                    let p = self.orders.get(p_idx);
                    out.push(Event::BookModify {
                        security: self.secs[si].def.code,
                        order_id: p.id,
                        side: opp,
                        price: p.price,
                        qty: Qty(p.leaves()),
                    });
                }
            }
            if level.count > 0 {
                self.secs[si].book_mut(opp).levels.insert(best, level);
            }
            levels += 1;
        }
    }

    /// One execution between a buy and a sell order: fills, trade, statistics. Book events are
    /// the caller's.
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
        out: &mut Vec<Event>,
    ) {
        let s = &mut self.secs[si];
        s.trade_seq += 1;
        let trade_id = s.trade_seq;
        s.last_trade = Some(price);
        s.volume += q;
        s.turnover += price.0 as u128 * q as u128;
        s.high = Some(s.high.map_or(price, |h| h.max(price)));
        s.low = Some(s.low.map_or(price, |l| l.min(price)));
        if s.open.is_none() {
            s.open = Some(price);
        }
        let code = s.def.code;
        self.orders.update(buy, |o| o.cum.0 += q);
        self.orders.update(sell, |o| o.cum.0 += q);
        let (bb, sb) = (
            self.orders.get(buy).owner.broker,
            self.orders.get(sell).owner.broker,
        );
        let order_pair = match aggressor {
            Some(Side::Sell) => [(sell, bb, true), (buy, sb, false)],
            Some(Side::Buy) => [(buy, sb, true), (sell, bb, false)],
            None => [(buy, sb, false), (sell, bb, false)],
        };
        for (i, cp, aggr) in order_pair {
            let exec_id = self.next_exec_id;
            self.next_exec_id += 1;
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
            time: self.now,
        });
    }

    fn update_nominal(&mut self, si: usize, out: &mut Vec<Event>) {
        let s = &mut self.secs[si];
        let n = s.continuous_nominal();
        if s.nominal != Some(n) {
            s.nominal = Some(n);
            out.push(Event::Nominal {
                security: s.def.code,
                price: n,
            });
        }
    }

    // ------------------------------------------------------------------ auctions

    /// The IEP and matched volume for a security in the current auction, if any.
    pub fn compute_iep(&self, si: usize) -> Option<(Price, Qty)> {
        let s = &self.secs[si];
        let (anchor, bps) = if self.phase.is_cas() {
            (s.reference?, limits::CAS_BAND_BPS)
        } else {
            (s.def.prev_close, limits::POS_BAND_BPS)
        };
        let (lo, hi) = Self::band(s.def.spread_table, anchor, bps);
        let ao_b = s.bids.auction.qty;
        let ao_s = s.asks.auction.qty;
        let mut cands: Vec<Price> = s
            .bids
            .levels
            .keys()
            .chain(s.asks.levels.keys())
            .copied()
            .collect();
        cands.push(anchor);
        cands.sort();
        cands.dedup();
        let mut best: Option<(u64, u64, i64, Price)> = None; // (volume, imbalance, distance, price)
        for p in cands {
            if p < lo || p > hi {
                continue;
            }
            let b: u64 = ao_b + s.bids.levels.range(p..).map(|(_, l)| l.qty).sum::<u64>();
            let a: u64 = ao_s + s.asks.levels.range(..=p).map(|(_, l)| l.qty).sum::<u64>();
            let vol = b.min(a);
            if vol == 0 {
                continue;
            }
            let imb = b.abs_diff(a);
            let dist = (p.0 - anchor.0).abs();
            let better = match best {
                None => true,
                Some((bv, bi, bd, bp)) => {
                    (vol, std::cmp::Reverse(imb), std::cmp::Reverse(dist))
                        > (bv, std::cmp::Reverse(bi), std::cmp::Reverse(bd))
                        || (vol == bv
                            && imb == bi
                            && dist == bd
                            && (if self.cfg.iep_tie_higher {
                                p > bp
                            } else {
                                p < bp
                            }))
                }
            };
            if better {
                best = Some((vol, imb, dist, p));
            }
        }
        best.map(|(v, _, _, p)| (p, Qty(v)))
    }

    fn update_iep(&mut self, si: usize, out: &mut Vec<Event>) {
        let iep = self.compute_iep(si);
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

    /// Orders of one side in auction priority: at-auction first (time), then price, then time.
    fn auction_queue(&self, si: usize, side: Side, iep: Price) -> Vec<u32> {
        let b = self.secs[si].book(side);
        let mut v = self.orders.fifo(&b.auction);
        for p in b.prices_best_first(side) {
            let ok = match side {
                Side::Buy => p >= iep,
                Side::Sell => p <= iep,
            };
            if !ok {
                break;
            }
            v.extend(self.orders.fifo(&b.levels[&p]));
        }
        v
    }

    fn run_auctions(&mut self, out: &mut Vec<Event>) {
        let pos = self.phase.is_pos();
        for si in 0..self.secs.len() {
            if self.secs[si].auction_done || !self.auction_eligible(&self.secs[si]) {
                continue;
            }
            self.secs[si].auction_done = true;
            if !self.secs[si].halted {
                if let Some((iep, _)) = self.compute_iep(si) {
                    self.auction_match(si, iep, out);
                    self.secs[si].auction_traded = true;
                }
            }
            self.secs[si].iep = None;
            // After either auction, what did not match moves on (or expires) as after the POS;
            // at the day close everything left expires anyway.
            let halted = self.secs[si].halted;
            if pos || halted {
                self.after_pos(si, halted, out);
            }
        }
    }

    fn auction_match(&mut self, si: usize, iep: Price, out: &mut Vec<Event>) {
        let buys = self.auction_queue(si, Side::Buy, iep);
        let sells = self.auction_queue(si, Side::Sell, iep);
        let (mut bi, mut ai) = (0, 0);
        while bi < buys.len() && ai < sells.len() {
            let (b, a) = (buys[bi], sells[ai]);
            let q = self.orders.get(b).leaves().min(self.orders.get(a).leaves());
            self.execute(si, b, a, iep, q, None, MatchKind::Auction, out);
            for (i, side) in [(b, Side::Buy), (a, Side::Sell)] {
                self.after_fill_passive(si, i, side, q, out);
            }
            if self.orders.slot(b).is_none_or(|o| o.leaves() == 0)
                || self.orders.find(self.orders.get(b).id).is_none()
            {
                bi += 1;
            }
            if self.orders.slot(a).is_none_or(|o| o.leaves() == 0)
                || self.orders.find(self.orders.get(a).id).is_none()
            {
                ai += 1;
            }
        }
    }

    /// Update a resting order's level after it traded `q`; remove it when done.
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
            (o.price, o.leaves(), o.id)
        };
        let code = self.secs[si].def.code;
        let book = self.secs[si].book_mut(side);
        let level: &mut Level = match price {
            None => &mut book.auction,
            Some(p) => book
                .levels
                .get_mut(&p)
                .expect("resting order's level exists"),
        };
        level.qty -= q;
        if leaves == 0 {
            self.orders.unlink(level, idx, 0);
            let empty = level.count == 0;
            if empty {
                if let Some(p) = price {
                    book.levels.remove(&p);
                }
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
                price,
                qty: Qty(leaves),
            });
        }
    }

    /// End of POS: unfilled at-auction orders are cancelled; at-auction limit orders become limit
    /// orders unless 9 times or more away from the nominal price.
    /// A security halted at the auction moment did not match: all its auction orders expire.
    fn after_pos(&mut self, si: usize, halted: bool, out: &mut Vec<Event>) {
        let nominal = self.secs[si]
            .last_trade
            .unwrap_or(self.secs[si].def.prev_close);
        for side in [Side::Buy, Side::Sell] {
            let ao = self.orders.fifo(&self.secs[si].book(side).auction);
            for i in ao {
                self.remove_resting(i, CancelReason::Expired, None, out);
            }
            let rest: Vec<u32> = {
                let b = self.secs[si].book(side);
                b.levels
                    .values()
                    .flat_map(|l| self.orders.fifo(l))
                    .collect()
            };
            for i in rest {
                let p = self.orders.get(i).price.unwrap_or_default();
                if halted && self.orders.get(i).order_type.is_auction() {
                    self.remove_resting(i, CancelReason::Expired, None, out);
                } else if p.0 as i128 * 9 <= nominal.0 as i128
                    || p.0 as i128 >= nominal.0 as i128 * 9
                {
                    self.remove_resting(
                        i,
                        CancelReason::Restated(RESTATE_SYSTEM_CANCEL),
                        None,
                        out,
                    );
                } else {
                    self.orders.update(i, |o| o.order_type = OrderType::Limit);
                }
            }
        }
    }

    // ------------------------------------------------------------------ cancel / amend

    fn remove_resting(
        &mut self,
        idx: u32,
        reason: CancelReason,
        by: Option<BrokerId>,
        out: &mut Vec<Event>,
    ) {
        let info = self.info(idx);
        let (si, side, price, leaves) = {
            let o = self.orders.get(idx);
            (o.sec as usize, o.side, o.price, o.leaves())
        };
        let book = self.secs[si].book_mut(side);
        match price {
            None => self.orders.unlink(&mut book.auction, idx, leaves),
            Some(p) => {
                let level = book
                    .levels
                    .get_mut(&p)
                    .expect("resting order's level exists");
                self.orders.unlink(level, idx, leaves);
                if level.count == 0 {
                    book.levels.remove(&p);
                }
            }
        }
        self.orders.remove(idx);
        out.push(Event::Cancelled {
            order: info,
            reason,
            by,
        });
        out.push(Event::BookDelete {
            security: info.security,
            order_id: info.order_id,
            side,
        });
        if self.phase.is_pos() || self.phase.is_cas() {
            self.update_iep(si, out);
        } else if self.phase.is_continuous() {
            self.update_nominal(si, out);
        }
    }

    fn cancel(&mut self, c: &Cancel, out: &mut Vec<Event>) {
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
        if self.id_used(c.owner.broker, &c.cl_ord_id) {
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
        if self.phase.no_cancel() {
            return rej(
                out,
                CancelRejectCode::TooLate,
                "cancellation not allowed in the current trading session",
            );
        }
        let (reason, by) = match c.owning_broker {
            Some(_) => (
                CancelReason::Restated(RESTATE_OBO_SINGLE),
                Some(c.owner.broker),
            ),
            None => (CancelReason::Requested, None),
        };
        self.remove_resting(idx, reason, by, out);
    }

    fn mass_cancel(&mut self, m: &MassCancel, out: &mut Vec<Event>) {
        let report_id = self.next_report_id;
        self.next_report_id += 1;
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
        if self.id_used(m.owner.broker, &m.cl_ord_id) {
            return report(out, 0, Some("duplicate client order id"));
        }
        self.record_id(m.owner.broker, m.cl_ord_id, 0);
        if self.phase.no_cancel() {
            return report(
                out,
                0,
                Some("cancellation not allowed in the current trading session"),
            );
        }
        if let MassCancelScope::Security(code) = m.scope {
            if !self.sec_index.contains_key(&code) {
                return report(out, 0, Some("unknown security"));
            }
        }
        let broker = m.owning_broker.unwrap_or(m.owner.broker);
        let (reason, by) = match m.owning_broker {
            Some(_) => (
                CancelReason::Restated(RESTATE_OBO_MASS),
                Some(m.owner.broker),
            ),
            None => (CancelReason::Restated(RESTATE_MASS_CANCEL), None),
        };
        let scope = m.scope;
        let side = m.side;
        let segs: Vec<MarketSegment> = self.secs.iter().map(|s| s.def.segment).collect();
        let codes: Vec<SecurityCode> = self.secs.iter().map(|s| s.def.code).collect();
        let n = self.cancel_where(out, reason, by, |o| {
            o.owner.broker == broker
                && side.is_none_or(|s| s == o.side)
                && match scope {
                    MassCancelScope::All => true,
                    MassCancelScope::Security(c) => codes[o.sec as usize] == c,
                    MassCancelScope::Segment(g) => segs[o.sec as usize] == g,
                }
        });
        report(out, n, None);
    }

    /// Cancel every resting order matching `pred`, in deterministic order (security code, side,
    /// priority). Returns how many.
    fn cancel_where(
        &mut self,
        out: &mut Vec<Event>,
        reason: CancelReason,
        by: Option<BrokerId>,
        pred: impl Fn(&Order) -> bool,
    ) -> u32 {
        let mut victims = Vec::new();
        for si in 0..self.secs.len() {
            for side in [Side::Buy, Side::Sell] {
                let b = self.secs[si].book(side);
                for i in self.orders.fifo(&b.auction) {
                    if pred(self.orders.get(i)) {
                        victims.push(i);
                    }
                }
                for p in b.prices_best_first(side) {
                    for i in self.orders.fifo(&b.levels[&p]) {
                        if pred(self.orders.get(i)) {
                            victims.push(i);
                        }
                    }
                }
            }
        }
        for &i in &victims {
            self.remove_resting(i, reason, by, out);
        }
        victims.len() as u32
    }

    fn amend(&mut self, a: &Amend, out: &mut Vec<Event>) {
        let rej = |out: &mut Vec<Event>, code, reason| {
            out.push(Event::AmendRejected {
                owner: a.owner,
                cl_ord_id: a.cl_ord_id,
                orig_cl_ord_id: a.orig_cl_ord_id,
                security: a.security,
                code,
                reason,
            })
        };
        if self.id_used(a.owner.broker, &a.cl_ord_id) {
            return rej(
                out,
                CancelRejectCode::Duplicate,
                "duplicate client order id",
            );
        }
        let Some(idx) = self.lookup(
            a.owner.broker,
            Some(&a.orig_cl_ord_id),
            a.order_id,
            a.security,
        ) else {
            self.record_id(a.owner.broker, a.cl_ord_id, 0);
            return rej(out, CancelRejectCode::UnknownOrder, "unknown order");
        };
        let o = self.orders.get(idx).clone();
        if o.side != a.side {
            self.record_id(a.owner.broker, a.cl_ord_id, 0);
            return rej(
                out,
                CancelRejectCode::UnknownOrder,
                "side does not match the order",
            );
        }
        if self.phase.no_cancel() || self.secs[o.sec as usize].halted {
            self.record_id(a.owner.broker, a.cl_ord_id, 0);
            return rej(
                out,
                CancelRejectCode::TooLate,
                "amendment not allowed in the current trading session",
            );
        }
        let lot = self.secs[o.sec as usize].def.lot_size;
        if a.qty.0 <= o.cum.0 || !a.qty.0.is_multiple_of(lot) || a.qty.0 / lot > self.cfg.max_lots {
            self.record_id(a.owner.broker, a.cl_ord_id, 0);
            return rej(
                out,
                CancelRejectCode::Other,
                "amended quantity must be whole board lots above the filled quantity",
            );
        }
        let new_price = if o.order_type.has_price() {
            a.price.or(o.price)
        } else {
            None
        };
        if !o.order_type.has_price() && a.price.is_some() {
            self.record_id(a.owner.broker, a.cl_ord_id, 0);
            return rej(
                out,
                CancelRejectCode::Other,
                "at-auction orders carry no price",
            );
        }
        let si = o.sec as usize;
        if new_price == o.price && a.qty <= o.qty {
            // Quantity down (or unchanged): keeps priority.
            let old_leaves = o.leaves();
            let new_leaves = a.qty.0 - o.cum.0;
            let book = self.secs[si].book_mut(o.side);
            let level = match o.price {
                None => &mut book.auction,
                Some(p) => book
                    .levels
                    .get_mut(&p)
                    .expect("resting order's level exists"),
            };
            level.qty = level.qty - old_leaves + new_leaves;
            self.record_id(a.owner.broker, a.cl_ord_id, o.id.0);
            self.orders.update(idx, |m| {
                m.qty = a.qty;
                m.cl_ord_id = a.cl_ord_id;
            });
            out.push(Event::Amended {
                order: self.info(idx),
                old_order_id: o.id,
                orig_cl_ord_id: a.orig_cl_ord_id,
                replaced: false,
            });
            out.push(Event::BookModify {
                security: a.security,
                order_id: o.id,
                side: o.side,
                price: o.price,
                qty: Qty(new_leaves),
            });
            if self.phase.is_pos() || self.phase.is_cas() {
                self.update_iep(si, out);
            }
            return;
        }
        // Price change or quantity up: cancel/replace with a new order id.
        let remaining_qty = Qty(a.qty.0 - o.cum.0);
        // Take the original out of the book before validating against the book.
        let (side, price, leaves) = (o.side, o.price, o.leaves());
        {
            let book = self.secs[si].book_mut(side);
            match price {
                None => self.orders.unlink(&mut book.auction, idx, leaves),
                Some(p) => {
                    let level = book
                        .levels
                        .get_mut(&p)
                        .expect("resting order's level exists");
                    self.orders.unlink(level, idx, leaves);
                    if level.count == 0 {
                        book.levels.remove(&p);
                    }
                }
            }
        }
        out.push(Event::BookDelete {
            security: a.security,
            order_id: o.id,
            side,
        });
        self.record_id(a.owner.broker, a.cl_ord_id, 0);
        if let Err((_, reason)) = self.check_order(si, side, o.order_type, new_price, remaining_qty)
        {
            let info = self.info(idx);
            self.orders.remove(idx);
            out.push(Event::AmendRejected {
                owner: a.owner,
                cl_ord_id: a.cl_ord_id,
                orig_cl_ord_id: a.orig_cl_ord_id,
                security: a.security,
                code: CancelRejectCode::PriceOutsideBand,
                reason,
            });
            out.push(Event::Cancelled {
                order: info,
                reason: CancelReason::Restated(RESTATE_FAILED_REPLACE),
                by: None,
            });
            if self.phase.is_continuous() {
                self.update_nominal(si, out);
            } else {
                self.update_iep(si, out);
            }
            return;
        }
        self.orders.remove(idx);
        let id = OrderId(self.next_order_id);
        self.next_order_id += 1;
        self.ids.insert(a.owner.broker, a.cl_ord_id, id.0);
        self.ids_digest =
            self.ids_digest
                .wrapping_sub(id_entry_hash(a.owner.broker, &a.cl_ord_id, 0));
        self.ids_digest =
            self.ids_digest
                .wrapping_add(id_entry_hash(a.owner.broker, &a.cl_ord_id, id.0));
        let new_idx = self.orders.insert(Order {
            id,
            owner: o.owner,
            cl_ord_id: a.cl_ord_id,
            sec: o.sec,
            side,
            order_type: o.order_type,
            price: new_price,
            qty: remaining_qty,
            cum: Qty(0),
            short_sell: o.short_sell,
            prev: NIL,
            next: NIL,
        });
        out.push(Event::Amended {
            order: self.info(new_idx),
            old_order_id: o.id,
            orig_cl_ord_id: a.orig_cl_ord_id,
            replaced: true,
        });
        self.process(new_idx, out);
    }

    // ------------------------------------------------------------------ hashing and snapshots

    /// A hash over the whole logical state. Equal on every node that applied the same commands.
    ///
    /// O(securities), whatever the number of resting orders: the orders enter through
    /// [`Orders::digest`], a wrapping sum of a stable hash of each live order kept up to date by
    /// every change. Within a level, priority order is order-id order
    /// ([`Engine::check_invariants`] checks it), so the set of orders determines every queue.
    pub fn state_hash(&self) -> u64 {
        self.hash_with(
            self.orders.live as u64,
            self.orders.digest(),
            self.china.state_hash(),
        )
    }

    /// [`Engine::state_hash`] recomputed by walking every resting order of every book (the
    /// test oracle for the incremental digest; O(resting orders)).
    #[doc(hidden)]
    pub fn state_hash_walked(&self) -> u64 {
        let mut n = 0u64;
        let mut digest = 0u64;
        for s in &self.secs {
            for side in [Side::Buy, Side::Sell] {
                let b = s.book(side);
                for l in std::iter::once(&b.auction).chain(b.levels.values()) {
                    for i in self.orders.fifo(l) {
                        n += 1;
                        digest = digest.wrapping_add(crate::book::order_hash(self.orders.get(i)));
                    }
                }
            }
        }
        self.hash_with(n, digest, self.china.state_hash_walked())
    }

    fn hash_with(&self, live: u64, orders_digest: u64, china: u64) -> u64 {
        let mut h = StableHasher::default();
        h.u64(self.now.0);
        h.u64(self.phase as u64);
        h.u64(self.market_halted as u64);
        h.u64(self.next_order_id);
        h.u64(self.next_exec_id);
        h.u64(self.next_report_id);
        h.u64(self.next_transition as u64);
        h.u64(self.pending_auction.map_or(u64::MAX, |t| t.0));
        h.u64(self.next_sample as u64);
        h.u64(self.random_counter);
        h.u64(self.ids.len() as u64);
        h.u64(self.ids_digest);
        h.u64(china);
        h.u64(live);
        h.u64(orders_digest);
        for s in &self.secs {
            h.u64(s.def.code.0 as u64);
            h.i64(s.last_trade.map_or(-1, |p| p.0));
            h.u64(s.trade_seq);
            h.u64(s.halted as u64);
            for p in &s.samples {
                h.i64(p.0);
            }
            h.i64(s.reference.map_or(-1, |p| p.0));
            h.i64(s.iep.map_or(-1, |p| p.0 .0));
            h.i64(s.nominal.map_or(-1, |p| p.0));
            h.i64(s.closing.map_or(-1, |p| p.0));
            h.u64(s.volume);
            h.u64(s.auction_done as u64 | (s.auction_traded as u64) << 1);
        }
        h.finish()
    }

    /// Serialize the whole state.
    pub fn snapshot(&self) -> Vec<u8> {
        let ids = self.ids.entries();
        let snap = Snapshot {
            cfg: self.cfg.clone(),
            now: self.now,
            phase: self.phase,
            market_halted: self.market_halted,
            next_order_id: self.next_order_id,
            next_exec_id: self.next_exec_id,
            next_report_id: self.next_report_id,
            next_transition: self.next_transition,
            pending_auction: self.pending_auction,
            next_sample: self.next_sample,
            random_counter: self.random_counter,
            commands: self.commands,
            ids,
            cc_defs: self.china.securities().map(|s| s.def.clone()).collect(),
            china: self.china.snapshot(),
            secs: self
                .secs
                .iter()
                .map(|s| SecSnap {
                    def: s.def.clone(),
                    last_trade: s.last_trade,
                    trade_seq: s.trade_seq,
                    halted: s.halted,
                    samples: s.samples.clone(),
                    reference: s.reference,
                    iep: s.iep,
                    nominal: s.nominal,
                    input_end_bid: s.input_end_bid,
                    input_end_ask: s.input_end_ask,
                    auction_done: s.auction_done,
                    auction_traded: s.auction_traded,
                    closing: s.closing,
                    volume: s.volume,
                    turnover: s.turnover,
                    high: s.high,
                    low: s.low,
                    open: s.open,
                    orders: [Side::Buy, Side::Sell]
                        .into_iter()
                        .flat_map(|side| {
                            let b = s.book(side);
                            let mut v = self.orders.fifo(&b.auction);
                            for l in b.levels.values() {
                                v.extend(self.orders.fifo(l));
                            }
                            v
                        })
                        .map(|i| {
                            let o = self.orders.get(i);
                            OrderSnap {
                                id: o.id,
                                owner: o.owner,
                                cl_ord_id: o.cl_ord_id,
                                side: o.side,
                                order_type: o.order_type,
                                price: o.price,
                                qty: o.qty,
                                cum: o.cum,
                                short_sell: o.short_sell,
                            }
                        })
                        .collect(),
                })
                .collect(),
        };
        serde_json::to_vec(&snap).expect("snapshot serializes")
    }

    /// Rebuild an engine from [`Engine::snapshot`] bytes.
    pub fn restore(bytes: &[u8]) -> Result<Engine, String> {
        let snap: Snapshot = serde_json::from_slice(bytes)
            .map_err(|e| format!("engine snapshot is not valid: {e}"))?;
        let mut defs: Vec<Security> = snap.secs.iter().map(|s| s.def.clone()).collect();
        defs.extend(snap.cc_defs.iter().cloned());
        let mut e = Engine::new(snap.cfg, defs);
        e.china.restore(snap.china)?;
        e.now = snap.now;
        e.phase = snap.phase;
        e.market_halted = snap.market_halted;
        e.next_order_id = snap.next_order_id;
        e.next_exec_id = snap.next_exec_id;
        e.next_report_id = snap.next_report_id;
        e.next_transition = snap.next_transition;
        e.pending_auction = snap.pending_auction;
        e.next_sample = snap.next_sample;
        e.random_counter = snap.random_counter;
        e.commands = snap.commands;
        for (b, c, v) in snap.ids {
            e.record_id(b, c, v);
        }
        for (si, s) in snap.secs.into_iter().enumerate() {
            let st = &mut e.secs[si];
            st.last_trade = s.last_trade;
            st.trade_seq = s.trade_seq;
            st.halted = s.halted;
            st.samples = s.samples;
            st.reference = s.reference;
            st.iep = s.iep;
            st.nominal = s.nominal;
            st.input_end_bid = s.input_end_bid;
            st.input_end_ask = s.input_end_ask;
            st.auction_done = s.auction_done;
            st.auction_traded = s.auction_traded;
            st.closing = s.closing;
            st.volume = s.volume;
            st.turnover = s.turnover;
            st.high = s.high;
            st.low = s.low;
            st.open = s.open;
            for o in s.orders {
                let idx = e.orders.insert(Order {
                    id: o.id,
                    owner: o.owner,
                    cl_ord_id: o.cl_ord_id,
                    sec: si as u32,
                    side: o.side,
                    order_type: o.order_type,
                    price: o.price,
                    qty: o.qty,
                    cum: o.cum,
                    short_sell: o.short_sell,
                    prev: NIL,
                    next: NIL,
                });
                let book = e.secs[si].book_mut(o.side);
                match o.price {
                    None => e.orders.push_back(&mut book.auction, idx),
                    Some(p) => e.orders.push_back(book.levels.entry(p), idx),
                }
            }
        }
        Ok(e)
    }

    /// Check the book invariants; returns a description of the first violation.
    pub fn check_invariants(&self) -> Result<(), String> {
        self.china.check_invariants()?;
        let mut seen = 0usize;
        for s in &self.secs {
            if self.phase.is_continuous() {
                if let (Some(b), Some(a)) = (s.best_bid(), s.best_ask()) {
                    if b >= a {
                        return Err(format!(
                            "security {} crossed: bid {b} >= ask {a}",
                            s.def.code
                        ));
                    }
                }
            }
            for side in [Side::Buy, Side::Sell] {
                let b = s.book(side);
                let mut levels: Vec<(&Level, Option<Price>)> = vec![(&b.auction, None)];
                levels.extend(b.levels.iter().map(|(p, l)| (l, Some(*p))));
                for (l, p) in levels {
                    if p.is_some() && l.count == 0 {
                        return Err(format!(
                            "security {}: empty level {p:?} left in the book",
                            s.def.code
                        ));
                    }
                    let fifo = self.orders.fifo(l);
                    if fifo.len() != l.count as usize {
                        return Err(format!(
                            "security {}: level {p:?} count mismatch",
                            s.def.code
                        ));
                    }
                    let mut q = 0;
                    let mut prev_id = 0;
                    for i in fifo {
                        let o = self.orders.get(i);
                        // The state hash relies on this (it hashes the set of orders).
                        if o.id.0 <= prev_id {
                            return Err(format!(
                                "security {}: level {p:?} out of order-id order at order {}",
                                s.def.code, o.id
                            ));
                        }
                        prev_id = o.id.0;
                        if o.price != p || o.side != side || o.leaves() == 0 || o.cum > o.qty {
                            return Err(format!("order {} misplaced or empty", o.id));
                        }
                        if self.orders.find(o.id) != Some(i) {
                            return Err(format!("order {} not reachable by id", o.id));
                        }
                        // `lookup`'s fast path relies on this.
                        if self.ids.get(o.owner.broker, &o.cl_ord_id) != Some(o.id.0) {
                            return Err(format!(
                                "order {} not reachable by its client order id",
                                o.id
                            ));
                        }
                        q += o.leaves();
                        seen += 1;
                    }
                    if q != l.qty {
                        return Err(format!(
                            "security {}: level {p:?} quantity {} != orders {q}",
                            s.def.code, l.qty
                        ));
                    }
                }
            }
        }
        if seen != self.orders.live {
            return Err(format!(
                "{} live orders but {seen} in books",
                self.orders.live
            ));
        }
        Ok(())
    }

    /// The session (Comp ID) that owns an order, if it is live.
    pub fn order_session(&self, id: OrderId) -> Option<CompId> {
        self.orders
            .find(id)
            .map(|i| self.orders.get(i).owner.session)
            .or_else(|| self.china.order(id).map(|o| o.owner.session))
    }
}

#[derive(Serialize, Deserialize)]
struct OrderSnap {
    id: OrderId,
    owner: Owner,
    cl_ord_id: ClOrdId,
    side: Side,
    order_type: OrderType,
    price: Option<Price>,
    qty: Qty,
    cum: Qty,
    short_sell: bool,
}

#[derive(Serialize, Deserialize)]
struct SecSnap {
    def: Security,
    last_trade: Option<Price>,
    trade_seq: u64,
    halted: bool,
    samples: Vec<Price>,
    reference: Option<Price>,
    iep: Option<(Price, Qty)>,
    nominal: Option<Price>,
    input_end_bid: Option<Price>,
    input_end_ask: Option<Price>,
    auction_done: bool,
    auction_traded: bool,
    closing: Option<Price>,
    volume: u64,
    turnover: u128,
    high: Option<Price>,
    low: Option<Price>,
    open: Option<Price>,
    orders: Vec<OrderSnap>,
}

#[derive(Serialize, Deserialize)]
struct Snapshot {
    cfg: EngineConfig,
    now: Timestamp,
    phase: Phase,
    market_halted: bool,
    next_order_id: u64,
    next_exec_id: u64,
    next_report_id: u64,
    next_transition: usize,
    pending_auction: Option<Timestamp>,
    next_sample: usize,
    random_counter: u64,
    commands: u64,
    ids: Vec<(BrokerId, ClOrdId, u64)>,
    secs: Vec<SecSnap>,
    #[serde(default)]
    cc_defs: Vec<Security>,
    #[serde(default)]
    china: CcSnapshot,
}
