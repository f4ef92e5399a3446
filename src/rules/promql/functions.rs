//! Function calls: range-vector functions (rate family, *_over_time) applied per series over a
//! closed window, and instant functions (math, clamp, labels, absent, histogram_quantile, ...).

use super::eval::{
    DUPLICATE_LABELSET, Evaluator, call_step_invariant, check_unique, duration_ms, duration_secs, unwrap_parens,
};
use super::labels::{drop_name, get, has_duplicates, is_valid_label_name, set};
use super::quantile::{Bucket, bucket_quantile, quantile};
use super::{Labels, METRIC_NAME, Sample, Series, Value, godate, gomath, gotrig, is_stale};
use foldhash::{HashMap, HashMapExt};
use promql_parser::label::{MatchOp, Matcher};
use promql_parser::parser::token::T_EQL_REGEX;
use promql_parser::parser::{Call, Expr, VectorSelector};
use std::time::Duration;

/// Functions taking a range vector, in Prometheus's spelling: with [`INSTANT_FUNCTIONS`], every
/// function of Prometheus 2.42 and no other.
pub(crate) const RANGE_FUNCTIONS: &[&str] = &[
    "rate",
    "irate",
    "increase",
    "delta",
    "idelta",
    "deriv",
    "resets",
    "changes",
    "avg_over_time",
    "min_over_time",
    "max_over_time",
    "sum_over_time",
    "count_over_time",
    "last_over_time",
    "quantile_over_time",
    "stddev_over_time",
    "stdvar_over_time",
    "present_over_time",
    "absent_over_time",
    "predict_linear",
    "holt_winters",
];

/// Functions taking instant vectors, scalars or strings.
pub(crate) const INSTANT_FUNCTIONS: &[&str] = &[
    "histogram_quantile",
    "scalar",
    "vector",
    "time",
    "timestamp",
    "absent",
    "clamp",
    "clamp_min",
    "clamp_max",
    "abs",
    "ceil",
    "floor",
    "round",
    "sqrt",
    "exp",
    "ln",
    "label_replace",
    "label_join",
    "sgn",
    "log2",
    "log10",
    "acos",
    "acosh",
    "asin",
    "asinh",
    "atan",
    "atanh",
    "cos",
    "cosh",
    "sin",
    "sinh",
    "tan",
    "tanh",
    "deg",
    "rad",
    "pi",
    "sort",
    "sort_desc",
    "minute",
    "hour",
    "day_of_week",
    "day_of_month",
    "day_of_year",
    "days_in_month",
    "month",
    "year",
    "histogram_count",
    "histogram_sum",
    "histogram_fraction",
];

