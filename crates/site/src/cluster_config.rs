//! `cluster.toml`: the three nodes of a replicated exchange (primary site, backup site, witness)
//! as separate processes (`twinsite node`, `twinsite up`). See `config/cluster.example.toml`.
//!
//! Also here, because the CLI, its tests and its benchmark all need them: the operator token
//! file, a small client for the nodes' admin HTTP API, free loopback ports for a test cluster,
//! and a launcher for node processes.

use crate::config::{
    EngineSection, FailoverSection, MarketDataSection, ParticipantEntry, SessionSection,
    SiteConfig, SiteSection,
};
use anyhow::Context;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::io::Write;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt};
use twinsite_cluster::{Durability, JournalConfig, NodeRole};
use twinsite_core::Site;

/// The whole cluster file.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClusterConfig {
    pub cluster: ClusterSection,
    pub primary: NodeSection,
    pub backup: NodeSection,
    pub witness: NodeSection,
    #[serde(default)]
    pub engine: EngineSection,
    #[serde(default)]
    pub session: SessionSection,
    #[serde(default, rename = "participant")]
    pub participants: Vec<ParticipantEntry>,
    /// What a site does when it becomes active after a failover (docs/failover.md).
    #[serde(default)]
    pub failover: FailoverSection,
}

/// Settings shared by the three nodes.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClusterSection {
    /// "disk" (WAL + fdatasync in each node's `journal_dir`) or "memory" (demo only: a restarted
    /// node loses its journal).
    #[serde(default = "disk")]
    pub durability: String,
    /// The operator token of the admin API: created at the first start (mode 0600), read after.
    /// Relative to the config file.
    pub token_file: PathBuf,
    /// RSA private keys for the OCG-C logon password (one, or two during a rotation).
    pub keys: Vec<PathBuf>,
    /// Reference data file; the shipped sample when absent.
    #[serde(default)]
    pub reference_data: Option<PathBuf>,
    /// Raft heartbeat and election timeouts, milliseconds.
    #[serde(default = "heartbeat")]
    pub heartbeat_ms: u64,
    #[serde(default = "election_min")]
    pub election_timeout_min_ms: u64,
    #[serde(default = "election_max")]
    pub election_timeout_max_ms: u64,
    /// Microseconds the leader holds each AppendEntries to the witness before sending it, so
    /// the witness takes several proposals per fdatasync (`JournalConfig::witness_linger`,
    /// docs/cluster.md); 0 sends at once.
    #[serde(default = "witness_linger")]
    pub witness_linger_us: u64,
    /// Size of each preallocated (zero-filled) WAL segment, MiB; a node writes one at its first
    /// start and another each time one fills. Small values suit tests and short drills on a
    /// small disk; production keeps the default.
    #[serde(default = "wal_segment_mib")]
    pub wal_segment_mib: u64,
}

/// One node. The witness needs only `raft`, `admin` and `journal_dir`; the two sites also
/// need their Lookup Service and gateway addresses.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeSection {
    /// Raft RPC address (the other nodes connect here).
    pub raft: SocketAddr,
    /// Admin HTTP API address (127.0.0.1 unless you mean to expose it).
    pub admin: SocketAddr,
    /// WAL, vote and snapshot directory (durability = "disk"). Relative to the config file.
    pub journal_dir: PathBuf,
    #[serde(default)]
    pub lookup: Vec<SocketAddr>,
    #[serde(default)]
    pub gateway_primary: Option<SocketAddr>,
    #[serde(default)]
    pub gateway_mirror: Option<SocketAddr>,
    #[serde(default)]
    pub advertise_host: Option<IpAddr>,
    #[serde(default)]
    pub fix_gateway: Option<SocketAddr>,
    /// OTP-CSC (China Connect) Lookup Service and gateways; none when absent.
    #[serde(default)]
    pub csc_lookup: Vec<SocketAddr>,
    #[serde(default)]
    pub csc_gateway_primary: Option<SocketAddr>,
    #[serde(default)]
    pub csc_gateway_mirror: Option<SocketAddr>,
    #[serde(default)]
    pub market_data: Option<MarketDataSection>,
    /// CPUs this node's process runs on, set with `sched_setaffinity` before its threads start
    /// (`twinsite node --cpus` overrides; docs/operations.md, "CPU placement"). Empty: the OS
    /// places it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cpus: Vec<usize>,
}

