//! China Stock Connect northbound: one test per rule, named for the rule (docs/china-connect.md).

mod common;
use common::{accepted_id, owner, p, reject_code, trades};
use std::collections::BTreeMap;
use twinsite_core::{
    BrokerId, ClOrdId, MarketSegment, OrderId, Qty, SecurityCode, Side, Timestamp,
};
use twinsite_engine::*;

const MOUTAI: u32 = 600_519; // SSE main board, prev close 1500.00
const CMB: u32 = 600_036; // SSE main board, prev close 35.00
const SMIC: u32 = 688_981; // SSE STAR, prev close 90.00
const KANGMEI: u32 = 600_518; // SSE risk alert ("ST KANGMEI"), prev close 2.50
const MIDEA: u32 = 333; // SZSE 000333 main board, prev close 70.00
const CATL: u32 = 300_750; // SZSE ChiNext, prev close 250.00

const SELLER: u32 = 7; // holds shares of every China Connect security
const BUYER: u32 = 8;

fn day(h: u32, m: u32, s: u32) -> Timestamp {
    Timestamp::from_hkt(2026, 11, 27, h, m, s)
}

fn holdings() -> Vec<(BrokerId, SecurityCode, u64)> {
    [MOUTAI, CMB, SMIC, KANGMEI, MIDEA, CATL]
        .iter()
        .flat_map(|&c| {
            [
                (BrokerId(SELLER), SecurityCode(c), 2_000_000),
                (BrokerId(9), SecurityCode(c), 1_050),
            ]
        })
        .collect()
}

struct Cc {
    e: Engine,
    t: Timestamp,
    cl: u64,
}

impl Cc {
    /// A real-time northbound day with the given quota (RMB), clock at `at`.
    fn day_with_quota(quota: i64, at: Timestamp) -> Cc {
        let cfg = EngineConfig {
            cc_schedule: CcSchedule::for_date(2026, 11, 27),
            cc_daily_quota: quota,
            cc_holdings: holdings(),
            ..Default::default()
        };
        let mut c = Cc {
            e: Engine::new(cfg, refdata::sample()),
            t: Timestamp(0),
            cl: 0,
        };
        c.at(at);
        c
    }
    fn new(at: Timestamp) -> Cc {
        Cc::day_with_quota(52_000_000_000, at)
    }
    fn run(&mut self, cmd: Command) -> Vec<Event> {
        self.t = self.t.plus_nanos(1_000);
        let ev = self.e.apply(&cmd, self.t);
        self.e.check_invariants().unwrap();
        ev
    }
    /// Move the clock to `ts` (a Tick).
    fn at(&mut self, ts: Timestamp) -> Vec<Event> {
        self.t = ts;
        let ev = self.e.apply(&Command::Tick, ts);
        self.e.check_invariants().unwrap();
        ev
    }
    fn next_cl(&mut self) -> ClOrdId {
        self.cl += 1;
        ClOrdId::new(&format!("C{}", self.cl)).unwrap()
    }
    fn order(
        &mut self,
        b: u32,
        sec: u32,
        side: Side,
        ot: OrderType,
        px: Option<&str>,
        qty: u64,
    ) -> Vec<Event> {
        let cl = self.next_cl();
        self.run(Command::NewOrder(NewOrder {
            owner: owner(b),
            cl_ord_id: cl,
            security: SecurityCode(sec),
            side,
            order_type: ot,
            price: px.map(p),
            qty: Qty(qty),
            short_sell: false,
        }))
    }
    fn buy(&mut self, b: u32, sec: u32, px: &str, qty: u64) -> Vec<Event> {
        self.order(b, sec, Side::Buy, OrderType::Limit, Some(px), qty)
    }
    fn sell(&mut self, b: u32, sec: u32, px: &str, qty: u64) -> Vec<Event> {
        self.order(b, sec, Side::Sell, OrderType::Limit, Some(px), qty)
    }
    fn cancel(&mut self, b: u32, sec: u32, side: Side, id: OrderId) -> Vec<Event> {
        let cl = self.next_cl();
        self.run(Command::Cancel(Cancel {
            owner: owner(b),
            cl_ord_id: cl,
            orig_cl_ord_id: None,
            security: SecurityCode(sec),
            side,
            order_id: Some(id),
            owning_broker: None,
        }))
    }
    fn balance(&self, m: MarketSegment) -> i64 {
        self.e.china().quota_balance(m)
    }
}

fn reason(ev: &[Event]) -> &'static str {
    ev.iter()
        .find_map(|e| match e {
            Event::Rejected { reason, .. }
            | Event::CancelRejected { reason, .. }
            | Event::AmendRejected { reason, .. } => Some(*reason),
            _ => None,
        })
        .unwrap_or("")
}

fn cancelled(ev: &[Event]) -> bool {
    ev.iter().any(|e| matches!(e, Event::Cancelled { .. }))
}

fn cancel_reject(ev: &[Event]) -> Option<CancelRejectCode> {
    ev.iter().find_map(|e| match e {
        Event::CancelRejected { code, .. } => Some(*code),
        _ => None,
    })
}

fn quota_events(ev: &[Event]) -> Vec<(MarketSegment, i64)> {
    ev.iter()
        .filter_map(|e| match e {
            Event::QuotaBalance { market, balance } => Some((*market, *balance)),
            _ => None,
        })
        .collect()
}

#[test]
fn sse_and_szse_securities_with_mainland_codes_are_china_connect() {
    let e = Engine::new(EngineConfig::default(), refdata::sample());
    for code in [MOUTAI, CMB, SMIC, KANGMEI, MIDEA, CATL] {
        let s = e
            .china()
            .security(SecurityCode(code))
            .expect("China Connect security");
        assert!(s.def.segment.is_china_connect());
        assert_eq!(s.def.spread_table, SpreadTable::ChinaConnect);
        assert_eq!(s.def.currency, "CNY");
        assert!(
            e.security(SecurityCode(code)).is_none(),
            "not an OTP-C security"
        );
    }
    let c = e.china();
    assert_eq!(c.security(SecurityCode(SMIC)).unwrap().board, Board::Star);
    assert_eq!(
        c.security(SecurityCode(CATL)).unwrap().board,
        Board::ChiNext
    );
    assert_eq!(
        c.security(SecurityCode(KANGMEI)).unwrap().board,
        Board::RiskAlert
    );
    assert_eq!(
        c.security(SecurityCode(MIDEA)).unwrap().def.segment,
        MarketSegment::Szse
    );
    assert_eq!(c.quota_balance(MarketSegment::Sse), 52_000_000_000);
    assert_eq!(c.quota_balance(MarketSegment::Szse), 52_000_000_000);
}

