//! `redline rules test` and `redline rules check` against the real promtool: the same files
//! give the same verdicts, and broken inputs get one clear error per problem.

use crate::common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::{redline_bin, require_tool};

fn unit_test_files() -> Vec<PathBuf> {
    let mut files = Vec::new();
    for dir in ["tests/conformance", "rules"] {
        for entry in std::fs::read_dir(dir).expect("test directory") {
            let path = entry.expect("dir entry").path();
            if path.to_string_lossy().ends_with("_test.yml") {
                files.push(path);
            }
        }
    }
    files.sort();
    assert!(files.len() >= 14, "conformance and shipped rule tests present: {files:?}");
    files
}

struct Verdict {
    ok: bool,
    output: String,
}

fn run(cmd: &mut Command) -> Verdict {
    let out = cmd.output().expect("run command");
    Verdict {
        ok: out.status.success(),
        output: format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)),
    }
}

fn both_test(file: &Path) -> (Verdict, Verdict) {
    let promtool = require_tool("promtool", "prometheus");
    let theirs = run(Command::new(promtool).args(["test", "rules"]).arg(file));
    let ours = run(Command::new(redline_bin()).args(["rules", "test"]).arg(file));
    (theirs, ours)
}

#[test]
fn every_unit_test_file_gets_promtools_verdict() {
    for file in unit_test_files() {
        let (theirs, ours) = both_test(&file);
        assert!(theirs.ok, "promtool fails {}: {}", file.display(), theirs.output);
        assert_eq!(ours.ok, theirs.ok, "{}:\n{}", file.display(), ours.output);
        assert!(ours.output.contains("SUCCESS"), "{}", ours.output);
    }
}

/// A test file copied next to its rules with one expectation changed; removed when dropped,
/// also when the test panics (a run without promtool once left one behind in `rules/`).
struct MutatedCopy(PathBuf);

