//! The receiver's HTTP API: ingest (webhook v4, v2 alerts), queries, promotion gates, metrics
//! and health. Handlers translate between HTTP and the pure parsing, store and gate modules.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{Path, Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use http_body_util::{BodyExt, LengthLimitError, Limited};
use serde::Serialize;
use serde_json::json;

use super::auth::Credentials;
use super::gates::{self, FlaggerPayload};
use super::metrics::{ReceiverMetrics, Rejection};
use super::payload::{self, Status, format_timestamp, now_nanos};
use super::readiness::{self as gate_readiness, ConfigSource, GateError, GateRequest};
use super::store::{AlertQuery, AlertState, HistoryEntry, Outcome, Store};
use crate::telemetry::metrics::Format;

/// Flagger's payloads are small; anything bigger is not one.
const MAX_GATE_BODY: usize = 64 * 1024;
const DEFAULT_LIMIT: usize = 1000;
const MAX_LIMIT: usize = 100_000;

pub struct App {
    pub store: Store,
    pub credentials: Credentials,
    pub max_body: usize,
    pub metrics: Arc<ReceiverMetrics>,
    /// Where the gates find each service's readiness config.
    pub readiness: ConfigSource,
    /// Time each HTTP request of a readiness check may take.
    pub readiness_timeout: Duration,
    /// How long a v2 alert posted without `endsAt` stays firing (`--resolve-timeout`).
    pub resolve_timeout: Duration,
    /// Each service's latest gate answer, for the page.
    pub reports: gate_readiness::LatestReports,
}

/// Writes (ingest) and alert queries need the credentials; gates, metrics and health checks
/// do not, so rollout controllers and Prometheus can call them without secrets.
pub fn router(app: Arc<App>) -> Router {
    Router::new()
        .route("/api/v1/alertmanager", post(webhook))
        .route("/api/v2/alerts", post(v2_alerts))
        .route("/api/v1/alerts", get(list_alerts))
        .route("/api/v1/alerts/{fingerprint}/history", get(history))
        .route("/api/v1/flagger/confirm-promotion", post(confirm_promotion))
        .route("/api/v1/flagger/rollback", post(rollback))
        .route("/api/v1/readiness/{service}", get(readiness))
        .route("/metrics", get(metrics))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .fallback(|| async { error(StatusCode::NOT_FOUND, "no such endpoint") })
        .with_state(app)
}

fn json_response(status: StatusCode, value: &impl Serialize) -> Response {
    let body = serde_json::to_vec(value).unwrap_or_else(|_| b"{}".to_vec());
    (status, [(header::CONTENT_TYPE, HeaderValue::from_static("application/json"))], body).into_response()
}

fn error(status: StatusCode, message: &str) -> Response {
    json_response(status, &json!({ "error": message }))
}

fn text(status: StatusCode, message: String) -> Response {
    (status, [(header::CONTENT_TYPE, HeaderValue::from_static("text/plain; charset=utf-8"))], message + "\n")
        .into_response()
}

fn unauthorized(app: &App) -> Response {
    let mut r = error(StatusCode::UNAUTHORIZED, "missing or wrong credentials");
    r.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static(app.credentials.challenge()));
    r
}

fn authorized(app: &App, headers: &HeaderMap) -> bool {
    app.credentials.check(headers.get(header::AUTHORIZATION).map(|v| v.as_bytes()))
}

enum BodyError {
    TooLarge,
    Read(String),
}

/// How much of a refused body is read and thrown away after the answer (see `linger`).
const LINGER_BYTES: u64 = 64 << 20;
/// How long a refused body is read and thrown away after the answer.
const LINGER_TIME: Duration = Duration::from_secs(10);

