//! A real Prometheus (Debian `prometheus`) on a loopback port with a throw-away config and
//! TSDB directory, queried through its HTTP API.

use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use super::{client, free_port, require_tool};

pub struct Prometheus {
    pub port: u16,
    child: Child,
    _dir: tempfile::TempDir,
}

impl Prometheus {
    /// Starts Prometheus with `config` and waits until `/-/ready` answers.
    pub async fn start(config: &str) -> Prometheus {
        Prometheus::start_with_flags(config, &[]).await
    }

    /// Same, with extra command-line flags (e.g. `--enable-feature=exemplar-storage`).
    pub async fn start_with_flags(config: &str, flags: &[&str]) -> Prometheus {
        let bin = require_tool("prometheus", "prometheus");
        let dir = tempfile::tempdir().expect("temp dir");
        let config_path = dir.path().join("prometheus.yml");
        std::fs::write(&config_path, config).expect("write prometheus config");
        let port = free_port();
        let child = Command::new(bin)
            .arg(format!("--config.file={}", config_path.display()))
            .arg(format!("--storage.tsdb.path={}", dir.path().join("data").display()))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .args(flags)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn prometheus");
        let p = Prometheus { port, child, _dir: dir };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(r) = client().get(format!("{}/-/ready", p.url())).send().await
                && r.status() == 200
            {
                return p;
            }
            assert!(Instant::now() < deadline, "prometheus did not become ready within 30s");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The value of an instant query with a single result, if any.
    pub async fn value(&self, query: &str) -> Option<f64> {
        let q = percent_encoding::utf8_percent_encode(query, percent_encoding::NON_ALPHANUMERIC);
        let r = client().get(format!("{}/api/v1/query?query={q}", self.url())).send().await.ok()?;
        let v: serde_json::Value = r.json().await.ok()?;
        v["data"]["result"][0]["value"][1].as_str()?.parse().ok()
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Prometheus {
    /// Polls until every `version` of the scraped sidecars has 20 s of scrapes showing traffic
    /// (at most 90 s).
    pub async fn wait_for_traffic(&self, versions: &[&str]) {
        let deadline = Instant::now() + Duration::from_secs(90);
        loop {
            let mut ready = true;
            for version in versions {
                let q = format!(
                    "count_over_time((sum(rate(http_server_request_duration_seconds_count{{version=\"{version}\"}}[4s])) > 0)[20s:1s])"
                );
                ready &= self.value(&q).await.is_some_and(|n| n >= 20.0);
            }
            if ready {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "prometheus did not collect 20s of traffic from all sidecars within 90s"
            );
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }
}

/// The same steady load on several sidecars: one request every 20 ms to `{url}{i}` each, for
/// at most 2 minutes, until [`SteadyLoad::stop`].
pub struct SteadyLoad {
    stop: Arc<AtomicBool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl SteadyLoad {
    pub fn start(urls: Vec<String>) -> SteadyLoad {
        let stop = Arc::new(AtomicBool::new(false));
        let tasks = urls
            .into_iter()
            .map(|url| {
                let stop = stop.clone();
                tokio::spawn(async move {
                    let c = client();
                    let mut i = 0u64;
                    let mut tick = tokio::time::interval(Duration::from_millis(20));
                    let deadline = Instant::now() + Duration::from_secs(120);
                    while !stop.load(Ordering::Relaxed) && Instant::now() < deadline {
                        tick.tick().await;
                        i += 1;
                        let c = c.clone();
                        let u = format!("{url}{i}");
                        tokio::spawn(async move {
                            let _ = c.get(u).send().await;
                        });
                    }
                })
            })
            .collect();
        SteadyLoad { stop, tasks }
    }

    pub async fn stop(self) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.tasks {
            let _ = t.await;
        }
    }
}
