//! `tracing`: spans of the service reach Jaeger (query API `/api/traces?service=`), and trace
//! context propagates: some span of the service has a parent, or is the parent of another
//! service's span.

use std::collections::{HashMap, HashSet};

use serde::Deserialize;

use crate::readiness::report::Outcome;

#[derive(Deserialize)]
pub struct JaegerTraces {
    #[serde(default)]
    pub data: Option<Vec<Trace>>,
    #[serde(default)]
    pub errors: Option<serde_json::Value>,
}

#[derive(Deserialize)]
pub struct Trace {
    #[serde(rename = "traceID")]
    pub trace_id: String,
    #[serde(default)]
    pub spans: Vec<Span>,
    #[serde(default)]
    pub processes: HashMap<String, Process>,
}

#[derive(Deserialize)]
pub struct Span {
    #[serde(rename = "spanID")]
    pub span_id: String,
    #[serde(rename = "processID", default)]
    pub process_id: String,
    #[serde(default)]
    pub references: Vec<Reference>,
}

#[derive(Deserialize)]
pub struct Reference {
    #[serde(rename = "spanID")]
    pub span_id: String,
}

#[derive(Deserialize)]
pub struct Process {
    #[serde(rename = "serviceName")]
    pub service_name: String,
}

pub fn judge(service: &str, answer: &JaegerTraces) -> Outcome {
    let traces = answer.data.as_deref().unwrap_or_default();
    let mut spans = 0;
    let mut joined = 0;
    for t in traces {
        let ours = |s: &Span| t.processes.get(&s.process_id).is_some_and(|p| p.service_name == service);
        let our_ids: HashSet<&str> = t.spans.iter().filter(|s| ours(s)).map(|s| s.span_id.as_str()).collect();
        spans += our_ids.len();
        let has_parent = t.spans.iter().any(|s| ours(s) && !s.references.is_empty());
        let is_parent =
            t.spans.iter().any(|s| !ours(s) && s.references.iter().any(|r| our_ids.contains(r.span_id.as_str())));
        if !our_ids.is_empty() && (has_parent || is_parent) {
            joined += 1;
        }
    }
    if spans == 0 {
        return Outcome::fail(format!("Jaeger has no spans of service {service:?} (searched {} traces)", traces.len()));
    }
    if joined == 0 {
        return Outcome::warn(format!(
            "{spans} spans of {service:?} in {} traces reach Jaeger, but none joins a parent or child span: trace context propagation not shown",
            traces.len()
        ));
    }
    Outcome::pass(format!(
        "{spans} spans of {service:?} in {} traces reach Jaeger; {joined} traces show context propagated across the service",
        traces.len()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::readiness::report::Status;

    #[test]
    fn spans_and_propagation() {
        let a: JaegerTraces = serde_json::from_str(
            r#"{"data":[{"traceID":"t","spans":[{"spanID":"a","processID":"p1","references":[]},
            {"spanID":"b","processID":"p2","references":[{"refType":"CHILD_OF","traceID":"t","spanID":"a"}]}],
            "processes":{"p1":{"serviceName":"checkout"},"p2":{"serviceName":"app"}}}]}"#,
        )
        .expect("json");
        assert_eq!(judge("checkout", &a).status, Status::Pass);
        assert_eq!(judge("cart", &a).status, Status::Fail);
        assert_eq!(judge("app", &a).status, Status::Pass, "a child of another service's span");
        let lone: JaegerTraces = serde_json::from_str(
            r#"{"data":[{"traceID":"t","spans":[{"spanID":"a","processID":"p1"}],"processes":{"p1":{"serviceName":"checkout"}}}]}"#,
        )
        .expect("json");
        assert_eq!(judge("checkout", &lone).status, Status::Warn);
    }
}
