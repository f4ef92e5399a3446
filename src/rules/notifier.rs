//! Delivery of alerts to every configured Alertmanager (`POST /api/v2/alerts`), each with its
//! own bounded queue and sender, retried with backoff; counts what was sent, failed and dropped.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Serialize;
use tokio::sync::Notify;

use super::alerting::LabelMap;
use super::engine::Notification;
use crate::telemetry::metrics::{ExpositionWriter, Kind};

/// Alerts per request, as Prometheus batches them.
const MAX_BATCH: usize = 64;
/// Alerts waiting per Alertmanager; past it the oldest are dropped and counted.
pub const QUEUE_CAPACITY: usize = 10_000;
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
const BACKOFF_START: Duration = Duration::from_millis(200);
const BACKOFF_MAX: Duration = Duration::from_secs(10);

/// The wire format of one alert in the Alertmanager v2 API.
#[derive(Debug, Serialize)]
struct PostableAlert<'a> {
    labels: &'a LabelMap,
    #[serde(skip_serializing_if = "LabelMap::is_empty")]
    annotations: &'a LabelMap,
    #[serde(rename = "startsAt")]
    starts_at: String,
    #[serde(rename = "endsAt")]
    ends_at: String,
    #[serde(rename = "generatorURL")]
    generator_url: &'a str,
}

/// The JSON body for a batch of alerts.
pub fn encode(alerts: &[Notification]) -> Vec<u8> {
    let body: Vec<PostableAlert<'_>> = alerts
        .iter()
        .map(|a| PostableAlert {
            labels: &a.labels,
            annotations: &a.annotations,
            starts_at: rfc3339_millis(a.starts_at_ms),
            ends_at: rfc3339_millis(a.ends_at_ms),
            generator_url: &a.generator_url,
        })
        .collect();
    serde_json::to_vec(&body).unwrap_or_default()
}

/// `2024-01-02T03:04:05.678Z`.
pub fn rfc3339_millis(ms: i64) -> String {
    let t = time::OffsetDateTime::from_unix_timestamp_nanos(ms as i128 * 1_000_000)
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second(),
        t.millisecond()
    )
}

struct Queued {
    seq: u64,
    alert: Notification,
}

/// One Alertmanager: its queue and counters.
struct Target {
    /// The Alertmanager's base URL as configured (the `alertmanager` label).
    name: String,
    endpoint: String,
    queue: Mutex<VecDeque<Queued>>,
    next_seq: AtomicU64,
    wake: Notify,
    sent: AtomicU64,
    errors: AtomicU64,
    dropped: AtomicU64,
}

impl Target {
    fn lock(&self) -> std::sync::MutexGuard<'_, VecDeque<Queued>> {
        self.queue.lock().unwrap_or_else(|e| e.into_inner())
    }
}

pub struct Notifier {
    targets: Vec<Arc<Target>>,
    stopping: AtomicBool,
    capacity: usize,
}

impl Notifier {
    /// Starts one sender task per Alertmanager base URL (`http://am:9093` or https).
    pub fn start(alertmanagers: &[String], capacity: usize) -> Result<Arc<Notifier>, String> {
        let client = crate::tls::http_client()?
            .timeout(REQUEST_TIMEOUT)
            .build()
            .map_err(|e| format!("cannot build the Alertmanager client: {e}"))?;
        let targets: Vec<Arc<Target>> = alertmanagers
            .iter()
            .map(|base| {
                Arc::new(Target {
                    name: base.trim_end_matches('/').to_string(),
                    endpoint: format!("{}/api/v2/alerts", base.trim_end_matches('/')),
                    queue: Mutex::new(VecDeque::new()),
                    next_seq: AtomicU64::new(0),
                    wake: Notify::new(),
                    sent: AtomicU64::new(0),
                    errors: AtomicU64::new(0),
                    dropped: AtomicU64::new(0),
                })
            })
            .collect();
        let notifier = Arc::new(Notifier { targets, stopping: AtomicBool::new(false), capacity });
        for t in &notifier.targets {
            tokio::spawn(run_sender(t.clone(), client.clone(), notifier.clone()));
        }
        Ok(notifier)
    }

    /// Queues alerts for every Alertmanager; never waits.
    pub fn send(&self, alerts: &[Notification]) {
        if alerts.is_empty() {
            return;
        }
        for t in &self.targets {
            let mut q = t.lock();
            for a in alerts {
                let seq = t.next_seq.fetch_add(1, Ordering::Relaxed);
                q.push_back(Queued { seq, alert: a.clone() });
            }
            let over = q.len().saturating_sub(self.capacity);
            if over > 0 {
                q.drain(..over);
                t.dropped.fetch_add(over as u64, Ordering::Relaxed);
            }
            drop(q);
            t.wake.notify_one();
        }
    }

    /// Gives queued alerts until `limit` to go out (at shutdown), then stops the senders.
    pub async fn flush(&self, limit: Duration) {
        let deadline = tokio::time::Instant::now() + limit;
        while self.targets.iter().any(|t| !t.lock().is_empty()) && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        self.stopping.store(true, Ordering::Relaxed);
        for t in &self.targets {
            t.wake.notify_one();
        }
    }

