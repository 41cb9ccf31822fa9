//! Three node processes (`twinsite node`) on loopback; reference clients trade through the
//! lookup ladder; the active node is killed with SIGKILL at seeded random points. After every
//! failover: every acknowledged order and fill is in the new active site's replicated state, no
//! execution id is delivered twice, the survivors' state hashes are equal, and each client's
//! session continues (the new site expects every acknowledged input; no inbound gap).
//!
//! `TWINSITE_SEED=<n>` replays a run; a failure prints its seed.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::watch;
use twinsite_cluster::NodeRole;
use twinsite_core::{CompId, Price, Qty};
use twinsite_ocg::client::{ClientConfig, ClientState};
use twinsite_ocg::*;
use twinsite_site::client::{ClientEvent, ClientHandle};
use twinsite_site::cluster_config::{
    admin_request, role_name, AdminClient, ClusterConfig, NodeProcess, ROLES,
};
use twinsite_site::config::ParticipantEntry;
use twinsite_site::gateway::load_key;

const EXE: &str = env!("CARGO_BIN_EXE_twinsite");
const T: Duration = Duration::from_secs(20);

fn key_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../config/demo-key.pem")
}

fn participant(i: usize) -> ParticipantEntry {
    ParticipantEntry {
        firm: format!("Firm {i}"),
        kind: "EP".into(),
        comp_id: format!("CP{i:04}"),
        broker_ids: vec![3000 + i as u32],
        password: "Passw0rd".into(),
        source_ips: vec!["127.0.0.1".parse().unwrap()],
        throttle_units: 50,
        cancel_on_disconnect_ms: None,
        must_change_password: false,
        protocol: Default::default(),
    }
}

