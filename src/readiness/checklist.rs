//! The readiness checklist: resolves a service's [`Plan`] from its sidecar config, gathers each
//! check's data (files, metrics endpoint, Jaeger, Prometheus, receiver or Alertmanager), judges it.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::canary::judge::{JudgeConfig, MetricSamples, Verdict, judge};
use crate::canary::prometheus::{Side, Traffic, queries, range_query};
use crate::config::{FileConfig, ReadinessConfig};
use crate::readiness::checks::{alerts, dashboard, firing, logs, metrics, tracing};
use crate::readiness::coverage::{self, CoverageUnit};
use crate::readiness::report::{CHECK_IDS, CheckResult, MetricSeries, Outcome, Report};
use crate::rules::file::{self as rule_file, Checks, Group};

/// A usage or configuration problem (the CLI's exit 2; the receiver's 400).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct UsageError(pub String);

/// Checks that every id names a check; `what` says where the ids came from.
pub fn check_ids(what: &str, ids: &[String]) -> Result<(), UsageError> {
    for id in ids {
        if !CHECK_IDS.contains(&id.as_str()) {
            return Err(UsageError(format!("{what}: unknown check {id:?}; expected one of {}", CHECK_IDS.join(", "))));
        }
    }
    Ok(())
}

/// How to run the checklist beyond what the config file says: the canary pair and timings.
#[derive(Debug, Clone)]
pub struct Options {
    pub baseline: Option<String>,
    pub canary: Option<String>,
    pub window: Duration,
    pub step: Duration,
    pub rate_window: Duration,
    /// What the canary judge compares: HTTP requests, or gRPC calls (of some methods).
    pub traffic: Traffic,
    /// How the canary judge decides (confidence, tolerance, thresholds).
    pub judge: JudgeConfig,
    /// Time each HTTP request of a check may take.
    pub timeout: Duration,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            baseline: None,
            canary: None,
            window: Duration::from_secs(30 * 60),
            step: Duration::from_secs(30),
            rate_window: Duration::from_secs(60),
            traffic: Traffic::http(),
            judge: JudgeConfig::default(),
            timeout: Duration::from_secs(10),
        }
    }
}

/// Which checks to run; the others are reported as `skip`.
#[derive(Debug, Clone, Default)]
pub struct Selection {
    pub only: Vec<String>,
    pub skip: Vec<String>,
}

impl Selection {
    pub fn new(only: Vec<String>, skip: Vec<String>) -> Result<Selection, UsageError> {
        check_ids("only", &only)?;
        check_ids("skip", &skip)?;
        Ok(Selection { only, skip })
    }

    /// `None` when `id` runs, else why it does not.
    fn skipped(&self, id: &str) -> Option<&'static str> {
        if self.skip.iter().any(|s| s == id) {
            Some("--skip")
        } else if !self.only.is_empty() && !self.only.iter().any(|o| o == id) {
            Some("--only")
        } else {
            None
        }
    }
}

/// Everything the checks need, resolved from the config file and options.
pub struct Plan {
    service: String,
    namespace: Option<String>,
    readiness: ReadinessConfig,
    rules: Vec<String>,
    /// The SLO rules the sidecar generates from the config's `slo` section (it evaluates them
    /// with no rule file), when there is one: the objective in words and the rule file's text.
    slo_rules: Option<(String, String)>,
    alertmanagers: Vec<String>,
    admin: Option<std::net::SocketAddr>,
    baseline: Option<String>,
    canary: Option<String>,
    window: Duration,
    step: Duration,
    rate_window: Duration,
    traffic: Traffic,
    judge: JudgeConfig,
    timeout: Duration,
}

impl Plan {
    /// `file` is the sidecar config read from `origin` (a path, for messages).
    pub fn new(service: &str, file: FileConfig, origin: &str, options: Options) -> Result<Plan, UsageError> {
        let slo_rules = match &file.slo {
            Some(_) => Some(slo_rules(file.clone()).map_err(|e| UsageError(format!("config file {origin}: {e}")))?),
            None => None,
        };
        let readiness = file.readiness.unwrap_or_default();
        if let Some(blocking) = &readiness.blocking {
            check_ids(&format!("config file {origin}: readiness.blocking"), blocking)?;
        }
        if let Some(min) = readiness.coverage.as_ref().and_then(|c| c.min)
            && !(0.0..=100.0).contains(&min)
        {
            return Err(UsageError(format!(
                "config file {origin}: readiness.coverage.min: expected a percentage from 0 to 100, got {min}"
            )));
        }
        if readiness.logs.as_ref().and_then(|l| l.sample) == Some(0) {
            return Err(UsageError(format!("config file {origin}: readiness.logs.sample: expected at least 1 line")));
        }
        if options.step.is_zero() || options.window < options.step {
            return Err(UsageError(
                "the step (--step) must be positive and no longer than the window (--window)".into(),
            ));
        }
        options.judge.validate().map_err(|e| UsageError(e.to_string()))?;
        if options.baseline.is_some() != options.canary.is_some() {
            return Err(UsageError("baseline and canary go together: give both versions or neither".into()));
        }
        Ok(Plan {
            service: service.to_string(),
            namespace: file.namespace.clone(),
            rules: file.rules.clone().unwrap_or_default(),
            slo_rules,
            alertmanagers: file.alertmanagers.clone().unwrap_or_default().into_iter().map(|u| u.0).collect(),
            admin: file.admin,
            readiness,
            baseline: options.baseline,
            canary: options.canary,
            window: options.window,
            step: options.step,
            rate_window: options.rate_window,
            traffic: options.traffic,
            judge: options.judge,
            timeout: options.timeout,
        })
    }

