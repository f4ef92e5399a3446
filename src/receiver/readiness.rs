//! The full readiness checklist behind the receiver's gates: finds a service's sidecar config
//! under `--readiness-config` and runs the checklist, answering `alerts.firing` from the store.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Serialize;

use super::gates::{self, CanarySelector};
use super::store::Store;
use crate::canary::judge::JudgeConfig;
use crate::canary::prometheus::{Protocol, Traffic};
use crate::config::FileConfig;
use crate::readiness::checklist::{self, Options, Plan, Selection, UsageError};
use crate::readiness::report::{Outcome, Report, Status};

/// Where the receiver finds each service's sidecar config (its `readiness` section).
#[derive(Debug, Clone)]
pub enum ConfigSource {
    /// No `--readiness-config`: the gates judge firing alerts only.
    None,
    /// One config file, for the service its `service` key names.
    File(PathBuf),
    /// A directory of `<service>.yaml` (or `.yml`) files.
    Dir(PathBuf),
}

impl ConfigSource {
    pub fn new(path: Option<&Path>) -> Result<ConfigSource, String> {
        let Some(path) = path else { return Ok(ConfigSource::None) };
        match std::fs::metadata(path) {
            Ok(m) if m.is_dir() => Ok(ConfigSource::Dir(path.to_path_buf())),
            Ok(_) => {
                crate::config::read_file(path).map_err(|e| format!("--readiness-config: {e}"))?;
                Ok(ConfigSource::File(path.to_path_buf()))
            }
            Err(e) => Err(format!(
                "--readiness-config {}: cannot read: {e} (expected a sidecar config file or a directory of <service>.yaml files)",
                path.display()
            )),
        }
    }

    pub fn describe(&self) -> String {
        match self {
            ConfigSource::None => "none".into(),
            ConfigSource::File(p) => format!("file {}", p.display()),
            ConfigSource::Dir(p) => format!("directory {}", p.display()),
        }
    }

    /// The config for `service` and the path it came from; `Ok(None)` when there is none.
    /// Read on every request, so a changed file counts without a restart.
    fn config_for(&self, service: &str) -> Result<Option<(FileConfig, String)>, String> {
        let path = match self {
            ConfigSource::None => return Ok(None),
            ConfigSource::File(p) => p.clone(),
            ConfigSource::Dir(dir) => {
                if !is_plain_name(service) {
                    return Ok(None);
                }
                match ["yaml", "yml"].iter().map(|ext| dir.join(format!("{service}.{ext}"))).find(|p| p.is_file()) {
                    Some(p) => p,
                    None => return Ok(None),
                }
            }
        };
        let file = crate::config::read_file(&path).map_err(|e| e.to_string())?;
        let origin = path.display().to_string();
        match (&file.service, self) {
            (Some(named), _) if named != service => match self {
                ConfigSource::File(_) => Ok(None),
                _ => Err(format!("config file {origin}: service: names {named:?}, but the file is for {service:?}")),
            },
            (None, ConfigSource::File(_)) => Ok(None),
            _ => Ok(Some((file, origin))),
        }
    }
}

/// A service name usable as a file name: no separators, no leading dot.
fn is_plain_name(s: &str) -> bool {
    !s.is_empty() && !s.starts_with('.') && s.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
}

/// What a gate was asked: the canary (service, namespace, version) and how to judge it.
#[derive(Debug, Clone)]
pub struct GateRequest {
    pub selector: CanarySelector,
    pub options: Options,
    pub selection: Selection,
}

