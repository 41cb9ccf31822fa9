//! OTP-CSC (China Connect northbound, through the CCCG) at a site: its own lookup service and
//! gateway pair with the OCG-C framing, session, lookup and recovery rules; CCEP Comp IDs only;
//! A-shares only; logon windows per platform; and a CCEP's failover with the rest of the site.

mod common;

use common::*;
/// Bound for every wait here.
const T: std::time::Duration = CLUSTER_T;
use std::net::SocketAddr;
use std::time::Instant;
use tokio::sync::broadcast;
use twinsite_core::{Platform, Price, Qty};
use twinsite_ocg::*;
use twinsite_site::config::*;
use twinsite_site::gateway::{Activity, AdminCmd};

/// An EP (OTP-C), and two CCEPs (OTP-CSC): CC0003 buys, CC0004 holds and sells Moutai.
fn participants() -> Vec<ParticipantEntry> {
    let mut c3 = participant("Gamma CC", "CC0003", 3003);
    c3.kind = "CCEP".into();
    let mut c4 = participant("Delta CC", "CC0004", 3004);
    c4.kind = "CCEP".into();
    vec![participant("Alpha", "CO0001", 1001), c3, c4]
}

fn csc_config() -> SiteConfig {
    let any: SocketAddr = "127.0.0.1:0".parse().unwrap();
    let mut cfg = site_config(participants());
    cfg.site.csc_lookup = vec![any, any];
    cfg.site.csc_gateway_primary = Some(any);
    cfg.site.csc_gateway_mirror = Some(any);
    cfg.engine.cc_holdings = vec![HoldingEntry {
        broker: 3004,
        security: 600519,
        shares: 1_000,
    }];
    cfg
}

/// The Refused record for `comp` at `platform`: its reason.
async fn refused(rx: &mut broadcast::Receiver<Activity>, comp: &str, platform: Platform) -> String {
    until(rx, |a| match a {
        Activity::Refused {
            comp_id: Some(c),
            platform: p,
            reason,
            ..
        } if c.as_str() == comp && *p == platform => Some(reason.clone()),
        _ => None,
    })
    .await
}

/// A Lookup Request for `comp` at `addr`; the response.
async fn lookup(addr: SocketAddr, comp: &str) -> LookupResponse {
    let mut r = Raw::connect(addr, comp).await;
    r.send(Message::LookupRequest(LookupRequest {
        type_of_service: LOOKUP_SERVICE_ORDER_INPUT,
        protocol_type: LOOKUP_PROTOCOL_BINARY,
    }))
    .await;
    r.expect(T, |_, m| match m {
        Message::LookupResponse(l) => Some(l.clone()),
        _ => None,
    })
    .await
    .unwrap_or_else(|e| panic!("{comp} lookup at {addr}: {e}"))
    .0
}

#[tokio::test]
async fn ccep_looks_up_through_the_csc_lookup_logs_on_to_the_csc_gateway_and_trades_an_a_share() {
    let site = start(csc_config()).await;
    assert_eq!(site.csc_lookup_addrs.len(), 2);
    let csc_primary = site.csc_gateway_primary.expect("OTP-CSC gateway bound");
    let csc_mirror = site.csc_gateway_mirror.expect("OTP-CSC mirror bound");
    assert_ne!(csc_primary, site.gateway_primary);

    // The CSC lookup hands out the CSC gateways.
    let resp = lookup(site.csc_lookup_addrs[0], "CC0003").await;
    assert_eq!(resp.status, LookupStatus::Accepted);
    assert_eq!(resp.primary_port, Some(csc_primary.port()));
    assert_eq!(resp.secondary_port, Some(csc_mirror.port()));

    let mut activity_rx = site.subscribe();
    // The client wants four endpoints (the backup site's two are this site's again here).
    let lookups = [site.csc_lookup_addrs.clone(), site.csc_lookup_addrs.clone()].concat();
    let mut buyer = client("CC0003", lookups.clone());
    let mut seller = client("CC0004", lookups);
    buyer.wait_for(T, logged_on).await.unwrap();
    seller.wait_for(T, logged_on).await.unwrap();
    let gw = until(&mut activity_rx, |a| match a {
        Activity::Connected { gateway, .. } => Some(*gateway),
        _ => None,
    })
    .await;
    assert_eq!(
        gw, "csc-primary",
        "the connection is named for its platform"
    );

    // Buy and sell 600519 (Kweichow Moutai, SSE) at RMB 1500.00.
    buyer
        .send(order_in("600519", "B1", 3003, Side::Buy, "1500.00", 200))
        .await
        .unwrap();
    let ((_, _, ack), _) = buyer.wait_for(T, er_of(ExecType::New)).await.unwrap();
    assert_eq!(ack.security_id, Some(FixedStr::new("600519")));
    seller
        .send(order_in("600519", "S1", 3004, Side::Sell, "1500.00", 200))
        .await
        .unwrap();
    let ((_, _, sfill), _) = seller.wait_for(T, er_of(ExecType::Trade)).await.unwrap();
    assert_eq!(sfill.last_qty, Some(qty(200)));
    assert_eq!(sfill.ord_status, Some(OrdStatus::Filled));
    let ((_, _, bfill), _) = buyer.wait_for(T, er_of(ExecType::Trade)).await.unwrap();
    assert_eq!(bfill.last_qty, Some(qty(200)));
    assert_eq!(
        bfill.last_px,
        Some(Decimal::from_price(Price::parse("1500.00").unwrap()))
    );
    assert_eq!(bfill.counterparty_broker_id, Some(FixedStr::new("3004")));
    buyer.abort();
    seller.abort();
    site.shutdown();
}

