//! Codec tests.
//!
//! Golden bytes: every expected byte string below was built by hand, field by field, in the
//! order of the reference tables (§2.4, §4.1), with a sequential builder that knows nothing of
//! the codec's offsets: a wrong offset in a layout shows up as a mismatch. Fillers are spaces.
//! Each golden message is also wrapped in a hand-built 16-byte packet header and compared with
//! the packet the codec builds.
//!
//! Property tests: every message type round-trips (struct -> bytes -> struct, and the bytes are
//! reproduced), and arbitrary bytes never panic the packet or message decoders.

use crate::message::*;
use crate::packet::{heartbeat, single_packet, Packet, PacketBuilder, PacketHeader};
use crate::wire::{
    AsciiStr, BookSide, BrokerQueueSide, DecodeError, NulStr, UpdateAction, Utf16Str,
};
use proptest::prelude::*;
use twinsite_core::Timestamp;

/// Sequential little-endian byte builder for golden vectors.
struct G(Vec<u8>);

impl G {
    fn msg(size: u16, msg_type: u16) -> G {
        G(Vec::new()).u16(size).u16(msg_type)
    }
    fn u8(mut self, v: u8) -> G {
        self.0.push(v);
        self
    }
    fn u16(mut self, v: u16) -> G {
        self.0.extend_from_slice(&v.to_le_bytes());
        self
    }
    fn i16(mut self, v: i16) -> G {
        self.0.extend_from_slice(&v.to_le_bytes());
        self
    }
    fn u32(mut self, v: u32) -> G {
        self.0.extend_from_slice(&v.to_le_bytes());
        self
    }
    fn i32(mut self, v: i32) -> G {
        self.0.extend_from_slice(&v.to_le_bytes());
        self
    }
    fn u64(mut self, v: u64) -> G {
        self.0.extend_from_slice(&v.to_le_bytes());
        self
    }
    fn i64(mut self, v: i64) -> G {
        self.0.extend_from_slice(&v.to_le_bytes());
        self
    }
    /// ASCII, left-aligned, space-padded to `n`.
    fn s(mut self, text: &str, n: usize) -> G {
        assert!(text.len() <= n);
        self.0.extend_from_slice(text.as_bytes());
        self.0.extend(std::iter::repeat_n(b' ', n - text.len()));
        self
    }
    /// Filler of `n` spaces.
    fn fill(self, n: usize) -> G {
        self.s("", n)
    }
    fn raw(mut self, bytes: &[u8]) -> G {
        self.0.extend_from_slice(bytes);
        self
    }
    fn done(self) -> Vec<u8> {
        self.0
    }
}

const SEND_TIME: u64 = 1_700_000_000_123_000_000;

/// Check a message against its golden bytes, then inside a hand-built packet.
fn check_golden(msg: Message, golden: Vec<u8>) {
    assert_eq!(msg.to_bytes(), golden, "encode {:?}", msg.msg_type());
    assert_eq!(Message::decode(&golden), Ok(msg.clone()));
    assert_eq!(msg.encoded_len(), golden.len());

    let mut packet = G(Vec::new())
        .u16(16 + golden.len() as u16)
        .u8(1)
        .u8(b' ')
        .u32(77)
        .u64(SEND_TIME)
        .done();
    packet.extend_from_slice(&golden);
    let built = single_packet(77, Timestamp(SEND_TIME + 456_789), &[&msg]);
    assert_eq!(built, packet, "packet for {}", msg.msg_type());
    let parsed = Packet::parse(&packet).expect("golden packet parses");
    let messages: Vec<_> = parsed.messages().collect();
    assert_eq!(messages.len(), 1);
    assert_eq!(messages[0].0, 77);
    assert_eq!(Message::decode(messages[0].1), Ok(msg));
}

#[test]
fn golden_control_and_rts_messages() {
    check_golden(
        SequenceReset { new_seq_no: 1 }.into(),
        G::msg(8, 100).u32(1).done(),
    );
    check_golden(
        DisasterRecoverySignal { dr_status: 2 }.into(),
        G::msg(8, 105).u32(2).done(),
    );
    check_golden(
        Logon {
            username: NulStr::new("trader01"),
        }
        .into(),
        G::msg(16, 101).raw(b"trader01\0\0\0\0").done(),
    );
    check_golden(
        LogonResponse {
            session_status: 100,
        }
        .into(),
        G::msg(8, 102).u8(100).fill(3).done(),
    );
    check_golden(
        RetransmissionRequest {
            channel_id: 21,
            begin_seq_num: 1000,
            end_seq_num: 1099,
        }
        .into(),
        G::msg(16, 201).u16(21).fill(2).u32(1000).u32(1099).done(),
    );
    check_golden(
        RetransmissionResponse {
            channel_id: 21,
            retrans_status: 2,
            begin_seq_num: 1000,
            end_seq_num: 1099,
        }
        .into(),
        G::msg(16, 202)
            .u16(21)
            .u8(2)
            .fill(1)
            .u32(1000)
            .u32(1099)
            .done(),
    );
    check_golden(
        RefreshComplete { last_seq_num: 4242 }.into(),
        G::msg(8, 203).u32(4242).done(),
    );
}

