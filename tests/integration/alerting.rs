//! The sidecar's rule engine end to end: the shipped symptom rules (with windows shortened so a
//! test runs in seconds) fire and resolve in a real Alertmanager, alerts survive Alertmanager
//! being down, `/-/reload` keeps the old rules on a broken file, and bad rules refuse startup.

use crate::common;

use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use common::alertmanager::{Alertmanager, QUIET_CONFIG};
use common::tls::TestPki;
use common::{Sidecar, Upstream, client, free_port, redline_bin, sample};
use common::{get_json as json, poll_until as wait_for};

/// `rules/redline-symptoms.yml` with 10s windows and 2s `for`, so alerts fire within seconds.
fn fast_symptom_rules(dir: &std::path::Path) -> String {
    let shipped = std::fs::read_to_string("rules/redline-symptoms.yml").expect("shipped symptom rules");
    let fast = shipped.replace("[5m]", "[10s]").replace("for: 5m", "for: 2s").replace("for: 10m", "for: 2s");
    assert_ne!(fast, shipped);
    let path = dir.join("symptoms-fast.yml");
    std::fs::write(&path, fast).expect("write rules");
    path.display().to_string()
}

/// Sends requests through the sidecar until dropped, like steady user traffic.
struct Traffic {
    stop: Arc<AtomicBool>,
}

impl Traffic {
    fn start(url: String) -> Traffic {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        tokio::spawn(async move {
            let c = client();
            while !flag.load(Ordering::Relaxed) {
                let _ = c.get(&url).send().await;
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        });
        Traffic { stop }
    }
}

impl Drop for Traffic {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn error_ratio_alert_fires_in_alertmanager_with_external_labels_and_resolves() {
    let am = Alertmanager::start(QUIET_CONFIG).await;
    let up = Upstream::start().await;
    let dir = tempfile::tempdir().unwrap();
    let rules = fast_symptom_rules(dir.path());
    let mut sidecar = Sidecar::start(
        &up.url(),
        &["--rules", &rules, "--sample-interval", "1s", "--alertmanagers", &am.base_url(), "--pod", "checkout-7f9c"],
    )
    .await;
    let _traffic = Traffic::start(sidecar.url("/users/42"));
    // Healthy traffic first: the rules evaluate fine and nothing fires.
    wait_for("a healthy evaluation", Duration::from_secs(15), async || {
        let m = sidecar.metrics().await;
        m.lines().any(|l| l.starts_with("redline_rule_evaluations_total{") && !l.ends_with(" 0"))
    })
    .await;
    let rules_api = json(&sidecar.admin_url("/api/v1/rules")).await;
    let group = &rules_api["data"]["groups"][0];
    assert_eq!(rules_api["status"], "success");
    assert_eq!(group["name"], "redline-symptoms");
    assert_eq!(group["interval"], 1.0);
    let rule = &group["rules"][0];
    assert_eq!(rule["name"], "RedlineHighErrorRatio");
    assert_eq!(rule["type"], "alerting");
    assert_eq!(rule["health"], "ok", "{rule}");
    assert_eq!(rule["state"], "inactive");
    assert_eq!(rule["duration"], 2.0);
    assert_eq!(rule["labels"]["severity"], "critical");
    assert!(rule["query"].as_str().unwrap().contains("rate(http_server_request_duration_seconds_count"));
    assert!(rule["annotations"]["runbook_url"].as_str().unwrap().starts_with("https://"));
    assert_eq!(rule["alerts"], serde_json::json!([]));

    up.faults.set(1.0, Duration::ZERO);
    let alert = am.wait_alert("RedlineHighErrorRatio", true, Duration::from_secs(30)).await.unwrap();
    let labels = &alert["labels"];
    for (k, v) in [
        ("service", "checkout"),
        ("namespace", "shop"),
        ("version", "1.2.3"),
        ("pod", "checkout-7f9c"),
        ("severity", "critical"),
    ] {
        assert_eq!(labels[k], v, "label {k} of {alert}");
    }
    assert_eq!(alert["status"]["state"], "active");
    assert_eq!(alert["annotations"]["summary"], "checkout in shop: more than 5% of requests are failing");
    let description = alert["annotations"]["description"].as_str().unwrap();
    let (percent, rest) = description.split_once("% of the requests to checkout (namespace shop) failed").unwrap();
    let percent: f64 = percent.parse().unwrap_or_else(|_| panic!("humanized percentage in {description}"));
    assert!(percent > 5.0 && percent <= 100.0 && rest.contains("threshold 5%"), "{description}");
    let generator = alert["generatorURL"].as_str().unwrap();
    assert!(generator.contains("/graph?g0.expr=sum%20by%20%28service"), "{generator}");

