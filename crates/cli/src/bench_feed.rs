//! `twinsite bench feed`: the site's market-data feed from engine events to the socket, against
//! the raw UDP send rate of the same datagrams on the same socket (baseline, same run), and the
//! reference handler's decode rate.
//!
//! # Workload
//!
//! A twinsite engine on the shipped sample securities (HK only) in continuous trading takes a
//! seeded stream of limit orders near the previous close (some crossing) and cancels of earlier
//! orders (30 %, 60 % while more than 2,000 orders rest, so the books keep a realistic depth). Its events are grouped `batch` commands per feed input, as the
//! site's core hands them over under load. Generating the events is never timed.
//!
//! # Measurement
//!
//! * `publish`: `FeedCore` (event mapping, FullTick product builder, sequencing, Line A / Line B
//!   packetisation, refresh bookkeeping, and in `poll_transmit` the RTS store's copy of each
//!   Line A packet) plus the send of every datagram to its multicast group on 127.0.0.1
//!   (IP_MULTICAST_IF, loopback on, nobody joined) as the site sends them: what one input
//!   produced, gathered into a `SendBatch` and sent with one `sendmmsg` call. One timed loop.
//! * `raw_udp`: the same datagrams (same bytes, same groups, same order, same socket) sent two
//!   ways, each one timed loop: one `send_to` per datagram, and `sendmmsg` with the publish
//!   run's batches, prepared before the clock starts. The faster of the two is the machine's
//!   packet rate for this traffic: `publish_vs_raw` = publish datagrams/s / that rate (both
//!   lines counted on both sides). `publish_vs_raw_send_to` and `publish_vs_raw_sendmmsg`
//!   give the ratio to each.
//! * `decode`: every real-time datagram of Line A parsed (packet header, message headers) and
//!   every message decoded into its typed form: messages/s. `handler`: the same datagrams
//!   (both lines) through `FeedHandler` (arbitration, sequencing, book image): messages/s.
//!
//! Each figure is the median of `runs` runs. Rates are wall-clock. On a shared machine a loop
//! is descheduled for a random share of its wall time, so `cpu` also gives each loop's rate
//! over the CPU time of the thread (`CLOCK_THREAD_CPUTIME_ID`: user and system time of the
//! thread, the sends' kernel work included) and `publish_vs_raw` on that basis; the targets are
//! checked on the wall-clock figures.

use anyhow::Result;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::{json, Value};
use std::hint::black_box;
use std::net::SocketAddr;
use std::time::Instant;
use twinsite_core::{BrokerId, ClOrdId, CompId, Price, Qty, SecurityCode, Side, Timestamp};
use twinsite_engine::{
    refdata, Cancel, Command, Engine, EngineConfig, Event, NewOrder, OrderType, Owner, Phase,
};
use twinsite_omd::{FeedHandler, HandlerConfig, Line, Message, Packet, RtsClientConfig};
use twinsite_site::config::{ChannelEntry, MarketDataSection};
use twinsite_site::feed::{multicast_sender, FeedCore, FeedInput, SendBatch};
use twinsite_site::feed_map::FeedImage;

pub struct Opts {
    pub commands: usize,
    pub batch: usize,
    pub seed: u64,
    pub runs: usize,
}

fn market_data() -> MarketDataSection {
    let entry = |id: u16, product: &str, n: u8| ChannelEntry {
        id,
        product: product.into(),
        line_a: format!("239.77.1.{n}:53001").parse().unwrap(),
        line_b: format!("239.77.2.{n}:53001").parse().unwrap(),
    };
    MarketDataSection {
        interface: "127.0.0.1".parse().unwrap(),
        rts: "127.0.0.1:0".parse().unwrap(),
        channels: vec![entry(1, "fulltick", 1), entry(2, "refresh", 2)],
        pcap: None,
    }
}

