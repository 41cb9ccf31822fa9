//! Raft RPCs over TCP, each message a 4-byte big-endian length followed by its binary encoding
//! (`crate::wire`, postcard): votes,
//! snapshots and leader transfers one request at a time per connection; AppendEntries pipelined
//! on a stream connection of its own (`append_stream`). Or, for the deterministic simulation,
//! over the in-process [`SimNetwork`] (the same requests, handed over as values, one at a time).
//!
//! A [`Faults`] switch per node cuts it off from its peers (both directions) for partition
//! tests and drills.

use std::collections::BTreeMap;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures_util::Stream;
use openraft::async_runtime::WatchReceiver;
use openraft::base::{BoxFuture as RaftBoxFuture, BoxStream};
use openraft::errors::{NetworkError, RPCError, ReplicationClosed, StreamingError, Unreachable};
use openraft::network::{stream_append_sequential, RPCOption, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, SnapshotResponse, StreamAppendResult,
    TransferLeaderRequest, TransferLeaderResponse, VoteRequest, VoteResponse,
};
use openraft::{BasicNode, OptionalSend, Raft, RaftNetworkV2};
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};

use crate::append_stream::{serve_stream, AppendPipeline, PipelineTiming};

use crate::sim::{BoxFuture, Endpoint, SimNetwork};
use crate::sm_store::SmStore;
use crate::types::{Snapshot, SnapshotMeta, Vote, C};
use crate::StateMachine;

/// The largest message accepted, so a corrupt length cannot allocate without bound.
pub(crate) const MESSAGE_BYTES_MAX: usize = 256 << 20;

/// Read buffer of an accepted raft connection: a frame usually arrives in one read, and a
/// stream connection's pipelined requests in as few as they came in.
const READ_BUFFER_BYTES: usize = 64 << 10;

#[derive(Debug, Serialize, Deserialize)]
pub(crate) enum Request {
    Append(AppendEntriesRequest<C>),
    Vote(VoteRequest<C>),
    PreVote(VoteRequest<C>),
    Snapshot {
        vote: Vote,
        meta: SnapshotMeta,
        data: Vec<u8>,
    },
    TransferLeader(TransferLeaderRequest<C>),
    /// One AppendEntries of a pipelined stream; the first turns the connection into a stream
    /// connection (`append_stream`).
    StreamAppend(AppendEntriesRequest<C>),
}

#[derive(Debug, Serialize, Deserialize)]
pub(crate) enum Response {
    Append(AppendEntriesResponse<C>),
    Vote(VoteResponse<C>),
    Snapshot(SnapshotResponse<C>),
    TransferLeader(TransferLeaderResponse<C>),
    /// The answer to one `Request::StreamAppend`, in request order.
    StreamAppend(StreamAppendResult<C>),
    Error(String),
}

/// Fault injection for one node: when isolated it neither sends nor answers raft RPCs.
#[derive(Debug, Default)]
pub struct Faults {
    isolated: AtomicBool,
}

impl Faults {
    pub fn set_isolated(&self, isolated: bool) {
        self.isolated.store(isolated, Ordering::SeqCst);
    }
    pub fn is_isolated(&self) -> bool {
        self.isolated.load(Ordering::SeqCst)
    }
}

/// Keeps a node that started with an empty log (a fresh node, or one whose damaged data
/// directory was deleted) from voting in a cluster that already has history until it cannot
/// help elect a candidate missing an entry the cluster had committed when the node rejoined.
/// Without this a wiped node could elect a stale candidate and lose committed commands.
///
/// Every AppendEntries names the leader's term `t` and its commit index `i` (entry `L`); the gate
/// keeps the greatest (`t`, `i`) seen since the start. The node may vote once either
/// * it has committed `i` itself (it holds `L`, and raft's log comparison does the rest), or
/// * the candidate's last log id shows it holds `L`: its last entry is from a term after `t`
///   (a leader of a later term holds every entry committed before its term), or from term `t`
///   at index `i` or later (entries of term `t` come only from the leader of `t`, whose log
///   holds `L`).
///
/// The second rule matters when the node is still catching up as the leader dies (a witness
/// started after the others, a slow disk): a candidate holding everything committed is elected
/// at once, instead of the whole cluster waiting for a node that can no longer catch up.
#[derive(Debug)]
pub(crate) struct VoteGate {
    empty_at_start: bool,
    /// (leader term, leader commit index) of the newest leader heard from since the start.
    catch_up_to: std::sync::Mutex<Option<(u64, u64)>>,
    caught_up: AtomicBool,
}

