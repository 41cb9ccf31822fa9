//! The raft log: entries in memory for reads, made durable by the WAL with group commit.
//!
//! Every mutation (append, truncate, purge, committed) is a WAL record. One writer thread owns
//! the WAL: it takes every job queued while the previous fdatasync was in flight, writes them
//! all with one write, syncs once, then acknowledges each job (group commit). A job that needs
//! no sync of its own (the commit index) is queued without waking the writer: it goes out, in
//! queue order, with the next job that does. The vote is a separate small
//! file, written to a temporary name, synced, renamed and the directory synced before
//! `save_vote` returns.

use std::collections::BTreeMap;
use std::collections::VecDeque;
use std::fmt::Debug;
use std::io;
use std::ops::{Bound, RangeBounds};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};

use openraft::storage::{IOFlushed, LogState, RaftLogReader, RaftLogStorage};
use openraft::OptionalSend;
use serde::{Deserialize, Serialize};

use crate::stages::{mark, Stage};
use crate::types::{Entry, LogId, Vote, C};
use crate::wal::{Wal, WalError};

/// One WAL record of the raft log.
#[derive(Debug, Serialize, Deserialize)]
enum LogRecord {
    Entry(Entry),
    TruncateAfter(Option<LogId>),
    Purge(LogId),
    Committed(Option<LogId>),
}

/// Group-commit counters, for metrics and the bench.
#[derive(Debug, Default)]
pub struct WalStats {
    pub syncs: AtomicU64,
    /// Raft log entries made durable (commands plus raft's own blank and membership entries).
    pub entries: AtomicU64,
    pub sync_nanos_total: AtomicU64,
    /// How long the latest fdatasync took.
    pub last_sync_nanos: AtomicU64,
}

/// A follower writes inline only while the latest fdatasync took at most this long: on a slow
/// or busy disk the raft thread must not sit in fdatasync while votes and heartbeats wait (an
/// inline follower's crash-failover RTO grew under disk load), so the writer thread takes the
/// syncs until the disk is fast again (each of its syncs updates `last_sync_nanos`).
pub const INLINE_SYNC_MAX: std::time::Duration = std::time::Duration::from_millis(2);

type Done = Box<dyn FnOnce(io::Result<()>) + Send>;

struct WriteJob {
    /// Records with the entry index they carry, if any.
    records: Vec<(Option<u64>, Vec<u8>)>,
    purge_upto: Option<u64>,
    /// Without a completion the job is lazy: written now, synced by the next job that waits.
    done: Option<Done>,
}

#[derive(Default)]
struct LogData {
    entries: BTreeMap<u64, Entry>,
    last_purged: Option<LogId>,
    committed: Option<LogId>,
    vote: Option<Vote>,
}

/// The writer thread's queue: one FIFO for all jobs, so records reach the WAL in the order they
/// were submitted; the writer is woken only by a job that waits for durability.
///
/// Whoever holds `wal` takes the queued jobs and writes them: the writer thread, or, in
/// inline mode (a follower), the thread that submits a job while the WAL is idle. Taking and
/// writing under the one lock keeps the records in submission order either way.
struct WalQueue {
    state: Mutex<QueueState>,
    ready: Condvar,
    wal: Mutex<WalWriter>,
    /// Write (and sync) a job on the submitting thread when the WAL is idle, instead of handing
    /// it to the writer thread and waiting to be woken (`LogStore::set_inline_writes`).
    inline: AtomicBool,
    /// Wake the writer thread for a job submitted on a tokio runtime only after the tasks
    /// already runnable there have run (`LogStore::set_defer_wake`).
    defer_wake: AtomicBool,
    /// A deferred wake is already scheduled: appends before it runs need no task of their own.
    wake_scheduled: AtomicBool,
    /// With `defer_wake`: the deferred task writes and syncs the queued jobs itself, on the
    /// runtime thread, when the WAL is idle (`LogStore::set_leader_inline`).
    leader_inline: AtomicBool,
}

#[derive(Default)]
struct QueueState {
    jobs: VecDeque<WriteJob>,
    /// Queued jobs with a completion (the writer sleeps while this is 0).
    waiting: usize,
    /// Set on drop of the store: the writer writes what is queued and exits.
    closed: bool,
    /// The writer thread has exited: new jobs fail at once.
    stopped: bool,
    /// The writer thread is asleep in `wait_for_work` (tests wait for it before they check
    /// which thread wrote a job).
    writer_parked: bool,
}

