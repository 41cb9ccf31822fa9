//! OCG-C session rules over real TCP against a running site (reference §1.5-§1.13): logon
//! refusals, source IPs, duplicate logons, messages before logon, logons not allowed,
//! heartbeats and test requests, throttle, Cancel on Disconnect, Mass Cancel, Amend, and the
//! unsupported Trade Capture Report.

mod common;

use common::*;
use std::time::Duration;
use twinsite_core::Price;
use twinsite_ocg::*;
use twinsite_site::gateway::{Activity, AdminCmd};

fn logout_msg() -> Message {
    Message::Logout(Logout {
        logout_text: None,
        session_status: None,
    })
}

/// Send a Logon with `password` as `seq` on a new connection; return what came back.
async fn try_logon(addr: std::net::SocketAddr, comp: &str, password: &str, seq: u32) -> Raw {
    let mut r = Raw::connect(addr, comp).await;
    r.seq = seq;
    r.send(logon_msg(password, 1)).await;
    r
}

// ------------------------------------------------------------------------------------- logon

#[tokio::test]
async fn wrong_password_gets_logout_with_session_status_5() {
    let site = start(site_config(abc())).await;
    let mut r = try_logon(site.gateway_primary, "CO0001", "Wr0ngPwd", 1).await;
    assert_eq!(
        r.expect_logout().await,
        Some(SessionStatus::InvalidUsernameOrPassword)
    );
    r.expect_closed(T).await.unwrap();
    // A failed logon does not count: the next one is still the first of the day.
    let _a = Raw::logon(site.gateway_primary, "CO0001").await;
    site.shutdown();
}

#[tokio::test]
async fn three_consecutive_failures_lock_the_comp_id() {
    let site = start(site_config(abc())).await;
    let addr = site.gateway_primary;
    for _ in 0..2 {
        let mut r = try_logon(addr, "CO0001", "Wr0ngPwd", 1).await;
        assert_eq!(
            r.expect_logout().await,
            Some(SessionStatus::InvalidUsernameOrPassword)
        );
        r.expect_closed(T).await.unwrap();
    }
    let mut r = try_logon(addr, "CO0001", "Wr0ngPwd", 1).await;
    assert_eq!(r.expect_logout().await, Some(SessionStatus::AccountLocked));
    r.expect_closed(T).await.unwrap();
    // Locked: even the right password is refused.
    let mut r = try_logon(addr, "CO0001", PASSWORD, 1).await;
    assert_eq!(r.expect_logout().await, Some(SessionStatus::AccountLocked));
    r.expect_closed(T).await.unwrap();
    // Another Comp ID is not affected.
    let _b = Raw::logon(addr, "CO0002").await;
    site.shutdown();
}

#[tokio::test]
async fn failures_must_be_consecutive_to_lock() {
    let site = start(site_config(abc())).await;
    let addr = site.gateway_primary;
    for _ in 0..2 {
        let mut r = try_logon(addr, "CO0001", "Wr0ngPwd", 1).await;
        assert_eq!(
            r.expect_logout().await,
            Some(SessionStatus::InvalidUsernameOrPassword)
        );
        r.expect_closed(T).await.unwrap();
    }
    // A good logon resets the count (Logon 1, Logout 2).
    let a = Raw::logon(addr, "CO0001").await;
    a.logout().await;
    for _ in 0..2 {
        let mut r = try_logon(addr, "CO0001", "Wr0ngPwd", 3).await;
        assert_eq!(
            r.expect_logout().await,
            Some(SessionStatus::InvalidUsernameOrPassword)
        );
        r.expect_closed(T).await.unwrap();
    }
    let _a = Raw::logon_with(addr, "CO0001", 3, 1).await;
    site.shutdown();
}

#[tokio::test]
async fn logon_from_unregistered_source_ip_is_dropped_silently() {
    let mut parts = abc();
    // B may also connect from 127.0.0.2; A may not.
    parts[1].source_ips.push("127.0.0.2".parse().unwrap());
    let site = start(site_config(parts)).await;
    let other = "127.0.0.2".parse().unwrap();
    let mut r = Raw::connect_from(site.gateway_primary, other, "CO0001").await;
    r.send(logon_msg(PASSWORD, 1)).await;
    r.expect_silent_close().await;
    // The same good Logon from a registered address works, and is the first of the day.
    let _a = Raw::logon(site.gateway_primary, "CO0001").await;
    // A backup IP registered for B is accepted.
    let mut b = Raw::connect_from(site.gateway_primary, other, "CO0002").await;
    b.send(logon_msg(PASSWORD, 1)).await;
    let (status, _) = b
        .expect(T, |_, m| match m {
            Message::Logon(l) => Some(l.session_status),
            _ => None,
        })
        .await
        .unwrap();
    assert_eq!(status, Some(SessionStatus::Active));
    site.shutdown();
}

