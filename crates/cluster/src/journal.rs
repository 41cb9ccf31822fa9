//! The [`Journal`] handle: start a node, propose commands, watch leadership, move leadership.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use openraft::async_runtime::WatchReceiver;
use openraft::errors::{ClientWriteError, ForwardReason, RaftError};
use openraft::impls::ProgressResponder;
use openraft::{BasicNode, Raft, RaftMetrics, ServerState, SnapshotPolicy};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::log_store::{LogStore, WalStats};
use crate::net::{Faults, NetworkFactory, SimEndpoint, VoteGate};
use crate::sim::{SimDisk, SimNetwork};
use crate::sm_store::{SmShared, SmStore, SnapshotSlot};
use crate::types::{Command, C};
use crate::{node_id, role_of, Durability, JournalConfig, JournalError, NodeRole, StateMachine};

/// A snapshot of this node's view, published on every change (see [`Journal::subscribe`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JournalStatus {
    pub role: NodeRole,
    pub leader: Option<NodeRole>,
    pub is_leader: bool,
    /// Leader and not the witness: this node's site should serve participants.
    pub serving: bool,
    pub term: u64,
    pub commit_index: u64,
    pub applied_index: u64,
    pub last_log_index: u64,
}

/// How far one follower is behind, as seen by the leader.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerReplication {
    pub matched_index: Option<u64>,
    /// Entries the follower is behind the leader's last log index.
    pub lag: u64,
}

/// Metrics of one node; `replication` is filled only on the leader.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JournalMetrics {
    pub status: JournalStatus,
    pub state: &'static str,
    pub snapshot_index: Option<u64>,
    pub purged_index: Option<u64>,
    pub millis_since_quorum_ack: Option<u64>,
    pub replication: BTreeMap<NodeRole, PeerReplication>,
    pub durability: &'static str,
    pub wal_syncs: u64,
    /// Log entries made durable; divided by `wal_syncs` gives entries per fdatasync.
    pub wal_entries: u64,
    pub wal_sync_nanos_total: u64,
    /// Times this node, as witness, found itself leader and handed leadership on.
    pub witness_handovers: u64,
}

struct Inner<S: StateMachine> {
    role: NodeRole,
    config: JournalConfig,
    raft: Raft<C, SmStore<S>>,
    sm: Arc<SmShared<S>>,
    /// Closed at shutdown (`LogStore::close`).
    log: LogStore,
    faults: Arc<Faults>,
    status_rx: watch::Receiver<JournalStatus>,
    wal_stats: Arc<WalStats>,
    local_addr: SocketAddr,
    witness_handovers: Arc<AtomicU64>,
    tasks: Mutex<Vec<JoinHandle<()>>>,
    /// On a simulated network: the network and this instance's registration there.
    sim: Option<(SimNetwork, u64)>,
}

/// How a node talks to its peers and where it keeps its data.
enum Wiring {
    Tcp(TcpListener),
    Sim(SimNetwork, SimDisk),
}

impl<S: StateMachine> Drop for Inner<S> {
    fn drop(&mut self) {
        if let Some((net, token)) = &self.sim {
            net.unregister(node_id(self.role), *token);
        }
        for task in self.tasks.lock().expect("tasks mutex").drain(..) {
            task.abort();
        }
        if let Ok(handle) = tokio::runtime::Handle::try_current() {
            let raft = self.raft.clone();
            handle.spawn(async move {
                let _ = raft.shutdown().await;
            });
        }
    }
}

/// One node's handle on the replicated journal. Cheap to clone.
pub struct Journal<S: StateMachine> {
    inner: Arc<Inner<S>>,
}

impl<S: StateMachine> Clone for Journal<S> {
    fn clone(&self) -> Self {
        Journal {
            inner: self.inner.clone(),
        }
    }
}

impl<S: StateMachine> std::fmt::Debug for Journal<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Journal")
            .field("role", &self.inner.role)
            .field("local_addr", &self.inner.local_addr)
            .field("status", &*self.inner.status_rx.borrow())
            .finish()
    }
}