#[test]
fn limit_orders_only() {
    let mut c = Cc::new(day(9, 35, 0));
    for ot in [
        OrderType::AtAuction,
        OrderType::AtAuctionLimit,
        OrderType::EnhancedLimit,
        OrderType::SpecialLimit,
        OrderType::SpecialLimitFok,
    ] {
        let px = ot.has_price().then_some("35.00");
        let ev = c.order(BUYER, CMB, Side::Buy, ot, px, 100);
        assert_eq!(reject_code(&ev), Some(RejectCode::Other), "{ot:?}");
        assert_eq!(reason(&ev), "China Connect accepts limit orders only");
    }
    let ev = c.order(BUYER, CMB, Side::Buy, OrderType::Limit, None, 100);
    assert_eq!(reject_code(&ev), Some(RejectCode::Other));
    accepted_id(&c.buy(BUYER, CMB, "35.00", 100));
}

#[test]
fn no_amendment_cancel_and_re_enter() {
    let mut c = Cc::new(day(9, 35, 0));
    let ev = c.buy(BUYER, CMB, "35.00", 100);
    let id = accepted_id(&ev);
    let cl = c.next_cl();
    let ev = c.run(Command::Amend(Amend {
        owner: owner(BUYER),
        cl_ord_id: cl,
        orig_cl_ord_id: ClOrdId::new("C1").unwrap(),
        security: SecurityCode(CMB),
        side: Side::Buy,
        order_id: Some(id),
        price: Some(p("34.99")),
        qty: Qty(100),
    }));
    assert!(matches!(
        ev.as_slice(),
        [Event::AmendRejected {
            code: CancelRejectCode::Other,
            ..
        }]
    ));
    assert!(reason(&ev).contains("amendment not allowed"));
    let o = c.e.order(id).unwrap();
    assert_eq!((o.price, o.qty), (Some(p("35.00")), Qty(100)));
}

#[test]
fn buys_in_multiples_of_100_shares() {
    let mut c = Cc::new(day(9, 35, 0));
    for q in [50, 150, 1_001] {
        assert_eq!(
            reject_code(&c.buy(BUYER, CMB, "35.00", q)),
            Some(RejectCode::IncorrectQty),
            "{q}"
        );
    }
    accepted_id(&c.buy(BUYER, CMB, "35.00", 100));
    accepted_id(&c.buy(BUYER, MIDEA, "70.00", 2_500));
}

#[test]
fn odd_lots_on_sells_only_in_one_order_of_the_whole_odd_lot() {
    let mut c = Cc::new(day(9, 35, 0));
    // Broker 9 holds 1,050 shares: the odd lot is 50.
    assert_eq!(
        reject_code(&c.sell(9, CMB, "35.00", 30)),
        Some(RejectCode::IncorrectQty)
    );
    assert_eq!(
        reject_code(&c.sell(9, CMB, "35.00", 120)),
        Some(RejectCode::IncorrectQty)
    );
    accepted_id(&c.sell(9, CMB, "35.00", 150));
    accepted_id(&c.sell(9, CMB, "35.00", 900));
    assert_eq!(c.e.china().available(BrokerId(9), SecurityCode(CMB)), 0);
}

#[test]
fn star_market_orders_at_least_200_shares() {
    let mut c = Cc::new(day(9, 35, 0));
    assert_eq!(
        reject_code(&c.buy(BUYER, SMIC, "90.00", 100)),
        Some(RejectCode::IncorrectQty)
    );
    assert_eq!(
        reject_code(&c.buy(BUYER, SMIC, "90.00", 199)),
        Some(RejectCode::IncorrectQty)
    );
    accepted_id(&c.buy(BUYER, SMIC, "90.00", 200));
    accepted_id(&c.buy(BUYER, SMIC, "90.00", 201));
    // A sell below 200 shares only when it is the whole holding.
    assert_eq!(
        reject_code(&c.sell(9, SMIC, "90.10", 150)),
        Some(RejectCode::IncorrectQty)
    );
    accepted_id(&c.sell(9, SMIC, "90.10", 1_050));
}

#[test]
fn at_most_1_000_000_shares_an_order() {
    let mut c = Cc::new(day(9, 35, 0));
    assert_eq!(
        reject_code(&c.buy(BUYER, CMB, "35.00", 1_000_100)),
        Some(RejectCode::ExceedsLimit)
    );
    assert_eq!(
        reject_code(&c.sell(SELLER, CMB, "35.10", 1_000_100)),
        Some(RejectCode::ExceedsLimit)
    );
    accepted_id(&c.buy(BUYER, CMB, "35.00", 1_000_000));
}

#[test]
fn tick_is_rmb_0_01() {
    let mut c = Cc::new(day(9, 35, 0));
    assert_eq!(
        reject_code(&c.buy(BUYER, CMB, "35.005", 100)),
        Some(RejectCode::PriceOutsideBand)
    );
    assert_eq!(
        reject_code(&c.buy(BUYER, MOUTAI, "1499.999", 100)),
        Some(RejectCode::PriceOutsideBand)
    );
    accepted_id(&c.buy(BUYER, CMB, "35.01", 100));
    accepted_id(&c.buy(BUYER, MOUTAI, "1499.99", 100));
}

#[test]
fn daily_price_limit_ten_percent_on_main_boards() {
    let mut c = Cc::new(day(9, 35, 0));
    // CMB 35.00: 31.50 to 38.50. Midea (SZSE) 70.00: 63.00 to 77.00.
    for (sec, lo, hi, below, above) in [
        (CMB, "31.50", "38.50", "31.49", "38.51"),
        (MIDEA, "63.00", "77.00", "62.99", "77.01"),
    ] {
        accepted_id(&c.buy(BUYER, sec, lo, 100));
        accepted_id(&c.sell(SELLER, sec, hi, 100));
        assert_eq!(
            reject_code(&c.buy(BUYER, sec, below, 100)),
            Some(RejectCode::PriceOutsideBand)
        );
        assert_eq!(
            reject_code(&c.sell(SELLER, sec, above, 100)),
            Some(RejectCode::PriceOutsideBand)
        );
    }
}