impl VoteGate {
    pub(crate) fn new(empty_at_start: bool) -> VoteGate {
        VoteGate {
            empty_at_start,
            catch_up_to: std::sync::Mutex::new(None),
            caught_up: AtomicBool::new(!empty_at_start),
        }
    }

    pub(crate) fn on_append(&self, leader_term: u64, leader_commit: Option<u64>) {
        if self.empty_at_start {
            // Keep the newest leader's word: a later leader's term and commit only ask more.
            let seen = Some((leader_term, leader_commit.unwrap_or(0)));
            let mut target = self.catch_up_to.lock().expect("vote gate mutex");
            if *target < seen {
                *target = seen;
            }
        }
    }

    /// May this node vote for a candidate whose last log id is `candidate_last` (term, index)?
    fn may_vote(&self, candidate_last: Option<(u64, u64)>, local_committed: u64) -> bool {
        if self.caught_up.load(Ordering::SeqCst) || candidate_last.is_none_or(|(_, i)| i == 0) {
            // A candidate with an empty history is forming a fresh cluster.
            return true;
        }
        let target = *self.catch_up_to.lock().expect("vote gate mutex");
        let Some((term, index)) = target else {
            // No leader seen since the start: nothing tells what was committed.
            return false;
        };
        if local_committed >= index {
            tracing::info!(index, "journal: rejoined node caught up; it may vote again");
            self.caught_up.store(true, Ordering::SeqCst);
            return true;
        }
        // Still catching up: vote only for a candidate that provably holds entry `index`.
        candidate_last.is_some_and(|(t, i)| t > term || (t == term && i >= index))
    }
}

pub(crate) async fn write_message<T: Serialize, W: AsyncWrite + Unpin>(
    stream: &mut W,
    message: &T,
) -> std::io::Result<()> {
    let mut framed = Vec::new();
    encode_frame(&mut framed, message).map_err(std::io::Error::other)?;
    stream.write_all(&framed).await
}

pub(crate) async fn read_message<T: for<'de> Deserialize<'de>, R: AsyncRead + Unpin>(
    stream: &mut R,
) -> std::io::Result<T> {
    let mut len = [0u8; 4];
    stream.read_exact(&mut len).await?;
    let len = u32::from_be_bytes(len) as usize;
    if len > MESSAGE_BYTES_MAX {
        return Err(std::io::Error::other(format!(
            "message of {len} bytes is too large"
        )));
    }
    let mut body = vec![0u8; len];
    stream.read_exact(&mut body).await?;
    crate::wire::decode(&body).map_err(std::io::Error::other)
}

/// Append one frame (`u32` big-endian length, then the message's binary encoding) to `out`.
pub(crate) fn encode_frame<T: Serialize>(out: &mut Vec<u8>, message: &T) -> Result<(), String> {
    let start = out.len();
    out.extend_from_slice(&[0; 4]);
    crate::wire::encode_into(out, message)?;
    let len = (out.len() - start - 4) as u32;
    out[start..start + 4].copy_from_slice(&len.to_be_bytes());
    Ok(())
}

/// Accept raft RPCs for `raft` until the task is aborted.
pub(crate) async fn serve<S: StateMachine>(
    listener: TcpListener,
    raft: Raft<C, SmStore<S>>,
    faults: Arc<Faults>,
    gate: Arc<VoteGate>,
) {
    // Connection tasks live in this set, so aborting the server (node shutdown) also closes
    // every accepted connection; peers then reconnect to whatever listens next.
    let mut connections = tokio::task::JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let Ok((stream, _)) = accepted else { continue };
                let _ = stream.set_nodelay(true);
                let raft = raft.clone();
                let faults = faults.clone();
                let gate = gate.clone();
                let connection = serve_connection(stream, raft, faults, gate);
                connections.spawn(connection);
            }
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
}

