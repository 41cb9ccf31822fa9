//! Activity tracking and scorecards. Everything here is computed from what the exchange itself
//! observed ([`twinsite_site::gateway::Activity`] records from each site, and the exchange's own
//! failover times), never from anything a participant reports about itself.

use crate::clock::Clock;
use crate::registry::Registration;
use crate::session::{kind_name, Session};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::Path;
use twinsite_core::{ParticipantKind, Site, Timestamp};
use twinsite_ocg::{ExecType, Message};
use twinsite_site::feed::FeedActivity;
use twinsite_site::gateway::Activity;

/// A participant to track: its id in reports, kind and Comp IDs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Participant {
    pub id: String,
    pub firm: String,
    pub kind: ParticipantKind,
    pub comp_ids: Vec<String>,
}

impl From<&Registration> for Participant {
    fn from(r: &Registration) -> Self {
        Participant {
            id: r.id(),
            firm: r.firm.clone(),
            kind: r.kind,
            comp_ids: r.comp_ids.iter().map(|c| c.comp_id.clone()).collect(),
        }
    }
}

/// One thing the exchange saw a participant do (or do to it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "what", rename_all = "snake_case")]
pub enum What {
    Lookup {
        accepted: bool,
    },
    LogonAccepted {
        connection: u64,
    },
    /// A logon the gateway refused (with the sequence numbers when the runtime knows them).
    LogonRefused {
        reason: String,
    },
    /// Sequence numbers presented at a logon.
    LogonSequences {
        logon_seq: u32,
        next_expected: u32,
        exchange_in_next: u32,
        exchange_out_next: u32,
        accepted: bool,
    },
    SessionDown {
        cause: String,
    },
    Inbound {
        seq: u32,
        msg_type: u8,
        poss_resend: bool,
    },
    OrderAccepted {
        seq: u32,
    },
    Fill {
        seq: u32,
    },
    Rejected {
        seq: u32,
        message: String,
    },
    Outbound {
        seq: u32,
        message: String,
    },
    MarketImageRecovered {
        detail: String,
    },
    /// A Logon to the site's retransmission service (RTS) under this participant's name;
    /// `status` is the Logon Response's SessionStatus (0 = accepted).
    RtsLogon {
        status: u8,
    },
    /// A ResendRequest the participant sent (FIX; BeginSeqNo, EndSeqNo with 0 = infinity).
    ResendRequest {
        begin: u64,
        end: u64,
    },
    /// A Retransmission Request the RTS answered (status 0 = served).
    RtsRequest {
        channel: u16,
        begin: u32,
        end: u32,
        status: u8,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Observation {
    pub site: Site,
    /// Wall time.
    pub at: Timestamp,
    #[serde(flatten)]
    pub what: What,
}

/// RetransStatus of a Retransmission Response (OMD §3.2), in words.
fn retrans_status_text(status: u8) -> &'static str {
    match status {
        0 => "accepted",
        1 => "unknown channel",
        2 => "messages not available",
        100 => "exceeds the range a request may ask for",
        101 => "exceeds the requests allowed per day",
        _ => "refused",
    }
}

/// Sequence numbers presented at a logon, as the gateway saw them. The `Activity` stream does not
/// carry these yet; a runtime that knows them feeds them here.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogonDetail {
    pub comp_id: String,
    pub site: Site,
    pub at: Timestamp,
    /// The Logon message's own sequence number.
    pub logon_seq: u32,
    /// Next Expected Sequence Number in the Logon.
    pub next_expected: u32,
    /// What the exchange expected next from the participant, and would send next.
    pub exchange_in_next: u32,
    pub exchange_out_next: u32,
    pub accepted: bool,
    pub reason: Option<String>,
}

/// The exchange's own checks, measured by the runtime.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Default)]
pub struct ExchangeChecks {
    /// Failover start to the backup site accepting logons; computed from the times given to the
    /// log when absent.
    pub rto_ms: Option<u64>,
    /// Acknowledged orders missing at the backup.
    pub acked_orders_lost: u64,
    pub state_hashes_equal: bool,
    /// Free-text evidence (hashes, counts).
    pub detail: String,
}

/// The activity of a session, per participant, plus the exchange's failover times.
pub struct ActivityLog {
    session: Session,
    clock: Clock,
    participants: Vec<Participant>,
    by_comp: BTreeMap<String, usize>,
    conns: BTreeMap<(Site, u64), usize>,
    obs: Vec<Vec<Observation>>,
    failover_start: Option<Timestamp>,
    backup_open: Option<Timestamp>,
    dr_signal: Option<Timestamp>,
    /// Records that could not be tied to a participant (unknown Comp ID, refused connections).
    unattributed: Vec<(Site, Timestamp, String)>,
    /// Append-only journal of every record (see [`ActivityLog::open`]).
    journal: Option<File>,
}

/// One line of the activity journal.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "record", rename_all = "snake_case")]
enum LogRecord {
    Start {
        clock: Clock,
    },
    Observed {
        participant: String,
        obs: Observation,
    },
    Connection {
        site: Site,
        connection: u64,
        participant: String,
    },
    FailoverStarted {
        at: Timestamp,
    },
    BackupOpened {
        at: Timestamp,
    },
    DrSignal {
        at: Timestamp,
    },
    Unattributed {
        site: Site,
        at: Timestamp,
        note: String,
    },
}

