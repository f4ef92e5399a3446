//! The canary judge, after Kayenta's NetflixACAJudge: each metric's canary samples are compared
//! with the baseline's by a Mann-Whitney U test and a mean-ratio effect size, classified
//! Pass/High/Low/NoData, and the classifications are scored into a pass/marginal/fail verdict.
//!
//! Choices (documented in docs/readiness.md):
//! - A metric is High or Low only if the difference is significant (two-sided p < 1 - confidence)
//!   AND the canary/baseline mean ratio leaves the allowed band [1 - tolerance, 1 + tolerance];
//!   a significant but small difference passes, like Kayenta's allowed increase/decrease.
//! - `direction` says which change fails: for error ratio, latency and CPU only an increase does,
//!   so a Low there still passes (and is shown as Low).
//! - Fewer than `min_samples` finite points on either side is NoData. NoData never passes: it
//!   counts as a failure (Kayenta's `mustHaveData`), unless the metric is marked optional, in
//!   which case it is left out of the score (Kayenta's default). With nothing counted the verdict
//!   is fail with score 0.
//! - A critical metric that fails (including NoData when not optional) forces score 0.

use serde::{Deserialize, Serialize};

use super::stats::{self, Alternative, Method, MethodUsed, Options};

/// Names of the three metrics redline judges; used as keys in the JSON report.
pub const ERROR_RATIO: &str = "error_ratio";
pub const P99_LATENCY: &str = "p99_latency_seconds";
pub const CPU_PER_REQUEST: &str = "cpu_seconds_per_request";

/// Which change of the canary against the baseline is a failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    Increase,
    Decrease,
    Either,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MetricSpec {
    pub name: String,
    pub direction: Direction,
    /// A failure of this metric fails the whole canary (score 0).
    #[serde(default)]
    pub critical: bool,
    /// NoData for this metric is left out of the score instead of counting as a failure.
    #[serde(default)]
    pub optional: bool,
    /// Overrides [`JudgeConfig::tolerance`] for this metric.
    #[serde(default)]
    pub tolerance: Option<f64>,
}

impl MetricSpec {
    pub fn new(name: impl Into<String>, direction: Direction) -> MetricSpec {
        MetricSpec { name: name.into(), direction, critical: false, optional: false, tolerance: None }
    }

    /// Share of requests that failed; critical, since errors are what users feel first.
    pub fn error_ratio() -> MetricSpec {
        MetricSpec { critical: true, ..MetricSpec::new(ERROR_RATIO, Direction::Increase) }
    }

    pub fn p99_latency() -> MetricSpec {
        MetricSpec::new(P99_LATENCY, Direction::Increase)
    }

    /// Optional: its source (app process or cgroup CPU) is not readable everywhere, and a
    /// missing source says nothing about the canary; no traffic already fails the other two.
    pub fn cpu_per_request() -> MetricSpec {
        MetricSpec { optional: true, ..MetricSpec::new(CPU_PER_REQUEST, Direction::Increase) }
    }
}

