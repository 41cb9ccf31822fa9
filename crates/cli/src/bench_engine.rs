//! `twinsite bench engine`: the matching engine on a realistic, seeded command mix, with the
//! `orderbook-rs` crate run on the same stream in the same process as a baseline.
//!
//! # Workload
//!
//! 100 securities on spread table Part A (five price bands, six lot sizes), built in code. The
//! books are warmed with passive limit orders (thousands of resting orders), then the measured
//! stream is roughly 60% passive new limit orders, 20% cancels, 10% amends (half quantity down,
//! half price change) and 10% aggressive orders (enhanced limit or special limit, crossing up to
//! nine spreads into the opposite side).
//!
//! The stream is generated against a live twinsite engine (the "oracle"): every command is
//! applied to it as it is generated, so cancels and amends name orders that are really resting,
//! prices respect the engine's rules (no limit priced through the best, 24-spread rule, 9-times
//! rule, enhanced limit at most 9 spreads through) and aggressive quantities are sized from the
//! real opposite book. The engine is deterministic, so replaying the stream into a fresh engine
//! reproduces the oracle run exactly; anything it rejected is reported (`rejects`).
//!
//! # The `orderbook-rs` mapping
//!
//! One `OrderBook<()>` per security with the security's tick and lot size set, so it validates
//! prices and quantities like twinsite does. New limit order -> `add_limit_order` (GTC);
//! enhanced limit -> `add_limit_order` GTC at the limit price (sweeps, remainder rests); special
//! limit -> `add_limit_order` IOC; cancel -> `cancel_order`; amend quantity down ->
//! `update_order(UpdateQuantity)` (keeps priority, like twinsite); amend price ->
//! `update_order(UpdatePrice)` (cancel/re-add, loses priority, like twinsite's cancel/replace).
//! Ids are the workload's own order keys (`Id::Sequential`). Aggressive limits stay within nine
//! spreads of the best opposite price, so both engines walk the same (at most ten) levels.
//! Differences, all in twinsite's disfavour: twinsite also checks the HK rules above, keeps a
//! per-broker client-order-id table (duplicate detection, lookup by client order id) and emits
//! the full execution-report and market-data event stream for every command; `orderbook-rs`
//! returns an `Arc` of the order and emits nothing (no listeners installed). A command twinsite
//! rejected is skipped for `orderbook-rs` (a failed replace becomes a cancel there).
//!
//! # Measurement
//!
//! Throughput: the whole measured stream in one timed loop per engine (no per-command clock
//! reads), fresh warmed engines each run, `runs` runs interleaved twinsite / orderbook-rs; the
//! median run is reported. Service time: a separate run with `Instant::now()` read before and
//! after each command; the median cost of an empty pair of reads (`timer_overhead_ns`) is
//! subtracted from every sample. Building the commands is never timed.

use anyhow::{ensure, Result};
use orderbook_rs::{Id, OrderBook, TimeInForce};
use pricelevel::{OrderUpdate, Price as ObPrice, Quantity as ObQty};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::hint::black_box;
use std::time::{Duration, Instant};
use twinsite_core::{
    BrokerId, ClOrdId, CompId, MarketSegment, OrderId, Price, Qty, SecurityCode, Side, Timestamp,
};
use twinsite_engine::{
    Amend, Cancel, Command, Engine, EngineConfig, Event, NewOrder, OrderType, Owner, Phase,
    Security, SpreadTable,
};

/// Options for `twinsite bench engine`.
#[derive(Debug, Clone)]
pub struct Opts {
    /// Commands in the measured stream (after warm-up).
    pub commands: usize,
    /// Seed of the workload generator.
    pub seed: u64,
    /// Throughput runs per engine (the median is reported).
    pub runs: usize,
    /// Also run `orderbook-rs` (off only for profiling twinsite alone).
    pub baseline: bool,
}

impl Default for Opts {
    fn default() -> Self {
        Opts {
            commands: 1_000_000,
            seed: 42,
            runs: 3,
            baseline: true,
        }
    }
}

const SECURITIES: usize = 100;
const BROKERS: u32 = 32;
/// Resting orders per side per security after warm-up.
const WARM_PER_SIDE: usize = 60;
/// Five Part A bands: (tick, a price in the middle of the band), 1/1000 HKD.
const BANDS: [(i64, i64); 5] = [
    (10, 10_000),
    (20, 35_000),
    (50, 75_000),
    (100, 150_000),
    (200, 350_000),
];
const LOTS: [u64; 6] = [100, 200, 400, 500, 1_000, 2_000];
/// Prices stay within this many ticks of the previous close, so they never leave the band.
const SAFE_TICKS: i64 = 300;
/// Nanoseconds between commands (timestamps only; the schedule is manual).
const STEP_NS: u64 = 1_000;
const T0: u64 = 1_700_000_000_000_000_000;

