//! `twinsite bench cluster`: the replicated exchange as three node processes on this machine.
//!
//! In one run:
//! * fdatasync baseline: a 256-byte write then `fdatasync` on a preallocated file in the
//!   journal directory (what one WAL group commit costs on this disk), once before the cluster
//!   starts and again in blocks between the round-trip blocks (`--blocks`), so the ratio's
//!   baseline sees the disk as the round trips do (a cloud disk's latency drifts by tens of
//!   percent from one minute to the next).
//! * Replicated round trip: one OCG-C session (through the lookup ladder) sends a New Order and
//!   waits for its Execution Report, one at a time, through the 3-node cluster with durable
//!   journals (the report is released only once the order is fdatasynced on a quorum).
//! * Sustained load: several sessions (throttle off) each keeping a window of orders in flight;
//!   orders acknowledged per second, and from the leader's WAL counters, fdatasyncs, journal
//!   entries per fdatasync and orders per fdatasync (group commit).
//! * Failover RTO, scheduled (admin API `failover`) and crash (SIGKILL of the active node's
//!   process, which is then restarted from its journal): from the failover start to the other
//!   site open (its lookup answers, its gateways accept logons; the node's own timestamp), and
//!   to a connected participant's logon there. Median of several runs, alternating sites.

use anyhow::Context;
use serde_json::json;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use twinsite_cluster::NodeRole;
use twinsite_core::{CompId, Price, Qty};
use twinsite_ocg::client::{ClientConfig, ClientState};
use twinsite_ocg::*;
use twinsite_site::client::{ClientEvent, ClientHandle};
use twinsite_site::cluster_config::{
    read_token, role_name, AdminClient, ClusterConfig, NodeProcess, ROLES,
};
use twinsite_site::config::ParticipantEntry;
use twinsite_site::gateway::wall_clock;

use crate::bench_common::percentiles;
use crate::placement::{cpus_text, online_cpus, parse_cpus};

const KEY_PEM: &str = include_str!("../../site/tests/data/test-key.pem");
const PASSWORD: &str = "Passw0rd";
const T: Duration = Duration::from_secs(30);

pub struct Opts {
    pub dir: PathBuf,
    pub orders: usize,
    pub warmup: usize,
    pub sessions: usize,
    pub per_session: usize,
    pub window: usize,
    pub rto_runs: usize,
    pub fsyncs: usize,
    /// Round-trip blocks, each after a block of `fsyncs / blocks` probe fdatasyncs.
    pub blocks: usize,
    /// Round trips through the floor (`crate::bench_floor`), split over the blocks; 0: none.
    pub floor_orders: usize,
    pub witness_linger_us: Option<u64>,
    /// The cluster file's `wal_segment_mib` (64 when absent).
    pub wal_segment_mib: Option<u64>,
    pub placement: Placement,
}

/// Where each process of the bench runs (`--cpus`): this process (the fdatasync probe and the
/// participants) and the three nodes. An empty list: the OS places it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Placement {
    pub bench: Vec<usize>,
    pub primary: Vec<usize>,
    pub backup: Vec<usize>,
    pub witness: Vec<usize>,
}

impl Placement {
    /// `CPUS` (every process there) or `bench=CPUS;primary=CPUS;backup=CPUS;witness=CPUS`.
    pub fn parse(s: &str) -> anyhow::Result<Placement> {
        let s = s.trim();
        if !s.contains('=') {
            let cpus = parse_cpus(s)?;
            return Ok(Placement {
                bench: cpus.clone(),
                primary: cpus.clone(),
                backup: cpus.clone(),
                witness: cpus,
            });
        }
        let mut p = Placement::default();
        for part in s.split(';').map(str::trim).filter(|p| !p.is_empty()) {
            let (who, cpus) = part
                .split_once('=')
                .with_context(|| format!("--cpus {s:?}: {part:?} is not NAME=CPUS"))?;
            let cpus = parse_cpus(cpus)?;
            match who.trim() {
                "bench" => p.bench = cpus,
                "primary" => p.primary = cpus,
                "backup" => p.backup = cpus,
                "witness" => p.witness = cpus,
                other => anyhow::bail!(
                    "--cpus {s:?}: {other:?} is not bench, primary, backup or witness"
                ),
            }
        }
        Ok(p)
    }

