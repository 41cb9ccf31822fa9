//! Random command streams through the engine and the naive oracle: every event must be equal,
//! and the book invariants must hold after every command. A failure prints the seed.

mod common;
use common::owner;
use proptest::prelude::*;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use twinsite_core::{
    BrokerId, ClOrdId, MarketSegment, OrderId, Price, Qty, SecurityCode, Side, Timestamp,
};
use twinsite_engine::oracle::Oracle;
use twinsite_engine::*;

const SECS: [u32; 4] = [5, 700, 136, 8137];

fn gen_stream(seed: u64, n: usize) -> Vec<Command> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let defs = refdata::sample();
    let mut cmds = vec![Command::SetPhase(Phase::ContinuousMorning)];
    let mut used: Vec<(u32, ClOrdId, u32, Side)> = Vec::new();
    let mut next_cl = 1u64;
    for _ in 0..n {
        let b = rng.gen_range(1..=4u32);
        let code = SECS[rng.gen_range(0..SECS.len())];
        let def = defs.iter().find(|s| s.code.0 == code).unwrap();
        let side = if rng.gen_bool(0.5) {
            Side::Buy
        } else {
            Side::Sell
        };
        let mut cl = || {
            next_cl += 1;
            ClOrdId::new(&next_cl.to_string()).unwrap()
        };
        let price = {
            let ticks = rng.gen_range(-12i32..=12);
            let mut p = def.spread_table.shift(def.prev_close, ticks);
            if rng.gen_ratio(1, 30) {
                p = Price(p.0 + 1); // off tick
            }
            if rng.gen_ratio(1, 50) {
                p = def.spread_table.shift(def.prev_close, -40);
            }
            p
        };
        let lots = if rng.gen_ratio(1, 40) {
            3001
        } else {
            rng.gen_range(1..=6u64)
        };
        let mut qty = lots * def.lot_size;
        if rng.gen_ratio(1, 40) {
            qty += 1;
        }
        let roll = rng.gen_range(0..100);
        let cmd = if roll < 55 || used.is_empty() {
            let order_type = match rng.gen_range(0..10) {
                0..=4 => OrderType::Limit,
                5..=6 => OrderType::EnhancedLimit,
                7..=8 => OrderType::SpecialLimit,
                _ => OrderType::SpecialLimitFok,
            };
            let c = if rng.gen_ratio(1, 50) && !used.is_empty() {
                used[rng.gen_range(0..used.len())].1
            } else {
                cl()
            };
            used.push((b, c, code, side));
            Command::NewOrder(NewOrder {
                owner: owner(b),
                cl_ord_id: c,
                security: SecurityCode(code),
                side,
                order_type,
                price: Some(price),
                qty: Qty(qty),
                short_sell: side == Side::Sell && rng.gen_ratio(1, 20),
            })
        } else if roll < 75 {
            let (ob, oc, osec, oside) = used[rng.gen_range(0..used.len())];
            let obo = rng.gen_ratio(1, 10);
            Command::Cancel(Cancel {
                owner: owner(if obo { ob % 4 + 1 } else { ob }),
                cl_ord_id: cl(),
                orig_cl_ord_id: if obo { None } else { Some(oc) },
                security: SecurityCode(osec),
                side: oside,
                order_id: if obo || rng.gen_ratio(1, 5) {
                    Some(OrderId(rng.gen_range(1..next_cl)))
                } else {
                    None
                },
                owning_broker: obo.then_some(BrokerId(ob)),
            })
        } else if roll < 92 {
            let (ob, oc, osec, oside) = used[rng.gen_range(0..used.len())];
            let d = defs.iter().find(|s| s.code.0 == osec).unwrap();
            let c = cl();
            used.push((ob, c, osec, oside));
            Command::Amend(Amend {
                owner: owner(ob),
                cl_ord_id: c,
                orig_cl_ord_id: oc,
                security: SecurityCode(osec),
                side: oside,
                order_id: None,
                price: rng
                    .gen_bool(0.5)
                    .then(|| d.spread_table.shift(d.prev_close, rng.gen_range(-12..=12))),
                qty: Qty(rng.gen_range(1..=6u64) * d.lot_size),
            })
        } else if roll < 95 {
            let scope = match rng.gen_range(0..3) {
                0 => MassCancelScope::All,
                1 => MassCancelScope::Security(SecurityCode(code)),
                _ => MassCancelScope::Segment(if rng.gen_bool(0.5) {
                    MarketSegment::Main
                } else {
                    MarketSegment::Gem
                }),
            };
            let obo = rng.gen_ratio(1, 5);
            Command::MassCancel(MassCancel {
                owner: owner(b),
                cl_ord_id: cl(),
                scope,
                side: if rng.gen_bool(0.5) { Some(side) } else { None },
                owning_broker: obo.then_some(BrokerId(b % 4 + 1)),
            })
        } else if roll < 97 {
            Command::CancelOnDisconnect {
                session: owner(b).session,
            }
        } else if roll < 99 {
            Command::Halt {
                security: Some(SecurityCode(code)),
            }
        } else {
            Command::Resume {
                security: if rng.gen_bool(0.7) {
                    Some(SecurityCode(code))
                } else {
                    None
                },
            }
        };
        cmds.push(cmd);
    }
    cmds
}

