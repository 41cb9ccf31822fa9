//! Registration: firms register by the deadline and are issued credentials and a personal
//! rundown. Registrations are kept in an append-only JSON-lines file, each line fsynced before
//! the registration is acknowledged, and reloaded on start: a restart loses nothing.

use crate::session::{kind_name, platform_name, PhaseSite, Session};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha20Rng;
use serde::{Deserialize, Serialize};
use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use twinsite_core::{ParticipantKind, Platform, Timestamp};
use twinsite_site::config::ParticipantEntry;

/// What a firm sends to register.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RegistrationRequest {
    pub firm: String,
    /// "EP", "CCEP" or "IV".
    pub kind: String,
    pub broker_ids: Vec<u32>,
    pub contact: String,
    /// Registered source IPs (1 to 4); loopback when empty.
    #[serde(default)]
    pub source_ips: Vec<IpAddr>,
    /// Order-entry protocols for its Comp IDs: "binary" (OCG-C binary), "fix" (FIX 5.0 SP2 on
    /// OTP-C) or both; binary when empty (what registration always issued).
    #[serde(default)]
    pub protocols: Vec<String>,
}

/// Order-entry protocol of a Comp ID.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    /// OCG-C binary.
    Binary,
    /// FIX 5.0 SP2 / FIXT.1.1 (OTP-C only).
    Fix,
}

impl Protocol {
    /// "binary" / "fix" (also "FIX", "ocg", "ocg-c": case-insensitive).
    pub fn parse(s: &str) -> Option<Protocol> {
        match s.trim().to_ascii_lowercase().as_str() {
            "binary" | "ocg" | "ocg-c" => Some(Protocol::Binary),
            "fix" => Some(Protocol::Fix),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Protocol::Binary => "binary",
            Protocol::Fix => "FIX",
        }
    }
}

/// The exchange's FIX CompID: the TargetCompID of every participant's FIX session.
pub const FIX_TARGET_COMP_ID: &str = twinsite_site::fix_gateway::EXCHANGE_COMP_ID;

/// The Lookup Service's Protocol Type for FIX (binary is 1). INFERRED: the reference documents
/// only 1 = Binary; twinsite answers 2 with the FIX gateway's endpoints (see docs/drill.md).
pub const LOOKUP_PROTOCOL_FIX: u8 = twinsite_ocg::LOOKUP_PROTOCOL_FIX;

/// One Comp ID issued to a firm.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CompIdGrant {
    pub platform: Platform,
    pub protocol: Protocol,
    pub comp_id: String,
    /// Initial password (8 alphanumerics, with a letter and a digit).
    pub password: String,
}

/// A stored registration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Registration {
    /// 1, 2, 3... in registration order.
    pub number: u32,
    pub firm: String,
    pub kind: ParticipantKind,
    pub broker_ids: Vec<u32>,
    pub contact: String,
    pub source_ips: Vec<IpAddr>,
    pub registered_at: Timestamp,
    pub comp_ids: Vec<CompIdGrant>,
}

impl Registration {
    /// The participant's id in reports: its first Comp ID, or `IV<number>` for a vendor.
    pub fn id(&self) -> String {
        self.comp_ids
            .first()
            .map(|c| c.comp_id.clone())
            .unwrap_or_else(|| format!("IV{:04}", self.number))
    }

    pub fn comp_id(&self, platform: Platform, protocol: Protocol) -> Option<&CompIdGrant> {
        self.comp_ids
            .iter()
            .find(|c| c.platform == platform && c.protocol == protocol)
    }

    /// Its first Comp ID of this protocol (any platform).
    pub fn grant(&self, protocol: Protocol) -> Option<&CompIdGrant> {
        self.comp_ids.iter().find(|c| c.protocol == protocol)
    }
}

