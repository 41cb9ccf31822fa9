//! The market image a client rebuilds from OMD messages: order-level books (30–34), the
//! aggregate book with the client-side rules of §2.3 (implicit shifts and truncation at 10
//! levels, explicit deletes/adds, 74 clear), broker queues, trade history, and the latest value
//! of every other message. It is also the refresh service's source of snapshots (§3.3).

use crate::message::*;
use crate::wire::{BookSide, BrokerQueueSide, IdHashMap, UpdateAction};
use std::collections::BTreeMap;
use twinsite_core::limits::OMD_BOOK_LEVELS;

/// One visible aggregate level.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Level {
    pub price: i32,
    pub aggregate_quantity: u64,
    pub number_of_orders: u32,
}

/// The aggregate book of one security as the client sees it: at most 10 levels per side,
/// best first. Index 0 is bids, 1 is offers.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AggregateBook {
    pub sides: [Vec<Level>; 2],
}

/// A resting board-lot order of the full order book.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ImageOrder {
    pub side: BookSide,
    pub price: i32,
    pub quantity: u32,
    pub order_type: u8,
    /// Arrival rank (time priority for snapshots); not part of equality.
    arrival: u64,
}

/// A trade as last reported (cancelled trades stay, flagged).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TradeRecord {
    pub trade: Trade,
    pub cancelled: bool,
}

/// Why a message could not be applied: the stream is inconsistent with the image.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ApplyError {
    #[error("security {security}: order {order_id} is not in the book")]
    UnknownOrder { security: u32, order_id: u64 },
    #[error("security {security}: order {order_id} is already in the book")]
    DuplicateOrder { security: u32, order_id: u64 },
    #[error("security {security}: aggregate entry at level {level} does not exist ({action:?})")]
    BadLevel {
        security: u32,
        level: u8,
        action: UpdateAction,
    },
}

/// Everything a client knows about the channel's market.
#[derive(Debug, Clone, Default)]
pub struct MarketImage {
    /// Resting orders by (security, order id); ordered views sort by arrival.
    orders: IdHashMap<(u32, u64), ImageOrder>,
    odd_lots: BTreeMap<(u32, u64), AddOddLotOrder>,
    arrivals: u64,
    pub aggregate: BTreeMap<u32, AggregateBook>,
    pub broker_queues: BTreeMap<(u32, u8), BrokerQueue>,
    pub trades: BTreeMap<(u32, u32), TradeRecord>,
    pub tickers: BTreeMap<(u32, u32), TradeTicker>,
    /// Latest per-security messages keyed by (security, msg_type).
    pub latest: BTreeMap<(u32, u16), Message>,
    /// Latest per-market / per-currency / per-index messages keyed by (msg_type, key bytes).
    pub reference: BTreeMap<(u16, Vec<u8>), Message>,
    pub news: Vec<News>,
}

