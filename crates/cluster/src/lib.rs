//! twinsite-cluster
