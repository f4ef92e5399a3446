//! deploy/argo and deploy/flagger against the real receiver: the Argo Rollouts web metric's URL
//! and jsonPath, and Flagger's confirm-promotion and rollback webhooks, called as those
//! controllers call them, give the intended verdicts before and after a critical alert fires.

use crate::common;

use std::path::Path;

use common::client;
use common::receiver::{Receiver, ZERO_TIME, webhook, webhook_alert};
use serde_json::{Value, json};

fn yaml_docs(path: &str) -> Vec<Value> {
    let full = Path::new(env!("CARGO_MANIFEST_DIR")).join(path);
    let text = std::fs::read_to_string(&full).unwrap_or_else(|e| panic!("{path}: {e}"));
    text.split("\n---\n")
        .map(|doc| serde_saphyr::from_str::<Value>(doc).unwrap_or_else(|e| panic!("{path}: not YAML: {e}")))
        .collect()
}

/// Argo's `{{args.NAME}}` substitution.
fn argo_substitute(s: &str, args: &[(&str, &str)]) -> String {
    args.iter().fold(s.to_string(), |acc, (k, v)| acc.replace(&format!("{{{{args.{k}}}}}"), v))
}

/// Replaces the in-cluster receiver address with the test receiver's.
fn local(url: &str, base: &str) -> String {
    url.replace("http://redline-receiver.monitoring.svc:9095", base)
}

async fn fire_critical(receiver: &Receiver, version: &str) {
    let alert = webhook_alert(
        "firing",
        &json!({"alertname": "RedlineHighErrorRatio", "service": "checkout", "namespace": "shop",
                "version": version, "severity": "critical"}),
        "2026-01-01T00:00:00Z",
        ZERO_TIME,
    );
    let r = receiver.post("/api/v1/alertmanager", webhook("firing", "{}:{}", vec![alert]).to_string()).await;
    assert_eq!(r.status(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn argo_analysis_template_and_flagger_canary_gate_on_the_real_receiver() {
    let db = tempfile::tempdir().expect("temp dir");
    let receiver = Receiver::start(&db.path().join("rx.db").display().to_string(), &[]).await;
    let base = receiver.base_url();

    // Argo Rollouts: the Rollout's args fill the template's; the web metric reads `{$.ready}`.
    let template = &yaml_docs("deploy/argo/analysistemplate.yaml")[0];
    let rollout = &yaml_docs("deploy/argo/rollout.yaml")[0];
    assert_eq!(template["kind"], "AnalysisTemplate");
    let analysis = &rollout["spec"]["strategy"]["canary"]["analysis"];
    assert_eq!(analysis["templates"][0]["templateName"], template["metadata"]["name"]);
    let declared: Vec<&str> =
        template["spec"]["args"].as_array().expect("args").iter().filter_map(|a| a["name"].as_str()).collect();
    for a in analysis["args"].as_array().expect("rollout args") {
        assert!(declared.contains(&a["name"].as_str().expect("name")), "rollout arg {a} not declared by the template");
    }
    let web = template["spec"]["metrics"]
        .as_array()
        .expect("metrics")
        .iter()
        .find(|m| m["provider"]["web"].is_object())
        .expect("a web metric");
    assert_eq!(web["provider"]["web"]["jsonPath"], "{$.ready}");
    assert_eq!(web["successCondition"], "result == true");
    let args = [
        ("receiver-url", base.as_str()),
        ("service", "checkout"),
        ("namespace", "shop"),
        ("canary-version", "2.3.1"),
        ("stable-version", "2.3.0"),
    ];
    let url = argo_substitute(web["provider"]["web"]["url"].as_str().expect("url"), &args);
    assert!(!url.contains("{{"), "unsubstituted argument in {url}");
    let ready = || async {
        let r = client().get(&url).send().await.expect("GET readiness gate");
        assert_eq!(r.status(), 200, "the gate always answers 200");
        r.json::<Value>().await.expect("JSON")["ready"].clone()
    };
    assert_eq!(ready().await, json!(true));

    // Flagger: the webhooks as Flagger posts them.
    let canary = &yaml_docs("deploy/flagger/canary.yaml")[0];
    let hooks = canary["spec"]["analysis"]["webhooks"].as_array().expect("webhooks");
    let call = |kind: &'static str| {
        let hook = hooks.iter().find(|h| h["type"] == kind).expect("webhook").clone();
        let url = local(hook["url"].as_str().expect("url"), &base);
        async move {
            let payload = json!({"name": canary["metadata"]["name"], "namespace": canary["metadata"]["namespace"],
                                 "phase": "Progressing", "checksum": "abc", "metadata": hook["metadata"]});
            client().post(&url).json(&payload).send().await.expect("POST webhook").status().as_u16()
        }
    };
    assert_eq!(call("confirm-promotion").await, 200);
    assert_eq!(call("rollback").await, 403);

    // A critical alert of the stable version does not hold the canary back in Argo (version
    // matched), but a service-wide Flagger gate (no version in its metadata) does.
    fire_critical(&receiver, "2.3.0").await;
    assert_eq!(ready().await, json!(true));
    assert_eq!(call("confirm-promotion").await, 403);
    fire_critical(&receiver, "2.3.1").await;
    assert_eq!(ready().await, json!(false));
    assert_eq!(call("rollback").await, 200);
}

/// Flagger's metric templates are valid PromQL once Flagger fills in its variables.
#[test]
fn flagger_metric_templates_are_valid_promql() {
    let docs = yaml_docs("deploy/flagger/canary.yaml");
    let templates: Vec<&Value> = docs.iter().filter(|d| d["kind"] == "MetricTemplate").collect();
    // HTTP error ratio and p99, and the same for gRPC services.
    assert_eq!(templates.len(), 4);
    let canary = &docs[0];
    for m in canary["spec"]["analysis"]["metrics"].as_array().expect("metrics") {
        assert!(
            templates.iter().any(|t| t["metadata"]["name"] == m["templateRef"]["name"]),
            "metric {m} refers to a missing template"
        );
    }
    for t in templates {
        let q = t["spec"]["query"]
            .as_str()
            .expect("query")
            .replace("{{ namespace }}", "shop")
            .replace("{{ target }}", "checkout")
            .replace("{{ interval }}", "1m");
        let e = promql_parser::parser::parse(&q).unwrap_or_else(|e| panic!("{}: {e}\n{q}", t["metadata"]["name"]));
        let name = t["metadata"]["name"].as_str().unwrap_or_default();
        let read: Vec<String> = redline::readiness::checks::ExprUse::of(&e).names().map(str::to_string).collect();
        let family = if name.starts_with("redline-grpc-") {
            "rpc_server_call_duration_seconds_"
        } else {
            "http_server_request_duration_seconds_"
        };
        assert!(!read.is_empty() && read.iter().all(|n| n.starts_with(family)), "{name} reads {read:?}");
        // gRPC latency leaves out what the shipped RedlineGrpcHighLatency leaves out.
        if name == "redline-grpc-latency-p99" {
            assert!(q.contains(r#"rpc_method!~"_OTHER|.+/(Stream|Watch|Subscribe).*|.+/ServerReflectionInfo""#), "{q}");
        }
    }
}
