//! Refresh service (§3.3), server side: for one real-time channel, a refresh channel that
//! cycles snapshots of the market state, each ending with Refresh Complete (203) carrying the
//! real-time sequence number the snapshot is synchronised with. Refresh channels have their
//! own sequence numbers (and Sequence Reset) and are not covered by retransmission.

use crate::image::MarketImage;
use crate::message::{Message, RefreshComplete};
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
        }
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

    /// The image snapshots are taken from.
    pub fn image(&self) -> &MarketImage {
        &self.image
    }

    /// Sequence Reset on the refresh channel (start of day, refresh component failover).
    pub fn sequence_reset(&mut self, now: Timestamp) {
        self.publisher.sequence_reset(now);
    }

    /// Publish one whole snapshot now, ending with Refresh Complete.
    pub fn publish_snapshot(&mut self, now: Timestamp) {
        for msg in self.image.snapshot_messages() {
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
}
