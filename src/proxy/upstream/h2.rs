//! The upstream side over HTTP/2 with prior knowledge (h2c): a per-worker set of multiplexed
//! connections made with hyper's HTTP/2 client, which owns framing, HPACK and flow control.
//!
//! Bounded: a worker opens a further connection only when every open one carries
//! `STREAMS_PER_CONNECTION` streams, up to `MAX_CONNECTIONS`; past that, streams queue on the
//! least loaded connection, within the upstream's own `SETTINGS_MAX_CONCURRENT_STREAMS`.
//! Memory per connection is bounded by its flow-control windows. A connection the upstream
//! closed or sent GOAWAY on is no longer chosen; one left without streams for `IDLE_TIMEOUT` is
//! closed by the worker's sweep.

use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Request, Response};
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;
use hyper::client::conn::http2;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::net::TcpStream;

use super::{InnerBody, RequestBody, UpstreamError, UpstreamGauges};

/// Connections per worker before streams queue on the open ones.
const MAX_CONNECTIONS: usize = 4;
/// Streams on one connection before another is opened (while under `MAX_CONNECTIONS`).
const STREAMS_PER_CONNECTION: usize = 100;
/// A connection without streams for this long is closed.
const IDLE_TIMEOUT: Duration = Duration::from_secs(90);
/// What one stream may hold unread from the upstream, and what all of a connection's may.
const STREAM_WINDOW: u32 = 1024 * 1024;
const CONNECTION_WINDOW: u32 = 4 * 1024 * 1024;
/// PING on a connection with streams that has been silent this long; no answer within the
/// timeout ends it, and its streams fail instead of hanging on a dead peer.
const KEEP_ALIVE_INTERVAL: Duration = Duration::from_secs(20);
const KEEP_ALIVE_TIMEOUT: Duration = Duration::from_secs(20);

pub struct H2Pool {
    target: String,
    connect_timeout: Duration,
    gauges: Arc<UpstreamGauges>,
    conns: Mutex<Vec<H2Conn>>,
    /// Held while a connection is being made, so that a burst of first calls shares one
    /// instead of each opening its own.
    connecting: tokio::sync::Mutex<()>,
    builder: http2::Builder<TokioExecutor>,
}

struct H2Conn {
    send: http2::SendRequest<RequestBody>,
    shared: Arc<ConnShared>,
}

struct ConnShared {
    streams: AtomicUsize,
    gauges: Arc<UpstreamGauges>,
    /// When the last stream ended, in nanoseconds since `born`.
    idle_since: AtomicUsize,
    born: Instant,
}

impl ConnShared {
    fn streams(&self) -> usize {
        self.streams.load(Ordering::Relaxed)
    }

    /// A stream opens: the connection counts as active in `redline_upstream_connections`
    /// while it carries any.
    fn stream_started(self: &Arc<Self>) -> StreamGuard {
        if self.streams.fetch_add(1, Ordering::Relaxed) == 0 {
            self.gauges.stream_connection_active(true);
        }
        StreamGuard(self.clone())
    }
}

/// One stream on a connection, until its response body is done or dropped.
pub struct StreamGuard(Arc<ConnShared>);

impl Drop for StreamGuard {
    fn drop(&mut self) {
        if self.0.streams.fetch_sub(1, Ordering::Relaxed) == 1 {
            self.0.gauges.stream_connection_active(false);
            let idle = self.0.born.elapsed().as_nanos().min(usize::MAX as u128) as usize;
            self.0.idle_since.store(idle, Ordering::Relaxed);
        }
    }
}

impl H2Pool {
    pub fn new(target: String, gauges: Arc<UpstreamGauges>, connect_timeout: Duration) -> Self {
        let mut builder = http2::Builder::new(TokioExecutor::new());
        builder
            .timer(TokioTimer::new())
            .initial_stream_window_size(STREAM_WINDOW)
            .initial_connection_window_size(CONNECTION_WINDOW)
            .keep_alive_interval(KEEP_ALIVE_INTERVAL)
            .keep_alive_timeout(KEEP_ALIVE_TIMEOUT);
        H2Pool {
            target,
            connect_timeout,
            gauges,
            conns: Mutex::new(Vec::new()),
            connecting: tokio::sync::Mutex::new(()),
            builder,
        }
    }