#[tokio::test]
async fn a_ccep_trades_only_sse_and_szse_securities_and_an_ep_only_hong_kong_ones() {
    let site = start(csc_config()).await;
    let mut ccep = Raw::logon(site.csc_gateway_primary.unwrap(), "CC0003").await;
    let mut ep = Raw::logon(site.gateway_primary, "CO0001").await;

    ccep.send(order_in("5", "H1", 3003, Side::Buy, "65.30", 400))
        .await;
    let r = ccep.expect_er(ExecType::Reject).await;
    assert_eq!(r.order_reject_code, Some(99));
    let text = r.reason.map(|x| x.as_str().to_string()).unwrap_or_default();
    assert!(text.starts_with("unknown security"), "{text}");

    ep.send(order_in("600519", "A1", 1001, Side::Buy, "1500.00", 100))
        .await;
    let r = ep.expect_er(ExecType::Reject).await;
    assert_eq!(r.order_reject_code, Some(99));
    let text = r.reason.map(|x| x.as_str().to_string()).unwrap_or_default();
    assert!(text.starts_with("unknown security"), "{text}");

    // Nothing entered either book.
    assert_eq!(site.state_hash().await.unwrap().1, 0);
    // Each still trades its own market.
    ccep.send(order_in("600519", "B2", 3003, Side::Buy, "1500.00", 100))
        .await;
    ccep.expect_er(ExecType::New).await;
    ep.send(order_in("5", "A2", 1001, Side::Buy, "65.30", 400))
        .await;
    ep.expect_er(ExecType::New).await;
    site.shutdown();
}

#[tokio::test]
async fn an_ep_at_the_csc_lookup_or_gateway_and_a_ccep_at_otp_c_are_refused_and_recorded() {
    let site = start(csc_config()).await;
    let mut rx = site.subscribe();

    // Lookups: the same answer as for an unknown client.
    let r = lookup(site.csc_lookup_addrs[0], "CO0001").await;
    assert_eq!(r.status, LookupStatus::Rejected);
    assert_eq!(r.lookup_reject_code, Some(LookupRejectCode::InvalidClient));
    let why = refused(&mut rx, "CO0001", Platform::OtpCsc).await;
    assert_eq!(why, "CO0001 is an EP: may log in to OTP-C only");

    let r = lookup(site.lookup_addrs[0], "CC0003").await;
    assert_eq!(r.status, LookupStatus::Rejected);
    assert_eq!(r.lookup_reject_code, Some(LookupRejectCode::InvalidClient));
    let why = refused(&mut rx, "CC0003", Platform::OtpC).await;
    assert_eq!(why, "CC0003 is a CCEP: may log in to OTP-CSC only");

    // Gateways: a silent disconnect, as for an invalid Comp ID.
    let mut ep = Raw::connect(site.csc_gateway_primary.unwrap(), "CO0001").await;
    ep.send(logon_msg(PASSWORD, 1)).await;
    ep.expect_silent_close().await;
    let why = refused(&mut rx, "CO0001", Platform::OtpCsc).await;
    assert_eq!(why, "CO0001 is an EP: may log in to OTP-C only");

    let mut cc = Raw::connect(site.gateway_mirror, "CC0004").await;
    cc.send(logon_msg(PASSWORD, 1)).await;
    cc.expect_silent_close().await;
    let why = refused(&mut rx, "CC0004", Platform::OtpC).await;
    assert_eq!(why, "CC0004 is a CCEP: may log in to OTP-CSC only");

    // The refusals did not touch the sessions: both log on where they belong, sequence 1.
    Raw::logon(site.gateway_primary, "CO0001").await;
    Raw::logon(site.csc_gateway_primary.unwrap(), "CC0004").await;
    site.shutdown();
}

