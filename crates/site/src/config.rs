//! The site configuration file (`twinsite serve --config FILE`). See `config/site.example.toml`.

use serde::{Deserialize, Serialize};
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use twinsite_core::{BrokerId, CompId, ParticipantKind};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SiteConfig {
    pub site: SiteSection,
    #[serde(default)]
    pub engine: EngineSection,
    #[serde(default)]
    pub session: SessionSection,
    #[serde(default)]
    pub market_data: Option<MarketDataSection>,
    #[serde(default, rename = "participant")]
    pub participants: Vec<ParticipantEntry>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SiteSection {
    /// "primary" or "backup" (used in logs and lookup answers).
    #[serde(default = "primary")]
    pub name: String,
    /// Lookup Service listen addresses (the primary-site primary and mirror lookup endpoints).
    pub lookup: Vec<SocketAddr>,
    /// OCG-C gateway listen addresses: primary and mirror.
    pub gateway_primary: SocketAddr,
    pub gateway_mirror: SocketAddr,
    /// Host the Lookup Service hands out (defaults to the listen IP).
    #[serde(default)]
    pub advertise_host: Option<IpAddr>,
    /// RSA private keys (PKCS#8 PEM), one, or two during a key rotation. Relative to the config file.
    pub keys: Vec<PathBuf>,
    /// Reference data file; the shipped sample when absent.
    #[serde(default)]
    pub reference_data: Option<PathBuf>,
    /// Does this site serve now (the active site)?
    #[serde(default = "yes")]
    pub active: bool,
    /// FIX gateway listen address (FIXT.1.1 acceptor for `protocol = "fix"` participants);
    /// no FIX gateway when absent.
    #[serde(default)]
    pub fix_gateway: Option<SocketAddr>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EngineSection {
    #[serde(default = "default_seed")]
    pub seed: u64,
    /// "manual" (phases by command; starts in continuous trading), "full-day" or "half-day".
    #[serde(default = "manual")]
    pub schedule: String,
    /// Trading date for the full/half-day schedules, YYYY-MM-DD (HKT).
    #[serde(default)]
    pub date: Option<String>,
    /// Compress the schedule N times (drills).
    #[serde(default = "one")]
    pub speed: u64,
    /// Start of the compressed schedule, Unix milliseconds (the same on every node of a
    /// cluster); now when absent.
    #[serde(default)]
    pub start_ms: Option<u64>,
}

impl Default for EngineSection {
    fn default() -> Self {
        EngineSection {
            seed: default_seed(),
            schedule: manual(),
            date: None,
            speed: 1,
            start_ms: None,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SessionSection {
    /// OCG-C heartbeat interval, milliseconds (20 s in production).
    #[serde(default = "hb")]
    pub heartbeat_ms: u64,
    /// Allowed clock difference for the encrypted password's timestamp, seconds.
    #[serde(default = "tolerance")]
    pub password_tolerance_secs: u64,
    /// Throttle on or off (benchmarks switch it off).
    #[serde(default = "yes")]
    pub throttle: bool,
}

impl Default for SessionSection {
    fn default() -> Self {
        SessionSection {
            heartbeat_ms: hb(),
            password_tolerance_secs: tolerance(),
            throttle: true,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MarketDataSection {
    /// Interface for multicast (IP_MULTICAST_IF).
    #[serde(default = "loopback")]
    pub interface: IpAddr,
    /// Retransmission service listen address.
    pub rts: SocketAddr,
    /// Channels: id and the line A / line B group:port.
    #[serde(default, rename = "channel")]
    pub channels: Vec<ChannelEntry>,
    /// Write everything published to this pcap file.
    #[serde(default)]
    pub pcap: Option<PathBuf>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChannelEntry {
    pub id: u16,
    /// "fulltick", "standard", "premium", "dr", "refresh".
    pub product: String,
    pub line_a: SocketAddr,
    pub line_b: SocketAddr,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ParticipantEntry {
    pub firm: String,
    #[serde(default = "ep")]
    pub kind: String,
    pub comp_id: String,
    pub broker_ids: Vec<u32>,
    pub password: String,
    /// Registered source IPs (at most 4).
    #[serde(default = "local_ips")]
    pub source_ips: Vec<IpAddr>,
    #[serde(default = "units")]
    pub throttle_units: u32,
    /// Cancel on Disconnect delay, milliseconds; absent = off.
    #[serde(default)]
    pub cancel_on_disconnect_ms: Option<u64>,
    /// The first logon must change the password (as after an HKEX reset).
    #[serde(default)]
    pub must_change_password: bool,
    /// "binary" (OCG-C binary gateway, the default) or "fix" (FIX gateway). A firm may have one
    /// Comp ID of each.
    #[serde(default)]
    pub protocol: Protocol,
}

/// The gateway protocol of a participant's Comp ID.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    #[default]
    Binary,
    Fix,
}

impl ParticipantEntry {
    pub fn comp(&self) -> anyhow::Result<CompId> {
        CompId::new(&self.comp_id).map_err(|e| anyhow::anyhow!("participant {}: {e}", self.firm))
    }
    pub fn brokers(&self) -> Vec<BrokerId> {
        self.broker_ids.iter().map(|b| BrokerId(*b)).collect()
    }
    pub fn is_fix(&self) -> bool {
        self.protocol == Protocol::Fix
    }
    pub fn participant_kind(&self) -> anyhow::Result<ParticipantKind> {
        self.kind
            .parse()
            .map_err(|e| anyhow::anyhow!("participant {}: {e}", self.firm))
    }
}

fn primary() -> String {
    "primary".into()
}
fn yes() -> bool {
    true
}
fn default_seed() -> u64 {
    20231125
}
fn manual() -> String {
    "manual".into()
}
fn one() -> u64 {
    1
}
fn hb() -> u64 {
    20_000
}
fn tolerance() -> u64 {
    120
}
fn loopback() -> IpAddr {
    IpAddr::from([127, 0, 0, 1])
}
fn ep() -> String {
    "EP".into()
}
fn local_ips() -> Vec<IpAddr> {
    vec![loopback()]
}
fn units() -> u32 {
    10
}

impl SiteConfig {
    /// Read and check a config file; relative paths are resolved against its folder.
    pub fn load(path: &Path) -> anyhow::Result<SiteConfig> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", path.display()))?;
        let mut cfg: SiteConfig =
            toml::from_str(&text).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
        let base = path.parent().unwrap_or(Path::new("."));
        for k in &mut cfg.site.keys {
            if k.is_relative() {
                *k = base.join(&*k);
            }
        }
        if let Some(r) = &mut cfg.site.reference_data {
            if r.is_relative() {
                *r = base.join(&*r);
            }
        }
        cfg.check()?;
        Ok(cfg)
    }

    pub fn check(&self) -> anyhow::Result<()> {
        anyhow::ensure!(
            !self.site.keys.is_empty() && self.site.keys.len() <= 2,
            "site.keys: give one RSA key, or two during a rotation"
        );
        anyhow::ensure!(
            !self.site.lookup.is_empty(),
            "site.lookup: give at least one lookup listen address"
        );
        let mut seen = std::collections::BTreeSet::new();
        for p in &self.participants {
            let c = p.comp()?;
            anyhow::ensure!(
                seen.insert(c),
                "participant {}: comp id {} is listed twice",
                p.firm,
                p.comp_id
            );
            anyhow::ensure!(
                !p.broker_ids.is_empty(),
                "participant {}: give at least one broker id",
                p.firm
            );
            anyhow::ensure!(
                (1..=twinsite_core::limits::OCG_MAX_SOURCE_IPS).contains(&p.source_ips.len()),
                "participant {}: 1 to 4 source IPs",
                p.firm
            );
            p.participant_kind()?;
        }
        Ok(())
    }
}
