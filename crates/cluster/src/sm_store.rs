//! The openraft state machine: wraps the application's [`StateMachine`], records the state
//! hash at every applied index, and persists snapshots (one CRC-framed file, replaced
//! atomically).

use std::collections::BTreeMap;
use std::io;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};

use futures_util::StreamExt;
use openraft::storage::{EntryResponder, RaftSnapshotBuilder, RaftStateMachine};
use openraft::{EntryPayload, OptionalSend};
use serde::{Deserialize, Serialize};

use crate::log_store::OpenError;
use crate::types::{LogId, Reply, Snapshot, SnapshotMeta, StoredMembership, C};
use crate::StateMachine;

/// What the snapshot file holds besides the application's bytes.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct SnapshotHeader {
    meta: SnapshotMeta,
    state_hash: u64,
}

#[derive(Debug, Clone)]
struct StoredSnapshot {
    header: SnapshotHeader,
    data: Vec<u8>,
}

pub(crate) struct SmState<S> {
    pub(crate) sm: S,
    last_applied: Option<LogId>,
    membership: StoredMembership,
    /// State hash after each applied index, the most recent `hash_history` of them.
    hashes: BTreeMap<u64, u64>,
    current: Option<StoredSnapshot>,
}

/// Where the latest snapshot is kept.
#[derive(Clone)]
pub(crate) enum SnapshotSlot {
    /// A CRC-framed file, replaced atomically.
    File(PathBuf),
    /// The simulation's in-memory disk: the encoded snapshot survives a node restart.
    Memory(Arc<Mutex<Option<Vec<u8>>>>),
    /// Memory durability: nothing is kept.
    None,
}

pub(crate) struct SmShared<S> {
    state: Mutex<SmState<S>>,
    slot: SnapshotSlot,
    hash_history: usize,
    applied_tx: tokio::sync::watch::Sender<u64>,
}

impl<S: StateMachine> SmShared<S> {
    pub(crate) fn lock(&self) -> MutexGuard<'_, SmState<S>> {
        self.state.lock().expect("state machine mutex")
    }

    pub(crate) fn state_hash_at(&self, index: u64) -> Option<u64> {
        self.lock().hashes.get(&index).copied()
    }

    /// The applied index and the state hash there, read under one lock.
    pub(crate) fn current_hash(&self) -> (u64, u64) {
        let state = self.lock();
        (
            state.last_applied.map_or(0, |l| l.index),
            state.sm.state_hash(),
        )
    }

    pub(crate) fn applied_index(&self) -> u64 {
        self.lock().last_applied.map_or(0, |l| l.index)
    }

    pub(crate) fn subscribe_applied(&self) -> tokio::sync::watch::Receiver<u64> {
        self.applied_tx.subscribe()
    }
}

/// The openraft-facing state machine handle; the snapshot builder is a clone.
pub(crate) struct SmStore<S> {
    pub(crate) shared: Arc<SmShared<S>>,
}

impl<S> Clone for SmStore<S> {
    fn clone(&self) -> Self {
        SmStore {
            shared: self.shared.clone(),
        }
    }
}

fn encode_snapshot(snapshot: &StoredSnapshot) -> Vec<u8> {
    let header = serde_json::to_vec(&snapshot.header).expect("snapshot header serializes");
    let mut out = Vec::with_capacity(4 + header.len() + snapshot.data.len());
    out.extend_from_slice(&(header.len() as u32).to_le_bytes());
    out.extend_from_slice(&header);
    out.extend_from_slice(&snapshot.data);
    out
}

fn decode_snapshot(payload: &[u8]) -> Result<StoredSnapshot, String> {
    if payload.len() < 4 {
        return Err("snapshot shorter than its header length".into());
    }
    let header_len = u32::from_le_bytes(payload[0..4].try_into().expect("4 bytes")) as usize;
    if payload.len() - 4 < header_len {
        return Err("snapshot header runs past the end".into());
    }
    let header: SnapshotHeader =
        serde_json::from_slice(&payload[4..4 + header_len]).map_err(|e| e.to_string())?;
    Ok(StoredSnapshot {
        header,
        data: payload[4 + header_len..].to_vec(),
    })
}

