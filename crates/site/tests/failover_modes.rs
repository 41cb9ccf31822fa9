//! The failover modes of `[failover]`, applied once by the site that becomes active after a
//! failover, through the replicated journal: `orders = "cancel"` (every resting order purged
//! with unsolicited cancels, delivered at each owner's next logon) and `sequence = "reset"`
//! (catastrophic mode: every session restarts at the agreed number, earlier messages
//! unavailable for replay).

mod common;

use common::*;
/// Bound for every wait here (longer than common's: a cluster on a loaded two-core machine).
const T: std::time::Duration = std::time::Duration::from_secs(30);
use std::collections::BTreeMap;
use std::net::SocketAddr;
use tokio::net::TcpListener;
use tokio::sync::broadcast;
use twinsite_cluster::{Durability, JournalConfig, NodeRole};
use twinsite_core::{CompId, Site};
use twinsite_ocg::client::{ClientConfig, ClientState};
use twinsite_ocg::*;
use twinsite_site::client::{ClientEvent, ClientHandle};
use twinsite_site::config::*;
use twinsite_site::gateway::{self, Activity, SiteHandle};
use twinsite_site::replica::Replica;

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

fn order_in(security: &str, cl: &str, broker: u32, side: Side, price: &str, q: u64) -> Message {
    let Message::NewOrder(mut o) = new_order(cl, broker, side, price, q) else {
        unreachable!()
    };
    o.security_id = FixedStr::new(security);
    Message::NewOrder(o)
}

struct Cluster {
    /// None after a crash.
    primary: Option<SiteHandle>,
    backup: SiteHandle,
    witness: twinsite_cluster::Journal<Replica>,
}

async fn until<R>(
    rx: &mut broadcast::Receiver<Activity>,
    mut f: impl FnMut(&Activity) -> Option<R>,
) -> R {
    let deadline = tokio::time::Instant::now() + T;
    loop {
        match tokio::time::timeout_at(deadline, rx.recv()).await {
            Ok(Ok(a)) => {
                if let Some(r) = f(&a) {
                    return r;
                }
            }
            Ok(Err(broadcast::error::RecvError::Lagged(_))) => {}
            _ => panic!("the expected activity never came"),
        }
    }
}

async fn wait_active(rx: &mut broadcast::Receiver<Activity>) -> bool {
    until(rx, |a| match a {
        Activity::SiteActive { failover, .. } => Some(*failover),
        _ => None,
    })
    .await
}

async fn cluster(failover: FailoverSection) -> Cluster {
    let mut listeners = BTreeMap::new();
    let mut addrs = BTreeMap::new();
    for r in [NodeRole::Primary, NodeRole::Backup, NodeRole::Witness] {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        addrs.insert(r, l.local_addr().unwrap());
        listeners.insert(r, l);
    }
    let jc = |r| JournalConfig::new(r, addrs.clone(), Durability::Memory);
    let (primary, feed) = gateway::start_node(
        node_config("primary", failover.clone()),
        Site::Primary,
        jc(NodeRole::Primary),
        listeners.remove(&NodeRole::Primary),
    )
    .await
    .unwrap();
    std::mem::forget(feed);
    let mut prx = primary.subscribe();
    let (backup, feed) = gateway::start_node(
        node_config("backup", failover.clone()),
        Site::Backup,
        jc(NodeRole::Backup),
        listeners.remove(&NodeRole::Backup),
    )
    .await
    .unwrap();
    std::mem::forget(feed);
    let witness = gateway::start_witness(
        &node_config("witness", failover),
        jc(NodeRole::Witness),
        listeners.remove(&NodeRole::Witness),
    )
    .await
    .unwrap();
    let j = primary.journal().unwrap().clone();
    let leader = j.wait_for_leader(T).await.unwrap();
    if leader != NodeRole::Primary {
        let from = match leader {
            NodeRole::Backup => backup.journal().unwrap().clone(),
            _ => witness.clone(),
        };
        from.transfer_leadership(NodeRole::Primary).await.unwrap();
    }
    let failover = wait_active(&mut prx).await;
    assert!(
        !failover,
        "the first activation of the day is not a failover"
    );
    Cluster {
        primary: Some(primary),
        backup,
        witness,
    }
}

/// Fail over to the backup site (scheduled, or by killing the primary); returns once it is
/// active.
async fn fail_over(c: &mut Cluster, crash: bool) {
    let mut brx = c.backup.subscribe();
    if crash {
        c.primary.take().unwrap().crash().await;
    } else {
        c.primary
            .as_ref()
            .unwrap()
            .journal()
            .unwrap()
            .transfer_leadership(NodeRole::Backup)
            .await
            .unwrap();
    }
    assert!(
        wait_active(&mut brx).await,
        "the backup opens after a failover"
    );
}

/// The three nodes hold the same state at the backup's commit index.
async fn same_state_everywhere(c: &Cluster) -> u64 {
    let j = c.backup.journal().unwrap().clone();
    let idx = j.commit_index();
    j.wait_applied(idx, T).await.unwrap();
    c.witness.wait_applied(idx, T).await.unwrap();
    let h = j.state_hash_at(idx);
    assert!(h.is_some());
    assert_eq!(
        h,
        c.witness.state_hash_at(idx),
        "backup vs witness at {idx}"
    );
    if let Some(p) = &c.primary {
        let p = p.journal().unwrap().clone();
        p.wait_applied(idx, T).await.unwrap();
        assert_eq!(h, p.state_hash_at(idx), "backup vs old primary at {idx}");
    }
    idx
}