#[tokio::test]
async fn second_concurrent_logon_drops_both_connections() {
    let site = start(site_config(abc())).await;
    let mut market = Market::open(&site).await;
    let mut a = Raw::logon(site.gateway_primary, "CO0001").await;
    let mut a2 = try_logon(site.gateway_primary, "CO0001", PASSWORD, 2).await;
    a2.expect_silent_close().await;
    a.expect_silent_close().await;
    // Nobody else is affected, and A can log on again (the refused Logon did not count).
    market.check_intact(&site, 100).await;
    let next = a.last_in + 1;
    let _a = Raw::logon_with(site.gateway_primary, "CO0001", 2, next).await;
    site.shutdown();
}

#[tokio::test]
async fn anything_before_logon_is_dropped_silently() {
    let site = start(site_config(abc())).await;
    let mut market = Market::open(&site).await;
    for m in [
        Message::Heartbeat(Heartbeat {
            reference_test_request_id: None,
        }),
        Message::TestRequest(TestRequest { test_request_id: 1 }),
        new_order("1", 1001, Side::Buy, "65.30", 400),
        logout_msg(),
    ] {
        let mut r = Raw::connect(site.gateway_primary, "CO0001").await;
        r.send(m).await;
        r.expect_silent_close().await;
    }
    // The order never reached the book.
    market.check_intact(&site, 100).await;
    let _a = Raw::logon(site.gateway_primary, "CO0001").await;
    site.shutdown();
}

#[tokio::test]
async fn logons_refused_while_not_allowed_get_session_status_7() {
    let site = start(site_config(abc())).await;
    let mut b = Raw::logon(site.gateway_primary, "CO0002").await;
    site.admin(AdminCmd::LogonsAllowed(false));
    let mut r = try_logon(site.gateway_primary, "CO0001", PASSWORD, 1).await;
    assert_eq!(
        r.expect_logout().await,
        Some(SessionStatus::LogonsNotAllowed)
    );
    r.expect_closed(T).await.unwrap();
    // A live session carries on.
    b.send(Message::TestRequest(TestRequest { test_request_id: 9 }))
        .await;
    b.expect(T, |_, m| {
        matches!(m, Message::Heartbeat(h) if h.reference_test_request_id == Some(9)).then_some(())
    })
    .await
    .unwrap();
    site.admin(AdminCmd::LogonsAllowed(true));
    let _a = Raw::logon(site.gateway_primary, "CO0001").await;
    site.shutdown();
}

// ------------------------------------------------------------------- heartbeats, test request

#[tokio::test]
async fn heartbeats_test_request_and_logout_on_silence() {
    const HB: u64 = 200;
    let mut cfg = site_config(abc());
    cfg.session.heartbeat_ms = HB;
    let site = start(cfg).await;
    let mut a = Raw::logon(site.gateway_primary, "CO0001").await;
    a.answer_test_requests = false;
    let hb = Duration::from_millis(HB);
    let t0 = tokio::time::Instant::now();
    // The exchange heartbeats after an interval of its own silence.
    a.expect(T, |_, m| {
        matches!(m, Message::Heartbeat(h) if h.reference_test_request_id.is_none()).then_some(())
    })
    .await
    .unwrap();
    assert!(t0.elapsed() >= hb - Duration::from_millis(50));
    // After 3 intervals of our silence: Test Request.
    let (id, seen) = a
        .expect(T, |_, m| match m {
            Message::TestRequest(t) => Some(t.test_request_id),
            _ => None,
        })
        .await
        .unwrap();
    assert!(
        t0.elapsed() >= 3 * hb - Duration::from_millis(50),
        "{:?}",
        t0.elapsed()
    );
    assert!(seen.iter().all(|m| matches!(m, Message::Heartbeat(_))));
    // Answered: the session stays up.
    a.send(Message::Heartbeat(Heartbeat {
        reference_test_request_id: Some(id),
    }))
    .await;
    let t1 = tokio::time::Instant::now();
    let (id2, _) = a
        .expect(T, |_, m| match m {
            Message::TestRequest(t) => Some(t.test_request_id),
            _ => None,
        })
        .await
        .unwrap();
    assert!(t1.elapsed() >= 3 * hb - Duration::from_millis(50));
    assert_ne!(id2, 0);
    // Not answered: Logout after 3 more intervals, then disconnect.
    let t2 = tokio::time::Instant::now();
    let status = a.expect_logout().await;
    assert!(
        t2.elapsed() >= 3 * hb - Duration::from_millis(100),
        "{:?}",
        t2.elapsed()
    );
    assert_eq!(status, None);
    a.expect_closed(T).await.unwrap();
    site.shutdown();
}

