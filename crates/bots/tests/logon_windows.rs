//! Phase ends close the logon windows: after the last phase of PS2 ends, a participant's
//! session is logged out (the service shutdown) and its next logon is refused with Session
//! Status 7, which the activity log keeps as the participant's `LogonRefused` evidence.

use std::time::Duration;
use tokio::sync::broadcast;
use twinsite_bots::*;
use twinsite_core::Site;
use twinsite_drill::activity::What;
use twinsite_drill::registry::participant_entries;
use twinsite_drill::{logon_windows, ActivityLog, Clock, LogonWindows, Participant, StepKind};
use twinsite_site::gateway::{self, load_key, Activity, AdminCmd, SiteHandle};

mod common;
use common::*;

const T: Duration = Duration::from_secs(20);

/// What the runtime does with a step's windows (as `twinsite run` / `demo` do).
fn apply(site: &SiteHandle, w: &LogonWindows) {
    for &(platform, allowed) in &w.platforms {
        site.admin(AdminCmd::LogonsAllowedOn { platform, allowed });
    }
    if w.logout {
        site.admin(AdminCmd::LogoutAll);
    }
}

/// Record every site record into the log until `f` accepts one (bounded).
async fn record_until(
    rx: &mut broadcast::Receiver<Activity>,
    log: &mut ActivityLog,
    seen: &mut Vec<String>,
    mut f: impl FnMut(&Activity) -> bool,
) {
    let deadline = tokio::time::Instant::now() + T;
    loop {
        match tokio::time::timeout_at(deadline, rx.recv()).await {
            Ok(Ok(a)) => {
                log.record(Site::Backup, &a);
                seen.push(format!("{a:?}"));
                if f(&a) {
                    return;
                }
            }
            Ok(Err(broadcast::error::RecvError::Lagged(n))) => {
                log.record_lagged(Site::Backup, gateway::wall_clock(), n)
            }
            other => panic!("no matching activity: {other:?}; saw {seen:#?}"),
        }
    }
}

#[tokio::test]
async fn after_the_last_phase_ends_a_logon_is_refused_with_status_7() {
    let s = session();
    let regs = register(&[("Late Securities", 1101)]);
    let comp = regs[0].id();
    let (site, _feed) = gateway::start(site_config("backup", participant_entries(&regs)))
        .await
        .unwrap();
    let mut rx = site.subscribe();
    let clock = Clock::new(&s, gateway::wall_clock(), 200);
    let mut log = ActivityLog::new(
        &s,
        clock,
        regs.iter().map(Participant::from).collect::<Vec<_>>(),
    );
    let steps = clock.steps(&s);
    let window = |f: &dyn Fn(&StepKind) -> bool| {
        let st = steps.iter().find(|st| f(&st.kind)).unwrap();
        logon_windows(&s, st).unwrap()
    };
    // The backup phase is open: the participant logs on.
    let open = window(&|k| matches!(k, StepKind::PhaseStart { phase } if phase == "backup"));
    assert!(open.any_open() && !open.logout);
    apply(&site, &open);
    let key = load_key(&key_path()).unwrap();
    let lookups = vec![
        site.lookup_addrs[0],
        site.lookup_addrs[1],
        closed_port().await,
        closed_port().await,
    ];
    let bot = spawn(
        BotConfig::from_registration(
            &regs[0],
            rsa::RsaPublicKey::from(&key),
            lookups,
            Role::MarketMaker,
        )
        .unwrap()
        .with_speed(200, Duration::from_secs(1))
        .with_interval(Duration::from_millis(40)),
    )
    .await
    .unwrap();
    let mut seen = Vec::new();
    record_until(
        &mut rx,
        &mut log,
        &mut seen,
        |a| matches!(a, Activity::SessionUp { comp_id, .. } if comp_id.as_str() == comp),
    )
    .await;

    // The last phase ends with nothing after it: every platform closes and the session still
    // logged on is logged out.
    let end = window(&|k| matches!(k, StepKind::PhaseEnd { phase } if phase == "backup"));
    assert!(!end.any_open() && end.logout, "{end:?}");
    apply(&site, &end);
    record_until(
        &mut rx,
        &mut log,
        &mut seen,
        |a| matches!(a, Activity::SessionDown { comp_id, .. } if comp_id.as_str() == comp),
    )
    .await;
    // The bot comes back (its reconnect ladder) and is refused: Session Status 7.
    record_until(
        &mut rx,
        &mut log,
        &mut seen,
        |a| matches!(a, Activity::Refused { comp_id: Some(c), .. } if c.as_str() == comp),
    )
    .await;
    let c = bot.counters();
    assert!(!c.logged_on, "{c:?}");
    bot.abort();

    let refused: Vec<String> = log
        .observations(&regs[0].id())
        .iter()
        .filter(|o| o.site == Site::Backup)
        .filter_map(|o| match &o.what {
            What::LogonRefused { reason } => Some(reason.clone()),
            _ => None,
        })
        .collect();
    assert!(!refused.is_empty(), "{seen:#?}");
    assert!(
        refused[0].starts_with("OTP-C: ") && refused[0].contains("Session Status 7"),
        "{refused:?}"
    );
    let r = log.report(&twinsite_drill::ExchangeChecks {
        rto_ms: None,
        acked_orders_lost: 0,
        state_hashes_equal: true,
        detail: String::new(),
    });
    let p = r.participant(&regs[0].id()).unwrap();
    assert!(p.backup.refused_logons >= 1, "{:?}", p.backup);
    let seq = p.check("sequence_numbers", "backup").unwrap();
    assert!(seq.detail.contains("Session Status 7"), "{seq:?}");
    site.shutdown();
}