impl GateRequest {
    /// From query parameters (`GET /api/v1/readiness/{service}`) or Flagger's `metadata`:
    /// `namespace`, `version`, `baseline`, `canary`, `window`, `step`, `only`, `skip`.
    pub fn from_params(
        service: String,
        namespace: Option<String>,
        params: &BTreeMap<String, String>,
        timeout: Duration,
    ) -> Result<GateRequest, String> {
        let get = |k: &str| params.get(k).map(|v| v.trim()).filter(|v| !v.is_empty());
        let duration = |k: &str, default: Duration| match get(k) {
            Some(v) => {
                humantime::parse_duration(v).map_err(|e| format!("{k}: expected a duration like 30m, got {v:?}: {e}"))
            }
            None => Ok(default),
        };
        let list = |k: &str| get(k).map(|v| v.split(',').map(|s| s.trim().to_string()).collect()).unwrap_or_default();
        let defaults = Options::default();
        let protocol = match get("protocol") {
            None | Some("http") => Protocol::Http,
            Some("grpc") => Protocol::Grpc,
            Some(other) => return Err(format!("protocol: expected http or grpc, got {other:?}")),
        };
        let rpc_method = get("rpc_method").map(str::to_string);
        if rpc_method.is_some() && protocol != Protocol::Grpc {
            return Err("rpc_method: selects gRPC methods, it needs protocol=grpc".to_string());
        }
        let judge = Self::judge_params(&get)?;
        let options = Options {
            baseline: get("baseline").map(str::to_string),
            canary: get("canary").map(str::to_string),
            window: duration("window", defaults.window)?,
            step: duration("step", defaults.step)?,
            rate_window: duration("rate_window", defaults.rate_window)?,
            traffic: Traffic { protocol, rpc_method },
            judge,
            timeout,
        };
        let selection = Selection::new(list("only"), list("skip")).map_err(|e| e.to_string())?;
        let selector = CanarySelector {
            service,
            namespace: get("namespace").map(str::to_string).or(namespace),
            version: get("version").map(str::to_string),
        };
        Ok(GateRequest { selector, options, selection })
    }
}

impl GateRequest {
    /// The judge's parameters, named as `canary judge`'s flags with `_` for `-`: `confidence`,
    /// `tolerance`, `min_samples`, `pass_threshold`, `marginal_threshold`.
    fn judge_params<'a>(get: &impl Fn(&str) -> Option<&'a str>) -> Result<JudgeConfig, String> {
        let mut judge = JudgeConfig::default();
        for (key, field) in [
            ("confidence", &mut judge.confidence),
            ("tolerance", &mut judge.tolerance),
            ("pass_threshold", &mut judge.pass_threshold),
            ("marginal_threshold", &mut judge.marginal_threshold),
        ] {
            if let Some(v) = get(key) {
                *field = v.parse().map_err(|_| format!("{key}: expected a number, got {v:?}"))?;
            }
        }
        if let Some(v) = get("min_samples") {
            judge.min_samples = v.parse().map_err(|_| format!("min_samples: expected a whole number, got {v:?}"))?;
        }
        judge
            .validate()
            .map_err(|e| format!("{}: {}", e.field.trim_start_matches("--").replace('-', "_"), e.message))?;
        Ok(judge)
    }
}

/// The gates' answer: the readiness report (docs/readiness.md schema) plus one line per
/// blocking failure, the reason a 403 gives.
#[derive(Debug, Clone, Serialize)]
pub struct GateAnswer {
    #[serde(flatten)]
    pub report: Report,
    pub reasons: Vec<String>,
}

/// The latest gate answer per service, kept in memory for the receiver's page (`ui`): what
/// the last readiness request or promotion gate found, and when. Bounded: past
/// [`LatestReports::MAX`] services the oldest answer goes (the gates are unauthenticated, so
/// anyone can name a service).
#[derive(Default)]
pub struct LatestReports {
    by_service: std::sync::Mutex<BTreeMap<String, (i64, GateAnswer)>>,
}

impl LatestReports {
    pub const MAX: usize = 1000;

    /// Keeps `answer` as the service's latest, received at `at` (Unix nanoseconds).
    pub fn record(&self, answer: &GateAnswer, at: i64) {
        let Ok(mut map) = self.by_service.lock() else { return };
        map.insert(answer.report.service.clone(), (at, answer.clone()));
        while map.len() > Self::MAX {
            let Some(oldest) = map.iter().min_by_key(|(_, (t, _))| *t).map(|(k, _)| k.clone()) else { break };
            map.remove(&oldest);
        }
    }

    pub fn get(&self, service: &str) -> Option<(i64, GateAnswer)> {
        self.by_service.lock().ok()?.get(service).cloned()
    }