#[test]
fn golden_reference_data() {
    check_golden(
        MarketDefinition {
            market_code: AsciiStr::new("MAIN"),
            market_name: AsciiStr::new("Main Board"),
            currency_code: AsciiStr::new("HKD"),
            number_of_securities: 2_600,
        }
        .into(),
        G::msg(40, 10)
            .s("MAIN", 4)
            .s("Main Board", 25)
            .s("HKD", 3)
            .u32(2_600)
            .done(),
    );

    let fields = SecurityDefinitionFields {
        security_code: 700,
        market_code: AsciiStr::new("MAIN"),
        isin_code: AsciiStr::new("KYG875721634"),
        instrument_type: AsciiStr::new("EQTY"),
        product_type: 1,
        spread_table_code: AsciiStr::new("01"),
        security_short_name: AsciiStr::new("TENCENT"),
        currency_code: AsciiStr::new("HKD"),
        security_name_gccs: Utf16Str::new("中文"),
        security_name_gb: Utf16Str::new("中"),
        lot_size: 100,
        previous_closing_price: 385_200,
        vcm_flag: AsciiStr::from_char(b'Y'),
        short_sell_flag: AsciiStr::from_char(b'Y'),
        cas_flag: AsciiStr::from_char(b'Y'),
        ccass_flag: AsciiStr::from_char(b'Y'),
        dummy_security_flag: AsciiStr::from_char(b'N'),
        stamp_duty_flag: AsciiStr::from_char(b'Y'),
        listing_date: 20040616,
        delisting_date: 0,
        free_text: AsciiStr::new("free"),
        pos_flag: AsciiStr::from_char(b'Y'),
        pos_upper_limit: 443_000,
        pos_lower_limit: 327_400,
        domain_stmt_security_code: 0,
        efn_flag: AsciiStr::from_char(b'N'),
        accrued_interest: 1,
        coupon_rate: 2,
        face_value: 3,
        decimals_in_face_value: 4,
        face_value_currency: AsciiStr::new("USD"),
        maturity_date: 20300101,
        investor_type: AsciiStr::from_char(b'R'),
        conversion_ratio: 5,
        strike_price1: 6,
        strike_price2: 7,
        warrant_maturity_date: 20291231,
        call_put_flag: AsciiStr::from_char(b'C'),
        style: AsciiStr::from_char(b'E'),
        warrant_type: AsciiStr::from_char(b'N'),
        call_price: 8,
        decimals_in_call_price: 9,
        entitlement: 10,
        decimals_in_entitlement: 11,
        no_warrants_per_entitlement: 12,
    };
    let gccs: &[u8] = &[0x2D, 0x4E, 0x87, 0x65];
    let mut gccs_field = gccs.to_vec();
    while gccs_field.len() < 60 {
        gccs_field.extend_from_slice(&[0x20, 0]);
    }
    let mut gb_field = vec![0x2D, 0x4E];
    while gb_field.len() < 60 {
        gb_field.extend_from_slice(&[0x20, 0]);
    }
    let golden = G::msg(544 + 16, 11)
        .u32(700)
        .s("MAIN", 4)
        .s("KYG875721634", 12)
        .s("EQTY", 4)
        .u8(1)
        .fill(1)
        .s("01", 2)
        .s("TENCENT", 40)
        .s("HKD", 3)
        .raw(&gccs_field)
        .raw(&gb_field)
        .u32(100)
        .fill(4)
        .i32(385_200)
        .s("Y", 1)
        .s("Y", 1)
        .s("Y", 1)
        .s("Y", 1)
        .s("N", 1)
        .fill(1)
        .s("Y", 1)
        .fill(1)
        .u32(20040616)
        .u32(0)
        .s("free", 38)
        .fill(62)
        .s("Y", 1)
        .i32(443_000)
        .i32(327_400)
        .u32(0)
        .fill(37)
        .s("N", 1)
        .u32(1)
        .u32(2)
        .fill(1)
        .u64(3)
        .u8(4)
        .s("USD", 3)
        .u32(20300101)
        .s("R", 1)
        .fill(44)
        .u32(5)
        .i32(6)
        .i32(7)
        .u32(20291231)
        .s("C", 1)
        .s("E", 1)
        .fill(2)
        .s("N", 1)
        .i32(8)
        .u8(9)
        .i32(10)
        .u8(11)
        .u32(12)
        .fill(63)
        .u16(2)
        .u32(5)
        .fill(4)
        .u32(388)
        .fill(4)
        .done();
    let msg = SecurityDefinition {
        fields,
        underlyings: vec![5, 388],
    };
    assert_eq!(msg.fields.security_name_gccs.text(), "中文");
    check_golden(msg.into(), golden);

    check_golden(
        LiquidityProvider {
            security_code: 12345,
            lp_broker_numbers: vec![9001, 9002, 9003],
        }
        .into(),
        G::msg(16, 13)
            .u32(12345)
            .u16(3)
            .u16(9001)
            .u16(9002)
            .u16(9003)
            .done(),
    );
    check_golden(
        CurrencyRate {
            currency_code: AsciiStr::new("JPY"),
            currency_factor: 3,
            currency_rate: 520_000,
        }
        .into(),
        G::msg(16, 14)
            .s("JPY", 3)
            .fill(1)
            .u16(3)
            .fill(2)
            .u32(520_000)
            .done(),
    );
}

