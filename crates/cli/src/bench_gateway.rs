//! `twinsite bench gateway`: the OCG-C binary gateway over loopback TCP.
//!
//! * Round trip: one binary session (a blocking socket, frames built with the codec) sends a New
//!   Order and waits for its Execution Report, one at a time; p50/p99/p99.9. In the same run, a
//!   raw TCP echo round trip of a message of the same size with the same socket settings
//!   (loopback, TCP_NODELAY on both ends, the echo server a task on the same tokio runtime as the
//!   site) as the floor. Both are taken **blocking** (the client blocks in `read`; the site's
//!   tasks park in epoll), not busy-polling.
//! * Placement: the round trips (gateway, then echo) are taken under each `--placement` in
//!   turn: `same-cpu` (every thread of the process pinned to one CPU), `split-cpus` (the client
//!   thread on one CPU, the site's and the echo's threads on another) and `os` (unpinned). On a
//!   VM an idle vCPU is halted and a wake-up on it costs an inter-processor interrupt (40-50 µs
//!   on the VM of BENCHMARKS.md); unpinned, the scheduler puts each phase on one vCPU or across
//!   two at random, so the two phases of one run can differ in wake-up mode. Pinned, both phases
//!   run in the same mode by construction; `targets.met` judges those, `met_os_placement` the
//!   unpinned round trips (see `bench_common::targets`).
//! * Sustained: 10 sessions, throttle off, each keeping a window of orders in flight; orders
//!   acknowledged per second of wall time.
//!
//! The site is a single site (`gateway::start`: no replication, output released when applied),
//! the engine in continuous trading, orders resting (buys at 65.20, sells at 65.40 in security 5).

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use rand_chacha::rand_core::SeedableRng;
use serde_json::json;

use crate::bench_common::{
    echo_server, round_trips_by_placement, verdict, EchoClient, GatewayBenchOpts, RoundTripSpec,
    RuntimeThread, Targets, WAKE_UP,
};
use twinsite_core::{Price, Qty};
use twinsite_ocg::password::{encrypt_password, Padding};
use twinsite_ocg::*;
use twinsite_site::config::SiteConfig;
use twinsite_site::gateway::{self, wall_clock};

const KEY_PEM: &str = include_str!("../../site/tests/data/test-key.pem");
const PASSWORD: &str = "Passw0rd";

fn config(key: &std::path::Path, comps: &[String]) -> anyhow::Result<SiteConfig> {
    let participants: Vec<_> = comps
        .iter()
        .enumerate()
        .map(|(i, c)| {
            json!({
                "firm": format!("Bench{i}"),
                "comp_id": c,
                "broker_ids": [2001 + i as u32],
                "password": PASSWORD,
                "throttle_units": 1000,
            })
        })
        .collect();
    let mut cfg: SiteConfig = serde_json::from_value(json!({
        "site": {
            "lookup": ["127.0.0.1:0"],
            "gateway_primary": "127.0.0.1:0",
            "gateway_mirror": "127.0.0.1:0",
            "keys": [key],
        },
        "session": { "heartbeat_ms": 20000, "password_tolerance_secs": 120, "throttle": false },
        "participant": participants,
    }))?;
    // For comparison only: the site without capacity reserved up front (docs/operations.md,
    // "Capacity"), whose vectors grow by doubling while orders flow.
    if std::env::var_os(NO_RESERVE_ENV).is_some() {
        cfg.engine.reserve_orders = 0;
        cfg.session.reserve_outbound = 0;
    }
    Ok(cfg)
}

const NO_RESERVE_ENV: &str = "TWINSITE_BENCH_NO_RESERVE";

/// A binary participant on a blocking socket.
struct Client {
    stream: TcpStream,
    comp: FixedStr<12>,
    broker: u32,
    seq: u32,
    decoder: FrameDecoder,
    buf: Vec<u8>,
    ers: usize,
}

