//! A made-up practice session for the console: the PS2 schedule (08:00-10:00 primary, failover,
//! 11:00-12:10 backup) compressed into a few seconds, six participants (two of them faulty), a
//! failover from the primary to the backup with the participants logging on again, and the report
//! files at the end. It answers operator actions the way the runtime does (registration rules,
//! pause, resume, failover now, crash failover).
//!
//! It exists for the browser test and to look at the console without an exchange
//! (`cargo run -p twinsite-console --example synthetic`); it computes nothing real.

use crate::action::{ActionOk, OperatorAction};
use crate::server::now_ms;
use crate::state::*;
use std::path::PathBuf;
use std::time::Duration;
use tokio::sync::{mpsc, watch};

/// How the synthetic session runs.
#[derive(Debug, Clone)]
pub struct SyntheticConfig {
    /// Wall time of one step.
    pub tick: Duration,
    /// Session minutes per step.
    pub minutes_per_tick: u32,
    /// Start held at 08:00 until an operator resumes.
    pub start_paused: bool,
    /// Where to write report.html, report.json and participants.csv at the end.
    pub output_dir: Option<PathBuf>,
}

impl Default for SyntheticConfig {
    fn default() -> Self {
        SyntheticConfig {
            tick: Duration::from_millis(250),
            minutes_per_tick: 2,
            start_paused: false,
            output_dir: None,
        }
    }
}

const START: u32 = 8 * 60;
const FAILOVER: u32 = 10 * 60;
const BACKUP: u32 = 11 * 60;
const END: u32 = 12 * 60 + 10;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Fault {
    None,
    NoLookup,
    SequenceOne,
}

struct Member {
    view: ParticipantView,
    fault: Fault,
    /// Logged on again at the backup.
    back: bool,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Fo {
    Pending,
    /// Steps done so far.
    Running(u8),
    Done,
}

struct Sim {
    cfg: SyntheticConfig,
    /// Session minutes since midnight.
    t: u32,
    ms_per_min: u64,
    paused: bool,
    fo: Fo,
    fo_mode: &'static str,
    members: Vec<Member>,
    state: ConsoleState,
    finished: bool,
}

fn label(min: u32) -> String {
    format!("{:02}:{:02}:00", min / 60, min % 60)
}

fn check(name: &str, phase: &str) -> CheckView {
    CheckView {
        name: name.into(),
        phase: phase.into(),
        passed: None,
        detail: String::new(),
    }
}

fn checks_for(kind: &str) -> Vec<CheckView> {
    if kind == "IV" {
        vec![
            check("received market data at the primary", "primary"),
            check("recovered the market image after the DR signal", "backup"),
        ]
    } else {
        vec![
            check("logged in at the primary site", "primary"),
            check("traded at the primary site", "primary"),
            check("reconnected through the lookup service", "failover"),
            check("presented the right sequence numbers", "backup"),
            check("traded at the backup site", "backup"),
        ]
    }
}

fn platform_for(kind: &str) -> &'static str {
    match kind {
        "CCEP" => "OTP-CSC",
        "IV" => "OMD-C",
        _ => "OTP-C",
    }
}

