//! The `redline rules check` and `redline rules test` commands, twins of promtool's: same
//! inputs, same verdicts, exit code 1 on any problem.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use super::file::{self, Checks};
use super::{promql, template, unittest};

/// Validates rule files, printing every problem with file:line, group and rule.
pub fn check(files: &[PathBuf], out: &mut dyn Write) -> ExitCode {
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
    if failed { ExitCode::from(1) } else { ExitCode::SUCCESS }
}

/// Runs promtool-format unit-test files.
pub fn test(files: &[PathBuf], out: &mut dyn Write) -> ExitCode {
    let mut failed = false;
    for f in files {
        let report = unittest::run_file(f);
        failed |= !report.passed();
        let _ = writeln!(out, "{}", report.render());
    }
    if failed { ExitCode::from(1) } else { ExitCode::SUCCESS }
}
