//! An in-process network and disk for a deterministic simulation of the cluster.
//!
//! [`SimNetwork`] replaces the TCP transport: every raft RPC between nodes started with
//! [`crate::Journal::start_simulated`] is a message handed to a task that delivers it after a
//! seeded random delay, loses it with a seeded probability, or drops it because the link is cut
//! (a partition) or the target is down (a crash). A lost or cut message is silent: the sender
//! waits out its RPC timeout, as with a real packet loss; a message to a node that is not
//! running fails at once, as a refused connection does. Delivery tasks run independently, so a
//! late message can arrive after a later one (reordering).
//!
//! [`SimDisk`] is one node's durable storage kept in memory: the raft log, the vote, the
//! committed index and the latest snapshot survive a crash (dropping the node's `Journal`) and
//! are read back by the next `start_simulated` with the same disk. Appends are durable as soon
//! as they are written, so a crash loses nothing that was acknowledged.
//!
//! Creating a [`SimNetwork`] also seeds openraft's random draws (election timeouts) on the
//! calling thread, so on a current-thread tokio runtime with paused time a seed replays the
//! same run. See `docs/cluster.md` ("Deterministic simulation").

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::log_store::LogStore;
use crate::net::{CallError, Request, Response};
use crate::runtime::{seed_thread, splitmix64};
use crate::{node_id, NodeRole};

pub(crate) type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send + 'static>>;

/// A node's RPC handler as the simulated network sees it. `None`: the node is isolated and
/// drops the request.
pub(crate) trait Endpoint: Send + Sync {
    fn handle(&self, request: Request) -> BoxFuture<Option<Response>>;
}

/// Message faults applied to every delivered message (each direction separately).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SimFaults {
    /// Probability in `[0, 1]` that a message is lost.
    pub loss: f64,
    /// Every message is delayed by a uniformly drawn time in `[delay_min, delay_max]`.
    pub delay_min: Duration,
    pub delay_max: Duration,
}

impl Default for SimFaults {
    /// A healthy network: no loss, 0.1 to 1 ms per message.
    fn default() -> SimFaults {
        SimFaults {
            loss: 0.0,
            delay_min: Duration::from_micros(100),
            delay_max: Duration::from_millis(1),
        }
    }
}

/// What happened to the messages so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SimStats {
    pub sent: u64,
    pub delivered: u64,
    /// Lost to the random loss probability.
    pub lost: u64,
    /// Dropped by a cut link or an isolated node.
    pub cut: u64,
    /// Refused because the target node was not running.
    pub refused: u64,
}

struct Registered {
    token: u64,
    endpoint: Arc<dyn Endpoint>,
}

struct SimState {
    rng: u64,
    faults: SimFaults,
    /// Directed links (from, to) that drop everything.
    cut: BTreeSet<(u64, u64)>,
    /// Directed links (from, to) that drop log entries and snapshots but carry the rest.
    starved: BTreeSet<(u64, u64)>,
    endpoints: BTreeMap<u64, Registered>,
    next_token: u64,
    stats: SimStats,
}

impl SimState {
    fn uniform(&mut self) -> f64 {
        (splitmix64(&mut self.rng) >> 11) as f64 / (1u64 << 53) as f64
    }

    fn delay(&mut self) -> Duration {
        let min = self.faults.delay_min;
        let max = self.faults.delay_max.max(min);
        let span = max.saturating_sub(min).as_nanos() as u64;
        let extra = if span == 0 {
            0
        } else {
            splitmix64(&mut self.rng) % (span + 1)
        };
        min + Duration::from_nanos(extra)
    }

    fn lose(&mut self) -> bool {
        self.faults.loss > 0.0 && self.uniform() < self.faults.loss
    }
}

/// The simulated network shared by the nodes of one simulation. Cheap to clone.
#[derive(Clone)]
pub struct SimNetwork {
    state: Arc<Mutex<SimState>>,
}

impl std::fmt::Debug for SimNetwork {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let state = self.lock();
        f.debug_struct("SimNetwork")
            .field("faults", &state.faults)
            .field("cut", &state.cut)
            .field("stats", &state.stats)
            .finish()
    }
}

