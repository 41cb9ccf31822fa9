//! A naive reference matcher for continuous trading: short and obviously correct, no indexes,
//! no linked lists. Every query scans a flat vector. Property tests run random command streams
//! through it and through [`crate::Engine`] and compare every event.
//!
//! Scope: continuous trading (limit, enhanced limit, special limit, all-or-nothing), cancel
//! (including on-behalf-of), amend, mass cancel, cancel-on-disconnect, halts. Auctions are
//! covered by scenario tests instead.

use crate::refdata::Security;
use crate::types::*;
use twinsite_core::limits;
use twinsite_core::{BrokerId, ClOrdId, OrderId, Price, Qty, SecurityCode, Side, Timestamp};

#[derive(Debug, Clone)]
struct O {
    info: OrderInfo,
    short_sell: bool,
    seq: u64,
}

pub struct Oracle {
    secs: Vec<Security>,
    halted: Vec<bool>,
    last_trade: Vec<Option<Price>>,
    trade_seq: Vec<u64>,
    nominal: Vec<Option<Price>>,
    orders: Vec<O>,
    ids: Vec<(BrokerId, ClOrdId, u64)>,
    seq: u64,
    next_order_id: u64,
    next_exec_id: u64,
    next_report_id: u64,
    now: Timestamp,
}

