//! cgroup v2 USE metrics of the container: CPU time and throttling, memory against its limit, PSI.
//! Parsers take file text so the formats are tested on fixtures without a real cgroup.

use std::path::{Path, PathBuf};

use super::emit;
use crate::telemetry::metrics::{ExpositionWriter, Kind};

/// Where the unified (v2) hierarchy is mounted in a container.
const CGROUP_ROOT: &str = "/sys/fs/cgroup";

/// The pressure files and the `resource` label each one is reported under.
const PRESSURE_FILES: [(&str, &str); 3] =
    [("cpu", "cpu.pressure"), ("memory", "memory.pressure"), ("io", "io.pressure")];

/// Finds this process's cgroup v2 directory from `/proc/self/cgroup`.
///
/// `None` on cgroup v1-only hosts or outside Linux, so the cgroup families are simply absent.
pub(super) fn detect_dir() -> Option<PathBuf> {
    let text = std::fs::read_to_string("/proc/self/cgroup").ok()?;
    let relative = unified_relative_path(&text)?;
    Some(Path::new(CGROUP_ROOT).join(relative))
}

/// Extracts the v2 path from `/proc/self/cgroup` text, relative to the hierarchy root.
///
/// Only the `0::` line belongs to the unified hierarchy; v1 controllers (`4:memory:/...`) are
/// listed alongside it on hybrid hosts and must not be mistaken for it.
pub(super) fn unified_relative_path(text: &str) -> Option<&str> {
    text.lines().find_map(|line| line.strip_prefix("0::")).map(|path| path.trim().trim_start_matches('/'))
}

/// The `cpu.stat` keys this module reports.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(super) struct CpuStat {
    pub usage_usec: Option<u64>,
    /// Only present when the cpu controller is enabled for the cgroup.
    pub throttled_usec: Option<u64>,
}

pub(super) fn parse_cpu_stat(text: &str) -> CpuStat {
    let mut stat = CpuStat::default();
    for line in text.lines() {
        let mut fields = line.split_whitespace();
        let (Some(key), Some(value)) = (fields.next(), fields.next()) else {
            continue;
        };
        let Ok(value) = value.parse::<u64>() else {
            continue;
        };
        match key {
            "usage_usec" => stat.usage_usec = Some(value),
            "throttled_usec" => stat.throttled_usec = Some(value),
            _ => {}
        }
    }
    stat
}

/// Cumulative stall times of one PSI file, in microseconds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(super) struct Pressure {
    pub some_usec: Option<u64>,
    /// Absent for `cpu.pressure` on kernels before 5.13.
    pub full_usec: Option<u64>,
}

pub(super) fn parse_pressure(text: &str) -> Pressure {
    let mut pressure = Pressure::default();
    for line in text.lines() {
        let mut fields = line.split_whitespace();
        let Some(kind) = fields.next() else {
            continue;
        };
        let total = fields.find_map(|field| field.strip_prefix("total=")).and_then(|v| v.parse::<u64>().ok());
        match kind {
            "some" => pressure.some_usec = total,
            "full" => pressure.full_usec = total,
            _ => {}
        }
    }
    pressure
}

/// Parses `memory.max`; `max` means no limit, which is reported by omitting the gauge.
pub(super) fn parse_memory_max(text: &str) -> Option<u64> {
    parse_u64(text)
}

/// Parses a single-value cgroup file such as `memory.current`.
pub(super) fn parse_u64(text: &str) -> Option<u64> {
    text.trim().parse().ok()
}

fn usec_to_seconds(usec: u64) -> f64 {
    usec as f64 / 1e6
}

fn read(dir: &Path, file: &str) -> Option<String> {
    std::fs::read_to_string(dir.join(file)).ok()
}

