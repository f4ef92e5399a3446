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

/// Copies a test file next to its rules with one expectation changed.
fn mutated_copy(src: &str, from: &str, to: &str) -> PathBuf {
    let text = std::fs::read_to_string(src).expect("read test file");
    assert!(text.contains(from), "{src} contains {from:?}");
    let dir = Path::new(src).parent().expect("parent");
    let path = dir.join(format!(".mutated-{}-{}.yml", std::process::id(), fastrand::u32(..)));
    std::fs::write(&path, text.replacen(from, to, 1)).expect("write mutated copy");
    path
}

#[test]
fn wrong_expectations_fail_under_both_with_a_diff() {
    let cases = [
        ("rules/redline-symptoms_test.yml", "severity: \"critical\"", "severity: \"info\""),
        ("tests/conformance/range_functions_test.yml", "value: 0.16666666666666669", "value: 0.17"),
    ];
    for (src, from, to) in cases {
        let path = mutated_copy(src, from, to);
        let (theirs, ours) = both_test(&path);
        let _ = std::fs::remove_file(&path);
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
        expr: predict_linear(x[5m], 3600) > 0
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
        format!("{b}:5: group \"app\", rule 1, \"BadPromQL\": could not parse expression"),
        format!("{b}:7: group \"app\", rule 2, \"UnknownFunction\":"),
        "rule 3, \"BadTemplate\": annotation \"summary\": bad template".to_string(),
        format!("{b}:12: group \"app\": groupname: \"app\" is repeated in the same file"),
        format!("{}:", bad_yaml.display()),
    ] {
        assert!(ours.output.contains(&expected), "missing {expected:?} in:\n{}", ours.output);
    }
    assert!(ours.output.contains("predict_linear"), "names the unsupported construct:\n{}", ours.output);

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
