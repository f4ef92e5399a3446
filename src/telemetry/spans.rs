//! Span export. A request's span is encoded when the request ends, on the proxy worker's own
//! thread, into that thread's chunk of spans (no per-span hand-off, nothing of the request
//! kept); full chunks, and every chunk on the worker's housekeeping tick, go into a bounded
//! lock-free queue that a background task drains in batches and exports over OTLP. Spans that
//! do not fit the queue are dropped and counted.
//!
//! Encoding on the worker rather than on the exporter: the exporter used to get each span as a
//! 320-byte record holding references into the request (shared byte buffers whose counts both
//! threads then touched) and copies of its header values. Callgrind put that hand-off, with the
//! exporter's encode, at about 3,000 instructions per span; encoding where the request's data
//! is already in cache, straight into the chunk, costs about half.

use std::cell::RefCell;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use crossbeam_queue::ArrayQueue;

use crate::telemetry::chunk_pool::ChunkPool;
use crate::telemetry::metrics::{ExpositionWriter, Kind};
use crate::telemetry::otlp::{self, EncodedSpans, ExportSettings, Exporter, FinishedSpan};

/// A worker hands its chunk over at this many spans (or the batch size, when smaller).
const CHUNK_SPANS: usize = 64;
/// ... or at this many bytes, whichever comes first.
const CHUNK_BYTES: usize = 32 * 1024;
/// A chunk's buffer has room past `CHUNK_BYTES` for the span that crosses the mark and the
/// room the encoder makes for it (1 KiB and more): the buffer does not grow, copying the chunk
/// (a 25 KiB copy every 64 spans, callgrind's biggest `memcpy` caller when it did).
const CHUNK_CAPACITY: usize = CHUNK_BYTES + 16 * 1024;
/// Sent chunks' buffers kept for the workers to fill again (`chunk_pool`): a 20 ms drain tick's
/// worth at 30,000 spans per second, 768 KiB at most.
const SPARE_CHUNKS: usize = 16;

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

/// The queue between the sinks and the export task.
struct Queue {
    chunks: ArrayQueue<EncodedSpans>,
    /// Spans in `chunks`: the queue's bound (`queue_size`) counts spans, not chunks.
    spans: AtomicUsize,
    limit: usize,
    /// Spans per chunk on threads that batch.
    chunk_spans: usize,
    /// The buffers of the chunks of threads that batch.
    buffers: Arc<ChunkPool>,
    counters: Arc<SpanCounters>,
}

impl Queue {
    /// A queue of `queue_size` spans, exported `batch_size` at a time.
    fn new(queue_size: usize, batch_size: usize, counters: Arc<SpanCounters>) -> Queue {
        Queue {
            chunks: ArrayQueue::new(queue_size.max(1)),
            spans: AtomicUsize::new(0),
            limit: queue_size.max(1),
            chunk_spans: batch_size.clamp(1, CHUNK_SPANS),
            buffers: Arc::new(ChunkPool::new(SPARE_CHUNKS, CHUNK_CAPACITY)),
            counters,
        }
    }

    /// Queues `spans`, or drops and counts them when the queue is full.
    fn hand_over(&self, spans: EncodedSpans) {
        let n = spans.len();
        if n == 0 {
            return;
        }
        let before = self.spans.fetch_add(n, Ordering::AcqRel);
        if before + n > self.limit || self.chunks.push(spans).is_err() {
            self.spans.fetch_sub(n, Ordering::AcqRel);
            self.counters.dropped.fetch_add(n as u64, Ordering::Relaxed);
        }
    }

    fn pop(&self) -> Option<EncodedSpans> {
        let spans = self.chunks.pop()?;
        self.spans.fetch_sub(spans.len(), Ordering::AcqRel);
        Some(spans)
    }
}

thread_local! {
    /// Some on threads that batch spans (proxy workers, which flush on a timer).
    static BATCH: RefCell<Option<Batch>> = const { RefCell::new(None) };
}

/// A thread's chunk in progress, and the queue it goes to.
struct Batch {
    queue: Option<Arc<Queue>>,
    spans: EncodedSpans,
}

