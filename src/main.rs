//! Entry point: parse the command line and dispatch to the job it names.

use std::process::ExitCode;

use clap::Parser;
use redline::cli::{Cli, Command, DashboardsCommand, RulesCommand};
use redline::config::{self, OtelEnv};

/// mimalloc rather than glibc's malloc: the proxy allocates and frees a few blocks per request
/// (header maps, read buffers, boxed futures), and glibc spent about 1,500 instructions per
/// request on them where mimalloc's thread-local free lists spend a fraction (measured with
/// `scripts/bench-proxy-instructions.sh`; docs/benchmarks.md has the figures).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Rules(RulesCommand::Check { files }) => {
            redline::rules::commands::check(&files, &mut std::io::stdout())
        }
        Command::Rules(RulesCommand::Test { files }) => redline::rules::commands::test(&files, &mut std::io::stdout()),
        Command::Canary(redline::cli::CanaryCommand::Judge(args)) => {
            redline::canary::command::judge_command(&args, &mut std::io::stdout())
        }
        Command::Receiver(args) => redline::receiver::main(*args),
        Command::ReadinessCheck(args) => redline::readiness::command::main(*args),
        Command::Alerts(redline::cli::AlertsCommand::List(args)) => {
            redline::receiver::client::list(args, &mut std::io::stdout())
        }
        Command::Demo(args) => demo(args),
        Command::Dashboards(DashboardsCommand::Generate { out, check }) => {
            redline::dashboards::generate_command(&out, check, &mut std::io::stdout(), &mut std::io::stderr())
        }
        Command::Sidecar(args) => {
            let config = match config::load(&args.config, &OtelEnv::from_process_env()) {
                Ok(c) => c,
                Err(e) => {
                    eprintln!("redline: invalid configuration: {e}");
                    return ExitCode::from(2);
                }
            };
            // The proxy runs its own worker threads; this runtime only serves the admin port,
            // signals and span export, so one thread keeps it off the proxy's cores.
            let runtime = match tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build() {
                Ok(rt) => rt,
                Err(e) => {
                    eprintln!("redline: cannot start the async runtime: {e}");
                    return ExitCode::from(2);
                }
            };
            // The sidecar has no verdict: its errors are start failures (a port in use, rule
            // files), exit 2.
            match runtime.block_on(redline::sidecar::run(config)) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("redline: {e:#}");
                    ExitCode::from(2)
                }
            }
        }
    }
}

fn demo(args: redline::cli::DemoArgs) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("redline demo: cannot start the async runtime: {e}");
            return ExitCode::from(2);
        }
    };
    let settings = redline::demo::run::DemoSettings { duration: args.duration, keep_dir: args.keep_dir };
    match runtime.block_on(redline::demo::run::run(settings)) {
        Ok(true) => ExitCode::SUCCESS,
        // The verdict: the alert did not fire and resolve, or a readiness check failed.
        Ok(false) => ExitCode::from(1),
        // The demo could not run (a process did not start, a file could not be written).
        Err(e) => {
            eprintln!("redline demo: {e:#}");
            ExitCode::from(2)
        }
    }
}