#[derive(Debug, Clone, Copy)]
struct Spec {
    code: SecurityCode,
    tick: i64,
    lot: u64,
    lo: i64,
    hi: i64,
}

/// The same command for `orderbook-rs`.
#[derive(Debug, Clone, Copy)]
enum ObCmd {
    Add {
        book: u32,
        id: u64,
        price: u64,
        qty: u64,
        side: orderbook_rs::Side,
        tif: TimeInForce,
    },
    Cancel {
        book: u32,
        id: u64,
    },
    Update {
        book: u32,
        update: OrderUpdate,
    },
    /// twinsite rejected the command; nothing to do.
    Skip,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Passive,
    Cancel,
    AmendQty,
    AmendPrice,
    Aggressive,
}
const KINDS: [Kind; 5] = [
    Kind::Passive,
    Kind::Cancel,
    Kind::AmendQty,
    Kind::AmendPrice,
    Kind::Aggressive,
];
impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Passive => "new_passive",
            Kind::Cancel => "cancel",
            Kind::AmendQty => "amend_qty_down",
            Kind::AmendPrice => "amend_price",
            Kind::Aggressive => "aggressive",
        }
    }
}

struct Workload {
    securities: Vec<Security>,
    specs: Vec<Spec>,
    warm_tw: Vec<Command>,
    warm_ob: Vec<ObCmd>,
    tw: Vec<Command>,
    ob: Vec<ObCmd>,
    kinds: Vec<Kind>,
    resting_after_warmup: usize,
    resting_at_end: usize,
    trades: u64,
    events: u64,
    rejects: u64,
}

/// A resting order as the generator tracks it.
#[derive(Debug, Clone, Copy)]
struct Live {
    key: u64,
    sec: u32,
    side: Side,
    broker: u32,
    cl: ClOrdId,
    oid: u64,
    price: i64,
    qty: u64,
    cum: u64,
}

struct Pending {
    key: u64,
    sec: u32,
    side: Side,
    broker: u32,
}

struct Gen {
    rng: ChaCha8Rng,
    oracle: Engine,
    specs: Vec<Spec>,
    owners: Vec<Owner>,
    live: Vec<Live>,
    pos: HashMap<u64, usize>,
    counts: Vec<[usize; 2]>,
    next_key: u64,
    next_cl: u64,
    t: u64,
    out: Vec<Event>,
    pending: Option<Pending>,
    trades: u64,
    events: u64,
    rejects: u64,
}

fn side_ix(s: Side) -> usize {
    match s {
        Side::Buy => 0,
        Side::Sell => 1,
    }
}

fn ob_side(s: Side) -> orderbook_rs::Side {
    match s {
        Side::Buy => orderbook_rs::Side::Buy,
        Side::Sell => orderbook_rs::Side::Sell,
    }
}

/// The 100 benchmark securities: Part A, five bands, six lot sizes.
fn securities(rng: &mut ChaCha8Rng) -> (Vec<Security>, Vec<Spec>) {
    let mut secs = Vec::with_capacity(SECURITIES);
    let mut specs = Vec::with_capacity(SECURITIES);
    for i in 0..SECURITIES {
        let (tick, mid) = BANDS[i % BANDS.len()];
        let lot = LOTS[i % LOTS.len()];
        let prev = mid + tick * rng.gen_range(-100..=100);
        let code = SecurityCode(10_001 + i as u32);
        let s = Security {
            code,
            name: format!("BENCH {i:03}"),
            segment: MarketSegment::Main,
            lot_size: lot,
            spread_table: SpreadTable::PartA,
            prev_close: Price(prev),
            instrument: "EQTY".into(),
            pos: true,
            cas: true,
            vcm: false,
            short_sell: true,
            extended: false,
            price_limit_bps: None,
            currency: "HKD".into(),
        };
        debug_assert!(SpreadTable::PartA.is_valid(s.prev_close));
        secs.push(s);
        specs.push(Spec {
            code,
            tick,
            lot,
            lo: prev - SAFE_TICKS * tick,
            hi: prev + SAFE_TICKS * tick,
        });
    }
    (secs, specs)
}

impl Gen {
    fn new(seed: u64) -> (Gen, Vec<Security>) {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let (secs, specs) = securities(&mut rng);
        let mut oracle = Engine::new(EngineConfig::default(), secs.clone());
        oracle.apply(&Command::SetPhase(Phase::ContinuousMorning), Timestamp(T0));
        let owners = (1..=BROKERS)
            .map(|b| Owner {
                broker: BrokerId(b),
                session: CompId::new(&format!("CO{b:05}")).expect("valid comp id"),
            })
            .collect();
        let n = specs.len();
        (
            Gen {
                rng,
                oracle,
                specs,
                owners,
                live: Vec::new(),
                pos: HashMap::new(),
                counts: vec![[0, 0]; n],
                next_key: 1,
                next_cl: 1,
                t: T0,
                out: Vec::new(),
                pending: None,
                trades: 0,
                events: 0,
                rejects: 0,
            },
            secs,
        )
    }

