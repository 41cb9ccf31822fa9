//! Scorecards from synthetic activity: a good participant passes; faulty ones fail for the
//! right reason; the report files are written.

use std::net::SocketAddr;
use std::path::PathBuf;
use twinsite_core::{CompId, ParticipantKind, Site, Timestamp};
use twinsite_drill::report::Report;
use twinsite_drill::session::Session;
use twinsite_drill::*;
use twinsite_ocg::{ExecType, ExecutionReport, Message, NewOrder};
use twinsite_site::feed::FeedActivity;
use twinsite_site::gateway::Activity;

fn session() -> Session {
    Session::load(
        &PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../sessions/ps2-2023-11-25.toml"),
    )
    .unwrap()
}

const W0: u64 = 1_700_000_000;

/// Wall time `s` seconds (and `ms` milliseconds) after the drill started.
fn t(s: u64, ms: u64) -> Timestamp {
    Timestamp(W0 * 1_000_000_000 + s * 1_000_000_000 + ms * 1_000_000)
}

fn comp(c: &str) -> CompId {
    CompId::new(c).unwrap()
}

fn peer() -> SocketAddr {
    "127.0.0.1:50000".parse().unwrap()
}

fn lookup(c: &str, at: Timestamp) -> Activity {
    Activity::Lookup {
        comp_id: Some(c.into()),
        peer: peer(),
        accepted: true,
        at,
    }
}

fn up(c: &str, conn: u64, at: Timestamp) -> Activity {
    Activity::SessionUp {
        comp_id: comp(c),
        connection: conn,
        sequences: None,
        at,
    }
}

fn down(c: &str, conn: u64, at: Timestamp) -> Activity {
    Activity::SessionDown {
        comp_id: comp(c),
        connection: conn,
        cause: "ConnectionLost".into(),
        at,
    }
}

fn order(c: &str, seq: u32, at: Timestamp) -> Activity {
    Activity::Inbound {
        comp_id: comp(c),
        seq,
        msg_type: NewOrder::MSG_TYPE,
        poss_resend: false,
        at,
    }
}

fn report(c: &str, seq: u32, exec: ExecType, at: Timestamp) -> Activity {
    Activity::Outbound {
        comp_id: comp(c),
        seq,
        message: Box::new(Message::ExecutionReport(ExecutionReport {
            exec_type: Some(exec),
            ..Default::default()
        })),
        at,
    }
}

fn participant(id: &str, kind: ParticipantKind) -> Participant {
    Participant {
        id: id.into(),
        firm: format!("{id} Ltd"),
        kind,
        comp_ids: if kind == ParticipantKind::InformationVendor {
            vec![]
        } else {
            vec![id.into()]
        },
    }
}

/// A compressed PS2 (speed 200: failover at +36 s, backup open at +40 s) with a good EP, one that
/// never re-does the lookup, one that logs on at the backup with sequence number 1, and two
/// vendors, one of which never recovers its image.
fn participants() -> Vec<Participant> {
    vec![
        participant("CB0001", ParticipantKind::Ep),
        participant("CB0002", ParticipantKind::Ep),
        participant("CB0003", ParticipantKind::Ep),
        participant("IV0004", ParticipantKind::InformationVendor),
        participant("IV0005", ParticipantKind::InformationVendor),
        participant("IV0006", ParticipantKind::InformationVendor),
    ]
}

fn exchange() -> ExchangeChecks {
    ExchangeChecks {
        rto_ms: None,
        acked_orders_lost: 0,
        state_hashes_equal: true,
        detail: "hash 0xabc at both sites".into(),
    }
}

fn drill() -> (Report, ActivityLog) {
    let s = session();
    let clock = Clock::new(&s, t(0, 0), 200);
    let mut log = ActivityLog::new(&s, clock, participants());
    first_half(&mut log);
    second_half(&mut log);
    (log.report(&exchange()), log)
}