pub(crate) fn eval_call(ev: &Evaluator, call: &Call, t: i64) -> Result<Value, String> {
    let name = call.func.name;
    let args: Vec<&Expr> = call.args.args.iter().map(|a| unwrap_parens(a)).collect();
    if let Some(idx) = args.iter().position(|a| matches!(a, Expr::MatrixSelector(_) | Expr::Subquery(_))) {
        // Inside a subquery, 2.42 slides the `@` window of a call it cannot evaluate once.
        if ev.subquery_start.get().is_some() {
            let drift = ev.at_drift_ms(call_step_invariant(call), t);
            if drift != 0 {
                return ev.with_at_shift(drift, || eval_range_call(ev, name, &args, idx, t));
            }
        }
        return eval_range_call(ev, name, &args, idx, t);
    }
    match name {
        "time" => Ok(Value::Scalar(t as f64 / 1000.0)),
        "scalar" => {
            let v = ev.eval_vector(arg(&args, 0)?, t)?;
            Ok(Value::Scalar(if v.len() == 1 { v[0].value } else { f64::NAN }))
        }
        "vector" => {
            Ok(Value::Vector(vec![Sample { labels: Labels::new(), value: ev.eval_scalar(arg(&args, 0)?, t)? }]))
        }
        "timestamp" => timestamp(ev, arg(&args, 0)?, t),
        "absent" => {
            let a = arg(&args, 0)?;
            let v = ev.eval_vector(a, t)?;
            Ok(Value::Vector(if v.is_empty() {
                vec![Sample { labels: absent_labels(a), value: 1.0 }]
            } else {
                Vec::new()
            }))
        }
        "abs" => map_values(ev, &args, t, f64::abs),
        "ceil" => map_values(ev, &args, t, f64::ceil),
        "floor" => map_values(ev, &args, t, f64::floor),
        "sqrt" => map_values(ev, &args, t, f64::sqrt),
        "exp" => map_values(ev, &args, t, gomath::exp),
        "ln" => map_values(ev, &args, t, gomath::log),
        "log2" => map_values(ev, &args, t, gotrig::log2),
        "log10" => map_values(ev, &args, t, gotrig::log10),
        "sgn" => map_values(ev, &args, t, |v| {
            if v < 0.0 {
                -1.0
            } else if v > 0.0 {
                1.0
            } else {
                v
            }
        }),
        "acos" => map_values(ev, &args, t, gotrig::acos),
        "acosh" => map_values(ev, &args, t, gotrig::acosh),
        "asin" => map_values(ev, &args, t, gotrig::asin),
        "asinh" => map_values(ev, &args, t, gotrig::asinh),
        "atan" => map_values(ev, &args, t, gotrig::atan),
        "atanh" => map_values(ev, &args, t, gotrig::atanh),
        "cos" => map_values(ev, &args, t, gotrig::cos),
        "cosh" => map_values(ev, &args, t, gotrig::cosh),
        "sin" => map_values(ev, &args, t, gotrig::sin),
        "sinh" => map_values(ev, &args, t, gotrig::sinh),
        "tan" => map_values(ev, &args, t, gotrig::tan),
        "tanh" => map_values(ev, &args, t, gotrig::tanh),
        // Left to right as Go evaluates `v * 180 / math.Pi` and `v * math.Pi / 180`.
        "deg" => map_values(ev, &args, t, |v| v * 180.0 / std::f64::consts::PI),
        "rad" => map_values(ev, &args, t, |v| v * std::f64::consts::PI / 180.0),
        "pi" => Ok(Value::Scalar(std::f64::consts::PI)),
        "sort" | "sort_desc" => {
            let mut v = ev.eval_vector(arg(&args, 0)?, t)?;
            sort_by_value(&mut v, name == "sort_desc");
            Ok(Value::Vector(v))
        }
        "minute" | "hour" | "day_of_week" | "day_of_month" | "day_of_year" | "days_in_month" | "month" | "year" => {
            let Some(field) = godate::Field::from_name(name) else {
                return Err(format!("function `{name}` is not supported"));
            };
            match args.first() {
                // Go's `time.Unix(enh.Ts/1000, 0)`: whole seconds, truncated towards zero.
                None => Ok(Value::Vector(vec![Sample {
                    labels: Labels::new(),
                    value: godate::date_field(field, (t / 1000) as f64),
                }])),
                Some(a) => map_samples(ev.eval_vector(a, t)?, |v| godate::date_field(field, v)),
            }
        }
        // Prometheus 2.42 reads only native histograms here and skips float samples, so on
        // float data (the only kind a rule file or a unit test can hold) the result is empty.
        "histogram_count" | "histogram_sum" => {
            ev.eval_vector(arg(&args, 0)?, t)?;
            Ok(Value::Vector(Vec::new()))
        }
        "histogram_fraction" => {
            ev.eval_scalar(arg(&args, 0)?, t)?;
            ev.eval_scalar(arg(&args, 1)?, t)?;
            ev.eval_vector(arg(&args, 2)?, t)?;
            Ok(Value::Vector(Vec::new()))
        }
        "round" => {
            let v = ev.eval_vector(arg(&args, 0)?, t)?;
            let to_nearest = match args.get(1) {
                Some(a) => ev.eval_scalar(a, t)?,
                None => 1.0,
            };
            // Prometheus multiplies by the inverse "as it seems to cause fewer floating point
            // accuracy issues"; ties round up (towards +Inf).
            let inverse = 1.0 / to_nearest;
            map_samples(v, |x| (x * inverse + 0.5).floor() / inverse)
        }
        "clamp" => {
            let v = ev.eval_vector(arg(&args, 0)?, t)?;
            let min = ev.eval_scalar(arg(&args, 1)?, t)?;
            let max = ev.eval_scalar(arg(&args, 2)?, t)?;
            if max < min {
                return Ok(Value::Vector(Vec::new()));
            }
            map_samples(v, |x| gomath::max(min, gomath::min(max, x)))
        }
        "clamp_min" => {
            let v = ev.eval_vector(arg(&args, 0)?, t)?;
            let min = ev.eval_scalar(arg(&args, 1)?, t)?;
            map_samples(v, |x| gomath::max(min, x))
        }
        "clamp_max" => {
            let v = ev.eval_vector(arg(&args, 0)?, t)?;
            let max = ev.eval_scalar(arg(&args, 1)?, t)?;
            map_samples(v, |x| gomath::min(max, x))
        }
        "histogram_quantile" => {
            let q = ev.eval_scalar(arg(&args, 0)?, t)?;
            let v = ev.eval_vector(arg(&args, 1)?, t)?;
            check_unique(histogram_quantile(q, v))
        }
        "label_replace" => label_replace(ev, &args, t),
        "label_join" => label_join(ev, &args, t),
        other => Err(format!("function `{other}` is not supported")),
    }
}

