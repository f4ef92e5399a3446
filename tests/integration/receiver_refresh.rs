//! `POST /api/v2/alerts` refresh semantics against the real receiver, on SQLite and a real
//! PostgreSQL: an alert re-posted without `endsAt` stays firing across many resolve timeouts,
//! keeps the gates shut, gains no history event per post, and resolves once the posts stop.

use crate::common;

use std::time::{Duration, Instant};

use common::receiver::{Backend, Receiver, TestStore, on_both_stores};
use common::{client, sample};
use serde_json::{Value, json};

on_both_stores!(reposted_v2_alert_stays_firing_until_the_posts_stop);

/// The receiver's `--resolve-timeout` in these tests. The sender posts every `PERIOD`, an eighth
/// of it: one round of the loop (a post, a read, two gate answers) may take seven periods on a
/// loaded CI machine (instrumented build, tests in parallel) before the alert could resolve
/// between two posts. The posting lasts one and a half timeouts, so it crosses one.
const TIMEOUT: Duration = Duration::from_secs(8);
const PERIOD: Duration = Duration::from_secs(1);

fn alert(summary: &str) -> Value {
    json!([{"labels": {"alertname": "QueueStuck", "service": "checkout", "severity": "critical"},
            "annotations": {"summary": summary}, "generatorURL": "http://sender/q"}])
}

fn canary() -> Value {
    json!({"name": "checkout", "namespace": "shop", "phase": "Progressing", "checksum": "abc"})
}

async fn gate(r: &Receiver, hook: &str) -> u16 {
    let resp = client().post(r.url(&format!("/api/v1/flagger/{hook}"))).json(&canary()).send().await.expect("gate");
    resp.status().as_u16()
}

async fn post(r: &Receiver, body: &Value) -> String {
    let resp = r.post("/api/v2/alerts", body.to_string()).await;
    assert_eq!(resp.status(), 200);
    resp.json::<Value>().await.expect("json")["status"].as_str().expect("status").to_string()
}

async fn the_alert(r: &Receiver) -> Value {
    let all = r.alerts("service=checkout").await;
    assert_eq!(all.len(), 1, "{all:?}");
    all[0].clone()
}

async fn history(r: &Receiver, fp: &str) -> Vec<Value> {
    let h = r.get_json(&format!("/api/v1/alerts/{fp}/history")).await;
    h["notifications"].as_array().cloned().expect("notifications")
}

fn nanos(rfc3339: &Value) -> i128 {
    let s = rfc3339.as_str().expect("a timestamp");
    time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339)
        .expect("RFC 3339")
        .unix_timestamp_nanos()
}

async fn reposted_v2_alert_stays_firing_until_the_posts_stop(backend: Backend) {
    let store = TestStore::new(backend);
    let r = Receiver::start(&store.db, &["--resolve-timeout", "8s"]).await;
    let body = alert("the queue does not drain");

    assert_eq!(post(&r, &body).await, "stored");
    let first = the_alert(&r).await;
    let fp = first["fingerprint"].as_str().expect("fingerprint").to_string();
    let started = first["startsAt"].clone();

    // Post the same alert for one and a half resolve timeouts: it fires the whole time and blocks.
    let posting = Instant::now();
    let mut posts = 1;
    while posting.elapsed() < TIMEOUT * 3 / 2 {
        tokio::time::sleep(PERIOD).await;
        assert_eq!(post(&r, &body).await, "refreshed", "post {posts}: only endsAt moves");
        posts += 1;
        let a = the_alert(&r).await;
        assert_eq!(a["state"], "firing", "after {:?} of posting: {a}", posting.elapsed());
        assert_eq!(a["startsAt"], started, "the instance keeps its start");
        assert_eq!(gate(&r, "confirm-promotion").await, 403, "a firing critical alert holds the promotion");
        assert_eq!(gate(&r, "rollback").await, 200);
    }
    let last_post = time::OffsetDateTime::now_utc().unix_timestamp_nanos();
    let a = the_alert(&r).await;
    assert!(
        nanos(&a["endsAt"]) > last_post + 7_000_000_000,
        "endsAt is the last post + 8s: {a} (last post {last_post})"
    );
    assert_eq!(a["notifications"], 1, "{a}");
    // One event in the history, whose endsAt follows the refreshes.
    let h = history(&r, &fp).await;
    assert_eq!(h.len(), 1, "no event per post: {h:#?}");
    assert_eq!(h[0]["endsAt"], a["endsAt"]);
    assert_eq!(h[0]["status"], "firing");
    let m = r.metrics().await;
    assert_eq!(sample(&m, "redline_receiver_notifications_refreshed_total"), Some(f64::from(posts - 1)), "{m}");
    assert_eq!(sample(&m, "redline_receiver_notifications_stored_total"), Some(1.0), "{m}");

    // A changed annotation is an event of the same instance (its start kept).
    assert_eq!(post(&r, &alert("the queue grows")).await, "stored");
    let h = history(&r, &fp).await;
    assert_eq!(h.len(), 2, "{h:#?}");
    assert_eq!(h[1]["startsAt"], started);
    assert_eq!(h[1]["annotations"]["summary"], "the queue grows");

    // The posts stop: the alert resolves once its endsAt passes, and the gates open.
    let stopped = Instant::now();
    let deadline = stopped + Duration::from_secs(60);
    loop {
        if the_alert(&r).await["state"] == "resolved" {
            break;
        }
        assert!(Instant::now() < deadline, "never resolved after the posts stopped: {}", the_alert(&r).await);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(stopped.elapsed() >= TIMEOUT - Duration::from_millis(500), "resolved early: {:?}", stopped.elapsed());
    assert_eq!(gate(&r, "confirm-promotion").await, 200);
    assert_eq!(gate(&r, "rollback").await, 403);
    assert_eq!(history(&r, &fp).await.len(), 2, "resolving by timeout writes nothing");

    // Posted again after it resolved: a new instance, with its own start and event.
    assert_eq!(post(&r, &alert("the queue grows")).await, "stored");
    let again = the_alert(&r).await;
    assert_eq!(again["state"], "firing");
    assert!(nanos(&again["startsAt"]) > nanos(&started) + 2_000_000_000, "{again}");
    assert_eq!(history(&r, &fp).await.len(), 3);
    assert_eq!(gate(&r, "confirm-promotion").await, 403);
}
