//! Randomised fault simulation of an exchange acceptor and a participant initiator (a small
//! VOPR): both sides send business messages at random, bytes arrive in random chunks, time jumps,
//! and connections drop with whatever was in flight lost. After the faults stop and the network
//! heals, every business message must have been delivered exactly once, in sequence order, and
//! both sides must agree on sequence numbers. Each seed is deterministic; a failure names it.

use std::collections::VecDeque;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha20Rng;
use twinsite_core::Timestamp;

use crate::message::{Field, Message};
use crate::password::{LogonCredentials, LogonDecision};
use crate::session::{Action, Phase, Session, SessionConfig, SessionState};
use crate::time::{format_utc_timestamp, TimePrecision};

const EXCHANGE: &str = "HKEX";
const BROKER: &str = "CO01";
const SECOND: u64 = 1_000_000_000;

struct Peer {
    session: Session,
    /// Bytes in flight towards this peer.
    inbox: VecDeque<Vec<u8>>,
    /// (MsgSeqNum, id) of each business message this peer sent, as `send` numbered it.
    sent: Vec<(u64, String)>,
    /// (MsgSeqNum, id) of each business message delivered to this peer.
    delivered: Vec<(u64, String)>,
}

struct Sim {
    now: Timestamp,
    exchange: Peer,
    broker: Peer,
    connection_lost: bool,
    ids: u64,
    on_backup_site: bool,
}

fn new_exchange(state: SessionState, now: Timestamp) -> Session {
    let verifier =
        Box::new(|_: &LogonCredentials, _: Timestamp| LogonDecision::Accept { new_password: None });
    Session::acceptor(
        SessionConfig::acceptor(EXCHANGE, BROKER),
        state,
        verifier,
        now,
    )
}

fn new_broker(state: SessionState, now: Timestamp) -> Session {
    let credentials = Box::new(|_: Timestamp| vec![Field::new(554, "secret")]);
    Session::initiator(
        SessionConfig::initiator(BROKER, EXCHANGE),
        state,
        credentials,
        now,
    )
}

fn business_id(m: &Message) -> String {
    m.get(if m.msg_type == "D" { 11 } else { 17 })
        .unwrap_or_default()
        .to_string()
}

impl Sim {
    fn new() -> Sim {
        let now = Timestamp::from_secs(1_700_000_000);
        let peer = |session| Peer {
            session,
            inbox: VecDeque::new(),
            sent: Vec::new(),
            delivered: Vec::new(),
        };
        let mut sim = Sim {
            now,
            exchange: peer(new_exchange(SessionState::new(EXCHANGE, BROKER), now)),
            broker: peer(new_broker(SessionState::new(BROKER, EXCHANGE), now)),
            connection_lost: false,
            ids: 0,
            on_backup_site: false,
        };
        sim.pump();
        sim
    }

    /// Route every pending action; returns whether anything happened.
    fn pump(&mut self) -> bool {
        let mut any = false;
        for from_exchange in [true, false] {
            let (from, to) = if from_exchange {
                (&mut self.exchange, &mut self.broker)
            } else {
                (&mut self.broker, &mut self.exchange)
            };
            while let Some(action) = from.session.poll_action() {
                any = true;
                match action {
                    Action::Send(bytes) => {
                        if std::env::var("FIX_SIM_TRACE").is_ok() {
                            let dir = if from_exchange { "E->B" } else { "B->E" };
                            eprintln!("{dir} {}", crate::codec::to_pipes(&bytes));
                        }
                        to.inbox.push_back(bytes)
                    }
                    Action::Deliver(m) => {
                        assert_ne!(m.message.msg_type, "3", "no session Reject in a clean run");
                        from.delivered.push((m.seq, business_id(&m.message)))
                    }
                    Action::Established => {}
                    Action::Disconnect { reason } => {
                        if std::env::var("FIX_SIM_TRACE").is_ok() {
                            eprintln!("disconnect from exchange={from_exchange}: {reason}");
                        }
                        self.connection_lost = true
                    }
                }
            }
        }
        any
    }

    fn send_business(&mut self, from_exchange: bool) {
        self.ids += 1;
        let id = self.ids.to_string();
        let now = self.now;
        let time = format_utc_timestamp(now, TimePrecision::Millis);
        let (peer, message) = if from_exchange {
            let er = Message::new("8")
                .with(37, "1")
                .with(17, id.clone())
                .with(150, "0")
                .with(39, "0")
                .with(48, "5")
                .with(54, "1")
                .with(14, "0")
                .with(151, "100");
            (&mut self.exchange, er)
        } else {
            let order = Message::new("D")
                .with(11, id.clone())
                .with(48, "5")
                .with(22, "8")
                .with(60, time)
                .with(54, "1")
                .with(40, "2")
                .with(44, "1.5")
                .with(38, "100");
            (&mut self.broker, order)
        };
        let seq = peer.session.send(now, message).expect("valid message");
        peer.sent.push((seq, id));
    }

    /// Deliver up to `count` in-flight messages towards one side, sometimes split in two reads.
    fn deliver(&mut self, rng: &mut ChaCha20Rng, to_exchange: bool, count: usize) {
        self.deliver_corrupting(rng, to_exchange, count, 0.0);
    }