impl WalQueue {
    fn new(wal: WalWriter) -> WalQueue {
        WalQueue {
            state: Mutex::new(QueueState::default()),
            ready: Condvar::new(),
            wal: Mutex::new(wal),
            inline: AtomicBool::new(false),
            defer_wake: AtomicBool::new(false),
            wake_scheduled: AtomicBool::new(false),
            leader_inline: AtomicBool::new(false),
        }
    }

    /// The deferred wake of a leader: write and sync every queued job on this thread if
    /// `leader_inline` is on, the WAL is idle and the latest sync was fast; otherwise wake the
    /// writer thread for them.
    fn drain_or_wake(&self) {
        let Some(mut wal) = self.wal_for_inline(&self.leader_inline) else {
            self.wake();
            return;
        };
        if let Some(batch) = self.take_all().filter(|b| !b.is_empty()) {
            wal.run(batch);
        }
    }

    /// The WAL, for a write on the caller's thread, if `mode` (follower or leader inline
    /// writes) is on, the WAL is idle (the writer thread has no batch in flight) and its latest
    /// sync took at most [`INLINE_SYNC_MAX`] (otherwise the disk is slow right now: keep the
    /// raft thread free). A poisoned lock (the writer panicked mid-batch) counts as busy; the
    /// queue then reports the writer stopped.
    fn wal_for_inline(&self, mode: &AtomicBool) -> Option<std::sync::MutexGuard<'_, WalWriter>> {
        if !mode.load(Ordering::Relaxed) {
            return None;
        }
        let wal = self.wal.try_lock().ok()?;
        let fast =
            wal.stats.last_sync_nanos.load(Ordering::Relaxed) <= INLINE_SYNC_MAX.as_nanos() as u64;
        fast.then_some(wal)
    }

    /// Wake the writer thread if a job waits for durability.
    fn wake(&self) {
        if self.lock().waiting > 0 {
            self.ready.notify_one();
        }
    }

    /// In inline mode with the WAL idle: write every queued job and then `job` on this thread,
    /// with one sync, and complete them. `Err(job)` when the WAL is busy (the writer thread
    /// has a batch in flight), the latest sync took longer than [`INLINE_SYNC_MAX`], inline
    /// mode is off or the writer has stopped: queue it instead.
    fn write_inline(&self, job: WriteJob) -> Result<(), WriteJob> {
        let Some(mut wal) = self.wal_for_inline(&self.inline) else {
            return Err(job);
        };
        let Some(mut batch) = self.take_all() else {
            return Err(job);
        };
        batch.push(job);
        wal.run(batch);
        Ok(())
    }

    /// Take every queued job, oldest first, for a write on the caller's thread (which holds
    /// `wal`); `None` once the queue is closed or the writer has stopped.
    fn take_all(&self) -> Option<Vec<WriteJob>> {
        let mut state = self.lock();
        if state.stopped || state.closed {
            return None;
        }
        let batch: Vec<WriteJob> = state.jobs.drain(..).collect();
        state.waiting -= batch.iter().filter(|j| j.done.is_some()).count();
        Some(batch)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, QueueState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Queue a job; a job with a completion wakes the writer (unless `quiet`: the caller wakes
    /// it later). Returns the job if the writer has stopped.
    fn push(&self, job: WriteJob, quiet: bool) -> Result<(), WriteJob> {
        let mut state = self.lock();
        if state.stopped {
            return Err(job);
        }
        if job.done.is_some() {
            state.waiting += 1;
        }
        let wake = job.done.is_some() && !quiet;
        state.jobs.push_back(job);
        drop(state);
        if wake {
            self.ready.notify_one();
        }
        Ok(())
    }

    fn close(&self) {
        self.lock().closed = true;
        self.ready.notify_one();
    }

    /// Block until a job waits for durability or the queue closes.
    fn wait_for_work(&self) {
        let mut state = self.lock();
        while state.waiting == 0 && !state.closed {
            state.writer_parked = true;
            state = self.ready.wait(state).unwrap_or_else(|e| e.into_inner());
            state.writer_parked = false;
        }
    }

    /// Take up to `max` queued jobs, oldest first.
    fn take(&self, max: usize) -> Vec<WriteJob> {
        let mut state = self.lock();
        let n = state.jobs.len().min(max);
        let batch: Vec<WriteJob> = state.jobs.drain(..n).collect();
        state.waiting -= batch.iter().filter(|j| j.done.is_some()).count();
        batch
    }
}

/// The WAL and its bookkeeping, owned by the writer thread.
struct WalWriter {
    wal: Wal,
    segment_max: BTreeMap<u64, Option<u64>>,
    stats: Arc<WalStats>,
    failed: AtomicBool,
}

impl WalWriter {
    /// Write the batch with one write, sync once (unless it is all lazy), then complete every
    /// job in it.
    fn run(&mut self, batch: Vec<WriteJob>) {
        mark(Stage::WalSyncStart);
        let result = write_batch(
            &mut self.wal,
            &mut self.segment_max,
            &batch,
            &self.stats,
            &self.failed,
        );
        mark(Stage::WalSynced);
        if let Err(e) = &result {
            // Fail-stop: after an I/O error the WAL's state is unknown, so nothing more is
            // acknowledged and openraft stops this node on the storage error.
            self.failed.store(true, Ordering::SeqCst);
            tracing::error!(error = %e, "journal: WAL write failed; this node stops");
        }
        for job in batch {
            if let Some(done) = job.done {
                done(match &result {
                    Ok(()) => Ok(()),
                    Err(e) => Err(io::Error::other(e.to_string())),
                });
            }
        }
    }
}

/// Marks the queue stopped when the writer thread exits (also by a panic) and fails every job
/// still queued, so no caller waits forever.
struct StoppedOnExit(Arc<WalQueue>);

impl Drop for StoppedOnExit {
    fn drop(&mut self) {
        let jobs: Vec<WriteJob> = {
            let mut state = self.0.lock();
            state.stopped = true;
            state.waiting = 0;
            state.jobs.drain(..).collect()
        };
        for job in jobs {
            if let Some(done) = job.done {
                done(Err(io::Error::other("journal WAL writer has stopped")));
            }
        }
    }
}

struct LogShared {
    data: Mutex<LogData>,
    writer: Option<Arc<WalQueue>>,
    writer_thread: Mutex<Option<std::thread::JoinHandle<()>>>,
    vote_path: Option<PathBuf>,
}

impl LogShared {
    /// Close the queue, then let the writer write what is queued and exit, so a restarted node
    /// never opens the WAL while the old writer still writes to it. Idempotent.
    fn close_wal(&self) {
        if let Some(queue) = &self.writer {
            queue.close();
        }
        let thread = self
            .writer_thread
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        if let Some(thread) = thread {
            let _ = thread.join();
        }
    }
}

impl Drop for LogShared {
    fn drop(&mut self) {
        self.close_wal();
    }
}

/// The raft log store; cheap to clone (the reader is a clone).
#[derive(Clone)]
pub struct LogStore {
    shared: Arc<LogShared>,
}

/// Failure to open the log on start.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error(transparent)]
    Wal(#[from] WalError),
    #[error(
        "{what} at {file}:{offset} has a valid checksum but cannot be decoded ({reason}); \
         recover by deleting this node's data directory and restarting it: it re-syncs from a peer"
    )]
    Undecodable {
        what: &'static str,
        file: PathBuf,
        offset: u64,
        reason: String,
    },
    #[error("I/O error on {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

