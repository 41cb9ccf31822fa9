//! twinsite-cluster: a replicated, durable command journal across three nodes (primary site,
//! backup site, witness).
//!
//! The journal carries opaque command bytes. Every node applies the committed journal, in
//! order, to its own copy of the application's [`StateMachine`], so the standby is hot and has
//! the same state hash at every index. Consensus is openraft, kept entirely behind [`Journal`]:
//! no openraft type appears in this crate's public API.
//!
//! [`sim`] runs the same nodes on an in-process network with seeded faults (the deterministic
//! simulation).
//!
//! This crate is the exception to the workspace rule that only `crates/site` does I/O: it owns
//! its sockets (raft RPCs over TCP on loopback), its tokio tasks and its disk (the WAL).
//! See `docs/cluster.md`.

mod append_stream;
mod framed_file;
mod journal;
mod log_store;
mod net;
mod runtime;
pub mod sim;
mod sm_store;
pub mod stages;
mod types;
pub mod wal;
mod wire;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

pub use journal::{Journal, JournalMetrics, JournalStatus, PeerReplication};
pub use log_store::OpenError;
pub use twinsite_core::ids::NodeRole;

/// The application state machine the journal drives. Implementations must be deterministic:
/// the same commands in the same order give the same replies and the same state hash.
pub trait StateMachine: Send + 'static {
    /// Apply the committed command at `index`; the reply goes back to the proposer.
    fn apply(&mut self, index: u64, cmd: &[u8]) -> Vec<u8>;
    /// Serialize the whole state.
    fn snapshot(&self) -> Vec<u8>;
    /// Replace the whole state with a snapshot made by [`StateMachine::snapshot`].
    fn restore(&mut self, snap: &[u8]) -> Result<(), String>;
    /// A hash of the whole state, equal on every node at the same index.
    fn state_hash(&self) -> u64;
}

impl<T: StateMachine + ?Sized> StateMachine for Box<T> {
    fn apply(&mut self, index: u64, cmd: &[u8]) -> Vec<u8> {
        (**self).apply(index, cmd)
    }
    fn snapshot(&self) -> Vec<u8> {
        (**self).snapshot()
    }
    fn restore(&mut self, snap: &[u8]) -> Result<(), String> {
        (**self).restore(snap)
    }
    fn state_hash(&self) -> u64 {
        (**self).state_hash()
    }
}

/// Where the journal keeps its log, vote and snapshots.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Durability {
    /// WAL, vote and snapshot files in this directory; fdatasync before acknowledging.
    Disk(PathBuf),
    /// Nothing is written to disk: for demos only. A restart loses the node's journal.
    Memory,
}

/// One node's journal configuration.
#[derive(Debug, Clone)]
pub struct JournalConfig {
    /// This node.
    pub role: NodeRole,
    /// The raft RPC address of every node, this one included.
    pub addresses: BTreeMap<NodeRole, SocketAddr>,
    pub durability: Durability,
    pub heartbeat_interval: Duration,
    pub election_timeout_min: Duration,
    pub election_timeout_max: Duration,
    /// Take a snapshot after this many applied entries since the last one.
    pub snapshot_every_entries: u64,
    /// Log entries kept behind a snapshot, so a briefly lagging peer needs no snapshot.
    pub log_entries_kept_after_snapshot: u64,
    /// Size each WAL segment file is preallocated to.
    pub wal_segment_bytes: u64,
    /// How long `propose` waits for commit before answering `JournalError::Timeout`.
    pub propose_timeout: Duration,
    /// How many recent indexes `state_hash_at` remembers.
    pub state_hash_history: usize,
    /// How long the leader holds each AppendEntries to the witness before sending it (over
    /// TCP; zero sends at once). Entries appended meanwhile go in the next request, so the
    /// witness is woken, and fdatasyncs, about once per linger instead of once per proposal,
    /// and its fdatasyncs stop competing with the leader's and the backup's on a shared disk.
    /// While the backup site acknowledges, commits do not wait for the witness; while it does
    /// not, each commit waits up to this much longer. See `docs/cluster.md`.
    pub witness_linger: Duration,
    /// Pipeline AppendEntries over TCP (default): the leader sends each follower the next
    /// request without waiting for the answer to the previous one, so the entry-less request
    /// carrying a commit index no longer holds up the next proposal's entries. Off: one request
    /// at a time (openraft's sequential default), for comparison. See `docs/cluster.md`.
    pub append_pipeline: bool,
    /// With the pipeline on: how long the leader holds back an AppendEntries that carries no
    /// entry (openraft's notice of a new commit index) in case the next request follows, which
    /// then carries the commit index instead (zero: never held). A follower's commit index, and
    /// so its applying, lags by up to this much when no proposal follows; nothing is
    /// acknowledged later (a commit needs only the entries' answers). See `docs/cluster.md`.
    pub commit_notice_hold: Duration,
    /// While this node is a follower, write and fdatasync its WAL on the raft thread when the
    /// WAL is idle, instead of handing each AppendEntries' records to the writer thread and
    /// being woken when they are durable (default on). The answer to the leader then leaves as
    /// soon as the sync returns; a follower has nothing else to do meanwhile. Jobs that arrive
    /// while a sync is in flight still go to the writer thread, which groups them. A leader
    /// always uses the writer thread, so its replication is never held up by its own sync.
    /// See `docs/cluster.md`.
    pub follower_inline_wal: bool,
    /// While this node leads, wake its WAL writer for newly appended entries only after the
    /// tasks already runnable have run, so the AppendEntries carrying them leave first (default
    /// on). See `LogStore::set_defer_wake` and `docs/cluster.md`.
    pub leader_wal_wake_after_sends: bool,
    /// While this node leads (and with `leader_wal_wake_after_sends`): once the AppendEntries
    /// have left, write and fdatasync the appended entries on the raft thread when the WAL is
    /// idle and its latest sync was fast, instead of waking the writer thread (default on). See
    /// `LogStore::set_leader_inline` and `docs/cluster.md`.
    pub leader_inline_wal: bool,
}

