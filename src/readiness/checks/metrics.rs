//! `metrics.red` and `metrics.use`: which of the sidecar's metric families (the names in docs/metrics-and-logs.md)
//! have samples, from the Prometheus text exposition or from Prometheus' answer.

use std::collections::BTreeSet;

use crate::readiness::report::Outcome;

/// Metric names of the sample lines in a Prometheus text (0.0.4) or OpenMetrics exposition.
pub fn sample_names(exposition: &str) -> BTreeSet<String> {
    exposition
        .lines()
        .map(str::trim_start)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .filter_map(|l| l.split(|c: char| c == '{' || c.is_whitespace()).next())
        .map(str::to_string)
        .collect()
}

/// RED: rate and errors come from the duration histogram's `_count` (errors by its `error_type`
/// label), duration from its buckets; the active-requests gauge completes the set.
pub const RED_SAMPLES: [(&str, &str); 3] = [
    ("http_server_request_duration_seconds_count", "rate and errors"),
    ("http_server_request_duration_seconds_bucket", "duration"),
    ("http_server_active_requests", "in-flight requests"),
];

/// The RPC histogram (OpenTelemetry `rpc.server.call.duration`) the sidecar records for every
/// gRPC call, besides the HTTP families: present only once gRPC calls went through.
pub const RPC_SAMPLE: &str = "rpc_server_call_duration_seconds_count";

/// A gRPC service passes on the HTTP families like any other (each call is also an HTTP/2
/// request there); the RPC histogram, when it has samples, is named in the summary as evidence
/// that the calls are seen per method too. Its absence is no failure: an HTTP service has none.
pub fn red(names: &BTreeSet<String>) -> Outcome {
    let missing: Vec<String> =
        RED_SAMPLES.iter().filter(|(n, _)| !names.contains(*n)).map(|(n, what)| format!("{n} ({what})")).collect();
    if missing.is_empty() {
        let mut summary = "RED families have samples: request rate, errors and duration (http_server_request_duration_seconds), active requests".to_string();
        if names.contains(RPC_SAMPLE) {
            summary.push_str("; gRPC calls per method (rpc_server_call_duration_seconds)");
        }
        Outcome::pass(summary)
    } else if !names.contains(RED_SAMPLES[0].0) && names.contains(RED_SAMPLES[2].0) {
        Outcome::fail(format!(
            "no samples of {}: the duration histogram appears after the first request; send traffic through the sidecar",
            missing.join(", ")
        ))
    } else {
        Outcome::fail(format!("missing RED samples: {}", missing.join(", ")))
    }
}