impl Batch {
    fn hand_over(&mut self) {
        if let Some(queue) = &self.queue
            && !self.spans.is_empty()
        {
            let chunk = EncodedSpans::from_pool(&queue.buffers);
            queue.hand_over(std::mem::replace(&mut self.spans, chunk));
        }
    }
}

impl Drop for Batch {
    /// A thread that ends hands over what it holds.
    fn drop(&mut self) {
        self.hand_over();
    }
}

/// From now on this thread keeps the spans it finishes in a chunk, handed over when full or
/// at [`flush_thread`].
pub fn batch_this_thread() {
    BATCH.with(|b| *b.borrow_mut() = Some(Batch { queue: None, spans: EncodedSpans::with_capacity(CHUNK_CAPACITY) }));
}

/// Hands this thread's chunk to the exporter (called on a timer and at shutdown).
pub fn flush_thread() {
    BATCH.with(|b| {
        if let Some(batch) = b.borrow_mut().as_mut() {
            batch.hand_over();
        }
    });
}

/// The hot-path end of the pipeline: never blocks and never wakes the exporter (a wake per
/// span costs a cross-thread syscall); a full queue is a counted drop.
pub struct SpanSink {
    queue: Arc<Queue>,
    /// Dropped with the last sink, which tells the exporter to send what is left and stop.
    _open: Arc<()>,
}