/// Reads a body of at most `limit` bytes; a declared or actual size over it is refused early,
/// and the rest of it is drained in the background (`linger`).
async fn read_body(headers: &HeaderMap, mut body: Body, limit: usize) -> Result<bytes::Bytes, BodyError> {
    let declared = headers.get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        linger(body);
        return Err(BodyError::TooLarge);
    }
    // Borrowed, so that the unread rest of an oversized body is still ours to drain.
    let read = Limited::new(&mut body, limit).collect().await;
    match read {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e) if e.is::<LengthLimitError>() => {
            linger(body);
            Err(BodyError::TooLarge)
        }
        Err(e) => Err(BodyError::Read(e.to_string())),
    }
}

/// Reads and discards the rest of a body that was refused unread, in the background, while the
/// answer goes out, as nginx's lingering close does. Closing a socket with unread bytes in it
/// makes the kernel send a reset, which can reach the client before it reads the answer: an
/// Alertmanager posting an oversized batch would log "connection reset" or "broken pipe"
/// instead of the 413. Bounded by `LINGER_BYTES` and `LINGER_TIME`; past either the body is
/// dropped and the connection closes as before. The answer carries `Connection: close` (`closing`).
fn linger(mut body: Body) {
    tokio::spawn(async move {
        let drain = async {
            let mut left = LINGER_BYTES;
            // A read error (the client went away) ends the drain as the end of the body does.
            while let Some(Ok(frame)) = body.frame().await {
                let len = frame.data_ref().map_or(0, |d| d.len() as u64);
                left = left.saturating_sub(len);
                if left == 0 {
                    break;
                }
            }
        };
        let _ = tokio::time::timeout(LINGER_TIME, drain).await;
    });
}

/// An answer to a request whose body was refused unread: the connection ends once the body is
/// drained, and the client learns so rather than reusing a connection that may be cut.
fn closing(mut response: Response) -> Response {
    response.headers_mut().insert(header::CONNECTION, HeaderValue::from_static("close"));
    response
}

#[derive(Clone, Copy)]
enum Api {
    Webhook,
    V2,
}

async fn webhook(State(app): State<Arc<App>>, req: Request) -> Response {
    ingest(&app, req, Api::Webhook).await
}

async fn v2_alerts(State(app): State<Arc<App>>, req: Request) -> Response {
    ingest(&app, req, Api::V2).await
}

async fn ingest(app: &App, req: Request, api: Api) -> Response {
    app.metrics.received();
    let reject = |why: Rejection, status: StatusCode, message: &str| {
        app.metrics.rejected(why);
        tracing::warn!(reason = why.as_str(), status = status.as_u16(), error = message, "delivery rejected");
        error(status, message)
    };
    let (parts, body) = req.into_parts();
    if !authorized(app, &parts.headers) {
        app.metrics.rejected(Rejection::Unauthorized);
        tracing::warn!(reason = "unauthorized", status = 401u64, "delivery rejected");
        // A sender with wrong credentials should see the 401, not a reset, whatever it posted.
        linger(body);
        return closing(unauthorized(app));
    }
    let body = match read_body(&parts.headers, body, app.max_body).await {
        Ok(b) => b,
        Err(BodyError::TooLarge) => {
            let msg = format!("body is larger than --max-body ({} bytes)", app.max_body);
            return closing(reject(Rejection::TooLarge, StatusCode::PAYLOAD_TOO_LARGE, &msg));
        }
        Err(BodyError::Read(e)) => {
            return reject(Rejection::Invalid, StatusCode::BAD_REQUEST, &format!("cannot read the body: {e}"));
        }
    };
    let now = now_nanos();
    let parsed = match api {
        Api::Webhook => payload::parse_webhook(&body),
        Api::V2 => {
            payload::parse_v2_alerts(&body, now, i64::try_from(app.resolve_timeout.as_nanos()).unwrap_or(i64::MAX))
        }
    };
    let delivery = match parsed {
        Ok(d) => d,
        Err(e) => return reject(Rejection::Invalid, StatusCode::BAD_REQUEST, &e.0),
    };
    let alerts = delivery.alerts.len();
    match app.store.commit(delivery, now).await {
        Ok(Outcome::Stored) => {
            app.metrics.stored();
            tracing::debug!(alerts, "delivery stored");
            json_response(StatusCode::OK, &json!({ "status": "stored", "alerts": alerts }))
        }
        Ok(Outcome::Refreshed) => {
            app.metrics.refreshed();
            tracing::debug!(alerts, "alerts refreshed");
            json_response(StatusCode::OK, &json!({ "status": "refreshed", "alerts": alerts }))
        }
        Ok(Outcome::Duplicate) => {
            app.metrics.duplicate();
            tracing::debug!(alerts, "duplicate delivery acknowledged");
            json_response(StatusCode::OK, &json!({ "status": "duplicate", "alerts": alerts }))
        }
        // 503 makes Alertmanager (and Prometheus) retry: nothing is lost while the store is down.
        Err(e) => reject(Rejection::Store, StatusCode::SERVICE_UNAVAILABLE, &format!("not stored: {e}")),
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct AlertJson<'a> {
    fingerprint: &'a str,
    state: &'static str,
    labels: &'a std::collections::BTreeMap<String, String>,
    annotations: &'a std::collections::BTreeMap<String, String>,
    starts_at: String,
    ends_at: Option<String>,
    #[serde(rename = "generatorURL")]
    generator_url: &'a str,
    last_notified_at: String,
    notifications: i64,
}

impl<'a> From<&'a AlertState> for AlertJson<'a> {
    fn from(a: &'a AlertState) -> Self {
        AlertJson {
            fingerprint: &a.fingerprint,
            state: a.state.as_str(),
            labels: &a.labels,
            annotations: &a.annotations,
            starts_at: format_timestamp(a.starts_at),
            ends_at: a.ends_at.map(format_timestamp),
            generator_url: &a.generator_url,
            last_notified_at: format_timestamp(a.last_notified_at),
            notifications: a.notifications,
        }
    }
}

