//! The tree walk: selectors (lookback, staleness, offsets, `@`), subqueries as per-step instant
//! evaluations, and dispatch to the operator modules. Pure: reads only the given storage.
//!
//! `@` follows Prometheus 2.42 to its corners: each selector sees only the samples 2.42 fetches
//! for it before evaluating (`getTimeRangesForSelector`), and inside a subquery the range
//! argument of a call 2.42 cannot evaluate once (`predict_linear`, or a per-step parameter)
//! reads its `@` window shifted by the step's distance from the subquery's first step, as
//! 2.42's `@`-as-offset rewrite does. Neither costs anything for expressions without `@`.

use super::labels::{drop_name, has_duplicates};
use super::{
    EvalOptions, Labels, METRIC_NAME, Sample, Series, Storage, Value, aggregate, binary, functions, gomath, is_stale,
};
use foldhash::{HashMap, HashMapExt};
use promql_parser::label::{MatchOp, Matcher, Matchers};
use promql_parser::parser::token::{T_EQL_REGEX, T_NEQ_REGEX};
use promql_parser::parser::{AtModifier, Call, Expr, Offset, SubqueryExpr, VectorSelector};
use std::cell::{Cell, RefCell};
use std::time::Duration;

/// Prometheus's error for a result vector holding two elements with the same labels.
pub(crate) const DUPLICATE_LABELSET: &str = "vector cannot contain metrics with the same labelset";

