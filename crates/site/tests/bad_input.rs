//! Bad input over real TCP against a running site (OCG-C issue: "Truncated frames, wrong
//! lengths, bad CRCs, unknown message types, missing mandatory fields, undefined bits set,
//! over-long strings, out-of-range enums: each gets the documented Reject / Business Message
//! Reject or disconnect, never a panic, and the session and the book stay intact for everyone
//! else").
//!
//! Every test: B (CO0002) rests a sell of 800 at 65.30, C (CO0003) is logged on, A (CO0001) logs
//! on over a raw socket and sends one bad frame (built with the codec, then corrupted). The test
//! checks what A gets back (reference §1.3: bad CRC / framing => connection dropped without
//! Logout; §1.5 Message Reject Codes for body errors), then that the site core is alive, the
//! engine state is unchanged, and B's order still trades with C.

mod common;

use common::*;
use rand_chacha::rand_core::{RngCore, SeedableRng};
use tokio::io::AsyncWriteExt;
use twinsite_ocg::*;
use twinsite_site::gateway::SiteHandle;

const HEADER: usize = 54;

/// Site, market (B resting, C ready) and the offender A, logged on.
async fn setup() -> (SiteHandle, Market, Raw) {
    let site = start(site_config(abc())).await;
    let market = Market::open(&site).await;
    let a = Raw::logon(site.gateway_primary, "CO0001").await;
    (site, market, a)
}

/// A's order that would not cross B's (buy 400 at 65.00).
fn a_order(cl: &str) -> Message {
    new_order(cl, 1001, Side::Buy, "65.00", 400)
}

fn set_bit(frame: &mut [u8], bit: usize) {
    frame[22 + bit / 8] |= 0x80 >> (bit % 8);
}

fn clear_bit(frame: &mut [u8], bit: usize) {
    frame[22 + bit / 8] &= !(0x80 >> (bit % 8));
}

/// Offset of the first byte where two encodings of the same message differ (locates a field).
fn first_diff(a: &[u8], b: &[u8]) -> usize {
    a.iter()
        .zip(b)
        .position(|(x, y)| x != y)
        .expect("frames differ")
}

fn find(hay: &[u8], needle: &[u8]) -> usize {
    hay.windows(needle.len())
        .position(|w| w == needle)
        .expect("pattern present")
}

/// After A's bad frame: A's session is still up (a good order is acknowledged, and the bad one
/// produced no Execution Report), and the market is intact.
async fn a_still_trades(a: &mut Raw, market: &mut Market, site: &SiteHandle) {
    market.check_intact(site, 100).await;
    a.send(a_order("9")).await;
    let (ack, seen) = a
        .expect(T, |_, m| match m {
            Message::ExecutionReport(r) => Some(r.clone()),
            _ => None,
        })
        .await
        .unwrap();
    assert_eq!(ack.exec_type, Some(ExecType::New), "{ack:?}");
    assert_eq!(ack.cl_ord_id, Some(FixedStr::new("9")));
    assert!(
        seen.iter()
            .all(|m| matches!(m, Message::Heartbeat(_) | Message::TestRequest(_))),
        "unexpected before the ack: {seen:?}"
    );
}

/// A sends `bytes` (an otherwise valid New Order frame under `seq`, with its body corrupted and
/// length/CRC refitted); the exchange must answer with a session Reject of `code` that refers
/// to that frame, and everything else must carry on.
async fn body_error(
    corrupt: impl FnOnce(&mut Vec<u8>),
    code: MessageRejectCode,
    ref_type: u8,
    msg: Message,
) {
    let (site, mut market, mut a) = setup().await;
    let seq = a.seq;
    let mut f = a.frame(&msg);
    corrupt(&mut f);
    refit(&mut f);
    a.send_bytes(&f).await;
    let rej = a.expect_reject().await;
    assert_eq!(rej.message_reject_code, code, "{rej:?}");
    assert_eq!(rej.reference_sequence_number, seq, "{rej:?}");
    assert_eq!(rej.reference_message_type, Some(ref_type), "{rej:?}");
    a_still_trades(&mut a, &mut market, &site).await;
    site.shutdown();
}

