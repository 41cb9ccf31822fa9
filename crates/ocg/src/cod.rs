//! Cancel on Disconnect bookkeeping (reference §1.13). A client-side drop (TCP loss without
//! Logout, heartbeat loss) arms a timer of the Comp ID's configured delay; a logon before it
//! expires disarms it; expiry asks the engine to cancel the Comp ID's orders. An exchange-side
//! outage never arms it.

use serde::{Deserialize, Serialize};
use twinsite_core::Timestamp;

/// Why a session ended, as far as Cancel on Disconnect and the gateway care.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum DownCause {
    /// The participant logged out: no cancel.
    ClientLogout,
    /// TCP dropped without Logout.
    ClientDropped,
    /// No answer to a Test Request.
    HeartbeatTimeout,
    /// The exchange logged the participant out or dropped it for a protocol violation (for
    /// example a sequence number too low, or a second concurrent logon).
    ProtocolViolation,
    /// The exchange logged the session out in good order (service shutdown).
    ExchangeLogout,
    /// An OCG-C outage or site failover: no cancel.
    ExchangeOutage,
}

impl DownCause {
    /// Does this cause start the Cancel on Disconnect delay?
    pub fn arms_cancel_on_disconnect(self) -> bool {
        matches!(
            self,
            DownCause::ClientDropped | DownCause::HeartbeatTimeout | DownCause::ProtocolViolation
        )
    }
}

/// The per-Comp ID timer. Its deadline is part of the replicated session state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct CancelOnDisconnect {
    /// `None`: the Comp ID has no Cancel on Disconnect.
    pub delay_ns: Option<u64>,
    pub deadline: Option<Timestamp>,
}

impl CancelOnDisconnect {
    pub fn on_session_down(&mut self, cause: DownCause, now: Timestamp) {
        if let (Some(delay), true) = (self.delay_ns, cause.arms_cancel_on_disconnect()) {
            self.deadline = Some(now.plus_nanos(delay));
        }
    }
    pub fn on_logon(&mut self) {
        self.deadline = None;
    }
    /// True once, when the delay has expired.
    pub fn poll(&mut self, now: Timestamp) -> bool {
        match self.deadline {
            Some(d) if now >= d => {
                self.deadline = None;
                true
            }
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fires_after_client_drop_but_not_after_logon_or_outage() {
        let mut c = CancelOnDisconnect {
            delay_ns: Some(10),
            deadline: None,
        };
        c.on_session_down(DownCause::ClientDropped, Timestamp(100));
        assert!(!c.poll(Timestamp(109)));
        assert!(c.poll(Timestamp(110)));
        assert!(!c.poll(Timestamp(111)), "fires once");
        c.on_session_down(DownCause::HeartbeatTimeout, Timestamp(200));
        c.on_logon();
        assert!(!c.poll(Timestamp(300)));
        c.on_session_down(DownCause::ExchangeOutage, Timestamp(400));
        c.on_session_down(DownCause::ClientLogout, Timestamp(400));
        assert!(!c.poll(Timestamp(500)));
        let mut off = CancelOnDisconnect::default();
        off.on_session_down(DownCause::ClientDropped, Timestamp(0));
        assert!(!off.poll(Timestamp(u64::MAX)));
    }
}
