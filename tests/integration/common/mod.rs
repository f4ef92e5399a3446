//! Shared harness for integration tests: starts the real `redline` binary and the demo
//! upstream on loopback, waits for readiness by polling, and reads metrics and logs.

use std::collections::BTreeSet;
use std::net::{SocketAddr, TcpListener as StdListener};
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use redline::demo::upstream::{self, Faults};

pub mod alertmanager;
pub mod grpc;
pub mod grpc_load;
pub mod node;
pub mod otlp;
pub mod prometheus;
pub mod python;
pub mod receiver;
pub mod tls;

/// A loopback port nothing listens on, for a child process (or a test server) to bind next.
/// No port is handed out twice in this test process: between this call and the child's bind
/// the port is free again, so a second call could return it too (it once gave the sidecar's
/// listen and admin addresses the same port). Ports are picked below the kernel's ephemeral
/// range when there is room, so that what the kernel hands out meanwhile (`bind(":0")` in
/// the tests, the source ports of outgoing connections) cannot take one either.
pub fn free_port() -> u16 {
    static HANDED_OUT: Mutex<BTreeSet<u16>> = Mutex::new(BTreeSet::new());
    // A panic elsewhere while the lock was held leaves the set intact: keep using it.
    let mut handed_out = HANDED_OUT.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    let below_ephemeral = non_ephemeral_ports();
    for _ in 0..10_000 {
        let candidate = match &below_ephemeral {
            Some(range) => fastrand::u16(range.clone()),
            None => 0,
        };
        // The bind says the port is free now; the kernel picks one when `candidate` is 0.
        let Ok(port) = StdListener::bind(("127.0.0.1", candidate)).and_then(|l| l.local_addr()).map(|a| a.port())
        else {
            continue;
        };
        if handed_out.insert(port) {
            return port;
        }
    }
    panic!("no free loopback port after 10000 tries ({} handed out)", handed_out.len());
}

/// Ports from 10000 up to the start of `ip_local_port_range`, when that leaves at least 5000.
fn non_ephemeral_ports() -> Option<std::ops::Range<u16>> {
    let range = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range").ok()?;
    let low: u16 = range.split_whitespace().next()?.parse().ok()?;
    (low >= 15_000).then_some(10_000..low)
}

