//! Grafana dashboards (RED, USE, SLO, alerts) built as JSON models from the metric names the
//! sidecar exports and the shipped rules record, and `redline dashboards generate [--check]`.

mod alerts;
pub mod command;
pub mod grafana;
mod red;
mod slo;
mod usage;

use std::path::Path;
use std::time::Duration;

use serde_json::{Map, Value};

/// The SLO the dashboards draw: the service-wide objective of a sidecar configuration (the
/// default one unless `dashboards generate --config` names a file).
#[derive(Clone, Debug)]
pub struct SloView {
    pub availability: f64,
    pub latency_target: f64,
    pub threshold: Duration,
    pub period: Duration,
}

impl SloView {
    pub fn of(slo: &crate::config::Slo) -> SloView {
        SloView {
            availability: slo.availability,
            latency_target: slo.latency_target,
            threshold: slo.latency_threshold,
            period: slo.period,
        }
    }

    /// The objective of the default configuration (99.9%, 99% within 300ms, 30 days).
    pub fn default_config() -> SloView {
        SloView::of(&crate::config::default_slo())
    }

    /// `le` of the threshold's bucket (which the sidecar always has: [`crate::slo`]).
    pub(crate) fn le(&self) -> String {
        crate::slo::le_label(self.threshold.as_secs_f64())
    }

    /// The threshold in words: `300 ms`, `1.5 s`.
    pub(crate) fn threshold_words(&self) -> String {
        let ms = self.threshold.as_secs_f64() * 1000.0;
        if ms < 1000.0 {
            format!("{} ms", crate::slo::number(ms))
        } else {
            format!("{} s", crate::slo::number(ms / 1000.0))
        }
    }
}

/// The request histogram every RED query and the SLO rules read.
pub(crate) const DURATION: &str = "http_server_request_duration_seconds";

/// The histogram the sidecar records every gRPC call in, besides the HTTP family
/// (OpenTelemetry `rpc.server.call.duration`): `rpc_method`, `rpc_response_status_code`, and
/// `error_type` for the server-error codes.
pub(crate) const RPC: &str = "rpc_server_call_duration_seconds";

/// The `rpc_method`s left out of gRPC latency, as in `RedlineGrpcHighLatency` and the canary
/// judge's `--protocol grpc`: `_OTHER` (no method) and streaming methods by the naming
/// convention of rules/README.md (their duration is the whole stream's).
pub(crate) const RPC_NOT_LATENCY: &str =
    r#"rpc_method!~"_OTHER|.+/(Stream|Watch|Subscribe).*|.+/ServerReflectionInfo""#;

/// The matcher of the service's failures: `error_type` set and none of the client's
/// (`client_*`) or the drain's (`shutdown`). PromQL regexes are fully anchored, so the empty
/// value (no `error_type`: a success) is left out too. The same matcher as the shipped rules,
/// the canary judge and [`crate::telemetry::red::ErrorType::is_service_error`].
pub(crate) const SERVICE_FAILED: &str = r#"error_type!~"|client_.+|shutdown""#;

/// Matchers of the `$service` (and `$namespace`) picked on the dashboard.
pub(crate) const SERVICE: &str = r#"service="$service",namespace=~"$namespace""#;
/// … and the `$version`s picked.
pub(crate) const VERSION: &str = r#"service="$service",namespace=~"$namespace",version=~"$version""#;
/// … and the `$route`s picked.
pub(crate) const ROUTE: &str = r#"service="$service",namespace=~"$namespace",version=~"$version",http_route=~"$route""#;
/// … or the gRPC `$rpc_method`s picked.
pub(crate) const RPC_METHOD: &str =
    r#"service="$service",namespace=~"$namespace",version=~"$version",rpc_method=~"$rpc_method""#;

