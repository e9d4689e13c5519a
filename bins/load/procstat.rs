//! A process's CPU time, resident memory and open descriptors from
//! `/proc/<pid>/stat`, `/proc/<pid>/status` and `/proc/<pid>/fd` (proc(5)).

use std::path::PathBuf;

/// Clock ticks per second of `utime`/`stime` (USER_HZ, 100 on Linux).
const USER_HZ: f64 = 100.0;

/// One reading.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Sample {
    /// User plus system CPU seconds so far.
    pub cpu_s: f64,
    /// Resident set size in bytes.
    pub rss: u64,
    /// Open file descriptors.
    pub fds: usize,
}

/// Reads `pid`'s figures (`None` once it is gone).
pub fn sample(pid: u32) -> Option<Sample> {
    let base = PathBuf::from(format!("/proc/{pid}"));
    let stat = std::fs::read_to_string(base.join("stat")).ok()?;
    let status = std::fs::read_to_string(base.join("status")).ok()?;
    let fds = std::fs::read_dir(base.join("fd"))
        .map(|d| d.count())
        .unwrap_or(0);
    Some(Sample {
        cpu_s: cpu_seconds(&stat)?,
        rss: rss_bytes(&status)?,
        fds,
    })
}

/// utime + stime (fields 14 and 15) of a `stat` line, in seconds. The
/// command name (field 2) may hold spaces, so fields count from its `)`.
fn cpu_seconds(stat: &str) -> Option<f64> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    // After ")" the fields start at 3 (state): utime is field 14 -> index 11.
    let utime: u64 = f.get(11)?.parse().ok()?;
    let stime: u64 = f.get(12)?.parse().ok()?;
    Some((utime + stime) as f64 / USER_HZ)
}

/// `VmRSS` of a `status` file, in bytes.
fn rss_bytes(status: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_fields_are_counted_after_a_command_name_with_spaces() {
        let stat = "1234 (my agent) S 1 1234 1234 0 -1 4194560 500 0 0 0 250 50 0 0 20 0 9 0 100 1000000 2000";
        assert_eq!(cpu_seconds(stat), Some(3.0));
    }

    #[test]
    fn vm_rss_is_read_in_kilobytes() {
        let status = "Name:\tagent\nVmPeak:\t 9000 kB\nVmRSS:\t  2048 kB\nThreads: 3\n";
        assert_eq!(rss_bytes(status), Some(2 * 1024 * 1024));
    }

    #[test]
    fn this_process_can_be_sampled() {
        let s = sample(std::process::id()).unwrap();
        assert!(s.rss > 0 && s.fds > 0);
    }
}