    pub fn write_metrics(&self, w: &mut ExpositionWriter) {
        if self.targets.is_empty() {
            return;
        }
        type Pick = fn(&Target) -> f64;
        let families: [(&str, &str, Kind, Pick); 5] = [
            ("redline_notifications_sent_total", "Alerts delivered to an Alertmanager.", Kind::Counter, |t| {
                t.sent.load(Ordering::Relaxed) as f64
            }),
            (
                "redline_notification_errors_total",
                "Alerts in requests to an Alertmanager that failed (they are retried).",
                Kind::Counter,
                |t| t.errors.load(Ordering::Relaxed) as f64,
            ),
            (
                "redline_notifications_dropped_total",
                "Alerts dropped because the queue for an Alertmanager was full or it refused them.",
                Kind::Counter,
                |t| t.dropped.load(Ordering::Relaxed) as f64,
            ),
            ("redline_notifications_queue_length", "Alerts waiting to be sent to an Alertmanager.", Kind::Gauge, |t| {
                t.lock().len() as f64
            }),
            (
                "redline_notifications_queue_capacity",
                "Alerts that can wait for an Alertmanager before the oldest are dropped.",
                Kind::Gauge,
                |_| QUEUE_CAPACITY as f64,
            ),
        ];
        for (name, help, kind, pick) in families {
            w.family(name, help, kind);
            for t in &self.targets {
                w.sample(&[("alertmanager", &t.name)], pick(t));
            }
        }
    }
}

enum Outcome {
    Delivered,
    /// Worth retrying: connection failure, timeout, 5xx, 429.
    Retry(String),
    /// The Alertmanager refused the alerts; sending them again would not help.
    Refused(String),
}

async fn post(client: &reqwest::Client, endpoint: &str, body: Vec<u8>) -> Outcome {
    let res = client.post(endpoint).header("content-type", "application/json").body(body).send().await;
    match res {
        Ok(r) if r.status().is_success() => Outcome::Delivered,
        Ok(r) => {
            let status = r.status();
            let text = r.text().await.unwrap_or_default();
            let msg = format!("{status}: {}", text.trim());
            if status.is_server_error() || status == reqwest::StatusCode::TOO_MANY_REQUESTS {
                Outcome::Retry(msg)
            } else {
                Outcome::Refused(msg)
            }
        }
        Err(e) => Outcome::Retry(crate::errors::with_causes(&e)),
    }
}

async fn run_sender(t: Arc<Target>, client: reqwest::Client, notifier: Arc<Notifier>) {
    let mut backoff = BACKOFF_START;
    loop {
        let batch: Vec<(u64, Notification)> =
            t.lock().iter().take(MAX_BATCH).map(|q| (q.seq, q.alert.clone())).collect();
        if batch.is_empty() {
            if notifier.stopping.load(Ordering::Relaxed) {
                return;
            }
            t.wake.notified().await;
            continue;
        }
        let last_seq = batch.last().map_or(0, |b| b.0);
        let alerts: Vec<Notification> = batch.into_iter().map(|(_, a)| a).collect();
        let n = alerts.len() as u64;
        let outcome = post(&client, &t.endpoint, encode(&alerts)).await;
        let delivered_or_refused = match outcome {
            Outcome::Delivered => {
                t.sent.fetch_add(n, Ordering::Relaxed);
                backoff = BACKOFF_START;
                true
            }
            Outcome::Refused(msg) => {
                t.errors.fetch_add(n, Ordering::Relaxed);
                t.dropped.fetch_add(n, Ordering::Relaxed);
                tracing::error!(alertmanager = %t.name, alerts = n, error = %msg, "Alertmanager refused alerts; dropped");
                true
            }
            Outcome::Retry(msg) => {
                t.errors.fetch_add(n, Ordering::Relaxed);
                tracing::warn!(alertmanager = %t.name, alerts = n, error = %msg, retry_in_ms = backoff.as_millis() as u64, "sending alerts failed; will retry");
                false
            }
        };
        if delivered_or_refused {
            // Entries may have been dropped from the front meanwhile: remove by sequence.
            let mut q = t.lock();
            while q.front().is_some_and(|f| f.seq <= last_seq) {
                q.pop_front();
            }
        } else {
            if notifier.stopping.load(Ordering::Relaxed) {
                return;
            }
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(BACKOFF_MAX);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_the_v2_api_shape_with_millisecond_times() {
        let a = Notification {
            labels: [("alertname".to_string(), "A".to_string())].into(),
            annotations: LabelMap::new(),
            starts_at_ms: 1_700_000_000_123,
            ends_at_ms: 1_700_000_240_000,
            generator_url: "http://p/graph?g0.expr=x&g0.tab=1".into(),
        };
        let body = String::from_utf8(encode(&[a])).unwrap();
        assert_eq!(
            body,
            r#"[{"labels":{"alertname":"A"},"startsAt":"2023-11-14T22:13:20.123Z","endsAt":"2023-11-14T22:17:20.000Z","generatorURL":"http://p/graph?g0.expr=x&g0.tab=1"}]"#
        );
    }
}
