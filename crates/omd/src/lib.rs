//! twinsite-omd