/// Why a registration was refused.
#[derive(Debug, thiserror::Error)]
pub enum RegisterError {
    #[error("registration closed at {deadline} (Hong Kong time); it is now {now}: registrations are no longer accepted for {session}")]
    DeadlinePassed {
        session: String,
        deadline: String,
        now: String,
    },
    #[error("firm {0:?} is already registered for this session (one registration per firm)")]
    DuplicateFirm(String),
    #[error("unknown participant kind {0:?}: use EP (Exchange Participant), CCEP (China Connect Exchange Participant) or IV (information vendor)")]
    UnknownKind(String),
    #[error(
        "unknown order-entry protocol {0:?}: use binary (OCG-C binary), fix (FIX 5.0 SP2) or both"
    )]
    UnknownProtocol(String),
    #[error("participant kind {0} is not invited to this session")]
    KindNotInvited(String),
    #[error("broker id {broker} is already registered to firm {firm:?}")]
    BrokerTaken { broker: u32, firm: String },
    #[error("{0}")]
    Invalid(String),
    #[error("registration store {path}: {source}")]
    Store {
        path: String,
        #[source]
        source: std::io::Error,
    },
}

/// The registry of one session, backed by a file.
pub struct Registry {
    path: PathBuf,
    file: File,
    session_name: String,
    deadline: Timestamp,
    deadline_label: String,
    time_zone: chrono_tz::Tz,
    seed: u64,
    platforms: std::collections::BTreeMap<ParticipantKind, Vec<Platform>>,
    regs: Vec<Registration>,
}

#[derive(Serialize, Deserialize)]
#[serde(tag = "record", rename_all = "snake_case")]
enum StoreRecord {
    Registration(Registration),
}

fn store_err(path: &Path, source: std::io::Error) -> RegisterError {
    RegisterError::Store {
        path: path.display().to_string(),
        source,
    }
}

