//! The sidecar as a user sees it: proxied responses, RED metrics, errors, streaming,
//! limits, graceful drain and JSON access logs, against the real binary on loopback.

use crate::common;

use std::future::IntoFuture;
use std::time::Duration;

use common::{Sidecar, Upstream, client, free_port, require_tool, sample};
use futures_util::StreamExt;

const ROUTES: &str = "/users/{id},/orders/{id}/items";

fn duration_series(method: &str, route: &str, status: u16, error: Option<&str>) -> String {
    let error = error.map(|e| format!(",error_type=\"{e}\"")).unwrap_or_default();
    format!(
        "http_server_request_duration_seconds_count{{http_request_method=\"{method}\",http_route=\"{route}\",http_response_status_code=\"{status}\"{error}}}"
    )
}

#[tokio::test]
async fn requests_produce_exact_red_counts_and_buckets() {
    let up = Upstream::start().await;
    let sc = Sidecar::start(&up.url(), &["--routes", ROUTES]).await;
    let http = client();
    // /status/{id} is learnt from its first 503; a path only ever answered 404 would count as
    // `__unmatched__` (data_path.rs has the route-cardinality cases).
    for path in ["/users/1", "/users/2", "/users/alice", "/orders/9/items", "/status/503", "/status/404", "/status/503"]
    {
        let r = http.get(sc.url(path)).send().await.expect("proxied GET");
        r.bytes().await.expect("body");
    }
    let r = http.post(sc.url("/upload")).body(vec![7u8; 5000]).send().await.expect("POST");
    assert_eq!(r.status(), 200);
    assert_eq!(r.text().await.expect("body"), "{\"received\":5000}");
    let r = http.delete(sc.url("/delay/30")).send().await.expect("DELETE");
    assert_eq!(r.status(), 200);
    r.bytes().await.expect("body");
    let r = http.get(sc.url("/bytes/2000")).send().await.expect("GET bytes");
    assert_eq!(r.bytes().await.expect("body").len(), 2000);

    let m = sc
        .metrics_until("the DELETE and download recorded", |m| m.contains("/bytes/{id}") && m.contains("DELETE"))
        .await;
    assert_eq!(sample(&m, &duration_series("GET", "/users/{id}", 200, None)), Some(3.0), "{m}");
    assert_eq!(sample(&m, &duration_series("GET", "/orders/{id}/items", 200, None)), Some(1.0), "{m}");
    assert_eq!(sample(&m, &duration_series("GET", "/status/{id}", 404, None)), Some(1.0), "4xx is not an error:\n{m}");
    assert_eq!(sample(&m, &duration_series("GET", "/status/{id}", 503, Some("503"))), Some(2.0), "{m}");
    assert_eq!(sample(&m, &duration_series("POST", "/upload", 200, None)), Some(1.0), "{m}");
    assert_eq!(sample(&m, &duration_series("DELETE", "/delay/{id}", 200, None)), Some(1.0), "{m}");
    let delete_labels = "http_request_method=\"DELETE\",http_route=\"/delay/{id}\",http_response_status_code=\"200\"";
    assert_eq!(
        sample(&m, &format!("http_server_request_duration_seconds_bucket{{{delete_labels},le=\"0.025\"}}")),
        Some(0.0),
        "a 30ms request is above 25ms:\n{m}"
    );
    assert_eq!(
        sample(&m, &format!("http_server_request_duration_seconds_bucket{{{delete_labels},le=\"+Inf\"}}")),
        Some(1.0)
    );
    let post_labels = "http_request_method=\"POST\",http_route=\"/upload\",http_response_status_code=\"200\"";
    assert_eq!(sample(&m, &format!("http_server_request_body_size_bytes_sum{{{post_labels}}}")), Some(5000.0), "{m}");
    assert_eq!(
        sample(&m, &format!("http_server_request_body_size_bytes_bucket{{{post_labels},le=\"1000\"}}")),
        Some(0.0)
    );
    assert_eq!(
        sample(&m, &format!("http_server_request_body_size_bytes_bucket{{{post_labels},le=\"10000\"}}")),
        Some(1.0)
    );
    let dl = "http_request_method=\"GET\",http_route=\"/bytes/{id}\",http_response_status_code=\"200\"";
    assert_eq!(sample(&m, &format!("http_server_response_body_size_bytes_sum{{{dl}}}")), Some(2000.0), "{m}");
    assert_eq!(sample(&m, "http_server_active_requests{http_request_method=\"GET\"}"), Some(0.0));
    // Every OTel default bucket boundary is exposed.
    for le in
        ["0.005", "0.01", "0.025", "0.05", "0.075", "0.1", "0.25", "0.5", "0.75", "1", "2.5", "5", "7.5", "10", "+Inf"]
    {
        assert!(m.contains(&format!("{delete_labels},le=\"{le}\"}}")), "bucket le={le} missing");
    }
    assert_eq!(sample(&m, "redline_build_info{version=\"0.1.0\"}"), Some(1.0));
    assert!(sample(&m, "process_resident_memory_bytes").is_some_and(|v| v > 0.0), "{m}");
}

