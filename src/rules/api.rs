//! The JSON of `GET /api/v1/rules` and `GET /api/v1/alerts`, in the shapes of the alert-generator
//! compliance specification 1.0 (with the extra fields Prometheus adds).

use serde_json::{Value, json};

use super::alerting::{Alert, AlertState};
use super::engine::{LoadedGroup, RuleEngine};
use super::file::RuleKind;
use super::notifier::rfc3339_millis;

/// Go's `strconv.FormatFloat(v, 'e', 10, 64)`, how Prometheus prints an alert's value.
pub fn format_value(v: f64) -> String {
    if v.is_nan() {
        return "NaN".into();
    }
    if v.is_infinite() {
        return if v > 0.0 { "+Inf".into() } else { "-Inf".into() };
    }
    let s = format!("{v:.10e}");
    match s.split_once('e') {
        Some((mantissa, exp)) => {
            let (sign, digits) = match exp.strip_prefix('-') {
                Some(d) => ('-', d),
                None => ('+', exp),
            };
            format!("{mantissa}e{sign}{digits:0>2}")
        }
        None => s,
    }
}

fn time_or_zero(ms: Option<i64>) -> String {
    ms.map_or_else(|| "0001-01-01T00:00:00Z".to_string(), rfc3339_millis)
}

fn alert_json(a: &Alert) -> Value {
    let mut v = json!({
        "labels": a.labels,
        "annotations": a.annotations,
        "state": a.state.as_str(),
        "activeAt": rfc3339_millis(a.active_at),
        "value": format_value(a.value),
    });
    if let Some(since) = a.keep_firing_since {
        v["keepFiringSince"] = json!(rfc3339_millis(since));
    }
    v
}

fn group_json(g: &LoadedGroup) -> Value {
    let group = &g.state.group;
    let rules: Vec<Value> = group
        .rules
        .iter()
        .enumerate()
        .map(|(i, rule)| {
            let health = &g.state.health[i];
            let (health_text, last_error) = match (&health.last_error, health.last_evaluation_ms) {
                (_, None) => ("unknown", String::new()),
                (Some(e), _) => ("err", e.clone()),
                (None, _) => ("ok", String::new()),
            };
            let mut v = json!({
                "name": rule.name,
                "query": rule.expr_text,
                "labels": rule.labels,
                "health": health_text,
                "evaluationTime": health.evaluation_seconds,
                "lastEvaluation": time_or_zero(health.last_evaluation_ms),
            });
            if !last_error.is_empty() {
                v["lastError"] = json!(last_error);
            }
            match rule.kind {
                RuleKind::Alerting => {
                    let alerts = &g.state.alerts[i];
                    v["type"] = json!("alerting");
                    v["state"] = json!(alerts.state().as_str());
                    v["duration"] = json!(rule.for_.as_secs_f64());
                    v["keepFiringFor"] = json!(rule.keep_firing_for.as_secs_f64());
                    v["annotations"] = json!(rule.annotations);
                    v["alerts"] = Value::Array(alerts.active().map(alert_json).collect());
                }
                RuleKind::Recording => v["type"] = json!("recording"),
            }
            v
        })
        .collect();
    json!({
        "name": group.name,
        "file": group.file,
        "interval": g.interval_ms as f64 / 1000.0,
        "limit": group.limit,
        "rules": rules,
        "evaluationTime": g.stats.last_duration_s,
        "lastEvaluation": time_or_zero(g.stats.last_evaluation_ms),
    })
}

/// `GET /api/v1/rules`; `type=alert|record` filters like Prometheus.
pub fn rules(engine: &RuleEngine, only: Option<RuleKind>) -> Value {
    let groups: Vec<Value> = engine
        .groups
        .iter()
        .map(|g| {
            let mut v = group_json(g);
            if let (Some(kind), Some(rules)) = (only, v["rules"].as_array_mut()) {
                let want = if kind == RuleKind::Alerting { "alerting" } else { "recording" };
                rules.retain(|r| r["type"] == want);
            }
            v
        })
        .collect();
    json!({"status": "success", "data": {"groups": groups}})
}

/// `GET /api/v1/alerts`: every pending and firing alert of every rule.
pub fn alerts(engine: &RuleEngine) -> Value {
    let alerts: Vec<Value> = engine
        .groups
        .iter()
        .flat_map(|g| g.state.alerts.iter().flat_map(|a| a.active()))
        .filter(|a| a.state != AlertState::Inactive)
        .map(alert_json)
        .collect();
    json!({"status": "success", "data": {"alerts": alerts}})
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_print_like_go_strconv_e10() {
        assert_eq!(format_value(1.0), "1.0000000000e+00");
        assert_eq!(format_value(0.0625), "6.2500000000e-02");
        assert_eq!(format_value(-12345.678), "-1.2345678000e+04");
        assert_eq!(format_value(1e300), "1.0000000000e+300");
        assert_eq!(format_value(f64::INFINITY), "+Inf");
        assert_eq!(format_value(f64::NAN), "NaN");
    }
}
