//! Session machinery shared by the server and client sides: the outbound log that replays are
//! served from, inbound sequence checking with gap recovery, and heartbeat / test request timers.

use std::collections::{BTreeMap, VecDeque};

use serde::{Deserialize, Serialize};
use twinsite_core::Timestamp;

use crate::enums::GapFill;
use crate::frame::{self, RawFrame};
use crate::messages::{Message, SequenceReset};
use crate::wire::FixedStr;

/// One outbound business message kept for replay, as encoded when first sent (PossDup 0).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredMessage {
    pub seq: u32,
    pub msg_type: u8,
    pub frame: Vec<u8>,
    /// Replays carry PossResend = 1 (reference §1.8: generated during an exchange outage).
    pub poss_resend: bool,
}

/// Business messages a replay may need, ascending by sequence number. Administrative messages
/// are never stored: a replay gap-fills over them.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct OutboundLog {
    messages: VecDeque<StoredMessage>,
    /// Messages with sequence numbers up to this were evicted to respect the capacity; a replay
    /// gap-fills over them.
    pub evicted_through: u32,
}

impl OutboundLog {
    pub fn push(&mut self, m: StoredMessage, capacity: usize) {
        if let Some(last) = self.messages.back() {
            assert!(m.seq > last.seq, "Invariant: outbound log is ascending");
        }
        self.messages.push_back(m);
        while self.messages.len() > capacity.max(1) {
            let old = self.messages.pop_front().expect("non-empty");
            self.evicted_through = old.seq;
        }
    }

    /// An empty log whose history up to `seq` is unavailable (manual sequence initialisation).
    pub fn starting_after(seq: u32) -> Self {
        OutboundLog {
            messages: VecDeque::new(),
            evicted_through: seq,
        }
    }

    /// Numbers up to `seq` will never be replayed (skipped by a Reset-mode Sequence Reset).
    pub fn push_evicted_through(&mut self, seq: u32) {
        self.evicted_through = self.evicted_through.max(seq);
    }

    pub fn get(&self, seq: u32) -> Option<&StoredMessage> {
        // The live path asks for the message just stored: no search for it.
        if let Some(last) = self.messages.back().filter(|m| m.seq == seq) {
            return Some(last);
        }
        self.first_at_or_after(seq).filter(|m| m.seq == seq)
    }

    pub fn len(&self) -> usize {
        self.messages.len()
    }
    pub fn is_empty(&self) -> bool {
        self.messages.is_empty()
    }
    pub fn iter(&self) -> impl Iterator<Item = &StoredMessage> {
        self.messages.iter()
    }

    /// The highest sequence number stored (0 when empty).
    pub fn last_seq(&self) -> u32 {
        self.messages.back().map_or(0, |m| m.seq)
    }

    /// The stored messages with sequence number >= `seq`, ascending. Taking the tail costs the
    /// tail, not the whole log: the live path asks for the last few messages, found by a short
    /// scan back from the end (a binary search over a long log is a dozen cache misses);
    /// anything older by a binary search.
    pub fn since(&self, seq: u32) -> impl Iterator<Item = &StoredMessage> {
        const SCAN: usize = 8;
        let m = &self.messages;
        let n = m.len();
        let mut start = n;
        while start > 0 && m[start - 1].seq >= seq {
            if n - start == SCAN {
                start = m.partition_point(|x| x.seq < seq);
                break;
            }
            start -= 1;
        }
        m.range(start..)
    }

    /// Room for `n` messages in all (at most `capacity`, the retention limit) without
    /// reallocating: a log that doubles mid-day copies every stored message while a participant
    /// waits for its answer.
    pub fn reserve(&mut self, n: usize, capacity: usize) {
        let want = n.min(capacity.max(1).saturating_add(1));
        self.messages
            .reserve(want.saturating_sub(self.messages.len()));
    }

    /// How many messages the log holds without reallocating.
    pub fn capacity(&self) -> usize {
        self.messages.capacity()
    }

    /// The first stored message with sequence number >= `seq`.
    fn first_at_or_after(&self, seq: u32) -> Option<&StoredMessage> {
        let i = self.messages.partition_point(|m| m.seq < seq);
        self.messages.get(i)
    }

    /// Flag every stored message with sequence number >= `from_seq` to carry PossResend = 1 when
    /// replayed (reference §1.8 and §3.3: re-delivery after an exchange-side outage).
    pub fn mark_poss_resend(&mut self, from_seq: u32) {
        for m in self.messages.iter_mut().filter(|m| m.seq >= from_seq) {
            m.poss_resend = true;
        }
    }

