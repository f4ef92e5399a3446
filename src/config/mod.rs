//! The service description: one YAML file, overridden by `REDLINE_*` (and `OTEL_*`) env and flags.
//! Owns parsing, layering (flags > env > file > defaults) and validation with errors naming the key.

mod values;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

pub use values::{Dur, HealthCheck, HttpUrl, Percent, Ratio, Upstream, positive_duration};

use crate::proxy::upstream::UpstreamProtocol;
use crate::telemetry::metrics::OTEL_DURATION_BUCKETS;
use crate::telemetry::otlp::OtlpProtocol;
use crate::telemetry::propagation::Propagator;
use crate::tls::{ClientTlsFiles, Identity};

/// The config file as written; every key optional so layering can tell "unset" from "set".
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    pub service: Option<String>,
    pub version: Option<String>,
    pub namespace: Option<String>,
    pub pod: Option<String>,
    pub listen: Option<SocketAddr>,
    pub upstream: Option<Upstream>,
    pub upstream_protocol: Option<UpstreamProtocol>,
    pub upstream_health_check: Option<HealthCheck>,
    pub admin: Option<SocketAddr>,
    pub routes: Option<Vec<String>>,
    pub max_routes: Option<usize>,
    pub duration_buckets: Option<Vec<f64>>,
    pub upstream_timeout: Option<Dur>,
    pub drain_timeout: Option<Dur>,
    pub header_read_timeout: Option<Dur>,
    pub idle_timeout: Option<Dur>,
    pub stream_idle_timeout: Option<Dur>,
    pub max_connections: Option<usize>,
    pub max_header_bytes: Option<usize>,
    pub workers: Option<usize>,
    pub sensitive_headers: Option<Vec<String>>,
    pub app_pid: Option<i32>,
    pub app_process_name: Option<String>,
    pub cgroup_path: Option<PathBuf>,
    pub log_level: Option<String>,
    pub slo: Option<SloFile>,
    pub rules: Option<Vec<String>>,
    pub sample_interval: Option<Dur>,
    pub retention: Option<Dur>,
    pub alertmanagers: Option<Vec<HttpUrl>>,
    pub tracing: Option<TracingFile>,
    pub readiness: Option<ReadinessConfig>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SloFile {
    pub availability: Option<Percent>,
    pub latency: Option<LatencySloFile>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LatencySloFile {
    pub threshold: Option<Dur>,
    pub target: Option<Percent>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TracingFile {
    pub endpoint: Option<HttpUrl>,
    pub protocol: Option<OtlpProtocol>,
    pub sampler_ratio: Option<Ratio>,
    pub propagators: Option<Vec<Propagator>>,
    pub queue_size: Option<usize>,
    pub export_timeout: Option<Dur>,
}

/// The `readiness` section, used by `redline readiness-check`.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReadinessConfig {
    pub coverage: Option<CoverageConfig>,
    pub metrics_url: Option<HttpUrl>,
    pub logs: Option<LogsSampleConfig>,
    pub jaeger_url: Option<HttpUrl>,
    pub prometheus_url: Option<HttpUrl>,
    pub dashboards: Option<PathBuf>,
    /// Grafana whose dashboards the `dashboard` check reads (HTTP API), besides or instead of files.
    pub grafana_url: Option<HttpUrl>,
    /// File holding a Grafana service-account token, sent as a Bearer token.
    pub grafana_token_file: Option<PathBuf>,
    pub receiver_url: Option<HttpUrl>,
    pub blocking: Option<Vec<String>>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CoverageConfig {
    pub report: Option<PathBuf>,
    pub min: Option<f64>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogsSampleConfig {
    pub file: Option<PathBuf>,
    pub sample: Option<usize>,
}

/// The `readiness` keys as `readiness-check` flags and `REDLINE_READINESS_<KEY>` variables;
/// clap applies "flag wins over env", [`ReadinessOverrides::apply`] "env wins over the file".
#[derive(Debug, Default, clap::Args)]
pub struct ReadinessOverrides {
    /// Coverage report (LCOV, Cobertura, JaCoCo, Go coverprofile or llvm-cov JSON); readiness.coverage.report.
    #[arg(long, env = "REDLINE_READINESS_COVERAGE_REPORT")]
    pub coverage_report: Option<PathBuf>,
    /// Minimum line coverage in percent; readiness.coverage.min.
    #[arg(long, env = "REDLINE_READINESS_COVERAGE_MIN", value_parser = parse_percentage)]
    pub coverage_min: Option<f64>,
    /// The service's metrics endpoint; readiness.metrics_url.
    #[arg(long, env = "REDLINE_READINESS_METRICS_URL")]
    pub metrics_url: Option<HttpUrl>,
    /// JSON log file to sample; readiness.logs.file.
    #[arg(long, env = "REDLINE_READINESS_LOGS_FILE")]
    pub logs_file: Option<PathBuf>,
    /// How many of its last lines to check; readiness.logs.sample.
    #[arg(long, env = "REDLINE_READINESS_LOGS_SAMPLE", value_parser = parse_line_count)]
    pub logs_sample: Option<usize>,
    /// Jaeger query base URL; readiness.jaeger_url.
    #[arg(long, env = "REDLINE_READINESS_JAEGER_URL")]
    pub jaeger_url: Option<HttpUrl>,
    /// Prometheus base URL; readiness.prometheus_url.
    #[arg(long, env = "REDLINE_READINESS_PROMETHEUS_URL")]
    pub prometheus_url: Option<HttpUrl>,
    /// Grafana dashboard JSON file or directory; readiness.dashboards.
    #[arg(long, env = "REDLINE_READINESS_DASHBOARDS")]
    pub dashboards: Option<PathBuf>,
    /// Grafana base URL whose dashboards are read over its HTTP API; readiness.grafana_url.
    #[arg(long, env = "REDLINE_READINESS_GRAFANA_URL")]
    pub grafana_url: Option<HttpUrl>,
    /// File with a Grafana service-account token; readiness.grafana_token_file.
    #[arg(long, env = "REDLINE_READINESS_GRAFANA_TOKEN_FILE")]
    pub grafana_token_file: Option<PathBuf>,
    /// redline receiver base URL; readiness.receiver_url.
    #[arg(long, env = "REDLINE_READINESS_RECEIVER_URL")]
    pub receiver_url: Option<HttpUrl>,
    /// Checks whose failure blocks promotion (comma-separated ids); readiness.blocking.
    #[arg(long, env = "REDLINE_READINESS_BLOCKING", value_delimiter = ',')]
    pub blocking: Option<Vec<String>>,
}

fn parse_percentage(s: &str) -> Result<f64, String> {
    match s.trim().parse::<f64>() {
        Ok(v) if (0.0..=100.0).contains(&v) => Ok(v),
        _ => Err(format!("expected a percentage from 0 to 100, got {s:?}")),
    }
}

fn parse_line_count(s: &str) -> Result<usize, String> {
    match s.trim().parse::<usize>() {
        Ok(n) if n >= 1 => Ok(n),
        _ => Err(format!("expected a number of lines, at least 1, got {s:?}")),
    }
}

impl ReadinessOverrides {
    /// Layers the flags and variables that were given over the file's `readiness` section.
    pub fn apply(&self, r: &mut ReadinessConfig) {
        fn set<T: Clone>(slot: &mut Option<T>, v: &Option<T>) {
            if v.is_some() {
                slot.clone_from(v);
            }
        }
        if self.coverage_report.is_some() || self.coverage_min.is_some() {
            let c = r.coverage.get_or_insert_with(CoverageConfig::default);
            set(&mut c.report, &self.coverage_report);
            set(&mut c.min, &self.coverage_min);
        }
        if self.logs_file.is_some() || self.logs_sample.is_some() {
            let l = r.logs.get_or_insert_with(LogsSampleConfig::default);
            set(&mut l.file, &self.logs_file);
            set(&mut l.sample, &self.logs_sample);
        }
        set(&mut r.metrics_url, &self.metrics_url);
        set(&mut r.jaeger_url, &self.jaeger_url);
        set(&mut r.prometheus_url, &self.prometheus_url);
        set(&mut r.dashboards, &self.dashboards);
        set(&mut r.grafana_url, &self.grafana_url);
        set(&mut r.grafana_token_file, &self.grafana_token_file);
        set(&mut r.receiver_url, &self.receiver_url);
        set(&mut r.blocking, &self.blocking);
    }
}

/// Every key as a flag and as `REDLINE_<KEY>`; clap applies "flag wins over env".
#[derive(Debug, Default, clap::Args)]
pub struct Overrides {
    /// Config file (YAML).
    #[arg(long, env = "REDLINE_CONFIG")]
    pub config: Option<PathBuf>,
    /// Service name (also OTEL_SERVICE_NAME).
    #[arg(long, env = "REDLINE_SERVICE")]
    pub service: Option<String>,
    /// Service version, e.g. 2.3.1 (config key `version`).
    #[arg(long, env = "REDLINE_VERSION")]
    pub service_version: Option<String>,
    /// Kubernetes namespace of the service.
    #[arg(long, env = "REDLINE_NAMESPACE")]
    pub namespace: Option<String>,
    /// Pod name, added to alerts and traces when known.
    #[arg(long, env = "REDLINE_POD")]
    pub pod: Option<String>,
    /// Proxy listen address [default: 0.0.0.0:15001].
    #[arg(long, env = "REDLINE_LISTEN")]
    pub listen: Option<SocketAddr>,
    /// Upstream the proxy forwards to [default: http://127.0.0.1:8080].
    #[arg(long, env = "REDLINE_UPSTREAM")]
    pub upstream: Option<Upstream>,
    /// HTTP version to the upstream: auto (the client's), http1, or http2 (h2c) [default: auto].
    #[arg(long, env = "REDLINE_UPSTREAM_PROTOCOL")]
    pub upstream_protocol: Option<UpstreamProtocol>,
    /// How /readyz checks the upstream: tcp (a connection is accepted), grpc (the standard
    /// grpc.health.v1.Health/Check answers SERVING), or grpc:SERVICE for one service [default: tcp].
    #[arg(long, env = "REDLINE_UPSTREAM_HEALTH_CHECK")]
    pub upstream_health_check: Option<HealthCheck>,
    /// Admin listen address for /metrics, /healthz, /readyz [default: 0.0.0.0:15090].
    #[arg(long, env = "REDLINE_ADMIN")]
    pub admin: Option<SocketAddr>,
    /// Route templates, comma-separated, e.g. "/users/{id},/orders/{id}/items".
    #[arg(long, env = "REDLINE_ROUTES", value_delimiter = ',')]
    pub routes: Option<Vec<String>>,
    /// Most distinct http_route values; further routes count as "__other__" [default: 500].
    #[arg(long, env = "REDLINE_MAX_ROUTES")]
    pub max_routes: Option<usize>,
    /// Duration histogram buckets in seconds, comma-separated.
    #[arg(long, env = "REDLINE_DURATION_BUCKETS", value_delimiter = ',')]
    pub duration_buckets: Option<Vec<f64>>,
    /// Time from the end of the request body to the upstream's response headers before
    /// answering 504; at least 10ms, there is no "off" [default: 30s].
    #[arg(long, env = "REDLINE_UPSTREAM_TIMEOUT")]
    pub upstream_timeout: Option<Dur>,
    /// Time to let in-flight requests finish on SIGTERM/SIGINT; 0s cuts them at once [default: 20s].
    #[arg(long, env = "REDLINE_DRAIN_TIMEOUT")]
    pub drain_timeout: Option<Dur>,
    /// Time a client has to send a complete request head, counted from the connection's accept
    /// or, between requests, from its first byte [default: 10s].
    #[arg(long, env = "REDLINE_HEADER_READ_TIMEOUT")]
    pub header_read_timeout: Option<Dur>,
    /// Longest a client connection may stay open with no request in progress (HTTP/1.1
    /// keep-alive, HTTP/2 without streams) [default: 75s].
    #[arg(long, env = "REDLINE_IDLE_TIMEOUT")]
    pub idle_timeout: Option<Dur>,
    /// Longest pause in a request or response body, in either direction, before the request is
    /// cut [default: 5m].
    #[arg(long, env = "REDLINE_STREAM_IDLE_TIMEOUT")]
    pub stream_idle_timeout: Option<Dur>,
    /// Most concurrent client connections [default: 10000].
    #[arg(long, env = "REDLINE_MAX_CONNECTIONS")]
    pub max_connections: Option<usize>,
    /// Largest request head (request line and headers) in bytes [default: 65536].
    #[arg(long, env = "REDLINE_MAX_HEADER_BYTES")]
    pub max_header_bytes: Option<usize>,
    /// Proxy worker threads, each with its own listener and upstream pool [default: the CPUs the
    /// sidecar may use: affinity and cgroup CPU quota].
    #[arg(long, env = "REDLINE_WORKERS")]
    pub workers: Option<usize>,
    /// Extra header names never to log or trace, comma-separated.
    #[arg(long, env = "REDLINE_SENSITIVE_HEADERS", value_delimiter = ',')]
    pub sensitive_headers: Option<Vec<String>>,
    /// PID of the app process for redline_app_* metrics.
    #[arg(long, env = "REDLINE_APP_PID")]
    pub app_pid: Option<i32>,
    /// Process name of the app (with a shared process namespace).
    #[arg(long, env = "REDLINE_APP_PROCESS_NAME")]
    pub app_process_name: Option<String>,
    /// cgroup v2 directory to read USE metrics from [default: this process's cgroup].
    #[arg(long, env = "REDLINE_CGROUP_PATH")]
    pub cgroup_path: Option<PathBuf>,
    /// Log level of redline's own (non-access) log lines [default: info].
    #[arg(long, env = "REDLINE_LOG_LEVEL")]
    pub log_level: Option<String>,
    /// SLO availability target in percent, e.g. 99.9.
    #[arg(long, env = "REDLINE_SLO_AVAILABILITY")]
    pub slo_availability: Option<Percent>,
    /// SLO latency threshold, e.g. 300ms.
    #[arg(long, env = "REDLINE_SLO_LATENCY_THRESHOLD")]
    pub slo_latency_threshold: Option<Dur>,
    /// Percent of requests that must be faster than the threshold, e.g. 99.
    #[arg(long, env = "REDLINE_SLO_LATENCY_TARGET")]
    pub slo_latency_target: Option<Percent>,
    /// Rule file globs, comma-separated.
    #[arg(long, env = "REDLINE_RULES", value_delimiter = ',')]
    pub rules: Option<Vec<String>>,
    /// How often the sidecar samples its own metrics for rule evaluation [default: 5s].
    #[arg(long, env = "REDLINE_SAMPLE_INTERVAL")]
    pub sample_interval: Option<Dur>,
    /// How much sampled history is kept for rules [default: 1h].
    #[arg(long, env = "REDLINE_RETENTION")]
    pub retention: Option<Dur>,
    /// Alertmanager URLs, comma-separated.
    #[arg(long, env = "REDLINE_ALERTMANAGERS", value_delimiter = ',')]
    pub alertmanagers: Option<Vec<HttpUrl>>,
    /// OTLP endpoint (also OTEL_EXPORTER_OTLP_ENDPOINT) [default: http://localhost:4318].
    #[arg(long, env = "REDLINE_TRACING_ENDPOINT")]
    pub tracing_endpoint: Option<HttpUrl>,
    /// OTLP protocol [default: http].
    #[arg(long, env = "REDLINE_TRACING_PROTOCOL")]
    pub tracing_protocol: Option<OtlpProtocol>,
    /// Trace sampling ratio for new traces (also OTEL_TRACES_SAMPLER_ARG) [default: 1.0].
    #[arg(long, env = "REDLINE_TRACING_SAMPLER_RATIO")]
    pub tracing_sampler_ratio: Option<Ratio>,
    /// Extra formats to inject upstream besides W3C traceparent, comma-separated.
    #[arg(long, env = "REDLINE_TRACING_PROPAGATORS", value_delimiter = ',')]
    pub tracing_propagators: Option<Vec<Propagator>>,
    /// Spans buffered for export before further spans are dropped [default: 2048].
    #[arg(long, env = "REDLINE_TRACING_QUEUE_SIZE")]
    pub tracing_queue_size: Option<usize>,
    /// Time one OTLP export may take [default: 10s].
    #[arg(long, env = "REDLINE_TRACING_EXPORT_TIMEOUT")]
    pub tracing_export_timeout: Option<Dur>,
}

/// The resolved configuration the sidecar runs with.
#[derive(Clone, Debug)]
pub struct Config {
    pub service: String,
    pub version: String,
    pub namespace: String,
    pub pod: Option<String>,
    pub listen: SocketAddr,
    pub upstream: Upstream,
    pub upstream_protocol: UpstreamProtocol,
    pub upstream_health_check: HealthCheck,
    pub admin: SocketAddr,
    pub routes: Vec<String>,
    pub max_routes: usize,
    pub duration_buckets: Vec<f64>,
    pub upstream_timeout: Duration,
    pub drain_timeout: Duration,
    pub header_read_timeout: Duration,
    pub idle_timeout: Duration,
    pub stream_idle_timeout: Duration,
    pub max_connections: usize,
    pub max_header_bytes: usize,
    pub workers: usize,
    /// Lower-case header names never logged or traced (always includes the built-in ones).
    pub sensitive_headers: Vec<String>,
    pub app_pid: Option<i32>,
    pub app_process_name: Option<String>,
    pub cgroup_path: Option<PathBuf>,
    pub log_level: String,
    pub slo: Slo,
    pub rules: Vec<String>,
    pub sample_interval: Duration,
    pub retention: Duration,
    pub alertmanagers: Vec<HttpUrl>,
    pub tracing: TracingConfig,
    pub readiness: ReadinessConfig,
}

#[derive(Clone, Debug)]
pub struct Slo {
    pub availability: f64,
    pub latency_threshold: Duration,
    pub latency_target: f64,
}

#[derive(Clone, Debug)]
pub struct TracingConfig {
    pub endpoint: String,
    pub protocol: OtlpProtocol,
    pub sampler_ratio: f64,
    pub propagators: Vec<Propagator>,
    /// Spans buffered for export; past it spans are dropped and counted.
    pub queue_size: usize,
    pub export_timeout: Duration,
    /// `OTEL_RESOURCE_ATTRIBUTES`, as given; merged under redline's own resource keys.
    pub resource_attributes: Option<String>,
    /// Extra CA and client identity for the collector (`OTEL_EXPORTER_OTLP_CERTIFICATE`,
    /// `OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE`, `OTEL_EXPORTER_OTLP_CLIENT_KEY`).
    pub tls: ClientTlsFiles,
}

/// Headers that never reach logs or traces, whatever the config says.
pub const ALWAYS_SENSITIVE: [&str; 4] = ["authorization", "cookie", "set-cookie", "proxy-authorization"];

/// A config that cannot be used, with the key (and file position where known) at fault.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ConfigError(pub String);

/// Reads standard OpenTelemetry variables that map onto config keys.
#[derive(Debug, Default)]
pub struct OtelEnv {
    pub service_name: Option<String>,
    pub endpoint: Option<String>,
    pub sampler: Option<String>,
    pub sampler_arg: Option<String>,
    pub resource_attributes: Option<String>,
    /// `OTEL_EXPORTER_OTLP_CERTIFICATE` (or its `_TRACES_` form): a CA file for the collector.
    pub certificate: Option<String>,
    pub client_certificate: Option<String>,
    pub client_key: Option<String>,
}

impl OtelEnv {
    pub fn from_process_env() -> Self {
        let get = |k: &str| std::env::var(k).ok().filter(|v| !v.trim().is_empty());
        OtelEnv {
            service_name: get("OTEL_SERVICE_NAME"),
            endpoint: get("OTEL_EXPORTER_OTLP_ENDPOINT"),
            sampler: get("OTEL_TRACES_SAMPLER"),
            sampler_arg: get("OTEL_TRACES_SAMPLER_ARG"),
            resource_attributes: get("OTEL_RESOURCE_ATTRIBUTES"),
            // The signal-specific form wins over the general one, as the OTel spec says.
            certificate: get("OTEL_EXPORTER_OTLP_TRACES_CERTIFICATE").or_else(|| get("OTEL_EXPORTER_OTLP_CERTIFICATE")),
            client_certificate: get("OTEL_EXPORTER_OTLP_TRACES_CLIENT_CERTIFICATE")
                .or_else(|| get("OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE")),
            client_key: get("OTEL_EXPORTER_OTLP_TRACES_CLIENT_KEY").or_else(|| get("OTEL_EXPORTER_OTLP_CLIENT_KEY")),
        }
    }
}

/// Parses a config file's text; `origin` names the file in errors.
pub fn parse_file(text: &str, origin: &str) -> Result<FileConfig, ConfigError> {
    if text.trim().is_empty() {
        return Ok(FileConfig::default());
    }
    crate::yaml::parse(text, origin).map_err(|e| ConfigError(e.to_string()))
}

pub fn read_file(path: &Path) -> Result<FileConfig, ConfigError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| ConfigError(format!("config file {}: cannot read: {e}", path.display())))?;
    parse_file(&text, &path.display().to_string())
}

/// Loads the config: the file named by `--config`/`REDLINE_CONFIG` if any, then overrides.
pub fn load(overrides: &Overrides, otel: &OtelEnv) -> Result<Config, ConfigError> {
    let file = match &overrides.config {
        Some(path) => read_file(path)?,
        None => FileConfig::default(),
    };
    resolve(file, overrides, otel)
}

/// Layers flags/env over the file over defaults, then checks keys against each other.
pub fn resolve(file: FileConfig, o: &Overrides, otel: &OtelEnv) -> Result<Config, ConfigError> {
    let slo = file.slo.unwrap_or_default();
    let latency = slo.latency.unwrap_or_default();
    let tracing = file.tracing.unwrap_or_default();

    let service = o.service.clone().or(otel.service_name.clone()).or(file.service).ok_or_else(|| {
        ConfigError(
            "service: required; set `service:` in the config file, --service, REDLINE_SERVICE or OTEL_SERVICE_NAME"
                .into(),
        )
    })?;
    check_label_value("service", &service)?;

    let otel_ratio = otel_sampler_ratio(otel)?;
    let protocol = o.tracing_protocol.or(tracing.protocol).unwrap_or(OtlpProtocol::Http);
    let endpoint = match (&o.tracing_endpoint, &otel.endpoint, tracing.endpoint) {
        (Some(url), _, _) => url.0.clone(),
        (None, Some(env), _) => {
            env.parse::<HttpUrl>().map_err(|e| ConfigError(format!("OTEL_EXPORTER_OTLP_ENDPOINT: {e}")))?.0
        }
        (None, None, Some(url)) => url.0,
        (None, None, None) => match protocol {
            OtlpProtocol::Http => "http://localhost:4318".to_string(),
            OtlpProtocol::Grpc => "http://localhost:4317".to_string(),
        },
    };

    let mut sensitive: Vec<String> = ALWAYS_SENSITIVE.iter().map(|s| s.to_string()).collect();
    for h in o.sensitive_headers.clone().or(file.sensitive_headers).unwrap_or_default() {
        let h = h.trim().to_ascii_lowercase();
        if http::HeaderName::from_bytes(h.as_bytes()).is_err() {
            return Err(ConfigError(format!("sensitive_headers: {h:?} is not a valid header name")));
        }
        if !sensitive.contains(&h) {
            sensitive.push(h);
        }
    }

    let config = Config {
        service,
        version: o.service_version.clone().or(file.version).unwrap_or_else(|| "unknown".into()),
        namespace: o.namespace.clone().or(file.namespace).unwrap_or_else(|| "default".into()),
        pod: o.pod.clone().or(file.pod).or_else(|| std::env::var("HOSTNAME").ok().filter(|h| !h.is_empty())),
        listen: o.listen.or(file.listen).unwrap_or(SocketAddr::from(([0, 0, 0, 0], 15001))),
        upstream: match o.upstream.clone().or(file.upstream) {
            Some(u) => u,
            None => "http://127.0.0.1:8080".parse().map_err(ConfigError)?,
        },
        upstream_protocol: o.upstream_protocol.or(file.upstream_protocol).unwrap_or(UpstreamProtocol::Auto),
        upstream_health_check: o
            .upstream_health_check
            .clone()
            .or(file.upstream_health_check)
            .unwrap_or(HealthCheck::Tcp),
        admin: o.admin.or(file.admin).unwrap_or(SocketAddr::from(([0, 0, 0, 0], 15090))),
        routes: o.routes.clone().or(file.routes).unwrap_or_default(),
        max_routes: o.max_routes.or(file.max_routes).unwrap_or(500),
        duration_buckets: o
            .duration_buckets
            .clone()
            .or(file.duration_buckets)
            .unwrap_or_else(|| OTEL_DURATION_BUCKETS.to_vec()),
        upstream_timeout: o.upstream_timeout.or(file.upstream_timeout).map_or(Duration::from_secs(30), |d| d.0),
        drain_timeout: o.drain_timeout.or(file.drain_timeout).map_or(Duration::from_secs(20), |d| d.0),
        header_read_timeout: o
            .header_read_timeout
            .or(file.header_read_timeout)
            .map_or(Duration::from_secs(10), |d| d.0),
        idle_timeout: o.idle_timeout.or(file.idle_timeout).map_or(Duration::from_secs(75), |d| d.0),
        stream_idle_timeout: o
            .stream_idle_timeout
            .or(file.stream_idle_timeout)
            .map_or(Duration::from_secs(300), |d| d.0),
        max_connections: o.max_connections.or(file.max_connections).unwrap_or(10_000),
        max_header_bytes: o.max_header_bytes.or(file.max_header_bytes).unwrap_or(64 * 1024),
        workers: o
            .workers
            .or(file.workers)
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get())),
        sensitive_headers: sensitive,
        app_pid: o.app_pid.or(file.app_pid),
        app_process_name: o.app_process_name.clone().or(file.app_process_name),
        cgroup_path: o.cgroup_path.clone().or(file.cgroup_path),
        log_level: o.log_level.clone().or(file.log_level).unwrap_or_else(|| "info".into()),
        slo: Slo {
            availability: o.slo_availability.or(slo.availability).map_or(99.9, |p| p.0),
            latency_threshold: o
                .slo_latency_threshold
                .or(latency.threshold)
                .map_or(Duration::from_millis(300), |d| d.0),
            latency_target: o.slo_latency_target.or(latency.target).map_or(99.0, |p| p.0),
        },
        rules: o.rules.clone().or(file.rules).unwrap_or_default(),
        sample_interval: o.sample_interval.or(file.sample_interval).map_or(Duration::from_secs(5), |d| d.0),
        retention: o.retention.or(file.retention).map_or(Duration::from_secs(3600), |d| d.0),
        alertmanagers: o.alertmanagers.clone().or(file.alertmanagers).unwrap_or_default(),
        tracing: TracingConfig {
            endpoint,
            protocol,
            sampler_ratio: o
                .tracing_sampler_ratio
                .map(|r| r.0)
                .or(otel_ratio)
                .or(tracing.sampler_ratio.map(|r| r.0))
                .unwrap_or(1.0),
            propagators: o
                .tracing_propagators
                .clone()
                .or(tracing.propagators)
                .unwrap_or_else(|| vec![Propagator::Tracecontext]),
            queue_size: o.tracing_queue_size.or(tracing.queue_size).unwrap_or(2048),
            export_timeout: o
                .tracing_export_timeout
                .or(tracing.export_timeout)
                .map_or(Duration::from_secs(10), |d| d.0),
            resource_attributes: otel.resource_attributes.clone(),
            tls: exporter_tls(otel)?,
        },
        readiness: file.readiness.unwrap_or_default(),
    };
    validate(&config)?;
    Ok(config)
}