    /// A node's CPUs as written to the cluster file. A node not placed gets every online CPU,
    /// so it does not inherit this process's placement.
    fn node(&self, r: NodeRole) -> Vec<usize> {
        let cpus = match r {
            NodeRole::Primary => &self.primary,
            NodeRole::Backup => &self.backup,
            NodeRole::Witness => &self.witness,
        };
        if !cpus.is_empty() || self.bench.is_empty() {
            return cpus.clone();
        }
        every_online_cpu()
    }

    /// The floor's node threads, placed as the nodes they stand for.
    fn floor(&self) -> crate::bench_floor::FloorCpus {
        crate::bench_floor::FloorCpus {
            leader: self.node(NodeRole::Primary),
            backup: self.node(NodeRole::Backup),
            witness: self.node(NodeRole::Witness),
        }
    }

    fn describe(&self) -> serde_json::Value {
        json!({
            "bench_process": cpus_text(&self.bench),
            "fdatasync_probe": "unpinned (every online CPU, whatever the bench process's placement)",
            "primary": cpus_text(&self.primary),
            "backup": cpus_text(&self.backup),
            "witness": cpus_text(&self.witness),
        })
    }
}

/// Every online CPU: the placement of a thread or node the bench leaves to the OS even when
/// this process is pinned.
fn every_online_cpu() -> Vec<usize> {
    (0..online_cpus()).collect()
}

fn participant(i: usize) -> ParticipantEntry {
    ParticipantEntry {
        firm: format!("Bench {i}"),
        kind: "EP".into(),
        comp_id: format!("CB{i:04}"),
        broker_ids: vec![4000 + i as u32],
        password: PASSWORD.into(),
        source_ips: vec!["127.0.0.1".parse().expect("address")],
        throttle_units: 1000,
        cancel_on_disconnect_ms: None,
        must_change_password: false,
        protocol: Default::default(),
    }
}

/// fdatasync latency of a 256-byte write into a preallocated file in `dir`: the disk's own,
/// taken on a thread of its own that may run on every online CPU, whatever `--cpus` gives this
/// process. Pinned to a CPU that does not take the disk's interrupts, each sync also waits for
/// a wake-up sent from the other CPU: on the benchmark VM, whose disk interrupts all land on
/// CPU 1, the probe pinned with the bench to CPU 0 read 25-60 % slower than unpinned, which
/// made placed runs' ratios look better than they were (docs/operations.md, "Benchmark").
fn fdatasync_baseline(dir: &Path, n: usize) -> anyhow::Result<Vec<u64>> {
    let dir = dir.to_path_buf();
    on_every_cpu("fdatasync-probe", move || fdatasync_samples(&dir, n))?
}

/// Run `f` on a new thread that may use every online CPU, whatever this thread's placement.
fn on_every_cpu<T: Send + 'static>(
    name: &str,
    f: impl FnOnce() -> T + Send + 'static,
) -> anyhow::Result<T> {
    std::thread::Builder::new()
        .name(name.into())
        .spawn(move || {
            match crate::affinity::pin_thread(0, &every_online_cpu()) {
                // No CPU placement on this OS: the thread runs where the OS puts it anyway.
                Err(e) if e.kind() == std::io::ErrorKind::Unsupported => {}
                r => r.context("unpin the thread")?,
            }
            Ok(f())
        })
        .with_context(|| format!("start thread {name}"))?
        .join()
        .map_err(|_| anyhow::anyhow!("thread {name} panicked"))?
}

fn fdatasync_samples(dir: &Path, n: usize) -> anyhow::Result<Vec<u64>> {
    use std::os::unix::fs::FileExt;
    const NAME: &str = "fdatasync-probe";
    let f = crate::bench_floor::preallocated(dir, NAME, (n + 16) * 4096)?;
    let rec = [0x5au8; 256];
    let mut v = Vec::with_capacity(n);
    for i in 0..n {
        let t = Instant::now();
        f.write_all_at(&rec, (i * 256) as u64)?;
        f.sync_data()?;
        v.push(t.elapsed().as_nanos() as u64);
    }
    drop(f);
    let _ = std::fs::remove_file(dir.join(NAME));
    Ok(v)
}