/// Prometheus 2.42's `sort`/`sort_desc` order: by value, NaN last in both.
fn sort_by_value(v: &mut [Sample], descending: bool) {
    v.sort_by(|a, b| match (a.value.is_nan(), b.value.is_nan()) {
        (true, true) => std::cmp::Ordering::Equal,
        (true, false) => std::cmp::Ordering::Greater,
        (false, true) => std::cmp::Ordering::Less,
        (false, false) if descending => b.value.partial_cmp(&a.value).unwrap_or(std::cmp::Ordering::Equal),
        (false, false) => a.value.partial_cmp(&b.value).unwrap_or(std::cmp::Ordering::Equal),
    });
}

fn arg<'e>(args: &[&'e Expr], i: usize) -> Result<&'e Expr, String> {
    args.get(i).copied().ok_or_else(|| format!("missing argument {}", i + 1))
}

fn string_arg(ev: &Evaluator, args: &[&Expr], i: usize, t: i64) -> Result<String, String> {
    match ev.eval(arg(args, i)?, t)? {
        Value::String(s) => Ok(s),
        _ => Err(format!("argument {} must be a string", i + 1)),
    }
}

/// Applies `f` to every element, dropping the metric name (the result is no longer that metric).
fn map_values(ev: &Evaluator, args: &[&Expr], t: i64, f: fn(f64) -> f64) -> Result<Value, String> {
    map_samples(ev.eval_vector(arg(args, 0)?, t)?, f)
}

fn map_samples(v: Vec<Sample>, f: impl Fn(f64) -> f64) -> Result<Value, String> {
    check_unique(v.into_iter().map(|s| Sample { labels: drop_name(&s.labels), value: f(s.value) }).collect())
}

/// `timestamp(x)`: for a plain selector the timestamp of the sample found (Prometheus special-
/// cases it); for any other expression the evaluation time, as its results are stamped with it.
fn timestamp(ev: &Evaluator, a: &Expr, t: i64) -> Result<Value, String> {
    let out: Vec<Sample> = match a {
        Expr::VectorSelector(vs) => ev
            .instant_selector(vs, t)?
            .into_iter()
            .map(|(labels, ts, _)| Sample { labels: drop_name(&labels), value: ts as f64 / 1000.0 })
            .collect(),
        other => ev
            .eval_vector(other, t)?
            .into_iter()
            .map(|s| Sample { labels: drop_name(&s.labels), value: t as f64 / 1000.0 })
            .collect(),
    };
    check_unique(out)
}

/// The labels `absent`/`absent_over_time` report: those of the selector's `=` matchers, except
/// the metric name and any label also constrained by another matcher.
fn absent_labels(e: &Expr) -> Labels {
    let vs: &VectorSelector = match e {
        Expr::VectorSelector(vs) => vs,
        Expr::MatrixSelector(ms) => &ms.vs,
        _ => return Labels::new(),
    };
    let mut out = Labels::new();
    let mut conflicting: Vec<String> = Vec::new();
    let all = vs.matchers.matchers.iter().chain(vs.matchers.or_matchers.iter().flatten());
    for m in all {
        if m.name == METRIC_NAME {
            continue;
        }
        if matches!(m.op, MatchOp::Equal) && get(&out, &m.name).is_empty() {
            set(&mut out, &m.name, &m.value);
        } else {
            conflicting.push(m.name.clone());
        }
    }
    for name in conflicting {
        set(&mut out, &name, "");
    }
    out
}

/// Prometheus's `histogram_quantile` over classic buckets: elements grouped by all labels but
/// `le` (the name included), each group's result labelled without `le` and the name.
fn histogram_quantile(q: f64, v: Vec<Sample>) -> Vec<Sample> {
    let mut groups: Vec<(Labels, Vec<Bucket>)> = Vec::new();
    let mut index: HashMap<Labels, usize> = HashMap::new();
    for s in v {
        let Some(upper_bound) = gomath::parse_float(get(&s.labels, "le")) else {
            // No or malformed bucket label: Prometheus skips the element silently.
            continue;
        };
        let key: Labels = s.labels.iter().filter(|(k, _)| k != "le").cloned().collect();
        let i = *index.entry(key).or_insert_with(|| {
            let labels = s.labels.iter().filter(|(k, _)| k != "le" && k != METRIC_NAME).cloned().collect();
            groups.push((labels, Vec::new()));
            groups.len() - 1
        });
        groups[i].1.push(Bucket { upper_bound, count: s.value });
    }
    groups.into_iter().map(|(labels, buckets)| Sample { labels, value: bucket_quantile(q, buckets) }).collect()
}