impl Sim {
    fn new(cfg: SyntheticConfig) -> Sim {
        let ms_per_min = (cfg.tick.as_millis() as u64 / cfg.minutes_per_tick.max(1) as u64).max(1);
        let mut sim = Sim {
            paused: cfg.start_paused,
            cfg,
            t: START,
            ms_per_min,
            fo: Fo::Pending,
            fo_mode: "scheduled",
            members: Vec::new(),
            state: ConsoleState::default(),
            finished: false,
        };
        let s = &mut sim.state;
        s.session = SessionView {
            name: "Practice session 2 (synthetic)".into(),
            reference: Some("synthetic feeder for the console".into()),
            date: "2023-11-25".into(),
            time_zone: "Asia/Hong_Kong".into(),
            speed: 60_000 / ms_per_min.max(1),
            status: if sim.paused {
                SessionStatus::Paused
            } else {
                SessionStatus::Running
            },
            registration_deadline: Some("2023-11-17 17:00".into()),
            ..SessionView::default()
        };
        let phases = [
            (
                "primary",
                "Trading at the primary site",
                START,
                FAILOVER,
                "primary",
                vec![
                    "log in through the lookup service",
                    "trade on OTP-C and OTP-CSC",
                    "consume OMD-C / OMD-CC",
                ],
            ),
            (
                "failover",
                "Failover to the backup site",
                FAILOVER,
                BACKUP,
                "none",
                vec!["sessions drop; wait for the DR signal", "redo the lookup"],
            ),
            (
                "backup",
                "Trading at the backup site",
                BACKUP,
                END,
                "backup",
                vec![
                    "log on with the right sequence numbers",
                    "recover missed messages",
                    "trade again",
                ],
            ),
        ];
        s.session.phases = phases
            .into_iter()
            .map(|(id, title, a, b, site, focus)| PhaseView {
                id: id.into(),
                title: title.into(),
                start_label: label(a)[..5].to_string(),
                end_label: if id == "failover" {
                    "~11:00".into()
                } else {
                    label(b)[..5].to_string()
                },
                site: site.into(),
                focus: focus.into_iter().map(String::from).collect(),
                ..PhaseView::default()
            })
            .collect();
        s.session.failover_step = FailoverStep {
            mode: "scheduled".into(),
            at_label: "10:00".into(),
            orders: "keep".into(),
            sequence: "continue".into(),
            ..FailoverStep::default()
        };
        s.sites.active = Some("primary".into());
        s.sites.nodes = ["primary", "backup", "witness"]
            .into_iter()
            .map(|n| NodeView {
                name: n.into(),
                role: match n {
                    "primary" => "leader",
                    "backup" => "follower",
                    _ => "witness",
                }
                .into(),
                leader: Some("primary".into()),
                up: true,
                ..NodeView::default()
            })
            .collect();
        s.market_data = MarketDataView {
            channels: [
                (10, "OMD-C", "fulltick"),
                (11, "OMD-C", "refresh"),
                (30, "OMD-CC", "standard"),
                (99, "OMD-C", "dr"),
            ]
            .into_iter()
            .map(|(id, p, product)| ChannelView {
                id,
                platform: p.into(),
                product: product.into(),
                site: Some("primary".into()),
                seq: 0,
            })
            .collect(),
            dr_signal: "not_sent".into(),
            ..MarketDataView::default()
        };
        let people = [
            ("Alpha Securities", "EP", Fault::None),
            ("Beta Brokers", "EP", Fault::None),
            ("Gamma Connect", "CCEP", Fault::None),
            ("Delta Data", "IV", Fault::None),
            (
                "Epsilon Trading (never redoes the lookup)",
                "EP",
                Fault::NoLookup,
            ),
            (
                "Zeta Capital (logs on with sequence 1)",
                "EP",
                Fault::SequenceOne,
            ),
        ];
        for (firm, kind, fault) in people {
            sim.add(firm, kind, fault);
        }
        sim.log("exchange", "session opened; primary site active".into());
        for i in 0..sim.members.len() {
            sim.connect_primary(i);
        }
        sim.refresh_times();
        sim
    }

    fn add(&mut self, firm: &str, kind: &str, fault: Fault) -> String {
        let id = format!("P{:03}", self.members.len() + 1);
        self.members.push(Member {
            view: ParticipantView {
                id: id.clone(),
                firm: firm.into(),
                kind: kind.into(),
                platform: platform_for(kind).into(),
                connected: None,
                checks: checks_for(kind),
                ..ParticipantView::default()
            },
            fault,
            back: false,
        });
        id
    }

    fn log(&mut self, who: &str, what: String) {
        self.state.log(now_ms(), label(self.t), who, what);
    }