/// An RTS logon as `user` and one retransmission request served.
fn rts(log: &mut ActivityLog, site: Site, user: &str, conn: u64, at: Timestamp) {
    log.record_feed(
        site,
        &FeedActivity::RtsLogon {
            connection: conn,
            peer: peer(),
            user: Some(user.into()),
            status: 0,
            at,
        },
    );
    log.record_feed(
        site,
        &FeedActivity::RtsRequest {
            connection: conn,
            user: Some(user.into()),
            channel: 1,
            begin: 100,
            end: 104,
            status: 0,
            at,
        },
    );
}

/// Up to the sessions dropping at the failover.
fn first_half(log: &mut ActivityLog) {
    let p = Site::Primary;
    for (i, c) in ["CB0001", "CB0002", "CB0003"].iter().enumerate() {
        let conn = i as u64 + 1;
        log.record(p, &lookup(c, t(1, 0)));
        log.record(p, &up(c, conn, t(1, 10)));
        for k in 0..3u32 {
            log.record(p, &order(c, 2 + k, t(2 + k as u64, 0)));
            log.record(p, &report(c, 2 + k, ExecType::New, t(2 + k as u64, 1)));
        }
        log.record(p, &report(c, 5, ExecType::Trade, t(6, 0)));
    }
    // Someone the exchange does not know.
    log.record(
        p,
        &Activity::Lookup {
            comp_id: Some("XX9999".into()),
            peer: peer(),
            accepted: false,
            at: t(3, 0),
        },
    );
    // The vendors use the primary site's RTS (a logon and a request each).
    for (i, v) in ["IV0004", "IV0005", "IV0006"].iter().enumerate() {
        rts(log, p, v, 10 + i as u64, t(10, 0));
    }
    log.failover_started(t(36, 0));
    for (i, c) in ["CB0001", "CB0002", "CB0003"].iter().enumerate() {
        log.record(p, &down(c, i as u64 + 1, t(36, 5)));
    }
}

/// From the failover on.
fn second_half(log: &mut ActivityLog) {
    let b = Site::Backup;
    // A fill generated for CB0001 while it was away (queued for its next logon).
    log.record(b, &report("CB0001", 6, ExecType::Trade, t(39, 0)));
    log.backup_opened(t(40, 0));
    log.dr_signal_sent(t(40, 0));
    // Good: lookup ladder to the backup, logon with its numbers, trades.
    log.record(b, &lookup("CB0001", t(41, 0)));
    log.record(b, &up("CB0001", 1, t(41, 200)));
    log.record_logon(&LogonDetail {
        comp_id: "CB0001".into(),
        site: b,
        at: t(41, 200),
        logon_seq: 8,
        next_expected: 6,
        exchange_in_next: 8,
        exchange_out_next: 7,
        accepted: true,
        reason: None,
    });
    log.record(b, &order("CB0001", 9, t(42, 0)));
    log.record(b, &report("CB0001", 8, ExecType::New, t(42, 1)));
    // Fresh state: looks up correctly, then logs on with sequence number 1 and is refused.
    log.record(b, &lookup("CB0003", t(41, 500)));
    log.record_logon(&LogonDetail {
        comp_id: "CB0003".into(),
        site: b,
        at: t(41, 600),
        logon_seq: 1,
        next_expected: 1,
        exchange_in_next: 8,
        exchange_out_next: 7,
        accepted: false,
        reason: Some("sequence number lower than expected (received 1, expected 8)".into()),
    });
    // CB0002 keeps knocking on the old gateway: nothing reaches the backup.
    log.market_image_recovered(
        "IV0004",
        t(44, 0),
        "refresh channel 2 snapshot, 31 securities",
    );
    // IV0006 moves to the backup site's RTS after the DR signal; IV0005 ignores the signal and
    // keeps knocking on the primary site's RTS (its connections are refused there).
    rts(log, b, "IV0006", 30, t(43, 0));
}

