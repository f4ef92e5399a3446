//! `alerts.symptoms` and `alerts.tests`: the alerting rules cover what users feel (error
//! ratio, latency, availability), recognised by the metrics and functions their expressions
//! use, each with `for`, a `severity` label and a `runbook_url`; and their unit tests pass.

use std::collections::HashMap;

use promql_parser::label::MatchOp;

use super::ExprUse;
use crate::readiness::report::Outcome;
use crate::rules::file::{Group, RuleKind};
use crate::rules::unittest::FileReport;

pub const SYMPTOMS: [&str; 3] = ["error ratio", "latency", "availability"];

/// The symptoms one alert expression covers.
pub fn symptoms(expr: &promql_parser::parser::Expr) -> Vec<&'static str> {
    symptoms_of(&ExprUse::of(expr))
}

/// What an expression reads, with the series of recording rules it reads replaced by what
/// their expressions read (so an SLO alert over `…:ratio_rate1h` counts as an error ratio).
fn resolve(mut u: ExprUse, records: &HashMap<&str, ExprUse>) -> ExprUse {
    let mut seen: Vec<String> = Vec::new();
    // Bounded: recording rules can only chain so deep, and a cycle must not loop.
    for _ in 0..16 {
        let pending: Vec<String> =
            u.names().filter(|n| records.contains_key(n) && !seen.iter().any(|s| s == n)).map(str::to_string).collect();
        if pending.is_empty() {
            break;
        }
        for name in pending {
            if let Some(r) = records.get(name.as_str()) {
                u.selectors.extend(r.selectors.iter().cloned());
                u.functions.extend(r.functions.iter().copied());
                u.divides |= r.divides;
            }
            seen.push(name);
        }
    }
    u
}

/// `error_type` values of the service's failures: a matcher that keeps one of them and leaves
/// out the empty value selects failed requests. gRPC server errors carry the code's name, in
/// the HTTP family and in `rpc_server_call_duration_seconds` alike.
const SERVICE_ERRORS: [&str; 13] = [
    "500",
    "503",
    "504",
    "timeout",
    "connection_refused",
    "connect_error",
    "upstream_error",
    "UNKNOWN",
    "DEADLINE_EXCEEDED",
    "UNIMPLEMENTED",
    "INTERNAL",
    "UNAVAILABLE",
    "DATA_LOSS",
];

/// Whether a label matcher (`op`, its value `v`) keeps the label value `value`; an absent
/// label is the empty value. Regexes are fully anchored, as PromQL's.
fn keeps(op: &MatchOp, v: &str, value: &str) -> bool {
    match op {
        MatchOp::Equal => v == value,
        MatchOp::NotEqual => v != value,
        MatchOp::Re(r) => r.is_match(value),
        MatchOp::NotRe(r) => !r.is_match(value),
    }
}

/// An `error_type` matcher that selects failed requests: it leaves out the requests without
/// `error_type` and keeps some of the service's failures. Both `error_type!=""` (every
/// failure) and `error_type!~"|client_.+|shutdown"` (the service's only, the matcher the
/// shipped rules use) are; `error_type=~"client_.+"` (the clients' only) is not.
pub fn selects_failures(op: &MatchOp, v: &str) -> bool {
    !keeps(op, v, "") && SERVICE_ERRORS.iter().any(|e| keeps(op, v, e))
}

/// An `error_type` matcher that selects requests the service did not fail: it keeps those
/// without `error_type` and none of the service's failures: `error_type=""`, or
/// `error_type=~"|client_.+|shutdown"` (successes, client failures and drain cuts).
pub fn selects_successes(op: &MatchOp, v: &str) -> bool {
    keeps(op, v, "") && !SERVICE_ERRORS.iter().any(|e| keeps(op, v, e))
}

