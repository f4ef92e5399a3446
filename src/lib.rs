//! redline: an observability and alerting sidecar, an Alertmanager webhook receiver and a
//! production-readiness check, in one binary. `main.rs` only parses the CLI and dispatches here.

// No unsafe code: the one system call that needed it (kill(2) in the demo) goes through nix's
// safe wrapper.
#![forbid(unsafe_code)]

pub mod admin;
pub mod canary;
pub mod cli;
pub mod config;
pub mod dashboards;
pub mod demo;
pub mod errors;
pub mod grpc;
pub mod proxy;
pub mod readiness;
pub mod receiver;
pub mod rules;
pub mod sidecar;
pub mod slo;
pub mod telemetry;
pub mod tls;
pub mod usage;
pub mod yaml;
