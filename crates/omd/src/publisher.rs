//! Channel publisher: per-channel message sequence numbers, packetisation of whole messages
//! into Line A and Line B (independently, with different flush points), heartbeats when idle,
//! the start-of-day Sequence Reset, and the DR channel's Disaster Recovery Signal.
//!
//! Sans-IO: `publish` / `flush` / `handle_timeout` take `now`; datagrams come out of
//! `poll_transmit`, and `poll_timeout` says when to call `handle_timeout` next.

use crate::message::{DisasterRecoverySignal, Message, SequenceReset};
use crate::packet::{heartbeat, PacketBuilder, PacketHeader};
use std::collections::VecDeque;
use twinsite_core::limits::OMD_MAX_PAYLOAD;
use twinsite_core::time::{NANOS_PER_MILLI, NANOS_PER_SEC};
use twinsite_core::Timestamp;

/// Line A or Line B of a dual multicast channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Line {
    A,
    B,
}

impl Line {
    pub const BOTH: [Line; 2] = [Line::A, Line::B];
    fn index(self) -> usize {
        match self {
            Line::A => 0,
            Line::B => 1,
        }
    }
}

/// How one line packs messages into packets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LinePacking {
    /// Packet size limit, header included (at most 1,472).
    pub max_payload_bytes: usize,
    /// Messages per packet (MsgCount is a Uint8).
    pub max_messages: u8,
    /// 0: a partly filled packet goes out at each `flush`. Otherwise it waits up to this long
    /// for more messages (a different flush point from the other line).
    pub linger_ns: u64,
}

/// Publisher configuration. Defaults: 2 s heartbeats; Line A packs up to 1,472 bytes and
/// flushes at each batch end; Line B packs at most 7 messages per packet and lingers 1 ms.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublisherConfig {
    pub channel_id: u16,
    pub heartbeat_interval_ns: u64,
    pub line_a: LinePacking,
    pub line_b: LinePacking,
}

impl PublisherConfig {
    pub fn new(channel_id: u16) -> PublisherConfig {
        PublisherConfig {
            channel_id,
            heartbeat_interval_ns: 2 * NANOS_PER_SEC,
            line_a: LinePacking {
                max_payload_bytes: OMD_MAX_PAYLOAD,
                max_messages: u8::MAX,
                linger_ns: 0,
            },
            line_b: LinePacking {
                max_payload_bytes: OMD_MAX_PAYLOAD,
                max_messages: 7,
                linger_ns: NANOS_PER_MILLI,
            },
        }
    }
}

/// An API misuse: the message cannot be sent on any line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PublishError {
    #[error("message of {len} bytes does not fit a packet of {max} bytes")]
    TooLarge { len: usize, max: usize },
}

/// One datagram for one line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Datagram {
    pub line: Line,
    pub bytes: Vec<u8>,
}

/// A message as published: its sequence number and bytes (to be kept for retransmission).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Published {
    pub seq_num: u32,
    pub bytes: Vec<u8>,
}

#[derive(Debug, Clone)]
struct LineState {
    packing: LinePacking,
    builder: PacketBuilder,
    /// When the first message of the open packet was added.
    pending_since: Option<Timestamp>,
    /// When this line last sent anything (packet or heartbeat).
    last_sent: Timestamp,
}

/// Publishes one channel's message stream on Line A and Line B.
#[derive(Debug, Clone)]
pub struct ChannelPublisher {
    config: PublisherConfig,
    /// Sequence number the next message gets.
    next_seq: u32,
    lines: [LineState; 2],
    out: VecDeque<Datagram>,
    /// The latest SendTime used (ms precision) and the earliest allowed from now on: a Sequence
    /// Reset gets a SendTime later than every packet before it, and no packet after it gets an
    /// earlier one, so a handler can tell old-numbering packets apart by SendTime alone.
    last_send_time: Timestamp,
    send_time_floor: Timestamp,
    /// The message being published, encoded once for both lines and the caller (reused).
    scratch: Vec<u8>,
    /// Buffers of sent datagrams handed back by [`ChannelPublisher::recycle`], reused for the
    /// next packets.
    spare: Vec<Vec<u8>>,
}

