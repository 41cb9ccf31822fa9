//! End to end over real multicast on loopback: a site with its feed (OMD-C combined channel
//! with refresh, an OMD-CC SSE channel with refresh, a DR channel, the RTS over TCP), random
//! order flow through the engine, and the reference handler (`FeedClient`) on the groups with
//! loss injected before the handler sees the datagrams: on one line, on both lines, and a
//! long outage of both lines. At the end the handler's books equal the engine's.
//!
//! Seeds: `FEED_E2E_SEED=7` runs one seed for each scenario; the seed is printed on failure.

mod common;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};
use twinsite_core::{BrokerId, ClOrdId, CompId, Price, Qty, SecurityCode, Side};
use twinsite_engine::{Cancel, Command, NewOrder, OrderType, Owner};
use twinsite_omd::{BookSide, FeedHandler, Line, Message};
use twinsite_site::config::{ChannelEntry, MarketDataSection};
use twinsite_site::feed::{self, FeedClient, FeedInput, Received, Stream};
use twinsite_site::feed_map::FeedImage;
use twinsite_site::gateway::{self, AdminCmd, SiteHandle};

/// Upper bound for the handler to converge once the flow stops.
const CONVERGE: Duration = Duration::from_secs(30);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scenario {
    LossOnA,
    LossOnBoth,
    Outage,
}

fn market_data(run: u8) -> MarketDataSection {
    let port = std::net::UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let pid = (std::process::id() % 200) as u8 + 20;
    let group = |ch: u8, line: u8| -> SocketAddr {
        format!("239.{pid}.{run}.{}:{port}", ch * 2 + line)
            .parse()
            .unwrap()
    };
    let entry = |id: u16, product: &str, ch: u8| ChannelEntry {
        id,
        product: product.into(),
        line_a: group(ch, 0),
        line_b: group(ch, 1),
    };
    MarketDataSection {
        interface: "127.0.0.1".parse().unwrap(),
        rts: "127.0.0.1:0".parse().unwrap(),
        channels: vec![
            entry(1, "combined", 1),
            entry(2, "refresh", 2),
            entry(11, "cc-sse", 3),
            entry(12, "refresh", 4),
            entry(99, "dr", 5),
        ],
        pcap: None,
    }
}

/// HK securities of the flow (code, reference price, tick, lot) and one SSE security.
const HK: &[(u32, i64, i64, u64)] = &[
    (5, 65_300, 50, 400),
    (700, 385_200, 200, 100),
    (939, 5_530, 10, 1_000),
];
const SSE: (u32, i64, i64, u64) = (600_519, 1_500_000, 10, 100);

fn owner(i: usize) -> Owner {
    let (comp, broker) = [("CO0001", 1001), ("CO0002", 1002), ("CO0003", 1003)][i % 3];
    Owner {
        broker: BrokerId(broker),
        session: CompId::new(comp).unwrap(),
    }
}

/// Random limit orders near the reference price and cancels of earlier ones.
fn random_commands(rng: &mut ChaCha8Rng, n: usize) -> Vec<Command> {
    let mut out = Vec::new();
    let mut sent: Vec<(Owner, ClOrdId, SecurityCode, Side)> = Vec::new();
    for i in 0..n {
        if !sent.is_empty() && rng.gen_bool(0.25) {
            let k = rng.gen_range(0..sent.len());
            let (o, cl, security, side) = sent.swap_remove(k);
            out.push(Command::Cancel(Cancel {
                owner: o,
                cl_ord_id: ClOrdId::new(&format!("C{i}")).unwrap(),
                orig_cl_ord_id: Some(cl),
                security,
                side,
                order_id: None,
                owning_broker: None,
            }));
            continue;
        }
        let (code, reference, tick, lot) = if rng.gen_bool(0.15) {
            SSE
        } else {
            HK[rng.gen_range(0..HK.len())]
        };
        let side = if rng.gen() { Side::Buy } else { Side::Sell };
        // Buyers mostly below, sellers mostly above: a book with depth and some trades.
        let offset = rng.gen_range(-6i64..=3) * tick;
        let price = match side {
            Side::Buy => reference + offset,
            Side::Sell => reference - offset,
        };
        let o = owner(rng.gen_range(0..3));
        let cl = ClOrdId::new(&format!("N{i}")).unwrap();
        sent.push((o, cl, SecurityCode(code), side));
        out.push(Command::NewOrder(NewOrder {
            owner: o,
            cl_ord_id: cl,
            security: SecurityCode(code),
            side,
            order_type: OrderType::Limit,
            price: Some(Price(price)),
            qty: Qty(lot * rng.gen_range(1..=5)),
            short_sell: false,
        }));
    }
    out
}

