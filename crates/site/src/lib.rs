//! twinsite-site: one site of the exchange.
//!
//! * [`exchange`]: the deterministic core (engine + message mapping), no IO.
//! * [`config`]: the site configuration file.
//! * [`gateway`]: the tokio runtime: Lookup Service, OCG-C gateways, the core loop.
//! * [`feed`]: what the core hands the market-data feed.

pub mod client;
pub mod config;
pub mod exchange;
pub mod feed;
pub mod gateway;
pub mod replica;