impl<S: StateMachine> SmStore<S> {
    /// Build the state machine, restoring the latest snapshot from `dir` if there is one.
    pub(crate) fn open(
        mut sm: S,
        slot: SnapshotSlot,
        hash_history: usize,
    ) -> Result<SmStore<S>, OpenError> {
        assert!(hash_history > 0);
        let snapshot_path = match &slot {
            SnapshotSlot::File(path) => Some(path.clone()),
            SnapshotSlot::Memory(_) | SnapshotSlot::None => None,
        };
        let current =
            match &slot {
                SnapshotSlot::File(path) => read_snapshot_file(path)?,
                SnapshotSlot::Memory(bytes) => {
                    let bytes = bytes.lock().expect("sim snapshot mutex").clone();
                    match bytes {
                        None => None,
                        Some(bytes) => Some(decode_snapshot(&bytes).map_err(|reason| {
                            OpenError::Undecodable {
                                what: "simulated snapshot",
                                file: PathBuf::from("<memory>"),
                                offset: 0,
                                reason,
                            }
                        })?),
                    }
                }
                SnapshotSlot::None => None,
            };
        let mut last_applied = None;
        let mut membership = StoredMembership::default();
        let mut hashes = BTreeMap::new();
        if let Some(snapshot) = &current {
            let path = snapshot_path.unwrap_or_else(|| PathBuf::from("<memory>"));
            let corrupt = |reason: String| OpenError::Undecodable {
                what: "snapshot",
                file: path.clone(),
                offset: 0,
                reason,
            };
            sm.restore(&snapshot.data).map_err(corrupt)?;
            // Pair the hash written with the snapshot against the restored state's hash.
            if sm.state_hash() != snapshot.header.state_hash {
                return Err(corrupt(format!(
                    "restored state hash {:#x} differs from the recorded {:#x}",
                    sm.state_hash(),
                    snapshot.header.state_hash
                )));
            }
            last_applied = snapshot.header.meta.last_log_id;
            membership = snapshot.header.meta.last_membership.clone();
            let index = last_applied.map_or(0, |l| l.index);
            hashes.insert(index, snapshot.header.state_hash);
            tracing::info!(index, "journal: restored state machine from snapshot");
        }
        let (applied_tx, _) = tokio::sync::watch::channel(last_applied.map_or(0, |l| l.index));
        Ok(SmStore {
            shared: Arc::new(SmShared {
                state: Mutex::new(SmState {
                    sm,
                    last_applied,
                    membership,
                    hashes,
                    current,
                }),
                slot,
                hash_history,
                applied_tx,
            }),
        })
    }

    fn persist(&self, snapshot: &StoredSnapshot) -> io::Result<()> {
        match &self.shared.slot {
            SnapshotSlot::File(path) => {
                crate::framed_file::write_atomic(path, &encode_snapshot(snapshot))
            }
            SnapshotSlot::Memory(bytes) => {
                *bytes.lock().expect("sim snapshot mutex") = Some(encode_snapshot(snapshot));
                Ok(())
            }
            SnapshotSlot::None => Ok(()),
        }
    }

    /// Persist a snapshot: file writes go to the blocking pool; the others are immediate (no
    /// thread, so a simulation stays deterministic).
    async fn persist_async(&self, snapshot: &StoredSnapshot) -> io::Result<()> {
        if !matches!(self.shared.slot, SnapshotSlot::File(_)) {
            return self.persist(snapshot);
        }
        let this = self.clone();
        let persisted = snapshot.clone();
        tokio::task::spawn_blocking(move || this.persist(&persisted))
            .await
            .map_err(io::Error::other)?
    }

    fn record_hash(&self, state: &mut SmState<S>, index: u64) {
        let hash = state.sm.state_hash();
        state.hashes.insert(index, hash);
        while state.hashes.len() > self.shared.hash_history {
            state.hashes.pop_first();
        }
    }
}

fn read_snapshot_file(path: &std::path::Path) -> Result<Option<StoredSnapshot>, OpenError> {
    let bytes = match std::fs::read(path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(source) => {
            return Err(OpenError::Io {
                path: path.to_path_buf(),
                source,
            })
        }
    };
    let payload = crate::framed_file::decode(&bytes).map_err(|reason| {
        OpenError::Wal(crate::wal::WalError::Corrupt {
            file: path.to_path_buf(),
            offset: 0,
            reason,
        })
    })?;
    decode_snapshot(payload)
        .map(Some)
        .map_err(|reason| OpenError::Undecodable {
            what: "snapshot",
            file: path.to_path_buf(),
            offset: 0,
            reason,
        })
}

