//! The tree walk: selectors (lookback, staleness, offsets), subqueries as per-step instant
//! evaluations, and dispatch to the operator modules. Pure: reads only the given storage.

use super::labels::{drop_name, has_duplicates};
use super::{EvalOptions, Labels, METRIC_NAME, Sample, Series, Storage, Value, aggregate, binary, functions, is_stale};
use promql_parser::label::{MatchOp, Matcher, Matchers};
use promql_parser::parser::{Expr, Offset, SubqueryExpr, VectorSelector};
use std::cell::RefCell;
use std::collections::HashMap;
use std::time::Duration;

/// Prometheus's error for a result vector holding two elements with the same labels.
pub(crate) const DUPLICATE_LABELSET: &str = "vector cannot contain metrics with the same labelset";

/// A duration in whole milliseconds, as Prometheus's `durationMilliseconds` truncates it.
pub(crate) fn duration_ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// Go's `time.Duration.Seconds()`: whole seconds plus the nanosecond remainder / 1e9.
pub(crate) fn duration_secs(d: Duration) -> f64 {
    d.as_secs() as f64 + f64::from(d.subsec_nanos()) / 1e9
}

/// The signed offset in milliseconds (negative offsets read ahead of the evaluation time).
pub(crate) fn offset_ms(o: &Option<Offset>) -> i64 {
    match o {
        None => 0,
        Some(Offset::Pos(d)) => duration_ms(*d),
        Some(Offset::Neg(d)) => -duration_ms(*d),
    }
}

/// Removes any number of enclosing parentheses, as Prometheus's `unwrapParenExpr`.
pub(crate) fn unwrap_parens(mut e: &Expr) -> &Expr {
    while let Expr::Paren(p) = e {
        e = &p.expr;
    }
    e
}

/// The selector's matchers including the metric name, which the parser keeps apart.
pub(crate) fn selector_matchers(vs: &VectorSelector) -> Matchers {
    let mut m = vs.matchers.clone();
    if let Some(name) = &vs.name {
        let name_matcher = Matcher::new(MatchOp::Equal, METRIC_NAME, name);
        m.matchers.insert(0, name_matcher.clone());
        for group in &mut m.or_matchers {
            group.insert(0, name_matcher.clone());
        }
    }
    m
}

/// A stable identity for a selector's matchers, for the prefetch cache.
fn selector_key(vs: &VectorSelector) -> String {
    let m = selector_matchers(vs);
    let fmt_group =
        |g: &[Matcher]| g.iter().map(|m| format!("{}\u{1}{}\u{1}{}", m.name, m.op, m.value)).collect::<Vec<_>>();
    let mut groups = vec![fmt_group(&m.matchers).join("\u{2}")];
    groups.extend(m.or_matchers.iter().map(|g| fmt_group(g).join("\u{2}")));
    groups.join("\u{3}")
}

/// Series fetched once for a whole subquery, answering the per-step selects of its steps.
struct Prefetched {
    start: i64,
    end: i64,
    series: Vec<Series>,
}

pub(crate) struct Evaluator<'a> {
    storage: &'a dyn Storage,
    pub(crate) opts: EvalOptions,
    cache: RefCell<HashMap<String, Vec<Prefetched>>>,
}

impl<'a> Evaluator<'a> {
    pub(crate) fn new(storage: &'a dyn Storage, opts: EvalOptions) -> Self {
        Evaluator { storage, opts, cache: RefCell::new(HashMap::new()) }
    }

    pub(crate) fn eval(&self, expr: &Expr, t: i64) -> Result<Value, String> {
        match expr {
            Expr::NumberLiteral(n) => Ok(Value::Scalar(n.val)),
            Expr::StringLiteral(s) => Ok(Value::String(s.val.clone())),
            Expr::Paren(p) => self.eval(&p.expr, t),
            Expr::Unary(u) => match self.eval(&u.expr, t)? {
                Value::Scalar(v) => Ok(Value::Scalar(-v)),
                Value::Vector(v) => {
                    let out: Vec<Sample> =
                        v.into_iter().map(|s| Sample { labels: drop_name(&s.labels), value: -s.value }).collect();
                    check_unique(out)
                }
                other => Err(format!("unary minus is not defined for a {}", type_name(&other))),
            },
            Expr::VectorSelector(vs) => Ok(Value::Vector(
                self.instant_selector(vs, t)?.into_iter().map(|(labels, _, value)| Sample { labels, value }).collect(),
            )),
            Expr::MatrixSelector(ms) => Ok(Value::Matrix(self.range_selector(&ms.vs, duration_ms(ms.range), t)?)),
            Expr::Subquery(sq) => Ok(Value::Matrix(self.subquery(sq, t)?)),
            Expr::Aggregate(a) => aggregate::eval(self, a, t),
            Expr::Binary(b) => binary::eval(self, b, t),
            Expr::Call(c) => functions::eval_call(self, c, t),
            Expr::Extension(_) => Err("extension expressions are not supported".to_string()),
        }
    }

