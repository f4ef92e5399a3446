//! `alerts.firing`: no critical alert firing for the service, from the receiver's query API
//! (`GET /api/v1/alerts?service=S&state=firing`) or Alertmanager's (`GET /api/v2/alerts`).

use std::collections::BTreeMap;

use serde::Deserialize;

use crate::readiness::report::Outcome;

/// One alert of either API: both carry `labels`; Alertmanager adds `status.state`, the
/// receiver a top-level `state`.
#[derive(Debug, Deserialize)]
pub struct Alert {
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    #[serde(default)]
    pub state: Option<String>,
    #[serde(default)]
    pub status: Option<AmStatus>,
    #[serde(default, rename = "startsAt")]
    pub starts_at: Option<String>,
}

#[derive(Debug, Deserialize)]
pub struct AmStatus {
    #[serde(default)]
    pub state: String,
}

#[derive(Debug, Deserialize)]
pub struct ReceiverAnswer {
    pub alerts: Vec<Alert>,
}

impl Alert {
    fn firing(&self) -> bool {
        match (&self.state, &self.status) {
            (Some(s), _) => s == "firing",
            // Alertmanager: `active` fires; `suppressed` (silenced or inhibited) does not page.
            (None, Some(st)) => st.state == "active",
            (None, None) => true,
        }
    }
}

/// Counts the critical alerts firing for `service`; with a `namespace`, an alert labelled with
/// another namespace is another deployment of the same name and does not count (one without a
/// namespace label does: the check fails safe).
pub fn judge(service: &str, namespace: Option<&str>, source: &str, alerts: &[Alert]) -> Outcome {
    let critical: Vec<&Alert> = alerts
        .iter()
        .filter(|a| a.firing())
        .filter(|a| a.labels.get("service").map(String::as_str) == Some(service))
        .filter(|a| match (namespace, a.labels.get("namespace")) {
            (Some(want), Some(have)) => want == have,
            _ => true,
        })
        .filter(|a| a.labels.get("severity").map(String::as_str) == Some("critical"))
        .collect();
    if critical.is_empty() {
        let others = alerts.iter().filter(|a| a.firing()).count();
        let note = if others > 0 { format!(" ({others} non-critical firing)") } else { String::new() };
        return Outcome::pass(format!("no critical alert firing for {service:?} in {source}{note}"));
    }
    let names: Vec<String> = critical
        .iter()
        .map(|a| {
            let name = a.labels.get("alertname").map_or("?", String::as_str);
            match &a.starts_at {
                Some(t) => format!("{name} (since {t})"),
                None => name.to_string(),
            }
        })
        .collect();
    Outcome::fail(format!(
        "{} critical alert{} firing for {service:?}: {}",
        critical.len(),
        if critical.len() == 1 { "" } else { "s" },
        names.join(", ")
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::readiness::report::Status;

    #[test]
    fn only_critical_firing_alerts_of_the_service_count() {
        let am: Vec<Alert> = serde_json::from_str(
            r#"[{"labels":{"alertname":"A","service":"checkout","severity":"critical"},"status":{"state":"suppressed"}},
                {"labels":{"alertname":"B","service":"checkout","severity":"warning"},"status":{"state":"active"}},
                {"labels":{"alertname":"C","service":"cart","severity":"critical"},"status":{"state":"active"}}]"#,
        )
        .expect("json");
        assert_eq!(judge("checkout", None, "am", &am).status, Status::Pass);
        let rx: ReceiverAnswer = serde_json::from_str(
            r#"{"alerts":[{"labels":{"alertname":"RedlineHighErrorRatio","service":"checkout","severity":"critical"},"state":"firing","startsAt":"t"}]}"#,
        )
        .expect("json");
        let r = judge("checkout", None, "rx", &rx.alerts);
        assert_eq!(r.status, Status::Fail);
        assert_eq!(judge("checkout", Some("shop"), "rx", &rx.alerts).status, Status::Fail, "no namespace label");
        let other: ReceiverAnswer = serde_json::from_str(
            r#"{"alerts":[{"labels":{"alertname":"X","service":"checkout","namespace":"dev","severity":"critical"},"state":"firing"}]}"#,
        )
        .expect("json");
        assert_eq!(judge("checkout", Some("shop"), "rx", &other.alerts).status, Status::Pass);
        assert!(r.summary.contains("RedlineHighErrorRatio (since t)"), "{}", r.summary);
    }
}
