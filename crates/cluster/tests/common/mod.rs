//! A three-node loopback cluster for tests: real TCP on 127.0.0.1 (port 0), real disk in a
//! temporary directory, and a small deterministic state machine.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use tokio::net::TcpListener;
use twinsite_cluster::{Durability, Journal, JournalConfig, NodeRole, StateMachine};

pub const ROLES: [NodeRole; 3] = [NodeRole::Primary, NodeRole::Backup, NodeRole::Witness];
pub const WAIT: Duration = Duration::from_secs(20);

/// Folds every applied command into a running FNV-1a hash and keeps the commands, so tests can
/// check exactly which commands were applied.
#[derive(Debug, Default, Clone)]
pub struct TestSm {
    pub hash: u64,
    pub applied: Vec<Vec<u8>>,
}

fn fnv(mut hash: u64, bytes: &[u8]) -> u64 {
    for b in bytes {
        hash ^= u64::from(*b);
        hash = hash.wrapping_mul(0x100_0000_01b3);
    }
    hash
}

impl StateMachine for TestSm {
    fn apply(&mut self, index: u64, cmd: &[u8]) -> Vec<u8> {
        self.hash = fnv(
            fnv(self.hash ^ 0xcbf2_9ce4_8422_2325, &index.to_le_bytes()),
            cmd,
        );
        self.applied.push(cmd.to_vec());
        (self.applied.len() as u64).to_le_bytes().to_vec()
    }
    fn snapshot(&self) -> Vec<u8> {
        serde_json::to_vec(&(self.hash, &self.applied)).unwrap()
    }
    fn restore(&mut self, snap: &[u8]) -> Result<(), String> {
        let (hash, applied): (u64, Vec<Vec<u8>>) =
            serde_json::from_slice(snap).map_err(|e| e.to_string())?;
        self.hash = hash;
        self.applied = applied;
        Ok(())
    }
    fn state_hash(&self) -> u64 {
        self.hash
    }
}

pub struct Cluster {
    pub addresses: BTreeMap<NodeRole, SocketAddr>,
    pub dirs: BTreeMap<NodeRole, PathBuf>,
    pub nodes: BTreeMap<NodeRole, Journal<TestSm>>,
    pub durable: bool,
    pub tweak: fn(&mut JournalConfig),
}

pub fn no_tweak(_: &mut JournalConfig) {}

impl Cluster {
    pub async fn start(durable: bool, tweak: fn(&mut JournalConfig)) -> Cluster {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(
                tracing_subscriber::EnvFilter::try_from_default_env()
                    .unwrap_or_else(|_| "warn,openraft=error".into()),
            )
            .with_test_writer()
            .try_init();
        let base = std::env::temp_dir().join(format!(
            "twinsite-cluster-test-{}-{}",
            std::process::id(),
            rand::random::<u64>()
        ));
        let mut listeners = BTreeMap::new();
        let mut addresses = BTreeMap::new();
        for role in ROLES {
            let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
            addresses.insert(role, listener.local_addr().unwrap());
            listeners.insert(role, listener);
        }
        let dirs = ROLES
            .iter()
            .map(|r| (*r, base.join(format!("{r:?}").to_lowercase())))
            .collect();
        let mut cluster = Cluster {
            addresses,
            dirs,
            nodes: BTreeMap::new(),
            durable,
            tweak,
        };
        // The primary last: it forms the cluster, and the others are listening by then.
        for role in [NodeRole::Backup, NodeRole::Witness, NodeRole::Primary] {
            let listener = listeners.remove(&role).unwrap();
            let journal =
                Journal::start_with_listener(cluster.config(role), TestSm::default(), listener)
                    .await
                    .unwrap();
            cluster.nodes.insert(role, journal);
        }
        cluster
    }

    pub fn config(&self, role: NodeRole) -> JournalConfig {
        let durability = if self.durable {
            Durability::Disk(self.dirs[&role].clone())
        } else {
            Durability::Memory
        };
        let mut config = JournalConfig::new(role, self.addresses.clone(), durability);
        // Segments are zero-filled on creation; keep test disks small.
        config.wal_segment_bytes = 1 << 20;
        (self.tweak)(&mut config);
        config
    }

