//! Coverage reports produced here by the real tools (coverage.py, lcov/geninfo, go, clang +
//! llvm-cov, JaCoCo), parsed by redline and compared with the total each tool reports itself.

use crate::common;

use std::path::{Path, PathBuf};
use std::process::Command;

use redline::readiness::coverage::{self, CoverageFormat, CoverageReport, CoverageUnit};

fn fixture_src(kind: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/coverage/src").join(kind)
}

/// Copies `tests/fixtures/coverage/src/<kind>` into a fresh temp dir (tools write next to sources).
fn workdir(kind: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("temp dir");
    copy_tree(&fixture_src(kind), dir.path());
    dir
}

fn copy_tree(from: &Path, to: &Path) {
    for entry in std::fs::read_dir(from).expect("read fixture dir") {
        let entry = entry.expect("dir entry");
        let target = to.join(entry.file_name());
        if entry.file_type().expect("file type").is_dir() {
            std::fs::create_dir_all(&target).expect("mkdir");
            copy_tree(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).expect("copy fixture");
        }
    }
}

/// Runs a command in `dir`, failing the test with its output when it fails; returns stdout.
fn run(dir: &Path, program: impl AsRef<std::ffi::OsStr>, args: &[&str], envs: &[(&str, &str)]) -> String {
    let program = program.as_ref();
    let out = Command::new(program)
        .args(args)
        .current_dir(dir)
        .envs(envs.iter().copied())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", program.to_string_lossy()));
    assert!(
        out.status.success(),
        "{} {} failed ({}):\n{}\n{}",
        program.to_string_lossy(),
        args.join(" "),
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8 tool output")
}

fn parse_file(path: &Path) -> CoverageReport {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    coverage::parse(&bytes).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn assert_close(ours: f64, tools: f64, tolerance: f64, what: &str) {
    assert!((ours - tools).abs() <= tolerance, "{what}: redline says {ours}%, the tool says {tools}%");
}

// ---------------------------------------------------------------- coverage.py

/// coverage.py's JSON totals: (covered_lines, num_statements, percent_covered).
fn coverage_json_totals(dir: &Path, python: &Path, data_file: &str) -> (u64, u64, f64) {
    run(dir, python, &["-m", "coverage", "json", "-q", "--data-file", data_file, "-o", "totals.json"], &[]);
    let json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("totals.json")).expect("read json")).expect("coverage json");
    let t = &json["totals"];
    (
        t["covered_lines"].as_u64().expect("covered_lines"),
        t["num_statements"].as_u64().expect("num_statements"),
        t["percent_covered"].as_f64().expect("percent_covered"),
    )
}

#[test]
fn coverage_py_cobertura_and_lcov_equal_coverage_report_total() {
    let python = common::python::python();
    let dir = workdir("python");
    let d = dir.path();
    run(d, &python, &["-m", "coverage", "run", "--data-file", ".cov", "--source=shop", "run_a.py"], &[]);
    run(d, &python, &["-m", "coverage", "xml", "-q", "--data-file", ".cov", "-o", "coverage.xml"], &[]);
    run(d, &python, &["-m", "coverage", "lcov", "-q", "--data-file", ".cov", "-o", "coverage.info"], &[]);
    let (covered, statements, percent) = coverage_json_totals(d, &python, ".cov");
    let total: f64 =
        run(d, &python, &["-m", "coverage", "report", "--data-file", ".cov", "--format=total", "--precision=4"], &[])
            .trim()
            .parse()
            .expect("coverage report --format=total prints a number");
    assert!(statements > 0 && covered < statements, "the fixture must be partly covered: {covered}/{statements}");

    for (file, format) in [("coverage.xml", CoverageFormat::Cobertura), ("coverage.info", CoverageFormat::Lcov)] {
        let r = parse_file(&d.join(file));
        assert_eq!(r.format, format, "{file}");
        assert_eq!((r.lines_covered, r.lines_total), (covered, statements), "{file}");
        assert_close(r.percent, percent, 1e-9, file);
        assert_close(r.percent, total, 0.0001, &format!("{file} vs coverage report --format=total"));
        let cart = r.files.iter().find(|f| f.path.ends_with("shop/cart.py")).expect("cart.py listed");
        assert!(cart.lines_covered < cart.lines_total, "{cart:?}");
        assert!(r.notes.is_empty(), "{file}: {:?}", r.notes);
    }
}

