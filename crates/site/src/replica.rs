//! The replicated state: what every node (primary site, backup site, witness) applies from the
//! committed journal, so the standby is hot.
//!
//! The active site executes each input first (it must answer quickly and assign outbound
//! sequence numbers in the order it sends), holds every byte it would send until the journal
//! entry carrying that input is committed, and proposes entries that carry:
//! * the inputs, in the order the active site applied them (participant business messages and
//!   engine commands with their timestamps): every node re-runs them on its own engine, so all
//!   engines have the same state hash at every index;
//! * session deltas: each Comp ID's sequence numbers, credentials and the outbound business
//!   messages exactly as stored for replay (frames with their sequence numbers), so a participant
//!   continues its session at the backup and gets the replay it is owed.

use crate::exchange::Exchange;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use twinsite_core::{CompId, Site, Timestamp};
use twinsite_engine::Command;
use twinsite_fix::session::StoredMessage as FixStoredMessage;
use twinsite_fix::SessionState as FixSessionState;
use twinsite_ocg::password::Credentials;
use twinsite_ocg::session::StoredMessage;
use twinsite_ocg::{DurableSession, Message};

/// One input the active site applied.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Input {
    Business {
        comp: CompId,
        seq: u32,
        msg: Box<Message>,
    },
    Engine(Command),
    /// The failover purge of every resting order (`[failover] orders = "cancel"`):
    /// [`Exchange::purge_orders`].
    PurgeOrders,
}

/// A Comp ID's durable session after the entry's inputs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SessionDelta {
    pub comp: CompId,
    pub in_next: u32,
    pub out_next: u32,
    pub credentials: Credentials,
    pub poss_resend_pending: bool,
    /// Business messages stored since the previous delta, ascending.
    pub stored: Vec<StoredMessage>,
}

/// A FIX Comp ID's durable session after the entry's inputs: sequence numbers and the
/// outbound business messages stored since the previous delta (for resends).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FixSessionDelta {
    pub comp: CompId,
    pub next_inbound_seq: u64,
    pub next_outbound_seq: u64,
    pub stored: Vec<FixStoredMessage>,
}

/// The FIX session delta of `s` against the outbound number last synced.
pub fn fix_delta(comp: CompId, s: &FixSessionState, synced_out_next: u64) -> FixSessionDelta {
    FixSessionDelta {
        comp,
        next_inbound_seq: s.next_inbound_seq,
        next_outbound_seq: s.next_outbound_seq,
        // Ascending by number: only the tail since the last delta is looked at.
        stored: s
            .outbound
            .range(s.outbound.partition_point(|m| m.seq < synced_out_next)..)
            .cloned()
            .collect(),
    }
}

/// One journal entry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Entry {
    Batch {
        inputs: Vec<(Timestamp, Input)>,
        sessions: Vec<SessionDelta>,
        /// FIX sessions changed by the entry.
        #[serde(default)]
        fix_sessions: Vec<FixSessionDelta>,
    },
    /// A site became active (failover marker).
    Active { site: Site, at: Timestamp },
    /// The failover modes a site applied once on becoming active after a failover (the same
    /// proposal carries its `Active` marker before it and the purge's batch after it):
    /// `reset_to` restarts every session's inbound and outbound sequences at that number, with
    /// earlier messages unavailable for replay; `orders_cancelled` says the batch that follows
    /// purges every resting order.
    FailoverModes {
        orders_cancelled: bool,
        reset_to: Option<u32>,
        at: Timestamp,
    },
}

/// Encode entries for the journal.
pub fn encode(entries: &[Entry]) -> Vec<u8> {
    postcard::to_allocvec(entries).expect("journal entry encodes")
}

/// Decode a journal command.
pub fn decode(bytes: &[u8]) -> Result<Vec<Entry>, String> {
    postcard::from_bytes(bytes).map_err(|e| format!("journal entry does not decode: {e}"))
}

/// The replicated state machine.
pub struct Replica {
    pub exchange: Exchange,
    pub sessions: BTreeMap<CompId, DurableSession>,
    /// The FIX Comp IDs' durable sessions.
    pub fix_sessions: BTreeMap<CompId, FixSessionState>,
    pub active: Option<(Site, Timestamp)>,
    /// Every site activation seen, in order.
    pub activations: Vec<(Site, Timestamp)>,
    pub inputs_applied: u64,
    /// A site became active after a failover and has not yet applied the failover modes
    /// ([`Entry::FailoverModes`]): the next site to become active applies them.
    pub failover_pending: bool,
    /// Bad entries seen (never applied).
    pub rejected_entries: u64,
    pub retained_outbound_max: usize,
    /// Room reserved in each Comp ID's outbound log (`[session] reserve_outbound`), again after
    /// a snapshot restore or a sequence reset, so applying an entry never reallocates it.
    reserve_outbound: usize,
}