    /// Every service with a report, and whether it was ready.
    pub fn services(&self) -> Vec<(String, bool)> {
        self.by_service
            .lock()
            .map(|m| m.iter().map(|(k, (_, a))| (k.clone(), a.report.ready)).collect())
            .unwrap_or_default()
    }
}

/// A request the checklist cannot run as asked (bad parameters, broken config file).
#[derive(Debug, thiserror::Error)]
pub enum GateError {
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    Config(String),
}

/// Runs the checklist for the canary `req` names. Without a config for the service only
/// `alerts.firing` runs; the report says so for every other check.
pub async fn evaluate(store: &Store, source: &ConfigSource, req: &GateRequest) -> Result<GateAnswer, GateError> {
    let service = &req.selector.service;
    let firing = firing_outcome(store, &req.selector).await;
    let found = source.config_for(service).map_err(GateError::Config)?;
    let configured = found.is_some();
    let (file, origin) = found.unwrap_or_else(|| (FileConfig::default(), "(no readiness config)".into()));
    let plan = Plan::new(service, file, &origin, req.options.clone())
        .map_err(|UsageError(e)| if configured { GateError::Config(e) } else { GateError::BadRequest(e) })?;
    let selection = if configured {
        req.selection.clone()
    } else {
        Selection { only: vec!["alerts.firing".into()], skip: req.selection.skip.clone() }
    };
    plan.check_inputs(&selection).map_err(|UsageError(e)| GateError::Config(e))?;
    let client = plan.client().map_err(|UsageError(e)| GateError::Config(e))?;
    let mut report = checklist::run(&plan, &selection, &client, Some(firing)).await;
    if !configured {
        let why = format!(
            "no readiness config for service {service:?} (receiver --readiness-config: {}); only alerts.firing is judged",
            source.describe()
        );
        for c in report.checks.iter_mut().filter(|c| c.status == Status::Skip && c.id != "alerts.firing") {
            c.summary.clone_from(&why);
        }
    }
    let reasons = report
        .checks
        .iter()
        .filter(|c| c.blocks && c.status.is_failure())
        .map(|c| format!("{}: {}", c.id, c.summary))
        .collect();
    Ok(GateAnswer { report, reasons })
}

