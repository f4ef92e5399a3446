//! `redline sidecar`: its flags (every config key, [`Overrides`]), loading the configuration
//! and the runtime the sidecar's admin port, signals and span export run on.

use anyhow::Context as _;

use crate::config::{self, OtelEnv, Overrides};
use crate::errors::{CommandError, Outcome, Verdict};

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub config: Overrides,
}

/// Runs `redline sidecar` until SIGTERM or SIGINT, then drains. The sidecar has no verdict:
/// its errors are configuration and start failures (a port in use, rule files), exit 2.
pub fn run(args: Args) -> Outcome {
    let config = config::load(&args.config, &OtelEnv::from_process_env())
        .map_err(|e| CommandError::refused_msg(format_args!("invalid configuration: {e}")))?;
    // The proxy runs its own worker threads; this runtime only serves the admin port,
    // signals and span export, so one thread keeps it off the proxy's cores.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(super::serve(config))?;
    Ok(Verdict::Pass)
}
