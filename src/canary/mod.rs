//! Canary analysis: judging a canary against its baseline from metric samples, Kayenta-style.
//! `stats` holds the Mann-Whitney U test; `judge` classifies metrics and scores the canary.

pub mod judge;
pub mod stats;

pub use judge::{
    Classification, Direction, JudgeConfig, JudgeConfigError, JudgeReport, MetricResult, MetricSamples, MetricSpec,
    Verdict, judge,
};
