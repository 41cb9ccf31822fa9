//! Tag=value framing: a streaming frame splitter, a field tokenizer and an encoder.
//!
//! A frame is `8=<BeginString>|9=<BodyLength>|<body>|10=<CheckSum>|` where `|` is SOH (0x01).
//! BodyLength counts the bytes after the SOH that ends the `9=` field up to and including the
//! SOH before `10=`. CheckSum is the sum of every byte before `10=`, modulo 256, written as
//! exactly three digits. BodyLength may be zero-padded (jspurefix writes `9=000123`).
//!
//! The splitter never panics and never waits forever on a frame it can already prove broken:
//! a bad BodyLength is detected when the bytes at the claimed end are not `10=ccc|`, and a
//! claimed length that runs past the start of the next frame is declared garbled as soon as
//! that next frame's `SOH 8=` is in the buffer.

use crate::message::Field;

/// Field separator.
pub const SOH: u8 = 0x01;
/// The only BeginString twinsite speaks: FIX 5.0 SP2 application messages over FIXT.1.1.
pub const BEGIN_STRING: &str = "FIXT.1.1";
/// Largest body the splitter accepts; anything larger is garbage (limits the buffer).
pub const BODY_LENGTH_MAX: usize = 64 * 1024;
/// BeginString values longer than this are garbage.
const BEGIN_STRING_LEN_MAX: usize = 16;
/// `10=ccc|`
const TRAILER_LEN: usize = 7;

/// Why bytes could not be framed. Every variant means "ignore these bytes": FIX treats a garbled
/// message as never received (no reject, no sequence number consumed).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    #[error("{discarded} bytes before the next `8=` were discarded")]
    Junk { discarded: usize },
    #[error("BeginString field is malformed")]
    BadBeginString,
    #[error("second field is not a numeric BodyLength (9)")]
    BadBodyLength,
    #[error("BodyLength {0} exceeds the {BODY_LENGTH_MAX}-byte limit")]
    BodyTooLong(usize),
    #[error("BodyLength does not end where the CheckSum (10) field starts")]
    BodyLengthMismatch,
    #[error("CheckSum is {received:03} but the bytes sum to {computed:03}")]
    BadChecksum { received: u32, computed: u32 },
}

/// A complete, checksum-valid frame (BeginString through CheckSum).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    pub bytes: Vec<u8>,
}

/// Streaming splitter: push bytes as they arrive, pull frames or framing errors.
#[derive(Debug, Default, Clone)]
pub struct FrameSplitter {
    buffer: Vec<u8>,
    /// Bytes before this were taken (frames or discarded junk): a batch of frames read at once
    /// is split without moving the rest of the buffer after each one.
    start: usize,
}

enum Step {
    NeedMore,
    Skip(usize, FrameError),
    Frame(usize),
}

impl FrameSplitter {
    pub fn new() -> FrameSplitter {
        FrameSplitter::default()
    }

    /// Append received bytes.
    pub fn push(&mut self, bytes: &[u8]) {
        if self.start > 0 {
            self.buffer.drain(..self.start);
            self.start = 0;
        }
        self.buffer.extend_from_slice(bytes);
    }

    /// Bytes held waiting for the rest of a frame.
    pub fn buffered_len(&self) -> usize {
        self.buffer.len() - self.start
    }

    /// The next frame, a framing error (bytes discarded), or `None` when more bytes are needed.
    pub fn next_frame(&mut self) -> Option<Result<Frame, FrameError>> {
        let taken = match self.step() {
            Step::NeedMore => return None,
            Step::Skip(n, error) => (n, Err(error)),
            Step::Frame(n) => {
                let bytes = self.buffer[self.start..self.start + n].to_vec();
                (n, Ok(Frame { bytes }))
            }
        };
        self.start += taken.0;
        if self.start == self.buffer.len() {
            self.buffer.clear();
            self.start = 0;
        }
        Some(taken.1)
    }