async fn serve_connection<S: StateMachine>(
    stream: TcpStream,
    raft: Raft<C, SmStore<S>>,
    faults: Arc<Faults>,
    gate: Arc<VoteGate>,
) {
    let (reader, mut writer) = stream.into_split();
    // A frame usually arrives in one read instead of two (length, then body).
    let mut reader = BufReader::with_capacity(READ_BUFFER_BYTES, reader);
    while let Ok(request) = read_message::<Request, _>(&mut reader).await {
        if faults.is_isolated() {
            // A partition: drop the connection without answering.
            return;
        }
        if let Request::StreamAppend(first) = request {
            // The reader may already hold the stream's next requests.
            serve_stream(reader, writer, first, raft, faults, gate).await;
            return;
        }
        let response = handle(&raft, &gate, request).await;
        if write_message(&mut writer, &response).await.is_err() {
            return;
        }
    }
}

/// A node's RPC handler on the simulated network.
pub(crate) struct SimEndpoint<S: StateMachine> {
    pub(crate) raft: Raft<C, SmStore<S>>,
    pub(crate) faults: Arc<Faults>,
    pub(crate) gate: Arc<VoteGate>,
}

impl<S: StateMachine> Endpoint for SimEndpoint<S> {
    fn handle(&self, request: Request) -> BoxFuture<Option<Response>> {
        if self.faults.is_isolated() {
            return Box::pin(async { None });
        }
        let raft = self.raft.clone();
        let gate = self.gate.clone();
        Box::pin(async move { Some(handle(&raft, &gate, request).await) })
    }
}

async fn handle<S: StateMachine>(
    raft: &Raft<C, SmStore<S>>,
    gate: &VoteGate,
    request: Request,
) -> Response {
    let error = |e: &dyn std::fmt::Display| Response::Error(e.to_string());
    if let Request::Append(rpc) = &request {
        gate.on_append(rpc.vote.leader_id.term, rpc.leader_commit.map(|l| l.index));
    }
    if let Request::Vote(rpc) | Request::PreVote(rpc) = &request {
        let candidate_last = rpc.last_log_id.map(|l| (l.leader_id.term, l.index));
        let local_committed = raft
            .metrics()
            .borrow_watched()
            .local_committed
            .map_or(0, |l| l.index);
        if !gate.may_vote(candidate_last, local_committed) {
            return Response::Error("rejoining node has not caught up; it does not vote".into());
        }
    }
    match request {
        Request::StreamAppend(_) => {
            Response::Error("an append stream needs its own connection".into())
        }
        Request::Append(rpc) => match raft.append_entries(rpc).await {
            Ok(r) => Response::Append(r),
            Err(e) => error(&e),
        },
        Request::Vote(rpc) => match raft.vote(rpc).await {
            Ok(r) => Response::Vote(r),
            Err(e) => error(&e),
        },
        Request::PreVote(rpc) => match raft.pre_vote(rpc).await {
            Ok(r) => Response::Vote(r),
            Err(e) => error(&e),
        },
        Request::Snapshot { vote, meta, data } => {
            let snapshot = Snapshot {
                meta,
                snapshot: data,
            };
            match raft.install_full_snapshot(vote, snapshot).await {
                Ok(r) => Response::Snapshot(r),
                Err(e) => error(&e),
            }
        }
        Request::TransferLeader(rpc) => match raft.handle_transfer_leader(rpc).await {
            Ok(r) => Response::TransferLeader(r),
            Err(e) => error(&e),
        },
    }
}

/// Creates one [`PeerClient`] per replication target.
#[derive(Clone)]
pub(crate) struct NetworkFactory {
    pub(crate) faults: Arc<Faults>,
    pub(crate) addresses: Arc<BTreeMap<u64, SocketAddr>>,
    /// This node's id, and the simulated network if RPCs do not go over TCP.
    pub(crate) self_id: u64,
    /// The shortest time an AppendEntries over TCP may take before it counts as failed. openraft
    /// allows about one heartbeat interval (22.5 ms for the demo's 30 ms), but the follower
    /// writes and fdatasyncs the entries before it answers: on a loaded machine that takes
    /// longer, and an exchange cut short is a dropped connection and a retry that is cut short
    /// again, so replication (and every commit) stalls. A leader need not give up on a follower
    /// sooner than a follower gives up on its leader: the election timeout's minimum.
    pub(crate) append_timeout_floor: Duration,
    /// `JournalConfig::witness_linger`.
    pub(crate) witness_linger: Duration,
    /// `JournalConfig::append_pipeline`.
    pub(crate) pipeline: bool,
    /// `JournalConfig::commit_notice_hold`.
    pub(crate) notice_hold: Duration,
    pub(crate) sim: Option<SimNetwork>,
}