/// The filters of `GET /api/v1/alerts`, each checked with an error naming the parameter.
fn alert_query(params: &HashMap<String, String>, now: i64) -> Result<AlertQuery, String> {
    let mut q = AlertQuery { limit: DEFAULT_LIMIT, now, ..AlertQuery::default() };
    for (k, v) in params {
        match k.as_str() {
            "service" if !v.is_empty() => q.service = Some(v.clone()),
            "service" => {}
            "state" => {
                q.state = match v.as_str() {
                    "firing" => Some(Status::Firing),
                    "resolved" => Some(Status::Resolved),
                    "" => None,
                    _ => return Err(format!("state: expected firing or resolved, got {v:?}")),
                }
            }
            "since" if v.is_empty() => {}
            "since" => q.since = Some(parse_since(v, now)?),
            "limit" => {
                q.limit = v
                    .parse::<usize>()
                    .ok()
                    .filter(|n| (1..=MAX_LIMIT).contains(n))
                    .ok_or_else(|| format!("limit: expected a number from 1 to {MAX_LIMIT}, got {v:?}"))?
            }
            _ => return Err(format!("{k}: unknown parameter (expected service, state, since, limit)")),
        }
    }
    Ok(q)
}

/// `since` is an RFC 3339 timestamp or a duration back from now (`30m`, `2h`).
pub fn parse_since(v: &str, now: i64) -> Result<i64, String> {
    if let Ok(Some(t)) = payload::parse_timestamp(v) {
        return Ok(t);
    }
    humantime::parse_duration(v)
        .ok()
        .and_then(|d| i64::try_from(d.as_nanos()).ok())
        .map(|d| now.saturating_sub(d))
        .ok_or_else(|| format!("since: expected an RFC 3339 timestamp or a duration such as 30m, got {v:?}"))
}