    fn set_check(&mut self, i: usize, name: &str, passed: bool, detail: &str) {
        let m = &mut self.members[i];
        if let Some(c) = m.view.checks.iter_mut().find(|c| c.name == name) {
            if c.passed.is_none() {
                c.passed = Some(passed);
                c.detail = detail.into();
            }
        }
    }

    fn connect_primary(&mut self, i: usize) {
        if self.fo != Fo::Pending {
            return;
        }
        self.members[i].view.connected = Some("primary".into());
        let (id, kind) = (
            self.members[i].view.id.clone(),
            self.members[i].view.kind.clone(),
        );
        if kind == "IV" {
            self.set_check(
                i,
                "received market data at the primary",
                true,
                "joined channels 10, 11 and 99",
            );
            self.log(&id, "joined the OMD-C multicast at the primary site".into());
        } else {
            self.set_check(
                i,
                "logged in at the primary site",
                true,
                "lookup then logon accepted",
            );
            self.log(
                &id,
                "lookup answered; logon accepted at the primary site".into(),
            );
        }
    }

    fn refresh_times(&mut self) {
        let now = now_ms();
        let at = |min: u32| -> u64 {
            let d = (min as i64 - self.t as i64) * self.ms_per_min as i64;
            (now as i64 + d).max(0) as u64
        };
        let s = &mut self.state.session;
        s.now_ms = now;
        s.now_label = label(self.t);
        let bounds = [(START, FAILOVER), (FAILOVER, BACKUP), (BACKUP, END)];
        for (p, (a, b)) in s.phases.iter_mut().zip(bounds) {
            p.start_ms = at(a);
            p.end_ms = at(b);
        }
        s.failover_step.at_ms = at(FAILOVER);
        s.current_phase = match self.t {
            t if t >= END => None,
            t if t >= BACKUP => Some("backup".into()),
            t if t >= FAILOVER => Some("failover".into()),
            _ => Some("primary".into()),
        };
    }

    fn timeline(&mut self, event: &str) {
        let e = TimelineEvent {
            at_ms: now_ms(),
            session_time: label(self.t),
            event: event.into(),
        };
        self.state.failover.timeline.push(e);
        self.log("exchange", event.into());
    }

    fn start_failover(&mut self, mode: &'static str) {
        self.fo = Fo::Running(0);
        self.fo_mode = mode;
        let f = &mut self.state.failover;
        f.status = FailoverStatus::InProgress;
        f.mode = Some(mode.into());
        f.started_ms = Some(now_ms());
        self.state.sites.active = None;
        for m in &mut self.members {
            m.view.connected = None;
        }
        self.timeline(&format!(
            "failover started ({mode}); sessions at the primary closed"
        ));
    }

    fn step_failover(&mut self, n: u8) {
        match n {
            0 => {
                if self.fo_mode == "crash" {
                    self.state.sites.nodes[0].up = false;
                    self.state.sites.nodes[0].role = "down".into();
                    self.timeline("primary site down; backup and witness elect");
                } else {
                    self.state.sites.nodes[0].role = "follower".into();
                    self.timeline("leadership transferred to the backup");
                }
                self.state.sites.nodes[1].role = "leader".into();
                for node in &mut self.state.sites.nodes {
                    node.leader = Some("backup".into());
                }
            }
            1 => {
                let now = now_ms();
                self.state.sites.active = Some("backup".into());
                let f = &mut self.state.failover;
                f.backup_open_ms = Some(now);
                f.dr_signal_ms = Some(now);
                f.rto_ms = f.started_ms.map(|s| now.saturating_sub(s));
                f.acked_orders_lost = Some(0);
                f.state_hashes_equal = Some(true);
                self.state.market_data.dr_signal = "sent".into();
                self.state.market_data.dr_signal_ms = Some(now);
                for c in &mut self.state.market_data.channels {
                    c.site = Some("backup".into());
                }
                self.timeline("backup site open: lookup, gateways, multicast and RTS");
                self.timeline("DR signal and sequence reset sent on every channel");
            }
            _ => {
                self.fo = Fo::Done;
                self.state.failover.status = FailoverStatus::Done;
                self.timeline("failover complete");
                return;
            }
        }
        self.fo = Fo::Running(n + 1);
    }

