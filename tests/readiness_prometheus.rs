//! `redline readiness-check` reading a real Prometheus (Debian `prometheus`) that scrapes real
//! sidecars: `metrics.red`/`metrics.use` from Prometheus' series of the service, and the
//! `canary` check judging a healthy canary (pass, exit 0) and a faulty one (fail, exit 1).

mod common;

use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use common::prometheus::Prometheus;
use common::{Sidecar, Upstream, client, redline_bin, require_tool};
use serde_json::Value;

async fn readiness(config: &std::path::Path, canary: &str) -> (i32, Value) {
    let mut cmd = Command::new(redline_bin());
    cmd.args(["readiness-check", "--service", "checkout", "--format", "json", "--config"])
        .arg(config)
        .args(["--only", "metrics.red,metrics.use,canary", "--baseline", "v1", "--canary", canary])
        .args(["--window", "15s", "--step", "1s", "--rate-window", "4s"])
        .env_remove("REDLINE_CONFIG");
    let out = tokio::task::spawn_blocking(move || cmd.output()).await.expect("join").expect("run readiness-check");
    let v: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!("no JSON ({e}): {}\n{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
    });
    (out.status.code().expect("exit code"), v)
}

fn check<'a>(report: &'a Value, id: &str) -> &'a Value {
    report["checks"].as_array().expect("checks").iter().find(|c| c["id"] == id).expect("check")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_and_canary_from_a_real_prometheus() {
    require_tool("prometheus", "prometheus");
    let pid = std::process::id().to_string();
    let mut sides = Vec::new();
    for version in ["v1", "v2", "v3"] {
        let upstream = Upstream::start().await;
        let sidecar = Sidecar::start(&upstream.url(), &["--routes=/users/{id}", "--app-pid", &pid]).await;
        sides.push((version, upstream, sidecar));
    }
    // v3 is the faulty canary: 30% errors and 60 ms more latency.
    sides[2].1.faults.set(0.3, Duration::from_millis(60));
    let mut config = "global:\n  scrape_interval: 1s\nscrape_configs:\n".to_owned();
    for (version, _, sidecar) in &sides {
        config.push_str(&format!(
            "  - job_name: checkout-{version}\n    static_configs:\n      - targets: ['{}']\n        labels: {{service: checkout, version: '{version}'}}\n",
            sidecar.admin
        ));
    }
    let prometheus = Prometheus::start(&config).await;

    let stop = Arc::new(AtomicBool::new(false));
    let mut load = Vec::new();
    for (_, _, sidecar) in &sides {
        let url = sidecar.url("/users/");
        let stop = stop.clone();
        load.push(tokio::spawn(async move {
            let c = client();
            let mut i = 0u64;
            let mut tick = tokio::time::interval(Duration::from_millis(20));
            let deadline = Instant::now() + Duration::from_secs(120);
            while !stop.load(Ordering::Relaxed) && Instant::now() < deadline {
                tick.tick().await;
                i += 1;
                let c = c.clone();
                let u = format!("{url}{i}");
                tokio::spawn(async move {
                    let _ = c.get(u).send().await;
                });
            }
        }));
    }
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let mut ready = true;
        for (version, _, _) in &sides {
            let q = format!(
                "count_over_time((sum(rate(http_server_request_duration_seconds_count{{version=\"{version}\"}}[4s])) > 0)[20s:1s])"
            );
            ready &= prometheus.value(&q).await.is_some_and(|n| n >= 20.0);
        }
        if ready {
            break;
        }
        assert!(Instant::now() < deadline, "prometheus did not collect 20s of traffic from all sidecars within 90s");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }

    let dir = tempfile::tempdir().expect("temp dir");
    let config = dir.path().join("redline.yaml");
    std::fs::write(&config, format!("service: checkout\nreadiness:\n  prometheus_url: {}\n", prometheus.url()))
        .expect("write config");
    let (code, healthy) = readiness(&config, "v2").await;
    let (bad_code, faulty) = readiness(&config, "v3").await;
    stop.store(true, Ordering::Relaxed);
    for l in load {
        let _ = l.await;
    }

    assert_eq!(check(&healthy, "metrics.red")["status"], "pass", "{healthy:#}");
    assert!(
        check(&healthy, "metrics.red")["evidence"][0]
            .as_str()
            .expect("evidence")
            .contains("/api/v1/query?query=count by (__name__)"),
        "{healthy:#}"
    );
    assert_eq!(check(&healthy, "metrics.use")["status"], "pass", "{healthy:#}");
    let canary = check(&healthy, "canary");
    assert_eq!(canary["status"], "pass", "{healthy:#}");
    assert!(
        canary["summary"].as_str().expect("summary").starts_with("canary v2 vs baseline v1: pass (score 100)"),
        "{canary:#}"
    );
    assert_eq!((code, &healthy["ready"]), (0, &Value::Bool(true)));

    let canary = check(&faulty, "canary");
    assert_eq!(canary["status"], "fail", "{faulty:#}");
    assert!(canary["summary"].as_str().expect("summary").contains("fail (score 0)"), "{canary:#}");
    assert!(
        canary["details"]
            .as_array()
            .expect("details")
            .iter()
            .any(|d| d.as_str().is_some_and(|d| d.starts_with("error_ratio: high"))),
        "{canary:#}"
    );
    assert_eq!((bad_code, &faulty["blocking_failures"]), (1, &serde_json::json!(["canary"])));
}