impl RaftNetworkFactory<C> for NetworkFactory {
    type Network = PeerClient;

    async fn new_client(&mut self, target: u64, node: &BasicNode) -> PeerClient {
        let addr = self
            .addresses
            .get(&target)
            .copied()
            .or_else(|| node.addr.parse().ok());
        PeerClient {
            target,
            addr,
            stream: None,
            append_stream: None,
            pipeline: self.pipeline,
            notice_hold: self.notice_hold,
            faults: self.faults.clone(),
            self_id: self.self_id,
            append_timeout_floor: self.append_timeout_floor,
            witness_linger: if target == crate::node_id(crate::NodeRole::Witness) {
                self.witness_linger
            } else {
                Duration::ZERO
            },
            sim: self.sim.clone(),
        }
    }
}

/// A lazily connected client to one peer; reconnects after any error.
pub(crate) struct PeerClient {
    target: u64,
    addr: Option<SocketAddr>,
    stream: Option<TcpStream>,
    /// The pipelined AppendEntries connection, kept between streams that ended cleanly.
    append_stream: Option<TcpStream>,
    /// `JournalConfig::append_pipeline`.
    pipeline: bool,
    /// `JournalConfig::commit_notice_hold`.
    notice_hold: Duration,
    faults: Arc<Faults>,
    self_id: u64,
    append_timeout_floor: Duration,
    /// Held before each AppendEntries to this peer (the witness only; zero for the others).
    witness_linger: Duration,
    sim: Option<SimNetwork>,
}

#[derive(Debug)]
pub(crate) enum CallError {
    Unreachable(String),
    Network(String),
}

impl PeerClient {
    async fn call(&mut self, request: Request, timeout: Duration) -> Result<Response, CallError> {
        if self.faults.is_isolated() {
            self.stream = None;
            return Err(CallError::Unreachable("this node is isolated".into()));
        }
        let result = match &self.sim {
            Some(sim) => sim.call(self.self_id, self.target, request, timeout).await,
            None => self.call_tcp(&request, timeout).await,
        };
        match result? {
            Response::Error(e) => Err(CallError::Network(format!("node {}: {e}", self.target))),
            other => Ok(other),
        }
    }

    async fn call_tcp(
        &mut self,
        request: &Request,
        timeout: Duration,
    ) -> Result<Response, CallError> {
        let addr = self.addr.ok_or_else(|| {
            CallError::Unreachable(format!("no address for node {}", self.target))
        })?;
        // The connection is taken out for the exchange and put back only after a complete
        // request and response. openraft drops an RPC future when its own timeout fires first
        // (the heartbeat worker wraps the call in one); a stream dropped mid-exchange would
        // otherwise stay here with a response still unread, and every later call on it would
        // read the previous call's answer.
        let previous = self.stream.take();
        let exchange = async move {
            let mut stream = match previous {
                Some(stream) => stream,
                None => {
                    let stream = TcpStream::connect(addr)
                        .await
                        .map_err(|e| CallError::Unreachable(format!("connect {addr}: {e}")))?;
                    let _ = stream.set_nodelay(true);
                    stream
                }
            };
            write_message(&mut stream, request)
                .await
                .map_err(|e| CallError::Network(format!("send to {addr}: {e}")))?;
            let response = read_message::<Response, _>(&mut stream)
                .await
                .map_err(|e| CallError::Network(format!("receive from {addr}: {e}")))?;
            Ok((stream, response))
        };
        match tokio::time::timeout(timeout, exchange).await {
            Ok(Ok((stream, response))) => {
                self.stream = Some(stream);
                Ok(response)
            }
            Ok(Err(e)) => Err(e),
            Err(_) => Err(CallError::Network(format!(
                "rpc to {addr} timed out after {timeout:?}"
            ))),
        }
    }
}