/// The exporter's TLS files, checked now so that a bad one refuses the start rather than
/// failing every export.
fn exporter_tls(otel: &OtelEnv) -> Result<ClientTlsFiles, ConfigError> {
    let identity = match (&otel.client_certificate, &otel.client_key) {
        (None, None) => None,
        (Some(cert), Some(key)) => Some(Identity { cert_file: cert.into(), key_file: key.into() }),
        (Some(_), None) => {
            return Err(ConfigError(
                "OTEL_EXPORTER_OTLP_CLIENT_KEY: required with OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE".into(),
            ));
        }
        (None, Some(_)) => {
            return Err(ConfigError(
                "OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE: required with OTEL_EXPORTER_OTLP_CLIENT_KEY".into(),
            ));
        }
    };
    let files = ClientTlsFiles { ca_file: otel.certificate.as_ref().map(PathBuf::from), identity };
    if files != ClientTlsFiles::default() {
        crate::tls::client_config(&files).map_err(|e| {
            ConfigError(format!(
                "OTLP exporter TLS (OTEL_EXPORTER_OTLP_CERTIFICATE, OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE, \
                 OTEL_EXPORTER_OTLP_CLIENT_KEY): {e}"
            ))
        })?;
    }
    Ok(files)
}

fn otel_sampler_ratio(otel: &OtelEnv) -> Result<Option<f64>, ConfigError> {
    let ratio_arg = || -> Result<f64, ConfigError> {
        match &otel.sampler_arg {
            Some(arg) => {
                arg.parse::<Ratio>().map(|r| r.0).map_err(|e| ConfigError(format!("OTEL_TRACES_SAMPLER_ARG: {e}")))
            }
            None => Ok(1.0),
        }
    };
    match otel.sampler.as_deref() {
        None => match &otel.sampler_arg {
            Some(_) => ratio_arg().map(Some),
            None => Ok(None),
        },
        Some("always_on" | "parentbased_always_on") => Ok(Some(1.0)),
        Some("always_off" | "parentbased_always_off") => Ok(Some(0.0)),
        Some("traceidratio" | "parentbased_traceidratio") => ratio_arg().map(Some),
        Some(other) => Err(ConfigError(format!(
            "OTEL_TRACES_SAMPLER: expected one of always_on, always_off, traceidratio, parentbased_always_on, \
             parentbased_always_off, parentbased_traceidratio, got {other:?}"
        ))),
    }
}

