//! Errors a user can act on, from the real binary: each message names the file, line, key,
//! flag or field at fault and what was expected, never a library's internals; exit codes are
//! 0 success, 1 a negative verdict, 2 a usage, configuration, bind or start failure.

use crate::common;

use std::path::Path;
use std::process::{Command, Stdio};

use common::redline_bin;

/// What a finished `redline` run left: its exit code and both streams.
struct Ran {
    code: i32,
    stdout: String,
    stderr: String,
}

fn ran(cmd: &mut Command) -> Ran {
    let out = cmd
        .env_remove("REDLINE_CONFIG")
        .env_remove("REDLINE_PROMETHEUS_URL")
        .stdin(Stdio::null())
        .output()
        .expect("run redline");
    Ran {
        code: out.status.code().expect("exit code (not killed by a signal)"),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

fn redline(args: &[&str]) -> Ran {
    ran(Command::new(redline_bin()).args(args))
}

/// `redline sidecar --config FILE` with `text` in FILE (named `redline.yaml`).
fn sidecar_with_config(dir: &Path, text: &str) -> Ran {
    let cfg = dir.join("redline.yaml");
    std::fs::write(&cfg, text).expect("write config");
    ran(Command::new(redline_bin()).arg("sidecar").arg("--config").arg(&cfg))
}

/// A config that would start: the cases below add one bad line to it.
fn config(extra: &str) -> String {
    format!(
        "service: checkout\nlisten: 127.0.0.1:{}\nadmin: 127.0.0.1:{}\n{extra}",
        common::free_port(),
        common::free_port()
    )
}

/// No message may show the YAML parser's internals or Rust type names.
fn assert_no_internals(text: &str) {
    for internal in ["DuplicateKeyPolicy", "Options", "<input>", "invalid u64", "struct ", "Wire", "builder error"] {
        assert!(!text.contains(internal), "internal detail {internal:?} in: {text}");
    }
}

#[test]
fn config_duplicate_key_names_file_line_column_and_key() {
    let dir = tempfile::tempdir().expect("temp dir");
    let r = sidecar_with_config(dir.path(), &config("listen: 127.0.0.1:1\n"));
    assert_eq!(r.code, 2, "{}", r.stderr);
    let want = format!("{}:4:1: duplicate key `listen`", dir.path().join("redline.yaml").display());
    assert!(r.stderr.contains(&want), "want {want:?} in: {}", r.stderr);
    assert!(r.stdout.is_empty(), "errors go to stderr: {}", r.stdout);
    assert_no_internals(&r.stderr);
    // Nested keys are named with their path.
    let r = sidecar_with_config(dir.path(), &config("slo:\n  availability: 99\n  availability: 99.9\n"));
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(r.stderr.contains("redline.yaml:6:3: duplicate key `slo.availability`"), "{}", r.stderr);
    assert_no_internals(&r.stderr);
}

#[test]
fn config_wrong_type_names_the_key_and_what_was_expected() {
    let dir = tempfile::tempdir().expect("temp dir");
    let r = sidecar_with_config(dir.path(), &config("max_routes: abc\n"));
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(
        r.stderr.contains("redline.yaml:4:13: max_routes: expected a whole number (0 or more), found \"abc\""),
        "{}",
        r.stderr
    );
    assert_no_internals(&r.stderr);
    for (line, want) in [
        ("slo:\n  latency:\n    threshold: fast\n", "redline.yaml:6:16: slo.latency.threshold: expected a duration"),
        (
            "tracing:\n  sampler_ratio: lots\n",
            "redline.yaml:5:18: tracing.sampler_ratio: expected a number, found \"lots\"",
        ),
        ("routes: /users/{id}\n", "redline.yaml:4:9: routes: expected a list, found \"/users/{id}\""),
        ("tracing: on\n", "redline.yaml:4:10: tracing: expected a mapping of keys (key: value), found \"on\""),
        (
            "upstream_protocol: h3\n",
            "redline.yaml:4:20: upstream_protocol: expected one of auto, http1, http2, found \"h3\"",
        ),
        ("admn: 127.0.0.1:1\n", "redline.yaml:4:1: unknown key `admn`; expected one of service,"),
    ] {
        let r = sidecar_with_config(dir.path(), &config(line));
        assert_eq!(r.code, 2, "{line}: {}", r.stderr);
        assert!(r.stderr.contains(want), "{line}: want {want:?} in: {}", r.stderr);
        assert_no_internals(&r.stderr);
    }
}

/// The message's position names the file given, not serde-saphyr's `<input>`; the readiness
/// check reads the same file through the same parser.
#[test]
fn config_errors_name_the_file_not_input() {
    let dir = tempfile::tempdir().expect("temp dir");
    let cfg = dir.path().join("checkout.yaml");
    std::fs::write(&cfg, "service: checkout\nreadiness:\n  coverage:\n    min: high\n").expect("write config");
    let want = format!("{}:4:10: readiness.coverage.min: expected a number, found \"high\"", cfg.display());
    let r = ran(Command::new(redline_bin()).arg("sidecar").arg("--config").arg(&cfg));
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(r.stderr.contains(&want), "{}", r.stderr);
    let r = ran(Command::new(redline_bin()).args(["readiness-check", "--service", "checkout", "--config"]).arg(&cfg));
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(r.stderr.contains(&want), "{}", r.stderr);
    assert_no_internals(&r.stderr);
}

/// No timeout key has an "off": 0 is refused at validation naming the key and the minimum,
/// from the file and from a flag alike.
#[test]
fn zero_timeouts_are_refused_naming_the_key_and_the_minimum() {
    let dir = tempfile::tempdir().expect("temp dir");
    let r = sidecar_with_config(dir.path(), &config("upstream_timeout: 0s\n"));
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(
        r.stderr.contains("upstream_timeout: expected at least 10ms, got 0s; 0 does not turn the timeout off"),
        "{}",
        r.stderr
    );
    let r = sidecar_with_config(dir.path(), &config("tracing:\n  export_timeout: 0s\n"));
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(r.stderr.contains("tracing.export_timeout: expected at least 10ms, got 0s"), "{}", r.stderr);
    let r = redline(&["sidecar", "--service", "checkout", "--idle-timeout", "0s"]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(r.stderr.contains("idle_timeout: expected at least 10ms, got 0s"), "{}", r.stderr);
}

/// Bad webhook bodies get 400 with a message in Alertmanager's terms naming the field, never a
/// Rust type (`expected struct WebhookWire with 10 elements`), and nothing is stored.
#[tokio::test]
async fn receiver_bad_bodies_get_400_in_alertmanager_terms() {
    use common::receiver::{Receiver, TestStore, ZERO_TIME, webhook, webhook_alert};
    let store = TestStore::new(common::receiver::Backend::Sqlite);
    let r = Receiver::start(&store.db, &[]).await;
    let alert = webhook_alert(
        "firing",
        &serde_json::json!({"alertname": "X", "service": "s"}),
        "2024-05-01T10:00:00Z",
        ZERO_TIME,
    );
    let good = webhook("firing", "{}:{alertname=\"X\"}", vec![alert.clone()]);
    let with = |key: &str, value: serde_json::Value| {
        let mut body = good.clone();
        body[key] = value;
        body.to_string()
    };
    let mut bad_alert = alert.clone();
    bad_alert["labels"] = serde_json::json!(["alertname", "X"]);
    let cases = [
        (
            "/api/v1/alertmanager",
            "[]".to_string(),
            "body must be an Alertmanager webhook JSON object (version \"4\"), got an array",
        ),
        (
            "/api/v1/alertmanager",
            "\"4\"".to_string(),
            "body must be an Alertmanager webhook JSON object (version \"4\"), got a string",
        ),
        (
            "/api/v1/alertmanager",
            with("alerts", serde_json::json!([[]])),
            "alerts[0]: invalid type: array, expected an alert object",
        ),
        (
            "/api/v1/alertmanager",
            with("status", serde_json::json!(1)),
            "status: invalid type: integer `1`, expected \"firing\" or \"resolved\"",
        ),
        (
            "/api/v1/alertmanager",
            with("truncatedAlerts", serde_json::json!("none")),
            "truncatedAlerts: invalid type: string \"none\"",
        ),
        (
            "/api/v1/alertmanager",
            with("alerts", serde_json::json!([bad_alert])),
            "alerts[0].labels: invalid type: array, expected an object",
        ),
        ("/api/v1/alertmanager", with("version", serde_json::json!("3")), "version: expected \"4\", got \"3\""),
        (
            "/api/v2/alerts",
            "{}".to_string(),
            "body must be a JSON array of alerts (Alertmanager API v2 PostableAlerts), got an object",
        ),
        ("/api/v2/alerts", "[[]]".to_string(), "[0]: invalid type: array, expected an alert object"),
    ];
    for (path, body, want) in cases {
        let resp = r.post(path, body.clone()).await;
        assert_eq!(resp.status(), 400, "{path} {body}");
        let answer: serde_json::Value = resp.json().await.expect("JSON error answer");
        let message = answer["error"].as_str().expect("error message").to_string();
        assert!(message.contains(want), "{path} {body}\n got: {message}\nwant: {want}");
        assert_no_internals(&message);
        assert!(!message.contains("elements") && !message.contains("sequence"), "{message}");
    }
    assert!(r.alerts("").await.is_empty(), "nothing stored");
    // The good body is stored.
    assert_eq!(r.post("/api/v1/alertmanager", good.to_string()).await.status(), 200);
}
