//! Wire primitives: little-endian integers, space-padded ASCII, UTF-16LE text, Int64 null,
//! and the typed decode error every decoder in this crate returns.
//!
//! Every field type implements [`WireField`]: a fixed length and a total `put`, plus a `get`
//! that fails only for enumerations whose value is not documented. Decoders never panic: every
//! slice they index has been length-checked first.

use twinsite_core::limits::OMD_INT64_NULL;

/// A decode failure. Every variant is the peer's fault (a malformed or unexpected datagram);
/// none is a bug in the caller.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("packet of {len} bytes is shorter than the 16-byte packet header")]
    ShortPacket { len: usize },
    #[error("PktSize {pkt_size} disagrees with the {len} bytes received")]
    PktSizeMismatch { pkt_size: u16, len: usize },
    #[error("message {index} in the packet needs {needed} bytes but only {available} remain")]
    MessageOverrun {
        index: usize,
        needed: usize,
        available: usize,
    },
    #[error("MsgSize {msg_size} is smaller than the 4-byte message header")]
    MsgSizeTooSmall { msg_size: u16 },
    #[error("MsgCount says {msg_count} messages but the packet holds {found}")]
    MsgCountMismatch { msg_count: u8, found: usize },
    #[error("message type {msg_type} is not known")]
    UnknownType { msg_type: u16 },
    #[error("message type {msg_type} has MsgSize {msg_size}, expected {expected}")]
    BadLength {
        msg_type: u16,
        msg_size: usize,
        expected: usize,
    },
    #[error("message type {msg_type}: field {field} has undocumented value {value}")]
    BadValue {
        msg_type: u16,
        field: &'static str,
        value: u64,
    },
    #[error("message type {msg_type}: {field} = {count} exceeds the documented maximum {max}")]
    TooManyEntries {
        msg_type: u16,
        field: &'static str,
        count: usize,
        max: usize,
    },
}

/// A fixed-length field of a message.
pub trait WireField: Sized {
    /// Bytes on the wire.
    const LEN: usize;
    /// Write exactly `LEN` bytes into `out` (`out.len() == LEN`).
    fn put(&self, out: &mut [u8]);
    /// Read from exactly `LEN` bytes; `Err(raw value)` for an undocumented enumeration value.
    fn get(bytes: &[u8]) -> Result<Self, u64>;
    /// A valid value drawn from `rng` (for property tests and simulations).
    #[doc(hidden)]
    fn sample(rng: &mut dyn FnMut() -> u64) -> Self;
}

macro_rules! int_field {
    ($($t:ty),*) => {$(
        impl WireField for $t {
            const LEN: usize = std::mem::size_of::<$t>();
            fn put(&self, out: &mut [u8]) {
                out.copy_from_slice(&self.to_le_bytes());
            }
            fn get(bytes: &[u8]) -> Result<Self, u64> {
                let mut raw = [0u8; std::mem::size_of::<$t>()];
                raw.copy_from_slice(bytes);
                Ok(<$t>::from_le_bytes(raw))
            }
            fn sample(rng: &mut dyn FnMut() -> u64) -> Self {
                rng() as $t
            }
        }
    )*};
}
int_field!(u8, u16, u32, u64, i16, i32, i64);

/// Int64 where `0x8000000000000000` means "null" (§1.4). `Some(i64::MIN)` cannot be sent.
impl WireField for Option<i64> {
    const LEN: usize = 8;
    fn put(&self, out: &mut [u8]) {
        self.unwrap_or(OMD_INT64_NULL).put(out);
    }
    fn get(bytes: &[u8]) -> Result<Self, u64> {
        let v = i64::get(bytes)?;
        Ok((v != OMD_INT64_NULL).then_some(v))
    }
    fn sample(rng: &mut dyn FnMut() -> u64) -> Self {
        let v = rng() as i64;
        (v.rem_euclid(3) != 0 && v != OMD_INT64_NULL).then_some(v)
    }
}

/// An ASCII `String(N)` field: left-aligned, space-padded. Holds the raw bytes so that
/// decode followed by encode reproduces the datagram exactly.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct AsciiStr<const N: usize>(pub [u8; N]);

