//! The failover modes of `[failover]`, applied once by the site that becomes active after a
//! failover, through the replicated journal: `orders = "cancel"` (every resting order purged
//! with unsolicited cancels, delivered at each owner's next logon) and `sequence = "reset"`
//! (catastrophic mode: every session restarts at the agreed number, earlier messages
//! unavailable for replay).

mod common;

use common::*;
use std::net::SocketAddr;
use twinsite_core::CompId;
use twinsite_ocg::*;
use twinsite_site::config::*;

/// Bound for every wait here.
const T: std::time::Duration = CLUSTER_T;

/// An EP (CO0001) and a CCEP (CC0003), both binary.
fn node_config(name: &str, failover: FailoverSection) -> SiteConfig {
    let any: SocketAddr = "127.0.0.1:0".parse().unwrap();
    let mut cc = participant("Gamma CC", "CC0003", 3003);
    cc.kind = "CCEP".into();
    let mut cfg = site_config(vec![participant("Alpha", "CO0001", 1001), cc]);
    cfg.site.name = name.into();
    cfg.site.active = false;
    cfg.site.csc_lookup = vec![any, any];
    cfg.site.csc_gateway_primary = Some(any);
    cfg.site.csc_gateway_mirror = Some(any);
    cfg.failover = failover;
    cfg
}

