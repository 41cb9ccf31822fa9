//! Every OMD-C message (reference §2.4), the control/RTS/refresh messages (§3, layouts
//! inferred from the documented lengths, see docs/omd.md) and the OMD-CC messages (§4.1).
//!
//! Offsets are byte offsets from the start of the message, header included, exactly as in the
//! reference tables. Prices are Int32 with 3 implied decimals (the scale of
//! `twinsite_core::Price`: convert with `Price::from_omd` / `Price::to_omd`).

use crate::wire::{
    put_header, u16_at, AsciiStr, BookSide, BrokerQueueSide, DecodeError, NulStr, UpdateAction,
    Utf16Str, WireField,
};

// ---------------------------------------------------------------------------------------------
// Control, retransmission and refresh messages (§2.1 lengths; field layout inferred).

fixed_message! {
    /// Sequence Reset (100): first message of the day on every channel; NewSeqNo is 1.
    SequenceReset, msg_type = 100, len = 8, { new_seq_no: u32 = 4 }
}
fixed_message! {
    /// Disaster Recovery Signal (105), DR channel only: 1 = DR in progress, 2 = DR completed.
    DisasterRecoverySignal, msg_type = 105, len = 8, { dr_status: u32 = 4 }
}
fixed_message! {
    /// RTS Logon (101): Username, NUL-padded.
    Logon, msg_type = 101, len = 16, { username: NulStr<12> = 4 }
}
fixed_message! {
    /// RTS Logon Response (102): 0 active, 5 invalid username or IP, 100 already connected.
    LogonResponse, msg_type = 102, len = 8, { session_status: u8 = 4 }
}
fixed_message! {
    /// RTS Retransmission Request (201): inclusive sequence range on one channel.
    RetransmissionRequest, msg_type = 201, len = 16, {
        channel_id: u16 = 4,
        begin_seq_num: u32 = 8,
        end_seq_num: u32 = 12,
    }
}
fixed_message! {
    /// RTS Retransmission Response (202): echoes the range; status 0/1/2/100/101.
    RetransmissionResponse, msg_type = 202, len = 16, {
        channel_id: u16 = 4,
        retrans_status: u8 = 6,
        begin_seq_num: u32 = 8,
        end_seq_num: u32 = 12,
    }
}
fixed_message! {
    /// Refresh Complete (203): the real-time sequence number the snapshot is synchronised with.
    RefreshComplete, msg_type = 203, len = 8, { last_seq_num: u32 = 4 }
}

// ---------------------------------------------------------------------------------------------
// Reference data.

fixed_message! {
    /// Market Definition (10).
    MarketDefinition, msg_type = 10, len = 40, {
        market_code: AsciiStr<4> = 4,
        market_name: AsciiStr<25> = 8,
        currency_code: AsciiStr<3> = 33,
        number_of_securities: u32 = 36,
    }
}

wire_struct! {
    /// The fixed 544-byte part of Security Definition (11), offsets from the message start.
    SecurityDefinitionFields, msg_type = 11, first = 4, len = 544, {
        security_code: u32 = 4,
        market_code: AsciiStr<4> = 8,
        isin_code: AsciiStr<12> = 12,
        instrument_type: AsciiStr<4> = 24,
        product_type: u8 = 28,
        spread_table_code: AsciiStr<2> = 30,
        security_short_name: AsciiStr<40> = 32,
        currency_code: AsciiStr<3> = 72,
        security_name_gccs: Utf16Str<60> = 75,
        security_name_gb: Utf16Str<60> = 135,
        lot_size: u32 = 195,
        previous_closing_price: i32 = 203,
        vcm_flag: AsciiStr<1> = 207,
        short_sell_flag: AsciiStr<1> = 208,
        cas_flag: AsciiStr<1> = 209,
        ccass_flag: AsciiStr<1> = 210,
        dummy_security_flag: AsciiStr<1> = 211,
        stamp_duty_flag: AsciiStr<1> = 213,
        listing_date: u32 = 215,
        delisting_date: u32 = 219,
        free_text: AsciiStr<38> = 223,
        pos_flag: AsciiStr<1> = 323,
        pos_upper_limit: i32 = 324,
        pos_lower_limit: i32 = 328,
        domain_stmt_security_code: u32 = 332,
        efn_flag: AsciiStr<1> = 373,
        accrued_interest: u32 = 374,
        coupon_rate: u32 = 378,
        face_value: u64 = 383,
        decimals_in_face_value: u8 = 391,
        face_value_currency: AsciiStr<3> = 392,
        maturity_date: u32 = 395,
        investor_type: AsciiStr<1> = 399,
        conversion_ratio: u32 = 444,
        strike_price1: i32 = 448,
        strike_price2: i32 = 452,
        warrant_maturity_date: u32 = 456,
        call_put_flag: AsciiStr<1> = 460,
        style: AsciiStr<1> = 461,
        warrant_type: AsciiStr<1> = 464,
        call_price: i32 = 465,
        decimals_in_call_price: u8 = 469,
        entitlement: i32 = 470,
        decimals_in_entitlement: u8 = 474,
        no_warrants_per_entitlement: u32 = 475,
    }
}

