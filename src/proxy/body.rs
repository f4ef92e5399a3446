//! The response body wrapper: streams the upstream's bytes through untouched while counting
//! them and timing their pauses, and reports the request's outcome exactly once, when the body
//! ends, fails, stalls or is dropped (the request body's counterpart is `upstream::RequestBody`).

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::HeaderMap;
use http_body::{Body, Frame, SizeHint};

use super::deadline::{Deadlines, Timer};
use super::upstream::{BoxError, InnerBody, UpstreamConn};

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
    /// Called once, when the body ends; the value is dropped right after, where it lies (taking
    /// `self` by value moved its 320 bytes twice per request).
    fn complete(&mut self, response_bytes: u64, end: BodyEnd, reusable: Option<Box<UpstreamConn>>);

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
    /// The upstream's response fields as it wrote them, when they were asked for raw.
    pub fn raw_fields(&self) -> Option<&super::upstream::codec::RawFields> {
        self.inner.raw_fields()
    }
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
        if let Some(c) = self.on_complete.as_mut() {
            if let Some((deadlines, _)) = c.stall_limit() {
                deadlines.release(&mut self.timer);
            }
            let reusable = match &mut self.inner {
                InnerBody::H1(upstream) if end == BodyEnd::Complete => upstream.take_reusable(),
                _ => None,
            };
            c.complete(self.bytes, end, reusable);
            self.on_complete = None;
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
