//! One proxied exchange: check and route the request, trace it, rewrite headers, forward it
//! upstream (HTTP/1.1 or HTTP/2), map failures to JSON errors (gRPC statuses for gRPC calls),
//! and record metrics and the access line exactly once when it ends, however it ends
//! (completed, failed, abandoned by the client, cut by redline).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll, ready};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::future::Either;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::uri::{Authority, PathAndQuery, Scheme, Uri};
use http::{Request, Response, StatusCode, Version};
use http_body_util::Full;
use hyper::body::Incoming;

use super::body::{BodyEnd, ObservedBody, OnComplete};
use super::conn::{ClientInfo, ConnCounters, ConnEnd, CutReason};
use super::deadline::Deadlines;
use super::raw_request::{RawForward, RawRequest};
use super::route::{Route, RouteTable};
use super::upstream::h2::H2Pool;
use super::upstream::{
    BodyProgress, ExchangeError, InUse, InnerBody, RequestBody, UpstreamConn, UpstreamError, UpstreamGauges,
    UpstreamHead, UpstreamPool, UpstreamProtocol,
};
use crate::grpc::{self, Code};
use crate::telemetry::access_log::{AccessLine, AccessLog, RpcFields};
use crate::telemetry::otlp::{FinishedSpan, SpanRpc};
use crate::telemetry::propagation::Propagator;
use crate::telemetry::red::{ActiveRequest, ErrorType, Exemplar, MethodLabel, RedMetrics, RequestOutcome, RpcOutcome};
use crate::telemetry::spans::SpanSink;
use crate::telemetry::trace_context::TraceContext;
use crate::telemetry::wall_clock::{self, UnixNanos};

pub type ProxyBody = ObservedBody<Box<Completion>>;

pub struct ProxySettings {
    pub upstream_authority: String,
    pub upstream_protocol: UpstreamProtocol,
    /// From the end of the request body to the upstream's response head.
    pub upstream_timeout: Duration,
    /// The longest pause in a request or response body.
    pub stream_idle_timeout: Duration,
    pub sampler_ratio: f64,
    /// Where finished sampled spans go; None exports nothing (context is still propagated).
    pub spans: Option<Arc<SpanSink>>,
    /// Formats injected upstream besides W3C `traceparent`.
    pub propagators: Vec<Propagator>,
    pub access_log: Arc<AccessLog>,
}

/// One worker's proxy: its own upstream pool; routes, metrics and logs are shared.
pub struct Proxy {
    pool: UpstreamPool,
    h2: H2Pool,
    protocol: UpstreamProtocol,
    /// The upstream's authority, for HTTP/2 requests that name none.
    upstream_authority: Authority,
    deadlines: Deadlines,
    /// The `Host` sent upstream when the client sent none (HTTP/1.0).
    upstream_host: HeaderValue,
    routes: Arc<RouteTable>,
    red: Arc<RedMetrics>,
    gauges: Arc<UpstreamGauges>,
    access_log: Arc<AccessLog>,
    upstream_timeout: Duration,
    stream_idle_timeout: Duration,
    sampler_ratio: f64,
    spans: Option<Arc<SpanSink>>,
    propagators: Vec<Propagator>,
    connections: Arc<ConnCounters>,
    /// Set when the drain ran out of time: requests dropped from then on were cut by it.
    shutting_down: AtomicBool,
}

impl Proxy {
    pub fn new(
        s: &ProxySettings,
        routes: Arc<RouteTable>,
        red: Arc<RedMetrics>,
        gauges: Arc<UpstreamGauges>,
        connections: Arc<ConnCounters>,
    ) -> Result<Self, String> {
        let upstream_host = HeaderValue::from_str(&s.upstream_authority)
            .map_err(|e| format!("upstream: bad host:port {:?}: {e}", s.upstream_authority))?;
        let upstream_authority = Authority::try_from(s.upstream_authority.as_str())
            .map_err(|e| format!("upstream: bad host:port {:?}: {e}", s.upstream_authority))?;
        Ok(Proxy {
            pool: UpstreamPool::new(s.upstream_authority.clone(), gauges.clone(), s.upstream_timeout),
            h2: H2Pool::new(s.upstream_authority.clone(), gauges.clone(), s.upstream_timeout),
            protocol: s.upstream_protocol,
            upstream_authority,
            // A 504 may come up to a tenth of the timeout (at most 50ms) late.
            deadlines: Deadlines::new(
                (s.upstream_timeout.min(s.stream_idle_timeout) / 10).min(Duration::from_millis(50)),
            ),
            upstream_host,
            routes,
            red,
            gauges,
            access_log: s.access_log.clone(),
            upstream_timeout: s.upstream_timeout,
            stream_idle_timeout: s.stream_idle_timeout,
            sampler_ratio: s.sampler_ratio,
            spans: s.spans.clone(),
            propagators: s.propagators.clone(),
            connections,
            shutting_down: AtomicBool::new(false),
        })
    }

    /// The upstream response deadlines, swept by the worker's housekeeping task.
    pub fn deadlines(&self) -> &Deadlines {
        &self.deadlines
    }

    /// Run on the worker's housekeeping tick: expires upstream deadlines and idle connections.
    pub fn sweep(&self, now: Instant) {
        self.deadlines.sweep(now);
        self.pool.sweep(now);
        self.h2.sweep(now);
    }

    /// Marks the worker's drain as run out: requests dropped from now on were cut by it.
    pub fn shutting_down(&self) {
        self.shutting_down.store(true, Ordering::Relaxed);
    }

    /// Reports how a client connection ended where no request of it could: a request head
    /// hyper refused (it answered 400, 414 or 431 itself) or one cut at `header_read_timeout`.
    pub fn connection_ended(self: &Arc<Self>, client: &Arc<ClientInfo>, end: &ConnEnd) {
        match end {
            ConnEnd::Closed(Err(e)) => {
                let Some(e) = e.downcast_ref::<hyper::Error>() else { return };
                if !e.is_parse() || e.is_parse_version_h2() {
                    return;
                }
                // The status hyper wrote (its `on_error`): 431 or 414 for heads over the limits.
                let status = if !e.is_parse_too_large() {
                    StatusCode::BAD_REQUEST
                } else if e.to_string().starts_with("URI too long") {
                    StatusCode::URI_TOO_LONG
                } else {
                    StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE
                };
                self.record_unread(client, status.as_u16(), ErrorType::ClientInvalidRequest);
            }
            ConnEnd::Cut(reason) => {
                self.connections.closed(*reason);
                if *reason == CutReason::HeaderTimeout && client.clock.had_partial_head() {
                    // Closed without an answer (as hyper and nginx do): no status.
                    self.record_unread(client, 0, ErrorType::ClientTimeout);
                }
            }
            ConnEnd::Closed(Ok(())) => {}
        }
    }