impl Registry {
    /// Open (or create) the store at `path` for a session and reload every registration in it.
    /// A torn last line (a crash in the middle of a write that was never acknowledged) is cut
    /// off; a bad line in the middle is an error.
    pub fn open(path: &Path, session: &Session) -> Result<Registry, RegisterError> {
        let created = !path.exists();
        let mut file = OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .open(path)
            .map_err(|e| store_err(path, e))?;
        if created {
            file.sync_all().map_err(|e| store_err(path, e))?;
            if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                if let Ok(d) = File::open(dir) {
                    let _ = d.sync_all();
                }
            }
        }
        let mut text = String::new();
        file.seek(SeekFrom::Start(0))
            .and_then(|_| file.read_to_string(&mut text))
            .map_err(|e| store_err(path, e))?;
        let mut regs = Vec::new();
        let mut good = 0usize;
        let mut offset = 0usize;
        for (i, line) in text.split_inclusive('\n').enumerate() {
            offset += line.len();
            let complete = line.ends_with('\n');
            let body = line.trim();
            if body.is_empty() {
                good = offset;
                continue;
            }
            match serde_json::from_str::<StoreRecord>(body) {
                Ok(StoreRecord::Registration(r)) if complete => {
                    regs.push(r);
                    good = offset;
                }
                _ if !complete => break, // torn tail: never acknowledged
                Ok(_) => unreachable!(),
                Err(e) => {
                    return Err(store_err(
                        path,
                        std::io::Error::new(
                            std::io::ErrorKind::InvalidData,
                            format!("line {}: {e}", i + 1),
                        ),
                    ))
                }
            }
        }
        if good < text.len() {
            file.set_len(good as u64).map_err(|e| store_err(path, e))?;
            file.sync_all().map_err(|e| store_err(path, e))?;
        }
        Ok(Registry {
            path: path.to_path_buf(),
            file,
            session_name: session.name.clone(),
            deadline: session.registration_deadline,
            deadline_label: session.label_datetime(session.registration_deadline),
            time_zone: session.time_zone,
            seed: session.seed,
            platforms: session
                .access
                .iter()
                .map(|(k, v)| (*k, v.iter().copied().collect()))
                .collect(),
            regs,
        })
    }

    pub fn registrations(&self) -> &[Registration] {
        &self.regs
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn find(&self, firm: &str) -> Option<&Registration> {
        self.regs.iter().find(|r| same_firm(&r.firm, firm))
    }

    /// Register a firm at wall time `now`; the registration is on disk when this returns.
    pub fn register(
        &mut self,
        req: RegistrationRequest,
        now: Timestamp,
    ) -> Result<Registration, RegisterError> {
        if now > self.deadline {
            return Err(RegisterError::DeadlinePassed {
                session: self.session_name.clone(),
                deadline: self.deadline_label.clone(),
                now: crate::session::local_datetime_label(self.time_zone, now),
            });
        }
        let kind: ParticipantKind = req
            .kind
            .parse()
            .map_err(|_| RegisterError::UnknownKind(req.kind.clone()))?;
        let firm = req.firm.trim().to_string();
        if firm.is_empty() {
            return Err(RegisterError::Invalid("give the firm's name".into()));
        }
        if req.contact.trim().is_empty() {
            return Err(RegisterError::Invalid(
                "give a contact (name, phone or e-mail) for the session".into(),
            ));
        }
        if self.find(&firm).is_some() {
            return Err(RegisterError::DuplicateFirm(firm));
        }
        if !self.platforms.contains_key(&kind) {
            return Err(RegisterError::KindNotInvited(kind_name(kind).into()));
        }
        let platforms = self.platforms[&kind].clone();
        if kind != ParticipantKind::InformationVendor && req.broker_ids.is_empty() {
            return Err(RegisterError::Invalid(
                "give at least one broker id (EPs and CCEPs)".into(),
            ));
        }
        for b in &req.broker_ids {
            if !(1..=99_999).contains(b) {
                return Err(RegisterError::Invalid(format!(
                    "broker id {b}: use 1 to 99999"
                )));
            }
            if let Some(r) = self.regs.iter().find(|r| r.broker_ids.contains(b)) {
                return Err(RegisterError::BrokerTaken {
                    broker: *b,
                    firm: r.firm.clone(),
                });
            }
        }
        let source_ips = if req.source_ips.is_empty() {
            vec![IpAddr::from([127, 0, 0, 1])]
        } else {
            req.source_ips.clone()
        };
        if source_ips.len() > twinsite_core::limits::OCG_MAX_SOURCE_IPS {
            return Err(RegisterError::Invalid(format!(
                "at most {} source IPs",
                twinsite_core::limits::OCG_MAX_SOURCE_IPS
            )));
        }
        let mut protocols = Vec::new();
        for name in &req.protocols {
            let p = Protocol::parse(name)
                .ok_or_else(|| RegisterError::UnknownProtocol(name.clone()))?;
            if !protocols.contains(&p) {
                protocols.push(p);
            }
        }
        if protocols.is_empty() {
            protocols.push(Protocol::Binary);
        }
        protocols.sort();
        if kind == ParticipantKind::InformationVendor && protocols != [Protocol::Binary] {
            return Err(RegisterError::Invalid(
                "information vendors get no order-entry Comp ID: register without protocols".into(),
            ));
        }
        if protocols.contains(&Protocol::Fix) && !platforms.contains(&Platform::OtpC) {
            return Err(RegisterError::Invalid(format!(
                "FIX order entry is offered on OTP-C only; a {} registers for binary",
                kind_name(kind)
            )));
        }
        let number = self.regs.len() as u32 + 1;
        let mut rng = ChaCha20Rng::seed_from_u64(self.seed ^ (u64::from(number) << 32));
        let mut comp_ids = Vec::new();
        // Binary first (its password is the first drawn, as before FIX joined), then FIX.
        for protocol in protocols {
            for &p in &platforms {
                if protocol == Protocol::Fix && p != Platform::OtpC {
                    continue;
                }
                comp_ids.push(CompIdGrant {
                    platform: p,
                    protocol,
                    comp_id: comp_id_for(p, protocol, number),
                    password: password(&mut rng),
                });
            }
        }
        let reg = Registration {
            number,
            firm,
            kind,
            broker_ids: req.broker_ids,
            contact: req.contact.trim().to_string(),
            source_ips,
            registered_at: now,
            comp_ids,
        };
        let mut line = serde_json::to_string(&StoreRecord::Registration(reg.clone()))
            .expect("registrations serialise");
        line.push('\n');
        self.file
            .write_all(line.as_bytes())
            .and_then(|_| self.file.sync_data())
            .map_err(|e| store_err(&self.path, e))?;
        self.regs.push(reg.clone());
        Ok(reg)
    }
}

