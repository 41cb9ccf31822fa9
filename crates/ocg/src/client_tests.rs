//! End-to-end scenarios: an [`OcgClient`] against an [`OcgServer`] and Lookup Services over a
//! simulated network that moves bytes instantly and advances a simulated clock to the next
//! deadline. Assertions are on what the participant and the gateway observe.

use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use twinsite_core::time::NANOS_PER_SEC;
use twinsite_core::{CompId, Timestamp};

use crate::password::{self, test_keys, Credentials};
use crate::*;

const T0: Timestamp = Timestamp(1_700_000_000 * NANOS_PER_SEC);
const CLIENT_IP: IpAddr = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1));
const PW: &str = "pass1234";

fn at(s: u64) -> Timestamp {
    T0.plus_nanos(s * NANOS_PER_SEC)
}

fn addr(last: u8, port: u16) -> SocketAddr {
    SocketAddr::new(IpAddr::V4(Ipv4Addr::new(192, 168, 0, last)), port)
}

fn lookup_addrs() -> Vec<SocketAddr> {
    vec![addr(1, 7000), addr(2, 7000), addr(3, 7000), addr(4, 7000)]
}
const PRIMARY: (u8, u16) = (11, 9000);
const MIRROR: (u8, u16) = (12, 9000);
const BACKUP_PRIMARY: (u8, u16) = (21, 9000);
const BACKUP_MIRROR: (u8, u16) = (22, 9000);

fn comp() -> CompId {
    CompId::new("CO1").unwrap()
}

fn new_server(durable: DurableSession) -> OcgServer {
    let mut s = OcgServer::new(ServerConfig::default(), vec![test_keys::key_a()]);
    let p = ParticipantConfig {
        comp_id: comp(),
        source_ips: vec![CLIENT_IP],
        throttle_units: 10,
    };
    s.add_participant(p, durable);
    s
}

fn fresh_durable() -> DurableSession {
    let mut c = Credentials::issued("CO1", PW, password::hkt_day(T0), 90);
    c.must_change = false;
    DurableSession::new(comp(), c, Some(30 * NANOS_PER_SEC))
}