#[test]
fn daily_price_limit_twenty_percent_on_chinext_and_star() {
    let mut c = Cc::new(day(9, 35, 0));
    // CATL 250.00: 200.00 to 300.00. SMIC 90.00: 72.00 to 108.00.
    for (sec, lo, hi, below, above) in [
        (CATL, "200.00", "300.00", "199.99", "300.01"),
        (SMIC, "72.00", "108.00", "71.99", "108.01"),
    ] {
        accepted_id(&c.buy(BUYER, sec, lo, 200));
        accepted_id(&c.sell(SELLER, sec, hi, 200));
        assert_eq!(
            reject_code(&c.buy(BUYER, sec, below, 200)),
            Some(RejectCode::PriceOutsideBand)
        );
        assert_eq!(
            reject_code(&c.sell(SELLER, sec, above, 200)),
            Some(RejectCode::PriceOutsideBand)
        );
    }
}

#[test]
fn daily_price_limit_five_percent_on_risk_alert_and_sell_only() {
    let mut c = Cc::new(day(9, 35, 0));
    // ST KANGMEI 2.50: 2.375 and 2.625 rounded half-up to 2.38 and 2.63.
    let s = c.e.china().security(SecurityCode(KANGMEI)).unwrap();
    assert_eq!((s.lower, s.upper), (p("2.38"), p("2.63")));
    accepted_id(&c.sell(SELLER, KANGMEI, "2.63", 100));
    accepted_id(&c.sell(SELLER, KANGMEI, "2.38", 100));
    assert_eq!(
        reject_code(&c.sell(SELLER, KANGMEI, "2.64", 100)),
        Some(RejectCode::PriceOutsideBand)
    );
    assert_eq!(
        reject_code(&c.sell(SELLER, KANGMEI, "2.37", 100)),
        Some(RejectCode::PriceOutsideBand)
    );
    let ev = c.buy(BUYER, KANGMEI, "2.50", 100);
    assert_eq!(reject_code(&ev), Some(RejectCode::Other));
    assert!(reason(&ev).contains("sell-only"));
}

#[test]
fn price_limit_bps_in_reference_data_overrides_the_board() {
    let mut secs = refdata::sample();
    secs.iter_mut()
        .find(|s| s.code == SecurityCode(KANGMEI))
        .unwrap()
        .price_limit_bps = Some(1_000);
    let e = Engine::new(EngineConfig::default(), secs);
    let s = e.china().security(SecurityCode(KANGMEI)).unwrap();
    assert_eq!((s.lower, s.upper), (p("2.25"), p("2.75")));
}

#[test]
fn order_input_windows_0910_to_1130_and_1255_to_1500() {
    let mut c = Cc::new(day(9, 5, 0));
    assert_eq!(c.e.china().phase(), CcPhase::NotOpen);
    let ev = c.buy(BUYER, CMB, "35.00", 100);
    assert_eq!(reject_code(&ev), Some(RejectCode::Other));
    assert!(reason(&ev).contains("input hours"));
    // 09:10-09:15: accepted and held until the opening call auction.
    c.at(day(9, 10, 0));
    assert_eq!(c.e.china().phase(), CcPhase::OpeningInputHeld);
    let ev = c.buy(BUYER, CMB, "35.00", 100);
    let id = accepted_id(&ev);
    assert!(!ev.iter().any(|e| matches!(e, Event::BookAdd { .. })));
    assert_eq!(c.e.china().held_orders().len(), 1);
    let ev = c.at(day(9, 15, 0));
    assert!(ev.contains(&Event::CcPhaseChanged {
        phase: CcPhase::OpeningCall
    }));
    assert!(ev
        .iter()
        .any(|e| matches!(e, Event::BookAdd { order_id, .. } if *order_id == id)));
    assert!(c.e.china().held_orders().is_empty());
    // 11:30-12:55: lunch, no input.
    c.at(day(11, 30, 0));
    assert_eq!(c.e.china().phase(), CcPhase::LunchBreak);
    assert_eq!(
        reject_code(&c.buy(BUYER, CMB, "35.00", 100)),
        Some(RejectCode::Other)
    );
    // 12:55-13:00: held until the afternoon session, then matched.
    c.at(day(12, 55, 0));
    accepted_id(&c.sell(SELLER, CMB, "35.00", 100));
    assert_eq!(c.e.china().held_orders().len(), 1);
    let ev = c.at(day(13, 0, 0));
    assert_eq!(trades(&ev), vec![(p("35.00"), 100)]);
    // After 15:00: closed.
    c.at(day(15, 0, 0));
    assert_eq!(c.e.china().phase(), CcPhase::Closed);
    assert_eq!(
        reject_code(&c.buy(BUYER, CMB, "35.00", 100)),
        Some(RejectCode::Other)
    );
}

#[test]
fn orders_entered_0925_to_0930_are_held_until_continuous_trading() {
    let mut c = Cc::new(day(9, 26, 0));
    assert_eq!(c.e.china().phase(), CcPhase::MorningInputHeld);
    accepted_id(&c.sell(SELLER, CMB, "35.00", 100));
    let ev = c.buy(BUYER, CMB, "35.10", 100);
    accepted_id(&ev);
    assert!(trades(&ev).is_empty());
    let ev = c.at(day(9, 30, 0));
    assert_eq!(trades(&ev), vec![(p("35.00"), 100)]);
}

