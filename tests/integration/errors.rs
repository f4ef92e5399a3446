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
    let out = cmd.stdin(Stdio::null()).output().expect("run redline");
    Ran {
        code: out.status.code().expect("exit code (not killed by a signal)"),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// `redline` without the variables that would stand in for flags the tests leave out.
fn command() -> Command {
    let mut cmd = Command::new(redline_bin());
    cmd.env_remove("REDLINE_CONFIG").env_remove("REDLINE_PROMETHEUS_URL");
    cmd
}

fn redline(args: &[&str]) -> Ran {
    ran(command().args(args))
}

/// `redline sidecar --config FILE` with `text` in FILE (named `redline.yaml`).
fn sidecar_with_config(dir: &Path, text: &str) -> Ran {
    let cfg = dir.join("redline.yaml");
    std::fs::write(&cfg, text).expect("write config");
    ran(command().arg("sidecar").arg("--config").arg(&cfg))
}

/// `canary judge` with every flag but `--prometheus` and the optional ones.
const JUDGE: [&str; 8] = ["canary", "judge", "--service", "checkout", "--baseline", "1.0", "--canary", "1.1"];

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
    let r = ran(command().arg("sidecar").arg("--config").arg(&cfg));
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(r.stderr.contains(&want), "{}", r.stderr);
    let r = ran(command().args(["readiness-check", "--service", "checkout", "--config"]).arg(&cfg));
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
    // The other commands' timeouts and windows: a usage error naming the flag, not a run in
    // which every request times out (readiness-check used to report NOT READY).
    for args in [
        &["readiness-check", "--service", "checkout", "--timeout", "0s"][..],
        &["receiver", "--readiness-timeout", "0s"],
        &[&JUDGE[..], &["--prometheus", "http://p:9090", "--rate-window", "0s"]].concat()[..],
    ] {
        let r = redline(args);
        assert_eq!(r.code, 2, "{args:?}: {}", r.stderr);
        let flag = args[args.len() - 2];
        assert!(r.stderr.contains(flag) && r.stderr.contains("expected a duration above 0"), "{args:?}: {}", r.stderr);
    }
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

/// A Prometheus URL that is not http(s) is refused as a usage error naming the flag, before
/// any request (was reqwest's `builder error for url`, exit 2 only by luck of the edge).
#[test]
fn non_http_prometheus_url_names_the_flag() {
    for url in ["ftp://prometheus:9090", "prometheus:9090"] {
        let r = redline(&[&JUDGE[..], &["--prometheus", url]].concat());
        assert_eq!(r.code, 2, "{}", r.stderr);
        assert!(r.stderr.contains("--prometheus"), "{}", r.stderr);
        assert!(
            r.stderr.contains(&format!("expected an http:// or https:// URL such as http://host:9090, got {url:?}")),
            "{}",
            r.stderr
        );
        assert_no_internals(&r.stderr);
    }
    // The environment variable is checked the same way.
    let r = ran(command().args(JUDGE).env("REDLINE_PROMETHEUS_URL", "localhost:9090"));
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(r.stderr.contains("expected an http:// or https:// URL"), "{}", r.stderr);
    // readiness-check's key and flag too.
    let r = redline(&["readiness-check", "--service", "checkout", "--prometheus-url", "prometheus:9090"]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(r.stderr.contains("--prometheus-url") && r.stderr.contains("http:// or https://"), "{}", r.stderr);
}

/// Each layer adds one prefix: no `canary judge: canary judge:`, no reqwest layer repeating
/// the URL (`error sending request for url (...)` printed twice), no doubled store prefixes.
#[test]
fn each_layer_prefixes_once() {
    let unreachable = format!("http://127.0.0.1:{}", common::free_port());
    let r = redline(&[&JUDGE[..], &["--prometheus", &unreachable, "--confidence", "2"]].concat());
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert_eq!(r.stderr.trim(), "redline canary judge: --confidence must be between 0 and 1 (exclusive), got 2");
    let r = redline(&[&JUDGE[..], &["--prometheus", &unreachable]].concat());
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert_eq!(
        r.stderr.trim(),
        format!("redline canary judge: {unreachable}/api/v1/query_range: Connection refused (os error 111)")
    );
    let dir = tempfile::tempdir().expect("temp dir");
    let db = dir.path().join("missing-dir").join("redline.db");
    let r =
        ran(command().args(["receiver", "--listen", &format!("127.0.0.1:{}", common::free_port()), "--db"]).arg(&db));
    assert_eq!(r.code, 2, "a store that cannot be opened is a start failure: {}", r.stderr);
    let first = r.stderr.lines().next().unwrap_or_default();
    assert!(
        first.starts_with(&format!("redline receiver: --db {}: cannot open the store: SQLite", db.display())),
        "{first}"
    );
    assert_eq!(first.matches("cannot open").count(), 1, "{first}");
    assert_eq!(first.matches("redline receiver:").count(), 1, "{first}");
    // `alerts list` says why the receiver could not be asked (hyper's "client error (Connect)"
    // alone said nothing), and that is an error, not a verdict.
    let r = redline(&["alerts", "list", "--receiver", &unreachable]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(r.stderr.contains("Connection refused"), "{}", r.stderr);
    let r = redline(&["alerts", "list", "--receiver", "ftp://receiver:9095"]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(r.stderr.contains("--receiver: expected an http:// URL"), "{}", r.stderr);
}

/// PostgreSQL's own report reaches the user: severity, SQLSTATE and message (was `db error`).
#[tokio::test]
async fn postgres_failures_carry_the_servers_message_and_code() {
    let pg = common::receiver::PgCluster::start();
    let port = pg.port;
    let start = move |db: String| {
        let listen = format!("127.0.0.1:{}", common::free_port());
        tokio::task::spawn_blocking(move || ran(command().args(["receiver", "--listen", &listen, "--db", &db])))
    };
    let r = start(format!("postgres://postgres@127.0.0.1:{port}/nosuchdb")).await.expect("join");
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(r.stderr.contains("PostgreSQL FATAL 3D000: database \"nosuchdb\" does not exist"), "{}", r.stderr);
    assert!(!r.stderr.contains("db error"), "{}", r.stderr);
    let r = start(format!("postgres://nobody:secret@127.0.0.1:{port}/postgres")).await.expect("join");
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(r.stderr.contains("PostgreSQL FATAL 28000: role \"nobody\" does not exist"), "{}", r.stderr);
    assert!(!r.stderr.contains("secret"), "the password stays out of the message: {}", r.stderr);
}

/// Waits for a `redline sidecar` child to exit, failing if it comes up instead (its admin
/// `/healthz` answers): a second sidecar on a port in use must be refused at start.
async fn refused_at_start(mut child: std::process::Child, admin: &str) -> Ran {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let url = format!("http://{admin}/healthz");
    loop {
        if let Some(status) = child.try_wait().expect("wait sidecar") {
            let mut stderr = String::new();
            if let Some(mut e) = child.stderr.take() {
                use std::io::Read;
                let _ = e.read_to_string(&mut stderr);
            }
            return Ran { code: status.code().expect("exit code"), stdout: String::new(), stderr };
        }
        if common::client().get(&url).send().await.is_ok_and(|r| r.status() == 200) {
            let _ = child.kill();
            let _ = child.wait();
            panic!("the second sidecar started (its /healthz answers) instead of being refused");
        }
        assert!(std::time::Instant::now() < deadline, "the second sidecar neither started nor exited within 20s");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

fn spawn_sidecar(listen: &str, admin: &str, upstream: &str) -> std::process::Child {
    command()
        .args(["sidecar", "--service", "second", "--listen", listen, "--admin", admin, "--upstream", upstream])
        .args(["--workers", "2"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn the second sidecar")
}

/// A second sidecar on a port a first one (SO_REUSEPORT workers) already serves is refused at
/// start, exit 2, naming the key, instead of joining the first's reuse-port group and taking
/// about half its connections; the first keeps serving every request. The same for the admin
/// port, and for a port some other program holds.
#[tokio::test]
async fn a_port_in_use_is_refused_at_start_naming_the_key() {
    let upstream = common::Upstream::start().await;
    let first = common::Sidecar::start(&upstream.url(), &["--workers", "4"]).await;
    let listen = first.proxy.to_string();
    let spare_admin = format!("127.0.0.1:{}", common::free_port());

    let r = refused_at_start(spawn_sidecar(&listen, &spare_admin, &upstream.url()), &spare_admin).await;
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(r.stderr.contains(&format!("listen {listen}: address already in use")), "{}", r.stderr);
    // The wildcard address overlaps the first's loopback one.
    let wildcard = format!("0.0.0.0:{}", first.proxy.port());
    let r = refused_at_start(spawn_sidecar(&wildcard, &spare_admin, &upstream.url()), &spare_admin).await;
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(r.stderr.contains(&format!("listen {wildcard}: address already in use")), "{}", r.stderr);
    // The admin port.
    let admin = first.admin.to_string();
    let spare_listen = format!("127.0.0.1:{}", common::free_port());
    let r = refused_at_start(spawn_sidecar(&spare_listen, &admin, &upstream.url()), &spare_admin).await;
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(r.stderr.contains(&format!("admin {admin}: address already in use")), "{}", r.stderr);

    // Every request still reaches the first sidecar (the refused ones never held a socket).
    // No pooled connections: a new one each time, so the kernel picks a listener each time.
    let client = redline::tls::http_client().expect("TLS roots").pool_max_idle_per_host(0).build().expect("client");
    for i in 0..40 {
        let r = client.get(first.url(&format!("/users/{i}"))).send().await.expect("request through the first sidecar");
        assert_eq!(r.status(), 200);
    }
    let m = first.metrics().await;
    let served: f64 = m
        .lines()
        .filter(|l| l.starts_with("http_server_request_duration_seconds_count{"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum();
    assert!(served >= 40.0, "the first sidecar counted {served} of 40 requests:\n{m}");

    // A port held by some other program (no SO_REUSEPORT) exits 2 too (was 1).
    let other = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let held = other.local_addr().expect("addr").to_string();
    let r = refused_at_start(spawn_sidecar(&held, &spare_admin, &upstream.url()), &spare_admin).await;
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(r.stderr.contains(&format!("listen {held}: address already in use")), "{}", r.stderr);
}

/// `demo --duration 30s` ran 60 s (the duration was silently raised to the minimum): now a
/// duration under the minute the alert needs is refused at once as a usage error.
#[test]
fn demo_refuses_a_duration_it_cannot_honour() {
    let started = std::time::Instant::now();
    let r = redline(&["demo", "--duration", "30s"]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(r.stderr.contains("--duration"), "{}", r.stderr);
    assert!(r.stderr.contains("expected at least 1m: the alert needs about a minute"), "{}", r.stderr);
    assert!(r.stderr.contains("got 30s"), "{}", r.stderr);
    assert!(started.elapsed() < std::time::Duration::from_secs(10), "refused at once, not after a run");
}

/// Usage errors exit 2 in every command (clap's own code), like configuration errors.
#[test]
fn usage_errors_exit_2_in_every_command() {
    for args in [
        &["sidecar", "--no-such-flag"][..],
        &["sidecar", "--listen", "not-an-address"],
        &["receiver", "--max-body", "lots"],
        &["readiness-check"],
        &["canary", "judge", "--prometheus", "http://p:9090"],
        &["alerts", "list", "--state", "pending"],
        &["rules", "check"],
        &["dashboards", "generate", "--out"],
        &["demo", "--duration", "soon"],
        &["no-such-command"],
    ] {
        let r = redline(args);
        assert_eq!(r.code, 2, "{args:?}: {}", r.stderr);
        assert!(r.stderr.starts_with("error:"), "{args:?}: {}", r.stderr);
    }
}

/// A mistyped input path is an error naming the option and the path (exit 2), not a FAIL
/// verdict (exit 1) on the service; from the flag and from the config file alike.
#[test]
fn readiness_check_missing_input_file_is_an_error_not_a_verdict() {
    let dir = tempfile::tempdir().expect("temp dir");
    let missing = dir.path().join("coverage").join("lcov.inf");
    let missing = missing.to_str().expect("utf-8 path");
    let r = redline(&[
        "readiness-check",
        "--service",
        "checkout",
        "--only",
        "tests.coverage",
        "--coverage-report",
        missing,
    ]);
    assert_eq!(r.code, 2, "{}{}", r.stdout, r.stderr);
    assert!(r.stdout.is_empty(), "no report: {}", r.stdout);
    assert!(
        r.stderr
            .contains(&format!("readiness.coverage.report (--coverage-report) {missing}: cannot read: No such file")),
        "{}",
        r.stderr
    );
    let cfg = dir.path().join("checkout.yaml");
    std::fs::write(&cfg, format!("service: checkout\nreadiness:\n  logs: {{file: {missing:?}}}\n"))
        .expect("write config");
    let r = ran(command()
        .args(["readiness-check", "--service", "checkout", "--only", "logging.structured", "--config"])
        .arg(&cfg));
    assert_eq!(r.code, 2, "{}{}", r.stdout, r.stderr);
    assert!(r.stderr.contains(&format!("readiness.logs.file (--logs-file) {missing}: cannot read")), "{}", r.stderr);
    // Not selected, not needed: the check is skipped and the run gives its verdict.
    let r = redline(&[
        "readiness-check",
        "--service",
        "checkout",
        "--only",
        "alerts.tests",
        "--skip",
        "tests.coverage",
        "--coverage-report",
        missing,
    ]);
    assert_ne!(r.code, 2, "{}", r.stderr);
}

/// Rule files and their unit-test files get the same YAML messages as the config: file, line,
/// key, without the parser's internals. (`rules check`/`rules test` keep promtool's exit 1 for
/// any problem found in the files they judge.)
#[test]
fn rule_file_yaml_errors_name_the_file_line_and_key() {
    let dir = tempfile::tempdir().expect("temp dir");
    let rules = dir.path().join("rules.yml");
    std::fs::write(&rules, "groups:\n  - name: a\n    name: b\n    rules: []\n").expect("write rules");
    let r = ran(command().args(["rules", "check"]).arg(&rules));
    assert_eq!(r.code, 1, "{}", r.stdout);
    assert!(r.stdout.contains(&format!("{}:3:5: duplicate key `name`", rules.display())), "{}", r.stdout);
    assert_no_internals(&r.stdout);
    let tests = dir.path().join("rules_test.yml");
    std::fs::write(&tests, "rule_files: [rules.yml]\ntests:\n  - interval: 1m\n    interval: 2m\n")
        .expect("write tests");
    let r = ran(command().args(["rules", "test"]).arg(&tests));
    assert_eq!(r.code, 1, "{}", r.stdout);
    assert!(r.stdout.contains(&format!("{}:4:5: duplicate key `tests[0].interval`", tests.display())), "{}", r.stdout);
    assert_no_internals(&r.stdout);
}
