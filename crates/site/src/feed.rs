//! The market-data feed of a site: engine events in commit order (from the core) to OMD-C and
//! OMD-CC on UDP multicast, Line A and Line B, with the retransmission service (RTS, TCP),
//! refresh channels, a DR channel and an optional pcap copy of everything sent.
//!
//! * [`FeedCore`]: sans-IO (the omd crate's state machines plus the event mapping of
//!   [`crate::feed_map`]): inputs in, datagrams for a group address out. The bench drives it.
//! * [`run_feed`]: the tokio task (sockets, RTS connections, timers, pcap).
//! * [`FeedClient`]: the reference handler (`FeedHandler`) on a live site's multicast groups,
//!   RTS and refresh channels (`twinsite feed`, the end-to-end tests).
//!
//! Channels (`[[market_data.channel]]`, `product`): "fulltick", "standard", "premium",
//! "combined" (all OMD-C types including 33/34, 54, 80/81) carry every HK security; "cc-sse" and
//! "cc-szse" are the OMD-CC channel sets of SSE / SZSE securities (610, 611, 621, 655, 660);
//! "refresh" is the refresh channel of the nearest real-time channel listed before it; "dr" is
//! the DR channel. The feed publishes only while the site is active: on activation every
//! channel starts with a Sequence Reset, then reference data and the books; after a site
//! failover the DR channel first says DR in progress (1) and, [`DR_COMPLETE_AFTER_NS`] later,
//! DR completed (2). On standby the feed falls silent (no heartbeats).

use crate::config::{ChannelEntry, MarketDataSection, SiteConfig};
use crate::feed_map::{FeedImage, FeedMap, Route};
use crate::gateway::{self, SiteHandle};
use crate::pcap::PcapWriter;
use anyhow::Context;
use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, SocketAddrV4};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use twinsite_core::{MarketSegment, Timestamp};
use twinsite_engine::Event;
use twinsite_omd::{
    ChannelPublisher, DrChannelPublisher, DrStatus, FeedHandler, HandlerConfig, Line, MarketEvent,
    Message, Product, ProductBuilder, PublisherConfig, RefreshConfig, RefreshService,
    RtsClientConfig, RtsServer, RtsServerConfig,
};

/// What the core hands the market-data feed.
#[derive(Debug, Clone, PartialEq)]
pub enum FeedInput {
    Events {
        events: Vec<Event>,
        now: Timestamp,
    },
    /// The engine's reference data and books, sent just before `Active`.
    Image(Box<FeedImage>),
    /// The site became active (after a site failover when `failover`): publish from here on.
    Active {
        failover: bool,
        now: Timestamp,
    },
    /// The site stopped serving.
    Standby {
        now: Timestamp,
    },
}

impl FeedInput {
    /// The engine's reference data and books as a feed input.
    pub fn image_of(engine: &twinsite_engine::Engine) -> FeedInput {
        FeedInput::Image(Box::new(FeedImage::of(engine)))
    }
}

/// Time between DR in progress (1) and DR completed (2) after a failover.
pub const DR_COMPLETE_AFTER_NS: u64 = 200_000_000;
/// The RTS username every site accepts besides the participants' Comp IDs.
pub const RTS_USER: &str = "twinsite";

/// What a configured channel is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChannelKind {
    RealTime(Product, Route),
    /// The refresh channel of real-time channel `serves`.
    Refresh {
        serves: u16,
    },
    Dr,
}

/// The configured channels with their kinds (refresh channels bound to their real-time one).
pub fn plan(md: &MarketDataSection) -> anyhow::Result<Vec<(ChannelEntry, ChannelKind)>> {
    let mut out = Vec::new();
    let mut last_rt = None;
    let mut seen = std::collections::BTreeSet::new();
    for c in &md.channels {
        anyhow::ensure!(seen.insert(c.id), "market_data: channel {} twice", c.id);
        let kind = match c.product.to_ascii_lowercase().as_str() {
            "fulltick" => ChannelKind::RealTime(Product::SecuritiesFullTick, Route::OmdC),
            "standard" => ChannelKind::RealTime(Product::SecuritiesStandard, Route::OmdC),
            "premium" => ChannelKind::RealTime(Product::SecuritiesPremium, Route::OmdC),
            "combined" => ChannelKind::RealTime(Product::Combined, Route::OmdC),
            "cc-sse" | "sse" => {
                ChannelKind::RealTime(Product::ChinaConnect, Route::OmdCc(MarketSegment::Sse))
            }
            "cc-szse" | "szse" => {
                ChannelKind::RealTime(Product::ChinaConnect, Route::OmdCc(MarketSegment::Szse))
            }
            "refresh" => ChannelKind::Refresh {
                serves: last_rt.with_context(|| {
                    format!(
                        "market_data: refresh channel {} follows no real-time channel",
                        c.id
                    )
                })?,
            },
            "dr" => ChannelKind::Dr,
            other => anyhow::bail!("market_data: channel {}: unknown product {other:?}", c.id),
        };
        if let ChannelKind::RealTime(..) = kind {
            last_rt = Some(c.id);
        }
        out.push((c.clone(), kind));
    }
    Ok(out)
}

struct RtChannel {
    id: u16,
    product: Product,
    route: Route,
    lines: [SocketAddr; 2],
    builder: ProductBuilder,
    publisher: ChannelPublisher,
    refresh: Option<RefreshChannel>,
    msgs: Vec<Message>,
}

/// Messages published and events the builders refused, in one batch.
#[derive(Debug, Default, Clone, Copy)]
struct Counts {
    messages: u64,
    dropped: u64,
}

impl RtChannel {
    /// One market event through this channel's builder, its messages published at once.
    fn build_and_publish(&mut self, event: &MarketEvent, now: Timestamp, counts: &mut Counts) {
        let mut msgs = std::mem::take(&mut self.msgs);
        msgs.clear();
        if self.builder.on_event(event, &mut msgs).is_err() {
            counts.dropped += 1;
        }
        self.publish(&msgs, now, counts);
        self.msgs = msgs;
    }

    /// Publish `msgs` on both lines and show them to the refresh service. (The retransmission
    /// store keeps Line A's packets as they are sent: [`FeedCore::poll_transmit`].)
    fn publish(&mut self, msgs: &[Message], now: Timestamp, counts: &mut Counts) {
        let id = self.id;
        for msg in msgs {
            match self.publisher.publish_with(msg, now, |_, _| {}) {
                Ok(seq_num) => {
                    if let Some(r) = &mut self.refresh {
                        r.service.on_realtime(seq_num, msg);
                    }
                    counts.messages += 1;
                }
                Err(e) => tracing::warn!(channel = id, error = %e, "message not published"),
            }
        }
    }
}

struct RefreshChannel {
    id: u16,
    lines: [SocketAddr; 2],
    service: RefreshService,
}

struct DrChannel {
    id: u16,
    lines: [SocketAddr; 2],
    publisher: DrChannelPublisher,
}

/// Counters of what the feed published.
#[derive(Debug, Default)]
pub struct FeedStats {
    pub messages: AtomicU64,
    pub datagrams: AtomicU64,
    pub bytes: AtomicU64,
    pub dropped_events: AtomicU64,
}