    fn cl(&mut self) -> ClOrdId {
        self.next_cl += 1;
        ClOrdId::new(&self.next_cl.to_string()).expect("numeric client order id")
    }

    fn insert(&mut self, l: Live) {
        self.counts[l.sec as usize][side_ix(l.side)] += 1;
        self.pos.insert(l.oid, self.live.len());
        self.live.push(l);
    }

    fn remove(&mut self, oid: u64) -> Option<Live> {
        let p = self.pos.remove(&oid)?;
        let l = self.live.swap_remove(p);
        if p < self.live.len() {
            self.pos.insert(self.live[p].oid, p);
        }
        self.counts[l.sec as usize][side_ix(l.side)] -= 1;
        Some(l)
    }

    /// Apply to the oracle and track what is resting. Returns (rejected, order cancelled).
    fn apply(&mut self, cmd: &Command) -> (bool, bool) {
        self.t += STEP_NS;
        let mut out = std::mem::take(&mut self.out);
        out.clear();
        self.oracle.apply_into(cmd, Timestamp(self.t), &mut out);
        self.events += out.len() as u64;
        let (mut rejected, mut cancelled) = (false, false);
        for ev in &out {
            match ev {
                Event::Accepted(info) => {
                    if let Some(p) = self.pending.take() {
                        self.insert(Live {
                            key: p.key,
                            sec: p.sec,
                            side: p.side,
                            broker: p.broker,
                            cl: info.cl_ord_id,
                            oid: info.order_id.0,
                            price: info.price.map_or(0, |x| x.0),
                            qty: info.qty.0,
                            cum: 0,
                        });
                    }
                }
                Event::Fill { order, .. } => {
                    if order.leaves_qty.0 == 0 {
                        self.remove(order.order_id.0);
                    } else if let Some(&p) = self.pos.get(&order.order_id.0) {
                        self.live[p].cum = order.cum_qty.0;
                    }
                }
                Event::Trade { .. } => self.trades += 1,
                Event::Cancelled { order, .. } => {
                    cancelled = true;
                    self.remove(order.order_id.0);
                }
                Event::Amended {
                    order,
                    old_order_id,
                    ..
                } => {
                    if let Some(mut l) = self.remove(old_order_id.0) {
                        l.oid = order.order_id.0;
                        l.cl = order.cl_ord_id;
                        l.price = order.price.map_or(0, |x| x.0);
                        l.qty = order.qty.0;
                        l.cum = order.cum_qty.0;
                        self.insert(l);
                    }
                }
                Event::Rejected { .. }
                | Event::CancelRejected { .. }
                | Event::AmendRejected { .. } => rejected = true,
                _ => {}
            }
        }
        self.pending = None;
        self.out = out;
        if rejected {
            self.rejects += 1;
        }
        (rejected, cancelled)
    }

    /// A passive limit order: at or behind the own best (sometimes one tick better), never
    /// crossing, within the band.
    fn passive(&mut self, si: usize, side: Side) -> Option<(Command, ObCmd)> {
        let sp = self.specs[si];
        let s = self.oracle.security(sp.code)?;
        let opp = side.opposite();
        let own_best = s.book(side).best(side).map(|p| p.0);
        let opp_best = s.book(opp).best(opp).map(|p| p.0);
        let dir = match side {
            Side::Buy => -1,
            Side::Sell => 1,
        };
        let base = own_best
            .or(opp_best.map(|o| o + dir * sp.tick))
            .unwrap_or(s.continuous_nominal().0);
        let k: i64 = if self.rng.gen_bool(0.15) {
            -1
        } else {
            self.rng.gen_range(0..=14).min(self.rng.gen_range(0..=14))
        };
        let mut p = base + dir * k * sp.tick;
        if let Some(o) = opp_best {
            p = match side {
                Side::Buy => p.min(o - sp.tick),
                Side::Sell => p.max(o + sp.tick),
            };
        }
        p = p.clamp(sp.lo, sp.hi);
        if let Some(o) = opp_best {
            let crosses = match side {
                Side::Buy => p >= o,
                Side::Sell => p <= o,
            };
            if crosses {
                return None;
            }
        }
        let lots = 1 + self.rng.gen_range(0..10u64).min(self.rng.gen_range(0..10));
        Some(self.new_order(si, side, OrderType::Limit, p, lots * sp.lot))
    }

