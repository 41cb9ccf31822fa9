//! `twinsite demo` and `twinsite run`: a practice session end to end on one machine. Three
//! nodes (primary site, backup site, witness) in this process, registered participants, the
//! schedule compressed to fit, the failover at its time, and the report.

use anyhow::Context;
use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use tokio::sync::mpsc;
use twinsite_bots::{BotConfig, BotHandle, Fault, Role, VendorConfig, VendorFault, VendorHandle};
use twinsite_cluster::{Durability, JournalConfig, NodeRole};
use twinsite_console::{
    random_token, ActionOk, ChannelView, Console, ConsoleConfig, ConsoleState, FailoverStatus,
    FailoverStep, NodeView, OperatorAction, ParticipantView, PhaseView, ReportLinks,
    SessionStatus as ConsoleStatus, TimelineEvent,
};
use twinsite_core::{ParticipantKind, Platform, Site, Timestamp};
use twinsite_drill::session::{FailoverMode, PhaseSite};
use twinsite_drill::{
    participant_entries, ActivityLog, Clock, ExchangeChecks, Participant, RegistrationRequest,
    Registry, Session, StepKind,
};
use twinsite_ocg::{ExecType, Message};
use twinsite_site::config::*;
use twinsite_site::feed::{self, FeedActivity, FeedHandle, FeedInput};
use twinsite_site::gateway::{self, wall_clock, Activity, AdminCmd, SiteHandle};

/// The PS2 session file shipped with the binary (used when no file is given).
pub const PS2: &str = include_str!("../../../sessions/ps2-2023-11-25.toml");

pub struct Opts {
    pub session: Option<PathBuf>,
    pub out: PathBuf,
    pub participants: usize,
    /// Reference EPs entering orders over FIX (a market maker, a taker, and with 3 or more the
    /// last logs on at the backup with MsgSeqNum 1: deliberately faulty), on top of
    /// `participants`.
    pub fix: usize,
    /// Reference information vendors (the last ignores the DR signal when there are 2 or more).
    pub vendors: usize,
    /// Replace the port of every multicast group of the session with this one (demos running
    /// side by side use different ports, so their feeds never mix).
    pub md_port: Option<u16>,
    pub crash: bool,
    /// Wall seconds the whole session should take.
    pub seconds: u64,
    /// Explicit speed (overrides `seconds`).
    pub speed: Option<u64>,
    /// Start reference participants (the demo does; `run` does when asked).
    pub bots: bool,
    /// Journal durability: disk (in the output folder) or memory (labelled).
    pub memory: bool,
    /// Console listen address.
    pub console: SocketAddr,
    /// Keep serving the console after the session until Ctrl-C.
    pub keep_console: bool,
    /// Also hand out a read-only viewer token for the console (printed and in `console.json`).
    pub console_viewer: bool,
}

/// What `console.json` in the output folder holds: where the console listens and its tokens,
/// for scripts and tests (`twinsite failover --token`, a browser test). Written with mode 0600
/// before the `console: URL` line is printed.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct ConsoleFile {
    pub url: String,
    pub operator_token: String,
    pub viewer_token: Option<String>,
}

/// Name of that file inside the output folder.
pub const CONSOLE_FILE: &str = "console.json";

/// Write `console.json` (replacing it whole: a temporary file renamed into place, so a reader
/// never sees half of it), readable by its owner only.
pub fn write_console_file(out: &Path, file: &ConsoleFile) -> anyhow::Result<PathBuf> {
    let path = out.join(CONSOLE_FILE);
    let tmp = out.join(format!("{CONSOLE_FILE}.tmp"));
    let _ = std::fs::remove_file(&tmp);
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts
        .open(&tmp)
        .with_context(|| format!("create {}", tmp.display()))?;
    let json = serde_json::to_string_pretty(file)?;
    std::io::Write::write_all(&mut f, json.as_bytes())
        .and_then(|_| std::io::Write::write_all(&mut f, b"\n"))
        .with_context(|| format!("write {}", tmp.display()))?;
    drop(f);
    std::fs::rename(&tmp, &path).with_context(|| format!("write {}", path.display()))?;
    Ok(path)
}

fn ms_label(clock: &Clock, session: &Session, t: Timestamp) -> (u64, String) {
    let w = clock.wall(t);
    (w.millis(), clock.label(session, w))
}

fn initial_console(
    session: &Session,
    clock: &Clock,
    regs: &[twinsite_drill::Registration],
) -> ConsoleState {
    let mut s = ConsoleState::default();
    s.session.name = session.name.clone();
    s.session.reference = session.reference.clone();
    s.session.date = session.date.to_string();
    s.session.time_zone = session.time_zone.name().to_string();
    s.session.speed = clock.speed;
    s.session.phases = session
        .phases
        .iter()
        .map(|p| {
            let (start_ms, start_label) = ms_label(clock, session, p.start);
            let (end_ms, end_label) = ms_label(clock, session, p.end);
            PhaseView {
                id: p.id.clone(),
                title: p.title.clone(),
                start_label,
                end_label,
                start_ms,
                end_ms,
                site: format!("{:?}", p.site).to_lowercase(),
                focus: p.focus.clone(),
            }
        })
        .collect();
    let (at_ms, at_label) = ms_label(clock, session, session.failover.at);
    s.session.failover_step = FailoverStep {
        mode: format!("{:?}", session.failover.mode).to_lowercase(),
        at_label,
        at_ms,
        orders: format!("{:?}", session.failover.orders).to_lowercase(),
        sequence: format!("{:?}", session.failover.sequence).to_lowercase(),
    };
    s.session.registration_deadline = Some(session.registration_deadline_label.clone());
    s.market_data.dr_signal = if session.market_data.dr_signal {
        "not_sent".into()
    } else {
        "disabled".into()
    };
    s.market_data.channels = session
        .market_data
        .channels
        .iter()
        .filter(|c| session.market_data.dr_signal || c.product != "dr")
        .map(|c| ChannelView {
            id: c.id,
            platform: c.platform.clone(),
            product: c.product.clone(),
            site: None,
            seq: 0,
        })
        .collect();
    s.participants = regs
        .iter()
        .map(|r| ParticipantView {
            id: r.id(),
            firm: r.firm.clone(),
            kind: twinsite_drill::session::kind_name(r.kind).to_string(),
            platform: match r.kind {
                ParticipantKind::InformationVendor => "OMD-C/OMD-CC".into(),
                ParticipantKind::Ccep => "OTP-CSC".into(),
                _ => "OTP-C".into(),
            },
            ..Default::default()
        })
        .collect();
    s
}

