//! The FIX gateway end to end over TCP: our Rust initiator (`twinsite_fix::Session::initiator`)
//! logs on, trades against a binary OCG-C participant, cancels, cancel/replaces, gets a resend
//! after a dropped connection, logs out; one firm uses a binary and a FIX session side by side;
//! a FIX participant continues its session at the backup site after a scheduled failover.

mod common;

use common::*;
use rand_chacha::rand_core::SeedableRng;
use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use twinsite_core::{ClOrdId, Price, Qty, SecurityCode};
use twinsite_fix::app::{
    ExecType, ExecutionReport, NewOrderSingle, OrderCancelReject, OrderCancelReplaceRequest,
    OrderCancelRequest, OrderSide, OrderTerms, Parties,
};
use twinsite_fix::password::{Padding, RsaCredentials};
use twinsite_fix::session::{Action, Inbound};
use twinsite_fix::{Message as FixMessage, Session, SessionConfig, SessionState};
use twinsite_ocg::{ExecType as OcgExecType, Side};
use twinsite_site::config::{ParticipantEntry, Protocol, SiteConfig};
use twinsite_site::gateway::{self, load_key, wall_clock, Activity};

const EXCHANGE: &str = "HKEX";

/// A FIX participant over TCP, driven by the sans-IO initiator session.
pub struct FixClient {
    stream: TcpStream,
    session: Session,
    inbox: VecDeque<Inbound>,
    established: bool,
    closed: bool,
    comp: String,
}

impl FixClient {
    pub async fn connect(addr: SocketAddr, comp: &str, state: SessionState) -> FixClient {
        let stream = TcpStream::connect(addr).await.unwrap();
        stream.set_nodelay(true).unwrap();
        let key = load_key(&key_path()).unwrap();
        let mut creds = RsaCredentials {
            key: rsa::RsaPublicKey::from(&key),
            password: PASSWORD.into(),
            new_password: None,
            padding: Padding::Pkcs1v15,
            rng: rand_chacha::ChaCha20Rng::seed_from_u64(11),
        };
        let session = Session::initiator(
            SessionConfig::initiator(comp, EXCHANGE),
            state,
            Box::new(move |now| creds.logon_fields(now).expect("password encrypts")),
            wall_clock(),
        );
        let mut c = FixClient {
            stream,
            session,
            inbox: VecDeque::new(),
            established: false,
            closed: false,
            comp: comp.into(),
        };
        c.flush().await;
        c
    }

    /// Connect and wait for the session to be established.
    pub async fn logon(addr: SocketAddr, comp: &str, state: SessionState) -> FixClient {
        let mut c = FixClient::connect(addr, comp, state).await;
        let deadline = Instant::now() + T;
        while !c.established {
            assert!(!c.closed, "{comp}: closed before logon");
            assert!(Instant::now() < deadline, "{comp}: no logon");
            c.read_some(Duration::from_millis(100)).await;
        }
        c
    }

    async fn flush(&mut self) {
        while let Some(a) = self.session.poll_action() {
            match a {
                Action::Send(b) => {
                    if self.stream.write_all(&b).await.is_err() {
                        self.closed = true;
                    }
                }
                Action::Established => self.established = true,
                Action::Deliver(m) => self.inbox.push_back(m),
                Action::Disconnect { .. } => self.closed = true,
            }
        }
    }

    async fn read_some(&mut self, wait: Duration) {
        let mut buf = vec![0u8; 65536];
        match tokio::time::timeout(wait, self.stream.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => {
                self.session.handle_disconnect();
                self.closed = true;
            }
            Ok(Ok(n)) => self.session.handle_bytes(wall_clock(), &buf[..n]),
            Err(_) => {}
        }
        self.session.handle_timeout(wall_clock());
        self.flush().await;
    }

    pub async fn send(&mut self, m: FixMessage) -> u64 {
        let seq = self.session.send(wall_clock(), m).expect("valid message");
        self.flush().await;
        seq
    }

    /// The next application message matching `f` (others are kept in order and skipped).
    pub async fn expect<R>(&mut self, what: &str, mut f: impl FnMut(&Inbound) -> Option<R>) -> R {
        let deadline = Instant::now() + T;
        loop {
            if let Some(i) = self.inbox.iter().position(|m| f(m).is_some()) {
                let m = self.inbox.remove(i).unwrap();
                return f(&m).unwrap();
            }
            assert!(
                !self.closed && Instant::now() < deadline,
                "{}: waiting for {what}; got {:?}",
                self.comp,
                self.inbox
                    .iter()
                    .map(|m| format!("{:?}", m.message))
                    .collect::<Vec<_>>()
            );
            self.read_some(Duration::from_millis(50)).await;
        }
    }

