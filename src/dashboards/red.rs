//! The RED dashboard of one service: request rate, errors and duration from the sidecar's
//! request histogram (with trace exemplars), and the proxy's saturation.

use super::grafana::{Dashboard, Item, Kind, Panel, query_variable, target};
use super::{
    DURATION, ROUTE, RPC, RPC_METHOD, RPC_NOT_LATENCY, SERVICE_FAILED, VERSION, firing_alerts_annotation,
    service_variables, version_variable,
};

fn count(extra: &str) -> String {
    format!("{DURATION}_count{{{ROUTE}{extra}}}")
}

fn rate(selector: &str) -> String {
    format!("rate({selector}[$__rate_interval])")
}

/// The service's error ratio by `by`: 0 (not absent) while the service fails nothing.
fn error_ratio(by: &str) -> String {
    let failed = rate(&count(&format!(",{SERVICE_FAILED}")));
    let all = rate(&count(""));
    format!("(sum by ({by}) ({failed}) or 0 * sum by ({by}) ({all})) / sum by ({by}) ({all})")
}

/// gRPC calls of the picked methods, from the RPC histogram's `_count`.
fn rpc_count(extra: &str) -> String {
    format!("{RPC}_count{{{RPC_METHOD}{extra}}}")
}

/// The gRPC server-error ratio by `rpc_method`: 0 (not absent) while a method fails nothing.
fn rpc_error_ratio() -> String {
    let failed = rate(&rpc_count(&format!(",{SERVICE_FAILED}")));
    let all = rate(&rpc_count(""));
    format!("(sum by (rpc_method) ({failed}) or 0 * sum by (rpc_method) ({all})) / sum by (rpc_method) ({all})")
}

/// A quantile of the gRPC call duration by `rpc_method`, streaming methods and `_OTHER` left out.
fn rpc_quantile(q: &str) -> String {
    format!(
        "histogram_quantile({q}, sum by (rpc_method, le) ({}))",
        rate(&format!("{RPC}_bucket{{{RPC_METHOD},{RPC_NOT_LATENCY}}}"))
    )
}

fn quantile(q: &str, by: &str) -> String {
    let by = if by.is_empty() { "le".to_string() } else { format!("{by}, le") };
    format!("histogram_quantile({q}, sum by ({by}) ({}))", rate(&format!("{DURATION}_bucket{{{ROUTE}}}")))
}