impl LogStore {
    /// A log that lives only in memory (demos): nothing survives a restart.
    pub fn memory() -> LogStore {
        LogStore {
            shared: Arc::new(LogShared {
                data: Mutex::new(LogData::default()),
                writer: None,
                writer_thread: Mutex::new(None),
                vote_path: None,
            }),
        }
    }

    /// Open the durable log in `dir`, replaying the WAL and reading the vote.
    pub fn open(
        dir: &Path,
        segment_bytes: u64,
        stats: Arc<WalStats>,
    ) -> Result<LogStore, OpenError> {
        let wal_dir = dir.join("wal");
        let (wal, records, report) = Wal::open(&wal_dir, segment_bytes)?;
        if let Some((file, offset)) = &report.torn_tail {
            tracing::warn!(file = %file.display(), offset,
                "journal: truncated a torn final WAL record");
        }
        let mut data = LogData::default();
        let mut segment_max: BTreeMap<u64, Option<u64>> =
            wal.segment_ids().iter().map(|id| (*id, None)).collect();
        for record in &records {
            let decoded: LogRecord =
                crate::wire::decode_record(&record.payload).map_err(|reason| {
                    OpenError::Undecodable {
                        what: "WAL record",
                        file: wal.segment_path(record.segment_id),
                        offset: record.offset,
                        reason,
                    }
                })?;
            replay(&mut data, decoded, record.segment_id, &mut segment_max);
        }
        if data.committed < data.last_purged {
            data.committed = data.last_purged;
        }
        let vote_path = dir.join("vote");
        data.vote = read_vote_file(&vote_path)?;
        tracing::info!(dir = %dir.display(), entries = data.entries.len(),
            segments = report.segment_count, "journal: durable log opened");
        let queue = Arc::new(WalQueue::new(WalWriter {
            wal,
            segment_max,
            stats,
            failed: AtomicBool::new(false),
        }));
        let thread_queue = queue.clone();
        let writer_thread = std::thread::Builder::new()
            .name("journal-wal".into())
            .spawn(move || writer_loop(thread_queue))
            .map_err(|source| OpenError::Io {
                path: wal_dir.clone(),
                source,
            })?;
        Ok(LogStore {
            shared: Arc::new(LogShared {
                data: Mutex::new(data),
                writer: Some(queue),
                writer_thread: Mutex::new(Some(writer_thread)),
                vote_path: Some(vote_path),
            }),
        })
    }

