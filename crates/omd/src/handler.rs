//! Reference feed handler (client side, sans-IO, §3.1–§3.6).
//!
//! Per channel: A/B arbitration per message sequence number (first come, first served), gap
//! detection (from packets and heartbeats), a configurable wait for the other line, then a
//! retransmission request, then the refresh service. Sequence Reset clears the channel and
//! rebuilds from refresh; the DR signal clears everything (status 1) and rebuilds from refresh
//! (status 2). Malformed input is reported as a [`Problem`] and recovered by the next rung;
//! nothing here panics on input.

use crate::image::{ApplyError, MarketImage};
use crate::message::Message;
use crate::packet::{raw_msg_type, Packet};
use crate::publisher::{DrStatus, Line};
use crate::rts::{RtsClient, RtsClientConfig, RtsClientEvent};
use crate::wire::DecodeError;
use std::collections::{BTreeMap, VecDeque};
use twinsite_core::limits::{OMD_RTS_MAX_PER_REQUEST, OMD_RTS_RETAINED_PER_CHANNEL};
use twinsite_core::time::NANOS_PER_MILLI;
use twinsite_core::Timestamp;

/// Per-channel handler configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HandlerConfig {
    pub channel_id: u16,
    /// How long to wait for the other line to fill a gap before asking the RTS (default 50 ms,
    /// our choice: the reference says "configurable").
    pub other_line_wait_ns: u64,
    /// Use the retransmission service for gaps; otherwise go straight to refresh.
    pub use_retransmission: bool,
    /// Gaps older than this many messages are not requested (the RTS keeps 50,000).
    pub retransmission_window: u32,
    /// Rebuild from refresh after a Sequence Reset, as the reference requires (default true).
    pub refresh_after_sequence_reset: bool,
    /// Messages buffered while recovering; beyond this the buffer is dropped and the channel
    /// rebuilt from refresh.
    pub max_buffered: usize,
    /// Report every applied message as [`HandlerEvent::Message`].
    pub emit_messages: bool,
}

impl HandlerConfig {
    pub fn new(channel_id: u16) -> HandlerConfig {
        HandlerConfig {
            channel_id,
            other_line_wait_ns: 50 * NANOS_PER_MILLI,
            use_retransmission: true,
            retransmission_window: OMD_RTS_RETAINED_PER_CHANNEL,
            refresh_after_sequence_reset: true,
            max_buffered: 200_000,
            emit_messages: false,
        }
    }
}

/// Something wrong with the input; the handler recovers by itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Problem {
    /// The packet's framing is broken (truncated, MsgSize vs PktSize, MsgCount); dropped.
    MalformedPacket { line: Line, error: DecodeError },
    /// A message type this handler does not know; skipped (its sequence number is consumed).
    UnknownMessageType { seq_num: u32, msg_type: u16 },
    /// A known message that does not decode; skipped, and the channel is rebuilt.
    UndecodableMessage { seq_num: u32, error: DecodeError },
    /// The stream contradicts the image (e.g. modify of an unknown order); rebuilt.
    Inconsistent { seq_num: u32, error: ApplyError },
    /// The retransmission service refused or failed; falling back to refresh.
    RetransmissionFailed { reason: String },
    /// Refresh packets were lost or malformed mid-snapshot (next expected refresh sequence
    /// number, and the one seen); waiting for the next cycle.
    RefreshCycleLost { expected: Option<u32>, seen: u32 },
    /// Too many messages buffered while recovering; buffer dropped.
    BufferOverflow,
}

/// What the handler reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HandlerEvent {
    Problem {
        channel: u16,
        problem: Problem,
    },
    GapDetected {
        channel: u16,
        from: u32,
        to: u32,
    },
    /// The gap closed without retransmission (the other line, or a late packet).
    GapFilledByLine {
        channel: u16,
    },
    RetransmissionRequested {
        channel: u16,
        begin: u32,
        end: u32,
    },
    RetransmissionComplete {
        channel: u16,
    },
    RefreshStarted {
        channel: u16,
    },
    Refreshed {
        channel: u16,
        last_seq_num: u32,
    },
    SequenceReset {
        channel: u16,
    },
    DisasterRecovery {
        status: DrStatus,
    },
    Message {
        channel: u16,
        seq_num: u32,
        message: Box<Message>,
    },
}