#[test]
fn no_cancellation_0920_to_0925_and_1457_to_1500() {
    let mut c = Cc::new(day(9, 16, 0));
    let a = accepted_id(&c.buy(BUYER, CMB, "35.00", 100));
    let b = accepted_id(&c.buy(BUYER, CMB, "34.90", 100));
    assert!(cancelled(&c.cancel(BUYER, CMB, Side::Buy, a)));
    c.at(day(9, 20, 0));
    let ev = c.cancel(BUYER, CMB, Side::Buy, b);
    assert_eq!(cancel_reject(&ev), Some(CancelRejectCode::TooLate));
    // Mass cancel and cancel on disconnect do not cancel either.
    let cl = c.next_cl();
    let ev = c.run(Command::MassCancel(MassCancel {
        owner: owner(BUYER),
        cl_ord_id: cl,
        scope: MassCancelScope::Segment(MarketSegment::Sse),
        side: None,
        owning_broker: None,
    }));
    assert!(matches!(
        ev.as_slice(),
        [Event::MassCancelReport {
            cancelled: 0,
            rejected: Some(_),
            ..
        }]
    ));
    let ev = c.run(Command::CancelOnDisconnect {
        session: owner(BUYER).session,
    });
    assert!(!cancelled(&ev));
    c.at(day(9, 26, 0));
    assert!(cancelled(&c.cancel(BUYER, CMB, Side::Buy, b)));
    c.at(day(14, 56, 0));
    let d = accepted_id(&c.buy(BUYER, CMB, "34.80", 100));
    c.at(day(14, 57, 0));
    assert_eq!(c.e.china().phase(), CcPhase::ClosingCall);
    let ev = c.cancel(BUYER, CMB, Side::Buy, d);
    assert_eq!(cancel_reject(&ev), Some(CancelRejectCode::TooLate));
    // Closed: the order expired.
    let ev = c.at(day(15, 0, 0));
    assert!(ev.iter().any(|e| matches!(e, Event::Cancelled { order, reason: CancelReason::Expired, .. } if order.order_id == d)));
}

#[test]
fn opening_call_auction_matches_at_the_single_price_that_maximises_volume() {
    let mut c = Cc::new(day(9, 15, 0));
    c.buy(BUYER, CMB, "35.20", 300);
    c.buy(BUYER, CMB, "35.10", 200);
    c.buy(BUYER, CMB, "34.90", 500);
    c.sell(SELLER, CMB, "34.80", 200);
    c.sell(SELLER, CMB, "35.00", 200);
    c.sell(SELLER, CMB, "35.10", 400);
    // At 35.10: buys 500, sells 800 -> 500 (35.00: 500 vs 400 -> 400; 35.20: 300).
    assert_eq!(
        c.e.china().security(SecurityCode(CMB)).unwrap().iep,
        Some((p("35.10"), Qty(500)))
    );
    let ev = c.at(day(9, 25, 0));
    let t = trades(&ev);
    assert!(t.iter().all(|&(px, _)| px == p("35.10")));
    assert_eq!(t.iter().map(|x| x.1).sum::<u64>(), 500);
    assert!(ev.iter().all(|e| !matches!(
        e,
        Event::Trade {
            kind: MatchKind::Continuous,
            ..
        }
    )));
    // Unfilled orders roll into continuous trading: 34.90 bid, 35.10 ask (300 left).
    let s = c.e.china().security(SecurityCode(CMB)).unwrap();
    assert_eq!(
        (s.best_bid(), s.best_ask()),
        (Some(p("34.90")), Some(p("35.10")))
    );
    assert_eq!(s.asks.levels[&p("35.10")].qty, 300);
}

#[test]
fn call_auction_ties_sse_midpoint_szse_closest_to_previous_close() {
    // Buy 100 at 35.20, sell 100 at 34.80: every price from 34.80 to 35.20 matches 100 with no
    // imbalance. SSE: the midpoint 35.00. SZSE (Midea, prev 70.00): buy 71.00 / sell 69.50 -> the
    // candidate closest to 70.00 is 69.50 (0.50 away) rather than 71.00.
    let mut c = Cc::new(day(9, 15, 0));
    c.buy(BUYER, CMB, "35.20", 100);
    c.sell(SELLER, CMB, "34.80", 100);
    c.buy(BUYER, MIDEA, "71.00", 100);
    c.sell(SELLER, MIDEA, "69.50", 100);
    let ev = c.at(day(9, 25, 0));
    let by_sec = |code: u32| {
        ev.iter()
            .find_map(|e| match e {
                Event::Trade {
                    security, price, ..
                } if *security == SecurityCode(code) => Some(*price),
                _ => None,
            })
            .unwrap()
    };
    assert_eq!(by_sec(CMB), p("35.00"));
    assert_eq!(by_sec(MIDEA), p("69.50"));
}

#[test]
fn continuous_trading_is_price_time_priority_at_the_resting_price() {
    let mut c = Cc::new(day(9, 31, 0));
    let first = accepted_id(&c.sell(SELLER, CMB, "35.00", 100));
    let _second = accepted_id(&c.sell(9, CMB, "35.00", 100));
    c.sell(SELLER, CMB, "35.01", 200);
    let ev = c.buy(BUYER, CMB, "35.05", 300);
    assert_eq!(
        trades(&ev),
        vec![(p("35.00"), 100), (p("35.00"), 100), (p("35.01"), 100)]
    );
    let first_fill = ev.iter().find_map(|e| match e {
        Event::Fill {
            order,
            aggressor: false,
            ..
        } => Some(order.order_id),
        _ => None,
    });
    assert_eq!(first_fill, Some(first));
    let s = c.e.china().security(SecurityCode(CMB)).unwrap();
    assert_eq!(s.best_ask(), Some(p("35.01")));
    assert_eq!(s.best_bid(), None);
}

#[test]
fn closing_call_auction_1457_to_1500_sets_the_closing_price() {
    let mut c = Cc::new(day(14, 50, 0));
    c.sell(SELLER, CMB, "35.10", 100);
    c.at(day(14, 57, 0));
    // Crossing orders do not trade during the call.
    let ev = c.buy(BUYER, CMB, "35.20", 300);
    assert!(trades(&ev).is_empty());
    c.sell(SELLER, CMB, "35.20", 100);
    let ev = c.at(day(15, 0, 0));
    // At 35.20: buys 300, sells 200 -> 200; at 35.10: 300 vs 100.
    assert_eq!(trades(&ev).iter().map(|x| x.1).sum::<u64>(), 200);
    assert!(trades(&ev).iter().all(|&(px, _)| px == p("35.20")));
    assert!(ev.contains(&Event::ClosingPrice {
        security: SecurityCode(CMB),
        price: p("35.20")
    }));
    assert!(ev.contains(&Event::ClosingPrice {
        security: SecurityCode(MOUTAI),
        price: p("1500.00")
    }));
    assert_eq!(c.e.china().live_orders(), 0);
}

