//! The sidecar's rule engine without I/O: loads rule files (refusing rules that need more
//! history than is retained), ingests sampled series, evaluates due groups, yields alerts.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use promql_parser::parser::Expr;

use super::alerting::{AlertState, LabelMap, Outgoing, RESEND_DELAY_MS};
use super::file::{self, Checks, Group, RuleError, RuleKind};
use super::group::{EvalContext, GroupState};
use super::promql::{self, EvalOptions};
use super::store::{SampleStore, SeriesFilter};
use super::template;
use crate::telemetry::metrics::CapturedSample;

/// What the engine needs from the sidecar's configuration.
#[derive(Clone, Debug)]
pub struct EngineSettings {
    /// Rule file paths or globs; files named `*_test.yml`/`*_test.yaml` matched by a glob are
    /// promtool unit tests, not rule files, and are skipped.
    pub patterns: Vec<String>,
    /// Rule files built in the process rather than read (the SLO rules of the `slo` section):
    /// the name they are shown under (the `file` of their groups) and their text.
    pub generated: Vec<(String, String)>,
    /// Interval of groups that do not set one, and the sampling interval.
    pub default_interval_ms: i64,
    pub retention_ms: i64,
    pub external_labels: BTreeMap<String, String>,
    /// `$externalURL` in templates.
    pub external_url: String,
    /// Where `generatorURL` points: a Prometheus whose `/graph` page runs the expression.
    pub generator_base: String,
}

/// An alert ready for Alertmanager: external labels added, `generatorURL` set.
#[derive(Clone, Debug, PartialEq)]
pub struct Notification {
    pub labels: LabelMap,
    pub annotations: LabelMap,
    pub starts_at_ms: i64,
    pub ends_at_ms: i64,
    pub generator_url: String,
}

/// Counters and timings of one loaded group.
#[derive(Clone, Debug, Default)]
pub struct GroupStats {
    pub evaluations: u64,
    pub failures: u64,
    pub last_duration_s: f64,
    pub last_evaluation_ms: Option<i64>,
}

pub struct LoadedGroup {
    pub state: GroupState,
    pub interval_ms: i64,
    next_eval_ms: Option<i64>,
    pub stats: GroupStats,
}

impl LoadedGroup {
    /// `file;name`, the `rule_group` label Prometheus uses.
    pub fn key(&self) -> String {
        format!("{};{}", self.state.group.file, self.state.group.name)
    }
}

/// Outcome of the last (re)load, for `redline_rules_last_reload_successful`.
#[derive(Clone, Debug)]
pub struct ReloadStatus {
    pub successful: bool,
    pub last_success_ms: i64,
    pub errors: Vec<String>,
}

pub struct RuleEngine {
    settings: EngineSettings,
    pub groups: Vec<LoadedGroup>,
    pub store: SampleStore,
    filter: std::sync::Arc<SeriesFilter>,
    pub reload: ReloadStatus,
}

impl RuleEngine {
    /// Loads every rule file; any problem refuses the whole set, each error naming its file,
    /// line, group and rule.
    pub fn load(settings: EngineSettings, now_ms: i64) -> Result<RuleEngine, Vec<RuleError>> {
        let groups = load_groups(&settings)?;
        let mut engine = RuleEngine {
            store: SampleStore::new(0),
            filter: Default::default(),
            groups: Vec::new(),
            reload: ReloadStatus { successful: true, last_success_ms: now_ms, errors: Vec::new() },
            settings,
        };
        engine.install(groups);
        Ok(engine)
    }

    /// Re-reads the rule files. On error the running rules stay and the status says so;
    /// alert state carries over for rules of the same group, name and labels, as in Prometheus.
    pub fn reload(&mut self, now_ms: i64) -> Result<(), Vec<RuleError>> {
        match load_groups(&self.settings) {
            Ok(groups) => {
                self.install(groups);
                self.reload = ReloadStatus { successful: true, last_success_ms: now_ms, errors: Vec::new() };
                Ok(())
            }
            Err(errors) => {
                self.reload.successful = false;
                self.reload.errors = errors.iter().map(ToString::to_string).collect();
                Err(errors)
            }
        }
    }