/// Counters, for tests and operations.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HandlerStats {
    pub packets: u64,
    pub duplicate_messages: u64,
    pub applied_messages: u64,
    pub gaps: u64,
    pub retransmission_requests: u64,
    pub refreshes: u64,
    pub problems: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Recovery {
    /// In sequence.
    None,
    /// A gap; waiting for the other line until `since + other_line_wait_ns`.
    WaitingOtherLine { since: Timestamp },
    /// A retransmission request is outstanding (or queued) for `begin..=end`.
    Retransmitting { begin: u32, end: u32 },
    /// Rebuilding from the refresh channel.
    Refreshing,
    /// DR in progress: cleared, waiting for DR completed.
    Suspended,
}

#[derive(Debug, Clone, PartialEq)]
enum RefreshPhase {
    /// Discard until a Refresh Complete marks the start of a whole snapshot.
    Discarding,
    Collecting(Vec<Message>),
}

/// The handler of one real-time channel and its refresh channel.
#[derive(Debug, Clone)]
pub struct ChannelHandler {
    config: HandlerConfig,
    /// True once the expected sequence number is known (after a reset or a snapshot).
    synced: bool,
    expected: u32,
    /// Messages received at or beyond `expected` (all of them while not synced).
    buffer: BTreeMap<u32, Vec<u8>>,
    /// Highest sequence number known to exist (packets and heartbeats).
    highest_seen: u32,
    recovery: Recovery,
    refresh_phase: RefreshPhase,
    refresh_expected: Option<u32>,
    refresh_pending: BTreeMap<u32, Vec<u8>>,
    refresh_highest: u32,
    refresh_gap_since: Option<Timestamp>,
    /// SendTime of the last Sequence Reset packet processed: its copy on the other line and
    /// older packets are recognised by it.
    reset_send_time: Option<u64>,
    image: MarketImage,
    rts_wanted: Option<(u32, u32)>,
    events: VecDeque<HandlerEvent>,
    stats: HandlerStats,
}

impl ChannelHandler {
    /// A handler that starts unsynchronised: it rebuilds from a Sequence Reset or from refresh.
    pub fn new(config: HandlerConfig) -> ChannelHandler {
        ChannelHandler {
            config,
            synced: false,
            expected: 1,
            buffer: BTreeMap::new(),
            highest_seen: 0,
            recovery: Recovery::Refreshing,
            refresh_phase: RefreshPhase::Discarding,
            refresh_expected: None,
            refresh_pending: BTreeMap::new(),
            refresh_highest: 0,
            refresh_gap_since: None,
            reset_send_time: None,
            image: MarketImage::default(),
            rts_wanted: None,
            events: VecDeque::new(),
            stats: HandlerStats::default(),
        }
    }

    pub fn channel_id(&self) -> u16 {
        self.config.channel_id
    }
    pub fn image(&self) -> &MarketImage {
        &self.image
    }
    pub fn stats(&self) -> &HandlerStats {
        &self.stats
    }
    /// True when in sequence with nothing to recover.
    pub fn is_live(&self) -> bool {
        self.synced && self.recovery == Recovery::None
    }
    /// Next sequence number expected on the real-time channel.
    pub fn expected_seq(&self) -> u32 {
        self.expected
    }
    /// True while the handler needs the refresh channel (join it); false: leave it.
    pub fn wants_refresh(&self) -> bool {
        self.recovery == Recovery::Refreshing
    }

    /// Invariants checked after every entry point (debug builds).
    fn check_invariants(&self) {
        if self.synced {
            debug_assert!(
                self.buffer
                    .keys()
                    .next()
                    .is_none_or(|&seq| seq >= self.expected),
                "Invariant: nothing below the expected sequence number stays buffered"
            );
        }
        if self.synced && self.recovery == Recovery::None {
            debug_assert!(
                self.gap().is_none(),
                "Invariant: no unhandled gap when live"
            );
        }
        if !self.synced {
            debug_assert!(
                matches!(self.recovery, Recovery::Refreshing | Recovery::Suspended),
                "Invariant: an unsynchronised channel is refreshing or suspended"
            );
        }
    }

