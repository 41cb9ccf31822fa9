//! What durability costs: the median of one WAL append + fdatasync on this disk, against the
//! median latency of a replicated, durable `propose` on a loaded three-node loopback cluster,
//! and how many log entries each fdatasync carries under that load (group commit).
//!
//! The group-commit case then runs 1, 8, 64 and 256 concurrent proposers for a fixed time each
//! and prints, per load, proposals/s, the leader's and the backup's log entries per fdatasync,
//! and proposals/s against the raw fdatasync rate of the same disk measured in the same run.
//!
//! Run: `cargo bench -p twinsite-cluster --bench journal`. Criterion prints the medians; the
//! group-commit lines start with `group commit:`. `TWINSITE_BENCH_SECONDS` (default 3) sets
//! how long each load runs.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion};
use tokio::net::TcpListener;
use twinsite_cluster::wal::Wal;
use twinsite_cluster::{Durability, Journal, JournalConfig, NodeRole, StateMachine};

/// A stand-in for the matching engine: folds each order into a hash.
#[derive(Default)]
struct HashSm {
    hash: u64,
}

impl StateMachine for HashSm {
    fn apply(&mut self, index: u64, cmd: &[u8]) -> Vec<u8> {
        for b in cmd.iter().chain(&index.to_le_bytes()) {
            self.hash = (self.hash ^ u64::from(*b)).wrapping_mul(0x100_0000_01b3);
        }
        Vec::new()
    }
    fn snapshot(&self) -> Vec<u8> {
        self.hash.to_le_bytes().to_vec()
    }
    fn restore(&mut self, snap: &[u8]) -> Result<(), String> {
        let bytes: [u8; 8] = snap.try_into().map_err(|_| "snapshot is 8 bytes")?;
        self.hash = u64::from_le_bytes(bytes);
        Ok(())
    }
    fn state_hash(&self) -> u64 {
        self.hash
    }
}