#[tokio::test]
async fn metrics_pass_promtool_check_metrics() {
    let promtool = require_tool("promtool", "prometheus");
    let up = Upstream::start().await;
    let sc = Sidecar::start(&up.url(), &["--routes", ROUTES]).await;
    for path in ["/users/1", "/status/500", "/upload"] {
        client().get(sc.url(path)).send().await.expect("request").bytes().await.expect("body");
    }
    let m = sc.metrics_until("three requests", |m| m.contains("status_code=\"405\"")).await;
    let mut child = std::process::Command::new(promtool)
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run promtool");
    {
        use std::io::Write;
        child.stdin.take().expect("stdin").write_all(m.as_bytes()).expect("feed promtool");
    }
    let out = child.wait_with_output().expect("promtool output");
    let complaints = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(
        out.status.success() && complaints.trim().is_empty(),
        "promtool check metrics complained:\n{complaints}\n---\n{m}"
    );
}

#[tokio::test]
async fn openmetrics_is_served_when_asked_with_trace_exemplars() {
    let up = Upstream::start().await;
    let sc = Sidecar::start(&up.url(), &["--routes", ROUTES]).await;
    let trace_id = "4bf92f3577b34da6a3ce929d0e0e4736";
    client()
        .get(sc.url("/users/7"))
        .header("traceparent", format!("00-{trace_id}-00f067aa0ba902b7-01"))
        .send()
        .await
        .expect("request")
        .bytes()
        .await
        .expect("body");
    sc.metrics_until("the request", |m| m.contains("/users/{id}")).await;
    let r = client()
        .get(sc.admin_url("/metrics"))
        .header("accept", "application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5")
        .send()
        .await
        .expect("GET /metrics");
    assert_eq!(r.headers()["content-type"], "application/openmetrics-text; version=1.0.0; charset=utf-8");
    let text = r.text().await.expect("body");
    assert!(text.ends_with("# EOF\n"));
    assert!(text.contains("# TYPE redline_log_lines_dropped counter\nredline_log_lines_dropped_total"), "{text}");
    let bucket_with_exemplar = text
        .lines()
        .find(|l| {
            l.starts_with("http_server_request_duration_seconds_bucket{")
                && l.contains("/users/{id}")
                && l.contains(" # {trace_id=")
        })
        .unwrap_or_else(|| panic!("no exemplar on the duration histogram:\n{text}"));
    assert!(bucket_with_exemplar.contains(&format!("# {{trace_id=\"{trace_id}\"}}")), "{bucket_with_exemplar}");
    let plain = sc.metrics().await;
    assert!(!plain.contains("# EOF") && !plain.contains("trace_id="), "text 0.0.4 has no exemplars");
}

