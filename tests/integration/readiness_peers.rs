//! The checks that read other systems: `alerts.firing` against the real Alertmanager (Debian
//! `prometheus-alertmanager`), and `tracing` over the real sidecar's spans, exported by OTLP and
//! served in the Jaeger query API's JSON shape (no Jaeger package exists on this platform), and
//! `dashboard` from Grafana's HTTP API over the shipped dashboards (no Grafana package either).

use crate::common;

use std::collections::BTreeMap;
use std::path::Path;

use axum::extract::{Query, State};
use common::alertmanager::{Alertmanager, QUIET_CONFIG};
use common::otlp::{OtlpReceiver, Received, hex, string};
use common::{Sidecar, Upstream, client, readiness_json, report_check};
use serde_json::{Value, json};

async fn readiness(service: &str, config: &Path, only: &str) -> (i32, Value) {
    let config = config.to_str().expect("utf-8");
    readiness_json(["--service", service, "--only", only, "--config", config].map(String::from).to_vec()).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alerts_firing_from_the_real_alertmanager() {
    let am = Alertmanager::start(QUIET_CONFIG).await;
    let dir = tempfile::tempdir().expect("temp dir");
    let config = dir.path().join("redline.yaml");
    std::fs::write(&config, format!("service: checkout\nalertmanagers: [\"{}\"]\n", am.base_url())).expect("config");

    let (code, r) = readiness("checkout", &config, "alerts.firing").await;
    assert_eq!((code, &report_check(&r, "alerts.firing")["status"]), (0, &json!("pass")), "{r:#}");
    assert!(report_check(&r, "alerts.firing")["evidence"][0].as_str().expect("e").contains("/api/v2/alerts?filter="));

    let post = |labels: Value| {
        let url = am.url("/api/v2/alerts");
        async move {
            let body = json!([{"labels": labels, "annotations": {"summary": "x"}, "generatorURL": "http://x"}]);
            let r = client().post(url).json(&body).send().await.expect("POST alert");
            assert_eq!(r.status(), 200);
        }
    };
    // A warning for the service and a critical alert of another service do not count.
    post(json!({"alertname": "RedlineHighLatency", "service": "checkout", "severity": "warning"})).await;
    post(json!({"alertname": "RedlineHighErrorRatio", "service": "cart", "severity": "critical"})).await;
    am.wait_alert("RedlineHighErrorRatio", true, std::time::Duration::from_secs(10)).await;
    let (code, r) = readiness("checkout", &config, "alerts.firing").await;
    assert_eq!((code, &report_check(&r, "alerts.firing")["status"]), (0, &json!("pass")), "{r:#}");
    assert!(
        report_check(&r, "alerts.firing")["summary"].as_str().expect("s").contains("1 non-critical firing"),
        "{r:#}"
    );

    post(json!({"alertname": "RedlineNoSuccessfulTraffic", "service": "checkout", "severity": "critical"})).await;
    am.wait_alert("RedlineNoSuccessfulTraffic", true, std::time::Duration::from_secs(10)).await;
    let (code, r) = readiness("checkout", &config, "alerts.firing").await;
    let c = report_check(&r, "alerts.firing");
    assert_eq!((code, &c["status"]), (1, &json!("fail")), "{r:#}");
    assert!(
        c["summary"]
            .as_str()
            .expect("s")
            .contains("1 critical alert firing for \"checkout\": RedlineNoSuccessfulTraffic"),
        "{c:#}"
    );
}

/// The Jaeger query API's `GET /api/traces?service=` answer, built from the OTLP spans received.
async fn jaeger_traces(
    State(received): State<Received>,
    Query(q): Query<BTreeMap<String, String>>,
) -> axum::Json<Value> {
    let service = q.get("service").cloned().unwrap_or_default();
    let spans = received.all();
    let mut traces: BTreeMap<String, Vec<&common::otlp::ReceivedSpan>> = BTreeMap::new();
    for s in &spans {
        traces.entry(s.trace_id_hex()).or_default().push(s);
    }
    let data: Vec<Value> = traces
        .into_iter()
        .filter(|(_, spans)| spans.iter().any(|s| string(s.resource_attr("service.name")) == Some(service.as_str())))
        .map(|(trace_id, spans)| {
            let mut processes = serde_json::Map::new();
            let spans: Vec<Value> = spans
                .iter()
                .map(|s| {
                    let name = string(s.resource_attr("service.name")).unwrap_or("unknown").to_string();
                    let pid = format!("p{}", processes.len() + 1);
                    let pid = processes
                        .iter()
                        .find(|(_, p)| p["serviceName"] == name)
                        .map(|(k, _)| k.clone())
                        .unwrap_or_else(|| {
                            processes.insert(pid.clone(), json!({"serviceName": name, "tags": []}));
                            pid
                        });
                    let references: Vec<Value> = if s.span.parent_span_id.is_empty() {
                        vec![]
                    } else {
                        vec![json!({"refType": "CHILD_OF", "traceID": trace_id, "spanID": hex(&s.span.parent_span_id)})]
                    };
                    json!({"traceID": trace_id, "spanID": s.span_id_hex(), "operationName": s.span.name,
                           "references": references, "processID": pid})
                })
                .collect();
            json!({"traceID": trace_id, "spans": spans, "processes": processes})
        })
        .collect();
    axum::Json(json!({"data": data, "total": 0, "limit": 0, "offset": 0, "errors": null}))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tracing_sees_the_sidecars_spans_and_propagated_context() {
    let otlp = OtlpReceiver::http().await;
    let app =
        axum::Router::new().route("/api/traces", axum::routing::get(jaeger_traces)).with_state(otlp.received.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let jaeger = format!("http://{}", listener.local_addr().expect("addr"));
    let server = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    let upstream = Upstream::start().await;
    let sidecar = Sidecar::start(&upstream.url(), &["--tracing-endpoint", &otlp.endpoint()]).await;
    let dir = tempfile::tempdir().expect("temp dir");
    let config = dir.path().join("redline.yaml");
    std::fs::write(&config, format!("service: checkout\nreadiness:\n  jaeger_url: {jaeger}\n")).expect("config");

    // Nothing traced yet.
    let (code, r) = readiness("checkout", &config, "tracing").await;
    assert_eq!((code, &report_check(&r, "tracing")["status"]), (1, &json!("fail")), "{r:#}");

    // A request without incoming context: spans arrive, but no propagation is shown.
    client().get(sidecar.url("/users/1")).send().await.expect("request");
    otlp.received.wait_for("a server span", |s| s.span.name.starts_with("GET")).await;
    let (code, r) = readiness("checkout", &config, "tracing").await;
    assert_eq!((code, &report_check(&r, "tracing")["status"]), (0, &json!("warn")), "{r:#}");

    // A caller's traceparent: the sidecar's span joins the caller's trace.
    let parent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    client().get(sidecar.url("/users/2")).header("traceparent", parent).send().await.expect("request");
    otlp.received
        .wait_for("a span with the caller's parent", |s| hex(&s.span.parent_span_id) == "00f067aa0ba902b7")
        .await;
    let (code, r) = readiness("checkout", &config, "tracing").await;
    let c = report_check(&r, "tracing");
    assert_eq!((code, &c["status"]), (0, &json!("pass")), "{r:#}");
    assert!(c["summary"].as_str().expect("s").contains("1 traces show context propagated"), "{c:#}");

    let (code, r) = readiness("cart", &config, "tracing").await;
    assert_eq!((code, &report_check(&r, "tracing")["status"]), (1, &json!("fail")), "{r:#}");
    server.abort();
}

/// Grafana's HTTP API as the `dashboard` check reads it (`/api/search`, `/api/dashboards/uid/`),
/// serving the checked-in `dashboards/` to Bearer `token` only. No Grafana package exists on this
/// platform, so this is the API's documented JSON shape over the real dashboard files.
async fn grafana(dashboards: Vec<Value>, token: &'static str) -> (String, tokio::task::JoinHandle<()>) {
    use axum::extract::Path as UrlPath;
    use axum::http::{HeaderMap, StatusCode};
    use axum::response::IntoResponse;
    use std::sync::Arc;
    let dashboards = Arc::new(dashboards);
    let authorized = move |h: &HeaderMap| {
        h.get("authorization").and_then(|v| v.to_str().ok()) == Some(format!("Bearer {token}").as_str())
    };
    let search = {
        let d = dashboards.clone();
        move |headers: HeaderMap| async move {
            if !authorized(&headers) {
                return (StatusCode::UNAUTHORIZED, axum::Json(json!({"message": "Unauthorized"}))).into_response();
            }
            let hits: Vec<Value> = d
                .iter()
                .map(|m| {
                    json!({"uid": m["uid"], "title": m["title"], "tags": m["tags"], "type": "dash-db",
                                "url": format!("/d/{}", m["uid"].as_str().unwrap_or_default())})
                })
                .collect();
            axum::Json(Value::Array(hits)).into_response()
        }
    };
    let by_uid = {
        let d = dashboards.clone();
        move |headers: HeaderMap, UrlPath(uid): UrlPath<String>| async move {
            if !authorized(&headers) {
                return (StatusCode::UNAUTHORIZED, axum::Json(json!({"message": "Unauthorized"}))).into_response();
            }
            match d.iter().find(|m| m["uid"] == uid.as_str()) {
                Some(m) => axum::Json(json!({"dashboard": m, "meta": {"slug": uid}})).into_response(),
                None => (StatusCode::NOT_FOUND, axum::Json(json!({"message": "Dashboard not found"}))).into_response(),
            }
        }
    };
    let app: axum::Router = axum::Router::new()
        .route("/api/search", axum::routing::get(search))
        .route("/api/dashboards/uid/{uid}", axum::routing::get(by_uid));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    let server = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (url, server)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dashboard_from_the_grafana_api() {
    let dir_of = Path::new(env!("CARGO_MANIFEST_DIR")).join("dashboards");
    let mut shipped: Vec<Value> = std::fs::read_dir(&dir_of)
        .expect("dashboards/")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .map(|p| serde_json::from_slice(&std::fs::read(&p).expect("read")).expect("JSON"))
        .collect();
    shipped.sort_by_key(|m| m["uid"].as_str().unwrap_or_default().to_string());
    let (url, server) = grafana(shipped.clone(), "s3cret").await;
    let dir = tempfile::tempdir().expect("temp dir");
    let token = dir.path().join("grafana-token");
    std::fs::write(&token, "s3cret\n").expect("token");
    let config = dir.path().join("redline.yaml");
    let write = |url: &str, token: &Path| {
        std::fs::write(
            &config,
            format!("service: checkout\nreadiness:\n  grafana_url: {url}\n  grafana_token_file: {}\n", token.display()),
        )
        .expect("config");
    };
    write(&url, &token);
    let (code, r) = readiness("checkout", &config, "dashboard").await;
    let c = report_check(&r, "dashboard");
    assert_eq!((code, &c["status"]), (0, &json!("pass")), "{r:#}");
    assert!(c["evidence"].to_string().contains("/api/dashboards/uid/redline-red"), "{r:#}");

    // A wrong token: Grafana's 401 is an error of the check, named.
    let wrong = dir.path().join("wrong-token");
    std::fs::write(&wrong, "nope").expect("token");
    write(&url, &wrong);
    let (code, r) = readiness("checkout", &config, "dashboard").await;
    let c = report_check(&r, "dashboard");
    assert_eq!((code, &c["status"]), (1, &json!("error")), "{r:#}");
    assert!(c["summary"].as_str().is_some_and(|s| s.contains("HTTP 401")), "{r:#}");

    // A Grafana without the RED dashboard: nothing covers rate, errors and duration.
    let (bare, bare_server) =
        grafana(shipped.into_iter().filter(|m| m["uid"] != "redline-red").collect(), "s3cret").await;
    write(&bare, &token);
    let (code, r) = readiness("checkout", &config, "dashboard").await;
    assert_eq!((code, &report_check(&r, "dashboard")["status"]), (1, &json!("fail")), "{r:#}");
    server.abort();
    bare_server.abort();
}