    fn install(&mut self, groups: Vec<Group>) {
        let mut old: BTreeMap<(String, String), LoadedGroup> = std::mem::take(&mut self.groups)
            .into_iter()
            .map(|g| ((g.state.group.file.clone(), g.state.group.name.clone()), g))
            .collect();
        let opts = self.eval_options(self.settings.default_interval_ms);
        let mut horizon = 0;
        let mut selectors = Vec::new();
        for group in groups {
            let interval_ms = group.interval.map_or(self.settings.default_interval_ms, |d| d.as_millis() as i64).max(1);
            for rule in &group.rules {
                horizon = horizon.max(promql::history_needed_ms(&rule.expr, &opts));
                selectors.extend(promql::selectors(&rule.expr));
            }
            let mut state = GroupState::new(group);
            let mut next_eval_ms = None;
            let mut stats = GroupStats::default();
            if let Some(prev) = old.remove(&(state.group.file.clone(), state.group.name.clone())) {
                carry_alert_state(&prev.state, &mut state);
                next_eval_ms = prev.next_eval_ms;
                stats = prev.stats;
            }
            self.groups.push(LoadedGroup { state, interval_ms, next_eval_ms, stats });
        }
        // Rule output (ALERTS, recorded series) is read back by later rules: keep it too.
        for g in &self.groups {
            for rule in &g.state.group.rules {
                let name = match rule.kind {
                    RuleKind::Recording => rule.name.as_str(),
                    RuleKind::Alerting => "ALERTS",
                };
                let m =
                    promql_parser::label::Matcher::new(promql_parser::label::MatchOp::Equal, promql::METRIC_NAME, name);
                selectors.push(promql_parser::label::Matchers::new(vec![m]));
            }
        }
        self.filter = std::sync::Arc::new(SeriesFilter::new(selectors));
        // Series are needed back to the longest range any rule reads, never past retention.
        self.store.set_horizon(horizon.min(self.settings.retention_ms));
    }

    fn eval_options(&self, interval_ms: i64) -> EvalOptions {
        EvalOptions { interval_ms, ..EvalOptions::default() }
    }

    /// The filter deciding which sampled series are kept (shared with the sampler, which
    /// skips unwanted families before building their labels).
    pub fn filter(&self) -> std::sync::Arc<SeriesFilter> {
        self.filter.clone()
    }

    /// Adds one sampling round.
    pub fn ingest(&mut self, t_ms: i64, samples: Vec<CapturedSample>) {
        let filter = self.filter.clone();
        self.store.ingest(t_ms, samples, &filter);
    }

    /// Evaluates every group due at `t_ms` and returns the alerts to send.
    pub fn evaluate_due(&mut self, t_ms: i64) -> Vec<Notification> {
        let mut out = Vec::new();
        for g in &mut self.groups {
            let due = g.next_eval_ms.is_none_or(|next| next <= t_ms);
            if !due {
                continue;
            }
            let ctx = EvalContext {
                external_labels: &self.settings.external_labels,
                external_url: &self.settings.external_url,
                options: EvalOptions { interval_ms: g.interval_ms, ..EvalOptions::default() },
            };
            let started = std::time::Instant::now();
            g.state.evaluate(&mut self.store, t_ms, &ctx);
            g.stats.last_duration_s = started.elapsed().as_secs_f64();
            g.stats.last_evaluation_ms = Some(t_ms);
            g.stats.evaluations += g.state.health.len() as u64;
            g.stats.failures += g.state.health.iter().filter(|h| h.last_error.is_some()).count() as u64;
            // Keep the cadence of the group; a late tick does not shift later evaluations.
            let mut next = g.next_eval_ms.unwrap_or(t_ms) + g.interval_ms;
            if next <= t_ms {
                next = t_ms + g.interval_ms - (t_ms - next) % g.interval_ms;
            }
            g.next_eval_ms = Some(next);
            for (i, rule) in g.state.group.rules.iter().enumerate() {
                if rule.kind != RuleKind::Alerting {
                    continue;
                }
                let generator_url = generator_url(&self.settings.generator_base, &rule.expr_text);
                for alert in g.state.alerts[i].due(t_ms, RESEND_DELAY_MS, g.interval_ms) {
                    out.push(notification(alert, &self.settings.external_labels, &generator_url));
                }
            }
        }
        out
    }