/// The sans-IO feed of one site.
pub struct FeedCore {
    channels: Vec<RtChannel>,
    dr: Option<DrChannel>,
    rts_config: RtsServerConfig,
    rts: RtsServer,
    map: FeedMap,
    image: FeedImage,
    active: bool,
    dr_complete_at: Option<Timestamp>,
    /// The last DR status sent on the DR channel since this site became active.
    dr_sent: Option<DrStatus>,
    routed: Vec<(Route, MarketEvent)>,
    pub stats: Arc<FeedStats>,
}

fn line_index(line: Line) -> usize {
    match line {
        Line::A => 0,
        Line::B => 1,
    }
}

impl FeedCore {
    /// `users`: RTS usernames accepted.
    pub fn new(
        md: &MarketDataSection,
        users: impl IntoIterator<Item = String>,
        now: Timestamp,
    ) -> anyhow::Result<FeedCore> {
        let mut channels: Vec<RtChannel> = Vec::new();
        let mut dr = None;
        let planned = plan(md)?;
        for (c, kind) in &planned {
            let lines = [c.line_a, c.line_b];
            match *kind {
                ChannelKind::RealTime(product, route) => channels.push(RtChannel {
                    id: c.id,
                    product,
                    route,
                    lines,
                    builder: ProductBuilder::new(product),
                    publisher: ChannelPublisher::new(PublisherConfig::new(c.id), now),
                    refresh: None,
                    msgs: Vec::new(),
                }),
                ChannelKind::Refresh { .. } | ChannelKind::Dr => {}
            }
        }
        for (c, kind) in &planned {
            let lines = [c.line_a, c.line_b];
            match *kind {
                ChannelKind::Refresh { serves } => {
                    let ch = channels
                        .iter_mut()
                        .find(|ch| ch.id == serves)
                        .expect("plan binds refresh channels to listed real-time channels");
                    anyhow::ensure!(
                        ch.refresh.is_none(),
                        "market_data: two refresh channels for channel {serves}"
                    );
                    ch.refresh = Some(RefreshChannel {
                        id: c.id,
                        lines,
                        service: RefreshService::new(RefreshConfig::new(c.id), now)
                            .with_orders_from_builder(),
                    });
                }
                ChannelKind::Dr => {
                    anyhow::ensure!(dr.is_none(), "market_data: two DR channels");
                    dr = Some(DrChannel {
                        id: c.id,
                        lines,
                        publisher: DrChannelPublisher::new(
                            PublisherConfig::new(c.id),
                            5_000_000_000,
                            now,
                        ),
                    });
                }
                ChannelKind::RealTime(..) => {}
            }
        }
        let rts_config = RtsServerConfig::new(users, channels.iter().map(|c| c.id));
        Ok(FeedCore {
            channels,
            dr,
            rts: RtsServer::new(rts_config.clone()),
            rts_config,
            map: FeedMap::new(),
            image: FeedImage::default(),
            active: false,
            dr_complete_at: None,
            dr_sent: None,
            routed: Vec::new(),
            stats: Arc::new(FeedStats::default()),
        })
    }

    pub fn is_active(&self) -> bool {
        self.active
    }

    /// The last DR status this site sent since it became active (None: no DR signal).
    pub fn dr_sent(&self) -> Option<DrStatus> {
        self.dr_sent
    }

    /// Real-time channels with their last sequence number sent, refresh channels (with the
    /// real-time channel they serve) and the DR channel, in configuration order of kind.
    pub fn channel_status(&self) -> Vec<ChannelStatus> {
        let mut v = Vec::new();
        for ch in &self.channels {
            v.push(ChannelStatus {
                id: ch.id,
                kind: ChannelKind::RealTime(ch.product, ch.route),
                last_seq: ch.publisher.last_seq(),
            });
            if let Some(r) = &ch.refresh {
                v.push(ChannelStatus {
                    id: r.id,
                    kind: ChannelKind::Refresh { serves: ch.id },
                    last_seq: 0,
                });
            }
        }
        if let Some(dr) = &self.dr {
            v.push(ChannelStatus {
                id: dr.id,
                kind: ChannelKind::Dr,
                last_seq: 0,
            });
        }
        v
    }

    /// The RTS state machine (the runtime drives its connections).
    pub fn rts(&mut self) -> &mut RtsServer {
        &mut self.rts
    }

    /// One input from the core.
    pub fn handle_input(&mut self, input: FeedInput, now: Timestamp) {
        match input {
            FeedInput::Image(image) => self.image = *image,
            FeedInput::Active { failover, .. } => self.activate(failover, now),
            FeedInput::Standby { .. } => self.standby(),
            FeedInput::Events { events, now: at } => self.on_events(&events, at.max(now)),
        }
    }

    /// New numbering on every channel, then reference data and books from the last image.
    fn activate(&mut self, failover: bool, now: Timestamp) {
        if let Some(dr) = &mut self.dr {
            dr.publisher = DrChannelPublisher::new(PublisherConfig::new(dr.id), 5_000_000_000, now);
            dr.publisher.sequence_reset(now);
            self.dr_sent = None;
            if failover {
                dr.publisher.signal(DrStatus::InProgress, now);
                self.dr_sent = Some(DrStatus::InProgress);
                self.dr_complete_at = Some(now.plus_nanos(DR_COMPLETE_AFTER_NS));
            }
        }
        for ch in &mut self.channels {
            ch.builder = ProductBuilder::new(ch.product);
            ch.publisher = ChannelPublisher::new(PublisherConfig::new(ch.id), now);
            ch.publisher.sequence_reset(now);
            if let Some(r) = &mut ch.refresh {
                r.service =
                    RefreshService::new(RefreshConfig::new(r.id), now).with_orders_from_builder();
                r.service.sequence_reset(now);
            }
        }
        self.rts = RtsServer::new(self.rts_config.clone());
        self.rts.start_of_day();
        self.active = true;
        self.routed = self.map.image_events(&self.image, now);
        self.publish_routed(now);
    }

    fn standby(&mut self) {
        self.active = false;
        self.dr_complete_at = None;
        self.dr_sent = None;
        for ch in &mut self.channels {
            while ch.publisher.poll_transmit().is_some() {}
            if let Some(r) = &mut ch.refresh {
                while r.service.poll_transmit().is_some() {}
            }
        }
        if let Some(dr) = &mut self.dr {
            dr.publisher.end_of_day();
            while dr.publisher.poll_transmit().is_some() {}
        }
    }