fn raft_config(config: &JournalConfig) -> Result<openraft::Config, JournalError> {
    let millis = |d: Duration| d.as_millis() as u64;
    let raft = openraft::Config {
        cluster_name: "twinsite".into(),
        heartbeat_interval: millis(config.heartbeat_interval),
        election_timeout_min: millis(config.election_timeout_min),
        election_timeout_max: millis(config.election_timeout_max),
        snapshot_policy: SnapshotPolicy::LogsSinceLast(config.snapshot_every_entries),
        max_in_snapshot_log_to_keep: config.log_entries_kept_after_snapshot,
        enable_pre_vote: Some(true),
        backoff: "20ms 40ms ...300ms".into(),
        // A node whose damaged data directory was deleted rejoins with an empty log; the
        // leader restarts its replication from scratch instead of stopping.
        allow_log_reversion: Some(true),
        ..Default::default()
    };
    raft.validate()
        .map_err(|e| JournalError::Start(format!("raft config: {e}")))
}

impl<S: StateMachine> Journal<S> {
    /// Start this node, listening on its configured address.
    pub async fn start(config: JournalConfig, sm: S) -> Result<Journal<S>, JournalError> {
        let addr = *config
            .addresses
            .get(&config.role)
            .ok_or_else(|| JournalError::Start(format!("no address for {:?}", config.role)))?;
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|e| JournalError::Start(format!("bind {addr}: {e}")))?;
        Self::start_with_listener(config, sm, listener).await
    }

    /// Start this node on an already bound listener (tests bind port 0 first).
    pub async fn start_with_listener(
        config: JournalConfig,
        sm: S,
        listener: TcpListener,
    ) -> Result<Journal<S>, JournalError> {
        Self::start_wired(config, sm, Wiring::Tcp(listener)).await
    }

    /// Start this node on a simulated network with a simulated disk (the deterministic
    /// simulation, see [`crate::sim`]). `config.durability` is ignored: the log, vote and
    /// snapshot live on `disk`, which survives dropping this `Journal` (a crash) and is read
    /// back by the next start with the same disk. `config.addresses` only name the members.
    pub async fn start_simulated(
        config: JournalConfig,
        sm: S,
        network: &SimNetwork,
        disk: &SimDisk,
    ) -> Result<Journal<S>, JournalError> {
        Self::start_wired(config, sm, Wiring::Sim(network.clone(), disk.clone())).await
    }

    async fn start_wired(
        config: JournalConfig,
        sm: S,
        wiring: Wiring,
    ) -> Result<Journal<S>, JournalError> {
        let role = config.role;
        let id = node_id(role);
        let local_addr = match &wiring {
            Wiring::Tcp(listener) => listener
                .local_addr()
                .map_err(|e| JournalError::Start(e.to_string()))?,
            Wiring::Sim(..) => *config
                .addresses
                .get(&role)
                .ok_or_else(|| JournalError::Start(format!("no address for {role:?}")))?,
        };
        let wal_stats = Arc::new(WalStats::default());
        let (log_store, sm_store) = match &wiring {
            Wiring::Tcp(_) => open_stores(&config, sm, wal_stats.clone())?,
            Wiring::Sim(_, disk) => {
                let slot = SnapshotSlot::Memory(disk.snapshot.clone());
                let sm = SmStore::open(sm, slot, config.state_hash_history)
                    .map_err(|e| JournalError::Start(e.to_string()))?;
                (disk.log.clone(), sm)
            }
        };
        let gate = Arc::new(VoteGate::new(
            log_store.is_empty() && sm_store.shared.applied_index() == 0,
        ));
        let sm = sm_store.shared.clone();
        let faults = Arc::new(Faults::default());
        let addresses: BTreeMap<u64, SocketAddr> = config
            .addresses
            .iter()
            .map(|(r, a)| (node_id(*r), *a))
            .collect();
        let network = NetworkFactory {
            faults: faults.clone(),
            addresses: Arc::new(addresses.clone()),
            self_id: id,
            append_timeout_floor: config.election_timeout_min,
            witness_linger: config.witness_linger,
            pipeline: config.append_pipeline,
            notice_hold: config.commit_notice_hold,
            sim: match &wiring {
                Wiring::Tcp(_) => None,
                Wiring::Sim(net, _) => Some(net.clone()),
            },
        };
        let raft_cfg = Arc::new(raft_config(&config)?);
        // How the WAL writer is used follows the node's raft state (`follower_inline_wal`,
        // `leader_wal_wake_after_sends`).
        let wal_modes =
            (config.follower_inline_wal || config.leader_wal_wake_after_sends).then(|| WalModes {
                log: log_store.clone(),
                follower_inline: config.follower_inline_wal,
                leader_defer_wake: config.leader_wal_wake_after_sends,
                leader_inline: config.leader_wal_wake_after_sends && config.leader_inline_wal,
            });
        let log = log_store.clone();
        let raft = Raft::new(id, raft_cfg, network, log_store, sm_store)
            .await
            .map_err(|e| JournalError::Start(format!("raft: {e}")))?;
        let mut tasks = Vec::new();
        let sim = match wiring {
            Wiring::Tcp(listener) => {
                tasks.push(tokio::spawn(crate::net::serve(
                    listener,
                    raft.clone(),
                    faults.clone(),
                    gate,
                )));
                None
            }
            Wiring::Sim(net, _) => {
                let endpoint = Arc::new(SimEndpoint {
                    raft: raft.clone(),
                    faults: faults.clone(),
                    gate,
                });
                let token = net.register(id, endpoint);
                Some((net, token))
            }
        };
        let (status_tx, status_rx) =
            watch::channel(status_of(role, &raft.metrics().borrow_watched()));
        tasks.push(tokio::spawn(publish_status(
            role,
            raft.clone(),
            status_tx,
            wal_modes,
        )));
        let witness_handovers = Arc::new(AtomicU64::new(0));
        if role == NodeRole::Witness {
            tasks.push(tokio::spawn(witness_handover(
                raft.clone(),
                status_rx.clone(),
                config.election_timeout_max,
                witness_handovers.clone(),
            )));
        }
        let journal = Journal {
            inner: Arc::new(Inner {
                role,
                config,
                raft,
                sm,
                log,
                faults,
                status_rx,
                wal_stats,
                local_addr,
                witness_handovers,
                tasks: Mutex::new(tasks),
                sim,
            }),
        };
        journal.form_cluster_if_fresh(&addresses).await?;
        tracing::info!(?role, %local_addr, "journal: node started");
        Ok(journal)
    }

    /// A fresh cluster is formed by the primary alone (the recommended single initializer);
    /// the other nodes wait to be replicated to.
    async fn form_cluster_if_fresh(
        &self,
        addresses: &BTreeMap<u64, SocketAddr>,
    ) -> Result<(), JournalError> {
        let raft = &self.inner.raft;
        let initialized = raft
            .is_initialized()
            .await
            .map_err(|e| JournalError::Raft(e.to_string()))?;
        if initialized || self.inner.role != NodeRole::Primary {
            return Ok(());
        }
        let members: BTreeMap<u64, BasicNode> = addresses
            .iter()
            .map(|(id, addr)| (*id, BasicNode::new(addr.to_string())))
            .collect();
        assert_eq!(
            members.len(),
            3,
            "a journal cluster has exactly three nodes"
        );
        raft.initialize(members)
            .await
            .map_err(|e| JournalError::Start(format!("initialize: {e}")))
    }

    pub fn role(&self) -> NodeRole {
        self.inner.role
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.inner.local_addr
    }

    pub fn config(&self) -> &JournalConfig {
        &self.inner.config
    }

    /// Propose a command; returns its index and the state machine's reply once it is committed
    /// on a quorum and applied here. Any error means the caller must not acknowledge it.
    pub async fn propose(&self, cmd: Vec<u8>) -> Result<(u64, Vec<u8>), JournalError> {
        self.propose_until(cmd, Until::Applied)
            .await
            .map(|(index, reply)| (index, reply.unwrap_or_default()))
    }

    /// Propose a command; returns its index as soon as it is committed on a quorum (durable on a
    /// majority, so every later leader has it), without waiting for this node's state machine
    /// to apply it. For a caller that already holds the command's outcome (the active site's
    /// gateway computed it before proposing) and only needs the permission to acknowledge it.
    /// Any error means the caller must not acknowledge it.
    pub async fn propose_committed(&self, cmd: Vec<u8>) -> Result<u64, JournalError> {
        self.propose_until(cmd, Until::Committed)
            .await
            .map(|(index, _)| index)
    }

    async fn propose_until(
        &self,
        cmd: Vec<u8>,
        until: Until,
    ) -> Result<(u64, Option<Vec<u8>>), JournalError> {
        let inner = &self.inner;
        if inner.role == NodeRole::Witness {
            return Err(JournalError::Witness);
        }
        let timeout = inner.config.propose_timeout;
        let deadline = tokio::time::Instant::now() + timeout;
        let timeout_ms = timeout.as_millis() as u64;
        let command = Command(cmd);
        loop {
            // Only what this loop needs, read under the borrow (not a clone of the whole
            // metrics, with its membership and replication maps, on every proposal).
            let (state, leader, term, acked, since_ack) = {
                let m = inner.raft.metrics();
                let m = m.borrow_watched();
                (
                    m.state,
                    m.current_leader,
                    m.current_term,
                    m.last_quorum_acked,
                    millis_since_quorum_ack(&m),
                )
            };
            if state != ServerState::Leader {
                return Err(JournalError::NotLeader {
                    role: inner.role,
                    leader: leader.and_then(role_of),
                });
            }
            let write = write_once(&inner.raft, command.clone(), until);
            let forward = match tokio::time::timeout_at(deadline, write).await {
                Err(_) => return Err(JournalError::Timeout { timeout_ms }),
                Ok(Ok(done)) => return Ok(done),
                Ok(Err(RaftError::APIError(ClientWriteError::ForwardToLeader(forward)))) => forward,
                Ok(Err(e)) => return Err(JournalError::Raft(e.to_string())),
            };
            if forward.reason != ForwardReason::LeaseExpired {
                return Err(JournalError::NotLeader {
                    role: inner.role,
                    leader: forward.leader_id.and_then(role_of),
                });
            }
            // Not appended: a new leader has no quorum acknowledgement yet, or an isolated
            // leader's lease ran out. Retry once a quorum acknowledges again, or leadership
            // changes, until the deadline. (Not on any metrics change: the rejected write
            // itself changes metrics, and retrying on that would spin.)
            let mut changes = inner.raft.metrics();
            let wait = async {
                loop {
                    if changes.changed().await.is_err() {
                        return;
                    }
                    let m = changes.borrow_watched();
                    if m.state != ServerState::Leader
                        || m.current_term != term
                        || m.last_quorum_acked != acked
                    {
                        return;
                    }
                }
            };
            if tokio::time::timeout_at(deadline, wait).await.is_err() {
                return Err(JournalError::QuorumLost {
                    millis_since_quorum_ack: since_ack.unwrap_or(timeout_ms),
                });
            }
        }
    }

    pub fn is_leader(&self) -> bool {
        self.inner.status_rx.borrow().is_leader
    }

    /// Leader and not the witness: this site should serve participants.
    pub fn is_serving(&self) -> bool {
        self.inner.status_rx.borrow().serving
    }

    pub fn leader(&self) -> Option<NodeRole> {
        self.inner.status_rx.borrow().leader
    }

    pub fn commit_index(&self) -> u64 {
        self.inner.status_rx.borrow().commit_index
    }

    pub fn applied_index(&self) -> u64 {
        self.inner.sm.applied_index()
    }

    /// The last index in this node's log, read from raft's own metrics (not the status, which
    /// is published a moment later). On the leader it covers every proposal made so far, so
    /// every acknowledged one: a reply is released at commit, which can come before this
    /// node has applied the entry.
    pub fn last_log_index(&self) -> u64 {
        self.inner
            .raft
            .metrics()
            .borrow_watched()
            .last_log_index
            .unwrap_or(0)
    }

    pub fn status(&self) -> JournalStatus {
        self.inner.status_rx.borrow().clone()
    }

    /// Role and index changes; open or close services when `serving` flips.
    pub fn subscribe(&self) -> watch::Receiver<JournalStatus> {
        self.inner.status_rx.clone()
    }

    /// The applied index, updated after every applied batch.
    pub fn subscribe_applied(&self) -> watch::Receiver<u64> {
        self.inner.sm.subscribe_applied()
    }

    /// The state machine's hash right after applying `index`, if still remembered.
    pub fn state_hash_at(&self, index: u64) -> Option<u64> {
        self.inner.sm.state_hash_at(index)
    }

    /// The current state hash and the index it belongs to, read atomically.
    pub fn state_hash(&self) -> (u64, u64) {
        self.inner.sm.current_hash()
    }

    /// Read the local state machine (for queries; never for mutations).
    pub fn read<R>(&self, f: impl FnOnce(&S) -> R) -> R {
        let state = self.inner.sm.lock();
        f(&state.sm)
    }

    /// Wait until `index` is applied here, or the timeout passes.
    pub async fn wait_applied(&self, index: u64, timeout: Duration) -> Result<(), JournalError> {
        let mut rx = self.subscribe_applied();
        let wait = async { rx.wait_for(|applied| *applied >= index).await.map(|_| ()) };
        match tokio::time::timeout(timeout, wait).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(_)) => Err(JournalError::Shutdown),
            Err(_) => Err(JournalError::Timeout {
                timeout_ms: timeout.as_millis() as u64,
            }),
        }
    }

    /// Wait until this node knows a leader, or the timeout passes.
    pub async fn wait_for_leader(&self, timeout: Duration) -> Result<NodeRole, JournalError> {
        self.wait_status(timeout, |s| s.leader.is_some())
            .await
            .map(|s| s.leader.expect("checked by the predicate"))
    }

    /// Wait until the status satisfies `predicate`, or the timeout passes.
    pub async fn wait_status(
        &self,
        timeout: Duration,
        predicate: impl FnMut(&JournalStatus) -> bool,
    ) -> Result<JournalStatus, JournalError> {
        let mut rx = self.subscribe();
        let wait = async { rx.wait_for(predicate).await.map(|s| s.clone()) };
        match tokio::time::timeout(timeout, wait).await {
            Ok(Ok(status)) => Ok(status),
            Ok(Err(_)) => Err(JournalError::Shutdown),
            Err(_) => Err(JournalError::Timeout {
                timeout_ms: timeout.as_millis() as u64,
            }),
        }
    }

    /// Move leadership to `to` (the scheduled failover). Call on the leader; returns once this
    /// node sees `to` as leader. Nothing committed is lost: raft only elects a node holding
    /// every committed entry.
    pub async fn transfer_leadership(&self, to: NodeRole) -> Result<(), JournalError> {
        let status = self.status();
        if status.leader == Some(to) {
            return Ok(());
        }
        if !status.is_leader {
            return Err(JournalError::NotLeader {
                role: self.inner.role,
                leader: status.leader,
            });
        }
        tracing::info!(from = ?self.inner.role, ?to, "journal: transferring leadership");
        let timeout = self.inner.config.election_timeout_max * 10;
        let deadline = tokio::time::Instant::now() + timeout;
        let mut rx = self.subscribe();
        loop {
            self.inner
                .raft
                .trigger()
                .transfer_leader(node_id(to))
                .await
                .map_err(|e| JournalError::Raft(e.to_string()))?;
            // Retry each election timeout: the target may still have been catching up.
            let step = tokio::time::Instant::now() + self.inner.config.election_timeout_max;
            let wait = async { rx.wait_for(|s| s.leader == Some(to)).await.map(|_| ()) };
            match tokio::time::timeout_at(step.min(deadline), wait).await {
                Ok(Ok(_)) => return Ok(()),
                Ok(Err(_)) => return Err(JournalError::Shutdown),
                Err(_) if tokio::time::Instant::now() >= deadline => {
                    return Err(JournalError::TransferTimeout {
                        to,
                        timeout_ms: timeout.as_millis() as u64,
                    })
                }
                Err(_) => {
                    if !self.is_leader() {
                        // Someone else won; keep waiting for the target to appear.
                        continue;
                    }
                }
            }
        }
    }

    /// Ask the leader to hand leadership to `to` and return at once (drills, tests).
    pub async fn request_transfer(&self, to: NodeRole) -> Result<(), JournalError> {
        self.inner
            .raft
            .trigger()
            .transfer_leader(node_id(to))
            .await
            .map_err(|e| JournalError::Raft(e.to_string()))
    }

    /// Force an election on this node (drills).
    pub async fn trigger_election(&self) -> Result<(), JournalError> {
        self.inner
            .raft
            .trigger()
            .elect(false)
            .await
            .map_err(|e| JournalError::Raft(e.to_string()))
    }

    /// Cut this node off from its peers (both directions), or heal it. For tests and drills.
    pub fn set_isolated(&self, isolated: bool) {
        tracing::warn!(role = ?self.inner.role, isolated, "journal: network isolation changed");
        self.inner.faults.set_isolated(isolated);
    }

    pub fn metrics(&self) -> JournalMetrics {
        let m = self.inner.raft.metrics().borrow_watched().clone();
        let status = status_of(self.inner.role, &m);
        let last = m.last_log_index.unwrap_or(0);
        let replication = m
            .replication
            .as_ref()
            .map(|peers| {
                peers
                    .iter()
                    .filter_map(|(id, matched)| {
                        let role = role_of(*id)?;
                        let matched_index = matched.map(|l| l.index);
                        let lag = last.saturating_sub(matched_index.unwrap_or(0));
                        Some((role, PeerReplication { matched_index, lag }))
                    })
                    .collect()
            })
            .unwrap_or_default();
        let stats = &self.inner.wal_stats;
        JournalMetrics {
            status,
            state: state_name(m.state),
            snapshot_index: m.snapshot.map(|l| l.index),
            purged_index: m.purged.map(|l| l.index),
            millis_since_quorum_ack: millis_since_quorum_ack(&m),
            replication,
            durability: match (&self.inner.sim, &self.inner.config.durability) {
                (Some(_), _) => "simulated (in-memory disk that survives restarts)",
                (None, Durability::Disk(_)) => "disk",
                (None, Durability::Memory) => "memory (demo: nothing survives a restart)",
            },
            wal_syncs: stats.syncs.load(Ordering::Relaxed),
            wal_entries: stats.entries.load(Ordering::Relaxed),
            wal_sync_nanos_total: stats.sync_nanos_total.load(Ordering::Relaxed),
            witness_handovers: self.inner.witness_handovers.load(Ordering::Relaxed),
        }
    }

    /// Stop this node: its RPC server, its tasks and its raft core. The WAL writer finishes
    /// its in-flight batch and exits once the log store is released.
    pub async fn shutdown(&self) {
        if let Some((net, token)) = &self.inner.sim {
            net.unregister(node_id(self.inner.role), *token);
        }
        let tasks: Vec<JoinHandle<()>> =
            self.inner.tasks.lock().expect("tasks").drain(..).collect();
        for task in tasks {
            task.abort();
            let _ = task.await;
        }
        let _ = self.inner.raft.shutdown().await;
        // Whoever still holds a clone of the log store (a task of openraft's that ends a
        // moment later), the WAL is written and closed before this returns.
        self.inner.log.close();
        tracing::info!(role = ?self.inner.role, "journal: node stopped");
    }
}

