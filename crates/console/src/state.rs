//! What the console shows: one [`ConsoleState`] value, owned by the runtime and pushed through a
//! `tokio::sync::watch` channel. Every field is plain data (strings, numbers, options) so the
//! runtime maps its own types into it and the browser gets it as JSON unchanged.
//!
//! Times are wall-clock milliseconds since the Unix epoch (`*_ms`) plus, where a person reads
//! them, the session-time label the runtime computed (`"09:12:30"`, Hong Kong time).

use serde::{Deserialize, Serialize};

/// Everything the console displays. `Default` is an empty "waiting for the session" state.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ConsoleState {
    pub session: SessionView,
    pub sites: SitesView,
    pub failover: FailoverView,
    pub participants: Vec<ParticipantView>,
    pub market_data: MarketDataView,
    /// What happened, oldest first (the runtime's records; the console adds its operators' actions).
    pub activity: Vec<ActivityEntry>,
    /// Set when the session is over and the report files are in the console's output folder.
    pub reports: Option<ReportLinks>,
}

/// Activity lines [`ConsoleState::log`] keeps (the oldest are dropped; the report has them all).
pub const ACTIVITY_KEPT: usize = 5000;

impl ConsoleState {
    /// Append an activity line, keeping the newest [`ACTIVITY_KEPT`].
    pub fn log(
        &mut self,
        at_ms: u64,
        session_time: impl Into<String>,
        who: impl Into<String>,
        what: impl Into<String>,
    ) {
        self.activity.push(ActivityEntry {
            at_ms,
            session_time: session_time.into(),
            who: who.into(),
            what: what.into(),
        });
        if self.activity.len() > ACTIVITY_KEPT {
            let excess = self.activity.len() - ACTIVITY_KEPT;
            self.activity.drain(..excess);
        }
    }

    /// Fill in the scorecards and the failover figures from a `report.json` value (the drill
    /// report's schema: `failover {mode, rto_ms, acked_orders_lost, state_hashes_equal,
    /// started_wall_ms, backup_open_wall_ms, dr_signal_wall_ms}` and `participants [{id, firm,
    /// kind, checks [{name, phase, passed, detail}]}]`). Participants not shown yet are added.
    /// Works on a value so the console does not depend on the drill crate's types:
    /// `state.apply_report(&serde_json::to_value(&report)?)`. Returns the participants updated.
    pub fn apply_report(&mut self, report: &serde_json::Value) -> usize {
        let s = |v: &serde_json::Value| v.as_str().map(str::to_string);
        let f = &report["failover"];
        if f.is_object() {
            let fo = &mut self.failover;
            fo.mode = s(&f["mode"]).or(fo.mode.take());
            fo.rto_ms = f["rto_ms"].as_u64().or(fo.rto_ms);
            fo.acked_orders_lost = f["acked_orders_lost"].as_u64().or(fo.acked_orders_lost);
            fo.state_hashes_equal = f["state_hashes_equal"].as_bool().or(fo.state_hashes_equal);
            fo.started_ms = f["started_wall_ms"].as_u64().or(fo.started_ms);
            fo.backup_open_ms = f["backup_open_wall_ms"].as_u64().or(fo.backup_open_ms);
            fo.dr_signal_ms = f["dr_signal_wall_ms"].as_u64().or(fo.dr_signal_ms);
        }
        let mut n = 0;
        for p in report["participants"].as_array().into_iter().flatten() {
            let Some(id) = s(&p["id"]) else { continue };
            let checks: Vec<CheckView> = p["checks"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|c| CheckView {
                    name: s(&c["name"]).unwrap_or_default(),
                    phase: s(&c["phase"]).unwrap_or_default(),
                    passed: c["passed"].as_bool(),
                    detail: s(&c["detail"]).unwrap_or_default(),
                })
                .collect();
            let view = match self.participant_mut(&id) {
                Some(v) => v,
                None => {
                    self.participants.push(ParticipantView {
                        id: id.clone(),
                        ..ParticipantView::default()
                    });
                    self.participants.last_mut().expect("just pushed")
                }
            };
            if let Some(firm) = s(&p["firm"]) {
                view.firm = firm;
            }
            if let Some(kind) = s(&p["kind"]) {
                view.kind = kind;
            }
            view.checks = checks;
            n += 1;
        }
        n
    }