impl ActivityLog {
    pub fn new(session: &Session, clock: Clock, participants: Vec<Participant>) -> ActivityLog {
        let mut by_comp = BTreeMap::new();
        for (i, p) in participants.iter().enumerate() {
            for c in &p.comp_ids {
                by_comp.insert(c.clone(), i);
            }
        }
        ActivityLog {
            session: session.clone(),
            clock,
            obs: vec![Vec::new(); participants.len()],
            participants,
            by_comp,
            conns: BTreeMap::new(),
            failover_start: None,
            backup_open: None,
            dr_signal: None,
            unattributed: Vec::new(),
            journal: None,
        }
    }

    /// A log journalled to `path` (append-only JSON lines, each written through to the OS before
    /// the call returns). Records already in the file are replayed first, so a restart of the
    /// runtime in the middle of a session loses no activity record; the drill keeps the clock
    /// it started with (see [`ActivityLog::clock`]). A torn last line is cut off.
    pub fn open(
        path: &Path,
        session: &Session,
        clock: Clock,
        participants: Vec<Participant>,
    ) -> std::io::Result<ActivityLog> {
        let mut log = ActivityLog::new(session, clock, participants);
        let mut file = std::fs::OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .open(path)?;
        let mut text = String::new();
        file.seek(SeekFrom::Start(0))?;
        file.read_to_string(&mut text)?;
        let mut good = 0usize;
        let mut offset = 0usize;
        let mut started = false;
        for (i, line) in text.split_inclusive('\n').enumerate() {
            offset += line.len();
            if !line.ends_with('\n') {
                break;
            }
            if line.trim().is_empty() {
                good = offset;
                continue;
            }
            let rec: LogRecord = serde_json::from_str(line.trim()).map_err(|e| {
                std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    format!("{} line {}: {e}", path.display(), i + 1),
                )
            })?;
            if matches!(rec, LogRecord::Start { .. }) {
                started = true;
            }
            log.apply(rec);
            good = offset;
        }
        if good < text.len() {
            file.set_len(good as u64)?;
        }
        log.journal = Some(file);
        if !started {
            log.write(&LogRecord::Start { clock })?;
        }
        Ok(log)
    }

    /// The clock of the drill (the journalled one after a restart).
    pub fn clock(&self) -> Clock {
        self.clock
    }

    /// Force the journal to disk (at the failover and at the end of the session).
    pub fn sync(&mut self) -> std::io::Result<()> {
        match &self.journal {
            Some(f) => f.sync_data(),
            None => Ok(()),
        }
    }

    fn write(&mut self, rec: &LogRecord) -> std::io::Result<()> {
        if let Some(f) = self.journal.as_mut() {
            let mut line = serde_json::to_string(rec).expect("records serialise");
            line.push('\n');
            f.write_all(line.as_bytes())?;
        }
        Ok(())
    }

    /// Journal and apply one record.
    fn keep(&mut self, rec: LogRecord) {
        if let Err(e) = self.write(&rec) {
            // Tracking must not stop the session; the record is still kept in memory.
            self.unattributed.push((
                Site::Primary,
                Timestamp::default(),
                format!("activity journal write failed: {e}"),
            ));
            self.journal = None;
        }
        self.apply(rec);
    }

    fn index(&self, id: &str) -> Option<usize> {
        self.participants.iter().position(|p| p.id == id)
    }

    fn apply(&mut self, rec: LogRecord) {
        match rec {
            LogRecord::Start { clock } => self.clock = clock,
            LogRecord::Observed { participant, obs } => {
                if let Some(i) = self.index(&participant) {
                    self.obs[i].push(obs);
                }
            }
            LogRecord::Connection {
                site,
                connection,
                participant,
            } => {
                if let Some(i) = self.index(&participant) {
                    self.conns.insert((site, connection), i);
                }
            }
            LogRecord::FailoverStarted { at } => self.failover_start = Some(at),
            LogRecord::BackupOpened { at } => self.backup_open = Some(at),
            LogRecord::DrSignal { at } => self.dr_signal = Some(at),
            LogRecord::Unattributed { site, at, note } => self.unattributed.push((site, at, note)),
        }
    }

    pub fn participants(&self) -> &[Participant] {
        &self.participants
    }

    /// Everything seen of a participant, in arrival order.
    pub fn observations(&self, id: &str) -> &[Observation] {
        self.participants
            .iter()
            .position(|p| p.id == id)
            .map(|i| self.obs[i].as_slice())
            .unwrap_or(&[])
    }

    pub fn unattributed(&self) -> &[(Site, Timestamp, String)] {
        &self.unattributed
    }

    fn push(&mut self, i: usize, site: Site, at: Timestamp, what: What) {
        let participant = self.participants[i].id.clone();
        self.keep(LogRecord::Observed {
            participant,
            obs: Observation { site, at, what },
        });
    }

    fn note(&mut self, site: Site, at: Timestamp, note: String) {
        self.keep(LogRecord::Unattributed { site, at, note });
    }

    fn comp(&self, c: &str) -> Option<usize> {
        self.by_comp.get(c).copied()
    }

    /// One activity record from a site.
    pub fn record(&mut self, site: Site, a: &Activity) {
        match a {
            Activity::Lookup {
                comp_id,
                accepted,
                at,
                peer,
            } => match comp_id.as_deref().and_then(|c| self.comp(c)) {
                Some(i) => self.push(
                    i,
                    site,
                    *at,
                    What::Lookup {
                        accepted: *accepted,
                    },
                ),
                None => self.note(
                    site,
                    *at,
                    format!("lookup from {peer} for {comp_id:?}, accepted {accepted}"),
                ),
            },
            Activity::SessionUp {
                comp_id,
                connection,
                sequences,
                at,
            } => {
                if let Some(i) = self.comp(comp_id.as_str()) {
                    self.keep(LogRecord::Connection {
                        site,
                        connection: *connection,
                        participant: self.participants[i].id.clone(),
                    });
                    self.push(
                        i,
                        site,
                        *at,
                        What::LogonAccepted {
                            connection: *connection,
                        },
                    );
                    if let Some(q) = sequences {
                        self.push(
                            i,
                            site,
                            *at,
                            What::LogonSequences {
                                logon_seq: q.logon_seq,
                                next_expected: q.next_expected,
                                exchange_in_next: q.exchange_in_next,
                                exchange_out_next: q.exchange_out_next,
                                accepted: true,
                            },
                        );
                    }
                }
            }
            Activity::SessionDown {
                comp_id, cause, at, ..
            } => {
                if let Some(i) = self.comp(comp_id.as_str()) {
                    self.push(
                        i,
                        site,
                        *at,
                        What::SessionDown {
                            cause: cause.clone(),
                        },
                    );
                }
            }
            // A lookup or logon refused with the Comp ID known (a Comp ID of another platform,
            // or logons closed on the platform: Session Status 7): the participant's evidence.
            Activity::Refused {
                comp_id,
                peer,
                platform,
                reason,
                at,
            } => {
                let who = comp_id.as_ref().and_then(|c| self.comp(c.as_str()));
                match who {
                    Some(i) => self.push(
                        i,
                        site,
                        *at,
                        What::LogonRefused {
                            reason: format!("{}: {reason}", platform_name(*platform)),
                        },
                    ),
                    None => self.note(
                        site,
                        *at,
                        format!(
                            "{} refused {comp_id:?} from {peer}: {reason}",
                            platform_name(*platform)
                        ),
                    ),
                }
            }
            // Refused before any session: the record carries no Comp ID.
            Activity::Disconnected {
                connection,
                reason,
                at,
                ..
            } if !self.conns.contains_key(&(site, *connection)) => self.note(
                site,
                *at,
                format!("connection {connection} refused: {reason}"),
            ),
            Activity::Inbound {
                comp_id,
                seq,
                msg_type,
                poss_resend,
                at,
            } => {
                if let Some(i) = self.comp(comp_id.as_str()) {
                    self.push(
                        i,
                        site,
                        *at,
                        What::Inbound {
                            seq: *seq,
                            msg_type: *msg_type,
                            poss_resend: *poss_resend,
                        },
                    );
                }
            }
            Activity::Outbound {
                comp_id,
                seq,
                message,
                at,
            } => {
                if let Some(i) = self.comp(comp_id.as_str()) {
                    let what = match message.as_ref() {
                        Message::ExecutionReport(r) => match r.exec_type {
                            Some(ExecType::New) => What::OrderAccepted { seq: *seq },
                            Some(ExecType::Trade) => What::Fill { seq: *seq },
                            Some(ExecType::Reject) => What::Rejected {
                                seq: *seq,
                                message: format!("order rejected, code {:?}", r.order_reject_code),
                            },
                            _ => What::Outbound {
                                seq: *seq,
                                message: "ExecutionReport".into(),
                            },
                        },
                        Message::BusinessMessageReject(r) => What::Rejected {
                            seq: *seq,
                            message: format!("business reject {:?}", r.business_reject_code),
                        },
                        m => What::Outbound {
                            seq: *seq,
                            message: m.name().into(),
                        },
                    };
                    self.push(i, site, *at, what);
                }
            }
            Activity::ResendRequest {
                comp_id,
                begin,
                end,
                at,
            } => {
                if let Some(i) = self.comp(comp_id.as_str()) {
                    self.push(
                        i,
                        site,
                        *at,
                        What::ResendRequest {
                            begin: *begin,
                            end: *end,
                        },
                    );
                }
            }
            // Connections before logon, engine phases, site state changes (the runtime calls
            // `failover_started` / `backup_opened`): not scored.
            _ => {}
        }
    }

    /// The collector fell behind a site's activity stream and `n` records were lost
    /// (`broadcast::error::RecvError::Lagged(n)`): said in the report, never silently.
    pub fn record_lagged(&mut self, site: Site, at: Timestamp, n: u64) {
        self.note(
            site,
            at,
            format!("{n} activity records lost: the collector lagged"),
        );
    }

    /// One record of a site's market-data feed: RTS logons and requests (attributed by the RTS
    /// username: a Comp ID or the participant's id, e.g. `IV0005` for a vendor) and the DR
    /// signal (the backup site's first DR signal after the failover started is the drill's DR
    /// time).
    pub fn record_feed(&mut self, site: Site, a: &FeedActivity) {
        let who = |log: &ActivityLog, user: &Option<String>| {
            user.as_deref().and_then(|u| {
                log.comp(u)
                    .or_else(|| log.participants.iter().position(|p| p.id == u))
            })
        };
        match a {
            FeedActivity::RtsLogon {
                user,
                status,
                at,
                peer,
                ..
            } => match who(self, user) {
                Some(i) => self.push(i, site, *at, What::RtsLogon { status: *status }),
                None => self.note(
                    site,
                    *at,
                    format!("RTS logon from {peer} as {user:?} refused (SessionStatus {status})"),
                ),
            },
            FeedActivity::RtsRequest {
                user,
                channel,
                begin,
                end,
                status,
                at,
                ..
            } => {
                if let Some(i) = who(self, user) {
                    self.push(
                        i,
                        site,
                        *at,
                        What::RtsRequest {
                            channel: *channel,
                            begin: *begin,
                            end: *end,
                            status: *status,
                        },
                    );
                }
            }
            // The backup site's signal: during a leadership transfer the old site may serve
            // again for a moment and signal too; that one does not count.
            FeedActivity::DrSignal { at, .. } => {
                if site == Site::Backup
                    && self.dr_signal.is_none()
                    && self.failover_start.is_some_and(|f| *at >= f)
                {
                    self.dr_signal_sent(*at);
                }
            }
            FeedActivity::RtsConnected { .. } | FeedActivity::RtsClosed { .. } => {}
        }
    }

    /// Sequence numbers presented at a logon (accepted or refused), when the runtime knows them.
    pub fn record_logon(&mut self, d: &LogonDetail) {
        let Some(i) = self.comp(&d.comp_id) else {
            return;
        };
        self.push(
            i,
            d.site,
            d.at,
            What::LogonSequences {
                logon_seq: d.logon_seq,
                next_expected: d.next_expected,
                exchange_in_next: d.exchange_in_next,
                exchange_out_next: d.exchange_out_next,
                accepted: d.accepted,
            },
        );
        if !d.accepted {
            self.push(
                i,
                d.site,
                d.at,
                What::LogonRefused {
                    reason: d.reason.clone().unwrap_or_else(|| "refused".into()),
                },
            );
        }
    }

    /// A logon the gateway refused, attributed to a Comp ID by the runtime.
    pub fn record_logon_refused(&mut self, comp_id: &str, site: Site, at: Timestamp, reason: &str) {
        if let Some(i) = self.comp(comp_id) {
            self.push(
                i,
                site,
                at,
                What::LogonRefused {
                    reason: reason.into(),
                },
            );
        }
    }

    /// The exchange started the failover (wall time).
    pub fn failover_started(&mut self, at: Timestamp) {
        self.keep(LogRecord::FailoverStarted { at });
    }

    /// The backup site opened its Lookup Service and gateways (wall time).
    pub fn backup_opened(&mut self, at: Timestamp) {
        self.keep(LogRecord::BackupOpened { at });
    }

    /// The Disaster Recovery Signal went out on the DR channel (wall time).
    pub fn dr_signal_sent(&mut self, at: Timestamp) {
        self.keep(LogRecord::DrSignal { at });
    }

    /// The exchange saw an information vendor recover its market image (through the refresh
    /// channels or RTS of the backup site). `who` is the participant id or firm.
    pub fn market_image_recovered(&mut self, who: &str, at: Timestamp, detail: &str) {
        let i = self
            .participants
            .iter()
            .position(|p| p.id == who || p.firm == who || p.comp_ids.iter().any(|c| c == who));
        if let Some(i) = i {
            self.push(
                i,
                Site::Backup,
                at,
                What::MarketImageRecovered {
                    detail: detail.into(),
                },
            );
        }
    }

    fn label(&self, wall: Timestamp) -> String {
        self.clock.label(&self.session, wall)
    }

    fn ms(&self, from: Timestamp, to: Timestamp) -> u64 {
        to.saturating_sub(from) / 1_000_000
    }

    /// Scorecards and the exchange's checks.
    pub fn report(&self, exchange: &ExchangeChecks) -> crate::report::Report {
        use crate::report::*;
        let rto_ms = exchange
            .rto_ms
            .or(match (self.failover_start, self.backup_open) {
                (Some(a), Some(b)) => Some(self.ms(a, b)),
                _ => None,
            });
        let participants = (0..self.participants.len())
            .map(|i| self.scorecard(i))
            .collect();
        let s = &self.session;
        let mut timeline = Vec::new();
        for st in self.clock.steps(s) {
            timeline.push(TimelineEntry {
                at_wall_ms: st.wall.millis(),
                session_time: s.label(st.at),
                event: match &st.kind {
                    crate::clock::StepKind::PhaseStart { phase } => format!("phase {phase} starts"),
                    crate::clock::StepKind::PhaseEnd { phase } => format!("phase {phase} ends"),
                    crate::clock::StepKind::Failover => "failover scheduled".into(),
                    crate::clock::StepKind::SessionEnd => "session ends".into(),
                },
            });
        }
        for (t, what) in [
            (self.failover_start, "failover started"),
            (self.backup_open, "backup site open"),
            (self.dr_signal, "DR signal sent"),
        ] {
            if let Some(t) = t {
                timeline.push(TimelineEntry {
                    at_wall_ms: t.millis(),
                    session_time: self.label(t),
                    event: what.into(),
                });
            }
        }
        timeline.sort_by_key(|e| e.at_wall_ms);
        Report {
            session: SessionInfo {
                name: s.name.clone(),
                reference: s.reference.clone(),
                date: s.date.to_string(),
                time_zone: s.time_zone.name().into(),
                speed: self.clock.speed,
                wall_origin_ms: self.clock.wall_origin.millis(),
                phases: s
                    .phases
                    .iter()
                    .map(|p| PhaseInfo {
                        id: p.id.clone(),
                        title: p.title.clone(),
                        start: p.start_label.clone(),
                        end: p.end_label.clone(),
                        site: p.site,
                        start_wall_ms: self.clock.wall(p.start).millis(),
                        end_wall_ms: self.clock.wall(p.end).millis(),
                    })
                    .collect(),
            },
            failover: FailoverReport {
                mode: s.failover.mode,
                orders: s.failover.orders,
                sequence: s.failover.sequence,
                scheduled_at: s.failover.at_label.clone(),
                started_wall_ms: self.failover_start.map(|t| t.millis()),
                backup_open_wall_ms: self.backup_open.map(|t| t.millis()),
                dr_signal_wall_ms: self.dr_signal.map(|t| t.millis()),
                rto_ms,
                acked_orders_lost: exchange.acked_orders_lost,
                state_hashes_equal: exchange.state_hashes_equal,
                passed: rto_ms.is_some()
                    && exchange.acked_orders_lost == 0
                    && exchange.state_hashes_equal,
                detail: exchange.detail.clone(),
            },
            participants,
            timeline,
            unattributed: self.unattributed.len(),
        }
    }

    fn scorecard(&self, i: usize) -> crate::report::Scorecard {
        use crate::report::*;
        let p = &self.participants[i];
        let obs = &self.obs[i];
        let s = &self.session;
        let primary_phase = s
            .phase_for_site(Site::Primary)
            .map_or("primary".into(), |p| p.id.clone());
        let backup_phase = s
            .phase_for_site(Site::Backup)
            .map_or("backup".into(), |p| p.id.clone());
        let failover_phase = s
            .failover_phase()
            .map_or("failover".into(), |p| p.id.clone());
        let fstart = self.failover_start;
        let after_failover = |o: &&Observation| fstart.is_none_or(|f| o.at >= f);
        let at_site = |site: Site| obs.iter().filter(move |o| o.site == site);
        let mut checks = Vec::new();
        let mut check = |name: &str, phase: &str, passed: bool, detail: String| {
            checks.push(Check {
                name: name.into(),
                phase: phase.into(),
                passed,
                detail,
            });
        };

        let logons = |site: Site| {
            at_site(site)
                .filter(|o| matches!(o.what, What::LogonAccepted { .. }))
                .collect::<Vec<_>>()
        };
        let count = |site: Site, f: fn(&What) -> bool| at_site(site).filter(|o| f(&o.what)).count();
        let counters = |site: Site| SiteCounters {
            lookups: count(site, |w| matches!(w, What::Lookup { accepted: true })),
            logons: count(site, |w| matches!(w, What::LogonAccepted { .. })),
            refused_logons: count(site, |w| matches!(w, What::LogonRefused { .. })),
            orders: count(
                site,
                |w| matches!(w, What::Inbound { msg_type, poss_resend: false, .. } if *msg_type == twinsite_ocg::NewOrder::MSG_TYPE),
            ),
            accepted: count(site, |w| matches!(w, What::OrderAccepted { .. })),
            fills: count(site, |w| matches!(w, What::Fill { .. })),
            rejects: count(site, |w| matches!(w, What::Rejected { .. })),
            rts_logons: count(site, |w| matches!(w, What::RtsLogon { status: 0 })),
            rts_requests: count(site, |w| matches!(w, What::RtsRequest { status: 0, .. })),
            resend_requests: count(site, |w| matches!(w, What::ResendRequest { .. })),
        };
        let primary = counters(Site::Primary);
        let backup = counters(Site::Backup);
        let mut backup_first_logon_ms = None;
        let mut backup_first_order_ms = None;

        if p.kind == ParticipantKind::InformationVendor {
            // What the exchange can see of a vendor is its use of the retransmission service
            // (multicast and the refresh channels leave no trace at the exchange): RTS logons
            // and requests, at which site, and when relative to the DR signal.
            let rts_served =
                |o: &&Observation| matches!(o.what, What::RtsRequest { status: 0, .. });
            let rts_logon = |o: &&Observation| matches!(o.what, What::RtsLogon { status: 0 });
            let channels_of = |site: Site, from: Option<Timestamp>| {
                let mut c: Vec<u16> = at_site(site)
                    .filter(|o| from.is_none_or(|f| o.at >= f))
                    .filter_map(|o| match o.what {
                        What::RtsRequest {
                            channel, status: 0, ..
                        } => Some(channel),
                        _ => None,
                    })
                    .collect();
                c.sort_unstable();
                c.dedup();
                c.iter()
                    .map(|c| c.to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            // 1. Used the RTS at the primary site before the failover.
            let before = |o: &&Observation| fstart.is_none_or(|f| o.at < f);
            let pl = at_site(Site::Primary)
                .filter(before)
                .filter(rts_logon)
                .count();
            let pr = at_site(Site::Primary)
                .filter(before)
                .filter(rts_served)
                .count();
            let refused_rts = obs
                .iter()
                .filter(|o| matches!(o.what, What::RtsLogon { status } if status != 0))
                .count();
            check(
                "rts_primary",
                &primary_phase,
                pl > 0 && pr > 0,
                if pl > 0 {
                    format!(
                        "{pl} RTS logons and {pr} retransmission requests served at the primary site (channels {})",
                        channels_of(Site::Primary, None)
                    )
                } else {
                    format!("no RTS logon at the primary site ({refused_rts} refused RTS logons)")
                },
            );
            // 2. Recovered the market image at the backup site after the DR signal: an explicit
            // record from the runtime, or the RTS of the backup site used after the signal.
            let since = self.dr_signal.or(fstart);
            let after_dr = |o: &&Observation| since.is_none_or(|t| o.at >= t);
            let rec = obs
                .iter()
                .filter(after_failover)
                .find(|o| matches!(o.what, What::MarketImageRecovered { .. }));
            let bl = at_site(Site::Backup).filter(after_dr).find(rts_logon);
            let bl_n = at_site(Site::Backup)
                .filter(after_dr)
                .filter(rts_logon)
                .count();
            let br = at_site(Site::Backup)
                .filter(after_dr)
                .filter(rts_served)
                .count();
            let old_site = at_site(Site::Primary)
                .filter(after_failover)
                .filter(|o| matches!(o.what, What::RtsLogon { .. } | What::RtsRequest { .. }))
                .count();
            let after_label = |at: Timestamp| {
                since
                    .map(|t| format!(", {} ms after the DR signal", self.ms(t, at)))
                    .unwrap_or_default()
            };
            match (rec, bl) {
                (Some(o), _) => {
                    let d = match &o.what {
                        What::MarketImageRecovered { detail } => detail.clone(),
                        _ => String::new(),
                    };
                    check(
                        "market_image_recovered",
                        &backup_phase,
                        true,
                        format!("image recovered at {}{}: {d}", self.label(o.at), after_label(o.at)),
                    );
                }
                (None, Some(o)) if br > 0 => check(
                    "market_image_recovered",
                    &backup_phase,
                    true,
                    format!(
                        "logged on to the backup site's RTS at {}{}; {bl_n} RTS logons and {br} retransmission requests served there (channels {})",
                        self.label(o.at),
                        after_label(o.at),
                        channels_of(Site::Backup, since)
                    ),
                ),
                (None, lb) => check(
                    "market_image_recovered",
                    &backup_phase,
                    false,
                    match since {
                        Some(t) => format!(
                            "no recovery of the market image seen at the backup site after the DR signal at {}: {}{}",
                            self.label(t),
                            if let Some(first) = lb {
                                // What the backup site's RTS saw of it: refused requests (with
                                // their RetransStatus), or none at all.
                                let refused: Vec<String> = at_site(Site::Backup)
                                    .filter(after_dr)
                                    .filter_map(|o| match o.what {
                                        What::RtsRequest { channel, begin, end, status } if status != 0 => Some(format!(
                                            "channel {channel} {begin}-{end} at {}: RetransStatus {status} ({})",
                                            self.label(o.at),
                                            retrans_status_text(status)
                                        )),
                                        _ => None,
                                    })
                                    .collect();
                                let asked = if refused.is_empty() {
                                    "it asked for no retransmission there (a vendor must use the backup site's RTS after the DR signal, e.g. for the last messages it holds)".to_string()
                                } else {
                                    format!(
                                        "{} requests refused: {}{}",
                                        refused.len(),
                                        refused.iter().take(5).cloned().collect::<Vec<_>>().join("; "),
                                        if refused.len() > 5 { "; ..." } else { "" }
                                    )
                                };
                                format!(
                                    "{bl_n} RTS logons at the backup site (the first at {}{}) but no retransmission request served there: {asked}",
                                    self.label(first.at),
                                    after_label(first.at)
                                )
                            } else {
                                "no RTS logon at the backup site".into()
                            },
                            if old_site > 0 {
                                format!("; {old_site} RTS records at the primary site after the failover")
                            } else {
                                String::new()
                            }
                        ),
                        None => "no DR signal was sent, and no recovery was seen".into(),
                    },
                ),
            }
        } else {
            // 1. Logged in at the primary site.
            let lp = logons(Site::Primary);
            check(
                "logged_in",
                &primary_phase,
                !lp.is_empty(),
                match lp.first() {
                    Some(o) => format!(
                        "first logon at {} ({} logons at the primary site)",
                        self.label(o.at),
                        lp.len()
                    ),
                    None => format!(
                        "no accepted logon at the primary site ({} lookups, {} refused logons)",
                        primary.lookups, primary.refused_logons
                    ),
                },
            );
            // 2. Traded there.
            check(
                "traded",
                &primary_phase,
                primary.orders > 0 && primary.accepted + primary.fills > 0,
                format!(
                    "{} orders entered, {} accepted, {} fills, {} rejects at the primary site",
                    primary.orders, primary.accepted, primary.fills, primary.rejects
                ),
            );
            // 3. Reconnected through the Lookup Service after the failover.
            let lk = at_site(Site::Backup)
                .filter(after_failover)
                .find(|o| matches!(o.what, What::Lookup { accepted: true }));
            let old_gateway_logons = at_site(Site::Primary)
                .filter(after_failover)
                .filter(|o| matches!(o.what, What::LogonAccepted { .. }))
                .count();
            check(
                "lookup_after_failover",
                &failover_phase,
                lk.is_some(),
                match lk {
                    Some(o) => format!(
                        "looked up its gateway at the backup site at {}",
                        self.label(o.at)
                    ),
                    None => format!(
                        "no lookup at the backup site after the failover{}; {} lookups in all, all at the primary site{}",
                        fstart.map(|t| format!(" started at {}", self.label(t))).unwrap_or_default(),
                        primary.lookups,
                        if old_gateway_logons > 0 {
                            format!("; {old_gateway_logons} logons at the old gateway after the failover")
                        } else {
                            String::new()
                        }
                    ),
                },
            );
            // 4. Presented the right sequence numbers.
            let lb = logons(Site::Backup);
            let last_primary_seq = at_site(Site::Primary)
                .filter_map(|o| match o.what {
                    What::Inbound { seq, .. } => Some(seq),
                    _ => None,
                })
                .max();
            let first_backup_seq = at_site(Site::Backup).find_map(|o| match o.what {
                What::Inbound { seq, .. } => Some(seq),
                _ => None,
            });
            let backup_seqs = at_site(Site::Backup).find_map(|o| match o.what {
                What::LogonSequences {
                    logon_seq,
                    next_expected,
                    exchange_in_next,
                    exchange_out_next,
                    accepted: true,
                } => Some((
                    logon_seq,
                    next_expected,
                    exchange_in_next,
                    exchange_out_next,
                )),
                _ => None,
            });
            let refused: Vec<String> = at_site(Site::Backup)
                .filter_map(|o| match &o.what {
                    What::LogonRefused { reason } => Some(format!("{} {reason}", self.label(o.at))),
                    _ => None,
                })
                .collect();
            let refused_note = if refused.is_empty() {
                String::new()
            } else {
                format!("; refused logons: {}", refused.join(", "))
            };
            let reset = s.failover.sequence == crate::session::SequenceMode::Reset;
            let (ok, detail) = match (lb.first(), backup_seqs) {
                (None, _) => (
                    false,
                    format!("no logon accepted at the backup site{refused_note}"),
                ),
                (Some(_), Some((ls, ne, inn, _))) if !reset && ls == 1 && inn > 1 => (
                    false,
                    format!("logged on with sequence number 1; the exchange expected {inn} (next expected {ne})"),
                ),
                (Some(o), seqs) => {
                    // Continue mode: numbering carries on from the primary site (a participant
                    // may resend what the primary saw but never committed); reset: from 1.
                    let continued = match (last_primary_seq, first_backup_seq) {
                        (Some(a), Some(b)) => reset || a <= 1 || b > 1,
                        _ => true,
                    };
                    let seq_note = match seqs {
                        Some((ls, ne, inn, out)) => format!(
                            "logon sequence {ls} (exchange expected {inn}), next expected {ne} (exchange would send {out})"
                        ),
                        None => "the gateway accepts a logon only at or above the sequence number it expects".into(),
                    };
                    let cont = match (last_primary_seq, first_backup_seq) {
                        (Some(a), Some(b)) if b <= a => format!(
                            "; last message at the primary site {a}, first at the backup site {b} (resent {b} to {a})"
                        ),
                        (Some(a), Some(b)) => format!(
                            "; last message at the primary site {a}, first at the backup site {b}"
                        ),
                        _ => String::new(),
                    };
                    (
                        continued,
                        format!(
                            "logon accepted at the backup site at {}: {seq_note}{cont}{refused_note}",
                            self.label(o.at)
                        ),
                    )
                }
            };
            check("sequence_numbers", &backup_phase, ok, detail);
            // 5. Recovered missed messages.
            let away_from = obs
                .iter()
                .filter(|o| o.site == Site::Primary)
                .filter(|o| matches!(o.what, What::SessionDown { .. }))
                .map(|o| o.at)
                .next_back()
                .or(fstart);
            let back_at = lb.first().map(|o| o.at);
            let missed: Vec<u32> = obs
                .iter()
                .filter(|o| {
                    away_from.is_some_and(|a| o.at >= a) && back_at.is_none_or(|b| o.at < b)
                })
                .filter_map(|o| match o.what {
                    What::OrderAccepted { seq } | What::Fill { seq } => Some(seq),
                    What::Rejected { seq, .. } | What::Outbound { seq, .. } => Some(seq),
                    _ => None,
                })
                .collect();
            let resent = at_site(Site::Backup)
                .filter(|o| {
                    matches!(
                        o.what,
                        What::Inbound {
                            poss_resend: true,
                            ..
                        }
                    )
                })
                .count();
            let (ok, detail) = match (back_at, backup_seqs) {
                (None, _) => (
                    false,
                    format!(
                        "never logged on at the backup site; {} messages owed to it were not delivered",
                        missed.len()
                    ),
                ),
                (Some(_), Some((_, ne, _, _))) => {
                    let first = missed.iter().min().copied();
                    let ok = first.is_none_or(|f| ne <= f);
                    (
                        ok,
                        format!(
                            "{} messages generated while away{}; it asked for replay from {ne}; {resent} of its own messages resent",
                            missed.len(),
                            first.map(|f| format!(" (from sequence {f})")).unwrap_or_default()
                        ),
                    )
                }
                (Some(_), None) => (
                    true,
                    format!(
                        "{} messages generated while away were replayed by the gateway from its next expected sequence number at logon; {resent} of its own messages resent",
                        missed.len()
                    ),
                ),
            };
            // FIX participants may also ask for gaps with ResendRequests: the evidence lists them.
            let resends: Vec<String> = at_site(Site::Backup)
                .filter_map(|o| match o.what {
                    What::ResendRequest { begin, end: 0 } => Some(format!("{begin}-")),
                    What::ResendRequest { begin, end } => Some(format!("{begin}-{end}")),
                    _ => None,
                })
                .collect();
            let detail = if resends.is_empty() {
                detail
            } else {
                format!(
                    "{detail}; ResendRequests at the backup site: {}",
                    resends.join(", ")
                )
            };
            check("recovered_missed_messages", &backup_phase, ok, detail);
            // 6. Traded at the backup site.
            check(
                "traded",
                &backup_phase,
                backup.orders > 0 && backup.accepted + backup.fills > 0,
                format!(
                    "{} orders entered, {} accepted, {} fills, {} rejects at the backup site",
                    backup.orders, backup.accepted, backup.fills, backup.rejects
                ),
            );
            // 7. Time from the backup opening to the first logon and first order.
            let open = self.backup_open.or(fstart);
            let first_order = at_site(Site::Backup).find(|o| {
                matches!(o.what, What::Inbound { msg_type, .. } if msg_type == twinsite_ocg::NewOrder::MSG_TYPE)
            });
            if let (Some(open), Some(l)) = (open, lb.first()) {
                backup_first_logon_ms = Some(self.ms(open, l.at));
            }
            if let (Some(open), Some(o)) = (open, first_order) {
                backup_first_order_ms = Some(self.ms(open, o.at));
            }
            let speed = self.clock.speed;
            let fmt = |ms: Option<u64>, what: &str| match ms {
                Some(ms) => format!(
                    "{what} {ms} ms after the backup site opened ({} s of session time)",
                    ms * speed / 1000
                ),
                None => format!("no {what} at the backup site"),
            };
            check(
                "backup_first_logon",
                &backup_phase,
                backup_first_logon_ms.is_some(),
                fmt(backup_first_logon_ms, "first logon"),
            );
            check(
                "backup_first_order",
                &backup_phase,
                backup_first_order_ms.is_some(),
                fmt(backup_first_order_ms, "first order"),
            );
        }
        let passed = checks.iter().all(|c| c.passed);
        let first_of = |site: Site, f: fn(&What) -> bool| {
            at_site(site).find(|o| f(&o.what)).map(|o| o.at.millis())
        };
        Scorecard {
            id: p.id.clone(),
            firm: p.firm.clone(),
            kind: kind_name(p.kind).into(),
            comp_ids: p.comp_ids.clone(),
            passed,
            checks,
            primary,
            backup,
            backup_first_logon_ms,
            backup_first_order_ms,
            marks: Marks {
                primary_logon_wall_ms: first_of(Site::Primary, |w| {
                    matches!(w, What::LogonAccepted { .. })
                }),
                backup_lookup_wall_ms: first_of(Site::Backup, |w| {
                    matches!(w, What::Lookup { accepted: true })
                }),
                backup_logon_wall_ms: first_of(Site::Backup, |w| {
                    matches!(w, What::LogonAccepted { .. })
                }),
                backup_order_wall_ms: first_of(Site::Backup, |w| {
                    matches!(w, What::OrderAccepted { .. })
                }),
                image_recovered_wall_ms: first_of(Site::Backup, |w| {
                    matches!(w, What::MarketImageRecovered { .. })
                }),
            },
        }
    }
}

fn platform_name(p: twinsite_core::Platform) -> &'static str {
    match p {
        twinsite_core::Platform::OtpC => "OTP-C",
        twinsite_core::Platform::OtpCsc => "OTP-CSC",
    }
}
