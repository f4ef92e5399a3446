//! Aggregation operators (sum, avg, min, max, count, group, stddev, stdvar, topk, bottomk,
//! quantile, count_values) with by/without, replicating Prometheus 2.42's `aggregation` step by step.

use super::eval::{Evaluator, check_unique, unwrap_parens};
use super::functions::range_call_in_place;
use super::labels::{drop_name, go_quote, is_valid_label_name, set};
use super::{Labels, METRIC_NAME, Sample, Value, gomath, quantile};
use foldhash::{HashMap, HashMapExt};
use promql_parser::parser::token::{
    T_AVG, T_BOTTOMK, T_COUNT, T_COUNT_VALUES, T_GROUP, T_MAX, T_MIN, T_QUANTILE, T_STDDEV, T_STDVAR, T_SUM, T_TOPK,
    TokenId,
};
use promql_parser::parser::{AggregateExpr, Expr, LabelModifier};

/// One output group, accumulated in input order.
struct Group {
    labels: Labels,
    value: f64,
    mean: f64,
    count: u64,
    /// topk/bottomk heap or the values collected for quantile.
    heap: Vec<Sample>,
}

pub(crate) fn eval(ev: &Evaluator, a: &AggregateExpr, t: i64) -> Result<Value, String> {
    let op = a.op.id();
    // The parameter is evaluated before the aggregated expression, as in Prometheus.
    let param = match &a.param {
        Some(p) => match unwrap_parens(p) {
            Expr::StringLiteral(s) => Param::Label(s.val.clone()),
            p => Param::Number(ev.eval_scalar(p, t)?),
        },
        None => Param::None,
    };
    let (mut grouping, without) = match &a.modifier {
        None => (Vec::new(), false),
        Some(LabelModifier::Include(l)) => (l.labels.clone(), false),
        Some(LabelModifier::Exclude(l)) => (l.labels.clone(), true),
    };
    grouping.sort();
    // `sum by (…) (rate(x[5m]))` and the like read the stored samples in place: these
    // operators use the input labels only for the grouping key, which the dropped metric name
    // is never part of (unless grouped `by (__name__)`).
    let keys_only = matches!(op, T_SUM | T_AVG | T_MIN | T_MAX | T_COUNT | T_GROUP | T_STDDEV | T_STDVAR);
    if keys_only
        && (without || !grouping.iter().any(|g| g == METRIC_NAME))
        && let Expr::Call(call) = unwrap_parens(&a.expr)
    {
        let args: Vec<&Expr> = call.args.args.iter().map(|x| unwrap_parens(x)).collect();
        let mut agg = Aggregator::new(op, &grouping, without, 0.0, 0);
        if range_call_in_place(ev, call.func.name, &args, t, &mut |labels, value| agg.add((labels, value)))? {
            return check_unique(agg.finish());
        }
    }
    let input = ev.eval_vector(&a.expr, t)?;
    check_unique(aggregate(op, &grouping, without, &param, input)?)
}

/// An element of the aggregated vector: a sample, or a stored series' labels (metric name
/// included, as a range function's input) with the function's value.
trait Item {
    fn labels(&self) -> &Labels;
    fn value(&self) -> f64;
    fn into_sample(self) -> Sample;
}

impl Item for Sample {
    fn labels(&self) -> &Labels {
        &self.labels
    }
    fn value(&self) -> f64 {
        self.value
    }
    fn into_sample(self) -> Sample {
        self
    }
}

impl Item for (&Labels, f64) {
    fn labels(&self) -> &Labels {
        self.0
    }
    fn value(&self) -> f64 {
        self.1
    }
    fn into_sample(self) -> Sample {
        Sample { labels: drop_name(self.0), value: self.1 }
    }
}

/// Finds the group of a label set without building its key: groups are found by a hash of
/// the key's pairs, then compared pair by pair.
struct GroupIndex<'g> {
    grouping: &'g [String],
    without: bool,
    by_hash: HashMap<u64, Vec<usize>>,
    /// Positions in the current labels of the key's pairs, reused from element to element.
    positions: Vec<usize>,
}

impl<'g> GroupIndex<'g> {
    fn new(grouping: &'g [String], without: bool) -> Self {
        GroupIndex { grouping, without, by_hash: HashMap::new(), positions: Vec::new() }
    }

