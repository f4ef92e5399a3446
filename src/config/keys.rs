//! Every sidecar config key, declared once: its name in the YAML file, its flag, its
//! `REDLINE_*` variable (and the OpenTelemetry variables that also set it), its default and
//! its `--help` text. The flags ([`super::Overrides`]) take their name, variable and help from
//! here, [`super::resolve`] its defaults (parsed from the text shown in `--help`), validation the
//! key names, and `tests/integration/docs.rs` checks docs/configuration.md against `--help`.

use std::fmt;

/// One key of the sidecar's configuration.
#[derive(Debug)]
pub struct Key {
    /// The key in the config file, dotted for nested sections: `slo.latency.threshold`.
    pub name: &'static str,
    /// The flag, without its dashes: `slo-latency-threshold`.
    pub flag: &'static str,
    /// The variable: `REDLINE_SLO_LATENCY_THRESHOLD`.
    pub env: &'static str,
    /// OpenTelemetry variables that also set the key (below the flag and `env`, above the file).
    pub otel_env: &'static [&'static str],
    pub default: Default,
    /// What the key does, for `--help` (the default and the OTel variables are added to it).
    pub doc: &'static str,
}

/// What applies when a key is set nowhere.
#[derive(Clone, Copy, Debug)]
pub enum Default {
    /// This value, written as in a flag; `resolve` parses it with the flag's parser.
    Value(&'static str),
    /// Worked out at start, as these words say.
    Computed(&'static str),
    /// Nothing: an empty list, or the feature it enables stays off.
    None,
    /// The key must be given.
    Required,
}

impl Key {
    /// The `--help` text: the doc, the OpenTelemetry variables, and `[default: ...]`.
    pub fn help(&self) -> String {
        let mut text = self.doc.to_string();
        if !self.otel_env.is_empty() {
            text.push_str(&format!(" (also {})", self.otel_env.join(" and ")));
        }
        match self.default {
            Default::Value(d) | Default::Computed(d) => text.push_str(&format!(" [default: {d}]")),
            Default::Required => text.push_str(" [required]"),
            Default::None => {}
        }
        text
    }

    /// The default value, parsed by `parse` (the flag's own parser): the text in this table is
    /// the only place the value is written. Panics on a key without a value default or one
    /// that does not parse, which the unit tests of every key rule out.
    pub fn default_value<T, E: fmt::Display>(&self, parse: impl Fn(&str) -> Result<T, E>) -> T {
        match self.default {
            Default::Value(text) => parse(text).unwrap_or_else(|e| panic!("default of {}: {text:?}: {e}", self.name)),
            _ => panic!("{} has no default value", self.name),
        }
    }
}

impl fmt::Display for Key {
    /// The key's name, as errors name it.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name)
    }
}

/// A comma-separated list, as list flags and variables take it.
pub fn parse_list<T, E>(text: &str, parse: impl Fn(&str) -> Result<T, E>) -> Result<Vec<T>, E> {
    text.split(',').map(|item| parse(item.trim())).collect()
}

/// The OTLP endpoint when none is configured: the collector's standard port on this host.
pub const OTLP_HTTP_ENDPOINT: &str = "http://localhost:4318";
pub const OTLP_GRPC_ENDPOINT: &str = "http://localhost:4317";

macro_rules! key {
    ($name:literal, $flag:literal, $env:literal, $default:expr, $doc:literal $(, otel: [$($otel:literal),*])?) => {
        Key { name: $name, flag: $flag, env: $env, otel_env: &[$($($otel),*)?], default: $default, doc: $doc }
    };
}

pub const SERVICE: Key =
    key!("service", "service", "REDLINE_SERVICE", Default::Required, "Service name", otel: ["OTEL_SERVICE_NAME"]);
pub const VERSION: Key = key!(
    "version",
    "service-version",
    "REDLINE_VERSION",
    Default::Value("unknown"),
    "Service version, e.g. 2.3.1 (config key `version`)"
);
pub const NAMESPACE: Key = key!(
    "namespace",
    "namespace",
    "REDLINE_NAMESPACE",
    Default::Value("default"),
    "Kubernetes namespace of the service"
);
pub const POD: Key = key!(
    "pod",
    "pod",
    "REDLINE_POD",
    Default::Computed("$HOSTNAME"),
    "Pod name, added to alerts and traces when known"
);
pub const LISTEN: Key =
    key!("listen", "listen", "REDLINE_LISTEN", Default::Value("0.0.0.0:15001"), "Proxy listen address");
pub const UPSTREAM: Key = key!(
    "upstream",
    "upstream",
    "REDLINE_UPSTREAM",
    Default::Value("http://127.0.0.1:8080"),
    "Upstream the proxy forwards to"
);
pub const UPSTREAM_PROTOCOL: Key = key!(
    "upstream_protocol",
    "upstream-protocol",
    "REDLINE_UPSTREAM_PROTOCOL",
    Default::Value("auto"),
    "HTTP version to the upstream: auto (the client's), http1, or http2 (h2c)"
);
pub const UPSTREAM_HEALTH_CHECK: Key = key!(
    "upstream_health_check",
    "upstream-health-check",
    "REDLINE_UPSTREAM_HEALTH_CHECK",
    Default::Value("tcp"),
    "How /readyz checks the upstream: tcp (a connection is accepted), grpc (the standard \
     grpc.health.v1.Health/Check answers SERVING), or grpc:SERVICE for one service"
);
pub const ADMIN: Key = key!(
    "admin",
    "admin",
    "REDLINE_ADMIN",
    Default::Value("0.0.0.0:15090"),
    "Admin listen address for /metrics, /healthz, /readyz"
);
pub const ROUTES: Key = key!(
    "routes",
    "routes",
    "REDLINE_ROUTES",
    Default::None,
    "Route templates, comma-separated, e.g. \"/users/{id},/orders/{id}/items\""
);
pub const MAX_ROUTES: Key = key!(
    "max_routes",
    "max-routes",
    "REDLINE_MAX_ROUTES",
    Default::Value("500"),
    "Most distinct http_route values; further routes count as \"__other__\" (paths answered 404 \
     take no place: \"__unmatched__\")"
);
pub const DURATION_BUCKETS: Key = key!(
    "duration_buckets",
    "duration-buckets",
    "REDLINE_DURATION_BUCKETS",
    Default::Value("0.005,0.01,0.025,0.05,0.075,0.1,0.25,0.5,0.75,1,2.5,5,7.5,10"),
    "Duration histogram buckets in seconds, comma-separated (the default is OpenTelemetry's advice, to which \
     each SLO latency threshold is added; custom buckets must contain the thresholds)"
);
pub const UPSTREAM_TIMEOUT: Key = key!(
    "upstream_timeout",
    "upstream-timeout",
    "REDLINE_UPSTREAM_TIMEOUT",
    Default::Value("30s"),
    "Time from the end of the request body to the upstream's response headers before answering \
     504; at least 10ms, there is no \"off\""
);
pub const DRAIN_TIMEOUT: Key = key!(
    "drain_timeout",
    "drain-timeout",
    "REDLINE_DRAIN_TIMEOUT",
    Default::Value("20s"),
    "Time to let in-flight requests finish on SIGTERM/SIGINT; 0s cuts them at once"
);
pub const HEADER_READ_TIMEOUT: Key = key!(
    "header_read_timeout",
    "header-read-timeout",
    "REDLINE_HEADER_READ_TIMEOUT",
    Default::Value("10s"),
    "Time a client has to send a complete request head, counted from the connection's accept or, \
     between requests, from its first byte"
);
pub const IDLE_TIMEOUT: Key = key!(
    "idle_timeout",
    "idle-timeout",
    "REDLINE_IDLE_TIMEOUT",
    Default::Value("75s"),
    "Longest a client connection may stay open with no request in progress (HTTP/1.1 keep-alive, \
     HTTP/2 without streams)"
);
pub const STREAM_IDLE_TIMEOUT: Key = key!(
    "stream_idle_timeout",
    "stream-idle-timeout",
    "REDLINE_STREAM_IDLE_TIMEOUT",
    Default::Value("5m"),
    "Longest pause in a request or response body, in either direction, before the request is cut"
);
pub const MAX_CONNECTIONS: Key = key!(
    "max_connections",
    "max-connections",
    "REDLINE_MAX_CONNECTIONS",
    Default::Value("10000"),
    "Most concurrent client connections"
);
pub const MAX_HEADER_BYTES: Key = key!(
    "max_header_bytes",
    "max-header-bytes",
    "REDLINE_MAX_HEADER_BYTES",
    Default::Value("65536"),
    "Largest request head (request line and headers) in bytes"
);
pub const WORKERS: Key = key!(
    "workers",
    "workers",
    "REDLINE_WORKERS",
    Default::Computed("the CPUs the sidecar may use: affinity and cgroup CPU quota"),
    "Proxy worker threads, each with its own listener and upstream pool"
);
pub const SENSITIVE_HEADERS: Key = key!(
    "sensitive_headers",
    "sensitive-headers",
    "REDLINE_SENSITIVE_HEADERS",
    Default::None,
    "Extra header names never to log or trace, comma-separated"
);
pub const APP_PID: Key =
    key!("app_pid", "app-pid", "REDLINE_APP_PID", Default::None, "PID of the app process for redline_app_* metrics");
pub const APP_PROCESS_NAME: Key = key!(
    "app_process_name",
    "app-process-name",
    "REDLINE_APP_PROCESS_NAME",
    Default::None,
    "Process name of the app (with a shared process namespace)"
);
pub const CGROUP_PATH: Key = key!(
    "cgroup_path",
    "cgroup-path",
    "REDLINE_CGROUP_PATH",
    Default::Computed("this process's cgroup"),
    "cgroup v2 directory to read USE metrics from"
);
/// The levels `log_level` accepts (the receiver's `--log-level` too).
pub const LOG_LEVELS: [&str; 5] = ["error", "warn", "info", "debug", "trace"];
pub const LOG_LEVEL: Key = key!(
    "log_level",
    "log-level",
    "REDLINE_LOG_LEVEL",
    Default::Value("info"),
    "Log level of redline's own (non-access) log lines: error, warn, info, debug or trace"
);
pub const SLO_AVAILABILITY: Key = key!(
    "slo.availability",
    "slo-availability",
    "REDLINE_SLO_AVAILABILITY",
    Default::Value("99.9"),
    "SLO availability target in percent, above 0 and below 100"
);
pub const SLO_LATENCY_THRESHOLD: Key = key!(
    "slo.latency.threshold",
    "slo-latency-threshold",
    "REDLINE_SLO_LATENCY_THRESHOLD",
    Default::Value("300ms"),
    "SLO latency threshold"
);
pub const SLO_LATENCY_TARGET: Key = key!(
    "slo.latency.target",
    "slo-latency-target",
    "REDLINE_SLO_LATENCY_TARGET",
    Default::Value("99"),
    "Percent of requests that must be faster than the threshold"
);
pub const SLO_PERIOD: Key = key!(
    "slo.period",
    "slo-period",
    "REDLINE_SLO_PERIOD",
    Default::Value("30d"),
    "SLO period the error budgets are counted over; the SLO rules' windows and `for` scale with it \
     (30d: 5m, 30m, 1h, 2h, 6h, 1d, 3d); at least 2h24m"
);
pub const SLO_OBJECTIVES: Key = key!(
    "slo.objectives",
    "slo-objectives",
    "REDLINE_SLO_OBJECTIVES",
    Default::None,
    "Several SLOs, each over some routes, as a YAML list: [{name: orders, routes: [\"/orders/{id}\"], \
     availability: 99.95, latency: {threshold: 500ms, target: 95}}]; unset targets are the slo.* ones"
);
pub const RULES: Key = key!("rules", "rules", "REDLINE_RULES", Default::None, "Rule file globs, comma-separated");
pub const SAMPLE_INTERVAL: Key = key!(
    "sample_interval",
    "sample-interval",
    "REDLINE_SAMPLE_INTERVAL",
    Default::Value("5s"),
    "How often the sidecar samples its own metrics for rule evaluation"
);
pub const RETENTION: Key = key!(
    "retention",
    "retention",
    "REDLINE_RETENTION",
    Default::Value("1h"),
    "How much sampled history is kept for rules"
);
pub const ALERTMANAGERS: Key = key!(
    "alertmanagers",
    "alertmanagers",
    "REDLINE_ALERTMANAGERS",
    Default::None,
    "Alertmanager URLs, comma-separated"
);
pub const TRACING_ENDPOINT: Key = key!(
    "tracing.endpoint",
    "tracing-endpoint",
    "REDLINE_TRACING_ENDPOINT",
    Default::Computed("http://localhost:4318, or http://localhost:4317 with tracing.protocol grpc"),
    "OTLP endpoint",
    otel: ["OTEL_EXPORTER_OTLP_ENDPOINT"]
);
pub const TRACING_PROTOCOL: Key =
    key!("tracing.protocol", "tracing-protocol", "REDLINE_TRACING_PROTOCOL", Default::Value("http"), "OTLP protocol");
pub const TRACING_SAMPLER_RATIO: Key = key!(
    "tracing.sampler_ratio",
    "tracing-sampler-ratio",
    "REDLINE_TRACING_SAMPLER_RATIO",
    Default::Value("1.0"),
    "Trace sampling ratio for new traces",
    otel: ["OTEL_TRACES_SAMPLER", "OTEL_TRACES_SAMPLER_ARG"]
);
pub const TRACING_PROPAGATORS: Key = key!(
    "tracing.propagators",
    "tracing-propagators",
    "REDLINE_TRACING_PROPAGATORS",
    Default::Value("tracecontext"),
    "Formats to inject upstream, comma-separated; W3C traceparent is always written"
);
pub const TRACING_QUEUE_SIZE: Key = key!(
    "tracing.queue_size",
    "tracing-queue-size",
    "REDLINE_TRACING_QUEUE_SIZE",
    Default::Value("2048"),
    "Spans buffered for export before further spans are dropped"
);
pub const TRACING_EXPORT_TIMEOUT: Key = key!(
    "tracing.export_timeout",
    "tracing-export-timeout",
    "REDLINE_TRACING_EXPORT_TIMEOUT",
    Default::Value("10s"),
    "Time one OTLP export may take"
);

/// Every key, in the order of `--help` and of docs/configuration.md.
pub const ALL: [&Key; 40] = [
    &SERVICE,
    &VERSION,
    &NAMESPACE,
    &POD,
    &LISTEN,
    &UPSTREAM,
    &UPSTREAM_PROTOCOL,
    &UPSTREAM_HEALTH_CHECK,
    &ADMIN,
    &ROUTES,
    &MAX_ROUTES,
    &DURATION_BUCKETS,
    &UPSTREAM_TIMEOUT,
    &DRAIN_TIMEOUT,
    &HEADER_READ_TIMEOUT,
    &IDLE_TIMEOUT,
    &STREAM_IDLE_TIMEOUT,
    &MAX_CONNECTIONS,
    &MAX_HEADER_BYTES,
    &WORKERS,
    &SENSITIVE_HEADERS,
    &APP_PID,
    &APP_PROCESS_NAME,
    &CGROUP_PATH,
    &LOG_LEVEL,
    &SLO_AVAILABILITY,
    &SLO_LATENCY_THRESHOLD,
    &SLO_LATENCY_TARGET,
    &SLO_PERIOD,
    &SLO_OBJECTIVES,
    &RULES,
    &SAMPLE_INTERVAL,
    &RETENTION,
    &ALERTMANAGERS,
    &TRACING_ENDPOINT,
    &TRACING_PROTOCOL,
    &TRACING_SAMPLER_RATIO,
    &TRACING_PROPAGATORS,
    &TRACING_QUEUE_SIZE,
    &TRACING_EXPORT_TIMEOUT,
];

#[cfg(test)]
mod tests {
    use clap::{Args as _, Command};

