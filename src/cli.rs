//! The command line: one subcommand per job, each with its flags (and `REDLINE_*` env).

use clap::{Parser, Subcommand};

use crate::config::Overrides;

#[derive(Debug, Parser)]
#[command(name = "redline", version, about = "Observability and alerting sidecar", propagate_version = true)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Reverse proxy with RED/USE metrics, JSON access logs and trace context.
    Sidecar(Box<SidecarArgs>),
    /// The whole flow on an embedded default: demo service, sidecar, load, a fault, the alert
    /// firing and resolving on a receiver.
    Demo(DemoArgs),
    /// Prometheus rule files: check them, or run their unit tests (promtool's formats).
    #[command(subcommand)]
    Rules(RulesCommand),
    /// Canary analysis: judge a canary version against its baseline from Prometheus.
    #[command(subcommand)]
    Canary(CanaryCommand),
    /// Alertmanager webhook receiver: stores every notification durably and answers promotion gates.
    Receiver(Box<ReceiverArgs>),
    /// Alerts stored by a running receiver.
    #[command(subcommand)]
    Alerts(AlertsCommand),
    /// Production-readiness checklist of a service (exit 0 ready, 1 not ready, 2 usage/config error).
    ReadinessCheck(Box<ReadinessCheckArgs>),
    /// Grafana dashboards (RED, USE, SLO, alerts) from the metric names the sidecar exports.
    #[command(subcommand)]
    Dashboards(DashboardsCommand),
}

