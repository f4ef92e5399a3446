//! The HTTP/1.1 fast path: redline reads the common request head itself and writes its
//! response, and hands the connection to hyper, with the bytes it has read, at the first request
//! it does not take (a body, an upgrade, `Expect`, `Connection`, `TE`, another version, a head it
//! cannot parse, the HTTP/2 preface). hyper then serves that connection to its end, with every
//! answer and log line it gave before.
//!
//! Why by hand: the callgrind profile of the proxy benchmark (docs/benchmarks.md) put hyper's
//! HTTP/1.1 server dispatch (its connection state machine, response encoder, date cache and the
//! moves of the service future and response through it) at a sixth of redline's instructions per
//! request. A GET without a body needs none of that machinery: one parse, one request, one head
//! written with the first body bytes in one `send`.
//!
//! What the fast path takes: an HTTP/1.1 request whose head parses whole within
//! `max_header_bytes` and 32 fields, with an origin-form target, a method other than CONNECT,
//! and none of `Content-Length`, `Transfer-Encoding`, `Expect`, `Upgrade`, `Connection`, `TE`,
//! `Keep-Alive`: so no body, keep-alive, and no trailers wanted. Its fields stay as the client
//! wrote them when their rewriting is the plain case (`raw_request`), else they go into a header
//! map. Its response is framed by
//! RFC 9112 section 6: no body for HEAD, 1xx, 204 and 304; otherwise the response's own
//! `Content-Length`, an exact size, or chunked. A `Date` is added when the response has none, and
//! `connection: close` once the worker drains. While the response is awaited the client socket is
//! still read: pipelined heads wait in the buffer, and a client that closes abandons its request
//! (logged `client_closed`), as hyper does.

use std::convert::Infallible;
use std::future::{Future, poll_fn};
use std::io;
use std::mem::MaybeUninit;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};

use bytes::{Bytes, BytesMut};
use http::header::{self, HeaderMap};
use http::{Method, Request, Response, StatusCode, Uri, Version};
use http_body::Body;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};

use super::conn::{ClientInfo, ClientIo};
use super::forward::{Proxy, ProxyBody};
use super::raw_request::{self, FastRequest, FieldRange, Sorter};
use super::upstream::BoxError;
use super::upstream::codec::RawFields;

/// Most header fields in a request head the fast path reads; a head with more is hyper's (whose
/// limit is 100).
const MAX_HEADERS: usize = 32;
/// The first read buffer of a connection, as hyper's.
const READ_BUF: usize = 8 * 1024;
/// Body bytes gathered behind the head (or between flushes) before they are written.
const WRITE_GATHER: usize = 64 * 1024;

/// A client connection's future: the fast path, then hyper once handed over.
pub struct ClientConn {
    draining: Arc<AtomicBool>,
    inner: Pin<Box<dyn Future<Output = Result<(), BoxError>> + Send>>,
}

impl ClientConn {
    pub fn new(
        io: ClientIo,
        proxy: Arc<Proxy>,
        client: Arc<ClientInfo>,
        hyper: auto::Builder<TokioExecutor>,
        max_head: usize,
    ) -> Self {
        let draining = Arc::new(AtomicBool::new(false));
        let conn = Conn { io, buf: BytesMut::new(), proxy, client, max_head, draining: draining.clone() };
        ClientConn { draining, inner: Box::pin(conn.serve(hyper)) }
    }

    /// Closes the connection once idle: now if no request is in progress, else after its
    /// response (which says `connection: close`).
    pub fn graceful_shutdown(self: Pin<&mut Self>) {
        self.draining.store(true, Ordering::Relaxed);
    }
}

impl Future for ClientConn {
    type Output = Result<(), BoxError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        self.inner.as_mut().poll(cx)
    }
}

struct Conn {
    io: ClientIo,
    buf: BytesMut,
    proxy: Arc<Proxy>,
    client: Arc<ClientInfo>,
    max_head: usize,
    draining: Arc<AtomicBool>,
}

