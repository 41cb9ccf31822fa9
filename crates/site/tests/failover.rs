//! Two sites and a witness: participants trade at the primary site, the exchange fails over to
//! the backup site (scheduled, then by a crash), participants find the backup through the lookup
//! service, continue their sessions with the replay they are owed, and nothing acknowledged is
//! lost.

mod common;

use common::*;
use std::time::Instant;
use twinsite_core::{Price, Qty};
use twinsite_ocg::*;
use twinsite_site::config::*;

/// Bound for every wait here.
const T: std::time::Duration = CLUSTER_T;

/// Two EPs, A (CO0001) and B (CO0002), with cancel on disconnect after 100 ms; the site waits
/// for the journal to open it.
fn node_config(name: &str) -> SiteConfig {
    let mut a = participant("Alpha", "CO0001", 1001);
    let mut b = participant("Beta", "CO0002", 1002);
    a.cancel_on_disconnect_ms = Some(100);
    b.cancel_on_disconnect_ms = Some(100);
    let mut cfg = site_config(vec![a, b]);
    cfg.site.name = name.into();
    cfg.site.active = false;
    cfg
}

fn order(cl: &str, broker: u32, side: Side, price: &str, qty: u64) -> Message {
    Message::NewOrder(NewOrder::day_limit(
        cl,
        broker,
        "700",
        side,
        Price::parse(price).unwrap(),
        Qty(qty),
        "20231125-02:00:00.000000",
    ))
}

/// The whole drill in one test: trade at the primary, scheduled failover, trade at the backup.
async fn run_failover(crash: bool) {
    let _one_at_a_time = SERIAL.lock().await;
    let mut c = cluster(node_config).await;
    let mut a = client("CO0001", c.ladder(|s| &s.lookup_addrs));
    let mut b = client("CO0002", c.ladder(|s| &s.lookup_addrs));
    a.wait_for(T, logged_on).await.unwrap();
    b.wait_for(T, logged_on).await.unwrap();

    // Acknowledged at the primary: A rests 10 orders to sell Tencent.
    for i in 0..10 {
        a.send(order(
            &format!("{}", i + 1),
            1001,
            Side::Sell,
            "385.20",
            100,
        ))
        .await
        .unwrap();
        a.wait_for(T, er_of(ExecType::New)).await.unwrap();
    }
    // B takes two of them.
    b.send(order("1", 1002, Side::Buy, "385.20", 200))
        .await
        .unwrap();
    b.wait_for(T, er_of(ExecType::Trade)).await.unwrap();
    let ((_, _, f), _) = a.wait_for(T, er_of(ExecType::Trade)).await.unwrap();
    assert_eq!(f.last_qty, Some(Decimal::from_qty(Qty(100))));

    // Fail over.
    let started = Instant::now();
    c.fail_over(crash).await;
    let rto = started.elapsed();
    eprintln!(
        "{} failover: backup active after {rto:?}",
        if crash { "crash" } else { "scheduled" }
    );

    // Both participants find the backup through the lookup service and continue their sessions.
    let next_a = a.wait_for(T, logged_on).await.unwrap().0;
    b.wait_for(T, logged_on).await.unwrap();
    assert!(
        next_a > 1,
        "A continued its session (next expected {next_a})"
    );

    // Every order A had acknowledged is still at the backup: B buys the remaining 800 shares.
    b.send(order("2", 1002, Side::Buy, "385.20", 800))
        .await
        .unwrap();
    let ((_, _, last), _) = b
        .wait_for(T, |e| {
            er_of(ExecType::Trade)(e).filter(|(_, _, r)| r.ord_status == Some(OrdStatus::Filled))
        })
        .await
        .unwrap();
    assert_eq!(last.cum_qty, Some(Decimal::from_qty(Qty(800))));
    let mut a_fills = 0;
    while a_fills < 8 {
        a.wait_for(T, er_of(ExecType::Trade)).await.unwrap();
        a_fills += 1;
    }

    // The backup and the witness (and the old primary after a scheduled failover) hold the
    // same state.
    c.same_state_everywhere().await;
    let live_orders = c.backup.state_hash().await.unwrap().1;
    assert_eq!(live_orders, 0, "all of A's orders traded at the backup");

    a.abort();
    b.abort();
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scheduled_failover_keeps_sessions_and_every_acknowledged_order() {
    run_failover(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crash_of_the_primary_site_loses_no_acknowledged_order() {
    run_failover(true).await;
}