impl Replica {
    pub fn new(exchange: Exchange, sessions: BTreeMap<CompId, DurableSession>) -> Replica {
        Replica {
            exchange,
            sessions,
            fix_sessions: BTreeMap::new(),
            active: None,
            activations: Vec::new(),
            inputs_applied: 0,
            failover_pending: false,
            rejected_entries: 0,
            retained_outbound_max: 1_000_000,
            reserve_outbound: 0,
        }
    }

    /// Reserve room for `n` messages in every Comp ID's outbound log, now and after every
    /// snapshot restore or sequence reset.
    pub fn reserve_outbound(&mut self, n: usize) {
        self.reserve_outbound = n;
        self.reserve_logs();
    }

    fn reserve_logs(&mut self) {
        let (n, max) = (self.reserve_outbound, self.retained_outbound_max);
        for s in self.sessions.values_mut() {
            s.outbound.reserve(n, max);
        }
        for s in self.fix_sessions.values_mut() {
            s.outbound.reserve(
                n.min(max.saturating_add(1))
                    .saturating_sub(s.outbound.len()),
            );
        }
    }

    fn apply_entry(&mut self, e: Entry) {
        match e {
            Entry::Batch {
                inputs,
                sessions,
                fix_sessions,
            } => {
                for (now, input) in inputs {
                    self.inputs_applied += 1;
                    match input {
                        Input::Business { comp, seq, msg } => {
                            self.exchange.on_business(&comp, seq, &msg, now);
                        }
                        Input::Engine(cmd) => {
                            self.exchange.on_command(&cmd, now);
                        }
                        Input::PurgeOrders => {
                            self.exchange.purge_orders(now);
                        }
                    }
                }
                for d in sessions {
                    let Some(s) = self.sessions.get_mut(&d.comp) else {
                        continue;
                    };
                    s.in_next = d.in_next;
                    s.out_next = d.out_next;
                    s.credentials = d.credentials;
                    s.poss_resend_pending = d.poss_resend_pending;
                    for m in d.stored {
                        if m.seq > s.outbound.last_seq() {
                            s.outbound.push(m, self.retained_outbound_max);
                        }
                    }
                }
                for d in fix_sessions {
                    let Some(s) = self.fix_sessions.get_mut(&d.comp) else {
                        continue;
                    };
                    s.next_inbound_seq = d.next_inbound_seq;
                    for m in d.stored {
                        if s.outbound.back().is_none_or(|x| m.seq > x.seq) {
                            if s.outbound.len() >= self.retained_outbound_max {
                                s.outbound.pop_front();
                            }
                            s.outbound.push_back(m);
                        }
                    }
                    s.next_outbound_seq = d.next_outbound_seq;
                }
            }
            Entry::Active { site, at } => {
                if self.active.is_some_and(|(s, _)| s != site) {
                    self.failover_pending = true;
                }
                self.active = Some((site, at));
                self.activations.push((site, at));
            }
            Entry::FailoverModes { reset_to, .. } => {
                self.failover_pending = false;
                if let Some(n) = reset_to {
                    reset_sequences(&mut self.sessions, &mut self.fix_sessions, n);
                    self.reserve_logs();
                }
            }
        }
    }

    /// Must a site becoming active now apply the failover modes? Yes after a failover (the last
    /// site active was another one) until a [`Entry::FailoverModes`] is committed.
    pub fn failover_modes_due(&self, site: Site) -> bool {
        self.failover_pending || self.active.is_some_and(|(s, _)| s != site)
    }

    /// The FIX durable sessions, for rebuilding the FIX gateway at a newly active site.
    pub fn fix_sessions(&self) -> &BTreeMap<CompId, FixSessionState> {
        &self.fix_sessions
    }

    /// The durable sessions, for rebuilding the OCG-C server at a newly active site.
    pub fn sessions(&self) -> &BTreeMap<CompId, DurableSession> {
        &self.sessions
    }
}