    pub async fn expect_er(&mut self, t: ExecType) -> (ExecutionReport, Inbound) {
        self.expect(&format!("ExecutionReport {t:?}"), |m| {
            if m.message.msg_type != "8" {
                return None;
            }
            let er = ExecutionReport::from_message(&m.message).expect("ER parses");
            (er.exec_type == t).then(|| (er, m.clone()))
        })
        .await
    }

    /// Log out and wait for the exchange to confirm; returns the durable state.
    pub async fn logout(mut self) -> SessionState {
        self.session.logout(wall_clock(), "bye");
        self.flush().await;
        let deadline = Instant::now() + T;
        while !self.closed {
            assert!(
                Instant::now() < deadline,
                "{}: logout unanswered",
                self.comp
            );
            self.read_some(Duration::from_millis(50)).await;
        }
        self.session.into_state()
    }

    /// Drop the TCP connection without a Logout; returns the durable state.
    pub fn drop_connection(mut self) -> SessionState {
        self.session.handle_disconnect();
        self.session.into_state()
    }
}

pub fn fix_participant(firm: &str, comp: &str, broker: u32) -> ParticipantEntry {
    ParticipantEntry {
        protocol: Protocol::Fix,
        ..participant(firm, comp, broker)
    }
}

fn limit(cl: &str, side: OrderSide, price: &str, qty: u64) -> FixMessage {
    NewOrderSingle {
        cl_ord_id: ClOrdId::new(cl).unwrap(),
        terms: OrderTerms::limit(
            SecurityCode(5),
            side,
            Price::parse(price).unwrap(),
            Qty(qty),
            wall_clock(),
        ),
    }
    .to_message()
}

fn cancel(cl: &str, orig: &str, side: OrderSide) -> FixMessage {
    OrderCancelRequest {
        cl_ord_id: ClOrdId::new(cl).unwrap(),
        orig_cl_ord_id: Some(ClOrdId::new(orig).unwrap()),
        order_id: None,
        parties: Parties::default(),
        security: SecurityCode(5),
        side,
        transact_time: wall_clock(),
        text: None,
    }
    .to_message()
}

fn replace(cl: &str, orig: &str, side: OrderSide, price: &str, qty: u64) -> FixMessage {
    OrderCancelReplaceRequest {
        cl_ord_id: ClOrdId::new(cl).unwrap(),
        orig_cl_ord_id: ClOrdId::new(orig).unwrap(),
        order_id: None,
        terms: OrderTerms::limit(
            SecurityCode(5),
            side,
            Price::parse(price).unwrap(),
            Qty(qty),
            wall_clock(),
        ),
    }
    .to_message()
}

fn fix_site_config(participants: Vec<ParticipantEntry>) -> SiteConfig {
    let mut cfg = site_config(participants);
    cfg.site.fix_gateway = Some("127.0.0.1:0".parse().unwrap());
    cfg
}

