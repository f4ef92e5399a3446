//! `redline readiness-check` end to end: a service behind a real sidecar (real traffic, its own
//! stdout as the log), the shipped symptom rules and their unit tests, a Grafana dashboard, a
//! coverage report and a real receiver pass every configured check; taking each piece away
//! fails exactly that check, with a summary saying why. Exit codes and the JUnit output (read
//! by PyPI's junitparser) are checked too.

use crate::common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::receiver::{Receiver, ZERO_TIME, webhook, webhook_alert};
use common::{Sidecar, Upstream, client, free_port, redline_bin, report_check};
use serde_json::{Value, json};

const RULES_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/rules");

/// A Grafana dashboard for `checkout` with a panel per RED/USE aspect; `without` drops one.
fn dashboard(without: Option<&str>) -> Value {
    let panels = [
        (
            "Request rate",
            r#"sum by (http_route) (rate(http_server_request_duration_seconds_count{service="$service"}[$__rate_interval]))"#,
        ),
        (
            "Errors",
            r#"sum(rate(http_server_request_duration_seconds_count{service="$service",error_type!=""}[$__rate_interval])) / sum(rate(http_server_request_duration_seconds_count{service="$service"}[$__rate_interval]))"#,
        ),
        (
            "Duration p99",
            r#"histogram_quantile(0.99, sum by (le) (rate(http_server_request_duration_seconds_bucket{service="$service"}[$__rate_interval])))"#,
        ),
        ("Saturation", r#"sum(http_server_active_requests{service="$service"})"#),
    ];
    let panels: Vec<Value> = panels
        .iter()
        .filter(|(title, _)| Some(*title) != without)
        .enumerate()
        .map(|(i, (title, expr))| {
            json!({"id": i + 1, "type": "timeseries", "title": title,
                   "datasource": {"type": "prometheus", "uid": "prom"},
                   "targets": [{"refId": "A", "expr": expr}]})
        })
        .collect();
    json!({
        "title": "checkout: RED and USE", "uid": "checkout-red", "tags": ["checkout", "redline"],
        "schemaVersion": 39,
        "templating": {"list": [{"name": "service", "type": "query", "query": "label_values(service)"}]},
        "panels": [{"type": "row", "title": "Requests", "panels": panels}]
    })
}

/// LCOV for `covered` of 10 lines of one file.
fn lcov(covered: usize) -> String {
    let mut s = String::from("TN:\nSF:src/lib.rs\n");
    for line in 1..=10 {
        s.push_str(&format!("DA:{line},{}\n", usize::from(line <= covered)));
    }
    s.push_str(&format!("LF:10\nLH:{covered}\nend_of_record\n"));
    s
}

struct Setup {
    dir: tempfile::TempDir,
}

impl Setup {
    fn path(&self, p: &str) -> PathBuf {
        self.dir.path().join(p)
    }

    fn write(&self, p: &str, text: &str) {
        let path = self.path(p);
        std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        std::fs::write(path, text).expect("write fixture");
    }

    /// Rules, dashboard, coverage and log as a ready service has them.
    fn complete(sidecar_log: &str) -> Setup {
        let s = Setup { dir: tempfile::tempdir().expect("temp dir") };
        for f in ["redline-symptoms.yml", "redline-symptoms_test.yml", "redline-monitoring.yml"] {
            s.write(&format!("rules/{f}"), &std::fs::read_to_string(Path::new(RULES_DIR).join(f)).expect("rules"));
        }
        s.write("dashboards/checkout.json", &dashboard(None).to_string());
        s.write("coverage/lcov.info", &lcov(9));
        s.write("app.jsonl", sidecar_log);
        s
    }

    fn config(&self, name: &str, metrics_url: &str, receiver_url: &str) -> PathBuf {
        let d = self.dir.path().display();
        let text = format!(
            "service: checkout\nversion: 1.2.3\nnamespace: shop\n\
             rules: [\"{d}/rules/redline-symptoms.yml\"]\n\
             readiness:\n  coverage: {{report: {d}/coverage/lcov.info, min: 80}}\n  metrics_url: {metrics_url}\n\
             \x20 logs: {{file: {d}/app.jsonl, sample: 200}}\n  dashboards: {d}/dashboards\n  receiver_url: {receiver_url}\n"
        );
        let path = self.path(name);
        std::fs::write(&path, text).expect("write config");
        path
    }
}

fn readiness(config: &Path, extra: &[&str], token_file: &Path) -> Output {
    Command::new(redline_bin())
        .args(["readiness-check", "--service", "checkout", "--config"])
        .arg(config)
        .args(extra)
        .env_remove("REDLINE_CONFIG")
        .env("REDLINE_RECEIVER_BEARER_TOKEN_FILE", token_file)
        .output()
        .expect("run redline readiness-check")
}

/// Runs the check with JSON output; returns (exit code, report).
fn report(config: &Path, token_file: &Path) -> (i32, Value) {
    let out = readiness(config, &["--format", "json"], token_file);
    let text = String::from_utf8_lossy(&out.stdout);
    let v: Value = serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {text}\nstderr: {}", String::from_utf8_lossy(&out.stderr)));
    (out.status.code().expect("exit code"), v)
}

/// The same checklist over HTTP: the receiver's Argo gate, as (0 ready | 1 not, report).
async fn gate_report(receiver: &Receiver) -> (i32, Value) {
    let r = receiver.get_json("/api/v1/readiness/checkout").await;
    (if r["ready"] == true { 0 } else { 1 }, r)
}

/// Flagger's confirm-promotion webhook: (status, body).
async fn confirm_promotion(receiver: &Receiver) -> (u16, String) {
    let payload = json!({"name": "checkout", "namespace": "shop", "phase": "Progressing", "checksum": "1"});
    let r = client()
        .post(receiver.url("/api/v1/flagger/confirm-promotion"))
        .json(&payload)
        .send()
        .await
        .expect("POST confirm-promotion");
    (r.status().as_u16(), r.text().await.expect("body"))
}

/// Runs the CLI and the receiver's gate on the same config; they must agree check by check.
async fn both(config: &Path, token_file: &Path, receiver: &Receiver) -> (i32, Value) {
    let cli = report(config, token_file);
    let (code, http) = gate_report(receiver).await;
    assert_eq!(statuses(&http), statuses(&cli.1), "CLI and receiver gate disagree:\n{http:#}\n{:#}", cli.1);
    assert_eq!(code, cli.0, "{http:#}");
    assert_eq!(http["blocking_failures"], cli.1["blocking_failures"]);
    let ids = cli.1["blocking_failures"].as_array().expect("blocking_failures");
    let reasons = http["reasons"].as_array().expect("reasons");
    assert_eq!(reasons.len(), ids.len(), "one reason per blocking failure: {http:#}");
    for (reason, id) in reasons.iter().zip(ids) {
        let id = id.as_str().expect("id");
        let summary = report_check(&http, id)["summary"].as_str().expect("summary");
        assert_eq!(reason.as_str(), Some(format!("{id}: {summary}").as_str()), "{http:#}");
    }
    let (status, body) = confirm_promotion(receiver).await;
    assert_eq!(status, if code == 0 { 200 } else { 403 }, "{body}");
    for id in cli.1["blocking_failures"].as_array().expect("ids") {
        assert!(body.contains(&format!("{}: ", id.as_str().expect("id"))), "403 body names {id}: {body}");
    }
    cli
}

fn statuses(report: &Value) -> Vec<(String, String)> {
    report["checks"]
        .as_array()
        .expect("checks")
        .iter()
        .map(|c| (c["id"].as_str().expect("id").to_string(), c["status"].as_str().expect("status").to_string()))
        .collect()
}

/// What a complete setup yields: every configured check passes; tracing and canary are not
/// configured here (no Jaeger, no --baseline/--canary) and say so.
fn expected_all_pass() -> Vec<(String, String)> {
    [
        ("tests.coverage", "pass"),
        ("metrics.red", "pass"),
        ("metrics.use", "pass"),
        ("logging.structured", "pass"),
        ("tracing", "skip"),
        ("dashboard", "pass"),
        ("alerts.symptoms", "pass"),
        ("alerts.tests", "pass"),
        ("alerts.firing", "pass"),
        ("canary", "skip"),
    ]
    .iter()
    .map(|(a, b)| (a.to_string(), b.to_string()))
    .collect()
}

/// Asserts that exactly `id` failed, with a summary containing `why`, and the exit code is 1.
fn assert_only_failure(what: &str, (code, r): (i32, Value), id: &str, why: &str) {
    let mut want = expected_all_pass();
    for (i, s) in &mut want {
        if i == id {
            *s = "fail".into();
        }
    }
    assert_eq!(statuses(&r), want, "{what}: exactly {id} must fail:\n{r:#}");
    let summary = report_check(&r, id)["summary"].as_str().expect("summary");
    assert!(summary.contains(why), "{what}: summary of {id} should say {why:?}, got {summary:?}");
    assert_eq!(code, 1, "{what}: not ready is exit 1");
    assert_eq!(r["ready"], false);
    assert_eq!(r["blocking_failures"], json!([id]));
}

async fn traffic(sidecar: &Sidecar) {
    for i in 0..20 {
        let r = client().get(sidecar.url(&format!("/users/{i}"))).send().await.expect("request through the sidecar");
        assert_eq!(r.status(), 200);
    }
    sidecar.stdout_until("20 access lines", |l| l.matches("\"target\":\"access\"").count() >= 20).await;
    sidecar.metrics_until("the requests counted", |m| m.contains("http_server_request_duration_seconds_count{")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ready_service_passes_and_each_missing_piece_fails_exactly_its_check() {
    let upstream = Upstream::start().await;
    let pid = std::process::id().to_string();
    let rules = format!("{RULES_DIR}/redline-symptoms.yml");
    // The test process stands in for the app, so redline_app_* (USE of the app) are exposed.
    let sidecar = Sidecar::start(&upstream.url(), &["--app-pid", &pid, "--rules", &rules]).await;
    traffic(&sidecar).await;
    let setup = Setup::complete(&sidecar.stdout());
    let metrics_url = sidecar.admin_url("/metrics");
    // The receiver runs the same checklist for its gates, from the same config file.
    let port = free_port();
    let config = setup.config("redline.yaml", &metrics_url, &format!("http://127.0.0.1:{port}"));
    let db = tempfile::tempdir().expect("temp dir");
    let db = db.path().join("rx.db").display().to_string();
    let config_arg = config.display().to_string();
    let receiver = Receiver::start_on(port, &db, &["--readiness-config", &config_arg]).await;
    let token = receiver.token_file.clone();
    let (code, r) = both(&config, &token, &receiver).await;
    assert_eq!(statuses(&r), expected_all_pass(), "{r:#}");
    assert_eq!((code, &r["ready"], r["schema_version"].as_u64()), (0, &json!(true), Some(1)), "{r:#}");
    assert!(report_check(&r, "tests.coverage")["summary"].as_str().expect("s").contains("90.0%"), "{r:#}");
    assert!(report_check(&r, "tracing")["summary"].as_str().expect("s").contains("no Jaeger configured"));
    assert_eq!(report_check(&r, "metrics.red")["evidence"], json!([metrics_url]));

    // Coverage below the minimum.
    setup.write("coverage/lcov.info", &lcov(7));
    assert_only_failure(
        "70% coverage",
        both(&config, &token, &receiver).await,
        "tests.coverage",
        "70.0% (7/10 lines, LCOV) is below the 80% minimum",
    );
    setup.write("coverage/lcov.info", &lcov(9));

    // A sidecar that has served nothing: the RED histogram has no samples yet.
    let idle = Sidecar::start(&upstream.url(), &["--app-pid", &pid]).await;
    let idle_config = setup.config("idle.yaml", &idle.admin_url("/metrics"), &receiver.base_url());
    assert_only_failure(
        "no traffic",
        report(&idle_config, &token),
        "metrics.red",
        "http_server_request_duration_seconds_count",
    );
    drop(idle);

    // An unstructured line in the log.
    let log = sidecar.stdout();
    setup.write("app.jsonl", &format!("{log}starting server on port 8080\n"));
    let bad_line = format!("line {}: not JSON", log.lines().count() + 1);
    assert_only_failure("plain-text log line", both(&config, &token, &receiver).await, "logging.structured", &bad_line);
    setup.write("app.jsonl", &sidecar.stdout());

    // A dashboard without a saturation panel.
    setup.write("dashboards/checkout.json", &dashboard(Some("Saturation")).to_string());
    assert_only_failure(
        "no saturation panel",
        both(&config, &token, &receiver).await,
        "dashboard",
        "no panel for saturation",
    );
    setup.write("dashboards/checkout.json", &dashboard(None).to_string());

    // The latency alerts (HTTP and gRPC) without their runbooks (their unit tests adjusted,
    // so they still pass).
    let without_runbook = |f: &str| -> String {
        std::fs::read_to_string(Path::new(RULES_DIR).join(f))
            .expect("rules")
            .lines()
            .filter(|l| !l.contains("#redlinehighlatency\"") && !l.contains("#redlinegrpchighlatency\""))
            .map(|l| format!("{l}\n"))
            .collect()
    };
    setup.write("rules/redline-symptoms.yml", &without_runbook("redline-symptoms.yml"));
    setup.write("rules/redline-symptoms_test.yml", &without_runbook("redline-symptoms_test.yml"));
    assert_only_failure(
        "latency alert without runbook",
        both(&config, &token, &receiver).await,
        "alerts.symptoms",
        "no complete alert for latency",
    );
    let shipped = |f: &str| std::fs::read_to_string(Path::new(RULES_DIR).join(f)).expect("rules");
    setup.write("rules/redline-symptoms.yml", &shipped("redline-symptoms.yml"));

    // A unit test expecting the wrong value.
    setup.write(
        "rules/redline-symptoms_test.yml",
        &shipped("redline-symptoms_test.yml").replacen("severity: \"critical\"", "severity: \"page\"", 1),
    );
    assert_only_failure(
        "failing rule unit test",
        both(&config, &token, &receiver).await,
        "alerts.tests",
        "1 of 1 rule unit-test file(s) fail",
    );
    setup.write("rules/redline-symptoms_test.yml", &shipped("redline-symptoms_test.yml"));

    // A critical alert firing for the service, stored by the receiver.
    let alert = webhook_alert(
        "firing",
        &json!({"alertname": "RedlineHighErrorRatio", "service": "checkout", "namespace": "shop", "severity": "critical"}),
        "2026-01-01T00:00:00Z",
        ZERO_TIME,
    );
    let r =
        receiver.post("/api/v1/alertmanager", webhook("firing", "{}:{alertname=\"X\"}", vec![alert]).to_string()).await;
    assert_eq!(r.status(), 200);
    assert_only_failure(
        "critical alert firing",
        both(&config, &token, &receiver).await,
        "alerts.firing",
        "RedlineHighErrorRatio",
    );

    // Non-blocking: the same failure no longer stops promotion.
    let text = std::fs::read_to_string(&config).expect("config")
        + "  blocking: [tests.coverage, metrics.red, logging.structured, dashboard, alerts.symptoms, alerts.tests]\n";
    std::fs::write(&config, text).expect("config");
    let (code, r) = both(&config, &token, &receiver).await;
    assert_eq!(
        (code, &r["ready"], &report_check(&r, "alerts.firing")["blocks"]),
        (0, &json!(true), &json!(false)),
        "{r:#}"
    );
}

/// Runs `--only tests.coverage` with extra flags and environment; (exit code, summary).
fn coverage_only(args: &[&str], env: &[(&str, &str)]) -> (i32, String) {
    let mut cmd = Command::new(redline_bin());
    cmd.args(["readiness-check", "--service", "checkout", "--only", "tests.coverage", "--format", "json"])
        .args(args)
        .env_remove("REDLINE_CONFIG")
        .env_remove("REDLINE_READINESS_COVERAGE_MIN")
        .env_remove("REDLINE_READINESS_COVERAGE_REPORT");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().expect("run redline readiness-check");
    let r: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&out.stderr)));
    let summary = report_check(&r, "tests.coverage")["summary"].as_str().expect("summary").to_string();
    (out.status.code().expect("exit code"), summary)
}

