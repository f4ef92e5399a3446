//! Wall-clock times for telemetry (span start and end, access-line timestamps, exemplar
//! times), derived from the monotonic instants the proxy reads anyway for durations and
//! deadlines. Each thread keeps an anchor, a pair of readings of both clocks taken together,
//! and renews it once a second, so a step of the system clock shows within a second.
//!
//! Why: a request used to read the clock about ten times; each read is a vDSO call of about
//! 20 ns here (1% of the proxy's samples in `perf`), and three of them were wall-clock reads
//! of moments the proxy had just read monotonically. The OpenTelemetry SDKs do the same for
//! span end times (start plus a monotonic duration).

use std::cell::Cell;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// How long an anchor stands before both clocks are read again.
const RENEW: Duration = Duration::from_secs(1);

/// A wall-clock time as nanoseconds since the Unix epoch (0 for times before it), the form
/// OTLP, the access line and exemplars all want; arithmetic on it is plain integer work.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct UnixNanos(pub u64);

impl UnixNanos {
    pub fn of(t: SystemTime) -> UnixNanos {
        UnixNanos(t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos().min(u128::from(u64::MAX)) as u64))
    }

    /// Now, from the system clock itself.
    pub fn now() -> UnixNanos {
        UnixNanos::of(SystemTime::now())
    }

    pub fn secs(self) -> u64 {
        self.0 / 1_000_000_000
    }

    pub fn subsec_nanos(self) -> u32 {
        (self.0 % 1_000_000_000) as u32
    }

    pub fn as_secs_f64(self) -> f64 {
        self.secs() as f64 + f64::from(self.subsec_nanos()) / 1e9
    }

    pub fn after(self, d: Duration) -> UnixNanos {
        UnixNanos(self.0.saturating_add(d.as_nanos().min(u128::from(u64::MAX)) as u64))
    }
}

thread_local! {
    static ANCHOR: Cell<Option<(Instant, UnixNanos)>> = const { Cell::new(None) };
}

/// The wall-clock time of `at`, an instant read on this thread (or any: instants are
/// system-wide) at most a little while ago.
pub fn wall(at: Instant) -> UnixNanos {
    ANCHOR.with(|anchor| {
        if let Some((mono, wall)) = anchor.get()
            && let Some(after) = at.checked_duration_since(mono)
            && after < RENEW
        {
            return wall.after(after);
        }
        // Older than the anchor (an instant read before it was renewed) or past its second:
        // both clocks are read afresh.
        let (mono, wall) = (Instant::now(), UnixNanos::now());
        anchor.set(Some((mono, wall)));
        match at.checked_duration_since(mono) {
            Some(after) => wall.after(after),
            None => UnixNanos(wall.0.saturating_sub((mono - at).as_nanos().min(u128::from(u64::MAX)) as u64)),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn apart(a: UnixNanos, b: UnixNanos) -> Duration {
        Duration::from_nanos(a.0.abs_diff(b.0))
    }

    #[test]
    fn derived_times_match_the_system_clock_and_keep_their_order() {
        let t0 = Instant::now();
        let w0 = wall(t0);
        assert!(apart(w0, UnixNanos::now()) < Duration::from_millis(50));
        let t1 = t0 + Duration::from_millis(300);
        assert_eq!(wall(t1).0 - w0.0, 300_000_000, "same anchor: exact");
        // An instant older than the anchor is placed before it.
        let before = t0.checked_sub(Duration::from_secs(5)).unwrap_or(t0);
        let wb = wall(before);
        assert!(apart(w0, wb) <= Duration::from_secs(5) + Duration::from_millis(50));
        assert!(wb <= w0);
    }

    #[test]
    fn unix_nanos_convert_as_system_times_do() {
        let t = UNIX_EPOCH + Duration::new(1_700_000_000, 123_456_789);
        let n = UnixNanos::of(t);
        assert_eq!((n.secs(), n.subsec_nanos()), (1_700_000_000, 123_456_789));
        assert_eq!(n.as_secs_f64(), t.duration_since(UNIX_EPOCH).map(|d| d.as_secs_f64()).unwrap_or(0.0));
        assert_eq!(UnixNanos::of(UNIX_EPOCH - Duration::from_secs(1)), UnixNanos(0), "before 1970: 0");
        assert_eq!(UnixNanos(u64::MAX).after(Duration::from_secs(1)), UnixNanos(u64::MAX));
    }

    #[test]
    fn the_anchor_is_renewed_past_a_second() {
        let anchor = || ANCHOR.with(Cell::get).map(|(mono, _)| mono);
        let t0 = Instant::now();
        let _ = wall(t0);
        let first = anchor().expect("anchored");
        // Within its second the anchor stands.
        let _ = wall(first + Duration::from_millis(300));
        assert_eq!(anchor(), Some(first), "no clock read within the second");
        // Past it, both clocks are read again; the time derived is still near the truth.
        let later = first + RENEW + Duration::from_millis(1);
        let w = wall(later);
        let renewed = anchor().expect("anchored");
        assert!(renewed > first, "renewed past the second");
        let expected = UnixNanos::now().after(later.saturating_duration_since(Instant::now()));
        assert!(apart(w, expected) < Duration::from_millis(50));
        // An instant older than the anchor renews it too (it is placed before it).
        let _ = wall(first);
        assert!(anchor() > Some(renewed), "renewed for an older instant");
    }
}