/// `alerts.firing` from the receiver's own store: no network hop, same matching as the gates.
async fn firing_outcome(store: &Store, sel: &CanarySelector) -> Outcome {
    let evidence = format!("receiver store ({}): firing alerts with severity=critical", store.kind());
    match gates::firing_critical(store, sel).await {
        Ok(firing) if firing.is_empty() => {
            Outcome::pass(format!("no critical alert firing for {}", sel.describe())).evidence(evidence)
        }
        Ok(firing) => {
            let details = firing.iter().map(|a| format!("{} {:?}", a.alertname, a.labels)).collect();
            Outcome::fail(gates::reason(sel, &firing)).evidence(evidence).details(details)
        }
        Err(e) => Outcome::error(format!("cannot query the alert store: {e}")).evidence(evidence),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn gate_parameters_are_parsed_and_checked() {
        let t = Duration::from_secs(5);
        let r = GateRequest::from_params(
            "checkout".into(),
            Some("shop".into()),
            &params(&[("baseline", "1.0"), ("canary", "1.1"), ("window", "10m"), ("only", "canary,alerts.firing")]),
            t,
        )
        .expect("valid");
        assert_eq!(r.selector.namespace.as_deref(), Some("shop"));
        assert_eq!(r.options.window, Duration::from_secs(600));
        assert_eq!(r.options.canary.as_deref(), Some("1.1"));
        assert_eq!(r.selection.only, ["canary", "alerts.firing"]);
        let e = GateRequest::from_params("c".into(), None, &params(&[("window", "soon")]), t).expect_err("bad");
        assert!(e.starts_with("window: expected a duration"), "{e}");
        let e = GateRequest::from_params("c".into(), None, &params(&[("only", "coverage")]), t).expect_err("bad");
        assert!(e.contains("unknown check \"coverage\""), "{e}");
        assert_eq!(r.options.traffic, Traffic::http());
        assert_eq!(r.options.judge, JudgeConfig::default());
    }

    #[test]
    fn the_judge_parameters_are_canary_judges_flags() {
        let t = Duration::from_secs(5);
        let p = params(&[
            ("confidence", "0.95"),
            ("tolerance", "0.5"),
            ("min_samples", "20"),
            ("pass_threshold", "90"),
            ("marginal_threshold", "60"),
        ]);
        let r = GateRequest::from_params("checkout".into(), None, &p, t).expect("valid");
        let want = JudgeConfig {
            confidence: 0.95,
            tolerance: 0.5,
            min_samples: 20,
            pass_threshold: 90.0,
            marginal_threshold: 60.0,
            ..JudgeConfig::default()
        };
        assert_eq!(r.options.judge, want);
        for (key, value, error) in [
            ("tolerance", "-1", "tolerance: must be a non-negative number, got -1"),
            ("tolerance", "wide", "tolerance: expected a number, got \"wide\""),
            ("confidence", "1.5", "confidence: must be between 0 and 1 (exclusive), got 1.5"),
            ("min_samples", "0", "min_samples: must be at least 1"),
            ("min_samples", "-3", "min_samples: expected a whole number, got \"-3\""),
        ] {
            let e = GateRequest::from_params("c".into(), None, &params(&[(key, value)]), t).expect_err("bad");
            assert_eq!(e, error);
        }
    }

    #[test]
    fn a_grpc_canary_is_judged_on_the_rpc_histogram_of_the_methods_asked_for() {
        let t = Duration::from_secs(5);
        let p = params(&[
            ("baseline", "1.0"),
            ("canary", "1.1"),
            ("protocol", "grpc"),
            ("rpc_method", "shop\\.Checkout/.*"),
        ]);
        let r = GateRequest::from_params("checkout".into(), None, &p, t).expect("valid");
        assert_eq!(r.options.traffic, Traffic::grpc(Some("shop\\.Checkout/.*")));
        let r = GateRequest::from_params("checkout".into(), None, &params(&[("protocol", "grpc")]), t).expect("valid");
        assert_eq!(r.options.traffic, Traffic::grpc(None));
        let e = GateRequest::from_params("c".into(), None, &params(&[("protocol", "thrift")]), t).expect_err("bad");
        assert_eq!(e, "protocol: expected http or grpc, got \"thrift\"");
        let e = GateRequest::from_params("c".into(), None, &params(&[("rpc_method", "a/b")]), t).expect_err("bad");
        assert!(e.starts_with("rpc_method:"), "{e}");
    }

    #[test]
    fn service_names_never_leave_the_config_directory() {
        assert!(is_plain_name("checkout-v2.1_a"));
        for bad in ["", "..", ".hidden", "a/b", "../etc/passwd", "a\\b", "a b"] {
            assert!(!is_plain_name(bad), "{bad:?}");
        }
    }

    #[test]
    fn a_directory_holds_one_config_per_service() {
        let dir = std::env::temp_dir().join(format!("redline-readiness-cfg-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("mkdir");
        std::fs::write(dir.join("checkout.yaml"), "service: checkout\nnamespace: shop\n").expect("write");
        std::fs::write(dir.join("cart.yml"), "namespace: shop\n").expect("write");
        std::fs::write(dir.join("wrong.yaml"), "service: other\n").expect("write");
        let src = ConfigSource::new(Some(&dir)).expect("dir");
        let (cfg, origin) = src.config_for("checkout").expect("ok").expect("found");
        assert_eq!(cfg.namespace.as_deref(), Some("shop"));
        assert!(origin.ends_with("checkout.yaml"));
        assert!(src.config_for("cart").expect("ok").is_some(), ".yml and no service key");
        assert!(src.config_for("payments").expect("ok").is_none());
        assert!(src.config_for("../checkout").expect("ok").is_none());
        let e = src.config_for("wrong").expect_err("mismatch");
        assert!(e.contains("names \"other\""), "{e}");
        let file = ConfigSource::new(Some(&dir.join("checkout.yaml"))).expect("file");
        assert!(file.config_for("checkout").expect("ok").is_some());
        assert!(file.config_for("cart").expect("ok").is_none(), "a single file serves its own service only");
        std::fs::remove_dir_all(&dir).ok();
    }
}