async fn engine_image(site: &SiteHandle) -> FeedImage {
    let (tx, rx) = oneshot::channel();
    site.admin(AdminCmd::FeedImage(tx));
    rx.await.unwrap().expect("the site is active")
}

fn omd_side(side: Side) -> BookSide {
    match side {
        Side::Buy => BookSide::Bid,
        Side::Sell => BookSide::Offer,
    }
}

/// A resting order: id, price, quantity.
type Resting = (u64, i32, u32);

/// `Ok` if the handler's channel 1 order books and channel 11 top of book equal the engine's.
fn compare(handler: &FeedHandler, expected: &FeedImage) -> Result<(), String> {
    let (Some(hk), Some(cc)) = (handler.channel(1), handler.channel(11)) else {
        return Err("channels missing".into());
    };
    if !hk.is_live() || !cc.is_live() {
        return Err(format!(
            "not live: channel 1 {}, channel 11 {}",
            hk.is_live(),
            cc.is_live()
        ));
    }
    // Engine: per (security, side), orders in priority order.
    let mut want: BTreeMap<(u32, BookSide), Vec<Resting>> = BTreeMap::new();
    for o in &expected.orders {
        want.entry((o.security.0, omd_side(o.side)))
            .or_default()
            .push((o.order_id, o.price.0 as i32, o.qty.0 as u32));
    }
    for &(code, ..) in HK {
        let mut got: BTreeMap<BookSide, Vec<Resting>> = BTreeMap::new();
        for (id, o) in hk.image().orders_of(code) {
            got.entry(o.side)
                .or_default()
                .push((id, o.price, o.quantity));
        }
        for side in [BookSide::Bid, BookSide::Offer] {
            let mut g = got.remove(&side).unwrap_or_default();
            // Priority: best price first, then arrival (stable sort keeps arrival order).
            match side {
                BookSide::Bid => g.sort_by_key(|o| std::cmp::Reverse(o.1)),
                BookSide::Offer => g.sort_by_key(|o| o.1),
            }
            let w = want.get(&(code, side)).cloned().unwrap_or_default();
            if g != w {
                return Err(format!(
                    "security {code} {side:?}: handler {} orders, engine {}: {:?} vs {:?}",
                    g.len(),
                    w.len(),
                    g.iter().take(5).collect::<Vec<_>>(),
                    w.iter().take(5).collect::<Vec<_>>()
                ));
            }
        }
    }
    // OMD-CC: top of book (best price and the quantity at it).
    let top = |side: BookSide| -> (i32, u64) {
        let Some(orders) = want.get(&(SSE.0, side)) else {
            return (0, 0);
        };
        let Some(best) = orders.first().map(|o| o.1) else {
            return (0, 0);
        };
        let qty = orders
            .iter()
            .filter(|o| o.1 == best)
            .map(|o| o.2 as u64)
            .sum();
        (best, qty)
    };
    let (bid, ask) = (top(BookSide::Bid), top(BookSide::Offer));
    let got = match cc.image().latest.get(&(SSE.0, 655)) {
        Some(Message::CcTopOfBook(t)) => (
            (t.bid_price, t.aggregate_bid_quantity),
            (t.ask_price, t.aggregate_ask_quantity),
        ),
        _ => ((0, 0), (0, 0)),
    };
    if got != (bid, ask) {
        return Err(format!(
            "SSE {} top of book: handler {got:?}, engine {:?}",
            SSE.0,
            (bid, ask)
        ));
    }
    // Stock Connect Daily Quota Balance (80) on OMD-C: NULL while >= 30 % remains.
    match hk.image().reference.get(&(80, b"SHNB".to_vec())) {
        Some(Message::StockConnectDailyQuotaBalance(q)) if q.daily_quota_balance.is_none() => {}
        other => return Err(format!("Daily Quota Balance SH NB: {other:?}")),
    }
    if !cc.image().latest.contains_key(&(SSE.0, 611)) {
        return Err("no OMD-CC Security Definition (611)".into());
    }
    Ok(())
}

