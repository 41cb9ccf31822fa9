//! A bot's FIX transport: the same strategy ([`crate::strategy`]) entering its orders as FIX
//! 5.0 SP2 NewOrderSingles over a FIXT.1.1 session, driven by the sans-IO initiator of
//! `twinsite_fix` ([`Session::initiator`]), following the client rules of the reference:
//!
//! * **Lookup ladder** (§3.1): a Lookup Request with the FIX Comp ID in the header and
//!   Protocol Type 2 (FIX; INFERRED, see `docs/drill.md`) to the four Lookup Service endpoints
//!   strictly in order, cycling, with the lookup back-off after every failure or reject. The
//!   answer names the FIX gateway (primary and secondary).
//! * **Reconnect** (§3.2): after an unexpected disconnect, wait the reconnect delay and try the
//!   same primary gateway, then the secondary; only when both fail go back to the lookup (which
//!   after a site failover is answered by the backup site).
//! * **Sequence numbers** (§3.3): one [`SessionState`] for the whole day, kept across
//!   connections and sites: a Logon carries the next MsgSeqNum and NextExpectedMsgSeqNum (789),
//!   never ResetSeqNumFlag (141). The exchange replays what the bot missed (PossDupFlag=Y, admin
//!   messages as SequenceReset-GapFill); a gap the replay leaves (or any later gap) is asked for
//!   with a ResendRequest, and a ResendRequest from the exchange (the bot's own messages the
//!   backup never committed) is answered from the stored messages with PossDupFlag=Y: the
//!   session layer does both.
//!
//! [`crate::Fault::FreshSequenceAfterFailover`] drops the session state when a session is lost, so
//! the bot logs on with MsgSeqNum 1 without ResetSeqNumFlag (refused: too low);
//! [`crate::Fault::NoLookupAfterFailover`] works as for the binary bot (a caching lookup proxy).

use std::net::SocketAddr;
use std::time::Duration;

use rand_chacha::rand_core::SeedableRng;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, watch};
use twinsite_core::{ClOrdId, SecurityCode};
use twinsite_fix::app::{
    ExecType, ExecutionReport, NewOrderSingle, OrdStatus, OrderCapacity, OrderSide, OrderTerms,
    Parties, TimeInForce,
};
use twinsite_fix::password::{Padding, RsaCredentials};
use twinsite_fix::session::{Action, Inbound};
use twinsite_fix::{Message as FixMessage, Session, SessionConfig, SessionState};
use twinsite_ocg::{FixedStr, LookupRequest, LookupStatus, Message, Side};
use twinsite_site::gateway::wall_clock;

use crate::strategy::{OrderIntent, Strategy};
use crate::{BotConfig, Cmd, Counters, Fault};

/// Lookup Request Protocol Type for FIX.
pub use twinsite_ocg::LOOKUP_PROTOCOL_FIX;
/// The exchange's CompID (TargetCompID of the bot's messages).
pub use twinsite_site::fix_gateway::EXCHANGE_COMP_ID;

/// How long a TCP connect may take before the attempt counts as failed.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

impl OrderIntent {
    /// The FIX NewOrderSingle for it (OTP-C: SecurityExchange XHKG, the broker as Executing
    /// Firm).
    pub fn to_fix(&self, cl: &str, broker_id: u32) -> Option<FixMessage> {
        let side = match self.side {
            Side::Buy => OrderSide::Buy,
            Side::Sell => OrderSide::Sell,
            Side::SellShort => OrderSide::SellShort,
        };
        let mut terms = OrderTerms::limit(
            SecurityCode(self.code),
            side,
            self.price,
            self.qty,
            wall_clock(),
        );
        terms.time_in_force = match self.tif {
            twinsite_ocg::TimeInForce::ImmediateOrCancel => TimeInForce::ImmediateOrCancel,
            twinsite_ocg::TimeInForce::FillOrKill => TimeInForce::FillOrKill,
            _ => TimeInForce::Day,
        };
        terms.parties = Parties {
            submitting_broker: Some(twinsite_core::BrokerId(broker_id)),
            bcan: Some("1".into()),
            ..Parties::default()
        };
        terms.max_price_levels = Some(1);
        terms.order_capacity = Some(OrderCapacity::Agency);
        Some(
            NewOrderSingle {
                cl_ord_id: ClOrdId::new(cl).ok()?,
                terms,
            }
            .to_message(),
        )
    }
}

enum Outcome {
    /// Told to stop (logged out, or never logged on).
    Stop,
    /// No session: the connection or the logon failed.
    Failed,
    /// A live session ended.
    Lost,
}

