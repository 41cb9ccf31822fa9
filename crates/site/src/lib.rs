//! twinsite-site