#[test]
fn a_restart_in_the_middle_loses_no_activity_record() {
    let s = session();
    let path = std::env::temp_dir().join(format!(
        "twinsite-activity-{}-{}.jsonl",
        std::process::id(),
        twinsite_site::gateway::wall_clock().0
    ));
    {
        let mut log =
            ActivityLog::open(&path, &s, Clock::new(&s, t(0, 0), 200), participants()).unwrap();
        first_half(&mut log);
        log.sync().unwrap();
    }
    // The runtime dies in the middle of a write.
    use std::io::Write;
    std::fs::OpenOptions::new()
        .append(true)
        .open(&path)
        .unwrap()
        .write_all(b"{\"record\":\"observed\",\"partic")
        .unwrap();
    // Restarted later, with a clock it would have made afresh: the journalled one wins.
    let mut log =
        ActivityLog::open(&path, &s, Clock::new(&s, t(50, 0), 100), participants()).unwrap();
    assert_eq!(log.clock(), Clock::new(&s, t(0, 0), 200));
    second_half(&mut log);
    let (expected, _) = drill();
    assert_eq!(log.report(&exchange()), expected);
    // And once more, from the file alone.
    let log = ActivityLog::open(&path, &s, Clock::new(&s, t(60, 0), 1), participants()).unwrap();
    assert_eq!(log.report(&exchange()), expected);
}

#[test]
fn good_participant_passes_every_check() {
    let (r, _) = drill();
    let good = r.participant("CB0001").unwrap();
    assert!(good.passed, "{:#?}", good.failed());
    let names: Vec<(&str, &str)> = good
        .checks
        .iter()
        .map(|c| (c.phase.as_str(), c.name.as_str()))
        .collect();
    assert_eq!(
        names,
        [
            ("primary", "logged_in"),
            ("primary", "traded"),
            ("failover", "lookup_after_failover"),
            ("backup", "sequence_numbers"),
            ("backup", "recovered_missed_messages"),
            ("backup", "traded"),
            ("backup", "backup_first_logon"),
            ("backup", "backup_first_order"),
        ]
    );
    assert_eq!(good.backup_first_logon_ms, Some(1_200));
    assert_eq!(good.backup_first_order_ms, Some(2_000));
    assert_eq!(good.primary.accepted, 3);
    assert_eq!(good.primary.fills, 1);
    let rec = good.check("recovered_missed_messages", "backup").unwrap();
    assert!(
        rec.detail.contains("1 messages generated while away"),
        "{}",
        rec.detail
    );
    assert!(rec.detail.contains("replay from 6"), "{}", rec.detail);
    assert!(good
        .check("backup_first_logon", "backup")
        .unwrap()
        .detail
        .contains("240 s of session time"));
}

#[test]
fn no_lookup_after_failover_fails_for_that_reason() {
    let (r, _) = drill();
    let bad = r.participant("CB0002").unwrap();
    assert!(!bad.passed);
    assert!(bad.check("logged_in", "primary").unwrap().passed);
    assert!(bad.check("traded", "primary").unwrap().passed);
    let lk = bad.check("lookup_after_failover", "failover").unwrap();
    assert!(!lk.passed);
    assert!(
        lk.detail.contains("no lookup at the backup site"),
        "{}",
        lk.detail
    );
    assert!(lk.detail.contains("10:00:00"), "{}", lk.detail);
    assert!(!bad.check("traded", "backup").unwrap().passed);
}

#[test]
fn sequence_one_after_failover_fails_for_that_reason() {
    let (r, _) = drill();
    let bad = r.participant("CB0003").unwrap();
    assert!(!bad.passed);
    assert!(
        bad.check("lookup_after_failover", "failover")
            .unwrap()
            .passed
    );
    let seq = bad.check("sequence_numbers", "backup").unwrap();
    assert!(!seq.passed);
    assert!(
        seq.detail.contains("received 1, expected 8"),
        "{}",
        seq.detail
    );
    assert_eq!(bad.backup.refused_logons, 1);
}