/// The `$service` variable (one service at a time) and `$namespace` (any of its namespaces).
pub(crate) fn service_variables() -> Vec<Value> {
    vec![
        grafana::datasource_variable(),
        grafana::query_variable("service", "Service", &format!("label_values({DURATION}_count, service)"), false),
        grafana::query_variable(
            "namespace",
            "Namespace",
            &format!(r#"label_values({DURATION}_count{{service="$service"}}, namespace)"#),
            true,
        ),
    ]
}

/// The `$version` variable, after [`service_variables`].
pub(crate) fn version_variable() -> Value {
    grafana::query_variable(
        "version",
        "Version",
        &format!("label_values({DURATION}_count{{{SERVICE}}}, version)"),
        true,
    )
}

/// Firing alerts of the service as marks on the time series.
pub(crate) fn firing_alerts_annotation() -> Value {
    grafana::prometheus_annotation(
        "Firing alerts",
        &format!(r#"ALERTS{{alertstate="firing",{SERVICE}}}"#),
        "{{alertname}}",
        "red",
    )
}

/// Every dashboard for the default configuration's SLO: `(file name, JSON model)`.
pub fn all() -> Vec<(&'static str, Value)> {
    all_for(&SloView::default_config())
}

/// Every dashboard, the SLO panels drawing `objective`, in a fixed order.
pub fn all_for(objective: &SloView) -> Vec<(&'static str, Value)> {
    vec![
        ("redline-red.json", red::dashboard(objective).model()),
        ("redline-use.json", usage::dashboard().model()),
        ("redline-slo.json", slo::dashboard(objective).model()),
        ("redline-alerts.json", alerts::dashboard().model()),
    ]
}

/// Object keys in sorted order, whatever map type serde_json was built with.
fn sorted(v: Value) -> Value {
    match v {
        Value::Object(m) => {
            let mut entries: Vec<(String, Value)> = m.into_iter().collect();
            entries.sort_by(|a, b| a.0.cmp(&b.0));
            Value::Object(entries.into_iter().map(|(k, v)| (k, sorted(v))).collect::<Map<String, Value>>())
        }
        Value::Array(a) => Value::Array(a.into_iter().map(sorted).collect()),
        other => other,
    }
}

/// The file contents: pretty-printed JSON with sorted keys and a trailing newline.
pub fn render(model: &Value) -> String {
    let mut s = serde_json::to_string_pretty(&sorted(model.clone())).unwrap_or_default();
    s.push('\n');
    s
}

/// Every dashboard file for the default configuration: `(file name, contents)`.
pub fn files() -> Vec<(&'static str, String)> {
    files_for(&SloView::default_config())
}

/// Every dashboard file for `objective`: `(file name, contents)`.
pub fn files_for(objective: &SloView) -> Vec<(&'static str, String)> {
    all_for(objective).into_iter().map(|(name, model)| (name, render(&model))).collect()
}

/// Files under `dir` that are missing or differ from what would be generated, with why.
pub fn stale(dir: &Path) -> Vec<String> {
    stale_for(dir, &SloView::default_config())
}

/// As [`stale`], for the dashboards of `objective`.
pub fn stale_for(dir: &Path, objective: &SloView) -> Vec<String> {
    let mut out = Vec::new();
    for (name, want) in files_for(objective) {
        let path = dir.join(name);
        match std::fs::read(&path) {
            Ok(have) if have == want.as_bytes() => {}
            Ok(_) => out.push(format!("{}: differs from the generated dashboard", path.display())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => out.push(format!("{}: missing", path.display())),
            Err(e) => out.push(format!("{}: cannot read: {e}", path.display())),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use promql_parser::label::MatchOp;

    use super::*;
    use crate::errors::Verdict;
    use crate::readiness::checks::dashboard;

    /// Every query of a dashboard: panel targets, annotations and query variables.
    fn exprs(model: &Value) -> Vec<String> {
        let mut out: Vec<String> =
            dashboard::panels(model).into_iter().flat_map(dashboard::queries).map(|q| q.expr).collect();
        for a in model["annotations"]["list"].as_array().into_iter().flatten() {
            out.extend(a["expr"].as_str().map(str::to_string));
        }
        out
    }

    /// Metric families the sidecar exports (docs/metrics-and-logs.md) and series Prometheus
    /// derives from the shipped rules.
    fn known(name: &str) -> bool {
        const EXPORTED: &[&str] = &[
            "http_server_request_duration_seconds_bucket",
            "http_server_request_duration_seconds_count",
            "http_server_request_duration_seconds_sum",
            "http_server_active_requests",
            "http_server_request_body_size_bytes_sum",
            "http_server_response_body_size_bytes_sum",
            "redline_cgroup_cpu_usage_seconds_total",
            "redline_cgroup_cpu_throttled_seconds_total",
            "redline_cgroup_memory_usage_bytes",
            "redline_cgroup_memory_limit_bytes",
            "redline_cgroup_pressure_stall_seconds_total",
            "redline_app_cpu_seconds_total",
            "redline_app_resident_memory_bytes",
            "redline_app_open_fds",
            "redline_app_max_fds",
            "redline_app_threads",
            "process_cpu_seconds_total",
            "process_resident_memory_bytes",
            "redline_upstream_connections",
            "rpc_server_call_duration_seconds_bucket",
            "rpc_server_call_duration_seconds_count",
            "redline_build_info",
            "redline_spans_dropped_total",
            "redline_log_lines_dropped_total",
            "redline_rule_evaluation_failures_total",
            "redline_alerts",
            "redline_notifications_sent_total",
            "redline_notifications_dropped_total",
            "redline_notification_errors_total",
            "ALERTS",
        ];
        EXPORTED.contains(&name)
            || name.starts_with("redline:slo_errors:ratio_rate")
            || name.starts_with("redline:slo_slow:ratio_rate")
    }

    /// Values as Grafana fills them in: one service, "All" namespaces, one version and route.
    fn example_values() -> Vec<(&'static str, grafana::VarValue)> {
        use grafana::VarValue::{Picked, Raw, Single};
        vec![
            ("service", Single("checkout".into())),
            ("namespace", Raw(".*".into())),
            ("version", Picked(vec!["1.2.3".into()])),
            ("route", Picked(vec!["/users/{id}".into(), "/orders/{id}/items".into()])),
            ("rpc_method", Picked(vec!["shop.Checkout/PlaceOrder".into()])),
            ("availability", Single("99.9".into())),
            ("latency_target", Single("99".into())),
            ("__rate_interval", Raw("1m".into())),
            ("__range", Raw("1h".into())),
        ]
    }

    #[test]
    fn output_is_stable_and_files_are_distinct() {
        assert_eq!(files(), files());
        let names: BTreeSet<&str> = files().iter().map(|(n, _)| *n).collect();
        assert_eq!(names.len(), 4);
        let uids: BTreeSet<String> = all().iter().map(|(_, m)| m["uid"].as_str().unwrap_or("").to_string()).collect();
        assert_eq!(uids.len(), 4, "{uids:?}");
        for (name, text) in files() {
            assert!(text.ends_with("}\n"), "{name}");
            let model: Value = serde_json::from_str(&text).unwrap_or_default();
            assert_eq!(model["schemaVersion"], grafana::SCHEMA_VERSION, "{name}");
            assert!(model["tags"].as_array().is_some_and(|t| t.contains(&Value::from("redline"))), "{name}");
        }
    }

    #[test]
    fn panel_ids_are_unique_and_panels_do_not_overlap() {
        for (name, model) in all() {
            let panels = dashboard::panels(&model);
            let ids: BTreeSet<u64> = panels.iter().filter_map(|p| p["id"].as_u64()).collect();
            assert_eq!(ids.len(), panels.len(), "{name}");
            let cells = |p: &Value| {
                let g = &p["gridPos"];
                let n = |k: &str| g[k].as_u64().unwrap_or(0);
                (n("x"), n("y"), n("w"), n("h"))
            };
            for (i, a) in panels.iter().enumerate() {
                let (ax, ay, aw, ah) = cells(a);
                assert!(ax + aw <= 24 && aw > 0 && ah > 0, "{name}: {}", a["title"]);
                for b in &panels[i + 1..] {
                    let (bx, by, bw, bh) = cells(b);
                    let overlap = ax < bx + bw && bx < ax + aw && ay < by + bh && by < ay + ah;
                    assert!(!overlap, "{name}: {} overlaps {}", a["title"], b["title"]);
                }
            }
        }
    }

    #[test]
    fn every_query_is_promql_over_exported_names_and_uses_the_datasource_variable() {
        for (name, model) in all() {
            let queries = exprs(&model);
            assert!(queries.len() >= 8, "{name}: {}", queries.len());
            for q in queries {
                let filled = grafana::interpolate(&q, &example_values());
                assert!(!filled.contains('$'), "{name}: {filled}");
                let e = promql_parser::parser::parse(&filled).unwrap_or_else(|e| panic!("{name}: {filled}: {e}"));
                for n in crate::readiness::checks::ExprUse::of(&e).names() {
                    assert!(known(n), "{name}: {q} reads {n}, which nothing exports");
                }
                assert!(q.contains(r#"service="$service""#), "{name}: {q} is not scoped to $service");
            }
            for p in dashboard::panels(&model) {
                if p["type"] != "row" {
                    assert_eq!(p["datasource"]["uid"], "${datasource}", "{name}: {}", p["title"]);
                }
            }
        }
    }

    #[test]
    fn the_red_dashboard_passes_the_readiness_check_for_any_service() {
        let models: Vec<(String, Value)> = all().into_iter().map(|(n, m)| (n.to_string(), m)).collect();
        for service in ["checkout", "cart"] {
            let o = dashboard::judge(service, &models, vec![]);
            assert_eq!(o.status, crate::readiness::report::Status::Pass, "{}", o.summary);
            assert!(o.summary.starts_with("redline-red.json"), "{}", o.summary);
        }
    }

    /// The SLO panels follow the objective: the targets as variable defaults, the threshold's
    /// bucket, and the windows of the period (those the SLO rules record).
    #[test]
    fn the_slo_panels_follow_the_configured_objective() {
        let o = SloView {
            availability: 99.5,
            latency_target: 95.0,
            threshold: Duration::from_millis(500),
            period: Duration::from_secs(7 * 86_400),
        };
        let text = files_for(&o).into_iter().map(|(_, t)| t).collect::<String>();
        assert!(text.contains(r#""text": "99.5""#) && text.contains(r#""text": "95""#), "targets");
        assert!(text.contains(r#"le=\"0.5\""#) && !text.contains(r#"le=\"0.3\""#), "the 500ms bucket");
        assert!(text.contains("redline:slo_errors:ratio_rate1m10s{") && !text.contains("ratio_rate5m{"), "7d windows");
        assert!(text.contains("[7d]))") && text.contains("Requests within 500 ms (7 days)"), "the period");
        let default = files().into_iter().map(|(_, t)| t).collect::<String>();
        assert!(default.contains(r#"le=\"0.3\""#) && default.contains("redline:slo_slow:ratio_rate3d{"));
    }

    #[test]
    fn red_has_the_variables_and_exemplars_on_duration() {
        let model = red::dashboard(&SloView::default_config()).model();
        let vars: Vec<&str> =
            model["templating"]["list"].as_array().into_iter().flatten().filter_map(|v| v["name"].as_str()).collect();
        assert_eq!(vars, ["datasource", "service", "namespace", "version", "route", "rpc_method"]);
        let duration = dashboard::panels(&model)
            .into_iter()
            .find(|p| p["title"].as_str().is_some_and(|t| t.starts_with("Duration p50")))
            .cloned()
            .unwrap_or_default();
        let exemplars = duration["targets"].as_array().into_iter().flatten().filter(|t| t["exemplar"] == true).count();
        assert_eq!(exemplars, 1, "{duration:#}");
    }

    /// Every `ErrorType` as its label (a 5xx as its code) and whether it is the service's, and
    /// the empty value (no `error_type`: a success).
    fn error_type_labels() -> Vec<(String, bool)> {
        use crate::telemetry::red::ErrorType;
        let mut buf = itoa::Buffer::new();
        let mut out: Vec<(String, bool)> = [
            ErrorType::Status,
            ErrorType::Timeout,
            ErrorType::ConnectionRefused,
            ErrorType::ConnectError,
            ErrorType::UpstreamError,
            ErrorType::ClientClosed,
            ErrorType::ClientTimeout,
            ErrorType::ClientInvalidRequest,
            ErrorType::Shutdown,
            ErrorType::GrpcUnknown,
            ErrorType::GrpcDeadlineExceeded,
            ErrorType::GrpcUnimplemented,
            ErrorType::GrpcInternal,
            ErrorType::GrpcUnavailable,
            ErrorType::GrpcDataLoss,
        ]
        .into_iter()
        .map(|e| (e.label(503, &mut buf).to_string(), e.is_service_error()))
        .collect();
        out.push((String::new(), false));
        out
    }

    #[test]
    fn the_service_failed_matcher_selects_exactly_the_services_error_types() {
        let e = promql_parser::parser::parse(&format!("m{{{SERVICE_FAILED}}}")).expect("promql");
        let promql_parser::parser::Expr::VectorSelector(vs) = e else { panic!("{e:?}") };
        let m = vs.matchers.matchers.iter().find(|m| m.name == "error_type").expect("error_type matcher");
        for (label, service) in error_type_labels() {
            assert_eq!(m.is_match(&label), service, "error_type={label:?}");
        }
        assert!(m.is_match("500") && m.is_match("599") && !m.is_match("client_whatever"));
    }

    #[test]
    fn error_ratios_and_the_availability_sli_count_the_services_failures_only() {
        let mut ratios = 0;
        for (name, model) in all() {
            for p in dashboard::panels(&model) {
                let title = p["title"].as_str().unwrap_or("");
                for q in dashboard::queries(p) {
                    let filled = grafana::interpolate(&q.expr, &example_values());
                    let e = promql_parser::parser::parse(&filled).unwrap_or_else(|e| panic!("{filled}: {e}"));
                    let u = crate::readiness::checks::ExprUse::of(&e);
                    let failed: Vec<&String> = u
                        .selectors
                        .iter()
                        .flat_map(|s| &s.matchers)
                        .filter(|(l, op, v)| l == "error_type" && !(matches!(op, MatchOp::Equal) && v.is_empty()))
                        .map(|(_, _, v)| v)
                        .collect();
                    if failed.is_empty() {
                        continue;
                    }
                    if title == "Errors by type and route" {
                        // The breakdown shows every error_type, the clients' too (its
                        // description says which are the service's); it divides nothing.
                        assert!(q.expr.starts_with("sum by (error_type, http_route)") && !u.divides, "{}", q.expr);
                        continue;
                    }
                    assert!(u.divides, "{name}: {title}: {}", q.expr);
                    assert!(q.expr.contains(SERVICE_FAILED), "{name}: {title}: {}", q.expr);
                    assert!(failed.iter().all(|v| *v == "|client_.+|shutdown"), "{name}: {title}: {}", q.expr);
                    ratios += 1;
                }
            }
        }
        // RED: error ratio by version and the gRPC error ratio by method; SLO: availability
        // and its error budget remaining.
        assert_eq!(ratios, 4);
    }

    /// The gRPC row: collapsed (only gRPC services have data for it), last, every query over
    /// the RPC histogram scoped to the picked methods; latency leaves out what the shipped
    /// RedlineGrpcHighLatency leaves out.
    #[test]
    fn red_has_a_collapsed_grpc_row_over_the_rpc_histogram() {
        let model = red::dashboard(&SloView::default_config()).model();
        let top = model["panels"].as_array().cloned().unwrap_or_default();
        let row = top.last().cloned().unwrap_or_default();
        assert_eq!((row["type"].as_str(), row["collapsed"].as_bool()), (Some("row"), Some(true)), "{row:#}");
        assert!(row["title"].as_str().is_some_and(|t| t.starts_with("gRPC")), "{row:#}");
        let panels = row["panels"].as_array().cloned().unwrap_or_default();
        let titles: Vec<&str> = panels.iter().filter_map(|p| p["title"].as_str()).collect();
        assert_eq!(
            titles,
            [
                "gRPC calls by method",
                "gRPC server-error ratio by method",
                "gRPC duration p50 / p99 by method",
                "gRPC calls by status code"
            ]
        );
        let mut legends = Vec::new();
        for p in &panels {
            for q in dashboard::queries(p) {
                assert!(q.expr.contains(RPC_METHOD), "{}: {}", q.panel, q.expr);
                let filled = grafana::interpolate(&q.expr, &example_values());
                let e = promql_parser::parser::parse(&filled).unwrap_or_else(|e| panic!("{filled}: {e}"));
                let u = crate::readiness::checks::ExprUse::of(&e);
                assert!(u.names().all(|n| n.starts_with(RPC)), "{}: {}", q.panel, q.expr);
                if u.names().any(|n| n.ends_with("_bucket")) {
                    assert!(q.expr.contains(RPC_NOT_LATENCY), "{}: {}", q.panel, q.expr);
                }
            }
            legends.extend(p["targets"].as_array().into_iter().flatten().filter_map(|t| t["legendFormat"].as_str()));
        }
        assert_eq!(
            legends,
            [
                "{{rpc_method}}",
                "{{rpc_method}}",
                "p50 {{rpc_method}}",
                "p99 {{rpc_method}}",
                "{{rpc_response_status_code}}"
            ]
        );
        let vars = model["templating"]["list"].as_array().cloned().unwrap_or_default();
        let method = vars.iter().find(|v| v["name"] == "rpc_method").cloned().unwrap_or_default();
        assert_eq!(method["query"], format!("label_values({RPC}_count{{{VERSION}}}, rpc_method)"));
        assert_eq!(method["includeAll"], true);
    }

    /// The latency exclusion is the shipped rule's, character for character.
    #[test]
    fn grpc_latency_leaves_out_what_the_shipped_rule_leaves_out() {
        let rules = include_str!("../../rules/redline-symptoms.yml");
        assert!(rules.contains(&format!("{RPC}_bucket{{{RPC_NOT_LATENCY}}}")), "{RPC_NOT_LATENCY}");
    }

    #[test]
    fn check_names_missing_and_changed_files() {
        let tmp = tempfile::tempdir().expect("temp dir");
        let dir = tmp.path().join("dashboards");
        let (mut out, mut err) = (Vec::new(), Vec::new());
        assert!(matches!(
            command::generate(&dir, false, &SloView::default_config(), &mut out, &mut err),
            Ok(Verdict::Pass)
        ));
        assert!(stale(&dir).is_empty());
        std::fs::write(dir.join("redline-use.json"), "{}\n").expect("write");
        std::fs::remove_file(dir.join("redline-slo.json")).expect("remove");
        let s = stale(&dir);
        assert_eq!(s.len(), 2, "{s:?}");
        assert!(s[0].ends_with("redline-use.json: differs from the generated dashboard"), "{s:?}");
        assert!(s[1].ends_with("redline-slo.json: missing"), "{s:?}");
    }
}
