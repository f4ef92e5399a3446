//! RED metrics of proxied requests (OpenTelemetry HTTP server conventions, Prometheus names),
//! and of the gRPC calls among them (OpenTelemetry RPC conventions v1.45.0).
//! One lock-free series per (route, method, status, error type); lookups hit a sharded map.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU16, Ordering};

use dashmap::DashMap;

use super::metrics::{BODY_SIZE_BUCKETS, ExpositionWriter, Histogram, Kind};
use crate::grpc::Code;

/// `http_request_method` values: the known methods, everything else is `_OTHER`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum MethodLabel {
    Connect,
    Delete,
    Get,
    Head,
    Options,
    Patch,
    Post,
    Put,
    Trace,
    Other,
}

const METHOD_LABELS: [MethodLabel; 10] = [
    MethodLabel::Connect,
    MethodLabel::Delete,
    MethodLabel::Get,
    MethodLabel::Head,
    MethodLabel::Options,
    MethodLabel::Patch,
    MethodLabel::Post,
    MethodLabel::Put,
    MethodLabel::Trace,
    MethodLabel::Other,
];

impl MethodLabel {
    pub fn of(m: &http::Method) -> Self {
        match *m {
            http::Method::GET => MethodLabel::Get,
            http::Method::POST => MethodLabel::Post,
            http::Method::PUT => MethodLabel::Put,
            http::Method::DELETE => MethodLabel::Delete,
            http::Method::HEAD => MethodLabel::Head,
            http::Method::OPTIONS => MethodLabel::Options,
            http::Method::PATCH => MethodLabel::Patch,
            http::Method::TRACE => MethodLabel::Trace,
            http::Method::CONNECT => MethodLabel::Connect,
            _ => MethodLabel::Other,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            MethodLabel::Connect => "CONNECT",
            MethodLabel::Delete => "DELETE",
            MethodLabel::Get => "GET",
            MethodLabel::Head => "HEAD",
            MethodLabel::Options => "OPTIONS",
            MethodLabel::Patch => "PATCH",
            MethodLabel::Post => "POST",
            MethodLabel::Put => "PUT",
            MethodLabel::Trace => "TRACE",
            MethodLabel::Other => "_OTHER",
        }
    }
}

/// Why a request failed, as the `error_type` label (OpenTelemetry `error.type`).
///
/// The service's own failures are a 5xx status or a broken exchange with it. The client's
/// (`client_*`) and the sidecar's shutdown are counted under their own names, so that the error
/// ratio the rules, SLOs and canary judge read (`error_type!~"|client_.+|shutdown"`) holds the
/// service's failures only.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum ErrorType {
    /// The upstream answered with a 5xx: the label is the status code.
    Status,
    /// No upstream response headers within `upstream_timeout` (504).
    Timeout,
    /// The upstream refused the TCP connection (502).
    ConnectionRefused,
    /// Any other failure to connect: DNS, unreachable host (502).
    ConnectError,
    /// The upstream broke the exchange after connecting: reset, bad response, aborted body.
    UpstreamError,
    /// The client went away before its response was complete (no status when none was sent).
    ClientClosed,
    /// The client stalled: a request head or body not sent in time, or a response not read (408).
    ClientTimeout,
    /// The request could not be forwarded as sent: a malformed head or body, a bad `Host`,
    /// `CONNECT` (400, 405, 414, 431).
    ClientInvalidRequest,
    /// The sidecar's drain after a shutdown signal ran out of time and cut the request.
    Shutdown,
    /// A gRPC call that ended with one of the codes the OpenTelemetry gRPC conventions count
    /// as the server's errors; the label is the code's name.
    GrpcUnknown,
    GrpcDeadlineExceeded,
    GrpcUnimplemented,
    GrpcInternal,
    GrpcUnavailable,
    GrpcDataLoss,
}