    /// Engine events of one commit: mapped, built per channel, published, flushed. Each event
    /// goes through the whole path (mapping, building, publishing) before the next one, so no
    /// batch-sized intermediate list is written and read back; the messages and packets are
    /// those of mapping the whole batch first (per channel, the same messages in the same
    /// order).
    pub fn on_events(&mut self, events: &[Event], now: Timestamp) {
        if !self.active {
            return;
        }
        let mut counts = Counts::default();
        // The resting orders this batch deletes or modifies are touched first, one load after
        // the other, so their cache misses overlap (the builders find them in cache below).
        let mut touched = 0u32;
        for e in events {
            if let Event::BookDelete {
                security, order_id, ..
            }
            | Event::BookModify {
                security, order_id, ..
            } = *e
            {
                for ch in &self.channels {
                    touched ^= ch.builder.touch_order(security, order_id);
                }
            }
        }
        std::hint::black_box(touched);
        let mut routed = std::mem::take(&mut self.routed);
        for e in events {
            routed.clear();
            self.map.map(e, now, &mut routed);
            for (route, event) in &routed {
                for ch in &mut self.channels {
                    if ch.route == *route {
                        ch.build_and_publish(event, now, &mut counts);
                    }
                }
            }
        }
        routed.clear();
        self.routed = routed;
        self.end_batch(now, counts);
    }

    /// The routed events of an activation (reference data, books), published as one batch.
    fn publish_routed(&mut self, now: Timestamp) {
        let mut counts = Counts::default();
        for (route, event) in &self.routed {
            for ch in &mut self.channels {
                if ch.route == *route {
                    ch.build_and_publish(event, now, &mut counts);
                }
            }
        }
        self.routed.clear();
        self.end_batch(now, counts);
    }

    /// End of a batch: every channel's conflated messages (aggregate book, broker queues,
    /// tickers, statistics) published, Line A flushed; the counters updated.
    fn end_batch(&mut self, now: Timestamp, mut counts: Counts) {
        for ch in &mut self.channels {
            let mut msgs = std::mem::take(&mut ch.msgs);
            msgs.clear();
            ch.builder.end_batch(&mut msgs);
            ch.publish(&msgs, now, &mut counts);
            ch.publisher.flush(now);
            ch.msgs = msgs;
        }
        self.stats
            .messages
            .fetch_add(counts.messages, Ordering::Relaxed);
        if counts.dropped > 0 {
            self.stats
                .dropped_events
                .fetch_add(counts.dropped, Ordering::Relaxed);
        }
    }

    /// When [`FeedCore::handle_timeout`] is next due (None while standby).
    pub fn poll_timeout(&self) -> Option<Timestamp> {
        if !self.active {
            return None;
        }
        let mut t = self.rts.poll_timeout();
        let mut take = |x: Option<Timestamp>| {
            if let Some(x) = x {
                t = Some(t.map_or(x, |t: Timestamp| t.min(x)));
            }
        };
        for ch in &self.channels {
            take(ch.publisher.poll_timeout());
            if let Some(r) = &ch.refresh {
                take(r.service.poll_timeout());
            }
        }
        if let Some(dr) = &self.dr {
            take(dr.publisher.poll_timeout());
        }
        take(self.dr_complete_at);
        t
    }

    /// Heartbeats, linger flushes, refresh cycles, DR repeats, RTS timers.
    pub fn handle_timeout(&mut self, now: Timestamp) {
        if !self.active {
            return;
        }
        if self.dr_complete_at.is_some_and(|t| now >= t) {
            self.dr_complete_at = None;
            if let Some(dr) = &mut self.dr {
                dr.publisher.signal(DrStatus::Completed, now);
                self.dr_sent = Some(DrStatus::Completed);
            }
        }
        for ch in &mut self.channels {
            ch.publisher.handle_timeout(now);
            if let Some(r) = &mut ch.refresh {
                // Snapshots take the order book from the builder (one table of resting orders).
                r.service.handle_timeout_from(now, &ch.builder);
            }
        }
        if let Some(dr) = &mut self.dr {
            dr.publisher.handle_timeout(now);
        }
        self.rts.handle_timeout(now);
    }

    /// Every datagram ready to send, with its group address. Each real-time channel's Line A
    /// packets are kept for retransmission as they go out (one copy per packet; Line A carries
    /// every message and, with no linger, has sent every message of an input by the end of
    /// its `poll_transmit`, before the RTS serves a request).
    pub fn poll_transmit(&mut self, mut send: impl FnMut(SocketAddr, &[u8])) {
        let mut n = 0u64;
        let mut bytes = 0u64;
        let store = self.rts.store_mut();
        for ch in &mut self.channels {
            while let Some(d) = ch.publisher.poll_transmit() {
                n += 1;
                bytes += d.bytes.len() as u64;
                if d.line == Line::A {
                    let kept = store.record_packet(ch.id, &d.bytes);
                    debug_assert!(kept, "Invariant: the publisher's packets are well framed");
                }
                send(ch.lines[line_index(d.line)], &d.bytes);
                // The packet's buffer starts a later packet.
                ch.publisher.recycle(d.bytes);
            }
            if let Some(r) = &mut ch.refresh {
                while let Some(d) = r.service.poll_transmit() {
                    n += 1;
                    bytes += d.bytes.len() as u64;
                    send(r.lines[line_index(d.line)], &d.bytes);
                }
            }
        }
        if let Some(dr) = &mut self.dr {
            while let Some(d) = dr.publisher.poll_transmit() {
                n += 1;
                bytes += d.bytes.len() as u64;
                send(dr.lines[line_index(d.line)], &d.bytes);
            }
        }
        self.stats.datagrams.fetch_add(n, Ordering::Relaxed);
        self.stats.bytes.fetch_add(bytes, Ordering::Relaxed);
    }
}

/// Datagrams gathered for one batched send: their bytes back to back and each one's group and
/// length. The feed gathers everything one input produced and sends it with `sendmmsg(2)`
/// (Linux; elsewhere one `send_to` per datagram), in order.
#[derive(Debug, Default)]
pub struct SendBatch {
    bytes: Vec<u8>,
    items: Vec<(SocketAddr, usize)>,
}

impl SendBatch {
    pub fn push(&mut self, dst: SocketAddr, datagram: &[u8]) {
        self.bytes.extend_from_slice(datagram);
        self.items.push((dst, datagram.len()));
    }

    pub fn len(&self) -> usize {
        self.items.len()
    }

    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// Send every gathered datagram in order and empty the batch; returns how many failed.
    pub fn send(&mut self, socket: &std::net::UdpSocket) -> u64 {
        let failures = self.send_keep(socket);
        self.clear();
        failures
    }

    /// Send every gathered datagram in order and keep them (a benchmark resends a batch).
    pub fn send_keep(&self, socket: &std::net::UdpSocket) -> u64 {
        send_all(socket, &self.bytes, &self.items)
    }

    pub fn clear(&mut self) {
        self.bytes.clear();
        self.items.clear();
    }
}

/// Most datagrams one `sendmmsg` call takes (the kernel's UIO_MAXIOV).
#[cfg(target_os = "linux")]
const SENDMMSG_MAX: usize = 1024;

