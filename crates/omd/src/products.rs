//! Market-data products built from a simple input event stream ([`MarketEvent`]): Securities
//! FullTick (30/31/32, 33/34, 50/51), Standard and Premium aggregate book (53, §2.3 rules),
//! broker queue (54), trade ticker (52), statistics (60), and pass-through builders for the
//! reference, status and price messages. The runtime maps engine events into `MarketEvent`.
//!
//! Book changes arrive as order events (an execution is an `OrderModified` with the remaining
//! quantity or an `OrderDeleted`, plus a `Trade`). Aggregate book, broker queue, ticker and
//! statistics are conflated per batch: `end_batch` emits them for the securities that changed.

use crate::message::*;
use crate::wire::{AsciiStr, BookSide, BrokerQueueSide, IdHashMap, UpdateAction};
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use twinsite_core::limits::OMD_BOOK_LEVELS;
use twinsite_core::{BrokerId, OrderId, Price, Qty, SecurityCode, Side, SpreadTable, Timestamp};

/// Which product a channel carries (§2.1): decides the message types emitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Product {
    SecuritiesStandard,
    SecuritiesPremium,
    SecuritiesFullTick,
    /// The union of the three, plus the complimentary feeds (33/34, 54, 80/81).
    Combined,
    /// OMD-CC (SSE / SZSE northbound): 610, 611, 621, 655 top of book, 660 statistics.
    ChinaConnect,
}

impl Product {
    /// True if the product carries messages of `msg_type` (the OMI per-product lists).
    pub fn carries(self, msg_type: u16) -> bool {
        const STANDARD: &[u16] = &[
            10, 11, 13, 14, 20, 21, 22, 23, 40, 41, 43, 44, 52, 53, 54, 56, 60, 61, 62, 100, 105,
        ];
        const PREMIUM: &[u16] = &[
            10, 11, 13, 14, 20, 21, 22, 23, 40, 41, 43, 44, 50, 51, 53, 56, 60, 61, 62, 100, 105,
        ];
        const FULL_TICK: &[u16] = &[
            10, 11, 13, 14, 20, 21, 23, 30, 31, 32, 41, 43, 50, 51, 56, 100, 105,
        ];
        match self {
            Product::SecuritiesStandard => STANDARD.contains(&msg_type),
            Product::SecuritiesPremium => PREMIUM.contains(&msg_type),
            Product::SecuritiesFullTick => FULL_TICK.contains(&msg_type),
            Product::Combined => {
                STANDARD.contains(&msg_type)
                    || PREMIUM.contains(&msg_type)
                    || FULL_TICK.contains(&msg_type)
                    || matches!(msg_type, 33 | 34 | 54 | 80 | 81)
            }
            Product::ChinaConnect => matches!(msg_type, 100 | 105 | 610 | 611 | 621 | 655 | 660),
        }
    }
}

/// The input the runtime feeds in. Prices are `twinsite_core::Price` (1/1000), checked into
/// Int32 at this edge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MarketEvent {
    OrderAdded {
        security: SecurityCode,
        order_id: OrderId,
        side: Side,
        price: Price,
        qty: Qty,
        broker: BrokerId,
        /// Odd-lot orders go to 33/34, not to the board-lot book.
        odd_lot: bool,
    },
    /// Quantity change (partial fill or reduction); priority is kept.
    OrderModified {
        security: SecurityCode,
        order_id: OrderId,
        qty: Qty,
    },
    OrderDeleted {
        security: SecurityCode,
        order_id: OrderId,
    },
    Trade {
        security: SecurityCode,
        /// The engine's execution id; used to find the trade again on a cancel.
        exec_id: u64,
        price: Price,
        qty: Qty,
        /// TrdType (0 automatch, 4, 22, 100–104).
        trd_type: i16,
        time: Timestamp,
    },
    TradeCancelled {
        security: SecurityCode,
        exec_id: u64,
    },
    ShortSellTotals {
        security: SecurityCode,
        shares: u32,
        turnover: i64,
    },
    SecurityStatus {
        security: SecurityCode,
        halted: bool,
    },
    Nominal {
        security: SecurityCode,
        price: Price,
    },
    Iep {
        security: SecurityCode,
        /// `None`: no IEP (price 0).
        price: Option<Price>,
        qty: Qty,
    },
    ReferencePrice {
        security: SecurityCode,
        reference: Price,
        lower: Price,
        upper: Price,
    },
    ClosingPrice {
        security: SecurityCode,
        price: Price,
        number_of_trades: u32,
    },
    OrderImbalance {
        security: SecurityCode,
        /// b'N', b'B', b'S' or b' '.
        direction: u8,
        qty: Qty,
    },
    /// Reference data and other messages passed through as built (10, 11, 13, 14, 20, 22,
    /// 23, 44, 61, 70, 71, 80, 81): emitted if the product carries them.
    PassThrough(Box<Message>),
}

/// An input the builder cannot turn into a message (the caller's fault).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProductError {
    #[error("price {0} does not fit an OMD Int32 price")]
    PriceOutOfRange(i64),
    #[error("quantity {0} does not fit an OMD Uint32 quantity")]
    QtyOutOfRange(u64),
    #[error("broker {0} does not fit an OMD Uint16 broker number")]
    BrokerOutOfRange(u32),
    #[error("security {0} does not fit")]
    SecurityOutOfRange(u32),
    #[error("order {0} is already in the book")]
    DuplicateOrder(u64),
    #[error("order {0} is not in the book")]
    UnknownOrder(u64),
    #[error("execution {0} is not a known trade")]
    UnknownTrade(u64),
}

/// True if `price` is at most `max_ticks` ticks (spreads of `table`) away from `best` on `side`,
/// worse or equal, and on the table's grid as seen from `best`.
pub fn within_ticks(
    table: SpreadTable,
    side: BookSide,
    best: i32,
    price: i32,
    max_ticks: u32,
) -> bool {
    let (best, price) = (Price(best as i64), Price(price as i64));
    let worse_or_equal = match side {
        BookSide::Bid => price <= best,
        BookSide::Offer => price >= best,
    };
    if !worse_or_equal {
        return false;
    }
    let n = table.spreads_between(best, price, max_ticks);
    let landed = match side {
        BookSide::Bid => table.shift(best, -(n as i32)),
        BookSide::Offer => table.shift(best, n as i32),
    };
    n <= max_ticks && landed == price
}

/// Ticks (spreads of `table`) between `best` and a worse `price`, at most `cap`.
fn ticks_from_best(table: SpreadTable, side: BookSide, best: i32, price: i32, cap: u32) -> u32 {
    let worse = match side {
        BookSide::Bid => price < best,
        BookSide::Offer => price > best,
    };
    if !worse {
        return 0;
    }
    table
        .spreads_between(Price(best as i64), Price(price as i64), cap)
        .min(cap)
}

#[derive(Debug, Clone, Copy)]
struct BookOrder {
    side: BookSide,
    price: i32,
    qty: u32,
    broker: u16,
    /// Arrival rank among the builder's board-lot orders (time priority of snapshots).
    arrival: u64,
}

/// Order ids per page of [`Orders`].
const ORDER_PAGE: u64 = 256;
/// Most pages [`Orders`] spans (ids further from the others go to its hash map).
const ORDER_MAX_PAGES: u64 = 1 << 16;

#[derive(Debug, Clone, Copy)]
struct OrderSlot {
    security: u32,
    order: BookOrder,
}