fn disk() -> String {
    "disk".into()
}
fn heartbeat() -> u64 {
    50
}
fn election_min() -> u64 {
    150
}
fn election_max() -> u64 {
    300
}
fn witness_linger() -> u64 {
    0
}
fn wal_segment_mib() -> u64 {
    64
}

/// `primary`, `backup`, `witness`.
pub fn role_name(r: NodeRole) -> &'static str {
    match r {
        NodeRole::Primary => "primary",
        NodeRole::Backup => "backup",
        NodeRole::Witness => "witness",
    }
}

/// Parse `primary|backup|witness`.
pub fn parse_role(s: &str) -> anyhow::Result<NodeRole> {
    match s {
        "primary" => Ok(NodeRole::Primary),
        "backup" => Ok(NodeRole::Backup),
        "witness" => Ok(NodeRole::Witness),
        other => anyhow::bail!("role {other:?}: use primary, backup or witness"),
    }
}

pub const ROLES: [NodeRole; 3] = [NodeRole::Primary, NodeRole::Backup, NodeRole::Witness];

impl ClusterConfig {
    /// Read and check a cluster file; relative paths are resolved against its folder.
    pub fn load(path: &Path) -> anyhow::Result<ClusterConfig> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", path.display()))?;
        let mut cfg: ClusterConfig =
            toml::from_str(&text).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
        let base = path.parent().unwrap_or(Path::new("."));
        let abs = |p: &mut PathBuf| {
            if p.is_relative() {
                *p = base.join(&*p);
            }
        };
        abs(&mut cfg.cluster.token_file);
        cfg.cluster.keys.iter_mut().for_each(abs);
        if let Some(r) = &mut cfg.cluster.reference_data {
            abs(r);
        }
        for r in ROLES {
            abs(&mut cfg.node_mut(r).journal_dir);
        }
        cfg.check()?;
        Ok(cfg)
    }

    pub fn node(&self, r: NodeRole) -> &NodeSection {
        match r {
            NodeRole::Primary => &self.primary,
            NodeRole::Backup => &self.backup,
            NodeRole::Witness => &self.witness,
        }
    }
    pub fn node_mut(&mut self, r: NodeRole) -> &mut NodeSection {
        match r {
            NodeRole::Primary => &mut self.primary,
            NodeRole::Backup => &mut self.backup,
            NodeRole::Witness => &mut self.witness,
        }
    }

    pub fn check(&self) -> anyhow::Result<()> {
        anyhow::ensure!(
            matches!(self.cluster.durability.as_str(), "disk" | "memory"),
            "cluster.durability {:?}: use disk or memory",
            self.cluster.durability
        );
        anyhow::ensure!(
            (1..=4096).contains(&self.cluster.wal_segment_mib),
            "cluster.wal_segment_mib {}: use 1 to 4096 (MiB per preallocated WAL segment)",
            self.cluster.wal_segment_mib
        );
        anyhow::ensure!(
            self.cluster.election_timeout_min_ms > self.cluster.heartbeat_ms
                && self.cluster.election_timeout_max_ms > self.cluster.election_timeout_min_ms,
            "cluster: need heartbeat_ms < election_timeout_min_ms < election_timeout_max_ms"
        );
        let mut seen = BTreeMap::new();
        for r in ROLES {
            let n = self.node(r);
            for (what, a) in [("raft", n.raft), ("admin", n.admin)] {
                if let Some(prev) = seen.insert(a, format!("{}.{what}", role_name(r))) {
                    if a.port() != 0 {
                        anyhow::bail!("{}.{what} {a} is also {prev}", role_name(r));
                    }
                }
            }
        }
        for r in [NodeRole::Primary, NodeRole::Backup] {
            self.site_config(r)?.check()?;
        }
        Ok(())
    }

    /// The site config of the primary or backup node.
    pub fn site_config(&self, r: NodeRole) -> anyhow::Result<SiteConfig> {
        let n = self.node(r);
        let name = role_name(r);
        let missing = |what: &str| anyhow::anyhow!("{name}.{what} is required for a site node");
        Ok(SiteConfig {
            site: SiteSection {
                name: name.into(),
                lookup: if r == NodeRole::Witness || !n.lookup.is_empty() {
                    n.lookup.clone()
                } else {
                    return Err(missing("lookup"));
                },
                gateway_primary: n
                    .gateway_primary
                    .ok_or_else(|| missing("gateway_primary"))?,
                gateway_mirror: n.gateway_mirror.ok_or_else(|| missing("gateway_mirror"))?,
                advertise_host: n.advertise_host,
                keys: self.cluster.keys.clone(),
                reference_data: self.cluster.reference_data.clone(),
                active: false,
                fix_gateway: n.fix_gateway,
                csc_lookup: n.csc_lookup.clone(),
                csc_gateway_primary: n.csc_gateway_primary,
                csc_gateway_mirror: n.csc_gateway_mirror,
            },
            engine: self.engine.clone(),
            session: self.session.clone(),
            market_data: n.market_data.clone(),
            participants: self.participants.clone(),
            failover: self.failover.clone(),
        })
    }

    /// The config the witness builds its replica from (it serves nothing).
    pub fn witness_site_config(&self) -> anyhow::Result<SiteConfig> {
        let mut c = self.site_config(NodeRole::Primary)?;
        c.site.name = "witness".into();
        c.market_data = None;
        Ok(c)
    }

    pub fn durability(&self, r: NodeRole) -> Durability {
        if self.cluster.durability == "memory" {
            Durability::Memory
        } else {
            Durability::Disk(self.node(r).journal_dir.clone())
        }
    }

    /// The journal config of node `r`.
    pub fn journal_config(&self, r: NodeRole) -> JournalConfig {
        let addrs = ROLES.iter().map(|x| (*x, self.node(*x).raft)).collect();
        let mut c = JournalConfig::new(r, addrs, self.durability(r));
        c.heartbeat_interval = Duration::from_millis(self.cluster.heartbeat_ms);
        c.election_timeout_min = Duration::from_millis(self.cluster.election_timeout_min_ms);
        c.election_timeout_max = Duration::from_millis(self.cluster.election_timeout_max_ms);
        c.witness_linger = Duration::from_micros(self.cluster.witness_linger_us);
        c.wal_segment_bytes = self.cluster.wal_segment_mib << 20;
        c
    }

    /// The lookup ladder a participant uses: the primary site's endpoints, then the backup's.
    pub fn lookup_ladder(&self) -> Vec<SocketAddr> {
        self.primary
            .lookup
            .iter()
            .chain(self.backup.lookup.iter())
            .copied()
            .collect()
    }

    /// The OTP-CSC lookup ladder a CCEP uses: the primary site's endpoints, then the backup's.
    pub fn csc_lookup_ladder(&self) -> Vec<SocketAddr> {
        self.primary
            .csc_lookup
            .iter()
            .chain(self.backup.csc_lookup.iter())
            .copied()
            .collect()
    }

    pub fn site_of(r: NodeRole) -> Option<Site> {
        match r {
            NodeRole::Primary => Some(Site::Primary),
            NodeRole::Backup => Some(Site::Backup),
            NodeRole::Witness => None,
        }
    }

    /// A loopback cluster on free ports with its files under `dir` (tests, benchmarks).
    /// The ports are found by binding port 0 and releasing it, so another process may take one
    /// before the node binds it: callers retry with a fresh config when a node cannot bind.
    pub fn loopback(
        dir: &Path,
        keys: Vec<PathBuf>,
        participants: Vec<ParticipantEntry>,
    ) -> anyhow::Result<ClusterConfig> {
        let ports = free_ports(14)?;
        let mut it = ports.into_iter();
        let mut next = || it.next().expect("enough ports");
        let mut node = |r: NodeRole| {
            let site = r != NodeRole::Witness;
            NodeSection {
                raft: next(),
                admin: next(),
                journal_dir: dir.join(role_name(r)),
                lookup: if site { vec![next(), next()] } else { vec![] },
                gateway_primary: if site { Some(next()) } else { None },
                gateway_mirror: if site { Some(next()) } else { None },
                advertise_host: None,
                fix_gateway: None,
                csc_lookup: vec![],
                csc_gateway_primary: None,
                csc_gateway_mirror: None,
                market_data: None,
                cpus: Vec::new(),
            }
        };
        let (primary, backup, witness) = (
            node(NodeRole::Primary),
            node(NodeRole::Backup),
            node(NodeRole::Witness),
        );
        let cfg = ClusterConfig {
            cluster: ClusterSection {
                durability: "disk".into(),
                token_file: dir.join("admin-token"),
                keys,
                reference_data: None,
                heartbeat_ms: heartbeat(),
                election_timeout_min_ms: election_min(),
                election_timeout_max_ms: election_max(),
                witness_linger_us: witness_linger(),
                wal_segment_mib: wal_segment_mib(),
            },
            primary,
            backup,
            witness,
            engine: EngineSection::default(),
            session: SessionSection::default(),
            participants,
            failover: FailoverSection::default(),
        };
        cfg.check()?;
        Ok(cfg)
    }

    /// Write the config as TOML (absolute paths).
    pub fn write(&self, path: &Path) -> anyhow::Result<()> {
        let text = toml::to_string(self).context("encode cluster config")?;
        std::fs::write(path, text).with_context(|| format!("write {}", path.display()))
    }
}

