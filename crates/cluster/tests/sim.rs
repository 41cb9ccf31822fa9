//! Deterministic simulation of the three-node journal: the real `Journal` (openraft, log store,
//! state machine store, witness handover) on an in-process network with seeded partitions,
//! message loss, delays and node crashes, on a current-thread tokio runtime with paused time.
//!
//! Each seed runs clients that propose unique commands against whichever node leads, while a
//! nemesis partitions, loses, delays, crashes and restarts nodes and moves leadership (to the
//! witness too). Then the network heals, every node restarts, and the invariants are checked:
//!
//! - no acknowledged command is lost or moved: each sits at its acknowledged index on every
//!   node, every node applied the same commands in the same order, none twice;
//! - every node has the same state hash at every index they all remember;
//! - at most one leader per term (every status change of every node is observed);
//! - progress resumes after healing: a new command commits on a site, not on the witness;
//! - the witness hands leadership back to the backup when it is made leader.
//!
//! `TWINSITE_SIM_SEEDS=<count>` runs more seeds (default 8), `TWINSITE_SIM_SEED=<n>` reruns one,
//! `TWINSITE_SIM_FIRST_SEED=<n>` moves the range. A failure prints `SEED=<n>` and the rerun
//! command. See docs/cluster.md ("Deterministic simulation").

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use twinsite_cluster::sim::{SimDisk, SimFaults, SimNetwork};
use twinsite_cluster::{Durability, Journal, JournalConfig, JournalError, NodeRole, StateMachine};

const ROLES: [NodeRole; 3] = [NodeRole::Primary, NodeRole::Backup, NodeRole::Witness];
const CLIENTS: usize = 3;
/// Virtual time the nemesis runs for, per seed.
const CHAOS: Duration = Duration::from_secs(10);
/// Bound on every wait after healing (virtual time).
const SETTLE: Duration = Duration::from_secs(30);

/// Keeps every applied command with its index and folds them into a hash chain.
#[derive(Debug, Default, Clone)]
struct SimSm {
    hash: u64,
    applied: Vec<(u64, Vec<u8>)>,
}

fn fnv(mut hash: u64, bytes: &[u8]) -> u64 {
    for b in bytes {
        hash ^= u64::from(*b);
        hash = hash.wrapping_mul(0x100_0000_01b3);
    }
    hash
}

impl StateMachine for SimSm {
    fn apply(&mut self, index: u64, cmd: &[u8]) -> Vec<u8> {
        self.hash = fnv(
            fnv(self.hash ^ 0xcbf2_9ce4_8422_2325, &index.to_le_bytes()),
            cmd,
        );
        self.applied.push((index, cmd.to_vec()));
        index.to_le_bytes().to_vec()
    }
    fn snapshot(&self) -> Vec<u8> {
        serde_json::to_vec(&(self.hash, &self.applied)).expect("serializes")
    }
    fn restore(&mut self, snap: &[u8]) -> Result<(), String> {
        let (hash, applied): (u64, Vec<(u64, Vec<u8>)>) =
            serde_json::from_slice(snap).map_err(|e| e.to_string())?;
        self.hash = hash;
        self.applied = applied;
        Ok(())
    }
    fn state_hash(&self) -> u64 {
        self.hash
    }
}

/// What the run observed; checked at the end.
#[derive(Debug, Default)]
struct History {
    /// Every node seen as leader, per term.
    leaders: BTreeMap<u64, BTreeSet<NodeRole>>,
    /// Acknowledged commands: (client, command, index), in acknowledgement order.
    acked: Vec<(usize, Vec<u8>, u64)>,
    /// When each was acknowledged (virtual ms since the start).
    acked_at: Vec<u128>,
    /// Commands whose outcome is unknown (timeout): they may or may not be in the log.
    unknown: usize,
    /// The nemesis's actions, for the failure report.
    events: Vec<String>,
}

type Nodes = Arc<Mutex<BTreeMap<NodeRole, Journal<SimSm>>>>;