/// One metric's samples over the analysis window (one value per query step), from the baseline
/// and from the canary. NaN and infinite values (no traffic in a step, a quantile beyond the
/// last bucket) are dropped before judging.
#[derive(Debug, Clone, PartialEq)]
pub struct MetricSamples {
    pub spec: MetricSpec,
    pub baseline: Vec<f64>,
    pub canary: Vec<f64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct JudgeConfig {
    /// 1 - alpha of the Mann-Whitney test.
    pub confidence: f64,
    /// Allowed relative change of the mean: the canary passes within [1 - t, 1 + t] x baseline.
    pub tolerance: f64,
    /// Fewer finite points than this on either side is NoData.
    pub min_samples: usize,
    /// Score at or above which the verdict is pass.
    pub pass_threshold: f64,
    /// Score at or above which (and below pass) the verdict is marginal; below it, fail.
    pub marginal_threshold: f64,
    pub method: Method,
}

impl Default for JudgeConfig {
    fn default() -> Self {
        JudgeConfig {
            confidence: 0.98,
            tolerance: 0.25,
            min_samples: 10,
            pass_threshold: 95.0,
            marginal_threshold: 75.0,
            method: Method::Auto,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field} {message}")]
pub struct JudgeConfigError {
    pub field: String,
    pub message: String,
}

impl JudgeConfig {
    pub fn validate(&self) -> Result<(), JudgeConfigError> {
        let bad = |field: &str, message: String| Err(JudgeConfigError { field: field.into(), message });
        if !(self.confidence > 0.0 && self.confidence < 1.0) {
            return bad("--confidence", format!("must be between 0 and 1 (exclusive), got {}", self.confidence));
        }
        if !(self.tolerance.is_finite() && self.tolerance >= 0.0) {
            return bad("--tolerance", format!("must be a non-negative number, got {}", self.tolerance));
        }
        if self.min_samples == 0 {
            return bad("--min-samples", "must be at least 1".into());
        }
        for (field, v) in [("--pass-threshold", self.pass_threshold), ("--marginal-threshold", self.marginal_threshold)]
        {
            if !(0.0..=100.0).contains(&v) {
                return bad(field, format!("must be between 0 and 100, got {v}"));
            }
        }
        if self.marginal_threshold > self.pass_threshold {
            return bad(
                "--marginal-threshold",
                format!("({}) must not exceed --pass-threshold ({})", self.marginal_threshold, self.pass_threshold),
            );
        }
        Ok(())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Classification {
    Pass,
    High,
    Low,
    NoData,
}

impl Classification {
    /// The name used in the JSON report.
    pub fn as_str(self) -> &'static str {
        match self {
            Classification::Pass => "pass",
            Classification::High => "high",
            Classification::Low => "low",
            Classification::NoData => "nodata",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    Pass,
    Marginal,
    Fail,
}

/// What was judged on one side, as evidence.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SampleSummary {
    /// Finite points used.
    pub count: usize,
    /// NaN or infinite points dropped.
    pub dropped: usize,
    pub mean: Option<f64>,
    pub median: Option<f64>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TestSummary {
    /// U statistic of the canary sample.
    pub u: f64,
    pub p_value: f64,
    pub method: MethodUsed,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MetricResult {
    pub name: String,
    pub classification: Classification,
    /// Counts as a pass in the score.
    pub pass: bool,
    /// Part of the score's denominator (false only for NoData on an optional metric).
    pub counted: bool,
    pub critical: bool,
    pub direction: Direction,
    pub tolerance: f64,
    pub reason: String,
    pub baseline: SampleSummary,
    pub canary: SampleSummary,
    pub mann_whitney: Option<TestSummary>,
    /// Canary mean / baseline mean; null when the baseline mean is 0 and the canary's is not.
    pub effect_size: Option<f64>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Thresholds {
    pub pass: f64,
    pub marginal: f64,
}

/// The judge's answer. Schema version 1; fields are only ever added.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct JudgeReport {
    pub schema_version: u32,
    pub verdict: Verdict,
    /// 0..=100: passed / counted metrics x 100, or 0 after a critical failure.
    pub score: f64,
    /// `verdict == "pass"`, for an Argo Rollouts `successCondition: result == true`.
    pub pass: bool,
    pub critical_failure: bool,
    pub summary: String,
    pub confidence: f64,
    pub thresholds: Thresholds,
    pub metrics: Vec<MetricResult>,
}

/// Judges every metric and scores the canary.
pub fn judge(config: &JudgeConfig, metrics: &[MetricSamples]) -> Result<JudgeReport, JudgeConfigError> {
    config.validate()?;
    for m in metrics {
        let Some(t) = m.spec.tolerance else { continue };
        if !(t.is_finite() && t >= 0.0) {
            return Err(JudgeConfigError {
                field: format!("metrics.{}.tolerance", m.spec.name),
                message: format!("must be a non-negative number, got {t}"),
            });
        }
    }
    let results: Vec<MetricResult> = metrics.iter().map(|m| classify(config, m)).collect();

    let counted = results.iter().filter(|r| r.counted).count();
    let passed = results.iter().filter(|r| r.counted && r.pass).count();
    let critical: Vec<&str> =
        results.iter().filter(|r| r.critical && r.counted && !r.pass).map(|r| r.name.as_str()).collect();
    let critical_failure = !critical.is_empty();
    let score = if counted == 0 || critical_failure { 0.0 } else { passed as f64 / counted as f64 * 100.0 };
    let verdict = if counted == 0 {
        Verdict::Fail
    } else if score >= config.pass_threshold {
        Verdict::Pass
    } else if score >= config.marginal_threshold {
        Verdict::Marginal
    } else {
        Verdict::Fail
    };

    let mut summary = if counted == 0 {
        "no metric had enough data to judge".to_owned()
    } else {
        format!("{passed} of {counted} metrics passed, score {}", round2(score))
    };
    if critical_failure {
        summary.push_str(&format!("; critical metric failed: {}", critical.join(", ")));
    }
    let failures: Vec<String> = results
        .iter()
        .filter(|r| r.counted && !r.pass)
        .map(|r| format!("{} {}", r.name, r.classification.as_str()))
        .collect();
    if !failures.is_empty() {
        summary.push_str(&format!(" ({})", failures.join(", ")));
    }

    Ok(JudgeReport {
        schema_version: 1,
        verdict,
        score,
        pass: verdict == Verdict::Pass,
        critical_failure,
        summary,
        confidence: config.confidence,
        thresholds: Thresholds { pass: config.pass_threshold, marginal: config.marginal_threshold },
        metrics: results,
    })
}

fn classify(config: &JudgeConfig, m: &MetricSamples) -> MetricResult {
    let spec = &m.spec;
    let tolerance = spec.tolerance.unwrap_or(config.tolerance);
    let baseline: Vec<f64> = m.baseline.iter().copied().filter(|v| v.is_finite()).collect();
    let canary: Vec<f64> = m.canary.iter().copied().filter(|v| v.is_finite()).collect();
    let summarise = |kept: &[f64], all: &[f64]| SampleSummary {
        count: kept.len(),
        dropped: all.len() - kept.len(),
        mean: mean(kept),
        median: median(kept),
    };
    let mut result = MetricResult {
        name: spec.name.clone(),
        classification: Classification::NoData,
        pass: false,
        counted: !spec.optional,
        critical: spec.critical,
        direction: spec.direction,
        tolerance,
        reason: String::new(),
        baseline: summarise(&baseline, &m.baseline),
        canary: summarise(&canary, &m.canary),
        mann_whitney: None,
        effect_size: None,
    };

    if baseline.len() < config.min_samples || canary.len() < config.min_samples {
        result.reason = format!(
            "not enough data: baseline {} and canary {} usable points, {} needed on each side{}",
            baseline.len(),
            canary.len(),
            config.min_samples,
            if spec.optional { " (optional metric: left out of the score)" } else { " (counts as a failure)" }
        );
        return result;
    }
    result.counted = true;

    let (bm, cm) = (mean(&baseline).unwrap_or(0.0), mean(&canary).unwrap_or(0.0));
    let effect = if bm == 0.0 { (cm == 0.0).then_some(1.0) } else { Some(cm / bm) };
    result.effect_size = effect;

    let options = Options { alternative: Alternative::TwoSided, method: config.method, continuity: true };
    let test = match stats::mann_whitney_u(&canary, &baseline, options) {
        Ok(t) => t,
        Err(e) => {
            // Only reachable with an explicit exact method on tied or huge samples.
            result.classification = Classification::NoData;
            result.counted = !spec.optional;
            result.reason = format!("cannot test: {e}");
            return result;
        }
    };
    result.mann_whitney = Some(TestSummary { u: test.u1, p_value: test.p_value, method: test.method });
    let alpha = 1.0 - config.confidence;
    let ratio_text = match effect {
        Some(r) => format!("canary mean {}x baseline", round3(r)),
        None => "baseline mean 0, canary mean above it".to_owned(),
    };
    let p_text = format!("p={:.3e}", test.p_value);

    // NaN (impossible with the continuity correction) would count as not significant.
    let significant = test.p_value < alpha;
    if !significant {
        result.classification = Classification::Pass;
        result.reason = format!("no significant difference ({p_text} >= {}; {ratio_text})", round3(alpha));
    } else {
        // Beyond the allowed band only if the ratio is outside [1 - t, 1 + t]; a zero baseline
        // mean makes any increase unbounded.
        let higher = match effect {
            Some(r) => r > 1.0 + tolerance,
            None => true,
        };
        let lower = effect.is_some_and(|r| r < 1.0 - tolerance);
        result.classification = if higher {
            Classification::High
        } else if lower {
            Classification::Low
        } else {
            Classification::Pass
        };
        result.reason = match result.classification {
            Classification::Pass => {
                format!("significant ({p_text}) but within the allowed ±{}% ({ratio_text})", round3(tolerance * 100.0))
            }
            c => format!(
                "significantly {} ({p_text}, {ratio_text}, allowed ±{}%)",
                if c == Classification::High { "higher" } else { "lower" },
                round3(tolerance * 100.0)
            ),
        };
    }
    result.pass = match (result.classification, spec.direction) {
        (Classification::Pass, _) => true,
        (Classification::High, Direction::Decrease) | (Classification::Low, Direction::Increase) => {
            result.reason.push_str("; only a change the other way fails this metric");
            true
        }
        _ => false,
    };
    result
}

fn mean(v: &[f64]) -> Option<f64> {
    (!v.is_empty()).then(|| v.iter().sum::<f64>() / v.len() as f64)
}

fn median(v: &[f64]) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    let mid = s.len() / 2;
    Some(if s.len() % 2 == 1 { s[mid] } else { (s[mid - 1] + s[mid]) / 2.0 })
}

fn round2(v: f64) -> f64 {
    (v * 100.0).round() / 100.0
}

fn round3(v: f64) -> f64 {
    (v * 1000.0).round() / 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A deterministic wobble around `level` (no RNG needed for unit tests).
    fn series(level: f64, n: usize, spread: f64) -> Vec<f64> {
        (0..n).map(|i| level * (1.0 + spread * (((i * 7919) % 23) as f64 / 22.0 - 0.5))).collect()
    }

    fn samples(spec: MetricSpec, baseline: Vec<f64>, canary: Vec<f64>) -> MetricSamples {
        MetricSamples { spec, baseline, canary }
    }

    #[test]
    fn same_behaviour_passes_with_score_100() {
        let m = vec![
            samples(MetricSpec::error_ratio(), series(0.01, 60, 0.4), series(0.01, 60, 0.4)),
            samples(MetricSpec::p99_latency(), series(0.2, 60, 0.3), series(0.2, 60, 0.3)),
            samples(MetricSpec::cpu_per_request(), series(0.002, 60, 0.2), series(0.002, 60, 0.2)),
        ];
        let r = judge(&JudgeConfig::default(), &m).unwrap();
        assert_eq!((r.verdict, r.score, r.pass), (Verdict::Pass, 100.0, true));
        assert!(r.metrics.iter().all(|m| m.classification == Classification::Pass && m.pass));
        assert_eq!(r.summary, "3 of 3 metrics passed, score 100");
    }

    #[test]
    fn a_big_latency_regression_is_high_and_fails() {
        let m = vec![
            samples(MetricSpec::error_ratio(), series(0.01, 60, 0.4), series(0.01, 60, 0.4)),
            samples(MetricSpec::p99_latency(), series(0.2, 60, 0.3), series(0.4, 60, 0.3)),
            samples(MetricSpec::cpu_per_request(), series(0.002, 60, 0.2), series(0.002, 60, 0.2)),
        ];
        let r = judge(&JudgeConfig::default(), &m).unwrap();
        let lat = &r.metrics[1];
        assert_eq!((lat.classification, lat.pass), (Classification::High, false));
        assert!(lat.mann_whitney.as_ref().unwrap().p_value < 1e-10);
        assert!((lat.effect_size.unwrap() - 2.0).abs() < 1e-9);
        // 2 of 3 = 66.7 < 75: fail, but no critical failure.
        assert_eq!(r.verdict, Verdict::Fail);
        assert!(!r.critical_failure);
        assert!((r.score - 200.0 / 3.0).abs() < 1e-9);
        assert!(r.summary.contains("p99_latency_seconds high"), "{}", r.summary);
    }

    #[test]
    fn a_significant_change_within_tolerance_passes() {
        // 10% slower, consistently: significant, but inside the allowed 25%.
        let m = vec![samples(MetricSpec::p99_latency(), series(0.2, 60, 0.05), series(0.22, 60, 0.05))];
        let r = judge(&JudgeConfig::default(), &m).unwrap();
        let lat = &r.metrics[0];
        assert!(lat.mann_whitney.as_ref().unwrap().p_value < 0.02);
        assert_eq!((lat.classification, lat.pass), (Classification::Pass, true));
        assert!(lat.reason.contains("within the allowed"), "{}", lat.reason);
        // A tighter per-metric tolerance turns the same data into High.
        let strict = MetricSpec { tolerance: Some(0.05), ..MetricSpec::p99_latency() };
        let r =
            judge(&JudgeConfig::default(), &[samples(strict, series(0.2, 60, 0.05), series(0.22, 60, 0.05))]).unwrap();
        assert_eq!(r.metrics[0].classification, Classification::High);
    }

    #[test]
    fn lower_is_fine_for_metrics_where_only_increases_fail() {
        let m = vec![samples(MetricSpec::cpu_per_request(), series(0.004, 60, 0.1), series(0.002, 60, 0.1))];
        let r = judge(&JudgeConfig::default(), &m).unwrap();
        assert_eq!((r.metrics[0].classification, r.metrics[0].pass), (Classification::Low, true));
        assert_eq!(r.verdict, Verdict::Pass);
        // With direction either, the same drop fails.
        let either = MetricSpec::new("throughput", Direction::Either);
        let r =
            judge(&JudgeConfig::default(), &[samples(either, series(0.004, 60, 0.1), series(0.002, 60, 0.1))]).unwrap();
        assert_eq!((r.metrics[0].pass, r.verdict), (false, Verdict::Fail));
    }

    #[test]
    fn too_little_data_is_nodata_never_a_pass() {
        let m = vec![
            samples(MetricSpec::p99_latency(), series(0.2, 60, 0.3), series(0.2, 9, 0.3)),
            samples(MetricSpec::new("saturation", Direction::Increase), series(0.002, 60, 0.2), vec![f64::NAN; 60]),
        ];
        let r = judge(&JudgeConfig::default(), &m).unwrap();
        for metric in &r.metrics {
            assert_eq!((metric.classification, metric.pass, metric.counted), (Classification::NoData, false, true));
            assert!(metric.reason.contains("not enough data"), "{}", metric.reason);
        }
        assert_eq!(r.metrics[1].canary.dropped, 60);
        assert_eq!((r.verdict, r.score), (Verdict::Fail, 0.0));
    }

    #[test]
    fn optional_nodata_is_left_out_of_the_score() {
        let cpu = MetricSpec::cpu_per_request();
        assert!(cpu.optional);
        let m = vec![
            samples(MetricSpec::p99_latency(), series(0.2, 60, 0.3), series(0.2, 60, 0.3)),
            samples(cpu, vec![], vec![]),
        ];
        let r = judge(&JudgeConfig::default(), &m).unwrap();
        assert!(!r.metrics[1].counted);
        assert_eq!((r.verdict, r.score), (Verdict::Pass, 100.0));
        // Nothing counted at all: fail.
        let only = MetricSpec::cpu_per_request();
        let r = judge(&JudgeConfig::default(), &[samples(only, vec![], vec![])]).unwrap();
        assert_eq!((r.verdict, r.score), (Verdict::Fail, 0.0));
        assert_eq!(r.summary, "no metric had enough data to judge");
    }

    #[test]
    fn a_critical_failure_forces_score_zero() {
        let mut m = vec![samples(MetricSpec::error_ratio(), series(0.01, 60, 0.2), series(0.05, 60, 0.2))];
        for i in 0..19 {
            m.push(samples(
                MetricSpec::new(format!("m{i}"), Direction::Increase),
                series(1.0, 30, 0.2),
                series(1.0, 30, 0.2),
            ));
        }
        let r = judge(&JudgeConfig::default(), &m).unwrap();
        // 19 of 20 would be 95 (pass), but error_ratio is critical.
        assert_eq!((r.verdict, r.score, r.critical_failure), (Verdict::Fail, 0.0, true));
        assert!(r.summary.contains("critical metric failed: error_ratio"), "{}", r.summary);
    }

    #[test]
    fn marginal_between_the_thresholds() {
        let mut m = vec![samples(MetricSpec::p99_latency(), series(0.2, 60, 0.2), series(0.5, 60, 0.2))];
        for i in 0..4 {
            m.push(samples(
                MetricSpec::new(format!("m{i}"), Direction::Increase),
                series(1.0, 30, 0.2),
                series(1.0, 30, 0.2),
            ));
        }
        let r = judge(&JudgeConfig::default(), &m).unwrap();
        assert_eq!((r.verdict, r.score, r.pass), (Verdict::Marginal, 80.0, false));
    }

    #[test]
    fn zero_baseline_errors_against_canary_errors() {
        // Baseline never failed; the canary fails in every step: no ratio, but High.
        let m = vec![samples(MetricSpec::error_ratio(), vec![0.0; 30], series(0.05, 30, 0.5))];
        let r = judge(&JudgeConfig::default(), &m).unwrap();
        let e = &r.metrics[0];
        assert_eq!((e.classification, e.effect_size), (Classification::High, None));
        assert!(r.critical_failure);
        // Both zero: identical, pass with ratio 1.
        let m = vec![samples(MetricSpec::error_ratio(), vec![0.0; 30], vec![0.0; 30])];
        let r = judge(&JudgeConfig::default(), &m).unwrap();
        assert_eq!((r.metrics[0].classification, r.metrics[0].effect_size), (Classification::Pass, Some(1.0)));
        assert_eq!(r.metrics[0].mann_whitney.as_ref().unwrap().p_value, 1.0);
    }

    #[test]
    fn bad_configuration_is_refused_naming_the_field() {
        let e = judge(&JudgeConfig { confidence: 1.0, ..JudgeConfig::default() }, &[]).unwrap_err();
        assert_eq!(e.to_string(), "--confidence must be between 0 and 1 (exclusive), got 1");
        let e = judge(&JudgeConfig { marginal_threshold: 96.0, ..JudgeConfig::default() }, &[]).unwrap_err();
        assert_eq!(e.field, "--marginal-threshold");
        let e = judge(&JudgeConfig { min_samples: 0, ..JudgeConfig::default() }, &[]).unwrap_err();
        assert_eq!(e.field, "--min-samples");
        let spec = MetricSpec { tolerance: Some(-0.1), ..MetricSpec::p99_latency() };
        let e = judge(&JudgeConfig::default(), &[samples(spec, vec![], vec![])]).unwrap_err();
        assert_eq!(e.field, "metrics.p99_latency_seconds.tolerance");
    }

    #[test]
    fn the_json_schema_is_stable() {
        let m = vec![samples(MetricSpec::p99_latency(), series(0.2, 12, 0.3), series(0.2, 12, 0.3))];
        let r = judge(&JudgeConfig::default(), &m).unwrap();
        let v = serde_json::to_value(&r).unwrap();
        let mut keys: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
        keys.sort_unstable();
        assert_eq!(
            keys,
            [
                "confidence",
                "critical_failure",
                "metrics",
                "pass",
                "schema_version",
                "score",
                "summary",
                "thresholds",
                "verdict"
            ]
        );
        assert_eq!(v["schema_version"], 1);
        assert_eq!(v["verdict"], "pass");
        assert_eq!(v["pass"], true);
        let metric = &v["metrics"][0];
        let mut keys: Vec<&str> = metric.as_object().unwrap().keys().map(String::as_str).collect();
        keys.sort_unstable();
        assert_eq!(
            keys,
            [
                "baseline",
                "canary",
                "classification",
                "counted",
                "critical",
                "direction",
                "effect_size",
                "mann_whitney",
                "name",
                "pass",
                "reason",
                "tolerance"
            ]
        );
        assert_eq!(metric["classification"], "pass");
        assert_eq!(metric["mann_whitney"]["method"], "asymptotic");
        assert_eq!(metric["baseline"]["count"], 12);
        let nodata = judge(&JudgeConfig::default(), &[samples(MetricSpec::p99_latency(), vec![], vec![])]).unwrap();
        let v = serde_json::to_value(&nodata).unwrap();
        assert_eq!(v["metrics"][0]["classification"], "nodata");
        assert_eq!(v["metrics"][0]["mann_whitney"], serde_json::Value::Null);
    }
}
