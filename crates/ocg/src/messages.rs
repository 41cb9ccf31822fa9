//! The 28 OCG-C message types (reference §1.4-§1.11) as plain structs, one field per bit
//! position. Fields the reference marks mandatory ("Y") are bare values; all others are
//! `Option`. Decoding a message with a mandatory field absent fails with
//! `MissingMandatoryField`; a set bit with no field defined fails with `UndefinedBitSet`.
//! Conditional rules ("Price required iff Limit", "BCAN required for board lots") are business
//! validation and belong to the gateway, not to the codec.

use serde::{Deserialize, Serialize};

use crate::enums::*;
use crate::error::{DecodeError, FieldError};
use crate::wire::{
    bit_is_set, set_bit, Block, Char, Decimal, FixedStr, Group, Reader, VarStr, WireField,
};

/// char[n] shorthands used throughout the layouts.
pub type Id21 = FixedStr<21>;
pub type Broker12 = FixedStr<12>;
pub type Location11 = FixedStr<11>;
pub type Exchange5 = FixedStr<5>;
pub type Time25 = FixedStr<25>;
pub type Text50 = VarStr<50>;
pub type Reason75 = VarStr<75>;

macro_rules! field_ty {
    (req $t:ty) => { $t };
    (opt $t:ty) => { Option<$t> };
}

macro_rules! put_field {
    (req, $v:expr, $bit:expr, $map:expr, $out:expr) => {{
        set_bit($map, $bit);
        $v.put($out);
    }};
    (opt, $v:expr, $bit:expr, $map:expr, $out:expr) => {
        if let Some(v) = &$v {
            set_bit($map, $bit);
            v.put($out);
        }
    };
}

macro_rules! get_field {
    (req, $t:ty, $bit:expr, $map:expr, $r:expr, $missing:expr, $wrap:expr) => {
        if bit_is_set($map, $bit) {
            <$t>::get($r).map_err(|e| $wrap(e, $bit))?
        } else {
            return Err($missing($bit));
        }
    };
    (opt, $t:ty, $bit:expr, $map:expr, $r:expr, $missing:expr, $wrap:expr) => {
        if bit_is_set($map, $bit) {
            Some(<$t>::get($r).map_err(|e| $wrap(e, $bit))?)
        } else {
            None
        }
    };
}

/// The presence bits a layout defines, as a map of `LEN` bytes.
const fn defined_map<const LEN: usize>(bits: &[u16]) -> [u8; LEN] {
    let mut map = [0u8; LEN];
    let mut i = 0;
    while i < bits.len() {
        let b = bits[i] as usize;
        map[b / 8] |= 0x80 >> (b % 8);
        i += 1;
    }
    map
}

/// The first bit set in `map` that `defined` does not have.
fn first_undefined_bit(map: &[u8], defined: &[u8]) -> Option<u16> {
    for (i, (m, d)) in map.iter().zip(defined).enumerate() {
        let extra = m & !d;
        if extra != 0 {
            return Some((i * 8) as u16 + extra.leading_zeros() as u16);
        }
    }
    None
}

/// Test-only random construction of any message, driven by a seeded RNG.
#[cfg(test)]
pub(crate) mod gen {
    use super::*;
    use rand::Rng;
    use rand_chacha::ChaCha8Rng;

