//! `redline canary judge`: fetch baseline and canary samples from Prometheus over the same
//! window, judge them, print the JSON report. Exit 0 pass, 1 marginal or fail, 2 on errors.
//! The window and traffic flags ([`Timing`], [`TrafficArgs`]) are shared with `readiness-check`'s
//! `canary` check.

use std::io::Write;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::Context as _;

use super::judge::{JudgeConfig, MetricSamples, Verdict, judge};
use super::prometheus::{Side, queries, range_query};
use crate::errors::{self, Outcome};

#[derive(Debug, clap::Subcommand)]
pub enum Args {
    /// Judge a canary version against the baseline from Prometheus range queries (error ratio,
    /// p99 latency, CPU per request); prints the JSON report. Exit 0 pass, 1 marginal or fail.
    Judge(JudgeArgs),
}

#[derive(Debug, clap::Args)]
pub struct JudgeArgs {
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
    pub timing: Timing,
    #[command(flatten)]
    pub traffic: TrafficArgs,
    /// Target label holding the service name.
    #[arg(long, default_value = "service")]
    pub service_label: String,
    /// Target label holding the version.
    #[arg(long, default_value = "version")]
    pub version_label: String,
    #[command(flatten)]
    pub judge: JudgeFlags,
}

/// How the judge decides (`canary judge`, and `readiness-check`'s `canary` check); the defaults
/// are [`JudgeConfig::default`]'s.
#[derive(Debug, Clone, Copy, clap::Args)]
pub struct JudgeFlags {
    /// Confidence of the Mann-Whitney U test (1 - alpha).
    #[arg(long, default_value_t = JudgeConfig::default().confidence)]
    pub confidence: f64,
    /// Allowed relative change of a metric's mean.
    #[arg(long, default_value_t = JudgeConfig::default().tolerance)]
    pub tolerance: f64,
    /// Fewer points than this on either side is NoData.
    #[arg(long, default_value_t = JudgeConfig::default().min_samples)]
    pub min_samples: usize,
    /// Score at or above which the canary passes.
    #[arg(long, default_value_t = JudgeConfig::default().pass_threshold)]
    pub pass_threshold: f64,
    /// Score at or above which (below pass) the canary is marginal.
    #[arg(long, default_value_t = JudgeConfig::default().marginal_threshold)]
    pub marginal_threshold: f64,
}

impl JudgeFlags {
    /// The judge's configuration, validated (the error names the flag).
    pub fn config(&self) -> Result<JudgeConfig, super::judge::JudgeConfigError> {
        let config = JudgeConfig {
            confidence: self.confidence,
            tolerance: self.tolerance,
            min_samples: self.min_samples,
            pass_threshold: self.pass_threshold,
            marginal_threshold: self.marginal_threshold,
            ..JudgeConfig::default()
        };
        config.validate()?;
        Ok(config)
    }
}

/// The Prometheus range queries of a canary judgement: window, resolution and rate() range.
#[derive(Debug, Clone, Copy, clap::Args)]
pub struct Timing {
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
pub struct TrafficArgs {
    /// `http`: every request (http_server_request_duration_seconds); `grpc`: gRPC calls
    /// (rpc_server_call_duration_seconds), p99 without streaming methods (rules/README.md).
    #[arg(long, value_enum, default_value = "http")]
    pub protocol: super::prometheus::Protocol,
    /// With --protocol grpc: judge only the calls whose rpc_method matches this regex (fully
    /// anchored), e.g. 'shop\.Checkout/.*'.
    #[arg(long, value_name = "REGEX")]
    pub rpc_method: Option<String>,
}

impl TrafficArgs {
    pub fn traffic(&self) -> super::prometheus::Traffic {
        super::prometheus::Traffic { protocol: self.protocol, rpc_method: self.rpc_method.clone() }
    }
}

/// Runs `redline canary judge`: the JSON report on stdout; pass, or a negative verdict for a
/// marginal or failing canary.
pub fn run(args: Args) -> Outcome {
    let Args::Judge(args) = args;
    let report = judge_canary(&args)?;
    let json = serde_json::to_string_pretty(&report).context("cannot write the report")?;
    writeln!(std::io::stdout(), "{json}").context("cannot write the report")?;
    Ok(errors::Verdict::of(report.verdict == Verdict::Pass))
}

fn judge_canary(args: &JudgeArgs) -> anyhow::Result<super::JudgeReport> {
    let config = args.judge.config()?;
    if args.timing.step.is_zero() || args.timing.window < args.timing.step {
        anyhow::bail!("--step must be positive and no longer than --window");
    }
    let side = |version: &str| Side {
        service_label: args.service_label.clone(),
        service: args.service.clone(),
        version_label: args.version_label.clone(),
        version: version.to_owned(),
    };
    let traffic = args.traffic.traffic();
    let baseline = queries(&side(&args.baseline), args.timing.rate_window, &traffic)?;
    let canary = queries(&side(&args.canary), args.timing.rate_window, &traffic)?;

    let end = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or(Duration::ZERO).as_secs_f64();
    let start = end - args.timing.window.as_secs_f64();
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    runtime.block_on(async {
        let client = crate::tls::http_client().map_err(anyhow::Error::msg)?.timeout(Duration::from_secs(30)).build()?;
        let mut metrics = Vec::new();
        for ((spec, baseline_query), (_, canary_query)) in baseline.into_iter().zip(canary) {
            let fetch = |q: String| {
                let client = client.clone();
                let url = args.prometheus.0.clone();
                async move { range_query(&client, &url, &q, start, end, args.timing.step).await }
            };
            let (b, c) = tokio::try_join!(fetch(baseline_query), fetch(canary_query))?;
            metrics.push(MetricSamples { spec, baseline: b, canary: c });
        }
        Ok(judge(&config, &metrics)?)
    })
}