#[tokio::test]
async fn logons_are_refused_with_session_status_7_while_a_platform_is_closed_and_accepted_after_it_opens(
) {
    let site = start(csc_config()).await;
    let mut rx = site.subscribe();
    let csc = site.csc_gateway_primary.unwrap();
    site.admin(AdminCmd::LogonsAllowedOn {
        platform: Platform::OtpCsc,
        allowed: false,
    });

    let mut cc = Raw::connect(csc, "CC0003").await;
    cc.send(logon_msg(PASSWORD, 1)).await;
    assert_eq!(
        cc.expect_logout().await,
        Some(SessionStatus::LogonsNotAllowed)
    );
    cc.expect_closed(T).await.unwrap();
    let why = refused(&mut rx, "CC0003", Platform::OtpCsc).await;
    assert!(why.contains("Session Status 7"), "{why}");
    assert!(why.starts_with("CC0003 logged on to OTP-CSC"), "{why}");

    // OTP-C is open meanwhile.
    let ep = Raw::logon(site.gateway_primary, "CO0001").await;

    // Close OTP-C, open OTP-CSC.
    site.admin(AdminCmd::LogonsAllowedOn {
        platform: Platform::OtpC,
        allowed: false,
    });
    site.admin(AdminCmd::LogonsAllowedOn {
        platform: Platform::OtpCsc,
        allowed: true,
    });
    ep.logout().await;
    let mut again = Raw::connect(site.gateway_primary, "CO0001").await;
    again.seq = 3;
    again.send(logon_msg(PASSWORD, 3)).await;
    assert_eq!(
        again.expect_logout().await,
        Some(SessionStatus::LogonsNotAllowed)
    );
    let why = refused(&mut rx, "CO0001", Platform::OtpC).await;
    assert!(why.starts_with("CO0001 logged on to OTP-C "), "{why}");

    // The refused logon consumed no inbound number: CC0003 logs on with sequence 1 and is
    // owed the Logout (gap-filled).
    let (_cc, reply) = Raw::logon_with(csc, "CC0003", 1, 1).await;
    assert_eq!(reply.next_expected_sequence, 2);

    // LogonsAllowed(true) opens both again.
    site.admin(AdminCmd::LogonsAllowed(true));
    let mut ep = Raw::connect(site.gateway_primary, "CO0001").await;
    ep.seq = 3;
    ep.send(logon_msg(PASSWORD, 1)).await;
    let reply = ep
        .expect(T, |_, m| match m {
            Message::Logon(l) => Some(l.clone()),
            _ => None,
        })
        .await
        .unwrap()
        .0;
    assert_eq!(reply.session_status, Some(SessionStatus::Active));
    site.shutdown();
}

// ------------------------------------------------------------------ failover

fn node_config(name: &str) -> SiteConfig {
    let mut cfg = csc_config();
    cfg.site.name = name.into();
    cfg.site.active = false;
    cfg
}

