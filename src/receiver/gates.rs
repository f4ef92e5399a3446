//! Promotion gates: "is a critical alert firing for this canary?", asked by Flagger's
//! confirm-promotion and rollback webhooks and by the readiness report's `alerts.firing` check.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::payload::{Status, format_timestamp, now_nanos};
use super::store::{AlertQuery, AlertState, Store, StoreError};

/// Which alerts count for a canary.
///
/// An alert matches when its `service` label equals `service`; when a namespace (or version)
/// is given, an alert *with* a `namespace` (`version`) label must carry that value, while an
/// alert without the label matches (a service-wide alert also speaks against the canary: the
/// gate fails safe). Only alerts labelled `severity="critical"` that are firing now count.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CanarySelector {
    pub service: String,
    pub namespace: Option<String>,
    pub version: Option<String>,
}

impl CanarySelector {
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        let agrees = |label: &str, want: &Option<String>| match (want, labels.get(label)) {
            (Some(want), Some(have)) => want == have,
            _ => true,
        };
        labels.get("service") == Some(&self.service)
            && agrees("namespace", &self.namespace)
            && agrees("version", &self.version)
    }

    pub fn describe(&self) -> String {
        let mut s = format!("service {:?}", self.service);
        if let Some(ns) = &self.namespace {
            s.push_str(&format!(", namespace {ns:?}"));
        }
        if let Some(v) = &self.version {
            s.push_str(&format!(", version {v:?}"));
        }
        s
    }
}

/// A firing alert, as the gates report it.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AlertSummary {
    pub fingerprint: String,
    pub alertname: String,
    pub labels: BTreeMap<String, String>,
    pub starts_at: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub summary: Option<String>,
}

impl From<&AlertState> for AlertSummary {
    fn from(a: &AlertState) -> Self {
        AlertSummary {
            fingerprint: a.fingerprint.clone(),
            alertname: a.labels.get("alertname").cloned().unwrap_or_default(),
            labels: a.labels.clone(),
            starts_at: format_timestamp(a.starts_at),
            summary: a.annotations.get("summary").cloned(),
        }
    }
}

/// The critical alerts firing now for the canary `sel` (see [`CanarySelector`] for matching).
pub async fn firing_critical(store: &Store, sel: &CanarySelector) -> Result<Vec<AlertSummary>, StoreError> {
    let alerts = store
        .alerts(AlertQuery {
            service: Some(sel.service.clone()),
            state: Some(Status::Firing),
            since: None,
            critical_only: true,
            limit: 10_000,
            now: now_nanos(),
        })
        .await?;
    Ok(alerts.iter().filter(|a| sel.matches(&a.labels)).map(AlertSummary::from).collect())
}

/// One sentence naming the firing alerts, for a 403 body or a readiness reason.
pub fn reason(sel: &CanarySelector, firing: &[AlertSummary]) -> String {
    let names: Vec<String> = firing
        .iter()
        .map(|a| format!("{} (fingerprint {}, since {})", a.alertname, a.fingerprint, a.starts_at))
        .collect();
    format!(
        "{} critical alert{} firing for {}: {}",
        firing.len(),
        if firing.len() == 1 { "" } else { "s" },
        sel.describe(),
        names.join(", ")
    )
}

/// The body Flagger posts to its webhooks.
#[derive(Clone, Debug, Deserialize)]
pub struct FlaggerPayload {
    pub name: String,
    pub namespace: String,
    #[serde(default)]
    pub phase: String,
    #[serde(default)]
    pub checksum: String,
    #[serde(default)]
    pub metadata: Option<BTreeMap<String, String>>,
}

impl FlaggerPayload {
    /// The canary's service is Flagger's `name` unless `metadata.service` names it; a
    /// `metadata.version` narrows the match to that version's alerts.
    pub fn selector(&self) -> CanarySelector {
        let meta = self.metadata.as_ref();
        CanarySelector {
            service: meta.and_then(|m| m.get("service")).cloned().unwrap_or_else(|| self.name.clone()),
            namespace: Some(meta.and_then(|m| m.get("namespace")).cloned().unwrap_or_else(|| self.namespace.clone())),
            version: meta.and_then(|m| m.get("version")).cloned(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn matching_by_service_namespace_and_version() {
        let sel =
            CanarySelector { service: "checkout".into(), namespace: Some("shop".into()), version: Some("2".into()) };
        assert!(sel.matches(&labels(&[("service", "checkout"), ("namespace", "shop"), ("version", "2")])));
        assert!(sel.matches(&labels(&[("service", "checkout")])), "service-wide alerts count");
        assert!(!sel.matches(&labels(&[("service", "checkout"), ("version", "1")])), "other version");
        assert!(!sel.matches(&labels(&[("service", "checkout"), ("namespace", "dev")])), "other namespace");
        assert!(!sel.matches(&labels(&[("service", "cart")])));
        assert!(!sel.matches(&labels(&[("alertname", "X")])), "no service label");
    }

    #[test]
    fn flagger_name_is_the_service_unless_metadata_says_otherwise() {
        let p: FlaggerPayload = serde_json::from_str(
            r#"{"name":"podinfo","namespace":"test","phase":"Progressing","checksum":"abc","metadata":{"version":"2.0"}}"#,
        )
        .expect("flagger payload");
        assert_eq!(
            p.selector(),
            CanarySelector { service: "podinfo".into(), namespace: Some("test".into()), version: Some("2.0".into()) }
        );
        let p: FlaggerPayload =
            serde_json::from_str(r#"{"name":"podinfo","namespace":"test","metadata":{"service":"checkout"}}"#)
                .expect("flagger payload");
        assert_eq!(p.selector().service, "checkout");
        assert_eq!(p.selector().version, None);
    }
}