    pub fn service(&self) -> &str {
        &self.service
    }

    /// Checks that every input file the selected checks read can be opened: a mistyped path is
    /// a configuration error (exit 2, naming the key, the flag and the path), not a verdict on
    /// the service. What the files hold is still each check's to judge.
    pub fn check_inputs(&self, selection: &Selection) -> Result<(), UsageError> {
        let r = &self.readiness;
        let inputs = [
            (
                "tests.coverage",
                "readiness.coverage.report",
                "--coverage-report",
                r.coverage.as_ref().and_then(|c| c.report.as_ref()),
            ),
            ("logging.structured", "readiness.logs.file", "--logs-file", r.logs.as_ref().and_then(|l| l.file.as_ref())),
            ("dashboard", "readiness.dashboards", "--dashboards", r.dashboards.as_ref()),
            ("dashboard", "readiness.grafana_token_file", "--grafana-token-file", r.grafana_token_file.as_ref()),
        ];
        for (check, key, flag, path) in inputs {
            let Some(path) = path else { continue };
            if selection.skipped(check).is_some() {
                continue;
            }
            // A directory (of dashboards) is opened to list it; a file to read it.
            let opened =
                if path.is_dir() { std::fs::read_dir(path).map(drop) } else { std::fs::File::open(path).map(drop) };
            if let Err(e) = opened {
                return Err(UsageError(format!("{key} ({flag}) {}: cannot read: {e}", path.display())));
            }
        }
        Ok(())
    }

    /// An HTTP client with this plan's per-request timeout.
    pub fn client(&self) -> Result<reqwest::Client, UsageError> {
        crate::tls::http_client()
            .map_err(UsageError)?
            .timeout(self.timeout)
            .build()
            .map_err(|e| UsageError(format!("cannot build the HTTP client: {e}")))
    }
}

/// Runs the selected checks in report order. `firing`, when given, is the `alerts.firing`
/// outcome already known to the caller (the receiver answers it from its own store).
pub async fn run(plan: &Plan, selection: &Selection, client: &reqwest::Client, firing: Option<Outcome>) -> Report {
    let mut firing = firing;
    let mut results = Vec::new();
    for id in CHECK_IDS {
        let started = Instant::now();
        let outcome = if let Some(why) = selection.skipped(id) {
            Outcome::skip(format!("not selected ({why})"))
        } else if let Some(known) = (id == "alerts.firing").then(|| firing.take()).flatten() {
            known
        } else {
            run_check(id, plan, client).await
        };
        let blocks = plan.readiness.blocking.as_ref().is_none_or(|b| b.iter().any(|x| x == id));
        results.push(CheckResult {
            id,
            status: outcome.status,
            summary: outcome.summary,
            evidence: outcome.evidence,
            details: outcome.details,
            blocks,
            duration_ms: started.elapsed().as_millis() as u64,
            series: outcome.series,
        });
    }
    let now = time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|_| "unknown".into());
    Report::new(&plan.service, now, results)
}

async fn run_check(id: &str, plan: &Plan, client: &reqwest::Client) -> Outcome {
    match id {
        "tests.coverage" => coverage_check(plan),
        "metrics.red" => metrics_check(plan, client, metrics::red).await,
        "metrics.use" => metrics_check(plan, client, metrics::use_).await,
        "logging.structured" => logging_check(plan),
        "tracing" => tracing_check(plan, client).await,
        "dashboard" => dashboard_check(plan, client).await,
        "alerts.symptoms" => symptoms_check(plan),
        "alerts.tests" => alert_tests_check(plan),
        "alerts.firing" => firing_check(plan, client).await,
        "canary" => canary_check(plan, client).await,
        other => Outcome::error(format!("unknown check {other}")),
    }
}