    /// The frames replaying `next..=end`, at most `budget` of them; advances `next`. Stored
    /// messages go out with PossDup = 1; runs of unstored numbers become one Sequence Reset
    /// (Gap Fill) each, sent under the run's first number with PossDup = 1.
    pub fn replay(
        &self,
        next: &mut u32,
        end: u32,
        budget: usize,
        comp_id: &FixedStr<12>,
    ) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        while *next <= end && out.len() < budget {
            match self.first_at_or_after(*next) {
                Some(m) if m.seq == *next => {
                    let mut bytes = m.frame.clone();
                    frame::restamp_flags(&mut bytes, true, m.poss_resend);
                    out.push(bytes);
                    *next += 1;
                }
                found => {
                    let new_seq = found.map_or(end + 1, |m| m.seq.min(end + 1));
                    out.push(gap_fill(*next, new_seq, comp_id));
                    *next = new_seq;
                }
            }
        }
        out
    }
}

/// A Sequence Reset in Gap Fill mode sent under `seq`, moving the peer to `new_seq`.
pub fn gap_fill(seq: u32, new_seq: u32, comp_id: &FixedStr<12>) -> Vec<u8> {
    let msg = Message::SequenceReset(SequenceReset {
        gap_fill: Some(GapFill::GapFill),
        new_sequence_number: new_seq,
    });
    frame::encode(seq, true, false, comp_id, &msg).expect("a gap fill fits a frame")
}

/// What to do with an inbound message, given its sequence number.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SeqVerdict {
    /// In sequence: process it.
    Process,
    /// Below expected with PossDup = 1: a duplicate, ignore it.
    Duplicate,
    /// Below expected without PossDup: a protocol violation (Logout and disconnect).
    TooLow { expected: u32 },
    /// A new gap: ask for `from..=to`; the message is queued.
    Gap { from: u32, to: u32 },
    /// Above the range being recovered: queued until the gap closes.
    Queued,
    /// Inside the range being recovered but out of order: dropped (reference §1.8).
    Dropped,
}

/// Inbound sequencing of one connection. The expected number itself lives in the durable
/// session state and is passed in.
#[derive(Debug, Default)]
pub struct InboundSequencer {
    /// While recovering, the last sequence number of the gap.
    recovering_through: Option<u32>,
    queue: BTreeMap<u32, RawFrame>,
}

impl InboundSequencer {
    /// Upper bound of queued out-of-range messages; beyond it the newest are dropped and will be
    /// asked for again by the next gap check.
    pub const QUEUE_MAX: usize = 10_000;

    pub fn classify(&mut self, expected: u32, frame: &RawFrame) -> SeqVerdict {
        let seq = frame.header.seq;
        if seq == expected {
            return SeqVerdict::Process;
        }
        if seq < expected {
            return if frame.header.poss_dup {
                SeqVerdict::Duplicate
            } else {
                SeqVerdict::TooLow { expected }
            };
        }
        match self.recovering_through {
            Some(end) if seq <= end => SeqVerdict::Dropped,
            Some(_) => {
                self.enqueue(frame);
                SeqVerdict::Queued
            }
            None => {
                self.recovering_through = Some(seq - 1);
                self.enqueue(frame);
                SeqVerdict::Gap {
                    from: expected,
                    to: seq - 1,
                }
            }
        }
    }

    fn enqueue(&mut self, frame: &RawFrame) {
        if self.queue.len() < Self::QUEUE_MAX {
            self.queue.insert(frame.header.seq, frame.clone());
        }
    }

    /// Expect the peer to replay up to and including `through` on its own (the logon replay),
    /// without asking for it.
    pub fn expect_replay_through(&mut self, through: u32) {
        self.recovering_through = Some(through);
    }

    pub fn is_recovering(&self) -> bool {
        self.recovering_through.is_some()
    }

    /// After the expected number moved: end recovery once it passes the gap, and hand back a
    /// queued message that is now in sequence.
    pub fn take_ready(&mut self, expected: u32) -> Option<RawFrame> {
        if self.recovering_through.is_some_and(|end| expected > end) {
            self.recovering_through = None;
        }
        self.queue.retain(|&s, _| s >= expected);
        if self.recovering_through.is_some() {
            return None;
        }
        let first = *self.queue.keys().next()?;
        if first == expected {
            self.queue.remove(&first)
        } else {
            // A hole remains above the recovered range: recover it next.
            None
        }
    }

    /// The lowest queued number above `expected`, if a hole is left after recovery.
    pub fn next_gap(&mut self, expected: u32) -> Option<(u32, u32)> {
        if self.recovering_through.is_some() {
            return None;
        }
        let first = *self.queue.keys().next()?;
        (first > expected).then(|| {
            self.recovering_through = Some(first - 1);
            (expected, first - 1)
        })
    }
}

