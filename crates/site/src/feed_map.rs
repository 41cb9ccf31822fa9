//! Engine events to OMD [`MarketEvent`]s, routed to OMD-C (HK securities, market-wide
//! messages, Stock Connect 80/81) or to the OMD-CC channel set of SSE / SZSE securities.
//!
//! Choices: orders without a price (at-auction orders) are not shown on the feed; Trade TrdType
//! is 0 for continuous matching and 103 ('U') for auction trades; Trading Session Status (20) is
//! sent for MAIN and GEM on each phase change; the Daily Quota Balance (80) is NULL while the
//! balance is at least 30 % of the daily quota and the value from the first time it drops
//! below (for the rest of the day); Market Turnover (81) NB carries Buy+Sell turnover (whole
//! RMB) only once the mainland market has closed, Buy and Sell NULL.

use std::collections::BTreeMap;
use twinsite_core::{MarketSegment, Price, Qty, SecurityCode, Side, Timestamp};
use twinsite_engine::china::CcPhase;
use twinsite_engine::refdata::{Security, SpreadTable};
use twinsite_engine::{Engine, Event, MatchKind, Phase};
use twinsite_omd::message::*;
use twinsite_omd::wire::{AsciiStr, IdHashMap, Utf16Str};
use twinsite_omd::MarketEvent;

/// Where a market event goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Route {
    /// OMD-C channels (HK securities and market-wide OMD-C messages).
    OmdC,
    /// The OMD-CC channels of one mainland market (Sse or Szse).
    OmdCc(MarketSegment),
}

/// A resting order as the feed shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageOrder {
    pub security: SecurityCode,
    pub order_id: u64,
    pub side: Side,
    pub price: Price,
    pub qty: Qty,
    pub broker: u32,
}

/// What the feed needs from the engine when the site becomes active: reference data and the
/// state of the books (empty at the start of the day; the replicated books after a failover).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct FeedImage {
    pub securities: Vec<Security>,
    /// Resting priced orders in priority order per security and side.
    pub orders: Vec<ImageOrder>,
    pub halted: Vec<SecurityCode>,
    pub phase: Option<Phase>,
    pub cc_daily_quota: i64,
    pub quota: Vec<(MarketSegment, i64)>,
}

impl FeedImage {
    /// Read the engine's reference data and books.
    pub fn of(engine: &Engine) -> FeedImage {
        let mut image = FeedImage {
            phase: Some(engine.phase()),
            cc_daily_quota: engine.config().cc_daily_quota,
            ..FeedImage::default()
        };
        let mut codes = Vec::new();
        for s in engine.securities() {
            image.securities.push(s.def.clone());
            codes.push(s.def.code);
            if s.halted {
                image.halted.push(s.def.code);
            }
        }
        for s in engine.china().securities() {
            image.securities.push(s.def.clone());
            codes.push(s.def.code);
            if s.halted {
                image.halted.push(s.def.code);
            }
        }
        for code in codes {
            for side in [Side::Buy, Side::Sell] {
                for o in engine.book_orders(code, side) {
                    let Some(price) = o.price else { continue };
                    if o.leaves_qty.0 == 0 {
                        continue;
                    }
                    image.orders.push(ImageOrder {
                        security: code,
                        order_id: o.order_id.0,
                        side,
                        price,
                        qty: o.leaves_qty,
                        broker: o.owner.broker.0,
                    });
                }
            }
        }
        for m in [MarketSegment::Sse, MarketSegment::Szse] {
            image.quota.push((m, engine.china().quota_balance(m)));
        }
        image
    }
}

#[derive(Debug, Clone, Copy)]
struct SecInfo {
    segment: MarketSegment,
    /// Trades today (Closing Price's NumberOfTrades).
    trades: u32,
}

/// Security codes below this are found by a dense index (HKEX codes have 5 digits, SSE and
/// SZSE codes 6); others by a hash map.
const DENSE_CODES: u32 = 1 << 20;

/// Maps engine events to routed market events; keeps what the mapping needs across events.
#[derive(Debug, Default)]
pub struct FeedMap {
    /// The image's securities, in image order.
    securities: Vec<SecInfo>,
    /// Security code -> index in `securities` + 1 (0: not in the image), for codes below
    /// [`DENSE_CODES`] (sized to the largest such code).
    dense: Vec<u32>,
    /// The same for codes from [`DENSE_CODES`] on.
    sparse: IdHashMap<SecurityCode, u32>,
    /// Trades of securities not in the image.
    other_trades: IdHashMap<SecurityCode, u32>,
    daily_quota: i64,
    /// Markets whose quota balance went below 30 % today (the value is shown from then on).
    quota_shown: BTreeMap<MarketSegment, bool>,
    /// Northbound turnover (1/1000 RMB) per mainland market.
    cc_turnover: BTreeMap<MarketSegment, i128>,
}

