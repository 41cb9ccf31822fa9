//! The 16-byte packet header and the framing of whole messages inside a packet (§1.2).

use crate::message::Message;
use crate::wire::{u16_at, DecodeError, WireField};
use twinsite_core::limits::{OMD_MAX_PAYLOAD, OMD_PACKET_HEADER_LEN};
use twinsite_core::time::NANOS_PER_MILLI;
use twinsite_core::Timestamp;

/// Packet header: PktSize u16 | MsgCount u8 | Filler u8 | SeqNum u32 | SendTime u64.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PacketHeader {
    /// Total packet length including this header.
    pub pkt_size: u16,
    /// Messages in the packet; 0 is a heartbeat.
    pub msg_count: u8,
    /// Unused in OMD-C; written as a space (OMD-D's CompressionMode byte).
    pub filler: u8,
    /// Sequence number of the first message (of the previous message for a heartbeat).
    pub seq_num: u32,
    /// Nanoseconds since the epoch, millisecond precision.
    pub send_time: u64,
}

impl PacketHeader {
    pub const LEN: usize = OMD_PACKET_HEADER_LEN;

    pub fn encode(&self, out: &mut [u8]) {
        self.pkt_size.put(&mut out[0..2]);
        out[2] = self.msg_count;
        out[3] = self.filler;
        self.seq_num.put(&mut out[4..8]);
        self.send_time.put(&mut out[8..16]);
    }

    pub fn decode(buf: &[u8]) -> Result<PacketHeader, DecodeError> {
        if buf.len() < Self::LEN {
            return Err(DecodeError::ShortPacket { len: buf.len() });
        }
        let mut seq = [0u8; 4];
        seq.copy_from_slice(&buf[4..8]);
        let mut time = [0u8; 8];
        time.copy_from_slice(&buf[8..16]);
        Ok(PacketHeader {
            pkt_size: u16_at(buf, 0),
            msg_count: buf[2],
            filler: buf[3],
            seq_num: u32::from_le_bytes(seq),
            send_time: u64::from_le_bytes(time),
        })
    }

    /// True for a heartbeat (no messages).
    pub fn is_heartbeat(&self) -> bool {
        self.msg_count == 0
    }
}

/// SendTime at millisecond precision, as the reference documents.
pub fn send_time_ms(now: Timestamp) -> u64 {
    now.0 - now.0 % NANOS_PER_MILLI
}

/// A packet whose framing has been checked: PktSize equals the bytes received and the
/// messages' MsgSize fields add up to exactly PktSize with MsgCount messages.
#[derive(Debug, Clone, Copy)]
pub struct Packet<'a> {
    pub header: PacketHeader,
    body: &'a [u8],
}

impl<'a> Packet<'a> {
    /// Check the framing of one datagram (or one TCP frame).
    pub fn parse(bytes: &'a [u8]) -> Result<Packet<'a>, DecodeError> {
        let header = PacketHeader::decode(bytes)?;
        if header.pkt_size as usize != bytes.len() {
            return Err(DecodeError::PktSizeMismatch {
                pkt_size: header.pkt_size,
                len: bytes.len(),
            });
        }
        let body = &bytes[PacketHeader::LEN..];
        let mut at = 0;
        let mut found = 0usize;
        while at < body.len() {
            if body.len() - at < 4 {
                return Err(DecodeError::MessageOverrun {
                    index: found,
                    needed: 4,
                    available: body.len() - at,
                });
            }
            let msg_size = u16_at(body, at);
            if msg_size < 4 {
                return Err(DecodeError::MsgSizeTooSmall { msg_size });
            }
            if msg_size as usize > body.len() - at {
                return Err(DecodeError::MessageOverrun {
                    index: found,
                    needed: msg_size as usize,
                    available: body.len() - at,
                });
            }
            at += msg_size as usize;
            found += 1;
        }
        if found != header.msg_count as usize {
            return Err(DecodeError::MsgCountMismatch {
                msg_count: header.msg_count,
                found,
            });
        }
        Ok(Packet { header, body })
    }

    /// The raw messages (header included), with their sequence numbers.
    pub fn messages(&self) -> RawMessages<'a> {
        RawMessages {
            body: self.body,
            seq_num: self.header.seq_num,
        }
    }
}

/// Iterator over `(seq_num, message bytes)` of a checked packet.
#[derive(Debug, Clone)]
pub struct RawMessages<'a> {
    body: &'a [u8],
    seq_num: u32,
}

impl<'a> Iterator for RawMessages<'a> {
    type Item = (u32, &'a [u8]);
    fn next(&mut self) -> Option<Self::Item> {
        if self.body.len() < 4 {
            return None;
        }
        let size = (u16_at(self.body, 0) as usize).clamp(4, self.body.len());
        let (msg, rest) = self.body.split_at(size);
        self.body = rest;
        let seq = self.seq_num;
        self.seq_num = self.seq_num.wrapping_add(1);
        Some((seq, msg))
    }
}

/// The MsgType of raw message bytes (`None` if shorter than a header).
pub fn raw_msg_type(msg: &[u8]) -> Option<u16> {
    (msg.len() >= 4).then(|| u16_at(msg, 2))
}

/// Builds one packet of whole messages, at most `max_payload` bytes (header included).
#[derive(Debug, Clone)]
pub struct PacketBuilder {
    buf: Vec<u8>,
    msg_count: u8,
    seq_num: u32,
    max_payload: usize,
}

impl PacketBuilder {
    pub fn new(max_payload: usize) -> PacketBuilder {
        let max_payload = max_payload.clamp(PacketHeader::LEN + 4, u16::MAX as usize);
        let mut buf = Vec::with_capacity(max_payload);
        buf.resize(PacketHeader::LEN, 0);
        PacketBuilder {
            buf,
            msg_count: 0,
            seq_num: 0,
            max_payload,
        }
    }