#[test]
fn golden_status_messages() {
    check_golden(
        TradingSessionStatus {
            market_code: AsciiStr::new("MAIN"),
            trading_session_sub_id: 3,
            trading_ses_status: 30,
            trading_ses_control_flag: AsciiStr::from_char(b'0'),
            start_date_time: 1_700_000_000_000_000_000,
            end_date_time: 0,
        }
        .into(),
        G::msg(32, 20)
            .s("MAIN", 4)
            .fill(1)
            .u8(3)
            .u8(30)
            .s("0", 1)
            .fill(4)
            .u64(1_700_000_000_000_000_000)
            .u64(0)
            .done(),
    );
    check_golden(
        SecurityStatus {
            security_code: 5,
            suspension_indicator: 2,
        }
        .into(),
        G::msg(12, 21).u32(5).u8(2).fill(3).done(),
    );
    check_golden(
        VcmTrigger {
            security_code: 5,
            cooling_off_start_time: 10,
            cooling_off_end_time: 20,
            vcm_reference_price: 60_000,
            vcm_lower_price: 54_000,
            vcm_upper_price: 66_000,
        }
        .into(),
        G::msg(36, 23)
            .u32(5)
            .u64(10)
            .u64(20)
            .i32(60_000)
            .i32(54_000)
            .i32(66_000)
            .done(),
    );
    check_golden(
        OrderImbalance {
            security_code: 5,
            order_imbalance_direction: AsciiStr::from_char(b'B'),
            order_imbalance_quantity: 123_456,
        }
        .into(),
        G::msg(20, 56)
            .u32(5)
            .s("B", 1)
            .fill(1)
            .u64(123_456)
            .fill(2)
            .done(),
    );
}

