//! Traces as a user of Jaeger sees them: one SERVER span per request exported over OTLP
//! (HTTP and gRPC) to a receiver decoding the official protobufs, context propagation in
//! and out, trace ids shared with logs and exemplars, and no impact when the collector fails.

use crate::common;

use std::time::Duration;

use common::otlp::{OtlpReceiver, hanging_collector, int, string};
use common::tls::TestPki;
use common::{Sidecar, Upstream, client, free_port, sample};

const ROUTES: &str = "/users/{id},/orders/{id}/items";
const TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const PARENT: &str = "00f067aa0ba902b7";

async fn sidecar_exporting_to(up: &Upstream, endpoint: &str, extra: &[&str]) -> Sidecar {
    let mut args = vec!["--routes", ROUTES, "--tracing-endpoint", endpoint];
    args.extend_from_slice(extra);
    Sidecar::start(&up.url(), &args).await
}

#[tokio::test]
async fn each_request_is_one_server_span_with_semantic_conventions() {
    let otlp = OtlpReceiver::http().await;
    let up = Upstream::start().await;
    let sc = sidecar_exporting_to(&up, &otlp.endpoint(), &[]).await;
    let r = client()
        .get(sc.url("/users/7?q=1"))
        .header("traceparent", format!("00-{TRACE}-{PARENT}-01"))
        .header("user-agent", "trace-test/1")
        .send()
        .await
        .expect("request");
    assert_eq!(r.status(), 200);
    r.bytes().await.expect("body");
    let fail = client().get(sc.url("/status/503")).send().await.expect("request");
    assert_eq!(fail.status(), 503);
    fail.bytes().await.expect("body");

    let span = otlp.received.wait_for("for /users/7", |s| s.trace_id_hex() == TRACE).await;
    assert_eq!(span.span.name, "GET /users/{id}");
    assert_eq!(span.span.kind, 2, "SPAN_KIND_SERVER");
    assert_eq!(span.parent_span_id_hex(), PARENT, "the caller's span is the parent");
    assert_eq!(span.span_id_hex().len(), 16);
    assert_ne!(span.span_id_hex(), PARENT);
    assert_eq!(string(span.attr("http.request.method")), Some("GET"));
    assert_eq!(string(span.attr("http.route")), Some("/users/{id}"));
    assert_eq!(string(span.attr("url.path")), Some("/users/7"));
    assert_eq!(string(span.attr("url.scheme")), Some("http"));
    assert_eq!(int(span.attr("http.response.status_code")), Some(200));
    assert_eq!(string(span.attr("user_agent.original")), Some("trace-test/1"));
    assert_eq!(string(span.attr("client.address")), Some("127.0.0.1"));
    assert_eq!(string(span.attr("network.protocol.version")), Some("1.1"));
    assert!(span.attr("error.type").is_none());
    assert_eq!(span.span.status.as_ref().map_or(0, |s| s.code), 0, "UNSET status on success");
    assert!(span.span.end_time_unix_nano > span.span.start_time_unix_nano);
    assert_eq!(string(span.resource_attr("service.name")), Some("checkout"));
    assert_eq!(string(span.resource_attr("service.version")), Some("1.2.3"));
    assert_eq!(string(span.resource_attr("service.namespace")), Some("shop"));

    let failed = otlp.received.wait_for("for /status/503", |s| s.span.name == "GET /status/{id}").await;
    assert_eq!(failed.span.status.as_ref().map(|s| s.code), Some(2), "ERROR status on 5xx");
    assert_eq!(string(failed.attr("error.type")), Some("503"));
    assert_eq!(failed.parent_span_id_hex(), "", "no incoming context: a root span");

    // The access line and the OpenMetrics exemplar carry the same trace id.
    let logs = sc.stdout_until("the access line with the trace id", |logs| logs.contains(TRACE)).await;
    let line =
        logs.lines().find(|l| l.contains(TRACE)).unwrap_or_else(|| panic!("no log line with the trace id:\n{logs}"));
    let v: serde_json::Value = serde_json::from_str(line).expect("JSON log line");
    assert_eq!(v["span_id"], span.span_id_hex());
    let om = client()
        .get(sc.admin_url("/metrics"))
        .header("accept", "application/openmetrics-text; version=1.0.0")
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .expect("body");
    assert!(
        om.lines().any(|l| l.contains("/users/{id}") && l.contains(&format!("# {{trace_id=\"{TRACE}\"}}"))),
        "{om}"
    );
    let m = sc
        .metrics_until("spans exported", |m| sample(m, "redline_spans_exported_total").is_some_and(|v| v >= 2.0))
        .await;
    assert_eq!(sample(&m, "redline_spans_dropped_total"), Some(0.0));
}