async fn run(seed: u64, scenario: Scenario) -> Result<String, String> {
    let mut cfg = common::site_config(common::abc());
    let md = market_data((seed % 50) as u8 * 4 + scenario as u8);
    let pcap = (scenario == Scenario::LossOnA)
        .then(|| std::env::temp_dir().join(format!("feed-e2e-{}-{seed}.pcap", std::process::id())));
    let mut md = md;
    md.pcap = pcap.clone();
    cfg.market_data = Some(md.clone());
    // The handler joins the groups before the site starts, so it sees the start of day.
    let mut client = FeedClient::new(&md, feed::RTS_USER).map_err(|e| e.to_string())?;
    let (site, feed) = feed::start_with_feed(cfg)
        .await
        .map_err(|e| e.to_string())?;
    let feed = feed.expect("market data configured");
    client.rts = vec![feed.rts_addr];

    // Start of day: the reset, then the first refresh cycle; the flow starts once live.
    let live = |h: &FeedHandler| {
        [1, 11]
            .iter()
            .all(|&c| h.channel(c).is_some_and(|c| c.is_live()))
    };
    let started = client
        .run_until(tokio::time::Instant::now() + CONVERGE, live)
        .await;
    if !started {
        return Err(format!(
            "seed {seed}: the handler never went live: {:?}",
            client.recent
        ));
    }
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let flow_start = tokio::time::Instant::now();
    let outage = rng.gen_range(300..500u64);
    let (loss_a, loss_b) = match scenario {
        Scenario::LossOnA => (0.2, 0.0),
        Scenario::LossOnBoth => (0.1, 0.1),
        Scenario::Outage => (0.0, 0.0),
    };
    let mut loss_rng = ChaCha8Rng::seed_from_u64(seed ^ 0x5eed);
    client.drop = Some(Box::new(move |r: &Received| {
        if r.stream != Stream::RealTime {
            return false;
        }
        let at = flow_start.elapsed().as_millis() as u64;
        if scenario == Scenario::Outage && (outage..outage + 600).contains(&at) {
            return true;
        }
        let p = match r.line {
            Line::A => loss_a,
            Line::B => loss_b,
        };
        loss_rng.gen_bool(p)
    }));

    // The flow: bursts of commands paced by an interval, in a task of its own.
    let commands = random_commands(&mut rng, 2_400);
    let (done_tx, mut done_rx) = mpsc::unbounded_channel::<()>();
    let admin = std::sync::Arc::new(site);
    let flow_site = admin.clone();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_millis(4));
        for chunk in commands.chunks(8) {
            tick.tick().await;
            for c in chunk {
                flow_site.admin(AdminCmd::Engine(c.clone()));
            }
        }
        let _ = done_tx.send(());
    });
    // Run the handler during the flow.
    let flow_deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let mut flow_done = false;
    while !flow_done && tokio::time::Instant::now() < flow_deadline {
        let step = tokio::time::Instant::now() + Duration::from_millis(50);
        client.run_until(step, |_| false).await;
        flow_done = done_rx.try_recv().is_ok();
    }
    let expected = engine_image(&admin).await;
    let deadline = tokio::time::Instant::now() + CONVERGE;
    let mut last = String::new();
    let ok = client
        .run_until(deadline, |h| match compare(h, &expected) {
            Ok(()) => true,
            Err(e) => {
                last = e;
                false
            }
        })
        .await;
    let stats = &client.events;
    let summary = format!(
        "seed {seed} {scenario:?}: {} engine orders, received {} dropped {}, handler events {stats:?}, feed {} messages {} datagrams",
        expected.orders.len(),
        client.received,
        client.dropped,
        feed.stats.messages.load(std::sync::atomic::Ordering::Relaxed),
        feed.stats.datagrams.load(std::sync::atomic::Ordering::Relaxed),
    );
    // A handler that joins late (as `twinsite feed` on a running site): it missed the start of
    // day and the flow; heartbeats show the gap, retransmission or refresh fill it.
    if ok && scenario == Scenario::LossOnBoth {
        let mut late = FeedClient::new(&md, feed::RTS_USER).map_err(|e| e.to_string())?;
        late.rts = vec![feed.rts_addr];
        let deadline = tokio::time::Instant::now() + CONVERGE;
        let caught_up = late
            .run_until(deadline, |h| compare_or(h, &expected, &mut last))
            .await;
        if !caught_up {
            return Err(format!(
                "{summary}\nthe late joiner did not catch up: {last}\n{:?}",
                late.recent
            ));
        }
        println!("late joiner: {:?}", late.events);
    }
    let datagrams = feed
        .stats
        .datagrams
        .load(std::sync::atomic::Ordering::Relaxed);
    feed.shutdown();
    if let Ok(site) = std::sync::Arc::try_unwrap(admin) {
        site.shutdown();
    }
    if let Some(path) = pcap {
        check_pcap(&path, &md, datagrams)?;
        let _ = std::fs::remove_file(&path);
    }
    if ok {
        let count = |k: &str| client.events.get(k).copied().unwrap_or(0);
        match scenario {
            Scenario::LossOnA => {}
            _ if count("retransmission") + count("refresh started") == 0 => {
                return Err(format!("{summary}\nno recovery was exercised"));
            }
            _ => {}
        }
        Ok(summary)
    } else {
        Err(format!(
            "{summary}\nlast difference: {last}\nrecent handler events: {:?}",
            client.recent
        ))
    }
}