    fn new_order(
        &mut self,
        si: usize,
        side: Side,
        ot: OrderType,
        price: i64,
        qty: u64,
    ) -> (Command, ObCmd) {
        let broker = self.rng.gen_range(0..BROKERS);
        let key = self.next_key;
        self.next_key += 1;
        let cl = self.cl();
        let cmd = Command::NewOrder(NewOrder {
            owner: self.owners[broker as usize],
            cl_ord_id: cl,
            security: self.specs[si].code,
            side,
            order_type: ot,
            price: Some(Price(price)),
            qty: Qty(qty),
            short_sell: false,
        });
        self.pending = Some(Pending {
            key,
            sec: si as u32,
            side,
            broker,
        });
        let ob = ObCmd::Add {
            book: si as u32,
            id: key,
            price: price as u64,
            qty,
            side: ob_side(side),
            tif: if ot == OrderType::SpecialLimit {
                TimeInForce::Ioc
            } else {
                TimeInForce::Gtc
            },
        };
        (cmd, ob)
    }

    /// An enhanced or special limit order that takes about `want` resting orders from the
    /// opposite side, within nine spreads of its best price.
    fn aggressive(&mut self, si: usize, side: Side, want: usize) -> Option<(Command, ObCmd)> {
        let sp = self.specs[si];
        let s = self.oracle.security(sp.code)?;
        let opp = side.opposite();
        let levels: Vec<(i64, u64, u32)> = {
            let b = s.book(opp);
            let it: Box<dyn Iterator<Item = _>> = match opp {
                Side::Sell => Box::new(b.levels.iter()),
                Side::Buy => Box::new(b.levels.iter().rev()),
            };
            it.take(10).map(|(p, l)| (p.0, l.qty, l.count)).collect()
        };
        let best = levels.first()?.0;
        let mut left = want.max(1) as u64;
        let (mut qty, mut limit) = (0u64, best);
        for &(p, lq, n) in &levels {
            if (p - best).abs() > 9 * sp.tick {
                break;
            }
            limit = p;
            if n as u64 <= left {
                qty += lq;
                left -= n as u64;
                if left == 0 {
                    break;
                }
            } else {
                let part = lq * left / n as u64 / sp.lot * sp.lot;
                qty += part.max(sp.lot);
                break;
            }
        }
        let enhanced = self.rng.gen_bool(0.5);
        if enhanced && self.rng.gen_bool(0.2) {
            // Some remainder rests at the limit price.
            qty += sp.lot * self.rng.gen_range(1..=3);
        }
        let qty = qty.min(3_000 * sp.lot);
        let ot = if enhanced {
            OrderType::EnhancedLimit
        } else {
            OrderType::SpecialLimit
        };
        Some(self.new_order(si, side, ot, limit, qty))
    }

    fn cancel(&mut self, i: usize) -> (Command, ObCmd) {
        let l = self.live[i];
        let cl = self.cl();
        let cmd = Command::Cancel(Cancel {
            owner: self.owners[l.broker as usize],
            cl_ord_id: cl,
            orig_cl_ord_id: Some(l.cl),
            security: self.specs[l.sec as usize].code,
            side: l.side,
            order_id: Some(OrderId(l.oid)),
            owning_broker: None,
        });
        let ob = ObCmd::Cancel {
            book: l.sec,
            id: l.key,
        };
        (cmd, ob)
    }

    fn amend_cmd(&mut self, l: &Live, price: i64, qty: u64) -> Command {
        let cl = self.cl();
        Command::Amend(Amend {
            owner: self.owners[l.broker as usize],
            cl_ord_id: cl,
            orig_cl_ord_id: l.cl,
            security: self.specs[l.sec as usize].code,
            side: l.side,
            order_id: Some(OrderId(l.oid)),
            price: Some(Price(price)),
            qty: Qty(qty),
        })
    }

    /// Quantity down by whole lots, same price: keeps priority.
    fn amend_qty(&mut self, i: usize) -> Option<(Command, ObCmd)> {
        let l = self.live[i];
        let lot = self.specs[l.sec as usize].lot;
        let leaves_lots = (l.qty - l.cum) / lot;
        if leaves_lots < 2 {
            return None;
        }
        let new_leaves = lot * self.rng.gen_range(1..leaves_lots);
        let cmd = self.amend_cmd(&l, l.price, l.cum + new_leaves);
        let ob = ObCmd::Update {
            book: l.sec,
            update: OrderUpdate::UpdateQuantity {
                order_id: Id::Sequential(l.key),
                new_quantity: ObQty::new(new_leaves),
            },
        };
        Some((cmd, ob))
    }

