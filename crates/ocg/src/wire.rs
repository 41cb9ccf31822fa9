//! Wire primitives of OCG-C (reference §1.2): fixed and variable alphanumerics, Decimal, the
//! little-endian integers, and the [`WireField`] trait every body field implements.

use compact_str::CompactString;
use serde::{Deserialize, Serialize};
use std::fmt;

use crate::error::FieldError;

/// A reader over a frame body. Every read is bounds-checked; running out is `Truncated`.
#[doc(hidden)]
pub struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    pub fn new(buf: &'a [u8]) -> Self {
        Reader { buf, pos: 0 }
    }
    pub fn take(&mut self, n: usize) -> Result<&'a [u8], FieldError> {
        let end = self.pos.checked_add(n).ok_or(FieldError::Truncated)?;
        let s = self.buf.get(self.pos..end).ok_or(FieldError::Truncated)?;
        self.pos = end;
        Ok(s)
    }
    pub fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }
}

/// A body field: how it is written and read. Encoding cannot fail because every value type
/// validates its content when it is built.
pub trait WireField: Sized {
    fn put(&self, out: &mut Vec<u8>);
    #[doc(hidden)]
    fn get(r: &mut Reader<'_>) -> Result<Self, FieldError>;
}

macro_rules! int_field {
    ($($t:ty),*) => {$(
        impl WireField for $t {
            fn put(&self, out: &mut Vec<u8>) {
                out.extend_from_slice(&self.to_le_bytes());
            }
            fn get(r: &mut Reader<'_>) -> Result<Self, FieldError> {
                let b = r.take(std::mem::size_of::<$t>())?;
                Ok(<$t>::from_le_bytes(b.try_into().map_err(|_| FieldError::Truncated)?))
            }
        }
    )*};
}
int_field!(u8, u16, u32, u64, i8, i16, i32, i64);

/// The content rule shared by both alphanumeric kinds: ASCII without NUL. Control characters
/// are allowed because the reference only says "ASCII".
fn check_ascii(s: &str) -> Result<(), FieldError> {
    if s.bytes().all(|b| b != 0 && b.is_ascii()) {
        Ok(())
    } else {
        Err(FieldError::BadString)
    }
}

/// Content of an inbound alphanumeric area: up to the first NUL; without a NUL, the last byte
/// is treated as NUL (reference §1.2), so the content is all bytes but the last.
fn content_of(area: &[u8]) -> Result<CompactString, FieldError> {
    let content = match area.iter().position(|&b| b == 0) {
        Some(nul) => &area[..nul],
        None => &area[..area.len().saturating_sub(1)],
    };
    if !content.is_ascii() {
        return Err(FieldError::BadString);
    }
    // ASCII is valid UTF-8.
    std::str::from_utf8(content)
        .map(CompactString::new)
        .map_err(|_| FieldError::BadString)
}

/// Alphanumeric Fixed Length (N): NUL-terminated, the NUL counted in N, so at most N-1
/// characters. Always written as N bytes, NUL padded. Held inline up to 24 characters (every
/// OCG-C field but the 49-character texts and the password), so building, decoding and cloning
/// a message does not allocate per field.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct FixedStr<const N: usize>(CompactString);

impl<const N: usize> FixedStr<N> {
    /// Longest content the field holds.
    pub const MAX_LEN: usize = N - 1;

