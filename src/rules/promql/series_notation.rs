//! promtool's `input_series` notation: series selectors like `up{job="a"}` and the expanding
//! value syntax (`0+10x10 _ 1x3 stale -2-1x2`), following Prometheus's series-description grammar.

use super::labels::{is_valid_label_name, set};
use super::{Labels, METRIC_NAME, stale_nan};

/// Parses `name{label="value", ...}`, `{__name__="name", ...}`, `name` or `{}` (or "") into a
/// sorted label set. Values may use any PromQL string quoting.
pub fn parse_series_labels(s: &str) -> Result<Labels, String> {
    let err = |what: &str| format!("invalid series {s:?}: {what}");
    let text = s.trim();
    let mut labels = Labels::new();
    let mut rest = text;
    let name_len = rest.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == ':')).unwrap_or(rest.len());
    if name_len > 0 {
        let name = &rest[..name_len];
        if name.starts_with(|c: char| c.is_ascii_digit()) {
            return Err(err("a metric name must not start with a digit"));
        }
        set(&mut labels, METRIC_NAME, name);
        rest = rest[name_len..].trim_start();
    }
    if rest.is_empty() {
        return Ok(labels);
    }
    rest = rest.strip_prefix('{').ok_or_else(|| err("expected '{' after the metric name"))?;
    let mut seen: Vec<String> = Vec::new();
    loop {
        rest = rest.trim_start();
        if let Some(after) = rest.strip_prefix('}') {
            if !after.trim().is_empty() {
                return Err(err("unexpected text after '}'"));
            }
            return Ok(labels);
        }
        let n = rest.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).unwrap_or(rest.len());
        let name = &rest[..n];
        if !is_valid_label_name(name) {
            return Err(err("expected a label name"));
        }
        if seen.iter().any(|s| s == name) {
            return Err(err(&format!("label {name:?} given twice")));
        }
        seen.push(name.to_string());
        rest = rest[n..].trim_start().strip_prefix('=').ok_or_else(|| err("expected '=' after a label name"))?;
        rest = rest.trim_start();
        let len = quoted_len(rest).ok_or_else(|| err("expected a quoted label value"))?;
        let value = promql_parser::util::unquote_string(&rest[..len]).map_err(|e| err(&e))?;
        set(&mut labels, name, &value);
        rest = rest[len..].trim_start();
        if let Some(after) = rest.strip_prefix(',') {
            rest = after;
        } else if !rest.starts_with('}') {
            return Err(err("expected ',' or '}'"));
        }
    }
}

/// Length in bytes of the quoted string at the start of `s`, quotes included.
fn quoted_len(s: &str) -> Option<usize> {
    let quote = s.chars().next().filter(|c| matches!(c, '"' | '\'' | '`'))?;
    let mut escaped = false;
    for (i, c) in s.char_indices().skip(1) {
        if escaped {
            escaped = false;
        } else if c == '\\' && quote != '`' {
            escaped = true;
        } else if c == quote {
            return Some(i + c.len_utf8());
        }
    }
    None
}

/// Expands a values string into one entry per step: `None` for `_` (no sample), the staleness
/// marker for `stale`. `a+bxn` yields n+1 values a, a+b, ... (accumulated by repeated addition,
/// as Prometheus does); `axn` yields n+1 copies; `_xn` yields n gaps.
pub fn expand_series_values(s: &str) -> Result<Vec<Option<f64>>, String> {
    let mut out = Vec::new();
    for item in s.split_whitespace() {
        expand_item(item, &mut out).map_err(|e| format!("invalid series values {s:?} at {item:?}: {e}"))?;
    }
    Ok(out)
}

/// Samples at `i * interval_ms` for the i-th step of [`expand_series_values`], gaps left out.
pub fn expand_series_samples(s: &str, interval_ms: i64) -> Result<Vec<(i64, f64)>, String> {
    Ok(expand_series_values(s)?
        .into_iter()
        .enumerate()
        .filter_map(|(i, v)| v.map(|v| (i as i64 * interval_ms, v)))
        .collect())
}

fn expand_item(item: &str, out: &mut Vec<Option<f64>>) -> Result<(), String> {
    if let Some(rest) = item.strip_prefix('_') {
        if rest.is_empty() {
            out.push(None);
            return Ok(());
        }
        let n = parse_times(rest)?;
        out.extend(std::iter::repeat_n(None, n));
        return Ok(());
    }
    let (value, rest) =
        if let Some(rest) = item.strip_prefix("stale") { (stale_nan(), rest) } else { signed_number(item)? };
    if rest.is_empty() {
        out.push(Some(value));
    } else if rest.starts_with('x') {
        let n = parse_times(rest)?;
        out.extend(std::iter::repeat_n(Some(value), n + 1));
    } else if rest.starts_with(['+', '-']) {
        let (step, rest) = signed_number(rest)?;
        let n = parse_times(rest)?;
        let mut v = value;
        for _ in 0..=n {
            out.push(Some(v));
            v += step;
        }
    } else {
        return Err(format!("unexpected {rest:?}"));
    }
    Ok(())
}