    fn event(&mut self, event: HandlerEvent) {
        if let HandlerEvent::Problem { .. } = event {
            self.stats.problems += 1;
        }
        self.events.push_back(event);
    }

    fn problem(&mut self, problem: Problem) {
        let channel = self.config.channel_id;
        self.event(HandlerEvent::Problem { channel, problem });
    }

    /// A datagram from the real-time channel.
    pub fn handle_packet(&mut self, line: Line, bytes: &[u8], now: Timestamp) {
        self.handle_packet_inner(line, bytes, now);
        self.check_invariants();
    }

    fn handle_packet_inner(&mut self, line: Line, bytes: &[u8], now: Timestamp) {
        self.stats.packets += 1;
        let packet = match Packet::parse(bytes) {
            Ok(packet) => packet,
            Err(error) => return self.problem(Problem::MalformedPacket { line, error }),
        };
        if self
            .reset_send_time
            .is_some_and(|t| packet.header.send_time < t)
        {
            // Sent before the last Sequence Reset: old numbering.
            return;
        }
        if packet.header.is_heartbeat() {
            self.highest_seen = self.highest_seen.max(packet.header.seq_num);
        }
        for (seq, raw) in packet.messages() {
            if raw_msg_type(raw) == Some(crate::message::SequenceReset::MSG_TYPE) {
                // Messages after a reset in the same packet are not expected (the publisher
                // sends it alone); they are ignored.
                return self.sequence_reset(raw, packet.header.send_time, now);
            }
            self.accept(seq, raw);
        }
        self.after_input(now);
    }

    /// A message from the live stream or from retransmission.
    fn accept(&mut self, seq: u32, raw: &[u8]) {
        self.highest_seen = self.highest_seen.max(seq);
        if self.synced && seq < self.expected || self.buffer.contains_key(&seq) {
            self.stats.duplicate_messages += 1;
            return;
        }
        self.buffer.insert(seq, raw.to_vec());
    }

    fn sequence_reset(&mut self, raw: &[u8], send_time: u64, now: Timestamp) {
        if self.reset_send_time == Some(send_time) {
            // The same reset on the other line.
            return;
        }
        let new_seq_no = match Message::decode(raw) {
            Ok(Message::SequenceReset(reset)) => reset.new_seq_no,
            Ok(_) => 1,
            Err(error) => {
                return self.problem(Problem::UndecodableMessage { seq_num: 0, error });
            }
        };
        self.reset_send_time = Some(send_time);
        self.image.clear();
        self.buffer.clear();
        self.expected = new_seq_no;
        self.highest_seen = new_seq_no.wrapping_sub(1);
        let channel = self.config.channel_id;
        self.event(HandlerEvent::SequenceReset { channel });
        if self.recovery == Recovery::Suspended {
            self.synced = false;
        } else if self.config.refresh_after_sequence_reset {
            self.synced = false;
            self.start_refresh();
        } else {
            self.synced = true;
            self.recovery = Recovery::None;
        }
        self.after_input(now);
    }

    /// Apply what is in sequence, then look for a gap.
    fn after_input(&mut self, now: Timestamp) {
        if self.buffer.len() > self.config.max_buffered {
            self.buffer.clear();
            self.problem(Problem::BufferOverflow);
            if self.recovery != Recovery::Suspended {
                self.synced = false;
                self.start_refresh();
            }
        }
        if !self.synced {
            return;
        }
        while let Some(raw) = self.buffer.remove(&self.expected) {
            let seq = self.expected;
            self.expected = self.expected.wrapping_add(1);
            self.apply(seq, &raw);
            if !self.synced {
                return;
            }
        }
        self.check_gap(now);
    }

