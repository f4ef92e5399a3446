//! SLOs from the configuration: `redline rules slo` prints the rules of the `slo` section (the
//! shipped rules/redline-slo.yml is its output for the default config; promtool checks the
//! output and runs its unit tests), the sidecar evaluates them with no rule file (visible in
//! its `/api/v1/rules`), a driven error rate fires the page alert with a 12h `slo.period`
//! (windows 5s…1h12m), and configurations the rules cannot serve are refused naming the key.

use crate::common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{Sidecar, Upstream, client, free_port, redline_bin, require_tool, run_ok};
use common::{get_json as json, poll_until as wait_for};
use serde_json::Value;

/// The SLO of the issue: a 0.005 availability budget and a 500ms threshold (a default bucket).
const SLO_99_5: &str = "slo: {availability: 99.5, latency: {threshold: 500ms, target: 95}}\n";

fn write(dir: &Path, name: &str, text: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, text).expect("write file");
    path.display().to_string()
}

/// `redline rules slo --config FILE ARGS`, which must succeed; its stdout.
fn rules_slo(config: &str, args: &[&str]) -> String {
    let out = run_ok(Command::new(redline_bin()).args(["rules", "slo", "--config", config]).args(args), "rules slo");
    String::from_utf8(out.stdout).expect("UTF-8 rules")
}

#[test]
fn the_shipped_slo_rules_are_the_output_for_the_default_config() {
    let dir = tempfile::tempdir().expect("temp dir");
    let config = write(dir.path(), "redline.yaml", "service: checkout\n");
    let shipped = std::fs::read_to_string("rules/redline-slo.yml").expect("shipped SLO rules");
    assert!(
        rules_slo(&config, &[]) == shipped,
        "rules/redline-slo.yml is not the output of `redline rules slo` for the default config: \
         run `redline rules slo --config <a config with only service:> > rules/redline-slo.yml`"
    );
}