/// Heartbeat and test-request timers (reference §1.7), in nanoseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct TimerConfig {
    pub heartbeat_interval_ns: u64,
    /// Silent intervals before a Test Request.
    pub test_request_after_intervals: u32,
    /// Further silent intervals (after the Test Request) before Logout and disconnect.
    pub logout_after_intervals: u32,
}

impl Default for TimerConfig {
    fn default() -> Self {
        use twinsite_core::limits::*;
        TimerConfig {
            heartbeat_interval_ns: OCG_HEARTBEAT_SECS * twinsite_core::time::NANOS_PER_SEC,
            test_request_after_intervals: OCG_TEST_REQUEST_AFTER_INTERVALS,
            logout_after_intervals: OCG_LOGOUT_AFTER_INTERVALS,
        }
    }
}

/// What the liveness timers ask for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LivenessEvent {
    SendHeartbeat,
    SendTestRequest(u16),
    /// No answer to the Test Request: Logout and disconnect.
    Dead,
}

#[derive(Debug, Clone)]
pub struct Liveness {
    config: TimerConfig,
    last_sent: Timestamp,
    last_received: Timestamp,
    test_request: Option<u16>,
    next_test_request_id: u16,
}

impl Liveness {
    pub fn new(config: TimerConfig, now: Timestamp) -> Self {
        assert!(
            config.heartbeat_interval_ns > 0,
            "Condition failed: heartbeat interval is zero"
        );
        Liveness {
            config,
            last_sent: now,
            last_received: now,
            test_request: None,
            next_test_request_id: 1,
        }
    }
    pub fn on_sent(&mut self, now: Timestamp) {
        self.last_sent = self.last_sent.max(now);
    }
    /// Any inbound message proves the peer alive.
    pub fn on_received(&mut self, now: Timestamp) {
        self.last_received = self.last_received.max(now);
        self.test_request = None;
    }
    fn test_request_at(&self) -> Timestamp {
        let n = self.config.test_request_after_intervals as u64;
        self.last_received
            .plus_nanos(n * self.config.heartbeat_interval_ns)
    }
    fn dead_at(&self) -> Timestamp {
        let n =
            (self.config.test_request_after_intervals + self.config.logout_after_intervals) as u64;
        self.last_received
            .plus_nanos(n * self.config.heartbeat_interval_ns)
    }
    fn heartbeat_at(&self) -> Timestamp {
        self.last_sent.plus_nanos(self.config.heartbeat_interval_ns)
    }

    pub fn poll(&mut self, now: Timestamp) -> Option<LivenessEvent> {
        if self.test_request.is_some() && now >= self.dead_at() {
            return Some(LivenessEvent::Dead);
        }
        if self.test_request.is_none() && now >= self.test_request_at() {
            let id = self.next_test_request_id;
            self.next_test_request_id = self.next_test_request_id.wrapping_add(1).max(1);
            self.test_request = Some(id);
            return Some(LivenessEvent::SendTestRequest(id));
        }
        if now >= self.heartbeat_at() {
            return Some(LivenessEvent::SendHeartbeat);
        }
        None
    }

