//! The upstream side of the proxy: a per-worker pool of HTTP/1.1 keep-alive connections
//! (`codec`, `exchange`) and one of multiplexed HTTP/2 connections (`h2`), counted for
//! `redline_upstream_connections{state}`, with failures sorted by cause.

pub mod codec;
pub mod exchange;
pub mod h2;
mod request_body;

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::Response;
use http::request::Parts;
use http_body::{Body, Frame, SizeHint};
use http_body_util::Full;
use tokio::net::TcpStream;

pub use exchange::{ExchangeError, UpstreamBody, UpstreamConn};
use exchange::{RequestPump, exchange};
use h2::H2Body;
pub use request_body::{BodyProgress, RequestBody};

use crate::telemetry::metrics::{ExpositionWriter, Kind};

/// A request head for an HTTP/1.1 upstream: in a header map, rewritten already (hyper's
/// requests, and those the fast path could not keep raw), or fields that write themselves (the
/// fast path's raw requests: `proxy::raw_request`).
pub enum UpstreamHead<F> {
    Map(Parts),
    Fields(http::Method, F),
}

/// Which HTTP version requests go upstream in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum UpstreamProtocol {
    /// The client's: HTTP/2 requests over HTTP/2 (h2c), HTTP/1.x over HTTP/1.1.
    Auto,
    /// Everything over HTTP/1.1.
    Http1,
    /// Everything over HTTP/2 with prior knowledge (h2c), e.g. for a gRPC-only app; protocol
    /// upgrades (WebSocket) still go over HTTP/1.1.
    Http2,
}

/// A response body from the upstream (HTTP/1.1 or HTTP/2), or a small one the proxy made itself.
pub enum InnerBody {
    H1(UpstreamBody),
    H2(H2Body),
    Own(Full<Bytes>),
}

pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

impl InnerBody {
    /// The upstream's response fields as it wrote them, when they were asked for raw.
    pub fn raw_fields(&self) -> Option<&codec::RawFields> {
        match self {
            InnerBody::H1(body) => body.raw_fields(),
            _ => None,
        }
    }

    pub fn is_upstream(&self) -> bool {
        !matches!(self, InnerBody::Own(_))
    }
}

impl Body for InnerBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        match self.get_mut() {
            InnerBody::H1(b) => Pin::new(b).poll_frame(cx).map_err(Into::into),
            InnerBody::H2(b) => Pin::new(b).poll_frame(cx).map_err(Into::into),
            InnerBody::Own(b) => Pin::new(b).poll_frame(cx).map_err(|never| match never {}),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            InnerBody::H1(b) => b.is_end_stream(),
            InnerBody::H2(b) => b.is_end_stream(),
            InnerBody::Own(b) => b.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            InnerBody::H1(b) => b.size_hint(),
            InnerBody::H2(b) => b.size_hint(),
            InnerBody::Own(b) => b.size_hint(),
        }
    }
}

/// Upstream connection counts: open sockets and those carrying a request right now.
#[derive(Default)]
pub struct UpstreamGauges {
    open: AtomicI64,
    in_use: AtomicI64,
}

impl UpstreamGauges {
    /// Marks one upstream exchange as in progress until the guard drops.
    pub fn exchange(self: &Arc<Self>) -> InUse {
        self.in_use.fetch_add(1, Ordering::Relaxed);
        InUse(self.clone())
    }

    /// An HTTP/2 connection started (`true`) or stopped (`false`) carrying streams: it is
    /// active while it carries any, however many.
    fn stream_connection_active(&self, active: bool) {
        if active {
            self.in_use.fetch_add(1, Ordering::Relaxed);
        } else {
            self.in_use.fetch_sub(1, Ordering::Relaxed);
        }
    }

    fn opened(&self) {
        self.open.fetch_add(1, Ordering::Relaxed);
    }

    fn closed(&self) {
        self.open.fetch_sub(1, Ordering::Relaxed);
    }

    pub fn write(&self, w: &mut ExpositionWriter) {
        let open = self.open.load(Ordering::Relaxed).max(0);
        let in_use = self.in_use.load(Ordering::Relaxed).clamp(0, open);
        w.family("redline_upstream_connections", "Connections from the proxy to the upstream, by state.", Kind::Gauge);
        w.sample(&[("state", "active")], in_use as f64);
        w.sample(&[("state", "idle")], (open - in_use) as f64);
    }
}

pub struct InUse(Arc<UpstreamGauges>);

