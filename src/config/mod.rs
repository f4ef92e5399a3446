//! The service description: one YAML file, overridden by `REDLINE_*` (and `OTEL_*`) env and flags.
//! Owns parsing, layering (flags > env > file > defaults) and validation with errors naming the key.

pub mod keys;
mod values;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

pub use keys::Key;
pub use values::{Dur, HealthCheck, HttpUrl, Percent, Ratio, Upstream, positive_duration};

use crate::proxy::upstream::UpstreamProtocol;
use crate::slo::{Objective, Slos};
use crate::telemetry::otlp::OtlpProtocol;
use crate::telemetry::propagation::Propagator;
use crate::tls::{ClientTlsFiles, Identity};

/// The config file as written; every key optional so layering can tell "unset" from "set".
#[derive(Clone, Debug, Default, Deserialize)]
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

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SloFile {
    pub availability: Option<Percent>,
    pub latency: Option<LatencySloFile>,
    pub period: Option<Dur>,
    pub objectives: Option<SloObjectives>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LatencySloFile {
    pub threshold: Option<Dur>,
    pub target: Option<Percent>,
}

/// One of several SLOs of a service (`slo.objectives`): a name, the routes it covers, and
/// targets that default to the `slo` section's.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ObjectiveFile {
    pub name: String,
    pub routes: Option<Vec<String>>,
    pub availability: Option<Percent>,
    pub latency: Option<LatencySloFile>,
}

/// `slo.objectives`: a YAML list in the file, and the same list as YAML text (flow style,
/// `[{name: orders, routes: ["/orders/{id}"]}]`) in the flag and variable.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(transparent)]
pub struct SloObjectives(pub Vec<ObjectiveFile>);

impl std::str::FromStr for SloObjectives {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, String> {
        crate::yaml::parse(text, keys::SLO_OBJECTIVES.name).map_err(|e| e.to_string())
    }
}

#[derive(Clone, Debug, Default, Deserialize)]
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

