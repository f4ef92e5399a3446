//! `redline readiness-check`: turns the command line into a checklist [`Plan`], runs it and
//! prints the report. Exit 0 ready, 1 not ready, 2 usage/config error.

use std::io::{IsTerminal, Write};

use anyhow::Context as _;

use crate::canary;
use crate::config::FileConfig;
use crate::errors::{CommandError, Outcome, Verdict};
use crate::readiness::checklist::{self, Options, Plan, Selection, UsageError};
use crate::readiness::render::{Format, render};
use crate::readiness::report::Report;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The service to check (value of the `service` label, Jaeger service name).
    #[arg(long)]
    pub service: String,
    /// The sidecar's config file; its `readiness` section, `rules`, `alertmanagers` and `admin` are used.
    #[arg(long, env = "REDLINE_CONFIG")]
    pub config: Option<std::path::PathBuf>,
    #[arg(long, value_enum, default_value = "table")]
    pub format: Format,
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
    pub timing: canary::command::Timing,
    #[command(flatten)]
    pub traffic: canary::command::TrafficArgs,
    #[command(flatten)]
    pub judge: canary::command::JudgeFlags,
    /// Time each HTTP request of a check may take.
    #[arg(long, default_value = "10s", value_parser = crate::config::positive_duration)]
    pub timeout: std::time::Duration,
    #[command(flatten)]
    pub readiness: crate::config::ReadinessOverrides,
}

/// Runs `redline readiness-check`: the report on stdout; ready, or a negative verdict.
pub fn run(args: Args) -> Outcome {
    let report = report(&args).map_err(CommandError::refused)?;
    let colour = args.format == Format::Table
        && std::io::stdout().is_terminal()
        && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
    let text = render(&report, args.format, colour);
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_bytes()).and_then(|()| out.flush()).context("cannot write the report")?;
    Ok(Verdict::of(report.ready))
}

/// Runs the checks the flags and the config select.
pub fn report(args: &Args) -> Result<Report, UsageError> {
    checklist::check_ids("--only", &args.only)?;
    checklist::check_ids("--skip", &args.skip)?;
    let selection = Selection { only: args.only.clone(), skip: args.skip.clone() };
    let mut file = match &args.config {
        Some(path) => crate::config::read_file(path).map_err(|e| UsageError(e.to_string()))?,
        None => FileConfig::default(),
    };
    if let Some(blocking) = &args.readiness.blocking {
        checklist::check_ids("--blocking", blocking)?;
    }
    args.readiness.apply(file.readiness.get_or_insert_with(Default::default));
    let origin = args.config.as_ref().map_or("(no config file)".to_string(), |p| p.display().to_string());
    let options = Options {
        baseline: args.baseline.clone(),
        canary: args.canary.clone(),
        window: args.timing.window,
        step: args.timing.step,
        rate_window: args.timing.rate_window,
        traffic: args.traffic.traffic(),
        judge: args.judge.config().map_err(|e| UsageError(e.to_string()))?,
        timeout: args.timeout,
    };
    let plan = Plan::new(&args.service, file, &origin, options)?;
    plan.check_inputs(&selection)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| UsageError(format!("cannot start the async runtime: {e}")))?;
    let client = plan.client()?;
    Ok(runtime.block_on(checklist::run(&plan, &selection, &client, None)))
}
