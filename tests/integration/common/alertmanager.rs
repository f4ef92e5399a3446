//! The real Prometheus Alertmanager (Debian `prometheus-alertmanager`) on a loopback port,
//! with a throw-away config and storage directory; alerts are read back through its v2 API.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::tls::TestPki;
use super::{client, free_port, require_tool};

pub struct Alertmanager {
    pub port: u16,
    /// `https` when started with a server certificate.
    scheme: &'static str,
    client: reqwest::Client,
    child: Child,
    _dir: tempfile::TempDir,
}

/// A config that keeps every alert in Alertmanager (a receiver without integrations).
pub const QUIET_CONFIG: &str = "route:\n  receiver: keep\n  group_wait: 1s\n  group_interval: 1s\n  repeat_interval: 1h\nreceivers:\n  - name: keep\n";

impl Alertmanager {
    /// Starts Alertmanager on a fresh port.
    pub async fn start(config: &str) -> Alertmanager {
        Alertmanager::start_on(free_port(), config).await
    }

    /// Starts Alertmanager on `port` (a port chosen earlier, e.g. one a sidecar already
    /// sends to) and waits until `/-/ready` answers.
    pub async fn start_on(port: u16, config: &str) -> Alertmanager {
        Alertmanager::launch(port, config, None).await
    }

    /// Starts Alertmanager serving https with `pki`'s server certificate (its web config file).
    pub async fn start_tls(config: &str, pki: &TestPki) -> Alertmanager {
        Alertmanager::launch(free_port(), config, Some(pki)).await
    }

    async fn launch(port: u16, config: &str, tls: Option<&TestPki>) -> Alertmanager {
        let bin = require_tool("prometheus-alertmanager", "prometheus-alertmanager");
        let dir = tempfile::tempdir().expect("temp dir");
        let config_path = dir.path().join("alertmanager.yml");
        std::fs::write(&config_path, config).expect("write alertmanager config");
        check_config(&config_path);
        let mut command = Command::new(bin);
        if let Some(pki) = tls {
            let web_config = dir.path().join("web.yml");
            let text = format!(
                "tls_server_config:\n  cert_file: {}\n  key_file: {}\n",
                pki.server_cert.display(),
                pki.server_key.display()
            );
            std::fs::write(&web_config, text).expect("write web config");
            command.arg(format!("--web.config.file={}", web_config.display()));
        }
        let child = command
            .arg(format!("--config.file={}", config_path.display()))
            .arg(format!("--storage.path={}", dir.path().join("data").display()))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .arg("--cluster.listen-address=")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn alertmanager");
        let (scheme, client) = match tls {
            Some(pki) => ("https", pki.client()),
            None => ("http", client()),
        };
        let am = Alertmanager { port, scheme, client, child, _dir: dir };
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(r) = am.client.get(am.url("/-/ready")).send().await
                && r.status() == 200
            {
                return am;
            }
            assert!(Instant::now() < deadline, "alertmanager did not become ready on port {port} within 20s");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}://127.0.0.1:{}{path}", self.scheme, self.port)
    }

    pub fn base_url(&self) -> String {
        self.url("")
    }

    /// The alerts Alertmanager holds (active ones: resolved alerts drop out of this list).
    pub async fn alerts(&self) -> Vec<serde_json::Value> {
        let r = self.client.get(self.url("/api/v2/alerts")).send().await.expect("GET /api/v2/alerts");
        assert_eq!(r.status(), 200);
        r.json().await.expect("alert list JSON")
    }

    /// Polls until an alert named `alertname` is (or is no longer) held, returning it.
    pub async fn wait_alert(&self, alertname: &str, present: bool, limit: Duration) -> Option<serde_json::Value> {
        let deadline = Instant::now() + limit;
        loop {
            let found = self.alerts().await.into_iter().find(|a| a["labels"]["alertname"] == alertname);
            if found.is_some() == present {
                return found;
            }
            assert!(
                Instant::now() < deadline,
                "alert {alertname} still {} in alertmanager after {limit:?}",
                if present { "absent" } else { "present" }
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

impl Drop for Alertmanager {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `amtool check-config` must accept every Alertmanager config the tests use.
pub fn check_config(path: &Path) {
    let amtool = require_tool("amtool", "prometheus-alertmanager");
    let out = Command::new(amtool).arg("check-config").arg(path).output().expect("run amtool");
    assert!(
        out.status.success(),
        "amtool check-config refused {}:\n{}{}",
        path.display(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
