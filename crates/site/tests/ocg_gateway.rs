//! A real TCP client through the Lookup Service, logon, orders, fills, a dropped connection,
//! reconnect with replay of what it missed, and logout.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;
use twinsite_core::{CompId, Price, Qty};
use twinsite_ocg::client::{ClientConfig, ClientState};
use twinsite_ocg::*;
use twinsite_site::client::{ClientEvent, ClientHandle};
use twinsite_site::config::*;
use twinsite_site::gateway::{self, load_key};

const T: Duration = Duration::from_secs(20);

fn key_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data/test-key.pem")
}

fn participant(firm: &str, comp: &str, broker: u32) -> ParticipantEntry {
    ParticipantEntry {
        firm: firm.into(),
        kind: "EP".into(),
        comp_id: comp.into(),
        broker_ids: vec![broker],
        password: "Passw0rd".into(),
        source_ips: vec!["127.0.0.1".parse().unwrap()],
        throttle_units: 50,
        cancel_on_disconnect_ms: None,
        must_change_password: false,
        protocol: Default::default(),
    }
}

pub fn site_config(participants: Vec<ParticipantEntry>) -> SiteConfig {
    let any: SocketAddr = "127.0.0.1:0".parse().unwrap();
    SiteConfig {
        site: SiteSection {
            name: "primary".into(),
            lookup: vec![any, any],
            gateway_primary: any,
            gateway_mirror: any,
            advertise_host: None,
            keys: vec![key_path()],
            reference_data: None,
            active: true,
            fix_gateway: None,
            csc_lookup: vec![],
            csc_gateway_primary: None,
            csc_gateway_mirror: None,
        },
        engine: EngineSection::default(),
        session: SessionSection {
            heartbeat_ms: 1_000,
            password_tolerance_secs: 120,
            throttle: true,
        },
        market_data: None,
        participants,
        failover: Default::default(),
    }
}

/// An address nothing listens on (a closed backup-site lookup endpoint).
async fn closed_port() -> SocketAddr {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    l.local_addr().unwrap()
}

async fn client(comp: &str, lookups: Vec<SocketAddr>) -> ClientHandle {
    let key = load_key(&key_path()).unwrap();
    let mut cfg = ClientConfig::new(
        CompId::new(comp).unwrap(),
        "Passw0rd",
        rsa::RsaPublicKey::from(&key),
        lookups,
    );
    cfg.reconnect_wait_ns = 50_000_000;
    cfg.lookup_backoff_ns = 50_000_000;
    cfg.timers.heartbeat_interval_ns = 1_000_000_000;
    ClientHandle::spawn(cfg, ClientState::default())
}

fn new_order(cl: &str, broker: u32, side: Side, price: &str, qty: u64) -> Message {
    Message::NewOrder(NewOrder {
        cl_ord_id: FixedStr::new(cl),
        submitting_broker_id: FixedStr::new(&broker.to_string()),
        security_id: FixedStr::new("5"),
        security_id_source: 8,
        security_exchange: Some(FixedStr::new("XHKG")),
        broker_location_id: None,
        transact_time: FixedStr::new("20231125-02:00:00.000000"),
        side,
        ord_type: OrdType::Limit,
        price: Some(Decimal::from_price(Price::parse(price).unwrap())),
        order_qty: Decimal::from_qty(Qty(qty)),
        time_in_force: Some(TimeInForce::Day),
        position_effect: None,
        order_restrictions: None,
        max_price_levels: Some(1),
        order_capacity: Some(OrderCapacity::Agency),
        text: None,
        execution_instructions: None,
        disclosure_instructions: 1,
        lot_type: None,
        submitting_bcan: Some(FixedStr::new("1")),
    })
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

    let mut a = client("CO0001", lookups.clone()).await;
    let mut b = client("CO0002", lookups.clone()).await;
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
    let mut x = client("NOPE01", lookups).await;
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
    let mut a = client("CO0001", lookups).await;
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