/// A sends `bytes`; the exchange must drop A without a Logout or Reject; the market carries on
/// and A can log on again (the dropped frame's number was not consumed).
async fn silent_drop(corrupt: impl FnOnce(&mut Vec<u8>)) {
    let (site, mut market, mut a) = setup().await;
    let seq = a.seq;
    let mut f = a.frame(&a_order("7"));
    corrupt(&mut f);
    a.send_bytes(&f).await;
    a.expect_silent_close().await;
    let next = a.last_in + 1;
    market.check_intact(&site, 100).await;
    let (mut a, reply) = Raw::logon_with(site.gateway_primary, "CO0001", seq, next).await;
    assert_eq!(
        reply.next_expected_sequence,
        seq + 1,
        "the dropped frame did not count; the new Logon did"
    );
    a.send(a_order("8")).await;
    let ack = a.expect_er(ExecType::New).await;
    assert_eq!(ack.cl_ord_id, Some(FixedStr::new("8")));
    site.shutdown();
}

// ------------------------------------------------------------------------------ framing errors

#[tokio::test]
async fn bad_crc_drops_connection_without_logout() {
    silent_drop(|f| {
        let n = f.len();
        f[n - 1] ^= 0x5a;
    })
    .await;
}

#[tokio::test]
async fn body_byte_changed_after_crc_drops_connection_without_logout() {
    // A flipped bit in transit: the CRC no longer matches.
    silent_drop(|f| f[HEADER + 3] ^= 0x01).await;
}

#[tokio::test]
async fn bad_start_of_message_drops_connection_without_logout() {
    silent_drop(|f| {
        f[0] = 0x03;
        refit(f);
    })
    .await;
}

#[tokio::test]
async fn length_below_header_and_trailer_drops_connection_without_logout() {
    silent_drop(|f| f[1..3].copy_from_slice(&10u16.to_le_bytes())).await;
}

#[tokio::test]
async fn length_shorter_than_frame_drops_connection_without_logout() {
    // Length says 4 bytes less than sent: the checksum is read from the wrong place.
    silent_drop(|f| {
        let l = (f.len() - 4) as u16;
        f[1..3].copy_from_slice(&l.to_le_bytes());
    })
    .await;
}

#[tokio::test]
async fn length_longer_than_frame_drops_connection_without_logout() {
    // Length says 20 bytes more than this frame; the next frame's bytes complete it, and the
    // checksum cannot match.
    silent_drop(|f| {
        let l = (f.len() + 20) as u16;
        f[1..3].copy_from_slice(&l.to_le_bytes());
        let next = frame::encode(
            99,
            false,
            false,
            &FixedStr::new("CO0001"),
            &Message::Heartbeat(Heartbeat {
                reference_test_request_id: None,
            }),
        )
        .unwrap();
        f.extend_from_slice(&next);
    })
    .await;
}

#[tokio::test]
async fn header_flag_out_of_range_drops_connection_without_logout() {
    // PossDup must be 0 or 1 (header field, fatal: docs/ocg.md).
    silent_drop(|f| {
        f[8] = 2;
        refit(f);
    })
    .await;
}

#[tokio::test]
async fn truncated_frame_then_connection_closed_leaves_everyone_else_intact() {
    let (site, mut market, mut a) = setup().await;
    let seq = a.seq;
    let f = a.frame(&a_order("7"));
    a.send_bytes(&f[..f.len() / 2]).await;
    a.stream.shutdown().await.unwrap();
    // The exchange drops the session when the connection ends.
    a.expect_silent_close().await;
    let next = a.last_in + 1;
    market.check_intact(&site, 100).await;
    // The half frame never counted.
    let (mut a, reply) = Raw::logon_with(site.gateway_primary, "CO0001", seq, next).await;
    assert_eq!(reply.next_expected_sequence, seq + 1);
    a.send(a_order("8")).await;
    a.expect_er(ExecType::New).await;
    site.shutdown();
}

#[tokio::test]
async fn frame_dribbled_one_byte_at_a_time_is_reassembled() {
    let (site, mut market, mut a) = setup().await;
    let f = a.frame(&a_order("7"));
    for b in &f {
        a.stream.write_all(std::slice::from_ref(b)).await.unwrap();
        a.stream.flush().await.unwrap();
    }
    let ack = a.expect_er(ExecType::New).await;
    assert_eq!(ack.cl_ord_id, Some(FixedStr::new("7")));
    market.before = site.state_hash().await.unwrap();
    market.check_intact(&site, 100).await;
    site.shutdown();
}