#[tokio::test]
async fn participant_test_request_is_answered_with_its_id() {
    let site = start(site_config(abc())).await;
    let mut a = Raw::logon(site.gateway_primary, "CO0001").await;
    a.send(Message::TestRequest(TestRequest {
        test_request_id: 4242,
    }))
    .await;
    a.expect(T, |_, m| {
        matches!(m, Message::Heartbeat(h) if h.reference_test_request_id == Some(4242))
            .then_some(())
    })
    .await
    .unwrap();
    site.shutdown();
}

// ------------------------------------------------------------------------------------ throttle

#[tokio::test]
async fn throttle_over_two_messages_per_unit_per_second_gets_bmr_8() {
    let mut parts = abc();
    parts[0].throttle_units = 1;
    let site = start(site_config(parts)).await;
    let mut a = Raw::logon(site.gateway_primary, "CO0001").await;
    // Six orders in one write: they arrive together, within one or at most two clock seconds.
    let mut burst = Vec::new();
    let mut seqs = Vec::new();
    for i in 0..6u32 {
        seqs.push(a.seq);
        let price = format!("64.{}", 50 + i * 5);
        burst.extend(a.frame(&new_order(
            &(i + 1).to_string(),
            1001,
            Side::Buy,
            &price,
            400,
        )));
    }
    a.send_bytes(&burst).await;
    let mut accepted = Vec::new();
    let mut throttled = Vec::new();
    while accepted.len() + throttled.len() < 6 {
        let (m, _) = a
            .expect(T, |_, m| match m {
                Message::ExecutionReport(_) | Message::BusinessMessageReject(_) => Some(m.clone()),
                _ => None,
            })
            .await
            .unwrap();
        match m {
            Message::ExecutionReport(r) => {
                assert_eq!(r.exec_type, Some(ExecType::New), "{r:?}");
                accepted.push(r.cl_ord_id.unwrap().as_str().to_string());
            }
            Message::BusinessMessageReject(r) => {
                assert_eq!(
                    r.business_reject_code,
                    BusinessRejectCode::ThrottleLimitExceeded
                );
                assert_eq!(r.reference_message_type, NewOrder::MSG_TYPE);
                let seq = r.reference_sequence_number.unwrap();
                let i = seqs.iter().position(|s| *s == seq).unwrap();
                assert_eq!(
                    r.business_reject_reference_id,
                    Some(FixedStr::new(&(i + 1).to_string()))
                );
                // Reason: the milliseconds left in the window.
                let ms: u64 = r.reason.as_ref().unwrap().as_str().parse().unwrap();
                assert!(ms <= 1000, "{ms}");
                throttled.push(i + 1);
            }
            _ => unreachable!(),
        }
    }
    assert!(
        (2..=4).contains(&accepted.len()) && !throttled.is_empty(),
        "accepted {accepted:?}, throttled {throttled:?}"
    );
    // The first two of the burst always pass; throttled orders are not in the book.
    assert!(accepted.contains(&"1".to_string()) && accepted.contains(&"2".to_string()));
    let (_, live) = site.state_hash().await.unwrap();
    assert_eq!(live, accepted.len());
    site.shutdown();
}

// ---------------------------------------------------------------------- cancel on disconnect

fn cod_cancel(a: &Activity) -> Option<(ExecutionReport, twinsite_core::Timestamp)> {
    match a {
        Activity::Outbound {
            comp_id,
            message,
            at,
            ..
        } if comp_id.as_str() == "CO0001" => match message.as_ref() {
            Message::ExecutionReport(r) if r.exec_type == Some(ExecType::Cancel) => {
                Some((r.clone(), *at))
            }
            _ => None,
        },
        _ => None,
    }
}