#[test]
fn coverage_py_with_branch_coverage_is_read_as_line_coverage() {
    // With --branch, coverage.py's TOTAL blends statements and branches; Cobertura's line-rate
    // and LCOV's DA lines stay line coverage, and so does redline's figure.
    let python = common::python::python();
    let dir = workdir("python");
    let d = dir.path();
    run(d, &python, &["-m", "coverage", "run", "--branch", "--data-file", ".cov", "--source=shop", "run_b.py"], &[]);
    run(d, &python, &["-m", "coverage", "xml", "-q", "--data-file", ".cov", "-o", "coverage.xml"], &[]);
    run(d, &python, &["-m", "coverage", "lcov", "-q", "--data-file", ".cov", "-o", "coverage.info"], &[]);
    let (covered, statements, blended) = coverage_json_totals(d, &python, ".cov");
    let lines_only = covered as f64 / statements as f64 * 100.0;
    assert!((blended - lines_only).abs() > 1.0, "the fixture should make branches matter: {blended} vs {lines_only}");

    let xml = std::fs::read_to_string(d.join("coverage.xml")).expect("xml");
    let rate: f64 = xml
        .split("line-rate=\"")
        .nth(1)
        .and_then(|s| s.split('"').next())
        .and_then(|s| s.parse().ok())
        .expect("root line-rate");
    for file in ["coverage.xml", "coverage.info"] {
        let r = parse_file(&d.join(file));
        assert_eq!((r.lines_covered, r.lines_total), (covered, statements), "{file}");
        assert_close(r.percent, lines_only, 1e-9, file);
        assert_close(r.percent, rate * 100.0, 0.01, &format!("{file} vs the root line-rate"));
    }
}

// ---------------------------------------------------------------- lcov (geninfo, lcov --summary)

/// `lcov --summary FILE`'s "lines......: 85.0% (17 of 20 lines)" as (hit, found, percent).
fn lcov_summary(dir: &Path, file: &str) -> (u64, u64, f64) {
    let lcov = common::require_tool("lcov", "lcov");
    let out = Command::new(lcov).args(["--summary", file]).current_dir(dir).output().expect("run lcov");
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    let line = text
        .lines()
        .find(|l| l.trim_start().starts_with("lines"))
        .unwrap_or_else(|| panic!("no lines summary:\n{text}"));
    let (pct, rest) = line.split_once(':').expect("lines: …").1.trim().split_once("% (").expect("X% (");
    let mut nums = rest.split_whitespace();
    let hit = nums.next().and_then(|n| n.parse().ok()).expect("hit count");
    let found = nums.nth(1).and_then(|n| n.parse().ok()).expect("found count");
    (hit, found, pct.parse().expect("percent"))
}

#[test]
fn lcov_records_of_two_runs_merge_as_lcov_summary_merges_them() {
    let python = common::python::python();
    let dir = workdir("python");
    let d = dir.path();
    for (run_script, data) in [("run_a.py", ".cov_a"), ("run_b.py", ".cov_b")] {
        run(d, &python, &["-m", "coverage", "run", "--data-file", data, "--source=shop", run_script], &[]);
        run(d, &python, &["-m", "coverage", "lcov", "-q", "--data-file", data, "-o", &format!("{data}.info")], &[]);
    }
    // The usual CI shortcut: concatenate per-job tracefiles instead of `lcov -a`.
    let mut both = std::fs::read(d.join(".cov_a.info")).expect("a");
    both.extend(std::fs::read(d.join(".cov_b.info")).expect("b"));
    std::fs::write(d.join("both.info"), &both).expect("write both");

    let (hit, found, pct) = lcov_summary(d, "both.info");
    let r = parse_file(&d.join("both.info"));
    assert_eq!((r.lines_covered, r.lines_total), (hit, found));
    assert_close(r.percent, pct, 0.05, "concatenated tracefiles vs lcov --summary");

    // And that is the same as coverage.py's own combined data.
    run(d, &python, &["-m", "coverage", "combine", "-q", "--keep", "--data-file", ".cov_all", ".cov_a", ".cov_b"], &[]);
    let (covered, statements, _) = coverage_json_totals(d, &python, ".cov_all");
    assert_eq!((r.lines_covered, r.lines_total), (covered, statements));
    let a = parse_file(&d.join(".cov_a.info"));
    assert!(r.lines_covered > a.lines_covered, "run_b must add coverage: {} vs {}", r.lines_covered, a.lines_covered);
}

#[test]
fn gcc_geninfo_tracefile_equals_lcov_summary() {
    let gcc = common::require_tool("gcc", "gcc");
    common::require_tool("lcov", "lcov");
    let dir = workdir("c");
    let d = dir.path();
    run(d, gcc, &["--coverage", "-O0", "-o", "cart", "cart.c"], &[]);
    run(d, d.join("cart"), &["3", "4"], &[]);
    run(d, "lcov", &["--quiet", "--capture", "--directory", ".", "--output-file", "gcc.info"], &[]);
    let (hit, found, pct) = lcov_summary(d, "gcc.info");
    let r = parse_file(&d.join("gcc.info"));
    assert_eq!(r.format, CoverageFormat::Lcov);
    assert_eq!((r.lines_covered, r.lines_total), (hit, found));
    assert_close(r.percent, pct, 0.05, "geninfo tracefile vs lcov --summary");
}