    /// After the backup opened: one participant comes back per step.
    fn reconnect_one(&mut self) {
        let Some(i) = self.members.iter().position(|m| !m.back) else {
            return;
        };
        self.members[i].back = true;
        let id = self.members[i].view.id.clone();
        let kind = self.members[i].view.kind.clone();
        match (self.members[i].fault, kind.as_str()) {
            (_, "IV") => {
                self.members[i].view.connected = Some("backup".into());
                self.state.market_data.rts_logons += 1;
                self.state.market_data.rts_requests_served += 3;
                self.set_check(
                    i,
                    "recovered the market image after the DR signal",
                    true,
                    "refresh snapshot then RTS for the gap",
                );
                self.log(
                    &id,
                    "recovered the market image (refresh + 3 RTS requests)".into(),
                );
            }
            (Fault::NoLookup, _) => {
                self.set_check(
                    i,
                    "reconnected through the lookup service",
                    false,
                    "kept calling the primary gateway; never asked the lookup",
                );
                self.log(
                    &id,
                    "connection attempts to the closed primary gateway".into(),
                );
            }
            (fault, _) => {
                self.members[i].view.connected = Some("backup".into());
                self.set_check(
                    i,
                    "reconnected through the lookup service",
                    true,
                    "lookup answered by the backup site",
                );
                if fault == Fault::SequenceOne {
                    self.set_check(
                        i,
                        "presented the right sequence numbers",
                        false,
                        "logon with next expected 1; exchange expected continuation",
                    );
                    self.log(&id, "logon at the backup with sequence 1".into());
                } else {
                    self.set_check(
                        i,
                        "presented the right sequence numbers",
                        true,
                        "continued its numbering",
                    );
                    self.log(&id, "logon accepted at the backup site".into());
                }
            }
        }
    }

    fn trade(&mut self) {
        let site = self.state.sites.active.clone();
        let Some(site) = site else { return };
        let mut orders = 0;
        for i in 0..self.members.len() {
            let m = &mut self.members[i];
            if m.view.kind == "IV" || m.view.connected.as_deref() != Some(site.as_str()) {
                continue;
            }
            m.view.orders += 3;
            m.view.fills += 1;
            orders += 3;
            let name = if site == "primary" {
                "traded at the primary site"
            } else {
                "traded at the backup site"
            };
            self.set_check(i, name, true, "orders accepted and filled");
        }
        for c in &mut self.state.market_data.channels {
            c.seq += 5 + orders;
        }
        let leader = if site == "primary" { 0 } else { 1 };
        let nodes = &mut self.state.sites.nodes;
        nodes[leader].commit_index += orders + 2;
        let head = nodes[leader].commit_index;
        for (k, n) in nodes.iter_mut().enumerate() {
            if !n.up {
                n.replication_lag = 0;
                continue;
            }
            if k != leader {
                // The followers trail by a step's worth of entries and catch up next step.
                n.replication_lag = head - n.commit_index;
                n.commit_index = head;
            }
            n.applied_index = n.commit_index;
            n.state_hash = Some(format!(
                "{:016x}",
                n.applied_index.wrapping_mul(0x9e37_79b9_7f4a_7c15)
            ));
        }
        let live: Vec<_> = nodes.iter().filter(|n| n.up).collect();
        self.state.sites.hashes_equal =
            Some(live.windows(2).all(|w| w[0].state_hash == w[1].state_hash));
    }

