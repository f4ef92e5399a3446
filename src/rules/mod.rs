//! Prometheus-format alerting and recording rules: PromQL evaluation, rule groups, alert
//! state, notification and the promtool-compatible `rules check` / `rules test` commands.

pub mod alerting;
pub mod file;
pub mod promql;
pub mod template;