impl SimNetwork {
    /// A healthy network whose every random choice follows `seed`. Also seeds openraft's
    /// random draws on this thread (run the simulation on a current-thread runtime).
    pub fn new(seed: u64) -> SimNetwork {
        let mut rng = seed;
        seed_thread(Some(splitmix64(&mut rng)));
        SimNetwork {
            state: Arc::new(Mutex::new(SimState {
                rng,
                faults: SimFaults::default(),
                cut: BTreeSet::new(),
                starved: BTreeSet::new(),
                endpoints: BTreeMap::new(),
                next_token: 0,
                stats: SimStats::default(),
            })),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, SimState> {
        self.state.lock().expect("sim network mutex")
    }

    pub fn set_faults(&self, faults: SimFaults) {
        self.lock().faults = faults;
    }

    pub fn faults(&self) -> SimFaults {
        self.lock().faults
    }

    /// Cut the link between `a` and `b`, both directions.
    pub fn cut(&self, a: NodeRole, b: NodeRole) {
        let (a, b) = (node_id(a), node_id(b));
        let mut state = self.lock();
        state.cut.insert((a, b));
        state.cut.insert((b, a));
    }

    /// Cut one direction only: messages from `from` to `to` are dropped.
    pub fn cut_one_way(&self, from: NodeRole, to: NodeRole) {
        self.lock().cut.insert((node_id(from), node_id(to)));
    }

    /// Partition `role` from both other nodes.
    pub fn isolate(&self, role: NodeRole) {
        for other in [NodeRole::Primary, NodeRole::Backup, NodeRole::Witness] {
            if other != role {
                self.cut(role, other);
            }
        }
    }

    /// Starve `to` of `from`'s log: AppendEntries carrying entries, and snapshots, from `from`
    /// to `to` are dropped, while votes and entry-less AppendEntries (heartbeats, commit
    /// updates) still pass, so `to` keeps hearing of the leader and its commit index without
    /// catching up (a follower stuck behind while its leader lives).
    pub fn starve(&self, from: NodeRole, to: NodeRole) {
        self.lock().starved.insert((node_id(from), node_id(to)));
    }

    /// Restore every link (loss and delay stay as set).
    pub fn heal(&self) {
        let mut state = self.lock();
        state.cut.clear();
        state.starved.clear();
    }

    /// Is any link cut?
    pub fn is_partitioned(&self) -> bool {
        let state = self.lock();
        !state.cut.is_empty() || !state.starved.is_empty()
    }

    pub fn stats(&self) -> SimStats {
        self.lock().stats
    }

    /// A draw from the network's seeded generator, for a harness that wants its own choices to
    /// follow the same seed.
    pub fn next_u64(&self) -> u64 {
        splitmix64(&mut self.lock().rng)
    }

    pub(crate) fn register(&self, id: u64, endpoint: Arc<dyn Endpoint>) -> u64 {
        let mut state = self.lock();
        state.next_token += 1;
        let token = state.next_token;
        state.endpoints.insert(id, Registered { token, endpoint });
        token
    }

    /// Remove a node's endpoint, unless a newer instance has replaced it.
    pub(crate) fn unregister(&self, id: u64, token: u64) {
        let mut state = self.lock();
        if state.endpoints.get(&id).is_some_and(|r| r.token == token) {
            state.endpoints.remove(&id);
        }
    }

    /// Send `request` from `from` to `to` and wait for the response, at most `timeout`.
    pub(crate) async fn call(
        &self,
        from: u64,
        to: u64,
        request: Request,
        timeout: Duration,
    ) -> Result<Response, CallError> {
        let deadline = tokio::time::Instant::now() + timeout;
        let (request_delay, response_delay, request_lost, response_lost, down) = {
            let mut state = self.lock();
            state.stats.sent += 1;
            let down = !state.endpoints.contains_key(&to);
            if down {
                state.stats.refused += 1;
            }
            let delays = (state.delay(), state.delay());
            (delays.0, delays.1, state.lose(), state.lose(), down)
        };
        if down {
            // A refused connection still takes a round trip; answering without letting
            // virtual time pass would let a retry loop stop the clock.
            tokio::time::sleep(request_delay + response_delay).await;
            return Err(CallError::Unreachable(format!("node {to} is down")));
        }
        let (tx, rx) = tokio::sync::oneshot::channel();
        let net = self.clone();
        let carries_log = match &request {
            Request::Append(rpc) => !rpc.entries.is_empty(),
            Request::Snapshot { .. } => true,
            _ => false,
        };
        tokio::spawn(async move {
            tokio::time::sleep(request_delay).await;
            let endpoint = {
                let mut state = net.lock();
                if state.cut.contains(&(from, to))
                    || (carries_log && state.starved.contains(&(from, to)))
                {
                    state.stats.cut += 1;
                    return;
                }
                if request_lost {
                    state.stats.lost += 1;
                    return;
                }
                match state.endpoints.get(&to) {
                    Some(r) => r.endpoint.clone(),
                    None => {
                        state.stats.refused += 1;
                        return;
                    }
                }
            };
            let Some(response) = endpoint.handle(request).await else {
                net.lock().stats.cut += 1;
                return;
            };
            tokio::time::sleep(response_delay).await;
            {
                let mut state = net.lock();
                if state.cut.contains(&(to, from)) {
                    state.stats.cut += 1;
                    return;
                }
                if response_lost {
                    state.stats.lost += 1;
                    return;
                }
                state.stats.delivered += 1;
            }
            let _ = tx.send(response);
        });
        match tokio::time::timeout_at(deadline, rx).await {
            Ok(Ok(response)) => Ok(response),
            Ok(Err(_)) => {
                // Lost on the way: the sender only notices when its timeout runs out.
                tokio::time::sleep_until(deadline).await;
                Err(CallError::Network(format!(
                    "rpc to node {to} timed out after {timeout:?} (message lost)"
                )))
            }
            Err(_) => Err(CallError::Network(format!(
                "rpc to node {to} timed out after {timeout:?}"
            ))),
        }
    }
}

/// One node's durable storage for a simulation, kept in memory across restarts of the node.
#[derive(Clone)]
pub struct SimDisk {
    pub(crate) log: LogStore,
    pub(crate) snapshot: Arc<Mutex<Option<Vec<u8>>>>,
}

impl std::fmt::Debug for SimDisk {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SimDisk").finish_non_exhaustive()
    }
}

impl Default for SimDisk {
    fn default() -> SimDisk {
        SimDisk::new()
    }
}

impl SimDisk {
    /// An empty disk: a brand-new node.
    pub fn new() -> SimDisk {
        SimDisk {
            log: LogStore::memory(),
            snapshot: Arc::new(Mutex::new(None)),
        }
    }
}