#[tokio::test]
async fn upstream_down_is_502_connection_refused() {
    let dead = format!("http://127.0.0.1:{}", free_port());
    let sc = Sidecar::start(&dead, &[]).await;
    let r = client().get(sc.url("/anything")).send().await.expect("request");
    assert_eq!(r.status(), 502);
    assert_eq!(r.headers()["content-type"], "application/json");
    let body: serde_json::Value = r.json().await.expect("JSON error body");
    assert!(body["error"].as_str().is_some_and(|e| e.contains("refused")), "{body}");
    let trace_id = body["trace_id"].as_str().expect("trace_id").to_string();
    assert_eq!(trace_id.len(), 32);
    let m = sc.metrics_until("the 502", |m| m.contains("connection_refused")).await;
    assert_eq!(sample(&m, &duration_series("GET", "/anything", 502, Some("connection_refused"))), Some(1.0), "{m}");
    let r = client().get(sc.admin_url("/readyz")).send().await.expect("readyz");
    assert_eq!(r.status(), 503, "readyz must report an unreachable upstream");
    sc.stdout_until("the 502 access line with its trace id", |logs| {
        logs.lines().any(|l| l.contains("\"error.type\":\"connection_refused\"") && l.contains(&trace_id))
    })
    .await;
}

#[tokio::test]
async fn slow_upstream_is_504_timeout() {
    let up = Upstream::start().await;
    let sc = Sidecar::start(&up.url(), &["--upstream-timeout", "300ms"]).await;
    let asked = std::time::Instant::now();
    let r = client().get(sc.url("/delay/3000")).send().await.expect("request");
    assert_eq!(r.status(), 504);
    assert!(asked.elapsed() >= Duration::from_millis(300), "the 504 came before the timeout: {:?}", asked.elapsed());
    let body: serde_json::Value = r.json().await.expect("JSON error body");
    assert_eq!(body["error"], "upstream timed out");
    let m = sc.metrics_until("the 504", |m| m.contains("\"timeout\"")).await;
    assert_eq!(sample(&m, &duration_series("GET", "/delay/{id}", 504, Some("timeout"))), Some(1.0), "{m}");
    let r = client().get(sc.admin_url("/readyz")).send().await.expect("readyz");
    assert_eq!(r.status(), 200);
}

#[tokio::test]
async fn hundred_megabytes_stream_both_ways_with_bounded_memory() {
    const SIZE: u64 = 100 * 1024 * 1024;
    let up = Upstream::start().await;
    let sc = Sidecar::start(&up.url(), &[]).await;
    let chunk = bytes::Bytes::from(vec![b'u'; 256 * 1024]);
    let chunks = (SIZE / chunk.len() as u64) as usize;
    let upload = futures_util::stream::iter((0..chunks).map(move |_| Ok::<_, std::io::Error>(chunk.clone())));
    let r = client().post(sc.url("/upload")).body(reqwest::Body::wrap_stream(upload)).send().await.expect("upload");
    assert_eq!(r.status(), 200);
    assert_eq!(r.text().await.expect("body"), format!("{{\"received\":{SIZE}}}"));

    let r = client().get(sc.url(&format!("/bytes/{SIZE}"))).send().await.expect("download");
    assert_eq!(r.status(), 200);
    let mut stream = r.bytes_stream();
    let mut received = 0u64;
    while let Some(c) = stream.next().await {
        received += c.expect("download chunk").len() as u64;
    }
    assert_eq!(received, SIZE);
    let peak = sc.peak_rss_bytes();
    assert!(peak < 48 * 1024 * 1024, "sidecar peak RSS {peak} bytes: bodies must stream, not buffer");
    let m = sc.metrics_until("both transfers", |m| m.contains("/bytes/{id}")).await;
    let up_labels = "http_request_method=\"POST\",http_route=\"/upload\",http_response_status_code=\"200\"";
    assert_eq!(sample(&m, &format!("http_server_request_body_size_bytes_sum{{{up_labels}}}")), Some(SIZE as f64));
}