    /// Start (or restart) one node on its address and data directory.
    pub async fn restart(&mut self, role: NodeRole) -> Result<(), twinsite_cluster::JournalError> {
        let journal = Journal::start(self.config(role), TestSm::default()).await?;
        self.nodes.insert(role, journal);
        Ok(())
    }

    pub async fn stop(&mut self, role: NodeRole) {
        if let Some(node) = self.nodes.remove(&role) {
            node.shutdown().await;
        }
    }

    pub fn node(&self, role: NodeRole) -> &Journal<TestSm> {
        &self.nodes[&role]
    }

    /// Wait until `condition` holds, re-checking on every status or applied-index change of any
    /// running node; panics with every node's metrics after `timeout`.
    pub async fn wait_until(
        &self,
        what: &str,
        timeout: Duration,
        mut condition: impl FnMut(&Cluster) -> bool,
    ) {
        let deadline = tokio::time::Instant::now() + timeout;
        let mut status: Vec<_> = self.nodes.values().map(|n| n.subscribe()).collect();
        let mut applied: Vec<_> = self.nodes.values().map(|n| n.subscribe_applied()).collect();
        loop {
            if condition(self) {
                return;
            }
            let mut changes: Vec<
                std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send + '_>>,
            > = Vec::new();
            for rx in status.iter_mut() {
                changes.push(Box::pin(async move {
                    let _ = rx.changed().await;
                }));
            }
            for rx in applied.iter_mut() {
                changes.push(Box::pin(async move {
                    let _ = rx.changed().await;
                }));
            }
            let any = futures_util::future::select_all(changes);
            if tokio::time::timeout_at(deadline, any).await.is_err() {
                let metrics: Vec<_> = self.nodes.values().map(|n| n.metrics()).collect();
                panic!("timed out waiting for {what}; metrics: {metrics:#?}");
            }
        }
    }

    /// Wait until `role` is the serving leader and every running node agrees.
    pub async fn wait_serving(&self, role: NodeRole) {
        self.wait_until(&format!("{role:?} serving"), WAIT, |c| {
            c.nodes.get(&role).is_some_and(|n| n.is_serving())
                && c.nodes.values().all(|n| n.leader() == Some(role))
        })
        .await;
    }

    /// Wait until every running node has applied `index`.
    pub async fn wait_applied(&self, index: u64) {
        self.wait_until(&format!("all applied {index}"), WAIT, |c| {
            c.nodes.values().all(|n| n.applied_index() >= index)
        })
        .await;
    }

    /// Assert that every running node has the same state hash at every index in `range`
    /// that they all remember, and that at least the last one is remembered by all.
    pub fn assert_same_hashes(&self, last: u64) {
        let mut compared = 0;
        for index in 1..=last {
            let hashes: Vec<Option<u64>> = self
                .nodes
                .values()
                .map(|n| n.state_hash_at(index))
                .collect();
            if hashes.iter().all(|h| h.is_some()) {
                assert!(
                    hashes.windows(2).all(|w| w[0] == w[1]),
                    "state hashes differ at index {index}: {hashes:?}"
                );
                compared += 1;
            }
        }
        assert!(compared > 0, "no index was remembered by every node");
        let at_last: Vec<_> = self.nodes.values().map(|n| n.state_hash_at(last)).collect();
        assert!(
            at_last.iter().all(|h| h.is_some()),
            "index {last} not applied everywhere: {at_last:?}"
        );
    }

    /// Propose `count` commands `"{tag}-{i}"` on `role`, `parallel` at a time; returns the
    /// highest index.
    pub async fn propose_many(
        &self,
        role: NodeRole,
        tag: &str,
        count: usize,
        parallel: usize,
    ) -> u64 {
        let node = self.node(role).clone();
        let mut last = 0;
        let mut i = 0;
        while i < count {
            let mut batch = Vec::new();
            for _ in 0..parallel.min(count - i) {
                let node = node.clone();
                let cmd = format!("{tag}-{i}").into_bytes();
                batch.push(tokio::spawn(async move { node.propose(cmd).await }));
                i += 1;
            }
            for task in batch {
                let (index, _reply) = task.await.unwrap().expect("propose on the leader commits");
                last = last.max(index);
            }
        }
        last
    }

    pub fn cleanup(&self) {
        if let Some(parent) = self.dirs.values().next().and_then(|d| d.parent()) {
            let _ = std::fs::remove_dir_all(parent);
        }
    }
}