#[test]
fn vendors_are_judged_on_the_market_image() {
    let (r, _) = drill();
    let good = r.participant("IV0004").unwrap();
    assert!(good.passed, "{:#?}", good.checks);
    let rts = good.check("rts_primary", "primary").unwrap();
    assert!(rts.detail.contains("1 RTS logons"), "{}", rts.detail);
    let img = good.check("market_image_recovered", "backup").unwrap();
    assert!(img.detail.contains("4000 ms after the DR signal"));
    let by_rts = r.participant("IV0006").unwrap();
    assert!(by_rts.passed, "{:#?}", by_rts.checks);
    let img = by_rts.check("market_image_recovered", "backup").unwrap();
    assert!(
        img.detail.contains("backup site's RTS")
            && img.detail.contains("3000 ms after the DR signal"),
        "{}",
        img.detail
    );
    assert_eq!(by_rts.backup.rts_logons, 1);
    let bad = r.participant("IV0005").unwrap();
    assert!(!bad.passed);
    assert!(bad.check("rts_primary", "primary").unwrap().passed);
    let img = bad.check("market_image_recovered", "backup").unwrap();
    assert!(!img.passed);
    assert!(
        img.detail.contains("DR signal at 10:13:20")
            && img.detail.contains("no RTS logon at the backup site"),
        "{}",
        img.detail
    );
}

#[test]
fn exchange_checks_and_report_files() {
    let (r, log) = drill();
    assert_eq!(r.failover.rto_ms, Some(4_000));
    assert!(r.failover.passed);
    assert_eq!(r.unattributed, 1);
    assert_eq!(log.unattributed().len(), 1);
    let json: serde_json::Value = serde_json::from_str(&r.to_json()).unwrap();
    assert_eq!(json["session"]["name"], r.session.name.as_str());
    assert_eq!(json["session"]["date"], "2023-11-25");
    assert_eq!(json["session"]["speed"], 200);
    assert_eq!(json["failover"]["mode"], "scheduled");
    assert_eq!(json["failover"]["rto_ms"], 4000);
    assert_eq!(json["failover"]["acked_orders_lost"], 0);
    assert_eq!(json["failover"]["state_hashes_equal"], true);
    let ps = json["participants"].as_array().unwrap();
    assert_eq!(ps.len(), 6);
    for p in ps {
        for k in ["id", "kind", "passed", "checks"] {
            assert!(!p[k].is_null(), "{k} missing in {p}");
        }
        for c in p["checks"].as_array().unwrap() {
            for k in ["name", "phase", "passed", "detail"] {
                assert!(!c[k].is_null(), "{k} missing in {c}");
            }
        }
    }
    let html = r.to_html();
    assert!(html.contains("<svg"));
    assert!(html.contains("backup open"));
    assert!(html.contains("CB0002"));
    let csv = r.to_csv();
    assert!(csv.starts_with("id,firm,kind,passed,phase,check,check_passed,detail\n"));
    assert_eq!(csv.lines().count(), 1 + 8 * 3 + 2 * 3);
    let table = r.summary_table();
    assert!(table.contains("CB0002") && table.contains("FAIL"));
    let dir = std::env::temp_dir().join(format!("twinsite-report-{}", std::process::id()));
    let files = r.write(&dir).unwrap();
    assert_eq!(files.len(), 3);
    for f in files {
        assert!(std::fs::metadata(f).unwrap().len() > 100);
    }
}