    /// Push `bytes` and hand each complete frame (or framing error) to `f`, in order, as
    /// [`FrameSplitter::next_frame`] would give them. When nothing is buffered (the usual case:
    /// a read ends at a frame's end) frames are taken straight from `bytes`, without copying;
    /// only an incomplete tail is kept for the next call. `f` returns `false` to stop; the bytes
    /// not yet handed out then stay buffered.
    pub fn feed(&mut self, bytes: &[u8], mut f: impl FnMut(Result<&[u8], FrameError>) -> bool) {
        if self.buffered_len() > 0 {
            self.push(bytes);
            loop {
                let b = &self.buffer[self.start..];
                let (n, go_on) = match step(b) {
                    Step::NeedMore => return,
                    Step::Skip(n, error) => (n, f(Err(error))),
                    Step::Frame(n) => (n, f(Ok(&b[..n]))),
                };
                self.start += n;
                if self.start == self.buffer.len() {
                    self.buffer.clear();
                    self.start = 0;
                }
                if !go_on {
                    return;
                }
            }
        }
        let mut at = 0;
        while at < bytes.len() {
            let b = &bytes[at..];
            let (n, go_on) = match step(b) {
                Step::NeedMore => break,
                Step::Skip(n, error) => (n, f(Err(error))),
                Step::Frame(n) => (n, f(Ok(&b[..n]))),
            };
            at += n;
            if !go_on {
                break;
            }
        }
        if at < bytes.len() {
            self.push(&bytes[at..]);
        }
    }

    fn step(&self) -> Step {
        step(&self.buffer[self.start..])
    }
}

/// What the stream `b` starts with: a frame of n bytes, n bytes to discard, or too few bytes.
fn step(b: &[u8]) -> Step {
    if b.is_empty() {
        return Step::NeedMore;
    }
    if !b.starts_with(b"8=") {
        return skip_to_next_start(b, 0);
    }
    let Some(begin_end) = find_soh(b, 2, BEGIN_STRING_LEN_MAX + 3) else {
        return if b.len() > BEGIN_STRING_LEN_MAX + 3 {
            skip_to_next_start(b, 1).with_error(FrameError::BadBeginString)
        } else {
            Step::NeedMore
        };
    };
    let length_start = begin_end + 1;
    let (body_start, body_length) = match parse_body_length(b, length_start) {
        LengthParse::NeedMore => return Step::NeedMore,
        LengthParse::Bad => return skip_to_next_start(b, 1).with_error(FrameError::BadBodyLength),
        LengthParse::Ok(start, len) => (start, len),
    };
    if body_length > BODY_LENGTH_MAX {
        return skip_to_next_start(b, 1).with_error(FrameError::BodyTooLong(body_length));
    }
    let body_end = body_start + body_length;
    if b.len() < body_end + TRAILER_LEN {
        // If the next frame has already started inside the claimed body, the length lies.
        if let Some(next) = find_frame_start(b, body_start) {
            return Step::Skip(next, FrameError::BodyLengthMismatch);
        }
        return Step::NeedMore;
    }
    let trailer = &b[body_end..body_end + TRAILER_LEN];
    let trailer_ok = body_length > 0
        && b[body_end - 1] == SOH
        && trailer.starts_with(b"10=")
        && trailer[3..6].iter().all(u8::is_ascii_digit)
        && trailer[6] == SOH;
    if !trailer_ok {
        return skip_to_next_start(b, 1).with_error(FrameError::BodyLengthMismatch);
    }
    let received = trailer[3..6]
        .iter()
        .fold(0u32, |acc, d| acc * 10 + (d - b'0') as u32);
    let computed = checksum(&b[..body_end]);
    if received != computed {
        return Step::Skip(
            body_end + TRAILER_LEN,
            FrameError::BadChecksum { received, computed },
        );
    }
    Step::Frame(body_end + TRAILER_LEN)
}

impl Step {
    fn with_error(self, error: FrameError) -> Step {
        match self {
            Step::Skip(n, _) => Step::Skip(n, error),
            other => other,
        }
    }
}

enum LengthParse {
    NeedMore,
    Bad,
    Ok(usize, usize),
}

fn parse_body_length(b: &[u8], start: usize) -> LengthParse {
    // "9=" then 1..=10 digits then SOH.
    const DIGITS_MAX: usize = 10;
    for (i, expected) in b"9=".iter().enumerate() {
        match b.get(start + i) {
            None => return LengthParse::NeedMore,
            Some(c) if c != expected => return LengthParse::Bad,
            Some(_) => {}
        }
    }
    let digits_start = start + 2;
    let mut value: usize = 0;
    let mut i = digits_start;
    loop {
        match b.get(i) {
            None => return LengthParse::NeedMore,
            Some(&SOH) if i > digits_start => return LengthParse::Ok(i + 1, value),
            Some(c) if c.is_ascii_digit() && i - digits_start < DIGITS_MAX => {
                value = value * 10 + (c - b'0') as usize;
            }
            Some(_) => return LengthParse::Bad,
        }
        i += 1;
    }
}