fn coverage_check(plan: &Plan) -> Outcome {
    let cfg = plan.readiness.coverage.clone().unwrap_or_default();
    let min = cfg.min.unwrap_or(80.0);
    let Some(path) = cfg.report else {
        return Outcome::fail("no coverage report configured: set readiness.coverage.report");
    };
    let shown = path.display().to_string();
    let bytes = match std::fs::read(&path) {
        Ok(b) => b,
        Err(e) => return Outcome::fail(format!("cannot read the coverage report {shown}: {e}")).evidence(shown),
    };
    let report = match coverage::parse(&bytes) {
        Ok(r) => r,
        Err(e) => return Outcome::error(format!("{shown}: {e}")).evidence(shown),
    };
    let unit = match report.unit {
        CoverageUnit::Lines => "line",
        CoverageUnit::Statements => "statement",
    };
    let figure = format!(
        "{unit} coverage {:.1}% ({}/{} {unit}s, {})",
        report.percent, report.lines_covered, report.lines_total, report.format
    );
    let o = if report.percent + 1e-9 >= min {
        Outcome::pass(format!("{figure} >= {min}%"))
    } else {
        Outcome::fail(format!("{figure} is below the {min}% minimum"))
    };
    o.evidence(shown).details(report.notes)
}

/// Where the metrics come from: the endpoint, Prometheus, or the admin port of the config.
enum MetricsSource {
    Endpoint(String),
    Prometheus(String),
}

fn metrics_source(plan: &Plan) -> MetricsSource {
    if let Some(u) = &plan.readiness.metrics_url {
        return MetricsSource::Endpoint(u.0.clone());
    }
    if let Some(u) = &plan.readiness.prometheus_url {
        return MetricsSource::Prometheus(u.0.clone());
    }
    // The sidecar's own admin port; a wildcard bind address is reached on loopback.
    let admin = plan.admin.unwrap_or(std::net::SocketAddr::from(([0, 0, 0, 0], 15090)));
    let host = match admin.ip() {
        ip if ip.is_unspecified() && ip.is_ipv4() => "127.0.0.1".to_string(),
        ip if ip.is_unspecified() => "[::1]".to_string(),
        std::net::IpAddr::V6(ip) => format!("[{ip}]"),
        ip => ip.to_string(),
    };
    MetricsSource::Endpoint(format!("http://{host}:{}/metrics", admin.port()))
}

async fn get_text(client: &reqwest::Client, url: &str) -> Result<String, String> {
    let r = client.get(url).send().await.map_err(|e| format!("GET {url}: {}", error_chain(&e)))?;
    let status = r.status();
    let body = r.text().await.map_err(|e| format!("GET {url}: reading the body: {e}"))?;
    if !status.is_success() {
        let start: String = body.chars().take(200).collect();
        return Err(format!("GET {url}: HTTP {status}: {}", start.trim()));
    }
    Ok(body)
}

fn with_params(url: &str, params: &[(&str, &str)]) -> Result<reqwest::Url, String> {
    reqwest::Url::parse_with_params(url, params).map_err(|e| format!("{url}: not a valid URL: {e}"))
}

/// The cause worth showing ([`crate::errors::http_cause`]), a timeout naming the flag.
fn error_chain(e: &reqwest::Error) -> String {
    if e.is_timeout() {
        return "no answer in time (--timeout)".to_string();
    }
    crate::errors::http_cause(e)
}

async fn metrics_check(
    plan: &Plan,
    client: &reqwest::Client,
    judge_names: fn(&BTreeSet<String>) -> Outcome,
) -> Outcome {
    match metrics_source(plan) {
        MetricsSource::Endpoint(url) => match get_text(client, &url).await {
            Ok(text) => judge_names(&metrics::sample_names(&text)).evidence(url),
            Err(e) => Outcome::error(e).evidence(url),
        },
        MetricsSource::Prometheus(base) => {
            let query = format!(
                "count by (__name__) ({{service={:?},__name__=~\"http_server_.*|rpc_server_.*|redline_.*|process_.*\"}})",
                plan.service
            );
            let url = format!("{}/api/v1/query", base.trim_end_matches('/'));
            let evidence = format!("{url}?query={query}");
            let answer = async {
                let r = client
                    .get(with_params(&url, &[("query", query.as_str())])?)
                    .send()
                    .await
                    .map_err(|e| format!("GET {url}: {}", error_chain(&e)))?;
                let v: serde_json::Value =
                    r.json().await.map_err(|e| format!("GET {url}: not a Prometheus API answer: {e}"))?;
                if v.get("status").and_then(|s| s.as_str()) != Some("success") {
                    return Err(format!("Prometheus answered: {}", v.get("error").unwrap_or(&v)));
                }
                Ok::<_, String>(
                    v.pointer("/data/result")
                        .and_then(|r| r.as_array())
                        .into_iter()
                        .flatten()
                        .filter_map(|s| s.pointer("/metric/__name__").and_then(|n| n.as_str()).map(str::to_string))
                        .collect::<BTreeSet<String>>(),
                )
            };
            match answer.await {
                Ok(names) => judge_names(&names).evidence(evidence),
                Err(e) => Outcome::error(e).evidence(evidence),
            }
        }
    }
}

fn logging_check(plan: &Plan) -> Outcome {
    let cfg = plan.readiness.logs.clone().unwrap_or_default();
    let Some(path) = cfg.file else {
        return Outcome::fail("no log file configured: set readiness.logs.file");
    };
    let shown = path.display().to_string();
    let sample = cfg.sample.unwrap_or(200);
    let (total, tail) = match last_lines(&path, sample) {
        Ok(t) => t,
        Err(e) => return Outcome::fail(format!("cannot read the log file {shown}: {e}")).evidence(shown),
    };
    let lines: Vec<&str> = tail.iter().map(String::as_str).collect();
    let o = logs::judge(&lines, total - lines.len() + 1);
    o.evidence(format!("{shown} (last {} of {total} lines)", lines.len()))
}