async fn list_alerts(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    Query(params): Query<HashMap<String, String>>,
) -> Response {
    if !authorized(&app, &headers) {
        return unauthorized(&app);
    }
    let q = match alert_query(&params, now_nanos()) {
        Ok(q) => q,
        Err(e) => return error(StatusCode::BAD_REQUEST, &e),
    };
    match app.store.alerts(q).await {
        Ok(alerts) => {
            let alerts: Vec<AlertJson> = alerts.iter().map(AlertJson::from).collect();
            json_response(StatusCode::OK, &json!({ "alerts": alerts }))
        }
        Err(e) => error(StatusCode::SERVICE_UNAVAILABLE, &format!("cannot query the store: {e}")),
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct HistoryJson<'a> {
    received_at: String,
    status: &'static str,
    starts_at: String,
    ends_at: Option<String>,
    labels: &'a std::collections::BTreeMap<String, String>,
    annotations: &'a std::collections::BTreeMap<String, String>,
    #[serde(rename = "generatorURL")]
    generator_url: &'a str,
    source: &'a str,
    receiver: &'a str,
    group_key: &'a str,
}

impl<'a> From<&'a HistoryEntry> for HistoryJson<'a> {
    fn from(h: &'a HistoryEntry) -> Self {
        HistoryJson {
            received_at: format_timestamp(h.received_at),
            status: h.status.as_str(),
            starts_at: format_timestamp(h.starts_at),
            ends_at: h.ends_at.map(format_timestamp),
            labels: &h.labels,
            annotations: &h.annotations,
            generator_url: &h.generator_url,
            source: &h.source,
            receiver: &h.receiver,
            group_key: &h.group_key,
        }
    }
}

async fn history(State(app): State<Arc<App>>, headers: HeaderMap, Path(fingerprint): Path<String>) -> Response {
    if !authorized(&app, &headers) {
        return unauthorized(&app);
    }
    match app.store.history(&fingerprint).await {
        Ok(entries) if entries.is_empty() => {
            error(StatusCode::NOT_FOUND, &format!("no notification stored for alert {fingerprint:?}"))
        }
        Ok(entries) => {
            let notifications: Vec<HistoryJson> = entries.iter().map(HistoryJson::from).collect();
            json_response(StatusCode::OK, &json!({ "fingerprint": fingerprint, "notifications": notifications }))
        }
        Err(e) => error(StatusCode::SERVICE_UNAVAILABLE, &format!("cannot query the store: {e}")),
    }
}

async fn flagger_payload(req: Request) -> Result<FlaggerPayload, Response> {
    let (parts, body) = req.into_parts();
    let body = read_body(&parts.headers, body, MAX_GATE_BODY).await.map_err(|e| match e {
        BodyError::TooLarge => {
            closing(text(StatusCode::PAYLOAD_TOO_LARGE, format!("body is larger than {MAX_GATE_BODY} bytes")))
        }
        BodyError::Read(e) => text(StatusCode::BAD_REQUEST, format!("cannot read the body: {e}")),
    })?;
    let mut de = serde_json::Deserializer::from_slice(&body);
    serde_path_to_error::deserialize(&mut de).map_err(|e| {
        text(StatusCode::BAD_REQUEST, format!("not a Flagger webhook payload: {}: {}", e.path(), e.inner()))
    })
}

/// Runs the readiness checklist for a gate; a request or config problem is the error response.
async fn gate_answer(app: &App, req: Result<GateRequest, String>) -> Result<gate_readiness::GateAnswer, Response> {
    let req = req.map_err(|e| text(StatusCode::BAD_REQUEST, e))?;
    let answer = gate_readiness::evaluate(&app.store, &app.readiness, &req).await.map_err(|e| match e {
        GateError::BadRequest(e) => text(StatusCode::BAD_REQUEST, e),
        GateError::Config(e) => text(StatusCode::INTERNAL_SERVER_ERROR, format!("readiness config: {e}")),
    })?;
    app.reports.record(&answer, now_nanos());
    Ok(answer)
}