/// Why the bytes at the front of the buffer are not a request the fast path takes.
#[derive(Debug, PartialEq, Eq)]
pub enum NotTaken {
    /// Not whole yet.
    Partial,
    /// Anything else: hyper's.
    Other,
}

/// How a response body goes on the wire.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Framing {
    /// Nothing follows the head.
    None,
    /// `Content-Length` bytes follow.
    Length,
    /// `transfer-encoding: chunked`.
    Chunked,
}

impl Conn {
    async fn serve(mut self, hyper: auto::Builder<TokioExecutor>) -> Result<(), BoxError> {
        let mut out = Vec::with_capacity(1024);
        loop {
            let req = loop {
                if !self.buf.is_empty() {
                    match parse_head(&mut self.buf, self.max_head) {
                        Ok(req) => break req,
                        Err(NotTaken::Partial) => {}
                        Err(NotTaken::Other) => return self.hand_over(hyper).await,
                    }
                }
                let idle = self.buf.is_empty();
                let read = poll_fn(|cx| {
                    if idle && self.draining.load(Ordering::Relaxed) {
                        return Poll::Ready(Ok(0));
                    }
                    self.poll_fill(cx)
                })
                .await;
                match read {
                    Ok(0) if !idle => return self.hand_over(hyper).await,
                    Ok(0) => return Ok(()),
                    Ok(_) => {}
                    Err(e) => return Err(e.into()),
                }
            };
            let head_only = req.request.method() == Method::HEAD;
            // Written here rather than in a function of its own: the request's future and the
            // response are then made and kept in this task's state, not moved into another's.
            let mut resp = {
                let mut answer = std::pin::pin!(self.proxy.handle(req.request, &self.client, true, req.raw));
                let (io, buf, max_head) = (&mut self.io, &mut self.buf, self.max_head);
                let mut reading = true;
                poll_fn(|cx| {
                    if let Poll::Ready(resp) = answer.as_mut().poll(cx) {
                        return Poll::Ready(Some(resp));
                    }
                    // Pipelined bytes wait in the buffer (up to a head's worth); an end of
                    // stream or a reset is the client leaving.
                    while reading && buf.len() < max_head {
                        match fill(io, buf, cx) {
                            Poll::Ready(Ok(0)) | Poll::Ready(Err(_)) => return Poll::Ready(None),
                            Poll::Ready(Ok(_)) => {}
                            Poll::Pending => return Poll::Pending,
                        }
                    }
                    reading = false;
                    Poll::Pending
                })
                .await
            };
            if resp.is_none() {
                // The client left while its request was in progress; the request was dropped
                // and logged itself as abandoned.
                return Ok(());
            }
            let close = self.draining.load(Ordering::Relaxed);
            if !self.write_response(&mut resp, head_only, close, &mut out).await? || close {
                let _ = self.io.shutdown().await;
                return Ok(());
            }
        }
    }