    fn apply(&mut self, seq_num: u32, raw: &[u8]) {
        let msg = match Message::decode(raw) {
            Ok(msg) => msg,
            Err(DecodeError::UnknownType { msg_type }) => {
                return self.problem(Problem::UnknownMessageType { seq_num, msg_type });
            }
            Err(error) => {
                self.problem(Problem::UndecodableMessage { seq_num, error });
                return self.lose_sync();
            }
        };
        if let Err(error) = self.image.apply(&msg) {
            self.problem(Problem::Inconsistent { seq_num, error });
            return self.lose_sync();
        }
        self.stats.applied_messages += 1;
        if self.config.emit_messages {
            let channel = self.config.channel_id;
            self.event(HandlerEvent::Message {
                channel,
                seq_num,
                message: Box::new(msg),
            });
        }
    }

    /// The image cannot be trusted: rebuild from refresh, keeping the buffer.
    fn lose_sync(&mut self) {
        self.synced = false;
        self.start_refresh();
    }

    fn start_refresh(&mut self) {
        if self.recovery != Recovery::Refreshing {
            self.recovery = Recovery::Refreshing;
            self.refresh_restart();
            self.stats.refreshes += 1;
            let channel = self.config.channel_id;
            self.event(HandlerEvent::RefreshStarted { channel });
        }
    }

    /// The first missing sequence number run, if any: `expected..=end`.
    fn gap(&self) -> Option<(u32, u32)> {
        if !self.synced || self.highest_seen < self.expected {
            return None;
        }
        let end = match self.buffer.range(self.expected..).next() {
            Some((&next, _)) => next - 1,
            None => self.highest_seen,
        };
        Some((self.expected, end))
    }

    fn check_gap(&mut self, now: Timestamp) {
        let channel = self.config.channel_id;
        match (self.gap(), &self.recovery) {
            (Some((from, to)), Recovery::None) => {
                self.stats.gaps += 1;
                self.recovery = Recovery::WaitingOtherLine { since: now };
                self.event(HandlerEvent::GapDetected { channel, from, to });
            }
            (None, Recovery::WaitingOtherLine { .. }) => {
                self.recovery = Recovery::None;
                self.event(HandlerEvent::GapFilledByLine { channel });
            }
            (None, Recovery::Retransmitting { .. }) => {
                // Filled by the lines while the request was outstanding; its messages will be
                // duplicates.
                self.recovery = Recovery::None;
            }
            _ => {}
        }
    }

    /// Timers: the wait for the other line.
    pub fn handle_timeout(&mut self, now: Timestamp) {
        self.handle_timeout_inner(now);
        self.check_invariants();
    }

    fn handle_timeout_inner(&mut self, now: Timestamp) {
        if self.recovery == Recovery::Refreshing {
            self.refresh_gap_timeout(now);
        }
        if let Recovery::WaitingOtherLine { since } = self.recovery {
            if now.saturating_sub(since) >= self.config.other_line_wait_ns {
                self.escalate();
            }
        }
    }

    pub fn poll_timeout(&self) -> Option<Timestamp> {
        match self.recovery {
            Recovery::WaitingOtherLine { since } => {
                Some(since.plus_nanos(self.config.other_line_wait_ns))
            }
            Recovery::Refreshing => self
                .refresh_gap_since
                .map(|since| since.plus_nanos(self.config.other_line_wait_ns)),
            _ => None,
        }
    }

    /// Next rung after the other line: retransmission if the gap is retained, else refresh.
    fn escalate(&mut self) {
        let Some((begin, end)) = self.gap() else {
            self.recovery = Recovery::None;
            return;
        };
        let too_old = self.highest_seen.saturating_sub(begin) >= self.config.retransmission_window;
        if !self.config.use_retransmission || too_old {
            return self.start_refresh();
        }
        let end = end.min(begin.saturating_add(OMD_RTS_MAX_PER_REQUEST - 1));
        self.recovery = Recovery::Retransmitting { begin, end };
        self.rts_wanted = Some((begin, end));
        self.stats.retransmission_requests += 1;
        let channel = self.config.channel_id;
        self.event(HandlerEvent::RetransmissionRequested {
            channel,
            begin,
            end,
        });
    }

    /// A retransmission request this channel wants sent (taken by [`FeedHandler`]).
    pub fn poll_retransmission_request(&mut self) -> Option<(u32, u32)> {
        self.rts_wanted.take()
    }

