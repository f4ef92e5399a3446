//! The client's request body on its way to the upstream, counting what the client sent and
//! when, for the request's deadline and its metrics.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;

/// The request body sent upstream, counting what the client sent and when.
pub struct RequestBody {
    /// None: the request carries no body.
    inner: Option<Incoming>,
    progress: Option<Arc<BodyProgress>>,
}

/// How far a request body has come, shared by the pump that sends it and the request's deadline.
pub struct BodyProgress {
    start: Instant,
    bytes: AtomicU64,
    /// Nanoseconds from `start` to the last frame from the client or write to the upstream.
    last: AtomicU64,
    /// 1 + nanoseconds from `start` to the end of the body; 0 while it goes on.
    done: AtomicU64,
    /// The last wait was for the upstream to take bytes, not for the client to send them.
    upstream_blocked: AtomicBool,
    /// Reading the body from the client failed (reset, cut short, malformed).
    client_failed: AtomicBool,
}

impl BodyProgress {
    fn nanos(&self, now: Instant) -> u64 {
        now.saturating_duration_since(self.start).as_nanos().min(u64::MAX as u128 - 1) as u64
    }

    fn touch(&self) {
        self.last.store(self.nanos(Instant::now()), Ordering::Relaxed);
    }

    pub fn bytes(&self) -> u64 {
        self.bytes.load(Ordering::Relaxed)
    }

    pub fn is_done(&self) -> bool {
        self.done.load(Ordering::Relaxed) != 0
    }

    /// Whether reading the body from the client failed: then a failed exchange is the client's.
    pub fn client_failed(&self) -> bool {
        self.client_failed.load(Ordering::Relaxed)
    }

    /// Whether the body is stuck because the upstream does not read it.
    pub fn upstream_blocked(&self) -> bool {
        self.upstream_blocked.load(Ordering::Relaxed)
    }

    /// When the request runs out of time: `upstream_timeout` after the body's end, or
    /// `stream_idle_timeout` after the body last moved while it goes on.
    pub fn deadline(&self, upstream_timeout: Duration, stream_idle_timeout: Duration) -> Instant {
        match self.done.load(Ordering::Relaxed) {
            0 => self.start + Duration::from_nanos(self.last.load(Ordering::Relaxed)) + stream_idle_timeout,
            done => self.start + Duration::from_nanos(done - 1) + upstream_timeout,
        }
    }

    /// The pump wrote bytes upstream (`false`) or found the upstream's window full (`true`).
    pub fn note_upstream(&self, blocked: bool) {
        if !blocked {
            self.touch();
        }
        if self.upstream_blocked.load(Ordering::Relaxed) != blocked {
            self.upstream_blocked.store(blocked, Ordering::Relaxed);
        }
    }
}

impl RequestBody {
    /// Wraps `inner`; progress is only tracked when the body has bytes to come.
    pub fn new(inner: Option<Incoming>, start: Instant) -> (Self, Option<Arc<BodyProgress>>) {
        let progress = inner.as_ref().is_some_and(|b| !b.is_end_stream()).then(|| {
            Arc::new(BodyProgress {
                start,
                bytes: AtomicU64::new(0),
                last: AtomicU64::new(0),
                done: AtomicU64::new(0),
                upstream_blocked: AtomicBool::new(false),
                client_failed: AtomicBool::new(false),
            })
        });
        (RequestBody { inner, progress: progress.clone() }, progress)
    }

    pub fn progress(&self) -> Option<&Arc<BodyProgress>> {
        self.progress.as_ref()
    }
}

impl Body for RequestBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let Some(inner) = self.inner.as_mut() else { return Poll::Ready(None) };
        let polled = Pin::new(inner).poll_frame(cx);
        let end_stream = self.inner.as_ref().is_none_or(Body::is_end_stream);
        if let Some(p) = &self.progress {
            match &polled {
                Poll::Ready(Some(Ok(frame))) => {
                    if let Some(data) = frame.data_ref() {
                        p.bytes.fetch_add(data.len() as u64, Ordering::Relaxed);
                    }
                    // Until the next poll the body waits on whoever sends it on: a sender that
                    // stops asking (the HTTP/2 client, while the upstream's flow-control window
                    // is full) is the upstream's wait. The HTTP/1.1 pump says so itself after
                    // each write.
                    p.upstream_blocked.store(true, Ordering::Relaxed);
                    p.touch();
                    // HTTP/2 senders stop at the frame that ends the stream, never polling for
                    // the end: the body is done now.
                    if end_stream && p.done.load(Ordering::Relaxed) == 0 {
                        p.done.store(p.nanos(Instant::now()) + 1, Ordering::Relaxed);
                    }
                }
                Poll::Ready(None) => {
                    p.done.store(p.nanos(Instant::now()) + 1, Ordering::Relaxed);
                }
                Poll::Pending => p.upstream_blocked.store(false, Ordering::Relaxed),
                Poll::Ready(Some(Err(_))) => p.client_failed.store(true, Ordering::Relaxed),
            }
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.as_ref().is_none_or(Body::is_end_stream)
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.as_ref().map_or_else(|| SizeHint::with_exact(0), Body::size_hint)
    }
}