async fn orders_cancel(crash: bool) {
    let _one = SERIAL.lock().await;
    let failover = FailoverSection {
        orders: OrdersOnFailover::Cancel,
        ..Default::default()
    };
    let mut c = cluster(|name| node_config(name, failover.clone())).await;
    let mut ep = client("CO0001", c.ladder(|s| &s.lookup_addrs));
    let mut cc = client("CC0003", c.ladder(|s| &s.csc_lookup_addrs));
    ep.wait_for(T, logged_on).await.unwrap();
    cc.wait_for(T, logged_on).await.unwrap();

    // Resting at the primary: two HK orders and an A-share order, all acknowledged (the
    // first activation purged nothing).
    for (cl, px) in [("1", "65.20"), ("2", "65.10")] {
        ep.send(order_in("5", cl, 1001, Side::Buy, px, 400))
            .await
            .unwrap();
        ep.wait_for(T, er_of(ExecType::New)).await.unwrap();
    }
    cc.send(order_in("600519", "B1", 3003, Side::Buy, "1500.00", 100))
        .await
        .unwrap();
    cc.wait_for(T, er_of(ExecType::New)).await.unwrap();
    assert_eq!(c.primary.as_ref().unwrap().state_hash().await.unwrap().1, 3);

    c.fail_over(crash).await;
    assert_eq!(
        c.backup.state_hash().await.unwrap().1,
        0,
        "the backup purged the book"
    );

    // At their next logon (at the backup, through the lookup) each owner gets an unsolicited
    // cancel per order: Exec Restatement Reason 107 (system cancel), PossResend as messages
    // generated during the outage.
    ep.wait_for(T, logged_on).await.unwrap();
    let mut cancelled = Vec::new();
    for _ in 0..2 {
        let ((_, poss_resend, r), _) = ep.wait_for(T, er_of(ExecType::Cancel)).await.unwrap();
        assert!(poss_resend, "generated while the participant was away");
        assert_eq!(r.ord_status, Some(OrdStatus::Cancelled));
        assert_eq!(r.exec_restatement_reason, Some(107));
        assert_eq!(r.orig_cl_ord_id, None, "unsolicited: no OrigClOrdID");
        cancelled.push(r.cl_ord_id.unwrap().as_str().to_string());
    }
    cancelled.sort();
    assert_eq!(cancelled, ["1", "2"]);
    cc.wait_for(T, logged_on).await.unwrap();
    let ((_, _, r), _) = cc.wait_for(T, er_of(ExecType::Cancel)).await.unwrap();
    assert_eq!(r.cl_ord_id, Some(FixedStr::new("B1")));
    assert_eq!(r.exec_restatement_reason, Some(107));

    // Trading continues at the backup, and a new order is not purged again.
    ep.send(order_in("5", "3", 1001, Side::Buy, "65.20", 400))
        .await
        .unwrap();
    ep.wait_for(T, er_of(ExecType::New)).await.unwrap();
    assert_eq!(c.backup.state_hash().await.unwrap().1, 1);

    // Every node applied the same purge: same state hash at the same index.
    c.same_state_everywhere().await;
    let live = c.witness.read(|r| r.exchange.live_orders()).to_owned();
    assert_eq!(live, 1);

    ep.abort();
    cc.abort();
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failover_orders_cancel_purges_every_resting_order_with_unsolicited_cancels_at_the_next_logon(
) {
    orders_cancel(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failover_orders_cancel_purges_the_book_after_a_crash_of_the_primary_too() {
    orders_cancel(true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failover_sequence_reset_restarts_every_session_at_the_agreed_number_and_earlier_messages_are_gap_filled(
) {
    let _one = SERIAL.lock().await;
    const AGREED: u32 = 1_000;
    let failover = FailoverSection {
        sequence: SequenceOnFailover::Reset,
        reset_to: Some(AGREED),
        ..Default::default()
    };
    let mut c = cluster(|name| node_config(name, failover.clone())).await;

    // A day's session at the primary: an order, acknowledged (outbound 2), still resting.
    let primary = c.primary.as_ref().unwrap();
    let mut ep = Raw::logon(primary.gateway_primary, "CO0001").await;
    ep.send(order_in("5", "1", 1001, Side::Buy, "65.20", 400))
        .await;
    ep.expect_er(ExecType::New).await;
    let cc = Raw::logon(primary.csc_gateway_primary.unwrap(), "CC0003").await;

    c.fail_over(false).await;
    drop(ep);
    drop(cc);

    // Agreed out of band: both sides restart at 1000.
    let (mut ep, reply) = Raw::logon_with(c.backup.gateway_primary, "CO0001", AGREED, AGREED).await;
    assert_eq!(reply.next_expected_sequence, AGREED + 1);
    let (_cc, reply) = Raw::logon_with(
        c.backup.csc_gateway_primary.unwrap(),
        "CC0003",
        AGREED,
        AGREED,
    )
    .await;
    assert_eq!(reply.next_expected_sequence, AGREED + 1);

    // The order survived (orders = "keep"), and new business goes under the new numbers.
    assert_eq!(c.backup.state_hash().await.unwrap().1, 1);
    let seq = ep
        .send(order_in("5", "2", 1001, Side::Buy, "65.10", 400))
        .await;
    assert_eq!(seq, AGREED + 1);
    let (ack, _) = ep
        .expect(T, |h, m| match m {
            Message::ExecutionReport(r) if r.exec_type == Some(ExecType::New) => Some(h.seq),
            _ => None,
        })
        .await
        .unwrap();
    assert!(
        ack > AGREED,
        "live numbering continues from the agreed one ({ack})"
    );

    // Earlier messages are unavailable for replay: a resend request for them is answered with
    // a gap fill to the agreed number, never with the old Execution Reports.
    ep.send(Message::ResendRequest(ResendRequest {
        start_sequence: 1,
        end_sequence: AGREED - 1,
    }))
    .await;
    let ((seq, new_seq), seen) = ep
        .expect(T, |h, m| match m {
            Message::SequenceReset(r) if r.gap_fill == Some(GapFill::GapFill) => {
                Some((h.seq, r.new_sequence_number))
            }
            _ => None,
        })
        .await
        .unwrap();
    assert_eq!((seq, new_seq), (1, AGREED));
    assert!(
        !seen.iter().any(
            |m| matches!(m, Message::ExecutionReport(r) if r.exec_type == Some(ExecType::New))
        ),
        "an old message was replayed: {seen:?}"
    );

    // Every node reset the same way.
    c.same_state_everywhere().await;
    let (in_next, evicted) = c.witness.read(|r| {
        let d = &r.sessions[&CompId::new("CC0003").unwrap()];
        (d.in_next, d.outbound.evicted_through)
    });
    assert_eq!(in_next, AGREED + 1);
    assert_eq!(evicted, AGREED - 1);

    c.shutdown().await;
}
