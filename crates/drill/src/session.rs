//! The session file: what a practice session is (name, date, time zone, registration deadline,
//! phases, who may log in where, the failover step, market data), parsed from TOML and checked.
//! Every error names the file, line and column.

use chrono::{NaiveDate, NaiveDateTime, NaiveTime, TimeZone};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::Path;
use toml::Spanned;
use twinsite_core::{ParticipantKind, Platform, Site, Timestamp};

/// A session file that could not be read or is wrong: where, and what to do about it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{file}{}: {message}", .line.map(|l| format!(":{l}:{}", .column.unwrap_or(1))).unwrap_or_default())]
pub struct SessionError {
    pub file: String,
    /// 1-based line of the offending value, when known.
    pub line: Option<usize>,
    pub column: Option<usize>,
    pub message: String,
}

/// Which site serves during a phase.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PhaseSite {
    Primary,
    Backup,
    /// Nobody trades (the failover itself).
    None,
}

impl PhaseSite {
    pub fn site(self) -> Option<Site> {
        match self {
            PhaseSite::Primary => Some(Site::Primary),
            PhaseSite::Backup => Some(Site::Backup),
            PhaseSite::None => None,
        }
    }
}

/// How the failover is performed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FailoverMode {
    /// Planned leadership transfer to the backup.
    Scheduled,
    /// The primary site dies; the backup and the witness elect.
    Crash,
}

/// What happens to resting orders at the failover.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OrderSurvival {
    Keep,
    Cancel,
}

/// What happens to session sequence numbers at the failover.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SequenceMode {
    /// Participants log on with the numbers they had (the normal case).
    Continue,
    /// Everyone starts again at 1.
    Reset,
}

/// A phase of the session, times resolved to UTC.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Phase {
    pub id: String,
    pub title: String,
    pub start: Timestamp,
    pub end: Timestamp,
    /// As written, e.g. "08:00" or "~11:00".
    pub start_label: String,
    pub end_label: String,
    pub site: PhaseSite,
    /// The testing focus, in words.
    pub focus: Vec<String>,
}

impl Phase {
    pub fn contains(&self, t: Timestamp) -> bool {
        self.start <= t && t < self.end
    }
}

/// The failover step.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Failover {
    pub mode: FailoverMode,
    pub at: Timestamp,
    pub at_label: String,
    pub orders: OrderSurvival,
    pub sequence: SequenceMode,
}

/// A market-data channel as handed to participants.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Channel {
    pub id: u16,
    /// "OMD-C" or "OMD-CC".
    pub platform: String,
    /// "fulltick", "standard", "premium", "combined" (OMD-C); "cc-sse", "cc-szse" (OMD-CC);
    /// "refresh" (the refresh channel of the real-time channel listed before it); "dr".
    pub product: String,
    pub line_a: SocketAddr,
    pub line_b: SocketAddr,
}

/// Market-data settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MarketData {
    /// Retransmission service endpoints: primary site, then backup site.
    #[serde(default)]
    pub rts: Vec<SocketAddr>,
    /// Send the Disaster Recovery Signal on the DR channel at the failover.
    #[serde(default = "yes")]
    pub dr_signal: bool,
    /// Refresh-channel snapshot cycle, seconds of session time.
    #[serde(default = "refresh_secs")]
    pub refresh_interval_secs: u64,
    #[serde(default, rename = "channel")]
    pub channels: Vec<Channel>,
}

impl Default for MarketData {
    fn default() -> Self {
        MarketData {
            rts: Vec::new(),
            dr_signal: true,
            refresh_interval_secs: refresh_secs(),
            channels: Vec::new(),
        }
    }
}

