//! The readiness report: one result per check (status, summary, evidence, blocking) and the
//! verdict derived from them. Its JSON form is a stable, documented schema (docs/readiness.md).

use serde::Serialize;

/// Every check, in report order. Ids are part of the contract (config `blocking`, `--only`).
pub const CHECK_IDS: [&str; 10] = [
    "tests.coverage",
    "metrics.red",
    "metrics.use",
    "logging.structured",
    "tracing",
    "dashboard",
    "alerts.symptoms",
    "alerts.tests",
    "alerts.firing",
    "canary",
];

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Pass,
    Fail,
    Warn,
    Skip,
    Error,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Pass => "pass",
            Status::Fail => "fail",
            Status::Warn => "warn",
            Status::Skip => "skip",
            Status::Error => "error",
        }
    }

    /// Whether this status stops promotion when the check is blocking. A `warn` is shown but
    /// never blocks; a `skip` (not configured, or not selected) does not either.
    pub fn is_failure(self) -> bool {
        matches!(self, Status::Fail | Status::Error)
    }
}

/// What one check found, before the runner adds its id, blocking flag and timing.
#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
    pub status: Status,
    pub summary: String,
    /// Files, URLs and queries the verdict was drawn from.
    pub evidence: Vec<String>,
    /// Extra lines worth showing (e.g. which rules lack a runbook); never needed to judge.
    pub details: Vec<String>,
    /// The samples the canary check judged, one per metric (empty for every other check).
    pub series: Vec<MetricSeries>,
}

/// One metric's samples over the canary window, baseline and canary, with the judge's
/// classification: what the receiver's page plots. Not part of the JSON report.
#[derive(Debug, Clone, PartialEq)]
pub struct MetricSeries {
    pub name: String,
    pub classification: &'static str,
    pub baseline: Vec<f64>,
    pub canary: Vec<f64>,
}

impl Outcome {
    pub fn new(status: Status, summary: impl Into<String>) -> Outcome {
        Outcome { status, summary: summary.into(), evidence: Vec::new(), details: Vec::new(), series: Vec::new() }
    }
    pub fn pass(summary: impl Into<String>) -> Outcome {
        Outcome::new(Status::Pass, summary)
    }
    pub fn fail(summary: impl Into<String>) -> Outcome {
        Outcome::new(Status::Fail, summary)
    }
    pub fn warn(summary: impl Into<String>) -> Outcome {
        Outcome::new(Status::Warn, summary)
    }
    pub fn skip(summary: impl Into<String>) -> Outcome {
        Outcome::new(Status::Skip, summary)
    }
    pub fn error(summary: impl Into<String>) -> Outcome {
        Outcome::new(Status::Error, summary)
    }
    pub fn evidence(mut self, e: impl Into<String>) -> Outcome {
        self.evidence.push(e.into());
        self
    }
    pub fn details(mut self, d: Vec<String>) -> Outcome {
        self.details.extend(d);
        self
    }
    pub fn series(mut self, s: Vec<MetricSeries>) -> Outcome {
        self.series = s;
        self
    }
}

/// One line of the report.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CheckResult {
    pub id: &'static str,
    pub status: Status,
    pub summary: String,
    pub evidence: Vec<String>,
    pub details: Vec<String>,
    /// Whether a `fail`/`error` of this check makes the service not ready.
    pub blocks: bool,
    pub duration_ms: u64,
    /// The canary check's samples (`Outcome::series`), for the receiver's page only.
    #[serde(skip)]
    pub series: Vec<MetricSeries>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Counts {
    pub pass: usize,
    pub fail: usize,
    pub warn: usize,
    pub skip: usize,
    pub error: usize,
}

/// The whole report. Schema version 1: fields are only ever added, never renamed or removed.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Report {
    pub schema_version: u32,
    pub service: String,
    /// RFC 3339 UTC time the report was made.
    pub generated_at: String,
    /// No blocking check failed or errored.
    pub ready: bool,
    /// Ids of the blocking checks that failed or errored, in report order.
    pub blocking_failures: Vec<&'static str>,
    pub counts: Counts,
    pub checks: Vec<CheckResult>,
}

impl Report {
    pub fn new(service: &str, generated_at: String, checks: Vec<CheckResult>) -> Report {
        let mut counts = Counts::default();
        for c in &checks {
            match c.status {
                Status::Pass => counts.pass += 1,
                Status::Fail => counts.fail += 1,
                Status::Warn => counts.warn += 1,
                Status::Skip => counts.skip += 1,
                Status::Error => counts.error += 1,
            }
        }
        let blocking_failures: Vec<&'static str> =
            checks.iter().filter(|c| c.blocks && c.status.is_failure()).map(|c| c.id).collect();
        Report {
            schema_version: 1,
            service: service.to_string(),
            generated_at,
            ready: blocking_failures.is_empty(),
            blocking_failures,
            counts,
            checks,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn result(id: &'static str, status: Status, blocks: bool) -> CheckResult {
        CheckResult {
            id,
            status,
            summary: String::new(),
            evidence: vec![],
            details: vec![],
            blocks,
            duration_ms: 0,
            series: vec![],
        }
    }

    #[test]
    fn only_blocking_failures_and_errors_make_a_service_not_ready() {
        let r = Report::new(
            "s",
            "t".into(),
            vec![
                result("tests.coverage", Status::Pass, true),
                result("metrics.use", Status::Fail, false),
                result("tracing", Status::Skip, true),
                result("dashboard", Status::Warn, true),
            ],
        );
        assert!(r.ready);
        let r = Report::new("s", "t".into(), vec![result("canary", Status::Error, true)]);
        assert!(!r.ready);
        assert_eq!(r.blocking_failures, vec!["canary"]);
        assert_eq!(r.counts.error, 1);
    }

    /// The JSON field names are a contract (docs/readiness.md): this test fails on a rename.
    #[test]
    fn json_field_names_are_stable() {
        let r = Report::new("s", "t".into(), vec![result("tracing", Status::Skip, true)]);
        let v = serde_json::to_value(&r).expect("json");
        let keys = |v: &serde_json::Value| -> Vec<String> {
            let mut k: Vec<String> = v.as_object().expect("object").keys().cloned().collect();
            k.sort();
            k
        };
        assert_eq!(
            keys(&v),
            ["blocking_failures", "checks", "counts", "generated_at", "ready", "schema_version", "service"]
        );
        assert_eq!(keys(&v["counts"]), ["error", "fail", "pass", "skip", "warn"]);
        assert_eq!(keys(&v["checks"][0]), ["blocks", "details", "duration_ms", "evidence", "id", "status", "summary"]);
        assert_eq!(v["checks"][0]["status"], "skip");
    }
}
