//! Reference participants against real sites: a market maker and a taker trade; the faulty bots
//! misbehave the way they should, and the scorecards say so.

use std::net::SocketAddr;
use std::time::Duration;
use tokio::sync::broadcast;
use twinsite_bots::*;
use twinsite_core::Site;
use twinsite_drill::registry::{participant_entries, Registration};
use twinsite_drill::{ActivityLog, Clock, ExchangeChecks, Participant};
use twinsite_site::gateway::{self, load_key, Activity, SiteHandle};

mod common;
use common::*;

const T: Duration = Duration::from_secs(20);

fn bot(reg: &Registration, lookups: &[SocketAddr], role: Role, fault: Fault) -> BotConfig {
    let key = load_key(&key_path()).unwrap();
    BotConfig::from_registration(reg, rsa::RsaPublicKey::from(&key), lookups.to_vec(), role)
        .unwrap()
        .with_speed(200, Duration::from_secs(1))
        .with_interval(Duration::from_millis(40))
        .with_fault(fault)
}

/// Everything the site reported so far.
fn drain(rx: &mut broadcast::Receiver<Activity>) -> Vec<Activity> {
    let mut v = Vec::new();
    while let Ok(a) = rx.try_recv() {
        v.push(a);
    }
    v
}

/// Wait (bounded) for an activity record `f` accepts; every record seen is kept in `seen`.
async fn wait_activity(
    rx: &mut broadcast::Receiver<Activity>,
    seen: &mut Vec<Activity>,
    mut f: impl FnMut(&Activity) -> bool,
) -> Activity {
    let deadline = tokio::time::Instant::now() + T;
    loop {
        match tokio::time::timeout_at(deadline, rx.recv()).await {
            Ok(Ok(a)) => {
                seen.push(a.clone());
                if f(&a) {
                    return a;
                }
            }
            Ok(Err(broadcast::error::RecvError::Lagged(_))) => {}
            other => panic!("no matching activity: {other:?}; saw {seen:?}"),
        }
    }
}

async fn start(name: &str, regs: &[Registration]) -> SiteHandle {
    let (site, _feed) = gateway::start(site_config(name, participant_entries(regs)))
        .await
        .unwrap();
    site
}

#[tokio::test]
async fn maker_and_taker_trade_on_one_site() {
    let regs = register(&[("Maker Securities", 1001), ("Taker Securities", 1002)]);
    let site = start("primary", &regs).await;
    let mut activity = site.subscribe();
    let lookups = [
        site.lookup_addrs[0],
        site.lookup_addrs[1],
        closed_port().await,
        closed_port().await,
    ];
    let maker = spawn(bot(&regs[0], &lookups, Role::MarketMaker, Fault::None))
        .await
        .unwrap();
    let taker = spawn(bot(&regs[1], &lookups, Role::Taker, Fault::None))
        .await
        .unwrap();
    let m = maker.wait_until(T, |c| c.fills >= 3).await.unwrap();
    let t = taker.wait_until(T, |c| c.fills >= 3).await.unwrap();
    assert_eq!(m.logons, 1);
    assert!(m.acks >= 3, "{m:?}");
    assert_eq!(m.rejects, 0, "{m:?}");
    assert!(t.orders_sent >= 3, "{t:?}");
    let m = maker.stop().await;
    let t = taker.stop().await;
    assert!(!m.logged_on && !t.logged_on);

    // The exchange's view gives both a passing primary-site scorecard.
    let s = session();
    let mut log = ActivityLog::new(
        &s,
        Clock::new(&s, gateway::wall_clock(), 200),
        regs.iter().map(Participant::from).collect(),
    );
    for a in drain(&mut activity) {
        log.record(Site::Primary, &a);
    }
    let r = log.report(&ExchangeChecks::default());
    for reg in &regs {
        let p = r.participant(&reg.id()).unwrap();
        for name in ["logged_in", "traded"] {
            let c = p.check(name, "primary").unwrap();
            assert!(c.passed, "{}: {c:?}", reg.firm);
        }
        assert!(p.primary.fills >= 3, "{p:?}");
    }
    site.shutdown();
}

