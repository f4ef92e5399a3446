//! The admin port: `/metrics` (Prometheus text or OpenMetrics by `Accept`), `/healthz`, `/readyz`,
//! the rules and alerts APIs and `/-/reload`; every metric source goes through one `ExpositionWriter`.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use axum::Json;
use axum::Router;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};

use crate::config::HealthCheck;
use crate::proxy::upstream::UpstreamGauges;
use crate::rules::file::RuleKind;
use crate::rules::service::RuleService;
use crate::telemetry::metrics::{ExpositionWriter, Format, Kind};
use crate::telemetry::red::RedMetrics;
use crate::telemetry::spans::SpanCounters;
use crate::usage::UsageCollector;

/// Everything the admin endpoints read.
pub struct AdminState {
    pub red: Arc<RedMetrics>,
    pub upstream_gauges: Arc<UpstreamGauges>,
    /// Client connections the proxy closed itself, by reason.
    pub connections: Arc<crate::proxy::conn::ConnCounters>,
    pub usage: UsageCollector,
    pub log_drops: Option<crate::telemetry::log_writer::DropCounter>,
    pub spans: Option<Arc<SpanCounters>>,
    pub upstream_authority: String,
    /// How `/readyz` checks the upstream.
    pub health_check: HealthCheck,
    /// The rule engine, when rule files are configured.
    pub rules: Option<Arc<RuleService>>,
    /// Set once shutdown begins so `/readyz` turns traffic away while the proxy drains.
    pub draining: AtomicBool,
}

pub fn router(state: Arc<AdminState>) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .route("/api/v1/rules", get(rules))
        .route("/api/v1/alerts", get(alerts))
        .route("/-/reload", post(reload).put(reload))
        .with_state(state)
}

async fn metrics(State(state): State<Arc<AdminState>>, headers: HeaderMap) -> Response {
    let format = Format::from_accept(headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()));
    let body = render(&state, format);
    ([(header::CONTENT_TYPE, format.content_type())], body).into_response()
}

/// Renders all families of the sidecar in `format`.
pub fn render(state: &AdminState, format: Format) -> String {
    let mut w = ExpositionWriter::new(format);
    write_all(state, &mut w);
    w.finish()
}

/// Writes every metric family of the sidecar, for a scrape or for the rule engine's sampler.
pub fn write_all(state: &AdminState, w: &mut ExpositionWriter) {
    state.red.write(w);
    state.upstream_gauges.write(w);
    state.connections.write(w);
    state.usage.write(w);
    w.family("redline_build_info", "redline build information; the value is always 1.", Kind::Gauge);
    w.sample(&[("version", env!("CARGO_PKG_VERSION"))], 1.0);
    if let Some(spans) = &state.spans {
        spans.write(w);
    }
    if let Some(drops) = &state.log_drops {
        w.family(
            "redline_log_lines_dropped_total",
            "Log lines dropped because stdout could not keep up.",
            Kind::Counter,
        );
        w.sample(&[], drops.dropped_lines() as f64);
    }
    if let Some(rules) = &state.rules {
        rules.write_metrics(w);
    }
}

#[derive(serde::Deserialize)]
struct RulesQuery {
    #[serde(rename = "type")]
    kind: Option<String>,
}

async fn rules(State(state): State<Arc<AdminState>>, Query(q): Query<RulesQuery>) -> Response {
    let only = match q.kind.as_deref() {
        None | Some("") => None,
        Some("alert") => Some(RuleKind::Alerting),
        Some("record") => Some(RuleKind::Recording),
        Some(other) => {
            let body = serde_json::json!({"status": "error", "errorType": "bad_data",
                "error": format!("invalid type {other:?}: expected \"alert\" or \"record\"")});
            return (StatusCode::BAD_REQUEST, Json(body)).into_response();
        }
    };
    let body = match &state.rules {
        Some(r) => crate::rules::api::rules(&r.engine(), only),
        None => serde_json::json!({"status": "success", "data": {"groups": []}}),
    };
    Json(body).into_response()
}

async fn alerts(State(state): State<Arc<AdminState>>) -> Response {
    let body = match &state.rules {
        Some(r) => crate::rules::api::alerts(&r.engine()),
        None => serde_json::json!({"status": "success", "data": {"alerts": []}}),
    };
    Json(body).into_response()
}