#[test]
fn sells_checked_against_holdings_no_day_trading() {
    let mut c = Cc::new(day(9, 31, 0));
    // BUYER holds nothing: no sell, and shares bought today cannot be sold today.
    let ev = c.sell(BUYER, CMB, "35.00", 100);
    assert_eq!(reject_code(&ev), Some(RejectCode::Other));
    assert!(reason(&ev).contains("holdings"));
    c.sell(9, CMB, "35.00", 100);
    assert_eq!(trades(&c.buy(BUYER, CMB, "35.00", 100)).len(), 1);
    assert_eq!(
        reject_code(&c.sell(BUYER, CMB, "35.00", 100)),
        Some(RejectCode::Other)
    );
    // Open sells use up the holding; a cancel gives it back.
    assert_eq!(c.e.china().available(BrokerId(9), SecurityCode(CMB)), 950);
    let id = accepted_id(&c.sell(9, CMB, "36.00", 950));
    assert_eq!(
        reject_code(&c.sell(9, CMB, "36.00", 100)),
        Some(RejectCode::Other)
    );
    c.cancel(9, CMB, Side::Sell, id);
    assert_eq!(c.e.china().available(BrokerId(9), SecurityCode(CMB)), 950);
}

#[test]
fn quota_balance_is_quota_minus_buy_orders_plus_sell_trades_plus_adjustments() {
    let mut c = Cc::day_with_quota(1_000_000, day(9, 31, 0));
    // Buy order 100 x 35.00 = 3,500.
    let ev = c.buy(BUYER, CMB, "35.00", 100);
    assert_eq!(quota_events(&ev), vec![(MarketSegment::Sse, 996_500)]);
    // Sell trade 100 x 35.00 = +3,500 (a sell's own acceptance does not count).
    let ev = c.sell(SELLER, CMB, "35.00", 100);
    assert_eq!(quota_events(&ev), vec![(MarketSegment::Sse, 1_000_000)]);
    // Adjustment: a buy filled below its limit gives back the difference; a cancel gives back
    // the unfilled value.
    c.sell(SELLER, CMB, "34.00", 100);
    let ev = c.buy(BUYER, CMB, "35.00", 300);
    // -10,500 on acceptance, then +3,400 (sell trade) +100 (better price).
    assert_eq!(
        quota_events(&ev),
        vec![(MarketSegment::Sse, 989_500), (MarketSegment::Sse, 993_000)]
    );
    let id = ev
        .iter()
        .find_map(|e| match e {
            Event::Accepted(o) => Some(o.order_id),
            _ => None,
        })
        .unwrap();
    let ev = c.cancel(BUYER, CMB, Side::Buy, id);
    assert_eq!(quota_events(&ev), vec![(MarketSegment::Sse, 1_000_000)]);
    // Each link has its own quota.
    c.buy(BUYER, MIDEA, "70.00", 100);
    assert_eq!(c.balance(MarketSegment::Szse), 993_000);
    assert_eq!(c.balance(MarketSegment::Sse), 1_000_000);
}

#[test]
fn quota_exhausted_in_opening_call_auction_rejects_buys_until_cancels_restore_it() {
    // Quota 300,000: two Moutai buys of 100 x 1500.00 use it up.
    let mut c = Cc::day_with_quota(300_000, day(9, 15, 0));
    let a = accepted_id(&c.buy(BUYER, MOUTAI, "1500.00", 100));
    accepted_id(&c.buy(BUYER, MOUTAI, "1500.00", 100));
    assert_eq!(c.balance(MarketSegment::Sse), 0);
    let ev = c.buy(BUYER, CMB, "35.00", 100);
    assert_eq!(reject_code(&ev), Some(RejectCode::Other));
    assert!(reason(&ev).contains("quota"));
    // Sells are always accepted.
    accepted_id(&c.sell(SELLER, CMB, "35.50", 100));
    // The other link is unaffected.
    accepted_id(&c.buy(BUYER, MIDEA, "70.00", 100));
    // A cancel restores a positive balance before the auction ends: buys accepted again.
    c.cancel(BUYER, MOUTAI, Side::Buy, a);
    assert_eq!(c.balance(MarketSegment::Sse), 150_000);
    accepted_id(&c.buy(BUYER, CMB, "35.00", 100));
    assert!(!c.e.china().quota_stopped(MarketSegment::Sse));
}

#[test]
fn quota_exhausted_in_opening_call_auction_and_not_restored_stops_buys_in_continuous() {
    let mut c = Cc::day_with_quota(300_000, day(9, 21, 0));
    accepted_id(&c.buy(BUYER, MOUTAI, "1500.00", 200));
    c.at(day(9, 30, 0));
    assert!(c.e.china().quota_stopped(MarketSegment::Sse));
    assert_eq!(
        reject_code(&c.buy(BUYER, CMB, "35.00", 100)),
        Some(RejectCode::Other)
    );
}

#[test]
fn quota_exhausted_in_continuous_trading_stops_buys_for_the_rest_of_the_day() {
    let mut c = Cc::day_with_quota(300_000, day(9, 31, 0));
    let a = accepted_id(&c.buy(BUYER, MOUTAI, "1500.00", 100));
    // The buy that takes the balance below zero is still accepted.
    let b = accepted_id(&c.buy(BUYER, MOUTAI, "1499.00", 150 + 50));
    assert!(c.balance(MarketSegment::Sse) < 0);
    assert!(c.e.china().quota_stopped(MarketSegment::Sse));
    let ev = c.buy(BUYER, CMB, "35.00", 100);
    assert_eq!(reject_code(&ev), Some(RejectCode::Other));
    assert!(reason(&ev).contains("no more buy orders today"));
    // Cancels restore a positive balance but buying stays stopped for the day.
    c.cancel(BUYER, MOUTAI, Side::Buy, a);
    assert!(c.balance(MarketSegment::Sse) > 0);
    assert_eq!(
        reject_code(&c.buy(BUYER, CMB, "35.00", 100)),
        Some(RejectCode::Other)
    );
    c.at(day(13, 30, 0));
    assert_eq!(
        reject_code(&c.buy(BUYER, CMB, "35.00", 100)),
        Some(RejectCode::Other)
    );
    // Already-accepted buys stay and trade; sells are always accepted.
    let ev = c.sell(SELLER, MOUTAI, "1499.00", 200);
    assert_eq!(trades(&ev), vec![(p("1499.00"), 200)]);
    assert_eq!(c.e.order(b), None);
    accepted_id(&c.sell(SELLER, CMB, "35.00", 100));
    // The Shenzhen link still buys.
    accepted_id(&c.buy(BUYER, CATL, "250.00", 100));
}