    /// Evaluates an expression that must produce an instant vector.
    pub(crate) fn eval_vector(&self, expr: &Expr, t: i64) -> Result<Vec<Sample>, String> {
        match self.eval(expr, t)? {
            Value::Vector(v) => Ok(v),
            other => Err(format!("expected an instant vector, got a {}", type_name(&other))),
        }
    }

    /// Evaluates an expression that must produce a scalar.
    pub(crate) fn eval_scalar(&self, expr: &Expr, t: i64) -> Result<f64, String> {
        match self.eval(expr, t)? {
            Value::Scalar(v) => Ok(v),
            other => Err(format!("expected a scalar, got a {}", type_name(&other))),
        }
    }

    /// The latest sample of each matching series in [t - offset - lookback, t - offset], unless
    /// that sample is a staleness marker. Returns (labels, sample timestamp, value).
    pub(crate) fn instant_selector(&self, vs: &VectorSelector, t: i64) -> Result<Vec<(Labels, i64, f64)>, String> {
        refuse_at(vs)?;
        let ref_t = t - offset_ms(&vs.offset);
        let start = ref_t - self.opts.lookback_ms;
        Ok(self
            .select(vs, start, ref_t)
            .into_iter()
            .filter_map(|s| {
                let &(ts, v) = s.samples.iter().rev().find(|&&(ts, _)| ts <= ref_t)?;
                (ts >= start && !is_stale(v)).then_some((s.labels, ts, v))
            })
            .collect())
    }

    /// The samples of each matching series in the closed window [t - offset - range, t - offset],
    /// staleness markers removed; series left without samples are dropped.
    pub(crate) fn range_selector(&self, vs: &VectorSelector, range_ms: i64, t: i64) -> Result<Vec<Series>, String> {
        refuse_at(vs)?;
        let end = t - offset_ms(&vs.offset);
        let start = end - range_ms;
        Ok(self
            .select(vs, start, end)
            .into_iter()
            .filter_map(|mut s| {
                s.samples.retain(|&(ts, v)| ts >= start && ts <= end && !is_stale(v));
                (!s.samples.is_empty()).then_some(s)
            })
            .collect())
    }

    /// Evaluates the inner expression at every step aligned to absolute multiples of the step in
    /// [t - offset - range, t - offset] (both ends inclusive) and collects the results per label
    /// set. Equivalent to Prometheus's range evaluation of the inner expression.
    pub(crate) fn subquery(&self, sq: &SubqueryExpr, t: i64) -> Result<Vec<Series>, String> {
        if sq.at.is_some() {
            return Err("the @ modifier is not supported".to_string());
        }
        let step = match sq.step.map(duration_ms) {
            Some(s) if s > 0 => s,
            _ => self.opts.interval_ms,
        };
        if step <= 0 {
            return Err("subquery step must be positive".to_string());
        }
        let end = t - offset_ms(&sq.offset);
        let lower = end - duration_ms(sq.range);
        // Go's integer division truncates towards zero; adding a step when it fell below the
        // bound makes this a ceiling for both signs.
        let mut start = step * (lower / step);
        if start < lower {
            start += step;
        }
        self.prefetch(&sq.expr, start, end);

        let mut series: Vec<Series> = Vec::new();
        let mut index: HashMap<Labels, usize> = HashMap::new();
        let mut ts = start;
        while ts <= end {
            for s in self.eval_vector(&sq.expr, ts)? {
                let i = *index.entry(s.labels.clone()).or_insert_with(|| {
                    series.push(Series { labels: s.labels, samples: Vec::new() });
                    series.len() - 1
                });
                series[i].samples.push((ts, s.value));
            }
            ts += step;
        }
        Ok(series)
    }