    /// Price moved by one to three ticks, never crossing and within 20 spreads of the side's
    /// best price without this order: a cancel/replace in both engines.
    fn amend_price(&mut self, i: usize) -> Option<(Command, ObCmd)> {
        let l = self.live[i];
        let sp = self.specs[l.sec as usize];
        let s = self.oracle.security(sp.code)?;
        let opp = l.side.opposite();
        // The own best once this order is out of the book.
        let anchor = {
            let own = s.book(l.side);
            let mut prices: Box<dyn Iterator<Item = (&Price, &twinsite_engine::book::Level)>> =
                match l.side {
                    Side::Buy => Box::new(own.levels.iter().rev()),
                    Side::Sell => Box::new(own.levels.iter()),
                };
            let (bp, bl) = prices.next()?;
            if bp.0 == l.price && bl.count == 1 {
                prices.next()?.0 .0
            } else {
                bp.0
            }
        };
        let opp_best = s.book(opp).best(opp).map(|p| p.0);
        let k = self.rng.gen_range(1..=3) * if self.rng.gen_bool(0.5) { 1 } else { -1 };
        let mut p = l.price + k * sp.tick;
        match l.side {
            Side::Buy => {
                if let Some(o) = opp_best {
                    p = p.min(o - sp.tick);
                }
                p = p.max(anchor - 20 * sp.tick);
            }
            Side::Sell => {
                if let Some(o) = opp_best {
                    p = p.max(o + sp.tick);
                }
                p = p.min(anchor + 20 * sp.tick);
            }
        }
        p = p.clamp(sp.lo, sp.hi);
        let crosses = opp_best.is_some_and(|o| match l.side {
            Side::Buy => p >= o,
            Side::Sell => p <= o,
        });
        if p == l.price || crosses {
            return None;
        }
        let cmd = self.amend_cmd(&l, p, l.qty);
        let ob = ObCmd::Update {
            book: l.sec,
            update: OrderUpdate::UpdatePrice {
                order_id: Id::Sequential(l.key),
                new_price: ObPrice::new(p as u128),
            },
        };
        Some((cmd, ob))
    }

    /// One command of the measured mix.
    fn next(&mut self, target_live: usize) -> (Command, ObCmd, Kind) {
        loop {
            let r: f64 = self.rng.gen();
            let n = self.live.len();
            let made = if r < 0.60 || n == 0 {
                let si = self.rng.gen_range(0..self.specs.len());
                let side = if self.rng.gen_bool(0.5) {
                    Side::Buy
                } else {
                    Side::Sell
                };
                self.passive(si, side).map(|(c, o)| (c, o, Kind::Passive))
            } else if r < 0.80 {
                let i = self.rng.gen_range(0..n);
                let (c, o) = self.cancel(i);
                Some((c, o, Kind::Cancel))
            } else if r < 0.90 {
                let i = self.rng.gen_range(0..n);
                if self.rng.gen_bool(0.5) {
                    self.amend_qty(i)
                        .map(|(c, o)| (c, o, Kind::AmendQty))
                        .or_else(|| self.amend_price(i).map(|(c, o)| (c, o, Kind::AmendPrice)))
                } else {
                    self.amend_price(i)
                        .map(|(c, o)| (c, o, Kind::AmendPrice))
                        .or_else(|| self.amend_qty(i).map(|(c, o)| (c, o, Kind::AmendQty)))
                }
            } else {
                let si = self.rng.gen_range(0..self.specs.len());
                let [b, a] = self.counts[si];
                // Take from the fuller side more often, so the two sides stay balanced.
                let take_asks = if a == b {
                    self.rng.gen_bool(0.5)
                } else {
                    self.rng.gen_bool(if a > b { 0.7 } else { 0.3 })
                };
                let side = if take_asks { Side::Buy } else { Side::Sell };
                // About four resting orders per aggressive order keep the book size steady;
                // more when the book has grown past the target, fewer when it has shrunk.
                let scale = n as f64 / target_live.max(1) as f64;
                let want = (self.rng.gen_range(1.0..7.0) * scale * scale).round() as usize;
                self.aggressive(si, side, want.clamp(1, 40))
                    .map(|(c, o)| (c, o, Kind::Aggressive))
            };
            if let Some(x) = made {
                return x;
            }
        }
    }
}

