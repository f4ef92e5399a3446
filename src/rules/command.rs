//! The `redline rules check` and `redline rules test` commands, twins of promtool's: same
//! inputs, same verdicts, exit code 1 on any problem; and `redline rules slo`, which prints the
//! SLO rules a sidecar configuration generates ([`crate::slo`]).

use std::io::Write;
use std::path::{Path, PathBuf};

use super::file::{self, Checks};
use super::{promql, template, unittest};
use crate::errors::{CommandError, Outcome, Verdict};

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
    /// Print the SLO rules the sidecar generates from a config file's `slo` section, for a
    /// central Prometheus (a rule file) or the prometheus-operator (a PrometheusRule).
    Slo {
        /// The sidecar's config file (YAML); its `slo` section and `duration_buckets` are read.
        #[arg(long)]
        config: PathBuf,
        /// `rules`: a Prometheus rule file; `prometheusrule`: a PrometheusRule custom resource.
        #[arg(long, value_enum, default_value = "rules")]
        format: SloFormat,
        /// metadata.name of the PrometheusRule.
        #[arg(long, default_value = "redline-slo")]
        name: String,
        /// metadata.namespace of the PrometheusRule.
        #[arg(long, default_value = "monitoring")]
        namespace: String,
    },
}

/// What `redline rules slo` prints.
#[derive(Clone, Copy, Debug, clap::ValueEnum)]
pub enum SloFormat {
    Rules,
    Prometheusrule,
}

/// Runs `redline rules check` or `redline rules test`, printing the report on stdout.
pub fn run(args: Args) -> Outcome {
    let out = &mut std::io::stdout();
    Ok(match args {
        Args::Check { files } => check(&files, out),
        Args::Test { files } => test(&files, out),
        Args::Slo { config, format, name, namespace } => {
            let text = slo_rules(&config, format, &name, &namespace).map_err(CommandError::refused_msg)?;
            out.write_all(text.as_bytes()).map_err(|e| CommandError::refused_msg(format!("cannot write: {e}")))?;
            Verdict::Pass
        }
    })
}

/// The SLO rules of the config file at `path`, in `format`; errors name the file and key.
pub fn slo_rules(path: &Path, format: SloFormat, name: &str, namespace: &str) -> Result<String, String> {
    let (slo, buckets) = crate::config::slo_of_file(path).map_err(|e| e.to_string())?;
    let slos = slo.slos();
    match format {
        SloFormat::Rules => crate::slo::rule_file(&slos, &buckets),
        SloFormat::Prometheusrule => crate::slo::prometheus_rule(&slos, &buckets, name, namespace),
    }
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