fn same_firm(a: &str, b: &str) -> bool {
    a.trim().eq_ignore_ascii_case(b.trim())
}

/// Comp ID scheme: platform letter (C = OTP-C, S = OTP-CSC), protocol letter (B = binary,
/// F = FIX), registration number: `CB0001`, `SB0002`...
pub fn comp_id_for(platform: Platform, protocol: Protocol, number: u32) -> String {
    let p = match platform {
        Platform::OtpC => 'C',
        Platform::OtpCsc => 'S',
    };
    let q = match protocol {
        Protocol::Binary => 'B',
        Protocol::Fix => 'F',
    };
    format!("{p}{q}{number:04}")
}

/// 8 alphanumerics with at least one letter and one digit (the OCG-C password policy).
fn password(rng: &mut ChaCha20Rng) -> String {
    const CHARS: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnpqrstuvwxyz23456789";
    loop {
        let p: String = (0..8)
            .map(|_| CHARS[rng.gen_range(0..CHARS.len())] as char)
            .collect();
        if p.bytes().any(|b| b.is_ascii_digit()) && p.bytes().any(|b| b.is_ascii_alphabetic()) {
            return p;
        }
    }
}

/// The site's participant table from the registrations: one entry per Comp ID (binary ones for
/// the OCG-C gateways, FIX ones, `protocol = "fix"`, for the FIX gateway).
pub fn participant_entries(regs: &[Registration]) -> Vec<ParticipantEntry> {
    let mut v = Vec::new();
    for r in regs {
        for c in &r.comp_ids {
            // Through serde, so fields the site adds later (with defaults) keep their defaults.
            let entry = serde_json::json!({
                "protocol": match c.protocol {
                    Protocol::Binary => "binary",
                    Protocol::Fix => "fix",
                },
                "firm": r.firm,
                "kind": kind_name(r.kind),
                "comp_id": c.comp_id,
                "broker_ids": r.broker_ids,
                "password": c.password,
                "source_ips": r.source_ips,
                "throttle_units": 20,
                "must_change_password": false,
            });
            v.push(serde_json::from_value(entry).expect("a valid participant entry"));
        }
    }
    v
}

/// The usernames the sites' retransmission services accept: every Comp ID (binary or FIX), and
/// each information vendor's participant id (`IV0005`), under which the exchange records its
/// RTS logons and requests.
pub fn rts_usernames(regs: &[Registration]) -> Vec<String> {
    let mut v = Vec::new();
    for r in regs {
        if r.kind == ParticipantKind::InformationVendor {
            v.push(r.id());
        }
        for c in &r.comp_ids {
            v.push(c.comp_id.clone());
        }
    }
    v
}

/// How a FIX Comp ID reaches the exchange, in a participant's pack.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FixSessionGrant {
    pub platform: Platform,
    /// SenderCompID (49) of its messages; TargetCompID (56) of the exchange's.
    pub sender_comp_id: String,
    /// TargetCompID (56) of its messages: the exchange.
    pub target_comp_id: String,
    pub begin_string: String,
    /// DefaultApplVerID (1137) in the Logon: 9 = FIX 5.0 SP2.
    pub default_appl_ver_id: String,
    /// Lookup Request Protocol Type for the FIX gateway (2, INFERRED), sent to the same four
    /// Lookup Service endpoints with this Comp ID in the header.
    pub lookup_protocol_type: u8,
}

/// A market-data channel or service endpoint in a participant's pack.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ChannelGrant {
    pub id: u16,
    pub platform: String,
    pub product: String,
    pub line_a: SocketAddr,
    pub line_b: SocketAddr,
}

/// Everything a registered firm is given for the session.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CredentialPack {
    pub session: String,
    pub firm: String,
    pub kind: ParticipantKind,
    pub broker_ids: Vec<u32>,
    pub comp_ids: Vec<CompIdGrant>,
    /// Its FIX sessions (one per FIX Comp ID): CompIDs and how to find the FIX gateway.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub fix_sessions: Vec<FixSessionGrant>,
    /// The exchange's RSA public key (for the logon password), PEM.
    pub public_key_pem: String,
    /// Primary-site primary and mirror, backup-site primary and mirror.
    pub lookup_endpoints: Vec<SocketAddr>,
    pub omd_channels: Vec<ChannelGrant>,
    /// Retransmission service: primary site, backup site.
    pub rts_endpoints: Vec<SocketAddr>,
    pub rundown_markdown: String,
    pub rundown_html: String,
}

