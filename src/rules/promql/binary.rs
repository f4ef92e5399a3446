//! Binary operators: scalar arithmetic and comparisons, vector/scalar operations, set operators
//! and one-to-one / many-to-one vector matching with Prometheus 2.42's result labels and errors.

use super::eval::{Evaluator, check_unique, type_name};
use super::labels::{del, drop_name, format_labels, get, keep, set};
use super::{Labels, METRIC_NAME, Sample, Value, gomath, gotrig};
use foldhash::{HashMap, HashMapExt, HashSet, HashSetExt};
use promql_parser::parser::token::{
    T_ADD, T_ATAN2, T_DIV, T_EQLC, T_GTE, T_GTR, T_LAND, T_LOR, T_LSS, T_LTE, T_LUNLESS, T_MOD, T_MUL, T_NEQ, T_POW,
    T_SUB, TokenId,
};
use promql_parser::parser::{BinaryExpr, LabelModifier, VectorMatchCardinality};

/// How two vectors are matched: the `on`/`ignoring` list and the cardinality.
struct Matching<'m> {
    on: bool,
    labels: &'m [String],
    card: &'m VectorMatchCardinality,
}

pub(crate) fn eval(ev: &Evaluator, b: &BinaryExpr, t: i64) -> Result<Value, String> {
    let lhs = ev.eval(&b.lhs, t)?;
    let rhs = ev.eval(&b.rhs, t)?;
    let op = b.op.id();
    let return_bool = b.return_bool();
    let one_to_one = VectorMatchCardinality::OneToOne;
    let (on, labels, card): (bool, &[String], &VectorMatchCardinality) = match &b.modifier {
        None => (false, &[], &one_to_one),
        Some(m) => {
            let (on, labels): (bool, &[String]) = match &m.matching {
                None => (false, &[]),
                Some(LabelModifier::Include(l)) => (true, &l.labels),
                Some(LabelModifier::Exclude(l)) => (false, &l.labels),
            };
            if m.fill_values.lhs.is_some() || m.fill_values.rhs.is_some() {
                return Err("fill modifiers are not supported".to_string());
            }
            (on, labels, &m.card)
        }
    };
    let matching = Matching { on, labels, card };
    match (lhs, rhs) {
        (Value::Scalar(l), Value::Scalar(r)) => Ok(Value::Scalar(scalar_binop(op, l, r)?)),
        (Value::Vector(l), Value::Scalar(r)) => check_unique(vector_scalar(op, l, r, false, return_bool)?),
        (Value::Scalar(l), Value::Vector(r)) => check_unique(vector_scalar(op, r, l, true, return_bool)?),
        (Value::Vector(l), Value::Vector(r)) => {
            let out = match op {
                T_LAND => vector_and(l, r, &matching),
                T_LOR => vector_or(l, r, &matching),
                T_LUNLESS => vector_unless(l, r, &matching),
                _ => vector_binop(op, l, r, &matching, return_bool)?,
            };
            check_unique(out)
        }
        (l, r) => {
            Err(format!("binary operator {} is not defined between a {} and a {}", b.op, type_name(&l), type_name(&r)))
        }
    }
}

fn is_comparison(op: TokenId) -> bool {
    matches!(op, T_EQLC | T_NEQ | T_GTR | T_LSS | T_GTE | T_LTE)
}

/// Arithmetic results drop the metric name; comparisons (filters) keep it, and so does
/// `atan2`, which Prometheus 2.42's `shouldDropMetricName` does not list.
fn should_drop_name(op: TokenId) -> bool {
    matches!(op, T_ADD | T_SUB | T_MUL | T_DIV | T_POW | T_MOD)
}

fn btos(b: bool) -> f64 {
    if b { 1.0 } else { 0.0 }
}

fn scalar_binop(op: TokenId, l: f64, r: f64) -> Result<f64, String> {
    Ok(match op {
        T_ADD => l + r,
        T_SUB => l - r,
        T_MUL => l * r,
        T_DIV => l / r,
        // Go's math.Mod is an exact remainder with the dividend's sign, as Rust's `%`.
        T_MOD => l % r,
        T_POW => gomath::pow(l, r),
        T_ATAN2 => gotrig::atan2(l, r),
        T_EQLC => btos(l == r),
        T_NEQ => btos(l != r),
        T_GTR => btos(l > r),
        T_LSS => btos(l < r),
        T_GTE => btos(l >= r),
        T_LTE => btos(l <= r),
        _ => return Err(format!("operator {} is not supported", op_name(op))),
    })
}

/// Prometheus's `vectorElemBinop`: the value and, for comparisons, whether the element is kept
/// (a filtering comparison keeps the left operand's value).
fn elem_binop(op: TokenId, l: f64, r: f64) -> Result<(f64, bool), String> {
    Ok(match op {
        T_EQLC => (l, l == r),
        T_NEQ => (l, l != r),
        T_GTR => (l, l > r),
        T_LSS => (l, l < r),
        T_GTE => (l, l >= r),
        T_LTE => (l, l <= r),
        _ => (scalar_binop(op, l, r)?, true),
    })
}