    /// One access line and one count for a request whose head was never read whole.
    fn record_unread(self: &Arc<Self>, client: &Arc<ClientInfo>, status: u16, error: ErrorType) {
        let method = http::Method::from_bytes(b"_OTHER").unwrap_or_default();
        let method_label = MethodLabel::of(&method);
        Box::new(Completion {
            proxy: self.clone(),
            _active: self.red.start(method_label),
            _in_use: None,
            start: client.clock.phase_start(),
            method,
            method_label,
            route: self.routes.unmatched().clone(),
            path: None,
            status,
            error: Some(error),
            upstream_answered: false,
            request_bytes: None,
            client: client.clone(),
            on_connection: false,
            user_agent: None,
            trace: TraceContext::from_headers(&HeaderMap::new(), 0.0),
            span: None,
            grpc: None,
            reported: false,
        })
        .complete(0, BodyEnd::Complete, None);
    }

    /// Answers one request. The body is `None` for a request the HTTP/1.1 fast path (`h1.rs`)
    /// read itself, which carries none. `raw_fields`: the client's connection writes an HTTP/1.1
    /// upstream's response fields as they came (the fast path), so no `HeaderMap` is built for
    /// them unless the call needs one (gRPC). `raw`: the fast path kept the request's fields as
    /// the client wrote them (`raw_request`), and `req`'s header map is empty.
    ///
    /// Everything up to the wait for the upstream runs in this call (the request is checked,
    /// routed, traced and its head written for the upstream); the returned future holds only
    /// what the answer needs. So the future, which the connection moves, stays small: an
    /// `async fn` would keep the request and its rewritten head in it to the end.
    pub fn handle<'a>(
        self: &'a Arc<Self>,
        mut req: Request<Option<Incoming>>,
        client: &'a Arc<ClientInfo>,
        raw_fields: bool,
        mut raw: Option<RawRequest>,
    ) -> Handling<'a, impl Future<Output = Sent> + Send + 'a> {
        let start = Instant::now();
        client.clock.request_started();
        let method = req.method().clone();
        let method_label = MethodLabel::of(&method);
        let active = self.red.start(method_label);
        let route = self.routes.route_of(req.uri().path());
        // An HTTP/2 upstream is sent the header map's fields.
        let mut bad_field = false;
        if self.protocol == UpstreamProtocol::Http2
            && let Some(r) = raw.take()
        {
            match r.header_map() {
                Some(headers) => *req.headers_mut() = headers,
                None => bad_field = true,
            }
        }
        let trace = match &raw {
            Some(r) => TraceContext::from_traceparent(r.traceparent(), self.sampler_ratio),
            None => TraceContext::from_headers(req.headers(), self.sampler_ratio),
        };
        // Kept as slices of the request head (the client connection's read buffer) until the
        // request ends: the span is encoded then, and nothing outlives the request.
        let user_agent = match &raw {
            Some(r) => r.user_agent_bytes(),
            None => req.headers().get(header::USER_AGENT).map(|v| Bytes::copy_from_slice(v.as_bytes())),
        };
        let path = req.uri().path_and_query().cloned();
        let host = match &raw {
            // An origin-form target (the fast path's) names no authority: the Host is the one.
            Some(r) if valid_authority(r.host()) => Ok(Host::Raw),
            Some(_) => Err("invalid Host header"),
            None if bad_field => Err("invalid header field"),
            None => checked_host(&req),
        };
        let span = match (&self.spans, trace.sampled) {
            (Some(_), true) => Some(SpanStart {
                wall: wall_clock::wall(start),
                version: req.version(),
                host: match &host {
                    Ok(Host::AsSent(h) | Host::Replace(h)) => Some(Bytes::copy_from_slice(h.as_bytes())),
                    Ok(Host::Raw) => raw.as_ref().map(RawRequest::host_bytes),
                    _ => None,
                },
            }),
            _ => None,
        };

        // The fast path's raw requests ask for no upgrade (`Upgrade` is not among their fields).
        let upgrade = if raw.is_some() { None } else { requested_upgrade(&req) };
        let client_upgraded = upgrade.is_some().then(|| hyper::upgrade::on(&mut req));
        // gRPC calls are POSTs: other methods are spared the header lookup.
        let grpc = (req.method() == http::Method::POST && grpc::is_grpc(req.headers())).then(|| {
            Box::new(GrpcCall {
                deadline: req
                    .headers()
                    .get(grpc::GRPC_TIMEOUT)
                    .and_then(|v| grpc::parse_timeout(v.as_bytes()))
                    .map(|t| start + t),
                code: None,
            })
        });
        // Protocol upgrades (WebSocket) exist in HTTP/1.1 only.
        let over_h2 = upgrade.is_none()
            && match self.protocol {
                UpstreamProtocol::Auto => req.version() == Version::HTTP_2,
                UpstreamProtocol::Http2 => true,
                UpstreamProtocol::Http1 => false,
            };

        let (mut parts, body) = req.into_parts();
        let (body, progress) = RequestBody::new(body, start);
        // Boxed: the completion goes from here into the response body through several moves,
        // each a 320-byte copy in place of a pointer's (callgrind counted about ten).
        let mut done = Box::new(Completion {
            proxy: self.clone(),
            _active: active,
            _in_use: None,
            start,
            method,
            method_label,
            route,
            path,
            status: 0,
            error: None,
            upstream_answered: false,
            request_bytes: progress.clone(),
            client: client.clone(),
            on_connection: true,
            user_agent,
            trace,
            span,
            grpc,
            reported: false,
        });
        // Nothing the upstream should not see goes to it: a Host that is missing, repeated or
        // malformed (RFC 9112 section 3.2), or a forward-proxy tunnel request.
        if done.method == http::Method::CONNECT {
            let mut resp = error_response(
                StatusCode::METHOD_NOT_ALLOWED,
                ErrorType::ClientInvalidRequest,
                "CONNECT is not served: this is a reverse proxy",
                done,
            );
            resp.headers_mut()
                .insert(header::ALLOW, HeaderValue::from_static("GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS, TRACE"));
            return Handling::answered(resp);
        }
        let host = match host {
            Ok(host) => host,
            Err(why) => {
                return Handling::answered(error_response(
                    StatusCode::BAD_REQUEST,
                    ErrorType::ClientInvalidRequest,
                    why,
                    done,
                ));
            }
        };
        let head = match raw {
            Some(request) => UpstreamHead::Fields(
                parts.method,
                RawForward {
                    request,
                    client_ip: client.ip.as_bytes(),
                    trace: done.trace.outgoing(),
                    formats: &self.propagators,
                },
            ),
            None => {
                prepare_upstream_headers(&mut parts.headers, host, client, &self.upstream_host);
                done.trace.inject(&mut parts.headers, &self.propagators);
                if let Some(protocol) = &upgrade {
                    // Upgrade is hop-by-hop: redline asks the upstream itself, on this request's
                    // connection.
                    parts.headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
                    parts.headers.insert(header::UPGRADE, protocol.clone());
                }
                UpstreamHead::Map(parts)
            }
        };

        // The upstream has `upstream_timeout` from the end of the request body (from the start
        // without one); while the body goes on, it may pause for `stream_idle_timeout` at most.
        // A gRPC call may be a long stream: it is bounded by its own deadline and by pauses of
        // `stream_idle_timeout`, never by `upstream_timeout`.
        let call_deadline = done.grpc.as_ref().and_then(|g| g.deadline);
        let idle = self.stream_idle_timeout;
        let upstream_timeout = if done.grpc.is_some() { idle } else { self.upstream_timeout };
        let watched = progress.clone();
        let deadline = move || {
            let at = match &watched {
                Some(p) => p.deadline(upstream_timeout, idle),
                None => start + upstream_timeout,
            };
            call_deadline.map_or(at, |d| d.min(at))
        };
        let sent = match head {
            // A raw head never goes over HTTP/2 (it was made a map above).
            // Boxed: HTTP/2's future is twice the size of HTTP/1.1's, which every request's
            // future would otherwise carry and copy as it moves.
            UpstreamHead::Map(parts) if over_h2 => Either::Right(Box::pin(
                self.send_h2(into_h2_request(parts, body, done.path.as_ref(), &self.upstream_authority), deadline),
            )),
            head => {
                done._in_use = Some(self.gauges.exchange());
                // The upstream connection takes the origin form (`/path?query`).
                let target = done.path.as_ref().map_or("/", |p| p.as_str());
                let raw_fields = raw_fields && done.grpc.is_none();
                let send = self.pool.send(head, target, body, start, upgrade.is_some(), raw_fields);
                Either::Left(self.deadlines.watch(deadline, send))
            }
        };
        Handling::Forwarding {
            sent,
            waiting: Some(Waiting { done, progress, call_deadline, client_upgraded }),
            proxy: self,
            client,
        }
    }

    /// The response to a request the upstream answered, or failed to.
    fn answer(&self, waiting: Waiting, sent: Sent, client: &Arc<ClientInfo>) -> Response<ProxyBody> {
        let Waiting { mut done, progress, call_deadline, client_upgraded } = waiting;
        match sent {
            Ok(Ok(resp)) => {
                // The upstream's hop-by-hop fields were left behind when its head was parsed.
                let (mut parts, body) = resp.into_parts();
                done.status = parts.status.as_u16();
                done.upstream_answered = true;
                if parts.status.is_server_error() {
                    done.error = Some(ErrorType::Status);
                }
                if let Some(call) = &mut done.grpc {
                    grpc_head(call, done.status, &mut parts.headers);
                }
                if parts.status == StatusCode::SWITCHING_PROTOCOLS {
                    // Only an upgrade request gets here (the codec refuses other 101s). The
                    // exchange is over for metrics and logs; the tunnel keeps the upstream
                    // connection counted as active until it closes.
                    if let (Some(client_upgraded), InnerBody::H1(body)) = (client_upgraded, body)
                        && let Some(conn) = body.into_upgraded()
                    {
                        tokio::spawn(super::tunnel::carry(client_upgraded, conn, done._in_use.take(), client.clone()));
                    }
                    return Response::from_parts(parts, ObservedBody::new(InnerBody::Own(Full::default()), done));
                }
                Response::from_parts(parts, ObservedBody::new(body, done))
            }
            Ok(Err(e)) => {
                let (status, error, message) = classify(&e, progress.as_deref());
                done._in_use = None;
                error_response(status, error, message, done)
            }
            Err(_elapsed) => {
                done._in_use = None;
                match &progress {
                    _ if call_deadline.is_some_and(|d| Instant::now() >= d) => grpc_response(
                        Code::DeadlineExceeded,
                        ErrorType::GrpcDeadlineExceeded,
                        "the call's deadline (grpc-timeout) passed",
                        done,
                    ),
                    // The client stopped sending its body: its fault, and it is told so.
                    Some(p) if !p.is_done() && !p.upstream_blocked() => error_response(
                        StatusCode::REQUEST_TIMEOUT,
                        ErrorType::ClientTimeout,
                        "the request body stalled",
                        done,
                    ),
                    _ => error_response(StatusCode::GATEWAY_TIMEOUT, ErrorType::Timeout, "upstream timed out", done),
                }
            }
        }
    }
}

