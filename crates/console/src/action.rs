//! What an operator asks of the runtime, and the runtime's answer.
//!
//! The console sends an [`OperatorAction`] on an `mpsc` channel and waits (bounded) for the
//! answer on the action's oneshot; the runtime applies the same rules and errors as the CLI
//! (`twinsite register`, the schedule) and answers with [`ActionOutcome`]. The console records
//! every action, with who, when and the outcome, in the activity log it shows.

use serde::{Deserialize, Serialize};
use std::net::IpAddr;
use tokio::sync::oneshot;

/// Who asked, and when.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ActionMeta {
    /// "operator:NAME" (the name given at sign-in) or "operator" (bearer token).
    pub who: String,
    /// Wall clock, ms since the Unix epoch.
    pub at_ms: u64,
}

/// A registration, as typed into the console: the same fields as `twinsite register`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegisterRequest {
    pub firm: String,
    /// "EP", "CCEP" or "IV" (the runtime checks it).
    pub kind: String,
    #[serde(default)]
    pub broker_ids: Vec<u32>,
    #[serde(default)]
    pub contact: String,
    #[serde(default)]
    pub source_ips: Vec<IpAddr>,
    /// Order-entry protocols: "binary", "fix" or both; binary when empty.
    #[serde(default)]
    pub protocols: Vec<String>,
}

/// The runtime's answer when it did what was asked.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ActionOk {
    /// One line for the operator ("registered P003 Acme Securities").
    pub message: String,
    /// Anything else worth showing (for a registration: the participant id and Comp IDs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<serde_json::Value>,
}

impl ActionOk {
    pub fn new(message: impl Into<String>) -> ActionOk {
        ActionOk {
            message: message.into(),
            data: None,
        }
    }
}

/// `Err` carries the refusal in words, exactly as the runtime's rules put it
/// ("registration closed at 2023-11-20 17:00", "firm already registered"...).
pub type ActionOutcome = Result<ActionOk, String>;

/// One operator action. Answer every one through `reply` (dropping it shows as an error).
#[derive(Debug)]
pub enum OperatorAction {
    Register {
        request: RegisterRequest,
        by: ActionMeta,
        reply: oneshot::Sender<ActionOutcome>,
    },
    /// Start the scheduled failover now.
    FailoverNow {
        by: ActionMeta,
        reply: oneshot::Sender<ActionOutcome>,
    },
    /// Kill the primary site now; the backup and the witness elect.
    CrashFailover {
        by: ActionMeta,
        reply: oneshot::Sender<ActionOutcome>,
    },
    /// Hold the schedule.
    Pause {
        by: ActionMeta,
        reply: oneshot::Sender<ActionOutcome>,
    },
    /// Carry on with the schedule.
    Resume {
        by: ActionMeta,
        reply: oneshot::Sender<ActionOutcome>,
    },
}

impl OperatorAction {
    /// Short name, as in the URL (`failover-now`).
    pub fn name(&self) -> &'static str {
        match self {
            OperatorAction::Register { .. } => "register",
            OperatorAction::FailoverNow { .. } => "failover-now",
            OperatorAction::CrashFailover { .. } => "crash-failover",
            OperatorAction::Pause { .. } => "pause",
            OperatorAction::Resume { .. } => "resume",
        }
    }

    pub fn by(&self) -> &ActionMeta {
        match self {
            OperatorAction::Register { by, .. }
            | OperatorAction::FailoverNow { by, .. }
            | OperatorAction::CrashFailover { by, .. }
            | OperatorAction::Pause { by, .. }
            | OperatorAction::Resume { by, .. } => by,
        }
    }

    /// Answer the action (the console may have given up waiting; that is not an error here).
    pub fn answer(self, outcome: ActionOutcome) {
        let reply = match self {
            OperatorAction::Register { reply, .. }
            | OperatorAction::FailoverNow { reply, .. }
            | OperatorAction::CrashFailover { reply, .. }
            | OperatorAction::Pause { reply, .. }
            | OperatorAction::Resume { reply, .. } => reply,
        };
        let _ = reply.send(outcome);
    }
}
