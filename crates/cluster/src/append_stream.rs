//! Pipelined AppendEntries over TCP: openraft's `stream_append`.
//!
//! openraft replicates to a follower through a stream of AppendEntries requests. Its default
//! transport (`stream_append_sequential`) sends one request, waits for its answer, then sends
//! the next, so the entry-less request that carries a new commit index to a follower holds up
//! the next order's entries for a whole follower round trip. Here the leader writes each request
//! as soon as the stream yields it, with up to [`PIPELINE_DEPTH`] unanswered, and a reader
//! yields the answers in request order; the follower feeds the requests of the connection into
//! `Raft::stream_append`, which hands them to its core without waiting for earlier answers and
//! answers them in order.
//!
//! Wire format: the same frames as the unary RPCs (`u32` big-endian length, `crate::wire`). The
//! leader's first `Request::StreamAppend` turns a connection into a stream connection for the
//! rest of its life; every later frame from the leader is a `Request::StreamAppend`, and the
//! follower answers each with one `Response::StreamAppend` (or `Response::Error` once, when its
//! raft core has stopped), in order. TCP keeps the order, so no sequence numbers are needed.
//!
//! A stream ends cleanly when openraft's input ends and every request has been answered; the
//! connection is then kept for the next stream (the follower's `Raft::stream_append` is still
//! open on it and simply receives the next stream's requests). On any error (a rejected append,
//! a timeout, a broken or isolated connection, a malformed frame) the stream yields that error
//! and ends, and the connection is dropped: answers to requests already sent are never read by a
//! later stream. openraft then starts a new stream (after its backoff). The follower closes its
//! side after answering with a rejection (`Conflict`, `HigherVote`).
//!
//! Commit notices: after each commit openraft yields an entry-less request carrying the new
//! commit index. The leader holds such a request back for up to `commit_notice_hold`; if the
//! next request (same vote, same `prev_log_id`, a commit index at least as new) comes meanwhile,
//! only that one is sent, and its success answers the held notice too. See `docs/cluster.md`.

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use futures_util::{Stream, StreamExt};
use openraft::errors::{NetworkError, RPCError, Unreachable};
use openraft::raft::{AppendEntriesRequest, StreamAppendResult};
use openraft::Raft;
use tokio::io::{AsyncRead, AsyncWrite, BufReader, ReadBuf};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;
use tokio::time::{Instant, Sleep};

use crate::net::{
    encode_frame, read_message, write_message, Faults, Request, Response, VoteGate,
    MESSAGE_BYTES_MAX,
};
use crate::sm_store::SmStore;
use crate::stages::{mark, Stage};
use crate::types::{LogId, C};
use crate::StateMachine;

/// The most AppendEntries requests a leader keeps unanswered on one stream (openraft's follower
/// side buffers 64).
pub(crate) const PIPELINE_DEPTH: usize = 64;

type StreamItem = Result<StreamAppendResult<C>, RPCError<C>>;

fn network_error(message: String) -> RPCError<C> {
    RPCError::Network(NetworkError::from_string(message))
}

fn unreachable_error(message: String) -> RPCError<C> {
    RPCError::Unreachable(Unreachable::from_string(message))
}

/// One request written and not yet answered.
struct Sent {
    /// When it was handed to the connection (its answer's deadline counts from here).
    at: Instant,
    /// Entry-less requests it replaced (see [`AppendPipeline::notice_hold`]), each with its
    /// `prev_log_id`: its answer, when a success, answers them first.
    replaced: Vec<Option<LogId>>,
}