type Rej = (RejectCode, &'static str);

impl Oracle {
    pub fn new(mut secs: Vec<Security>) -> Oracle {
        secs.sort_by_key(|s| s.code);
        let n = secs.len();
        Oracle {
            secs,
            halted: vec![false; n],
            last_trade: vec![None; n],
            trade_seq: vec![0; n],
            nominal: vec![None; n],
            orders: Vec::new(),
            ids: Vec::new(),
            seq: 0,
            next_order_id: 1,
            next_exec_id: 1,
            next_report_id: 1,
            now: Timestamp(0),
        }
    }

    fn si(&self, code: SecurityCode) -> Option<usize> {
        self.secs.iter().position(|s| s.code == code)
    }
    fn id_used(&self, b: BrokerId, c: &ClOrdId) -> bool {
        self.ids.iter().any(|(x, y, _)| *x == b && y == c)
    }
    fn set_id(&mut self, b: BrokerId, c: ClOrdId, v: u64) {
        match self.ids.iter_mut().find(|(x, y, _)| *x == b && *y == c) {
            Some(e) => e.2 = v,
            None => self.ids.push((b, c, v)),
        }
    }
    fn best(&self, si: usize, side: Side) -> Option<Price> {
        let prices = self
            .orders
            .iter()
            .filter(|o| o.info.security == self.secs[si].code && o.info.side == side);
        let prices = prices.filter_map(|o| o.info.price);
        match side {
            Side::Buy => prices.max(),
            Side::Sell => prices.min(),
        }
    }
    fn nominal_of(&self, si: usize) -> Price {
        let base = self.last_trade[si].unwrap_or(self.secs[si].prev_close);
        match (self.best(si, Side::Buy), self.best(si, Side::Sell)) {
            (Some(b), _) if b > base => b,
            (_, Some(a)) if a < base => a,
            _ => base,
        }
    }
    /// Resting orders of a side, in priority order.
    fn queue(&self, si: usize, side: Side) -> Vec<usize> {
        let mut v: Vec<usize> = (0..self.orders.len())
            .filter(|&i| {
                self.orders[i].info.security == self.secs[si].code
                    && self.orders[i].info.side == side
            })
            .collect();
        v.sort_by_key(|&i| {
            let o = &self.orders[i];
            let p = o.info.price.unwrap_or_default().0;
            (if side == Side::Buy { -p } else { p }, o.seq)
        });
        v
    }

    pub fn apply(&mut self, cmd: &Command, ts: Timestamp) -> Vec<Event> {
        self.now = ts.max(self.now);
        let mut out = Vec::new();
        match cmd {
            Command::NewOrder(o) => self.new_order(o, &mut out),
            Command::Cancel(c) => self.cancel(c, &mut out),
            Command::Amend(a) => self.amend(a, &mut out),
            Command::MassCancel(m) => self.mass_cancel(m, &mut out),
            Command::CancelOnDisconnect { session } => {
                let s = *session;
                self.cancel_all(
                    &mut out,
                    CancelReason::Restated(RESTATE_CANCEL_ON_DISCONNECT),
                    None,
                    |o| o.owner.session == s,
                );
            }
            Command::SuspendBroker { broker } => {
                let b = *broker;
                self.cancel_all(
                    &mut out,
                    CancelReason::Restated(RESTATE_BROKER_SUSPENDED),
                    None,
                    |o| o.owner.broker == b,
                );
            }
            Command::Halt { security } | Command::Resume { security } => {
                let h = matches!(cmd, Command::Halt { .. });
                for i in 0..self.secs.len() {
                    if security.is_none() || *security == Some(self.secs[i].code) {
                        if security.is_none() || self.halted[i] != h {
                            out.push(Event::SecurityStatus {
                                security: self.secs[i].code,
                                halted: h,
                            });
                        }
                        self.halted[i] = h;
                    }
                }
            }
            Command::SetPhase(p) => out.push(Event::PhaseChanged { phase: *p }),
            Command::Tick => {}
        }
        out
    }

    fn check(
        &self,
        si: usize,
        side: Side,
        ot: OrderType,
        price: Option<Price>,
        qty: Qty,
    ) -> Result<(), Rej> {
        let s = &self.secs[si];
        if self.halted[si] {
            return Err((RejectCode::Other, "security is halted"));
        }
        if ot.is_auction() {
            return Err((
                RejectCode::Other,
                "order type not allowed in the current trading session",
            ));
        }
        let Some(p) = price else {
            return Err((RejectCode::Other, "price required for this order type"));
        };
        if !s.spread_table.is_valid(p) {
            return Err((
                RejectCode::PriceOutsideBand,
                "price not on the spread table",
            ));
        }
        if qty.0 == 0 || !qty.0.is_multiple_of(s.lot_size) {
            return Err((
                RejectCode::IncorrectQty,
                "quantity is not a whole number of board lots",
            ));
        }
        if qty.0 / s.lot_size > limits::MAX_ORDER_BOARD_LOTS {
            return Err((
                RejectCode::ExceedsLimit,
                "quantity exceeds 3,000 board lots",
            ));
        }
        let n = self.nominal_of(si);
        if p.0 * 9 <= n.0 || p.0 >= n.0 * 9 {
            return Err((
                RejectCode::PriceOutsideBand,
                "price 9 times or more away from the nominal price",
            ));
        }
        let opp = self.best(si, side.opposite());
        let t = s.spread_table;
        let crosses = opp.is_some_and(|o| if side == Side::Buy { p >= o } else { p <= o });
        if let Some(o) = opp {
            if ot == OrderType::Limit && (if side == Side::Buy { p > o } else { p < o }) {
                return Err((
                    RejectCode::PriceOutsideBand,
                    "limit order priced through the best opposite price",
                ));
            }
            // Walk 9 spreads one tick at a time.
            let mut lim = o;
            for _ in 0..limits::ENHANCED_LIMIT_SPREADS {
                lim = if side == Side::Buy {
                    t.up(lim).unwrap_or(lim)
                } else {
                    t.down(lim).unwrap_or(lim)
                };
            }
            if ot == OrderType::EnhancedLimit && (if side == Side::Buy { p > lim } else { p < lim })
            {
                return Err((
                    RejectCode::PriceOutsideBand,
                    "enhanced limit order more than 9 spreads through the best opposite price",
                ));
            }
        }
        if matches!(ot, OrderType::Limit | OrderType::EnhancedLimit) && !crosses {
            let anchor = self.best(si, side).unwrap_or(n);
            // Count ticks from p to the anchor one at a time.
            let mut x = p;
            let mut ticks = 0;
            while (side == Side::Buy && x < anchor) || (side == Side::Sell && x > anchor) {
                x = if side == Side::Buy {
                    t.up(x).unwrap_or(anchor)
                } else {
                    t.down(x).unwrap_or(anchor)
                };
                ticks += 1;
            }
            if ticks > limits::MAX_SPREADS_FROM_BEST {
                return Err((
                    RejectCode::PriceOutsideBand,
                    "price more than 24 spreads from the best price",
                ));
            }
        }
        Ok(())
    }

    fn new_order(&mut self, o: &NewOrder, out: &mut Vec<Event>) {
        let rej = |out: &mut Vec<Event>, code, reason| {
            out.push(Event::Rejected {
                owner: o.owner,
                cl_ord_id: o.cl_ord_id,
                security: o.security,
                side: o.side,
                code,
                reason,
            })
        };
        let Some(si) = self.si(o.security) else {
            return rej(out, RejectCode::Other, "unknown security");
        };
        if self.id_used(o.owner.broker, &o.cl_ord_id) {
            return rej(out, RejectCode::Duplicate, "duplicate client order id");
        }
        if o.short_sell && (o.side != Side::Sell || !self.secs[si].short_sell) {
            return rej(out, RejectCode::Other, "short selling not allowed");
        }
        if let Err((c, r)) = self.check(si, o.side, o.order_type, o.price, o.qty) {
            return rej(out, c, r);
        }
        let limit = o.price.unwrap_or_default();
        if o.order_type == OrderType::SpecialLimitFok {
            let mut avail = 0;
            let mut levels: Vec<Price> = self
                .queue(si, o.side.opposite())
                .iter()
                .filter_map(|&i| self.orders[i].info.price)
                .collect();
            levels.dedup();
            for lp in levels.into_iter().take(limits::MAX_MATCH_QUEUES as usize) {
                let ok = if o.side == Side::Buy {
                    lp <= limit
                } else {
                    lp >= limit
                };
                if !ok || avail >= o.qty.0 {
                    break;
                }
                avail += self
                    .orders
                    .iter()
                    .filter(|x| {
                        x.info.security == o.security
                            && x.info.price == Some(lp)
                            && x.info.side != o.side
                    })
                    .map(|x| x.info.leaves_qty.0)
                    .sum::<u64>();
            }
            if avail < o.qty.0 {
                return rej(
                    out,
                    RejectCode::Other,
                    "all-or-nothing order cannot be filled completely",
                );
            }
        }
        let id = OrderId(self.next_order_id);
        self.next_order_id += 1;
        self.set_id(o.owner.broker, o.cl_ord_id, id.0);
        let info = OrderInfo {
            order_id: id,
            owner: o.owner,
            cl_ord_id: o.cl_ord_id,
            security: o.security,
            side: o.side,
            order_type: o.order_type,
            price: o.price,
            qty: o.qty,
            cum_qty: Qty(0),
            leaves_qty: o.qty,
        };
        out.push(Event::Accepted(info));
        self.process(si, info, o.short_sell, out);
    }

    fn process(&mut self, si: usize, mut info: OrderInfo, short_sell: bool, out: &mut Vec<Event>) {
        let limit = info.price.unwrap_or_default();
        let max_levels = if info.order_type == OrderType::Limit {
            1
        } else {
            limits::MAX_MATCH_QUEUES
        };
        let mut levels = 0;
        while levels < max_levels && info.leaves_qty.0 > 0 {
            let Some(best) = self.best(si, info.side.opposite()) else {
                break;
            };
            if (info.side == Side::Buy && best > limit) || (info.side == Side::Sell && best < limit)
            {
                break;
            }
            for i in self.queue(si, info.side.opposite()) {
                if self.orders[i].info.price != Some(best) || info.leaves_qty.0 == 0 {
                    continue;
                }
                let q = info.leaves_qty.0.min(self.orders[i].info.leaves_qty.0);
                info.cum_qty.0 += q;
                info.leaves_qty.0 -= q;
                let p = &mut self.orders[i].info;
                p.cum_qty.0 += q;
                p.leaves_qty.0 -= q;
                let passive = *p;
                self.trade_seq[si] += 1;
                self.last_trade[si] = Some(best);
                let trade_id = self.trade_seq[si];
                for (o, cp, aggr) in [
                    (info, passive.owner.broker, true),
                    (passive, info.owner.broker, false),
                ] {
                    out.push(Event::Fill {
                        order: o,
                        exec_id: self.next_exec_id,
                        trade_id,
                        price: best,
                        qty: Qty(q),
                        counterparty: cp,
                        aggressor: aggr,
                        kind: MatchKind::Continuous,
                    });
                    self.next_exec_id += 1;
                }
                let (buy, sell) = if info.side == Side::Buy {
                    (info, passive)
                } else {
                    (passive, info)
                };
                out.push(Event::Trade {
                    security: info.security,
                    trade_id,
                    price: best,
                    qty: Qty(q),
                    buyer: buy.owner.broker,
                    seller: sell.owner.broker,
                    buy_order: buy.order_id,
                    sell_order: sell.order_id,
                    aggressor: Some(info.side),
                    kind: MatchKind::Continuous,
                    time: self.now,
                });
                if passive.leaves_qty.0 == 0 {
                    out.push(Event::BookDelete {
                        security: info.security,
                        order_id: passive.order_id,
                        side: passive.side,
                    });
                } else {
                    out.push(Event::BookModify {
                        security: info.security,
                        order_id: passive.order_id,
                        side: passive.side,
                        price: passive.price,
                        qty: passive.leaves_qty,
                    });
                }
            }
            self.orders.retain(|o| o.info.leaves_qty.0 > 0);
            levels += 1;
        }
        if info.leaves_qty.0 > 0 {
            if matches!(
                info.order_type,
                OrderType::SpecialLimit | OrderType::SpecialLimitFok
            ) {
                out.push(Event::Cancelled {
                    order: info,
                    reason: CancelReason::ImmediateOrCancel,
                    by: None,
                });
            } else {
                self.seq += 1;
                self.orders.push(O {
                    info,
                    short_sell,
                    seq: self.seq,
                });
                out.push(Event::BookAdd {
                    security: info.security,
                    order_id: info.order_id,
                    side: info.side,
                    price: info.price,
                    qty: info.leaves_qty,
                    broker: info.owner.broker,
                });
            }
        }
        self.publish_nominal(si, out);
    }

    fn publish_nominal(&mut self, si: usize, out: &mut Vec<Event>) {
        let n = self.nominal_of(si);
        if self.nominal[si] != Some(n) {
            self.nominal[si] = Some(n);
            out.push(Event::Nominal {
                security: self.secs[si].code,
                price: n,
            });
        }
    }

    fn find(
        &self,
        broker: BrokerId,
        orig: Option<&ClOrdId>,
        id: Option<OrderId>,
        sec: SecurityCode,
    ) -> Option<usize> {
        let by_cl = orig
            .and_then(|c| self.ids.iter().find(|(b, x, _)| *b == broker && x == c))
            .map(|e| e.2)
            .filter(|&v| v != 0);
        let want = match (by_cl, id) {
            (Some(a), Some(b)) if a != b.0 => return None,
            (Some(a), _) => a,
            (None, Some(b)) if orig.is_none() => b.0,
            _ => return None,
        };
        self.orders.iter().position(|o| {
            o.info.order_id.0 == want && o.info.owner.broker == broker && o.info.security == sec
        })
    }

    fn remove(
        &mut self,
        i: usize,
        reason: CancelReason,
        by: Option<BrokerId>,
        out: &mut Vec<Event>,
    ) {
        let o = self.orders.remove(i);
        out.push(Event::Cancelled {
            order: o.info,
            reason,
            by,
        });
        out.push(Event::BookDelete {
            security: o.info.security,
            order_id: o.info.order_id,
            side: o.info.side,
        });
        let si = self.si(o.info.security).unwrap_or(0);
        self.publish_nominal(si, out);
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
        self.set_id(c.owner.broker, c.cl_ord_id, 0);
        if c.owning_broker.is_some()
            && (c.owning_broker == Some(c.owner.broker) || c.order_id.is_none())
        {
            return rej(
                out,
                CancelRejectCode::Other,
                "on-behalf-of cancel needs another broker's order id",
            );
        }
        let Some(i) = self.find(
            c.owning_broker.unwrap_or(c.owner.broker),
            c.orig_cl_ord_id.as_ref(),
            c.order_id,
            c.security,
        ) else {
            return rej(out, CancelRejectCode::UnknownOrder, "unknown order");
        };
        if self.orders[i].info.side != c.side {
            return rej(
                out,
                CancelRejectCode::UnknownOrder,
                "side does not match the order",
            );
        }
        match c.owning_broker {
            Some(_) => self.remove(
                i,
                CancelReason::Restated(RESTATE_OBO_SINGLE),
                Some(c.owner.broker),
                out,
            ),
            None => self.remove(i, CancelReason::Requested, None, out),
        }
    }

    fn cancel_all(
        &mut self,
        out: &mut Vec<Event>,
        reason: CancelReason,
        by: Option<BrokerId>,
        pred: impl Fn(&OrderInfo) -> bool,
    ) -> u32 {
        let mut victims = Vec::new();
        for si in 0..self.secs.len() {
            for side in [Side::Buy, Side::Sell] {
                for i in self.queue(si, side) {
                    if pred(&self.orders[i].info) {
                        victims.push(self.orders[i].info.order_id);
                    }
                }
            }
        }
        for id in &victims {
            let i = self
                .orders
                .iter()
                .position(|o| o.info.order_id == *id)
                .expect("victim is live");
            self.remove(i, reason, by, out);
        }
        victims.len() as u32
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
        self.set_id(m.owner.broker, m.cl_ord_id, 0);
        if let MassCancelScope::Security(code) = m.scope {
            if self.si(code).is_none() {
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
        let secs = self.secs.clone();
        let n = self.cancel_all(out, reason, by, |o| {
            let seg = secs
                .iter()
                .find(|s| s.code == o.security)
                .map(|s| s.segment);
            o.owner.broker == broker
                && m.side.is_none_or(|s| s == o.side)
                && match m.scope {
                    MassCancelScope::All => true,
                    MassCancelScope::Security(c) => o.security == c,
                    MassCancelScope::Segment(g) => seg == Some(g),
                }
        });
        report(out, n, None);
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
        let found = self.find(
            a.owner.broker,
            Some(&a.orig_cl_ord_id),
            a.order_id,
            a.security,
        );
        let Some(i) = found.filter(|&i| self.orders[i].info.side == a.side) else {
            self.set_id(a.owner.broker, a.cl_ord_id, 0);
            let reason = if found.is_some() {
                "side does not match the order"
            } else {
                "unknown order"
            };
            return rej(out, CancelRejectCode::UnknownOrder, reason);
        };
        let si = self.si(a.security).unwrap_or(0);
        let o = self.orders[i].clone();
        if self.halted[si] {
            self.set_id(a.owner.broker, a.cl_ord_id, 0);
            return rej(
                out,
                CancelRejectCode::TooLate,
                "amendment not allowed in the current trading session",
            );
        }
        let lot = self.secs[si].lot_size;
        if a.qty.0 <= o.info.cum_qty.0
            || !a.qty.0.is_multiple_of(lot)
            || a.qty.0 / lot > limits::MAX_ORDER_BOARD_LOTS
        {
            self.set_id(a.owner.broker, a.cl_ord_id, 0);
            return rej(
                out,
                CancelRejectCode::Other,
                "amended quantity must be whole board lots above the filled quantity",
            );
        }
        let new_price = a.price.or(o.info.price);
        if new_price == o.info.price && a.qty <= o.info.qty {
            self.set_id(a.owner.broker, a.cl_ord_id, o.info.order_id.0);
            let x = &mut self.orders[i].info;
            x.qty = a.qty;
            x.leaves_qty = Qty(a.qty.0 - x.cum_qty.0);
            x.cl_ord_id = a.cl_ord_id;
            let info = *x;
            out.push(Event::Amended {
                order: info,
                old_order_id: info.order_id,
                orig_cl_ord_id: a.orig_cl_ord_id,
                replaced: false,
            });
            out.push(Event::BookModify {
                security: a.security,
                order_id: info.order_id,
                side: info.side,
                price: info.price,
                qty: info.leaves_qty,
            });
            return;
        }
        self.orders.remove(i);
        out.push(Event::BookDelete {
            security: a.security,
            order_id: o.info.order_id,
            side: o.info.side,
        });
        self.set_id(a.owner.broker, a.cl_ord_id, 0);
        let remaining = Qty(a.qty.0 - o.info.cum_qty.0);
        if let Err((_, reason)) =
            self.check(si, o.info.side, o.info.order_type, new_price, remaining)
        {
            out.push(Event::AmendRejected {
                owner: a.owner,
                cl_ord_id: a.cl_ord_id,
                orig_cl_ord_id: a.orig_cl_ord_id,
                security: a.security,
                code: CancelRejectCode::PriceOutsideBand,
                reason,
            });
            out.push(Event::Cancelled {
                order: o.info,
                reason: CancelReason::Restated(RESTATE_FAILED_REPLACE),
                by: None,
            });
            self.publish_nominal(si, out);
            return;
        }
        let id = OrderId(self.next_order_id);
        self.next_order_id += 1;
        self.set_id(a.owner.broker, a.cl_ord_id, id.0);
        let info = OrderInfo {
            order_id: id,
            cl_ord_id: a.cl_ord_id,
            price: new_price,
            qty: remaining,
            cum_qty: Qty(0),
            leaves_qty: remaining,
            ..o.info
        };
        out.push(Event::Amended {
            order: info,
            old_order_id: o.info.order_id,
            orig_cl_ord_id: a.orig_cl_ord_id,
            replaced: true,
        });
        self.process(si, info, o.short_sell, out);
    }

    /// All resting orders of a security side in priority order.
    pub fn book_orders(&self, code: SecurityCode, side: Side) -> Vec<OrderInfo> {
        match self.si(code) {
            Some(si) => self
                .queue(si, side)
                .into_iter()
                .map(|i| self.orders[i].info)
                .collect(),
            None => Vec::new(),
        }
    }
}