/// Engine event batches of a seeded order flow.
fn workload(opts: &Opts) -> (FeedImage, Vec<Vec<Event>>) {
    let securities: Vec<_> = refdata::sample()
        .into_iter()
        .filter(|s| !s.segment.is_china_connect())
        .collect();
    let mut engine = Engine::new(EngineConfig::default(), securities.clone());
    engine.apply(&Command::SetPhase(Phase::ContinuousMorning), Timestamp(0));
    let start = FeedImage::of(&engine);
    let mut rng = ChaCha8Rng::seed_from_u64(opts.seed);
    let owners: Vec<Owner> = (0..4)
        .map(|i| Owner {
            broker: BrokerId(1001 + i),
            session: CompId::new(&format!("CO000{}", i + 1)).unwrap(),
        })
        .collect();
    let mut live: Vec<(Owner, ClOrdId, SecurityCode, Side)> = Vec::new();
    let mut batches = Vec::new();
    let mut batch = Vec::new();
    let t0 = Timestamp::from_secs(1_800_000_000);
    for i in 0..opts.commands {
        let now = t0.plus_nanos(i as u64 * 1_000);
        // Cancels keep the books at a realistic depth (about 2,000 resting orders in all).
        let cancel = if live.len() > 2_000 { 0.6 } else { 0.3 };
        let cmd = if !live.is_empty() && rng.gen_bool(cancel) {
            let k = rng.gen_range(0..live.len());
            let (owner, cl, security, side) = live.swap_remove(k);
            Command::Cancel(Cancel {
                owner,
                cl_ord_id: ClOrdId::new(&format!("C{i}")).unwrap(),
                orig_cl_ord_id: Some(cl),
                security,
                side,
                order_id: None,
                owning_broker: None,
            })
        } else {
            let s = &securities[rng.gen_range(0..securities.len())];
            let side = if rng.gen() { Side::Buy } else { Side::Sell };
            // Mostly passive, sometimes one or two spreads through the close.
            let n = rng.gen_range(-2..=8);
            let price = match side {
                Side::Buy => s.spread_table.shift(s.prev_close, -n),
                Side::Sell => s.spread_table.shift(s.prev_close, n),
            };
            let owner = owners[rng.gen_range(0..owners.len())];
            let cl = ClOrdId::new(&format!("N{i}")).unwrap();
            live.push((owner, cl, s.code, side));
            Command::NewOrder(NewOrder {
                owner,
                cl_ord_id: cl,
                security: s.code,
                side,
                order_type: OrderType::Limit,
                price: Some(Price(price.0)),
                qty: Qty(s.lot_size * rng.gen_range(1..=4)),
                short_sell: false,
            })
        };
        batch.extend(engine.apply(&cmd, now));
        if (i + 1) % opts.batch == 0 {
            batches.push(std::mem::take(&mut batch));
        }
    }
    if !batch.is_empty() {
        batches.push(batch);
    }
    (start, batches)
}

/// CPU time this thread has used so far (user and system), in seconds (NaN where unknown).
#[cfg(unix)]
fn thread_cpu_secs() -> f64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec; the call only writes it.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    if rc != 0 {
        return f64::NAN;
    }
    ts.tv_sec as f64 + ts.tv_nsec as f64 * 1e-9
}

#[cfg(not(unix))]
fn thread_cpu_secs() -> f64 {
    f64::NAN
}

/// Wall-clock and thread CPU time of one timed loop.
struct Clocks {
    wall: Instant,
    cpu: f64,
}

impl Clocks {
    fn start() -> Clocks {
        Clocks {
            wall: Instant::now(),
            cpu: thread_cpu_secs(),
        }
    }
    /// (wall seconds, CPU seconds) since `start`.
    fn elapsed(&self) -> (f64, f64) {
        (
            self.wall.elapsed().as_secs_f64(),
            thread_cpu_secs() - self.cpu,
        )
    }
}

struct PublishRun {
    secs: f64,
    cpu_secs: f64,
    messages: u64,
    /// Datagrams before the measured flow (in `datagrams` when kept).
    start_of_day: usize,
    datagrams: Vec<(SocketAddr, Vec<u8>)>,
    /// Datagrams of each send of the measured flow (when kept).
    batches: Vec<usize>,
}