    /// The participant with this id, if shown.
    pub fn participant_mut(&mut self, id: &str) -> Option<&mut ParticipantView> {
        self.participants.iter_mut().find(|p| p.id == id)
    }
}

/// Where the session is in its life.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SessionStatus {
    /// Not started yet (registration may be open).
    #[default]
    Waiting,
    Running,
    /// The schedule is held by an operator.
    Paused,
    Finished,
}

/// The session and its schedule.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SessionView {
    pub name: String,
    /// The circular or reference the session reproduces, if any.
    pub reference: Option<String>,
    /// Session date, e.g. "2023-11-25".
    pub date: String,
    pub time_zone: String,
    /// Schedule compression (`--speed N`); 1 is real time.
    pub speed: u64,
    pub status: SessionStatus,
    /// Now, wall clock.
    pub now_ms: u64,
    /// Now, as session time ("09:12:30").
    pub now_label: String,
    /// Id of the phase now running, if any.
    pub current_phase: Option<String>,
    pub phases: Vec<PhaseView>,
    pub failover_step: FailoverStep,
    /// Registration deadline as written, if any.
    pub registration_deadline: Option<String>,
}

/// One phase of the schedule.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PhaseView {
    pub id: String,
    pub title: String,
    /// As written in the session file ("08:00", "~11:00").
    pub start_label: String,
    pub end_label: String,
    /// Wall-clock start and end under the session's speed.
    pub start_ms: u64,
    pub end_ms: u64,
    /// "primary", "backup" or "none".
    pub site: String,
    /// The testing focus, in words.
    pub focus: Vec<String>,
}

/// The failover step as scheduled.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct FailoverStep {
    /// "scheduled" or "crash".
    pub mode: String,
    /// Session time it is scheduled for ("10:00").
    pub at_label: String,
    /// Wall clock it is scheduled for.
    pub at_ms: u64,
    /// "keep" or "cancel" (resting orders).
    pub orders: String,
    /// "continue" or "reset" (session sequence numbers).
    pub sequence: String,
}

/// The two sites and the witness.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SitesView {
    /// "primary", "backup", or `None` while nobody serves (during the failover).
    pub active: Option<String>,
    pub nodes: Vec<NodeView>,
    /// Every live node reports the same state hash at the same index (`None`: not compared yet).
    pub hashes_equal: Option<bool>,
}

/// One node of the replicated journal.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct NodeView {
    /// "primary", "backup", "witness".
    pub name: String,
    /// "leader", "follower", "witness", "down".
    pub role: String,
    /// Node name of the leader this node believes in.
    pub leader: Option<String>,
    pub commit_index: u64,
    pub applied_index: u64,
    /// Entries behind the leader's commit index.
    pub replication_lag: u64,
    /// Engine state hash (hex) at `applied_index`, if the node computes one.
    pub state_hash: Option<String>,
    pub up: bool,
}

/// Where the failover is.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FailoverStatus {
    #[default]
    Pending,
    InProgress,
    Done,
    Failed,
}

/// The failover as it happens.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct FailoverView {
    pub status: FailoverStatus,
    /// "scheduled" or "crash" (as performed; may differ from the plan after an operator action).
    pub mode: Option<String>,
    pub started_ms: Option<u64>,
    pub backup_open_ms: Option<u64>,
    pub dr_signal_ms: Option<u64>,
    /// Failover start to the backup site accepting logons.
    pub rto_ms: Option<u64>,
    pub acked_orders_lost: Option<u64>,
    pub state_hashes_equal: Option<bool>,
    /// Steps as they happened, oldest first.
    pub timeline: Vec<TimelineEvent>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TimelineEvent {
    pub at_ms: u64,
    pub session_time: String,
    pub event: String,
}

