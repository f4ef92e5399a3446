//! A small HTTP service with realistic routes plus test endpoints: fixed statuses, delays,
//! streamed downloads and uploads, header echo, and a fault switch (error rate, added latency).

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get, post};
use bytes::Bytes;
use futures_util::StreamExt;
use tokio::net::TcpListener;

/// Faults injected into the realistic routes (`/users/{id}`, `/orders/{id}/items`).
#[derive(Default)]
pub struct Faults {
    /// Share of requests answered with 500, in per-mille.
    pub error_per_mille: AtomicU32,
    /// Latency added to every request, in milliseconds.
    pub added_latency_ms: AtomicU64,
}

impl Faults {
    pub fn set(&self, error_ratio: f64, added_latency: Duration) {
        self.error_per_mille.store((error_ratio.clamp(0.0, 1.0) * 1000.0).round() as u32, Ordering::Relaxed);
        self.added_latency_ms.store(added_latency.as_millis() as u64, Ordering::Relaxed);
    }
}

/// Serves the demo service on `listener` until the task is dropped.
pub async fn serve(listener: TcpListener, faults: Arc<Faults>) -> std::io::Result<()> {
    axum::serve(listener, router(faults)).await
}

pub fn router(faults: Arc<Faults>) -> Router {
    Router::new()
        .route("/", get(|| async { "hello from upstream\n" }))
        .route("/status/{code}", any(status))
        .route("/delay/{ms}", any(delay))
        .route("/bytes/{n}", get(bytes))
        .route("/upload", post(upload).put(upload))
        .route("/headers", any(headers))
        .route("/users/{id}", get(user))
        .route("/orders/{id}/items", get(order_items))
        .with_state(faults)
}

async fn status(Path(code): Path<u16>) -> Response {
    match StatusCode::from_u16(code) {
        Ok(s) => (s, format!("status {code}\n")).into_response(),
        Err(_) => (StatusCode::BAD_REQUEST, "status must be 100-999\n").into_response(),
    }
}

async fn delay(Path(ms): Path<u64>) -> Response {
    tokio::time::sleep(Duration::from_millis(ms.min(600_000))).await;
    format!("slept {ms}ms\n").into_response()
}

/// Streams `n` bytes in 64 KiB chunks without holding them in memory.
async fn bytes(Path(n): Path<u64>) -> Response {
    const CHUNK: usize = 64 * 1024;
    let chunk = Bytes::from(vec![b'x'; CHUNK]);
    let stream = futures_util::stream::unfold(n, move |left| {
        let chunk = chunk.clone();
        async move {
            if left == 0 {
                return None;
            }
            let take = left.min(CHUNK as u64);
            Some((Ok::<_, std::io::Error>(chunk.slice(..take as usize)), left - take))
        }
    });
    ([(header::CONTENT_LENGTH, n.to_string())], Body::from_stream(stream)).into_response()
}

async fn upload(body: Body) -> Response {
    let mut stream = body.into_data_stream();
    let mut received = 0u64;
    while let Some(chunk) = stream.next().await {
        match chunk {
            Ok(c) => received += c.len() as u64,
            Err(e) => {
                return (StatusCode::BAD_REQUEST, format!("body error: {e}\n")).into_response();
            }
        }
    }
    json(StatusCode::OK, serde_json::json!({ "received": received }))
}

async fn headers(h: HeaderMap) -> Response {
    let map: serde_json::Map<String, serde_json::Value> = h
        .iter()
        .map(|(k, v)| (k.as_str().to_string(), String::from_utf8_lossy(v.as_bytes()).into_owned().into()))
        .collect();
    json(StatusCode::OK, serde_json::Value::Object(map))
}

async fn user(State(faults): State<Arc<Faults>>, Path(id): Path<String>) -> Response {
    if let Some(failure) = realistic_wait(&faults, 2..15).await {
        return failure;
    }
    json(StatusCode::OK, serde_json::json!({ "id": id, "name": format!("user {id}") }))
}

async fn order_items(State(faults): State<Arc<Faults>>, Path(id): Path<String>) -> Response {
    if let Some(failure) = realistic_wait(&faults, 5..40).await {
        return failure;
    }
    json(
        StatusCode::OK,
        serde_json::json!({ "order": id, "items": [{"sku": "A-1", "qty": 2}, {"sku": "B-7", "qty": 1}] }),
    )
}

/// Sleeps a realistic service time plus injected latency; answers 500 at the injected rate.
async fn realistic_wait(faults: &Faults, base_ms: std::ops::Range<u64>) -> Option<Response> {
    let added = faults.added_latency_ms.load(Ordering::Relaxed);
    tokio::time::sleep(Duration::from_millis(fastrand::u64(base_ms) + added)).await;
    let per_mille = faults.error_per_mille.load(Ordering::Relaxed);
    (fastrand::u32(0..1000) < per_mille)
        .then(|| json(StatusCode::INTERNAL_SERVER_ERROR, serde_json::json!({ "error": "injected fault" })))
}

fn json(status: StatusCode, v: serde_json::Value) -> Response {
    (status, [(header::CONTENT_TYPE, "application/json")], v.to_string()).into_response()
}
