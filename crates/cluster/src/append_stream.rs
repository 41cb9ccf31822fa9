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
//! Wire format: the same frames as the unary RPCs (`u32` big-endian length, serde_json). The
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
    read_message, write_message, Faults, Request, Response, VoteGate, MESSAGE_BYTES_MAX,
};
use crate::sm_store::SmStore;
use crate::types::C;
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

/// The leader's side of one stream: writes the requests `input` yields without waiting for
/// answers and yields the answers in order. See the module documentation.
pub(crate) struct AppendPipeline<'s, S> {
    /// The connection, `None` once the stream has ended.
    conn: Option<TcpStream>,
    /// Where the connection goes back after a clean end, for the next stream.
    slot: &'s mut Option<TcpStream>,
    input: S,
    input_done: bool,
    /// The frame being written and how much of it is written.
    out: Vec<u8>,
    out_pos: usize,
    /// Bytes read and not yet decoded.
    inbuf: Vec<u8>,
    /// When each unanswered request was handed to the connection, oldest first.
    inflight: VecDeque<Instant>,
    /// How long the oldest unanswered request may wait for its answer.
    timeout: Duration,
    deadline: Pin<Box<Sleep>>,
    /// Held before each request is written (the witness linger; zero: none).
    linger: Duration,
    hold: Option<Pin<Box<Sleep>>>,
    faults: Arc<Faults>,
    peer: String,
}

