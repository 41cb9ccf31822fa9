//! Shared helpers for the end-to-end tests over real TCP: a site on 127.0.0.1 port 0, and a raw
//! OCG-C session (codec only, no client state machine) that can send corrupted bytes.
#![allow(dead_code)]

use rand_chacha::rand_core::SeedableRng;
use std::collections::VecDeque;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio::sync::broadcast;
use twinsite_cluster::{Durability, JournalConfig, NodeRole};
use twinsite_core::{CompId, Price, Qty, Site};
use twinsite_ocg::client::{ClientConfig, ClientState};
use twinsite_ocg::password::{encrypt_password, Padding};
use twinsite_ocg::*;
use twinsite_site::client::{ClientEvent, ClientHandle};
use twinsite_site::config::*;
use twinsite_site::gateway::{self, load_key, wall_clock, Activity, SiteHandle};

/// Upper bound for waiting on any event.
pub const T: Duration = Duration::from_secs(10);
/// How long "nothing happens" is watched for where a test needs it.
pub const QUIET: Duration = Duration::from_millis(300);
pub const PASSWORD: &str = "Passw0rd";

pub fn key_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data/test-key.pem")
}

pub fn participant(firm: &str, comp: &str, broker: u32) -> ParticipantEntry {
    ParticipantEntry {
        firm: firm.into(),
        kind: "EP".into(),
        comp_id: comp.into(),
        broker_ids: vec![broker],
        password: PASSWORD.into(),
        source_ips: vec!["127.0.0.1".parse().unwrap()],
        throttle_units: 50,
        cancel_on_disconnect_ms: None,
        must_change_password: false,
        protocol: Default::default(),
    }
}

pub fn site_config(participants: Vec<ParticipantEntry>) -> SiteConfig {
    let any: SocketAddr = "127.0.0.1:0".parse().unwrap();
    SiteConfig {
        site: SiteSection {
            name: "primary".into(),
            lookup: vec![any, any],
            gateway_primary: any,
            gateway_mirror: any,
            advertise_host: None,
            keys: vec![key_path()],
            reference_data: None,
            active: true,
            fix_gateway: None,
            csc_lookup: vec![],
            csc_gateway_primary: None,
            csc_gateway_mirror: None,
        },
        engine: EngineSection::default(),
        session: SessionSection {
            heartbeat_ms: 1_000,
            password_tolerance_secs: 120,
            throttle: true,
            ..Default::default()
        },
        market_data: None,
        participants,
        failover: Default::default(),
    }
}

/// Three participants: A (CO0001, broker 1001) misbehaves, B (CO0002, 1002) rests an order,
/// C (CO0003, 1003) trades against it.
pub fn abc() -> Vec<ParticipantEntry> {
    vec![
        participant("Alpha", "CO0001", 1001),
        participant("Beta", "CO0002", 1002),
        participant("Gamma", "CO0003", 1003),
    ]
}

pub async fn start(cfg: SiteConfig) -> SiteHandle {
    let (site, feed) = gateway::start(cfg).await.expect("site starts");
    // Keep the feed receiver alive for the whole test (the core sends engine events to it).
    std::mem::forget(feed);
    site
}

pub fn new_order(cl: &str, broker: u32, side: Side, price: &str, qty: u64) -> Message {
    Message::NewOrder(NewOrder::day_limit(
        cl,
        broker,
        "5",
        side,
        Price::parse(price).unwrap(),
        Qty(qty),
        "20231125-02:00:00.000000",
    ))
}

pub fn qty(q: u64) -> Decimal {
    Decimal::from_qty(Qty(q))
}

/// The encrypted Logon a participant sends.
pub fn logon_msg(password: &str, next_expected: u32) -> Message {
    let key = load_key(&key_path()).unwrap();
    let public = rsa::RsaPublicKey::from(&key);
    let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(7);
    let enc =
        encrypt_password(&public, Padding::Pkcs1v15, wall_clock(), password, &mut rng).unwrap();
    Message::Logon(Logon {
        password: Some(FixedStr::new(&enc)),
        new_password: None,
        next_expected_sequence: next_expected,
        session_status: None,
        text: None,
        test_message_indicator: None,
    })
}

