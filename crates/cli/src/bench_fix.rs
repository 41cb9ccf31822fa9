//! `twinsite bench fix`: the FIX gateway over loopback TCP.
//!
//! * Round trip: one FIX session (our sans-IO initiator on a blocking socket) sends a
//!   NewOrderSingle and waits for its ExecutionReport, one at a time; p50/p99/p99.9. In the same
//!   run, a raw TCP echo round trip of a message of the same size, with the same socket settings
//!   (loopback, TCP_NODELAY on both ends, the echo server a task on the same tokio runtime as the
//!   site), as the floor.
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
use std::path::Path;
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use anyhow::Context;
use rand_chacha::rand_core::SeedableRng;
use serde_json::json;

use crate::bench_common::{
    echo_server, round_trips_by_placement, verdict, EchoClient, GatewayBenchOpts, RoundTripSpec,
    RuntimeThread, Targets, WAKE_UP,
};
use twinsite_core::{ClOrdId, Price, Qty, SecurityCode};
use twinsite_fix::app::{NewOrderSingle, OrderSide, OrderTerms};
use twinsite_fix::codec::BodyWriter;
use twinsite_fix::password::{Padding, RsaCredentials};
use twinsite_fix::session::Action;
use twinsite_fix::{Session, SessionConfig, SessionState};
use twinsite_site::config::SiteConfig;
use twinsite_site::gateway::{self, wall_clock};

/// The test key of the site's tests (never use it for anything else).
const KEY_PEM: &str = include_str!("../../site/tests/data/test-key.pem");
const PASSWORD: &str = "Passw0rd";

fn config(key: &Path, comps: &[String]) -> anyhow::Result<SiteConfig> {
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
                "protocol": "fix",
            })
        })
        .collect();
    let cfg = json!({
        "site": {
            "lookup": ["127.0.0.1:0"],
            "gateway_primary": "127.0.0.1:0",
            "gateway_mirror": "127.0.0.1:0",
            "fix_gateway": "127.0.0.1:0",
            "keys": [key],
        },
        "session": { "heartbeat_ms": 20000, "password_tolerance_secs": 120, "throttle": false },
        "participant": participants,
    });
    Ok(serde_json::from_value(cfg)?)
}

/// A FIX participant on a blocking socket.
struct Client {
    stream: TcpStream,
    session: Session,
    buf: Vec<u8>,
    out: Vec<u8>,
    ers: usize,
    up: bool,
}

impl Client {
    fn logon(addr: SocketAddr, comp: &str, key: &rsa::RsaPublicKey) -> anyhow::Result<Client> {
        let stream = TcpStream::connect(addr)?;
        stream.set_nodelay(true)?;
        let mut creds = RsaCredentials {
            key: key.clone(),
            password: PASSWORD.into(),
            new_password: None,
            padding: Padding::Pkcs1v15,
            rng: rand_chacha::ChaCha20Rng::seed_from_u64(5),
        };
        let session = Session::initiator(
            SessionConfig::initiator(comp, twinsite_site::fix_gateway::EXCHANGE_COMP_ID),
            SessionState::new(comp, twinsite_site::fix_gateway::EXCHANGE_COMP_ID),
            Box::new(move |now| creds.logon_fields(now).unwrap_or_default()),
            wall_clock(),
        );
        let mut c = Client {
            stream,
            session,
            buf: vec![0; 1 << 16],
            out: Vec::new(),
            ers: 0,
            up: false,
        };
        c.flush()?;
        let deadline = Instant::now() + Duration::from_secs(10);
        while !c.up {
            anyhow::ensure!(Instant::now() < deadline, "{comp}: no logon");
            c.read()?;
        }
        Ok(c)
    }

    /// Take the session's actions; bytes to send collect in `out`.
    fn collect(&mut self) -> anyhow::Result<()> {
        while let Some(a) = self.session.poll_action() {
            match a {
                Action::Send(b) => self.out.extend_from_slice(&b),
                Action::Established => self.up = true,
                Action::Deliver(m) => {
                    if m.message.msg_type == "8" {
                        self.ers += 1;
                    }
                }
                Action::Disconnect { reason } => anyhow::bail!("disconnected: {reason}"),
            }
        }
        Ok(())
    }

    fn flush(&mut self) -> anyhow::Result<()> {
        self.collect()?;
        if !self.out.is_empty() {
            self.stream.write_all(&self.out)?;
            self.out.clear();
        }
        Ok(())
    }

