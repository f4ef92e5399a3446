//! LCOV tracefiles (`SF:`/`DA:`/`end_of_record`), counted as `lcov --summary` and genhtml count.
//!
//! lcov derives "lines found/hit" from the `DA` records alone and merges every record of the same
//! source file line by line, so that is what happens here: `LF`/`LH` are only cross-checked.

use std::collections::BTreeMap;

use super::{CoverageError, CoverageFormat, CoverageReport, CoverageUnit, FileCoverage, FileIndex};

const FORMAT: CoverageFormat = CoverageFormat::Lcov;

/// Record keys of the LCOV format (geninfo(1)), including lcov 2's additions.
const KEYS: &[&str] =
    &["TN", "SF", "VER", "FN", "FNDA", "FNF", "FNH", "FNL", "FNA", "DA", "LF", "LH", "BRDA", "BRF", "BRH", "MCDC"];

pub(super) fn looks_like(first_line: &str) -> bool {
    first_line == "end_of_record" || first_line.split_once(':').is_some_and(|(key, _)| KEYS.contains(&key))
}

/// The per-line state of one source file: covered or not, merged over all of its records.
type Lines = BTreeMap<u64, bool>;

/// One `SF:` ... `end_of_record` block while it is being read.
struct Record {
    path: String,
    start_line: usize,
    lines: Lines,
    declared_found: Option<u64>,
    declared_hit: Option<u64>,
}

pub(super) fn parse(text: &str) -> Result<CoverageReport, CoverageError> {
    let mut files: FileIndex<Lines> = FileIndex::default();
    let mut notes = Vec::new();
    let mut mismatched = 0usize;
    let mut current: Option<Record> = None;

    for (i, raw) in text.lines().enumerate() {
        let line_no = i + 1;
        let line = raw.trim();
        if line.is_empty() {
            continue;
        }
        if line == "end_of_record" {
            match current.take() {
                Some(record) => close(record, &mut files, &mut notes, &mut mismatched),
                None => return Err(err(line_no, "end_of_record without an open SF: record")),
            }
            continue;
        }
        // lcov itself skips lines it does not know; so do we, but never a malformed known key.
        let Some((key, value)) = line.split_once(':') else { continue };
        match key {
            "SF" => {
                if value.is_empty() {
                    return Err(err(line_no, "SF: names no source file"));
                }
                // A new SF: before end_of_record implicitly ends the previous record, as in lcov.
                if let Some(record) = current.take() {
                    close(record, &mut files, &mut notes, &mut mismatched);
                }
                current = Some(Record {
                    path: value.to_owned(),
                    start_line: line_no,
                    lines: Lines::new(),
                    declared_found: None,
                    declared_hit: None,
                });
            }
            "DA" => {
                let record = current.as_mut().ok_or_else(|| err(line_no, "DA: outside a record (no SF: before it)"))?;
                let (number, covered) = parse_da(value).map_err(|m| err(line_no, m))?;
                let entry = record.lines.entry(number).or_insert(false);
                *entry |= covered;
            }
            "LF" | "LH" => {
                let record = current
                    .as_mut()
                    .ok_or_else(|| err(line_no, format!("{key}: outside a record (no SF: before it)")))?;
                let n: u64 =
                    value.trim().parse().map_err(|_| err(line_no, format!("{key}: expects a count, got {value:?}")))?;
                if key == "LF" {
                    record.declared_found = Some(n);
                } else {
                    record.declared_hit = Some(n);
                }
            }
            _ => {}
        }
    }
    if let Some(record) = current.take() {
        // A truncated last record still holds data; lcov reads it too.
        notes.push(format!("the record for {} (line {}) has no end_of_record", record.path, record.start_line));
        close(record, &mut files, &mut notes, &mut mismatched);
    }
    if mismatched > 3 {
        notes.push(format!("{} more records have LF/LH that disagree with their DA lines", mismatched - 3));
    }

    let mut total = 0;
    let mut covered = 0;
    let files: Vec<FileCoverage> = files
        .into_iter()
        .map(|(path, lines)| {
            let lines_total = lines.len() as u64;
            let lines_covered = lines.values().filter(|&&c| c).count() as u64;
            total += lines_total;
            covered += lines_covered;
            FileCoverage { path, lines_total, lines_covered }
        })
        .collect();
    super::finish(FORMAT, CoverageUnit::Lines, total, covered, files, notes)
}

/// `DA:<line>,<count>[,<checksum>]`: the line number and whether it was executed.
fn parse_da(value: &str) -> Result<(u64, bool), String> {
    let mut parts = value.split(',');
    let (Some(number), Some(count)) = (parts.next(), parts.next()) else {
        return Err(format!("DA: expects <line>,<count>, got {value:?}"));
    };
    let number: u64 =
        number.trim().parse().map_err(|_| format!("DA: line number must be a non-negative integer, got {number:?}"))?;
    let count = count.trim();
    // gcov can emit negative counts after counter overflow and some producers write floats;
    // like lcov, anything above zero is an executed line.
    let executed = match count.parse::<i64>() {
        Ok(n) => n > 0,
        Err(_) => match count.parse::<f64>() {
            Ok(f) if f.is_finite() => f > 0.0,
            _ => return Err(format!("DA: execution count must be a number, got {count:?}")),
        },
    };
    Ok((number, executed))
}

