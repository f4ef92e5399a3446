//! Runs every `promql_expr_test` of the promtool-format conformance suite (tests/conformance) that
//! needs no rule files against the PromQL evaluator, comparing results the way promtool does.

// promtool (2.42) semantics reproduced here: a group without `interval` loads every input
// sample at time 0 (the first value of each series wins); input samples are loaded only up to the last evaluation tick
// (a multiple of `evaluation_interval`) not after the group's latest `eval_time`; subqueries
// without a step use `evaluation_interval`; expected labels are parsed with the series parser;
// results and expectations are compared as sorted lists with `==` on values (so NaN never
// matches); a scalar result counts as one sample with no labels.
//
// `PROMQL_CONFORMANCE_DIR=<dir>` runs the `*_test.yml` files of another directory instead.

use redline::rules::promql::{
    EvalOptions, Labels, MemoryStorage, Value, eval_instant, expand_series_values, format_labels, parse,
    parse_series_labels,
};
use serde::Deserialize;
use std::path::{Path, PathBuf};

#[derive(Deserialize)]
struct TestFile {
    #[serde(default)]
    rule_files: Vec<String>,
    #[serde(default)]
    evaluation_interval: Option<String>,
    #[serde(default)]
    tests: Vec<TestGroup>,
}

#[derive(Deserialize)]
struct TestGroup {
    #[serde(default)]
    interval: Option<String>,
    #[serde(default)]
    input_series: Vec<InputSeries>,
    #[serde(default)]
    promql_expr_test: Vec<ExprTest>,
    #[serde(default)]
    alert_rule_test: Vec<AlertTest>,
}

#[derive(Deserialize)]
struct InputSeries {
    series: String,
    #[serde(default)]
    values: String,
}

#[derive(Deserialize)]
struct ExprTest {
    expr: String,
    eval_time: String,
    #[serde(default)]
    exp_samples: Vec<ExpSample>,
}

#[derive(Deserialize)]
struct AlertTest {
    eval_time: String,
}

#[derive(Deserialize)]
struct ExpSample {
    #[serde(default)]
    labels: String,
    value: f64,
}

/// Prometheus's `model.ParseDuration`: `0`, or units y w d h m s ms in that order.
fn parse_duration_ms(s: &str) -> Result<i64, String> {
    if s == "0" {
        return Ok(0);
    }
    const UNITS: [(&str, i64); 7] = [
        ("y", 365 * 24 * 3_600_000),
        ("w", 7 * 24 * 3_600_000),
        ("d", 24 * 3_600_000),
        ("h", 3_600_000),
        ("m", 60_000),
        ("s", 1000),
        ("ms", 1),
    ];
    let mut rest = s;
    let mut total = 0i64;
    let mut next_unit = 0;
    if rest.is_empty() {
        return Err(format!("invalid duration {s:?}"));
    }
    while !rest.is_empty() {
        let digits = rest.find(|c: char| !c.is_ascii_digit()).unwrap_or(rest.len());
        let n: i64 = rest[..digits].parse().map_err(|_| format!("invalid duration {s:?}"))?;
        rest = &rest[digits..];
        let unit_len = rest.find(|c: char| c.is_ascii_digit()).unwrap_or(rest.len());
        let unit = &rest[..unit_len];
        let pos = UNITS.iter().position(|(u, _)| *u == unit).ok_or_else(|| format!("invalid duration {s:?}"))?;
        if pos < next_unit {
            return Err(format!("invalid duration {s:?}: units out of order"));
        }
        next_unit = pos + 1;
        total += n * UNITS[pos].1;
        rest = &rest[unit_len..];
    }
    Ok(total)
}

fn suite_dir() -> PathBuf {
    match std::env::var_os("PROMQL_CONFORMANCE_DIR") {
        Some(d) => PathBuf::from(d),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/conformance"),
    }
}

fn describe(samples: &[(Labels, f64)]) -> String {
    if samples.is_empty() {
        return "(nothing)".to_string();
    }
    samples.iter().map(|(l, v)| format!("{} {v:?}", format_labels(l))).collect::<Vec<_>>().join(", ")
}

/// Evaluates one expression as promtool's query function does (scalar -> one `{}` sample).
fn run_query(
    expr_text: &str,
    storage: &MemoryStorage,
    t: i64,
    opts: &EvalOptions,
) -> Result<Vec<(Labels, f64)>, String> {
    let expr = parse(expr_text).map_err(|e| format!("refused: {e}"))?;
    match eval_instant(&expr, storage, t, opts)? {
        Value::Vector(v) => Ok(v.into_iter().map(|s| (s.labels, s.value)).collect()),
        Value::Scalar(v) => Ok(vec![(Labels::new(), v)]),
        other => Err(format!("rule result is not a vector or scalar: {other:?}")),
    }
}

