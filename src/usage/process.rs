//! Per-process USE metrics from procfs, for the app next to the sidecar and the sidecar itself.
//! Also finds the app by name in a shared process namespace.

use std::fs;
use std::path::Path;

use procfs::process::{LimitValue, Process};

use super::emit;
use crate::telemetry::metrics::{ExpositionWriter, Kind};

/// What one scrape reports about a process.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(super) struct Snapshot {
    pub cpu_seconds: f64,
    pub resident_bytes: f64,
    pub virtual_bytes: f64,
    pub threads: f64,
    /// Clock ticks after boot at which the process started.
    pub start_ticks: u64,
    /// Unreadable for another user's process (the fd directory needs ptrace access).
    pub open_fds: Option<f64>,
    /// `None` when the soft limit is unlimited or the limits file is unreadable.
    pub max_fds: Option<f64>,
}

/// Reads a snapshot; `None` if the process is gone or its `stat` is unreadable.
pub(super) fn snapshot(process: &Process) -> Option<Snapshot> {
    let stat = process.stat().ok()?;
    let ticks = procfs::ticks_per_second();
    Some(Snapshot {
        cpu_seconds: ticks_to_seconds(stat.utime.saturating_add(stat.stime), ticks),
        resident_bytes: stat.rss.saturating_mul(procfs::page_size()) as f64,
        virtual_bytes: stat.vsize as f64,
        threads: stat.num_threads as f64,
        start_ticks: stat.starttime,
        open_fds: process.fd_count().ok().map(|n| n as f64),
        max_fds: process
            .limits()
            .ok()
            .and_then(|limits| soft_limit(limits.max_open_files.soft_limit))
            .map(|n| n as f64),
    })
}

pub(super) fn ticks_to_seconds(ticks: u64, ticks_per_second: u64) -> f64 {
    // sysconf never reports 0 on Linux, but a division by zero would emit +Inf forever.
    ticks as f64 / ticks_per_second.max(1) as f64
}

/// Seconds since the epoch at which a process started, from its `starttime` in ticks after boot.
pub(super) fn start_time_seconds(boot_time_secs: u64, start_ticks: u64, ticks_per_second: u64) -> f64 {
    boot_time_secs as f64 + ticks_to_seconds(start_ticks, ticks_per_second)
}

pub(super) fn soft_limit(value: LimitValue) -> Option<u64> {
    match value {
        LimitValue::Value(n) => Some(n),
        LimitValue::Unlimited => None,
    }
}

/// The basename of argv[0] from raw `/proc/<pid>/cmdline` bytes (NUL-separated arguments).
pub(super) fn argv0_basename(cmdline: &[u8]) -> Option<&str> {
    let argv0 = cmdline.split(|b| *b == 0).next()?;
    let basename = argv0.rsplit(|b| *b == b'/').next()?;
    match std::str::from_utf8(basename) {
        Ok(name) if !name.is_empty() => Some(name),
        _ => None,
    }
}

/// Whether the process in `proc_dir` (`/proc/<pid>`) is the one called `name`.
///
/// `comm` is tried first because it is one short read, but the kernel truncates it to 15 bytes,
/// so longer names only match through argv[0].
fn process_matches(proc_dir: &Path, name: &str) -> bool {
    let Ok(comm) = fs::read_to_string(proc_dir.join("comm")) else {
        return false;
    };
    if comm.trim_end_matches('\n') == name {
        return true;
    }
    fs::read(proc_dir.join("cmdline")).is_ok_and(|cmdline| argv0_basename(&cmdline) == Some(name))
}

/// Whether `pid` still exists and is still called `name`; guards the cached pid against reuse.
pub(super) fn pid_matches(pid: i32, name: &str) -> bool {
    process_matches(&Path::new("/proc").join(pid.to_string()), name)
}