#[test]
fn golden_order_messages() {
    check_golden(
        AddOrder {
            security_code: 700,
            order_id: 0x0102_0304_0506_0708,
            price: 385_200,
            quantity: 300,
            side: BookSide::Offer,
            order_type: AsciiStr::from_char(b'2'),
            order_book_position: 0,
        }
        .into(),
        G::msg(32, 30)
            .u32(700)
            .u64(0x0102_0304_0506_0708)
            .i32(385_200)
            .u32(300)
            .u16(1)
            .s("2", 1)
            .fill(1)
            .i32(0)
            .done(),
    );
    check_golden(
        ModifyOrder {
            security_code: 700,
            order_id: 99,
            quantity: 200,
            side: BookSide::Bid,
            order_book_position: 0,
        }
        .into(),
        G::msg(28, 31)
            .u32(700)
            .u64(99)
            .u32(200)
            .u16(0)
            .fill(2)
            .i32(0)
            .done(),
    );
    check_golden(
        DeleteOrder {
            security_code: 700,
            order_id: 99,
            side: BookSide::Offer,
        }
        .into(),
        G::msg(20, 32).u32(700).u64(99).u16(1).fill(2).done(),
    );
    check_golden(
        AddOddLotOrder {
            security_code: 700,
            order_id: 100,
            price: 385_000,
            quantity: 37,
            broker_id: 1234,
            side: BookSide::Bid,
        }
        .into(),
        G::msg(28, 33)
            .u32(700)
            .u64(100)
            .i32(385_000)
            .u32(37)
            .u16(1234)
            .u16(0)
            .done(),
    );
    check_golden(
        DeleteOddLotOrder {
            security_code: 700,
            order_id: 100,
            broker_id: 1234,
            side: BookSide::Offer,
        }
        .into(),
        G::msg(20, 34).u32(700).u64(100).u16(1234).u16(1).done(),
    );
    check_golden(
        AggregateOrderBookUpdate {
            security_code: 700,
            entries: vec![
                BookEntry {
                    aggregate_quantity: 1_000,
                    price: 385_200,
                    number_of_orders: 3,
                    side: BookSide::Bid,
                    price_level: 1,
                    update_action: UpdateAction::New,
                },
                BookEntry {
                    aggregate_quantity: 0,
                    price: 0,
                    number_of_orders: 0,
                    side: BookSide::Offer,
                    price_level: 0,
                    update_action: UpdateAction::OrderBookClear,
                },
            ],
        }
        .into(),
        G::msg(60, 53)
            .u32(700)
            .fill(3)
            .u8(2)
            .u64(1_000)
            .i32(385_200)
            .u32(3)
            .u16(0)
            .u8(1)
            .u8(0)
            .fill(4)
            .u64(0)
            .i32(0)
            .u32(0)
            .u16(1)
            .u8(0)
            .u8(74)
            .fill(4)
            .done(),
    );
    check_golden(
        BrokerQueue {
            security_code: 700,
            side: BrokerQueueSide::Sell,
            more: true,
            items: vec![
                BrokerQueueItem::Broker(4321),
                BrokerQueueItem::Spread(1),
                BrokerQueueItem::Broker(1111),
            ],
        }
        .into(),
        G::msg(24, 54)
            .u32(700)
            .u8(3)
            .u16(2)
            .s("Y", 1)
            .u16(4321)
            .s("B", 1)
            .fill(1)
            .u16(1)
            .s("S", 1)
            .fill(1)
            .u16(1111)
            .s("B", 1)
            .fill(1)
            .done(),
    );
}

#[test]
fn golden_trade_and_price_messages() {
    check_golden(
        Trade {
            security_code: 700,
            trade_id: 17,
            price: 385_200,
            quantity: 500,
            trd_type: 0,
            trade_time: 1_700_000_000_123_456_000,
        }
        .into(),
        G::msg(32, 50)
            .u32(700)
            .u32(17)
            .i32(385_200)
            .u32(500)
            .i16(0)
            .fill(2)
            .u64(1_700_000_000_123_456_000)
            .done(),
    );
    check_golden(
        TradeCancel {
            security_code: 700,
            trade_id: 17,
        }
        .into(),
        G::msg(12, 51).u32(700).u32(17).done(),
    );
    check_golden(
        TradeTicker {
            security_code: 700,
            ticker_id: 3,
            price: 385_200,
            aggregate_quantity: 1_500,
            trade_time: 42,
            trd_type: 103,
            trd_cancel_flag: AsciiStr::from_char(b'N'),
        }
        .into(),
        G::msg(36, 52)
            .u32(700)
            .u32(3)
            .i32(385_200)
            .u64(1_500)
            .u64(42)
            .i16(103)
            .s("N", 1)
            .fill(1)
            .done(),
    );
    check_golden(
        ClosingPrice {
            security_code: 700,
            closing_price: 386_000,
            number_of_trades: 0,
        }
        .into(),
        G::msg(16, 62).u32(700).i32(386_000).u32(0).done(),
    );
    check_golden(
        NominalPrice {
            security_code: 700,
            nominal_price: 385_400,
        }
        .into(),
        G::msg(12, 40).u32(700).i32(385_400).done(),
    );
    check_golden(
        IndicativeEquilibriumPrice {
            security_code: 700,
            price: 385_000,
            aggregate_quantity: 9_000,
        }
        .into(),
        G::msg(20, 41).u32(700).i32(385_000).u64(9_000).done(),
    );
    check_golden(
        ReferencePrice {
            security_code: 700,
            reference_price: 385_000,
            lower_price: 365_800,
            upper_price: 404_200,
        }
        .into(),
        G::msg(20, 43)
            .u32(700)
            .i32(385_000)
            .i32(365_800)
            .i32(404_200)
            .done(),
    );
    check_golden(
        Yield {
            security_code: 4_000,
            yield_value: -1_250,
        }
        .into(),
        G::msg(12, 44).u32(4_000).i32(-1_250).done(),
    );
    check_golden(
        Statistics {
            security_code: 700,
            shares_traded: 1_000,
            turnover: 385_200_000,
            high_price: 386_000,
            low_price: 384_000,
            last_price: 385_200,
            vwap: 385_200,
            short_sell_shares_traded: 100,
            short_sell_turnover: 38_520_000,
        }
        .into(),
        G::msg(52, 60)
            .u32(700)
            .u64(1_000)
            .i64(385_200_000)
            .i32(386_000)
            .i32(384_000)
            .i32(385_200)
            .i32(385_200)
            .u32(100)
            .i64(38_520_000)
            .done(),
    );
    check_golden(
        MarketTurnover {
            market_code: AsciiStr::new("MAIN"),
            currency_code: AsciiStr::new("HKD"),
            turnover: 12_345_678_000,
        }
        .into(),
        G::msg(20, 61)
            .s("MAIN", 4)
            .s("HKD", 3)
            .fill(1)
            .i64(12_345_678_000)
            .done(),
    );
}