    // The sidecar's own view agrees.
    let alerts = json(&sidecar.admin_url("/api/v1/alerts")).await;
    let firing: Vec<_> =
        alerts["data"]["alerts"].as_array().unwrap().iter().filter(|a| a["state"] == "firing").collect();
    assert!(firing.iter().any(|a| a["labels"]["alertname"] == "RedlineHighErrorRatio"), "{alerts}");
    assert_eq!(firing[0]["value"].as_str().unwrap().len(), "1.0000000000e+00".len(), "{alerts}");
    let m = sidecar.metrics().await;
    assert_eq!(sample(&m, "redline_alerts{alertname=\"RedlineHighErrorRatio\",alertstate=\"firing\"}"), Some(1.0));
    let sent = sample(&m, &format!("redline_notifications_sent_total{{alertmanager=\"{}\"}}", am.base_url()));
    assert!(sent.is_some_and(|n| n >= 1.0), "{m}");

    // The fault stops; once the 10s window is clean the alert resolves and Alertmanager drops it.
    up.faults.set(0.0, Duration::ZERO);
    am.wait_alert("RedlineHighErrorRatio", false, Duration::from_secs(40)).await;
    let alerts = json(&sidecar.admin_url("/api/v1/alerts")).await;
    assert!(
        !alerts["data"]["alerts"]
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a["labels"]["alertname"] == "RedlineHighErrorRatio"),
        "{alerts}"
    );
    assert!(sidecar.stop().await.success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_alert_raised_while_alertmanager_is_down_arrives_once_it_is_back() {
    let up = Upstream::start().await;
    let dir = tempfile::tempdir().unwrap();
    let rules = fast_symptom_rules(dir.path());
    let am_port = free_port();
    let am_url = format!("http://127.0.0.1:{am_port}");
    let mut sidecar = Sidecar::start(
        &up.url(),
        &["--rules", &rules, "--sample-interval", "1s", "--alertmanagers", &am_url, "--pod", "p"],
    )
    .await;
    let _traffic = Traffic::start(sidecar.url("/orders/7/items"));
    up.faults.set(1.0, Duration::ZERO);
    let errors = format!("redline_notification_errors_total{{alertmanager=\"{am_url}\"}}");
    wait_for("failed deliveries to the absent Alertmanager", Duration::from_secs(30), async || {
        sample(&sidecar.metrics().await, &errors).is_some_and(|n| n > 0.0)
    })
    .await;
    let m = sidecar.metrics().await;
    assert_eq!(sample(&m, &format!("redline_notifications_sent_total{{alertmanager=\"{am_url}\"}}")), Some(0.0));
    assert!(sample(&m, &format!("redline_notifications_queue_length{{alertmanager=\"{am_url}\"}}")).unwrap() >= 1.0);

    let am = Alertmanager::start_on(am_port, QUIET_CONFIG).await;
    let alert = am.wait_alert("RedlineHighErrorRatio", true, Duration::from_secs(30)).await.unwrap();
    assert_eq!(alert["labels"]["service"], "checkout");
    let m = sidecar.metrics().await;
    assert!(sample(&m, &format!("redline_notifications_sent_total{{alertmanager=\"{am_url}\"}}")).unwrap() >= 1.0);
    assert_eq!(sample(&m, &format!("redline_notifications_dropped_total{{alertmanager=\"{am_url}\"}}")), Some(0.0));
    assert!(sidecar.stop().await.success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alerts_reach_an_alertmanager_that_serves_https() {
    let pki = TestPki::new();
    let am = Alertmanager::start_tls(QUIET_CONFIG, &pki).await;
    let am_url = am.base_url();
    assert!(am_url.starts_with("https://"));
    let up = Upstream::start().await;
    let dir = tempfile::tempdir().unwrap();
    let rules = fast_symptom_rules(dir.path());
    let args = ["--rules", &rules, "--sample-interval", "1s", "--alertmanagers", &am_url, "--pod", "p"];
    // SSL_CERT_FILE names the trusted roots, as for any OpenSSL-style client.
    let mut sidecar =
        Sidecar::start_with_env(&up.url(), &args, &[("SSL_CERT_FILE", pki.ca_cert.to_str().unwrap())]).await;
    // Without it the test CA is not trusted: deliveries fail and say why.
    let mut untrusted = Sidecar::start(&up.url(), &args).await;
    let _traffic = Traffic::start(sidecar.url("/orders/7/items"));
    let _untrusted_traffic = Traffic::start(untrusted.url("/orders/8/items"));
    up.faults.set(1.0, Duration::ZERO);

    let alert = am.wait_alert("RedlineHighErrorRatio", true, Duration::from_secs(30)).await.unwrap();
    assert_eq!(alert["labels"]["service"], "checkout");
    let sent = format!("redline_notifications_sent_total{{alertmanager=\"{am_url}\"}}");
    assert!(sample(&sidecar.metrics().await, &sent).unwrap() >= 1.0);

    let errors = format!("redline_notification_errors_total{{alertmanager=\"{am_url}\"}}");
    wait_for("failed deliveries without the CA", Duration::from_secs(30), async || {
        sample(&untrusted.metrics().await, &errors).is_some_and(|n| n > 0.0)
    })
    .await;
    assert_eq!(sample(&untrusted.metrics().await, &sent), Some(0.0));
    let log = untrusted.stdout_until("the failure logged", |l| l.contains("sending alerts failed")).await;
    let line = log.lines().find(|l| l.contains("sending alerts failed")).unwrap();
    assert!(line.contains("certificate") || line.contains("UnknownIssuer"), "the reason names the certificate: {line}");
    assert!(sidecar.stop().await.success());
    assert!(untrusted.stop().await.success());
}

const GOOD_RULES: &str = "groups:\n  - name: first\n    rules:\n      - record: job:requests:rate1m\n        expr: sum(rate(http_server_request_duration_seconds_count[1m]))\n";

#[tokio::test]
async fn reload_keeps_the_running_rules_when_a_file_is_broken() {
    let up = Upstream::start().await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("app.yml");
    std::fs::write(&path, GOOD_RULES).unwrap();
    let mut sidecar = Sidecar::start(&up.url(), &["--rules", path.to_str().unwrap(), "--sample-interval", "1s"]).await;
    let ready = client().get(sidecar.admin_url("/readyz")).send().await.unwrap();
    assert_eq!(ready.status(), 200);
    assert_eq!(ready.text().await.unwrap(), "ready; 1 rules loaded in 1 groups\n");
    assert_eq!(sample(&sidecar.metrics().await, "redline_rules_last_reload_successful"), Some(1.0));

    std::fs::write(&path, "groups:\n  - name: second\n    rules:\n      - alert: Broken\n        expr: rate(x[5m]\n")
        .unwrap();
    let r = client().post(sidecar.admin_url("/-/reload")).send().await.unwrap();
    assert_eq!(r.status(), 500);
    let body = r.text().await.unwrap();
    assert!(body.contains(&format!("{}:5:15: group \"second\", rule 1, \"Broken\"", path.display())), "{body}");
    assert_eq!(sample(&sidecar.metrics().await, "redline_rules_last_reload_successful"), Some(0.0));
    let rules = json(&sidecar.admin_url("/api/v1/rules")).await;
    assert_eq!(rules["data"]["groups"][0]["name"], "first", "the old rules keep running: {rules}");

    std::fs::write(&path, GOOD_RULES.replace("first", "second")).unwrap();
    let r = client().post(sidecar.admin_url("/-/reload")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(sample(&sidecar.metrics().await, "redline_rules_last_reload_successful"), Some(1.0));
    let rules = json(&sidecar.admin_url("/api/v1/rules?type=record")).await;
    assert_eq!(rules["data"]["groups"][0]["name"], "second");
    assert_eq!(rules["data"]["groups"][0]["rules"][0]["type"], "recording");
    let bad = client().get(sidecar.admin_url("/api/v1/rules?type=bogus")).send().await.unwrap();
    assert_eq!(bad.status(), 400);
    assert!(sidecar.stop().await.success());
}

#[test]
fn rules_that_cannot_load_refuse_startup_with_exit_code_2() {
    let dir = tempfile::tempdir().unwrap();
    let long = dir.path().join("long.yml");
    std::fs::write(&long, "groups:\n  - name: slo\n    rules:\n      - alert: Burn3d\n        expr: rate(x[3d]) > 1\n")
        .unwrap();
    let bad = dir.path().join("bad.yml");
    std::fs::write(&bad, "groups:\n  - name: g\n    rules:\n      - alert: Nope\n        expr: limitk(1, x) > 1\n")
        .unwrap();
    let out = Command::new(redline_bin())
        .args(["sidecar", "--service", "s", "--listen", &format!("127.0.0.1:{}", free_port())])
        .args(["--admin", &format!("127.0.0.1:{}", free_port())])
        .args(["--rules", &format!("{},{}", long.display(), bad.display())])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!("{}:5:15: group \"slo\", rule 1, \"Burn3d\": needs 3d of history", long.display())),
        "{err}"
    );
    assert!(err.contains("keeps 1h (`retention`)"), "{err}");
    assert!(err.contains(&format!("{}:5:15: group \"g\", rule 1, \"Nope\"", bad.display())), "{err}");
    assert!(err.contains("aggregation `limitk` is not in Prometheus 2.42"), "{err}");
}
