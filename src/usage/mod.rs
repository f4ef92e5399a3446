//! USE metrics (utilisation, saturation, errors) of the container's cgroup v2, the app process
//! next to the sidecar, and the sidecar itself; a family appears only where its source is readable.

mod cgroup;
mod process;

use std::path::PathBuf;
use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::{Mutex, OnceLock, PoisonError};
use std::time::{Duration, Instant};

use crate::telemetry::metrics::{ExpositionWriter, Kind};

/// After a failed name lookup, how long scrapes skip the `/proc` scan, which costs a few reads
/// per process on the host when the app is not running.
const NAME_LOOKUP_BACKOFF: Duration = Duration::from_secs(5);

/// The app process whose usage is reported next to the sidecar's own.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum AppTarget {
    /// No app process metrics.
    #[default]
    None,
    /// A fixed pid, as seen in the shared process namespace.
    Pid(i32),
    /// The process whose `comm` or argv[0] basename equals this name; re-resolved when it exits.
    Name(String),
}

/// Collects the USE families on every scrape; holds no state shared with the proxy hot path.
#[derive(Debug)]
pub struct UsageCollector {
    cgroup_dir: Option<PathBuf>,
    app: AppTarget,
    own_pid: i32,
    /// The pid `AppTarget::Name` resolved to; 0 while unresolved (pid 0 is never a user process).
    app_pid: AtomicI32,
    /// Earliest instant for the next name lookup after one failed.
    next_lookup: Mutex<Option<Instant>>,
    /// The sidecar's start time never changes; cached to avoid re-reading `/proc/stat` for btime.
    start_time: OnceLock<f64>,
}

impl UsageCollector {
    /// `cgroup_dir`: `None` auto-detects from `/proc/self/cgroup` (`0::/path` becomes
    /// `/sys/fs/cgroup/path`); `Some(dir)` uses `dir`.
    pub fn new(cgroup_dir: Option<PathBuf>, app: AppTarget) -> Self {
        UsageCollector {
            cgroup_dir: cgroup_dir.or_else(cgroup::detect_dir),
            app,
            own_pid: i32::try_from(std::process::id()).unwrap_or(0),
            app_pid: AtomicI32::new(0),
            next_lookup: Mutex::new(None),
            start_time: OnceLock::new(),
        }
    }

    /// Appends all readable USE families. A handful of small file reads, called per scrape.
    pub fn write(&self, w: &mut ExpositionWriter) {
        if let Some(dir) = &self.cgroup_dir {
            cgroup::write(dir, w);
        }
        if let Some(snapshot) = self.app_snapshot() {
            process::write_app(w, &snapshot);
        }
        if let Some(snapshot) = procfs::process::Process::myself().ok().and_then(|me| process::snapshot(&me)) {
            let start_time = self.start_time(snapshot.start_ticks);
            process::write_self(w, &snapshot, start_time);
        }
    }

    fn app_snapshot(&self) -> Option<process::Snapshot> {
        let pid = match &self.app {
            AppTarget::None => return None,
            AppTarget::Pid(pid) => *pid,
            AppTarget::Name(name) => self.resolve(name)?,
        };
        let snapshot = procfs::process::Process::new(pid).ok().and_then(|p| process::snapshot(&p));
        if snapshot.is_none() {
            // The app exited between resolving and reading; resolve afresh next scrape.
            let _ = self.app_pid.compare_exchange(pid, 0, Ordering::Relaxed, Ordering::Relaxed);
        }
        snapshot
    }

    /// The pid of the process called `name`, from the cache while that pid still carries the name.
    fn resolve(&self, name: &str) -> Option<i32> {
        let cached = self.app_pid.load(Ordering::Relaxed);
        if cached > 0 && process::pid_matches(cached, name) {
            return Some(cached);
        }
        self.app_pid.store(0, Ordering::Relaxed);

        let now = Instant::now();
        {
            // Poisoning only means another scrape panicked; the instant inside is still valid.
            let mut next = self.next_lookup.lock().unwrap_or_else(PoisonError::into_inner);
            if next.is_some_and(|at| now < at) {
                return None;
            }
            *next = Some(now + NAME_LOOKUP_BACKOFF);
        }
        let found = process::find_by_name(name, self.own_pid)?;
        self.app_pid.store(found, Ordering::Relaxed);
        // The backoff is for a missing app; a restart right after this must be found at once.
        *self.next_lookup.lock().unwrap_or_else(PoisonError::into_inner) = None;
        Some(found)
    }