/// The pcap file holds one Ethernet/IPv4/UDP frame per datagram sent (the feed flushes the
/// file after each send burst), each to a configured group, each a well-formed OMD packet.
fn check_pcap(path: &std::path::Path, md: &MarketDataSection, sent: u64) -> Result<(), String> {
    let bytes = std::fs::read(path).map_err(|e| e.to_string())?;
    let frames = twinsite_site::pcap::read_udp_frames(&bytes)?;
    // The task may have sent a heartbeat between reading the counter and stopping.
    if (frames.len() as u64) < sent {
        return Err(format!(
            "pcap: {} frames, {sent} datagrams sent",
            frames.len()
        ));
    }
    let groups: Vec<SocketAddr> = md
        .channels
        .iter()
        .flat_map(|c| [c.line_a, c.line_b])
        .collect();
    for f in &frames {
        if !groups.contains(&SocketAddr::V4(f.dst)) {
            return Err(format!(
                "pcap: frame to {} is not a configured group",
                f.dst
            ));
        }
        twinsite_omd::Packet::parse(&f.payload)
            .map_err(|e| format!("pcap: frame to {} is not an OMD packet: {e}", f.dst))?;
    }
    Ok(())
}

fn seeds() -> Vec<u64> {
    match std::env::var("FEED_E2E_SEED") {
        Ok(s) => vec![s.parse().expect("FEED_E2E_SEED is a number")],
        Err(_) => vec![1, 2],
    }
}