/// The last `n` complete lines of a file and its number of complete lines, streaming (a log
/// file can be large). A last line still being written (no newline yet) is left out.
fn last_lines(path: &Path, n: usize) -> std::io::Result<(usize, Vec<String>)> {
    use std::io::BufRead;
    let mut reader = std::io::BufReader::new(std::fs::File::open(path)?);
    let mut ring = std::collections::VecDeque::with_capacity(n.min(10_000));
    let mut total = 0;
    let mut buf = Vec::new();
    loop {
        buf.clear();
        if reader.read_until(b'\n', &mut buf)? == 0 || buf.last() != Some(&b'\n') {
            break;
        }
        total += 1;
        if ring.len() == n {
            ring.pop_front();
        }
        ring.push_back(String::from_utf8_lossy(&buf[..buf.len() - 1]).trim_end_matches('\r').to_string());
    }
    Ok((total, ring.into()))
}

async fn tracing_check(plan: &Plan, client: &reqwest::Client) -> Outcome {
    let Some(jaeger) = &plan.readiness.jaeger_url else {
        return Outcome::skip("no Jaeger configured (readiness.jaeger_url): traces not checked");
    };
    let url = format!("{}/api/traces", jaeger.0.trim_end_matches('/'));
    let evidence = format!("{url}?service={}&limit=20", plan.service);
    let answer = async {
        let r = client
            .get(with_params(&url, &[("service", plan.service.as_str()), ("limit", "20"), ("lookback", "1h")])?)
            .send()
            .await
            .map_err(|e| format!("GET {url}: {}", error_chain(&e)))?;
        let status = r.status();
        let body = r.text().await.map_err(|e| format!("GET {url}: {e}"))?;
        if !status.is_success() {
            // Jaeger answers 404/500 with "service not found" style errors when it has no spans.
            if body.contains("not found") {
                return Ok(tracing::JaegerTraces { data: Some(Vec::new()), errors: None });
            }
            return Err(format!("GET {url}: HTTP {status}: {}", body.chars().take(200).collect::<String>()));
        }
        serde_json::from_str::<tracing::JaegerTraces>(&body)
            .map_err(|e| format!("GET {url}: not a Jaeger query API answer: {e}"))
    };
    match answer.await {
        Ok(a) => tracing::judge(&plan.service, &a).evidence(evidence),
        Err(e) => Outcome::error(e).evidence(evidence),
    }
}

fn json_files(path: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    if path.is_file() {
        out.push(path.to_path_buf());
        return Ok(());
    }
    let mut entries: Vec<PathBuf> = std::fs::read_dir(path)?.filter_map(|e| e.ok().map(|e| e.path())).collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            json_files(&p, out)?;
        } else if p.extension().is_some_and(|e| e == "json") {
            out.push(p);
        }
    }
    Ok(())
}

/// Dashboards from `readiness.dashboards` (files) and `readiness.grafana_url` (Grafana's API),
/// judged together: one of them must be a complete dashboard for the service.
async fn dashboard_check(plan: &Plan, client: &reqwest::Client) -> Outcome {
    let r = &plan.readiness;
    if r.dashboards.is_none() && r.grafana_url.is_none() {
        return Outcome::fail(
            "no dashboards configured: set readiness.dashboards (Grafana JSON files) or readiness.grafana_url",
        );
    }
    let mut dashboards = Vec::new();
    let mut unreadable = Vec::new();
    let mut sources = Vec::new();
    if let Some(dir) = &r.dashboards {
        let shown = dir.display().to_string();
        let mut files = Vec::new();
        if let Err(e) = json_files(dir, &mut files) {
            return Outcome::fail(format!("cannot read dashboards at {shown}: {e}")).evidence(shown);
        }
        if files.is_empty() && r.grafana_url.is_none() {
            return Outcome::fail(format!("no dashboard (*.json) under {shown}")).evidence(shown);
        }
        for f in &files {
            let name = f.display().to_string();
            match std::fs::read(f)
                .map_err(|e| e.to_string())
                .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).map_err(|e| format!("not JSON: {e}")))
            {
                Ok(v) => dashboards.push((name, v)),
                Err(e) => unreadable.push(format!("{name}: {e}")),
            }
        }
        sources.push(shown);
    }
    if let Some(grafana) = &r.grafana_url {
        let token = match &r.grafana_token_file {
            Some(f) => match std::fs::read_to_string(f) {
                Ok(t) => Some(t.trim().to_string()),
                Err(e) => return Outcome::error(format!("readiness.grafana_token_file {}: {e}", f.display())),
            },
            None => None,
        };
        match grafana_dashboards(client, &grafana.0, token.as_deref(), &plan.service).await {
            Ok(found) => dashboards.extend(found),
            Err(e) => return Outcome::error(e).evidence(grafana.0.clone()),
        }
        sources.push(format!("{}/api/search?type=dash-db", grafana.0));
    }
    let o = dashboard::judge(&plan.service, &dashboards, unreadable);
    if o.evidence.is_empty() { o.evidence(sources.join(", ")) } else { o }
}

