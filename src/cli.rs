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
    Sidecar(SidecarArgs),
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
