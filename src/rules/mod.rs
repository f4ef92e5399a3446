//! Prometheus-format alerting and recording rules: PromQL evaluation, rule groups, alert
//! state, notification and the promtool-compatible `rules check` / `rules test` commands.

pub mod alerting;
pub mod commands;
pub mod file;
pub mod group;
pub mod promql;
pub mod template;
pub mod unittest;