fn generate(opts: &Opts) -> Result<Workload> {
    let (mut g, securities) = Gen::new(opts.seed);
    let mut warm_tw = Vec::new();
    let mut warm_ob = Vec::new();
    // Warm-up: passive orders round-robin over securities and sides.
    for _ in 0..WARM_PER_SIDE {
        for si in 0..g.specs.len() {
            for side in [Side::Buy, Side::Sell] {
                if let Some((c, o)) = g.passive(si, side) {
                    let (rej, _) = g.apply(&c);
                    warm_tw.push(c);
                    warm_ob.push(if rej { ObCmd::Skip } else { o });
                }
            }
        }
    }
    ensure!(g.rejects == 0, "warm-up commands were rejected");
    let resting_after_warmup = g.oracle.live_orders();
    ensure!(
        g.live.len() == resting_after_warmup,
        "generator lost track of resting orders"
    );
    let (ev0, tr0) = (g.events, g.trades);
    let mut tw = Vec::with_capacity(opts.commands);
    let mut ob = Vec::with_capacity(opts.commands);
    let mut kinds = Vec::with_capacity(opts.commands);
    for _ in 0..opts.commands {
        let (c, o, k) = g.next(resting_after_warmup);
        let (rej, cancelled) = g.apply(&c);
        let o = match (rej, &o) {
            (false, _) => o,
            // A replace that failed validation cancels the original.
            (true, ObCmd::Update { book, update }) if cancelled => ObCmd::Cancel {
                book: *book,
                id: match update {
                    OrderUpdate::UpdatePrice { order_id, .. }
                    | OrderUpdate::UpdateQuantity { order_id, .. } => match order_id {
                        Id::Sequential(k) => *k,
                        _ => 0,
                    },
                    _ => 0,
                },
            },
            (true, _) => ObCmd::Skip,
        };
        tw.push(c);
        ob.push(o);
        kinds.push(k);
    }
    ensure!(
        g.live.len() == g.oracle.live_orders(),
        "generator lost track of resting orders"
    );
    g.oracle
        .check_invariants()
        .map_err(|e| anyhow::anyhow!("engine invariant broken by the workload: {e}"))?;
    Ok(Workload {
        securities,
        specs: g.specs.clone(),
        warm_tw,
        warm_ob,
        tw,
        ob,
        kinds,
        resting_after_warmup,
        resting_at_end: g.oracle.live_orders(),
        trades: g.trades - tr0,
        events: g.events - ev0,
        rejects: g.rejects,
    })
}

// ---------------------------------------------------------------------------------- runners

fn twinsite_engine(w: &Workload) -> (Engine, Vec<Event>) {
    let mut e = Engine::new(EngineConfig::default(), w.securities.clone());
    let mut out = Vec::with_capacity(256);
    let mut t = T0;
    e.apply_into(
        &Command::SetPhase(Phase::ContinuousMorning),
        Timestamp(t),
        &mut out,
    );
    for c in &w.warm_tw {
        t += STEP_NS;
        out.clear();
        e.apply_into(c, Timestamp(t), &mut out);
    }
    out.clear();
    (e, out)
}

fn main_ts(w: &Workload, i: usize) -> Timestamp {
    Timestamp(T0 + (w.warm_tw.len() + 1 + i) as u64 * STEP_NS)
}

/// Wall time and on-CPU time (this thread, from the scheduler) of one timed loop.
#[derive(Debug, Clone, Copy)]
struct Timing {
    wall: Duration,
    cpu: Option<Duration>,
}

/// Nanoseconds this thread has spent on a CPU (`/proc/thread-self/schedstat`), if available.
fn on_cpu_ns() -> Option<u64> {
    let t = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    t.split_whitespace().next()?.parse().ok()
}

fn timed(f: impl FnOnce()) -> Timing {
    let c0 = on_cpu_ns();
    let start = Instant::now();
    f();
    let wall = start.elapsed();
    let c1 = on_cpu_ns();
    Timing {
        wall,
        cpu: c0
            .zip(c1)
            .map(|(a, b)| Duration::from_nanos(b.saturating_sub(a))),
    }
}

fn twinsite_throughput(w: &Workload) -> Timing {
    let (mut e, mut out) = twinsite_engine(w);
    let t = timed(|| {
        for (i, c) in w.tw.iter().enumerate() {
            e.apply_into(c, main_ts(w, i), &mut out);
            black_box(out.len());
            out.clear();
        }
    });
    black_box(e.live_orders());
    t
}

struct Latency {
    samples: Vec<u64>,
    rejects: u64,
    resting_at_end: usize,
}

fn is_reject(ev: &Event) -> bool {
    matches!(
        ev,
        Event::Rejected { .. } | Event::CancelRejected { .. } | Event::AmendRejected { .. }
    )
}

fn twinsite_latency(w: &Workload, overhead: u64) -> Latency {
    let (mut e, mut out) = twinsite_engine(w);
    let mut samples = Vec::with_capacity(w.tw.len());
    let mut rejects = 0;
    for (i, c) in w.tw.iter().enumerate() {
        let ts = main_ts(w, i);
        let a = Instant::now();
        e.apply_into(c, ts, &mut out);
        let b = Instant::now();
        samples.push(((b - a).as_nanos() as u64).saturating_sub(overhead));
        rejects += out.iter().any(is_reject) as u64;
        out.clear();
    }
    Latency {
        samples,
        rejects,
        resting_at_end: e.live_orders(),
    }
}

