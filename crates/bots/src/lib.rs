//! twinsite-bots
