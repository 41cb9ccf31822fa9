//! What the bots' integration tests share: the test key, the PS2 session, registration through
//! the drill's registry, a site config on free ports, a port nobody listens on.
#![allow(dead_code)] // each test binary uses its own subset

use std::net::SocketAddr;
use std::path::PathBuf;
use twinsite_core::Timestamp;
use twinsite_drill::registry::{Registration, RegistrationRequest, Registry};
use twinsite_drill::session::Session;
use twinsite_site::config::{ParticipantEntry, SiteConfig};
use twinsite_site::gateway;

pub fn key_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../site/tests/data/test-key.pem")
}

pub fn session() -> Session {
    Session::load(
        &PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../sessions/ps2-2023-11-25.toml"),
    )
    .unwrap()
}

/// Register firms through the drill's registry (before the PS2 deadline).
pub fn register(firms: &[(&str, u32)]) -> Vec<Registration> {
    let dir = std::env::temp_dir().join(format!(
        "twinsite-bots-{}-{}",
        std::process::id(),
        gateway::wall_clock().0
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let mut r = Registry::open(&dir.join("reg.jsonl"), &session()).unwrap();
    for (firm, broker) in firms {
        r.register(
            RegistrationRequest {
                firm: (*firm).into(),
                kind: "EP".into(),
                broker_ids: vec![*broker],
                contact: "desk".into(),
                source_ips: vec![],
                protocols: vec![],
            },
            Timestamp::from_hkt(2023, 11, 20, 9, 0, 0),
        )
        .unwrap();
    }
    r.registrations().to_vec()
}

pub fn site_config(name: &str, participants: Vec<ParticipantEntry>) -> SiteConfig {
    // From TOML, so optional sections added to the site config later keep their defaults.
    let mut cfg: SiteConfig = toml::from_str(&format!(
        r#"
        [site]
        name = "{name}"
        lookup = ["127.0.0.1:0", "127.0.0.1:0"]
        gateway_primary = "127.0.0.1:0"
        gateway_mirror = "127.0.0.1:0"
        keys = [{key:?}]

        [session]
        heartbeat_ms = 1000
        password_tolerance_secs = 120
        throttle = true
        "#,
        key = key_path().display().to_string()
    ))
    .unwrap();
    cfg.participants = participants;
    cfg
}

/// A loopback address nobody listens on (a dead gateway).
pub async fn closed_port() -> SocketAddr {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    l.local_addr().unwrap()
}
