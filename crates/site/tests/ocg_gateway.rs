//! A real TCP client through the Lookup Service, logon, orders, fills, a dropped connection,
//! reconnect with replay of what it missed, and logout.

mod common;

use common::*;
use std::net::SocketAddr;
use std::time::Duration;
use twinsite_core::Qty;
use twinsite_ocg::*;
use twinsite_site::client::ClientEvent;
use twinsite_site::gateway;

/// Bound for every wait here.
const T: Duration = Duration::from_secs(20);

/// An address nothing listens on (a closed backup-site lookup endpoint).
async fn closed_port() -> SocketAddr {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    l.local_addr().unwrap()
}

fn er(e: &ClientEvent) -> Option<ExecutionReport> {
    match e {
        ClientEvent::Message { message, .. } => match message.as_ref() {
            Message::ExecutionReport(r) => Some(r.clone()),
            _ => None,
        },
        _ => None,
    }
}

fn exec_type(t: ExecType) -> impl FnMut(&ClientEvent) -> Option<ExecutionReport> {
    move |e| er(e).filter(|r| r.exec_type == Some(t))
}

#[tokio::test]
async fn lookup_logon_trade_drop_reconnect_replay_logout() {
    let cfg = site_config(vec![
        participant("Alpha", "CO0001", 1001),
        participant("Beta", "CO0002", 1002),
    ]);
    let (site, _feed) = gateway::start(cfg).await.unwrap();
    let mut activity = site.subscribe();
    let lookups = vec![
        site.lookup_addrs[0],
        site.lookup_addrs[1],
        closed_port().await,
        closed_port().await,
    ];

    let mut a = client("CO0001", lookups.clone());
    let mut b = client("CO0002", lookups.clone());
    a.wait_for(T, |e| {
        matches!(e, ClientEvent::LoggedOn { .. }).then_some(())
    })
    .await
    .unwrap();
    b.wait_for(T, |e| {
        matches!(e, ClientEvent::LoggedOn { .. }).then_some(())
    })
    .await
    .unwrap();

    // A rests 800 at 65.30; B takes 400.
    a.send(new_order("1", 1001, Side::Sell, "65.30", 800))
        .await
        .unwrap();
    let (ack, _) = a.wait_for(T, exec_type(ExecType::New)).await.unwrap();
    assert_eq!(ack.ord_status, Some(OrdStatus::New));
    b.send(new_order("1", 1002, Side::Buy, "65.30", 400))
        .await
        .unwrap();
    let (fill_b, _) = b.wait_for(T, exec_type(ExecType::Trade)).await.unwrap();
    assert_eq!(fill_b.last_qty, Some(Decimal::from_qty(Qty(400))));
    assert_eq!(
        fill_b.aggressor_indicator,
        Some(AggressorIndicator::Aggressor)
    );
    let (fill_a, _) = a.wait_for(T, exec_type(ExecType::Trade)).await.unwrap();
    assert_eq!(fill_a.ord_status, Some(OrdStatus::PartiallyFilled));
    assert_eq!(fill_a.leaves_qty, Some(Decimal::from_qty(Qty(400))));

    // A's network drops; B trades against A's remaining 400 while A is away.
    a.drop_connection();
    a.wait_for(T, |e| matches!(e, ClientEvent::SessionLost).then_some(()))
        .await
        .ok();
    b.send(new_order("2", 1002, Side::Buy, "65.30", 400))
        .await
        .unwrap();
    b.wait_for(T, exec_type(ExecType::Trade)).await.unwrap();

    // A reconnects by itself (primary gateway, then mirror, then lookup) and gets the fill it
    // missed, replayed at logon.
    a.wait_for(T, |e| {
        matches!(e, ClientEvent::LoggedOn { .. }).then_some(())
    })
    .await
    .unwrap();
    let (missed, _) = a.wait_for(T, exec_type(ExecType::Trade)).await.unwrap();
    assert_eq!(missed.ord_status, Some(OrdStatus::Filled));
    assert_eq!(missed.cum_qty, Some(Decimal::from_qty(Qty(800))));

    // A duplicate client order id is rejected with code 6.
    a.send(new_order("1", 1001, Side::Sell, "65.30", 400))
        .await
        .unwrap();
    let (rej, _) = a.wait_for(T, exec_type(ExecType::Reject)).await.unwrap();
    assert_eq!(rej.order_reject_code, Some(6));

    a.logout();
    a.wait_for(T, |e| matches!(e, ClientEvent::Stopped(_)).then_some(()))
        .await
        .unwrap();

    // The exchange recorded the lookups and both logons of A.
    let mut lookups_ok = 0;
    let mut logons_a = 0;
    while let Ok(ev) = activity.try_recv() {
        match ev {
            gateway::Activity::Lookup { accepted: true, .. } => lookups_ok += 1,
            gateway::Activity::SessionUp { comp_id, .. } if comp_id.as_str() == "CO0001" => {
                logons_a += 1
            }
            _ => {}
        }
    }
    assert!(lookups_ok >= 2, "lookups recorded: {lookups_ok}");
    assert_eq!(logons_a, 2);
    site.shutdown();
}