/// What a proposal waits for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Until {
    /// Committed on a quorum and applied by this node's state machine (with its reply).
    Applied,
    /// Committed on a quorum.
    Committed,
}

/// One client write: its index, and the reply when waited for until applied. openraft calls
/// the responder's `on_commit` once the entry is committed, just before handing it to the state
/// machine, and `on_complete` when it is applied or the write failed (not leader).
async fn write_once<S: StateMachine>(
    raft: &Raft<C, SmStore<S>>,
    command: Command,
    until: Until,
) -> Result<(u64, Option<Vec<u8>>), RaftError<C, ClientWriteError<C>>> {
    if until == Until::Applied {
        let response = raft.client_write(command).await?;
        return Ok((response.log_id.index, Some(response.data.0)));
    }
    let (responder, committed, completed) = ProgressResponder::new();
    raft.client_write_ff(command, Some(responder))
        .await
        .map_err(RaftError::Fatal)?;
    if let Ok(log_id) = committed.await {
        return Ok((log_id.index, None));
    }
    // Completed without a commit notice: the write failed (or was applied, should openraft
    // ever skip the notice).
    match completed.await {
        Ok(Ok(response)) => Ok((response.log_id.index, None)),
        Ok(Err(e)) => Err(RaftError::APIError(e)),
        Err(_) => Err(RaftError::Fatal(openraft::errors::Fatal::Stopped)),
    }
}