struct FixBot {
    cfg: BotConfig,
    cmd: mpsc::UnboundedReceiver<Cmd>,
    counters: watch::Sender<Counters>,
    strategy: Strategy,
    /// The day's session: sequence numbers and the messages a resend may need.
    state: SessionState,
    attempts: u64,
    /// [`Fault::FreshSequenceAfterFailover`] after its first lost session.
    amnesiac: bool,
}

fn nanos(ns: u64) -> Duration {
    Duration::from_nanos(ns)
}

fn secs_at_least_one(ns: u64) -> u64 {
    ns.div_ceil(1_000_000_000).max(1)
}

/// Start a FIX bot's task body (see [`crate::spawn`]).
pub(crate) async fn run(
    cfg: BotConfig,
    cmd: mpsc::UnboundedReceiver<Cmd>,
    counters: watch::Sender<Counters>,
) {
    let state = SessionState::new(cfg.client.comp_id.as_str(), EXCHANGE_COMP_ID);
    let mut bot = FixBot {
        strategy: Strategy::new(&cfg),
        cfg,
        cmd,
        counters,
        state,
        attempts: 0,
        amnesiac: false,
    };
    bot.main().await;
    bot.bump(|c| c.logged_on = false);
}

impl FixBot {
    fn bump(&self, f: impl FnOnce(&mut Counters)) {
        self.counters.send_modify(f);
    }

    /// Wait `d` unless told to stop (true) meanwhile; a request to drop the connection while
    /// there is none is ignored.
    async fn pause(&mut self, d: Duration) -> bool {
        let sleep = tokio::time::sleep(d);
        tokio::pin!(sleep);
        loop {
            tokio::select! {
                _ = &mut sleep => return false,
                c = self.cmd.recv() => match c {
                    Some(Cmd::DropConnection) => {}
                    Some(Cmd::Stop) | None => return true,
                },
            }
        }
    }

    async fn main(&mut self) {
        loop {
            let Some((primary, secondary)) = self.lookup_ladder().await else {
                self.bump(|c| c.stopped = Some("stopped".into()));
                return;
            };
            // Primary, then secondary; after a lost session the same again (after the
            // reconnect delay); both failing sends the bot back to the lookup.
            loop {
                let mut lost = false;
                for (i, gw) in [primary, secondary].into_iter().enumerate() {
                    if i > 0 && gw == primary {
                        continue; // one gateway handed out twice
                    }
                    match self.connect_and_run(gw).await {
                        Outcome::Stop => {
                            self.bump(|c| c.stopped = Some("stopped".into()));
                            return;
                        }
                        Outcome::Lost => {
                            lost = true;
                            break;
                        }
                        Outcome::Failed => {
                            if self.pause(nanos(self.cfg.client.reconnect_wait_ns)).await {
                                self.bump(|c| c.stopped = Some("stopped".into()));
                                return;
                            }
                        }
                    }
                }
                if !lost {
                    break;
                }
                if self.pause(nanos(self.cfg.client.reconnect_wait_ns)).await {
                    self.bump(|c| c.stopped = Some("stopped".into()));
                    return;
                }
            }
        }
    }

    /// The four Lookup Service endpoints in order, cycling, until one answers with the FIX
    /// gateway; `None` when told to stop.
    async fn lookup_ladder(&mut self) -> Option<(SocketAddr, SocketAddr)> {
        let endpoints = self.cfg.client.lookup_endpoints.clone();
        let mut i = 0usize;
        loop {
            let ep = endpoints[i % endpoints.len()];
            i += 1;
            self.bump(|c| c.lookup_connects += 1);
            let wait = nanos(self.cfg.client.lookup_response_timeout_ns);
            let comp = self.cfg.client.comp_id.as_str().to_string();
            let answer = tokio::select! {
                a = tokio::time::timeout(wait, ask_lookup(ep, &comp)) => a.ok().flatten(),
                c = self.cmd.recv() => match c {
                    Some(Cmd::Stop) | None => return None,
                    Some(Cmd::DropConnection) => None,
                },
            };
            if let Some(gws) = answer {
                tracing::info!(bot = %self.cfg.name, lookup = %ep, gateway = %gws.0, "FIX lookup answered");
                return Some(gws);
            }
            if self.pause(nanos(self.cfg.client.lookup_backoff_ns)).await {
                return None;
            }
        }
    }

    fn session_config(&self) -> SessionConfig {
        let c = &self.cfg.client;
        let mut s = SessionConfig::initiator(c.comp_id.as_str(), EXCHANGE_COMP_ID);
        // FIX's HeartBtInt is whole seconds: the compressed heartbeat, at least 1 s.
        s.heartbeat_interval_secs = secs_at_least_one(c.timers.heartbeat_interval_ns);
        s.logon_timeout_secs = secs_at_least_one(c.logon_reply_timeout_ns);
        s.logout_timeout_secs = secs_at_least_one(c.logout_reply_timeout_ns);
        s
    }