impl ChannelPublisher {
    pub fn new(config: PublisherConfig, now: Timestamp) -> ChannelPublisher {
        let line = |packing: LinePacking| LineState {
            packing,
            builder: PacketBuilder::new(packing.max_payload_bytes.min(OMD_MAX_PAYLOAD)),
            pending_since: None,
            last_sent: now,
        };
        let lines = [line(config.line_a), line(config.line_b)];
        ChannelPublisher {
            config,
            next_seq: 1,
            lines,
            out: VecDeque::new(),
            last_send_time: Timestamp(0),
            send_time_floor: Timestamp(0),
            scratch: Vec::with_capacity(64),
            spare: Vec::new(),
        }
    }

    /// The SendTime for a packet sent at `now` (never before the floor), recorded.
    fn stamp(&mut self, now: Timestamp) -> Timestamp {
        stamp(&mut self.last_send_time, self.send_time_floor, now)
    }

    pub fn channel_id(&self) -> u16 {
        self.config.channel_id
    }

    /// Sequence number of the last message sent (0 before any).
    pub fn last_seq(&self) -> u32 {
        self.next_seq.wrapping_sub(1)
    }

    /// Start a business day (or a new numbering after a failover): flush both lines, send a
    /// packet with SeqNum 1 holding only Sequence Reset (NewSeqNo 1) on both lines with the
    /// same SendTime, and number the next message 1 (reference §3.4, our documented choice).
    pub fn sequence_reset(&mut self, now: Timestamp) {
        self.flush_all(now);
        let reset = Message::from(SequenceReset { new_seq_no: 1 }).to_bytes();
        let now_ms = Timestamp(crate::packet::send_time_ms(now));
        let reset_time = if self.last_send_time >= now_ms {
            self.last_send_time.plus_nanos(NANOS_PER_MILLI)
        } else {
            now_ms
        };
        self.send_time_floor = reset_time;
        let reset_time = self.stamp(reset_time);
        for line in Line::BOTH {
            let state = &mut self.lines[line.index()];
            let accepted = state.builder.push_raw(1, &reset);
            debug_assert!(
                accepted,
                "Invariant: an empty builder takes a Sequence Reset"
            );
            let bytes = state.builder.finish(reset_time);
            state.last_sent = now;
            self.out.push_back(Datagram { line, bytes });
        }
        self.next_seq = 1;
    }

    /// Assign the next sequence number to `msg` and queue it on both lines.
    pub fn publish(&mut self, msg: &Message, now: Timestamp) -> Result<Published, PublishError> {
        let (seq_num, bytes) = self.publish_encoded(msg, now)?;
        Ok(Published {
            seq_num,
            bytes: bytes.to_vec(),
        })
    }

    /// [`ChannelPublisher::publish`] without allocating: the message is encoded once into a
    /// reused buffer, copied into both lines' open packets, and lent to the caller (to keep
    /// for retransmission) with its sequence number.
    pub fn publish_encoded(
        &mut self,
        msg: &Message,
        now: Timestamp,
    ) -> Result<(u32, &[u8]), PublishError> {
        let mut bytes = std::mem::take(&mut self.scratch);
        bytes.clear();
        let seq_num = self.publish_with(msg, now, |_, encoded| bytes.extend_from_slice(encoded));
        self.scratch = bytes;
        Ok((seq_num?, &self.scratch))
    }