#[tokio::test]
async fn cancel_on_disconnect_cancels_after_the_delay_and_replays_at_next_logon() {
    const DELAY_MS: u64 = 300;
    let mut parts = abc();
    parts[0].cancel_on_disconnect_ms = Some(DELAY_MS);
    let site = start(site_config(parts)).await;
    let mut market = Market::open(&site).await;
    let mut rx = site.subscribe();
    let mut a = Raw::logon(site.gateway_primary, "CO0001").await;
    a.send(new_order("1", 1001, Side::Buy, "65.00", 400)).await;
    a.send(new_order("2", 1001, Side::Buy, "64.95", 400)).await;
    a.expect_er(ExecType::New).await;
    a.expect_er(ExecType::New).await;
    let (seq, next) = (a.seq, a.last_in + 1);
    // The network drops (no Logout).
    drop(a);
    let down_at = until(&mut rx, |e| match e {
        Activity::SessionDown { comp_id, at, .. } if comp_id.as_str() == "CO0001" => Some(*at),
        _ => None,
    })
    .await;
    let (c1, at1) = until(&mut rx, cod_cancel).await;
    let (c2, _) = until(&mut rx, cod_cancel).await;
    assert!(
        at1.0 - down_at.0 >= DELAY_MS * 1_000_000,
        "cancelled {} ms after the drop",
        (at1.0 - down_at.0) / 1_000_000
    );
    for c in [&c1, &c2] {
        assert_eq!(c.exec_restatement_reason, Some(104), "{c:?}");
        assert_eq!(c.ord_status, Some(OrdStatus::Cancelled));
    }
    // Only A's orders went; B's still trades.
    market.before = site.state_hash().await.unwrap();
    assert_eq!(market.before.1, 1);
    market.check_intact(&site, 100).await;
    // At the next logon A gets both cancels.
    let (mut a, _) = Raw::logon_with(site.gateway_primary, "CO0001", seq, next).await;
    let mut got = Vec::new();
    while got.len() < 2 {
        let r = a.expect_er(ExecType::Cancel).await;
        assert_eq!(r.exec_restatement_reason, Some(104), "{r:?}");
        got.push(r.cl_ord_id.unwrap().as_str().to_string());
    }
    got.sort();
    assert_eq!(got, ["1", "2"]);
    site.shutdown();
}

#[tokio::test]
async fn cancel_on_disconnect_not_triggered_by_reconnect_within_delay_or_by_logout() {
    const DELAY_MS: u64 = 400;
    let mut parts = abc();
    parts[0].cancel_on_disconnect_ms = Some(DELAY_MS);
    let site = start(site_config(parts)).await;
    let mut rx = site.subscribe();
    let mut a = Raw::logon(site.gateway_primary, "CO0001").await;
    a.send(new_order("1", 1001, Side::Buy, "65.00", 400)).await;
    a.expect_er(ExecType::New).await;
    let (seq, next) = (a.seq, a.last_in + 1);
    drop(a);
    until(&mut rx, |e| {
        matches!(e, Activity::SessionDown { comp_id, .. } if comp_id.as_str() == "CO0001")
            .then_some(())
    })
    .await;
    // Back within the delay: nothing is cancelled, even well after the delay has passed.
    let (mut a, _) = Raw::logon_with(site.gateway_primary, "CO0001", seq, next).await;
    a.expect_quiet(Duration::from_millis(3 * DELAY_MS)).await;
    assert_eq!(site.state_hash().await.unwrap().1, 1);
    // A Logout never triggers it.
    a.logout().await;
    let deadline = tokio::time::Instant::now() + Duration::from_millis(3 * DELAY_MS);
    while let Ok(Ok(e)) = tokio::time::timeout_at(deadline, rx.recv()).await {
        assert!(cod_cancel(&e).is_none(), "cancelled after a Logout: {e:?}");
    }
    assert_eq!(site.state_hash().await.unwrap().1, 1);
    site.shutdown();
}

// ------------------------------------------------------------------- mass cancel, amend, TCR

fn mass_cancel(
    cl: &str,
    t: MassCancelRequestType,
    sec: Option<&str>,
    seg: Option<&str>,
) -> Message {
    Message::MassCancelRequest(MassCancelRequest {
        cl_ord_id: Some(FixedStr::new(cl)),
        submitting_broker_id: Some(FixedStr::new("1001")),
        security_id: sec.map(FixedStr::new),
        security_id_source: sec.map(|_| 8),
        security_exchange: None,
        broker_location_id: None,
        transact_time: Some(FixedStr::new("20231125-02:00:00.000000")),
        side: None,
        mass_cancel_request_type: t,
        market_segment_id: seg.map(FixedStr::new),
    })
}

/// Collect the Order Mass Cancel Report and `n` cancel Execution Reports, in any order.
async fn mass_cancel_result(
    a: &mut Raw,
    n: usize,
) -> (OrderMassCancelReport, Vec<ExecutionReport>) {
    let mut report = None;
    let mut cancels = Vec::new();
    while report.is_none() || cancels.len() < n {
        let (m, _) = a
            .expect(T, |_, m| match m {
                Message::OrderMassCancelReport(_) | Message::ExecutionReport(_) => Some(m.clone()),
                _ => None,
            })
            .await
            .unwrap();
        match m {
            Message::OrderMassCancelReport(r) => {
                assert!(report.is_none(), "two reports");
                report = Some(r)
            }
            Message::ExecutionReport(r) => cancels.push(r),
            _ => unreachable!(),
        }
    }
    (report.unwrap(), cancels)
}

