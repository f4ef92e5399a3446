//! `redline dashboards generate`: the checked-in `dashboards/` are exactly what the command
//! writes, `--check` notices a changed or missing file, the readiness `dashboard` check passes
//! on them, and every query of every dashboard, with its variables filled from a real
//! Prometheus (Debian `prometheus`) scraping a real sidecar that served traffic with 5xx (and a
//! second one of the same service serving gRPC calls), is valid PromQL over series that exist;
//! the duration panel's exemplars lead to the trace.

use crate::common;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use common::grpc::GrpcServer;
use common::grpc_load::GrpcLoad;
use common::otlp::OtlpReceiver;
use common::prometheus::Prometheus;
use common::{Sidecar, Upstream, client, free_port, redline_bin, require_tool};
use redline::dashboards::grafana::{VarValue, interpolate};
use serde_json::Value;

const CHECKED_IN: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/dashboards");
const RULES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/rules");

fn redline(args: &[&str]) -> Output {
    Command::new(redline_bin()).args(args).env_remove("REDLINE_CONFIG").output().expect("run redline")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn json_files(dir: &Path) -> BTreeSet<String> {
    std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("read {}: {e}", dir.display()))
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.ends_with(".json"))
        .collect()
}

fn generate(dir: &Path, check: bool) -> Output {
    let out = dir.to_str().expect("utf-8 path");
    let mut args = vec!["dashboards", "generate", "--out", out];
    if check {
        args.push("--check");
    }
    redline(&args)
}

#[test]
fn generated_dashboards_equal_the_checked_in_files_byte_for_byte() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let dir = tmp.path().join("dashboards");
    let out = generate(&dir, false);
    assert!(out.status.success(), "{}{}", text(&out.stdout), text(&out.stderr));
    let generated = json_files(&dir);
    assert_eq!(generated.len(), 4, "{generated:?}");
    assert_eq!(generated, json_files(Path::new(CHECKED_IN)), "file names differ from dashboards/");
    for name in &generated {
        let want = std::fs::read(dir.join(name)).expect("generated file");
        let have = std::fs::read(Path::new(CHECKED_IN).join(name)).expect("checked-in file");
        assert!(
            want == have,
            "dashboards/{name} is not what `redline dashboards generate --out dashboards` writes; run it and commit the result"
        );
        assert!(want.ends_with(b"}\n"), "{name} ends with a newline");
    }
    // A second run writes the same bytes.
    let again = tmp.path().join("again");
    assert!(generate(&again, false).status.success());
    for name in &generated {
        assert_eq!(std::fs::read(again.join(name)).ok(), std::fs::read(dir.join(name)).ok(), "{name}");
    }
}

#[test]
fn check_exits_1_naming_changed_and_missing_files_and_0_when_equal() {
    let checked_in = generate(Path::new(CHECKED_IN), true);
    assert_eq!(checked_in.status.code(), Some(0), "{}", text(&checked_in.stderr));
    assert!(text(&checked_in.stdout).contains("all 4 dashboards are up to date"), "{}", text(&checked_in.stdout));

    let tmp = tempfile::tempdir().expect("temp dir");
    let dir = tmp.path().join("dashboards");
    assert!(generate(&dir, false).status.success());
    assert_eq!(generate(&dir, true).status.code(), Some(0));

    let red = dir.join("redline-red.json");
    let edited = std::fs::read_to_string(&red).expect("read").replacen("\"redline / RED\"", "\"my RED\"", 1);
    std::fs::write(&red, edited).expect("edit");
    std::fs::remove_file(dir.join("redline-slo.json")).expect("remove");
    let out = generate(&dir, true);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stdout));
    let err = text(&out.stderr);
    assert!(err.contains("redline-red.json: differs from the generated dashboard"), "{err}");
    assert!(err.contains("redline-slo.json: missing"), "{err}");
    assert!(!err.contains("redline-use.json"), "{err}");
    assert!(err.contains("2 of 4 dashboards are not what `redline dashboards generate --out"), "{err}");
    // --check writes nothing.
    assert!(!dir.join("redline-slo.json").exists());

    assert!(generate(&dir, false).status.success());
    assert_eq!(generate(&dir, true).status.code(), Some(0));
}

