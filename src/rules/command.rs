//! The `redline rules check` and `redline rules test` commands, twins of promtool's: same
//! inputs, same verdicts, exit code 1 on any problem.

use std::io::Write;
use std::path::PathBuf;

use super::file::{self, Checks};
use super::{promql, template, unittest};
use crate::errors::{Outcome, Verdict};

/// `redline rules`: Prometheus rule files: check them, or run their unit tests (promtool's formats).
#[derive(Debug, clap::Subcommand)]
pub enum Args {
    /// Validate rule files; every problem is printed with file:line, group and rule (exit 1).
    Check {
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// Run rule unit-test files in promtool's format (exit 1 on any failure).
    Test {
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
}

/// Runs `redline rules check` or `redline rules test`, printing the report on stdout.
pub fn run(args: Args) -> Outcome {
    let out = &mut std::io::stdout();
    Ok(match args {
        Args::Check { files } => check(&files, out),
        Args::Test { files } => test(&files, out),
    })
}

/// Validates rule files, printing every problem with file:line, group and rule.
pub fn check(files: &[PathBuf], out: &mut dyn Write) -> Verdict {
    let checks = Checks { expr: &promql::check, template: &template::check };
    let mut failed = false;
    for f in files {
        let _ = writeln!(out, "Checking {}", f.display());
        match file::load(f, &checks) {
            Ok(groups) => {
                let rules: usize = groups.iter().map(|g| g.rules.len()).sum();
                let _ = writeln!(out, "  SUCCESS: {rules} rules found");
            }
            Err(errors) => {
                failed = true;
                let _ = writeln!(out, "  FAILED:");
                for e in errors {
                    let _ = writeln!(out, "{e}");
                }
            }
        }
        let _ = writeln!(out);
    }
    Verdict::of(!failed)
}

/// Runs promtool-format unit-test files.
pub fn test(files: &[PathBuf], out: &mut dyn Write) -> Verdict {
    let mut failed = false;
    for f in files {
        let report = unittest::run_file(f);
        failed |= !report.passed();
        let _ = writeln!(out, "{}", report.render());
    }
    Verdict::of(!failed)
}
