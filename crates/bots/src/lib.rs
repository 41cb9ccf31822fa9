//! twinsite-bots: reference participants for practice sessions.
//!
//! Each bot is a tokio task driving an OCG-C client ([`twinsite_site::client::ClientHandle`]:
//! lookup ladder, reconnect ladder, logon replay) with a stop handle and counters:
//!
//! * [`Role::MarketMaker`] rests two-sided limit orders (one lot a tick either side of the
//!   previous close) on a few securities and re-quotes what is filled;
//! * [`Role::Taker`] crosses the spread with immediate-or-cancel orders.
//!
//! Deliberately faulty behaviours ([`Fault`]) let a drill check that scorecards fail for the
//! right reason:
//!
//! * [`Fault::NoLookupAfterFailover`]: caches the first Lookup Service answer and never asks
//!   again, so after the failover it keeps knocking on the old site's gateways;
//! * [`Fault::FreshSequenceAfterFailover`]: when its session is lost it restarts its client with
//!   fresh session state, so it logs on with sequence number 1.
//!
//! [`vendor`]: the information-vendor bot (OMD-C / OMD-CC through the reference feed handler,
//! gaps recovered through the RTS, the DR signal followed to the backup site) and its faulty
//! twin that ignores the DR signal.

pub mod fix;
pub mod strategy;
pub mod vendor;
pub use strategy::{OrderIntent, Strategy};
pub use twinsite_drill::registry::Protocol;
pub use vendor::{spawn_vendor, VendorConfig, VendorCounters, VendorFault, VendorHandle};

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch, Mutex};
use tokio::task::JoinHandle;
use twinsite_core::{CompId, Price, Timestamp};
use twinsite_engine::refdata::{self, SpreadTable};
use twinsite_ocg::client::{ClientConfig, ClientState};
use twinsite_ocg::frame::FrameDecoder;
use twinsite_ocg::{ExecType, LookupStatus, Message, OrdStatus};
use twinsite_site::client::{ClientEvent, ClientHandle};
use twinsite_site::gateway::wall_clock;

/// What a bot does when it is logged on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Rests a bid and an offer on each instrument; re-quotes what trades.
    MarketMaker,
    /// Crosses the spread (immediate-or-cancel; a Day limit order for an A-share, since
    /// northbound orders are limit orders only), alternating buys and sells.
    Taker,
}

/// A deliberate deviation from the client rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Follows the rules.
    None,
    /// Never re-does the lookup: reuses the first Lookup Service answer for ever.
    NoLookupAfterFailover,
    /// Loses its session state when its session drops and logs on again with sequence 1.
    FreshSequenceAfterFailover,
}

/// An instrument a bot trades: its quotes a tick either side of the reference price.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Instrument {
    pub code: u32,
    pub bid: Price,
    pub ask: Price,
    pub lot: u64,
    /// A China Connect A-share (SSE / SZSE, traded on OTP-CSC): the order carries no
    /// SecurityExchange (an OTP-C order says "XHKG").
    pub a_share: bool,
}

/// The first `n` Main Board Part A securities of the shipped reference data, quoted a tick
/// either side of the previous close.
pub fn default_instruments(n: usize) -> Vec<Instrument> {
    refdata::sample()
        .into_iter()
        .filter(|s| {
            s.spread_table == SpreadTable::PartA && s.segment == twinsite_core::MarketSegment::Main
        })
        .filter_map(|s| {
            Some(Instrument {
                code: s.code.0,
                bid: s.spread_table.down(s.prev_close)?,
                ask: s.spread_table.up(s.prev_close)?,
                lot: s.lot_size,
                a_share: false,
            })
        })
        .take(n)
        .collect()
}