/// Security Definition (11): 544 bytes plus 8 per underlying security.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SecurityDefinition {
    pub fields: SecurityDefinitionFields,
    /// UnderlyingSecurityCode of each 8-byte group entry (the 4-byte filler is written as spaces).
    pub underlyings: Vec<u32>,
}

impl SecurityDefinition {
    pub const MSG_TYPE: u16 = 11;
    const FIXED: usize = 544;
    const ENTRY: usize = 8;

    pub fn encoded_len(&self) -> usize {
        Self::FIXED + Self::ENTRY * self.underlyings.len()
    }
    pub fn encode(&self, out: &mut Vec<u8>) {
        let start = out.len();
        let len = self.encoded_len();
        out.resize(start + len, b' ');
        let buf = &mut out[start..];
        put_header(buf, len, Self::MSG_TYPE);
        self.fields.encode_fields(&mut buf[..Self::FIXED]);
        (self.underlyings.len() as u16).put(&mut buf[542..544]);
        for (i, code) in self.underlyings.iter().enumerate() {
            let at = Self::FIXED + i * Self::ENTRY;
            code.put(&mut buf[at..at + 4]);
        }
    }
    pub fn decode(buf: &[u8]) -> Result<Self, DecodeError> {
        let count = check_group(buf, Self::MSG_TYPE, Self::FIXED, 542, Self::ENTRY)?;
        let fields = SecurityDefinitionFields::decode_fields(buf)?;
        let underlyings = (0..count)
            .map(|i| {
                let at = Self::FIXED + i * Self::ENTRY;
                u32_at(buf, at)
            })
            .collect();
        Ok(SecurityDefinition {
            fields,
            underlyings,
        })
    }
}

/// Liquidity Provider (13): 10 bytes plus 2 per provider (1–50 providers).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct LiquidityProvider {
    pub security_code: u32,
    pub lp_broker_numbers: Vec<u16>,
}

impl LiquidityProvider {
    pub const MSG_TYPE: u16 = 13;
    pub const MAX_PROVIDERS: usize = 50;

    pub fn encoded_len(&self) -> usize {
        10 + 2 * self.lp_broker_numbers.len()
    }
    pub fn encode(&self, out: &mut Vec<u8>) {
        let start = out.len();
        let len = self.encoded_len();
        out.resize(start + len, b' ');
        let buf = &mut out[start..];
        put_header(buf, len, Self::MSG_TYPE);
        self.security_code.put(&mut buf[4..8]);
        (self.lp_broker_numbers.len() as u16).put(&mut buf[8..10]);
        for (i, broker) in self.lp_broker_numbers.iter().enumerate() {
            broker.put(&mut buf[10 + 2 * i..12 + 2 * i]);
        }
    }
    pub fn decode(buf: &[u8]) -> Result<Self, DecodeError> {
        let count = check_group(buf, Self::MSG_TYPE, 10, 8, 2)?;
        check_max(
            Self::MSG_TYPE,
            "NoLiquidityProviders",
            count,
            Self::MAX_PROVIDERS,
        )?;
        Ok(LiquidityProvider {
            security_code: u32_at(buf, 4),
            lp_broker_numbers: (0..count).map(|i| u16_at(buf, 10 + 2 * i)).collect(),
        })
    }
}

fixed_message! {
    /// Currency Rate (14): HKD per 10^CurrencyFactor units, 4 implied decimals.
    CurrencyRate, msg_type = 14, len = 16, {
        currency_code: AsciiStr<3> = 4,
        currency_factor: u16 = 8,
        currency_rate: u32 = 12,
    }
}

// ---------------------------------------------------------------------------------------------
// Status.

fixed_message! {
    /// Trading Session Status (20), per market segment.
    TradingSessionStatus, msg_type = 20, len = 32, {
        market_code: AsciiStr<4> = 4,
        trading_session_sub_id: u8 = 9,
        trading_ses_status: u8 = 10,
        trading_ses_control_flag: AsciiStr<1> = 11,
        start_date_time: u64 = 16,
        end_date_time: u64 = 24,
    }
}
fixed_message! {
    /// Security Status (21): 2 = halt/suspend, 3 = resume.
    SecurityStatus, msg_type = 21, len = 12, {
        security_code: u32 = 4,
        suspension_indicator: u8 = 8,
    }
}
fixed_message! {
    /// VCM Trigger (23).
    VcmTrigger, msg_type = 23, len = 36, {
        security_code: u32 = 4,
        cooling_off_start_time: u64 = 8,
        cooling_off_end_time: u64 = 16,
        vcm_reference_price: i32 = 24,
        vcm_lower_price: i32 = 28,
        vcm_upper_price: i32 = 32,
    }
}