fn scratch(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("twinsite-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

struct Cluster {
    cfg: ClusterConfig,
    path: PathBuf,
    nodes: BTreeMap<NodeRole, NodeProcess>,
    admin: AdminClient,
}

/// Start the three nodes on free ports; a port taken between the probe and the bind makes a
/// node exit, and the whole cluster is retried on fresh ports.
async fn start_cluster(dir: &Path, clients: usize, tweak: fn(&mut ClusterConfig)) -> Cluster {
    let mut last = String::new();
    for attempt in 0..5 {
        let sub = dir.join(format!("try{attempt}"));
        std::fs::create_dir_all(&sub).unwrap();
        let mut cfg = ClusterConfig::loopback(
            &sub,
            vec![key_path()],
            (1..=clients).map(participant).collect(),
        )
        .unwrap();
        cfg.session.heartbeat_ms = 1_000;
        // 1 MiB WAL segments (not 64): the tests run side by side on CI machines with little
        // free disk, and a kill -9 run rolls over several segments on the way.
        cfg.cluster.wal_segment_mib = 1;
        tweak(&mut cfg);
        let path = sub.join("cluster.toml");
        cfg.write(&path).unwrap();
        let mut nodes = BTreeMap::new();
        let mut failed = None;
        for r in ROLES {
            match NodeProcess::start(Path::new(EXE), &path, r, T).await {
                Ok(p) => {
                    nodes.insert(r, p);
                }
                Err(e) => {
                    failed = Some(format!("{e:#}"));
                    break;
                }
            }
        }
        match failed {
            None => {
                let token =
                    twinsite_site::cluster_config::read_token(&cfg.cluster.token_file).unwrap();
                let admin = AdminClient::new(&cfg, token);
                return Cluster {
                    cfg,
                    path,
                    nodes,
                    admin,
                };
            }
            Some(e) => {
                for (_, n) in nodes {
                    n.stop(Duration::from_secs(5)).await;
                }
                let _ = std::fs::remove_dir_all(&sub);
                last = e;
            }
        }
    }
    panic!("the cluster did not start in 5 attempts: {last}");
}

fn order(cl: &str, broker: u32, side: Side) -> Message {
    Message::NewOrder(NewOrder::day_limit(
        cl,
        broker,
        "700",
        side,
        Price::parse("385.20").unwrap(),
        Qty(100),
        "20231125-02:00:00.000000",
    ))
}

/// What one client saw.
#[derive(Debug, Default)]
struct Log {
    comp: String,
    /// Acknowledged orders (Execution Report New): order id -> the client's sequence number.
    acked: BTreeMap<String, u32>,
    /// Fills (Execution Report Trade): exec ids.
    fills: BTreeSet<String>,
    /// Exec id -> the inbound sequence number it came with.
    exec_seqs: BTreeMap<String, u32>,
    duplicate_execs: Vec<String>,
    last_in_seq: u32,
    /// Sequence numbers of the business messages delivered (administrative ones, such as the
    /// Logon reply, take numbers too but are not delivered).
    delivered: BTreeSet<u32>,
    /// Next Expected Sequence Number of each logon.
    logons: Vec<u32>,
    /// The highest client sequence number whose order was acknowledged.
    max_acked_seq: u32,
    errors: Vec<String>,
}

impl Log {
    fn record(&mut self, e: &ClientEvent) {
        match e {
            ClientEvent::LoggedOn { next_expected } => self.logons.push(*next_expected),
            ClientEvent::Message { seq, message, .. } => {
                if *seq <= self.last_in_seq {
                    return; // a duplicate delivery of something already seen
                }
                self.delivered.insert(*seq);
                self.last_in_seq = *seq;
                if let Message::ExecutionReport(r) = message.as_ref() {
                    if let Some(x) = &r.exec_id {
                        let x = x.as_str().to_string();
                        if self.exec_seqs.insert(x.clone(), *seq).is_some() {
                            self.duplicate_execs.push(x.clone());
                        }
                        if r.exec_type == Some(ExecType::Trade) {
                            self.fills.insert(x);
                        }
                    }
                }
            }
            ClientEvent::Stopped(why) => self.errors.push(format!("client stopped: {why}")),
            _ => {}
        }
    }
}

/// Send orders one at a time, each waiting for its answer, until told to stop.
async fn trade(
    mut c: ClientHandle,
    broker: u32,
    seed: u64,
    log: Arc<Mutex<Log>>,
    acks: watch::Sender<u64>,
    logons: watch::Sender<u64>,
    stop: watch::Receiver<bool>,
) -> ClientHandle {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut n = 0u64;
    // The first logon.
    loop {
        match tokio::time::timeout(T, c.events.recv()).await {
            Ok(Some(e)) => {
                log.lock().unwrap().record(&e);
                if matches!(e, ClientEvent::LoggedOn { .. }) {
                    logons.send_modify(|x| *x += 1);
                    break;
                }
            }
            _ => {
                log.lock().unwrap().errors.push("no first logon".into());
                return c;
            }
        }
    }
    while !*stop.borrow() {
        n += 1;
        let cl = format!("{n}");
        let side = if rng.gen_bool(0.5) {
            Side::Buy
        } else {
            Side::Sell
        };
        let seq = match c.send(order(&cl, broker, side)).await {
            Ok(s) => s,
            Err(e) => {
                log.lock().unwrap().errors.push(format!("send: {e}"));
                return c;
            }
        };
        // Wait for this order's answer (after a failover it comes from the new site, for the
        // order itself or for its resend).
        loop {
            let e = match tokio::time::timeout(T, c.events.recv()).await {
                Ok(Some(e)) => e,
                _ => {
                    log.lock()
                        .unwrap()
                        .errors
                        .push(format!("no answer to order {cl} (seq {seq}) within {T:?}"));
                    return c;
                }
            };
            let mut l = log.lock().unwrap();
            l.record(&e);
            if matches!(e, ClientEvent::LoggedOn { .. }) {
                logons.send_modify(|x| *x += 1);
            }
            let answered = match &e {
                ClientEvent::Message { message, .. } => match message.as_ref() {
                    Message::ExecutionReport(r)
                        if r.cl_ord_id.as_ref().map(|x| x.as_str()) == Some(cl.as_str()) =>
                    {
                        if r.exec_type == Some(ExecType::New) {
                            if let Some(id) = &r.order_id {
                                l.acked.insert(id.as_str().to_string(), seq);
                                l.max_acked_seq = l.max_acked_seq.max(seq);
                            }
                            Some(true)
                        } else if r.exec_type == Some(ExecType::Reject) {
                            Some(false)
                        } else {
                            None
                        }
                    }
                    Message::BusinessMessageReject(r)
                        if r.reference_sequence_number == Some(seq) =>
                    {
                        Some(false)
                    }
                    _ => None,
                },
                ClientEvent::Stopped(_) => return c,
                _ => None,
            };
            if let Some(ok) = answered {
                drop(l);
                if ok {
                    acks.send_modify(|x| *x += 1);
                }
                break;
            }
        }
    }
    c
}

fn client(comp: &str, lookups: Vec<std::net::SocketAddr>) -> ClientHandle {
    let key = load_key(&key_path()).unwrap();
    let mut cfg = ClientConfig::new(
        CompId::new(comp).unwrap(),
        "Passw0rd",
        rsa::RsaPublicKey::from(&key),
        lookups,
    );
    cfg.reconnect_wait_ns = 20_000_000;
    cfg.lookup_backoff_ns = 20_000_000;
    cfg.timers.heartbeat_interval_ns = 1_000_000_000;
    cfg.logon_reply_timeout_ns = 2_000_000_000;
    cfg.logon_retry_wait_ns = 50_000_000;
    ClientHandle::spawn(cfg, ClientState::default())
}

async fn wait_count(
    rx: &mut watch::Receiver<u64>,
    at_least: u64,
    what: &str,
) -> Result<(), String> {
    tokio::time::timeout(T, rx.wait_for(|v| *v >= at_least))
        .await
        .map(|_| ())
        .map_err(|_| format!("{what}: {} of {at_least} within {T:?}", *rx.borrow()))
}

/// The checks after a failover to `active`, with `survivors` up.
async fn check(
    c: &Cluster,
    active: NodeRole,
    survivors: &[NodeRole],
    logs: &[Arc<Mutex<Log>>],
    at_kill: &[(usize, u32)],
) -> Result<(), String> {
    // What the clients saw acknowledged, before asking the site (which only grows).
    let (acked, fills, next_expected): (Vec<_>, Vec<_>, Vec<_>) = logs
        .iter()
        .map(|l| {
            let l = l.lock().unwrap();
            (
                (l.comp.clone(), l.acked.clone(), l.max_acked_seq),
                (l.comp.clone(), l.fills.clone()),
                (l.comp.clone(), l.logons.clone()),
            )
        })
        .fold((vec![], vec![], vec![]), |mut acc, (a, f, n)| {
            acc.0.push(a);
            acc.1.push(f);
            acc.2.push(n);
            acc
        });
    let reports = c
        .admin
        .executions(active)
        .await
        .map_err(|e| e.to_string())?;
    let mut at_site: BTreeSet<(String, String, String)> = BTreeSet::new();
    let mut exec_ids = BTreeSet::new();
    for r in &reports {
        if let Some(x) = &r.exec_id {
            if !exec_ids.insert((r.comp_id.clone(), x.clone())) {
                let same: Vec<_> = reports
                    .iter()
                    .filter(|o| o.comp_id == r.comp_id && o.exec_id.as_ref() == Some(x))
                    .collect();
                return Err(format!(
                    "execution id {x} is in {}'s log twice: {same:?}",
                    r.comp_id
                ));
            }
        }
        at_site.insert((
            r.comp_id.clone(),
            r.exec_type.clone(),
            match r.exec_type.as_str() {
                "New" => r.order_id.clone().unwrap_or_default(),
                _ => r.exec_id.clone().unwrap_or_default(),
            },
        ));
    }
    for (comp, orders, _) in &acked {
        for id in orders.keys() {
            if !at_site.contains(&(comp.clone(), "New".into(), id.clone())) {
                return Err(format!(
                    "{comp}: acknowledged order {id} is not at the {} site",
                    role_name(active)
                ));
            }
        }
    }
    for (comp, fs) in &fills {
        for x in fs {
            if !at_site.contains(&(comp.clone(), "Trade".into(), x.clone())) {
                return Err(format!(
                    "{comp}: fill {x} is not at the {} site",
                    role_name(active)
                ));
            }
        }
    }
    // Sequence numbers continue: at its first logon after the kill, the new site expects
    // every input acknowledged before the kill.
    for ((comp, logons), (logons_at_kill, max_acked)) in next_expected.iter().zip(at_kill) {
        let n = *logons
            .get(*logons_at_kill)
            .ok_or_else(|| format!("{comp} did not log on after the failover"))?;
        if n <= *max_acked {
            return Err(format!(
                "{comp}: the new site expects sequence {n} but order {max_acked} was acknowledged"
            ));
        }
    }
    // No gap the client could not recover: every Execution Report the site stored for a
    // client, up to the last number the client processed, was delivered to it.
    for l in logs {
        let l = l.lock().unwrap();
        let missing: Vec<u32> = reports
            .iter()
            .filter(|r| r.comp_id == l.comp && r.seq <= l.last_in_seq)
            .map(|r| r.seq)
            .filter(|s| !l.delivered.contains(s))
            .collect();
        if !missing.is_empty() || !l.duplicate_execs.is_empty() || !l.errors.is_empty() {
            return Err(format!(
                "{}: reports never delivered {missing:?}, execution ids delivered twice {:?}, errors {:?}",
                l.comp, l.duplicate_execs, l.errors
            ));
        }
    }
    // The survivors hold the same state at the active site's commit index.
    let s = c.admin.status(active).await.map_err(|e| e.to_string())?;
    let idx = s.commit_index;
    let mut hashes = Vec::new();
    for r in survivors {
        c.admin
            .wait_applied(*r, idx, T)
            .await
            .map_err(|e| e.to_string())?;
        hashes.push((
            *r,
            c.admin
                .state_hash_at(*r, idx)
                .await
                .map_err(|e| e.to_string())?,
        ));
    }
    if hashes.iter().any(|(_, h)| h.is_none() || *h != hashes[0].1) {
        return Err(format!("state hashes at index {idx} differ: {hashes:?}"));
    }
    Ok(())
}

async fn run(seed: u64) -> Result<(), String> {
    let dir = scratch(&format!("kill9-{seed}"));
    let clients = 3;
    let mut c = start_cluster(&dir, clients, |_| {}).await;
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    c.admin
        .wait_active(NodeRole::Primary, T)
        .await
        .map_err(|e| format!("{e:#}"))?;

    let lookups = c.cfg.lookup_ladder();
    let (acks_tx, mut acks) = watch::channel(0u64);
    let (logons_tx, mut logons) = watch::channel(0u64);
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut logs = Vec::new();
    let mut tasks = Vec::new();
    for i in 1..=clients {
        let comp = format!("CP{i:04}");
        let log = Arc::new(Mutex::new(Log {
            comp: comp.clone(),
            ..Default::default()
        }));
        logs.push(log.clone());
        tasks.push(tokio::spawn(trade(
            client(&comp, lookups.clone()),
            3000 + i as u32,
            seed ^ i as u64,
            log,
            acks_tx.clone(),
            logons_tx.clone(),
            stop_rx.clone(),
        )));
    }
    wait_count(&mut logons, clients as u64, "first logons").await?;

    // Kill the active node three times: primary, backup, primary; restart each after.
    let mut active = NodeRole::Primary;
    for round in 0..3 {
        let after = *acks.borrow() + rng.gen_range(3..40);
        wait_count(&mut acks, after, "orders acknowledged before the kill").await?;
        let logons_before = *logons.borrow();
        let at_kill: Vec<(usize, u32)> = logs
            .iter()
            .map(|l| {
                let l = l.lock().unwrap();
                (l.logons.len(), l.max_acked_seq)
            })
            .collect();
        let t0 = Instant::now();
        c.nodes
            .get_mut(&active)
            .unwrap()
            .kill()
            .await
            .map_err(|e| e.to_string())?;
        let killed = active;
        active = if killed == NodeRole::Primary {
            NodeRole::Backup
        } else {
            NodeRole::Primary
        };
        c.admin
            .wait_active(active, T)
            .await
            .map_err(|e| format!("round {round}: {e:#}"))?;
        let rto = t0.elapsed();
        wait_count(
            &mut logons,
            logons_before + clients as u64,
            "logons at the new site",
        )
        .await?;
        // Trade on at the new site, then check.
        let more = *acks.borrow() + 5;
        wait_count(&mut acks, more, "orders acknowledged at the new site").await?;
        let survivors: Vec<NodeRole> = ROLES.iter().copied().filter(|r| *r != killed).collect();
        check(&c, active, &survivors, &logs, &at_kill)
            .await
            .map_err(|e| format!("round {round} (killed {}): {e}", role_name(killed)))?;
        eprintln!(
            "round {round}: killed the {} node after {after} acknowledged orders; the {} site opened in {rto:?}; checks passed",
            role_name(killed),
            role_name(active)
        );
        // Restart the killed node from its journal; it catches up as a follower.
        c.nodes.remove(&killed);
        let p = NodeProcess::start(Path::new(EXE), &c.path, killed, T)
            .await
            .map_err(|e| format!("restart {}: {e:#}", role_name(killed)))?;
        c.nodes.insert(killed, p);
        let idx = c
            .admin
            .status(active)
            .await
            .map_err(|e| e.to_string())?
            .commit_index;
        c.admin
            .wait_applied(killed, idx, T)
            .await
            .map_err(|e| format!("restarted {} did not catch up: {e:#}", role_name(killed)))?;
    }
    stop_tx.send_replace(true);
    for t in tasks {
        if let Ok(h) = t.await {
            h.abort();
        }
    }
    let now: Vec<(usize, u32)> = logs
        .iter()
        .map(|l| {
            let l = l.lock().unwrap();
            (l.logons.len() - 1, 0)
        })
        .collect();
    check(&c, active, &ROLES, &logs, &now).await?;
    for (_, n) in std::mem::take(&mut c.nodes) {
        n.stop(Duration::from_secs(5)).await;
    }
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_dash_nine_the_active_node_loses_nothing_acknowledged() {
    let seed = std::env::var("TWINSITE_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
                % 1_000_000
        });
    eprintln!("seed {seed} (TWINSITE_SEED={seed} to replay)");
    if let Err(e) = run(seed).await {
        panic!("seed {seed}: {e}\nreplay with TWINSITE_SEED={seed}");
    }
}

/// The admin API refuses requests without the operator token or with a wrong one, and serves
/// status, a scheduled failover and a crash with it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_api_needs_the_token_and_moves_the_active_site() {
    let dir = scratch("admin");
    // The witness placed on CPU 0 (`cpus` in the cluster file); the others left to the OS.
    let mut c = start_cluster(&dir, 1, |cfg| {
        cfg.node_mut(NodeRole::Witness).cpus = vec![0]
    })
    .await;
    let witness = c.nodes[&NodeRole::Witness].child.id().expect("witness pid");
    let tasks = std::fs::read_dir(format!("/proc/{witness}/task")).unwrap();
    let mut threads = 0;
    for t in tasks {
        let status = std::fs::read_to_string(t.unwrap().path().join("status")).unwrap();
        let allowed = status
            .lines()
            .find_map(|l| l.strip_prefix("Cpus_allowed_list:"))
            .map(str::trim);
        assert_eq!(allowed, Some("0"), "every witness thread runs on CPU 0");
        threads += 1;
    }
    assert!(threads >= 2, "the runtime and the journal's WAL writer");
    let addr = c.cfg.node(NodeRole::Primary).admin;
    let (status, _) = admin_request(addr, "GET", "/api/status", None, None, T)
        .await
        .unwrap();
    assert_eq!(status, 401, "no token");
    let (status, _) = admin_request(
        addr,
        "POST",
        "/api/crash",
        Some("0123456789abcdef0123"),
        None,
        T,
    )
    .await
    .unwrap();
    assert_eq!(status, 401, "wrong token");
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&c.cfg.cluster.token_file)
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600, "token file readable by its owner only");

    let s = c.admin.wait_active(NodeRole::Primary, T).await.unwrap();
    assert_eq!(s.leader.as_deref(), Some("primary"));
    assert_eq!(
        c.admin.status(NodeRole::Backup).await.unwrap().site,
        "standby"
    );
    assert_eq!(
        c.admin.status(NodeRole::Witness).await.unwrap().site,
        "witness"
    );

    // A scheduled failover must be asked of the leader.
    assert!(c.admin.failover(NodeRole::Backup, None).await.is_err());
    c.admin.failover(NodeRole::Primary, None).await.unwrap();
    c.admin.wait_active(NodeRole::Backup, T).await.unwrap();
    c.admin
        .wait_site(NodeRole::Primary, "standby", T)
        .await
        .unwrap();

    // The crash endpoint ends the backup's process; the primary site takes over.
    c.admin.crash(NodeRole::Backup).await.unwrap();
    let status = tokio::time::timeout(T, c.nodes.get_mut(&NodeRole::Backup).unwrap().child.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(!status.success(), "the backup aborted: {status}");
    c.admin.wait_active(NodeRole::Primary, T).await.unwrap();
    for (_, n) in std::mem::take(&mut c.nodes) {
        n.stop(Duration::from_secs(5)).await;
    }
    let _ = std::fs::remove_dir_all(&dir);
}