impl ErrorType {
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorType::Status => "status",
            ErrorType::Timeout => "timeout",
            ErrorType::ConnectionRefused => "connection_refused",
            ErrorType::ConnectError => "connect_error",
            ErrorType::UpstreamError => "upstream_error",
            ErrorType::ClientClosed => "client_closed",
            ErrorType::ClientTimeout => "client_timeout",
            ErrorType::ClientInvalidRequest => "client_invalid_request",
            ErrorType::Shutdown => "shutdown",
            ErrorType::GrpcUnknown => "UNKNOWN",
            ErrorType::GrpcDeadlineExceeded => "DEADLINE_EXCEEDED",
            ErrorType::GrpcUnimplemented => "UNIMPLEMENTED",
            ErrorType::GrpcInternal => "INTERNAL",
            ErrorType::GrpcUnavailable => "UNAVAILABLE",
            ErrorType::GrpcDataLoss => "DATA_LOSS",
        }
    }

    /// The error of a gRPC call that ended with `code`: None unless it is a server error.
    pub fn of_grpc(code: Code) -> Option<ErrorType> {
        match code {
            Code::Unknown => Some(ErrorType::GrpcUnknown),
            Code::DeadlineExceeded => Some(ErrorType::GrpcDeadlineExceeded),
            Code::Unimplemented => Some(ErrorType::GrpcUnimplemented),
            Code::Internal => Some(ErrorType::GrpcInternal),
            Code::Unavailable => Some(ErrorType::GrpcUnavailable),
            Code::DataLoss => Some(ErrorType::GrpcDataLoss),
            _ => None,
        }
    }

    /// Whether the service is to blame: what error ratios, SLOs and span status count.
    pub fn is_service_error(self) -> bool {
        !matches!(
            self,
            ErrorType::ClientClosed | ErrorType::ClientTimeout | ErrorType::ClientInvalidRequest | ErrorType::Shutdown
        )
    }

    /// The label value for a request that ended with `status`.
    pub fn label(self, status: u16, buf: &mut itoa::Buffer) -> &str {
        match self {
            ErrorType::Status => buf.format(status),
            other => other.as_str(),
        }
    }
}

/// One outcome of a proxied request, as recorded by the proxy when the response ends.
pub struct RequestOutcome<'a> {
    pub route_id: u32,
    pub route: &'a Arc<str>,
    pub method: MethodLabel,
    pub status: u16,
    pub error: Option<ErrorType>,
    pub duration_seconds: f64,
    pub request_body_bytes: u64,
    pub response_body_bytes: u64,
    /// A sampled trace's id and the request's end, for an exemplar.
    pub exemplar: Option<Exemplar>,
}

/// The trace an observation links to (OpenMetrics exemplar), and when it was made.
#[derive(Clone, Copy)]
pub struct Exemplar {
    pub trace_id: [u8; 16],
    pub at: super::wall_clock::UnixNanos,
}

struct Series {
    route: Arc<str>,
    method: MethodLabel,
    status: u16,
    error: Option<ErrorType>,
    duration: Histogram,
    request_size: Histogram,
    response_size: Histogram,
}

/// One gRPC call's outcome, recorded besides its HTTP outcome.
pub struct RpcOutcome<'a> {
    pub route_id: u32,
    /// `package.Service/Method`, or `_OTHER` for a path that is no route.
    pub method: &'a str,
    pub code: Code,
    /// The call failed and the server is to blame: `error_type` is the code's name.
    pub server_error: bool,
    pub duration_seconds: f64,
    pub exemplar: Option<Exemplar>,
}

struct RpcSeries {
    method: Arc<str>,
    code: Code,
    server_error: bool,
    duration: Histogram,
}

/// The series maps' hasher: their keys are redline's own (a route id from the bounded route
/// table and label codes, [`series_key`]), so foldhash instead of the default SipHash, which
/// DashMap runs twice per lookup (shard, then slot): about 100 instructions per request.
type SeriesHasher = foldhash::fast::RandomState;