/// A checked session.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Session {
    pub name: String,
    /// Circular or notice reference, e.g. "CT/154/23".
    pub reference: Option<String>,
    pub date: NaiveDate,
    #[serde(serialize_with = "ser_tz")]
    pub time_zone: Tz,
    pub registration_deadline: Timestamp,
    pub registration_deadline_label: String,
    /// Seed for issued passwords and anything random in the drill.
    pub seed: u64,
    pub description: String,
    pub phases: Vec<Phase>,
    /// Which platforms each participant kind may log in to.
    pub access: BTreeMap<ParticipantKind, BTreeSet<Platform>>,
    pub failover: Failover,
    /// The four Lookup Service endpoints: primary-site primary, primary-site mirror, backup-site
    /// primary, backup-site mirror.
    pub lookup: Vec<SocketAddr>,
    pub market_data: MarketData,
    /// At the end of the last phase the exchange logs out every session still logged on
    /// (reference §1.7: all open sessions are logged out by OCG-C at its service shutdown;
    /// participants are expected to log out before). `false`: they stay until they leave.
    pub logout_at_end: bool,
}

fn ser_tz<S: serde::Serializer>(tz: &Tz, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(tz.name())
}

fn yes() -> bool {
    true
}
fn refresh_secs() -> u64 {
    60
}
fn default_tz() -> Spanned<String> {
    Spanned::new(0..0, "Asia/Hong_Kong".to_string())
}
fn default_seed() -> u64 {
    20_231_125
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSession {
    name: String,
    #[serde(default)]
    reference: Option<String>,
    date: Spanned<String>,
    #[serde(default = "default_tz")]
    time_zone: Spanned<String>,
    registration_deadline: Spanned<String>,
    #[serde(default = "default_seed")]
    seed: u64,
    #[serde(default)]
    description: String,
    #[serde(rename = "phase")]
    phases: Vec<RawPhase>,
    access: Spanned<BTreeMap<String, Vec<String>>>,
    failover: RawFailover,
    lookup: Spanned<Vec<SocketAddr>>,
    #[serde(default)]
    market_data: MarketData,
    #[serde(default = "yes")]
    logout_at_end: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPhase {
    id: Spanned<String>,
    #[serde(default)]
    title: String,
    start: Spanned<String>,
    end: Spanned<String>,
    site: PhaseSite,
    #[serde(default)]
    focus: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFailover {
    mode: FailoverMode,
    at: Spanned<String>,
    #[serde(default = "keep")]
    orders: OrderSurvival,
    #[serde(default = "cont")]
    sequence: SequenceMode,
}

fn keep() -> OrderSurvival {
    OrderSurvival::Keep
}
fn cont() -> SequenceMode {
    SequenceMode::Continue
}

/// 1-based line and column of a byte offset.
pub fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let col = before.len() - before.rfind('\n').map_or(0, |i| i + 1) + 1;
    (line, col)
}

struct Ctx<'a> {
    file: &'a str,
    text: &'a str,
}

impl Ctx<'_> {
    fn err(
        &self,
        span: Option<std::ops::Range<usize>>,
        message: impl Into<String>,
    ) -> SessionError {
        let (line, column) = match span {
            Some(s) if !(s.start == 0 && s.end == 0) => {
                let (l, c) = line_col(self.text, s.start);
                (Some(l), Some(c))
            }
            _ => (None, None),
        };
        SessionError {
            file: self.file.to_string(),
            line,
            column,
            message: message.into(),
        }
    }
    fn at<T>(&self, s: &Spanned<T>, message: impl Into<String>) -> SessionError {
        self.err(Some(s.span()), message)
    }
}

/// A time of day, "HH:MM" or "HH:MM:SS", optionally "~" (about).
fn parse_time(s: &str) -> Option<NaiveTime> {
    let s = s.trim().trim_start_matches('~').trim();
    NaiveTime::parse_from_str(s, "%H:%M:%S")
        .or_else(|_| NaiveTime::parse_from_str(s, "%H:%M"))
        .ok()
}

fn local_to_utc(tz: Tz, dt: NaiveDateTime) -> Option<Timestamp> {
    let t = tz.from_local_datetime(&dt).earliest()?;
    u64::try_from(t.timestamp_nanos_opt()?).ok().map(Timestamp)
}