    /// Fetches, once, what every selector inside `expr` will read when `expr` is evaluated at
    /// each step in [start, end], so the per-step selects are answered from memory.
    fn prefetch(&self, expr: &Expr, start: i64, end: i64) {
        let mut wanted: Vec<(&VectorSelector, i64, i64)> = Vec::new();
        collect_windows(expr, start, end, self.opts, &mut wanted);
        for (vs, s, e) in wanted {
            let key = selector_key(vs);
            if self.cached(&key, s, e).is_some() {
                continue;
            }
            let series = self.storage.select(&selector_matchers(vs), s, e);
            self.cache.borrow_mut().entry(key).or_default().push(Prefetched { start: s, end: e, series });
        }
    }

    /// The prefetched series for `key` restricted to [start, end], if a prefetch covers it.
    fn cached(&self, key: &str, start: i64, end: i64) -> Option<Vec<Series>> {
        let cache = self.cache.borrow();
        let entry = cache.get(key)?.iter().find(|p| p.start <= start && end <= p.end)?;
        Some(
            entry
                .series
                .iter()
                .filter_map(|s| {
                    let lo = s.samples.partition_point(|&(t, _)| t < start);
                    let hi = s.samples.partition_point(|&(t, _)| t <= end);
                    (lo < hi).then(|| Series { labels: s.labels.clone(), samples: s.samples[lo..hi].to_vec() })
                })
                .collect(),
        )
    }

    fn select(&self, vs: &VectorSelector, start: i64, end: i64) -> Vec<Series> {
        if let Some(hit) = self.cached(&selector_key(vs), start, end) {
            return hit;
        }
        self.storage.select(&selector_matchers(vs), start, end)
    }
}

/// The absolute read window of every selector in `expr` over evaluations at [start, end].
fn collect_windows<'e>(
    expr: &'e Expr,
    start: i64,
    end: i64,
    opts: EvalOptions,
    out: &mut Vec<(&'e VectorSelector, i64, i64)>,
) {
    match expr {
        Expr::VectorSelector(vs) => {
            let off = offset_ms(&vs.offset);
            out.push((vs, start - off - opts.lookback_ms, end - off));
        }
        Expr::MatrixSelector(ms) => {
            let off = offset_ms(&ms.vs.offset);
            out.push((&ms.vs, start - off - duration_ms(ms.range), end - off));
        }
        Expr::Subquery(sq) => {
            let off = offset_ms(&sq.offset);
            collect_windows(&sq.expr, start - off - duration_ms(sq.range), end - off, opts, out);
        }
        Expr::Paren(p) => collect_windows(&p.expr, start, end, opts, out),
        Expr::Unary(u) => collect_windows(&u.expr, start, end, opts, out),
        Expr::Binary(b) => {
            collect_windows(&b.lhs, start, end, opts, out);
            collect_windows(&b.rhs, start, end, opts, out);
        }
        Expr::Aggregate(a) => {
            if let Some(p) = &a.param {
                collect_windows(p, start, end, opts, out);
            }
            collect_windows(&a.expr, start, end, opts, out);
        }
        Expr::Call(c) => {
            for a in &c.args.args {
                collect_windows(a, start, end, opts, out);
            }
        }
        Expr::NumberLiteral(_) | Expr::StringLiteral(_) | Expr::Extension(_) => {}
    }
}

fn refuse_at(vs: &VectorSelector) -> Result<(), String> {
    if vs.at.is_some() { Err("the @ modifier is not supported".to_string()) } else { Ok(()) }
}

/// Fails like Prometheus when two result elements share a label set.
pub(crate) fn check_unique(v: Vec<Sample>) -> Result<Value, String> {
    if has_duplicates(v.iter().map(|s| &s.labels)) {
        return Err(DUPLICATE_LABELSET.to_string());
    }
    Ok(Value::Vector(v))
}

pub(crate) fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Scalar(_) => "scalar",
        Value::String(_) => "string",
        Value::Vector(_) => "instant vector",
        Value::Matrix(_) => "range vector",
    }
}