fn sc_market(m: MarketSegment) -> &'static str {
    match m {
        MarketSegment::Szse => "SZ",
        _ => "SH",
    }
}

fn cc_market_code(m: MarketSegment) -> &'static str {
    match m {
        MarketSegment::Szse => "ASZR",
        _ => "ASHR",
    }
}

fn omd_price(p: Price) -> i32 {
    p.to_omd().unwrap_or(0)
}

fn spread_code(t: SpreadTable) -> &'static str {
    match t {
        SpreadTable::PartA => "01",
        SpreadTable::PartB => "03",
        SpreadTable::ChinaConnect => "CN",
    }
}

fn flag(b: bool) -> AsciiStr<1> {
    AsciiStr::from_char(if b { b'Y' } else { b'N' })
}

fn pass(m: impl Into<Message>) -> MarketEvent {
    MarketEvent::PassThrough(Box::new(m.into()))
}

impl FeedMap {
    pub fn new() -> FeedMap {
        FeedMap::default()
    }

    /// Index of `security` in `securities`.
    #[inline]
    fn index_of(&self, security: SecurityCode) -> Option<usize> {
        let slot = if security.0 < DENSE_CODES {
            self.dense.get(security.0 as usize).copied().unwrap_or(0)
        } else {
            self.sparse.get(&security).copied().unwrap_or(0)
        };
        (slot as usize).checked_sub(1)
    }

    #[inline]
    fn route_of(&self, security: SecurityCode) -> Route {
        match self.index_of(security).map(|i| self.securities[i].segment) {
            Some(segment) if segment.is_china_connect() => Route::OmdCc(segment),
            _ => Route::OmdC,
        }
    }

    /// Count a trade of `security`.
    fn count_trade(&mut self, security: SecurityCode) {
        match self.index_of(security) {
            Some(i) => self.securities[i].trades += 1,
            None => *self.other_trades.entry(security).or_default() += 1,
        }
    }

    /// Trades of `security` today.
    fn trades_of(&self, security: SecurityCode) -> u32 {
        match self.index_of(security) {
            Some(i) => self.securities[i].trades,
            None => self.other_trades.get(&security).copied().unwrap_or(0),
        }
    }

