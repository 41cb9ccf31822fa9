//! An async driver for the sans-IO OCG-C client: sockets and timers for `OcgClient`. Used by the
//! reference participants and the tests.

use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::OwnedWriteHalf;
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use twinsite_core::Timestamp;
use twinsite_ocg::client::{ClientAction, ClientConfig, ClientState, ConnectPurpose, OcgClient};
use twinsite_ocg::Message;

use crate::gateway::wall_clock;

/// What the participant's application sees.
#[derive(Debug, Clone, PartialEq)]
pub enum ClientEvent {
    Connecting {
        endpoint: SocketAddr,
        lookup: bool,
    },
    LoggedOn {
        next_expected: u32,
    },
    Message {
        seq: u32,
        poss_dup: bool,
        poss_resend: bool,
        message: Box<Message>,
    },
    SessionLost,
    Stopped(String),
}

enum Cmd {
    Send(Box<Message>, oneshot::Sender<Result<u32, String>>),
    Logout,
    /// Drop the TCP connection without a logout (a network failure).
    DropConnection,
    State(oneshot::Sender<ClientState>),
}

enum Net {
    Connected { gen: u64, stream: TcpStream },
    ConnectFailed { gen: u64 },
    Bytes { gen: u64, data: Vec<u8> },
    Closed { gen: u64 },
}

/// A running client.
pub struct ClientHandle {
    cmd: mpsc::UnboundedSender<Cmd>,
    pub events: mpsc::UnboundedReceiver<ClientEvent>,
    task: JoinHandle<()>,
}

impl ClientHandle {
    /// Start the lookup / logon ladder.
    pub fn spawn(config: ClientConfig, state: ClientState) -> ClientHandle {
        let (cmd_tx, cmd_rx) = mpsc::unbounded_channel();
        let (ev_tx, ev_rx) = mpsc::unbounded_channel();
        let task = tokio::spawn(run(OcgClient::new(config, state), cmd_rx, ev_tx));
        ClientHandle {
            cmd: cmd_tx,
            events: ev_rx,
            task,
        }
    }

    /// Send a business message; returns its sequence number.
    pub async fn send(&self, m: Message) -> Result<u32, String> {
        let (tx, rx) = oneshot::channel();
        self.cmd
            .send(Cmd::Send(Box::new(m), tx))
            .map_err(|_| "client stopped".to_string())?;
        rx.await.map_err(|_| "client stopped".to_string())?
    }
    pub fn logout(&self) {
        let _ = self.cmd.send(Cmd::Logout);
    }
    pub fn drop_connection(&self) {
        let _ = self.cmd.send(Cmd::DropConnection);
    }
    pub async fn state(&self) -> Option<ClientState> {
        let (tx, rx) = oneshot::channel();
        self.cmd.send(Cmd::State(tx)).ok()?;
        rx.await.ok()
    }
    /// Wait (bounded) for the first event that `f` accepts; other events are returned in order.
    pub async fn wait_for<T>(
        &mut self,
        timeout: Duration,
        mut f: impl FnMut(&ClientEvent) -> Option<T>,
    ) -> Result<(T, Vec<ClientEvent>), String> {
        let mut seen = Vec::new();
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            match tokio::time::timeout_at(deadline, self.events.recv()).await {
                Ok(Some(e)) => {
                    if let Some(t) = f(&e) {
                        return Ok((t, seen));
                    }
                    seen.push(e);
                }
                Ok(None) => return Err(format!("client stopped; saw {seen:?}")),
                Err(_) => return Err(format!("timed out after {timeout:?}; saw {seen:?}")),
            }
        }
    }
    pub fn abort(self) {
        self.task.abort();
    }
}