#[test]
fn golden_news() {
    let mut headline = Box::new([b' '; 320]);
    headline[..5].copy_from_slice(b"Hello");
    let mut line = Box::new([b' '; 160]);
    line[..4].copy_from_slice(b"Body");
    let msg = News {
        news_type: AsciiStr::new("EXN"),
        news_id: AsciiStr::new("001"),
        headline,
        cancel_flag: AsciiStr::from_char(b'N'),
        last_fragment: AsciiStr::from_char(b'Y'),
        release_time: 1_700_000_000_000_000_000,
        market_codes: vec![AsciiStr::new("MAIN"), AsciiStr::new("GEM")],
        security_codes: vec![700],
        news_lines: vec![line],
    };
    let golden = G::msg(356 + 8 + 4 + 160, 22)
        .s("EXN", 3)
        .s("001", 3)
        .s("Hello", 320)
        .s("N", 1)
        .s("Y", 1)
        .fill(4)
        .u64(1_700_000_000_000_000_000)
        .fill(2)
        .u16(2)
        .s("MAIN", 4)
        .s("GEM", 4)
        .fill(2)
        .u16(1)
        .u32(700)
        .fill(2)
        .u16(1)
        .s("Body", 160)
        .done();
    check_golden(msg.into(), golden);
}

#[test]
fn golden_index_and_stock_connect() {
    check_golden(
        IndexDefinition {
            index_code: AsciiStr::new("HSI"),
            index_source: AsciiStr::from_char(b'H'),
            currency_code: AsciiStr::new("HKD"),
        }
        .into(),
        G::msg(20, 70)
            .s("HSI", 11)
            .s("H", 1)
            .s("HKD", 3)
            .fill(1)
            .done(),
    );
    let null = i64::MIN;
    check_golden(
        IndexData {
            index_code: AsciiStr::new("HSI"),
            index_status: AsciiStr::from_char(b'T'),
            index_time: Some(1_700_000_000_000_000_000),
            index_value: Some(180_001_234),
            net_chg_prev_day: Some(-1_000),
            high_value: None,
            low_value: None,
            eas_value: None,
            index_turnover: None,
            opening_value: Some(1),
            closing_value: None,
            previous_ses_close: Some(2),
            index_volume: None,
            net_chg_prev_day_pct: -55,
            exception: AsciiStr::from_char(b' '),
        }
        .into(),
        G::msg(112, 71)
            .s("HSI", 11)
            .s("T", 1)
            .i64(1_700_000_000_000_000_000)
            .i64(180_001_234)
            .i64(-1_000)
            .i64(null)
            .i64(null)
            .i64(null)
            .i64(null)
            .i64(1)
            .i64(null)
            .i64(2)
            .i64(null)
            .i32(-55)
            .fill(1)
            .fill(3)
            .done(),
    );
    check_golden(
        StockConnectDailyQuotaBalance {
            stock_connect_market: AsciiStr::new("SH"),
            trading_direction: AsciiStr::new("NB"),
            daily_quota_balance: None,
            daily_quota_balance_time: 7,
        }
        .into(),
        G::msg(24, 80).s("SH", 2).s("NB", 2).i64(null).u64(7).done(),
    );
    check_golden(
        StockConnectMarketTurnover {
            stock_connect_market: AsciiStr::new("SZ"),
            trading_direction: AsciiStr::new("SB"),
            buy_turnover: Some(10),
            sell_turnover: Some(20),
            buy_plus_sell_turnover: Some(30),
        }
        .into(),
        G::msg(32, 81)
            .s("SZ", 2)
            .s("SB", 2)
            .i64(10)
            .i64(20)
            .i64(30)
            .done(),
    );
}