impl CredentialPack {
    /// Write the pack for a participant into `dir`: `<id>.json` (everything, for its systems),
    /// `<id>-rundown.md` and `<id>-rundown.html`, and `exchange-public-key.pem`.
    pub fn write(&self, dir: &Path, id: &str) -> std::io::Result<Vec<PathBuf>> {
        std::fs::create_dir_all(dir)?;
        let files = [
            (
                format!("{id}.json"),
                serde_json::to_string_pretty(self).expect("packs serialise"),
            ),
            (format!("{id}-rundown.md"), self.rundown_markdown.clone()),
            (format!("{id}-rundown.html"), self.rundown_html.clone()),
            (
                "exchange-public-key.pem".to_string(),
                self.public_key_pem.clone(),
            ),
        ];
        let mut out = Vec::new();
        for (name, body) in files {
            let p = dir.join(name);
            std::fs::write(&p, body)?;
            out.push(p);
        }
        Ok(out)
    }
}

/// The public key PEM (SPKI) of a PKCS#8 PEM private key file, for credential packs.
pub fn public_key_pem(private_key_path: &Path) -> anyhow::Result<String> {
    use rsa::pkcs8::{DecodePrivateKey, EncodePublicKey, LineEnding};
    let pem = std::fs::read_to_string(private_key_path)?;
    let key = rsa::RsaPrivateKey::from_pkcs8_pem(&pem)?;
    Ok(rsa::RsaPublicKey::from(&key).to_public_key_pem(LineEnding::LF)?)
}

/// Issue a registration's credential pack. Endpoints come from the session file unless the
/// runtime bound other ones (`lookup` overrides, e.g. ports chosen at start).
pub fn issue(
    session: &Session,
    reg: &Registration,
    public_key_pem: &str,
    lookup: Option<&[SocketAddr]>,
) -> CredentialPack {
    let lookup_endpoints = lookup.map(|l| l.to_vec()).unwrap_or(session.lookup.clone());
    let omd_channels = session
        .market_data
        .channels
        .iter()
        .filter(|c| match reg.kind {
            // OMD-CC (China Connect) for CCEPs and vendors; OMD-C for everyone.
            ParticipantKind::Ep => c.platform.eq_ignore_ascii_case("OMD-C"),
            _ => true,
        })
        .map(|c| ChannelGrant {
            id: c.id,
            platform: c.platform.clone(),
            product: c.product.clone(),
            line_a: c.line_a,
            line_b: c.line_b,
        })
        .collect::<Vec<_>>();
    let mut pack = CredentialPack {
        session: session.name.clone(),
        firm: reg.firm.clone(),
        kind: reg.kind,
        broker_ids: reg.broker_ids.clone(),
        comp_ids: reg.comp_ids.clone(),
        fix_sessions: reg
            .comp_ids
            .iter()
            .filter(|c| c.protocol == Protocol::Fix)
            .map(|c| FixSessionGrant {
                platform: c.platform,
                sender_comp_id: c.comp_id.clone(),
                target_comp_id: FIX_TARGET_COMP_ID.into(),
                begin_string: twinsite_fix::codec::BEGIN_STRING.into(),
                default_appl_ver_id: twinsite_fix::session::DEFAULT_APPL_VER_ID.into(),
                lookup_protocol_type: LOOKUP_PROTOCOL_FIX,
            })
            .collect(),
        public_key_pem: public_key_pem.to_string(),
        lookup_endpoints,
        omd_channels,
        rts_endpoints: session.market_data.rts.clone(),
        rundown_markdown: String::new(),
        rundown_html: String::new(),
    };
    pack.rundown_markdown = rundown_markdown(session, reg, &pack);
    pack.rundown_html = crate::report::markdown_page(
        &format!("{} - rundown for {}", session.name, reg.firm),
        &pack.rundown_markdown,
    );
    pack
}

