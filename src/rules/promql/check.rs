//! Load-time checks: refusing the PromQL constructs the evaluator does not implement, and the
//! history an expression reads, so rules needing more than the retained samples are refused early.

use super::EvalOptions;
use super::eval::{duration_ms, offset_ms, selector_matchers, unwrap_parens};
use super::functions::{INSTANT_FUNCTIONS, RANGE_FUNCTIONS};
use promql_parser::label::Matchers;
use promql_parser::parser::token::{
    T_ADD, T_AVG, T_BOTTOMK, T_COUNT, T_COUNT_VALUES, T_DIV, T_EQLC, T_GROUP, T_GTE, T_GTR, T_LAND, T_LOR, T_LSS,
    T_LTE, T_LUNLESS, T_MAX, T_MIN, T_MOD, T_MUL, T_NEQ, T_POW, T_QUANTILE, T_STDDEV, T_STDVAR, T_SUB, T_SUM, T_TOPK,
};
use promql_parser::parser::{Expr, VectorSelector};

const AGGREGATIONS: &[u16] =
    &[T_SUM, T_AVG, T_MIN, T_MAX, T_COUNT, T_STDDEV, T_STDVAR, T_TOPK, T_BOTTOMK, T_QUANTILE, T_COUNT_VALUES, T_GROUP];

const BINARY_OPERATORS: &[u16] =
    &[T_ADD, T_SUB, T_MUL, T_DIV, T_MOD, T_POW, T_EQLC, T_NEQ, T_GTR, T_LSS, T_GTE, T_LTE, T_LAND, T_LOR, T_LUNLESS];

/// Refuses constructs outside the supported subset, naming the first one found, e.g.
/// "function `predict_linear` is not supported" or "the @ modifier is not supported".
pub fn check(expr: &Expr) -> Result<(), String> {
    match expr {
        Expr::NumberLiteral(_) | Expr::StringLiteral(_) => Ok(()),
        Expr::Paren(p) => check(&p.expr),
        Expr::Unary(u) => check(&u.expr),
        Expr::VectorSelector(vs) => check_selector(vs),
        Expr::MatrixSelector(ms) => check_selector(&ms.vs),
        Expr::Subquery(sq) => {
            if sq.at.is_some() {
                return Err("the @ modifier is not supported".to_string());
            }
            check(&sq.expr)
        }
        Expr::Aggregate(a) => {
            if !AGGREGATIONS.contains(&a.op.id()) {
                return Err(format!("aggregation `{}` is not supported", a.op));
            }
            if let Some(p) = &a.param {
                check(p)?;
            }
            check(&a.expr)
        }
        Expr::Binary(b) => {
            if !BINARY_OPERATORS.contains(&b.op.id()) {
                return Err(format!("operator `{}` is not supported", b.op));
            }
            if b.modifier.as_ref().is_some_and(|m| m.fill_values.lhs.is_some() || m.fill_values.rhs.is_some()) {
                return Err("fill modifiers (fill, fill_left, fill_right) are not supported".to_string());
            }
            check(&b.lhs)?;
            check(&b.rhs)
        }
        Expr::Call(c) => {
            let name = c.func.name;
            if !RANGE_FUNCTIONS.contains(&name) && !INSTANT_FUNCTIONS.contains(&name) {
                return Err(format!("function `{name}` is not supported"));
            }
            for a in &c.args.args {
                check(a)?;
                if RANGE_FUNCTIONS.contains(&name)
                    && matches!(a.value_type(), promql_parser::parser::value::ValueType::Matrix)
                    && !matches!(unwrap_parens(a), Expr::MatrixSelector(_) | Expr::Subquery(_))
                {
                    return Err(format!("function `{name}` needs a range selector or a subquery"));
                }
            }
            Ok(())
        }
        Expr::Extension(e) => Err(format!("extension expression `{}` is not supported", e.expr.name())),
    }
}

fn check_selector(vs: &VectorSelector) -> Result<(), String> {
    if vs.at.is_some() {
        return Err("the @ modifier is not supported".to_string());
    }
    if !vs.matchers.or_matchers.is_empty() {
        return Err("`or` between label matchers is not supported".to_string());
    }
    Ok(())
}

/// The longest history (ms before the evaluation time) the expression reads: lookback for
/// instant selectors, ranges for range selectors, plus offsets, plus subquery ranges on top of
/// what their inner expression reads at each step. 0 for expressions reading no samples.
pub fn history_needed_ms(expr: &Expr, opts: &EvalOptions) -> i64 {
    reach(expr, opts).unwrap_or(0).max(0)
}