// ---------------------------------------------------------------------------------------------
// Order book.

fixed_message! {
    /// Add Order (30), FullTick.
    AddOrder, msg_type = 30, len = 32, {
        security_code: u32 = 4,
        order_id: u64 = 8,
        price: i32 = 16,
        quantity: u32 = 20,
        side: BookSide = 24,
        /// '1' market, '2' limit.
        order_type: AsciiStr<1> = 26,
        order_book_position: i32 = 28,
    }
}
fixed_message! {
    /// Modify Order (31), FullTick: only the quantity changes.
    ModifyOrder, msg_type = 31, len = 28, {
        security_code: u32 = 4,
        order_id: u64 = 8,
        quantity: u32 = 16,
        side: BookSide = 20,
        order_book_position: i32 = 24,
    }
}
fixed_message! {
    /// Delete Order (32), FullTick.
    DeleteOrder, msg_type = 32, len = 20, {
        security_code: u32 = 4,
        order_id: u64 = 8,
        side: BookSide = 16,
    }
}
fixed_message! {
    /// Add Odd Lot Order (33).
    AddOddLotOrder, msg_type = 33, len = 28, {
        security_code: u32 = 4,
        order_id: u64 = 8,
        price: i32 = 16,
        quantity: u32 = 20,
        broker_id: u16 = 24,
        side: BookSide = 26,
    }
}
fixed_message! {
    /// Delete Odd Lot Order (34).
    DeleteOddLotOrder, msg_type = 34, len = 20, {
        security_code: u32 = 4,
        order_id: u64 = 8,
        broker_id: u16 = 16,
        side: BookSide = 18,
    }
}

wire_struct! {
    /// One 24-byte entry of Aggregate Order Book Update (53).
    BookEntry, msg_type = 53, first = 0, len = 24, {
        aggregate_quantity: u64 = 0,
        price: i32 = 8,
        number_of_orders: u32 = 12,
        side: BookSide = 16,
        /// 1-based rank among existing price levels on this side.
        price_level: u8 = 18,
        update_action: UpdateAction = 19,
    }
}

/// Aggregate Order Book Update (53): 12 bytes plus 24 per entry.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AggregateOrderBookUpdate {
    pub security_code: u32,
    pub entries: Vec<BookEntry>,
}

impl AggregateOrderBookUpdate {
    pub const MSG_TYPE: u16 = 53;
    /// NoEntries is a Uint8.
    pub const MAX_ENTRIES: usize = 255;

    pub fn encoded_len(&self) -> usize {
        12 + BookEntry::LEN * self.entries.len()
    }
    pub fn encode(&self, out: &mut Vec<u8>) {
        let start = out.len();
        let len = self.encoded_len();
        out.resize(start + len, b' ');
        let buf = &mut out[start..];
        put_header(buf, len, Self::MSG_TYPE);
        self.security_code.put(&mut buf[4..8]);
        buf[11] = self.entries.len() as u8;
        for (i, entry) in self.entries.iter().enumerate() {
            let at = 12 + i * BookEntry::LEN;
            entry.encode_fields(&mut buf[at..at + BookEntry::LEN]);
        }
    }
    pub fn decode(buf: &[u8]) -> Result<Self, DecodeError> {
        let count = check_group_u8(buf, Self::MSG_TYPE, 12, 11, BookEntry::LEN)?;
        let entries = (0..count)
            .map(|i| {
                let at = 12 + i * BookEntry::LEN;
                BookEntry::decode_fields(&buf[at..at + BookEntry::LEN])
            })
            .collect::<Result<_, _>>()?;
        Ok(AggregateOrderBookUpdate {
            security_code: u32_at(buf, 4),
            entries,
        })
    }
}

/// One 4-byte Broker Queue item.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BrokerQueueItem {
    /// 'B': a broker number.
    Broker(u16),
    /// 'S': spreads away from the best price (0: no brokers at that spread level).
    Spread(u16),
}

/// Broker Queue (54): 12 bytes plus 4 per item (at most 40).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct BrokerQueue {
    pub security_code: u32,
    pub side: BrokerQueueSide,
    /// `BQMoreFlag`: true ('Y') when the queue is longer than the items sent.
    pub more: bool,
    pub items: Vec<BrokerQueueItem>,
}