fn rpc_error(e: CallError) -> RPCError<C> {
    match e {
        CallError::Unreachable(m) => RPCError::Unreachable(Unreachable::from_string(m)),
        CallError::Network(m) => RPCError::Network(NetworkError::from_string(m)),
    }
}

fn unexpected(what: &str) -> CallError {
    CallError::Network(format!("unexpected response to {what}"))
}

impl PeerClient {
    /// Whether a stream connection is kept for the next stream (tests).
    #[cfg(test)]
    pub(crate) fn has_append_connection(&self) -> bool {
        self.append_stream.is_some()
    }

    /// How long an AppendEntries may wait for its answer: over TCP at least
    /// `append_timeout_floor` (see `NetworkFactory`); the simulation keeps openraft's own timing.
    fn append_timeout(&self, option: &RPCOption) -> Duration {
        if self.sim.is_some() {
            option.soft_ttl()
        } else {
            option.soft_ttl().max(self.append_timeout_floor)
        }
    }

    /// The pipelined stream's connection: the one kept from the last clean stream, or a new one.
    async fn append_connection(&mut self, timeout: Duration) -> Result<TcpStream, RPCError<C>> {
        if self.faults.is_isolated() {
            self.append_stream = None;
            return Err(rpc_error(CallError::Unreachable(
                "this node is isolated".into(),
            )));
        }
        if let Some(stream) = self.append_stream.take() {
            return Ok(stream);
        }
        let addr = self.addr.ok_or_else(|| {
            rpc_error(CallError::Unreachable(format!(
                "no address for node {}",
                self.target
            )))
        })?;
        let stream = match tokio::time::timeout(timeout, TcpStream::connect(addr)).await {
            Ok(Ok(stream)) => stream,
            Ok(Err(e)) => {
                return Err(rpc_error(CallError::Unreachable(format!(
                    "connect {addr}: {e}"
                ))))
            }
            Err(_) => {
                return Err(rpc_error(CallError::Unreachable(format!(
                    "connect {addr}: timed out after {timeout:?}"
                ))))
            }
        };
        let _ = stream.set_nodelay(true);
        Ok(stream)
    }
}

impl RaftNetworkV2<C> for PeerClient {
    type SnapshotData = Vec<u8>;

    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<C>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<C>, RPCError<C>> {
        let timeout = self.append_timeout(&option);
        if self.sim.is_none() && !self.witness_linger.is_zero() {
            tokio::time::sleep(self.witness_linger).await;
        }
        match self.call(Request::Append(rpc), timeout).await {
            Ok(Response::Append(r)) => Ok(r),
            Ok(_) => Err(rpc_error(unexpected("append"))),
            Err(e) => Err(rpc_error(e)),
        }
    }