pub struct RedMetrics {
    duration_bounds: Arc<[f64]>,
    size_bounds: Arc<[f64]>,
    series: DashMap<u64, Arc<Series>, SeriesHasher>,
    rpc: DashMap<u64, Arc<RpcSeries>, SeriesHasher>,
    active: [AtomicI64; METHOD_LABELS.len()],
    methods_seen: AtomicU16,
}

fn observe(series: &Series, o: &RequestOutcome<'_>) {
    match o.exemplar {
        Some(e) => series.duration.observe_with_exemplar(o.duration_seconds, e.trace_id, e.at.as_secs_f64()),
        None => series.duration.observe(o.duration_seconds),
    }
    series.request_size.observe(o.request_body_bytes as f64);
    series.response_size.observe(o.response_body_bytes as f64);
}

fn series_key(o: &RequestOutcome<'_>) -> u64 {
    let error = o.error.map_or(0u64, |e| e as u64 + 1);
    (o.route_id as u64) << 32 | (o.method as u64) << 24 | (o.status as u64) << 8 | error
}

impl RedMetrics {
    pub fn new(duration_buckets: &[f64]) -> Self {
        RedMetrics {
            duration_bounds: duration_buckets.to_vec().into(),
            size_bounds: BODY_SIZE_BUCKETS.to_vec().into(),
            series: DashMap::with_hasher(SeriesHasher::default()),
            rpc: DashMap::with_hasher(SeriesHasher::default()),
            active: Default::default(),
            methods_seen: AtomicU16::new(0),
        }
    }

    /// Counts a request as in flight until the returned guard is dropped.
    pub fn start(self: &Arc<Self>, method: MethodLabel) -> ActiveRequest {
        // Read first: after a method's first request the bit is set, and a plain load leaves
        // the shared word unlocked (a `fetch_or` is a locked write on every request).
        let bit = 1 << method as u16;
        if self.methods_seen.load(Ordering::Relaxed) & bit == 0 {
            self.methods_seen.fetch_or(bit, Ordering::Relaxed);
        }
        self.active[method as usize].fetch_add(1, Ordering::Relaxed);
        ActiveRequest { metrics: self.clone(), method }
    }

    pub fn record(&self, o: &RequestOutcome<'_>) {
        let key = series_key(o);
        // Observed through the map's guard: a series that exists (nearly every request's) costs
        // no reference count.
        if let Some(series) = self.series.get(&key) {
            observe(&series, o);
            return;
        }
        let series = self
            .series
            .entry(key)
            .or_insert_with(|| {
                Arc::new(Series {
                    route: o.route.clone(),
                    method: o.method,
                    status: o.status,
                    error: o.error,
                    duration: Histogram::new(self.duration_bounds.clone()),
                    request_size: Histogram::new(self.size_bounds.clone()),
                    response_size: Histogram::new(self.size_bounds.clone()),
                })
            })
            .clone();
        observe(&series, o);
    }

    /// Records a gRPC call in `rpc_server_call_duration_seconds`.
    pub fn record_rpc(&self, o: &RpcOutcome<'_>) {
        let key = (o.route_id as u64) << 32 | (o.code as u64) << 8 | o.server_error as u64;
        let series = match self.rpc.get(&key) {
            Some(s) => s.clone(),
            None => self
                .rpc
                .entry(key)
                .or_insert_with(|| {
                    Arc::new(RpcSeries {
                        method: o.method.into(),
                        code: o.code,
                        server_error: o.server_error,
                        duration: Histogram::new(self.duration_bounds.clone()),
                    })
                })
                .clone(),
        };
        match o.exemplar {
            Some(e) => series.duration.observe_with_exemplar(o.duration_seconds, e.trace_id, e.at.as_secs_f64()),
            None => series.duration.observe(o.duration_seconds),
        }
    }

    /// Number of distinct series (route x method x status x error type).
    pub fn series_count(&self) -> usize {
        self.series.len()
    }

