//! Framing (reference §1.3): STX, UInt16 total length, 52 more header bytes, body, CRC-32C.
//!
//! [`encode`] produces exact bytes; [`FrameDecoder`] takes a byte stream in any split and yields
//! [`RawFrame`]s whose CRC has been checked; [`RawFrame::message`] decodes the body.

use serde::{Deserialize, Serialize};
use twinsite_core::limits::{OCG_BITMAP_LEN, OCG_COMP_ID_LEN, OCG_HEADER_LEN, OCG_TRAILER_LEN};

use crate::error::{DecodeError, EncodeError};
use crate::messages::Message;
use crate::wire::{FixedStr, Reader, WireField};

/// Start of message.
pub const STX: u8 = 0x02;
/// Smallest frame: header and trailer, no body.
pub const MIN_FRAME_LEN: usize = OCG_HEADER_LEN + OCG_TRAILER_LEN;
/// Largest frame the UInt16 length can describe.
pub const MAX_FRAME_LEN: usize = u16::MAX as usize;

const OFFSET_LENGTH: usize = 1;
const OFFSET_POSS_DUP: usize = 8;
const OFFSET_POSS_RESEND: usize = 9;
const OFFSET_COMP_ID: usize = 10;
const OFFSET_BITMAP: usize = OFFSET_COMP_ID + OCG_COMP_ID_LEN;
const _: () = assert!(OFFSET_BITMAP + OCG_BITMAP_LEN == OCG_HEADER_LEN);
const _: () = assert!(MIN_FRAME_LEN == 58);

/// The header fields a sender chooses. Length, presence map and checksum are computed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Header {
    pub msg_type: u8,
    pub seq: u32,
    pub poss_dup: bool,
    pub poss_resend: bool,
    /// Comp ID of the sender (char[12]).
    pub comp_id: FixedStr<12>,
}

/// Encode one message into a complete frame.
pub fn encode(
    seq: u32,
    poss_dup: bool,
    poss_resend: bool,
    comp_id: &FixedStr<12>,
    msg: &Message,
) -> Result<Vec<u8>, EncodeError> {
    let mut out = Vec::with_capacity(256);
    out.push(STX);
    out.extend_from_slice(&[0, 0]);
    out.push(msg.msg_type());
    out.extend_from_slice(&seq.to_le_bytes());
    out.push(poss_dup as u8);
    out.push(poss_resend as u8);
    comp_id.put(&mut out);
    out.extend_from_slice(&[0u8; OCG_BITMAP_LEN]);
    debug_assert_eq!(out.len(), OCG_HEADER_LEN);
    let mut map = [0u8; OCG_BITMAP_LEN];
    msg.put_body(&mut map, &mut out);
    out[OFFSET_BITMAP..OCG_HEADER_LEN].copy_from_slice(&map);
    let total = out.len() + OCG_TRAILER_LEN;
    let length = u16::try_from(total).map_err(|_| EncodeError::FrameTooLong(total))?;
    out[OFFSET_LENGTH..OFFSET_LENGTH + 2].copy_from_slice(&length.to_le_bytes());
    let crc = crc32c::crc32c(&out);
    out.extend_from_slice(&crc.to_le_bytes());
    Ok(out)
}

/// Rewrite the PossDup and PossResend flags of an encoded frame and recompute its CRC (used when
/// replaying a stored message under its original sequence number).
pub fn restamp_flags(frame: &mut [u8], poss_dup: bool, poss_resend: bool) {
    assert!(
        frame.len() >= MIN_FRAME_LEN,
        "Condition failed: restamp of a non-frame"
    );
    frame[OFFSET_POSS_DUP] = poss_dup as u8;
    frame[OFFSET_POSS_RESEND] = poss_resend as u8;
    let end = frame.len() - OCG_TRAILER_LEN;
    let crc = crc32c::crc32c(&frame[..end]);
    frame[end..].copy_from_slice(&crc.to_le_bytes());
}

/// A frame whose length, CRC and header have been checked; the body is not decoded yet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawFrame {
    pub header: Header,
    pub presence_map: [u8; OCG_BITMAP_LEN],
    /// The complete frame as received.
    pub bytes: Vec<u8>,
}

impl RawFrame {
    /// The body bytes between the header and the checksum.
    pub fn body(&self) -> &[u8] {
        &self.bytes[OCG_HEADER_LEN..self.bytes.len() - OCG_TRAILER_LEN]
    }
    /// Decode the body. Errors here are not fatal for the stream.
    pub fn message(&self) -> Result<Message, DecodeError> {
        Message::decode_body(self.header.msg_type, &self.presence_map, self.body())
    }
}