#[cfg(target_os = "linux")]
fn send_all(socket: &std::net::UdpSocket, bytes: &[u8], items: &[(SocketAddr, usize)]) -> u64 {
    use std::os::fd::AsRawFd;
    let fd = socket.as_raw_fd();
    let mut failures = 0u64;
    let mut offset = 0usize;
    let mut addrs: Vec<libc::sockaddr_in> = Vec::with_capacity(items.len().min(SENDMMSG_MAX));
    let mut iovs: Vec<libc::iovec> = Vec::with_capacity(addrs.capacity());
    let mut msgs: Vec<libc::mmsghdr> = Vec::with_capacity(addrs.capacity());
    for chunk in items.chunks(SENDMMSG_MAX) {
        addrs.clear();
        iovs.clear();
        msgs.clear();
        for &(dst, len) in chunk {
            let SocketAddr::V4(v4) = dst else {
                // The feed's groups are IPv4 (`multicast_sender` refuses anything else).
                failures += 1;
                offset += len;
                continue;
            };
            addrs.push(libc::sockaddr_in {
                sin_family: libc::AF_INET as libc::sa_family_t,
                sin_port: v4.port().to_be(),
                sin_addr: libc::in_addr {
                    s_addr: u32::from(*v4.ip()).to_be(),
                },
                sin_zero: [0; 8],
            });
            iovs.push(libc::iovec {
                iov_base: bytes[offset..offset + len].as_ptr() as *mut libc::c_void,
                iov_len: len,
            });
            offset += len;
        }
        for (addr, iov) in addrs.iter_mut().zip(iovs.iter_mut()) {
            // SAFETY: an all-zero `mmsghdr` is valid (null pointers, zero lengths).
            let mut m: libc::mmsghdr = unsafe { std::mem::zeroed() };
            m.msg_hdr.msg_name = (addr as *mut libc::sockaddr_in).cast();
            m.msg_hdr.msg_namelen = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
            m.msg_hdr.msg_iov = iov;
            m.msg_hdr.msg_iovlen = 1;
            msgs.push(m);
        }
        let mut sent = 0usize;
        while sent < msgs.len() {
            let rest = &mut msgs[sent..];
            // SAFETY: every header points into `addrs`, `iovs` and `bytes`, which are alive and
            // not moved during the call; the kernel only reads them (and writes `msg_len`).
            let n = unsafe { libc::sendmmsg(fd, rest.as_mut_ptr(), rest.len() as libc::c_uint, 0) };
            if n > 0 {
                sent += n as usize;
            } else if n < 0
                && std::io::Error::last_os_error().kind() == std::io::ErrorKind::Interrupted
            {
                continue;
            } else {
                // The first remaining datagram failed: count it and go on with the next.
                failures += 1;
                sent += 1;
            }
        }
    }
    failures
}

#[cfg(not(target_os = "linux"))]
fn send_all(socket: &std::net::UdpSocket, bytes: &[u8], items: &[(SocketAddr, usize)]) -> u64 {
    let mut failures = 0u64;
    let mut offset = 0usize;
    for &(dst, len) in items {
        if socket.send_to(&bytes[offset..offset + len], dst).is_err() {
            failures += 1;
        }
        offset += len;
    }
    failures
}

/// A UDP socket that sends multicast on `interface` (TTL 1, loopback on), bound to an
/// ephemeral port of that interface.
pub fn multicast_sender(interface: IpAddr) -> anyhow::Result<std::net::UdpSocket> {
    use socket2::{Domain, Protocol, Socket, Type};
    let IpAddr::V4(ifv4) = interface else {
        anyhow::bail!("market_data.interface must be IPv4");
    };
    let s = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP))?;
    s.set_multicast_if_v4(&ifv4)?;
    s.set_multicast_loop_v4(true)?;
    s.set_multicast_ttl_v4(1)?;
    // Room for bursts.
    let _ = s.set_send_buffer_size(4 << 20);
    s.bind(&SocketAddr::from((ifv4, 0)).into())?;
    Ok(s.into())
}

/// A UDP socket receiving `group` on `interface` (bound to the group address, so sockets of
/// other groups on the same port do not see its traffic; SO_REUSEADDR so several receivers
/// can share it).
pub fn multicast_receiver(
    group: SocketAddr,
    interface: IpAddr,
) -> anyhow::Result<std::net::UdpSocket> {
    use socket2::{Domain, Protocol, Socket, Type};
    let (SocketAddr::V4(g), IpAddr::V4(ifv4)) = (group, interface) else {
        anyhow::bail!("multicast groups and the interface must be IPv4");
    };
    let s = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP))?;
    s.set_reuse_address(true)?;
    let _ = s.set_recv_buffer_size(8 << 20);
    s.bind(&SocketAddr::V4(g).into())
        .with_context(|| format!("bind {g}"))?;
    s.join_multicast_v4(g.ip(), &ifv4)
        .with_context(|| format!("join {g} on {ifv4}"))?;
    s.set_nonblocking(true)?;
    Ok(s.into())
}

/// One configured channel as the feed publishes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChannelStatus {
    pub id: u16,
    pub kind: ChannelKind,
    /// Last sequence number sent (real-time channels; 0 for refresh and DR channels).
    pub last_seq: u32,
}

/// What a feed is doing now (for operators and the drill's console).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FeedStatus {
    /// Publishing (the site is active).
    pub active: bool,
    pub channels: Vec<ChannelStatus>,
    /// The last DR status sent since the site became active.
    pub dr_sent: Option<DrStatus>,
    /// RTS logons accepted, logons refused, retransmission requests served (status 0) and
    /// refused, since the feed started.
    pub rts_logons: u64,
    pub rts_refused: u64,
    pub rts_served: u64,
    pub rts_requests_refused: u64,
}

/// What the feed observed of the retransmission service's clients, and the DR signals it
/// sent: the exchange's own record, for the drill's scorecards.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FeedActivity {
    /// A TCP connection to the RTS (refused at once while the site is standby).
    RtsConnected {
        connection: u64,
        peer: SocketAddr,
        accepted: bool,
        at: Timestamp,
    },
    /// A Logon answered: `user` as given, `status` the Logon Response's SessionStatus (0 =
    /// accepted).
    RtsLogon {
        connection: u64,
        peer: SocketAddr,
        user: Option<String>,
        status: u8,
        at: Timestamp,
    },
    /// A Retransmission Request answered (status 0 = served).
    RtsRequest {
        connection: u64,
        user: Option<String>,
        channel: u16,
        begin: u32,
        end: u32,
        status: u8,
        at: Timestamp,
    },
    RtsClosed {
        connection: u64,
        user: Option<String>,
        at: Timestamp,
    },
    /// The DR channel carried a new Disaster Recovery Signal (1 in progress, 2 completed).
    DrSignal { status: DrStatus, at: Timestamp },
}

/// A running feed.
pub struct FeedHandle {
    /// Where the RTS listens.
    pub rts_addr: SocketAddr,
    pub stats: Arc<FeedStats>,
    status: Arc<std::sync::Mutex<FeedStatus>>,
    activity: tokio::sync::broadcast::Sender<FeedActivity>,
    task: JoinHandle<()>,
}

impl FeedHandle {
    pub fn shutdown(self) {
        self.task.abort();
    }

    /// The feed now: channels and sequence numbers, DR signal, RTS counters.
    pub fn status(&self) -> FeedStatus {
        self.status.lock().expect("feed status lock").clone()
    }

    /// RTS logons, requests and DR signals as they happen.
    pub fn subscribe(&self) -> tokio::sync::broadcast::Receiver<FeedActivity> {
        self.activity.subscribe()
    }
}