#[tokio::test]
async fn unknown_comp_id_is_refused_by_lookup_and_gateway() {
    let cfg = site_config(vec![participant("Alpha", "CO0001", 1001)]);
    let (site, _feed) = gateway::start(cfg).await.unwrap();
    let lookups = vec![
        site.lookup_addrs[0],
        site.lookup_addrs[1],
        closed_port().await,
        closed_port().await,
    ];
    let mut x = client("NOPE01", lookups);
    // The lookup rejects it: the client keeps trying the ladder and never logs on.
    let r = x
        .wait_for(Duration::from_millis(1_500), |e| {
            matches!(e, ClientEvent::LoggedOn { .. }).then_some(())
        })
        .await;
    assert!(r.is_err());
    // Straight to the gateway: silent disconnect.
    let mut s = gateway::connect(site.gateway_primary).await.unwrap();
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let logon = frame::encode(
        1,
        false,
        false,
        &FixedStr::new("NOPE01"),
        &Message::Logon(Logon {
            password: Some(FixedStr::new("x")),
            new_password: None,
            next_expected_sequence: 1,
            session_status: None,
            text: None,
            test_message_indicator: None,
        }),
    )
    .unwrap();
    s.write_all(&logon).await.unwrap();
    let mut buf = [0u8; 64];
    let n = tokio::time::timeout(T, s.read(&mut buf))
        .await
        .unwrap()
        .unwrap_or(0);
    assert_eq!(n, 0, "silent disconnect: nothing is sent back");
    site.shutdown();
}

#[tokio::test]
async fn throttle_and_party_entitlement_requests_are_answered_from_configuration() {
    let cfg = site_config(vec![participant("Alpha", "CO0001", 1001)]);
    let (site, _feed) = gateway::start(cfg).await.unwrap();
    let lookups = vec![
        site.lookup_addrs[0],
        site.lookup_addrs[1],
        closed_port().await,
        closed_port().await,
    ];
    let mut a = client("CO0001", lookups);
    a.wait_for(T, |e| {
        matches!(e, ClientEvent::LoggedOn { .. }).then_some(())
    })
    .await
    .unwrap();
    a.send(Message::ThrottleEntitlementRequest(
        ThrottleEntitlementRequest {
            user_request_id: FixedStr::new("T1"),
            user_request_type: 4,
            username: FixedStr::new("CO0001"),
        },
    ))
    .await
    .unwrap();
    let (t, _) = a
        .wait_for(T, |e| match e {
            ClientEvent::Message { message, .. } => match message.as_ref() {
                Message::ThrottleEntitlementResponse(r) => Some(r.clone()),
                _ => None,
            },
            _ => None,
        })
        .await
        .unwrap();
    // 50 throttle units at 2 messages per second each.
    assert_eq!(t.throttles.unwrap().0[0].throttle_no_messages, Some(100));
    a.send(Message::PartyEntitlementsRequest(
        PartyEntitlementsRequest {
            entitlement_request_id: Some(FixedStr::new("P1")),
        },
    ))
    .await
    .unwrap();
    let (p, _) = a
        .wait_for(T, |e| match e {
            ClientEvent::Message { message, .. } => match message.as_ref() {
                Message::PartyEntitlementsReport(r) => Some(r.clone()),
                _ => None,
            },
            _ => None,
        })
        .await
        .unwrap();
    assert_eq!(p.broker_id.unwrap().as_str(), "1001");
    site.shutdown();
}
