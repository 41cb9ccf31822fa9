//! twinsite-cluster: a replicated, durable command journal across three nodes.

pub mod wal;