/// What the answer to a forwarded request needs once the upstream's response head (or a
/// failure) is in.
pub struct Waiting {
    done: Box<Completion>,
    progress: Option<Arc<BodyProgress>>,
    call_deadline: Option<Instant>,
    client_upgraded: Option<hyper::upgrade::OnUpgrade>,
}

pin_project_lite::pin_project! {
    /// A request in progress ([`Proxy::handle`]): answered by redline already, or waiting for
    /// the upstream's response head. Dropped while waiting, its request is reported abandoned
    /// (the completion's drop), after the upstream exchange is let go.
    #[project = HandlingProj]
    pub enum Handling<'a, F> {
        Answered { response: Option<Response<ProxyBody>> },
        Forwarding {
            #[pin]
            sent: F,
            waiting: Option<Waiting>,
            proxy: &'a Proxy,
            client: &'a Arc<ClientInfo>,
        },
    }
}

impl<F> Handling<'_, F> {
    fn answered(response: Response<ProxyBody>) -> Self {
        Handling::Answered { response: Some(response) }
    }
}

impl<F: Future<Output = Sent>> Future for Handling<'_, F> {
    type Output = Response<ProxyBody>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        // A future polled again after its answer may pend forever; it never answers twice.
        match self.project() {
            HandlingProj::Answered { response } => response.take().map_or(Poll::Pending, Poll::Ready),
            HandlingProj::Forwarding { sent, waiting, proxy, client } => {
                let sent = ready!(sent.poll(cx));
                waiting.take().map_or(Poll::Pending, |waiting| Poll::Ready(proxy.answer(waiting, sent, client)))
            }
        }
    }
}

