//! deploy/: every file checked by the real tool that reads it, and every port, path and file
//! the manifests wire to redline checked against the real binary.
//!
//! - promtool: the PrometheusRule's groups (which must equal the rule files in rules/) and the
//!   compose stack's prometheus.yml with its rule files mounted as in the container;
//! - amtool: every Alertmanager config;
//! - redline itself: the sidecar and the receiver started from the Kubernetes manifests and
//!   from the compose file (their args, env, working directory and mounted ConfigMaps, Secrets
//!   and files), ports moved to loopback; probes, rules API, proxy, SIGTERM drain;
//! - kubernetes-validate (PyPI; the Kubernetes OpenAPI schemas) for core kinds, the CRD
//!   schemas of Argo Rollouts and prometheus-operator (npm kubernetes-models) for theirs;
//! - check-jsonschema with the compose-spec schema for compose.yaml, hadolint for the Dockerfile.

use crate::common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{Upstream, client, free_port, redline_bin, require_tool, run_ok};
use serde_json::{Value, json};

fn repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn yaml(text: &str, origin: &str) -> Value {
    serde_saphyr::from_str::<Value>(text).unwrap_or_else(|e| panic!("{origin}: not YAML: {e}"))
}

/// The documents of a (multi-document) YAML file of the repository.
fn yaml_docs(path: &str) -> Vec<Value> {
    let text = read(&repo(path));
    text.split("\n---\n").map(|doc| yaml(doc, path)).filter(|d| !d.is_null()).collect()
}

/// Every document of every manifest under deploy/kubernetes, deploy/argo and deploy/flagger.
fn all_manifests() -> Vec<(String, Value)> {
    let mut out = Vec::new();
    for dir in ["deploy/kubernetes", "deploy/argo", "deploy/flagger"] {
        let mut files: Vec<PathBuf> = std::fs::read_dir(repo(dir))
            .unwrap_or_else(|e| panic!("{dir}: {e}"))
            .map(|e| e.expect("dir entry").path())
            .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
            .collect();
        files.sort();
        for f in files {
            let rel = f.strip_prefix(repo("")).expect("in repo").display().to_string();
            out.extend(yaml_docs(&rel).into_iter().map(|d| (rel.clone(), d)));
        }
    }
    out
}

fn find<'a>(docs: &'a [Value], kind: &str, name: &str) -> &'a Value {
    docs.iter()
        .find(|d| d["kind"] == kind && d["metadata"]["name"] == name)
        .unwrap_or_else(|| panic!("no {kind} {name} in the manifests"))
}

/// A namespaced resource as a pod in `namespace` sees it.
fn find_in<'a>(docs: &'a [Value], kind: &str, name: &str, namespace: &str) -> &'a Value {
    docs.iter()
        .find(|d| d["kind"] == kind && d["metadata"]["name"] == name && d["metadata"]["namespace"] == namespace)
        .unwrap_or_else(|| panic!("no {kind} {name} in namespace {namespace}"))
}

fn kubernetes_docs() -> Vec<Value> {
    all_manifests().into_iter().map(|(_, d)| d).collect()
}

/// The rule files of rules/ (not the `*_test.yml` unit tests), sorted as a shell glob sorts.
/// Hidden files are skipped as `rules/*.yml` skips them (rules_cli's tests write mutated
/// copies there, `.mutated-*.yml`, while these tests run).
fn rule_files() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(repo("rules"))
        .expect("rules/")
        .map(|e| e.expect("dir entry").path())
        .filter(|p| {
            let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
            !name.starts_with('.') && name.ends_with(".yml") && !name.ends_with("_test.yml")
        })
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no rule files in rules/");
    files
}

fn rule_groups(text: &str, origin: &str) -> Vec<Value> {
    yaml(text, origin)["groups"].as_array().unwrap_or_else(|| panic!("{origin}: no groups")).clone()
}

fn group_names(groups: &[Value]) -> BTreeSet<String> {
    groups.iter().filter_map(|g| g["name"].as_str().map(String::from)).collect()
}

/// Calls `f` on `v` and on every value nested in it.
fn walk(v: &Value, f: &mut impl FnMut(&Value)) {
    f(v);
    match v {
        Value::Array(a) => a.iter().for_each(|x| walk(x, f)),
        Value::Object(o) => o.values().for_each(|x| walk(x, f)),
        _ => {}
    }
}

fn str_of<'a>(v: &'a Value, what: &str) -> &'a str {
    v.as_str().unwrap_or_else(|| panic!("{what}: expected a string, got {v}"))
}

fn array_of<'a>(v: &'a Value, what: &str) -> &'a Vec<Value> {
    v.as_array().unwrap_or_else(|| panic!("{what}: expected a list, got {v}"))
}

/// The port of `host:port` or of a URL's authority.
fn port_of(addr: &str) -> u16 {
    let authority = addr.split("://").last().unwrap_or(addr).split('/').next().unwrap_or("");
    authority.rsplit(':').next().and_then(|p| p.parse().ok()).unwrap_or_else(|| panic!("no port in {addr:?}"))
}

fn host_of(url: &str) -> &str {
    let authority = url.split("://").last().unwrap_or(url).split('/').next().unwrap_or("");
    authority.rsplit_once(':').map_or(authority, |(h, _)| h)
}

fn path_of(url: &str) -> String {
    let rest = url.split("://").last().unwrap_or(url);
    rest.find('/').map_or("/".into(), |i| rest[i..].split('?').next().unwrap_or("/").to_string())
}

// ---------------------------------------------------------------------------------------------
// A container's file system, as the pod or compose service would lay it out.

/// Where a container path lives in the temp dir that stands for the container's file system.
fn host(root: &Path, container_path: &str) -> PathBuf {
    root.join(container_path.trim_start_matches('/'))
}

/// Replaces container paths in an argument (`/etc/x`, `--flag=/etc/x`) by their place under `root`.
fn map_arg(arg: &str, root: &Path) -> String {
    match arg.split_once("=/") {
        Some((flag, path)) if flag.starts_with("--") => format!("{flag}={}", host(root, path).display()),
        _ if arg.starts_with('/') => host(root, arg).display().to_string(),
        _ => arg.to_string(),
    }
}

fn write_file(path: &Path, content: &[u8]) {
    std::fs::create_dir_all(path.parent().expect("parent dir")).expect("create dir");
    std::fs::write(path, content).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
}

/// The keys of a ConfigMap or Secret (`items` selects and places them) written into `dir`.
fn write_keys(data: &BTreeMap<String, Vec<u8>>, items: &Value, dir: &Path, what: &str) {
    match items.as_array() {
        Some(items) => {
            for item in items {
                let key = str_of(&item["key"], "items[].key");
                let content = data.get(key).unwrap_or_else(|| panic!("{what} has no key {key}"));
                write_file(&dir.join(str_of(&item["path"], "items[].path")), content);
            }
        }
        None => data.iter().for_each(|(k, v)| write_file(&dir.join(k), v)),
    }
}