fn same(exp: &[(Labels, f64)], got: &[(Labels, f64)]) -> bool {
    exp.len() == got.len() && exp.iter().zip(got).all(|((el, ev), (gl, gv))| el == gl && ev == gv)
}

#[test]
fn conformance_suite() {
    let dir = suite_dir();
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.ends_with("_test.yml")))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no *_test.yml files in {}", dir.display());

    let mut passed = 0usize;
    let mut failures: Vec<String> = Vec::new();
    let mut skipped_files = Vec::new();
    for path in &files {
        let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("reading {name}: {e}"));
        let file: TestFile = serde_saphyr::from_str(&text).unwrap_or_else(|e| panic!("parsing {name}: {e}"));
        if !file.rule_files.is_empty() {
            // Expressions there read series recorded by rules: the rule engine's tests cover them.
            skipped_files.push(name);
            continue;
        }
        let eval_interval = parse_duration_ms(file.evaluation_interval.as_deref().unwrap_or("1m")).unwrap();
        for (gi, group) in file.tests.iter().enumerate() {
            let interval = match &group.interval {
                Some(i) => parse_duration_ms(i).unwrap(),
                None => 0,
            };
            let eval_times: Vec<i64> = group
                .promql_expr_test
                .iter()
                .map(|t| &t.eval_time)
                .chain(group.alert_rule_test.iter().map(|t| &t.eval_time))
                .map(|s| parse_duration_ms(s).unwrap_or_else(|e| panic!("{name}: {e}")))
                .collect();
            let max_t = eval_times.iter().copied().max().unwrap_or(0);
            let loaded_until = max_t / eval_interval * eval_interval;

            let mut storage = MemoryStorage::new();
            for s in &group.input_series {
                let labels = parse_series_labels(&s.series).unwrap_or_else(|e| panic!("{name}: {e}"));
                let values = expand_series_values(&s.values).unwrap_or_else(|e| panic!("{name}: {e}"));
                let samples: Vec<(i64, f64)> = values
                    .into_iter()
                    .enumerate()
                    .filter_map(|(i, v)| v.map(|v| (i as i64 * interval, v)))
                    .filter(|&(t, _)| t <= loaded_until)
                    .collect();
                let mut first_wins: Vec<(i64, f64)> = Vec::with_capacity(samples.len());
                for (t, v) in samples {
                    if first_wins.last().is_none_or(|&(last, _)| last < t) {
                        first_wins.push((t, v));
                    }
                }
                storage.add(labels, first_wins);
            }

            let opts = EvalOptions { lookback_ms: 5 * 60_000, interval_ms: eval_interval };
            for case in &group.promql_expr_test {
                let t = parse_duration_ms(&case.eval_time).unwrap();
                let mut exp: Vec<(Labels, f64)> = case
                    .exp_samples
                    .iter()
                    .map(|s| (parse_series_labels(&s.labels).unwrap_or_else(|e| panic!("{name}: {e}")), s.value))
                    .collect();
                exp.sort_by(|a, b| a.0.cmp(&b.0));
                let where_ = format!("{name} (group {}): expr {:?} at {}", gi + 1, case.expr, case.eval_time);
                match run_query(&case.expr, &storage, t, &opts) {
                    Ok(mut got) => {
                        got.sort_by(|a, b| a.0.cmp(&b.0));
                        if same(&exp, &got) {
                            passed += 1;
                        } else {
                            failures.push(format!(
                                "{where_}\n    expected: {}\n    got:      {}",
                                describe(&exp),
                                describe(&got)
                            ));
                        }
                    }
                    Err(e) => failures.push(format!("{where_}\n    expected: {}\n    error:    {e}", describe(&exp))),
                }
            }
        }
    }

    let total = passed + failures.len();
    eprintln!(
        "PromQL conformance: {passed}/{total} cases passed ({} files; skipped, needing rule files: {})",
        files.len() - skipped_files.len(),
        if skipped_files.is_empty() { "none".to_string() } else { skipped_files.join(", ") }
    );
    assert!(failures.is_empty(), "{} of {total} cases failed:\n{}", failures.len(), failures.join("\n"));
}

#[test]
fn durations_parse_like_prometheus() {
    assert_eq!(parse_duration_ms("0"), Ok(0));
    assert_eq!(parse_duration_ms("0s"), Ok(0));
    assert_eq!(parse_duration_ms("5m1s"), Ok(301_000));
    assert_eq!(parse_duration_ms("1h30m"), Ok(5_400_000));
    assert_eq!(parse_duration_ms("1500ms"), Ok(1500));
    assert!(parse_duration_ms("1s1m").is_err());
    assert!(parse_duration_ms("").is_err());
    assert!(parse_duration_ms("5x").is_err());
}