/// Set the Length field to the frame's real length and recompute the CRC (after editing a
/// frame's header or body by hand).
pub fn refit(frame: &mut [u8]) {
    let len = frame.len() as u16;
    frame[1..3].copy_from_slice(&len.to_le_bytes());
    let end = frame.len() - 4;
    let crc = crc32c_of(&frame[..end]);
    frame[end..].copy_from_slice(&crc.to_le_bytes());
}

/// CRC-32C through the codec: encode a frame and read back its checksum is not possible for an
/// arbitrary prefix, so compute it here (Castagnoli, reflected 0x82F63B78).
pub fn crc32c_of(bytes: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in bytes {
        crc ^= b as u32;
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0x82F6_3B78
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

/// What a raw session read.
#[derive(Debug)]
pub enum Got {
    Msg(Box<Header>, Box<Message>),
    /// The exchange closed the connection (EOF or reset).
    Closed,
    /// The exchange sent bytes the codec cannot read.
    Garbage(String),
}

/// A participant's connection driven by hand: frames built with the codec, sent as raw bytes.
pub struct Raw {
    pub stream: TcpStream,
    pub comp: FixedStr<12>,
    /// Next sequence number to send.
    pub seq: u32,
    /// Highest sequence number received from the exchange.
    pub last_in: u32,
    decoder: FrameDecoder,
    queued: VecDeque<Got>,
    closed: bool,
    /// Answer Test Requests with a Heartbeat while waiting (on by default).
    pub answer_test_requests: bool,
}

impl Raw {
    pub async fn connect(addr: SocketAddr, comp: &str) -> Raw {
        Raw::connect_from(addr, "127.0.0.1".parse().unwrap(), comp).await
    }

    /// Connect from a chosen local address (all of 127/8 is loopback on Linux).
    pub async fn connect_from(addr: SocketAddr, source: IpAddr, comp: &str) -> Raw {
        let s = TcpSocket::new_v4().unwrap();
        s.bind(SocketAddr::new(source, 0)).unwrap();
        let stream = s.connect(addr).await.unwrap();
        stream.set_nodelay(true).unwrap();
        Raw {
            stream,
            comp: FixedStr::new(comp),
            seq: 1,
            last_in: 0,
            decoder: FrameDecoder::default(),
            queued: VecDeque::new(),
            closed: false,
            answer_test_requests: true,
        }
    }

    /// Connect, log on with the right password, and wait for the Logon reply.
    pub async fn logon(addr: SocketAddr, comp: &str) -> Raw {
        Raw::logon_with(addr, comp, 1, 1).await.0
    }

    /// Log on again later in the day: the Logon goes out as `seq`, asking for `next_expected`.
    /// Returns the session and the Logon reply.
    pub async fn logon_with(
        addr: SocketAddr,
        comp: &str,
        seq: u32,
        next_expected: u32,
    ) -> (Raw, Logon) {
        let mut r = Raw::connect(addr, comp).await;
        r.seq = seq;
        r.send(logon_msg(PASSWORD, next_expected)).await;
        let reply = r
            .expect(T, |_, m| match m {
                Message::Logon(l) => Some(l.clone()),
                _ => None,
            })
            .await
            .unwrap_or_else(|e| panic!("{comp} logon: {e}"))
            .0;
        assert_eq!(
            reply.session_status,
            Some(SessionStatus::Active),
            "{comp} logon status"
        );
        (r, reply)
    }

    /// Encode `m` under the next sequence number (consumed).
    pub fn frame(&mut self, m: &Message) -> Vec<u8> {
        let f = frame::encode(self.seq, false, false, &self.comp, m).unwrap();
        self.seq += 1;
        f
    }

    /// Send `m` under the next sequence number; returns that number.
    pub async fn send(&mut self, m: Message) -> u32 {
        let seq = self.seq;
        let f = self.frame(&m);
        self.send_bytes(&f).await;
        seq
    }

    pub async fn send_bytes(&mut self, b: &[u8]) {
        // The exchange may already have closed; a failed write shows up as Closed on read.
        let _ = self.stream.write_all(b).await;
    }

    /// The next thing the exchange sends, or None after `timeout`.
    pub async fn recv(&mut self, timeout: Duration) -> Option<Got> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if let Some(g) = self.queued.pop_front() {
                return Some(g);
            }
            if self.closed {
                return Some(Got::Closed);
            }
            let mut buf = [0u8; 65536];
            match tokio::time::timeout_at(deadline, self.stream.read(&mut buf)).await {
                Err(_) => return None,
                Ok(Ok(0)) | Ok(Err(_)) => {
                    self.closed = true;
                }
                Ok(Ok(n)) => {
                    self.decoder.feed(&buf[..n]);
                    loop {
                        match self.decoder.next_frame() {
                            Ok(Some(f)) => {
                                let h = f.header.clone();
                                self.last_in = self.last_in.max(h.seq);
                                match f.message() {
                                    Ok(m) => {
                                        self.queued.push_back(Got::Msg(Box::new(h), Box::new(m)))
                                    }
                                    Err(e) => self.queued.push_back(Got::Garbage(e.to_string())),
                                }
                            }
                            Ok(None) => break,
                            Err(e) => {
                                self.queued.push_back(Got::Garbage(e.to_string()));
                                self.closed = true;
                                break;
                            }
                        }
                    }
                }
            }
        }
    }

    /// Wait (bounded) for the first message `f` accepts; returns it and the messages before it.
    pub async fn expect<R>(
        &mut self,
        timeout: Duration,
        mut f: impl FnMut(&Header, &Message) -> Option<R>,
    ) -> Result<(R, Vec<Message>), String> {
        let deadline = tokio::time::Instant::now() + timeout;
        let mut seen = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match self.recv(left).await {
                None => return Err(format!("timed out after {timeout:?}; saw {seen:?}")),
                Some(Got::Closed) => return Err(format!("connection closed; saw {seen:?}")),
                Some(Got::Garbage(e)) => {
                    return Err(format!("undecodable frame {e}; saw {seen:?}"))
                }
                Some(Got::Msg(h, m)) => {
                    if let Some(r) = f(&h, &m) {
                        return Ok((r, seen));
                    }
                    self.auto_answer(&m).await;
                    seen.push(*m);
                }
            }
        }
    }

    async fn auto_answer(&mut self, m: &Message) {
        if let (true, Message::TestRequest(t)) = (self.answer_test_requests, m) {
            let hb = Message::Heartbeat(Heartbeat {
                reference_test_request_id: Some(t.test_request_id),
            });
            self.send(hb).await;
        }
    }

    /// Wait (bounded) for the exchange to close the connection; returns what it sent before.
    pub async fn expect_closed(&mut self, timeout: Duration) -> Result<Vec<Message>, String> {
        let deadline = tokio::time::Instant::now() + timeout;
        let mut seen = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match self.recv(left).await {
                None => return Err(format!("still open after {timeout:?}; saw {seen:?}")),
                Some(Got::Closed) => return Ok(seen),
                Some(Got::Garbage(e)) => {
                    return Err(format!("undecodable frame {e}; saw {seen:?}"))
                }
                Some(Got::Msg(_, m)) => seen.push(*m),
            }
        }
    }

    /// Wait for the connection to close, and check nothing but heartbeats came first (a silent
    /// disconnect: no Logout, no Reject).
    pub async fn expect_silent_close(&mut self) {
        let seen = self.expect_closed(T).await.unwrap();
        assert!(
            seen.iter().all(|m| matches!(m, Message::Heartbeat(_))),
            "silent disconnect expected, the exchange sent {seen:?}"
        );
    }

    /// Wait for an Execution Report of `t`.
    pub async fn expect_er(&mut self, t: ExecType) -> ExecutionReport {
        self.expect(T, |_, m| match m {
            Message::ExecutionReport(r) if r.exec_type == Some(t) => Some(r.clone()),
            _ => None,
        })
        .await
        .unwrap_or_else(|e| panic!("{} waiting for {t:?}: {e}", self.comp.as_str()))
        .0
    }

    /// Wait for a session Reject; returns it.
    pub async fn expect_reject(&mut self) -> Reject {
        self.expect(T, |_, m| match m {
            Message::Reject(r) => Some(r.clone()),
            _ => None,
        })
        .await
        .unwrap_or_else(|e| panic!("{} waiting for a Reject: {e}", self.comp.as_str()))
        .0
    }

    /// Wait for a Business Message Reject; returns it.
    pub async fn expect_bmr(&mut self) -> BusinessMessageReject {
        self.expect(T, |_, m| match m {
            Message::BusinessMessageReject(r) => Some(r.clone()),
            _ => None,
        })
        .await
        .unwrap_or_else(|e| panic!("{} waiting for a BMR: {e}", self.comp.as_str()))
        .0
    }

    /// Wait for a Logout; returns its Session Status.
    pub async fn expect_logout(&mut self) -> Option<SessionStatus> {
        self.expect(T, |_, m| match m {
            Message::Logout(l) => Some(l.session_status),
            _ => None,
        })
        .await
        .unwrap_or_else(|e| panic!("{} waiting for a Logout: {e}", self.comp.as_str()))
        .0
    }

    /// Nothing but heartbeats arrives for `d`, and the connection stays open.
    pub async fn expect_quiet(&mut self, d: Duration) {
        let deadline = tokio::time::Instant::now() + d;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match self.recv(left).await {
                None => return,
                Some(Got::Msg(_, m)) if matches!(*m, Message::Heartbeat(_)) => {}
                Some(Got::Msg(_, m)) if matches!(*m, Message::TestRequest(_)) => {
                    self.auto_answer(&m).await
                }
                Some(other) => panic!("{}: expected quiet, got {other:?}", self.comp.as_str()),
            }
        }
    }

    /// Log out cleanly.
    pub async fn logout(mut self) {
        self.send(Message::Logout(Logout {
            logout_text: None,
            session_status: None,
        }))
        .await;
        let _ = self.expect_closed(T).await;
    }
}