#[test]
fn quota_exhausted_in_closing_call_auction_stops_buys_for_the_rest_of_the_day() {
    let mut c = Cc::day_with_quota(300_000, day(14, 50, 0));
    accepted_id(&c.buy(BUYER, MOUTAI, "1500.00", 100));
    c.at(day(14, 57, 0));
    let b = accepted_id(&c.buy(BUYER, MOUTAI, "1500.00", 100));
    assert_eq!(c.balance(MarketSegment::Sse), 0);
    assert!(c.e.china().quota_stopped(MarketSegment::Sse));
    assert_eq!(
        reject_code(&c.buy(BUYER, CMB, "35.00", 100)),
        Some(RejectCode::Other)
    );
    // Sells are accepted and the accepted buys trade in the closing auction.
    accepted_id(&c.sell(SELLER, MOUTAI, "1500.00", 200));
    let ev = c.at(day(15, 0, 0));
    assert_eq!(trades(&ev).iter().map(|x| x.1).sum::<u64>(), 200);
    assert!(ev
        .iter()
        .any(|e| matches!(e, Event::Fill { order, .. } if order.order_id == b)));
}

#[test]
fn daily_quota_is_configurable_and_defaults_to_rmb_52_billion_per_link() {
    let e = Engine::new(EngineConfig::default(), refdata::sample());
    assert_eq!(e.config().cc_daily_quota, 52_000_000_000);
    let c = Cc::day_with_quota(13_000_000_000, day(9, 0, 0));
    assert_eq!(c.balance(MarketSegment::Sse), 13_000_000_000);
    assert_eq!(c.balance(MarketSegment::Szse), 13_000_000_000);
}

#[test]
fn same_engine_same_journal_snapshot_and_hash_cover_china_connect() {
    let cmds_at = |c: &mut Cc| {
        c.buy(BUYER, CMB, "35.00", 300);
        c.sell(SELLER, CMB, "34.90", 100);
        c.at(day(9, 25, 0));
        c.at(day(9, 31, 0));
        c.sell(SELLER, CMB, "35.00", 100);
        c.buy(BUYER, MIDEA, "70.00", 100);
        c.run(Command::SetPhase(Phase::ContinuousMorning));
        accepted_id(&c.buy(BUYER, 5, "65.30", 400)); // OTP-C order, same engine and journal
    };
    let mut a = Cc::new(day(9, 16, 0));
    let mut b = Cc::new(day(9, 16, 0));
    cmds_at(&mut a);
    cmds_at(&mut b);
    assert_eq!(a.e.state_hash(), b.e.state_hash());
    let restored = Engine::restore(&a.e.snapshot()).unwrap();
    assert_eq!(restored.state_hash(), a.e.state_hash());
    restored.check_invariants().unwrap();
    assert_eq!(
        restored.china().book_orders(SecurityCode(CMB), Side::Buy),
        a.e.china().book_orders(SecurityCode(CMB), Side::Buy)
    );
    // China Connect state is in the hash: one more order changes it.
    let before = a.e.state_hash();
    a.buy(BUYER, CMB, "34.00", 100);
    assert_ne!(a.e.state_hash(), before);
    // Order ids are unique across OTP-C and China Connect.
    let mut ids: Vec<u64> = [5u32, CMB, MIDEA]
        .iter()
        .flat_map(|&s| [Side::Buy, Side::Sell].map(|d| a.e.book_orders(SecurityCode(s), d)))
        .flatten()
        .map(|o| o.order_id.0)
        .collect();
    let n = ids.len();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), n);
}

#[test]
fn compressed_china_connect_schedule_keeps_the_order_of_phases() {
    let start = Timestamp::from_secs(1_000);
    let s = CcSchedule::compressed(start, 60);
    // 09:10 is ten minutes after the 09:00 anchor: ten seconds at 60x.
    assert_eq!(s.transitions[0].at, start.plus_nanos(10_000_000_000));
    assert!(s.transitions.windows(2).all(|w| w[0].at < w[1].at));
    let cfg = EngineConfig {
        cc_schedule: s,
        ..Default::default()
    };
    let mut e = Engine::new(cfg, refdata::sample());
    let mut phases = Vec::new();
    for k in 0..400 {
        for ev in e.apply(&Command::Tick, start.plus_nanos(k * 1_000_000_000)) {
            if let Event::CcPhaseChanged { phase } = ev {
                phases.push(phase);
            }
        }
    }
    assert_eq!(phases.len(), 10);
    assert_eq!(phases.last(), Some(&CcPhase::Closed));
}

#[test]
fn without_a_china_connect_schedule_the_phase_follows_the_hk_phase() {
    let mut e = Engine::new(
        EngineConfig {
            cc_holdings: holdings(),
            ..Default::default()
        },
        refdata::sample(),
    );
    e.apply(&Command::SetPhase(Phase::ContinuousMorning), Timestamp(1));
    assert_eq!(e.china().phase(), CcPhase::ContinuousMorning);
    e.apply(&Command::SetPhase(Phase::CasOrderInput), Timestamp(2));
    assert_eq!(e.china().phase(), CcPhase::ClosingCall);
    let ev = e.apply(&Command::SetPhase(Phase::DayClosed), Timestamp(3));
    assert!(ev.contains(&Event::ClosingPrice {
        security: SecurityCode(CMB),
        price: p("35.00")
    }));
    assert_eq!(e.china().phase(), CcPhase::Closed);
}