fn find_soh(b: &[u8], from: usize, within: usize) -> Option<usize> {
    let end = b.len().min(from + within);
    (from..end).find(|&i| b[i] == SOH)
}

/// Position of the next frame start at or after `from` (never 0): an `8=` that follows an SOH,
/// or an `8=FIX` anywhere.
fn find_frame_start(b: &[u8], from: usize) -> Option<usize> {
    (from.max(1)..b.len().saturating_sub(1)).find(|&i| {
        b[i] == b'8' && b[i + 1] == b'=' && (b[i - 1] == SOH || b[i..].starts_with(b"8=FIX"))
    })
}

/// Discard up to the next plausible frame start; keep a possible partial start at the end.
fn skip_to_next_start(b: &[u8], from: usize) -> Step {
    match find_frame_start(b, from) {
        Some(next) => Step::Skip(next, FrameError::Junk { discarded: next }),
        None => {
            // Keep a tail that may be the beginning of the next frame (`SOH 8=FI...`).
            let tail_from = b.len().saturating_sub(5).max(from);
            let keep = (tail_from..b.len())
                .find(|&i| b[i] == b'8' && b"8=FIX".starts_with(&b[i..b.len().min(i + 5)]))
                .map_or(0, |i| b.len() - i);
            let discard = b.len() - keep;
            if discard == 0 {
                Step::NeedMore
            } else {
                Step::Skip(discard, FrameError::Junk { discarded: discard })
            }
        }
    }
}

/// FIX CheckSum: byte sum modulo 256.
pub fn checksum(bytes: &[u8]) -> u32 {
    bytes.iter().fold(0u8, |acc, &c| acc.wrapping_add(c)) as u32
}

/// Why a framed message could not be split into fields.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenizeError {
    #[error("field at byte {0} has no `=`")]
    MissingEquals(usize),
    #[error("field at byte {0} has a tag that is not a positive integer")]
    BadTag(usize),
    #[error("tag {0} has a value that is not valid UTF-8")]
    NotUtf8(u32),
    #[error("tag {0} is a data field whose length runs past the message")]
    DataTooLong(u32),
}

/// Data fields whose value may contain SOH: (length tag, data tag).
const DATA_FIELDS: &[(u32, u32)] = &[(95, 96), (354, 355), (1401, 1402), (1403, 1404)];

/// Split a checksum-valid frame into its fields, in wire order, including 8, 9 and 10.
/// Empty values are kept (the validator rejects them with the right reason).
pub fn tokenize(frame: &[u8]) -> Result<Vec<Field>, TokenizeError> {
    let mut fields = Vec::with_capacity(32);
    for f in Tokens::new(frame) {
        let (tag, value) = f?;
        fields.push(Field::new(tag, value));
    }
    Ok(fields)
}

/// The fields of a frame as `(tag, value)` borrowed from it, in wire order (what [`tokenize`]
/// collects): reading a message through it copies each value once, into its final place.
/// After the first error it yields nothing more.
#[derive(Debug, Clone)]
pub struct Tokens<'a> {
    frame: &'a [u8],
    /// The whole frame as text, if it is valid UTF-8 (checked once).
    text: Option<&'a str>,
    at: usize,
    /// A data field's length, announced by its length field: (data tag, length).
    data_length: Option<(u32, usize)>,
}