async fn scenario(scenario: Scenario) {
    for seed in seeds() {
        match run(seed, scenario).await {
            Ok(summary) => println!("{summary}"),
            Err(e) => panic!("FEED_E2E_SEED={seed} {scenario:?} failed: {e}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn loss_on_line_a_is_filled_by_line_b() {
    scenario(Scenario::LossOnA).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn loss_on_both_lines_is_recovered_by_retransmission() {
    scenario(Scenario::LossOnBoth).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn long_outage_on_both_lines_is_recovered() {
    scenario(Scenario::Outage).await;
}

/// A site failover as the feed sees it: site A publishes, falls silent (standby); site B
/// becomes active with the replicated books: DR signal 1, a Sequence Reset on every channel,
/// the image, DR signal 2. The handler ends with site B's books, its RTS session moved to B.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dr_failover_to_the_other_site_rebuilds_the_books() {
    let seed = seeds()[0];
    let md = market_data(200 + (seed % 50) as u8);
    let mut client = FeedClient::new(&md, feed::RTS_USER).unwrap();
    let (tx_a, rx_a) = mpsc::unbounded_channel();
    let (tx_b, rx_b) = mpsc::unbounded_channel();
    let users = vec![feed::RTS_USER.to_string()];
    let feed_a = feed::run_feed(md.clone(), users.clone(), rx_a)
        .await
        .unwrap();
    let feed_b = feed::run_feed(md.clone(), users, rx_b).await.unwrap();
    client.rts = vec![feed_a.rts_addr, feed_b.rts_addr];

    // The engine both sites replicate.
    let cfg = common::site_config(common::abc());
    let (exchange, _, _) = gateway::build(&cfg, gateway::wall_clock()).unwrap();
    let mut engine = exchange.engine;
    let now = gateway::wall_clock();
    tx_a.send(FeedInput::image_of(&engine)).unwrap();
    tx_a.send(FeedInput::Active {
        failover: false,
        now,
    })
    .unwrap();
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let commands = random_commands(&mut rng, 600);
    let (first, second) = commands.split_at(300);
    for chunk in first.chunks(10) {
        let now = gateway::wall_clock();
        let events: Vec<_> = chunk.iter().flat_map(|c| engine.apply(c, now)).collect();
        tx_a.send(FeedInput::Events { events, now }).unwrap();
    }
    let before = FeedImage::of(&engine);
    let step = tokio::time::Instant::now() + CONVERGE;
    let mut last = String::new();
    let caught_up = client
        .run_until(step, |h| compare_or(h, &before, &mut last))
        .await;
    assert!(
        caught_up,
        "FEED_E2E_SEED={seed}: before the failover: {last}"
    );

    // Failover: A silent, B active with the replicated state, then more flow on B.
    tx_a.send(FeedInput::Standby {
        now: gateway::wall_clock(),
    })
    .unwrap();
    tx_b.send(FeedInput::image_of(&engine)).unwrap();
    tx_b.send(FeedInput::Active {
        failover: true,
        now: gateway::wall_clock(),
    })
    .unwrap();
    for chunk in second.chunks(10) {
        let now = gateway::wall_clock();
        let events: Vec<_> = chunk.iter().flat_map(|c| engine.apply(c, now)).collect();
        tx_b.send(FeedInput::Events { events, now }).unwrap();
    }
    let after = FeedImage::of(&engine);
    let step = tokio::time::Instant::now() + CONVERGE;
    let rebuilt = client
        .run_until(step, |h| compare_or(h, &after, &mut last))
        .await;
    assert!(rebuilt, "FEED_E2E_SEED={seed}: after the failover: {last}");
    let count = |k: &str| client.events.get(k).copied().unwrap_or(0);
    assert_eq!(
        count("dr"),
        2,
        "DR in progress then completed: {:?}",
        client.recent
    );
    assert!(
        count("refreshed") >= 4,
        "both channels rebuilt at the start of day and after DR: {:?}",
        client.events
    );
    feed_a.shutdown();
    feed_b.shutdown();
}

fn compare_or(h: &FeedHandler, want: &FeedImage, last: &mut String) -> bool {
    match compare(h, want) {
        Ok(()) => true,
        Err(e) => {
            *last = e;
            false
        }
    }
}
