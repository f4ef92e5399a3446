//! The receiver's page in a real browser: Debian's headless Chromium, driven by playwright-core
//! (npm) from `browser/receiver_ui.mjs`, against real receivers (Bearer token and Basic auth)
//! holding alerts posted over the API and a readiness report whose canary check a real
//! Prometheus answered from real sidecars (a healthy baseline, a faulty canary). What the
//! browser saw comes back as JSON and is asserted here: the views show the alerts, the history
//! and the report with its plots, with JavaScript on and off; an unauthenticated browser sees
//! no data; HTML in labels and annotations is shown as text and never runs. Screenshots of
//! every view are written to `target/ui-screenshots/`.

use crate::common;

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::prometheus::{Prometheus, SteadyLoad};
use common::receiver::{Receiver, TOKEN, TestStore, ZERO_TIME, webhook, webhook_alert};
use common::{Sidecar, Upstream, client, free_port, redline_bin, require_tool};
use serde_json::{Value, json};

const SCRIPT_LABEL: &str = "<script>window.__xss=1;alert(1)</script>";
const IMG_ANNOTATION: &str = "<img src=x onerror=\"window.__xss=1;alert(2)\">";

fn screenshots() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).with_file_name("ui-screenshots");
    std::fs::create_dir_all(&dir).expect("create target/ui-screenshots");
    dir
}

fn fingerprint(labels: &Value) -> String {
    let map: std::collections::BTreeMap<String, String> = serde_json::from_value(labels.clone()).expect("labels");
    redline::receiver::payload::fingerprint(&map)
}

/// A receiver with Basic auth (the harness's starts with a Bearer token), killed on drop.
struct BasicReceiver {
    child: std::process::Child,
    url: String,
    _dir: tempfile::TempDir,
}

impl BasicReceiver {
    async fn start() -> BasicReceiver {
        let dir = tempfile::tempdir().expect("temp dir");
        let basic = dir.path().join("basic");
        std::fs::write(&basic, "release:pa55word\n").expect("write");
        let port = free_port();
        let child = Command::new(redline_bin())
            .args(["receiver", "--listen", &format!("127.0.0.1:{port}"), "--basic-auth-file"])
            .arg(&basic)
            .arg("--db")
            .arg(dir.path().join("basic.db"))
            .stdout(Stdio::null())
            .spawn()
            .expect("spawn");
        let r = BasicReceiver { child, url: format!("http://127.0.0.1:{port}"), _dir: dir };
        let deadline = Instant::now() + Duration::from_secs(30);
        while client().get(format!("{}/readyz", r.url)).send().await.map(|x| x.status() != 200).unwrap_or(true) {
            assert!(Instant::now() < deadline, "receiver with basic auth did not start");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let body = json!([{"labels": {"alertname": "BasicVisible", "service": "cart", "severity": "critical"}}]);
        let ok = client()
            .post(format!("{}/api/v2/alerts", r.url))
            .basic_auth("release", Some("pa55word"))
            .json(&body)
            .send()
            .await
            .expect("POST");
        assert_eq!(ok.status(), 200);
        r
    }
}

impl Drop for BasicReceiver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs the browser script and parses what it saw.
fn browse(config: &Value) -> Value {
    let node = common::node::node();
    let modules = common::node::playwright();
    let chromium = require_tool("chromium", "chromium");
    let script = modules.join(format!("receiver_ui-{}.mjs", std::process::id()));
    std::fs::copy(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/integration/browser/receiver_ui.mjs"), &script)
        .expect("copy the browser script next to its node_modules");
    let mut config = config.clone();
    config["chromium"] = json!(chromium);
    let mut cmd = Command::new(node);
    cmd.arg(&script).arg(config.to_string());
    let out = common::run_ok(&mut cmd, "node browser/receiver_ui.mjs (headless Chromium)");
    let _ = std::fs::remove_file(&script);
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!("the browser script printed no JSON ({e}):\n{}", String::from_utf8_lossy(&out.stdout))
    })
}