fn op_name(op: TokenId) -> String {
    promql_parser::parser::token::TokenType::new(op).to_string()
}

/// Vector-scalar operations; `swap` is set when the scalar was on the left. A comparison keeps
/// the vector element's own value even when the vector is on the right (`8 < x`).
fn vector_scalar(
    op: TokenId,
    vec: Vec<Sample>,
    scalar: f64,
    swap: bool,
    return_bool: bool,
) -> Result<Vec<Sample>, String> {
    let mut out = Vec::with_capacity(vec.len());
    for mut s in vec {
        let (lv, rv) = if swap { (scalar, s.value) } else { (s.value, scalar) };
        let (mut value, mut keep) = elem_binop(op, lv, rv)?;
        if is_comparison(op) && swap {
            value = rv;
        }
        if return_bool {
            value = btos(keep);
            keep = true;
        }
        if keep {
            s.value = value;
            if should_drop_name(op) || return_bool {
                s.labels = drop_name(&s.labels);
            }
            out.push(s);
        }
    }
    Ok(out)
}

/// The labels two elements are matched on: only the `on` labels, or all but the `ignoring`
/// labels and the metric name.
fn signature(labels: &Labels, m: &Matching) -> Labels {
    if m.on {
        keep(labels, m.labels)
    } else {
        labels.iter().filter(|(k, _)| k != METRIC_NAME && !m.labels.iter().any(|n| n == k)).cloned().collect()
    }
}

fn vector_and(lhs: Vec<Sample>, rhs: Vec<Sample>, m: &Matching) -> Vec<Sample> {
    if lhs.is_empty() || rhs.is_empty() {
        return Vec::new();
    }
    let right: HashSet<Labels> = rhs.iter().map(|s| signature(&s.labels, m)).collect();
    lhs.into_iter().filter(|s| right.contains(&signature(&s.labels, m))).collect()
}

fn vector_or(lhs: Vec<Sample>, rhs: Vec<Sample>, m: &Matching) -> Vec<Sample> {
    if lhs.is_empty() {
        return rhs;
    }
    if rhs.is_empty() {
        return lhs;
    }
    let left: HashSet<Labels> = lhs.iter().map(|s| signature(&s.labels, m)).collect();
    let mut out = lhs;
    out.extend(rhs.into_iter().filter(|s| !left.contains(&signature(&s.labels, m))));
    out
}

fn vector_unless(lhs: Vec<Sample>, rhs: Vec<Sample>, m: &Matching) -> Vec<Sample> {
    if lhs.is_empty() || rhs.is_empty() {
        return lhs;
    }
    let right: HashSet<Labels> = rhs.iter().map(|s| signature(&s.labels, m)).collect();
    lhs.into_iter().filter(|s| !right.contains(&signature(&s.labels, m))).collect()
}

/// Arithmetic and comparison between two vectors (Prometheus's `VectorBinop`). The right side
/// is the "one" side; for group_right the sides are swapped first and swapped back for the values.
fn vector_binop(
    op: TokenId,
    lhs: Vec<Sample>,
    rhs: Vec<Sample>,
    m: &Matching,
    return_bool: bool,
) -> Result<Vec<Sample>, String> {
    if lhs.is_empty() || rhs.is_empty() {
        return Ok(Vec::new());
    }
    let (include, one_to_many): (&[String], bool) = match m.card {
        VectorMatchCardinality::OneToOne => (&[], false),
        VectorMatchCardinality::ManyToOne(l) => (&l.labels, false),
        VectorMatchCardinality::OneToMany(l) => (&l.labels, true),
        VectorMatchCardinality::ManyToMany => {
            return Err("many-to-many matching is only allowed for set operators".to_string());
        }
    };
    let one_to_one = matches!(m.card, VectorMatchCardinality::OneToOne);
    let (lhs, rhs) = if one_to_many { (rhs, lhs) } else { (lhs, rhs) };

    let mut right_sigs: HashMap<Labels, &Sample> = HashMap::with_capacity(rhs.len());
    for rs in &rhs {
        let sig = signature(&rs.labels, m);
        if let Some(dup) = right_sigs.get(&sig) {
            let side = if one_to_many { "left" } else { "right" };
            return Err(format!(
                "found duplicate series for the match group {} on the {side} hand-side of the operation: [{}, {}];\
                 many-to-many matching not allowed: matching labels must be unique on one side",
                format_labels(&sig),
                format_labels(&rs.labels),
                format_labels(&dup.labels)
            ));
        }
        right_sigs.insert(sig, rs);
    }

    // Per match group: None for one-to-one (seen once), or the result label sets produced so far.
    let mut matched: HashMap<Labels, Option<HashSet<Labels>>> = HashMap::new();
    let mut out = Vec::new();
    for ls in &lhs {
        let sig = signature(&ls.labels, m);
        let Some(rs) = right_sigs.get(&sig) else { continue };
        let (vl, vr) = if one_to_many { (rs.value, ls.value) } else { (ls.value, rs.value) };
        let (mut value, keep) = elem_binop(op, vl, vr)?;
        if return_bool {
            value = btos(keep);
        } else if !keep {
            continue;
        }
        let mut metric = result_metric(&ls.labels, &rs.labels, op, m, include);
        if return_bool {
            metric = drop_name(&metric);
        }
        if one_to_one {
            if matched.contains_key(&sig) {
                return Err(
                    "multiple matches for labels: many-to-one matching must be explicit (group_left/group_right)"
                        .to_string(),
                );
            }
            matched.insert(sig, None);
        } else {
            let seen = matched.entry(sig).or_insert_with(|| Some(HashSet::new()));
            if seen.as_mut().is_some_and(|seen| !seen.insert(metric.clone())) {
                return Err("multiple matches for labels: grouping labels must ensure unique matches".to_string());
            }
        }
        out.push(Sample { labels: metric, value });
    }
    Ok(out)
}