// --------------------------------------------------------------------------------- body errors

#[tokio::test]
async fn unknown_message_type_gets_reject_11() {
    // Type 19 is unused (reference §1.4); a header-only frame with a valid CRC.
    let hb = Message::Heartbeat(Heartbeat {
        reference_test_request_id: None,
    });
    body_error(
        |f| f[3] = 19,
        MessageRejectCode::InvalidMessageType,
        19,
        hb.clone(),
    )
    .await;
    body_error(
        |f| f[3] = 200,
        MessageRejectCode::InvalidMessageType,
        200,
        hb,
    )
    .await;
}

#[tokio::test]
async fn exchange_only_message_type_from_participant_gets_reject_11() {
    let er = Message::ExecutionReport(ExecutionReport {
        cl_ord_id: Some(FixedStr::new("1")),
        exec_type: Some(ExecType::New),
        ..Default::default()
    });
    body_error(|_| {}, MessageRejectCode::InvalidMessageType, 10, er).await;
}

#[tokio::test]
async fn missing_mandatory_field_gets_reject_1() {
    // New Order without Client Order ID (bit 0, the first 21 body bytes).
    body_error(
        |f| {
            clear_bit(f, 0);
            f.drain(HEADER..HEADER + 21);
        },
        MessageRejectCode::RequiredFieldMissing,
        11,
        a_order("7"),
    )
    .await;
}

#[tokio::test]
async fn missing_mandatory_disclosure_instructions_gets_reject_1() {
    // Disclosure Instructions (bit 18, UInt16) is mandatory: drop the bit and its two bytes.
    let with = frame::encode(
        1,
        false,
        false,
        &FixedStr::new("CO0001"),
        &new_order("7", 1001, Side::Buy, "65.00", 400),
    )
    .unwrap();
    let mut other = new_order("7", 1001, Side::Buy, "65.00", 400);
    if let Message::NewOrder(o) = &mut other {
        o.disclosure_instructions = 0x0102;
    }
    let without = frame::encode(1, false, false, &FixedStr::new("CO0001"), &other).unwrap();
    let at = first_diff(&with, &without);
    body_error(
        move |f| {
            clear_bit(f, 18);
            f.drain(at..at + 2);
        },
        MessageRejectCode::RequiredFieldMissing,
        11,
        a_order("7"),
    )
    .await;
}

#[tokio::test]
async fn undefined_bit_set_gets_reject_3() {
    // New Order bits 20 and 21 are unused in this edition (reference §1.9).
    body_error(
        |f| set_bit(f, 20),
        MessageRejectCode::UndefinedField,
        11,
        a_order("7"),
    )
    .await;
}

#[tokio::test]
async fn undefined_high_bit_set_gets_reject_3() {
    body_error(
        |f| set_bit(f, 255),
        MessageRejectCode::UndefinedField,
        11,
        a_order("7"),
    )
    .await;
}

fn order_with_text(t: &str) -> Message {
    let mut m = a_order("7");
    if let Message::NewOrder(o) = &mut m {
        o.text = Some(VarStr::new(t));
    }
    m
}

#[tokio::test]
async fn over_long_string_gets_reject_6() {
    // Text is var <= 50: send 60 characters (length 61 with the NUL).
    body_error(
        |f| {
            let at = find(f, &[4, 0, b'A', b'B', b'C', 0]);
            let mut long = vec![61, 0];
            long.extend([b'Z'; 60]);
            long.push(0);
            f.splice(at..at + 6, long);
        },
        MessageRejectCode::IncorrectDataFormat,
        11,
        order_with_text("ABC"),
    )
    .await;
}

#[tokio::test]
async fn variable_string_with_length_zero_gets_reject_6() {
    body_error(
        |f| {
            let at = find(f, &[4, 0, b'A', b'B', b'C', 0]);
            f.splice(at..at + 6, [0, 0]);
        },
        MessageRejectCode::IncorrectDataFormat,
        11,
        order_with_text("ABC"),
    )
    .await;
}