pub type Sent = Result<Result<Response<InnerBody>, UpstreamError>, super::deadline::Elapsed>;

impl Proxy {
    /// The exchange over HTTP/2, within the request's deadline. A boxed trait object: the
    /// HTTP/1.1 path's future and its poll, which hyper inlines into the connection task, do
    /// not carry the HTTP/2 client's code.
    #[inline(never)]
    fn send_h2<'a>(
        &'a self,
        req: Request<RequestBody>,
        deadline: impl Fn() -> Instant + Send + 'a,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Sent> + Send + 'a>> {
        Box::pin(self.deadlines.watch(deadline, self.h2.send(req)))
    }
}

/// What a gRPC call's response head says of its status: a trailers-only answer carries it
/// (made well-formed in place), a non-200 status maps to one, a 200 leaves it to the trailers.
#[cold]
#[inline(never)]
fn grpc_head(call: &mut GrpcCall, status: u16, headers: &mut HeaderMap) {
    call.code = match headers.contains_key(grpc::GRPC_STATUS) {
        true => Some(grpc::checked_status(headers)),
        false => grpc::status_of_head(status, headers),
    };
}

/// What an HTTP/2 upstream is sent: the absolute target, its authority the request's `Host`
/// (now `:authority`), the client's `TE: trailers` kept as HTTP/2 allows.
#[inline(never)]
fn into_h2_request(
    mut parts: http::request::Parts,
    body: RequestBody,
    path: Option<&PathAndQuery>,
    upstream: &Authority,
) -> Request<RequestBody> {
    let authority = parts
        .headers
        .remove(header::HOST)
        .and_then(|h| Authority::try_from(h.as_bytes()).ok())
        .unwrap_or_else(|| upstream.clone());
    let mut uri = http::uri::Parts::default();
    uri.scheme = Some(Scheme::HTTP);
    uri.authority = Some(authority);
    uri.path_and_query = Some(path.cloned().unwrap_or_else(|| PathAndQuery::from_static("/")));
    parts.uri = Uri::from_parts(uri).unwrap_or_else(|_| Uri::from_static("/"));
    parts.version = Version::HTTP_2;
    Request::from_parts(parts, body)
}

/// A gRPC call in progress: its deadline and, once known, its status.
#[derive(Clone, Copy, Debug)]
pub struct GrpcCall {
    /// From `grpc-timeout`, counted from the request's arrival.
    deadline: Option<Instant>,
    /// From the response head (trailers-only, or a non-200 status), the trailers, or redline.
    code: Option<Code>,
}

/// What the upstream's `Host` is to be.
pub(super) enum Host {
    /// The request's own, as sent (kept for the span).
    AsSent(HeaderValue),
    /// The authority of the request target (absolute form, HTTP/2 `:authority`).
    Replace(HeaderValue),
    /// None was sent (HTTP/1.0): the upstream's own.
    Missing,
    /// The request's own, as sent, in its raw fields (`raw_request`).
    Raw,
}

/// The request's `Host`, checked as RFC 9112 section 3.2 asks: exactly one on HTTP/1.1 (none is
/// fine on HTTP/1.0), a valid `host[:port]` without user info, and replaced by the target's
/// authority when the request line has the absolute form (3.2.2). On HTTP/2, `:authority` is
/// the authority, and a `Host` that names another is refused (RFC 9113 section 8.3.1).
fn checked_host<B>(req: &Request<B>) -> Result<Host, &'static str> {
    let mut hosts = req.headers().get_all(header::HOST).iter();
    let host = hosts.next();
    if hosts.next().is_some() {
        return Err("more than one Host header");
    }
    if let Some(h) = host
        && !valid_authority(h.as_bytes())
    {
        return Err("invalid Host header");
    }
    let authority = req.uri().authority().map(|a| a.as_str());
    match (req.version(), authority, host) {
        (Version::HTTP_2, Some(a), Some(h)) if !a.as_bytes().eq_ignore_ascii_case(h.as_bytes()) => {
            Err("Host and :authority disagree")
        }
        (_, Some(a), _) if !valid_authority(a.as_bytes()) => Err("invalid authority in the request target"),
        (_, Some(a), Some(h)) if a.as_bytes() == h.as_bytes() => Ok(Host::AsSent(h.clone())),
        (_, Some(a), _) => {
            HeaderValue::from_str(a).map(Host::Replace).map_err(|_| "invalid authority in the request target")
        }
        (Version::HTTP_11, None, None) => Err("HTTP/1.1 request without a Host header"),
        (_, None, None) => Ok(Host::Missing),
        (_, None, Some(h)) => Ok(Host::AsSent(h.clone())),
    }
}