    pub fn next_deadline(&self) -> Timestamp {
        let peer = if self.test_request.is_some() {
            self.dead_at()
        } else {
            self.test_request_at()
        };
        peer.min(self.heartbeat_at())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::messages::{Heartbeat, TestRequest};
    use twinsite_core::time::NANOS_PER_SEC;

    fn comp() -> FixedStr<12> {
        FixedStr::new("CO1")
    }

    fn stored(seq: u32) -> StoredMessage {
        let msg = Message::TestRequest(TestRequest {
            test_request_id: seq as u16,
        });
        StoredMessage {
            seq,
            msg_type: 1,
            frame: frame::encode(seq, false, false, &comp(), &msg).unwrap(),
            poss_resend: false,
        }
    }

    #[test]
    fn since_is_the_tail_from_a_number_whatever_its_distance_from_the_end() {
        // Numbers with gaps (administrative messages are not stored), some evicted.
        let mut log = OutboundLog::default();
        for seq in (1..=60u32).filter(|s| s % 3 != 0) {
            log.push(stored(seq), 30);
        }
        for from in 0..=65u32 {
            let want: Vec<u32> = log.iter().map(|m| m.seq).filter(|&s| s >= from).collect();
            let got: Vec<u32> = log.since(from).map(|m| m.seq).collect();
            assert_eq!(got, want, "since({from})");
        }
        assert_eq!(log.last_seq(), 59);
        assert_eq!(OutboundLog::default().since(1).count(), 0);
        assert_eq!(OutboundLog::default().last_seq(), 0);
    }

    #[test]
    fn reserve_makes_room_up_to_the_retention_limit() {
        let mut log = OutboundLog::default();
        log.reserve(1_000, 100);
        assert!(log.capacity() >= 101);
        let cap = log.capacity();
        for seq in 1..=500 {
            log.push(stored(seq), 100);
        }
        assert_eq!(
            log.capacity(),
            cap,
            "no reallocation within the reservation"
        );
    }

    #[test]
    fn replay_sends_stored_messages_and_gap_fills_the_rest() {
        let mut log = OutboundLog::default();
        for s in [3, 4, 7] {
            log.push(stored(s), 100);
        }
        log.mark_poss_resend(7);
        let mut next = 1;
        let frames = log.replay(&mut next, 9, 100, &comp());
        let decoded: Vec<_> = frames
            .iter()
            .map(|f| frame::decode_one(f).unwrap())
            .collect();
        let summary: Vec<_> = decoded
            .iter()
            .map(|(h, m)| match m {
                Message::SequenceReset(r) => (h.seq, "gap", r.new_sequence_number, h.poss_resend),
                _ => (h.seq, "msg", 0, h.poss_resend),
            })
            .collect();
        assert_eq!(
            summary,
            [
                (1, "gap", 3, false),
                (3, "msg", 0, false),
                (4, "msg", 0, false),
                (5, "gap", 7, false),
                (7, "msg", 0, true),
                (8, "gap", 10, false)
            ]
        );
        assert!(decoded.iter().all(|(h, _)| h.poss_dup));
        assert_eq!(next, 10);
    }

    #[test]
    fn replay_respects_its_budget() {
        let mut log = OutboundLog::default();
        for s in 1..=5 {
            log.push(stored(s), 100);
        }
        let mut next = 1;
        assert_eq!(log.replay(&mut next, 5, 2, &comp()).len(), 2);
        assert_eq!(next, 3);
    }

    fn raw(seq: u32, poss_dup: bool) -> RawFrame {
        let msg = Message::Heartbeat(Heartbeat {
            reference_test_request_id: None,
        });
        let bytes = frame::encode(seq, poss_dup, false, &comp(), &msg).unwrap();
        frame::decode_frame(&bytes, frame::MAX_FRAME_LEN)
            .unwrap()
            .unwrap()
            .0
    }

    #[test]
    fn gap_is_requested_once_and_queued_messages_follow_the_fill() {
        let mut s = InboundSequencer::default();
        assert_eq!(s.classify(5, &raw(5, false)), SeqVerdict::Process);
        assert_eq!(s.classify(5, &raw(4, true)), SeqVerdict::Duplicate);
        assert_eq!(
            s.classify(5, &raw(4, false)),
            SeqVerdict::TooLow { expected: 5 }
        );
        assert_eq!(
            s.classify(6, &raw(9, false)),
            SeqVerdict::Gap { from: 6, to: 8 }
        );
        assert_eq!(s.classify(6, &raw(10, false)), SeqVerdict::Queued);
        assert_eq!(s.classify(6, &raw(8, false)), SeqVerdict::Dropped);
        assert_eq!(s.classify(6, &raw(6, true)), SeqVerdict::Process);
        assert_eq!(s.take_ready(7), None);
        assert_eq!(s.take_ready(9).map(|f| f.header.seq), Some(9));
        assert_eq!(s.take_ready(10).map(|f| f.header.seq), Some(10));
        assert!(!s.is_recovering());
    }

    #[test]
    fn silence_leads_to_heartbeat_then_test_request_then_death() {
        let hb = 20 * NANOS_PER_SEC;
        let mut l = Liveness::new(TimerConfig::default(), Timestamp(0));
        assert_eq!(l.poll(Timestamp(hb - 1)), None);
        assert_eq!(l.poll(Timestamp(hb)), Some(LivenessEvent::SendHeartbeat));
        l.on_sent(Timestamp(hb));
        l.on_received(Timestamp(hb));
        assert_eq!(
            l.poll(Timestamp(4 * hb)),
            Some(LivenessEvent::SendTestRequest(1))
        );
        l.on_sent(Timestamp(4 * hb));
        assert_eq!(l.next_deadline(), Timestamp(5 * hb));
        l.on_sent(Timestamp(7 * hb - 1));
        assert_eq!(l.poll(Timestamp(7 * hb - 1)), None);
        assert_eq!(l.poll(Timestamp(7 * hb)), Some(LivenessEvent::Dead));
    }
}