    /// One connection to a FIX gateway: logon, trade until the session ends or the bot is told
    /// to stop.
    async fn connect_and_run(&mut self, gw: SocketAddr) -> Outcome {
        self.bump(|c| {
            c.trading_connects += 1;
            c.last_gateway = Some(gw);
        });
        let stream = tokio::select! {
            s = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(gw)) => match s {
                Ok(Ok(s)) => s,
                _ => return Outcome::Failed,
            },
            c = self.cmd.recv() => match c {
                Some(Cmd::Stop) | None => return Outcome::Stop,
                Some(Cmd::DropConnection) => return Outcome::Failed,
            },
        };
        let _ = stream.set_nodelay(true);
        let (mut rd, mut wr) = stream.into_split();
        self.attempts += 1;
        let mut creds = RsaCredentials {
            key: self.cfg.client.public_key.clone(),
            password: self.cfg.client.password.clone(),
            new_password: None,
            padding: Padding::Pkcs1v15,
            rng: rand_chacha::ChaCha20Rng::seed_from_u64(
                self.cfg.client.rng_seed ^ self.attempts.rotate_left(32),
            ),
        };
        let name = self.cfg.name.clone();
        let mut session = Session::initiator(
            self.session_config(),
            self.state.clone(),
            Box::new(move |now| match creds.logon_fields(now) {
                Ok(f) => f,
                Err(e) => {
                    tracing::warn!(bot = %name, error = %e, "password does not encrypt");
                    Vec::new()
                }
            }),
            wall_clock(),
        );
        let mut established = false;
        let mut ticker = tokio::time::interval(self.cfg.interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut buf = vec![0u8; 64 * 1024];
        let outcome = 'conn: loop {
            // Act on what the session wants done.
            while let Some(a) = session.poll_action() {
                match a {
                    Action::Send(bytes) => {
                        if wr.write_all(&bytes).await.is_err() {
                            session.handle_disconnect();
                            break 'conn self.ended(established, "write failed");
                        }
                    }
                    Action::Established => {
                        established = true;
                        let st = session.state();
                        tracing::info!(
                            bot = %self.cfg.name,
                            next_out = st.next_outbound_seq,
                            next_in = st.next_inbound_seq,
                            "FIX logon accepted"
                        );
                        self.bump(|c| {
                            c.logons += 1;
                            c.logged_on = true;
                            c.last_logon = Some(wall_clock());
                        });
                    }
                    Action::Deliver(m) => self.on_app(&m),
                    Action::Disconnect { reason } => {
                        tracing::info!(bot = %self.cfg.name, %reason, "FIX session closed");
                        session.handle_disconnect();
                        break 'conn self.ended(established, &reason.to_string());
                    }
                }
            }
            let timer = session
                .poll_timeout()
                .map(|t| Duration::from_nanos(t.0.saturating_sub(wall_clock().0)));
            tokio::select! {
                r = rd.read(&mut buf) => match r {
                    Ok(n) if n > 0 => session.handle_bytes(wall_clock(), &buf[..n]),
                    _ => {
                        session.handle_disconnect();
                        break 'conn self.ended(established, "connection closed by the exchange");
                    }
                },
                _ = tokio::time::sleep(timer.unwrap_or(Duration::from_secs(3600))), if timer.is_some() => {
                    session.handle_timeout(wall_clock());
                }
                _ = ticker.tick(), if established => self.send_order(&mut session),
                c = self.cmd.recv() => match c {
                    Some(Cmd::DropConnection) => {
                        session.handle_disconnect();
                        break 'conn self.ended(established, "connection dropped");
                    }
                    Some(Cmd::Stop) | None => {
                        if established {
                            self.logout(&mut session, &mut rd, &mut wr).await;
                        }
                        self.state = session.into_state();
                        return Outcome::Stop;
                    }
                },
            }
        };
        self.state = session.into_state();
        if self.cfg.fault == Fault::FreshSequenceAfterFailover {
            // The fault: a restart that loses the session's sequence numbers, and keeps losing
            // them (it never stores them), so every later logon says MsgSeqNum 1.
            let lost = matches!(outcome, Outcome::Lost);
            if lost || self.amnesiac {
                self.amnesiac = true;
                self.state = SessionState::new(self.cfg.client.comp_id.as_str(), EXCHANGE_COMP_ID);
                self.strategy.clear_open();
            }
            if lost {
                tracing::info!(bot = %self.cfg.name, "FIX session state lost (fault): next logon with MsgSeqNum 1");
                self.bump(|c| c.fresh_restarts += 1);
            }
        }
        outcome
    }

    fn ended(&mut self, established: bool, why: &str) -> Outcome {
        if established {
            tracing::info!(bot = %self.cfg.name, why, "FIX session lost");
            self.bump(|c| {
                c.sessions_lost += 1;
                c.logged_on = false;
            });
            Outcome::Lost
        } else {
            tracing::debug!(bot = %self.cfg.name, why, "FIX logon failed");
            Outcome::Failed
        }
    }

    /// Log out in good order: Logout, then wait (bounded) for the exchange's Logout.
    async fn logout(
        &mut self,
        session: &mut Session,
        rd: &mut tokio::net::tcp::OwnedReadHalf,
        wr: &mut tokio::net::tcp::OwnedWriteHalf,
    ) {
        session.logout(wall_clock(), "end of session");
        let deadline = tokio::time::Instant::now() + Duration::from_secs(3);
        let mut buf = vec![0u8; 16 * 1024];
        loop {
            while let Some(a) = session.poll_action() {
                match a {
                    Action::Send(b) => {
                        if wr.write_all(&b).await.is_err() {
                            return;
                        }
                    }
                    Action::Deliver(m) => self.on_app(&m),
                    Action::Disconnect { .. } => return,
                    Action::Established => {}
                }
            }
            match tokio::time::timeout_at(deadline, rd.read(&mut buf)).await {
                Ok(Ok(n)) if n > 0 => session.handle_bytes(wall_clock(), &buf[..n]),
                _ => {
                    session.handle_disconnect();
                    return;
                }
            }
        }
    }

    fn send_order(&mut self, session: &mut Session) {
        let Some((cl, intent)) = self.strategy.next_order() else {
            return;
        };
        let Some(msg) = intent.to_fix(&cl, self.cfg.broker_id) else {
            self.strategy.send_failed(&cl);
            return;
        };
        match session.send(wall_clock(), msg) {
            Ok(_) => {
                self.strategy.sent(cl, &intent);
                self.bump(|c| c.orders_sent += 1);
            }
            Err(e) => {
                self.strategy.send_failed(&cl);
                tracing::warn!(bot = %self.cfg.name, error = %e, "FIX send failed");
            }
        }
    }

    fn on_app(&mut self, m: &Inbound) {
        match m.message.msg_type.as_str() {
            "8" => {
                let Ok(er) = ExecutionReport::from_message(&m.message) else {
                    return;
                };
                match er.exec_type {
                    ExecType::New => self.bump(|c| c.acks += 1),
                    ExecType::Trade => self.bump(|c| c.fills += 1),
                    ExecType::Rejected => self.bump(|c| c.rejects += 1),
                    _ => {}
                }
                let done = matches!(
                    er.ord_status,
                    OrdStatus::Filled
                        | OrdStatus::Cancelled
                        | OrdStatus::Rejected
                        | OrdStatus::Expired
                );
                if let (true, Some(cl)) = (done, &er.cl_ord_id) {
                    self.strategy.done(
                        cl.as_str(),
                        er.ord_status == OrdStatus::Filled,
                        er.cum_qty.0,
                    );
                }
            }
            // OrderCancelReject, BusinessMessageReject, session Reject.
            "9" | "j" | "3" => self.bump(|c| c.rejects += 1),
            _ => {}
        }
    }
}