#[tokio::test]
async fn mass_cancel_over_the_wire() {
    let site = start(site_config(abc())).await;
    let mut market = Market::open(&site).await;
    let mut a = Raw::logon(site.gateway_primary, "CO0001").await;
    for (cl, px) in [("1", "65.00"), ("2", "64.95"), ("3", "64.90")] {
        a.send(new_order(cl, 1001, Side::Buy, px, 400)).await;
        a.expect_er(ExecType::New).await;
    }
    // Security scope.
    a.send(mass_cancel(
        "4",
        MassCancelRequestType::Security,
        Some("5"),
        None,
    ))
    .await;
    let (rep, cancels) = mass_cancel_result(&mut a, 3).await;
    assert_eq!(
        rep.mass_cancel_response,
        MassCancelResponse::Security,
        "{rep:?}"
    );
    assert_eq!(
        rep.mass_cancel_request_type,
        MassCancelRequestType::Security
    );
    assert_eq!(rep.cl_ord_id, Some(FixedStr::new("4")));
    assert_eq!(rep.mass_cancel_reject_code, None);
    for c in &cancels {
        assert_eq!(c.exec_type, Some(ExecType::Cancel), "{c:?}");
        assert_eq!(c.ord_status, Some(OrdStatus::Cancelled));
        assert_eq!(c.exec_restatement_reason, Some(103), "{c:?}");
    }
    let mut ids: Vec<_> = cancels
        .iter()
        .map(|c| c.cl_ord_id.clone().unwrap().as_str().to_string())
        .collect();
    ids.sort();
    assert_eq!(ids, ["1", "2", "3"]);
    // Only the session's own broker's orders: B's order still rests and trades.
    market.before = site.state_hash().await.unwrap();
    assert_eq!(market.before.1, 1, "B's order only");
    market.check_intact(&site, 100).await;
    // All scope.
    a.send(new_order("5", 1001, Side::Buy, "65.00", 400)).await;
    a.expect_er(ExecType::New).await;
    a.send(mass_cancel("6", MassCancelRequestType::All, None, None))
        .await;
    let (rep, cancels) = mass_cancel_result(&mut a, 1).await;
    assert_eq!(rep.mass_cancel_response, MassCancelResponse::All);
    assert_eq!(cancels[0].cl_ord_id, Some(FixedStr::new("5")));
    assert_eq!(cancels[0].exec_restatement_reason, Some(103));
    assert_eq!(site.state_hash().await.unwrap().1, 1, "B's order only");
    site.shutdown();
}

#[tokio::test]

async fn mass_cancel_for_unknown_market_segment_is_rejected_with_code_8() {
    let site = start(site_config(abc())).await;
    let mut a = Raw::logon(site.gateway_primary, "CO0001").await;
    a.send(new_order("1", 1001, Side::Buy, "65.00", 400)).await;
    a.expect_er(ExecType::New).await;
    a.send(mass_cancel(
        "2",
        MassCancelRequestType::MarketSegment,
        None,
        Some("XXXX"),
    ))
    .await;
    let (rep, _) = mass_cancel_result(&mut a, 0).await;
    assert_eq!(rep.mass_cancel_response, MassCancelResponse::Rejected);
    // Reference §1.11: Mass Cancel Reject Code 8 = unknown market segment.
    assert_eq!(rep.mass_cancel_reject_code, Some(8), "{rep:?}");
    assert_eq!(site.state_hash().await.unwrap().1, 1, "nothing cancelled");
    site.shutdown();
}