fn config_map_data(docs: &[Value], name: &str, namespace: &str) -> BTreeMap<String, Vec<u8>> {
    let cm = find_in(docs, "ConfigMap", name, namespace);
    let data = cm["data"].as_object().unwrap_or_else(|| panic!("ConfigMap {name} has no data"));
    data.iter().map(|(k, v)| (k.clone(), str_of(v, k).as_bytes().to_vec())).collect()
}

fn secret_data(docs: &[Value], name: &str, namespace: &str) -> BTreeMap<String, Vec<u8>> {
    use base64::Engine;
    let secret = find_in(docs, "Secret", name, namespace);
    let mut out = BTreeMap::new();
    if let Some(data) = secret["data"].as_object() {
        for (k, v) in data {
            let bytes = base64::engine::general_purpose::STANDARD.decode(str_of(v, k)).expect("base64 Secret data");
            out.insert(k.clone(), bytes);
        }
    }
    if let Some(data) = secret["stringData"].as_object() {
        out.extend(data.iter().map(|(k, v)| (k.clone(), str_of(v, k).as_bytes().to_vec())));
    }
    out
}

/// Lays out what the volumes of a pod in `namespace` show at `container`'s mount paths under `root`.
fn mount_pod_volumes(docs: &[Value], namespace: &str, pod: &Value, container: &Value, root: &Path) {
    let volumes = array_of(&pod["volumes"], "pod volumes");
    for mount in container["volumeMounts"].as_array().into_iter().flatten() {
        let name = str_of(&mount["name"], "volumeMounts[].name");
        let volume = volumes.iter().find(|v| v["name"] == name).unwrap_or_else(|| panic!("no volume {name}"));
        let dir = host(root, str_of(&mount["mountPath"], "mountPath"));
        std::fs::create_dir_all(&dir).expect("mount dir");
        let mut sources = vec![volume.clone()];
        if let Some(projected) = volume["projected"]["sources"].as_array() {
            sources = projected.clone();
        }
        for source in sources {
            if source["configMap"].is_object() {
                let cm = str_of(&source["configMap"]["name"], "configMap.name");
                write_keys(&config_map_data(docs, cm, namespace), &source["configMap"]["items"], &dir, cm);
            } else if source["secret"].is_object() {
                let s = str_of(&source["secret"]["secretName"], "secret.secretName");
                write_keys(&secret_data(docs, s, namespace), &source["secret"]["items"], &dir, s);
            } else {
                let known = ["persistentVolumeClaim", "emptyDir"];
                assert!(known.iter().any(|k| source[k].is_object()), "volume {name}: unsupported source {source}");
            }
        }
    }
}

/// A CPU quantity ("1", "500m") rounded up to whole cores, as `resourceFieldRef` presents it.
fn whole_cpus(q: &str) -> u64 {
    match q.strip_suffix('m') {
        Some(milli) => milli.parse::<u64>().map(|m| m.div_ceil(1000)).expect("CPU millis"),
        None => q.parse::<f64>().map(|c| c.ceil() as u64).expect("CPU quantity"),
    }
}

/// The container's environment as the kubelet sets it (downward API included).
fn pod_env(container: &Value, labels: &Value, namespace: &str, pod_name: &str) -> Vec<(String, String)> {
    let mut env = Vec::new();
    for e in container["env"].as_array().into_iter().flatten() {
        let name = str_of(&e["name"], "env[].name").to_string();
        let value = if let Some(v) = e["value"].as_str() {
            v.to_string()
        } else if let Some(path) = e["valueFrom"]["fieldRef"]["fieldPath"].as_str() {
            match path {
                "metadata.name" => pod_name.to_string(),
                "metadata.namespace" => namespace.to_string(),
                _ => {
                    let label = path
                        .strip_prefix("metadata.labels['")
                        .and_then(|l| l.strip_suffix("']"))
                        .unwrap_or_else(|| panic!("env {name}: unsupported fieldPath {path}"));
                    str_of(&labels[label], &format!("pod label {label}")).to_string()
                }
            }
        } else if let Some(resource) = e["valueFrom"]["resourceFieldRef"]["resource"].as_str() {
            assert_eq!(resource, "limits.cpu", "env {name}: unsupported resourceFieldRef");
            whole_cpus(str_of(&container["resources"]["limits"]["cpu"], "limits.cpu")).to_string()
        } else {
            panic!("env {name}: unsupported source {e}");
        };
        env.push((name, value));
    }
    env
}

/// Copies a file or directory tree.
fn copy_tree(from: &Path, to: &Path) {
    if from.is_dir() {
        std::fs::create_dir_all(to).expect("create dir");
        for entry in std::fs::read_dir(from).expect("read dir") {
            let entry = entry.expect("dir entry");
            copy_tree(&entry.path(), &to.join(entry.file_name()));
        }
    } else {
        write_file(to, &std::fs::read(from).unwrap_or_else(|e| panic!("{}: {e}", from.display())));
    }
}

fn compose() -> Value {
    yaml_docs("deploy/compose/compose.yaml").remove(0)
}

fn compose_service<'a>(compose: &'a Value, name: &str) -> &'a Value {
    let s = &compose["services"][name];
    assert!(s.is_object(), "compose.yaml has no service {name}");
    s
}

/// The compose service's volumes: (source relative to compose.yaml or volume name, target).
fn compose_mounts(service: &Value) -> Vec<(String, String)> {
    service["volumes"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|v| {
            let parts: Vec<&str> = str_of(v, "volume").split(':').collect();
            assert!(parts.len() >= 2, "volume {v}: expected source:target[:mode]");
            (parts[0].to_string(), parts[1].to_string())
        })
        .collect()
}

/// Lays out the compose service's bind mounts (copies of the repository's files) and named
/// volumes (empty directories) under `root`.
fn mount_compose_volumes(service: &Value, root: &Path) {
    for (source, target) in compose_mounts(service) {
        if source.starts_with('.') || source.starts_with('/') {
            let from = repo("deploy/compose").join(&source);
            assert!(from.exists(), "compose mounts {source}, which does not exist");
            copy_tree(&from, &host(root, &target));
        } else {
            std::fs::create_dir_all(host(root, &target)).expect("volume dir");
        }
    }
}

/// The compose service's file system laid out under `root`, and where its `--config.file` is.
fn mounted_config_file(service: &Value, root: &Path) -> PathBuf {
    mount_compose_volumes(service, root);
    compose_command(service)
        .iter()
        .find_map(|a| a.strip_prefix("--config.file=").map(|p| host(root, p)))
        .expect("--config.file")
}