/// The leader's side of one stream: writes the requests `input` yields without waiting for
/// answers and yields the answers in order. See the module documentation.
pub(crate) struct AppendPipeline<'s, S> {
    /// The connection, `None` once the stream has ended.
    conn: Option<TcpStream>,
    /// Where the connection goes back after a clean end, for the next stream.
    slot: &'s mut Option<TcpStream>,
    input: S,
    input_done: bool,
    /// Frames being written and how much of them is written.
    out: Vec<u8>,
    out_pos: usize,
    /// Bytes read and not yet decoded.
    inbuf: Vec<u8>,
    /// Unanswered requests, oldest first.
    inflight: VecDeque<Sent>,
    /// Answers decoded and not yet yielded (a reply that also answers replaced requests).
    ready: VecDeque<StreamAppendResult<C>>,
    /// How long the oldest unanswered request may wait for its answer.
    timeout: Duration,
    deadline: Pin<Box<Sleep>>,
    /// Held before each request is written (the witness linger; zero: none).
    linger: Duration,
    hold: Option<Pin<Box<Sleep>>>,
    /// How long an entry-less request (openraft's commit notice) is held back in case the next
    /// request follows (`JournalConfig::commit_notice_hold`; zero: never held).
    notice_hold: Duration,
    /// The entry-less request held back, with the entry-less requests it replaced.
    held: Option<(AppendEntriesRequest<C>, Vec<Option<LogId>>)>,
    held_until: Pin<Box<Sleep>>,
    faults: Arc<Faults>,
    peer: String,
}

/// How the leader sends on one stream.
#[derive(Clone, Copy, Debug)]
pub(crate) struct PipelineTiming {
    /// How long the oldest unanswered request may wait for its answer.
    pub(crate) timeout: Duration,
    /// The witness linger (zero: none).
    pub(crate) linger: Duration,
    /// `JournalConfig::commit_notice_hold`.
    pub(crate) notice_hold: Duration,
}