/// The bytes of a reg-name (RFC 3986 section 3.2.2): unreserved, sub-delims and `%`.
const REG_NAME: [bool; 256] = {
    let mut t = [false; 256];
    let mut c = 0;
    while c < 256 {
        let b = c as u8;
        t[c] = b.is_ascii_alphanumeric()
            || matches!(
                b,
                b'-' | b'.'
                    | b'_'
                    | b'~'
                    | b'!'
                    | b'$'
                    | b'&'
                    | b'\''
                    | b'('
                    | b')'
                    | b'*'
                    | b'+'
                    | b','
                    | b';'
                    | b'='
                    | b'%'
            );
        c += 1;
    }
    t
};

/// `uri-host [ ":" port ]` (RFC 3986 section 3.2.2, RFC 9110 section 7.2): a reg-name or IP
/// literal, no user info or path, and a port of 0-65535 when a colon is written. Checked in
/// place with a table: this runs on every request.
fn valid_authority(b: &[u8]) -> bool {
    let port = if b.first() == Some(&b'[') {
        let Some(end) = b.iter().position(|&c| c == b']') else { return false };
        let literal = &b[1..end];
        if literal.is_empty() || !literal.iter().all(|c| c.is_ascii_hexdigit() || matches!(c, b':' | b'.')) {
            return false;
        }
        &b[end + 1..]
    } else {
        let mut split = 0;
        while split < b.len() && REG_NAME[b[split] as usize] {
            split += 1;
        }
        if split == 0 {
            return false;
        }
        &b[split..]
    };
    match port {
        [] => true,
        [b':', digits @ ..] if !digits.is_empty() && digits.len() <= 5 => {
            let mut n = 0u32;
            for d in digits {
                if !d.is_ascii_digit() {
                    return false;
                }
                n = n * 10 + u32::from(d - b'0');
            }
            n <= 65535
        }
        _ => false,
    }
}

/// The protocol an HTTP/1.1 client asks to switch to (`Upgrade`, with `upgrade` listed in
/// `Connection`), e.g. `websocket`. `h2c` is not passed on: redline speaks HTTP/2 to clients
/// itself (with prior knowledge), and its upstream side is HTTP/1.1.
fn requested_upgrade<B>(req: &Request<B>) -> Option<HeaderValue> {
    if req.version() != Version::HTTP_11 {
        return None;
    }
    let protocol = req.headers().get(header::UPGRADE)?;
    let asked = req
        .headers()
        .get_all(header::CONNECTION)
        .iter()
        .any(|v| v.to_str().is_ok_and(|v| v.split(',').any(|token| token.trim().eq_ignore_ascii_case("upgrade"))));
    let h2c = protocol.as_bytes().split(|&b| b == b',').any(|p| p.trim_ascii().eq_ignore_ascii_case(b"h2c"));
    (asked && !h2c).then(|| protocol.clone())
}

fn classify(e: &UpstreamError, progress: Option<&BodyProgress>) -> (StatusCode, ErrorType, &'static str) {
    match e {
        UpstreamError::Connect(io) if io.kind() == std::io::ErrorKind::ConnectionRefused => {
            (StatusCode::BAD_GATEWAY, ErrorType::ConnectionRefused, "upstream refused the connection")
        }
        UpstreamError::Connect(io) if io.kind() == std::io::ErrorKind::TimedOut => {
            (StatusCode::GATEWAY_TIMEOUT, ErrorType::Timeout, "upstream timed out")
        }
        UpstreamError::ConnectTimeout => (StatusCode::GATEWAY_TIMEOUT, ErrorType::Timeout, "upstream timed out"),
        UpstreamError::Connect(_) => (StatusCode::BAD_GATEWAY, ErrorType::ConnectError, "cannot connect to upstream"),
        // The client's own body failed on its way: its fault, never the service's.
        UpstreamError::Exchange(ExchangeError::ClientBody(e)) => match client_body_fault(e) {
            ErrorType::ClientInvalidRequest => {
                (StatusCode::BAD_REQUEST, ErrorType::ClientInvalidRequest, "malformed request body")
            }
            _ => (StatusCode::BAD_REQUEST, ErrorType::ClientClosed, "the request body ended early"),
        },
        UpstreamError::Exchange(_) => (
            StatusCode::BAD_GATEWAY,
            ErrorType::UpstreamError,
            "upstream closed the connection or sent an invalid response",
        ),
        // hyper's HTTP/2 client ends the stream when the client's body fails on its way.
        UpstreamError::H2(_) if progress.is_some_and(BodyProgress::client_failed) => {
            (StatusCode::BAD_REQUEST, ErrorType::ClientClosed, "the request body ended early")
        }
        UpstreamError::H2(_) => (
            StatusCode::BAD_GATEWAY,
            ErrorType::UpstreamError,
            "upstream reset the stream, closed the connection or does not speak HTTP/2",
        ),
    }
}

/// A request body that failed to arrive: cut short (the client closed or reset, or sent less
/// than its `Content-Length`) or malformed (bad chunk framing).
fn client_body_fault(e: &hyper::Error) -> ErrorType {
    let mut source: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(e);
    while let Some(cause) = source {
        if let Some(io) = cause.downcast_ref::<std::io::Error>() {
            return match io.kind() {
                std::io::ErrorKind::InvalidData | std::io::ErrorKind::InvalidInput => ErrorType::ClientInvalidRequest,
                _ => ErrorType::ClientClosed,
            };
        }
        source = cause.source();
    }
    if e.is_parse() { ErrorType::ClientInvalidRequest } else { ErrorType::ClientClosed }
}

fn error_response(
    status: StatusCode,
    error: ErrorType,
    message: &str,
    mut done: Box<Completion>,
) -> Response<ProxyBody> {
    if done.grpc.is_some() {
        // A gRPC client reads a status, not an HTTP error: the code gRPC maps the status to.
        let code = match error {
            ErrorType::ClientClosed | ErrorType::ClientTimeout => Code::Cancelled,
            _ => Code::from_http_status(status.as_u16()),
        };
        return grpc_response(code, error, message, done);
    }
    done.status = status.as_u16();
    done.error = Some(error);
    let body = format!("{{\"error\":\"{message}\",\"trace_id\":\"{}\"}}\n", done.trace.trace_id_hex());
    let mut resp = Response::new(ObservedBody::new(InnerBody::Own(Full::new(Bytes::from(body))), done));
    *resp.status_mut() = status;
    resp.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    resp
}

