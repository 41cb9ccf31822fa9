//! The order-generation part of a bot, shared by both transports (OCG-C binary and FIX): what
//! to send next (market maker or taker), which orders are still open, and the A-share
//! holdings a CCEP may sell. The transports turn an [`OrderIntent`] into their wire message
//! and report back what the exchange said about it ([`Strategy::done`]).

use std::collections::BTreeMap;
use twinsite_core::{Price, Qty};
use twinsite_ocg::{
    Decimal, FixedStr, Message, NewOrder, OrdType, OrderCapacity, Side, TimeInForce,
};
use twinsite_site::exchange::transact_time;
use twinsite_site::gateway::wall_clock;

use crate::{BotConfig, Instrument, Role};

/// One new order the strategy wants entered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OrderIntent {
    pub code: u32,
    pub side: Side,
    pub price: Price,
    pub qty: Qty,
    /// Day, or immediate-or-cancel for a taker's Hong Kong orders.
    pub tif: TimeInForce,
    /// A China Connect A-share (no SecurityExchange on the binary order).
    pub a_share: bool,
}

impl OrderIntent {
    /// The OCG-C binary New Order for it.
    pub fn to_ocg(&self, cl: &str, broker_id: u32) -> Message {
        Message::NewOrder(NewOrder {
            cl_ord_id: FixedStr::new(cl),
            submitting_broker_id: FixedStr::new(&broker_id.to_string()),
            security_id: FixedStr::new(&self.code.to_string()),
            security_id_source: 8,
            security_exchange: (!self.a_share).then(|| FixedStr::new("XHKG")),
            broker_location_id: None,
            transact_time: transact_time(wall_clock()),
            side: self.side,
            ord_type: OrdType::Limit,
            price: Some(Decimal::from_price(self.price)),
            order_qty: Decimal::from_qty(self.qty),
            time_in_force: Some(self.tif),
            position_effect: None,
            order_restrictions: None,
            max_price_levels: Some(1),
            order_capacity: Some(OrderCapacity::Agency),
            text: None,
            execution_instructions: None,
            disclosure_instructions: 1,
            lot_type: None,
            submitting_bcan: Some(FixedStr::new("1")),
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct OpenOrder {
    code: u32,
    side: Side,
}

/// The strategy state of one bot.
#[derive(Debug, Clone)]
pub struct Strategy {
    role: Role,
    broker_id: u32,
    instruments: Vec<Instrument>,
    max_open_per_side: usize,
    holdings: BTreeMap<u32, u64>,
    next_cl: u64,
    open: BTreeMap<String, OpenOrder>,
    turn: usize,
    /// A-share sells in flight: Cl Ord ID -> (security, shares reserved from the holding).
    sells: BTreeMap<String, (u32, u64)>,
}

impl Strategy {
    pub fn new(cfg: &BotConfig) -> Strategy {
        Strategy {
            role: cfg.role,
            broker_id: cfg.broker_id,
            instruments: cfg.instruments.clone(),
            max_open_per_side: cfg.max_open_per_side,
            holdings: cfg.holdings.clone(),
            next_cl: 0,
            open: BTreeMap::new(),
            turn: 0,
            sells: BTreeMap::new(),
        }
    }

    /// Orders still open (sent, not yet reported done).
    pub fn open_orders(&self) -> usize {
        self.open.len()
    }

    /// Forget the open orders (a restart that lost its state).
    pub fn clear_open(&mut self) {
        self.open.clear();
    }

    fn intent(&mut self, ins: Instrument, side: Side, tif: TimeInForce) -> (String, OrderIntent) {
        self.next_cl += 1;
        let cl = format!("{}{}", self.broker_id, self.next_cl);
        // The maker quotes its own side of the spread; the taker crosses it.
        let price = match (self.role, side) {
            (Role::MarketMaker, Side::Buy) => ins.bid,
            (Role::MarketMaker, _) => ins.ask,
            (Role::Taker, Side::Buy) => ins.ask,
            (Role::Taker, _) => ins.bid,
        };
        let intent = OrderIntent {
            code: ins.code,
            side,
            price,
            qty: Qty(ins.lot),
            tif,
            a_share: ins.a_share,
        };
        // An A-share sell reserves its shares until it is done.
        if ins.a_share && side == Side::Sell {
            if let Some(h) = self.holdings.get_mut(&ins.code) {
                *h -= ins.lot.min(*h);
            }
            self.sells.insert(cl.clone(), (ins.code, ins.lot));
        }
        (cl, intent)
    }

    /// May it sell a lot of `ins` now (an A-share only against its unreserved holding)?
    fn may_sell(&self, ins: &Instrument) -> bool {
        !ins.a_share || self.holdings.get(&ins.code).copied().unwrap_or(0) >= ins.lot
    }

    fn open_on(&self, code: u32, side: Side) -> usize {
        self.open
            .values()
            .filter(|o| o.code == code && o.side == side)
            .count()
    }

    /// The next order to send, if any, with its Cl Ord ID. Call [`Strategy::sent`] or
    /// [`Strategy::send_failed`] with the outcome.
    pub fn next_order(&mut self) -> Option<(String, OrderIntent)> {
        let n = self.instruments.len();
        if n == 0 {
            return None;
        }
        match self.role {
            Role::MarketMaker => {
                // Top up the first instrument/side below its quota.
                for k in 0..2 * n {
                    let slot = (self.turn + k) % (2 * n);
                    let ins = self.instruments[slot / 2];
                    let side = [Side::Buy, Side::Sell][slot % 2];
                    if self.open_on(ins.code, side) < self.max_open_per_side
                        && (side == Side::Buy || self.may_sell(&ins))
                    {
                        self.turn = slot + 1;
                        return Some(self.intent(ins, side, TimeInForce::Day));
                    }
                }
                None
            }
            Role::Taker => {
                let slot = self.turn % (2 * n);
                self.turn += 1;
                let ins = self.instruments[slot / 2];
                let mut side = [Side::Buy, Side::Sell][slot % 2];
                if side == Side::Sell && !self.may_sell(&ins) {
                    // Nothing (left) to sell: buy instead.
                    side = Side::Buy;
                }
                // Northbound orders are limit orders (Day) only: no immediate-or-cancel, so an
                // A-share taker crosses with a Day order, and keeps at most
                // `max_open_per_side` of them resting when nobody is on the other side.
                let tif = if ins.a_share {
                    if self.open_on(ins.code, side) >= self.max_open_per_side {
                        return None;
                    }
                    TimeInForce::Day
                } else {
                    TimeInForce::ImmediateOrCancel
                };
                Some(self.intent(ins, side, tif))
            }
        }
    }

    /// The order went out: tracked until it is done (a taker's immediate-or-cancel ones are
    /// done at once).
    pub fn sent(&mut self, cl: String, intent: &OrderIntent) {
        self.open.insert(
            cl,
            OpenOrder {
                code: intent.code,
                side: intent.side,
            },
        );
    }

    /// The order could not be sent: what it reserved is given back.
    pub fn send_failed(&mut self, cl: &str) {
        self.release(cl, false, 0);
    }

    /// The exchange reported the order done (filled, cancelled, expired, rejected) with
    /// `filled` shares done in all: what was not filled is sellable again.
    pub fn done(&mut self, cl: &str, filled_all: bool, filled: u64) {
        self.open.remove(cl);
        self.release(cl, filled_all, filled);
    }

    fn release(&mut self, cl: &str, filled_all: bool, filled: u64) {
        if let Some((code, q)) = self.sells.remove(cl) {
            let back = if filled_all {
                0
            } else {
                q.saturating_sub(filled)
            };
            *self.holdings.entry(code).or_insert(0) += back;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ins(code: u32, a_share: bool) -> Instrument {
        Instrument {
            code,
            bid: Price(1_000),
            ask: Price(1_010),
            lot: 100,
            a_share,
        }
    }

    fn strategy(role: Role, instruments: Vec<Instrument>) -> Strategy {
        Strategy {
            role,
            broker_id: 7,
            instruments,
            max_open_per_side: 2,
            holdings: BTreeMap::new(),
            next_cl: 0,
            open: BTreeMap::new(),
            turn: 0,
            sells: BTreeMap::new(),
        }
    }

    #[test]
    fn maker_quotes_both_sides_up_to_its_quota_and_requotes_what_is_done() {
        let mut s = strategy(Role::MarketMaker, vec![ins(5, false)]);
        let mut sent = Vec::new();
        while let Some((cl, i)) = s.next_order() {
            s.sent(cl.clone(), &i);
            sent.push((cl, i));
        }
        assert_eq!(sent.len(), 4, "two per side");
        for (_, i) in &sent {
            let want = if i.side == Side::Buy { 1_000 } else { 1_010 };
            assert_eq!((i.price.0, i.tif), (want, TimeInForce::Day));
        }
        assert_eq!(sent[0].0, "71");
        s.done(&sent[0].0, true, 100);
        let (_, again) = s.next_order().expect("re-quotes the filled side");
        assert_eq!(again.side, sent[0].1.side);
    }

    #[test]
    fn taker_crosses_with_ioc_and_an_a_share_taker_sells_only_what_it_holds() {
        let mut s = strategy(Role::Taker, vec![ins(5, false)]);
        let (_, b) = s.next_order().unwrap();
        let (_, a) = s.next_order().unwrap();
        assert_eq!((b.side, b.price.0), (Side::Buy, 1_010));
        assert_eq!((a.side, a.price.0), (Side::Sell, 1_000));
        assert_eq!(b.tif, TimeInForce::ImmediateOrCancel);

        let mut s = strategy(Role::Taker, vec![ins(600_000, true)]);
        s.holdings.insert(600_000, 100);
        let (_, b) = s.next_order().unwrap();
        s.sent("b".into(), &b);
        let (cl, sell) = s.next_order().unwrap();
        assert_eq!((sell.side, sell.tif), (Side::Sell, TimeInForce::Day));
        s.sent(cl.clone(), &sell);
        // The lot is reserved: the next sell turn buys instead.
        s.next_order();
        let (_, next) = s.next_order().unwrap();
        assert_eq!(next.side, Side::Buy);
        // Cancelled unfilled: sellable again.
        s.done(&cl, false, 0);
        assert_eq!(s.holdings[&600_000], 100);
    }
}