fn open_stores<S: StateMachine>(
    config: &JournalConfig,
    sm: S,
    wal_stats: Arc<WalStats>,
) -> Result<(LogStore, SmStore<S>), JournalError> {
    let start_error = |e: crate::OpenError| JournalError::Start(e.to_string());
    match &config.durability {
        Durability::Disk(dir) => {
            std::fs::create_dir_all(dir)
                .map_err(|e| JournalError::Start(format!("create {}: {e}", dir.display())))?;
            let log =
                LogStore::open(dir, config.wal_segment_bytes, wal_stats).map_err(start_error)?;
            let slot = SnapshotSlot::File(dir.join("snapshot"));
            let sm = SmStore::open(sm, slot, config.state_hash_history).map_err(start_error)?;
            Ok((log, sm))
        }
        Durability::Memory => {
            tracing::warn!(role = ?config.role,
                "journal: DURABILITY=MEMORY (demo mode): nothing is written to disk, a restart \
                 loses this node's journal");
            let sm = SmStore::open(sm, SnapshotSlot::None, config.state_hash_history)
                .map_err(start_error)?;
            Ok((LogStore::memory(), sm))
        }
    }
}

fn millis_since_quorum_ack(m: &RaftMetrics<C>) -> Option<u64> {
    m.last_quorum_acked
        .as_ref()
        .map(|acked| openraft::Instant::elapsed(&**acked).as_millis() as u64)
}