/// A temp dir standing for the compose service's container: its mounts laid out under `root`
/// (returned too) and its command with container paths mapped there.
fn compose_container(service: &Value) -> (tempfile::TempDir, PathBuf, Vec<String>) {
    let dir = tempfile::tempdir().expect("temp dir");
    let root = dir.path().join("container");
    mount_compose_volumes(service, &root);
    let args = compose_command(service).iter().map(|a| map_arg(a, &root)).collect();
    (dir, root, args)
}

/// The value of `--NAME=VALUE` among `args`.
fn flag_value(args: &[String], name: &str) -> String {
    let prefix = format!("--{name}=");
    args.iter()
        .find_map(|a| a.strip_prefix(&prefix).map(String::from))
        .unwrap_or_else(|| panic!("no {prefix} argument"))
}

fn compose_command(service: &Value) -> Vec<String> {
    array_of(&service["command"], "command").iter().map(|a| str_of(a, "command").to_string()).collect()
}

/// The container side of the service's published ports.
fn compose_ports(service: &Value) -> BTreeSet<u16> {
    service["ports"].as_array().into_iter().flatten().map(|p| port_of(str_of(p, "ports[]"))).collect()
}

// ---------------------------------------------------------------------------------------------
// The real redline binary, started as a container would start it.

struct Process {
    child: Child,
    stderr: PathBuf,
    _dir: tempfile::TempDir,
}

impl Process {
    /// `args` and `env` as the container has them; `cwd` is the container's working directory.
    fn start(args: &[String], env: &[(String, String)], cwd: &Path, dir: tempfile::TempDir) -> Process {
        let stderr = dir.path().join("stderr");
        let child = Command::new(redline_bin())
            .args(args)
            .env_clear()
            .envs(env.iter().map(|(k, v)| (k, v)))
            .current_dir(cwd)
            .stdout(std::fs::File::create(dir.path().join("stdout")).expect("stdout file"))
            .stderr(std::fs::File::create(&stderr).expect("stderr file"))
            .spawn()
            .expect("spawn redline");
        Process { child, stderr, _dir: dir }
    }

    fn stderr(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }

    /// Polls `url` until it answers `status`, failing if the process exits first.
    async fn wait_for(&mut self, url: &str, status: u16) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(r) = client().get(url).send().await
                && r.status() == status
            {
                return;
            }
            if let Ok(Some(exit)) = self.child.try_wait() {
                panic!("redline exited ({exit}) before {url} answered {status}:\n{}", self.stderr());
            }
            assert!(Instant::now() < deadline, "{url} did not answer {status} within 30s:\n{}", self.stderr());
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// SIGTERM, then the time until the process exited successfully.
    async fn terminate(&mut self, limit: Duration) -> Duration {
        let pid = nix::unistd::Pid::from_raw(self.child.id() as i32);
        nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).expect("SIGTERM");
        let start = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                assert!(status.success(), "redline exited with {status} after SIGTERM:\n{}", self.stderr());
                return start.elapsed();
            }
            assert!(start.elapsed() < limit, "redline did not exit within {limit:?} of SIGTERM");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Ports and paths of a sidecar container as its deployment wires them.
struct SidecarWiring {
    /// Readiness and liveness probe paths.
    probes: Vec<String>,
    /// Most time SIGTERM may take before the container is killed.
    stop_budget: Duration,
}

/// Starts the sidecar with `args`/`env`/`cwd` as deployed (ports moved to loopback), checks it
/// against its config file and `wiring`, and stops it with SIGTERM. Returns the process's
/// OpenMetrics output after one proxied request.
async fn exercise_sidecar(
    args: Vec<String>,
    env: Vec<(String, String)>,
    cwd: &Path,
    dir: tempfile::TempDir,
    wiring: SidecarWiring,
) -> String {
    let config_path = args
        .iter()
        .skip_while(|a| *a != "--config")
        .nth(1)
        .cloned()
        .or_else(|| args.iter().find_map(|a| a.strip_prefix("--config=").map(String::from)))
        .expect("a --config argument");
    let config = yaml(&read(&cwd.join(&config_path)), &config_path);
    let rule_globs: Vec<String> = array_of(&config["rules"], "config rules")
        .iter()
        .map(|g| cwd.join(str_of(g, "rules[]")).display().to_string())
        .collect();
    let mut expected_groups = BTreeSet::new();
    for pattern in &rule_globs {
        for f in glob::glob(pattern).expect("glob").flatten() {
            if !f.display().to_string().ends_with("_test.yml") {
                expected_groups.extend(group_names(&rule_groups(&read(&f), &f.display().to_string())));
            }
        }
    }
    assert!(!expected_groups.is_empty(), "the config's rules {rule_globs:?} match no rule file in the mounted files");

    let upstream = Upstream::start().await;
    let (proxy, admin) = (format!("127.0.0.1:{}", free_port()), format!("127.0.0.1:{}", free_port()));
    let mut all_args = args;
    all_args.extend(["--listen".into(), proxy.clone(), "--admin".into(), admin.clone()]);
    all_args.extend(["--upstream".into(), upstream.url()]);
    let mut p = Process::start(&all_args, &env, cwd, dir);
    for path in &wiring.probes {
        p.wait_for(&format!("http://{admin}{path}"), 200).await;
    }

    // The mounted rule files are loaded: their groups are in the rules API.
    let rules: Value =
        client().get(format!("http://{admin}/api/v1/rules")).send().await.expect("rules").json().await.expect("JSON");
    let loaded = group_names(array_of(&rules["data"]["groups"], "rules API groups"));
    assert_eq!(loaded, expected_groups, "rule groups loaded from the mounted files");

    let r = client().get(format!("http://{proxy}/users/42")).send().await.expect("request through the proxy");
    assert_eq!(r.status(), 200, "the proxy forwards to the upstream");
    let metrics = client()
        .get(format!("http://{admin}/metrics"))
        .header("Accept", "application/openmetrics-text; version=1.0.0")
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .expect("metrics body");
    assert!(metrics.contains("http_server_request_duration_seconds_bucket{"), "{metrics}");

    let took = p.terminate(wiring.stop_budget).await;
    assert!(took < wiring.stop_budget, "SIGTERM took {took:?}, more than {:?}", wiring.stop_budget);
    metrics
}

fn duration_secs(v: &Value, what: &str) -> u64 {
    humantime::parse_duration(str_of(v, what)).unwrap_or_else(|e| panic!("{what}: {e}")).as_secs()
}

fn container<'a>(pod: &'a Value, name: &str) -> &'a Value {
    array_of(&pod["containers"], "containers")
        .iter()
        .find(|c| c["name"] == name)
        .unwrap_or_else(|| panic!("no container {name}"))
}

fn container_port(c: &Value, name: &str) -> u16 {
    array_of(&c["ports"], "ports")
        .iter()
        .find(|p| p["name"] == name)
        .and_then(|p| p["containerPort"].as_u64())
        .and_then(|p| u16::try_from(p).ok())
        .unwrap_or_else(|| panic!("container {} has no port named {name}", c["name"]))
}