fn symptoms_of(u: &ExprUse) -> Vec<&'static str> {
    let failed = u.selectors.iter().any(|s| {
        s.matchers.iter().any(|(l, op, v)| {
            (l == "error_type" && selects_failures(op, v))
                || (l.contains("status") && matches!(op, MatchOp::Re(_)) && v.starts_with('5'))
        })
    });
    let succeeded =
        u.selectors.iter().any(|s| s.matchers.iter().any(|(l, op, v)| l == "error_type" && selects_successes(op, v)));
    let mut out = Vec::new();
    if failed && u.divides {
        out.push("error ratio");
    }
    if u.names().any(|n| n.ends_with("_bucket") || n.contains("latency") || n.contains("duration_seconds_sum"))
        || u.functions.contains(&"histogram_quantile")
    {
        out.push("latency");
    }
    if succeeded
        || u.names().any(|n| n == "up" || n.contains("availability"))
        || u.functions.iter().any(|f| matches!(*f, "absent" | "absent_over_time"))
    {
        out.push("availability");
    }
    out
}

/// What an alert lacks to be actionable.
fn lacks(rule: &crate::rules::file::Rule) -> Vec<&'static str> {
    let mut out = Vec::new();
    if rule.for_.is_zero() {
        out.push("`for`");
    }
    if rule.labels.get("severity").is_none_or(|s| s.is_empty()) {
        out.push("`severity` label");
    }
    if rule.annotations.get("runbook_url").is_none_or(|s| s.is_empty()) {
        out.push("`runbook_url` annotation");
    }
    out
}