#[test]
fn readiness_keys_as_flags_and_environment_variables() {
    let dir = tempfile::tempdir().expect("temp dir");
    let report = dir.path().join("lcov.info");
    std::fs::write(&report, lcov(9)).expect("write");
    let report = report.to_str().expect("utf-8");
    let (code, summary) = coverage_only(&["--coverage-report", report], &[]);
    assert_eq!(code, 0, "90% meets the default 80%: {summary}");
    let (code, summary) = coverage_only(&[], &[("REDLINE_READINESS_COVERAGE_REPORT", report)]);
    assert_eq!(code, 0, "the report from the environment: {summary}");
    let (code, summary) = coverage_only(&["--coverage-report", report], &[("REDLINE_READINESS_COVERAGE_MIN", "95")]);
    assert_eq!(code, 1, "{summary}");
    assert!(summary.contains("below the 95% minimum"), "{summary}");
    let (code, summary) = coverage_only(
        &["--coverage-report", report, "--coverage-min", "50"],
        &[("REDLINE_READINESS_COVERAGE_MIN", "95")],
    );
    assert_eq!(code, 0, "the flag wins over the environment: {summary}");
    let config = dir.path().join("redline.yaml");
    std::fs::write(&config, format!("readiness:\n  coverage: {{report: {report}, min: 95}}\n")).expect("write");
    let config = config.to_str().expect("utf-8");
    assert_eq!(coverage_only(&["--config", config], &[]).0, 1, "the file's 95%");
    let (code, summary) = coverage_only(&["--config", config], &[("REDLINE_READINESS_COVERAGE_MIN", "85")]);
    assert_eq!(code, 0, "the environment wins over the file: {summary}");
}

