#![allow(dead_code)]
use twinsite_core::{
    BrokerId, ClOrdId, CompId, OrderId, Price, Qty, SecurityCode, Side, Timestamp,
};
use twinsite_engine::*;

pub struct T {
    pub e: Engine,
    pub t: u64,
    pub next_cl: u64,
}

pub fn owner(b: u32) -> Owner {
    Owner {
        broker: BrokerId(b),
        session: CompId::new(&format!("CO{b:05}")).unwrap(),
    }
}

pub fn p(s: &str) -> Price {
    Price::parse(s).unwrap()
}

impl T {
    pub fn new(phase: Phase) -> T {
        let mut e = Engine::new(EngineConfig::default(), refdata::sample());
        e.apply(&Command::SetPhase(phase), Timestamp(1_000));
        T {
            e,
            t: 1_000,
            next_cl: 1,
        }
    }
    pub fn with(cfg: EngineConfig) -> T {
        T {
            e: Engine::new(cfg, refdata::sample()),
            t: 0,
            next_cl: 1,
        }
    }
    pub fn run(&mut self, c: Command) -> Vec<Event> {
        self.t += 1_000;
        let ev = self.e.apply(&c, Timestamp(self.t));
        self.e.check_invariants().unwrap();
        ev
    }
    pub fn at(&mut self, ts: Timestamp, c: Command) -> Vec<Event> {
        self.t = ts.0;
        let ev = self.e.apply(&c, ts);
        self.e.check_invariants().unwrap();
        ev
    }
    pub fn cl(&mut self) -> ClOrdId {
        self.next_cl += 1;
        ClOrdId::new(&self.next_cl.to_string()).unwrap()
    }
    pub fn order(
        &mut self,
        b: u32,
        sec: u32,
        side: Side,
        ot: OrderType,
        price: Option<&str>,
        qty: u64,
    ) -> Vec<Event> {
        let cl = self.cl();
        self.run(Command::NewOrder(NewOrder {
            owner: owner(b),
            cl_ord_id: cl,
            security: SecurityCode(sec),
            side,
            order_type: ot,
            price: price.map(p),
            qty: Qty(qty),
            short_sell: false,
        }))
    }
    pub fn limit(&mut self, b: u32, sec: u32, side: Side, price: &str, qty: u64) -> Vec<Event> {
        self.order(b, sec, side, OrderType::Limit, Some(price), qty)
    }
    pub fn cancel_id(&mut self, b: u32, sec: u32, side: Side, id: OrderId) -> Vec<Event> {
        let cl = self.cl();
        self.run(Command::Cancel(Cancel {
            owner: owner(b),
            cl_ord_id: cl,
            orig_cl_ord_id: None,
            security: SecurityCode(sec),
            side,
            order_id: Some(id),
            owning_broker: None,
        }))
    }
}

pub fn accepted_id(ev: &[Event]) -> OrderId {
    ev.iter()
        .find_map(|e| match e {
            Event::Accepted(o) => Some(o.order_id),
            _ => None,
        })
        .unwrap_or_else(|| panic!("not accepted: {ev:?}"))
}

pub fn reject_code(ev: &[Event]) -> Option<RejectCode> {
    ev.iter().find_map(|e| match e {
        Event::Rejected { code, .. } => Some(*code),
        _ => None,
    })
}

pub fn trades(ev: &[Event]) -> Vec<(Price, u64)> {
    ev.iter()
        .filter_map(|e| match e {
            Event::Trade { price, qty, .. } => Some((*price, qty.0)),
            _ => None,
        })
        .collect()
}