#[tokio::test]
async fn non_ascii_string_gets_reject_6() {
    body_error(
        |f| f[HEADER] = 0xC3,
        MessageRejectCode::IncorrectDataFormat,
        11,
        a_order("7"),
    )
    .await;
}

#[tokio::test]
async fn out_of_range_enum_gets_reject_5() {
    // Side (bit 7, UInt8) is 1, 2 or 5: send 9. The field is located by diffing Buy and Sell.
    let buy = frame::encode(1, false, false, &FixedStr::new("CO0001"), &a_order("7")).unwrap();
    let sell = frame::encode(
        1,
        false,
        false,
        &FixedStr::new("CO0001"),
        &new_order("7", 1001, Side::Sell, "65.00", 400),
    )
    .unwrap();
    let at = first_diff(&buy, &sell);
    body_error(
        move |f| f[at] = 9,
        MessageRejectCode::ValueIncorrect,
        11,
        a_order("7"),
    )
    .await;
}

#[tokio::test]
async fn out_of_range_order_type_gets_reject_5() {
    // Order Type (bit 8) is 1 or 2; it follows Side.
    let buy = frame::encode(1, false, false, &FixedStr::new("CO0001"), &a_order("7")).unwrap();
    let sell = frame::encode(
        1,
        false,
        false,
        &FixedStr::new("CO0001"),
        &new_order("7", 1001, Side::Sell, "65.00", 400),
    )
    .unwrap();
    let at = first_diff(&buy, &sell) + 1;
    body_error(
        move |f| f[at] = 7,
        MessageRejectCode::ValueIncorrect,
        11,
        a_order("7"),
    )
    .await;
}

#[tokio::test]
async fn body_shorter_than_its_fields_gets_reject_6() {
    // The length and CRC are right, but the last present field (BCAN, char[21]) runs past the
    // end of the body.
    body_error(
        |f| {
            let n = f.len();
            f.drain(n - 4 - 10..n - 4);
        },
        MessageRejectCode::IncorrectDataFormat,
        11,
        a_order("7"),
    )
    .await;
}

#[tokio::test]
async fn bytes_after_the_last_field_get_a_reject() {
    // Not in the reference's list; the codec answers "other" (99).
    body_error(
        |f| {
            let n = f.len();
            f.splice(n - 4..n - 4, [0u8, 0, 0]);
        },
        MessageRejectCode::Other,
        11,
        a_order("7"),
    )
    .await;
}

#[tokio::test]
async fn header_comp_id_of_another_session_gets_reject_9() {
    body_error(
        |f| {
            f[10..22].copy_from_slice(b"CO0002\0\0\0\0\0\0");
        },
        MessageRejectCode::CompIdProblem,
        11,
        a_order("7"),
    )
    .await;
}

#[tokio::test]
async fn bad_body_in_a_session_message_gets_a_reject() {
    // Test Request without its mandatory Test Request ID.
    body_error(
        |f| {
            clear_bit(f, 0);
            f.drain(HEADER..HEADER + 2);
        },
        MessageRejectCode::RequiredFieldMissing,
        1,
        Message::TestRequest(TestRequest { test_request_id: 5 }),
    )
    .await;
}

// --------------------------------------------------------------------------- before the logon

#[tokio::test]
async fn garbage_before_logon_is_dropped_silently() {
    let site = start(site_config(abc())).await;
    let mut market = Market::open(&site).await;
    for bytes in [
        b"GET / HTTP/1.1\r\n\r\n".to_vec(),
        vec![0x02, 0x05, 0x00, 0x05],
        vec![0x02; 600],
    ] {
        let mut x = Raw::connect(site.gateway_primary, "CO0001").await;
        x.send_bytes(&bytes).await;
        x.expect_silent_close().await;
    }
    // A Logon with a corrupted body (unknown Comp ID would also be silent): silent drop.
    let mut x = Raw::connect(site.gateway_primary, "CO0001").await;
    let mut f = x.frame(&logon_msg(PASSWORD, 1));
    set_bit(&mut f, 100);
    refit(&mut f);
    x.send_bytes(&f).await;
    x.expect_silent_close().await;
    market.check_intact(&site, 100).await;
    // A's logon afterwards is the first one of the day.
    let _a = Raw::logon(site.gateway_primary, "CO0001").await;
    site.shutdown();
}

