//! `redline canary judge` against a real Prometheus (Debian `prometheus`) scraping real sidecars:
//! a baseline, a healthy canary and a faulty canary (errors and latency injected upstream), all
//! under the same load. The healthy canary passes, the faulty one fails on its error ratio.

use crate::common;

use std::process::Command;
use std::time::Duration;

use common::prometheus::{Prometheus, SteadyLoad};
use common::{Sidecar, Upstream, free_port, redline_bin, require_tool};

fn scrape_job(version: &str, sidecar: &Sidecar) -> String {
    format!(
        "  - job_name: checkout-{version}\n    static_configs:\n      - targets: ['{}']\n        labels: {{service: checkout, version: '{version}'}}\n",
        sidecar.admin
    )
}

/// Runs `redline canary judge` and returns (exit code, parsed JSON report).
async fn judge(prometheus: &str, canary: &str) -> (i32, serde_json::Value) {
    let args: Vec<String> = [
        "canary",
        "judge",
        "--prometheus",
        prometheus,
        "--service",
        "checkout",
        "--baseline",
        "v1",
        "--canary",
        canary,
        "--window",
        "15s",
        "--step",
        "1s",
        "--rate-window",
        "4s",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let out = tokio::task::spawn_blocking(move || Command::new(redline_bin()).args(&args).output())
        .await
        .expect("join")
        .expect("run redline canary judge");
    let report = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "judge printed no JSON ({e}):\nstdout: {}\nstderr: {}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (out.status.code().unwrap_or(-1), report)
}

fn metric<'a>(report: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
    report["metrics"].as_array().and_then(|m| m.iter().find(|m| m["name"] == name)).expect("metric in report")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn judge_passes_a_healthy_canary_and_fails_a_faulty_one() {
    require_tool("prometheus", "prometheus");
    let routes = "--routes=/users/{id}";
    let mut sides = Vec::new();
    for version in ["v1", "v2", "v3"] {
        let upstream = Upstream::start().await;
        let sidecar = Sidecar::start(&upstream.url(), &[routes]).await;
        sides.push((version, upstream, sidecar));
    }
    // v3 is the faulty canary: 30% errors and 60 ms more latency.
    sides[2].1.faults.set(0.3, Duration::from_millis(60));

    let mut config = "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nscrape_configs:\n".to_owned();
    for (version, _, sidecar) in &sides {
        config.push_str(&scrape_job(version, sidecar));
    }
    let prometheus = Prometheus::start(&config).await;

    // The same steady load on all three: one request every 20 ms each.
    let load = SteadyLoad::start(sides.iter().map(|(_, _, sidecar)| sidecar.url("/users/")).collect());
    let versions: Vec<&str> = sides.iter().map(|(v, _, _)| *v).collect();
    prometheus.wait_for_traffic(&versions).await;

    let (code, healthy) = judge(&prometheus.url(), "v2").await;
    let (bad_code, faulty) = judge(&prometheus.url(), "v3").await;
    load.stop().await;

    assert_eq!(healthy["verdict"], "pass", "{healthy:#}");
    assert_eq!((code, &healthy["pass"], &healthy["score"]), (0, &serde_json::json!(true), &serde_json::json!(100.0)));
    let errors = metric(&healthy, "error_ratio");
    assert!(errors["baseline"]["count"].as_u64().unwrap() >= 10, "{errors:#}");
    assert_eq!(errors["classification"], "pass");

    assert_eq!((bad_code, &faulty["verdict"]), (1, &serde_json::json!("fail")), "{faulty:#}");
    assert_eq!(faulty["critical_failure"], true);
    assert_eq!(faulty["score"], 0.0);
    let errors = metric(&faulty, "error_ratio");
    assert_eq!(errors["classification"], "high", "{errors:#}");
    let canary_mean = errors["canary"]["mean"].as_f64().unwrap();
    assert!((0.15..0.45).contains(&canary_mean), "injected 30% errors, measured {canary_mean}");
    assert!(errors["mann_whitney"]["p_value"].as_f64().unwrap() < 0.02);
    assert_eq!(metric(&faulty, "p99_latency_seconds")["classification"], "high", "{faulty:#}");
}

#[test]
fn judge_reports_an_unreachable_prometheus_with_exit_2() {
    let port = free_port();
    let out = Command::new(redline_bin())
        .args(["canary", "judge", "--prometheus", &format!("http://127.0.0.1:{port}")])
        .args(["--service", "checkout", "--baseline", "v1", "--canary", "v2"])
        .output()
        .expect("run redline");
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(&format!("127.0.0.1:{port}/api/v1/query_range")), "{err}");
    let out = Command::new(redline_bin())
        .args(["canary", "judge", "--prometheus", "http://127.0.0.1:1", "--service", "s", "--baseline", "a"])
        .args(["--canary", "b", "--confidence", "1.5"])
        .output()
        .expect("run redline");
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("confidence must be between 0 and 1"));
}