fn order(cl: u64, broker: u32, side: Side) -> Message {
    // Accepted and never crossing: buys rest at 384.00, sells at 386.00, both within the 24
    // spreads allowed around the nominal price (previous close 385.20, spread 0.20). (At 380.00
    // and 390.00, 26 and 24+ spreads away, every order was rejected and no book was built.)
    let px = if side == Side::Buy {
        "384.00"
    } else {
        "386.00"
    };
    Message::NewOrder(NewOrder::day_limit(
        &cl.to_string(),
        broker,
        "700",
        side,
        Price::parse(px).expect("price"),
        Qty(100),
        "20231125-02:00:00.000000",
    ))
}

fn client(
    key: &rsa::RsaPrivateKey,
    comp: &str,
    lookups: Vec<std::net::SocketAddr>,
) -> ClientHandle {
    let mut cfg = ClientConfig::new(
        CompId::new(comp).expect("comp id"),
        PASSWORD,
        rsa::RsaPublicKey::from(key),
        lookups,
    );
    cfg.reconnect_wait_ns = 10_000_000;
    cfg.lookup_backoff_ns = 10_000_000;
    cfg.logon_retry_wait_ns = 10_000_000;
    cfg.timers.heartbeat_interval_ns = 5_000_000_000;
    ClientHandle::spawn(cfg, ClientState::default())
}

fn is_logon(e: &ClientEvent) -> Option<()> {
    matches!(e, ClientEvent::LoggedOn { .. }).then_some(())
}

/// The order's Execution Report. A reject also ends the wait, as an error: the bench measures
/// accepted orders only.
fn is_ack(e: &ClientEvent) -> Option<Result<(), String>> {
    match e {
        ClientEvent::Message { message, .. } => match message.as_ref() {
            Message::ExecutionReport(r) if r.exec_type == Some(ExecType::Reject) => {
                Some(Err(format!("the bench's order was rejected: {:?}", r.text)))
            }
            Message::ExecutionReport(_) => Some(Ok(())),
            _ => None,
        },
        _ => None,
    }
}

async fn wait(c: &mut ClientHandle, f: fn(&ClientEvent) -> Option<()>) -> anyhow::Result<()> {
    c.wait_for(T, f).await.map(|_| ()).map_err(|e| {
        // The client's event list can be long (a lookup ladder retried for 30 s): keep the head.
        let head: String = e.chars().take(300).collect();
        anyhow::anyhow!("{head}...")
    })
}

/// Wait for the order's Execution Report; a reject is an error.
async fn wait_ack(c: &mut ClientHandle) -> anyhow::Result<()> {
    match c.wait_for(T, is_ack).await {
        Ok((Ok(()), _)) => Ok(()),
        Ok((Err(reject), _)) => Err(anyhow::anyhow!(reject)),
        Err(e) => {
            let head: String = e.chars().take(300).collect();
            Err(anyhow::anyhow!("{head}..."))
        }
    }
}

struct Cluster {
    cfg: ClusterConfig,
    path: PathBuf,
    nodes: std::collections::BTreeMap<NodeRole, NodeProcess>,
    admin: AdminClient,
}

async fn start_cluster(dir: &Path, key: &Path, opts: &Opts) -> anyhow::Result<Cluster> {
    let sessions = opts.sessions;
    let exe = std::env::current_exe().context("find the twinsite binary")?;
    let mut last = None;
    for attempt in 0..5 {
        let sub = dir.join(format!("cluster{attempt}"));
        let _ = std::fs::remove_dir_all(&sub);
        std::fs::create_dir_all(&sub)?;
        let mut cfg = ClusterConfig::loopback(
            &sub,
            vec![key.to_path_buf()],
            (1..=sessions + 1).map(participant).collect(),
        )?;
        cfg.session.throttle = false;
        if let Some(us) = opts.witness_linger_us {
            cfg.cluster.witness_linger_us = us;
        }
        if let Some(mib) = opts.wal_segment_mib {
            cfg.cluster.wal_segment_mib = mib;
            cfg.check()?;
        }
        for r in ROLES {
            cfg.node_mut(r).cpus = opts.placement.node(r);
        }
        let path = sub.join("cluster.toml");
        cfg.write(&path)?;
        let mut nodes = std::collections::BTreeMap::new();
        let mut failed = None;
        for r in ROLES {
            match NodeProcess::start(&exe, &path, r, T).await {
                Ok(p) => {
                    nodes.insert(r, p);
                }
                Err(e) => {
                    failed = Some(e);
                    break;
                }
            }
        }
        match failed {
            None => {
                let admin = AdminClient::new(&cfg, read_token(&cfg.cluster.token_file)?);
                return Ok(Cluster {
                    cfg,
                    path,
                    nodes,
                    admin,
                });
            }
            Some(e) => {
                for (_, n) in nodes {
                    n.stop(Duration::from_secs(5)).await;
                }
                last = Some(e);
            }
        }
    }
    Err(last.unwrap_or_else(|| anyhow::anyhow!("cluster did not start")))
}