#[tokio::test]
async fn the_upstream_joins_the_trace_with_the_sidecar_span_as_parent() {
    let otlp = OtlpReceiver::http().await;
    let up = Upstream::start().await;
    let sc = sidecar_exporting_to(&up, &otlp.endpoint(), &["--tracing-propagators", "tracecontext,b3,jaeger"]).await;
    let seen: serde_json::Value = client()
        .get(sc.url("/headers"))
        .header("traceparent", format!("00-{TRACE}-{PARENT}-01"))
        .send()
        .await
        .expect("request")
        .json()
        .await
        .expect("echoed headers");
    let span = otlp.received.wait_for("for /headers", |s| s.span.name == "GET /headers").await;
    let expected = format!("00-{TRACE}-{}-01", span.span_id_hex());
    assert_eq!(seen["traceparent"], expected.as_str());
    assert_eq!(seen["b3"], format!("{TRACE}-{}-1", span.span_id_hex()).as_str());
    assert_eq!(seen["uber-trace-id"], format!("{TRACE}:{}:0:01", span.span_id_hex()).as_str());
}

#[tokio::test]
async fn b3_and_jaeger_contexts_are_continued_and_malformed_ones_start_new_traces() {
    let otlp = OtlpReceiver::http().await;
    let up = Upstream::start().await;
    let sc = sidecar_exporting_to(&up, &otlp.endpoint(), &[]).await;
    let http = client();
    let cases: [(&str, &str, &str, &str); 4] = [
        ("/users/1", "b3", "80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-1", "80f198ee56343ba864fe8b2a57d3eff7"),
        ("/users/2", "x-b3-traceid", "463ac35c9f6413ad48485a3953bb6124", "463ac35c9f6413ad48485a3953bb6124"),
        ("/users/3", "uber-trace-id", "9a1b2c3d4e5f6071:e457b5a2e4d86bd1:0:1", "00000000000000009a1b2c3d4e5f6071"),
        ("/users/4", "traceparent", "00-NOT-A-VALID-TRACEPARENT-01", ""),
    ];
    for (path, name, value, _) in cases {
        let mut req = http.get(sc.url(path)).header(name, value);
        if name == "x-b3-traceid" {
            req = req.header("x-b3-spanid", "a2fb4a1d1a96d312").header("x-b3-sampled", "1");
        }
        let r = req.send().await.expect("request");
        assert_eq!(r.status(), 200, "{name}: a trace header never fails a request");
        r.bytes().await.expect("body");
    }
    for (path, name, _, trace) in cases {
        let span = otlp.received.wait_for(path, |s| string(s.attr("url.path")) == Some(path)).await;
        if trace.is_empty() {
            assert_eq!(span.parent_span_id_hex(), "", "{name}: malformed context starts a new trace");
            assert_eq!(span.trace_id_hex().len(), 32);
        } else {
            assert_eq!(span.trace_id_hex(), trace, "{name}");
            assert_eq!(span.parent_span_id_hex().len(), 16, "{name}: continues the caller's span");
        }
    }
}

