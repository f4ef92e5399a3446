//! Body wrappers that stream bytes through untouched while counting them; the response
//! wrapper reports the request's outcome exactly once, when the body ends or is dropped.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use http_body_util::{Either, Full};
use hyper::body::Incoming;

use super::upstream::{UpstreamBody, UpstreamConn};

/// The request body sent upstream, counting what the client sent.
pub struct RequestBody {
    inner: Incoming,
    counted: Option<Arc<AtomicU64>>,
}

impl RequestBody {
    /// Wraps `inner`; a counter is only allocated when the body has bytes to count.
    pub fn new(inner: Incoming) -> (Self, Option<Arc<AtomicU64>>) {
        let counted = (!inner.is_end_stream()).then(|| Arc::new(AtomicU64::new(0)));
        (RequestBody { inner, counted: counted.clone() }, counted)
    }
}

impl Body for RequestBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        if let (Poll::Ready(Some(Ok(frame))), Some(counter)) = (&polled, &self.counted) {
            if let Some(data) = frame.data_ref() {
                counter.fetch_add(data.len() as u64, Ordering::Relaxed);
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

/// Called once with the response body bytes sent, whether the upstream body broke, and the
/// upstream connection when its body was read to its end and it can carry another request.
pub trait OnComplete: Send + 'static {
    fn complete(self, response_bytes: u64, upstream_body_failed: bool, reusable: Option<UpstreamConn>);
}

/// A response body from the upstream, or a small one the proxy made itself.
pub type InnerBody = Either<UpstreamBody, Full<Bytes>>;

pub struct ObservedBody<C: OnComplete> {
    inner: InnerBody,
    bytes: u64,
    on_complete: Option<C>,
}

impl<C: OnComplete> ObservedBody<C> {
    pub fn new(inner: InnerBody, on_complete: C) -> Self {
        ObservedBody { inner, bytes: 0, on_complete: Some(on_complete) }
    }

    fn complete(&mut self, failed: bool) {
        if let Some(c) = self.on_complete.take() {
            let reusable = match &mut self.inner {
                Either::Left(upstream) if !failed => upstream.take_reusable(),
                _ => None,
            };
            c.complete(self.bytes, failed, reusable);
        }
    }
}

impl<C: OnComplete + Unpin> Body for ObservedBody<C> {
    type Data = Bytes;
    type Error = Box<dyn std::error::Error + Send + Sync>;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = &mut *self;
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    this.bytes += data.len() as u64;
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(e))) => {
                this.complete(true);
                Poll::Ready(Some(Err(e)))
            }
            Poll::Ready(None) => {
                this.complete(false);
                Poll::Ready(None)
            }
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl<C: OnComplete> Drop for ObservedBody<C> {
    fn drop(&mut self) {
        // Bodies that end without a final poll (HEAD, client gone) still count once; the
        // upstream connection is only reused if its body had been read to the end.
        self.complete(false);
    }
}
