//! Fuzzes the receiver's payload parsers (webhook v4 and v2 alert lists) with arbitrary bytes:
//! they must never panic, and whatever they accept must satisfy the invariants the store relies on.
#![no_main]

use libfuzzer_sys::fuzz_target;
use redline::receiver::payload::{Delivery, RESOLVE_TIMEOUT_NANOS, parse_v2_alerts, parse_webhook};

fn check(d: &Delivery) {
    assert!(!d.alerts.is_empty(), "an accepted delivery has alerts");
    assert_eq!(d.key.len(), 64, "the idempotency key is a SHA-256 in hex");
    for a in &d.alerts {
        assert!(!a.labels.is_empty());
        assert!(!a.fingerprint.is_empty() && a.fingerprint.len() <= 64);
        if let Some(end) = a.ends_at {
            assert!(end >= a.starts_at || d.status.is_none(), "endsAt before startsAt was accepted");
        }
    }
}

fuzz_target!(|data: &[u8]| {
    if let Ok(d) = parse_webhook(data) {
        check(&d);
        // Parsing is deterministic: the same bytes give the same key (idempotency relies on it).
        assert_eq!(parse_webhook(data).map(|again| again.key).ok(), Some(d.key.clone()));
    }
    if let Ok(d) = parse_v2_alerts(data, 1_700_000_000_000_000_000, RESOLVE_TIMEOUT_NANOS) {
        check(&d);
    }
});
