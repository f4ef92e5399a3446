//! Load-time checks: parsing PromQL as Prometheus 2.42 reads it (the parser crate follows a
//! newer Prometheus), refusing what 2.42 does not have, and the history an expression reads, so
//! rules needing more than the retained samples are refused early. `rules check`, `rules test`
//! (rule files and `promql_expr_test` expressions) and the sidecar all go through [`parse`] and
//! [`check`], so they accept and refuse the same expressions with the same messages.

use super::EvalOptions;
use super::eval::{duration_ms, offset_ms, selector_matchers, unwrap_parens};
use super::functions::{INSTANT_FUNCTIONS, RANGE_FUNCTIONS};
use promql_parser::label::Matchers;
use promql_parser::parser::AtModifier;
use promql_parser::parser::function::{Function, register_extra_functions};
use promql_parser::parser::token::{
    T_ADD, T_ATAN2, T_AVG, T_BOTTOMK, T_COUNT, T_COUNT_VALUES, T_DIV, T_EQLC, T_GROUP, T_GTE, T_GTR, T_LAND, T_LOR,
    T_LSS, T_LTE, T_LUNLESS, T_MAX, T_MIN, T_MOD, T_MUL, T_NEQ, T_POW, T_QUANTILE, T_STDDEV, T_STDVAR, T_SUB, T_SUM,
    T_TOPK,
};
use promql_parser::parser::value::ValueType;
use promql_parser::parser::{Expr, VectorSelector};
use std::sync::Once;

const AGGREGATIONS: &[u16] =
    &[T_SUM, T_AVG, T_MIN, T_MAX, T_COUNT, T_STDDEV, T_STDVAR, T_TOPK, T_BOTTOMK, T_QUANTILE, T_COUNT_VALUES, T_GROUP];

const BINARY_OPERATORS: &[u16] = &[
    T_ADD, T_SUB, T_MUL, T_DIV, T_MOD, T_POW, T_ATAN2, T_EQLC, T_NEQ, T_GTR, T_LSS, T_GTE, T_LTE, T_LAND, T_LOR,
    T_LUNLESS,
];

/// What ends every refusal of a construct Prometheus 2.42 does not have.
const NOT_IN_2_42: &str = "is not in Prometheus 2.42";

/// Parses an expression as Prometheus 2.42 does, then refuses what 2.42 lacks ([`check`]).
/// Parse errors keep the parser's wording; everything a caller loads goes through here.
pub fn parse(text: &str) -> Result<Expr, String> {
    let expr = parse_syntax(text)?;
    check(&expr)?;
    Ok(expr)
}

/// The syntax step of [`parse`]: the parser crate, taught 2.42's `holt_winters` (renamed
/// `double_exponential_smoothing` in 3.0, which 2.42 lacks), and the lexical rules of 2.42 the
/// crate relaxed: durations where durations belong, and nowhere else.
pub fn parse_syntax(text: &str) -> Result<Expr, String> {
    static REGISTER: Once = Once::new();
    REGISTER.call_once(|| {
        // Fails only on a name clash with a built-in, which a newer crate would be refused for
        // by this module's tests (holt_winters parses); nothing to do at run time.
        let _ = register_extra_functions(vec![Function::new(
            "holt_winters",
            vec![ValueType::Matrix, ValueType::Scalar, ValueType::Scalar],
            0,
            ValueType::Vector,
            false,
        )]);
    });
    let expr = promql_parser::parser::parse(text)?;
    check_durations(text)?;
    Ok(expr)
}

