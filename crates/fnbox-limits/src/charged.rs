//! What a fresh pod would be charged for an instance (CONTRACT §7, docs/design.md "memoryUsed"),
//! and the instance's CPU time and file writes.
//!
//! memoryUsed is the sum over the instance's processes of their resident set (`/proc/<pid>/statm`
//! field 2 = `RssAnon + RssFile + RssShmem`): its anonymous memory plus every file page its
//! processes map. A FunctionGraph pod loads its runtime from its own image, so those file pages
//! are charged to it however warm the host's page cache is; the kernel's own cgroup counters
//! (`memory.max_usage_in_bytes`, `memory.peak`) charge a page to whoever first read it, so they
//! say more on a cold host and less on a warm one. Rss rather than Pss: Pss divides a page among
//! every process on the host that maps it, so a second instance of the same function (or any
//! host process running the same `node`) would halve the first one's figure. Rss counts a page
//! shared by two processes of the SAME instance twice (a shared library mapped by bash and its
//! child); that over-count is bounded by the libraries' resident size and is what the RSS mode
//! always did, so every mode means the same.
//!
//! In the cgroup modes the processes are `cgroup.procs`; the peak is the maximum of samples
//! taken by the controller's shared sampler thread every 10 ms, at each reset and at each read.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use crate::sampler::{page_size, ProcScan, SampleTarget};

/// Pids listed in a `cgroup.procs` file (empty when it cannot be read).
pub(crate) fn cgroup_pids(procs: &Path) -> Vec<i32> {
    std::fs::read_to_string(procs)
        .map(|t| t.lines().filter_map(|l| l.trim().parse().ok()).collect())
        .unwrap_or_default()
}

/// Pids of every process whose process group is in `pgids` (RSS mode).
pub(crate) fn pids_in_pgroups(pgids: &HashSet<i32>) -> Vec<i32> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/stat"))
                .ok()
                .and_then(|t| crate::parse::parse_proc_stat(&t))
                .is_some_and(|s| pgids.contains(&s.pgrp))
        })
        .collect()
}

/// Resident bytes of one process (`statm` field 2 × page size); 0 when it is gone.
pub(crate) fn resident_bytes(pid: i32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/statm"))
        .ok()
        .and_then(|t| parse_statm_resident(&t))
        .map_or(0, |pages| pages * page_size())
}

/// Field 2 of `/proc/<pid>/statm`.
pub(crate) fn parse_statm_resident(text: &str) -> Option<u64> {
    text.split_whitespace().nth(1)?.parse().ok()
}

/// `cutime + cstime` (fields 16–17 of `/proc/<pid>/stat`): CPU time of the children the process
/// reaped, in clock ticks.
pub(crate) fn parse_reaped_ticks(text: &str) -> Option<u64> {
    let rest = &text[text.rfind(')')? + 1..];
    // Field 3 (state) is index 0 here, so field n is index n - 3.
    let fields: Vec<&str> = rest.split_whitespace().skip(13).take(2).collect();
    if fields.len() < 2 {
        return None;
    }
    fields.iter().try_fold(0u64, |acc, f| {
        Some(acc + f.parse::<i64>().ok()?.max(0) as u64)
    })
}

/// Field 1 of `/proc/<pid>/task/<tid>/schedstat`: the thread's time on a CPU, in ns.
pub(crate) fn parse_schedstat_ns(text: &str) -> Option<u64> {
    text.split_whitespace().next()?.parse().ok()
}

/// CPU time of the given processes (every thread's, in ns from `schedstat`) and of the
/// children they reaped (`cutime + cstime`, in clock ticks).
pub(crate) fn cpu_time(pids: &[i32]) -> Duration {
    // SAFETY: sysconf(3) takes no pointers and only reads a configuration value; a failure is
    // the -1 handled below.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    let hz = if hz > 0 { hz as u64 } else { 100 };
    let mut ns = 0u64;
    for pid in pids {
        if let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) {
            ns += tasks
                .flatten()
                .filter_map(|t| std::fs::read_to_string(t.path().join("schedstat")).ok())
                .filter_map(|t| parse_schedstat_ns(&t))
                .sum::<u64>();
        }
        if let Some(ticks) = std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .ok()
            .and_then(|t| parse_reaped_ticks(&t))
        {
            ns += ticks.saturating_mul(1_000_000_000) / hz;
        }
    }
    Duration::from_nanos(ns)
}