/// A timestamp in the session's time zone, "HH:MM:SS".
pub fn local_label(tz: Tz, t: Timestamp) -> String {
    let secs = (t.0 / 1_000_000_000) as i64;
    let nanos = (t.0 % 1_000_000_000) as u32;
    match chrono::DateTime::from_timestamp(secs, nanos) {
        Some(d) => d.with_timezone(&tz).format("%H:%M:%S").to_string(),
        None => "?".into(),
    }
}

/// A timestamp as "YYYY-MM-DD HH:MM:SS" in a time zone.
pub fn local_datetime_label(tz: Tz, t: Timestamp) -> String {
    let secs = (t.0 / 1_000_000_000) as i64;
    match chrono::DateTime::from_timestamp(secs, 0) {
        Some(d) => d.with_timezone(&tz).format("%Y-%m-%d %H:%M:%S").to_string(),
        None => "?".into(),
    }
}

impl Session {
    /// A timestamp as date and time in the session's zone.
    pub fn label_datetime(&self, t: Timestamp) -> String {
        local_datetime_label(self.time_zone, t)
    }

    /// Read and check a session file.
    pub fn load(path: &Path) -> Result<Session, SessionError> {
        let text = std::fs::read_to_string(path).map_err(|e| SessionError {
            file: path.display().to_string(),
            line: None,
            column: None,
            message: format!("cannot read the session file: {e}"),
        })?;
        Session::parse(&path.display().to_string(), &text)
    }

