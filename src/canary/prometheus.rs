//! The canary's samples from Prometheus: PromQL over the sidecar's metric names (docs/metrics-and-logs.md) for
//! one service version, and `/api/v1/query_range` to fetch them. HTTP services are judged on the
//! request histogram, gRPC services (`--protocol grpc`) on the RPC histogram, per call.
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

/// Which of the sidecar's histograms the error ratio and the latency come from.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum Protocol {
    /// Every request: `http_server_request_duration_seconds` (gRPC calls included, as the
    /// HTTP/2 requests they are).
    #[default]
    Http,
    /// gRPC calls: `rpc_server_call_duration_seconds`, by `rpc_method`; the latency leaves
    /// streaming methods out.
    Grpc,
}

/// The traffic a canary is judged on: the protocol's histogram, and for gRPC optionally only
/// the methods an `rpc_method` regex matches.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Traffic {
    pub protocol: Protocol,
    /// A regex over `rpc_method` (fully anchored, as PromQL's); `--protocol grpc` only.
    pub rpc_method: Option<String>,
}

impl Traffic {
    /// The HTTP request histogram: what the judge used before it knew gRPC.
    pub fn http() -> Traffic {
        Traffic::default()
    }

    pub fn grpc(rpc_method: Option<&str>) -> Traffic {
        Traffic { protocol: Protocol::Grpc, rpc_method: rpc_method.map(str::to_string) }
    }

