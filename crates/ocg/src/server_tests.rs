//! Scenario tests for the server session: each drives an [`OcgServer`] with the bytes a
//! participant would send and asserts on what the participant would see (frames, disconnects)
//! and what the gateway would see (deliveries, Cancel on Disconnect).

use std::net::{IpAddr, Ipv4Addr};

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use twinsite_core::time::NANOS_PER_SEC;
use twinsite_core::{CompId, Timestamp};

use crate::cod::DownCause;
use crate::password::{self, test_keys, Credentials, Padding};
use crate::server::*;
use crate::*;

const T0: Timestamp = Timestamp(1_700_000_000 * NANOS_PER_SEC);
const IP: IpAddr = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1));
const C1: ConnectionId = ConnectionId(1);
const C2: ConnectionId = ConnectionId(2);
const PW: &str = "pass1234";

fn secs(s: u64) -> Timestamp {
    T0.plus_nanos(s * NANOS_PER_SEC)
}

fn comp() -> CompId {
    CompId::new("CO1").unwrap()
}

fn credentials() -> Credentials {
    let mut c = Credentials::issued("CO1", PW, password::hkt_day(T0), 90);
    c.must_change = false;
    c
}

fn server_with(config: ServerConfig, cod_delay_ns: Option<u64>) -> OcgServer {
    let mut s = OcgServer::new(config, vec![test_keys::key_a()]);
    let p = ParticipantConfig {
        comp_id: comp(),
        source_ips: vec![IP],
        throttle_units: 4,
    };
    s.add_participant(p, DurableSession::new(comp(), credentials(), cod_delay_ns));
    s
}

fn server() -> OcgServer {
    server_with(ServerConfig::default(), Some(30 * NANOS_PER_SEC))
}

/// What the participant side of a test sees.
#[derive(Debug, Default)]
struct Seen {
    frames: Vec<(ConnectionId, Header, Message)>,
    disconnects: Vec<(ConnectionId, bool, DisconnectReason)>,
    delivered: Vec<(u32, Message)>,
    other: Vec<ServerAction>,
}

fn drain(s: &mut OcgServer) -> Seen {
    let mut seen = Seen::default();
    while let Some(a) = s.poll_action() {
        match a {
            ServerAction::Send { connection, bytes } => {
                let (h, m) = decode_one(&bytes).expect("server output decodes");
                seen.frames.push((connection, h, m));
            }
            ServerAction::Disconnect {
                connection,
                silent,
                reason,
            } => seen.disconnects.push((connection, silent, reason)),
            ServerAction::Deliver { seq, message, .. } => seen.delivered.push((seq, message)),
            other => seen.other.push(other),
        }
    }
    seen
}

fn frame(seq: u32, msg: impl Into<Message>) -> Vec<u8> {
    encode(seq, false, false, &FixedStr::new("CO1"), &msg.into()).unwrap()
}

fn encrypted(pw: &str, now: Timestamp, seed: u64) -> FixedStr<450> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let key = test_keys::key_a().to_public_key();
    FixedStr::new(&password::encrypt_password(&key, Padding::Pkcs1v15, now, pw, &mut rng).unwrap())
}

fn logon_msg(pw: &str, next_expected: u32, now: Timestamp) -> Logon {
    Logon {
        password: Some(encrypted(pw, now, 7)),
        new_password: None,
        next_expected_sequence: next_expected,
        session_status: None,
        text: None,
        test_message_indicator: None,
    }
}

/// Connect and log on; returns what the server answered.
fn logon(s: &mut OcgServer, c: ConnectionId, seq: u32, next_expected: u32, now: Timestamp) -> Seen {
    s.handle_accept(c, IP, now);
    s.handle_bytes(c, &frame(seq, logon_msg(PW, next_expected, now)), now);
    drain(s)
}

fn status_of(m: &Message) -> Option<SessionStatus> {
    match m {
        Message::Logon(l) => l.session_status,
        Message::Logout(l) => l.session_status,
        _ => None,
    }
}