/// USE: utilisation, saturation and errors of the pod (cgroup), the app process and the proxy.
pub fn use_(names: &BTreeSet<String>) -> Outcome {
    let any = |prefixes: &[&str]| -> Vec<String> {
        names.iter().filter(|n| prefixes.iter().any(|p| n.starts_with(p))).cloned().collect()
    };
    let pod = any(&["redline_cgroup_"]);
    let app = any(&["redline_app_"]);
    let process = any(&["process_cpu_seconds_total", "process_resident_memory_bytes"]);
    let saturation = any(&["http_server_active_requests", "redline_upstream_connections", "redline_cgroup_pressure_"]);
    let mut sources = Vec::new();
    if !pod.is_empty() {
        sources.push(format!("pod cgroup ({} families)", pod.len()));
    }
    if !app.is_empty() {
        sources.push(format!("app process ({} families)", app.len()));
    }
    if !process.is_empty() {
        sources.push("sidecar process".to_string());
    }
    let details: Vec<String> = pod.iter().chain(&app).chain(&process).chain(&saturation).cloned().collect();
    if saturation.is_empty() {
        return Outcome::fail(
            "no saturation family (http_server_active_requests, redline_upstream_connections, redline_cgroup_pressure_*)",
        )
        .details(details);
    }
    if pod.is_empty() && app.is_empty() {
        if process.is_empty() {
            return Outcome::fail("no utilisation family: neither redline_cgroup_*, redline_app_* nor process_*")
                .details(details);
        }
        return Outcome::warn(
            "only the sidecar's own process_* families: set app_pid/app_process_name or run in a cgroup v2 pod for the service's USE",
        )
        .details(details);
    }
    Outcome::pass(format!("USE families with samples: {}, proxy saturation", sources.join(", "))).details(details)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn families_with_and_without_samples() {
        let text = "# TYPE http_server_active_requests gauge\nhttp_server_active_requests{http_request_method=\"GET\"} 0\n\
                    # TYPE http_server_request_duration_seconds histogram\nprocess_cpu_seconds_total 1\n";
        let names = sample_names(text);
        let r = red(&names);
        assert_eq!(r.status, crate::readiness::report::Status::Fail);
        assert!(r.summary.contains("after the first request"), "{}", r.summary);
        let r = use_(&names);
        assert_eq!(r.status, crate::readiness::report::Status::Warn);
        let names = sample_names(
            "http_server_request_duration_seconds_count 1\nhttp_server_request_duration_seconds_bucket{le=\"+Inf\"} 1\n\
             http_server_active_requests 0\nredline_cgroup_cpu_usage_seconds_total 3\n",
        );
        assert_eq!(red(&names).status, crate::readiness::report::Status::Pass);
        assert!(!red(&names).summary.contains("gRPC"), "{}", red(&names).summary);
        assert_eq!(use_(&names).status, crate::readiness::report::Status::Pass);
    }

    #[test]
    fn a_grpc_service_passes_on_the_http_families_and_its_rpc_histogram_is_named() {
        use crate::readiness::report::Status;
        // Every gRPC call is also an HTTP/2 request in the HTTP families.
        let names = sample_names(
            "http_server_request_duration_seconds_count{http_request_method=\"POST\",http_route=\"/shop.Checkout/PlaceOrder\",http_response_status_code=\"200\",error_type=\"UNAVAILABLE\"} 3\n\
             http_server_request_duration_seconds_bucket{http_request_method=\"POST\",http_route=\"/shop.Checkout/PlaceOrder\",http_response_status_code=\"200\",error_type=\"UNAVAILABLE\",le=\"+Inf\"} 3\n\
             http_server_active_requests{http_request_method=\"POST\"} 1\n\
             # TYPE rpc_server_call_duration_seconds histogram\n\
             rpc_server_call_duration_seconds_bucket{rpc_system_name=\"grpc\",rpc_method=\"shop.Checkout/PlaceOrder\",rpc_response_status_code=\"UNAVAILABLE\",error_type=\"UNAVAILABLE\",le=\"+Inf\"} 3\n\
             rpc_server_call_duration_seconds_sum{rpc_system_name=\"grpc\",rpc_method=\"shop.Checkout/PlaceOrder\",rpc_response_status_code=\"UNAVAILABLE\",error_type=\"UNAVAILABLE\"} 0.2\n\
             rpc_server_call_duration_seconds_count{rpc_system_name=\"grpc\",rpc_method=\"shop.Checkout/PlaceOrder\",rpc_response_status_code=\"UNAVAILABLE\",error_type=\"UNAVAILABLE\"} 3\n",
        );
        assert!(names.contains(RPC_SAMPLE), "{names:?}");
        let r = red(&names);
        assert_eq!(r.status, Status::Pass, "{}", r.summary);
        assert_eq!(
            r.summary,
            "RED families have samples: request rate, errors and duration (http_server_request_duration_seconds), active requests; gRPC calls per method (rpc_server_call_duration_seconds)"
        );
        // The RPC histogram alone is no RED: the HTTP families must be there too.
        let only_rpc: BTreeSet<String> = names.iter().filter(|n| n.starts_with("rpc_server_")).cloned().collect();
        let r = red(&only_rpc);
        assert_eq!(r.status, Status::Fail, "{}", r.summary);
        assert!(
            r.summary.starts_with("missing RED samples: http_server_request_duration_seconds_count"),
            "{}",
            r.summary
        );
    }
}
