//! Where a replicated order's time goes, step by step: an opt-in timeline per process.
//!
//! With `TWINSITE_STAGES=PREFIX` in a process's environment, every [`mark`] records the
//! stage's number and the time (`CLOCK_REALTIME` in nanoseconds, so the files of the processes
//! on one machine share one clock) and appends them, as `STAGE NANOS` lines, to `PREFIX.PID` in
//! blocks of [`BLOCK`] marks; marks still in memory when the process ends are not written.
//! `scripts/cluster-stages.sh` runs `twinsite bench cluster` with it and
//! `scripts/cluster-stages.py` cuts the files into one cycle per order (from the primary
//! reading the order) and prints the median time of each stage in each process.
//!
//! Without the variable a mark costs one atomic load. It is a diagnostic for the people
//! tuning the journal, not a log: there is no rotation, and a write error turns it off for the
//! rest of the process (with one warning).

use std::io::Write;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{SystemTime, UNIX_EPOCH};

/// The steps of an order through the active site and its followers. The numbers are what the
/// files hold; `scripts/cluster-stages.py` names them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Stage {
    /// Gateway: bytes read from a participant's connection.
    OrderRead = 1,
    /// Gateway: the session rules, the engine and the journal batch are done for those bytes.
    CoreDone = 2,
    /// Gateway: a batch of journal entries handed to the journal (`propose_committed`).
    Proposed = 3,
    /// Log store: entries appended (queued for the WAL, not yet synced).
    LogAppend = 4,
    /// Leader: the write of an AppendEntries request starts.
    AppendWriteStart = 5,
    /// Leader: that write returned.
    AppendWritten = 6,
    /// WAL: a batch's write and fdatasync start (on the raft thread or the writer thread; a
    /// batch of lazy records only, such as commit indexes, is written without a sync).
    WalSyncStart = 7,
    /// WAL: that batch is written (and durable, unless it held only lazy records).
    WalSynced = 8,
    /// Leader: a follower's answer to an AppendEntries read.
    AnswerRead = 9,
    /// Gateway: the journal answered the proposal (committed, or an error).
    Committed = 10,
    /// Gateway: the replies held for committed entries released.
    Released = 11,
    /// Gateway: a write to a participant's connection starts.
    ReplyWriteStart = 13,
    /// Gateway: that write returned.
    ReplyWritten = 14,
    /// Follower: an AppendEntries request read from the leader.
    AppendRead = 20,
    /// Follower: the write of its answer starts.
    AnswerWriteStart = 21,
    /// Follower: that write returned.
    AnswerWritten = 22,
}

/// Marks kept in memory before they are appended to the file.
pub const BLOCK: usize = 4096;

struct Recorder {
    path: PathBuf,
    marks: Mutex<Vec<(u8, u64)>>,
    failed: AtomicBool,
}

impl Recorder {
    fn record(&self, stage: Stage, nanos: u64) {
        if self.failed.load(Ordering::Relaxed) {
            return;
        }
        let mut marks = self.marks.lock().unwrap_or_else(|e| e.into_inner());
        marks.push((stage as u8, nanos));
        if marks.len() >= BLOCK {
            let mut text = String::with_capacity(marks.len() * 24);
            for (stage, nanos) in marks.drain(..) {
                text.push_str(&format!("{stage} {nanos}\n"));
            }
            let written = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&self.path)
                .and_then(|mut f| f.write_all(text.as_bytes()));
            if let Err(e) = written {
                self.failed.store(true, Ordering::Relaxed);
                tracing::warn!(path = %self.path.display(), error = %e,
                    "TWINSITE_STAGES: cannot write the stage timeline; it is off from now on");
            }
        }
    }
}

static RECORDER: OnceLock<Option<Recorder>> = OnceLock::new();

fn recorder() -> Option<&'static Recorder> {
    RECORDER
        .get_or_init(|| {
            let prefix = std::env::var_os("TWINSITE_STAGES")?;
            let mut path = prefix;
            path.push(format!(".{}", std::process::id()));
            Some(Recorder {
                path: PathBuf::from(path),
                marks: Mutex::new(Vec::with_capacity(BLOCK)),
                failed: Default::default(),
            })
        })
        .as_ref()
}

/// Record that this process reached `stage` now (nothing unless `TWINSITE_STAGES` is set).
pub fn mark(stage: Stage) {
    if let Some(r) = recorder() {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0);
        r.record(stage, nanos);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn marks_are_written_in_blocks_and_a_write_error_turns_them_off() {
        let dir = std::env::temp_dir().join(format!("twinsite-stages-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let r = Recorder {
            path: dir.join("st.1"),
            marks: Mutex::new(Vec::new()),
            failed: Default::default(),
        };
        for i in 0..BLOCK as u64 + 3 {
            r.record(Stage::OrderRead, 1_000 + i);
        }
        let text = std::fs::read_to_string(&r.path).unwrap();
        assert_eq!(text.lines().count(), BLOCK);
        assert_eq!(text.lines().next(), Some("1 1000"));
        assert_eq!(r.marks.lock().unwrap().len(), 3);

        let bad = Recorder {
            path: dir.join("no-such-dir").join("st.2"),
            marks: Mutex::new(Vec::new()),
            failed: Default::default(),
        };
        for i in 0..BLOCK as u64 + 1 {
            bad.record(Stage::WalSynced, i);
        }
        assert!(bad.failed.load(Ordering::Relaxed));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
