//! Session files: the shipped sessions load; malformed files and impossible schedules are refused
//! with the line of the problem.

use std::path::PathBuf;
use twinsite_core::{ParticipantKind, Platform, Site, Timestamp};
use twinsite_drill::session::*;
use twinsite_drill::{Clock, StepKind};

fn sessions_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../sessions")
}

fn ps2_text() -> String {
    std::fs::read_to_string(sessions_dir().join("ps2-2023-11-25.toml")).unwrap()
}

#[test]
fn ps2_reproduces_the_circular() {
    let s = Session::load(&sessions_dir().join("ps2-2023-11-25.toml")).unwrap();
    assert_eq!(s.date.to_string(), "2023-11-25");
    assert_eq!(s.time_zone.name(), "Asia/Hong_Kong");
    let ids: Vec<&str> = s.phases.iter().map(|p| p.id.as_str()).collect();
    assert_eq!(ids, ["primary", "failover", "backup"]);
    // 08:00 HKT = 00:00 UTC.
    assert_eq!(s.start(), Timestamp::from_hkt(2023, 11, 25, 8, 0, 0));
    assert_eq!(s.phases[0].end, Timestamp::from_hkt(2023, 11, 25, 10, 0, 0));
    assert_eq!(s.phases[2].start_label, "~11:00");
    assert_eq!(s.end(), Timestamp::from_hkt(2023, 11, 25, 12, 10, 0));
    assert_eq!(s.failover.at, Timestamp::from_hkt(2023, 11, 25, 10, 0, 0));
    assert_eq!(s.failover.mode, FailoverMode::Scheduled);
    assert_eq!(s.failover.orders, OrderSurvival::Keep);
    assert_eq!(s.failover.sequence, SequenceMode::Continue);
    assert!(s.registration_deadline < s.start());
    assert_eq!(
        s.registration_deadline,
        Timestamp::from_hkt(2023, 11, 22, 23, 59, 59)
    );
    assert!(s.may_log_in(ParticipantKind::Ep, Platform::OtpC));
    assert!(!s.may_log_in(ParticipantKind::Ep, Platform::OtpCsc));
    assert!(s.may_log_in(ParticipantKind::Ccep, Platform::OtpCsc));
    assert!(!s.may_log_in(ParticipantKind::Ccep, Platform::OtpC));
    let at = |h, m| Timestamp::from_hkt(2023, 11, 25, h, m, 0);
    assert_eq!(s.serving_site(at(9, 0)), Some(Site::Primary));
    assert_eq!(s.serving_site(at(10, 30)), None);
    assert_eq!(s.serving_site(at(11, 30)), Some(Site::Backup));
    assert!(!s.logons_allowed(ParticipantKind::Ep, Platform::OtpC, at(10, 30)));
    assert!(s.logons_allowed(ParticipantKind::Ep, Platform::OtpC, at(11, 30)));
    assert!(!s.logons_allowed(ParticipantKind::Ep, Platform::OtpC, at(12, 30)));
    assert_eq!(s.failover_phase().unwrap().id, "failover");
    assert_eq!(s.lookup.len(), 4);
    assert!(s.market_data.channels.iter().any(|c| c.product == "dr"));
}

#[test]
fn post_release_test_loads() {
    let s = Session::load(&sessions_dir().join("post-release-test.toml")).unwrap();
    assert_eq!(s.failover.mode, FailoverMode::Crash);
    assert_eq!(s.failover.orders, OrderSurvival::Cancel);
    assert!(!s.access.contains_key(&ParticipantKind::Ccep));
}

fn err(text: &str) -> SessionError {
    Session::parse("test.toml", text).unwrap_err()
}

fn line_of(text: &str, needle: &str) -> usize {
    text.lines().position(|l| l.contains(needle)).unwrap() + 1
}

#[test]
fn malformed_toml_names_the_line() {
    let text = ps2_text().replace("end = \"10:00\"", "end = \"10:00");
    let e = err(&text);
    assert_eq!(e.file, "test.toml");
    assert_eq!(e.line, Some(line_of(&text, "end = \"10:00")), "{e}");
    assert!(e.to_string().starts_with("test.toml:"), "{e}");
}