/// One Lookup Request for a FIX Comp ID (Protocol Type 2) at `ep`: the FIX gateway's primary
/// and secondary endpoints, or `None` (no answer, closed, rejected).
async fn ask_lookup(ep: SocketAddr, comp: &str) -> Option<(SocketAddr, SocketAddr)> {
    let req = LookupRequest {
        type_of_service: twinsite_ocg::LOOKUP_SERVICE_ORDER_INPUT,
        protocol_type: LOOKUP_PROTOCOL_FIX,
    };
    // Lookup messages always carry sequence number 1 and no session.
    let bytes = twinsite_ocg::encode(1, false, false, &FixedStr::new(comp), &req.into()).ok()?;
    let reply = crate::ask(ep, &bytes).await?;
    let Ok((_, Message::LookupResponse(r))) = twinsite_ocg::decode_one(&reply) else {
        return None;
    };
    if r.status != LookupStatus::Accepted {
        return None;
    }
    let addr = |ip: Option<FixedStr<16>>, port: Option<u16>| -> Option<SocketAddr> {
        Some(SocketAddr::new(ip?.as_str().parse().ok()?, port?))
    };
    let primary = addr(r.primary_ip, r.primary_port)?;
    let secondary = addr(r.secondary_ip, r.secondary_port).unwrap_or(primary);
    Some((primary, secondary))
}