    fn tick(&mut self) {
        if self.finished || self.paused {
            return;
        }
        let before = self.state.session.current_phase.clone();
        self.t = (self.t + self.cfg.minutes_per_tick).min(END);
        if self.fo == Fo::Pending && self.t >= FAILOVER {
            self.start_failover("scheduled");
        } else if let Fo::Running(n) = self.fo {
            self.step_failover(n);
        } else if self.fo == Fo::Done {
            self.reconnect_one();
        }
        self.trade();
        self.refresh_times();
        let after = self.state.session.current_phase.clone();
        if after != before {
            if let Some(p) = &after {
                let title = self
                    .state
                    .session
                    .phases
                    .iter()
                    .find(|x| &x.id == p)
                    .map(|x| x.title.clone())
                    .unwrap_or_default();
                self.log("exchange", format!("phase: {title}"));
            }
        }
        if self.t >= END && self.fo == Fo::Done {
            self.finish();
        }
    }

    fn finish(&mut self) {
        self.finished = true;
        self.state.session.status = SessionStatus::Finished;
        for i in 0..self.members.len() {
            for c in &mut self.members[i].view.checks {
                if c.passed.is_none() {
                    c.passed = Some(false);
                    c.detail = "not observed".into();
                }
            }
        }
        self.log("exchange", "session closed; writing the report".into());
        if let Some(dir) = self.cfg.output_dir.clone() {
            match self.write_reports(&dir) {
                Ok(()) => {
                    self.state.reports = Some(ReportLinks::default());
                    self.log("exchange", format!("report written to {}", dir.display()));
                }
                Err(e) => self.log("exchange", format!("could not write the report: {e}")),
            }
        }
    }

    fn write_reports(&self, dir: &std::path::Path) -> std::io::Result<()> {
        std::fs::create_dir_all(dir)?;
        let f = &self.state.failover;
        let parts: Vec<_> = self
            .members
            .iter()
            .map(|m| {
                serde_json::json!({
                    "id": m.view.id, "kind": m.view.kind, "firm": m.view.firm,
                    "passed": !m.view.failing(),
                    "checks": m.view.checks.iter().map(|c| serde_json::json!({
                        "name": c.name, "phase": c.phase, "passed": c.passed == Some(true), "detail": c.detail
                    })).collect::<Vec<_>>(),
                })
            })
            .collect();
        let json = serde_json::json!({
            "session": { "name": self.state.session.name, "date": self.state.session.date, "speed": self.state.session.speed },
            "failover": { "mode": self.fo_mode, "rto_ms": f.rto_ms, "acked_orders_lost": 0, "state_hashes_equal": true },
            "participants": parts,
        });
        std::fs::write(
            dir.join("report.json"),
            serde_json::to_string_pretty(&json)?,
        )?;
        let mut csv = String::from("id,firm,kind,passed,failed_checks\n");
        let mut rows = String::new();
        for m in &self.members {
            let failed: Vec<_> = m
                .view
                .checks
                .iter()
                .filter(|c| c.passed == Some(false))
                .map(|c| c.name.as_str())
                .collect();
            csv.push_str(&format!(
                "{},\"{}\",{},{},\"{}\"\n",
                m.view.id,
                m.view.firm,
                m.view.kind,
                failed.is_empty(),
                failed.join("; ")
            ));
            rows.push_str(&format!(
                "<tr><td>{}</td><td>{}</td><td>{}</td><td class=\"{}\">{}</td></tr>",
                m.view.id,
                html_escape(&m.view.firm),
                m.view.kind,
                if failed.is_empty() { "pass" } else { "fail" },
                if failed.is_empty() {
                    "PASS".to_string()
                } else {
                    html_escape(&failed.join("; "))
                }
            ));
        }
        std::fs::write(dir.join("participants.csv"), csv)?;
        let html = format!(
            "<!doctype html><html><head><meta charset=\"utf-8\"><title>Report</title><style>body{{font-family:sans-serif}}\
             td,th{{border:1px solid #ccc;padding:2px 6px}}.pass{{color:#146c43}}.fail{{color:#b02a37}}</style></head><body>\
             <h1>{} (synthetic report)</h1><p>Failover: {}, RTO {} ms, acknowledged orders lost 0, state hashes equal.</p>\
             <table><tr><th>id</th><th>firm</th><th>kind</th><th>result</th></tr>{}</table></body></html>",
            html_escape(&self.state.session.name),
            self.fo_mode,
            f.rto_ms.unwrap_or(0),
            rows
        );
        std::fs::write(dir.join("report.html"), html)
    }

