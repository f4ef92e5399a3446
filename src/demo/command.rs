//! `redline demo`: its flags, and the runtime the demo runs on.

use anyhow::Context as _;

use super::run::{DemoSettings, parse_duration};
use crate::errors::{CommandError, Outcome, Verdict};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// How long the demo runs (at least 60s; the fault starts at 20% and stops at 50% of it).
    #[arg(long, default_value = "90s", value_parser = parse_duration)]
    pub duration: std::time::Duration,
    /// Keep the sidecar log, the demo rules and the receiver database in this directory.
    #[arg(long)]
    pub keep_dir: Option<std::path::PathBuf>,
}

/// Runs `redline demo`: passes when the alert fired and resolved and the readiness checks
/// passed, a negative verdict when not; refused (exit 2) when the demo could not run (a
/// process did not start, a file could not be written).
pub fn run(args: Args) -> Outcome {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let settings = DemoSettings { duration: args.duration, keep_dir: args.keep_dir };
    runtime.block_on(super::run::run(settings)).map(Verdict::of).map_err(CommandError::Refused)
}