fn median(mut v: Vec<f64>) -> Option<f64> {
    v.sort_by(|a, b| a.total_cmp(b));
    v.get(v.len() / 2).copied()
}

fn ms(ns: u64) -> f64 {
    ns as f64 / 1e6
}

pub async fn run(opts: Opts) -> anyhow::Result<serde_json::Value> {
    std::fs::create_dir_all(&opts.dir).with_context(|| format!("create {}", opts.dir.display()))?;
    let dir = opts.dir.canonicalize()?;
    eprintln!("bench cluster: journals in {}", dir.display());

    // 1. The disk.
    let fsync = fdatasync_baseline(&dir, opts.fsyncs)?;
    let fsync_p = percentiles(fsync.clone());
    let fsync_p50 = fsync_p["p50_ns"].as_u64().unwrap_or(0);
    eprintln!("  fdatasync p50 {:.3} ms", ms(fsync_p50));

    // 2. The cluster.
    let key_path = dir.join("bench-key.pem");
    std::fs::write(&key_path, KEY_PEM)?;
    let key = twinsite_site::gateway::load_key(&key_path)?;
    let mut c = start_cluster(&dir, &key_path, &opts).await?;
    let result = measure(&opts, &mut c, &key, fsync_p, fsync_p50).await;
    for (_, n) in std::mem::take(&mut c.nodes) {
        n.stop(Duration::from_secs(10)).await;
    }
    // The journals (three preallocated 64 MiB WAL segments and more) are removed after a run
    // that measured something; after a failure they stay for inspection.
    if result.is_ok() {
        if let Some(journals) = c.path.parent() {
            let _ = std::fs::remove_dir_all(journals);
        }
    }
    result
}