/// Grafana's dashboards that may be about `service`: those whose title or tags name it, or
/// tagged `redline` (fleet dashboards with a `service` variable), each fetched by uid.
async fn grafana_dashboards(
    client: &reqwest::Client,
    base: &str,
    token: Option<&str>,
    service: &str,
) -> Result<Vec<(String, serde_json::Value)>, String> {
    const MAX_FETCHED: usize = 50;
    let get = |url: String| {
        let req = client.get(&url);
        let req = match token {
            Some(t) => req.bearer_auth(t),
            None => req,
        };
        async move {
            let resp = req.send().await.map_err(|e| format!("GET {url}: {}", error_chain(&e)))?;
            let status = resp.status();
            let body = resp.text().await.map_err(|e| format!("GET {url}: {e}"))?;
            if !status.is_success() {
                return Err(format!("GET {url}: HTTP {status}: {}", body.chars().take(200).collect::<String>()));
            }
            serde_json::from_str::<serde_json::Value>(&body).map_err(|e| format!("GET {url}: not JSON: {e}"))
        }
    };
    let hits = get(format!("{base}/api/search?type=dash-db&limit=5000")).await?;
    let hits = hits.as_array().ok_or_else(|| format!("GET {base}/api/search: expected a list of dashboards"))?;
    let wanted = service.to_lowercase();
    let mut out = Vec::new();
    for hit in hits {
        let text = |k: &str| hit.get(k).and_then(serde_json::Value::as_str).unwrap_or_default().to_lowercase();
        let tags: Vec<String> = hit
            .get("tags")
            .and_then(serde_json::Value::as_array)
            .map(|t| t.iter().filter_map(serde_json::Value::as_str).map(str::to_lowercase).collect())
            .unwrap_or_default();
        let relevant = text("title").contains(&wanted) || tags.iter().any(|t| *t == wanted || t == "redline");
        let uid = text("uid");
        if !relevant || uid.is_empty() {
            continue;
        }
        if out.len() == MAX_FETCHED {
            break;
        }
        let uid = hit.get("uid").and_then(serde_json::Value::as_str).unwrap_or_default();
        let url = format!("{base}/api/dashboards/uid/{uid}");
        out.push((url.clone(), get(url).await?));
    }
    Ok(out)
}

/// The rule files of the config's `rules` globs, parsed as the sidecar parses them.
/// The objective in words and the SLO rule file the sidecar generates from a config's `slo`.
fn slo_rules(file: FileConfig) -> Result<(String, String), String> {
    let (slo, buckets) = crate::config::slo_of_config(file).map_err(|e| e.to_string())?;
    let words = format!(
        "slo: {}% available, {}% within {}, over {}",
        crate::slo::number(slo.availability),
        crate::slo::number(slo.latency_target),
        crate::slo::prom_duration(slo.latency_threshold),
        crate::slo::prom_duration(slo.period)
    );
    Ok((words, crate::slo::rule_file(&slo.slos(), &buckets)?))
}

/// `alerts.symptoms`: the rule files' alerts and the SLO rules of the config's `slo` section
/// (the sidecar evaluates those without a file) cover the symptoms; SLO alerts copied into a
/// rule file must be those of the configured objective (a stale copy fails, naming it).
fn symptoms_check(plan: &Plan) -> Outcome {
    const GENERATED: &str = "slo (generated from the config)";
    let checks = Checks { expr: &crate::rules::promql::check, template: &crate::rules::template::check };
    let generated = match &plan.slo_rules {
        Some((_, text)) => match rule_file::parse(text, GENERATED, &checks) {
            Ok(groups) => groups,
            Err(errs) => return Outcome::error(format!("the SLO rules of the config do not load: {}", errs[0])),
        },
        None => Vec::new(),
    };
    let (files, file_groups) = if plan.rules.is_empty() && !generated.is_empty() {
        (Vec::new(), Vec::new())
    } else {
        match load_rules(plan) {
            Ok(loaded) => loaded,
            Err(o) => return o,
        }
    };
    let all: Vec<Group> = generated.iter().chain(&file_groups).cloned().collect();
    let mut o = alerts::judge_symptoms(&all);
    if let Some((words, _)) = &plan.slo_rules {
        let stale = alerts::slo_disagreements(&file_groups, &generated);
        if !stale.is_empty() {
            o = Outcome::fail(format!(
                "{} SLO alert(s) of the rule files do not follow the configured objective ({words}): {}",
                stale.len(),
                stale[0]
            ))
            .details(stale);
        }
        o.evidence.push(words.clone());
    }
    o.evidence.extend(files.iter().map(|f| f.display().to_string()));
    o
}

