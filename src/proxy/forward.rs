//! One proxied exchange: route and trace the request, rewrite headers, forward it upstream,
//! map failures to 502/504 JSON, and record metrics and the access line when it ends.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::uri::PathAndQuery;
use http::{Request, Response, StatusCode, Uri, Version};
use http_body_util::{Either, Full};
use hyper::body::Incoming;
use tokio::sync::OwnedSemaphorePermit;

use super::body::{ObservedBody, OnComplete, RequestBody};
use super::deadline::Deadlines;
use super::route::{Route, RouteTable};
use super::upstream::{InUse, UpstreamConn, UpstreamError, UpstreamGauges, UpstreamPool};
use crate::config::Propagator;
use crate::telemetry::access_log::{AccessLine, AccessLog};
use crate::telemetry::red::{ActiveRequest, ErrorType, MethodLabel, RedMetrics, RequestOutcome};
use crate::telemetry::spans::{FinishedSpan, SpanSink};
use crate::telemetry::trace_context::TraceContext;

pub type ProxyBody = ObservedBody<Completion>;

pub struct ProxySettings {
    pub upstream_authority: String,
    pub upstream_timeout: Duration,
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
    deadlines: Deadlines,
    /// The `Host` sent upstream when the client sent none (HTTP/1.0).
    upstream_host: HeaderValue,
    routes: Arc<RouteTable>,
    red: Arc<RedMetrics>,
    gauges: Arc<UpstreamGauges>,
    access_log: Arc<AccessLog>,
    upstream_timeout: Duration,
    sampler_ratio: f64,
    spans: Option<Arc<SpanSink>>,
    propagators: Vec<Propagator>,
}

