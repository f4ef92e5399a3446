//! Harness for `redline receiver` tests: the receiver process on a loopback port with a
//! token file, its store (a SQLite file, or a throw-away PostgreSQL cluster), payload builders.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::{client, free_port, redline_bin};

pub const TOKEN: &str = "test-token-3f9a";

/// Which store a test runs against.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// A store for one test: the `--db` value, and whatever must live as long as it.
pub struct TestStore {
    pub db: String,
    pub pg: Option<PgCluster>,
    _dir: tempfile::TempDir,
}

impl TestStore {
    pub fn new(backend: Backend) -> TestStore {
        let dir = tempfile::tempdir().expect("temp dir");
        match backend {
            Backend::Sqlite => {
                let db = dir.path().join("redline.db").display().to_string();
                TestStore { db, pg: None, _dir: dir }
            }
            Backend::Postgres => {
                let pg = PgCluster::start();
                TestStore { db: pg.url(), pg: Some(pg), _dir: dir }
            }
        }
    }
}

/// A PostgreSQL cluster of its own (initdb + pg_ctl from Debian's `postgresql`) in a temp dir
/// on a free loopback port, trust auth, superuser `postgres`. PostgreSQL refuses to run as
/// root, so under root (as in CI) every server command runs as the `postgres` system user.
pub struct PgCluster {
    pub port: u16,
    bin: PathBuf,
    data: PathBuf,
    _dir: tempfile::TempDir,
}

fn pg_bin_dir() -> PathBuf {
    let mut found: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path().join("bin"))
        .filter(|p| p.join("initdb").is_file() && p.join("pg_ctl").is_file())
        .collect();
    found.sort_by_key(|p| {
        p.parent().and_then(|v| v.file_name()).and_then(|v| v.to_str()).and_then(|v| v.parse::<u32>().ok())
    });
    found.pop().unwrap_or_else(|| {
        panic!(
            "PostgreSQL server binaries (initdb, pg_ctl) are not installed under /usr/lib/postgresql: \
             run `apt-get install -y postgresql` (or scripts/test.sh, which installs it)"
        )
    })
}

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// A command run as the `postgres` user when we are root, else as ourselves.
fn pg_command(program: &Path) -> Command {
    if is_root() {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(program);
        c
    } else {
        Command::new(program)
    }
}

fn run(mut c: Command, what: &str) {
    super::run_ok(&mut c, what);
}

impl PgCluster {
    pub fn start() -> PgCluster {
        let bin = pg_bin_dir();
        let dir = tempfile::tempdir().expect("temp dir");
        if is_root() {
            let out = Command::new("id").args(["-u", "postgres"]).output().expect("run id");
            let uid: u32 = String::from_utf8_lossy(&out.stdout).trim().parse().unwrap_or_else(|_| {
                panic!("no `postgres` system user: run `apt-get install -y postgresql` (it creates the user)")
            });
            let gid = {
                let out = Command::new("id").args(["-g", "postgres"]).output().expect("run id");
                String::from_utf8_lossy(&out.stdout).trim().parse().ok()
            };
            std::os::unix::fs::chown(dir.path(), Some(uid), gid).expect("chown the cluster dir to postgres");
        }
        let data = dir.path().join("data");
        let mut initdb = pg_command(&bin.join("initdb"));
        initdb.arg("-D").arg(&data).args([
            "-U",
            "postgres",
            "--auth=trust",
            "-E",
            "UTF8",
            "--no-sync",
            "--no-instructions",
        ]);
        run(initdb, "initdb");
        let port = free_port();
        let mut start = pg_command(&bin.join("pg_ctl"));
        start.arg("-D").arg(&data).arg("-l").arg(dir.path().join("server.log")).args(["-w", "-t", "60", "-o"]).arg(
            format!(
                "-p {port} -k {} -c listen_addresses=127.0.0.1 -c max_connections=100 -c fsync=on",
                dir.path().display()
            ),
        );
        start.arg("start");
        let cluster = PgCluster { port, bin, data, _dir: dir };
        run(start, "pg_ctl start");
        cluster
    }

    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    /// Stops the server (fast shutdown), e.g. to see the receiver report the store down.
    pub fn stop(&self) {
        let mut c = pg_command(&self.bin.join("pg_ctl"));
        c.arg("-D").arg(&self.data).args(["-m", "fast", "-w", "stop"]);
        run(c, "pg_ctl stop");
    }

    pub fn restart(&self) {
        let mut c = pg_command(&self.bin.join("pg_ctl"));
        let sock = self.data.parent().map(|p| p.display().to_string()).unwrap_or_default();
        c.arg("-D").arg(&self.data).arg("-l").arg(self.data.with_file_name("server.log"));
        c.args(["-w", "-t", "60", "-o"]).arg(format!(
            "-p {} -k {sock} -c listen_addresses=127.0.0.1 -c max_connections=100 -c fsync=on",
            self.port
        ));
        c.arg("start");
        run(c, "pg_ctl start");
    }
}

impl Drop for PgCluster {
    fn drop(&mut self) {
        let mut c = pg_command(&self.bin.join("pg_ctl"));
        c.arg("-D").arg(&self.data).args(["-m", "immediate", "-w", "stop"]);
        let _ = c.stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::null()).status();
    }
}

/// A running `redline receiver` whose stdout (the JSON log) goes to a temp file.
pub struct Receiver {
    pub child: Child,
    pub addr: SocketAddr,
    pub db: String,
    pub extra: Vec<String>,
    pub token_file: PathBuf,
    log_path: PathBuf,
    _dir: tempfile::TempDir,
}