    /// Sends `req` (absolute URI, HTTP/2) on a chosen connection and returns once the response
    /// head arrived. A request hyper never put on the wire (the connection closed first) is
    /// sent once more on a new connection.
    pub async fn send(&self, req: Request<RequestBody>) -> Result<Response<InnerBody>, UpstreamError> {
        let (mut send, shared) = match self.pick() {
            Some(c) => c,
            None => Box::pin(self.pick_or_connect()).await?,
        };
        let guard = shared.stream_started();
        let sent = send.try_send_request(req).await;
        let (resp, guard) = match sent {
            Ok(resp) => (resp, guard),
            Err(mut failed) => match failed.take_message() {
                Some(req) => {
                    drop(guard);
                    let (mut send, shared) = Box::pin(self.connect()).await?;
                    let guard = shared.stream_started();
                    (send.send_request(req).await.map_err(UpstreamError::H2)?, guard)
                }
                None => return Err(UpstreamError::H2(failed.into_error())),
            },
        };
        Ok(resp.map(|inner| InnerBody::H2(H2Body { inner, _stream: guard })))
    }

    /// Closes connections the upstream ended and those without streams for too long.
    pub fn sweep(&self, now: Instant) {
        if let Ok(mut conns) = self.conns.lock() {
            conns.retain(|c| {
                let idle_since =
                    c.shared.born + Duration::from_nanos(c.shared.idle_since.load(Ordering::Relaxed) as u64);
                !c.send.is_closed()
                    && (c.shared.streams() > 0 || now.saturating_duration_since(idle_since) <= IDLE_TIMEOUT)
            });
        }
    }

    /// The least loaded open connection, unless all carry their share and another may be opened.
    fn pick(&self) -> Option<(http2::SendRequest<RequestBody>, Arc<ConnShared>)> {
        let mut conns = self.conns.lock().ok()?;
        conns.retain(|c| !c.send.is_closed());
        let best = conns.iter().filter(|c| c.send.is_ready()).min_by_key(|c| c.shared.streams())?;
        if best.shared.streams() >= STREAMS_PER_CONNECTION && conns.len() < MAX_CONNECTIONS {
            return None;
        }
        Some((best.send.clone(), best.shared.clone()))
    }

    /// One connection at a time: a call that waited for another's connect takes that one.
    async fn pick_or_connect(&self) -> Result<(http2::SendRequest<RequestBody>, Arc<ConnShared>), UpstreamError> {
        let _one_at_a_time = self.connecting.lock().await;
        match self.pick() {
            Some(c) => Ok(c),
            None => self.connect().await,
        }
    }

    async fn connect(&self) -> Result<(http2::SendRequest<RequestBody>, Arc<ConnShared>), UpstreamError> {
        let stream = tokio::time::timeout(self.connect_timeout, TcpStream::connect(self.target.as_str()))
            .await
            .map_err(|_| UpstreamError::ConnectTimeout)?
            .map_err(UpstreamError::Connect)?;
        let _ = stream.set_nodelay(true);
        let (send, conn) = self.builder.handshake(TokioIo::new(stream)).await.map_err(UpstreamError::H2)?;
        self.gauges.opened();
        let gauges = self.gauges.clone();
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(error = %e, "HTTP/2 upstream connection ended");
            }
            gauges.closed();
        });
        let born = Instant::now();
        let shared = Arc::new(ConnShared {
            streams: AtomicUsize::new(0),
            gauges: self.gauges.clone(),
            idle_since: AtomicUsize::new(0),
            born,
        });
        if let Ok(mut conns) = self.conns.lock() {
            conns.push(H2Conn { send: send.clone(), shared: shared.clone() });
        }
        Ok((send, shared))
    }
}

/// A response body from an HTTP/2 upstream; its stream counts on its connection until it ends.
pub struct H2Body {
    inner: Incoming,
    _stream: StreamGuard,
}

impl Body for H2Body {
    type Data = Bytes;
    type Error = hyper::Error;

    // Out of line: the HTTP/1.1 path's body polling, which matches on the body kind, stays small.
    #[inline(never)]
    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
