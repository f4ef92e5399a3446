//! Reports checked in under tests/fixtures/coverage/reports (made by scripts/coverage-fixtures.sh
//! with the real tools) must read as the totals those tools printed, recorded in expected.tsv.
//! Runs everywhere, tools or not; tests/integration/coverage_tools.rs does the same live.

use std::path::Path;

use redline::readiness::coverage::{self, CoverageUnit};

#[test]
fn checked_in_reports_equal_their_tools_totals() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/coverage/reports");
    let expected = std::fs::read_to_string(dir.join("expected.tsv")).expect("expected.tsv");
    let mut checked = 0;
    for row in expected.lines().skip(1).filter(|l| !l.trim().is_empty()) {
        let cols: Vec<&str> = row.split('\t').collect();
        let [file, format, unit, total, covered, tool_percent, tool_said] = cols[..] else {
            panic!("expected.tsv: bad row {row:?}")
        };
        let bytes = std::fs::read(dir.join(file)).unwrap_or_else(|e| panic!("{file}: {e}"));
        let r = coverage::parse(&bytes).unwrap_or_else(|e| panic!("{file}: {e}"));
        assert_eq!(serde_json::to_value(r.format).unwrap(), format, "{file}: format");
        let want_unit = if unit == "statements" { CoverageUnit::Statements } else { CoverageUnit::Lines };
        assert_eq!(r.unit, want_unit, "{file}: unit");
        if total != "-" {
            assert_eq!(r.lines_total.to_string(), total, "{file}: total ({tool_said})");
            assert_eq!(r.lines_covered.to_string(), covered, "{file}: covered ({tool_said})");
        }
        let tool: f64 = tool_percent.parse().expect("tool_percent");
        // Tools print one or two decimals: agree with the printed figure to its own rounding.
        let decimals = tool_percent.split_once('.').map_or(0, |(_, d)| d.len()).min(6);
        assert_eq!(
            format!("{:.*}", decimals, r.percent),
            format!("{tool:.decimals$}"),
            "{file}: redline {} vs {tool_said}",
            r.percent
        );
        checked += 1;
    }
    assert!(checked >= 7, "expected.tsv lists {checked} reports");
}

#[test]
fn every_error_names_the_format_and_where() {
    let cases: &[(&[u8], &str)] = &[
        (b"SF:a.c\nDA:1\n", "LCOV report, line 2: DA: expects <line>,<count>"),
        (b"mode: set\nfoo\n", "Go coverprofile report, line 2: expected <file>:"),
        (b"<coverage>\n<packages><package>\n</coverage>", "Cobertura XML report, line 3: malformed XML"),
        (
            b"<report name=\"x\">\n<counter type=\"LINE\" covered=\"1\"/></report>",
            "JaCoCo XML report, line 2: LINE counter has no missed",
        ),
        (
            b"{\"type\":\"llvm.coverage.json.export\",\"data\":[{}]}",
            "llvm-cov JSON report, line 1: not an llvm-cov export: missing field `totals`",
        ),
        (b"PK\x03\x04zipped", "not a coverage report redline can read"),
    ];
    for (input, want) in cases {
        let e = coverage::parse(input).expect_err(want).to_string();
        assert!(e.starts_with(want), "got {e:?}, want it to start with {want:?}");
    }
}
