//! The site runtime: Lookup Service and OCG-C / FIX gateway listeners, the core (the sans-IO
//! OCG-C and FIX servers and the exchange core) behind one lock, and one task per connection.
//!
//! A connection's task reads its socket, calls into the core under the lock (session rules,
//! throttle, engine, journal batch) and writes the output released for it itself: a new order's
//! Execution Report goes out from the task that read the order, with no hop through other tasks.
//! Output for other connections (the counterparty's fill, output held until its journal entry
//! commits, timers) is queued in their [`Outbox`] and wakes their task. The core task runs the
//! session timers, the engine tick, operations commands, journal commits and activations.

use crate::config::{platform_name, platform_of, SiteConfig};
use crate::exchange::{Exchange, SessionProfile};
use crate::feed::FeedInput;
use crate::fix_gateway::{FixAction, FixParticipant, FixServer};
use crate::replica::{self, Entry, Input, Replica};
use anyhow::Context;
use rsa::pkcs8::DecodePrivateKey;
use rsa::RsaPrivateKey;
use std::collections::BTreeMap;
use std::collections::VecDeque;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{broadcast, mpsc, oneshot};
use tokio::task::JoinHandle;
use twinsite_cluster::stages::{mark, Stage};
use twinsite_cluster::{Journal, JournalConfig};
use twinsite_core::Site;
use twinsite_core::{CompId, ParticipantKind, Platform, Timestamp};
use twinsite_engine::{refdata, Command, Engine, EngineConfig, Phase, Schedule};
use twinsite_ocg::lookup::{LookupOutcome, LookupService};
use twinsite_ocg::password::{hkt_day, Credentials};
use twinsite_ocg::throttle::ThrottleConfig;
use twinsite_ocg::{
    decode_frame, ConnectionId, DurableSession, Message, OcgServer, ParticipantConfig,
    ServerAction, ServerConfig,
};

/// The wall clock, as a [`Timestamp`]. Only the site reads it.
pub fn wall_clock() -> Timestamp {
    Timestamp(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0),
    )
}

/// What happened at the site, as the exchange observed it (for activity tracking and logs).
#[derive(Debug, Clone, PartialEq)]
pub enum Activity {
    Lookup {
        comp_id: Option<String>,
        peer: SocketAddr,
        accepted: bool,
        at: Timestamp,
    },
    Connected {
        connection: u64,
        peer: SocketAddr,
        /// "primary", "mirror" (OTP-C binary), "fix" (OTP-C FIX), "csc-primary", "csc-mirror"
        /// (OTP-CSC).
        gateway: &'static str,
        at: Timestamp,
    },
    /// A Comp ID refused at a lookup service or a gateway, with the reason saying who is at
    /// fault: a Comp ID of another platform or unknown (answered as the reference says for a
    /// Comp ID that may not log on: "invalid client" at the lookup, a silent disconnect at the
    /// gateway), or a logon while the platform's logons are closed (Logout with Session
    /// Status 7).
    Refused {
        comp_id: Option<CompId>,
        peer: SocketAddr,
        platform: Platform,
        reason: String,
        at: Timestamp,
    },
    SessionUp {
        comp_id: CompId,
        connection: u64,
        /// The sequence numbers the Logon presented (OCG-C and FIX).
        sequences: Option<twinsite_ocg::LogonSequences>,
        at: Timestamp,
    },
    SessionDown {
        comp_id: CompId,
        connection: u64,
        cause: String,
        at: Timestamp,
    },
    Disconnected {
        connection: u64,
        silent: bool,
        reason: String,
        at: Timestamp,
    },
    /// A business message delivered in sequence.
    Inbound {
        comp_id: CompId,
        seq: u32,
        msg_type: u8,
        poss_resend: bool,
        at: Timestamp,
    },
    /// A business message generated for a session (sent now, or queued for its next logon).
    Outbound {
        comp_id: CompId,
        seq: u32,
        message: Box<Message>,
        at: Timestamp,
    },
    /// A FIX participant's ResendRequest (BeginSeqNo, EndSeqNo; 0 = infinity), answered by
    /// the session layer with the stored messages and gap fills.
    ResendRequest {
        comp_id: CompId,
        begin: u64,
        end: u64,
        at: Timestamp,
    },
    PhaseChanged {
        phase: Phase,
        at: Timestamp,
    },
    /// The site opened for business (after a failover when `failover`).
    SiteActive {
        site: Site,
        failover: bool,
        at: Timestamp,
    },
    SiteStandby {
        site: Site,
        at: Timestamp,
    },
}

/// Operations commands to a running site.
#[derive(Debug)]
pub enum AdminCmd {
    /// Apply an engine command (phase change, halt, resume...).
    Engine(Command),
    /// Allow or refuse logons on every platform (Session Status 7 when refused).
    LogonsAllowed(bool),
    /// Allow or refuse logons on one platform (OTP-C: binary and FIX gateways; OTP-CSC).
    LogonsAllowedOn { platform: Platform, allowed: bool },
    /// Log out every live session (OTP-C binary and FIX, OTP-CSC) with Session Status 4:
    /// the service shutdown at the end of a practice session (reference §1.7).
    LogoutAll,
    /// Open or close the Lookup Service.
    LookupOpen(bool),
    /// Engine state hash and live order count (OTP-C and China Connect).
    StateHash(oneshot::Sender<(u64, usize)>),
    /// Reference data and books as the feed shows them (None while standby).
    FeedImage(oneshot::Sender<Option<crate::feed_map::FeedImage>>),
}

/// What the core task acts on (connections call into the core directly, see [`connection`]).
enum CoreMsg {
    Admin(AdminCmd),
    /// Journal entries up to this ticket are committed.
    Committed {
        ticket: u64,
    },
    CommitFailed {
        error: String,
    },
    /// This node leads (or stopped leading) the journal.
    Serving(bool),
}

enum Out {
    Bytes(Vec<u8>),
    Close,
}

/// Output the core released for one connection, waiting for the connection's task to write it.
#[derive(Default)]
struct Outbox {
    queue: Mutex<OutQueue>,
    /// Woken when output was queued by anyone but the connection's own task.
    wake: tokio::sync::Notify,
}

#[derive(Default)]
struct OutQueue {
    bytes: Vec<u8>,
    /// Close after `bytes` (nothing queued after a close is written).
    close: bool,
}

impl Outbox {
    fn push(&self, out: Out) {
        let mut q = self.queue.lock().unwrap_or_else(|e| e.into_inner());
        if q.close {
            return;
        }
        match out {
            Out::Bytes(b) => {
                if q.bytes.is_empty() {
                    q.bytes = b;
                } else {
                    q.bytes.extend_from_slice(&b);
                }
            }
            Out::Close => q.close = true,
        }
    }

    /// Move the queued bytes to the end of `into`; true once a close is queued.
    fn take(&self, into: &mut Vec<u8>) -> bool {
        let mut q = self.queue.lock().unwrap_or_else(|e| e.into_inner());
        if into.is_empty() {
            std::mem::swap(into, &mut q.bytes);
        } else {
            into.extend_from_slice(&q.bytes);
            q.bytes.clear();
        }
        q.close
    }
}

/// The core, shared by the core task (timers, admin, journal commits, activation) and the
/// connection tasks, which call into it under the lock and write their replies themselves.
struct Shared {
    core: Mutex<Core>,
    /// Woken when a connection moved the core's earliest timer before the core task's wake-up.
    rearm: tokio::sync::Notify,
    /// Woken when an activation finished (connections accepted meanwhile wait for it).
    activated: tokio::sync::Notify,
}