/// The first `n` northbound-tradable A-shares (SSE / SZSE main board and ChiNext; not STAR,
/// whose buys start at 200 shares, nor risk-alert stocks, which are sell-only) of the shipped
/// reference data, quoted one RMB 0.01 tick either side of the previous close: limit prices on
/// the tick and inside the daily price limits, in board lots of 100 shares.
pub fn a_share_instruments(n: usize) -> Vec<Instrument> {
    use twinsite_engine::china::{price_limits, Board};
    let tick = twinsite_core::limits::CC_TICK;
    refdata::sample()
        .into_iter()
        .filter(|s| {
            matches!(
                s.segment,
                twinsite_core::MarketSegment::Sse | twinsite_core::MarketSegment::Szse
            ) && matches!(Board::of(s), Board::Main | Board::ChiNext)
        })
        .filter_map(|s| {
            let board = Board::of(&s);
            let (lower, upper) =
                price_limits(s.prev_close, s.price_limit_bps.unwrap_or(board.limit_bps()));
            // The previous close on the tick (reference data may be finer), then a tick
            // either side, kept inside the limits.
            let mid = s.prev_close.0 - s.prev_close.0.rem_euclid(tick);
            let bid = Price(mid - tick);
            let ask = Price(mid + tick);
            (bid >= lower && ask <= upper && bid.0 > 0).then_some(Instrument {
                code: s.code.0,
                bid,
                ask,
                lot: twinsite_core::limits::CC_BUY_LOT,
                a_share: true,
            })
        })
        .take(n)
        .collect()
}

#[derive(Debug, Clone)]
pub struct BotConfig {
    /// Name in logs.
    pub name: String,
    pub client: ClientConfig,
    pub broker_id: u32,
    pub role: Role,
    pub fault: Fault,
    pub instruments: Vec<Instrument>,
    /// Pause between order actions (wall time).
    pub interval: Duration,
    /// Most open orders per instrument and side (market maker).
    pub max_open_per_side: usize,
    /// Shares it may sell, per A-share (a CCEP's holdings as configured at the exchange,
    /// `[engine] cc_holdings`): northbound sells must be covered, so the bot sells an A-share
    /// only while its unreserved holding covers a lot and skips the sell otherwise. Shares
    /// bought today are not added (they settle T+1). Not used for Hong Kong securities.
    pub holdings: BTreeMap<u32, u64>,
    /// Order entry over OCG-C binary (the `client` drives it) or FIX (the [`fix`] runtime,
    /// with the same credentials, lookup endpoints and ladder timers from `client`).
    pub protocol: Protocol,
}