enum ConnMsg {
    Data(u64, Vec<u8>),
    Closed(u64),
}

/// Start the feed task: `rx` is the core's feed input (from `gateway::start`/`start_node`).
/// `users`: RTS usernames (the participants' Comp IDs and [`RTS_USER`]).
pub async fn run_feed(
    md: MarketDataSection,
    users: Vec<String>,
    mut rx: mpsc::UnboundedReceiver<FeedInput>,
) -> anyhow::Result<FeedHandle> {
    let listener = TcpListener::bind(md.rts)
        .await
        .with_context(|| format!("bind RTS {}", md.rts))?;
    let rts_addr = listener.local_addr()?;
    let socket = multicast_sender(md.interface)?;
    let src = match socket.local_addr()? {
        SocketAddr::V4(a) => a,
        SocketAddr::V6(_) => SocketAddrV4::new(Ipv4Addr::LOCALHOST, 0),
    };
    let mut pcap = match &md.pcap {
        Some(p) => Some(PcapWriter::new(std::io::BufWriter::new(
            std::fs::File::create(p).with_context(|| format!("create {}", p.display()))?,
        ))?),
        None => None,
    };
    let mut core = FeedCore::new(&md, users, gateway::wall_clock())?;
    let stats = core.stats.clone();
    let status = Arc::new(std::sync::Mutex::new(FeedStatus {
        channels: core.channel_status(),
        ..FeedStatus::default()
    }));
    let (activity, _) = tokio::sync::broadcast::channel(4096);
    let (status_w, activity_w) = (status.clone(), activity.clone());
    let task = tokio::spawn(async move {
        let (conn_tx, mut conn_rx) = mpsc::unbounded_channel::<ConnMsg>();
        let mut conns: BTreeMap<u64, (mpsc::UnboundedSender<Vec<u8>>, JoinHandle<()>)> =
            BTreeMap::new();
        // Per RTS connection: the peer and the user it logged on as.
        let mut peers: BTreeMap<u64, (SocketAddr, Option<String>)> = BTreeMap::new();
        let mut next_conn = 1u64;
        let mut send_failures = 0u64;
        let mut counts = FeedStatus::default();
        let emit = |a: FeedActivity| {
            let _ = activity_w.send(a);
        };
        let mut batch = SendBatch::default();
        loop {
            let now = gateway::wall_clock();
            let deadline = core.poll_timeout().map(|t| {
                tokio::time::Instant::now() + Duration::from_nanos(t.0.saturating_sub(now.0))
            });
            tokio::select! {
                input = rx.recv() => match input {
                    None => break,
                    Some(input) => {
                        let activation = matches!(input, FeedInput::Active { .. } | FeedInput::Standby { .. });
                        core.handle_input(input, gateway::wall_clock());
                        if activation {
                            // A new RTS (or none): sessions of the previous one end.
                            for (id, (_, reader)) in std::mem::take(&mut conns) {
                                reader.abort();
                                if let Some((_, user)) = peers.remove(&id) {
                                    emit(FeedActivity::RtsClosed { connection: id, user, at: gateway::wall_clock() });
                                }
                            }
                        }
                    }
                },
                accepted = listener.accept() => {
                    if let Ok((stream, peer)) = accepted {
                        let id = next_conn;
                        next_conn += 1;
                        emit(FeedActivity::RtsConnected {
                            connection: id,
                            peer,
                            accepted: core.is_active(),
                            at: gateway::wall_clock(),
                        });
                        if core.is_active() {
                            peers.insert(id, (peer, None));
                            let _ = stream.set_nodelay(true);
                            let (mut rd, mut wr) = stream.into_split();
                            let (wtx, mut wrx) = mpsc::unbounded_channel::<Vec<u8>>();
                            tokio::spawn(async move {
                                while let Some(b) = wrx.recv().await {
                                    if wr.write_all(&b).await.is_err() {
                                        break;
                                    }
                                }
                                let _ = wr.shutdown().await;
                            });
                            let ctx = conn_tx.clone();
                            let reader = tokio::spawn(async move {
                                let mut buf = vec![0u8; 16 * 1024];
                                loop {
                                    match rd.read(&mut buf).await {
                                        Ok(0) | Err(_) => break,
                                        Ok(n) => {
                                            if ctx.send(ConnMsg::Data(id, buf[..n].to_vec())).is_err() {
                                                return;
                                            }
                                        }
                                    }
                                }
                                let _ = ctx.send(ConnMsg::Closed(id));
                            });
                            conns.insert(id, (wtx, reader));
                            core.rts().accept(id, gateway::wall_clock());
                        }
                    }
                }
                Some(m) = conn_rx.recv() => match m {
                    ConnMsg::Data(id, bytes) => {
                        if conns.contains_key(&id) {
                            core.rts().handle_data(id, &bytes, gateway::wall_clock());
                        }
                    }
                    ConnMsg::Closed(id) => {
                        if conns.remove(&id).is_some() {
                            core.rts().handle_closed(id);
                            if let Some((_, user)) = peers.remove(&id) {
                                emit(FeedActivity::RtsClosed { connection: id, user, at: gateway::wall_clock() });
                            }
                        }
                    }
                },
                _ = async {
                    match deadline {
                        Some(d) => tokio::time::sleep_until(d).await,
                        None => std::future::pending().await,
                    }
                } => core.handle_timeout(gateway::wall_clock()),
            }
            // Output: datagrams (one batched send, and their pcap copy), RTS bytes, RTS closes.
            let t = gateway::wall_clock();
            core.poll_transmit(|dst, bytes| {
                batch.push(dst, bytes);
                if let (Some(w), SocketAddr::V4(d)) = (pcap.as_mut(), dst) {
                    let _ = w.write_udp(t.0, src, d, bytes);
                }
            });
            if !batch.is_empty() {
                let failed = batch.send(&socket);
                if failed > 0 {
                    let before = send_failures;
                    send_failures += failed;
                    if before.leading_zeros() != send_failures.leading_zeros() || before == 0 {
                        tracing::warn!(failed, send_failures, "multicast send failed");
                    }
                }
            }
            if let Some(w) = pcap.as_mut() {
                let _ = w.flush();
            }
            for (id, (tx, _)) in &conns {
                while let Some(b) = core.rts().poll_transmit(*id) {
                    let _ = tx.send(b);
                }
            }
            while let Some(id) = core.rts().poll_close() {
                if let Some((_, reader)) = conns.remove(&id) {
                    reader.abort();
                }
                core.rts().handle_closed(id);
                if let Some((_, user)) = peers.remove(&id) {
                    emit(FeedActivity::RtsClosed {
                        connection: id,
                        user,
                        at: t,
                    });
                }
            }
            while let Some(e) = core.rts().poll_event() {
                use twinsite_omd::rts::RtsServerEvent as E;
                match e {
                    E::LoggedOn { connection, user } => {
                        counts.rts_logons += 1;
                        if let Some(p) = peers.get_mut(&connection) {
                            p.1 = Some(user.clone());
                            emit(FeedActivity::RtsLogon {
                                connection,
                                peer: p.0,
                                user: Some(user),
                                status: 0,
                                at: t,
                            });
                        }
                    }
                    E::Rejected { connection, status } => {
                        counts.rts_refused += 1;
                        if let Some(p) = peers.get(&connection) {
                            emit(FeedActivity::RtsLogon {
                                connection,
                                peer: p.0,
                                user: None,
                                status,
                                at: t,
                            });
                        }
                    }
                    E::Served {
                        connection,
                        channel,
                        begin,
                        end,
                        status,
                    } => {
                        if status == 0 {
                            counts.rts_served += 1;
                        } else {
                            counts.rts_requests_refused += 1;
                        }
                        let user = peers.get(&connection).and_then(|p| p.1.clone());
                        emit(FeedActivity::RtsRequest {
                            connection,
                            user,
                            channel,
                            begin,
                            end,
                            status,
                            at: t,
                        });
                    }
                    E::Closing { .. } => {}
                }
            }
            if core.dr_sent() != counts.dr_sent {
                counts.dr_sent = core.dr_sent();
                if let Some(status) = counts.dr_sent {
                    emit(FeedActivity::DrSignal { status, at: t });
                }
            }
            if let Ok(mut st) = status_w.lock() {
                st.active = core.is_active();
                st.channels = core.channel_status();
                st.dr_sent = counts.dr_sent;
                st.rts_logons = counts.rts_logons;
                st.rts_refused = counts.rts_refused;
                st.rts_served = counts.rts_served;
                st.rts_requests_refused = counts.rts_requests_refused;
            }
        }
    });
    Ok(FeedHandle {
        rts_addr,
        stats,
        status,
        activity,
        task,
    })
}

