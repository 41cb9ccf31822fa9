//! The information-vendor bot: the reference feed handler ([`FeedClient`]) on a session's
//! OMD-C and OMD-CC multicast groups, gaps recovered by the retransmission service (RTS) and
//! the refresh channels, and the Disaster Recovery Signal followed to the backup site's RTS.
//!
//! A practice session cannot see a vendor's multicast: what the exchange observes is its use of
//! the RTS. So the bot behaves as a vendor testing its recovery would: every
//! [`VendorConfig::gap_every`] it drops one data packet of a real-time channel on both lines
//! (a simulated network loss, chosen by time, not at random), and its handler recovers it
//! through the RTS of the site it believes active. After the DR signal it also checks the
//! backup site's RTS on purpose (the last few messages of each channel, once its image is
//! rebuilt): a quiet backup site publishes no data packet the bot could lose, and the exchange
//! judges a vendor by its use of the backup site's RTS.
//!
//! [`VendorFault::IgnoreDrSignal`]: the vendor drops the DR channel, so it never learns that the
//! backup site took over and keeps asking the primary site's RTS (its image still rebuilds from
//! the refresh channels after the Sequence Reset, which the exchange cannot see).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use twinsite_omd::packet::PacketHeader;
use twinsite_site::config::MarketDataSection;
use twinsite_site::feed::{FeedClient, Received, Stream};

/// A deliberate deviation from the vendor rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VendorFault {
    None,
    /// Drops the DR channel: never switches to the backup site's RTS.
    IgnoreDrSignal,
}

#[derive(Debug, Clone)]
pub struct VendorConfig {
    /// Name in logs.
    pub name: String,
    /// RTS username: the vendor's participant id (e.g. `IV0005`).
    pub username: String,
    /// The groups to join and the interface (its `rts` field is not used).
    pub market_data: MarketDataSection,
    /// RTS endpoints: primary site, backup site.
    pub rts: Vec<SocketAddr>,
    pub fault: VendorFault,
    /// Drop one real-time data packet on both lines this often (None: no simulated loss).
    pub gap_every: Option<Duration>,
}

impl VendorConfig {
    pub fn new(
        name: &str,
        username: &str,
        market_data: MarketDataSection,
        rts: Vec<SocketAddr>,
    ) -> VendorConfig {
        VendorConfig {
            name: name.into(),
            username: username.into(),
            market_data,
            rts,
            fault: VendorFault::None,
            gap_every: Some(Duration::from_millis(1500)),
        }
    }

    pub fn with_fault(mut self, fault: VendorFault) -> VendorConfig {
        self.fault = fault;
        self
    }

    pub fn with_gap_every(mut self, every: Option<Duration>) -> VendorConfig {
        self.gap_every = every;
        self
    }
}

/// What the vendor's handler has seen (as the vendor saw it; scorecards never use these).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VendorCounters {
    pub received: u64,
    /// Packets dropped on purpose (simulated loss and, for the faulty vendor, the DR channel).
    pub dropped: u64,
    /// Handler events by kind: "gap", "retransmission", "retransmission complete",
    /// "refresh started", "refreshed", "reset", "dr", "problem".
    pub events: BTreeMap<String, u64>,
    /// Real-time channels live now (synchronised, no recovery running).
    pub live: Vec<u16>,
    /// Index into [`VendorConfig::rts`] of the RTS in use (0 primary, 1 backup).
    pub rts_site: usize,
    /// Wall time the vendor switched to the backup site's RTS.
    pub switched_at: Option<twinsite_core::Timestamp>,
    /// Real-time channels whose last messages the backup site's RTS retransmitted on the
    /// vendor's deliberate request after the DR signal (see [`spawn_vendor`]).
    pub backup_rts_checked: Vec<u16>,
    pub stopped: bool,
}

impl VendorCounters {
    pub fn event(&self, kind: &str) -> u64 {
        self.events.get(kind).copied().unwrap_or(0)
    }
}

