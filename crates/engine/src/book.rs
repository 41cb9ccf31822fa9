//! The order store and per-side price levels.
//!
//! Orders live in one slab; each price level is an intrusive FIFO (doubly linked through the
//! slab) so cancel is O(1) after the level lookup. Levels sit in a sorted vector ([`Levels`]), so
//! iteration order is deterministic. Order ids are dense per day, so the id -> slot index is a
//! plain vector.

use crate::types::{OrderType, Owner};
use twinsite_core::{ClOrdId, OrderId, Price, Qty, Side};

pub const NIL: u32 = u32::MAX;

#[derive(Debug, Clone)]
pub struct Order {
    pub id: OrderId,
    pub owner: Owner,
    pub cl_ord_id: ClOrdId,
    pub sec: u32,
    pub side: Side,
    pub order_type: OrderType,
    pub price: Option<Price>,
    pub qty: Qty,
    pub cum: Qty,
    pub short_sell: bool,
    pub prev: u32,
    pub next: u32,
}

impl Order {
    pub fn leaves(&self) -> u64 {
        self.qty.0 - self.cum.0
    }
}

/// One FIFO queue of orders at a price (or the at-auction queue).
#[derive(Debug, Clone, Copy)]
pub struct Level {
    pub qty: u64,
    pub count: u32,
    pub head: u32,
    pub tail: u32,
}

impl Default for Level {
    fn default() -> Self {
        Level {
            qty: 0,
            count: 0,
            head: NIL,
            tail: NIL,
        }
    }
}

/// The price levels of one side, kept in a vector sorted so that the best price is last (bids
/// ascending, asks descending): the levels that change most (at and near the best) are at the
/// end, where inserting or removing one moves little. The interface follows `BTreeMap`
/// (iteration in ascending price order whatever the side), so the rest of the engine reads the
/// same as with an ordered map; every order is deterministic.
#[derive(Debug, Clone)]
pub struct Levels {
    /// Asks: stored in descending price order.
    desc: bool,
    v: Vec<(Price, Level)>,
}

impl Levels {
    pub fn new(side: Side) -> Levels {
        Levels {
            desc: side == Side::Sell,
            v: Vec::new(),
        }
    }
    /// Position of `p` in storage: Ok(found) or Err(insertion point).
    #[inline]
    fn search(&self, p: Price) -> Result<usize, usize> {
        // Most lookups are at or near the best, the end of the vector: scan a few levels from
        // there, then binary search the rest.
        let n = self.v.len();
        let mut i = n;
        let stop = n.saturating_sub(8);
        while i > stop {
            let q = self.v[i - 1].0;
            if q == p {
                return Ok(i - 1);
            }
            let better = if self.desc { q < p } else { q > p };
            if !better {
                return Err(i);
            }
            i -= 1;
        }
        // Every level from i on is better than p.
        if self.desc {
            self.v[..i].binary_search_by(|(q, _)| p.cmp(q))
        } else {
            self.v[..i].binary_search_by(|(q, _)| q.cmp(&p))
        }
    }
    pub fn len(&self) -> usize {
        self.v.len()
    }
    pub fn is_empty(&self) -> bool {
        self.v.is_empty()
    }
    /// The best price (highest bid, lowest ask).
    #[inline]
    pub fn best(&self) -> Option<Price> {
        self.v.last().map(|(p, _)| *p)
    }
    /// The level at the best price.
    #[inline]
    pub fn best_mut(&mut self) -> Option<&mut Level> {
        self.v.last_mut().map(|(_, l)| l)
    }
    /// Remove the level at the best price.
    pub fn pop_best(&mut self) -> Option<(Price, Level)> {
        self.v.pop()
    }
    /// Levels from the best price outwards.
    pub fn best_first(&self) -> impl Iterator<Item = (&Price, &Level)> {
        self.v.iter().rev().map(|(p, l)| (p, l))
    }
    pub fn get(&self, p: &Price) -> Option<&Level> {
        self.search(*p).ok().map(|i| &self.v[i].1)
    }
    pub fn get_mut(&mut self, p: &Price) -> Option<&mut Level> {
        self.search(*p).ok().map(|i| &mut self.v[i].1)
    }
    pub fn contains_key(&self, p: &Price) -> bool {
        self.search(*p).is_ok()
    }
    pub fn remove(&mut self, p: &Price) -> Option<Level> {
        self.search(*p).ok().map(|i| self.v.remove(i).1)
    }
    pub fn insert(&mut self, p: Price, l: Level) -> Option<Level> {
        match self.search(p) {
            Ok(i) => Some(std::mem::replace(&mut self.v[i].1, l)),
            Err(i) => {
                self.v.insert(i, (p, l));
                None
            }
        }
    }
    /// The level at `p`, created empty if missing.
    pub fn entry(&mut self, p: Price) -> &mut Level {
        let i = match self.search(p) {
            Ok(i) => i,
            Err(i) => {
                self.v.insert(i, (p, Level::default()));
                i
            }
        };
        &mut self.v[i].1
    }
    /// Levels in ascending price order.
    pub fn iter(&self) -> Iter<'_> {
        Iter {
            s: &self.v,
            front: 0,
            back: self.v.len(),
            desc: self.desc,
        }
    }
    /// Prices in ascending order.
    pub fn keys(&self) -> impl DoubleEndedIterator<Item = &Price> {
        self.iter().map(|(p, _)| p)
    }
    /// Levels in ascending price order.
    pub fn values(&self) -> impl DoubleEndedIterator<Item = &Level> {
        self.iter().map(|(_, l)| l)
    }
    /// Levels whose price is in `r`, in ascending price order.
    pub fn range<R: std::ops::RangeBounds<Price>>(
        &self,
        r: R,
    ) -> impl DoubleEndedIterator<Item = (&Price, &Level)> {
        self.iter().filter(move |(p, _)| r.contains(p))
    }
}