impl BrokerQueue {
    pub const MSG_TYPE: u16 = 54;
    pub const MAX_ITEMS: usize = 40;

    pub fn encoded_len(&self) -> usize {
        12 + 4 * self.items.len()
    }
    pub fn encode(&self, out: &mut Vec<u8>) {
        let start = out.len();
        let len = self.encoded_len();
        out.resize(start + len, b' ');
        let buf = &mut out[start..];
        put_header(buf, len, Self::MSG_TYPE);
        self.security_code.put(&mut buf[4..8]);
        buf[8] = self.items.len() as u8;
        self.side.put(&mut buf[9..11]);
        buf[11] = if self.more { b'Y' } else { b'N' };
        for (i, item) in self.items.iter().enumerate() {
            let at = 12 + 4 * i;
            let (value, kind) = match *item {
                BrokerQueueItem::Broker(v) => (v, b'B'),
                BrokerQueueItem::Spread(v) => (v, b'S'),
            };
            value.put(&mut buf[at..at + 2]);
            buf[at + 2] = kind;
        }
    }
    pub fn decode(buf: &[u8]) -> Result<Self, DecodeError> {
        let count = check_group_u8(buf, Self::MSG_TYPE, 12, 8, 4)?;
        check_max(Self::MSG_TYPE, "ItemCount", count, Self::MAX_ITEMS)?;
        let side = BrokerQueueSide::get(&buf[9..11]).map_err(|value| bad(54, "BQSide", value))?;
        let more = match buf[11] {
            b'Y' => true,
            b'N' => false,
            other => return Err(bad(54, "BQMoreFlag", other as u64)),
        };
        let items = (0..count)
            .map(|i| {
                let at = 12 + 4 * i;
                let value = u16_at(buf, at);
                match buf[at + 2] {
                    b'B' => Ok(BrokerQueueItem::Broker(value)),
                    b'S' => Ok(BrokerQueueItem::Spread(value)),
                    other => Err(bad(54, "Type", other as u64)),
                }
            })
            .collect::<Result<_, _>>()?;
        Ok(BrokerQueue {
            security_code: u32_at(buf, 4),
            side,
            more,
            items,
        })
    }
}

fixed_message! {
    /// Order Imbalance (56).
    OrderImbalance, msg_type = 56, len = 20, {
        security_code: u32 = 4,
        /// 'N' equal, 'B' buy surplus, 'S' sell surplus, ' ' not applicable.
        order_imbalance_direction: AsciiStr<1> = 8,
        order_imbalance_quantity: u64 = 10,
    }
}

// ---------------------------------------------------------------------------------------------
// Trades and prices.

fixed_message! {
    /// Trade (50).
    Trade, msg_type = 50, len = 32, {
        security_code: u32 = 4,
        trade_id: u32 = 8,
        price: i32 = 12,
        quantity: u32 = 16,
        trd_type: i16 = 20,
        trade_time: u64 = 24,
    }
}
fixed_message! {
    /// Trade Cancel (51).
    TradeCancel, msg_type = 51, len = 12, {
        security_code: u32 = 4,
        trade_id: u32 = 8,
    }
}
fixed_message! {
    /// Trade Ticker (52): consecutive trades at one price, aggregated.
    TradeTicker, msg_type = 52, len = 36, {
        security_code: u32 = 4,
        ticker_id: u32 = 8,
        price: i32 = 12,
        aggregate_quantity: u64 = 16,
        trade_time: u64 = 24,
        trd_type: i16 = 32,
        /// 'Y' cancelled, 'N' not cancelled.
        trd_cancel_flag: AsciiStr<1> = 34,
    }
}
fixed_message! {
    /// Closing Price (62).
    ClosingPrice, msg_type = 62, len = 16, {
        security_code: u32 = 4,
        closing_price: i32 = 8,
        number_of_trades: u32 = 12,
    }
}
fixed_message! {
    /// Nominal Price (40).
    NominalPrice, msg_type = 40, len = 12, {
        security_code: u32 = 4,
        nominal_price: i32 = 8,
    }
}
fixed_message! {
    /// Indicative Equilibrium Price (41): price 0 = no IEP.
    IndicativeEquilibriumPrice, msg_type = 41, len = 20, {
        security_code: u32 = 4,
        price: i32 = 8,
        aggregate_quantity: u64 = 12,
    }
}
fixed_message! {
    /// Reference Price (43).
    ReferencePrice, msg_type = 43, len = 20, {
        security_code: u32 = 4,
        reference_price: i32 = 8,
        lower_price: i32 = 12,
        upper_price: i32 = 16,
    }
}
fixed_message! {
    /// Yield (44), bonds.
    Yield, msg_type = 44, len = 12, {
        security_code: u32 = 4,
        yield_value: i32 = 8,
    }
}
fixed_message! {
    /// Statistics (60).
    Statistics, msg_type = 60, len = 52, {
        security_code: u32 = 4,
        shares_traded: u64 = 8,
        turnover: i64 = 16,
        high_price: i32 = 24,
        low_price: i32 = 28,
        last_price: i32 = 32,
        vwap: i32 = 36,
        short_sell_shares_traded: u32 = 40,
        short_sell_turnover: i64 = 44,
    }
}
fixed_message! {
    /// Market Turnover (61).
    MarketTurnover, msg_type = 61, len = 20, {
        market_code: AsciiStr<4> = 4,
        currency_code: AsciiStr<3> = 8,
        turnover: i64 = 12,
    }
}