#[test]
fn golden_omd_cc() {
    check_golden(
        CcMarketDefinition {
            market_code: AsciiStr::new("ASHR"),
            market_name: AsciiStr::new("SSE A Share"),
            currency_code: AsciiStr::new("CNY"),
            number_of_securities: 600,
        }
        .into(),
        G::msg(40, 610)
            .s("ASHR", 4)
            .s("SSE A Share", 25)
            .s("CNY", 3)
            .u32(600)
            .done(),
    );
    let mut gb = vec![0x2D, 0x4E];
    while gb.len() < 60 {
        gb.extend_from_slice(&[0x20, 0]);
    }
    check_golden(
        CcSecurityDefinition {
            security_code: 600_519,
            market_code: AsciiStr::new("ASHR"),
            isin_code: AsciiStr::new("CNE0000018R8"),
            instrument_type: AsciiStr::new("EQTY"),
            security_short_name: AsciiStr::new("KWEICHOW MOUTAI"),
            currency_code: AsciiStr::new("CNY"),
            security_name_gb: Utf16Str::new("中"),
            lot_size: 100,
            previous_closing_price: 1_500_000,
            shortsell_flag: AsciiStr::from_char(b'N'),
            listing_date: 20010827,
        }
        .into(),
        G::msg(220, 611)
            .u32(600_519)
            .s("ASHR", 4)
            .s("CNE0000018R8", 12)
            .s("EQTY", 4)
            .fill(2)
            .s("KWEICHOW MOUTAI", 40)
            .s("CNY", 3)
            .fill(60)
            .raw(&gb)
            .u32(100)
            .i32(1_500_000)
            .fill(1)
            .s("N", 1)
            .fill(6)
            .u32(20010827)
            .fill(7)
            .done(),
    );
    check_golden(
        CcSecurityStatus {
            security_code: 600_519,
            security_trading_status: 3,
            trading_phase_code: AsciiStr::new("T111"),
        }
        .into(),
        G::msg(20, 621)
            .u32(600_519)
            .u8(3)
            .fill(3)
            .s("T111", 8)
            .done(),
    );
    check_golden(
        CcTopOfBook {
            security_code: 600_519,
            aggregate_bid_quantity: 300,
            aggregate_ask_quantity: 400,
            bid_price: 1_499_990,
            ask_price: 1_500_000,
        }
        .into(),
        G::msg(40, 655)
            .u32(600_519)
            .u64(300)
            .u64(400)
            .i32(1_499_990)
            .i32(1_500_000)
            .fill(8)
            .done(),
    );
    check_golden(
        CcStatistics {
            security_code: 600_519,
            shares_traded: 1,
            turnover: 2,
            high_price: 3,
            low_price: 4,
            last_price: 5,
            opening_price: 6,
        }
        .into(),
        G::msg(52, 660)
            .u32(600_519)
            .u64(1)
            .i64(2)
            .i32(3)
            .i32(4)
            .i32(5)
            .i32(6)
            .fill(12)
            .done(),
    );
}

#[test]
fn golden_heartbeat_and_multi_message_packet() {
    let hb = heartbeat(41, Timestamp(SEND_TIME + 999));
    assert_eq!(
        hb,
        G(Vec::new())
            .u16(16)
            .u8(0)
            .u8(b' ')
            .u32(41)
            .u64(SEND_TIME)
            .done()
    );
    let parsed = Packet::parse(&hb).unwrap();
    assert!(parsed.header.is_heartbeat());
    assert_eq!(parsed.messages().count(), 0);

    let a: Message = NominalPrice {
        security_code: 1,
        nominal_price: 2,
    }
    .into();
    let b: Message = TradeCancel {
        security_code: 3,
        trade_id: 4,
    }
    .into();
    let packet = single_packet(9, Timestamp(SEND_TIME), &[&a, &b]);
    let golden = G(Vec::new())
        .u16(40)
        .u8(2)
        .u8(b' ')
        .u32(9)
        .u64(SEND_TIME)
        .u16(12)
        .u16(40)
        .u32(1)
        .i32(2)
        .u16(12)
        .u16(51)
        .u32(3)
        .u32(4)
        .done();
    assert_eq!(packet, golden);
    let seqs: Vec<u32> = Packet::parse(&packet)
        .unwrap()
        .messages()
        .map(|(s, _)| s)
        .collect();
    assert_eq!(seqs, vec![9, 10]);
}

