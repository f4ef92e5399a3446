//! `redline dashboards generate`: writes the dashboards, or checks the written ones.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::Context as _;

use super::{files, stale};
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
    },
}

/// Runs `redline dashboards generate`.
pub fn run(args: Args) -> Outcome {
    let Args::Generate { out, check } = args;
    generate(&out, check, &mut std::io::stdout(), &mut std::io::stderr())
}

/// `redline dashboards generate --out DIR [--check]`: writes the dashboards, or with `check`
/// only compares them (exit 1 naming every file that differs or is missing).
pub fn generate(out_dir: &Path, check: bool, stdout: &mut dyn Write, stderr: &mut dyn Write) -> Outcome {
    if check {
        let stale = stale(out_dir);
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
