//! Refresh service (§3.3), server side: for one real-time channel, a refresh channel that
//! cycles snapshots of the market state, each ending with Refresh Complete (203) carrying the
//! real-time sequence number the snapshot is synchronised with. Refresh channels have their
//! own sequence numbers (and Sequence Reset) and are not covered by retransmission.

use crate::image::MarketImage;
use crate::message::{Message, RefreshComplete};
use crate::products::ProductBuilder;
use crate::publisher::{ChannelPublisher, Datagram, PublisherConfig};
use twinsite_core::Timestamp;

/// Refresh configuration. `cycle_interval_ns`: time from the end of one snapshot to the start
/// of the next (the exchange cycles continuously; default 1 s, our choice).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefreshConfig {
    pub publisher: PublisherConfig,
    pub cycle_interval_ns: u64,
}

impl RefreshConfig {
    pub fn new(refresh_channel_id: u16) -> RefreshConfig {
        RefreshConfig {
            publisher: PublisherConfig::new(refresh_channel_id),
            cycle_interval_ns: twinsite_core::time::NANOS_PER_SEC,
        }
    }
}

/// The refresh service of one real-time channel.
#[derive(Debug, Clone)]
pub struct RefreshService {
    image: MarketImage,
    realtime_last_seq: u32,
    publisher: ChannelPublisher,
    cycle_interval_ns: u64,
    next_cycle: Timestamp,
    inconsistent_messages: u64,
    /// The board-lot orders of snapshots come from the real-time channel's builder, not from
    /// the image (see [`RefreshService::with_orders_from_builder`]).
    orders_from_builder: bool,
}

impl RefreshService {
    pub fn new(config: RefreshConfig, now: Timestamp) -> RefreshService {
        RefreshService {
            image: MarketImage::default(),
            realtime_last_seq: 0,
            publisher: ChannelPublisher::new(config.publisher, now),
            cycle_interval_ns: config.cycle_interval_ns,
            next_cycle: now.plus_nanos(config.cycle_interval_ns),
            inconsistent_messages: 0,
            orders_from_builder: false,
        }
    }

    /// Take the board-lot order book of snapshots (Add Order 30, in time priority) from the
    /// real-time channel's [`ProductBuilder`], which already holds every resting order: the
    /// image then skips Add / Modify / Delete Order (30/31/32), so the publishing path keeps
    /// one table of resting orders instead of two. Snapshots are then published only by
    /// [`RefreshService::publish_snapshot_from`] / [`RefreshService::handle_timeout_from`]
    /// with the builder whose output this service sees; they are the same messages as
    /// without this mode.
    pub fn with_orders_from_builder(mut self) -> RefreshService {
        self.orders_from_builder = true;
        self
    }

    /// Every message published on the real-time channel, in order, with its sequence number.
    pub fn on_realtime(&mut self, seq_num: u32, msg: &Message) {
        match msg {
            Message::SequenceReset(_) => return self.realtime_sequence_reset(),
            // Snapshots carry no trade history (trades, trade cancels, tickers): the image
            // does not keep it (it would only grow all day).
            Message::Trade(_) | Message::TradeCancel(_) | Message::TradeTicker(_) => {
                self.realtime_last_seq = seq_num;
                return;
            }
            // The builder keeps the board-lot order book.
            Message::AddOrder(_) | Message::ModifyOrder(_) | Message::DeleteOrder(_)
                if self.orders_from_builder =>
            {
                self.realtime_last_seq = seq_num;
                return;
            }
            _ => {}
        }
        // The real-time stream is the publisher's own output: it cannot be inconsistent with
        // the image built from it, and a failure here would only affect the snapshot.
        let applied = self.image.apply(msg);
        debug_assert!(
            applied.is_ok(),
            "Invariant: the published stream is consistent"
        );
        self.realtime_last_seq = seq_num;
    }

    /// The real-time channel restarted its numbering (start of day, or the DR site taking
    /// over). The market image is kept: the market state is continuous, only the numbering
    /// restarts. A new business day starts with a new `RefreshService`.
    pub fn realtime_sequence_reset(&mut self) {
        self.realtime_last_seq = 0;
    }