/// Start a single site (`gateway::start`) and, when `cfg.market_data` is set, its feed.
pub async fn start_with_feed(cfg: SiteConfig) -> anyhow::Result<(SiteHandle, Option<FeedHandle>)> {
    let md_cfg = cfg.clone();
    let (site, rx) = gateway::start(cfg).await?;
    let feed = feed_for(&md_cfg, rx).await?;
    Ok((site, feed))
}

/// The feed of a site started with `gateway::start` or `gateway::start_node` (`rx` is the
/// receiver those return), when its config has `[market_data]`. Without one, `rx` is kept
/// drained so the core's sends never pile up.
pub async fn feed_for(
    cfg: &SiteConfig,
    mut rx: mpsc::UnboundedReceiver<FeedInput>,
) -> anyhow::Result<Option<FeedHandle>> {
    match &cfg.market_data {
        Some(md) => Ok(Some(run_feed(md.clone(), rts_users(cfg), rx).await?)),
        None => {
            tokio::spawn(async move { while rx.recv().await.is_some() {} });
            Ok(None)
        }
    }
}

/// RTS usernames of a site: [`RTS_USER`] and every participant's Comp ID.
pub fn rts_users(cfg: &SiteConfig) -> Vec<String> {
    std::iter::once(RTS_USER.to_string())
        .chain(cfg.participants.iter().map(|p| p.comp_id.clone()))
        .collect()
}

// ---------------------------------------------------------------------------------------------
// The reference handler on a live site.

/// Which stream a received datagram belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    RealTime,
    Refresh,
    Dr,
}

/// A datagram as received: stream, real-time channel it is for, line, bytes.
pub struct Received {
    pub stream: Stream,
    pub channel: u16,
    pub line: Line,
    pub bytes: Vec<u8>,
}

/// Decides whether a received datagram is dropped before the handler sees it (loss injection).
pub type DropFilter = Box<dyn FnMut(&Received) -> bool + Send>;

enum RtsMsg {
    Data(u64, Vec<u8>),
    Closed(u64),
}

/// The reference feed handler fed from a live site's multicast groups, RTS and refresh.
pub struct FeedClient {
    pub handler: FeedHandler,
    /// RTS endpoints, tried in turn.
    pub rts: Vec<SocketAddr>,
    pub drop: Option<DropFilter>,
    /// Datagrams received / dropped by the filter.
    pub received: u64,
    pub dropped: u64,
    /// Handler events seen, by kind ("gap", "retransmission", "refreshed", "reset", "dr",
    /// "problem", ...), and the last few for diagnostics.
    pub events: BTreeMap<&'static str, u64>,
    pub recent: std::collections::VecDeque<String>,
    rx: mpsc::UnboundedReceiver<Received>,
    readers: Vec<JoinHandle<()>>,
    rts_rx: mpsc::UnboundedReceiver<RtsMsg>,
    rts_tx: mpsc::UnboundedSender<RtsMsg>,
    conn: Option<(u64, tokio::net::tcp::OwnedWriteHalf, JoinHandle<()>)>,
    conn_gen: u64,
    next_endpoint: usize,
    retry_at: Option<tokio::time::Instant>,
}

impl Drop for FeedClient {
    fn drop(&mut self) {
        for r in &self.readers {
            r.abort();
        }
        if let Some((_, _, r)) = &self.conn {
            r.abort();
        }
    }
}

impl FeedClient {
    /// Join every configured group (real-time, refresh, DR) on `md.interface`. Must run inside
    /// a tokio runtime.
    pub fn new(md: &MarketDataSection, username: &str) -> anyhow::Result<FeedClient> {
        let planned = plan(md)?;
        let (tx, rx) = mpsc::unbounded_channel();
        let mut readers = Vec::new();
        let mut configs = Vec::new();
        for (c, kind) in &planned {
            let (stream, channel) = match *kind {
                ChannelKind::RealTime(..) => {
                    let mut hc = HandlerConfig::new(c.id);
                    hc.refresh_after_sequence_reset = true;
                    configs.push(hc);
                    (Stream::RealTime, c.id)
                }
                ChannelKind::Refresh { serves } => (Stream::Refresh, serves),
                ChannelKind::Dr => (Stream::Dr, c.id),
            };
            for (line, group) in [(Line::A, c.line_a), (Line::B, c.line_b)] {
                let sock =
                    tokio::net::UdpSocket::from_std(multicast_receiver(group, md.interface)?)?;
                let tx = tx.clone();
                readers.push(tokio::spawn(async move {
                    let mut buf = vec![0u8; 65_536];
                    while let Ok(n) = sock.recv(&mut buf).await {
                        let r = Received {
                            stream,
                            channel,
                            line,
                            bytes: buf[..n].to_vec(),
                        };
                        if tx.send(r).is_err() {
                            return;
                        }
                    }
                }));
            }
        }
        let (rts_tx, rts_rx) = mpsc::unbounded_channel();
        Ok(FeedClient {
            handler: FeedHandler::new(configs, RtsClientConfig::new(username)),
            rts: vec![md.rts],
            drop: None,
            received: 0,
            dropped: 0,
            events: BTreeMap::new(),
            recent: std::collections::VecDeque::new(),
            rx,
            readers,
            rts_rx,
            rts_tx,
            conn: None,
            conn_gen: 0,
            next_endpoint: 0,
            retry_at: None,
        })
    }