impl<'s, S> AppendPipeline<'s, S>
where
    S: Stream<Item = AppendEntriesRequest<C>> + Unpin,
{
    pub(crate) fn new(
        conn: TcpStream,
        slot: &'s mut Option<TcpStream>,
        input: S,
        timeout: Duration,
        linger: Duration,
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
            timeout,
            deadline: Box::pin(tokio::time::sleep(timeout)),
            linger,
            hold: None,
            faults,
            peer,
        }
    }

    /// End the stream with `error`; the connection is dropped.
    fn fail(&mut self, error: RPCError<C>) -> Poll<Option<StreamItem>> {
        self.conn = None;
        Poll::Ready(Some(Err(error)))
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
                match Pin::new(conn).poll_write(cx, &self.out[self.out_pos..]) {
                    Poll::Ready(Ok(0)) => {
                        return Err(network_error(format!(
                            "send to {}: connection closed",
                            self.peer
                        )))
                    }
                    Poll::Ready(Ok(n)) => {
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
            if self.input_done || self.inflight.len() >= PIPELINE_DEPTH {
                return Ok(());
            }
            match Pin::new(&mut self.input).poll_next(cx) {
                Poll::Ready(Some(request)) => {
                    if self.faults.is_isolated() {
                        return Err(unreachable_error("this node is isolated".into()));
                    }
                    encode_frame(&mut self.out, &Request::StreamAppend(request))
                        .map_err(|e| network_error(format!("encode append: {e}")))?;
                    if self.inflight.is_empty() {
                        // The answer clock starts with the oldest unanswered request.
                        self.deadline
                            .as_mut()
                            .reset(Instant::now() + self.timeout + self.linger);
                    }
                    self.inflight.push_back(Instant::now());
                    if !self.linger.is_zero() {
                        self.hold = Some(Box::pin(tokio::time::sleep(self.linger)));
                    }
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
        let decoded = serde_json::from_slice::<Response>(&self.inbuf[4..4 + len]);
        self.inbuf.drain(..4 + len);
        decoded
            .map(Some)
            .map_err(|e| network_error(format!("receive from {}: {e}", self.peer)))
    }
}

/// Append one frame (`u32` big-endian length, serde_json) to `out`.
fn encode_frame<T: serde::Serialize>(out: &mut Vec<u8>, message: &T) -> serde_json::Result<()> {
    let start = out.len();
    out.extend_from_slice(&[0; 4]);
    serde_json::to_writer(&mut *out, message)?;
    let len = (out.len() - start - 4) as u32;
    out[start..start + 4].copy_from_slice(&len.to_be_bytes());
    Ok(())
}

impl<S> Stream for AppendPipeline<'_, S>
where
    S: Stream<Item = AppendEntriesRequest<C>> + Unpin,
{
    type Item = StreamItem;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<StreamItem>> {
        let this = self.get_mut();
        if this.conn.is_none() {
            return Poll::Ready(None);
        }
        if let Err(e) = this.poll_send(cx) {
            return this.fail(e);
        }
        // Answers, in request order.
        loop {
            match this.take_answer() {
                Err(e) => return this.fail(e),
                Ok(Some(answer)) => {
                    if this.inflight.pop_front().is_none() {
                        return this.fail(network_error(format!(
                            "receive from {}: an answer to no request",
                            this.peer
                        )));
                    }
                    if this.faults.is_isolated() {
                        return this.fail(unreachable_error("this node is isolated".into()));
                    }
                    if let Some(oldest) = this.inflight.front() {
                        let deadline = (*oldest).max(Instant::now()) + this.timeout + this.linger;
                        this.deadline.as_mut().reset(deadline);
                    }
                    return match answer {
                        Response::StreamAppend(Ok(matching)) => Poll::Ready(Some(Ok(Ok(matching)))),
                        Response::StreamAppend(Err(rejected)) => {
                            // The follower closes its side after a rejection.
                            this.conn = None;
                            Poll::Ready(Some(Ok(Err(rejected))))
                        }
                        Response::Error(e) => {
                            this.fail(network_error(format!("node {}: {e}", this.peer)))
                        }
                        _ => this.fail(network_error(format!(
                            "receive from {}: unexpected response to append",
                            this.peer
                        ))),
                    };
                }
                Ok(None) => {}
            }
            if this.inflight.is_empty() {
                break;
            }
            let Some(conn) = this.conn.as_mut() else {
                return Poll::Ready(None);
            };
            let mut chunk = [0u8; 16 << 10];
            let mut buf = ReadBuf::new(&mut chunk);
            match Pin::new(conn).poll_read(cx, &mut buf) {
                Poll::Ready(Ok(())) if buf.filled().is_empty() => {
                    let peer = this.peer.clone();
                    return this.fail(network_error(format!(
                        "receive from {peer}: connection closed"
                    )));
                }
                Poll::Ready(Ok(())) => this.inbuf.extend_from_slice(buf.filled()),
                Poll::Ready(Err(e)) => {
                    let peer = this.peer.clone();
                    return this.fail(network_error(format!("receive from {peer}: {e}")));
                }
                Poll::Pending => break,
            }
        }
        if this.input_done && this.inflight.is_empty() && this.out_pos >= this.out.len() {
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
                    Ok(Request::StreamAppend(request)) => request,
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
        if write_message(&mut writer, &response).await.is_err() || last {
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
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let faults = Arc::new(Faults::default());
        let mut factory = NetworkFactory {
            faults: faults.clone(),
            addresses: Arc::new(BTreeMap::from([(2, listener.local_addr().unwrap())])),
            self_id: 1,
            append_timeout_floor: floor,
            witness_linger: Duration::ZERO,
            pipeline: true,
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
        let answers: Vec<_> = tokio::time::timeout(BOUND, async {
            let out = client.stream_append(input, option()).await.unwrap();
            out.collect::<Vec<_>>().await
        })
        .await
        .expect("the stream ends within the bound");
        let indexes: Vec<u64> = answers
            .into_iter()
            .map(|a| a.unwrap().unwrap().unwrap().index)
            .collect();
        assert_eq!(indexes, vec![1, 2, 3]);
        assert!(client.has_append_connection(), "kept after a clean end");

        let input = futures_util::stream::iter([request(7)]);
        let answers: Vec<_> = tokio::time::timeout(BOUND, async {
            let out = client.stream_append(input, option()).await.unwrap();
            out.collect::<Vec<_>>().await
        })
        .await
        .expect("the second stream ends within the bound");
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
        let answers: Vec<_> = tokio::time::timeout(BOUND, async {
            let out = client.stream_append(input, option()).await.unwrap();
            out.collect::<Vec<_>>().await
        })
        .await
        .expect("the stream ends within the bound");
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
        let answers: Vec<_> = tokio::time::timeout(BOUND, async {
            let out = client
                .stream_append(Box::pin(input), option())
                .await
                .unwrap();
            out.collect::<Vec<_>>().await
        })
        .await
        .expect("the stream ends within the bound");
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
            let answers: Vec<_> = tokio::time::timeout(BOUND, async {
                let out = client.stream_append(input, option()).await.unwrap();
                out.collect::<Vec<_>>().await
            })
            .await
            .expect("the stream ends within the bound");
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
        let answers: Vec<_> = tokio::time::timeout(BOUND, async {
            let out = client
                .stream_append(Box::pin(input), option())
                .await
                .unwrap();
            out.collect::<Vec<_>>().await
        })
        .await
        .expect("the stream ends within the bound");
        assert_eq!(answers.len(), 2);
        assert!(answers[0].is_ok());
        let error = answers[1].as_ref().unwrap_err().to_string();
        assert!(error.contains("an answer to no request"), "{error}");
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