async fn ccep_failover(crash: bool) {
    let _one = SERIAL.lock().await;
    let mut c = cluster(node_config).await;
    // The four OTP-CSC lookup endpoints: primary site's, then the backup site's.
    let lookups = c.ladder(|s| &s.csc_lookup_addrs);
    let mut buyer = client("CC0003", lookups.clone());
    buyer.wait_for(T, logged_on).await.unwrap();

    // Acknowledged at the primary: a resting buy of 300 Moutai.
    buyer
        .send(order_in("600519", "B1", 3003, Side::Buy, "1500.00", 300))
        .await
        .unwrap();
    let ((ack_seq, _, _), _) = buyer.wait_for(T, er_of(ExecType::New)).await.unwrap();

    let started = Instant::now();
    let mut brx = c.fail_over(crash).await;
    eprintln!(
        "{} failover with a CCEP: backup active after {:?}",
        if crash { "crash" } else { "scheduled" },
        started.elapsed()
    );

    // The CCEP finds the backup's CSC gateway through the CSC lookup and continues its session.
    let next = buyer.wait_for(T, logged_on).await.unwrap().0;
    assert!(
        next > ack_seq,
        "continued the session (next expected {next})"
    );
    let conn = until(&mut brx, |a| match a {
        Activity::SessionUp { comp_id, .. } if comp_id.as_str() == "CC0003" => Some(()),
        _ => None,
    });
    tokio::time::timeout(T, conn).await.unwrap();

    // The order is still resting: the seller trades against all of it at the backup.
    let mut seller = client("CC0004", lookups);
    seller.wait_for(T, logged_on).await.unwrap();
    seller
        .send(order_in("600519", "S1", 3004, Side::Sell, "1500.00", 300))
        .await
        .unwrap();
    let ((_, _, sf), _) = seller.wait_for(T, er_of(ExecType::Trade)).await.unwrap();
    assert_eq!(sf.last_qty, Some(qty(300)));
    let ((_, _, bf), _) = buyer.wait_for(T, er_of(ExecType::Trade)).await.unwrap();
    assert_eq!(bf.cl_ord_id, Some(FixedStr::new("B1")));
    assert_eq!(bf.cum_qty, Some(Decimal::from_qty(Qty(300))));
    assert_eq!(c.backup.state_hash().await.unwrap().1, 0);

    let j = c.backup.journal().unwrap().clone();
    let idx = j.commit_index();
    j.wait_applied(idx, T).await.unwrap();
    c.witness.wait_applied(idx, T).await.unwrap();
    assert_eq!(j.state_hash_at(idx), c.witness.state_hash_at(idx));

    buyer.abort();
    seller.abort();
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ccep_continues_its_session_and_its_resting_order_at_the_backup_after_a_scheduled_failover()
{
    ccep_failover(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ccep_continues_its_session_and_its_resting_order_at_the_backup_after_a_crash() {
    ccep_failover(true).await;
}

#[test]
fn the_config_refuses_a_fix_ccep_a_csc_gateway_without_its_mirror_and_reset_to_zero() {
    let mut cfg = csc_config();
    cfg.check().unwrap();
    cfg.participants[1].protocol = Protocol::Fix;
    let e = cfg.check().unwrap_err().to_string();
    assert!(e.contains("CCEP") && e.contains("binary"), "{e}");

    let mut cfg = csc_config();
    cfg.site.csc_gateway_mirror = None;
    let e = cfg.check().unwrap_err().to_string();
    assert!(e.contains("csc_gateway_mirror"), "{e}");

    let mut cfg = csc_config();
    cfg.failover.sequence = SequenceOnFailover::Reset;
    cfg.failover.reset_to = Some(0);
    let e = cfg.check().unwrap_err().to_string();
    assert!(e.contains("reset_to"), "{e}");

    // From TOML, as an operator writes it.
    let text = r#"
        [site]
        lookup = ["127.0.0.1:0"]
        gateway_primary = "127.0.0.1:0"
        gateway_mirror = "127.0.0.1:0"
        csc_lookup = ["127.0.0.1:0"]
        csc_gateway_primary = "127.0.0.1:0"
        csc_gateway_mirror = "127.0.0.1:0"
        keys = ["k.pem"]
        [failover]
        orders = "cancel"
        sequence = "reset"
        reset_to = 1
    "#;
    let cfg: SiteConfig = toml::from_str(text).unwrap();
    assert_eq!(cfg.failover.orders, OrdersOnFailover::Cancel);
    assert_eq!(cfg.failover.reset_number(), Some(1));
    let bad = text.replace("\"cancel\"", "\"purge\"");
    assert!(toml::from_str::<SiteConfig>(&bad).is_err());
}