    /// What the report's evidence says about the traffic judged.
    pub fn describe(&self) -> String {
        match (&self.protocol, &self.rpc_method) {
            (Protocol::Http, _) => "HTTP requests (http_server_request_duration_seconds)".to_string(),
            (Protocol::Grpc, None) => "gRPC calls (rpc_server_call_duration_seconds)".to_string(),
            (Protocol::Grpc, Some(m)) => {
                format!("gRPC calls of rpc_method=~{} (rpc_server_call_duration_seconds)", quote(m))
            }
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum PrometheusError {
    #[error("label name {0:?} is not a valid Prometheus label name")]
    LabelName(String),
    #[error("--rpc-method selects gRPC methods: it needs --protocol grpc")]
    RpcMethodWithoutGrpc,
    #[error("--rpc-method {0:?} is not a valid regular expression: {1}")]
    RpcMethodRegex(String, String),
    /// The request failed; `cause` is [`crate::errors::http_cause`]'s account of it.
    #[error("{url}: {cause}")]
    Http { url: String, cause: String },
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

/// The `rpc_method`s left out of the gRPC latency: `_OTHER` (no method: calls to methods the
/// service does not serve and the methods past the label's limit) and streaming methods by the
/// naming convention of rules/README.md (a stream's duration is the whole stream's), the same
/// matcher as the shipped `RedlineGrpcHighLatency`.
pub const GRPC_NOT_LATENCY: &str = r#"rpc_method!~"_OTHER|.+/(Stream|Watch|Subscribe).*|.+/ServerReflectionInfo""#;

/// Prometheus duration syntax for a range, in whole seconds (at least 1s).
fn range(d: Duration) -> String {
    format!("{}s", d.as_secs().max(1))
}

/// The three judged metrics and their PromQL for one side, `rate()` over `rate_window`.
///
/// - error ratio: the service's failures ([`SERVICE_FAILED`]: a 5xx or a proxy error, never a
///   client's failure or a drain cut; for gRPC a server-error code, the only codes with an
///   `error_type`) over all requests or calls; `or vector(0)` so that a version without a
///   single failure gives 0 rather than no sample;
/// - p99 latency: `histogram_quantile(0.99, …)` of the duration histogram (for gRPC without
///   [`GRPC_NOT_LATENCY`]);
/// - CPU per request: the app process's CPU (`redline_app_cpu_seconds_total`), else the pod's
///   cgroup CPU, per request (every request, gRPC calls included, whatever the protocol: the
///   CPU is the whole pod's). Steps without requests give NaN and are dropped by the judge.
///
/// With [`Protocol::Grpc`] the first two read `rpc_server_call_duration_seconds`, restricted
/// to `rpc_method=~M` when the traffic names methods.
pub fn queries(
    side: &Side,
    rate_window: Duration,
    traffic: &Traffic,
) -> Result<Vec<(MetricSpec, String)>, PrometheusError> {
    for name in [&side.service_label, &side.version_label] {
        if !valid_label_name(name) {
            return Err(PrometheusError::LabelName(name.clone()));
        }
    }
    let sel =
        format!("{}={},{}={}", side.service_label, quote(&side.service), side.version_label, quote(&side.version));
    let r = range(rate_window);
    let requests = format!("sum(rate(http_server_request_duration_seconds_count{{{sel}}}[{r}]))");
    let (family, calls, latency) = match traffic.protocol {
        Protocol::Http => {
            if traffic.rpc_method.is_some() {
                return Err(PrometheusError::RpcMethodWithoutGrpc);
            }
            ("http_server_request_duration_seconds", sel.clone(), sel.clone())
        }
        Protocol::Grpc => {
            let calls = match &traffic.rpc_method {
                Some(m) => {
                    regex::Regex::new(&format!("^(?:{m})$"))
                        .map_err(|e| PrometheusError::RpcMethodRegex(m.clone(), e.to_string()))?;
                    format!("{sel},rpc_method=~{}", quote(m))
                }
                None => sel.clone(),
            };
            let latency = format!("{calls},{GRPC_NOT_LATENCY}");
            ("rpc_server_call_duration_seconds", calls, latency)
        }
    };
    Ok(vec![
        (
            MetricSpec::error_ratio(),
            format!(
                "(sum(rate({family}_count{{{calls},{SERVICE_FAILED}}}[{r}])) or vector(0)) / sum(rate({family}_count{{{calls}}}[{r}]))"
            ),
        ),
        (
            MetricSpec::p99_latency(),
            format!("histogram_quantile(0.99, sum by (le) (rate({family}_bucket{{{latency}}}[{r}])))"),
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
        .map_err(|e| PrometheusError::Http { url: url.clone(), cause: crate::errors::http_cause(&e) })?;
    let status = response.status();
    let body = response
        .bytes()
        .await
        .map_err(|e| PrometheusError::Http { url: url.clone(), cause: crate::errors::http_cause(&e) })?;
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
        let qs = queries(&side("2.3.1"), Duration::from_secs(60), &Traffic::http()).unwrap();
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
        let qs = queries(&side("2.3.1"), Duration::from_secs(60), &Traffic::http()).unwrap();
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
            // gRPC server errors, at HTTP status 200 (the code is in the trailers)
            (ErrorType::GrpcUnknown, 200),
            (ErrorType::GrpcDeadlineExceeded, 200),
            (ErrorType::GrpcUnimplemented, 200),
            (ErrorType::GrpcInternal, 200),
            (ErrorType::GrpcUnavailable, 200),
            (ErrorType::GrpcDataLoss, 200),
        ] {
            let label = e.label(status, &mut buf).to_string();
            assert_eq!(!re.is_match(&label), e.is_service_error(), "error_type={label}");
        }
        assert!(re.is_match(""), "a request without error_type is no failure");
    }

    /// The HTTP queries as they were before the judge knew gRPC: the same text for
    /// `--protocol http`.
    #[test]
    fn http_queries_are_unchanged() {
        let qs = queries(&side("2.3.1"), Duration::from_secs(60), &Traffic::http()).unwrap();
        let l = r#"service="checkout",version="2.3.1""#;
        assert_eq!(
            qs[0].1,
            format!(
                r#"(sum(rate(http_server_request_duration_seconds_count{{{l},error_type!~"|client_.+|shutdown"}}[60s])) or vector(0)) / sum(rate(http_server_request_duration_seconds_count{{{l}}}[60s]))"#
            )
        );
        assert_eq!(
            qs[1].1,
            format!(
                "histogram_quantile(0.99, sum by (le) (rate(http_server_request_duration_seconds_bucket{{{l}}}[60s])))"
            )
        );
    }

    #[test]
    fn grpc_queries_read_the_rpc_histogram_and_leave_streams_out_of_the_latency() {
        let l = r#"service="checkout",version="2.3.1""#;
        let qs = queries(&side("2.3.1"), Duration::from_secs(60), &Traffic::grpc(None)).unwrap();
        assert_eq!(qs.len(), 3);
        assert_eq!(
            qs[0].1,
            format!(
                r#"(sum(rate(rpc_server_call_duration_seconds_count{{{l},error_type!~"|client_.+|shutdown"}}[60s])) or vector(0)) / sum(rate(rpc_server_call_duration_seconds_count{{{l}}}[60s]))"#
            )
        );
        assert_eq!(
            qs[1].1,
            format!(
                r#"histogram_quantile(0.99, sum by (le) (rate(rpc_server_call_duration_seconds_bucket{{{l},rpc_method!~"_OTHER|.+/(Stream|Watch|Subscribe).*|.+/ServerReflectionInfo"}}[60s])))"#
            )
        );
        // CPU per request over every request of the pod, as for HTTP.
        let http = queries(&side("2.3.1"), Duration::from_secs(60), &Traffic::http()).unwrap();
        assert_eq!(qs[2], http[2]);
        assert_eq!(
            qs.iter().map(|(s, _)| s.name.as_str()).collect::<Vec<_>>(),
            ["error_ratio", "p99_latency_seconds", "cpu_seconds_per_request"]
        );

        // Only some methods: both the error ratio's numerator and denominator, and the latency.
        let qs =
            queries(&side("2.3.1"), Duration::from_secs(60), &Traffic::grpc(Some(r#"shop\.Checkout/.*"#))).unwrap();
        let m = r#"rpc_method=~"shop\\.Checkout/.*""#;
        assert_eq!(
            qs[0].1,
            format!(
                r#"(sum(rate(rpc_server_call_duration_seconds_count{{{l},{m},error_type!~"|client_.+|shutdown"}}[60s])) or vector(0)) / sum(rate(rpc_server_call_duration_seconds_count{{{l},{m}}}[60s]))"#
            )
        );
        assert!(qs[1].1.contains(&format!("{{{l},{m},{GRPC_NOT_LATENCY}}}")), "{}", qs[1].1);
        for (spec, q) in &qs {
            let e = promql_parser::parser::parse(q).unwrap_or_else(|e| panic!("{}: {q}: {e}", spec.name));
            let u = crate::readiness::checks::ExprUse::of(&e);
            // The method matcher survives PromQL's unescaping as the regex given.
            if spec.name != "cpu_seconds_per_request" {
                let methods: Vec<&String> = u
                    .selectors
                    .iter()
                    .flat_map(|s| &s.matchers)
                    .filter(|(l, op, _)| l == "rpc_method" && matches!(op, promql_parser::label::MatchOp::Re(_)))
                    .map(|(_, _, v)| v)
                    .collect();
                assert!(!methods.is_empty() && methods.iter().all(|v| *v == r#"shop\.Checkout/.*"#), "{q}");
            }
        }
    }

    /// What the latency leaves out: `_OTHER` and streams by name, never a unary method.
    #[test]
    fn grpc_latency_leaves_out_other_and_streaming_methods_as_the_shipped_rule_does() {
        let rules = include_str!("../../rules/redline-symptoms.yml");
        assert!(rules.contains(&format!("rpc_server_call_duration_seconds_bucket{{{GRPC_NOT_LATENCY}}}")));
        let e = promql_parser::parser::parse(&format!("m{{{GRPC_NOT_LATENCY}}}")).expect("promql");
        let promql_parser::parser::Expr::VectorSelector(vs) = e else { panic!("{e:?}") };
        let m = vs.matchers.matchers.iter().find(|m| m.name == "rpc_method").expect("rpc_method matcher");
        for left_out in [
            "_OTHER",
            "shop.Inventory/WatchStock",
            "shop.Prices/StreamQuotes",
            "shop.Events/SubscribeOrders",
            "grpc.health.v1.Health/Watch",
            "grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
            "grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo",
        ] {
            assert!(!m.is_match(left_out), "{left_out}");
        }
        for kept in ["shop.Checkout/PlaceOrder", "grpc.health.v1.Health/Check", "shop.Streams/List", "shop.Watcher/Get"]
        {
            assert!(m.is_match(kept), "{kept}");
        }
    }

    #[test]
    fn a_method_regex_needs_grpc_and_must_compile() {
        let http_with_method = Traffic { protocol: Protocol::Http, rpc_method: Some("a/b".into()) };
        let e = queries(&side("1"), Duration::from_secs(60), &http_with_method).unwrap_err();
        assert_eq!(e.to_string(), "--rpc-method selects gRPC methods: it needs --protocol grpc");
        let e = queries(&side("1"), Duration::from_secs(60), &Traffic::grpc(Some("shop.(Checkout"))).unwrap_err();
        assert!(e.to_string().starts_with(r#"--rpc-method "shop.(Checkout" is not a valid regular expression"#), "{e}");
        // A quote or backslash in the regex is escaped into the PromQL string.
        let qs = queries(&side("1"), Duration::from_secs(60), &Traffic::grpc(Some(r#"a"b\d"#))).unwrap();
        assert!(qs[0].1.contains(r#"rpc_method=~"a\"b\\d""#), "{}", qs[0].1);
        promql_parser::parser::parse(&qs[0].1).unwrap();
    }

    #[test]
    fn label_values_are_escaped_and_names_checked() {
        let mut s = side(r#"a"b\c"#);
        let qs = queries(&s, Duration::from_secs(30), &Traffic::http()).unwrap();
        assert!(qs[1].1.contains(r#"version="a\"b\\c""#), "{}", qs[1].1);
        promql_parser::parser::parse(&qs[1].1).unwrap();
        s.version_label = "app.kubernetes.io/version".into();
        assert!(matches!(queries(&s, Duration::from_secs(30), &Traffic::http()), Err(PrometheusError::LabelName(_))));
    }
}
