//! The site runtime: Lookup Service and OCG-C gateway listeners, one core task that owns the
//! sans-IO OCG-C server and the exchange core, and a task per connection for reading and writing.

use crate::config::SiteConfig;
use crate::exchange::{Exchange, SessionProfile};
use crate::feed::FeedInput;
use anyhow::Context;
use rsa::pkcs8::DecodePrivateKey;
use rsa::RsaPrivateKey;
use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{broadcast, mpsc, oneshot};
use tokio::task::JoinHandle;
use twinsite_core::{CompId, Timestamp};
use twinsite_engine::{refdata, Command, Engine, EngineConfig, Phase, Schedule};
use twinsite_ocg::lookup::{LookupOutcome, LookupService};
use twinsite_ocg::password::{hkt_day, Credentials};
use twinsite_ocg::throttle::ThrottleConfig;
use twinsite_ocg::{
    ConnectionId, DurableSession, Message, OcgServer, ParticipantConfig, ServerAction, ServerConfig,
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
        gateway: &'static str,
        at: Timestamp,
    },
    SessionUp {
        comp_id: CompId,
        connection: u64,
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
    PhaseChanged {
        phase: Phase,
        at: Timestamp,
    },
}

/// Operations commands to a running site.
#[derive(Debug)]
pub enum AdminCmd {
    /// Apply an engine command (phase change, halt, resume...).
    Engine(Command),
    /// Allow or refuse logons (Session Status 7 when refused).
    LogonsAllowed(bool),
    /// Open or close the Lookup Service.
    LookupOpen(bool),
    /// Engine state hash and live order count.
    StateHash(oneshot::Sender<(u64, usize)>),
}

enum CoreMsg {
    Accepted {
        conn: ConnectionId,
        peer: SocketAddr,
        tx: mpsc::UnboundedSender<Out>,
    },
    Bytes {
        conn: ConnectionId,
        data: Vec<u8>,
    },
    Closed {
        conn: ConnectionId,
    },
    Admin(AdminCmd),
}

enum Out {
    Bytes(Vec<u8>),
    Close,
}

/// A running site.
pub struct SiteHandle {
    pub lookup_addrs: Vec<SocketAddr>,
    pub gateway_primary: SocketAddr,
    pub gateway_mirror: SocketAddr,
    core: mpsc::UnboundedSender<CoreMsg>,
    activity: broadcast::Sender<Activity>,
    tasks: Vec<JoinHandle<()>>,
}