#[test]
fn readiness_dashboard_check_passes_on_the_checked_in_dashboards() {
    for service in ["checkout", "cart"] {
        let tmp = tempfile::tempdir().expect("temp dir");
        let config = tmp.path().join("redline.yaml");
        std::fs::write(&config, format!("service: {service}\nreadiness:\n  dashboards: {CHECKED_IN}\n"))
            .expect("config");
        let config = config.to_str().expect("utf-8 path");
        let out = redline(&[
            "readiness-check",
            "--service",
            service,
            "--config",
            config,
            "--only",
            "dashboard",
            "--format",
            "json",
        ]);
        let report: Value = serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|e| panic!("no JSON ({e}): {}{}", text(&out.stdout), text(&out.stderr)));
        assert_eq!(out.status.code(), Some(0), "{report:#}");
        let checks = report["checks"].as_array().expect("checks");
        let check = checks.iter().find(|c| c["id"] == "dashboard").expect("the dashboard check");
        assert_eq!(check["status"], "pass", "{report:#}");
        assert!(checks.iter().all(|c| c["id"] == "dashboard" || c["status"] == "skip"), "{report:#}");
        let summary = check["summary"].as_str().unwrap_or_default();
        assert!(summary.contains("redline-red.json: panels for rate, errors, duration and saturation"), "{summary}");
    }
}

// ---- every query against a real Prometheus scraping a real sidecar ----

fn now() -> f64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs_f64()).unwrap_or_default()
}

fn enc(s: &str) -> String {
    percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC).to_string()
}

/// A Prometheus HTTP API call: the JSON answer, whatever its status.
async fn api(p: &Prometheus, path: &str, params: &[(&str, String)]) -> Value {
    let query: Vec<String> = params.iter().map(|(k, v)| format!("{k}={}", enc(v))).collect();
    let url = format!("{}{path}?{}", p.url(), query.join("&"));
    let r = client().get(&url).send().await.unwrap_or_else(|e| panic!("GET {url}: {e}"));
    r.json().await.unwrap_or_else(|e| panic!("GET {url}: not JSON: {e}"))
}

/// The values Grafana offers for `label_values(SELECTOR, LABEL)`.
async fn label_values(p: &Prometheus, query: &str) -> Vec<String> {
    let re = regex::Regex::new(r"^label_values\((.+),\s*([A-Za-z_][A-Za-z0-9_]*)\)$").expect("regex");
    let c = re.captures(query).unwrap_or_else(|| panic!("not a label_values() query: {query}"));
    let t = now();
    let params = [("match[]", c[1].to_string()), ("start", format!("{}", t - 300.0)), ("end", format!("{t}"))];
    let v = api(p, &format!("/api/v1/label/{}/values", &c[2]), &params).await;
    assert_eq!(v["status"], "success", "{query}: {v}");
    v["data"].as_array().into_iter().flatten().filter_map(|s| s.as_str().map(str::to_string)).collect()
}

