//! The `process_*` families Prometheus's client libraries export (open
//! file descriptors and their limit, resident memory, CPU time, start
//! time), read from `/proc/self` at scrape time: nothing on the request
//! path. A file that cannot be read leaves its family out of that scrape.

use std::fmt::Write;
use std::sync::OnceLock;
use std::time::{SystemTime, UNIX_EPOCH};

/// Clock ticks per second of `/proc/self/stat`'s CPU times: `USER_HZ`,
/// which Linux fixes at 100 for every architecture's user-space ABI.
const TICKS_PER_SECOND: f64 = 100.0;

/// When the process started (unix seconds).
static STARTED: OnceLock<f64> = OnceLock::new();

/// Notes the start time, once: the kernel's (`/proc/self/stat`'s start
/// in ticks after boot, plus the boot time of `/proc/stat`), else now.
pub(super) fn started() {
    let kernel = || {
        let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
        let boot = std::fs::read_to_string("/proc/stat").ok()?;
        Some(boot_time(&boot)? + start_ticks(&stat)? as f64 / TICKS_PER_SECOND)
    };
    let at = kernel().unwrap_or_else(|| {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0.0, |d| d.as_secs_f64())
    });
    let _ = STARTED.set(at);
}

/// `btime` of `/proc/stat`: when the machine booted (unix seconds).
fn boot_time(stat: &str) -> Option<f64> {
    let line = stat.lines().find(|l| l.starts_with("btime "))?;
    line["btime ".len()..]
        .trim()
        .parse::<u64>()
        .ok()
        .map(|s| s as f64)
}

/// `starttime` of `/proc/self/stat` (field 22): ticks after boot.
fn start_ticks(stat: &str) -> Option<u64> {
    let rest = &stat[stat.rfind(')')? + 1..];
    rest.split_whitespace().nth(19)?.parse().ok()
}

/// The families in Prometheus's text format, appended to `out`. Written
/// here rather than through the recorder, whose counters hold integers:
/// CPU time is in seconds with a fraction.
pub(super) fn render(out: &mut String) {
    let mut family = |name: &str, kind: &str, help: &str, value: Option<f64>| {
        if let Some(value) = value {
            let _ = write!(
                out,
                "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}\n\n"
            );
        }
    };
    let read = |path: &str| std::fs::read_to_string(path).ok();
    family(
        "process_cpu_seconds_total",
        "counter",
        "User and system CPU time spent in seconds",
        read("/proc/self/stat")
            .and_then(|t| cpu_ticks(&t))
            .map(seconds),
    );
    family(
        "process_open_fds",
        "gauge",
        "Open file descriptors",
        // Less the one this count holds open.
        std::fs::read_dir("/proc/self/fd")
            .ok()
            .map(|entries| entries.count().saturating_sub(1) as f64),
    );
    family(
        "process_max_fds",
        "gauge",
        "The limit on open file descriptors",
        read("/proc/self/limits").and_then(|t| max_open_files(&t)),
    );
    family(
        "process_resident_memory_bytes",
        "gauge",
        "Resident memory in bytes",
        read("/proc/self/status").and_then(|t| resident_bytes(&t)),
    );
    family(
        "process_start_time_seconds",
        "gauge",
        "Start time of the process since the Unix epoch in seconds",
        STARTED.get().copied(),
    );
}

/// The soft limit of `Max open files` in `/proc/self/limits`.
fn max_open_files(limits: &str) -> Option<f64> {
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    let soft = line["Max open files".len()..].split_whitespace().next()?;
    soft.parse::<u64>().ok().map(|n| n as f64)
}

/// `VmRSS` of `/proc/self/status`, in bytes.
fn resident_bytes(status: &str) -> Option<f64> {
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let mut words = line["VmRSS:".len()..].split_whitespace();
    let kib = words.next()?.parse::<u64>().ok()?;
    (words.next() == Some("kB")).then_some(kib as f64 * 1024.0)
}

/// `utime + stime` of `/proc/self/stat`, in ticks. The fields are counted
/// after the command name's closing parenthesis, since the name may hold
/// spaces and parentheses of its own.
fn cpu_ticks(stat: &str) -> Option<u64> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // After the name: state is field 3 of proc(5), utime 14, stime 15.
    let utime = fields.get(11)?.parse::<u64>().ok()?;
    let stime = fields.get(12)?.parse::<u64>().ok()?;
    Some(utime + stime)
}

/// CPU seconds from ticks.
fn seconds(ticks: u64) -> f64 {
    ticks as f64 / TICKS_PER_SECOND
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proc_files_are_read_as_proc5_lays_them_out() {
        let limits = "Limit                     Soft Limit           Hard Limit           Units     \n\
                      Max cpu time              unlimited            unlimited            seconds   \n\
                      Max open files            20000                524288               files     \n";
        assert_eq!(max_open_files(limits), Some(20000.0));
        assert_eq!(
            max_open_files("Max open files unlimited unlimited files"),
            None
        );
        let status = "Name:\tjwtgate\nVmPeak:\t  30000 kB\nVmRSS:\t   18432 kB\nThreads:\t4\n";
        assert_eq!(resident_bytes(status), Some(18432.0 * 1024.0));
        // A command name with a space and a parenthesis of its own.
        let stat =
            "4242 (jw (x) gate) S 1 4242 4242 0 -1 4194560 900 0 0 0 250 75 0 0 20 0 4 0 100 0";
        assert_eq!(cpu_ticks(stat), Some(325));
        assert_eq!(start_ticks(stat), Some(100));
        assert_eq!(
            boot_time("cpu 1 2 3\nbtime 1700000000\nprocesses 9\n"),
            Some(1.7e9)
        );
        assert_eq!(cpu_ticks("garbage"), None);
        assert!((seconds(325) - 3.25).abs() < 1e-9);
    }

    #[test]
    fn this_process_can_be_read() {
        let text = std::fs::read_to_string("/proc/self/stat").expect("/proc/self/stat");
        assert!(cpu_ticks(&text).is_some(), "{text}");
        let text = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
        assert!(resident_bytes(&text).is_some_and(|b| b > 0.0), "{text}");
        let text = std::fs::read_to_string("/proc/self/limits").expect("/proc/self/limits");
        assert!(max_open_files(&text).is_some(), "{text}");
    }
}