/// Ascending iteration over [`Levels`].
pub struct Iter<'a> {
    s: &'a [(Price, Level)],
    front: usize,
    back: usize,
    desc: bool,
}

impl<'a> Iterator for Iter<'a> {
    type Item = (&'a Price, &'a Level);
    fn next(&mut self) -> Option<Self::Item> {
        if self.front == self.back {
            return None;
        }
        let i = if self.desc {
            self.back -= 1;
            self.back
        } else {
            self.front += 1;
            self.front - 1
        };
        let (p, l) = &self.s[i];
        Some((p, l))
    }
    fn size_hint(&self) -> (usize, Option<usize>) {
        let n = self.back - self.front;
        (n, Some(n))
    }
}

impl DoubleEndedIterator for Iter<'_> {
    fn next_back(&mut self) -> Option<Self::Item> {
        if self.front == self.back {
            return None;
        }
        let i = if self.desc {
            self.front += 1;
            self.front - 1
        } else {
            self.back -= 1;
            self.back
        };
        let (p, l) = &self.s[i];
        Some((p, l))
    }
}

impl ExactSizeIterator for Iter<'_> {}

impl<'a> IntoIterator for &'a Levels {
    type Item = (&'a Price, &'a Level);
    type IntoIter = Iter<'a>;
    fn into_iter(self) -> Iter<'a> {
        self.iter()
    }
}

impl std::ops::Index<&Price> for Levels {
    type Output = Level;
    fn index(&self, p: &Price) -> &Level {
        self.get(p).expect("no level at this price")
    }
}

/// One side of one security's book.
#[derive(Debug, Clone)]
pub struct SideBook {
    pub levels: Levels,
    /// At-auction orders (no price), FIFO; only non-empty during auction sessions.
    pub auction: Level,
}

impl SideBook {
    pub fn new(side: Side) -> SideBook {
        SideBook {
            levels: Levels::new(side),
            auction: Level::default(),
        }
    }
    /// The best price: highest bid or lowest ask.
    #[inline]
    pub fn best(&self, _side: Side) -> Option<Price> {
        self.levels.best()
    }
    /// Price levels from best to worst.
    pub fn prices_best_first(&self, _side: Side) -> Vec<Price> {
        self.levels.best_first().map(|(p, _)| *p).collect()
    }
    pub fn is_empty(&self) -> bool {
        self.levels.is_empty() && self.auction.count == 0
    }
}