    /// A builder for the documented 1,472-byte payload.
    pub fn standard() -> PacketBuilder {
        PacketBuilder::new(OMD_MAX_PAYLOAD)
    }

    pub fn is_empty(&self) -> bool {
        self.msg_count == 0
    }
    pub fn msg_count(&self) -> u8 {
        self.msg_count
    }
    pub fn len(&self) -> usize {
        self.buf.len()
    }

    /// True if a message of `msg_len` bytes fits.
    pub fn fits(&self, msg_len: usize) -> bool {
        self.msg_count < u8::MAX && self.buf.len() + msg_len <= self.max_payload
    }

    /// Append encoded message bytes; `seq_num` is used if this is the first message.
    /// Returns false (and appends nothing) if it does not fit.
    pub fn push_raw(&mut self, seq_num: u32, msg: &[u8]) -> bool {
        if !self.fits(msg.len()) {
            return false;
        }
        if self.msg_count == 0 {
            self.seq_num = seq_num;
        }
        self.buf.extend_from_slice(msg);
        self.msg_count += 1;
        true
    }

    /// The packet so far (header space included).
    pub fn bytes(&self) -> &[u8] {
        &self.buf
    }

    /// Append bytes to the packet without counting a message yet (the caller encodes a
    /// message in place, then [`PacketBuilder::commit_open`]s or truncates it).
    pub fn append_open(&mut self, write: impl FnOnce(&mut Vec<u8>)) {
        write(&mut self.buf)
    }

    /// Drop the uncommitted bytes from `len` on.
    pub fn truncate_open(&mut self, len: usize) {
        self.buf.truncate(len.max(PacketHeader::LEN));
    }

    /// True if the `msg_len` uncommitted bytes at `start` may stay (size and count limits).
    pub fn open_fits(&self, start: usize, msg_len: usize) -> bool {
        self.msg_count < u8::MAX && start + msg_len <= self.max_payload
    }

    /// Count the uncommitted bytes as one message; `seq_num` is used if it is the first.
    pub fn commit_open(&mut self, seq_num: u32) {
        if self.msg_count == 0 {
            self.seq_num = seq_num;
        }
        self.msg_count += 1;
    }

    /// Finish the packet and reset the builder.
    pub fn finish(&mut self, send_time: Timestamp) -> Vec<u8> {
        self.finish_reusing(send_time, None)
    }

    /// Finish the packet and reset the builder, starting the next packet in `next` (an empty
    /// buffer of a sent datagram) instead of a fresh allocation.
    pub fn finish_reusing(&mut self, send_time: Timestamp, next: Option<Vec<u8>>) -> Vec<u8> {
        let header = PacketHeader {
            pkt_size: self.buf.len() as u16,
            msg_count: self.msg_count,
            filler: b' ',
            seq_num: self.seq_num,
            send_time: send_time_ms(send_time),
        };
        header.encode(&mut self.buf[..PacketHeader::LEN]);
        let mut next = next.unwrap_or_else(|| Vec::with_capacity(self.max_payload));
        next.clear();
        next.resize(PacketHeader::LEN, 0);
        let packet = std::mem::replace(&mut self.buf, next);
        self.msg_count = 0;
        packet
    }
}

/// A heartbeat: bare header, MsgCount 0, SeqNum = `last_seq_num`.
pub fn heartbeat(last_seq_num: u32, now: Timestamp) -> Vec<u8> {
    let mut out = vec![0u8; PacketHeader::LEN];
    PacketHeader {
        pkt_size: PacketHeader::LEN as u16,
        msg_count: 0,
        filler: b' ',
        seq_num: last_seq_num,
        send_time: send_time_ms(now),
    }
    .encode(&mut out);
    out
}

/// One packet holding `msgs` (which must fit), first sequence number `seq_num`.
pub fn single_packet(seq_num: u32, send_time: Timestamp, msgs: &[&Message]) -> Vec<u8> {
    let mut builder = PacketBuilder::new(u16::MAX as usize);
    for (i, msg) in msgs.iter().enumerate() {
        let accepted = builder.push_raw(seq_num.wrapping_add(i as u32), &msg.to_bytes());
        debug_assert!(accepted, "Invariant: single_packet messages fit");
    }
    builder.finish(send_time)
}

/// Splits a TCP byte stream (RTS) into packets by PktSize.
#[derive(Debug, Default, Clone)]
pub struct StreamDeframer {
    buf: Vec<u8>,
}

impl StreamDeframer {
    /// Bytes that arrived on the stream.
    pub fn push(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    /// The next whole packet, or `Err` if the stream is corrupt (PktSize below 16), in
    /// which case the caller should drop the connection.
    pub fn next_packet(&mut self) -> Result<Option<Vec<u8>>, DecodeError> {
        if self.buf.len() < 2 {
            return Ok(None);
        }
        let size = u16_at(&self.buf, 0) as usize;
        if size < PacketHeader::LEN {
            return Err(DecodeError::ShortPacket { len: size });
        }
        if self.buf.len() < size {
            return Ok(None);
        }
        let rest = self.buf.split_off(size);
        Ok(Some(std::mem::replace(&mut self.buf, rest)))
    }
}