impl MarketImage {
    /// Apply one message. On error the image is unchanged.
    pub fn apply(&mut self, msg: &Message) -> Result<(), ApplyError> {
        match msg {
            Message::AddOrder(m) => self.add_order(m),
            Message::ModifyOrder(m) => {
                let order = self.order_mut(m.security_code, m.order_id)?;
                order.quantity = m.quantity;
                Ok(())
            }
            Message::DeleteOrder(m) => self
                .orders
                .remove(&(m.security_code, m.order_id))
                .map(|_| ())
                .ok_or(ApplyError::UnknownOrder {
                    security: m.security_code,
                    order_id: m.order_id,
                }),
            Message::AddOddLotOrder(m) => {
                self.odd_lots
                    .insert((m.security_code, m.order_id), m.clone());
                Ok(())
            }
            Message::DeleteOddLotOrder(m) => {
                self.odd_lots.remove(&(m.security_code, m.order_id));
                Ok(())
            }
            Message::AggregateOrderBookUpdate(m) => self.apply_aggregate(m),
            Message::BrokerQueue(m) => {
                let side = match m.side {
                    BrokerQueueSide::Buy => 1,
                    BrokerQueueSide::Sell => 2,
                };
                self.broker_queues
                    .insert((m.security_code, side), m.clone());
                Ok(())
            }
            Message::Trade(m) => {
                let record = TradeRecord {
                    trade: m.clone(),
                    cancelled: false,
                };
                self.trades.insert((m.security_code, m.trade_id), record);
                Ok(())
            }
            Message::TradeCancel(m) => {
                // A trade missed before a refresh (snapshots carry no trades) can still be
                // cancelled later: the cancel is then not applicable to this history.
                if let Some(record) = self.trades.get_mut(&(m.security_code, m.trade_id)) {
                    record.cancelled = true;
                }
                Ok(())
            }
            Message::TradeTicker(m) => {
                self.tickers
                    .insert((m.security_code, m.ticker_id), m.clone());
                Ok(())
            }
            Message::News(m) => {
                self.news.push((**m).clone());
                Ok(())
            }
            Message::SequenceReset(_)
            | Message::DisasterRecoverySignal(_)
            | Message::Logon(_)
            | Message::LogonResponse(_)
            | Message::RetransmissionRequest(_)
            | Message::RetransmissionResponse(_)
            | Message::RefreshComplete(_) => Ok(()),
            other => {
                self.store_latest(other);
                Ok(())
            }
        }
    }

    fn store_latest(&mut self, msg: &Message) {
        if let Some(security) = msg.security_code() {
            self.latest.insert((security, msg.msg_type()), msg.clone());
            return;
        }
        let key = match msg {
            Message::MarketDefinition(m) => m.market_code.0.to_vec(),
            Message::TradingSessionStatus(m) => m.market_code.0.to_vec(),
            Message::CurrencyRate(m) => m.currency_code.0.to_vec(),
            Message::MarketTurnover(m) => [&m.market_code.0[..], &m.currency_code.0[..]].concat(),
            Message::IndexDefinition(m) => m.index_code.0.to_vec(),
            Message::IndexData(m) => m.index_code.0.to_vec(),
            Message::StockConnectDailyQuotaBalance(m) => {
                [&m.stock_connect_market.0[..], &m.trading_direction.0[..]].concat()
            }
            Message::StockConnectMarketTurnover(m) => {
                [&m.stock_connect_market.0[..], &m.trading_direction.0[..]].concat()
            }
            Message::CcMarketDefinition(m) => m.market_code.0.to_vec(),
            _ => Vec::new(),
        };
        self.reference.insert((msg.msg_type(), key), msg.clone());
    }

    fn add_order(&mut self, m: &AddOrder) -> Result<(), ApplyError> {
        let key = (m.security_code, m.order_id);
        match self.orders.entry(key) {
            std::collections::hash_map::Entry::Occupied(_) => Err(ApplyError::DuplicateOrder {
                security: m.security_code,
                order_id: m.order_id,
            }),
            std::collections::hash_map::Entry::Vacant(v) => {
                self.arrivals += 1;
                v.insert(ImageOrder {
                    side: m.side,
                    price: m.price,
                    quantity: m.quantity,
                    order_type: m.order_type.char(),
                    arrival: self.arrivals,
                });
                Ok(())
            }
        }
    }

    fn order_mut(&mut self, security: u32, order_id: u64) -> Result<&mut ImageOrder, ApplyError> {
        self.orders
            .get_mut(&(security, order_id))
            .ok_or(ApplyError::UnknownOrder { security, order_id })
    }

