//! Scripted feed-handler scenarios, one per documented client duty (§3.6). Each test drives
//! a real publisher, refresh service and handler through a named situation and checks what
//! the handler reports and rebuilds.

use twinsite_core::time::NANOS_PER_MILLI;
use twinsite_core::Timestamp;
use twinsite_omd::handler::{FeedHandler, HandlerConfig, HandlerEvent, Problem};
use twinsite_omd::message::{Message, NominalPrice};
use twinsite_omd::packet::{PacketBuilder, PacketHeader};
use twinsite_omd::publisher::{ChannelPublisher, Datagram, Line, PublisherConfig};
use twinsite_omd::refresh::{RefreshConfig, RefreshService};
use twinsite_omd::rts::RtsClientConfig;

const CHANNEL: u16 = 7;
const MS: u64 = NANOS_PER_MILLI;

struct Bench {
    now: Timestamp,
    publisher: ChannelPublisher,
    refresh: RefreshService,
    handler: FeedHandler,
}

impl Bench {
    /// A handler synchronised by the start-of-day reset (no refresh needed after it).
    fn new() -> Bench {
        let now = Timestamp::from_secs(1_800_000_000);
        let mut config = HandlerConfig::new(CHANNEL);
        config.refresh_after_sequence_reset = false;
        let mut bench = Bench {
            now,
            publisher: ChannelPublisher::new(PublisherConfig::new(CHANNEL), now),
            refresh: RefreshService::new(RefreshConfig::new(CHANNEL + 100), now),
            handler: FeedHandler::new([config], RtsClientConfig::new("test")),
        };
        bench.publisher.sequence_reset(now);
        bench.refresh.sequence_reset(now);
        for d in bench.drain() {
            bench.deliver(&d);
        }
        bench
    }

    fn tick(&mut self, ms: u64) {
        self.now = self.now.plus_nanos(ms * MS);
    }

    fn publish(&mut self, count: u32) {
        for i in 0..count {
            let msg = Message::from(NominalPrice {
                security_code: 1 + i % 5,
                nominal_price: 1_000 + i as i32,
            });
            let published = self.publisher.publish(&msg, self.now).unwrap();
            self.refresh.on_realtime(published.seq_num, &msg);
        }
        self.publisher.flush_all(self.now);
    }

    fn drain(&mut self) -> Vec<Datagram> {
        std::iter::from_fn(|| self.publisher.poll_transmit()).collect()
    }

    fn deliver(&mut self, d: &Datagram) {
        self.handler
            .handle_realtime(CHANNEL, d.line, &d.bytes, self.now);
    }

    fn events(&mut self) -> Vec<HandlerEvent> {
        std::iter::from_fn(|| self.handler.poll_event()).collect()
    }

    fn expected(&self) -> u32 {
        self.handler.channel(CHANNEL).unwrap().expected_seq()
    }
}

#[test]
fn duplicate_and_reordered_packets_are_applied_once() {
    let mut b = Bench::new();
    b.publish(40);
    let mut datagrams = b.drain();
    // Line B first and reversed, then Line A, then everything again.
    datagrams.sort_by_key(|d| d.line == Line::A);
    let (b_line, a_line): (Vec<_>, Vec<_>) = datagrams.iter().partition(|d| d.line == Line::B);
    for d in b_line
        .iter()
        .rev()
        .chain(a_line.iter())
        .copied()
        .chain(datagrams.iter())
    {
        b.deliver(d);
    }
    assert_eq!(b.expected(), 41);
    let channel = b.handler.channel(CHANNEL).unwrap();
    assert!(channel.is_live());
    assert_eq!(channel.stats().applied_messages, 40);
    assert!(channel.stats().duplicate_messages >= 80);
    channel.image().compare(b.refresh.image(), true).unwrap();
}

#[test]
fn truncated_and_missized_packets_are_reported_and_the_other_line_fills_in() {
    let mut b = Bench::new();
    b.publish(20);
    for d in b.drain() {
        let mut bytes = d.bytes.clone();
        if d.line == Line::A {
            if bytes.len() % 2 == 0 {
                bytes.truncate(bytes.len() - 3);
            } else {
                bytes[16] = bytes[16].wrapping_add(4); // MsgSize disagrees with PktSize
            }
        }
        b.handler.handle_realtime(CHANNEL, d.line, &bytes, b.now);
    }
    assert_eq!(b.expected(), 21);
    let problems = b
        .events()
        .into_iter()
        .filter(|e| {
            matches!(
                e,
                HandlerEvent::Problem {
                    problem: Problem::MalformedPacket { line: Line::A, .. },
                    ..
                }
            )
        })
        .count();
    assert!(problems >= 1);
}

