//! The lifecycle of the alerts of one alerting rule: pending, firing, inactive, `keep_firing_for`,
//! the ALERTS series, and when each alert is (re)sent, per the alert-generator compliance spec 1.0.

use std::collections::BTreeMap;

/// Label or annotation set of an alert, ordered by name.
pub type LabelMap = BTreeMap<String, String>;

/// Firing alerts are resent, and resolved ones re-reported, at most this often (the spec's default).
pub const RESEND_DELAY_MS: i64 = 60_000;
/// Resolved alerts keep being reported for this long.
pub const RESOLVED_RETENTION_MS: i64 = 15 * 60_000;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum AlertState {
    Inactive,
    Pending,
    Firing,
}

impl AlertState {
    pub fn as_str(self) -> &'static str {
        match self {
            AlertState::Inactive => "inactive",
            AlertState::Pending => "pending",
            AlertState::Firing => "firing",
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct Alert {
    pub labels: LabelMap,
    pub annotations: LabelMap,
    pub state: AlertState,
    pub value: f64,
    /// Evaluation time (ms) the alert became pending (or firing with `for: 0`).
    pub active_at: i64,
    pub fired_at: Option<i64>,
    pub resolved_at: Option<i64>,
    pub last_sent_at: Option<i64>,
    /// When the alert stopped being returned while `keep_firing_for` holds it firing.
    pub keep_firing_since: Option<i64>,
    /// `endsAt` for a firing alert as of its last send.
    pub valid_until: Option<i64>,
}

/// One element of the rule's result after templating (spec steps 1 to 3).
#[derive(Clone, Debug, PartialEq)]
pub struct Candidate {
    pub labels: LabelMap,
    pub annotations: LabelMap,
    pub value: f64,
}

/// An alert as handed to the notifier: `endsAt` is the resolve time or the validity horizon.
#[derive(Clone, Debug, PartialEq)]
pub struct Outgoing {
    pub labels: LabelMap,
    pub annotations: LabelMap,
    pub starts_at: i64,
    pub ends_at: i64,
}

/// The alerts of one rule, keyed by their labels.
#[derive(Clone, Debug, Default)]
pub struct RuleAlerts {
    active: BTreeMap<LabelMap, Alert>,
}

impl RuleAlerts {
    /// Applies one evaluation at `t` (ms). Duplicate label sets fail the evaluation and leave
    /// the state untouched (spec step 4); more than `limit` active alerts (when non-zero) too.
    pub fn update(
        &mut self,
        t: i64,
        for_ms: i64,
        keep_firing_for_ms: i64,
        limit: u64,
        candidates: Vec<Candidate>,
    ) -> Result<(), String> {
        let mut seen = std::collections::BTreeSet::new();
        for c in &candidates {
            if !seen.insert(&c.labels) {
                return Err("vector contains metrics with the same labelset after applying alert labels".into());
            }
        }
        let mut next = self.active.clone();
        let mut returned = std::collections::BTreeSet::new();
        for c in candidates {
            returned.insert(c.labels.clone());
            match next.get_mut(&c.labels) {
                Some(a) if a.state != AlertState::Inactive => {
                    a.value = c.value;
                    a.annotations = c.annotations;
                }
                _ => {
                    // New, or the same labels as a resolved alert: a new alert either way.
                    next.insert(
                        c.labels.clone(),
                        Alert {
                            labels: c.labels,
                            annotations: c.annotations,
                            state: AlertState::Pending,
                            value: c.value,
                            active_at: t,
                            fired_at: None,
                            resolved_at: None,
                            last_sent_at: None,
                            keep_firing_since: None,
                            valid_until: None,
                        },
                    );
                }
            }
        }
        let mut active = 0u64;
        next.retain(|labels, a| {
            if !returned.contains(labels) {
                let mut keep_firing = false;
                if a.state == AlertState::Firing && keep_firing_for_ms > 0 {
                    let since = *a.keep_firing_since.get_or_insert(t);
                    keep_firing = t - since < keep_firing_for_ms;
                }
                if !keep_firing {
                    if a.state == AlertState::Pending || a.resolved_at.is_some_and(|r| t - r > RESOLVED_RETENTION_MS) {
                        return false;
                    }
                    if a.state != AlertState::Inactive {
                        a.state = AlertState::Inactive;
                        a.resolved_at = Some(t);
                    }
                    return true;
                }
            } else {
                a.keep_firing_since = None;
            }
            if a.state == AlertState::Pending && t - a.active_at >= for_ms {
                a.state = AlertState::Firing;
                a.fired_at = Some(t);
            }
            if a.state != AlertState::Inactive {
                active += 1;
            }
            true
        });
        if limit > 0 && active > limit {
            // Prometheus drops every alert of the rule when the limit is exceeded.
            self.active.clear();
            return Err(format!("exceeded limit of {limit} with {active} alerts"));
        }
        self.active = next;
        Ok(())
    }

    /// Pending and firing alerts (what `/api/v1/alerts` and ALERTS show).
    pub fn active(&self) -> impl Iterator<Item = &Alert> {
        self.active.values().filter(|a| a.state != AlertState::Inactive)
    }

    /// Every tracked alert including recently resolved ones.
    pub fn all(&self) -> impl Iterator<Item = &Alert> {
        self.active.values()
    }

    /// The rule's state for `/api/v1/rules`: firing if any alert fires, else pending if any is.
    pub fn state(&self) -> AlertState {
        self.active().map(|a| a.state).max().unwrap_or(AlertState::Inactive)
    }

    /// `ALERTS{alertstate}` = 1 and `ALERTS_FOR_STATE` = activeAt seconds, per active alert.
    pub fn series(&self) -> Vec<(LabelMap, f64)> {
        let mut out = Vec::new();
        for a in self.active() {
            let mut alerts = a.labels.clone();
            alerts.insert("__name__".into(), "ALERTS".into());
            alerts.insert("alertstate".into(), a.state.as_str().into());
            out.push((alerts, 1.0));
            let mut for_state = a.labels.clone();
            for_state.insert("__name__".into(), "ALERTS_FOR_STATE".into());
            out.push((for_state, (a.active_at / 1000) as f64));
        }
        out
    }

    /// The alerts due to be sent after the evaluation at `t`, marking them sent.
    pub fn due(&mut self, t: i64, resend_delay_ms: i64, group_interval_ms: i64) -> Vec<Outgoing> {
        let mut out = Vec::new();
        for a in self.active.values_mut() {
            let needs_sending = match a.state {
                AlertState::Pending => false,
                _ => match a.last_sent_at {
                    None => true,
                    Some(sent) => a.resolved_at.is_some_and(|r| r > sent) || sent + resend_delay_ms < t,
                },
            };
            if !needs_sending {
                continue;
            }
            a.last_sent_at = Some(t);
            // Valid long enough to survive two missed evaluations or sends.
            a.valid_until = Some(t + 4 * resend_delay_ms.max(group_interval_ms));
            out.push(Outgoing {
                labels: a.labels.clone(),
                annotations: a.annotations.clone(),
                starts_at: a.fired_at.unwrap_or(a.active_at),
                ends_at: a.resolved_at.or(a.valid_until).unwrap_or(t),
            });
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: i64 = 60_000;

    fn cand(instance: &str, value: f64) -> Candidate {
        Candidate {
            labels: [("alertname".to_string(), "A".to_string()), ("instance".to_string(), instance.to_string())]
                .into_iter()
                .collect(),
            annotations: [("summary".to_string(), format!("v={value}"))].into_iter().collect(),
            value,
        }
    }

    #[test]
    fn pending_then_firing_after_for_then_inactive_and_forgotten_after_retention() {
        let mut r = RuleAlerts::default();
        r.update(0, 2 * MIN, 0, 0, vec![cand("a", 1.0)]).expect("eval");
        assert_eq!(r.state(), AlertState::Pending);
        assert!(r.due(0, RESEND_DELAY_MS, MIN).is_empty(), "pending alerts are not sent");
        r.update(MIN, 2 * MIN, 0, 0, vec![cand("a", 2.0)]).expect("eval");
        assert_eq!(r.state(), AlertState::Pending);
        r.update(2 * MIN, 2 * MIN, 0, 0, vec![cand("a", 3.0)]).expect("eval");
        assert_eq!(r.state(), AlertState::Firing);
        let sent = r.due(2 * MIN, RESEND_DELAY_MS, MIN);
        assert_eq!(sent.len(), 1);
        assert_eq!(sent[0].starts_at, 2 * MIN, "startsAt is FiredAt");
        assert_eq!(sent[0].ends_at, 2 * MIN + 4 * MIN, "endsAt is 4 x max(resend, interval) ahead");
        assert_eq!(sent[0].annotations["summary"], "v=3", "annotations follow the latest value");
        // Not resent one interval later (resend delay must be exceeded), but two intervals later.
        r.update(3 * MIN, 2 * MIN, 0, 0, vec![cand("a", 3.0)]).expect("eval");
        assert!(r.due(3 * MIN, RESEND_DELAY_MS, MIN).is_empty());
        r.update(4 * MIN, 2 * MIN, 0, 0, vec![cand("a", 3.0)]).expect("eval");
        assert_eq!(r.due(4 * MIN, RESEND_DELAY_MS, MIN).len(), 1);
        // Resolved: sent at once with endsAt = ResolvedAt, then re-reported, then forgotten.
        r.update(5 * MIN, 2 * MIN, 0, 0, vec![]).expect("eval");
        assert_eq!(r.state(), AlertState::Inactive);
        let sent = r.due(5 * MIN, RESEND_DELAY_MS, MIN);
        assert_eq!(sent.len(), 1);
        assert_eq!(sent[0].ends_at, 5 * MIN);
        assert!(r.series().is_empty(), "no ALERTS series for inactive alerts");
        for m in 6..=20 {
            r.update(m * MIN, 2 * MIN, 0, 0, vec![]).expect("eval");
        }
        assert_eq!(r.all().count(), 1, "kept for 15 minutes after resolving");
        r.update(21 * MIN, 2 * MIN, 0, 0, vec![]).expect("eval");
        assert_eq!(r.all().count(), 0);
    }

    #[test]
    fn a_pending_alert_that_disappears_is_dropped_and_restarts_its_for() {
        let mut r = RuleAlerts::default();
        r.update(0, 2 * MIN, 0, 0, vec![cand("a", 1.0)]).expect("eval");
        r.update(MIN, 2 * MIN, 0, 0, vec![]).expect("eval");
        assert_eq!(r.all().count(), 0);
        r.update(2 * MIN, 2 * MIN, 0, 0, vec![cand("a", 1.0)]).expect("eval");
        assert_eq!(r.active().next().map(|a| a.active_at), Some(2 * MIN));
    }

    #[test]
    fn zero_for_fires_at_once_and_alerts_series_are_produced() {
        let mut r = RuleAlerts::default();
        r.update(MIN, 0, 0, 0, vec![cand("a", 1.0), cand("b", 2.0)]).expect("eval");
        assert_eq!(r.active().filter(|a| a.state == AlertState::Firing).count(), 2);
        let series = r.series();
        assert_eq!(series.len(), 4);
        let alerts: Vec<_> = series.iter().filter(|(l, _)| l["__name__"] == "ALERTS").collect();
        assert!(alerts.iter().all(|(l, v)| l["alertstate"] == "firing" && *v == 1.0));
        let for_state = series.iter().find(|(l, _)| l["__name__"] == "ALERTS_FOR_STATE").expect("for state");
        assert_eq!(for_state.1, 60.0);
        assert!(!for_state.0.contains_key("alertstate"));
    }

    #[test]
    fn keep_firing_for_holds_a_firing_alert() {
        let mut r = RuleAlerts::default();
        r.update(0, 0, 2 * MIN, 0, vec![cand("a", 1.0)]).expect("eval");
        r.update(MIN, 0, 2 * MIN, 0, vec![]).expect("eval");
        assert_eq!(r.state(), AlertState::Firing);
        r.update(2 * MIN, 0, 2 * MIN, 0, vec![]).expect("eval");
        assert_eq!(r.state(), AlertState::Firing);
        r.update(3 * MIN, 0, 2 * MIN, 0, vec![]).expect("eval");
        assert_eq!(r.state(), AlertState::Inactive);
    }

    #[test]
    fn duplicate_label_sets_and_limits_are_errors() {
        let mut r = RuleAlerts::default();
        let err = r.update(0, 0, 0, 0, vec![cand("a", 1.0), cand("a", 2.0)]).expect_err("duplicates");
        assert!(err.contains("same labelset"));
        assert_eq!(r.all().count(), 0, "nothing applied");
        let err = r.update(0, 0, 0, 1, vec![cand("a", 1.0), cand("b", 2.0)]).expect_err("limit");
        assert!(err.contains("exceeded limit of 1"));
    }

    #[test]
    fn a_new_alert_with_the_labels_of_a_resolved_one_starts_over() {
        let mut r = RuleAlerts::default();
        r.update(0, MIN, 0, 0, vec![cand("a", 1.0)]).expect("eval");
        r.update(MIN, MIN, 0, 0, vec![cand("a", 1.0)]).expect("eval");
        r.update(2 * MIN, MIN, 0, 0, vec![]).expect("eval");
        r.update(3 * MIN, MIN, 0, 0, vec![cand("a", 1.0)]).expect("eval");
        let a = r.active().next().expect("alert");
        assert_eq!((a.state, a.active_at, a.resolved_at), (AlertState::Pending, 3 * MIN, None));
    }
}
