//! Nothing acknowledged is lost: under a steady stream of deliveries the receiver is killed
//! with SIGKILL; after a restart every delivery that got a 200 is in the store, once, and the
//! senders' retries of the unacknowledged ones are stored exactly once too.

use crate::common;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use common::receiver::{Backend, Receiver, TOKEN, TestStore, ZERO_TIME, webhook, webhook_alert};
use serde_json::{Value, json};

const SENDERS: u64 = 8;
const ALERTS_PER_DELIVERY: usize = 10;

fn delivery(id: u64) -> String {
    let alerts = (0..ALERTS_PER_DELIVERY)
        .map(|k| {
            let labels =
                json!({"alertname": "Durable", "service": "durable", "delivery": id.to_string(), "k": k.to_string()});
            webhook_alert("firing", &labels, "2024-05-01T10:00:00Z", ZERO_TIME)
        })
        .collect();
    webhook("firing", &format!("{{}}:{{delivery=\"{id}\"}}"), alerts).to_string()
}

/// What the senders saw: deliveries answered 200, and those sent without an answer.
#[derive(Default)]
struct Seen {
    acked: BTreeSet<u64>,
    unanswered: BTreeSet<u64>,
}

async fn sender(url: String, first: u64, stop: Arc<AtomicBool>, seen: Arc<std::sync::Mutex<Seen>>) {
    // A client without keep-alive reuse surprises: each request is independent.
    let client =
        redline::tls::http_client().expect("TLS roots").timeout(Duration::from_secs(10)).build().expect("client");
    for id in first..first + 100_000 {
        if stop.load(Ordering::Relaxed) {
            return;
        }
        let r = client
            .post(&url)
            .bearer_auth(TOKEN)
            .header("content-type", "application/json")
            .body(delivery(id))
            .send()
            .await;
        let mut s = seen.lock().expect("seen");
        match r {
            Ok(resp) if resp.status() == 200 => {
                s.acked.insert(id);
            }
            _ => {
                s.unanswered.insert(id);
                return;
            }
        }
    }
}

/// Alerts of the test by delivery id: for each, the number of its alerts and their notification counts.
async fn stored(r: &Receiver) -> BTreeMap<u64, Vec<i64>> {
    let mut by_delivery = BTreeMap::<u64, Vec<i64>>::new();
    for a in r.alerts("service=durable").await {
        let id: u64 = a["labels"]["delivery"].as_str().and_then(|s| s.parse().ok()).expect("delivery label");
        by_delivery.entry(id).or_default().push(a["notifications"].as_i64().expect("count"));
    }
    by_delivery
}

macro_rules! on_both_stores {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                super::$name(super::Backend::Sqlite).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                super::$name(super::Backend::Postgres).await
            }
        }
    )*};
}

on_both_stores!(acknowledged_deliveries_survive_kill_9);

async fn acknowledged_deliveries_survive_kill_9(backend: Backend) {
    let store = TestStore::new(backend);
    let mut r = Receiver::start(&store.db, &[]).await;
    let url = r.url("/api/v1/alertmanager");
    let stop = Arc::new(AtomicBool::new(false));
    let seen = Arc::new(std::sync::Mutex::new(Seen::default()));
    let tasks: Vec<_> =
        (0..SENDERS).map(|i| tokio::spawn(sender(url.clone(), i * 1_000_000, stop.clone(), seen.clone()))).collect();
    // Kill in the middle of the stream, once a good number of deliveries were acknowledged.
    let deadline = Instant::now() + Duration::from_secs(60);
    while seen.lock().expect("seen").acked.len() < 400 {
        assert!(Instant::now() < deadline, "the receiver acknowledged too few deliveries within 60s");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    r.kill9();
    stop.store(true, Ordering::Relaxed);
    for t in tasks {
        t.await.expect("sender task");
    }
    let (acked, unanswered) = {
        let s = seen.lock().expect("seen");
        (s.acked.clone(), s.unanswered.clone())
    };
    assert!(!unanswered.is_empty(), "the kill should have cut some deliveries in flight");

    r.restart().await;
    let after = stored(&r).await;
    let missing: Vec<u64> =
        acked.iter().copied().filter(|id| after.get(id).map(Vec::len) != Some(ALERTS_PER_DELIVERY)).collect();
    assert!(missing.is_empty(), "{} acknowledged deliveries lost after kill -9: {missing:?}", missing.len());
    // A delivery is never half-stored: every stored one has all its alerts.
    assert!(after.values().all(|v| v.len() == ALERTS_PER_DELIVERY), "a delivery was half-stored");
    assert!(after.values().flatten().all(|n| *n == 1), "an alert was stored twice");

    // The senders retry what was not answered, and Alertmanager-style retries of acknowledged
    // ones: each is stored once.
    let client = common::client();
    for id in acked.iter().take(50).chain(unanswered.iter()) {
        let resp = client
            .post(&url)
            .bearer_auth(TOKEN)
            .header("content-type", "application/json")
            .body(delivery(*id))
            .send()
            .await
            .expect("retry");
        assert_eq!(resp.status(), 200);
        let status = resp.json::<Value>().await.expect("json")["status"].clone();
        if acked.contains(id) {
            assert_eq!(status, "duplicate", "delivery {id} was acknowledged before");
        }
    }
    let last = stored(&r).await;
    assert_eq!(
        last.len(),
        acked.len()
            + unanswered.len()
            + after.keys().filter(|id| !acked.contains(id) && !unanswered.contains(id)).count()
    );
    assert!(last.values().all(|v| v.len() == ALERTS_PER_DELIVERY && v.iter().all(|n| *n == 1)));
    eprintln!(
        "{backend:?}: {} acknowledged before kill -9, {} in flight, {} stored after restart",
        acked.len(),
        unanswered.len(),
        after.len()
    );
}