fn node_views(nodes: &Nodes) -> Vec<NodeView> {
    let mut v = Vec::new();
    let mut add =
        |name: &str, j: Option<&twinsite_cluster::Journal<twinsite_site::replica::Replica>>| match j
        {
            Some(j) => {
                let m = j.metrics();
                let (idx, hash) = j.state_hash();
                let _ = idx;
                v.push(NodeView {
                    name: name.into(),
                    role: m.state.to_string(),
                    leader: m.status.leader.map(|l| format!("{l:?}").to_lowercase()),
                    commit_index: m.status.commit_index,
                    applied_index: m.status.applied_index,
                    replication_lag: m.replication.values().map(|r| r.lag).max().unwrap_or(0),
                    state_hash: Some(format!("{hash:016x}")),
                    up: true,
                })
            }
            None => v.push(NodeView {
                name: name.into(),
                role: "down".into(),
                up: false,
                ..Default::default()
            }),
        };
    add("primary", nodes.primary.as_ref().and_then(|p| p.journal()));
    add("backup", nodes.backup.journal());
    add("witness", Some(&nodes.witness));
    v
}

/// Are the nodes' state hashes equal at the newest index they all applied?
fn hashes_equal_now(nodes: &Nodes) -> Option<bool> {
    let mut js = vec![nodes.backup.journal()?.clone(), nodes.witness.clone()];
    if let Some(p) = nodes.primary.as_ref().and_then(|p| p.journal()) {
        js.push(p.clone());
    }
    let idx = js.iter().map(|j| j.applied_index()).min()?;
    let hs: Vec<Option<u64>> = js.iter().map(|j| j.state_hash_at(idx)).collect();
    if hs.iter().any(|h| h.is_none()) {
        return None;
    }
    Some(hs.windows(2).all(|w| w[0] == w[1]))
}

/// Write a fresh RSA-2048 key pair: PKCS#8 private key and SubjectPublicKeyInfo public key.
pub fn keygen(path: &Path) -> anyhow::Result<PathBuf> {
    use rsa::pkcs8::{EncodePrivateKey, EncodePublicKey, LineEnding};
    let mut rng = rand::rngs::OsRng;
    let key = rsa::RsaPrivateKey::new(&mut rng, 2048).context("generate RSA-2048 key")?;
    let pem = key
        .to_pkcs8_pem(LineEnding::LF)
        .context("encode private key")?;
    if let Some(d) = path.parent() {
        std::fs::create_dir_all(d).ok();
    }
    std::fs::write(path, pem.as_bytes()).with_context(|| format!("write {}", path.display()))?;
    let pub_path = path.with_extension("pub.pem");
    let pubpem = rsa::RsaPublicKey::from(&key)
        .to_public_key_pem(LineEnding::LF)
        .context("encode public key")?;
    std::fs::write(&pub_path, pubpem).with_context(|| format!("write {}", pub_path.display()))?;
    Ok(pub_path)
}

