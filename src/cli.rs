//! The command line: one subcommand per job. Each job's module owns its flags
//! (`<job>::command::Args`, with their `REDLINE_*` variables) and its entry point
//! (`<job>::command::run(args: Args) -> errors::Outcome`); this module only composes them.

use clap::{Parser, Subcommand};

use crate::errors::Outcome;
use crate::{canary, dashboards, demo, readiness, receiver, rules, sidecar};

#[derive(Debug, Parser)]
#[command(name = "redline", version, about = "Observability and alerting sidecar", propagate_version = true)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Reverse proxy with RED/USE metrics, JSON access logs and trace context.
    Sidecar(Box<sidecar::command::Args>),
    /// The whole flow on an embedded default: demo service, sidecar, load, a fault, the alert
    /// firing and resolving on a receiver.
    Demo(demo::command::Args),
    /// Prometheus rule files: check them, or run their unit tests (promtool's formats).
    #[command(subcommand)]
    Rules(rules::command::Args),
    /// Canary analysis: judge a canary version against its baseline from Prometheus.
    #[command(subcommand)]
    Canary(canary::command::Args),
    /// Alertmanager webhook receiver: stores every notification durably and answers promotion gates.
    Receiver(Box<receiver::command::Args>),
    /// Alerts stored by a running receiver.
    #[command(subcommand)]
    Alerts(receiver::client::Args),
    /// Production-readiness checklist of a service (exit 0 ready, 1 not ready, 2 usage/config error).
    ReadinessCheck(Box<readiness::command::Args>),
    /// Grafana dashboards (RED, USE, SLO, alerts) from the metric names the sidecar exports.
    #[command(subcommand)]
    Dashboards(dashboards::command::Args),
}

impl Command {
    /// Runs the job the command names.
    pub fn run(self) -> Outcome {
        match self {
            Command::Sidecar(args) => sidecar::command::run(*args),
            Command::Demo(args) => demo::command::run(args),
            Command::Rules(args) => rules::command::run(args),
            Command::Canary(args) => canary::command::run(args),
            Command::Receiver(args) => receiver::command::run(*args),
            Command::Alerts(args) => receiver::client::run(args),
            Command::ReadinessCheck(args) => readiness::command::run(*args),
            Command::Dashboards(args) => dashboards::command::run(args),
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_command_line_definition_is_consistent() {
        use clap::CommandFactory;
        super::Cli::command().debug_assert();
    }

    /// `--protocol` and `--rpc-method` reach the canary judge from both commands; HTTP by default.
    #[test]
    fn the_canary_traffic_flags_parse_in_the_judge_and_the_readiness_check() {
        use clap::Parser;

        use crate::canary::prometheus::Traffic;
        let judge = ["redline", "canary", "judge", "--prometheus", "http://p:9090", "--service", "s"];
        let judge = |extra: &[&str]| {
            let cli = super::Cli::try_parse_from(
                judge.iter().chain(["--baseline", "a", "--canary", "b"].iter()).chain(extra),
            )
            .expect("parses");
            match cli.command {
                super::Command::Canary(crate::canary::command::Args::Judge(a)) => a.traffic.traffic(),
                other => panic!("{other:?}"),
            }
        };
        assert_eq!(judge(&[]), Traffic::http());
        assert_eq!(judge(&["--protocol", "grpc"]), Traffic::grpc(None));
        assert_eq!(judge(&["--protocol", "grpc", "--rpc-method", "shop.Cart/.*"]), Traffic::grpc(Some("shop.Cart/.*")));
        let cli = super::Cli::try_parse_from([
            "redline",
            "readiness-check",
            "--service",
            "s",
            "--baseline",
            "a",
            "--canary",
            "b",
            "--protocol",
            "grpc",
        ])
        .expect("parses");
        match cli.command {
            super::Command::ReadinessCheck(a) => assert_eq!(a.traffic.traffic(), Traffic::grpc(None)),
            other => panic!("{other:?}"),
        }
        assert!(super::Cli::try_parse_from(["redline", "canary", "judge", "--protocol", "thrift"]).is_err());
    }
}