/// Compiles a PromQL regex the way the selector parser does (anchored, Go-style literal `{`)
/// with Go's ASCII-only classes, and hands back the parser crate's compiled regex.
fn compile_anchored(re: &str) -> Option<Matcher> {
    Matcher::new_matcher(T_EQL_REGEX, String::new(), gomath::go_regex_compat(re)).ok()
}

fn label_replace(ev: &Evaluator, args: &[&Expr], t: i64) -> Result<Value, String> {
    let v = ev.eval_vector(arg(args, 0)?, t)?;
    let dst = string_arg(ev, args, 1, t)?;
    let repl = string_arg(ev, args, 2, t)?;
    let src = string_arg(ev, args, 3, t)?;
    let regex_str = string_arg(ev, args, 4, t)?;
    let matcher = compile_anchored(&regex_str)
        .ok_or_else(|| format!("invalid regular expression in label_replace(): {regex_str}"))?;
    let MatchOp::Re(re) = &matcher.op else {
        return Err(format!("invalid regular expression in label_replace(): {regex_str}"));
    };
    if !is_valid_label_name(&dst) {
        return Err(format!("invalid destination label name in label_replace(): {dst}"));
    }
    let names: Vec<Option<&str>> = re.capture_names().collect();
    let mut out = Vec::with_capacity(v.len());
    for mut s in v {
        let src_val = get(&s.labels, &src).to_string();
        if let Some(caps) = re.captures(&src_val) {
            let group = |r: gomath::GroupRef<'_>| -> Option<String> {
                let i = match r {
                    gomath::GroupRef::Index(i) => i,
                    gomath::GroupRef::Name(n) => names.iter().position(|x| *x == Some(n))?,
                };
                caps.get(i).map(|m| m.as_str().to_string())
            };
            let res = gomath::regexp_expand(&repl, &group);
            set(&mut s.labels, &dst, &res);
        }
        out.push(s);
    }
    check_unique(out)
}

fn label_join(ev: &Evaluator, args: &[&Expr], t: i64) -> Result<Value, String> {
    let v = ev.eval_vector(arg(args, 0)?, t)?;
    let dst = string_arg(ev, args, 1, t)?;
    let sep = string_arg(ev, args, 2, t)?;
    let mut srcs = Vec::new();
    for i in 3..args.len() {
        let src = string_arg(ev, args, i, t)?;
        if !is_valid_label_name(&src) {
            return Err(format!("invalid source label name in label_join(): {src}"));
        }
        srcs.push(src);
    }
    if !is_valid_label_name(&dst) {
        return Err(format!("invalid destination label name in label_join(): {dst}"));
    }
    let mut out = Vec::with_capacity(v.len());
    for mut s in v {
        let joined = srcs.iter().map(|n| get(&s.labels, n)).collect::<Vec<_>>().join(&sep);
        set(&mut s.labels, &dst, &joined);
        out.push(s);
    }
    check_unique(out)
}

/// The range-vector argument of a call: its series (already cut to the window, staleness
/// markers removed) and the window's parameters.
struct RangeArg {
    series: Vec<Series>,
    range: Duration,
    /// The window's end: the `@` time (else the evaluation time) minus the offset.
    end_ms: i64,
}

/// A range function over a matrix selector, computed on the stored samples in place: hands
/// `sink` each series' labels as stored (name included) and the function's value, in storage
/// order. Returns false, having called nothing, where this path does not apply and
/// [`eval_range_call`] must run: functions that keep the name or answer absence, subquery
/// arguments, prefetched selectors, and selectors that may span several metric names (whose
/// results could collide once the name is dropped).
pub(crate) fn range_call_in_place<'a>(
    ev: &Evaluator<'a>,
    name: &str,
    args: &[&Expr],
    t: i64,
    sink: &mut dyn FnMut(&'a Labels, f64) -> Result<(), String>,
) -> Result<bool, String> {
    if matches!(name, "last_over_time" | "absent_over_time") {
        return Ok(false);
    }
    let Some((idx, ms)) = args.iter().enumerate().find_map(|(i, a)| match a {
        Expr::MatrixSelector(ms) => Some((i, ms)),
        _ => None,
    }) else {
        return Ok(false);
    };
    // `x[5m]` (the parser keeps the name apart) or `{__name__="x"}[5m]`: one name throughout.
    let named = ms.vs.name.is_some()
        || (ms.vs.matchers.or_matchers.is_empty()
            && ms.vs.matchers.matchers.iter().any(|m| m.name == METRIC_NAME && m.op == MatchOp::Equal));
    if !named {
        return Ok(false);
    }
    let params = scalar_params(ev, args, idx, t)?;
    let r = RangeArg { series: Vec::new(), range: ms.range, end_ms: ev.reference(&ms.vs.at, &ms.vs.offset, t) };
    let mut failed = None;
    let visited = ev.visit_range(&ms.vs, duration_ms(ms.range), t, &mut |labels, points, non_decreasing| {
        if failed.is_some() {
            return;
        }
        match range_function(name, points, non_decreasing, t, &r, &params) {
            Ok(Some(v)) => failed = sink(labels, v).err(),
            Ok(None) => {}
            Err(e) => failed = Some(e),
        }
    })?;
    match failed {
        Some(e) => Err(e),
        None => Ok(visited),
    }
}

