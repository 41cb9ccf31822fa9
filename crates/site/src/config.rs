//! The site configuration file (`twinsite serve --config FILE`). See `config/site.example.toml`.

use serde::{Deserialize, Serialize};
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use twinsite_core::{BrokerId, CompId, ParticipantKind, Platform};

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
    /// What a site does when it becomes active after a failover (docs/failover.md).
    #[serde(default)]
    pub failover: FailoverSection,
}

/// `[failover]`: the fate of resting orders and of session sequence numbers when a site becomes
/// active after a failover (never at the first activation of the day).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FailoverSection {
    /// "keep" (resting orders survive, the default) or "cancel" (the new active site purges
    /// every resting order with unsolicited cancel Execution Reports).
    #[serde(default)]
    pub orders: OrdersOnFailover,
    /// "continue" (sequence numbers continue, the default) or "reset" (catastrophic mode: every
    /// session restarts at `reset_to`; earlier messages are unavailable for replay).
    #[serde(default)]
    pub sequence: SequenceOnFailover,
    /// The agreed number sequences restart at with `sequence = "reset"` (1 when absent).
    #[serde(default)]
    pub reset_to: Option<u32>,
}

impl FailoverSection {
    /// The number every session restarts at, when sequences are reset.
    pub fn reset_number(&self) -> Option<u32> {
        match self.sequence {
            SequenceOnFailover::Continue => None,
            SequenceOnFailover::Reset => Some(self.reset_to.unwrap_or(1)),
        }
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OrdersOnFailover {
    #[default]
    Keep,
    Cancel,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SequenceOnFailover {
    #[default]
    Continue,
    Reset,
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
    /// OTP-CSC (China Connect, through the CCCG) Lookup Service listen addresses; no OTP-CSC
    /// lookup when empty.
    #[serde(default)]
    pub csc_lookup: Vec<SocketAddr>,
    /// OTP-CSC gateway listen addresses (primary and mirror); no OTP-CSC gateway when absent.
    #[serde(default)]
    pub csc_gateway_primary: Option<SocketAddr>,
    #[serde(default)]
    pub csc_gateway_mirror: Option<SocketAddr>,
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
    /// China Connect daily quota per link (Shanghai Connect, Shenzhen Connect), RMB; the
    /// reference's RMB 52 billion when absent.
    #[serde(default)]
    pub cc_daily_quota: Option<i64>,
    /// China Connect holdings at the start of the day (northbound sells are checked against
    /// them: no day trading).
    #[serde(default)]
    pub cc_holdings: Vec<HoldingEntry>,
    /// Orders to reserve room for up front: live orders at once, order ids in the day, and
    /// client order ids per broker (docs/operations.md, "Capacity"). Past it the vectors still
    /// grow, once per doubling.
    #[serde(default = "reserve_orders")]
    pub reserve_orders: usize,
}

/// Shares of a China Connect security a broker holds at the start of the day.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HoldingEntry {
    pub broker: u32,
    pub security: u32,
    pub shares: u64,
}

impl Default for EngineSection {
    fn default() -> Self {
        EngineSection {
            seed: default_seed(),
            schedule: manual(),
            date: None,
            speed: 1,
            start_ms: None,
            cc_daily_quota: None,
            cc_holdings: Vec::new(),
            reserve_orders: reserve_orders(),
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
    /// Outbound business messages to reserve room for per Comp ID (the replay log), at the
    /// active site and in every node's replica (docs/operations.md, "Capacity").
    #[serde(default = "reserve_outbound")]
    pub reserve_outbound: usize,
}

impl Default for SessionSection {
    fn default() -> Self {
        SessionSection {
            heartbeat_ms: hb(),
            password_tolerance_secs: tolerance(),
            throttle: true,
            reserve_outbound: reserve_outbound(),
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
    /// The trading platform this Comp ID logs in to: EP -> OTP-C, CCEP -> OTP-CSC only,
    /// information vendor -> none.
    pub fn platform(&self) -> Option<Platform> {
        platform_of(self.participant_kind().ok()?)
    }
}

/// The trading platform a participant kind logs in to (none for an information vendor).
pub fn platform_of(kind: ParticipantKind) -> Option<Platform> {
    [Platform::OtpC, Platform::OtpCsc]
        .into_iter()
        .find(|p| kind.may_log_in(*p))
}

/// The platform's name as the reference writes it.
pub fn platform_name(p: Platform) -> &'static str {
    match p {
        Platform::OtpC => "OTP-C",
        Platform::OtpCsc => "OTP-CSC",
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
            let kind = p.participant_kind()?;
            anyhow::ensure!(
                !(kind == ParticipantKind::Ccep && p.is_fix()),
                "participant {}: a CCEP logs in to OTP-CSC, whose gateway (the CCCG) speaks the \
                 binary protocol only: use protocol = \"binary\"",
                p.firm
            );
        }
        anyhow::ensure!(
            self.site.csc_gateway_primary.is_some() == self.site.csc_gateway_mirror.is_some(),
            "site.csc_gateway_primary and site.csc_gateway_mirror: give both or neither"
        );
        anyhow::ensure!(
            self.site.csc_lookup.is_empty() || self.site.csc_gateway_primary.is_some(),
            "site.csc_lookup needs site.csc_gateway_primary and site.csc_gateway_mirror"
        );
        anyhow::ensure!(
            self.failover.reset_to != Some(0),
            "failover.reset_to: sequence numbers start at 1"
        );
        Ok(())
    }
}

/// A drill day's order count with room to spare (docs/operations.md, "Capacity").
fn reserve_orders() -> usize {
    1 << 17
}

/// A busy Comp ID's outbound business messages in a drill day (docs/operations.md, "Capacity").
fn reserve_outbound() -> usize {
    1 << 15
}