#[tokio::test]
async fn amend_over_the_wire() {
    let site = start(site_config(abc())).await;
    let mut a = Raw::logon(site.gateway_primary, "CO0001").await;
    a.send(new_order("1", 1001, Side::Buy, "65.00", 1200)).await;
    let ack = a.expect_er(ExecType::New).await;
    let amend = |cl: &str, orig: &str, px: &str, q: u64| {
        Message::AmendRequest(AmendRequest {
            cl_ord_id: Some(FixedStr::new(cl)),
            submitting_broker_id: Some(FixedStr::new("1001")),
            security_id: Some(FixedStr::new("5")),
            security_id_source: Some(8),
            security_exchange: Some(FixedStr::new("XHKG")),
            broker_location_id: None,
            transact_time: Some(FixedStr::new("20231125-02:00:00.000000")),
            side: Some(Side::Buy),
            orig_cl_ord_id: FixedStr::new(orig),
            order_id: None,
            ord_type: OrdType::Limit,
            price: Some(Decimal::from_price(Price::parse(px).unwrap())),
            order_qty: qty(q),
            time_in_force: Some(TimeInForce::Day),
            position_effect: None,
            order_restrictions: None,
            max_price_levels: Some(1),
            order_capacity: Some(OrderCapacity::Agency),
            text: None,
            execution_instructions: None,
            disclosure_instructions: Some(1),
        })
    };
    // Quantity down, same price: amended in place.
    a.send(amend("2", "1", "65.00", 800)).await;
    let r = a.expect_er(ExecType::Amend).await;
    assert_eq!(r.orig_cl_ord_id, Some(FixedStr::new("1")), "{r:?}");
    assert_eq!(r.ord_status, Some(OrdStatus::New));
    assert_eq!(r.order_qty, Some(qty(800)));
    assert_eq!(r.leaves_qty, Some(qty(800)));
    assert_eq!(
        r.order_id, ack.order_id,
        "an in-place amend keeps the Order ID"
    );
    // Price change: still an Amend report, for the new price.
    a.send(amend("3", "2", "65.05", 800)).await;
    let r = a.expect_er(ExecType::Amend).await;
    assert_eq!(r.orig_cl_ord_id, Some(FixedStr::new("2")), "{r:?}");
    assert_eq!(
        r.price,
        Some(Decimal::from_price(Price::parse("65.05").unwrap()))
    );
    // Reference §1.9: a price change is a cancel/replace; the replacement has a new Order ID.
    assert_ne!(
        r.order_id, ack.order_id,
        "price change keeps the Order ID: {r:?}"
    );
    // Amend of an unknown order: Amend Reject, code 1.
    a.send(amend("4", "77", "65.00", 400)).await;
    let r = a.expect_er(ExecType::AmendReject).await;
    assert_eq!(r.amend_reject_code, Some(1), "{r:?}");
    assert_eq!(r.orig_cl_ord_id, Some(FixedStr::new("77")));
    assert_eq!(site.state_hash().await.unwrap().1, 1);
    site.shutdown();
}

#[tokio::test]
async fn trade_capture_report_gets_business_reject_unsupported_message_type() {
    let site = start(site_config(abc())).await;
    let mut a = Raw::logon(site.gateway_primary, "CO0001").await;
    let tcr = Message::TradeCaptureReport(TradeCaptureReport {
        trade_report_id: Some(FixedStr::new("1")),
        trade_report_trans_type: Some(0),
        trade_report_type: Some(0),
        trade_handling_instr: Some(1),
        submitting_broker_id: Some(FixedStr::new("1001")),
        counterparty_broker_id: Some(FixedStr::new("1002")),
        broker_location_id: None,
        security_id: Some(FixedStr::new("5")),
        security_id_source: Some(8),
        security_exchange: Some(FixedStr::new("XHKG")),
        side: Some(Side::Sell),
        transact_time: Some(FixedStr::new("20231125-02:00:00.000000")),
        trade_id: None,
        trd_type: Some(22),
        last_qty: Some(qty(400)),
        last_px: Some(Decimal::from_price(Price::parse("65.00").unwrap())),
        clearing_instruction: None,
        position_effect: None,
        order_capacity: None,
        order_category: None,
        text: None,
        execution_instructions: None,
        exec_type: None,
        trade_report_status: None,
        exchange_trade_type: None,
        order_id: None,
        submitting_bcan: None,
        counterparty_bcan: None,
    });
    let seq = a.send(tcr).await;
    let bmr = a.expect_bmr().await;
    assert_eq!(
        bmr.business_reject_code,
        BusinessRejectCode::UnsupportedMessageType,
        "{bmr:?}"
    );
    assert_eq!(bmr.reference_message_type, TradeCaptureReport::MSG_TYPE);
    assert_eq!(bmr.reference_sequence_number, Some(seq));
    // The session carries on.
    a.send(new_order("1", 1001, Side::Buy, "65.00", 400)).await;
    a.expect_er(ExecType::New).await;
    site.shutdown();
}

// ------------------------------------------------------------------------- sequence numbers

#[tokio::test]
async fn first_logon_of_the_day_with_sequence_above_one_is_dropped_silently() {
    let site = start(site_config(abc())).await;
    let mut r = try_logon(site.gateway_primary, "CO0001", PASSWORD, 5).await;
    r.expect_silent_close().await;
    let _a = Raw::logon(site.gateway_primary, "CO0001").await;
    site.shutdown();
}