struct Sim {
    seed: u64,
    net: SimNetwork,
    disks: BTreeMap<NodeRole, SimDisk>,
    nodes: Nodes,
    history: Arc<Mutex<History>>,
    rng: ChaCha8Rng,
    started: tokio::time::Instant,
}

fn addresses() -> BTreeMap<NodeRole, SocketAddr> {
    // Only names for the membership: nothing binds them on the simulated network.
    ROLES
        .iter()
        .enumerate()
        .map(|(i, r)| (*r, SocketAddr::from(([127, 0, 0, 1], 1 + i as u16))))
        .collect()
}

fn config(role: NodeRole) -> JournalConfig {
    let mut config = JournalConfig::new(role, addresses(), Durability::Memory);
    // Small snapshots so that restarts restore a snapshot plus a tail and lagging nodes are
    // sent snapshots.
    config.snapshot_every_entries = 150;
    config.log_entries_kept_after_snapshot = 20;
    config
}

impl Sim {
    fn new(seed: u64) -> Sim {
        Sim {
            seed,
            net: SimNetwork::new(seed),
            disks: ROLES.iter().map(|r| (*r, SimDisk::new())).collect(),
            nodes: Arc::new(Mutex::new(BTreeMap::new())),
            history: Arc::new(Mutex::new(History::default())),
            rng: ChaCha8Rng::seed_from_u64(seed ^ 0x5eed),
            started: tokio::time::Instant::now(),
        }
    }

    fn event(&self, what: String) {
        let at = self.started.elapsed().as_millis();
        let mut history = self.history.lock().unwrap();
        if std::env::var_os("TWINSITE_SIM_VERBOSE").is_some() {
            eprintln!("SEED={} {at} ms: {what}", self.seed);
        }
        history.events.push(format!("{at} ms: {what}"));
    }

    fn node(&self, role: NodeRole) -> Option<Journal<SimSm>> {
        self.nodes.lock().unwrap().get(&role).cloned()
    }

    fn running(&self) -> Vec<NodeRole> {
        self.nodes.lock().unwrap().keys().copied().collect()
    }

    async fn start(&self, role: NodeRole) -> Result<(), String> {
        let node = Journal::start_simulated(
            config(role),
            SimSm::default(),
            &self.net,
            &self.disks[&role],
        )
        .await
        .map_err(|e| format!("{role:?} does not start: {e}"))?;
        // Record every leader this node claims to be, per term.
        let mut status = node.subscribe();
        let history = self.history.clone();
        tokio::spawn(async move {
            loop {
                let s = status.borrow_and_update().clone();
                if s.is_leader {
                    let mut history = history.lock().unwrap();
                    history.leaders.entry(s.term).or_default().insert(role);
                }
                if status.changed().await.is_err() {
                    return;
                }
            }
        });
        self.nodes.lock().unwrap().insert(role, node);
        Ok(())
    }

    async fn crash(&self, role: NodeRole) {
        let node = self.nodes.lock().unwrap().remove(&role);
        if let Some(node) = node {
            node.shutdown().await;
        }
    }

    fn leader(&self) -> Option<Journal<SimSm>> {
        let nodes = self.nodes.lock().unwrap();
        nodes.values().find(|n| n.is_leader()).cloned()
    }

