//! `twinsite feed --config FILE`: the reference OMD feed handler (`FeedHandler`) on a live
//! site's multicast groups, RTS and refresh channels (from the site config's
//! `[market_data]`), printing the rebuilt books: the top price levels of each security (from
//! the order book, the aggregate book, or OMD-CC top of book) and its trade count.

use anyhow::{Context, Result};
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;
use twinsite_site::config::SiteConfig;
use twinsite_site::feed::{self, book_report, ChannelKind, FeedClient};

pub struct Opts {
    /// Print every this many milliseconds.
    pub interval_ms: u64,
    /// Price levels per side.
    pub levels: usize,
    /// Print this many times, then exit (0: until interrupted).
    pub count: u64,
    /// RTS endpoints (the site's `market_data.rts` when empty), tried in turn.
    pub rts: Vec<SocketAddr>,
    /// RTS username.
    pub user: String,
}

pub fn run(config: &Path, opts: Opts) -> Result<()> {
    let cfg = SiteConfig::load(config)?;
    let md = cfg
        .market_data
        .clone()
        .with_context(|| format!("{}: no [market_data] section", config.display()))?;
    let channels: Vec<u16> = feed::plan(&md)?
        .into_iter()
        .filter(|(_, k)| matches!(k, ChannelKind::RealTime(..)))
        .map(|(c, _)| c.id)
        .collect();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("start the async runtime")?;
    rt.block_on(async move {
        let mut client = FeedClient::new(&md, &opts.user)?;
        if !opts.rts.is_empty() {
            client.rts = opts.rts.clone();
        }
        let mut printed = 0u64;
        loop {
            let until = tokio::time::Instant::now() + Duration::from_millis(opts.interval_ms);
            client.run_until(until, |_| false).await;
            println!(
                "--- {} datagrams received; handler events {:?}",
                client.received, client.events
            );
            print!("{}", book_report(&client.handler, &channels, opts.levels));
            printed += 1;
            if opts.count > 0 && printed >= opts.count {
                return Ok(());
            }
        }
    })
}