    use super::super::{OtelEnv, Overrides, parse_file, resolve};
    use super::*;

    /// The file that sets every key to its default: `null` where there is no value default.
    fn file_of_defaults() -> String {
        let mut lines = Vec::new();
        let mut open: Vec<&str> = Vec::new(); // the sections of the line before
        for key in ALL {
            let value = match (key.default, key.name) {
                (Default::Required, _) => "checkout".to_string(),
                (Default::Value(v), "duration_buckets" | "tracing.propagators") => format!("[{v}]"),
                (Default::Value(v), _) => v.to_string(),
                (Default::Computed(_) | Default::None, _) => "null".to_string(),
            };
            // ALL lists the keys of a section together, so each section opens once.
            let path: Vec<&str> = key.name.split('.').collect();
            let (sections, leaf) = path.split_at(path.len() - 1);
            let shared = open.iter().zip(sections).take_while(|(a, b)| a == b).count();
            for (depth, section) in sections.iter().enumerate().skip(shared) {
                lines.push(format!("{}{section}:", "  ".repeat(depth)));
            }
            open = sections.to_vec();
            lines.push(format!("{}{}: {value}", "  ".repeat(sections.len()), leaf[0]));
        }
        lines.join("\n") + "\n"
    }

    /// Every key of the table is a key of the file (which refuses unknown keys), every value
    /// default parses, and writing the defaults into a file changes nothing.
    #[test]
    fn the_defaults_parse_and_equal_a_file_that_writes_them_out() {
        let text = file_of_defaults();
        let file = parse_file(&text, "defaults.yaml").unwrap_or_else(|e| panic!("{e}\n{text}"));
        let otel = OtelEnv::default();
        let from_file = resolve(file, &Overrides::default(), &otel).expect("valid");
        let only_service = parse_file("service: checkout\n", "s.yaml").expect("valid");
        let mut built_in = resolve(only_service, &Overrides::default(), &otel).expect("valid");
        // Writing out the `slo` keys configures SLOs (the sidecar then evaluates their rules).
        assert!(from_file.slo.configured && !built_in.slo.configured);
        built_in.slo.configured = true;
        assert_eq!(format!("{from_file:?}"), format!("{built_in:?}"), "{text}");
        // OpenTelemetry's buckets, and the default latency threshold's (300ms).
        let mut buckets = crate::telemetry::metrics::OTEL_DURATION_BUCKETS.to_vec();
        buckets.insert(7, 0.3);
        assert_eq!(built_in.duration_buckets, buckets);
        assert_eq!(built_in.tracing.endpoint, OTLP_HTTP_ENDPOINT);
    }