fn eval_range_call(ev: &Evaluator, name: &str, args: &[&Expr], idx: usize, t: i64) -> Result<Value, String> {
    let mut out = Vec::new();
    let in_place = range_call_in_place(ev, name, args, t, &mut |labels, value| {
        out.push(Sample { labels: drop_name(labels), value });
        Ok(())
    })?;
    if in_place {
        return Ok(Value::Vector(out));
    }
    let (mut range_arg, absent) = match args[idx] {
        Expr::MatrixSelector(ms) => (
            RangeArg {
                series: ev.range_selector(&ms.vs, duration_ms(ms.range), t)?,
                range: ms.range,
                end_ms: ev.reference(&ms.vs.at, &ms.vs.offset, t),
            },
            absent_labels(args[idx]),
        ),
        Expr::Subquery(sq) => {
            let mut series = ev.subquery(sq, t)?;
            // As for stored series, staleness markers are not samples of a range.
            for s in &mut series {
                s.samples.retain(|&(_, v)| !is_stale(v));
            }
            series.retain(|s| !s.samples.is_empty());
            (RangeArg { series, range: sq.range, end_ms: ev.reference(&sq.at, &sq.offset, t) }, Labels::new())
        }
        _ => return Err(format!("function `{name}` needs a range vector")),
    };
    let params = scalar_params(ev, args, idx, t)?;
    let mut out = Vec::new();
    let series = std::mem::take(&mut range_arg.series);
    // Distinct series of one metric name stay distinct without the name: no check needed.
    let one_name = series.windows(2).all(|w| get(&w[0].labels, METRIC_NAME) == get(&w[1].labels, METRIC_NAME));
    for s in series {
        let Some(value) = range_function(name, &s.samples, false, t, &range_arg, &params)? else { continue };
        // last_over_time behaves like a selector and keeps the name; the others compute new values.
        let mut labels = s.labels;
        if name != "last_over_time" {
            labels.retain(|(k, _)| k != METRIC_NAME);
        }
        out.push(Sample { labels, value });
    }
    if name == "absent_over_time" {
        return Ok(Value::Vector(if out.is_empty() {
            vec![Sample { labels: absent, value: 1.0 }]
        } else {
            Vec::new()
        }));
    }
    if !one_name && has_duplicates(out.iter().map(|s| &s.labels)) {
        return Err(DUPLICATE_LABELSET.to_string());
    }
    Ok(Value::Vector(out))
}

/// The scalar arguments of a range function, in order, the range argument (at `idx`) left out:
/// at most two (holt_winters), so no allocation.
fn scalar_params(ev: &Evaluator, args: &[&Expr], idx: usize, t: i64) -> Result<[f64; 2], String> {
    let mut params = [f64::NAN; 2];
    let mut n = 0;
    for (i, a) in args.iter().enumerate() {
        if i != idx {
            let v = ev.eval_scalar(a, t)?;
            if let Some(p) = params.get_mut(n) {
                *p = v;
            }
            n += 1;
        }
    }
    Ok(params)
}

