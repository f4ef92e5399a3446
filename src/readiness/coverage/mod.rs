//! Line coverage from LCOV, Cobertura XML, JaCoCo XML, Go coverprofile and llvm-cov export JSON,
//! recognised by content, with the total computed the way the tool that produced it computes it.
//!
//! Every parser counts what its producer counts, so `percent` equals the producer's own total:
//! - LCOV: `DA` lines per source file, records for the same file merged line by line (a line is
//!   covered if any record hit it), `LF`/`LH` ignored — what `lcov --summary` and genhtml print.
//! - Cobertura: the root's `lines-covered`/`lines-valid` (coverage.py's `TOTAL` and `line-rate`);
//!   without them, the `<line>`s of each `<class>` (not the duplicates under `<methods>`),
//!   deduplicated per file and line number, which is how Cobertura derives `line-rate`.
//! - JaCoCo: the report element's own `LINE` counter (not a sum of the nested counters).
//! - Go: statements of the unique blocks (blocks repeated by `-coverpkg` runs merged as
//!   `go tool cover` merges them), which is the `go tool cover -func` total.
//! - llvm-cov: `data[].totals.lines` (`llvm-cov report`'s TOTAL line coverage).

mod cobertura;
mod go;
mod jacoco;
mod lcov;
mod llvm;
mod xml;

use std::fmt;

use serde::Serialize;

/// The report formats this module reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum CoverageFormat {
    Lcov,
    Cobertura,
    Jacoco,
    GoCoverprofile,
    LlvmCovJson,
}

impl fmt::Display for CoverageFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            CoverageFormat::Lcov => "LCOV",
            CoverageFormat::Cobertura => "Cobertura XML",
            CoverageFormat::Jacoco => "JaCoCo XML",
            CoverageFormat::GoCoverprofile => "Go coverprofile",
            CoverageFormat::LlvmCovJson => "llvm-cov JSON",
        })
    }
}

/// What `lines_total`/`lines_covered` count: source lines, or (Go) statements, since Go's own
/// coverage figure is statement coverage and the check must agree with it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum CoverageUnit {
    Lines,
    Statements,
}

/// A parsed report: totals as the producing tool computes them, and the same per source file.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CoverageReport {
    pub format: CoverageFormat,
    pub unit: CoverageUnit,
    pub lines_total: u64,
    pub lines_covered: u64,
    /// `100 * lines_covered / lines_total`, unrounded (tools print it rounded to 1 or 2 places).
    pub percent: f64,
    pub files: Vec<FileCoverage>,
    /// Oddities worth showing as evidence (e.g. LCOV `LF` disagreeing with its `DA` lines).
    pub notes: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FileCoverage {
    pub path: String,
    pub lines_total: u64,
    pub lines_covered: u64,
}

impl FileCoverage {
    /// Percentage of this file's lines covered; `None` when the file has no countable lines.
    pub fn percent(&self) -> Option<f64> {
        (self.lines_total > 0).then(|| percent(self.lines_covered, self.lines_total))
    }
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum CoverageError {
    #[error(
        "not a coverage report redline can read (expected LCOV, Cobertura XML, JaCoCo XML, Go coverprofile \
         or llvm-cov export JSON): {0}"
    )]
    Unrecognised(String),
    #[error("{format} report{}: {message}", line.map(|l| format!(", line {l}")).unwrap_or_default())]
    Invalid { format: CoverageFormat, line: Option<usize>, message: String },
    #[error("{format} report contains no {unit} to count; a report of an empty run cannot show coverage")]
    NoLines { format: CoverageFormat, unit: &'static str },
}

impl CoverageError {
    fn invalid(format: CoverageFormat, line: Option<usize>, message: impl Into<String>) -> CoverageError {
        CoverageError::Invalid { format, line, message: message.into() }
    }
}

/// Detects the format of `bytes` from its content (never from a file name) and parses it.
pub fn parse(bytes: &[u8]) -> Result<CoverageReport, CoverageError> {
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    let format = detect(bytes)?;
    let text = std::str::from_utf8(bytes).map_err(|e| {
        CoverageError::invalid(
            format,
            Some(line_at(bytes, e.valid_up_to())),
            "the file is not valid UTF-8 (redline reads UTF-8 reports only)",
        )
    })?;
    match format {
        CoverageFormat::Lcov => lcov::parse(text),
        CoverageFormat::Cobertura => cobertura::parse(text),
        CoverageFormat::Jacoco => jacoco::parse(text),
        CoverageFormat::GoCoverprofile => go::parse(text),
        CoverageFormat::LlvmCovJson => llvm::parse(text),
    }
}

/// Recognises the format from the first meaningful bytes: an XML root element, a JSON document's
/// `type`, Go's `mode:` header, or an LCOV record key.
pub fn detect(bytes: &[u8]) -> Result<CoverageFormat, CoverageError> {
    let start = bytes.iter().position(|b| !b.is_ascii_whitespace());
    let Some(start) = start else {
        return Err(CoverageError::Unrecognised("the file is empty".into()));
    };
    let rest = &bytes[start..];
    match rest[0] {
        b'<' => xml::detect(bytes),
        b'{' => llvm::detect(bytes),
        _ => {
            let first_line = rest.split(|&b| b == b'\n').next().unwrap_or_default();
            let first_line = String::from_utf8_lossy(first_line);
            let first_line = first_line.trim();
            if first_line.starts_with("mode:") {
                Ok(CoverageFormat::GoCoverprofile)
            } else if lcov::looks_like(first_line) {
                Ok(CoverageFormat::Lcov)
            } else {
                Err(CoverageError::Unrecognised(format!("it starts with {:?}", excerpt(first_line))))
            }
        }
    }
}

