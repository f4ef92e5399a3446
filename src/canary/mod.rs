//! Canary analysis: judging a canary against its baseline from metric samples, Kayenta-style.
//! `stats` and `judge` are pure; `prometheus` fetches samples, `command` is `redline canary judge`.

pub mod command;
pub mod judge;
pub mod prometheus;
pub mod stats;

pub use judge::{
    Classification, Direction, JudgeConfig, JudgeConfigError, JudgeReport, MetricResult, MetricSamples, MetricSpec,
    Verdict, judge,
};