// ---------------------------------------------------------------------------------------------
// News.

/// News (22): 356 + 4·nMarkets + 4·nSecurities + 160·nLines bytes. Headline and lines are
/// raw bytes (ASCII for EXN, UTF-16LE for EXC).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct News {
    pub news_type: AsciiStr<3>,
    pub news_id: AsciiStr<3>,
    pub headline: Box<[u8; 320]>,
    pub cancel_flag: AsciiStr<1>,
    pub last_fragment: AsciiStr<1>,
    pub release_time: u64,
    pub market_codes: Vec<AsciiStr<4>>,
    pub security_codes: Vec<u32>,
    pub news_lines: Vec<Box<[u8; 160]>>,
}

impl Default for News {
    fn default() -> Self {
        News {
            news_type: AsciiStr::new("EXN"),
            news_id: AsciiStr::default(),
            headline: Box::new([b' '; 320]),
            cancel_flag: AsciiStr::from_char(b'N'),
            last_fragment: AsciiStr::from_char(b'Y'),
            release_time: 0,
            market_codes: Vec::new(),
            security_codes: Vec::new(),
            news_lines: Vec::new(),
        }
    }
}

impl News {
    pub const MSG_TYPE: u16 = 22;
    pub const MAX_MARKET_CODES: usize = 4;
    pub const MAX_SECURITY_CODES: usize = 200;
    pub const MAX_NEWS_LINES: usize = 10;

    pub fn encoded_len(&self) -> usize {
        356 + 4 * self.market_codes.len()
            + 4 * self.security_codes.len()
            + 160 * self.news_lines.len()
    }
    pub fn encode(&self, out: &mut Vec<u8>) {
        let start = out.len();
        let len = self.encoded_len();
        out.resize(start + len, b' ');
        let buf = &mut out[start..];
        put_header(buf, len, Self::MSG_TYPE);
        self.news_type.put(&mut buf[4..7]);
        self.news_id.put(&mut buf[7..10]);
        buf[10..330].copy_from_slice(&self.headline[..]);
        self.cancel_flag.put(&mut buf[330..331]);
        self.last_fragment.put(&mut buf[331..332]);
        self.release_time.put(&mut buf[336..344]);
        (self.market_codes.len() as u16).put(&mut buf[346..348]);
        let mut at = 348;
        for code in &self.market_codes {
            code.put(&mut buf[at..at + 4]);
            at += 4;
        }
        at += 2; // SecondFiller2
        (self.security_codes.len() as u16).put(&mut buf[at..at + 2]);
        at += 2;
        for code in &self.security_codes {
            code.put(&mut buf[at..at + 4]);
            at += 4;
        }
        at += 2; // ThirdFiller2
        (self.news_lines.len() as u16).put(&mut buf[at..at + 2]);
        at += 2;
        for line in &self.news_lines {
            buf[at..at + 160].copy_from_slice(&line[..]);
            at += 160;
        }
        debug_assert_eq!(at, len, "Invariant: News layout fills MsgSize exactly");
    }
    pub fn decode(buf: &[u8]) -> Result<Self, DecodeError> {
        let need = |at: usize| -> Result<(), DecodeError> {
            if buf.len() < at {
                Err(DecodeError::BadLength {
                    msg_type: 22,
                    msg_size: buf.len(),
                    expected: at,
                })
            } else {
                Ok(())
            }
        };
        need(356)?;
        let n_markets = u16_at(buf, 346) as usize;
        check_max(22, "NoMarketCodes", n_markets, Self::MAX_MARKET_CODES)?;
        let mut at = 348 + 4 * n_markets;
        need(at + 4)?;
        let n_securities = u16_at(buf, at + 2) as usize;
        check_max(
            22,
            "NoSecurityCodes",
            n_securities,
            Self::MAX_SECURITY_CODES,
        )?;
        let securities_at = at + 4;
        at = securities_at + 4 * n_securities;
        need(at + 4)?;
        let n_lines = u16_at(buf, at + 2) as usize;
        check_max(22, "NoNewsLines", n_lines, Self::MAX_NEWS_LINES)?;
        let lines_at = at + 4;
        let total = lines_at + 160 * n_lines;
        if buf.len() != total {
            return Err(DecodeError::BadLength {
                msg_type: 22,
                msg_size: buf.len(),
                expected: total,
            });
        }
        let mut headline = Box::new([0u8; 320]);
        headline.copy_from_slice(&buf[10..330]);
        Ok(News {
            news_type: AsciiStr::new(""),
            news_id: AsciiStr::new(""),
            headline,
            cancel_flag: AsciiStr::from_char(buf[330]),
            last_fragment: AsciiStr::from_char(buf[331]),
            release_time: u64_at(buf, 336),
            market_codes: (0..n_markets)
                .map(|i| ascii4(&buf[348 + 4 * i..352 + 4 * i]))
                .collect(),
            security_codes: (0..n_securities)
                .map(|i| u32_at(buf, securities_at + 4 * i))
                .collect(),
            news_lines: (0..n_lines)
                .map(|i| {
                    let mut line = Box::new([0u8; 160]);
                    line.copy_from_slice(&buf[lines_at + 160 * i..lines_at + 160 * (i + 1)]);
                    line
                })
                .collect(),
        })
        .map(|mut news| {
            news.news_type = AsciiStr([buf[4], buf[5], buf[6]]);
            news.news_id = AsciiStr([buf[7], buf[8], buf[9]]);
            news
        })
    }
}