    /// A message from the retransmission service, with its original sequence number.
    pub fn handle_retransmitted(&mut self, seq_num: u32, raw: &[u8], now: Timestamp) {
        self.handle_retransmitted_inner(seq_num, raw, now);
        self.check_invariants();
    }

    fn handle_retransmitted_inner(&mut self, seq_num: u32, raw: &[u8], now: Timestamp) {
        self.accept(seq_num, raw);
        self.after_input(now);
    }

    /// The outstanding request is complete: continue, or ask for the rest of the gap.
    pub fn handle_retransmission_complete(&mut self, now: Timestamp) {
        self.handle_retransmission_complete_inner(now);
        self.check_invariants();
    }

    fn handle_retransmission_complete_inner(&mut self, now: Timestamp) {
        if let Recovery::Retransmitting { .. } = self.recovery {
            let channel = self.config.channel_id;
            self.event(HandlerEvent::RetransmissionComplete { channel });
            self.recovery = Recovery::None;
            self.after_input(now);
            if let Recovery::WaitingOtherLine { .. } = self.recovery {
                self.escalate();
            }
        }
    }

    /// The RTS refused or failed: next rung, refresh.
    pub fn handle_retransmission_failed(&mut self, reason: String) {
        if let Recovery::Retransmitting { .. } = self.recovery {
            self.rts_wanted = None;
            self.problem(Problem::RetransmissionFailed { reason });
            self.start_refresh();
        }
    }

    /// A datagram from the refresh channel (ignored unless refreshing). Refresh channels are
    /// arbitrated like real-time ones (per sequence number, both lines, reordering tolerated
    /// for `other_line_wait_ns`); a message that never arrives loses the current cycle.
    pub fn handle_refresh_packet(&mut self, line: Line, bytes: &[u8], now: Timestamp) {
        self.handle_refresh_packet_inner(line, bytes, now);
        self.check_invariants();
    }

    fn handle_refresh_packet_inner(&mut self, line: Line, bytes: &[u8], now: Timestamp) {
        if self.recovery != Recovery::Refreshing {
            return;
        }
        let packet = match Packet::parse(bytes) {
            Ok(packet) => packet,
            Err(error) => {
                self.problem(Problem::MalformedPacket { line, error });
                return;
            }
        };
        if packet.header.is_heartbeat() {
            self.refresh_highest = self.refresh_highest.max(packet.header.seq_num);
        }
        for (seq, raw) in packet.messages() {
            if raw_msg_type(raw) == Some(crate::message::SequenceReset::MSG_TYPE) {
                self.refresh_restart();
                continue;
            }
            let expected = *self.refresh_expected.get_or_insert(seq);
            self.refresh_highest = self.refresh_highest.max(seq);
            if seq >= expected {
                self.refresh_pending
                    .entry(seq)
                    .or_insert_with(|| raw.to_vec());
            }
        }
        self.refresh_drain(now);
    }

    fn refresh_restart(&mut self) {
        self.refresh_phase = RefreshPhase::Discarding;
        self.refresh_expected = None;
        self.refresh_pending.clear();
        self.refresh_gap_since = None;
        self.refresh_highest = 0;
    }

    /// Process refresh messages in sequence; note when a gap starts.
    fn refresh_drain(&mut self, now: Timestamp) {
        while let Some(expected) = self.refresh_expected {
            let Some(raw) = self.refresh_pending.remove(&expected) else {
                break;
            };
            self.refresh_expected = Some(expected.wrapping_add(1));
            self.refresh_message(&raw, now);
            if self.recovery != Recovery::Refreshing {
                self.refresh_restart();
                return;
            }
        }
        let gap = self
            .refresh_expected
            .is_some_and(|e| !self.refresh_pending.is_empty() || self.refresh_highest >= e);
        if !gap {
            self.refresh_gap_since = None;
        } else if self.refresh_gap_since.is_none() {
            self.refresh_gap_since = Some(now);
        }
    }

