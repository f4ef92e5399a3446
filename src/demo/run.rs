//! `redline demo`: the whole flow on one machine with nothing to configure. The demo service,
//! the real sidecar and receiver processes, a load generator, a fault, the alert firing and
//! resolving on the receiver, with a progress line every two seconds.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};

use super::upstream::{self, Faults};

/// The shortest demo: the alert needs about a minute to fire during the fault and resolve after it.
pub const MIN_DURATION: Duration = Duration::from_secs(60);

/// `--duration`: a duration of at least [`MIN_DURATION`], which the demo then runs exactly.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let d =
        humantime::parse_duration(s.trim()).map_err(|_| format!("expected a duration such as 90s or 2m, got {s:?}"))?;
    if d < MIN_DURATION {
        return Err(format!(
            "expected at least {}: the alert needs about a minute to fire during the fault and resolve after it, got {}",
            humantime::format_duration(MIN_DURATION),
            humantime::format_duration(d)
        ));
    }
    Ok(d)
}

/// How long the demo runs and where its files go.
#[derive(Clone, Debug)]
pub struct DemoSettings {
    pub duration: Duration,
    /// Keep the sidecar log, the rules and the receiver database here instead of a temp dir.
    pub keep_dir: Option<PathBuf>,
}

/// The shipped symptom rules with windows short enough for a demo (20s instead of 5m).
pub fn demo_rules() -> String {
    include_str!("../../rules/redline-symptoms.yml")
        .replace("[5m]", "[20s]")
        .replace("for: 5m", "for: 10s")
        .replace("for: 10m", "for: 10s")
}

/// A child process killed (after SIGTERM) when dropped.
struct Proc {
    name: &'static str,
    child: Child,
}

impl Drop for Proc {
    fn drop(&mut self) {
        let pid = nix::unistd::Pid::from_raw(self.child.id() as i32);
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        eprintln!("redline demo: {} did not stop on SIGTERM; killed", self.name);
    }
}

fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