    fn publish(&mut self) -> ConsoleState {
        self.state.participants = self.members.iter().map(|m| m.view.clone()).collect();
        self.state.clone()
    }

    fn act(&mut self, a: OperatorAction) {
        let outcome = match &a {
            OperatorAction::Register { request, .. } => {
                let kind = request.kind.trim().to_ascii_uppercase();
                if request.firm.trim().is_empty() {
                    Err("the firm name is empty".to_string())
                } else if !matches!(kind.as_str(), "EP" | "CCEP" | "IV") {
                    Err(format!(
                        "unknown participant kind {:?} (EP, CCEP or IV)",
                        request.kind
                    ))
                } else if self
                    .members
                    .iter()
                    .any(|m| m.view.firm.eq_ignore_ascii_case(request.firm.trim()))
                {
                    Err(format!("{} is already registered", request.firm.trim()))
                } else if self.finished {
                    Err("registration is closed: the session is over".to_string())
                } else {
                    let id = self.add(request.firm.trim(), &kind, Fault::None);
                    let i = self.members.len() - 1;
                    self.log(&id, format!("registered ({kind})"));
                    self.connect_primary(i);
                    Ok(ActionOk {
                        message: format!("registered {id} {}", request.firm.trim()),
                        data: Some(serde_json::json!({ "id": id })),
                    })
                }
            }
            OperatorAction::FailoverNow { .. } | OperatorAction::CrashFailover { .. } => {
                let mode = if matches!(a, OperatorAction::CrashFailover { .. }) {
                    "crash"
                } else {
                    "scheduled"
                };
                if self.fo != Fo::Pending {
                    Err("the failover has already started".to_string())
                } else if self.finished {
                    Err("the session is over".to_string())
                } else {
                    self.start_failover(mode);
                    Ok(ActionOk::new(format!(
                        "{mode} failover started at {}",
                        label(self.t)
                    )))
                }
            }
            OperatorAction::Pause { .. } => {
                if self.finished {
                    Err("the session is over".to_string())
                } else if self.paused {
                    Err("already paused".to_string())
                } else {
                    self.paused = true;
                    self.state.session.status = SessionStatus::Paused;
                    Ok(ActionOk::new(format!("schedule held at {}", label(self.t))))
                }
            }
            OperatorAction::Resume { .. } => {
                if self.finished {
                    Err("the session is over".to_string())
                } else if !self.paused {
                    Err("not paused".to_string())
                } else {
                    self.paused = false;
                    self.state.session.status = SessionStatus::Running;
                    Ok(ActionOk::new(format!(
                        "schedule resumed at {}",
                        label(self.t)
                    )))
                }
            }
        };
        a.answer(outcome);
    }
}

fn html_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// The first state of the synthetic session (what [`run`] starts from).
pub fn initial_state(cfg: &SyntheticConfig) -> ConsoleState {
    Sim::new(cfg.clone()).publish()
}

/// Run the synthetic session: push states into `state`, answer `actions`. Returns when the
/// session is over and the action channel is closed, or when every state receiver is gone.
pub async fn run(
    cfg: SyntheticConfig,
    state: watch::Sender<ConsoleState>,
    mut actions: mpsc::Receiver<OperatorAction>,
) {
    let mut sim = Sim::new(cfg.clone());
    state.send_replace(sim.publish());
    let mut ticker = tokio::time::interval(cfg.tick);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    ticker.tick().await;
    let mut open = true;
    loop {
        tokio::select! {
            _ = ticker.tick(), if !sim.finished => sim.tick(),
            a = actions.recv(), if open => match a {
                Some(a) => sim.act(a),
                None => open = false,
            },
            else => return,
        }
        if sim.finished && !open {
            state.send_replace(sim.publish());
            return;
        }
        if state.send(sim.publish()).is_err() {
            return;
        }
    }
}