fn text<'a>(v: &'a Value, path: &str) -> &'a str {
    v.pointer(path).and_then(Value::as_str).unwrap_or_else(|| panic!("{path} missing in {v:#}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_page_in_a_real_browser() {
    require_tool("prometheus", "prometheus");
    // The canary's data: a baseline and a faulty canary (errors and latency) under one load,
    // scraped by Prometheus, as in canary_cli.
    let mut sides = Vec::new();
    for version in ["v1", "v2"] {
        let upstream = Upstream::start().await;
        let sidecar = Sidecar::start(&upstream.url(), &["--routes=/users/{id}"]).await;
        sides.push((version, upstream, sidecar));
    }
    sides[1].1.faults.set(0.3, Duration::from_millis(60));
    let mut config = "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nscrape_configs:\n".to_owned();
    for (version, _, sidecar) in &sides {
        config.push_str(&format!(
            "  - job_name: checkout-{version}\n    static_configs:\n      - targets: ['{}']\n        labels: {{service: checkout, version: '{version}'}}\n",
            sidecar.admin
        ));
    }
    let prometheus = Prometheus::start(&config).await;
    let load = SteadyLoad::start(sides.iter().map(|(_, _, s)| s.url("/users/")).collect());

    let dir = tempfile::tempdir().expect("temp dir");
    let readiness = dir.path().join("checkout.yaml");
    std::fs::write(&readiness, format!("service: checkout\nreadiness:\n  prometheus_url: {}\n", prometheus.url()))
        .expect("write readiness config");
    let store = TestStore::new(common::receiver::Backend::Sqlite);
    let r = Receiver::start(&store.db, &["--readiness-config", &readiness.display().to_string()]).await;

    // Alerts over both ingest APIs: a critical webhook alert, and a v2 alert whose label and
    // annotation carry HTML that would run if it reached the page unescaped.
    let critical = json!({"alertname": "HighErrorRatio", "service": "checkout", "severity": "critical"});
    let starts = "2024-05-01T10:00:00Z";
    let fired = webhook("firing", "g", vec![webhook_alert("firing", &critical, starts, ZERO_TIME)]);
    assert_eq!(r.post("/api/v1/alertmanager", fired.to_string()).await.status(), 200);
    let mut renotified = webhook_alert("firing", &critical, starts, ZERO_TIME);
    renotified["annotations"]["summary"] = json!("error ratio still above 5%");
    let again = webhook("firing", "g", vec![renotified]);
    assert_eq!(r.post("/api/v1/alertmanager", again.to_string()).await.status(), 200);
    let xss = json!({"alertname": SCRIPT_LABEL, "service": "checkout", "severity": "warning"});
    let body = json!([{"labels": xss, "annotations": {"summary": IMG_ANNOTATION}}]);
    assert_eq!(r.post("/api/v2/alerts", body.to_string()).await.status(), 200);

    // The readiness request, with the canary judged from Prometheus.
    prometheus.wait_for_traffic(&["v1", "v2"]).await;
    // The judge's parameters reach the check: a tolerance of +10000% lets v2's 60 ms pass as
    // latency, while its errors (critical) still fail it. Asked first, so that the page shows
    // the answer with the default judge below.
    let lenient = r
        .get_json("/api/v1/readiness/checkout?baseline=v1&canary=v2&window=15s&step=1s&rate_window=4s&only=canary&tolerance=100")
        .await;
    let details = common::report_check(&lenient, "canary")["details"].to_string();
    assert!(details.contains("p99_latency_seconds: pass") && details.contains("allowed ±10000%"), "{lenient:#}");
    assert!(details.contains("error_ratio: high"), "{lenient:#}");
    let report = r
        .get_json("/api/v1/readiness/checkout?baseline=v1&canary=v2&window=15s&step=1s&rate_window=4s&only=canary,alerts.firing")
        .await;
    load.stop().await;
    let details = common::report_check(&report, "canary")["details"].to_string();
    assert!(details.contains("p99_latency_seconds: high"), "{report:#}");
    assert_eq!(report["ready"], false, "{report:#}");
    assert_eq!(common::report_check(&report, "canary")["status"], "fail", "{report:#}");

    let basic = BasicReceiver::start().await;
    let shots = screenshots();
    let seen = browse(&json!({
        "bearer": {"base": r.base_url(), "token": TOKEN, "fingerprint": fingerprint(&critical),
                   "xssFingerprint": fingerprint(&xss)},
        "basic": {"base": basic.url, "user": "release", "password": "pa55word"},
        "shots": shots,
    }));

    // Without a session: the sign-in form with a 401, and nothing from the store.
    for view in ["overview", "service", "alert", "fragment"] {
        let v = &seen["anonymous"][view];
        assert_eq!(v["status"], 401, "{view}: {v:#}");
        let body = text(v, "/text");
        assert!(body.contains("Sign in"), "{view}: {body}");
        for secret in ["HighErrorRatio", "checkout", "window.__xss", "error ratio"] {
            assert!(!body.contains(secret), "{view} shows {secret:?} without a session: {body}");
        }
    }
    assert!(text(&seen, "/wrongToken/text").contains("Wrong token"), "{seen:#}");
    assert_eq!(seen["wrongTokenCookies"], json!([]), "no cookie for a wrong token");

    // Signed in: the cookie holds a session id, not the token, HttpOnly and SameSite=Strict.
    let cookies = seen["cookies"].as_array().expect("cookies");
    assert_eq!(cookies.len(), 1, "{cookies:#?}");
    let cookie = &cookies[0];
    assert_eq!(cookie["name"], "redline_session");
    assert_eq!(cookie["httpOnly"], true);
    assert_eq!(cookie["sameSite"], "Strict");
    assert!(!text(cookie, "/value").contains(TOKEN));
    assert!(!text(&seen, "/signIn/url").contains(TOKEN), "the token is not in the URL");
    assert!(!r.stdout().contains(TOKEN), "the token is not in the log");

    // The overview: firing alerts by service with severity and age.
    let overview = text(&seen, "/overview/text");
    for want in ["Firing alerts", "checkout", "HighErrorRatio", "critical", "error ratio still above 5%", "ago"] {
        assert!(overview.contains(want), "overview lacks {want:?}:\n{overview}");
    }
    assert!(overview.contains("not ready"), "the service's latest verdict:\n{overview}");
    // HTML from senders is text: shown as written, never an element, never run.
    assert!(overview.contains(SCRIPT_LABEL) && overview.contains(IMG_ANNOTATION), "{overview}");
    for page in ["/overview/injected", "/xssAlert/injected", "/service/injected"] {
        let i = seen.pointer(page).expect("injected");
        assert_eq!(i["images"], 0, "{page}: {i}");
        assert_eq!(i["scripts"], json!(["/ui.js"]), "{page}: {i}");
        assert_eq!(i["flag"], false, "{page}: {i}");
    }
    assert_eq!(seen["dialogs"], json!([]), "an injected script opened a dialog");
    assert!(text(&seen, "/xssAlert/title").contains(SCRIPT_LABEL), "{seen:#}");
    assert!(text(&seen, "/xssAlert/text").contains(IMG_ANNOTATION));

    // The alert's history as a timeline: both notifications, oldest first.
    let timeline = seen["alert"]["timeline"].as_array().expect("timeline");
    assert_eq!(timeline.len(), 2, "{timeline:#?}");
    assert!(text(&timeline[0], "").contains("firing") && text(&timeline[1], "").contains("still above 5%"));

    // The service: the report, its blocking reasons, each check, and a plot per canary metric.
    let service = text(&seen, "/service/text");
    for want in ["not ready", "may not be promoted", "Canary judgement", "canary v2 vs baseline v1", "query_range"] {
        assert!(service.contains(want), "service page lacks {want:?}:\n{service}");
    }
    let reasons = seen["service"]["reasons"].as_array().expect("reasons");
    assert!(reasons.iter().any(|x| text(x, "").starts_with("alerts.firing:")), "{reasons:#?}");
    assert!(reasons.iter().any(|x| text(x, "").starts_with("canary:")), "{reasons:#?}");
    let checks: Vec<&str> = seen["service"]["checks"].as_array().expect("checks").iter().map(|c| text(c, "")).collect();
    assert!(checks.iter().any(|c| c.starts_with("canary") && c.contains("fail")), "{checks:#?}");
    let plots = seen["service"]["plots"].as_array().expect("plots");
    assert!(plots.len() >= 2, "one plot per judged metric: {plots:#?}");
    assert!(plots.iter().any(|p| text(p, "/label").starts_with("error_ratio")), "{plots:#?}");
    for p in plots {
        assert_eq!(p["lines"], 2, "baseline and canary: {p}");
    }
    assert!(
        plots.iter().any(|p| p["points"].as_array().is_some_and(|n| n.iter().all(|k| k.as_u64() >= Some(10)))),
        "a plot with the window's samples on both sides: {plots:#?}"
    );

    // Live: a new alert appears on the open page without a reload.
    assert_eq!(seen["livePost"], 200);
    assert_eq!(seen["live"], json!({"shown": true, "sameDocument": true}), "{:#}", seen["live"]);
    assert!(text(&seen, "/liveStatus").starts_with("live, updated"), "{seen:#}");
    // Signed out: back to the form.
    assert_eq!(seen["afterSignOut"]["status"], 401);
    assert!(!text(&seen, "/afterSignOut/text").contains("HighErrorRatio"));

    // JavaScript off: the same read-only data, rendered by the server.
    let no_js = &seen["noJs"];
    assert!(text(no_js, "/status").starts_with("static view"), "the script did not run: {no_js:#}");
    for want in ["HighErrorRatio", "ArrivedWhileWatching", SCRIPT_LABEL, IMG_ANNOTATION] {
        assert!(text(no_js, "/overview").contains(want), "without JavaScript, {want:?} is missing: {no_js:#}");
    }
    assert!(text(no_js, "/service").contains("may not be promoted"), "{no_js:#}");
    assert_eq!(no_js["plots"], seen["service"]["plots"].as_array().map(|p| p.len()).unwrap_or(0));
    assert_eq!(no_js["timeline"], 2);

    // Basic auth: a 401 with the challenge (the browser's prompt), then the data.
    assert_eq!(seen["basicAnonymous"]["status"], 401);
    assert_eq!(seen["basicAnonymous"]["headers"]["www-authenticate"], "Basic realm=\"redline\"");
    assert!(!text(&seen, "/basicAnonymous/text").contains("BasicVisible"));
    assert_eq!(seen["basic"]["status"], 200);
    assert!(text(&seen, "/basic/text").contains("BasicVisible"), "{seen:#}");

    for name in ["login", "overview", "alert-with-html-labels", "alert-history", "service-readiness", "overview-live"] {
        let png = shots.join(format!("{name}.png"));
        assert!(std::fs::metadata(&png).is_ok_and(|m| m.len() > 10_000), "screenshot {}", png.display());
    }
}