fn new_order(id: &str) -> NewOrder {
    NewOrder {
        cl_ord_id: FixedStr::new(id),
        submitting_broker_id: FixedStr::new("1234"),
        security_id: FixedStr::new("5"),
        security_id_source: 8,
        security_exchange: None,
        broker_location_id: None,
        transact_time: FixedStr::new("20231114-22:13:20.000000"),
        side: Side::Buy,
        ord_type: OrdType::Limit,
        price: Some(Decimal(8_000_000_000)),
        order_qty: Decimal(40_000_000_000),
        time_in_force: None,
        position_effect: None,
        order_restrictions: None,
        max_price_levels: None,
        order_capacity: None,
        text: None,
        execution_instructions: None,
        disclosure_instructions: 1,
        lot_type: None,
        submitting_bcan: Some(FixedStr::new("1")),
    }
}

fn report(exec_id: &str) -> Message {
    Message::ExecutionReport(ExecutionReport {
        exec_id: Some(FixedStr::new(exec_id)),
        exec_type: Some(ExecType::New),
        ord_status: Some(OrdStatus::New),
        ..ExecutionReport::default()
    })
}

#[test]
fn logon_is_accepted_with_days_to_expiry() {
    let mut s = server();
    let seen = logon(&mut s, C1, 1, 1, T0);
    assert_eq!(seen.frames.len(), 1);
    let (_, h, m) = &seen.frames[0];
    assert_eq!(h.seq, 1);
    assert_eq!(h.comp_id.as_str(), "OCGC");
    let Message::Logon(reply) = m else {
        panic!("{m:?}")
    };
    assert_eq!(reply.session_status, Some(SessionStatus::Active));
    assert_eq!(reply.next_expected_sequence, 2);
    assert_eq!(reply.text.as_ref().unwrap().as_str(), "90");
    assert!(matches!(
        seen.other[..],
        [ServerAction::SessionUp { connection: C1, .. }]
    ));
    assert_eq!(s.live_connection(&comp()), Some(C1));
}

#[test]
fn silent_drops_before_logon() {
    let mut s = server();
    // Bad CRC.
    s.handle_accept(C1, IP, T0);
    let mut bytes = frame(1, logon_msg(PW, 1, T0));
    bytes[60] ^= 1;
    s.handle_bytes(C1, &bytes, T0);
    let seen = drain(&mut s);
    assert!(seen.frames.is_empty());
    assert!(matches!(
        seen.disconnects[..],
        [(
            C1,
            true,
            DisconnectReason::BadFraming(DecodeError::BadCrc { .. })
        )]
    ));
    // Anything but a Logon first.
    s.handle_accept(C2, IP, T0);
    s.handle_bytes(
        C2,
        &frame(
            1,
            Heartbeat {
                reference_test_request_id: None,
            },
        ),
        T0,
    );
    assert_eq!(
        drain(&mut s).disconnects,
        [(C2, true, DisconnectReason::MessageBeforeLogon)]
    );
    // Unknown Comp ID.
    s.handle_accept(ConnectionId(3), IP, T0);
    let other = encode(
        1,
        false,
        false,
        &FixedStr::new("NOPE"),
        &logon_msg(PW, 1, T0).into(),
    )
    .unwrap();
    s.handle_bytes(ConnectionId(3), &other, T0);
    assert_eq!(
        drain(&mut s).disconnects,
        [(ConnectionId(3), true, DisconnectReason::UnknownCompId)]
    );
    // Unregistered source IP.
    s.handle_accept(ConnectionId(4), IpAddr::V4(Ipv4Addr::new(10, 9, 9, 9)), T0);
    s.handle_bytes(ConnectionId(4), &frame(1, logon_msg(PW, 1, T0)), T0);
    let seen = drain(&mut s);
    assert_eq!(
        seen.disconnects,
        [(
            ConnectionId(4),
            true,
            DisconnectReason::UnregisteredSourceIp
        )]
    );
    // No Logon at all within the timeout.
    s.handle_accept(ConnectionId(5), IP, T0);
    assert_eq!(s.poll_timeout(), Some(secs(60)));
    s.handle_timeout(secs(60));
    assert_eq!(
        drain(&mut s).disconnects,
        [(ConnectionId(5), true, DisconnectReason::LogonTimeout)]
    );
    // None of this touched the session's sequence numbers.
    assert_eq!(s.durable(&comp()).unwrap().in_next, 1);
    assert_eq!(s.durable(&comp()).unwrap().out_next, 1);
}