/// Scans `/proc` for a process called `name`, skipping `exclude` (the sidecar itself).
pub(super) fn find_by_name(name: &str, exclude: i32) -> Option<i32> {
    let entries = fs::read_dir("/proc").ok()?;
    entries.flatten().find_map(|entry| {
        let pid: i32 = entry.file_name().to_str()?.parse().ok()?;
        (pid != exclude && process_matches(&entry.path(), name)).then_some(pid)
    })
}

/// Appends the `redline_app_*` families.
pub(super) fn write_app(w: &mut ExpositionWriter, s: &Snapshot) {
    emit(
        w,
        "redline_app_cpu_seconds_total",
        "Total user and system CPU time spent by the app process in seconds.",
        Kind::Counter,
        Some(s.cpu_seconds),
    );
    emit(
        w,
        "redline_app_resident_memory_bytes",
        "Resident memory size of the app process in bytes.",
        Kind::Gauge,
        Some(s.resident_bytes),
    );
    emit(w, "redline_app_open_fds", "Number of open file descriptors of the app process.", Kind::Gauge, s.open_fds);
    emit(
        w,
        "redline_app_max_fds",
        "Maximum number of open file descriptors of the app process.",
        Kind::Gauge,
        s.max_fds,
    );
    emit(w, "redline_app_threads", "Number of OS threads in the app process.", Kind::Gauge, Some(s.threads));
}

/// Appends the standard Prometheus `process_*` families for the sidecar itself.
pub(super) fn write_self(w: &mut ExpositionWriter, s: &Snapshot, start_time: Option<f64>) {
    emit(
        w,
        "process_cpu_seconds_total",
        "Total user and system CPU time spent in seconds.",
        Kind::Counter,
        Some(s.cpu_seconds),
    );
    emit(w, "process_resident_memory_bytes", "Resident memory size in bytes.", Kind::Gauge, Some(s.resident_bytes));
    emit(w, "process_virtual_memory_bytes", "Virtual memory size in bytes.", Kind::Gauge, Some(s.virtual_bytes));
    emit(w, "process_open_fds", "Number of open file descriptors.", Kind::Gauge, s.open_fds);
    emit(w, "process_max_fds", "Maximum number of open file descriptors.", Kind::Gauge, s.max_fds);
    emit(w, "process_threads", "Number of OS threads in the process.", Kind::Gauge, Some(s.threads));
    emit(
        w,
        "process_start_time_seconds",
        "Start time of the process since unix epoch in seconds.",
        Kind::Gauge,
        start_time,
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn argv0_basename_from_cmdline() {
        assert_eq!(argv0_basename(b"/usr/bin/python3\0app.py\0--port\0"), Some("python3"));
        assert_eq!(argv0_basename(b"node\0server.js\0"), Some("node"));
        assert_eq!(argv0_basename(b"./my-long-application-name\0"), Some("my-long-application-name"));
        // Kernel threads and zombies have an empty cmdline.
        assert_eq!(argv0_basename(b""), None);
        assert_eq!(argv0_basename(b"/usr/bin/\0"), None);
        assert_eq!(argv0_basename(b"\xff\xfe\0"), None);
    }

    #[test]
    fn tick_and_limit_conversions() {
        assert_eq!(ticks_to_seconds(250, 100), 2.5);
        assert_eq!(ticks_to_seconds(7, 0), 7.0);
        assert_eq!(start_time_seconds(1_700_000_000, 150, 100), 1_700_000_001.5);
        assert_eq!(soft_limit(LimitValue::Value(1024)), Some(1024));
        assert_eq!(soft_limit(LimitValue::Unlimited), None);
    }

    #[test]
    fn own_process_is_found_by_comm_but_excluded_by_pid() {
        let own = std::process::id() as i32;
        let Ok(comm) = fs::read_to_string("/proc/self/comm") else {
            return;
        };
        let comm = comm.trim_end_matches('\n');
        assert!(pid_matches(own, comm));
        assert!(!pid_matches(own, "redline-no-such-process-name"));
        assert_ne!(find_by_name(comm, own), Some(own));
    }
}