    /// Real-time messages the image could not apply (should stay 0).
    pub fn inconsistent_messages(&self) -> u64 {
        self.inconsistent_messages
    }

    /// The image snapshots are taken from (without the board-lot orders of a service
    /// [`RefreshService::with_orders_from_builder`]).
    pub fn image(&self) -> &MarketImage {
        &self.image
    }

    /// Sequence Reset on the refresh channel (start of day, refresh component failover).
    pub fn sequence_reset(&mut self, now: Timestamp) {
        self.publisher.sequence_reset(now);
    }

    /// Publish one whole snapshot now, ending with Refresh Complete (orders from the image:
    /// not for a service [`RefreshService::with_orders_from_builder`]).
    pub fn publish_snapshot(&mut self, now: Timestamp) {
        debug_assert!(
            !self.orders_from_builder,
            "Invariant: a service taking orders from the builder publishes with it"
        );
        self.publish(None, now);
    }

    /// Publish one whole snapshot now, ending with Refresh Complete; the board-lot orders
    /// from `builder` if the service takes them from there.
    pub fn publish_snapshot_from(&mut self, now: Timestamp, builder: &ProductBuilder) {
        let orders = if self.orders_from_builder {
            // A product without Add Order has no order book in its snapshots either.
            Some(builder.snapshot_orders().unwrap_or_default())
        } else {
            None
        };
        self.publish(orders, now);
    }

    fn publish(&mut self, board_lot_orders: Option<Vec<Message>>, now: Timestamp) {
        for msg in self.image.snapshot_messages_with(board_lot_orders) {
            // A message too large for a packet cannot be in the real-time stream either.
            let _ = self.publisher.publish(&msg, now);
        }
        let complete = Message::from(RefreshComplete {
            last_seq_num: self.realtime_last_seq,
        });
        let _ = self.publisher.publish(&complete, now);
        self.publisher.flush_all(now);
        self.next_cycle = now.plus_nanos(self.cycle_interval_ns);
    }

    pub fn handle_timeout(&mut self, now: Timestamp) {
        if now >= self.next_cycle {
            self.publish_snapshot(now);
        }
        self.publisher.handle_timeout(now);
    }

    /// [`RefreshService::handle_timeout`] with the real-time channel's builder (snapshots
    /// take their orders from it if the service was made
    /// [`RefreshService::with_orders_from_builder`]).
    pub fn handle_timeout_from(&mut self, now: Timestamp, builder: &ProductBuilder) {
        if now >= self.next_cycle {
            self.publish_snapshot_from(now, builder);
        }
        self.publisher.handle_timeout(now);
    }

    pub fn poll_timeout(&self) -> Option<Timestamp> {
        Some(
            self.publisher
                .poll_timeout()
                .map_or(self.next_cycle, |t| t.min(self.next_cycle)),
        )
    }