/// The market every bad-input test checks: B rests a sell of 800 at 65.30.
pub struct Market {
    pub b: Raw,
    pub c: Raw,
    /// Engine state hash and live order count with B's order resting.
    pub before: (u64, usize),
}

impl Market {
    pub async fn open(site: &SiteHandle) -> Market {
        let mut b = Raw::logon(site.gateway_primary, "CO0002").await;
        let c = Raw::logon(site.gateway_primary, "CO0003").await;
        b.send(new_order("1", 1002, Side::Sell, "65.30", 800)).await;
        let ack = b.expect_er(ExecType::New).await;
        assert_eq!(ack.ord_status, Some(OrdStatus::New));
        let before = site.state_hash().await.expect("site core alive");
        assert_eq!(before.1, 1, "one live order: B's");
        Market { b, c, before }
    }

    /// The site is alive, the book is exactly as before, and B's order still trades with C.
    /// `n` distinguishes repeated checks (client order ids).
    pub async fn check_intact(&mut self, site: &SiteHandle, n: u32) {
        let now = site.state_hash().await.expect("site core alive (no panic)");
        assert_eq!(
            now, self.before,
            "book changed by another session's bad input"
        );
        self.c
            .send(new_order(&n.to_string(), 1003, Side::Buy, "65.30", 400))
            .await;
        let fill_c = self.c.expect_er(ExecType::Trade).await;
        assert_eq!(fill_c.last_qty, Some(qty(400)));
        let fill_b = self.b.expect_er(ExecType::Trade).await;
        assert_eq!(fill_b.cl_ord_id, Some(FixedStr::new("1")));
        assert_eq!(fill_b.last_qty, Some(qty(400)));
        self.before = site.state_hash().await.expect("site core alive");
    }
}