fn ob_books(w: &Workload) -> Vec<OrderBook<()>> {
    let mut books: Vec<OrderBook<()>> = w
        .specs
        .iter()
        .map(|s| OrderBook::with_tick_size(&s.code.0.to_string(), s.tick as u128))
        .collect();
    for (b, s) in books.iter_mut().zip(&w.specs) {
        b.set_lot_size(s.lot);
    }
    for c in &w.warm_ob {
        ob_apply(&books, c);
    }
    books
}

/// Apply one command; true when `orderbook-rs` refused it.
#[inline]
fn ob_apply(books: &[OrderBook<()>], c: &ObCmd) -> bool {
    match *c {
        ObCmd::Add {
            book,
            id,
            price,
            qty,
            side,
            tif,
        } => books[book as usize]
            .add_limit_order(Id::Sequential(id), price as u128, qty, side, tif, None)
            .is_err(),
        ObCmd::Cancel { book, id } => !matches!(
            books[book as usize].cancel_order(Id::Sequential(id)),
            Ok(Some(_))
        ),
        ObCmd::Update { book, update } => books[book as usize].update_order(update).is_err(),
        ObCmd::Skip => false,
    }
}

fn ob_throughput(w: &Workload) -> Timing {
    let books = ob_books(w);
    let t = timed(|| {
        for c in &w.ob {
            black_box(ob_apply(&books, c));
        }
    });
    black_box(&books);
    t
}

fn ob_latency(w: &Workload, overhead: u64) -> Latency {
    let books = ob_books(w);
    let mut samples = Vec::with_capacity(w.ob.len());
    let mut rejects = 0;
    for c in &w.ob {
        let a = Instant::now();
        let bad = ob_apply(&books, c);
        let b = Instant::now();
        samples.push(((b - a).as_nanos() as u64).saturating_sub(overhead));
        rejects += bad as u64;
    }
    let resting_at_end = books.iter().map(|b| b.get_all_orders().len()).sum();
    Latency {
        samples,
        rejects,
        resting_at_end,
    }
}

/// Median cost of two back-to-back `Instant::now()` reads.
fn timer_overhead() -> u64 {
    let mut v: Vec<u64> = (0..100_000)
        .map(|_| {
            let a = Instant::now();
            let b = Instant::now();
            (b - a).as_nanos() as u64
        })
        .collect();
    v.sort_unstable();
    v[v.len() / 2]
}

fn pct(sorted: &[u64], p: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let i = ((sorted.len() as f64 * p / 100.0).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[i]
}

fn summary(samples: &[u64]) -> Value {
    let mut s = samples.to_vec();
    s.sort_unstable();
    let mean = s.iter().sum::<u64>() as f64 / s.len().max(1) as f64;
    json!({
        "p50_ns": pct(&s, 50.0),
        "p99_ns": pct(&s, 99.0),
        "p99_99_ns": pct(&s, 99.99),
        "max_ns": s.last().copied().unwrap_or(0),
        "mean_ns": (mean * 10.0).round() / 10.0,
    })
}

fn by_kind(w: &Workload, samples: &[u64]) -> Value {
    let mut m = serde_json::Map::new();
    for k in KINDS {
        let v: Vec<u64> = samples
            .iter()
            .zip(&w.kinds)
            .filter(|(_, &kk)| kk == k)
            .map(|(&s, _)| s)
            .collect();
        let mut s = summary(&v);
        s["count"] = json!(v.len());
        m.insert(k.name().into(), s);
    }
    Value::Object(m)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

fn round1(x: f64) -> f64 {
    (x * 10.0).round() / 10.0
}

fn engine_json(w: &Workload, runs: &[Timing], lat: &Latency, extra: Value) -> Value {
    let n = w.tw.len() as f64;
    let per_run: Vec<f64> = runs.iter().map(|t| n / t.wall.as_secs_f64()).collect();
    let mut s = summary(&lat.samples);
    s["commands_per_sec"] = json!(median(per_run.clone()).round());
    s["commands_per_sec_runs"] = json!(per_run.iter().map(|x| x.round()).collect::<Vec<_>>());
    s["mean_service_ns_from_throughput"] = json!(round1(1e9 / median(per_run)));
    let cpu: Vec<f64> = runs
        .iter()
        .filter_map(|t| t.cpu)
        .map(|c| n / c.as_secs_f64().max(1e-9))
        .collect();
    if cpu.len() == runs.len() {
        s["commands_per_cpu_sec"] = json!(median(cpu).round());
        s["on_cpu_share"] = json!(
            (median(
                runs.iter()
                    .map(|t| t.cpu.unwrap_or_default().as_secs_f64() / t.wall.as_secs_f64())
                    .collect()
            ) * 1000.0)
                .round()
                / 1000.0
        );
    }
    s["rejects"] = json!(lat.rejects);
    s["resting_orders_at_end"] = json!(lat.resting_at_end);
    s["by_kind"] = by_kind(w, &lat.samples);
    if let Value::Object(x) = extra {
        for (k, v) in x {
            s[k] = v;
        }
    }
    s
}

fn machine() -> Value {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|t| {
            t.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|s| s.trim().to_string())
        })
        .unwrap_or_else(|| "unknown".into());
    let nproc = std::thread::available_parallelism().map_or(0, |n| n.get());
    json!({ "nproc": nproc, "cpu": cpu, "os": std::env::consts::OS, "arch": std::env::consts::ARCH })
}