#[test]
fn unknown_field_names_the_line() {
    let text = ps2_text().replace(
        "mode = \"scheduled\"",
        "mode = \"scheduled\"\ncolour = \"red\"",
    );
    let e = err(&text);
    assert_eq!(e.line, Some(line_of(&text, "colour")), "{e}");
    assert!(e.message.contains("colour"), "{e}");
}

#[test]
fn bad_enum_value_names_the_line() {
    let text = ps2_text().replace("orders = \"keep\"", "orders = \"maybe\"");
    let e = err(&text);
    assert_eq!(e.line, Some(line_of(&text, "orders = \"maybe\"")), "{e}");
}

#[test]
fn overlapping_phases_are_refused() {
    let text = ps2_text().replace("start = \"~11:00\"", "start = \"10:30\"");
    let e = err(&text);
    assert!(e.message.contains("overlap"), "{e}");
    assert_eq!(e.line, Some(line_of(&text, "start = \"10:30\"")), "{e}");
}

#[test]
fn end_before_start_is_refused() {
    let text = ps2_text().replace("end = \"12:10\"", "end = \"10:45\"");
    let e = err(&text);
    assert!(e.message.contains("must be after the start"), "{e}");
    assert_eq!(e.line, Some(line_of(&text, "end = \"10:45\"")), "{e}");
}

#[test]
fn failover_outside_the_session_is_refused() {
    let text = ps2_text().replace("at = \"10:00\"", "at = \"13:00\"");
    let e = err(&text);
    assert!(e.message.contains("outside the session"), "{e}");
    assert_eq!(e.line, Some(line_of(&text, "at = \"13:00\"")), "{e}");
}

#[test]
fn failover_while_the_primary_site_serves_is_refused() {
    let text = ps2_text().replace("at = \"10:00\"", "at = \"09:00\"");
    let e = err(&text);
    assert!(e.message.contains("primary"), "{e}");
}

#[test]
fn deadline_after_start_is_refused() {
    let text = ps2_text().replace(
        "registration_deadline = \"2023-11-22\"",
        "registration_deadline = \"2023-11-25 09:00\"",
    );
    let e = err(&text);
    assert!(e.message.contains("not before the session starts"), "{e}");
    assert_eq!(e.line, Some(line_of(&text, "registration_deadline")), "{e}");
}

#[test]
fn bad_time_and_zone_and_access_are_refused() {
    let e = err(&ps2_text().replace("start = \"08:00\"", "start = \"8 o'clock\""));
    assert!(e.message.contains("HH:MM"), "{e}");
    let e = err(&ps2_text().replace(
        "time_zone = \"Asia/Hong_Kong\"",
        "time_zone = \"Hong Kong\"",
    ));
    assert!(e.message.contains("IANA"), "{e}");
    let e = err(&ps2_text().replace("CCEP = [\"OTP-CSC\"]", "CCEP = [\"OTP-C\"]"));
    assert!(e.message.contains("may not log in to OTP-C"), "{e}");
    let e = err(&ps2_text().replace("\"127.0.0.1:27002\"]", "]"));
    assert!(e.message.contains("4 Lookup Service endpoints"), "{e}");
}