impl<'s, S> AppendPipeline<'s, S>
where
    S: Stream<Item = AppendEntriesRequest<C>> + Unpin,
{
    pub(crate) fn new(
        conn: TcpStream,
        slot: &'s mut Option<TcpStream>,
        input: S,
        timing: PipelineTiming,
        faults: Arc<Faults>,
        peer: String,
    ) -> Self {
        AppendPipeline {
            conn: Some(conn),
            slot,
            input,
            input_done: false,
            out: Vec::new(),
            out_pos: 0,
            inbuf: Vec::new(),
            inflight: VecDeque::new(),
            ready: VecDeque::new(),
            timeout: timing.timeout + timing.linger,
            deadline: Box::pin(tokio::time::sleep(timing.timeout)),
            linger: timing.linger,
            hold: None,
            notice_hold: timing.notice_hold,
            held: None,
            held_until: Box::pin(tokio::time::sleep(Duration::ZERO)),
            faults,
            peer,
        }
    }

    /// End the stream with `error`; the connection is dropped.
    fn fail(&mut self, error: RPCError<C>) -> Poll<Option<StreamItem>> {
        self.conn = None;
        self.ready.clear();
        Poll::Ready(Some(Err(error)))
    }

    /// Queue `request` for writing; it answers the entry-less requests in `replaced` too.
    fn send(
        &mut self,
        request: AppendEntriesRequest<C>,
        replaced: Vec<Option<LogId>>,
    ) -> Result<(), RPCError<C>> {
        encode_frame(&mut self.out, &Request::StreamAppend(request))
            .map_err(|e| network_error(format!("encode append: {e}")))?;
        let now = Instant::now();
        if self.inflight.is_empty() {
            // The answer clock starts with the oldest unanswered request.
            self.deadline.as_mut().reset(now + self.timeout);
        }
        self.inflight.push_back(Sent { at: now, replaced });
        if !self.linger.is_zero() && self.hold.is_none() {
            self.hold = Some(Box::pin(tokio::time::sleep(self.linger)));
        }
        Ok(())
    }

    /// Take `request` from openraft: hold it back if it only carries a commit index (and a
    /// later request may carry it instead), else queue it, in place of a held request that it
    /// makes redundant (same vote, same `prev_log_id`, a commit index at least as new).
    fn take(&mut self, request: AppendEntriesRequest<C>) -> Result<(), RPCError<C>> {
        let mut replaced = Vec::new();
        if let Some((held, held_replaced)) = self.held.take() {
            if held.vote == request.vote
                && held.prev_log_id == request.prev_log_id
                && held.leader_commit <= request.leader_commit
            {
                replaced = held_replaced;
                replaced.push(held.prev_log_id);
            } else {
                self.send(held, held_replaced)?;
            }
        }
        if request.entries.is_empty() && !self.notice_hold.is_zero() {
            if replaced.is_empty() {
                // The hold counts from the first request of a chain of replacements.
                self.held_until
                    .as_mut()
                    .reset(Instant::now() + self.notice_hold);
            }
            self.held = Some((request, replaced));
            return Ok(());
        }
        self.send(request, replaced)
    }

    /// Write what is pending and take the next requests from `input` while the pipeline has
    /// room. `Err` ends the stream.
    fn poll_send(&mut self, cx: &mut Context<'_>) -> Result<(), RPCError<C>> {
        loop {
            if self.out_pos < self.out.len() {
                if let Some(hold) = self.hold.as_mut() {
                    if hold.as_mut().poll(cx).is_pending() {
                        return Ok(());
                    }
                    self.hold = None;
                }
                let Some(conn) = self.conn.as_mut() else {
                    return Ok(());
                };
                mark(Stage::AppendWriteStart);
                match Pin::new(conn).poll_write(cx, &self.out[self.out_pos..]) {
                    Poll::Ready(Ok(0)) => {
                        return Err(network_error(format!(
                            "send to {}: connection closed",
                            self.peer
                        )))
                    }
                    Poll::Ready(Ok(n)) => {
                        mark(Stage::AppendWritten);
                        self.out_pos += n;
                        continue;
                    }
                    Poll::Ready(Err(e)) => {
                        return Err(network_error(format!("send to {}: {e}", self.peer)))
                    }
                    Poll::Pending => return Ok(()),
                }
            }
            self.out.clear();
            self.out_pos = 0;
            if self.held.is_some()
                && (self.input_done || self.held_until.as_mut().poll(cx).is_ready())
            {
                // No request came to carry the commit index in time: send the notice itself.
                if let Some((held, replaced)) = self.held.take() {
                    self.send(held, replaced)?;
                }
                continue;
            }
            if self.input_done || self.inflight.len() >= PIPELINE_DEPTH {
                return Ok(());
            }
            match Pin::new(&mut self.input).poll_next(cx) {
                Poll::Ready(Some(request)) => {
                    if self.faults.is_isolated() {
                        return Err(unreachable_error("this node is isolated".into()));
                    }
                    self.take(request)?;
                }
                Poll::Ready(None) => self.input_done = true,
                Poll::Pending => return Ok(()),
            }
        }
    }

    /// Decode the next complete answer in `inbuf`, if there is one.
    fn take_answer(&mut self) -> Result<Option<Response>, RPCError<C>> {
        if self.inbuf.len() < 4 {
            return Ok(None);
        }
        let len = u32::from_be_bytes([self.inbuf[0], self.inbuf[1], self.inbuf[2], self.inbuf[3]])
            as usize;
        if len > MESSAGE_BYTES_MAX {
            return Err(network_error(format!(
                "receive from {}: message of {len} bytes is too large",
                self.peer
            )));
        }
        if self.inbuf.len() < 4 + len {
            return Ok(None);
        }
        let decoded = crate::wire::decode::<Response>(&self.inbuf[4..4 + len]);
        self.inbuf.drain(..4 + len);
        decoded
            .map(Some)
            .map_err(|e| network_error(format!("receive from {}: {e}", self.peer)))
    }

    /// The next answer, in request order; `Err` ends the stream.
    fn poll_answer(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Result<StreamAppendResult<C>, RPCError<C>>> {
        loop {
            if let Some(answer) = self.take_answer()? {
                mark(Stage::AnswerRead);
                let Some(sent) = self.inflight.pop_front() else {
                    return Poll::Ready(Err(network_error(format!(
                        "receive from {}: an answer to no request",
                        self.peer
                    ))));
                };
                if self.faults.is_isolated() {
                    return Poll::Ready(Err(unreachable_error("this node is isolated".into())));
                }
                if let Some(oldest) = self.inflight.front() {
                    let deadline = oldest.at.max(Instant::now()) + self.timeout;
                    self.deadline.as_mut().reset(deadline);
                }
                let result = match answer {
                    Response::StreamAppend(result) => result,
                    Response::Error(e) => {
                        return Poll::Ready(Err(network_error(format!("node {}: {e}", self.peer))))
                    }
                    _ => {
                        return Poll::Ready(Err(network_error(format!(
                            "receive from {}: unexpected response to append",
                            self.peer
                        ))))
                    }
                };
                if result.is_ok() {
                    // The follower accepted a request with the same `prev_log_id` as each
                    // entry-less request it replaced: each of those would have succeeded.
                    for prev in sent.replaced {
                        self.ready.push_back(Ok(prev));
                    }
                }
                // A rejection answers the first replaced request the same way, and ends the
                // stream.
                self.ready.push_back(result);
                return Poll::Ready(Ok(self.ready.pop_front().expect("just pushed")));
            }
            if self.inflight.is_empty() {
                return Poll::Pending;
            }
            let Some(conn) = self.conn.as_mut() else {
                return Poll::Pending;
            };
            let mut chunk = [0u8; 16 << 10];
            let mut buf = ReadBuf::new(&mut chunk);
            match Pin::new(conn).poll_read(cx, &mut buf) {
                Poll::Ready(Ok(())) if buf.filled().is_empty() => {
                    return Poll::Ready(Err(network_error(format!(
                        "receive from {}: connection closed",
                        self.peer
                    ))))
                }
                Poll::Ready(Ok(())) => self.inbuf.extend_from_slice(buf.filled()),
                Poll::Ready(Err(e)) => {
                    return Poll::Ready(Err(network_error(format!(
                        "receive from {}: {e}",
                        self.peer
                    ))))
                }
                Poll::Pending => return Poll::Pending,
            }
        }
    }

    /// Yield `result`; a rejection ends the stream (the follower closes its side after it).
    fn yield_result(&mut self, result: StreamAppendResult<C>) -> Poll<Option<StreamItem>> {
        if result.is_err() {
            self.conn = None;
            self.ready.clear();
        }
        Poll::Ready(Some(Ok(result)))
    }
}

impl<S> Stream for AppendPipeline<'_, S>
where
    S: Stream<Item = AppendEntriesRequest<C>> + Unpin,
{
    type Item = StreamItem;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<StreamItem>> {
        let this = self.get_mut();
        if let Some(result) = this.ready.pop_front() {
            return this.yield_result(result);
        }
        if this.conn.is_none() {
            return Poll::Ready(None);
        }
        if let Err(e) = this.poll_send(cx) {
            return this.fail(e);
        }
        match this.poll_answer(cx) {
            Poll::Ready(Ok(result)) => return this.yield_result(result),
            Poll::Ready(Err(e)) => return this.fail(e),
            Poll::Pending => {}
        }
        if this.input_done
            && this.held.is_none()
            && this.inflight.is_empty()
            && this.out_pos >= this.out.len()
        {
            // A clean end: keep the connection for the next stream.
            *this.slot = this.conn.take();
            return Poll::Ready(None);
        }
        if !this.inflight.is_empty() && this.deadline.as_mut().poll(cx).is_ready() {
            let (peer, timeout) = (this.peer.clone(), this.timeout);
            return this.fail(network_error(format!(
                "append to {peer}: no answer within {timeout:?}"
            )));
        }
        Poll::Pending
    }
}

/// Serve a stream connection whose first request is `first` (see the module documentation):
/// feed its requests into `raft.stream_append` and write the answers back in order.
pub(crate) async fn serve_stream<S: StateMachine>(
    reader: BufReader<OwnedReadHalf>,
    mut writer: OwnedWriteHalf,
    first: AppendEntriesRequest<C>,
    raft: Raft<C, SmStore<S>>,
    faults: Arc<Faults>,
    gate: Arc<VoteGate>,
) {
    let input_faults = faults.clone();
    let input = futures_util::stream::unfold((reader, Some(first)), move |(mut reader, first)| {
        let faults = input_faults.clone();
        let gate = gate.clone();
        async move {
            let request = match first {
                Some(request) => request,
                None => match read_message::<Request, _>(&mut reader).await {
                    Ok(Request::StreamAppend(request)) => {
                        mark(Stage::AppendRead);
                        request
                    }
                    Ok(_) => {
                        tracing::warn!(
                            "raft stream connection: a request that is not an append; closing"
                        );
                        return None;
                    }
                    Err(_) => return None,
                },
            };
            if faults.is_isolated() {
                return None;
            }
            gate.on_append(
                request.vote.leader_id.term,
                request.leader_commit.map(|l| l.index),
            );
            Some((request, (reader, None)))
        }
    });
    let mut answers = std::pin::pin!(raft.stream_append(input));
    while let Some(answer) = answers.next().await {
        if faults.is_isolated() {
            // A partition: drop the connection without answering.
            return;
        }
        let (response, last) = match answer {
            Ok(Ok(matching)) => (Response::StreamAppend(Ok(matching)), false),
            Ok(Err(rejected)) => (Response::StreamAppend(Err(rejected)), true),
            Err(fatal) => (Response::Error(fatal.to_string()), true),
        };
        mark(Stage::AnswerWriteStart);
        let written = write_message(&mut writer, &response).await;
        mark(Stage::AnswerWritten);
        if written.is_err() || last {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::sync::Arc;
    use std::time::Duration;

    use futures_util::StreamExt;
    use openraft::network::{RPCOption, RaftNetworkFactory};
    use openraft::raft::{AppendEntriesRequest, StreamAppendError};
    use openraft::testing::log_id;
    use openraft::{BasicNode, RaftNetworkV2};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::{TcpListener, TcpStream};

    use crate::net::{
        read_message, write_message, Faults, NetworkFactory, PeerClient, Request, Response,
    };
    use crate::types::{Vote, C};

    /// Every wait in these tests is bounded by this.
    const BOUND: Duration = Duration::from_secs(10);

    fn request(i: u64) -> AppendEntriesRequest<C> {
        AppendEntriesRequest {
            vote: Vote::new_committed(1, 1),
            prev_log_id: Some(log_id::<C>(1, 1, i)),
            leader_commit: None,
            entries: vec![],
        }
    }

    /// A client to a fake follower on 127.0.0.1 port 0; `floor` bounds the wait for an answer.
    async fn client(floor: Duration) -> (PeerClient, TcpListener, Arc<Faults>) {
        client_holding(floor, Duration::ZERO).await
    }

    async fn client_holding(
        floor: Duration,
        notice_hold: Duration,
    ) -> (PeerClient, TcpListener, Arc<Faults>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let faults = Arc::new(Faults::default());
        let mut factory = NetworkFactory {
            faults: faults.clone(),
            addresses: Arc::new(BTreeMap::from([(2, listener.local_addr().unwrap())])),
            self_id: 1,
            append_timeout_floor: floor,
            witness_linger: Duration::ZERO,
            pipeline: true,
            notice_hold,
            sim: None,
        };
        let client = factory.new_client(2, &BasicNode::default()).await;
        (client, listener, faults)
    }

    async fn read_append(conn: &mut TcpStream) -> AppendEntriesRequest<C> {
        match tokio::time::timeout(BOUND, read_message::<Request, _>(conn))
            .await
            .expect("a request within the bound")
            .expect("a frame")
        {
            Request::StreamAppend(r) => r,
            other => panic!("expected a stream append, got {other:?}"),
        }
    }

    fn option() -> RPCOption {
        RPCOption::new(Duration::from_millis(50))
    }

    /// Every answer of one `stream_append`, which must end within [`BOUND`].
    async fn collect_answers<S>(
        client: &mut PeerClient,
        input: S,
    ) -> Vec<Result<openraft::raft::StreamAppendResult<C>, openraft::errors::RPCError<C>>>
    where
        S: futures_util::Stream<Item = AppendEntriesRequest<C>> + Send + Unpin + 'static,
    {
        tokio::time::timeout(BOUND, async {
            let out = client.stream_append(input, option()).await.unwrap();
            out.collect::<Vec<_>>().await
        })
        .await
        .expect("the stream ends within the bound")
    }

    /// Goal: the leader sends the next AppendEntries without waiting for the previous answer,
    /// the answers come out in request order, and after a clean end the next stream reuses the
    /// connection.
    #[tokio::test]
    async fn requests_are_pipelined_and_answered_in_order() {
        let (mut client, listener, _faults) = client(Duration::from_secs(5)).await;
        let follower = tokio::spawn(async move {
            let (mut conn, _) = listener.accept().await.unwrap();
            // Three requests arrive before any is answered: a sequential sender would wait
            // for the first answer forever.
            let mut got = Vec::new();
            for _ in 0..3 {
                got.push(read_append(&mut conn).await.prev_log_id.unwrap().index);
            }
            for i in &got {
                let answer = Response::StreamAppend(Ok(Some(log_id::<C>(1, 1, *i))));
                write_message(&mut conn, &answer).await.unwrap();
            }
            // The second stream comes on the same connection.
            let r = read_append(&mut conn).await;
            let answer = Response::StreamAppend(Ok(r.prev_log_id));
            write_message(&mut conn, &answer).await.unwrap();
            got
        });
        let input = futures_util::stream::iter((1..=3).map(request));
        let answers = collect_answers(&mut client, input).await;
        let indexes: Vec<u64> = answers
            .into_iter()
            .map(|a| a.unwrap().unwrap().unwrap().index)
            .collect();
        assert_eq!(indexes, vec![1, 2, 3]);
        assert!(client.has_append_connection(), "kept after a clean end");

        let input = futures_util::stream::iter([request(7)]);
        let answers = collect_answers(&mut client, input).await;
        assert_eq!(answers.len(), 1);
        assert_eq!(
            answers[0]
                .as_ref()
                .unwrap()
                .as_ref()
                .unwrap()
                .unwrap()
                .index,
            7
        );
        assert_eq!(follower.await.unwrap(), vec![1, 2, 3]);
    }

    /// Goal: a rejection is passed on and ends the stream, and its connection is not reused
    /// (later answers on it would belong to the old stream).
    #[tokio::test]
    async fn a_rejection_ends_the_stream_and_drops_the_connection() {
        let (mut client, listener, _faults) = client(Duration::from_secs(5)).await;
        tokio::spawn(async move {
            let (mut conn, _) = listener.accept().await.unwrap();
            let r = read_append(&mut conn).await;
            let conflict = StreamAppendError::Conflict(r.prev_log_id.unwrap());
            write_message(&mut conn, &Response::StreamAppend(Err(conflict)))
                .await
                .unwrap();
            // Keep the connection open: the client must end the stream by itself.
            let _ = tokio::time::timeout(BOUND, conn.read_u8()).await;
        });
        let input = futures_util::stream::iter((1..=2).map(request));
        let answers = collect_answers(&mut client, input).await;
        assert_eq!(answers.len(), 1);
        assert!(matches!(
            answers[0],
            Ok(Err(StreamAppendError::Conflict(_)))
        ));
        assert!(!client.has_append_connection());
    }

    /// Goal: a follower that stops answering makes the stream fail after the answer timeout,
    /// instead of hanging.
    #[tokio::test]
    async fn a_silent_follower_fails_the_stream_after_the_timeout() {
        let (mut client, listener, _faults) = client(Duration::from_millis(200)).await;
        tokio::spawn(async move {
            let (mut conn, _) = listener.accept().await.unwrap();
            let _ = read_append(&mut conn).await;
            let _ = tokio::time::timeout(BOUND, conn.read_u8()).await;
        });
        // An input that never ends: only the missing answer can end the stream.
        let input = futures_util::stream::iter([request(1)]).chain(futures_util::stream::pending());
        let answers = collect_answers(&mut client, Box::pin(input)).await;
        assert_eq!(answers.len(), 1);
        let error = answers[0].as_ref().unwrap_err().to_string();
        assert!(error.contains("no answer within"), "{error}");
        assert!(!client.has_append_connection());
    }

    /// Goal: malformed answers (bad JSON, an oversized length, an answer to no request, an
    /// early close) end the stream with an error; none panics.
    #[tokio::test]
    async fn malformed_answers_end_the_stream_with_an_error() {
        let cases: Vec<(&str, Vec<u8>)> = vec![
            ("bad json", [&5u32.to_be_bytes()[..], b"{nope"].concat()),
            ("oversized", u32::MAX.to_be_bytes().to_vec()),
            ("closed", Vec::new()),
        ];
        for (what, bytes) in cases {
            let (mut client, listener, _faults) = client(Duration::from_secs(5)).await;
            tokio::spawn(async move {
                let (mut conn, _) = listener.accept().await.unwrap();
                let _ = read_append(&mut conn).await;
                conn.write_all(&bytes).await.unwrap();
                // Dropped here: "closed" sends nothing and closes.
            });
            let input = futures_util::stream::iter([request(1)]);
            let answers = collect_answers(&mut client, input).await;
            assert_eq!(answers.len(), 1, "{what}");
            assert!(answers[0].is_err(), "{what}: {:?}", answers[0]);
            assert!(!client.has_append_connection(), "{what}");
        }
        // Two answers to one request.
        let (mut client, listener, _faults) = client(Duration::from_secs(5)).await;
        tokio::spawn(async move {
            let (mut conn, _) = listener.accept().await.unwrap();
            let r = read_append(&mut conn).await;
            for _ in 0..2 {
                let answer = Response::StreamAppend(Ok(r.prev_log_id));
                write_message(&mut conn, &answer).await.unwrap();
            }
            let _ = tokio::time::timeout(BOUND, conn.read_u8()).await;
        });
        let input = futures_util::stream::iter([request(1)]).chain(futures_util::stream::pending());
        let answers = collect_answers(&mut client, Box::pin(input)).await;
        assert_eq!(answers.len(), 2);
        assert!(answers[0].is_ok());
        let error = answers[1].as_ref().unwrap_err().to_string();
        assert!(error.contains("an answer to no request"), "{error}");
    }

    fn with_entry(mut r: AppendEntriesRequest<C>, index: u64) -> AppendEntriesRequest<C> {
        use openraft::entry::RaftEntry;
        r.entries = vec![crate::types::Entry::new_blank(log_id::<C>(1, 1, index))];
        r
    }

    /// Goal: a commit notice (no entries) followed, within the hold, by a request with the
    /// same `prev_log_id` is not sent: the follower receives only the later request, which
    /// carries the newer commit index, and its success answers both, in order. A notice that
    /// nothing follows is sent when the hold runs out.
    #[tokio::test]
    async fn a_commit_notice_rides_on_the_next_request() {
        let (mut client, listener, _faults) =
            client_holding(Duration::from_secs(5), Duration::from_millis(500)).await;
        let follower = tokio::spawn(async move {
            let (mut conn, _) = listener.accept().await.unwrap();
            let mut got = Vec::new();
            for _ in 0..2 {
                let r = read_append(&mut conn).await;
                let last = r.entries.last().map(|e| e.log_id).or(r.prev_log_id);
                got.push((
                    r.prev_log_id.unwrap().index,
                    r.entries.len(),
                    r.leader_commit.map(|c| c.index),
                ));
                write_message(&mut conn, &Response::StreamAppend(Ok(last)))
                    .await
                    .unwrap();
            }
            got
        });
        let mut notice = request(4);
        notice.leader_commit = Some(log_id::<C>(1, 1, 4));
        let mut next = with_entry(request(4), 5);
        next.leader_commit = Some(log_id::<C>(1, 1, 4));
        let mut last_notice = request(5);
        last_notice.leader_commit = Some(log_id::<C>(1, 1, 5));
        // The last notice comes after a pause of its own: nothing follows it, so the hold
        // (0.5 s) sends it; the input stays open meanwhile.
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        tx.send(notice).unwrap();
        tx.send(next).unwrap();
        tx.send(last_notice).unwrap();
        let input = Box::pin(futures_util::stream::unfold(rx, |mut rx| async move {
            rx.recv().await.map(|r| (r, rx))
        }));
        let started = tokio::time::Instant::now();
        let answers: Vec<_> = tokio::time::timeout(BOUND, async {
            let mut out = client.stream_append(input, option()).await.unwrap();
            let mut answers = Vec::new();
            for _ in 0..3 {
                answers.push(out.next().await.unwrap().unwrap().unwrap().unwrap().index);
            }
            drop(tx);
            assert!(
                out.next().await.is_none(),
                "a clean end after the input ends"
            );
            answers
        })
        .await
        .expect("the stream ends within the bound");
        assert_eq!(answers, vec![4, 5, 5], "notice, entry, last notice");
        assert!(
            started.elapsed() >= Duration::from_millis(500),
            "the last notice was held"
        );
        assert_eq!(
            follower.await.unwrap(),
            vec![(4, 1, Some(4)), (5, 0, Some(5))],
            "the first notice was not sent"
        );
    }

    /// Goal: an isolated node sends nothing on a stream.
    #[tokio::test]
    async fn an_isolated_node_sends_no_append() {
        let (mut client, _listener, faults) = client(Duration::from_secs(5)).await;
        faults.set_isolated(true);
        let input = futures_util::stream::iter([request(1)]);
        let result = tokio::time::timeout(BOUND, client.stream_append(input, option()))
            .await
            .expect("within the bound");
        assert!(result.is_err());
    }
}