impl<'a> Tokens<'a> {
    pub fn new(frame: &'a [u8]) -> Tokens<'a> {
        Tokens {
            frame,
            text: std::str::from_utf8(frame).ok(),
            at: 0,
            data_length: None,
        }
    }

    fn field(&mut self) -> Result<(u32, &'a str), TokenizeError> {
        let frame = self.frame;
        let i = self.at;
        // The tag runs to the first `=`; an SOH before it means the field has none.
        let eq = frame[i..]
            .iter()
            .position(|&c| c == b'=' || c == SOH)
            .map(|n| i + n)
            .filter(|&j| frame[j] == b'=')
            .ok_or(TokenizeError::MissingEquals(i))?;
        let tag = parse_tag(&frame[i..eq]).ok_or(TokenizeError::BadTag(i))?;
        let value_start = eq + 1;
        let value_end = match self.data_length.take() {
            Some((data_tag, len)) if data_tag == tag => {
                let end = value_start + len;
                if end >= frame.len() || frame[end] != SOH {
                    return Err(TokenizeError::DataTooLong(tag));
                }
                end
            }
            _ => frame[value_start..]
                .iter()
                .position(|&c| c == SOH)
                .map_or(frame.len(), |n| value_start + n),
        };
        // Delimiters are ASCII, so a field of a valid UTF-8 frame is a valid slice of it.
        let value = match self.text.and_then(|t| t.get(value_start..value_end)) {
            Some(v) => v,
            None => std::str::from_utf8(&frame[value_start..value_end])
                .map_err(|_| TokenizeError::NotUtf8(tag))?,
        };
        if let Some(&(_, data_tag)) = DATA_FIELDS.iter().find(|(l, _)| *l == tag) {
            if let Ok(len) = value.parse::<usize>() {
                self.data_length = Some((data_tag, len));
            }
        }
        self.at = value_end + 1;
        Ok((tag, value))
    }
}

impl<'a> Iterator for Tokens<'a> {
    type Item = Result<(u32, &'a str), TokenizeError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.at >= self.frame.len() {
            return None;
        }
        let field = self.field();
        if field.is_err() {
            self.at = self.frame.len();
        }
        Some(field)
    }
}

fn parse_tag(bytes: &[u8]) -> Option<u32> {
    if bytes.is_empty() || bytes.len() > 9 || bytes[0] == b'0' {
        return None;
    }
    let mut v: u32 = 0;
    for &c in bytes {
        if !c.is_ascii_digit() {
            return None;
        }
        v = v * 10 + (c - b'0') as u32;
    }
    Some(v)
}

/// Encode a message: BeginString, computed BodyLength, `fields` in order, computed CheckSum.
/// `fields` must not contain 8, 9 or 10.
pub fn encode(begin_string: &str, fields: &[Field]) -> Vec<u8> {
    encode_with_body(begin_string, &[], &encode_body(fields))
}

/// Fields in wire form (`tag=value` SOH ...), without framing: the body of a message as the
/// session layer stores it for resend and writes it after the header.
pub fn encode_body(fields: &[Field]) -> Vec<u8> {
    let len = fields
        .iter()
        .map(|f| digits(f.tag as u64) + f.value.len() + 2)
        .sum();
    let mut out = Vec::with_capacity(len);
    for f in fields {
        push_field(&mut out, f.tag, f.value.as_bytes());
    }
    out
}

/// Encode a frame: BeginString, computed BodyLength, the `header` fields, then `body` (fields
/// already in wire form, see [`encode_body`]), computed CheckSum. One allocation.
pub fn encode_with_body(begin_string: &str, header: &[(u32, &[u8])], body: &[u8]) -> Vec<u8> {
    let body_len: usize = header
        .iter()
        .map(|(tag, v)| digits(*tag as u64) + v.len() + 2)
        .sum::<usize>()
        + body.len();
    let mut out = Vec::with_capacity(body_len + begin_string.len() + 24);
    push_field(&mut out, 8, begin_string.as_bytes());
    push_field(&mut out, 9, decimal(body_len as u64, &mut [0; 20]));
    for &(tag, value) in header {
        debug_assert!(
            !matches!(tag, 8..=10),
            "Invariant: framing tags are written by the encoder"
        );
        push_field(&mut out, tag, value);
    }
    out.extend_from_slice(body);
    let sum = checksum(&out) as u8;
    push_field(
        &mut out,
        10,
        &[b'0' + sum / 100, b'0' + sum / 10 % 10, b'0' + sum % 10],
    );
    out
}

/// Fields in wire form written one by one (see [`encode_body`]): builds a message body
/// without an intermediate field list.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BodyWriter {
    bytes: Vec<u8>,
}

impl BodyWriter {
    pub fn with_capacity(n: usize) -> BodyWriter {
        BodyWriter {
            bytes: Vec::with_capacity(n),
        }
    }

    /// `tag=value`.
    pub fn str(&mut self, tag: u32, value: &str) -> &mut Self {
        push_field(&mut self.bytes, tag, value.as_bytes());
        self
    }

