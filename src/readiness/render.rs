//! The report's four outputs: a table for people (colour only on a terminal), JSON (the stable
//! schema), JUnit XML (one testcase per check) for CI, and Markdown for pull-request comments.

use std::fmt::Write as _;

use quick_xml::escape::escape;

use super::report::{Report, Status};

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Table,
    Json,
    Junit,
    Markdown,
}

pub fn render(report: &Report, format: Format, colour: bool) -> String {
    match format {
        Format::Table => table(report, colour),
        Format::Json => {
            let mut s = serde_json::to_string_pretty(report).unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"));
            s.push('\n');
            s
        }
        Format::Junit => junit(report),
        Format::Markdown => markdown(report),
    }
}

fn verdict_line(report: &Report) -> String {
    if report.ready {
        format!("{}: READY", report.service)
    } else {
        let n = report.blocking_failures.len();
        format!(
            "{}: NOT READY ({n} blocking check{} failed: {})",
            report.service,
            if n == 1 { "" } else { "s" },
            report.blocking_failures.join(", ")
        )
    }
}

fn counts_line(report: &Report) -> String {
    let c = &report.counts;
    format!("{} pass, {} fail, {} warn, {} skip, {} error", c.pass, c.fail, c.warn, c.skip, c.error)
}

fn colour_code(status: Status) -> &'static str {
    match status {
        Status::Pass => "\x1b[32m",
        Status::Fail | Status::Error => "\x1b[31m",
        Status::Warn => "\x1b[33m",
        Status::Skip => "\x1b[2m",
    }
}

/// One line per check, status first so a glance down the left edge tells the story; evidence
/// and details indented under it.
fn table(report: &Report, colour: bool) -> String {
    let width = report.checks.iter().map(|c| c.id.len()).max().unwrap_or(0);
    let paint = |s: &str, code: &str| if colour { format!("{code}{s}\x1b[0m") } else { s.to_string() };
    let mut out = String::new();
    let verdict = verdict_line(report);
    let _ = writeln!(out, "{}", paint(&verdict, if report.ready { "\x1b[1;32m" } else { "\x1b[1;31m" }));
    let _ = writeln!(out, "{}\n", counts_line(report));
    for c in &report.checks {
        let status = format!("{:<5}", c.status.as_str().to_uppercase());
        let blocks = if c.blocks { "blocking" } else { "advisory" };
        let _ = writeln!(out, "{}  {:<width$}  {blocks}  {}", paint(&status, colour_code(c.status)), c.id, c.summary);
        let indent = " ".repeat(5 + 2 + width + 2 + 8 + 2);
        for e in &c.evidence {
            let _ = writeln!(out, "{indent}{}", paint(&format!("evidence: {e}"), "\x1b[2m"));
        }
        for d in &c.details {
            let _ = writeln!(out, "{indent}- {d}");
        }
    }
    out
}

fn xml(s: &str) -> String {
    escape(s).into_owned()
}