    /// Parse and check session TOML; `file` names it in errors.
    pub fn parse(file: &str, text: &str) -> Result<Session, SessionError> {
        let cx = Ctx { file, text };
        let raw: RawSession =
            toml::from_str(text).map_err(|e| cx.err(e.span(), e.message().trim().to_string()))?;
        let tz: Tz = raw.time_zone.get_ref().parse().map_err(|_| {
            cx.at(
                &raw.time_zone,
                format!(
                    "time_zone {:?} is not an IANA time zone (use \"Asia/Hong_Kong\")",
                    raw.time_zone.get_ref()
                ),
            )
        })?;
        let date = NaiveDate::parse_from_str(raw.date.get_ref(), "%Y-%m-%d").map_err(|_| {
            cx.at(
                &raw.date,
                format!("date {:?}: use YYYY-MM-DD", raw.date.get_ref()),
            )
        })?;
        let at_time = |s: &Spanned<String>, what: &str| -> Result<Timestamp, SessionError> {
            let t = parse_time(s.get_ref()).ok_or_else(|| {
                cx.at(
                    s,
                    format!("{what} {:?}: use HH:MM or HH:MM:SS", s.get_ref()),
                )
            })?;
            local_to_utc(tz, date.and_time(t)).ok_or_else(|| {
                cx.at(
                    s,
                    format!("{what} {:?} does not exist in {tz}", s.get_ref()),
                )
            })
        };

        // Registration deadline: a date (end of that day) or "YYYY-MM-DD HH:MM".
        let dl = raw.registration_deadline.get_ref().trim();
        let deadline_local = NaiveDateTime::parse_from_str(dl, "%Y-%m-%d %H:%M")
            .or_else(|_| NaiveDateTime::parse_from_str(dl, "%Y-%m-%dT%H:%M"))
            .or_else(|_| NaiveDateTime::parse_from_str(dl, "%Y-%m-%d %H:%M:%S"))
            .or_else(|_| {
                NaiveDate::parse_from_str(dl, "%Y-%m-%d")
                    .map(|d| d.and_hms_opt(23, 59, 59).expect("valid time"))
            })
            .map_err(|_| {
                cx.at(
                    &raw.registration_deadline,
                    format!(
                        "registration_deadline {dl:?}: use YYYY-MM-DD (end of that day) or \"YYYY-MM-DD HH:MM\""
                    ),
                )
            })?;
        let registration_deadline = local_to_utc(tz, deadline_local).ok_or_else(|| {
            cx.at(
                &raw.registration_deadline,
                "registration_deadline does not exist in the time zone",
            )
        })?;

        if raw.phases.is_empty() {
            return Err(cx.err(None, "the session has no [[phase]]: give at least one"));
        }
        let mut phases = Vec::new();
        let mut ids = BTreeSet::new();
        for p in &raw.phases {
            if !ids.insert(p.id.get_ref().clone()) {
                return Err(cx.at(
                    &p.id,
                    format!("phase id {:?} is used twice", p.id.get_ref()),
                ));
            }
            let start = at_time(&p.start, "phase start")?;
            let end = at_time(&p.end, "phase end")?;
            if end <= start {
                return Err(cx.at(
                    &p.end,
                    format!(
                        "phase {:?} ends at {} but starts at {}: the end must be after the start",
                        p.id.get_ref(),
                        p.end.get_ref(),
                        p.start.get_ref()
                    ),
                ));
            }
            phases.push((
                p,
                Phase {
                    id: p.id.get_ref().clone(),
                    title: if p.title.is_empty() {
                        p.id.get_ref().clone()
                    } else {
                        p.title.clone()
                    },
                    start,
                    end,
                    start_label: p.start.get_ref().trim().to_string(),
                    end_label: p.end.get_ref().trim().to_string(),
                    site: p.site,
                    focus: p.focus.clone(),
                },
            ));
        }
        phases.sort_by_key(|(_, p)| p.start);
        for w in phases.windows(2) {
            let (a, b) = (&w[0].1, &w[1].1);
            if b.start < a.end {
                return Err(cx.at(
                    &w[1].0.start,
                    format!(
                        "phase {:?} starts at {} before phase {:?} ends at {}: phases must not overlap",
                        b.id, b.start_label, a.id, a.end_label
                    ),
                ));
            }
        }
        let phases: Vec<Phase> = phases.into_iter().map(|(_, p)| p).collect();
        let session_start = phases[0].start;
        let session_end = phases[phases.len() - 1].end;
        if registration_deadline >= session_start {
            return Err(cx.at(
                &raw.registration_deadline,
                format!(
                    "registration_deadline {dl} is not before the session starts ({} {})",
                    date, phases[0].start_label
                ),
            ));
        }

        // Failover.
        let f = &raw.failover;
        let at = at_time(&f.at, "failover.at")?;
        if at < session_start || at >= session_end {
            return Err(cx.at(
                &f.at,
                format!(
                    "failover.at {} is outside the session ({} to {})",
                    f.at.get_ref(),
                    phases[0].start_label,
                    phases[phases.len() - 1].end_label
                ),
            ));
        }
        for p in &phases {
            if p.site == PhaseSite::Primary && p.end > at {
                return Err(cx.at(
                    &f.at,
                    format!(
                        "failover.at {} is before primary-site phase {:?} ends at {}: the primary site cannot serve after the failover",
                        f.at.get_ref(), p.id, p.end_label
                    ),
                ));
            }
            if p.site == PhaseSite::Backup && p.start < at {
                return Err(cx.at(
                    &f.at,
                    format!(
                        "failover.at {} is after backup-site phase {:?} starts at {}: the backup site cannot serve before the failover",
                        f.at.get_ref(), p.id, p.start_label
                    ),
                ));
            }
        }

        // Access.
        let mut access = BTreeMap::new();
        for (k, platforms) in raw.access.get_ref() {
            let kind: ParticipantKind = k
                .parse()
                .map_err(|e| cx.at(&raw.access, format!("access: {e}")))?;
            let mut set = BTreeSet::new();
            for p in platforms {
                let platform = parse_platform(p).ok_or_else(|| {
                    cx.at(
                        &raw.access,
                        format!(
                            "access.{k}: unknown platform {p:?} (use \"OTP-C\" or \"OTP-CSC\")"
                        ),
                    )
                })?;
                if !kind.may_log_in(platform) {
                    return Err(cx.at(
                        &raw.access,
                        format!(
                            "access.{k}: {k}s may not log in to {p} (EPs to OTP-C; CCEPs to OTP-CSC only; information vendors to neither)"
                        ),
                    ));
                }
                set.insert(platform);
            }
            access.insert(kind, set);
        }

        if raw.lookup.get_ref().len() != twinsite_core::limits::OCG_LOOKUP_ENDPOINTS {
            return Err(cx.at(
                &raw.lookup,
                format!(
                    "lookup: give the {} Lookup Service endpoints (primary-site primary and mirror, backup-site primary and mirror), not {}",
                    twinsite_core::limits::OCG_LOOKUP_ENDPOINTS,
                    raw.lookup.get_ref().len()
                ),
            ));
        }
        let mut chan_ids = BTreeSet::new();
        for c in &raw.market_data.channels {
            if !chan_ids.insert(c.id) {
                return Err(cx.err(
                    None,
                    format!("market_data: channel {} is listed twice", c.id),
                ));
            }
        }

        Ok(Session {
            name: raw.name,
            reference: raw.reference,
            date,
            time_zone: tz,
            registration_deadline,
            registration_deadline_label: dl.to_string(),
            seed: raw.seed,
            description: raw.description,
            phases,
            access,
            failover: Failover {
                mode: f.mode,
                at,
                at_label: f.at.get_ref().trim().to_string(),
                orders: f.orders,
                sequence: f.sequence,
            },
            lookup: raw.lookup.into_inner(),
            market_data: raw.market_data,
            logout_at_end: raw.logout_at_end,
        })
    }