// ------------------------------------------------------------------ three nodes

/// Bound for waits in the three-node tests (longer than [`T`]: a cluster on a loaded two-core
/// machine).
pub const CLUSTER_T: Duration = Duration::from_secs(30);

/// One cluster at a time per test binary: two would compete for the CI's two cores.
pub static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// The primary site, the backup site and the witness, on loopback.
pub struct Cluster {
    /// None after a crash.
    pub primary: Option<SiteHandle>,
    pub backup: SiteHandle,
    pub witness: twinsite_cluster::Journal<twinsite_site::replica::Replica>,
}

/// The first activity `f` accepts, within [`CLUSTER_T`].
pub async fn until<R>(
    rx: &mut broadcast::Receiver<Activity>,
    mut f: impl FnMut(&Activity) -> Option<R>,
) -> R {
    let deadline = tokio::time::Instant::now() + CLUSTER_T;
    loop {
        match tokio::time::timeout_at(deadline, rx.recv()).await {
            Ok(Ok(a)) => {
                if let Some(r) = f(&a) {
                    return r;
                }
            }
            Ok(Err(broadcast::error::RecvError::Lagged(_))) => {}
            _ => panic!("the expected activity never came"),
        }
    }
}

/// The site opened; true if it opened after a failover.
pub async fn wait_active(rx: &mut broadcast::Receiver<Activity>) -> bool {
    until(rx, |a| match a {
        Activity::SiteActive { failover, .. } => Some(*failover),
        _ => None,
    })
    .await
}