impl BotConfig {
    /// A bot with the reference client timers compressed `speed` times (never below 50 ms), a
    /// heartbeat matching the site's, and three instruments.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        name: &str,
        comp_id: &str,
        password: &str,
        broker_id: u32,
        public_key: rsa::RsaPublicKey,
        lookup_endpoints: Vec<SocketAddr>,
        role: Role,
    ) -> anyhow::Result<BotConfig> {
        let comp = CompId::new(comp_id).map_err(|e| anyhow::anyhow!("{name}: {e}"))?;
        anyhow::ensure!(
            lookup_endpoints.len() == twinsite_core::limits::OCG_LOOKUP_ENDPOINTS,
            "{name}: give the four Lookup Service endpoints"
        );
        let mut client = ClientConfig::new(comp, password, public_key, lookup_endpoints);
        client.rng_seed = u64::from(broker_id);
        Ok(BotConfig {
            name: name.into(),
            client,
            broker_id,
            role,
            fault: Fault::None,
            instruments: default_instruments(3),
            interval: Duration::from_millis(200),
            max_open_per_side: 2,
            holdings: BTreeMap::new(),
            protocol: Protocol::Binary,
        })
        .map(|c| c.with_speed(1, Duration::from_secs(20)))
    }

    /// A bot for a registered firm: its first binary Comp ID, password and broker id, the
    /// public key of the exchange and the four Lookup Service endpoints.
    pub fn from_registration(
        reg: &twinsite_drill::Registration,
        public_key: rsa::RsaPublicKey,
        lookup_endpoints: Vec<SocketAddr>,
        role: Role,
    ) -> anyhow::Result<BotConfig> {
        BotConfig::from_registration_for(reg, Protocol::Binary, public_key, lookup_endpoints, role)
    }

    /// A bot for a registered firm's Comp ID of `protocol` (binary or FIX): its password and
    /// first broker id, the exchange's public key and the four Lookup Service endpoints (a FIX
    /// bot asks them with Protocol Type 2).
    pub fn from_registration_for(
        reg: &twinsite_drill::Registration,
        protocol: Protocol,
        public_key: rsa::RsaPublicKey,
        lookup_endpoints: Vec<SocketAddr>,
        role: Role,
    ) -> anyhow::Result<BotConfig> {
        let c = reg.grant(protocol).ok_or_else(|| {
            anyhow::anyhow!(
                "{}: no {} Comp ID (registered for another protocol, or an information vendor?)",
                reg.firm,
                protocol.name()
            )
        })?;
        let broker = *reg
            .broker_ids
            .first()
            .ok_or_else(|| anyhow::anyhow!("{}: no broker id", reg.firm))?;
        Ok(BotConfig::new(
            &reg.firm,
            &c.comp_id,
            &c.password,
            broker,
            public_key,
            lookup_endpoints,
            role,
        )?
        .with_protocol(protocol))
    }

    /// Enter orders over this protocol (the Comp ID must be one of that protocol).
    pub fn with_protocol(mut self, protocol: Protocol) -> BotConfig {
        self.protocol = protocol;
        self
    }

    /// Compress the client's protocol timers with the schedule; `heartbeat` is the site's
    /// heartbeat interval (wall time).
    pub fn with_speed(mut self, speed: u64, heartbeat: Duration) -> BotConfig {
        let speed = speed.max(1);
        let s = |secs: u64| (secs * 1_000_000_000 / speed).max(50_000_000);
        let c = &mut self.client;
        c.lookup_backoff_ns = s(twinsite_core::limits::OCG_LOOKUP_BACKOFF_SECS);
        c.reconnect_wait_ns = s(twinsite_core::limits::OCG_RECONNECT_WAIT_SECS);
        c.lookup_response_timeout_ns = s(10).max(1_000_000_000);
        // Never below 5 s: the exchange answers a logon once the logon is replicated, which on
        // a loaded machine can take well over a second (the timer only matters when no answer
        // comes at all).
        c.logon_reply_timeout_ns = s(60).max(5_000_000_000);
        c.logon_retry_wait_ns = s(60);
        c.logout_reply_timeout_ns = s(60).max(500_000_000);
        c.timers.heartbeat_interval_ns = heartbeat.as_nanos() as u64;
        self
    }

    pub fn with_fault(mut self, fault: Fault) -> BotConfig {
        self.fault = fault;
        self
    }

    pub fn with_interval(mut self, interval: Duration) -> BotConfig {
        self.interval = interval;
        self
    }

    pub fn with_instruments(mut self, instruments: Vec<Instrument>) -> BotConfig {
        self.instruments = instruments;
        self
    }

    /// A CCEP bot: trades `instruments` (A-shares, see [`a_share_instruments`]) and sells only
    /// against `holdings` (security code -> shares). The lookup endpoints given must be the
    /// four OTP-CSC lookup endpoints (primary site primary/mirror, backup site primary/mirror).
    pub fn china_connect(
        mut self,
        instruments: Vec<Instrument>,
        holdings: BTreeMap<u32, u64>,
    ) -> BotConfig {
        self.instruments = instruments;
        self.holdings = holdings;
        self
    }
}