    /// When the first phase starts.
    pub fn start(&self) -> Timestamp {
        self.phases[0].start
    }

    /// When the last phase ends.
    pub fn end(&self) -> Timestamp {
        self.phases[self.phases.len() - 1].end
    }

    pub fn phase(&self, id: &str) -> Option<&Phase> {
        self.phases.iter().find(|p| p.id == id)
    }

    /// The phase running at session time `t`.
    pub fn phase_at(&self, t: Timestamp) -> Option<&Phase> {
        self.phases.iter().find(|p| p.contains(t))
    }

    /// The first phase served by a site.
    pub fn phase_for_site(&self, site: Site) -> Option<&Phase> {
        self.phases.iter().find(|p| p.site.site() == Some(site))
    }

    /// The phase the failover happens in (the one containing its time).
    pub fn failover_phase(&self) -> Option<&Phase> {
        self.phase_at(self.failover.at)
    }

    /// The site serving at session time `t` (none between phases or during the failover).
    pub fn serving_site(&self, t: Timestamp) -> Option<Site> {
        self.phase_at(t).and_then(|p| p.site.site())
    }

    /// May this kind of participant log in to this platform at session time `t`? (Otherwise the
    /// gateway answers Session Status 7, or refuses the Comp ID for a platform it may not use.)
    pub fn logons_allowed(&self, kind: ParticipantKind, platform: Platform, t: Timestamp) -> bool {
        self.serving_site(t).is_some() && self.may_log_in(kind, platform)
    }

    /// Does the session let this kind log in to this platform at all?
    pub fn may_log_in(&self, kind: ParticipantKind, platform: Platform) -> bool {
        self.access
            .get(&kind)
            .is_some_and(|s| s.contains(&platform))
    }

    /// The platforms a kind may log in to in this session.
    pub fn platforms(&self, kind: ParticipantKind) -> Vec<Platform> {
        self.access
            .get(&kind)
            .map(|s| s.iter().copied().collect())
            .unwrap_or_default()
    }

    /// A timestamp as local time of day in the session's time zone.
    pub fn label(&self, t: Timestamp) -> String {
        local_label(self.time_zone, t)
    }
}

pub fn parse_platform(s: &str) -> Option<Platform> {
    match s.trim().to_ascii_uppercase().as_str() {
        "OTP-C" | "OTPC" => Some(Platform::OtpC),
        "OTP-CSC" | "OTPCSC" => Some(Platform::OtpCsc),
        _ => None,
    }
}

pub fn platform_name(p: Platform) -> &'static str {
    match p {
        Platform::OtpC => "OTP-C",
        Platform::OtpCsc => "OTP-CSC",
    }
}

pub fn kind_name(k: ParticipantKind) -> &'static str {
    match k {
        ParticipantKind::Ep => "EP",
        ParticipantKind::Ccep => "CCEP",
        ParticipantKind::InformationVendor => "IV",
    }
}
