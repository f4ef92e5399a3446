//! Go coverprofiles (`go test -coverprofile`): `mode:` then `file:l.c,l.c statements count`.
//!
//! Go measures statements, not lines, and `go tool cover -func` totals statements over the
//! profile's blocks after merging repeats of the same block (`go test -coverpkg=./... ./...`
//! writes every covered package's blocks once per test binary): counts are OR-ed (`set`) or
//! added (`count`, `atomic`), and a repeat with a different statement count is an error.
//! Blocks that merely overlap are distinct blocks, counted as Go counts them.
//!
//! One known difference: `-func` only attributes blocks to function declarations, so a function
//! literal assigned to a package-level variable is left out of its total, while `go test -cover`
//! (and this reader) count it. See docs/readiness.md.

use std::collections::HashMap;

use super::{CoverageError, CoverageFormat, CoverageReport, CoverageUnit, FileCoverage, FileIndex};

const FORMAT: CoverageFormat = CoverageFormat::GoCoverprofile;

/// A block's position in its file: start line, start column, end line, end column.
type Span = (u32, u32, u32, u32);

struct Block {
    statements: u64,
    covered: bool,
    line: usize,
}

pub(super) fn parse(text: &str) -> Result<CoverageReport, CoverageError> {
    let mut mode: Option<&str> = None;
    let mut files: FileIndex<HashMap<Span, Block>> = FileIndex::default();

    for (i, raw) in text.lines().enumerate() {
        let line_no = i + 1;
        let line = raw.trim();
        if line.is_empty() {
            continue;
        }
        if let Some(m) = line.strip_prefix("mode:") {
            let m = m.trim();
            if !matches!(m, "set" | "count" | "atomic") {
                return Err(err(line_no, format!("unknown mode {m:?}, expected set, count or atomic")));
            }
            match mode {
                None => mode = Some(m),
                // Profiles concatenated with `cat` repeat the header; harmless if it agrees.
                Some(previous) if previous == m => {}
                Some(previous) => {
                    return Err(err(
                        line_no,
                        format!("mode {m:?} after mode {previous:?}: profiles of different modes"),
                    ));
                }
            }
            continue;
        }
        if mode.is_none() {
            return Err(err(line_no, "the profile must start with a mode: line"));
        }
        let (file, span, statements, count) = parse_block(line).map_err(|m| err(line_no, m))?;
        let blocks = files.entry(file);
        match blocks.get_mut(&span) {
            Some(existing) => {
                if existing.statements != statements {
                    return Err(err(
                        line_no,
                        format!(
                            "inconsistent statement count for {file}:{}.{},{}.{}: {} here, {} at line {}",
                            span.0, span.1, span.2, span.3, statements, existing.statements, existing.line
                        ),
                    ));
                }
                existing.covered |= count > 0;
            }
            None => {
                blocks.insert(span, Block { statements, covered: count > 0, line: line_no });
            }
        }
    }
    if mode.is_none() {
        return Err(err(1, "the profile has no mode: line"));
    }

    let mut total = 0u64;
    let mut covered = 0u64;
    let files: Vec<FileCoverage> = files
        .into_iter()
        .map(|(path, blocks)| {
            let lines_total: u64 = blocks.values().map(|b| b.statements).sum();
            let lines_covered: u64 = blocks.values().filter(|b| b.covered).map(|b| b.statements).sum();
            total += lines_total;
            covered += lines_covered;
            FileCoverage { path, lines_total, lines_covered }
        })
        .collect();
    super::finish(FORMAT, CoverageUnit::Statements, total, covered, files, Vec::new())
}