/// Prometheus 2.42's lexer: inside `[...]` and after `offset` only durations (`5m`, not `300`);
/// elsewhere a duration is an error (`1d + 1`, `x @ 1d`). The crate accepts both since it
/// follows Prometheus 3, where numbers stand for seconds.
fn check_durations(text: &str) -> Result<(), String> {
    let b = text.as_bytes();
    let mut i = 0;
    let mut in_brackets = false;
    // After `offset` (and an optional `-`), a duration must follow.
    let mut after_offset = false;
    // After `@` (and an optional sign), a timestamp in seconds within int64 must follow.
    let mut after_at = false;
    while i < b.len() {
        let c = b[i];
        match c {
            b'"' | b'\'' | b'`' => {
                i += 1;
                while i < b.len() && b[i] != c {
                    if b[i] == b'\\' && c != b'`' {
                        i += 1;
                    }
                    i += 1;
                }
                i += 1;
                after_offset = false;
            }
            b'#' => {
                while i < b.len() && b[i] != b'\n' {
                    i += 1;
                }
            }
            b'[' => {
                in_brackets = true;
                i += 1;
            }
            b']' => {
                in_brackets = false;
                i += 1;
            }
            b'-' if after_offset || after_at => i += 1,
            b'+' if after_at => i += 1,
            b'@' => {
                after_at = true;
                i += 1;
            }
            _ if c.is_ascii_whitespace() => i += 1,
            // In brackets `:` separates a subquery's range and step; elsewhere it is a name's.
            _ if c.is_ascii_alphabetic() || c == b'_' || (c == b':' && !in_brackets) => {
                let start = i;
                while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'_' || b[i] == b':') {
                    i += 1;
                }
                after_offset = text[start..i].eq_ignore_ascii_case("offset");
                after_at = false;
            }
            _ if c.is_ascii_digit() || (c == b'.' && b.get(i + 1).is_some_and(u8::is_ascii_digit)) => {
                let start = i;
                while i < b.len() {
                    let d = b[i];
                    let exponent_sign = (d == b'+' || d == b'-')
                        && matches!(b[i - 1], b'e' | b'E')
                        && !text[start..i].starts_with("0x")
                        && !text[start..i].starts_with("0X")
                        && text[start..i - 1].bytes().all(|x| x.is_ascii_digit() || x == b'.');
                    if d.is_ascii_alphanumeric() || d == b'.' || d == b'_' || exponent_sign {
                        i += 1;
                    } else {
                        break;
                    }
                }
                let token = &text[start..i];
                let is_duration = is_duration_token(token);
                if (in_brackets || after_offset) && !is_duration {
                    let place = if after_offset { "in offset" } else { "in range or subquery" };
                    return Err(format!(
                        "{}: parse error: unexpected number \"{token}\" {place}, expected duration",
                        position(text, start)
                    ));
                }
                if !in_brackets && !after_offset && is_duration {
                    return Err(format!("{}: parse error: unexpected duration \"{token}\"", position(text, start)));
                }
                // The crate only refuses what is beyond f64; 2.42 what is beyond int64 seconds.
                if after_at {
                    let secs = super::gomath::parse_float(token).unwrap_or(0.0);
                    if secs >= 9_223_372_036_854_775_807.0 {
                        // promtool points at the whole expression here.
                        return Err(format!("1:1: parse error: timestamp out of bounds for @ modifier: {secs:.6}"));
                    }
                }
                after_offset = false;
                after_at = false;
            }
            _ => {
                after_offset = false;
                after_at = false;
                i += 1;
            }
        }
    }
    Ok(())
}

/// Prometheus's `line:column` (1-based, in bytes) of a byte offset, as its parse errors begin.
fn position(text: &str, offset: usize) -> String {
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let column = offset - before.rfind('\n').map_or(0, |i| i + 1) + 1;
    format!("{line}:{column}")
}

/// `5m`, `1h30m`, `100ms`: digits and units, nothing else.
fn is_duration_token(token: &str) -> bool {
    let b = token.as_bytes();
    let mut i = 0;
    let mut units = 0;
    while i < b.len() {
        let digits = i;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        if i == digits {
            return false;
        }
        if token[i..].starts_with("ms") {
            i += 2;
        } else if i < b.len() && matches!(b[i], b's' | b'm' | b'h' | b'd' | b'w' | b'y') {
            i += 1;
        } else {
            return false;
        }
        units += 1;
    }
    units > 0
}