/// One range function over the (non-empty) samples of one series; None means no output.
/// `non_decreasing`: the caller knows no sample is below the one before it; `t` is the
/// evaluation time (predict_linear's origin, whatever the range's offset or `@`).
fn range_function(
    name: &str,
    points: &[(i64, f64)],
    non_decreasing: bool,
    t: i64,
    r: &RangeArg,
    params: &[f64; 2],
) -> Result<Option<f64>, String> {
    if points.is_empty() {
        return Ok(None);
    }
    let param = params[0];
    let values = || points.iter().map(|&(_, v)| v);
    Ok(match name {
        "rate" => extrapolated_rate(points, r, Counter { no_resets: non_decreasing }.into(), true),
        "increase" => extrapolated_rate(points, r, Counter { no_resets: non_decreasing }.into(), false),
        "delta" => extrapolated_rate(points, r, None, false),
        "irate" => instant_value(points, true),
        "idelta" => instant_value(points, false),
        "deriv" => (points.len() >= 2).then(|| linear_regression(points, points[0].0).0),
        "resets" => Some(points.windows(2).filter(|w| w[1].1 < w[0].1).count() as f64),
        "changes" => {
            Some(points.windows(2).filter(|w| w[1].1 != w[0].1 && !(w[1].1.is_nan() && w[0].1.is_nan())).count() as f64)
        }
        "avg_over_time" => Some(avg_over_time(points)),
        "sum_over_time" => {
            let (mut sum, mut c) = (0.0, 0.0);
            for v in values() {
                (sum, c) = gomath::kahan_sum_inc(v, sum, c);
            }
            Some(if sum.is_infinite() { sum } else { sum + c })
        }
        "min_over_time" => Some(values().fold(points[0].1, |m, v| if v < m || m.is_nan() { v } else { m })),
        "max_over_time" => Some(values().fold(points[0].1, |m, v| if v > m || m.is_nan() { v } else { m })),
        "count_over_time" => Some(points.len() as f64),
        "last_over_time" => Some(points[points.len() - 1].1),
        "present_over_time" | "absent_over_time" => Some(1.0),
        "quantile_over_time" => Some(quantile(param, values().collect())),
        "predict_linear" => (points.len() >= 2).then(|| {
            let (slope, intercept) = linear_regression(points, t);
            slope * param + intercept
        }),
        "holt_winters" => holt_winters(points, params[0], params[1])?,
        "stdvar_over_time" => Some(variance(points)),
        "stddev_over_time" => Some(variance(points).sqrt()),
        other => return Err(format!("function `{other}` is not supported")),
    })
}

/// Prometheus 2.42's `holt_winters` (double exponential smoothing): the factors are checked
/// for every series, even one too short to smooth.
fn holt_winters(points: &[(i64, f64)], sf: f64, tf: f64) -> Result<Option<f64>, String> {
    // Go's `%f`: six decimals (NaN fails both comparisons, so it passes the check, as in Go).
    if sf <= 0.0 || sf >= 1.0 {
        return Err(format!("invalid smoothing factor. Expected: 0 < sf < 1, got: {}", go_percent_f(sf)));
    }
    if tf <= 0.0 || tf >= 1.0 {
        return Err(format!("invalid trend factor. Expected: 0 < tf < 1, got: {}", go_percent_f(tf)));
    }
    if points.len() < 2 {
        return Ok(None);
    }
    let (mut s0, mut s1) = (0.0, points[0].1);
    let mut b = points[1].1 - points[0].1;
    for (i, &(_, v)) in points.iter().enumerate().skip(1) {
        let x = sf * v;
        // calcTrendValue(i-1, ...): the first step keeps the initial trend.
        if i > 1 {
            b = tf * (s1 - s0) + (1.0 - tf) * b;
        }
        let y = (1.0 - sf) * (s1 + b);
        s0 = s1;
        s1 = x + y;
    }
    Ok(Some(s1))
}

fn go_percent_f(v: f64) -> String {
    if v.is_nan() {
        "NaN".to_string()
    } else if v.is_infinite() {
        if v > 0.0 { "+Inf".to_string() } else { "-Inf".to_string() }
    } else {
        format!("{v:.6}")
    }
}

/// rate/increase read a counter; `no_resets` when the samples are known to never decrease.
#[derive(Clone, Copy)]
struct Counter {
    no_resets: bool,
}

