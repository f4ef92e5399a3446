//! How an alert posted to `POST /api/v2/alerts` folds into the stored alert with its
//! fingerprint, as Alertmanager merges a re-posted alert. Pure: both stores read the stored
//! alert inside their write transaction, ask [`merge`], and apply the answer.
//!
//! v2 senders (anything but Prometheus and the sidecar) re-post a firing alert every few
//! seconds, usually without `endsAt`, which then means now + `--resolve-timeout`. Each post
//! must move `endsAt` forward, or the alert resolves after the first timeout while it still
//! fires; and a post that changes nothing but `endsAt` is not a new event in the alert's
//! history (one event per post would bury the real changes). Webhook (v4) notifications do not
//! come through here: Alertmanager sends each one once and its idempotency key decides.

use crate::receiver::payload::{AlertRecord, Status};

/// The stored alert's fields the merge looks at.
#[derive(Clone, Debug, PartialEq)]
pub struct Stored {
    pub status: Status,
    pub starts_at: i64,
    pub ends_at: Option<i64>,
    /// As stored: JSON text with sorted keys (`store::to_json`).
    pub annotations: String,
    pub generator_url: String,
}

impl Stored {
    /// Whether the stored instance still fires at `now` (as `schema::STATE_EXPR` judges it).
    fn firing_at(&self, now: i64) -> bool {
        self.status == Status::Firing && self.ends_at.is_none_or(|end| end > now)
    }
}

/// What a posted alert does to the store.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Merge {
    /// A new event in the alert's history, folded into its state as any notification is, with
    /// this `startsAt` (the firing instance's own when the post did not send one).
    Event { starts_at: i64 },
    /// The same firing instance with only `endsAt` moved: the alert's `endsAt` (and that of its
    /// latest event) becomes this, its `lastNotifiedAt` the arrival time; no new event.
    Refresh { ends_at: i64 },
    /// Nothing: a retry of a post that gave its own `endsAt`, already stored.
    Unchanged,
}

/// The merge of `new` (its annotations as stored JSON in `annotations`) into `stored` at `now`.
/// `repeat` says that a post with the same content (the same idempotency key) was stored
/// before: then only an alert whose `endsAt` is filled in from the arrival time changes.
pub fn merge(stored: Option<&Stored>, new: &AlertRecord, annotations: &str, repeat: bool, now: i64) -> Merge {
    if repeat && !new.default_ends_at {
        return Merge::Unchanged;
    }
    let Some(stored) = stored else { return Merge::Event { starts_at: new.starts_at } };
    let firing = stored.firing_at(now);
    let same_instance = firing && (new.default_starts_at || new.starts_at == stored.starts_at);
    match new.ends_at {
        Some(ends_at)
            if same_instance
                && new.status == Status::Firing
                && stored.annotations == annotations
                && stored.generator_url == new.generator_url =>
        {
            Merge::Refresh { ends_at }
        }
        // Alertmanager keeps the earliest start of overlapping instances: a post without
        // `startsAt` (a change of annotations, or the resolution) continues the firing one.
        _ if firing && new.default_starts_at => Merge::Event { starts_at: stored.starts_at.min(new.starts_at) },
        _ => Merge::Event { starts_at: new.starts_at },
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::receiver::payload::parse_v2_alerts;

    const S: i64 = 1_000_000_000;
    const T0: i64 = 1_700_000_000 * S;

    fn posted(body: &str, now: i64) -> AlertRecord {
        parse_v2_alerts(body.as_bytes(), now, 60 * S).expect("valid").alerts.remove(0)
    }

    fn stored_from(a: &AlertRecord, starts_at: i64) -> Stored {
        Stored {
            status: a.status,
            starts_at,
            ends_at: a.ends_at,
            annotations: serde_json::to_string(&a.annotations).expect("json"),
            generator_url: a.generator_url.clone(),
        }
    }

    fn json(m: &BTreeMap<String, String>) -> String {
        serde_json::to_string(m).expect("json")
    }

    const BARE: &str = r#"[{"labels":{"alertname":"A"},"annotations":{"summary":"s"}}]"#;

    #[test]
    fn a_repost_without_ends_at_refreshes_the_firing_instance() {
        let first = posted(BARE, T0);
        assert_eq!(merge(None, &first, &json(&first.annotations), false, T0), Merge::Event { starts_at: T0 });
        let stored = stored_from(&first, T0);
        // 30 s later the same body again: the same key (repeat), endsAt moves, no event.
        let again = posted(BARE, T0 + 30 * S);
        let m = merge(Some(&stored), &again, &json(&again.annotations), true, T0 + 30 * S);
        assert_eq!(m, Merge::Refresh { ends_at: T0 + 90 * S });
        // Changed annotations while firing: an event that keeps the instance's start.
        let changed = posted(&BARE.replace("\"s\"", "\"worse\""), T0 + 40 * S);
        let m = merge(Some(&stored), &changed, &json(&changed.annotations), false, T0 + 40 * S);
        assert_eq!(m, Merge::Event { starts_at: T0 });
    }

    #[test]
    fn a_post_after_the_timeout_starts_a_new_instance() {
        let first = posted(BARE, T0);
        let stored = stored_from(&first, T0);
        let later = T0 + 61 * S;
        let again = posted(BARE, later);
        assert_eq!(
            merge(Some(&stored), &again, &json(&again.annotations), true, later),
            Merge::Event { starts_at: later }
        );
    }

    #[test]
    fn explicit_times_are_kept_and_exact_retries_change_nothing() {
        let body =
            r#"[{"labels":{"alertname":"A"},"startsAt":"2023-11-14T22:00:00Z","endsAt":"2023-11-14T22:20:00Z"}]"#;
        let now = 1_699_999_500 * S; // 2023-11-14T22:05:00Z
        let a = posted(body, now);
        assert_eq!(a.status, Status::Firing);
        let stored = stored_from(&a, a.starts_at);
        assert_eq!(merge(Some(&stored), &a, &json(&a.annotations), true, now), Merge::Unchanged);
        // Prometheus re-sends with a later endsAt: a refresh, not an event.
        let moved = posted(&body.replace("22:20:00Z", "22:24:00Z"), now + 60 * S);
        let m = merge(Some(&stored), &moved, &json(&moved.annotations), false, now + 60 * S);
        assert_eq!(m, Merge::Refresh { ends_at: a.ends_at.expect("endsAt") + 240 * S });
        // A new startsAt is another instance; a resolution (endsAt passed) is an event.
        let other = posted(&body.replace("22:00:00Z", "22:01:00Z"), now);
        assert!(matches!(merge(Some(&stored), &other, &json(&other.annotations), false, now), Merge::Event { .. }));
        let resolved = posted(&body.replace("22:20:00Z", "22:04:00Z"), now);
        assert_eq!(resolved.status, Status::Resolved);
        assert_eq!(
            merge(Some(&stored), &resolved, &json(&resolved.annotations), false, now),
            Merge::Event { starts_at: a.starts_at }
        );
    }

    #[test]
    fn a_resolution_without_starts_at_continues_the_firing_instance() {
        let first = posted(BARE, T0);
        let stored = stored_from(&first, T0);
        let body = r#"[{"labels":{"alertname":"A"},"annotations":{"summary":"s"},"endsAt":"2023-11-14T22:13:20Z"}]"#;
        let now = T0 + 10 * S;
        let resolved = posted(body, now);
        assert_eq!(resolved.status, Status::Resolved);
        assert_eq!(
            merge(Some(&stored), &resolved, &json(&resolved.annotations), false, now),
            Merge::Event { starts_at: T0 }
        );
    }
}