/// Refuses constructs Prometheus 2.42 does not have (functions, aggregations and operators of
/// later versions the parser crate knows), naming the first one found, e.g.
/// "function `sort_by_label` is not in Prometheus 2.42".
pub fn check(expr: &Expr) -> Result<(), String> {
    match expr {
        Expr::NumberLiteral(_) | Expr::StringLiteral(_) => Ok(()),
        Expr::Paren(p) => check(&p.expr),
        Expr::Unary(u) => check(&u.expr),
        Expr::VectorSelector(vs) => check_selector(vs),
        Expr::MatrixSelector(ms) => check_selector(&ms.vs),
        Expr::Subquery(sq) => check(&sq.expr),
        Expr::Aggregate(a) => {
            if !AGGREGATIONS.contains(&a.op.id()) {
                return Err(format!("aggregation `{}` {NOT_IN_2_42}", a.op));
            }
            if let Some(p) = &a.param {
                check(p)?;
            }
            check(&a.expr)
        }
        Expr::Binary(b) => {
            if !BINARY_OPERATORS.contains(&b.op.id()) {
                return Err(format!("operator `{}` {NOT_IN_2_42}", b.op));
            }
            if b.modifier.as_ref().is_some_and(|m| m.fill_values.lhs.is_some() || m.fill_values.rhs.is_some()) {
                return Err(format!("fill modifiers (fill, fill_left, fill_right) are {}", &NOT_IN_2_42[3..]));
            }
            check(&b.lhs)?;
            check(&b.rhs)
        }
        Expr::Call(c) => {
            let name = c.func.name;
            if !RANGE_FUNCTIONS.contains(&name) && !INSTANT_FUNCTIONS.contains(&name) {
                return Err(format!("function `{name}` {NOT_IN_2_42}"));
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
        Expr::Extension(e) => Err(format!("extension expression `{}` {NOT_IN_2_42}", e.expr.name())),
    }
}

fn check_selector(vs: &VectorSelector) -> Result<(), String> {
    if !vs.matchers.or_matchers.is_empty() {
        return Err(format!("`or` between label matchers {NOT_IN_2_42}"));
    }
    Ok(())
}

/// The longest history (ms before the evaluation time) the expression reads: lookback for
/// instant selectors, ranges for range selectors, plus offsets, plus subquery ranges on top of
/// what their inner expression reads at each step. 0 for expressions reading no samples;
/// i64::MAX for a fixed `@` time, which reads a moment that recedes as time goes on.
pub fn history_needed_ms(expr: &Expr, opts: &EvalOptions) -> i64 {
    reach(expr, opts).unwrap_or(0).max(0)
}

/// How far back from the evaluation time the expression reads, None when it reads nothing.
fn reach(expr: &Expr, opts: &EvalOptions) -> Option<i64> {
    match expr {
        Expr::NumberLiteral(_) | Expr::StringLiteral(_) | Expr::Extension(_) => None,
        Expr::Paren(p) => reach(&p.expr, opts),
        Expr::Unary(u) => reach(&u.expr, opts),
        Expr::VectorSelector(vs) => Some(at_reach(&vs.at, offset_ms(&vs.offset).saturating_add(opts.lookback_ms))),
        Expr::MatrixSelector(ms) => {
            Some(at_reach(&ms.vs.at, offset_ms(&ms.vs.offset).saturating_add(duration_ms(ms.range))))
        }
        Expr::Subquery(sq) => reach(&sq.expr, opts).map(|inner| {
            at_reach(&sq.at, inner.saturating_add(duration_ms(sq.range)).saturating_add(offset_ms(&sq.offset)))
        }),
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

/// `@ start()`/`@ end()` are the evaluation time itself; a fixed time has no bound.
fn at_reach(at: &Option<AtModifier>, reach: i64) -> i64 {
    match at {
        Some(AtModifier::At(_)) => i64::MAX,
        _ => reach,
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
        parse(q).map(|_| ())
    }

    fn hist(q: &str) -> i64 {
        history_needed_ms(&promql_parser::parser::parse(q).unwrap(), &EvalOptions::default())
    }

    #[test]
    fn refuses_unsupported_constructs() {
        // Each of these, written to a rule file, fails `promtool check rules` (2.42).
        assert_eq!(chk("limitk(2, x)").unwrap_err(), "aggregation `limitk` is not in Prometheus 2.42");
        assert_eq!(chk("limit_ratio(0.5, x)").unwrap_err(), "aggregation `limit_ratio` is not in Prometheus 2.42");
        for f in [
            "sort_by_label(x, \"a\")",
            "double_exponential_smoothing(x[5m], 0.5, 0.5)",
            "histogram_stddev(x)",
            "mad_over_time(x[5m])",
            "info(x)",
            "first_over_time(x[5m])",
            "step()",
            "start()",
        ] {
            assert!(chk(f).unwrap_err().ends_with("is not in Prometheus 2.42"), "{f}");
        }
        assert_eq!(
            chk("rate(x[300])").unwrap_err(),
            "1:8: parse error: unexpected number \"300\" in range or subquery, expected duration"
        );
        // Positions as promtool prints them for the same expressions.
        assert_eq!(
            chk("x[5m:60]").unwrap_err(),
            "1:6: parse error: unexpected number \"60\" in range or subquery, expected duration"
        );
        assert_eq!(
            chk("x offset -300").unwrap_err(),
            "1:11: parse error: unexpected number \"300\" in offset, expected duration"
        );
        assert_eq!(chk("1d + 1").unwrap_err(), "1:1: parse error: unexpected duration \"1d\"");
        assert_eq!(chk("x @ 1d").unwrap_err(), "1:5: parse error: unexpected duration \"1d\"");
        assert_eq!(chk("x +\n  1d").unwrap_err(), "2:3: parse error: unexpected duration \"1d\"");
        assert_eq!(
            chk("x @ -1e20").unwrap_err(),
            "1:1: parse error: timestamp out of bounds for @ modifier: 100000000000000000000.000000"
        );
        assert!(chk("x{a=\"b\" or c=\"d\"}").is_err());
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
            "holt_winters(x[5m], 0.5, 0.5) + predict_linear(x[1h] offset -5m, 3600) atan2 on() pi()",
            "x @ start() + rate(y[5m] @ end()) - max_over_time(z[5m:1m] @ 100) * (x @ -1.5 offset 1h30m)",
            "sort_desc(sgn(log2(x)) + log10(x) + deg(rad(x)) + hour() + minute(x) + days_in_month() + year())",
            "histogram_fraction(0, 0.5, x) + histogram_count(x) + histogram_sum(x) + acosh(atanh(x))",
            "x{a=\"1e3\", b=~\"5m\"} offset 1d # 300 1d\n + 0x1f + 1e-3 + .5 + Inf + NaN + 1E+3 + max_over_time(x[1h1m:5s])",
        ] {
            assert_eq!(chk(q), Ok(()), "{q}");
        }
    }

    #[test]
    fn the_duration_scan_survives_any_text() {
        for text in [
            "\"abc\\",
            "'",
            "`x",
            "x offset",
            "x offset -",
            "x @",
            "x @ +",
            "[",
            "]]",
            "1e",
            "1e+",
            "0x",
            "é[5m]ü",
            "#",
        ] {
            let _ = check_durations(text);
        }
        assert!(check_durations("x{a=\"[300]\"} offset 5m").is_ok());
    }

    #[test]
    fn history_covers_ranges_offsets_and_subqueries() {
        assert_eq!(hist("1 + 2"), 0);
        assert_eq!(hist("up"), 300_000);
        assert_eq!(hist("up offset 1h"), 3_900_000);
        assert_eq!(hist("rate(x[10m]) + up"), 600_000);
        assert_eq!(hist("max_over_time(rate(x[5m])[1h:1m] offset 2m)"), 300_000 + 3_600_000 + 120_000);
        assert_eq!(hist("max_over_time(vector(1)[1h:1m])"), 0);
        assert_eq!(hist("rate(x[5m] @ end()) + y @ start() offset 1m"), 360_000);
        assert_eq!(hist("x @ 100"), i64::MAX);
        assert_eq!(hist("max_over_time(x[5m:1m] @ 100)"), i64::MAX);
    }
}