fn close(record: Record, files: &mut FileIndex<Lines>, notes: &mut Vec<String>, mismatched: &mut usize) {
    let found = record.lines.len() as u64;
    let hit = record.lines.values().filter(|&&c| c).count() as u64;
    let lf_wrong = record.declared_found.is_some_and(|lf| lf != found);
    let lh_wrong = record.declared_hit.is_some_and(|lh| lh != hit);
    if lf_wrong || lh_wrong {
        *mismatched += 1;
        if *mismatched <= 3 {
            notes.push(format!(
                "{} (record at line {}): LF/LH say {}/{} but the DA lines give {found}/{hit}; counted the DA lines, as lcov does",
                record.path,
                record.start_line,
                record.declared_found.map_or("-".into(), |n| n.to_string()),
                record.declared_hit.map_or("-".into(), |n| n.to_string()),
            ));
        }
    }
    let lines = files.entry(&record.path);
    for (number, covered) in record.lines {
        *lines.entry(number).or_insert(false) |= covered;
    }
}

fn err(line: usize, message: impl Into<String>) -> CoverageError {
    CoverageError::invalid(FORMAT, Some(line), message)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_da_lines_per_file() {
        let r = parse(
            "TN:\nSF:a.c\nDA:1,1\nDA:2,0\nDA:3,5,abc\nLF:3\nLH:2\nend_of_record\nSF:b.c\nDA:1,0\nend_of_record\n",
        )
        .unwrap();
        assert_eq!((r.lines_total, r.lines_covered), (4, 2));
        assert_eq!(r.percent, 50.0);
        assert_eq!(r.files[0], FileCoverage { path: "a.c".into(), lines_total: 3, lines_covered: 2 });
        assert_eq!(r.files[1].lines_covered, 0);
        assert!(r.notes.is_empty(), "{:?}", r.notes);
    }

    #[test]
    fn records_of_the_same_file_merge_line_by_line() {
        // Two test runs, each covering a different branch of the same file: lcov reports 3 of 3,
        // not 4 of 6 (summed records) nor 2 of 3 (last record wins).
        let text = "SF:a.py\nDA:1,1\nDA:2,1\nDA:3,0\nend_of_record\nSF:a.py\nDA:1,1\nDA:2,0\nDA:3,1\nend_of_record\n";
        let r = parse(text).unwrap();
        assert_eq!((r.lines_total, r.lines_covered), (3, 3));
        assert_eq!(r.files.len(), 1);
    }

    #[test]
    fn lf_and_lh_are_cross_checked_not_trusted() {
        // coverage.py 6.x wrote an excluded line as hit and LH one too high; lcov counts DA lines.
        let r = parse("SF:a.py\nDA:1,1\nDA:2,0\nLF:3\nLH:3\nend_of_record\n").unwrap();
        assert_eq!((r.lines_total, r.lines_covered), (2, 1));
        assert_eq!(r.notes.len(), 1);
        assert!(r.notes[0].contains("LF/LH say 3/3 but the DA lines give 2/1"), "{:?}", r.notes);
    }

    #[test]
    fn branch_and_function_records_do_not_count_as_lines() {
        let r = parse("SF:a.c\nFN:1,main\nFNDA:1,main\nFNF:1\nFNH:1\nDA:1,1\nBRDA:1,0,0,1\nBRDA:1,0,1,-\nBRF:2\nBRH:1\nDA:2,0\nend_of_record\n")
            .unwrap();
        assert_eq!((r.lines_total, r.lines_covered), (2, 1));
    }

    #[test]
    fn negative_and_float_counts() {
        let r = parse("SF:a.c\nDA:1,-1\nDA:2,2.5\nDA:3,0.0\nend_of_record\n").unwrap();
        assert_eq!((r.lines_total, r.lines_covered), (3, 1));
    }

    #[test]
    fn a_missing_end_of_record_is_tolerated_and_noted() {
        let r = parse("SF:a.c\nDA:1,1\nSF:b.c\nDA:1,0\n").unwrap();
        assert_eq!((r.lines_total, r.lines_covered), (2, 1));
        assert!(r.notes.iter().any(|n| n.contains("b.c (line 3) has no end_of_record")), "{:?}", r.notes);
    }

    #[test]
    fn malformed_records_name_the_line() {
        let e = parse("SF:a.c\nDA:1,1\nDA:x,1\nend_of_record\n").unwrap_err();
        assert_eq!(e.to_string(), "LCOV report, line 3: DA: line number must be a non-negative integer, got \"x\"");
        let e = parse("SF:a.c\nDA:7\n").unwrap_err();
        assert_eq!(e.to_string(), "LCOV report, line 2: DA: expects <line>,<count>, got \"7\"");
        let e = parse("TN:\nDA:1,1\n").unwrap_err();
        assert_eq!(e.to_string(), "LCOV report, line 2: DA: outside a record (no SF: before it)");
        let e = parse("SF:a.c\nDA:1,many\n").unwrap_err();
        assert!(e.to_string().contains("line 2: DA: execution count must be a number"), "{e}");
        let e = parse("SF:a.c\nLF:lots\n").unwrap_err();
        assert!(e.to_string().contains("line 2: LF: expects a count"), "{e}");
        let e = parse("end_of_record\n").unwrap_err();
        assert!(e.to_string().contains("line 1: end_of_record without an open SF: record"), "{e}");
    }

    #[test]
    fn a_report_without_lines_is_refused() {
        let e = parse("SF:pkg/__init__.py\nend_of_record\n").unwrap_err();
        assert_eq!(e, CoverageError::NoLines { format: FORMAT, unit: "lines" });
    }
}