    /// Checked constructor for values from outside.
    pub fn new_checked(s: &str) -> Result<Self, FieldError> {
        Self::checked(CompactString::new(s))
    }
    fn checked(s: CompactString) -> Result<Self, FieldError> {
        check_ascii(&s)?;
        if s.len() > Self::MAX_LEN {
            return Err(FieldError::StringTooLong {
                len: s.len(),
                max: Self::MAX_LEN,
            });
        }
        Ok(FixedStr(s))
    }
    /// Constructor for literals and tests; panics on a value the field cannot hold.
    pub fn new(s: &str) -> Self {
        match Self::new_checked(s) {
            Ok(v) => v,
            Err(e) => panic!("Condition failed: {s:?} is not a valid char[{N}]: {e}"),
        }
    }
    /// The text of a value (a number, an id) as a field, checked like [`Self::new_checked`];
    /// formatted without a heap allocation when it fits inline.
    pub fn display_checked(v: impl fmt::Display) -> Result<Self, FieldError> {
        Self::checked(compact_str::ToCompactString::to_compact_string(&v))
    }
    /// The decimal digits of `n`, checked like [`Self::new_checked`]: written straight into
    /// a stack buffer, without the formatting machinery (ids of every Execution Report).
    pub fn number_checked(n: u64) -> Result<Self, FieldError> {
        let mut buf = [0u8; 20];
        let digits = twinsite_core::text::decimal(n, &mut buf);
        if digits.len() > Self::MAX_LEN {
            return Err(FieldError::StringTooLong {
                len: digits.len(),
                max: Self::MAX_LEN,
            });
        }
        // Digits are ASCII, hence UTF-8 (and need no ASCII check).
        let digits = std::str::from_utf8(digits).map_err(|_| FieldError::BadString)?;
        Ok(FixedStr(CompactString::new(digits)))
    }
    /// [`Self::number_checked`] for numbers known to fit; panics on one the field cannot hold.
    pub fn number(n: u64) -> Self {
        match Self::number_checked(n) {
            Ok(f) => f,
            Err(e) => panic!("Condition failed: {n} is not a valid char[{N}]: {e}"),
        }
    }
    /// [`Self::display_checked`] for values known to fit; panics on one the field cannot hold.
    pub fn display(v: impl fmt::Display) -> Self {
        match Self::display_checked(&v) {
            Ok(f) => f,
            Err(e) => panic!("Condition failed: {v} is not a valid char[{N}]: {e}"),
        }
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl<const N: usize> WireField for FixedStr<N> {
    fn put(&self, out: &mut Vec<u8>) {
        debug_assert!(
            self.0.len() < N,
            "Invariant: char[{N}] content fits with its NUL"
        );
        out.extend_from_slice(self.0.as_bytes());
        out.resize(out.len() + (N - self.0.len()), 0);
    }
    fn get(r: &mut Reader<'_>) -> Result<Self, FieldError> {
        Ok(FixedStr(content_of(r.take(N)?)?))
    }
}

/// Alphanumeric Variable Length: UInt16 length that includes the terminating NUL, then the
/// characters and the NUL. `MAX` is the longest content in characters (the reference's
/// "var <= 50" read as 50 characters plus the NUL; see docs/ocg.md).
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct VarStr<const MAX: usize>(CompactString);

impl<const MAX: usize> VarStr<MAX> {
    pub const MAX_LEN: usize = MAX;
    pub fn new_checked(s: &str) -> Result<Self, FieldError> {
        check_ascii(s)?;
        if s.len() > MAX {
            return Err(FieldError::StringTooLong {
                len: s.len(),
                max: MAX,
            });
        }
        Ok(VarStr(CompactString::new(s)))
    }
    /// Constructor for literals and tests; panics on a value the field cannot hold.
    pub fn new(s: &str) -> Self {
        match Self::new_checked(s) {
            Ok(v) => v,
            Err(e) => panic!("Condition failed: {s:?} is not a valid var string: {e}"),
        }
    }
    /// Cut a value down to the field's limit (server-generated reasons and texts).
    pub fn truncated(s: &str) -> Self {
        let clean: CompactString = s
            .chars()
            .filter(|c| c.is_ascii() && *c != '\0')
            .take(MAX)
            .collect();
        VarStr(clean)
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl<const MAX: usize> WireField for VarStr<MAX> {
    fn put(&self, out: &mut Vec<u8>) {
        let len = self.0.len() + 1;
        debug_assert!(len <= MAX + 1, "Invariant: var string within its limit");
        out.extend_from_slice(&(len as u16).to_le_bytes());
        out.extend_from_slice(self.0.as_bytes());
        out.push(0);
    }
    fn get(r: &mut Reader<'_>) -> Result<Self, FieldError> {
        let len = u16::get(r)? as usize;
        if len == 0 {
            // The length counts the NUL, so an empty value still has length 1.
            return Err(FieldError::BadVarLength);
        }
        let s = content_of(r.take(len)?)?;
        if s.len() > MAX {
            return Err(FieldError::StringTooLong {
                len: s.len(),
                max: MAX,
            });
        }
        Ok(VarStr(s))
    }
}

macro_rules! str_traits {
    ($name:ident, $n:ident) => {
        impl<const $n: usize> fmt::Debug for $name<$n> {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{:?}", self.0)
            }
        }
        impl<const $n: usize> fmt::Display for $name<$n> {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
        impl<const $n: usize> std::ops::Deref for $name<$n> {
            type Target = str;
            fn deref(&self) -> &str {
                &self.0
            }
        }
        impl<const $n: usize> Serialize for $name<$n> {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(&self.0)
            }
        }
        impl<'de, const $n: usize> Deserialize<'de> for $name<$n> {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = String::deserialize(d)?;
                Self::new_checked(&s).map_err(serde::de::Error::custom)
            }
        }
    };
}
str_traits!(FixedStr, N);
str_traits!(VarStr, MAX);

/// OCG-C Decimal: signed Int64 with 8 implied decimals, kept raw as on the wire. Convert to
/// core [`Price`](twinsite_core::Price) / [`Qty`](twinsite_core::Qty) with the accessors,
/// which are exact or fail.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize,
)]
#[serde(transparent)]
pub struct Decimal(pub i64);

impl Decimal {
    pub fn from_price(p: twinsite_core::Price) -> Self {
        Decimal(p.to_ocg_decimal())
    }
    pub fn from_qty(q: twinsite_core::Qty) -> Self {
        Decimal(q.to_ocg_decimal())
    }
    pub fn to_price(self) -> Result<twinsite_core::Price, twinsite_core::PriceError> {
        twinsite_core::Price::from_ocg_decimal(self.0)
    }
    pub fn to_qty(self) -> Result<twinsite_core::Qty, twinsite_core::PriceError> {
        twinsite_core::Qty::from_ocg_decimal(self.0)
    }
}

impl WireField for Decimal {
    fn put(&self, out: &mut Vec<u8>) {
        self.0.put(out)
    }
    fn get(r: &mut Reader<'_>) -> Result<Self, FieldError> {
        Ok(Decimal(i64::get(r)?))
    }
}

/// A Byte field that is not an enumeration here (one ASCII character, e.g. Exchange Trade
/// Type). Any byte value is carried.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Char(pub u8);

impl WireField for Char {
    fn put(&self, out: &mut Vec<u8>) {
        out.push(self.0)
    }
    fn get(r: &mut Reader<'_>) -> Result<Self, FieldError> {
        Ok(Char(u8::get(r)?))
    }
}

/// A block inside a repeating group: its own 2-byte presence map, then its present fields.
pub trait Block: Sized {
    fn put_block(&self, out: &mut Vec<u8>);
    #[doc(hidden)]
    fn get_block(r: &mut Reader<'_>) -> Result<Self, FieldError>;
}

/// Repeating group: UInt16 count, then each entry as a [`Block`].
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Group<T>(pub Vec<T>);

impl<T: Block> WireField for Group<T> {
    fn put(&self, out: &mut Vec<u8>) {
        let count = u16::try_from(self.0.len()).unwrap_or(u16::MAX);
        count.put(out);
        for entry in self.0.iter().take(count as usize) {
            entry.put_block(out);
        }
    }
    fn get(r: &mut Reader<'_>) -> Result<Self, FieldError> {
        let count = u16::get(r)? as usize;
        // Each entry takes at least its 2-byte map, so a count beyond what is left is a lie;
        // refusing it early keeps a hostile count from reserving memory.
        if count.saturating_mul(2) > r.remaining() {
            return Err(FieldError::Truncated);
        }
        let mut v = Vec::with_capacity(count);
        for _ in 0..count {
            v.push(T::get_block(r)?);
        }
        Ok(Group(v))
    }
}

/// Is bit `bit` (0 = most significant bit of byte 0) set in `map`?
pub(crate) fn bit_is_set(map: &[u8], bit: usize) -> bool {
    map.get(bit / 8)
        .is_some_and(|b| b & (0x80 >> (bit % 8)) != 0)
}

pub(crate) fn set_bit(map: &mut [u8], bit: usize) {
    map[bit / 8] |= 0x80 >> (bit % 8);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn roundtrip<T: WireField + PartialEq + fmt::Debug>(v: T) -> Vec<u8> {
        let mut out = Vec::new();
        v.put(&mut out);
        let mut r = Reader::new(&out);
        assert_eq!(T::get(&mut r).unwrap(), v);
        assert_eq!(r.remaining(), 0);
        out
    }

    proptest::proptest! {
        /// The digit writer gives what formatting the number gives, and refuses the same
        /// numbers (too long for the field).
        #[test]
        fn number_is_the_decimal_text(n in proptest::prelude::any::<u64>()) {
            proptest::prop_assert_eq!(
                FixedStr::<21>::number_checked(n).ok(),
                FixedStr::<21>::display_checked(n).ok()
            );
            proptest::prop_assert_eq!(
                FixedStr::<12>::number_checked(n).ok(),
                FixedStr::<12>::display_checked(n).ok()
            );
        }
    }

    #[test]
    fn number_edges() {
        assert_eq!(FixedStr::<21>::number(0).as_str(), "0");
        assert_eq!(
            FixedStr::<21>::number(u64::MAX).as_str(),
            "18446744073709551615"
        );
        assert!(FixedStr::<3>::number_checked(100).is_err());
        assert_eq!(FixedStr::<3>::number(99).as_str(), "99");
    }

    #[test]
    fn fixed_string_is_nul_padded_to_its_size() {
        let bytes = roundtrip(FixedStr::<5>::new("XHKG"));
        assert_eq!(bytes, b"XHKG\0");
        assert_eq!(roundtrip(FixedStr::<3>::new("")), [0, 0, 0]);
        assert!(FixedStr::<5>::new_checked("XHKGX").is_err());
    }

    #[test]
    fn inbound_fixed_string_filling_the_field_loses_its_last_byte() {
        // Reference §1.2: a value that fills all n bytes has its last byte treated as NUL.
        let mut r = Reader::new(b"ABCDE");
        assert_eq!(FixedStr::<5>::get(&mut r).unwrap().as_str(), "ABCD");
        // Bytes after the NUL are ignored.
        let mut r = Reader::new(b"AB\0XY");
        assert_eq!(FixedStr::<5>::get(&mut r).unwrap().as_str(), "AB");
    }

    #[test]
    fn variable_string_length_counts_the_nul() {
        let bytes = roundtrip(VarStr::<50>::new("hi"));
        assert_eq!(bytes, [3, 0, b'h', b'i', 0]);
        assert_eq!(roundtrip(VarStr::<50>::new("")), [1, 0, 0]);
        let mut r = Reader::new(&[0, 0]);
        assert_eq!(VarStr::<50>::get(&mut r), Err(FieldError::BadVarLength));
        let mut long = vec![5u8, 0];
        long.extend_from_slice(b"abcd\0");
        let mut r = Reader::new(&long);
        assert_eq!(
            VarStr::<3>::get(&mut r),
            Err(FieldError::StringTooLong { len: 4, max: 3 })
        );
    }

    #[test]
    fn decimal_converts_exactly_to_core_types() {
        let bytes = roundtrip(Decimal(1_234_000_000));
        assert_eq!(bytes, 1_234_000_000i64.to_le_bytes());
        assert_eq!(
            Decimal(1_234_000_000).to_price(),
            Ok(twinsite_core::Price(12_340))
        );
        assert!(Decimal(1).to_price().is_err());
        assert_eq!(Decimal::from_qty(twinsite_core::Qty(400)).0, 40_000_000_000);
    }

    #[test]
    fn bitmap_bit_zero_is_the_most_significant_bit() {
        let mut map = [0u8; 2];
        set_bit(&mut map, 0);
        set_bit(&mut map, 9);
        assert_eq!(map, [0x80, 0x40]);
        assert!(bit_is_set(&map, 9));
        assert!(!bit_is_set(&map, 8));
        assert!(!bit_is_set(&map, 300));
    }
}