impl Drop for MutatedCopy {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

fn mutated_copy(src: &str, from: &str, to: &str) -> MutatedCopy {
    let text = std::fs::read_to_string(src).expect("read test file");
    assert!(text.contains(from), "{src} contains {from:?}");
    let dir = Path::new(src).parent().expect("parent");
    let path = dir.join(format!(".mutated-{}-{}.yml", std::process::id(), fastrand::u32(..)));
    std::fs::write(&path, text.replacen(from, to, 1)).expect("write mutated copy");
    MutatedCopy(path)
}

#[test]
fn wrong_expectations_fail_under_both_with_a_diff() {
    let cases = [
        ("rules/redline-symptoms_test.yml", "severity: \"critical\"", "severity: \"info\""),
        ("tests/conformance/range_functions_test.yml", "value: 0.16666666666666669", "value: 0.17"),
    ];
    for (src, from, to) in cases {
        let copy = mutated_copy(src, from, to);
        let (theirs, ours) = both_test(&copy.0);
        drop(copy);
        assert!(!theirs.ok, "promtool must fail the mutated {src}");
        assert!(!ours.ok, "redline must fail the mutated {src}:\n{}", ours.output);
        assert!(ours.output.contains("FAILED"), "{}", ours.output);
        assert!(
            ours.output.contains("exp:") && ours.output.contains("got:"),
            "a diff of expected vs got: {}",
            ours.output
        );
    }
}

#[test]
fn rules_check_reports_each_problem_with_file_line_and_rule() {
    let dir = tempfile::tempdir().expect("temp dir");
    let broken = dir.path().join("broken.yml");
    std::fs::write(
        &broken,
        r#"groups:
  - name: app
    rules:
      - alert: BadPromQL
        expr: sum(rate(http_requests_total[5m])
      - alert: UnknownFunction
        expr: limitk(1, x) > 0
      - alert: BadTemplate
        expr: up == 0
        annotations:
          summary: "{{ $labels.instance"
  - name: app
    rules: []
"#,
    )
    .expect("write broken rules");
    let bad_yaml = dir.path().join("bad_yaml.yml");
    std::fs::write(&bad_yaml, "groups:\n  - name: x\n    rules: [\n").expect("write bad yaml");
    let promtool = require_tool("promtool", "prometheus");
    for file in [&broken, &bad_yaml] {
        let theirs = run(Command::new(&promtool).args(["check", "rules"]).arg(file));
        assert!(!theirs.ok, "promtool rejects {}", file.display());
    }
    let ours = run(Command::new(redline_bin()).args(["rules", "check"]).arg(&broken).arg(&bad_yaml));
    assert!(!ours.ok);
    let b = broken.display().to_string();
    for expected in [
        format!("{b}:5:15: group \"app\", rule 1, \"BadPromQL\": could not parse expression"),
        format!("{b}:7:15: group \"app\", rule 2, \"UnknownFunction\":"),
        "rule 3, \"BadTemplate\": annotation \"summary\": template: __alert_BadTemplate:1: unclosed action".to_string(),
        format!("{b}:12:11: group \"app\": groupname: \"app\" is repeated in the same file"),
        format!("{}:", bad_yaml.display()),
    ] {
        assert!(ours.output.contains(&expected), "missing {expected:?} in:\n{}", ours.output);
    }
    assert!(ours.output.contains("limitk"), "names the construct 2.42 lacks:\n{}", ours.output);

    let good = run(Command::new(redline_bin()).args([
        "rules",
        "check",
        "rules/redline-symptoms.yml",
        "rules/redline-slo.yml",
        "rules/redline-monitoring.yml",
    ]));
    assert!(good.ok, "{}", good.output);
    assert!(good.output.contains("SUCCESS"), "{}", good.output);
}

/// Expressions Prometheus 2.42 rejects though the parser crate (following Prometheus 3) reads
/// them: later functions and aggregations, numbers as durations, durations as numbers.
const REJECTED_BY_2_42: &[&str] = &[
    "limitk(1, x)",
    "limit_ratio(0.5, x)",
    "sort_by_label(x, \"a\")",
    "double_exponential_smoothing(x[5m], 0.5, 0.5)",
    "histogram_stddev(x)",
    "histogram_avg(x)",
    "mad_over_time(x[5m])",
    "first_over_time(x[5m])",
    "info(x)",
    "start()",
    "rate(x[300])",
    "max_over_time(x[5m:60])",
    "x offset 300",
    "1d + 1",
    "x @ 1d",
    "x @ 1e20",
];

/// Constructs 2.42 accepts that redline refused before it evaluated all of 2.42's PromQL.
const ACCEPTED_BY_2_42: &[&str] = &[
    "x @ start() + rate(x[5m] @ end()) + max_over_time(x[5m:1m] @ 100) + x @ -5 offset 1m",
    "predict_linear(x[1h], 4 * 3600) < 0 and holt_winters(x[10m], 0.5, 0.5) > 1",
    "hour() + minute(x) + day_of_week() + day_of_month() + day_of_year() + days_in_month() + month() + year()",
    "sgn(x) + log2(x) + log10(x) + deg(x) + rad(x) + pi() + (x atan2 x)",
    "acos(x) + acosh(x) + asin(x) + asinh(x) + atan(x) + atanh(x) + cos(x) + cosh(x) + sin(x) + sinh(x) + tan(x) + tanh(x)",
    "sort(x) + sort_desc(x)",
    "histogram_count(x) + histogram_sum(x) + histogram_fraction(0, 0.2, x)",
];

fn rule_file(dir: &Path, name: &str, expr: &str) -> PathBuf {
    let path = dir.join(format!("{name}.yml"));
    let quoted = expr.replace('\'', "''");
    std::fs::write(&path, format!("groups:\n- name: g\n  rules:\n  - record: r\n    expr: '{quoted}'\n"))
        .expect("write rule file");
    path
}

fn expr_test_file(dir: &Path, name: &str, expr: &str) -> PathBuf {
    let path = dir.join(format!("{name}_test.yml"));
    let quoted = expr.replace('\'', "''");
    std::fs::write(
        &path,
        format!(
            "tests:\n- input_series:\n  - series: x\n    values: '1+1x10'\n  promql_expr_test:\n  - expr: '{quoted}'\n    \
             eval_time: 5m\n    exp_samples: []\n"
        ),
    )
    .expect("write test file");
    path
}

#[test]
fn what_promtool_2_42_rejects_both_commands_refuse_at_load_with_one_message() {
    let promtool = require_tool("promtool", "prometheus");
    let dir = tempfile::tempdir().expect("temp dir");
    for (i, expr) in REJECTED_BY_2_42.iter().enumerate() {
        let rules = rule_file(dir.path(), &format!("rejected{i}"), expr);
        let theirs = run(Command::new(&promtool).args(["check", "rules"]).arg(&rules));
        assert!(!theirs.ok, "promtool 2.42 rejects {expr}: {}", theirs.output);
        let checked = run(Command::new(redline_bin()).args(["rules", "check"]).arg(&rules));
        assert!(!checked.ok, "rules check refuses {expr}:\n{}", checked.output);
        // The refusal, as `rules check` words it after the rule's name.
        let message = checked
            .output
            .lines()
            .find_map(|l| l.split_once("\"r\": ").map(|(_, m)| m.trim().to_string()))
            .unwrap_or_else(|| panic!("a message for {expr}:\n{}", checked.output));

        let test = expr_test_file(dir.path(), &format!("rejected{i}"), expr);
        let theirs = run(Command::new(&promtool).args(["test", "rules"]).arg(&test));
        assert!(!theirs.ok, "promtool test rules fails on {expr}: {}", theirs.output);
        let tested = run(Command::new(redline_bin()).args(["rules", "test"]).arg(&test));
        assert!(!tested.ok, "rules test refuses {expr}:\n{}", tested.output);
        let reason = message.trim_start_matches("could not parse expression: ");
        assert!(tested.output.contains(reason), "rules test says {reason:?} for {expr}:\n{}", tested.output);
    }
}

#[test]
fn what_promtool_2_42_accepts_rules_check_accepts() {
    let promtool = require_tool("promtool", "prometheus");
    let dir = tempfile::tempdir().expect("temp dir");
    for (i, expr) in ACCEPTED_BY_2_42.iter().enumerate() {
        let rules = rule_file(dir.path(), &format!("accepted{i}"), expr);
        let theirs = run(Command::new(&promtool).args(["check", "rules"]).arg(&rules));
        assert!(theirs.ok, "promtool 2.42 accepts {expr}: {}", theirs.output);
        let ours = run(Command::new(redline_bin()).args(["rules", "check"]).arg(&rules));
        assert!(ours.ok, "rules check accepts {expr}:\n{}", ours.output);
    }
}

#[test]
fn a_failing_query_fails_its_test_only_in_promtools_words() {
    let dir = tempfile::tempdir().expect("temp dir");
    let test = dir.path().join("errors_test.yml");
    std::fs::write(
        &test,
        "tests:\n- interval: 1m\n  input_series:\n  - series: x\n    values: '1+1x10'\n  promql_expr_test:\n  \
         - expr: holt_winters(x[5m], 1, 0.5)\n    eval_time: 5m\n    exp_samples: []\n  \
         - expr: holt_winters(x[5m], 0.5, 0)\n    eval_time: 5m\n    exp_samples: []\n  \
         - expr: x\n    eval_time: 5m\n    exp_samples: [{labels: 'x', value: 6}]\n",
    )
    .expect("write test file");
    let (theirs, ours) = both_test(&test);
    assert!(!theirs.ok && !ours.ok, "both fail:\n{}\n{}", theirs.output, ours.output);
    for line in [
        "    expr: \"holt_winters(x[5m], 1, 0.5)\", time: 5m, err: invalid smoothing factor. Expected: 0 < sf < 1, got: 1.000000",
        "    expr: \"holt_winters(x[5m], 0.5, 0)\", time: 5m, err: invalid trend factor. Expected: 0 < tf < 1, got: 0.000000",
    ] {
        assert!(theirs.output.lines().any(|l| l == line), "promtool says {line:?}:\n{}", theirs.output);
        assert!(ours.output.lines().any(|l| l == line), "redline says {line:?}:\n{}", ours.output);
    }
    // The passing test in the same file is not reported.
    assert!(!ours.output.contains("expr: \"x\""), "{}", ours.output);
}

/// Both commands' stdout and stderr as one stream, in the order written.
fn combined(program: &Path, args: &[&str], file: &Path) -> String {
    let out = Command::new("sh")
        .arg("-c")
        .arg("\"$0\" \"$@\" 2>&1")
        .arg(program)
        .args(args)
        .arg(file)
        .output()
        .expect("run through sh");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn failure_reports_read_as_promtools_byte_for_byte() {
    let promtool = require_tool("promtool", "prometheus");
    let cases = [
        // alert tests of named groups: `name:`, `exp:[...]`/`got:[...]` indented as promtool's
        ("rules/redline-symptoms_test.yml", "severity: \"critical\"", "severity: \"info\""),
        // expression tests: labels with __name__, values as Go's %E, `nil` for none
        ("tests/conformance/math_functions_test.yml", "value: 2.9552020666133955E-01", "value: 0.3"),
        ("tests/conformance/input_loading_test.yml", "value: 1E+02", "value: 120"),
        ("tests/conformance/at_modifier_test.yml", "value: 2.1E+02", "value: 110"),
    ];
    for (src, from, to) in cases {
        let copy = mutated_copy(src, from, to);
        let theirs = combined(&promtool, &["test", "rules"], &copy.0);
        let ours = combined(Path::new(redline_bin()), &["rules", "test"], &copy.0);
        drop(copy);
        assert!(theirs.contains("FAILED"), "{theirs}");
        assert_eq!(ours, theirs, "{src}");
    }
}