/// Prometheus 2.42 `extrapolatedRate` for rate/increase/delta: the increase between the first
/// and last sample (counter resets added back), extrapolated towards the window edges — fully
/// when the gap is below 1.1× the average sample spacing, else by half a spacing — and, for
/// counters, never further back than where the counter would reach zero.
fn extrapolated_rate(points: &[(i64, f64)], r: &RangeArg, counter: Option<Counter>, is_rate: bool) -> Option<f64> {
    let is_counter = counter.is_some();
    if points.len() < 2 {
        return None;
    }
    let range_ms = duration_ms(r.range);
    let range_start = r.end_ms.saturating_sub(range_ms);
    let range_end = r.end_ms;
    let (first_t, first_v) = points[0];
    let (last_t, last_v) = points[points.len() - 1];

    let mut result = last_v - first_v;
    // Counter resets are added back; a series known to be non-decreasing has none to find.
    if counter.is_some_and(|c| !c.no_resets) {
        let mut prev = first_v;
        for &(_, v) in &points[1..] {
            if v < prev {
                result += prev;
            }
            prev = v;
        }
    }

    let mut duration_to_start = first_t.saturating_sub(range_start) as f64 / 1000.0;
    let duration_to_end = range_end.saturating_sub(last_t) as f64 / 1000.0;
    let sampled_interval = (last_t - first_t) as f64 / 1000.0;
    let average_between_samples = sampled_interval / (points.len() - 1) as f64;

    if is_counter && result > 0.0 && first_v >= 0.0 {
        let duration_to_zero = sampled_interval * (first_v / result);
        if duration_to_zero < duration_to_start {
            duration_to_start = duration_to_zero;
        }
    }

    let threshold = average_between_samples * 1.1;
    let mut extrapolate_to = sampled_interval;
    extrapolate_to += if duration_to_start < threshold { duration_to_start } else { average_between_samples / 2.0 };
    extrapolate_to += if duration_to_end < threshold { duration_to_end } else { average_between_samples / 2.0 };

    // The factor is computed first, then applied: (50 * ((300/300) / 300)) differs from 50/300.
    let mut factor = extrapolate_to / sampled_interval;
    if is_rate {
        factor /= duration_secs(r.range);
    }
    Some(result * factor)
}

/// irate/idelta: the last two samples; irate treats a decrease as a counter reset.
fn instant_value(points: &[(i64, f64)], is_rate: bool) -> Option<f64> {
    if points.len() < 2 {
        return None;
    }
    let (last_t, last_v) = points[points.len() - 1];
    let (prev_t, prev_v) = points[points.len() - 2];
    let mut result = if is_rate && last_v < prev_v { last_v } else { last_v - prev_v };
    let sampled_interval = last_t - prev_t;
    if sampled_interval == 0 {
        return None;
    }
    if is_rate {
        result /= sampled_interval as f64 / 1000.0;
    }
    Some(result)
}

/// Least-squares slope and intercept with Kahan-compensated sums (Prometheus 2.42); x is in
/// seconds relative to `intercept_time` to keep the sums small.
fn linear_regression(points: &[(i64, f64)], intercept_time: i64) -> (f64, f64) {
    let mut n = 0.0;
    let (mut sum_x, mut c_x) = (0.0, 0.0);
    let (mut sum_y, mut c_y) = (0.0, 0.0);
    let (mut sum_xy, mut c_xy) = (0.0, 0.0);
    let (mut sum_x2, mut c_x2) = (0.0, 0.0);
    let init_y = points[0].1;
    let mut const_y = true;
    for (i, &(ts, v)) in points.iter().enumerate() {
        if const_y && i > 0 && v != init_y {
            const_y = false;
        }
        n += 1.0;
        let x = (ts - intercept_time) as f64 / 1e3;
        (sum_x, c_x) = gomath::kahan_sum_inc(x, sum_x, c_x);
        (sum_y, c_y) = gomath::kahan_sum_inc(v, sum_y, c_y);
        (sum_xy, c_xy) = gomath::kahan_sum_inc(x * v, sum_xy, c_xy);
        (sum_x2, c_x2) = gomath::kahan_sum_inc(x * x, sum_x2, c_x2);
    }
    if const_y {
        if init_y.is_infinite() {
            return (f64::NAN, f64::NAN);
        }
        return (0.0, init_y);
    }
    sum_x += c_x;
    sum_y += c_y;
    sum_xy += c_xy;
    sum_x2 += c_x2;
    let cov_xy = sum_xy - sum_x * sum_y / n;
    let var_x = sum_x2 - sum_x * sum_x / n;
    let slope = cov_xy / var_x;
    let intercept = sum_y / n - slope * sum_x / n;
    (slope, intercept)
}

/// Incremental, Kahan-compensated mean (Prometheus 2.42 `avg_over_time`), with the same care
/// for infinite values as the `avg` aggregation.
fn avg_over_time(points: &[(i64, f64)]) -> f64 {
    let (mut mean, mut count, mut c) = (0.0f64, 0.0f64, 0.0f64);
    for &(_, v) in points {
        count += 1.0;
        if mean.is_infinite() {
            if v.is_infinite() && (mean > 0.0) == (v > 0.0) {
                continue;
            }
            if !v.is_infinite() && !v.is_nan() {
                continue;
            }
        }
        (mean, c) = gomath::kahan_sum_inc(v / count - mean / count, mean, c);
    }
    if mean.is_infinite() { mean } else { mean + c }
}