fn bench_dir(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("twinsite-bench-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

fn fdatasync(c: &mut Criterion) {
    let dir = bench_dir("wal");
    let (mut wal, _, _) = Wal::open(&dir, 64 << 20).unwrap();
    let order = [7u8; 96];
    c.bench_function("wal append 96 B + fdatasync", |b| {
        b.iter(|| {
            wal.append(&order).unwrap();
            wal.sync().unwrap();
        })
    });
    drop(wal);
    let _ = std::fs::remove_dir_all(&dir);
}

async fn start_cluster(base: &std::path::Path) -> BTreeMap<NodeRole, Journal<HashSm>> {
    let roles = [NodeRole::Primary, NodeRole::Backup, NodeRole::Witness];
    let mut listeners = BTreeMap::new();
    let mut addresses = BTreeMap::new();
    for role in roles {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        addresses.insert(role, listener.local_addr().unwrap());
        listeners.insert(role, listener);
    }
    let mut nodes = BTreeMap::new();
    for role in [NodeRole::Backup, NodeRole::Witness, NodeRole::Primary] {
        let dir = base.join(format!("{role:?}"));
        let config = JournalConfig::new(role, addresses.clone(), Durability::Disk(dir));
        let listener = listeners.remove(&role).unwrap();
        let node = Journal::start_with_listener(config, HashSm::default(), listener)
            .await
            .unwrap();
        nodes.insert(role, node);
    }
    let primary = nodes[&NodeRole::Primary].clone();
    primary
        .wait_status(Duration::from_secs(20), |s| s.serving)
        .await
        .unwrap();
    nodes
}

fn replicated_propose(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let base = bench_dir("cluster");
    let nodes = runtime.block_on(start_cluster(&base));
    let leader = nodes[&NodeRole::Primary].clone();
    // Background load: eight participants proposing back to back.
    let running = Arc::new(AtomicBool::new(true));
    let mut load = Vec::new();
    for participant in 0..8u8 {
        let leader = leader.clone();
        let running = running.clone();
        load.push(runtime.spawn(async move {
            while running.load(Ordering::Relaxed) {
                let _ = leader.propose(vec![participant; 96]).await;
            }
        }));
    }
    let before = leader.metrics();
    let started = Instant::now();
    c.bench_function("replicated propose 96 B under load (3 nodes, disk)", |b| {
        b.iter_custom(|iters| {
            runtime.block_on(async {
                let start = Instant::now();
                for _ in 0..iters {
                    leader.propose(vec![9u8; 96]).await.unwrap();
                }
                start.elapsed()
            })
        })
    });
    let after = leader.metrics();
    let elapsed = started.elapsed().as_secs_f64();
    running.store(false, Ordering::Relaxed);
    runtime.block_on(async {
        for task in load {
            let _ = task.await;
        }
        for node in nodes.values() {
            node.shutdown().await;
        }
    });
    let syncs = after.wal_syncs - before.wal_syncs;
    let entries = after.wal_entries - before.wal_entries;
    println!(
        "journal: leader made {entries} entries durable with {syncs} fdatasyncs: {:.1} entries \
         per fdatasync, {:.0} commits/s, mean fdatasync {:.0} us",
        entries as f64 / syncs.max(1) as f64,
        (after.status.commit_index - before.status.commit_index) as f64 / elapsed,
        (after.wal_sync_nanos_total - before.wal_sync_nanos_total) as f64
            / syncs.max(1) as f64
            / 1000.0,
    );
    let _ = std::fs::remove_dir_all(&base);
}

/// Raw fdatasync rate of this disk: one small append + fdatasync, back to back, for `secs`.
fn raw_fdatasync_rate(secs: f64) -> (f64, f64) {
    let dir = bench_dir("raw");
    let (mut wal, _, _) = Wal::open(&dir, 64 << 20).unwrap();
    let order = [7u8; 96];
    let mut latencies = Vec::new();
    let started = Instant::now();
    while started.elapsed().as_secs_f64() < secs {
        let t = Instant::now();
        wal.append(&order).unwrap();
        wal.sync().unwrap();
        latencies.push(t.elapsed());
    }
    let rate = latencies.len() as f64 / started.elapsed().as_secs_f64();
    latencies.sort_unstable();
    let median = latencies[latencies.len() / 2].as_secs_f64() * 1e6;
    drop(wal);
    let _ = std::fs::remove_dir_all(&dir);
    (rate, median)
}

/// Group commit under load: `proposers` tasks each propose 96-byte orders back to back on the
/// leader for `secs`; counts committed proposals and the fdatasyncs every node made.
fn group_commit(_c: &mut Criterion) {
    let secs: f64 = std::env::var("TWINSITE_BENCH_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(3.0);
    let (raw_rate, raw_median_us) = raw_fdatasync_rate(secs);
    println!(
        "group commit: raw fdatasync on this disk: {raw_rate:.0} syncs/s, median {raw_median_us:.0} us \
         (one 96 B append + fdatasync, back to back, {secs} s)"
    );
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let base = bench_dir("group-commit");
    let nodes = runtime.block_on(start_cluster(&base));
    let leader = nodes[&NodeRole::Primary].clone();
    let backup = nodes[&NodeRole::Backup].clone();
    for proposers in [1usize, 8, 64, 256] {
        let running = Arc::new(AtomicBool::new(true));
        let committed = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let failed = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let leader_before = leader.metrics();
        let backup_before = backup.metrics();
        let started = Instant::now();
        let tasks: Vec<_> = (0..proposers)
            .map(|p| {
                let leader = leader.clone();
                let running = running.clone();
                let committed = committed.clone();
                let failed = failed.clone();
                runtime.spawn(async move {
                    let mut order = vec![0u8; 96];
                    order[..8].copy_from_slice(&(p as u64).to_le_bytes());
                    while running.load(Ordering::Relaxed) {
                        match leader.propose(order.clone()).await {
                            Ok(_) => committed.fetch_add(1, Ordering::Relaxed),
                            Err(_) => failed.fetch_add(1, Ordering::Relaxed),
                        };
                    }
                })
            })
            .collect();
        std::thread::sleep(Duration::from_secs_f64(secs));
        running.store(false, Ordering::Relaxed);
        runtime.block_on(async {
            for task in tasks {
                task.await.unwrap();
            }
        });
        let elapsed = started.elapsed().as_secs_f64();
        let leader_after = leader.metrics();
        let backup_after = backup.metrics();
        let per_sync = |before: &twinsite_cluster::JournalMetrics,
                        after: &twinsite_cluster::JournalMetrics| {
            let syncs = after.wal_syncs - before.wal_syncs;
            let entries = after.wal_entries - before.wal_entries;
            let mean_us = (after.wal_sync_nanos_total - before.wal_sync_nanos_total) as f64
                / syncs.max(1) as f64
                / 1000.0;
            (entries as f64 / syncs.max(1) as f64, syncs, mean_us)
        };
        let (leader_ratio, leader_syncs, leader_sync_us) = per_sync(&leader_before, &leader_after);
        let (backup_ratio, _, _) = per_sync(&backup_before, &backup_after);
        let rate = committed.load(Ordering::Relaxed) as f64 / elapsed;
        println!(
            "group commit: {proposers:>3} proposers: {rate:>6.0} proposals/s ({:.1}x the raw \
             fdatasync rate), leader {leader_ratio:.1} entries per fdatasync ({leader_syncs} \
             syncs, mean {leader_sync_us:.0} us), backup {backup_ratio:.1} entries per \
             fdatasync, {} failed",
            rate / raw_rate,
            failed.load(Ordering::Relaxed),
        );
    }
    runtime.block_on(async {
        for node in nodes.values() {
            node.shutdown().await;
        }
    });
    let _ = std::fs::remove_dir_all(&base);
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .sample_size(20)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3));
    targets = fdatasync, replicated_propose, group_commit
}
criterion_main!(benches);
