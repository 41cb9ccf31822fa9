//! CPU time of the FIX crate's work on one order's round trip, without sockets: what
//! `twinsite bench fix` spends in this crate per order, measured apart from the kernel's TCP
//! and scheduling (which dominate the round trip) and from a loaded machine's noise.
//!
//! An acceptor (the exchange) and an initiator (a participant) are logged on in memory. Each
//! order then goes through the three steps of the benchmark's round trip that are FIX work:
//!
//! 1. `exchange_in`: the exchange's session takes the NewOrderSingle frame (frame split,
//!    BodyLength/CheckSum, header and sequence checks, dictionary validation) and the gateway's
//!    parser reads it (`ParticipantMessage::parse`);
//! 2. `exchange_out`: the ExecutionReport (New) is written (`ExecutionReport::write_body`) and
//!    sent (`Session::send_body`: numbered, stored for resend, framed);
//! 3. `participant_in`: the participant's session takes the ExecutionReport frame.
//!
//! The NewOrderSingle frames are the benchmark's (written by the initiator before timing). Each
//! step is timed over batches of orders; the figure is the fastest batch's mean (the least
//! disturbed by other processes), in nanoseconds per order.
//!
//! Usage: `cargo run --release -p twinsite-fix --example order_path_cpu -- [orders] [batches]`
//! (defaults 2,000 orders per batch, 50 batches).

use std::time::Instant;

use twinsite_core::{BrokerId, ClOrdId, OrderId, Price, Qty, SecurityCode, Timestamp};
use twinsite_fix::app::{
    ExecType, ExecutionReport, LotType, NewOrderSingle, OrdStatus, OrdType, OrderSide, OrderTerms,
    ParticipantMessage, TimeInForce,
};
use twinsite_fix::codec::BodyWriter;
use twinsite_fix::password::{LogonCredentials, LogonDecision};
use twinsite_fix::session::Action;
use twinsite_fix::{Field, Session, SessionConfig, SessionState};

const EXCHANGE: &str = "HKEX";
const BROKER: &str = "FB0000";

/// Bytes each session wants written, in order.
fn sent(s: &mut Session) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    while let Some(a) = s.poll_action() {
        match a {
            Action::Send(b) => out.push(b),
            Action::Disconnect { reason } => panic!("disconnected: {reason}"),
            Action::Established | Action::Deliver(_) => {}
        }
    }
    out
}

fn main() {
    let mut args = std::env::args().skip(1);
    let orders: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(2_000);
    let batches: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(50);
    let now = Timestamp::from_secs(1_764_300_000);
    let accept =
        Box::new(|_: &LogonCredentials, _: Timestamp| LogonDecision::Accept { new_password: None });
    let mut exchange = Session::acceptor(
        SessionConfig::acceptor(EXCHANGE, BROKER),
        SessionState::new(EXCHANGE, BROKER),
        accept,
        now,
    );
    let mut broker = Session::initiator(
        SessionConfig::initiator(BROKER, EXCHANGE),
        SessionState::new(BROKER, EXCHANGE),
        Box::new(|_| vec![Field::new(554, "secret")]),
        now,
    );
    for b in sent(&mut broker) {
        exchange.handle_bytes(now, &b);
    }
    for b in sent(&mut exchange) {
        broker.handle_bytes(now, &b);
    }
    assert!(exchange.is_established() && broker.is_established());
    let _ = sent(&mut broker);

    let (mut t_in, mut t_out, mut t_part) = (u64::MAX, u64::MAX, u64::MAX);
    let mut n = 0u64;
    let mut delivered = 0usize;
    for _ in 0..batches {
        // The participant's orders, as the benchmark writes them (not timed).
        let frames: Vec<Vec<u8>> = (0..orders)
            .map(|_| {
                n += 1;
                let (side, px) = if n.is_multiple_of(2) {
                    (OrderSide::Buy, Price(65_200))
                } else {
                    (OrderSide::Sell, Price(65_400))
                };
                let order = NewOrderSingle {
                    cl_ord_id: ClOrdId::new(&format!("O{n}")).expect("valid ClOrdID"),
                    terms: OrderTerms::limit(SecurityCode(5), side, px, Qty(400), now),
                };
                let mut body = BodyWriter::with_capacity(160);
                order.write_body(&mut body);
                broker.send_body(now, "D", body.into_bytes()).expect("sent");
                let mut frame = sent(&mut broker);
                assert_eq!(frame.len(), 1);
                frame.remove(0)
            })
            .collect();

        // 1. The exchange reads the orders.
        let t0 = Instant::now();
        let mut parsed = Vec::with_capacity(orders);
        for f in &frames {
            exchange.handle_bytes(now, f);
            while let Some(a) = exchange.poll_action() {
                if let Action::Deliver(m) = a {
                    parsed.push(ParticipantMessage::parse(&m.message).expect("a valid order"));
                }
            }
        }
        t_in = t_in.min(t0.elapsed().as_nanos() as u64);
        assert_eq!(parsed.len(), orders);

        // 2. The exchange answers each with an ExecutionReport (New).
        let t0 = Instant::now();
        let mut reports = Vec::with_capacity(orders);
        for (i, p) in parsed.iter().enumerate() {
            let ParticipantMessage::NewOrderSingle(o) = p else {
                unreachable!("only orders were sent")
            };
            let id = n - orders as u64 + i as u64;
            let mut er = ExecutionReport::new(
                OrderId(id),
                &id.to_string(),
                ExecType::New,
                OrdStatus::New,
                o.terms.security,
                o.terms.side,
                Qty(0),
                o.terms.qty,
            );
            er.cl_ord_id = Some(o.cl_ord_id);
            er.parties.submitting_broker = Some(BrokerId(2001));
            er.ord_type = Some(OrdType::Limit);
            er.price = o.terms.price;
            er.qty = Some(o.terms.qty);
            er.time_in_force = Some(TimeInForce::Day);
            er.transact_time = Some(now);
            er.lot_type = Some(LotType::BoardLot);
            let mut body = BodyWriter::with_capacity(256);
            er.write_body(&mut body);
            exchange
                .send_body(now, "8", body.into_bytes())
                .expect("sent");
            while let Some(a) = exchange.poll_action() {
                if let Action::Send(b) = a {
                    reports.push(b);
                }
            }
        }
        t_out = t_out.min(t0.elapsed().as_nanos() as u64);
        assert_eq!(reports.len(), orders);

        // 3. The participant reads the reports.
        let t0 = Instant::now();
        for r in &reports {
            broker.handle_bytes(now, r);
            while let Some(a) = broker.poll_action() {
                if let Action::Deliver(m) = a {
                    delivered += usize::from(m.message.msg_type == "8");
                }
            }
        }
        t_part = t_part.min(t0.elapsed().as_nanos() as u64);
    }
    assert_eq!(delivered, orders * batches);
    let per = |t: u64| t as f64 / orders as f64;
    println!(
        "{{\"orders_per_batch\": {orders}, \"batches\": {batches}, \"ns_per_order\": {{\"exchange_in\": {:.0}, \"exchange_out\": {:.0}, \"participant_in\": {:.0}, \"total\": {:.0}}}}}",
        per(t_in),
        per(t_out),
        per(t_part),
        per(t_in) + per(t_out) + per(t_part)
    );
}
