//! One request/response exchange on an upstream connection, driven inside the request's own
//! task: the head and body go out while the response head is awaited, then the body streams.

use std::collections::VecDeque;
use std::future::poll_fn;
use std::io::{self, IoSlice};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker, ready};

use bytes::{Buf, Bytes, BytesMut};
use http::{Method, Response};
use http_body::{Body, Frame, SizeHint};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

use super::codec::{self, BodyFraming, Chunk, ChunkedDecoder, ProtocolError, RawFields, ResponseHead};
use super::{InnerBody, RequestBody, UpstreamGauges};

/// Read buffers grow by this much when less than `MIN_READ` is free.
const READ_CHUNK: usize = 16 * 1024;
const MIN_READ: usize = 4 * 1024;

/// Why an exchange with the upstream failed once the connection was open.
#[derive(Debug, thiserror::Error)]
pub enum ExchangeError {
    #[error("upstream connection failed: {0}")]
    Io(#[from] io::Error),
    #[error("upstream closed the connection before a complete response head")]
    Closed,
    #[error("upstream closed the connection before the end of the response body")]
    BodyCut,
    #[error(transparent)]
    Protocol(#[from] ProtocolError),
    #[error("the client's request body failed: {0}")]
    ClientBody(hyper::Error),
}

/// An open upstream connection with what it has read but not yet handed on. Held boxed
/// (`new` makes it so, once per connection): a response carries its connection from the
/// exchange to the client through several moves, each a 104-byte copy where a pointer's does.
pub struct UpstreamConn {
    stream: TcpStream,
    read_buf: BytesMut,
    /// The request head being written; kept to reuse its allocation.
    pub(super) head: Vec<u8>,
    _open: OpenConnection,
}

/// Counts the connection in `redline_upstream_connections` for as long as it exists.
struct OpenConnection(Arc<UpstreamGauges>);

impl Drop for OpenConnection {
    fn drop(&mut self) {
        self.0.closed();
    }
}

impl UpstreamConn {
    pub(super) fn new(stream: TcpStream, gauges: Arc<UpstreamGauges>) -> Box<Self> {
        gauges.opened();
        Box::new(UpstreamConn {
            stream,
            read_buf: BytesMut::with_capacity(READ_CHUNK),
            head: Vec::with_capacity(512),
            _open: OpenConnection(gauges),
        })
    }

    /// False once the upstream closed the connection (or sent bytes nobody asked for) while it
    /// sat idle. Costs a system call only when the reactor saw the socket become readable.
    pub(super) fn still_open(&mut self) -> bool {
        let mut cx = Context::from_waker(Waker::noop());
        match self.stream.poll_read_ready(&mut cx) {
            Poll::Pending => true,
            Poll::Ready(Err(_)) => false,
            Poll::Ready(Ok(())) => {
                let mut probe = [0u8; 1];
                matches!(self.stream.try_read(&mut probe), Err(e) if e.kind() == io::ErrorKind::WouldBlock)
            }
        }
    }

    /// Carries bytes both ways between `client` and the upstream until either side is done,
    /// starting with what the upstream sent after its 101. Returns the bytes (to the client,
    /// to the upstream).
    pub async fn tunnel<C: AsyncRead + AsyncWrite + Unpin>(mut self, client: &mut C) -> io::Result<(u64, u64)> {
        let early = self.read_buf.len() as u64;
        client.write_all(&self.read_buf).await?;
        self.read_buf = BytesMut::new();
        let (to_upstream, to_client) = tokio::io::copy_bidirectional(client, &mut self.stream).await?;
        Ok((early + to_client, to_upstream))
    }

    fn poll_fill(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<usize>> {
        if self.read_buf.capacity() - self.read_buf.len() < MIN_READ {
            self.read_buf.reserve(READ_CHUNK);
        }
        tokio_util::io::poll_read_buf(Pin::new(&mut self.stream), cx, &mut self.read_buf)
    }
}

/// A failed exchange, with what a resend decision needs.
pub struct ExchangeFailure {
    pub error: ExchangeError,
    /// No byte of a response arrived: the upstream may never have seen the request.
    pub before_response: bool,
    /// Writing the request head failed: the upstream had closed the connection already.
    pub write_failed: bool,
    /// The encoded request head, for a resend.
    pub head: Vec<u8>,
}

/// Sends the head in `conn.head` and `body` (if any) and waits for the final response head.
/// The body keeps streaming out while the response streams in. `upgrading`: the request asked
/// for a protocol upgrade, so a 101 is a final answer.
pub async fn exchange(
    mut conn: Box<UpstreamConn>,
    method: &Method,
    mut body: Option<Box<RequestPump>>,
    upgrading: bool,
    raw: bool,
) -> Result<Response<InnerBody>, ExchangeFailure> {
    let mut head_written = 0;
    let mut write_error: Option<io::Error> = None;
    let mut received = false;
    // What the read buffer held at the last parse that found no complete head: a wake-up that
    // brought no new bytes (the first poll, a write-ready wake) does not parse the head again.
    let mut parsed_len = 0;
    let head = poll_fn(|cx| {
        let conn = &mut conn;
        while write_error.is_none() && head_written < conn.head.len() {
            match Pin::new(&mut conn.stream).poll_write(cx, &conn.head[head_written..]) {
                Poll::Ready(Ok(0)) => write_error = Some(io::ErrorKind::WriteZero.into()),
                Poll::Ready(Ok(n)) => head_written += n,
                Poll::Ready(Err(e)) => write_error = Some(e),
                Poll::Pending => break,
            }
        }
        if write_error.is_none()
            && head_written == conn.head.len()
            && let Some(pump) = body.as_mut()
        {
            match pump.poll_send(&mut conn.stream, cx) {
                Poll::Ready(Ok(())) | Poll::Pending => {}
                Poll::Ready(Err(PumpError::Client(e))) => {
                    return Poll::Ready(Err(ExchangeFailure {
                        error: ExchangeError::ClientBody(e),
                        before_response: !received,
                        write_failed: false,
                        head: Vec::new(),
                    }));
                }
                // The upstream may have answered early and stopped reading: its answer still counts.
                Poll::Ready(Err(PumpError::Upstream(e))) => write_error = Some(e),
            }
        }
        loop {
            if conn.read_buf.len() > parsed_len {
                match codec::parse_response_head_as(&mut conn.read_buf, method, upgrading, raw) {
                    Ok(Some(head)) => return Poll::Ready(Ok(head)),
                    Ok(None) => parsed_len = conn.read_buf.len(),
                    Err(e) => {
                        return Poll::Ready(Err(ExchangeFailure {
                            error: e.into(),
                            before_response: false,
                            write_failed: false,
                            head: Vec::new(),
                        }));
                    }
                }
            }
            let head_done = head_written == conn.head.len();
            match ready!(conn.poll_fill(cx)) {
                Ok(0) => {
                    return Poll::Ready(Err(failure(ExchangeError::Closed, &mut write_error, head_done, received)));
                }
                Ok(_) => received = true,
                Err(e) => {
                    return Poll::Ready(Err(failure(ExchangeError::Io(e), &mut write_error, head_done, received)));
                }
            }
        }
    })
    .await
    .map_err(|mut failed| {
        failed.head = std::mem::take(&mut conn.head);
        failed
    })?;
    let head_done = head_written == conn.head.len();
    // The upstream's HTTP version stays on its hop: the client hears the proxy's own (RFC 9110
    // section 7.6.3), so an HTTP/1.0 answer does not close a client's HTTP/1.1 connection.
    let ResponseHead { status, version: _, headers, raw, framing, keep_alive } = head;
    let body_sent = body.as_deref().is_none_or(RequestPump::finished);
    let body = UpstreamBody {
        state: match framing {
            BodyFraming::Empty => BodyState::Done,
            BodyFraming::Length(n) => BodyState::Length(n),
            BodyFraming::Chunked => BodyState::Chunked(ChunkedDecoder::default()),
            BodyFraming::UntilClose => BodyState::UntilClose,
        },
        pump: if body_sent { None } else { body },
        // After a response that has no body by rule (HEAD, 204, 304), an upstream that sends one
        // anyway would have it read as the next request's response, another client's: such a
        // connection is never pooled. The same goes for one whose request was not sent whole.
        reusable: keep_alive
            && head_done
            && write_error.is_none()
            && *method != Method::HEAD
            && status != http::StatusCode::NO_CONTENT
            && status != http::StatusCode::NOT_MODIFIED,
        conn: Some(conn),
        raw,
    };
    // Wrapped here, where the response is made, so that the request's path moves it no more.
    let mut resp = Response::new(InnerBody::H1(body));
    *resp.status_mut() = status;
    *resp.headers_mut() = headers;
    Ok(resp)
}

/// The connection broke before a response head; a failed write is the better explanation.
fn failure(
    error: ExchangeError,
    write_error: &mut Option<io::Error>,
    head_done: bool,
    received: bool,
) -> ExchangeFailure {
    ExchangeFailure {
        write_failed: write_error.is_some() && !head_done,
        error: write_error.take().map_or(error, ExchangeError::Io),
        before_response: !received,
        head: Vec::new(),
    }
}

enum PumpError {
    /// Reading the client's body failed (the client went away mid-upload).
    Client(hyper::Error),
    /// Writing to the upstream failed.
    Upstream(io::Error),
}

/// The client's request body on its way upstream, chunked when its length is unknown.
pub struct RequestPump {
    body: RequestBody,
    chunked: bool,
    queued: VecDeque<Bytes>,
    body_done: bool,
    /// The last chunk went out with the client's trailers.
    trailers_sent: bool,
}

impl RequestPump {
    pub fn new(body: RequestBody, chunked: bool) -> Self {
        RequestPump { body, chunked, queued: VecDeque::with_capacity(3), body_done: false, trailers_sent: false }
    }

    fn finished(&self) -> bool {
        self.body_done && self.queued.is_empty()
    }

    /// Moves body bytes to the socket until the body ends (Ready) or either side must wait.
    fn poll_send(&mut self, stream: &mut TcpStream, cx: &mut Context<'_>) -> Poll<Result<(), PumpError>> {
        loop {
            while !self.queued.is_empty() {
                let mut slices = [IoSlice::new(&[]); 3];
                let count = slices.len().min(self.queued.len());
                for (slice, bytes) in slices.iter_mut().zip(self.queued.iter()) {
                    *slice = IoSlice::new(bytes);
                }
                let polled = Pin::new(&mut *stream).poll_write_vectored(cx, &slices[..count]);
                if let Some(progress) = self.body.progress() {
                    progress.note_upstream(polled.is_pending());
                }
                let mut written = ready!(polled).map_err(PumpError::Upstream)?;
                if written == 0 {
                    return Poll::Ready(Err(PumpError::Upstream(io::ErrorKind::WriteZero.into())));
                }
                while written > 0 {
                    let Some(front) = self.queued.front_mut() else { break };
                    let step = written.min(front.len());
                    front.advance(step);
                    written -= step;
                    if front.is_empty() {
                        self.queued.pop_front();
                    }
                }
            }
            if self.body_done {
                return Poll::Ready(Ok(()));
            }
            match ready!(Pin::new(&mut self.body).poll_frame(cx)) {
                None => {
                    self.body_done = true;
                    if self.chunked && !self.trailers_sent {
                        self.queued.push_back(Bytes::from_static(codec::LAST_CHUNK));
                    }
                }
                Some(Ok(frame)) => match frame.into_data() {
                    Ok(data) if !data.is_empty() && !self.trailers_sent => {
                        if self.chunked {
                            self.queued.push_back(codec::chunk_header(data.len()));
                            self.queued.push_back(data);
                            self.queued.push_back(Bytes::from_static(b"\r\n"));
                        } else {
                            self.queued.push_back(data);
                        }
                    }
                    Ok(_) => {}
                    // The client's trailers end a chunked body; a sized one has no room for them.
                    Err(frame) => {
                        if let Ok(trailers) = frame.into_trailers()
                            && self.chunked
                            && !self.trailers_sent
                        {
                            self.trailers_sent = true;
                            self.queued.push_back(codec::last_chunk_with_trailers(&trailers));
                        }
                    }
                },
                Some(Err(e)) => return Poll::Ready(Err(PumpError::Client(e))),
            }
        }
    }
}

enum BodyState {
    Length(u64),
    Chunked(ChunkedDecoder),
    UntilClose,
    Done,
}

/// The upstream's response body, read straight from its connection as the client takes it.
pub struct UpstreamBody {
    conn: Option<Box<UpstreamConn>>,
    state: BodyState,
    /// The rest of the request body, when the response head came before it was all sent.
    /// Boxed: requests without a body (most) would otherwise carry its room in every response,
    /// which moves several times on its way to the client.
    pump: Option<Box<RequestPump>>,
    /// Whether the connection can carry another request once the body was read to its end.
    reusable: bool,
    /// The head's fields as the upstream wrote them, when asked for raw.
    raw: Option<Box<RawFields>>,
}

impl UpstreamBody {
    /// The response's fields as the upstream wrote them, when they were asked for raw (the
    /// response's `HeaderMap` is then empty).
    pub fn raw_fields(&self) -> Option<&RawFields> {
        self.raw.as_deref()
    }

    /// The connection of a `101 Switching Protocols` answer, now speaking the new protocol.
    pub fn into_upgraded(mut self) -> Option<Box<UpstreamConn>> {
        self.pump = None;
        self.conn.take()
    }

    /// The connection, if the body was read to its end and the connection is fit for another
    /// request: keep-alive, request sent in full, nothing unexpected buffered.
    pub fn take_reusable(&mut self) -> Option<Box<UpstreamConn>> {
        let clean = matches!(self.state, BodyState::Done)
            && self.reusable
            && self.pump.is_none()
            && self.conn.as_ref().is_some_and(|c| c.read_buf.is_empty());
        if clean { self.conn.take() } else { None }
    }
}

impl Body for UpstreamBody {
    type Data = Bytes;
    type Error = ExchangeError;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, ExchangeError>>> {
        let this = &mut *self;
        let Some(conn) = this.conn.as_mut() else { return Poll::Ready(None) };
        if let Some(pump) = this.pump.as_mut() {
            match pump.poll_send(&mut conn.stream, cx) {
                Poll::Pending => {}
                Poll::Ready(Ok(())) => this.pump = None,
                Poll::Ready(Err(_)) => {
                    // The response goes on; only the connection is spent.
                    this.pump = None;
                    this.reusable = false;
                }
            }
        }
        loop {
            match &mut this.state {
                BodyState::Done => return Poll::Ready(None),
                BodyState::Length(left) => {
                    if !conn.read_buf.is_empty() {
                        let take = (*left).min(conn.read_buf.len() as u64);
                        let data = conn.read_buf.split_to(take as usize).freeze();
                        *left -= take;
                        if *left == 0 {
                            this.state = BodyState::Done;
                        }
                        return Poll::Ready(Some(Ok(Frame::data(data))));
                    }
                }
                BodyState::Chunked(decoder) => match decoder.decode(&mut conn.read_buf) {
                    Ok(Chunk::Data(data)) => return Poll::Ready(Some(Ok(Frame::data(data)))),
                    // The trailer section ends the body: the connection is at the next response
                    // now, and a body dropped after its trailers (hyper polls no further) was
                    // read to its end.
                    Ok(Chunk::Trailers(trailers)) => {
                        this.state = BodyState::Done;
                        return Poll::Ready(Some(Ok(Frame::trailers(trailers))));
                    }
                    Ok(Chunk::End) => {
                        this.state = BodyState::Done;
                        return Poll::Ready(None);
                    }
                    Ok(Chunk::NeedMore) => {}
                    Err(e) => {
                        this.conn = None;
                        return Poll::Ready(Some(Err(e.into())));
                    }
                },
                BodyState::UntilClose => {
                    if !conn.read_buf.is_empty() {
                        return Poll::Ready(Some(Ok(Frame::data(conn.read_buf.split().freeze()))));
                    }
                }
            }
            match ready!(conn.poll_fill(cx)) {
                Ok(0) if matches!(this.state, BodyState::UntilClose) => {
                    this.state = BodyState::Done;
                    this.reusable = false;
                    return Poll::Ready(None);
                }
                Ok(0) => {
                    this.conn = None;
                    return Poll::Ready(Some(Err(ExchangeError::BodyCut)));
                }
                Ok(_) => {}
                Err(e) => {
                    this.conn = None;
                    return Poll::Ready(Some(Err(e.into())));
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        matches!(self.state, BodyState::Done)
    }

    fn size_hint(&self) -> SizeHint {
        match self.state {
            BodyState::Done => SizeHint::with_exact(0),
            BodyState::Length(n) => SizeHint::with_exact(n),
            _ => SizeHint::default(),
        }
    }
}
