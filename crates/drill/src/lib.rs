//! twinsite-drill: the practice session around the exchange.
//!
//! * [`session`]: the session file (phases, access, failover step, market data), checked.
//! * [`clock`]: session time and wall time under `--speed N`.
//! * [`registry`]: registration, credential packs, rundowns, the site's participant table.
//! * [`activity`]: what the exchange observed, per participant; scorecards.
//! * [`report`]: report.json, report.html, participants.csv.

pub mod activity;
pub mod clock;
pub mod registry;
pub mod report;
pub mod session;

pub use activity::{ActivityLog, ExchangeChecks, LogonDetail, Participant};
pub use clock::{actions, logon_windows, Action, Clock, LogonWindows, Step, StepKind};
pub use registry::{
    issue, participant_entries, public_key_pem, rts_usernames, CredentialPack, RegisterError,
    Registration, RegistrationRequest, Registry,
};
pub use report::Report;
pub use session::{Session, SessionError};