    fn start_time(&self, start_ticks: u64) -> Option<f64> {
        if let Some(t) = self.start_time.get() {
            return Some(*t);
        }
        let boot = procfs::boot_time_secs().ok()?;
        let t = process::start_time_seconds(boot, start_ticks, procfs::ticks_per_second());
        Some(*self.start_time.get_or_init(|| t))
    }

    #[cfg(test)]
    fn resolved_pid(&self) -> Option<i32> {
        Some(self.app_pid.load(Ordering::Relaxed)).filter(|pid| *pid > 0)
    }
}

/// Writes a single-sample family, or nothing when the value is unavailable.
fn emit(w: &mut ExpositionWriter, name: &str, help: &str, kind: Kind, value: Option<f64>) {
    if let Some(value) = value {
        w.family(name, help, kind);
        w.sample(&[], value);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::telemetry::metrics::Format;

    fn render(collector: &UsageCollector) -> String {
        let mut w = ExpositionWriter::new(Format::Prometheus);
        collector.write(&mut w);
        w.finish()
    }

    /// A directory that is certainly not a cgroup, so tests see no host cgroup lines.
    fn empty_cgroup() -> tempfile::TempDir {
        tempfile::tempdir().expect("create temp dir")
    }

    fn value_of<'a>(text: &'a str, series: &str) -> Option<&'a str> {
        text.lines().find_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
    }

    #[test]
    fn sidecar_process_families_are_always_written() {
        let dir = empty_cgroup();
        let text = render(&UsageCollector::new(Some(dir.path().to_path_buf()), AppTarget::None));
        assert!(text.contains("# TYPE process_cpu_seconds_total counter\n"), "{text}");
        let rss: f64 =
            value_of(&text, "process_resident_memory_bytes").and_then(|v| v.parse().ok()).unwrap_or_default();
        assert!(rss > 0.0, "{text}");
        assert!(value_of(&text, "process_threads").is_some(), "{text}");
        let start: f64 = value_of(&text, "process_start_time_seconds").and_then(|v| v.parse().ok()).unwrap_or_default();
        assert!(start > 1_500_000_000.0, "{text}");
        assert!(!text.contains("redline_app_"), "{text}");
        assert!(!text.contains("redline_cgroup_"), "{text}");
    }

    #[test]
    fn app_by_pid_of_this_process() {
        let dir = empty_cgroup();
        let pid = std::process::id() as i32;
        let text = render(&UsageCollector::new(Some(dir.path().to_path_buf()), AppTarget::Pid(pid)));
        assert!(value_of(&text, "redline_app_threads").is_some(), "{text}");
        assert!(text.contains("# TYPE redline_app_cpu_seconds_total counter\n"), "{text}");
        assert!(value_of(&text, "redline_app_resident_memory_bytes").is_some(), "{text}");
    }

    #[test]
    fn app_by_missing_pid_or_name_writes_nothing() {
        let dir = empty_cgroup();
        // Above the kernel's maximum pid_max (2^22), so it can never exist.
        let missing = UsageCollector::new(Some(dir.path().to_path_buf()), AppTarget::Pid(i32::MAX));
        let text = render(&missing);
        assert!(!text.contains("redline_app_"), "{text}");
        assert!(text.contains("process_cpu_seconds_total"), "{text}");

        let unknown =
            UsageCollector::new(Some(dir.path().to_path_buf()), AppTarget::Name("redline-no-such-process".into()));
        assert!(!render(&unknown).contains("redline_app_"));
        // Within the backoff the scan is skipped, still without output.
        assert!(!render(&unknown).contains("redline_app_"));
    }

    /// Kills the spawned app even when an assertion fails, so no stray process can match a
    /// later run's name.
    struct KillOnDrop(std::process::Child);

    impl Drop for KillOnDrop {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }

    #[test]
    fn app_by_name_resolves_by_argv0_and_forgets_exited_pid() {
        use std::os::unix::process::CommandExt;

        let name = format!("redline-usage-test-{}", std::process::id());
        // comm stays "sleep"; only argv[0] carries the name, exercising the fallback match.
        let mut child =
            KillOnDrop(std::process::Command::new("sleep").arg0(&name).arg("30").spawn().expect("spawn sleep"));
        let child_pid = child.0.id() as i32;
        // The parent of a vfork-style spawn resumes before the kernel has installed the new argv,
        // so wait until /proc shows it.
        for _ in 0..200 {
            if process::pid_matches(child_pid, &name) {
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let dir = empty_cgroup();
        let collector = UsageCollector::new(Some(dir.path().to_path_buf()), AppTarget::Name(name.clone()));

        let text = render(&collector);
        assert!(value_of(&text, "redline_app_threads").is_some(), "{text}");
        assert_eq!(collector.resolved_pid(), Some(child_pid));
        // Cached: a second scrape keeps the same pid.
        assert!(render(&collector).contains("redline_app_threads"));
        assert_eq!(collector.resolved_pid(), Some(child_pid));

        let _ = child.0.kill();
        let _ = child.0.wait();
        let text = render(&collector);
        assert!(!text.contains("redline_app_"), "{text}");
        assert_eq!(collector.resolved_pid(), None);
    }

    #[test]
    fn cgroup_families_from_fixture_dir() {
        let dir = empty_cgroup();
        let files = [
            (
                "cpu.stat",
                "usage_usec 2500000\nuser_usec 2000000\nsystem_usec 500000\n\
                 nr_periods 4\nnr_throttled 1\nthrottled_usec 250000\n",
            ),
            ("memory.current", "104857600\n"),
            ("memory.max", "536870912\n"),
            (
                "cpu.pressure",
                "some avg10=0.00 avg60=0.00 avg300=0.00 total=1500000\n\
                 full avg10=0.00 avg60=0.00 avg300=0.00 total=500000\n",
            ),
            (
                "memory.pressure",
                "some avg10=0.00 avg60=0.00 avg300=0.00 total=2000\n\
                 full avg10=0.00 avg60=0.00 avg300=0.00 total=1000\n",
            ),
        ];
        for (file, content) in files {
            std::fs::write(dir.path().join(file), content).expect("write fixture");
        }
        let text = render(&UsageCollector::new(Some(dir.path().to_path_buf()), AppTarget::None));

        let expected = "# HELP redline_cgroup_cpu_usage_seconds_total Total CPU time consumed \
            by the container's cgroup in seconds.\n\
            # TYPE redline_cgroup_cpu_usage_seconds_total counter\n\
            redline_cgroup_cpu_usage_seconds_total 2.5\n\
            # HELP redline_cgroup_cpu_throttled_seconds_total Total time the container's \
            cgroup was throttled by its CPU quota in seconds.\n\
            # TYPE redline_cgroup_cpu_throttled_seconds_total counter\n\
            redline_cgroup_cpu_throttled_seconds_total 0.25\n\
            # HELP redline_cgroup_memory_usage_bytes Memory currently used by the \
            container's cgroup in bytes.\n\
            # TYPE redline_cgroup_memory_usage_bytes gauge\n\
            redline_cgroup_memory_usage_bytes 104857600\n\
            # HELP redline_cgroup_memory_limit_bytes Memory limit of the container's \
            cgroup in bytes.\n\
            # TYPE redline_cgroup_memory_limit_bytes gauge\n\
            redline_cgroup_memory_limit_bytes 536870912\n\
            # HELP redline_cgroup_pressure_stall_seconds_total Total time tasks in the \
            container's cgroup stalled waiting for a resource in seconds.\n\
            # TYPE redline_cgroup_pressure_stall_seconds_total counter\n\
            redline_cgroup_pressure_stall_seconds_total{resource=\"cpu\",kind=\"some\"} 1.5\n\
            redline_cgroup_pressure_stall_seconds_total{resource=\"cpu\",kind=\"full\"} 0.5\n\
            redline_cgroup_pressure_stall_seconds_total{resource=\"memory\",kind=\"some\"} 0.002\n\
            redline_cgroup_pressure_stall_seconds_total{resource=\"memory\",kind=\"full\"} 0.001\n";
        assert!(text.starts_with(expected), "{text}");
        assert!(!text.contains("resource=\"io\""), "{text}");
    }

    #[test]
    fn cgroup_without_limit_or_cpu_controller_omits_those_families() {
        let dir = empty_cgroup();
        std::fs::write(dir.path().join("cpu.stat"), "usage_usec 1000000\n").expect("write");
        std::fs::write(dir.path().join("memory.max"), "max\n").expect("write");
        let text = render(&UsageCollector::new(Some(dir.path().to_path_buf()), AppTarget::None));
        assert!(text.contains("\nredline_cgroup_cpu_usage_seconds_total 1\n"), "{text}");
        assert!(!text.contains("redline_cgroup_cpu_throttled"), "{text}");
        assert!(!text.contains("redline_cgroup_memory"), "{text}");
        assert!(!text.contains("redline_cgroup_pressure"), "{text}");
    }

    #[test]
    fn missing_cgroup_dir_is_not_an_error() {
        let dir = empty_cgroup();
        let gone = dir.path().join("does-not-exist");
        let text = render(&UsageCollector::new(Some(gone), AppTarget::None));
        assert!(!text.contains("redline_cgroup_"), "{text}");
    }
}