impl Client {
    fn logon(
        addr: SocketAddr,
        comp: &str,
        broker: u32,
        key: &rsa::RsaPublicKey,
    ) -> anyhow::Result<Client> {
        let stream = TcpStream::connect(addr)?;
        stream.set_nodelay(true)?;
        let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(7);
        let pw = encrypt_password(key, Padding::Pkcs1v15, wall_clock(), PASSWORD, &mut rng)
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        let mut c = Client {
            stream,
            comp: FixedStr::new(comp),
            broker,
            seq: 1,
            decoder: FrameDecoder::new(frame::MAX_FRAME_LEN),
            buf: vec![0; 1 << 16],
            ers: 0,
        };
        let logon = Message::Logon(Logon {
            password: Some(FixedStr::new(&pw)),
            new_password: None,
            next_expected_sequence: 1,
            session_status: None,
            text: None,
            test_message_indicator: None,
        });
        let bytes = frame::encode(c.seq, false, false, &c.comp, &logon)?;
        c.seq += 1;
        c.stream.write_all(&bytes)?;
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            anyhow::ensure!(Instant::now() < deadline, "{comp}: no logon reply");
            if c.read()?.contains(&Logon::MSG_TYPE) {
                return Ok(c);
            }
        }
    }

    /// Read what is there; returns the message types received, counting Execution Reports.
    fn read(&mut self) -> anyhow::Result<Vec<u8>> {
        let n = self.stream.read(&mut self.buf)?;
        anyhow::ensure!(n > 0, "connection closed by the gateway");
        self.decoder.feed(&self.buf[..n]);
        let mut types = Vec::new();
        while let Some(f) = self
            .decoder
            .next_frame()
            .map_err(|e| anyhow::anyhow!("{e}"))?
        {
            if f.header.msg_type == ExecutionReport::MSG_TYPE {
                self.ers += 1;
            }
            types.push(f.header.msg_type);
        }
        Ok(types)
    }

    fn order_bytes(&mut self, n: usize) -> anyhow::Result<Vec<u8>> {
        let (side, px) = if n.is_multiple_of(2) {
            (Side::Buy, "65.20")
        } else {
            (Side::Sell, "65.40")
        };
        let m = Message::NewOrder(NewOrder {
            cl_ord_id: FixedStr::new(&(n + 1).to_string()),
            submitting_broker_id: FixedStr::new(&self.broker.to_string()),
            security_id: FixedStr::new("5"),
            security_id_source: 8,
            security_exchange: Some(FixedStr::new("XHKG")),
            broker_location_id: None,
            transact_time: twinsite_site::exchange::transact_time(wall_clock()),
            side,
            ord_type: OrdType::Limit,
            price: Some(Decimal::from_price(Price::parse(px).expect("price"))),
            order_qty: Decimal::from_qty(Qty(400)),
            time_in_force: Some(TimeInForce::Day),
            position_effect: None,
            order_restrictions: None,
            max_price_levels: Some(1),
            order_capacity: Some(OrderCapacity::Agency),
            text: None,
            execution_instructions: None,
            disclosure_instructions: 1,
            lot_type: None,
            submitting_bcan: Some(FixedStr::new("1")),
        });
        let b = frame::encode(self.seq, false, false, &self.comp, &m)?;
        self.seq += 1;
        Ok(b)
    }
}