#[test]
fn usage_and_config_errors_exit_2_with_a_message() {
    let dir = tempfile::tempdir().expect("temp dir");
    let none = dir.path().join("none");
    let bad = dir.path().join("bad.yaml");
    std::fs::write(&bad, "readiness:\n  coverage: {min: 180}\n").expect("write");
    let unknown_key = dir.path().join("unknown.yaml");
    std::fs::write(&unknown_key, "readiness:\n  coverag: {min: 80}\n").expect("write");
    let blocking = dir.path().join("blocking.yaml");
    std::fs::write(&blocking, "readiness:\n  blocking: [tests.coverage, alerts.fire]\n").expect("write");
    for (args, want) in [
        (vec!["--config", bad.to_str().expect("utf-8")], "readiness.coverage.min"),
        (vec!["--config", unknown_key.to_str().expect("utf-8")], "coverag"),
        (vec!["--config", blocking.to_str().expect("utf-8")], "unknown check \"alerts.fire\""),
        (vec!["--config", none.to_str().expect("utf-8")], "cannot read"),
        (vec!["--only", "tests.coverag"], "--only: unknown check"),
        (vec!["--format", "yaml"], "invalid value 'yaml'"),
        (vec!["--baseline", "1"], "--canary"),
        (vec!["--coverage-min", "180"], "expected a percentage from 0 to 100"),
        (vec!["--metrics-url", "ftp://metrics"], "expected an http:// or https:// URL"),
        (vec!["--blocking", "tests.coverag"], "--blocking: unknown check"),
        (vec!["--tolerance=-0.1"], "--tolerance must be a non-negative number, got -0.1"),
        (vec!["--confidence", "1"], "--confidence must be between 0 and 1"),
    ] {
        let out = Command::new(redline_bin())
            .args(["readiness-check", "--service", "checkout"])
            .args(&args)
            .env_remove("REDLINE_CONFIG")
            .output()
            .expect("run");
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains(want), "{args:?}: stderr should mention {want:?}: {err}");
    }
}