#[test]
fn three_bad_passwords_lock_the_comp_id() {
    let mut s = server();
    for (i, expected) in [
        SessionStatus::InvalidUsernameOrPassword,
        SessionStatus::InvalidUsernameOrPassword,
        SessionStatus::AccountLocked,
    ]
    .into_iter()
    .enumerate()
    {
        let c = ConnectionId(i as u64);
        s.handle_accept(c, IP, T0);
        s.handle_bytes(c, &frame(1, logon_msg("wrong123", 1, T0)), T0);
        let seen = drain(&mut s);
        assert_eq!(status_of(&seen.frames[0].2), Some(expected), "attempt {i}");
        assert!(matches!(seen.frames[0].2, Message::Logout(_)));
        assert!(!seen.disconnects[0].1, "a Logout precedes the disconnect");
    }
    // Even the right password is refused now.
    let seen = logon(&mut s, ConnectionId(9), 1, 1, T0);
    assert_eq!(
        status_of(&seen.frames[0].2),
        Some(SessionStatus::AccountLocked)
    );
    // A failed logon does not advance the inbound sequence.
    assert_eq!(s.durable(&comp()).unwrap().in_next, 1);
}

#[test]
fn stale_password_timestamp_is_an_invalid_password() {
    let mut s = server();
    s.handle_accept(C1, IP, secs(121));
    // Encrypted at T0, presented 121 s later: outside the 120 s tolerance.
    let mut msg = logon_msg(PW, 1, T0);
    msg.password = Some(encrypted(PW, T0, 3));
    s.handle_bytes(C1, &frame(1, msg), secs(121));
    let seen = drain(&mut s);
    assert_eq!(
        status_of(&seen.frames[0].2),
        Some(SessionStatus::InvalidUsernameOrPassword)
    );
}

#[test]
fn bad_password_can_be_configured_silent() {
    let config = ServerConfig {
        bad_password_silent: true,
        ..ServerConfig::default()
    };
    let mut s = server_with(config, None);
    s.handle_accept(C1, IP, T0);
    s.handle_bytes(C1, &frame(1, logon_msg("wrong123", 1, T0)), T0);
    let seen = drain(&mut s);
    assert!(seen.frames.is_empty());
    assert!(seen.disconnects[0].1);
}

#[test]
fn first_logon_must_change_the_password() {
    let mut s = server();
    s.durable_mut(&comp()).unwrap().credentials.must_change = true;
    let seen = logon(&mut s, C1, 1, 1, T0);
    assert_eq!(
        status_of(&seen.frames[0].2),
        Some(SessionStatus::PasswordChangeRequired)
    );
    // A new password that breaks the policy.
    s.handle_accept(C2, IP, T0);
    let mut msg = logon_msg(PW, 1, T0);
    msg.new_password = Some(encrypted("short", T0, 11));
    s.handle_bytes(C2, &frame(1, msg), T0);
    let seen = drain(&mut s);
    assert_eq!(
        status_of(&seen.frames[0].2),
        Some(SessionStatus::NewPasswordViolatesPolicy)
    );
    // A good one: logon accepted with status 1, and the new password is the one from now on.
    let c3 = ConnectionId(3);
    s.handle_accept(c3, IP, T0);
    let mut msg = logon_msg(PW, 1, T0);
    msg.new_password = Some(encrypted("newpass9", T0, 12));
    s.handle_bytes(c3, &frame(1, msg), T0);
    let seen = drain(&mut s);
    assert_eq!(
        status_of(&seen.frames[0].2),
        Some(SessionStatus::PasswordChanged)
    );
    assert!(s
        .durable(&comp())
        .unwrap()
        .credentials
        .matches("CO1", "newpass9"));
}

#[test]
fn either_rotation_key_is_accepted() {
    let mut s = server();
    s.set_keys(vec![test_keys::key_b(), test_keys::key_a()]);
    let seen = logon(&mut s, C1, 1, 1, T0);
    assert_eq!(status_of(&seen.frames[0].2), Some(SessionStatus::Active));
}

