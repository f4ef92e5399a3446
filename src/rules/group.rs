//! One evaluation of a rule group at a time `t`: each rule in order, recording results and
//! ALERTS written back so later rules see them, alert templates applied, disappeared series
//! closed with staleness markers.

use std::collections::{BTreeMap, BTreeSet};

use super::alerting::{Candidate, LabelMap, RuleAlerts};
use super::file::{Group, Rule, RuleKind};
use super::promql::{self, EvalOptions, Labels, STALE_NAN_BITS, Storage, Value};
use super::template::{self, TemplateData};

/// Storage the rules read from and write their results into.
pub trait RuleStorage: Storage {
    fn append(&mut self, labels: Labels, t_ms: i64, value: f64);
}

/// Context shared by every rule of every group.
pub struct EvalContext<'a> {
    pub external_labels: &'a BTreeMap<String, String>,
    pub external_url: &'a str,
    pub options: EvalOptions,
}

/// The outcome of the last evaluation of one rule, for `/api/v1/rules`.
#[derive(Clone, Debug, Default)]
pub struct RuleHealth {
    pub last_error: Option<String>,
    pub last_evaluation_ms: Option<i64>,
    pub evaluation_seconds: f64,
}

/// A group with the state its rules carry between evaluations.
pub struct GroupState {
    pub group: Group,
    pub alerts: Vec<RuleAlerts>,
    pub health: Vec<RuleHealth>,
    /// Series each rule wrote last time, so vanished ones get a staleness marker.
    written: Vec<BTreeSet<Labels>>,
}

impl GroupState {
    pub fn new(group: Group) -> Self {
        let n = group.rules.len();
        GroupState {
            group,
            alerts: vec![RuleAlerts::default(); n],
            health: vec![RuleHealth::default(); n],
            written: vec![BTreeSet::new(); n],
        }
    }

    /// Evaluates every rule at `t_ms` in order; a failing rule records its error and the
    /// evaluation goes on with the next rule, as Prometheus does.
    pub fn evaluate(&mut self, storage: &mut dyn RuleStorage, t_ms: i64, ctx: &EvalContext<'_>) {
        for i in 0..self.group.rules.len() {
            let started = std::time::Instant::now();
            let result = self.evaluate_rule(i, storage, t_ms, ctx);
            let h = &mut self.health[i];
            h.last_error = result.err();
            h.last_evaluation_ms = Some(t_ms);
            h.evaluation_seconds = started.elapsed().as_secs_f64();
        }
    }

    fn evaluate_rule(
        &mut self,
        i: usize,
        storage: &mut dyn RuleStorage,
        t_ms: i64,
        ctx: &EvalContext<'_>,
    ) -> Result<(), String> {
        let rule = &self.group.rules[i];
        let samples = match promql::eval_instant(&rule.expr, &*storage, t_ms, &ctx.options)? {
            Value::Vector(v) => v.into_iter().map(|s| (s.labels, s.value)).collect::<Vec<_>>(),
            Value::Scalar(v) => vec![(Labels::default(), v)],
            other => return Err(format!("rule result is not a vector or scalar: {}", value_kind(&other))),
        };
        let out = match rule.kind {
            RuleKind::Recording => record(rule, samples)?,
            RuleKind::Alerting => {
                let candidates = candidates(rule, samples, ctx)?;
                let alerts = &mut self.alerts[i];
                alerts.update(
                    t_ms,
                    rule.for_.as_millis() as i64,
                    rule.keep_firing_for.as_millis() as i64,
                    self.group.limit,
                    candidates,
                )?;
                alerts.series().into_iter().map(|(l, v)| (to_labels(&l), v)).collect()
            }
        };
        if rule.kind == RuleKind::Recording && self.group.limit > 0 && out.len() as u64 > self.group.limit {
            return Err(format!("exceeded limit of {} with {} series", self.group.limit, out.len()));
        }
        let now: BTreeSet<Labels> = out.iter().map(|(l, _)| l.clone()).collect();
        for gone in self.written[i].difference(&now) {
            storage.append(gone.clone(), t_ms, f64::from_bits(STALE_NAN_BITS));
        }
        for (labels, v) in out {
            storage.append(labels, t_ms, v);
        }
        self.written[i] = now;
        Ok(())
    }
}

fn value_kind(v: &Value) -> &'static str {
    match v {
        Value::Scalar(_) => "scalar",
        Value::String(_) => "string",
        Value::Vector(_) => "vector",
        Value::Matrix(_) => "matrix",
    }
}

fn to_labels(m: &LabelMap) -> Labels {
    let mut l: Labels = m.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
    l.sort();
    l
}

fn to_map(l: &Labels) -> LabelMap {
    l.iter().map(|(k, v)| (k.clone(), v.clone())).collect()
}

/// A recording rule's output: the result renamed and relabelled.
fn record(rule: &Rule, samples: Vec<(Labels, f64)>) -> Result<Vec<(Labels, f64)>, String> {
    let mut seen = BTreeSet::new();
    let mut out = Vec::with_capacity(samples.len());
    for (labels, v) in samples {
        let mut m = to_map(&labels);
        m.insert("__name__".into(), rule.name.clone());
        for (k, val) in &rule.labels {
            if val.is_empty() {
                m.remove(k);
            } else {
                m.insert(k.clone(), val.clone());
            }
        }
        let l = to_labels(&m);
        if !seen.insert(l.clone()) {
            return Err("vector contains metrics with the same labelset after applying rule labels".into());
        }
        out.push((l, v));
    }
    Ok(out)
}

/// Spec steps 1 to 3: result labels without `__name__`, templated rule labels, `alertname`.
fn candidates(rule: &Rule, samples: Vec<(Labels, f64)>, ctx: &EvalContext<'_>) -> Result<Vec<Candidate>, String> {
    let mut out = Vec::with_capacity(samples.len());
    for (labels, value) in samples {
        let sample_labels = to_map(&labels);
        let data = TemplateData {
            labels: &sample_labels,
            external_labels: ctx.external_labels,
            external_url: ctx.external_url,
            value,
        };
        let mut alert_labels = sample_labels.clone();
        alert_labels.remove("__name__");
        for (k, v) in &rule.labels {
            let expanded = template::expand(v, &data).map_err(|e| format!("label {k:?}: {e}"))?;
            if expanded.is_empty() {
                alert_labels.remove(k);
            } else {
                alert_labels.insert(k.clone(), expanded);
            }
        }
        alert_labels.insert("alertname".into(), rule.name.clone());
        let mut annotations = LabelMap::new();
        for (k, v) in &rule.annotations {
            // A broken annotation template shows its error, like Prometheus, not the alert failing.
            let expanded = template::expand(v, &data).unwrap_or_else(|e| format!("<error expanding template: {e}>"));
            annotations.insert(k.clone(), expanded);
        }
        out.push(Candidate { labels: alert_labels, annotations, value });
    }
    Ok(out)
}
