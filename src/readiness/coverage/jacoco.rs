//! JaCoCo XML reports (`<report>` with `<counter type="LINE" missed covered>` at every level).
//!
//! JaCoCo writes a LINE counter on each method, class, source file, package, group and the
//! report itself; the report's own counter is the total its HTML and CSV show. Summing all
//! counters would count every line several times, so only the report's counter (and, per file,
//! each `<sourcefile>`'s) is read.

use super::xml::{Element, walk};
use super::{CoverageError, CoverageFormat, CoverageReport, CoverageUnit, FileCoverage};

const FORMAT: CoverageFormat = CoverageFormat::Jacoco;

pub(super) fn parse(text: &str) -> Result<CoverageReport, CoverageError> {
    let mut report_total: Option<(u64, u64)> = None;
    let mut files: Vec<FileCoverage> = Vec::new();
    let mut package = String::new();
    let mut sourcefile: Option<String> = None;

    walk(text, FORMAT, |e: &Element<'_, '_>| {
        match e.name() {
            b"report" if !e.is_root() => return Err(e.error(FORMAT, "<report> nested inside another element")),
            b"package" => package = e.required(FORMAT, "name")?,
            b"sourcefile" if e.parent_is("package") => sourcefile = Some(e.required(FORMAT, "name")?),
            b"counter" if e.parent_is("report") || e.parent_is("sourcefile") => {
                if e.required(FORMAT, "type")? != "LINE" {
                    return Ok(());
                }
                let missed = e.count(FORMAT, "missed")?.ok_or_else(|| e.error(FORMAT, "LINE counter has no missed"))?;
                let covered =
                    e.count(FORMAT, "covered")?.ok_or_else(|| e.error(FORMAT, "LINE counter has no covered"))?;
                let lines_total = missed
                    .checked_add(covered)
                    .ok_or_else(|| e.error(FORMAT, "LINE counter overflows: missed + covered"))?;
                if e.parent_is("report") {
                    report_total = Some((lines_total, covered));
                } else if let Some(name) = sourcefile.take() {
                    let path = if package.is_empty() { name } else { format!("{package}/{name}") };
                    files.push(FileCoverage { path, lines_total, lines_covered: covered });
                }
            }
            _ => {}
        }
        Ok(())
    })?;

    let mut notes = Vec::new();
    let (total, covered) = match report_total {
        Some(t) => t,
        None => {
            // JaCoCo always writes the report counters when there is data; a hand-trimmed or
            // truncated report may lack them, and the file counters still add up correctly.
            let t = files.iter().map(|f| f.lines_total).sum();
            let c = files.iter().map(|f| f.lines_covered).sum();
            if t > 0 {
                notes.push("the report element has no LINE counter; summed its source files' LINE counters".into());
            }
            (t, c)
        }
    };
    super::finish(FORMAT, CoverageUnit::Lines, total, covered, files, notes)
}

#[cfg(test)]
mod tests {
    use super::*;

    const REPORT: &str = r#"<?xml version="1.0" encoding="UTF-8" standalone="yes"?><!DOCTYPE report PUBLIC "-//JACOCO//DTD Report 1.1//EN" "report.dtd"><report name="shop"><sessioninfo id="s" start="1" dump="2"/>
<package name="shop">
<class name="shop/Cart" sourcefilename="Cart.java"><method name="add" desc="(I)V" line="7"><counter type="INSTRUCTION" missed="5" covered="9"/><counter type="LINE" missed="1" covered="3"/></method><counter type="LINE" missed="2" covered="12"/></class>
<class name="shop/Cart$Item" sourcefilename="Cart.java"><counter type="LINE" missed="1" covered="1"/></class>
<sourcefile name="Cart.java"><line nr="3" mi="0" ci="3" mb="0" cb="0"/><counter type="INSTRUCTION" missed="10" covered="47"/><counter type="LINE" missed="3" covered="13"/></sourcefile>
<sourcefile name="Util.java"><counter type="LINE" missed="4" covered="0"/></sourcefile>
<counter type="LINE" missed="7" covered="13"/></package>
<counter type="INSTRUCTION" missed="10" covered="47"/><counter type="BRANCH" missed="2" covered="2"/><counter type="LINE" missed="7" covered="13"/><counter type="METHOD" missed="0" covered="5"/></report>"#;

    #[test]
    fn the_report_counter_is_the_total() {
        let r = parse(REPORT).unwrap();
        assert_eq!((r.lines_total, r.lines_covered), (20, 13));
        assert_eq!(r.percent, 65.0);
        assert_eq!(
            r.files,
            vec![
                FileCoverage { path: "shop/Cart.java".into(), lines_total: 16, lines_covered: 13 },
                FileCoverage { path: "shop/Util.java".into(), lines_total: 4, lines_covered: 0 },
            ]
        );
        assert!(r.notes.is_empty());
    }

    #[test]
    fn groups_nest_packages() {
        let text = r#"<report name="all"><group name="module-a"><package name="a"><sourcefile name="A.java"><counter type="LINE" missed="1" covered="1"/></sourcefile><counter type="LINE" missed="1" covered="1"/></package><counter type="LINE" missed="1" covered="1"/></group><counter type="LINE" missed="1" covered="1"/></report>"#;
        let r = parse(text).unwrap();
        assert_eq!((r.lines_total, r.lines_covered), (2, 1));
        assert_eq!(r.files[0].path, "a/A.java");
    }

    #[test]
    fn without_a_report_counter_the_files_are_summed() {
        let text = r#"<report name="x"><package name="a"><sourcefile name="A.java"><counter type="LINE" missed="1" covered="3"/></sourcefile></package></report>"#;
        let r = parse(text).unwrap();
        assert_eq!((r.lines_total, r.lines_covered), (4, 3));
        assert_eq!(r.notes.len(), 1);
    }

    #[test]
    fn bad_counters_name_the_line() {
        let text = "<report name=\"x\">\n<counter type=\"LINE\" missed=\"x\" covered=\"1\"/></report>";
        let e = parse(text).unwrap_err();
        assert_eq!(
            e.to_string(),
            "JaCoCo XML report, line 2: <counter> attribute missed must be a non-negative integer, got \"x\""
        );
        let e = parse("<report name=\"x\"><counter type=\"LINE\" missed=\"1\"/></report>").unwrap_err();
        assert!(e.to_string().contains("LINE counter has no covered"), "{e}");
        let e = parse("<report name=\"x\"/>").unwrap_err();
        assert_eq!(e, CoverageError::NoLines { format: FORMAT, unit: "lines" });
    }
}
