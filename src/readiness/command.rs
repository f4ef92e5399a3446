//! `redline readiness-check`: turns the command line into a checklist [`Plan`], runs it and
//! prints the report. Exit 0 ready, 1 not ready, 2 usage/config error.

use std::io::{IsTerminal, Write};
use std::process::ExitCode;

use crate::cli::ReadinessCheckArgs;
use crate::config::FileConfig;
use crate::readiness::checklist::{self, Options, Plan, Selection, UsageError};
use crate::readiness::render::{Format, render};
use crate::readiness::report::Report;

pub fn main(args: ReadinessCheckArgs) -> ExitCode {
    match run(&args) {
        Ok(report) => {
            let colour = args.format == Format::Table
                && std::io::stdout().is_terminal()
                && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
            let text = render(&report, args.format, colour);
            let mut out = std::io::stdout().lock();
            if out.write_all(text.as_bytes()).and_then(|()| out.flush()).is_err() {
                return ExitCode::from(2);
            }
            if report.ready { ExitCode::SUCCESS } else { ExitCode::from(1) }
        }
        Err(e) => {
            eprintln!("redline readiness-check: {e}");
            ExitCode::from(2)
        }
    }
}

pub fn run(args: &ReadinessCheckArgs) -> Result<Report, UsageError> {
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