/// Starts the sidecar container of a pod template (Deployment or Rollout) from the manifests.
async fn exercise_pod_sidecar(docs: &[Value], workload: &Value) {
    let template = &workload["spec"]["template"];
    let pod = &template["spec"];
    let c = container(pod, "redline");
    let namespace = str_of(&workload["metadata"]["namespace"], "namespace");
    let dir = tempfile::tempdir().expect("temp dir");
    let root = dir.path().join("container");
    mount_pod_volumes(docs, namespace, pod, c, &root);
    let args: Vec<String> = array_of(&c["args"], "args").iter().map(|a| map_arg(str_of(a, "args[]"), &root)).collect();
    let cwd = host(&root, str_of(&c["workingDir"], "workingDir"));
    let env = pod_env(c, &template["metadata"]["labels"], namespace, "checkout-5d8f7c9b-x2x9q");

    // The config's ports are the container ports the probes, the Service and the PodMonitor use.
    let config_arg = args.iter().find(|a| a.ends_with("redline.yaml")).expect("--config redline.yaml");
    let config_file = config_arg.trim_start_matches("--config=");
    let config = yaml(&read(Path::new(config_file)), config_file);
    assert_eq!(container_port(c, "proxy"), port_of(str_of(&config["listen"], "listen")));
    assert_eq!(container_port(c, "admin"), port_of(str_of(&config["admin"], "admin")));
    let probe = |kind: &str| {
        let get = &c[kind]["httpGet"];
        assert_eq!(get["port"], "admin", "{kind} on the admin port");
        str_of(&get["path"], kind).to_string()
    };
    let (readiness, liveness) = (probe("readinessProbe"), probe("livenessProbe"));
    assert_eq!((readiness.as_str(), liveness.as_str()), ("/readyz", "/healthz"));

    // Grace period: preStop sleep, then SIGTERM with the drain budget.
    let grace = pod["terminationGracePeriodSeconds"].as_u64().unwrap_or(30);
    let pre_stop = c["lifecycle"]["preStop"]["sleep"]["seconds"].as_u64().unwrap_or(0);
    let drain = config.get("drain_timeout").map_or(20, |d| duration_secs(d, "drain_timeout"));
    assert!(pre_stop > 0, "a preStop sleep lets endpoints update before the sidecar stops accepting");
    assert!(
        pre_stop + drain < grace,
        "terminationGracePeriodSeconds {grace} must cover preStop {pre_stop}s + drain {drain}s"
    );
    let wiring =
        SidecarWiring { probes: vec![readiness, liveness], stop_budget: Duration::from_secs(grace - pre_stop) };
    exercise_sidecar(args, env, &cwd, dir, wiring).await;
}

// ---------------------------------------------------------------------------------------------
// Rules

#[test]
fn prometheus_rule_groups_are_the_rule_files_groups_and_pass_promtool() {
    let docs = yaml_docs("deploy/kubernetes/prometheusrule.yaml");
    let rule = find(&docs, "PrometheusRule", "redline");
    let groups = array_of(&rule["spec"]["groups"], "spec.groups");
    let mut expected = Vec::new();
    for f in rule_files() {
        expected.extend(rule_groups(&read(&f), &f.display().to_string()));
    }
    assert!(
        *groups == expected,
        "deploy/kubernetes/prometheusrule.yaml differs from rules/*.yml: run scripts/gen-deploy-rules.sh"
    );

    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("prometheusrule-groups.yml");
    std::fs::write(&file, json!({ "groups": groups }).to_string()).expect("write groups");
    let promtool = require_tool("promtool", "prometheus");
    let out = run_ok(Command::new(promtool).args(["check", "rules"]).arg(&file), "promtool check rules");
    let rules: usize = groups.iter().map(|g| g["rules"].as_array().map_or(0, Vec::len)).sum();
    assert!(String::from_utf8_lossy(&out.stdout).contains(&format!("SUCCESS: {rules} rules found")), "{out:?}");
    run_ok(Command::new(redline_bin()).args(["rules", "check"]).arg(&file), "redline rules check");
}

#[test]
fn sidecar_rules_config_map_holds_rule_files_verbatim_and_every_pod_mounts_all_of_them() {
    let docs = kubernetes_docs();
    let shipped: BTreeMap<String, PathBuf> =
        rule_files().into_iter().map(|f| (f.file_name().expect("name").to_string_lossy().into_owned(), f)).collect();
    let namespaces = ["shop", "monitoring"];
    let data = config_map_data(&docs, "redline-rules", namespaces[0]);
    assert!(!data.is_empty(), "ConfigMap redline-rules is empty");
    for namespace in namespaces {
        for (key, content) in &config_map_data(&docs, "redline-rules", namespace) {
            let file = shipped.get(key).unwrap_or_else(|| panic!("redline-rules key {key} is no rule file in rules/"));
            assert!(
                *content == read(file).into_bytes(),
                "redline-rules ({namespace}) {key} differs from {}: run scripts/gen-deploy-rules.sh",
                file.display()
            );
        }
    }
    // The receiver's gate reads the same service config as the service's sidecar.
    let sidecar = config_map_data(&docs, "checkout-redline", "shop");
    let gate = config_map_data(&docs, "redline-readiness", "monitoring");
    assert!(
        gate.get("checkout.yaml") == sidecar.get("redline.yaml"),
        "redline-readiness checkout.yaml != checkout-redline"
    );
    // Every pod (and the readiness-check Job) that mounts the rules gets all of them under rules/.
    let mut mounted = 0;
    for (_, doc) in all_manifests() {
        walk(&doc, &mut |v| {
            if v["configMap"]["name"] == "redline-rules" {
                let items = array_of(&v["configMap"]["items"], "redline-rules items");
                let placed: BTreeMap<&str, &str> =
                    items.iter().map(|i| (str_of(&i["key"], "key"), str_of(&i["path"], "path"))).collect();
                for key in data.keys() {
                    assert_eq!(placed.get(key.as_str()).copied(), Some(format!("rules/{key}").as_str()), "{v}");
                }
                mounted += 1;
            }
        });
    }
    assert!(mounted >= 4, "the Deployment, the Rollout, the readiness-check Job and the receiver mount redline-rules");
}

// ---------------------------------------------------------------------------------------------
// Prometheus and Alertmanager