    pub fn write(&self, w: &mut ExpositionWriter) {
        let mut all: Vec<Arc<Series>> = self.series.iter().map(|e| e.value().clone()).collect();
        all.sort_by(|a, b| {
            (&a.route, a.method as u8, a.status, a.error.map(|e| e as u8)).cmp(&(
                &b.route,
                b.method as u8,
                b.status,
                b.error.map(|e| e as u8),
            ))
        });
        type Pick = fn(&Series) -> &Histogram;
        let families: [(&str, &str, Pick); 3] = [
            ("http_server_request_duration_seconds", "Duration of HTTP server requests.", |s| &s.duration),
            ("http_server_request_body_size_bytes", "Size of HTTP server request bodies.", |s| &s.request_size),
            ("http_server_response_body_size_bytes", "Size of HTTP server response bodies.", |s| &s.response_size),
        ];
        for (name, help, pick) in families {
            if all.is_empty() {
                break;
            }
            w.family(name, help, Kind::Histogram);
            let mut status_buf = itoa::Buffer::new();
            let mut error_buf = itoa::Buffer::new();
            for s in &all {
                let snapshot = pick(s).snapshot();
                let mut labels =
                    [("http_request_method", s.method.as_str()), ("http_route", &s.route), ("", ""), ("", "")];
                let mut n = 2;
                // Status 0: no response was sent. OpenTelemetry leaves the attribute out then, and
                // so does the series (an absent label is the empty value in Prometheus).
                if s.status != 0 {
                    labels[n] = ("http_response_status_code", status_buf.format(s.status));
                    n += 1;
                }
                if let Some(e) = s.error {
                    labels[n] = ("error_type", e.label(s.status, &mut error_buf));
                    n += 1;
                }
                w.histogram(&labels[..n], &snapshot);
            }
        }
        self.write_rpc(w);
        let seen = self.methods_seen.load(Ordering::Relaxed);
        if seen != 0 {
            w.family("http_server_active_requests", "Number of active HTTP server requests.", Kind::Gauge);
            for m in METHOD_LABELS {
                if seen & (1 << m as u16) != 0 {
                    w.sample(
                        &[("http_request_method", m.as_str())],
                        self.active[m as usize].load(Ordering::Relaxed) as f64,
                    );
                }
            }
        }
    }
}

impl RedMetrics {
    fn write_rpc(&self, w: &mut ExpositionWriter) {
        let mut all: Vec<Arc<RpcSeries>> = self.rpc.iter().map(|e| e.value().clone()).collect();
        if all.is_empty() {
            return;
        }
        all.sort_by(|a, b| (&a.method, a.code as u8, a.server_error).cmp(&(&b.method, b.code as u8, b.server_error)));
        w.family("rpc_server_call_duration_seconds", "Duration of incoming RPCs (gRPC calls).", Kind::Histogram);
        for s in &all {
            let snapshot = s.duration.snapshot();
            let labels = [
                ("rpc_system_name", "grpc"),
                ("rpc_method", &*s.method),
                ("rpc_response_status_code", s.code.name()),
                ("error_type", s.code.name()),
            ];
            let n = if s.server_error { 4 } else { 3 };
            w.histogram(&labels[..n], &snapshot);
        }
    }
}

/// Decrements `http_server_active_requests` when the request is over, however it ends.
pub struct ActiveRequest {
    metrics: Arc<RedMetrics>,
    method: MethodLabel,
}

impl Drop for ActiveRequest {
    fn drop(&mut self) {
        self.metrics.active[self.method as usize].fetch_sub(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::telemetry::metrics::Format;

    fn outcome<'a>(route: &'a Arc<str>, status: u16, error: Option<ErrorType>, secs: f64) -> RequestOutcome<'a> {
        RequestOutcome {
            route_id: 1,
            route,
            method: MethodLabel::Get,
            status,
            error,
            duration_seconds: secs,
            request_body_bytes: 0,
            response_body_bytes: 10,
            exemplar: None,
        }
    }

