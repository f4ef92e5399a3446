//! A lock-free fixed-bucket histogram for the request hot path.
//! Observations are atomic adds; exemplar slots are written with `try_lock` so a busy slot is skipped, never waited on.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use super::exposition::{Exemplar, HistogramSnapshot};

/// The OpenTelemetry advice for `http.server.request.duration`, in seconds.
pub const OTEL_DURATION_BUCKETS: [f64; 14] =
    [0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0];

/// Body size buckets in bytes: 100 B to 100 MB in decades.
pub const BODY_SIZE_BUCKETS: [f64; 7] = [100.0, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8];

#[derive(Clone, Copy)]
struct ExemplarSlot {
    trace_id: [u8; 16],
    value: f64,
    timestamp: f64,
}

pub struct Histogram {
    bounds: std::sync::Arc<[f64]>,
    /// Non-cumulative counts; the last one is the `+Inf` overflow bucket.
    counts: Box<[AtomicU64]>,
    sum_bits: AtomicU64,
    exemplars: Box<[Mutex<Option<ExemplarSlot>>]>,
}

impl Histogram {
    pub fn new(bounds: std::sync::Arc<[f64]>) -> Self {
        let n = bounds.len() + 1;
        Histogram {
            bounds,
            counts: (0..n).map(|_| AtomicU64::new(0)).collect(),
            sum_bits: AtomicU64::new(0f64.to_bits()),
            exemplars: (0..n).map(|_| Mutex::new(None)).collect(),
        }
    }

    fn bucket_index(&self, v: f64) -> usize {
        // Prometheus buckets are upper-inclusive (`le`).
        self.bounds.iter().position(|b| v <= *b).unwrap_or(self.bounds.len())
    }

    pub fn observe(&self, v: f64) {
        let i = self.bucket_index(v);
        self.counts[i].fetch_add(1, Ordering::Relaxed);
        self.add_sum(v);
    }

    /// Observes `v` and records it as the bucket's exemplar for `trace_id`.
    pub fn observe_with_exemplar(&self, v: f64, trace_id: [u8; 16], timestamp: f64) {
        let i = self.bucket_index(v);
        self.counts[i].fetch_add(1, Ordering::Relaxed);
        self.add_sum(v);
        if let Ok(mut slot) = self.exemplars[i].try_lock() {
            *slot = Some(ExemplarSlot { trace_id, value: v, timestamp });
        }
    }

    fn add_sum(&self, v: f64) {
        let mut current = self.sum_bits.load(Ordering::Relaxed);
        loop {
            let next = (f64::from_bits(current) + v).to_bits();
            match self.sum_bits.compare_exchange_weak(current, next, Ordering::Relaxed, Ordering::Relaxed) {
                Ok(_) => return,
                Err(seen) => current = seen,
            }
        }
    }

    /// A self-consistent view: `_count` is the sum of the buckets read.
    pub fn snapshot(&self) -> HistogramSnapshot {
        let mut cumulative = Vec::with_capacity(self.counts.len());
        let mut running = 0u64;
        for c in self.counts.iter() {
            running += c.load(Ordering::Relaxed);
            cumulative.push(running);
        }
        let exemplars = self
            .exemplars
            .iter()
            .map(|slot| {
                let slot = slot.lock().map(|s| *s).unwrap_or(None)?;
                Some(Exemplar { trace_id: hex(&slot.trace_id), value: slot.value, timestamp: slot.timestamp })
            })
            .collect();
        HistogramSnapshot {
            bounds: self.bounds.to_vec(),
            cumulative,
            sum: f64::from_bits(self.sum_bits.load(Ordering::Relaxed)),
            exemplars,
        }
    }
}

fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(DIGITS[(b >> 4) as usize] as char);
        s.push(DIGITS[(b & 0xf) as usize] as char);
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_upper_inclusive_and_cumulative() {
        let h = Histogram::new(vec![0.1, 1.0].into());
        for v in [0.05, 0.1, 0.5, 1.0, 3.0] {
            h.observe(v);
        }
        let s = h.snapshot();
        assert_eq!(s.cumulative, vec![2, 4, 5]);
        assert_eq!(s.count(), 5);
        assert!((s.sum - 4.65).abs() < 1e-9);
    }

    #[test]
    fn exemplar_is_kept_per_bucket() {
        let h = Histogram::new(vec![0.1, 1.0].into());
        h.observe_with_exemplar(0.5, [0xab; 16], 10.0);
        let s = h.snapshot();
        assert_eq!(s.exemplars[0], None);
        let e = s.exemplars[1].as_ref().expect("exemplar in bucket le=1");
        assert_eq!(e.trace_id, "ab".repeat(16));
        assert_eq!(e.value, 0.5);
    }

    #[test]
    fn concurrent_observations_are_all_counted() {
        let h = std::sync::Arc::new(Histogram::new(OTEL_DURATION_BUCKETS.to_vec().into()));
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let h = h.clone();
                std::thread::spawn(move || (0..10_000).for_each(|i| h.observe(i as f64 / 1000.0)))
            })
            .collect();
        threads.into_iter().for_each(|t| t.join().expect("observer thread"));
        assert_eq!(h.snapshot().count(), 40_000);
    }
}
