//! The order store and per-side price levels.
//!
//! Orders live in one slab; each price level is an intrusive FIFO (doubly linked through the
//! slab) so cancel is O(1) after the level lookup. Levels sit in a `BTreeMap` keyed by price, so
//! iteration order is deterministic. Order ids are dense per day, so the id -> slot index is a
//! plain vector.

use crate::types::{OrderType, Owner};
use std::collections::BTreeMap;
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

/// One side of one security's book.
#[derive(Debug, Clone, Default)]
pub struct SideBook {
    pub levels: BTreeMap<Price, Level>,
    /// At-auction orders (no price), FIFO; only non-empty during auction sessions.
    pub auction: Level,
}

impl SideBook {
    /// The best price: highest bid or lowest ask.
    pub fn best(&self, side: Side) -> Option<Price> {
        match side {
            Side::Buy => self.levels.keys().next_back().copied(),
            Side::Sell => self.levels.keys().next().copied(),
        }
    }
    /// Price levels from best to worst.
    pub fn prices_best_first(&self, side: Side) -> Vec<Price> {
        match side {
            Side::Buy => self.levels.keys().rev().copied().collect(),
            Side::Sell => self.levels.keys().copied().collect(),
        }
    }
    pub fn is_empty(&self) -> bool {
        self.levels.is_empty() && self.auction.count == 0
    }
}

/// The slab of live orders.
#[derive(Debug, Clone, Default)]
pub struct Orders {
    pub slots: Vec<Order>,
    free: Vec<u32>,
    /// order id - 1 -> slot (NIL when gone).
    by_id: Vec<u32>,
    pub live: usize,
}

impl Orders {
    pub fn insert(&mut self, o: Order) -> u32 {
        let id = o.id.0 as usize;
        let idx = match self.free.pop() {
            Some(i) => {
                self.slots[i as usize] = o;
                i
            }
            None => {
                self.slots.push(o);
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
        let id = self.slots[idx as usize].id.0 as usize;
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
    pub fn get_mut(&mut self, idx: u32) -> &mut Order {
        &mut self.slots[idx as usize]
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