fn publish_run(
    md: &MarketDataSection,
    image: &FeedImage,
    batches: &[Vec<Event>],
    socket: &std::net::UdpSocket,
    keep: bool,
) -> Result<PublishRun> {
    let t0 = Timestamp::from_secs(1_800_000_000);
    let mut core = FeedCore::new(md, ["bench".to_string()], t0)?;
    core.handle_input(FeedInput::Image(Box::new(image.clone())), t0);
    core.handle_input(
        FeedInput::Active {
            failover: false,
            now: t0,
        },
        t0,
    );
    let mut datagrams = Vec::new();
    // Start-of-day output (reset, reference data) is kept but not measured.
    core.poll_transmit(|dst, bytes| {
        if keep {
            datagrams.push((dst, bytes.to_vec()));
        }
    });
    let start_of_day = datagrams.len();
    let base = core
        .stats
        .messages
        .load(std::sync::atomic::Ordering::Relaxed);
    let mut failures = 0u64;
    let mut send = SendBatch::default();
    let mut sizes = Vec::new();
    let start = Clocks::start();
    for (i, b) in batches.iter().enumerate() {
        let now = t0.plus_nanos(i as u64 * 50_000);
        core.on_events(b, now);
        core.poll_transmit(|dst, bytes| {
            send.push(dst, bytes);
            if keep {
                datagrams.push((dst, bytes.to_vec()));
            }
        });
        if !send.is_empty() {
            if keep {
                sizes.push(send.len());
            }
            failures += send.send(socket);
        }
    }
    // Line B's last open packet (linger) and the end of the flow.
    let end = t0.plus_nanos(batches.len() as u64 * 50_000 + 2_000_000);
    core.handle_timeout(end);
    core.poll_transmit(|dst, bytes| {
        send.push(dst, bytes);
        if keep {
            datagrams.push((dst, bytes.to_vec()));
        }
    });
    if keep && !send.is_empty() {
        sizes.push(send.len());
    }
    failures += send.send(socket);
    let (secs, cpu_secs) = start.elapsed();
    anyhow::ensure!(failures == 0, "{failures} sends failed");
    let messages = core
        .stats
        .messages
        .load(std::sync::atomic::Ordering::Relaxed)
        - base;
    Ok(PublishRun {
        secs,
        cpu_secs,
        messages,
        start_of_day,
        datagrams,
        batches: sizes,
    })
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

pub fn run(opts: &Opts) -> Result<Value> {
    let md = market_data();
    let (image, batches) = workload(opts);
    let events: usize = batches.iter().map(Vec::len).sum();
    let socket = multicast_sender(md.interface)?;
    let rt_groups = [md.channels[0].line_a, md.channels[0].line_b];

    // One run kept for the baseline and the decode runs.
    let reference = publish_run(&md, &image, &batches, &socket, true)?;
    let all = reference.datagrams;
    // The measured flow's datagrams (the baseline sends the same).
    let datagrams = &all[reference.start_of_day..];
    let sent_bytes: usize = datagrams.iter().map(|(_, d)| d.len()).sum();
    // The publish run's sends, ready for the raw sendmmsg loop.
    let mut raw_batches = Vec::new();
    let mut at = 0;
    for &n in &reference.batches {
        let mut b = SendBatch::default();
        for (dst, d) in &datagrams[at..at + n] {
            b.push(*dst, d);
        }
        at += n;
        raw_batches.push(b);
    }
    anyhow::ensure!(at == datagrams.len(), "batches cover the flow");
    let mut publish = Vec::new();
    let mut raw = Vec::new();
    let mut raw_mmsg = Vec::new();
    // The same three loops' rates over thread CPU time.
    let (mut publish_cpu, mut raw_cpu, mut raw_mmsg_cpu) = (Vec::new(), Vec::new(), Vec::new());
    let n = datagrams.len() as f64;
    for _ in 0..opts.runs.max(1) {
        let r = publish_run(&md, &image, &batches, &socket, false)?;
        publish.push(n / r.secs);
        publish_cpu.push(n / r.cpu_secs);
        let start = Clocks::start();
        for (dst, d) in datagrams {
            socket.send_to(d, *dst)?;
        }
        let (wall, cpu) = start.elapsed();
        raw.push(n / wall);
        raw_cpu.push(n / cpu);
        let start = Clocks::start();
        let mut failures = 0;
        for b in &raw_batches {
            failures += b.send_keep(&socket);
        }
        let (wall, cpu) = start.elapsed();
        raw_mmsg.push(n / wall);
        raw_mmsg_cpu.push(n / cpu);
        anyhow::ensure!(failures == 0, "{failures} raw sends failed");
    }
    let publish_dps = median(publish);
    let raw_send_to_dps = median(raw);
    let raw_mmsg_dps = median(raw_mmsg);
    let raw_dps = raw_send_to_dps.max(raw_mmsg_dps);
    let publish_cpu_dps = median(publish_cpu);
    let raw_cpu_dps = median(raw_cpu).max(median(raw_mmsg_cpu));
    let messages = reference.messages;

    // Messages per real-time datagram, per line.
    let rt: Vec<(Line, &[u8])> = all
        .iter()
        .filter_map(|(dst, d)| {
            if *dst == rt_groups[0] {
                Some((Line::A, d.as_slice()))
            } else if *dst == rt_groups[1] {
                Some((Line::B, d.as_slice()))
            } else {
                None
            }
        })
        .collect();
    let per_line = |line: Line| -> (usize, u64) {
        let packets: Vec<_> = rt.iter().filter(|(l, _)| *l == line).collect();
        let msgs: u64 = packets
            .iter()
            .map(|(_, d)| Packet::parse(d).map_or(0, |p| p.header.msg_count as u64))
            .sum();
        (packets.len(), msgs)
    };
    let (a_packets, a_msgs) = per_line(Line::A);
    let (b_packets, b_msgs) = per_line(Line::B);

    // Decode: Line A, every message parsed and decoded.
    let mut decode = Vec::new();
    let mut handler_rates = Vec::new();
    for _ in 0..opts.runs.max(1) {
        let start = Instant::now();
        let mut n = 0u64;
        for (line, d) in &rt {
            if *line != Line::A {
                continue;
            }
            if let Ok(p) = Packet::parse(d) {
                for (_, raw) in p.messages() {
                    if let Ok(m) = Message::decode(raw) {
                        black_box(&m);
                        n += 1;
                    }
                }
            }
        }
        decode.push(n as f64 / start.elapsed().as_secs_f64());

        let mut config = HandlerConfig::new(1);
        config.refresh_after_sequence_reset = false;
        let mut handler = FeedHandler::new([config], RtsClientConfig::new("bench"));
        let now = Timestamp::from_secs(1_800_000_000);
        let start = Instant::now();
        for (line, d) in &rt {
            handler.handle_realtime(1, *line, d, now);
            while handler.poll_event().is_some() {}
        }
        let secs = start.elapsed().as_secs_f64();
        let ch = handler.channel(1).expect("configured");
        anyhow::ensure!(
            ch.is_live(),
            "the handler fell out of sequence in the bench"
        );
        handler_rates.push(a_msgs as f64 / secs);
    }
    let decode_mps = median(decode);
    let handler_mps = median(handler_rates);
    Ok(json!({
        "workload": {
            "commands": opts.commands,
            "commands_per_batch": opts.batch,
            "engine_events": events,
            "seed": opts.seed,
            "channels": "1 fulltick (Line A + Line B) + its refresh channel",
        },
        "publish": {
            "messages": messages,
            "datagrams": datagrams.len(),
            "bytes": sent_bytes,
            "messages_per_sec": messages as f64 * publish_dps / datagrams.len() as f64,
            "datagrams_per_sec": publish_dps,
            "line_a": { "packets": a_packets, "messages_per_packet": a_msgs as f64 / a_packets.max(1) as f64 },
            "line_b": { "packets": b_packets, "messages_per_packet": b_msgs as f64 / b_packets.max(1) as f64 },
            "messages_per_datagram": (a_msgs + b_msgs) as f64 / (a_packets + b_packets).max(1) as f64,
        },
        "raw_udp": {
            "datagrams_per_sec": raw_dps,
            "send_to_datagrams_per_sec": raw_send_to_dps,
            "sendmmsg_datagrams_per_sec": raw_mmsg_dps,
            "sends": raw_batches.len(),
        },
        "publish_vs_raw": publish_dps / raw_dps,
        "cpu": {
            "publish_datagrams_per_cpu_sec": publish_cpu_dps,
            "raw_datagrams_per_cpu_sec": raw_cpu_dps,
            "publish_vs_raw": publish_cpu_dps / raw_cpu_dps,
        },
        "publish_vs_raw_send_to": publish_dps / raw_send_to_dps,
        "publish_vs_raw_sendmmsg": publish_dps / raw_mmsg_dps,
        "targets": {
            "publish_vs_raw_min": 0.75,
            "messages_per_datagram_min": 10.0,
            "decode_messages_per_sec_min": 10_000_000.0,
            "met": publish_dps / raw_dps >= 0.75
                && (a_msgs + b_msgs) as f64 / (a_packets + b_packets).max(1) as f64 >= 10.0
                && decode_mps >= 10_000_000.0,
        },
        "decode": { "messages_per_sec": decode_mps },
        "handler": { "messages_per_sec": handler_mps },
        "runs": opts.runs,
    }))
}