/// Every key as a flag and as `REDLINE_<KEY>` ([`keys`] declares each: its flag, variable,
/// default and help); clap applies "flag wins over env".
#[derive(Debug, Default, clap::Args)]
pub struct Overrides {
    /// Config file (YAML).
    #[arg(long, env = "REDLINE_CONFIG")]
    pub config: Option<PathBuf>,
    #[arg(long = keys::SERVICE.flag, env = keys::SERVICE.env, help = keys::SERVICE.help())]
    pub service: Option<String>,
    #[arg(long = keys::VERSION.flag, env = keys::VERSION.env, help = keys::VERSION.help())]
    pub service_version: Option<String>,
    #[arg(long = keys::NAMESPACE.flag, env = keys::NAMESPACE.env, help = keys::NAMESPACE.help())]
    pub namespace: Option<String>,
    #[arg(long = keys::POD.flag, env = keys::POD.env, help = keys::POD.help())]
    pub pod: Option<String>,
    #[arg(long = keys::LISTEN.flag, env = keys::LISTEN.env, help = keys::LISTEN.help())]
    pub listen: Option<SocketAddr>,
    #[arg(long = keys::UPSTREAM.flag, env = keys::UPSTREAM.env, help = keys::UPSTREAM.help())]
    pub upstream: Option<Upstream>,
    #[arg(long = keys::UPSTREAM_PROTOCOL.flag, env = keys::UPSTREAM_PROTOCOL.env, help = keys::UPSTREAM_PROTOCOL.help())]
    pub upstream_protocol: Option<UpstreamProtocol>,
    #[arg(long = keys::UPSTREAM_HEALTH_CHECK.flag, env = keys::UPSTREAM_HEALTH_CHECK.env, help = keys::UPSTREAM_HEALTH_CHECK.help())]
    pub upstream_health_check: Option<HealthCheck>,
    #[arg(long = keys::ADMIN.flag, env = keys::ADMIN.env, help = keys::ADMIN.help())]
    pub admin: Option<SocketAddr>,
    #[arg(long = keys::ROUTES.flag, env = keys::ROUTES.env, help = keys::ROUTES.help(), value_delimiter = ',')]
    pub routes: Option<Vec<String>>,
    #[arg(long = keys::MAX_ROUTES.flag, env = keys::MAX_ROUTES.env, help = keys::MAX_ROUTES.help())]
    pub max_routes: Option<usize>,
    #[arg(long = keys::DURATION_BUCKETS.flag, env = keys::DURATION_BUCKETS.env, help = keys::DURATION_BUCKETS.help(), value_delimiter = ',')]
    pub duration_buckets: Option<Vec<f64>>,
    #[arg(long = keys::UPSTREAM_TIMEOUT.flag, env = keys::UPSTREAM_TIMEOUT.env, help = keys::UPSTREAM_TIMEOUT.help())]
    pub upstream_timeout: Option<Dur>,
    #[arg(long = keys::DRAIN_TIMEOUT.flag, env = keys::DRAIN_TIMEOUT.env, help = keys::DRAIN_TIMEOUT.help())]
    pub drain_timeout: Option<Dur>,
    #[arg(long = keys::HEADER_READ_TIMEOUT.flag, env = keys::HEADER_READ_TIMEOUT.env, help = keys::HEADER_READ_TIMEOUT.help())]
    pub header_read_timeout: Option<Dur>,
    #[arg(long = keys::IDLE_TIMEOUT.flag, env = keys::IDLE_TIMEOUT.env, help = keys::IDLE_TIMEOUT.help())]
    pub idle_timeout: Option<Dur>,
    #[arg(long = keys::STREAM_IDLE_TIMEOUT.flag, env = keys::STREAM_IDLE_TIMEOUT.env, help = keys::STREAM_IDLE_TIMEOUT.help())]
    pub stream_idle_timeout: Option<Dur>,
    #[arg(long = keys::MAX_CONNECTIONS.flag, env = keys::MAX_CONNECTIONS.env, help = keys::MAX_CONNECTIONS.help())]
    pub max_connections: Option<usize>,
    #[arg(long = keys::MAX_HEADER_BYTES.flag, env = keys::MAX_HEADER_BYTES.env, help = keys::MAX_HEADER_BYTES.help())]
    pub max_header_bytes: Option<usize>,
    #[arg(long = keys::WORKERS.flag, env = keys::WORKERS.env, help = keys::WORKERS.help())]
    pub workers: Option<usize>,
    #[arg(long = keys::SENSITIVE_HEADERS.flag, env = keys::SENSITIVE_HEADERS.env, help = keys::SENSITIVE_HEADERS.help(), value_delimiter = ',')]
    pub sensitive_headers: Option<Vec<String>>,
    #[arg(long = keys::APP_PID.flag, env = keys::APP_PID.env, help = keys::APP_PID.help())]
    pub app_pid: Option<i32>,
    #[arg(long = keys::APP_PROCESS_NAME.flag, env = keys::APP_PROCESS_NAME.env, help = keys::APP_PROCESS_NAME.help())]
    pub app_process_name: Option<String>,
    #[arg(long = keys::CGROUP_PATH.flag, env = keys::CGROUP_PATH.env, help = keys::CGROUP_PATH.help())]
    pub cgroup_path: Option<PathBuf>,
    #[arg(long = keys::LOG_LEVEL.flag, env = keys::LOG_LEVEL.env, help = keys::LOG_LEVEL.help())]
    pub log_level: Option<String>,
    #[arg(long = keys::SLO_AVAILABILITY.flag, env = keys::SLO_AVAILABILITY.env, help = keys::SLO_AVAILABILITY.help())]
    pub slo_availability: Option<Percent>,
    #[arg(long = keys::SLO_LATENCY_THRESHOLD.flag, env = keys::SLO_LATENCY_THRESHOLD.env, help = keys::SLO_LATENCY_THRESHOLD.help())]
    pub slo_latency_threshold: Option<Dur>,
    #[arg(long = keys::SLO_LATENCY_TARGET.flag, env = keys::SLO_LATENCY_TARGET.env, help = keys::SLO_LATENCY_TARGET.help())]
    pub slo_latency_target: Option<Percent>,
    #[arg(long = keys::SLO_PERIOD.flag, env = keys::SLO_PERIOD.env, help = keys::SLO_PERIOD.help())]
    pub slo_period: Option<Dur>,
    #[arg(long = keys::SLO_OBJECTIVES.flag, env = keys::SLO_OBJECTIVES.env, help = keys::SLO_OBJECTIVES.help())]
    pub slo_objectives: Option<SloObjectives>,
    #[arg(long = keys::RULES.flag, env = keys::RULES.env, help = keys::RULES.help(), value_delimiter = ',')]
    pub rules: Option<Vec<String>>,
    #[arg(long = keys::SAMPLE_INTERVAL.flag, env = keys::SAMPLE_INTERVAL.env, help = keys::SAMPLE_INTERVAL.help())]
    pub sample_interval: Option<Dur>,
    #[arg(long = keys::RETENTION.flag, env = keys::RETENTION.env, help = keys::RETENTION.help())]
    pub retention: Option<Dur>,
    #[arg(long = keys::ALERTMANAGERS.flag, env = keys::ALERTMANAGERS.env, help = keys::ALERTMANAGERS.help(), value_delimiter = ',')]
    pub alertmanagers: Option<Vec<HttpUrl>>,
    #[arg(long = keys::TRACING_ENDPOINT.flag, env = keys::TRACING_ENDPOINT.env, help = keys::TRACING_ENDPOINT.help())]
    pub tracing_endpoint: Option<HttpUrl>,
    #[arg(long = keys::TRACING_PROTOCOL.flag, env = keys::TRACING_PROTOCOL.env, help = keys::TRACING_PROTOCOL.help())]
    pub tracing_protocol: Option<OtlpProtocol>,
    #[arg(long = keys::TRACING_SAMPLER_RATIO.flag, env = keys::TRACING_SAMPLER_RATIO.env, help = keys::TRACING_SAMPLER_RATIO.help())]
    pub tracing_sampler_ratio: Option<Ratio>,
    #[arg(long = keys::TRACING_PROPAGATORS.flag, env = keys::TRACING_PROPAGATORS.env, help = keys::TRACING_PROPAGATORS.help(), value_delimiter = ',')]
    pub tracing_propagators: Option<Vec<Propagator>>,
    #[arg(long = keys::TRACING_QUEUE_SIZE.flag, env = keys::TRACING_QUEUE_SIZE.env, help = keys::TRACING_QUEUE_SIZE.help())]
    pub tracing_queue_size: Option<usize>,
    #[arg(long = keys::TRACING_EXPORT_TIMEOUT.flag, env = keys::TRACING_EXPORT_TIMEOUT.env, help = keys::TRACING_EXPORT_TIMEOUT.help())]
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

/// The `slo` section resolved: the service-wide targets (the defaults of each objective), the
/// period, the named objectives, and whether SLOs were configured at all.
#[derive(Clone, Debug)]
pub struct Slo {
    pub availability: f64,
    pub latency_threshold: Duration,
    pub latency_target: f64,
    pub period: Duration,
    /// `slo.objectives`, each with the targets above filled in where it sets none.
    pub objectives: Vec<Objective>,
    /// Whether an `slo` section, flag or variable was given: the sidecar evaluates the SLO
    /// rules only then (they need `retention` to keep the longest window, 3d by default).
    pub configured: bool,
}

impl Slo {
    /// The SLOs the rules are generated for: the named objectives, or the service-wide one.
    pub fn slos(&self) -> Slos {
        let objectives = if self.objectives.is_empty() {
            vec![Objective {
                name: None,
                routes: Vec::new(),
                availability: self.availability,
                latency_threshold: self.latency_threshold,
                latency_target: self.latency_target,
            }]
        } else {
            self.objectives.clone()
        };
        Slos { objectives, period: self.period }
    }