/// `write_bytes` of `/proc/<pid>/io`: bytes the process caused to be written to disk-backed
/// files (counted when page-cache pages are dirtied, so at `write` time; tmpfs not included).
pub(crate) fn parse_write_bytes(text: &str) -> Option<u64> {
    text.lines()
        .find_map(|l| l.strip_prefix("write_bytes:"))
        .and_then(|v| v.trim().parse().ok())
}

/// Summed `write_bytes` of the given processes.
pub(crate) fn written_bytes(pids: &[i32]) -> u64 {
    pids.iter()
        .filter_map(|pid| std::fs::read_to_string(format!("/proc/{pid}/io")).ok())
        .filter_map(|t| parse_write_bytes(&t))
        .sum()
}

/// The sampled resident-set peak of one cgroup's processes.
#[derive(Debug)]
pub(crate) struct ChargedSampler {
    procs: PathBuf,
    peak: AtomicU64,
    closed: AtomicBool,
}

impl ChargedSampler {
    pub(crate) fn new(procs: PathBuf) -> Self {
        ChargedSampler {
            procs,
            peak: AtomicU64::new(0),
            closed: AtomicBool::new(false),
        }
    }

    /// The resident bytes of the group's processes now.
    pub(crate) fn current(&self) -> u64 {
        cgroup_pids(&self.procs)
            .into_iter()
            .map(resident_bytes)
            .sum()
    }

    pub(crate) fn reset(&self) {
        self.peak.store(self.current(), Ordering::SeqCst);
    }

    /// The peak since the last reset, including a sample taken now.
    pub(crate) fn peak(&self) -> u64 {
        let now = self.current();
        self.peak.fetch_max(now, Ordering::SeqCst).max(now)
    }

    pub(crate) fn close(&self) {
        self.closed.store(true, Ordering::SeqCst);
    }
}

impl SampleTarget for ChargedSampler {
    fn wanted_pgids(&self, _out: &mut HashSet<i32>) {}

    fn sample(&self, _scan: &ProcScan) {
        if !self.closed.load(Ordering::SeqCst) {
            let now = self.current();
            self.peak.fetch_max(now, Ordering::SeqCst);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statm_and_stat_fields() {
        assert_eq!(parse_statm_resident("1000 250 100 10 0 300 0\n"), Some(250));
        assert_eq!(parse_statm_resident("1000"), None);
        let stat = "42 (a b) c) S 1 42 42 0 -1 4194560 100 0 0 0 7 3 2 1 20 0 1 0 99 1000 130 x";
        assert_eq!(parse_reaped_ticks(stat), Some(3));
        assert_eq!(parse_reaped_ticks("1 (x) S 1 2"), None);
        assert_eq!(parse_schedstat_ns("123456 789 10\n"), Some(123456));
        let io = "rchar: 10\nwchar: 20\nsyscr: 1\nsyscw: 1\nread_bytes: 0\nwrite_bytes: 4096\ncancelled_write_bytes: 0\n";
        assert_eq!(parse_write_bytes(io), Some(4096));
    }

    #[test]
    fn own_process_is_resident_and_has_cpu_time() {
        let me = std::process::id() as i32;
        assert!(resident_bytes(me) > 0);
        let before = cpu_time(&[me]);
        let mut x = 0u64;
        for i in 0..5_000_000u64 {
            x = std::hint::black_box(x.wrapping_add(i ^ (x >> 3)));
        }
        assert!(cpu_time(&[me]) > before, "{x}");
        assert_eq!(resident_bytes(-5), 0);
        let before = written_bytes(&[me]);
        // The crate's directory is disk-backed (tmpfs writes are not counted).
        let dir = tempfile::tempdir_in(env!("CARGO_MANIFEST_DIR")).unwrap();
        std::fs::write(dir.path().join("w"), vec![7u8; 64 * 1024]).unwrap();
        let after = written_bytes(&[me]);
        assert!(after >= before + 64 * 1024, "{before} → {after}");
    }
}
