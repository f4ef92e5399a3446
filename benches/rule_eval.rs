//! One evaluation of the shipped symptom rules over series at the route cap (500 routes, each
//! with the request-duration histogram), after an hour of 5s samples: prints ms per evaluation.
//!   cargo bench --bench rule_eval

use std::collections::BTreeMap;
use std::time::Instant;

use redline::rules::engine::{EngineSettings, RuleEngine};
use redline::telemetry::metrics::CapturedSample;

const ROUTES: usize = 500;
const BOUNDS: [&str; 15] =
    ["0.005", "0.01", "0.025", "0.05", "0.075", "0.1", "0.25", "0.5", "0.75", "1", "2.5", "5", "7.5", "10", "+Inf"];

fn round(n: u64) -> Vec<CapturedSample> {
    let mut out = Vec::with_capacity(ROUTES * 18);
    for r in 0..ROUTES {
        let route = format!("/item-{r}");
        let (status, error) = if r % 50 == 0 { ("500", "500") } else { ("200", "") };
        let base = |extra: Option<(&str, &str)>| {
            let mut l = vec![
                ("http_request_method".to_string(), "GET".to_string()),
                ("http_response_status_code".to_string(), status.to_string()),
                ("http_route".to_string(), route.clone()),
            ];
            if !error.is_empty() {
                l.push(("error_type".to_string(), error.to_string()));
            }
            if let Some((k, v)) = extra {
                l.push((k.to_string(), v.to_string()));
            }
            l
        };
        let count = (n * (r as u64 % 7 + 1)) as f64;
        for (i, le) in BOUNDS.iter().enumerate() {
            let v = (count * (i + 1) as f64 / BOUNDS.len() as f64).floor();
            out.push(CapturedSample {
                name: "http_server_request_duration_seconds_bucket".into(),
                labels: base(Some(("le", le))),
                value: v,
            });
        }
        out.push(CapturedSample {
            name: "http_server_request_duration_seconds_count".into(),
            labels: base(None),
            value: count,
        });
        out.push(CapturedSample {
            name: "http_server_request_duration_seconds_sum".into(),
            labels: base(None),
            value: count * 0.01,
        });
    }
    out
}

fn main() {
    let settings = EngineSettings {
        patterns: vec!["rules/redline-symptoms.yml".into()],
        generated: Vec::new(),
        default_interval_ms: 5_000,
        retention_ms: 3_600_000,
        external_labels: BTreeMap::from([("service".to_string(), "bench".to_string())]),
        external_url: "http://localhost:15090".into(),
        generator_base: "http://localhost:15090".into(),
    };
    let mut engine = RuleEngine::load(settings, 0).expect("shipped rules load");
    let start = 1_700_000_000_000i64;
    // One hour of 5s samples under `cargo bench`; under `cargo test --all-targets` (no `--bench`
    // argument) just enough rounds to fill the 5m windows, as a smoke test.
    let full = std::env::args().any(|a| a == "--bench");
    let rounds: u64 =
        std::env::var("RULE_EVAL_ROUNDS").ok().and_then(|v| v.parse().ok()).unwrap_or(if full { 720 } else { 70 });
    let mut times = Vec::new();
    let mut ingest_times = Vec::new();
    for n in 0..rounds {
        let t = start + n as i64 * 5_000;
        let samples = round(n);
        let began = Instant::now();
        engine.ingest(t, samples);
        let ingested = Instant::now();
        engine.evaluate_due(t);
        if n + 100 >= rounds || !full {
            times.push(ingested.elapsed().as_secs_f64() * 1000.0);
            ingest_times.push((ingested - began).as_secs_f64() * 1000.0);
        }
    }
    times.sort_by(f64::total_cmp);
    ingest_times.sort_by(f64::total_cmp);
    let (series, samples) = engine.store.size();
    println!(
        "rule_eval: shipped symptom rules, {ROUTES} routes, store {series} series / {samples} samples: \
         median {:.3} ms, p90 {:.3} ms per evaluation; sampling round (ingest) median {:.3} ms",
        times[times.len() / 2],
        times[times.len() * 9 / 10],
        ingest_times[ingest_times.len() / 2],
    );
}