    fn data(&self) -> std::sync::MutexGuard<'_, LogData> {
        self.shared.data.lock().expect("log mutex")
    }

    /// Inline writes (for a follower): a job submitted while the WAL is idle is written and
    /// synced on the submitting thread before `append` returns, with no hand-over to the
    /// writer thread and no wake-up back; while a batch is in flight jobs queue for the writer
    /// thread as usual (group commit). The journal turns this on while the node is a follower
    /// (`JournalConfig::follower_inline_wal`). No effect in memory mode.
    pub fn set_inline_writes(&self, inline: bool) {
        if let Some(queue) = &self.shared.writer {
            queue.inline.store(inline, Ordering::Relaxed);
        }
    }

    /// Deferred wake (for a leader): a job submitted on a tokio runtime wakes the writer thread
    /// only once the tasks already runnable on that runtime have run: openraft appends a
    /// leader's entries and then hands them to the replication tasks, so the AppendEntries
    /// leave for the followers before the leader pays for waking its writer (a cross-CPU
    /// wake-up costs tens of µs on a VM). The leader's own sync starts that much later, off the
    /// critical path, which runs through a follower's sync. No effect in memory mode.
    pub fn set_defer_wake(&self, defer: bool) {
        if let Some(queue) = &self.shared.writer {
            queue.defer_wake.store(defer, Ordering::Relaxed);
        }
    }

    /// Leader inline writes (with `set_defer_wake`): the deferred task that would wake the
    /// writer thread instead writes and fdatasyncs every queued job itself, on the runtime
    /// thread, when the WAL is idle and the latest sync took at most [`INLINE_SYNC_MAX`]. The
    /// AppendEntries have left by then; the leader's thread is blocked for one sync, during
    /// which the followers' answers wait in their sockets and are read together after it, so
    /// an order costs the leader no hand-over to the writer thread and no wake-up back (each a
    /// context switch). Jobs submitted meanwhile queue and ride on the next sync (group
    /// commit). The journal turns this on while the node leads
    /// (`JournalConfig::leader_inline_wal`). No effect in memory mode.
    pub fn set_leader_inline(&self, inline: bool) {
        if let Some(queue) = &self.shared.writer {
            queue.leader_inline.store(inline, Ordering::Relaxed);
        }
    }

    /// Close the WAL now: what is queued is written, the writer thread exits, and later jobs
    /// fail. For a node's shutdown, which must not return while its WAL is still written: a
    /// clone of the store (openraft's log readers in tasks that end a moment later) would
    /// otherwise keep the writer alive and let it write the queued records after a restart
    /// has opened the same files.
    pub(crate) fn close(&self) {
        self.shared.close_wal();
    }

    /// Queue a WAL job (or, in inline mode with the WAL idle, write it now); without a writer
    /// (memory mode) it completes at once.
    fn submit(&self, records: Vec<(Option<u64>, Vec<u8>)>, purge_upto: Option<u64>, done: Done) {
        match &self.shared.writer {
            None => done(Ok(())),
            Some(writer) => {
                let job = WriteJob {
                    records,
                    purge_upto,
                    done: Some(done),
                };
                let Err(job) = writer.write_inline(job) else {
                    return;
                };
                let defer = writer.defer_wake.load(Ordering::Relaxed)
                    && tokio::runtime::Handle::try_current().is_ok();
                match writer.push(job, defer) {
                    // One deferred wake covers every job queued before it runs.
                    Ok(()) if defer && !writer.wake_scheduled.swap(true, Ordering::SeqCst) => {
                        let queue = writer.clone();
                        tokio::spawn(async move {
                            tokio::task::yield_now().await;
                            // Cleared before the wake looks at the queue, so a job queued
                            // after that look schedules a wake of its own.
                            queue.wake_scheduled.store(false, Ordering::SeqCst);
                            queue.drain_or_wake();
                        });
                    }
                    Ok(()) => {}
                    Err(job) => {
                        if let Some(done) = job.done {
                            done(Err(io::Error::other("journal WAL writer has stopped")));
                        }
                    }
                }
            }
        }
    }

    /// Queue a WAL record that needs no sync of its own.
    fn submit_lazy(&self, records: Vec<(Option<u64>, Vec<u8>)>) {
        if let Some(writer) = &self.shared.writer {
            let job = WriteJob {
                records,
                purge_upto: None,
                done: None,
            };
            // Not woken for it: written with the next job that waits for a sync. A stopped
            // writer drops lazy records; they only speed up recovery.
            let _ = writer.push(job, true);
        }
    }

    /// Queue a WAL job and wait until it is durable.
    async fn submit_and_wait(
        &self,
        records: Vec<(Option<u64>, Vec<u8>)>,
        purge_upto: Option<u64>,
    ) -> io::Result<()> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.submit(
            records,
            purge_upto,
            Box::new(move |r| {
                let _ = tx.send(r);
            }),
        );
        rx.await
            .unwrap_or_else(|_| Err(io::Error::other("journal WAL writer has stopped")))
    }

    /// No entries, nothing purged and no vote: a fresh or wiped node.
    pub fn is_empty(&self) -> bool {
        let data = self.data();
        data.entries.is_empty() && data.last_purged.is_none() && data.vote.is_none()
    }

    fn is_durable(&self) -> bool {
        self.shared.writer.is_some()
    }
}