#[test]
fn unknown_message_type_is_reported_and_skipped_without_a_gap() {
    let mut b = Bench::new();
    let known = Message::from(NominalPrice {
        security_code: 1,
        nominal_price: 5,
    })
    .to_bytes();
    let unknown = [8u8, 0, 0xE7, 0x03, 1, 2, 3, 4]; // MsgType 999, 8 bytes
    let mut builder = PacketBuilder::standard();
    assert!(builder.push_raw(1, &known));
    assert!(builder.push_raw(2, &unknown));
    assert!(builder.push_raw(3, &known));
    let packet = builder.finish(b.now);
    b.handler.handle_realtime(CHANNEL, Line::A, &packet, b.now);
    assert_eq!(b.expected(), 4);
    assert!(b.events().iter().any(|e| matches!(
        e,
        HandlerEvent::Problem {
            problem: Problem::UnknownMessageType {
                seq_num: 2,
                msg_type: 999
            },
            ..
        }
    )));
}

#[test]
fn heartbeat_reveals_a_tail_gap() {
    let mut b = Bench::new();
    b.publish(5);
    let _lost = b.drain();
    b.tick(2_000);
    b.publisher.handle_timeout(b.now);
    for d in b.drain() {
        let header = PacketHeader::decode(&d.bytes).unwrap();
        assert_eq!((header.msg_count, header.seq_num), (0, 5));
        b.deliver(&d);
    }
    assert!(b
        .events()
        .iter()
        .any(|e| matches!(e, HandlerEvent::GapDetected { from: 1, to: 5, .. })));
}

#[test]
fn refused_retransmission_falls_back_to_refresh_then_goes_live() {
    let mut b = Bench::new();
    b.publish(10);
    let datagrams = b.drain();
    // Lose the first packet on both lines; deliver the rest.
    let first_seq = |d: &Datagram| PacketHeader::decode(&d.bytes).unwrap().seq_num;
    for d in datagrams.iter().filter(|d| first_seq(d) > 3) {
        b.deliver(d);
    }
    assert!(b.expected() <= 3);
    // No RTS session exists, so the request is refused locally after the wait.
    b.tick(60);
    b.handler.handle_timeout(b.now);
    let events = b.events();
    assert!(events
        .iter()
        .any(|e| matches!(e, HandlerEvent::RetransmissionRequested { .. })));
    assert!(events.iter().any(|e| matches!(
        e,
        HandlerEvent::Problem {
            problem: Problem::RetransmissionFailed { .. },
            ..
        }
    )));
    assert!(b.handler.channel(CHANNEL).unwrap().wants_refresh());
    // Two refresh cycles: discard up to the first Refresh Complete, apply the second.
    for _ in 0..2 {
        b.tick(1_000);
        b.refresh.publish_snapshot(b.now);
        while let Some(d) = b.refresh.poll_transmit() {
            b.handler.handle_refresh(CHANNEL, d.line, &d.bytes, b.now);
        }
    }
    let channel = b.handler.channel(CHANNEL).unwrap();
    assert!(channel.is_live());
    assert_eq!(channel.expected_seq(), 11);
    channel.image().compare(b.refresh.image(), false).unwrap();
}

#[test]
fn the_other_lines_copy_of_a_sequence_reset_is_ignored() {
    let mut b = Bench::new();
    b.publish(3);
    let first_day = b.drain();
    for d in &first_day {
        b.deliver(d);
    }
    let _start_of_day = b.events();
    b.tick(10);
    b.publisher.sequence_reset(b.now);
    b.publish(4);
    let datagrams = b.drain();
    // Line A (reset and data) first, then Line B's copies, then stale first-day packets.
    let (a, lb): (Vec<_>, Vec<_>) = datagrams.iter().partition(|d| d.line == Line::A);
    for d in a.iter().chain(lb.iter()).copied().chain(first_day.iter()) {
        b.deliver(d);
    }
    let resets = b
        .events()
        .iter()
        .filter(|e| matches!(e, HandlerEvent::SequenceReset { .. }))
        .count();
    assert_eq!(resets, 1);
    assert_eq!(b.expected(), 5);
    assert!(b.handler.channel(CHANNEL).unwrap().is_live());
}