    #[test]
    fn records_one_series_per_outcome_and_labels_errors() {
        let m = Arc::new(RedMetrics::new(&[0.1, 1.0]));
        let route: Arc<str> = "/users/{id}".into();
        m.record(&outcome(&route, 200, None, 0.05));
        m.record(&outcome(&route, 200, None, 0.5));
        m.record(&outcome(&route, 503, Some(ErrorType::Status), 0.5));
        m.record(&outcome(&route, 504, Some(ErrorType::Timeout), 2.0));
        assert_eq!(m.series_count(), 3);
        let mut w = ExpositionWriter::new(Format::Prometheus);
        m.write(&mut w);
        let text = w.finish();
        assert!(text.contains("http_server_request_duration_seconds_count{http_request_method=\"GET\",http_route=\"/users/{id}\",http_response_status_code=\"200\"} 2\n"), "{text}");
        assert!(text.contains("http_response_status_code=\"503\",error_type=\"503\"} 1\n"), "{text}");
        assert!(text.contains("http_response_status_code=\"504\",error_type=\"timeout\",le=\"1\"} 0\n"), "{text}");
    }

    #[test]
    fn a_request_without_response_has_no_status_label() {
        let m = Arc::new(RedMetrics::new(&[1.0]));
        let route: Arc<str> = "/a".into();
        m.record(&outcome(&route, 0, Some(ErrorType::ClientClosed), 0.5));
        let mut w = ExpositionWriter::new(Format::Prometheus);
        m.write(&mut w);
        let text = w.finish();
        assert!(
            text.contains("http_server_request_duration_seconds_count{http_request_method=\"GET\",http_route=\"/a\",error_type=\"client_closed\"} 1\n"),
            "{text}"
        );
        assert!(!ErrorType::ClientClosed.is_service_error() && ErrorType::UpstreamError.is_service_error());
    }

    #[test]
    fn active_requests_follow_guards() {
        let m = Arc::new(RedMetrics::new(&[1.0]));
        let a = m.start(MethodLabel::Post);
        let b = m.start(MethodLabel::Post);
        drop(a);
        let mut w = ExpositionWriter::new(Format::Prometheus);
        m.write(&mut w);
        assert!(w.finish().contains("http_server_active_requests{http_request_method=\"POST\"} 1\n"));
        drop(b);
    }

    #[test]
    fn method_labels() {
        assert_eq!(MethodLabel::of(&http::Method::GET).as_str(), "GET");
        let custom = http::Method::from_bytes(b"PURGE").expect("valid method token");
        assert_eq!(MethodLabel::of(&custom).as_str(), "_OTHER");
    }

    #[test]
    fn grpc_calls_have_their_own_family_with_server_errors_labelled() {
        let m = Arc::new(RedMetrics::new(&[0.1, 1.0]));
        let call = |code: Code, server_error: bool| RpcOutcome {
            route_id: 7,
            method: "shop.Cart/Add",
            code,
            server_error,
            duration_seconds: 0.05,
            exemplar: None,
        };
        m.record_rpc(&call(Code::Ok, false));
        m.record_rpc(&call(Code::Ok, false));
        m.record_rpc(&call(Code::NotFound, false));
        m.record_rpc(&call(Code::Unavailable, true));
        let mut w = ExpositionWriter::new(Format::Prometheus);
        m.write(&mut w);
        let text = w.finish();
        assert!(text.contains("# TYPE rpc_server_call_duration_seconds histogram\n"), "{text}");
        assert!(text.contains("rpc_server_call_duration_seconds_count{rpc_system_name=\"grpc\",rpc_method=\"shop.Cart/Add\",rpc_response_status_code=\"OK\"} 2\n"), "{text}");
        assert!(text.contains("rpc_response_status_code=\"NOT_FOUND\"} 1\n"), "{text}");
        assert!(text.contains("rpc_response_status_code=\"UNAVAILABLE\",error_type=\"UNAVAILABLE\"} 1\n"), "{text}");
        assert_eq!(ErrorType::of_grpc(Code::NotFound), None);
        assert_eq!(ErrorType::of_grpc(Code::DataLoss).map(ErrorType::as_str), Some("DATA_LOSS"));
    }
}
