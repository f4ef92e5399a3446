//! redline's Mann-Whitney U test against scipy.stats.mannwhitneyu, run live: ties, identical
//! samples, tiny (exact) and large samples, constant samples, all alternatives and methods.

use crate::common;

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

use redline::canary::stats::{self, Alternative, Method, MethodUsed, Options};

struct Case {
    name: String,
    x: Vec<f64>,
    y: Vec<f64>,
    options: Options,
}

fn case(name: &str, x: Vec<f64>, y: Vec<f64>, alternative: Alternative, method: Method, continuity: bool) -> Case {
    Case { name: name.into(), x, y, options: Options { alternative, method, continuity } }
}

/// Every alternative and method (where it applies) for one pair of samples.
fn variants(name: &str, x: Vec<f64>, y: Vec<f64>, exact: bool, out: &mut Vec<Case>) {
    for alternative in [Alternative::TwoSided, Alternative::Less, Alternative::Greater] {
        let mut methods = vec![(Method::Auto, true), (Method::Asymptotic, true), (Method::Asymptotic, false)];
        if exact {
            methods.push((Method::Exact, true));
        }
        for (method, continuity) in methods {
            let n = format!("{name}/{alternative:?}/{method:?}/continuity={continuity}");
            out.push(case(&n, x.clone(), y.clone(), alternative, method, continuity));
        }
    }
}

fn cases() -> Vec<Case> {
    let mut rng = fastrand::Rng::with_seed(20_261_123);
    let mut normal = |mean: f64, sd: f64| {
        // Box-Muller: continuous values, so no accidental ties.
        let (u1, u2) = (rng.f64().max(1e-300), rng.f64());
        mean + sd * (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
    };
    let mut draw = |n: usize, mean: f64, sd: f64| (0..n).map(|_| normal(mean, sd)).collect::<Vec<f64>>();
    let mut out = Vec::new();

    variants("tiny 1v1", vec![1.0], vec![2.0], true, &mut out);
    variants("tiny 1v3", vec![5.0], vec![1.0, 2.0, 3.0], true, &mut out);
    variants("tiny 2v2", vec![1.0, 4.0], vec![2.0, 3.0], true, &mut out);
    variants("scipy docs", vec![19.0, 22.0, 16.0, 29.0, 24.0], vec![20.0, 11.0, 17.0, 12.0], true, &mut out);
    variants("small 5v7", draw(5, 0.0, 1.0), draw(7, 1.0, 1.0), true, &mut out);
    variants("exact 8v8 separated", draw(8, 0.0, 0.1), draw(8, 5.0, 0.1), true, &mut out);
    variants("exact 10v12", draw(10, 0.0, 1.0), draw(12, 0.8, 1.0), true, &mut out);
    variants("8 vs 300 (auto picks exact)", draw(8, 0.5, 1.0), draw(300, 0.0, 1.0), true, &mut out);
    variants("tiny with ties", vec![1.0, 2.0, 2.0], vec![2.0, 3.0, 3.0, 4.0], false, &mut out);
    let ints = |v: Vec<f64>| v.into_iter().map(|x: f64| x.round().clamp(0.0, 5.0)).collect::<Vec<f64>>();
    variants("heavy ties", ints(draw(15, 2.0, 1.5)), ints(draw(20, 2.8, 1.5)), false, &mut out);
    let same = draw(12, 3.0, 1.0);
    variants("identical samples", same.clone(), same, false, &mut out);
    variants("all values equal", vec![7.0; 15], vec![7.0; 20], false, &mut out);
    variants("one side constant zero", vec![0.0; 20], draw(20, 0.01, 0.02), false, &mut out);
    variants("two different constants", vec![1.0; 12], vec![2.0; 12], false, &mut out);
    variants("large 500v600 small shift", draw(500, 0.0, 1.0), draw(600, 0.1, 1.0), false, &mut out);
    variants("large 2000v2000 far apart", draw(2000, 0.0, 1.0), draw(2000, 1.0, 1.0), false, &mut out);
    variants(
        "latency-like 60v60",
        draw(60, 0.2, 0.03).iter().map(|v| v.abs()).collect(),
        draw(60, 0.24, 0.03),
        false,
        &mut out,
    );
    variants("signed zeros", vec![-0.0, 1.0, 2.0], vec![0.0, 3.0], false, &mut out);
    out
}

fn alternative_name(a: Alternative) -> &'static str {
    match a {
        Alternative::TwoSided => "two-sided",
        Alternative::Less => "less",
        Alternative::Greater => "greater",
    }
}

fn method_name(m: Method) -> &'static str {
    match m {
        Method::Auto => "auto",
        Method::Exact => "exact",
        Method::Asymptotic => "asymptotic",
    }
}

fn close(ours: f64, theirs: Option<f64>) -> bool {
    match theirs {
        None => ours.is_nan(),
        Some(t) => ours == t || (ours - t).abs() <= 1e-12_f64.max(t.abs() * 1e-9),
    }
}

#[test]
fn mann_whitney_u_agrees_with_scipy() {
    let python = common::python::python();
    let cases = cases();
    let input: Vec<serde_json::Value> = cases
        .iter()
        .map(|c| {
            serde_json::json!({
                "x": c.x, "y": c.y,
                "alternative": alternative_name(c.options.alternative),
                "method": method_name(c.options.method),
                "use_continuity": c.options.continuity,
            })
        })
        .collect();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/canary/mwu_scipy.py");
    let mut child = Command::new(&python)
        .arg(&script)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run python");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(serde_json::to_string(&input).expect("json").as_bytes())
        .expect("write cases");
    let out = child.wait_with_output().expect("wait for python");
    assert!(out.status.success(), "mwu_scipy.py failed:\n{}", String::from_utf8_lossy(&out.stderr));
    let reply: serde_json::Value = serde_json::from_slice(&out.stdout).expect("scipy output");
    let results = reply["results"].as_array().expect("results");
    assert_eq!(results.len(), cases.len());

    let mut failures = Vec::new();
    let mut exact_seen = 0;
    for (c, want) in cases.iter().zip(results) {
        let got = stats::mann_whitney_u(&c.x, &c.y, c.options).unwrap_or_else(|e| panic!("{}: {e}", c.name));
        exact_seen += usize::from(got.method == MethodUsed::Exact);
        let (u, p) = (want["statistic"].as_f64(), want["pvalue"].as_f64());
        if !close(got.u1, u) || !close(got.p_value, p) {
            failures.push(format!("{}: redline U={} p={:e}, scipy U={u:?} p={p:?}", c.name, got.u1, got.p_value));
        }
    }
    assert!(
        failures.is_empty(),
        "scipy {} disagrees on {} of {} cases:\n{}",
        reply["scipy"],
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
    assert!(exact_seen > 20, "the exact method should be exercised ({exact_seen} cases)");
}