fn lookup(gw: (u8, u16), mirror: (u8, u16), open: bool) -> LookupService {
    let ip = |x: (u8, u16)| (format!("192.168.0.{}", x.0), x.1);
    let mut l = LookupService::new(ip(gw), ip(mirror), open);
    l.add_client(comp(), vec![CLIENT_IP], false);
    l
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Event {
    Connect(SocketAddr, bool),
    Close,
    LoggedOn(SessionStatus),
    Lost,
    Stopped(StopReason),
}

/// The simulated world: one client, the gateway server(s) and four lookup services.
struct World {
    now: Timestamp,
    client: OcgClient,
    /// Gateway servers by address; the same server may answer on several addresses.
    servers: Vec<(Vec<SocketAddr>, OcgServer)>,
    /// Gateways that accept TCP connections but never answer.
    black_holes: BTreeSet<SocketAddr>,
    lookups: Vec<(SocketAddr, LookupService)>,
    conn: Option<(SocketAddr, ConnectionId)>,
    next_conn: u64,
    events: Vec<(u64, Event)>,
    client_received: Vec<(u32, bool, Message)>,
    server_received: Vec<(u32, Message)>,
    server_actions: Vec<ServerAction>,
}

impl World {
    fn new(server: OcgServer, config_edit: impl FnOnce(&mut ClientConfig)) -> World {
        let key = test_keys::key_a().to_public_key();
        let mut config = ClientConfig::new(comp(), PW, key, lookup_addrs());
        config_edit(&mut config);
        let lookups = vec![
            (lookup_addrs()[0], lookup(PRIMARY, MIRROR, true)),
            (lookup_addrs()[1], lookup(PRIMARY, MIRROR, true)),
            (
                lookup_addrs()[2],
                lookup(BACKUP_PRIMARY, BACKUP_MIRROR, false),
            ),
            (
                lookup_addrs()[3],
                lookup(BACKUP_PRIMARY, BACKUP_MIRROR, false),
            ),
        ];
        let gw = vec![addr(PRIMARY.0, PRIMARY.1), addr(MIRROR.0, MIRROR.1)];
        World {
            now: T0,
            client: OcgClient::new(config, ClientState::default()),
            servers: vec![(gw, server)],
            black_holes: BTreeSet::new(),
            lookups,
            conn: None,
            next_conn: 1,
            events: Vec::new(),
            client_received: Vec::new(),
            server_received: Vec::new(),
            server_actions: Vec::new(),
        }
    }

    fn secs(&self) -> u64 {
        (self.now.0 - T0.0) / NANOS_PER_SEC
    }

    fn server_for(&mut self, a: SocketAddr) -> Option<&mut OcgServer> {
        self.servers
            .iter_mut()
            .find(|(addrs, _)| addrs.contains(&a))
            .map(|(_, s)| s)
    }

    fn lookup_for(&self, a: SocketAddr) -> Option<&LookupService> {
        self.lookups.iter().find(|(x, _)| *x == a).map(|(_, l)| l)
    }

    /// Move every pending output until nothing changes.
    fn settle(&mut self) {
        for _ in 0..10_000 {
            if !self.step_client() && !self.step_servers() {
                return;
            }
        }
        panic!("Invariant: the simulated network did not settle (livelock)");
    }

    fn step_client(&mut self) -> bool {
        let Some(action) = self.client.poll_action() else {
            return false;
        };
        let t = self.secs();
        match action {
            ClientAction::Connect { endpoint, purpose } => {
                let is_lookup = purpose == ConnectPurpose::Lookup;
                let reachable = if is_lookup {
                    self.lookup_for(endpoint).is_some_and(|l| l.open)
                } else {
                    self.server_for(endpoint).is_some() || self.black_holes.contains(&endpoint)
                };
                self.events.push((t, Event::Connect(endpoint, reachable)));
                if !reachable {
                    self.client.handle_connect_failed(self.now);
                    return true;
                }
                let id = ConnectionId(self.next_conn);
                self.next_conn += 1;
                self.conn = Some((endpoint, id));
                let now = self.now;
                if let Some(s) = self.server_for(endpoint) {
                    s.handle_accept(id, CLIENT_IP, now);
                }
                self.client.handle_connected(now);
            }
            ClientAction::Send(bytes) => {
                let Some((endpoint, id)) = self.conn else {
                    return true;
                };
                let now = self.now;
                if let Some(l) = self.lookup_for(endpoint) {
                    if let LookupOutcome::Reply(r) = l.handle_request(CLIENT_IP, &bytes) {
                        self.client.handle_bytes(&r, now);
                    }
                } else if let Some(s) = self.server_for(endpoint) {
                    s.handle_bytes(id, &bytes, now);
                }
            }
            ClientAction::Close => {
                self.events.push((t, Event::Close));
                if let Some((endpoint, id)) = self.conn.take() {
                    let now = self.now;
                    if let Some(s) = self.server_for(endpoint) {
                        s.handle_closed(id, now);
                    }
                }
            }
            ClientAction::Deliver {
                seq,
                poss_resend,
                message,
                ..
            } => self.client_received.push((seq, poss_resend, message)),
            ClientAction::LoggedOn { status, .. } => self.events.push((t, Event::LoggedOn(status))),
            ClientAction::SessionLost => self.events.push((t, Event::Lost)),
            ClientAction::Stopped(r) => self.events.push((t, Event::Stopped(r))),
        }
        true
    }

    fn step_servers(&mut self) -> bool {
        let mut moved = false;
        for i in 0..self.servers.len() {
            while let Some(a) = self.servers[i].1.poll_action() {
                moved = true;
                let current = self.conn.map(|c| c.1);
                match &a {
                    ServerAction::Send { connection, bytes } if Some(*connection) == current => {
                        self.client.handle_bytes(bytes, self.now)
                    }
                    ServerAction::Disconnect { connection, .. } if Some(*connection) == current => {
                        self.conn = None;
                        self.client.handle_closed(self.now);
                    }
                    ServerAction::Deliver { seq, message, .. } => {
                        self.server_received.push((*seq, message.clone()))
                    }
                    _ => {}
                }
                self.server_actions.push(a);
            }
        }
        moved
    }

    /// Run the world, firing timers in order, until `until`.
    fn run_until(&mut self, until: Timestamp) {
        self.settle();
        for _ in 0..100_000 {
            let next = self
                .servers
                .iter()
                .filter_map(|(_, s)| s.poll_timeout())
                .chain(self.client.poll_timeout())
                .min();
            match next {
                Some(t) if t <= until => {
                    self.now = self.now.max(t);
                    let now = self.now;
                    self.client.handle_timeout(now);
                    for (_, s) in self.servers.iter_mut() {
                        s.handle_timeout(now);
                    }
                    self.settle();
                }
                _ => {
                    self.now = until;
                    return;
                }
            }
        }
        panic!("Invariant: timers kept firing without reaching {until:?}");
    }

    fn start(&mut self) {
        self.client.start(self.now);
        self.settle();
    }

    fn connects(&self) -> Vec<(u64, SocketAddr, bool)> {
        self.events
            .iter()
            .filter_map(|(t, e)| match e {
                Event::Connect(a, ok) => Some((*t, *a, *ok)),
                _ => None,
            })
            .collect()
    }
}

fn order(id: &str) -> Message {
    Message::NewOrder(NewOrder {
        cl_ord_id: FixedStr::new(id),
        submitting_broker_id: FixedStr::new("1234"),
        security_id: FixedStr::new("5"),
        security_id_source: 8,
        security_exchange: None,
        broker_location_id: None,
        transact_time: FixedStr::new("20231114-22:13:20.000000"),
        side: Side::Buy,
        ord_type: OrdType::Limit,
        price: Some(Decimal(8_000_000_000)),
        order_qty: Decimal(40_000_000_000),
        time_in_force: None,
        position_effect: None,
        order_restrictions: None,
        max_price_levels: None,
        order_capacity: None,
        text: None,
        execution_instructions: None,
        disclosure_instructions: 1,
        lot_type: None,
        submitting_bcan: Some(FixedStr::new("1")),
    })
}

fn report(exec_id: &str) -> Message {
    Message::ExecutionReport(ExecutionReport {
        exec_id: Some(FixedStr::new(exec_id)),
        exec_type: Some(ExecType::New),
        ..ExecutionReport::default()
    })
}

fn exec_ids(received: &[(u32, bool, Message)]) -> Vec<(String, bool)> {
    received
        .iter()
        .filter_map(|(_, pr, m)| match m {
            Message::ExecutionReport(er) => Some((er.exec_id.as_ref()?.as_str().to_owned(), *pr)),
            _ => None,
        })
        .collect()
}

#[test]
fn lookup_ladder_tries_endpoints_in_order_with_five_second_backoff() {
    let mut w = World::new(new_server(fresh_durable()), |_| {});
    // Primary-site lookups are down; the backup-site primary rejects; the mirror answers.
    w.lookups[0].1.open = false;
    w.lookups[1].1.open = false;
    w.lookups[2].1 = lookup(PRIMARY, MIRROR, true);
    w.lookups[2].1.add_client(comp(), vec![CLIENT_IP], true);
    w.lookups[3].1 = lookup(PRIMARY, MIRROR, true);
    w.start();
    w.run_until(at(30));
    let l = lookup_addrs();
    assert_eq!(
        w.connects(),
        [
            (0, l[0], false),
            (5, l[1], false),
            (10, l[2], true),
            (15, l[3], true),
            (15, addr(PRIMARY.0, PRIMARY.1), true)
        ]
    );
    assert!(w.client.is_logged_on());
}

#[test]
fn orders_flow_and_reports_are_deduplicated_by_execution_id() {
    let mut w = World::new(new_server(fresh_durable()), |_| {});
    w.start();
    assert_eq!(
        w.events
            .iter()
            .filter(|e| matches!(e.1, Event::LoggedOn(SessionStatus::Active)))
            .count(),
        1
    );
    w.client.send(order("1"), w.now).unwrap();
    w.settle();
    assert_eq!(w.server_received.len(), 1);
    let s = &mut w.servers[0].1;
    s.send_business(&comp(), report("E1"), w.now).unwrap();
    s.send_business(&comp(), report("E2"), w.now).unwrap();
    s.send_business(&comp(), report("E1"), w.now).unwrap();
    w.settle();
    assert_eq!(
        exec_ids(&w.client_received),
        [("E1".into(), false), ("E2".into(), false)]
    );
    assert_eq!(w.client.state().duplicates_dropped, 1);
}

#[test]
fn idle_session_stays_up_on_heartbeats() {
    let mut w = World::new(new_server(fresh_durable()), |_| {});
    w.start();
    w.run_until(at(600));
    assert!(w.client.is_logged_on());
    assert!(!w.events.iter().any(|e| e.1 == Event::Lost));
    assert!(!w
        .server_actions
        .iter()
        .any(|a| matches!(a, ServerAction::Disconnect { .. })));
}

#[test]
fn silent_exchange_makes_the_client_test_then_give_up_and_reconnect() {
    let mut w = World::new(new_server(fresh_durable()), |_| {});
    w.start();
    // The gateway goes dark without closing TCP: it is replaced by a black hole.
    let gw = w.servers.remove(0);
    w.black_holes.extend(gw.0.iter().copied());
    w.run_until(at(121));
    assert_eq!(
        w.events
            .iter()
            .filter(|e| e.1 == Event::Lost)
            .map(|e| e.0)
            .collect::<Vec<_>>(),
        [120]
    );
}

#[test]
fn reconnect_goes_primary_then_mirror_then_lookup_and_continues_at_the_backup_site() {
    let mut w = World::new(new_server(fresh_durable()), |_| {});
    w.start();
    w.client.send(order("1"), w.now).unwrap();
    w.servers[0]
        .1
        .send_business(&comp(), report("E1"), w.now)
        .unwrap();
    w.settle();
    // Site failover: the primary site's gateways and lookups go away.
    w.servers[0].1.exchange_outage(w.now);
    w.settle();
    let mut state = w.servers[0].1.durable(&comp()).unwrap().clone();
    w.servers.clear();
    w.lookups[0].1.open = false;
    w.lookups[1].1.open = false;
    // The backup site takes over the replicated state; the engine there re-sends E1 (recovered
    // from the journal) and produces E2, both while the participant is away.
    state.mark_poss_resend(state.out_next);
    let mut backup = new_server(state);
    backup.send_business(&comp(), report("E1"), w.now).unwrap();
    backup.send_business(&comp(), report("E2"), w.now).unwrap();
    let backup_addrs = vec![
        addr(BACKUP_PRIMARY.0, BACKUP_PRIMARY.1),
        addr(BACKUP_MIRROR.0, BACKUP_MIRROR.1),
    ];
    w.servers.push((backup_addrs, backup));
    w.lookups[2].1.open = true;
    w.run_until(at(60));
    let l = lookup_addrs();
    let connects: Vec<_> = w.connects().into_iter().skip(2).collect();
    assert_eq!(
        connects,
        [
            (10, addr(PRIMARY.0, PRIMARY.1), false),
            (20, addr(MIRROR.0, MIRROR.1), false),
            (25, l[0], false),
            (30, l[1], false),
            (35, l[2], true),
            (35, addr(BACKUP_PRIMARY.0, BACKUP_PRIMARY.1), true),
        ]
    );
    assert!(w.client.is_logged_on());
    // The same session continued: E1 came once, E2 arrived with PossResend, nothing was lost.
    assert_eq!(
        exec_ids(&w.client_received),
        [("E1".into(), false), ("E2".into(), true)]
    );
    assert_eq!(w.client.state().duplicates_dropped, 1);
    assert!(!w
        .server_actions
        .iter()
        .any(|a| matches!(a, ServerAction::CancelOnDisconnect { .. })));
}

#[test]
fn orders_entered_while_disconnected_are_replayed_at_logon() {
    let mut w = World::new(new_server(fresh_durable()), |_| {});
    w.start();
    w.client.send(order("1"), w.now).unwrap();
    w.settle();
    // The participant's line drops; it keeps entering orders meanwhile.
    let (_, id) = w.conn.take().unwrap();
    w.client.handle_closed(w.now);
    w.servers[0].1.handle_closed(id, w.now);
    w.client.send(order("2"), w.now).unwrap();
    w.client.send(order("3"), w.now).unwrap();
    w.run_until(at(15));
    assert!(w.client.is_logged_on());
    let ids: Vec<String> = w
        .server_received
        .iter()
        .map(|(_, m)| match m {
            Message::NewOrder(o) => o.cl_ord_id.as_str().to_owned(),
            m => panic!("{m:?}"),
        })
        .collect();
    assert_eq!(ids, ["1", "2", "3"]);
    // Both sides agree on the numbers afterwards.
    let d = w.servers[0].1.durable(&comp()).unwrap();
    assert_eq!(d.in_next, w.client.state().out_next);
    assert_eq!(d.out_next, w.client.state().in_next);
}

#[test]
fn no_logon_reply_closes_after_sixty_seconds_and_retries_sixty_later() {
    let mut w = World::new(new_server(fresh_durable()), |_| {});
    let gw = w.servers.remove(0);
    w.black_holes.extend(gw.0.iter().copied());
    w.start();
    w.run_until(at(125));
    let primary = addr(PRIMARY.0, PRIMARY.1);
    let trading: Vec<u64> = w
        .connects()
        .iter()
        .filter(|c| c.1 == primary)
        .map(|c| c.0)
        .collect();
    assert_eq!(trading, [0, 120]);
    assert!(w.events.contains(&(60, Event::Close)));
    assert_eq!(
        w.client.state().out_next,
        2,
        "the unanswered Logon's number is reused"
    );
}

#[test]
fn rejected_password_stops_the_client() {
    let mut w = World::new(new_server(fresh_durable()), |c| {
        c.password = "wrong123".into()
    });
    w.start();
    w.run_until(at(100));
    assert!(w.events.iter().any(|e| e.1
        == Event::Stopped(StopReason::LogonRejected(Some(
            SessionStatus::InvalidUsernameOrPassword
        )))));
    assert_eq!(w.connects().len(), 2, "no retry after a password failure");
}

#[test]
fn password_change_at_logon() {
    let mut d = fresh_durable();
    d.credentials.must_change = true;
    let mut w = World::new(new_server(d), |c| c.new_password = Some("newpw123".into()));
    w.start();
    assert!(w
        .events
        .iter()
        .any(|e| e.1 == Event::LoggedOn(SessionStatus::PasswordChanged)));
}

#[test]
fn client_state_is_serialisable() {
    let mut w = World::new(new_server(fresh_durable()), |_| {});
    w.start();
    w.servers[0]
        .1
        .send_business(&comp(), report("E1"), w.now)
        .unwrap();
    w.settle();
    let json = serde_json::to_string(w.client.state()).unwrap();
    let back: ClientState = serde_json::from_str(&json).unwrap();
    assert_eq!(&back, w.client.state());
}

/// Swarm test: random traffic in both directions with random faults (connection cuts that lose
/// whatever was in flight, exchange outages, long silences), then a healed period. Whatever
/// happened, every order reaches the exchange exactly once and in order, every Execution Report
/// reaches the participant exactly once, and both sides agree on the sequence numbers.
#[test]
fn swarm_random_faults_lose_and_duplicate_nothing() {
    use rand::{Rng, SeedableRng};
    for seed in 0..24u64 {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        let mut server = OcgServer::new(ServerConfig::default(), vec![test_keys::key_a()]);
        let p = ParticipantConfig {
            comp_id: comp(),
            source_ips: vec![CLIENT_IP],
            throttle_units: 1_000,
        };
        server.add_participant(p, fresh_durable());
        let mut w = World::new(server, |c| c.rng_seed = seed);
        w.start();
        let (mut orders, mut reports) = (0u32, 0u32);
        for _ in 0..150 {
            match rng.gen_range(0..100) {
                0..=39 => {
                    orders += 1;
                    w.client.send(order(&orders.to_string()), w.now).unwrap();
                }
                40..=74 => {
                    reports += 1;
                    let r = report(&format!("E{reports}"));
                    w.servers[0].1.send_business(&comp(), r, w.now).unwrap();
                }
                75..=82 => {
                    // Cut the line; anything not yet moved is lost.
                    if let Some((_, id)) = w.conn.take() {
                        w.client.handle_closed(w.now);
                        w.servers[0].1.handle_closed(id, w.now);
                    }
                }
                83..=85 => w.servers[0].1.exchange_outage(w.now),
                _ => {
                    let t = w.now.plus_nanos(rng.gen_range(0..40) * NANOS_PER_SEC);
                    w.run_until(t);
                }
            }
            if rng.gen_bool(0.7) {
                w.settle();
            }
        }
        let heal = w.now.plus_nanos(300 * NANOS_PER_SEC);
        w.run_until(heal);
        assert!(
            w.client.is_logged_on(),
            "seed {seed}: {:?}",
            w.events.last()
        );
        let got_orders: Vec<String> = w
            .server_received
            .iter()
            .map(|(_, m)| match m {
                Message::NewOrder(o) => o.cl_ord_id.as_str().to_owned(),
                m => panic!("seed {seed}: {m:?}"),
            })
            .collect();
        let want_orders: Vec<String> = (1..=orders).map(|i| i.to_string()).collect();
        assert_eq!(got_orders, want_orders, "seed {seed}");
        let got_reports: Vec<String> = exec_ids(&w.client_received)
            .into_iter()
            .map(|x| x.0)
            .collect();
        let want_reports: Vec<String> = (1..=reports).map(|i| format!("E{i}")).collect();
        assert_eq!(got_reports, want_reports, "seed {seed}");
        let d = w.servers[0].1.durable(&comp()).unwrap();
        assert_eq!(
            (d.in_next, d.out_next),
            (w.client.state().out_next, w.client.state().in_next),
            "seed {seed}"
        );
        assert!(
            !w.events.iter().any(|e| matches!(e.1, Event::Stopped(_))),
            "seed {seed}"
        );
        let logons = w
            .events
            .iter()
            .filter(|e| matches!(e.1, Event::LoggedOn(_)))
            .count();
        eprintln!("seed {seed}: orders {orders} reports {reports} logons {logons} dup-dropped {} seq {:?}", w.client.state().duplicates_dropped, (d.in_next, d.out_next));
    }
}

#[test]
fn client_follows_an_emergency_sequence_reset() {
    let mut w = World::new(new_server(fresh_durable()), |_| {});
    w.start();
    w.servers[0].1.send_sequence_reset(&comp(), 50, w.now);
    w.servers[0]
        .1
        .send_business(&comp(), report("E1"), w.now)
        .unwrap();
    w.settle();
    assert_eq!(
        w.client_received.iter().map(|r| r.0).collect::<Vec<_>>(),
        [50]
    );
    assert_eq!(w.client.state().in_next, 51);
    w.run_until(at(100));
    assert!(w.client.is_logged_on());
}