/// JUnit XML as Jenkins, GitLab and junitparser read it: one `<testsuite>` for the service,
/// one `<testcase>` per check; fail -> `<failure>`, error -> `<error>`, skip -> `<skipped>`;
/// a warning passes, with the warning in `<system-out>`.
fn junit(report: &Report) -> String {
    let c = &report.counts;
    let tests = report.checks.len();
    let time: f64 = report.checks.iter().map(|c| c.duration_ms as f64 / 1000.0).sum();
    let mut out = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    let _ = writeln!(
        out,
        "<testsuites name=\"redline readiness-check\" tests=\"{tests}\" failures=\"{}\" errors=\"{}\" skipped=\"{}\" time=\"{time:.3}\">",
        c.fail, c.error, c.skip
    );
    let _ = writeln!(
        out,
        "  <testsuite name=\"readiness.{}\" tests=\"{tests}\" failures=\"{}\" errors=\"{}\" skipped=\"{}\" time=\"{time:.3}\" timestamp=\"{}\">",
        xml(&report.service),
        c.fail,
        c.error,
        c.skip,
        xml(report.generated_at.trim_end_matches('Z'))
    );
    let _ = writeln!(out, "    <properties>");
    let _ = writeln!(out, "      <property name=\"ready\" value=\"{}\"/>", report.ready);
    let _ = writeln!(out, "    </properties>");
    for check in &report.checks {
        let _ = write!(
            out,
            "    <testcase classname=\"readiness.{}\" name=\"{}\" time=\"{:.3}\"",
            xml(&report.service),
            check.id,
            check.duration_ms as f64 / 1000.0
        );
        let mut body = check.evidence.iter().map(|e| format!("evidence: {e}")).collect::<Vec<_>>();
        body.extend(check.details.iter().cloned());
        let body = xml(&body.join("\n"));
        let message = if check.blocks { check.summary.clone() } else { format!("(advisory) {}", check.summary) };
        let element = match check.status {
            Status::Pass => None,
            Status::Warn => Some(format!("      <system-out>warning: {}\n{body}</system-out>", xml(&check.summary))),
            Status::Skip => Some(format!("      <skipped message=\"{}\"/>", xml(&check.summary))),
            Status::Fail => {
                Some(format!("      <failure message=\"{}\" type=\"fail\">{body}</failure>", xml(&message)))
            }
            Status::Error => Some(format!("      <error message=\"{}\" type=\"error\">{body}</error>", xml(&message))),
        };
        match element {
            None => {
                let _ = writeln!(out, "/>");
            }
            Some(e) => {
                let _ = writeln!(out, ">\n{e}\n    </testcase>");
            }
        }
    }
    out.push_str("  </testsuite>\n</testsuites>\n");
    out
}

fn md(s: &str) -> String {
    s.replace('\\', "\\\\").replace('|', "\\|").replace('\n', " ")
}

fn markdown(report: &Report) -> String {
    let icon = |s: Status| match s {
        Status::Pass => "✅ pass",
        Status::Fail => "❌ fail",
        Status::Error => "💥 error",
        Status::Warn => "⚠️ warn",
        Status::Skip => "⏭️ skip",
    };
    let mut out = format!("## Readiness: {}\n\n{}\n\n", md(&verdict_line(report)), counts_line(report));
    out.push_str("| Status | Check | Blocks | Summary | Evidence |\n| --- | --- | --- | --- | --- |\n");
    for c in &report.checks {
        let evidence: Vec<String> = c.evidence.iter().map(|e| format!("`{}`", md(e).replace('`', "'"))).collect();
        let mut summary = md(&c.summary);
        for d in &c.details {
            summary.push_str("<br>• ");
            summary.push_str(&md(d));
        }
        let _ = writeln!(
            out,
            "| {} | `{}` | {} | {} | {} |",
            icon(c.status),
            c.id,
            if c.blocks { "yes" } else { "no" },
            summary,
            evidence.join("<br>")
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::readiness::report::CheckResult;

    fn report() -> Report {
        let check = |id, status, summary: &str, blocks| CheckResult {
            id,
            status,
            summary: summary.into(),
            evidence: vec!["a|b <c>".into()],
            details: vec![],
            blocks,
            duration_ms: 12,
            series: vec![],
        };
        Report::new(
            "checkout",
            "2026-01-01T00:00:00Z".into(),
            vec![
                check("tests.coverage", Status::Pass, "85% >= 80%", true),
                check("metrics.use", Status::Fail, "no USE & families", false),
                check("tracing", Status::Skip, "not configured", true),
                check("canary", Status::Error, "Prometheus down", true),
            ],
        )
    }

    #[test]
    fn table_has_no_colour_unless_asked() {
        let t = render(&report(), Format::Table, false);
        assert!(!t.contains('\x1b'));
        assert!(t.starts_with("checkout: NOT READY (1 blocking check failed: canary)"));
        assert!(render(&report(), Format::Table, true).contains("\x1b[31m"));
    }

    #[test]
    fn junit_escapes_and_counts() {
        let j = render(&report(), Format::Junit, false);
        assert!(j.contains("tests=\"4\" failures=\"1\" errors=\"1\" skipped=\"1\""));
        assert!(j.contains("message=\"(advisory) no USE &amp; families\""));
        assert!(j.contains("evidence: a|b &lt;c&gt;"));
    }

    #[test]
    fn markdown_escapes_pipes() {
        let m = render(&report(), Format::Markdown, false);
        assert!(m.contains("`a\\|b <c>`"));
    }
}