// ---------------------------------------------------------------------------------------------
// Index and Stock Connect.

fixed_message! {
    /// Index Definition (70).
    IndexDefinition, msg_type = 70, len = 20, {
        index_code: AsciiStr<11> = 4,
        index_source: AsciiStr<1> = 15,
        currency_code: AsciiStr<3> = 16,
    }
}
fixed_message! {
    /// Index Data (71): Int64 values with 4 implied decimals; `None` is the Int64 null.
    IndexData, msg_type = 71, len = 112, {
        index_code: AsciiStr<11> = 4,
        index_status: AsciiStr<1> = 15,
        index_time: Option<i64> = 16,
        index_value: Option<i64> = 24,
        net_chg_prev_day: Option<i64> = 32,
        high_value: Option<i64> = 40,
        low_value: Option<i64> = 48,
        eas_value: Option<i64> = 56,
        index_turnover: Option<i64> = 64,
        opening_value: Option<i64> = 72,
        closing_value: Option<i64> = 80,
        previous_ses_close: Option<i64> = 88,
        index_volume: Option<i64> = 96,
        net_chg_prev_day_pct: i32 = 104,
        exception: AsciiStr<1> = 108,
    }
}
fixed_message! {
    /// Stock Connect Daily Quota Balance (80): `None` while the balance is >= 30 % of quota.
    StockConnectDailyQuotaBalance, msg_type = 80, len = 24, {
        stock_connect_market: AsciiStr<2> = 4,
        trading_direction: AsciiStr<2> = 6,
        daily_quota_balance: Option<i64> = 8,
        daily_quota_balance_time: u64 = 16,
    }
}
fixed_message! {
    /// Stock Connect Market Turnover (81).
    StockConnectMarketTurnover, msg_type = 81, len = 32, {
        stock_connect_market: AsciiStr<2> = 4,
        trading_direction: AsciiStr<2> = 6,
        buy_turnover: Option<i64> = 8,
        sell_turnover: Option<i64> = 16,
        buy_plus_sell_turnover: Option<i64> = 24,
    }
}

// ---------------------------------------------------------------------------------------------
// OMD-CC (§4.1).