fn percent(covered: u64, total: u64) -> f64 {
    covered as f64 / total as f64 * 100.0
}

/// Builds the report once the totals are known, refusing a report with nothing to count.
fn finish(
    format: CoverageFormat,
    unit: CoverageUnit,
    lines_total: u64,
    lines_covered: u64,
    files: Vec<FileCoverage>,
    notes: Vec<String>,
) -> Result<CoverageReport, CoverageError> {
    if lines_total == 0 {
        let unit = match unit {
            CoverageUnit::Lines => "lines",
            CoverageUnit::Statements => "statements",
        };
        return Err(CoverageError::NoLines { format, unit });
    }
    if lines_covered > lines_total {
        return Err(CoverageError::invalid(
            format,
            None,
            format!("{lines_covered} covered of {lines_total} is more than all of them"),
        ));
    }
    Ok(CoverageReport {
        format,
        unit,
        lines_total,
        lines_covered,
        percent: percent(lines_covered, lines_total),
        files,
        notes,
    })
}

/// 1-based line number of byte `offset`.
fn line_at(bytes: &[u8], offset: usize) -> usize {
    let offset = offset.min(bytes.len());
    bytes[..offset].iter().filter(|&&b| b == b'\n').count() + 1
}

/// At most 60 characters of `s`, for error messages.
fn excerpt(s: &str) -> String {
    let mut out: String = s.chars().take(60).collect();
    if out.len() < s.len() {
        out.push('…');
    }
    out
}

/// Keeps source files in the order of their first appearance while merging repeats.
#[derive(Default)]
struct FileIndex<T> {
    order: Vec<(String, T)>,
    index: std::collections::HashMap<String, usize>,
}

impl<T: Default> FileIndex<T> {
    fn entry(&mut self, path: &str) -> &mut T {
        let i = match self.index.get(path) {
            Some(&i) => i,
            None => {
                self.order.push((path.to_owned(), T::default()));
                self.index.insert(path.to_owned(), self.order.len() - 1);
                self.order.len() - 1
            }
        };
        &mut self.order[i].1
    }

    fn into_iter(self) -> impl Iterator<Item = (String, T)> {
        self.order.into_iter()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_are_detected_by_content() {
        assert_eq!(detect(b"TN:\nSF:a.c\nDA:1,1\nend_of_record\n"), Ok(CoverageFormat::Lcov));
        assert_eq!(detect(b"SF:a.c\n"), Ok(CoverageFormat::Lcov));
        assert_eq!(detect(b"\n\nmode: set\na.go:1.1,2.2 1 1\n"), Ok(CoverageFormat::GoCoverprofile));
        assert_eq!(
            detect(b"<?xml version=\"1.0\" ?>\n<!-- c -->\n<coverage line-rate=\"1\"></coverage>"),
            Ok(CoverageFormat::Cobertura)
        );
        assert_eq!(
            detect(b"<?xml version=\"1.0\"?><!DOCTYPE report PUBLIC \"-//JACOCO//DTD Report 1.1//EN\" \"report.dtd\"><report name=\"x\"/>"),
            Ok(CoverageFormat::Jacoco)
        );
        assert_eq!(
            detect(br#"{"data":[],"type":"llvm.coverage.json.export","version":"2.0.1"}"#),
            Ok(CoverageFormat::LlvmCovJson)
        );
    }

    #[test]
    fn unknown_content_is_refused_with_what_was_seen() {
        let e = detect(b"hello world\n").unwrap_err();
        assert!(e.to_string().contains("\"hello world\""), "{e}");
        assert!(detect(b"   \n").unwrap_err().to_string().contains("empty"));
        let e = detect(b"<html><body/></html>").unwrap_err().to_string();
        assert!(e.contains("<html>"), "{e}");
        let e = detect(br#"{"meta": {"format": 3}, "totals": {}}"#).unwrap_err().to_string();
        assert!(e.contains("coverage.py JSON"), "{e}");
    }

    #[test]
    fn a_byte_order_mark_is_ignored() {
        let r = parse(b"\xEF\xBB\xBFSF:a.c\nDA:1,1\nDA:2,0\nend_of_record\n").unwrap();
        assert_eq!((r.lines_total, r.lines_covered), (2, 1));
    }

    #[test]
    fn invalid_utf8_is_refused_with_its_line() {
        let e = parse(b"SF:a.c\nDA:1,1\nSF:\xff\n").unwrap_err();
        assert_eq!(
            e,
            CoverageError::invalid(
                CoverageFormat::Lcov,
                Some(3),
                "the file is not valid UTF-8 (redline reads UTF-8 reports only)"
            )
        );
    }
}
