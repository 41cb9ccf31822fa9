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
use twinsite_core::{Price, Qty};
use twinsite_ocg::password::{encrypt_password, Padding};
use twinsite_ocg::*;
use twinsite_site::config::*;
use twinsite_site::gateway::{self, load_key, wall_clock, SiteHandle};

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