#[tokio::test]
async fn sigterm_drains_in_flight_requests_then_exits_zero() {
    let up = Upstream::start().await;
    let mut sc = Sidecar::start(&up.url(), &["--drain-timeout", "10s"]).await;
    let http = client();
    let in_flight: Vec<_> = (0..5)
        .map(|_| {
            let req = http.get(sc.url("/delay/1500")).send();
            tokio::spawn(async move {
                let r = req.await.expect("in-flight request");
                (r.status().as_u16(), r.text().await.expect("body"))
            })
        })
        .collect();
    sc.metrics_until("5 active requests", |m| {
        sample(m, "http_server_active_requests{http_request_method=\"GET\"}") == Some(5.0)
    })
    .await;
    sc.signal(nix::sys::signal::Signal::SIGTERM);
    // Readiness turns away new traffic while draining (the signal is handled asynchronously).
    let deadline = std::time::Instant::now() + Duration::from_secs(1);
    loop {
        match client().get(sc.admin_url("/readyz")).send().await {
            Ok(r) if r.status() == 503 => break,
            Ok(r) => assert!(std::time::Instant::now() < deadline, "readyz still {} while draining", r.status()),
            Err(_) => break, // the admin port may already be closing
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    for t in in_flight {
        let (status, body) = t.await.expect("task");
        assert_eq!((status, body.as_str()), (200, "slept 1500ms\n"));
    }
    let status = sc.wait_exit(Duration::from_secs(15)).await;
    assert_eq!(status.code(), Some(0), "graceful shutdown exits 0");
    let logs = sc.stdout();
    let access = logs.lines().filter(|l| l.contains("\"target\":\"access\"")).count();
    assert_eq!(access, 5, "every drained request is logged and flushed:\n{logs}");
    assert!(std::net::TcpStream::connect(sc.proxy).is_err(), "no longer accepting");
}

#[tokio::test]
async fn random_paths_cannot_explode_route_cardinality() {
    // A catch-all service (as a single-page app is) answers every path: each is a route to
    // redline, up to the cap.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind upstream");
    let upstream = format!("http://{}", listener.local_addr().expect("address"));
    tokio::spawn(axum::serve(listener, axum::Router::new().fallback(|| async { "ok" })).into_future());
    let sc = Sidecar::start(&upstream, &["--routes", ROUTES, "--max-routes", "50"]).await;
    let http = client();
    let paths: Vec<String> =
        (0..2000).map(|_| format!("/r/{}", (0..10).map(|_| fastrand::lowercase()).collect::<String>())).collect();
    futures_util::stream::iter(paths)
        .for_each_concurrent(32, |p| {
            let http = http.clone();
            let url = sc.url(&p);
            async move {
                let r = http.get(url).send().await.expect("request");
                r.bytes().await.expect("body");
            }
        })
        .await;
    let m = sc
        .metrics_until("2000 requests", |m| {
            m.lines()
                .filter(|l| l.starts_with("http_server_request_duration_seconds_count"))
                .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
                .sum::<f64>()
                == 2000.0
        })
        .await;
    let routes: std::collections::HashSet<&str> = m
        .lines()
        .filter(|l| l.starts_with("http_server_request_duration_seconds_count"))
        .filter_map(|l| l.split("http_route=\"").nth(1)?.split('"').next())
        .collect();
    assert!(routes.len() <= 51, "{} route values", routes.len());
    assert!(routes.contains("__other__"));
}

#[tokio::test]
async fn every_log_line_is_json_and_secrets_never_appear() {
    let up = Upstream::start().await;
    let sc = Sidecar::start(&up.url(), &["--routes", ROUTES, "--sensitive-headers", "x-api-key"]).await;
    let r = client()
        .get(sc.url("/users/42?token=query-secret"))
        .header("authorization", "Bearer s3cr3t-bearer")
        .header("cookie", "session=c00kie-secret")
        .header("x-api-key", "api-key-secret")
        .header("user-agent", "test-agent/1.0 \"quoted\"")
        .header("traceparent", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01")
        .send()
        .await
        .expect("request");
    assert_eq!(r.status(), 200);
    r.bytes().await.expect("body");
    sc.metrics_until("the request", |m| m.contains("/users/{id}")).await;
    let mut sc = sc;
    assert_eq!(sc.stop().await.code(), Some(0));
    let logs = sc.stdout();
    assert!(!logs.is_empty());
    for secret in ["s3cr3t-bearer", "c00kie-secret", "api-key-secret", "query-secret"] {
        assert!(!logs.contains(secret), "{secret} leaked into logs:\n{logs}");
    }
    let mut access_lines = 0;
    for line in logs.lines() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
        for key in ["timestamp", "level", "message", "target", "service"] {
            assert!(v.get(key).is_some(), "{key} missing: {line}");
        }
        assert_eq!(v["service"], "checkout");
        let ts = v["timestamp"].as_str().expect("timestamp string");
        assert!(ts.len() == 27 && ts.ends_with('Z'), "RFC 3339 UTC with micros: {ts}");
        if v["target"] == "access" && v["url.path"] == "/users/42" {
            access_lines += 1;
            assert_eq!(v["http.request.method"], "GET");
            assert_eq!(v["http.route"], "/users/{id}");
            assert_eq!(v["http.response.status_code"], 200);
            assert!(v["duration_ms"].as_f64().is_some_and(|d| d > 0.0));
            assert!(v["http.response.body.size"].as_u64().is_some_and(|n| n > 0));
            assert_eq!(v["client.address"], "127.0.0.1");
            assert_eq!(v["user_agent.original"], "test-agent/1.0 \"quoted\"");
            assert_eq!(v["trace_id"], "0af7651916cd43dd8448eb211c80319c");
            assert_eq!(v["span_id"].as_str().map(str::len), Some(16));
            assert!(v.get("error.type").is_none());
        }
    }
    assert_eq!(access_lines, 1, "{logs}");
}

#[tokio::test]
async fn upstream_sees_forwarding_headers_and_no_hop_by_hop_headers() {
    let up = Upstream::start().await;
    let sc = Sidecar::start(&up.url(), &[]).await;
    let r = client()
        .get(sc.url("/headers"))
        .header("connection", "x-hop")
        .header("x-hop", "must-not-pass")
        .header("x-forwarded-for", "203.0.113.9")
        .header("traceparent", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01")
        .send()
        .await
        .expect("request");
    let seen: serde_json::Value = r.json().await.expect("echoed headers");
    assert!(seen.get("x-hop").is_none(), "{seen}");
    assert_eq!(seen["x-forwarded-for"], "203.0.113.9, 127.0.0.1");
    assert_eq!(seen["x-forwarded-proto"], "http");
    let tp = seen["traceparent"].as_str().expect("traceparent forwarded");
    assert!(tp.starts_with("00-0af7651916cd43dd8448eb211c80319c-") && tp.ends_with("-01"), "{tp}");
    assert_ne!(&tp[36..52], "b7ad6b7169203331", "the sidecar's own span is the upstream's parent");
}

#[tokio::test]
async fn h2c_clients_are_proxied() {
    let up = Upstream::start().await;
    let sc = Sidecar::start(&up.url(), &["--routes", ROUTES]).await;
    let h2 = redline::tls::http_client().expect("TLS roots").http2_prior_knowledge().build().expect("h2c client");
    let r = h2.get(sc.url("/users/5")).send().await.expect("h2c request");
    assert_eq!(r.version(), reqwest::Version::HTTP_2);
    assert_eq!(r.status(), 200);
    assert!(r.text().await.expect("body").contains("\"id\":\"5\""));
    let m = sc.metrics_until("the h2c request", |m| m.contains("/users/{id}")).await;
    assert_eq!(sample(&m, &duration_series("GET", "/users/{id}", 200, None)), Some(1.0));
}

#[tokio::test]
async fn oversized_request_headers_are_refused_with_431() {
    let up = Upstream::start().await;
    let sc = Sidecar::start(&up.url(), &["--max-header-bytes", "16384"]).await;
    let r = client().get(sc.url("/")).header("x-big", "a".repeat(32 * 1024)).send().await.expect("request");
    assert_eq!(r.status(), 431);
    let r = client().get(sc.url("/")).send().await.expect("request");
    assert_eq!(r.status(), 200, "the sidecar keeps serving");
}

#[tokio::test]
async fn app_process_use_metrics_are_exposed_for_a_pid() {
    let up = Upstream::start().await;
    let pid = std::process::id().to_string();
    let sc = Sidecar::start(&up.url(), &["--app-pid", &pid]).await;
    let m = sc.metrics().await;
    assert!(sample(&m, "redline_app_threads").is_some_and(|v| v >= 1.0), "{m}");
    assert!(sample(&m, "redline_app_resident_memory_bytes").is_some_and(|v| v > 0.0), "{m}");
    assert!(sample(&m, "redline_app_open_fds").is_some_and(|v| v > 0.0), "{m}");
}

#[tokio::test]
async fn bad_config_is_refused_at_start_naming_the_key() {
    let dir = tempfile::tempdir().expect("temp dir");
    let cfg = dir.path().join("redline.yaml");
    std::fs::write(&cfg, "service: checkout\nslo:\n  availability: 150\n").expect("write config");
    let out = std::process::Command::new(common::redline_bin())
        .args(["sidecar", "--config"])
        .arg(&cfg)
        .output()
        .expect("run redline");
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("redline.yaml:3:17: slo.availability:") && err.contains("percentage"), "{err}");
    // The sidecar's stderr when one environment variable makes it refuse to start (exit 2).
    let refused_with = |key: &str, value: &str| {
        let out = std::process::Command::new(common::redline_bin())
            .args(["sidecar", "--service", "x"])
            .env(key, value)
            .output()
            .expect("run redline");
        assert_eq!(out.status.code(), Some(2), "{key}={value}");
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    assert!(refused_with("REDLINE_MAX_ROUTES", "lots").contains("max-routes"));
    let err = refused_with("OTEL_EXPORTER_OTLP_ENDPOINT", "ftp://otlp.example.com");
    assert!(
        err.contains("OTEL_EXPORTER_OTLP_ENDPOINT") && err.contains("expected an http:// or https:// URL"),
        "{err}"
    );
}

/// The names of a process's threads.
fn thread_names(pid: u32) -> Vec<String> {
    std::fs::read_dir(format!("/proc/{pid}/task"))
        .expect("tasks")
        .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("comm")).ok())
        .map(|c| c.trim().to_string())
        .collect()
}

/// The proxy workers of `pid` once there are `expected` of them, or as many as there are after
/// 10 s. A thread names itself when it first runs, after the sidecar may already answer
/// `/healthz`: one look could miss a worker on a loaded machine.
async fn proxy_workers(pid: u32, expected: usize) -> usize {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let n = thread_names(pid).iter().filter(|n| n.starts_with("redline-proxy-")).count();
        if n == expected || std::time::Instant::now() >= deadline {
            return n;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn the_default_worker_count_follows_the_cpus_the_sidecar_may_use() {
    let up = Upstream::start().await;
    // Confined to one CPU (as a 1-CPU quota or affinity confines a pod), the sidecar runs one
    // proxy worker, not one per CPU of the machine.
    require_tool("taskset", "util-linux");
    let (proxy, admin) = (free_port(), free_port());
    let mut child = std::process::Command::new("taskset")
        .args(["-c", "0", common::redline_bin(), "sidecar", "--service", "one-cpu"])
        .args(["--listen", &format!("127.0.0.1:{proxy}"), "--admin", &format!("127.0.0.1:{admin}")])
        .args(["--upstream", &up.url()])
        .env_remove("REDLINE_CONFIG")
        .env_remove("REDLINE_WORKERS")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("spawn redline under taskset");
    let healthz = format!("http://127.0.0.1:{admin}/healthz");
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while !client().get(&healthz).send().await.is_ok_and(|r| r.status() == 200) {
        assert!(std::time::Instant::now() < deadline, "redline under taskset did not get healthy");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let workers = proxy_workers(child.id(), 1).await;
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(workers, 1, "one CPU allowed: one proxy worker");

    // Unconfined: one per CPU the process may use.
    let sc = Sidecar::start_with_env(&up.url(), &[], &[]).await;
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    let workers = proxy_workers(sc.child.id(), cpus).await;
    assert_eq!(workers, cpus, "one proxy worker per CPU the sidecar may use");
}