#[derive(Serialize, Deserialize)]
struct ReplicaSnapshot {
    exchange: String,
    sessions: Vec<DurableSession>,
    #[serde(default)]
    fix_sessions: Vec<(CompId, FixSessionState)>,
    active: Option<(Site, Timestamp)>,
    activations: Vec<(Site, Timestamp)>,
    inputs_applied: u64,
    #[serde(default)]
    failover_pending: bool,
}

impl twinsite_cluster::StateMachine for Replica {
    fn apply(&mut self, _index: u64, cmd: &[u8]) -> Vec<u8> {
        match decode(cmd) {
            Ok(entries) => {
                for e in entries {
                    self.apply_entry(e);
                }
            }
            Err(e) => {
                self.rejected_entries += 1;
                tracing::error!(error = %e, "journal entry rejected");
            }
        }
        Vec::new()
    }

    fn snapshot(&self) -> Vec<u8> {
        let s = ReplicaSnapshot {
            exchange: String::from_utf8(self.exchange.snapshot()).unwrap_or_default(),
            sessions: self.sessions.values().cloned().collect(),
            fix_sessions: self
                .fix_sessions
                .iter()
                .map(|(c, s)| (*c, s.clone()))
                .collect(),
            active: self.active,
            activations: self.activations.clone(),
            inputs_applied: self.inputs_applied,
            failover_pending: self.failover_pending,
        };
        serde_json::to_vec(&s).expect("replica snapshot serializes")
    }

    fn restore(&mut self, snap: &[u8]) -> Result<(), String> {
        let s: ReplicaSnapshot =
            serde_json::from_slice(snap).map_err(|e| format!("replica snapshot: {e}"))?;
        self.exchange = Exchange::restore(s.exchange.as_bytes())?;
        self.sessions = s.sessions.into_iter().map(|d| (d.comp_id, d)).collect();
        self.fix_sessions = s.fix_sessions.into_iter().collect();
        self.active = s.active;
        self.activations = s.activations;
        self.inputs_applied = s.inputs_applied;
        self.failover_pending = s.failover_pending;
        self.reserve_logs();
        Ok(())
    }

    fn state_hash(&self) -> u64 {
        let mut h = self.exchange.state_hash();
        for (c, s) in &self.sessions {
            for b in c.as_str().bytes() {
                h = (h ^ b as u64).wrapping_mul(0x0000_0100_0000_01b3);
            }
            h = (h ^ s.in_next as u64).wrapping_mul(0x0000_0100_0000_01b3);
            h = (h ^ s.out_next as u64).wrapping_mul(0x0000_0100_0000_01b3);
            h = (h ^ s.outbound.len() as u64).wrapping_mul(0x0000_0100_0000_01b3);
        }
        for (c, s) in &self.fix_sessions {
            for b in c.as_str().bytes() {
                h = (h ^ b as u64).wrapping_mul(0x0000_0100_0000_01b3);
            }
            h = (h ^ s.next_inbound_seq).wrapping_mul(0x0000_0100_0000_01b3);
            h = (h ^ s.next_outbound_seq).wrapping_mul(0x0000_0100_0000_01b3);
            h = (h ^ s.outbound.len() as u64).wrapping_mul(0x0000_0100_0000_01b3);
        }
        h
    }
}

/// The catastrophic "initialise sequence" (reference §3.3) for every session: inbound and
/// outbound both restart at `n`, and every earlier message is unavailable for replay.
pub fn reset_sequences(
    sessions: &mut BTreeMap<CompId, DurableSession>,
    fix_sessions: &mut BTreeMap<CompId, FixSessionState>,
    n: u32,
) {
    for d in sessions.values_mut() {
        d.initialise_sequences(n, n);
    }
    for s in fix_sessions.values_mut() {
        s.next_inbound_seq = n as u64;
        s.next_outbound_seq = n as u64;
        s.outbound.clear();
    }
}

/// The session delta of `now` against what was last synced.
pub fn delta(d: &DurableSession, synced_out_next: u32) -> SessionDelta {
    SessionDelta {
        comp: d.comp_id,
        in_next: d.in_next,
        out_next: d.out_next,
        credentials: d.credentials.clone(),
        poss_resend_pending: d.poss_resend_pending,
        // Ascending by number: only the tail since the last delta is looked at.
        stored: d.outbound.since(synced_out_next).cloned().collect(),
    }
}
