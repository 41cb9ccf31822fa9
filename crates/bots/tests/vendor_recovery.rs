//! The good information vendor against a quiet backup site: after the failover the backup site
//! publishes its Sequence Resets and image and then nothing but heartbeats (no trading yet), so a
//! vendor that uses the RTS only when it loses a data packet never asks the backup site for
//! anything, and `market_image_recovered` failed although the vendor followed the DR signal and
//! logged on there (the demo flake of issue 8). The vendor now checks the backup site's RTS on
//! purpose once its image is rebuilt. Deterministic: the vendor simulates no loss at all, and
//! the backup site publishes no data after its image.

use std::net::SocketAddr;
use std::time::Duration;
use tokio::sync::{broadcast, mpsc};
use twinsite_bots::{spawn_vendor, VendorConfig};
use twinsite_core::{ParticipantKind, Site};
use twinsite_drill::{ActivityLog, Clock, ExchangeChecks, Participant};
use twinsite_site::config::{ChannelEntry, MarketDataSection, SiteConfig};
use twinsite_site::feed::{self, FeedActivity, FeedInput};
use twinsite_site::gateway::{self, wall_clock};

const T: Duration = Duration::from_secs(30);
const USER: &str = "IV0001";

/// OMD-C standard with refresh, OMD-CC SSE with refresh, the DR channel: groups of this
/// process on a free port.
mod common;
use common::*;

fn market_data() -> MarketDataSection {
    let port = std::net::UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let pid = (std::process::id() % 200) as u8 + 20;
    let group = |ch: u8, line: u8| -> SocketAddr {
        format!("239.{pid}.77.{}:{port}", ch * 2 + line)
            .parse()
            .unwrap()
    };
    let entry = |id: u16, product: &str, ch: u8| ChannelEntry {
        id,
        product: product.into(),
        line_a: group(ch, 0),
        line_b: group(ch, 1),
    };
    MarketDataSection {
        interface: "127.0.0.1".parse().unwrap(),
        rts: "127.0.0.1:0".parse().unwrap(),
        channels: vec![
            entry(1, "standard", 1),
            entry(2, "refresh", 2),
            entry(3, "dr", 3),
            entry(11, "cc-sse", 4),
            entry(12, "refresh", 5),
        ],
        pcap: None,
    }
}

fn site_config() -> SiteConfig {
    toml::from_str(&format!(
        r#"
        [site]
        name = "primary"
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
    .unwrap()
}

/// Feed records of a site into the log until `f` accepts one (bounded); the records are kept.
async fn record_until(
    rx: &mut broadcast::Receiver<FeedActivity>,
    site: Site,
    log: &mut ActivityLog,
    seen: &mut Vec<String>,
    mut f: impl FnMut(&FeedActivity) -> bool,
) {
    let deadline = tokio::time::Instant::now() + T;
    loop {
        match tokio::time::timeout_at(deadline, rx.recv()).await {
            Ok(Ok(a)) => {
                log.record_feed(site, &a);
                seen.push(format!("{a:?}"));
                if f(&a) {
                    return;
                }
            }
            Ok(Err(broadcast::error::RecvError::Lagged(n))) => {
                log.record_lagged(site, wall_clock(), n)
            }
            other => panic!("not seen at the {site:?} site: {other:?}; saw {seen:#?}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_vendor_uses_a_quiet_backup_sites_rts_after_the_dr_signal() {
    let md = market_data();
    let users = vec![USER.to_string()];
    let (tx_a, rx_a) = mpsc::unbounded_channel();
    let (tx_b, rx_b) = mpsc::unbounded_channel();
    let feed_a = feed::run_feed(md.clone(), users.clone(), rx_a)
        .await
        .unwrap();
    let feed_b = feed::run_feed(md.clone(), users, rx_b).await.unwrap();
    let mut act_a = feed_a.subscribe();
    let mut act_b = feed_b.subscribe();
    let (exchange, _, _) = gateway::build(&site_config(), wall_clock()).unwrap();
    let engine = exchange.engine;

    let s = session();
    let mut log = ActivityLog::new(
        &s,
        Clock::new(&s, wall_clock(), 200),
        vec![Participant {
            id: USER.into(),
            firm: "Quiet Data".into(),
            kind: ParticipantKind::InformationVendor,
            comp_ids: vec![],
        }],
    );
    let mut seen = Vec::new();

    // The primary site publishes its image; the vendor (no simulated loss) logs on to its RTS
    // and rebuilds from refresh.
    tx_a.send(FeedInput::image_of(&engine)).unwrap();
    tx_a.send(FeedInput::Active {
        failover: false,
        now: wall_clock(),
    })
    .unwrap();
    let vendor = spawn_vendor(
        VendorConfig::new(
            "Quiet Data",
            USER,
            md.clone(),
            vec![feed_a.rts_addr, feed_b.rts_addr],
        )
        .with_gap_every(None),
    )
    .await
    .unwrap();
    record_until(
        &mut act_a,
        Site::Primary,
        &mut log,
        &mut seen,
        |a| matches!(a, FeedActivity::RtsLogon { user: Some(u), status: 0, .. } if u == USER),
    )
    .await;
    vendor
        .wait_until(T, |c| c.live.contains(&1) && c.live.contains(&11))
        .await
        .unwrap();

    // Failover: the primary falls silent; the backup site signals DR, resets every channel,
    // publishes the replicated image, and then nothing (no trading): no data packet to lose.
    log.failover_started(wall_clock());
    tx_a.send(FeedInput::Standby { now: wall_clock() }).unwrap();
    tx_b.send(FeedInput::image_of(&engine)).unwrap();
    tx_b.send(FeedInput::Active {
        failover: true,
        now: wall_clock(),
    })
    .unwrap();
    log.backup_opened(wall_clock());

    // The backup site sees the vendor log on and ask for a retransmission, which it serves.
    record_until(
        &mut act_b,
        Site::Backup,
        &mut log,
        &mut seen,
        |a| matches!(a, FeedActivity::RtsRequest { user: Some(u), status: 0, .. } if u == USER),
    )
    .await;
    let c = vendor
        .wait_until(T, |c| c.backup_rts_checked == [1, 11])
        .await
        .unwrap();
    assert_eq!(c.rts_site, 1);
    assert_eq!(c.event("gap"), 0, "the vendor lost nothing: {c:?}");
    vendor.stop().await;
    while let Ok(a) = act_b.try_recv() {
        log.record_feed(Site::Backup, &a);
    }

    let r = log.report(&ExchangeChecks {
        rto_ms: None,
        acked_orders_lost: 0,
        state_hashes_equal: true,
        detail: String::new(),
    });
    let p = r.participant(USER).unwrap();
    let img = p.check("market_image_recovered", "backup").unwrap();
    assert!(img.passed, "{img:?}\n{seen:#?}");
    assert!(
        img.detail.contains("logged on to the backup site's RTS")
            && img
                .detail
                .contains("retransmission requests served there (channels 1, 11)"),
        "{img:?}"
    );
    feed_a.shutdown();
    feed_b.shutdown();
}