fn run_both(seed: u64, n: usize) -> Result<(), String> {
    let cmds = gen_stream(seed, n);
    let mut engine = Engine::new(EngineConfig::default(), refdata::sample());
    let mut oracle = Oracle::new(refdata::sample());
    for (i, c) in cmds.iter().enumerate() {
        let ts = Timestamp(1_000 + i as u64 * 1_000);
        let a = engine.apply(c, ts);
        let b = oracle.apply(c, ts);
        if a != b {
            return Err(format!(
                "seed {seed}: command #{i} {c:?}\nengine: {a:#?}\noracle: {b:#?}"
            ));
        }
        engine
            .check_invariants()
            .map_err(|e| format!("seed {seed}: after command #{i} {c:?}: {e}"))?;
    }
    for code in SECS {
        for side in [Side::Buy, Side::Sell] {
            let a = engine.book_orders(SecurityCode(code), side);
            let b = oracle.book_orders(SecurityCode(code), side);
            if a != b {
                return Err(format!("seed {seed}: final book {code} {side:?} differs"));
            }
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, .. ProptestConfig::default() })]
    #[test]
    fn engine_matches_the_naive_oracle(seed in any::<u64>()) {
        if let Err(e) = run_both(seed, 400) {
            prop_assert!(false, "{}", e);
        }
    }
}

#[test]
fn fixed_seeds_match_the_oracle() {
    for seed in 0..20 {
        run_both(seed, 600).unwrap_or_else(|e| panic!("{e}"));
    }
}

#[test]
fn same_commands_give_same_events_and_hash() {
    let cmds = gen_stream(7, 2_000);
    let run = || {
        let mut e = Engine::new(EngineConfig::default(), refdata::sample());
        let mut all = Vec::new();
        for (i, c) in cmds.iter().enumerate() {
            all.extend(e.apply(c, Timestamp(i as u64 * 10)));
        }
        (all, e.state_hash())
    };
    let (a, ha) = run();
    let (b, hb) = run();
    assert_eq!(a, b);
    assert_eq!(ha, hb);
}

#[test]
fn snapshot_mid_stream_then_replay_tail_gives_same_hash() {
    let cmds = gen_stream(11, 1_000);
    let mut full = Engine::new(EngineConfig::default(), refdata::sample());
    let mut restored = None;
    for (i, c) in cmds.iter().enumerate() {
        full.apply(c, Timestamp(i as u64 * 10));
        if i == 500 {
            restored = Some(Engine::restore(&full.snapshot()).unwrap());
        }
        if let Some(r) = restored.as_mut().filter(|_| i > 500) {
            r.apply(c, Timestamp(i as u64 * 10));
        }
    }
    let r = restored.unwrap();
    assert_eq!(r.state_hash(), full.state_hash());
}