    /// Finds the group `labels` belong to (`Ok`), or gives the hash to insert it under (`Err`).
    /// The key — the `by` labels, or everything but the `without` labels and the name — is
    /// found in one walk of the sorted labels beside the sorted grouping names, then hashed and
    /// compared by position, never built.
    fn lookup(&mut self, labels: &Labels, groups: &[Group]) -> Result<usize, u64> {
        use std::hash::{BuildHasher, Hash, Hasher};
        self.positions.clear();
        let mut grouping = self.grouping;
        for (i, (name, _)) in labels.iter().enumerate() {
            if !self.without && grouping.is_empty() {
                break;
            }
            while grouping.first().is_some_and(|g| name_lt(g, name)) {
                grouping = &grouping[1..];
            }
            let listed = grouping.first().is_some_and(|g| g == name);
            if if self.without { !listed && name != METRIC_NAME } else { listed } {
                self.positions.push(i);
            }
        }
        let mut h = foldhash::fast::FixedState::with_seed(0x0072_6564_6c69_6e65).build_hasher();
        for &i in &self.positions {
            labels[i].hash(&mut h);
        }
        let hash = h.finish();
        let same = |g: &Group| {
            g.labels.len() == self.positions.len()
                && self.positions.iter().zip(&g.labels).all(|(&i, pair)| labels[i] == *pair)
        };
        match self.by_hash.get(&hash).and_then(|c| c.iter().copied().find(|&gi| same(&groups[gi]))) {
            Some(gi) => Ok(gi),
            None => Err(hash),
        }
    }

    /// The key of the labels last looked up.
    fn last_key(&self, labels: &Labels) -> Labels {
        self.positions.iter().map(|&i| labels[i].clone()).collect()
    }

    fn insert(&mut self, hash: u64, gi: usize) {
        self.by_hash.entry(hash).or_default().push(gi);
    }
}

/// `a < b`, deciding on the first byte when it differs (label names mostly differ there),
/// which spares a `memcmp` call per label in the grouping walk.
fn name_lt(a: &str, b: &str) -> bool {
    match (a.as_bytes().first(), b.as_bytes().first()) {
        (Some(x), Some(y)) if x != y => x < y,
        _ => a < b,
    }
}

enum Param {
    None,
    Number(f64),
    Label(String),
}

fn aggregate(
    op: TokenId,
    grouping: &[String],
    without: bool,
    param: &Param,
    input: Vec<Sample>,
) -> Result<Vec<Sample>, String> {
    let number = match param {
        Param::Number(v) => *v,
        _ => 0.0,
    };
    let mut k: i64 = 0;
    if op == T_TOPK || op == T_BOTTOMK {
        // Prometheus's convertibleToInt64: bounded by the largest float64 below 2^63.
        if !(-9_223_372_036_854_775_808.0..=9_223_372_036_854_774_784.0).contains(&number) {
            return Err(format!("Scalar value {} overflows int64", go_g(number)));
        }
        k = number as i64;
        if k < 1 {
            return Ok(Vec::new());
        }
    }
    if op != T_COUNT_VALUES {
        return aggregate_items(op, grouping, without, number, k, input);
    }
    let value_label = match param {
        Param::Label(l) => l.clone(),
        _ => return Err("count_values needs a label name".to_string()),
    };
    if !is_valid_label_name(&value_label) {
        return Err(format!("invalid label name {}", go_quote(&value_label)));
    }
    let mut grouping = grouping.to_vec();
    if !without {
        grouping.push(value_label.clone());
        grouping.sort();
    }
    let input = input
        .into_iter()
        .map(|mut s| {
            set(&mut s.labels, &value_label, &gomath::format_float(s.value));
            s
        })
        .collect::<Vec<_>>();
    aggregate_items(op, &grouping, without, number, k, input)
}

/// The aggregation proper, over elements in input order (the order float sums depend on).
fn aggregate_items<I: Item>(
    op: TokenId,
    grouping: &[String],
    without: bool,
    number: f64,
    k: i64,
    input: Vec<I>,
) -> Result<Vec<Sample>, String> {
    let mut agg = Aggregator::new(op, grouping, without, number, k);
    for item in input {
        agg.add(item)?;
    }
    Ok(agg.finish())
}

/// One aggregation in progress: elements are added one at a time, in input order.
struct Aggregator<'g> {
    op: TokenId,
    number: f64,
    k: i64,
    index: GroupIndex<'g>,
    groups: Vec<Group>,
}

impl<'g> Aggregator<'g> {
    fn new(op: TokenId, grouping: &'g [String], without: bool, number: f64, k: i64) -> Self {
        Aggregator { op, number, k, index: GroupIndex::new(grouping, without), groups: Vec::new() }
    }