    /// Each latency threshold with the key that sets it.
    fn thresholds(&self) -> Vec<(String, Duration)> {
        let slos = self.slos();
        let key = |i: usize| match slos.objectives[i].name {
            Some(_) => format!("{}[{i}].latency.threshold", keys::SLO_OBJECTIVES),
            None => keys::SLO_LATENCY_THRESHOLD.to_string(),
        };
        slos.objectives.iter().enumerate().map(|(i, o)| (key(i), o.latency_threshold)).collect()
    }
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

/// The `slo` section and the duration buckets of a config file, resolved and checked as the
/// sidecar does, for `redline rules slo` (which needs no `service`, flags or variables).
pub fn slo_of_file(path: &Path) -> Result<(Slo, Vec<f64>), ConfigError> {
    slo_of_config(read_file(path)?)
}

/// As [`slo_of_file`], for a file already read (`readiness-check`).
pub fn slo_of_config(mut file: FileConfig) -> Result<(Slo, Vec<f64>), ConfigError> {
    file.service.get_or_insert_with(|| "unnamed".into());
    let c = resolve(file, &Overrides::default(), &OtelEnv::default())?;
    Ok((c.slo, c.duration_buckets))
}

/// The `slo` section of the default configuration.
pub fn default_slo() -> Slo {
    let file = FileConfig { service: Some("unnamed".into()), ..FileConfig::default() };
    // The built-in defaults always resolve (the keys' unit tests prove it).
    resolve(file, &Overrides::default(), &OtelEnv::default()).map(|c| c.slo).unwrap_or_else(|e| panic!("{e}"))
}

/// Layers flags/env over the file over defaults, then checks keys against each other.
pub fn resolve(file: FileConfig, o: &Overrides, otel: &OtelEnv) -> Result<Config, ConfigError> {
    let slo_configured = file.slo.is_some()
        || o.slo_availability.is_some()
        || o.slo_latency_threshold.is_some()
        || o.slo_latency_target.is_some()
        || o.slo_period.is_some()
        || o.slo_objectives.is_some();
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
    let protocol =
        o.tracing_protocol.or(tracing.protocol).unwrap_or_else(|| keys::TRACING_PROTOCOL.default_value(value_enum));
    let endpoint = match (&o.tracing_endpoint, &otel.endpoint, tracing.endpoint) {
        (Some(url), _, _) => url.0.clone(),
        (None, Some(env), _) => {
            env.parse::<HttpUrl>().map_err(|e| ConfigError(format!("OTEL_EXPORTER_OTLP_ENDPOINT: {e}")))?.0
        }
        (None, None, Some(url)) => url.0,
        (None, None, None) => match protocol {
            OtlpProtocol::Http => keys::OTLP_HTTP_ENDPOINT.to_string(),
            OtlpProtocol::Grpc => keys::OTLP_GRPC_ENDPOINT.to_string(),
        },
    };

    let mut sensitive: Vec<String> = ALWAYS_SENSITIVE.iter().map(|s| s.to_string()).collect();
    for h in o.sensitive_headers.clone().or(file.sensitive_headers).unwrap_or_default() {
        let h = h.trim().to_ascii_lowercase();
        if http::HeaderName::from_bytes(h.as_bytes()).is_err() {
            return Err(ConfigError(format!("{}: {h:?} is not a valid header name", keys::SENSITIVE_HEADERS)));
        }
        if !sensitive.contains(&h) {
            sensitive.push(h);
        }
    }

    // Each default is the text `keys` shows in --help, parsed as the flag would be.
    let text = |key: &Key| key.default_value(|s| Ok::<_, String>(s.to_string()));
    let duration = |key: &Key| key.default_value(str::parse::<Dur>).0;
    let mut config = Config {
        service,
        version: o.service_version.clone().or(file.version).unwrap_or_else(|| text(&keys::VERSION)),
        namespace: o.namespace.clone().or(file.namespace).unwrap_or_else(|| text(&keys::NAMESPACE)),
        // keys::POD's default: $HOSTNAME
        pod: o.pod.clone().or(file.pod).or_else(|| std::env::var("HOSTNAME").ok().filter(|h| !h.is_empty())),
        listen: o.listen.or(file.listen).unwrap_or_else(|| keys::LISTEN.default_value(str::parse)),
        upstream: o.upstream.clone().or(file.upstream).unwrap_or_else(|| keys::UPSTREAM.default_value(str::parse)),
        upstream_protocol: o
            .upstream_protocol
            .or(file.upstream_protocol)
            .unwrap_or_else(|| keys::UPSTREAM_PROTOCOL.default_value(value_enum)),
        upstream_health_check: o
            .upstream_health_check
            .clone()
            .or(file.upstream_health_check)
            .unwrap_or_else(|| keys::UPSTREAM_HEALTH_CHECK.default_value(str::parse)),
        admin: o.admin.or(file.admin).unwrap_or_else(|| keys::ADMIN.default_value(str::parse)),
        routes: o.routes.clone().or(file.routes).unwrap_or_default(),
        max_routes: o.max_routes.or(file.max_routes).unwrap_or_else(|| keys::MAX_ROUTES.default_value(str::parse)),
        duration_buckets: o
            .duration_buckets
            .clone()
            .or(file.duration_buckets)
            .unwrap_or_else(|| keys::DURATION_BUCKETS.default_value(|s| keys::parse_list(s, str::parse::<f64>))),
        upstream_timeout: o
            .upstream_timeout
            .or(file.upstream_timeout)
            .map_or_else(|| duration(&keys::UPSTREAM_TIMEOUT), |d| d.0),
        drain_timeout: o.drain_timeout.or(file.drain_timeout).map_or_else(|| duration(&keys::DRAIN_TIMEOUT), |d| d.0),
        header_read_timeout: o
            .header_read_timeout
            .or(file.header_read_timeout)
            .map_or_else(|| duration(&keys::HEADER_READ_TIMEOUT), |d| d.0),
        idle_timeout: o.idle_timeout.or(file.idle_timeout).map_or_else(|| duration(&keys::IDLE_TIMEOUT), |d| d.0),
        stream_idle_timeout: o
            .stream_idle_timeout
            .or(file.stream_idle_timeout)
            .map_or_else(|| duration(&keys::STREAM_IDLE_TIMEOUT), |d| d.0),
        max_connections: o
            .max_connections
            .or(file.max_connections)
            .unwrap_or_else(|| keys::MAX_CONNECTIONS.default_value(str::parse)),
        max_header_bytes: o
            .max_header_bytes
            .or(file.max_header_bytes)
            .unwrap_or_else(|| keys::MAX_HEADER_BYTES.default_value(str::parse)),
        // keys::WORKERS's default: the CPUs this process may run on (affinity, cgroup quota).
        workers: o
            .workers
            .or(file.workers)
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get())),
        sensitive_headers: sensitive,
        app_pid: o.app_pid.or(file.app_pid),
        app_process_name: o.app_process_name.clone().or(file.app_process_name),
        cgroup_path: o.cgroup_path.clone().or(file.cgroup_path),
        log_level: o.log_level.clone().or(file.log_level).unwrap_or_else(|| text(&keys::LOG_LEVEL)),
        slo: Slo {
            availability: o
                .slo_availability
                .or(slo.availability)
                .map_or_else(|| keys::SLO_AVAILABILITY.default_value(str::parse::<Percent>).0, |p| p.0),
            latency_threshold: o
                .slo_latency_threshold
                .or(latency.threshold)
                .map_or_else(|| duration(&keys::SLO_LATENCY_THRESHOLD), |d| d.0),
            latency_target: o
                .slo_latency_target
                .or(latency.target)
                .map_or_else(|| keys::SLO_LATENCY_TARGET.default_value(str::parse::<Percent>).0, |p| p.0),
            period: o.slo_period.or(slo.period).map_or_else(|| duration(&keys::SLO_PERIOD), |d| d.0),
            objectives: Vec::new(),
            configured: slo_configured,
        },
        rules: o.rules.clone().or(file.rules).unwrap_or_default(),
        sample_interval: o
            .sample_interval
            .or(file.sample_interval)
            .map_or_else(|| duration(&keys::SAMPLE_INTERVAL), |d| d.0),
        retention: o.retention.or(file.retention).map_or_else(|| duration(&keys::RETENTION), |d| d.0),
        alertmanagers: o.alertmanagers.clone().or(file.alertmanagers).unwrap_or_default(),
        tracing: TracingConfig {
            endpoint,
            protocol,
            sampler_ratio: o
                .tracing_sampler_ratio
                .map(|r| r.0)
                .or(otel_ratio)
                .or(tracing.sampler_ratio.map(|r| r.0))
                .unwrap_or_else(|| keys::TRACING_SAMPLER_RATIO.default_value(str::parse::<Ratio>).0),
            propagators: o
                .tracing_propagators
                .clone()
                .or(tracing.propagators)
                .unwrap_or_else(|| keys::TRACING_PROPAGATORS.default_value(|s| keys::parse_list(s, value_enum))),
            queue_size: o
                .tracing_queue_size
                .or(tracing.queue_size)
                .unwrap_or_else(|| keys::TRACING_QUEUE_SIZE.default_value(str::parse)),
            export_timeout: o
                .tracing_export_timeout
                .or(tracing.export_timeout)
                .map_or_else(|| duration(&keys::TRACING_EXPORT_TIMEOUT), |d| d.0),
            resource_attributes: otel.resource_attributes.clone(),
            tls: exporter_tls(otel)?,
        },
        readiness: file.readiness.unwrap_or_default(),
    };
    let objectives = o.slo_objectives.clone().or(slo.objectives).unwrap_or_default();
    config.slo.objectives = resolve_objectives(&config.slo, objectives.0);
    validate(&config)?;
    // The latency thresholds' buckets: added to the default buckets, required in custom ones.
    let default_buckets = keys::DURATION_BUCKETS.default_value(|s| keys::parse_list(s, str::parse::<f64>));
    config.duration_buckets = crate::slo::histogram_buckets(
        &config.duration_buckets,
        config.duration_buckets == default_buckets,
        &config.slo.thresholds(),
    )
    .map_err(ConfigError)?;
    Ok(config)
}