    /// `tag=value` if there is a value.
    pub fn opt_str(&mut self, tag: u32, value: Option<&str>) -> &mut Self {
        if let Some(v) = value {
            self.str(tag, v);
        }
        self
    }

    /// `tag=n` in decimal.
    pub fn uint(&mut self, tag: u32, n: u64) -> &mut Self {
        push_field(&mut self.bytes, tag, decimal(n, &mut [0; 20]));
        self
    }

    /// `tag=n` in decimal if there is a value.
    pub fn opt_uint(&mut self, tag: u32, n: Option<u64>) -> &mut Self {
        if let Some(n) = n {
            self.uint(tag, n);
        }
        self
    }

    /// `tag=` a price as its `Display` form writes it (`65.200`, `-0.005`), without the
    /// formatting machinery.
    pub fn price(&mut self, tag: u32, price: twinsite_core::Price) -> &mut Self {
        self.bytes
            .extend_from_slice(decimal(tag as u64, &mut [0; 20]));
        self.bytes.push(b'=');
        write_price(&mut self.bytes, price);
        self.bytes.push(SOH);
        self
    }

    /// `tag=` the value's `Display` form, formatted in place.
    pub fn display(&mut self, tag: u32, value: impl std::fmt::Display) -> &mut Self {
        use std::io::Write;
        self.bytes
            .extend_from_slice(decimal(tag as u64, &mut [0; 20]));
        self.bytes.push(b'=');
        // Writing into a Vec cannot fail.
        let _ = write!(self.bytes, "{value}");
        self.bytes.push(SOH);
        self
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes
    }

    pub fn into_bytes(self) -> Vec<u8> {
        self.bytes
    }
}

fn digits(mut n: u64) -> usize {
    let mut d = 1;
    while n >= 10 {
        n /= 10;
        d += 1;
    }
    d
}

/// `n` in decimal, written at the end of `buf` (the one writer of the workspace).
pub use twinsite_core::text::decimal;

/// A price in the text [`twinsite_core::Price`]'s `Display` writes: sign, whole units, `.`,
/// exactly three decimals.
pub fn write_price(out: &mut Vec<u8>, price: twinsite_core::Price) {
    const ONE: u64 = twinsite_core::price::PRICE_ONE as u64;
    if price.0 < 0 {
        out.push(b'-');
    }
    let a = price.0.unsigned_abs();
    out.extend_from_slice(decimal(a / ONE, &mut [0; 20]));
    let frac = a % ONE;
    out.extend_from_slice(&[
        b'.',
        b'0' + (frac / 100) as u8,
        b'0' + (frac / 10 % 10) as u8,
        b'0' + (frac % 10) as u8,
    ]);
}

fn push_field(out: &mut Vec<u8>, tag: u32, value: &[u8]) {
    out.extend_from_slice(decimal(tag as u64, &mut [0; 20]));
    out.push(b'=');
    out.extend_from_slice(value);
    out.push(SOH);
}

/// Replace `|` with SOH: test and documentation helper.
pub fn from_pipes(s: &str) -> Vec<u8> {
    s.bytes().map(|c| if c == b'|' { SOH } else { c }).collect()
}