    pub(crate) trait Gen: Sized {
        fn gen(rng: &mut ChaCha8Rng) -> Self;
    }
    macro_rules! gen_int {
        ($($t:ty),*) => {$(impl Gen for $t { fn gen(rng: &mut ChaCha8Rng) -> Self { rng.gen() } })*};
    }
    gen_int!(u8, u16, u32, u64, i64);
    fn ascii(rng: &mut ChaCha8Rng, max: usize) -> String {
        let len = rng.gen_range(0..=max);
        (0..len)
            .map(|_| rng.gen_range(0x01u8..0x80) as char)
            .collect()
    }
    impl<const N: usize> Gen for FixedStr<N> {
        fn gen(rng: &mut ChaCha8Rng) -> Self {
            FixedStr::new(&ascii(rng, N - 1))
        }
    }
    impl<const M: usize> Gen for VarStr<M> {
        fn gen(rng: &mut ChaCha8Rng) -> Self {
            VarStr::new(&ascii(rng, M))
        }
    }
    impl Gen for Decimal {
        fn gen(rng: &mut ChaCha8Rng) -> Self {
            Decimal(rng.gen())
        }
    }
    impl Gen for Char {
        fn gen(rng: &mut ChaCha8Rng) -> Self {
            Char(rng.gen())
        }
    }
    impl<T: Gen> Gen for Option<T> {
        fn gen(rng: &mut ChaCha8Rng) -> Self {
            rng.gen_bool(0.5).then(|| T::gen(rng))
        }
    }
    impl<T: Gen> Gen for Group<T> {
        fn gen(rng: &mut ChaCha8Rng) -> Self {
            let n = rng.gen_range(0..4);
            Group((0..n).map(|_| T::gen(rng)).collect())
        }
    }
    macro_rules! gen_enum {
        ($($t:ty),*) => {$(impl Gen for $t {
            fn gen(rng: &mut ChaCha8Rng) -> Self { <$t>::ALL[rng.gen_range(0..<$t>::ALL.len())] }
        })*};
    }
    gen_enum!(
        SessionStatus,
        MessageRejectCode,
        LookupStatus,
        LookupRejectCode,
        GapFill,
        TestMessageIndicator,
        BusinessRejectCode,
        Side,
        OrdType,
        TimeInForce,
        PositionEffect,
        OrderCapacity,
        LotType,
        ExecType,
        OrdStatus,
        MatchType,
        OrderCategory,
        AggressorIndicator,
        MassCancelRequestType,
        MassCancelResponse,
        QuoteStatus
    );
}

