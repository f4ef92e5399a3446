//! `redline dashboards generate`: writes the dashboards, or checks the written ones.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::Context as _;

use super::{SloView, files_for, stale_for};
use crate::errors::{CommandError, Outcome, Verdict};

#[derive(Debug, clap::Subcommand)]
pub enum Args {
    /// Write one JSON file per dashboard into --out; with --check only compare (exit 1 naming
    /// every file that differs or is missing).
    Generate {
        /// Directory of the dashboard files.
        #[arg(long, default_value = "dashboards")]
        out: PathBuf,
        /// Write nothing; exit 1 unless the files under --out equal the generated ones.
        #[arg(long)]
        check: bool,
        /// The sidecar's config file: the SLO panels draw its `slo` objective (targets, latency
        /// threshold, period); without it, the default configuration's.
        #[arg(long)]
        config: Option<PathBuf>,
    },
}

/// Runs `redline dashboards generate`.
pub fn run(args: Args) -> Outcome {
    let Args::Generate { out, check, config } = args;
    let objective = match config {
        Some(path) => SloView::of(&crate::config::slo_of_file(&path).map_err(CommandError::refused)?.0),
        None => SloView::default_config(),
    };
    generate(&out, check, &objective, &mut std::io::stdout(), &mut std::io::stderr())
}

/// `redline dashboards generate --out DIR [--check]`: writes the dashboards, or with `check`
/// only compares them (exit 1 naming every file that differs or is missing).
pub fn generate(
    out_dir: &Path,
    check: bool,
    objective: &SloView,
    stdout: &mut dyn Write,
    stderr: &mut dyn Write,
) -> Outcome {
    let files = || files_for(objective);
    if check {
        let stale = stale_for(out_dir, objective);
        if stale.is_empty() {
            let _ = writeln!(stdout, "{}: all {} dashboards are up to date", out_dir.display(), files().len());
            return Ok(Verdict::Pass);
        }
        for line in &stale {
            let _ = writeln!(stderr, "{line}");
        }
        let _ = writeln!(
            stderr,
            "{} of {} dashboards are not what `redline dashboards generate --out {}` writes; run it to update them",
            stale.len(),
            files().len(),
            out_dir.display()
        );
        return Ok(Verdict::Fail);
    }
    std::fs::create_dir_all(out_dir)
        .with_context(|| format!("cannot create {}", out_dir.display()))
        .map_err(CommandError::Failed)?;
    for (name, text) in files() {
        let path = out_dir.join(name);
        std::fs::write(&path, text)
            .with_context(|| format!("cannot write {}", path.display()))
            .map_err(CommandError::Failed)?;
        let _ = writeln!(stdout, "wrote {}", path.display());
    }
    Ok(Verdict::Pass)
}