#[derive(Debug, Clone)]
struct OrderPage {
    used: u32,
    slots: [Option<OrderSlot>; ORDER_PAGE as usize],
}

/// Every resting board-lot order of a channel, by (security code, order id): one table for
/// all securities. The exchange numbers orders in arrival order across the market, so most
/// orders sit in pages indexed by order id (an order is found by its id's page and slot; new
/// orders land next to the last ones, which a hash table would scatter); a page is freed
/// once its last order goes. Ids far from the others (more than [`ORDER_MAX_PAGES`] pages)
/// or already used in another security go to a hash map.
#[derive(Debug, Clone, Default)]
struct Orders {
    /// Page `i` holds ids `(first_page + i) * ORDER_PAGE ..` (None: no order there).
    pages: VecDeque<Option<Box<OrderPage>>>,
    first_page: u64,
    other: IdHashMap<(u32, u64), BookOrder>,
    /// The last page freed (empty), for the next page needed.
    spare: Option<Box<OrderPage>>,
}

impl Orders {
    /// The page and slot of `id`, if its page is in the window.
    #[inline]
    fn place(&self, id: u64) -> Option<(usize, usize)> {
        let page = (id / ORDER_PAGE).checked_sub(self.first_page)?;
        (page < self.pages.len() as u64).then_some((page as usize, (id % ORDER_PAGE) as usize))
    }

    #[inline]
    fn slot(&self, security: u32, id: u64) -> Option<&OrderSlot> {
        let (page, slot) = self.place(id)?;
        let slot = self.pages[page].as_ref()?.slots[slot].as_ref()?;
        (slot.security == security).then_some(slot)
    }

    /// Read the slot of (security, id) without using it: loads issued one after the other
    /// for a batch of orders overlap their cache misses. Returns the order's quantity (0 if
    /// none), to be fed to `black_box`.
    #[inline]
    fn touch(&self, security: u32, id: u64) -> u32 {
        self.slot(security, id).map_or(0, |s| s.order.qty)
    }

    fn get(&self, security: u32, id: u64) -> Option<&BookOrder> {
        match self.slot(security, id) {
            Some(slot) => Some(&slot.order),
            None if self.other.is_empty() => None,
            None => self.other.get(&(security, id)),
        }
    }

    fn get_mut(&mut self, security: u32, id: u64) -> Option<&mut BookOrder> {
        if self.slot(security, id).is_some() {
            let (page, slot) = self.place(id)?;
            let slot = self.pages[page].as_mut()?.slots[slot].as_mut()?;
            return Some(&mut slot.order);
        }
        self.other.get_mut(&(security, id))
    }

    /// Add an order; false (and nothing changed) if (security, id) is already there.
    fn insert(&mut self, security: u32, id: u64, order: BookOrder) -> bool {
        if self.get(security, id).is_some() {
            return false;
        }
        let page_no = id / ORDER_PAGE;
        if self.pages.is_empty() {
            self.first_page = page_no;
        }
        let end = self.first_page + self.pages.len() as u64;
        if end.max(page_no + 1) - self.first_page.min(page_no) <= ORDER_MAX_PAGES {
            while page_no < self.first_page {
                self.pages.push_front(None);
                self.first_page -= 1;
            }
            while page_no >= self.first_page + self.pages.len() as u64 {
                self.pages.push_back(None);
            }
            let spare = &mut self.spare;
            let page = self.pages[(page_no - self.first_page) as usize].get_or_insert_with(|| {
                spare.take().unwrap_or_else(|| {
                    Box::new(OrderPage {
                        used: 0,
                        slots: [None; ORDER_PAGE as usize],
                    })
                })
            });
            let slot = &mut page.slots[(id % ORDER_PAGE) as usize];
            if slot.is_none() {
                *slot = Some(OrderSlot { security, order });
                page.used += 1;
                return true;
            }
            // The slot holds the same id in another security.
        }
        self.other.insert((security, id), order);
        true
    }

    fn remove(&mut self, security: u32, id: u64) -> Option<BookOrder> {
        if self.slot(security, id).is_none() {
            return self.other.remove(&(security, id));
        }
        let (page, slot) = self.place(id)?;
        let p = self.pages[page].as_mut()?;
        let removed = p.slots[slot].take()?.order;
        p.used -= 1;
        if p.used == 0 {
            // Every slot is empty again: the page is kept for the next one needed.
            self.spare = self.pages[page].take();
            self.trim();
        }
        Some(removed)
    }

    /// Drop empty pages at both ends of the window.
    fn trim(&mut self) {
        while matches!(self.pages.front(), Some(None)) {
            self.pages.pop_front();
            self.first_page += 1;
        }
        while matches!(self.pages.back(), Some(None)) {
            self.pages.pop_back();
        }
    }

    /// Every order as (security, order id, order), in no particular order.
    fn iter(&self) -> impl Iterator<Item = (u32, u64, &BookOrder)> {
        let first = self.first_page;
        self.pages
            .iter()
            .enumerate()
            .filter_map(move |(i, p)| p.as_ref().map(|p| (first + i as u64, p)))
            .flat_map(|(page_no, p)| {
                p.slots.iter().enumerate().filter_map(move |(k, s)| {
                    s.as_ref()
                        .map(|s| (s.security, page_no * ORDER_PAGE + k as u64, &s.order))
                })
            })
            .chain(self.other.iter().map(|(&(sec, id), o)| (sec, id, o)))
    }
}

/// The price levels of one security, as a builder whose product publishes them tracks them
/// (the orders themselves are in the builder's [`Orders`]).
#[derive(Debug, Clone, Default)]
struct SecurityBook {
    /// Per side: price -> order ids in time priority. Kept only by products that publish
    /// price levels (53, 54, 655): see [`ProductBuilder::keeps_levels`].
    levels: [BTreeMap<i32, VecDeque<u64>>; 2],
    /// The security's spread table, from its Security Definition (11); Part A until one is seen.
    table: Option<SpreadTable>,
}

impl SecurityBook {
    fn table(&self) -> SpreadTable {
        self.table.unwrap_or(SpreadTable::PartA)
    }

    /// Price levels best first.
    fn levels_best_first(&self, side: BookSide) -> Vec<(i32, &VecDeque<u64>)> {
        let levels = &self.levels[side.index()];
        match side {
            BookSide::Bid => levels.iter().rev().map(|(p, q)| (*p, q)).collect(),
            BookSide::Offer => levels.iter().map(|(p, q)| (*p, q)).collect(),
        }
    }

    /// The levels a client must see: within 10 ticks of best (9 spreads), at most 10.
    fn visible_levels(
        &self,
        orders: &Orders,
        security: u32,
        side: BookSide,
    ) -> Vec<crate::image::Level> {
        let all = self.levels_best_first(side);
        let Some(&(best, _)) = all.first() else {
            return Vec::new();
        };
        all.iter()
            .take(OMD_BOOK_LEVELS)
            .take_while(|(price, _)| {
                within_ticks(self.table(), side, best, *price, OMD_BOOK_LEVELS as u32 - 1)
            })
            .map(|(price, queue)| crate::image::Level {
                price: *price,
                aggregate_quantity: queue
                    .iter()
                    .filter_map(|id| orders.get(security, *id))
                    .map(|o| o.qty as u64)
                    .sum(),
                number_of_orders: queue.len() as u32,
            })
            .collect()
    }

