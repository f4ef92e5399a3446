//! `logging.structured`: the last N lines of the service's log are JSON objects carrying a
//! timestamp, a level and a message, and request lines carry a trace id.

use crate::readiness::report::Outcome;

/// Accepted spellings of each field (the sidecar's own names first, then common loggers').
const TIMESTAMP: [&str; 4] = ["timestamp", "@timestamp", "time", "ts"];
const LEVEL: [&str; 4] = ["level", "severity", "log.level", "levelname"];
const MESSAGE: [&str; 3] = ["message", "msg", "@message"];
const TRACE_ID: [&str; 5] = ["trace_id", "traceId", "trace.id", "traceID", "trace_id_hex"];

fn has(obj: &serde_json::Map<String, serde_json::Value>, keys: &[&str]) -> bool {
    keys.iter().any(|k| obj.get(*k).is_some_and(|v| !v.is_null() && v.as_str() != Some("")))
}

/// Judges the sampled lines (`first_line` is the 1-based line number of `lines[0]` in the file).
/// Every line must be structured; lines without a trace id are allowed (start-up and
/// background lines have no request), but at least one line must carry one.
pub fn judge(lines: &[&str], first_line: usize) -> Outcome {
    let mut problems = Vec::new();
    let mut with_trace = 0;
    let mut sampled = 0;
    for (i, line) in lines.iter().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        sampled += 1;
        let n = first_line + i;
        let obj = match serde_json::from_str::<serde_json::Value>(line) {
            Ok(serde_json::Value::Object(o)) => o,
            Ok(_) => {
                problems.push(format!("line {n}: JSON but not an object"));
                continue;
            }
            Err(e) => {
                let start: String = line.chars().take(60).collect();
                problems.push(format!("line {n}: not JSON ({e}): {start:?}"));
                continue;
            }
        };
        let missing: Vec<&str> = [("timestamp", &TIMESTAMP[..]), ("level", &LEVEL[..]), ("message", &MESSAGE[..])]
            .into_iter()
            .filter(|(_, keys)| !has(&obj, keys))
            .map(|(what, _)| what)
            .collect();
        if !missing.is_empty() {
            problems.push(format!("line {n}: no {}", missing.join(", ")));
        }
        if has(&obj, &TRACE_ID) {
            with_trace += 1;
        }
    }
    if sampled == 0 {
        return Outcome::fail("the log file has no lines to sample");
    }
    if !problems.is_empty() {
        let count = problems.len();
        problems.truncate(10);
        return Outcome::fail(format!(
            "{count} of {sampled} sampled lines are not structured JSON with timestamp, level and message (first: {})",
            problems[0]
        ))
        .details(problems);
    }
    if with_trace == 0 {
        return Outcome::fail(format!(
            "{sampled} sampled lines are JSON with timestamp, level and message, but none carries a trace id (trace_id)"
        ));
    }
    Outcome::pass(format!(
        "{sampled} sampled lines are JSON with timestamp, level and message; {with_trace} carry a trace id"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::readiness::report::Status;

    #[test]
    fn structured_lines_pass_and_others_fail_with_the_line_number() {
        let ok = r#"{"timestamp":"2026-01-01T00:00:00.000000Z","level":"INFO","message":"request","trace_id":"ab"}"#;
        let start = r#"{"timestamp":"2026-01-01T00:00:00.000000Z","level":"INFO","message":"listening"}"#;
        assert_eq!(judge(&[start, ok], 1).status, Status::Pass);
        let r = judge(&[ok, "plain text"], 7);
        assert_eq!(r.status, Status::Fail);
        assert!(r.summary.contains("line 8: not JSON"), "{}", r.summary);
        let r = judge(&[r#"{"level":"INFO","message":"x"}"#], 1);
        assert!(r.summary.contains("line 1: no timestamp"), "{}", r.summary);
        assert!(judge(&[start], 1).summary.contains("none carries a trace id"));
    }
}