#[test]
fn mass_cancel_by_market_halt_and_suspension_reach_china_connect_orders() {
    let mut c = Cc::new(day(9, 31, 0));
    c.run(Command::SetPhase(Phase::ContinuousMorning));
    c.buy(BUYER, CMB, "35.00", 100);
    c.buy(BUYER, MIDEA, "70.00", 100);
    accepted_id(&c.buy(BUYER, 5, "65.30", 400));
    let cl = c.next_cl();
    let ev = c.run(Command::MassCancel(MassCancel {
        owner: owner(BUYER),
        cl_ord_id: cl,
        scope: MassCancelScope::Segment(MarketSegment::Szse),
        side: None,
        owning_broker: None,
    }));
    assert!(matches!(
        ev.last(),
        Some(Event::MassCancelReport {
            cancelled: 1,
            rejected: None,
            ..
        })
    ));
    let ev = c.run(Command::Halt {
        security: Some(SecurityCode(CMB)),
    });
    assert_eq!(
        ev,
        vec![Event::SecurityStatus {
            security: SecurityCode(CMB),
            halted: true
        }]
    );
    assert_eq!(
        reject_code(&c.buy(BUYER, CMB, "35.00", 100)),
        Some(RejectCode::Other)
    );
    let ev = c.run(Command::SuspendBroker {
        broker: BrokerId(BUYER),
    });
    // The HK order and the China Connect order both go.
    assert_eq!(
        ev.iter()
            .filter(|e| matches!(e, Event::Cancelled { .. }))
            .count(),
        2
    );
}

#[test]
fn halted_security_takes_no_orders_and_resumption_uncrosses_by_call_auction() {
    let mut c = Cc::new(day(12, 56, 0));
    accepted_id(&c.sell(SELLER, CMB, "35.00", 100));
    accepted_id(&c.buy(BUYER, CMB, "35.10", 300));
    c.run(Command::Halt {
        security: Some(SecurityCode(CMB)),
    });
    assert_eq!(
        reject_code(&c.buy(BUYER, CMB, "35.00", 100)),
        Some(RejectCode::Other)
    );
    // Released at 13:00 but not matched while halted.
    let ev = c.at(day(13, 0, 0));
    assert!(trades(&ev).is_empty());
    // Still no new orders while halted.
    let ev = c.sell(SELLER, CMB, "35.20", 100);
    assert_eq!(reject_code(&ev), Some(RejectCode::Other));
    let ev = c.run(Command::Resume {
        security: Some(SecurityCode(CMB)),
    });
    assert_eq!(
        ev[0],
        Event::SecurityStatus {
            security: SecurityCode(CMB),
            halted: false
        }
    );
    // Buy 300 at 35.10 vs sell 100 at 35.00: 100 shares at every price from 35.00 to 35.10
    // with the same imbalance, so SSE takes the midpoint 35.05, as an auction.
    assert_eq!(trades(&ev), vec![(p("35.05"), 100)]);
    assert!(ev.iter().any(|e| matches!(
        e,
        Event::Trade {
            kind: MatchKind::Auction,
            ..
        }
    )));
}

mod random_streams {
    use super::*;
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    const SECS: [u32; 6] = [MOUTAI, CMB, SMIC, KANGMEI, MIDEA, CATL];
    const QUOTA: i64 = 3_000_000;

    fn stream(seed: u64, n: usize) -> Vec<(Timestamp, Command)> {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let defs = refdata::sample();
        let mut t = day(9, 5, 0);
        let mut out = Vec::new();
        let mut next_cl = 0u64;
        let mut sent: Vec<(u32, ClOrdId, u32, Side)> = Vec::new();
        for _ in 0..n {
            // Spread n commands over about six hours.
            t = t.plus_nanos(rng.gen_range(0..(2 * 6 * 3600 / n as u64 + 1)) * 1_000_000_000);
            let b = [SELLER, BUYER, 9, 10][rng.gen_range(0..4)];
            let code = SECS[rng.gen_range(0..SECS.len())];
            let def = defs.iter().find(|s| s.code.0 == code).unwrap();
            let side = if rng.gen_bool(0.5) {
                Side::Buy
            } else {
                Side::Sell
            };
            next_cl += 1;
            let cl = ClOrdId::new(&format!("R{next_cl}")).unwrap();
            let roll = rng.gen_range(0..100);
            let cmd = if roll < 60 || sent.is_empty() {
                let ticks = rng.gen_range(-12i32..=12);
                let mut px = def.spread_table.shift(def.prev_close, ticks);
                if rng.gen_ratio(1, 30) {
                    px = def.spread_table.shift(def.prev_close, 3_000); // beyond the limit
                }
                let mut qty = rng.gen_range(1..=8u64) * 100;
                if rng.gen_ratio(1, 10) {
                    qty += rng.gen_range(1..100);
                }
                sent.push((b, cl, code, side));
                Command::NewOrder(NewOrder {
                    owner: owner(b),
                    cl_ord_id: cl,
                    security: SecurityCode(code),
                    side,
                    order_type: if rng.gen_ratio(1, 20) {
                        OrderType::SpecialLimit
                    } else {
                        OrderType::Limit
                    },
                    price: Some(px),
                    qty: Qty(qty),
                    short_sell: false,
                })
            } else if roll < 85 {
                let (ob, oc, osec, oside) = sent[rng.gen_range(0..sent.len())];
                Command::Cancel(Cancel {
                    owner: owner(ob),
                    cl_ord_id: cl,
                    orig_cl_ord_id: Some(oc),
                    security: SecurityCode(osec),
                    side: oside,
                    order_id: None,
                    owning_broker: None,
                })
            } else if roll < 88 {
                let (ob, oc, osec, oside) = sent[rng.gen_range(0..sent.len())];
                Command::Amend(Amend {
                    owner: owner(ob),
                    cl_ord_id: cl,
                    orig_cl_ord_id: oc,
                    security: SecurityCode(osec),
                    side: oside,
                    order_id: None,
                    price: None,
                    qty: Qty(100),
                })
            } else if roll < 91 {
                Command::MassCancel(MassCancel {
                    owner: owner(b),
                    cl_ord_id: cl,
                    scope: match rng.gen_range(0..3) {
                        0 => MassCancelScope::All,
                        1 => MassCancelScope::Security(SecurityCode(code)),
                        _ => MassCancelScope::Segment(def.segment),
                    },
                    side: rng.gen_bool(0.5).then_some(side),
                    owning_broker: None,
                })
            } else if roll < 93 {
                Command::CancelOnDisconnect {
                    session: owner(b).session,
                }
            } else if roll < 95 {
                Command::Halt {
                    security: Some(SecurityCode(code)),
                }
            } else if roll < 97 {
                Command::Resume {
                    security: rng.gen_bool(0.7).then_some(SecurityCode(code)),
                }
            } else {
                Command::Tick
            };
            out.push((t, cmd));
        }
        out
    }