/// Three nodes on loopback with the configs `cfg(name)` gives ("primary", "backup", "witness";
/// journal in memory), the primary site leading and active.
pub async fn cluster(cfg: impl Fn(&str) -> SiteConfig) -> Cluster {
    let (addrs, mut listeners) = twinsite_cluster::loopback_listeners().await.unwrap();
    let jc = |r| JournalConfig::new(r, addrs.clone(), Durability::Memory);
    let (primary, feed) = gateway::start_node(
        cfg("primary"),
        Site::Primary,
        jc(NodeRole::Primary),
        listeners.remove(&NodeRole::Primary),
    )
    .await
    .unwrap();
    // Keep the feed receivers alive for the whole test (the cores send engine events to them).
    std::mem::forget(feed);
    let mut prx = primary.subscribe();
    let (backup, feed) = gateway::start_node(
        cfg("backup"),
        Site::Backup,
        jc(NodeRole::Backup),
        listeners.remove(&NodeRole::Backup),
    )
    .await
    .unwrap();
    std::mem::forget(feed);
    let witness = gateway::start_witness(
        &cfg("witness"),
        jc(NodeRole::Witness),
        listeners.remove(&NodeRole::Witness),
    )
    .await
    .unwrap();
    // The primary site leads at the start of the day.
    let j = primary.journal().unwrap().clone();
    let leader = j.wait_for_leader(CLUSTER_T).await.unwrap();
    if leader != NodeRole::Primary {
        let from = match leader {
            NodeRole::Backup => backup.journal().unwrap().clone(),
            _ => witness.clone(),
        };
        from.transfer_leadership(NodeRole::Primary).await.unwrap();
    }
    assert!(
        !wait_active(&mut prx).await,
        "the first activation of the day is not a failover"
    );
    Cluster {
        primary: Some(primary),
        backup,
        witness,
    }
}

impl Cluster {
    /// A participant's four lookup endpoints (`f` picks OTP-C's or OTP-CSC's): the primary
    /// site's two, then the backup site's.
    pub fn ladder(&self, f: fn(&SiteHandle) -> &Vec<SocketAddr>) -> Vec<SocketAddr> {
        let mut all = self
            .primary
            .as_ref()
            .map(|p| f(p).clone())
            .unwrap_or_default();
        all.extend(f(&self.backup).iter().copied());
        all
    }