    /// Broker queue items of one side: brokers at the best price, then for each further
    /// price a spread marker (spreads from best) followed by its brokers; at most 40.
    fn broker_items(
        &self,
        orders: &Orders,
        security: u32,
        side: BookSide,
    ) -> (Vec<BrokerQueueItem>, bool) {
        let mut items = Vec::new();
        let all = self.levels_best_first(side);
        let best = all.first().map(|(p, _)| *p);
        for (i, (price, queue)) in all.iter().enumerate() {
            if i > 0 {
                let spreads =
                    ticks_from_best(self.table(), side, best.unwrap_or(*price), *price, 255);
                items.push(BrokerQueueItem::Spread(spreads as u16));
            }
            for id in queue.iter() {
                if let Some(order) = orders.get(security, *id) {
                    items.push(BrokerQueueItem::Broker(order.broker));
                }
            }
            if items.len() > BrokerQueue::MAX_ITEMS {
                break;
            }
        }
        let more = items.len() > BrokerQueue::MAX_ITEMS;
        items.truncate(BrokerQueue::MAX_ITEMS);
        if matches!(items.last(), Some(BrokerQueueItem::Spread(_))) {
            items.pop();
        }
        (items, more)
    }
}

#[derive(Debug, Clone, Copy)]
struct TradeInfo {
    trade_id: u32,
    ticker_id: u32,
    price: i32,
    qty: u32,
    cancelled: bool,
}

#[derive(Debug, Clone, Default)]
struct SecurityTrades {
    next_trade_id: u32,
    next_ticker_id: u32,
    /// Every trade of the day by execution id, in increasing execution id (the engine numbers
    /// executions in order, so recording is a push; a lookup is a binary search).
    by_exec: Vec<(u64, TradeInfo)>,
    /// Ticker id -> (ticker as last sent or pending, remaining quantity).
    tickers: BTreeMap<u32, TradeTicker>,
    pending_ticker: Option<u32>,
    short_sell: (u32, i64),
}

impl SecurityTrades {
    fn record(&mut self, exec_id: u64, info: TradeInfo) {
        match self.by_exec.last() {
            Some(&(last, _)) if last >= exec_id => match self.find(exec_id) {
                Ok(at) => self.by_exec[at].1 = info,
                Err(at) => self.by_exec.insert(at, (exec_id, info)),
            },
            _ => self.by_exec.push((exec_id, info)),
        }
    }

    fn find(&self, exec_id: u64) -> Result<usize, usize> {
        self.by_exec.binary_search_by_key(&exec_id, |(e, _)| *e)
    }

    fn get(&self, exec_id: u64) -> Option<&TradeInfo> {
        self.find(exec_id).ok().map(|at| &self.by_exec[at].1)
    }

    fn get_mut(&mut self, exec_id: u64) -> Option<&mut TradeInfo> {
        self.find(exec_id).ok().map(|at| &mut self.by_exec[at].1)
    }

    fn trades(&self) -> impl Iterator<Item = &TradeInfo> {
        self.by_exec.iter().map(|(_, t)| t)
    }
}

/// Builds one channel's messages from [`MarketEvent`]s.
#[derive(Debug, Clone)]
pub struct ProductBuilder {
    product: Product,
    /// `product.carries` of every MsgType below 1024, one bit each (looked up per message).
    carried: [u64; 16],
    /// The product carries Trade Ticker (52): only then are tickers kept.
    keeps_tickers: bool,
    orders: Orders,
    /// Price levels per security (only when `keeps_levels`).
    books: IdHashMap<u32, SecurityBook>,
    trades: IdHashMap<u32, SecurityTrades>,
    /// What clients have been told: aggregate levels and broker queues per security.
    published_aggregate: BTreeMap<u32, crate::image::AggregateBook>,
    published_queues: BTreeMap<(u32, usize), (Vec<BrokerQueueItem>, bool)>,
    published_top: BTreeMap<u32, CcTopOfBook>,
    dirty_books: BTreeSet<u32>,
    dirty_stats: BTreeSet<u32>,
    /// Spread table per security, from Security Definitions (11) passed through.
    spread_tables: IdHashMap<u32, SpreadTable>,
    /// The product publishes price levels (aggregate book 53, broker queue 54, OMD-CC top of
    /// book 655), so the builder keeps each level's order queue and marks changed books. A
    /// FullTick channel needs only each order's side and price.
    keeps_levels: bool,
    /// Board-lot orders added so far (the next order's arrival rank).
    arrivals: u64,
}

impl ProductBuilder {
    pub fn new(product: Product) -> ProductBuilder {
        ProductBuilder {
            keeps_levels: [
                AggregateOrderBookUpdate::MSG_TYPE,
                BrokerQueue::MSG_TYPE,
                CcTopOfBook::MSG_TYPE,
            ]
            .into_iter()
            .any(|t| product.carries(t)),
            carried: {
                let mut bits = [0u64; 16];
                for t in 0..1024u16 {
                    if product.carries(t) {
                        bits[t as usize / 64] |= 1 << (t % 64);
                    }
                }
                bits
            },
            keeps_tickers: product.carries(TradeTicker::MSG_TYPE),
            product,
            orders: Orders::default(),
            books: IdHashMap::default(),
            trades: IdHashMap::default(),
            published_aggregate: BTreeMap::new(),
            published_queues: BTreeMap::new(),
            published_top: BTreeMap::new(),
            dirty_books: BTreeSet::new(),
            dirty_stats: BTreeSet::new(),
            spread_tables: IdHashMap::default(),
            arrivals: 0,
        }
    }

    /// [`Product::carries`] of this builder's product, from the bitset.
    #[inline]
    fn carries(&self, msg_type: u16) -> bool {
        let t = msg_type as usize;
        t < 1024 && self.carried[t / 64] & (1 << (t % 64)) != 0
    }

    pub fn product(&self) -> Product {
        self.product
    }

    /// Read where the resting order (security, order id) is kept, changing nothing: a caller
    /// about to apply a batch of events touches the orders they delete or modify first, so
    /// their cache misses overlap instead of coming one after another. Returns a value to
    /// feed to `std::hint::black_box`.
    #[inline]
    pub fn touch_order(&self, security: SecurityCode, order_id: OrderId) -> u32 {
        self.orders.touch(security.0, order_id.0)
    }

    /// The board-lot order book as a refresh snapshot shows it: one Add Order (30) per resting
    /// order, in arrival order across securities; `None` if the product carries no Add Order.
    /// The same messages, in the same order, as [`MarketImage::snapshot_messages`] of an image
    /// built from this builder's output (the refresh service of a live channel takes them from
    /// here instead of keeping a second copy of every order).
    ///
    /// [`MarketImage::snapshot_messages`]: crate::image::MarketImage::snapshot_messages
    pub fn snapshot_orders(&self) -> Option<Vec<Message>> {
        if !self.carries(AddOrder::MSG_TYPE) {
            return None;
        }
        let mut orders: Vec<(u64, Message)> = Vec::new();
        for (security_code, order_id, o) in self.orders.iter() {
            orders.push((
                o.arrival,
                AddOrder {
                    security_code,
                    order_id,
                    price: o.price,
                    quantity: o.qty,
                    side: o.side,
                    order_type: AsciiStr::from_char(b'2'),
                    order_book_position: 0,
                }
                .into(),
            ));
        }
        // Arrival ranks are unique: the map's iteration order does not show.
        orders.sort_unstable_by_key(|(arrival, _)| *arrival);
        Some(orders.into_iter().map(|(_, m)| m).collect())
    }

