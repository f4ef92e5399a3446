//! `redline rules test`: runs promtool's rule unit-test files (input_series in expanding
//! notation, alert_rule_test, promql_expr_test) with the same verdicts and report format.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use super::file::{self, Checks, Group};
use super::group::{EvalContext, GroupState, RuleStorage};
use super::promql::{self, EvalOptions, Labels, MemoryStorage, Storage, Value};
use super::template;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TestFile {
    #[serde(default)]
    rule_files: Vec<String>,
    evaluation_interval: Option<String>,
    #[serde(default)]
    group_eval_order: Vec<String>,
    #[serde(default)]
    tests: Vec<TestGroup>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TestGroup {
    interval: Option<String>,
    #[serde(default)]
    input_series: Vec<InputSeries>,
    #[serde(default)]
    alert_rule_test: Vec<AlertTest>,
    #[serde(default)]
    promql_expr_test: Vec<ExprTest>,
    #[serde(default)]
    external_labels: BTreeMap<String, String>,
    external_url: Option<String>,
    name: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct InputSeries {
    series: String,
    values: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AlertTest {
    eval_time: String,
    alertname: String,
    #[serde(default)]
    exp_alerts: Vec<ExpAlert>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ExpAlert {
    #[serde(default)]
    exp_labels: BTreeMap<String, String>,
    #[serde(default)]
    exp_annotations: BTreeMap<String, String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ExprTest {
    expr: String,
    eval_time: String,
    #[serde(default)]
    exp_samples: Vec<ExpSample>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ExpSample {
    #[serde(default)]
    labels: String,
    value: f64,
}

/// The verdict on one test file: `None` when every test passed.
pub struct FileReport {
    pub file: PathBuf,
    pub failures: Vec<String>,
}

impl FileReport {
    pub fn passed(&self) -> bool {
        self.failures.is_empty()
    }

    /// The report in promtool's layout.
    pub fn render(&self) -> String {
        let mut out = format!("Unit Testing:  {}\n", self.file.display());
        if self.failures.is_empty() {
            out.push_str("  SUCCESS\n");
        } else {
            out.push_str("  FAILED:\n");
            // promtool ends every failure with an empty line.
            for f in &self.failures {
                out.push_str(f);
                out.push_str("\n\n");
            }
        }
        out
    }
}

fn duration_ms(s: &str, what: &str) -> Result<i64, String> {
    file::parse_duration(s).map(|d| d.as_millis() as i64).map_err(|e| format!("{what}: {e}"))
}

fn show_duration(ms: i64) -> String {
    promql_parser::util::display_duration(&Duration::from_millis(ms.max(0) as u64))
}

/// Runs every test in one unit-test file.
pub fn run_file(path: &Path) -> FileReport {
    let failures = match run(path) {
        Ok(f) => f,
        Err(e) => vec![format!("    {e}")],
    };
    FileReport { file: path.to_path_buf(), failures }
}

fn run(path: &Path) -> Result<Vec<String>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let tf: TestFile = crate::yaml::parse(&text, &path.display().to_string()).map_err(|e| e.to_string())?;
    let base = path.parent().unwrap_or(Path::new("."));
    let checks = Checks { expr: &promql::check, template: &template::check };
    let mut groups: Vec<Group> = Vec::new();
    for pattern in &tf.rule_files {
        let full = base.join(pattern);
        let matches: Vec<PathBuf> = glob::glob(&full.to_string_lossy())
            .map_err(|e| format!("rule_files: bad pattern {pattern:?}: {e}"))?
            .filter_map(Result::ok)
            .collect();
        if matches.is_empty() {
            return Err(format!("rule_files: {pattern:?} matches no file"));
        }
        for m in matches {
            let loaded = file::load(&m, &checks)
                .map_err(|errs| errs.iter().map(|e| e.to_string()).collect::<Vec<_>>().join("\n    "))?;
            groups.extend(loaded);
        }
    }
    if !tf.group_eval_order.is_empty() {
        let mut ordered = Vec::with_capacity(groups.len());
        for name in &tf.group_eval_order {
            let i = groups
                .iter()
                .position(|g| &g.name == name)
                .ok_or_else(|| format!("group_eval_order: group {name:?} not found in rule files"))?;
            ordered.push(groups.remove(i));
        }
        ordered.append(&mut groups);
        groups = ordered;
    }
    // promtool takes 0 (or nothing) for the default 1m.
    let eval_interval = match &tf.evaluation_interval {
        Some(s) => duration_ms(s, "evaluation_interval")?,
        None => 0,
    };
    let eval_interval = if eval_interval == 0 { 60_000 } else { eval_interval };
    let mut failures = Vec::new();
    for (i, tg) in tf.tests.iter().enumerate() {
        match run_group(tg, &groups, eval_interval) {
            Ok(mut f) => failures.append(&mut f),
            Err(e) => failures.push(format!("    test {}: {e}", tg.name.clone().unwrap_or_else(|| i.to_string()))),
        }
    }
    Ok(failures)
}

struct TestStorage(MemoryStorage);

impl Storage for TestStorage {
    fn select(&self, m: &promql_parser::label::Matchers, start_ms: i64, end_ms: i64) -> Vec<promql::Series> {
        self.0.select(m, start_ms, end_ms)
    }

    fn visit<'s>(
        &'s self,
        m: &promql_parser::label::Matchers,
        start_ms: i64,
        end_ms: i64,
        f: &mut dyn FnMut(&'s Labels, promql::Window<'_>),
    ) {
        self.0.visit(m, start_ms, end_ms, f)
    }
}

impl RuleStorage for TestStorage {
    fn append(&mut self, labels: Labels, t_ms: i64, value: f64) {
        self.0.add(labels, vec![(t_ms, value)]);
    }
}

fn run_group(tg: &TestGroup, groups: &[Group], eval_interval: i64) -> Result<Vec<String>, String> {
    // Without `interval` (or with 0) promtool 2.42 puts every input sample at time 0, where the
    // first value of each series is kept: it does not default to `evaluation_interval`.
    let interval = match &tg.interval {
        Some(s) => duration_ms(s, "interval")?,
        None => 0,
    };
    let mut storage = TestStorage(MemoryStorage::new());
    // promtool's lazy loader: the input samples enter the storage only as the evaluation clock
    // reaches them (those at or before each evaluation time, before the rules run), so no rule
    // and no `promql_expr_test` sees a sample after the last evaluation tick.
    let mut pending: Vec<(Labels, std::vec::IntoIter<(i64, f64)>)> = Vec::with_capacity(tg.input_series.len());
    for s in &tg.input_series {
        let labels = promql::parse_series_labels(&s.series).map_err(|e| format!("input_series {:?}: {e}", s.series))?;
        let values =
            promql::expand_series_values(&s.values).map_err(|e| format!("input_series {:?}: {e}", s.values))?;
        let mut samples: Vec<(i64, f64)> = Vec::with_capacity(values.len());
        for (i, v) in values.into_iter().enumerate() {
            let t = (i as i64).saturating_mul(interval);
            // A later sample at the same time is dropped, as the TSDB drops it on commit.
            if let Some(v) = v
                && samples.last().is_none_or(|&(last, _)| last < t)
            {
                samples.push((t, v));
            }
        }
        pending.push((labels, samples.into_iter()));
    }
    let mut alert_tests: BTreeMap<i64, Vec<&AlertTest>> = BTreeMap::new();
    for t in &tg.alert_rule_test {
        alert_tests.entry(duration_ms(&t.eval_time, "eval_time")?).or_default().push(t);
    }
    let mut max_t = alert_tests.keys().next_back().copied().unwrap_or(0);
    for t in &tg.promql_expr_test {
        max_t = max_t.max(duration_ms(&t.eval_time, "eval_time")?);
    }
    let ctx = EvalContext {
        external_labels: &tg.external_labels,
        external_url: tg.external_url.as_deref().unwrap_or(""),
        options: EvalOptions { lookback_ms: 5 * 60_000, interval_ms: eval_interval },
    };
    let mut states: Vec<GroupState> = groups.iter().cloned().map(GroupState::new).collect();
    let mut failures = Vec::new();
    let mut pending_checks = alert_tests.iter().peekable();
    let mut ts = 0;
    while ts <= max_t {
        for (labels, samples) in &mut pending {
            let due: Vec<(i64, f64)> = samples.as_slice().iter().take_while(|&&(t, _)| t <= ts).copied().collect();
            if !due.is_empty() {
                samples.nth(due.len() - 1);
                storage.0.add(labels.clone(), due);
            }
        }
        for g in &mut states {
            g.evaluate(&mut storage, ts, &ctx);
        }
        // promtool stops the test group at the first evaluation with a failing rule.
        let errors: Vec<String> = states
            .iter()
            .flat_map(|g| g.group.rules.iter().zip(&g.health))
            .filter_map(|(rule, h)| {
                let e = h.last_error.as_ref()?;
                Some(format!("    rule: {}, time: {}, err: {e}", rule.name, show_duration(ts)))
            })
            .collect();
        if !errors.is_empty() {
            failures.extend(errors);
            return Ok(failures);
        }
        // promtool checks an eval_time against the evaluation at or just before it.
        while let Some(&(&t, tests)) = pending_checks.peek() {
            if !(ts <= t && t < ts + eval_interval) {
                break;
            }
            for test in tests.iter() {
                if let Some(f) = check_alerts(test, t, &states, tg.name.as_deref()) {
                    failures.push(f);
                }
            }
            pending_checks.next();
        }
        ts += eval_interval;
    }
    for test in &tg.promql_expr_test {
        if let Some(f) = check_expr(test, &storage, &ctx)? {
            failures.push(f);
        }
    }
    Ok(failures)
}

type LabelsAndAnnotations = (BTreeMap<String, String>, BTreeMap<String, String>);

fn check_alerts(test: &AlertTest, t: i64, states: &[GroupState], group_name: Option<&str>) -> Option<String> {
    let mut got: Vec<LabelsAndAnnotations> = Vec::new();
    for g in states {
        for (rule, alerts) in g.group.rules.iter().zip(&g.alerts) {
            if rule.name != test.alertname {
                continue;
            }
            for a in alerts.active() {
                if a.state == super::alerting::AlertState::Firing {
                    got.push((a.labels.clone(), a.annotations.clone()));
                }
            }
        }
    }
    let mut exp: Vec<LabelsAndAnnotations> = test
        .exp_alerts
        .iter()
        .map(|a| {
            let mut labels = a.exp_labels.clone();
            labels.insert("alertname".into(), test.alertname.clone());
            (labels, a.exp_annotations.clone())
        })
        .collect();
    got.sort();
    exp.sort();
    if got == exp {
        return None;
    }
    // promtool names the test group first, when it has a name.
    let name = group_name.filter(|n| !n.is_empty()).map(|n| format!("    name: {n},\n")).unwrap_or_default();
    Some(format!(
        "{name}    alertname: {}, time: {}, \n        exp:{}, \n        got:{}",
        test.alertname,
        show_duration(t),
        show_alerts(&exp),
        show_alerts(&got)
    ))
}

fn show_map(m: &BTreeMap<String, String>) -> String {
    let inner: Vec<String> = m.iter().map(|(k, v)| format!("{k}={v:?}")).collect();
    format!("{{{}}}", inner.join(", "))
}

/// promtool's `labelsAndAnnotations.String()`, indented as its report indents it.
fn show_alerts(alerts: &[LabelsAndAnnotations]) -> String {
    if alerts.is_empty() {
        return "[]".into();
    }
    let items: Vec<String> = alerts
        .iter()
        .enumerate()
        .map(|(i, (l, a))| {
            format!("{i}:\n              Labels:{}\n              Annotations:{}", show_map(l), show_map(a))
        })
        .collect();
    format!("[\n            {}\n            ]", items.join(",\n            "))
}

/// Prometheus's `labels.Labels.String()`: every label, `__name__` included, in name order.
fn show_labels(l: &Labels) -> String {
    let pairs: Vec<String> = l.iter().map(|(k, v)| format!("{k}={v:?}")).collect();
    format!("{{{}}}", pairs.join(", "))
}

/// Go's `strconv.FormatFloat(v, 'E', -1, 64)`, as promtool prints sample values: the shortest
/// digits that read back, an exponent of at least two digits (`1.2E+02`, `-0E+00`, `NaN`).
fn show_value(v: f64) -> String {
    if v.is_nan() {
        return "NaN".into();
    }
    if v.is_infinite() {
        return if v > 0.0 { "+Inf".into() } else { "-Inf".into() };
    }
    let e = format!("{v:E}");
    let Some((mantissa, exponent)) = e.split_once('E') else { return e };
    let exponent: i32 = exponent.parse().unwrap_or(0);
    let sign = if exponent < 0 { '-' } else { '+' };
    format!("{mantissa}E{sign}{:02}", exponent.abs())
}

/// promtool's `parsedSamplesString`: `nil` for none.
fn show_samples(samples: &[(Labels, f64)]) -> String {
    if samples.is_empty() {
        return "nil".into();
    }
    samples.iter().map(|(l, v)| format!("{} {}", show_labels(l), show_value(*v))).collect::<Vec<_>>().join(", ")
}

fn check_expr(test: &ExprTest, storage: &TestStorage, ctx: &EvalContext<'_>) -> Result<Option<String>, String> {
    let t = duration_ms(&test.eval_time, "eval_time")?;
    // promtool's wording for a query that cannot run (refused or failing): this test fails,
    // the others still run.
    let error = |e: &str| format!("    expr: {:?}, time: {}, err: {e}", test.expr, show_duration(t));
    let expr = match promql::parse(&test.expr) {
        Ok(expr) => expr,
        Err(e) => return Ok(Some(error(&e))),
    };
    let fail = |got: &[(Labels, f64)], exp: &[(Labels, f64)]| {
        format!(
            "    expr: {:?}, time: {},\n        exp: {}\n        got: {}",
            test.expr,
            show_duration(t),
            show_samples(exp),
            show_samples(got)
        )
    };
    let mut exp: Vec<(Labels, f64)> = Vec::new();
    for s in &test.exp_samples {
        let labels = if s.labels.trim().is_empty() {
            Labels::default()
        } else {
            promql::parse_series_labels(&s.labels).map_err(|e| format!("exp_samples labels {:?}: {e}", s.labels))?
        };
        exp.push((labels, s.value));
    }
    exp.sort_by(|a, b| a.0.cmp(&b.0));
    let got: Vec<(Labels, f64)> = match promql::eval_instant(&expr, storage, t, &ctx.options) {
        Ok(Value::Vector(v)) => v.into_iter().map(|s| (s.labels, s.value)).collect(),
        Ok(Value::Scalar(v)) => vec![(Labels::default(), v)],
        Ok(_) => return Ok(Some(error("rule result is not a vector or scalar"))),
        Err(e) => return Ok(Some(error(&e))),
    };
    let mut got = got;
    got.sort_by(|a, b| a.0.cmp(&b.0));
    // Exact float equality, as promtool's reflect.DeepEqual (so NaN never matches).
    let same = got.len() == exp.len() && got.iter().zip(&exp).all(|(g, e)| g.0 == e.0 && g.1 == e.1);
    if same {
        return Ok(None);
    }
    Ok(Some(fail(&got, &exp)))
}