/// A free UDP port of 127.0.0.1 (for the demo's multicast groups).
pub fn free_udp_port() -> anyhow::Result<u16> {
    Ok(std::net::UdpSocket::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// The sites' `[market_data]` from the session's: its channels (the DR channel only when the
/// session sends the DR signal), multicast on 127.0.0.1, the RTS on a free port, and every
/// group's port replaced by `port` when given.
pub fn market_data_section(session: &Session, port: Option<u16>) -> Option<MarketDataSection> {
    let md = &session.market_data;
    if md.channels.is_empty() {
        return None;
    }
    let with_port = |a: SocketAddr| match port {
        Some(p) => SocketAddr::new(a.ip(), p),
        None => a,
    };
    Some(MarketDataSection {
        interface: std::net::Ipv4Addr::LOCALHOST.into(),
        rts: "127.0.0.1:0".parse().expect("address"),
        channels: md
            .channels
            .iter()
            .filter(|c| md.dr_signal || !c.product.eq_ignore_ascii_case("dr"))
            .map(|c| ChannelEntry {
                id: c.id,
                product: c.product.clone(),
                line_a: with_port(c.line_a),
                line_b: with_port(c.line_b),
            })
            .collect(),
        pcap: None,
    })
}

/// The feed of a node: started when the session has market data; otherwise the node's feed
/// input is drained.
async fn node_feed(
    md: &Option<MarketDataSection>,
    users: &[String],
    mut rx: mpsc::UnboundedReceiver<FeedInput>,
) -> anyhow::Result<Option<FeedHandle>> {
    match md {
        Some(md) => Ok(Some(feed::run_feed(md.clone(), users.to_vec(), rx).await?)),
        None => {
            tokio::spawn(async move { while rx.recv().await.is_some() {} });
            Ok(None)
        }
    }
}

fn site_config(
    name: &str,
    key: &Path,
    participants: Vec<ParticipantEntry>,
    heartbeat_ms: u64,
) -> SiteConfig {
    let any: SocketAddr = "127.0.0.1:0".parse().expect("address");
    // The demo CCEPs' holdings of the A-shares their bots trade (northbound sells are checked
    // against them).
    let mut engine = EngineSection::default();
    let mut seen = BTreeSet::new();
    for p in participants.iter().filter(|p| p.kind == "CCEP") {
        for &broker in &p.broker_ids {
            if !seen.insert(broker) {
                continue;
            }
            for ins in ccep_instruments() {
                engine.cc_holdings.push(HoldingEntry {
                    broker,
                    security: ins.code,
                    shares: CCEP_HOLDING,
                });
            }
        }
    }
    SiteConfig {
        site: SiteSection {
            name: name.into(),
            lookup: vec![any, any],
            gateway_primary: any,
            gateway_mirror: any,
            advertise_host: None,
            keys: vec![key.to_path_buf()],
            reference_data: None,
            active: false,
            fix_gateway: Some(any),
            csc_lookup: vec![any, any],
            csc_gateway_primary: Some(any),
            csc_gateway_mirror: Some(any),
        },
        engine,
        session: SessionSection {
            heartbeat_ms,
            password_tolerance_secs: 120,
            throttle: true,
            ..Default::default()
        },
        market_data: None,
        participants,
        failover: Default::default(),
    }
}

/// Open or close logons per platform at both sites for the phase now running (`None`: before
/// the first phase): a platform is open during a phase at a site (not the failover phase,
/// where nobody trades) when the session's `[access]` admits some participant kind to it.
/// A logon while closed is refused with Session Status 7 (an `Activity::Refused` record).
/// Apply a step's logon windows at both sites (`AdminCmd::LogonsAllowedOn` per platform,
/// and `LogoutAll` at the end of the last phase when the session says so).
fn apply_windows(nodes: &Nodes, w: &twinsite_drill::LogonWindows) -> Vec<(Platform, bool)> {
    for site in nodes.primary.iter().chain([&nodes.backup]) {
        for &(platform, allowed) in &w.platforms {
            site.admin(AdminCmd::LogonsAllowedOn { platform, allowed });
        }
        if w.logout {
            site.admin(AdminCmd::LogoutAll);
        }
    }
    w.platforms.clone()
}

/// The windows of the first backup-site phase's start.
fn backup_windows(session: &Session, clock: &Clock) -> Option<twinsite_drill::LogonWindows> {
    let p = session
        .phases
        .iter()
        .find(|p| p.site == PhaseSite::Backup)?;
    let step = twinsite_drill::Step {
        at: p.start,
        wall: clock.wall(p.start),
        kind: StepKind::PhaseStart {
            phase: p.id.clone(),
        },
    };
    twinsite_drill::logon_windows(session, &step)
}

fn windows_text(w: &[(Platform, bool)]) -> String {
    w.iter()
        .map(|(p, open)| {
            let name = match p {
                Platform::OtpC => "OTP-C",
                Platform::OtpCsc => "OTP-CSC",
            };
            format!("{name} {}", if *open { "open" } else { "closed" })
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// The A-shares the demo's CCEP bots trade.
fn ccep_instruments() -> Vec<twinsite_bots::Instrument> {
    twinsite_bots::a_share_instruments(2)
}

/// Shares of each of those a demo CCEP holds (and may sell).
const CCEP_HOLDING: u64 = 1_000_000;

struct Nodes {
    primary: Option<SiteHandle>,
    backup: SiteHandle,
    witness: twinsite_cluster::Journal<twinsite_site::replica::Replica>,
    primary_feed: Option<FeedHandle>,
    backup_feed: Option<FeedHandle>,
}

async fn wait_for<F: Fn(&Activity) -> bool>(
    rx: &mut tokio::sync::broadcast::Receiver<Activity>,
    f: F,
    limit: Duration,
) -> anyhow::Result<Timestamp> {
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        match tokio::time::timeout_at(deadline, rx.recv()).await {
            Ok(Ok(a)) if f(&a) => return Ok(wall_clock()),
            Ok(Ok(_)) | Ok(Err(tokio::sync::broadcast::error::RecvError::Lagged(_))) => {}
            Ok(Err(e)) => anyhow::bail!("site stopped: {e}"),
            Err(_) => anyhow::bail!("timed out after {limit:?}"),
        }
    }
}

#[allow(clippy::too_many_arguments)]
async fn start_nodes(
    out: &Path,
    key: &Path,
    entries: Vec<ParticipantEntry>,
    heartbeat_ms: u64,
    memory: bool,
    md: Option<MarketDataSection>,
    rts_users: Vec<String>,
) -> anyhow::Result<Nodes> {
    let (addrs, mut listeners) = twinsite_cluster::loopback_listeners().await?;
    let jc = |r: NodeRole| {
        let durability = if memory {
            Durability::Memory
        } else {
            let dir = out.join("journal").join(format!("{r:?}").to_lowercase());
            let _ = std::fs::remove_dir_all(&dir);
            Durability::Disk(dir)
        };
        let mut c = JournalConfig::new(r, addrs.clone(), durability);
        c.election_timeout_min = Duration::from_millis(150);
        c.election_timeout_max = Duration::from_millis(300);
        c.heartbeat_interval = Duration::from_millis(30);
        c
    };
    let (primary, pfeed) = gateway::start_node(
        site_config("primary", key, entries.clone(), heartbeat_ms),
        Site::Primary,
        jc(NodeRole::Primary),
        listeners.remove(&NodeRole::Primary),
    )
    .await?;
    let primary_feed = node_feed(&md, &rts_users, pfeed).await?;
    let mut prx = primary.subscribe();
    let (backup, bfeed) = gateway::start_node(
        site_config("backup", key, entries.clone(), heartbeat_ms),
        Site::Backup,
        jc(NodeRole::Backup),
        listeners.remove(&NodeRole::Backup),
    )
    .await?;
    let backup_feed = node_feed(&md, &rts_users, bfeed).await?;
    let witness = gateway::start_witness(
        &site_config("witness", key, entries, heartbeat_ms),
        jc(NodeRole::Witness),
        listeners.remove(&NodeRole::Witness),
    )
    .await?;
    let j = primary.journal().expect("replicated node").clone();
    let leader = j
        .wait_for_leader(Duration::from_secs(20))
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    if leader != NodeRole::Primary {
        let from = if leader == NodeRole::Backup {
            backup.journal().expect("node").clone()
        } else {
            witness.clone()
        };
        from.transfer_leadership(NodeRole::Primary)
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?;
    }
    wait_for(
        &mut prx,
        |a| matches!(a, Activity::SiteActive { .. }),
        Duration::from_secs(20),
    )
    .await
    .context("primary site did not open")?;
    Ok(Nodes {
        primary: Some(primary),
        backup,
        witness,
        primary_feed,
        backup_feed,
    })
}

/// The scheduled failover: move the journal's leadership to the backup node. One transfer gives
/// up after ten election timeouts; on a loaded machine that can pass before the backup wins, so
/// it is asked again (from whichever node leads then) until `limit`.
async fn hand_over_to_backup(nodes: &Nodes, limit: Duration) -> anyhow::Result<()> {
    let Some(primary) = nodes.primary.as_ref().and_then(|p| p.journal()) else {
        return Ok(());
    };
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        let leader = primary
            .wait_for_leader(left)
            .await
            .map_err(|e| anyhow::anyhow!("no journal leader to hand over from: {e}"))?;
        let from = match leader {
            NodeRole::Backup => return Ok(()),
            NodeRole::Primary => primary,
            NodeRole::Witness => &nodes.witness,
        };
        match from.transfer_leadership(NodeRole::Backup).await {
            Ok(()) => return Ok(()),
            Err(e) if tokio::time::Instant::now() < deadline => {
                println!("    leadership transfer to the backup: {e}; asking again");
            }
            Err(e) => anyhow::bail!("leadership did not move to the backup within {limit:?}: {e}"),
        }
    }
}

/// Acknowledged orders (Comp ID, order id) from the Execution Reports a site sent.
fn ack_of(a: &Activity) -> Option<(String, String)> {
    match a {
        Activity::Outbound {
            comp_id, message, ..
        } => match message.as_ref() {
            Message::ExecutionReport(r) if r.exec_type == Some(ExecType::New) => Some((
                comp_id.to_string(),
                r.order_id.as_ref()?.as_str().to_string(),
            )),
            _ => None,
        },
        _ => None,
    }
}

/// Orders acknowledged in the backup's replicated outbound logs (binary and FIX sessions).
fn acks_in_replica(r: &twinsite_site::replica::Replica) -> BTreeSet<(String, String)> {
    let mut v = BTreeSet::new();
    for (comp, d) in &r.sessions {
        for m in d.outbound.iter() {
            if let Ok((_, Message::ExecutionReport(er))) = twinsite_ocg::decode_one(&m.frame) {
                if er.exec_type == Some(ExecType::New) {
                    if let Some(id) = er.order_id {
                        v.insert((comp.to_string(), id.as_str().to_string()));
                    }
                }
            }
        }
    }
    // FIX Comp IDs: their Execution Reports (35=8, ExecType 150=0) keep the OrderID (37).
    for (comp, s) in r.fix_sessions() {
        for m in &s.outbound {
            let m = m.message();
            if m.msg_type == "8" && m.get(150) == Some("0") {
                if let Some(id) = m.get(37) {
                    v.insert((comp.to_string(), id.to_string()));
                }
            }
        }
    }
    v
}

pub async fn run(opts: Opts) -> anyhow::Result<()> {
    let mut session = match &opts.session {
        Some(p) => Session::load(p)?,
        None => Session::parse("sessions/ps2-2023-11-25.toml", PS2)?,
    };
    if opts.crash {
        session.failover.mode = FailoverMode::Crash;
    }
    std::fs::create_dir_all(&opts.out).with_context(|| format!("create {}", opts.out.display()))?;
    let speed = opts
        .speed
        .unwrap_or_else(|| Clock::speed_to_fit(&session, opts.seconds));
    println!("twinsite: {} ({})", session.name, session.date);
    println!(
        "  schedule compressed {speed}x; output in {}",
        opts.out.display()
    );
    if opts.memory {
        println!("  journal durability: MEMORY (demo only: a restart loses the journal)");
    }

    // Registration (as of the day before the deadline) and credentials.
    let reg_path = opts.out.join("registrations.jsonl");
    if opts.bots {
        let _ = std::fs::remove_file(&reg_path);
    }
    let mut registry = Registry::open(&reg_path, &session)?;
    let reg_now = Timestamp(
        session
            .registration_deadline
            .0
            .saturating_sub(86_400 * 1_000_000_000),
    );
    let n = opts.participants.max(2);
    let mut plan = Vec::new();
    let mut vendor_plan = Vec::new();
    if opts.bots {
        for i in 0..n {
            let (role, fault) = match i {
                _ if n >= 4 && i == n - 2 => (Role::Taker, Fault::NoLookupAfterFailover),
                _ if n >= 4 && i == n - 1 => (Role::Taker, Fault::FreshSequenceAfterFailover),
                _ if i % 2 == 0 => (Role::MarketMaker, Fault::None),
                _ => (Role::Taker, Fault::None),
            };
            let firm = format!("Demo Securities {:02}", i + 1);
            let reg = registry.register(
                RegistrationRequest {
                    firm: firm.clone(),
                    kind: "EP".into(),
                    broker_ids: vec![2001 + i as u32],
                    contact: format!("ops{:02}@demo.example", i + 1),
                    source_ips: vec![],
                    protocols: vec![],
                },
                reg_now,
            )?;
            plan.push((reg, role, fault));
        }
        // FIX: EPs entering orders over FIX 5.0 SP2 (their Comp IDs `CF....`, found through
        // the same Lookup Service with Protocol Type 2).
        let fix_ok = session
            .access
            .get(&ParticipantKind::Ep)
            .is_some_and(|p| p.contains(&Platform::OtpC));
        for i in 0..if fix_ok { opts.fix } else { 0 } {
            let (role, fault) = match i {
                _ if opts.fix >= 3 && i == opts.fix - 1 => {
                    (Role::Taker, Fault::FreshSequenceAfterFailover)
                }
                _ if i % 2 == 0 => (Role::MarketMaker, Fault::None),
                _ => (Role::Taker, Fault::None),
            };
            let reg = registry.register(
                RegistrationRequest {
                    firm: format!("Demo FIX Securities {:02}", i + 1),
                    kind: "EP".into(),
                    broker_ids: vec![2101 + i as u32],
                    contact: format!("fix{:02}@demo.example", i + 1),
                    source_ips: vec![],
                    protocols: vec!["fix".into()],
                },
                reg_now,
            )?;
            plan.push((reg, role, fault));
        }
        // China Connect: a market maker and a taker on OTP-CSC (when the session admits CCEPs).
        if session.access.contains_key(&ParticipantKind::Ccep) {
            for (i, role) in [Role::MarketMaker, Role::Taker].into_iter().enumerate() {
                let reg = registry.register(
                    RegistrationRequest {
                        firm: format!("Demo Northbound {:02}", i + 1),
                        kind: "CCEP".into(),
                        broker_ids: vec![3001 + i as u32],
                        contact: format!("cc{:02}@demo.example", i + 1),
                        source_ips: vec![],
                        protocols: vec![],
                    },
                    reg_now,
                )?;
                plan.push((reg, role, Fault::None));
            }
        }
        let invited = session
            .access
            .contains_key(&ParticipantKind::InformationVendor);
        if opts.vendors > 0 && !invited {
            println!("  (no information vendors: the session does not invite them)");
        }
        for i in 0..if invited { opts.vendors } else { 0 } {
            let fault = if opts.vendors >= 2 && i == opts.vendors - 1 {
                VendorFault::IgnoreDrSignal
            } else {
                VendorFault::None
            };
            let reg = registry.register(
                RegistrationRequest {
                    firm: format!("Demo Market Data {:02}", i + 1),
                    kind: "IV".into(),
                    broker_ids: vec![],
                    contact: format!("feeds{:02}@demo.example", i + 1),
                    source_ips: vec![],
                    protocols: vec![],
                },
                reg_now,
            )?;
            vendor_plan.push((reg, fault));
        }
    }
    let regs = registry.registrations().to_vec();
    anyhow::ensure!(
        !regs.is_empty(),
        "no registrations in {}: register participants first",
        reg_path.display()
    );
    let key = opts.out.join("ocg-key.pem");
    if !key.exists() {
        keygen(&key)?;
    }
    // The session's 20 s heartbeat compressed, but never below 1 s: a session ends after about
    // six silent intervals, and a loaded machine (a debug build, other work on 2 cores) can stall
    // the whole process for over a second; with 200 ms the participants were logged out for it.
    // A crashed site's connections close at once, so the failover is not detected any later.
    let heartbeat_ms = (20_000 / speed).max(1_000);
    let entries = participant_entries(&regs);
    let md = market_data_section(&session, opts.md_port);
    let nodes = start_nodes(
        &opts.out,
        &key,
        entries,
        heartbeat_ms,
        opts.memory,
        md.clone(),
        twinsite_drill::rts_usernames(&regs),
    )
    .await?;
    let rts_addrs: Vec<SocketAddr> = [&nodes.primary_feed, &nodes.backup_feed]
        .iter()
        .filter_map(|f| f.as_ref().map(|f| f.rts_addr))
        .collect();
    if let Some(md) = &md {
        println!(
            "  market data: {} channels ({}), RTS {}",
            md.channels.len(),
            md.channels
                .iter()
                .map(|c| format!("{} {} {}", c.id, c.product, c.line_a))
                .collect::<Vec<_>>()
                .join(", "),
            rts_addrs
                .iter()
                .map(|a| a.to_string())
                .collect::<Vec<_>>()
                .join(" / ")
        );
    }
    let lookups = vec![
        nodes.primary.as_ref().expect("primary").lookup_addrs[0],
        nodes.primary.as_ref().expect("primary").lookup_addrs[1],
        nodes.backup.lookup_addrs[0],
        nodes.backup.lookup_addrs[1],
    ];
    let csc_lookups = vec![
        nodes.primary.as_ref().expect("primary").csc_lookup_addrs[0],
        nodes.primary.as_ref().expect("primary").csc_lookup_addrs[1],
        nodes.backup.csc_lookup_addrs[0],
        nodes.backup.csc_lookup_addrs[1],
    ];
    println!(
        "  OTP-CSC lookup endpoints: {}",
        csc_lookups
            .iter()
            .map(|a| a.to_string())
            .collect::<Vec<_>>()
            .join(", ")
    );
    println!(
        "  lookup endpoints: {}",
        lookups
            .iter()
            .map(|a| a.to_string())
            .collect::<Vec<_>>()
            .join(", ")
    );

    // Logons are closed until the first phase starts.
    let closed = apply_windows(
        &nodes,
        &twinsite_drill::LogonWindows {
            platforms: vec![(Platform::OtpC, false), (Platform::OtpCsc, false)],
            logout: false,
        },
    );
    println!("  logons: {}", windows_text(&closed));

    // Activity from both sites, recorded as the exchange observed it.
    let clock = Clock::new(&session, wall_clock(), speed);
    let participants: Vec<Participant> = regs.iter().map(Participant::from).collect();
    let mut log = ActivityLog::open(
        &opts.out.join("activity.jsonl"),
        &session,
        clock,
        participants,
    )?;
    let (act_tx, mut act_rx) = mpsc::unbounded_channel::<(Site, Activity)>();
    // Records a forwarder lost because it fell behind a site's stream (said in the report).
    let (lag_tx, mut lag_rx) = mpsc::unbounded_channel::<(Site, &'static str, u64)>();
    for (site, h) in [
        (Site::Primary, nodes.primary.as_ref().expect("primary")),
        (Site::Backup, &nodes.backup),
    ] {
        forward(
            site,
            h.subscribe(),
            act_tx.clone(),
            lag_tx.clone(),
            "activity",
        );
    }

    // The feeds' own record: RTS logons and requests, DR signals.
    let (feed_tx, mut feed_rx) = mpsc::unbounded_channel::<(Site, FeedActivity)>();
    for (site, f) in [
        (Site::Primary, &nodes.primary_feed),
        (Site::Backup, &nodes.backup_feed),
    ] {
        let Some(f) = f else { continue };
        forward(
            site,
            f.subscribe(),
            feed_tx.clone(),
            lag_tx.clone(),
            "market-data",
        );
    }

    // Reference participants.
    let pubkey = rsa::RsaPublicKey::from(&gateway::load_key(&key)?);
    let mut bots: Vec<(String, BotHandle)> = Vec::new();
    for (reg, role, fault) in &plan {
        use twinsite_drill::registry::Protocol;
        // Its binary Comp ID, or its FIX one for a FIX-only EP.
        let Some(grant) = reg
            .grant(Protocol::Binary)
            .or_else(|| reg.grant(Protocol::Fix))
        else {
            continue;
        };
        let ccep = reg.kind == ParticipantKind::Ccep;
        let cfg = BotConfig::new(
            &reg.firm,
            &grant.comp_id,
            &grant.password,
            reg.broker_ids[0],
            pubkey.clone(),
            if ccep {
                csc_lookups.clone()
            } else {
                lookups.clone()
            },
            *role,
        )?
        .with_speed(speed, Duration::from_millis(heartbeat_ms))
        .with_protocol(grant.protocol)
        .with_fault(*fault)
        .with_interval(Duration::from_millis(150));
        // A CCEP trades A-shares on OTP-CSC, selling only what it holds.
        let cfg = if ccep {
            let ins = ccep_instruments();
            let holdings = ins.iter().map(|i| (i.code, CCEP_HOLDING)).collect();
            cfg.china_connect(ins, holdings)
        } else {
            cfg
        };
        bots.push((reg.firm.clone(), twinsite_bots::spawn(cfg).await?));
    }
    let mut vendors: Vec<VendorHandle> = Vec::new();
    if let Some(md) = &md {
        for (reg, fault) in &vendor_plan {
            let cfg = VendorConfig::new(&reg.firm, &reg.id(), md.clone(), rts_addrs.clone())
                .with_fault(*fault)
                .with_gap_every(Some(Duration::from_millis(1500)));
            vendors.push(twinsite_bots::spawn_vendor(cfg).await?);
        }
    }

    // The operations console.
    let mut ccfg = ConsoleConfig::new(random_token());
    ccfg.output_dir = Some(opts.out.clone());
    if opts.console_viewer {
        ccfg.viewer_token = Some(random_token());
    }
    let token = ccfg.operator_token.clone();
    let viewer_token = ccfg.viewer_token.clone();
    let mut console = match Console::start(
        opts.console,
        ccfg.clone(),
        initial_console(&session, &clock, &regs),
    )
    .await
    {
        Ok(c) => c,
        Err(_) => {
            Console::start(
                "127.0.0.1:0".parse().expect("address"),
                ccfg,
                initial_console(&session, &clock, &regs),
            )
            .await?
        }
    };
    println!(
        "  operations console: {}  (operator token {token})",
        console.url()
    );
    if let Some(v) = &viewer_token {
        println!("  console viewer token (read-only): {v}");
    }
    let console_file = write_console_file(
        &opts.out,
        &ConsoleFile {
            url: console.url(),
            operator_token: token.clone(),
            viewer_token,
        },
    )?;
    println!("  console address and tokens: {}", console_file.display());
    // One machine-readable line for scripts: the console is listening at this address now.
    println!("console: {}", console.url());

    // Follow the schedule.
    let steps = clock.steps(&session);
    let mut next = 0usize;
    let mut nodes = nodes;
    let mut acked: BTreeSet<(String, String)> = BTreeSet::new();
    let mut failover_at: Option<Timestamp> = None;
    let mut backup_open: Option<Timestamp> = None;
    let mut connected: BTreeMap<String, String> = BTreeMap::new();
    // Information vendors: where their RTS session is.
    let mut rts_site: BTreeMap<String, String> = BTreeMap::new();
    // The feeds' last status (kept for a crashed site).
    let mut feed_status: BTreeMap<&str, feed::FeedStatus> = BTreeMap::new();
    let mut per_comp: BTreeMap<String, (u64, u64, u64)> = BTreeMap::new();
    let (mut orders, mut fills) = (0u64, 0u64);
    let started = Instant::now();
    let mut last_print = Instant::now() - Duration::from_secs(10);
    let mut last_console = Instant::now() - Duration::from_secs(10);
    let mut last_checks = Instant::now();
    // Phases over (their checks are decided in the console's interim scorecards).
    let mut ended_phases: BTreeSet<String> = BTreeSet::new();
    let mut backup_rx = nodes.backup.subscribe();
    // Pausing holds the schedule: later steps move by the time spent paused.
    let mut offset_ns: u64 = 0;
    let mut paused_since: Option<Timestamp> = None;
    let mut failover_request: Option<bool> = None;
    loop {
        let now = wall_clock();
        let due = steps
            .get(next)
            .filter(|st| paused_since.is_none() && now.0 >= st.wall.0 + offset_ns)
            .cloned();
        let do_failover = match (&due, failover_request.take()) {
            (_, Some(crash)) if failover_at.is_none() => Some(crash),
            (Some(st), _) if matches!(st.kind, StepKind::Failover) && failover_at.is_none() => {
                Some(opts.crash || session.failover.mode == FailoverMode::Crash)
            }
            _ => None,
        };
        if let Some(crash) = do_failover {
            let t0 = wall_clock();
            failover_at = Some(t0);
            log.failover_started(t0);
            // The failover phase is under way from now (its schedule step may come after the
            // failover's, and the failover holds this loop until the backup opens).
            let failover_phase = session
                .phases
                .iter()
                .find(|p| p.site == PhaseSite::None)
                .map(|p| p.id.clone());
            console.update(|s| {
                if failover_phase.is_some() {
                    s.session.current_phase = failover_phase.clone();
                }
                s.failover.status = FailoverStatus::InProgress;
                s.failover.mode = Some(if crash {
                    "crash".into()
                } else {
                    "scheduled".into()
                });
                s.failover.started_ms = Some(t0.millis());
                s.failover.timeline.push(TimelineEvent {
                    at_ms: t0.millis(),
                    session_time: clock.label(&session, t0),
                    event: "failover started".into(),
                });
                s.log(
                    t0.millis(),
                    clock.label(&session, t0),
                    "exchange",
                    if crash {
                        "crash of the primary site"
                    } else {
                        "scheduled failover to the backup site"
                    },
                );
            });
            println!(
                "  [{}] FAILOVER ({}) to the backup site",
                clock.label(&session, t0),
                if crash {
                    "crash of the primary site"
                } else {
                    "scheduled"
                }
            );
            if crash {
                if let Some(p) = nodes.primary.take() {
                    p.crash().await;
                }
                // The primary site's feed and RTS die with it.
                if let Some(f) = nodes.primary_feed.take() {
                    f.shutdown();
                }
            } else {
                hand_over_to_backup(&nodes, Duration::from_secs(30)).await?;
            }
            let t1 = wait_for(
                &mut backup_rx,
                |a| matches!(a, Activity::SiteActive { .. }),
                Duration::from_secs(30),
            )
            .await
            .context("backup site did not open")?;
            backup_open = Some(t1);
            log.backup_opened(t1);
            let rto = (t1.0 - t0.0) / 1_000_000;
            console.update(|s| {
                s.failover.status = FailoverStatus::Done;
                s.failover.backup_open_ms = Some(t1.millis());
                s.failover.rto_ms = Some(rto);
                s.failover.timeline.push(TimelineEvent {
                    at_ms: t1.millis(),
                    session_time: clock.label(&session, t1),
                    event: format!("backup site open (RTO {rto} ms)"),
                });
                s.sites.active = Some("backup".into());
            });
            println!(
                "  [{}] backup site open: RTO {rto} ms",
                clock.label(&session, t1)
            );
            // The failover phase ends ("~11:00") when the backup site opens: its logons open
            // now, as for the backup phase, so RTO is the time to the backup accepting logons.
            if let Some(w) = backup_windows(&session, &clock) {
                let open = apply_windows(&nodes, &w);
                println!("    logons at the backup: {}", windows_text(&open));
            }
        }
        if let Some(st) = due {
            next += 1;
            let label = clock.label(&session, wall_clock());
            match &st.kind {
                StepKind::PhaseStart { phase } => {
                    println!("  [{label}] phase starts: {phase}");
                    console.update(|s| s.session.current_phase = Some(phase.clone()));
                }
                StepKind::PhaseEnd { phase } => {
                    println!("  [{label}] phase ends: {phase}");
                    ended_phases.insert(phase.clone());
                }
                StepKind::SessionEnd => break,
                StepKind::Failover => {}
            }
            // A failover phase whose step comes after the backup already opened does not
            // close the backup again: its end is "when the backup opens".
            let late_failover_phase = matches!(&st.kind, StepKind::PhaseStart { phase }
                if backup_open.is_some()
                    && session.phases.iter().any(|p| p.id == *phase && p.site == PhaseSite::None));
            let windows = if late_failover_phase {
                backup_windows(&session, &clock)
            } else {
                twinsite_drill::logon_windows(&session, &st)
            };
            if let Some(w) = windows {
                let open = apply_windows(&nodes, &w);
                println!("    logons: {}", windows_text(&open));
                if w.logout {
                    println!(
                        "    the exchange logs out the sessions still logged on (service shutdown)"
                    );
                }
            }
            continue;
        }
        tokio::select! {
            a = act_rx.recv() => if let Some((site, a)) = a {
                if site == Site::Primary && failover_at.is_none() {
                    if let Some(k) = ack_of(&a) {
                        acked.insert(k);
                    }
                }
                match &a {
                    Activity::SessionUp { comp_id, at, .. } => {
                        connected.insert(comp_id.to_string(), format!("{site:?}").to_lowercase());
                        let (c, l) = (comp_id.to_string(), clock.label(&session, *at));
                        console.update(|s| s.log(at.millis(), l, c, format!("logged on at the {} site", format!("{site:?}").to_lowercase())));
                    }
                    Activity::SessionDown { comp_id, at, cause, .. } => {
                        connected.remove(comp_id.as_str());
                        let (c, l, cause) = (comp_id.to_string(), clock.label(&session, *at), cause.clone());
                        console.update(|s| s.log(at.millis(), l, c, format!("session ended ({cause})")));
                    }
                    Activity::Inbound { comp_id, msg_type: 11, .. } => {
                        orders += 1;
                        per_comp.entry(comp_id.to_string()).or_default().0 += 1;
                    }
                    Activity::Outbound { comp_id, message, .. } => {
                        if let Message::ExecutionReport(r) = message.as_ref() {
                            if r.exec_type == Some(ExecType::Trade) {
                                fills += 1;
                                per_comp.entry(comp_id.to_string()).or_default().1 += 1;
                            } else if r.exec_type == Some(ExecType::Reject) {
                                per_comp.entry(comp_id.to_string()).or_default().2 += 1;
                            }
                        }
                    }
                    _ => {}
                }
                log.record(site, &a);
            },
            f = feed_rx.recv() => if let Some((site, a)) = f {
                let site_name = format!("{site:?}").to_lowercase();
                match &a {
                    FeedActivity::RtsLogon { user, status, at, peer, .. } => {
                        let who = user.clone().unwrap_or_else(|| peer.to_string());
                        if *status == 0 {
                            if let Some(u) = user {
                                rts_site.insert(u.clone(), format!("{site_name} (RTS)"));
                            }
                        }
                        let l = clock.label(&session, *at);
                        let what = if *status == 0 {
                            format!("logged on to the RTS at the {site_name} site")
                        } else {
                            format!("RTS logon refused at the {site_name} site (SessionStatus {status})")
                        };
                        console.update(|s| s.log(at.millis(), l, who, what));
                    }
                    FeedActivity::RtsClosed { user: Some(u), .. } => {
                        rts_site.remove(u);
                    }
                    FeedActivity::DrSignal { status, at } => {
                        let l = clock.label(&session, *at);
                        let what = format!("DR signal {} ({status:?}) sent by the {site_name} site", status.code());
                        println!("  [{l}] {what}");
                        console.update(|s| {
                            s.market_data.dr_signal = "sent".into();
                            if s.market_data.dr_signal_ms.is_none() {
                                s.market_data.dr_signal_ms = Some(at.millis());
                            }
                            s.failover.timeline.push(TimelineEvent {
                                at_ms: at.millis(),
                                session_time: l.clone(),
                                event: what.clone(),
                            });
                            s.log(at.millis(), l, "exchange", what);
                        });
                    }
                    _ => {}
                }
                log.record_feed(site, &a);
            },
            lagged = lag_rx.recv() => if let Some((site, stream, n)) = lagged {
                let now = wall_clock();
                let l = clock.label(&session, now);
                let what = format!("{n} {stream} records of the {} site lost: the collector lagged", format!("{site:?}").to_lowercase());
                println!("  [{l}] {what}");
                log.record_lagged(site, now, n);
                console.update(|s| s.log(now.millis(), l, "exchange", what));
            },
            action = console.actions.recv() => if let Some(action) = action {
                let outcome: Result<String, String> = match &action {
                    OperatorAction::FailoverNow { .. } | OperatorAction::CrashFailover { .. } if failover_at.is_some() => Err("the failover has already happened".into()),
                    OperatorAction::FailoverNow { .. } => { failover_request = Some(false); Ok("scheduled failover starting now".into()) }
                    OperatorAction::CrashFailover { .. } => { failover_request = Some(true); Ok("crashing the primary site now".into()) }
                    OperatorAction::Pause { .. } if paused_since.is_some() => Err("the schedule is already paused".into()),
                    OperatorAction::Pause { .. } => { paused_since = Some(wall_clock()); console.update(|s| s.session.status = ConsoleStatus::Paused); Ok("schedule paused".into()) }
                    OperatorAction::Resume { .. } => match paused_since.take() {
                        Some(p) => { offset_ns += wall_clock().0 - p.0; console.update(|s| s.session.status = ConsoleStatus::Running); Ok("schedule resumed".into()) }
                        None => Err("the schedule is not paused".into()),
                    },
                    OperatorAction::Register { request, .. } => registry
                        .register(RegistrationRequest { firm: request.firm.clone(), kind: request.kind.clone(), broker_ids: request.broker_ids.clone(), contact: request.contact.clone(), source_ips: request.source_ips.clone(), protocols: request.protocols.clone() }, wall_clock())
                        .map(|r| format!("registered {} as {}", r.firm, r.id()))
                        .map_err(|e| e.to_string()),
                };
                action.answer(outcome.map(ActionOk::new));
            },
            _ = tokio::time::sleep(Duration::from_millis(200)) => {}
        }
        if last_checks.elapsed() >= Duration::from_secs(1) {
            last_checks = Instant::now();
            let interim = interim_scorecards(&log, &ended_phases);
            console.update(|s| {
                s.apply_report(&interim);
            });
        }
        if last_console.elapsed() >= Duration::from_millis(250) {
            last_console = Instant::now();
            let now = wall_clock();
            let label = clock.label(&session, now);
            let nodes_view = node_views(&nodes);
            let hashes_equal = hashes_equal_now(&nodes);
            for (n, f) in [
                ("primary", &nodes.primary_feed),
                ("backup", &nodes.backup_feed),
            ] {
                match f {
                    Some(f) => {
                        feed_status.insert(n, f.status());
                    }
                    // A crashed site's feed: its counters stay, it publishes no more.
                    None => {
                        if let Some(st) = feed_status.get_mut(n) {
                            st.active = false;
                        }
                    }
                }
            }
            let feeds: Vec<(&str, feed::FeedStatus)> =
                feed_status.iter().map(|(n, s)| (*n, s.clone())).collect();
            console.update(|s| {
                s.session.now_ms = now.millis();
                s.session.now_label = label.clone();
                if s.session.status == ConsoleStatus::Waiting {
                    s.session.status = ConsoleStatus::Running;
                }
                s.sites.nodes = nodes_view.clone();
                s.sites.hashes_equal = hashes_equal;
                if s.sites.active.is_none() {
                    s.sites.active = Some("primary".into());
                }
                let publishing = feeds.iter().find(|(_, st)| st.active);
                for ch in &mut s.market_data.channels {
                    ch.site = publishing.map(|(n, _)| n.to_string());
                    if let Some((_, st)) = publishing {
                        if let Some(c) = st.channels.iter().find(|c| c.id == ch.id) {
                            ch.seq = u64::from(c.last_seq);
                        }
                    }
                }
                s.market_data.rts_logons = feeds.iter().map(|(_, st)| st.rts_logons).sum();
                s.market_data.rts_requests_served = feeds.iter().map(|(_, st)| st.rts_served).sum();
                for p in &mut s.participants {
                    p.connected = connected
                        .get(&p.id)
                        .or_else(|| rts_site.get(&p.id))
                        .cloned();
                    if let Some((o, f, r)) = per_comp.get(&p.id) {
                        p.orders = *o;
                        p.fills = *f;
                        p.rejects = *r;
                    }
                }
            });
        }
        if last_print.elapsed() >= Duration::from_secs(5) {
            last_print = Instant::now();
            let active = if backup_open.is_some() {
                "backup"
            } else if failover_at.is_some() {
                "failing over"
            } else {
                "primary"
            };
            println!(
                "  [{}] active site: {:<12} connected {}/{}  orders {}  fills {}{}",
                clock.label(&session, wall_clock()),
                active,
                connected.len(),
                regs.len(),
                orders,
                fills,
                if paused_since.is_some() {
                    "  (paused)"
                } else {
                    ""
                }
            );
        }
    }
    // Drain what is left and stop the participants.
    for (_, b) in bots {
        b.stop().await;
    }
    for v in vendors {
        v.stop().await;
    }
    while let Ok((site, a)) = act_rx.try_recv() {
        log.record(site, &a);
    }
    while let Ok((site, a)) = feed_rx.try_recv() {
        log.record_feed(site, &a);
    }
    while let Ok((site, _, n)) = lag_rx.try_recv() {
        log.record_lagged(site, wall_clock(), n);
    }

    // The exchange's own checks.
    let bj = nodes.backup.journal().expect("node").clone();
    let idx = bj.commit_index();
    let _ = bj.wait_applied(idx, Duration::from_secs(10)).await;
    let _ = nodes
        .witness
        .wait_applied(idx, Duration::from_secs(10))
        .await;
    let hb = bj.state_hash_at(idx);
    let hw = nodes.witness.state_hash_at(idx);
    let hp = nodes
        .primary
        .as_ref()
        .and_then(|p| p.journal().and_then(|j| j.state_hash_at(idx)));
    let equal = hb.is_some() && hb == hw && (hp.is_none() || hp == hb);
    let at_backup = bj.read(acks_in_replica);
    let lost = acked.iter().filter(|k| !at_backup.contains(*k)).count() as u64;
    let checks = ExchangeChecks {
        rto_ms: match (failover_at, backup_open) {
            (Some(a), Some(b)) => Some((b.0 - a.0) / 1_000_000),
            _ => None,
        },
        acked_orders_lost: lost,
        state_hashes_equal: equal,
        detail: format!(
            "journal index {idx}: backup {hb:016x?}, witness {hw:016x?}, primary {}; {} orders acknowledged at the primary site, {} of them found in the backup's replicated session logs",
            hp.map_or("down".to_string(), |h| format!("{h:016x}")),
            acked.len(),
            acked.len() as u64 - lost
        ),
    };
    let report = log.report(&checks);
    let files = report.write(&opts.out)?;
    let report_json: serde_json::Value =
        serde_json::from_str(&report.to_json()).unwrap_or_default();
    console.update(|s| {
        s.apply_report(&report_json);
        s.reports = Some(ReportLinks::default());
        s.session.status = ConsoleStatus::Finished;
        s.failover.acked_orders_lost = Some(checks.acked_orders_lost);
        s.failover.state_hashes_equal = Some(checks.state_hashes_equal);
    });
    println!();
    println!("{}", summary(&report.to_json()));
    for f in files {
        println!("  wrote {}", f.display());
    }
    println!("  session took {:.1} s", started.elapsed().as_secs_f64());
    if opts.keep_console {
        println!(
            "  the console stays up at {} with the report; Ctrl-C to exit",
            console.url()
        );
        tokio::signal::ctrl_c().await?;
    }
    if let Some(p) = nodes.primary.take() {
        p.shutdown();
    }
    for f in [nodes.primary_feed.take(), nodes.backup_feed.take()]
        .into_iter()
        .flatten()
    {
        f.shutdown();
    }
    nodes.backup.shutdown();
    nodes.witness.shutdown().await;
    Ok(())
}

/// The participants' scorecards so far, for the console (the report's JSON without its failover
/// figures): a check shows passed as soon as the evidence so far passes it, and failed only once
/// its phase is over (until then it is undecided: the participant still has time). The final
/// report replaces them all when the session ends.
fn interim_scorecards(log: &ActivityLog, ended: &BTreeSet<String>) -> serde_json::Value {
    let report = log.report(&ExchangeChecks::default());
    let mut v = serde_json::to_value(&report).unwrap_or_default();
    if let Some(o) = v.as_object_mut() {
        o.remove("failover");
    }
    let checks = v["participants"]
        .as_array_mut()
        .into_iter()
        .flatten()
        .filter_map(|p| p["checks"].as_array_mut())
        .flatten();
    for c in checks {
        let over = c["phase"].as_str().is_some_and(|p| ended.contains(p));
        if c["passed"] == serde_json::Value::Bool(false) && !over {
            c["passed"] = serde_json::Value::Null;
        }
    }
    v
}

/// A summary table from report.json.
fn summary(json: &str) -> String {
    let v: serde_json::Value = serde_json::from_str(json).unwrap_or_default();
    let mut s = String::new();
    let f = &v["failover"];
    s.push_str(&format!(
        "Failover: mode {}, RTO {} ms, acknowledged orders lost {}, state hashes equal {}\n",
        f["mode"], f["rto_ms"], f["acked_orders_lost"], f["state_hashes_equal"]
    ));
    s.push_str(&format!(
        "{:<28} {:<5} {:<7} failed checks\n",
        "participant", "kind", "result"
    ));
    if let Some(ps) = v["participants"].as_array() {
        for p in ps {
            let failed: Vec<String> = p["checks"]
                .as_array()
                .map(|cs| {
                    cs.iter()
                        .filter(|c| c["passed"] == serde_json::Value::Bool(false))
                        .map(|c| c["name"].as_str().unwrap_or("").to_string())
                        .collect()
                })
                .unwrap_or_default();
            s.push_str(&format!(
                "{:<28} {:<5} {:<7} {}\n",
                p["id"].as_str().unwrap_or(""),
                p["kind"].as_str().unwrap_or(""),
                if p["passed"] == serde_json::Value::Bool(true) {
                    "PASS"
                } else {
                    "FAIL"
                },
                failed.join(", ")
            ));
        }
    }
    s
}

/// Forward a site's broadcast stream (`what`: "activity" or "market-data") into the collector's
/// channel; records lost because the forwarder fell behind are counted on `lag`, never dropped
/// silently.
fn forward<T: Clone + Send + 'static>(
    site: Site,
    mut rx: tokio::sync::broadcast::Receiver<T>,
    tx: mpsc::UnboundedSender<(Site, T)>,
    lag: mpsc::UnboundedSender<(Site, &'static str, u64)>,
    what: &'static str,
) {
    tokio::spawn(async move {
        loop {
            match rx.recv().await {
                Ok(a) => {
                    if tx.send((site, a)).is_err() {
                        return;
                    }
                }
                Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => {
                    let _ = lag.send((site, what, n));
                }
                Err(_) => return,
            }
        }
    });
}