/// Fills the dashboard's variables as a user would: each query variable from Prometheus (the
/// value this test's setup gives, which must be offered), text boxes with their default.
async fn variables(p: &Prometheus, model: &Value) -> Vec<(String, VarValue)> {
    let mut vars: Vec<(String, VarValue)> = vec![
        ("__rate_interval".into(), VarValue::Raw("10s".into())),
        ("__interval".into(), VarValue::Raw("2s".into())),
        ("__range".into(), VarValue::Raw("5m".into())),
    ];
    for var in model["templating"]["list"].as_array().expect("templating.list") {
        let name = var["name"].as_str().expect("variable name").to_string();
        let value = match var["type"].as_str() {
            Some("datasource") => continue,
            Some("textbox") => VarValue::Single(var["query"].as_str().expect("textbox default").to_string()),
            Some("query") => {
                let borrowed: Vec<(&str, VarValue)> = vars.iter().map(|(n, v)| (n.as_str(), v.clone())).collect();
                let query = interpolate(var["query"].as_str().expect("variable query"), &borrowed);
                let offered = label_values(p, &query).await;
                let want = match name.as_str() {
                    "service" => "checkout",
                    "namespace" => "shop",
                    "version" => "1.2.3",
                    "route" => "/users/{id}",
                    "rpc_method" => "redline.test.Echo/Unary",
                    other => panic!("unexpected variable {other}"),
                };
                assert!(offered.iter().any(|o| o == want), "${name} ({query}) offers {offered:?}, not {want:?}");
                if var["multi"] == true || var["includeAll"] == true {
                    VarValue::Picked(vec![want.to_string()])
                } else {
                    VarValue::Single(want.to_string())
                }
            }
            other => panic!("variable {name} of unexpected type {other:?}"),
        };
        vars.push((name, value));
    }
    vars
}

/// Every query of a dashboard: `(panel title, target, is an annotation)`.
fn queries(model: &Value) -> Vec<(String, Value, bool)> {
    let mut out = Vec::new();
    let mut panels: Vec<&Value> = Vec::new();
    for p in model["panels"].as_array().expect("panels") {
        panels.push(p);
        panels.extend(p["panels"].as_array().into_iter().flatten());
    }
    for p in panels {
        for t in p["targets"].as_array().into_iter().flatten() {
            out.push((p["title"].as_str().unwrap_or("?").to_string(), t.clone(), false));
        }
    }
    for a in model["annotations"]["list"].as_array().into_iter().flatten() {
        if a["expr"].is_string() {
            out.push((format!("annotation {}", a["name"]), a.clone(), true));
        }
    }
    out
}

/// Metric names an expression reads.
fn names(expr: &str) -> Vec<String> {
    let e = promql_parser::parser::parse(expr).unwrap_or_else(|e| panic!("{expr}: {e}"));
    redline::readiness::checks::ExprUse::of(&e).names().map(str::to_string).collect()
}