/// Arbitrary command streams across every phase (auctions included): no panic, invariants hold,
/// quantities are conserved (every accepted share is filled, cancelled or still resting).
/// A random stream with phase changes (auctions included) and at-auction orders.
fn gen_all_phases(seed: u64, n: usize) -> Vec<Command> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut cmds = gen_stream(seed, n);
    let phases = [
        Phase::PosOrderInput,
        Phase::PosNoCancel,
        Phase::PosBlocking,
        Phase::ContinuousMorning,
        Phase::ExtendedMorning,
        Phase::ContinuousAfternoon,
        Phase::CasReferencePriceFixing,
        Phase::CasOrderInput,
        Phase::CasNoCancel,
        Phase::CasRandomClose,
        Phase::DayClosed,
        Phase::NotYetOpen,
    ];
    for i in (1..cmds.len()).rev() {
        if rng.gen_ratio(1, 25) {
            cmds.insert(i, Command::SetPhase(phases[rng.gen_range(0..phases.len())]));
        }
        if let Command::NewOrder(o) = &mut cmds[i] {
            if rng.gen_ratio(1, 3) {
                o.order_type = if rng.gen_bool(0.3) {
                    OrderType::AtAuction
                } else {
                    OrderType::AtAuctionLimit
                };
                if o.order_type == OrderType::AtAuction {
                    o.price = None;
                }
            }
        }
    }
    cmds
}

fn fuzz_all_phases(seed: u64, n: usize) -> Result<(), String> {
    let cmds = gen_all_phases(seed, n);
    let mut e = Engine::new(EngineConfig::default(), refdata::sample());
    let mut accepted = 0u64;
    let mut filled = 0u64;
    let mut cancelled = 0u64;
    for (i, c) in cmds.iter().enumerate() {
        for ev in e.apply(c, Timestamp(i as u64 * 1_000)) {
            match ev {
                Event::Accepted(o) => accepted += o.qty.0,
                Event::Amended {
                    order,
                    replaced: true,
                    ..
                } => accepted += order.qty.0,
                Event::Amended {
                    order,
                    old_order_id,
                    replaced: false,
                    ..
                } => {
                    // Quantity reduced in place: the reduction counts as cancelled.
                    let _ = (order, old_order_id);
                }
                Event::Fill { qty, .. } => filled += qty.0,
                Event::Cancelled { order, .. } => cancelled += order.leaves_qty.0,
                _ => {}
            }
        }
        e.check_invariants().map_err(|err| {
            let hist: Vec<String> = cmds[..=i]
                .iter()
                .enumerate()
                .filter(|(_, c)| {
                    !matches!(
                        c,
                        Command::NewOrder(_) | Command::Cancel(_) | Command::Amend(_)
                    )
                })
                .map(|(j, c)| format!("#{j} {c:?}"))
                .collect();
            format!(
                "seed {seed}: after command #{i} {c:?}: {err}\nnon-order commands so far:\n{}",
                hist.join("\n")
            )
        })?;
    }
    let resting: u64 = SECS
        .iter()
        .flat_map(|&c| [Side::Buy, Side::Sell].map(|s| e.book_orders(SecurityCode(c), s)))
        .flatten()
        .map(|o| o.leaves_qty.0)
        .sum();
    // Fills count both sides of each trade; in-place reductions make accepted an upper bound.
    if filled / 2 + cancelled + resting > accepted {
        return Err(format!(
            "seed {seed}: more shares out ({}) than accepted ({accepted})",
            filled / 2 + cancelled + resting
        ));
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, .. ProptestConfig::default() })]
    #[test]
    fn arbitrary_streams_across_all_phases_keep_invariants(seed in any::<u64>()) {
        if let Err(e) = fuzz_all_phases(seed, 400) {
            prop_assert!(false, "{}", e);
        }
    }
}