impl JournalConfig {
    /// Defaults sized for a loopback cluster.
    pub fn new(
        role: NodeRole,
        addresses: BTreeMap<NodeRole, SocketAddr>,
        durability: Durability,
    ) -> JournalConfig {
        JournalConfig {
            role,
            addresses,
            durability,
            heartbeat_interval: Duration::from_millis(50),
            election_timeout_min: Duration::from_millis(300),
            election_timeout_max: Duration::from_millis(600),
            snapshot_every_entries: 10_000,
            log_entries_kept_after_snapshot: 1_000,
            wal_segment_bytes: 64 << 20,
            propose_timeout: Duration::from_secs(2),
            state_hash_history: 1 << 16,
            witness_linger: Duration::ZERO,
            append_pipeline: true,
            follower_inline_wal: true,
            leader_wal_wake_after_sends: true,
            leader_inline_wal: true,
            commit_notice_hold: Duration::from_millis(1),
        }
    }
}

/// Why a journal operation did not succeed. Only `propose` returning `Ok` means committed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JournalError {
    #[error("this node ({role:?}) is not the leader; the leader is {leader:?}")]
    NotLeader {
        role: NodeRole,
        leader: Option<NodeRole>,
    },
    #[error("the witness never serves proposals; it hands leadership to a site")]
    Witness,
    #[error(
        "the leader has not heard from a quorum for {millis_since_quorum_ack} ms; \
         the command was not proposed"
    )]
    QuorumLost { millis_since_quorum_ack: u64 },
    #[error(
        "the command was not committed within {timeout_ms} ms; its outcome is unknown \
         (it may still commit, or be discarded by a new leader)"
    )]
    Timeout { timeout_ms: u64 },
    #[error("leadership did not move to {to:?} within {timeout_ms} ms")]
    TransferTimeout { to: NodeRole, timeout_ms: u64 },
    #[error("journal cannot start: {0}")]
    Start(String),
    #[error("journal consensus error: {0}")]
    Raft(String),
    #[error("journal has shut down")]
    Shutdown,
}

/// Raft node ids are fixed per role, so logs and metrics read the same on every run.
pub fn node_id(role: NodeRole) -> u64 {
    match role {
        NodeRole::Primary => 1,
        NodeRole::Backup => 2,
        NodeRole::Witness => 3,
    }
}

/// Raft listeners for the three roles on 127.0.0.1 (ephemeral ports), with their addresses: a
/// cluster inside one process (the demo, tests) hands each node its listener, so no port is
/// chosen before it is bound.
pub async fn loopback_listeners() -> std::io::Result<(
    BTreeMap<NodeRole, SocketAddr>,
    BTreeMap<NodeRole, tokio::net::TcpListener>,
)> {
    let (mut addrs, mut listeners) = (BTreeMap::new(), BTreeMap::new());
    for r in [NodeRole::Primary, NodeRole::Backup, NodeRole::Witness] {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        addrs.insert(r, l.local_addr()?);
        listeners.insert(r, l);
    }
    Ok((addrs, listeners))
}

/// The role of a raft node id, if it is one of ours.
pub fn role_of(node_id: u64) -> Option<NodeRole> {
    match node_id {
        1 => Some(NodeRole::Primary),
        2 => Some(NodeRole::Backup),
        3 => Some(NodeRole::Witness),
        _ => None,
    }
}