// ------------------------------------------------------------------------------ never a panic

#[tokio::test]
async fn random_corruptions_never_break_the_site() {
    let (site, mut market, mut a) = setup().await;
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(20231125);
    let mut drops = 0;
    let mut rejects = 0;
    for i in 0..60u32 {
        let seq = a.seq;
        let mut f = a.frame(&new_order(
            &(1000 + i).to_string(),
            1001,
            Side::Buy,
            "60.00",
            400,
        ));
        // Corrupt 1-3 bytes anywhere but length, message type, sequence number and flags (so a
        // frame that survives framing is still a New Order in sequence; wrong lengths have
        // their own tests), then usually fix the CRC.
        for _ in 0..1 + rng.next_u32() % 3 {
            let at = loop {
                let at = (rng.next_u32() as usize) % f.len();
                if !(1..10).contains(&at) {
                    break at;
                }
            };
            f[at] = rng.next_u32() as u8;
        }
        if rng.next_u32() % 4 != 0 {
            refit(&mut f);
        }
        a.send_bytes(&f).await;
        // A Test Request behind it: its answer means the frame was fully handled.
        let probe = 10_000 + i as u16;
        a.send(Message::TestRequest(TestRequest {
            test_request_id: probe,
        }))
        .await;
        let r = a
            .expect(T, |_, m| match m {
                Message::Heartbeat(h) if h.reference_test_request_id == Some(probe) => Some(()),
                _ => None,
            })
            .await;
        match r {
            Ok(((), seen)) => {
                rejects += seen
                    .iter()
                    .filter(|m| matches!(m, Message::Reject(_)))
                    .count();
            }
            Err(e) => {
                assert!(e.contains("connection closed"), "{e}");
                drops += 1;
                assert!(site.state_hash().await.is_some(), "site core died");
                // The corrupted frame did not count; log on again with its number.
                let next = a.last_in + 1;
                a = Raw::logon_with(site.gateway_primary, "CO0001", seq, next)
                    .await
                    .0;
            }
        }
    }
    assert!(drops > 0 && rejects > 0, "drops {drops}, rejects {rejects}");
    assert!(site.state_hash().await.is_some(), "site core died");
    // B and C are still logged on, and C can still trade (with B's order, or with a sell that a
    // corruption made out of one of A's buys).
    market
        .b
        .send(Message::TestRequest(TestRequest { test_request_id: 1 }))
        .await;
    market
        .b
        .expect(T, |_, m| {
            matches!(m, Message::Heartbeat(h) if h.reference_test_request_id == Some(1))
                .then_some(())
        })
        .await
        .unwrap();
    market
        .c
        .send(new_order("100", 1003, Side::Buy, "65.30", 400))
        .await;
    market.c.expect_er(ExecType::Trade).await;
    site.shutdown();
}

// ------------------------------------------------------------------ several frames, one write

#[tokio::test]

async fn frames_around_a_bad_one_in_the_same_write_are_processed_in_order() {
    let (site, mut market, mut a) = setup().await;
    let mut bytes = a.frame(&a_order("1"));
    let bad_seq = a.seq;
    let mut bad = a.frame(&a_order("2"));
    set_bit(&mut bad, 20);
    refit(&mut bad);
    bytes.extend(bad);
    bytes.extend(a.frame(&a_order("3")));
    a.send_bytes(&bytes).await;
    let mut got = Vec::new();
    let mut numbers = Vec::new();
    while got.len() < 3 {
        let ((m, n), _) = a
            .expect(T, |h, m| match m {
                Message::ExecutionReport(r) => Some((
                    format!(
                        "ER {:?} {}",
                        r.exec_type,
                        r.cl_ord_id.as_ref().unwrap().as_str()
                    ),
                    h.seq,
                )),
                Message::Reject(r) => Some((
                    format!(
                        "Reject {:?} {}",
                        r.message_reject_code, r.reference_sequence_number
                    ),
                    h.seq,
                )),
                _ => None,
            })
            .await
            .unwrap();
        got.push(m);
        numbers.push(n);
    }
    eprintln!("received {got:?} under exchange sequence numbers {numbers:?}");
    assert_eq!(
        got,
        [
            "ER Some(New) 1".to_string(),
            format!("Reject UndefinedField {bad_seq}"),
            "ER Some(New) 3".to_string(),
        ]
    );
    market.before = site.state_hash().await.unwrap();
    market.check_intact(&site, 100).await;
    site.shutdown();
}