/// 200 lets Flagger promote (every blocking readiness check passes); 403 holds the promotion,
/// with one line per blocking failure as the body.
async fn confirm_promotion(State(app): State<Arc<App>>, req: Request) -> Response {
    let payload = match flagger_payload(req).await {
        Ok(p) => p,
        Err(r) => return r,
    };
    let sel = payload.selector();
    let meta: BTreeMap<String, String> = payload.metadata.clone().unwrap_or_default();
    let req = GateRequest::from_params(sel.service.clone(), sel.namespace.clone(), &meta, app.readiness_timeout)
        .map_err(|e| format!("metadata.{e}"));
    match gate_answer(&app, req).await {
        Ok(a) if a.report.ready => text(
            StatusCode::OK,
            format!(
                "promotion confirmed for {}: {} checks passed, no blocking check failed",
                sel.describe(),
                a.report.counts.pass
            ),
        ),
        Ok(a) => {
            text(StatusCode::FORBIDDEN, format!("promotion held for {}: {}", sel.describe(), a.reasons.join("; ")))
        }
        Err(r) => r,
    }
}

/// 200 tells Flagger to roll back (a critical alert fires for the canary); 403 lets it go on.
async fn rollback(State(app): State<Arc<App>>, req: Request) -> Response {
    let sel = match flagger_payload(req).await {
        Ok(p) => p.selector(),
        Err(r) => return r,
    };
    match gates::firing_critical(&app.store, &sel).await {
        Ok(firing) if firing.is_empty() => {
            text(StatusCode::FORBIDDEN, format!("no rollback: no critical alert firing for {}", sel.describe()))
        }
        Ok(firing) => text(StatusCode::OK, format!("roll back: {}", gates::reason(&sel, &firing))),
        // Not 200: an outage of the store must not roll back every canary.
        Err(e) => text(StatusCode::SERVICE_UNAVAILABLE, format!("cannot query the alert store: {e}")),
    }
}

/// Argo Rollouts' `web` metric: always 200 with the report; `ready` is the verdict.
async fn readiness(
    State(app): State<Arc<App>>,
    Path(service): Path<String>,
    Query(params): Query<BTreeMap<String, String>>,
) -> Response {
    let req = GateRequest::from_params(service, None, &params, app.readiness_timeout);
    match gate_answer(&app, req).await {
        Ok(a) => json_response(StatusCode::OK, &a),
        Err(r) => r,
    }
}

async fn metrics(State(app): State<Arc<App>>, headers: HeaderMap) -> Response {
    let format = Format::from_accept(headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()));
    let body = app.metrics.render(format);
    ([(header::CONTENT_TYPE, HeaderValue::from_static(format.content_type()))], body).into_response()
}

async fn readyz(State(app): State<Arc<App>>) -> Response {
    match app.store.ping().await {
        Ok(()) => text(StatusCode::OK, format!("ready: {} store reachable", app.store.kind())),
        Err(e) => text(StatusCode::SERVICE_UNAVAILABLE, format!("not ready: {} store: {e}", app.store.kind())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_parameters_are_checked_by_name() {
        let now = 10_000_000_000_000;
        let p = |pairs: &[(&str, &str)]| pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        let q = alert_query(&p(&[("service", "checkout"), ("state", "firing"), ("since", "1s")]), now).expect("valid");
        assert_eq!(q.service.as_deref(), Some("checkout"));
        assert_eq!(q.state, Some(Status::Firing));
        assert_eq!(q.since, Some(now - 1_000_000_000));
        let q = alert_query(&p(&[("since", "2024-01-01T00:00:00Z")]), now).expect("valid");
        assert_eq!(q.since, Some(1_704_067_200_000_000_000));
        assert!(alert_query(&p(&[("state", "on")]), now).expect_err("bad").starts_with("state:"));
        assert!(alert_query(&p(&[("since", "soon")]), now).expect_err("bad").starts_with("since:"));
        assert!(alert_query(&p(&[("limit", "0")]), now).expect_err("bad").starts_with("limit:"));
        assert!(alert_query(&p(&[("servce", "x")]), now).expect_err("bad").starts_with("servce: unknown"));
    }
}
