//! A one-connection FIX acceptor over a blocking TCP socket, for interoperability runs against
//! a third-party initiator (see `crates/fix/interop/`). This is the only place in the crate that
//! touches a socket or the clock: it is the thin I/O shell around the sans-IO [`Session`].
//!
//! It accepts `BROKER01` -> `HKEX` with the test RSA key (`testdata/test-rsa-2048.pem`) and the
//! password `abcd1234`, answers every NewOrderSingle with an ExecutionReport (New), and exits 0
//! once the peer has logged out after at least one order.
//!
//! Usage: `cargo run -p twinsite-fix --example interop_acceptor -- [port]` (default 9880).

use std::io::{Read, Write};
use std::net::TcpListener;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rsa::pkcs8::DecodePrivateKey;
use rsa::RsaPrivateKey;
use twinsite_core::{OrderId, Qty, Timestamp};
use twinsite_fix::app::{ExecType, ExecutionReport, NewOrderSingle, OrdStatus};
use twinsite_fix::password::{RsaLogonVerifier, PASSWORD_TIME_TOLERANCE_SECS};
use twinsite_fix::session::{identify_logon, Action, DisconnectReason, Session};
use twinsite_fix::{SessionConfig, SessionState};

const EXCHANGE: &str = "HKEX";
const BROKER: &str = "BROKER01";

fn now() -> Timestamp {
    let since_epoch = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    Timestamp(since_epoch.as_nanos() as u64)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let port: u16 = std::env::args().nth(1).map_or(Ok(9880), |p| p.parse())?;
    let key = RsaPrivateKey::from_pkcs8_pem(include_str!("../testdata/test-rsa-2048.pem"))?;
    let listener = TcpListener::bind(("127.0.0.1", port))?;
    println!("listening on 127.0.0.1:{port}");
    let (mut stream, peer) = listener.accept()?;
    println!("connection from {peer}");
    stream.set_read_timeout(Some(Duration::from_millis(100)))?;

    // Read until the first frame identifies the session.
    let mut pending = Vec::new();
    let mut buffer = [0u8; 8192];
    let (sender, target) = loop {
        let n = stream.read(&mut buffer).or_else(|e| match e.kind() {
            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut => Ok(usize::MAX),
            _ => Err(e),
        })?;
        match n {
            0 => return Err("peer closed before logon".into()),
            usize::MAX => continue,
            n => pending.extend_from_slice(&buffer[..n]),
        }
        if let Some(ids) = identify_logon(&pending) {
            break ids;
        }
    };
    println!("logon from {sender} to {target}");
    let verifier = RsaLogonVerifier::new(vec![key], PASSWORD_TIME_TOLERANCE_SECS, |comp: &str| {
        (comp == BROKER).then(|| "abcd1234".to_string())
    });
    let mut session = Session::acceptor(
        SessionConfig::acceptor(EXCHANGE, BROKER),
        SessionState::new(EXCHANGE, BROKER),
        Box::new(verifier),
        now(),
    );
    session.handle_bytes(now(), &pending);

    let mut orders = 0u64;
    let reason = 'run: loop {
        while let Some(action) = session.poll_action() {
            match action {
                Action::Send(bytes) => {
                    println!("out {}", twinsite_fix::codec::to_pipes(&bytes));
                    stream.write_all(&bytes)?;
                }
                Action::Established => println!("established"),
                Action::Deliver(inbound) => {
                    println!("app {} seq {}", inbound.message.msg_type, inbound.seq);
                    if inbound.message.msg_type != "D" {
                        continue;
                    }
                    match NewOrderSingle::from_message(&inbound.message) {
                        Ok(order) => {
                            orders += 1;
                            let mut er = ExecutionReport::new(
                                OrderId(orders),
                                &format!("EXEC{orders}"),
                                ExecType::New,
                                OrdStatus::New,
                                order.terms.security,
                                order.terms.side,
                                Qty(0),
                                order.terms.qty,
                            );
                            er.cl_ord_id = Some(order.cl_ord_id);
                            er.price = order.terms.price;
                            er.qty = Some(order.terms.qty);
                            er.transact_time = Some(now());
                            session.send(now(), er.to_message())?;
                        }
                        Err(e) => println!("order refused: {e}"),
                    }
                }
                Action::Disconnect { reason } => break 'run reason,
            }
        }
        match stream.read(&mut buffer) {
            Ok(0) => {
                session.handle_disconnect();
                break DisconnectReason::Protocol("peer closed the connection".into());
            }
            Ok(n) => {
                println!("in  {}", twinsite_fix::codec::to_pipes(&buffer[..n]));
                session.handle_bytes(now(), &buffer[..n]);
            }
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(e) => return Err(e.into()),
        }
        session.handle_timeout(now());
    };
    println!("disconnect: {reason}; orders acknowledged: {orders}");
    let clean = matches!(
        reason,
        DisconnectReason::PeerLoggedOut(_) | DisconnectReason::LogoutCompleted
    );
    if clean && orders > 0 {
        println!("INTEROP OK");
        Ok(())
    } else {
        Err("interop run did not complete".into())
    }
}