#[test]
fn second_concurrent_logon_drops_both_connections() {
    let mut s = server();
    logon(&mut s, C1, 1, 1, T0);
    let seen = logon(&mut s, C2, 2, 2, secs(1));
    assert!(seen.frames.is_empty());
    let mut d = seen.disconnects.clone();
    d.sort_by_key(|x| x.0);
    assert_eq!(
        d,
        [
            (C1, true, DisconnectReason::DuplicateLogon),
            (C2, true, DisconnectReason::DuplicateLogon)
        ]
    );
    assert_eq!(s.live_connection(&comp()), None);
}

#[test]
fn first_logon_of_the_day_above_one_is_dropped_silently() {
    let mut s = server();
    let seen = logon(&mut s, C1, 5, 1, T0);
    assert_eq!(
        seen.disconnects,
        [(C1, true, DisconnectReason::SequenceAboveOneAtStartOfDay)]
    );
}

#[test]
fn sequence_too_low_logs_out_but_poss_dup_is_ignored() {
    let mut s = server();
    logon(&mut s, C1, 1, 1, T0);
    s.handle_bytes(C1, &frame(2, new_order("1")), T0);
    let dup = encode(
        2,
        true,
        false,
        &FixedStr::new("CO1"),
        &new_order("1").into(),
    )
    .unwrap();
    s.handle_bytes(C1, &dup, T0);
    let seen = drain(&mut s);
    assert_eq!(seen.delivered.len(), 1, "the PossDup copy is ignored");
    assert!(seen.disconnects.is_empty());
    s.handle_bytes(C1, &frame(2, new_order("2")), T0);
    let seen = drain(&mut s);
    assert!(matches!(seen.frames[0].2, Message::Logout(_)));
    assert_eq!(
        seen.disconnects,
        [(
            C1,
            false,
            DisconnectReason::SequenceTooLow {
                received: 2,
                expected: 3
            }
        )]
    );
    assert_eq!(s.durable(&comp()).unwrap().in_next, 3);
}

#[test]
fn inbound_gap_is_recovered_with_a_resend_request() {
    let mut s = server();
    logon(&mut s, C1, 1, 1, T0);
    // 2 and 3 are lost; 4 arrives.
    s.handle_bytes(C1, &frame(4, new_order("4")), T0);
    let seen = drain(&mut s);
    let Message::ResendRequest(r) = &seen.frames[0].2 else {
        panic!("{:?}", seen.frames)
    };
    assert_eq!((r.start_sequence, r.end_sequence), (2, 3));
    assert!(seen.delivered.is_empty());
    // 5 arrives during recovery: queued. Then the replays.
    s.handle_bytes(C1, &frame(5, new_order("5")), T0);
    let replay = |seq, id| {
        encode(
            seq,
            true,
            false,
            &FixedStr::new("CO1"),
            &new_order(id).into(),
        )
        .unwrap()
    };
    s.handle_bytes(C1, &replay(2, "2"), T0);
    s.handle_bytes(C1, &replay(3, "3"), secs(1));
    let seen = drain(&mut s);
    let seqs: Vec<u32> = seen.delivered.iter().map(|d| d.0).collect();
    assert_eq!(seqs, [2, 3, 4, 5]);
    assert_eq!(s.durable(&comp()).unwrap().in_next, 6);
}

#[test]
fn logon_replays_missed_business_messages_and_gap_fills_the_logon() {
    let mut s = server();
    logon(&mut s, C1, 1, 1, T0);
    s.handle_bytes(
        C1,
        &frame(
            2,
            Heartbeat {
                reference_test_request_id: None,
            },
        ),
        T0,
    );
    s.handle_closed(C1, secs(1));
    // While disconnected the engine produces two reports (seq 2 and 3).
    s.send_business(&comp(), report("E1"), secs(2)).unwrap();
    s.send_business(&comp(), report("E2"), secs(2)).unwrap();
    drain(&mut s);
    // The participant last received seq 1, so it expects 2.
    let seen = logon(&mut s, C2, 3, 2, secs(5));
    let summary: Vec<_> = seen
        .frames
        .iter()
        .map(|(_, h, m)| (h.seq, h.poss_dup, m.msg_type()))
        .collect();
    // Logon reply under 4, replay of 2 and 3, then a gap fill over the reply's own number 4.
    assert_eq!(
        summary,
        [(4, false, 5), (2, true, 10), (3, true, 10), (4, true, 4)]
    );
    let Message::SequenceReset(r) = &seen.frames[3].2 else {
        panic!()
    };
    assert_eq!(
        (r.gap_fill, r.new_sequence_number),
        (Some(GapFill::GapFill), 5)
    );
    let Message::Logon(reply) = &seen.frames[0].2 else {
        panic!()
    };
    assert_eq!(reply.next_expected_sequence, 4);
}

