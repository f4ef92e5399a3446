//! Entry point: parse the command line, run the job it names, and turn the outcome into the
//! exit code (0 success, 1 a negative verdict, 2 a usage, configuration, bind or start failure).

#![forbid(unsafe_code)]

use std::process::ExitCode;

use clap::{CommandFactory, FromArgMatches};
use redline::cli::Cli;
use redline::errors;

/// mimalloc rather than glibc's malloc: the proxy allocates and frees a few blocks per request
/// (header maps, read buffers, boxed futures), and glibc spent about 1,500 instructions per
/// request on them where mimalloc's thread-local free lists spend a fraction (measured with
/// `scripts/bench-proxy-instructions.sh`; docs/benchmarks.md has the figures).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    // mimalloc reserves its arenas 1 GiB at a time, committed up front; where transparent huge
    // pages are `always` (many distributions' default), every first touch in them faults in a
    // 2 MiB page, and an idle sidecar's RSS doubled (23 MiB against 12.7 MiB without THP,
    // `scripts/bench-proxy-cpu.sh`). A sidecar's heap is small and short-lived, so huge pages
    // buy it nothing: turn them off for this process (the kernel checks the flag at each fault,
    // so the arena reserved before `main` is covered too). A kernel without the flag is fine.
    #[cfg(target_os = "linux")]
    let _ = nix::sys::prctl::set_thp_disable(true);
    let matches = Cli::command().get_matches();
    let cli = Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
    let outcome = cli.command.run();
    if let Err(e) = &outcome {
        // One line per error, prefixed once with the command: `redline canary judge: ...`.
        eprintln!("redline {}: {:#}", command_path(&matches), e.error());
    }
    ExitCode::from(errors::exit_code(&outcome))
}

/// The subcommands given, e.g. `alerts list`.
fn command_path(matches: &clap::ArgMatches) -> String {
    let mut names = Vec::new();
    let mut m = matches;
    while let Some((name, sub)) = m.subcommand() {
        names.push(name);
        m = sub;
    }
    names.join(" ")
}