async fn measure(
    opts: &Opts,
    c: &mut Cluster,
    key: &rsa::RsaPrivateKey,
    fsync_p: serde_json::Value,
    fsync_p50: u64,
) -> anyhow::Result<serde_json::Value> {
    c.admin.wait_active(NodeRole::Primary, T).await?;
    let lookups = c.cfg.lookup_ladder();

    // Round trip, one order at a time.
    let mut rt = client(key, "CB0001", lookups.clone());
    wait(&mut rt, is_logon).await?;
    let mut wal_before = None;
    let mut samples = Vec::with_capacity(opts.orders);
    let blocks = opts.blocks.clamp(1, opts.orders.max(1));
    let per_block = opts.orders.div_ceil(blocks);
    let probe_dir = c.path.parent().unwrap_or(Path::new(".")).to_path_buf();
    let mut probe = Vec::with_capacity(opts.fsyncs);
    let mut floor = Vec::with_capacity(opts.floor_orders);
    let floor_cpus = opts.placement.floor();
    for i in 0..(opts.warmup + opts.orders) {
        if i >= opts.warmup && (i - opts.warmup).is_multiple_of(per_block) {
            // The disk baseline's block for the round-trip block that starts here, and the
            // floor's (the nodes are idle meanwhile: one order at a time, and its reply has
            // come).
            probe.extend(fdatasync_baseline(&probe_dir, opts.fsyncs / blocks)?);
            let n = opts.floor_orders.div_ceil(blocks);
            if n > 0 {
                floor.extend(crate::bench_floor::round_trips(
                    &probe_dir,
                    (opts.warmup / blocks).max(10),
                    n,
                    &floor_cpus,
                )?);
            }
        }
        let t = Instant::now();
        rt.send(order(i as u64 + 1, 4001, Side::Buy))
            .await
            .map_err(|e| anyhow::anyhow!(e))?;
        wait_ack(&mut rt).await?;
        if i >= opts.warmup {
            samples.push(t.elapsed().as_nanos() as u64);
        }
        if i + 1 == opts.warmup {
            wal_before = Some(c.admin.status(NodeRole::Primary).await?);
        }
    }
    // The leader's own WAL fdatasyncs while the round trips ran: what a group commit of one
    // order really cost on this disk, next to the probe's figure.
    let wal_after = c.admin.status(NodeRole::Primary).await?;
    let (wal_syncs, wal_sync_ns) = match &wal_before {
        Some(b) => (
            wal_after.wal_syncs.saturating_sub(b.wal_syncs),
            wal_after
                .wal_sync_nanos_total
                .saturating_sub(b.wal_sync_nanos_total),
        ),
        None => (wal_after.wal_syncs, wal_after.wal_sync_nanos_total),
    };
    let wal_sync_mean_ns = wal_sync_ns / wal_syncs.max(1);
    let rt_p = percentiles(samples);
    let rt_p50 = rt_p["p50_ns"].as_u64().unwrap_or(0);
    let probe_p = percentiles(probe);
    let probe_p50 = probe_p["p50_ns"].as_u64().unwrap_or(0);
    eprintln!(
        "  fdatasync p50 {:.3} ms in {blocks} blocks between the round-trip blocks",
        ms(probe_p50)
    );
    // No floor (`--floor-orders 0`): its figures are null.
    let floor_p = (!floor.is_empty()).then(|| percentiles(floor));
    let floor_p50 = floor_p.as_ref().and_then(|p| p["p50_ns"].as_u64());
    if let Some(p) = &floor_p {
        eprintln!(
            "  floor (bare three-node quorum write by threads, same disk and loopback) p50 {:.3} ms, p99 {:.3} ms",
            ms(floor_p50.unwrap_or(0)),
            ms(p["p99_ns"].as_u64().unwrap_or(0))
        );
    }
    eprintln!(
        "  replicated round trip p50 {:.3} ms, p99 {:.3} ms (leader WAL: {wal_syncs} fdatasyncs, mean {:.3} ms)",
        ms(rt_p50),
        ms(rt_p["p99_ns"].as_u64().unwrap_or(0)),
        ms(wal_sync_mean_ns)
    );

    // Sustained load.
    let sustained = match sustained(opts, c, key, &lookups).await {
        Ok(v) => v,
        Err(e) => json!({ "error": format!("{e:#}") }),
    };
    let orders_per_fsync = sustained["orders_per_fdatasync"].as_f64();

    // Failover RTO: scheduled, then crash; a participant stays connected through them.
    // The round-trip participant stays logged on and follows the active site.
    let mut watcher = rt;
    let mut active = NodeRole::Primary;
    let mut sched = Vec::new();
    let mut sched_logon = Vec::new();
    let mut sched_errors = Vec::new();
    for _ in 0..opts.rto_runs {
        let to = other(active);
        let t0 = wall_clock().millis();
        let r = async {
            c.admin.failover(active, Some(to)).await?;
            let s = c.admin.wait_active(to, T).await?;
            wait(&mut watcher, is_logon).await?;
            Ok::<_, anyhow::Error>(s)
        }
        .await;
        let s = match r {
            Ok(s) => s,
            Err(e) => {
                sched_errors.push(format!("{e:#}"));
                break;
            }
        };
        let logon = wall_clock().millis();
        sched.push(s.active_since_ms.unwrap_or(logon).saturating_sub(t0) as f64);
        sched_logon.push(logon.saturating_sub(t0) as f64);
        active = to;
    }
    eprintln!("  scheduled RTO runs (ms): {sched:?}");
    let mut crash = Vec::new();
    let mut crash_logon = Vec::new();
    let mut crash_errors = Vec::new();
    let exe = std::env::current_exe()?;
    for _ in 0..opts.rto_runs {
        let to = other(active);
        let t0 = wall_clock().millis();
        c.nodes
            .get_mut(&active)
            .expect("node process")
            .kill()
            .await?;
        let r = async {
            let s = c.admin.wait_active(to, T).await?;
            wait(&mut watcher, is_logon).await?;
            Ok::<_, anyhow::Error>(s)
        }
        .await;
        let s = match r {
            Ok(s) => s,
            Err(e) => {
                crash_errors.push(format!("{e:#}"));
                break;
            }
        };
        let logon = wall_clock().millis();
        crash.push(s.active_since_ms.unwrap_or(logon).saturating_sub(t0) as f64);
        crash_logon.push(logon.saturating_sub(t0) as f64);
        // Restart the killed node from its journal and let it catch up before the next run.
        c.nodes.remove(&active);
        let p = NodeProcess::start(&exe, &c.path, active, T).await?;
        c.nodes.insert(active, p);
        let idx = c.admin.status(to).await?.commit_index;
        if let Err(e) = c.admin.wait_applied(active, idx, T).await {
            crash_errors.push(format!(
                "the restarted {} node did not catch up: {e:#}",
                role_name(active)
            ));
            break;
        }
        active = to;
    }
    eprintln!("  crash RTO runs (ms): {crash:?}");
    watcher.abort();

    // The target's baseline is the probe taken between the round-trip blocks.
    let rt_ratio = rt_p50 as f64 / probe_p50.max(1) as f64;
    let rt_ratio_before = rt_p50 as f64 / fsync_p50.max(1) as f64;
    let sched_med = median(sched.clone());
    let crash_med = median(crash.clone());
    Ok(json!({
        "machine": {
            "cores": online_cpus(),
            "placement": opts.placement.describe(),
            "witness_linger_us": c.cfg.cluster.witness_linger_us,
            "wal_segment_mib": c.cfg.cluster.wal_segment_mib,
            "journal_dir": opts.dir.display().to_string(),
            "build": if cfg!(debug_assertions) { "debug" } else { "release" },
        },
        "fdatasync_256b": fsync_p,
        "fdatasync_256b_between_blocks": probe_p,
        "floor_round_trip": floor_p.map(|latency| json!({
            "what": "the machine's floor: a client thread, a leader thread and two follower threads with blocking sockets; the leader forwards each 256-byte message to both followers, writes and fdatasyncs its own file, and answers after the first follower has written and fdatasynced its file (no consensus, encoding or runtime); threads placed as the processes they stand for, run in the same blocks as the round trips",
            "latency": latency,
            "p50_over_fdatasync_p50": floor_p50.map(|f| f as f64 / probe_p50.max(1) as f64),
        })),
        "replicated_round_trip": {
            "what": "OCG-C New Order -> Execution Report through 3 node processes, journal fdatasync on a quorum before release",
            "latency": rt_p,
            "blocks": blocks,
            "p50_over_fdatasync_p50": rt_ratio,
            "p50_over_fdatasync_p50_before_start": rt_ratio_before,
            "p50_over_floor_p50": floor_p50.map(|f| rt_p50 as f64 / f.max(1) as f64),
            "leader_wal_fdatasyncs": wal_syncs,
            "leader_wal_fdatasync_mean_ns": wal_sync_mean_ns,
        },
        "sustained": sustained,
        "rto_ms": {
            "scheduled": { "runs": sched, "median": sched_med, "participant_logon_runs": sched_logon, "participant_logon_median": median(sched_logon.clone()), "errors": sched_errors },
            "crash": { "runs": crash, "median": crash_med, "participant_logon_runs": crash_logon, "participant_logon_median": median(crash_logon.clone()), "errors": crash_errors },
            "definition": "failover start (request sent / SIGKILL) to the other site open (node's timestamp of the site opening: lookup answers, gateways accept logons); participant_logon = to a connected participant's logon there",
        },
        "targets": {
            "replicated_p50_at_most_3x_fdatasync_p50": rt_ratio <= 3.0,
            "at_least_20_orders_per_fdatasync": orders_per_fsync.is_some_and(|o| o >= 20.0),
            "scheduled_rto_under_200_ms": sched_med.is_some_and(|m| m < 200.0),
            "crash_rto_under_1_s": crash_med.is_some_and(|m| m < 1000.0),
        },
    }))
}