#[test]
fn next_expected_above_what_was_sent_logs_out() {
    let mut s = server();
    let seen = logon(&mut s, C1, 1, 9, T0);
    assert!(matches!(seen.frames[0].2, Message::Logout(_)));
    assert!(matches!(
        seen.disconnects[..],
        [(
            C1,
            false,
            DisconnectReason::NextExpectedTooHigh {
                next_expected: 9,
                next_to_send: 1
            }
        )]
    ));
}

#[test]
fn resend_request_replays_and_a_second_one_during_the_resend_kills_the_session() {
    let config = ServerConfig {
        replay_batch: 2,
        ..ServerConfig::default()
    };
    let mut s = server_with(config, None);
    logon(&mut s, C1, 1, 1, T0); // out 1 = Logon reply
    for e in ["E1", "E2", "E3", "E4"] {
        s.send_business(&comp(), report(e), T0).unwrap(); // out 2..=5
    }
    drain(&mut s);
    let rr = |seq, start, end| {
        frame(
            seq,
            ResendRequest {
                start_sequence: start,
                end_sequence: end,
            },
        )
    };
    s.handle_bytes(C1, &rr(2, 1, 0), secs(1));
    let seen = drain(&mut s);
    let summary: Vec<_> = seen
        .frames
        .iter()
        .map(|(_, h, m)| (h.seq, m.msg_type()))
        .collect();
    // First batch: the Logon (1) is gap-filled, then report 2.
    assert_eq!(summary, [(1, 4), (2, 10)]);
    assert_eq!(
        s.poll_timeout(),
        Some(secs(1)),
        "the rest of the replay is due now"
    );
    s.handle_bytes(C1, &rr(3, 1, 0), secs(1));
    let seen = drain(&mut s);
    assert_eq!(
        seen.disconnects,
        [(C1, true, DisconnectReason::SecondResendRequest)]
    );
}

#[test]
fn resend_request_completes_over_several_batches() {
    let config = ServerConfig {
        replay_batch: 2,
        ..ServerConfig::default()
    };
    let mut s = server_with(config, None);
    logon(&mut s, C1, 1, 1, T0);
    for e in ["E1", "E2", "E3"] {
        s.send_business(&comp(), report(e), T0).unwrap();
    }
    drain(&mut s);
    s.handle_bytes(
        C1,
        &frame(
            2,
            ResendRequest {
                start_sequence: 2,
                end_sequence: 4,
            },
        ),
        secs(1),
    );
    let mut seqs: Vec<u32> = drain(&mut s).frames.iter().map(|f| f.1.seq).collect();
    while let Some(t) = s.poll_timeout().filter(|t| *t <= secs(1)) {
        s.handle_timeout(t);
        seqs.extend(drain(&mut s).frames.iter().map(|f| f.1.seq));
    }
    assert_eq!(seqs, [2, 3, 4]);
    // Live traffic continues after the replay.
    s.send_business(&comp(), report("E4"), secs(2)).unwrap();
    assert_eq!(drain(&mut s).frames[0].1.seq, 5);
}

#[test]
fn heartbeat_test_request_and_cancel_on_disconnect_on_silence() {
    let mut s = server();
    logon(&mut s, C1, 1, 1, T0);
    assert_eq!(s.poll_timeout(), Some(secs(20)));
    s.handle_timeout(secs(20));
    let seen = drain(&mut s);
    assert!(matches!(seen.frames[..], [(_, _, Message::Heartbeat(_))]));
    s.handle_timeout(secs(60));
    let seen = drain(&mut s);
    assert!(
        matches!(seen.frames[..], [(_, _, Message::TestRequest(_))]),
        "{:?}",
        seen.frames
    );
    s.handle_timeout(secs(119));
    assert!(drain(&mut s).disconnects.is_empty());
    s.handle_timeout(secs(120));
    let seen = drain(&mut s);
    assert!(matches!(seen.frames.last().unwrap().2, Message::Logout(_)));
    assert_eq!(
        seen.disconnects,
        [(C1, false, DisconnectReason::HeartbeatTimeout)]
    );
    assert!(seen.other.contains(&ServerAction::SessionDown {
        comp_id: comp(),
        connection: C1,
        cause: DownCause::HeartbeatTimeout
    }));
    // Cancel on Disconnect fires after its 30 s delay.
    assert_eq!(s.poll_timeout(), Some(secs(150)));
    s.handle_timeout(secs(150));
    assert_eq!(
        drain(&mut s).other,
        [ServerAction::CancelOnDisconnect { comp_id: comp() }]
    );
}

