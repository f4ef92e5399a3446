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
    /// Prometheus rule files: check them, or run their unit tests (promtool's formats).
    #[command(subcommand)]
    Rules(RulesCommand),
    /// Canary analysis: judge a canary version against its baseline from Prometheus.
    #[command(subcommand)]
    Canary(CanaryCommand),
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
    pub prometheus: String,
    /// Value of the service label of both versions.
    #[arg(long)]
    pub service: String,
    /// Version label value of the baseline.
    #[arg(long)]
    pub baseline: String,
    /// Version label value of the canary.
    #[arg(long)]
    pub canary: String,
    /// Analysis window ending now.
    #[arg(long, default_value = "30m", value_parser = humantime::parse_duration)]
    pub window: std::time::Duration,
    /// Query resolution: one sample per step and side.
    #[arg(long, default_value = "30s", value_parser = humantime::parse_duration)]
    pub step: std::time::Duration,
    /// Range of the rate() in the queries.
    #[arg(long, default_value = "1m", value_parser = humantime::parse_duration)]
    pub rate_window: std::time::Duration,
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

#[cfg(test)]
mod tests {
    #[test]
    fn the_command_line_definition_is_consistent() {
        use clap::CommandFactory;
        super::Cli::command().debug_assert();
    }
}