#[tokio::test]
async fn fix_initiator_trades_cancels_replaces_resends_and_logs_out() {
    // Alpha uses a binary Comp ID and a FIX Comp ID side by side; Beta trades over binary.
    let site = start(fix_site_config(vec![
        participant("Alpha", "CO0001", 1001),
        fix_participant("Alpha", "FX0001", 1001),
        participant("Beta", "CO0002", 1002),
    ]))
    .await;
    let fix_addr = site.fix_gateway.expect("FIX gateway listening");
    let mut fx = FixClient::logon(fix_addr, "FX0001", SessionState::new("FX0001", EXCHANGE)).await;
    let mut alpha = Raw::logon(site.gateway_primary, "CO0001").await;
    let mut beta = Raw::logon(site.gateway_primary, "CO0002").await;

    // A FIX order rests; a binary order of the same firm rests next to it.
    fx.send(limit("F1", OrderSide::Buy, "65.30", 1200)).await;
    let (new, _) = fx.expect_er(ExecType::New).await;
    assert_eq!(new.cl_ord_id.unwrap().as_str(), "F1");
    assert_eq!(new.leaves_qty, Qty(1200));
    let f1_order = new.order_id;
    alpha
        .send(new_order("A1", 1001, Side::Buy, "65.20", 400))
        .await;
    alpha.expect_er(OcgExecType::New).await;

    // Binary Beta sells into the FIX order: both sides get their fill.
    beta.send(new_order("B1", 1002, Side::Sell, "65.30", 400))
        .await;
    let (fill, _) = fx.expect_er(ExecType::Trade).await;
    assert_eq!(fill.last_qty, Some(Qty(400)));
    assert_eq!(fill.last_px, Some(Price::parse("65.30").unwrap()));
    assert_eq!(fill.cum_qty, Qty(400));
    assert_eq!(fill.leaves_qty, Qty(800));
    assert_eq!(fill.parties.counterparty_broker.map(|b| b.0), Some(1002));
    beta.expect_er(OcgExecType::Trade).await;

    // Cancel/replace: 65.30 x 800 left of 1200 -> 65.25, total 1200 (800 left).
    fx.send(replace("F2", "F1", OrderSide::Buy, "65.25", 1200))
        .await;
    let (amended, _) = fx.expect_er(ExecType::Replaced).await;
    assert_eq!(amended.cl_ord_id.unwrap().as_str(), "F2");
    assert_eq!(amended.orig_cl_ord_id.unwrap().as_str(), "F1");
    // A price change loses time priority: the engine gives the order a new id (as on binary).
    assert_ne!(amended.order_id, f1_order);
    assert_eq!(amended.price, Some(Price::parse("65.25").unwrap()));

    // A cancel for an unknown order: OrderCancelReject (35=9).
    fx.send(cancel("F3", "NOPE", OrderSide::Buy)).await;
    let rej = fx
        .expect("OrderCancelReject", |m| {
            (m.message.msg_type == "9")
                .then(|| OrderCancelReject::from_message(&m.message).unwrap())
        })
        .await;
    assert_eq!(rej.cl_ord_id.as_str(), "F3");

    // Cancel the replaced order.
    fx.send(cancel("F4", "F2", OrderSide::Buy)).await;
    let (cancelled, _) = fx.expect_er(ExecType::Cancelled).await;
    assert_eq!(cancelled.order_id, amended.order_id);
    assert_eq!(cancelled.cl_ord_id.unwrap().as_str(), "F4");

    // A resting order, then the connection drops; Beta fills it while FIX is away.
    fx.send(limit("F5", OrderSide::Buy, "65.25", 400)).await;
    fx.expect_er(ExecType::New).await;
    let state = fx.drop_connection();
    tokio::time::sleep(Duration::from_millis(200)).await;
    beta.send(new_order("B2", 1002, Side::Sell, "65.25", 400))
        .await;
    beta.expect_er(OcgExecType::Trade).await;

    // Back on: the fill generated while away is resent (PossDupFlag) on logon.
    let mut fx = FixClient::logon(fix_addr, "FX0001", state).await;
    let (fill, inbound) = fx.expect_er(ExecType::Trade).await;
    assert_eq!(fill.cl_ord_id.unwrap().as_str(), "F5");
    assert_eq!(fill.last_qty, Some(Qty(400)));
    assert!(
        inbound.poss_dup,
        "the missed fill comes as a resend (PossDupFlag=Y)"
    );

    // The session goes on after the resend, then logs out cleanly.
    fx.send(limit("F6", OrderSide::Sell, "65.50", 400)).await;
    fx.expect_er(ExecType::New).await;
    let state = fx.logout().await;
    assert!(state.next_inbound_seq > 1 && state.next_outbound_seq > 1);

    // The binary session of the same firm was never disturbed.
    alpha.send(cancel_binary("A2", "A1")).await;
    alpha.expect_er(OcgExecType::Cancel).await;
    site.shutdown();
}

fn cancel_binary(cl: &str, orig: &str) -> twinsite_ocg::Message {
    use twinsite_ocg::*;
    Message::CancelRequest(CancelRequest {
        cl_ord_id: Some(FixedStr::new(cl)),
        submitting_broker_id: Some(FixedStr::new("1001")),
        security_id: Some(FixedStr::new("5")),
        security_id_source: Some(8),
        security_exchange: None,
        broker_location_id: None,
        transact_time: None,
        side: Some(Side::Buy),
        orig_cl_ord_id: FixedStr::new(orig),
        order_id: None,
        text: None,
    })
}

#[tokio::test]
async fn fix_logon_refusals() {
    let site = start(fix_site_config(vec![
        fix_participant("Alpha", "FX0001", 1001),
        participant("Beta", "CO0002", 1002),
    ]))
    .await;
    let fix_addr = site.fix_gateway.unwrap();
    // A binary Comp ID cannot log on to the FIX gateway: the connection is dropped.
    let mut c = FixClient::connect(fix_addr, "CO0002", SessionState::new("CO0002", EXCHANGE)).await;
    let deadline = Instant::now() + T;
    while !c.closed && Instant::now() < deadline {
        c.read_some(Duration::from_millis(50)).await;
    }
    assert!(c.closed && !c.established);
    // A FIX Comp ID does not exist on the binary gateway.
    let mut r = Raw::connect(site.gateway_primary, "FX0001").await;
    r.send(logon_msg(PASSWORD, 1)).await;
    r.expect_silent_close().await;
    site.shutdown();
}