#[test]
fn test_request_is_answered_and_traffic_keeps_the_session_alive() {
    let mut s = server();
    logon(&mut s, C1, 1, 1, T0);
    s.handle_bytes(
        C1,
        &frame(
            2,
            TestRequest {
                test_request_id: 42,
            },
        ),
        secs(50),
    );
    let seen = drain(&mut s);
    let Message::Heartbeat(h) = &seen.frames[0].2 else {
        panic!()
    };
    assert_eq!(h.reference_test_request_id, Some(42));
    s.handle_timeout(secs(100));
    assert!(drain(&mut s)
        .frames
        .iter()
        .all(|f| !matches!(f.2, Message::TestRequest(_))));
}

#[test]
fn reconnect_within_the_delay_prevents_cancel_on_disconnect() {
    let mut s = server();
    logon(&mut s, C1, 1, 1, T0);
    s.handle_closed(C1, secs(1));
    drain(&mut s);
    assert_eq!(s.poll_timeout(), Some(secs(31)));
    logon(&mut s, C2, 2, 2, secs(20));
    s.handle_timeout(secs(40));
    assert!(drain(&mut s)
        .other
        .iter()
        .all(|a| !matches!(a, ServerAction::CancelOnDisconnect { .. })));
}

#[test]
fn client_logout_is_answered_and_never_cancels() {
    let mut s = server();
    logon(&mut s, C1, 1, 1, T0);
    s.handle_bytes(
        C1,
        &frame(
            2,
            Logout {
                logout_text: None,
                session_status: None,
            },
        ),
        secs(1),
    );
    let seen = drain(&mut s);
    assert_eq!(
        status_of(&seen.frames[0].2),
        Some(SessionStatus::LogoutComplete)
    );
    assert_eq!(
        seen.disconnects,
        [(C1, false, DisconnectReason::ClientLogout)]
    );
    assert_eq!(s.poll_timeout(), None);
}

#[test]
fn throttle_rejects_the_excess_with_milliseconds_left() {
    let mut s = server();
    logon(&mut s, C1, 1, 1, T0);
    let t = T0.plus_nanos(400_000_000);
    for seq in 2..=10 {
        s.handle_bytes(C1, &frame(seq, new_order(&seq.to_string())), t);
    }
    let seen = drain(&mut s);
    // Reference §1.12: four throttle units admit 8 messages per clock second.
    assert_eq!(seen.delivered.len(), 8);
    let Message::BusinessMessageReject(bmr) = &seen.frames[0].2 else {
        panic!("{:?}", seen.frames)
    };
    assert_eq!(
        bmr.business_reject_code,
        BusinessRejectCode::ThrottleLimitExceeded
    );
    assert_eq!(bmr.reason.as_ref().unwrap().as_str(), "600");
    assert_eq!(bmr.reference_sequence_number, Some(10));
    assert_eq!(
        bmr.business_reject_reference_id.as_ref().unwrap().as_str(),
        "10"
    );
    s.handle_bytes(C1, &frame(11, new_order("11")), secs(1));
    assert_eq!(
        drain(&mut s).delivered.len(),
        1,
        "a new clock second opens a new window"
    );
}