    /// Client rules for 53: entries apply in order; New inserts at PriceLevel and shifts the
    /// levels below down, dropping anything pushed past level 10 (implicit deletion); Delete
    /// removes and shifts up; Change replaces; 74 clears both sides.
    fn apply_aggregate(&mut self, m: &AggregateOrderBookUpdate) -> Result<(), ApplyError> {
        let mut book = self
            .aggregate
            .get(&m.security_code)
            .cloned()
            .unwrap_or_default();
        for entry in &m.entries {
            let levels = &mut book.sides[entry.side.index()];
            let index = (entry.price_level as usize).wrapping_sub(1);
            let level = Level {
                price: entry.price,
                aggregate_quantity: entry.aggregate_quantity,
                number_of_orders: entry.number_of_orders,
            };
            let bad = ApplyError::BadLevel {
                security: m.security_code,
                level: entry.price_level,
                action: entry.update_action,
            };
            match entry.update_action {
                UpdateAction::OrderBookClear => book.sides = Default::default(),
                UpdateAction::New if index <= levels.len() && index < OMD_BOOK_LEVELS => {
                    levels.insert(index, level);
                    levels.truncate(OMD_BOOK_LEVELS);
                }
                UpdateAction::Change if index < levels.len() => levels[index] = level,
                UpdateAction::Delete if index < levels.len() => {
                    levels.remove(index);
                }
                _ => return Err(bad),
            }
        }
        if book.sides.iter().all(Vec::is_empty) {
            self.aggregate.remove(&m.security_code);
        } else {
            self.aggregate.insert(m.security_code, book);
        }
        Ok(())
    }

    /// Forget everything (Sequence Reset, DR in progress).
    pub fn clear(&mut self) {
        *self = MarketImage::default();
    }

    /// Replace the market state with a snapshot's, keeping the trade and ticker history (a
    /// snapshot carries no trades).
    pub fn replace_with_snapshot(&mut self, snapshot: MarketImage) {
        let trades = std::mem::take(&mut self.trades);
        let tickers = std::mem::take(&mut self.tickers);
        *self = snapshot;
        for (key, record) in trades {
            self.trades.entry(key).or_insert(record);
        }
        for (key, ticker) in tickers {
            self.tickers.entry(key).or_insert(ticker);
        }
    }

    /// The full order book of one side of a security: (order id, order), in time priority.
    pub fn orders_of(&self, security: u32) -> Vec<(u64, ImageOrder)> {
        let mut orders: Vec<_> = self
            .orders
            .iter()
            .filter(|((s, _), _)| *s == security)
            .map(|(&(_, id), &o)| (id, o))
            .collect();
        orders.sort_by_key(|(_, o)| o.arrival);
        orders
    }

    pub fn order_count(&self) -> usize {
        self.orders.len()
    }

    /// Messages that rebuild this image (§3.3 snapshot content; no trades or tickers).
    pub fn snapshot_messages(&self) -> Vec<Message> {
        self.snapshot_messages_with(None)
    }

    /// [`MarketImage::snapshot_messages`] with the board-lot orders (Add Order messages in
    /// time priority) given by the caller instead of taken from this image (`None`: from the
    /// image).
    pub fn snapshot_messages_with(&self, board_lot_orders: Option<Vec<Message>>) -> Vec<Message> {
        let mut out: Vec<Message> = Vec::new();
        let reference_first = |t: u16| matches!(t, 10 | 14 | 610);
        out.extend(
            self.reference
                .iter()
                .filter(|((t, _), _)| reference_first(*t))
                .map(|(_, m)| m.clone()),
        );
        out.extend(
            self.latest
                .iter()
                .filter(|((_, t), _)| matches!(t, 11 | 13 | 611))
                .map(|(_, m)| m.clone()),
        );
        out.extend(
            self.reference
                .iter()
                .filter(|((t, _), _)| !reference_first(*t))
                .map(|(_, m)| m.clone()),
        );
        if let Some(orders) = board_lot_orders {
            out.extend(orders);
        } else {
            self.push_orders(&mut out);
        }
        self.push_rest(&mut out);
        out
    }

