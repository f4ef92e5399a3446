//! The canary's samples from Prometheus: PromQL over the sidecar's metric names (README metrics reference) for
//! one service version, and `/api/v1/query_range` to fetch them.
//!
//! The sidecar's series carry no service/version labels of their own; Prometheus attaches them
//! as target labels (scrape config `labels`, or relabelling from pod labels such as
//! `app.kubernetes.io/version`). Their names are configurable and default to `service` and
//! `version`.

use std::time::Duration;

use serde::Deserialize;

use super::judge::MetricSpec;

/// Which series belong to one side of the comparison.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Side {
    pub service_label: String,
    pub service: String,
    pub version_label: String,
    pub version: String,
}

#[derive(Debug, thiserror::Error)]
pub enum PrometheusError {
    #[error("label name {0:?} is not a valid Prometheus label name")]
    LabelName(String),
    #[error("{url}: {source}")]
    Http { url: String, source: reqwest::Error },
    #[error("{url}: HTTP {status}: {body}")]
    Status { url: String, status: u16, body: String },
    #[error("{url}: Prometheus answered {error_type}: {error}")]
    Query { url: String, error_type: String, error: String },
    #[error("{url}: unexpected answer: {message}")]
    Answer { url: String, message: String },
}

/// A PromQL string literal for `value`.
fn quote(value: &str) -> String {
    let mut out = String::with_capacity(value.len() + 2);
    out.push('"');
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn valid_label_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// The matcher of the service's failures: `error_type` set and none of `client_*` (the
/// client's fault) and `shutdown` (the sidecar's drain). The regex is fully anchored, so the
/// empty value (no `error_type`) is left out too. A canary must not fail because its clients
/// went away, stalled or sent garbage, nor because a rollout drained its pods.
pub const SERVICE_FAILED: &str = r#"error_type!~"|client_.+|shutdown""#;

/// Prometheus duration syntax for a range, in whole seconds (at least 1s).
fn range(d: Duration) -> String {
    format!("{}s", d.as_secs().max(1))
}

/// The three judged metrics and their PromQL for one side, `rate()` over `rate_window`.
///
/// - error ratio: the service's failures ([`SERVICE_FAILED`]: a 5xx or a proxy error, never a
///   client's failure or a drain cut) over all requests; `or vector(0)` so that a version
///   without a single failure gives 0 rather than no sample;
/// - p99 latency: `histogram_quantile(0.99, …)` of the duration histogram;
/// - CPU per request: the app process's CPU (`redline_app_cpu_seconds_total`), else the pod's
///   cgroup CPU, per request. Steps without requests give NaN and are dropped by the judge.
pub fn queries(side: &Side, rate_window: Duration) -> Result<Vec<(MetricSpec, String)>, PrometheusError> {
    for name in [&side.service_label, &side.version_label] {
        if !valid_label_name(name) {
            return Err(PrometheusError::LabelName(name.clone()));
        }
    }
    let sel =
        format!("{}={},{}={}", side.service_label, quote(&side.service), side.version_label, quote(&side.version));
    let r = range(rate_window);
    let requests = format!("sum(rate(http_server_request_duration_seconds_count{{{sel}}}[{r}]))");
    Ok(vec![
        (
            MetricSpec::error_ratio(),
            format!(
                "(sum(rate(http_server_request_duration_seconds_count{{{sel},{SERVICE_FAILED}}}[{r}])) or vector(0)) / {requests}"
            ),
        ),
        (
            MetricSpec::p99_latency(),
            format!(
                "histogram_quantile(0.99, sum by (le) (rate(http_server_request_duration_seconds_bucket{{{sel}}}[{r}])))"
            ),
        ),
        (
            MetricSpec::cpu_per_request(),
            format!(
                "(sum(rate(redline_app_cpu_seconds_total{{{sel}}}[{r}])) or sum(rate(redline_cgroup_cpu_usage_seconds_total{{{sel}}}[{r}]))) / {requests}"
            ),
        ),
    ])
}

#[derive(Deserialize)]
struct ApiResponse {
    status: String,
    #[serde(default)]
    data: Option<MatrixData>,
    #[serde(default, rename = "errorType")]
    error_type: Option<String>,
    #[serde(default)]
    error: Option<String>,
}

#[derive(Deserialize)]
struct MatrixData {
    #[serde(rename = "resultType")]
    result_type: String,
    result: Vec<Series>,
}

#[derive(Deserialize)]
struct Series {
    values: Vec<(f64, String)>,
}

/// The values of `query` from `start` to `end` (unix seconds) every `step`, in time order.
/// An empty result (no series) is no samples; the queries above aggregate to one series.
pub async fn range_query(
    client: &reqwest::Client,
    base_url: &str,
    query: &str,
    start: f64,
    end: f64,
    step: Duration,
) -> Result<Vec<f64>, PrometheusError> {
    let url = format!("{}/api/v1/query_range", base_url.trim_end_matches('/'));
    let step = format!("{}", step.as_secs_f64().max(0.001));
    let form: Vec<String> =
        [("query", query), ("start", &start.to_string()), ("end", &end.to_string()), ("step", &step)]
            .iter()
            .map(|(k, v)| {
                format!("{k}={}", percent_encoding::utf8_percent_encode(v, percent_encoding::NON_ALPHANUMERIC))
            })
            .collect();
    let response = client
        .post(&url)
        .header(reqwest::header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(form.join("&"))
        .send()
        .await
        .map_err(|source| PrometheusError::Http { url: url.clone(), source })?;
    let status = response.status();
    let body = response.bytes().await.map_err(|source| PrometheusError::Http { url: url.clone(), source })?;
    let parsed: Result<ApiResponse, _> = serde_json::from_slice(&body);
    let parsed = match parsed {
        Ok(p) => p,
        Err(e) if status.is_success() => {
            return Err(PrometheusError::Answer { url, message: format!("not the query API's JSON: {e}") });
        }
        Err(_) => {
            let body = String::from_utf8_lossy(&body).chars().take(200).collect();
            return Err(PrometheusError::Status { url, status: status.as_u16(), body });
        }
    };
    if parsed.status != "success" {
        return Err(PrometheusError::Query {
            url,
            error_type: parsed.error_type.unwrap_or_default(),
            error: parsed.error.unwrap_or_default(),
        });
    }
    let data = parsed.data.ok_or_else(|| PrometheusError::Answer { url: url.clone(), message: "no data".into() })?;
    if data.result_type != "matrix" {
        return Err(PrometheusError::Answer {
            url,
            message: format!("result type {:?}, expected matrix", data.result_type),
        });
    }
    if data.result.len() > 1 {
        return Err(PrometheusError::Answer {
            url,
            message: format!("{} series for one metric; expected one aggregated series", data.result.len()),
        });
    }
    // Prometheus writes sample values as strings ("0.25", "NaN", "+Inf"); Rust parses all three.
    Ok(data.result.into_iter().flat_map(|s| s.values).map(|(_, v)| v.parse::<f64>().unwrap_or(f64::NAN)).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn side(version: &str) -> Side {
        Side {
            service_label: "service".into(),
            service: "checkout".into(),
            version_label: "version".into(),
            version: version.into(),
        }
    }

    #[test]
    fn queries_are_valid_promql_over_the_sidecars_metrics() {
        let qs = queries(&side("2.3.1"), Duration::from_secs(60)).unwrap();
        assert_eq!(qs.len(), 3);
        for (spec, q) in &qs {
            promql_parser::parser::parse(q).unwrap_or_else(|e| panic!("{}: {q}: {e}", spec.name));
            assert!(q.contains(r#"service="checkout",version="2.3.1""#), "{q}");
            assert!(q.contains("[60s]"), "{q}");
        }
        assert!(qs[0].1.contains(r#",error_type!~"|client_.+|shutdown"}"#), "{}", qs[0].1);
        assert!(!qs[0].1.contains(r#"error_type!="""#), "{}", qs[0].1);
        assert!(qs[1].1.starts_with("histogram_quantile(0.99"));
    }

    /// The error ratio's numerator selects exactly the error types the telemetry calls the
    /// service's: no client failure or drain cut can fail a canary.
    #[test]
    fn the_error_ratio_counts_the_services_failures_only() {
        use crate::telemetry::red::ErrorType;
        let qs = queries(&side("2.3.1"), Duration::from_secs(60)).unwrap();
        let e = promql_parser::parser::parse(&qs[0].1).unwrap();
        let u = crate::readiness::checks::ExprUse::of(&e);
        let matchers: Vec<&(String, promql_parser::label::MatchOp, String)> =
            u.selectors.iter().flat_map(|s| &s.matchers).filter(|(l, _, _)| l == "error_type").collect();
        assert_eq!(matchers.len(), 1, "{}", qs[0].1);
        let (_, op, _) = matchers[0];
        let promql_parser::label::MatchOp::NotRe(re) = op else { panic!("{op:?}") };
        let mut buf = itoa::Buffer::new();
        for (e, status) in [
            (ErrorType::Status, 500),
            (ErrorType::Status, 503),
            (ErrorType::Timeout, 504),
            (ErrorType::ConnectionRefused, 502),
            (ErrorType::ConnectError, 502),
            (ErrorType::UpstreamError, 502),
            (ErrorType::ClientClosed, 400),
            (ErrorType::ClientTimeout, 408),
            (ErrorType::ClientInvalidRequest, 431),
            (ErrorType::Shutdown, 0),
        ] {
            let label = e.label(status, &mut buf).to_string();
            assert_eq!(!re.is_match(&label), e.is_service_error(), "error_type={label}");
        }
        assert!(re.is_match(""), "a request without error_type is no failure");
    }

    #[test]
    fn label_values_are_escaped_and_names_checked() {
        let mut s = side(r#"a"b\c"#);
        let qs = queries(&s, Duration::from_secs(30)).unwrap();
        assert!(qs[1].1.contains(r#"version="a\"b\\c""#), "{}", qs[1].1);
        promql_parser::parser::parse(&qs[1].1).unwrap();
        s.version_label = "app.kubernetes.io/version".into();
        assert!(matches!(queries(&s, Duration::from_secs(30)), Err(PrometheusError::LabelName(_))));
    }
}
