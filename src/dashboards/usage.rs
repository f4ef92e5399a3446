//! The USE dashboard of one service: utilisation, saturation and errors of its pods' cgroups,
//! of the app process next to the sidecar, and of the sidecar itself.

use super::grafana::{Dashboard, Item, Panel, Target, target};
use super::{VERSION, firing_alerts_annotation, service_variables, version_variable};

/// Per pod (instance where there is no `pod` label).
const BY: &str = "pod, instance";
const LEGEND: &str = "{{pod}} {{instance}}";

fn per_pod_rate(family: &str, extra: &str, legend: &str) -> Target {
    rate_by(BY, family, extra, legend)
}

fn rate_by(by: &str, family: &str, extra: &str, legend: &str) -> Target {
    target(format!("sum by ({by}) (rate({family}{{{VERSION}{extra}}}[$__rate_interval]))"), legend)
}

fn per_pod(family: &str, legend: &str) -> Target {
    target(format!("sum by ({BY}) ({family}{{{VERSION}}})"), legend)
}

/// A `process_*` family of the sidecar only: targets that expose `redline_build_info`.
fn sidecar(expr: &str) -> Target {
    target(format!("sum by ({BY}) ({expr} and on (job, instance) redline_build_info{{{VERSION}}})"), LEGEND)
}

pub fn dashboard() -> Dashboard {
    let mut variables = service_variables();
    variables.push(version_variable());
    let items = vec![
        Item::Row("Container CPU (cgroup v2)"),
        Item::Panel(
            Panel::timeseries("CPU usage (cores)", "short")
                .describe("CPU time used by the pod's container cgroup per second (`redline_cgroup_cpu_usage_seconds_total`).")
                .target(per_pod_rate("redline_cgroup_cpu_usage_seconds_total", "", LEGEND)),
        ),
        Item::Panel(
            Panel::timeseries("CPU throttling", "percentunit")
                .describe("Time the cgroup was throttled by its CPU limit, per second of wall time: above zero the limit is too low for the load.")
                .target(per_pod_rate("redline_cgroup_cpu_throttled_seconds_total", "", LEGEND)),
        ),
        Item::Panel(
            Panel::timeseries("CPU pressure (PSI)", "percentunit")
                .describe("Share of time tasks of the cgroup waited for a CPU (pressure stall information, some / full).")
                .target(rate_by(
                    "pod, instance, kind",
                    "redline_cgroup_pressure_stall_seconds_total",
                    r#",resource="cpu""#,
                    "{{kind}} {{pod}} {{instance}}",
                )),
        ),
        Item::Row("Container memory and IO (cgroup v2)"),
        Item::Panel(
            Panel::timeseries("Memory usage and limit", "bytes")
                .describe("Memory charged to the cgroup and its limit (absent when unlimited).")
                .target(per_pod("redline_cgroup_memory_usage_bytes", "used {{pod}} {{instance}}"))
                .target(per_pod("redline_cgroup_memory_limit_bytes", "limit {{pod}} {{instance}}")),
        ),
        Item::Panel(
            Panel::timeseries("Memory utilisation", "percentunit")
                .describe("Memory usage over the cgroup's limit; near 100% the kernel reclaims and then OOM-kills.")
                .thresholds("green", &[(0.9, "red")])
                .target(target(
                    format!(
                        "sum by ({BY}) (redline_cgroup_memory_usage_bytes{{{VERSION}}}) / sum by ({BY}) (redline_cgroup_memory_limit_bytes{{{VERSION}}})"
                    ),
                    LEGEND,
                )),
        ),
        Item::Panel(
            Panel::timeseries("Memory and IO pressure (PSI)", "percentunit")
                .describe("Share of time tasks of the cgroup stalled on memory or IO (some / full).")
                .target(rate_by(
                    "pod, instance, resource, kind",
                    "redline_cgroup_pressure_stall_seconds_total",
                    r#",resource=~"memory|io""#,
                    "{{resource}} {{kind}} {{pod}} {{instance}}",
                )),
        ),
        Item::Row("App process"),
        Item::Panel(
            Panel::timeseries("App CPU (cores)", "short")
                .describe("CPU time of the service's own process per second (`app_pid` / `app_process_name`).")
                .width(6)
                .target(per_pod_rate("redline_app_cpu_seconds_total", "", LEGEND)),
        ),
        Item::Panel(
            Panel::timeseries("App resident memory", "bytes")
                .describe("Resident set size of the service's process.")
                .width(6)
                .target(per_pod("redline_app_resident_memory_bytes", LEGEND)),
        ),
        Item::Panel(
            Panel::timeseries("App file descriptors used", "percentunit")
                .describe("Open file descriptors over the process limit; at 100% accept() and open() fail.")
                .width(6)
                .thresholds("green", &[(0.8, "red")])
                .target(target(
                    format!(
                        "sum by ({BY}) (redline_app_open_fds{{{VERSION}}}) / sum by ({BY}) (redline_app_max_fds{{{VERSION}}})"
                    ),
                    LEGEND,
                )),
        ),
        Item::Panel(
            Panel::timeseries("App threads", "short")
                .describe("OS threads of the service's process.")
                .width(6)
                .target(per_pod("redline_app_threads", LEGEND)),
        ),
        Item::Row("Sidecar"),
        Item::Panel(
            Panel::timeseries("Sidecar CPU (cores)", "short")
                .describe("CPU used by the redline sidecar itself.")
                .width(6)
                .target(sidecar(&format!("rate(process_cpu_seconds_total{{{VERSION}}}[$__rate_interval])"))),
        ),
        Item::Panel(
            Panel::timeseries("Sidecar resident memory", "bytes")
                .describe("Resident memory of the redline sidecar.")
                .width(6)
                .target(sidecar(&format!("process_resident_memory_bytes{{{VERSION}}}"))),
        ),
        Item::Panel(
            Panel::timeseries("Proxy saturation", "short")
                .describe("Requests in flight in the sidecar and upstream connections busy with a request.")
                .width(6)
                .target(per_pod("http_server_active_requests", "in flight {{pod}} {{instance}}"))
                .target(target(
                    format!(r#"sum by ({BY}) (redline_upstream_connections{{{VERSION},state="active"}})"#),
                    "upstream active {{pod}} {{instance}}",
                )),
        ),
        Item::Panel(
            Panel::timeseries("Telemetry dropped", "short")
                .describe("Spans and log lines the sidecar dropped per second because Jaeger or stdout could not keep up (requests are never held back).")
                .width(6)
                .target(per_pod_rate("redline_spans_dropped_total", "", "spans {{pod}} {{instance}}"))
                .target(per_pod_rate("redline_log_lines_dropped_total", "", "log lines {{pod}} {{instance}}")),
        ),
    ];
    Dashboard {
        uid: "redline-use",
        title: "redline / USE",
        description: "Utilisation, saturation and errors of a service's pods (cgroup v2), its process and its redline sidecar.",
        tags: vec!["redline", "use"],
        variables,
        annotations: vec![firing_alerts_annotation()],
        items,
    }
}