    /// Start of day or activation: reference data (10/11, 610/611), the books, halts, the
    /// trading session status and the quota. Resets the per-day state.
    pub fn image_events(&mut self, image: &FeedImage, now: Timestamp) -> Vec<(Route, MarketEvent)> {
        *self = FeedMap {
            daily_quota: image.cc_daily_quota,
            ..FeedMap::default()
        };
        let mut out = Vec::new();
        let mut per_market: BTreeMap<MarketSegment, u32> = BTreeMap::new();
        for s in &image.securities {
            let slot = match self.index_of(s.code) {
                // A code listed twice: the last listing counts, as a map's insert would.
                Some(i) => {
                    self.securities[i].segment = s.segment;
                    None
                }
                None => {
                    self.securities.push(SecInfo {
                        segment: s.segment,
                        trades: 0,
                    });
                    Some(self.securities.len() as u32)
                }
            };
            if let Some(slot) = slot {
                if s.code.0 < DENSE_CODES {
                    let at = s.code.0 as usize;
                    if self.dense.len() <= at {
                        self.dense.resize(at + 1, 0);
                    }
                    self.dense[at] = slot;
                } else {
                    self.sparse.insert(s.code, slot);
                }
            }
            *per_market.entry(s.segment).or_default() += 1;
        }
        for (&m, &n) in &per_market {
            if m.is_china_connect() {
                out.push((
                    Route::OmdCc(m),
                    pass(CcMarketDefinition {
                        market_code: AsciiStr::new(cc_market_code(m)),
                        market_name: AsciiStr::new(match m {
                            MarketSegment::Sse => "Sse A Share",
                            _ => "Szse A Share",
                        }),
                        currency_code: AsciiStr::new("CNY"),
                        number_of_securities: n,
                    }),
                ));
            } else {
                out.push((
                    Route::OmdC,
                    pass(MarketDefinition {
                        market_code: AsciiStr::new(m.code()),
                        market_name: AsciiStr::new(match m {
                            MarketSegment::Main => "Main Board",
                            MarketSegment::Gem => "GEM",
                            MarketSegment::Nasd => "NASDAQ AMX Pilot Program",
                            _ => "Extended Trading Securities",
                        }),
                        currency_code: AsciiStr::new("HKD"),
                        number_of_securities: n,
                    }),
                ));
            }
        }
        for s in &image.securities {
            if s.segment.is_china_connect() {
                out.push((
                    Route::OmdCc(s.segment),
                    pass(CcSecurityDefinition {
                        security_code: s.code.0,
                        market_code: AsciiStr::new(cc_market_code(s.segment)),
                        instrument_type: AsciiStr::new(&s.instrument),
                        security_short_name: AsciiStr::new(&s.name),
                        currency_code: AsciiStr::new(&s.currency),
                        security_name_gb: Utf16Str::new(&s.name),
                        lot_size: s.lot_size as u32,
                        previous_closing_price: omd_price(s.prev_close),
                        shortsell_flag: flag(s.short_sell),
                        listing_date: 19_000_101,
                        ..CcSecurityDefinition::default()
                    }),
                ));
            } else {
                out.push((
                    Route::OmdC,
                    pass(SecurityDefinition {
                        fields: SecurityDefinitionFields {
                            security_code: s.code.0,
                            market_code: AsciiStr::new(s.segment.code()),
                            instrument_type: AsciiStr::new(&s.instrument),
                            spread_table_code: AsciiStr::new(spread_code(s.spread_table)),
                            security_short_name: AsciiStr::new(&s.name),
                            currency_code: AsciiStr::new(&s.currency),
                            lot_size: s.lot_size as u32,
                            previous_closing_price: omd_price(s.prev_close),
                            vcm_flag: flag(s.vcm),
                            short_sell_flag: flag(s.short_sell),
                            cas_flag: flag(s.cas),
                            pos_flag: flag(s.pos),
                            listing_date: 19_000_101,
                            delisting_date: 19_000_101,
                            ..SecurityDefinitionFields::default()
                        },
                        underlyings: Vec::new(),
                    }),
                ));
            }
        }
        if let Some(phase) = image.phase {
            out.extend(self.phase_events(phase, now));
        }
        for &security in &image.halted {
            out.push((
                self.route_of(security),
                MarketEvent::SecurityStatus {
                    security,
                    halted: true,
                },
            ));
        }
        for o in &image.orders {
            out.push((
                self.route_of(o.security),
                MarketEvent::OrderAdded {
                    security: o.security,
                    order_id: twinsite_core::OrderId(o.order_id),
                    side: o.side,
                    price: o.price,
                    qty: o.qty,
                    broker: twinsite_core::BrokerId(o.broker),
                    odd_lot: false,
                },
            ));
        }
        for &(m, balance) in &image.quota {
            if per_market.contains_key(&m) {
                out.extend(self.quota_event(m, balance, now));
            }
        }
        out
    }

    fn phase_events(&self, phase: Phase, now: Timestamp) -> Vec<(Route, MarketEvent)> {
        [MarketSegment::Main, MarketSegment::Gem]
            .into_iter()
            .map(|m| {
                (
                    Route::OmdC,
                    pass(TradingSessionStatus {
                        market_code: AsciiStr::new(m.code()),
                        trading_session_sub_id: phase.omd_sub_id(),
                        trading_ses_status: phase.omd_status(),
                        trading_ses_control_flag: AsciiStr::from_char(b'1'),
                        start_date_time: now.0,
                        end_date_time: now.0,
                    }),
                )
            })
            .collect()
    }

    fn quota_event(
        &mut self,
        market: MarketSegment,
        balance: i64,
        now: Timestamp,
    ) -> Option<(Route, MarketEvent)> {
        let shown = self.quota_shown.entry(market).or_default();
        // Below 30 % of the quota: shown from then on for the rest of the day.
        if self.daily_quota > 0 && (balance as i128) * 10 < (self.daily_quota as i128) * 3 {
            *shown = true;
        }
        let value = if *shown { Some(balance.max(0)) } else { None };
        Some((
            Route::OmdC,
            pass(StockConnectDailyQuotaBalance {
                stock_connect_market: AsciiStr::new(sc_market(market)),
                trading_direction: AsciiStr::new("NB"),
                daily_quota_balance: value,
                // Second precision.
                daily_quota_balance_time: now.0 / 1_000_000_000 * 1_000_000_000,
            }),
        ))
    }