fixed_message! {
    /// OMD-CC Market Definition (610): ASHR / ASZR.
    CcMarketDefinition, msg_type = 610, len = 40, {
        market_code: AsciiStr<4> = 4,
        market_name: AsciiStr<25> = 8,
        currency_code: AsciiStr<3> = 33,
        number_of_securities: u32 = 36,
    }
}
fixed_message! {
    /// OMD-CC Security Definition (611). The 60-byte Binary filler at 73 is written as spaces.
    CcSecurityDefinition, msg_type = 611, len = 220, {
        security_code: u32 = 4,
        market_code: AsciiStr<4> = 8,
        isin_code: AsciiStr<12> = 12,
        instrument_type: AsciiStr<4> = 24,
        security_short_name: AsciiStr<40> = 30,
        currency_code: AsciiStr<3> = 70,
        security_name_gb: Utf16Str<60> = 133,
        lot_size: u32 = 193,
        previous_closing_price: i32 = 197,
        shortsell_flag: AsciiStr<1> = 202,
        listing_date: u32 = 209,
    }
}
fixed_message! {
    /// OMD-CC Security Status (621).
    CcSecurityStatus, msg_type = 621, len = 20, {
        security_code: u32 = 4,
        security_trading_status: u8 = 8,
        trading_phase_code: AsciiStr<8> = 12,
    }
}
fixed_message! {
    /// OMD-CC Top Of Book (655).
    CcTopOfBook, msg_type = 655, len = 40, {
        security_code: u32 = 4,
        aggregate_bid_quantity: u64 = 8,
        aggregate_ask_quantity: u64 = 16,
        bid_price: i32 = 24,
        ask_price: i32 = 28,
    }
}
fixed_message! {
    /// OMD-CC Statistics (660).
    CcStatistics, msg_type = 660, len = 52, {
        security_code: u32 = 4,
        shares_traded: u64 = 8,
        turnover: i64 = 16,
        high_price: i32 = 24,
        low_price: i32 = 28,
        last_price: i32 = 32,
        opening_price: i32 = 36,
    }
}

// ---------------------------------------------------------------------------------------------
// The message enum.

macro_rules! message_enum {
    (
        inline: $($variant:ident),* $(,)?;
        boxed: $($boxed:ident),* $(,)?
    ) => {
        /// Any message this crate understands. The large, rare ones (reference data, news,
        /// index data) are boxed, so the enum stays small (56 bytes instead of 352): the
        /// publishing path moves one per message.
        #[derive(Debug, Clone, PartialEq, Eq)]
        pub enum Message {
            $( $variant($variant), )*
            $( $boxed(Box<$boxed>), )*
        }

        impl Message {
            /// MsgType on the wire.
            pub fn msg_type(&self) -> u16 {
                match self {
                    $( Message::$variant(_) => $variant::MSG_TYPE, )*
                    $( Message::$boxed(_) => $boxed::MSG_TYPE, )*
                }
            }

            /// Append the encoded message (header included) to `out`.
            pub fn encode(&self, out: &mut Vec<u8>) {
                match self {
                    $( Message::$variant(m) => m.encode(out), )*
                    $( Message::$boxed(m) => m.encode(out), )*
                }
            }

            /// Decode one whole message (MsgSize bytes, header included).
            pub fn decode(buf: &[u8]) -> Result<Message, DecodeError> {
                if buf.len() < 4 {
                    return Err(DecodeError::MsgSizeTooSmall { msg_size: buf.len() as u16 });
                }
                let msg_size = u16_at(buf, 0) as usize;
                if msg_size != buf.len() {
                    return Err(DecodeError::BadLength {
                        msg_type: u16_at(buf, 2),
                        msg_size,
                        expected: buf.len(),
                    });
                }
                match u16_at(buf, 2) {
                    $( $variant::MSG_TYPE => $variant::decode(buf).map(Message::$variant), )*
                    $( $boxed::MSG_TYPE => $boxed::decode(buf).map(|m| Message::$boxed(Box::new(m))), )*
                    msg_type => Err(DecodeError::UnknownType { msg_type }),
                }
            }
        }

        $(
            impl From<$variant> for Message {
                fn from(m: $variant) -> Message {
                    Message::$variant(m)
                }
            }
        )*
        $(
            impl From<$boxed> for Message {
                fn from(m: $boxed) -> Message {
                    Message::$boxed(Box::new(m))
                }
            }
        )*
    };
}

message_enum!(
    inline:
    SequenceReset,
    DisasterRecoverySignal,
    Logon,
    LogonResponse,
    RetransmissionRequest,
    RetransmissionResponse,
    RefreshComplete,
    MarketDefinition,
    LiquidityProvider,
    CurrencyRate,
    TradingSessionStatus,
    SecurityStatus,
    VcmTrigger,
    AddOrder,
    ModifyOrder,
    DeleteOrder,
    AddOddLotOrder,
    DeleteOddLotOrder,
    AggregateOrderBookUpdate,
    BrokerQueue,
    OrderImbalance,
    Trade,
    TradeCancel,
    TradeTicker,
    ClosingPrice,
    NominalPrice,
    IndicativeEquilibriumPrice,
    ReferencePrice,
    Yield,
    Statistics,
    MarketTurnover,
    IndexDefinition,
    StockConnectDailyQuotaBalance,
    CcMarketDefinition,
    CcSecurityStatus,
    CcTopOfBook,
    CcStatistics;
    boxed:
    SecurityDefinition,
    News,
    IndexData,
    StockConnectMarketTurnover,
    CcSecurityDefinition,
);

