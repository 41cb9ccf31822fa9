//! Hashers. [`StableHasher`] (FNV-1a over bytes, a multiply fold per word) for state hashes:
//! the same input gives the same hash on every node, build and run; never seeded, never
//! platform-dependent. [`FxHasher`] for in-memory lookup tables only (never iterated into
//! output).

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

#[derive(Debug, Clone, Copy)]
pub struct StableHasher(u64);

impl Default for StableHasher {
    fn default() -> Self {
        StableHasher(0xcbf2_9ce4_8422_2325)
    }
}

impl StableHasher {
    pub fn bytes(&mut self, b: &[u8]) {
        for &x in b {
            self.0 ^= x as u64;
            self.0 = self.0.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
    /// One word at a time: a 64x64->128 multiply, folded (a state hash hashes a few hundred
    /// words after every journal entry on every node; eight FNV byte steps per word cost
    /// several times more).
    pub fn u64(&mut self, v: u64) {
        let r = (self.0 ^ v) as u128 * 0x9e37_79b9_7f4a_7c15_u128;
        self.0 = (r as u64) ^ ((r >> 64) as u64) ^ 0x2d35_8dcc_aa6c_78a5;
    }
    pub fn i64(&mut self, v: i64) {
        self.u64(v as u64);
    }
    pub fn finish(&self) -> u64 {
        self.0
    }
}

/// FxHash-style hasher: fast and deterministic. Only used for lookups, never iterated into output.
#[derive(Default, Clone, Copy)]
pub struct FxHasher(u64);
impl Hasher for FxHasher {
    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut b = [0u8; 8];
            b[..chunk.len()].copy_from_slice(chunk);
            self.0 = (self.0.rotate_left(5) ^ u64::from_le_bytes(b))
                .wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
        }
    }
    fn write_u64(&mut self, v: u64) {
        self.0 = (self.0.rotate_left(5) ^ v).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }
    fn write_u32(&mut self, v: u32) {
        self.write_u64(v as u64)
    }
    fn write_u8(&mut self, v: u8) {
        self.write_u64(v as u64)
    }
    fn write_usize(&mut self, v: usize) {
        self.write_u64(v as u64)
    }
    fn finish(&self) -> u64 {
        // The last step above is a multiply: its low bits depend only on the input's low bits,
        // and the table indexes by the low bits. The rotate brings the well-mixed high bits down.
        self.0.rotate_left(26)
    }
}
/// A hash map with [`FxHasher`].
pub type FxMap<K, V> = HashMap<K, V, BuildHasherDefault<FxHasher>>;