    /// Run until `done(&handler)` holds (checked after every input) or `deadline`; true if done.
    pub async fn run_until(
        &mut self,
        deadline: tokio::time::Instant,
        mut done: impl FnMut(&FeedHandler) -> bool,
    ) -> bool {
        loop {
            self.manage_rts().await;
            if done(&self.handler) {
                return true;
            }
            let now = gateway::wall_clock();
            let mut wake = deadline;
            if let Some(t) = self.handler.poll_timeout() {
                wake = wake.min(
                    tokio::time::Instant::now() + Duration::from_nanos(t.0.saturating_sub(now.0)),
                );
            }
            if let Some(r) = self.retry_at {
                wake = wake.min(r);
            }
            tokio::select! {
                Some(r) = self.rx.recv() => {
                    self.on_received(r);
                    // Take what is already queued before checking again.
                    for _ in 0..256 {
                        match self.rx.try_recv() {
                            Ok(r) => self.on_received(r),
                            Err(_) => break,
                        }
                    }
                }
                Some(m) = self.rts_rx.recv() => self.on_rts(m),
                _ = tokio::time::sleep_until(wake) => {
                    if tokio::time::Instant::now() >= deadline {
                        return done(&self.handler);
                    }
                    self.handler.handle_timeout(gateway::wall_clock());
                }
            }
        }
    }

    fn on_received(&mut self, r: Received) {
        self.received += 1;
        if let Some(f) = self.drop.as_mut() {
            if f(&r) {
                self.dropped += 1;
                return;
            }
        }
        let now = gateway::wall_clock();
        match r.stream {
            Stream::RealTime => self
                .handler
                .handle_realtime(r.channel, r.line, &r.bytes, now),
            Stream::Refresh => self
                .handler
                .handle_refresh(r.channel, r.line, &r.bytes, now),
            Stream::Dr => self.handler.handle_dr(r.line, &r.bytes, now),
        }
    }

    fn on_rts(&mut self, m: RtsMsg) {
        let now = gateway::wall_clock();
        match m {
            RtsMsg::Data(g, bytes) if self.conn.as_ref().is_some_and(|c| c.0 == g) => {
                self.handler.rts_data(&bytes, now)
            }
            RtsMsg::Closed(g) if self.conn.as_ref().is_some_and(|c| c.0 == g) => {
                self.conn = None;
                self.next_endpoint += 1;
                self.handler.rts_closed(now);
            }
            _ => {}
        }
    }

    fn drain_events(&mut self) {
        use twinsite_omd::HandlerEvent as E;
        while let Some(e) = self.handler.poll_event() {
            let kind = match &e {
                E::Problem { .. } => "problem",
                E::GapDetected { .. } => "gap",
                E::GapFilledByLine { .. } => "gap filled by line",
                E::RetransmissionRequested { .. } => "retransmission",
                E::RetransmissionComplete { .. } => "retransmission complete",
                E::RefreshStarted { .. } => "refresh started",
                E::Refreshed { .. } => "refreshed",
                E::SequenceReset { .. } => "reset",
                E::DisasterRecovery { .. } => "dr",
                E::Message { .. } => "message",
            };
            *self.events.entry(kind).or_default() += 1;
            if kind != "message" {
                if self.recent.len() >= 50 {
                    self.recent.pop_front();
                }
                self.recent.push_back(format!("{e:?}"));
            }
        }
    }

    /// Connect, write, disconnect the RTS session as the handler asks.
    async fn manage_rts(&mut self) {
        self.drain_events();
        if self.conn.is_some() && self.handler.rts_wants_disconnect() {
            if let Some((_, _, r)) = self.conn.take() {
                r.abort();
            }
            self.next_endpoint += 1;
            self.handler.rts_closed(gateway::wall_clock());
        }
        if self.conn.is_some() && self.handler.rts_wants_connection() {
            // The handler dropped its session (DR in progress): the endpoints changed.
            if let Some((_, _, r)) = self.conn.take() {
                r.abort();
            }
            self.next_endpoint += 1;
        }
        if self.conn.is_none()
            && self.handler.rts_wants_connection()
            && !self.rts.is_empty()
            && self
                .retry_at
                .is_none_or(|t| tokio::time::Instant::now() >= t)
        {
            let addr = self.rts[self.next_endpoint % self.rts.len()];
            match tokio::time::timeout(Duration::from_secs(2), TcpStream::connect(addr)).await {
                Ok(Ok(stream)) => {
                    self.retry_at = None;
                    let _ = stream.set_nodelay(true);
                    let (mut rd, wr) = stream.into_split();
                    self.conn_gen += 1;
                    let g = self.conn_gen;
                    let tx = self.rts_tx.clone();
                    let reader = tokio::spawn(async move {
                        let mut buf = vec![0u8; 64 * 1024];
                        loop {
                            match rd.read(&mut buf).await {
                                Ok(0) | Err(_) => break,
                                Ok(n) => {
                                    if tx.send(RtsMsg::Data(g, buf[..n].to_vec())).is_err() {
                                        return;
                                    }
                                }
                            }
                        }
                        let _ = tx.send(RtsMsg::Closed(g));
                    });
                    self.conn = Some((g, wr, reader));
                    self.handler.rts_connected(gateway::wall_clock());
                }
                _ => {
                    self.next_endpoint += 1;
                    self.retry_at = Some(tokio::time::Instant::now() + Duration::from_millis(200));
                }
            }
        }
        let mut failed = false;
        if let Some((_, wr, _)) = self.conn.as_mut() {
            while let Some(bytes) = self.handler.poll_rts_transmit() {
                if wr.write_all(&bytes).await.is_err() {
                    failed = true;
                    break;
                }
            }
        }
        if failed {
            if let Some((_, _, r)) = self.conn.take() {
                r.abort();
            }
            self.next_endpoint += 1;
            self.handler.rts_closed(gateway::wall_clock());
        }
    }
}