#[test]
fn gaps_on_two_channels_are_retransmitted_one_request_at_a_time() {
    use twinsite_omd::rts::{RtsServer, RtsServerConfig};
    let mut now = Timestamp::from_secs(1_800_000_000);
    let channels = [7u16, 8];
    let mut rts = RtsServer::new(RtsServerConfig::new(["feed".to_string()], channels));
    let configs = channels.map(|c| {
        let mut config = HandlerConfig::new(c);
        config.refresh_after_sequence_reset = false;
        config
    });
    let mut handler = FeedHandler::new(configs, RtsClientConfig::new("feed"));
    rts.accept(1, now);
    handler.rts_connected(now);
    let shuttle = |handler: &mut FeedHandler, rts: &mut RtsServer, now| {
        for _ in 0..100 {
            let mut moved = false;
            while let Some(bytes) = handler.poll_rts_transmit() {
                rts.handle_data(1, &bytes, now);
                moved = true;
            }
            while let Some(bytes) = rts.poll_transmit(1) {
                handler.rts_data(&bytes, now);
                moved = true;
            }
            if !moved {
                break;
            }
        }
    };
    shuttle(&mut handler, &mut rts, now);
    for channel in channels {
        let mut publisher = ChannelPublisher::new(PublisherConfig::new(channel), now);
        publisher.sequence_reset(now);
        while let Some(d) = publisher.poll_transmit() {
            handler.handle_realtime(channel, d.line, &d.bytes, now);
        }
        for i in 0..30u32 {
            let msg = Message::from(NominalPrice {
                security_code: i,
                nominal_price: channel as i32,
            });
            let published = publisher.publish(&msg, now).unwrap();
            rts.store_mut()
                .record(channel, published.seq_num, published.bytes);
            if i % 10 == 9 {
                publisher.flush_all(now);
            }
        }
        publisher.flush_all(now);
        while let Some(d) = publisher.poll_transmit() {
            let header = PacketHeader::decode(&d.bytes).unwrap();
            let lost = header.msg_count > 0 && header.seq_num <= 10;
            if !lost {
                handler.handle_realtime(channel, d.line, &d.bytes, now);
            }
        }
    }
    now = now.plus_nanos(60 * MS);
    handler.handle_timeout(now);
    shuttle(&mut handler, &mut rts, now);
    let events: Vec<_> = std::iter::from_fn(|| handler.poll_event()).collect();
    let requested = events
        .iter()
        .filter(|e| matches!(e, HandlerEvent::RetransmissionRequested { .. }))
        .count();
    assert_eq!(requested, 2, "{events:?}");
    for channel in channels {
        let h = handler.channel(channel).unwrap();
        assert!(h.is_live(), "channel {channel}: {events:?}");
        assert_eq!(h.expected_seq(), 31);
        assert_eq!(h.stats().applied_messages, 30);
    }
}

mod never_panics {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        /// Arbitrary bytes on every input of the feed handler never panic it.
        #[test]
        fn arbitrary_input_never_panics(
            inputs in proptest::collection::vec((0u8..4, proptest::collection::vec(any::<u8>(), 0..200)), 1..40)
        ) {
            let mut handler = FeedHandler::new([HandlerConfig::new(CHANNEL)], RtsClientConfig::new("x"));
            let mut now = Timestamp::from_secs(1_800_000_000);
            handler.rts_connected(now);
            for (kind, bytes) in inputs {
                now = now.plus_nanos(30 * MS);
                match kind {
                    0 => handler.handle_realtime(CHANNEL, Line::A, &bytes, now),
                    1 => handler.handle_refresh(CHANNEL, Line::B, &bytes, now),
                    2 => handler.handle_dr(Line::A, &bytes, now),
                    _ => handler.rts_data(&bytes, now),
                }
                handler.handle_timeout(now);
                while handler.poll_event().is_some() {}
                while handler.poll_rts_transmit().is_some() {}
            }
        }
    }
}