fn encode(record: &LogRecord) -> Vec<u8> {
    crate::wire::encode(record).expect("log records always serialize")
}

fn replay(
    data: &mut LogData,
    record: LogRecord,
    segment_id: u64,
    segment_max: &mut BTreeMap<u64, Option<u64>>,
) {
    match record {
        LogRecord::Entry(entry) => {
            let index = entry.log_id.index;
            let max = segment_max.entry(segment_id).or_default();
            *max = (*max).max(Some(index));
            data.entries.insert(index, entry);
        }
        LogRecord::TruncateAfter(after) => {
            let first_removed = after.map_or(0, |l| l.index + 1);
            data.entries.split_off(&first_removed);
        }
        LogRecord::Purge(upto) => {
            data.entries = data.entries.split_off(&(upto.index + 1));
            if data.last_purged < Some(upto) {
                data.last_purged = Some(upto);
            }
        }
        LogRecord::Committed(committed) => {
            if data.committed < committed {
                data.committed = committed;
            }
        }
    }
}

fn writer_loop(queue: Arc<WalQueue>) {
    let _stopped = StoppedOnExit(queue.clone());
    // Group commit: everything that queued up while the last sync was in flight.
    loop {
        queue.wait_for_work();
        let mut wal = queue.wal.lock().unwrap_or_else(|e| e.into_inner());
        let batch = queue.take(65_536);
        if batch.is_empty() {
            if queue.lock().closed {
                // Closed, and everything written.
                return;
            }
            // An inline write took the jobs this wake-up was for.
            continue;
        }
        wal.run(batch);
    }
}

fn write_batch(
    wal: &mut Wal,
    segment_max: &mut BTreeMap<u64, Option<u64>>,
    batch: &[WriteJob],
    stats: &WalStats,
    failed: &AtomicBool,
) -> Result<(), WalError> {
    if failed.load(Ordering::SeqCst) {
        return Err(WalError::Io {
            path: wal.segment_path(wal.current_segment_id()),
            source: io::Error::other("an earlier WAL write failed"),
        });
    }
    let mut purge_upto = None;
    let mut entries = 0u64;
    for job in batch {
        for (index, payload) in &job.records {
            let segment = wal.append(payload)?;
            let max = segment_max.entry(segment).or_default();
            *max = (*max).max(*index);
            if index.is_some() {
                entries += 1;
            }
        }
        purge_upto = purge_upto.max(job.purge_upto);
    }
    if batch.iter().all(|job| job.done.is_none()) {
        // Only lazy records: write them, and leave them for the next sync instead of paying
        // one now.
        return wal.flush();
    }
    let started = std::time::Instant::now();
    wal.sync()?;
    let took = started.elapsed().as_nanos() as u64;
    stats.sync_nanos_total.fetch_add(took, Ordering::Relaxed);
    stats.last_sync_nanos.store(took, Ordering::Relaxed);
    stats.syncs.fetch_add(1, Ordering::Relaxed);
    stats.entries.fetch_add(entries, Ordering::Relaxed);
    if let Some(upto) = purge_upto {
        // A segment can go once every entry in it is purged. The latest Purge record is in the
        // current segment, which is never removed, so replay still knows the purge point.
        let current = wal.current_segment_id();
        let removable: Vec<u64> = segment_max
            .iter()
            .filter(|(id, max)| **id < current && max.is_none_or(|m| m <= upto))
            .map(|(id, _)| *id)
            .collect();
        if !removable.is_empty() {
            wal.remove_segments(&removable)?;
            for id in &removable {
                segment_max.remove(id);
            }
        }
    }
    Ok(())
}

