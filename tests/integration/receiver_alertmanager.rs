//! The real Alertmanager (Debian `prometheus-alertmanager`) delivering to `redline receiver`
//! with Bearer credentials from a file: alerts posted to Alertmanager show up in the receiver's
//! query API with Alertmanager's fingerprints; resolution closes the gates; retries after an
//! outage of the receiver fill in what it missed.

use crate::common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::alertmanager::Alertmanager;
use common::receiver::{Backend, Receiver, TestStore, on_both_stores};
use common::{client, free_port};
use serde_json::{Value, json};

fn config(receiver_port: u16, token_file: &Path) -> String {
    format!(
        "route:
  receiver: redline
  group_by: [alertname]
  group_wait: 100ms
  group_interval: 1s
  repeat_interval: 1h
receivers:
  - name: redline
    webhook_configs:
      - url: http://127.0.0.1:{receiver_port}/api/v1/alertmanager
        send_resolved: true
        max_alerts: 0
        http_config:
          authorization:
            type: Bearer
            credentials_file: {}
",
        token_file.display()
    )
}

fn labels(alertname: &str, instance: &str) -> Value {
    json!({"alertname": alertname, "service": "checkout", "namespace": "shop", "severity": "critical", "instance": instance})
}

async fn post_to_alertmanager(am: &Alertmanager, alerts: Value) {
    let r = client().post(am.url("/api/v2/alerts")).json(&alerts).send().await.expect("POST to alertmanager");
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap_or_default());
}

/// Polls the receiver until `pred` holds for the alerts of service checkout.
async fn wait_for(r: &Receiver, what: &str, pred: impl Fn(&[Value]) -> bool) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let alerts = r.alerts("service=checkout").await;
        if pred(&alerts) {
            return alerts;
        }
        assert!(Instant::now() < deadline, "receiver never showed {what}: {alerts:#?}\nreceiver log:\n{}", r.stdout());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

on_both_stores!(alertmanager_delivers_fire_and_resolve);

async fn alertmanager_delivers_fire_and_resolve(backend: Backend) {
    let store = TestStore::new(backend);
    let r = Receiver::start(&store.db, &[]).await;
    let am = Alertmanager::start(&config(r.addr.port(), &r.token_file)).await;

    post_to_alertmanager(
        &am,
        json!([
            {"labels": labels("CheckoutErrors", "a"), "annotations": {"summary": "errors"}, "generatorURL": "http://prom/g"},
            {"labels": labels("CheckoutErrors", "b"), "annotations": {"summary": "errors"}},
        ]),
    )
    .await;
    let alerts = wait_for(&r, "two firing alerts", |a| a.len() == 2 && a.iter().all(|x| x["state"] == "firing")).await;

    // The receiver stores Alertmanager's fingerprints, and computes the same ones itself.
    let held = am.alerts().await;
    for a in &alerts {
        let instance = &a["labels"]["instance"];
        let in_am = held.iter().find(|h| &h["labels"]["instance"] == instance).expect("alert held by alertmanager");
        assert_eq!(a["fingerprint"], in_am["fingerprint"]);
        let labels: std::collections::BTreeMap<String, String> =
            serde_json::from_value(a["labels"].clone()).expect("labels");
        assert_eq!(a["fingerprint"], redline::receiver::payload::fingerprint(&labels));
        assert_eq!(a["endsAt"], Value::Null, "Alertmanager sends the zero time for firing alerts");
    }
    let canary = json!({"name": "checkout", "namespace": "shop", "phase": "Progressing", "checksum": "x"});
    let resp = client().post(r.url("/api/v1/flagger/confirm-promotion")).json(&canary).send().await.expect("gate");
    assert_eq!(resp.status(), 403);
    assert!(resp.text().await.expect("body").contains("2 critical alerts firing"));

    // Resolve both: Alertmanager sends a resolved notification (send_resolved).
    let now = time::OffsetDateTime::now_utc().format(&time::format_description::well_known::Rfc3339).expect("now");
    post_to_alertmanager(
        &am,
        json!([
            {"labels": labels("CheckoutErrors", "a"), "annotations": {"summary": "errors"}, "generatorURL": "http://prom/g", "endsAt": now},
            {"labels": labels("CheckoutErrors", "b"), "annotations": {"summary": "errors"}, "endsAt": now},
        ]),
    )
    .await;
    let alerts = wait_for(&r, "both resolved", |a| a.len() == 2 && a.iter().all(|x| x["state"] == "resolved")).await;
    let resp = client().post(r.url("/api/v1/flagger/confirm-promotion")).json(&canary).send().await.expect("gate");
    assert_eq!(resp.status(), 200);
    let fp = alerts[0]["fingerprint"].as_str().expect("fingerprint");
    let history = r.get_json(&format!("/api/v1/alerts/{fp}/history")).await;
    let statuses: Vec<&str> =
        history["notifications"].as_array().expect("list").iter().filter_map(|n| n["status"].as_str()).collect();
    assert_eq!(statuses, ["firing", "resolved"], "{history}");
    assert_eq!(history["notifications"][0]["receiver"], "redline");
    assert!(history["notifications"][0]["groupKey"].as_str().is_some_and(|g| g.contains("CheckoutErrors")));
}

/// Alertmanager's notification failures so far (its own metric).
async fn failed_notifications(am: &Alertmanager) -> f64 {
    let text = client().get(am.url("/metrics")).send().await.expect("am metrics").text().await.expect("body");
    text.lines()
        .filter(|l| l.starts_with("alertmanager_notifications_failed_total{") && l.contains("integration=\"webhook\""))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

#[tokio::test]
async fn alertmanager_retries_fill_in_after_the_receiver_was_down() {
    let store = TestStore::new(Backend::Sqlite);
    let port = free_port();
    let token_dir = tempfile::tempdir().expect("temp dir");
    let token_file = token_dir.path().join("token");
    std::fs::write(&token_file, common::receiver::TOKEN).expect("write token");
    let am = Alertmanager::start(&config(port, &token_file)).await;
    post_to_alertmanager(&am, json!([{"labels": labels("WhileDown", "a")}, {"labels": labels("WhileDown", "b")}]))
        .await;
    let deadline = Instant::now() + Duration::from_secs(30);
    while failed_notifications(&am).await < 1.0 {
        assert!(Instant::now() < deadline, "alertmanager never failed to deliver to the stopped receiver");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let r = Receiver::start_on(port, &store.db, &[]).await;
    let alerts = wait_for(&r, "the alerts sent while it was down", |a| a.len() == 2).await;
    assert!(alerts.iter().all(|a| a["state"] == "firing" && a["notifications"] == 1), "{alerts:#?}");
}

#[test]
fn the_shipped_alertmanager_example_passes_amtool() {
    common::alertmanager::check_config(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/alertmanager/alertmanager.yml"),
    );
}