    /// One random fault (or repair).
    async fn nemesis_step(&mut self) -> Result<(), String> {
        let role = ROLES[self.rng.gen_range(0..3)];
        let other =
            ROLES[(ROLES.iter().position(|r| *r == role).unwrap() + self.rng.gen_range(1..3)) % 3];
        match self.rng.gen_range(0..11) {
            0 => {
                self.net.isolate(role);
                self.event(format!("isolate {role:?}"));
            }
            1 => {
                self.net.cut(role, other);
                self.event(format!("cut {role:?} <-> {other:?}"));
            }
            2 => {
                self.net.cut_one_way(role, other);
                self.event(format!("cut {role:?} -> {other:?}"));
            }
            3 | 4 => {
                self.net.heal();
                self.event("heal".into());
            }
            5 => {
                // At most one node down at a time, so a quorum can exist.
                if self.running().len() == 3 {
                    self.crash(role).await;
                    self.event(format!("crash {role:?}"));
                }
            }
            6 | 7 => {
                for role in ROLES {
                    if self.node(role).is_none() {
                        self.start(role).await?;
                        self.event(format!("restart {role:?}"));
                    }
                }
            }
            8 => {
                let faults = SimFaults {
                    loss: self.rng.gen_range(0.0..0.3),
                    delay_min: Duration::from_micros(self.rng.gen_range(50..500)),
                    delay_max: Duration::from_millis(self.rng.gen_range(1..40)),
                };
                self.net.set_faults(faults);
                self.event(format!("faults {faults:?}"));
            }
            9 => {
                self.net.set_faults(SimFaults::default());
                self.event("no loss".into());
            }
            _ => {
                if let Some(leader) = self.leader() {
                    let targets: Vec<NodeRole> =
                        ROLES.into_iter().filter(|r| *r != leader.role()).collect();
                    let to = targets[self.rng.gen_range(0..targets.len())];
                    let _ = leader.request_transfer(to).await;
                    self.event(format!("transfer {:?} -> {to:?}", leader.role()));
                }
            }
        }
        Ok(())
    }

    /// Heal everything and restart every node.
    async fn repair(&self) -> Result<(), String> {
        self.net.heal();
        self.net.set_faults(SimFaults::default());
        for role in ROLES {
            if self.node(role).is_none() {
                self.start(role).await?;
            }
        }
        self.event("repair: healed, every node running".into());
        Ok(())
    }