async fn reload(State(state): State<Arc<AdminState>>) -> Response {
    let Some(rules) = state.rules.clone() else {
        return (StatusCode::OK, "no rule files configured\n").into_response();
    };
    match tokio::task::spawn_blocking(move || rules.reload()).await {
        Ok(Ok(())) => (StatusCode::OK, "rules reloaded\n").into_response(),
        Ok(Err(errors)) => {
            let mut body = String::from("reload failed; the previous rules keep running:\n");
            for e in errors {
                body.push_str(&e.to_string());
                body.push('\n');
            }
            (StatusCode::INTERNAL_SERVER_ERROR, body).into_response()
        }
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, format!("reload failed: {e}\n")).into_response(),
    }
}

async fn readyz(State(state): State<Arc<AdminState>>) -> Response {
    if state.draining.load(Ordering::Relaxed) {
        return (StatusCode::SERVICE_UNAVAILABLE, "not ready: draining for shutdown\n").into_response();
    }
    let probe = match &state.health_check {
        HealthCheck::Tcp => tcp_probe(&state.upstream_authority).await,
        HealthCheck::Grpc { service } => grpc_probe(&state.upstream_authority, service).await,
    };
    match probe {
        Ok(()) => {
            let rules = match &state.rules {
                Some(r) => {
                    let engine = r.engine();
                    let n: usize = engine.groups.iter().map(|g| g.state.group.rules.len()).sum();
                    format!("; {n} rules loaded in {} groups", engine.groups.len())
                }
                None => String::new(),
            };
            (StatusCode::OK, format!("ready{rules}\n")).into_response()
        }
        Err(why) => (StatusCode::SERVICE_UNAVAILABLE, format!("not ready: {why}\n")).into_response(),
    }
}

/// How long a readiness probe of the upstream may take.
const PROBE_TIMEOUT: Duration = Duration::from_secs(1);

/// Ready when the upstream accepts a TCP connection.
async fn tcp_probe(authority: &str) -> Result<(), String> {
    match tokio::time::timeout(PROBE_TIMEOUT, tokio::net::TcpStream::connect(authority)).await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(e)) => Err(format!("upstream {authority} unreachable: {e}")),
        Err(_) => Err(format!("upstream {authority} did not accept a connection within 1s")),
    }
}

/// Ready when the upstream's standard gRPC health service (`grpc.health.v1.Health/Check`, over
/// h2c) says SERVING for `service` ("" is the whole server).
async fn grpc_probe(authority: &str, service: &str) -> Result<(), String> {
    let what = if service.is_empty() { String::new() } else { format!(" for {service}") };
    match tokio::time::timeout(PROBE_TIMEOUT, grpc_health_check(authority, service)).await {
        Ok(Ok(1)) => Ok(()),
        Ok(Ok(status)) => {
            Err(format!("upstream {authority} gRPC health check{what}: {}", crate::grpc::serving_status_name(status)))
        }
        Ok(Err(e)) => Err(format!("upstream {authority} gRPC health check{what} failed: {e}")),
        Err(_) => Err(format!("upstream {authority} gRPC health check{what} got no answer within 1s")),
    }
}

async fn grpc_health_check(authority: &str, service: &str) -> Result<u64, String> {
    use http_body_util::{BodyExt, Full, Limited};
    let stream = tokio::net::TcpStream::connect(authority).await.map_err(|e| format!("cannot connect: {e}"))?;
    let (mut send, conn) = hyper::client::conn::http2::Builder::new(hyper_util::rt::TokioExecutor::new())
        .handshake(hyper_util::rt::TokioIo::new(stream))
        .await
        .map_err(|e| format!("HTTP/2 handshake: {e}"))?;
    let conn = tokio::spawn(conn);
    let req = http::Request::post(format!("http://{authority}/grpc.health.v1.Health/Check"))
        .header(header::CONTENT_TYPE, "application/grpc")
        .header(header::TE, "trailers")
        .header(crate::grpc::GRPC_TIMEOUT, "1S")
        .body(Full::new(crate::grpc::health_check_request(service)))
        .map_err(|e| e.to_string())?;
    let result = async {
        let resp = send.send_request(req).await.map_err(|e| format!("HTTP/2: {e}"))?;
        let (parts, body) = resp.into_parts();
        if let Some(code) = crate::grpc::status_of_head(parts.status.as_u16(), &parts.headers) {
            return Err(format!("grpc-status {} (HTTP {})", code.name(), parts.status.as_u16()));
        }
        // A health answer is a few bytes; anything much larger is not one.
        let collected =
            Limited::new(body, 64 * 1024).collect().await.map_err(|e| format!("reading the answer: {e}"))?;
        if let Some(code) = collected.trailers().and_then(crate::grpc::status_of_trailers)
            && code != crate::grpc::Code::Ok
        {
            return Err(format!("grpc-status {}", code.name()));
        }
        crate::grpc::parse_health_response(&collected.to_bytes())
    }
    .await;
    conn.abort();
    result
}