    fn poll_fill(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<usize>> {
        fill(&mut self.io, &mut self.buf, cx)
    }

    /// Writes the response (taken by reference: it is not moved again), and drops it once
    /// its body is read; false when the connection cannot carry another (the body failed).
    async fn write_response(
        &mut self,
        slot: &mut Option<Response<ProxyBody>>,
        head_only: bool,
        close: bool,
        out: &mut Vec<u8>,
    ) -> io::Result<bool> {
        let Some(resp) = slot.as_mut() else { return Ok(true) };
        out.clear();
        let body = BodyLength { ended: resp.body().is_end_stream(), exact: resp.body().size_hint().exact() };
        let fields = match resp.body().raw_fields() {
            Some(raw) => Fields::Raw(raw),
            None => Fields::Map(resp.headers()),
        };
        let framing = encode_head(out, resp.status(), fields, body, head_only, close);
        if framing == Framing::None {
            // Dropping the body reports it: complete when its upstream had nothing to send.
            *slot = None;
            self.io.write_all(out).await?;
            return Ok(true);
        }
        // Polled in place: the response is not moved again.
        let mut body = Pin::new(resp.body_mut());
        loop {
            // Gather what is ready; write before waiting for more.
            let frame = match poll_fn(|cx| Poll::Ready(body.as_mut().poll_frame(cx))).await {
                Poll::Ready(frame) => frame,
                Poll::Pending => {
                    if !out.is_empty() {
                        self.io.write_all(out).await?;
                        out.clear();
                    }
                    poll_fn(|cx| body.as_mut().poll_frame(cx)).await
                }
            };
            match frame {
                Some(Ok(frame)) => {
                    // Trailers are not asked for on this path (no `TE: trailers`): dropped.
                    let Ok(data) = frame.into_data() else { continue };
                    if data.is_empty() {
                        continue;
                    }
                    if framing == Framing::Chunked {
                        chunk_size_line(out, data.len());
                    }
                    if out.len() + data.len() <= WRITE_GATHER {
                        out.extend_from_slice(&data);
                    } else {
                        self.io.write_all(out).await?;
                        out.clear();
                        self.io.write_all(&data).await?;
                    }
                    if framing == Framing::Chunked {
                        out.extend_from_slice(b"\r\n");
                    }
                }
                None => {
                    if framing == Framing::Chunked {
                        out.extend_from_slice(b"0\r\n\r\n");
                    }
                    self.io.write_all(out).await?;
                    return Ok(true);
                }
                // The upstream broke the body: the client must see it cut, not complete, so
                // the connection closes without the end of the framing.
                Some(Err(_)) => {
                    self.io.write_all(out).await?;
                    return Ok(false);
                }
            }
        }
    }

    /// hyper serves the rest of the connection, reading first what was read here.
    async fn hand_over(self, hyper: auto::Builder<TokioExecutor>) -> Result<(), BoxError> {
        let Conn { io, buf, proxy, client, draining, .. } = self;
        let service = service_fn(move |req: Request<Incoming>| {
            let proxy = proxy.clone();
            let client = client.clone();
            async move { Ok::<_, Infallible>(proxy.handle(req.map(Some), &client, false, None).await) }
        });
        let io = TokioIo::new(Rewind { prefix: buf.freeze(), io });
        let conn = hyper.serve_connection_with_upgrades(io, service);
        tokio::pin!(conn);
        let mut graceful = false;
        poll_fn(|cx| {
            if !graceful && draining.load(Ordering::Relaxed) {
                graceful = true;
                conn.as_mut().graceful_shutdown();
            }
            conn.as_mut().poll(cx)
        })
        .await
    }
}

/// Parses the head at the front of `buf`, and takes it out of the buffer when the fast path
/// takes the request; its fields stay raw when they can (`raw_request`). Public for the fuzz
/// target (`fuzz/fuzz_targets/client_request_head.rs`).
pub fn parse_head(buf: &mut BytesMut, max_head: usize) -> Result<FastRequest, NotTaken> {
    let mut sorter = Sorter::default();
    let (len, fields, method, target) = {
        let mut storage = [const { MaybeUninit::<httparse::Header<'_>>::uninit() }; MAX_HEADERS];
        let mut parsed = httparse::Request::new(&mut []);
        let len =
            match httparse::ParserConfig::default().parse_request_with_uninit_headers(&mut parsed, buf, &mut storage) {
                Ok(httparse::Status::Complete(len)) if len <= max_head => len,
                Ok(httparse::Status::Partial) if buf.len() < max_head => return Err(NotTaken::Partial),
                _ => return Err(NotTaken::Other),
            };
        let (Some(method), Some(target), Some(1)) = (parsed.method, parsed.path, parsed.version) else {
            return Err(NotTaken::Other);
        };
        if method == "CONNECT" || !target.starts_with('/') {
            return Err(NotTaken::Other);
        }
        let base = buf.as_ptr() as usize;
        // Made to the fields' count and handed on as it is (the raw form keeps it): a zeroed
        // array of the most fields, copied out after, was a 512-byte memset and a copy per
        // request.
        let mut fields: Vec<FieldRange> = Vec::with_capacity(parsed.headers.len());
        for (i, h) in parsed.headers.iter().enumerate() {
            if sorter.note(i, h.name.as_bytes(), h.value).is_err() {
                return Err(NotTaken::Other);
            }
            let name = h.name.as_ptr() as usize - base;
            let value = h.value.as_ptr() as usize - base;
            fields.push((name as u32, (name + h.name.len()) as u32, value as u32, (value + h.value.len()) as u32));
        }
        let t = target.as_ptr() as usize - base;
        let Ok(method) = Method::from_bytes(method.as_bytes()) else { return Err(NotTaken::Other) };
        (len, fields, method, (t, t + target.len()))
    };
    // The target and values are slices of the head, which the request shares (no copy).
    let head = buf.split_to(len).freeze();
    // The request is made first, so that the raw form can take the head rather than share it
    // (a shared handle is an atomic count taken and given back on every request).
    match request(&head, target, &fields, method, !sorter.raw()) {
        Some(request) => Ok(FastRequest { request, raw: sorter.finish(head, fields) }),
        None => {
            // A target or field that httparse let through and `http` refuses: hyper answers it,
            // from the same bytes.
            let mut restored = BytesMut::with_capacity(head.len() + buf.len());
            restored.extend_from_slice(&head);
            restored.extend_from_slice(buf);
            *buf = restored;
            Err(NotTaken::Other)
        }
    }
}

/// The request, its fields in a header map when `map` (else the raw form carries them).
fn request(
    head: &Bytes,
    target: (usize, usize),
    fields: &[FieldRange],
    method: Method,
    map: bool,
) -> Option<Request<Option<Incoming>>> {
    let uri = Uri::from_maybe_shared(head.slice(target.0..target.1)).ok()?;
    let mut req = Request::new(None);
    if map {
        // Room for what the proxy adds (X-Forwarded-*, traceparent and the like) without a rehash.
        *req.headers_mut() = raw_request::header_map(head, fields, 6)?;
    }
    *req.method_mut() = method;
    *req.uri_mut() = uri;
    *req.version_mut() = Version::HTTP_11;
    Some(req)
}

/// What a response body says of its length before it is read.
#[derive(Clone, Copy, Debug)]
struct BodyLength {
    /// Nothing to read.
    ended: bool,
    /// Its exact size, when known.
    exact: Option<u64>,
}

/// A response's fields: in its `HeaderMap`, or as the upstream wrote them.
#[derive(Clone, Copy)]
enum Fields<'a> {
    Map(&'a HeaderMap),
    Raw(&'a RawFields),
}

/// Writes the status line and fields of a response to an HTTP/1.1 request, and says how its
/// body follows. `head_only`: the request was HEAD.
fn encode_head(
    out: &mut Vec<u8>,
    status: StatusCode,
    fields: Fields<'_>,
    body: BodyLength,
    head_only: bool,
    close: bool,
) -> Framing {
    if status == StatusCode::OK {
        out.extend_from_slice(b"HTTP/1.1 200 OK\r\n");
    } else {
        out.extend_from_slice(b"HTTP/1.1 ");
        out.extend_from_slice(status.as_str().as_bytes());
        out.push(b' ');
        out.extend_from_slice(status.canonical_reason().unwrap_or("<none>").as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    // RFC 9112 section 6.3: these responses end at their head, whatever their fields say.
    let bodiless = head_only
        || status.is_informational()
        || status == StatusCode::NO_CONTENT
        || status == StatusCode::NOT_MODIFIED;
    // 1xx and 204 carry no Content-Length (RFC 9110 section 8.6); HEAD and 304 keep the one the
    // upstream sent, which describes the representation.
    let length_allowed = !(status.is_informational() || status == StatusCode::NO_CONTENT);
    let mut field = |name: &[u8], value: &[u8]| {
        out.extend_from_slice(name);
        out.extend_from_slice(b": ");
        out.extend_from_slice(value);
        out.extend_from_slice(b"\r\n");
    };
    let (has_length, has_date) = match fields {
        Fields::Map(headers) => {
            let (mut has_length, mut has_date) = (false, false);
            for (name, value) in headers {
                if *name == header::CONTENT_LENGTH {
                    if !length_allowed {
                        continue;
                    }
                    has_length = true;
                } else if *name == header::TRANSFER_ENCODING || *name == header::CONNECTION {
                    // The framing and the connection are this hop's, decided here.
                    continue;
                } else if *name == header::DATE {
                    has_date = true;
                }
                field(name.as_str().as_bytes(), value.as_bytes());
            }
            (has_length, has_date)
        }
        // The codec left the hop-by-hop fields out already.
        Fields::Raw(raw) => {
            raw.encode(out, !length_allowed);
            (raw.has_length && length_allowed, raw.has_date)
        }
    };
    if !has_date {
        date::write(out);
    }
    if close {
        out.extend_from_slice(b"connection: close\r\n");
    }
    let framing = if bodiless {
        Framing::None
    } else if has_length {
        Framing::Length
    } else if body.ended {
        out.extend_from_slice(b"content-length: 0\r\n");
        Framing::None
    } else if let Some(n) = body.exact {
        out.extend_from_slice(b"content-length: ");
        out.extend_from_slice(itoa::Buffer::new().format(n).as_bytes());
        out.extend_from_slice(b"\r\n");
        Framing::Length
    } else {
        out.extend_from_slice(b"transfer-encoding: chunked\r\n");
        Framing::Chunked
    };
    out.extend_from_slice(b"\r\n");
    framing
}

/// The chunk-size line before `len` bytes of a chunked body, written in place (no allocation).
fn chunk_size_line(out: &mut Vec<u8>, len: usize) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let digits = (usize::BITS - len.leading_zeros()).div_ceil(4).max(1);
    for i in (0..digits).rev() {
        out.push(HEX[(len >> (4 * i)) & 0xf]);
    }
    out.extend_from_slice(b"\r\n");
}

/// The `Date` field (RFC 9110 section 6.6.1), formatted once a second per worker thread.
mod date {
    use std::cell::RefCell;
    use std::time::{SystemTime, UNIX_EPOCH};

    thread_local! {
        static CACHED: RefCell<(u64, Vec<u8>)> = const { RefCell::new((u64::MAX, Vec::new())) };
    }

    pub fn write(out: &mut Vec<u8>) {
        let now = SystemTime::now();
        let second = now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
        CACHED.with_borrow_mut(|(at, line)| {
            if *at != second {
                *at = second;
                line.clear();
                line.extend_from_slice(b"date: ");
                line.extend_from_slice(httpdate::fmt_http_date(now).as_bytes());
                line.extend_from_slice(b"\r\n");
            }
            out.extend_from_slice(line);
        });
    }
}

/// Reads into `buf`, with room for at least 1 KiB more.
fn fill(io: &mut ClientIo, buf: &mut BytesMut, cx: &mut Context<'_>) -> Poll<io::Result<usize>> {
    if buf.capacity() - buf.len() < 1024 {
        buf.reserve(READ_BUF);
    }
    tokio_util::io::poll_read_buf(Pin::new(io), cx, buf)
}

/// The client socket with the bytes the fast path read ahead in front, for hyper.
struct Rewind {
    prefix: Bytes,
    io: ClientIo,
}

impl AsyncRead for Rewind {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        if !self.prefix.is_empty() {
            let n = self.prefix.len().min(buf.remaining());
            buf.put_slice(&self.prefix.split_to(n));
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl AsyncWrite for Rewind {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, data: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, data)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }
}

#[cfg(test)]
#[path = "h1_props.rs"]
mod props;