    /// Wait (virtual time, bounded) until `condition` holds, polling every 10 ms.
    async fn wait_for(
        &self,
        what: &str,
        mut condition: impl FnMut(&Sim) -> bool,
    ) -> Result<(), String> {
        let deadline = tokio::time::Instant::now() + SETTLE;
        while !condition(self) {
            if tokio::time::Instant::now() >= deadline {
                let nodes = self.nodes.lock().unwrap();
                let status: Vec<_> = nodes.values().map(|n| n.status()).collect();
                return Err(format!("not within {SETTLE:?}: {what}; status {status:#?}"));
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        Ok(())
    }

    /// A serving leader on a site (never the witness) that every node agrees on.
    async fn wait_site_leader(&self) -> Result<Journal<SimSm>, String> {
        let mut found = None;
        self.wait_for("a serving site leader every node follows", |sim| {
            let nodes = sim.nodes.lock().unwrap();
            found = nodes.values().find(|n| n.is_serving()).cloned();
            found.as_ref().is_some_and(|leader| {
                leader.role() != NodeRole::Witness
                    && nodes.values().all(|n| n.leader() == Some(leader.role()))
            })
        })
        .await?;
        Ok(found.expect("checked"))
    }

    /// Propose on the site leader until one command commits (progress after healing).
    async fn propose_after_heal(&self, cmd: &[u8]) -> Result<u64, String> {
        let deadline = tokio::time::Instant::now() + SETTLE;
        loop {
            let leader = self.wait_site_leader().await?;
            match leader.propose(cmd.to_vec()).await {
                Ok((index, _)) => return Ok(index),
                Err(e) if tokio::time::Instant::now() >= deadline => {
                    return Err(format!("no progress after healing: {e}"))
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        }
    }
}

/// A client: proposes unique commands one at a time, follows the leader, records what was
/// acknowledged and at which index.
async fn client(
    id: usize,
    seed: u64,
    nodes: Nodes,
    history: Arc<Mutex<History>>,
    running: Arc<AtomicBool>,
) {
    let started = tokio::time::Instant::now();
    let mut rng = ChaCha8Rng::seed_from_u64(seed.wrapping_mul(31).wrapping_add(id as u64));
    let mut target = NodeRole::Primary;
    let mut seq = 0u64;
    while running.load(Ordering::SeqCst) {
        let node = nodes.lock().unwrap().get(&target).cloned();
        let Some(node) = node else {
            target = ROLES[rng.gen_range(0..2)];
            tokio::time::sleep(Duration::from_millis(20)).await;
            continue;
        };
        let cmd = format!("c{id}-{seq}").into_bytes();
        seq += 1;
        match node.propose(cmd.clone()).await {
            Ok((index, reply)) => {
                assert_eq!(
                    reply,
                    index.to_le_bytes(),
                    "the reply is the state machine's"
                );
                {
                    let mut h = history.lock().unwrap();
                    h.acked.push((id, cmd, index));
                    h.acked_at.push(started.elapsed().as_millis());
                }
                tokio::time::sleep(Duration::from_millis(rng.gen_range(1..30))).await;
            }
            Err(JournalError::NotLeader {
                leader: Some(leader),
                ..
            }) if leader != NodeRole::Witness => {
                // Follow the hint, after a moment: with paused time a loop that never sleeps
                // would stop the clock.
                target = leader;
                tokio::time::sleep(Duration::from_millis(rng.gen_range(1..10))).await;
            }
            Err(e) => {
                if matches!(e, JournalError::Timeout { .. }) {
                    history.lock().unwrap().unknown += 1;
                }
                target = ROLES[rng.gen_range(0..2)];
                tokio::time::sleep(Duration::from_millis(rng.gen_range(10..100))).await;
            }
        }
    }
}

/// What a run produced, compared across two runs of one seed.
#[derive(Debug, PartialEq, Eq)]
struct Outcome {
    applied: Vec<(u64, Vec<u8>)>,
    acked: usize,
    /// (virtual ms, client, index) of every acknowledgement.
    acks: Vec<(u128, usize, u64)>,
    terms: Vec<(u64, Vec<NodeRole>)>,
    events: Vec<String>,
}

async fn run(seed: u64) -> Result<Outcome, String> {
    let mut sim = Sim::new(seed);
    let result = scenario(&mut sim).await;
    result.map_err(|error| {
        let history = sim.history.lock().unwrap();
        let tail = history.events.len().saturating_sub(40);
        format!(
            "{error}\nnemesis actions (last 40): {:#?}\nnetwork: {:?}",
            &history.events[tail..],
            sim.net.stats()
        )
    })
}

async fn scenario(sim: &mut Sim) -> Result<Outcome, String> {
    let seed = sim.seed;
    // The primary last: it forms the cluster.
    for role in [NodeRole::Backup, NodeRole::Witness, NodeRole::Primary] {
        sim.start(role).await?;
    }
    let running = Arc::new(AtomicBool::new(true));
    let clients: Vec<_> = (0..CLIENTS)
        .map(|id| {
            tokio::spawn(client(
                id,
                seed,
                sim.nodes.clone(),
                sim.history.clone(),
                running.clone(),
            ))
        })
        .collect();
    let chaos_end = tokio::time::Instant::now() + CHAOS;
    while tokio::time::Instant::now() < chaos_end {
        let pause = Duration::from_millis(sim.rng.gen_range(50..1500));
        tokio::time::sleep(pause).await;
        sim.nemesis_step().await?;
    }
    sim.repair().await?;
    running.store(false, Ordering::SeqCst);
    for task in clients {
        task.await.map_err(|e| format!("client panicked: {e}"))?;
    }

    // Progress resumes after healing, on a site.
    let last = sim.propose_after_heal(b"after-heal").await?;
    // The witness, made leader, hands leadership back to the backup. The transfer is asked
    // for again each second: openraft ignores it while the witness lacks the last entry.
    let handovers = |sim: &Sim| {
        sim.node(NodeRole::Witness)
            .map_or(0, |w| w.metrics().witness_handovers)
    };
    let before = handovers(sim);
    let deadline = tokio::time::Instant::now() + SETTLE;
    while handovers(sim) == before {
        if tokio::time::Instant::now() >= deadline {
            return Err(format!(
                "the witness never took leadership within {SETTLE:?}"
            ));
        }
        if let Some(leader) = sim.leader().filter(|l| l.role() != NodeRole::Witness) {
            let _ = leader.request_transfer(NodeRole::Witness).await;
        }
        let step = tokio::time::Instant::now() + Duration::from_secs(1);
        while handovers(sim) == before && tokio::time::Instant::now() < step {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
    sim.event("the witness took leadership and handed it on".into());
    let leader = sim.wait_site_leader().await?;
    if leader.role() != NodeRole::Backup {
        return Err(format!(
            "the witness handed leadership to {:?}, not the backup",
            leader.role()
        ));
    }
    let last = last.max(sim.propose_after_heal(b"after-handover").await?);

    // Convergence: every node applied everything the leader has.
    sim.wait_for("every node applied the whole log", |sim| {
        let nodes = sim.nodes.lock().unwrap();
        let Some(leader) = nodes.values().find(|n| n.is_leader()) else {
            return false;
        };
        let end = leader.status().last_log_index.max(last);
        nodes.values().all(|n| n.applied_index() >= end)
    })
    .await?;
    check(sim)
}

/// The invariants, on a healed and converged cluster.
fn check(sim: &Sim) -> Result<Outcome, String> {
    let nodes = sim.nodes.lock().unwrap();
    let history = sim.history.lock().unwrap();
    // At most one leader per term.
    for (term, leaders) in &history.leaders {
        if leaders.len() > 1 {
            return Err(format!("term {term} had two leaders: {leaders:?}"));
        }
    }
    // Every node applied the same commands in the same order, each once.
    let applied: BTreeMap<NodeRole, Vec<(u64, Vec<u8>)>> = nodes
        .iter()
        .map(|(r, n)| (*r, n.read(|sm| sm.applied.clone())))
        .collect();
    let reference = &applied[&NodeRole::Primary];
    for (role, log) in &applied {
        if log != reference {
            let diverge = log.iter().zip(reference).position(|(a, b)| a != b);
            return Err(format!(
                "{role:?} applied a different journal than the primary (lengths {} vs {}, \
                 first difference at position {diverge:?})",
                log.len(),
                reference.len()
            ));
        }
    }
    if !reference.windows(2).all(|w| w[0].0 < w[1].0) {
        return Err("applied indexes are not increasing".into());
    }
    let mut seen = BTreeSet::new();
    for (_, cmd) in reference {
        if !seen.insert(cmd.clone()) {
            return Err(format!("{} applied twice", String::from_utf8_lossy(cmd)));
        }
    }
    // No acknowledged command lost or moved.
    let at: BTreeMap<u64, &Vec<u8>> = reference.iter().map(|(i, c)| (*i, c)).collect();
    let mut last_by_client: BTreeMap<usize, u64> = BTreeMap::new();
    for (client, cmd, index) in &history.acked {
        if at.get(index) != Some(&cmd) {
            return Err(format!(
                "acknowledged {} at index {index} is lost: the journal has {:?} there",
                String::from_utf8_lossy(cmd),
                at.get(index)
                    .map(|c| String::from_utf8_lossy(c).into_owned())
            ));
        }
        let previous = last_by_client.insert(*client, *index);
        if previous.is_some_and(|p| p >= *index) {
            return Err(format!(
                "client {client}'s acknowledgements are out of order"
            ));
        }
    }
    // The same state hash at every index every node remembers.
    let last = nodes.values().map(|n| n.applied_index()).min().unwrap_or(0);
    let mut compared = 0;
    for index in 1..=last {
        let hashes: Vec<Option<u64>> = nodes.values().map(|n| n.state_hash_at(index)).collect();
        if hashes.iter().all(|h| h.is_some()) {
            if hashes.windows(2).any(|w| w[0] != w[1]) {
                return Err(format!("state hashes differ at index {index}: {hashes:?}"));
            }
            compared += 1;
        }
    }
    if compared == 0 || history.acked.is_empty() {
        return Err(format!(
            "nothing to compare: {compared} indexes, {} acknowledged",
            history.acked.len()
        ));
    }
    Ok(Outcome {
        applied: reference.clone(),
        acked: history.acked.len(),
        acks: history
            .acked
            .iter()
            .zip(&history.acked_at)
            .map(|((c, _, i), at)| (*at, *c, *i))
            .collect(),
        terms: history
            .leaders
            .iter()
            .map(|(t, l)| (*t, l.iter().copied().collect()))
            .collect(),
        events: history.events.clone(),
    })
}

/// Run one seed on a fresh current-thread runtime with paused time.
fn run_seed(seed: u64) -> Result<Outcome, String> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .start_paused(true)
        .build()
        .expect("runtime");
    let result =
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| runtime.block_on(run(seed))));
    drop(runtime);
    match result {
        Ok(outcome) => outcome,
        Err(panic) => {
            let message = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_else(|| "panic".into());
            Err(format!("panicked: {message}"))
        }
    }
}

fn fail(seed: u64, error: &str) -> ! {
    panic!(
        "SEED={seed}: {error}\nrerun: TWINSITE_SIM_SEED={seed} cargo test -p twinsite-cluster \
         --test sim -- --nocapture"
    );
}

fn env_u64(name: &str) -> Option<u64> {
    std::env::var(name).ok().map(|v| {
        v.parse()
            .unwrap_or_else(|_| panic!("{name}={v} is not a number"))
    })
}

fn init_tracing() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "error,openraft=off".into()),
        )
        .with_test_writer()
        .try_init();
}