    pub fn poll_transmit(&mut self) -> Option<Datagram> {
        self.publisher.poll_transmit()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::{AddOrder, Trade};
    use crate::packet::Packet;

    #[test]
    fn a_snapshot_ends_with_refresh_complete_and_carries_no_trades() {
        let t = Timestamp::from_secs(1_000);
        let mut service = RefreshService::new(RefreshConfig::new(121), t);
        service.sequence_reset(t);
        service.on_realtime(1, &AddOrder::default().into());
        service.on_realtime(2, &Trade::default().into());
        service.publish_snapshot(t);
        let mut line_a = Vec::new();
        while let Some(d) = service.poll_transmit() {
            if d.line == crate::publisher::Line::A {
                let packet = Packet::parse(&d.bytes).unwrap();
                for (seq, raw) in packet.messages() {
                    line_a.push((seq, Message::decode(raw).unwrap()));
                }
            }
        }
        let types: Vec<u16> = line_a.iter().map(|(_, m)| m.msg_type()).collect();
        assert_eq!(
            types,
            vec![100, 30, 203],
            "reset, the order, Refresh Complete; no trade"
        );
        assert_eq!(
            line_a.last().unwrap().1,
            Message::RefreshComplete(RefreshComplete { last_seq_num: 2 })
        );
        assert_eq!(line_a[1].0, 1, "refresh channels have their own numbering");
    }

    /// Every datagram of a snapshot of `service`, with `builder` as its order source.
    fn snapshot_datagrams(
        service: &mut RefreshService,
        builder: &ProductBuilder,
        t: Timestamp,
    ) -> Vec<Datagram> {
        service.publish_snapshot_from(t, builder);
        std::iter::from_fn(|| service.poll_transmit()).collect()
    }

    #[test]
    fn snapshots_with_orders_from_the_builder_are_the_image_snapshots() {
        use crate::products::{MarketEvent, Product};
        use rand::{Rng, SeedableRng};
        use twinsite_core::{BrokerId, OrderId, Price, Qty, SecurityCode, Side};
        for product in [
            Product::SecuritiesFullTick,
            Product::Combined,
            Product::SecuritiesStandard,
        ] {
            let seed = 7;
            let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
            let t = Timestamp::from_secs(1_000);
            let mut builder = ProductBuilder::new(product);
            let mut own = RefreshService::new(RefreshConfig::new(121), t);
            let mut shared =
                RefreshService::new(RefreshConfig::new(121), t).with_orders_from_builder();
            own.sequence_reset(t);
            shared.sequence_reset(t);
            let mut live: Vec<(u32, u64)> = Vec::new();
            let mut seq = 0u32;
            let mut snapshots = 0;
            for i in 0..3_000u64 {
                let security = SecurityCode(rng.gen_range(1..=4) * 100);
                let event = match rng.gen_range(0..10) {
                    0..=4 => {
                        live.push((security.0, i));
                        MarketEvent::OrderAdded {
                            security,
                            order_id: OrderId(i),
                            side: if rng.gen() { Side::Buy } else { Side::Sell },
                            price: Price(10_000 + 10 * rng.gen_range(0..20)),
                            qty: Qty(100 * rng.gen_range(1..5)),
                            broker: BrokerId(rng.gen_range(1..9)),
                            odd_lot: rng.gen_range(0..10) == 0,
                        }
                    }
                    5..=6 if !live.is_empty() => {
                        let (s, id) = live[rng.gen_range(0..live.len())];
                        MarketEvent::OrderModified {
                            security: SecurityCode(s),
                            order_id: OrderId(id),
                            qty: Qty(100),
                        }
                    }
                    7..=8 if !live.is_empty() => {
                        let (s, id) = live.swap_remove(rng.gen_range(0..live.len()));
                        MarketEvent::OrderDeleted {
                            security: SecurityCode(s),
                            order_id: OrderId(id),
                        }
                    }
                    _ => MarketEvent::Trade {
                        security,
                        exec_id: i,
                        price: Price(10_000),
                        qty: Qty(100),
                        trd_type: 0,
                        time: t,
                    },
                };
                let mut msgs = Vec::new();
                // Odd lots and unknown orders (an odd lot modified) are refused: nothing built.
                let _ = builder.on_event(&event, &mut msgs);
                if i % 16 == 15 {
                    builder.end_batch(&mut msgs);
                }
                for m in &msgs {
                    seq += 1;
                    own.on_realtime(seq, m);
                    shared.on_realtime(seq, m);
                }
                if i % 500 == 499 {
                    let now = t.plus_nanos(i);
                    own.publish_snapshot(now);
                    let a: Vec<Datagram> = std::iter::from_fn(|| own.poll_transmit()).collect();
                    let b = snapshot_datagrams(&mut shared, &builder, now);
                    assert!(a.len() > 1, "{product:?}: a snapshot of several packets");
                    assert_eq!(a, b, "{product:?} (seed {seed}): snapshot {i}");
                    snapshots += 1;
                }
            }
            assert_eq!(snapshots, 6);
            if product == Product::SecuritiesStandard {
                assert_eq!(own.image().order_count(), 0, "no order book in Standard");
            } else {
                assert!(own.image().order_count() > 100);
                assert_eq!(shared.image().order_count(), 0, "one table of orders");
            }
        }
    }
}
