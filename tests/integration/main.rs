//! The integration tests, one binary: each module drives the real `redline` binary (and the
//! real peers it talks to) over sockets; `common` is the harness they share.

mod common;

mod alerting;
mod canary_cli;
mod canary_stats;
mod coverage_fixtures;
mod coverage_tools;
mod dashboards;
mod data_path;
mod demo;
mod deploy;
mod docs;
mod errors;
mod grpc_proxy;
mod module_graph;
mod pipeline;
mod promql_conformance;
mod readiness_check;
mod readiness_deploy;
mod readiness_peers;
mod readiness_prometheus;
mod receiver_alertmanager;
mod receiver_api;
mod receiver_durability;
mod receiver_refresh;
mod receiver_ui;
mod rules_cli;
mod sidecar_proxy;
mod slo;
mod trace_headers;
mod tracing;
mod upgrades;
mod upstream_wire;