#[test]
fn compose_prometheus_config_passes_promtool_with_its_rule_files_mounted() {
    let compose = compose();
    let prometheus = compose_service(&compose, "prometheus");
    let dir = tempfile::tempdir().expect("temp dir");
    let config_file = mounted_config_file(prometheus, dir.path());
    let promtool = require_tool("promtool", "prometheus");
    let out = run_ok(Command::new(promtool).args(["check", "config"]).arg(&config_file), "promtool check config");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let shipped = rule_files();
    assert!(stdout.contains(&format!("SUCCESS: {} rule files found", shipped.len())), "{stdout}");

    // Exactly the shipped rule files (a glob would also match the unit tests).
    let config = yaml(&read(&repo("deploy/prometheus/prometheus.yml")), "prometheus.yml");
    let listed: BTreeSet<String> =
        array_of(&config["rule_files"], "rule_files").iter().map(|f| str_of(f, "rule_files[]").to_string()).collect();
    let expected: BTreeSet<String> =
        shipped.iter().map(|f| format!("rules/{}", f.file_name().expect("name").to_string_lossy())).collect();
    assert_eq!(listed, expected);

    // Scrape targets and the Alertmanager are compose services on the ports they listen on.
    let sidecar_config = yaml(&read(&repo("deploy/compose/redline.yaml")), "compose redline.yaml");
    let mut targets = BTreeMap::new();
    for job in array_of(&config["scrape_configs"], "scrape_configs") {
        for sc in job["static_configs"].as_array().into_iter().flatten() {
            for t in array_of(&sc["targets"], "targets") {
                targets.insert(str_of(&job["job_name"], "job_name").to_string(), str_of(t, "target").to_string());
            }
        }
    }
    let sidecar_target = &targets["redline-sidecars"];
    assert_eq!(host_of(sidecar_target), "redline");
    assert_eq!(port_of(sidecar_target), port_of(str_of(&sidecar_config["admin"], "admin")));
    let receiver_listen =
        port_of(&flag_value(&compose_command(compose_service(&compose, "redline-receiver")), "listen"));
    assert_eq!(targets["redline-receiver"], format!("redline-receiver:{receiver_listen}"));
    let am = &config["alerting"]["alertmanagers"][0]["static_configs"][0]["targets"][0];
    assert_eq!(str_of(am, "alertmanager target"), "alertmanager:9093");
    compose_service(&compose, "alertmanager");
    assert!(
        array_of(&sidecar_config["alertmanagers"], "alertmanagers").iter().all(|u| u == "http://alertmanager:9093"),
        "the compose sidecar sends to the compose Alertmanager"
    );
}

#[test]
fn alertmanager_configs_pass_amtool_and_route_to_the_receiver_webhook() {
    let path = repo("deploy/alertmanager/alertmanager.yml");
    common::alertmanager::check_config(&path);
    let config = yaml(&read(&path), "alertmanager.yml");
    let receivers = array_of(&config["receivers"], "receivers");
    let route_receiver = str_of(&config["route"]["receiver"], "route.receiver");
    let redline = receivers.iter().find(|r| r["name"] == route_receiver).expect("the route's receiver");
    let hook = &redline["webhook_configs"][0];
    let url = str_of(&hook["url"], "webhook url");
    assert_eq!(path_of(url), "/api/v1/alertmanager", "the receiver's webhook endpoint");
    let credentials = str_of(&hook["http_config"]["authorization"]["credentials_file"], "credentials_file");

    // Kubernetes: the receiver Service's name and port (Alertmanager in the same namespace).
    let docs = kubernetes_docs();
    let service = find(&docs, "Service", "redline-receiver");
    assert_eq!(host_of(url), "redline-receiver");
    assert_eq!(Some(u64::from(port_of(url))), service["spec"]["ports"][0]["port"].as_u64());

    // Compose: the same file in the alertmanager service, the credentials file mounted where
    // the config reads it, and the same file given to the receiver as its token.
    let compose = compose();
    let am = compose_service(&compose, "alertmanager");
    let dir = tempfile::tempdir().expect("temp dir");
    let config_file = mounted_config_file(am, dir.path());
    common::alertmanager::check_config(&config_file);
    let am_token = compose_mounts(am).into_iter().find(|(_, t)| t == credentials).expect("credentials_file mounted");
    let receiver = compose_service(&compose, "redline-receiver");
    let token_flag = flag_value(&compose_command(receiver), "bearer-token-file");
    let rx_token =
        compose_mounts(receiver).into_iter().find(|(_, t)| *t == token_flag).expect("receiver token mounted");
    assert_eq!(am_token.0, rx_token.0, "Alertmanager presents the token file the receiver checks");
    assert!(compose_ports(receiver).contains(&port_of(url)));

    // prometheus-operator's AlertmanagerConfig routes the same way, with the receiver's Secret.
    let amc = find(&docs, "AlertmanagerConfig", "redline-receiver");
    let hook = &amc["spec"]["receivers"][0]["webhookConfigs"][0];
    let url = str_of(&hook["url"], "AlertmanagerConfig url");
    assert_eq!(
        (host_of(url), port_of(url), path_of(url).as_str()),
        ("redline-receiver.monitoring.svc", 9095, "/api/v1/alertmanager")
    );
    let secret = &hook["httpConfig"]["authorization"]["credentials"];
    let data = secret_data(&docs, str_of(&secret["name"], "credentials.name"), "monitoring");
    assert!(data.contains_key(str_of(&secret["key"], "credentials.key")));
}