    fn add<I: Item>(&mut self, item: I) -> Result<(), String> {
        let (op, k) = (self.op, self.k);
        let gi = match self.index.lookup(item.labels(), &self.groups) {
            Ok(gi) => gi,
            Err(hash) => {
                // A new group takes its labels from its first element.
                let labels = self.index.last_key(item.labels());
                let value = item.value();
                let mut g = Group { labels, value, mean: value, count: 1, heap: Vec::new() };
                match op {
                    T_STDVAR | T_STDDEV => g.value = 0.0,
                    T_GROUP => g.value = 1.0,
                    T_TOPK | T_BOTTOMK | T_QUANTILE => g.heap.push(item.into_sample()),
                    _ => {}
                }
                self.index.insert(hash, self.groups.len());
                self.groups.push(g);
                return Ok(());
            }
        };
        let g = &mut self.groups[gi];
        let value = item.value();
        match op {
            T_SUM => g.value += value,
            T_AVG => {
                g.count += 1;
                let n = g.count as f64;
                // Inf means stay Inf unless an opposite Inf or a NaN arrives; the update below
                // would otherwise compute Inf - Inf.
                let keep_inf = g.mean.is_infinite()
                    && ((value.is_infinite() && (g.mean > 0.0) == (value > 0.0))
                        || (!value.is_infinite() && !value.is_nan()));
                if !keep_inf {
                    // Dividing each side first avoids overflow, and is what 2.42 computes.
                    g.mean += value / n - g.mean / n;
                }
            }
            T_GROUP => {}
            T_MAX => {
                if g.value < value || g.value.is_nan() {
                    g.value = value;
                }
            }
            T_MIN => {
                if g.value > value || g.value.is_nan() {
                    g.value = value;
                }
            }
            T_COUNT | T_COUNT_VALUES => g.count += 1,
            T_STDVAR | T_STDDEV => {
                // Welford's online algorithm, without compensation in 2.42's aggregation.
                g.count += 1;
                let delta = value - g.mean;
                g.mean += delta / g.count as f64;
                g.value += delta * (value - g.mean);
            }
            T_TOPK => heap_offer(&mut g.heap, item.into_sample(), k, topk_less, |top, v| top < v),
            T_BOTTOMK => heap_offer(&mut g.heap, item.into_sample(), k, bottomk_less, |top, v| top > v),
            T_QUANTILE => g.heap.push(item.into_sample()),
            _ => return Err(format!("aggregation `{}` is not supported", op_name(op))),
        }
        Ok(())
    }

    fn finish(self) -> Vec<Sample> {
        let (op, number) = (self.op, self.number);
        let mut out = Vec::with_capacity(self.groups.len());
        for mut g in self.groups {
            let value = match op {
                T_AVG => g.mean,
                T_COUNT | T_COUNT_VALUES => g.count as f64,
                T_STDVAR => g.value / g.count as f64,
                T_STDDEV => (g.value / g.count as f64).sqrt(),
                T_QUANTILE => quantile::quantile(number, g.heap.iter().map(|s| s.value).collect()),
                T_TOPK | T_BOTTOMK => {
                    // The heap keeps the weakest element on top; output strongest first, NaN last.
                    let less = if op == T_TOPK { topk_less } else { bottomk_less };
                    g.heap.sort_by(|a, b| {
                        if less(b, a) {
                            std::cmp::Ordering::Less
                        } else if less(a, b) {
                            std::cmp::Ordering::Greater
                        } else {
                            std::cmp::Ordering::Equal
                        }
                    });
                    out.extend(g.heap);
                    continue;
                }
                _ => g.value,
            };
            out.push(Sample { labels: g.labels, value });
        }
        out
    }
}

fn op_name(op: TokenId) -> String {
    promql_parser::parser::token::TokenType::new(op).to_string()
}

/// Go's `%v` for a float64 (used in the topk overflow error): shortest digits, in exponent form
/// when the decimal exponent is below -4 or at least 6 (`%g` with the shortest precision).
fn go_g(v: f64) -> String {
    if v.is_nan() {
        return "NaN".to_string();
    }
    if v.is_infinite() {
        return if v > 0.0 { "+Inf".to_string() } else { "-Inf".to_string() };
    }
    let sci = format!("{v:e}");
    let Some((mantissa, exp)) = sci.split_once('e') else { return format!("{v}") };
    let exp: i32 = exp.parse().unwrap_or(0);
    if v != 0.0 && !(-4..6).contains(&exp) {
        // Go writes at least two exponent digits with an explicit sign: 1e+20, 1.5e-05.
        let sign = if exp < 0 { '-' } else { '+' };
        format!("{mantissa}e{sign}{:02}", exp.abs())
    } else {
        format!("{v}")
    }
}

/// `vectorByValueHeap.Less`: NaN counts as the smallest, so it is evicted first.
fn topk_less(a: &Sample, b: &Sample) -> bool {
    a.value.is_nan() || a.value < b.value
}

/// `vectorByReverseValueHeap.Less`.
fn bottomk_less(a: &Sample, b: &Sample) -> bool {
    a.value.is_nan() || a.value > b.value
}

