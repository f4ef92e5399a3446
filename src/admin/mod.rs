//! The admin port: `/metrics` (Prometheus text or OpenMetrics by `Accept`), `/healthz`, `/readyz`.
//! Renders every metric source of the sidecar through one `ExpositionWriter`.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use tracing_appender::non_blocking::ErrorCounter;

use crate::proxy::upstream::UpstreamGauges;
use crate::telemetry::metrics::{ExpositionWriter, Format, Kind};
use crate::telemetry::red::RedMetrics;
use crate::telemetry::spans::SpanCounters;
use crate::usage::UsageCollector;

/// Everything the admin endpoints read.
pub struct AdminState {
    pub red: Arc<RedMetrics>,
    pub upstream_gauges: Arc<UpstreamGauges>,
    pub usage: UsageCollector,
    pub log_drops: Option<ErrorCounter>,
    pub spans: Option<Arc<SpanCounters>>,
    pub upstream_authority: String,
    /// Set once shutdown begins so `/readyz` turns traffic away while the proxy drains.
    pub draining: AtomicBool,
}

pub fn router(state: Arc<AdminState>) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
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
    state.red.write(&mut w);
    state.upstream_gauges.write(&mut w);
    state.usage.write(&mut w);
    w.family("redline_build_info", "redline build information; the value is always 1.", Kind::Gauge);
    w.sample(&[("version", env!("CARGO_PKG_VERSION"))], 1.0);
    if let Some(spans) = &state.spans {
        spans.write(&mut w);
    }
    if let Some(drops) = &state.log_drops {
        w.family(
            "redline_log_lines_dropped_total",
            "Log lines dropped because stdout could not keep up.",
            Kind::Counter,
        );
        w.sample(&[], drops.dropped_lines() as f64);
    }
    w.finish()
}

async fn readyz(State(state): State<Arc<AdminState>>) -> Response {
    if state.draining.load(Ordering::Relaxed) {
        return (StatusCode::SERVICE_UNAVAILABLE, "not ready: draining for shutdown\n").into_response();
    }
    let probe =
        tokio::time::timeout(Duration::from_secs(1), tokio::net::TcpStream::connect(&state.upstream_authority)).await;
    match probe {
        Ok(Ok(_)) => (StatusCode::OK, "ready\n").into_response(),
        Ok(Err(e)) => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("not ready: upstream {} unreachable: {e}\n", state.upstream_authority),
        )
            .into_response(),
        Err(_) => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("not ready: upstream {} did not accept a connection within 1s\n", state.upstream_authority),
        )
            .into_response(),
    }
}