#[tokio::test]
async fn logon_with_sequence_lower_than_expected_gets_logout() {
    let site = start(site_config(abc())).await;
    // Logon 1 and Logout 2: the exchange now expects 3.
    let a = Raw::logon(site.gateway_primary, "CO0001").await;
    a.logout().await;
    let mut r = try_logon(site.gateway_primary, "CO0001", PASSWORD, 2).await;
    r.expect_logout().await;
    r.expect_closed(T).await.unwrap();
    // The refused Logon did not move the numbers.
    let (_a, reply) = Raw::logon_with(site.gateway_primary, "CO0001", 3, 1).await;
    assert_eq!(reply.next_expected_sequence, 4);
    site.shutdown();
}

#[tokio::test]
async fn logon_expecting_more_than_the_exchange_sent_gets_logout() {
    let site = start(site_config(abc())).await;
    let mut r = Raw::connect(site.gateway_primary, "CO0001").await;
    r.send(logon_msg(PASSWORD, 50)).await;
    r.expect_logout().await;
    r.expect_closed(T).await.unwrap();
    site.shutdown();
}

#[tokio::test]
async fn message_with_sequence_lower_than_expected_gets_logout_possdup_is_ignored() {
    let site = start(site_config(abc())).await;
    let mut a = Raw::logon(site.gateway_primary, "CO0001").await;
    let seq = a.send(new_order("1", 1001, Side::Buy, "65.00", 400)).await;
    a.expect_er(ExecType::New).await;
    // The same number again, flagged PossDup: ignored (no second order, no Reject).
    let mut dup = frame::encode(
        seq,
        true,
        false,
        &FixedStr::new("CO0001"),
        &new_order("1", 1001, Side::Buy, "65.00", 400),
    )
    .unwrap();
    a.send_bytes(&dup).await;
    a.send(Message::TestRequest(TestRequest { test_request_id: 3 }))
        .await;
    let (_, seen) = a
        .expect(T, |_, m| {
            matches!(m, Message::Heartbeat(h) if h.reference_test_request_id == Some(3))
                .then_some(())
        })
        .await
        .unwrap();
    assert!(
        seen.iter().all(|m| matches!(m, Message::Heartbeat(_))),
        "{seen:?}"
    );
    assert_eq!(site.state_hash().await.unwrap().1, 1);
    // The same number without PossDup: Logout and disconnect (reference §1.7).
    dup[8] = 0;
    refit(&mut dup);
    a.send_bytes(&dup).await;
    a.expect_logout().await;
    a.expect_closed(T).await.unwrap();
    assert_eq!(site.state_hash().await.unwrap().1, 1);
    site.shutdown();
}

#[tokio::test]
async fn sequence_gap_gets_resend_request_and_gap_fill_releases_the_queued_message() {
    let site = start(site_config(abc())).await;
    let mut a = Raw::logon(site.gateway_primary, "CO0001").await;
    // Expected 2; send 4.
    a.seq = 4;
    a.send(new_order("1", 1001, Side::Buy, "65.00", 400)).await;
    let (rr, _) = a
        .expect(T, |_, m| match m {
            Message::ResendRequest(r) => Some(r.clone()),
            _ => None,
        })
        .await
        .unwrap();
    assert_eq!(rr.start_sequence, 2, "{rr:?}");
    assert!(rr.end_sequence == 3 || rr.end_sequence == 0, "{rr:?}");
    // Gap-fill 2..3: the queued order (4) is then processed.
    let gf = frame::encode(
        2,
        true,
        false,
        &FixedStr::new("CO0001"),
        &Message::SequenceReset(SequenceReset {
            gap_fill: Some(GapFill::GapFill),
            new_sequence_number: 4,
        }),
    )
    .unwrap();
    a.send_bytes(&gf).await;
    let ack = a.expect_er(ExecType::New).await;
    assert_eq!(ack.cl_ord_id, Some(FixedStr::new("1")));
    site.shutdown();
}

#[tokio::test]
async fn cancel_on_disconnect_after_heartbeat_loss() {
    const HB: u64 = 100;
    const DELAY_MS: u64 = 200;
    let mut parts = abc();
    parts[0].cancel_on_disconnect_ms = Some(DELAY_MS);
    let mut cfg = site_config(parts);
    cfg.session.heartbeat_ms = HB;
    let site = start(cfg).await;
    let mut rx = site.subscribe();
    let mut a = Raw::logon(site.gateway_primary, "CO0001").await;
    a.answer_test_requests = false;
    a.send(new_order("1", 1001, Side::Buy, "65.00", 400)).await;
    a.expect_er(ExecType::New).await;
    // Silent participant: Test Request, then Logout and disconnect by the exchange.
    a.expect_logout().await;
    a.expect_closed(T).await.unwrap();
    let (c, _) = until(&mut rx, cod_cancel).await;
    assert_eq!(c.exec_restatement_reason, Some(104), "{c:?}");
    assert_eq!(site.state_hash().await.unwrap().1, 0);
    site.shutdown();
}