/// What [`Evaluator::visit_range`] lends each series to: its stored labels, its samples, and
/// whether the storage knows no sample is below the one before it (no counter reset).
pub(crate) type SeriesVisitor<'a, 'f> = dyn FnMut(&'a Labels, &[(i64, f64)], bool) + 'f;

/// Upper bound on the steps of one subquery evaluation (a day at 100ms steps is under it).
const MAX_SUBQUERY_STEPS: i64 = 1_000_000;

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

/// The `@` timestamp in milliseconds: `start()` and `end()` are the query's time (a rule's
/// evaluation time, a unit test's `eval_time`); fixed times as Prometheus's
/// `timestamp.FromFloatSeconds`, where a value beyond int64 milliseconds becomes i64::MIN.
pub(crate) fn at_ms(at: &AtModifier, query_ms: i64) -> i64 {
    match at {
        AtModifier::Start | AtModifier::End => query_ms,
        AtModifier::At(st) => match st.duration_since(std::time::UNIX_EPOCH) {
            Ok(d) => i64::try_from(d.as_millis()).unwrap_or(i64::MIN),
            Err(e) => i64::try_from(e.duration().as_millis()).map(|ms| -ms).unwrap_or(i64::MIN),
        },
    }
}

/// The time a selector or subquery reads up to: its `@` time (else the evaluation time `t`)
/// minus its offset.
pub(crate) fn reference_ms(at: &Option<AtModifier>, offset: &Option<Offset>, t: i64, query_ms: i64) -> i64 {
    let base = at.as_ref().map_or(t, |a| at_ms(a, query_ms));
    base.saturating_sub(offset_ms(offset))
}

/// Functions Prometheus 2.42 never evaluates once for all steps (`AtModifierUnsafeFunctions`).
const AT_UNSAFE_FUNCTIONS: &[&str] = &[
    "days_in_month",
    "day_of_month",
    "day_of_week",
    "day_of_year",
    "hour",
    "minute",
    "month",
    "year",
    "predict_linear",
    "time",
];

/// Prometheus 2.42's `preprocessExprHelper` verdict: the expression gives the same result at
/// every step (it reads only `@` times and literals), so it is evaluated once.
pub(crate) fn step_invariant(e: &Expr) -> bool {
    match e {
        Expr::NumberLiteral(_) | Expr::StringLiteral(_) => true,
        Expr::VectorSelector(vs) => vs.at.is_some(),
        Expr::MatrixSelector(ms) => ms.vs.at.is_some(),
        Expr::Subquery(sq) => sq.at.is_some(),
        // The parameter is not looked at, as in 2.42.
        Expr::Aggregate(a) => step_invariant(&a.expr),
        Expr::Binary(b) => step_invariant(&b.lhs) & step_invariant(&b.rhs),
        Expr::Call(c) => call_step_invariant(c),
        Expr::Paren(p) => step_invariant(&p.expr),
        Expr::Unary(u) => step_invariant(&u.expr),
        Expr::Extension(_) => false,
    }
}

fn uses_at(e: &Expr) -> bool {
    match e {
        Expr::NumberLiteral(_) | Expr::StringLiteral(_) | Expr::Extension(_) => false,
        Expr::VectorSelector(vs) => vs.at.is_some(),
        Expr::MatrixSelector(ms) => ms.vs.at.is_some(),
        Expr::Subquery(sq) => sq.at.is_some() || uses_at(&sq.expr),
        Expr::Aggregate(a) => a.param.as_deref().is_some_and(uses_at) || uses_at(&a.expr),
        Expr::Binary(b) => uses_at(&b.lhs) || uses_at(&b.rhs),
        Expr::Call(c) => c.args.args.iter().any(|a| uses_at(a)),
        Expr::Paren(p) => uses_at(&p.expr),
        Expr::Unary(u) => uses_at(&u.expr),
    }
}

/// Prometheus 2.42's `subqueryTimes` over the subqueries enclosing a selector: their offsets
/// and ranges summed, reset by a subquery with `@` (whose time then stands for the query's).
#[derive(Clone, Copy, Default)]
struct SubqueryPath {
    offset_ms: i64,
    range_ms: i64,
    at_ms: Option<i64>,
}

/// Prometheus 2.42's `getTimeRangesForSelector` for every selector of `expr` (an instant
/// query at `query_ms`): the window its samples are fetched for, keyed by the selector's
/// address. `range_ms` is the enclosing range selector's range (0 for an instant selector).
fn fetch_windows(
    expr: &Expr,
    path: SubqueryPath,
    range_ms: i64,
    query_ms: i64,
    lookback_ms: i64,
    out: &mut HashMap<usize, (i64, i64)>,
) {
    let window = |vs: &VectorSelector, range_ms: i64| {
        let base = path.at_ms.unwrap_or(query_ms);
        let (start, end) = match &vs.at {
            Some(at) => (at_ms(at, query_ms), at_ms(at, query_ms)),
            None => {
                (base.saturating_sub(path.offset_ms).saturating_sub(path.range_ms), base.saturating_sub(path.offset_ms))
            }
        };
        let start = start.saturating_sub(if range_ms == 0 { lookback_ms } else { range_ms });
        let off = offset_ms(&vs.offset);
        (start.saturating_sub(off), end.saturating_sub(off))
    };
    let mut recurse =
        |e: &Expr, path: SubqueryPath, range_ms: i64| fetch_windows(e, path, range_ms, query_ms, lookback_ms, out);
    match expr {
        Expr::VectorSelector(vs) => {
            out.insert(vs as *const VectorSelector as usize, window(vs, range_ms));
        }
        Expr::MatrixSelector(ms) => {
            out.insert(&ms.vs as *const VectorSelector as usize, window(&ms.vs, duration_ms(ms.range)));
        }
        Expr::Subquery(sq) => {
            let inner = match &sq.at {
                Some(at) => SubqueryPath {
                    offset_ms: offset_ms(&sq.offset),
                    range_ms: duration_ms(sq.range),
                    at_ms: Some(at_ms(at, query_ms)),
                },
                None => SubqueryPath {
                    offset_ms: path.offset_ms.saturating_add(offset_ms(&sq.offset)),
                    range_ms: path.range_ms.saturating_add(duration_ms(sq.range)),
                    at_ms: path.at_ms,
                },
            };
            recurse(&sq.expr, inner, 0);
        }
        Expr::Paren(p) => recurse(&p.expr, path, range_ms),
        Expr::Unary(u) => recurse(&u.expr, path, range_ms),
        Expr::Binary(b) => {
            recurse(&b.lhs, path, 0);
            recurse(&b.rhs, path, 0);
        }
        Expr::Aggregate(a) => {
            if let Some(p) = &a.param {
                recurse(p, path, 0);
            }
            recurse(&a.expr, path, 0);
        }
        Expr::Call(c) => {
            for a in &c.args.args {
                recurse(a, path, 0);
            }
        }
        Expr::NumberLiteral(_) | Expr::StringLiteral(_) | Expr::Extension(_) => {}
    }
}

/// [`step_invariant`] for a call.
pub(crate) fn call_step_invariant(c: &Call) -> bool {
    !AT_UNSAFE_FUNCTIONS.contains(&c.func.name) && c.args.args.iter().all(|a| step_invariant(a))
}

/// Removes any number of enclosing parentheses, as Prometheus's `unwrapParenExpr`.
pub(crate) fn unwrap_parens(mut e: &Expr) -> &Expr {
    while let Expr::Paren(p) = e {
        e = &p.expr;
    }
    e
}

/// The selector's matchers including the metric name, which the parser keeps apart, with regex
/// matchers recompiled for Go's ASCII-only `\d \w \s \b` where the pattern uses them.
pub(crate) fn selector_matchers(vs: &VectorSelector) -> Matchers {
    let mut m = vs.matchers.clone();
    for matcher in m.matchers.iter_mut().chain(m.or_matchers.iter_mut().flatten()) {
        let token = match matcher.op {
            MatchOp::Re(_) => T_EQL_REGEX,
            MatchOp::NotRe(_) => T_NEQ_REGEX,
            _ => continue,
        };
        let compat = gomath::go_regex_compat(&matcher.value);
        if compat == matcher.value {
            continue;
        }
        if let Ok(recompiled) = Matcher::new_matcher(token, matcher.name.clone(), compat) {
            *matcher = recompiled;
        }
    }
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
    /// The instant query's time, which `@ start()` and `@ end()` stand for at any depth.
    pub(crate) query_ms: i64,
    /// The first step of the innermost subquery being evaluated, if any (see
    /// [`Self::at_drift_ms`]).
    pub(crate) subquery_start: Cell<Option<i64>>,
    /// Added to the next `@` time read (a range argument's, see [`Self::at_drift_ms`]).
    at_shift: Cell<i64>,
    /// Per selector (by address), the window Prometheus 2.42 fetches for it before evaluating;
    /// samples outside it are not seen. Computed only for expressions with `@`: without one,
    /// every read falls inside its selector's window.
    fetch_bounds: Option<HashMap<usize, (i64, i64)>>,
    cache: RefCell<HashMap<String, Vec<Prefetched>>>,
}

impl<'a> Evaluator<'a> {
    pub(crate) fn new(storage: &'a dyn Storage, opts: EvalOptions, query_ms: i64) -> Self {
        Evaluator {
            storage,
            opts,
            query_ms,
            subquery_start: Cell::new(None),
            at_shift: Cell::new(0),
            fetch_bounds: None,
            cache: RefCell::new(HashMap::new()),
        }
    }

    /// Restricts each selector of `expr` to the samples 2.42 would have fetched for it (see
    /// [`fetch_windows`]), when `expr` uses `@` anywhere.
    pub(crate) fn with_fetch_bounds(mut self, expr: &Expr) -> Self {
        if uses_at(expr) {
            let mut bounds = HashMap::new();
            fetch_windows(expr, SubqueryPath::default(), 0, self.query_ms, self.opts.lookback_ms, &mut bounds);
            self.fetch_bounds = Some(bounds);
        }
        self
    }

    /// [`reference_ms`] for this query.
    pub(crate) fn reference(&self, at: &Option<AtModifier>, offset: &Option<Offset>, t: i64) -> i64 {
        let shift = if at.is_some() { self.at_shift.get() } else { 0 };
        reference_ms(at, offset, t, self.query_ms).saturating_add(shift)
    }

    /// Evaluates `f` with the `@` time of the range argument it reads moved by `shift_ms`.
    pub(crate) fn with_at_shift<R>(&self, shift_ms: i64, f: impl FnOnce() -> R) -> R {
        let outer = self.at_shift.replace(shift_ms);
        let r = f();
        self.at_shift.set(outer);
        r
    }

    /// The part of [start, end] that 2.42 fetched for `vs` (start > end when none).
    fn clamp(&self, vs: &VectorSelector, start: i64, end: i64) -> (i64, i64) {
        match self.fetch_bounds.as_ref().and_then(|b| b.get(&(vs as *const VectorSelector as usize))) {
            Some(&(lo, hi)) => (start.max(lo), end.min(hi)),
            None => (start, end),
        }
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
        let ref_t = self.reference(&vs.at, &vs.offset, t);
        let start = ref_t.saturating_sub(self.opts.lookback_ms);
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
        let end = self.reference(&vs.at, &vs.offset, t);
        let start = end.saturating_sub(range_ms);
        Ok(self
            .select(vs, start, end)
            .into_iter()
            .filter_map(|mut s| {
                s.samples.retain(|&(ts, v)| ts >= start && ts <= end && !is_stale(v));
                (!s.samples.is_empty()).then_some(s)
            })
            .collect())
    }

    /// [`Self::range_selector`] without the copies: lends each matching series' stored labels
    /// and its window (staleness markers removed) to `f`. Returns false, having called nothing,
    /// when a subquery prefetch holds this selector: then the caller uses `range_selector`.
    pub(crate) fn visit_range(
        &self,
        vs: &VectorSelector,
        range_ms: i64,
        t: i64,
        f: &mut SeriesVisitor<'a, '_>,
    ) -> Result<bool, String> {
        if !self.cache.borrow().is_empty() && self.cache.borrow().contains_key(&selector_key(vs)) {
            return Ok(false);
        }
        let end = self.reference(&vs.at, &vs.offset, t);
        let start = end.saturating_sub(range_ms);
        let (start, end) = self.clamp(vs, start, end);
        if start > end {
            return Ok(true);
        }
        let mut scratch: Vec<(i64, f64)> = Vec::new();
        self.storage.visit(&selector_matchers(vs), start, end, &mut |labels, w| {
            if w.tail.is_empty() && (w.stale_free || !w.head.iter().any(|&(_, v)| is_stale(v))) {
                f(labels, w.head, w.non_decreasing);
            } else {
                scratch.clear();
                scratch.extend(w.iter().copied().filter(|&(_, v)| !is_stale(v)));
                if !scratch.is_empty() {
                    f(labels, &scratch, false);
                }
            }
        });
        Ok(true)
    }

    /// Evaluates the inner expression at every step aligned to absolute multiples of the step in
    /// [t - offset - range, t - offset] (both ends inclusive) and collects the results per label
    /// set. Equivalent to Prometheus's range evaluation of the inner expression.
    pub(crate) fn subquery(&self, sq: &SubqueryExpr, t: i64) -> Result<Vec<Series>, String> {
        let step = match sq.step.map(duration_ms) {
            Some(s) if s > 0 => s,
            _ => self.opts.interval_ms,
        };
        if step <= 0 {
            return Err("subquery step must be positive".to_string());
        }
        let end = self.reference(&sq.at, &sq.offset, t);
        // The shift was for this subquery's own `@`, not for those inside it.
        let outer_shift = self.at_shift.replace(0);
        let result = self.subquery_at(sq, end, step);
        self.at_shift.set(outer_shift);
        result
    }

    fn subquery_at(&self, sq: &SubqueryExpr, end: i64, step: i64) -> Result<Vec<Series>, String> {
        let lower = end.saturating_sub(duration_ms(sq.range));
        // Go's integer division truncates towards zero; adding a step when it fell below the
        // bound makes this a ceiling for both signs.
        let mut start = step * (lower / step);
        if start < lower {
            start = start.saturating_add(step);
        }
        // Prometheus bounds this only by its sample limit; refuse what could never finish.
        if end >= start && end.saturating_sub(start) / step >= MAX_SUBQUERY_STEPS {
            return Err(format!("subquery would evaluate more than {MAX_SUBQUERY_STEPS} steps"));
        }
        self.prefetch(&sq.expr, start, end);

        let outer = self.subquery_start.replace(Some(start));
        let result = self.subquery_steps(sq, start, end, step);
        self.subquery_start.set(outer);
        result
    }

    fn subquery_steps(&self, sq: &SubqueryExpr, start: i64, end: i64, step: i64) -> Result<Vec<Series>, String> {
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
            let Some(next) = ts.checked_add(step) else { break };
            ts = next;
        }
        Ok(series)
    }

    /// How far Prometheus 2.42 moves an `@` time read by the range argument of a call that is
    /// not step-invariant, at step `t` of a subquery: it rewrites `@` as an offset relative to
    /// the subquery's first step once, then evaluates such a call at every step with that
    /// offset, so the window slides by `t - first step`. 0 outside subqueries and for calls it
    /// evaluates once (step-invariant ones).
    pub(crate) fn at_drift_ms(&self, call_invariant: bool, t: i64) -> i64 {
        match self.subquery_start.get() {
            Some(start) if !call_invariant => t.saturating_sub(start),
            _ => 0,
        }
    }

    /// Fetches, once, what every selector inside `expr` will read when `expr` is evaluated at
    /// each step in [start, end], so the per-step selects are answered from memory.
    fn prefetch(&self, expr: &Expr, start: i64, end: i64) {
        let mut wanted: Vec<(&VectorSelector, i64, i64)> = Vec::new();
        collect_windows(expr, start, end, self.opts, self.query_ms, &mut wanted);
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
        let (start, end) = self.clamp(vs, start, end);
        if start > end {
            return Vec::new();
        }
        if let Some(hit) = self.cached(&selector_key(vs), start, end) {
            return hit;
        }
        self.storage.select(&selector_matchers(vs), start, end)
    }
}