/// Appends the cgroup families whose files are readable in `dir`.
pub(super) fn write(dir: &Path, w: &mut ExpositionWriter) {
    let cpu = read(dir, "cpu.stat").map(|text| parse_cpu_stat(&text)).unwrap_or_default();
    emit(
        w,
        "redline_cgroup_cpu_usage_seconds_total",
        "Total CPU time consumed by the container's cgroup in seconds.",
        Kind::Counter,
        cpu.usage_usec.map(usec_to_seconds),
    );
    emit(
        w,
        "redline_cgroup_cpu_throttled_seconds_total",
        "Total time the container's cgroup was throttled by its CPU quota in seconds.",
        Kind::Counter,
        cpu.throttled_usec.map(usec_to_seconds),
    );
    emit(
        w,
        "redline_cgroup_memory_usage_bytes",
        "Memory currently used by the container's cgroup in bytes.",
        Kind::Gauge,
        read(dir, "memory.current").and_then(|text| parse_u64(&text)).map(|v| v as f64),
    );
    emit(
        w,
        "redline_cgroup_memory_limit_bytes",
        "Memory limit of the container's cgroup in bytes.",
        Kind::Gauge,
        read(dir, "memory.max").and_then(|text| parse_memory_max(&text)).map(|v| v as f64),
    );

    // PSI files fail to read when the kernel runs with psi=0; such resources are just left out.
    let mut stalls: Vec<(&str, &str, f64)> = Vec::with_capacity(6);
    for (resource, file) in PRESSURE_FILES {
        let Some(pressure) = read(dir, file).map(|text| parse_pressure(&text)) else {
            continue;
        };
        if let Some(usec) = pressure.some_usec {
            stalls.push((resource, "some", usec_to_seconds(usec)));
        }
        if let Some(usec) = pressure.full_usec {
            stalls.push((resource, "full", usec_to_seconds(usec)));
        }
    }
    if !stalls.is_empty() {
        w.family(
            "redline_cgroup_pressure_stall_seconds_total",
            "Total time tasks in the container's cgroup stalled waiting for a resource in seconds.",
            Kind::Counter,
        );
        for (resource, kind, seconds) in stalls {
            w.sample(&[("resource", resource), ("kind", kind)], seconds);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unified_path_from_proc_self_cgroup() {
        assert_eq!(unified_relative_path("0::/\n"), Some(""));
        assert_eq!(
            unified_relative_path("0::/kubepods.slice/pod-1/cri-abc.scope\n"),
            Some("kubepods.slice/pod-1/cri-abc.scope")
        );
        let hybrid = "4:memory:/docker/abc\n1:cpu:/\n0::/system.slice/app.service\n";
        assert_eq!(unified_relative_path(hybrid), Some("system.slice/app.service"));
        assert_eq!(unified_relative_path("4:memory:/docker/abc\n1:cpu:/\n"), None);
        assert_eq!(unified_relative_path(""), None);
    }

    #[test]
    fn cpu_stat_with_and_without_throttling() {
        let full = "usage_usec 2500000\nuser_usec 2000000\nsystem_usec 500000\n\
                    nr_periods 10\nnr_throttled 2\nthrottled_usec 125000\n";
        assert_eq!(parse_cpu_stat(full), CpuStat { usage_usec: Some(2_500_000), throttled_usec: Some(125_000) });
        let no_cpu_controller = "usage_usec 42\nuser_usec 40\nsystem_usec 2\n";
        assert_eq!(parse_cpu_stat(no_cpu_controller), CpuStat { usage_usec: Some(42), throttled_usec: None });
        assert_eq!(parse_cpu_stat("usage_usec garbage\nthrottled_usec\n"), CpuStat::default());
    }

    #[test]
    fn pressure_totals() {
        let text = "some avg10=0.00 avg60=0.12 avg300=0.50 total=12345\n\
                    full avg10=0.00 avg60=0.00 avg300=0.00 total=678\n";
        assert_eq!(parse_pressure(text), Pressure { some_usec: Some(12345), full_usec: Some(678) });
        let some_only = "some avg10=1.00 avg60=0.00 avg300=0.00 total=9\n";
        assert_eq!(parse_pressure(some_only), Pressure { some_usec: Some(9), full_usec: None });
        assert_eq!(parse_pressure("some avg10=1.00 total=x\n\n"), Pressure::default());
    }

    #[test]
    fn memory_max_and_current() {
        assert_eq!(parse_memory_max("max\n"), None);
        assert_eq!(parse_memory_max("536870912\n"), Some(536_870_912));
        assert_eq!(parse_memory_max(""), None);
        assert_eq!(parse_u64("1048576\n"), Some(1_048_576));
        assert_eq!(parse_u64("-1"), None);
    }
}