    /// Turn one event into messages appended to `out` (only the product's types). On error
    /// nothing is emitted and the builder's state is unchanged.
    pub fn on_event(
        &mut self,
        event: &MarketEvent,
        out: &mut Vec<Message>,
    ) -> Result<(), ProductError> {
        let start = out.len();
        if let Err(e) = self.build(event, out) {
            out.truncate(start);
            return Err(e);
        }
        if matches!(
            event,
            MarketEvent::OrderAdded { .. }
                | MarketEvent::OrderModified { .. }
                | MarketEvent::OrderDeleted { .. }
                | MarketEvent::Trade { .. }
        ) {
            // The order and trade paths push only what the product carries (the bulk of
            // the flow: no second look at each message).
            return Ok(());
        }
        // Keep the product's types in order, without a temporary vector per event.
        let mut kept = start;
        for i in start..out.len() {
            if self.carries(out[i].msg_type()) {
                if kept != i {
                    out.swap(kept, i);
                }
                kept += 1;
            }
        }
        out.truncate(kept);
        Ok(())
    }

    /// End of a matching burst / batch: aggregate book updates (53), broker queues (54),
    /// pending trade tickers (52) and statistics (60) for what changed.
    pub fn end_batch(&mut self, out: &mut Vec<Message>) {
        let mut emitted = Vec::new();
        // Only what the product carries is computed (the runtime's publishing cost).
        let product = self.product;
        for security in std::mem::take(&mut self.dirty_books) {
            if product.carries(AggregateOrderBookUpdate::MSG_TYPE) {
                self.emit_aggregate(security, &mut emitted);
            }
            if product.carries(BrokerQueue::MSG_TYPE) {
                self.emit_broker_queues(security, &mut emitted);
            }
            if product.carries(CcTopOfBook::MSG_TYPE) {
                self.emit_top_of_book(security, &mut emitted);
            }
        }
        let mut pending: Vec<u32> = self
            .trades
            .iter()
            .filter(|(_, t)| t.pending_ticker.is_some())
            .map(|(s, _)| *s)
            .collect();
        // In security order (the map's order is arbitrary).
        pending.sort_unstable();
        for security in pending {
            self.flush_ticker(security, &mut emitted);
        }
        for security in std::mem::take(&mut self.dirty_stats) {
            if product.carries(Statistics::MSG_TYPE) {
                emitted.push(self.statistics(security).into());
            }
            if product.carries(CcStatistics::MSG_TYPE) {
                emitted.push(self.cc_statistics(security).into());
            }
        }
        out.extend(emitted.into_iter().filter(|m| self.carries(m.msg_type())));
    }

    /// Re-send a security's aggregate book after a 74 Orderbook Clear (e.g. after a failover).
    pub fn clear_and_resend_book(&mut self, security: SecurityCode, out: &mut Vec<Message>) {
        let mut emitted = vec![Message::from(AggregateOrderBookUpdate {
            security_code: security.0,
            entries: vec![BookEntry {
                update_action: UpdateAction::OrderBookClear,
                ..BookEntry::default()
            }],
        })];
        self.published_aggregate.remove(&security.0);
        self.emit_aggregate(security.0, &mut emitted);
        out.extend(emitted.into_iter().filter(|m| self.carries(m.msg_type())));
    }