/// Population variance by Welford's algorithm with Kahan-compensated running sums (2.42).
fn variance(points: &[(i64, f64)]) -> f64 {
    let mut count = 0.0;
    let (mut mean, mut c_mean) = (0.0, 0.0);
    let (mut aux, mut c_aux) = (0.0, 0.0);
    for &(_, v) in points {
        count += 1.0;
        let delta = v - (mean + c_mean);
        (mean, c_mean) = gomath::kahan_sum_inc(delta / count, mean, c_mean);
        (aux, c_aux) = gomath::kahan_sum_inc(delta * (v - (mean + c_mean)), aux, c_aux);
    }
    (aux + c_aux) / count
}

#[cfg(test)]
mod tests {
    use super::*;

    fn range(secs: u64, end_ms: i64) -> RangeArg {
        RangeArg { series: Vec::new(), range: Duration::from_secs(secs), end_ms }
    }

    const COUNTER: Option<Counter> = Some(Counter { no_resets: false });

    fn lin(from_min: i64, to_min: i64, start: f64, step: f64) -> Vec<(i64, f64)> {
        (from_min..=to_min).map(|m| (m * 60_000, start + step * (m - from_min) as f64)).collect()
    }

    #[test]
    fn rate_applies_the_factor_before_multiplying() {
        // 0+10x per minute, window [5m, 10m] holds 6 samples with 50 of increase.
        let p = lin(5, 10, 50.0, 10.0);
        assert_eq!(extrapolated_rate(&p, &range(300, 600_000), COUNTER, true), Some(0.16666666666666669));
        assert_eq!(extrapolated_rate(&p, &range(300, 600_000), COUNTER, false), Some(50.0));
    }

    #[test]
    fn extrapolation_stops_at_counter_zero_and_after_half_a_spacing() {
        // First sample 5 at 8m: zero would be reached 60s earlier, not 180s.
        let young = lin(8, 10, 5.0, 5.0);
        assert_eq!(extrapolated_rate(&young, &range(300, 600_000), COUNTER, false), Some(15.0));
        // First sample 100 at 8m: the 180s start gap exceeds 1.1 × 60s, so only 30s is added.
        let late = lin(8, 10, 100.0, 10.0);
        assert_eq!(extrapolated_rate(&late, &range(300, 600_000), COUNTER, false), Some(25.0));
        // delta does not cap at zero and does not treat decreases as resets.
        let g = vec![(60_000, 3.0), (120_000, 5.0), (180_000, 2.0)];
        assert_eq!(extrapolated_rate(&g, &range(120, 180_000), None, false), Some(-1.0));
        // Counter reset: the value before the reset is added back.
        let reset =
            vec![(60_000, 10.0), (120_000, 20.0), (180_000, 30.0), (240_000, 5.0), (300_000, 15.0), (360_000, 25.0)];
        assert_eq!(extrapolated_rate(&reset, &range(300, 360_000), COUNTER, false), Some(45.0));
        // Known non-decreasing, the same series without its reset gives the same as scanning.
        let rising = lin(1, 6, 10.0, 10.0);
        let known = Some(Counter { no_resets: true });
        assert_eq!(
            extrapolated_rate(&rising, &range(300, 360_000), known, false),
            extrapolated_rate(&rising, &range(300, 360_000), COUNTER, false)
        );
        assert_eq!(extrapolated_rate(&reset[..1], &range(300, 360_000), COUNTER, false), None);
    }

    #[test]
    fn instant_rates() {
        assert_eq!(instant_value(&[(0, 30.0), (60_000, 5.0)], true), Some(5.0 / 60.0));
        assert_eq!(instant_value(&[(0, 8.0), (60_000, 5.0)], false), Some(-3.0));
        assert_eq!(instant_value(&[(0, 8.0)], false), None);
    }

    #[test]
    fn kahan_compensated_over_time_functions() {
        let p: Vec<(i64, f64)> = [0.1, 0.2, 0.3, 0.7, 1e16, 1.0, -1e16, 0.1].iter().map(|&v| (0, v)).collect();
        assert_eq!(avg_over_time(&p), 0.36875);
        let p: Vec<(i64, f64)> = [0.2, 1.1, 0.2, 0.01].iter().map(|&v| (0, v)).collect();
        assert_eq!(variance(&p), 0.18001875);
        let p = vec![(0, 0.007), (60_000, 1e6), (120_000, 0.3), (180_000, 3.3)];
        assert_eq!(linear_regression(&p, 0).0, -1666.6497016666665);
    }
}