impl Shared {
    fn lock(&self) -> std::sync::MutexGuard<'_, Core> {
        // A panic under the lock must not take every connection down with it.
        self.core.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// A running site.
pub struct SiteHandle {
    pub lookup_addrs: Vec<SocketAddr>,
    pub gateway_primary: SocketAddr,
    pub gateway_mirror: SocketAddr,
    /// The FIX gateway, when configured.
    pub fix_gateway: Option<SocketAddr>,
    /// The OTP-CSC (China Connect) lookup service and gateways, when configured.
    pub csc_lookup_addrs: Vec<SocketAddr>,
    pub csc_gateway_primary: Option<SocketAddr>,
    pub csc_gateway_mirror: Option<SocketAddr>,
    core: mpsc::UnboundedSender<CoreMsg>,
    activity: broadcast::Sender<Activity>,
    tasks: Vec<JoinHandle<()>>,
    journal: Option<Journal<Replica>>,
}

impl SiteHandle {
    /// The node's journal, when replicated.
    pub fn journal(&self) -> Option<&Journal<Replica>> {
        self.journal.as_ref()
    }
    /// Kill the node as a crash would: every task stops at once, nothing is flushed.
    pub async fn crash(self) {
        for t in &self.tasks {
            t.abort();
        }
        if let Some(j) = &self.journal {
            j.shutdown().await;
        }
    }
    pub fn subscribe(&self) -> broadcast::Receiver<Activity> {
        self.activity.subscribe()
    }
    pub fn admin(&self, cmd: AdminCmd) {
        let _ = self.core.send(CoreMsg::Admin(cmd));
    }
    pub async fn state_hash(&self) -> Option<(u64, usize)> {
        let (tx, rx) = oneshot::channel();
        self.admin(AdminCmd::StateHash(tx));
        rx.await.ok()
    }
    /// Stop every task of the site (listeners close; connections drop).
    pub fn shutdown(self) {
        for t in self.tasks {
            t.abort();
        }
        if let Some(j) = self.journal {
            tokio::spawn(async move { j.shutdown().await });
        }
    }
}

/// Load an RSA private key (PKCS#8 PEM).
pub fn load_key(path: &std::path::Path) -> anyhow::Result<RsaPrivateKey> {
    let pem = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read key {}", path.display()))?;
    RsaPrivateKey::from_pkcs8_pem(&pem)
        .with_context(|| format!("{} is not a PKCS#8 PEM RSA private key", path.display()))
}

fn schedule(cfg: &SiteConfig, now: Timestamp) -> anyhow::Result<Schedule> {
    let e = &cfg.engine;
    let table = match e.schedule.as_str() {
        "manual" => return Ok(Schedule::manual()),
        "full-day" => twinsite_engine::schedule::FULL_DAY,
        "half-day" => twinsite_engine::schedule::HALF_DAY,
        other => anyhow::bail!("engine.schedule {other:?}: use manual, full-day or half-day"),
    };
    match &e.date {
        Some(d) => {
            let parts: Vec<u32> = d.split('-').filter_map(|x| x.parse().ok()).collect();
            anyhow::ensure!(parts.len() == 3, "engine.date {d:?}: use YYYY-MM-DD");
            Ok(Schedule::for_date(
                parts[0] as i32,
                parts[1],
                parts[2],
                table,
            ))
        }
        None => Ok(Schedule::compressed(
            table,
            e.start_ms.map(Timestamp::from_millis).unwrap_or(now),
            e.speed,
        )),
    }
}

/// The OCG-C server settings from the config.
pub fn server_config(cfg: &SiteConfig) -> ServerConfig {
    let mut scfg = ServerConfig::default();
    scfg.timers.heartbeat_interval_ns = cfg.session.heartbeat_ms * 1_000_000;
    scfg.password_time_tolerance_ns = cfg.session.password_tolerance_secs * 1_000_000_000;
    if !cfg.session.throttle {
        scfg.throttle = ThrottleConfig {
            msgs_per_unit: u32::MAX / 1024,
            ..scfg.throttle
        };
    }
    scfg
}

/// Build the exchange core and the OCG-C server from a config.
pub fn build(
    cfg: &SiteConfig,
    now: Timestamp,
) -> anyhow::Result<(Exchange, OcgServer, LookupService)> {
    let securities = match &cfg.site.reference_data {
        Some(p) => refdata::parse(
            &std::fs::read_to_string(p).with_context(|| format!("cannot read {}", p.display()))?,
        )?,
        None => refdata::sample(),
    };
    let mut ecfg = EngineConfig {
        seed: cfg.engine.seed,
        schedule: schedule(cfg, now)?,
        cc_holdings: cfg
            .engine
            .cc_holdings
            .iter()
            .map(|h| {
                (
                    twinsite_core::BrokerId(h.broker),
                    twinsite_core::SecurityCode(h.security),
                    h.shares,
                )
            })
            .collect(),
        reserve_orders: cfg.engine.reserve_orders,
        ..Default::default()
    };
    if let Some(q) = cfg.engine.cc_daily_quota {
        ecfg.cc_daily_quota = q;
    }
    let manual = ecfg.schedule.transitions.is_empty();
    let mut engine = Engine::new(ecfg, securities);
    if manual {
        // At a fixed time, so every node of a cluster starts from the same state.
        engine.apply(&Command::SetPhase(Phase::ContinuousMorning), Timestamp(0));
    }
    let keys = cfg
        .site
        .keys
        .iter()
        .map(|k| load_key(k))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let mut scfg = ServerConfig::default();
    scfg.timers.heartbeat_interval_ns = cfg.session.heartbeat_ms * 1_000_000;
    scfg.password_time_tolerance_ns = cfg.session.password_tolerance_secs * 1_000_000_000;
    if !cfg.session.throttle {
        scfg.throttle = ThrottleConfig {
            msgs_per_unit: u32::MAX / 1024,
            ..scfg.throttle
        };
    }
    let mut server = OcgServer::new(scfg.clone(), keys);
    let advertise = cfg
        .site
        .advertise_host
        .unwrap_or(cfg.site.gateway_primary.ip());
    let mut lookup = LookupService::new(
        (advertise.to_string(), cfg.site.gateway_primary.port()),
        (advertise.to_string(), cfg.site.gateway_mirror.port()),
        cfg.site.active,
    );
    let mut profiles = Vec::new();
    let today = hkt_day(now);
    for p in &cfg.participants {
        let comp = p.comp()?;
        let mut cred =
            Credentials::issued(comp.as_str(), &p.password, today, scfg.password_expiry_days);
        cred.must_change = p.must_change_password;
        // A FIX Comp ID has no binary session (the FIX gateway holds its session).
        if !p.is_fix() {
            server.add_participant(
                ParticipantConfig {
                    comp_id: comp,
                    source_ips: p.source_ips.clone(),
                    throttle_units: p.throttle_units,
                },
                DurableSession::new(
                    comp,
                    cred,
                    p.cancel_on_disconnect_ms.map(|ms| ms * 1_000_000),
                ),
            );
        }
        if p.platform() == Some(Platform::OtpC) {
            lookup.add_client(comp, p.source_ips.clone(), false);
        }
        profiles.push(SessionProfile {
            comp_id: comp,
            firm: p.firm.clone(),
            kind: p.participant_kind()?,
            brokers: p.brokers(),
            throttle_units: p.throttle_units,
        });
    }
    Ok((Exchange::new(engine, profiles), server, lookup))
}

/// Start a single site with no replication: it is active at once and every input counts as
/// committed when applied (`twinsite serve`).
pub async fn start(
    cfg: SiteConfig,
) -> anyhow::Result<(SiteHandle, mpsc::UnboundedReceiver<FeedInput>)> {
    start_inner(cfg, None).await
}

/// The initial replicated state every node starts from (identical on every node for the same
/// config): the exchange core and each Comp ID's durable session.
pub fn initial_replica(cfg: &SiteConfig) -> anyhow::Result<Replica> {
    // Credentials are issued today; a compressed schedule starts at `engine.start_ms`, which a
    // cluster's nodes must share.
    let (exchange, server, _) = build(cfg, wall_clock())?;
    let sessions = cfg
        .participants
        .iter()
        .filter_map(|p| p.comp().ok())
        .filter_map(|c| server.durable(&c).cloned().map(|d| (c, d)))
        .collect();
    let mut replica = Replica::new(exchange, sessions);
    replica.fix_sessions = crate::fix_gateway::fresh_states(
        cfg.participants
            .iter()
            .filter(|p| p.is_fix())
            .filter_map(|p| p.comp().ok()),
    );
    replica.reserve_outbound(cfg.session.reserve_outbound);
    Ok(replica)
}

/// Start one site node of the replicated cluster. The site serves participants only while its
/// node leads the journal; otherwise its lookup refuses and its gateways close connections.
pub async fn start_node(
    cfg: SiteConfig,
    site: Site,
    journal_cfg: JournalConfig,
    listener: Option<TcpListener>,
) -> anyhow::Result<(SiteHandle, mpsc::UnboundedReceiver<FeedInput>)> {
    let replica = initial_replica(&cfg)?;
    let journal = match listener {
        Some(l) => Journal::start_with_listener(journal_cfg, replica, l).await,
        None => Journal::start(journal_cfg, replica).await,
    }
    .map_err(|e| anyhow::anyhow!("{e}"))?;
    start_inner(cfg, Some((site, journal))).await
}

/// Start the witness: it keeps the journal and a replica but never serves participants.
pub async fn start_witness(
    cfg: &SiteConfig,
    journal_cfg: JournalConfig,
    listener: Option<TcpListener>,
) -> anyhow::Result<Journal<Replica>> {
    let replica = initial_replica(cfg)?;
    match listener {
        Some(l) => Journal::start_with_listener(journal_cfg, replica, l).await,
        None => Journal::start(journal_cfg, replica).await,
    }
    .map_err(|e| anyhow::anyhow!("{e}"))
}

async fn start_inner(
    mut cfg: SiteConfig,
    node: Option<(Site, Journal<Replica>)>,
) -> anyhow::Result<(SiteHandle, mpsc::UnboundedReceiver<FeedInput>)> {
    // The thread that runs the site (a current-thread runtime's): its heap mapped up front.
    crate::heap::prefault_thread();
    let keys = cfg
        .site
        .keys
        .iter()
        .map(|k| load_key(k))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let (core_tx, core_rx) = mpsc::unbounded_channel();
    let (feed_tx, feed_rx) = mpsc::unbounded_channel();
    let (activity, _) = broadcast::channel(65_536);
    let mut tasks = Vec::new();
    let next_conn = Arc::new(AtomicU64::new(1));

    let gp = TcpListener::bind(cfg.site.gateway_primary)
        .await
        .with_context(|| format!("bind gateway {}", cfg.site.gateway_primary))?;
    let gm = TcpListener::bind(cfg.site.gateway_mirror)
        .await
        .with_context(|| format!("bind gateway {}", cfg.site.gateway_mirror))?;
    let gateway_primary = gp.local_addr()?;
    let gateway_mirror = gm.local_addr()?;
    // Ports bound to 0 are only known now: hand out the real ones.
    cfg.site.gateway_primary = gateway_primary;
    cfg.site.gateway_mirror = gateway_mirror;
    let kinds: Arc<BTreeMap<CompId, ParticipantKind>> = Arc::new(
        cfg.participants
            .iter()
            .filter_map(|p| Some((p.comp().ok()?, p.participant_kind().ok()?)))
            .collect(),
    );
    let host = cfg
        .site
        .advertise_host
        .unwrap_or(gateway_primary.ip())
        .to_string();
    let lookup = platform_lookup(&cfg, Platform::OtpC, &host, gateway_primary, gateway_mirror);
    let mut lookup_addrs = Vec::new();
    for addr in &cfg.site.lookup {
        let l = TcpListener::bind(addr)
            .await
            .with_context(|| format!("bind lookup {addr}"))?;
        lookup_addrs.push(l.local_addr()?);
        tasks.push(tokio::spawn(lookup_listener(
            l,
            Platform::OtpC,
            lookup.clone(),
            kinds.clone(),
            activity.clone(),
        )));
    }
    // The gateway listeners, started once the core exists: (listener, name, platform).
    let mut gateways = Vec::new();
    // OTP-CSC: its own lookup service and gateway pair, same framing and session rules.
    let mut csc_lookup = None;
    let mut csc_lookup_addrs = Vec::new();
    let (mut csc_gateway_primary, mut csc_gateway_mirror) = (None, None);
    if let (Some(p), Some(m)) = (cfg.site.csc_gateway_primary, cfg.site.csc_gateway_mirror) {
        let cp = TcpListener::bind(p)
            .await
            .with_context(|| format!("bind OTP-CSC gateway {p}"))?;
        let cm = TcpListener::bind(m)
            .await
            .with_context(|| format!("bind OTP-CSC gateway {m}"))?;
        let (pa, ma) = (cp.local_addr()?, cm.local_addr()?);
        cfg.site.csc_gateway_primary = Some(pa);
        cfg.site.csc_gateway_mirror = Some(ma);
        csc_gateway_primary = Some(pa);
        csc_gateway_mirror = Some(ma);
        let host = cfg.site.advertise_host.unwrap_or(pa.ip()).to_string();
        let svc = platform_lookup(&cfg, Platform::OtpCsc, &host, pa, ma);
        for addr in &cfg.site.csc_lookup {
            let l = TcpListener::bind(addr)
                .await
                .with_context(|| format!("bind OTP-CSC lookup {addr}"))?;
            csc_lookup_addrs.push(l.local_addr()?);
            tasks.push(tokio::spawn(lookup_listener(
                l,
                Platform::OtpCsc,
                svc.clone(),
                kinds.clone(),
                activity.clone(),
            )));
        }
        gateways.push((cp, "csc-primary", Platform::OtpCsc));
        gateways.push((cm, "csc-mirror", Platform::OtpCsc));
        csc_lookup = Some(svc);
    }
    let mut fix_gateway = None;
    if let Some(addr) = cfg.site.fix_gateway {
        let l = TcpListener::bind(addr)
            .await
            .with_context(|| format!("bind FIX gateway {addr}"))?;
        let fa = l.local_addr()?;
        fix_gateway = Some(fa);
        cfg.site.fix_gateway = fix_gateway;
        // FIX Comp IDs find it through the OTP-C Lookup Service (Protocol Type 2, INFERRED);
        // there is one FIX listener, handed out as both primary and secondary.
        let h = cfg.site.advertise_host.unwrap_or(fa.ip()).to_string();
        lookup.lock().expect("lookup lock").fix_gateways =
            Some(((h.clone(), fa.port()), (h, fa.port())));
        gateways.push((l, "fix", Platform::OtpC));
    }
    gateways.push((gp, "primary", Platform::OtpC));
    gateways.push((gm, "mirror", Platform::OtpC));
    let (site, journal) = match node {
        Some((s, j)) => (s, Some(j)),
        None => (Site::Primary, None),
    };
    let (prop_tx, prop_rx) = mpsc::unbounded_channel();
    if let Some(j) = &journal {
        tasks.push(tokio::spawn(proposer(j.clone(), prop_rx, core_tx.clone())));
        tasks.push(tokio::spawn(leadership_watch(j.clone(), core_tx.clone())));
    }
    let name = cfg.site.name.clone();
    let mut core = Core {
        cfg,
        keys,
        site,
        live: None,
        journal: journal.clone(),
        conns: BTreeMap::new(),
        feed: feed_tx,
        activity: activity.clone(),
        lookup,
        csc_lookup,
        kinds,
        logons_allowed: [true, true],
        batch: Vec::new(),
        synced: BTreeMap::new(),
        held: VecDeque::new(),
        next_ticket: 1,
        proposed: 0,
        committed: 0,
        proposer: prop_tx,
        activating: false,
        current: None,
        armed: Timestamp(0),
    };
    if journal.is_none() {
        let now = wall_clock();
        if let Some(l) = load_config(&core.cfg, now) {
            core.open(l, now);
        }
        core.finish(now);
    }
    let shared = Arc::new(Shared {
        core: Mutex::new(core),
        rearm: tokio::sync::Notify::new(),
        activated: tokio::sync::Notify::new(),
    });
    for (l, name, platform) in gateways {
        tasks.push(tokio::spawn(gateway_listener(
            l,
            name,
            platform,
            shared.clone(),
            next_conn.clone(),
            activity.clone(),
        )));
    }
    tasks.push(tokio::spawn(core_task(shared, core_rx)));
    tracing::info!(site = %name, ?lookup_addrs, %gateway_primary, %gateway_mirror, "site started");
    Ok((
        SiteHandle {
            lookup_addrs,
            gateway_primary,
            gateway_mirror,
            fix_gateway,
            csc_lookup_addrs,
            csc_gateway_primary,
            csc_gateway_mirror,
            core: core_tx,
            activity,
            tasks,
            journal,
        },
        feed_rx,
    ))
}

/// Sends every batch of journal entries, one proposal at a time, so the journal order is the
/// order the active site applied them; entries queued while one proposal is in flight go
/// together in the next (group commit).
async fn proposer(
    journal: Journal<Replica>,
    mut rx: mpsc::UnboundedReceiver<(u64, Vec<Entry>)>,
    core: mpsc::UnboundedSender<CoreMsg>,
) {
    let debug = std::env::var_os("TWINSITE_DEBUG").is_some();
    while let Some((mut last, mut entries)) = rx.recv().await {
        while let Ok((t, e)) = rx.try_recv() {
            last = t;
            entries.extend(e);
        }
        // Committed is enough to release the held replies: the live exchange computed them,
        // and every later leader holds the entries; this node's replica applies them after.
        mark(Stage::Proposed);
        let r = journal.propose_committed(replica::encode(&entries)).await;
        mark(Stage::Committed);
        if debug {
            eprintln!(
                "proposer {:?}: {} entries through ticket {last}: {:?}",
                journal.role(),
                entries.len(),
                r.as_ref()
            );
        }
        let msg = match r {
            Ok(_) => CoreMsg::Committed { ticket: last },
            Err(e) => CoreMsg::CommitFailed {
                error: e.to_string(),
            },
        };
        if core.send(msg).is_err() {
            return;
        }
    }
}

async fn leadership_watch(journal: Journal<Replica>, core: mpsc::UnboundedSender<CoreMsg>) {
    let mut rx = journal.subscribe();
    let mut serving = false;
    loop {
        let now_serving = rx.borrow_and_update().serving;
        if now_serving != serving {
            serving = now_serving;
            if core.send(CoreMsg::Serving(serving)).is_err() {
                return;
            }
        }
        // While this node leads, remind the core now and then: an activation that gave up
        // (the replica did not catch up in time) is retried instead of leaving a leader's site
        // closed. The core ignores the reminder once it serves.
        match tokio::time::timeout(ACTIVATION_RETRY, rx.changed()).await {
            Ok(Ok(())) => {}
            Ok(Err(_)) => return,
            Err(_) if serving => {
                if core.send(CoreMsg::Serving(true)).is_err() {
                    return;
                }
            }
            Err(_) => {}
        }
    }
}

/// How often a leading node re-tries opening its site after an activation gave up.
const ACTIVATION_RETRY: Duration = Duration::from_millis(500);

/// How long one activation waits for the new leader's log to be applied before it gives up
/// (and is retried after `ACTIVATION_RETRY`).
const LOG_TAIL_WAIT: Duration = Duration::from_secs(5);

/// A platform's lookup service: it hands out the platform's gateways and knows only the Comp
/// IDs that may log in to the platform (closed until the site becomes active).
fn platform_lookup(
    cfg: &SiteConfig,
    platform: Platform,
    host: &str,
    primary: SocketAddr,
    mirror: SocketAddr,
) -> Arc<Mutex<LookupService>> {
    let mut svc = LookupService::new(
        (host.to_string(), primary.port()),
        (host.to_string(), mirror.port()),
        false,
    );
    for p in &cfg.participants {
        if let (Ok(c), Some(true)) = (p.comp(), p.platform().map(|x| x == platform)) {
            if p.is_fix() {
                svc.add_fix_client(c, p.source_ips.clone(), false);
            } else {
                svc.add_client(c, p.source_ips.clone(), false);
            }
        }
    }
    Arc::new(Mutex::new(svc))
}

/// Why a Comp ID may not use this platform, if it may not (a Comp ID of another platform, an
/// information vendor, or unknown), in words that say who is at fault.
fn platform_refusal(
    comp: &str,
    kinds: &BTreeMap<CompId, ParticipantKind>,
    platform: Platform,
) -> Option<String> {
    let name = platform_name(platform);
    let kind = CompId::new(comp).ok().and_then(|c| kinds.get(&c).copied());
    match kind {
        Some(k) if platform_of(k) == Some(platform) => None,
        Some(ParticipantKind::Ccep) => {
            Some(format!("{comp} is a CCEP: may log in to OTP-CSC only"))
        }
        Some(ParticipantKind::Ep) => Some(format!("{comp} is an EP: may log in to OTP-C only")),
        Some(ParticipantKind::InformationVendor) => Some(format!(
            "{comp} is an information vendor: may not log in to {name}"
        )),
        None => Some(format!("{comp:?} is not a registered Comp ID (at {name})")),
    }
}

async fn lookup_listener(
    l: TcpListener,
    platform: Platform,
    svc: Arc<Mutex<LookupService>>,
    kinds: Arc<BTreeMap<CompId, ParticipantKind>>,
    activity: broadcast::Sender<Activity>,
) {
    loop {
        let Ok((mut s, peer)) = l.accept().await else {
            continue;
        };
        let svc = svc.clone();
        let kinds = kinds.clone();
        let activity = activity.clone();
        tokio::spawn(async move {
            let mut buf = Vec::new();
            let mut chunk = [0u8; 1024];
            loop {
                let outcome = svc
                    .lock()
                    .expect("lookup lock")
                    .handle_request(peer.ip(), &buf);
                match outcome {
                    LookupOutcome::NeedMore => {}
                    LookupOutcome::Drop => {
                        let _ = activity.send(Activity::Lookup {
                            comp_id: comp_of(&buf),
                            peer,
                            accepted: false,
                            at: wall_clock(),
                        });
                        return;
                    }
                    LookupOutcome::Reply(bytes) => {
                        let accepted = matches!(
                            twinsite_ocg::decode_one(&bytes),
                            Ok((_, Message::LookupResponse(r))) if r.status == twinsite_ocg::LookupStatus::Accepted
                        );
                        let comp = comp_of(&buf);
                        let _ = activity.send(Activity::Lookup {
                            comp_id: comp.clone(),
                            peer,
                            accepted,
                            at: wall_clock(),
                        });
                        if !accepted {
                            let c = comp.unwrap_or_default();
                            if let Some(reason) = platform_refusal(&c, &kinds, platform) {
                                let _ = activity.send(Activity::Refused {
                                    comp_id: CompId::new(&c).ok(),
                                    peer,
                                    platform,
                                    reason,
                                    at: wall_clock(),
                                });
                            }
                        }
                        let _ = s.write_all(&bytes).await;
                        // The client closes after reading the response; give it a bounded time.
                        let _ =
                            tokio::time::timeout(Duration::from_secs(5), s.read(&mut chunk)).await;
                        return;
                    }
                }
                match tokio::time::timeout(Duration::from_secs(10), s.read(&mut chunk)).await {
                    Ok(Ok(n)) if n > 0 => buf.extend_from_slice(&chunk[..n]),
                    _ => return,
                }
            }
        });
    }
}

fn comp_of(buf: &[u8]) -> Option<String> {
    twinsite_ocg::decode_one(buf)
        .ok()
        .map(|(h, _)| h.comp_id.as_str().to_string())
}

async fn gateway_listener(
    l: TcpListener,
    name: &'static str,
    platform: Platform,
    shared: Arc<Shared>,
    next: Arc<AtomicU64>,
    activity: broadcast::Sender<Activity>,
) {
    // The connections belong to the listener: when the site stops (its tasks aborted, as a
    // crash or a shutdown does) the set is dropped and every connection task is aborted with
    // it, so participants see their sessions drop as they would at a dead site.
    let mut conns = tokio::task::JoinSet::new();
    loop {
        let accepted = tokio::select! {
            a = l.accept() => a,
            Some(_) = conns.join_next(), if !conns.is_empty() => continue,
        };
        let Ok((s, peer)) = accepted else {
            continue;
        };
        let _ = s.set_nodelay(true);
        let conn = ConnectionId(next.fetch_add(1, Ordering::Relaxed));
        let _ = activity.send(Activity::Connected {
            connection: conn.0,
            peer,
            gateway: name,
            at: wall_clock(),
        });
        let kind = if name == "fix" {
            ConnKind::Fix
        } else {
            ConnKind::Binary(platform)
        };
        conns.spawn(connection(s, conn, peer, kind, shared.clone()));
    }
}

/// Which gateway a connection came in on.
#[derive(Clone, Copy)]
enum ConnKind {
    /// OCG-C binary (OTP-C or OTP-CSC).
    Binary(Platform),
    Fix,
}

/// One gateway connection: a single task reads the socket, hands the bytes to the core under
/// its lock (session rules, throttle, engine, journal batch), and writes the output the core
/// released for it itself, with no task hop in between. Output produced for it by others (fills
/// of another session's order, journal commits, timers) wakes it through its [`Outbox`].
async fn connection(
    mut s: TcpStream,
    conn: ConnectionId,
    peer: SocketAddr,
    kind: ConnKind,
    shared: Arc<Shared>,
) {
    let outbox = Arc::new(Outbox::default());
    loop {
        // An activation in progress: accept when it is done, as a queued accept would be.
        let activated = shared.activated.notified();
        tokio::pin!(activated);
        activated.as_mut().enable();
        {
            let mut core = shared.lock();
            if !core.activating {
                let now = wall_clock();
                core.current = Some(conn);
                core.accept(conn, peer, kind, &outbox, now);
                core.finish(now);
                core.current = None;
                break;
            }
        }
        activated.await;
    }
    let mut buf = vec![0u8; 64 * 1024];
    // Bytes released for this connection and not yet written.
    let mut out: Vec<u8> = Vec::with_capacity(64 * 1024);
    let mut closing = false;
    let mut write_open = true;
    loop {
        if write_open {
            closing |= outbox.take(&mut out);
            while !out.is_empty() {
                mark(Stage::ReplyWriteStart);
                match s.try_write(&out) {
                    Ok(n) => {
                        mark(Stage::ReplyWritten);
                        out.drain(..n);
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                    Err(_) => {
                        out.clear();
                        write_open = false;
                    }
                }
            }
            if closing && out.is_empty() && write_open {
                // As the exchange closes: the write side; the peer's close ends the task.
                let _ = s.shutdown().await;
                write_open = false;
            }
        }
        let want_write = write_open && !out.is_empty();
        tokio::select! {
            biased;
            r = s.readable() => {
                let n = match r {
                    Ok(()) => match s.try_read(&mut buf) {
                        Ok(n) => {
                            mark(Stage::OrderRead);
                            n
                        }
                        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
                        Err(_) => 0,
                    },
                    Err(_) => 0,
                };
                let rearm = {
                    let mut core = shared.lock();
                    let now = wall_clock();
                    core.current = Some(conn);
                    if n == 0 {
                        core.on_closed(conn, now);
                    } else {
                        core.on_bytes(conn, &buf[..n], now);
                    }
                    core.finish(now);
                    core.current = None;
                    mark(Stage::CoreDone);
                    n > 0 && core.timers_moved_earlier()
                };
                if n == 0 {
                    // What was released before the close still goes out.
                    if write_open {
                        outbox.take(&mut out);
                        let _ = s.write_all(&out).await;
                    }
                    return;
                }
                if rearm {
                    shared.rearm.notify_one();
                }
            }
            _ = outbox.wake.notified() => {}
            _ = s.writable(), if want_write => {}
        }
    }
}

struct Conn {
    out: Arc<Outbox>,
    /// Bytes received that do not yet make a whole frame.
    pending: Vec<u8>,
    peer: SocketAddr,
    platform: Platform,
    /// The Comp ID its first message (the Logon) named: None before it arrives, Some(None)
    /// when it named no valid Comp ID.
    logon_comp: Option<Option<CompId>>,
}

/// How many bytes to hand the OCG-C server now: one whole frame when the buffer starts with one,
/// everything when the header is not a plausible frame (the server rejects it), 0 to wait.
fn next_frame_len(buf: &[u8]) -> usize {
    if buf.len() < 3 {
        return 0;
    }
    let len = u16::from_le_bytes([buf[1], buf[2]]) as usize;
    if buf[0] != 0x02
        || len < twinsite_core::limits::OCG_HEADER_LEN + twinsite_core::limits::OCG_TRAILER_LEN
    {
        return buf.len();
    }
    if buf.len() >= len {
        len
    } else {
        0
    }
}

/// The serving state of an active site.
struct Live {
    exchange: Exchange,
    /// OTP-C binary sessions (EP Comp IDs).
    server: OcgServer,
    /// OTP-CSC sessions (CCEP Comp IDs), the same OCG-C session rules.
    csc: OcgServer,
    fix: FixServer,
    /// FIX Comp ID -> next outbound number last replicated (and next inbound).
    fix_synced: BTreeMap<CompId, (u64, u64)>,
}

/// What was last replicated of a Comp ID's session.
#[derive(Clone, PartialEq)]
struct Synced {
    in_next: u32,
    out_next: u32,
    credentials: Credentials,
    poss_resend_pending: bool,
}

impl Synced {
    fn of(d: &DurableSession) -> Synced {
        Synced {
            in_next: d.in_next,
            out_next: d.out_next,
            credentials: d.credentials.clone(),
            poss_resend_pending: d.poss_resend_pending,
        }
    }
    /// Is `d` what was last replicated? (Compares in place: no clone of the credentials on
    /// every iteration.)
    fn matches(&self, d: &DurableSession) -> bool {
        self.in_next == d.in_next
            && self.out_next == d.out_next
            && self.poss_resend_pending == d.poss_resend_pending
            && self.credentials == d.credentials
    }
}

impl Live {
    fn server(&mut self, p: Platform) -> &mut OcgServer {
        match p {
            Platform::OtpC => &mut self.server,
            Platform::OtpCsc => &mut self.csc,
        }
    }
    fn durable(&self, comp: &CompId) -> Option<&DurableSession> {
        self.server.durable(comp).or_else(|| self.csc.durable(comp))
    }
    /// The next action of either binary server, with its platform.
    fn poll_action(&mut self) -> Option<(Platform, ServerAction)> {
        match self.server.poll_action() {
            Some(a) => Some((Platform::OtpC, a)),
            None => self.csc.poll_action().map(|a| (Platform::OtpCsc, a)),
        }
    }
}

struct Core {
    cfg: SiteConfig,
    keys: Vec<RsaPrivateKey>,
    site: Site,
    live: Option<Live>,
    journal: Option<Journal<Replica>>,
    conns: BTreeMap<ConnectionId, Conn>,
    feed: mpsc::UnboundedSender<FeedInput>,
    activity: broadcast::Sender<Activity>,
    lookup: Arc<Mutex<LookupService>>,
    /// The OTP-CSC lookup service, when configured.
    csc_lookup: Option<Arc<Mutex<LookupService>>>,
    kinds: Arc<BTreeMap<CompId, ParticipantKind>>,
    /// Logons allowed on OTP-C and OTP-CSC (kept across re-activations).
    logons_allowed: [bool; 2],
    /// Inputs applied since the last proposal.
    batch: Vec<(Timestamp, Input)>,
    synced: BTreeMap<CompId, Synced>,
    /// Output held until the journal entry it depends on commits: (ticket, connection, output).
    held: VecDeque<(u64, ConnectionId, Out)>,
    next_ticket: u64,
    proposed: u64,
    committed: u64,
    proposer: mpsc::UnboundedSender<(u64, Vec<Entry>)>,
    /// An activation is loading the replicated state (connections wait to be accepted).
    activating: bool,
    /// The connection whose task holds the lock (it writes its own output; others are woken).
    current: Option<ConnectionId>,
    /// When the core task wakes next at the latest (to notice a timer moved earlier).
    armed: Timestamp,
}

impl Core {
    /// The earliest timer of the sessions (heartbeats, logon waits, replays, cancel on
    /// disconnect), if any.
    fn timer_deadline(&self) -> Option<Timestamp> {
        self.live.as_ref().and_then(|l| {
            [
                l.server.poll_timeout(),
                l.csc.poll_timeout(),
                l.fix.poll_timeout(),
            ]
            .into_iter()
            .flatten()
            .min()
        })
    }

    /// Does the core task have to wake earlier than it planned (a connection's input set a
    /// timer, e.g. a logon with a replay)?
    fn timers_moved_earlier(&self) -> bool {
        self.timer_deadline().is_some_and(|t| t < self.armed)
    }

    /// After each input: act on what the servers want, journal what was applied, release the
    /// output that may go.
    fn finish(&mut self, now: Timestamp) {
        self.drain(now);
        self.end_iteration(now);
    }

    fn engine_tick(&mut self, now: Timestamp) {
        let Some(l) = self.live.as_mut() else { return };
        if l.exchange.engine.config().schedule.transitions.is_empty() {
            return;
        }
        let out = l.exchange.on_command(&Command::Tick, now);
        // A tick that changed nothing visible need not be journalled.
        if !out.events.is_empty() || !out.replies.is_empty() {
            self.batch.push((now, Input::Engine(Command::Tick)));
            self.deliver(out, now);
        }
    }

    /// A connection accepted by one of the gateways.
    fn accept(
        &mut self,
        conn: ConnectionId,
        peer: SocketAddr,
        kind: ConnKind,
        out: &Arc<Outbox>,
        now: Timestamp,
    ) {
        let Some(l) = self.live.as_mut() else {
            // A standby site's gateways refuse connections.
            out.push(Out::Close);
            return;
        };
        let platform = match kind {
            ConnKind::Binary(p) => p,
            ConnKind::Fix => Platform::OtpC,
        };
        self.conns.insert(
            conn,
            Conn {
                out: out.clone(),
                pending: Vec::new(),
                peer,
                platform,
                logon_comp: None,
            },
        );
        match kind {
            ConnKind::Binary(p) => l.server(p).handle_accept(conn, peer.ip(), now),
            ConnKind::Fix => l.fix.handle_accept(conn, peer.ip(), now),
        }
    }

    /// Bytes read from a connection.
    fn on_bytes(&mut self, conn: ConnectionId, data: &[u8], now: Timestamp) {
        if self.live.as_ref().is_some_and(|l| l.fix.owns(conn)) {
            if let Some(c) = self.conns.get_mut(&conn) {
                if c.logon_comp.is_none() {
                    if let Some((sender, _)) = twinsite_fix::identify_logon(data) {
                        c.logon_comp = Some(CompId::new(&sender).ok());
                    }
                }
            }
            if let Some(l) = self.live.as_mut() {
                l.fix.handle_bytes(conn, data, now);
            }
            return;
        }
        // Hand the server one whole frame at a time and act on it before the next, so replies
        // go out in the order of the messages they answer. Whole frames are taken straight
        // from the bytes read; only an incomplete tail is kept.
        let Some(c) = self.conns.get_mut(&conn) else {
            return;
        };
        let mut held = std::mem::take(&mut c.pending);
        let input: &[u8] = if held.is_empty() {
            data
        } else {
            held.extend_from_slice(data);
            &held
        };
        let mut at = 0;
        while let Some(c) = self.conns.get_mut(&conn) {
            let n = next_frame_len(&input[at..]);
            if n == 0 {
                break;
            }
            let frame = &input[at..at + n];
            at += n;
            let platform = c.platform;
            if c.logon_comp.is_none() {
                // The first message names the Comp ID: one of another platform (or unknown)
                // is refused by the server with a silent disconnect, as the reference says for
                // an invalid Comp ID; record who and why.
                let comp = decode_frame(frame, twinsite_ocg::frame::MAX_FRAME_LEN)
                    .ok()
                    .flatten()
                    .map(|(f, _)| f.header.comp_id.as_str().to_string());
                c.logon_comp = Some(comp.as_deref().and_then(|x| CompId::new(x).ok()));
                let peer = c.peer;
                if let Some(comp) = comp {
                    if let Some(reason) = platform_refusal(&comp, &self.kinds, platform) {
                        let _ = self.activity.send(Activity::Refused {
                            comp_id: CompId::new(&comp).ok(),
                            peer,
                            platform,
                            reason,
                            at: now,
                        });
                    }
                }
            }
            let Some(l) = self.live.as_mut() else { break };
            l.server(platform).handle_bytes(conn, frame, now);
            self.drain(now);
        }
        let rest = if held.is_empty() {
            data[at..].to_vec()
        } else {
            held.drain(..at);
            held
        };
        if let Some(c) = self.conns.get_mut(&conn) {
            c.pending = rest;
        }
    }

    /// The peer closed a connection (or reading it failed).
    fn on_closed(&mut self, conn: ConnectionId, now: Timestamp) {
        if self.live.as_ref().is_some_and(|l| l.fix.owns(conn)) {
            self.conns.remove(&conn);
            if let Some(l) = self.live.as_mut() {
                l.fix.handle_closed(conn, now);
            }
            return;
        }
        if let Some(c) = self.conns.remove(&conn) {
            if let Some(l) = self.live.as_mut() {
                l.server(c.platform).handle_closed(conn, now);
            }
        }
    }

    /// A message to the core task (the activation, which waits for the journal, is done by
    /// [`activate`]).
    fn handle(&mut self, m: CoreMsg, now: Timestamp) {
        match m {
            CoreMsg::Admin(a) => match a {
                AdminCmd::Engine(cmd) => {
                    if let Some(l) = self.live.as_mut() {
                        let out = l.exchange.on_command(&cmd, now);
                        self.batch.push((now, Input::Engine(cmd)));
                        self.deliver(out, now);
                    }
                }
                AdminCmd::LogonsAllowed(b) => {
                    self.logons_allowed = [b, b];
                    if let Some(l) = self.live.as_mut() {
                        l.server.set_logons_allowed(b);
                        l.csc.set_logons_allowed(b);
                        l.fix.set_logons_allowed(b);
                    }
                }
                AdminCmd::LogonsAllowedOn { platform, allowed } => {
                    self.logons_allowed[platform_index(platform)] = allowed;
                    if let Some(l) = self.live.as_mut() {
                        l.server(platform).set_logons_allowed(allowed);
                        if platform == Platform::OtpC {
                            l.fix.set_logons_allowed(allowed);
                        }
                    }
                }
                AdminCmd::LogoutAll => {
                    if let Some(l) = self.live.as_mut() {
                        l.server.shutdown(now);
                        l.csc.shutdown(now);
                        l.fix.shutdown(now);
                    }
                }
                AdminCmd::LookupOpen(b) => {
                    let open = b && self.live.is_some();
                    self.lookup.lock().expect("lookup lock").open = open;
                    if let Some(c) = &self.csc_lookup {
                        c.lock().expect("lookup lock").open = open;
                    }
                }
                AdminCmd::StateHash(tx) => {
                    let v = match (&self.live, &self.journal) {
                        (Some(l), _) => (l.exchange.engine.state_hash(), l.exchange.live_orders()),
                        (None, Some(j)) => {
                            j.read(|r| (r.exchange.engine.state_hash(), r.exchange.live_orders()))
                        }
                        (None, None) => (0, 0),
                    };
                    let _ = tx.send(v);
                }
                AdminCmd::FeedImage(tx) => {
                    let image = self
                        .live
                        .as_ref()
                        .map(|l| crate::feed_map::FeedImage::of(&l.exchange.engine));
                    let _ = tx.send(image);
                }
            },
            CoreMsg::Committed { ticket } => {
                self.committed = self.committed.max(ticket);
                self.release();
                mark(Stage::Released);
            }
            CoreMsg::CommitFailed { .. } | CoreMsg::Serving(true) => {}
            CoreMsg::Serving(false) => {
                if self.live.is_some() {
                    self.become_standby(now);
                }
            }
        }
    }

    /// A journal proposal failed: stop serving; true if this node still leads (a slow commit,
    /// not a lost election) and should serve again from the replicated state, which holds
    /// exactly what was committed.
    fn commit_failed(&mut self, error: &str, now: Timestamp) -> bool {
        if self.live.is_none() {
            return false;
        }
        tracing::warn!(site = ?self.site, %error, "journal proposal failed: this site stops serving");
        self.become_standby(now);
        self.journal.as_ref().is_some_and(|j| j.is_serving())
    }

    /// Open for business from a loaded state (see [`activate`]): rebuild the serving state,
    /// open the lookup service.
    fn open(&mut self, loaded: Loaded, now: Timestamp) {
        let Loaded {
            exchange,
            mut sessions,
            mut fix_states,
            failover,
            modes_due,
        } = loaded;
        // Catastrophic mode, once after a failover: every session restarts at the agreed
        // number (the replicas do the same when they apply the FailoverModes entry).
        let modes = &self.cfg.failover;
        let reset_to = modes.reset_number().filter(|_| modes_due);
        let purge = modes_due && modes.orders == crate::config::OrdersOnFailover::Cancel;
        if let Some(n) = reset_to {
            replica::reset_sequences(&mut sessions, &mut fix_states, n);
        }
        let scfg = server_config(&self.cfg);
        let mut server = OcgServer::new(scfg.clone(), self.keys.clone());
        let mut csc = OcgServer::new(scfg.clone(), self.keys.clone());
        server.set_logons_allowed(self.logons_allowed[platform_index(Platform::OtpC)]);
        csc.set_logons_allowed(self.logons_allowed[platform_index(Platform::OtpCsc)]);
        for p in self.cfg.participants.iter().filter(|p| !p.is_fix()) {
            let Ok(comp) = p.comp() else { continue };
            let Some(mut d) = sessions.get(&comp).cloned() else {
                continue;
            };
            // A clone holds only what is stored: room for the day again.
            d.outbound.reserve(
                self.cfg.session.reserve_outbound,
                scfg.retained_outbound_max,
            );
            if failover {
                // Messages replayed after an exchange-side outage carry PossResend, and
                // the outage never triggers Cancel on Disconnect.
                d.begin_exchange_outage();
                d.mark_poss_resend(1);
            }
            let target = match p.platform() {
                Some(Platform::OtpC) => &mut server,
                Some(Platform::OtpCsc) => &mut csc,
                // An information vendor logs in to no trading platform.
                None => continue,
            };
            target.add_participant(
                ParticipantConfig {
                    comp_id: comp,
                    source_ips: p.source_ips.clone(),
                    throttle_units: p.throttle_units,
                },
                d,
            );
        }
        self.synced = self
            .cfg
            .participants
            .iter()
            .filter_map(|p| p.comp().ok())
            .filter_map(|c| {
                server
                    .durable(&c)
                    .or_else(|| csc.durable(&c))
                    .map(|d| (c, Synced::of(d)))
            })
            .collect();
        let mut fix = fix_server(&self.cfg, self.keys.clone(), &fix_states);
        fix.set_logons_allowed(self.logons_allowed[platform_index(Platform::OtpC)]);
        let fix_synced = fix
            .comp_ids()
            .filter_map(|c| {
                fix.durable(c)
                    .map(|s| (*c, (s.next_outbound_seq, s.next_inbound_seq)))
            })
            .collect();
        self.live = Some(Live {
            exchange,
            server,
            csc,
            fix,
            fix_synced,
        });
        if self.journal.is_some() {
            let mut entries = vec![Entry::Active {
                site: self.site,
                at: now,
            }];
            if modes_due {
                entries.push(Entry::FailoverModes {
                    orders_cancelled: purge,
                    reset_to,
                    at: now,
                });
                if purge {
                    // Unsolicited cancels, queued for each owner's next logon.
                    if let Some(l) = self.live.as_mut() {
                        let out = l.exchange.purge_orders(now);
                        self.batch.push((now, Input::PurgeOrders));
                        self.deliver(out, now);
                    }
                }
                // The purge and the session changes travel in the same proposal as the
                // markers, so the failover modes are applied exactly once.
                if let Some(e) = self.take_entry(true) {
                    entries.push(e);
                }
                tracing::info!(site = ?self.site, purge, ?reset_to, "failover modes applied");
            }
            self.proposed = self.next_ticket;
            let _ = self.proposer.send((self.next_ticket, entries));
            self.next_ticket += 1;
        }
        self.lookup.lock().expect("lookup lock").open = true;
        if let Some(c) = &self.csc_lookup {
            c.lock().expect("lookup lock").open = true;
        }
        tracing::info!(site = ?self.site, failover, "site active");
        let _ = self.activity.send(Activity::SiteActive {
            site: self.site,
            failover,
            at: now,
        });
        if let Some(l) = &self.live {
            let _ = self.feed.send(FeedInput::image_of(&l.exchange.engine));
        }
        let _ = self.feed.send(FeedInput::Active { failover, now });
    }

    /// Stop serving: close every connection and the lookup service; output not yet committed
    /// is dropped (its inputs were never acknowledged).
    fn become_standby(&mut self, now: Timestamp) {
        self.live = None;
        self.lookup.lock().expect("lookup lock").open = false;
        if let Some(c) = &self.csc_lookup {
            c.lock().expect("lookup lock").open = false;
        }
        for (id, c) in std::mem::take(&mut self.conns) {
            c.out.push(Out::Close);
            if self.current != Some(id) {
                c.out.wake.notify_one();
            }
        }
        self.held.clear();
        self.batch.clear();
        self.committed = self.committed.max(self.proposed);
        tracing::warn!(site = ?self.site, "site standby");
        let _ = self.activity.send(Activity::SiteStandby {
            site: self.site,
            at: now,
        });
        let _ = self.feed.send(FeedInput::Standby { now });
    }

    fn deliver(&mut self, out: crate::exchange::Output, now: Timestamp) {
        let Some(l) = self.live.as_mut() else { return };
        // The activity record gets its own copy of each reply only when someone listens.
        let recorded = self.activity.receiver_count() > 0;
        for r in out.replies {
            let (sent, message) = if l.fix.is_fix(&r.comp_id) {
                let sent = l
                    .fix
                    .send_business(&r.comp_id, &r.message, now)
                    .map(|s| u32::try_from(s).unwrap_or(u32::MAX));
                (sent, Some(r.message))
            } else {
                let server = match l.csc.durable(&r.comp_id) {
                    Some(_) => &mut l.csc,
                    None => &mut l.server,
                };
                let copy = recorded.then(|| r.message.clone());
                let sent = server
                    .send_business(&r.comp_id, r.message, now)
                    .map_err(|e| e.to_string());
                (sent, copy)
            };
            match sent {
                Ok(seq) => {
                    if let Some(message) = message.filter(|_| recorded) {
                        let _ = self.activity.send(Activity::Outbound {
                            comp_id: r.comp_id,
                            seq,
                            message: Box::new(message),
                            at: now,
                        });
                    }
                }
                Err(e) => tracing::warn!(comp_id = %r.comp_id, error = %e, "reply not stored"),
            }
        }
        for e in &out.events {
            if let twinsite_engine::Event::PhaseChanged { phase } = e {
                let _ = self.activity.send(Activity::PhaseChanged {
                    phase: *phase,
                    at: now,
                });
            }
        }
        if !out.events.is_empty() {
            let _ = self.feed.send(FeedInput::Events {
                events: out.events,
                now,
            });
        }
    }

    fn hold(&mut self, conn: ConnectionId, out: Out) {
        self.held.push_back((self.next_ticket, conn, out));
    }

    fn drain(&mut self, now: Timestamp) {
        while let Some((platform, a)) = self.live.as_mut().and_then(|l| l.poll_action()) {
            match a {
                ServerAction::Send { connection, bytes } => {
                    self.hold(connection, Out::Bytes(bytes))
                }
                ServerAction::Disconnect {
                    connection,
                    silent,
                    reason,
                } => {
                    tracing::info!(connection = connection.0, silent, ?reason, "disconnect");
                    if reason
                        == twinsite_ocg::DisconnectReason::LogonRejected(
                            twinsite_ocg::SessionStatus::LogonsNotAllowed,
                        )
                    {
                        self.refused_closed(connection, platform, now);
                    }
                    let _ = self.activity.send(Activity::Disconnected {
                        connection: connection.0,
                        silent,
                        reason: format!("{reason:?}"),
                        at: now,
                    });
                    self.hold(connection, Out::Close);
                    if let Some(l) = self.live.as_mut() {
                        l.server(platform).handle_closed(connection, now);
                    }
                }
                ServerAction::SessionUp {
                    comp_id,
                    connection,
                    sequences,
                } => {
                    tracing::info!(%comp_id, connection = connection.0, "session up");
                    let _ = self.activity.send(Activity::SessionUp {
                        comp_id,
                        connection: connection.0,
                        sequences: Some(sequences),
                        at: now,
                    });
                }
                ServerAction::SessionDown {
                    comp_id,
                    connection,
                    cause,
                } => {
                    tracing::info!(%comp_id, connection = connection.0, ?cause, "session down");
                    let _ = self.activity.send(Activity::SessionDown {
                        comp_id,
                        connection: connection.0,
                        cause: format!("{cause:?}"),
                        at: now,
                    });
                }
                ServerAction::Deliver {
                    comp_id,
                    seq,
                    poss_resend,
                    message,
                } => {
                    if !self.apply_business(comp_id, seq, poss_resend, Box::new(message), now) {
                        break;
                    }
                }
                ServerAction::CancelOnDisconnect { comp_id } => {
                    let Some(l) = self.live.as_mut() else { break };
                    let cmd = Command::CancelOnDisconnect { session: comp_id };
                    let out = l.exchange.on_command(&cmd, now);
                    self.batch.push((now, Input::Engine(cmd)));
                    self.deliver(out, now);
                }
            }
        }
        if self.drain_fix(now) {
            // FIX input may have produced binary output (and the other way round).
            self.drain(now);
        }
    }

    /// A business message delivered in sequence by a binary or FIX session: to the exchange
    /// core, into the journal batch, its replies to their sessions. False when not serving.
    fn apply_business(
        &mut self,
        comp_id: CompId,
        seq: u32,
        poss_resend: bool,
        message: Box<Message>,
        now: Timestamp,
    ) -> bool {
        let _ = self.activity.send(Activity::Inbound {
            comp_id,
            seq,
            msg_type: message.msg_type(),
            poss_resend,
            at: now,
        });
        let Some(l) = self.live.as_mut() else {
            return false;
        };
        let out = l.exchange.on_business(&comp_id, seq, &message, now);
        self.batch.push((
            now,
            Input::Business {
                comp: comp_id,
                seq,
                msg: message,
            },
        ));
        self.deliver(out, now);
        true
    }

    /// Act on the FIX gateway's actions; true if there were any.
    fn drain_fix(&mut self, now: Timestamp) -> bool {
        let mut any = false;
        while let Some(a) = self.live.as_mut().and_then(|l| l.fix.poll_action()) {
            any = true;
            match a {
                FixAction::Send { connection, bytes } => self.hold(connection, Out::Bytes(bytes)),
                FixAction::Disconnect { connection, reason } => {
                    tracing::info!(connection = connection.0, %reason, "FIX disconnect");
                    if reason.contains(crate::fix_gateway::LOGONS_NOT_ALLOWED_TEXT) {
                        self.refused_closed(connection, Platform::OtpC, now);
                    } else if let Some(why) = reason.strip_prefix("logon refused: ") {
                        // Refused at logon (sequence numbers, password): the Logon named its
                        // Comp ID, so the refusal is that participant's evidence.
                        self.refused_fix_logon(connection, why, now);
                    }
                    let _ = self.activity.send(Activity::Disconnected {
                        connection: connection.0,
                        silent: false,
                        reason,
                        at: now,
                    });
                    self.hold(connection, Out::Close);
                }
                FixAction::SessionUp {
                    comp_id,
                    connection,
                    sequences,
                } => {
                    tracing::info!(%comp_id, connection = connection.0, "FIX session up");
                    let _ = self.activity.send(Activity::SessionUp {
                        comp_id,
                        connection: connection.0,
                        sequences,
                        at: now,
                    });
                }
                FixAction::ResendRequest {
                    comp_id,
                    begin,
                    end,
                } => {
                    tracing::info!(%comp_id, begin, end, "FIX ResendRequest answered");
                    let _ = self.activity.send(Activity::ResendRequest {
                        comp_id,
                        begin,
                        end,
                        at: now,
                    });
                }
                FixAction::SessionDown {
                    comp_id,
                    connection,
                    cause,
                } => {
                    tracing::info!(%comp_id, connection = connection.0, %cause, "FIX session down");
                    let _ = self.activity.send(Activity::SessionDown {
                        comp_id,
                        connection: connection.0,
                        cause,
                        at: now,
                    });
                }
                FixAction::Deliver {
                    comp_id,
                    seq,
                    poss_resend,
                    message,
                } => {
                    if !self.apply_business(comp_id, seq, poss_resend, message, now) {
                        break;
                    }
                }
            }
        }
        any
    }

    /// Propose what this iteration applied (inputs and session changes) and release output
    /// whose entries are committed.
    fn end_iteration(&mut self, _now: Timestamp) {
        let ticket = self.next_ticket;
        // A single site has no journal: the entry only says something was applied (its session
        // deltas are not built), and output is released at once.
        if let Some(entry) = self.take_entry(self.journal.is_some()) {
            if self.journal.is_some() {
                let _ = self.proposer.send((ticket, vec![entry]));
                self.proposed = ticket;
            } else {
                self.proposed = ticket;
                self.committed = ticket;
            }
            self.next_ticket += 1;
        } else {
            // Nothing to journal: this iteration's output waits only for what came before it.
            for h in self.held.iter_mut().rev() {
                if h.0 != ticket {
                    break;
                }
                h.0 = self.proposed;
            }
        }
        self.release();
    }

    /// A FIX logon refused by the session layer (e.g. "MsgSeqNum too low, expecting 13 but
    /// received 1"): recorded with the SenderCompID the Logon named.
    fn refused_fix_logon(&mut self, connection: ConnectionId, why: &str, now: Timestamp) {
        let Some(c) = self.conns.get(&connection) else {
            return;
        };
        let _ = self.activity.send(Activity::Refused {
            comp_id: c.logon_comp.flatten(),
            peer: c.peer,
            platform: Platform::OtpC,
            reason: format!("FIX logon refused: {why}"),
            at: now,
        });
    }

    /// A logon refused because its platform's logons are closed (Session Status 7): recorded
    /// with the Comp ID the Logon named.
    fn refused_closed(&mut self, connection: ConnectionId, platform: Platform, now: Timestamp) {
        let Some(c) = self.conns.get(&connection) else {
            return;
        };
        let comp = c.logon_comp.flatten();
        let who = comp.map_or_else(|| "a participant".to_string(), |c| c.to_string());
        let _ = self.activity.send(Activity::Refused {
            comp_id: comp,
            peer: c.peer,
            platform,
            reason: format!(
                "{who} logged on to {} while its logons are closed: Logout with Session \
                 Status 7 (logons not allowed at this time)",
                platform_name(platform)
            ),
            at: now,
        });
    }

    /// The journal entry for what was applied since the last one (inputs and the sessions they
    /// changed), if anything was; without the session deltas unless `deltas`.
    fn take_entry(&mut self, deltas: bool) -> Option<Entry> {
        let mut changed = false;
        let mut sessions = Vec::new();
        if let Some(l) = &self.live {
            for (comp, synced) in self.synced.iter_mut() {
                let Some(d) = l.durable(comp) else {
                    continue;
                };
                if !synced.matches(d) {
                    if deltas {
                        sessions.push(replica::delta(d, synced.out_next));
                    }
                    changed = true;
                    *synced = Synced::of(d);
                }
            }
        }
        let mut fix_sessions = Vec::new();
        if let Some(l) = self.live.as_mut() {
            for (comp, synced) in l.fix_synced.iter_mut() {
                let Some(s) = l.fix.durable(comp) else {
                    continue;
                };
                let cur = (s.next_outbound_seq, s.next_inbound_seq);
                if cur != *synced {
                    if deltas {
                        fix_sessions.push(replica::fix_delta(*comp, s, synced.0));
                    }
                    changed = true;
                    *synced = cur;
                }
            }
        }
        if self.batch.is_empty() && !changed {
            return None;
        }
        Some(Entry::Batch {
            inputs: std::mem::take(&mut self.batch),
            sessions,
            fix_sessions,
        })
    }

    fn release(&mut self) {
        while self.held.front().is_some_and(|h| h.0 <= self.committed) {
            let Some((_, conn, out)) = self.held.pop_front() else {
                break;
            };
            let close = matches!(out, Out::Close);
            if let Some(c) = self.conns.get(&conn) {
                c.out.push(out);
                // The connection's own task writes after it leaves the core; others are woken.
                if self.current != Some(conn) {
                    c.out.wake.notify_one();
                }
            }
            if close {
                self.conns.remove(&conn);
            }
        }
    }
}

/// The exchange core and every Comp ID's durable session a site opens with.
struct Loaded {
    exchange: Exchange,
    sessions: BTreeMap<CompId, DurableSession>,
    fix_states: BTreeMap<CompId, twinsite_fix::SessionState>,
    failover: bool,
    modes_due: bool,
}

/// A single site opens from its config.
fn load_config(cfg: &SiteConfig, now: Timestamp) -> Option<Loaded> {
    match build(cfg, now) {
        Ok((exchange, server, _)) => {
            let sessions = cfg
                .participants
                .iter()
                .filter_map(|p| p.comp().ok())
                .filter_map(|c| server.durable(&c).cloned().map(|d| (c, d)))
                .collect();
            Some(Loaded {
                exchange,
                sessions,
                fix_states: BTreeMap::new(),
                failover: false,
                modes_due: false,
            })
        }
        Err(e) => {
            tracing::error!(error = %e, "cannot build the site");
            None
        }
    }
}

/// A node opens from the replicated state, once its replica applied everything committed
/// (None: it does not serve).
async fn load_replicated(j: &Journal<Replica>, site: Site) -> Option<Loaded> {
    // Everything in a new leader's log (the old term's tail and its own blank entry) commits
    // before any new input can: wait until it is all applied, or the live state would miss
    // entries committed after `serving` turned true (the old primary's last acknowledged
    // orders and the Execution Reports its participants already hold: opening without them
    // loses acknowledged orders and numbers new messages over ones already sent). Never open
    // short of the tail: if it does not apply in time, this activation gives up and the
    // leadership watch retries it every `ACTIVATION_RETRY` while this node leads.
    let last = j.commit_index().max(j.status().last_log_index);
    if let Err(e) = j.wait_applied(last, LOG_TAIL_WAIT).await {
        tracing::warn!(
            last,
            applied = j.applied_index(),
            error = %e,
            "log tail not applied yet; not serving (retried while this node leads)"
        );
        return None;
    }
    let (snap, sessions, fix_states, failover, modes_due) = j.read(|r| {
        (
            r.exchange.snapshot(),
            r.sessions.clone(),
            r.fix_sessions.clone(),
            !r.activations.is_empty(),
            r.failover_modes_due(site),
        )
    });
    match Exchange::restore(&snap) {
        Ok(exchange) => Some(Loaded {
            exchange,
            sessions,
            fix_states,
            failover,
            modes_due,
        }),
        Err(e) => {
            tracing::error!(error = %e, "replica state does not restore; not serving");
            None
        }
    }
}

/// Open for business, if not serving yet: load the state (waiting for the journal without
/// holding the core's lock; connections accepted meanwhile wait), then open.
async fn activate(shared: &Shared) {
    let (journal, site) = {
        let mut core = shared.lock();
        if core.live.is_some() {
            return;
        }
        core.activating = true;
        (core.journal.clone(), core.site)
    };
    let loaded = match &journal {
        Some(j) => load_replicated(j, site).await,
        None => None,
    };
    {
        let mut core = shared.lock();
        let now = wall_clock();
        let loaded = match journal {
            Some(_) => loaded,
            None => load_config(&core.cfg, now),
        };
        if let Some(l) = loaded {
            core.open(l, now);
        }
        core.activating = false;
        core.finish(now);
    }
    shared.activated.notify_waiters();
}

/// The core task: session timers, the engine's clock tick, operations commands, journal
/// commits and activations. Connections call into the core themselves.
async fn core_task(shared: Arc<Shared>, mut rx: mpsc::UnboundedReceiver<CoreMsg>) {
    let tick = Duration::from_millis(50);
    let mut next_tick = tokio::time::Instant::now() + tick;
    loop {
        let deadline = {
            let mut core = shared.lock();
            let now = wall_clock();
            let at = tokio::time::Instant::now();
            let timer = core
                .timer_deadline()
                .map(|t| at + Duration::from_nanos(t.0.saturating_sub(now.0)));
            let deadline = timer.map_or(next_tick, |d| d.min(next_tick));
            core.armed = now.plus_nanos(deadline.saturating_duration_since(at).as_nanos() as u64);
            deadline
        };
        tokio::select! {
            m = rx.recv() => {
                let Some(mut m) = m else { return };
                loop {
                    match m {
                        CoreMsg::Serving(true) => activate(&shared).await,
                        CoreMsg::CommitFailed { error } => {
                            let again = {
                                let mut core = shared.lock();
                                let now = wall_clock();
                                let again = core.commit_failed(&error, now);
                                core.finish(now);
                                again
                            };
                            if again {
                                activate(&shared).await;
                            }
                        }
                        other => {
                            let mut core = shared.lock();
                            let now = wall_clock();
                            core.handle(other, now);
                            core.finish(now);
                        }
                    }
                    match rx.try_recv() {
                        Ok(next) => m = next,
                        Err(_) => break,
                    }
                }
            }
            _ = tokio::time::sleep_until(deadline) => {
                let mut core = shared.lock();
                let now = wall_clock();
                if let Some(l) = core.live.as_mut() {
                    l.server.handle_timeout(now);
                    l.csc.handle_timeout(now);
                    l.fix.handle_timeout(now);
                }
                if tokio::time::Instant::now() >= next_tick {
                    next_tick = tokio::time::Instant::now() + tick;
                    core.engine_tick(now);
                }
                core.finish(now);
            }
            _ = shared.rearm.notified() => {}
        }
    }
}

fn platform_index(p: Platform) -> usize {
    match p {
        Platform::OtpC => 0,
        Platform::OtpCsc => 1,
    }
}

/// The FIX gateway for the config's `protocol = "fix"` participants, with their replicated
/// sessions (fresh ones when absent).
fn fix_server(
    cfg: &SiteConfig,
    keys: Vec<RsaPrivateKey>,
    states: &BTreeMap<CompId, twinsite_fix::SessionState>,
) -> FixServer {
    let scfg = server_config(cfg);
    let mut fix = FixServer::new(keys, cfg.session.password_tolerance_secs, scfg.throttle);
    // FIX order entry is OTP-C's: EP Comp IDs only.
    for p in cfg
        .participants
        .iter()
        .filter(|p| p.is_fix() && p.platform() == Some(Platform::OtpC))
    {
        let Ok(comp) = p.comp() else { continue };
        fix.add_participant(
            FixParticipant {
                comp_id: comp,
                password: p.password.clone(),
                source_ips: p.source_ips.clone(),
                brokers: p.brokers(),
                throttle_units: p.throttle_units,
            },
            states.get(&comp).cloned(),
        );
    }
    fix
}

/// Connect helper for tests and bots: a TCP stream with NODELAY.
pub async fn connect(addr: SocketAddr) -> std::io::Result<TcpStream> {
    let s = TcpStream::connect(addr).await?;
    s.set_nodelay(true)?;
    Ok(s)
}

/// The IP a peer is seen from.
pub fn peer_ip(addr: SocketAddr) -> IpAddr {
    addr.ip()
}
