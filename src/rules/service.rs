//! The rule engine at work in the sidecar: every `sample_interval` it samples the sidecar's own
//! metrics, evaluates the due groups off the async threads and hands alerts to the notifier.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::alerting::AlertState;
use super::engine::RuleEngine;
use super::file::RuleError;
use super::notifier::Notifier;
use crate::telemetry::metrics::{CapturedSample, ExpositionWriter, Kind};

/// Takes one sample round: renders the sidecar's metrics keeping the names the filter wants.
pub type Sampler = Arc<dyn Fn(Box<dyn Fn(&str) -> bool + Send + Sync>) -> Vec<CapturedSample> + Send + Sync>;

pub struct RuleService {
    engine: Mutex<RuleEngine>,
    pub notifier: Arc<Notifier>,
    sample_interval: Duration,
}

pub fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)
}

impl RuleService {
    pub fn new(engine: RuleEngine, notifier: Arc<Notifier>, sample_interval: Duration) -> Arc<RuleService> {
        Arc::new(RuleService { engine: Mutex::new(engine), notifier, sample_interval })
    }

    pub fn engine(&self) -> MutexGuard<'_, RuleEngine> {
        self.engine.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Samples and evaluates until `stop` turns true.
    pub async fn run(self: Arc<Self>, sampler: Sampler, mut stop: tokio::sync::watch::Receiver<bool>) {
        let mut ticks = tokio::time::interval(self.sample_interval);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        loop {
            tokio::select! {
                _ = ticks.tick() => {}
                _ = stop.changed() => return,
            }
            let this = self.clone();
            let sampler = sampler.clone();
            let round = tokio::task::spawn_blocking(move || this.round(&sampler)).await;
            if let Err(e) = round {
                tracing::error!(error = %e, "rule evaluation round panicked");
            }
        }
    }

    /// One round: sample (without holding the engine, whose metrics are sampled too), ingest,
    /// evaluate the due groups, queue the alerts.
    fn round(&self, sampler: &Sampler) {
        let filter = self.engine().filter();
        let samples = sampler(Box::new(move |name| filter.wants_name(name)));
        let t = now_ms();
        let alerts = {
            let mut engine = self.engine();
            engine.ingest(t, samples);
            engine.evaluate_due(t)
        };
        self.notifier.send(&alerts);
    }

    /// Re-reads the rule files (`POST /-/reload`, SIGHUP).
    pub fn reload(&self) -> Result<(), Vec<RuleError>> {
        let result = self.engine().reload(now_ms());
        match &result {
            Ok(()) => tracing::info!("rules reloaded"),
            Err(errors) => {
                for e in errors {
                    tracing::error!(error = %e, "rule reload failed; keeping the previous rules");
                }
            }
        }
        result
    }

    pub fn write_metrics(&self, w: &mut ExpositionWriter) {
        {
            let engine = self.engine();
            let groups: Vec<_> = engine.groups.iter().map(|g| (g.key(), g)).collect();
            type Pick = fn(&super::engine::LoadedGroup) -> Option<f64>;
            let families: [(&str, &str, Kind, Pick); 6] = [
                ("redline_rule_evaluations_total", "Rule evaluations, per rule group.", Kind::Counter, |g| {
                    Some(g.stats.evaluations as f64)
                }),
                ("redline_rule_evaluation_failures_total", "Rule evaluations that failed.", Kind::Counter, |g| {
                    Some(g.stats.failures as f64)
                }),
                (
                    "redline_rule_group_last_duration_seconds",
                    "How long the last evaluation of the group took.",
                    Kind::Gauge,
                    |g| Some(g.stats.last_duration_s),
                ),
                (
                    "redline_rule_group_last_evaluation_timestamp_seconds",
                    "When the group was last evaluated.",
                    Kind::Gauge,
                    |g| g.stats.last_evaluation_ms.map(|t| t as f64 / 1000.0),
                ),
                ("redline_rule_group_interval_seconds", "The evaluation interval of the group.", Kind::Gauge, |g| {
                    Some(g.interval_ms as f64 / 1000.0)
                }),
                ("redline_rule_group_rules", "Rules in the group.", Kind::Gauge, |g| {
                    Some(g.state.group.rules.len() as f64)
                }),
            ];
            for (name, help, kind, pick) in families {
                w.family(name, help, kind);
                for (key, g) in &groups {
                    if let Some(v) = pick(g) {
                        w.sample(&[("rule_group", key)], v);
                    }
                }
            }
            w.family("redline_alerts", "Active alerts by name and state.", Kind::Gauge);
            for ((name, state), n) in engine.alert_counts() {
                if state != AlertState::Inactive {
                    w.sample(&[("alertname", &name), ("alertstate", state.as_str())], n as f64);
                }
            }
            w.family(
                "redline_rules_last_reload_successful",
                "Whether the last rule reload succeeded (0: the previous rules are still running).",
                Kind::Gauge,
            );
            w.sample(&[], if engine.reload.successful { 1.0 } else { 0.0 });
            w.family(
                "redline_rules_last_reload_success_timestamp_seconds",
                "When the rules were last loaded successfully.",
                Kind::Gauge,
            );
            w.sample(&[], engine.reload.last_success_ms as f64 / 1000.0);
            let (series, samples) = engine.store.size();
            w.family("redline_rule_store_series", "Series held in memory for rule evaluation.", Kind::Gauge);
            w.sample(&[], series as f64);
            w.family("redline_rule_store_samples", "Samples held in memory for rule evaluation.", Kind::Gauge);
            w.sample(&[], samples as f64);
        }
        self.notifier.write_metrics(w);
    }
}