/// Without a config nothing is configured: the mandatory items fail, with what to set.
#[test]
fn an_unconfigured_service_is_not_ready_and_says_what_to_configure() {
    let dir = tempfile::tempdir().expect("temp dir");
    let config = dir.path().join("redline.yaml");
    let port = common::free_port();
    std::fs::write(&config, format!("service: checkout\nadmin: 127.0.0.1:{port}\n")).expect("write");
    let out = Command::new(redline_bin())
        .args(["readiness-check", "--service", "checkout", "--format", "json", "--config"])
        .arg(&config)
        .env_remove("REDLINE_CONFIG")
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(1));
    let r: Value = serde_json::from_slice(&out.stdout).expect("json");
    assert!(report_check(&r, "tests.coverage")["summary"].as_str().expect("s").contains("readiness.coverage.report"));
    assert!(report_check(&r, "logging.structured")["summary"].as_str().expect("s").contains("readiness.logs.file"));
    assert_eq!(report_check(&r, "metrics.red")["status"], "error", "{r:#}");
    assert_eq!(report_check(&r, "metrics.red")["evidence"], json!([format!("http://127.0.0.1:{port}/metrics")]));
    assert_eq!(report_check(&r, "alerts.firing")["status"], "skip");

    // --only runs just those; the others are reported as not selected.
    let out = Command::new(redline_bin())
        .args(["readiness-check", "--service", "checkout", "--only", "tracing,canary", "--config"])
        .arg(&config)
        .env_remove("REDLINE_CONFIG")
        .output()
        .expect("run");
    let table = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{table}");
    assert!(table.starts_with("checkout: READY\n"), "{table}");
    assert!(table.contains("SKIP   tests.coverage      blocking  not selected (--only)"), "{table}");
    assert!(!table.contains('\x1b'), "no colour when stdout is not a terminal");
}