impl<S: StateMachine> RaftSnapshotBuilder<C> for SmStore<S> {
    type SnapshotData = Vec<u8>;

    async fn build_snapshot(&mut self) -> Result<Snapshot, io::Error> {
        let snapshot = {
            let state = self.shared.lock();
            StoredSnapshot {
                header: SnapshotHeader {
                    meta: SnapshotMeta {
                        last_log_id: state.last_applied,
                        last_membership: state.membership.clone(),
                    },
                    state_hash: state.sm.state_hash(),
                },
                data: state.sm.snapshot(),
            }
        };
        self.persist_async(&snapshot).await?;
        tracing::debug!(index = ?snapshot.header.meta.last_log_id, "journal: snapshot built");
        let meta = snapshot.header.meta.clone();
        let data = snapshot.data.clone();
        self.shared.lock().current = Some(snapshot);
        Ok(Snapshot {
            meta,
            snapshot: data,
        })
    }
}

impl<S: StateMachine> RaftStateMachine<C> for SmStore<S> {
    type SnapshotData = Vec<u8>;
    type SnapshotBuilder = SmStore<S>;

    async fn applied_state(&mut self) -> Result<(Option<LogId>, StoredMembership), io::Error> {
        let state = self.shared.lock();
        Ok((state.last_applied, state.membership.clone()))
    }

    async fn apply<Strm>(&mut self, mut entries: Strm) -> Result<(), io::Error>
    where
        Strm: futures_util::Stream<Item = Result<EntryResponder<C>, io::Error>>
            + Unpin
            + OptionalSend,
    {
        // Let every task already runnable go first: on a follower, the answer to the
        // AppendEntries that carried these entries' commit index (its sync has returned); on
        // the leader, the participant's reply, released at commit. Applying first put the
        // apply and the state hash (tens of µs) on both paths of every replicated order.
        tokio::task::yield_now().await;
        let mut last_index = None;
        while let Some(item) = entries.next().await {
            let (entry, responder) = item?;
            let index = entry.log_id.index;
            let mut state = self.shared.lock();
            if let Some(last) = state.last_applied {
                assert!(index > last.index, "entries apply in order, once");
            }
            let reply = match &entry.payload {
                EntryPayload::Blank => Vec::new(),
                EntryPayload::Normal(command) => state.sm.apply(index, &command.0),
                EntryPayload::Membership(membership) => {
                    state.membership =
                        StoredMembership::new(Some(entry.log_id), membership.clone());
                    Vec::new()
                }
            };
            state.last_applied = Some(entry.log_id);
            // Answer the proposer first: the state hash covers the whole state and is not part
            // of the reply, so the proposer need not wait for it. It is recorded under the same
            // lock, before the next entry is applied and before `subscribe_applied` announces
            // this index, so `state_hash_at(i)` is there for anyone who waited for `i` to be
            // applied.
            if let Some(responder) = responder {
                responder.send(Reply(reply));
            }
            self.record_hash(&mut state, index);
            drop(state);
            last_index = Some(index);
        }
        if let Some(index) = last_index {
            self.shared.applied_tx.send_replace(index);
        }
        Ok(())
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        self.clone()
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta,
        snapshot: Vec<u8>,
    ) -> Result<(), io::Error> {
        let stored = {
            let mut state = self.shared.lock();
            state.sm.restore(&snapshot).map_err(|reason| {
                io::Error::other(format!("snapshot from leader does not restore: {reason}"))
            })?;
            state.last_applied = meta.last_log_id;
            state.membership = meta.last_membership.clone();
            state.hashes.clear();
            let index = meta.last_log_id.map_or(0, |l| l.index);
            self.record_hash(&mut state, index);
            StoredSnapshot {
                header: SnapshotHeader {
                    meta: meta.clone(),
                    state_hash: state.sm.state_hash(),
                },
                data: snapshot,
            }
        };
        self.persist_async(&stored).await?;
        let index = meta.last_log_id.map_or(0, |l| l.index);
        tracing::info!(index, "journal: installed snapshot from leader");
        self.shared.lock().current = Some(stored);
        self.shared.applied_tx.send_replace(index);
        Ok(())
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot>, io::Error> {
        let state = self.shared.lock();
        Ok(state.current.as_ref().map(|s| Snapshot {
            meta: s.header.meta.clone(),
            snapshot: s.data.clone(),
        }))
    }
}
