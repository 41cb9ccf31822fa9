//! twinsite-drill