impl Receiver {
    /// Starts a receiver with a Bearer token on `store` and waits until `/readyz` says ready.
    pub async fn start(db: &str, extra: &[&str]) -> Receiver {
        Receiver::start_on(free_port(), db, extra).await
    }

    pub async fn start_on(port: u16, db: &str, extra: &[&str]) -> Receiver {
        let dir = tempfile::tempdir().expect("temp dir");
        let token_file = dir.path().join("token");
        std::fs::write(&token_file, format!("{TOKEN}\n")).expect("write token");
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse().expect("addr");
        let log_path = dir.path().join("stdout.jsonl");
        let mut r = Receiver {
            child: spawn(addr, db, &token_file, extra, &log_path),
            addr,
            db: db.to_string(),
            extra: extra.iter().map(|s| s.to_string()).collect(),
            token_file,
            log_path,
            _dir: dir,
        };
        r.wait_ready().await;
        r
    }

    /// SIGKILL: no chance to flush or finish anything.
    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Starts the same receiver again (same port, store and flags).
    pub async fn restart(&mut self) {
        let extra: Vec<&str> = self.extra.iter().map(String::as_str).collect();
        self.child = spawn(self.addr, &self.db, &self.token_file, &extra, &self.log_path);
        self.wait_ready().await;
    }

    async fn wait_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        let url = self.url("/readyz");
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
                panic!("redline receiver exited before becoming ready ({status}): {err}\n{}", self.stdout());
            }
            assert!(Instant::now() < deadline, "redline receiver not ready within 30s:\n{}", self.stdout());
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// POSTs `body` to `path` with the Bearer token.
    pub async fn post(&self, path: &str, body: impl Into<reqwest::Body>) -> reqwest::Response {
        client()
            .post(self.url(path))
            .bearer_auth(TOKEN)
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .expect("POST to the receiver")
    }

    /// GETs `path` with the Bearer token and parses the JSON answer, asserting 200.
    pub async fn get_json(&self, path: &str) -> serde_json::Value {
        let r = client().get(self.url(path)).bearer_auth(TOKEN).send().await.expect("GET from the receiver");
        let status = r.status();
        let text = r.text().await.expect("body");
        assert_eq!(status, 200, "GET {path}: {text}");
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("GET {path}: not JSON ({e}): {text}"))
    }

    /// `GET /api/v1/alerts` with a query string (without the `?`), as the alert list.
    pub async fn alerts(&self, query: &str) -> Vec<serde_json::Value> {
        let v = self.get_json(&format!("/api/v1/alerts?limit=100000&{query}")).await;
        v["alerts"].as_array().cloned().expect("alerts array")
    }

    pub async fn metrics(&self) -> String {
        client().get(self.url("/metrics")).send().await.expect("GET /metrics").text().await.expect("metrics body")
    }

    pub fn stdout(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }
}

fn spawn(addr: SocketAddr, db: &str, token_file: &Path, extra: &[&str], log_path: &Path) -> Child {
    let stdout = std::fs::OpenOptions::new().create(true).append(true).open(log_path).expect("receiver log file");
    Command::new(redline_bin())
        .args(["receiver", "--listen", &addr.to_string(), "--db", db])
        .arg("--bearer-token-file")
        .arg(token_file)
        .args(extra)
        .env_remove("REDLINE_RECEIVER_DB")
        .env_remove("REDLINE_RECEIVER_LISTEN")
        .stdout(stdout)
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn redline receiver")
}

impl Drop for Receiver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One alert of a webhook payload, as Alertmanager renders it.
pub fn webhook_alert(status: &str, labels: &serde_json::Value, starts_at: &str, ends_at: &str) -> serde_json::Value {
    let labels_map: std::collections::BTreeMap<String, String> =
        serde_json::from_value(labels.clone()).expect("labels are a string map");
    serde_json::json!({
        "status": status,
        "labels": labels,
        "annotations": {"summary": "something users feel", "runbook_url": "https://runbooks/x"},
        "startsAt": starts_at,
        "endsAt": ends_at,
        "generatorURL": "http://prometheus:9090/graph?g0.expr=up",
        "fingerprint": redline::receiver::payload::fingerprint(&labels_map),
    })
}

/// A version 4 webhook payload around `alerts`.
pub fn webhook(status: &str, group_key: &str, alerts: Vec<serde_json::Value>) -> serde_json::Value {
    serde_json::json!({
        "version": "4",
        "groupKey": group_key,
        "truncatedAlerts": 0,
        "status": status,
        "receiver": "redline",
        "groupLabels": {"alertname": "X"},
        "commonLabels": {},
        "commonAnnotations": {},
        "externalURL": "http://alertmanager:9093",
        "alerts": alerts,
    })
}

pub const ZERO_TIME: &str = "0001-01-01T00:00:00Z";

/// Generates `mod NAME { sqlite, postgres }` tests calling `NAME(Backend)` (the caller imports
/// `Backend`).
#[allow(unused_macros)]
macro_rules! on_both_stores {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[tokio::test]
            async fn sqlite() {
                super::$name(super::Backend::Sqlite).await
            }
            #[tokio::test]
            async fn postgres() {
                super::$name(super::Backend::Postgres).await
            }
        }
    )*};
}
#[allow(unused_imports)]
pub(crate) use on_both_stores;