fn mum(a: u64, b: u64) -> u64 {
    let r = a as u128 * b as u128;
    (r as u64) ^ ((r >> 64) as u64)
}

/// The hash of the fields an order keeps while it lives (the client order id aside, which an
/// in-place amend changes): id, client order id, session, broker, security, side, short-sell
/// flag and price (a price change makes a new order). [`Orders`] computes it once per insert.
/// Fixed-width integers only: the same on every node, build and platform.
fn identity_hash(o: &Order) -> u64 {
    /// Up to 23 bytes as three little-endian words, zero-padded, the length in the top byte.
    fn words(b: &[u8]) -> [u64; 3] {
        let mut w = [0u64; 3];
        for (i, &x) in b.iter().enumerate().take(23) {
            w[i / 8] |= (x as u64) << (8 * (i % 8));
        }
        w[2] |= (b.len() as u64) << 56;
        w
    }
    let [c0, c1, c2] = words(o.cl_ord_id.0.as_bytes());
    let [s0, s1, s2] = words(o.owner.session.0.as_bytes());
    let packed = (o.owner.broker.0 as u64)
        | (o.sec as u64) << 32
        | (o.side as u64) << 56
        | (o.short_sell as u64) << 62
        | (o.price.is_some() as u64) << 63;
    let price = o.price.map_or(0, |p| p.0 as u64);
    let mut h = mum(
        o.id.0 ^ 0xa076_1d64_78bd_642f,
        packed ^ 0xe703_7ed1_a0b4_28db,
    );
    h ^= mum(c0 ^ 0x8ebc_6af0_9c88_c6e3, c1 ^ 0x5899_65cc_7537_4cc3);
    h ^= mum(c2 ^ 0x1d8e_4e27_c47d_124f, s0 ^ 0xa076_1d64_78bd_642f);
    h ^= mum(
        s1 ^ s2.rotate_left(7) ^ 0xe703_7ed1_a0b4_28db,
        price ^ 0x8ebc_6af0_9c88_c6e3,
    );
    h
}

/// An order's contribution to [`Orders::digest`] given its [`identity_hash`]: one multiply
/// over the identity and the fields a fill or an amend changes (quantity, cumulative quantity,
/// order type).
fn contribution(identity: u64, o: &Order) -> u64 {
    mum(
        identity ^ o.qty.0.wrapping_mul(0x9e37_79b9_7f4a_7c15),
        o.cum.0 ^ ((o.order_type as u64) << 58) ^ 0x5899_65cc_7537_4cc3,
    )
}

/// One live order's contribution to [`Orders::digest`]: a stable hash of every field the state
/// hash covers (not the FIFO links: within a level, priority order is order-id order, which
/// [`crate::Engine::check_invariants`] checks, so the set of orders determines the queues).
/// Computed from scratch (the test oracle's way; the slab keeps each order's identity part).
pub fn order_hash(o: &Order) -> u64 {
    contribution(identity_hash(o), o)
}

/// The slab of live orders, with an order-independent digest of them for the state hash.
#[derive(Debug, Clone, Default)]
pub struct Orders {
    slots: Vec<Order>,
    /// Each slot's [`identity_hash`], so a fill or a removal costs one multiply.
    identities: Vec<u64>,
    free: Vec<u32>,
    /// order id - 1 -> slot (NIL when gone).
    by_id: Vec<u32>,
    pub live: usize,
    /// Wrapping sum of [`order_hash`] over the live orders, kept up to date by every change
    /// (insert, remove, [`Orders::update`]): the state hash reads it in O(1) instead of walking
    /// every resting order.
    digest: u64,
}