impl Message {
    /// The encoded length in bytes.
    pub fn encoded_len(&self) -> usize {
        match self {
            Message::SecurityDefinition(m) => m.encoded_len(),
            Message::LiquidityProvider(m) => m.encoded_len(),
            Message::News(m) => m.encoded_len(),
            Message::AggregateOrderBookUpdate(m) => m.encoded_len(),
            Message::BrokerQueue(m) => m.encoded_len(),
            other => {
                let mut scratch = Vec::with_capacity(64);
                other.encode(&mut scratch);
                scratch.len()
            }
        }
    }

    /// Encode into a fresh buffer.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(64);
        self.encode(&mut out);
        out
    }

    /// The security code, for messages that carry one.
    pub fn security_code(&self) -> Option<u32> {
        Some(match self {
            Message::SecurityDefinition(m) => m.fields.security_code,
            Message::LiquidityProvider(m) => m.security_code,
            Message::SecurityStatus(m) => m.security_code,
            Message::VcmTrigger(m) => m.security_code,
            Message::AddOrder(m) => m.security_code,
            Message::ModifyOrder(m) => m.security_code,
            Message::DeleteOrder(m) => m.security_code,
            Message::AddOddLotOrder(m) => m.security_code,
            Message::DeleteOddLotOrder(m) => m.security_code,
            Message::AggregateOrderBookUpdate(m) => m.security_code,
            Message::BrokerQueue(m) => m.security_code,
            Message::OrderImbalance(m) => m.security_code,
            Message::Trade(m) => m.security_code,
            Message::TradeCancel(m) => m.security_code,
            Message::TradeTicker(m) => m.security_code,
            Message::ClosingPrice(m) => m.security_code,
            Message::NominalPrice(m) => m.security_code,
            Message::IndicativeEquilibriumPrice(m) => m.security_code,
            Message::ReferencePrice(m) => m.security_code,
            Message::Yield(m) => m.security_code,
            Message::Statistics(m) => m.security_code,
            Message::CcSecurityDefinition(m) => m.security_code,
            Message::CcSecurityStatus(m) => m.security_code,
            Message::CcTopOfBook(m) => m.security_code,
            Message::CcStatistics(m) => m.security_code,
            _ => return None,
        })
    }
}

// ---------------------------------------------------------------------------------------------
// Decoding helpers for repeating groups.

fn bad(msg_type: u16, field: &'static str, value: u64) -> DecodeError {
    DecodeError::BadValue {
        msg_type,
        field,
        value,
    }
}

fn u32_at(buf: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([buf[at], buf[at + 1], buf[at + 2], buf[at + 3]])
}

fn u64_at(buf: &[u8], at: usize) -> u64 {
    let mut raw = [0u8; 8];
    raw.copy_from_slice(&buf[at..at + 8]);
    u64::from_le_bytes(raw)
}

fn ascii4(bytes: &[u8]) -> AsciiStr<4> {
    AsciiStr([bytes[0], bytes[1], bytes[2], bytes[3]])
}

fn check_max(
    msg_type: u16,
    field: &'static str,
    count: usize,
    max: usize,
) -> Result<(), DecodeError> {
    if count > max {
        return Err(DecodeError::TooManyEntries {
            msg_type,
            field,
            count,
            max,
        });
    }
    Ok(())
}

/// Check a fixed part of `fixed` bytes followed by `count` entries of `entry` bytes, where the
/// count is a Uint16 at `count_at`; returns the count.
fn check_group(
    buf: &[u8],
    msg_type: u16,
    fixed: usize,
    count_at: usize,
    entry: usize,
) -> Result<usize, DecodeError> {
    if buf.len() < fixed {
        return Err(DecodeError::BadLength {
            msg_type,
            msg_size: buf.len(),
            expected: fixed,
        });
    }
    let count = u16_at(buf, count_at) as usize;
    check_group_len(buf, msg_type, fixed, count, entry)
}

/// As [`check_group`] with a Uint8 count.
fn check_group_u8(
    buf: &[u8],
    msg_type: u16,
    fixed: usize,
    count_at: usize,
    entry: usize,
) -> Result<usize, DecodeError> {
    if buf.len() < fixed {
        return Err(DecodeError::BadLength {
            msg_type,
            msg_size: buf.len(),
            expected: fixed,
        });
    }
    let count = buf[count_at] as usize;
    check_group_len(buf, msg_type, fixed, count, entry)
}

fn check_group_len(
    buf: &[u8],
    msg_type: u16,
    fixed: usize,
    count: usize,
    entry: usize,
) -> Result<usize, DecodeError> {
    let expected = fixed + count * entry;
    if buf.len() != expected {
        return Err(DecodeError::BadLength {
            msg_type,
            msg_size: buf.len(),
            expected,
        });
    }
    Ok(count)
}