    fn read(&mut self) -> anyhow::Result<()> {
        let n = self.stream.read(&mut self.buf)?;
        anyhow::ensure!(n > 0, "connection closed");
        self.session.handle_bytes(wall_clock(), &self.buf[..n]);
        self.flush()
    }

    /// Queue an order (written at the next flush).
    fn order(&mut self, n: usize) -> anyhow::Result<()> {
        let (side, px) = if n.is_multiple_of(2) {
            (OrderSide::Buy, "65.20")
        } else {
            (OrderSide::Sell, "65.40")
        };
        let m = NewOrderSingle {
            cl_ord_id: ClOrdId::new(&format!("O{n}"))?,
            terms: OrderTerms::limit(
                SecurityCode(5),
                side,
                Price::parse(px).expect("price"),
                Qty(400),
                wall_clock(),
            ),
        };
        // The load generator writes its orders' bodies directly (the same bytes as
        // `to_message`, checked against the dictionary by the FIX crate's tests).
        let mut body = BodyWriter::with_capacity(160);
        m.write_body(&mut body);
        self.session
            .send_body(wall_clock(), "D", body.into_bytes())
            .map_err(|e| anyhow::anyhow!("{e:?}"))?;
        Ok(())
    }
}

pub fn run(o: GatewayBenchOpts) -> anyhow::Result<serde_json::Value> {
    let runtime = RuntimeThread::start(o.runtime)?;
    let rt = runtime.handle();
    let dir = std::env::temp_dir().join(format!("twinsite-bench-fix-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let key_path = dir.join("key.pem");
    std::fs::write(&key_path, KEY_PEM)?;
    let public = rsa::RsaPublicKey::from(&gateway::load_key(&key_path)?);
    let comps: Vec<String> = (0..=o.sessions).map(|i| format!("FB{i:04}")).collect();
    let cfg = config(&key_path, &comps)?;
    let (site, mut feed) = rt.block_on(gateway::start(cfg))?;
    rt.spawn(async move { while feed.recv().await.is_some() {} });
    let fix_addr = site.fix_gateway.context("FIX gateway not listening")?;
    let echo_addr = rt.block_on(echo_server())?;

    // Round trips, one order at a time, and the raw TCP echo of a message of the same size,
    // under each placement in turn.
    let mut c = Client::logon(fix_addr, &comps[0], &public)?;
    // The size of a NewOrderSingle as the session encodes it (the first order is not timed).
    c.order(0)?;
    c.collect()?;
    let frame_len = c.out.len();
    c.flush()?;
    while c.ers == 0 {
        c.read()?;
    }
    let mut echo = EchoClient::connect(echo_addr, frame_len)?;
    let mut n = 0;
    let targets = Targets {
        p50_ratio_max: 2.0,
        p99_ratio_max: None,
        orders_per_sec_min: 50_000.0,
    };
    let placed = round_trips_by_placement(
        &RoundTripSpec {
            label: "fix_new_order_to_execution_report",
            opts: &o,
            targets: &targets,
        },
        || {
            n += 1;
            c.order(n)?;
            c.collect()?;
            let before = c.ers;
            // Encoded by the session; the clock starts when the bytes go to the socket.
            let t0 = Instant::now();
            c.flush()?;
            while c.ers == before {
                c.read()?;
            }
            Ok(t0.elapsed().as_nanos() as u64)
        },
        || echo.round_trip(),
    )?;

    // Sustained: every session pipelined with a window of orders in flight.
    let clients = comps[1..]
        .iter()
        .map(|comp| Client::logon(fix_addr, comp, &public))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let barrier = Arc::new(Barrier::new(clients.len() + 1));
    let mut threads = Vec::new();
    for mut c in clients {
        let barrier = barrier.clone();
        let (total, window) = (o.per_session, o.window);
        threads.push(std::thread::spawn(move || -> anyhow::Result<Instant> {
            barrier.wait();
            let mut sent = 0;
            while c.ers < total {
                while sent < total && sent - c.ers < window {
                    c.order(sent)?;
                    sent += 1;
                }
                c.flush()?;
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
        let done = t
            .join()
            .map_err(|_| anyhow::anyhow!("session thread panicked"))??;
        end = end.max(done);
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
        "bench": "fix",
        "wake_up": WAKE_UP,
        "site_runtime": o.runtime.name(),
        "message_bytes": frame_len,
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