#[test]
fn malformed_and_forbidden_messages_get_session_rejects() {
    let mut s = server();
    logon(&mut s, C1, 1, 1, T0);
    // A Test Request with no fields: mandatory bit 0 missing.
    let mut bad = frame(
        2,
        Heartbeat {
            reference_test_request_id: None,
        },
    );
    bad[3] = 1;
    let n = bad.len() - 4;
    let crc = crc32c::crc32c(&bad[..n]);
    bad[n..].copy_from_slice(&crc.to_le_bytes());
    s.handle_bytes(C1, &bad, T0);
    // A Sequence Reset in Reset mode, and an Execution Report, neither allowed from a client.
    s.handle_bytes(
        C1,
        &frame(
            3,
            SequenceReset {
                gap_fill: None,
                new_sequence_number: 10,
            },
        ),
        T0,
    );
    s.handle_bytes(C1, &frame(4, report("X").clone()), T0);
    let seen = drain(&mut s);
    let codes: Vec<_> = seen
        .frames
        .iter()
        .map(|f| match &f.2 {
            Message::Reject(r) => (r.message_reject_code, r.reference_sequence_number),
            m => panic!("{m:?}"),
        })
        .collect();
    assert_eq!(
        codes,
        [
            (MessageRejectCode::RequiredFieldMissing, 2),
            (MessageRejectCode::ValueIncorrect, 3),
            (MessageRejectCode::InvalidMessageType, 4)
        ]
    );
    assert_eq!(s.durable(&comp()).unwrap().in_next, 5);
}

#[test]
fn exchange_outage_never_cancels_and_redelivery_carries_poss_resend_at_the_backup_site() {
    let mut s = server();
    logon(&mut s, C1, 1, 1, T0);
    s.send_business(&comp(), report("E1"), T0).unwrap(); // seq 2, delivered live
    drain(&mut s);
    s.exchange_outage(secs(1));
    let seen = drain(&mut s);
    assert_eq!(
        seen.disconnects,
        [(C1, true, DisconnectReason::ExchangeOutage)]
    );
    assert!(seen.other.contains(&ServerAction::SessionDown {
        comp_id: comp(),
        connection: C1,
        cause: DownCause::ExchangeOutage
    }));
    // The engine at the backup site produces a fill while the participant is away (seq 3).
    s.send_business(&comp(), report("E2"), secs(2)).unwrap();
    // Replicate the durable state to the backup site as JSON.
    let json = serde_json::to_string(s.durable(&comp()).unwrap()).unwrap();
    let state: DurableSession = serde_json::from_str(&json).unwrap();
    assert_eq!(&state, s.durable(&comp()).unwrap());
    let mut backup = OcgServer::new(ServerConfig::default(), vec![test_keys::key_a()]);
    let p = ParticipantConfig {
        comp_id: comp(),
        source_ips: vec![IP],
        throttle_units: 1,
    };
    backup.add_participant(p, state);
    backup.handle_timeout(secs(100));
    assert!(
        drain(&mut backup).other.is_empty(),
        "no Cancel on Disconnect after an exchange outage"
    );
    // The participant continues its session at the backup: it has seen up to 2.
    let seen = logon(&mut backup, C2, 2, 3, secs(200));
    let summary: Vec<_> = seen
        .frames
        .iter()
        .map(|(_, h, m)| (h.seq, h.poss_dup, h.poss_resend, m.msg_type()))
        .collect();
    assert_eq!(
        summary,
        [
            (4, false, false, 5),
            (3, true, true, 10),
            (4, true, false, 4)
        ]
    );
}

#[test]
fn gross_throttle_violation_logs_out() {
    let config = ServerConfig {
        throttle_rejects_before_logout: Some(2),
        ..ServerConfig::default()
    };
    let mut s = server_with(config, None);
    logon(&mut s, C1, 1, 1, T0);
    for seq in 2..=12 {
        s.handle_bytes(C1, &frame(seq, new_order(&seq.to_string())), T0);
    }
    let seen = drain(&mut s);
    assert_eq!(seen.delivered.len(), 8);
    let bmrs = seen
        .frames
        .iter()
        .filter(|f| matches!(f.2, Message::BusinessMessageReject(_)))
        .count();
    assert_eq!(bmrs, 3);
    assert!(matches!(seen.frames.last().unwrap().2, Message::Logout(_)));
    assert_eq!(
        seen.disconnects,
        [(C1, false, DisconnectReason::ThrottleAbuse)]
    );
}