/// A trailers-only gRPC answer (HTTP 200, `grpc-status`, `grpc-message`) for a call redline
/// could not forward.
#[cold]
fn grpc_response(code: Code, error: ErrorType, message: &str, mut done: Box<Completion>) -> Response<ProxyBody> {
    done.status = 200;
    done.error = Some(error);
    if let Some(call) = &mut done.grpc {
        call.code = Some(code);
    }
    let mut resp = Response::new(ObservedBody::new(InnerBody::Own(Full::default()), done));
    *resp.headers_mut() = grpc::status_headers(code, message, true);
    resp
}

static HOP_BY_HOP: [HeaderName; 7] = [
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
    header::PROXY_AUTHENTICATE,
    header::PROXY_AUTHORIZATION,
    header::TE,
    header::UPGRADE,
];

/// Removes RFC 9110 hop-by-hop headers from a client's request, including any named in
/// `Connection`. `Transfer-Encoding` is framing that is redone upstream, so it goes too. `TE`
/// goes but for its `trailers` token: the client takes trailers, which redline carries through
/// (gRPC requires `te: trailers`).
pub fn remove_hop_by_hop(headers: &mut HeaderMap) {
    // One pass over the names (standard names compare by tag) finds what is there: usually
    // nothing, or a `Connection: keep-alive` answer, which then costs one removal.
    let mut present = [false; HOP_BY_HOP.len() + 1];
    let mut any = false;
    for name in headers.keys() {
        if let Some(i) = HOP_BY_HOP.iter().position(|h| h == name) {
            present[i] = true;
            any = true;
        } else if name == header::TRANSFER_ENCODING {
            present[HOP_BY_HOP.len()] = true;
            any = true;
        }
    }
    if !any {
        return;
    }
    // `close` and `keep-alive` are the usual tokens; only other names need a lookup.
    let listed: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .filter(|t| !t.eq_ignore_ascii_case("close") && !t.eq_ignore_ascii_case("keep-alive"))
        .filter_map(|name| HeaderName::from_bytes(name.as_bytes()).ok())
        .collect();
    for name in &listed {
        headers.remove(name);
    }
    let te_trailers = present[HOP_BY_HOP.iter().position(|h| h == header::TE).unwrap_or(0)]
        && headers.get_all(header::TE).iter().any(|v| {
            v.as_bytes().split(|&b| b == b',').any(|t| {
                let token = t.split(|&b| b == b';').next().unwrap_or_default();
                token.trim_ascii().eq_ignore_ascii_case(b"trailers")
            })
        });
    for (name, _) in HOP_BY_HOP.iter().zip(present).filter(|(_, p)| *p) {
        headers.remove(name);
    }
    if te_trailers {
        headers.insert(header::TE, HeaderValue::from_static("trailers"));
    }
    if present[HOP_BY_HOP.len()] {
        headers.remove(header::TRANSFER_ENCODING);
    }
}

const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");

/// `host` is what the checked request says of its authority (see [`checked_host`]); without
/// one (an HTTP/1.0 client may send none) the upstream's own, as HTTP/1.1 needs a Host.
pub(super) fn prepare_upstream_headers(
    headers: &mut HeaderMap,
    host: Host,
    client: &ClientInfo,
    upstream_host: &HeaderValue,
) {
    remove_hop_by_hop(headers);
    match host {
        Host::AsSent(_) | Host::Raw => {}
        Host::Replace(authority) => {
            headers.insert(header::HOST, authority);
        }
        Host::Missing => {
            headers.insert(header::HOST, upstream_host.clone());
        }
    }
    match headers.entry(X_FORWARDED_FOR) {
        header::Entry::Occupied(mut prior) => {
            let prior = prior.get_mut();
            let mut joined = Vec::with_capacity(prior.len() + 2 + client.ip.len());
            joined.extend_from_slice(prior.as_bytes());
            joined.extend_from_slice(b", ");
            joined.extend_from_slice(client.ip.as_bytes());
            if let Ok(v) = HeaderValue::from_bytes(&joined) {
                *prior = v;
            }
        }
        header::Entry::Vacant(slot) => {
            slot.insert(client.ip.clone());
        }
    }
    headers.entry(X_FORWARDED_PROTO).or_insert_with(|| HeaderValue::from_static("http"));
}

/// Everything needed to report a request once its response is over.
pub struct Completion {
    proxy: Arc<Proxy>,
    _active: ActiveRequest,
    _in_use: Option<InUse>,
    start: Instant,
    method: http::Method,
    method_label: MethodLabel,
    /// Provisional for a path not seen before: settled when the answer shows it is a route.
    route: Route,
    path: Option<PathAndQuery>,
    /// 0 until a response is sent.
    status: u16,
    error: Option<ErrorType>,
    /// The status came from the upstream, not from redline.
    upstream_answered: bool,
    request_bytes: Option<Arc<BodyProgress>>,
    client: Arc<ClientInfo>,
    /// The request counts in its connection's clock (`request_started`).
    on_connection: bool,
    user_agent: Option<Bytes>,
    trace: TraceContext,
    span: Option<SpanStart>,
    /// Set for a gRPC call (`content-type: application/grpc*`); boxed, as HTTP requests,
    /// which carry the completion around, have none.
    grpc: Option<Box<GrpcCall>>,
    reported: bool,
}

impl Drop for Completion {
    fn drop(&mut self) {
        // Dropped before a response body took it over: the client went away while the request
        // waited, or redline cut the connection. Reported like any other end, once.
        if !self.reported {
            self.report(0, BodyEnd::Abandoned, Instant::now());
        }
    }
}

/// What a sampled request's span needs beyond the access-log fields.
pub struct SpanStart {
    wall: UnixNanos,
    version: Version,
    host: Option<Bytes>,
}

impl OnComplete for Box<Completion> {
    fn complete(&mut self, response_bytes: u64, end: BodyEnd, reusable: Option<Box<UpstreamConn>>) {
        // One clock read for both: the connection's idle time and the request's end.
        let now = Instant::now();
        if let Some(conn) = reusable {
            self.proxy.pool.put_back(conn, now);
        }
        self.report(response_bytes, end, now);
    }