    /// Number of active alerts by (alertname, state), for `redline_alerts`.
    pub fn alert_counts(&self) -> BTreeMap<(String, AlertState), u64> {
        let mut counts = BTreeMap::new();
        for g in &self.groups {
            for (i, rule) in g.state.group.rules.iter().enumerate() {
                if rule.kind == RuleKind::Alerting {
                    for a in g.state.alerts[i].active() {
                        *counts.entry((rule.name.clone(), a.state)).or_insert(0) += 1;
                    }
                }
            }
        }
        counts
    }

    pub fn settings(&self) -> &EngineSettings {
        &self.settings
    }
}

fn notification(a: Outgoing, external: &BTreeMap<String, String>, generator_url: &str) -> Notification {
    let mut labels = a.labels;
    // External labels never override the alert's own, as in Prometheus.
    for (k, v) in external {
        labels.entry(k.clone()).or_insert_with(|| v.clone());
    }
    Notification {
        labels,
        annotations: a.annotations,
        starts_at_ms: a.starts_at,
        ends_at_ms: a.ends_at,
        generator_url: generator_url.to_string(),
    }
}

/// Prometheus's own format: `<base>/graph?g0.expr=<expr>&g0.tab=1`.
pub fn generator_url(base: &str, expr: &str) -> String {
    let q: String = percent_encoding::utf8_percent_encode(expr, percent_encoding::NON_ALPHANUMERIC).collect();
    format!("{}/graph?g0.expr={q}&g0.tab=1", base.trim_end_matches('/'))
}

fn carry_alert_state(prev: &GroupState, next: &mut GroupState) {
    for (i, rule) in next.group.rules.iter().enumerate() {
        let same =
            prev.group.rules.iter().position(|p| p.kind == rule.kind && p.name == rule.name && p.labels == rule.labels);
        if let Some(j) = same {
            next.alerts[i] = prev.alerts[j].clone();
            next.health[i] = prev.health[j].clone();
        }
    }
}

/// The rule files the patterns name: globs expanded (unit-test files skipped), plain paths kept
/// as given so a missing file is an error.
pub fn rule_files(patterns: &[String]) -> Result<Vec<PathBuf>, Vec<RuleError>> {
    let mut files = Vec::new();
    let mut errors = Vec::new();
    for pattern in patterns {
        let is_glob = pattern.contains(['*', '?', '[']);
        if !is_glob {
            files.push(PathBuf::from(pattern));
            continue;
        }
        match glob::glob(pattern) {
            Ok(paths) => {
                for p in paths.flatten() {
                    if !is_unit_test_file(&p) && !files.contains(&p) {
                        files.push(p);
                    }
                }
            }
            Err(e) => errors.push(RuleError {
                file: pattern.clone(),
                line: None,
                column: None,
                group: None,
                rule: None,
                message: format!("invalid glob pattern: {e}"),
            }),
        }
    }
    if errors.is_empty() { Ok(files) } else { Err(errors) }
}

fn is_unit_test_file(p: &Path) -> bool {
    p.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.ends_with("_test.yml") || n.ends_with("_test.yaml"))
}

fn load_groups(settings: &EngineSettings) -> Result<Vec<Group>, Vec<RuleError>> {
    let opts = EvalOptions { interval_ms: settings.default_interval_ms, ..EvalOptions::default() };
    let retention_ms = settings.retention_ms;
    let expr_check = move |e: &Expr| -> Result<(), String> {
        promql::check(e)?;
        let needed = promql::history_needed_ms(e, &opts);
        if needed == i64::MAX {
            return Err("reads a fixed time (`@ <timestamp>`), further back each evaluation than any `retention` \
                        keeps; use `@ start()`/`@ end()` or evaluate this rule in Prometheus only"
                .to_string());
        }
        if needed > retention_ms {
            return Err(format!(
                "needs {} of history but the sidecar keeps {} (`retention`); raise `retention` or evaluate \
                 this rule in Prometheus only",
                humanize_ms(needed),
                humanize_ms(retention_ms)
            ));
        }
        Ok(())
    };
    let checks = Checks { expr: &expr_check, template: &template::check };
    let mut groups = Vec::new();
    let mut errors = Vec::new();
    for (name, text) in &settings.generated {
        match file::parse(text, name, &checks) {
            Ok(g) => groups.extend(g),
            Err(e) => errors.extend(e),
        }
    }
    for path in rule_files(&settings.patterns)? {
        match file::load(&path, &checks) {
            Ok(g) => groups.extend(g),
            Err(e) => errors.extend(e),
        }
    }
    if errors.is_empty() { Ok(groups) } else { Err(errors) }
}

