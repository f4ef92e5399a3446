//! `dashboard`: a Grafana dashboard (JSON model) for the service with panels for rate, errors,
//! duration and saturation, every panel query valid PromQL once Grafana's variables are filled.

use std::sync::LazyLock;

use regex::Regex;
use serde_json::Value;

use super::ExprUse;
use crate::readiness::report::Outcome;

pub const ASPECTS: [&str; 4] = ["rate", "errors", "duration", "saturation"];

/// One panel query, with where it came from.
#[derive(Debug, Clone)]
pub struct Query {
    pub panel: String,
    pub expr: String,
}

/// A dashboard's JSON model: either the model itself or the Grafana API's `{"dashboard": …}`.
fn model(v: &Value) -> &Value {
    v.get("dashboard").filter(|d| d.is_object()).unwrap_or(v)
}

/// Whether the dashboard is about `service`: its title, uid or tags name it, or it has a
/// `service` template variable (one dashboard per fleet, the service picked from a list).
pub fn is_for_service(v: &Value, service: &str) -> bool {
    let m = model(v);
    let s = service.to_lowercase();
    let text = |k: &str| m.get(k).and_then(Value::as_str).map(str::to_lowercase);
    let named = text("title").is_some_and(|t| t.contains(&s)) || text("uid").is_some_and(|t| t.contains(&s));
    let tagged = m
        .get("tags")
        .and_then(Value::as_array)
        .is_some_and(|tags| tags.iter().filter_map(Value::as_str).any(|t| t.to_lowercase() == s));
    let variable = m
        .pointer("/templating/list")
        .and_then(Value::as_array)
        .is_some_and(|l| l.iter().any(|var| var.get("name").and_then(Value::as_str) == Some("service")));
    named || tagged || variable
}

fn collect_panels<'a>(panels: &'a Value, out: &mut Vec<&'a Value>) {
    for p in panels.as_array().into_iter().flatten() {
        out.push(p);
        if let Some(children) = p.get("panels") {
            collect_panels(children, out);
        }
    }
}

/// Every panel (rows' children included, and the pre-5.0 `rows` layout).
pub fn panels(v: &Value) -> Vec<&Value> {
    let m = model(v);
    let mut out = Vec::new();
    if let Some(p) = m.get("panels") {
        collect_panels(p, &mut out);
    }
    for row in m.get("rows").and_then(Value::as_array).into_iter().flatten() {
        if let Some(p) = row.get("panels") {
            collect_panels(p, &mut out);
        }
    }
    out
}

pub fn queries(panel: &Value) -> Vec<Query> {
    let title = panel.get("title").and_then(Value::as_str).unwrap_or("(untitled)").to_string();
    panel
        .get("targets")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter(|t| t.get("hide").and_then(Value::as_bool) != Some(true))
        .filter_map(|t| t.get("expr").and_then(Value::as_str))
        .filter(|e| !e.trim().is_empty())
        .map(|e| Query { panel: title.clone(), expr: e.to_string() })
        .collect()
}

// Longest names first: the regex takes the first alternative that matches, and `range` would
// leave `_s` of `$__range_s` behind.
static INTERVAL_VARS: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"\$\{?__(rate_interval|interval_ms|interval|range_ms|range_s|range)(?::[^}]*)?\}?").expect("regex")
});
static VARS: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"\$\{[^}]*\}|\$[A-Za-z_][A-Za-z0-9_]*|\[\[[A-Za-z0-9_]+(?::[^\]]*)?\]\]").expect("regex")
});

/// The query as Prometheus would receive it: Grafana's interval variables become durations
/// (or numbers for the `_ms`/`_s` forms), other variables a placeholder value.
pub fn substitute(expr: &str) -> String {
    let expr = INTERVAL_VARS.replace_all(expr, |c: &regex::Captures<'_>| match &c[1] {
        "interval_ms" | "range_ms" => "300000".to_string(),
        "range_s" => "300".to_string(),
        _ => "5m".to_string(),
    });
    VARS.replace_all(&expr, "grafana_variable").into_owned()
}