/// Check and split off one complete frame at the start of `buf`. `Ok(None)` means more bytes
/// are needed. On success returns the frame and the number of bytes it used.
pub fn decode_frame(buf: &[u8], max_len: usize) -> Result<Option<(RawFrame, usize)>, DecodeError> {
    let Some(&first) = buf.first() else {
        return Ok(None);
    };
    if first != STX {
        return Err(DecodeError::BadStx(first));
    }
    if buf.len() < OFFSET_LENGTH + 2 {
        return Ok(None);
    }
    let length = u16::from_le_bytes([buf[1], buf[2]]);
    let len = length as usize;
    if len < MIN_FRAME_LEN || len > max_len {
        return Err(DecodeError::BadLength(length));
    }
    if buf.len() < len {
        return Ok(None);
    }
    let bytes = &buf[..len];
    let received = u32::from_le_bytes(bytes[len - 4..].try_into().expect("4 bytes"));
    let computed = crc32c::crc32c(&bytes[..len - 4]);
    if received != computed {
        return Err(DecodeError::BadCrc { received, computed });
    }
    let header = parse_header(bytes)?;
    let presence_map = bytes[OFFSET_BITMAP..OCG_HEADER_LEN]
        .try_into()
        .expect("32 bytes");
    Ok(Some((
        RawFrame {
            header,
            presence_map,
            bytes: bytes.to_vec(),
        },
        len,
    )))
}

fn parse_header(bytes: &[u8]) -> Result<Header, DecodeError> {
    let flag = |at: usize, field| match bytes[at] {
        0 => Ok(false),
        1 => Ok(true),
        _ => Err(DecodeError::BadHeader { field }),
    };
    let mut r = Reader::new(&bytes[OFFSET_COMP_ID..OFFSET_BITMAP]);
    let comp_id =
        FixedStr::<12>::get(&mut r).map_err(|_| DecodeError::BadHeader { field: "comp id" })?;
    Ok(Header {
        msg_type: bytes[3],
        seq: u32::from_le_bytes(bytes[4..8].try_into().expect("4 bytes")),
        poss_dup: flag(OFFSET_POSS_DUP, "poss dup")?,
        poss_resend: flag(OFFSET_POSS_RESEND, "poss resend")?,
        comp_id,
    })
}

/// Decode exactly one frame and its message from `bytes` (tests, tools).
pub fn decode_one(bytes: &[u8]) -> Result<(Header, Message), DecodeError> {
    match decode_frame(bytes, MAX_FRAME_LEN)? {
        Some((frame, used)) if used == bytes.len() => {
            let msg = frame.message()?;
            Ok((frame.header, msg))
        }
        Some(_) => Err(DecodeError::BadLength(u16::from_le_bytes([
            bytes[1], bytes[2],
        ]))),
        None => Err(DecodeError::Truncated {
            msg: bytes.get(3).copied().unwrap_or(0),
            bit: 0,
        }),
    }
}

/// Streaming decoder: feed bytes in any split, take frames out. A fatal error poisons the
/// decoder (the connection must be dropped); it keeps returning that error.
#[derive(Debug)]
pub struct FrameDecoder {
    buf: Vec<u8>,
    max_len: usize,
    failed: Option<DecodeError>,
}

impl Default for FrameDecoder {
    fn default() -> Self {
        FrameDecoder::new(MAX_FRAME_LEN)
    }
}

impl FrameDecoder {
    /// `max_len` bounds the frame size accepted (at most 65,535, the UInt16 limit).
    pub fn new(max_len: usize) -> Self {
        assert!(
            max_len >= MIN_FRAME_LEN,
            "Condition failed: max frame length below 58"
        );
        FrameDecoder {
            buf: Vec::new(),
            max_len: max_len.min(MAX_FRAME_LEN),
            failed: None,
        }
    }

    pub fn feed(&mut self, bytes: &[u8]) {
        if self.failed.is_none() {
            self.buf.extend_from_slice(bytes);
        }
    }

    /// The next complete frame, `Ok(None)` if more bytes are needed.
    pub fn next_frame(&mut self) -> Result<Option<RawFrame>, DecodeError> {
        if let Some(e) = &self.failed {
            return Err(e.clone());
        }
        match decode_frame(&self.buf, self.max_len) {
            Ok(Some((frame, used))) => {
                self.buf.drain(..used);
                Ok(Some(frame))
            }
            Ok(None) => Ok(None),
            Err(e) => {
                self.buf.clear();
                self.failed = Some(e.clone());
                Err(e)
            }
        }
    }

    /// Bytes held waiting for the rest of a frame.
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }
}