impl<const N: usize> AsciiStr<N> {
    /// Left-align `s` and pad with spaces; longer input is cut at `N` bytes.
    pub fn new(s: &str) -> Self {
        let mut raw = [b' '; N];
        for (slot, byte) in raw.iter_mut().zip(s.bytes()) {
            *slot = byte;
        }
        AsciiStr(raw)
    }
    /// A one-character field such as a `Y`/`N` flag.
    pub fn from_char(c: u8) -> Self {
        let mut raw = [b' '; N];
        if let Some(first) = raw.first_mut() {
            *first = c;
        }
        AsciiStr(raw)
    }
    /// The first byte (for one-character flags).
    pub fn char(&self) -> u8 {
        self.0.first().copied().unwrap_or(b' ')
    }
    /// The text without trailing spaces or NULs; non-ASCII bytes become `?`.
    pub fn text(&self) -> String {
        let end = self
            .0
            .iter()
            .rposition(|&b| b != b' ' && b != 0)
            .map_or(0, |i| i + 1);
        self.0[..end]
            .iter()
            .map(|&b| if b.is_ascii() { b as char } else { '?' })
            .collect()
    }
}

impl<const N: usize> Default for AsciiStr<N> {
    fn default() -> Self {
        AsciiStr([b' '; N])
    }
}

impl<const N: usize> std::fmt::Debug for AsciiStr<N> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}", self.text())
    }
}

impl<const N: usize> WireField for AsciiStr<N> {
    const LEN: usize = N;
    fn put(&self, out: &mut [u8]) {
        out.copy_from_slice(&self.0);
    }
    fn get(bytes: &[u8]) -> Result<Self, u64> {
        let mut raw = [0u8; N];
        raw.copy_from_slice(bytes);
        Ok(AsciiStr(raw))
    }
    fn sample(rng: &mut dyn FnMut() -> u64) -> Self {
        let mut raw = [0u8; N];
        for byte in raw.iter_mut() {
            *byte = rng() as u8;
        }
        AsciiStr(raw)
    }
}

/// The RTS `Username`: ASCII, NUL-padded (the one documented exception to space padding).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct NulStr<const N: usize>(pub [u8; N]);

impl<const N: usize> NulStr<N> {
    pub fn new(s: &str) -> Self {
        let mut raw = [0u8; N];
        for (slot, byte) in raw.iter_mut().zip(s.bytes()) {
            *slot = byte;
        }
        NulStr(raw)
    }
    pub fn text(&self) -> String {
        AsciiStr(self.0).text()
    }
}

impl<const N: usize> Default for NulStr<N> {
    fn default() -> Self {
        NulStr([0; N])
    }
}

impl<const N: usize> std::fmt::Debug for NulStr<N> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}", self.text())
    }
}

impl<const N: usize> WireField for NulStr<N> {
    const LEN: usize = N;
    fn put(&self, out: &mut [u8]) {
        out.copy_from_slice(&self.0);
    }
    fn get(bytes: &[u8]) -> Result<Self, u64> {
        let mut raw = [0u8; N];
        raw.copy_from_slice(bytes);
        Ok(NulStr(raw))
    }
    fn sample(rng: &mut dyn FnMut() -> u64) -> Self {
        let mut raw = [0u8; N];
        for byte in raw.iter_mut() {
            *byte = rng() as u8;
        }
        NulStr(raw)
    }
}

/// A `Binary(N)` field holding UTF-16LE text (Chinese names). Padding is with UTF-16 spaces
/// (`20 00`): the reference does not document the pad; this is our choice (docs/omd.md).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Utf16Str<const N: usize>(pub [u8; N]);

