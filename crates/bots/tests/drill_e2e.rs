//! A compressed practice session against the real two-site runtime (primary, backup, witness):
//! good bots and faulty bots trade at the primary site, the exchange fails over, and the
//! scorecards computed from the exchange's activity records pass the good ones and fail the
//! faulty ones for the right reason. With market data (PS2): the sites publish OMD-C and OMD-CC
//! on loopback multicast, two information vendors recover gaps through the RTS, and only the
//! one that follows the DR signal to the backup site's RTS passes.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;
use tokio::sync::{broadcast, mpsc};
use twinsite_bots::*;
use twinsite_cluster::{Durability, JournalConfig, NodeRole};
use twinsite_core::ParticipantKind;
use twinsite_core::{Site, Timestamp};
use twinsite_drill::registry::{
    participant_entries, rts_usernames, Registration, RegistrationRequest, Registry,
};
use twinsite_drill::session::Session;
use twinsite_drill::{ActivityLog, Clock, ExchangeChecks, Participant};
use twinsite_site::config::*;
use twinsite_site::feed::{self, FeedActivity};
use twinsite_site::gateway::{self, load_key, wall_clock, Activity};

const T: Duration = Duration::from_secs(30);
const SPEED: u64 = 200;

fn key_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../site/tests/data/test-key.pem")
}

/// PS2 (scheduled failover) and the post-release test (crash failover).
const SESSIONS: [&str; 2] = ["ps2-2023-11-25.toml", "post-release-test.toml"];

fn session(file: &str) -> Session {
    Session::load(
        &PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("../../sessions")
            .join(file),
    )
    .unwrap()
}

/// The FIX EPs: maker, taker, and the amnesiac (MsgSeqNum 1 at the backup).
const FIX_FIRMS: [(&str, u32); 3] = [
    ("FIX Maker Securities", 1101),
    ("FIX Taker Securities", 1102),
    ("FIX Amnesia Securities", 1103),
];

fn by_firm<'a>(regs: &'a [Registration], firm: &str) -> &'a Registration {
    regs.iter().find(|r| r.firm == firm).unwrap()
}

