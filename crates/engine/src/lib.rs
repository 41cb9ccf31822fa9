//! twinsite-engine: the OTP-C matching engine as a deterministic state machine.
//!
//! ```
//! use twinsite_engine::{Engine, EngineConfig, Command, Phase, refdata};
//! use twinsite_core::Timestamp;
//! let mut e = Engine::new(EngineConfig::default(), refdata::sample());
//! let ev = e.apply(&Command::SetPhase(Phase::ContinuousMorning), Timestamp(1));
//! assert_eq!(e.phase(), Phase::ContinuousMorning);
//! assert!(!ev.is_empty());
//! ```

pub mod book;
pub mod china;
pub mod engine;
pub mod hash;
pub mod ids;
pub mod oracle;
pub mod refdata;
pub mod schedule;
pub mod types;

pub use china::{Board, CcPhase, CcSchedule, ChinaConnect};
pub use engine::{Engine, EngineConfig, SecState};
pub use refdata::{Security, SpreadTable};
pub use schedule::{Schedule, Transition};
pub use types::*;