/// Goal: no committed command is lost or reordered, the nodes agree on the state hash at
/// every index, one leader per term, progress after healing and the witness handover, under
/// partitions, loss, delays and crashes, for many seeds.
#[test]
fn simulated_cluster_keeps_its_invariants_under_faults() {
    init_tracing();
    let seeds: Vec<u64> = match env_u64("TWINSITE_SIM_SEED") {
        Some(seed) => vec![seed],
        None => {
            let first = env_u64("TWINSITE_SIM_FIRST_SEED").unwrap_or(1);
            let count = env_u64("TWINSITE_SIM_SEEDS").unwrap_or(8);
            (first..first + count).collect()
        }
    };
    let started = std::time::Instant::now();
    let mut acked = 0;
    for seed in &seeds {
        let run_started = std::time::Instant::now();
        match run_seed(*seed) {
            Ok(outcome) => {
                acked += outcome.acked;
                eprintln!(
                    "SEED={seed} passed: {} acknowledged, {} terms, {} nemesis actions, {:?}",
                    outcome.acked,
                    outcome.terms.len(),
                    outcome.events.len(),
                    run_started.elapsed()
                );
            }
            Err(error) => fail(*seed, &error),
        }
    }
    eprintln!(
        "simulation: {} seeds passed ({acked} acknowledged commands) in {:?}",
        seeds.len(),
        started.elapsed()
    );
}