    /// The board-lot orders as Add Order messages, in time priority.
    fn push_orders(&self, out: &mut Vec<Message>) {
        let mut orders: Vec<_> = self.orders.iter().collect();
        orders.sort_by_key(|(_, o)| o.arrival);
        for (&(security_code, order_id), o) in orders {
            out.push(
                AddOrder {
                    security_code,
                    order_id,
                    price: o.price,
                    quantity: o.quantity,
                    side: o.side,
                    order_type: crate::wire::AsciiStr::from_char(o.order_type),
                    order_book_position: 0,
                }
                .into(),
            );
        }
    }

    /// The snapshot after the board-lot orders: odd lots, aggregate books, broker queues, the
    /// latest values, news.
    fn push_rest(&self, out: &mut Vec<Message>) {
        out.extend(self.odd_lots.values().map(|m| m.clone().into()));
        for (&security_code, book) in &self.aggregate {
            let mut entries = Vec::new();
            for (side_index, levels) in book.sides.iter().enumerate() {
                let side = if side_index == 0 {
                    BookSide::Bid
                } else {
                    BookSide::Offer
                };
                for (i, level) in levels.iter().enumerate() {
                    entries.push(BookEntry {
                        aggregate_quantity: level.aggregate_quantity,
                        price: level.price,
                        number_of_orders: level.number_of_orders,
                        side,
                        price_level: i as u8 + 1,
                        update_action: UpdateAction::New,
                    });
                }
            }
            out.push(
                AggregateOrderBookUpdate {
                    security_code,
                    entries,
                }
                .into(),
            );
        }
        out.extend(self.broker_queues.values().map(|m| m.clone().into()));
        out.extend(
            self.latest
                .iter()
                .filter(|((_, t), _)| !matches!(t, 11 | 13 | 611))
                .map(|(_, m)| m.clone()),
        );
        out.extend(self.news.iter().map(|m| m.clone().into()));
    }

    /// `Ok` if the market state (books, queues, latest values, and trades if `with_trades`)
    /// equals `other`'s; otherwise the first difference found, for a test failure message.
    pub fn compare(&self, other: &MarketImage, with_trades: bool) -> Result<(), String> {
        let orders = |i: &MarketImage| -> Vec<_> {
            let mut v: Vec<_> = i
                .orders
                .iter()
                .map(|(k, o)| (*k, o.side, o.price, o.quantity))
                .collect();
            v.sort_unstable_by_key(|(k, ..)| *k);
            v
        };
        let (a, b) = (orders(self), orders(other));
        if a != b {
            let first = a.iter().zip(&b).position(|(x, y)| x != y);
            return Err(format!(
                "order books differ: {} vs {} orders, first difference at {:?}: {:?} vs {:?}",
                a.len(),
                b.len(),
                first,
                first.and_then(|i| a.get(i)),
                first.and_then(|i| b.get(i)),
            ));
        }
        if self.odd_lots != other.odd_lots {
            return Err("odd-lot books differ".into());
        }
        if let Some((security, book)) = self
            .aggregate
            .iter()
            .find(|(s, book)| other.aggregate.get(s) != Some(book))
        {
            return Err(format!(
                "aggregate book of {security} differs: {book:?} vs {:?}",
                other.aggregate.get(security)
            ));
        }
        if self.aggregate.len() != other.aggregate.len() {
            return Err("aggregate books: different securities".into());
        }
        if self.broker_queues != other.broker_queues {
            return Err("broker queues differ".into());
        }
        if self.latest != other.latest {
            return Err("latest per-security values differ".into());
        }
        if self.reference != other.reference {
            return Err("reference data differs".into());
        }
        if with_trades && (self.trades != other.trades || self.tickers != other.tickers) {
            return Err(format!(
                "trade history differs: {} vs {} trades, {} vs {} tickers",
                self.trades.len(),
                other.trades.len(),
                self.tickers.len(),
                other.tickers.len()
            ));
        }
        Ok(())
    }
}