#[test]
fn a_refused_logon_is_the_participants_evidence_and_an_otp_csc_logon_counts_like_an_otp_c_one() {
    let s = session();
    let clock = Clock::new(&s, t(0, 0), 200);
    let mut ps = participants();
    ps.push(participant("SB0007", ParticipantKind::Ccep));
    let mut log = ActivityLog::new(&s, clock, ps);
    // Logons closed on OTP-CSC (Session Status 7), then an accepted logon and an order.
    log.record(
        Site::Primary,
        &Activity::Refused {
            comp_id: Some(comp("SB0007")),
            peer: peer(),
            platform: twinsite_core::Platform::OtpCsc,
            reason: "logons are closed on OTP-CSC (session status 7)".into(),
            at: t(1, 0),
        },
    );
    // An unknown Comp ID's refusal is noted, not attributed.
    log.record(
        Site::Primary,
        &Activity::Refused {
            comp_id: Some(comp("XX9999")),
            peer: peer(),
            platform: twinsite_core::Platform::OtpC,
            reason: "unknown".into(),
            at: t(1, 0),
        },
    );
    log.record(Site::Primary, &lookup("SB0007", t(2, 0)));
    log.record(Site::Primary, &up("SB0007", 70, t(2, 100)));
    log.record(Site::Primary, &order("SB0007", 2, t(3, 0)));
    log.record(Site::Primary, &report("SB0007", 2, ExecType::New, t(3, 10)));
    let obs = log.observations("SB0007");
    let refused: Vec<String> = obs
        .iter()
        .filter_map(|o| match &o.what {
            twinsite_drill::activity::What::LogonRefused { reason } => Some(reason.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(
        refused,
        vec!["OTP-CSC: logons are closed on OTP-CSC (session status 7)".to_string()]
    );
    assert!(log
        .unattributed()
        .iter()
        .any(|(_, _, n)| n.contains("OTP-C refused") && n.contains("XX9999")));
    let r = log.report(&exchange());
    let p = r.participant("SB0007").unwrap();
    assert!(p.check("logged_in", "primary").unwrap().passed);
    assert!(p.check("traded", "primary").unwrap().passed);
}

/// A vendor that logged on to the backup site's RTS but was served nothing: the evidence says
/// whether its requests were refused (and why) or whether it asked for nothing.
#[test]
fn a_vendor_logged_on_at_the_backup_but_served_nothing_is_told_why() {
    let s = session();
    let clock = Clock::new(&s, t(0, 0), 200);
    let mut log = ActivityLog::new(&s, clock, participants());
    let b = Site::Backup;
    log.failover_started(t(36, 0));
    log.backup_opened(t(40, 0));
    log.dr_signal_sent(t(40, 0));
    let logon = |log: &mut ActivityLog, user: &str, conn: u64, at: Timestamp| {
        log.record_feed(
            b,
            &FeedActivity::RtsLogon {
                connection: conn,
                peer: peer(),
                user: Some(user.into()),
                status: 0,
                at,
            },
        )
    };
    // IV0005 asks for messages the backup site does not hold (RetransStatus 2).
    logon(&mut log, "IV0005", 40, t(40, 500));
    log.record_feed(
        b,
        &FeedActivity::RtsRequest {
            connection: 40,
            user: Some("IV0005".into()),
            channel: 1,
            begin: 9000,
            end: 9004,
            status: 2,
            at: t(41, 0),
        },
    );
    // IV0006 logs on and asks for nothing.
    logon(&mut log, "IV0006", 41, t(40, 250));
    let r = log.report(&exchange());
    let refused = r.participant("IV0005").unwrap();
    let img = refused.check("market_image_recovered", "backup").unwrap();
    assert!(!img.passed);
    assert!(
        img.detail.contains("1 RTS logons at the backup site")
            && img.detail.contains("500 ms after the DR signal")
            && img
                .detail
                .contains("1 requests refused: channel 1 9000-9004")
            && img
                .detail
                .contains("RetransStatus 2 (messages not available)"),
        "{}",
        img.detail
    );
    let idle = r.participant("IV0006").unwrap();
    let img = idle.check("market_image_recovered", "backup").unwrap();
    assert!(!img.passed);
    assert!(
        img.detail.contains("250 ms after the DR signal")
            && img.detail.contains("it asked for no retransmission there"),
        "{}",
        img.detail
    );
}