impl<const N: usize> Utf16Str<N> {
    /// Encode `s` as UTF-16LE, cut at a whole code unit, padded with UTF-16 spaces.
    pub fn new(s: &str) -> Self {
        let mut raw = [0u8; N];
        for pair in raw.chunks_exact_mut(2) {
            pair.copy_from_slice(&[b' ', 0]);
        }
        let mut pos = 0;
        for unit in s.encode_utf16() {
            if pos + 2 > N {
                break;
            }
            raw[pos..pos + 2].copy_from_slice(&unit.to_le_bytes());
            pos += 2;
        }
        Utf16Str(raw)
    }
    /// The text without trailing spaces or NULs; invalid UTF-16 becomes U+FFFD.
    pub fn text(&self) -> String {
        let units: Vec<u16> = self
            .0
            .chunks_exact(2)
            .map(|p| u16::from_le_bytes([p[0], p[1]]))
            .collect();
        let end = units
            .iter()
            .rposition(|&u| u != 0x20 && u != 0)
            .map_or(0, |i| i + 1);
        String::from_utf16_lossy(&units[..end])
    }
}

impl<const N: usize> Default for Utf16Str<N> {
    fn default() -> Self {
        Utf16Str::new("")
    }
}

impl<const N: usize> std::fmt::Debug for Utf16Str<N> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}", self.text())
    }
}

impl<const N: usize> WireField for Utf16Str<N> {
    const LEN: usize = N;
    fn put(&self, out: &mut [u8]) {
        out.copy_from_slice(&self.0);
    }
    fn get(bytes: &[u8]) -> Result<Self, u64> {
        let mut raw = [0u8; N];
        raw.copy_from_slice(bytes);
        Ok(Utf16Str(raw))
    }
    fn sample(rng: &mut dyn FnMut() -> u64) -> Self {
        let mut raw = [0u8; N];
        for byte in raw.iter_mut() {
            *byte = rng() as u8;
        }
        Utf16Str(raw)
    }
}

/// `Side` of messages 30–34 and 53: Uint16, 0 = Bid, 1 = Offer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub enum BookSide {
    #[default]
    Bid,
    Offer,
}

impl BookSide {
    pub fn from_core(side: twinsite_core::Side) -> BookSide {
        match side {
            twinsite_core::Side::Buy => BookSide::Bid,
            twinsite_core::Side::Sell => BookSide::Offer,
        }
    }
    /// Index 0 for bids, 1 for offers (array-per-side storage).
    pub fn index(self) -> usize {
        match self {
            BookSide::Bid => 0,
            BookSide::Offer => 1,
        }
    }
    /// True when `a` is a better price than `b` on this side.
    pub fn better(self, a: i32, b: i32) -> bool {
        match self {
            BookSide::Bid => a > b,
            BookSide::Offer => a < b,
        }
    }
}

impl WireField for BookSide {
    const LEN: usize = 2;
    fn put(&self, out: &mut [u8]) {
        let raw: u16 = match self {
            BookSide::Bid => 0,
            BookSide::Offer => 1,
        };
        raw.put(out);
    }
    fn get(bytes: &[u8]) -> Result<Self, u64> {
        match u16::get(bytes)? {
            0 => Ok(BookSide::Bid),
            1 => Ok(BookSide::Offer),
            other => Err(other as u64),
        }
    }
    fn sample(rng: &mut dyn FnMut() -> u64) -> Self {
        if rng() & 1 == 0 {
            BookSide::Bid
        } else {
            BookSide::Offer
        }
    }
}

/// `BQSide` of Broker Queue (54): Uint16, 1 = Buy, 2 = Sell (a different code from [`BookSide`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum BrokerQueueSide {
    #[default]
    Buy,
    Sell,
}

impl WireField for BrokerQueueSide {
    const LEN: usize = 2;
    fn put(&self, out: &mut [u8]) {
        let raw: u16 = match self {
            BrokerQueueSide::Buy => 1,
            BrokerQueueSide::Sell => 2,
        };
        raw.put(out);
    }
    fn get(bytes: &[u8]) -> Result<Self, u64> {
        match u16::get(bytes)? {
            1 => Ok(BrokerQueueSide::Buy),
            2 => Ok(BrokerQueueSide::Sell),
            other => Err(other as u64),
        }
    }
    fn sample(rng: &mut dyn FnMut() -> u64) -> Self {
        if rng() & 1 == 0 {
            BrokerQueueSide::Buy
        } else {
            BrokerQueueSide::Sell
        }
    }
}

