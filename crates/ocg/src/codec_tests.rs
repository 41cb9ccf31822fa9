//! Golden vectors and property tests for the codec.
//!
//! How the golden vectors are built: each expected frame is written out field by field from the
//! layouts of reference §1.3 and §1.5-§1.10 (offsets in the comments), with the presence map
//! bytes worked out by hand (bit 0 = MSB of the first map byte). The CRC-32C trailer of the two
//! vectors the reference gives (Heartbeat `e9f8a10b`, Lookup Request `b3c61747`) is checked
//! against the reference; for the others the trailer was computed once over the hand-built bytes
//! and pinned here, so any change to the encoder's bytes fails the test.

use proptest::prelude::*;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use crate::frame::{decode_frame, encode, FrameDecoder, MAX_FRAME_LEN};
use crate::messages::gen::Gen;
use crate::*;

fn hex(s: &str) -> Vec<u8> {
    let s: String = s.chars().filter(|c| !c.is_whitespace()).collect();
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

fn comp() -> FixedStr<12> {
    FixedStr::new("TEST0001")
}

/// Header bytes after STX+length: type, seq, PossDup, PossResend, Comp ID "TEST0001".
fn header_tail(msg_type: u8, seq: u32) -> Vec<u8> {
    let mut v = vec![msg_type];
    v.extend_from_slice(&seq.to_le_bytes());
    v.extend_from_slice(&[0, 0]);
    v.extend_from_slice(b"TEST0001\0\0\0\0");
    v
}

/// Assemble a frame by hand: STX, length, header tail, map (given leading bytes, zero padded),
/// body, and the pinned CRC.
fn hand_frame(msg_type: u8, seq: u32, map_prefix: &[u8], body: &[u8], crc_wire: &str) -> Vec<u8> {
    let len = 54 + body.len() + 4;
    let mut v = vec![0x02];
    v.extend_from_slice(&(len as u16).to_le_bytes());
    v.extend(header_tail(msg_type, seq));
    let mut map = [0u8; 32];
    map[..map_prefix.len()].copy_from_slice(map_prefix);
    v.extend_from_slice(&map);
    v.extend_from_slice(body);
    v.extend(hex(crc_wire));
    v
}

fn assert_golden(msg: Message, seq: u32, expected: &[u8]) {
    let bytes = encode(seq, false, false, &comp(), &msg).unwrap();
    assert_eq!(hex_of(&bytes), hex_of(expected), "{}", msg.name());
    let (header, back) = decode_one(expected).unwrap();
    assert_eq!(back, msg);
    assert_eq!(header.seq, seq);
}

fn hex_of(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

#[test]
fn crc32c_check_value() {
    assert_eq!(crc32c::crc32c(b"123456789"), 0xE306_9283);
}

#[test]
fn golden_heartbeat_matches_reference() {
    let expected = hex("023a0000010000000000 5445535430303031 00000000
         0000000000000000000000000000000000000000000000000000000000000000 e9f8a10b");
    assert_eq!(expected.len(), 58);
    // The reference gives the trailer as the bytes on the wire (e9 f8 a1 0b), i.e. the
    // little-endian form of CRC-32C 0x0BA1F8E9.
    assert_eq!(hand_frame(0, 1, &[], &[], "e9f8a10b"), expected);
    assert_golden(
        Heartbeat {
            reference_test_request_id: None,
        }
        .into(),
        1,
        &expected,
    );
}

#[test]
fn golden_lookup_request_matches_reference() {
    let expected = hand_frame(7, 1, &[0xC0], &[0x01, 0x01], "b3c61747");
    assert_eq!(expected.len(), 60);
    assert_golden(
        LookupRequest {
            type_of_service: 1,
            protocol_type: 1,
        }
        .into(),
        1,
        &expected,
    );
}

#[test]
fn golden_lookup_response() {
    // Bits 0 Status, 3 Primary IP, 4 Primary Port, 5 Secondary IP, 6 Secondary Port:
    // map byte 0 = 1001_1110 = 0x9E.
    let mut body = vec![0x00]; // Status 0 accepted
    body.extend_from_slice(b"10.0.0.1\0\0\0\0\0\0\0\0"); // char[16]
    body.extend_from_slice(&[0x60, 0xEA]); // 60000 LE
    body.extend_from_slice(b"10.0.0.2\0\0\0\0\0\0\0\0");
    body.extend_from_slice(&[0x61, 0xEA]); // 60001 LE
    let expected = hand_frame(8, 1, &[0x9E], &body, "e0009d92");
    let msg = LookupResponse {
        status: LookupStatus::Accepted,
        lookup_reject_code: None,
        reason: None,
        primary_ip: Some(FixedStr::new("10.0.0.1")),
        primary_port: Some(60000),
        secondary_ip: Some(FixedStr::new("10.0.0.2")),
        secondary_port: Some(60001),
    };
    assert_golden(msg.into(), 1, &expected);
}

#[test]
fn golden_logon() {
    // Bits 0 Password (char[450]) and 2 Next Expected Sequence: map byte 0 = 1010_0000 = 0xA0.
    let mut body = b"QUJD".to_vec(); // a short base64 stand-in for the encrypted password
    body.resize(450, 0);
    body.extend_from_slice(&[0x05, 0, 0, 0]); // Next Expected 5
    let expected = hand_frame(5, 3, &[0xA0], &body, "50170443");
    assert_eq!(expected.len(), 54 + 454 + 4);
    let msg = Logon {
        password: Some(FixedStr::new("QUJD")),
        new_password: None,
        next_expected_sequence: 5,
        session_status: None,
        text: None,
        test_message_indicator: None,
    };
    assert_golden(msg.into(), 3, &expected);
}

#[test]
fn golden_new_order() {
    // Present bits: 0-3, 6-8, 9 (price), 10, 11, 18, 22.
    // byte 0 = bits 0..7 = 1111_0011 = 0xF3; byte 1 = bits 8..15 = 1111_0000 = 0xF0;
    // byte 2 = bits 16..23 = 0010_0010 = 0x22 (bit 18 -> 0x20, bit 22 -> 0x02).
    let mut body = Vec::new();
    let fixed = |s: &str, n: usize| {
        let mut v = s.as_bytes().to_vec();
        v.resize(n, 0);
        v
    };
    body.extend(fixed("1001", 21)); // ClOrdID
    body.extend(fixed("1234", 12)); // Submitting Broker ID
    body.extend(fixed("5", 21)); // Security ID
    body.push(8); // Security ID Source
    body.extend(fixed("20231114-02:00:00.000000", 25)); // Transaction Time
    body.push(1); // Side Buy
    body.push(2); // Order Type Limit
    body.extend_from_slice(&hex("00205fa012000000")); // Price 800.00 = 80_000_000_000 LE
    body.extend_from_slice(&hex("00e8764817000000")); // Qty 1000 = 100_000_000_000 LE
    body.push(0); // TIF Day
    body.extend_from_slice(&[0x01, 0x00]); // Disclosure Instructions: bit 0 "None"
    body.extend(fixed("BCAN1", 21)); // Submitting BCAN
    let expected = hand_frame(11, 7, &[0xF3, 0xF0, 0x22], &body, "aa6c61e7");
    let msg = NewOrder {
        cl_ord_id: FixedStr::new("1001"),
        submitting_broker_id: FixedStr::new("1234"),
        security_id: FixedStr::new("5"),
        security_id_source: 8,
        security_exchange: None,
        broker_location_id: None,
        transact_time: FixedStr::new("20231114-02:00:00.000000"),
        side: Side::Buy,
        ord_type: OrdType::Limit,
        price: Some(Decimal::from_price(twinsite_core::Price(800_000))),
        order_qty: Decimal::from_qty(twinsite_core::Qty(1000)),
        time_in_force: Some(TimeInForce::Day),
        position_effect: None,
        order_restrictions: None,
        max_price_levels: None,
        order_capacity: None,
        text: None,
        execution_instructions: None,
        disclosure_instructions: 1,
        lot_type: None,
        submitting_bcan: Some(FixedStr::new("BCAN1")),
    };
    assert_golden(msg.into(), 7, &expected);
}

#[test]
fn golden_execution_report_fill() {
    // A fill: bits 0 ClOrdID, 9 Order ID, 21 Exec ID, 22 Order Status, 23 Exec Type,
    // 24 Cum Qty, 25 Leaves Qty, 32 Last Qty, 33 Last Px, 42 Aggressor.
    // byte 0 = 1000_0000 = 0x80; byte 1 = 0100_0000 = 0x40 (bit 9);
    // byte 2 = bits 16..23: 21,22,23 -> 0000_0111 = 0x07; byte 3 = bits 24,25 -> 1100_0000 = 0xC0;
    // byte 4 = bits 32,33 -> 1100_0000 = 0xC0; byte 5 = bit 42 -> 0010_0000 = 0x20.
    let fixed = |s: &str, n: usize| {
        let mut v = s.as_bytes().to_vec();
        v.resize(n, 0);
        v
    };
    let mut body = Vec::new();
    body.extend(fixed("1001", 21));
    body.extend(fixed("77", 21));
    body.extend(fixed("E1", 21));
    body.push(1); // Partially filled
    body.push(b'F'); // Trade
    body.extend_from_slice(&40_000_000_000i64.to_le_bytes()); // cum 400
    body.extend_from_slice(&60_000_000_000i64.to_le_bytes()); // leaves 600
    body.extend_from_slice(&40_000_000_000i64.to_le_bytes()); // last qty 400
    body.extend_from_slice(&80_000_000_000i64.to_le_bytes()); // last px 800.00
    body.push(1); // aggressor
    let expected = hand_frame(
        10,
        9,
        &[0x80, 0x40, 0x07, 0xC0, 0xC0, 0x20],
        &body,
        "7556eeb5",
    );
    let msg = ExecutionReport {
        cl_ord_id: Some(FixedStr::new("1001")),
        order_id: Some(FixedStr::new("77")),
        exec_id: Some(FixedStr::new("E1")),
        ord_status: Some(OrdStatus::PartiallyFilled),
        exec_type: Some(ExecType::Trade),
        cum_qty: Some(Decimal(40_000_000_000)),
        leaves_qty: Some(Decimal(60_000_000_000)),
        last_qty: Some(Decimal(40_000_000_000)),
        last_px: Some(Decimal(80_000_000_000)),
        aggressor_indicator: Some(AggressorIndicator::Aggressor),
        ..ExecutionReport::default()
    };
    assert_golden(msg.into(), 9, &expected);
}

#[test]
fn decoder_reports_missing_mandatory_field() {
    // Test Request with an empty map: bit 0 is mandatory.
    let bytes = {
        let mut v = hand_frame(1, 1, &[], &[], "00000000");
        let crc = crc32c::crc32c(&v[..54]);
        v[54..].copy_from_slice(&crc.to_le_bytes());
        v
    };
    assert_eq!(
        decode_one(&bytes).unwrap_err(),
        DecodeError::MissingMandatoryField { msg: 1, bit: 0 }
    );
}

fn with_crc(mut v: Vec<u8>) -> Vec<u8> {
    let n = v.len() - 4;
    let crc = crc32c::crc32c(&v[..n]);
    v[n..].copy_from_slice(&crc.to_le_bytes());
    v
}

#[test]
fn decoder_reports_undefined_bit_bad_enum_and_unknown_type() {
    let undefined = with_crc(hand_frame(0, 1, &[0x40], &[], "00000000"));
    assert_eq!(
        decode_one(&undefined).unwrap_err(),
        DecodeError::UndefinedBitSet { msg: 0, bit: 1 }
    );
    let bad_gap_fill = with_crc(hand_frame(4, 1, &[0xC0], &[b'Q', 2, 0, 0, 0], "00000000"));
    assert_eq!(
        decode_one(&bad_gap_fill).unwrap_err(),
        DecodeError::BadEnum {
            msg: 4,
            bit: 0,
            value: b'Q' as u64
        }
    );
    let unknown = with_crc(hand_frame(19, 1, &[], &[], "00000000"));
    assert_eq!(
        decode_one(&unknown).unwrap_err(),
        DecodeError::UnknownMessageType(19)
    );
    let truncated = with_crc(hand_frame(1, 1, &[0x80], &[7], "00000000"));
    assert_eq!(
        decode_one(&truncated).unwrap_err(),
        DecodeError::Truncated { msg: 1, bit: 0 }
    );
    let trailing = with_crc(hand_frame(1, 1, &[0x80], &[7, 0, 9], "00000000"));
    assert_eq!(
        decode_one(&trailing).unwrap_err(),
        DecodeError::TrailingBytes { msg: 1, extra: 1 }
    );
}

#[test]
fn decoder_rejects_bad_framing() {
    let good = encode(
        1,
        false,
        false,
        &comp(),
        &Heartbeat {
            reference_test_request_id: None,
        }
        .into(),
    )
    .unwrap();
    let mut bad_crc = good.clone();
    bad_crc[20] ^= 1;
    assert!(matches!(
        decode_one(&bad_crc),
        Err(DecodeError::BadCrc { .. })
    ));
    let mut bad_stx = good.clone();
    bad_stx[0] = 0x03;
    assert_eq!(decode_one(&bad_stx).unwrap_err(), DecodeError::BadStx(3));
    let mut short = good.clone();
    short[1] = 57;
    assert_eq!(decode_one(&short).unwrap_err(), DecodeError::BadLength(57));
    assert!(decode_one(&good[..40]).is_err());
    let mut bad_flag = good;
    bad_flag[8] = 2;
    let bad_flag = with_crc(bad_flag);
    assert_eq!(
        decode_one(&bad_flag).unwrap_err(),
        DecodeError::BadHeader { field: "poss dup" }
    );
}

#[test]
fn streaming_decoder_waits_for_partial_frames_and_poisons_on_bad_crc() {
    let a = encode(
        1,
        false,
        false,
        &comp(),
        &TestRequest { test_request_id: 7 }.into(),
    )
    .unwrap();
    let b = encode(
        2,
        true,
        false,
        &comp(),
        &Heartbeat {
            reference_test_request_id: Some(7),
        }
        .into(),
    )
    .unwrap();
    let mut stream = a.clone();
    stream.extend_from_slice(&b);
    let mut d = FrameDecoder::default();
    let mut got = Vec::new();
    for chunk in stream.chunks(5) {
        d.feed(chunk);
        while let Some(f) = d.next_frame().unwrap() {
            got.push(f);
        }
    }
    assert_eq!(got.len(), 2);
    assert_eq!(got[1].header.seq, 2);
    assert!(got[1].header.poss_dup);
    assert_eq!(d.buffered(), 0);
    let mut corrupt = a;
    corrupt[55] ^= 0xFF;
    d.feed(&corrupt);
    assert!(matches!(d.next_frame(), Err(DecodeError::BadCrc { .. })));
    d.feed(&b);
    assert!(d.next_frame().is_err(), "a poisoned decoder stays failed");
}

#[test]
fn inbound_fixed_value_filling_all_bytes_is_cut() {
    // Comp ID of 12 characters: the last byte is treated as NUL.
    let mut v = encode(
        1,
        false,
        false,
        &comp(),
        &Heartbeat {
            reference_test_request_id: None,
        }
        .into(),
    )
    .unwrap();
    v[10..22].copy_from_slice(b"ABCDEFGHIJKL");
    let v = with_crc(v);
    let (h, _) = decode_one(&v).unwrap();
    assert_eq!(h.comp_id.as_str(), "ABCDEFGHIJK");
}

fn roundtrip_seeded(msg_type: u8, seed: u64) -> Result<(), TestCaseError> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let msg = Message::gen_of_type(msg_type, &mut rng);
    let seq = u32::gen(&mut rng);
    let bytes = encode(
        seq,
        seed.is_multiple_of(2),
        seed.is_multiple_of(3),
        &comp(),
        &msg,
    )
    .unwrap();
    let (frame, used) = decode_frame(&bytes, MAX_FRAME_LEN).unwrap().unwrap();
    prop_assert_eq!(used, bytes.len());
    prop_assert_eq!(frame.header.seq, seq);
    prop_assert_eq!(frame.message().unwrap(), msg);
    Ok(())
}

/// Fixed seeds keep CI runs identical; a failure prints the failing input, whose `seed` value
/// reproduces the generated message.
fn config() -> ProptestConfig {
    ProptestConfig {
        cases: 512,
        rng_seed: proptest::test_runner::RngSeed::Fixed(0x0C6C_2026),
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

proptest! {
    #![proptest_config(config())]

    /// Every message type survives encode then decode, field for field.
    #[test]
    fn every_message_type_roundtrips(index in 0usize..27, seed in any::<u64>()) {
        roundtrip_seeded(Message::TYPES[index], seed)?;
    }

    /// Arbitrary bytes never panic the decoder, in one piece or split.
    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..600), split in 0usize..600) {
        let _ = decode_one(&bytes);
        let mut d = FrameDecoder::default();
        let cut = split.min(bytes.len());
        d.feed(&bytes[..cut]);
        while let Ok(Some(f)) = d.next_frame() { let _ = f.message(); }
        d.feed(&bytes[cut..]);
        while let Ok(Some(f)) = d.next_frame() { let _ = f.message(); }
    }

    /// A valid frame of any type with a few bytes changed (and the CRC fixed up so the body
    /// decoder sees it) decodes or fails with a typed error, never a panic.
    #[test]
    fn mutated_frames_never_panic(index in 0usize..27, seed in any::<u64>(),
                                  edits in proptest::collection::vec((any::<u16>(), any::<u8>()), 1..6)) {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let msg = Message::gen_of_type(Message::TYPES[index], &mut rng);
        let mut bytes = encode(1, false, false, &comp(), &msg).unwrap();
        let n = bytes.len() - 4;
        for (at, value) in edits {
            let at = 3 + at as usize % (n - 3);
            bytes[at] = value;
        }
        let crc = crc32c::crc32c(&bytes[..n]);
        bytes[n..].copy_from_slice(&crc.to_le_bytes());
        if let Ok((h, m)) = decode_one(&bytes) {
            // Whatever decodes must re-encode to something that decodes the same.
            let again = encode(h.seq, h.poss_dup, h.poss_resend, &h.comp_id, &m).unwrap();
            prop_assert_eq!(decode_one(&again).unwrap().1, m);
        }
    }

    /// A valid frame with a random body and map still never panics the body decoder.
    #[test]
    fn arbitrary_bodies_never_panic(t in any::<u8>(), map in proptest::array::uniform32(any::<u8>()),
                                    body in proptest::collection::vec(any::<u8>(), 0..300)) {
        let _ = Message::decode_body(t, &map, &body);
    }
}

#[test]
fn every_message_type_roundtrips_exhaustively_for_fixed_seeds() {
    for &t in Message::TYPES {
        for seed in 0..50 {
            roundtrip_seeded(t, seed).unwrap();
        }
    }
}