/// `n` distinct free loopback ports (bound to port 0, then released).
pub fn free_ports(n: usize) -> anyhow::Result<Vec<SocketAddr>> {
    let ls = (0..n)
        .map(|_| std::net::TcpListener::bind("127.0.0.1:0"))
        .collect::<std::io::Result<Vec<_>>>()
        .context("bind 127.0.0.1:0")?;
    ls.iter()
        .map(|l| l.local_addr().context("local address"))
        .collect()
}

/// The operator token in `path`: read it, or create it (random, mode 0600) if the file does
/// not exist. Creation is atomic, so nodes starting together agree on one token.
pub fn ensure_token(path: &Path) -> anyhow::Result<String> {
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    if let Some(d) = path.parent() {
        std::fs::create_dir_all(d).with_context(|| format!("create {}", d.display()))?;
    }
    if !path.exists() {
        let mut b = [0u8; 24];
        rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut b);
        let token: String = b.iter().map(|x| format!("{x:02x}")).collect();
        let tmp = path.with_extension(format!("tmp{}", std::process::id()));
        {
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .mode(0o600)
                .open(&tmp)
                .with_context(|| format!("create {}", tmp.display()))?;
            f.write_all(token.as_bytes())?;
            f.sync_all()?;
        }
        // A hard link fails if the file exists: the first node to start wins.
        let linked = std::fs::hard_link(&tmp, path);
        let _ = std::fs::remove_file(&tmp);
        match linked {
            Ok(()) => return Ok(token),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(e).with_context(|| format!("create {}", path.display())),
        }
    }
    let meta = std::fs::metadata(path).with_context(|| format!("stat {}", path.display()))?;
    if meta.permissions().mode() & 0o077 != 0 {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
            .with_context(|| format!("make {} readable by its owner only", path.display()))?;
        tracing::warn!(file = %path.display(), "operator token file was readable by others; now 0600");
    }
    read_token(path)
}