impl SpanSink {
    /// Encodes `span` into this thread's chunk, or, on a thread that does not batch, queues
    /// it on its own.
    pub fn submit(&self, span: &FinishedSpan<'_>) {
        let queued = BATCH.with(|b| {
            let mut b = b.borrow_mut();
            let Some(batch) = b.as_mut() else { return false };
            if !batch.queue.as_ref().is_some_and(|q| Arc::ptr_eq(q, &self.queue)) {
                // The chunk was another sink's (one from before a reload): it goes there first.
                batch.hand_over();
                batch.queue = Some(self.queue.clone());
            }
            batch.spans.push(span);
            if batch.spans.len() >= self.queue.chunk_spans || batch.spans.bytes() >= CHUNK_BYTES {
                batch.hand_over();
            }
            true
        });
        if !queued {
            let mut one = EncodedSpans::with_capacity(2048);
            one.push(span);
            self.queue.hand_over(one);
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
    let queue = Arc::new(Queue::new(settings.queue_size, settings.batch_size, counters));
    let open = Arc::new(());
    let task = tokio::spawn(export_loop(queue.clone(), Arc::downgrade(&open), exporter, settings));
    Ok((SpanSink { queue, _open: open }, SpanExport { task }))
}

/// How often the exporter looks at the queue: short enough that a default-size queue (2048)
/// does not overflow between looks at tens of thousands of spans per second.
const DRAIN_TICK: Duration = Duration::from_millis(20);

async fn export_loop(queue: Arc<Queue>, open: std::sync::Weak<()>, mut exporter: Exporter, settings: ExportSettings) {
    let counters = queue.counters.clone();
    let mut batch: Vec<EncodedSpans> = Vec::new();
    let mut in_batch = 0;
    // A chunk that would have taken the batch past `batch_size`: the next batch's first.
    let mut next: Option<EncodedSpans> = None;
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
            let mut full = false;
            while let Some(chunk) = next.take().or_else(|| queue.pop()) {
                if !batch.is_empty() && in_batch + chunk.len() > settings.batch_size {
                    next = Some(chunk);
                    full = true;
                    break;
                }
                in_batch += chunk.len();
                batch.push(chunk);
                if in_batch >= settings.batch_size {
                    full = true;
                    break;
                }
            }
            let due = full || batch_started.elapsed() >= settings.batch_interval;
            if batch.is_empty() || !(due || closing) {
                break;
            }
            let n = otlp::spans(&batch) as u64;
            let outcome =
                tokio::time::timeout(settings.export_timeout, exporter.export(std::mem::take(&mut batch))).await;
            in_batch = 0;
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
        if closing && next.is_none() && queue.chunks.is_empty() {
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

    fn sink(queue_size: usize, batch_size: usize) -> (SpanSink, Arc<SpanCounters>) {
        let counters = Arc::new(SpanCounters::default());
        let queue = Arc::new(Queue::new(queue_size, batch_size, counters.clone()));
        (SpanSink { queue, _open: Arc::new(()) }, counters)
    }

    fn span(id: u8) -> FinishedSpan<'static> {
        FinishedSpan {
            trace_id: [id; 16],
            span_id: [id; 8],
            parent_span_id: None,
            method: &http::Method::GET,
            route: "/",
            path: None,
            version: http::Version::HTTP_11,
            host: None,
            status: 200,
            error_type: None,
            service_error: false,
            start: crate::telemetry::wall_clock::UnixNanos(0),
            duration: Duration::from_millis(1),
            client_ip: b"127.0.0.1",
            user_agent: None,
            request_body_size: 0,
            response_body_size: 0,
            rpc: None,
        }
    }

    /// The queue's chunks as span counts, emptying it.
    fn drain(sink: &SpanSink) -> Vec<usize> {
        std::iter::from_fn(|| sink.queue.pop()).map(|c| c.len()).collect()
    }

    #[test]
    fn a_batching_thread_hands_spans_over_in_chunks_and_on_flush() {
        let (sink, counters) = sink(100, 10);
        let sink = Arc::new(sink);
        let on_thread = sink.clone();
        // A plain thread, joined: its thread-local chunk is dropped before `join` returns (a
        // scoped thread's end is signalled before its thread-locals are dropped).
        std::thread::spawn(move || {
            let sink = on_thread;
            batch_this_thread();
            for i in 0..25 {
                sink.submit(&span(i));
            }
            assert_eq!(drain(&sink), vec![10, 10], "full chunks only, of the batch size");
            flush_thread();
            assert_eq!(drain(&sink), vec![5]);
            flush_thread();
            assert!(drain(&sink).is_empty(), "nothing twice");
            sink.submit(&span(99));
        })
        .join()
        .expect("the thread's assertions hold");
        // The thread ended holding one span: it was handed over then.
        assert_eq!(drain(&sink), vec![1]);
        assert_eq!(sink.queue.spans.load(Ordering::Relaxed), 0);
        assert_eq!(counters.dropped(), 0);
    }

    #[test]
    fn other_threads_queue_each_span_at_once() {
        let (sink, _) = sink(100, 512);
        std::thread::scope(|t| {
            t.spawn(|| {
                sink.submit(&span(1));
                sink.submit(&span(2));
                assert_eq!(drain(&sink), vec![1, 1]);
            });
        });
    }

    #[test]
    fn spans_past_the_queue_size_are_dropped_and_counted() {
        let (sink, counters) = sink(25, 10);
        std::thread::scope(|t| {
            t.spawn(|| {
                batch_this_thread();
                for i in 0..40 {
                    sink.submit(&span(i));
                }
            });
        });
        // Chunks of 10, 10, 10, 10: the third would take the queue to 30 spans of 25.
        assert_eq!(counters.dropped(), 20);
        assert_eq!(drain(&sink), vec![10, 10]);
        assert_eq!(sink.queue.spans.load(Ordering::Relaxed), 0);
        // Room again once drained.
        sink.submit(&span(1));
        assert_eq!(drain(&sink), vec![1]);
        assert_eq!(counters.dropped(), 20);
    }

    #[test]
    fn a_chunk_goes_to_the_sink_it_was_made_for() {
        let (old, _) = sink(100, 10);
        let (new, _) = sink(100, 10);
        std::thread::scope(|t| {
            t.spawn(|| {
                batch_this_thread();
                old.submit(&span(1));
                old.submit(&span(2));
                new.submit(&span(3));
                assert_eq!(drain(&old), vec![2]);
                assert!(drain(&new).is_empty());
                flush_thread();
                assert_eq!(drain(&new), vec![1]);
            });
        });
    }

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