    fn stall_limit(&self) -> Option<(&Deadlines, Duration)> {
        Some((&self.proxy.deadlines, self.proxy.stream_idle_timeout))
    }

    fn call_deadline(&self) -> Option<Instant> {
        self.grpc.as_ref().and_then(|g| g.deadline)
    }

    fn trailers(&mut self, trailers: &mut HeaderMap) {
        if let Some(call) = &mut self.grpc {
            call.code = Some(grpc::checked_status(trailers));
        }
    }

    fn closing_trailers(&mut self, end: BodyEnd) -> Option<HeaderMap> {
        // Inlined into every response's last poll: HTTP requests leave at the first check.
        let call = self.grpc.as_mut()?;
        closing_trailers(call, end)
    }
}

/// The trailers that end a gRPC call's response in place of a broken, expired or status-less
/// body.
#[cold]
#[inline(never)]
fn closing_trailers(call: &mut GrpcCall, end: BodyEnd) -> Option<HeaderMap> {
    {
        let (code, message) = match end {
            BodyEnd::Complete if call.code.is_none() => {
                let mut trailers = HeaderMap::new();
                call.code = Some(grpc::checked_status(&mut trailers));
                return Some(trailers);
            }
            BodyEnd::DeadlineExceeded => (Code::DeadlineExceeded, "the call's deadline (grpc-timeout) passed"),
            BodyEnd::UpstreamStalled => (Code::Unavailable, "the upstream sent nothing for stream_idle_timeout"),
            BodyEnd::UpstreamFailed => (Code::Unavailable, "the upstream reset the stream or closed the connection"),
            BodyEnd::Complete | BodyEnd::Abandoned => return None,
        };
        call.code = Some(code);
        Some(grpc::status_headers(code, message, false))
    }
}

impl Completion {
    /// Why a request dropped before its end ended: redline cut it, or else the client left.
    fn abandoned_because(&self) -> ErrorType {
        if self.proxy.shutting_down.load(Ordering::Relaxed) {
            return ErrorType::Shutdown;
        }
        match self.client.clock.cut_reason() {
            Some(CutReason::Shutdown) => ErrorType::Shutdown,
            Some(CutReason::ClientStalled | CutReason::HeaderTimeout) => ErrorType::ClientTimeout,
            Some(CutReason::IdleTimeout) | None => ErrorType::ClientClosed,
        }
    }

    /// Records the request's metrics, access line and span: exactly once, from `complete` or
    /// from the drop of a request that never got that far.
    fn report(&mut self, response_bytes: u64, end: BodyEnd, now: Instant) {
        if std::mem::replace(&mut self.reported, true) {
            return;
        }
        let elapsed = now.saturating_duration_since(self.start);
        // A sampled request's end is its span's start plus the duration (as the span's end
        // time is): no second conversion of a monotonic reading.
        let ended = match &self.span {
            Some(span) => span.wall.after(elapsed),
            None => wall_clock::wall(now),
        };
        if self.on_connection {
            self.client.clock.request_ended(now);
        }
        // A failure already known (the service's) stays the reason; the rest is how the body ended.
        let mut error = self.error.or(match end {
            BodyEnd::Complete => None,
            BodyEnd::UpstreamFailed => Some(ErrorType::UpstreamError),
            BodyEnd::UpstreamStalled => Some(ErrorType::Timeout),
            BodyEnd::DeadlineExceeded => Some(ErrorType::GrpcDeadlineExceeded),
            BodyEnd::Abandoned => Some(self.abandoned_because()),
        });
        // A gRPC call's status: as it came (head or trailers) or as redline answered; a call
        // cut short has the status its client sees.
        let grpc_code = match self.grpc.as_deref() {
            Some(call) => Some(grpc_status(call, self.status, end, &mut error)),
            None => None,
        };
        // A path not seen before becomes a route once the upstream answers it as one; scans of
        // unknown paths share one label instead of filling the table.
        // The service's own failures (502, 504) name a path it should have served, too; a gRPC
        // UNIMPLEMENTED from the upstream is its "no such method", a 404.
        let judged = self.upstream_answered || error.is_some_and(ErrorType::is_service_error);
        let route = match grpc_code {
            None => self.proxy.routes.settle(&self.route, judged.then_some(self.status)),
            Some(code) => self.settle_grpc(code, judged, &mut error),
        };
        let request_bytes = self.request_bytes.as_ref().map_or(0, |p| p.bytes());
        self.proxy.red.record(&RequestOutcome {
            route_id: route.id,
            route: &route.name,
            method: self.method_label,
            status: self.status,
            error,
            duration_seconds: elapsed.as_secs_f64(),
            request_body_bytes: request_bytes,
            response_body_bytes: response_bytes,
            exemplar: self.trace.sampled.then_some(Exemplar { trace_id: self.trace.trace_id, at: ended }),
        });
        // `package.Service/Method` as the request named it, for logs and spans.
        let called = self.grpc.as_ref().and(self.path.as_ref()).and_then(|p| grpc::service_and_method(p.path()));
        if let Some(code) = grpc_code {
            self.record_rpc(&route, code, error, elapsed, ended);
        }
        let mut status_buf = itoa::Buffer::new();
        let error_label = error.map(|e| e.label(self.status, &mut status_buf));
        let path = self.path.as_ref().map(|p| p.path());
        let user_agent = self.user_agent.as_deref();
        // `package.Service/Method`: the path without its slash, when it has that shape.
        let rpc_method = path.filter(|_| called.is_some()).map(|p| &p[1..]);
        self.proxy.access_log.write(
            &AccessLine {
                method: &self.method,
                path,
                route: &route.name,
                status: self.status,
                duration_micros: elapsed.as_micros() as u64,
                response_body_size: response_bytes,
                request_body_size: request_bytes,
                client_address: self.client.ip.as_bytes(),
                user_agent,
                trace_id: &self.trace.trace_id,
                span_id: &self.trace.span_id,
                error_type: error_label,
                rpc: grpc_code.map(|code| RpcFields {
                    service: called.map(|(service, _)| service),
                    method: rpc_method,
                    status_code: code.name(),
                }),
            },
            ended,
        );
        if let (Some(span), Some(sink)) = (&self.span, &self.proxy.spans) {
            sink.submit(&FinishedSpan {
                trace_id: self.trace.trace_id,
                span_id: self.trace.span_id,
                parent_span_id: self.trace.parent_span_id,
                method: &self.method,
                route: &route.name,
                path,
                version: span.version,
                host: span.host.as_deref(),
                status: self.status,
                error_type: error_label,
                service_error: error.is_some_and(ErrorType::is_service_error),
                start: span.wall,
                duration: elapsed,
                client_ip: self.client.ip.as_bytes(),
                user_agent,
                request_body_size: request_bytes,
                response_body_size: response_bytes,
                rpc: grpc_code.map(|code| SpanRpc { method: rpc_method, code }),
            });
        }
    }
}