    /// The publishing path without any intermediate buffer: the message is encoded straight
    /// into Line A's open packet (flushed first if the message does not fit), copied from
    /// there into Line B's, and shown to `keep` (the retransmission store) with its sequence
    /// number. The datagrams are exactly those of [`ChannelPublisher::publish`], in the same
    /// order.
    pub fn publish_with(
        &mut self,
        msg: &Message,
        now: Timestamp,
        keep: impl FnOnce(u32, &[u8]),
    ) -> Result<u32, PublishError> {
        let max = self.lines[0]
            .packing
            .max_payload_bytes
            .min(self.lines[1].packing.max_payload_bytes)
            .min(OMD_MAX_PAYLOAD);
        let a = &mut self.lines[0].builder;
        let start = a.len();
        a.append_open(|buf| msg.encode(buf));
        let len = a.len() - start;
        if len + PacketHeader::LEN > max {
            a.truncate_open(start);
            return Err(PublishError::TooLarge { len, max });
        }
        if !a.open_fits(start, len) {
            // Line A's packet is full: it goes out without the message, which starts the next.
            let mut moved = std::mem::take(&mut self.scratch);
            moved.clear();
            moved.extend_from_slice(&a.bytes()[start..]);
            a.truncate_open(start);
            self.flush_line(Line::A, now);
            self.lines[0]
                .builder
                .append_open(|buf| buf.extend_from_slice(&moved));
            self.scratch = moved;
        }
        let seq_num = self.next_seq;
        self.next_seq = self.next_seq.wrapping_add(1);
        let a = &mut self.lines[0];
        a.builder.commit_open(seq_num);
        a.pending_since.get_or_insert(now);
        if a.builder.msg_count() >= a.packing.max_messages {
            // Line A is at its message limit: its packet goes out before Line B's (rare).
            let mut moved = std::mem::take(&mut self.scratch);
            moved.clear();
            let bytes = a.builder.bytes();
            moved.extend_from_slice(&bytes[bytes.len() - len..]);
            self.flush_line(Line::A, now);
            self.push_on_line_b(seq_num, &moved, now);
            keep(seq_num, &moved);
            self.scratch = moved;
        } else {
            let [a, b] = &mut self.lines;
            let bytes = a.builder.bytes();
            let encoded = &bytes[bytes.len() - len..];
            if !b.builder.fits(len) {
                let send_time = stamp(&mut self.last_send_time, self.send_time_floor, now);
                flush_state(b, Line::B, send_time, now, &mut self.spare, &mut self.out);
            }
            let accepted = b.builder.push_raw(seq_num, encoded);
            debug_assert!(
                accepted,
                "Invariant: a message that fits an empty packet is accepted"
            );
            b.pending_since.get_or_insert(now);
            keep(seq_num, encoded);
        }
        let b = &self.lines[1];
        if b.builder.msg_count() >= b.packing.max_messages {
            self.flush_line(Line::B, now);
        }
        Ok(seq_num)
    }

    fn push_on_line_b(&mut self, seq_num: u32, bytes: &[u8], now: Timestamp) {
        if !self.lines[1].builder.fits(bytes.len()) {
            self.flush_line(Line::B, now);
        }
        let state = &mut self.lines[1];
        let accepted = state.builder.push_raw(seq_num, bytes);
        debug_assert!(
            accepted,
            "Invariant: a message that fits an empty packet is accepted"
        );
        state.pending_since.get_or_insert(now);
    }

    /// Hand back the bytes of a sent datagram so the next packet reuses the buffer.
    pub fn recycle(&mut self, mut bytes: Vec<u8>) {
        if self.spare.len() < 64 && bytes.capacity() >= OMD_MAX_PAYLOAD {
            bytes.clear();
            self.spare.push(bytes);
        }
    }

    /// End of a batch: lines without linger send their open packet now.
    pub fn flush(&mut self, now: Timestamp) {
        for line in Line::BOTH {
            if self.lines[line.index()].packing.linger_ns == 0 {
                self.flush_line(line, now);
            }
        }
    }

    /// Send every open packet on both lines now.
    pub fn flush_all(&mut self, now: Timestamp) {
        for line in Line::BOTH {
            self.flush_line(line, now);
        }
    }

    fn flush_line(&mut self, line: Line, now: Timestamp) {
        if self.lines[line.index()].builder.is_empty() {
            return;
        }
        let send_time = self.stamp(now);
        let state = &mut self.lines[line.index()];
        flush_state(state, line, send_time, now, &mut self.spare, &mut self.out);
    }

    /// Lingering packets whose time is up go out; idle lines send a heartbeat whose SeqNum is
    /// the last message's sequence number.
    pub fn handle_timeout(&mut self, now: Timestamp) {
        for line in Line::BOTH {
            let state = &self.lines[line.index()];
            if let Some(since) = state.pending_since {
                if now.saturating_sub(since) >= state.packing.linger_ns {
                    self.flush_line(line, now);
                }
            }
            let state = &self.lines[line.index()];
            let idle = now.saturating_sub(state.last_sent) >= self.config.heartbeat_interval_ns;
            if state.builder.is_empty() && idle {
                let send_time = self.stamp(now);
                self.lines[line.index()].last_sent = now;
                let bytes = heartbeat(self.next_seq.wrapping_sub(1), send_time);
                self.out.push_back(Datagram { line, bytes });
            }
        }
    }

    /// When `handle_timeout` should next be called.
    pub fn poll_timeout(&self) -> Option<Timestamp> {
        self.lines
            .iter()
            .map(|state| match state.pending_since {
                Some(since) => since.plus_nanos(state.packing.linger_ns),
                None => state
                    .last_sent
                    .plus_nanos(self.config.heartbeat_interval_ns),
            })
            .min()
    }

    /// The next datagram to send.
    pub fn poll_transmit(&mut self) -> Option<Datagram> {
        self.out.pop_front()
    }
}