fn load_rules(plan: &Plan) -> Result<(Vec<PathBuf>, Vec<Group>), Outcome> {
    if plan.rules.is_empty() {
        return Err(Outcome::fail("no rule files configured: set `rules` (globs) in the config"));
    }
    let files = crate::rules::engine::rule_files(&plan.rules)
        .map_err(|errs| Outcome::error(errs.iter().map(|e| e.to_string()).collect::<Vec<_>>().join("; ")))?;
    if files.is_empty() {
        return Err(Outcome::fail(format!("the rule globs {} match no file", plan.rules.join(", "))));
    }
    let checks = Checks { expr: &crate::rules::promql::check, template: &crate::rules::template::check };
    let mut groups = Vec::new();
    let mut problems = Vec::new();
    for f in &files {
        match rule_file::load(f, &checks) {
            Ok(g) => groups.extend(g),
            Err(errs) => problems.extend(errs.iter().map(|e| e.to_string())),
        }
    }
    if !problems.is_empty() {
        return Err(Outcome::error(format!("invalid rule files: {}", problems[0]))
            .details(problems)
            .evidence(files.iter().map(|f| f.display().to_string()).collect::<Vec<_>>().join(", ")));
    }
    Ok((files, groups))
}

/// The rule files a promtool unit-test file loads (its `rule_files`, relative to the test file,
/// globs allowed), canonicalised for comparison; `None` when the file is not a test file.
fn tested_rule_files(test: &Path) -> Option<Vec<PathBuf>> {
    #[derive(serde::Deserialize)]
    struct TestFile {
        rule_files: Vec<String>,
    }
    let text = std::fs::read_to_string(test).ok()?;
    let parsed: TestFile = serde_saphyr::from_str(&text).ok()?;
    let dir = test.parent().unwrap_or(Path::new("."));
    let mut out = Vec::new();
    for f in parsed.rule_files {
        let pattern = dir.join(&f).display().to_string();
        for p in glob::glob(&pattern).into_iter().flatten().flatten() {
            out.push(p.canonicalize().unwrap_or(p));
        }
    }
    Some(out)
}

/// Runs the promtool-format unit-test files (`*_test.yml`/`.yaml`) found next to the rule
/// files that load at least one of them; rule files no test loads are named in a warning.
fn alert_tests_check(plan: &Plan) -> Outcome {
    if plan.rules.is_empty() {
        return Outcome::fail("no rule files configured: set `rules` (globs) in the config");
    }
    let files = match crate::rules::engine::rule_files(&plan.rules) {
        Ok(f) => f,
        Err(errs) => return Outcome::error(errs.iter().map(|e| e.to_string()).collect::<Vec<_>>().join("; ")),
    };
    let canonical: Vec<PathBuf> = files.iter().map(|f| f.canonicalize().unwrap_or_else(|_| f.clone())).collect();
    let mut dirs: Vec<PathBuf> = files.iter().map(|f| f.parent().unwrap_or(Path::new("")).to_path_buf()).collect();
    dirs.dedup();
    let mut tests = Vec::new();
    let mut tested: Vec<PathBuf> = Vec::new();
    for dir in dirs {
        let dir = if dir.as_os_str().is_empty() { PathBuf::from(".") } else { dir };
        for ext in ["yml", "yaml"] {
            let pattern = dir.join(format!("*_test.{ext}")).display().to_string();
            for t in glob::glob(&pattern).into_iter().flatten().flatten() {
                let Some(loads) = tested_rule_files(&t) else { continue };
                if loads.iter().any(|l| canonical.contains(l)) && !tests.contains(&t) {
                    tested.extend(loads);
                    tests.push(t);
                }
            }
        }
    }
    let reports: Vec<_> = tests.iter().map(|t| crate::rules::unittest::run_file(t)).collect();
    let mut o = alerts::judge_tests(&reports, files.len());
    let untested: Vec<String> = files
        .iter()
        .zip(&canonical)
        .filter(|(_, c)| !tested.contains(c))
        .map(|(f, _)| f.display().to_string())
        .collect();
    if o.status == crate::readiness::report::Status::Pass && !untested.is_empty() {
        o = Outcome::warn(format!("{}; no unit test loads {}", o.summary, untested.join(", ")));
    }
    o.evidence.extend(tests.iter().map(|t| t.display().to_string()));
    o
}