/// Splits `name.go:12.5,14.2 3 1` as Go's own profile parser does: the file name is everything
/// before the last `:` (paths may contain colons).
fn parse_block(line: &str) -> Result<(&str, Span, u64, u64), String> {
    let expected = || format!("expected <file>:<line>.<col>,<line>.<col> <statements> <count>, got {line:?}");
    let mut fields = line.rsplitn(3, ' ');
    let (Some(count), Some(statements), Some(location)) = (fields.next(), fields.next(), fields.next()) else {
        return Err(expected());
    };
    let (file, range) = location.rsplit_once(':').ok_or_else(expected)?;
    if file.is_empty() {
        return Err(expected());
    }
    let (start, end) = range.split_once(',').ok_or_else(expected)?;
    let pos = |p: &str| -> Option<(u32, u32)> {
        let (l, c) = p.split_once('.')?;
        Some((l.parse().ok()?, c.parse().ok()?))
    };
    let ((sl, sc), (el, ec)) = pos(start).zip(pos(end)).ok_or_else(expected)?;
    let statements: u64 = statements.parse().map_err(|_| expected())?;
    let count: u64 = count.parse().map_err(|_| expected())?;
    Ok((file, (sl, sc, el, ec), statements, count))
}

fn err(line: usize, message: impl Into<String>) -> CoverageError {
    CoverageError::invalid(FORMAT, Some(line), message)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statements_not_lines() {
        let r = parse("mode: set\nex.com/a/a.go:3.20,5.2 2 1\nex.com/a/a.go:5.2,7.3 3 0\nex.com/a/b.go:1.1,1.9 1 1\n")
            .unwrap();
        assert_eq!(r.unit, CoverageUnit::Statements);
        assert_eq!((r.lines_total, r.lines_covered), (6, 3));
        assert_eq!(r.files[0], FileCoverage { path: "ex.com/a/a.go".into(), lines_total: 5, lines_covered: 2 });
    }

    #[test]
    fn repeated_blocks_from_coverpkg_runs_merge() {
        // Two test binaries each report every block of package a; the second one covered the
        // block the first missed. go tool cover -func: 3 of 3 statements, not 4 of 6.
        let text = "mode: count\na.go:1.1,2.2 1 1\na.go:2.2,3.3 2 0\na.go:1.1,2.2 1 0\na.go:2.2,3.3 2 4\n";
        let r = parse(text).unwrap();
        assert_eq!((r.lines_total, r.lines_covered), (3, 3));
    }

    #[test]
    fn overlapping_but_different_blocks_both_count() {
        let r = parse("mode: set\na.go:1.1,5.2 2 1\na.go:3.1,4.2 1 0\n").unwrap();
        assert_eq!((r.lines_total, r.lines_covered), (3, 2));
    }

    #[test]
    fn concatenated_profiles_repeat_the_header() {
        let r = parse("mode: set\na.go:1.1,2.2 1 1\nmode: set\nb.go:1.1,2.2 1 0\n").unwrap();
        assert_eq!((r.lines_total, r.lines_covered), (2, 1));
        let e = parse("mode: set\na.go:1.1,2.2 1 1\nmode: count\n").unwrap_err();
        assert!(e.to_string().contains("line 3: mode \"count\" after mode \"set\""), "{e}");
    }

    #[test]
    fn windows_paths_keep_their_drive_colon() {
        let r = parse("mode: atomic\nC:/src/a.go:1.1,2.2 1 1\n").unwrap();
        assert_eq!(r.files[0].path, "C:/src/a.go");
    }

    #[test]
    fn malformed_lines_name_the_line() {
        let e = parse("mode: set\na.go:1.1,2.2 1 1\na.go 1 1\n").unwrap_err();
        assert_eq!(
            e.to_string(),
            "Go coverprofile report, line 3: expected <file>:<line>.<col>,<line>.<col> <statements> <count>, got \"a.go 1 1\""
        );
        let e = parse("mode: set\na.go:1.1,2.2 1 1\na.go:1.1,2.2 2 1\n").unwrap_err();
        assert!(e.to_string().contains("line 3: inconsistent statement count"), "{e}");
        let e = parse("mode: sometimes\n").unwrap_err();
        assert!(e.to_string().contains("line 1: unknown mode"), "{e}");
        let e = parse("mode: set\na.go:1.x,2.2 1 1\n").unwrap_err();
        assert!(e.to_string().contains("line 2"), "{e}");
        let e = parse("mode: set\n").unwrap_err();
        assert_eq!(e, CoverageError::NoLines { format: FORMAT, unit: "statements" });
    }
}
