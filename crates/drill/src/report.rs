//! The session report: `report.json`, `report.html` (self-contained, with the failover timeline
//! drawn as inline SVG) and `participants.csv`.

use crate::session::{FailoverMode, OrderSurvival, PhaseSite, SequenceMode};
use serde::Serialize;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Report {
    pub session: SessionInfo,
    pub failover: FailoverReport,
    pub participants: Vec<Scorecard>,
    pub timeline: Vec<TimelineEntry>,
    /// Records the exchange could not tie to a registered participant.
    pub unattributed: usize,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SessionInfo {
    pub name: String,
    pub reference: Option<String>,
    pub date: String,
    pub time_zone: String,
    pub speed: u64,
    pub wall_origin_ms: u64,
    pub phases: Vec<PhaseInfo>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PhaseInfo {
    pub id: String,
    pub title: String,
    pub start: String,
    pub end: String,
    pub site: PhaseSite,
    pub start_wall_ms: u64,
    pub end_wall_ms: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FailoverReport {
    pub mode: FailoverMode,
    pub orders: OrderSurvival,
    pub sequence: SequenceMode,
    /// Session time it was scheduled for.
    pub scheduled_at: String,
    pub started_wall_ms: Option<u64>,
    pub backup_open_wall_ms: Option<u64>,
    pub dr_signal_wall_ms: Option<u64>,
    /// Failover start to the backup site accepting logons.
    pub rto_ms: Option<u64>,
    pub acked_orders_lost: u64,
    pub state_hashes_equal: bool,
    pub passed: bool,
    pub detail: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Check {
    pub name: String,
    pub phase: String,
    pub passed: bool,
    /// The evidence, from what the exchange observed.
    pub detail: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Default)]
pub struct SiteCounters {
    pub lookups: usize,
    pub logons: usize,
    pub refused_logons: usize,
    pub orders: usize,
    pub accepted: usize,
    pub fills: usize,
    pub rejects: usize,
    /// Retransmission service: logons accepted and requests served (status 0).
    pub rts_logons: usize,
    pub rts_requests: usize,
    /// ResendRequests the participant sent (FIX).
    pub resend_requests: usize,
}

/// Wall times (ms since the epoch) of a participant's milestones, for the timeline.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Default)]
pub struct Marks {
    pub primary_logon_wall_ms: Option<u64>,
    pub backup_lookup_wall_ms: Option<u64>,
    pub backup_logon_wall_ms: Option<u64>,
    pub backup_order_wall_ms: Option<u64>,
    pub image_recovered_wall_ms: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Scorecard {
    pub id: String,
    pub firm: String,
    pub kind: String,
    pub comp_ids: Vec<String>,
    pub passed: bool,
    pub checks: Vec<Check>,
    pub primary: SiteCounters,
    pub backup: SiteCounters,
    pub backup_first_logon_ms: Option<u64>,
    pub backup_first_order_ms: Option<u64>,
    pub marks: Marks,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TimelineEntry {
    pub at_wall_ms: u64,
    pub session_time: String,
    pub event: String,
}

impl Scorecard {
    pub fn check(&self, name: &str, phase: &str) -> Option<&Check> {
        self.checks
            .iter()
            .find(|c| c.name == name && c.phase == phase)
    }
    /// The checks that failed.
    pub fn failed(&self) -> Vec<&Check> {
        self.checks.iter().filter(|c| !c.passed).collect()
    }
}

impl Report {
    pub fn participant(&self, id: &str) -> Option<&Scorecard> {
        self.participants
            .iter()
            .find(|p| p.id == id || p.firm == id)
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("reports serialise")
    }

    /// One row per participant and check.
    pub fn to_csv(&self) -> String {
        let mut s = String::from("id,firm,kind,passed,phase,check,check_passed,detail\n");
        for p in &self.participants {
            for c in &p.checks {
                let _ = writeln!(
                    s,
                    "{},{},{},{},{},{},{},{}",
                    csv(&p.id),
                    csv(&p.firm),
                    csv(&p.kind),
                    p.passed,
                    csv(&c.phase),
                    csv(&c.name),
                    c.passed,
                    csv(&c.detail)
                );
            }
        }
        s
    }

    /// A terminal summary table.
    pub fn summary_table(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(
            s,
            "{:<12} {:<24} {:<5} {:<6} failed checks",
            "id", "firm", "kind", "result"
        );
        for p in &self.participants {
            let failed: Vec<String> = p
                .failed()
                .iter()
                .map(|c| format!("{}/{}", c.phase, c.name))
                .collect();
            let _ = writeln!(
                s,
                "{:<12} {:<24} {:<5} {:<6} {}",
                p.id,
                truncate(&p.firm, 24),
                p.kind,
                if p.passed { "PASS" } else { "FAIL" },
                failed.join(", ")
            );
        }
        let f = &self.failover;
        let _ = writeln!(
            s,
            "failover {:?}: RTO {} ms, acknowledged orders lost {}, state hashes equal {}",
            f.mode,
            f.rto_ms.map_or("-".into(), |r| r.to_string()),
            f.acked_orders_lost,
            f.state_hashes_equal
        );
        s
    }

    /// A self-contained HTML page.
    pub fn to_html(&self) -> String {
        let mut h = String::new();
        let title = format!("{} - report", self.session.name);
        let _ = write!(
            h,
            "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{}</title><style>{}</style></head><body>",
            esc(&title),
            CSS
        );
        let s = &self.session;
        let _ = write!(
            h,
            "<h1>{}</h1><p>{}{} &middot; {} &middot; speed &times;{}</p>",
            esc(&s.name),
            s.reference
                .as_deref()
                .map(|r| format!("{} &middot; ", esc(r)))
                .unwrap_or_default(),
            esc(&s.date),
            esc(&s.time_zone),
            s.speed
        );
        let passed = self.participants.iter().filter(|p| p.passed).count();
        let _ = write!(
            h,
            "<p>{} of {} participants passed every check.</p>",
            passed,
            self.participants.len()
        );
        // Failover.
        let f = &self.failover;
        let _ = write!(
            h,
            "<h2>Failover</h2><table><tr><th>mode</th><td>{:?} at {} (orders {:?}, sequence numbers {:?})</td></tr>\
             <tr><th>RTO</th><td>{}</td></tr><tr><th>acknowledged orders lost</th><td class=\"{}\">{}</td></tr>\
             <tr><th>state hashes equal</th><td class=\"{}\">{}</td></tr><tr><th>evidence</th><td>{}</td></tr></table>",
            f.mode,
            esc(&f.scheduled_at),
            f.orders,
            f.sequence,
            f.rto_ms.map_or("not measured".into(), |r| format!("{r} ms")),
            cls(f.acked_orders_lost == 0),
            f.acked_orders_lost,
            cls(f.state_hashes_equal),
            f.state_hashes_equal,
            esc(&f.detail)
        );
        h.push_str("<h2>Timeline</h2>");
        h.push_str(&self.timeline_svg());
        // Phases.
        h.push_str("<h2>Schedule</h2><table><tr><th>time</th><th>phase</th><th>site</th></tr>");
        for p in &s.phases {
            let _ = write!(
                h,
                "<tr><td>{} to {}</td><td>{}</td><td>{:?}</td></tr>",
                esc(&p.start),
                esc(&p.end),
                esc(&p.title),
                p.site
            );
        }
        h.push_str("</table>");
        // Scorecards.
        h.push_str("<h2>Participants</h2><table><tr><th>id</th><th>firm</th><th>kind</th><th>result</th><th>primary: orders / fills</th><th>backup: orders / fills</th><th>backup first logon</th></tr>");
        for p in &self.participants {
            let _ = write!(
                h,
                "<tr><td><a href=\"#p-{id}\">{id}</a></td><td>{}</td><td>{}</td><td class=\"{}\">{}</td><td>{} / {}</td><td>{} / {}</td><td>{}</td></tr>",
                esc(&p.firm),
                esc(&p.kind),
                cls(p.passed),
                if p.passed { "PASS" } else { "FAIL" },
                p.primary.accepted,
                p.primary.fills,
                p.backup.accepted,
                p.backup.fills,
                p.backup_first_logon_ms.map_or("-".into(), |m| format!("{m} ms")),
                id = esc(&p.id),
            );
        }
        h.push_str("</table>");
        for p in &self.participants {
            let _ = write!(
                h,
                "<h3 id=\"p-{}\">{} &middot; {} ({}) <span class=\"{}\">{}</span></h3><table><tr><th>phase</th><th>check</th><th>result</th><th>evidence</th></tr>",
                esc(&p.id),
                esc(&p.id),
                esc(&p.firm),
                esc(&p.kind),
                cls(p.passed),
                if p.passed { "PASS" } else { "FAIL" }
            );
            for c in &p.checks {
                let _ = write!(
                    h,
                    "<tr><td>{}</td><td>{}</td><td class=\"{}\">{}</td><td>{}</td></tr>",
                    esc(&c.phase),
                    esc(&c.name),
                    cls(c.passed),
                    if c.passed { "pass" } else { "fail" },
                    esc(&c.detail)
                );
            }
            h.push_str("</table>");
        }
        h.push_str("<h2>Events</h2><table><tr><th>session time</th><th>event</th></tr>");
        for e in &self.timeline {
            let _ = write!(
                h,
                "<tr><td>{}</td><td>{}</td></tr>",
                esc(&e.session_time),
                esc(&e.event)
            );
        }
        h.push_str("</table></body></html>\n");
        h
    }

    /// The session's phases, the failover and each participant's milestones on one time axis.
    pub fn timeline_svg(&self) -> String {
        let phases = &self.session.phases;
        let (Some(first), Some(last)) = (phases.first(), phases.last()) else {
            return String::new();
        };
        let t0 = first.start_wall_ms;
        let t1 = last
            .end_wall_ms
            .max(
                self.participants
                    .iter()
                    .filter_map(|p| p.marks.backup_order_wall_ms)
                    .max()
                    .unwrap_or(0),
            )
            .max(t0 + 1);
        let (left, width, row) = (150.0f64, 800.0f64, 18.0f64);
        let x = |ms: u64| left + (ms.saturating_sub(t0) as f64 / (t1 - t0) as f64) * width;
        let rows = self.participants.len() as f64;
        let height = 70.0 + rows * row + 20.0;
        let mut s = String::new();
        let _ = write!(
            s,
            "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{}\" height=\"{height}\" viewBox=\"0 0 {} {height}\" font-family=\"sans-serif\" font-size=\"11\">",
            left + width + 20.0,
            left + width + 20.0
        );
        for p in phases {
            let fill = match p.site {
                PhaseSite::Primary => "#cfe2ff",
                PhaseSite::Backup => "#d1e7dd",
                PhaseSite::None => "#f8d7da",
            };
            let (a, b) = (x(p.start_wall_ms), x(p.end_wall_ms));
            let _ = write!(
                s,
                "<rect x=\"{a:.1}\" y=\"10\" width=\"{:.1}\" height=\"24\" fill=\"{fill}\" stroke=\"#888\"/><text x=\"{:.1}\" y=\"26\">{} {}</text>",
                (b - a).max(1.0),
                a + 3.0,
                esc(&p.start),
                esc(&p.id)
            );
        }
        let f = &self.failover;
        for (t, label, colour) in [
            (f.started_wall_ms, "failover", "#dc3545"),
            (f.backup_open_wall_ms, "backup open", "#198754"),
            (f.dr_signal_wall_ms, "DR", "#6f42c1"),
        ] {
            if let Some(t) = t {
                let xv = x(t);
                let _ = write!(
                    s,
                    "<line x1=\"{xv:.1}\" y1=\"8\" x2=\"{xv:.1}\" y2=\"{:.1}\" stroke=\"{colour}\" stroke-dasharray=\"4 2\"/><text x=\"{:.1}\" y=\"48\" fill=\"{colour}\">{label}</text>",
                    height - 10.0,
                    xv + 2.0
                );
            }
        }
        for (i, p) in self.participants.iter().enumerate() {
            let y = 70.0 + i as f64 * row;
            let _ = write!(
                s,
                "<text x=\"4\" y=\"{:.1}\" fill=\"{}\">{}</text><line x1=\"{left}\" y1=\"{:.1}\" x2=\"{:.1}\" y2=\"{:.1}\" stroke=\"#eee\"/>",
                y + 4.0,
                if p.passed { "#198754" } else { "#dc3545" },
                esc(&truncate(&format!("{} {}", p.id, p.firm), 22)),
                y,
                left + width,
                y
            );
            let m = &p.marks;
            for (t, colour, what) in [
                (m.primary_logon_wall_ms, "#0d6efd", "logon at primary"),
                (m.backup_lookup_wall_ms, "#fd7e14", "lookup at backup"),
                (m.backup_logon_wall_ms, "#198754", "logon at backup"),
                (m.backup_order_wall_ms, "#20c997", "first order at backup"),
                (
                    m.image_recovered_wall_ms,
                    "#6f42c1",
                    "market image recovered",
                ),
            ] {
                if let Some(t) = t {
                    let _ = write!(
                        s,
                        "<circle cx=\"{:.1}\" cy=\"{y:.1}\" r=\"4\" fill=\"{colour}\"><title>{} {what}</title></circle>",
                        x(t),
                        esc(&p.id)
                    );
                }
            }
        }
        s.push_str("</svg>");
        s
    }

    /// Write report.json, report.html and participants.csv into `dir` (created if needed).
    pub fn write(&self, dir: &Path) -> std::io::Result<Vec<PathBuf>> {
        std::fs::create_dir_all(dir)?;
        let files = [
            ("report.json", self.to_json()),
            ("report.html", self.to_html()),
            ("participants.csv", self.to_csv()),
        ];
        let mut out = Vec::new();
        for (name, body) in files {
            let p = dir.join(name);
            std::fs::write(&p, body)?;
            out.push(p);
        }
        Ok(out)
    }
}

const CSS: &str = "body{font-family:sans-serif;max-width:1100px;margin:2em auto;color:#222}\
table{border-collapse:collapse;margin:0.5em 0 1.5em}td,th{border:1px solid #ccc;padding:3px 8px;text-align:left;vertical-align:top}\
.pass{color:#146c43;font-weight:bold}.fail{color:#b02a37;font-weight:bold}code{background:#f3f3f3;padding:0 3px}";

fn cls(ok: bool) -> &'static str {
    if ok {
        "pass"
    } else {
        "fail"
    }
}

fn truncate(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_string()
    } else {
        s.chars().take(n - 1).collect::<String>() + "…"
    }
}

/// HTML escaping.
pub fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn csv(s: &str) -> String {
    if s.contains([',', '"', '\n']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

fn inline(s: &str) -> String {
    // `code` and **bold**, on escaped text.
    let mut out = String::new();
    for (i, part) in esc(s).split('`').enumerate() {
        if i % 2 == 1 {
            let _ = write!(out, "<code>{part}</code>");
        } else {
            for (j, b) in part.split("**").enumerate() {
                if j % 2 == 1 {
                    let _ = write!(out, "<strong>{b}</strong>");
                } else {
                    out.push_str(b);
                }
            }
        }
    }
    out
}

/// The small Markdown subset the rundowns use (headings, lists, paragraphs, `code`, **bold**)
/// as a self-contained HTML page.
pub fn markdown_page(title: &str, md: &str) -> String {
    let mut h = format!(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{}</title><style>{}</style></head><body>\n",
        esc(title),
        CSS
    );
    let mut list: Option<&str> = None;
    let close = |h: &mut String, list: &mut Option<&str>| {
        if let Some(l) = list.take() {
            let _ = writeln!(h, "</{l}>");
        }
    };
    for line in md.lines() {
        let t = line.trim_end();
        if let Some(rest) = t.strip_prefix("- ") {
            if list != Some("ul") {
                close(&mut h, &mut list);
                h.push_str("<ul>\n");
                list = Some("ul");
            }
            let _ = writeln!(h, "<li>{}</li>", inline(rest));
            continue;
        }
        let numbered = t
            .split_once(". ")
            .filter(|(n, _)| !n.is_empty() && n.chars().all(|c| c.is_ascii_digit()));
        if let Some((_, rest)) = numbered {
            if list != Some("ol") {
                close(&mut h, &mut list);
                h.push_str("<ol>\n");
                list = Some("ol");
            }
            let _ = writeln!(h, "<li>{}</li>", inline(rest));
            continue;
        }
        close(&mut h, &mut list);
        let level = t.chars().take_while(|c| *c == '#').count();
        if level > 0 && t[level..].starts_with(' ') {
            let _ = writeln!(h, "<h{level}>{}</h{level}>", inline(t[level..].trim()));
        } else if !t.is_empty() {
            let _ = writeln!(h, "<p>{}</p>", inline(t));
        }
    }
    close(&mut h, &mut list);
    h.push_str("</body></html>\n");
    h
}