pub fn run(o: GatewayBenchOpts) -> anyhow::Result<serde_json::Value> {
    let runtime = RuntimeThread::start(o.runtime)?;
    let rt = runtime.handle();
    let dir = std::env::temp_dir().join(format!("twinsite-bench-gateway-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let key_path = dir.join("key.pem");
    std::fs::write(&key_path, KEY_PEM)?;
    let public = rsa::RsaPublicKey::from(&gateway::load_key(&key_path)?);
    let comps: Vec<String> = (0..=o.sessions).map(|i| format!("GB{i:04}")).collect();
    let cfg = config(&key_path, &comps)?;
    let reserved = json!({
        "orders": cfg.engine.reserve_orders,
        "outbound_per_comp_id": cfg.session.reserve_outbound,
    });
    let (site, mut feed) = rt.block_on(gateway::start(cfg))?;
    rt.spawn(async move { while feed.recv().await.is_some() {} });
    let gw = site.gateway_primary;
    let echo_addr = rt.block_on(echo_server())?;

    // Round trips, one order at a time, and the raw TCP echo of a message of the same size,
    // under each placement in turn.
    let mut c = Client::logon(gw, &comps[0], 2001, &public)?;
    // The size of a New Order (the first order is not timed).
    let first = c.order_bytes(0)?;
    let frame_len = first.len();
    c.stream.write_all(&first)?;
    while c.ers == 0 {
        c.read()?;
    }
    let mut echo = EchoClient::connect(echo_addr, frame_len)?;
    let mut n = 0;
    // Every timed order's number in the session (its client order id; warm-ups included) and round
    // trip: the slowest ones say whether outliers sit at fixed order counts (a vector doubling
    // at 1,024, 2,048, ... orders) or fall at random.
    let mut timed: Vec<(usize, u64)> = Vec::with_capacity(64 * 1024);
    let targets = Targets {
        p50_ratio_max: 1.5,
        p99_ratio_max: Some(2.0),
        orders_per_sec_min: 100_000.0,
    };
    let placed = round_trips_by_placement(
        &RoundTripSpec {
            label: "ocg_new_order_to_execution_report",
            opts: &o,
            targets: &targets,
        },
        || {
            n += 1;
            let bytes = c.order_bytes(n)?;
            let before = c.ers;
            let t0 = Instant::now();
            c.stream.write_all(&bytes)?;
            while c.ers == before {
                c.read()?;
            }
            let ns = t0.elapsed().as_nanos() as u64;
            timed.push((n + 1, ns));
            Ok(ns)
        },
        || echo.round_trip(),
    )?;

    // Each measured placement timed warm-up + orders round trips, in turn.
    let mut placed = placed;
    let mut rest = &timed[..];
    for p in placed.iter_mut().filter(|p| p.met.is_some()) {
        let (mine, later) = rest.split_at((o.warmup + o.orders).min(rest.len()));
        rest = later;
        let mut by_time = mine.to_vec();
        by_time.sort_by_key(|&(n, ns)| (std::cmp::Reverse(ns), n));
        p.json["slowest_orders"] = by_time
            .iter()
            .take(8)
            .map(|&(n, ns)| json!({ "order": n, "ns": ns }))
            .collect();
    }

    // Sustained: every session pipelined with a window of orders in flight.
    let clients = comps[1..]
        .iter()
        .enumerate()
        .map(|(i, comp)| Client::logon(gw, comp, 2002 + i as u32, &public))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let barrier = Arc::new(Barrier::new(clients.len() + 1));
    let mut threads = Vec::new();
    for mut c in clients {
        let barrier = barrier.clone();
        let (total, window) = (o.per_session, o.window);
        threads.push(std::thread::spawn(move || -> anyhow::Result<Instant> {
            barrier.wait();
            let mut sent = 0;
            let mut out = Vec::new();
            while c.ers < total {
                while sent < total && sent - c.ers < window {
                    out.extend_from_slice(&c.order_bytes(sent)?);
                    sent += 1;
                }
                if !out.is_empty() {
                    c.stream.write_all(&out)?;
                    out.clear();
                }
                if c.ers < total {
                    c.read()?;
                }
            }
            Ok(Instant::now())
        }));
    }
    barrier.wait();
    let start = Instant::now();
    let mut end = start;
    for t in threads {
        end = end.max(
            t.join()
                .map_err(|_| anyhow::anyhow!("session thread panicked"))??,
        );
    }
    let secs = (end - start).as_secs_f64();
    let total = o.sessions * o.per_session;
    let rate = total as f64 / secs;
    {
        let _in_runtime = rt.enter();
        site.shutdown();
    }
    let _ = std::fs::remove_dir_all(&dir);
    Ok(json!({
        "bench": "gateway",
        "wake_up": WAKE_UP,
        "site_runtime": o.runtime.name(),
        "message_bytes": frame_len,
        "reserved": reserved,
        "round_trip": placed.iter().map(|p| p.json.clone()).collect::<Vec<_>>(),
        "sustained": {
            "sessions": o.sessions,
            "orders": total,
            "window_per_session": o.window,
            "seconds": (secs * 1000.0).round() / 1000.0,
            "orders_per_sec": rate.round(),
        },
        "targets": verdict(&placed, rate, &targets),
    }))
}