impl Completion {
    /// A gRPC call's route: UNIMPLEMENTED from the upstream is its "no such method", a 404,
    /// and for a method the service never served it is the caller's mistake, which must not
    /// page anyone. For a method it served, it is a failure (a deploy that dropped it).
    #[cold]
    #[inline(never)]
    fn settle_grpc(&self, code: Code, judged: bool, error: &mut Option<ErrorType>) -> Route {
        let settled_status = match code {
            Code::Unimplemented if self.upstream_answered => 404,
            _ => self.status,
        };
        let route = self.proxy.routes.settle(&self.route, judged.then_some(settled_status));
        if code == Code::Unimplemented
            && *error == Some(ErrorType::GrpcUnimplemented)
            && route.id == self.proxy.routes.unmatched().id
        {
            *error = None;
        }
        route
    }

    /// Records a gRPC call in the RPC family. The route is the method once the upstream served
    /// it; paths that are no route share `_OTHER`, as unbounded names must.
    #[cold]
    #[inline(never)]
    fn record_rpc(&self, route: &Route, code: Code, error: Option<ErrorType>, elapsed: Duration, ended: UnixNanos) {
        let method = route.name.strip_prefix('/').filter(|_| grpc::service_and_method(&route.name).is_some());
        self.proxy.red.record_rpc(&RpcOutcome {
            route_id: route.id,
            method: method.unwrap_or("_OTHER"),
            code,
            // `_OTHER` calls are recorded as the conventions say; no alert reads them.
            server_error: code.is_server_error() && error.is_none_or(ErrorType::is_service_error),
            duration_seconds: elapsed.as_secs_f64(),
            exemplar: self.trace.sampled.then_some(Exemplar { trace_id: self.trace.trace_id, at: ended }),
        });
    }
}

/// A gRPC call's status: as it came (head or trailers) or as redline answered; a call cut short
/// has the status its client sees. A server-error code becomes the call's `error` when no
/// other failure is known.
#[cold]
#[inline(never)]
fn grpc_status(call: &GrpcCall, status: u16, end: BodyEnd, error: &mut Option<ErrorType>) -> Code {
    let code = call.code.unwrap_or(match end {
        _ if status == 0 => Code::Cancelled,
        // A stream that ended without a status: gRPC clients report UNKNOWN.
        BodyEnd::Complete => Code::Unknown,
        BodyEnd::Abandoned => Code::Cancelled,
        BodyEnd::DeadlineExceeded => Code::DeadlineExceeded,
        BodyEnd::UpstreamFailed | BodyEnd::UpstreamStalled => Code::Unavailable,
    });
    if error.is_none() {
        *error = ErrorType::of_grpc(code);
    }
    code
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hop_by_hop_headers_and_those_named_in_connection_are_removed() {
        let mut h = HeaderMap::new();
        h.insert(header::CONNECTION, HeaderValue::from_static("keep-alive, x-secret-hop"));
        h.insert("keep-alive", HeaderValue::from_static("timeout=5"));
        h.insert("x-secret-hop", HeaderValue::from_static("1"));
        h.insert(header::TE, HeaderValue::from_static("gzip;q=0.5, Trailers"));
        h.insert(header::TRANSFER_ENCODING, HeaderValue::from_static("chunked"));
        h.insert(header::ACCEPT, HeaderValue::from_static("*/*"));
        remove_hop_by_hop(&mut h);
        assert_eq!(h.len(), 2, "{h:?}");
        assert!(h.contains_key(header::ACCEPT));
        assert_eq!(h[header::TE], "trailers", "only the trailers token of TE goes on (gRPC needs it)");
        let mut h = HeaderMap::new();
        h.insert(header::TE, HeaderValue::from_static("gzip"));
        remove_hop_by_hop(&mut h);
        assert!(h.is_empty(), "{h:?}");
    }

    #[test]
    fn forwarded_headers_are_appended() {
        let mut h = HeaderMap::new();
        h.insert("x-forwarded-for", HeaderValue::from_static("203.0.113.7"));
        let upstream = HeaderValue::from_static("app:8080");
        let client = ClientInfo::new("10.1.2.3:5555".parse().expect("addr"));
        prepare_upstream_headers(&mut h, Host::Replace(HeaderValue::from_static("svc.local")), &client, &upstream);
        assert_eq!(h["x-forwarded-for"], "203.0.113.7, 10.1.2.3");
        assert_eq!(h["x-forwarded-proto"], "http");
        assert_eq!(h["host"], "svc.local");
        let mut h = HeaderMap::new();
        prepare_upstream_headers(&mut h, Host::Missing, &client, &upstream);
        assert_eq!(h["host"], "app:8080", "an HTTP/1.0 request without Host gets the upstream's");
    }

    #[test]
    fn host_values_are_checked_as_rfc_9110_authorities() {
        for good in
            ["svc.local", "svc.local:8080", "10.0.0.1:80", "[::1]", "[::1]:8080", "xn--bcher-kva.example", "a:0"]
        {
            assert!(valid_authority(good.as_bytes()), "{good}");
        }
        for bad in [
            "",
            "user@svc",
            "svc:",
            "svc:99999",
            "svc:8x",
            "svc/path",
            "a b",
            "svc:80:81",
            "[::1",
            "\u{1}",
            ":80",
            "[]",
            "[::1]x",
            "svc:123456",
        ] {
            assert!(!valid_authority(bad.as_bytes()), "{bad:?}");
        }
    }
}