#[tokio::test]
async fn amend_increasing_quantity_is_a_cancel_replace_with_a_new_order_id() {
    let site = start(site_config(abc())).await;
    let mut a = Raw::logon(site.gateway_primary, "CO0001").await;
    a.send(new_order("1", 1001, Side::Buy, "65.00", 400)).await;
    let ack = a.expect_er(ExecType::New).await;
    a.send(Message::AmendRequest(AmendRequest {
        cl_ord_id: Some(FixedStr::new("2")),
        submitting_broker_id: Some(FixedStr::new("1001")),
        security_id: Some(FixedStr::new("5")),
        security_id_source: Some(8),
        security_exchange: Some(FixedStr::new("XHKG")),
        broker_location_id: None,
        transact_time: Some(FixedStr::new("20231125-02:00:00.000000")),
        side: Some(Side::Buy),
        orig_cl_ord_id: FixedStr::new("1"),
        order_id: None,
        ord_type: OrdType::Limit,
        price: Some(Decimal::from_price(Price::parse("65.00").unwrap())),
        order_qty: qty(800),
        time_in_force: Some(TimeInForce::Day),
        position_effect: None,
        order_restrictions: None,
        max_price_levels: Some(1),
        order_capacity: Some(OrderCapacity::Agency),
        text: None,
        execution_instructions: None,
        disclosure_instructions: Some(1),
    }))
    .await;
    let r = a.expect_er(ExecType::Amend).await;
    assert_eq!(r.order_qty, Some(qty(800)), "{r:?}");
    assert_eq!(r.leaves_qty, Some(qty(800)));
    assert_ne!(
        r.order_id, ack.order_id,
        "qty increase keeps the Order ID: {r:?}"
    );
    site.shutdown();
}

#[tokio::test]
async fn sequence_reset_in_reset_mode_from_a_participant_gets_reject_5() {
    let site = start(site_config(abc())).await;
    let mut a = Raw::logon(site.gateway_primary, "CO0001").await;
    let seq = a
        .send(Message::SequenceReset(SequenceReset {
            gap_fill: Some(GapFill::Reset),
            new_sequence_number: 100,
        }))
        .await;
    let rej = a.expect_reject().await;
    assert_eq!(rej.message_reject_code, MessageRejectCode::ValueIncorrect);
    assert_eq!(rej.reference_sequence_number, seq);
    // The numbers did not move: the next message in sequence is processed.
    a.send(new_order("1", 1001, Side::Buy, "65.00", 400)).await;
    a.expect_er(ExecType::New).await;
    site.shutdown();
}

#[tokio::test]
async fn resend_request_replays_business_messages_and_gap_fills_session_ones() {
    let site = start(site_config(abc())).await;
    let mut a = Raw::logon(site.gateway_primary, "CO0001").await;
    a.send(new_order("1", 1001, Side::Buy, "65.00", 400)).await;
    let (first, _) = a
        .expect(T, |h, m| {
            matches!(m, Message::ExecutionReport(_)).then_some(h.seq)
        })
        .await
        .unwrap();
    a.send(new_order("2", 1001, Side::Buy, "64.95", 400)).await;
    a.expect_er(ExecType::New).await;
    // Everything from 1 (the Logon reply) on.
    a.send(Message::ResendRequest(ResendRequest {
        start_sequence: 1,
        end_sequence: 0,
    }))
    .await;
    let (gf, _) = a
        .expect(T, |h, m| match m {
            Message::SequenceReset(r) => Some((h.seq, r.gap_fill, r.new_sequence_number)),
            _ => None,
        })
        .await
        .unwrap();
    assert_eq!(
        gf,
        (1, Some(GapFill::GapFill), first),
        "Logon reply gap-filled"
    );
    let mut replayed = Vec::new();
    while replayed.len() < 2 {
        let (r, _) = a
            .expect(T, |h, m| match m {
                Message::ExecutionReport(r) => Some((
                    h.poss_dup,
                    r.cl_ord_id.clone().unwrap().as_str().to_string(),
                )),
                _ => None,
            })
            .await
            .unwrap();
        replayed.push(r);
    }
    assert_eq!(replayed, [(true, "1".to_string()), (true, "2".to_string())]);
    assert_eq!(
        site.state_hash().await.unwrap().1,
        2,
        "a replay is not a new order"
    );
    site.shutdown();
}