#[tokio::test]
async fn grpc_export_works_too() {
    let otlp = OtlpReceiver::grpc().await;
    let up = Upstream::start().await;
    let sc = sidecar_exporting_to(&up, &otlp.endpoint(), &["--tracing-protocol", "grpc"]).await;
    let r = client().get(sc.url("/orders/5/items")).send().await.expect("request");
    assert_eq!(r.status(), 200);
    r.bytes().await.expect("body");
    let span = otlp.received.wait_for("over gRPC", |s| s.span.name == "GET /orders/{id}/items").await;
    assert_eq!(int(span.attr("http.response.status_code")), Some(200));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn export_over_tls_with_the_otel_certificate_variables_both_protocols() {
    let pki = TestPki::new();
    // The collector asks for a client certificate (mutual TLS) and serves HTTP and gRPC.
    let otlp = OtlpReceiver::https(pki.acceptor(true)).await;
    let up = Upstream::start().await;
    let (ca, cert, key) =
        (pki.ca_cert.to_str().unwrap(), pki.client_cert.to_str().unwrap(), pki.client_key.to_str().unwrap());
    let env = [
        ("OTEL_EXPORTER_OTLP_ENDPOINT", otlp.https_endpoint()),
        ("OTEL_EXPORTER_OTLP_CERTIFICATE", ca.to_string()),
        ("OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE", cert.to_string()),
        ("OTEL_EXPORTER_OTLP_CLIENT_KEY", key.to_string()),
    ];
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    for (protocol, path) in [("http", "/users/41"), ("grpc", "/users/42")] {
        let sc = Sidecar::start_with_env(&up.url(), &["--tracing-protocol", protocol], &env).await;
        let r = client().get(sc.url(path)).send().await.expect("request");
        r.bytes().await.expect("body");
        let span = otlp
            .received
            .wait_for(&format!("over TLS ({protocol})"), |s| string(s.attr("url.path")) == Some(path))
            .await;
        assert_eq!(string(span.resource_attr("service.name")), Some("checkout"));
        sc.metrics_until("the export counted", |m| sample(m, "redline_spans_exported_total") == Some(1.0)).await;
    }

    // Without the client certificate the collector refuses the handshake: spans are dropped,
    // counted and the reason logged; requests are unaffected.
    let sc = Sidecar::start_with_env(&up.url(), &[], &env[..2]).await;
    let r = client().get(sc.url("/users/70")).send().await.expect("request");
    assert_eq!(r.status(), 200);
    r.bytes().await.expect("body");
    sc.metrics_until("the drop counted", |m| sample(m, "redline_spans_dropped_total") == Some(1.0)).await;
    let log = sc.stdout_until("the export failure logged", |l| l.contains("span export failed")).await;
    assert!(log.contains(&otlp.https_endpoint()), "{log}");

    // Without the CA the collector's certificate is not trusted.
    let sc = Sidecar::start_with_env(&up.url(), &[], &env[..1]).await;
    client().get(sc.url("/users/71")).send().await.expect("request").bytes().await.expect("body");
    let log = sc.stdout_until("the export failure logged", |l| l.contains("span export failed")).await;
    let line = log.lines().find(|l| l.contains("span export failed")).unwrap();
    assert!(line.contains("certificate"), "the reason names the certificate: {line}");
    let paths: Vec<_> =
        otlp.received.all().iter().filter_map(|s| string(s.attr("url.path")).map(String::from)).collect();
    assert_eq!(paths, ["/users/41", "/users/42"], "only the two trusted, identified exports arrived");
}

#[tokio::test]
async fn bad_exporter_tls_files_refuse_the_start() {
    let pki = TestPki::new();
    let refused = |env: &[(&str, &str)]| {
        let out = std::process::Command::new(common::redline_bin())
            .args(["sidecar", "--service", "x"])
            .envs(env.iter().copied())
            .output()
            .expect("run redline");
        assert_eq!(out.status.code(), Some(2), "{env:?}");
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    let missing = pki.dir().join("nope.pem");
    let err = refused(&[("OTEL_EXPORTER_OTLP_CERTIFICATE", missing.to_str().unwrap())]);
    assert!(err.contains("OTEL_EXPORTER_OTLP_CERTIFICATE") && err.contains("nope.pem"), "{err}");
    let err = refused(&[("OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE", pki.client_cert.to_str().unwrap())]);
    assert!(err.contains("OTEL_EXPORTER_OTLP_CLIENT_KEY: required"), "{err}");
    // A key that is not the certificate's.
    let err = refused(&[
        ("OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE", pki.client_cert.to_str().unwrap()),
        ("OTEL_EXPORTER_OTLP_CLIENT_KEY", pki.server_key.to_str().unwrap()),
    ]);
    assert!(err.contains("client.crt") && err.contains("server.key"), "{err}");
}

#[tokio::test]
async fn sampling_ratio_zero_exports_nothing_unless_the_parent_is_sampled() {
    let otlp = OtlpReceiver::http().await;
    let up = Upstream::start().await;
    let sc = sidecar_exporting_to(&up, &otlp.endpoint(), &["--tracing-sampler-ratio", "0"]).await;
    let seen: serde_json::Value =
        client().get(sc.url("/headers")).send().await.expect("request").json().await.expect("echo");
    let tp = seen["traceparent"].as_str().expect("context still propagated");
    assert!(tp.ends_with("-00"), "unsampled flag propagated: {tp}");
    let r = client()
        .get(sc.url("/users/9"))
        .header("traceparent", format!("00-{TRACE}-{PARENT}-01"))
        .send()
        .await
        .expect("request");
    r.bytes().await.expect("body");
    otlp.received.wait_for("for the sampled parent", |s| s.trace_id_hex() == TRACE).await;
    sc.metrics_until("one export", |m| sample(m, "redline_spans_exported_total") == Some(1.0)).await;
    assert_eq!(otlp.received.all().len(), 1, "the unsampled request produced no span");
}

#[tokio::test]
async fn a_dead_collector_costs_no_request_and_drops_are_counted() {
    let up = Upstream::start().await;
    let dead = format!("http://127.0.0.1:{}", free_port());
    let sc = sidecar_exporting_to(&up, &dead, &[]).await;
    for i in 0..50 {
        let r = client().get(sc.url(&format!("/users/{i}"))).send().await.expect("request");
        assert_eq!(r.status(), 200);
        r.bytes().await.expect("body");
    }
    let m = sc.metrics_until("drops counted", |m| sample(m, "redline_spans_dropped_total") == Some(50.0)).await;
    assert_eq!(sample(&m, "redline_spans_exported_total"), Some(0.0));
}

#[tokio::test]
async fn a_hanging_collector_costs_no_request_and_the_queue_is_bounded() {
    let up = Upstream::start().await;
    let (addr, _hang) = hanging_collector().await;
    let endpoint = format!("http://{addr}");
    let sc =
        sidecar_exporting_to(&up, &endpoint, &["--tracing-queue-size", "8", "--tracing-export-timeout", "30s"]).await;
    let http = client();
    let started = std::time::Instant::now();
    for i in 0..600 {
        let r = http.get(sc.url(&format!("/status/{}", 200 + i % 2))).send().await.expect("request");
        assert!(r.status().is_success());
        r.bytes().await.expect("body");
    }
    assert!(started.elapsed() < Duration::from_secs(60));
    // At most one batch is stuck in the hung export and 8 wait in the queue: the rest is dropped.
    let m =
        sc.metrics_until("drops counted", |m| sample(m, "redline_spans_dropped_total").is_some_and(|v| v > 0.0)).await;
    let dropped = sample(&m, "redline_spans_dropped_total").unwrap_or(0.0);
    assert!(dropped >= 600.0 - 8.0 - 512.0, "dropped {dropped}");
    assert_eq!(sample(&m, "redline_spans_exported_total"), Some(0.0));
}