/// `3d`, `1h30m`, `90s`: how Prometheus prints durations.
fn humanize_ms(ms: i64) -> String {
    let mut s = String::new();
    let mut rest = ms / 1000;
    for (unit, secs) in [("d", 86_400), ("h", 3_600), ("m", 60), ("s", 1)] {
        if rest >= secs {
            s.push_str(&format!("{}{unit}", rest / secs));
            rest %= secs;
        }
    }
    if s.is_empty() { format!("{ms}ms") } else { s }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn settings(dir: &Path, retention_ms: i64) -> EngineSettings {
        EngineSettings {
            patterns: vec![format!("{}/*.yml", dir.display())],
            generated: Vec::new(),
            default_interval_ms: 1_000,
            retention_ms,
            external_labels: [("service".to_string(), "checkout".to_string())].into(),
            external_url: "http://pod:15090".into(),
            generator_base: "http://prometheus:9090".into(),
        }
    }

    fn write(dir: &Path, name: &str, text: &str) {
        let mut f = std::fs::File::create(dir.join(name)).unwrap();
        f.write_all(text.as_bytes()).unwrap();
    }

    const RULES: &str = "groups:\n- name: g\n  rules:\n  - alert: TooMany\n    expr: x > 1\n    labels: {severity: critical}\n    annotations: {summary: 'value {{ $value }} on {{ $externalLabels.service }}'}\n";

    fn sample(v: f64) -> Vec<CapturedSample> {
        vec![CapturedSample { name: "x".into(), labels: vec![], value: v }]
    }

    #[test]
    fn fires_resends_and_resolves_with_external_labels_and_generator_url() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "a.yml", RULES);
        write(dir.path(), "a_test.yml", "not: [a rule file");
        let mut e = RuleEngine::load(settings(dir.path(), 3_600_000), 0).unwrap();
        assert_eq!(e.store.horizon_ms(), 300_000, "lookback of an instant selector");
        e.ingest(1_000, sample(5.0));
        let sent = e.evaluate_due(1_000);
        assert_eq!(sent.len(), 1);
        let n = &sent[0];
        assert_eq!(n.labels.get("service").map(String::as_str), Some("checkout"));
        assert_eq!(n.labels.get("alertname").map(String::as_str), Some("TooMany"));
        assert_eq!(n.annotations.get("summary").map(String::as_str), Some("value 5 on checkout"));
        assert_eq!(n.generator_url, "http://prometheus:9090/graph?g0.expr=x%20%3E%201&g0.tab=1");
        assert_eq!((n.starts_at_ms, n.ends_at_ms), (1_000, 1_000 + 4 * 60_000));
        // Not resent before the resend delay, resent after it.
        e.ingest(2_000, sample(5.0));
        assert!(e.evaluate_due(2_000).is_empty());
        e.ingest(62_000, sample(5.0));
        assert_eq!(e.evaluate_due(62_000).len(), 1);
        assert_eq!(e.alert_counts().get(&("TooMany".into(), AlertState::Firing)), Some(&1));
        e.ingest(63_000, sample(0.0));
        let resolved = e.evaluate_due(63_000);
        assert_eq!(resolved[0].ends_at_ms, 63_000);
        assert!(e.alert_counts().is_empty());
        assert_eq!(e.groups[0].stats.evaluations, 4);
    }

    #[test]
    fn a_group_is_evaluated_on_its_own_interval() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "a.yml", &RULES.replace("- name: g\n", "- name: g\n  interval: 3s\n"));
        let mut e = RuleEngine::load(settings(dir.path(), 3_600_000), 0).unwrap();
        for t in [1_000, 2_000, 3_000, 4_000, 5_500, 7_000] {
            e.ingest(t, sample(0.0));
            e.evaluate_due(t);
        }
        assert_eq!(e.groups[0].stats.evaluations, 3, "at 1s, 4s and 7s");
    }

    /// The sidecar evaluates what 2.42 has, `@ end()` included (a disk-fill style forecast),
    /// and refuses a fixed `@` time, which no retention holds for long.
    #[test]
    fn forecasts_and_at_end_are_evaluated_and_fixed_times_refused() {
        let dir = tempfile::tempdir().unwrap();
        let forecast = RULES.replace("expr: x > 1", "expr: predict_linear(x[1m] @ end(), 600) > 5000 and x < 100");
        write(dir.path(), "a.yml", &forecast);
        let mut e = RuleEngine::load(settings(dir.path(), 3_600_000), 0).unwrap();
        for s in 1..=5 {
            e.ingest(s * 1_000, sample(s as f64 * 10.0));
        }
        // 10/s, 50 at 5s: 6,050 in 600 s.
        let sent = e.evaluate_due(5_000);
        assert_eq!(sent.len(), 1, "the forecast fires");
        write(dir.path(), "a.yml", &RULES.replace("expr: x > 1", "expr: x @ 1000 > 1"));
        let errors = RuleEngine::load(settings(dir.path(), 3_600_000), 0).err().unwrap();
        assert!(errors[0].to_string().contains("reads a fixed time (`@ <timestamp>`)"), "{}", errors[0]);
    }

    #[test]
    fn rules_needing_more_history_than_retention_are_refused_by_name() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "a.yml", &RULES.replace("expr: x > 1", "expr: rate(x[3d]) > 1"));
        let errors = RuleEngine::load(settings(dir.path(), 3_600_000), 0).err().unwrap();
        let msg = errors[0].to_string();
        assert!(msg.contains("a.yml:5:11: group \"g\", rule 1, \"TooMany\": needs 3d of history"), "{msg}");
        assert!(msg.contains("keeps 1h"), "{msg}");
    }

    #[test]
    fn a_broken_reload_keeps_the_running_rules_and_a_good_one_keeps_alert_state() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "a.yml", RULES);
        let mut e = RuleEngine::load(settings(dir.path(), 3_600_000), 0).unwrap();
        e.ingest(1_000, sample(5.0));
        e.evaluate_due(1_000);
        write(dir.path(), "a.yml", "groups: [{name: g, rules: [{alert: A, expr: 'rate(x[5m]'}]}]");
        assert!(e.reload(2_000).is_err());
        assert!(!e.reload.successful && e.reload.errors[0].contains("a.yml"));
        assert_eq!(e.groups.len(), 1);
        write(dir.path(), "a.yml", &RULES.replace("value {{", "now {{"));
        e.reload(3_000).unwrap();
        assert!(e.reload.successful);
        assert_eq!(e.alert_counts().get(&("TooMany".into(), AlertState::Firing)), Some(&1));
    }

    #[test]
    fn plain_paths_must_exist_and_globs_skip_unit_tests() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "r.yml", RULES);
        write(dir.path(), "r_test.yml", "x");
        let files = rule_files(&[format!("{}/*.yml", dir.path().display())]).unwrap();
        assert_eq!(files, vec![dir.path().join("r.yml")]);
        let mut s = settings(dir.path(), 1);
        s.patterns = vec![format!("{}/missing.yml", dir.path().display())];
        let e = load_groups(&s).err().unwrap();
        assert!(e[0].to_string().contains("missing.yml: cannot read"), "{}", e[0]);
    }

    /// Generated rules load beside the files, under their own name, with the same checks.
    #[test]
    fn generated_rules_load_with_the_files_and_the_same_retention_check() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "a.yml", RULES);
        let mut s = settings(dir.path(), 3_600_000);
        s.generated = vec![("slo".into(), RULES.replace("- name: g\n", "- name: gen\n"))];
        let e = RuleEngine::load(s.clone(), 0).unwrap();
        let names: Vec<String> = e.groups.iter().map(LoadedGroup::key).collect();
        assert_eq!(names, ["slo;gen", &format!("{}/a.yml;g", dir.path().display())]);
        s.generated[0].1 = s.generated[0].1.replace("expr: x > 1", "expr: rate(x[3d]) > 1");
        let errors = RuleEngine::load(s, 0).err().unwrap();
        assert!(
            errors[0].to_string().starts_with("slo:5:11: group \"gen\", rule 1, \"TooMany\": needs 3d"),
            "{}",
            errors[0]
        );
    }

    #[test]
    fn durations_print_like_prometheus() {
        assert_eq!(humanize_ms(3 * 86_400_000), "3d");
        assert_eq!(humanize_ms(5_400_000), "1h30m");
        assert_eq!(humanize_ms(500), "500ms");
    }
}