/// Replace SOH with `|` for logs.
pub fn to_pipes(bytes: &[u8]) -> String {
    bytes
        .iter()
        .map(|&c| if c == SOH { '|' } else { c as char })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn logon_fields() -> Vec<Field> {
        vec![
            Field::new(35, "A"),
            Field::new(49, "CO01"),
            Field::new(56, "HKEX"),
            Field::new(34, "1"),
            Field::new(52, "20231125-01:02:03.456"),
            Field::new(98, "0"),
            Field::new(108, "20"),
        ]
    }

    #[test]
    fn encode_computes_body_length_and_checksum() {
        let bytes = encode(BEGIN_STRING, &[Field::new(35, "0")]);
        let text = to_pipes(&bytes);
        assert!(text.starts_with("8=FIXT.1.1|9=5|35=0|10="), "{text}");
        let sum = checksum(&from_pipes("8=FIXT.1.1|9=5|35=0|"));
        assert!(text.ends_with(&format!("10={sum:03}|")));
    }

    #[test]
    fn splitter_returns_frames_split_at_any_byte() {
        let one = encode(BEGIN_STRING, &logon_fields());
        let mut stream = one.clone();
        stream.extend_from_slice(&one);
        for cut in 0..stream.len() {
            let mut s = FrameSplitter::new();
            s.push(&stream[..cut]);
            let mut frames = Vec::new();
            while let Some(f) = s.next_frame() {
                frames.push(f.unwrap());
            }
            s.push(&stream[cut..]);
            while let Some(f) = s.next_frame() {
                frames.push(f.unwrap());
            }
            assert_eq!(frames.len(), 2, "cut at {cut}");
            assert_eq!(frames[0].bytes, one);
        }
    }

    #[test]
    fn splitter_accepts_zero_padded_body_length() {
        let text = "8=FIXT.1.1|9=0000005|35=0|";
        let mut bytes = from_pipes(text);
        let sum = checksum(&bytes);
        bytes.extend_from_slice(format!("10={sum:03}\x01").as_bytes());
        let mut s = FrameSplitter::new();
        s.push(&bytes);
        assert_eq!(s.next_frame(), Some(Ok(Frame { bytes })));
    }

    #[test]
    fn splitter_discards_bad_checksum_and_keeps_going() {
        let good = encode(BEGIN_STRING, &logon_fields());
        let mut bad = good.clone();
        let n = bad.len();
        bad[n - 2] = if bad[n - 2] == b'0' { b'1' } else { b'0' };
        let mut s = FrameSplitter::new();
        s.push(&bad);
        s.push(&good);
        assert!(matches!(
            s.next_frame(),
            Some(Err(FrameError::BadChecksum { .. }))
        ));
        assert_eq!(s.next_frame().unwrap().unwrap().bytes, good);
        assert_eq!(s.next_frame(), None);
    }

    #[test]
    fn splitter_discards_wrong_body_length_too_short_and_too_long() {
        let good = encode(BEGIN_STRING, &logon_fields());
        let text = to_pipes(&good);
        let len: usize = text.split('|').nth(1).unwrap()[2..].parse().unwrap();
        for wrong in [len - 3, len + 3, len + 500] {
            let broken = text.replacen(&format!("|9={len}|"), &format!("|9={wrong}|"), 1);
            let mut s = FrameSplitter::new();
            s.push(&from_pipes(&broken));
            s.push(&good);
            let mut errors = 0;
            let frame = loop {
                match s.next_frame().expect("the good frame must come out") {
                    Ok(f) => break f,
                    Err(_) => errors += 1,
                }
            };
            assert!(errors >= 1, "wrong length {wrong}");
            assert_eq!(frame.bytes, good);
        }
    }

    #[test]
    fn splitter_skips_leading_junk() {
        let good = encode(BEGIN_STRING, &logon_fields());
        let mut s = FrameSplitter::new();
        s.push(b"hello\x01");
        s.push(&good);
        assert!(matches!(s.next_frame(), Some(Err(FrameError::Junk { .. }))));
        assert_eq!(s.next_frame().unwrap().unwrap().bytes, good);
    }

    #[test]
    fn tokenize_reads_data_fields_with_soh_inside() {
        let bytes = from_pipes("35=A|1401=3|1402=a|b|108=20|");
        let fields = tokenize(&bytes).unwrap();
        assert_eq!(fields[2], Field::new(1402, "a\x01b"));
        assert_eq!(fields[3], Field::new(108, "20"));
    }

    #[test]
    fn tokenize_rejects_bad_tags() {
        assert!(matches!(
            tokenize(&from_pipes("35=A|x=1|")),
            Err(TokenizeError::BadTag(_))
        ));
        assert!(matches!(
            tokenize(&from_pipes("35=A|049=1|")),
            Err(TokenizeError::BadTag(_))
        ));
        assert!(matches!(
            tokenize(&from_pipes("35=A|49|")),
            Err(TokenizeError::MissingEquals(_))
        ));
    }

    proptest! {
        #![proptest_config(crate::proptest_config(512))]
        #[test]
        fn arbitrary_bytes_never_panic(chunks in proptest::collection::vec(
            proptest::collection::vec(any::<u8>(), 0..64), 0..8)) {
            let mut s = FrameSplitter::new();
            for c in &chunks {
                s.push(c);
                let mut guard = 0;
                while let Some(frame) = s.next_frame() {
                    if let Ok(frame) = frame {
                        let _ = tokenize(&frame.bytes);
                    }
                    guard += 1;
                    prop_assert!(guard < 10_000);
                }
            }
        }

        #[test]
        fn fix_like_bytes_never_panic(parts in proptest::collection::vec(
            prop_oneof![
                Just("8=FIXT.1.1\x01".to_string()),
                Just("9=".to_string()),
                Just("10=".to_string()),
                Just("\x01".to_string()),
                "[0-9]{1,4}".prop_map(|s| s),
                "[0-9]{1,3}=[A-Za-z0-9]{0,4}\x01".prop_map(|s| s),
            ], 0..40)) {
            let bytes: Vec<u8> = parts.concat().into_bytes();
            let mut s = FrameSplitter::new();
            s.push(&bytes);
            let mut guard = 0;
            while let Some(frame) = s.next_frame() {
                if let Ok(frame) = frame {
                    let _ = tokenize(&frame.bytes);
                }
                guard += 1;
                prop_assert!(guard < 10_000);
            }
        }

        #[test]
        fn price_is_written_as_display_writes_it(p in any::<i64>()) {
            let price = twinsite_core::Price(p);
            let mut out = Vec::new();
            write_price(&mut out, price);
            prop_assert_eq!(String::from_utf8(out).unwrap(), price.to_string());
        }

        #[test]
        fn feed_gives_what_next_frame_gives(
            cuts in proptest::collection::vec(0usize..600, 0..6),
            garbage in proptest::collection::vec(any::<u8>(), 0..12),
            stop_after in 0usize..8,
        ) {
            let one = encode(BEGIN_STRING, &logon_fields());
            let mut bad = one.clone();
            let n = bad.len();
            bad[n - 2] = if bad[n - 2] == b'0' { b'1' } else { b'0' };
            let stream = [&one[..], &garbage, &bad, &one, b"8=FIXT.1.1\x019=5", &one].concat();
            let mut cuts: Vec<usize> = cuts.into_iter().map(|c| c.min(stream.len())).collect();
            cuts.push(0);
            cuts.push(stream.len());
            cuts.sort_unstable();
            // Everything, in chunks, pulled with next_frame; and fed in the same chunks.
            let (mut pulled, mut fed) = (Vec::new(), Vec::new());
            let (mut a, mut b) = (FrameSplitter::new(), FrameSplitter::new());
            for w in cuts.windows(2) {
                let chunk = &stream[w[0]..w[1]];
                a.push(chunk);
                while let Some(r) = a.next_frame() {
                    pulled.push(r.map(|f| f.bytes));
                }
                b.feed(chunk, |r| {
                    fed.push(r.map(<[u8]>::to_vec));
                    true
                });
            }
            prop_assert_eq!(&pulled, &fed);
            prop_assert_eq!(a.buffered_len(), b.buffered_len());
            // Stopping keeps the rest: pulling it afterwards gives the remaining results.
            let mut c = FrameSplitter::new();
            let mut got = Vec::new();
            c.feed(&stream, |r| {
                got.push(r.map(<[u8]>::to_vec));
                got.len() <= stop_after
            });
            while let Some(r) = c.next_frame() {
                got.push(r.map(|f| f.bytes));
            }
            let mut d = FrameSplitter::new();
            d.push(&stream);
            let mut all = Vec::new();
            while let Some(r) = d.next_frame() {
                all.push(r.map(|f| f.bytes));
            }
            prop_assert_eq!(got, all);
        }

        #[test]
        fn encode_then_split_and_tokenize_round_trips(values in proptest::collection::vec(
            (1u32..6000, "[ -~&&[^=]]{1,12}"), 0..20)) {
            let fields: Vec<Field> = std::iter::once(Field::new(35, "D"))
                .chain(values.iter()
                    .filter(|(t, _)| !matches!(t, 8 | 9 | 10 | 95 | 354 | 1401 | 1403))
                    .map(|(t, v)| Field::new(*t, v.as_str())))
                .collect();
            let bytes = encode(BEGIN_STRING, &fields);
            let mut s = FrameSplitter::new();
            s.push(&bytes);
            let frame = s.next_frame().unwrap().unwrap();
            let tokens = tokenize(&frame.bytes).unwrap();
            prop_assert_eq!(&tokens[2..tokens.len() - 1], &fields[..]);
        }
    }
}