pub fn judge_symptoms(groups: &[Group]) -> Outcome {
    let mut covered: Vec<(&'static str, String)> = Vec::new();
    let mut incomplete = Vec::new();
    let mut alerts = 0;
    let records: HashMap<&str, ExprUse> = groups
        .iter()
        .flat_map(|g| &g.rules)
        .filter(|r| r.kind == RuleKind::Recording)
        .map(|r| (r.name.as_str(), ExprUse::of(&r.expr)))
        .collect();
    for g in groups {
        for r in g.rules.iter().filter(|r| r.kind == RuleKind::Alerting) {
            alerts += 1;
            let found = symptoms_of(&resolve(ExprUse::of(&r.expr), &records));
            if found.is_empty() {
                continue;
            }
            let missing = lacks(r);
            if missing.is_empty() {
                for s in found {
                    covered.push((s, r.name.clone()));
                }
            } else {
                incomplete.push(format!(
                    "{}:{} alert {} ({}) has no {}",
                    g.file,
                    r.line,
                    r.name,
                    found.join(", "),
                    missing.join(", ")
                ));
            }
        }
    }
    let missing: Vec<&str> = SYMPTOMS.iter().copied().filter(|s| !covered.iter().any(|(c, _)| c == s)).collect();
    let by_symptom: Vec<String> = SYMPTOMS
        .iter()
        .filter_map(|s| {
            let names: Vec<&str> = covered.iter().filter(|(c, _)| c == s).map(|(_, n)| n.as_str()).collect();
            (!names.is_empty()).then(|| format!("{s}: {}", names.join(", ")))
        })
        .collect();
    if missing.is_empty() {
        return Outcome::pass(format!(
            "{alerts} alerts cover error ratio, latency and availability, each with for, severity and runbook_url"
        ))
        .details(by_symptom.into_iter().chain(incomplete).collect());
    }
    let mut summary = format!("no complete alert for {}", missing.join(", "));
    if !incomplete.is_empty() {
        summary.push_str(&format!(" ({} alert(s) lack for/severity/runbook_url: {})", incomplete.len(), incomplete[0]));
    } else if alerts == 0 {
        summary.push_str(" (no alerting rules)");
    }
    Outcome::fail(summary).details(by_symptom.into_iter().chain(incomplete).collect())
}

/// SLO alerts of the rule files (by alert name and `objective` label) whose expression is not
/// that of the same alert among the rules `generated` from the configured objective: a copy
/// of `redline rules slo` made for another objective. One line per alert, naming file and line.
pub fn slo_disagreements(files: &[Group], generated: &[Group]) -> Vec<String> {
    let squeeze = |s: &str| s.split_whitespace().collect::<Vec<_>>().join(" ");
    let key = |r: &crate::rules::file::Rule| (r.name.clone(), r.labels.get("objective").cloned());
    let wanted: HashMap<_, String> = generated
        .iter()
        .flat_map(|g| &g.rules)
        .filter(|r| r.kind == RuleKind::Alerting)
        .map(|r| (key(r), squeeze(&r.expr_text)))
        .collect();
    let mut out = Vec::new();
    for g in files {
        for r in g.rules.iter().filter(|r| r.kind == RuleKind::Alerting) {
            if let Some(want) = wanted.get(&key(r))
                && squeeze(&r.expr_text) != *want
            {
                out.push(format!(
                    "{}:{} alert {}: `{}`, but the configured objective gives `{want}`; regenerate the file with \
                     `redline rules slo --config`",
                    g.file,
                    r.line,
                    r.name,
                    squeeze(&r.expr_text)
                ));
            }
        }
    }
    out
}

pub fn judge_tests(reports: &[FileReport], rule_files: usize) -> Outcome {
    if reports.is_empty() {
        return Outcome::fail(format!(
            "no unit-test file (*_test.yml) next to the {rule_files} rule file(s): add promtool-format tests"
        ));
    }
    let failed: Vec<&FileReport> = reports.iter().filter(|r| !r.passed()).collect();
    if failed.is_empty() {
        return Outcome::pass(format!("{} rule unit-test file(s) pass", reports.len()));
    }
    let details: Vec<String> = failed
        .iter()
        .flat_map(|r| r.failures.iter().take(5).map(move |f| format!("{}: {}", r.file.display(), f.trim())))
        .collect();
    Outcome::fail(format!(
        "{} of {} rule unit-test file(s) fail: {}",
        failed.len(),
        reports.len(),
        failed.iter().map(|r| r.file.display().to_string()).collect::<Vec<_>>().join(", ")
    ))
    .details(details)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sym(e: &str) -> Vec<&'static str> {
        symptoms(&promql_parser::parser::parse(e).expect("promql"))
    }

    #[test]
    fn symptoms_are_recognised_by_what_the_expression_reads() {
        assert_eq!(sym(r#"sum(rate(m_count{error_type!=""}[5m])) / sum(rate(m_count[5m])) > 0.05"#), ["error ratio"]);
        assert_eq!(sym("histogram_quantile(0.99, sum by (le) (rate(m_bucket[5m]))) > 1"), ["latency"]);
        assert_eq!(
            sym(r#"sum(increase(m_count[5m])) > 0 unless sum(increase(m_count{error_type=""}[5m])) > 0"#),
            ["availability"]
        );
        assert_eq!(sym("up == 0"), ["availability"]);
        assert!(sym("process_resident_memory_bytes > 1e9").is_empty());
    }

    #[test]
    fn the_service_failure_matcher_and_the_old_one_are_error_selectors() {
        // The shipped rules' matcher: the service's failures only.
        assert_eq!(
            sym(r#"sum(rate(m_count{error_type!~"|client_.+|shutdown"}[5m])) / sum(rate(m_count[5m])) > 0.05"#),
            ["error ratio"]
        );
        // The old one (every request with an error_type) still is.
        assert_eq!(sym(r#"sum(rate(m_count{error_type!=""}[5m])) / sum(rate(m_count[5m])) > 0.05"#), ["error ratio"]);
        assert_eq!(sym(r#"sum(rate(m_count{error_type=~".+"}[5m])) / sum(rate(m_count[5m])) > 0.05"#), ["error ratio"]);
        assert_eq!(sym(r#"sum(rate(m_count{error_type="503"}[5m])) / sum(rate(m_count[5m])) > 0.05"#), ["error ratio"]);
        // The shipped RedlineNoSuccessfulTraffic: failures, no successes, nothing divided.
        assert_eq!(
            sym(
                r#"sum(increase(m_count{error_type!~"|client_.+|shutdown"}[5m])) > 0 unless sum(increase(m_count{error_type=""}[5m])) > 0"#
            ),
            ["availability"]
        );
        // The requests the service did not fail are successes, not failures.
        assert_eq!(
            sym(r#"sum(rate(m_count{error_type=~"|client_.+|shutdown"}[5m])) / sum(rate(m_count[5m])) < 0.95"#),
            ["availability"]
        );
        // Client failures alone are not the service's error ratio, nor its successes.
        assert!(sym(r#"sum(rate(m_count{error_type=~"client_.+"}[5m])) / sum(rate(m_count[5m])) > 0.05"#).is_empty());
        assert!(sym(r#"sum(rate(m_count{error_type="shutdown"}[5m])) / sum(rate(m_count[5m])) > 0.05"#).is_empty());
    }

    /// The shipped gRPC alerts: the per-method error ratio over the RPC histogram and its p99.
    #[test]
    fn the_grpc_alerts_are_an_error_ratio_and_a_latency() {
        let checks =
            crate::rules::file::Checks { expr: &crate::rules::promql::check, template: &crate::rules::template::check };
        let shipped: Vec<Group> = crate::rules::file::parse(
            include_str!("../../../rules/redline-symptoms.yml"),
            "rules/redline-symptoms.yml",
            &checks,
        )
        .expect("shipped rules parse");
        let grpc = shipped.iter().find(|g| g.name == "redline-symptoms-grpc").expect("the gRPC group");
        let found: Vec<(&str, Vec<&str>)> = grpc.rules.iter().map(|r| (r.name.as_str(), symptoms(&r.expr))).collect();
        assert_eq!(
            found,
            [("RedlineGrpcHighErrorRatio", vec!["error ratio"]), ("RedlineGrpcHighLatency", vec!["latency"])]
        );
        assert!(grpc.rules.iter().all(|r| lacks(r).is_empty()));
    }

    #[test]
    fn error_type_matchers_are_judged_by_the_values_they_keep() {
        let m = |e: &str| -> (MatchOp, String) {
            let promql_parser::parser::Expr::VectorSelector(vs) = promql_parser::parser::parse(e).expect("promql")
            else {
                panic!("{e}")
            };
            let m = vs.matchers.matchers.into_iter().find(|m| m.name == "error_type").expect("error_type");
            (m.op, m.value)
        };
        for (e, failures, successes) in [
            (r#"m{error_type!~"|client_.+|shutdown"}"#, true, false),
            (r#"m{error_type!=""}"#, true, false),
            (r#"m{error_type=~".+"}"#, true, false),
            (r#"m{error_type!~""}"#, true, false),
            (r#"m{error_type=~"5.."}"#, true, false),
            (r#"m{error_type="timeout"}"#, true, false),
            (r#"m{error_type=""}"#, false, true),
            (r#"m{error_type!~".+"}"#, false, true),
            (r#"m{error_type=~"|client_.+|shutdown"}"#, false, true),
            (r#"m{error_type=~"client_.+"}"#, false, false),
            (r#"m{error_type="client_closed"}"#, false, false),
            (r#"m{error_type=~"client_.+|shutdown"}"#, false, false),
            (r#"m{error_type!="503"}"#, false, false),
            // gRPC server errors by their code names
            (r#"m{error_type=~"UNAVAILABLE|INTERNAL"}"#, true, false),
            (r#"m{error_type="DEADLINE_EXCEEDED"}"#, true, false),
            (r#"m{error_type!~"|client_.+|shutdown|UNAVAILABLE"}"#, true, false),
        ] {
            let (op, v) = m(e);
            assert_eq!((selects_failures(&op, &v), selects_successes(&op, &v)), (failures, successes), "{e}");
        }
    }

    #[test]
    fn alerts_over_recording_rules_count_by_what_the_records_read() {
        let parse = |e: &str| promql_parser::parser::parse(e).expect("promql");
        let mut records = HashMap::new();
        records.insert(
            "slo:errors:ratio_rate1h",
            ExprUse::of(&parse(r#"sum(rate(m_count{error_type!=""}[1h])) / sum(rate(m_count[1h]))"#)),
        );
        records.insert(
            "slo:service_errors:ratio_rate1h",
            ExprUse::of(&parse(
                r#"sum(rate(m_count{error_type!~"|client_.+|shutdown"}[1h])) / sum(rate(m_count[1h]))"#,
            )),
        );
        let u = resolve(ExprUse::of(&parse("slo:service_errors:ratio_rate1h > 14.4 * 0.001")), &records);
        assert_eq!(symptoms_of(&u), ["error ratio"]);
        records.insert("loop:a", ExprUse::of(&parse("loop:a + 1")));
        let u = resolve(ExprUse::of(&parse("slo:errors:ratio_rate1h > 14.4 * 0.001")), &records);
        assert_eq!(symptoms_of(&u), ["error ratio"]);
        assert!(symptoms_of(&resolve(ExprUse::of(&parse("loop:a > 1")), &records)).is_empty(), "a cycle ends");
    }
}
