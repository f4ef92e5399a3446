//! The upstream side of the proxy: a per-worker pool of HTTP/1.1 keep-alive connections
//! (`codec`, `exchange`) and one of multiplexed HTTP/2 connections (`h2`), counted for
//! `redline_upstream_connections{state}`, with failures sorted by cause.

pub mod codec;
pub mod exchange;
pub mod h2;

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use http::Response;
use http::request::Parts;
use tokio::net::TcpStream;

pub use exchange::{ExchangeError, UpstreamBody, UpstreamConn};
use exchange::{RequestPump, exchange};

use super::body::{InnerBody, RequestBody};
use crate::telemetry::metrics::{ExpositionWriter, Kind};

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
    conn: UpstreamConn,
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
    /// A request without a body is sent once more, on a new connection, when an idle connection
    /// failed before any byte of a response came back and either the upstream had closed it
    /// before the request was written or the method is idempotent (RFC 9110 section 9.2.2).
    pub async fn send(
        &self,
        head: Parts,
        target: &str,
        body: RequestBody,
        now: Instant,
        upgrading: bool,
    ) -> Result<Response<InnerBody>, UpstreamError> {
        use http_body::Body as _;
        let has_body = !body.is_end_stream();
        let framing = codec::RequestFraming::of(&head.method, &head.headers, has_body);
        let pump = has_body.then(|| RequestPump::new(body, framing == codec::RequestFraming::Chunked));
        let (mut conn, reused) = match self.checkout(now) {
            Some(conn) => (conn, true),
            // Boxed so that the common path's future stays small (it is moved several times).
            None => (Box::pin(self.connect()).await?, false),
        };
        codec::encode_request_head(&mut conn.head, &head.method, target, &head.headers, framing);
        let method = head.method.clone();
        // The encoded bytes are all a resend needs; the head's fields (slices of the client's
        // read buffer) are let go before the wait for the answer.
        drop(head);
        match exchange(conn, &method, pump, upgrading).await {
            Ok(resp) => Ok(resp),
            Err(failed)
                if reused && !has_body && failed.before_response && (failed.write_failed || method.is_idempotent()) =>
            {
                let mut conn = Box::pin(self.connect()).await?;
                conn.head = failed.head;
                exchange(conn, &method, None, upgrading).await.map_err(|f| UpstreamError::Exchange(f.error))
            }
            Err(failed) => Err(UpstreamError::Exchange(failed.error)),
        }
    }

    /// Takes back a connection whose last response was read to its end.
    pub fn put_back(&self, conn: UpstreamConn, now: Instant) {
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
    fn checkout(&self, now: Instant) -> Option<UpstreamConn> {
        let mut idle = self.idle.lock().ok()?;
        while let Some(mut candidate) = idle.pop() {
            if now.saturating_duration_since(candidate.since) <= IDLE_TIMEOUT && candidate.conn.still_open() {
                return Some(candidate.conn);
            }
        }
        None
    }

    async fn connect(&self) -> Result<UpstreamConn, UpstreamError> {
        let stream = tokio::time::timeout(self.connect_timeout, TcpStream::connect(self.target.as_str()))
            .await
            .map_err(|_| UpstreamError::ConnectTimeout)?
            .map_err(UpstreamError::Connect)?;
        let _ = stream.set_nodelay(true);
        Ok(UpstreamConn::new(stream, self.gauges.clone()))
    }
}