#[tokio::test]
async fn good_frame_before_a_bad_crc_in_the_same_write_is_processed() {
    let (site, mut market, mut a) = setup().await;
    let next_in = a.seq + 1;
    let mut bytes = a.frame(&a_order("1"));
    let mut bad = a.frame(&a_order("2"));
    let n = bad.len();
    bad[n - 2] ^= 0xff;
    bytes.extend(bad);
    a.send_bytes(&bytes).await;
    let seen = a.expect_closed(T).await.unwrap();
    let ers: Vec<_> = seen
        .iter()
        .filter_map(|m| match m {
            Message::ExecutionReport(r) => Some((r.exec_type, r.cl_ord_id.clone())),
            Message::Heartbeat(_) => None,
            other => panic!("only the ack may come back, got {other:?}"),
        })
        .collect();
    // The good order was accepted. Its ack may not make it out before the drop (the site
    // closes the connection as it reads the bad CRC); then it comes at the next logon.
    market.before = site.state_hash().await.unwrap();
    assert_eq!(market.before.1, 2, "B's order and A's first");
    market.check_intact(&site, 100).await;
    if ers.is_empty() {
        let next = a.last_in + 1;
        let (mut a, _) = Raw::logon_with(site.gateway_primary, "CO0001", next_in, next).await;
        let ack = a.expect_er(ExecType::New).await;
        assert_eq!(ack.cl_ord_id, Some(FixedStr::new("1")));
    } else {
        assert_eq!(ers, [(Some(ExecType::New), Some(FixedStr::new("1")))]);
    }
    site.shutdown();
}

#[tokio::test]
async fn reject_is_delivered_again_at_the_next_logon() {
    // Reference §1.8: Rejects generated for a session are replayed when it logs on again.
    let (site, _market, mut a) = setup().await;
    let seq = a.seq;
    let mut bad = a.frame(&a_order("1"));
    set_bit(&mut bad, 20);
    refit(&mut bad);
    a.send_bytes(&bad).await;
    let (reject_seq, _) = a
        .expect(T, |h, m| matches!(m, Message::Reject(_)).then_some(h.seq))
        .await
        .unwrap();
    let next_in = a.seq;
    drop(a);
    let (mut a, _) = Raw::logon_with(site.gateway_primary, "CO0001", next_in, reject_seq).await;
    let (r, _) = a
        .expect(T, |h, m| match m {
            Message::Reject(r) => Some((h.seq, h.poss_dup, r.reference_sequence_number)),
            _ => None,
        })
        .await
        .unwrap();
    assert_eq!(r, (reject_seq, true, seq));
    site.shutdown();
}

#[tokio::test]
async fn text_of_exactly_fifty_characters_is_accepted_fifty_one_rejected() {
    // Reference §1.9: Text is var <= 50 (read as 50 characters plus the NUL, docs/ocg.md).
    let (site, _market, mut a) = setup().await;
    a.send(order_with_text(&"A".repeat(50))).await;
    let ack = a.expect_er(ExecType::New).await;
    assert_eq!(ack.cl_ord_id, Some(FixedStr::new("7")));
    let seq = a.seq;
    let mut f = a.frame(&order_with_text("ABC"));
    let at = find(&f, &[4, 0, b'A', b'B', b'C', 0]);
    let mut long = vec![52, 0];
    long.extend([b'B'; 51]);
    long.push(0);
    f.splice(at..at + 6, long);
    refit(&mut f);
    a.send_bytes(&f).await;
    let rej = a.expect_reject().await;
    assert_eq!(
        rej.message_reject_code,
        MessageRejectCode::IncorrectDataFormat
    );
    assert_eq!(rej.reference_sequence_number, seq);
    site.shutdown();
}