/// Polls an instant query until it returns a series.
async fn wait_for_series(p: &Prometheus, what: &str, query: &str, deadline: Instant) {
    loop {
        let v = api(p, "/api/v1/query", &[("query", query.to_string())]).await;
        if v["data"]["result"].as_array().is_some_and(|r| !r.is_empty()) {
            return;
        }
        assert!(Instant::now() < deadline, "Prometheus never had {what} ({query}): {v}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_query_runs_on_a_real_prometheus_scraping_a_real_sidecar() {
    require_tool("prometheus", "prometheus");
    let upstream = Upstream::start().await;
    upstream.faults.set(0.2, Duration::ZERO);
    let otlp = OtlpReceiver::http().await;
    let closed_alertmanager = format!("http://127.0.0.1:{}", free_port());
    let symptoms = format!("{RULES}/redline-symptoms.yml");
    let pid = std::process::id().to_string();
    let grpc_server = GrpcServer::start(&[]);
    let grpc_sidecar = Sidecar::start(
        &format!("http://{}", grpc_server.target()),
        &["--tracing-endpoint", &otlp.endpoint(), "--sample-interval", "1s"],
    )
    .await;
    let sidecar = Sidecar::start(
        &upstream.url(),
        &[
            "--routes=/users/{id},/orders/{id}/items",
            "--app-pid",
            &pid,
            "--tracing-endpoint",
            &otlp.endpoint(),
            "--rules",
            &symptoms,
            "--sample-interval",
            "1s",
            "--alertmanagers",
            &closed_alertmanager,
        ],
    )
    .await;
    let config = format!(
        "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n\
         rule_files: ['{RULES}/redline-symptoms.yml', '{RULES}/redline-slo.yml']\n\
         scrape_configs:\n  - job_name: checkout\n    static_configs:\n      - targets: ['{}']\n\
         \x20       labels: {{service: checkout, namespace: shop, version: '1.2.3', pod: checkout-0}}\n\
         \x20     - targets: ['{}']\n\
         \x20       labels: {{service: checkout, namespace: shop, version: '1.2.3', pod: checkout-1}}\n",
        sidecar.admin, grpc_sidecar.admin
    );
    let prometheus = Prometheus::start_with_flags(&config, &["--enable-feature=exemplar-storage"]).await;

    // gRPC calls through a second pod of the service: 1 in 10 NOT_FOUND, 1 in 10 UNAVAILABLE.
    let grpc_load =
        GrpcLoad::start(&grpc_sidecar.proxy.to_string(), &["8:unary", "1:fail:NOT_FOUND", "1:fail:UNAVAILABLE"]);

    // Traffic on two routes, 20% of it answered 500 by the service.
    let stop = Arc::new(AtomicBool::new(false));
    let load = {
        let (stop, users, orders) = (stop.clone(), sidecar.url("/users/"), sidecar.url("/orders/"));
        tokio::spawn(async move {
            let c = client();
            let mut tick = tokio::time::interval(Duration::from_millis(10));
            let deadline = Instant::now() + Duration::from_secs(240);
            for i in 0u64.. {
                if stop.load(Ordering::Relaxed) || Instant::now() > deadline {
                    break;
                }
                tick.tick().await;
                let url = if i % 3 == 0 { format!("{orders}{i}/items") } else { format!("{users}{i}") };
                let c = c.clone();
                tokio::spawn(async move {
                    let _ = c.get(url).send().await;
                });
            }
        })
    };

    let deadline = Instant::now() + Duration::from_secs(90);
    let sel = r#"service="checkout",namespace="shop""#;
    for (what, q) in [
        (
            "5xx in the last 10s",
            format!(r#"rate(http_server_request_duration_seconds_count{{{sel},error_type="500"}}[10s]) > 0"#),
        ),
        (
            "successes in the last 10s",
            format!(r#"rate(http_server_request_duration_seconds_count{{{sel},error_type=""}}[10s]) > 0"#),
        ),
        ("the availability SLO recording rules", format!("redline:slo_errors:ratio_rate3d{{{sel}}}")),
        ("the latency SLO recording rules", format!("redline:slo_slow:ratio_rate3d{{{sel}}}")),
        ("an alert of the shipped rules", format!("ALERTS{{{sel}}}")),
        ("the sidecar's own pending alert", format!("redline_alerts{{{sel}}}")),
        (
            "gRPC calls in the last 10s",
            format!(r#"rate(rpc_server_call_duration_seconds_count{{{sel},rpc_response_status_code="OK"}}[10s]) > 0"#),
        ),
        (
            "gRPC server errors in the last 10s",
            format!(r#"rate(rpc_server_call_duration_seconds_count{{{sel},error_type="UNAVAILABLE"}}[10s]) > 0"#),
        ),
    ] {
        wait_for_series(&prometheus, what, &q, deadline).await;
    }
    // Every series the rules record and a dashboard reads, each waited for: one of them having
    // a sample says nothing of the others on a loaded machine (a run had the availability
    // ratios' 3d window and not yet its 5m, 30m and 1h ones when the names were listed below).
    let dashboards: String = json_files(Path::new(CHECKED_IN))
        .iter()
        .map(|f| std::fs::read_to_string(Path::new(CHECKED_IN).join(f)).expect("read dashboard"))
        .collect();
    for rules in ["redline-symptoms.yml", "redline-slo.yml"] {
        let text = std::fs::read_to_string(Path::new(RULES).join(rules)).expect("read rules");
        for name in text.lines().filter_map(|l| l.trim().strip_prefix("- record: ")) {
            if dashboards.contains(&format!("{name}{{")) {
                wait_for_series(&prometheus, name, name, deadline).await;
            }
        }
    }

    let sidecar_metrics = sidecar.metrics().await;
    let has_cgroup = sidecar_metrics.lines().any(|l| l.starts_with("redline_cgroup_"));
    let names_v = api(&prometheus, "/api/v1/label/__name__/values", &[]).await;
    let stored: BTreeSet<String> =
        names_v["data"].as_array().into_iter().flatten().filter_map(|n| n.as_str().map(str::to_string)).collect();

    let mut failures = Vec::new();
    let mut ran = 0;
    let mut exemplar_query = None;
    for file in json_files(Path::new(CHECKED_IN)) {
        let path: PathBuf = Path::new(CHECKED_IN).join(&file);
        let model: Value =
            serde_json::from_slice(&std::fs::read(&path).expect("read dashboard")).expect("dashboard JSON");
        let vars = variables(&prometheus, &model).await;
        let vars: Vec<(&str, VarValue)> = vars.iter().map(|(n, v)| (n.as_str(), v.clone())).collect();
        for (panel, target, annotation) in queries(&model) {
            let expr = interpolate(target["expr"].as_str().expect("expr"), &vars);
            assert!(!expr.contains('$'), "{file}: {panel}: variable left in {expr}");
            let t = now();
            let v = if target["instant"] == true {
                api(&prometheus, "/api/v1/query", &[("query", expr.clone()), ("time", format!("{t}"))]).await
            } else {
                let params = [
                    ("query", expr.clone()),
                    ("start", format!("{}", t - 60.0)),
                    ("end", format!("{t}")),
                    ("step", "2".to_string()),
                ];
                api(&prometheus, "/api/v1/query_range", &params).await
            };
            ran += 1;
            if v["status"] != "success" {
                failures.push(format!("{file}: {panel}: {expr}: {}", v["error"]));
                continue;
            }
            let empty = v["data"]["result"].as_array().is_none_or(|r| r.is_empty());
            let read = names(&expr);
            for n in &read {
                let absent_here = n.starts_with("redline_cgroup_") && !has_cgroup;
                if !stored.contains(n) && !absent_here {
                    failures.push(format!("{file}: {panel}: reads {n}, which the sidecar and rules never produced"));
                }
            }
            // RED panels always have data here (the gRPC row's too); elsewhere a query has data
            // whenever the series it reads exist (firing-alert annotations aside: the alerts
            // only pend).
            let must_have_data = !annotation && (file == "redline-red.json" || read.iter().all(|n| stored.contains(n)));
            if empty && must_have_data {
                failures.push(format!("{file}: {panel}: no data: {expr}"));
            }
            if target["exemplar"] == true {
                exemplar_query = Some(expr.clone());
            }
        }
    }
    assert!(ran >= 60, "only {ran} queries found");
    assert!(failures.is_empty(), "{} of {ran} queries failed:\n{}", failures.len(), failures.join("\n"));

    // The duration panel's exemplars: trace ids of spans the sidecar exported.
    let query = exemplar_query.expect("a target with exemplars");
    let t = now();
    let params = [("query", query.clone()), ("start", format!("{}", t - 300.0)), ("end", format!("{t}"))];
    let v = api(&prometheus, "/api/v1/query_exemplars", &params).await;
    assert_eq!(v["status"], "success", "{v}");
    let trace_ids: Vec<String> = v["data"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|s| s["exemplars"].as_array().into_iter().flatten())
        .filter_map(|e| e["labels"]["trace_id"].as_str().map(str::to_string))
        .collect();
    assert!(!trace_ids.is_empty(), "no exemplars for {query}: {v}");
    let id = trace_ids[0].clone();
    assert!(id.len() == 32 && id.chars().all(|c| c.is_ascii_hexdigit()), "{id}");
    otlp.received.wait_for(&format!("with the exemplar's trace id {id}"), |s| s.trace_id_hex() == id).await;

    stop.store(true, Ordering::Relaxed);
    let _ = load.await;
    let calls = grpc_load.stop();
    assert!(calls["UNAVAILABLE"].as_u64().unwrap_or(0) > 0, "{calls}");
}
