//! `llvm-cov export` JSON (`"type": "llvm.coverage.json.export"`), also what cargo-llvm-cov
//! `--json` writes. The totals are llvm-cov's own `data[].totals.lines`; per-file figures are
//! each file's `summary.lines`. Segments, branches and functions are skipped unread.

use serde::Deserialize;
use serde::de::IgnoredAny;

use super::{CoverageError, CoverageFormat, CoverageReport, CoverageUnit, FileCoverage};

const FORMAT: CoverageFormat = CoverageFormat::LlvmCovJson;
const EXPORT_TYPE: &str = "llvm.coverage.json.export";

/// Just enough of any JSON object to tell what produced it.
#[derive(Deserialize)]
struct Probe {
    #[serde(rename = "type")]
    kind: Option<String>,
    meta: Option<IgnoredAny>,
    totals: Option<IgnoredAny>,
}

#[derive(Deserialize)]
struct Export {
    data: Vec<ExportData>,
}

#[derive(Deserialize)]
struct ExportData {
    #[serde(default)]
    files: Vec<ExportFile>,
    totals: Summary,
}

#[derive(Deserialize)]
struct ExportFile {
    filename: String,
    summary: Summary,
}

#[derive(Deserialize)]
struct Summary {
    lines: Counts,
}

#[derive(Deserialize)]
struct Counts {
    count: u64,
    covered: u64,
}

pub(super) fn detect(bytes: &[u8]) -> Result<CoverageFormat, CoverageError> {
    let probe: Probe = serde_json::from_slice(bytes)
        .map_err(|e| CoverageError::Unrecognised(format!("JSON that does not parse at line {}: {e}", e.line())))?;
    match probe.kind.as_deref() {
        Some(EXPORT_TYPE) => Ok(CoverageFormat::LlvmCovJson),
        Some(other) => Err(CoverageError::Unrecognised(format!("JSON of type {other:?}, expected {EXPORT_TYPE:?}"))),
        None if probe.meta.is_some() && probe.totals.is_some() => Err(CoverageError::Unrecognised(
            "this looks like a coverage.py JSON report; write Cobertura (`coverage xml`) or LCOV (`coverage lcov`) instead"
                .into(),
        )),
        None => Err(CoverageError::Unrecognised(format!("JSON without \"type\": {EXPORT_TYPE:?}"))),
    }
}

pub(super) fn parse(text: &str) -> Result<CoverageReport, CoverageError> {
    let export: Export = serde_json::from_str(text)
        .map_err(|e| CoverageError::invalid(FORMAT, Some(e.line()), format!("not an llvm-cov export: {e}")))?;
    let mut total = 0u64;
    let mut covered = 0u64;
    let mut files = Vec::new();
    for data in export.data {
        total += data.totals.lines.count;
        covered += data.totals.lines.covered;
        files.extend(data.files.into_iter().map(|f| FileCoverage {
            path: f.filename,
            lines_total: f.summary.lines.count,
            lines_covered: f.summary.lines.covered,
        }));
    }
    super::finish(FORMAT, CoverageUnit::Lines, total, covered, files, Vec::new())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn totals_are_llvm_covs_own() {
        let text = r#"{"data":[{"files":[{"filename":"/src/a.c","segments":[[1,2,3,true,true,false]],"summary":{"lines":{"count":18,"covered":12,"percent":66.666666666666657},"functions":{"count":3,"covered":2,"percent":66.7}}}],"functions":[],"totals":{"lines":{"count":18,"covered":12,"percent":66.666666666666657},"regions":{"count":9,"covered":7,"notcovered":2,"percent":77.7}}}],"type":"llvm.coverage.json.export","version":"2.0.1"}"#;
        let r = crate::readiness::coverage::parse(text.as_bytes()).unwrap();
        assert_eq!(r.format, FORMAT);
        assert_eq!((r.lines_total, r.lines_covered), (18, 12));
        assert!((r.percent - 66.666_666_666_666_66).abs() < 1e-9);
        assert_eq!(r.files[0].path, "/src/a.c");
    }

    #[test]
    fn a_broken_export_names_the_line() {
        let text = "{\"type\":\"llvm.coverage.json.export\",\n\"data\":[{\"totals\":{}}]}";
        let e = crate::readiness::coverage::parse(text.as_bytes()).unwrap_err();
        assert!(
            e.to_string().starts_with("llvm-cov JSON report, line 2: not an llvm-cov export: missing field `lines`"),
            "{e}"
        );
        let e = detect(b"{\"type\":\"llvm.coverage.json.export\",").unwrap_err();
        assert!(e.to_string().contains("does not parse"), "{e}");
    }
}