#[test]
fn clock_compresses_the_schedule() {
    let s = Session::parse("ps2", &ps2_text()).unwrap();
    let wall0 = Timestamp::from_secs(1_000_000);
    let speed = Clock::speed_to_fit(&s, 75);
    assert_eq!(speed, 200); // 4 h 10 min in 75 s
    let c = Clock::new(&s, wall0, speed);
    assert_eq!(c.wall(s.start()), wall0);
    assert_eq!(c.wall(s.end()), Timestamp::from_secs(1_000_075));
    assert_eq!(
        c.session_time(Timestamp::from_secs(1_000_036)),
        s.failover.at
    );
    assert_eq!(c.to_wall_ns(20_000_000_000), 100_000_000); // a 20 s heartbeat becomes 100 ms
    let steps = c.steps(&s);
    assert_eq!(
        steps.first().unwrap().kind,
        StepKind::PhaseStart {
            phase: "primary".into()
        }
    );
    assert_eq!(steps.last().unwrap().kind, StepKind::SessionEnd);
    let fo = steps.iter().find(|x| x.kind == StepKind::Failover).unwrap();
    assert_eq!(fo.wall, Timestamp::from_secs(1_000_036));
    // Due steps: each once, in order.
    let a = c.due(&s, None, Timestamp::from_secs(1_000_000));
    assert_eq!(a.len(), 1);
    let b = c.due(
        &s,
        Some(Timestamp::from_secs(1_000_000)),
        Timestamp::from_secs(1_000_036),
    );
    let kinds: Vec<_> = b.iter().map(|x| x.kind.clone()).collect();
    assert_eq!(
        kinds,
        [
            StepKind::PhaseEnd {
                phase: "primary".into()
            },
            StepKind::Failover,
            StepKind::PhaseStart {
                phase: "failover".into()
            },
        ]
    );
    assert_eq!(
        c.phase_at(&s, Timestamp::from_secs(1_000_050)).unwrap().id,
        "failover"
    );
    assert_eq!(c.label(&s, Timestamp::from_secs(1_000_036)), "10:00:00");
}

#[test]
fn schedule_actions_open_close_fail_over_and_end() {
    use twinsite_drill::{actions, Action};
    let s = Session::parse("ps2", &ps2_text()).unwrap();
    let c = Clock::new(&s, Timestamp::from_secs(1_000_000), 200);
    let plan: Vec<Action> = c.steps(&s).iter().flat_map(|st| actions(&s, st)).collect();
    assert_eq!(
        plan,
        [
            Action::Open {
                site: Site::Primary
            },
            Action::Close {
                site: Site::Primary
            },
            Action::Failover,
            Action::Open { site: Site::Backup },
            Action::Close { site: Site::Backup },
            Action::End,
        ]
    );
}

#[test]
fn phase_ends_close_the_logon_windows_when_no_phase_starts_then() {
    use twinsite_drill::{logon_windows, LogonWindows};
    let s = Session::parse("ps2", &ps2_text()).unwrap();
    let c = Clock::new(&s, Timestamp::from_secs(1_000_000), 200);
    let plan: Vec<(String, Option<LogonWindows>)> = c
        .steps(&s)
        .iter()
        .map(|st| (format!("{:?}", st.kind), logon_windows(&s, st)))
        .collect();
    let open = |c: bool, csc: bool, logout: bool| {
        Some(LogonWindows {
            platforms: vec![(Platform::OtpC, c), (Platform::OtpCsc, csc)],
            logout,
        })
    };
    let expect: Vec<Option<LogonWindows>> = vec![
        open(true, true, false),   // primary starts (EPs on OTP-C, CCEPs on OTP-CSC)
        None,                      // primary ends: the failover phase starts then
        None,                      // the failover step itself
        open(false, false, false), // failover phase: nobody logs on
        None,                      // failover phase ends: the backup phase starts then
        open(true, true, false),   // backup starts
        open(false, false, true),  // backup ends, nothing follows: closed, sessions logged out
        None,                      // session end
    ];
    assert_eq!(
        plan.iter().map(|(_, w)| w.clone()).collect::<Vec<_>>(),
        expect,
        "{plan:#?}"
    );

    // A gap between phases closes the windows; sessions already logged on stay (the service
    // runs on). `logout_at_end = false` keeps them at the end too.
    let gap = ps2_text()
        .replace("end = \"10:00\"", "end = \"09:30\"")
        .replacen("name =", "logout_at_end = false\nname =", 1);
    let s = Session::parse("gap", &gap).unwrap();
    assert!(!s.logout_at_end);
    let c = Clock::new(&s, Timestamp::from_secs(1_000_000), 200);
    let steps = c.steps(&s);
    let ends: Vec<(String, Option<LogonWindows>)> = steps
        .iter()
        .filter(|st| matches!(st.kind, StepKind::PhaseEnd { .. }))
        .map(|st| (format!("{:?}", st.kind), logon_windows(&s, st)))
        .collect();
    assert_eq!(ends[0].1, open(false, false, false), "{ends:#?}");
    assert_eq!(ends[1].1, None, "{ends:#?}");
    assert_eq!(ends[2].1, open(false, false, false), "{ends:#?}");
}