/// What a bot has done so far (as the bot saw it; scorecards never use these).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Counters {
    pub logons: u64,
    pub sessions_lost: u64,
    pub lookup_connects: u64,
    pub trading_connects: u64,
    pub orders_sent: u64,
    pub acks: u64,
    pub fills: u64,
    pub rejects: u64,
    /// Client restarts with fresh session state (the sequence-1 fault).
    pub fresh_restarts: u64,
    pub logged_on: bool,
    pub stopped: Option<String>,
    /// Wall time of the last logon.
    pub last_logon: Option<Timestamp>,
    /// The gateway the client connected to last.
    pub last_gateway: Option<SocketAddr>,
}

pub(crate) enum Cmd {
    DropConnection,
    Stop,
}

/// A running bot.
pub struct BotHandle {
    pub name: String,
    cmd: mpsc::UnboundedSender<Cmd>,
    counters: watch::Receiver<Counters>,
    task: JoinHandle<()>,
    proxy: Option<JoinHandle<()>>,
}

impl BotHandle {
    /// The counters now.
    pub fn counters(&self) -> Counters {
        self.counters.borrow().clone()
    }

    /// Wait (bounded) until the counters satisfy `f`; returns them, or an error with the last
    /// values on timeout.
    pub async fn wait_until(
        &self,
        timeout: Duration,
        mut f: impl FnMut(&Counters) -> bool,
    ) -> Result<Counters, String> {
        let mut rx = self.counters.clone();
        let r = tokio::time::timeout(timeout, rx.wait_for(|c| f(c))).await;
        match r {
            Ok(Ok(c)) => Ok(c.clone()),
            _ => Err(format!(
                "{}: timed out after {timeout:?}; counters {:?}",
                self.name,
                self.counters()
            )),
        }
    }

    /// Break the TCP connection without a logout (a network failure); the client recovers by
    /// its rules (or its fault).
    pub fn drop_connection(&self) {
        let _ = self.cmd.send(Cmd::DropConnection);
    }

    /// Log out in good order (bounded) and end the task; returns the final counters.
    pub async fn stop(self) -> Counters {
        let _ = self.cmd.send(Cmd::Stop);
        let mut task = self.task;
        if tokio::time::timeout(Duration::from_secs(5), &mut task)
            .await
            .is_err()
        {
            task.abort();
        }
        if let Some(p) = self.proxy {
            p.abort();
        }
        let c = self.counters.borrow().clone();
        c
    }

    /// End the task at once (no logout).
    pub fn abort(self) {
        self.task.abort();
        if let Some(p) = self.proxy {
            p.abort();
        }
    }
}

/// Start a bot.
pub async fn spawn(config: BotConfig) -> anyhow::Result<BotHandle> {
    let mut config = config;
    let mut proxy = None;
    if config.fault == Fault::NoLookupAfterFailover {
        let (addr, task) = caching_lookup(config.client.lookup_endpoints.clone()).await?;
        config.client.lookup_endpoints = vec![addr; config.client.lookup_endpoints.len()];
        proxy = Some(task);
    }
    let (cmd_tx, cmd_rx) = mpsc::unbounded_channel();
    let (c_tx, c_rx) = watch::channel(Counters::default());
    let name = config.name.clone();
    let task = match config.protocol {
        Protocol::Binary => tokio::spawn(run(config, cmd_rx, c_tx)),
        Protocol::Fix => tokio::spawn(fix::run(config, cmd_rx, c_tx)),
    };
    Ok(BotHandle {
        name,
        cmd: cmd_tx,
        counters: c_rx,
        task,
        proxy,
    })
}

struct Bot {
    cfg: BotConfig,
    counters: watch::Sender<Counters>,
    strategy: Strategy,
}

impl Bot {
    fn bump(&self, f: impl FnOnce(&mut Counters)) {
        self.counters.send_modify(f);
    }

