//! The upstream side of the proxy: a per-worker pool of HTTP/1.1 keep-alive connections,
//! counted for `redline_upstream_connections{state}`, with failures sorted by cause.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use http::{Request, Response};
use hyper::body::Incoming;
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use super::body::RequestBody;
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
    Exchange(hyper::Error),
}

/// An upstream connection that carried a request; it goes back to the pool once the
/// response body has been read to its end.
pub type Lease = SendRequest<RequestBody>;

/// Keep-alive connections to one upstream, owned by one worker (the lock is never contended).
pub struct UpstreamPool {
    /// `host:port`, resolved on every connect, as DNS may move the upstream.
    target: String,
    connect_timeout: Duration,
    idle: Mutex<Vec<Idle>>,
    gauges: Arc<UpstreamGauges>,
}

struct Idle {
    sender: SendRequest<RequestBody>,
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

    /// Sends `req` on an idle connection, or on a new one. A request an idle connection could not
    /// take (the upstream closed it meanwhile, before a byte was written) is sent once more on a
    /// new connection.
    pub async fn send(
        &self,
        req: Request<RequestBody>,
        now: Instant,
    ) -> Result<(Response<Incoming>, Lease), UpstreamError> {
        let (mut sender, reused) = match self.checkout(now).await {
            Some(sender) => (sender, true),
            // Boxed so that the common path's future stays small (it is moved several times).
            None => (Box::pin(self.connect()).await?, false),
        };
        match sender.try_send_request(req).await {
            Ok(resp) => Ok((resp, sender)),
            Err(mut failed) => match (reused, failed.take_message()) {
                (true, Some(req)) => {
                    let mut sender = Box::pin(self.connect()).await?;
                    let resp = sender.send_request(req).await.map_err(UpstreamError::Exchange)?;
                    Ok((resp, sender))
                }
                _ => Err(UpstreamError::Exchange(failed.into_error())),
            },
        }
    }

    /// Returns a connection whose last response was read to its end.
    pub fn put_back(&self, sender: Lease, now: Instant) {
        if sender.is_closed() {
            return;
        }
        if let Ok(mut idle) = self.idle.lock()
            && idle.len() < MAX_IDLE
        {
            idle.push(Idle { sender, since: now });
        }
    }

    /// The most recently used idle connection that is still open and ready.
    async fn checkout(&self, now: Instant) -> Option<SendRequest<RequestBody>> {
        loop {
            let candidate = {
                let mut idle = self.idle.lock().ok()?;
                // The oldest sits at the bottom of the stack; expiring it here spares a timer.
                if idle.first().is_some_and(|c| now.saturating_duration_since(c.since) > IDLE_TIMEOUT) {
                    idle.remove(0);
                }
                idle.pop()?
            };
            if candidate.sender.is_closed() || now.saturating_duration_since(candidate.since) > IDLE_TIMEOUT {
                continue;
            }
            let mut sender = candidate.sender;
            if sender.ready().await.is_ok() {
                return Some(sender);
            }
        }
    }

    async fn connect(&self) -> Result<SendRequest<RequestBody>, UpstreamError> {
        let stream = tokio::time::timeout(self.connect_timeout, TcpStream::connect(self.target.as_str()))
            .await
            .map_err(|_| UpstreamError::ConnectTimeout)?
            .map_err(UpstreamError::Connect)?;
        let _ = stream.set_nodelay(true);
        let (sender, conn) = hyper::client::conn::http1::Builder::new()
            // send(2) rather than writev(2), as on the client side (see `proxy::serve`).
            .writev(false)
            .handshake(TokioIo::new(stream))
            .await
            .map_err(UpstreamError::Exchange)?;
        self.gauges.open.fetch_add(1, Ordering::Relaxed);
        let gauges = self.gauges.clone();
        tokio::spawn(async move {
            // The connection ends when the upstream closes it, on an error, or when its sender is
            // dropped (evicted, or its response was abandoned mid-body).
            let _ = conn.await;
            gauges.open.fetch_sub(1, Ordering::Relaxed);
        });
        Ok(sender)
    }
}