/// Prometheus's `resultMetric`: the "many" side's labels, without the name for arithmetic,
/// reduced to the `on` labels (or without the `ignoring` ones) for one-to-one matching, with the
/// group_left/group_right labels copied from the "one" side.
fn result_metric(lhs: &Labels, rhs: &Labels, op: TokenId, m: &Matching, include: &[String]) -> Labels {
    let mut out = lhs.clone();
    if should_drop_name(op) {
        del(&mut out, &[METRIC_NAME.to_string()]);
    }
    if matches!(m.card, VectorMatchCardinality::OneToOne) {
        if m.on {
            out = keep(&out, m.labels);
        } else {
            del(&mut out, m.labels);
        }
    }
    for name in include {
        set(&mut out, name, get(rhs, name));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::promql::{EvalOptions, MemoryStorage, eval_instant, labels_from_pairs};

    fn storage() -> MemoryStorage {
        let mut st = MemoryStorage::new();
        for (name, job, inst, v) in [
            ("a", "x", "1", 6.0),
            ("a", "x", "2", 10.0),
            ("b", "x", "1", 3.0),
            ("one", "x", "", 2.0),
            ("dup", "x", "", 1.0),
        ] {
            st.add(labels_from_pairs([("__name__", name), ("job", job), ("i", inst)]), vec![(0, v)]);
        }
        st.add(labels_from_pairs([("__name__", "dup"), ("job", "x"), ("other", "y")]), vec![(0, 1.0)]);
        st
    }

    fn run(q: &str) -> Result<Value, String> {
        let expr = promql_parser::parser::parse(q).unwrap();
        eval_instant(&expr, &storage(), 0, &EvalOptions::default())
    }

    fn vector(q: &str) -> Vec<(String, f64)> {
        let Ok(Value::Vector(mut v)) = run(q) else { panic!("{q}: {:?}", run(q)) };
        v.sort_by(|a, b| a.labels.cmp(&b.labels));
        v.into_iter().map(|s| (format_labels(&s.labels), s.value)).collect()
    }

    #[test]
    fn many_to_many_is_refused_with_prometheus_message() {
        let err = run("a * on(job) dup").unwrap_err();
        assert!(
            err.starts_with("found duplicate series for the match group {job=\"x\"} on the right hand-side"),
            "{err}"
        );
        assert!(err.ends_with("many-to-many matching not allowed: matching labels must be unique on one side"));
        let err = run("dup * on(job) group_right a").unwrap_err();
        assert!(err.contains("on the left hand-side"), "{err}");
    }

    #[test]
    fn one_to_one_needs_unique_left_side() {
        let err = run("a * on(job) one").unwrap_err();
        assert_eq!(err, "multiple matches for labels: many-to-one matching must be explicit (group_left/group_right)");
        assert_eq!(
            vector("a * on(job) group_left one"),
            [(r#"{i="1", job="x"}"#.to_string(), 12.0), (r#"{i="2", job="x"}"#.to_string(), 20.0)]
        );
    }

    #[test]
    fn grouping_labels_must_make_results_unique() {
        let err = run("a * on(job) group_left(i) one").unwrap_err();
        assert_eq!(err, "multiple matches for labels: grouping labels must ensure unique matches");
    }

    #[test]
    fn comparison_filters_keep_left_value_and_name() {
        assert_eq!(vector("a > on(job, i) b"), [(r#"{i="1", job="x"}"#.to_string(), 6.0)]);
        assert_eq!(vector("a > ignoring(nothing) b"), [(r#"{__name__="a", i="1", job="x"}"#.to_string(), 6.0)]);
        assert_eq!(vector("3 < bool b"), [(r#"{i="1", job="x"}"#.to_string(), 0.0)]);
        assert_eq!(vector("7 > a"), [(r#"{__name__="a", i="1", job="x"}"#.to_string(), 6.0)]);
    }

    #[test]
    fn arithmetic_dropping_names_can_collide() {
        assert_eq!(run("{__name__=~\"a|b\", i=\"1\"} * 2").unwrap_err(), super::super::eval::DUPLICATE_LABELSET);
    }
}