pub fn dashboard(objective: &super::SloView) -> Dashboard {
    let within = objective.threshold_words();
    let mut variables = service_variables();
    variables.push(version_variable());
    variables.push(query_variable(
        "route",
        "Route",
        &format!("label_values({DURATION}_count{{{VERSION}}}, http_route)"),
        true,
    ));
    variables.push(query_variable(
        "rpc_method",
        "gRPC method",
        &format!("label_values({RPC}_count{{{VERSION}}}, rpc_method)"),
        true,
    ));
    let items = vec![
        Item::Row("Rate"),
        Item::Panel(
            Panel::timeseries("Request rate by version", "reqps")
                .describe("Requests per second through the sidecar, per version of the service (canary next to baseline).")
                .target(target(format!("sum by (version) ({})", rate(&count(""))), "{{version}}")),
        ),
        Item::Panel(
            Panel::timeseries("Request rate by route", "reqps")
                .describe("Requests per second per route template (`http_route`). A path no template matches is normalised (ids become `{id}`) and gets its own route once the upstream answers it with anything but 404/405/410 (or fails it with 502/504); paths answered 404/405/410, refused by redline or abandoned before an answer share `__unmatched__`, and new routes past `max_routes` count as `__other__`.")
                .target(target(format!("sum by (http_route) ({})", rate(&count(""))), "{{http_route}}")),
        ),
        Item::Panel(
            Panel::timeseries("Throughput (bytes/s)", "Bps")
                .describe("Request and response body bytes per second.")
                .target(target(
                    format!("sum({})", rate(&format!("http_server_request_body_size_bytes_sum{{{ROUTE}}}"))),
                    "received",
                ))
                .target(target(
                    format!("sum({})", rate(&format!("http_server_response_body_size_bytes_sum{{{ROUTE}}}"))),
                    "sent",
                )),
        ),
        Item::Row("Errors"),
        Item::Panel(
            Panel::timeseries("Error ratio by version", "percentunit")
                .describe("Share of requests the service failed: a 5xx from it or a proxy error (`error_type!~\"|client_.+|shutdown\"`). 4xx are successes; client failures (client_closed, client_timeout, client_invalid_request) and drain cuts (shutdown) are not the service's failures and count only in the total. The dashed line is the RedlineHighErrorRatio threshold (5%).")
                .thresholds("green", &[(0.05, "red")])
                .target(target(error_ratio("version"), "{{version}}")),
        ),
        Item::Panel(
            Panel::timeseries("Errors by type and route", "reqps")
                .describe("Requests per second that ended with an `error_type`, by type and route. The service's failures, counted in the error ratio, the alerts, the SLO and the canary judge: the status code of a 5xx, timeout, connection_refused, connect_error, upstream_error. Shown here but not the service's failures and never counted: client_closed (the client went away), client_timeout (the client stalled), client_invalid_request (a request that could not be forwarded: 400, 405, 414, 431) and shutdown (the sidecar's drain cut the request).")
                .target(target(
                    format!("sum by (error_type, http_route) ({})", rate(&count(r#",error_type!="""#))),
                    "{{error_type}} {{http_route}}",
                )),
        ),
        Item::Panel(
            Panel::timeseries("Responses by status code", "reqps")
                .describe("Responses per second by HTTP status code (proxy errors answer 502 or 504; client failures 400, 405, 408, 414 or 431). Requests that got no response (the client went away, a drain cut) have no status code.")
                .target(target(
                    format!("sum by (http_response_status_code) ({})", rate(&count(""))),
                    "{{http_response_status_code}}",
                )),
        ),
        Item::Row("Duration"),
        Item::Panel(
            Panel::timeseries("Duration p50 / p90 / p99", "s")
                .describe("Request duration quantiles from the histogram (interpolated inside a bucket). The dots are exemplars: requests whose trace was sampled; click one to open the trace in Jaeger. The dashed line is the RedlineHighLatency threshold (p99 > 1s).")
                .width(12)
                .thresholds("green", &[(1.0, "red")])
                .target(target(quantile("0.5", ""), "p50"))
                .target(target(quantile("0.9", ""), "p90"))
                .target(target(quantile("0.99", ""), "p99").exemplar()),
        ),
        Item::Panel(
            Panel::timeseries("Duration p99 by route", "s")
                .describe("The 99th percentile of request duration per route template.")
                .width(12)
                .target(target(quantile("0.99", "http_route"), "{{http_route}}")),
        ),
        Item::Panel(
            Panel::new(Kind::Heatmap, "Duration distribution", "s")
                .describe("Requests per histogram bucket over time.")
                .width(12)
                .target(
                    target(
                        format!("sum by (le) (increase({DURATION}_bucket{{{ROUTE}}}[$__rate_interval]))"),
                        "{{le}}",
                    )
                    .heatmap(),
                ),
        ),
        Item::Panel(
            Panel::timeseries(&format!("Requests faster than {within}"), "percentunit")
                .describe(&format!(
                    "Share of requests within {within} (the `le=\"{le}\"` bucket): the latency SLI of the SLO rules (target {target}%).",
                    le = objective.le(),
                    target = crate::slo::number(objective.latency_target)
                ))
                .width(12)
                .thresholds("red", &[(objective.latency_target / 100.0, "green")])
                .target(target(
                    format!(
                        r#"sum({}) / sum({})"#,
                        rate(&format!(r#"{DURATION}_bucket{{{ROUTE},le="{}"}}"#, objective.le())),
                        rate(&count(""))
                    ),
                    &format!("within {within}"),
                )),
        ),
        Item::Row("Saturation"),
        Item::Panel(
            Panel::timeseries("In-flight requests", "short")
                .describe("Requests being served by the sidecar right now (`http_server_active_requests`), per method: queueing shows here first.")
                .width(12)
                .target(target(
                    format!("sum by (http_request_method) (http_server_active_requests{{{VERSION}}})"),
                    "{{http_request_method}}",
                )),
        ),
        Item::Panel(
            Panel::timeseries("Upstream connections", "short")
                .describe("Connections from the sidecar to the service: active (a request in flight) and idle in the keep-alive pool.")
                .width(12)
                .target(target(format!("sum by (state) (redline_upstream_connections{{{VERSION}}})"), "{{state}}")),
        ),
        // Collapsed: only gRPC services have data here. The rows above count their calls too
        // (each is an HTTP/2 request, a server-error code its error_type).
        Item::CollapsedRow("gRPC (per method)"),
        Item::Panel(
            Panel::timeseries("gRPC calls by method", "reqps")
                .describe("gRPC calls per second per method (`rpc_method` of `rpc_server_call_duration_seconds`, the OpenTelemetry rpc.server.call.duration histogram the sidecar records besides the HTTP families); `_OTHER` holds calls to methods the service does not serve and methods past the label's limit. Pick methods with `$rpc_method`.")
                .width(12)
                .target(target(format!("sum by (rpc_method) ({})", rate(&rpc_count(""))), "{{rpc_method}}")),
        ),
        Item::Panel(
            Panel::timeseries("gRPC server-error ratio by method", "percentunit")
                .describe("Share of each method's calls that ended with a server error: `error_type` is set only for UNKNOWN, DEADLINE_EXCEEDED, UNIMPLEMENTED, INTERNAL, UNAVAILABLE and DATA_LOSS (OpenTelemetry's gRPC server errors); CANCELLED, NOT_FOUND, INVALID_ARGUMENT and the other codes are answers or the client's doing and count only in the total. The dashed line is the RedlineGrpcHighErrorRatio threshold (5%).")
                .width(12)
                .thresholds("green", &[(0.05, "red")])
                .target(target(rpc_error_ratio(), "{{rpc_method}}")),
        ),
        Item::Panel(
            Panel::timeseries("gRPC duration p50 / p99 by method", "s")
                .describe("Call duration quantiles per method from the RPC histogram (interpolated inside a bucket), failed calls included. A streaming call lasts as long as its stream, so streaming methods are left out as in RedlineGrpcHighLatency: `_OTHER` and the methods named `Stream*`, `Watch*`, `Subscribe*` or `ServerReflectionInfo` (rules/README.md). The dashed line is the RedlineGrpcHighLatency threshold (p99 > 1s).")
                .width(12)
                .thresholds("green", &[(1.0, "red")])
                .target(target(rpc_quantile("0.5"), "p50 {{rpc_method}}"))
                .target(target(rpc_quantile("0.99"), "p99 {{rpc_method}}")),
        ),
        Item::Panel(
            Panel::timeseries("gRPC calls by status code", "reqps")
                .describe("gRPC calls per second by status code (`rpc_response_status_code`: OK, CANCELLED, NOT_FOUND, UNAVAILABLE, ...), for the picked methods. The HTTP status of these calls is mostly 200: the gRPC code is in the trailers.")
                .width(12)
                .target(target(
                    format!("sum by (rpc_response_status_code) ({})", rate(&rpc_count(""))),
                    "{{rpc_response_status_code}}",
                )),
        ),
    ];
    Dashboard {
        uid: "redline-red",
        title: "redline / RED",
        description: "Rate, errors and duration of a service measured by its redline sidecars, with trace exemplars.",
        tags: vec!["redline", "red"],
        variables,
        annotations: vec![firing_alerts_annotation()],
        items,
    }
}