/// What a participant of this kind must do in a phase.
pub fn duties(session: &Session, kind: ParticipantKind, site: PhaseSite) -> Vec<String> {
    let platforms: Vec<&str> = session
        .platforms(kind)
        .into_iter()
        .map(platform_name)
        .collect();
    let plat = platforms.join(" and ");
    match (kind, site) {
        (ParticipantKind::InformationVendor, PhaseSite::Primary) => vec![
            "Receive OMD-C / OMD-CC from the primary site on lines A and B; keep the market image.".into(),
            "Recover gaps through the retransmission service (RTS, username: your participant id) and the refresh channels.".into(),
            "Use the primary site's RTS at least once (the exchange sees your RTS logons and requests, not your multicast).".into(),
        ],
        (ParticipantKind::InformationVendor, PhaseSite::None) => vec![
            "Watch the DR channel for the Disaster Recovery Signal; expect a Sequence Reset.".into(),
            "Do not publish a stale image to your clients while the feed is down.".into(),
        ],
        (ParticipantKind::InformationVendor, PhaseSite::Backup) => vec![
            "On the DR signal, rebuild the market image from the refresh channels of the backup site.".into(),
            "Use the backup site's RTS endpoint for retransmissions: the exchange scores your recovery from your RTS logon and requests there after the DR signal.".into(),
        ],
        (_, PhaseSite::Primary) => vec![
            format!("Look up your gateway through the Lookup Service (endpoints 1 and 2) and log in to {plat} at the primary site."),
            "Simulate daily operations: enter, amend and cancel orders; check executions.".into(),
            "Keep your session sequence numbers: they carry over to the backup site.".into(),
        ],
        (_, PhaseSite::None) => vec![
            "Your session to the primary site will be disconnected. Do not change your sequence numbers.".into(),
            "Retry through the Lookup Service ladder (all four endpoints, in order) until the backup site answers.".into(),
        ],
        (_, PhaseSite::Backup) => vec![
            format!("Log in to {plat} at the backup site through the Lookup Service (endpoints 3 and 4 answer now)."),
            "Log on with your next sequence numbers (not 1); receive the replay of messages you missed.".into(),
            "Check your order status, then simulate daily operations again.".into(),
        ],
    }
}

/// What a FIX session must do in a phase, on top of [`duties`].
pub fn fix_duties(site: PhaseSite) -> Vec<String> {
    match site {
        PhaseSite::Primary => vec![
            "Look up the FIX gateway (Protocol Type 2) and log on with MsgSeqNum 1 and NextExpectedMsgSeqNum 1 at the start of the day.".into(),
        ],
        PhaseSite::None => vec![
            "Keep your FIX session store: MsgSeqNum continues at the backup site.".into(),
        ],
        PhaseSite::Backup => vec![
            "Look up the FIX gateway again (Protocol Type 2) and log on with your next MsgSeqNum and NextExpectedMsgSeqNum (789), without ResetSeqNumFlag; the exchange replays what you missed (PossDupFlag=Y, gaps as SequenceReset-GapFill). Ask for anything still missing with a ResendRequest.".into(),
        ],
    }
}

