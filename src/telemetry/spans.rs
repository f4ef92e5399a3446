//! Span export: the proxy pushes each finished, sampled SERVER span into a bounded lock-free
//! queue; a background task drains it in batches and exports over OTLP, counting drops.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crossbeam_queue::ArrayQueue;

use crate::telemetry::metrics::{ExpositionWriter, Kind};
use crate::telemetry::otlp::{ExportSettings, Exporter, FinishedSpan};

/// Counters of the export pipeline, shared with `/metrics`.
#[derive(Default)]
pub struct SpanCounters {
    exported: AtomicU64,
    dropped: AtomicU64,
}

impl SpanCounters {
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    pub fn exported(&self) -> u64 {
        self.exported.load(Ordering::Relaxed)
    }

    pub fn write(&self, w: &mut ExpositionWriter) {
        w.family("redline_spans_exported_total", "Spans accepted by the OTLP collector.", Kind::Counter);
        w.sample(&[], self.exported() as f64);
        w.family(
            "redline_spans_dropped_total",
            "Spans dropped because the export queue was full or the collector failed.",
            Kind::Counter,
        );
        w.sample(&[], self.dropped() as f64);
    }
}

/// The hot-path end of the pipeline: never blocks and never wakes the exporter (a wake per
/// span costs a cross-thread syscall); a full queue is a counted drop.
pub struct SpanSink {
    queue: Arc<ArrayQueue<FinishedSpan>>,
    counters: Arc<SpanCounters>,
    /// Dropped with the last sink, which tells the exporter to send what is left and stop.
    _open: Arc<()>,
}

impl SpanSink {
    pub fn submit(&self, span: FinishedSpan) {
        if self.queue.push(span).is_err() {
            self.counters.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// The export task; `finish` waits for the last batch once every sink is dropped.
pub struct SpanExport {
    task: tokio::task::JoinHandle<()>,
}

impl SpanExport {
    /// Waits up to `limit` for queued spans to be exported after the sinks are gone.
    pub async fn finish(self, limit: Duration) {
        let _ = tokio::time::timeout(limit, self.task).await;
    }
}

/// Builds the exporter and starts the export task on the current runtime.
pub fn start(settings: ExportSettings, counters: Arc<SpanCounters>) -> Result<(SpanSink, SpanExport), String> {
    let exporter = Exporter::new(&settings)
        .map_err(|e| format!("tracing.endpoint: cannot build the OTLP exporter for {}: {e}", settings.endpoint))?;
    let queue = Arc::new(ArrayQueue::new(settings.queue_size.max(1)));
    let open = Arc::new(());
    let task = tokio::spawn(export_loop(queue.clone(), Arc::downgrade(&open), exporter, settings, counters.clone()));
    Ok((SpanSink { queue, counters, _open: open }, SpanExport { task }))
}

/// How often the exporter looks at the queue: short enough that a default-size queue (2048)
/// does not overflow between looks at tens of thousands of spans per second.
const DRAIN_TICK: Duration = Duration::from_millis(20);

async fn export_loop(
    queue: Arc<ArrayQueue<FinishedSpan>>,
    open: std::sync::Weak<()>,
    mut exporter: Exporter,
    settings: ExportSettings,
    counters: Arc<SpanCounters>,
) {
    let mut batch: Vec<FinishedSpan> = Vec::with_capacity(settings.batch_size);
    let mut batch_started = Instant::now();
    let mut last_failure_log: Option<Instant> = None;
    let mut tick = tokio::time::interval(DRAIN_TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let closing = open.strong_count() == 0;
        loop {
            if batch.is_empty() {
                batch_started = Instant::now();
            }
            while batch.len() < settings.batch_size {
                match queue.pop() {
                    Some(span) => batch.push(span),
                    None => break,
                }
            }
            let due = batch.len() >= settings.batch_size || batch_started.elapsed() >= settings.batch_interval;
            if batch.is_empty() || !(due || closing) {
                break;
            }
            let n = batch.len() as u64;
            let outcome = tokio::time::timeout(settings.export_timeout, exporter.export(&batch)).await;
            batch.clear();
            match outcome {
                Ok(Ok(())) => {
                    counters.exported.fetch_add(n, Ordering::Relaxed);
                }
                failed => {
                    counters.dropped.fetch_add(n, Ordering::Relaxed);
                    // A collector outage would otherwise log once per batch.
                    if last_failure_log.is_none_or(|t| t.elapsed() > Duration::from_secs(60)) {
                        let reason = match failed {
                            Ok(Err(e)) => e,
                            _ => format!("no answer within {:?}", settings.export_timeout),
                        };
                        tracing::warn!(endpoint = %settings.endpoint, spans = n, error = %reason, "span export failed; spans dropped");
                        last_failure_log = Some(Instant::now());
                    }
                }
            }
        }
        if closing && queue.is_empty() {
            return;
        }
    }
}

/// Resource attributes: `OTEL_RESOURCE_ATTRIBUTES` first, then redline's own keys on top.
pub fn resource_attributes(
    service: &str,
    version: &str,
    namespace: &str,
    pod: Option<&str>,
    otel_resource_attributes: Option<&str>,
) -> Vec<(String, String)> {
    let mut attrs: Vec<(String, String)> = Vec::new();
    let mut set = |k: &str, v: &str| match attrs.iter_mut().find(|(key, _)| key == k) {
        Some(slot) => slot.1 = v.to_string(),
        None => attrs.push((k.to_string(), v.to_string())),
    };
    for pair in otel_resource_attributes.unwrap_or("").split(',') {
        if let Some((k, v)) = pair.split_once('=') {
            let (k, v) = (k.trim(), v.trim());
            if !k.is_empty() {
                set(k, &percent_decode(v));
            }
        }
    }
    set("service.name", service);
    set("service.version", version);
    set("service.namespace", namespace);
    if let Some(pod) = pod {
        set("k8s.pod.name", pod);
    }
    set("telemetry.sdk.name", "redline");
    set("telemetry.sdk.language", "rust");
    attrs
}

/// `OTEL_RESOURCE_ATTRIBUTES` values are percent-encoded (W3C baggage octets).
fn percent_decode(v: &str) -> String {
    percent_encoding::percent_decode_str(v).decode_utf8_lossy().into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::telemetry::otlp::http_traces_url;

    #[test]
    fn resource_attributes_merge_env_then_config() {
        let attrs = resource_attributes(
            "checkout",
            "2.3.1",
            "shop",
            Some("pod-1"),
            Some("deployment.environment=prod, service.name=ignored,team=a%20b"),
        );
        let get = |k: &str| attrs.iter().find(|(key, _)| key == k).map(|(_, v)| v.as_str());
        assert_eq!(get("service.name"), Some("checkout"));
        assert_eq!(get("deployment.environment"), Some("prod"));
        assert_eq!(get("team"), Some("a b"));
        assert_eq!(get("k8s.pod.name"), Some("pod-1"));
    }

    #[test]
    fn http_url_gets_the_traces_path_once() {
        assert_eq!(http_traces_url("http://jaeger:4318"), "http://jaeger:4318/v1/traces");
        assert_eq!(http_traces_url("http://jaeger:4318/"), "http://jaeger:4318/v1/traces");
        assert_eq!(http_traces_url("http://c:4318/v1/traces"), "http://c:4318/v1/traces");
    }
}