fn check_label_value(key: &str, v: &str) -> Result<(), ConfigError> {
    if v.trim().is_empty() {
        return Err(ConfigError(format!("{key}: expected a non-empty name")));
    }
    Ok(())
}

/// The shortest timeout a timeout key accepts.
const MIN_TIMEOUT: Duration = Duration::from_millis(10);

fn validate(c: &Config) -> Result<(), ConfigError> {
    for (i, r) in c.routes.iter().enumerate() {
        crate::proxy::route::validate_template(r).map_err(|e| ConfigError(format!("routes[{i}]: {e}")))?;
    }
    if c.max_routes == 0 {
        return Err(ConfigError("max_routes: expected a positive number of routes".into()));
    }
    if c.routes.len() > c.max_routes {
        return Err(ConfigError(format!(
            "routes: {} templates configured but max_routes is {}; raise max_routes",
            c.routes.len(),
            c.max_routes
        )));
    }
    let b = &c.duration_buckets;
    if b.is_empty() || b.iter().any(|v| !v.is_finite() || *v <= 0.0) || b.windows(2).any(|w| w[0] >= w[1]) {
        return Err(ConfigError(format!(
            "duration_buckets: expected strictly increasing positive seconds such as [0.005, 0.01, 0.1], got {b:?}"
        )));
    }
    if c.workers == 0 || c.workers > 1024 {
        return Err(ConfigError(format!("workers: expected 1 to 1024 worker threads, got {}", c.workers)));
    }
    if c.tracing.queue_size == 0 {
        return Err(ConfigError("tracing.queue_size: expected at least 1".into()));
    }
    // None of these has an "off": 0 would time every request (or export) out at once.
    // drain_timeout may be 0 (cut in-flight requests at once on SIGTERM).
    for (key, value) in [
        ("upstream_timeout", c.upstream_timeout),
        ("header_read_timeout", c.header_read_timeout),
        ("idle_timeout", c.idle_timeout),
        ("stream_idle_timeout", c.stream_idle_timeout),
        ("tracing.export_timeout", c.tracing.export_timeout),
    ] {
        if value < MIN_TIMEOUT {
            return Err(ConfigError(format!(
                "{key}: expected at least {}, got {}; 0 does not turn the timeout off",
                humantime::format_duration(MIN_TIMEOUT),
                humantime::format_duration(value)
            )));
        }
    }
    if c.slo.latency_threshold.is_zero() {
        return Err(ConfigError("slo.latency.threshold: expected a duration above 0, such as 300ms".into()));
    }
    if c.max_connections == 0 {
        return Err(ConfigError("max_connections: expected at least 1".into()));
    }
    if c.max_header_bytes < 8192 {
        return Err(ConfigError(format!("max_header_bytes: expected at least 8192, got {}", c.max_header_bytes)));
    }
    if c.app_pid.is_some() && c.app_process_name.is_some() {
        return Err(ConfigError("app_pid and app_process_name: set at most one of them".into()));
    }
    if c.listen == c.admin {
        return Err(ConfigError(format!("listen and admin: both are {}; give them different ports", c.listen)));
    }
    if !matches!(c.log_level.as_str(), "error" | "warn" | "info" | "debug" | "trace") {
        return Err(ConfigError(format!(
            "log_level: expected one of error, warn, info, debug, trace, got {:?}",
            c.log_level
        )));
    }
    if c.sample_interval.is_zero() || c.retention < c.sample_interval {
        return Err(ConfigError("sample_interval and retention: expected 0 < sample_interval <= retention".into()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const DESIGN_EXAMPLE: &str = r#"
service: checkout
version: 2.3.1
namespace: shop
listen: 0.0.0.0:15001
upstream: http://127.0.0.1:8080
admin: 0.0.0.0:15090
routes: ["/users/{id}", "/orders/{id}/items"]
max_routes: 500
slo: {availability: 99.9, latency: {threshold: 300ms, target: 99}}
rules: ["rules/*.yml"]
sample_interval: 5s
retention: 1h
alertmanagers: ["http://alertmanager:9093"]
tracing: {endpoint: "http://jaeger:4318", sampler_ratio: 1.0}
readiness:
  coverage: {report: coverage/lcov.info, min: 80}
  metrics_url: http://127.0.0.1:15090/metrics
  logs: {file: /var/log/app.jsonl, sample: 200}
  jaeger_url: http://jaeger:16686
  prometheus_url: http://prometheus:9090
  dashboards: dashboards/
  receiver_url: http://redline-receiver:9095
  blocking: [tests.coverage, metrics.red, alerts.symptoms, alerts.firing, canary]
"#;

    fn resolve_text(text: &str, o: &Overrides) -> Result<Config, ConfigError> {
        resolve(parse_file(text, "redline.yaml")?, o, &OtelEnv::default())
    }

    #[test]
    fn the_design_example_loads() {
        let c = resolve_text(DESIGN_EXAMPLE, &Overrides::default()).expect("example config is valid");
        assert_eq!(c.service, "checkout");
        assert_eq!(c.upstream.authority, "127.0.0.1:8080");
        assert_eq!(c.slo.latency_threshold, Duration::from_millis(300));
        assert_eq!(c.tracing.endpoint, "http://jaeger:4318");
        assert_eq!(c.routes.len(), 2);
        assert_eq!(c.readiness.coverage.as_ref().and_then(|c| c.min), Some(80.0));
    }

    #[test]
    fn flags_override_the_file() {
        let o = Overrides { listen: Some("127.0.0.1:9999".parse().expect("addr")), ..Default::default() };
        let c = resolve_text(DESIGN_EXAMPLE, &o).expect("valid");
        assert_eq!(c.listen.port(), 9999);
    }

    #[test]
    fn otel_service_name_fills_a_missing_service_and_flags_beat_it() {
        let otel = OtelEnv { service_name: Some("from-otel".into()), ..Default::default() };
        let c = resolve(FileConfig::default(), &Overrides::default(), &otel).expect("valid");
        assert_eq!(c.service, "from-otel");
        let o = Overrides { service: Some("from-flag".into()), ..Default::default() };
        assert_eq!(resolve(FileConfig::default(), &o, &otel).expect("valid").service, "from-flag");
    }

    #[test]
    fn otel_sampler_variables() {
        let otel = OtelEnv {
            sampler: Some("parentbased_traceidratio".into()),
            sampler_arg: Some("0.25".into()),
            ..Default::default()
        };
        let o = Overrides { service: Some("s".into()), ..Default::default() };
        assert_eq!(resolve(FileConfig::default(), &o, &otel).expect("valid").tracing.sampler_ratio, 0.25);
        let bad = OtelEnv { sampler: Some("sometimes".into()), ..Default::default() };
        let err = resolve(FileConfig::default(), &o, &bad).expect_err("unknown sampler");
        assert!(err.0.contains("OTEL_TRACES_SAMPLER"), "{err}");
    }

    #[test]
    fn errors_name_the_key_and_position() {
        let err = resolve_text("service: a\nlisten: not-an-address\n", &Overrides::default()).expect_err("bad listen");
        assert!(err.0.starts_with("redline.yaml:2:9: listen: expected an address and port"), "{err}");
        let err = resolve_text("service: a\nupstrem: http://x:1\n", &Overrides::default()).expect_err("typo");
        assert!(err.0.contains("upstrem"), "{err}");
        let err = resolve_text("service: a\nslo: {availability: 120}\n", &Overrides::default()).expect_err("bad slo");
        assert!(err.0.contains("percentage"), "{err}");
        let err = resolve_text("version: 1\n", &Overrides::default()).expect_err("no service");
        assert!(err.0.starts_with("service: required"), "{err}");
        let err = resolve_text("service: a\nroutes: [\"users/{id}\"]\n", &Overrides::default()).expect_err("bad route");
        assert!(err.0.starts_with("routes[0]:"), "{err}");
        let err =
            resolve_text("service: a\nduration_buckets: [1, 0.5]\n", &Overrides::default()).expect_err("bad buckets");
        assert!(err.0.starts_with("duration_buckets:"), "{err}");
    }

    /// No timeout key has an "off": 0 (or anything under 10ms) is refused, naming the key and
    /// the minimum; drain_timeout 0 is allowed (cut at once).
    #[test]
    fn zero_timeouts_are_refused_naming_the_key_and_the_minimum() {
        for key in ["upstream_timeout", "header_read_timeout", "idle_timeout", "stream_idle_timeout"] {
            let err = resolve_text(&format!("service: a\n{key}: 0s\n"), &Overrides::default()).expect_err(key);
            assert_eq!(err.0, format!("{key}: expected at least 10ms, got 0s; 0 does not turn the timeout off"));
        }
        let err =
            resolve_text("service: a\ntracing: {export_timeout: 1ms}\n", &Overrides::default()).expect_err("export");
        assert!(err.0.starts_with("tracing.export_timeout: expected at least 10ms, got 1ms"), "{err}");
        let err =
            resolve_text("service: a\nslo: {latency: {threshold: 0s}}\n", &Overrides::default()).expect_err("slo");
        assert!(err.0.starts_with("slo.latency.threshold: expected a duration above 0"), "{err}");
        let c = resolve_text("service: a\ndrain_timeout: 0s\nupstream_timeout: 10ms\n", &Overrides::default())
            .expect("drain_timeout 0 cuts at once");
        assert_eq!((c.drain_timeout, c.upstream_timeout), (Duration::ZERO, Duration::from_millis(10)));
    }

    #[test]
    fn yaml_errors_name_the_file_line_and_key_without_parser_internals() {
        let err = resolve_text("service: a\nlisten: 127.0.0.1:1\nlisten: 127.0.0.1:2\n", &Overrides::default())
            .expect_err("duplicate");
        assert_eq!(err.0, "redline.yaml:3:1: duplicate key `listen`");
        let err = resolve_text("service: a\nmax_routes: abc\n", &Overrides::default()).expect_err("type");
        assert_eq!(err.0, "redline.yaml:2:13: max_routes: expected a whole number (0 or more), found \"abc\"");
    }
}
