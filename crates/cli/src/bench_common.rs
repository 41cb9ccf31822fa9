//! Helpers shared by the gateway benchmarks (`bench gateway`, `bench fix`).

use std::net::SocketAddr;

use crate::affinity::{allowed_cpus, Placement};

/// p50 / p99 / p99.9 / max of nanosecond samples, as JSON.
pub fn percentiles(mut v: Vec<u64>) -> serde_json::Value {
    if v.is_empty() {
        // A phase that measured nothing (a failed or empty run): no figures, no panic.
        return serde_json::json!({
            "samples": 0,
            "p50_ns": null,
            "p99_ns": null,
            "p99_9_ns": null,
            "max_ns": null,
        });
    }
    v.sort_unstable();
    let at = |q: f64| v[((v.len() as f64 * q) as usize).min(v.len() - 1)];
    serde_json::json!({
        "samples": v.len(),
        "p50_ns": at(0.50),
        "p99_ns": at(0.99),
        "p99_9_ns": at(0.999),
        "max_ns": v[v.len() - 1],
    })
}

/// A raw TCP echo server (TCP_NODELAY) on the current tokio runtime: the round-trip baseline.
pub async fn echo_server() -> anyhow::Result<SocketAddr> {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = l.local_addr()?;
    tokio::spawn(async move {
        while let Ok((s, _)) = l.accept().await {
            let _ = s.set_nodelay(true);
            tokio::spawn(async move {
                use tokio::io::{AsyncReadExt, AsyncWriteExt};
                let (mut r, mut w) = s.into_split();
                let mut buf = vec![0u8; 1 << 16];
                while let Ok(n) = r.read(&mut buf).await {
                    if n == 0 || w.write_all(&buf[..n]).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    Ok(addr)
}

/// The targets of `bench gateway` / `bench fix` (ratios against the same run's raw echo).
pub struct Targets {
    pub p50_ratio_max: f64,
    /// None when the issue sets no p99 target for this gateway.
    pub p99_ratio_max: Option<f64>,
    pub orders_per_sec_min: f64,
}

/// What the round-trip phases of `bench gateway` / `bench fix` measure.
pub struct RoundTripSpec<'a> {
    /// The JSON key of the gateway's samples (e.g. `ocg_new_order_to_execution_report`).
    pub label: &'a str,
    pub opts: &'a GatewayBenchOpts,
    pub targets: &'a Targets,
}

/// The round trips of one placement.
pub struct PlacedRoundTrips {
    pub placement: Placement,
    pub json: serde_json::Value,
    /// None when the placement was skipped (not measured, so not judged).
    pub met: Option<bool>,
}

/// Runs, for each placement in turn, `warmup` round trips through the gateway (`order`, returning
/// one round trip's nanoseconds) and the raw echo (`echo`), then `orders` of each in `blocks`
/// alternating blocks (gateway, echo, gateway, ...), all with the threads pinned as the placement says (the calling thread is the client); restores
/// the process's CPUs at the end. A placement this machine cannot give (two CPUs on a
/// one-CPU machine) is reported as skipped.
pub fn round_trips_by_placement(
    spec: &RoundTripSpec,
    mut order: impl FnMut() -> anyhow::Result<u64>,
    mut echo: impl FnMut() -> anyhow::Result<u64>,
) -> anyhow::Result<Vec<PlacedRoundTrips>> {
    let (o, t) = (spec.opts, spec.targets);
    let allowed = allowed_cpus().unwrap_or_default();
    let mut out = Vec::new();
    for &placement in &o.placements {
        let cpus = match (placement, allowed.is_empty()) {
            // Nothing to pin (CPU placement unsupported here): the OS places the threads.
            (Placement::Os, true) => Ok((Vec::new(), Vec::new())),
            (_, true) => Err(std::io::Error::other("the process's CPUs are unknown")),
            _ => placement.apply(&allowed),
        };
        let (client_cpus, site_cpus) = match cpus {
            Ok(c) => c,
            Err(e) => {
                out.push(PlacedRoundTrips {
                    placement,
                    json: serde_json::json!({ "placement": placement.name(), "skipped": e.to_string() }),
                    met: None,
                });
                continue;
            }
        };
        // Warm both paths up, then alternate blocks of gateway and echo round trips, so that a
        // drift of the machine's state during the placement (another process waking, the host
        // descheduling a vCPU) falls on both alike.
        for _ in 0..o.warmup {
            order()?;
            echo()?;
        }
        let blocks = o.blocks.clamp(1, o.orders.max(1));
        let (mut gw_ns, mut echo_ns) = (Vec::with_capacity(o.orders), Vec::with_capacity(o.orders));
        for b in 0..blocks {
            let n = o.orders * (b + 1) / blocks - o.orders * b / blocks;
            for _ in 0..n {
                gw_ns.push(order()?);
            }
            for _ in 0..n {
                echo_ns.push(echo()?);
            }
        }
        let gw = percentiles(gw_ns);
        let raw = percentiles(echo_ns);
        let ratio = |k: &str| {
            gw[k].as_u64().unwrap_or(0) as f64 / raw[k].as_u64().unwrap_or(1).max(1) as f64
        };
        let (p50, p99) = (ratio("p50_ns"), ratio("p99_ns"));
        let met = p50 <= t.p50_ratio_max && t.p99_ratio_max.is_none_or(|m| p99 <= m);
        let mut json = serde_json::json!({
            "placement": placement.name(),
            "client_cpus": client_cpus,
            "site_cpus": site_cpus,
            spec.label: gw,
            "raw_tcp_echo": raw,
            "p50_ratio": (p50 * 100.0).round() / 100.0,
            "p99_ratio": (p99 * 100.0).round() / 100.0,
            "met": met,
        });
        if t.p99_ratio_max.is_none() {
            json["p99_ratio_note"] = "no p99 target for this gateway".into();
        }
        out.push(PlacedRoundTrips {
            placement,
            json,
            met: Some(met),
        });
    }
    if !allowed.is_empty() {
        let _ = Placement::Os.apply(&allowed);
    }
    Ok(out)
}

/// How the round trips are taken, for the reports.
pub const WAKE_UP: &str =
    "blocking (the client blocks in read; the site's tasks park in epoll); not busy-polling";

/// The targets and their verdict. `met` judges the measured pinned placements (where the
/// gateway's and the echo's round trips run in the same wake-up mode by construction) and the
/// sustained rate; `met_os_placement` the unpinned placement, where the OS picks each phase's
/// wake-up mode. With no pinned placement measured, `met` judges the unpinned one.
pub fn verdict(placed: &[PlacedRoundTrips], rate: f64, t: &Targets) -> serde_json::Value {
    let measured = |pinned: bool| {
        placed
            .iter()
            .filter(move |p| (p.placement != Placement::Os) == pinned)
            .filter_map(|p| p.met)
            .collect::<Vec<_>>()
    };
    let (pinned, os) = (measured(true), measured(false));
    let judged = if pinned.is_empty() { &os } else { &pinned };
    let rate_met = rate >= t.orders_per_sec_min;
    serde_json::json!({
        "p50_ratio_max": t.p50_ratio_max,
        "p99_ratio_max": t.p99_ratio_max,
        "orders_per_sec_min": t.orders_per_sec_min,
        "met": !judged.is_empty() && judged.iter().all(|&m| m) && rate_met,
        "met_os_placement": (!os.is_empty()).then(|| os.iter().all(|&m| m) && rate_met),
        "verdict": "`met`: the round trips under the pinned placements (same_cpu, split_cpus) \
            and the sustained rate; `met_os_placement`: the unpinned round trips, whose wake-up \
            mode the OS picks per phase (see BENCHMARKS.md)",
    })
}

/// The tokio runtime the benchmarked site (and the echo server) runs on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum SiteRuntime {
    /// One thread, as `twinsite node` runs a site: a hand-off between the site's tasks is a
    /// queue push, never a wake-up of another thread.
    CurrentThread,
    /// A worker per CPU, as `twinsite serve` runs a site.
    MultiThread,
}

impl SiteRuntime {
    pub fn name(self) -> &'static str {
        match self {
            SiteRuntime::CurrentThread => "current_thread",
            SiteRuntime::MultiThread => "multi_thread",
        }
    }
}

/// A runtime driven by its own threads, so the calling thread is free to be the blocking client:
/// a multi-threaded runtime's workers, or one thread running a current-thread runtime.
pub struct RuntimeThread {
    handle: tokio::runtime::Handle,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
    _multi: Option<tokio::runtime::Runtime>,
}

impl RuntimeThread {
    pub fn start(kind: SiteRuntime) -> anyhow::Result<RuntimeThread> {
        match kind {
            SiteRuntime::MultiThread => {
                let rt = tokio::runtime::Builder::new_multi_thread()
                    .enable_all()
                    .build()?;
                Ok(RuntimeThread {
                    handle: rt.handle().clone(),
                    stop: None,
                    thread: None,
                    _multi: Some(rt),
                })
            }
            SiteRuntime::CurrentThread => {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()?;
                let handle = rt.handle().clone();
                let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
                let thread = std::thread::Builder::new()
                    .name("site-runtime".into())
                    .spawn(move || {
                        rt.block_on(async {
                            let _ = stopped.await;
                        })
                    })?;
                Ok(RuntimeThread {
                    handle,
                    stop: Some(stop),
                    thread: Some(thread),
                    _multi: None,
                })
            }
        }
    }

    /// Spawn on it, or `block_on` from the calling thread (the runtime's own thread drives the
    /// I/O and timers meanwhile).
    pub fn handle(&self) -> &tokio::runtime::Handle {
        &self.handle
    }
}

impl Drop for RuntimeThread {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The options of `bench gateway` and `bench fix`.
#[derive(clap::Args, Debug)]
pub struct GatewayBenchOpts {
    /// Measured round trips (after warm-up), per placement.
    #[arg(long, default_value_t = 20_000)]
    pub orders: usize,
    #[arg(long, default_value_t = 2_000)]
    pub warmup: usize,
    /// Sessions in the sustained run.
    #[arg(long, default_value_t = 10)]
    pub sessions: usize,
    /// Orders per session in the sustained run.
    #[arg(long, default_value_t = 20_000)]
    pub per_session: usize,
    /// Orders in flight per session in the sustained run.
    #[arg(long, default_value_t = 64)]
    pub window: usize,
    /// CPU placements to measure the round trips under, in order: same-cpu (every thread on
    /// one CPU), split-cpus (the client on one CPU, the site on another), os (unpinned).
    #[arg(
        long = "placement",
        value_enum,
        value_delimiter = ',',
        default_value = "same-cpu,split-cpus,os"
    )]
    pub placements: Vec<Placement>,
    /// Alternating blocks of gateway and echo round trips per placement (1: all the gateway's,
    /// then all the echo's).
    #[arg(long, default_value_t = 10)]
    pub blocks: usize,
    /// The runtime the site runs on: current-thread (as `twinsite node` runs a site) or
    /// multi-thread (as `twinsite serve` does).
    #[arg(long, value_enum, default_value = "current-thread")]
    pub runtime: SiteRuntime,
}

/// The raw TCP echo's client end: a blocking socket, TCP_NODELAY, a message of a given size.
pub struct EchoClient {
    stream: std::net::TcpStream,
    msg: Vec<u8>,
    back: Vec<u8>,
}

impl EchoClient {
    pub fn connect(addr: SocketAddr, message_bytes: usize) -> anyhow::Result<EchoClient> {
        let stream = std::net::TcpStream::connect(addr)?;
        stream.set_nodelay(true)?;
        Ok(EchoClient {
            stream,
            msg: vec![b'x'; message_bytes.max(1)],
            back: vec![0; message_bytes.max(1)],
        })
    }

    /// One round trip, in nanoseconds.
    pub fn round_trip(&mut self) -> anyhow::Result<u64> {
        use std::io::{Read, Write};
        let t0 = std::time::Instant::now();
        self.stream.write_all(&self.msg)?;
        self.stream.read_exact(&mut self.back)?;
        Ok(t0.elapsed().as_nanos() as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Goal: percentiles of an empty phase are reported as missing, not a panic; otherwise
    /// the nearest-rank figures.
    #[test]
    fn percentiles_of_nothing_and_of_samples() {
        let none = percentiles(Vec::new());
        assert_eq!(none["samples"], 0);
        assert!(none["p50_ns"].is_null() && none["max_ns"].is_null());
        let p = percentiles((1..=100).rev().collect());
        assert_eq!(p["samples"], 100);
        assert_eq!(p["p50_ns"], 51);
        assert_eq!(p["p99_ns"], 100);
        assert_eq!(p["max_ns"], 100);
    }
}
