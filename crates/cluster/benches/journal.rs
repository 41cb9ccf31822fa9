//! What durability costs: the median of one WAL append + fdatasync on this disk, against the
//! median latency of a replicated, durable `propose` on a loaded three-node loopback cluster,
//! and how many log entries each fdatasync carries under that load (group commit).
//!
//! Run: `cargo bench -p twinsite-cluster --bench journal`. Criterion prints the medians; the
//! group-commit ratio is printed as `journal: ... entries per fdatasync`.

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

criterion_group! {
    name = benches;
    config = Criterion::default()
        .sample_size(20)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3));
    targets = fdatasync, replicated_propose
}
criterion_main!(benches);