/// Goal: a seed replays the same run, so a printed seed reproduces a failure. Method: run one
/// seed twice; the applied journal, the leaders per term and the nemesis's actions match.
#[test]
fn a_seed_replays_the_same_run() {
    init_tracing();
    let seed = env_u64("TWINSITE_SIM_SEED").unwrap_or(7);
    let first = run_seed(seed).unwrap_or_else(|e| fail(seed, &e));
    let second = run_seed(seed).unwrap_or_else(|e| fail(seed, &e));
    fn first_difference<T: std::fmt::Debug + PartialEq>(
        what: &str,
        a: &[T],
        b: &[T],
    ) -> Option<String> {
        if a == b {
            return None;
        }
        let at = a
            .iter()
            .zip(b)
            .position(|(x, y)| x != y)
            .unwrap_or(a.len().min(b.len()));
        Some(format!(
            "{what} differ first at position {at} (lengths {} and {}): {:?} vs {:?}",
            a.len(),
            b.len(),
            a.get(at),
            b.get(at)
        ))
    }
    let differences: Vec<String> = [
        first_difference("nemesis actions", &first.events, &second.events),
        first_difference("leaders per term", &first.terms, &second.terms),
        first_difference("applied journals", &first.applied, &second.applied),
        first_difference("acknowledgements", &first.acks, &second.acks),
    ]
    .into_iter()
    .flatten()
    .collect();
    assert!(
        differences.is_empty(),
        "SEED={seed}: the replay differs: {differences:#?}"
    );
}