/// A printable view of the books a handler rebuilt: per security the top `levels` price
/// levels of each side (from the order book, the aggregate book or OMD-CC top of book) and the
/// trade count.
pub fn book_report(handler: &FeedHandler, channels: &[u16], levels: usize) -> String {
    use std::fmt::Write;
    let mut s = String::new();
    for &id in channels {
        let Some(ch) = handler.channel(id) else {
            continue;
        };
        let image = ch.image();
        let _ = writeln!(
            s,
            "channel {id}: {} (expected SN {}), {} orders",
            if ch.is_live() { "live" } else { "recovering" },
            ch.expected_seq(),
            image.order_count()
        );
        let mut securities: std::collections::BTreeSet<u32> =
            image.aggregate.keys().copied().collect();
        securities.extend(image.latest.keys().map(|(s, _)| *s));
        securities.extend(image.trades.keys().map(|(s, _)| *s));
        for sec in securities {
            let orders = image.orders_of(sec);
            let mut sides: [BTreeMap<i32, (u64, u32)>; 2] = Default::default();
            for (_, o) in &orders {
                let e = sides[o.side.index()].entry(o.price).or_default();
                e.0 += o.quantity as u64;
                e.1 += 1;
            }
            let fmt_side = |i: usize| -> String {
                let mut v: Vec<(i32, (u64, u32))> =
                    sides[i].iter().map(|(p, q)| (*p, *q)).collect();
                if i == 0 {
                    v.reverse();
                }
                let mut lv: Vec<String> = v
                    .iter()
                    .take(levels)
                    .map(|(p, (q, n))| format!("{}x{q}({n})", twinsite_core::Price::from_omd(*p)))
                    .collect();
                if lv.is_empty() {
                    if let Some(book) = image.aggregate.get(&sec) {
                        lv = book.sides[i]
                            .iter()
                            .take(levels)
                            .map(|l| {
                                format!(
                                    "{}x{}({})",
                                    twinsite_core::Price::from_omd(l.price),
                                    l.aggregate_quantity,
                                    l.number_of_orders
                                )
                            })
                            .collect();
                    }
                }
                if lv.is_empty() {
                    if let Some(Message::CcTopOfBook(t)) = image.latest.get(&(sec, 655)) {
                        let (p, q) = if i == 0 {
                            (t.bid_price, t.aggregate_bid_quantity)
                        } else {
                            (t.ask_price, t.aggregate_ask_quantity)
                        };
                        if q > 0 {
                            lv.push(format!("{}x{q}", twinsite_core::Price::from_omd(p)));
                        }
                    }
                }
                lv.join(" ")
            };
            let trades = image
                .trades
                .range((sec, 0)..=(sec, u32::MAX))
                .filter(|(_, t)| !t.cancelled)
                .count();
            let (bid, ask) = (fmt_side(0), fmt_side(1));
            if bid.is_empty() && ask.is_empty() && trades == 0 {
                continue;
            }
            let _ = writeln!(s, "  {sec:>6}  bid [{bid}]  ask [{ask}]  trades {trades}");
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use twinsite_omd::Packet;

    fn md() -> MarketDataSection {
        let entry = |id: u16, product: &str| ChannelEntry {
            id,
            product: product.into(),
            line_a: format!("239.1.1.{id}:50000").parse().unwrap(),
            line_b: format!("239.1.2.{id}:50000").parse().unwrap(),
        };
        MarketDataSection {
            interface: "127.0.0.1".parse().unwrap(),
            rts: "127.0.0.1:0".parse().unwrap(),
            channels: vec![
                entry(1, "standard"),
                entry(2, "refresh"),
                entry(11, "cc-sse"),
                entry(99, "dr"),
            ],
            pcap: None,
        }
    }

    fn drain(core: &mut FeedCore) -> Vec<(SocketAddr, Vec<u8>)> {
        let mut out = Vec::new();
        core.poll_transmit(|a, b| out.push((a, b.to_vec())));
        out
    }

    fn types(bytes: &[u8]) -> Vec<u16> {
        Packet::parse(bytes)
            .unwrap()
            .messages()
            .map(|(_, raw)| u16::from_le_bytes([raw[2], raw[3]]))
            .collect()
    }

    #[test]
    fn refresh_binds_to_the_channel_before_it_and_unknown_products_are_refused() {
        let kinds: Vec<_> = plan(&md()).unwrap().into_iter().map(|(_, k)| k).collect();
        assert_eq!(kinds[1], ChannelKind::Refresh { serves: 1 });
        let mut bad = md();
        bad.channels[0].product = "nonsense".into();
        assert!(plan(&bad).is_err());
        bad.channels.remove(0);
        assert!(
            plan(&bad).is_err(),
            "a refresh channel needs a real-time one before it"
        );
    }

    #[test]
    fn silent_while_standby_reset_on_activation_dr_signals_after_failover() {
        let t0 = Timestamp::from_secs(1_800_000_000);
        let mut core = FeedCore::new(&md(), [RTS_USER.to_string()], t0).unwrap();
        // Not yet active: nothing, not even heartbeats.
        core.handle_timeout(t0.plus_nanos(10_000_000_000));
        assert!(core.poll_timeout().is_none());
        assert!(drain(&mut core).is_empty());

        let engine = twinsite_engine::Engine::new(
            twinsite_engine::EngineConfig::default(),
            twinsite_engine::refdata::sample(),
        );
        core.handle_input(FeedInput::image_of(&engine), t0);
        core.handle_input(
            FeedInput::Active {
                failover: false,
                now: t0,
            },
            t0,
        );
        let out = drain(&mut core);
        let line_a = |id: u16| -> SocketAddr { format!("239.1.1.{id}:50000").parse().unwrap() };
        for id in [1, 11] {
            let first = out.iter().find(|(a, _)| *a == line_a(id)).unwrap();
            assert_eq!(
                types(&first.1),
                vec![100],
                "channel {id} starts with a reset"
            );
        }
        let all: Vec<u16> = out
            .iter()
            .filter(|(a, _)| *a == line_a(1))
            .flat_map(|(_, b)| types(b))
            .collect();
        assert!(
            all.contains(&10) && all.contains(&11),
            "market and security definitions"
        );
        assert!(!all.contains(&611), "OMD-CC definitions stay off OMD-C");
        let cc: Vec<u16> = out
            .iter()
            .filter(|(a, _)| *a == line_a(11))
            .flat_map(|(_, b)| types(b))
            .collect();
        assert!(cc.contains(&610) && cc.contains(&611) && !cc.contains(&11));
        // No DR signal at the start of the day.
        let dr: Vec<u16> = out
            .iter()
            .filter(|(a, _)| *a == line_a(99))
            .flat_map(|(_, b)| types(b))
            .collect();
        assert!(!dr.contains(&105));

        // Standby: silence, heartbeats included.
        core.handle_input(FeedInput::Standby { now: t0 }, t0);
        core.handle_timeout(t0.plus_nanos(10_000_000_000));
        assert!(drain(&mut core).is_empty());

        // Active after a failover: DR 1 at once, DR 2 later, resets on every channel.
        let t1 = t0.plus_nanos(20_000_000_000);
        core.handle_input(FeedInput::image_of(&engine), t1);
        core.handle_input(
            FeedInput::Active {
                failover: true,
                now: t1,
            },
            t1,
        );
        let dr_status = |out: &[(SocketAddr, Vec<u8>)]| -> Vec<u32> {
            out.iter()
                .filter(|(a, _)| *a == line_a(99))
                .flat_map(|(_, b)| {
                    let p = Packet::parse(b).unwrap();
                    p.messages()
                        .filter_map(|(_, raw)| match Message::decode(raw) {
                            Ok(Message::DisasterRecoverySignal(s)) => Some(s.dr_status),
                            _ => None,
                        })
                        .collect::<Vec<_>>()
                })
                .collect()
        };
        let out = drain(&mut core);
        assert_eq!(dr_status(&out), vec![1]);
        assert_eq!(
            types(&out.iter().find(|(a, _)| *a == line_a(1)).unwrap().1),
            vec![100]
        );
        let t2 = t1.plus_nanos(DR_COMPLETE_AFTER_NS);
        assert!(core.poll_timeout().unwrap() <= t2);
        core.handle_timeout(t2);
        assert_eq!(dr_status(&drain(&mut core)), vec![2]);
    }
}