/// Read the operator token file.
pub fn read_token(path: &Path) -> anyhow::Result<String> {
    let t = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read the operator token {}", path.display()))?;
    let t = t.trim().to_string();
    anyhow::ensure!(
        t.len() >= 16,
        "{}: the operator token is too short",
        path.display()
    );
    Ok(t)
}

/// One HTTP/1.1 request to a node's admin API (Connection: close); the status and body.
pub async fn admin_request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<&str>,
    timeout: Duration,
) -> anyhow::Result<(u16, String)> {
    let work = async {
        let mut s = tokio::net::TcpStream::connect(addr).await?;
        let body = body.unwrap_or("");
        let auth = token
            .map(|t| format!("Authorization: Bearer {t}\r\n"))
            .unwrap_or_default();
        let req = format!(
            "{method} {path} HTTP/1.1\r\nHost: {addr}\r\n{auth}Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
        s.write_all(req.as_bytes()).await?;
        let mut resp = Vec::new();
        s.read_to_end(&mut resp).await?;
        Ok::<_, std::io::Error>(resp)
    };
    let resp = tokio::time::timeout(timeout, work)
        .await
        .map_err(|_| anyhow::anyhow!("admin API at {addr}: no answer within {timeout:?}"))?
        .with_context(|| format!("admin API at {addr}"))?;
    let text = String::from_utf8_lossy(&resp);
    let (head, body) = text
        .split_once("\r\n\r\n")
        .ok_or_else(|| anyhow::anyhow!("admin API at {addr}: no HTTP response"))?;
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| anyhow::anyhow!("admin API at {addr}: bad status line"))?;
    let body = if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        dechunk(body)
    } else {
        body.to_string()
    };
    Ok((status, body))
}