impl SiteHandle {
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
        None => Ok(Schedule::compressed(table, now, e.speed)),
    }
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
    let ecfg = EngineConfig {
        seed: cfg.engine.seed,
        schedule: schedule(cfg, now)?,
        ..Default::default()
    };
    let manual = ecfg.schedule.transitions.is_empty();
    let mut engine = Engine::new(ecfg, securities);
    if manual {
        engine.apply(&Command::SetPhase(Phase::ContinuousMorning), now);
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
        lookup.add_client(comp, p.source_ips.clone(), false);
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

/// Start a site from its config. Returns the handle and the market-data input stream (engine
/// events for the feed).
pub async fn start(
    cfg: SiteConfig,
) -> anyhow::Result<(SiteHandle, mpsc::UnboundedReceiver<FeedInput>)> {
    let now = wall_clock();
    let (exchange, server, lookup) = build(&cfg, now)?;
    let lookup = Arc::new(Mutex::new(lookup));
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
    {
        // Ports bound to 0 are only known now: hand out the real ones.
        let mut l = lookup.lock().expect("lookup lock");
        let host = cfg
            .site
            .advertise_host
            .unwrap_or(gateway_primary.ip())
            .to_string();
        l.primary = (host.clone(), gateway_primary.port());
        l.secondary = (host, gateway_mirror.port());
    }
    let mut lookup_addrs = Vec::new();
    for addr in &cfg.site.lookup {
        let l = TcpListener::bind(addr)
            .await
            .with_context(|| format!("bind lookup {addr}"))?;
        lookup_addrs.push(l.local_addr()?);
        tasks.push(tokio::spawn(lookup_listener(
            l,
            lookup.clone(),
            activity.clone(),
        )));
    }
    for (l, name) in [(gp, "primary"), (gm, "mirror")] {
        tasks.push(tokio::spawn(gateway_listener(
            l,
            name,
            core_tx.clone(),
            next_conn.clone(),
            activity.clone(),
        )));
    }
    let core = Core {
        exchange,
        server,
        conns: BTreeMap::new(),
        feed: feed_tx,
        activity: activity.clone(),
        lookup,
        scheduled: !cfg.engine.schedule.eq("manual"),
    };
    tasks.push(tokio::spawn(core.run(core_rx)));
    tracing::info!(site = %cfg.site.name, ?lookup_addrs, %gateway_primary, %gateway_mirror, "site started");
    Ok((
        SiteHandle {
            lookup_addrs,
            gateway_primary,
            gateway_mirror,
            core: core_tx,
            activity,
            tasks,
        },
        feed_rx,
    ))
}

async fn lookup_listener(
    l: TcpListener,
    svc: Arc<Mutex<LookupService>>,
    activity: broadcast::Sender<Activity>,
) {
    loop {
        let Ok((mut s, peer)) = l.accept().await else {
            continue;
        };
        let svc = svc.clone();
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
                        let _ = activity.send(Activity::Lookup {
                            comp_id: comp_of(&buf),
                            peer,
                            accepted,
                            at: wall_clock(),
                        });
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
    core: mpsc::UnboundedSender<CoreMsg>,
    next: Arc<AtomicU64>,
    activity: broadcast::Sender<Activity>,
) {
    loop {
        let Ok((s, peer)) = l.accept().await else {
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
        let (tx, rx) = mpsc::unbounded_channel();
        let (r, w) = s.into_split();
        tokio::spawn(writer(w, rx));
        if core.send(CoreMsg::Accepted { conn, peer, tx }).is_err() {
            return;
        }
        tokio::spawn(reader(r, conn, core.clone()));
    }
}

async fn reader(
    mut r: tokio::net::tcp::OwnedReadHalf,
    conn: ConnectionId,
    core: mpsc::UnboundedSender<CoreMsg>,
) {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        match r.read(&mut buf).await {
            Ok(n) if n > 0 => {
                if core
                    .send(CoreMsg::Bytes {
                        conn,
                        data: buf[..n].to_vec(),
                    })
                    .is_err()
                {
                    return;
                }
            }
            _ => {
                let _ = core.send(CoreMsg::Closed { conn });
                return;
            }
        }
    }
}

async fn writer(mut w: tokio::net::tcp::OwnedWriteHalf, mut rx: mpsc::UnboundedReceiver<Out>) {
    let mut batch = Vec::with_capacity(64 * 1024);
    while let Some(first) = rx.recv().await {
        let mut close = false;
        let mut next = Some(first);
        // Coalesce everything already queued into one write.
        while let Some(item) = next.take() {
            match item {
                Out::Bytes(b) => batch.extend_from_slice(&b),
                Out::Close => {
                    close = true;
                    break;
                }
            }
            next = rx.try_recv().ok();
        }
        if !batch.is_empty() && w.write_all(&batch).await.is_err() {
            return;
        }
        batch.clear();
        if close {
            let _ = w.shutdown().await;
            return;
        }
    }
}

struct Conn {
    tx: mpsc::UnboundedSender<Out>,
}

struct Core {
    exchange: Exchange,
    server: OcgServer,
    conns: BTreeMap<ConnectionId, Conn>,
    feed: mpsc::UnboundedSender<FeedInput>,
    activity: broadcast::Sender<Activity>,
    lookup: Arc<Mutex<LookupService>>,
    scheduled: bool,
}

impl Core {
    async fn run(mut self, mut rx: mpsc::UnboundedReceiver<CoreMsg>) {
        let tick = Duration::from_millis(50);
        let mut next_tick = tokio::time::Instant::now() + tick;
        loop {
            let now = wall_clock();
            let server_deadline = self.server.poll_timeout().map(|t| {
                tokio::time::Instant::now() + Duration::from_nanos(t.0.saturating_sub(now.0))
            });
            let deadline = server_deadline.map_or(next_tick, |d| d.min(next_tick));
            tokio::select! {
                m = rx.recv() => match m {
                    None => return,
                    Some(m) => {
                        self.handle(m, wall_clock());
                        // Drain what else is queued before sleeping again.
                        while let Ok(m) = rx.try_recv() {
                            self.handle(m, wall_clock());
                        }
                    }
                },
                _ = tokio::time::sleep_until(deadline) => {
                    let now = wall_clock();
                    self.server.handle_timeout(now);
                    if tokio::time::Instant::now() >= next_tick {
                        next_tick = tokio::time::Instant::now() + tick;
                        if self.scheduled {
                            let out = self.exchange.on_command(&Command::Tick, now);
                            self.deliver(out, now);
                        }
                    }
                }
            }
            self.drain(wall_clock());
        }
    }

    fn handle(&mut self, m: CoreMsg, now: Timestamp) {
        match m {
            CoreMsg::Accepted { conn, peer, tx } => {
                self.conns.insert(conn, Conn { tx });
                self.server.handle_accept(conn, peer.ip(), now);
            }
            CoreMsg::Bytes { conn, data } => self.server.handle_bytes(conn, &data, now),
            CoreMsg::Closed { conn } => {
                if self.conns.remove(&conn).is_some() {
                    self.server.handle_closed(conn, now);
                }
            }
            CoreMsg::Admin(a) => match a {
                AdminCmd::Engine(cmd) => {
                    let out = self.exchange.on_command(&cmd, now);
                    self.deliver(out, now);
                }
                AdminCmd::LogonsAllowed(b) => self.server.set_logons_allowed(b),
                AdminCmd::LookupOpen(b) => self.lookup.lock().expect("lookup lock").open = b,
                AdminCmd::StateHash(tx) => {
                    let _ = tx.send((
                        self.exchange.engine.state_hash(),
                        self.exchange.engine.live_orders(),
                    ));
                }
            },
        }
        self.drain(now);
    }

    fn deliver(&mut self, out: crate::exchange::Output, now: Timestamp) {
        for r in out.replies {
            match self
                .server
                .send_business(&r.comp_id, r.message.clone(), now)
            {
                Ok(seq) => {
                    let _ = self.activity.send(Activity::Outbound {
                        comp_id: r.comp_id,
                        seq,
                        message: Box::new(r.message),
                        at: now,
                    });
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

    fn drain(&mut self, now: Timestamp) {
        while let Some(a) = self.server.poll_action() {
            match a {
                ServerAction::Send { connection, bytes } => {
                    if let Some(c) = self.conns.get(&connection) {
                        let _ = c.tx.send(Out::Bytes(bytes));
                    }
                }
                ServerAction::Disconnect {
                    connection,
                    silent,
                    reason,
                } => {
                    tracing::info!(connection = connection.0, silent, ?reason, "disconnect");
                    let _ = self.activity.send(Activity::Disconnected {
                        connection: connection.0,
                        silent,
                        reason: format!("{reason:?}"),
                        at: now,
                    });
                    if let Some(c) = self.conns.remove(&connection) {
                        let _ = c.tx.send(Out::Close);
                    }
                    self.server.handle_closed(connection, now);
                }
                ServerAction::SessionUp {
                    comp_id,
                    connection,
                } => {
                    tracing::info!(%comp_id, connection = connection.0, "session up");
                    let _ = self.activity.send(Activity::SessionUp {
                        comp_id,
                        connection: connection.0,
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
                    let _ = self.activity.send(Activity::Inbound {
                        comp_id,
                        seq,
                        msg_type: message.msg_type(),
                        poss_resend,
                        at: now,
                    });
                    let out = self.exchange.on_business(&comp_id, seq, &message, now);
                    self.deliver(out, now);
                }
                ServerAction::CancelOnDisconnect { comp_id } => {
                    let out = self
                        .exchange
                        .on_command(&Command::CancelOnDisconnect { session: comp_id }, now);
                    self.deliver(out, now);
                }
            }
        }
    }
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
