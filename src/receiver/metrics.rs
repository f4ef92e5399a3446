//! The receiver's own metrics (`redline_receiver_*`), counted lock-free and rendered through
//! the project's `ExpositionWriter` for `GET /metrics`.

use std::sync::atomic::{AtomicU64, Ordering};

use crate::telemetry::metrics::{ExpositionWriter, Format, Histogram, Kind};

/// Why a delivery was refused; the `reason` label of `redline_receiver_rejected_total`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rejection {
    /// Missing or wrong credentials (401).
    Unauthorized,
    /// Not JSON, or not the expected schema (400).
    Invalid,
    /// Body over `--max-body` (413).
    TooLarge,
    /// The store could not commit it (503; the sender retries).
    Store,
}

impl Rejection {
    const ALL: [Rejection; 4] = [Rejection::Unauthorized, Rejection::Invalid, Rejection::TooLarge, Rejection::Store];

    pub fn as_str(self) -> &'static str {
        match self {
            Rejection::Unauthorized => "unauthorized",
            Rejection::Invalid => "invalid",
            Rejection::TooLarge => "too_large",
            Rejection::Store => "store_error",
        }
    }
}

/// Commit latencies from 0.5 ms (a group commit on a fast disk) to 10 s.
const COMMIT_BUCKETS: [f64; 14] =
    [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];

pub struct ReceiverMetrics {
    received: AtomicU64,
    stored: AtomicU64,
    duplicates: AtomicU64,
    refreshed: AtomicU64,
    rejected: [AtomicU64; 4],
    commits: AtomicU64,
    commit_duration: Histogram,
}

impl Default for ReceiverMetrics {
    fn default() -> Self {
        ReceiverMetrics {
            received: AtomicU64::new(0),
            stored: AtomicU64::new(0),
            duplicates: AtomicU64::new(0),
            refreshed: AtomicU64::new(0),
            rejected: Default::default(),
            commits: AtomicU64::new(0),
            commit_duration: Histogram::new(COMMIT_BUCKETS.to_vec().into()),
        }
    }
}

impl ReceiverMetrics {
    pub fn received(&self) {
        self.received.fetch_add(1, Ordering::Relaxed);
    }

    pub fn stored(&self) {
        self.stored.fetch_add(1, Ordering::Relaxed);
    }

    pub fn duplicate(&self) {
        self.duplicates.fetch_add(1, Ordering::Relaxed);
    }

    pub fn refreshed(&self) {
        self.refreshed.fetch_add(1, Ordering::Relaxed);
    }

    pub fn rejected(&self, why: Rejection) {
        self.rejected[why as usize].fetch_add(1, Ordering::Relaxed);
    }

    /// One transaction committed (holding one or more deliveries).
    pub fn observe_commit(&self, seconds: f64) {
        self.commits.fetch_add(1, Ordering::Relaxed);
        self.commit_duration.observe(seconds);
    }

    pub fn render(&self, format: Format) -> String {
        let mut w = ExpositionWriter::new(format);
        let counter = |w: &mut ExpositionWriter, name: &str, help: &str, v: &AtomicU64| {
            w.family(name, help, Kind::Counter);
            w.sample(&[], v.load(Ordering::Relaxed) as f64);
        };
        counter(
            &mut w,
            "redline_receiver_notifications_received_total",
            "Deliveries posted to the webhook and v2 alert endpoints, accepted or not.",
            &self.received,
        );
        counter(
            &mut w,
            "redline_receiver_notifications_stored_total",
            "Deliveries durably committed for the first time.",
            &self.stored,
        );
        counter(
            &mut w,
            "redline_receiver_notifications_duplicates_total",
            "Deliveries recognised as already stored (retries) and acknowledged without a change.",
            &self.duplicates,
        );
        counter(
            &mut w,
            "redline_receiver_notifications_refreshed_total",
            "v2 alert posts that only moved the endsAt of alerts already firing (no new history event).",
            &self.refreshed,
        );
        w.family(
            "redline_receiver_notifications_rejected_total",
            "Deliveries refused, by reason (unauthorized, invalid, too_large, store_error).",
            Kind::Counter,
        );
        for why in Rejection::ALL {
            w.sample(&[("reason", why.as_str())], self.rejected[why as usize].load(Ordering::Relaxed) as f64);
        }
        counter(
            &mut w,
            "redline_receiver_commits_total",
            "Store transactions committed; stored deliveries per commit shows the group-commit batching.",
            &self.commits,
        );
        w.family(
            "redline_receiver_commit_duration_seconds",
            "Time to write and durably commit one batch of deliveries.",
            Kind::Histogram,
        );
        w.histogram(&[], &self.commit_duration.snapshot());
        w.finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_every_family_with_zeroes_before_traffic() {
        let m = ReceiverMetrics::default();
        m.rejected(Rejection::TooLarge);
        m.observe_commit(0.002);
        let text = m.render(Format::Prometheus);
        assert!(text.contains("redline_receiver_notifications_received_total 0\n"), "{text}");
        assert!(text.contains("redline_receiver_notifications_rejected_total{reason=\"too_large\"} 1\n"), "{text}");
        assert!(text.contains("redline_receiver_notifications_rejected_total{reason=\"store_error\"} 0\n"), "{text}");
        assert!(text.contains("redline_receiver_commit_duration_seconds_bucket{le=\"0.0025\"} 1\n"), "{text}");
        assert!(text.contains("redline_receiver_commit_duration_seconds_count 1\n"), "{text}");
    }
}