#[test]
fn framing_errors_are_typed() {
    let a: Message = NominalPrice {
        security_code: 1,
        nominal_price: 2,
    }
    .into();
    let packet = single_packet(9, Timestamp(SEND_TIME), &[&a]);
    assert_eq!(
        Packet::parse(&packet[..10]).unwrap_err(),
        DecodeError::ShortPacket { len: 10 }
    );
    assert!(matches!(
        Packet::parse(&packet[..20]).unwrap_err(),
        DecodeError::PktSizeMismatch { .. }
    ));
    let mut lying = packet.clone();
    lying[16] = 40; // MsgSize larger than the packet
    assert!(matches!(
        Packet::parse(&lying).unwrap_err(),
        DecodeError::MessageOverrun { .. }
    ));
    let mut count = packet.clone();
    count[2] = 2;
    assert!(matches!(
        Packet::parse(&count).unwrap_err(),
        DecodeError::MsgCountMismatch { .. }
    ));
    let mut unknown = a.to_bytes();
    unknown[2] = 0xEE;
    assert!(matches!(
        Message::decode(&unknown).unwrap_err(),
        DecodeError::UnknownType { .. }
    ));
    let mut side = DeleteOrder::default().to_message_bytes();
    side[16] = 7;
    assert!(matches!(
        Message::decode(&side).unwrap_err(),
        DecodeError::BadValue { field: "side", .. }
    ));
}

#[test]
fn packet_builder_respects_the_payload_limit() {
    let msg: Message = AddOrder::default().into();
    let bytes = msg.to_bytes();
    let mut builder = PacketBuilder::standard();
    let mut n = 0;
    while builder.push_raw(1, &bytes) {
        n += 1;
    }
    assert_eq!(n, (1472 - 16) / 32);
    let packet = builder.finish(Timestamp(0));
    assert!(packet.len() <= 1472);
    assert_eq!(Packet::parse(&packet).unwrap().messages().count(), n);
    assert_eq!(PacketHeader::decode(&packet).unwrap().msg_count as usize, n);
}

impl DeleteOrder {
    fn to_message_bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.encode(&mut out);
        out
    }
}

