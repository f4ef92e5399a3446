//! Prometheus-format alerting and recording rules: PromQL evaluation, rule groups, alert
//! state, notification and the promtool-compatible `rules check` / `rules test` commands.

pub mod alerting;
pub mod api;
pub mod command;
pub mod engine;
pub mod file;
pub mod group;
pub mod notifier;
pub mod promql;
pub mod service;
pub mod store;
pub mod template;
pub mod unittest;
