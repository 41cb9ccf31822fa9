//! Two sites and a witness: participants trade at the primary site, the exchange fails over to
//! the backup site (scheduled, then by a crash), participants find the backup through the lookup
//! service, continue their sessions with the replay they are owed, and nothing acknowledged is
//! lost.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};
use tokio::net::TcpListener;
use twinsite_cluster::{Durability, JournalConfig, NodeRole};
use twinsite_core::{CompId, Price, Qty, Site};
use twinsite_ocg::client::{ClientConfig, ClientState};
use twinsite_ocg::*;
use twinsite_site::client::{ClientEvent, ClientHandle};
use twinsite_site::config::*;
use twinsite_site::gateway::{self, load_key, Activity, SiteHandle};

const T: Duration = Duration::from_secs(30);

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
        cancel_on_disconnect_ms: Some(100),
        must_change_password: false,
        protocol: Default::default(),
    }
}

fn site_config(name: &str) -> SiteConfig {
    let any: SocketAddr = "127.0.0.1:0".parse().unwrap();
    SiteConfig {
        site: SiteSection {
            name: name.into(),
            lookup: vec![any, any],
            gateway_primary: any,
            gateway_mirror: any,
            advertise_host: None,
            keys: vec![key_path()],
            reference_data: None,
            active: false,
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
        participants: vec![
            participant("Alpha", "CO0001", 1001),
            participant("Beta", "CO0002", 1002),
        ],
        failover: FailoverSection::default(),
    }
}

struct Cluster {
    primary: Option<SiteHandle>,
    backup: SiteHandle,
    witness: twinsite_cluster::Journal<twinsite_site::replica::Replica>,
    lookups: Vec<SocketAddr>,
}

async fn wait_active(site: &SiteHandle, rx: &mut tokio::sync::broadcast::Receiver<Activity>) {
    let deadline = Instant::now() + T;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, rx.recv()).await {
            Ok(Ok(Activity::SiteActive { .. })) => return,
            Ok(Ok(_)) | Ok(Err(tokio::sync::broadcast::error::RecvError::Lagged(_))) => {}
            _ => panic!("site {:?} never became active", site.gateway_primary),
        }
    }
}

async fn cluster() -> Cluster {
    let mut listeners = BTreeMap::new();
    let mut addrs = BTreeMap::new();
    for r in [NodeRole::Primary, NodeRole::Backup, NodeRole::Witness] {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        addrs.insert(r, l.local_addr().unwrap());
        listeners.insert(r, l);
    }
    let jc = |r| JournalConfig::new(r, addrs.clone(), Durability::Memory);
    let (primary, _) = gateway::start_node(
        site_config("primary"),
        Site::Primary,
        jc(NodeRole::Primary),
        listeners.remove(&NodeRole::Primary),
    )
    .await
    .unwrap();
    let mut prx = primary.subscribe();
    let (backup, _) = gateway::start_node(
        site_config("backup"),
        Site::Backup,
        jc(NodeRole::Backup),
        listeners.remove(&NodeRole::Backup),
    )
    .await
    .unwrap();
    let witness = gateway::start_witness(
        &site_config("witness"),
        jc(NodeRole::Witness),
        listeners.remove(&NodeRole::Witness),
    )
    .await
    .unwrap();
    // The primary site leads at the start of the day.
    let j = primary.journal().unwrap().clone();
    let leader = j.wait_for_leader(T).await.unwrap();
    if leader != NodeRole::Primary {
        let from = match leader {
            NodeRole::Backup => backup.journal().unwrap().clone(),
            _ => witness.clone(),
        };
        from.transfer_leadership(NodeRole::Primary).await.unwrap();
    }
    wait_active(&primary, &mut prx).await;
    let lookups = vec![
        primary.lookup_addrs[0],
        primary.lookup_addrs[1],
        backup.lookup_addrs[0],
        backup.lookup_addrs[1],
    ];
    Cluster {
        primary: Some(primary),
        backup,
        witness,
        lookups,
    }
}

fn client(comp: &str, lookups: Vec<SocketAddr>) -> ClientHandle {
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
    cfg.logon_reply_timeout_ns = 2_000_000_000;
    cfg.logon_retry_wait_ns = 100_000_000;
    ClientHandle::spawn(cfg, ClientState::default())
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

fn er_of(t: ExecType) -> impl FnMut(&ClientEvent) -> Option<(u32, bool, ExecutionReport)> {
    move |e| match e {
        ClientEvent::Message {
            seq,
            poss_resend,
            message,
            ..
        } => match message.as_ref() {
            Message::ExecutionReport(r) if r.exec_type == Some(t) => {
                Some((*seq, *poss_resend, r.clone()))
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

/// One cluster at a time: the two tests would otherwise compete for the CI's two cores.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// The whole drill in one test: trade at the primary, scheduled failover, trade at the backup.
async fn run_failover(crash: bool) {
    let _one_at_a_time = SERIAL.lock().await;
    let mut c = cluster().await;
    let mut a = client("CO0001", c.lookups.clone());
    let mut b = client("CO0002", c.lookups.clone());
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
    let mut brx = c.backup.subscribe();
    let started = Instant::now();
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
    wait_active(&c.backup, &mut brx).await;
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

    // The backup and the witness hold the same state.
    let j = c.backup.journal().unwrap().clone();
    let idx = j.commit_index();
    j.wait_applied(idx, T).await.unwrap();
    c.witness.wait_applied(idx, T).await.unwrap();
    assert_eq!(
        j.state_hash_at(idx),
        c.witness.state_hash_at(idx),
        "state hashes at index {idx}"
    );
    let live_orders = c.backup.state_hash().await.unwrap().1;
    assert_eq!(live_orders, 0, "all of A's orders traded at the backup");

    a.abort();
    b.abort();
    c.backup.shutdown();
    if let Some(p) = c.primary {
        p.shutdown();
    }
    c.witness.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scheduled_failover_keeps_sessions_and_every_acknowledged_order() {
    run_failover(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crash_of_the_primary_site_loses_no_acknowledged_order() {
    run_failover(true).await;
}