fn read_vote_file(path: &Path) -> Result<Option<Vote>, OpenError> {
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
        OpenError::Wal(WalError::Corrupt {
            file: path.to_path_buf(),
            offset: 0,
            reason,
        })
    })?;
    serde_json::from_slice(payload)
        .map(Some)
        .map_err(|e| OpenError::Undecodable {
            what: "vote file",
            file: path.to_path_buf(),
            offset: 0,
            reason: e.to_string(),
        })
}

fn range_to_start_end<RB: RangeBounds<u64>>(range: &RB) -> (u64, Bound<u64>) {
    let start = match range.start_bound() {
        Bound::Included(s) => *s,
        Bound::Excluded(s) => s + 1,
        Bound::Unbounded => 0,
    };
    (start, range.end_bound().cloned())
}

impl RaftLogReader<C> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry>, io::Error> {
        let (start, end) = range_to_start_end(&range);
        let data = self.data();
        Ok(data
            .entries
            .range((Bound::Included(start), end))
            .map(|(_, e)| e.clone())
            .collect())
    }

    async fn read_vote(&mut self) -> Result<Option<Vote>, io::Error> {
        Ok(self.data().vote)
    }
}

impl RaftLogStorage<C> for LogStore {
    type LogReader = LogStore;

    async fn get_log_state(&mut self) -> Result<LogState<C>, io::Error> {
        let data = self.data();
        let last = data.entries.values().next_back().map(|e| e.log_id);
        Ok(LogState {
            last_purged_log_id: data.last_purged,
            last_log_id: last.or(data.last_purged),
        })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote) -> Result<(), io::Error> {
        if let Some(path) = self.shared.vote_path.clone() {
            let payload = serde_json::to_vec(vote).map_err(io::Error::other)?;
            // The vote must be durable before it is returned: a node that forgets its vote can
            // vote twice in one term.
            tokio::task::spawn_blocking(move || crate::framed_file::write_atomic(&path, &payload))
                .await
                .map_err(io::Error::other)??;
        }
        self.data().vote = Some(*vote);
        Ok(())
    }

    async fn save_committed(&mut self, committed: Option<LogId>) -> Result<(), io::Error> {
        self.data().committed = committed;
        if self.is_durable() {
            // Not waited for: the committed index only speeds up recovery, and it is synced
            // with the next group commit.
            let record = encode(&LogRecord::Committed(committed));
            self.submit_lazy(vec![(None, record)]);
        }
        Ok(())
    }

    async fn read_committed(&mut self) -> Result<Option<LogId>, io::Error> {
        Ok(self.data().committed)
    }