/// The SendTime for a packet sent at `now` (never before `floor`), recorded in `last`.
fn stamp(last: &mut Timestamp, floor: Timestamp, now: Timestamp) -> Timestamp {
    let at = Timestamp(crate::packet::send_time_ms(now.max(floor)));
    *last = (*last).max(at);
    at
}

/// Finish a line's open (non-empty) packet into the output queue.
fn flush_state(
    state: &mut LineState,
    line: Line,
    send_time: Timestamp,
    now: Timestamp,
    spare: &mut Vec<Vec<u8>>,
    out: &mut VecDeque<Datagram>,
) {
    let bytes = state.builder.finish_reusing(send_time, spare.pop());
    state.pending_since = None;
    state.last_sent = now;
    out.push_back(Datagram { line, bytes });
}

/// DR status of the Disaster Recovery Signal (105).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DrStatus {
    InProgress,
    Completed,
}

impl DrStatus {
    pub fn code(self) -> u32 {
        match self {
            DrStatus::InProgress => 1,
            DrStatus::Completed => 2,
        }
    }
    pub fn from_code(code: u32) -> Option<DrStatus> {
        match code {
            1 => Some(DrStatus::InProgress),
            2 => Some(DrStatus::Completed),
            _ => None,
        }
    }
}

/// The dedicated DR channel: heartbeats only, plus the DR signal once a site failover starts,
/// repeated every `repeat_interval_ns` until `end_of_day`.
#[derive(Debug, Clone)]
pub struct DrChannelPublisher {
    publisher: ChannelPublisher,
    status: Option<DrStatus>,
    repeat_interval_ns: u64,
    next_repeat: Option<Timestamp>,
}

impl DrChannelPublisher {
    /// Default repeat interval: 5 s (not documented; our choice).
    pub const DEFAULT_REPEAT_NS: u64 = 5 * NANOS_PER_SEC;

    pub fn new(config: PublisherConfig, repeat_interval_ns: u64, now: Timestamp) -> Self {
        DrChannelPublisher {
            publisher: ChannelPublisher::new(config, now),
            status: None,
            repeat_interval_ns: repeat_interval_ns.max(1),
            next_repeat: None,
        }
    }

    pub fn sequence_reset(&mut self, now: Timestamp) {
        self.publisher.sequence_reset(now);
    }

    /// Publish the signal now and keep repeating it.
    pub fn signal(&mut self, status: DrStatus, now: Timestamp) {
        self.status = Some(status);
        self.send_signal(now);
    }

    fn send_signal(&mut self, now: Timestamp) {
        if let Some(status) = self.status {
            let msg = Message::from(DisasterRecoverySignal {
                dr_status: status.code(),
            });
            let sent = self.publisher.publish(&msg, now);
            debug_assert!(sent.is_ok(), "Invariant: an 8-byte message always fits");
            self.publisher.flush_all(now);
            self.next_repeat = Some(now.plus_nanos(self.repeat_interval_ns));
        }
    }

    /// Stop repeating (end of business day).
    pub fn end_of_day(&mut self) {
        self.status = None;
        self.next_repeat = None;
    }

    pub fn handle_timeout(&mut self, now: Timestamp) {
        if self.next_repeat.is_some_and(|at| now >= at) {
            self.send_signal(now);
        }
        self.publisher.handle_timeout(now);
    }

