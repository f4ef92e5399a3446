//! The command line: one subcommand per job, each with its flags (and `REDLINE_*` env).

use clap::{Parser, Subcommand};

use crate::config::Overrides;

#[derive(Debug, Parser)]
#[command(name = "redline", version, about = "Observability and alerting sidecar", propagate_version = true)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Reverse proxy with RED/USE metrics, JSON access logs and trace context.
    Sidecar(Box<SidecarArgs>),
    /// Prometheus rule files: check them, or run their unit tests (promtool's formats).
    #[command(subcommand)]
    Rules(RulesCommand),
}

#[derive(Debug, Subcommand)]
pub enum RulesCommand {
    /// Validate rule files; every problem is printed with file:line, group and rule (exit 1).
    Check {
        #[arg(required = true)]
        files: Vec<std::path::PathBuf>,
    },
    /// Run rule unit-test files in promtool's format (exit 1 on any failure).
    Test {
        #[arg(required = true)]
        files: Vec<std::path::PathBuf>,
    },
}

#[derive(Debug, clap::Args)]
pub struct SidecarArgs {
    #[command(flatten)]
    pub config: Overrides,
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_command_line_definition_is_consistent() {
        use clap::CommandFactory;
        super::Cli::command().debug_assert();
    }
}