fn dechunk(s: &str) -> String {
    let mut out = String::new();
    let mut rest = s;
    while let Some((size, tail)) = rest.split_once("\r\n") {
        let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if n == 0 || tail.len() < n {
            break;
        }
        out.push_str(&tail[..n]);
        rest = tail[n..].trim_start_matches("\r\n");
    }
    out
}

/// A node's status as its admin API reports it (`GET /api/status`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NodeStatus {
    pub role: String,
    pub pid: u32,
    pub leader: Option<String>,
    pub term: u64,
    pub commit_index: u64,
    pub applied_index: u64,
    /// The replicated state hash (hex) at `state_hash_index`.
    pub state_hash: String,
    pub state_hash_index: u64,
    /// "active", "standby" or "witness".
    pub site: String,
    /// When the site last opened (Unix ms), and its first logon after that.
    pub active_since_ms: Option<u64>,
    pub first_logon_ms: Option<u64>,
    /// Live orders in the replicated engine.
    pub live_orders: usize,
    pub durability: String,
    pub wal_syncs: u64,
    pub wal_entries: u64,
    pub wal_sync_nanos_total: u64,
}

/// An Execution Report in a node's replicated session log (`GET /api/executions`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplicatedReport {
    pub comp_id: String,
    pub seq: u32,
    pub exec_type: String,
    pub order_id: Option<String>,
    pub exec_id: Option<String>,
    pub cl_ord_id: Option<String>,
}

/// A client of the three nodes' admin APIs.
#[derive(Debug, Clone)]
pub struct AdminClient {
    pub nodes: BTreeMap<NodeRole, SocketAddr>,
    pub token: String,
    pub timeout: Duration,
}

impl AdminClient {
    pub fn new(cfg: &ClusterConfig, token: String) -> AdminClient {
        AdminClient {
            nodes: ROLES.iter().map(|r| (*r, cfg.node(*r).admin)).collect(),
            token,
            timeout: Duration::from_secs(5),
        }
    }

    /// `method path` on node `r`; the JSON body of a 200 answer, an error otherwise.
    pub async fn call(
        &self,
        r: NodeRole,
        method: &str,
        path: &str,
        body: Option<&str>,
        timeout: Duration,
    ) -> anyhow::Result<serde_json::Value> {
        let addr = self.nodes[&r];
        let (status, text) =
            admin_request(addr, method, path, Some(&self.token), body, timeout).await?;
        anyhow::ensure!(
            status == 200,
            "{} node ({addr}) answered {status}: {}",
            role_name(r),
            text.trim()
        );
        serde_json::from_str(&text)
            .with_context(|| format!("{} node: not JSON: {}", role_name(r), text.trim()))
    }