#[derive(Debug, Subcommand)]
pub enum DashboardsCommand {
    /// Write one JSON file per dashboard into --out; with --check only compare (exit 1 naming
    /// every file that differs or is missing).
    Generate {
        /// Directory of the dashboard files.
        #[arg(long, default_value = "dashboards")]
        out: std::path::PathBuf,
        /// Write nothing; exit 1 unless the files under --out equal the generated ones.
        #[arg(long)]
        check: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum RulesCommand {
    /// Validate rule files; every problem is printed with file:line, group and rule (exit 1).
    Check {
        #[arg(required = true)]
        files: Vec<std::path::PathBuf>,
    },
    /// Run rule unit-test files in promtool's format (exit 1 on any failure).
    Test {
        #[arg(required = true)]
        files: Vec<std::path::PathBuf>,
    },
}

#[derive(Debug, clap::Args)]
pub struct DemoArgs {
    /// How long the demo runs (at least 60s; the fault starts at 20% and stops at 50% of it).
    #[arg(long, default_value = "90s", value_parser = crate::demo::run::parse_duration)]
    pub duration: std::time::Duration,
    /// Keep the sidecar log, the demo rules and the receiver database in this directory.
    #[arg(long)]
    pub keep_dir: Option<std::path::PathBuf>,
}

#[derive(Debug, clap::Args)]
pub struct SidecarArgs {
    #[command(flatten)]
    pub config: Overrides,
}

#[derive(Debug, Subcommand)]
pub enum CanaryCommand {
    /// Judge a canary version against the baseline from Prometheus range queries (error ratio,
    /// p99 latency, CPU per request); prints the JSON report. Exit 0 pass, 1 marginal or fail.
    Judge(CanaryJudgeArgs),
}

#[derive(Debug, clap::Args)]
pub struct CanaryJudgeArgs {
    /// Prometheus base URL, e.g. http://prometheus:9090.
    #[arg(long, env = "REDLINE_PROMETHEUS_URL")]
    pub prometheus: crate::config::HttpUrl,
    /// Value of the service label of both versions.
    #[arg(long)]
    pub service: String,
    /// Version label value of the baseline.
    #[arg(long)]
    pub baseline: String,
    /// Version label value of the canary.
    #[arg(long)]
    pub canary: String,
    #[command(flatten)]
    pub timing: CanaryTiming,
    #[command(flatten)]
    pub traffic: CanaryTraffic,
    /// Target label holding the service name.
    #[arg(long, default_value = "service")]
    pub service_label: String,
    /// Target label holding the version.
    #[arg(long, default_value = "version")]
    pub version_label: String,
    /// Confidence of the Mann-Whitney U test (1 - alpha).
    #[arg(long, default_value_t = 0.98)]
    pub confidence: f64,
    /// Allowed relative change of a metric's mean.
    #[arg(long, default_value_t = 0.25)]
    pub tolerance: f64,
    /// Fewer points than this on either side is NoData.
    #[arg(long, default_value_t = 10)]
    pub min_samples: usize,
    /// Score at or above which the canary passes.
    #[arg(long, default_value_t = 95.0)]
    pub pass_threshold: f64,
    /// Score at or above which (below pass) the canary is marginal.
    #[arg(long, default_value_t = 75.0)]
    pub marginal_threshold: f64,
}

#[derive(Debug, clap::Args)]
pub struct ReceiverArgs {
    /// Address to listen on; a non-loopback address needs credentials or --insecure-no-auth.
    #[arg(long, env = "REDLINE_RECEIVER_LISTEN", default_value = "127.0.0.1:9095")]
    pub listen: String,
    /// SQLite database file, or a postgres:// URL for a store shared by several replicas.
    #[arg(long, env = "REDLINE_RECEIVER_DB", default_value = "redline.db")]
    pub db: String,
    /// File holding the Bearer token senders and queries must present.
    #[arg(long, env = "REDLINE_RECEIVER_BEARER_TOKEN_FILE", conflicts_with = "basic_auth_file")]
    pub bearer_token_file: Option<std::path::PathBuf>,
    /// File holding `user:password` for Basic auth.
    #[arg(long, env = "REDLINE_RECEIVER_BASIC_AUTH_FILE")]
    pub basic_auth_file: Option<std::path::PathBuf>,
    /// Allow a non-loopback --listen address without credentials.
    #[arg(long)]
    pub insecure_no_auth: bool,
    /// Largest accepted request body (bytes, or with a KiB/MiB suffix); larger gets 413.
    #[arg(long, env = "REDLINE_RECEIVER_MAX_BODY", default_value = "1MiB", value_parser = crate::receiver::parse_size)]
    pub max_body: usize,
    /// Sidecar config (or a directory of `<service>.yaml` configs) whose `readiness` section the
    /// gates run in full; without one they judge firing alerts only.
    #[arg(long, env = "REDLINE_RECEIVER_READINESS_CONFIG")]
    pub readiness_config: Option<std::path::PathBuf>,
    /// Time each HTTP request of a gate's readiness check may take.
    #[arg(long, env = "REDLINE_RECEIVER_READINESS_TIMEOUT", default_value = "5s", value_parser = crate::config::positive_duration)]
    pub readiness_timeout: std::time::Duration,
    /// error, warn, info, debug or trace.
    #[arg(long, env = "REDLINE_LOG_LEVEL", default_value = "info")]
    pub log_level: String,
}

#[derive(Debug, Subcommand)]
pub enum AlertsCommand {
    /// List alerts and their current state from a receiver's query API.
    List(AlertsListArgs),
}

#[derive(Debug, clap::Args)]
pub struct AlertsListArgs {
    /// Base URL of the receiver.
    #[arg(long, env = "REDLINE_RECEIVER_URL", default_value = "http://127.0.0.1:9095")]
    pub receiver: String,
    /// Only alerts whose `service` label is this.
    #[arg(long)]
    pub service: Option<String>,
    #[arg(long, value_enum)]
    pub state: Option<StateArg>,
    /// Only alerts notified since this RFC 3339 time or duration ago (e.g. 1h).
    #[arg(long)]
    pub since: Option<String>,
    #[arg(long, value_enum, default_value = "table")]
    pub format: ListFormat,
    #[arg(long, env = "REDLINE_RECEIVER_BEARER_TOKEN_FILE", conflicts_with = "basic_auth_file")]
    pub bearer_token_file: Option<std::path::PathBuf>,
    #[arg(long, env = "REDLINE_RECEIVER_BASIC_AUTH_FILE")]
    pub basic_auth_file: Option<std::path::PathBuf>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum StateArg {
    Firing,
    Resolved,
}

impl StateArg {
    pub fn as_str(self) -> &'static str {
        match self {
            StateArg::Firing => "firing",
            StateArg::Resolved => "resolved",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum ListFormat {
    Table,
    Json,
}

/// The Prometheus range queries of a canary judgement: window, resolution and rate() range.
#[derive(Debug, Clone, Copy, clap::Args)]
pub struct CanaryTiming {
    /// Analysis window ending now.
    #[arg(long, default_value = "30m", value_parser = crate::config::positive_duration)]
    pub window: std::time::Duration,
    /// Query resolution: one sample per step and side.
    #[arg(long, default_value = "30s", value_parser = crate::config::positive_duration)]
    pub step: std::time::Duration,
    /// Range of the rate() in the queries.
    #[arg(long, default_value = "1m", value_parser = crate::config::positive_duration)]
    pub rate_window: std::time::Duration,
}

/// Which traffic the canary judge compares (`canary judge`, and `readiness-check`'s `canary` check).
#[derive(Debug, Clone, clap::Args)]
pub struct CanaryTraffic {
    /// `http`: every request (http_server_request_duration_seconds); `grpc`: gRPC calls
    /// (rpc_server_call_duration_seconds), p99 without streaming methods (rules/README.md).
    #[arg(long, value_enum, default_value = "http")]
    pub protocol: crate::canary::prometheus::Protocol,
    /// With --protocol grpc: judge only the calls whose rpc_method matches this regex (fully
    /// anchored), e.g. 'shop\.Checkout/.*'.
    #[arg(long, value_name = "REGEX")]
    pub rpc_method: Option<String>,
}

impl CanaryTraffic {
    pub fn traffic(&self) -> crate::canary::prometheus::Traffic {
        crate::canary::prometheus::Traffic { protocol: self.protocol, rpc_method: self.rpc_method.clone() }
    }
}

#[derive(Debug, clap::Args)]
pub struct ReadinessCheckArgs {
    /// The service to check (value of the `service` label, Jaeger service name).
    #[arg(long)]
    pub service: String,
    /// The sidecar's config file; its `readiness` section, `rules`, `alertmanagers` and `admin` are used.
    #[arg(long, env = "REDLINE_CONFIG")]
    pub config: Option<std::path::PathBuf>,
    #[arg(long, value_enum, default_value = "table")]
    pub format: crate::readiness::render::Format,
    /// Run only these checks (comma-separated ids, e.g. tests.coverage,metrics.red).
    #[arg(long, value_delimiter = ',')]
    pub only: Vec<String>,
    /// Do not run these checks (comma-separated ids).
    #[arg(long, value_delimiter = ',')]
    pub skip: Vec<String>,
    /// Baseline version for the `canary` check (needs readiness.prometheus_url).
    #[arg(long, requires = "canary")]
    pub baseline: Option<String>,
    /// Canary version for the `canary` check.
    #[arg(long, requires = "baseline")]
    pub canary: Option<String>,
    #[command(flatten)]
    pub timing: CanaryTiming,
    #[command(flatten)]
    pub traffic: CanaryTraffic,
    /// Time each HTTP request of a check may take.
    #[arg(long, default_value = "10s", value_parser = crate::config::positive_duration)]
    pub timeout: std::time::Duration,
    #[command(flatten)]
    pub readiness: crate::config::ReadinessOverrides,
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_command_line_definition_is_consistent() {
        use clap::CommandFactory;
        super::Cli::command().debug_assert();
    }

    /// `--protocol` and `--rpc-method` reach the canary judge from both commands; HTTP by default.
    #[test]
    fn the_canary_traffic_flags_parse_in_the_judge_and_the_readiness_check() {
        use clap::Parser;

        use crate::canary::prometheus::Traffic;
        let judge = ["redline", "canary", "judge", "--prometheus", "http://p:9090", "--service", "s"];
        let judge = |extra: &[&str]| {
            let cli = super::Cli::try_parse_from(
                judge.iter().chain(["--baseline", "a", "--canary", "b"].iter()).chain(extra),
            )
            .expect("parses");
            match cli.command {
                super::Command::Canary(super::CanaryCommand::Judge(a)) => a.traffic.traffic(),
                other => panic!("{other:?}"),
            }
        };
        assert_eq!(judge(&[]), Traffic::http());
        assert_eq!(judge(&["--protocol", "grpc"]), Traffic::grpc(None));
        assert_eq!(judge(&["--protocol", "grpc", "--rpc-method", "shop.Cart/.*"]), Traffic::grpc(Some("shop.Cart/.*")));
        let cli = super::Cli::try_parse_from([
            "redline",
            "readiness-check",
            "--service",
            "s",
            "--baseline",
            "a",
            "--canary",
            "b",
            "--protocol",
            "grpc",
        ])
        .expect("parses");
        match cli.command {
            super::Command::ReadinessCheck(a) => assert_eq!(a.traffic.traffic(), Traffic::grpc(None)),
            other => panic!("{other:?}"),
        }
        assert!(super::Cli::try_parse_from(["redline", "canary", "judge", "--protocol", "thrift"]).is_err());
    }
}