    /// A refresh gap that outlived the wait: the cycle is lost; resume at what we have.
    fn refresh_gap_timeout(&mut self, now: Timestamp) {
        let Some(since) = self.refresh_gap_since else {
            return;
        };
        if now.saturating_sub(since) < self.config.other_line_wait_ns {
            return;
        }
        if let RefreshPhase::Collecting(_) = self.refresh_phase {
            let expected = self.refresh_expected;
            let seen = self
                .refresh_pending
                .keys()
                .next()
                .copied()
                .unwrap_or(self.refresh_highest);
            self.problem(Problem::RefreshCycleLost { expected, seen });
        }
        self.refresh_phase = RefreshPhase::Discarding;
        self.refresh_gap_since = None;
        self.refresh_expected = Some(match self.refresh_pending.keys().next() {
            Some(&first) => first,
            None => self.refresh_highest.wrapping_add(1),
        });
        self.refresh_drain(now);
    }

    fn refresh_message(&mut self, raw: &[u8], now: Timestamp) {
        let Ok(msg) = Message::decode(raw) else {
            if let RefreshPhase::Collecting(_) = self.refresh_phase {
                let seen = self.refresh_expected.unwrap_or(0).wrapping_sub(1);
                self.problem(Problem::RefreshCycleLost {
                    expected: Some(seen),
                    seen,
                });
            }
            self.refresh_phase = RefreshPhase::Discarding;
            return;
        };
        let phase = std::mem::replace(&mut self.refresh_phase, RefreshPhase::Discarding);
        self.refresh_phase = match (phase, msg) {
            (RefreshPhase::Discarding, Message::RefreshComplete(_)) => {
                RefreshPhase::Collecting(Vec::new())
            }
            (RefreshPhase::Discarding, _) => RefreshPhase::Discarding,
            (RefreshPhase::Collecting(snapshot), Message::RefreshComplete(done)) => {
                self.complete_snapshot(snapshot, done.last_seq_num, now);
                RefreshPhase::Collecting(Vec::new())
            }
            (RefreshPhase::Collecting(mut snapshot), msg) => {
                snapshot.push(msg);
                RefreshPhase::Collecting(snapshot)
            }
        };
    }

    fn complete_snapshot(&mut self, snapshot: Vec<Message>, last_seq_num: u32, now: Timestamp) {
        if self.synced && last_seq_num.wrapping_add(1) < self.expected {
            // Older than what we already applied: wait for the next cycle.
            return;
        }
        let mut image = MarketImage::default();
        for msg in &snapshot {
            if let Err(error) = image.apply(msg) {
                return self.problem(Problem::Inconsistent { seq_num: 0, error });
            }
        }
        self.image.replace_with_snapshot(image);
        self.synced = true;
        self.expected = last_seq_num.wrapping_add(1);
        self.highest_seen = self.highest_seen.max(last_seq_num);
        self.buffer = self.buffer.split_off(&self.expected);
        self.recovery = Recovery::None;
        let channel = self.config.channel_id;
        self.event(HandlerEvent::Refreshed {
            channel,
            last_seq_num,
        });
        self.after_input(now);
    }

    /// DR in progress: clear everything and wait for DR completed.
    pub fn disaster_recovery_started(&mut self) {
        self.image.clear();
        self.buffer.clear();
        self.synced = false;
        self.rts_wanted = None;
        self.recovery = Recovery::Suspended;
    }

    /// DR completed: rebuild from refresh.
    pub fn disaster_recovery_completed(&mut self) {
        self.recovery = Recovery::None;
        self.synced = false;
        self.start_refresh();
    }

    pub fn poll_event(&mut self) -> Option<HandlerEvent> {
        self.events.pop_front()
    }
}

/// All channels of a feed, the DR channel and the retransmission session.
#[derive(Debug, Clone)]
pub struct FeedHandler {
    channels: BTreeMap<u16, ChannelHandler>,
    rts: RtsClient,
    /// The channel whose request is outstanding at the RTS (requests are serial).
    rts_channel: Option<u16>,
    /// The outstanding request was asked for on purpose ([`FeedHandler::request_retransmission`]),
    /// not by the channel's own gap.
    rts_deliberate: bool,
    dr_status: Option<DrStatus>,
    events: VecDeque<HandlerEvent>,
}