    /// One engine event as routed market events (none for events the feed does not show).
    pub fn map(&mut self, event: &Event, now: Timestamp, out: &mut Vec<(Route, MarketEvent)>) {
        match *event {
            Event::BookAdd {
                security,
                order_id,
                side,
                price: Some(price),
                qty,
                broker,
            } => out.push((
                self.route_of(security),
                MarketEvent::OrderAdded {
                    security,
                    order_id,
                    side,
                    price,
                    qty,
                    broker,
                    odd_lot: false,
                },
            )),
            Event::BookModify {
                security,
                order_id,
                price: Some(_),
                qty,
                ..
            } => out.push((
                self.route_of(security),
                MarketEvent::OrderModified {
                    security,
                    order_id,
                    qty,
                },
            )),
            Event::BookDelete {
                security, order_id, ..
            } => out.push((
                self.route_of(security),
                MarketEvent::OrderDeleted { security, order_id },
            )),
            Event::Trade {
                security,
                trade_id,
                price,
                qty,
                kind,
                time,
                ..
            } => {
                self.count_trade(security);
                let route = self.route_of(security);
                if let Route::OmdCc(m) = route {
                    *self.cc_turnover.entry(m).or_default() += price.0 as i128 * qty.0 as i128;
                }
                out.push((
                    route,
                    MarketEvent::Trade {
                        security,
                        exec_id: trade_id,
                        price,
                        qty,
                        trd_type: match kind {
                            MatchKind::Continuous => 0,
                            MatchKind::Auction => 103,
                        },
                        time,
                    },
                ));
            }
            Event::Iep {
                security,
                price,
                volume,
            } => out.push((
                self.route_of(security),
                MarketEvent::Iep {
                    security,
                    price,
                    qty: volume,
                },
            )),
            Event::Nominal { security, price } => out.push((
                self.route_of(security),
                MarketEvent::Nominal { security, price },
            )),
            Event::ReferencePrice {
                security,
                price,
                lower,
                upper,
            } => out.push((
                self.route_of(security),
                MarketEvent::ReferencePrice {
                    security,
                    reference: price,
                    lower,
                    upper,
                },
            )),
            Event::ClosingPrice { security, price } => out.push((
                self.route_of(security),
                MarketEvent::ClosingPrice {
                    security,
                    price,
                    number_of_trades: self.trades_of(security),
                },
            )),
            Event::PhaseChanged { phase } => out.extend(self.phase_events(phase, now)),
            Event::SecurityStatus { security, halted } => out.push((
                self.route_of(security),
                MarketEvent::SecurityStatus { security, halted },
            )),
            Event::QuotaBalance { market, balance } => {
                out.extend(self.quota_event(market, balance, now))
            }
            Event::CcPhaseChanged {
                phase: CcPhase::Closed,
            } => {
                for (&m, &t) in &self.cc_turnover {
                    out.push((
                        Route::OmdC,
                        pass(StockConnectMarketTurnover {
                            stock_connect_market: AsciiStr::new(sc_market(m)),
                            trading_direction: AsciiStr::new("NB"),
                            buy_turnover: None,
                            sell_turnover: None,
                            buy_plus_sell_turnover: Some((t / 1000) as i64),
                        }),
                    ));
                }
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quota_is_null_until_below_30_percent_then_shown_for_the_day() {
        let mut map = FeedMap::new();
        let image = FeedImage {
            cc_daily_quota: 1_000,
            ..FeedImage::default()
        };
        map.image_events(&image, Timestamp(0));
        let balance = |map: &mut FeedMap, b: i64| {
            let mut out = Vec::new();
            map.map(
                &Event::QuotaBalance {
                    market: MarketSegment::Sse,
                    balance: b,
                },
                Timestamp(1_500_000_000),
                &mut out,
            );
            match &out[0].1 {
                MarketEvent::PassThrough(m) => match &**m {
                    Message::StockConnectDailyQuotaBalance(q) => {
                        assert_eq!(q.daily_quota_balance_time, 1_000_000_000);
                        q.daily_quota_balance
                    }
                    other => panic!("{other:?}"),
                },
                other => panic!("{other:?}"),
            }
        };
        assert_eq!(balance(&mut map, 900), None);
        assert_eq!(balance(&mut map, 300), None);
        assert_eq!(balance(&mut map, 299), Some(299));
        assert_eq!(balance(&mut map, 800), Some(800));
        assert_eq!(balance(&mut map, -5), Some(0));
    }
}