/// Run the benchmark and return the JSON report.
pub fn run(opts: &Opts) -> Result<Value> {
    ensure!(opts.commands > 0, "--commands must be positive");
    ensure!(opts.runs > 0, "--runs must be positive");
    let gen_start = Instant::now();
    let w = generate(opts)?;
    let gen_secs = gen_start.elapsed().as_secs_f64();

    let overhead = timer_overhead();
    let mut tw_runs = Vec::new();
    let mut ob_runs = Vec::new();
    for _ in 0..opts.runs {
        tw_runs.push(twinsite_throughput(&w));
        if opts.baseline {
            ob_runs.push(ob_throughput(&w));
        }
    }
    let tw_lat = twinsite_latency(&w, overhead);
    ensure!(
        tw_lat.resting_at_end == w.resting_at_end,
        "replay diverged from the generator: {} resting orders, expected {}",
        tw_lat.resting_at_end,
        w.resting_at_end
    );
    let ob_lat = opts.baseline.then(|| ob_latency(&w, overhead));

    let count = |k: Kind| w.kinds.iter().filter(|&&x| x == k).count();
    let mut mix = serde_json::Map::new();
    for k in KINDS {
        mix.insert(k.name().into(), json!(count(k)));
    }
    let n = w.tw.len() as u64;
    let tw = engine_json(
        &w,
        &tw_runs,
        &tw_lat,
        json!({
            "events": w.events,
            "events_per_command": round1(w.events as f64 / n as f64),
        }),
    );
    let ob = match &ob_lat {
        Some(l) => engine_json(&w, &ob_runs, l, json!({})),
        None => Value::Null,
    };
    let f = |v: &Value, k: &str| v[k].as_f64().unwrap_or(0.0);
    let ratio_tp = f(&tw, "commands_per_sec") / f(&ob, "commands_per_sec").max(1.0);
    let ratio_p99 = f(&ob, "p99_ns") / f(&tw, "p99_ns").max(1.0);
    let ratio_cpu = f(&tw, "commands_per_cpu_sec") / f(&ob, "commands_per_cpu_sec").max(1.0);
    Ok(json!({
        "workload": {
            "seed": opts.seed,
            "securities": w.securities.len(),
            "spread_table": "Part A (5 bands), lot sizes 100..2000",
            "brokers": BROKERS,
            "warmup_commands": w.warm_tw.len(),
            "resting_orders_after_warmup": w.resting_after_warmup,
            "resting_orders_at_end": w.resting_at_end,
            "commands": n,
            "mix": Value::Object(mix),
            "trades": w.trades,
            "rejects": w.rejects,
            "generation_secs": round1(gen_secs),
        },
        "method": {
            "throughput": format!("one timed loop over the whole stream, fresh warmed engines, {} runs per engine interleaved, median reported", opts.runs),
            "service_time": "Instant::now() before and after each command in a separate run; timer_overhead_ns subtracted from every sample",
            "timer_overhead_ns": overhead,
            "on_cpu": "commands_per_cpu_sec divides by this thread's on-CPU time from /proc/thread-self/schedstat (excludes time preempted by other processes); on_cpu_share is on-CPU / wall",
            "single_threaded": true,
        },
        "machine": machine(),
        "twinsite": tw,
        "orderbook_rs": ob,
        "ratio": {
            "throughput": (ratio_tp * 100.0).round() / 100.0,
            "throughput_on_cpu": (ratio_cpu * 100.0).round() / 100.0,
            "p99": (ratio_p99 * 100.0).round() / 100.0,
            "note": "throughput: twinsite / orderbook-rs; p99: orderbook-rs p99 / twinsite p99 (above 1 means twinsite is faster)",
        },
        "targets_met": {
            "commands_per_sec_at_least_2m": f(&tw, "commands_per_sec") >= 2_000_000.0,
            "p99_under_5us": f(&tw, "p99_ns") < 5_000.0,
            "throughput_at_least_2x_orderbook_rs": ratio_tp >= 2.0,
            "p99_better_than_orderbook_rs": f(&tw, "p99_ns") < f(&ob, "p99_ns"),
        },
    }))
}