    fn on_event(&mut self, e: &ClientEvent) {
        match e {
            ClientEvent::Connecting { endpoint, lookup } => self.bump(|c| {
                if *lookup {
                    c.lookup_connects += 1;
                } else {
                    c.trading_connects += 1;
                    c.last_gateway = Some(*endpoint);
                }
            }),
            ClientEvent::LoggedOn { .. } => self.bump(|c| {
                c.logons += 1;
                c.logged_on = true;
                c.last_logon = Some(wall_clock());
            }),
            ClientEvent::SessionLost => self.bump(|c| {
                c.sessions_lost += 1;
                c.logged_on = false;
            }),
            ClientEvent::Stopped(r) => self.bump(|c| {
                c.logged_on = false;
                c.stopped = Some(r.clone());
            }),
            ClientEvent::Message { message, .. } => match message.as_ref() {
                Message::ExecutionReport(er) => {
                    let cl = er.cl_ord_id.as_ref().map(|c| c.as_str().to_string());
                    match er.exec_type {
                        Some(ExecType::New) => self.bump(|c| c.acks += 1),
                        Some(ExecType::Trade) => self.bump(|c| c.fills += 1),
                        Some(ExecType::Reject) => self.bump(|c| c.rejects += 1),
                        _ => {}
                    }
                    let done = matches!(
                        er.ord_status,
                        Some(
                            OrdStatus::Filled
                                | OrdStatus::Cancelled
                                | OrdStatus::Rejected
                                | OrdStatus::Expired
                        )
                    );
                    if done {
                        if let Some(cl) = cl {
                            // Done: what was not filled (by its cumulative quantity) is
                            // sellable again.
                            let filled =
                                er.cum_qty.and_then(|q| q.to_qty().ok()).map_or(0, |q| q.0);
                            self.strategy.done(
                                &cl,
                                er.ord_status == Some(OrdStatus::Filled),
                                filled,
                            );
                        }
                    }
                }
                Message::BusinessMessageReject(_) | Message::Reject(_) => {
                    self.bump(|c| c.rejects += 1)
                }
                _ => {}
            },
        }
    }
}

