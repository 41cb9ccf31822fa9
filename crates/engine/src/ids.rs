//! The day's client order id table: (broker, client order id) -> order id (0 for a request that
//! is not an order, such as a cancel).
//!
//! Every command probes it (duplicate detection) and most add to it, so it is on the hot path
//! and grows by one entry per command all day. OCG-C client order ids are numeric and a session
//! usually numbers them upwards, so the table keeps, per broker, the ids in canonical decimal
//! form (`1` to `999999999`, no leading zero) that arrived in increasing order in two parallel
//! sorted vectors: adding such an id is an append, a duplicate check of a new (higher) id is one
//! comparison with the last, and a lookup is a binary search that touches the recent end. Ids in
//! any other form, or numeric ids lower than the broker's highest so far, go to a hash map.
//! An id lives in exactly one of the two places. Nothing here is iterated into output except
//! through [`ClOrdIds::entries`], which sorts.

use crate::hash::FxMap;
use twinsite_core::{BrokerId, ClOrdId};

/// The numeric value of a client order id in canonical decimal form, if it is one.
fn numeric(c: &ClOrdId) -> Option<u32> {
    let b = c.0.as_bytes();
    if b.is_empty() || b.len() > 9 || b[0] == b'0' {
        return None;
    }
    let mut v: u32 = 0;
    for &d in b {
        if !d.is_ascii_digit() {
            return None;
        }
        v = v * 10 + (d - b'0') as u32;
    }
    Some(v)
}

/// One broker's increasing numeric ids and their values.
#[derive(Debug, Clone, Default)]
struct Run {
    nums: Vec<u32>,
    vals: Vec<u64>,
}

impl Run {
    /// Position of `n`. Ids of a session count upwards, so they are close to evenly spread:
    /// a few interpolation steps narrow the range (each probe is one likely cache miss in a long
    /// run, where a plain binary search takes a dozen), then a binary search finishes.
    fn find(&self, n: u32) -> Option<usize> {
        let nums = &self.nums;
        let (mut lo, mut hi) = (0usize, nums.len().checked_sub(1)?);
        for _ in 0..4 {
            let (a, b) = (nums[lo], nums[hi]);
            if n < a || n > b {
                return None;
            }
            if hi - lo < 16 {
                break;
            }
            let g = lo + ((n - a) as u64 * (hi - lo) as u64 / (b - a) as u64) as usize;
            let v = nums[g];
            if v == n {
                return Some(g);
            }
            // nums[lo] <= n < v means g > lo; v < n <= nums[hi] means g < hi.
            if v < n {
                lo = g + 1;
            } else {
                hi = g - 1;
            }
        }
        nums[lo..=hi].binary_search(&n).ok().map(|i| lo + i)
    }
}

/// The client order id table (see the module documentation).
#[derive(Debug, Clone, Default)]
pub struct ClOrdIds {
    index: FxMap<BrokerId, u32>,
    runs: Vec<Run>,
    other: FxMap<(BrokerId, ClOrdId), u64>,
    len: usize,
    /// Room each broker's run gets when it is created (ids, not bytes): a run that doubles
    /// mid-day copies every id while a participant waits for its answer.
    run_capacity: usize,
}

impl ClOrdIds {
    /// An empty table whose per-broker runs start with room for `run_capacity` ids.
    pub fn with_run_capacity(run_capacity: usize) -> ClOrdIds {
        ClOrdIds {
            run_capacity,
            ..ClOrdIds::default()
        }
    }

    /// The value recorded for (broker, id), if the id was used today.
    #[inline]
    pub fn get(&self, b: BrokerId, c: &ClOrdId) -> Option<u64> {
        if let Some(n) = numeric(c) {
            if let Some(&r) = self.index.get(&b) {
                let run = &self.runs[r as usize];
                if let Some(i) = run.find(n) {
                    return Some(run.vals[i]);
                }
            }
        }
        if self.other.is_empty() {
            return None;
        }
        self.other.get(&(b, *c)).copied()
    }

    /// Was (broker, id) used today?
    #[inline]
    pub fn contains(&self, b: BrokerId, c: &ClOrdId) -> bool {
        self.get(b, c).is_some()
    }

    /// Record (broker, id) -> `v`; returns the previous value if the id was already there (it is
    /// then overwritten).
    pub fn insert(&mut self, b: BrokerId, c: ClOrdId, v: u64) -> Option<u64> {
        if let Some(n) = numeric(&c) {
            let r = match self.index.get(&b) {
                Some(&r) => r as usize,
                None => {
                    self.runs.push(Run {
                        nums: Vec::with_capacity(self.run_capacity),
                        vals: Vec::with_capacity(self.run_capacity),
                    });
                    self.index.insert(b, (self.runs.len() - 1) as u32);
                    self.runs.len() - 1
                }
            };
            let run = &mut self.runs[r];
            if run.nums.last().is_none_or(|&last| n > last) {
                run.nums.push(n);
                run.vals.push(v);
                self.len += 1;
                return None;
            }
            if let Some(i) = run.find(n) {
                return Some(std::mem::replace(&mut run.vals[i], v));
            }
        }
        let old = self.other.insert((b, c), v);
        if old.is_none() {
            self.len += 1;
        }
        old
    }

    /// Number of ids recorded.
    pub fn len(&self) -> usize {
        self.len
    }
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Every entry, sorted by (broker, client order id).
    pub fn entries(&self) -> Vec<(BrokerId, ClOrdId, u64)> {
        let mut v: Vec<(BrokerId, ClOrdId, u64)> = Vec::with_capacity(self.len);
        for (&b, &r) in &self.index {
            let run = &self.runs[r as usize];
            for (&n, &val) in run.nums.iter().zip(&run.vals) {
                let c = ClOrdId::new(&n.to_string()).expect("a canonical numeric id is valid");
                v.push((b, c, val));
            }
        }
        v.extend(self.other.iter().map(|(k, &val)| (k.0, k.1, val)));
        v.sort();
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn id(s: &str) -> ClOrdId {
        ClOrdId::new(s).unwrap()
    }

    #[test]
    fn canonical_numbers_only() {
        assert_eq!(numeric(&id("1")), Some(1));
        assert_eq!(numeric(&id("999999999")), Some(999_999_999));
        assert_eq!(numeric(&id("1000000000")), None);
        assert_eq!(numeric(&id("007")), None);
        assert_eq!(numeric(&id("0")), None);
        assert_eq!(numeric(&id("12a")), None);
    }

    #[test]
    fn behaves_like_a_map_whatever_the_order_and_form() {
        // Increasing, decreasing, repeated, leading zeros and text, for a few brokers, against
        // a BTreeMap.
        let mut t = ClOrdIds::default();
        let mut m: BTreeMap<(BrokerId, ClOrdId), u64> = BTreeMap::new();
        let mut x: u64 = 0x1234_5678;
        for step in 0..20_000u64 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let b = BrokerId((x % 4) as u32 + 1);
            let text = match x % 10 {
                0 => format!("0{}", x % 500),
                1 => format!("A{}", x % 300),
                2..=4 => format!("{}", x % 2_000 + 1),
                _ => format!("{}", step + 1),
            };
            let c = id(&text);
            assert_eq!(t.get(b, &c), m.get(&(b, c)).copied(), "get {b} {text}");
            assert_eq!(
                t.insert(b, c, step),
                m.insert((b, c), step),
                "insert {b} {text}"
            );
            assert_eq!(t.len(), m.len());
        }
        let want: Vec<(BrokerId, ClOrdId, u64)> = m.iter().map(|(k, &v)| (k.0, k.1, v)).collect();
        assert_eq!(t.entries(), want);
    }
}