fn register(file: &str) -> Vec<Registration> {
    let dir = std::env::temp_dir().join(format!(
        "twinsite-e2e-{}-{}",
        std::process::id(),
        wall_clock().0
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let mut r = Registry::open(&dir.join("reg.jsonl"), &session(file)).unwrap();
    for (firm, broker) in [
        ("Maker Securities", 1001),
        ("Taker Securities", 1002),
        ("Cached Lookup Securities", 1003),
        ("Amnesia Securities", 1004),
    ] {
        r.register(
            RegistrationRequest {
                firm: firm.into(),
                kind: "EP".into(),
                broker_ids: vec![broker],
                contact: "desk".into(),
                source_ips: vec![],
                protocols: vec![],
            },
            Timestamp::from_hkt(2023, 11, 20, 9, 0, 0),
        )
        .unwrap();
    }
    // FIX: a market maker, a taker and one that logs on at the backup with MsgSeqNum 1.
    for (firm, broker) in FIX_FIRMS {
        r.register(
            RegistrationRequest {
                firm: firm.into(),
                kind: "EP".into(),
                broker_ids: vec![broker],
                contact: "desk".into(),
                source_ips: vec![],
                protocols: vec!["fix".into()],
            },
            Timestamp::from_hkt(2023, 11, 20, 9, 0, 0),
        )
        .unwrap();
    }
    // China Connect: a market maker and a taker on OTP-CSC (when the session admits CCEPs).
    if session(file).access.contains_key(&ParticipantKind::Ccep) {
        for (firm, broker) in [("Northbound Maker", 3001), ("Northbound Taker", 3002)] {
            r.register(
                RegistrationRequest {
                    firm: firm.into(),
                    kind: "CCEP".into(),
                    broker_ids: vec![broker],
                    contact: "desk".into(),
                    source_ips: vec![],
                    protocols: vec![],
                },
                Timestamp::from_hkt(2023, 11, 20, 9, 0, 0),
            )
            .unwrap();
        }
    }
    if session(file)
        .access
        .contains_key(&ParticipantKind::InformationVendor)
    {
        for firm in ["Vendor Data", "Deaf Vendor Data"] {
            r.register(
                RegistrationRequest {
                    firm: firm.into(),
                    kind: "IV".into(),
                    broker_ids: vec![],
                    contact: "feeds".into(),
                    source_ips: vec![],
                    protocols: vec![],
                },
                Timestamp::from_hkt(2023, 11, 20, 9, 0, 0),
            )
            .unwrap();
        }
    }
    r.registrations().to_vec()
}

fn site_config(name: &str, participants: Vec<ParticipantEntry>) -> SiteConfig {
    let mut cfg: SiteConfig = toml::from_str(&format!(
        r#"
        [site]
        name = "{name}"
        lookup = ["127.0.0.1:0", "127.0.0.1:0"]
        gateway_primary = "127.0.0.1:0"
        gateway_mirror = "127.0.0.1:0"
        fix_gateway = "127.0.0.1:0"
        keys = [{key:?}]
        active = false

        [session]
        heartbeat_ms = 1000
        password_tolerance_secs = 120
        throttle = true
        "#,
        key = key_path().display().to_string()
    ))
    .unwrap();
    cfg.participants = participants;
    // OTP-CSC: its own lookup service and gateway pair; the CCEPs' holdings of the A-shares
    // they trade (northbound sells are checked against them).
    let any: std::net::SocketAddr = "127.0.0.1:0".parse().unwrap();
    cfg.site.csc_lookup = vec![any, any];
    cfg.site.csc_gateway_primary = Some(any);
    cfg.site.csc_gateway_mirror = Some(any);
    cfg.engine.cc_holdings = ccep_holdings()
        .into_iter()
        .flat_map(|(broker, h)| {
            h.into_iter().map(move |(security, shares)| HoldingEntry {
                broker,
                security,
                shares,
            })
        })
        .collect();
    cfg
}

/// The A-share the CCEP bots trade.
fn ccep_instruments() -> Vec<Instrument> {
    a_share_instruments(1)
}

/// Each CCEP broker's holdings of the CCEP bots' A-shares.
fn ccep_holdings() -> BTreeMap<u32, BTreeMap<u32, u64>> {
    [3001, 3002]
        .into_iter()
        .map(|b| {
            (
                b,
                ccep_instruments()
                    .iter()
                    .map(|i| (i.code, 1_000_000))
                    .collect(),
            )
        })
        .collect()
}

async fn wait_active(rx: &mut broadcast::Receiver<Activity>) {
    let deadline = tokio::time::Instant::now() + T;
    loop {
        match tokio::time::timeout_at(deadline, rx.recv()).await {
            Ok(Ok(Activity::SiteActive { .. })) => return,
            Ok(Ok(_)) | Ok(Err(broadcast::error::RecvError::Lagged(_))) => {}
            other => panic!("site never became active: {other:?}"),
        }
    }
}

/// Forward a site's activity, tagged with the site, to one channel.
fn forward(
    site: Site,
    mut rx: broadcast::Receiver<Activity>,
    tx: mpsc::UnboundedSender<(Site, Result<Activity, u64>)>,
) {
    tokio::spawn(async move {
        loop {
            match rx.recv().await {
                Ok(a) => {
                    if tx.send((site, Ok(a))).is_err() {
                        return;
                    }
                }
                Err(broadcast::error::RecvError::Lagged(n)) => {
                    let _ = tx.send((site, Err(n)));
                }
                Err(broadcast::error::RecvError::Closed) => return,
            }
        }
    });
}

fn pump(log: &mut ActivityLog, rx: &mut mpsc::UnboundedReceiver<(Site, Result<Activity, u64>)>) {
    while let Ok((site, a)) = rx.try_recv() {
        match a {
            Ok(a) => log.record(site, &a),
            Err(n) => log.record_lagged(site, wall_clock(), n),
        }
    }
}

/// Forward a feed's RTS and DR records, tagged with the site.
fn forward_feed(
    site: Site,
    feed: &feed::FeedHandle,
    tx: mpsc::UnboundedSender<(Site, FeedActivity)>,
) {
    let mut rx = feed.subscribe();
    tokio::spawn(async move {
        loop {
            match rx.recv().await {
                Ok(a) => {
                    if tx.send((site, a)).is_err() {
                        return;
                    }
                }
                Err(broadcast::error::RecvError::Lagged(_)) => {}
                Err(broadcast::error::RecvError::Closed) => return,
            }
        }
    });
}

/// Record feed activity until `done(log)` holds (bounded).
async fn feed_until(
    log: &mut ActivityLog,
    rx: &mut mpsc::UnboundedReceiver<(Site, FeedActivity)>,
    what: &str,
    mut done: impl FnMut(&ActivityLog) -> bool,
) {
    let deadline = tokio::time::Instant::now() + T;
    loop {
        while let Ok((site, a)) = rx.try_recv() {
            log.record_feed(site, &a);
        }
        if done(log) {
            return;
        }
        match tokio::time::timeout_at(deadline, rx.recv()).await {
            Ok(Some((site, a))) => log.record_feed(site, &a),
            _ => panic!("timed out waiting for {what}"),
        }
    }
}

/// The session's channels on loopback multicast, every group on one free port (parallel tests
/// never mix their feeds), the RTS on a free port.
fn market_data(s: &Session) -> MarketDataSection {
    let port = std::net::UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let at = |a: std::net::SocketAddr| std::net::SocketAddr::new(a.ip(), port);
    MarketDataSection {
        interface: "127.0.0.1".parse().unwrap(),
        rts: "127.0.0.1:0".parse().unwrap(),
        channels: s
            .market_data
            .channels
            .iter()
            .map(|c| ChannelEntry {
                id: c.id,
                product: c.product.clone(),
                line_a: at(c.line_a),
                line_b: at(c.line_b),
            })
            .collect(),
        pcap: None,
    }
}

/// An RTS request served at `site` for participant `id`.
fn rts_served(log: &ActivityLog, id: &str, site: Site, after: Option<Timestamp>) -> bool {
    log.observations(id).iter().any(|o| {
        o.site == site
            && after.is_none_or(|t| o.at >= t)
            && matches!(
                o.what,
                twinsite_drill::activity::What::RtsRequest { status: 0, .. }
            )
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scheduled_failover_scorecards() {
    failover_scorecards(false, false).await;
}

// The same with two information vendors on the sites' OMD-C / OMD-CC feeds: the one following
// the DR signal passes, the one ignoring it fails `market_image_recovered`. (It was ignored while
// a leading node whose activation gave up under load left its site closed; the site now retries.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scheduled_failover_with_vendors_scorecards() {
    failover_scorecards(false, true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crash_failover_scorecards() {
    failover_scorecards(true, false).await;
}

/// The drills run one at a time: each starts three nodes and fourteen participants, and side by
/// side on a small machine they starve each other's raft and protocol timers.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

async fn failover_scorecards(crash: bool, with_vendors: bool) {
    let _one = ONE_AT_A_TIME.lock().await;
    let regs = register(SESSIONS[crash as usize]);
    let entries = participant_entries(&regs);
    let (addrs, mut listeners) = twinsite_cluster::loopback_listeners().await.unwrap();
    let jc = |r| JournalConfig::new(r, addrs.clone(), Durability::Memory);
    let s = session(SESSIONS[crash as usize]);
    let vendors: Vec<&Registration> = regs
        .iter()
        .filter(|r| r.kind == ParticipantKind::InformationVendor)
        .filter(|_| with_vendors)
        .collect();
    let md = market_data(&s);
    let users = rts_usernames(&regs);
    let (primary, pfeed_rx) = gateway::start_node(
        site_config("primary", entries.clone()),
        Site::Primary,
        jc(NodeRole::Primary),
        listeners.remove(&NodeRole::Primary),
    )
    .await
    .unwrap();
    let pfeed = feed::run_feed(md.clone(), users.clone(), pfeed_rx)
        .await
        .unwrap();
    let mut prx = primary.subscribe();
    let (backup, bfeed_rx) = gateway::start_node(
        site_config("backup", entries.clone()),
        Site::Backup,
        jc(NodeRole::Backup),
        listeners.remove(&NodeRole::Backup),
    )
    .await
    .unwrap();
    let bfeed = feed::run_feed(md.clone(), users, bfeed_rx).await.unwrap();
    let witness = gateway::start_witness(
        &site_config("witness", entries.clone()),
        jc(NodeRole::Witness),
        listeners.remove(&NodeRole::Witness),
    )
    .await
    .unwrap();
    let leader = primary.journal().unwrap().wait_for_leader(T).await.unwrap();
    if leader != NodeRole::Primary {
        let from = match leader {
            NodeRole::Backup => backup.journal().unwrap().clone(),
            _ => witness.clone(),
        };
        from.transfer_leadership(NodeRole::Primary).await.unwrap();
    }
    wait_active(&mut prx).await;

    // The drill starts now, compressed.
    let mut log = ActivityLog::new(
        &s,
        Clock::new(&s, wall_clock(), SPEED),
        regs.iter().map(Participant::from).collect(),
    );
    let (tx, mut rx) = mpsc::unbounded_channel();
    forward(Site::Primary, primary.subscribe(), tx.clone());
    forward(Site::Backup, backup.subscribe(), tx.clone());
    let (ftx, mut frx) = mpsc::unbounded_channel();
    forward_feed(Site::Primary, &pfeed, ftx.clone());
    forward_feed(Site::Backup, &bfeed, ftx);
    let mut brx = backup.subscribe();

    let lookups = vec![
        primary.lookup_addrs[0],
        primary.lookup_addrs[1],
        backup.lookup_addrs[0],
        backup.lookup_addrs[1],
    ];
    let key = rsa::RsaPublicKey::from(&load_key(&key_path()).unwrap());
    let cfg = |i: usize, role, fault| {
        BotConfig::from_registration(&regs[i], key.clone(), lookups.clone(), role)
            .unwrap()
            .with_speed(SPEED, Duration::from_secs(1))
            .with_interval(Duration::from_millis(40))
            .with_fault(fault)
    };
    let maker = spawn(cfg(0, Role::MarketMaker, Fault::None)).await.unwrap();
    let taker = spawn(cfg(1, Role::Taker, Fault::None)).await.unwrap();
    let cached = spawn(cfg(2, Role::Taker, Fault::NoLookupAfterFailover))
        .await
        .unwrap();
    let amnesia = spawn(cfg(3, Role::Taker, Fault::FreshSequenceAfterFailover))
        .await
        .unwrap();
    // FIX EPs: the same strategies over FIX, through the same lookup endpoints (Protocol
    // Type 2).
    let fix_cfg = |firm: &str, role, fault| {
        BotConfig::from_registration_for(
            by_firm(&regs, firm),
            twinsite_bots::Protocol::Fix,
            key.clone(),
            lookups.clone(),
            role,
        )
        .unwrap()
        .with_speed(SPEED, Duration::from_secs(1))
        .with_interval(Duration::from_millis(80))
        .with_fault(fault)
    };
    let fix_maker = spawn(fix_cfg(FIX_FIRMS[0].0, Role::MarketMaker, Fault::None))
        .await
        .unwrap();
    let fix_taker = spawn(fix_cfg(FIX_FIRMS[1].0, Role::Taker, Fault::None))
        .await
        .unwrap();
    let fix_amnesia = spawn(fix_cfg(
        FIX_FIRMS[2].0,
        Role::Taker,
        Fault::FreshSequenceAfterFailover,
    ))
    .await
    .unwrap();
    // CCEPs: the same client rules on OTP-CSC, through the four CSC lookup endpoints.
    let csc_lookups = vec![
        primary.csc_lookup_addrs[0],
        primary.csc_lookup_addrs[1],
        backup.csc_lookup_addrs[0],
        backup.csc_lookup_addrs[1],
    ];
    let cceps: Vec<&Registration> = regs
        .iter()
        .filter(|r| r.kind == ParticipantKind::Ccep)
        .collect();
    let holdings = ccep_holdings();
    let mut cc_bots = Vec::new();
    for (r, role) in cceps.iter().zip([Role::MarketMaker, Role::Taker]) {
        let c = BotConfig::from_registration(r, key.clone(), csc_lookups.clone(), role)
            .unwrap()
            .with_speed(SPEED, Duration::from_secs(1))
            .with_interval(Duration::from_millis(40))
            .china_connect(ccep_instruments(), holdings[&r.broker_ids[0]].clone());
        cc_bots.push(spawn(c).await.unwrap());
    }
    // Vendors: one follows the DR signal, one ignores it.
    let rts = vec![pfeed.rts_addr, bfeed.rts_addr];
    let mut ivs = Vec::new();
    for (v, fault) in vendors
        .iter()
        .zip([VendorFault::None, VendorFault::IgnoreDrSignal])
    {
        let c = VendorConfig::new(&v.firm, &v.id(), md.clone(), rts.clone())
            .with_fault(fault)
            .with_gap_every(Some(Duration::from_millis(300)));
        ivs.push(spawn_vendor(c).await.unwrap());
    }
    // Every bot trades at the primary site: the maker gets fills; each taker at least has orders
    // accepted (three takers compete for the maker's quotes, so one may see no fill for a while
    // on a loaded machine; the scorecard's "traded" counts accepted orders and fills).
    maker.wait_until(T, |c| c.fills >= 1).await.unwrap();
    fix_maker.wait_until(T, |c| c.fills >= 1).await.unwrap();
    for b in [&taker, &cached, &amnesia, &fix_taker, &fix_amnesia] {
        b.wait_until(T, |c| c.acks >= 1).await.unwrap();
    }
    for b in &cc_bots {
        b.wait_until(T, |c| c.acks >= 1 && c.fills >= 1)
            .await
            .unwrap();
    }
    // Each vendor has had a gap filled by the primary site's RTS, as the exchange saw it.
    for v in &vendors {
        let id = v.id();
        feed_until(
            &mut log,
            &mut frx,
            &format!("{id}: RTS at the primary"),
            |l| rts_served(l, &id, Site::Primary, None),
        )
        .await;
    }

    // Failover to the backup site: scheduled, or the primary site dies.
    log.failover_started(wall_clock());
    let mut primary = Some(primary);
    let mut pfeed = Some(pfeed);
    if crash {
        primary.take().unwrap().crash().await;
        // The primary site's feed and RTS die with it.
        pfeed.take().unwrap().shutdown();
    } else {
        primary
            .as_ref()
            .unwrap()
            .journal()
            .unwrap()
            .transfer_leadership(NodeRole::Backup)
            .await
            .unwrap();
    }
    wait_active(&mut brx).await;
    let opened = wall_clock();
    log.backup_opened(opened);

    // The good bots come back at the backup and trade there.
    let m0 = maker.counters();
    let t0 = taker.counters();
    let back = maker
        .wait_until(T, |c| c.logons >= 2 && c.logged_on && c.acks > m0.acks)
        .await
        .and(
            taker
                .wait_until(T, |c| c.logons >= 2 && c.logged_on && c.fills > t0.fills)
                .await,
        );
    if let Err(e) = back {
        // Say what the exchange saw at the backup site before failing.
        pump(&mut log, &mut rx);
        let seen: Vec<String> = [&regs[0], &regs[1]]
            .iter()
            .map(|r| {
                let obs = log.observations(&r.id());
                let at_backup = obs.iter().filter(|o| o.site == Site::Backup).count();
                let backup: Vec<String> = obs
                    .iter()
                    .filter(|o| o.site == Site::Backup)
                    .map(|o| format!("{} {:?}", o.at.millis(), o.what))
                    .collect();
                format!("{}: {at_backup} records at the backup: {backup:#?}", r.id())
            })
            .collect();
        panic!(
            "{e}\nexchange view: {seen:#?}\nunattributed: {:#?}",
            log.unattributed()
        );
    }
    // The FIX bots too: a new lookup, a logon with their next MsgSeqNum, orders.
    for b in [&fix_maker, &fix_taker] {
        let c0 = b.counters();
        b.wait_until(T, |c| c.logons >= 2 && c.logged_on && c.acks > c0.acks)
            .await
            .unwrap();
    }
    fix_amnesia
        .wait_until(T, |c| c.fresh_restarts >= 1 && c.lookup_connects >= 2)
        .await
        .unwrap();
    // The CCEPs come back through the CSC lookup at the backup and trade there.
    for b in &cc_bots {
        let c0 = b.counters();
        b.wait_until(T, |c| c.logons >= 2 && c.logged_on && c.acks > c0.acks)
            .await
            .unwrap();
    }
    // The faulty ones misbehave: the cached one dials the old gateway several times, the
    // amnesiac one restarts with fresh state.
    let c0 = cached.counters();
    cached
        .wait_until(T, |c| {
            c.sessions_lost >= 1 && c.trading_connects >= c0.trading_connects + 3
        })
        .await
        .unwrap();
    amnesia
        .wait_until(T, |c| c.fresh_restarts >= 1 && c.lookup_connects >= 2)
        .await
        .unwrap();
    // Wait until the backup has refused the amnesiac's logon (sequence too low).
    let deadline = tokio::time::Instant::now() + T;
    loop {
        pump(&mut log, &mut rx);
        let refused = |what: &str| {
            log.unattributed()
                .iter()
                .any(|(site, _, n)| *site == Site::Backup && n.contains(what))
        };
        let fix_refused = log
            .observations(&by_firm(&regs, FIX_FIRMS[2].0).id())
            .iter()
            .any(|o| {
                o.site == Site::Backup
                    && matches!(&o.what, twinsite_drill::activity::What::LogonRefused { reason }
                        if reason.contains("MsgSeqNum too low"))
            });
        if refused("SequenceTooLow") && fix_refused {
            break;
        }
        let (site, a) = tokio::time::timeout_at(deadline, rx.recv())
            .await
            .expect("the backup refused the sequence-1 logon")
            .unwrap();
        match a {
            Ok(a) => log.record(site, &a),
            Err(n) => log.record_lagged(site, wall_clock(), n),
        }
    }

    // The good vendor follows the DR signal to the backup site's RTS; the deaf one does not
    // (it rebuilds from refresh and keeps asking the primary site).
    if let (Some(good), Some(deaf)) = (vendors.first(), ivs.get(1)) {
        let id = good.id();
        feed_until(
            &mut log,
            &mut frx,
            &format!("{id}: RTS at the backup"),
            |l| rts_served(l, &id, Site::Backup, Some(opened)),
        )
        .await;
        let d0 = deaf.counters();
        deaf.wait_until(T, |c| {
            c.event("refreshed") > d0.event("refreshed")
                && c.event("retransmission") > d0.event("retransmission")
        })
        .await
        .unwrap();
        assert_eq!(
            deaf.counters().rts_site,
            0,
            "the deaf vendor never switched"
        );
        assert_eq!(ivs[0].counters().rts_site, 1);
    }

    // Exchange checks: backup and witness hold the same state.
    let j = backup.journal().unwrap().clone();
    let idx = j.commit_index();
    j.wait_applied(idx, T).await.unwrap();
    witness.wait_applied(idx, T).await.unwrap();
    let equal = j.state_hash_at(idx) == witness.state_hash_at(idx);
    for b in [
        maker,
        taker,
        cached,
        amnesia,
        fix_maker,
        fix_taker,
        fix_amnesia,
    ] {
        b.abort();
    }
    for b in cc_bots {
        b.abort();
    }
    for v in ivs {
        v.abort();
    }
    pump(&mut log, &mut rx);
    while let Ok((site, a)) = frx.try_recv() {
        log.record_feed(site, &a);
    }
    let r = log.report(&ExchangeChecks {
        rto_ms: None,
        acked_orders_lost: 0,
        state_hashes_equal: equal,
        detail: format!("backup and witness state hashes at index {idx}"),
    });
    eprintln!("{}", r.summary_table());

    assert!(r.failover.rto_ms.is_some());
    let mode = if crash { "Crash" } else { "Scheduled" };
    assert_eq!(format!("{:?}", r.failover.mode), mode);
    assert!(r.failover.state_hashes_equal);
    for id in [
        &regs[0],
        &regs[1],
        by_firm(&regs, FIX_FIRMS[0].0),
        by_firm(&regs, FIX_FIRMS[1].0),
    ] {
        let p = r.participant(&id.id()).unwrap();
        assert!(p.passed, "{} should pass: {:#?}", id.firm, p.failed());
    }
    // The FIX ones are scored under their FIX Comp IDs, from the FIX gateway's records.
    let fm = r.participant(&by_firm(&regs, FIX_FIRMS[0].0).id()).unwrap();
    assert!(fm.id.starts_with("CF"), "{}", fm.id);
    assert!(fm.primary.orders > 0 && fm.backup.orders > 0 && fm.primary.fills > 0);
    // Both transports' logons at the backup are recorded with the sequence numbers presented.
    for p in [fm, r.participant(&regs[0].id()).unwrap()] {
        let seq = p.check("sequence_numbers", "backup").unwrap();
        assert!(seq.detail.contains("logon sequence "), "{seq:?}");
    }
    assert!(
        fm.check("lookup_after_failover", "failover")
            .unwrap()
            .passed
    );
    let fa = r.participant(&by_firm(&regs, FIX_FIRMS[2].0).id()).unwrap();
    assert!(!fa.passed);
    assert!(fa.check("logged_in", "primary").unwrap().passed);
    assert!(fa.check("traded", "primary").unwrap().passed);
    assert!(
        fa.check("lookup_after_failover", "failover")
            .unwrap()
            .passed
    );
    let seq = fa.check("sequence_numbers", "backup").unwrap();
    assert!(!seq.passed, "{seq:?}");
    assert!(
        seq.detail.contains("no logon accepted at the backup site"),
        "{seq:?}"
    );
    // The evidence says why: the Logon's MsgSeqNum 1 against the number the exchange expected.
    assert!(
        seq.detail.contains("FIX logon refused: MsgSeqNum too low")
            && seq.detail.contains("received 1"),
        "{seq:?}"
    );
    for id in &cceps {
        let p = r.participant(&id.id()).unwrap();
        assert!(p.passed, "{} should pass: {:#?}", id.firm, p.failed());
        assert!(p.check("logged_in", "primary").unwrap().passed);
        assert!(p.check("traded", "backup").unwrap().passed);
    }
    let c = r.participant(&regs[2].id()).unwrap();
    assert!(!c.passed);
    assert!(c.check("logged_in", "primary").unwrap().passed);
    assert!(c.check("traded", "primary").unwrap().passed);
    let lk = c.check("lookup_after_failover", "failover").unwrap();
    assert!(!lk.passed, "{lk:?}");
    assert!(!c.check("traded", "backup").unwrap().passed);

    let a = r.participant(&regs[3].id()).unwrap();
    assert!(!a.passed);
    assert!(a.check("logged_in", "primary").unwrap().passed);
    assert!(
        a.check("lookup_after_failover", "failover").unwrap().passed,
        "it did re-do the lookup"
    );
    let seq = a.check("sequence_numbers", "backup").unwrap();
    assert!(!seq.passed, "{seq:?}");
    assert!(
        seq.detail.contains("no logon accepted at the backup site"),
        "{seq:?}"
    );

    if let [good, deaf] = vendors[..] {
        let g = r.participant(&good.id()).unwrap();
        assert!(g.passed, "{} should pass: {:#?}", good.firm, g.checks);
        assert!(r.failover.dr_signal_wall_ms.is_some());
        let d = r.participant(&deaf.id()).unwrap();
        assert!(!d.passed);
        assert!(d.check("rts_primary", "primary").unwrap().passed);
        let img = d.check("market_image_recovered", "backup").unwrap();
        assert!(!img.passed);
        assert!(
            img.detail.contains("no RTS logon at the backup site"),
            "{img:?}"
        );
    }

    let dir = std::env::temp_dir().join(format!("twinsite-e2e-report-{}", std::process::id()));
    r.write(&dir).unwrap();
    if let Some(p) = primary {
        p.shutdown();
    }
    backup.shutdown();
    if let Some(f) = pfeed {
        f.shutdown();
    }
    bfeed.shutdown();
    witness.shutdown().await;
}