async fn firing_check(plan: &Plan, client: &reqwest::Client) -> Outcome {
    let (url, query, source): (String, Vec<(&str, String)>, &str) = if let Some(rx) = &plan.readiness.receiver_url {
        (
            format!("{}/api/v1/alerts", rx.0.trim_end_matches('/')),
            vec![("service", plan.service.clone()), ("state", "firing".into())],
            "the receiver",
        )
    } else if let Some(am) = plan.alertmanagers.first() {
        (
            format!("{}/api/v2/alerts", am.trim_end_matches('/')),
            vec![
                ("filter", format!("service={:?}", plan.service)),
                ("active", "true".into()),
                ("silenced", "false".into()),
                ("inhibited", "false".into()),
            ],
            "Alertmanager",
        )
    } else {
        return Outcome::skip("no receiver (readiness.receiver_url) or Alertmanager (alertmanagers) configured");
    };
    let evidence = format!("{url}?{}", query.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join("&"));
    let target = match with_params(&url, &query.iter().map(|(k, v)| (*k, v.as_str())).collect::<Vec<_>>()) {
        Ok(t) => t,
        Err(e) => return Outcome::error(e),
    };
    let mut req = client.get(target);
    if source == "the receiver"
        && let Some(token) = receiver_token()
    {
        req = req.bearer_auth(token);
    }
    let answer = async {
        let r = req.send().await.map_err(|e| format!("GET {url}: {}", error_chain(&e)))?;
        let status = r.status();
        let body = r.text().await.map_err(|e| format!("GET {url}: {e}"))?;
        if !status.is_success() {
            return Err(format!("GET {url}: HTTP {status}: {}", body.chars().take(200).collect::<String>()));
        }
        if source == "the receiver" {
            serde_json::from_str::<firing::ReceiverAnswer>(&body).map(|a| a.alerts)
        } else {
            serde_json::from_str::<Vec<firing::Alert>>(&body)
        }
        .map_err(|e| format!("GET {url}: unexpected answer: {e}"))
    };
    match answer.await {
        Ok(alerts) => firing::judge(&plan.service, plan.namespace.as_deref(), source, &alerts).evidence(evidence),
        Err(e) => Outcome::error(e).evidence(evidence),
    }
}

/// The receiver's Bearer token, from the file `REDLINE_RECEIVER_BEARER_TOKEN_FILE` names (the
/// same variable `redline alerts list` reads).
fn receiver_token() -> Option<String> {
    let path = std::env::var_os("REDLINE_RECEIVER_BEARER_TOKEN_FILE")?;
    std::fs::read_to_string(path).ok().map(|t| t.trim().to_string()).filter(|t| !t.is_empty())
}

async fn canary_check(plan: &Plan, client: &reqwest::Client) -> Outcome {
    let (Some(baseline), Some(canary)) = (&plan.baseline, &plan.canary) else {
        return Outcome::skip("no canary to judge (pass --baseline and --canary versions)");
    };
    let Some(prom) = &plan.readiness.prometheus_url else {
        return Outcome::error("--baseline/--canary need readiness.prometheus_url to query");
    };
    let side = |version: &str| Side {
        service_label: "service".into(),
        service: plan.service.clone(),
        version_label: "version".into(),
        version: version.to_string(),
    };
    let rate_window = plan.rate_window;
    let traffic = &plan.traffic;
    let (b, c) = match (queries(&side(baseline), rate_window, traffic), queries(&side(canary), rate_window, traffic)) {
        (Ok(b), Ok(c)) => (b, c),
        (Err(e), _) | (_, Err(e)) => return Outcome::error(e.to_string()),
    };
    let end = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or(Duration::ZERO).as_secs_f64();
    let start = end - plan.window.as_secs_f64();
    let evidence = format!(
        "{}/api/v1/query_range ({} window, step {:?}, {})",
        prom.0.trim_end_matches('/'),
        humantime::format_duration(plan.window),
        plan.step,
        traffic.describe()
    );
    let mut samples = Vec::new();
    for ((spec, bq), (_, cq)) in b.into_iter().zip(c) {
        let fetched = tokio::try_join!(
            range_query(client, &prom.0, &bq, start, end, plan.step),
            range_query(client, &prom.0, &cq, start, end, plan.step)
        );
        match fetched {
            Ok((baseline, canary)) => samples.push(MetricSamples { spec, baseline, canary }),
            Err(e) => return Outcome::error(e.to_string()).evidence(evidence),
        }
    }
    let report = match judge(&plan.judge, &samples) {
        Ok(r) => r,
        Err(e) => return Outcome::error(e.to_string()).evidence(evidence),
    };
    let details: Vec<String> =
        report.metrics.iter().map(|m| format!("{}: {} ({})", m.name, m.classification.as_str(), m.reason)).collect();
    let summary = format!(
        "canary {canary} vs baseline {baseline}: {} (score {:.0}): {}",
        verdict_name(report.verdict),
        report.score,
        report.summary
    );
    let series = samples
        .into_iter()
        .zip(&report.metrics)
        .map(|(s, m)| MetricSeries {
            name: m.name.clone(),
            classification: m.classification.as_str(),
            baseline: s.baseline,
            canary: s.canary,
        })
        .collect();
    let o = if report.verdict == Verdict::Pass { Outcome::pass(summary) } else { Outcome::fail(summary) };
    o.evidence(evidence).details(details).series(series)
}