    fn engine() -> Engine {
        Engine::new(
            EngineConfig {
                cc_schedule: CcSchedule::for_date(2026, 11, 27),
                cc_daily_quota: QUOTA,
                cc_holdings: holdings(),
                ..Default::default()
            },
            refdata::sample(),
        )
    }

    /// Invariants after every command; quota and holdings reconcile with the events.
    /// Returns (trades, links whose buying stopped) so the caller can see the rules were reached.
    fn check(seed: u64, n: usize) -> (u64, u64) {
        let cmds = stream(seed, n);
        let mut e = engine();
        let mut buy_filled: i128 = 0; // value in 1/1000 RMB
        let mut sell_filled: i128 = 0;
        let mut sold: BTreeMap<(u32, u32), u64> = BTreeMap::new();
        let mut n_trades = 0;
        for (i, (ts, c)) in cmds.iter().enumerate() {
            for ev in e.apply(c, *ts) {
                if matches!(ev, Event::Trade { .. }) {
                    n_trades += 1;
                }
                if let Event::Fill {
                    order, price, qty, ..
                } = ev
                {
                    let v = price.0 as i128 * qty.0 as i128;
                    match order.side {
                        Side::Buy => buy_filled += v,
                        Side::Sell => {
                            sell_filled += v;
                            *sold
                                .entry((order.owner.broker.0, order.security.0))
                                .or_insert(0) += qty.0;
                        }
                    }
                }
            }
            e.check_invariants()
                .unwrap_or_else(|err| panic!("seed {seed}: after #{i} {c:?}: {err}"));
            // The state hash reads an incremental digest of the live orders (held and
            // resting): it must equal the hash recomputed by walking every order.
            assert_eq!(
                e.state_hash(),
                e.state_hash_walked(),
                "seed {seed}: after #{i} {c:?}: incremental state hash != walked"
            );
        }
        let cc = e.china();
        let mut open_buys = [0i128; 2];
        let mut open_sells: BTreeMap<(u32, u32), u64> = BTreeMap::new();
        let all: Vec<OrderInfo> = cc
            .held_orders()
            .into_iter()
            .chain(SECS.iter().flat_map(|&s| {
                [Side::Buy, Side::Sell]
                    .into_iter()
                    .flat_map(move |d| cc.book_orders(SecurityCode(s), d))
            }))
            .collect();
        for o in all {
            let m = (cc.security(o.security).unwrap().def.segment == MarketSegment::Szse) as usize;
            match o.side {
                Side::Buy => open_buys[m] += o.price.unwrap().0 as i128 * o.leaves_qty.0 as i128,
                Side::Sell => {
                    *open_sells
                        .entry((o.owner.broker.0, o.security.0))
                        .or_insert(0) += o.leaves_qty.0
                }
            }
        }
        // Per link: quota - open buys at their limit - filled buys + filled sells.
        let _ = (buy_filled, sell_filled);
        let total_balance: i128 = [MarketSegment::Sse, MarketSegment::Szse]
            .iter()
            .map(|&m| cc.quota_balance(m) as i128)
            .sum();
        let expected = (2 * QUOTA as i128 * 1000 - open_buys[0] - open_buys[1] - buy_filled
            + sell_filled)
            / 1000;
        assert!(
            (total_balance - expected).abs() <= 2,
            "seed {seed}: quota {total_balance} != {expected}"
        );
        for (b, c, initial) in holdings() {
            let k = (b.0, c.0);
            let used =
                open_sells.get(&k).copied().unwrap_or(0) + sold.get(&k).copied().unwrap_or(0);
            assert_eq!(
                cc.available(b, c) + used,
                initial,
                "seed {seed}: holdings of {k:?}"
            );
        }
        let stopped = [MarketSegment::Sse, MarketSegment::Szse]
            .iter()
            .filter(|&&m| cc.quota_stopped(m))
            .count() as u64;
        (n_trades, stopped)
    }

    #[test]
    fn random_streams_keep_invariants_and_reconcile_quota_and_holdings() {
        let (mut trades, mut stopped) = (0, 0);
        for seed in 0..24 {
            for n in [150, 600] {
                let (t, s) = check(seed, n);
                trades += t;
                stopped += s;
            }
        }
        assert!(trades > 500, "{trades} trades");
        assert!(stopped > 0 && stopped < 96, "{stopped} links stopped");
    }

    #[test]
    fn random_streams_replay_identically_and_snapshots_resume() {
        for seed in 0..6 {
            let cmds = stream(seed, 600);
            let run = || {
                let mut e = engine();
                let mut all = Vec::new();
                for (ts, c) in &cmds {
                    all.extend(e.apply(c, *ts));
                }
                (all, e.state_hash())
            };
            let (a, ha) = run();
            let (b, hb) = run();
            assert_eq!(a, b);
            assert_eq!(ha, hb);
            let mut full = engine();
            let mut restored: Option<Engine> = None;
            for (i, (ts, c)) in cmds.iter().enumerate() {
                let ev = full.apply(c, *ts);
                if let Some(r) = restored.as_mut() {
                    assert_eq!(r.apply(c, *ts), ev, "seed {seed}: #{i} after restore");
                }
                if i == 300 {
                    restored = Some(Engine::restore(&full.snapshot()).unwrap());
                }
            }
            assert_eq!(restored.unwrap().state_hash(), full.state_hash());
        }
    }
}