#[tokio::test]
async fn fresh_sequence_bot_is_refused_after_its_session_drops() {
    let regs = register(&[("Good Securities", 2001), ("Amnesia Securities", 2002)]);
    let site = start("primary", &regs).await;
    let mut activity = site.subscribe();
    let lookups = [
        site.lookup_addrs[0],
        site.lookup_addrs[1],
        closed_port().await,
        closed_port().await,
    ];
    let good = spawn(bot(&regs[0], &lookups, Role::MarketMaker, Fault::None))
        .await
        .unwrap();
    let bad = spawn(bot(
        &regs[1],
        &lookups,
        Role::Taker,
        Fault::FreshSequenceAfterFailover,
    ))
    .await
    .unwrap();
    good.wait_until(T, |c| c.acks >= 2).await.unwrap();
    bad.wait_until(T, |c| c.orders_sent >= 2).await.unwrap();

    good.drop_connection();
    bad.drop_connection();
    // The good bot comes back on the same session with its numbers.
    good.wait_until(T, |c| c.logons >= 2 && c.logged_on)
        .await
        .unwrap();
    // The faulty one restarts with sequence 1 and the gateway refuses it.
    bad.wait_until(T, |c| c.fresh_restarts >= 1).await.unwrap();
    let mut seen = Vec::new();
    let refused = wait_activity(
        &mut activity,
        &mut seen,
        |a| matches!(a, Activity::Disconnected { reason, .. } if reason.contains("SequenceTooLow")),
    )
    .await;
    let Activity::Disconnected { reason, .. } = refused else {
        unreachable!()
    };
    assert!(reason.contains("received: 1"), "{reason}");
    let bad_comp = regs[1].comp_ids[0].comp_id.as_str();
    let ups = seen
        .iter()
        .filter(
            |a| matches!(a, Activity::SessionUp { comp_id, .. } if comp_id.as_str() == bad_comp),
        )
        .count();
    assert_eq!(
        ups, 1,
        "only the first logon of the faulty bot was accepted"
    );
    assert_eq!(bad.counters().logons, 1);
    good.stop().await;
    bad.abort();
    site.shutdown();
}

#[tokio::test]
async fn no_lookup_bot_never_reaches_the_backup_site() {
    let regs = register(&[("Ladder Securities", 3001), ("Cached Securities", 3002)]);
    let primary = start("primary", &regs).await;
    // A second, independent site standing in for the backup (no replication here: only its
    // Lookup Service matters to this test).
    let backup = start("backup", &regs).await;
    let mut p_act = primary.subscribe();
    let mut b_act = backup.subscribe();
    let lookups = [
        primary.lookup_addrs[0],
        primary.lookup_addrs[1],
        backup.lookup_addrs[0],
        backup.lookup_addrs[1],
    ];
    let good = spawn(bot(&regs[0], &lookups, Role::MarketMaker, Fault::None))
        .await
        .unwrap();
    let bad = spawn(bot(
        &regs[1],
        &lookups,
        Role::Taker,
        Fault::NoLookupAfterFailover,
    ))
    .await
    .unwrap();
    good.wait_until(T, |c| c.acks >= 1).await.unwrap();
    let before = bad.wait_until(T, |c| c.orders_sent >= 1).await.unwrap();
    let old_gateway = before.last_gateway.unwrap();
    assert_eq!(old_gateway, primary.gateway_primary);

    // The primary site dies.
    let s = session();
    let mut log = ActivityLog::new(
        &s,
        Clock::new(&s, gateway::wall_clock(), 200),
        regs.iter().map(Participant::from).collect(),
    );
    for a in drain(&mut p_act) {
        log.record(Site::Primary, &a);
    }
    log.failover_started(gateway::wall_clock());
    primary.shutdown();
    log.backup_opened(gateway::wall_clock());

    // The good bot walks the ladder to the backup site's Lookup Service.
    let good_comp = regs[0].comp_ids[0].comp_id.clone();
    let bad_comp = regs[1].comp_ids[0].comp_id.clone();
    let mut seen = Vec::new();
    wait_activity(&mut b_act, &mut seen, |a| {
        matches!(a, Activity::Lookup { comp_id: Some(c), accepted: true, .. } if *c == good_comp)
    })
    .await;
    // The faulty one keeps dialling the dead gateways it was given at 08:00 (several rounds).
    let after = bad
        .wait_until(T, |c| {
            c.trading_connects >= before.trading_connects + 4 && c.sessions_lost >= 1
        })
        .await
        .unwrap();
    assert!(after.lookup_connects > before.lookup_connects, "{after:?}");
    seen.extend(drain(&mut b_act));
    assert!(
        !seen
            .iter()
            .any(|a| matches!(a, Activity::Lookup { comp_id: Some(c), .. } if *c == bad_comp)),
        "the faulty bot must never reach the backup's Lookup Service: {seen:?}"
    );
    for a in &seen {
        log.record(Site::Backup, a);
    }
    let r = log.report(&ExchangeChecks::default());
    let g = r.participant(&regs[0].id()).unwrap();
    assert!(g.check("lookup_after_failover", "failover").unwrap().passed);
    let b = r.participant(&regs[1].id()).unwrap();
    let c = b.check("lookup_after_failover", "failover").unwrap();
    assert!(!c.passed);
    assert!(
        c.detail.contains("no lookup at the backup site"),
        "{}",
        c.detail
    );
    assert!(b.check("logged_in", "primary").unwrap().passed);
    good.abort();
    bad.abort();
    backup.shutdown();
}