fn verdict_name(v: Verdict) -> &'static str {
    match v {
        Verdict::Pass => "pass",
        Verdict::Marginal => "marginal",
        Verdict::Fail => "fail",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{CoverageConfig, LogsSampleConfig};

    fn plan(readiness: ReadinessConfig) -> Plan {
        let file = FileConfig { readiness: Some(readiness), ..FileConfig::default() };
        Plan::new("checkout", file, "redline.yaml", Options::default()).expect("valid plan")
    }

    #[test]
    fn a_bad_judge_configuration_is_a_usage_error_naming_the_flag() {
        let options =
            Options { judge: JudgeConfig { tolerance: f64::NAN, ..JudgeConfig::default() }, ..Options::default() };
        let e = Plan::new("checkout", FileConfig::default(), "redline.yaml", options).err().expect("refused");
        assert_eq!(e.0, "--tolerance must be a non-negative number, got NaN");
    }

    /// alerts.symptoms counts the SLO rules of the config's `slo` (the sidecar evaluates them
    /// with no file) and fails on a rule file whose SLO alerts are another objective's.
    #[test]
    fn alerts_symptoms_follow_the_configured_slo() {
        let with = |slo: &str, rules: Vec<String>| {
            let mut file = crate::config::parse_file(slo, "redline.yaml").expect("config");
            file.rules = Some(rules);
            Plan::new("checkout", file, "redline.yaml", Options::default()).expect("valid plan")
        };
        let slo = "slo: {availability: 99.5, latency: {threshold: 500ms, target: 95}}\n";
        // The shipped file is the default objective's (99.9%, 300ms): stale for this one.
        let o = symptoms_check(&with(slo, vec!["rules/redline-slo.yml".into()]));
        assert_eq!(o.status, crate::readiness::report::Status::Fail, "{o:?}");
        assert!(o.summary.starts_with("8 SLO alert(s) of the rule files do not follow the configured objective (slo: 99.5% available, 95% within 500ms, over 30d)"), "{}", o.summary);
        assert!(o.details[0].starts_with("rules/redline-slo.yml:"), "{:?}", o.details);
        // The same objective's rules agree; the default objective agrees with the shipped file.
        let dir = tempfile::tempdir().expect("temp dir");
        let (_, text) = slo_rules(crate::config::parse_file(slo, "redline.yaml").expect("config")).expect("rules");
        let path = dir.path().join("slo.yml");
        std::fs::write(&path, text).expect("write");
        let o = symptoms_check(&with(slo, vec![path.display().to_string()]));
        assert!(!o.summary.contains("do not follow"), "{o:?}");
        let o = symptoms_check(&with("slo: {}\n", vec!["rules/redline-slo.yml".into()]));
        assert!(!o.summary.contains("do not follow"), "{o:?}");
        // No rule file at all: the generated SLO rules are the rules.
        let o = symptoms_check(&with(slo, Vec::new()));
        assert!(o.evidence.iter().any(|e| e.starts_with("slo: 99.5% available")), "{o:?}");
        assert!(o.details.iter().any(|d| d.starts_with("error ratio: RedlineAvailabilityBudgetBurn1h")), "{o:?}");
        assert!(
            o.details.iter().any(|d| d.starts_with("latency: RedlineAvailabilityBudgetBurn1h")
                || d.contains("RedlineLatencyBudgetBurn1h")),
            "{o:?}"
        );
    }

    #[test]
    fn input_files_that_cannot_be_opened_are_configuration_errors_naming_key_and_flag() {
        let dir = tempfile::tempdir().expect("temp dir");
        let report = dir.path().join("lcov.info");
        std::fs::write(&report, "SF:a.c\nDA:1,1\nend_of_record\n").expect("write");
        let missing = dir.path().join("lcov.inf");
        let coverage = |p: &Path| ReadinessConfig {
            coverage: Some(CoverageConfig { report: Some(p.to_path_buf()), min: None }),
            ..ReadinessConfig::default()
        };
        assert!(plan(coverage(&report)).check_inputs(&Selection::default()).is_ok());
        let e = plan(coverage(&missing)).check_inputs(&Selection::default()).expect_err("missing").0;
        assert!(
            e.starts_with(&format!(
                "readiness.coverage.report (--coverage-report) {}: cannot read:",
                missing.display()
            )),
            "{e}"
        );
        // A check that does not run does not need its file.
        let skip = Selection::new(Vec::new(), vec!["tests.coverage".into()]).expect("ids");
        assert!(plan(coverage(&missing)).check_inputs(&skip).is_ok());
        let logs = ReadinessConfig {
            logs: Some(LogsSampleConfig { file: Some(missing.clone()), sample: None }),
            dashboards: Some(dir.path().to_path_buf()),
            ..ReadinessConfig::default()
        };
        let e = plan(logs).check_inputs(&Selection::default()).expect_err("missing log").0;
        assert!(e.starts_with("readiness.logs.file (--logs-file)"), "{e}");
        let dashboards = ReadinessConfig { dashboards: Some(missing), ..ReadinessConfig::default() };
        let e = plan(dashboards).check_inputs(&Selection::default()).expect_err("missing dashboards").0;
        assert!(e.starts_with("readiness.dashboards (--dashboards)"), "{e}");
    }
}