    /// Over TCP (unless `JournalConfig::append_pipeline` is off): pipelined, see
    /// `append_stream`. On the simulated network: openraft's sequential default (one request,
    /// its answer, the next), so the simulation's seeds keep their runs.
    fn stream_append<'s, S>(
        &'s mut self,
        input: S,
        option: RPCOption,
    ) -> RaftBoxFuture<
        's,
        Result<BoxStream<'s, Result<StreamAppendResult<C>, RPCError<C>>>, RPCError<C>>,
    >
    where
        S: Stream<Item = AppendEntriesRequest<C>> + OptionalSend + Unpin + 'static,
    {
        if self.sim.is_some() || !self.pipeline {
            return stream_append_sequential(self, input, option);
        }
        Box::pin(async move {
            let timeout = self.append_timeout(&option);
            let conn = self.append_connection(timeout).await?;
            let peer = match self.addr {
                Some(addr) => format!("node {} ({addr})", self.target),
                None => format!("node {}", self.target),
            };
            let pipeline = AppendPipeline::new(
                conn,
                &mut self.append_stream,
                input,
                PipelineTiming {
                    timeout,
                    linger: self.witness_linger,
                    notice_hold: self.notice_hold,
                },
                self.faults.clone(),
                peer,
            );
            let stream: BoxStream<'s, _> = Box::pin(pipeline);
            Ok(stream)
        })
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<C>,
        option: RPCOption,
    ) -> Result<VoteResponse<C>, RPCError<C>> {
        match self.call(Request::Vote(rpc), option.soft_ttl()).await {
            Ok(Response::Vote(r)) => Ok(r),
            Ok(_) => Err(rpc_error(unexpected("vote"))),
            Err(e) => Err(rpc_error(e)),
        }
    }

    async fn pre_vote(
        &mut self,
        rpc: VoteRequest<C>,
        option: RPCOption,
    ) -> Result<VoteResponse<C>, RPCError<C>> {
        match self.call(Request::PreVote(rpc), option.soft_ttl()).await {
            Ok(Response::Vote(r)) => Ok(r),
            Ok(_) => Err(rpc_error(unexpected("pre-vote"))),
            Err(e) => Err(rpc_error(e)),
        }
    }

    async fn full_snapshot(
        &mut self,
        vote: Vote,
        snapshot: Snapshot,
        _cancel: impl Future<Output = ReplicationClosed> + OptionalSend + 'static,
        option: RPCOption,
    ) -> Result<SnapshotResponse<C>, StreamingError<C>> {
        let request = Request::Snapshot {
            vote,
            meta: snapshot.meta,
            data: snapshot.snapshot,
        };
        let timeout = option.hard_ttl().max(Duration::from_secs(10));
        match self.call(request, timeout).await {
            Ok(Response::Snapshot(r)) => Ok(r),
            Ok(_) => Err(StreamingError::Network(NetworkError::from_string(
                "unexpected response to snapshot",
            ))),
            Err(CallError::Unreachable(m)) => {
                Err(StreamingError::Unreachable(Unreachable::from_string(m)))
            }
            Err(CallError::Network(m)) => {
                Err(StreamingError::Network(NetworkError::from_string(m)))
            }
        }
    }

    async fn transfer_leader(
        &mut self,
        req: TransferLeaderRequest<C>,
        option: RPCOption,
    ) -> Result<TransferLeaderResponse<C>, RPCError<C>> {
        match self
            .call(Request::TransferLeader(req), option.soft_ttl())
            .await
        {
            Ok(Response::TransferLeader(r)) => Ok(r),
            Ok(_) => Err(rpc_error(unexpected("transfer-leader"))),
            Err(e) => Err(rpc_error(e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::VoteGate;

    #[test]
    fn a_node_with_history_always_votes() {
        let gate = VoteGate::new(false);
        assert!(gate.may_vote(Some((3, 100)), 0));
    }

    #[test]
    fn an_empty_node_votes_to_form_a_fresh_cluster() {
        let gate = VoteGate::new(true);
        assert!(gate.may_vote(None, 0));
        assert!(gate.may_vote(Some((0, 0)), 0));
    }

    /// Goal: a wiped node does not vote for a candidate with history until it has caught up
    /// with the commit index the leader reported when it rejoined.
    #[test]
    fn a_wiped_node_votes_only_after_catching_up() {
        let gate = VoteGate::new(true);
        assert!(!gate.may_vote(Some((5, 50)), 0), "no leader seen yet");
        gate.on_append(5, Some(40));
        gate.on_append(4, Some(60)); // a deposed leader's word does not count
        assert!(
            !gate.may_vote(Some((4, 50)), 39),
            "older term: may lack entry 40"
        );
        assert!(gate.may_vote(Some((4, 50)), 40));
        assert!(
            gate.may_vote(Some((1, 10)), 0),
            "once caught up it stays caught up"
        );
    }

    /// Goal: a node still catching up (the flake of issue 5: a witness at index 1 that first
    /// heard from the term-2 leader when it had committed index 3; the leader died with the
    /// backup at index 24) votes for a candidate that holds every entry the leader had
    /// committed, and for no other.
    #[test]
    fn a_catching_up_node_votes_for_a_candidate_holding_the_commit_it_was_told() {
        let gate = VoteGate::new(true);
        gate.on_append(2, Some(3));
        assert!(
            gate.may_vote(Some((2, 24)), 1),
            "same term, at or past the commit"
        );
        assert!(gate.may_vote(Some((2, 3)), 1));
        assert!(
            !gate.may_vote(Some((2, 2)), 1),
            "same term, short of the commit"
        );
        assert!(
            !gate.may_vote(Some((1, 30)), 1),
            "older term: may lack entry 3"
        );
        assert!(
            gate.may_vote(Some((3, 2)), 1),
            "a later leader holds every earlier commit"
        );
    }
}