/// Which of rate/errors/duration/saturation a panel shows, from its queries and title.
pub fn aspects(panel_title: &str, exprs: &[promql_parser::parser::Expr]) -> Vec<&'static str> {
    let t = panel_title.to_lowercase();
    let mut out = Vec::new();
    let uses: Vec<ExprUse> = exprs.iter().map(ExprUse::of).collect();
    let name_is = |pred: &dyn Fn(&str) -> bool| uses.iter().any(|u| u.names().any(pred));
    let has_error_matcher = uses.iter().any(|u| {
        u.selectors.iter().any(|s| {
            s.matchers.iter().any(|(l, op, v)| {
                (l == "error_type" && super::alerts::selects_failures(op, v))
                    || (l.contains("status") && v.starts_with('5'))
            })
        })
    });
    let rate_fn = uses.iter().any(|u| u.functions.iter().any(|f| matches!(*f, "rate" | "irate" | "increase")));
    let counts = name_is(&|n| n.ends_with("_count") || n.ends_with("_total"));
    if (rate_fn && counts && !has_error_matcher)
        || ["rate", "throughput", "requests/s", "rps"].iter().any(|k| t.contains(k))
    {
        out.push("rate");
    }
    if has_error_matcher || t.contains("error") {
        out.push("errors");
    }
    if name_is(&|n| n.ends_with("_bucket") && (n.contains("duration") || n.contains("latency")))
        || uses.iter().any(|u| u.functions.contains(&"histogram_quantile"))
        || ["latency", "duration"].iter().any(|k| t.contains(k))
    {
        out.push("duration");
    }
    if name_is(&|n| {
        n.contains("active_requests")
            || n.starts_with("redline_cgroup_")
            || n.starts_with("redline_app_")
            || n.contains("upstream_connections")
            || n.starts_with("process_")
    }) || ["saturation", "utilisation", "utilization", "cpu", "memory"].iter().any(|k| t.contains(k))
    {
        out.push("saturation");
    }
    out
}

/// What one dashboard offers.
#[derive(Debug, Default)]
pub struct Analysis {
    pub covered: Vec<&'static str>,
    pub invalid: Vec<String>,
    pub queries: usize,
}

pub fn analyse(v: &Value) -> Analysis {
    let mut a = Analysis::default();
    for panel in panels(v) {
        let qs = queries(panel);
        let title = panel.get("title").and_then(Value::as_str).unwrap_or("(untitled)");
        let mut parsed = Vec::new();
        for q in &qs {
            a.queries += 1;
            match promql_parser::parser::parse(&substitute(&q.expr)) {
                Ok(e) => parsed.push(e),
                Err(e) => a.invalid.push(format!("panel {:?}: {:?}: {}", q.panel, q.expr, e.trim())),
            }
        }
        if qs.is_empty() {
            continue;
        }
        for aspect in aspects(title, &parsed) {
            if !a.covered.contains(&aspect) {
                a.covered.push(aspect);
            }
        }
    }
    a
}