    /// As `deliver`, flipping one byte of a message with probability `corrupt`: the frame is
    /// then garbled (checksum or framing), ignored, and its gap recovered by ResendRequest.
    fn deliver_corrupting(
        &mut self,
        rng: &mut ChaCha20Rng,
        to_exchange: bool,
        count: usize,
        corrupt: f64,
    ) {
        let now = self.now;
        let peer = if to_exchange {
            &mut self.exchange
        } else {
            &mut self.broker
        };
        for _ in 0..count {
            let Some(mut bytes) = peer.inbox.pop_front() else {
                break;
            };
            if rng.gen_bool(corrupt) {
                let at = rng.gen_range(0..bytes.len());
                bytes[at] ^= 1 << rng.gen_range(0..7);
            }
            let cut = rng.gen_range(0..=bytes.len());
            peer.session.handle_bytes(now, &bytes[..cut]);
            peer.session.handle_bytes(now, &bytes[cut..]);
        }
    }

    /// The TCP connection dies: a random prefix of what is in flight still arrives, the rest is
    /// lost; both sides reconnect ten seconds later from their durable state.
    fn drop_connection(&mut self, rng: &mut ChaCha20Rng) {
        for to_exchange in [true, false] {
            let len = if to_exchange {
                self.exchange.inbox.len()
            } else {
                self.broker.inbox.len()
            };
            let arriving = rng.gen_range(0..=len);
            self.deliver(rng, to_exchange, arriving);
        }
        self.reconnect();
    }

    fn reconnect(&mut self) {
        if std::env::var("FIX_SIM_TRACE").is_ok() {
            eprintln!("---- reconnect");
        }
        self.exchange.session.handle_disconnect();
        self.broker.session.handle_disconnect();
        self.pump();
        self.exchange.inbox.clear();
        self.broker.inbox.clear();
        self.now = self.now.plus_nanos(10 * SECOND);
        let state = self.exchange.session.state().clone();
        // Every other reconnect lands on the "backup site": the state crosses a serialisation
        // boundary, as replication would carry it.
        self.on_backup_site = !self.on_backup_site;
        let state = if self.on_backup_site {
            let json = serde_json::to_vec(&state).expect("state serialises");
            serde_json::from_slice(&json).expect("state deserialises")
        } else {
            state
        };
        self.exchange.session = new_exchange(state, self.now);
        self.broker.session = new_broker(self.broker.session.state().clone(), self.now);
        self.connection_lost = false;
        self.pump();
    }

    fn advance(&mut self, secs: u64) {
        self.now = self.now.plus_nanos(secs * SECOND);
        self.exchange.session.handle_timeout(self.now);
        self.broker.session.handle_timeout(self.now);
    }

    fn random_step(&mut self, rng: &mut ChaCha20Rng) {
        match rng.gen_range(0..100) {
            0..=24 => self.send_business(false),
            25..=49 => self.send_business(true),
            50..=79 => {
                let count = rng.gen_range(1..4);
                let to_exchange = rng.gen_bool(0.5);
                self.deliver_corrupting(rng, to_exchange, count, 0.05);
            }
            80..=81 => {
                let now = self.now;
                if rng.gen_bool(0.5) {
                    self.exchange.session.logout(now, "end of day drill");
                } else {
                    self.broker.session.logout(now, "");
                }
            }
            82..=91 => {
                // TCP delivers in milliseconds: whatever is in flight arrives before seconds
                // pass (otherwise SendingTime checks would rightly reject stale messages).
                while !self.exchange.inbox.is_empty() || !self.broker.inbox.is_empty() {
                    self.deliver(rng, true, usize::MAX);
                    self.deliver(rng, false, usize::MAX);
                    self.pump();
                }
                let secs = rng.gen_range(1..40);
                self.advance(secs);
            }
            _ => self.drop_connection(rng),
        }
        self.pump();
        if self.connection_lost {
            self.drop_connection(rng);
        }
    }

    /// No more faults: deliver everything, let timers run, reconnect if a side gave up.
    fn heal(&mut self, rng: &mut ChaCha20Rng) {
        for _ in 0..1_000 {
            let moved = !self.exchange.inbox.is_empty() || !self.broker.inbox.is_empty();
            self.deliver(rng, true, usize::MAX);
            self.deliver(rng, false, usize::MAX);
            let acted = self.pump();
            if self.connection_lost {
                self.reconnect();
                continue;
            }
            if moved || acted {
                continue;
            }
            let both_active = self.exchange.session.phase() == Phase::Active
                && self.broker.session.phase() == Phase::Active;
            let e = self.exchange.session.state();
            let b = self.broker.session.state();
            let in_step = e.next_outbound_seq == b.next_inbound_seq
                && b.next_outbound_seq == e.next_inbound_seq;
            if both_active && in_step {
                return;
            }
            self.advance(5);
        }
        panic!("the sessions did not converge after the faults stopped");
    }
}

fn run(seed: u64) {
    let mut rng = ChaCha20Rng::seed_from_u64(seed);
    let mut sim = Sim::new();
    for _ in 0..rng.gen_range(20..200) {
        sim.random_step(&mut rng);
    }
    sim.heal(&mut rng);
    assert_eq!(
        sim.exchange.delivered, sim.broker.sent,
        "seed {seed}: orders delivered to the exchange"
    );
    assert_eq!(
        sim.broker.delivered, sim.exchange.sent,
        "seed {seed}: reports delivered to the broker"
    );
}

#[test]
fn random_faults_never_lose_reorder_or_duplicate_business_messages() {
    if let Some(seed) = std::env::var("FIX_SIM_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
    {
        run(seed);
        return;
    }
    let seeds: u64 = std::env::var("FIX_SIM_SEEDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(300);
    for seed in 0..seeds {
        run(seed);
    }
}