/// PyPI's junitparser (a real JUnit consumer) reads the JUnit report: one case per check.
#[test]
fn junit_output_is_read_by_junitparser() {
    let dir = tempfile::tempdir().expect("temp dir");
    let config = dir.path().join("redline.yaml");
    std::fs::write(&config, format!("service: checkout\nadmin: 127.0.0.1:{}\n", common::free_port())).expect("write");
    let out = Command::new(redline_bin())
        .args(["readiness-check", "--service", "checkout", "--format", "junit", "--config"])
        .arg(&config)
        .env_remove("REDLINE_CONFIG")
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(1));
    let xml = dir.path().join("readiness.xml");
    std::fs::write(&xml, &out.stdout).expect("write junit");
    let script = r#"
import sys
from junitparser import JUnitXml, Failure, Error, Skipped
xml = JUnitXml.fromfile(sys.argv[1])
for suite in xml:
    for case in suite:
        kinds = [type(r).__name__ for r in case.result]
        print(case.name, ",".join(kinds) or "pass", case.result[0].message if case.result else "")
    print("TOTAL", suite.tests, suite.failures, suite.errors, suite.skipped)
"#;
    let out = Command::new(junit_python()).arg("-c").arg(script).arg(&xml).output().expect("run python");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "junitparser failed: {}", String::from_utf8_lossy(&out.stderr));
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 11, "{text}");
    assert!(lines[0].starts_with("tests.coverage Failure no coverage report configured"), "{text}");
    assert!(lines[1].starts_with("metrics.red Error GET http://127.0.0.1:"), "{text}");
    assert!(lines[4].starts_with("tracing Skipped no Jaeger configured"), "{text}");
    assert!(text.contains("\nTOTAL 10 "), "{text}");
}