/// `UpdateAction` of Aggregate Order Book Update (53).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum UpdateAction {
    #[default]
    New,
    Change,
    Delete,
    /// 74: clear both sides of the security's book; live levels are re-sent afterwards.
    OrderBookClear,
}

impl WireField for UpdateAction {
    const LEN: usize = 1;
    fn put(&self, out: &mut [u8]) {
        out[0] = match self {
            UpdateAction::New => 0,
            UpdateAction::Change => 1,
            UpdateAction::Delete => 2,
            UpdateAction::OrderBookClear => 74,
        };
    }
    fn get(bytes: &[u8]) -> Result<Self, u64> {
        match bytes[0] {
            0 => Ok(UpdateAction::New),
            1 => Ok(UpdateAction::Change),
            2 => Ok(UpdateAction::Delete),
            74 => Ok(UpdateAction::OrderBookClear),
            other => Err(other as u64),
        }
    }
    fn sample(rng: &mut dyn FnMut() -> u64) -> Self {
        match rng() % 4 {
            0 => UpdateAction::New,
            1 => UpdateAction::Change,
            2 => UpdateAction::Delete,
            _ => UpdateAction::OrderBookClear,
        }
    }
}

/// Checks, at compile time, that a layout's fields lie in order, do not overlap, start after
/// `first` (4 for a message, past its header; 0 for a repeating-group entry) and end within
/// `total` bytes.
pub(crate) const fn layout_ok(first: usize, total: usize, fields: &[(usize, usize)]) -> bool {
    let mut next_free = first;
    let mut i = 0;
    while i < fields.len() {
        let (offset, len) = fields[i];
        if offset < next_free {
            return false;
        }
        next_free = offset + len;
        i += 1;
    }
    next_free <= total
}

/// Write a message header: MsgSize (incl. itself) and MsgType.
pub(crate) fn put_header(buf: &mut [u8], msg_size: usize, msg_type: u16) {
    (msg_size as u16).put(&mut buf[0..2]);
    msg_type.put(&mut buf[2..4]);
}

/// Read a little-endian u16 at `offset`; the caller has checked the length.
pub(crate) fn u16_at(buf: &[u8], offset: usize) -> u16 {
    u16::from_le_bytes([buf[offset], buf[offset + 1]])
}