fn state_name(state: ServerState) -> &'static str {
    match state {
        ServerState::Learner => "learner",
        ServerState::Follower => "follower",
        ServerState::Candidate => "candidate",
        ServerState::Leader => "leader",
        ServerState::Shutdown => "shutdown",
    }
}

fn status_of(role: NodeRole, m: &RaftMetrics<C>) -> JournalStatus {
    let is_leader = m.state == ServerState::Leader;
    JournalStatus {
        role,
        leader: m.current_leader.and_then(role_of),
        is_leader,
        // A new leader accepts writes only once a quorum has acknowledged it.
        serving: is_leader && role != NodeRole::Witness && m.last_quorum_acked.is_some(),
        term: m.current_term,
        commit_index: m.local_committed.map_or(0, |l| l.index),
        applied_index: m.last_applied.map_or(0, |l| l.index),
        last_log_index: m.last_log_index.unwrap_or(0),
    }
}

/// How the WAL is written in each raft state (`JournalConfig::follower_inline_wal`,
/// `leader_wal_wake_after_sends`, `leader_inline_wal`).
struct WalModes {
    log: LogStore,
    follower_inline: bool,
    leader_defer_wake: bool,
    leader_inline: bool,
}

async fn publish_status<S: StateMachine>(
    role: NodeRole,
    raft: Raft<C, SmStore<S>>,
    tx: watch::Sender<JournalStatus>,
    modes: Option<WalModes>,
) {
    let mut metrics = raft.metrics();
    loop {
        let status = {
            let m = metrics.borrow_watched();
            if let Some(w) = &modes {
                let leader = m.state == ServerState::Leader;
                w.log
                    .set_inline_writes(w.follower_inline && m.state == ServerState::Follower);
                w.log.set_defer_wake(w.leader_defer_wake && leader);
                w.log.set_leader_inline(w.leader_inline && leader);
            }
            status_of(role, &m)
        };
        let mut leadership_changed = false;
        tx.send_if_modified(|current| {
            if *current == status {
                return false;
            }
            leadership_changed =
                current.leader != status.leader || current.serving != status.serving;
            *current = status.clone();
            true
        });
        if leadership_changed {
            tracing::info!(?role, leader = ?status.leader, term = status.term,
                serving = status.serving, "journal: leadership changed");
        }
        if metrics.changed().await.is_err() {
            return;
        }
    }
}