async fn wait_ready(client: &reqwest::Client, url: &str, proc: &mut Proc) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Ok(r) = client.get(url).send().await
            && r.status().is_success()
        {
            return Ok(());
        }
        if let Ok(Some(status)) = proc.child.try_wait() {
            bail!("{} exited during start-up ({status})", proc.name);
        }
        if Instant::now() > deadline {
            bail!("{} did not become ready at {url} within 20s", proc.name);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// What the load generator saw since the last progress line.
#[derive(Default)]
struct Window {
    latencies_ms: Vec<f64>,
    errors: u64,
}

fn start_load(client: reqwest::Client, target: String, stop: Arc<AtomicBool>, window: Arc<Mutex<Window>>) {
    for worker in 0..4u64 {
        let (client, target, stop, window) = (client.clone(), target.clone(), stop.clone(), window.clone());
        tokio::spawn(async move {
            let mut n = worker;
            while !stop.load(Ordering::Relaxed) {
                n += 4;
                let path = match n % 3 {
                    0 => format!("/users/{}", n % 97),
                    1 => format!("/orders/{}/items", n % 89),
                    _ => "/".to_string(),
                };
                let started = Instant::now();
                let failed = match client.get(format!("{target}{path}")).send().await {
                    Ok(r) => r.status().is_server_error() || r.bytes().await.is_err(),
                    Err(_) => true,
                };
                {
                    let mut w = window.lock().unwrap_or_else(|e| e.into_inner());
                    w.latencies_ms.push(started.elapsed().as_secs_f64() * 1000.0);
                    w.errors += u64::from(failed);
                }
                tokio::time::sleep(Duration::from_millis(15)).await;
            }
        });
    }
}

async fn get_json(client: &reqwest::Client, url: &str) -> Option<serde_json::Value> {
    client.get(url).send().await.ok()?.json().await.ok()
}

/// `RedlineHighErrorRatio=firing RedlineNoSuccessfulTraffic=pending`, or `none`.
fn sidecar_alerts(v: &Option<serde_json::Value>) -> String {
    let alerts = v.as_ref().and_then(|v| v["data"]["alerts"].as_array().cloned()).unwrap_or_default();
    let list: Vec<String> = alerts
        .iter()
        .map(|a| format!("{}={}", a["labels"]["alertname"].as_str().unwrap_or("?"), a["state"].as_str().unwrap_or("?")))
        .collect();
    if list.is_empty() { "none".into() } else { list.join(" ") }
}

fn receiver_counts(v: &Option<serde_json::Value>) -> (usize, usize) {
    let alerts = v.as_ref().and_then(|v| v["alerts"].as_array().cloned()).unwrap_or_default();
    let firing = alerts.iter().filter(|a| a["state"] == "firing").count();
    (firing, alerts.len() - firing)
}

fn write_file(dir: &Path, name: &str, text: &str) -> anyhow::Result<PathBuf> {
    let p = dir.join(name);
    std::fs::write(&p, text).with_context(|| format!("cannot write {}", p.display()))?;
    Ok(p)
}

/// Runs the demo; Ok(true) when the alert fired and resolved as it should.
pub async fn run(settings: DemoSettings) -> anyhow::Result<bool> {
    let exe = std::env::current_exe().context("cannot find the redline executable")?;
    let dir = match &settings.keep_dir {
        Some(d) => d.clone(),
        None => std::env::temp_dir().join(format!("redline-demo-{}", std::process::id())),
    };
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let client = crate::tls::http_client().map_err(anyhow::Error::msg)?.timeout(Duration::from_secs(5)).build()?;

    // The demo service, in this process.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let upstream_addr = listener.local_addr()?;
    let faults = Arc::new(Faults::default());
    tokio::spawn(upstream::serve(listener, faults.clone()));

    // The receiver, storing into SQLite.
    let receiver_port = free_port()?;
    let receiver_url = format!("http://127.0.0.1:{receiver_port}");
    let db = dir.join("receiver.db");
    let receiver_log = std::fs::File::create(dir.join("receiver.log"))?;
    let mut receiver = Proc {
        name: "the receiver",
        child: Command::new(&exe)
            .args(["receiver", "--listen", &format!("127.0.0.1:{receiver_port}"), "--db"])
            .arg(&db)
            .stdout(receiver_log)
            .stderr(Stdio::inherit())
            .spawn()
            .context("cannot start the receiver")?,
    };
    wait_ready(&client, &format!("{receiver_url}/readyz"), &mut receiver).await?;

    // The sidecar in front of the demo service, evaluating the shipped rules every second and
    // sending alerts straight to the receiver's Alertmanager-compatible API.
    let rules = write_file(&dir, "redline-symptoms-demo.yml", &demo_rules())?;
    let (proxy_port, admin_port) = (free_port()?, free_port()?);
    let proxy_url = format!("http://127.0.0.1:{proxy_port}");
    let admin_url = format!("http://127.0.0.1:{admin_port}");
    let sidecar_log = dir.join("sidecar.log");
    let mut sidecar = Proc {
        name: "the sidecar",
        child: Command::new(&exe)
            .args(["sidecar", "--service", "demo", "--service-version", "1.0.0", "--namespace", "demo"])
            .args(["--pod", "demo-0", "--listen", &format!("127.0.0.1:{proxy_port}")])
            .args(["--admin", &format!("127.0.0.1:{admin_port}"), "--upstream", &format!("http://{upstream_addr}")])
            .args(["--routes", "/users/{id},/orders/{id}/items"])
            // The demo service runs in this process: its CPU, memory and fds are the app's USE.
            .args(["--app-pid", &std::process::id().to_string()])
            .arg("--rules")
            .arg(&rules)
            .args(["--sample-interval", "1s", "--alertmanagers", &receiver_url, "--tracing-sampler-ratio", "0"])
            .stdout(std::fs::File::create(&sidecar_log)?)
            .stderr(Stdio::inherit())
            .spawn()
            .context("cannot start the sidecar")?,
    };
    wait_ready(&client, &format!("{admin_url}/readyz"), &mut sidecar).await?;

    // `--duration` was checked against MIN_DURATION when parsed; it is run as given.
    let total = settings.duration;
    let fault_on = total.mul_f64(0.2);
    let fault_off = total.mul_f64(0.5);
    println!("redline demo: {} seconds, files in {}", total.as_secs(), dir.display());
    println!("  demo service  http://{upstream_addr}");
    println!("  sidecar       {proxy_url} (metrics, rules, alerts: {admin_url}/metrics, /api/v1/alerts)");
    println!("  receiver      {receiver_url}/api/v1/alerts (SQLite {})", db.display());
    println!(
        "  a fault (40% errors, +80ms) is injected at {}s and removed at {}s\n",
        fault_on.as_secs(),
        fault_off.as_secs()
    );

    let stop = Arc::new(AtomicBool::new(false));
    let window = Arc::new(Mutex::new(Window::default()));
    start_load(client.clone(), proxy_url.clone(), stop.clone(), window.clone());
    let started = Instant::now();
    let mut ticks = tokio::time::interval(Duration::from_secs(2));
    ticks.tick().await;
    let (mut fired, mut resolved, mut faulty) = (false, false, false);
    while started.elapsed() < total {
        ticks.tick().await;
        let t = started.elapsed();
        if !faulty && t >= fault_on && t < fault_off {
            faults.set(0.4, Duration::from_millis(80));
            faulty = true;
            println!("           -- fault injected: 40% of requests fail, +80ms --");
        }
        if faulty && t >= fault_off {
            faults.set(0.0, Duration::ZERO);
            faulty = false;
            println!("           -- fault removed --");
        }
        let w = std::mem::take(&mut *window.lock().unwrap_or_else(|e| e.into_inner()));
        let n = w.latencies_ms.len();
        let mut lat = w.latencies_ms;
        lat.sort_by(f64::total_cmp);
        let p99 = lat.get((n * 99 / 100).min(n.saturating_sub(1))).copied().unwrap_or(0.0);
        let alerts = sidecar_alerts(&get_json(&client, &format!("{admin_url}/api/v1/alerts")).await);
        let received = get_json(&client, &format!("{receiver_url}/api/v1/alerts?service=demo")).await;
        let (firing, done) = receiver_counts(&received);
        fired |= firing > 0;
        resolved |= fired && firing == 0 && done > 0;
        println!(
            "[{:>4}s] {:>5.0} req/s  errors {:>5.1}%  p99 {:>6.1} ms | sidecar alerts: {alerts} | receiver: {firing} firing, {done} resolved",
            t.as_secs(),
            n as f64 / 2.0,
            if n == 0 { 0.0 } else { 100.0 * w.errors as f64 / n as f64 },
            p99,
        );
    }
    stop.store(true, Ordering::Relaxed);

    println!();
    let received = get_json(&client, &format!("{receiver_url}/api/v1/alerts?service=demo")).await;
    if let Some(alerts) = received.as_ref().and_then(|v| v["alerts"].as_array()) {
        println!("alerts stored by the receiver:");
        for a in alerts {
            println!(
                "  {:<28} {:<9} started {}  ended {}  ({} notifications)",
                a["labels"]["alertname"].as_str().unwrap_or("?"),
                a["state"].as_str().unwrap_or("?"),
                a["startsAt"].as_str().unwrap_or("-"),
                a["endsAt"].as_str().unwrap_or("-"),
                a["notifications"]
            );
        }
    }
    // The readiness checks that apply to the demo, against the still-running sidecar and receiver.
    let config = write_file(
        &dir,
        "redline-demo.yaml",
        &format!(
            "service: demo\nversion: 1.0.0\nnamespace: demo\nadmin: 127.0.0.1:{admin_port}\nrules: [{rules:?}]\n\
             readiness:\n  metrics_url: {admin_url}/metrics\n  logs: {{file: {log:?}, sample: 200}}\n  \
             receiver_url: {receiver_url}\n",
            rules = rules.display().to_string(),
            log = sidecar_log.display().to_string(),
        ),
    )?;
    println!("\nreadiness report (redline readiness-check, the checks that apply to the demo):");
    let mut check = Command::new(&exe);
    check
        .args(["readiness-check", "--service", "demo", "--config"])
        .arg(&config)
        .args(["--only", "metrics.red,metrics.use,logging.structured,alerts.symptoms,alerts.firing"]);
    let readiness = tokio::task::spawn_blocking(move || check.status()).await?.context("cannot run readiness-check")?;
    drop(sidecar);
    drop(receiver);
    let ok = fired && resolved && readiness.success();
    if ok {
        println!("\nthe error-ratio alert fired during the fault and resolved after it: the pipeline works");
    } else {
        println!(
            "\nexpected the alert to fire and resolve within {}s (fired: {fired}, resolved: {resolved}); \
             try a longer --duration",
            total.as_secs()
        );
    }
    if settings.keep_dir.is_none() {
        let _ = std::fs::remove_dir_all(&dir);
    }
    Ok(ok)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_under_a_minute_are_refused_and_others_kept() {
        assert_eq!(parse_duration("90s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("1m"), Ok(Duration::from_secs(60)));
        let e = parse_duration("30s").expect_err("too short");
        assert!(e.starts_with("expected at least 1m: the alert needs about a minute"), "{e}");
        assert!(e.ends_with("got 30s"), "{e}");
        assert!(parse_duration("soon").expect_err("not a duration").contains("expected a duration"));
    }
}
