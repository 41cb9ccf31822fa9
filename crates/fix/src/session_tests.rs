//! Session-layer scenarios: an initiator and an acceptor wired together in memory (quinn's
//! `Pair` shape), plus a raw peer that writes hand-made bytes to exercise each FIX session-level
//! test case. Time is a plain value advanced by the tests; nothing sleeps.

use proptest::prelude::*;
use twinsite_core::Timestamp;

use crate::codec::{encode, BEGIN_STRING};
use crate::message::{read_frame, Field, Message, Received};
use crate::password::{session_status, LogonCredentials, LogonDecision};
use crate::session::{
    Action, DisconnectReason, Inbound, Phase, Session, SessionConfig, SessionState,
};
use crate::time::{format_utc_timestamp, TimePrecision};

type Pairs = Vec<(u32, &'static str)>;

const EXCHANGE: &str = "HKEX";
const BROKER: &str = "CO01";
const SECOND: u64 = 1_000_000_000;

fn t0() -> Timestamp {
    Timestamp::from_secs(1_700_000_000)
}

fn accept_all() -> Box<dyn crate::password::LogonVerifier + Send> {
    Box::new(|c: &LogonCredentials, _now: Timestamp| {
        if c.password.as_deref() == Some("bad") {
            LogonDecision::Reject {
                session_status: session_status::INVALID_USERNAME_OR_PASSWORD,
                text: "invalid password".into(),
            }
        } else {
            LogonDecision::Accept { new_password: None }
        }
    })
}

fn acceptor(state: SessionState, now: Timestamp) -> Session {
    Session::acceptor(
        SessionConfig::acceptor(EXCHANGE, BROKER),
        state,
        accept_all(),
        now,
    )
}

fn initiator(state: SessionState, now: Timestamp) -> Session {
    Session::initiator(
        SessionConfig::initiator(BROKER, EXCHANGE),
        state,
        Box::new(|_| vec![Field::new(554, "secret")]),
        now,
    )
}

fn order(cl_ord_id: &str) -> Message {
    Message::new("D")
        .with(11, cl_ord_id)
        .with(48, "5")
        .with(22, "8")
        .with(60, "20231114-22:13:20.000")
        .with(54, "1")
        .with(40, "2")
        .with(44, "38.5")
        .with(38, "400")
}

fn execution_report(exec_id: &str) -> Message {
    Message::new("8")
        .with(37, "1")
        .with(11, "1")
        .with(17, exec_id)
        .with(150, "0")
        .with(39, "0")
        .with(48, "5")
        .with(54, "1")
        .with(14, "0")
        .with(151, "400")
}

#[derive(Default)]
struct Outputs {
    sent: Vec<Received>,
    delivered: Vec<Inbound>,
    established: bool,
    disconnect: Option<DisconnectReason>,
}

/// Drain a session's actions; returns the bytes it sent.
fn collect(session: &mut Session, out: &mut Outputs) -> Vec<Vec<u8>> {
    let mut bytes = Vec::new();
    while let Some(action) = session.poll_action() {
        match action {
            Action::Send(b) => {
                out.sent
                    .push(read_frame(&b).expect("we only send valid frames"));
                bytes.push(b);
            }
            Action::Deliver(m) => out.delivered.push(m),
            Action::Established => out.established = true,
            Action::Disconnect { reason } => out.disconnect = Some(reason),
        }
    }
    bytes
}

/// An initiator and an acceptor connected by an in-memory pipe.
struct Pair {
    now: Timestamp,
    exchange: Session,
    broker: Session,
    exchange_out: Outputs,
    broker_out: Outputs,
}

impl Pair {
    fn connect(exchange_state: SessionState, broker_state: SessionState, now: Timestamp) -> Pair {
        let mut pair = Pair {
            now,
            exchange: acceptor(exchange_state, now),
            broker: initiator(broker_state, now),
            exchange_out: Outputs::default(),
            broker_out: Outputs::default(),
        };
        pair.drive();
        pair
    }

    fn fresh() -> Pair {
        Pair::connect(
            SessionState::new(EXCHANGE, BROKER),
            SessionState::new(BROKER, EXCHANGE),
            t0(),
        )
    }

    /// Move bytes both ways until both sides are quiet (bounded, to catch livelock).
    fn drive(&mut self) {
        for _ in 0..100 {
            let to_exchange = collect(&mut self.broker, &mut self.broker_out);
            let to_broker = collect(&mut self.exchange, &mut self.exchange_out);
            if to_exchange.is_empty() && to_broker.is_empty() {
                return;
            }
            for b in to_exchange {
                self.exchange.handle_bytes(self.now, &b);
            }
            for b in to_broker {
                self.broker.handle_bytes(self.now, &b);
            }
        }
        panic!("sessions did not go quiet within 100 steps");
    }

    fn advance(&mut self, secs: u64) {
        self.now = self.now.plus_nanos(secs * SECOND);
        self.exchange.handle_timeout(self.now);
        self.broker.handle_timeout(self.now);
        self.drive();
    }
}

#[test]
fn logon_exchange_establishes_both_sides() {
    let pair = Pair::fresh();
    assert!(pair.exchange_out.established && pair.broker_out.established);
    let logon = &pair.broker_out.sent[0];
    assert_eq!(logon.message.msg_type, "A");
    assert_eq!(logon.message.get(1137), Some("9"));
    assert_eq!(logon.message.get(789), Some("1"));
    let reply = &pair.exchange_out.sent[0];
    assert_eq!(reply.message.msg_type, "A");
    assert_eq!(reply.message.get(789), Some("2"));
    assert_eq!(reply.message.get(1409), Some("0"));
    assert_eq!(pair.exchange.state().next_inbound_seq, 2);
    assert_eq!(pair.broker.state().next_inbound_seq, 2);
    // The Logon's numbers and ours before it, for activity tracking.
    let l = pair.exchange.logon_seq_nums().unwrap();
    assert_eq!(
        (
            l.msg_seq_num,
            l.next_expected,
            l.our_next_inbound,
            l.our_next_outbound
        ),
        (1, 1, 1, 1)
    );
}

#[test]
fn orders_and_execution_reports_flow_in_sequence() {
    let mut pair = Pair::fresh();
    pair.broker.send(pair.now, order("1")).unwrap();
    pair.broker.send(pair.now, order("2")).unwrap();
    pair.drive();
    let got: Vec<_> = pair
        .exchange_out
        .delivered
        .iter()
        .map(|m| m.message.get(11))
        .collect();
    assert_eq!(got, vec![Some("1"), Some("2")]);
    pair.exchange
        .send(pair.now, execution_report("E1"))
        .unwrap();
    pair.drive();
    assert_eq!(pair.broker_out.delivered[0].message.get(17), Some("E1"));
    assert_eq!(pair.broker_out.delivered[0].seq, 2);
    assert!(!pair.broker_out.delivered[0].poss_dup);
}

#[test]
fn heartbeats_and_test_requests_keep_the_session_alive() {
    let mut pair = Pair::fresh();
    pair.advance(20);
    assert!(pair
        .broker_out
        .sent
        .iter()
        .any(|m| m.message.msg_type == "0"));
    assert_eq!(pair.exchange.phase(), Phase::Active);
    // The broker goes silent: drop everything it sends from now on.
    let mut exchange_sent = Vec::new();
    let mut now = pair.now;
    for _ in 0..10 {
        now = now.plus_nanos(20 * SECOND);
        pair.exchange.handle_timeout(now);
        exchange_sent.extend(collect(&mut pair.exchange, &mut pair.exchange_out));
    }
    let types: Vec<&str> = pair
        .exchange_out
        .sent
        .iter()
        .map(|m| m.message.msg_type.as_str())
        .collect();
    assert!(
        types.contains(&"1"),
        "TestRequest after 3 silent intervals: {types:?}"
    );
    assert_eq!(types.last(), Some(&"5"));
    assert_eq!(
        pair.exchange_out.disconnect,
        Some(DisconnectReason::HeartbeatTimeout)
    );
}

#[test]
fn test_request_is_answered_with_its_id() {
    let mut pair = Pair::fresh();
    let bytes = raw_to_exchange("1", 2, &[], &[(112, "PING")], pair.now);
    pair.exchange.handle_bytes(pair.now, &bytes);
    let mut out = Outputs::default();
    collect(&mut pair.exchange, &mut out);
    assert_eq!(out.sent[0].message.msg_type, "0");
    assert_eq!(out.sent[0].message.get(112), Some("PING"));
}

#[test]
fn resend_after_dropped_connection_replays_with_poss_dup() {
    let mut pair = Pair::fresh();
    pair.broker.send(pair.now, order("1")).unwrap();
    pair.drive();
    // The exchange sends two reports, but the connection drops before they arrive.
    pair.exchange
        .send(pair.now, execution_report("E1"))
        .unwrap();
    pair.exchange
        .send(pair.now, execution_report("E2"))
        .unwrap();
    collect(&mut pair.exchange, &mut Outputs::default());
    pair.exchange.handle_disconnect();
    pair.broker.handle_disconnect();
    // While disconnected the exchange generates one more (delivered at the next logon).
    pair.exchange
        .send(pair.now, execution_report("E3"))
        .unwrap();
    let exchange_state = std::mem::replace(
        &mut pair.exchange,
        acceptor(SessionState::new(EXCHANGE, BROKER), t0()),
    )
    .into_state();
    let broker_state = std::mem::replace(
        &mut pair.broker,
        initiator(SessionState::new(BROKER, EXCHANGE), t0()),
    )
    .into_state();
    assert_eq!(broker_state.next_inbound_seq, 2);
    assert_eq!(exchange_state.next_outbound_seq, 5);

    let mut again = Pair::connect(
        exchange_state,
        broker_state,
        pair.now.plus_nanos(10 * SECOND),
    );
    assert!(again.broker_out.established);
    let ids: Vec<_> = again
        .broker_out
        .delivered
        .iter()
        .map(|m| (m.seq, m.poss_dup, m.message.get(17)))
        .collect();
    assert_eq!(
        ids,
        vec![
            (2, true, Some("E1")),
            (3, true, Some("E2")),
            (4, true, Some("E3"))
        ]
    );
    let replayed = again
        .exchange_out
        .sent
        .iter()
        .find(|m| m.message.get(17) == Some("E1"))
        .unwrap();
    assert!(replayed.header.orig_sending_time.is_some());
    // The exchange's Logon reply (seq 5) was gap-filled after the replay; both agree now.
    assert_eq!(
        again.broker.state().next_inbound_seq,
        again.exchange.state().next_outbound_seq
    );
    assert_eq!(
        again.exchange.state().next_inbound_seq,
        again.broker.state().next_outbound_seq
    );
    again
        .exchange
        .send(again.now, execution_report("E4"))
        .unwrap();
    again.drive();
    assert_eq!(
        again.broker_out.delivered.last().unwrap().message.get(17),
        Some("E4")
    );
    assert!(!again.broker_out.delivered.last().unwrap().poss_dup);
}

#[test]
fn orders_lost_in_flight_are_replayed_by_the_participant() {
    let mut pair = Pair::fresh();
    pair.broker.send(pair.now, order("1")).unwrap();
    pair.broker.send(pair.now, order("2")).unwrap();
    // Lost: never reaches the exchange.
    collect(&mut pair.broker, &mut Outputs::default());
    pair.broker.handle_disconnect();
    pair.exchange.handle_disconnect();
    let e = std::mem::replace(
        &mut pair.exchange,
        acceptor(SessionState::new(EXCHANGE, BROKER), t0()),
    )
    .into_state();
    let b = std::mem::replace(
        &mut pair.broker,
        initiator(SessionState::new(BROKER, EXCHANGE), t0()),
    )
    .into_state();
    let again = Pair::connect(e, b, pair.now.plus_nanos(10 * SECOND));
    let got: Vec<_> = again
        .exchange_out
        .delivered
        .iter()
        .map(|m| (m.poss_dup, m.message.get(11)))
        .collect();
    assert_eq!(got, vec![(true, Some("1")), (true, Some("2"))]);
    assert_eq!(
        again.exchange.state().next_inbound_seq,
        again.broker.state().next_outbound_seq
    );
    assert_eq!(
        again
            .exchange_out
            .sent
            .iter()
            .filter(|m| m.message.msg_type == "2")
            .count(),
        0
    );
}

#[test]
fn logout_exchange_closes_both_sides() {
    let mut pair = Pair::fresh();
    pair.broker.logout(pair.now, "bye");
    pair.drive();
    assert_eq!(
        pair.broker_out.disconnect,
        Some(DisconnectReason::LogoutCompleted)
    );
    assert_eq!(
        pair.exchange_out.disconnect,
        Some(DisconnectReason::PeerLoggedOut("bye".into()))
    );
}

#[test]
fn logout_without_reply_times_out() {
    let mut pair = Pair::fresh();
    pair.broker.logout(pair.now, "");
    collect(&mut pair.broker, &mut pair.broker_out);
    pair.broker.handle_timeout(pair.now.plus_nanos(61 * SECOND));
    collect(&mut pair.broker, &mut pair.broker_out);
    assert_eq!(
        pair.broker_out.disconnect,
        Some(DisconnectReason::LogoutTimeout)
    );
}

#[test]
fn session_state_survives_serialization_for_the_backup_site() {
    let mut pair = Pair::fresh();
    pair.exchange
        .send(pair.now, execution_report("E1"))
        .unwrap();
    pair.drive();
    let json = serde_json::to_string(pair.exchange.state()).unwrap();
    let restored: SessionState = serde_json::from_str(&json).unwrap();
    assert_eq!(&restored, pair.exchange.state());
    // The backup site picks the session up from the replicated state.
    pair.exchange.handle_disconnect();
    pair.broker.handle_disconnect();
    let b = std::mem::replace(
        &mut pair.broker,
        initiator(SessionState::new(BROKER, EXCHANGE), t0()),
    )
    .into_state();
    let again = Pair::connect(restored, b, pair.now.plus_nanos(30 * SECOND));
    assert!(again.broker_out.established);
    assert!(again.broker_out.delivered.is_empty(), "nothing to replay");
}

// ---- raw-peer helpers: hand-made messages to an acceptor ----

fn raw_fields(
    msg_type: &str,
    seq: u64,
    header: &[(u32, &str)],
    body: &[(u32, &str)],
    now: Timestamp,
) -> Vec<Field> {
    let mut fields = vec![
        Field::new(35, msg_type),
        Field::new(49, BROKER),
        Field::new(56, EXCHANGE),
        Field::new(34, seq.to_string()),
        Field::new(52, format_utc_timestamp(now, TimePrecision::Millis)),
    ];
    for (tag, value) in header {
        match fields.iter_mut().find(|f| f.tag == *tag) {
            Some(f) if value.is_empty() => f.tag = 0,
            Some(f) => f.value = (*value).into(),
            None => fields.push(Field::new(*tag, *value)),
        }
    }
    fields.retain(|f| f.tag != 0);
    fields.extend(body.iter().map(|(t, v)| Field::new(*t, *v)));
    fields
}

fn raw_to_exchange(
    msg_type: &str,
    seq: u64,
    header: &[(u32, &str)],
    body: &[(u32, &str)],
    now: Timestamp,
) -> Vec<u8> {
    encode(BEGIN_STRING, &raw_fields(msg_type, seq, header, body, now))
}

/// Logon as jspurefix writes it (141=N, password in a length-prefixed data field) is accepted.
#[test]
fn logon_with_reset_flag_no_and_data_field_password_is_accepted() {
    let mut s = acceptor(SessionState::new(EXCHANGE, BROKER), t0());
    let body = [
        (98, "0"),
        (108, "20"),
        (141, "N"),
        (789, "1"),
        (1400, "101"),
        (1401, "4"),
        (1402, "QUJD"),
        (1137, "9"),
    ];
    let mut fields = raw_fields("A", 1, &[], &body, t0());
    fields.retain(|f| f.tag != 0);
    let text = crate::codec::to_pipes(&encode(BEGIN_STRING, &fields)).replacen("|9=", "|9=000", 1);
    // Zero-padded BodyLength changes the checksum: recompute it.
    let without_trailer = &text[..text.rfind("10=").unwrap()];
    let bytes = crate::codec::from_pipes(without_trailer);
    let mut framed = bytes.clone();
    framed.extend_from_slice(format!("10={:03}\x01", crate::codec::checksum(&bytes)).as_bytes());
    let out = feed(&mut s, &framed);
    assert!(out.established, "{:?}", out.disconnect);
}

const LOGON_BODY: &[(u32, &str)] = &[
    (98, "0"),
    (108, "20"),
    (789, "1"),
    (554, "secret"),
    (1137, "9"),
];

/// An acceptor that has accepted a raw Logon (seq 1); returns it and its outputs so far.
fn logged_on_acceptor() -> (Session, Outputs) {
    let mut s = acceptor(SessionState::new(EXCHANGE, BROKER), t0());
    s.handle_bytes(t0(), &raw_to_exchange("A", 1, &[], LOGON_BODY, t0()));
    let mut out = Outputs::default();
    collect(&mut s, &mut out);
    assert!(out.established);
    (s, out)
}

fn feed(s: &mut Session, bytes: &[u8]) -> Outputs {
    s.handle_bytes(t0(), bytes);
    let mut out = Outputs::default();
    collect(s, &mut out);
    out
}

fn sent_types(out: &Outputs) -> Vec<&str> {
    out.sent
        .iter()
        .map(|m| m.message.msg_type.as_str())
        .collect()
}

#[test]
fn first_message_not_logon_disconnects() {
    let mut s = acceptor(SessionState::new(EXCHANGE, BROKER), t0());
    let out = feed(&mut s, &raw_to_exchange("0", 1, &[], &[], t0()));
    assert!(out.sent.is_empty());
    assert_eq!(out.disconnect, Some(DisconnectReason::NotLogon));
}

#[test]
fn logon_from_unknown_comp_id_is_dropped_silently() {
    let mut s = acceptor(SessionState::new(EXCHANGE, BROKER), t0());
    let out = feed(
        &mut s,
        &raw_to_exchange("A", 1, &[(49, "CO99")], LOGON_BODY, t0()),
    );
    assert!(out.sent.is_empty());
    assert_eq!(out.disconnect, Some(DisconnectReason::SilentDrop));
}

#[test]
fn bad_password_gets_logout_with_session_status_and_keeps_inbound_seq() {
    let mut s = acceptor(SessionState::new(EXCHANGE, BROKER), t0());
    let body = [
        (98, "0"),
        (108, "20"),
        (789, "1"),
        (554, "bad"),
        (1137, "9"),
    ];
    let out = feed(&mut s, &raw_to_exchange("A", 1, &[], &body, t0()));
    assert_eq!(sent_types(&out), vec!["5"]);
    assert_eq!(out.sent[0].message.get(1409), Some("5"));
    assert!(matches!(
        out.disconnect,
        Some(DisconnectReason::LogonRejected(_))
    ));
    assert_eq!(s.state().next_inbound_seq, 1);
}

#[test]
fn logon_refusals_log_out() {
    let cases: Vec<(&str, Pairs, Pairs)> = vec![
        (
            "next expected too high",
            vec![],
            vec![(98, "0"), (108, "20"), (789, "5"), (1137, "9")],
        ),
        (
            "wrong DefaultApplVerID",
            vec![],
            vec![(98, "0"), (108, "20"), (789, "1"), (1137, "7")],
        ),
        (
            "missing NextExpectedMsgSeqNum",
            vec![],
            vec![(98, "0"), (108, "20"), (1137, "9")],
        ),
        (
            "ResetSeqNumFlag",
            vec![],
            vec![(98, "0"), (108, "20"), (141, "Y"), (789, "1"), (1137, "9")],
        ),
        (
            "HeartBtInt zero",
            vec![],
            vec![(98, "0"), (108, "0"), (789, "1"), (1137, "9")],
        ),
        (
            "SendingTime far off",
            vec![(52, "20231114-20:00:00.000")],
            LOGON_BODY.to_vec(),
        ),
    ];
    for (name, header, body) in cases {
        let mut s = acceptor(SessionState::new(EXCHANGE, BROKER), t0());
        let out = feed(&mut s, &raw_to_exchange("A", 1, &header, &body, t0()));
        assert_eq!(sent_types(&out), vec!["5"], "{name}");
        assert!(
            matches!(out.disconnect, Some(DisconnectReason::LogonRejected(_))),
            "{name}"
        );
    }
}

#[test]
fn logon_seq_too_low_logs_out() {
    let mut state = SessionState::new(EXCHANGE, BROKER);
    state.next_inbound_seq = 5;
    let mut s = acceptor(state, t0());
    let out = feed(&mut s, &raw_to_exchange("A", 3, &[], LOGON_BODY, t0()));
    assert_eq!(sent_types(&out), vec!["5"]);
    assert!(out.disconnect.is_some());
}

#[test]
fn wrong_begin_string_logs_out() {
    let (mut s, _) = logged_on_acceptor();
    let mut fields = raw_fields("0", 2, &[], &[], t0());
    fields.retain(|f| f.tag != 8);
    let out = feed(&mut s, &encode("FIX.4.4", &fields));
    assert_eq!(sent_types(&out), vec!["5"]);
    assert!(matches!(
        out.disconnect,
        Some(DisconnectReason::Protocol(_))
    ));
}

#[test]
fn wrong_comp_id_gets_reject_then_logout() {
    for tag in [49u32, 56] {
        let (mut s, _) = logged_on_acceptor();
        let out = feed(&mut s, &raw_to_exchange("0", 2, &[(tag, "WHO")], &[], t0()));
        assert_eq!(sent_types(&out), vec!["3", "5"]);
        assert_eq!(out.sent[0].message.get(373), Some("9"));
        assert_eq!(out.sent[0].message.get(371), Some(tag.to_string().as_str()));
        assert!(out.disconnect.is_some());
    }
}

#[test]
fn sending_time_inaccurate_gets_reject_then_logout() {
    let (mut s, _) = logged_on_acceptor();
    let out = feed(
        &mut s,
        &raw_to_exchange("0", 2, &[(52, "20231114-20:00:00.000")], &[], t0()),
    );
    assert_eq!(sent_types(&out), vec!["3", "5"]);
    assert_eq!(out.sent[0].message.get(373), Some("10"));
    assert!(out.disconnect.is_some());
}

#[test]
fn garbled_messages_are_ignored_without_consuming_a_sequence_number() {
    let (mut s, _) = logged_on_acceptor();
    let good = raw_to_exchange("D", 2, &[], &order_body(), t0());
    let mut bad_checksum = good.clone();
    let n = bad_checksum.len();
    bad_checksum[n - 2] = if bad_checksum[n - 2] == b'9' {
        b'8'
    } else {
        b'9'
    };
    let text = crate::codec::to_pipes(&good);
    let bad_length = crate::codec::from_pipes(&text.replacen("|9=", "|9=1", 1));
    let mut garbage = b"\x01\x01junk=\x01".to_vec();
    garbage.extend_from_slice(&bad_checksum);
    garbage.extend_from_slice(&bad_length);
    let out = feed(&mut s, &garbage);
    assert!(out.sent.is_empty() && out.delivered.is_empty() && out.disconnect.is_none());
    assert_eq!(s.state().next_inbound_seq, 2);
    assert!(s.stats().garbled_frames >= 2);
    let out = feed(&mut s, &good);
    assert_eq!(out.delivered.len(), 1);
    assert_eq!(s.state().next_inbound_seq, 3);
}

fn order_body() -> Vec<(u32, &'static str)> {
    vec![
        (11, "1"),
        (48, "5"),
        (22, "8"),
        (60, "20231114-22:13:20.000"),
        (54, "1"),
        (40, "2"),
        (44, "38.5"),
        (38, "400"),
    ]
}

#[test]
fn seq_too_low_without_poss_dup_logs_out_and_with_poss_dup_is_ignored() {
    let (mut s, _) = logged_on_acceptor();
    feed(&mut s, &raw_to_exchange("0", 2, &[], &[], t0()));
    let orig = format_utc_timestamp(t0(), TimePrecision::Millis);
    let out = feed(
        &mut s,
        &raw_to_exchange("0", 2, &[(43, "Y"), (122, &orig)], &[], t0()),
    );
    assert!(out.sent.is_empty() && out.disconnect.is_none());
    assert_eq!(s.stats().duplicates_ignored, 1);
    let out = feed(&mut s, &raw_to_exchange("0", 2, &[], &[], t0()));
    assert_eq!(sent_types(&out), vec!["5"]);
    assert!(out.sent[0].message.get(58).unwrap().contains("too low"));
    assert!(out.disconnect.is_some());
    assert_eq!(s.state().next_inbound_seq, 3);
}

#[test]
fn seq_too_high_sends_one_resend_request_and_queues() {
    let (mut s, _) = logged_on_acceptor();
    let out = feed(&mut s, &raw_to_exchange("D", 4, &[], &order_body(), t0()));
    assert_eq!(sent_types(&out), vec!["2"]);
    assert_eq!(out.sent[0].message.get(7), Some("2"));
    assert_eq!(out.sent[0].message.get(16), Some("0"));
    let out = feed(&mut s, &raw_to_exchange("0", 5, &[], &[], t0()));
    assert!(
        out.sent.is_empty(),
        "no second ResendRequest while one is outstanding"
    );
    // The peer resends 2 and gap-fills 3; the queued 4 and 5 are then processed.
    let orig = format_utc_timestamp(t0(), TimePrecision::Millis);
    let mut replay = raw_to_exchange("D", 2, &[(43, "Y"), (122, &orig)], &order_body(), t0());
    replay.extend(raw_to_exchange(
        "4",
        3,
        &[(43, "Y"), (122, &orig)],
        &[(123, "Y"), (36, "4")],
        t0(),
    ));
    let out = feed(&mut s, &replay);
    assert_eq!(out.delivered.len(), 2);
    assert!(out.delivered[0].poss_dup);
    assert_eq!(out.delivered[1].seq, 4);
    assert_eq!(s.state().next_inbound_seq, 6);
}

#[test]
fn invalid_messages_get_the_prescribed_reject_and_consume_their_number() {
    let mut dup = order_body();
    dup.push((44, "38.6"));
    let mut unknown = order_body();
    unknown.push((9999, "1"));
    let mut missing = order_body();
    missing.retain(|(t, _)| *t != 54);
    let mut bad_enum = order_body();
    bad_enum[4] = (54, "9");
    let mut bad_format = order_body();
    bad_format[7] = (38, "many");
    let mut empty = order_body();
    empty.push((58, ""));
    let mut wrong_message = order_body();
    wrong_message.push((1369, "X"));
    let cases: Vec<(&str, Pairs, &str, &str)> = vec![
        ("D", dup, "13", "44"),
        ("D", unknown, "0", "9999"),
        ("D", missing, "1", "54"),
        ("D", bad_enum, "5", "54"),
        ("D", bad_format, "6", "38"),
        ("D", empty, "4", "58"),
        ("D", wrong_message, "2", "1369"),
        ("ZZ", vec![], "11", "35"),
    ];
    for (msg_type, body, reason, tag) in cases {
        let (mut s, _) = logged_on_acceptor();
        let out = feed(&mut s, &raw_to_exchange(msg_type, 2, &[], &body, t0()));
        assert_eq!(sent_types(&out), vec!["3"], "{reason}");
        let reject = &out.sent[0].message;
        assert_eq!(reject.get(373), Some(reason));
        assert_eq!(reject.get(371), Some(tag), "{reason}");
        assert_eq!(reject.get(45), Some("2"));
        assert_eq!(reject.get(372), Some(msg_type));
        assert!(out.delivered.is_empty() && out.disconnect.is_none());
        assert_eq!(s.state().next_inbound_seq, 3, "{reason}");
        let out = feed(&mut s, &raw_to_exchange("D", 3, &[], &order_body(), t0()));
        assert_eq!(
            out.delivered.len(),
            1,
            "the session continues after {reason}"
        );
    }
}

#[test]
fn unsupported_but_valid_msg_type_gets_business_message_reject() {
    let (mut s, _) = logged_on_acceptor();
    let out = feed(&mut s, &raw_to_exchange("AE", 2, &[], &[(571, "1")], t0()));
    assert_eq!(sent_types(&out), vec!["j"]);
    assert_eq!(out.sent[0].message.get(380), Some("3"));
    assert_eq!(out.sent[0].message.get(45), Some("2"));
    assert_eq!(s.state().next_inbound_seq, 3);
}

#[test]
fn header_problems_are_rejected() {
    let (mut s, _) = logged_on_acceptor();
    let out = feed(&mut s, &raw_to_exchange("0", 2, &[(43, "Y")], &[], t0()));
    assert_eq!(
        out.sent[0].message.get(373),
        Some("1"),
        "PossDup without OrigSendingTime"
    );
    assert_eq!(out.sent[0].message.get(371), Some("122"));
    let mut fields = raw_fields("0", 3, &[], &[(112, "x")], t0());
    fields.push(Field::new(97, "N"));
    let out = feed(&mut s, &encode(BEGIN_STRING, &fields));
    assert_eq!(
        out.sent[0].message.get(373),
        Some("14"),
        "header tag after body"
    );
    let mut fields = raw_fields("0", 4, &[], &[], t0());
    fields.insert(3, Field::new(49, BROKER));
    let out = feed(&mut s, &encode(BEGIN_STRING, &fields));
    assert_eq!(
        out.sent[0].message.get(373),
        Some("13"),
        "duplicate header tag"
    );
    let out = feed(&mut s, &raw_to_exchange("0", 5, &[(52, "")], &[], t0()));
    assert_eq!(
        out.sent[0].message.get(373),
        Some("1"),
        "SendingTime missing"
    );
    assert_eq!(s.state().next_inbound_seq, 6);
}

#[test]
fn missing_msg_seq_num_logs_out() {
    let (mut s, _) = logged_on_acceptor();
    let out = feed(&mut s, &raw_to_exchange("0", 2, &[(34, "")], &[], t0()));
    assert_eq!(sent_types(&out), vec!["5"]);
    assert!(out.disconnect.is_some());
}

#[test]
fn resend_request_replays_business_and_gap_fills_admin() {
    let (mut s, _) = logged_on_acceptor(); // our Logon reply is seq 1
    s.send(t0(), execution_report("E1")).unwrap(); // 2
    s.handle_bytes(t0(), &raw_to_exchange("1", 2, &[], &[(112, "T")], t0())); // heartbeat 3
    s.send(t0(), execution_report("E2")).unwrap(); // 4
    collect(&mut s, &mut Outputs::default());
    let later = t0().plus_nanos(5 * SECOND);
    s.handle_bytes(
        later,
        &raw_to_exchange("2", 3, &[], &[(7, "1"), (16, "0")], later),
    );
    let mut out = Outputs::default();
    collect(&mut s, &mut out);
    type Row<'a> = (String, Option<u64>, Option<&'a str>, Option<&'a str>);
    let summary: Vec<Row> = out
        .sent
        .iter()
        .map(|m| {
            (
                m.message.msg_type.to_string(),
                m.header.msg_seq_num,
                m.message.get(36),
                m.message.get(17),
            )
        })
        .collect();
    assert_eq!(
        summary,
        vec![
            ("4".to_string(), Some(1), Some("2"), None),
            ("8".to_string(), Some(2), None, Some("E1")),
            ("4".to_string(), Some(3), Some("4"), None),
            ("8".to_string(), Some(4), None, Some("E2")),
        ]
    );
    assert!(out.sent.iter().all(|m| m.header.poss_dup));
    assert_eq!(out.sent[1].header.orig_sending_time, Some(t0()));
    assert_eq!(
        s.state().next_outbound_seq,
        5,
        "a resend consumes no new numbers"
    );
    // The runtime is told of the request once (activity tracking).
    assert_eq!(s.take_resend_requests(), vec![(1, 0)]);
    assert!(s.take_resend_requests().is_empty());
}

#[test]
fn bad_resend_range_is_rejected() {
    let (mut s, _) = logged_on_acceptor();
    let out = feed(
        &mut s,
        &raw_to_exchange("2", 2, &[], &[(7, "5"), (16, "3")], t0()),
    );
    assert_eq!(out.sent[0].message.get(373), Some("5"));
}

#[test]
fn sequence_reset_rules() {
    // Gap fill must move forward.
    let (mut s, _) = logged_on_acceptor();
    let out = feed(
        &mut s,
        &raw_to_exchange("4", 2, &[], &[(123, "Y"), (36, "2")], t0()),
    );
    assert_eq!(out.sent[0].message.get(373), Some("5"));
    let out = feed(
        &mut s,
        &raw_to_exchange("4", 3, &[], &[(123, "Y"), (36, "10")], t0()),
    );
    assert!(out.sent.is_empty());
    assert_eq!(s.state().next_inbound_seq, 10);
    // Reset mode from a participant is refused by the exchange.
    let out = feed(&mut s, &raw_to_exchange("4", 10, &[], &[(36, "50")], t0()));
    assert_eq!(out.sent[0].message.get(373), Some("5"));
    assert_eq!(s.state().next_inbound_seq, 10);

    // ...but a participant accepts it from the exchange.
    let mut pair = Pair::fresh();
    pair.exchange.reset_sequence(pair.now, 100).unwrap();
    pair.drive();
    assert_eq!(pair.broker.state().next_inbound_seq, 100);
    pair.exchange
        .send(pair.now, execution_report("E1"))
        .unwrap();
    pair.drive();
    assert_eq!(pair.broker_out.delivered[0].seq, 100);
}

#[test]
fn participant_rejects_exchange_logon_reply_with_too_high_next_expected() {
    let mut b = initiator(SessionState::new(BROKER, EXCHANGE), t0());
    collect(&mut b, &mut Outputs::default());
    let mut fields = raw_fields(
        "A",
        1,
        &[(49, EXCHANGE), (56, BROKER)],
        &[(98, "0"), (108, "20"), (789, "9"), (1137, "9")],
        t0(),
    );
    fields.retain(|f| f.tag != 0);
    b.handle_bytes(t0(), &encode(BEGIN_STRING, &fields));
    let mut out = Outputs::default();
    collect(&mut b, &mut out);
    assert_eq!(sent_types(&out), vec!["5"]);
    assert!(matches!(
        out.disconnect,
        Some(DisconnectReason::LogonRejected(_))
    ));
}

#[test]
fn logon_timeout_disconnects() {
    let mut s = acceptor(SessionState::new(EXCHANGE, BROKER), t0());
    assert_eq!(s.poll_timeout(), Some(t0().plus_nanos(60 * SECOND)));
    s.handle_timeout(t0().plus_nanos(59 * SECOND));
    assert!(s.poll_action().is_none());
    s.handle_timeout(t0().plus_nanos(60 * SECOND));
    assert_eq!(
        s.poll_action(),
        Some(Action::Disconnect {
            reason: DisconnectReason::LogonTimeout
        })
    );
}

#[test]
fn send_refuses_admin_and_invalid_messages() {
    let (mut s, _) = logged_on_acceptor();
    assert!(s.send(t0(), Message::new("0")).is_err());
    assert!(s.send(t0(), Message::new("8").with(37, "1")).is_err());
    assert_eq!(s.state().next_outbound_seq, 2);
}

#[test]
fn identify_logon_reads_comp_ids() {
    let bytes = raw_to_exchange("A", 1, &[], LOGON_BODY, t0());
    assert_eq!(
        crate::session::identify_logon(&bytes[..bytes.len() - 1]),
        None,
        "incomplete frame"
    );
    assert_eq!(
        crate::session::identify_logon(&bytes),
        Some((BROKER.to_string(), EXCHANGE.to_string()))
    );
}

proptest! {
    #![proptest_config(crate::proptest_config(256))]

    /// Whatever a peer writes, the acceptor never panics, its sequence numbers never go down,
    /// and it only ever sends well-formed frames.
    #[test]
    fn arbitrary_input_never_panics_or_rewinds_sequences(
        chunks in proptest::collection::vec(
            prop_oneof![
                proptest::collection::vec(any::<u8>(), 0..80),
                (0u32..8, 1u64..8, any::<bool>()).prop_map(|(kind, seq, dup)| {
                    let orig = format_utc_timestamp(t0(), TimePrecision::Millis);
                    let header: Vec<(u32, &str)> =
                        if dup { vec![(43, "Y"), (122, "")] } else { vec![] };
                    let msg_type = ["0", "1", "2", "4", "5", "D", "A", "AE"][kind as usize];
                    let mut fields = raw_fields(msg_type, seq, &header, &[], t0());
                    for f in fields.iter_mut() {
                        if f.tag == 122 { f.value = orig.as_str().into(); }
                    }
                    encode(BEGIN_STRING, &fields)
                }),
            ],
            0..12),
    ) {
        let (mut s, _) = logged_on_acceptor();
        let mut last = s.state().clone();
        for c in &chunks {
            s.handle_bytes(t0(), c);
            let mut next_new = last.next_outbound_seq;
            while let Some(a) = s.poll_action() {
                if let Action::Send(b) = a {
                    let sent = read_frame(&b);
                    prop_assert!(sent.is_ok());
                    let sent = sent.unwrap();
                    let seq = sent.header.msg_seq_num.unwrap();
                    if sent.header.poss_dup {
                        prop_assert!(seq < last.next_outbound_seq, "replays reuse old numbers");
                    } else {
                        prop_assert_eq!(seq, next_new, "new messages are numbered without gaps");
                        next_new += 1;
                    }
                }
            }
            prop_assert_eq!(s.state().next_outbound_seq, next_new);
            prop_assert!(s.state().next_inbound_seq >= last.next_inbound_seq);
            prop_assert!(s.state().next_outbound_seq >= last.next_outbound_seq);
            last = s.state().clone();
        }
    }
}

#[test]
fn rsa_encrypted_password_logon_end_to_end() {
    use crate::password::{test_keys, LogonVerifier, Padding, RsaCredentials, RsaLogonVerifier};
    use rand::SeedableRng;
    let (private, public) = test_keys();
    let run = |password: &str| {
        let mut credentials = RsaCredentials {
            key: public.clone(),
            password: password.to_string(),
            new_password: None,
            padding: Padding::Pkcs1v15,
            rng: rand_chacha::ChaCha20Rng::seed_from_u64(1),
        };
        let verifier: Box<dyn LogonVerifier + Send> = Box::new(RsaLogonVerifier::new(
            vec![private.clone()],
            crate::password::PASSWORD_TIME_TOLERANCE_SECS,
            |comp: &str| (comp == BROKER).then(|| "abcd1234".to_string()),
        ));
        let mut exchange = Session::acceptor(
            SessionConfig::acceptor(EXCHANGE, BROKER),
            SessionState::new(EXCHANGE, BROKER),
            verifier,
            t0(),
        );
        let mut broker = Session::initiator(
            SessionConfig::initiator(BROKER, EXCHANGE),
            SessionState::new(BROKER, EXCHANGE),
            Box::new(move |now| credentials.logon_fields(now).expect("encrypts")),
            t0(),
        );
        let mut out = Outputs::default();
        for b in collect(&mut broker, &mut Outputs::default()) {
            exchange.handle_bytes(t0(), &b);
        }
        collect(&mut exchange, &mut out);
        out
    };
    let good = run("abcd1234");
    assert!(good.established);
    assert_eq!(good.sent[0].message.get(1409), Some("0"));
    let bad = run("wrong123");
    assert!(!bad.established);
    assert_eq!(bad.sent[0].message.msg_type, "5");
    assert_eq!(bad.sent[0].message.get(1409), Some("5"));
}

#[test]
fn on_behalf_of_header_tags_are_not_accepted() {
    let (mut s, _) = logged_on_acceptor();
    let out = feed(
        &mut s,
        &raw_to_exchange("0", 2, &[(115, "OTHER")], &[], t0()),
    );
    assert_eq!(out.sent[0].message.get(373), Some("0"));
    assert_eq!(out.sent[0].message.get(371), Some("115"));
}

#[test]
fn message_lost_mid_session_is_recovered_by_resend_request() {
    let mut pair = Pair::fresh();
    pair.exchange
        .send(pair.now, execution_report("E1"))
        .unwrap();
    // Lost in flight, the connection stays up.
    collect(&mut pair.exchange, &mut pair.exchange_out);
    pair.exchange
        .send(pair.now, execution_report("E2"))
        .unwrap();
    pair.drive();
    let resend_requests = pair
        .broker_out
        .sent
        .iter()
        .filter(|m| m.message.msg_type == "2")
        .count();
    assert_eq!(resend_requests, 1);
    let got: Vec<_> = pair
        .broker_out
        .delivered
        .iter()
        .map(|m| (m.seq, m.message.get(17)))
        .collect();
    assert_eq!(got, vec![(2, Some("E1")), (3, Some("E2"))]);
    assert_eq!(
        pair.broker.stats().duplicates_ignored,
        1,
        "the replayed E2 is a duplicate"
    );
    assert_eq!(
        pair.broker.state().next_inbound_seq,
        pair.exchange.state().next_outbound_seq
    );
}

#[test]
fn resend_request_is_repeated_only_after_a_heartbeat_interval_without_progress() {
    let (mut s, _) = logged_on_acceptor();
    let out = feed(&mut s, &raw_to_exchange("0", 4, &[], &[], t0()));
    assert_eq!(sent_types(&out), vec!["2"]);
    let out = feed(&mut s, &raw_to_exchange("0", 5, &[], &[], t0()));
    assert!(out.sent.is_empty());
    let later = t0().plus_nanos(21 * SECOND);
    s.handle_bytes(later, &raw_to_exchange("0", 6, &[], &[], later));
    let mut out = Outputs::default();
    collect(&mut s, &mut out);
    assert_eq!(
        sent_types(&out),
        vec!["2"],
        "the first request or its answer was lost"
    );
    assert_eq!(out.sent[0].message.get(7), Some("2"));
}

#[test]
fn gateway_answers_mapping_errors_with_reject_or_business_reject() {
    use crate::app::ParticipantMessage;
    let (mut s, _) = logged_on_acceptor();
    let mut too_precise = order_body();
    too_precise[6] = (44, "38.5501");
    let mut market_with_price = order_body();
    market_with_price[5] = (40, "1");
    let mut expected = Vec::new();
    for (seq, body) in [(2u64, too_precise), (3, market_with_price)] {
        let out = feed(&mut s, &raw_to_exchange("D", seq, &[], &body, t0()));
        let inbound = &out.delivered[0];
        let error = ParticipantMessage::parse(&inbound.message).unwrap_err();
        error.answer(&mut s, t0(), inbound.seq, &inbound.message.msg_type);
        let mut answered = Outputs::default();
        collect(&mut s, &mut answered);
        let m = &answered.sent[0].message;
        expected.push((
            m.msg_type.to_string(),
            m.get(373).or(m.get(380)).map(str::to_string),
        ));
        assert_eq!(m.get(45), Some(seq.to_string().as_str()));
    }
    assert_eq!(
        expected,
        vec![
            ("3".to_string(), Some("5".to_string())),
            ("j".to_string(), Some("5".to_string()))
        ]
    );
}

#[test]
fn logon_with_seq_above_expected_waits_for_the_participant_replay() {
    let mut s = acceptor(SessionState::new(EXCHANGE, BROKER), t0());
    let out = feed(&mut s, &raw_to_exchange("A", 3, &[], LOGON_BODY, t0()));
    assert_eq!(sent_types(&out), vec!["A"]);
    assert_eq!(out.sent[0].message.get(789), Some("1"));
    assert_eq!(s.state().next_inbound_seq, 1, "1 and 2 were never received");
    // No ResendRequest: the reply's 789=1 tells the participant to replay 1..=3.
    let orig = format_utc_timestamp(t0(), TimePrecision::Millis);
    let dup = [(43, "Y"), (122, orig.as_str())];
    let mut replay = raw_to_exchange("D", 1, &dup, &order_body(), t0());
    replay.extend(raw_to_exchange("D", 2, &dup, &order_body(), t0()));
    replay.extend(raw_to_exchange(
        "4",
        3,
        &dup,
        &[(123, "Y"), (36, "4")],
        t0(),
    ));
    let out = feed(&mut s, &replay);
    assert_eq!(out.delivered.len(), 2);
    assert!(out.sent.is_empty());
    assert_eq!(s.state().next_inbound_seq, 4);
}

/// The bytes of an ExecutionReport as the gateway writes it (body by
/// `ExecutionReport::write_body`, header and trailer by the session), first sent and then
/// replayed with PossDupFlag: pinned byte for byte, so a faster writer must write the same frame.
#[test]
fn execution_report_frame_bytes_are_pinned() {
    use crate::app::{
        ExecType, ExecutionReport, LotType, OrdStatus, OrdType, OrderSide, TimeInForce,
    };
    use crate::codec::{to_pipes, BodyWriter};
    use twinsite_core::{BrokerId, ClOrdId, OrderId, Price, Qty, SecurityCode};

    let mut pair = Pair::fresh();
    let at = pair.now.plus_nanos(123_456_789);
    let mut er = ExecutionReport::new(
        OrderId(4_000_017),
        "E000017",
        ExecType::New,
        OrdStatus::New,
        SecurityCode(5),
        OrderSide::Buy,
        Qty(0),
        Qty(400),
    );
    er.cl_ord_id = Some(ClOrdId::new("O17").unwrap());
    er.parties.submitting_broker = Some(BrokerId(2001));
    er.ord_type = Some(OrdType::Limit);
    er.price = Some(Price(65_200));
    er.qty = Some(Qty(400));
    er.time_in_force = Some(TimeInForce::Day);
    er.transact_time = Some(at);
    er.lot_type = Some(LotType::BoardLot);
    er.last_qty = Some(Qty(100));
    er.last_px = Some(Price(65_205));
    let mut body = BodyWriter::with_capacity(256);
    er.write_body(&mut body);
    pair.exchange.send_body(at, "8", body.into_bytes()).unwrap();
    let mut out = Outputs::default();
    let sent = collect(&mut pair.exchange, &mut out);
    assert_eq!(
        to_pipes(&sent[0]),
        "8=FIXT.1.1|9=234|35=8|49=HKEX|56=CO01|34=2|52=20231114-22:13:20.123|37=4000017|11=O17|17=E000017|150=0|39=0|453=1|448=2001|447=D|452=1|48=5|22=8|207=XHKG|54=1|40=2|44=65.200|38=400|59=0|14=0|151=400|32=100|31=65.205|60=20231114-22:13:20.123456|1093=2|10=199|"
    );
    // Replayed after a reconnect: PossDupFlag and OrigSendingTime, same body.
    let later = at.plus_nanos(5 * SECOND);
    let mut state = pair.exchange.into_state();
    state.next_inbound_seq = 2;
    let mut again = acceptor(state, later);
    let logon = raw_to_exchange(
        "A",
        2,
        &[],
        &[(98, "0"), (108, "20"), (789, "2"), (1137, "9")],
        later,
    );
    again.handle_bytes(later, &logon);
    let mut out = Outputs::default();
    let sent = collect(&mut again, &mut out);
    assert_eq!(
        sent.iter().map(|b| to_pipes(b)).collect::<Vec<_>>(),
        vec![
            // The Logon reply, then the replay: the ExecutionReport again, the Logon reply's
            // number gap-filled.
            "8=FIXT.1.1|9=83|35=A|49=HKEX|56=CO01|34=3|52=20231114-22:13:25.123|98=0|108=20|789=3|1409=0|1137=9|10=254|",
            "8=FIXT.1.1|9=265|35=8|49=HKEX|56=CO01|34=2|43=Y|52=20231114-22:13:25.123|122=20231114-22:13:20.123|37=4000017|11=O17|17=E000017|150=0|39=0|453=1|448=2001|447=D|452=1|48=5|22=8|207=XHKG|54=1|40=2|44=65.200|38=400|59=0|14=0|151=400|32=100|31=65.205|60=20231114-22:13:20.123456|1093=2|10=190|",
            "8=FIXT.1.1|9=93|35=4|49=HKEX|56=CO01|34=3|43=Y|52=20231114-22:13:25.123|122=20231114-22:13:25.123|123=Y|36=4|10=061|",
        ]
    );
}