/// A venv with junitparser from PyPI, created once under the target dir.
fn junit_python() -> PathBuf {
    const PACKAGE: &str = "junitparser==5.0.3";
    let venv = Path::new(env!("CARGO_TARGET_TMPDIR")).join("junitparser-venv");
    let python = venv.join("bin").join("python");
    let works =
        |p: &Path| Command::new(p).args(["-c", "import junitparser"]).output().is_ok_and(|o| o.status.success());
    if works(&python) {
        return python;
    }
    let base = common::require_tool("python3", "python3 python3-venv");
    let tmp = venv.with_file_name(format!("junitparser-venv.tmp-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&tmp);
    let out = Command::new(&base).arg("-m").arg("venv").arg(&tmp).output().expect("python3 -m venv");
    assert!(
        out.status.success(),
        "python3 -m venv failed (apt-get install -y python3-venv): {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = Command::new(tmp.join("bin/python"))
        .args(["-m", "pip", "install", "--quiet", "--disable-pip-version-check", PACKAGE])
        .output()
        .expect("pip");
    assert!(
        out.status.success(),
        "pip install {PACKAGE} failed (needs PyPI): {}",
        String::from_utf8_lossy(&out.stderr)
    );
    if std::fs::rename(&tmp, &venv).is_err() {
        let _ = std::fs::remove_dir_all(&tmp);
    }
    assert!(works(&python), "the venv at {} cannot import junitparser", venv.display());
    python
}

/// Unit tests are found by the rule files they load (promtool's `rule_files`), not by name; a
/// rule file no test loads is a warning, which does not block.
#[test]
fn rule_files_without_unit_tests_are_a_warning() {
    let s = Setup { dir: tempfile::tempdir().expect("temp dir") };
    for f in ["redline-symptoms.yml", "redline-symptoms_test.yml", "redline-monitoring.yml"] {
        s.write(&format!("rules/{f}"), &std::fs::read_to_string(Path::new(RULES_DIR).join(f)).expect("rules"));
    }
    s.write(
        "rules/extra.yml",
        "groups:\n  - name: extra\n    rules:\n      - alert: X\n        expr: up == 0\n        for: 1m\n",
    );
    let d = s.dir.path().display();
    let config = s.path("redline.yaml");
    std::fs::write(&config, format!("service: checkout\nrules: [\"{d}/rules/*.yml\"]\n")).expect("config");
    let out = Command::new(redline_bin())
        .args(["readiness-check", "--service", "checkout", "--format", "json", "--only", "alerts.tests", "--config"])
        .arg(&config)
        .env_remove("REDLINE_CONFIG")
        .output()
        .expect("run");
    let r: Value = serde_json::from_slice(&out.stdout).expect("json");
    let c = report_check(&r, "alerts.tests");
    assert_eq!((out.status.code(), &c["status"]), (Some(0), &json!("warn")), "{r:#}");
    let summary = c["summary"].as_str().expect("summary");
    assert!(summary.starts_with("1 rule unit-test file(s) pass; no unit test loads "), "{summary}");
    assert!(summary.ends_with("/rules/extra.yml"), "{summary}");
}