#[tokio::test]
async fn fix_logon_while_otp_c_logons_are_closed_is_refused_and_recorded() {
    let site = start(fix_site_config(vec![fix_participant(
        "Alpha", "FX0001", 1001,
    )]))
    .await;
    let mut rx = site.subscribe();
    let fix_addr = site.fix_gateway.unwrap();
    // The FIX gateway is OTP-C's: closing OTP-CSC does not touch it, closing OTP-C does.
    site.admin(gateway::AdminCmd::LogonsAllowedOn {
        platform: twinsite_core::Platform::OtpCsc,
        allowed: false,
    });
    site.admin(gateway::AdminCmd::LogonsAllowedOn {
        platform: twinsite_core::Platform::OtpC,
        allowed: false,
    });
    let mut c = FixClient::connect(fix_addr, "FX0001", SessionState::new("FX0001", EXCHANGE)).await;
    let deadline = Instant::now() + T;
    while !c.closed && Instant::now() < deadline {
        c.read_some(Duration::from_millis(50)).await;
    }
    assert!(c.closed && !c.established, "refused while closed");
    let reason = loop {
        match tokio::time::timeout(T, rx.recv()).await {
            Ok(Ok(Activity::Refused {
                comp_id: Some(comp),
                platform,
                reason,
                ..
            })) if comp.as_str() == "FX0001" => {
                assert_eq!(platform, twinsite_core::Platform::OtpC);
                break reason;
            }
            Ok(_) => {}
            Err(_) => panic!("no Refused activity"),
        }
    };
    assert!(reason.contains("Session Status 7"), "{reason}");
    site.admin(gateway::AdminCmd::LogonsAllowedOn {
        platform: twinsite_core::Platform::OtpC,
        allowed: true,
    });
    FixClient::logon(fix_addr, "FX0001", c.session.state().clone()).await;
    site.shutdown();
}

// ------------------------------------------------------------------------------- failover

fn cluster_config(name: &str) -> SiteConfig {
    let mut cfg = fix_site_config(vec![
        participant("Alpha", "CO0001", 1001),
        fix_participant("Beta", "FX0002", 1002),
    ]);
    cfg.site.name = name.into();
    cfg.site.active = false;
    cfg
}

#[tokio::test]
async fn fix_session_continues_at_the_backup_after_a_scheduled_failover() {
    let mut c = cluster(cluster_config).await;
    let primary = c.primary.as_ref().unwrap();

    // Trade at the primary: a FIX order rests, a binary order fills part of it.
    let mut fx = FixClient::logon(
        primary.fix_gateway.unwrap(),
        "FX0002",
        SessionState::new("FX0002", EXCHANGE),
    )
    .await;
    let mut alpha = Raw::logon(primary.gateway_primary, "CO0001").await;
    fx.send(limit("P1", OrderSide::Sell, "65.30", 1200)).await;
    let (new, _) = fx.expect_er(ExecType::New).await;
    alpha
        .send(new_order("A1", 1001, Side::Buy, "65.30", 400))
        .await;
    alpha.expect_er(OcgExecType::Trade).await;
    fx.expect_er(ExecType::Trade).await;

    // Scheduled failover: leadership moves to the backup node.
    c.fail_over(false).await;
    let state = fx.drop_connection();
    assert!(state.next_outbound_seq > 1);

    // At the backup, the binary participant fills more of the FIX order while FIX is away.
    let mut alpha = Raw::logon_with(
        c.backup.gateway_primary,
        "CO0001",
        alpha.seq,
        alpha.last_in + 1,
    )
    .await
    .0;
    alpha
        .send(new_order("A2", 1001, Side::Buy, "65.30", 400))
        .await;
    alpha.expect_er(OcgExecType::Trade).await;

    // The FIX participant continues its session at the backup with the same numbers: no
    // sequence reset, and the fill it missed is resent.
    let mut fx = FixClient::logon(c.backup.fix_gateway.unwrap(), "FX0002", state).await;
    let (fill, inbound) = fx.expect_er(ExecType::Trade).await;
    assert_eq!(fill.order_id, new.order_id);
    assert_eq!(fill.last_qty, Some(Qty(400)));
    assert_eq!(fill.cum_qty, Qty(800));
    assert!(inbound.poss_dup);
    fx.send(cancel("P2", "P1", OrderSide::Sell)).await;
    let (cancelled, _) = fx.expect_er(ExecType::Cancelled).await;
    assert_eq!(cancelled.cum_qty, Qty(800));
    fx.logout().await;
    c.shutdown().await;
}