/// How far back from the evaluation time the expression reads, None when it reads nothing.
fn reach(expr: &Expr, opts: &EvalOptions) -> Option<i64> {
    match expr {
        Expr::NumberLiteral(_) | Expr::StringLiteral(_) | Expr::Extension(_) => None,
        Expr::Paren(p) => reach(&p.expr, opts),
        Expr::Unary(u) => reach(&u.expr, opts),
        Expr::VectorSelector(vs) => Some(offset_ms(&vs.offset).saturating_add(opts.lookback_ms)),
        Expr::MatrixSelector(ms) => Some(offset_ms(&ms.vs.offset).saturating_add(duration_ms(ms.range))),
        Expr::Subquery(sq) => reach(&sq.expr, opts)
            .map(|inner| inner.saturating_add(duration_ms(sq.range)).saturating_add(offset_ms(&sq.offset))),
        Expr::Aggregate(a) => max_opt(a.param.as_deref().and_then(|p| reach(p, opts)), reach(&a.expr, opts)),
        Expr::Binary(b) => max_opt(reach(&b.lhs, opts), reach(&b.rhs, opts)),
        Expr::Call(c) => c.args.args.iter().map(|a| reach(a, opts)).fold(None, max_opt),
    }
}

/// Every series selector the expression reads (metric name included in the matchers), so
/// the sidecar samples only the series some rule can see.
pub fn selectors(expr: &Expr) -> Vec<Matchers> {
    let mut out = Vec::new();
    collect_selectors(expr, &mut out);
    out
}

fn collect_selectors(expr: &Expr, out: &mut Vec<Matchers>) {
    match expr {
        Expr::NumberLiteral(_) | Expr::StringLiteral(_) | Expr::Extension(_) => {}
        Expr::Paren(p) => collect_selectors(&p.expr, out),
        Expr::Unary(u) => collect_selectors(&u.expr, out),
        Expr::VectorSelector(vs) => out.push(selector_matchers(vs)),
        Expr::MatrixSelector(ms) => out.push(selector_matchers(&ms.vs)),
        Expr::Subquery(sq) => collect_selectors(&sq.expr, out),
        Expr::Aggregate(a) => {
            if let Some(p) = &a.param {
                collect_selectors(p, out);
            }
            collect_selectors(&a.expr, out);
        }
        Expr::Binary(b) => {
            collect_selectors(&b.lhs, out);
            collect_selectors(&b.rhs, out);
        }
        Expr::Call(c) => c.args.args.iter().for_each(|a| collect_selectors(a, out)),
    }
}

fn max_opt(a: Option<i64>, b: Option<i64>) -> Option<i64> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.max(b)),
        (a, None) => a,
        (None, b) => b,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chk(q: &str) -> Result<(), String> {
        check(&promql_parser::parser::parse(q).unwrap())
    }

    fn hist(q: &str) -> i64 {
        history_needed_ms(&promql_parser::parser::parse(q).unwrap(), &EvalOptions::default())
    }

    #[test]
    fn refuses_unsupported_constructs() {
        assert_eq!(chk("predict_linear(x[5m], 60)").unwrap_err(), "function `predict_linear` is not supported");
        assert_eq!(chk("x @ 100").unwrap_err(), "the @ modifier is not supported");
        assert_eq!(chk("rate(x[5m] @ end())").unwrap_err(), "the @ modifier is not supported");
        assert_eq!(chk("max_over_time(x[5m:1m] @ 10)").unwrap_err(), "the @ modifier is not supported");
        assert_eq!(chk("limitk(2, x)").unwrap_err(), "aggregation `limitk` is not supported");
        assert_eq!(chk("x atan2 y").unwrap_err(), "operator `atan2` is not supported");
        assert!(chk("sum(rate(x[5m])) by (job) / on(job) group_left sort(y)").is_err());
    }

    #[test]
    fn accepts_the_supported_subset() {
        for q in [
            "sum by (job) (rate(http_requests_total{code=~\"5..\"}[5m] offset 1m)) / ignoring(code) group_left x",
            "histogram_quantile(0.9, sum by (le) (rate(b_bucket[5m])))",
            "max_over_time(rate(x[1m])[10m:])",
            "label_replace(up, \"a\", \"$1\", \"b\", \"(.*)\") and on() vector(1) > bool 0",
            "count_values(\"v\", x) or absent(y{a=\"b\"})",
            "-x ^ 2 % 3 unless topk(3, x)",
        ] {
            assert_eq!(chk(q), Ok(()), "{q}");
        }
    }

    #[test]
    fn history_covers_ranges_offsets_and_subqueries() {
        assert_eq!(hist("1 + 2"), 0);
        assert_eq!(hist("up"), 300_000);
        assert_eq!(hist("up offset 1h"), 3_900_000);
        assert_eq!(hist("rate(x[10m]) + up"), 600_000);
        assert_eq!(hist("max_over_time(rate(x[5m])[1h:1m] offset 2m)"), 300_000 + 3_600_000 + 120_000);
        assert_eq!(hist("max_over_time(vector(1)[1h:1m])"), 0);
    }
}
