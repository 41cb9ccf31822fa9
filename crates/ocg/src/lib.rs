//! twinsite-ocg