async fn run(
    cfg: BotConfig,
    mut cmd: mpsc::UnboundedReceiver<Cmd>,
    counters: watch::Sender<Counters>,
) {
    let mut client = ClientHandle::spawn(cfg.client.clone(), ClientState::default());
    let mut ticker = tokio::time::interval(cfg.interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut bot = Bot {
        strategy: Strategy::new(&cfg),
        cfg,
        counters,
    };
    let mut logged_on = false;
    loop {
        tokio::select! {
            c = cmd.recv() => match c {
                Some(Cmd::DropConnection) => client.drop_connection(),
                Some(Cmd::Stop) | None => {
                    if logged_on {
                        client.logout();
                        let _ = client
                            .wait_for(Duration::from_secs(3), |e| {
                                matches!(e, ClientEvent::Stopped(_)).then_some(())
                            })
                            .await;
                    }
                    client.abort();
                    bot.bump(|c| c.logged_on = false);
                    return;
                }
            },
            e = client.events.recv() => {
                let Some(e) = e else { return };
                bot.on_event(&e);
                match e {
                    ClientEvent::LoggedOn { .. } => logged_on = true,
                    ClientEvent::SessionLost | ClientEvent::Stopped(_) => {
                        logged_on = false;
                        if bot.cfg.fault == Fault::FreshSequenceAfterFailover {
                            // The fault: a restart that loses the session's sequence numbers.
                            tracing::info!(bot = %bot.cfg.name, "restarting with fresh session state (fault)");
                            let old = std::mem::replace(
                                &mut client,
                                ClientHandle::spawn(bot.cfg.client.clone(), ClientState::default()),
                            );
                            old.abort();
                            bot.strategy.clear_open();
                            bot.bump(|c| c.fresh_restarts += 1);
                        }
                    }
                    _ => {}
                }
            },
            _ = ticker.tick(), if logged_on => {
                if let Some((cl, intent)) = bot.strategy.next_order() {
                    match client.send(intent.to_ocg(&cl, bot.cfg.broker_id)).await {
                        Ok(_) => {
                            bot.strategy.sent(cl, &intent);
                            bot.bump(|c| c.orders_sent += 1);
                        }
                        Err(e) => {
                            bot.strategy.send_failed(&cl);
                            tracing::warn!(bot = %bot.cfg.name, error = %e, "send failed")
                        }
                    }
                }
            },
        }
    }
}

/// A Lookup Service "proxy" that asks the real endpoints once and then answers every later
/// lookup from its cache: the behaviour of a client that never re-does the lookup.
async fn caching_lookup(real: Vec<SocketAddr>) -> anyhow::Result<(SocketAddr, JoinHandle<()>)> {
    let l = TcpListener::bind("127.0.0.1:0").await?;
    let addr = l.local_addr()?;
    let cache: Arc<Mutex<Option<Vec<u8>>>> = Arc::new(Mutex::new(None));
    let task = tokio::spawn(async move {
        loop {
            let Ok((mut s, _)) = l.accept().await else {
                continue;
            };
            let cache = cache.clone();
            let real = real.clone();
            tokio::spawn(async move {
                let Some(req) = read_frame(&mut s).await else {
                    return;
                };
                let cached = cache.lock().await.clone();
                let reply = match cached {
                    Some(r) => Some(r),
                    None => {
                        let mut got = None;
                        for ep in &real {
                            if let Some(r) = ask(*ep, &req).await {
                                let accepted = matches!(
                                    twinsite_ocg::decode_one(&r),
                                    Ok((_, Message::LookupResponse(x))) if x.status == LookupStatus::Accepted
                                );
                                if accepted {
                                    *cache.lock().await = Some(r.clone());
                                }
                                got = Some(r);
                                break;
                            }
                        }
                        got
                    }
                };
                if let Some(r) = reply {
                    let _ = s.write_all(&r).await;
                    let mut b = [0u8; 64];
                    let _ = tokio::time::timeout(Duration::from_secs(2), s.read(&mut b)).await;
                }
            });
        }
    });
    Ok((addr, task))
}

async fn ask(ep: SocketAddr, req: &[u8]) -> Option<Vec<u8>> {
    let mut s = tokio::time::timeout(Duration::from_secs(2), TcpStream::connect(ep))
        .await
        .ok()?
        .ok()?;
    s.write_all(req).await.ok()?;
    read_frame(&mut s).await
}

/// Read one whole OCG-C frame (bounded), returning its bytes.
async fn read_frame(s: &mut TcpStream) -> Option<Vec<u8>> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 1024];
    loop {
        let mut d = FrameDecoder::default();
        d.feed(&buf);
        if let Ok(Some(_)) = d.next_frame() {
            return Some(buf);
        }
        let n = tokio::time::timeout(Duration::from_secs(5), s.read(&mut chunk))
            .await
            .ok()?
            .ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use twinsite_engine::china::{price_limits, Board};

    #[test]
    fn a_share_quotes_follow_the_northbound_rules() {
        let ins = a_share_instruments(10);
        assert!(!ins.is_empty(), "the sample reference data has A-shares");
        for i in &ins {
            let s = refdata::sample()
                .into_iter()
                .find(|s| s.code.0 == i.code)
                .unwrap();
            assert!(matches!(
                s.segment,
                twinsite_core::MarketSegment::Sse | twinsite_core::MarketSegment::Szse
            ));
            assert!(matches!(Board::of(&s), Board::Main | Board::ChiNext));
            let (lo, hi) = price_limits(
                s.prev_close,
                s.price_limit_bps.unwrap_or(Board::of(&s).limit_bps()),
            );
            for p in [i.bid, i.ask] {
                assert_eq!(p.0 % twinsite_core::limits::CC_TICK, 0, "{p:?} on the tick");
                assert!(p >= lo && p <= hi, "{p:?} within the daily limits");
            }
            assert!(i.bid < i.ask);
            assert_eq!(i.lot, 100);
            assert!(i.a_share);
        }
        assert!(default_instruments(3).iter().all(|i| !i.a_share));
    }
}
