//! Session time and wall time. A drill runs the session's schedule compressed `speed` times:
//! session time `s` happens at wall time `wall_origin + (s - session_origin) / speed`. Pure
//! functions: the runtime passes `now`.

use crate::session::Session;
use serde::Serialize;
use twinsite_core::Platform;
use twinsite_core::Timestamp;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct Clock {
    /// Session time at which the drill starts (normally the first phase's start).
    pub session_origin: Timestamp,
    /// Wall time at which the drill starts.
    pub wall_origin: Timestamp,
    /// Compression: 1 = real time, 200 = the PS2 schedule in 75 seconds.
    pub speed: u64,
}

/// What the runtime must do at a point of the schedule.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum StepKind {
    PhaseStart { phase: String },
    PhaseEnd { phase: String },
    Failover,
    SessionEnd,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Step {
    /// Session time.
    pub at: Timestamp,
    /// Wall time under this clock.
    pub wall: Timestamp,
    pub kind: StepKind,
}

impl Clock {
    /// A clock that starts the session's first phase at `wall_start`.
    pub fn new(session: &Session, wall_start: Timestamp, speed: u64) -> Clock {
        Clock {
            session_origin: session.start(),
            wall_origin: wall_start,
            speed: speed.max(1),
        }
    }

    /// Speed that fits the whole session into `wall_secs` of wall time (at least 1).
    pub fn speed_to_fit(session: &Session, wall_secs: u64) -> u64 {
        let span = session.end().saturating_sub(session.start()) / 1_000_000_000;
        (span / wall_secs.max(1)).max(1)
    }

    /// Wall time of a session time.
    pub fn wall(&self, session_time: Timestamp) -> Timestamp {
        if session_time >= self.session_origin {
            self.wall_origin
                .plus_nanos((session_time.0 - self.session_origin.0) / self.speed)
        } else {
            Timestamp(
                self.wall_origin
                    .0
                    .saturating_sub((self.session_origin.0 - session_time.0) / self.speed),
            )
        }
    }

    /// Session time of a wall time.
    pub fn session_time(&self, wall: Timestamp) -> Timestamp {
        if wall >= self.wall_origin {
            self.session_origin
                .plus_nanos((wall.0 - self.wall_origin.0).saturating_mul(self.speed))
        } else {
            Timestamp(
                self.session_origin
                    .0
                    .saturating_sub((self.wall_origin.0 - wall.0).saturating_mul(self.speed)),
            )
        }
    }

    /// A session-time duration as wall time (protocol timers compress with the schedule).
    pub fn to_wall_ns(&self, session_ns: u64) -> u64 {
        session_ns / self.speed
    }

    /// A wall-time duration as session time.
    pub fn to_session_ns(&self, wall_ns: u64) -> u64 {
        wall_ns.saturating_mul(self.speed)
    }

    /// Every step of the schedule, in time order (phase ends before starts at the same time).
    pub fn steps(&self, session: &Session) -> Vec<Step> {
        let mut v = Vec::new();
        let mut push = |at: Timestamp, kind: StepKind, order: u8| {
            v.push((at, order, kind));
        };
        for p in &session.phases {
            push(
                p.start,
                StepKind::PhaseStart {
                    phase: p.id.clone(),
                },
                2,
            );
            push(
                p.end,
                StepKind::PhaseEnd {
                    phase: p.id.clone(),
                },
                0,
            );
        }
        push(session.failover.at, StepKind::Failover, 1);
        push(session.end(), StepKind::SessionEnd, 3);
        v.sort_by_key(|a| (a.0, a.1));
        v.into_iter()
            .map(|(at, _, kind)| Step {
                at,
                wall: self.wall(at),
                kind,
            })
            .collect()
    }

    /// The steps due in the wall-time window `(after, now]`: call with the previous `now`.
    pub fn due(&self, session: &Session, after: Option<Timestamp>, now: Timestamp) -> Vec<Step> {
        self.steps(session)
            .into_iter()
            .filter(|s| after.is_none_or(|a| s.wall > a) && s.wall <= now)
            .collect()
    }