    async fn append<I>(&mut self, entries: I, callback: IOFlushed<C>) -> Result<(), io::Error>
    where
        I: IntoIterator<Item = Entry> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        mark(Stage::LogAppend);
        let durable = self.is_durable();
        let mut records = Vec::new();
        {
            let mut data = self.data();
            for entry in entries {
                let index = entry.log_id.index;
                if durable {
                    records.push((Some(index), encode(&LogRecord::Entry(entry.clone()))));
                }
                // Readable as soon as append returns, durable once the callback fires.
                data.entries.insert(index, entry);
            }
        }
        self.submit(records, None, Box::new(move |r| callback.io_completed(r)));
        Ok(())
    }

    async fn truncate_after(&mut self, last_log_id: Option<LogId>) -> Result<(), io::Error> {
        {
            let mut data = self.data();
            let first_removed = last_log_id.map_or(0, |l| l.index + 1);
            data.entries.split_off(&first_removed);
        }
        if self.is_durable() {
            let record = encode(&LogRecord::TruncateAfter(last_log_id));
            self.submit_and_wait(vec![(None, record)], None).await?;
        }
        Ok(())
    }

    async fn purge(&mut self, log_id: LogId) -> Result<(), io::Error> {
        {
            let mut data = self.data();
            data.entries = data.entries.split_off(&(log_id.index + 1));
            data.last_purged = Some(log_id);
        }
        if self.is_durable() {
            let record = encode(&LogRecord::Purge(log_id));
            self.submit_and_wait(vec![(None, record)], Some(log_id.index))
                .await?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use openraft::entry::RaftEntry;
    use openraft::testing::log_id;

    use super::*;
    use crate::types::Command;

    fn entries(term: u64, indexes: std::ops::RangeInclusive<u64>) -> Vec<Entry> {
        indexes
            .map(|i| Entry::new_normal(log_id::<C>(term, 1, i), Command(vec![i as u8; 60])))
            .collect()
    }

    /// Goal: truncation, purge, vote and commit index survive a reopen, across segment
    /// rotations and segment deletion.
    #[tokio::test]
    async fn log_state_survives_reopen() {
        let dir = std::env::temp_dir().join(format!("twinsite-log-{}", rand::random::<u64>()));
        let stats = Arc::new(WalStats::default());
        {
            let mut store = LogStore::open(&dir, 4096, stats.clone()).unwrap();
            assert!(store.is_empty());
            store
                .append(entries(1, 1..=40), IOFlushed::noop())
                .await
                .unwrap();
            store
                .truncate_after(Some(log_id::<C>(1, 1, 30)))
                .await
                .unwrap();
            store
                .append(entries(2, 31..=35), IOFlushed::noop())
                .await
                .unwrap();
            store.save_vote(&Vote::new(2, 1)).await.unwrap();
            store
                .save_committed(Some(log_id::<C>(2, 1, 33)))
                .await
                .unwrap();
            // Purge waits for its sync, which also covers every record queued before it.
            store.purge(log_id::<C>(1, 1, 25)).await.unwrap();
        }
        assert!(stats.syncs.load(Ordering::Relaxed) >= 2);
        let mut store = LogStore::open(&dir, 4096, stats).unwrap();
        let state = store.get_log_state().await.unwrap();
        assert_eq!(state.last_purged_log_id, Some(log_id::<C>(1, 1, 25)));
        assert_eq!(state.last_log_id, Some(log_id::<C>(2, 1, 35)));
        let read = store.try_get_log_entries(0..100).await.unwrap();
        let ids: Vec<_> = read.iter().map(|e| e.log_id).collect();
        let expected: Vec<_> = (26..=30)
            .map(|i| log_id::<C>(1, 1, i))
            .chain((31..=35).map(|i| log_id::<C>(2, 1, i)))
            .collect();
        assert_eq!(ids, expected);
        assert_eq!(store.read_vote().await.unwrap(), Some(Vote::new(2, 1)));
        assert_eq!(
            store.read_committed().await.unwrap(),
            Some(log_id::<C>(2, 1, 33))
        );
        drop(store);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// Goal: a journal written by a build that encoded WAL records as JSON still opens, and
    /// records appended after the upgrade (binary) follow them in the same log.
    #[tokio::test]
    async fn json_records_of_earlier_builds_still_replay() {
        let dir = std::env::temp_dir().join(format!("twinsite-log-{}", rand::random::<u64>()));
        {
            let (mut wal, _, _) = Wal::open(&dir.join("wal"), 1 << 16).unwrap();
            for entry in entries(1, 1..=3) {
                wal.append(&serde_json::to_vec(&LogRecord::Entry(entry)).unwrap())
                    .unwrap();
            }
            let committed = LogRecord::Committed(Some(log_id::<C>(1, 1, 2)));
            wal.append(&serde_json::to_vec(&committed).unwrap())
                .unwrap();
            wal.sync().unwrap();
        }
        let stats = Arc::new(WalStats::default());
        {
            let mut store = LogStore::open(&dir, 1 << 16, stats.clone()).unwrap();
            assert_eq!(
                store.read_committed().await.unwrap(),
                Some(log_id::<C>(1, 1, 2))
            );
            store.purge(log_id::<C>(1, 1, 0)).await.unwrap();
            store
                .append(entries(1, 4..=5), IOFlushed::noop())
                .await
                .unwrap();
            store.purge(log_id::<C>(1, 1, 1)).await.unwrap();
        }
        assert_eq!(reopen_and_remove(&dir, stats).await, entries(1, 2..=5));
    }

    /// Goal: in inline mode (a follower) an append is durable when `append` returns: the sync
    /// ran on the calling thread, no writer-thread hand-over. Off, the same append is only
    /// queued. Either way the records replay after a reopen, in order.
    #[tokio::test]
    async fn inline_writes_are_durable_when_append_returns() {
        let dir = std::env::temp_dir().join(format!("twinsite-log-{}", rand::random::<u64>()));
        let stats = Arc::new(WalStats::default());
        {
            let mut store = LogStore::open(&dir, 1 << 16, stats.clone()).unwrap();
            store.set_inline_writes(true);
            for i in 1..=20u64 {
                // As if the previous sync was fast (a loaded disk may really take over
                // `INLINE_SYNC_MAX`, which is the fallback checked below).
                stats.last_sync_nanos.store(0, Ordering::SeqCst);
                let before = stats.syncs.load(Ordering::SeqCst);
                store
                    .append(entries(1, i..=i), IOFlushed::noop())
                    .await
                    .unwrap();
                assert_eq!(stats.syncs.load(Ordering::SeqCst), before + 1, "entry {i}");
            }
            store.set_inline_writes(false);
            store
                .append(entries(1, 21..=30), IOFlushed::noop())
                .await
                .unwrap();
            store.set_inline_writes(true);
            stats.last_sync_nanos.store(0, Ordering::SeqCst);
            store
                .append(entries(1, 31..=31), IOFlushed::noop())
                .await
                .unwrap();
            // After a slow sync the writer thread takes the job (no inline sync: at most its
            // own sync has run when append returns); the entry is durable all the same.
            stats
                .last_sync_nanos
                .store(INLINE_SYNC_MAX.as_nanos() as u64 + 1, Ordering::SeqCst);
            let before = stats.syncs.load(Ordering::SeqCst);
            store
                .append(entries(1, 32..=32), IOFlushed::noop())
                .await
                .unwrap();
            assert!(stats.syncs.load(Ordering::SeqCst) <= before + 1);
            store.purge(log_id::<C>(1, 1, 0)).await.unwrap();
        }
        assert_eq!(reopen_and_remove(&dir, stats).await, entries(1, 1..=32));
    }

    /// Goal: a leader with inline writes on syncs its appended entries on the runtime thread,
    /// once the tasks already runnable have run, and every append queued before that rides on
    /// the one sync; with inline writes off (or after a slow sync) the writer thread syncs
    /// them. Either way the records replay after a reopen, in order.
    #[tokio::test]
    async fn leader_inline_writes_sync_on_the_runtime_thread_after_the_sends() {
        let dir = std::env::temp_dir().join(format!("twinsite-log-{}", rand::random::<u64>()));
        let stats = Arc::new(WalStats::default());
        let here = std::thread::current().id();
        // Until the writer thread sleeps, it takes any job that is queued, woken or not.
        let writer_parked = |store: &LogStore| {
            let queue = store.shared.writer.as_ref().unwrap();
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
            while !queue.lock().writer_parked {
                assert!(
                    std::time::Instant::now() < deadline,
                    "WAL writer never slept"
                );
                std::thread::yield_now();
            }
        };
        let record = |i: u64| {
            let entry = entries(1, i..=i).remove(0);
            (Some(i), encode(&LogRecord::Entry(entry)))
        };
        // Submit entries `from..=to` as one append each (as openraft does for back-to-back
        // proposals); the thread each completion ran on.
        let submit = |store: &LogStore, from: u64, to: u64| {
            (from..=to)
                .map(|i| {
                    let (tx, rx) = tokio::sync::oneshot::channel();
                    store.submit(
                        vec![record(i)],
                        None,
                        Box::new(move |r| {
                            r.unwrap();
                            let _ = tx.send(std::thread::current().id());
                        }),
                    );
                    rx
                })
                .collect::<Vec<_>>()
        };
        {
            let store = LogStore::open(&dir, 1 << 16, stats.clone()).unwrap();
            store.set_defer_wake(true);
            store.set_leader_inline(true);
            stats.last_sync_nanos.store(0, Ordering::SeqCst);
            let before = stats.syncs.load(Ordering::SeqCst);
            writer_parked(&store);
            let done = submit(&store, 1, 5);
            // Nothing is written while the submitting task runs (the sends go first).
            assert_eq!(stats.syncs.load(Ordering::SeqCst), before);
            for rx in done {
                assert_eq!(rx.await.unwrap(), here, "synced on the runtime thread");
            }
            assert_eq!(
                stats.syncs.load(Ordering::SeqCst),
                before + 1,
                "one sync for all"
            );

            // Inline off: the writer thread syncs.
            store.set_leader_inline(false);
            for rx in submit(&store, 6, 7) {
                assert_ne!(rx.await.unwrap(), here, "synced by the writer thread");
            }
            // After a slow sync the writer thread takes the jobs too.
            store.set_leader_inline(true);
            stats
                .last_sync_nanos
                .store(INLINE_SYNC_MAX.as_nanos() as u64 + 1, Ordering::SeqCst);
            for rx in submit(&store, 8, 8) {
                assert_ne!(rx.await.unwrap(), here, "slow disk: the writer thread");
            }
        }
        assert_eq!(reopen_and_remove(&dir, stats).await, entries(1, 1..=8));
    }

    /// Reopen the log in `dir`, read every entry it recovered, then delete `dir`.
    async fn reopen_and_remove(dir: &std::path::Path, stats: Arc<WalStats>) -> Vec<Entry> {
        let mut store = LogStore::open(dir, 1 << 16, stats).unwrap();
        let read = store.try_get_log_entries(0..100).await.unwrap();
        drop(store);
        std::fs::remove_dir_all(dir).unwrap();
        read
    }
}