/// The named objectives, with the service-wide targets where one sets none.
fn resolve_objectives(slo: &Slo, objectives: Vec<ObjectiveFile>) -> Vec<Objective> {
    objectives
        .into_iter()
        .map(|f| {
            let latency = f.latency.unwrap_or_default();
            Objective {
                name: Some(f.name),
                routes: f.routes.unwrap_or_default(),
                availability: f.availability.map_or(slo.availability, |p| p.0),
                latency_threshold: latency.threshold.map_or(slo.latency_threshold, |d| d.0),
                latency_target: latency.target.map_or(slo.latency_target, |p| p.0),
            }
        })
        .collect()
}

/// A value of a clap `ValueEnum` (`auto`, `grpc`, `b3`), as its flag parses it.
fn value_enum<T: clap::ValueEnum>(text: &str) -> Result<T, String> {
    T::from_str(text, false)
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
        crate::proxy::route::validate_template(r).map_err(|e| ConfigError(format!("{}[{i}]: {e}", keys::ROUTES)))?;
    }
    if c.max_routes == 0 {
        return Err(ConfigError(format!("{}: expected a positive number of routes", keys::MAX_ROUTES)));
    }
    if c.routes.len() > c.max_routes {
        return Err(ConfigError(format!(
            "{0}: {1} templates configured but {2} is {3}; raise {2}",
            keys::ROUTES,
            c.routes.len(),
            keys::MAX_ROUTES,
            c.max_routes
        )));
    }
    let b = &c.duration_buckets;
    if b.is_empty() || b.iter().any(|v| !v.is_finite() || *v <= 0.0) || b.windows(2).any(|w| w[0] >= w[1]) {
        return Err(ConfigError(format!(
            "{}: expected strictly increasing positive seconds such as [0.005, 0.01, 0.1], got {b:?}",
            keys::DURATION_BUCKETS
        )));
    }
    if c.workers == 0 || c.workers > 1024 {
        return Err(ConfigError(format!("{}: expected 1 to 1024 worker threads, got {}", keys::WORKERS, c.workers)));
    }
    if c.tracing.queue_size == 0 {
        return Err(ConfigError(format!("{}: expected at least 1", keys::TRACING_QUEUE_SIZE)));
    }
    // None of these has an "off": 0 would time every request (or export) out at once.
    // drain_timeout may be 0 (cut in-flight requests at once on SIGTERM).
    for (key, value) in [
        (&keys::UPSTREAM_TIMEOUT, c.upstream_timeout),
        (&keys::HEADER_READ_TIMEOUT, c.header_read_timeout),
        (&keys::IDLE_TIMEOUT, c.idle_timeout),
        (&keys::STREAM_IDLE_TIMEOUT, c.stream_idle_timeout),
        (&keys::TRACING_EXPORT_TIMEOUT, c.tracing.export_timeout),
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
        return Err(ConfigError(format!(
            "{}: expected a duration above 0, such as 300ms",
            keys::SLO_LATENCY_THRESHOLD
        )));
    }
    crate::slo::check_period(keys::SLO_PERIOD.name, c.slo.period).map_err(ConfigError)?;
    let mut names = std::collections::HashSet::new();
    for (i, o) in c.slo.objectives.iter().enumerate() {
        let key = format!("{}[{i}]", keys::SLO_OBJECTIVES);
        crate::slo::check_objective(&key, o).map_err(ConfigError)?;
        if let Some(name) = &o.name
            && !names.insert(name.clone())
        {
            return Err(ConfigError(format!("{key}.name: {name:?} is used by an earlier objective")));
        }
        for (j, r) in o.routes.iter().enumerate() {
            crate::proxy::route::validate_template(r).map_err(|e| ConfigError(format!("{key}.routes[{j}]: {e}")))?;
        }
    }
    if c.max_connections == 0 {
        return Err(ConfigError(format!("{}: expected at least 1", keys::MAX_CONNECTIONS)));
    }
    if c.max_header_bytes < 8192 {
        return Err(ConfigError(format!(
            "{}: expected at least 8192, got {}",
            keys::MAX_HEADER_BYTES,
            c.max_header_bytes
        )));
    }
    if c.app_pid.is_some() && c.app_process_name.is_some() {
        return Err(ConfigError(format!("{} and {}: set at most one of them", keys::APP_PID, keys::APP_PROCESS_NAME)));
    }
    if c.listen == c.admin {
        return Err(ConfigError(format!(
            "{} and {}: both are {}; give them different ports",
            keys::LISTEN,
            keys::ADMIN,
            c.listen
        )));
    }
    if !keys::LOG_LEVELS.contains(&c.log_level.as_str()) {
        return Err(ConfigError(format!(
            "{}: expected one of {}, got {:?}",
            keys::LOG_LEVEL,
            keys::LOG_LEVELS.join(", "),
            c.log_level
        )));
    }
    if c.sample_interval.is_zero() || c.retention < c.sample_interval {
        return Err(ConfigError(format!(
            "{0} and {1}: expected 0 < {0} <= {1}",
            keys::SAMPLE_INTERVAL,
            keys::RETENTION
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXAMPLE_CONFIG: &str = r#"
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
    fn the_example_config_loads() {
        let c = resolve_text(EXAMPLE_CONFIG, &Overrides::default()).expect("example config is valid");
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
        let c = resolve_text(EXAMPLE_CONFIG, &o).expect("valid");
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

    /// SLOs: configured only when written; several objectives take the section's targets as
    /// defaults; a latency threshold must be a bucket of custom buckets (added to the default ones).
    #[test]
    fn slo_objectives_periods_and_threshold_buckets() {
        let c = resolve_text("service: a\n", &Overrides::default()).expect("valid");
        assert!(!c.slo.configured);
        assert_eq!(c.slo.period, Duration::from_secs(30 * 86_400));
        let text = "service: a\nslo:\n  availability: 99.5\n  objectives:\n    - {name: orders, routes: [\"/orders/{id}\"], latency: {threshold: 500ms}}\n    - {name: search, availability: 99}\n";
        let c = resolve_text(text, &Overrides::default()).expect("valid");
        assert!(c.slo.configured);
        let slos = c.slo.slos();
        assert_eq!(slos.objectives.len(), 2);
        assert_eq!(slos.objectives[0].name.as_deref(), Some("orders"));
        assert_eq!(slos.objectives[0].routes, ["/orders/{id}"]);
        assert_eq!((slos.objectives[0].availability, slos.objectives[0].latency_target), (99.5, 99.0));
        assert_eq!(slos.objectives[1].latency_threshold, Duration::from_millis(300));
        assert_eq!(slos.objectives[1].availability, 99.0);
        let o = Overrides {
            slo_objectives: Some("[{name: api, routes: [\"/api\"]}]".parse().expect("flow YAML")),
            ..Default::default()
        };
        let c = resolve_text("service: a\n", &o).expect("valid");
        assert!(c.slo.configured && c.slo.objectives[0].routes == ["/api"]);

        let err = resolve_text("service: a\nduration_buckets: [0.1, 0.5]\n", &Overrides::default()).expect_err("0.3");
        assert!(
            err.0.starts_with("slo.latency.threshold: 300ms is not a bucket of duration_buckets [0.1, 0.5]"),
            "{err}"
        );
        let err = resolve_text(
            "service: a\nduration_buckets: [0.1, 0.3]\nslo: {objectives: [{name: x, latency: {threshold: 1s}}]}\n",
            &Overrides::default(),
        )
        .expect_err("1s");
        assert!(err.0.starts_with("slo.objectives[0].latency.threshold: 1s is not a bucket"), "{err}");
        let err = resolve_text("service: a\nslo: {period: 1h}\n", &Overrides::default()).expect_err("period");
        assert!(err.0.starts_with("slo.period: expected at least 2h24m"), "{err}");
        let err = resolve_text("service: a\nslo: {objectives: [{name: x}, {name: x}]}\n", &Overrides::default())
            .expect_err("twice");
        assert_eq!(err.0, "slo.objectives[1].name: \"x\" is used by an earlier objective");
        let err = resolve_text("service: a\nslo: {objectives: [{name: x, routes: [nope]}]}\n", &Overrides::default())
            .expect_err("route");
        assert!(err.0.starts_with("slo.objectives[0].routes[0]:"), "{err}");
        let err = resolve_text("service: a\nslo: {objectives: [{routes: [/a]}]}\n", &Overrides::default())
            .expect_err("no name");
        assert!(err.0.contains("name"), "{err}");
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