    pub fn poll_timeout(&self) -> Option<Timestamp> {
        match (self.publisher.poll_timeout(), self.next_repeat) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    pub fn poll_transmit(&mut self) -> Option<Datagram> {
        self.publisher.poll_transmit()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::NominalPrice;
    use crate::packet::Packet;

    fn nominal(i: u32) -> Message {
        NominalPrice {
            security_code: i,
            nominal_price: 1_000,
        }
        .into()
    }

    fn drain(p: &mut ChannelPublisher) -> Vec<Datagram> {
        std::iter::from_fn(|| p.poll_transmit()).collect()
    }

    /// Sequence numbers of every message on one line, in order.
    fn line_seqs(datagrams: &[Datagram], line: Line) -> Vec<u32> {
        datagrams
            .iter()
            .filter(|d| d.line == line)
            .flat_map(|d| {
                let packet = Packet::parse(&d.bytes).unwrap();
                packet.messages().map(|(s, _)| s).collect::<Vec<_>>()
            })
            .collect()
    }

    #[test]
    fn lines_carry_the_same_sequence_with_different_packets() {
        let t = Timestamp::from_secs(1_000);
        let mut p = ChannelPublisher::new(PublisherConfig::new(21), t);
        p.sequence_reset(t);
        for i in 0..100 {
            p.publish(&nominal(i), t).unwrap();
            if i % 30 == 29 {
                p.flush(t);
            }
        }
        p.flush(t);
        p.handle_timeout(t.plus_nanos(NANOS_PER_MILLI));
        let out = drain(&mut p);
        let a = line_seqs(&out, Line::A);
        let b = line_seqs(&out, Line::B);
        assert_eq!(a, b);
        assert_eq!(&a[..2], &[1, 1], "reset packet SeqNum 1, then data from 1");
        assert_eq!(a[1..], (1..=100).collect::<Vec<_>>()[..]);
        let count = |line| out.iter().filter(|d| d.line == line).count();
        assert_ne!(count(Line::A), count(Line::B), "different packetisation");
        for d in &out {
            assert!(d.bytes.len() <= 1_472);
        }
    }

    #[test]
    fn encoded_publishing_and_recycled_buffers_give_the_same_packets() {
        let t = Timestamp::from_secs(1_000);
        let mut owned = ChannelPublisher::new(PublisherConfig::new(21), t);
        let mut lent = ChannelPublisher::new(PublisherConfig::new(21), t);
        let mut a = Vec::new();
        let mut b = Vec::new();
        for p in [&mut owned, &mut lent] {
            p.sequence_reset(t);
        }
        for i in 0..500u32 {
            let now = t.plus_nanos(i as u64 * 300_000);
            let msg = nominal(i);
            let published = owned.publish(&msg, now).unwrap();
            let (seq, bytes) = lent.publish_encoded(&msg, now).unwrap();
            assert_eq!((seq, bytes), (published.seq_num, &published.bytes[..]));
            if i % 13 == 12 {
                owned.flush(now);
                lent.flush(now);
            }
            owned.handle_timeout(now);
            lent.handle_timeout(now);
            a.extend(drain(&mut owned));
            while let Some(d) = lent.poll_transmit() {
                b.push(d.clone());
                lent.recycle(d.bytes);
            }
        }
        assert!(a.len() > 50);
        assert_eq!(a, b);
    }

    /// The packetisation `publish_with` must reproduce: per message, Line A then Line B each
    /// flush when the message does not fit, take it, and flush at their message limit.
    fn reference_packets(
        config: &PublisherConfig,
        msgs: &[(Message, bool)],
        t: Timestamp,
    ) -> Vec<(Line, Vec<u8>)> {
        let mut builders = [config.line_a, config.line_b]
            .map(|p| (PacketBuilder::new(p.max_payload_bytes), p.max_messages));
        let mut out = Vec::new();
        for (seq, (msg, flush)) in (1u32..).zip(msgs) {
            let bytes = msg.to_bytes();
            for (i, line) in Line::BOTH.into_iter().enumerate() {
                let (b, max) = &mut builders[i];
                if !b.fits(bytes.len()) {
                    out.push((line, b.finish(t)));
                }
                assert!(b.push_raw(seq, &bytes));
                if b.msg_count() >= *max {
                    out.push((line, b.finish(t)));
                }
            }
            if *flush {
                let (b, _) = &mut builders[0];
                if !b.is_empty() {
                    out.push((Line::A, b.finish(t)));
                }
            }
        }
        out
    }

    #[test]
    fn in_place_encoding_gives_the_reference_packets_at_every_limit() {
        let t = Timestamp::from_secs(1_000);
        let mut config = PublisherConfig::new(7);
        // Small limits so that every path is taken: A full by size and by count, B full by
        // size and by count, in the same message.
        config.line_a = LinePacking {
            max_payload_bytes: 200,
            max_messages: 5,
            linger_ns: 0,
        };
        config.line_b = LinePacking {
            max_payload_bytes: 150,
            max_messages: 3,
            linger_ns: NANOS_PER_SEC,
        };
        let mut msgs = Vec::new();
        for i in 0..400u32 {
            let msg: Message = match i % 3 {
                0 => nominal(i),
                1 => crate::message::LiquidityProvider {
                    security_code: i,
                    lp_broker_numbers: vec![1; (i % 40) as usize],
                }
                .into(),
                _ => crate::message::Trade {
                    security_code: i,
                    trade_id: i,
                    price: 10,
                    quantity: 100,
                    trd_type: 0,
                    trade_time: 0,
                }
                .into(),
            };
            msgs.push((msg, i % 17 == 16));
        }
        let mut p = ChannelPublisher::new(config.clone(), t);
        let mut kept = Vec::new();
        for (msg, flush) in &msgs {
            let seq = p
                .publish_with(msg, t, |s, b| kept.push((s, b.to_vec())))
                .unwrap();
            assert_eq!(seq as usize, kept.len());
            if *flush {
                p.flush(t);
            }
            while let Some(d) = p.poll_transmit() {
                p.recycle(d.bytes);
            }
        }
        let mut p = ChannelPublisher::new(config.clone(), t);
        let mut got = Vec::new();
        for (msg, flush) in &msgs {
            p.publish_with(msg, t, |_, _| {}).unwrap();
            if *flush {
                p.flush(t);
            }
            got.extend(drain(&mut p).into_iter().map(|d| (d.line, d.bytes)));
        }
        assert_eq!(got, reference_packets(&config, &msgs, t));
        for (i, (seq, bytes)) in kept.iter().enumerate() {
            assert_eq!(*seq, i as u32 + 1);
            assert_eq!(bytes, &msgs[i].0.to_bytes());
        }
        // A message larger than a packet is refused and changes nothing.
        let big: Message = crate::message::LiquidityProvider {
            security_code: 1,
            lp_broker_numbers: vec![1; 80],
        }
        .into();
        let before = p.last_seq();
        assert!(matches!(
            p.publish_with(&big, t, |_, _| panic!("not kept")),
            Err(PublishError::TooLarge { .. })
        ));
        assert_eq!(p.last_seq(), before);
        p.flush_all(t);
        for d in drain(&mut p) {
            assert!(Packet::parse(&d.bytes).is_ok());
        }
    }

    #[test]
    fn a_reset_is_stamped_after_every_earlier_packet_and_before_every_later_one() {
        let t = Timestamp::from_secs(1_000);
        let mut p = ChannelPublisher::new(PublisherConfig::new(3), t);
        p.publish(&nominal(1), t).unwrap();
        p.sequence_reset(t);
        p.publish(&nominal(2), t).unwrap();
        p.flush_all(t);
        let times: Vec<(u8, u64)> = drain(&mut p)
            .iter()
            .map(|d| {
                let h = PacketHeader::decode(&d.bytes).unwrap();
                (h.msg_count, h.send_time)
            })
            .collect();
        let old = times[0].1;
        let reset = times[2].1;
        assert!(old < reset, "{times:?}");
        assert!(times[4..].iter().all(|&(_, at)| at >= reset), "{times:?}");
    }

    #[test]
    fn idle_lines_send_heartbeats_with_the_last_seq_num() {
        let t = Timestamp::from_secs(1_000);
        let mut p = ChannelPublisher::new(PublisherConfig::new(1), t);
        p.sequence_reset(t);
        p.publish(&nominal(1), t).unwrap();
        p.publish(&nominal(2), t).unwrap();
        p.flush_all(t);
        drain(&mut p);
        assert_eq!(p.poll_timeout(), Some(t.plus_nanos(2 * NANOS_PER_SEC)));
        p.handle_timeout(t.plus_nanos(NANOS_PER_SEC));
        assert!(drain(&mut p).is_empty());
        p.handle_timeout(t.plus_nanos(2 * NANOS_PER_SEC));
        let out = drain(&mut p);
        assert_eq!(out.len(), 2);
        for d in out {
            let h = PacketHeader::decode(&d.bytes).unwrap();
            assert_eq!((h.pkt_size, h.msg_count, h.seq_num), (16, 0, 2));
        }
    }

    #[test]
    fn dr_signal_repeats_until_end_of_day() {
        let t = Timestamp::from_secs(1_000);
        let mut dr = DrChannelPublisher::new(PublisherConfig::new(99), NANOS_PER_SEC, t);
        dr.sequence_reset(t);
        dr.signal(DrStatus::InProgress, t);
        dr.handle_timeout(t.plus_nanos(NANOS_PER_SEC));
        dr.end_of_day();
        dr.handle_timeout(t.plus_nanos(10 * NANOS_PER_SEC));
        let mut signals = 0;
        while let Some(d) = dr.poll_transmit() {
            let packet = Packet::parse(&d.bytes).unwrap();
            for (_, m) in packet.messages() {
                if let Ok(Message::DisasterRecoverySignal(s)) = Message::decode(m) {
                    assert_eq!(s.dr_status, 1);
                    signals += 1;
                }
            }
        }
        assert_eq!(signals, 4, "two signals on each of two lines");
    }
}
