//! Body wrappers that stream bytes through untouched while counting them and timing their
//! pauses; the response wrapper reports the request's outcome exactly once, when the body ends,
//! fails, stalls or is dropped.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::HeaderMap;
use http_body::{Body, Frame, SizeHint};
use http_body_util::Full;
use hyper::body::Incoming;

use super::deadline::{Deadlines, Timer};
use super::upstream::h2::H2Body;
use super::upstream::{UpstreamBody, UpstreamConn};

/// The request body sent upstream, counting what the client sent and when.
pub struct RequestBody {
    inner: Incoming,
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
    pub fn new(inner: Incoming, start: Instant) -> (Self, Option<Arc<BodyProgress>>) {
        let progress = (!inner.is_end_stream()).then(|| {
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
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
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
                    if self.inner.is_end_stream() && p.done.load(Ordering::Relaxed) == 0 {
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
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// How a response body ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BodyEnd {
    /// Sent to its end.
    Complete,
    /// The upstream broke it (reset, cut, malformed chunk).
    UpstreamFailed,
    /// The upstream sent nothing for `stream_idle_timeout`.
    UpstreamStalled,
    /// A gRPC call's deadline (`grpc-timeout`) passed while its response streamed.
    DeadlineExceeded,
    /// Dropped before its end: the client went away, or redline cut the connection.
    Abandoned,
}

/// Called once with the response body bytes sent, how the body ended, and the upstream
/// connection when its body was read to its end and it can carry another request.
pub trait OnComplete: Send + 'static {
    fn complete(self, response_bytes: u64, end: BodyEnd, reusable: Option<UpstreamConn>);

    /// Where to wait, and how long, for an upstream body that stops sending.
    fn stall_limit(&self) -> Option<(&Deadlines, Duration)>;

    /// When the call must end whatever the upstream does (a gRPC deadline).
    fn call_deadline(&self) -> Option<Instant> {
        None
    }

    /// A trailer section on its way to the client, which the call may correct (a gRPC status
    /// that is no status).
    fn trailers(&mut self, _trailers: &mut HeaderMap) {}

    /// The trailers that end the response in place of a broken or expired body: a gRPC call's
    /// client then reads a status instead of a reset stream. None ends the body with an error.
    fn closing_trailers(&mut self, _end: BodyEnd) -> Option<HeaderMap> {
        None
    }
}

/// A response body from the upstream (HTTP/1.1 or HTTP/2), or a small one the proxy made itself.
pub enum InnerBody {
    H1(UpstreamBody),
    H2(H2Body),
    Own(Full<Bytes>),
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

impl InnerBody {
    fn is_upstream(&self) -> bool {
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

pub struct ObservedBody<C: OnComplete> {
    inner: InnerBody,
    bytes: u64,
    on_complete: Option<C>,
    /// Since when the upstream body has had nothing to give, while it does.
    waiting_since: Option<Instant>,
    timer: Timer,
    /// The body was ended with trailers redline made: nothing more follows.
    closed: bool,
}

impl<C: OnComplete> ObservedBody<C> {
    pub fn new(inner: InnerBody, on_complete: C) -> Self {
        ObservedBody {
            inner,
            bytes: 0,
            on_complete: Some(on_complete),
            waiting_since: None,
            timer: Timer::default(),
            closed: false,
        }
    }

    fn complete(&mut self, end: BodyEnd) {
        if let Some(c) = self.on_complete.take() {
            if let Some((deadlines, _)) = c.stall_limit() {
                deadlines.release(&mut self.timer);
            }
            let reusable = match &mut self.inner {
                InnerBody::H1(upstream) if end == BodyEnd::Complete => upstream.take_reusable(),
                _ => None,
            };
            c.complete(self.bytes, end, reusable);
        }
    }

    /// Ends the body early: with the call's closing trailers where it has them, else an error.
    #[cold]
    fn end_early(&mut self, end: BodyEnd, error: BoxError) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let closing = self.on_complete.as_mut().and_then(|c| c.closing_trailers(end));
        self.complete(end);
        match closing {
            Some(trailers) => {
                self.closed = true;
                Poll::Ready(Some(Ok(Frame::trailers(trailers))))
            }
            None => Poll::Ready(Some(Err(error))),
        }
    }

    #[cold]
    #[inline(never)]
    fn close_with(&mut self, trailers: HeaderMap) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        self.complete(BodyEnd::Complete);
        self.closed = true;
        Poll::Ready(Some(Ok(Frame::trailers(trailers))))
    }

    /// A trailer section on its way: the call may correct it (rare: kept off the data path).
    #[cold]
    #[inline(never)]
    fn pass_trailers(&mut self, frame: Frame<Bytes>) -> Frame<Bytes> {
        match (frame.into_trailers(), self.on_complete.as_mut()) {
            (Ok(mut trailers), Some(c)) => {
                c.trailers(&mut trailers);
                Frame::trailers(trailers)
            }
            (Ok(trailers), None) => Frame::trailers(trailers),
            (Err(frame), _) => frame,
        }
    }

    /// Whether an upstream body that keeps the client waiting has waited too long, or the
    /// call's deadline passed while it waited.
    fn expired(&mut self, cx: &mut Context<'_>) -> Option<BodyEnd> {
        let Some(c) = &self.on_complete else { return None };
        if !self.inner.is_upstream() {
            return None;
        }
        let (deadlines, limit) = c.stall_limit()?;
        let since = *self.waiting_since.get_or_insert_with(Instant::now);
        let stall_at = since + limit;
        let (at, end) = match c.call_deadline() {
            Some(d) if d < stall_at => (d, BodyEnd::DeadlineExceeded),
            _ => (stall_at, BodyEnd::UpstreamStalled),
        };
        deadlines.poll_timer(&mut self.timer, at, cx).is_ready().then_some(end)
    }
}

impl<C: OnComplete + Unpin> Body for ObservedBody<C> {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = &mut *self;
        if this.closed {
            return Poll::Ready(None);
        }
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    this.bytes += data.len() as u64;
                    if this.on_complete.as_ref().and_then(C::call_deadline).is_some_and(|d| Instant::now() >= d) {
                        return this.end_early(BodyEnd::DeadlineExceeded, "the call's deadline passed".into());
                    }
                    this.waiting_since = None;
                    return Poll::Ready(Some(Ok(frame)));
                }
                this.waiting_since = None;
                Poll::Ready(Some(Ok(this.pass_trailers(frame))))
            }
            Poll::Ready(Some(Err(e))) => this.end_early(BodyEnd::UpstreamFailed, e),
            Poll::Ready(None) => {
                // A call whose status never came gets one, so that its client reads what is counted.
                if let Some(trailers) = this.on_complete.as_mut().and_then(|c| c.closing_trailers(BodyEnd::Complete)) {
                    return this.close_with(trailers);
                }
                this.complete(BodyEnd::Complete);
                Poll::Ready(None)
            }
            Poll::Pending => match this.expired(cx) {
                Some(BodyEnd::DeadlineExceeded) => {
                    this.end_early(BodyEnd::DeadlineExceeded, "the call's deadline passed".into())
                }
                Some(end) => this.end_early(end, "the upstream sent nothing for stream_idle_timeout".into()),
                None => Poll::Pending,
            },
        }
    }

    fn is_end_stream(&self) -> bool {
        self.closed || self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl<C: OnComplete> Drop for ObservedBody<C> {
    fn drop(&mut self) {
        // Bodies that end without a final poll (HEAD, sized bodies) still count once; one
        // dropped before its end was abandoned. The upstream connection is only reused if its
        // body had been read to the end.
        let end = if self.inner.is_end_stream() { BodyEnd::Complete } else { BodyEnd::Abandoned };
        self.complete(end);
    }
}
