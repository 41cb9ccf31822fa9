//! twinsite-site: one site of the exchange.
//!
//! * [`exchange`]: the deterministic core (engine + message mapping), no IO.
//! * [`config`]: the site configuration file.
//! * [`gateway`]: the tokio runtime: Lookup Service, OCG-C gateways, the core loop.
//! * [`fix_gateway`]: the FIX acceptor sessions and the FIX <-> OCG-C message mapping.
//! * [`feed`]: the market-data feed (OMD-C / OMD-CC multicast, RTS, refresh, DR, pcap) and
//!   the reference handler on a live site; [`feed_map`]: engine events to OMD; [`pcap`].
//! * [`heap`]: the process's heap settings (no heap-growth system call on an order's path).

pub mod client;
pub mod cluster_config;
pub mod config;
pub mod exchange;
pub mod feed;
pub mod feed_map;
pub mod fix_gateway;
pub mod gateway;
pub mod heap;
pub mod pcap;
pub mod replica;