/// A running vendor.
pub struct VendorHandle {
    pub name: String,
    stop: mpsc::UnboundedSender<()>,
    counters: watch::Receiver<VendorCounters>,
    task: JoinHandle<()>,
}

impl VendorHandle {
    pub fn counters(&self) -> VendorCounters {
        self.counters.borrow().clone()
    }

    /// Wait (bounded) until the counters satisfy `f`.
    pub async fn wait_until(
        &self,
        timeout: Duration,
        mut f: impl FnMut(&VendorCounters) -> bool,
    ) -> Result<VendorCounters, String> {
        let mut rx = self.counters.clone();
        let r = tokio::time::timeout(timeout, rx.wait_for(|c| f(c)))
            .await
            .map(|r| r.map(|c| c.clone()));
        match r {
            Ok(Ok(c)) => Ok(c),
            _ => Err(format!(
                "{}: timed out after {timeout:?}; counters {:?}",
                self.name,
                self.counters()
            )),
        }
    }

    /// Stop (bounded) and return the final counters.
    pub async fn stop(self) -> VendorCounters {
        let _ = self.stop.send(());
        let mut task = self.task;
        if tokio::time::timeout(Duration::from_secs(5), &mut task)
            .await
            .is_err()
        {
            task.abort();
        }
        let c = self.counters.borrow().clone();
        c
    }

    pub fn abort(self) {
        self.task.abort();
    }
}

/// Simulated loss: one data packet of a real-time channel, on both lines, every `every`.
struct GapMaker {
    every: Option<Duration>,
    next: tokio::time::Instant,
    /// The packet being dropped: channel and sequence number (its copy on the other line
    /// goes too).
    current: Option<(u16, u32)>,
    ignore_dr: bool,
}

impl GapMaker {
    fn drop(&mut self, r: &Received) -> bool {
        if r.stream == Stream::Dr {
            return self.ignore_dr;
        }
        if r.stream != Stream::RealTime {
            return false;
        }
        let Ok(h) = PacketHeader::decode(&r.bytes) else {
            return false;
        };
        if h.is_heartbeat() {
            return false;
        }
        if self.current == Some((r.channel, h.seq_num)) {
            return true;
        }
        let Some(every) = self.every else {
            return false;
        };
        let now = tokio::time::Instant::now();
        if now >= self.next {
            self.next = now + every;
            self.current = Some((r.channel, h.seq_num));
            return true;
        }
        false
    }
}

/// After the DR signal the vendor checks the backup site's RTS on purpose: for each real-time
/// channel, once its image is rebuilt (live again after DR completed), it asks for the last
/// few messages it holds, one request at a time, until the backup site has served one per
/// channel. Its simulated losses alone cannot be relied on for that: they need data packets,
/// and a quiet backup site (no trading yet, the OMD-CC channels) publishes only heartbeats, so
/// a vendor that logged on there could go the whole phase without asking for anything.
struct BackupCheck {
    /// Channels the backup site's RTS served a deliberate request for.
    checked: std::collections::BTreeSet<u16>,
    /// The DR events seen when `checked` was started (a new DR signal starts it again).
    dr_seen: u64,
    /// The request outstanding: channel, completions and problems counted before it, when.
    pending: Option<(u16, u64, u64, tokio::time::Instant)>,
}

/// How many of the last messages a deliberate check asks for.
const CHECK_MESSAGES: u32 = 10;