impl Proxy {
    pub fn new(
        s: &ProxySettings,
        routes: Arc<RouteTable>,
        red: Arc<RedMetrics>,
        gauges: Arc<UpstreamGauges>,
    ) -> Result<Self, String> {
        let upstream_host = HeaderValue::from_str(&s.upstream_authority)
            .map_err(|e| format!("upstream: bad host:port {:?}: {e}", s.upstream_authority))?;
        Ok(Proxy {
            pool: UpstreamPool::new(s.upstream_authority.clone(), gauges.clone(), s.upstream_timeout),
            // A 504 may come up to a tenth of the timeout (at most 50ms) late.
            deadlines: Deadlines::new((s.upstream_timeout / 10).min(Duration::from_millis(50))),
            upstream_host,
            routes,
            red,
            gauges,
            access_log: s.access_log.clone(),
            upstream_timeout: s.upstream_timeout,
            sampler_ratio: s.sampler_ratio,
            spans: s.spans.clone(),
            propagators: s.propagators.clone(),
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
    }

    pub async fn handle(self: Arc<Self>, mut req: Request<Incoming>, client: &Arc<ClientInfo>) -> Response<ProxyBody> {
        let start = Instant::now();
        let method = req.method().clone();
        let method_label = MethodLabel::of(&method);
        let active = self.red.start(method_label);
        let route = self.routes.route_of(req.uri().path());
        let trace = TraceContext::from_headers(req.headers(), self.sampler_ratio);
        // What outlives the request head is copied: the head's fields are slices of the client
        // connection's 8 KiB read buffer, which a span waiting in the exporter's queue would
        // otherwise keep alive whole.
        let user_agent = req.headers().get(header::USER_AGENT).map(detach_value);
        let path = req.uri().path_and_query().map(detach_path);
        let span = match (&self.spans, trace.sampled) {
            (Some(sink), true) => Some(SpanStart {
                sink: sink.clone(),
                wall: SystemTime::now(),
                version: req.version(),
                host: req
                    .headers()
                    .get(header::HOST)
                    .map(detach_value)
                    .or_else(|| req.uri().authority().and_then(|a| HeaderValue::from_str(a.as_str()).ok())),
            }),
            _ => None,
        };

        let upgrade = requested_upgrade(&req);
        let client_upgraded = upgrade.is_some().then(|| hyper::upgrade::on(&mut req));

        let (mut parts, body) = req.into_parts();
        let (body, request_bytes) = RequestBody::new(body);
        prepare_upstream_headers(&mut parts.headers, &parts.uri, client, &self.upstream_host);
        trace.inject(&mut parts.headers, &self.propagators);
        if let Some(protocol) = &upgrade {
            // Upgrade is hop-by-hop: redline asks the upstream itself, on this request's connection.
            parts.headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
            parts.headers.insert(header::UPGRADE, protocol.clone());
        }

        let mut done = Completion {
            proxy: self.clone(),
            _active: active,
            _in_use: Some(self.gauges.exchange()),
            start,
            method,
            method_label,
            route,
            path,
            status: 0,
            error: None,
            request_bytes,
            client_ip: client.ip.clone(),
            user_agent,
            trace,
            span,
        };

        // The upstream connection takes the origin form (`/path?query`); HTTP/2 requests carry
        // the absolute form.
        let target = done.path.as_ref().map_or("/", |p| p.as_str());
        let sent = self
            .deadlines
            .limit(start + self.upstream_timeout, self.pool.send(parts, target, body, start, upgrade.is_some()))
            .await;
        match sent {
            Ok(Ok(resp)) => {
                // The upstream's hop-by-hop fields were left behind when its head was parsed.
                let (parts, body) = resp.into_parts();
                done.status = parts.status.as_u16();
                if parts.status.is_server_error() {
                    done.error = Some(ErrorType::Status);
                }
                if parts.status == StatusCode::SWITCHING_PROTOCOLS {
                    // Only an upgrade request gets here (the codec refuses other 101s). The
                    // exchange is over for metrics and logs; the tunnel keeps the upstream
                    // connection counted as active until it closes.
                    if let (Some(client_upgraded), Some(conn)) = (client_upgraded, body.into_upgraded()) {
                        tokio::spawn(super::tunnel::carry(client_upgraded, conn, done._in_use.take(), client.clone()));
                    }
                    return Response::from_parts(parts, ObservedBody::new(Either::Right(Full::default()), done));
                }
                Response::from_parts(parts, ObservedBody::new(Either::Left(body), done))
            }
            Ok(Err(e)) => {
                let (status, error, message) = classify(&e);
                done._in_use = None;
                error_response(status, error, message, done)
            }
            Err(_elapsed) => {
                done._in_use = None;
                error_response(StatusCode::GATEWAY_TIMEOUT, ErrorType::Timeout, "upstream timed out", done)
            }
        }
    }
}

/// The protocol an HTTP/1.1 client asks to switch to (`Upgrade`, with `upgrade` listed in
/// `Connection`), e.g. `websocket`. `h2c` is not passed on: redline speaks HTTP/2 to clients
/// itself (with prior knowledge), and its upstream side is HTTP/1.1.
fn requested_upgrade(req: &Request<Incoming>) -> Option<HeaderValue> {
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

fn classify(e: &UpstreamError) -> (StatusCode, ErrorType, &'static str) {
    match e {
        UpstreamError::Connect(io) if io.kind() == std::io::ErrorKind::ConnectionRefused => {
            (StatusCode::BAD_GATEWAY, ErrorType::ConnectionRefused, "upstream refused the connection")
        }
        UpstreamError::Connect(io) if io.kind() == std::io::ErrorKind::TimedOut => {
            (StatusCode::GATEWAY_TIMEOUT, ErrorType::Timeout, "upstream timed out")
        }
        UpstreamError::ConnectTimeout => (StatusCode::GATEWAY_TIMEOUT, ErrorType::Timeout, "upstream timed out"),
        UpstreamError::Connect(_) => (StatusCode::BAD_GATEWAY, ErrorType::ConnectError, "cannot connect to upstream"),
        UpstreamError::Exchange(_) => (
            StatusCode::BAD_GATEWAY,
            ErrorType::UpstreamError,
            "upstream closed the connection or sent an invalid response",
        ),
    }
}

fn error_response(status: StatusCode, error: ErrorType, message: &str, mut done: Completion) -> Response<ProxyBody> {
    done.status = status.as_u16();
    done.error = Some(error);
    let body = format!("{{\"error\":\"{message}\",\"trace_id\":\"{}\"}}\n", done.trace.trace_id_hex());
    let mut resp = Response::new(ObservedBody::new(Either::Right(Full::new(Bytes::from(body))), done));
    *resp.status_mut() = status;
    resp.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    resp
}

static HOP_BY_HOP: [HeaderName; 8] = [
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
    header::PROXY_AUTHENTICATE,
    header::PROXY_AUTHORIZATION,
    header::TE,
    header::TRAILER,
    header::UPGRADE,
];

/// Removes RFC 9110 hop-by-hop headers from a client's request, including any named in
/// `Connection`. `Transfer-Encoding` is framing that is redone upstream, so it goes too.
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
    for (name, _) in HOP_BY_HOP.iter().zip(present).filter(|(_, p)| *p) {
        headers.remove(name);
    }
    if present[HOP_BY_HOP.len()] {
        headers.remove(header::TRANSFER_ENCODING);
    }
}

/// The downstream connection a request arrived on, prepared once per connection.
pub struct ClientInfo {
    pub addr: SocketAddr,
    /// The client IP as a header value, for `X-Forwarded-For` and the access log.
    pub ip: HeaderValue,
    /// The connection's place under `max_connections`, held until the connection and any
    /// tunnel made of it are gone.
    _slot: Option<OwnedSemaphorePermit>,
}

impl ClientInfo {
    pub fn new(addr: SocketAddr) -> Self {
        let ip = HeaderValue::from_str(&addr.ip().to_string()).unwrap_or_else(|_| HeaderValue::from_static("unknown"));
        ClientInfo { addr, ip, _slot: None }
    }

    /// Holds `slot` for as long as this connection (or a tunnel made of it) lives.
    pub fn holding(mut self, slot: OwnedSemaphorePermit) -> Self {
        self._slot = Some(slot);
        self
    }
}

const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");

fn prepare_upstream_headers(headers: &mut HeaderMap, uri: &Uri, client: &ClientInfo, upstream_host: &HeaderValue) {
    remove_hop_by_hop(headers);
    if !headers.contains_key(header::HOST) {
        // HTTP/2 clients send :authority instead of Host, HTTP/1.0 clients may send neither;
        // the upstream speaks HTTP/1.1, which requires one.
        let host = uri.authority().and_then(|a| HeaderValue::from_str(a.as_str()).ok());
        headers.insert(header::HOST, host.unwrap_or_else(|| upstream_host.clone()));
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
    route: Route,
    path: Option<PathAndQuery>,
    status: u16,
    error: Option<ErrorType>,
    request_bytes: Option<Arc<AtomicU64>>,
    client_ip: HeaderValue,
    user_agent: Option<HeaderValue>,
    trace: TraceContext,
    span: Option<SpanStart>,
}

/// What a sampled request's span needs beyond the access-log fields.
pub struct SpanStart {
    sink: Arc<SpanSink>,
    wall: SystemTime,
    version: Version,
    host: Option<HeaderValue>,
}

impl OnComplete for Completion {
    fn complete(self, response_bytes: u64, upstream_body_failed: bool, reusable: Option<UpstreamConn>) {
        let now = Instant::now();
        let elapsed = now.saturating_duration_since(self.start);
        if let Some(conn) = reusable {
            self.proxy.pool.put_back(conn, now);
        }
        let error = match (self.error, upstream_body_failed) {
            (None, true) => Some(ErrorType::UpstreamError),
            (e, _) => e,
        };
        let request_bytes = self.request_bytes.as_ref().map_or(0, |c| c.load(Ordering::Relaxed));
        self.proxy.red.record(&RequestOutcome {
            route_id: self.route.id,
            route: &self.route.name,
            method: self.method_label,
            status: self.status,
            error,
            duration_seconds: elapsed.as_secs_f64(),
            request_body_bytes: request_bytes,
            response_body_bytes: response_bytes,
            exemplar_trace_id: self.trace.sampled.then_some(self.trace.trace_id),
        });
        let mut status_buf = itoa::Buffer::new();
        let error_label = error.map(|e| e.label(self.status, &mut status_buf));
        self.proxy.access_log.write(&AccessLine {
            method: self.method.as_str(),
            path: self.path.as_ref().map_or("/", |p| p.path()),
            route: &self.route.name,
            status: self.status,
            duration_micros: elapsed.as_micros() as u64,
            response_body_size: response_bytes,
            request_body_size: request_bytes,
            client_address: self.client_ip.as_bytes(),
            user_agent: self.user_agent.as_ref().map(|v| v.as_bytes()),
            trace_id: &self.trace.trace_id,
            span_id: &self.trace.span_id,
            error_type: error_label,
        });
        if let Some(span) = self.span {
            let error_type = error.map(|e| match e {
                ErrorType::Status => std::borrow::Cow::Owned(self.status.to_string()),
                other => std::borrow::Cow::Borrowed(other.as_str()),
            });
            span.sink.submit(FinishedSpan {
                trace_id: self.trace.trace_id,
                span_id: self.trace.span_id,
                parent_span_id: self.trace.parent_span_id,
                method: self.method,
                route: self.route.name,
                path: self.path,
                version: span.version,
                host: span.host,
                status: self.status,
                error_type,
                start: span.wall,
                duration: elapsed,
                client_ip: self.client_ip,
                user_agent: self.user_agent,
                request_body_size: request_bytes,
                response_body_size: response_bytes,
            });
        }
    }
}

/// A copy that shares no bytes with the client connection's read buffer.
fn detach_value(v: &HeaderValue) -> HeaderValue {
    HeaderValue::from_bytes(v.as_bytes()).unwrap_or_else(|_| v.clone())
}

/// A copy that shares no bytes with the client connection's read buffer.
fn detach_path(p: &PathAndQuery) -> PathAndQuery {
    if p.as_str() == "/" {
        return PathAndQuery::from_static("/");
    }
    PathAndQuery::from_maybe_shared(Bytes::copy_from_slice(p.as_str().as_bytes())).unwrap_or_else(|_| p.clone())
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
        h.insert(header::TE, HeaderValue::from_static("trailers"));
        h.insert(header::TRANSFER_ENCODING, HeaderValue::from_static("chunked"));
        h.insert(header::ACCEPT, HeaderValue::from_static("*/*"));
        remove_hop_by_hop(&mut h);
        assert_eq!(h.len(), 1, "{h:?}");
        assert!(h.contains_key(header::ACCEPT));
    }

    #[test]
    fn forwarded_headers_are_appended() {
        let mut h = HeaderMap::new();
        h.insert("x-forwarded-for", HeaderValue::from_static("203.0.113.7"));
        let uri: Uri = "http://svc.local/x".parse().expect("uri");
        let upstream = HeaderValue::from_static("app:8080");
        prepare_upstream_headers(&mut h, &uri, &ClientInfo::new("10.1.2.3:5555".parse().expect("addr")), &upstream);
        assert_eq!(h["x-forwarded-for"], "203.0.113.7, 10.1.2.3");
        assert_eq!(h["x-forwarded-proto"], "http");
        assert_eq!(h["host"], "svc.local");
    }
}