// ---------------------------------------------------------------- Go

fn go_env(cache: &Path) -> Vec<(&'static str, String)> {
    let c = cache.display();
    vec![
        ("GOCACHE", format!("{c}/go-build")),
        ("GOPATH", format!("{c}/gopath")),
        ("GOFLAGS", "-mod=mod".into()),
        ("GOPROXY", "off".into()),
        ("GOTOOLCHAIN", "local".into()),
        ("GOTELEMETRY", "off".into()),
        ("CGO_ENABLED", "0".into()),
    ]
}

fn go(dir: &Path, args: &[&str]) -> String {
    let go = common::require_tool("go", "golang-go");
    let cache = Path::new(env!("CARGO_TARGET_TMPDIR")).join("go");
    let env = go_env(&cache);
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    run(dir, go, args, &env)
}

/// `go tool cover -func`'s last line: "total:\t(statements)\t54.5%".
fn go_func_total(dir: &Path, profile: &str) -> f64 {
    let out = go(dir, &["tool", "cover", &format!("-func={profile}")]);
    let last = out.lines().rfind(|l| l.starts_with("total:")).unwrap_or_else(|| panic!("no total line:\n{out}"));
    last.split_whitespace().last().and_then(|p| p.trim_end_matches('%').parse().ok()).expect("total percent")
}

#[test]
fn go_coverprofile_equals_go_tool_cover_func_total() {
    let dir = workdir("go");
    let d = dir.path();
    // -coverpkg makes each test binary report every listed package: calc's blocks appear twice,
    // covered differently by each run.
    go(d, &["test", "-coverpkg=./calc,./label", "-coverprofile=cover.out", "./calc", "./label"]);
    let profile = std::fs::read_to_string(d.join("cover.out")).expect("profile");
    let calc_blocks = profile.lines().filter(|l| l.contains("/calc/calc.go:")).count();
    let unique: std::collections::HashSet<&str> = profile
        .lines()
        .filter(|l| l.contains("/calc/calc.go:"))
        .map(|l| l.rsplitn(3, ' ').nth(2).unwrap_or(l))
        .collect();
    assert!(calc_blocks > unique.len(), "the profile should repeat calc's blocks:\n{profile}");

    let total = go_func_total(d, "cover.out");
    let r = parse_file(&d.join("cover.out"));
    assert_eq!(r.format, CoverageFormat::GoCoverprofile);
    assert_eq!(r.unit, CoverageUnit::Statements);
    // go prints one decimal: agree with its rounding exactly.
    assert_eq!(format!("{:.1}", r.percent), format!("{total:.1}"), "redline {} vs go {total}", r.percent);
    assert!(r.lines_covered > 0 && r.lines_covered < r.lines_total);
}

#[test]
fn go_package_level_function_literals_count_as_go_test_counts_them() {
    // The one place where `go tool cover -func` and `go test -cover` disagree; redline follows
    // `go test -cover` (every block in the profile). See docs/readiness.md.
    let dir = workdir("go");
    let d = dir.path();
    let out = go(d, &["test", "-coverprofile=pkgvar.out", "./pkgvar"]);
    let go_test: f64 = out
        .split("coverage: ")
        .nth(1)
        .and_then(|s| s.split('%').next())
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no coverage figure in:\n{out}"));
    let func_total = go_func_total(d, "pkgvar.out");
    let r = parse_file(&d.join("pkgvar.out"));
    assert_eq!(format!("{:.1}", r.percent), format!("{go_test:.1}"));
    assert_ne!(format!("{:.1}", r.percent), format!("{func_total:.1}"), "if go changed, update docs/readiness.md");
}

// ---------------------------------------------------------------- llvm-cov

fn llvm_tool(name: &str) -> PathBuf {
    let versioned = format!("{name}-14");
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .flat_map(|dir| [dir.join(name), dir.join(&versioned)])
        .find(|p| p.is_file())
        .unwrap_or_else(|| {
            panic!(
                "{name} is not installed: run `apt-get install -y clang llvm libclang-rt-14-dev` (or scripts/test.sh)"
            )
        })
}