fn rundown_markdown(session: &Session, reg: &Registration, pack: &CredentialPack) -> String {
    use std::fmt::Write as _;
    let mut s = String::new();
    let _ = writeln!(s, "# {}", session.name);
    let _ = writeln!(
        s,
        "\nRundown for **{}** ({}), registration #{}. Date: {} ({}).\n",
        reg.firm,
        kind_name(reg.kind),
        reg.number,
        session.date,
        session.time_zone.name()
    );
    if !session.description.is_empty() {
        let _ = writeln!(s, "{}\n", session.description.trim());
    }
    let _ = writeln!(s, "## Your credentials\n");
    if reg.comp_ids.is_empty() {
        let _ = writeln!(
            s,
            "- Market data only: no order-entry Comp ID (information vendor)."
        );
    }
    for c in &reg.comp_ids {
        match c.protocol {
            Protocol::Binary => {
                let _ = writeln!(
                    s,
                    "- {} binary (OCG-C): Comp ID `{}`, initial password `{}`",
                    platform_name(c.platform),
                    c.comp_id,
                    c.password
                );
            }
            Protocol::Fix => {
                let _ = writeln!(
                    s,
                    "- {} FIX 5.0 SP2: SenderCompID `{}`, TargetCompID `{}`, initial password `{}`",
                    platform_name(c.platform),
                    c.comp_id,
                    FIX_TARGET_COMP_ID,
                    c.password
                );
            }
        }
    }
    if !reg.broker_ids.is_empty() {
        let ids: Vec<String> = reg.broker_ids.iter().map(|b| b.to_string()).collect();
        let _ = writeln!(s, "- Broker ids: {}", ids.join(", "));
    }
    let names = [
        "primary site, primary",
        "primary site, mirror",
        "backup site, primary",
        "backup site, mirror",
    ];
    let _ = writeln!(s, "\n## Lookup Service (in this order)\n");
    for (i, e) in pack.lookup_endpoints.iter().enumerate() {
        let _ = writeln!(
            s,
            "{}. `{e}` ({})",
            i + 1,
            names.get(i).copied().unwrap_or("")
        );
    }
    for f in &pack.fix_sessions {
        let _ = writeln!(
            s,
            "\n## FIX session `{}` -> `{}`\n\n\
             - BeginString `{}`, DefaultApplVerID (1137) `{}`; the password goes encrypted with the \
             exchange's public key (1400/1402), as for the binary Logon.\n\
             - Find the FIX gateway through the same Lookup Service endpoints, in the same order: a \
             Lookup Request with your FIX Comp ID `{}` in the header and Protocol Type {} (FIX) \
             answers with the FIX gateway's address.\n\
             - Logon carries NextExpectedMsgSeqNum (789); ResetSeqNumFlag (141) is not used: your \
             MsgSeqNum continues for the whole day, across the failover.",
            f.sender_comp_id,
            f.target_comp_id,
            f.begin_string,
            f.default_appl_ver_id,
            f.sender_comp_id,
            f.lookup_protocol_type
        );
    }
    if !pack.omd_channels.is_empty() || !pack.rts_endpoints.is_empty() {
        let _ = writeln!(s, "\n## Market data\n");
        for c in &pack.omd_channels {
            let _ = writeln!(
                s,
                "- {} channel {} ({}): line A `{}`, line B `{}`",
                c.platform, c.id, c.product, c.line_a, c.line_b
            );
        }
        for (i, r) in pack.rts_endpoints.iter().enumerate() {
            let site = if i == 0 {
                "primary site"
            } else {
                "backup site"
            };
            let _ = writeln!(s, "- Retransmission service ({site}): `{r}`");
        }
    }
    let _ = writeln!(s, "\n## Schedule and what to do\n");
    for p in &session.phases {
        let _ = writeln!(s, "### {} to {}: {}\n", p.start_label, p.end_label, p.title);
        for f in &p.focus {
            let _ = writeln!(s, "- {f}");
        }
        let _ = writeln!(s, "\nYou:\n");
        for d in duties(session, reg.kind, p.site) {
            let _ = writeln!(s, "- {d}");
        }
        if !pack.fix_sessions.is_empty() {
            for d in fix_duties(p.site) {
                let _ = writeln!(s, "- FIX: {d}");
            }
        }
        if session.failover_phase().is_some_and(|f| f.id == p.id) {
            let _ = writeln!(
                s,
                "- The failover ({:?}) starts at {}; resting orders are {}; sequence numbers {}.",
                session.failover.mode,
                session.failover.at_label,
                match session.failover.orders {
                    crate::session::OrderSurvival::Keep => "kept",
                    crate::session::OrderSurvival::Cancel => "cancelled",
                },
                match session.failover.sequence {
                    crate::session::SequenceMode::Continue => "continue",
                    crate::session::SequenceMode::Reset => "restart at 1",
                }
            );
        }
        let _ = writeln!(s);
    }
    let _ = writeln!(
        s,
        "## How you are scored\n\nEvery check is computed from what the exchange observed: your lookups, logons, \
         sequence numbers, orders and fills at each site. See the scorecard after the session."
    );
    s
}