fn other(r: NodeRole) -> NodeRole {
    if r == NodeRole::Primary {
        NodeRole::Backup
    } else {
        NodeRole::Primary
    }
}

async fn sustained(
    opts: &Opts,
    c: &Cluster,
    key: &rsa::RsaPrivateKey,
    lookups: &[std::net::SocketAddr],
) -> anyhow::Result<serde_json::Value> {
    let lookups = lookups.to_vec();
    let before = c.admin.status(NodeRole::Primary).await?;
    let mut clients = Vec::new();
    for i in 0..opts.sessions {
        let mut h = client(key, &format!("CB{:04}", i + 2), lookups.clone());
        wait(&mut h, is_logon).await?;
        clients.push(h);
    }
    let t0 = Instant::now();
    let mut tasks = Vec::new();
    for (i, mut h) in clients.into_iter().enumerate() {
        let (per, window) = (opts.per_session, opts.window);
        let broker = 4002 + i as u32;
        tasks.push(tokio::spawn(async move {
            let side = if i % 2 == 0 { Side::Buy } else { Side::Sell };
            let (mut sent, mut acked) = (0usize, 0usize);
            while sent < window.min(per) {
                sent += 1;
                h.send(order(sent as u64, broker, side))
                    .await
                    .map_err(|e| anyhow::anyhow!(e))?;
            }
            while acked < per {
                wait_ack(&mut h).await?;
                acked += 1;
                if sent < per {
                    sent += 1;
                    h.send(order(sent as u64, broker, side))
                        .await
                        .map_err(|e| anyhow::anyhow!(e))?;
                }
            }
            Ok::<_, anyhow::Error>(h)
        }));
    }
    let mut handles = Vec::new();
    for t in tasks {
        handles.push(t.await??);
    }
    let elapsed = t0.elapsed();
    let after = c.admin.status(NodeRole::Primary).await?;
    let total = opts.sessions * opts.per_session;
    let syncs = after.wal_syncs.saturating_sub(before.wal_syncs).max(1);
    let entries = after.wal_entries.saturating_sub(before.wal_entries);
    let orders_per_s = total as f64 / elapsed.as_secs_f64();
    let orders_per_fsync = total as f64 / syncs as f64;
    eprintln!(
        "  sustained {orders_per_s:.0} orders/s, {orders_per_fsync:.1} orders per fdatasync on the leader"
    );
    for h in handles {
        h.abort();
    }

    Ok(json!({
        "sessions": opts.sessions,
        "window": opts.window,
        "orders": total,
        "seconds": elapsed.as_secs_f64(),
        "orders_per_s": orders_per_s,
        "leader_fdatasyncs": syncs,
        "leader_journal_entries": entries,
        "journal_entries_per_fdatasync": entries as f64 / syncs as f64,
        "orders_per_fdatasync": orders_per_fsync,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The fdatasync probe's thread is free of the bench's placement (`--cpus bench=0`).
    #[cfg(target_os = "linux")]
    #[test]
    fn the_probe_thread_may_run_on_every_cpu_when_the_bench_is_pinned() {
        // What an unplaced thread may use here (a container's cpuset may hold fewer CPUs than
        // are online).
        let unplaced = crate::affinity::allowed_cpus().unwrap();
        let first = unplaced[0];
        let allowed = std::thread::spawn(move || {
            crate::affinity::pin_thread(0, &[first]).unwrap();
            assert_eq!(crate::affinity::allowed_cpus().unwrap(), vec![first]);
            on_every_cpu("probe-test", || crate::affinity::allowed_cpus().unwrap()).unwrap()
        })
        .join()
        .unwrap();
        assert_eq!(allowed, unplaced);
    }

    #[test]
    fn the_probe_takes_its_samples_and_leaves_no_file() {
        let dir = std::env::temp_dir().join(format!("twinsite-probe-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let samples = fdatasync_baseline(&dir, 5).unwrap();
        assert_eq!(samples.len(), 5);
        assert!(samples.iter().all(|&ns| ns > 0));
        assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 0);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