/// One registered participant.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ParticipantView {
    pub id: String,
    pub firm: String,
    /// "EP", "CCEP" or "IV".
    pub kind: String,
    /// "OTP-C", "OTP-CSC", "OMD-C"...
    pub platform: String,
    /// Where it is connected now: "primary", "backup", or `None`.
    pub connected: Option<String>,
    pub orders: u64,
    pub fills: u64,
    pub rejects: u64,
    /// Scorecard checks, filled in as they are decided.
    pub checks: Vec<CheckView>,
}

impl ParticipantView {
    /// Some check has failed.
    pub fn failing(&self) -> bool {
        self.checks.iter().any(|c| c.passed == Some(false))
    }
}

/// One scorecard check.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CheckView {
    pub name: String,
    pub phase: String,
    /// `None` while undecided.
    pub passed: Option<bool>,
    pub detail: String,
}

/// Market data.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct MarketDataView {
    pub channels: Vec<ChannelView>,
    /// "not_sent", "sent", or "disabled".
    pub dr_signal: String,
    pub dr_signal_ms: Option<u64>,
    pub rts_logons: u64,
    pub rts_requests_served: u64,
}

/// One OMD channel.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ChannelView {
    pub id: u16,
    /// "OMD-C" or "OMD-CC".
    pub platform: String,
    /// "fulltick", "standard", "dr", "refresh"...
    pub product: String,
    /// Site publishing it now.
    pub site: Option<String>,
    /// Last sequence number sent.
    pub seq: u64,
}

/// One activity-log line.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ActivityEntry {
    pub at_ms: u64,
    /// Session time, when known.
    pub session_time: String,
    /// "exchange", a participant id, or "operator:NAME".
    pub who: String,
    pub what: String,
}

/// The report files, by file name inside the console's output folder.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReportLinks {
    pub html: String,
    pub json: String,
    pub csv: String,
}

impl Default for ReportLinks {
    fn default() -> Self {
        ReportLinks {
            html: "report.html".into(),
            json: "report.json".into(),
            csv: "participants.csv".into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_report_fills_in_scorecards_and_the_failover() {
        let mut st = ConsoleState::default();
        st.participants.push(ParticipantView {
            id: "P001".into(),
            firm: "Alpha".into(),
            kind: "EP".into(),
            orders: 7,
            ..ParticipantView::default()
        });
        let report = serde_json::json!({
            "session": {"name": "PS2", "date": "2023-11-25", "speed": 120},
            "failover": {"mode": "crash", "rto_ms": 840, "acked_orders_lost": 0,
                         "state_hashes_equal": true, "started_wall_ms": 1000},
            "participants": [
                {"id": "P001", "kind": "EP", "passed": false, "checks": [
                    {"name": "logged in at the primary site", "phase": "primary", "passed": true, "detail": "ok"},
                    {"name": "sequence numbers", "phase": "backup", "passed": false, "detail": "sent 1"}]},
                {"id": "P002", "firm": "Beta", "kind": "IV", "passed": true, "checks": []}
            ]
        });
        assert_eq!(st.apply_report(&report), 2);
        assert_eq!(st.failover.mode.as_deref(), Some("crash"));
        assert_eq!(st.failover.rto_ms, Some(840));
        assert_eq!(st.failover.state_hashes_equal, Some(true));
        assert_eq!(st.failover.started_ms, Some(1000));
        let p1 = &st.participants[0];
        assert_eq!((p1.firm.as_str(), p1.orders), ("Alpha", 7));
        assert!(p1.failing());
        assert_eq!(p1.checks[1].detail, "sent 1");
        assert_eq!(st.participants[1].firm, "Beta");
        assert!(!st.participants[1].failing());
    }

    #[test]
    fn the_log_keeps_the_newest() {
        let mut st = ConsoleState::default();
        for i in 0..ACTIVITY_KEPT + 3 {
            st.log(i as u64, "", "exchange", format!("{i}"));
        }
        assert_eq!(st.activity.len(), ACTIVITY_KEPT);
        assert_eq!(st.activity[0].what, "3");
    }
}