#[test]
fn regression_seed_returning_to_cas_no_cancel_after_the_close_keeps_the_book_uncrossed() {
    fuzz_all_phases(3012047139334474993, 400).unwrap_or_else(|e| panic!("{e}"));
}

#[test]
fn regression_seed_continuous_after_operator_phase_jumps_is_uncrossed() {
    fuzz_all_phases(9561948868399419520, 400).unwrap_or_else(|e| panic!("{e}"));
}

/// The state hash reads an incremental digest of the live orders; after every command it must
/// equal the hash recomputed by walking every resting order, and a snapshot restored at any
/// point must hash the same.
fn incremental_hash_matches_the_walk(seed: u64, n: usize) -> Result<(), String> {
    let cmds = gen_all_phases(seed, n);
    let mut e = Engine::new(EngineConfig::default(), refdata::sample());
    for (i, c) in cmds.iter().enumerate() {
        e.apply(c, Timestamp(i as u64 * 1_000));
        let (fast, walked) = (e.state_hash(), e.state_hash_walked());
        if fast != walked {
            return Err(format!(
                "seed {seed}: after command #{i} {c:?}: incremental hash {fast:#x} != walked \
                 {walked:#x}"
            ));
        }
        e.check_invariants()
            .map_err(|err| format!("seed {seed}: after command #{i} {c:?}: {err}"))?;
        if i % 97 == 0 {
            let r = Engine::restore(&e.snapshot())
                .map_err(|err| format!("seed {seed}: restore after #{i}: {err}"))?;
            if r.state_hash() != fast {
                return Err(format!(
                    "seed {seed}: after command #{i}: restored hash {:#x} != {fast:#x}",
                    r.state_hash()
                ));
            }
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, .. ProptestConfig::default() })]
    #[test]
    fn incremental_state_hash_equals_the_walk_after_every_command(seed in any::<u64>()) {
        if let Err(e) = incremental_hash_matches_the_walk(seed, 500) {
            prop_assert!(false, "{}", e);
        }
    }
}

#[test]
fn incremental_state_hash_fixed_seeds() {
    for seed in 0..16 {
        incremental_hash_matches_the_walk(seed, 800).unwrap_or_else(|e| panic!("{e}"));
    }
}

/// The digest sees every hashed field: a resting order's quantity, client order id, price and
/// owner each change the hash; the same state reached twice hashes the same.
#[test]
fn state_hash_changes_with_any_resting_order_field() {
    let order = |b: u32, cl: &str, px: i64, qty: u64| {
        Command::NewOrder(NewOrder {
            owner: owner(b),
            cl_ord_id: ClOrdId::new(cl).unwrap(),
            security: SecurityCode(5),
            side: Side::Buy,
            order_type: OrderType::Limit,
            price: Some(Price(px)),
            qty: Qty(qty),
            short_sell: false,
        })
    };
    let def = refdata::sample()
        .into_iter()
        .find(|s| s.code.0 == 5)
        .unwrap();
    let px = def.prev_close.0;
    let lot = def.lot_size;
    let hash = |cmds: &[Command]| {
        let mut e = Engine::new(EngineConfig::default(), refdata::sample());
        e.apply(&Command::SetPhase(Phase::ContinuousMorning), Timestamp(1));
        for (i, c) in cmds.iter().enumerate() {
            e.apply(c, Timestamp(2 + i as u64));
        }
        // Same number of commands everywhere: only the order differs.
        assert_eq!(e.state_hash(), e.state_hash_walked());
        e.state_hash()
    };
    let base = hash(&[order(1, "A", px, lot)]);
    assert_eq!(base, hash(&[order(1, "A", px, lot)]));
    let lower = def.spread_table.shift(def.prev_close, -1).0;
    for other in [
        order(1, "A", px, 2 * lot),
        order(1, "B", px, lot),
        order(2, "A", px, lot),
        order(1, "A", lower, lot),
    ] {
        assert_ne!(base, hash(&[other]));
    }
}