/// Parses `xN` (the whole remaining text).
fn parse_times(s: &str) -> Result<usize, String> {
    let digits = s.strip_prefix('x').ok_or_else(|| format!("expected 'x<count>', got {s:?}"))?;
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("expected a repetition count after 'x', got {digits:?}"));
    }
    digits.parse::<usize>().map_err(|e| e.to_string())
}

/// An optionally signed number at the start of `s`; returns the value and the rest.
fn signed_number(s: &str) -> Result<(f64, &str), String> {
    let (negative, body) = match s.as_bytes().first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    };
    let (v, rest) = unsigned_number(body)?;
    Ok((if negative { -v } else { v }, rest))
}

/// A number token as Prometheus's series lexer reads it: decimal digits with optional fraction
/// and exponent (no hex), or `Inf`/`NaN` in any case.
fn unsigned_number(s: &str) -> Result<(f64, &str), String> {
    let word_len = s.find(|c: char| !c.is_ascii_alphabetic()).unwrap_or(s.len());
    let word = s[..word_len].to_ascii_lowercase();
    if word == "inf" {
        return Ok((f64::INFINITY, &s[word_len..]));
    }
    if word == "nan" {
        return Ok((f64::NAN, &s[word_len..]));
    }
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() && b[i].is_ascii_digit() {
        i += 1;
    }
    if i < b.len() && b[i] == b'.' {
        i += 1;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
    }
    if i < b.len() && (b[i] == b'e' || b[i] == b'E') {
        i += 1;
        if i < b.len() && (b[i] == b'+' || b[i] == b'-') {
            i += 1;
        }
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
    }
    let token = &s[..i];
    if token.is_empty() || token == "." {
        return Err(format!("expected a number, got {s:?}"));
    }
    Ok((go_number(token)?, &s[i..]))
}

/// Prometheus's `parser.number`: `strconv.ParseInt(s, 0, 64)` first (so a leading 0 means
/// octal), then `strconv.ParseFloat`.
fn go_number(token: &str) -> Result<f64, String> {
    if token.len() > 1 && token.starts_with('0') && token.bytes().all(|b| b.is_ascii_digit()) {
        if let Ok(v) = i64::from_str_radix(&token[1..], 8) {
            return Ok(v as f64);
        }
    } else if let Ok(v) = token.parse::<i64>() {
        return Ok(v as f64);
    }
    token.parse::<f64>().map_err(|_| format!("invalid number {token:?}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::promql::{format_labels, is_stale};

    fn vals(s: &str) -> Vec<Option<f64>> {
        expand_series_values(s).unwrap()
    }

    #[test]
    fn expanding_notation() {
        assert_eq!(vals("0+10x3"), [Some(0.0), Some(10.0), Some(20.0), Some(30.0)]);
        assert_eq!(vals("1x2 _ 5"), [Some(1.0), Some(1.0), Some(1.0), None, Some(5.0)]);
        assert_eq!(vals("_x3 2"), [None, None, None, Some(2.0)]);
        assert_eq!(vals("-2-1x2"), [Some(-2.0), Some(-3.0), Some(-4.0)]);
        assert_eq!(
            vals("100-2x1 +3 1e3 1.5e-1+1e-1x1"),
            [Some(100.0), Some(98.0), Some(3.0), Some(1000.0), Some(0.15), Some(0.15 + 0.1)]
        );
        assert_eq!(vals("Inf -inf"), [Some(f64::INFINITY), Some(f64::NEG_INFINITY)]);
        assert!(vals("NaN")[0].is_some_and(|v| v.is_nan() && !is_stale(v)));
        let v = vals("1 stale");
        assert!(is_stale(v[1].unwrap()));
        // a leading zero is octal, as in Go's strconv.ParseInt(s, 0, 64)
        assert_eq!(vals("010 09"), [Some(8.0), Some(9.0)]);
        // accumulation by repeated addition, not multiplication
        let acc = vals("0+0.1x3");
        assert_eq!(acc[3], Some(0.1 + 0.1 + 0.1));
        assert_eq!(expand_series_samples("1 _ 3", 60_000).unwrap(), [(0, 1.0), (120_000, 3.0)]);
    }

    #[test]
    fn expanding_notation_errors() {
        for bad in ["1+1", "x3", "1x", "abc", "1y", "_y", "1x3x", "."] {
            assert!(expand_series_values(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn series_labels() {
        let l = parse_series_labels(r#"up{job="a", instance='b:1',}"#).unwrap();
        assert_eq!(format_labels(&l), r#"{__name__="up", instance="b:1", job="a"}"#);
        let l = parse_series_labels(r#"{__name__="x:y", a="with \"quote\""}"#).unwrap();
        assert_eq!(format_labels(&l), r#"{__name__="x:y", a="with \"quote\""}"#);
        assert_eq!(parse_series_labels("{}").unwrap(), Labels::new());
        assert_eq!(parse_series_labels("").unwrap(), Labels::new());
        assert_eq!(parse_series_labels("up").unwrap().len(), 1);
        for bad in ["up{", "up{a}", "up{a=b}", "{a=\"1\" b=\"2\"}", "up{a=\"1\"} x", "{a=\"1\", a=\"2\"}"] {
            assert!(parse_series_labels(bad).is_err(), "{bad}");
        }
    }
}