impl Drop for InUse {
    fn drop(&mut self) {
        self.0.in_use.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Why an exchange with the upstream failed.
#[derive(Debug)]
pub enum UpstreamError {
    /// No TCP connection (refused, unreachable, name not resolved).
    Connect(std::io::Error),
    /// The TCP connection was not established within the connect timeout.
    ConnectTimeout,
    /// The connection broke or the upstream answered with something that is not HTTP.
    Exchange(ExchangeError),
    /// An HTTP/2 exchange failed: the connection or stream was reset, GOAWAY refused the
    /// stream, or the upstream does not speak HTTP/2.
    H2(hyper::Error),
}

/// Keep-alive connections to one upstream, owned by one worker (the lock is never contended).
pub struct UpstreamPool {
    /// `host:port`, resolved on every connect, as DNS may move the upstream.
    target: String,
    connect_timeout: Duration,
    idle: Mutex<Vec<Idle>>,
    gauges: Arc<UpstreamGauges>,
}

struct Idle {
    conn: Box<UpstreamConn>,
    since: Instant,
}

/// Idle connections older than this are closed instead of reused.
const IDLE_TIMEOUT: Duration = Duration::from_secs(90);
/// Idle connections kept per worker; more are closed when they come back.
const MAX_IDLE: usize = 1024;

impl UpstreamPool {
    pub fn new(target: String, gauges: Arc<UpstreamGauges>, connect_timeout: Duration) -> Self {
        UpstreamPool { target, connect_timeout, idle: Mutex::new(Vec::new()), gauges }
    }

    /// Sends the request (`head` with `target` as its origin-form target) on an idle connection,
    /// or on a new one, and returns once the response head arrived. `upgrading`: the head asks
    /// for a protocol upgrade, and a 101 answer hands the connection over (`into_upgraded`).
    ///
    /// The head is written when this is called, into the idle connection's buffer (or a new
    /// one), so the returned future holds the written bytes only: neither `head` (whose fields
    /// are slices of the client's read buffer) nor `target` outlive the call, and the future,
    /// which the request's path moves several times, stays small.
    ///
    /// A request without a body is sent once more, on a new connection, when an idle connection
    /// failed before any byte of a response came back and either the upstream had closed it
    /// before the request was written or the method is idempotent (RFC 9110 section 9.2.2).
    pub fn send<'a, F: codec::RequestFields>(
        &'a self,
        head: UpstreamHead<F>,
        target: &str,
        body: RequestBody,
        now: Instant,
        upgrading: bool,
        raw_fields: bool,
    ) -> impl Future<Output = Result<Response<InnerBody>, UpstreamError>> + Send + use<'a, F> {
        use http_body::Body as _;
        let has_body = !body.is_end_stream();
        let framing = match &head {
            UpstreamHead::Map(parts) => codec::RequestFraming::of(&parts.method, &parts.headers, has_body),
            UpstreamHead::Fields(method, _) => codec::RequestFraming::with_length(method, false, has_body),
        };
        let pump = has_body.then(|| Box::new(RequestPump::new(body, framing == codec::RequestFraming::Chunked)));
        // An idle connection, or the bytes for a new one.
        let mut taken = self.checkout(now).ok_or_else(Vec::new);
        let out = match &mut taken {
            Ok(conn) => &mut conn.head,
            Err(bytes) => bytes,
        };
        let method = match head {
            UpstreamHead::Map(parts) => {
                codec::encode_request_head(out, &parts.method, target, &parts.headers, framing);
                parts.method
            }
            UpstreamHead::Fields(method, fields) => {
                codec::encode_request_line(out, &method, target);
                fields.encode(out);
                codec::encode_head_end(out, framing);
                method
            }
        };
        async move {
            let (conn, reused) = match taken {
                Ok(conn) => (conn, true),
                // Boxed so that the common path's future stays small.
                Err(head) => {
                    let mut conn = Box::pin(self.connect()).await?;
                    conn.head = head;
                    (conn, false)
                }
            };
            match exchange(conn, &method, pump, upgrading, raw_fields).await {
                Ok(resp) => Ok(resp),
                Err(failed)
                    if reused
                        && !has_body
                        && failed.before_response
                        && (failed.write_failed || method.is_idempotent()) =>
                {
                    let mut conn = Box::pin(self.connect()).await?;
                    conn.head = failed.head;
                    // Boxed: a second exchange held in place would double the future's size.
                    Box::pin(exchange(conn, &method, None, upgrading, raw_fields))
                        .await
                        .map_err(|f| UpstreamError::Exchange(f.error))
                }
                Err(failed) => Err(UpstreamError::Exchange(failed.error)),
            }
        }
    }

    /// Takes back a connection whose last response was read to its end.
    pub fn put_back(&self, conn: Box<UpstreamConn>, now: Instant) {
        if let Ok(mut idle) = self.idle.lock()
            && idle.len() < MAX_IDLE
        {
            idle.push(Idle { conn, since: now });
        }
    }

    /// Closes idle connections the upstream closed or that sat unused too long, so that they
    /// neither linger half-closed nor count as idle.
    pub fn sweep(&self, now: Instant) {
        if let Ok(mut idle) = self.idle.lock() {
            idle.retain_mut(|c| now.saturating_duration_since(c.since) <= IDLE_TIMEOUT && c.conn.still_open());
        }
    }

    /// The most recently used idle connection that is still open.
    fn checkout(&self, now: Instant) -> Option<Box<UpstreamConn>> {
        let mut idle = self.idle.lock().ok()?;
        while let Some(mut candidate) = idle.pop() {
            if now.saturating_duration_since(candidate.since) <= IDLE_TIMEOUT && candidate.conn.still_open() {
                return Some(candidate.conn);
            }
        }
        None
    }

    async fn connect(&self) -> Result<Box<UpstreamConn>, UpstreamError> {
        let stream = tokio::time::timeout(self.connect_timeout, TcpStream::connect(self.target.as_str()))
            .await
            .map_err(|_| UpstreamError::ConnectTimeout)?
            .map_err(UpstreamError::Connect)?;
        let _ = stream.set_nodelay(true);
        Ok(UpstreamConn::new(stream, self.gauges.clone()))
    }
}