    fn build(&mut self, event: &MarketEvent, out: &mut Vec<Message>) -> Result<(), ProductError> {
        match *event {
            MarketEvent::OrderAdded {
                security,
                order_id,
                side,
                price,
                qty,
                broker,
                odd_lot,
            } => self.order_added(security, order_id, side, price, qty, broker, odd_lot, out),
            MarketEvent::OrderModified {
                security,
                order_id,
                qty,
            } => self.order_modified(security, order_id, qty, out),
            MarketEvent::OrderDeleted { security, order_id } => {
                self.order_deleted(security, order_id, out)
            }
            MarketEvent::Trade {
                security,
                exec_id,
                price,
                qty,
                trd_type,
                time,
            } => self.trade(security, exec_id, price, qty, trd_type, time, out),
            MarketEvent::TradeCancelled { security, exec_id } => {
                self.trade_cancelled(security, exec_id, out)
            }
            MarketEvent::ShortSellTotals {
                security,
                shares,
                turnover,
            } => {
                self.trades.entry(security.0).or_default().short_sell = (shares, turnover);
                out.push(self.statistics(security.0).into());
                Ok(())
            }
            MarketEvent::SecurityStatus { security, halted } => {
                let status = if halted { 2 } else { 3 };
                out.push(
                    SecurityStatus {
                        security_code: security.0,
                        suspension_indicator: status,
                    }
                    .into(),
                );
                out.push(
                    CcSecurityStatus {
                        security_code: security.0,
                        security_trading_status: status,
                        trading_phase_code: AsciiStr::default(),
                    }
                    .into(),
                );
                Ok(())
            }
            MarketEvent::Nominal { security, price } => {
                out.push(
                    NominalPrice {
                        security_code: security.0,
                        nominal_price: omd_price(price)?,
                    }
                    .into(),
                );
                Ok(())
            }
            MarketEvent::Iep {
                security,
                price,
                qty,
            } => {
                out.push(
                    IndicativeEquilibriumPrice {
                        security_code: security.0,
                        price: omd_price(price.unwrap_or(Price::ZERO))?,
                        aggregate_quantity: qty.0,
                    }
                    .into(),
                );
                Ok(())
            }
            MarketEvent::ReferencePrice {
                security,
                reference,
                lower,
                upper,
            } => {
                out.push(
                    ReferencePrice {
                        security_code: security.0,
                        reference_price: omd_price(reference)?,
                        lower_price: omd_price(lower)?,
                        upper_price: omd_price(upper)?,
                    }
                    .into(),
                );
                Ok(())
            }
            MarketEvent::ClosingPrice {
                security,
                price,
                number_of_trades,
            } => {
                let number_of_trades = match self.product {
                    Product::SecuritiesStandard => 0,
                    _ => number_of_trades,
                };
                out.push(
                    ClosingPrice {
                        security_code: security.0,
                        closing_price: omd_price(price)?,
                        number_of_trades,
                    }
                    .into(),
                );
                Ok(())
            }
            MarketEvent::OrderImbalance {
                security,
                direction,
                qty,
            } => {
                out.push(
                    OrderImbalance {
                        security_code: security.0,
                        order_imbalance_direction: AsciiStr::from_char(direction),
                        order_imbalance_quantity: qty.0,
                    }
                    .into(),
                );
                Ok(())
            }
            MarketEvent::PassThrough(ref msg) => {
                if let Message::SecurityDefinition(d) = &**msg {
                    let table = match &d.fields.spread_table_code.0 {
                        b"03" => SpreadTable::PartB,
                        _ => SpreadTable::PartA,
                    };
                    self.spread_tables.insert(d.fields.security_code, table);
                    if let Some(book) = self.books.get_mut(&d.fields.security_code) {
                        book.table = Some(table);
                    }
                }
                out.push((**msg).clone());
                Ok(())
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn order_added(
        &mut self,
        security: SecurityCode,
        order_id: OrderId,
        side: Side,
        price: Price,
        qty: Qty,
        broker: BrokerId,
        odd_lot: bool,
        out: &mut Vec<Message>,
    ) -> Result<(), ProductError> {
        let price = omd_price(price)?;
        let quantity = omd_qty(qty)?;
        let broker_id =
            u16::try_from(broker.0).map_err(|_| ProductError::BrokerOutOfRange(broker.0))?;
        let side = BookSide::from_core(side);
        if odd_lot {
            if !self.carries(AddOddLotOrder::MSG_TYPE) {
                return Ok(());
            }
            out.push(
                AddOddLotOrder {
                    security_code: security.0,
                    order_id: order_id.0,
                    price,
                    quantity,
                    broker_id,
                    side,
                }
                .into(),
            );
            return Ok(());
        }
        let order = BookOrder {
            side,
            price,
            qty: quantity,
            broker: broker_id,
            arrival: self.arrivals + 1,
        };
        if !self.orders.insert(security.0, order_id.0, order) {
            return Err(ProductError::DuplicateOrder(order_id.0));
        }
        self.arrivals += 1;
        if self.keeps_levels {
            let book = self.books.entry(security.0).or_default();
            if book.table.is_none() {
                // Only the price levels need the spread table.
                book.table = self.spread_tables.get(&security.0).copied();
            }
            book.levels[side.index()]
                .entry(price)
                .or_default()
                .push_back(order_id.0);
            self.dirty_books.insert(security.0);
        }
        if !self.carries(AddOrder::MSG_TYPE) {
            return Ok(());
        }
        out.push(
            AddOrder {
                security_code: security.0,
                order_id: order_id.0,
                price,
                quantity,
                side,
                order_type: AsciiStr::from_char(b'2'),
                order_book_position: 0,
            }
            .into(),
        );
        Ok(())
    }

    fn order_modified(
        &mut self,
        security: SecurityCode,
        order_id: OrderId,
        qty: Qty,
        out: &mut Vec<Message>,
    ) -> Result<(), ProductError> {
        let quantity = omd_qty(qty)?;
        let order = self
            .orders
            .get_mut(security.0, order_id.0)
            .ok_or(ProductError::UnknownOrder(order_id.0))?;
        order.qty = quantity;
        let side = order.side;
        if self.keeps_levels {
            self.dirty_books.insert(security.0);
        }
        if !self.carries(ModifyOrder::MSG_TYPE) {
            return Ok(());
        }
        out.push(
            ModifyOrder {
                security_code: security.0,
                order_id: order_id.0,
                quantity,
                side,
                order_book_position: 0,
            }
            .into(),
        );
        Ok(())
    }

    fn order_deleted(
        &mut self,
        security: SecurityCode,
        order_id: OrderId,
        out: &mut Vec<Message>,
    ) -> Result<(), ProductError> {
        let order = self
            .orders
            .remove(security.0, order_id.0)
            .ok_or(ProductError::UnknownOrder(order_id.0))?;
        if self.keeps_levels {
            if let Some(book) = self.books.get_mut(&security.0) {
                let levels = &mut book.levels[order.side.index()];
                if let Some(queue) = levels.get_mut(&order.price) {
                    // Executions and cancels mostly take the queue's first orders.
                    if let Some(at) = queue.iter().position(|id| *id == order_id.0) {
                        queue.remove(at);
                    }
                    if queue.is_empty() {
                        levels.remove(&order.price);
                    }
                }
            }
            self.dirty_books.insert(security.0);
        }
        if !self.carries(DeleteOrder::MSG_TYPE) {
            return Ok(());
        }
        out.push(
            DeleteOrder {
                security_code: security.0,
                order_id: order_id.0,
                side: order.side,
            }
            .into(),
        );
        Ok(())
    }

    #[allow(clippy::too_many_arguments)]
    fn trade(
        &mut self,
        security: SecurityCode,
        exec_id: u64,
        price: Price,
        qty: Qty,
        trd_type: i16,
        time: Timestamp,
        out: &mut Vec<Message>,
    ) -> Result<(), ProductError> {
        let price = omd_price(price)?;
        let quantity = omd_qty(qty)?;
        // TradeTime has microsecond precision.
        let trade_time = time.0 - time.0 % 1_000;
        let keeps_tickers = self.keeps_tickers;
        let pending_matches = keeps_tickers && {
            let trades = self.trades.entry(security.0).or_default();
            trades
                .pending_ticker
                .and_then(|id| trades.tickers.get(&id))
                .is_some_and(|t| t.price == price && t.trd_type == trd_type)
        };
        if !pending_matches {
            self.flush_ticker(security.0, out);
        }
        let trades = self.trades.entry(security.0).or_default();
        trades.next_trade_id += 1;
        let trade_id = trades.next_trade_id;
        let ticker_id = match (pending_matches, trades.pending_ticker) {
            // The product carries no tickers: none kept (ticker id 0 is never used).
            _ if !keeps_tickers => 0,
            (true, Some(id)) => {
                if let Some(ticker) = trades.tickers.get_mut(&id) {
                    ticker.aggregate_quantity += quantity as u64;
                }
                id
            }
            _ => {
                trades.next_ticker_id += 1;
                let id = trades.next_ticker_id;
                trades.tickers.insert(
                    id,
                    TradeTicker {
                        security_code: security.0,
                        ticker_id: id,
                        price,
                        aggregate_quantity: quantity as u64,
                        trade_time,
                        trd_type,
                        trd_cancel_flag: AsciiStr::from_char(b'N'),
                    },
                );
                trades.pending_ticker = Some(id);
                id
            }
        };
        trades.record(
            exec_id,
            TradeInfo {
                trade_id,
                ticker_id,
                price,
                qty: quantity,
                cancelled: false,
            },
        );
        // Overseas trades (104) are excluded from statistics.
        let stats_carried =
            self.carries(Statistics::MSG_TYPE) || self.carries(CcStatistics::MSG_TYPE);
        if trd_type != 104 && stats_carried {
            self.dirty_stats.insert(security.0);
        }
        if !self.carries(Trade::MSG_TYPE) {
            return Ok(());
        }
        out.push(
            Trade {
                security_code: security.0,
                trade_id,
                price,
                quantity,
                trd_type,
                trade_time,
            }
            .into(),
        );
        Ok(())
    }

    fn trade_cancelled(
        &mut self,
        security: SecurityCode,
        exec_id: u64,
        out: &mut Vec<Message>,
    ) -> Result<(), ProductError> {
        let info = self
            .trades
            .get(&security.0)
            .and_then(|t| t.get(exec_id))
            .copied()
            .filter(|info| !info.cancelled)
            .ok_or(ProductError::UnknownTrade(exec_id))?;
        if self.trades[&security.0].pending_ticker == Some(info.ticker_id) {
            self.flush_ticker(security.0, out);
        }
        let trades = self.trades.entry(security.0).or_default();
        if let Some(entry) = trades.get_mut(exec_id) {
            entry.cancelled = true;
        }
        out.push(
            TradeCancel {
                security_code: security.0,
                trade_id: info.trade_id,
            }
            .into(),
        );
        if let Some(ticker) = trades.tickers.get_mut(&info.ticker_id) {
            ticker.aggregate_quantity = ticker.aggregate_quantity.saturating_sub(info.qty as u64);
            ticker.trd_cancel_flag = AsciiStr::from_char(b'Y');
            out.push(ticker.clone().into());
        }
        // Statistics go over every trade of the security: computed only when carried.
        if self.product.carries(Statistics::MSG_TYPE) {
            out.push(self.statistics(security.0).into());
        }
        if self.product.carries(CcStatistics::MSG_TYPE) {
            out.push(self.cc_statistics(security.0).into());
        }
        Ok(())
    }

    fn flush_ticker(&mut self, security: u32, out: &mut Vec<Message>) {
        if let Some(trades) = self.trades.get_mut(&security) {
            if let Some(id) = trades.pending_ticker.take() {
                if let Some(ticker) = trades.tickers.get(&id) {
                    out.push(ticker.clone().into());
                }
            }
        }
    }

    fn statistics(&self, security: u32) -> Statistics {
        let mut stats = Statistics {
            security_code: security,
            ..Statistics::default()
        };
        let Some(trades) = self.trades.get(&security) else {
            return stats;
        };
        let mut live: Vec<&TradeInfo> = trades.trades().filter(|t| !t.cancelled).collect();
        live.sort_by_key(|t| t.trade_id);
        for t in &live {
            stats.shares_traded += t.qty as u64;
            stats.turnover += t.price as i64 * t.qty as i64;
        }
        stats.high_price = live.iter().map(|t| t.price).max().unwrap_or(0);
        stats.low_price = live.iter().map(|t| t.price).min().unwrap_or(0);
        stats.last_price = live.last().map_or(0, |t| t.price);
        stats.vwap = match self.product {
            Product::SecuritiesStandard => 0,
            _ if stats.shares_traded > 0 => (stats.turnover / stats.shares_traded as i64) as i32,
            _ => 0,
        };
        stats.short_sell_shares_traded = trades.short_sell.0;
        stats.short_sell_turnover = trades.short_sell.1;
        stats
    }

    /// OMD-CC Statistics (660): like 60, with the opening (first) price instead of VWAP and
    /// no short-sell fields.
    fn cc_statistics(&self, security: u32) -> CcStatistics {
        let stats = self.statistics(security);
        let opening_price = self
            .trades
            .get(&security)
            .and_then(|t| {
                t.trades()
                    .filter(|i| !i.cancelled)
                    .min_by_key(|i| i.trade_id)
            })
            .map_or(0, |i| i.price);
        CcStatistics {
            security_code: security,
            shares_traded: stats.shares_traded,
            turnover: stats.turnover,
            high_price: stats.high_price,
            low_price: stats.low_price,
            last_price: stats.last_price,
            opening_price,
        }
    }

    /// OMD-CC Top Of Book (655): best bid and ask with the quantity at each, when changed.
    fn emit_top_of_book(&mut self, security: u32, out: &mut Vec<Message>) {
        let mut top = CcTopOfBook {
            security_code: security,
            ..CcTopOfBook::default()
        };
        if let Some(book) = self.books.get(&security) {
            for side in [BookSide::Bid, BookSide::Offer] {
                let best = book
                    .visible_levels(&self.orders, security, side)
                    .first()
                    .copied();
                let (price, qty) = best.map_or((0, 0), |l| (l.price, l.aggregate_quantity));
                match side {
                    BookSide::Bid => (top.bid_price, top.aggregate_bid_quantity) = (price, qty),
                    BookSide::Offer => (top.ask_price, top.aggregate_ask_quantity) = (price, qty),
                }
            }
        }
        if self.published_top.get(&security) != Some(&top) {
            self.published_top.insert(security, top.clone());
            out.push(top.into());
        }
    }

    /// Diff the visible levels against what clients were told, in client order (§2.3).
    fn emit_aggregate(&mut self, security: u32, out: &mut Vec<Message>) {
        let book = self.books.get(&security);
        let mut entries = Vec::new();
        let published = self.published_aggregate.entry(security).or_default();
        for side in [BookSide::Bid, BookSide::Offer] {
            let target = book
                .map(|b| b.visible_levels(&self.orders, security, side))
                .unwrap_or_default();
            let current = &mut published.sides[side.index()];
            entries.extend(diff_levels(side, current, &target));
            debug_assert_eq!(
                current, &target,
                "Invariant: the client view equals the target"
            );
        }
        if !entries.is_empty() {
            out.push(
                AggregateOrderBookUpdate {
                    security_code: security,
                    entries,
                }
                .into(),
            );
        }
    }

    fn emit_broker_queues(&mut self, security: u32, out: &mut Vec<Message>) {
        for (side, bq_side) in [
            (BookSide::Bid, BrokerQueueSide::Buy),
            (BookSide::Offer, BrokerQueueSide::Sell),
        ] {
            let current = self
                .books
                .get(&security)
                .map(|b| b.broker_items(&self.orders, security, side))
                .unwrap_or_default();
            let key = (security, side.index());
            if self.published_queues.get(&key) == Some(&current) {
                continue;
            }
            if current.0.is_empty() && !self.published_queues.contains_key(&key) {
                continue;
            }
            self.published_queues.insert(key, current.clone());
            out.push(
                BrokerQueue {
                    security_code: security,
                    side: bq_side,
                    more: current.1,
                    items: current.0,
                }
                .into(),
            );
        }
    }
}

/// The entries that turn the client's `current` levels into `target`, applying each to
/// `current` with the client's rules as it goes (so implicit shifts and the truncation at 10
/// levels are accounted for: no delete is sent for a level pushed past level 10).
pub fn diff_levels(
    side: BookSide,
    current: &mut Vec<crate::image::Level>,
    target: &[crate::image::Level],
) -> Vec<BookEntry> {
    let mut entries = Vec::new();
    let entry = |level: &crate::image::Level, index: usize, action| BookEntry {
        aggregate_quantity: level.aggregate_quantity,
        price: level.price,
        number_of_orders: level.number_of_orders,
        side,
        price_level: index as u8 + 1,
        update_action: action,
    };
    let mut index = 0;
    while index < current.len().max(target.len()) {
        match (current.get(index), target.get(index)) {
            (Some(have), Some(want)) if have.price == want.price => {
                if have != want {
                    entries.push(entry(want, index, UpdateAction::Change));
                    current[index] = *want;
                }
                index += 1;
            }
            (Some(have), Some(want)) if side.better(want.price, have.price) => {
                entries.push(entry(want, index, UpdateAction::New));
                current.insert(index, *want);
                current.truncate(OMD_BOOK_LEVELS);
                index += 1;
            }
            (Some(have), _) => {
                entries.push(entry(have, index, UpdateAction::Delete));
                current.remove(index);
            }
            (None, Some(want)) => {
                entries.push(entry(want, index, UpdateAction::New));
                current.push(*want);
                index += 1;
            }
            (None, None) => break,
        }
    }
    entries
}

fn omd_price(price: Price) -> Result<i32, ProductError> {
    price
        .to_omd()
        .map_err(|_| ProductError::PriceOutOfRange(price.0))
}

fn omd_qty(qty: Qty) -> Result<u32, ProductError> {
    u32::try_from(qty.0).map_err(|_| ProductError::QtyOutOfRange(qty.0))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::image::{Level, MarketImage};
    use proptest::prelude::*;

    proptest! {
        /// The order table answers as a map keyed by (security, order id) would, whatever the
        /// ids: increasing, reused in another security, far apart, below the first page.
        #[test]
        fn order_table_is_a_map_by_security_and_order_id(ops in proptest::collection::vec((0u8..4, 0u32..3, 0u64..6, 0u64..2_000), 1..400)) {
            let mut table = Orders::default();
            let mut model = BTreeMap::new();
            for (i, (op, security, band, low)) in ops.into_iter().enumerate() {
                // Ids in bands: adjacent, a few pages apart, beyond the page window, huge.
                let id = [0, 700, 5_000, ORDER_PAGE * ORDER_MAX_PAGES * 3, u64::MAX / 2, u64::MAX - 2_000][band as usize] + low;
                let order = BookOrder { side: BookSide::Bid, price: i as i32, qty: 1, broker: 2, arrival: i as u64 };
                match op {
                    0 | 1 => {
                        let fresh = !model.contains_key(&(security, id));
                        prop_assert_eq!(table.insert(security, id, order), fresh);
                        if fresh {
                            model.insert((security, id), order);
                        }
                    }
                    2 => {
                        let got = table.remove(security, id).map(|o| o.arrival);
                        prop_assert_eq!(got, model.remove(&(security, id)).map(|o| o.arrival));
                    }
                    _ => {
                        if let Some(o) = table.get_mut(security, id) {
                            o.qty += 1;
                        }
                        if let Some(o) = model.get_mut(&(security, id)) {
                            o.qty += 1;
                        }
                    }
                }
                let mut all: Vec<_> = table.iter().map(|(s, id, o)| (s, id, o.arrival, o.qty)).collect();
                all.sort_unstable();
                let want: Vec<_> = model.iter().map(|(&(s, id), o)| (s, id, o.arrival, o.qty)).collect();
                prop_assert_eq!(all, want);
                prop_assert!(table.pages.len() as u64 <= ORDER_MAX_PAGES);
            }
        }
    }

    fn add(id: u64, side: Side, price: i64, qty: u64, broker: u32) -> MarketEvent {
        MarketEvent::OrderAdded {
            security: SecurityCode(700),
            order_id: OrderId(id),
            side,
            price: Price(price),
            qty: Qty(qty),
            broker: BrokerId(broker),
            odd_lot: false,
        }
    }

    fn level(price: i32, qty: u64, n: u32) -> Level {
        Level {
            price,
            aggregate_quantity: qty,
            number_of_orders: n,
        }
    }

    #[test]
    fn each_product_carries_its_own_message_types() {
        use Product::*;
        assert!(SecuritiesFullTick.carries(30) && !SecuritiesFullTick.carries(53));
        assert!(!SecuritiesFullTick.carries(52) && !SecuritiesFullTick.carries(60));
        assert!(SecuritiesPremium.carries(50) && SecuritiesPremium.carries(53));
        assert!(!SecuritiesPremium.carries(30) && !SecuritiesPremium.carries(52));
        assert!(SecuritiesStandard.carries(52) && SecuritiesStandard.carries(54));
        assert!(!SecuritiesStandard.carries(50) && !SecuritiesStandard.carries(30));
        assert!(Combined.carries(33) && Combined.carries(80) && !Combined.carries(999));
        let mut ft = ProductBuilder::new(SecuritiesFullTick);
        let mut out = Vec::new();
        ft.on_event(&add(1, Side::Buy, 10_000, 100, 1), &mut out)
            .unwrap();
        ft.end_batch(&mut out);
        let types: Vec<u16> = out.iter().map(Message::msg_type).collect();
        assert_eq!(
            types,
            vec![30],
            "no aggregate book or broker queue on FullTick"
        );
    }

    #[test]
    fn china_connect_publishes_top_of_book_and_statistics() {
        let mut b = ProductBuilder::new(Product::ChinaConnect);
        let mut out = Vec::new();
        let sec = |ev: MarketEvent| match ev {
            MarketEvent::OrderAdded {
                order_id,
                side,
                price,
                qty,
                broker,
                odd_lot,
                ..
            } => MarketEvent::OrderAdded {
                security: SecurityCode(600_519),
                order_id,
                side,
                price,
                qty,
                broker,
                odd_lot,
            },
            other => other,
        };
        b.on_event(&sec(add(1, Side::Buy, 1_500_000, 100, 1)), &mut out)
            .unwrap();
        b.on_event(&sec(add(2, Side::Buy, 1_500_000, 200, 1)), &mut out)
            .unwrap();
        b.on_event(&sec(add(3, Side::Sell, 1_501_000, 300, 1)), &mut out)
            .unwrap();
        b.on_event(
            &MarketEvent::Trade {
                security: SecurityCode(600_519),
                exec_id: 1,
                price: Price(1_500_500),
                qty: Qty(100),
                trd_type: 0,
                time: Timestamp(0),
            },
            &mut out,
        )
        .unwrap();
        b.end_batch(&mut out);
        assert!(out
            .iter()
            .all(|m| Product::ChinaConnect.carries(m.msg_type())));
        assert!(out.iter().any(|m| matches!(m, Message::CcTopOfBook(t)
            if t.bid_price == 1_500_000 && t.aggregate_bid_quantity == 300
                && t.ask_price == 1_501_000 && t.aggregate_ask_quantity == 300)));
        assert!(out.iter().any(|m| matches!(m, Message::CcStatistics(s)
            if s.opening_price == 1_500_500 && s.shares_traded == 100)));
    }

    #[test]
    fn spread_table_part_a() {
        let a = SpreadTable::PartA;
        assert!(within_ticks(a, BookSide::Bid, 10_000, 9_910, 9));
        assert!(!within_ticks(a, BookSide::Bid, 10_000, 9_900, 9));
        assert!(within_ticks(a, BookSide::Offer, 19_950, 20_080, 9));
        assert!(!within_ticks(a, BookSide::Offer, 19_950, 20_100, 9));
        assert!(!within_ticks(a, BookSide::Offer, 19_950, 19_940, 9));
        assert_eq!(ticks_from_best(a, BookSide::Bid, 20_040, 19_990, 255), 3);
        assert_eq!(ticks_from_best(a, BookSide::Offer, 19_990, 20_040, 255), 3);
        assert_eq!(ticks_from_best(a, BookSide::Offer, 19_990, 19_990, 255), 0);
        // Part B (code 03) has a 0.002 tick from 1.00 to 5.00, where Part A has 0.010.
        let b = SpreadTable::PartB;
        assert!(within_ticks(b, BookSide::Offer, 2_000, 2_018, 9));
        assert!(!within_ticks(a, BookSide::Offer, 2_000, 2_018, 9));
    }

    #[test]
    fn better_bid_shifts_levels_and_the_tenth_is_dropped_implicitly() {
        // Ten bids 10.00 down to 9.91, one tick apart; a new best bid at 10.01.
        let mut current: Vec<Level> = (0..10).map(|i| level(10_000 - 10 * i, 100, 1)).collect();
        let mut target = vec![level(10_010, 100, 1)];
        target.extend(current[..9].iter().copied());
        let entries = diff_levels(BookSide::Bid, &mut current, &target);
        assert_eq!(
            entries.len(),
            1,
            "one insert, no explicit delete: {entries:?}"
        );
        assert_eq!(entries[0].update_action, UpdateAction::New);
        assert_eq!(entries[0].price_level, 1);
        assert_eq!(current, target);
    }

    #[test]
    fn level_beyond_ten_ticks_but_within_ten_levels_is_deleted_explicitly() {
        let mut current = vec![level(10_000, 100, 1), level(9_920, 100, 1)];
        // New best 10.10: 9.92 is now 18 ticks away.
        let target = vec![level(10_100, 100, 1), level(10_000, 100, 1)];
        let entries = diff_levels(BookSide::Bid, &mut current, &target);
        let actions: Vec<_> = entries
            .iter()
            .map(|e| (e.update_action, e.price_level))
            .collect();
        assert_eq!(
            actions,
            vec![(UpdateAction::New, 1), (UpdateAction::Delete, 3)]
        );
        assert_eq!(current, target);
    }

    #[test]
    fn aggregate_book_counts_ticks_on_the_security_definitions_spread_table() {
        // Offers 2.000 and 2.018: nine Part B spreads apart (0.002 tick from 1.00 to 5.00), so
        // both are visible with Part B; on Part A 2.018 is not even on the grid.
        let visible = |code: &str| {
            let mut b = ProductBuilder::new(Product::SecuritiesStandard);
            let mut out = Vec::new();
            let mut def = SecurityDefinition::default();
            def.fields.security_code = 700;
            def.fields.spread_table_code = AsciiStr::new(code);
            b.on_event(
                &MarketEvent::PassThrough(Box::new(Message::from(def))),
                &mut out,
            )
            .unwrap();
            b.on_event(&add(1, Side::Sell, 2_000, 100, 1), &mut out)
                .unwrap();
            b.on_event(&add(2, Side::Sell, 2_018, 100, 1), &mut out)
                .unwrap();
            b.books[&700]
                .visible_levels(&b.orders, 700, BookSide::Offer)
                .len()
        };
        assert_eq!(visible("03"), 2);
        assert_eq!(visible("01"), 1);
    }

    #[test]
    fn revealed_levels_are_added_explicitly_when_the_book_shrinks() {
        let mut b = ProductBuilder::new(Product::SecuritiesStandard);
        let mut out = Vec::new();
        for i in 0..12u64 {
            b.on_event(
                &add(i + 1, Side::Sell, 10_000 + 10 * i as i64, 100, 1),
                &mut out,
            )
            .unwrap();
        }
        b.end_batch(&mut out);
        let mut image = MarketImage::default();
        for m in &out {
            image.apply(m).unwrap();
        }
        assert_eq!(image.aggregate[&700].sides[1].len(), 10);
        out.clear();
        b.on_event(
            &MarketEvent::OrderDeleted {
                security: SecurityCode(700),
                order_id: OrderId(1),
            },
            &mut out,
        )
        .unwrap();
        b.end_batch(&mut out);
        for m in &out {
            image.apply(m).unwrap();
        }
        let offers = &image.aggregate[&700].sides[1];
        assert_eq!(offers.first().unwrap().price, 10_010);
        assert_eq!(
            offers.last().unwrap().price,
            10_100,
            "the 11th level is revealed"
        );
    }

    #[test]
    fn trades_aggregate_into_tickers_and_cancel_reports_the_remainder() {
        let mut b = ProductBuilder::new(Product::Combined);
        let mut out = Vec::new();
        let trade = |exec_id, price| MarketEvent::Trade {
            security: SecurityCode(700),
            exec_id,
            price: Price(price),
            qty: Qty(100),
            trd_type: 0,
            time: Timestamp(1_000_123_456),
        };
        b.on_event(&trade(1, 10_000), &mut out).unwrap();
        b.on_event(&trade(2, 10_000), &mut out).unwrap();
        b.on_event(&trade(3, 10_010), &mut out).unwrap();
        b.end_batch(&mut out);
        let tickers: Vec<_> = out
            .iter()
            .filter_map(|m| match m {
                Message::TradeTicker(t) => Some((t.ticker_id, t.price, t.aggregate_quantity)),
                _ => None,
            })
            .collect();
        assert_eq!(tickers, vec![(1, 10_000, 200), (2, 10_010, 100)]);
        assert!(out.iter().any(|m| matches!(m, Message::Statistics(s)
            if s.shares_traded == 300 && s.high_price == 10_010 && s.vwap == 10_003)));
        out.clear();
        b.on_event(
            &MarketEvent::TradeCancelled {
                security: SecurityCode(700),
                exec_id: 2,
            },
            &mut out,
        )
        .unwrap();
        assert!(out.iter().any(|m| matches!(m, Message::TradeTicker(t)
            if t.ticker_id == 1 && t.aggregate_quantity == 100 && t.trd_cancel_flag.char() == b'Y')));
        assert!(out
            .iter()
            .any(|m| matches!(m, Message::TradeCancel(t) if t.trade_id == 2)));
    }

    #[test]
    fn broker_queue_lists_brokers_and_spread_markers() {
        let mut b = ProductBuilder::new(Product::SecuritiesStandard);
        let mut out = Vec::new();
        b.on_event(&add(1, Side::Buy, 10_000, 100, 11), &mut out)
            .unwrap();
        b.on_event(&add(2, Side::Buy, 10_000, 100, 12), &mut out)
            .unwrap();
        b.on_event(&add(3, Side::Buy, 9_980, 100, 13), &mut out)
            .unwrap();
        b.end_batch(&mut out);
        let queue = out.iter().find_map(|m| match m {
            Message::BrokerQueue(q) if q.side == BrokerQueueSide::Buy => Some(q.items.clone()),
            _ => None,
        });
        assert_eq!(
            queue,
            Some(vec![
                BrokerQueueItem::Broker(11),
                BrokerQueueItem::Broker(12),
                BrokerQueueItem::Spread(2),
                BrokerQueueItem::Broker(13),
            ])
        );
        assert!(
            !out.iter().any(|m| matches!(m, Message::AddOrder(_))),
            "not in SS"
        );
    }

    proptest! {
        /// Random order flow: the client-side aggregate book rebuilt from 53 messages always
        /// equals the levels within 10 ticks of the best computed from the full book.
        #[test]
        fn aggregate_book_matches_the_full_book(ops in proptest::collection::vec((0u8..3, any::<bool>(), 0i64..30, 1u64..5), 1..200)) {
            let mut b = ProductBuilder::new(Product::Combined);
            let mut image = MarketImage::default();
            let mut live: Vec<u64> = Vec::new();
            let mut next_id = 1u64;
            for (op, buy, offset, lots) in ops {
                let mut out = Vec::new();
                let event = match (op, live.is_empty()) {
                    (0, _) | (_, true) => {
                        let side = if buy { Side::Buy } else { Side::Sell };
                        let price = if buy { 9_900 - 10 * offset + 150 } else { 10_000 + 10 * offset - 150 };
                        next_id += 1;
                        live.push(next_id);
                        add(next_id, side, price.max(10), lots * 100, 1 + offset as u32)
                    }
                    (1, false) => MarketEvent::OrderModified {
                        security: SecurityCode(700),
                        order_id: OrderId(live[offset as usize % live.len()]),
                        qty: Qty(lots * 50),
                    },
                    _ => {
                        let id = live.remove(offset as usize % live.len());
                        MarketEvent::OrderDeleted { security: SecurityCode(700), order_id: OrderId(id) }
                    }
                };
                b.on_event(&event, &mut out).unwrap();
                b.end_batch(&mut out);
                for m in &out {
                    image.apply(m).unwrap();
                }
                let book = b.books.get(&700).cloned().unwrap_or_default();
                for side in [BookSide::Bid, BookSide::Offer] {
                    let want = book.visible_levels(&b.orders, 700, side);
                    let have = image.aggregate.get(&700).map(|a| a.sides[side.index()].clone()).unwrap_or_default();
                    prop_assert_eq!(have, want);
                }
            }
        }
    }
}