/// One topk/bottomk step: admit `s` when the heap has room or `s` beats the top (or the top is
/// NaN), evicting the top when full. Mirrors Go's container/heap so ties resolve identically.
fn heap_offer(
    heap: &mut Vec<Sample>,
    s: Sample,
    k: i64,
    less: fn(&Sample, &Sample) -> bool,
    beats: fn(f64, f64) -> bool,
) {
    let full = heap.len() as i64 >= k;
    if !full || beats(heap[0].value, s.value) || heap[0].value.is_nan() {
        if full {
            if k == 1 {
                heap[0] = s;
                return;
            }
            heap_pop(heap, less);
        }
        heap.push(s);
        let last = heap.len() - 1;
        heap_up(heap, last, less);
    }
}

fn heap_up(h: &mut [Sample], mut j: usize, less: fn(&Sample, &Sample) -> bool) {
    while j > 0 {
        let i = (j - 1) / 2;
        if !less(&h[j], &h[i]) {
            break;
        }
        h.swap(i, j);
        j = i;
    }
}

fn heap_down(h: &mut [Sample], i0: usize, n: usize, less: fn(&Sample, &Sample) -> bool) {
    let mut i = i0;
    loop {
        let j1 = 2 * i + 1;
        if j1 >= n {
            break;
        }
        let mut j = j1;
        let j2 = j1 + 1;
        if j2 < n && less(&h[j2], &h[j1]) {
            j = j2;
        }
        if !less(&h[j], &h[i]) {
            break;
        }
        h.swap(i, j);
        i = j;
    }
}

fn heap_pop(h: &mut Vec<Sample>, less: fn(&Sample, &Sample) -> bool) {
    let n = h.len() - 1;
    h.swap(0, n);
    heap_down(h, 0, n, less);
    h.pop();
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::promql::labels_from_pairs;

    fn samples(vals: &[f64]) -> Vec<Sample> {
        vals.iter()
            .enumerate()
            .map(|(i, &v)| Sample { labels: labels_from_pairs([("i", i.to_string())]), value: v })
            .collect()
    }

    #[test]
    fn topk_keeps_first_seen_on_ties_and_evicts_nan() {
        let out = aggregate(T_TOPK, &[], false, &Param::Number(2.0), samples(&[f64::NAN, 3.0, 3.0, 3.0, 1.0])).unwrap();
        let ids: Vec<&str> = out.iter().map(|s| s.labels[0].1.as_str()).collect();
        assert_eq!(ids, ["1", "2"]);
        let out = aggregate(T_BOTTOMK, &[], false, &Param::Number(1.0), samples(&[5.0, 1.0, 1.0])).unwrap();
        assert_eq!(out[0].labels[0].1, "1");
        assert!(aggregate(T_TOPK, &[], false, &Param::Number(0.5), samples(&[1.0])).unwrap().is_empty());
        assert_eq!(
            aggregate(T_TOPK, &[], false, &Param::Number(f64::NAN), samples(&[1.0])).unwrap_err(),
            "Scalar value NaN overflows int64"
        );
        assert_eq!(
            aggregate(T_TOPK, &[], false, &Param::Number(9_223_372_036_854_775_808.0), samples(&[1.0])).unwrap_err(),
            "Scalar value 9.223372036854776e+18 overflows int64"
        );
    }

    #[test]
    fn avg_uses_prometheus_incremental_mean() {
        let out = aggregate(T_AVG, &[], false, &Param::None, samples(&[0.7, 0.3, 5.5, 0.2])).unwrap();
        assert_eq!(out[0].value, 1.6749999999999998);
        let out = aggregate(T_AVG, &[], false, &Param::None, samples(&[f64::INFINITY, 1.0])).unwrap();
        assert_eq!(out[0].value, f64::INFINITY);
    }

    #[test]
    fn count_values_formats_without_exponent() {
        let out = aggregate(T_COUNT_VALUES, &[], false, &Param::Label("v".into()), samples(&[1e6, 1e6, 0.5])).unwrap();
        let got: Vec<(String, f64)> = out.iter().map(|s| (s.labels[0].1.clone(), s.value)).collect();
        assert_eq!(got, [("1000000".to_string(), 2.0), ("0.5".to_string(), 1.0)]);
        assert!(aggregate(T_COUNT_VALUES, &[], false, &Param::Label("1x".into()), vec![]).is_err());
    }

    #[test]
    fn go_float_formatting_for_errors() {
        assert_eq!(go_g(1e20), "1e+20");
        assert_eq!(go_g(1234567.0), "1.234567e+06");
        assert_eq!(go_g(123456.0), "123456");
        assert_eq!(go_g(0.000015), "1.5e-05");
        assert_eq!(go_g(0.0001), "0.0001");
        assert_eq!(go_g(-2.5), "-2.5");
        assert_eq!(go_g(f64::INFINITY), "+Inf");
    }
}
