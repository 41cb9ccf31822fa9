//! twinsite-engine
