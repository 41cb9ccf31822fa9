//! twinsite-fix