/// Declares a fixed layout: a struct whose fields sit at documented byte offsets, with
/// `encode_fields` / `decode_fields` over a buffer of exactly `LEN` bytes. Bytes not covered
/// by a field are fillers and are written as ASCII spaces.
macro_rules! wire_struct {
    (
        $(#[$meta:meta])*
        $name:ident, msg_type = $msg_type:expr, first = $first:expr, len = $len:expr,
        { $( $(#[$fmeta:meta])* $field:ident : $fty:ty = $off:expr ),* $(,)? }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq, Eq, Default)]
        pub struct $name {
            $( $(#[$fmeta])* pub $field: $fty, )*
        }

        impl $name {
            /// Bytes on the wire.
            pub const LEN: usize = $len;
            #[allow(dead_code)]
            const LAYOUT: &'static [(usize, usize)] =
                &[ $( ($off, <$fty as $crate::wire::WireField>::LEN) ),* ];

            /// Write every field at its offset; fillers become spaces. `buf.len() == LEN`.
            #[allow(unused_variables)]
            pub(crate) fn encode_fields(&self, buf: &mut [u8]) {
                for byte in buf[$first..].iter_mut() {
                    *byte = b' ';
                }
                $(
                    $crate::wire::WireField::put(
                        &self.$field,
                        &mut buf[$off..$off + <$fty as $crate::wire::WireField>::LEN],
                    );
                )*
            }

            /// Read every field from its offset. `buf.len() >= LEN` (checked by the caller).
            #[allow(unused_variables)]
            pub(crate) fn decode_fields(
                buf: &[u8],
            ) -> Result<Self, $crate::wire::DecodeError> {
                Ok(Self {
                    $(
                        $field: <$fty as $crate::wire::WireField>::get(
                            &buf[$off..$off + <$fty as $crate::wire::WireField>::LEN],
                        )
                        .map_err(|value| $crate::wire::DecodeError::BadValue {
                            msg_type: $msg_type,
                            field: stringify!($field),
                            value,
                        })?,
                    )*
                })
            }

            /// A valid value drawn from `rng` (property tests, simulations).
            #[doc(hidden)]
            #[allow(unused_variables)]
            pub fn sample(rng: &mut dyn FnMut() -> u64) -> Self {
                Self { $( $field: <$fty as $crate::wire::WireField>::sample(rng), )* }
            }
        }

        const _: () = assert!(
            $crate::wire::layout_ok($first, $len, $name::LAYOUT),
            "Invariant: fields in order, non-overlapping, inside the message"
        );
    };
}

/// Declares a fixed-length message (type and total length from the reference tables; offsets
/// include the 4-byte MsgSize/MsgType header).
macro_rules! fixed_message {
    (
        $(#[$meta:meta])*
        $name:ident, msg_type = $msg_type:expr, len = $len:expr,
        { $( $(#[$fmeta:meta])* $field:ident : $fty:ty = $off:expr ),* $(,)? }
    ) => {
        wire_struct! {
            $(#[$meta])*
            $name, msg_type = $msg_type, first = 4, len = $len,
            { $( $(#[$fmeta])* $field : $fty = $off ),* }
        }

        impl $name {
            /// MsgType on the wire.
            pub const MSG_TYPE: u16 = $msg_type;

            /// Append the whole message (header included) to `out`.
            pub fn encode(&self, out: &mut Vec<u8>) {
                let start = out.len();
                out.resize(start + $len, b' ');
                let buf = &mut out[start..];
                $crate::wire::put_header(buf, $len, $msg_type);
                self.encode_fields(buf);
            }

            /// Decode one whole message (header included); MsgSize must equal `LEN`.
            pub fn decode(buf: &[u8]) -> Result<Self, $crate::wire::DecodeError> {
                if buf.len() != $len {
                    return Err($crate::wire::DecodeError::BadLength {
                        msg_type: $msg_type,
                        msg_size: buf.len(),
                        expected: $len,
                    });
                }
                Self::decode_fields(buf)
            }
        }
    };
}

/// A fast hasher for the integer keys of the publishing path and the image (order ids,
/// security codes, exec ids): a multiply-rotate mix (FxHash style) with a final fold of the
/// high bits into the low ones, since hashbrown picks buckets by the low bits. Not
/// collision-resistant against chosen keys; the keys are the exchange's own identifiers.
#[derive(Debug, Default, Clone, Copy)]
pub struct IdHasher(u64);

impl IdHasher {
    const K: u64 = 0x517c_c1b7_2722_0a95;
    #[inline]
    fn mix(&mut self, v: u64) {
        self.0 = (self.0.rotate_left(5) ^ v).wrapping_mul(Self::K);
    }
}

impl std::hash::Hasher for IdHasher {
    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut raw = [0u8; 8];
            raw[..chunk.len()].copy_from_slice(chunk);
            self.mix(u64::from_le_bytes(raw));
        }
    }
    #[inline]
    fn write_u8(&mut self, v: u8) {
        self.mix(v as u64);
    }
    #[inline]
    fn write_u16(&mut self, v: u16) {
        self.mix(v as u64);
    }
    #[inline]
    fn write_u32(&mut self, v: u32) {
        self.mix(v as u64);
    }
    #[inline]
    fn write_u64(&mut self, v: u64) {
        self.mix(v);
    }
    #[inline]
    fn write_usize(&mut self, v: usize) {
        self.mix(v as u64);
    }
    #[inline]
    fn finish(&self) -> u64 {
        self.0 ^ (self.0 >> 32)
    }
}

/// `HashMap` with [`IdHasher`].
pub type IdHashMap<K, V> = std::collections::HashMap<K, V, std::hash::BuildHasherDefault<IdHasher>>;