async fn run(
    mut client: OcgClient,
    mut cmd: mpsc::UnboundedReceiver<Cmd>,
    ev: mpsc::UnboundedSender<ClientEvent>,
) {
    let (net_tx, mut net_rx) = mpsc::unbounded_channel::<Net>();
    let mut gen = 0u64;
    let mut writer: Option<OwnedWriteHalf> = None;
    let mut reader: Option<JoinHandle<()>> = None;
    client.start(wall_clock());
    loop {
        // Carry out everything the client asked for.
        while let Some(a) = client.poll_action() {
            match a {
                ClientAction::Connect { endpoint, purpose } => {
                    if let Some(r) = reader.take() {
                        r.abort();
                    }
                    writer = None;
                    gen += 1;
                    let g = gen;
                    let tx = net_tx.clone();
                    let _ = ev.send(ClientEvent::Connecting {
                        endpoint,
                        lookup: purpose == ConnectPurpose::Lookup,
                    });
                    tokio::spawn(async move {
                        match tokio::time::timeout(
                            Duration::from_secs(5),
                            TcpStream::connect(endpoint),
                        )
                        .await
                        {
                            Ok(Ok(s)) => {
                                let _ = s.set_nodelay(true);
                                let _ = tx.send(Net::Connected { gen: g, stream: s });
                            }
                            _ => {
                                let _ = tx.send(Net::ConnectFailed { gen: g });
                            }
                        }
                    });
                }
                ClientAction::Send(bytes) => {
                    if let Some(w) = writer.as_mut() {
                        if w.write_all(&bytes).await.is_err() {
                            writer = None;
                        }
                    }
                }
                ClientAction::Close => {
                    if let Some(r) = reader.take() {
                        r.abort();
                    }
                    if let Some(mut w) = writer.take() {
                        let _ = w.shutdown().await;
                    }
                    gen += 1;
                }
                ClientAction::Deliver {
                    seq,
                    poss_dup,
                    poss_resend,
                    message,
                } => {
                    let _ = ev.send(ClientEvent::Message {
                        seq,
                        poss_dup,
                        poss_resend,
                        message: Box::new(message),
                    });
                }
                ClientAction::LoggedOn { next_expected, .. } => {
                    let _ = ev.send(ClientEvent::LoggedOn { next_expected });
                }
                ClientAction::SessionLost => {
                    let _ = ev.send(ClientEvent::SessionLost);
                }
                ClientAction::Stopped(r) => {
                    let _ = ev.send(ClientEvent::Stopped(format!("{r:?}")));
                }
            }
        }
        let now = wall_clock();
        let sleep = client
            .poll_timeout()
            .map(|t: Timestamp| Duration::from_nanos(t.0.saturating_sub(now.0)))
            .unwrap_or(Duration::from_secs(3600));
        tokio::select! {
            c = cmd.recv() => match c {
                None => return,
                Some(Cmd::Send(m, reply)) => {
                    let _ = reply.send(client.send(*m, wall_clock()).map_err(|e| e.to_string()));
                }
                Some(Cmd::Logout) => client.logout(wall_clock()),
                Some(Cmd::DropConnection) => {
                    if let Some(r) = reader.take() {
                        r.abort();
                    }
                    writer = None;
                    gen += 1;
                    client.handle_closed(wall_clock());
                }
                Some(Cmd::State(tx)) => {
                    let _ = tx.send(client.state().clone());
                }
            },
            n = net_rx.recv() => match n {
                None => return,
                Some(Net::Connected { gen: g, stream }) if g == gen => {
                    let (mut r, w) = stream.into_split();
                    writer = Some(w);
                    let tx = net_tx.clone();
                    reader = Some(tokio::spawn(async move {
                        let mut buf = vec![0u8; 64 * 1024];
                        loop {
                            match r.read(&mut buf).await {
                                Ok(n) if n > 0 => {
                                    if tx.send(Net::Bytes { gen: g, data: buf[..n].to_vec() }).is_err() {
                                        return;
                                    }
                                }
                                _ => {
                                    let _ = tx.send(Net::Closed { gen: g });
                                    return;
                                }
                            }
                        }
                    }));
                    client.handle_connected(wall_clock());
                }
                Some(Net::ConnectFailed { gen: g }) if g == gen => client.handle_connect_failed(wall_clock()),
                Some(Net::Bytes { gen: g, data }) if g == gen => client.handle_bytes(&data, wall_clock()),
                Some(Net::Closed { gen: g }) if g == gen => {
                    writer = None;
                    reader = None;
                    client.handle_closed(wall_clock());
                }
                Some(_) => {}
            },
            _ = tokio::time::sleep(sleep) => client.handle_timeout(wall_clock()),
        }
    }
}