#[test]
fn rules_slo_output_passes_promtool_check_and_its_unit_tests() {
    let promtool = require_tool("promtool", "prometheus");
    let dir = tempfile::tempdir().expect("temp dir");
    let config = write(dir.path(), "redline.yaml", &format!("service: checkout\n{SLO_99_5}"));
    let rules = rules_slo(&config, &[]);
    assert!(rules.contains("redline:slo_errors:ratio_rate1h > (14.4 * 0.005)"), "{rules}");
    assert!(rules.contains(r#"http_server_request_duration_seconds_bucket{le="0.5"}[5m]"#), "{rules}");
    let file = write(dir.path(), "redline-slo.yml", &rules);
    let out = run_ok(Command::new(&promtool).args(["check", "rules", &file]), "promtool check rules");
    assert!(String::from_utf8_lossy(&out.stdout).contains("SUCCESS: 22 rules found"), "{out:?}");
    // The unit tests of the 99.5% / 500ms rules (they fail on the default rules' budgets).
    std::fs::copy("tests/fixtures/slo/redline-slo_test.yml", dir.path().join("redline-slo_test.yml"))
        .expect("copy tests");
    let test = dir.path().join("redline-slo_test.yml");
    run_ok(Command::new(&promtool).args(["test", "rules"]).arg(&test), "promtool test rules");
    run_ok(Command::new(redline_bin()).args(["rules", "test"]).arg(&test), "redline rules test");

    // The PrometheusRule holds the same groups.
    let cr = rules_slo(&config, &["--format", "prometheusrule", "--name", "checkout-slo", "--namespace", "shop"]);
    let cr: Value = serde_saphyr::from_str(&cr).expect("PrometheusRule YAML");
    let file: Value = serde_saphyr::from_str(&rules).expect("rule file YAML");
    assert_eq!(cr["apiVersion"], "monitoring.coreos.com/v1");
    assert_eq!(cr["kind"], "PrometheusRule");
    assert_eq!((&cr["metadata"]["name"], &cr["metadata"]["namespace"]), (&"checkout-slo".into(), &"shop".into()));
    assert_eq!(cr["spec"]["groups"], file["groups"]);
}

#[test]
fn rules_slo_refuses_a_threshold_that_is_not_a_bucket_naming_the_key() {
    let dir = tempfile::tempdir().expect("temp dir");
    let config = write(dir.path(), "redline.yaml", &format!("duration_buckets: [0.1, 0.25, 1]\n{SLO_99_5}"));
    let out = Command::new(redline_bin()).args(["rules", "slo", "--config", &config]).output().expect("run");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("slo.latency.threshold: 500ms is not a bucket of duration_buckets [0.1, 0.25, 1]"),
        "{stderr}"
    );
    assert!(out.stdout.is_empty());
    let missing = dir.path().join("nope.yaml");
    let out = Command::new(redline_bin()).args(["rules", "slo", "--config"]).arg(&missing).output().expect("run");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains(&format!("config file {}: cannot read", missing.display())), "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sidecar_evaluates_the_slo_rules_of_its_config_with_no_rule_file() {
    let up = Upstream::start().await;
    let dir = tempfile::tempdir().expect("temp dir");
    let config = write(dir.path(), "redline.yaml", &format!("{SLO_99_5}retention: 3d\n"));
    let sidecar = Sidecar::start(&up.url(), &["--config", &config]).await;
    let api = json(&sidecar.admin_url("/api/v1/rules")).await;
    let groups = api["data"]["groups"].as_array().expect("groups");
    let names: Vec<&str> = groups.iter().map(|g| g["name"].as_str().unwrap_or_default()).collect();
    assert_eq!(names, ["redline-slo-availability", "redline-slo-latency"], "{api}");
    let rules: Vec<&Value> = groups.iter().flat_map(|g| g["rules"].as_array().expect("rules")).collect();
    assert_eq!(rules.len(), 22);
    let query = |name: &str| {
        rules.iter().find(|r| r["name"] == name).and_then(|r| r["query"].as_str()).unwrap_or_default().to_string()
    };
    assert!(query("RedlineAvailabilityBudgetBurn1h").contains("(14.4 * 0.005)"), "{api}");
    assert!(query("RedlineLatencyBudgetBurn1h").contains("(14.4 * 0.05)"), "{api}");
    assert!(
        query("redline:slo_slow:ratio_rate3d").contains(r#"http_server_request_duration_seconds_bucket{le="0.5"}[3d]"#)
    );
    let page = rules.iter().find(|r| r["name"] == "RedlineAvailabilityBudgetBurn1h").expect("page alert");
    assert_eq!(page["labels"]["severity"], "critical");
    assert_eq!(page["duration"], 120.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_default_thresholds_bucket_is_in_the_histogram() {
    let up = Upstream::start().await;
    let sidecar = Sidecar::start(&up.url(), &[]).await;
    let r = client().get(sidecar.url("/users/1")).send().await.expect("GET");
    assert_eq!(r.status(), 200);
    let m = sidecar.metrics().await;
    assert!(
        m.lines().any(|l| l.starts_with("http_server_request_duration_seconds_bucket{") && l.contains(r#"le="0.3""#)),
        "{m}"
    );
    // No `slo` configured: the sidecar evaluates no SLO rules (and needs no 3d retention).
    let r = client().get(sidecar.admin_url("/api/v1/rules")).send().await.expect("GET");
    let body = r.text().await.expect("body");
    assert!(!body.contains("redline-slo"), "{body}");
}

/// A 12h SLO period shrinks every window 60-fold (page: 1m & 5s, `for` 2s), an honest setting
/// of the config; 100% failures must fire the page alert within seconds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_driven_error_rate_fires_the_page_alert_with_a_short_slo_period() {
    let up = Upstream::start().await;
    let dir = tempfile::tempdir().expect("temp dir");
    let config = write(
        dir.path(),
        "redline.yaml",
        "slo: {availability: 99.5, latency: {threshold: 500ms, target: 95}, period: 12h}\nretention: 2h\nsample_interval: 1s\n",
    );
    let sidecar = Sidecar::start(&up.url(), &["--config", &config]).await;
    let traffic = {
        let url = sidecar.url("/users/42");
        tokio::spawn(async move {
            let c = client();
            loop {
                let _ = c.get(&url).send().await;
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
    };
    let alerts_url = sidecar.admin_url("/api/v1/alerts");
    let firing = async |name: &str| -> Option<Value> {
        let alerts = json(&alerts_url).await;
        alerts["data"]["alerts"]
            .as_array()?
            .iter()
            .find(|a| a["labels"]["alertname"] == name && a["state"] == "firing")
            .cloned()
    };
    // Healthy traffic first: the recorded ratio is 0 and nothing fires.
    let rules_url = sidecar.admin_url("/api/v1/rules");
    wait_for("a healthy evaluation of the 5s ratio", Duration::from_secs(20), async || {
        let api = json(&rules_url).await;
        api["data"]["groups"][0]["rules"][0]["health"] == "ok"
            && api["data"]["groups"][0]["rules"][0]["name"] == "redline:slo_errors:ratio_rate5s"
    })
    .await;
    assert!(firing("RedlineAvailabilityBudgetBurn1h").await.is_none());

    up.faults.set(1.0, Duration::ZERO);
    let mut alert = None;
    wait_for("RedlineAvailabilityBudgetBurn1h to fire", Duration::from_secs(60), async || {
        alert = firing("RedlineAvailabilityBudgetBurn1h").await;
        alert.is_some()
    })
    .await;
    traffic.abort();
    let alert = alert.expect("firing alert");
    assert_eq!(alert["labels"]["severity"], "critical", "{alert}");
    assert_eq!(alert["labels"]["slo"], "availability", "{alert}");
    let description = alert["annotations"]["description"].as_str().unwrap_or_default();
    assert!(description.contains("over the last 1m, and more than 7.2% over the last 5s"), "{description}");
    assert!(description.contains("(99.5%, error budget 0.5%)") && description.contains("12-hour"), "{description}");
}

/// The PrometheusRule `rules slo` prints is valid against the prometheus-operator's CRD schema
/// (the validator deploy.rs uses for the manifests), for several named objectives too.
#[test]
fn the_prometheusrule_matches_its_crd_schema() {
    let node = common::node::node();
    let dir = common::node::crd_models();
    let script = dir.join("validate-crds.mjs");
    std::fs::copy("tests/fixtures/deploy/validate-crds.mjs", &script).expect("copy validator");
    let tmp = tempfile::tempdir().expect("temp dir");
    let config = write(tmp.path(), "redline.yaml", OBJECTIVES);
    let cr: Value = serde_saphyr::from_str(&rules_slo(&config, &["--format", "prometheusrule"])).expect("YAML");
    let validate = |resources: Value| {
        let input = tmp.path().join("resources.json");
        std::fs::write(&input, resources.to_string()).expect("write resources");
        Command::new(&node)
            .arg(&script)
            .current_dir(&dir)
            .stdin(std::fs::File::open(&input).expect("open"))
            .stderr(Stdio::inherit())
            .output()
            .expect("run node")
    };
    let out = validate(Value::from(vec![cr.clone()]));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success() && stdout.contains("valid: "), "CRD schema validation:\n{stdout}");
    // The validator can fail: `for` that is no duration.
    let mut bad = cr;
    bad["spec"]["groups"][0]["rules"][7]["for"] = "two minutes".into();
    let out = validate(Value::from(vec![bad]));
    assert!(!out.status.success(), "{}", String::from_utf8_lossy(&out.stdout));
}

/// Two named objectives over routes of the demo service: `/status/{code}` (driven to fail) and
/// `/users/{id}` (healthy), with a 12h period.
const OBJECTIVES: &str = "service: checkout\nroutes: [\"/status/{code}\", \"/users/{id}\"]\nslo:\n  period: 12h\n  objectives:\n    - {name: status, routes: [\"/status/{code}\"], availability: 99}\n    - {name: users, routes: [\"/users/{id}\"]}\nretention: 2h\nsample_interval: 1s\n";

#[test]
fn several_objectives_give_groups_per_objective_that_promtool_accepts() {
    let promtool = require_tool("promtool", "prometheus");
    let dir = tempfile::tempdir().expect("temp dir");
    let rules = rules_slo(&write(dir.path(), "redline.yaml", OBJECTIVES), &[]);
    let file = write(dir.path(), "slo.yml", &rules);
    let out = run_ok(Command::new(&promtool).args(["check", "rules", &file]), "promtool check rules");
    assert!(String::from_utf8_lossy(&out.stdout).contains("SUCCESS: 44 rules found"), "{out:?}");
    for group in ["redline-slo-status-availability", "redline-slo-users-latency"] {
        assert!(rules.contains(&format!("  - name: {group}\n")), "{rules}");
    }
    assert!(rules.contains(r#"{error_type!~"|client_.+|shutdown",http_route=~"/status/\\{code\\}"}[5s]"#), "{rules}");
    assert!(rules.contains(r#"redline:slo_errors:ratio_rate1m{objective="status"} > (14.4 * 0.01)"#), "{rules}");
}

/// In the sidecar, each objective sees only its routes: failures on one route fire that
/// objective's page alert and not the other's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_objective_over_failing_routes_pages_and_the_healthy_one_does_not() {
    let up = Upstream::start().await;
    let dir = tempfile::tempdir().expect("temp dir");
    let config = write(dir.path(), "redline.yaml", OBJECTIVES);
    let sidecar = Sidecar::start(&up.url(), &["--config", &config]).await;
    let urls = [sidecar.url("/status/500"), sidecar.url("/users/42")];
    let traffic = tokio::spawn(async move {
        let c = client();
        loop {
            for url in &urls {
                let _ = c.get(url).send().await;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    });
    let alerts_url = sidecar.admin_url("/api/v1/alerts");
    let firing = async || -> Vec<Value> {
        let alerts = json(&alerts_url).await;
        alerts["data"]["alerts"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|a| a["labels"]["alertname"] == "RedlineAvailabilityBudgetBurn1h" && a["state"] == "firing")
            .cloned()
            .collect()
    };
    let mut seen = Vec::new();
    wait_for("the status objective's page", Duration::from_secs(60), async || {
        seen = firing().await;
        !seen.is_empty()
    })
    .await;
    // The healthy objective's 1m ratio has been evaluated over the same traffic: still 0.
    let query = sidecar.admin_url("/api/v1/rules");
    wait_for("the users objective's 1m ratio", Duration::from_secs(20), async || {
        let api = json(&query).await;
        api["data"]["groups"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|g| g["name"] == "redline-slo-users-availability" && g["rules"][2]["health"] == "ok")
    })
    .await;
    let seen = firing().await;
    traffic.abort();
    let objectives: Vec<&str> = seen.iter().filter_map(|a| a["labels"]["objective"].as_str()).collect();
    assert_eq!(objectives, ["status"], "{seen:?}");
    let description = seen[0]["annotations"]["description"].as_str().unwrap_or_default();
    assert!(description.contains("of the status requests to checkout"), "{description}");
}

/// `redline sidecar --config FILE` must exit (within 20s) refusing the config; exit code and stderr.
fn refused(config_text: &str) -> (Option<i32>, String) {
    let dir = tempfile::tempdir().expect("temp dir");
    let text = format!(
        "service: checkout\nlisten: 127.0.0.1:{}\nadmin: 127.0.0.1:{}\n{config_text}",
        free_port(),
        free_port()
    );
    let config = write(dir.path(), "redline.yaml", &text);
    let mut child = Command::new(redline_bin())
        .args(["sidecar", "--config", &config])
        .env_remove("REDLINE_CONFIG")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("the sidecar started with {config_text:?} instead of refusing it");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut stderr = String::new();
    if let Some(mut e) = child.stderr.take() {
        use std::io::Read;
        let _ = e.read_to_string(&mut stderr);
    }
    (status.code(), stderr)
}

#[test]
fn slo_rules_the_sidecar_cannot_serve_are_refused_at_start_naming_the_key() {
    // The default retention (1h) cannot hold the 3-day window.
    let (code, stderr) = refused(SLO_99_5);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("slo: the SLO rules read 3d of history"), "{stderr}");
    assert!(stderr.contains("but retention is 1h; raise retention to at least 3d"), "{stderr}");
    // A threshold that is not one of custom buckets.
    let (code, stderr) = refused(&format!("retention: 3d\nduration_buckets: [0.1, 1]\n{SLO_99_5}"));
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("slo.latency.threshold: 500ms is not a bucket of duration_buckets [0.1, 1]"), "{stderr}");
    // A period whose 5s-equivalent window holds fewer than two samples.
    let (code, stderr) = refused("slo: {period: 12h}\nretention: 2h\nsample_interval: 5s\n");
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("slo.period: the shortest SLO window is 5s"), "{stderr}");
}
