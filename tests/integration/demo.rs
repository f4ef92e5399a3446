//! `redline demo` end to end: the real sidecar and receiver processes, load, a fault, and the
//! error-ratio alert firing and resolving on the receiver within a one-minute run.

use crate::common;

use std::process::Command;

#[test]
fn the_demo_shows_the_alert_fire_and_resolve_on_the_receiver() {
    let out = Command::new(common::redline_bin()).args(["demo", "--duration", "60s"]).output().expect("run the demo");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "demo failed ({}):\n{stdout}\n{stderr}", out.status);
    assert!(stdout.contains("-- fault injected: 40% of requests fail"), "{stdout}");
    assert!(stdout.contains("sidecar alerts: RedlineHighErrorRatio=firing"), "{stdout}");
    assert!(stdout.contains("receiver: 1 firing"), "{stdout}");
    let stored = stdout.lines().find(|l| l.trim_start().starts_with("RedlineHighErrorRatio")).unwrap_or_default();
    assert!(stored.contains("resolved"), "the receiver holds the resolved alert:\n{stdout}");
    assert!(stdout.contains("the error-ratio alert fired during the fault and resolved after it"), "{stdout}");
    // The closing readiness report: the checks that apply to the demo all pass.
    for check in ["metrics.red", "metrics.use", "logging.structured", "alerts.symptoms", "alerts.firing"] {
        assert!(
            stdout.lines().any(|l| l.starts_with("PASS") && l.contains(check)),
            "readiness check {check} did not pass:\n{stdout}"
        );
    }
}