fn client(comp: &str, lookups: Vec<SocketAddr>) -> ClientHandle {
    let key = gateway::load_key(&key_path()).unwrap();
    let mut cfg = ClientConfig::new(
        CompId::new(comp).unwrap(),
        PASSWORD,
        rsa::RsaPublicKey::from(&key),
        lookups,
    );
    cfg.reconnect_wait_ns = 50_000_000;
    cfg.lookup_backoff_ns = 50_000_000;
    cfg.timers.heartbeat_interval_ns = 1_000_000_000;
    cfg.logon_reply_timeout_ns = 2_000_000_000;
    cfg.logon_retry_wait_ns = 100_000_000;
    ClientHandle::spawn(cfg, ClientState::default())
}

fn er(t: ExecType) -> impl FnMut(&ClientEvent) -> Option<(bool, ExecutionReport)> {
    move |e| match e {
        ClientEvent::Message {
            poss_resend,
            message,
            ..
        } => match message.as_ref() {
            Message::ExecutionReport(r) if r.exec_type == Some(t) => {
                Some((*poss_resend, r.clone()))
            }
            _ => None,
        },
        _ => None,
    }
}

fn logged_on(e: &ClientEvent) -> Option<u32> {
    match e {
        ClientEvent::LoggedOn { next_expected } => Some(*next_expected),
        _ => None,
    }
}

/// One cluster at a time: two would compete for the CI's two cores.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

async fn orders_cancel(crash: bool) {
    let _one = SERIAL.lock().await;
    let mut c = cluster(FailoverSection {
        orders: OrdersOnFailover::Cancel,
        ..Default::default()
    })
    .await;
    let primary = c.primary.as_ref().unwrap();
    let ladder = |f: fn(&SiteHandle) -> &Vec<SocketAddr>| {
        [f(primary).clone(), f(&c.backup).clone()].concat()
    };
    let mut ep = client("CO0001", ladder(|s| &s.lookup_addrs));
    let mut cc = client("CC0003", ladder(|s| &s.csc_lookup_addrs));
    ep.wait_for(T, logged_on).await.unwrap();
    cc.wait_for(T, logged_on).await.unwrap();

    // Resting at the primary: two HK orders and an A-share order, all acknowledged (the
    // first activation purged nothing).
    for (cl, px) in [("1", "65.20"), ("2", "65.10")] {
        ep.send(order_in("5", cl, 1001, Side::Buy, px, 400))
            .await
            .unwrap();
        ep.wait_for(T, er(ExecType::New)).await.unwrap();
    }
    cc.send(order_in("600519", "B1", 3003, Side::Buy, "1500.00", 100))
        .await
        .unwrap();
    cc.wait_for(T, er(ExecType::New)).await.unwrap();
    assert_eq!(primary.state_hash().await.unwrap().1, 3);

    fail_over(&mut c, crash).await;
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
        let ((poss_resend, r), _) = ep.wait_for(T, er(ExecType::Cancel)).await.unwrap();
        assert!(poss_resend, "generated while the participant was away");
        assert_eq!(r.ord_status, Some(OrdStatus::Cancelled));
        assert_eq!(r.exec_restatement_reason, Some(107));
        assert_eq!(r.orig_cl_ord_id, None, "unsolicited: no OrigClOrdID");
        cancelled.push(r.cl_ord_id.unwrap().as_str().to_string());
    }
    cancelled.sort();
    assert_eq!(cancelled, ["1", "2"]);
    cc.wait_for(T, logged_on).await.unwrap();
    let ((_, r), _) = cc.wait_for(T, er(ExecType::Cancel)).await.unwrap();
    assert_eq!(r.cl_ord_id, Some(FixedStr::new("B1")));
    assert_eq!(r.exec_restatement_reason, Some(107));

    // Trading continues at the backup, and a new order is not purged again.
    ep.send(order_in("5", "3", 1001, Side::Buy, "65.20", 400))
        .await
        .unwrap();
    ep.wait_for(T, er(ExecType::New)).await.unwrap();
    assert_eq!(c.backup.state_hash().await.unwrap().1, 1);

    // Every node applied the same purge: same state hash at the same index.
    same_state_everywhere(&c).await;
    let live = c.witness.read(|r| r.exchange.live_orders()).to_owned();
    assert_eq!(live, 1);

    ep.abort();
    cc.abort();
    c.backup.shutdown();
    if let Some(p) = c.primary {
        p.shutdown();
    }
    c.witness.shutdown().await;
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
    let mut c = cluster(FailoverSection {
        sequence: SequenceOnFailover::Reset,
        reset_to: Some(AGREED),
        ..Default::default()
    })
    .await;

    // A day's session at the primary: an order, acknowledged (outbound 2), still resting.
    let primary = c.primary.as_ref().unwrap();
    let mut ep = Raw::logon(primary.gateway_primary, "CO0001").await;
    ep.send(order_in("5", "1", 1001, Side::Buy, "65.20", 400))
        .await;
    ep.expect_er(ExecType::New).await;
    let cc = Raw::logon(primary.csc_gateway_primary.unwrap(), "CC0003").await;

    fail_over(&mut c, false).await;
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
    same_state_everywhere(&c).await;
    let (in_next, evicted) = c.witness.read(|r| {
        let d = &r.sessions[&CompId::new("CC0003").unwrap()];
        (d.in_next, d.outbound.evicted_through)
    });
    assert_eq!(in_next, AGREED + 1);
    assert_eq!(evicted, AGREED - 1);

    c.backup.shutdown();
    if let Some(p) = c.primary {
        p.shutdown();
    }
    c.witness.shutdown().await;
}
