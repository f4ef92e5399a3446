//! `redline canary judge`: fetch baseline and canary samples from Prometheus over the same
//! window, judge them, print the JSON report. Exit 0 pass, 1 marginal or fail, 2 on errors.

use std::io::Write;
use std::process::ExitCode;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::cli::CanaryJudgeArgs;

use super::judge::{JudgeConfig, MetricSamples, Verdict, judge};
use super::prometheus::{Side, queries, range_query};

pub fn judge_command(args: &CanaryJudgeArgs, out: &mut impl Write) -> ExitCode {
    match run(args) {
        Ok(report) => {
            let verdict = report.verdict;
            match serde_json::to_string_pretty(&report) {
                Ok(json) => {
                    if writeln!(out, "{json}").is_err() {
                        return ExitCode::from(2);
                    }
                }
                Err(e) => {
                    eprintln!("redline canary judge: cannot write the report: {e}");
                    return ExitCode::from(2);
                }
            }
            if verdict == Verdict::Pass { ExitCode::SUCCESS } else { ExitCode::from(1) }
        }
        Err(e) => {
            eprintln!("redline canary judge: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn run(args: &CanaryJudgeArgs) -> anyhow::Result<super::JudgeReport> {
    let config = JudgeConfig {
        confidence: args.confidence,
        tolerance: args.tolerance,
        min_samples: args.min_samples,
        pass_threshold: args.pass_threshold,
        marginal_threshold: args.marginal_threshold,
        ..JudgeConfig::default()
    };
    config.validate()?;
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