    pub async fn status(&self, r: NodeRole) -> anyhow::Result<NodeStatus> {
        let v = self
            .call(r, "GET", "/api/status", None, self.timeout)
            .await?;
        Ok(serde_json::from_value(v)?)
    }

    /// Wait (bounded, on the node) until `r`'s site is active; its status then.
    pub async fn wait_active(&self, r: NodeRole, timeout: Duration) -> anyhow::Result<NodeStatus> {
        self.wait_site(r, "active", timeout).await
    }

    /// Wait (bounded, on the node) until `r`'s site is `site` ("active" or "standby").
    pub async fn wait_site(
        &self,
        r: NodeRole,
        site: &str,
        timeout: Duration,
    ) -> anyhow::Result<NodeStatus> {
        let v = self
            .call(
                r,
                "GET",
                &format!("/api/status?wait={site}&timeout_ms={}", timeout.as_millis()),
                None,
                timeout + Duration::from_secs(2),
            )
            .await?;
        let s: NodeStatus = serde_json::from_value(v)?;
        anyhow::ensure!(
            s.site == site,
            "{} site not {site} after {timeout:?}: {s:?}",
            role_name(r)
        );
        Ok(s)
    }

    /// Wait (bounded, on the node) until `r` has applied index `index`; its status then.
    pub async fn wait_applied(
        &self,
        r: NodeRole,
        index: u64,
        timeout: Duration,
    ) -> anyhow::Result<NodeStatus> {
        let v = self
            .call(
                r,
                "GET",
                &format!(
                    "/api/status?applied={index}&timeout_ms={}",
                    timeout.as_millis()
                ),
                None,
                timeout + Duration::from_secs(2),
            )
            .await?;
        let s: NodeStatus = serde_json::from_value(v)?;
        anyhow::ensure!(
            s.applied_index >= index,
            "{} node applied only {} of {index} after {timeout:?}: {s:?}",
            role_name(r),
            s.applied_index
        );
        Ok(s)
    }

    /// The replicated state hash of `r` at `index` (None if it does not remember it).
    pub async fn state_hash_at(&self, r: NodeRole, index: u64) -> anyhow::Result<Option<String>> {
        let v = self
            .call(
                r,
                "GET",
                &format!("/api/state-hash?index={index}"),
                None,
                self.timeout,
            )
            .await?;
        Ok(v["state_hash"].as_str().map(|s| s.to_string()))
    }

    pub async fn executions(&self, r: NodeRole) -> anyhow::Result<Vec<ReplicatedReport>> {
        let v = self
            .call(r, "GET", "/api/executions", None, Duration::from_secs(30))
            .await?;
        Ok(serde_json::from_value(v["reports"].clone())?)
    }

