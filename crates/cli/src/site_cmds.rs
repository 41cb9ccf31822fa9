//! `twinsite serve` and `twinsite register`, and runtime helpers.

use anyhow::Context;
use std::path::Path;
use twinsite_drill::{issue, RegistrationRequest, Registry, Session};
use twinsite_site::config::SiteConfig;
use twinsite_site::gateway::wall_clock;

pub fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("start the async runtime")
}

/// The runtime of one cluster node process (`twinsite node`): a single-threaded runtime
/// unless `TWINSITE_NODE_RUNTIME=multi_thread`. A replicated order is a chain of hand-offs
/// between tasks (gateway, journal core, replication, state machine); on one thread each is a
/// queue push, on a multi-threaded runtime many become cross-thread wake-ups (futex, and an
/// idle worker woken to steal). The WAL writer keeps its own thread either way.
pub fn node_runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    match std::env::var("TWINSITE_NODE_RUNTIME").as_deref() {
        Ok("multi_thread") => runtime(),
        _ => tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .context("start the async runtime"),
    }
}

/// Structured logs to stderr; `RUST_LOG` selects (default: warnings).
pub fn init_logs() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| {
        tracing_subscriber::EnvFilter::new("warn,openraft=error,twinsite_site::gateway=error")
    });
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}

pub async fn serve(config: &Path) -> anyhow::Result<()> {
    let cfg = SiteConfig::load(config)?;
    let (site, feed) = twinsite_site::feed::start_with_feed(cfg).await?;
    println!("twinsite site running");
    for (i, a) in site.lookup_addrs.iter().enumerate() {
        println!("  lookup service {}: {a}", i + 1);
    }
    println!(
        "  OCG-C gateway primary {}, mirror {}",
        site.gateway_primary, site.gateway_mirror
    );
    if feed.is_some() {
        println!("  OMD-C feed publishing on the configured multicast channels");
    }
    println!("  Ctrl-C to stop");
    tokio::signal::ctrl_c().await?;
    site.shutdown();
    Ok(())
}

pub fn register(
    session: &Path,
    out: &Path,
    firm: String,
    kind: String,
    broker_ids: Vec<u32>,
    contact: String,
    protocols: Vec<String>,
) -> anyhow::Result<()> {
    let s = Session::load(session)?;
    std::fs::create_dir_all(out)?;
    let mut registry = Registry::open(&out.join("registrations.jsonl"), &s)?;
    let reg = registry.register(
        RegistrationRequest {
            firm,
            kind,
            broker_ids,
            contact,
            source_ips: vec![],
            protocols,
        },
        wall_clock(),
    )?;
    let key = out.join("ocg-key.pem");
    if !key.exists() {
        crate::demo::keygen(&key)?;
    }
    let pem = twinsite_drill::public_key_pem(&key)?;
    let pack = issue(&s, &reg, &pem, None);
    let dir = out.join("participants").join(reg.id());
    std::fs::create_dir_all(&dir)?;
    std::fs::write(
        dir.join("credentials.json"),
        serde_json::to_string_pretty(&pack)?,
    )?;
    println!("registered {} as {}", reg.firm, reg.id());
    for c in &reg.comp_ids {
        println!(
            "  Comp ID {} ({} {})",
            c.comp_id,
            twinsite_site::config::platform_name(c.platform),
            c.protocol.name()
        );
    }
    println!("  credentials: {}", dir.join("credentials.json").display());
    Ok(())
}

/// `twinsite failover`: ask a running session (`twinsite run` / `demo`) to fail over now, through
/// its operations console's API with the operator token.
pub fn failover(console: &str, token: &str, crash: bool) -> anyhow::Result<()> {
    use std::io::{Read, Write};
    let hostport = console.trim_start_matches("http://").trim_end_matches('/');
    let mut s = std::net::TcpStream::connect(hostport)
        .with_context(|| format!("cannot reach the console at {console}"))?;
    let action = if crash {
        "crash-failover"
    } else {
        "failover-now"
    };
    let body = r#"{"confirm":true}"#;
    let req = format!(
        "POST /api/actions/{action} HTTP/1.1\r\nHost: {hostport}\r\nAuthorization: Bearer {token}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    s.write_all(req.as_bytes())?;
    let mut resp = String::new();
    s.read_to_string(&mut resp)?;
    let status = resp.split_whitespace().nth(1).unwrap_or("?").to_string();
    let text = resp
        .split("\r\n\r\n")
        .nth(1)
        .unwrap_or("")
        .trim()
        .to_string();
    anyhow::ensure!(status == "200", "the console refused ({status}): {text}");
    println!("{action}: {text}");
    Ok(())
}