    /// Fail over to the backup site: a scheduled leadership transfer, or a crash of the primary
    /// site. Returns once the backup is active, with the backup's activity from before the
    /// failover on (what follows the opening is still to be read).
    pub async fn fail_over(&mut self, crash: bool) -> broadcast::Receiver<Activity> {
        let mut brx = self.backup.subscribe();
        if crash {
            self.primary.take().unwrap().crash().await;
        } else {
            self.primary
                .as_ref()
                .unwrap()
                .journal()
                .unwrap()
                .transfer_leadership(NodeRole::Backup)
                .await
                .unwrap();
        }
        assert!(
            wait_active(&mut brx).await,
            "the backup opens after a failover"
        );
        brx
    }

    /// The three nodes (the old primary too, if it is still up) hold the same state at the
    /// backup's commit index; returns that index.
    pub async fn same_state_everywhere(&self) -> u64 {
        let j = self.backup.journal().unwrap().clone();
        // Every order acknowledged at the backup is in its log: its reply was released at
        // commit, which can come before the backup applied it, and the status's commit index
        // is published a moment later still. Compare at the end of the log (every node applies
        // up to there once it is committed), or the check reads an index before the order.
        let idx = j.last_log_index();
        j.wait_applied(idx, CLUSTER_T).await.unwrap();
        self.witness.wait_applied(idx, CLUSTER_T).await.unwrap();
        let h = j.state_hash_at(idx);
        assert!(h.is_some());
        assert_eq!(
            h,
            self.witness.state_hash_at(idx),
            "backup vs witness at {idx}"
        );
        if let Some(p) = &self.primary {
            let p = p.journal().unwrap().clone();
            p.wait_applied(idx, CLUSTER_T).await.unwrap();
            assert_eq!(h, p.state_hash_at(idx), "backup vs old primary at {idx}");
        }
        idx
    }

    pub async fn shutdown(self) {
        self.backup.shutdown();
        if let Some(p) = self.primary {
            p.shutdown();
        }
        self.witness.shutdown().await;
    }
}

// ------------------------------------------------------------------ client side

/// A reference client with short timers (reconnect, lookup back-off, logon retry).
pub fn client_cfg(comp: &str, lookups: Vec<SocketAddr>) -> ClientConfig {
    let key = load_key(&key_path()).unwrap();
    let mut cfg = ClientConfig::new(
        CompId::new(comp).unwrap(),
        PASSWORD,
        rsa::RsaPublicKey::from(&key),
        lookups,
    );
    cfg.reconnect_wait_ns = 50_000_000;
    cfg.lookup_backoff_ns = 50_000_000;
    cfg.timers.heartbeat_interval_ns = 1_000_000_000;
    cfg.logon_reply_timeout_ns = 2_000_000_000;
    cfg.logon_retry_wait_ns = 100_000_000;
    cfg
}

pub fn client(comp: &str, lookups: Vec<SocketAddr>) -> ClientHandle {
    ClientHandle::spawn(client_cfg(comp, lookups), ClientState::default())
}

/// An Execution Report of exec type `t`: (sequence number, PossResend, the report).
pub fn er_of(t: ExecType) -> impl FnMut(&ClientEvent) -> Option<(u32, bool, ExecutionReport)> {
    move |e| match e {
        ClientEvent::Message {
            seq,
            poss_resend,
            message,
            ..
        } => match message.as_ref() {
            Message::ExecutionReport(r) if r.exec_type == Some(t) => {
                Some((*seq, *poss_resend, r.clone()))
            }
            _ => None,
        },
        _ => None,
    }
}

/// Logged on: the Next Expected Message Sequence the exchange's Logon named.
pub fn logged_on(e: &ClientEvent) -> Option<u32> {
    match e {
        ClientEvent::LoggedOn { next_expected } => Some(*next_expected),
        _ => None,
    }
}

/// A limit order (Day, one price level) for `security`.
pub fn order_in(security: &str, cl: &str, broker: u32, side: Side, price: &str, q: u64) -> Message {
    let Message::NewOrder(mut o) = new_order(cl, broker, side, price, q) else {
        unreachable!()
    };
    o.security_id = FixedStr::new(security);
    o.security_exchange = None;
    Message::NewOrder(o)
}