#[test]
fn exchange_logout_waits_for_the_reply_then_closes() {
    let mut s = server();
    logon(&mut s, C1, 1, 1, T0);
    s.logout(&comp(), "service shutdown", secs(1));
    let seen = drain(&mut s);
    assert_eq!(
        status_of(&seen.frames[0].2),
        Some(SessionStatus::LogoutComplete)
    );
    assert!(seen.disconnects.is_empty());
    s.handle_bytes(
        C1,
        &frame(
            2,
            Logout {
                logout_text: None,
                session_status: None,
            },
        ),
        secs(2),
    );
    let seen = drain(&mut s);
    assert_eq!(
        seen.disconnects,
        [(C1, false, DisconnectReason::ExchangeLogout)]
    );
    // Without a reply the connection closes after the logout timeout.
    logon(&mut s, C2, 3, 3, secs(3));
    s.logout(&comp(), "service shutdown", secs(4));
    s.handle_timeout(secs(63));
    assert!(drain(&mut s).disconnects.is_empty());
    s.handle_timeout(secs(64));
    let d: Vec<_> = drain(&mut s).disconnects;
    assert!(
        d.contains(&(C2, false, DisconnectReason::LogoutTimeout)),
        "{d:?}"
    );
    s.handle_timeout(secs(200));
    assert!(
        drain(&mut s).other.is_empty(),
        "an exchange logout never cancels orders"
    );
}

#[test]
fn throttle_entitlement_request_is_answered_by_the_session() {
    let mut s = server();
    logon(&mut s, C1, 1, 1, T0);
    let req = ThrottleEntitlementRequest {
        user_request_id: FixedStr::new("R1"),
        user_request_type: 5,
        username: FixedStr::new("CO1"),
    };
    s.handle_bytes(C1, &frame(2, req), T0);
    let seen = drain(&mut s);
    assert!(seen.delivered.is_empty());
    let Message::ThrottleEntitlementResponse(r) = &seen.frames[0].2 else {
        panic!()
    };
    let entry = &r.throttles.as_ref().unwrap().0[0];
    assert_eq!(entry.throttle_no_messages, Some(8), "4 units of 2 messages");
    assert_eq!(
        (entry.throttle_time_interval, entry.throttle_time_unit),
        (Some(1), Some(0))
    );
}

#[test]
fn shutdown_logs_out_every_live_session() {
    let mut s = server();
    logon(&mut s, C1, 1, 1, T0);
    s.shutdown(secs(1));
    let seen = drain(&mut s);
    assert_eq!(
        status_of(&seen.frames[0].2),
        Some(SessionStatus::LogoutComplete)
    );
}

#[test]
fn emergency_sequence_reset_moves_the_outbound_number() {
    let mut s = server();
    logon(&mut s, C1, 1, 1, T0);
    s.send_sequence_reset(&comp(), 100, secs(1));
    s.send_business(&comp(), report("E1"), secs(1)).unwrap();
    let seen = drain(&mut s);
    let Message::SequenceReset(r) = &seen.frames[0].2 else {
        panic!()
    };
    assert_eq!(
        (seen.frames[0].1.seq, r.gap_fill, r.new_sequence_number),
        (2, Some(GapFill::Reset), 100)
    );
    assert_eq!(seen.frames[1].1.seq, 100);
}

#[test]
fn cancel_on_disconnect_started_by_a_client_drop_survives_an_outage() {
    let mut s = server();
    logon(&mut s, C1, 1, 1, T0);
    s.handle_closed(C1, secs(1));
    s.exchange_outage(secs(2));
    drain(&mut s);
    s.handle_timeout(secs(31));
    assert_eq!(
        drain(&mut s).other,
        [ServerAction::CancelOnDisconnect { comp_id: comp() }]
    );
}

#[test]
fn a_frame_under_another_comp_id_gets_reject_code_9() {
    let mut s = server();
    logon(&mut s, C1, 1, 1, T0);
    let other = encode(
        2,
        false,
        false,
        &FixedStr::new("CO2"),
        &new_order("1").into(),
    )
    .unwrap();
    s.handle_bytes(C1, &other, T0);
    let seen = drain(&mut s);
    assert!(seen.delivered.is_empty());
    let Message::Reject(r) = &seen.frames[0].2 else {
        panic!()
    };
    assert_eq!(r.message_reject_code, MessageRejectCode::CompIdProblem);
}
