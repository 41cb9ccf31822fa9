//! The matching engine on a smaller version of the `twinsite bench engine` mix: 100 Part A
//! securities warmed with 6,000 resting orders, then 20,000 commands of roughly 60% passive
//! limit orders, 20% cancels, 10% amends (quantity down or price change) and 10% enhanced /
//! special limit orders that cross.
//!
//! The stream is generated against a live engine, so every cancel and amend names a resting
//! order and every price respects the HK rules; it is built once, outside the measurement.
//! Each iteration replays it into a freshly warmed engine (the warm-up is not timed).
//!
//! Also the state hash on the warmed books: incremental (O(securities)) against the walk over
//! every resting order.
//!
//! `cargo bench -p twinsite-engine --bench engine`

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::collections::HashMap;
use std::hint::black_box;
use twinsite_core::{
    BrokerId, ClOrdId, CompId, MarketSegment, OrderId, Price, Qty, SecurityCode, Side, Timestamp,
};
use twinsite_engine::{
    Amend, Cancel, Command, Engine, EngineConfig, Event, NewOrder, OrderType, Owner, Phase,
    Security, SpreadTable,
};

const SECURITIES: usize = 100;
const WARM_PER_SIDE: usize = 30;
const COMMANDS: usize = 20_000;
const BROKERS: u32 = 16;
const BANDS: [(i64, i64); 5] = [
    (10, 10_000),
    (20, 35_000),
    (50, 75_000),
    (100, 150_000),
    (200, 350_000),
];
const LOTS: [u64; 6] = [100, 200, 400, 500, 1_000, 2_000];

#[derive(Clone, Copy)]
struct Spec {
    code: SecurityCode,
    tick: i64,
    lot: u64,
}

#[derive(Clone, Copy)]
struct Live {
    sec: usize,
    side: Side,
    broker: u32,
    cl: ClOrdId,
    oid: u64,
    price: i64,
    qty: u64,
    cum: u64,
}

struct Gen {
    rng: ChaCha8Rng,
    e: Engine,
    specs: Vec<Spec>,
    owners: Vec<Owner>,
    live: Vec<Live>,
    pos: HashMap<u64, usize>,
    next_cl: u64,
    t: u64,
    pending: Option<(usize, Side, u32)>,
}

fn securities() -> (Vec<Security>, Vec<Spec>) {
    (0..SECURITIES)
        .map(|i| {
            let (tick, mid) = BANDS[i % BANDS.len()];
            let lot = LOTS[i % LOTS.len()];
            let code = SecurityCode(10_001 + i as u32);
            let s = Security {
                code,
                name: format!("BENCH {i:03}"),
                segment: MarketSegment::Main,
                lot_size: lot,
                spread_table: SpreadTable::PartA,
                prev_close: Price(mid + tick * (i as i64 % 7 - 3)),
                instrument: "EQTY".into(),
                pos: true,
                cas: true,
                vcm: false,
                short_sell: true,
                extended: false,
                price_limit_bps: None,
                currency: "HKD".into(),
            };
            (s, Spec { code, tick, lot })
        })
        .unzip()
}

fn fresh(secs: &[Security]) -> Engine {
    let mut e = Engine::new(EngineConfig::default(), secs.to_vec());
    e.apply(&Command::SetPhase(Phase::ContinuousMorning), Timestamp(1));
    e
}

impl Gen {
    fn cl(&mut self) -> ClOrdId {
        self.next_cl += 1;
        ClOrdId::new(&self.next_cl.to_string()).unwrap()
    }

    fn remove(&mut self, oid: u64) -> Option<Live> {
        let p = self.pos.remove(&oid)?;
        let l = self.live.swap_remove(p);
        if p < self.live.len() {
            self.pos.insert(self.live[p].oid, p);
        }
        Some(l)
    }

    fn insert(&mut self, l: Live) {
        self.pos.insert(l.oid, self.live.len());
        self.live.push(l);
    }