/// Judges the dashboards found (`(file, parsed JSON)`); `unreadable` lists files that are not
/// JSON, shown as details.
pub fn judge(service: &str, dashboards: &[(String, Value)], unreadable: Vec<String>) -> Outcome {
    let candidates: Vec<&(String, Value)> = dashboards.iter().filter(|(_, v)| is_for_service(v, service)).collect();
    if candidates.is_empty() {
        return Outcome::fail(format!(
            "none of the {} dashboards is for {service:?} (title, uid or tag naming it, or a `service` variable)",
            dashboards.len()
        ))
        .details(unreadable);
    }
    let mut best: Option<(String, Analysis)> = None;
    for (file, v) in candidates {
        let a = analyse(v);
        let complete = a.invalid.is_empty() && a.covered.len() == ASPECTS.len();
        if complete {
            return Outcome::pass(format!(
                "{file}: panels for rate, errors, duration and saturation; all {} queries are valid PromQL",
                a.queries
            ))
            .evidence(file.clone());
        }
        let better = best.as_ref().is_none_or(|(_, b)| {
            (a.covered.len(), std::cmp::Reverse(a.invalid.len()))
                > (b.covered.len(), std::cmp::Reverse(b.invalid.len()))
        });
        if better {
            best = Some((file.clone(), a));
        }
    }
    let Some((file, a)) = best else { return Outcome::error("no dashboard analysed") };
    let missing: Vec<&str> = ASPECTS.iter().copied().filter(|x| !a.covered.contains(x)).collect();
    let mut reasons = Vec::new();
    if !missing.is_empty() {
        reasons.push(format!("no panel for {}", missing.join(", ")));
    }
    if !a.invalid.is_empty() {
        reasons.push(format!("{} of {} queries are not valid PromQL", a.invalid.len(), a.queries));
    }
    Outcome::fail(format!("{file}: {}", reasons.join("; "))).evidence(file).details(a.invalid)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::readiness::report::Status;

    fn dashboard(panels: &[(&str, &str)]) -> Value {
        let panels: Vec<Value> = panels
            .iter()
            .map(|(title, expr)| serde_json::json!({"title": title, "targets": [{"expr": expr}]}))
            .collect();
        serde_json::json!({"title": "checkout RED", "panels": [{"type": "row", "panels": panels}]})
    }

    #[test]
    fn grafana_variables_are_filled_before_parsing() {
        let e = substitute(r#"sum(rate(x{service="$service",route=~"${route:regex}"}[$__rate_interval])) > [[thr]]"#);
        assert!(promql_parser::parser::parse(&e).is_ok(), "{e}");
        let e = substitute(r#"increase(x[${__range_s}s]) / $__interval_ms / ${__range_ms}"#);
        assert_eq!(e, "increase(x[300s]) / 300000 / 300000");
        assert!(promql_parser::parser::parse(&e).is_ok(), "{e}");
    }

    fn aspects_of(title: &str, expr: &str) -> Vec<&'static str> {
        aspects(title, &[promql_parser::parser::parse(expr).expect("promql")])
    }

    #[test]
    fn error_panels_are_recognised_by_their_error_type_matcher_old_and_new() {
        let m = "http_server_request_duration_seconds_count";
        // Titles that say nothing: the matcher alone makes it an errors panel.
        for matcher in [r#"error_type!~"|client_.+|shutdown""#, r#"error_type!="""#, r#"error_type=~"5..""#] {
            let ratio = format!("sum(rate({m}{{{matcher}}}[5m])) / sum(rate({m}[5m]))");
            assert_eq!(aspects_of("Ratio", &ratio), ["errors"], "{ratio}");
            let by_type =
                format!(r#"sum by (error_type) (rate({m}{{service="$service",{matcher}}}[$__rate_interval]))"#);
            assert_eq!(aspects_of("By type", &substitute(&by_type)), ["errors"], "{by_type}");
        }
        // Successes, the clients' failures or drain cuts alone are request rates, not errors.
        for matcher in [r#"error_type="""#, r#"error_type=~"client_.+""#, r#"error_type="shutdown""#] {
            let q = format!("sum(rate({m}{{{matcher}}}[5m]))");
            assert_eq!(aspects_of("Panel", &q), ["rate"], "{q}");
        }
    }

    #[test]
    fn all_four_aspects_needed_and_queries_must_parse() {
        let full = [
            (
                "Requests",
                r#"sum(rate(http_server_request_duration_seconds_count{service="$service"}[$__rate_interval]))"#,
            ),
            ("Errors", r#"sum(rate(http_server_request_duration_seconds_count{error_type!=""}[5m]))"#),
            ("p99", "histogram_quantile(0.99, sum by (le) (rate(http_server_request_duration_seconds_bucket[5m])))"),
            ("In flight", "sum(http_server_active_requests)"),
        ];
        let d = dashboard(&full);
        assert_eq!(judge("checkout", &[("d.json".into(), d)], vec![]).status, Status::Pass);
        let r = judge("checkout", &[("d.json".into(), dashboard(&full[..3]))], vec![]);
        assert_eq!(r.status, Status::Fail);
        assert!(r.summary.contains("no panel for saturation"), "{}", r.summary);
        let mut broken = full.to_vec();
        broken.push(("Broken", "sum(rate(x[5m])"));
        let r = judge("checkout", &[("d.json".into(), dashboard(&broken))], vec![]);
        assert!(r.summary.contains("1 of 5 queries are not valid PromQL"), "{}", r.summary);
        let r = judge("cart", &[("d.json".into(), dashboard(&full))], vec![]);
        assert!(r.summary.contains("none of the 1 dashboards"), "{}", r.summary);
    }
}