macro_rules! block {
    ($(#[$m:meta])* $name:ident { $( $bit:literal $field:ident : $req:ident $ty:ty ),* $(,)? }) => {
        $(#[$m])*
        #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
        pub struct $name { $( pub $field: field_ty!($req $ty), )* }

        impl $name {
            const BITS: &'static [u16] = &[$($bit),*];
            const DEFINED: [u8; 2] = defined_map::<2>(Self::BITS);
        }

        impl Block for $name {
            fn put_block(&self, out: &mut Vec<u8>) {
                let at = out.len();
                out.extend_from_slice(&[0, 0]);
                let mut map = [0u8; 2];
                $( put_field!($req, self.$field, $bit, &mut map, out); )*
                out[at..at + 2].copy_from_slice(&map);
            }
            fn get_block(r: &mut Reader<'_>) -> Result<Self, FieldError> {
                let map: [u8; 2] = r.take(2)?.try_into().map_err(|_| FieldError::Truncated)?;
                if let Some(bit) = first_undefined_bit(&map, &Self::DEFINED) {
                    return Err(FieldError::UndefinedBitInBlock(bit));
                }
                let missing = |bit| FieldError::MissingInBlock(bit);
                let _ = &missing;
                let wrap = |e, _bit: usize| e;
                Ok($name { $( $field: get_field!($req, $ty, $bit, &map, r, missing, wrap), )* })
            }
        }

        #[cfg(test)]
        impl gen::Gen for $name {
            fn gen(rng: &mut rand_chacha::ChaCha8Rng) -> Self {
                $name { $( $field: <field_ty!($req $ty) as gen::Gen>::gen(rng), )* }
            }
        }
    };
}

macro_rules! messages {
    ($( $(#[$m:meta])* $name:ident = $code:literal {
        $( $bit:literal $field:ident : $req:ident $ty:ty ),* $(,)?
    } )*) => {
        $(
            $(#[$m])*
            #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
            pub struct $name { $( pub $field: field_ty!($req $ty), )* }

            impl $name {
                /// The Message Type header value.
                pub const MSG_TYPE: u8 = $code;
                const BITS: &'static [u16] = &[$($bit),*];
                const DEFINED: [u8; 32] = defined_map::<32>(Self::BITS);

                fn put_body(&self, map: &mut [u8; 32], out: &mut Vec<u8>) {
                    $( put_field!($req, self.$field, $bit, map, out); )*
                }

                fn get_body(map: &[u8; 32], r: &mut Reader<'_>) -> Result<Self, DecodeError> {
                    if let Some(bit) = first_undefined_bit(map, &Self::DEFINED) {
                        return Err(DecodeError::UndefinedBitSet { msg: $code, bit });
                    }
                    let missing = |bit| DecodeError::MissingMandatoryField { msg: $code, bit };
                    let _ = &missing;
                    let wrap = |e, bit| DecodeError::from_field(e, $code, bit);
                    Ok($name { $( $field: get_field!($req, $ty, $bit, map, r, missing, wrap), )* })
                }
            }

            impl From<$name> for Message {
                fn from(m: $name) -> Message {
                    Message::$name(m)
                }
            }

            #[cfg(test)]
            impl gen::Gen for $name {
                fn gen(rng: &mut rand_chacha::ChaCha8Rng) -> Self {
                    $name { $( $field: <field_ty!($req $ty) as gen::Gen>::gen(rng), )* }
                }
            }
        )*

        /// Any OCG-C message.
        #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
        pub enum Message { $( $name($name), )* }

        impl Message {
            /// Every message type code, ascending.
            pub const TYPES: &'static [u8] = &[$($code),*];

            pub fn msg_type(&self) -> u8 {
                match self { $( Message::$name(_) => $code, )* }
            }

            pub fn name(&self) -> &'static str {
                match self { $( Message::$name(_) => stringify!($name), )* }
            }

            /// Write the present fields and set their bits.
            pub(crate) fn put_body(&self, map: &mut [u8; 32], out: &mut Vec<u8>) {
                match self { $( Message::$name(m) => m.put_body(map, out), )* }
            }

            /// Decode a body given the header's type and presence map; the body must be fully
            /// consumed.
            pub fn decode_body(msg_type: u8, map: &[u8; 32], body: &[u8]) -> Result<Message, DecodeError> {
                let mut r = Reader::new(body);
                let m = match msg_type {
                    $( $code => Message::$name($name::get_body(map, &mut r)?), )*
                    other => return Err(DecodeError::UnknownMessageType(other)),
                };
                match r.remaining() {
                    0 => Ok(m),
                    extra => Err(DecodeError::TrailingBytes { msg: msg_type, extra }),
                }
            }

            #[cfg(test)]
            pub(crate) fn gen_of_type(msg_type: u8, rng: &mut rand_chacha::ChaCha8Rng) -> Message {
                match msg_type {
                    $( $code => Message::$name(<$name as gen::Gen>::gen(rng)), )*
                    _ => unreachable!("Invariant: only defined types are generated"),
                }
            }

            #[cfg(test)]
            pub(crate) fn layout_bits(msg_type: u8) -> &'static [u16] {
                match msg_type {
                    $( $code => $name::BITS, )*
                    _ => &[],
                }
            }
        }
    };
}

block!(
    /// Throttle Entitlement Response, No Throttles entry.
    ThrottleEntry {
        0 throttle_action: opt u8,
        1 throttle_type: opt u8,
        2 throttle_no_messages: opt u32,
        3 throttle_time_interval: opt u16,
        4 throttle_time_unit: opt u8,
    }
);

block!(
    /// Party Entitlements Report, attribute entry (layout INFERRED, see docs/ocg.md).
    EntitlementAttribute {
        0 attribute_type: opt u16,
        1 attribute_value: opt Decimal,
    }
);

block!(
    /// Party Entitlements Report, instrument scope entry (layout INFERRED).
    InstrumentScope {
        0 security_id: opt Id21,
        1 security_id_source: opt u8,
        2 security_exchange: opt Exchange5,
    }
);

block!(
    /// Party Entitlements Report, No Entitlements entry (layout INFERRED).
    EntitlementEntry {
        0 entitlement_type: opt u8,
        1 entitlement_indicator: opt u8,
        2 entitlement_id: opt Id21,
        3 attributes: opt Group<EntitlementAttribute>,
        4 instrument_scopes: opt Group<InstrumentScope>,
    }
);

messages! {
    /// Heartbeat (0).
    Heartbeat = 0 {
        0 reference_test_request_id: opt u16,
    }
    /// Test Request (1).
    TestRequest = 1 {
        0 test_request_id: req u16,
    }
    /// Resend Request (2). End Sequence 0 means everything from Start.
    ResendRequest = 2 {
        0 start_sequence: req u32,
        1 end_sequence: req u32,
    }
    /// Session-level Reject (3).
    Reject = 3 {
        0 message_reject_code: req MessageRejectCode,
        1 reason: opt Reason75,
        2 reference_message_type: opt u8,
        3 reference_field_name: opt FixedStr<50>,
        4 reference_sequence_number: req u32,
        5 cl_ord_id: opt Id21,
    }
    /// Sequence Reset (4). Gap Fill absent means Reset.
    SequenceReset = 4 {
        0 gap_fill: opt GapFill,
        1 new_sequence_number: req u32,
    }
    /// Logon (5), request and reply.
    Logon = 5 {
        0 password: opt FixedStr<450>,
        1 new_password: opt FixedStr<450>,
        2 next_expected_sequence: req u32,
        3 session_status: opt SessionStatus,
        4 text: opt Text50,
        5 test_message_indicator: opt TestMessageIndicator,
    }
    /// Logout (6).
    Logout = 6 {
        0 logout_text: opt Reason75,
        1 session_status: opt SessionStatus,
    }
    /// Lookup Request (7). Type of Service and Protocol stay raw so the Lookup Service can
    /// answer a wrong value with its own reject codes.
    LookupRequest = 7 {
        0 type_of_service: req u8,
        1 protocol_type: req u8,
    }
    /// Lookup Response (8).
    LookupResponse = 8 {
        0 status: req LookupStatus,
        1 lookup_reject_code: opt LookupRejectCode,
        2 reason: opt Reason75,
        3 primary_ip: opt FixedStr<16>,
        4 primary_port: opt u16,
        5 secondary_ip: opt FixedStr<16>,
        6 secondary_port: opt u16,
    }
    /// Business Message Reject (9).
    BusinessMessageReject = 9 {
        0 business_reject_code: req BusinessRejectCode,
        1 reason: opt Reason75,
        2 reference_message_type: req u8,
        3 reference_field_name: opt FixedStr<50>,
        4 reference_sequence_number: opt u32,
        5 business_reject_reference_id: opt Id21,
    }
    /// Execution Report (10): one layout for every variant; nothing is marked mandatory.
    ExecutionReport = 10 {
        0 cl_ord_id: opt Id21,
        1 submitting_broker_id: opt Broker12,
        2 security_id: opt Id21,
        3 security_id_source: opt u8,
        4 security_exchange: opt Exchange5,
        5 broker_location_id: opt Location11,
        6 transact_time: opt Time25,
        7 side: opt Side,
        8 orig_cl_ord_id: opt Id21,
        9 order_id: opt Id21,
        10 owning_broker_id: opt Broker12,
        11 ord_type: opt OrdType,
        12 price: opt Decimal,
        13 order_qty: opt Decimal,
        14 time_in_force: opt TimeInForce,
        15 position_effect: opt PositionEffect,
        16 order_restrictions: opt Id21,
        17 max_price_levels: opt u8,
        18 order_capacity: opt OrderCapacity,
        19 text: opt Text50,
        20 reason: opt Reason75,
        21 exec_id: opt Id21,
        22 ord_status: opt OrdStatus,
        23 exec_type: opt ExecType,
        24 cum_qty: opt Decimal,
        25 leaves_qty: opt Decimal,
        26 order_reject_code: opt u16,
        27 lot_type: opt LotType,
        28 exec_restatement_reason: opt u16,
        29 cancel_reject_code: opt u16,
        30 match_type: opt MatchType,
        31 counterparty_broker_id: opt Broker12,
        32 last_qty: opt Decimal,
        33 last_px: opt Decimal,
        34 reference_exec_id: opt Id21,
        35 order_category: opt OrderCategory,
        36 amend_reject_code: opt u16,
        38 trade_match_id: opt Time25,
        39 exchange_trade_type: opt Char,
        42 aggressor_indicator: opt AggressorIndicator,
    }
    /// New Order (11), board lot or odd/special lot.
    NewOrder = 11 {
        0 cl_ord_id: req Id21,
        1 submitting_broker_id: req Broker12,
        2 security_id: req Id21,
        3 security_id_source: req u8,
        4 security_exchange: opt Exchange5,
        5 broker_location_id: opt Location11,
        6 transact_time: req Time25,
        7 side: req Side,
        8 ord_type: req OrdType,
        9 price: opt Decimal,
        10 order_qty: req Decimal,
        11 time_in_force: opt TimeInForce,
        12 position_effect: opt PositionEffect,
        13 order_restrictions: opt Id21,
        14 max_price_levels: opt u8,
        15 order_capacity: opt OrderCapacity,
        16 text: opt Text50,
        17 execution_instructions: opt Id21,
        18 disclosure_instructions: req u16,
        19 lot_type: opt LotType,
        22 submitting_bcan: opt Id21,
    }
    /// Amend Request (12).
    AmendRequest = 12 {
        0 cl_ord_id: opt Id21,
        1 submitting_broker_id: opt Broker12,
        2 security_id: opt Id21,
        3 security_id_source: opt u8,
        4 security_exchange: opt Exchange5,
        5 broker_location_id: opt Location11,
        6 transact_time: opt Time25,
        7 side: opt Side,
        8 orig_cl_ord_id: req Id21,
        9 order_id: opt Id21,
        10 ord_type: req OrdType,
        11 price: opt Decimal,
        12 order_qty: req Decimal,
        13 time_in_force: opt TimeInForce,
        14 position_effect: opt PositionEffect,
        15 order_restrictions: opt Id21,
        16 max_price_levels: opt u8,
        17 order_capacity: opt OrderCapacity,
        18 text: opt Text50,
        19 execution_instructions: opt Id21,
        20 disclosure_instructions: opt u16,
    }
    /// Cancel Request (13).
    CancelRequest = 13 {
        0 cl_ord_id: opt Id21,
        1 submitting_broker_id: opt Broker12,
        2 security_id: opt Id21,
        3 security_id_source: opt u8,
        4 security_exchange: opt Exchange5,
        5 broker_location_id: opt Location11,
        6 transact_time: opt Time25,
        7 side: opt Side,
        8 orig_cl_ord_id: req Id21,
        9 order_id: opt Id21,
        10 text: opt Text50,
    }
    /// Mass Cancel Request (14).
    MassCancelRequest = 14 {
        0 cl_ord_id: opt Id21,
        1 submitting_broker_id: opt Broker12,
        2 security_id: opt Id21,
        3 security_id_source: opt u8,
        4 security_exchange: opt Exchange5,
        5 broker_location_id: opt Location11,
        6 transact_time: opt Time25,
        7 side: opt Side,
        8 mass_cancel_request_type: req MassCancelRequestType,
        9 market_segment_id: opt FixedStr<20>,
    }
    /// Order Mass Cancel Report (15).
    OrderMassCancelReport = 15 {
        0 cl_ord_id: opt Id21,
        1 submitting_broker_id: opt Broker12,
        2 security_id: opt Id21,
        3 security_id_source: opt u8,
        4 security_exchange: opt Exchange5,
        5 broker_location_id: opt Location11,
        6 transact_time: req Time25,
        7 mass_cancel_request_type: req MassCancelRequestType,
        8 owning_broker_id: opt Broker12,
        9 mass_action_report_id: req Id21,
        10 mass_cancel_response: req MassCancelResponse,
        11 mass_cancel_reject_code: opt u16,
        12 reason: opt Reason75,
    }
    /// Quote (16).
    Quote = 16 {
        0 submitting_broker_id: req Broker12,
        1 broker_location_id: opt Location11,
        2 security_id: req Id21,
        3 security_id_source: req u8,
        4 security_exchange: opt Exchange5,
        5 quote_bid_id: req Id21,
        6 quote_offer_id: req Id21,
        7 quote_type: opt u8,
        8 side: opt Side,
        9 bid_size: req Decimal,
        10 offer_size: req Decimal,
        11 bid_px: req Decimal,
        12 offer_px: req Decimal,
        13 transact_time: req Time25,
        14 position_effect: opt PositionEffect,
        15 order_restrictions: opt Id21,
        16 text: opt Text50,
        17 execution_instructions: opt Id21,
        18 submitting_bcan: req Id21,
    }
    /// Quote Cancel (17).
    QuoteCancel = 17 {
        0 submitting_broker_id: opt Broker12,
        1 broker_location_id: opt Location11,
        2 security_id: opt Id21,
        3 security_id_source: opt u8,
        4 security_exchange: opt Exchange5,
        5 quote_msg_id: req Id21,
        6 quote_cancel_type: req u8,
    }
    /// Quote Status Report (18), rejects only.
    QuoteStatusReport = 18 {
        0 submitting_broker_id: opt Broker12,
        1 broker_location_id: opt Location11,
        2 security_id: opt Id21,
        3 security_id_source: opt u8,
        4 security_exchange: opt Exchange5,
        5 quote_bid_id: opt Id21,
        6 quote_offer_id: opt Id21,
        7 quote_type: opt u8,
        8 transact_time: req Time25,
        9 quote_msg_id: opt Id21,
        10 quote_cancel_type: opt u8,
        11 quote_status: opt QuoteStatus,
        12 quote_reject_code: opt u16,
        13 reason: opt Reason75,
    }
    /// Trade Capture Report (21). Field types not given by the reference are INFERRED from the
    /// same-named fields of other messages (see docs/ocg.md).
    TradeCaptureReport = 21 {
        0 trade_report_id: opt Id21,
        1 trade_report_trans_type: opt u8,
        2 trade_report_type: opt u8,
        3 trade_handling_instr: opt u8,
        4 submitting_broker_id: opt Broker12,
        5 counterparty_broker_id: opt Broker12,
        6 broker_location_id: opt Location11,
        7 security_id: opt Id21,
        8 security_id_source: opt u8,
        9 security_exchange: opt Exchange5,
        10 side: opt Side,
        11 transact_time: opt Time25,
        12 trade_id: opt Time25,
        13 trd_type: opt u8,
        14 last_qty: opt Decimal,
        15 last_px: opt Decimal,
        16 clearing_instruction: opt u8,
        17 position_effect: opt PositionEffect,
        19 order_capacity: opt OrderCapacity,
        20 order_category: opt OrderCategory,
        21 text: opt Text50,
        22 execution_instructions: opt Id21,
        23 exec_type: opt ExecType,
        24 trade_report_status: opt u8,
        25 exchange_trade_type: opt Char,
        27 order_id: opt Id21,
        29 submitting_bcan: opt Id21,
        31 counterparty_bcan: opt Id21,
    }
    /// Trade Capture Report Ack (22).
    TradeCaptureReportAck = 22 {
        0 trade_report_id: opt Id21,
        1 trade_report_trans_type: opt u8,
        2 trade_report_type: opt u8,
        3 trade_handling_instr: opt u8,
        4 submitting_broker_id: opt Broker12,
        5 counterparty_broker_id: opt Broker12,
        6 broker_location_id: opt Location11,
        7 security_id: opt Id21,
        8 security_id_source: opt u8,
        9 security_exchange: opt Exchange5,
        10 side: opt Side,
        11 transact_time: opt Time25,
        12 trade_id: opt Time25,
        13 trade_report_status: opt u8,
        14 trade_report_reject_code: opt u16,
        15 reason: opt Reason75,
    }
    /// OBO Cancel Request (23).
    OboCancelRequest = 23 {
        0 cl_ord_id: opt Id21,
        1 submitting_broker_id: opt Broker12,
        2 security_id: opt Id21,
        3 security_id_source: opt u8,
        4 security_exchange: opt Exchange5,
        5 broker_location_id: opt Location11,
        6 transact_time: opt Time25,
        7 side: opt Side,
        8 orig_cl_ord_id: opt Id21,
        9 order_id: req Id21,
        10 owning_broker_id: req Broker12,
        11 text: opt Text50,
    }
    /// OBO Mass Cancel Request (24).
    OboMassCancelRequest = 24 {
        0 cl_ord_id: opt Id21,
        1 submitting_broker_id: opt Broker12,
        2 security_id: opt Id21,
        3 security_id_source: opt u8,
        4 security_exchange: opt Exchange5,
        5 broker_location_id: opt Location11,
        6 transact_time: opt Time25,
        7 side: opt Side,
        8 mass_cancel_request_type: req MassCancelRequestType,
        9 market_segment_id: opt FixedStr<20>,
        10 owning_broker_id: req Broker12,
    }
    /// Throttle Entitlement Request (25).
    ThrottleEntitlementRequest = 25 {
        0 user_request_id: req FixedStr<20>,
        1 user_request_type: req u8,
        2 username: req FixedStr<50>,
    }
    /// Throttle Entitlement Response (26).
    ThrottleEntitlementResponse = 26 {
        0 user_request_id: opt FixedStr<20>,
        1 username: opt FixedStr<50>,
        2 throttles: opt Group<ThrottleEntry>,
    }
    /// Party Entitlements Request (27).
    PartyEntitlementsRequest = 27 {
        0 entitlement_request_id: opt Id21,
    }
    /// Party Entitlements Report (28). Bits 0-6 from the reference; the nested entry layouts
    /// are INFERRED.
    PartyEntitlementsReport = 28 {
        0 entitlement_report_id: opt Id21,
        1 entitlement_request_id: opt Id21,
        2 request_result: opt u16,
        3 total_no_party_list: opt u16,
        4 last_fragment: opt u8,
        5 broker_id: opt Broker12,
        6 entitlements: opt Group<EntitlementEntry>,
    }
}

/// Every field absent; fill in what a variant needs with struct update syntax.
impl Default for ExecutionReport {
    fn default() -> Self {
        ExecutionReport {
            cl_ord_id: None,
            submitting_broker_id: None,
            security_id: None,
            security_id_source: None,
            security_exchange: None,
            broker_location_id: None,
            transact_time: None,
            side: None,
            orig_cl_ord_id: None,
            order_id: None,
            owning_broker_id: None,
            ord_type: None,
            price: None,
            order_qty: None,
            time_in_force: None,
            position_effect: None,
            order_restrictions: None,
            max_price_levels: None,
            order_capacity: None,
            text: None,
            reason: None,
            exec_id: None,
            ord_status: None,
            exec_type: None,
            cum_qty: None,
            leaves_qty: None,
            order_reject_code: None,
            lot_type: None,
            exec_restatement_reason: None,
            cancel_reject_code: None,
            match_type: None,
            counterparty_broker_id: None,
            last_qty: None,
            last_px: None,
            reference_exec_id: None,
            order_category: None,
            amend_reject_code: None,
            trade_match_id: None,
            exchange_trade_type: None,
            aggressor_indicator: None,
        }
    }
}

impl Message {
    /// Session (administrative) messages: never replayed, always gap-filled (reference §1.8).
    pub fn is_admin(&self) -> bool {
        is_admin_type(self.msg_type())
    }
}

/// Is this message type administrative (gap-filled on replay)? Lookup messages are outside the
/// session sequence entirely.
pub fn is_admin_type(msg_type: u8) -> bool {
    matches!(msg_type, 0..=2 | 4..=6)
}

/// Types a participant may send as business messages to OCG-C.
pub fn is_client_business_type(msg_type: u8) -> bool {
    matches!(msg_type, 11..=14 | 16 | 17 | 21 | 23..=25 | 27)
}

/// A transaction time `YYYYMMDD-HH:MM:SS.ssssss` (UTC) for a timestamp.
pub fn transact_time(now: twinsite_core::Timestamp) -> Time25 {
    let (y, mo, d, h, mi, s, ns) = now.to_utc_civil();
    FixedStr::new(&format!(
        "{y:04}{mo:02}{d:02}-{h:02}:{mi:02}:{s:02}.{:06}",
        ns / 1_000
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_layout_lists_its_bits_in_ascending_order() {
        // Reference §1.4 lists 27 types: 0-18 and 21-28 (19 and 20 unused).
        assert_eq!(Message::TYPES.len(), 27);
        for &t in Message::TYPES {
            let bits = Message::layout_bits(t);
            assert!(bits.windows(2).all(|w| w[0] < w[1]), "type {t}");
            assert!(bits.iter().all(|&b| b < 256));
        }
    }

    #[test]
    fn transaction_time_has_microseconds() {
        let t = twinsite_core::Timestamp(1_700_000_000_123_456_789);
        assert_eq!(transact_time(t).as_str(), "20231114-22:13:20.123456");
    }
}