/// The witness keeps the log but never serves: whenever it finds itself leader it hands
/// leadership to the backup site, or to the primary if the backup is not replicating.
async fn witness_handover<S: StateMachine>(
    raft: Raft<C, SmStore<S>>,
    mut status: watch::Receiver<JournalStatus>,
    election_timeout_max: Duration,
    handovers: Arc<AtomicU64>,
) {
    loop {
        if status.wait_for(|s| s.is_leader).await.map(|_| ()).is_err() {
            return;
        }
        // openraft's transfer is ignored by a target that lacks the leader's last entry, so
        // wait (up to an election timeout) for the backup to hold everything the witness has,
        // then hand over to it; to the primary only if the backup did not catch up and the
        // primary did.
        let matched = |m: &RaftMetrics<C>, role: NodeRole| {
            m.replication
                .as_ref()
                .and_then(|r| r.get(&node_id(role)).cloned().flatten())
                .map(|l| l.index)
        };
        let caught_up = |m: &RaftMetrics<C>, role: NodeRole| {
            matched(m, role).is_some_and(|i| Some(i) >= m.last_log_index)
        };
        let mut metrics_rx = raft.metrics();
        let wait = async {
            loop {
                {
                    let m = metrics_rx.borrow_watched();
                    if m.state != ServerState::Leader || caught_up(&m, NodeRole::Backup) {
                        return;
                    }
                }
                if metrics_rx.changed().await.is_err() {
                    return;
                }
            }
        };
        let _ = tokio::time::timeout(election_timeout_max, wait).await;
        let metrics = raft.metrics().borrow_watched().clone();
        if metrics.state != ServerState::Leader {
            continue;
        }
        let target =
            if !caught_up(&metrics, NodeRole::Backup) && caught_up(&metrics, NodeRole::Primary) {
                NodeRole::Primary
            } else {
                NodeRole::Backup
            };
        tracing::warn!(
            ?target,
            "journal: witness is leader; handing leadership to a site"
        );
        handovers.fetch_add(1, Ordering::Relaxed);
        if raft
            .trigger()
            .transfer_leader(node_id(target))
            .await
            .is_err()
        {
            return;
        }
        // Give the transfer an election timeout before trying again.
        let wait = async { status.wait_for(|s| !s.is_leader).await.map(|_| ()) };
        let _ = tokio::time::timeout(election_timeout_max, wait).await;
    }
}