impl BackupCheck {
    fn step(&mut self, client: &mut FeedClient, channels: &[u16], dr: u64) {
        if dr != self.dr_seen {
            self.dr_seen = dr;
            self.checked.clear();
            self.pending = None;
        }
        let count = |c: &FeedClient, k: &str| c.events.get(k).copied().unwrap_or(0);
        let (complete, problems) = (
            count(client, "retransmission complete"),
            count(client, "problem"),
        );
        if let Some((channel, c0, p0, at)) = self.pending {
            if complete > c0 {
                self.checked.insert(channel);
                self.pending = None;
            } else if problems > p0 || at.elapsed() > Duration::from_secs(6) {
                // Refused, failed or unanswered: try again.
                self.pending = None;
            }
        }
        if self.pending.is_some() {
            return;
        }
        let next = channels.iter().copied().find(|&c| {
            !self.checked.contains(&c)
                && client
                    .handler
                    .channel(c)
                    .is_some_and(|h| h.is_live() && h.expected_seq() > 1)
        });
        let Some(channel) = next else {
            return;
        };
        let end = client
            .handler
            .channel(channel)
            .map_or(1, |h| h.expected_seq())
            - 1;
        let begin = end.saturating_sub(CHECK_MESSAGES - 1).max(1);
        let now = twinsite_site::gateway::wall_clock();
        if let Ok(true) = client
            .handler
            .request_retransmission(channel, begin, end, now)
        {
            self.pending = Some((channel, complete, problems, tokio::time::Instant::now()));
        }
    }
}

/// Start a vendor: join the groups now (inside a tokio runtime) and run its handler.
pub async fn spawn_vendor(cfg: VendorConfig) -> anyhow::Result<VendorHandle> {
    anyhow::ensure!(
        !cfg.rts.is_empty(),
        "{}: give the RTS endpoints (primary site, backup site)",
        cfg.name
    );
    let mut client = FeedClient::new(&cfg.market_data, &cfg.username)?;
    client.rts = vec![cfg.rts[0]];
    let mut gaps = GapMaker {
        every: cfg.gap_every,
        next: tokio::time::Instant::now() + cfg.gap_every.unwrap_or_default(),
        current: None,
        ignore_dr: cfg.fault == VendorFault::IgnoreDrSignal,
    };
    client.drop = Some(Box::new(move |r: &Received| gaps.drop(r)));
    let channels: Vec<u16> = twinsite_site::feed::plan(&cfg.market_data)?
        .into_iter()
        .filter(|(_, k)| matches!(k, twinsite_site::feed::ChannelKind::RealTime(..)))
        .map(|(c, _)| c.id)
        .collect();
    let (stop_tx, mut stop_rx) = mpsc::unbounded_channel();
    let (c_tx, c_rx) = watch::channel(VendorCounters::default());
    let name = cfg.name.clone();
    let task = tokio::spawn(async move {
        let mut dr_seen = 0u64;
        let mut rts_site = 0usize;
        let mut switched_at = None;
        let mut check = BackupCheck {
            checked: Default::default(),
            dr_seen: 0,
            pending: None,
        };
        loop {
            if stop_rx.try_recv().is_ok() {
                break;
            }
            client
                .run_until(
                    tokio::time::Instant::now() + Duration::from_millis(50),
                    |_| false,
                )
                .await;
            let dr = client.events.get("dr").copied().unwrap_or(0);
            if dr > dr_seen {
                dr_seen = dr;
                // The DR signal: the backup site serves now, its RTS too.
                if cfg.fault != VendorFault::IgnoreDrSignal && cfg.rts.len() > 1 && rts_site == 0 {
                    rts_site = 1;
                    client.rts = vec![cfg.rts[1]];
                    switched_at = Some(twinsite_site::gateway::wall_clock());
                }
            }
            if rts_site == 1 {
                check.step(&mut client, &channels, dr);
            }
            let live: Vec<u16> = channels
                .iter()
                .copied()
                .filter(|&c| client.handler.channel(c).is_some_and(|h| h.is_live()))
                .collect();
            let events: BTreeMap<String, u64> = client
                .events
                .iter()
                .map(|(k, v)| (k.to_string(), *v))
                .collect();
            let (received, dropped) = (client.received, client.dropped);
            c_tx.send_if_modified(|c| {
                let n = VendorCounters {
                    received,
                    dropped,
                    events,
                    live,
                    rts_site,
                    switched_at,
                    backup_rts_checked: check.checked.iter().copied().collect(),
                    stopped: false,
                };
                if *c != n {
                    *c = n;
                    true
                } else {
                    false
                }
            });
        }
        c_tx.send_modify(|c| c.stopped = true);
    });
    Ok(VendorHandle {
        name,
        stop: stop_tx,
        counters: c_rx,
        task,
    })
}