impl FeedHandler {
    pub fn new(channels: impl IntoIterator<Item = HandlerConfig>, rts: RtsClientConfig) -> Self {
        FeedHandler {
            channels: channels
                .into_iter()
                .map(|c| (c.channel_id, ChannelHandler::new(c)))
                .collect(),
            rts: RtsClient::new(rts),
            rts_channel: None,
            rts_deliberate: false,
            dr_status: None,
            events: VecDeque::new(),
        }
    }

    pub fn channel(&self, channel: u16) -> Option<&ChannelHandler> {
        self.channels.get(&channel)
    }

    /// Is the retransmission session logged on?
    pub fn rts_logged_on(&self) -> bool {
        self.rts.is_logged_on()
    }

    /// Ask the RTS for `begin..=end` of `channel` on purpose, not because of a gap: a vendor
    /// checking the service, e.g. of the backup site after the DR signal. The messages are
    /// handled like any retransmission (those the channel already applied are duplicates and
    /// ignored); the outcome is reported as `RetransmissionComplete` or a `RetransmissionFailed`
    /// problem for `channel`. Refused (Ok(false)) while another request is outstanding or
    /// wanted, or the session is not logged on.
    pub fn request_retransmission(
        &mut self,
        channel: u16,
        begin: u32,
        end: u32,
        now: Timestamp,
    ) -> Result<bool, crate::rts::RtsClientError> {
        if self.rts_channel.is_some()
            || !self.rts.is_logged_on()
            || !self.channels.contains_key(&channel)
        {
            return Ok(false);
        }
        self.rts.request(channel, begin, end, now)?;
        self.rts_channel = Some(channel);
        self.rts_deliberate = true;
        self.events
            .push_back(HandlerEvent::RetransmissionRequested {
                channel,
                begin,
                end,
            });
        self.route(now);
        Ok(true)
    }

    /// A real-time datagram.
    pub fn handle_realtime(&mut self, channel: u16, line: Line, bytes: &[u8], now: Timestamp) {
        if let Some(handler) = self.channels.get_mut(&channel) {
            handler.handle_packet(line, bytes, now);
        }
        self.route(now);
    }

    /// A refresh-channel datagram for real-time channel `channel`.
    pub fn handle_refresh(&mut self, channel: u16, line: Line, bytes: &[u8], now: Timestamp) {
        if let Some(handler) = self.channels.get_mut(&channel) {
            handler.handle_refresh_packet(line, bytes, now);
        }
        self.route(now);
    }

    /// A DR-channel datagram: DR signal 1 clears every channel, 2 rebuilds from refresh.
    /// Repeats of the current status are ignored.
    pub fn handle_dr(&mut self, _line: Line, bytes: &[u8], now: Timestamp) {
        let Ok(packet) = Packet::parse(bytes) else {
            return;
        };
        for (_, raw) in packet.messages() {
            let Ok(Message::DisasterRecoverySignal(signal)) = Message::decode(raw) else {
                continue;
            };
            let Some(status) = DrStatus::from_code(signal.dr_status) else {
                continue;
            };
            if self.dr_status == Some(status) {
                continue;
            }
            self.dr_status = Some(status);
            self.events
                .push_back(HandlerEvent::DisasterRecovery { status });
            for handler in self.channels.values_mut() {
                match status {
                    DrStatus::InProgress => handler.disaster_recovery_started(),
                    DrStatus::Completed => handler.disaster_recovery_completed(),
                }
            }
            if status == DrStatus::InProgress {
                // The RTS endpoints change with the site: drop the session.
                self.rts.handle_closed();
                self.rts_channel = None;
                self.rts_deliberate = false;
            }
        }
        self.route(now);
    }