    fn apply(&mut self, c: &Command) {
        self.t += 1_000;
        let ev = self.e.apply(c, Timestamp(self.t));
        for ev in &ev {
            match ev {
                Event::Accepted(o) => {
                    if let Some((sec, side, broker)) = self.pending.take() {
                        self.insert(Live {
                            sec,
                            side,
                            broker,
                            cl: o.cl_ord_id,
                            oid: o.order_id.0,
                            price: o.price.map_or(0, |p| p.0),
                            qty: o.qty.0,
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
                Event::Cancelled { order, .. } => {
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
                        l.price = order.price.map_or(0, |p| p.0);
                        l.qty = order.qty.0;
                        l.cum = order.cum_qty.0;
                        self.insert(l);
                    }
                }
                _ => {}
            }
        }
        self.pending = None;
    }

    fn order(&mut self, sec: usize, side: Side, ot: OrderType, price: i64, qty: u64) -> Command {
        let broker = self.rng.gen_range(0..BROKERS);
        self.pending = Some((sec, side, broker));
        Command::NewOrder(NewOrder {
            owner: self.owners[broker as usize],
            cl_ord_id: self.cl(),
            security: self.specs[sec].code,
            side,
            order_type: ot,
            price: Some(Price(price)),
            qty: Qty(qty),
            short_sell: false,
        })
    }

    /// At or up to 10 ticks behind the own best, never crossing.
    fn passive(&mut self, sec: usize, side: Side) -> Command {
        let sp = self.specs[sec];
        let s = self.e.security(sp.code).unwrap();
        let (own, opp) = (
            s.book(side).best(side).map(|p| p.0),
            s.book(side.opposite()).best(side.opposite()).map(|p| p.0),
        );
        let dir = if side == Side::Buy { -1 } else { 1 };
        let base = own
            .or(opp.map(|o| o + dir * sp.tick))
            .unwrap_or(s.continuous_nominal().0);
        let mut p = base + dir * sp.tick * self.rng.gen_range(0..=10);
        if let Some(o) = opp {
            p = if side == Side::Buy {
                p.min(o - sp.tick)
            } else {
                p.max(o + sp.tick)
            };
        }
        let qty = sp.lot * self.rng.gen_range(1..=5);
        self.order(sec, side, OrderType::Limit, p, qty)
    }

    /// Takes up to three levels from the opposite side, at most 9 spreads through.
    fn aggressive(&mut self, sec: usize, side: Side) -> Option<Command> {
        let sp = self.specs[sec];
        let s = self.e.security(sp.code).unwrap();
        let b = s.book(side.opposite());
        let levels: Vec<(i64, u64)> = match side {
            Side::Buy => b.levels.iter().take(3).map(|(p, l)| (p.0, l.qty)).collect(),
            Side::Sell => b
                .levels
                .iter()
                .rev()
                .take(3)
                .map(|(p, l)| (p.0, l.qty))
                .collect(),
        };
        let best = levels.first()?.0;
        let n = self.rng.gen_range(1..=levels.len());
        let mut qty = 0;
        let mut limit = best;
        for &(p, q) in levels.iter().take(n) {
            if (p - best).abs() > 9 * sp.tick {
                break;
            }
            qty += q;
            limit = p;
        }
        let ot = if self.rng.gen_bool(0.5) {
            OrderType::EnhancedLimit
        } else {
            OrderType::SpecialLimit
        };
        let qty = qty.min(3_000 * sp.lot);
        Some(self.order(sec, side, ot, limit, qty))
    }

    fn amend(&mut self, i: usize) -> Option<Command> {
        let l = self.live[i];
        let sp = self.specs[l.sec];
        let leaves = (l.qty - l.cum) / sp.lot;
        let (price, qty) = if leaves >= 2 && self.rng.gen_bool(0.5) {
            (l.price, l.cum + sp.lot * self.rng.gen_range(1..leaves))
        } else {
            // One tick further from the opposite side: never crosses and stays within
            // 24 spreads of the side's best (which is at most 11 ticks ahead).
            let s = self.e.security(sp.code).unwrap();
            let best = s.book(l.side).best(l.side)?.0;
            if (best - l.price).abs() > 12 * sp.tick {
                return None;
            }
            let dir = if l.side == Side::Buy { -1 } else { 1 };
            (l.price + dir * sp.tick, l.qty)
        };
        Some(Command::Amend(Amend {
            owner: self.owners[l.broker as usize],
            cl_ord_id: self.cl(),
            orig_cl_ord_id: l.cl,
            security: sp.code,
            side: l.side,
            order_id: Some(OrderId(l.oid)),
            price: Some(Price(price)),
            qty: Qty(qty),
        }))
    }

    fn next(&mut self) -> Command {
        loop {
            let r: f64 = self.rng.gen();
            let sec = self.rng.gen_range(0..self.specs.len());
            let side = if self.rng.gen_bool(0.5) {
                Side::Buy
            } else {
                Side::Sell
            };
            let c = if r < 0.6 || self.live.is_empty() {
                Some(self.passive(sec, side))
            } else if r < 0.8 {
                let l = self.live[self.rng.gen_range(0..self.live.len())];
                Some(Command::Cancel(Cancel {
                    owner: self.owners[l.broker as usize],
                    cl_ord_id: self.cl(),
                    orig_cl_ord_id: Some(l.cl),
                    security: self.specs[l.sec].code,
                    side: l.side,
                    order_id: Some(OrderId(l.oid)),
                    owning_broker: None,
                }))
            } else if r < 0.9 {
                let i = self.rng.gen_range(0..self.live.len());
                self.amend(i)
            } else {
                self.aggressive(sec, side)
            };
            if let Some(c) = c {
                self.apply(&c);
                return c;
            }
        }
    }
}

struct Workload {
    secs: Vec<Security>,
    warm: Vec<Command>,
    stream: Vec<Command>,
}

fn workload() -> Workload {
    let (secs, specs) = securities();
    let owners = (1..=BROKERS)
        .map(|b| Owner {
            broker: BrokerId(b),
            session: CompId::new(&format!("CO{b:05}")).unwrap(),
        })
        .collect();
    let mut g = Gen {
        rng: ChaCha8Rng::seed_from_u64(7),
        e: fresh(&secs),
        specs,
        owners,
        live: Vec::new(),
        pos: HashMap::new(),
        next_cl: 0,
        t: 1,
        pending: None,
    };
    let mut warm = Vec::new();
    for _ in 0..WARM_PER_SIDE {
        for sec in 0..SECURITIES {
            for side in [Side::Buy, Side::Sell] {
                let c = g.passive(sec, side);
                g.apply(&c);
                warm.push(c);
            }
        }
    }
    let stream: Vec<Command> = (0..COMMANDS).map(|_| g.next()).collect();
    Workload { secs, warm, stream }
}

fn warmed(w: &Workload) -> Engine {
    let mut e = fresh(&w.secs);
    let mut out = Vec::new();
    for (i, c) in w.warm.iter().enumerate() {
        out.clear();
        e.apply_into(c, Timestamp(1_000 * (i as u64 + 1)), &mut out);
    }
    e
}

fn bench(c: &mut Criterion) {
    let w = workload();
    let t0 = 1_000 * (w.warm.len() as u64 + 1);
    // The workload is valid: replaying it is reject-free.
    {
        let mut e = warmed(&w);
        let mut out = Vec::new();
        for (i, cmd) in w.stream.iter().enumerate() {
            e.apply_into(cmd, Timestamp(t0 + 1_000 * i as u64), &mut out);
        }
        let rejects = out
            .iter()
            .filter(|e| {
                matches!(
                    e,
                    Event::Rejected { .. }
                        | Event::CancelRejected { .. }
                        | Event::AmendRejected { .. }
                )
            })
            .count();
        assert!(
            rejects * 100 < w.stream.len(),
            "{rejects} rejects in the bench stream"
        );
        e.check_invariants().unwrap();
    }
    let mut g = c.benchmark_group("engine");
    g.throughput(Throughput::Elements(w.stream.len() as u64));
    g.sample_size(20);
    g.bench_function("mix_20k_commands_100_securities", |b| {
        b.iter_batched_ref(
            || (warmed(&w), Vec::with_capacity(256)),
            |(e, out)| {
                for (i, cmd) in w.stream.iter().enumerate() {
                    e.apply_into(cmd, Timestamp(t0 + 1_000 * i as u64), out);
                    black_box(out.len());
                    out.clear();
                }
            },
            BatchSize::PerIteration,
        )
    });
    g.finish();
    // The state hash every node records after every journal entry: the incremental order
    // digest against the walk over every resting order (its test oracle, and the cost the hash
    // had before the digest), on the warmed books.
    let e = warmed(&w);
    let mut g = c.benchmark_group("state_hash");
    g.bench_function(format!("incremental_{}_resting", e.live_orders()), |b| {
        b.iter(|| black_box(e.state_hash()))
    });
    g.bench_function(format!("walked_{}_resting", e.live_orders()), |b| {
        b.iter(|| black_box(e.state_hash_walked()))
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