impl Orders {
    /// Room for `orders` live orders and `ids` order ids without reallocating: a vector that
    /// doubles mid-day copies every order while one participant waits for its answer.
    pub fn with_capacity(orders: usize, ids: usize) -> Orders {
        Orders {
            slots: Vec::with_capacity(orders),
            identities: Vec::with_capacity(orders),
            free: Vec::with_capacity(orders),
            by_id: Vec::with_capacity(ids),
            live: 0,
            digest: 0,
        }
    }
    pub fn insert(&mut self, o: Order) -> u32 {
        let id = o.id.0 as usize;
        let identity = identity_hash(&o);
        self.digest = self.digest.wrapping_add(contribution(identity, &o));
        let idx = match self.free.pop() {
            Some(i) => {
                self.slots[i as usize] = o;
                self.identities[i as usize] = identity;
                i
            }
            None => {
                self.slots.push(o);
                self.identities.push(identity);
                (self.slots.len() - 1) as u32
            }
        };
        if self.by_id.len() < id {
            self.by_id.resize(id, NIL);
        }
        self.by_id[id - 1] = idx;
        self.live += 1;
        idx
    }
    pub fn remove(&mut self, idx: u32) {
        let o = &self.slots[idx as usize];
        let id = o.id.0 as usize;
        self.digest = self
            .digest
            .wrapping_sub(contribution(self.identities[idx as usize], o));
        self.by_id[id - 1] = NIL;
        self.free.push(idx);
        self.live -= 1;
    }
    pub fn find(&self, id: OrderId) -> Option<u32> {
        if id.0 == 0 {
            return None;
        }
        self.by_id
            .get(id.0 as usize - 1)
            .copied()
            .filter(|&i| i != NIL)
    }
    pub fn get(&self, idx: u32) -> &Order {
        &self.slots[idx as usize]
    }
    /// The order in slot `idx` (live or freed), if the slab has that slot.
    pub fn slot(&self, idx: u32) -> Option<&Order> {
        self.slots.get(idx as usize)
    }
    /// The FIFO links only: every other field is in the digest and changes through
    /// [`Orders::update`].
    fn get_mut(&mut self, idx: u32) -> &mut Order {
        &mut self.slots[idx as usize]
    }
    /// Change a live order's fields (fill, amend, order type), keeping the digest in step.
    pub fn update(&mut self, idx: u32, f: impl FnOnce(&mut Order)) {
        let o = &mut self.slots[idx as usize];
        let identity = &mut self.identities[idx as usize];
        let (before, cl_ord_id) = (contribution(*identity, o), o.cl_ord_id);
        f(o);
        if o.cl_ord_id != cl_ord_id {
            *identity = identity_hash(o);
        }
        debug_assert_eq!(
            *identity,
            identity_hash(o),
            "an order's identity changed in place"
        );
        self.digest = self
            .digest
            .wrapping_sub(before)
            .wrapping_add(contribution(*identity, o));
    }
    /// The wrapping sum of [`order_hash`] over the live orders.
    pub fn digest(&self) -> u64 {
        self.digest
    }
    /// Append to the tail of a level.
    pub fn push_back(&mut self, level: &mut Level, idx: u32) {
        let leaves = self.get(idx).leaves();
        {
            let o = self.get_mut(idx);
            o.prev = level.tail;
            o.next = NIL;
        }
        if level.tail != NIL {
            self.get_mut(level.tail).next = idx;
        } else {
            level.head = idx;
        }
        level.tail = idx;
        level.count += 1;
        level.qty += leaves;
    }

    /// Unlink from a level; `leaves` is the quantity the order contributed.
    pub fn unlink(&mut self, level: &mut Level, idx: u32, leaves: u64) {
        let (prev, next) = {
            let o = self.get(idx);
            (o.prev, o.next)
        };
        if prev != NIL {
            self.get_mut(prev).next = next;
        } else {
            level.head = next;
        }
        if next != NIL {
            self.get_mut(next).prev = prev;
        } else {
            level.tail = prev;
        }
        level.count -= 1;
        level.qty -= leaves;
    }

    /// Slots of a level in FIFO order.
    pub fn fifo(&self, level: &Level) -> Vec<u32> {
        let mut v = Vec::with_capacity(level.count as usize);
        let mut i = level.head;
        while i != NIL {
            v.push(i);
            i = self.get(i).next;
        }
        v
    }
}