#[test]
fn llvm_cov_export_equals_llvm_cov_report_total() {
    let clang = llvm_tool("clang");
    let profdata = llvm_tool("llvm-profdata");
    let llvm_cov = llvm_tool("llvm-cov");
    let dir = workdir("c");
    let d = dir.path();
    run(d, &clang, &["-fprofile-instr-generate", "-fcoverage-mapping", "-O0", "-o", "cart", "cart.c"], &[]);
    run(d, d.join("cart"), &["3", "4"], &[("LLVM_PROFILE_FILE", "cart.profraw")]);
    run(d, &profdata, &["merge", "-sparse", "cart.profraw", "-o", "cart.profdata"], &[]);
    let json = run(d, &llvm_cov, &["export", "-instr-profile=cart.profdata", "./cart"], &[]);
    std::fs::write(d.join("cart.json"), &json).expect("write export");
    let lcov = run(d, &llvm_cov, &["export", "-format=lcov", "-instr-profile=cart.profdata", "./cart"], &[]);
    std::fs::write(d.join("cart.info"), &lcov).expect("write lcov export");
    let report = run(d, &llvm_cov, &["report", "-instr-profile=cart.profdata", "./cart"], &[]);

    // TOTAL  regions missed cover  functions missed executed  lines missed cover  branches …
    let totals: Vec<&str> = report
        .lines()
        .find(|l| l.starts_with("TOTAL"))
        .unwrap_or_else(|| panic!("no TOTAL in llvm-cov report:\n{report}"))
        .split_whitespace()
        .collect();
    let lines: u64 = totals[7].parse().expect("lines column");
    let missed: u64 = totals[8].parse().expect("missed lines column");
    let cover: f64 = totals[9].trim_end_matches('%').parse().expect("line cover column");

    let r = parse_file(&d.join("cart.json"));
    assert_eq!(r.format, CoverageFormat::LlvmCovJson);
    assert_eq!((r.lines_total, r.lines_total - r.lines_covered), (lines, missed), "{report}");
    assert_close(r.percent, cover, 0.005, "llvm-cov export vs llvm-cov report");
    // llvm-cov's LCOV export of the same profile reads the same.
    let l = parse_file(&d.join("cart.info"));
    assert_eq!((l.lines_total, l.lines_covered), (r.lines_total, r.lines_covered));
}

// ---------------------------------------------------------------- JaCoCo

const JACOCO_JARS: &[&str] = &[
    "/usr/share/java/org.jacoco.core.jar",
    "/usr/share/java/org.jacoco.report.jar",
    "/usr/share/java/asm.jar",
    "/usr/share/java/asm-commons.jar",
    "/usr/share/java/asm-tree.jar",
];

#[test]
fn jacoco_xml_equals_jacocos_own_line_counter() {
    let javac = common::require_tool("javac", "default-jdk-headless");
    let java = common::require_tool("java", "default-jdk-headless");
    let jar = common::require_tool("jar", "default-jdk-headless");
    for j in JACOCO_JARS.iter().chain(&["/usr/share/java/org.jacoco.agent.jar"]) {
        assert!(Path::new(j).is_file(), "{j} is missing: run `apt-get install -y libjacoco-java libasm-java`");
    }
    let dir = workdir("java");
    let d = dir.path();
    copy_tree(&fixture_src("java-tool"), d);
    let cp = JACOCO_JARS.join(":");
    // JaCoCo 0.8.6 (Debian 12) reads class files up to Java 15; --release 11 keeps them readable.
    run(d, &javac, &["--release", "11", "-d", "classes", "shop/Cart.java", "shop/Unused.java"], &[]);
    run(d, &javac, &["-cp", &cp, "-d", "tool", "Report.java"], &[]);
    // Debian ships the agent jar inside org.jacoco.agent.jar, as upstream does.
    run(d, &jar, &["xf", "/usr/share/java/org.jacoco.agent.jar", "jacocoagent.jar"], &[]);
    run(d, &java, &["-javaagent:jacocoagent.jar=destfile=jacoco.exec", "-cp", "classes", "shop.Cart"], &[]);
    let out =
        run(d, &java, &["-cp", &format!("tool:{cp}"), "Report", "jacoco.exec", "classes", ".", "jacoco.xml"], &[]);
    let mut counter = out.lines().find_map(|l| l.strip_prefix("LINE ")).expect("LINE covered missed").split(' ');
    let covered: u64 = counter.next().and_then(|n| n.parse().ok()).expect("covered");
    let missed: u64 = counter.next().and_then(|n| n.parse().ok()).expect("missed");

    let r = parse_file(&d.join("jacoco.xml"));
    assert_eq!(r.format, CoverageFormat::Jacoco);
    assert_eq!((r.lines_covered, r.lines_total), (covered, covered + missed));
    let mut paths: Vec<&str> = r.files.iter().map(|f| f.path.as_str()).collect();
    paths.sort_unstable();
    assert_eq!(paths, ["shop/Cart.java", "shop/Unused.java"]);
    assert_eq!(r.files.iter().map(|f| f.lines_total).sum::<u64>(), r.lines_total);
}