/// A random message of every type, drawn from a seeded generator.
pub(crate) fn sample_message(kind: usize, rng: &mut dyn FnMut() -> u64) -> Message {
    match kind % 42 {
        0 => SequenceReset::sample(rng).into(),
        1 => DisasterRecoverySignal::sample(rng).into(),
        2 => Logon::sample(rng).into(),
        3 => LogonResponse::sample(rng).into(),
        4 => RetransmissionRequest::sample(rng).into(),
        5 => RetransmissionResponse::sample(rng).into(),
        6 => RefreshComplete::sample(rng).into(),
        7 => MarketDefinition::sample(rng).into(),
        8 => SecurityDefinition {
            fields: SecurityDefinitionFields::sample(rng),
            underlyings: (0..rng() % 5).map(|_| rng() as u32).collect(),
        }
        .into(),
        9 => LiquidityProvider {
            security_code: rng() as u32,
            lp_broker_numbers: (0..rng() % 51).map(|_| rng() as u16).collect(),
        }
        .into(),
        10 => CurrencyRate::sample(rng).into(),
        11 => TradingSessionStatus::sample(rng).into(),
        12 => SecurityStatus::sample(rng).into(),
        13 => VcmTrigger::sample(rng).into(),
        14 => {
            let mut headline = Box::new([0u8; 320]);
            headline.iter_mut().for_each(|b| *b = rng() as u8);
            News {
                news_type: AsciiStr::new("EXC"),
                news_id: AsciiStr::new("123"),
                headline,
                cancel_flag: AsciiStr::from_char(b'N'),
                last_fragment: AsciiStr::from_char(b'N'),
                release_time: rng(),
                market_codes: (0..rng() % 5).map(|_| AsciiStr::new("GEM")).collect(),
                security_codes: (0..rng() % 201).map(|_| rng() as u32).collect(),
                news_lines: (0..rng() % 11)
                    .map(|_| {
                        let mut line = Box::new([0u8; 160]);
                        line.iter_mut().for_each(|b| *b = rng() as u8);
                        line
                    })
                    .collect(),
            }
            .into()
        }
        15 => AddOrder::sample(rng).into(),
        16 => ModifyOrder::sample(rng).into(),
        17 => DeleteOrder::sample(rng).into(),
        18 => AddOddLotOrder::sample(rng).into(),
        19 => DeleteOddLotOrder::sample(rng).into(),
        20 => AggregateOrderBookUpdate {
            security_code: rng() as u32,
            entries: (0..rng() % 40).map(|_| BookEntry::sample(rng)).collect(),
        }
        .into(),
        21 => BrokerQueue {
            security_code: rng() as u32,
            side: if rng() & 1 == 0 {
                BrokerQueueSide::Buy
            } else {
                BrokerQueueSide::Sell
            },
            more: rng() & 1 == 0,
            items: (0..rng() % 41)
                .map(|_| {
                    if rng().rem_euclid(3) == 0 {
                        BrokerQueueItem::Spread(rng() as u16)
                    } else {
                        BrokerQueueItem::Broker(rng() as u16)
                    }
                })
                .collect(),
        }
        .into(),
        22 => OrderImbalance::sample(rng).into(),
        23 => Trade::sample(rng).into(),
        24 => TradeCancel::sample(rng).into(),
        25 => TradeTicker::sample(rng).into(),
        26 => ClosingPrice::sample(rng).into(),
        27 => NominalPrice::sample(rng).into(),
        28 => IndicativeEquilibriumPrice::sample(rng).into(),
        29 => ReferencePrice::sample(rng).into(),
        30 => Yield::sample(rng).into(),
        31 => Statistics::sample(rng).into(),
        32 => MarketTurnover::sample(rng).into(),
        33 => IndexDefinition::sample(rng).into(),
        34 => IndexData::sample(rng).into(),
        35 => StockConnectDailyQuotaBalance::sample(rng).into(),
        36 => StockConnectMarketTurnover::sample(rng).into(),
        37 => CcMarketDefinition::sample(rng).into(),
        38 => CcSecurityDefinition::sample(rng).into(),
        39 => CcSecurityStatus::sample(rng).into(),
        40 => CcTopOfBook::sample(rng).into(),
        _ => CcStatistics::sample(rng).into(),
    }
}

fn seeded(seed: u64) -> impl FnMut() -> u64 {
    use rand::{RngCore, SeedableRng};
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    move || rng.next_u64()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2048))]

    /// Every message type: struct -> bytes -> struct is the identity, the bytes re-encode to
    /// themselves, and MsgSize is the encoded length.
    #[test]
    fn every_message_type_round_trips(kind in 0usize..42, seed in any::<u64>()) {
        let mut rng = seeded(seed);
        let msg = sample_message(kind, &mut rng);
        let bytes = msg.to_bytes();
        prop_assert_eq!(u16::from_le_bytes([bytes[0], bytes[1]]) as usize, bytes.len());
        prop_assert_eq!(msg.encoded_len(), bytes.len());
        let back = Message::decode(&bytes);
        prop_assert_eq!(back.as_ref(), Ok(&msg));
        prop_assert_eq!(back.unwrap().to_bytes(), bytes);
    }

    /// Arbitrary bytes never panic the packet parser, the message decoder or the deframer.
    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..1600)) {
        if let Ok(packet) = Packet::parse(&bytes) {
            for (_, msg) in packet.messages() {
                let _ = Message::decode(msg);
            }
        }
        let _ = Message::decode(&bytes);
        let mut deframer = crate::packet::StreamDeframer::default();
        deframer.push(&bytes);
        while let Ok(Some(_)) = deframer.next_packet() {}
    }

    /// Valid framing with corrupted message bodies never panics either.
    #[test]
    fn corrupted_messages_never_panic(kind in 0usize..42, seed in any::<u64>(), flips in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..8)) {
        let mut rng = seeded(seed);
        let mut bytes = sample_message(kind, &mut rng).to_bytes();
        let len = bytes.len();
        for (at, value) in flips {
            bytes[at % len] = value;
        }
        let _ = Message::decode(&bytes);
        let mut builder = PacketBuilder::standard();
        builder.push_raw(1, &bytes);
        let packet = builder.finish(Timestamp(0));
        if let Ok(parsed) = Packet::parse(&packet) {
            for (_, msg) in parsed.messages() {
                let _ = Message::decode(msg);
            }
        }
    }
}