/// The absolute read window of every selector in `expr` over evaluations at [start, end]
/// (a selector or subquery with `@` reads at its own time, whatever the step).
fn collect_windows<'e>(
    expr: &'e Expr,
    start: i64,
    end: i64,
    opts: EvalOptions,
    query_ms: i64,
    out: &mut Vec<(&'e VectorSelector, i64, i64)>,
) {
    let window = |at: &Option<AtModifier>, offset: &Option<Offset>| {
        (reference_ms(at, offset, start, query_ms), reference_ms(at, offset, end, query_ms))
    };
    match expr {
        Expr::VectorSelector(vs) => {
            let (s, e) = window(&vs.at, &vs.offset);
            out.push((vs, s.saturating_sub(opts.lookback_ms), e));
        }
        Expr::MatrixSelector(ms) => {
            let (s, e) = window(&ms.vs.at, &ms.vs.offset);
            out.push((&ms.vs, s.saturating_sub(duration_ms(ms.range)), e));
        }
        Expr::Subquery(sq) => {
            let (s, e) = window(&sq.at, &sq.offset);
            collect_windows(&sq.expr, s.saturating_sub(duration_ms(sq.range)), e, opts, query_ms, out);
        }
        Expr::Paren(p) => collect_windows(&p.expr, start, end, opts, query_ms, out),
        Expr::Unary(u) => collect_windows(&u.expr, start, end, opts, query_ms, out),
        Expr::Binary(b) => {
            collect_windows(&b.lhs, start, end, opts, query_ms, out);
            collect_windows(&b.rhs, start, end, opts, query_ms, out);
        }
        Expr::Aggregate(a) => {
            if let Some(p) = &a.param {
                collect_windows(p, start, end, opts, query_ms, out);
            }
            collect_windows(&a.expr, start, end, opts, query_ms, out);
        }
        Expr::Call(c) => {
            for a in &c.args.args {
                collect_windows(a, start, end, opts, query_ms, out);
            }
        }
        Expr::NumberLiteral(_) | Expr::StringLiteral(_) | Expr::Extension(_) => {}
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::promql::{
        MemoryStorage, eval_instant, expand_series_samples, labels_from_pairs, parse_series_labels,
    };

    fn storage(series: &[(&str, &str)]) -> MemoryStorage {
        let mut st = MemoryStorage::new();
        for (s, v) in series {
            st.add(parse_series_labels(s).unwrap(), expand_series_samples(v, 60_000).unwrap());
        }
        st
    }

    fn values(st: &MemoryStorage, q: &str, t: i64) -> Vec<f64> {
        match eval_instant(&promql_parser::parser::parse(q).unwrap(), st, t, &EvalOptions::default()).unwrap() {
            Value::Vector(v) => v.into_iter().map(|s| s.value).collect(),
            Value::Scalar(v) => vec![v],
            other => panic!("{q}: {other:?}"),
        }
    }

    #[test]
    fn lookback_is_closed_and_staleness_ends_series() {
        let st = storage(&[("once", "5"), ("s", "1 2 3 stale")]);
        assert_eq!(values(&st, "once", 300_000), [5.0]);
        assert!(values(&st, "once", 300_001).is_empty());
        assert_eq!(values(&st, "s", 179_999), [3.0]);
        assert!(values(&st, "s", 180_000).is_empty());
        assert_eq!(values(&st, "s offset 1m", 180_000), [3.0]);
        // A staleness marker is not a sample of a range.
        assert_eq!(values(&st, "count_over_time(s[10m])", 300_000), [3.0]);
    }

    #[test]
    fn subquery_steps_align_to_absolute_time() {
        let st = storage(&[("g", "1 5 2 8 3 9 4 7 6 0 3 2 1")]);
        // steps 6, 8, 10m at both 10m and 11m
        assert_eq!(values(&st, "sum_over_time(g[5m:2m])", 600_000), [13.0]);
        assert_eq!(values(&st, "sum_over_time(g[5m:2m])", 660_000), [13.0]);
        // negative start times are aligned with a ceiling, like Go's truncating division + step
        assert_eq!(values(&st, "count_over_time(vector(1)[5m:2m])", 61_000), [2.0]);
        assert_eq!(values(&st, "count_over_time(vector(1)[5m:2m])", 60_000), [3.0]);
    }

    #[test]
    fn prefetched_subqueries_match_direct_evaluation() {
        let st = storage(&[("c{a=\"1\"}", "0+10x30"), ("c{a=\"2\"}", "5 _ 7 stale 9+1x20")]);
        let ev = Evaluator::new(&st, EvalOptions::default(), 21 * 60_000);
        let expr = promql_parser::parser::parse("rate(c[3m])").unwrap();
        let sq = promql_parser::parser::parse("max_over_time(rate(c[3m])[10m:1m] offset 1m)").unwrap();
        let mut expected = Vec::new();
        for step in 10..=20 {
            let direct = Evaluator::new(&st, EvalOptions::default(), step * 60_000).eval(&expr, step * 60_000).unwrap();
            expected.push(direct);
        }
        let Value::Vector(got) = ev.eval(&sq, 21 * 60_000).unwrap() else { panic!() };
        for s in got {
            let max = expected
                .iter()
                .filter_map(|v| match v {
                    Value::Vector(v) => v.iter().find(|x| x.labels == s.labels).map(|x| x.value),
                    _ => None,
                })
                .fold(f64::NEG_INFINITY, f64::max);
            assert_eq!(s.value, max);
        }
    }

    #[test]
    fn extreme_inputs_do_not_panic() {
        let mut st = storage(&[("x", "1 NaN Inf -Inf stale 2")]);
        st.add(labels_from_pairs([("__name__", "x"), ("b", "1")]), vec![(i64::MIN + 1, 1.0), (i64::MAX - 1, 2.0)]);
        let queries = [
            "x offset 10000y",
            "x offset -10000y",
            "rate(x[100000y])",
            "max_over_time(x[1000y:1ms])",
            "max_over_time(x[1000y:1y] offset -1000y)",
            "deriv(x[1h])",
            "histogram_quantile(NaN, x)",
            "quantile_over_time(NaN, x[1h])",
            "topk(NaN, x)",
            "count_values(\"v\", x)",
            "x ^ x % x / 0",
            "round(x, 0) + clamp(x, NaN, NaN)",
            "label_replace(x, \"a\", \"$1$2${3}\", \"b\", \"(.)?\")",
            "absent_over_time(x[1ms:1ms])",
            "timestamp(x offset -5m)",
            "x @ 9e15 offset -10000y",
            "rate(x[5m] @ -9e15)",
            "max_over_time(x[5m:1m] @ 1e15 offset 1000y)",
            "predict_linear(x[1h] @ end(), 1e308) + holt_winters(x[1h], 0.5, 0.5)",
            "hour(x * 1e300) + year(-x) + days_in_month(x / 0) + sin(x * 1e308) + (x atan2 x)",
            "max_over_time(predict_linear(x[5m] @ 100, time())[1h:1m] @ start())",
        ];
        for t in [i64::MIN, -1, 0, 240_000, i64::MAX] {
            for q in queries {
                // The parser as rules load it (holt_winters known), without 2.42's refusals.
                let expr = crate::rules::promql::parse_syntax(q).unwrap_or_else(|e| panic!("{q}: {e}"));
                let _ = eval_instant(&expr, &st, t, &EvalOptions::default());
            }
        }
        let expr = promql_parser::parser::parse("max_over_time(x[1000y:1ms])").unwrap();
        assert!(eval_instant(&expr, &st, 0, &EvalOptions::default()).unwrap_err().contains("more than"));
    }
}