    /// The next step after wall time `now`.
    pub fn next_step(&self, session: &Session, now: Timestamp) -> Option<Step> {
        self.steps(session).into_iter().find(|s| s.wall > now)
    }

    /// The session's phase at wall time `now`.
    pub fn phase_at<'a>(
        &self,
        session: &'a Session,
        now: Timestamp,
    ) -> Option<&'a crate::session::Phase> {
        session.phase_at(self.session_time(now))
    }

    /// Local time-of-day label (in the session's zone) of a wall time.
    pub fn label(&self, session: &Session, wall: Timestamp) -> String {
        session.label(self.session_time(wall))
    }
}

/// What the runtime does at a step of the schedule.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum Action {
    /// Open the site's Lookup Service and allow logons (for the kinds and platforms in
    /// `Session::access`; others are refused as the reference says).
    Open { site: twinsite_core::Site },
    /// Refuse logons at the site (Session Status 7) and close its Lookup Service.
    Close { site: twinsite_core::Site },
    /// Fail over to the backup site (`mode`, `orders`, `sequence` from the session file).
    Failover,
    /// The session is over: stop the participants, take the exchange's checks, write the report.
    End,
}

/// The actions for one step: a phase served by a site opens it at its start and closes it at its
/// end; the failover step fails over; the session end ends.
pub fn actions(session: &Session, step: &Step) -> Vec<Action> {
    let site_of = |id: &str| session.phase(id).and_then(|p| p.site.site());
    match &step.kind {
        StepKind::PhaseStart { phase } => site_of(phase)
            .map(|site| vec![Action::Open { site }])
            .unwrap_or_default(),
        StepKind::PhaseEnd { phase } => site_of(phase)
            .map(|site| vec![Action::Close { site }])
            .unwrap_or_default(),
        StepKind::Failover => vec![Action::Failover],
        StepKind::SessionEnd => vec![Action::End],
    }
}

/// What a step of the schedule does to the logon windows (a logon outside them gets Session
/// Status 7).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LogonWindows {
    /// Per platform (OTP-C, then OTP-CSC): are logons allowed after this step?
    pub platforms: Vec<(Platform, bool)>,
    /// Log out the sessions still logged on: the end of the last phase, when the session says
    /// so ([`Session::logout_at_end`], the service shutdown of reference §1.7).
    pub logout: bool,
}

impl LogonWindows {
    fn all(open: impl Fn(Platform) -> bool, logout: bool) -> LogonWindows {
        LogonWindows {
            platforms: [Platform::OtpC, Platform::OtpCsc]
                .into_iter()
                .map(|p| (p, open(p)))
                .collect(),
            logout,
        }
    }

    /// Is any platform open?
    pub fn any_open(&self) -> bool {
        self.platforms.iter().any(|(_, open)| *open)
    }
}

/// The logon windows a step sets, or None when it leaves them as they are:
///
/// * a phase's start: each platform that some participant kind may use (`[access]`) opens
///   when the phase has a serving site; every platform closes for a phase served by no site
///   (the failover itself);
/// * a phase's end with no phase starting at that moment (a gap between phases, or the end of
///   the last phase): every platform closes; sessions already logged on stay through a gap
///   (the service runs on), and at the end of the last phase they are logged out when
///   [`Session::logout_at_end`] (the default);
/// * a phase's end where another phase starts: None (that phase's start sets them);
/// * the failover and the session end: None.
pub fn logon_windows(session: &Session, step: &Step) -> Option<LogonWindows> {
    match &step.kind {
        StepKind::PhaseStart { phase } => {
            let trading = session
                .phase(phase)
                .is_some_and(|p| p.site != crate::session::PhaseSite::None);
            Some(LogonWindows::all(
                |platform| trading && session.access.values().any(|s| s.contains(&platform)),
                false,
            ))
        }
        StepKind::PhaseEnd { phase } => {
            let end = session.phase(phase)?.end;
            if session
                .phases
                .iter()
                .any(|p| p.id != *phase && p.start == end)
            {
                return None;
            }
            let last = session.phases.iter().all(|p| p.start < end);
            Some(LogonWindows::all(|_| false, last && session.logout_at_end))
        }
        StepKind::Failover | StepKind::SessionEnd => None,
    }
}