    /// TCP to an RTS endpoint is up.
    pub fn rts_connected(&mut self, now: Timestamp) {
        self.rts.connected(now);
    }
    /// Bytes from the RTS.
    pub fn rts_data(&mut self, bytes: &[u8], now: Timestamp) {
        self.rts.handle_data(bytes, now);
        self.route(now);
    }
    /// The RTS connection is gone.
    pub fn rts_closed(&mut self, now: Timestamp) {
        self.rts.handle_closed();
        self.route(now);
    }
    /// Bytes to send to the RTS.
    pub fn poll_rts_transmit(&mut self) -> Option<Vec<u8>> {
        self.rts.poll_transmit()
    }
    /// No RTS session: connect to an endpoint (of the active site) and call `rts_connected`.
    pub fn rts_wants_connection(&self) -> bool {
        self.rts.wants_connection()
    }
    /// The RTS session is unusable: close it (and connect to another endpoint).
    pub fn rts_wants_disconnect(&self) -> bool {
        self.rts.wants_disconnect()
    }

    pub fn handle_timeout(&mut self, now: Timestamp) {
        self.rts.handle_timeout(now);
        for handler in self.channels.values_mut() {
            handler.handle_timeout(now);
        }
        self.route(now);
    }

    pub fn poll_timeout(&self) -> Option<Timestamp> {
        self.channels
            .values()
            .filter_map(ChannelHandler::poll_timeout)
            .chain(self.rts.poll_timeout())
            .min()
    }

    /// Move requests to the RTS client and its answers back to the channels.
    fn route(&mut self, now: Timestamp) {
        while let Some(event) = self.rts.poll_event() {
            self.on_rts_event(event, now);
        }
        if self.rts_channel.is_none() {
            let wanted = self
                .channels
                .iter_mut()
                .find_map(|(&id, h)| h.poll_retransmission_request().map(|r| (id, r)));
            if let Some((channel, (begin, end))) = wanted {
                match self.rts.request(channel, begin, end, now) {
                    Ok(()) => self.rts_channel = Some(channel),
                    Err(e) => {
                        if let Some(h) = self.channels.get_mut(&channel) {
                            h.handle_retransmission_failed(e.to_string());
                        }
                    }
                }
            }
        }
        while let Some(event) = self.rts.poll_event() {
            self.on_rts_event(event, now);
        }
        for handler in self.channels.values_mut() {
            while let Some(event) = handler.poll_event() {
                self.events.push_back(event);
            }
        }
    }

    fn on_rts_event(&mut self, event: RtsClientEvent, now: Timestamp) {
        match event {
            RtsClientEvent::Message {
                channel,
                seq_num,
                bytes,
            } => {
                if let Some(h) = self.channels.get_mut(&channel) {
                    h.handle_retransmitted(seq_num, &bytes, now);
                }
            }
            RtsClientEvent::Complete { channel, .. } => {
                self.rts_channel = None;
                if std::mem::take(&mut self.rts_deliberate) {
                    self.events
                        .push_back(HandlerEvent::RetransmissionComplete { channel });
                } else if let Some(h) = self.channels.get_mut(&channel) {
                    h.handle_retransmission_complete(now);
                }
            }
            RtsClientEvent::Response {
                channel, status, ..
            } if status != 0 => {
                self.rts_channel = None;
                let reason = format!("RetransStatus {status}");
                if std::mem::take(&mut self.rts_deliberate) {
                    self.deliberate_failed(channel, reason);
                } else if let Some(h) = self.channels.get_mut(&channel) {
                    h.handle_retransmission_failed(reason);
                }
            }
            RtsClientEvent::Failed { reason, .. } => self.rts_session_failed(reason),
            RtsClientEvent::LogonFailed { status } => {
                self.rts_session_failed(format!("logon failed, SessionStatus {status:?}"))
            }
            _ => {}
        }
    }

    fn deliberate_failed(&mut self, channel: u16, reason: String) {
        self.events.push_back(HandlerEvent::Problem {
            channel,
            problem: Problem::RetransmissionFailed { reason },
        });
    }

    fn rts_session_failed(&mut self, reason: String) {
        if std::mem::take(&mut self.rts_deliberate) {
            if let Some(channel) = self.rts_channel.take() {
                self.deliberate_failed(channel, reason);
            }
            return;
        }
        if let Some(h) = self
            .rts_channel
            .take()
            .and_then(|c| self.channels.get_mut(&c))
        {
            h.handle_retransmission_failed(reason);
        }
    }

    pub fn poll_event(&mut self) -> Option<HandlerEvent> {
        self.events.pop_front()
    }
}