/// The kill -9 flake of issue 5 (seed 707866 of `cluster_processes`): the witness had only
/// the leader's first entries while the leader (the primary, term 2) committed 24 more with the
/// backup; the primary was killed; the backup, holding everything committed, asked for votes,
/// and the witness refused them for 20 s because it had not yet caught up with the commit index
/// the leader had told it (the vote gate for nodes that start with an empty log). Nobody could
/// win: the backup still named the dead primary as leader.
///
/// Here the witness is starved of the primary's log (heartbeats and votes still pass), the
/// primary commits commands with the backup, then crashes. The backup must be elected and
/// serve, and the witness must then catch up from it with every acknowledged command.
async fn lagging_witness_scenario(seed: u64) -> Result<(), String> {
    let sim = Sim::new(seed);
    for role in [NodeRole::Backup, NodeRole::Witness, NodeRole::Primary] {
        sim.start(role).await?;
    }
    let leader = sim.wait_site_leader().await?;
    if leader.role() != NodeRole::Primary {
        return Err(format!("{:?} formed the cluster", leader.role()));
    }
    sim.net.starve(NodeRole::Primary, NodeRole::Witness);
    let mut acked = Vec::new();
    for i in 0..24 {
        let cmd = format!("acked-{i}").into_bytes();
        let (index, _) = leader
            .propose(cmd.clone())
            .await
            .map_err(|e| format!("propose {i}: {e}"))?;
        acked.push((index, cmd));
    }
    // A few heartbeats tell the witness the leader's commit index, which it cannot reach.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let witness = sim.node(NodeRole::Witness).expect("witness running");
    let last_acked = acked.last().expect("acked").0;
    if witness.status().last_log_index >= last_acked {
        return Err("the witness was not starved of the log".into());
    }
    sim.crash(NodeRole::Primary).await;
    sim.event("crash Primary (witness behind)".into());
    let leader = sim.wait_site_leader().await?;
    if leader.role() != NodeRole::Backup {
        return Err(format!("{:?} serves, not the backup", leader.role()));
    }
    let after = leader
        .propose(b"after".to_vec())
        .await
        .map_err(|e| format!("propose after the crash: {e}"))?
        .0;
    sim.wait_for("the witness caught up", |sim| {
        sim.node(NodeRole::Witness)
            .is_some_and(|w| w.applied_index() >= after)
    })
    .await?;
    let applied = witness.read(|sm| sm.applied.clone());
    for (index, cmd) in &acked {
        if !applied.contains(&(*index, cmd.clone())) {
            return Err(format!("the witness lacks acknowledged index {index}"));
        }
    }
    Ok(())
}

/// Goal: a follower still catching up when the leader dies does not block the election of a
/// follower that holds every committed entry (the kill -9 flake of issue 5).
#[test]
fn a_lagging_witness_does_not_block_electing_the_backup() {
    init_tracing();
    let seeds: Vec<u64> = match env_u64("TWINSITE_SIM_SEED") {
        Some(seed) => vec![seed],
        None => (1..=4).collect(),
    };
    for seed in seeds {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .start_paused(true)
            .build()
            .expect("runtime");
        if let Err(error) = runtime.block_on(lagging_witness_scenario(seed)) {
            fail(seed, &error);
        }
    }
}