    /// Scheduled failover, asked of the leader: leadership moves to `to` (the other site when
    /// None).
    pub async fn failover(
        &self,
        leader: NodeRole,
        to: Option<NodeRole>,
    ) -> anyhow::Result<serde_json::Value> {
        let body = match to {
            Some(t) => format!(r#"{{"to":"{}"}}"#, role_name(t)),
            None => "{}".into(),
        };
        self.call(
            leader,
            "POST",
            "/api/failover",
            Some(&body),
            Duration::from_secs(30),
        )
        .await
    }

    /// Ask node `r` to abort its process. Ok once the node has stopped answering.
    pub async fn crash(&self, r: NodeRole) -> anyhow::Result<()> {
        let addr = self.nodes[&r];
        match admin_request(
            addr,
            "POST",
            "/api/crash",
            Some(&self.token),
            Some("{}"),
            self.timeout,
        )
        .await
        {
            // The node aborts before it answers: the connection closes with no response.
            Err(_) => {}
            Ok((status, text)) => anyhow::bail!(
                "{} node refused to crash ({status}): {}",
                role_name(r),
                text.trim()
            ),
        }
        // Confirm: the admin port no longer accepts connections.
        let deadline = tokio::time::Instant::now() + self.timeout;
        loop {
            if tokio::net::TcpStream::connect(addr).await.is_err() {
                return Ok(());
            }
            anyhow::ensure!(
                tokio::time::Instant::now() < deadline,
                "{} node still answers at {addr} after the crash request",
                role_name(r)
            );
            tokio::task::yield_now().await;
        }
    }

    /// The site node (primary or backup) that leads now, from whichever node answers.
    pub async fn leader(&self) -> anyhow::Result<NodeRole> {
        let mut last = None;
        for r in ROLES {
            match self.status(r).await {
                Ok(s) => {
                    if let Some(l) = s.leader.as_deref() {
                        return parse_role(l);
                    }
                }
                Err(e) => last = Some(e),
            }
        }
        Err(last.unwrap_or_else(|| anyhow::anyhow!("no node knows a leader")))
    }
}

/// A node process started from the twinsite binary.
pub struct NodeProcess {
    pub role: NodeRole,
    pub child: tokio::process::Child,
    /// The node's standard input: dropping it stops the node. Kept apart from `child` because
    /// `Child::wait` closes a stdin it still holds.
    pub stdin: Option<tokio::process::ChildStdin>,
    /// The lines the node printed on stdout before it was ready.
    pub banner: Vec<String>,
}

/// The line a node prints on stdout once it serves its admin API.
pub const READY_LINE: &str = "twinsite node ready";

impl NodeProcess {
    /// Start `exe node --role r --config config` and wait (bounded) for its ready line. The
    /// child's stdin is a pipe: closing it (dropping the process) makes the node stop.
    pub async fn start(
        exe: &Path,
        config: &Path,
        r: NodeRole,
        timeout: Duration,
    ) -> anyhow::Result<NodeProcess> {
        let mut child = tokio::process::Command::new(exe)
            .arg("node")
            .arg("--role")
            .arg(role_name(r))
            .arg("--config")
            .arg(config)
            .arg("--stop-on-stdin-eof")
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("start {}", exe.display()))?;
        let stdin = child.stdin.take();
        let stdout = child.stdout.take().expect("piped stdout");
        let mut lines = tokio::io::BufReader::new(stdout).lines();
        let mut banner = Vec::new();
        let ready = tokio::time::timeout(timeout, async {
            while let Some(l) = lines.next_line().await? {
                let done = l.starts_with(READY_LINE);
                banner.push(l);
                if done {
                    return Ok::<bool, std::io::Error>(true);
                }
            }
            Ok(false)
        })
        .await;
        match ready {
            Ok(Ok(true)) => {}
            Ok(Ok(false)) | Ok(Err(_)) => {
                let status = child.wait().await.ok();
                anyhow::bail!(
                    "{} node exited before it was ready ({status:?}); output: {banner:?}",
                    role_name(r)
                )
            }
            Err(_) => {
                let _ = child.kill().await;
                anyhow::bail!(
                    "{} node not ready within {timeout:?}; output: {banner:?}",
                    role_name(r)
                )
            }
        }
        // Keep draining stdout so the node never blocks on a full pipe.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        Ok(NodeProcess {
            role: r,
            child,
            stdin,
            banner,
        })
    }

    /// kill -9.
    pub async fn kill(&mut self) -> anyhow::Result<()> {
        self.child.kill().await.context("kill node")
    }

    /// Close its stdin (the node shuts down) and wait (bounded); kill it if it does not exit.
    pub async fn stop(mut self, timeout: Duration) {
        drop(self.stdin.take());
        if tokio::time::timeout(timeout, self.child.wait())
            .await
            .is_err()
        {
            let _ = self.child.kill().await;
        }
    }
}
