//! `twinsite node`, `twinsite up`, `twinsite status` and `twinsite failover --config`: the three
//! nodes of the replicated exchange as separate processes, each with an admin HTTP API.
//!
//! Admin API (axum, on the node's `admin` address, 127.0.0.1 by default). Every request needs
//! `Authorization: Bearer <operator token>`; one without it, or with a wrong one, gets 401 and a
//! warning in the node's log with the peer address.
//! * `GET /api/status[?wait=active|standby][&applied=N][&timeout_ms=T]`: role, leader, term,
//!   commit and applied index, state hash, site active or standby, live orders, WAL counters.
//!   `wait`/`applied` answer once the condition holds or after `timeout_ms` (at most 60 s).
//! * `GET /api/state-hash?index=N`: the replicated state hash at index N (null if forgotten).
//! * `GET /api/executions`: every Execution Report in the replicated session logs.
//! * `POST /api/failover` `{"to":"backup"}`: scheduled failover; ask the leader.
//! * `POST /api/crash`: the node aborts its process at once (no answer is sent).

use anyhow::Context;
use axum::extract::{ConnectInfo, Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::json;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::watch;
use twinsite_cluster::{Journal, NodeRole};
use twinsite_ocg::Message;
use twinsite_site::cluster_config::{
    ensure_token, parse_role, read_token, role_name, AdminClient, ClusterConfig, NodeProcess,
    NodeStatus, ReplicatedReport, READY_LINE, ROLES,
};
use twinsite_site::gateway::{self, wall_clock, Activity};
use twinsite_site::replica::Replica;

/// What the site is doing, as its activity says.
#[derive(Debug, Clone, Default)]
struct SiteView {
    active: bool,
    active_since_ms: Option<u64>,
    first_logon_ms: Option<u64>,
}

struct Admin {
    role: NodeRole,
    token: String,
    journal: Journal<Replica>,
    site: watch::Receiver<SiteView>,
}

type Shared = Arc<Admin>;

fn error(status: StatusCode, message: impl Into<String>) -> Response {
    (status, Json(json!({ "error": message.into() }))).into_response()
}

/// Constant-time comparison, so the answer time does not leak how much of a guess was right.
fn same(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

async fn require_token(
    State(app): State<Shared>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let given = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim);
    match given {
        Some(t) if same(t, &app.token) => next.run(req).await,
        other => {
            tracing::warn!(
                %peer,
                method = %req.method(),
                path = %req.uri().path(),
                reason = if other.is_none() { "no operator token" } else { "wrong operator token" },
                "admin API request refused"
            );
            error(StatusCode::UNAUTHORIZED, "an operator token is required")
        }
    }
}

#[derive(Deserialize)]
struct StatusQuery {
    wait: Option<String>,
    applied: Option<u64>,
    timeout_ms: Option<u64>,
}

fn status_of(app: &Admin) -> NodeStatus {
    let m = app.journal.metrics();
    let (idx, hash) = app.journal.state_hash();
    let live_orders = app.journal.read(|r| r.exchange.engine.live_orders());
    let view = app.site.borrow().clone();
    NodeStatus {
        role: role_name(app.role).into(),
        pid: std::process::id(),
        leader: m.status.leader.map(|l| role_name(l).to_string()),
        term: m.status.term,
        commit_index: m.status.commit_index,
        // The state machine's own index (the journal's status can lag it on a restarted node).
        applied_index: app.journal.applied_index().max(idx),
        state_hash: format!("{hash:016x}"),
        state_hash_index: idx,
        site: match (app.role, view.active) {
            (NodeRole::Witness, _) => "witness".into(),
            (_, true) => "active".into(),
            (_, false) => "standby".into(),
        },
        active_since_ms: view.active_since_ms.filter(|_| view.active),
        first_logon_ms: view.first_logon_ms.filter(|_| view.active),
        live_orders,
        durability: m.durability.to_string(),
        wal_syncs: m.wal_syncs,
        wal_entries: m.wal_entries,
        wal_sync_nanos_total: m.wal_sync_nanos_total,
    }
}

async fn status(State(app): State<Shared>, Query(q): Query<StatusQuery>) -> Response {
    let timeout = Duration::from_millis(q.timeout_ms.unwrap_or(10_000).min(60_000));
    match q.wait.as_deref() {
        None => {}
        Some(w @ ("active" | "standby")) => {
            let want = w == "active";
            let mut rx = app.site.clone();
            let _ = tokio::time::timeout(timeout, rx.wait_for(|v| v.active == want)).await;
        }
        Some(other) => {
            return error(
                StatusCode::BAD_REQUEST,
                format!("wait={other}: use active or standby"),
            )
        }
    }
    if let Some(i) = q.applied {
        // Wake on every applied-index or status change and re-read the index under the state
        // machine's lock (a restarted node's watch can run ahead of what it has applied).
        let deadline = tokio::time::Instant::now() + timeout;
        let mut applied = app.journal.subscribe_applied();
        let mut st = app.journal.subscribe();
        while app.journal.applied_index() < i {
            tokio::select! {
                r = applied.changed() => if r.is_err() { break },
                r = st.changed() => if r.is_err() { break },
                _ = tokio::time::sleep_until(deadline) => break,
            }
        }
    }
    Json(status_of(&app)).into_response()
}

#[derive(Deserialize)]
struct HashQuery {
    index: u64,
}

async fn state_hash(State(app): State<Shared>, Query(q): Query<HashQuery>) -> Response {
    let h = app.journal.state_hash_at(q.index);
    Json(json!({ "index": q.index, "state_hash": h.map(|h| format!("{h:016x}")) })).into_response()
}

fn reports_of(r: &Replica) -> Vec<ReplicatedReport> {
    let mut v = Vec::new();
    for (comp, d) in &r.sessions {
        for m in d.outbound.iter() {
            if let Ok((_, Message::ExecutionReport(er))) = twinsite_ocg::decode_one(&m.frame) {
                v.push(ReplicatedReport {
                    comp_id: comp.to_string(),
                    seq: m.seq,
                    exec_type: er.exec_type.map(|t| format!("{t:?}")).unwrap_or_default(),
                    order_id: er.order_id.map(|x| x.as_str().to_string()),
                    exec_id: er.exec_id.map(|x| x.as_str().to_string()),
                    cl_ord_id: er.cl_ord_id.map(|x| x.as_str().to_string()),
                });
            }
        }
    }
    v
}

async fn executions(State(app): State<Shared>) -> Response {
    // Replies are released at commit, a moment before this node applies the entry: wait
    // (briefly) for everything committed so far, so every report a participant has seen is
    // here.
    let _ = app
        .journal
        .wait_applied(app.journal.commit_index(), Duration::from_secs(1))
        .await;
    // (applied_index locks the state machine too: read it before, never inside `read`.)
    let index = app.journal.applied_index();
    let reports = app.journal.read(reports_of);
    Json(json!({ "applied_index": index, "reports": reports })).into_response()
}

#[derive(Deserialize, Default)]
struct FailoverBody {
    to: Option<String>,
}

async fn failover(State(app): State<Shared>, body: Option<Json<FailoverBody>>) -> Response {
    let st = app.journal.status();
    if !st.is_leader {
        return error(
            StatusCode::CONFLICT,
            format!(
                "this node ({}) does not lead; ask the leader ({})",
                role_name(app.role),
                st.leader.map(role_name).unwrap_or("none yet")
            ),
        );
    }
    let to = match body.and_then(|Json(b)| b.to) {
        Some(t) => match parse_role(&t) {
            Ok(NodeRole::Witness) => {
                return error(StatusCode::BAD_REQUEST, "the witness never serves")
            }
            Ok(r) => r,
            Err(e) => return error(StatusCode::BAD_REQUEST, e.to_string()),
        },
        None if app.role == NodeRole::Backup => NodeRole::Primary,
        None => NodeRole::Backup,
    };
    if to == app.role {
        return error(
            StatusCode::CONFLICT,
            format!("the {} node already leads", role_name(to)),
        );
    }
    tracing::warn!(
        from = role_name(app.role),
        to = role_name(to),
        "scheduled failover requested through the admin API"
    );
    let t0 = Instant::now();
    let started_ms = wall_clock().millis();
    match app.journal.transfer_leadership(to).await {
        Ok(()) => Json(json!({
            "from": role_name(app.role),
            "to": role_name(to),
            "started_ms": started_ms,
            "last_commit_index": st.commit_index,
            "transfer_ms": t0.elapsed().as_secs_f64() * 1e3,
        }))
        .into_response(),
        Err(e) => error(StatusCode::SERVICE_UNAVAILABLE, e.to_string()),
    }
}

async fn crash(State(app): State<Shared>) -> Response {
    tracing::error!(
        role = role_name(app.role),
        "crash requested through the admin API: aborting the process now"
    );
    std::process::abort()
}

fn router(app: Shared) -> Router {
    Router::new()
        .route("/api/status", get(status))
        .route("/api/state-hash", get(state_hash))
        .route("/api/executions", get(executions))
        .route("/api/failover", post(failover))
        .route("/api/crash", post(crash))
        .fallback(|| async { error(StatusCode::NOT_FOUND, "no such endpoint") })
        .layer(axum::middleware::from_fn_with_state(
            app.clone(),
            require_token,
        ))
        .with_state(app)
}

/// Follow the site's activity: active or standby, when it opened, its first logon after that.
fn track_site(
    journal: Journal<Replica>,
    mut rx: tokio::sync::broadcast::Receiver<Activity>,
    tx: watch::Sender<SiteView>,
) {
    tokio::spawn(async move {
        use tokio::sync::broadcast::error::RecvError;
        loop {
            match rx.recv().await {
                Ok(Activity::SiteActive { at, .. }) => tx.send_modify(|v| {
                    v.active = true;
                    v.active_since_ms = Some(at.millis());
                    v.first_logon_ms = None;
                }),
                Ok(Activity::SiteStandby { .. }) => tx.send_modify(|v| v.active = false),
                Ok(Activity::SessionUp { at, .. }) => tx.send_modify(|v| {
                    if v.active && v.first_logon_ms.is_none() {
                        v.first_logon_ms = Some(at.millis());
                    }
                }),
                Ok(_) => {}
                Err(RecvError::Lagged(_)) => {
                    let serving = journal.is_serving();
                    tx.send_modify(|v| {
                        if v.active != serving {
                            v.active = serving;
                            v.active_since_ms = Some(wall_clock().millis());
                        }
                    });
                }
                Err(RecvError::Closed) => return,
            }
        }
    });
}

/// `twinsite node`: run one node until Ctrl-C, SIGTERM, or (with `stop_on_stdin_eof`) the end
/// of its standard input (how `twinsite up` and the tests stop their children).
pub async fn node(config: &Path, role: NodeRole, stop_on_stdin_eof: bool) -> anyhow::Result<()> {
    let cc = ClusterConfig::load(config)?;
    let token = ensure_token(&cc.cluster.token_file)?;
    let me = cc.node(role).clone();
    if cc.cluster.durability == "memory" {
        println!("DURABILITY=MEMORY (demo mode): a restart of this node loses its journal");
    }
    let mut jc = cc.journal_config(role);
    // `TWINSITE_APPEND_PIPELINE=0`: one AppendEntries at a time per follower, as before the
    // pipelined transport (for before/after measurements; docs/cluster.md).
    if std::env::var("TWINSITE_APPEND_PIPELINE").as_deref() == Ok("0") {
        jc.append_pipeline = false;
    }
    // `TWINSITE_COMMIT_NOTICE_HOLD_US=N`: hold entry-less AppendEntries N µs (0: never).
    if let Some(us) = std::env::var("TWINSITE_COMMIT_NOTICE_HOLD_US")
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
    {
        jc.commit_notice_hold = std::time::Duration::from_micros(us);
    }
    // `TWINSITE_FOLLOWER_INLINE_WAL=0`: a follower hands every WAL write to the writer thread,
    // as a leader does (for before/after measurements; docs/cluster.md).
    if std::env::var("TWINSITE_FOLLOWER_INLINE_WAL").as_deref() == Ok("0") {
        jc.follower_inline_wal = false;
    }
    // `TWINSITE_LEADER_WAL_WAKE_AFTER_SENDS=0`: a leader wakes its WAL writer at once.
    if std::env::var("TWINSITE_LEADER_WAL_WAKE_AFTER_SENDS").as_deref() == Ok("0") {
        jc.leader_wal_wake_after_sends = false;
    }
    // `TWINSITE_LEADER_INLINE_WAL=0`: a leader's WAL is always written by its writer thread.
    if std::env::var("TWINSITE_LEADER_INLINE_WAL").as_deref() == Ok("0") {
        jc.leader_inline_wal = false;
    }
    let (view_tx, view_rx) = watch::channel(SiteView::default());
    let mut lines = vec![format!(
        "  {} node, pid {}, raft {}, journal {}",
        role_name(role),
        std::process::id(),
        me.raft,
        if cc.cluster.durability == "memory" {
            "in memory".to_string()
        } else {
            me.journal_dir.display().to_string()
        }
    )];
    let (journal, site, _feed) = match ClusterConfig::site_of(role) {
        None => {
            let j = gateway::start_witness(&cc.witness_site_config()?, jc, None).await?;
            (j, None, None)
        }
        Some(s) => {
            let scfg = cc.site_config(role)?;
            let (h, rx) = gateway::start_node(scfg.clone(), s, jc, None).await?;
            let feed = twinsite_site::feed::feed_for(&scfg, rx).await?;
            let j = h.journal().expect("a replicated node").clone();
            track_site(j.clone(), h.subscribe(), view_tx);
            lines.push(format!(
                "  lookup {}; OCG-C gateway primary {}, mirror {}",
                h.lookup_addrs
                    .iter()
                    .map(|a| a.to_string())
                    .collect::<Vec<_>>()
                    .join(", "),
                h.gateway_primary,
                h.gateway_mirror
            ));
            (j, Some(h), feed)
        }
    };
    let app = Arc::new(Admin {
        role,
        token,
        journal: journal.clone(),
        site: view_rx,
    });
    let listener = tokio::net::TcpListener::bind(me.admin)
        .await
        .with_context(|| format!("bind admin API {}", me.admin))?;
    let admin_addr = listener.local_addr()?;
    let server = tokio::spawn(async move {
        let _ = axum::serve(
            listener,
            router(app).into_make_service_with_connect_info::<SocketAddr>(),
        )
        .await;
    });
    for l in &lines {
        println!("{l}");
    }
    println!(
        "{READY_LINE}: {} admin http://{admin_addr} (operator token in {})",
        role_name(role),
        cc.cluster.token_file.display()
    );
    use std::io::Write;
    let _ = std::io::stdout().flush();

    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("SIGTERM handler")?;
    let stdin_eof = async {
        if stop_on_stdin_eof {
            use tokio::io::AsyncReadExt;
            let mut stdin = tokio::io::stdin();
            let mut buf = [0u8; 256];
            while matches!(stdin.read(&mut buf).await, Ok(n) if n > 0) {}
        } else {
            std::future::pending::<()>().await
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
        _ = stdin_eof => {}
    }
    server.abort();
    match site {
        Some(h) => {
            h.shutdown();
            journal.shutdown().await;
        }
        None => journal.shutdown().await,
    }
    Ok(())
}

/// `twinsite up`: the three nodes as child processes of this one, until Ctrl-C.
pub async fn up(config: &Path) -> anyhow::Result<()> {
    let cc = ClusterConfig::load(config)?;
    let token = ensure_token(&cc.cluster.token_file)?;
    let exe = std::env::current_exe().context("find the twinsite binary")?;
    println!("twinsite up: three nodes from {}", config.display());
    let mut procs = Vec::new();
    for r in ROLES {
        let p = NodeProcess::start(&exe, config, r, Duration::from_secs(60)).await?;
        for l in &p.banner {
            println!("{l}");
        }
        procs.push(p);
    }
    let admin = AdminClient::new(&cc, token.clone());
    let active = tokio::select! {
        r = admin.wait_active(NodeRole::Primary, Duration::from_secs(30)) => r.map(|_| NodeRole::Primary),
        r = admin.wait_active(NodeRole::Backup, Duration::from_secs(30)) => r.map(|_| NodeRole::Backup),
    }
    .context("no site opened")?;
    println!();
    println!("cluster up: the {} site is active", role_name(active));
    println!(
        "  lookup ladder for participants: {}",
        cc.lookup_ladder()
            .iter()
            .map(|a| a.to_string())
            .collect::<Vec<_>>()
            .join(", ")
    );
    for r in ROLES {
        println!("  {:<8} admin http://{}", role_name(r), cc.node(r).admin);
    }
    println!(
        "  operator token: {token}  (stored in {}, mode 0600)",
        cc.cluster.token_file.display()
    );
    println!(
        "  twinsite status --config {0}\n  twinsite failover --config {0} [--crash]",
        config.display()
    );
    println!("  Ctrl-C to stop");

    // Report a node that exits (a crash); stop them all on Ctrl-C.
    let (stop_tx, _) = tokio::sync::broadcast::channel::<()>(1);
    let mut waits = Vec::new();
    for mut p in procs {
        let mut stop = stop_tx.subscribe();
        waits.push(tokio::spawn(async move {
            tokio::select! {
                s = p.child.wait() => {
                    println!("  the {} node exited ({}); restart it with: twinsite node --role {} --config ...",
                        role_name(p.role),
                        s.map(|s| s.to_string()).unwrap_or_else(|e| e.to_string()),
                        role_name(p.role));
                }
                _ = stop.recv() => p.stop(Duration::from_secs(10)).await,
            }
        }));
    }
    tokio::signal::ctrl_c().await?;
    println!("stopping the nodes");
    let _ = stop_tx.send(());
    for w in waits {
        let _ = w.await;
    }
    Ok(())
}

fn token_for(cc: &ClusterConfig, token: Option<String>) -> anyhow::Result<String> {
    match token {
        Some(t) => Ok(t),
        None => read_token(&cc.cluster.token_file),
    }
}

/// `twinsite status --config`: every node's status from its admin API.
pub async fn status_cmd(config: &Path, token: Option<String>, as_json: bool) -> anyhow::Result<()> {
    let cc = ClusterConfig::load(config)?;
    let admin = AdminClient::new(&cc, token_for(&cc, token)?);
    let mut all = serde_json::Map::new();
    if !as_json {
        println!(
            "{:<8} {:<7} {:<8} {:<8} {:>5} {:>8} {:>8} {:<24} {:>6} {:>9}",
            "node",
            "pid",
            "site",
            "leader",
            "term",
            "commit",
            "applied",
            "state hash @ index",
            "orders",
            "wal syncs"
        );
    }
    for r in ROLES {
        match admin.status(r).await {
            Ok(s) => {
                if as_json {
                    all.insert(role_name(r).into(), serde_json::to_value(&s)?);
                } else {
                    println!(
                        "{:<8} {:<7} {:<8} {:<8} {:>5} {:>8} {:>8} {:<24} {:>6} {:>9}",
                        s.role,
                        s.pid,
                        s.site,
                        s.leader.as_deref().unwrap_or("-"),
                        s.term,
                        s.commit_index,
                        s.applied_index,
                        format!("{} @ {}", s.state_hash, s.state_hash_index),
                        s.live_orders,
                        s.wal_syncs
                    );
                }
            }
            Err(e) => {
                if as_json {
                    all.insert(role_name(r).into(), json!({ "error": format!("{e:#}") }));
                } else {
                    println!("{:<8} down or unreachable: {e:#}", role_name(r));
                }
            }
        }
    }
    if as_json {
        println!("{}", serde_json::to_string_pretty(&all)?);
    }
    Ok(())
}

/// `twinsite failover --config [--crash]`: move the active site to the other one through the
/// nodes' admin API, and report the recovery time.
pub async fn failover_cmd(config: &Path, token: Option<String>, crash: bool) -> anyhow::Result<()> {
    let cc = ClusterConfig::load(config)?;
    let admin = AdminClient::new(&cc, token_for(&cc, token)?);
    let leader = admin.leader().await?;
    anyhow::ensure!(
        leader != NodeRole::Witness,
        "the witness leads for now (it hands leadership to a site): try again in a moment"
    );
    let to = if leader == NodeRole::Primary {
        NodeRole::Backup
    } else {
        NodeRole::Primary
    };
    let t0 = wall_clock().millis();
    if crash {
        admin.crash(leader).await?;
        println!("crashed the {} node (process aborted)", role_name(leader));
    } else {
        let v = admin.failover(leader, Some(to)).await?;
        println!(
            "leadership moved from {} to {} (last commit at the old site: index {})",
            role_name(leader),
            role_name(to),
            v["last_commit_index"]
        );
    }
    let s = admin.wait_active(to, Duration::from_secs(30)).await?;
    let rto = s.active_since_ms.map(|a| a.saturating_sub(t0));
    println!(
        "the {} site is active: RTO {} ms (failover start to the site accepting logons); commit index {}, state hash {} @ {}",
        role_name(to),
        rto.map_or("?".into(), |r| r.to_string()),
        s.commit_index,
        s.state_hash,
        s.state_hash_index
    );
    Ok(())
}