    /// The file has no key the table lacks: each section's unknown-key message lists its keys.
    #[test]
    fn every_key_of_the_file_is_in_the_table() {
        for (prefix, probe) in [
            ("", "zzz: 1\n"),
            ("slo.", "slo: {zzz: 1}\n"),
            ("slo.latency.", "slo: {latency: {zzz: 1}}\n"),
            ("tracing.", "tracing: {zzz: 1}\n"),
        ] {
            let err = parse_file(probe, "k.yaml").expect_err("unknown key").to_string();
            let list = err.split("expected one of ").nth(1).unwrap_or_else(|| panic!("{err}"));
            for name in list.trim().split(", ") {
                let name = format!("{prefix}{name}");
                if ["slo", "slo.latency", "tracing", "readiness"].contains(&name.as_str()) {
                    continue; // sections
                }
                assert!(ALL.iter().any(|k| k.name == name), "file key {name} is not in config::keys::ALL");
            }
        }
    }

    /// The flags are the table's: each key once, with its flag, variable and help.
    #[test]
    fn the_flags_are_the_tables() {
        let cmd = Overrides::augment_args(Command::new("sidecar"));
        let args: Vec<_> = cmd.get_arguments().filter(|a| a.get_long() != Some("config")).collect();
        assert_eq!(args.len(), ALL.len());
        for (arg, key) in args.iter().zip(ALL) {
            assert_eq!(arg.get_long(), Some(key.flag), "{}", key.name);
            assert_eq!(arg.get_env().and_then(|e| e.to_str()), Some(key.env), "{}", key.name);
            assert_eq!(arg.get_help().map(ToString::to_string), Some(key.help()), "{}", key.name);
        }
    }

    #[test]
    fn help_says_the_default_and_the_otel_variables() {
        assert_eq!(
            TRACING_SAMPLER_RATIO.help(),
            "Trace sampling ratio for new traces (also OTEL_TRACES_SAMPLER and OTEL_TRACES_SAMPLER_ARG) [default: 1.0]"
        );
        assert_eq!(SERVICE.help(), "Service name (also OTEL_SERVICE_NAME) [required]");
        assert_eq!(ROUTES.help(), ROUTES.doc);
        let Default::Computed(endpoint) = TRACING_ENDPOINT.default else { panic!("computed") };
        assert!(endpoint.contains(OTLP_HTTP_ENDPOINT) && endpoint.contains(OTLP_GRPC_ENDPOINT), "{endpoint}");
        assert!(LOG_LEVELS.iter().all(|l| LOG_LEVEL.doc.contains(l)));
    }

    #[test]
    fn names_flags_and_variables_follow_one_pattern() {
        for key in ALL {
            if key.name != "version" {
                assert_eq!(key.flag, key.name.replace(['.', '_'], "-"), "{}", key.name);
            }
            assert_eq!(key.env, format!("REDLINE_{}", key.name.replace('.', "_").to_uppercase()), "{}", key.name);
        }
    }
}