// ---------------------------------------------------------------------------------------------
// The real binary, started from the manifests and the compose file

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubernetes_sidecar_starts_from_the_deployment_and_configmaps() {
    let docs = kubernetes_docs();
    let deployment = find(&docs, "Deployment", "checkout");
    exercise_pod_sidecar(&docs, deployment).await;

    // The Service and the PodMonitor reach the ports the sidecar listens on.
    let service = find(&docs, "Service", "checkout");
    let pod = &deployment["spec"]["template"]["spec"];
    assert_eq!(service["spec"]["ports"][0]["targetPort"], "proxy", "clients go through the proxy");
    let monitor = find(&docs, "PodMonitor", "redline-sidecars");
    let endpoint = &monitor["spec"]["podMetricsEndpoints"][0];
    assert_eq!((endpoint["port"].as_str(), endpoint["path"].as_str()), (Some("admin"), Some("/metrics")));
    let selector = monitor["spec"]["selector"]["matchLabels"].as_object().expect("matchLabels");
    for (k, v) in selector {
        assert_eq!(&deployment["spec"]["template"]["metadata"]["labels"][k], v, "the PodMonitor selects the pod");
    }
    container_port(container(pod, "redline"), "admin");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn argo_rollout_sidecar_starts_from_its_pod_template() {
    let docs = kubernetes_docs();
    exercise_pod_sidecar(&docs, find(&docs, "Rollout", "checkout")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compose_sidecar_starts_from_the_compose_file_and_exemplars_link_to_jaeger() {
    let compose = compose();
    let service = compose_service(&compose, "redline");
    let (dir, root, args) = compose_container(service);
    let env: Vec<(String, String)> = service["environment"]
        .as_object()
        .into_iter()
        .flatten()
        .map(|(k, v)| (k.clone(), v.as_str().map_or_else(|| v.to_string(), String::from)))
        .collect();
    let cwd = host(&root, str_of(&service["working_dir"], "working_dir"));

    let config = yaml(&read(&repo("deploy/compose/redline.yaml")), "compose redline.yaml");
    let published = compose_ports(service);
    for key in ["listen", "admin"] {
        assert!(published.contains(&port_of(str_of(&config[key], key))), "compose publishes the {key} port");
    }
    assert_eq!(str_of(&config["upstream"], "upstream"), "http://app:9898", "podinfo's port");
    compose_service(&compose, "app");
    let tracing = str_of(&config["tracing"]["endpoint"], "tracing.endpoint");
    assert_eq!(host_of(tracing), "jaeger");
    assert!(compose_ports(compose_service(&compose, "jaeger")).contains(&port_of(tracing)));
    let load = compose_command(compose_service(&compose, "load")).join(" ");
    assert!(load.contains(&format!("http://redline:{}/", port_of(str_of(&config["listen"], "listen")))), "{load}");

    // `docker compose stop` sends SIGTERM and kills after stop_grace_period (default 10s).
    let drain = duration_secs(&config["drain_timeout"], "drain_timeout");
    let grace = service.get("stop_grace_period").map_or(10, |g| duration_secs(g, "stop_grace_period"));
    assert!(drain < grace, "stop_grace_period {grace}s must cover drain_timeout {drain}s");
    let wiring =
        SidecarWiring { probes: vec!["/readyz".into(), "/healthz".into()], stop_budget: Duration::from_secs(grace) };
    let metrics = exercise_sidecar(args, env, &cwd, dir, wiring).await;

    // Grafana's Prometheus datasource turns the exemplar label the sidecar writes into Jaeger links.
    let ds = yaml(&read(&repo("deploy/compose/grafana/provisioning/datasources/datasources.yaml")), "datasources");
    let sources = array_of(&ds["datasources"], "datasources");
    let by_type = |t: &str| sources.iter().find(|d| d["type"] == t).unwrap_or_else(|| panic!("no {t} datasource"));
    let destination = &by_type("prometheus")["jsonData"]["exemplarTraceIdDestinations"][0];
    let label = str_of(&destination["name"], "exemplar label");
    assert!(metrics.contains(&format!("# {{{label}=\"")), "no exemplar labelled {label} in:\n{metrics}");
    assert_eq!(destination["datasourceUid"], by_type("jaeger")["uid"]);
}

/// Starts the receiver with `args` (its `--listen` moved to loopback) in `cwd` and checks
/// probes and Bearer authentication with `token`; with `gate`, that the readiness gate of that
/// service finds its config and rule files.
async fn exercise_receiver(
    args: Vec<String>,
    token: &str,
    cwd: &Path,
    dir: tempfile::TempDir,
    db: &Path,
    gate: Option<&str>,
) {
    let port = free_port();
    let args: Vec<String> = args
        .into_iter()
        .map(|a| if a.starts_with("--listen=") { format!("--listen=127.0.0.1:{port}") } else { a })
        .collect();
    let mut p = Process::start(&args, &[], cwd, dir);
    let base = format!("http://127.0.0.1:{port}");
    p.wait_for(&format!("{base}/healthz"), 200).await;
    p.wait_for(&format!("{base}/readyz"), 200).await;
    let alerts = format!("{base}/api/v1/alerts");
    assert_eq!(client().get(&alerts).send().await.expect("GET").status(), 401, "credentials required");
    let r = client().get(&alerts).bearer_auth(token.trim()).send().await.expect("GET");
    assert_eq!(r.status(), 200, "the token from the mounted secret is accepted");
    assert!(db.exists(), "the database is on the mounted volume: {}", db.display());
    if let Some(service) = gate {
        let url = format!("{base}/api/v1/readiness/{service}?namespace=shop&only=alerts.symptoms");
        let r = client().get(&url).send().await.expect("GET readiness gate");
        assert_eq!(r.status(), 200);
        let report: Value = r.json().await.expect("readiness report");
        let checks = array_of(&report["checks"], "checks");
        let symptoms = checks.iter().find(|c| c["id"] == "alerts.symptoms").expect("alerts.symptoms in the report");
        assert_eq!(symptoms["status"], "pass", "the gate reads the service's config and rule files: {report}");
    }
    p.terminate(Duration::from_secs(30)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn receiver_starts_from_the_deployment_and_from_the_compose_file() {
    // Kubernetes: Secret, PVC and emptyDir mounted; probes and Service on the listen port.
    let docs = kubernetes_docs();
    let deployment = find(&docs, "Deployment", "redline-receiver");
    let pod = &deployment["spec"]["template"]["spec"];
    let c = container(pod, "receiver");
    let dir = tempfile::tempdir().expect("temp dir");
    let root = dir.path().join("container");
    mount_pod_volumes(&docs, "monitoring", pod, c, &root);
    let args: Vec<String> = array_of(&c["args"], "args").iter().map(|a| map_arg(str_of(a, "args[]"), &root)).collect();
    let flag = |name: &str| flag_value(&args, name);
    assert_eq!(port_of(&flag("listen")), container_port(c, "http"));
    let service = find(&docs, "Service", "redline-receiver");
    assert_eq!(service["spec"]["ports"][0]["targetPort"], "http");
    for (kind, path) in [("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")] {
        assert_eq!(c[kind]["httpGet"]["path"], path);
        assert_eq!(c[kind]["httpGet"]["port"], "http");
    }
    let token = read(Path::new(&flag("bearer-token-file")));
    let db = PathBuf::from(flag("db"));
    let cwd = host(&root, str_of(&c["workingDir"], "workingDir"));
    exercise_receiver(args, &token, &cwd, dir, &db, Some("checkout")).await;

    // The readiness-check Job reads the same Secret key as the receiver.
    let template = &yaml_docs("deploy/argo/analysistemplate.yaml")[0];
    let job = template.to_string();
    assert!(job.contains("\"secretName\":\"redline-receiver-token\""), "the Job mounts the receiver's Secret");
    assert!(secret_data(&docs, "redline-receiver-token", "monitoring").contains_key("token"));

    // Compose: named volume and the token file.
    let compose = compose();
    let service = compose_service(&compose, "redline-receiver");
    let (dir, root, args) = compose_container(service);
    let flag = |name: &str| flag_value(&args, name);
    assert!(compose_ports(service).contains(&port_of(&flag("listen"))));
    let token = read(Path::new(&flag("bearer-token-file")));
    let db = PathBuf::from(flag("db"));
    let cwd = host(&root, str_of(&service["working_dir"], "working_dir"));
    let config = yaml(&read(&repo("deploy/compose/redline.yaml")), "compose redline.yaml");
    exercise_receiver(args, &token, &cwd, dir, &db, Some(str_of(&config["service"], "service"))).await;
}

// ---------------------------------------------------------------------------------------------
// Kubernetes schemas

/// Kinds whose schemas come from their CRDs, validated by `custom_resources_match_their_crd_schemas`.
const CRD_KINDS: &[&str] = &["Rollout", "AnalysisTemplate", "PodMonitor", "PrometheusRule", "AlertmanagerConfig"];

#[test]
fn kubernetes_manifests_pass_kubernetes_validate_strict() {
    let python = common::python::deploy_tools();
    let files: Vec<String> = all_manifests().into_iter().map(|(f, _)| f).collect::<BTreeSet<_>>().into_iter().collect();
    let out = Command::new(&python)
        .args(["-m", "kubernetes_validate", "--strict"])
        .args(&files)
        .current_dir(repo(""))
        .output()
        .expect("run kubernetes-validate");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "kubernetes-validate --strict:\n{stdout}{}", String::from_utf8_lossy(&out.stderr));
    // Core kinds passed; the others have no schema there and must be covered elsewhere.
    let mut passed = 0;
    for line in stdout.lines() {
        if line.contains(" passed for resource ") {
            passed += 1;
        } else if let Some(rest) = line.split("Couldn't find schema for kind ").nth(1) {
            let kind = rest.split(' ').next().unwrap_or("");
            assert!(
                CRD_KINDS.contains(&kind) || ["Canary", "MetricTemplate"].contains(&kind),
                "kind {kind} is validated by no test: {line}"
            );
        } else if !line.trim().is_empty() {
            panic!("unexpected kubernetes-validate output: {line}");
        }
    }
    let core = all_manifests().iter().filter(|(_, d)| !d["apiVersion"].as_str().unwrap_or("").contains('.')).count();
    assert_eq!(passed, core, "every core resource validated:\n{stdout}");
}

#[test]
fn custom_resources_match_their_crd_schemas() {
    let node = common::node::node();
    let dir = common::node::crd_models();
    let script = dir.join("validate-crds.mjs");
    std::fs::copy(repo("tests/fixtures/deploy/validate-crds.mjs"), &script).expect("copy validator");
    let resources: Vec<Value> = all_manifests()
        .into_iter()
        .map(|(_, d)| d)
        .filter(|d| CRD_KINDS.contains(&str_of(&d["kind"], "kind")))
        .collect();
    let kinds: BTreeSet<&str> = resources.iter().filter_map(|d| d["kind"].as_str()).collect();
    assert_eq!(kinds, CRD_KINDS.iter().copied().collect(), "every CRD kind present");
    let validate = |resources: &[Value]| {
        let input = tempfile::NamedTempFile::new().expect("temp file");
        std::fs::write(input.path(), Value::from(resources.to_vec()).to_string()).expect("write resources");
        Command::new(&node)
            .arg(&script)
            .current_dir(&dir)
            .stdin(std::fs::File::open(input.path()).expect("open"))
            .stderr(Stdio::inherit())
            .output()
            .expect("run node")
    };
    let out = validate(&resources);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "CRD schema validation:\n{stdout}");
    assert_eq!(stdout.lines().filter(|l| l.starts_with("valid: ")).count(), resources.len(), "{stdout}");

    // The validator can fail: a Rollout with a string replica count and a PodMonitor with a
    // malformed interval are refused.
    let mut bad = resources.iter().find(|r| r["kind"] == "Rollout").expect("Rollout").clone();
    bad["spec"]["replicas"] = json!("four");
    let mut bad_monitor = resources.iter().find(|r| r["kind"] == "PodMonitor").expect("PodMonitor").clone();
    bad_monitor["spec"]["podMetricsEndpoints"][0]["interval"] = json!("15 seconds");
    let out = validate(&[bad, bad_monitor]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success(), "{stdout}");
    assert!(
        stdout.contains("spec/replicas must be integer") && stdout.contains("interval must match pattern"),
        "{stdout}"
    );
}

/// Flagger publishes no schema package on the registries we use: check the fields Flagger
/// requires (its CRD's `required` lists) and that every reference resolves to a real resource,
/// port and redline endpoint. tests/integration/readiness_deploy.rs calls the webhooks on the real receiver.
#[test]
fn flagger_canary_and_argo_analysis_reference_real_resources_and_endpoints() {
    let docs = kubernetes_docs();
    let canary = find(&docs, "Canary", "checkout");
    let spec = &canary["spec"];
    for field in ["targetRef", "service", "analysis"] {
        assert!(spec[field].is_object(), "Canary spec.{field} is required");
    }
    let target = &spec["targetRef"];
    assert_eq!((target["apiVersion"].as_str(), target["kind"].as_str()), (Some("apps/v1"), Some("Deployment")));
    let deployment = find(&docs, "Deployment", str_of(&target["name"], "targetRef.name"));
    assert_eq!(deployment["metadata"]["namespace"], canary["metadata"]["namespace"]);
    let sidecar = container(&deployment["spec"]["template"]["spec"], "redline");
    assert_eq!(spec["service"]["targetPort"].as_u64(), Some(u64::from(container_port(sidecar, "proxy"))));
    assert!(spec["service"]["port"].is_u64(), "Canary spec.service.port is required");

    let receiver = find(&docs, "Service", "redline-receiver");
    let receiver_host = format!("redline-receiver.{}.svc", str_of(&receiver["metadata"]["namespace"], "namespace"));
    let receiver_port = receiver["spec"]["ports"][0]["port"].as_u64().and_then(|p| u16::try_from(p).ok());
    let hooks = array_of(&spec["analysis"]["webhooks"], "webhooks");
    let mut types = BTreeSet::new();
    for hook in hooks {
        let url = str_of(&hook["url"], "webhook url");
        assert!(hook["name"].is_string(), "webhooks need a name");
        assert_eq!((host_of(url), Some(port_of(url))), (receiver_host.as_str(), receiver_port), "{url}");
        let kind = str_of(&hook["type"], "webhook type");
        let expected = match kind {
            "confirm-promotion" => "/api/v1/flagger/confirm-promotion",
            "rollback" => "/api/v1/flagger/rollback",
            other => panic!("unexpected webhook type {other}"),
        };
        assert_eq!(path_of(url), expected);
        types.insert(kind);
    }
    assert_eq!(types.len(), 2, "confirm-promotion and rollback webhooks");
    for m in array_of(&spec["analysis"]["metrics"], "metrics") {
        let name = str_of(&m["templateRef"]["name"], "templateRef.name");
        let template = find(&docs, "MetricTemplate", name);
        assert_eq!(template["spec"]["provider"]["type"], "prometheus");
        let address = str_of(&template["spec"]["provider"]["address"], "provider.address");
        assert_eq!(port_of(address), 9090, "{address}");
        assert!(m["thresholdRange"].is_object(), "metric {name} needs a thresholdRange");
    }

    // Argo: the web metric asks the receiver Service for the readiness gate.
    let template = &yaml_docs("deploy/argo/analysistemplate.yaml")[0];
    let args = array_of(&template["spec"]["args"], "args");
    let default_url = args.iter().find(|a| a["name"] == "receiver-url").expect("receiver-url arg");
    let url = str_of(&default_url["value"], "receiver-url");
    assert_eq!((host_of(url), Some(port_of(url))), (receiver_host.as_str(), receiver_port));
    let web = array_of(&template["spec"]["metrics"], "metrics").iter().find(|m| m["provider"]["web"].is_object());
    let web_url = str_of(&web.expect("web metric")["provider"]["web"]["url"], "web url");
    assert!(web_url.starts_with("{{args.receiver-url}}/api/v1/readiness/{{args.service}}"), "{web_url}");
}

// ---------------------------------------------------------------------------------------------
// Compose, Grafana, Dockerfile

#[test]
fn compose_file_matches_the_compose_spec_and_its_references_resolve() {
    let python = common::python::deploy_tools();
    let file = repo("deploy/compose/compose.yaml");
    run_ok(
        Command::new(&python).args(["-m", "check_jsonschema", "--builtin-schema", "vendor.compose-spec"]).arg(&file),
        "check-jsonschema (compose-spec)",
    );
    // The schema check can fail: an unknown service key is refused.
    let dir = tempfile::tempdir().expect("temp dir");
    let bad = dir.path().join("compose.yaml");
    std::fs::write(&bad, read(&file).replace("    working_dir:", "    workdir:")).expect("write");
    let out = Command::new(&python)
        .args(["-m", "check_jsonschema", "--builtin-schema", "vendor.compose-spec"])
        .arg(&bad)
        .output()
        .expect("run check-jsonschema");
    assert!(!out.status.success(), "an unknown key passed the compose-spec schema");

    let compose = compose();
    let services = compose["services"].as_object().expect("services");
    for (name, s) in services {
        for dep in s["depends_on"].as_array().into_iter().flatten() {
            assert!(services.contains_key(str_of(dep, "depends_on")), "{name} depends on unknown {dep}");
        }
        for (source, _) in compose_mounts(s) {
            let bind = source.starts_with('.');
            // dashboards/ is written by `redline dashboards generate`; Docker creates a missing one empty.
            if bind && !source.ends_with("/dashboards") {
                assert!(repo("deploy/compose").join(&source).exists(), "{name} mounts missing {source}");
            } else if !bind {
                assert!(compose["volumes"].get(&source).is_some(), "{name} uses undeclared volume {source}");
            }
        }
        if let Some(build) = s.get("build") {
            let context = repo("deploy/compose").join(str_of(&build["context"], "build.context"));
            assert!(context.join(str_of(&build["dockerfile"], "build.dockerfile")).is_file(), "{name}: Dockerfile");
        }
    }
}

#[test]
fn grafana_provisioning_points_at_the_compose_services_and_the_dashboards() {
    let compose = compose();
    let grafana = compose_service(&compose, "grafana");
    let mounts = compose_mounts(grafana);
    let provisioning = mounts.iter().find(|(_, t)| t == "/etc/grafana/provisioning").expect("provisioning mounted");
    let dir = repo("deploy/compose").join(&provisioning.0);
    let ds = yaml(&read(&dir.join("datasources/datasources.yaml")), "datasources.yaml");
    for source in array_of(&ds["datasources"], "datasources") {
        let url = str_of(&source["url"], "url");
        let service = compose_service(&compose, host_of(url));
        let port = port_of(url);
        assert!(
            compose_ports(service).contains(&port) || service["expose"].to_string().contains(&port.to_string()),
            "{url}: port not served by the compose service"
        );
    }
    let providers = yaml(&read(&dir.join("dashboards/dashboards.yaml")), "dashboards.yaml");
    let path = str_of(&providers["providers"][0]["options"]["path"], "provider path");
    let dashboards = mounts.iter().find(|(_, t)| t == path).expect("the provider's path is mounted");
    assert_eq!(dashboards.0, "../../dashboards", "the repository's dashboards/");

    // Every datasource a checked-in dashboard names exists: by uid (Grafana's built-in one
    // aside), or as a datasource variable of a provisioned type.
    let provisioned = array_of(&ds["datasources"], "datasources");
    let mut uids: BTreeSet<&str> = provisioned.iter().filter_map(|d| d["uid"].as_str()).collect();
    uids.insert("-- Grafana --");
    let types: BTreeSet<&str> = provisioned.iter().filter_map(|d| d["type"].as_str()).collect();
    for entry in std::fs::read_dir(repo("dashboards")).into_iter().flatten().flatten() {
        if entry.path().extension().is_none_or(|e| e != "json") {
            continue;
        }
        let file = entry.path().display().to_string();
        let dashboard: Value = serde_json::from_str(&read(&entry.path())).expect("dashboard JSON");
        walk(&dashboard, &mut |v| {
            if let Some(uid) = v["datasource"]["uid"].as_str() {
                assert!(uid.starts_with('$') || uids.contains(uid), "{file}: unknown datasource {uid}");
            }
            if v["type"] == "datasource" && v["name"].is_string() {
                let plugin = str_of(&v["query"], "datasource variable query");
                assert!(types.contains(plugin), "{file}: no provisioned {plugin} datasource");
            }
        });
    }
}

#[test]
fn dockerfile_passes_hadolint_and_builds_a_non_root_redline_image() {
    let python = common::python::deploy_tools();
    let hadolint = python.with_file_name("hadolint");
    let dockerfile = repo("deploy/Dockerfile");
    run_ok(Command::new(&hadolint).arg(&dockerfile), "hadolint deploy/Dockerfile");

    let text = read(&dockerfile);
    let lines: Vec<&str> = text.lines().map(str::trim).filter(|l| !l.starts_with('#')).collect();
    let stages = lines.iter().filter(|l| l.starts_with("FROM ")).count();
    assert!(stages >= 2, "multi-stage build");
    let last_from = lines.iter().rposition(|l| l.starts_with("FROM ")).expect("FROM");
    let final_stage = &lines[last_from..];
    assert!(final_stage[0].contains("distroless/static") || final_stage[0].contains("scratch"), "a static base image");
    let user = final_stage.iter().rev().find_map(|l| l.strip_prefix("USER ")).expect("USER in the final stage");
    assert!(!["root", "0", "0:0"].contains(&user.trim()), "non-root user, got {user}");
    assert!(final_stage.contains(&"ENTRYPOINT [\"redline\"]"));
    assert!(text.contains("--bin redline") && text.contains("--locked"), "builds the redline binary from Cargo.lock");
    let ignore = read(&repo(".dockerignore"));
    assert!(ignore.lines().any(|l| l.trim() == "target/"), ".dockerignore keeps target/ out of the build context");
}