/// The demo service on a loopback port, running on the test's runtime.
pub struct Upstream {
    pub addr: SocketAddr,
    pub faults: Arc<Faults>,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl Upstream {
    pub async fn start() -> Upstream {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind upstream");
        let addr = listener.local_addr().expect("upstream addr");
        let faults = Arc::new(Faults::default());
        let task = tokio::spawn(upstream::serve(listener, faults.clone()));
        Upstream { addr, faults, task }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

impl Drop for Upstream {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A running `redline sidecar` process whose stdout (the JSON log) goes to a temp file.
pub struct Sidecar {
    pub child: Child,
    pub proxy: SocketAddr,
    pub admin: SocketAddr,
    log_path: PathBuf,
    _dir: tempfile::TempDir,
}

pub fn redline_bin() -> &'static str {
    env!("CARGO_BIN_EXE_redline")
}

impl Sidecar {
    /// Starts the sidecar in front of `upstream` with extra flags, and waits until `/healthz` answers.
    pub async fn start(upstream: &str, extra: &[&str]) -> Sidecar {
        Sidecar::start_with_env(upstream, extra, &[]).await
    }

    /// As `start`, with extra environment variables for the sidecar.
    pub async fn start_with_env(upstream: &str, extra: &[&str], env: &[(&str, &str)]) -> Sidecar {
        let dir = tempfile::tempdir().expect("temp dir");
        let log_path = dir.path().join("stdout.jsonl");
        let stdout = std::fs::File::create(&log_path).expect("log file");
        let proxy: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().expect("addr");
        let admin: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().expect("addr");
        let child = Command::new(redline_bin())
            .args(["sidecar", "--service", "checkout", "--service-version", "1.2.3", "--namespace", "shop"])
            .args(["--listen", &proxy.to_string(), "--admin", &admin.to_string(), "--upstream", upstream])
            .args(extra)
            .env_remove("REDLINE_CONFIG")
            .envs(env.iter().copied())
            .stdout(stdout)
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn redline");
        let mut s = Sidecar { child, proxy, admin, log_path, _dir: dir };
        s.wait_healthy().await;
        s
    }

    async fn wait_healthy(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        let url = format!("http://{}/healthz", self.admin);
        loop {
            if let Ok(r) = client().get(&url).send().await
                && r.status() == 200
            {
                return;
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                let mut err = String::new();
                if let Some(mut e) = self.child.stderr.take() {
                    use std::io::Read;
                    let _ = e.read_to_string(&mut err);
                }
                panic!("redline exited before becoming healthy ({status}): {err}");
            }
            assert!(Instant::now() < deadline, "redline did not answer /healthz within 20s");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.proxy, path)
    }

    pub fn admin_url(&self, path: &str) -> String {
        format!("http://{}{}", self.admin, path)
    }

    pub async fn metrics(&self) -> String {
        let r = client().get(self.admin_url("/metrics")).send().await.expect("GET /metrics");
        assert_eq!(r.status(), 200);
        r.text().await.expect("metrics body")
    }

    /// Polls `/metrics` until `pred` holds (for state that settles after a response is sent).
    pub async fn metrics_until(&self, what: &str, pred: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let m = self.metrics().await;
            if pred(&m) {
                return m;
            }
            assert!(Instant::now() < deadline, "metrics never showed {what}:\n{m}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    pub fn signal(&self, sig: nix::sys::signal::Signal) {
        let pid = nix::unistd::Pid::from_raw(self.child.id() as i32);
        nix::sys::signal::kill(pid, sig).expect("signal redline");
    }

    /// Sends SIGTERM and waits for the process to exit.
    pub async fn stop(&mut self) -> ExitStatus {
        self.signal(nix::sys::signal::Signal::SIGTERM);
        self.wait_exit(Duration::from_secs(30)).await
    }

    pub async fn wait_exit(&mut self, limit: Duration) -> ExitStatus {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = self.child.try_wait().expect("wait redline") {
                return status;
            }
            assert!(Instant::now() < deadline, "redline did not exit within {limit:?}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Everything the sidecar wrote to stdout so far.
    pub fn stdout(&self) -> String {
        std::fs::read_to_string(&self.log_path).expect("read sidecar stdout")
    }

    /// Polls stdout until `pred` holds: proxy workers hand their log lines over in batches
    /// (at most 50ms late), so a line may lag the response it describes.
    pub async fn stdout_until(&self, what: &str, pred: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let logs = self.stdout();
            if pred(&logs) {
                return logs;
            }
            assert!(Instant::now() < deadline, "no log line showed {what} within 10s:\n{logs}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Peak resident memory of the sidecar process (VmHWM), in bytes.
    pub fn peak_rss_bytes(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).expect("proc status");
        let kb: u64 = status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .expect("VmHWM line");
        kb * 1024
    }
}

impl Drop for Sidecar {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// GETs `url`, asserts a 200 and parses the body as JSON.
pub async fn get_json(url: &str) -> serde_json::Value {
    let r = client().get(url).send().await.expect("GET");
    assert_eq!(r.status(), 200, "{url}");
    r.json().await.expect("JSON body")
}

/// Polls `check` every 200 ms until it holds; fails naming `what` after `limit`.
pub async fn poll_until(what: &str, limit: Duration, mut check: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !check().await {
        assert!(Instant::now() < deadline, "timed out after {limit:?} waiting for {what}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

pub fn client() -> reqwest::Client {
    redline::tls::http_client().expect("TLS roots").timeout(Duration::from_secs(60)).build().expect("http client")
}

/// The value of the sample line that starts with `series` (name plus labels, exactly).
pub fn sample(metrics: &str, series: &str) -> Option<f64> {
    metrics.lines().find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.split(' ').next()?.parse().ok())
}

/// Runs a system tool the tests depend on, failing with an install hint when it is missing.
pub fn require_tool(tool: &str, package: &str) -> PathBuf {
    let found = std::env::var_os("PATH")
        .into_iter()
        .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .map(|dir| dir.join(tool))
        .find(|p| p.is_file());
    found.unwrap_or_else(|| {
        panic!("{tool} is not installed: run `apt-get install -y {package}` (or scripts/test.sh, which installs it)")
    })
}

/// Runs a command (stdin closed) and returns its output, failing with both streams when it
/// does not succeed.
pub fn run_ok(cmd: &mut Command, what: &str) -> std::process::Output {
    let out = cmd.stdin(Stdio::null()).output().unwrap_or_else(|e| panic!("cannot run {what}: {e}"));
    assert!(
        out.status.success(),
        "{what} failed ({}):\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Runs `redline readiness-check --format json ARGS` (without `REDLINE_CONFIG`) off the async
/// runtime; returns the exit code and the parsed report.
pub async fn readiness_json(args: Vec<String>) -> (i32, serde_json::Value) {
    let mut cmd = Command::new(redline_bin());
    cmd.args(["readiness-check", "--format", "json"]).args(args).env_remove("REDLINE_CONFIG");
    let out = tokio::task::spawn_blocking(move || cmd.output()).await.expect("join").expect("run readiness-check");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!("no JSON ({e}): {}\n{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
    });
    (out.status.code().expect("exit code"), v)
}

/// One check of a readiness report, by id.
pub fn report_check<'a>(report: &'a serde_json::Value, id: &str) -> &'a serde_json::Value {
    report["checks"].as_array().expect("checks").iter().find(|c| c["id"] == id).expect("check present")
}
