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

// The kept pid list ages against the sampler thread's real ticks (a std thread that no tokio
// clock drives, reading /proc), so std's clock is the right one in this module.
#![allow(clippy::disallowed_types)]

use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use crate::sampler::{page_size, ProcScan, SampleTarget};

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

/// Field 2 of `/proc/<pid>/statm`.
pub(crate) fn parse_statm_resident(text: &str) -> Option<u64> {
    text.split_ascii_whitespace().nth(1)?.parse().ok()
}

/// `cutime + cstime` (fields 16–17 of `/proc/<pid>/stat`): CPU time of the children the process
/// reaped, in clock ticks.
pub(crate) fn parse_reaped_ticks(text: &str) -> Option<u64> {
    let rest = &text[text.rfind(')')? + 1..];
    // Field 3 (state) is index 0 here, so field n is index n - 3. Read on every invocation:
    // ASCII splitting and no collecting (procfs writes ASCII).
    let mut fields = rest.split_ascii_whitespace().skip(13);
    let ticks = |f: &str| Some(f.parse::<i64>().ok()?.max(0) as u64);
    Some(ticks(fields.next()?)? + ticks(fields.next()?)?)
}

/// Field 1 of `/proc/<pid>/task/<tid>/schedstat`: the thread's time on a CPU, in ns.
pub(crate) fn parse_schedstat_ns(text: &str) -> Option<u64> {
    text.split_ascii_whitespace().next()?.parse().ok()
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

/// [`Usage`] of the given processes, each file opened and read once (RSS mode; the cgroup
/// modes keep their files open, see [`GroupFiles`]).
pub(crate) fn usage_of(pids: &[i32]) -> Usage {
    Usage {
        cpu: cpu_time(pids),
        written: written_bytes(pids),
    }
}

/// Summed `write_bytes` of the given processes.
pub(crate) fn written_bytes(pids: &[i32]) -> u64 {
    pids.iter()
        .filter_map(|pid| std::fs::read_to_string(format!("/proc/{pid}/io")).ok())
        .filter_map(|t| parse_write_bytes(&t))
        .sum()
}

/// CPU time and disk writes of a group's processes at one moment; the difference of two is
/// what an invocation used (see the module documentation for what is and is not counted).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Usage {
    /// Every thread's time on a CPU plus what reaped children used.
    pub cpu: Duration,
    /// `write_bytes` of `/proc/<pid>/io`, summed.
    pub written: u64,
}

/// One pass over a group's processes.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Reading {
    pub resident: u64,
    pub usage: Usage,
}

/// The `/proc` files of one process, kept open between readings.
///
/// Every invocation reads its instance's processes at its start and at its answer (memoryUsed's
/// peak, FunctionGraph's `cpu used` / `storage used`): opening, reading and closing four or more
/// files per process each time cost ≈ 0.1 ms on the caller's path. An open procfs
/// file is re-read with one positioned `read` (they are `seq_file`s, generated anew at offset
/// 0). The files stay bound to the process they were opened for: once it is gone a read fails
/// (`ESRCH`) and the entry is dropped, so a reused pid is opened afresh.
#[derive(Debug)]
struct PidFiles {
    statm: File,
    usage: Option<UsageFiles>,
}

#[derive(Debug)]
struct UsageFiles {
    stat: File,
    io: Option<File>,
    /// One `schedstat` per thread, listed when the thread count in `stat` changes or a
    /// thread's file stops answering.
    threads: Vec<File>,
}

/// Positioned read of a whole small procfs file into `buf`; `None` when it fails or is empty
/// (the process is gone).
fn pread<'b>(f: &File, buf: &'b mut [u8]) -> Option<&'b str> {
    match f.read_at(buf, 0) {
        Ok(n) if n > 0 => std::str::from_utf8(&buf[..n]).ok(),
        _ => None,
    }
}

/// Field 20 of `/proc/<pid>/stat`: the number of threads.
pub(crate) fn parse_num_threads(text: &str) -> Option<usize> {
    let rest = &text[text.rfind(')')? + 1..];
    rest.split_ascii_whitespace().nth(17)?.parse().ok()
}

fn clock_ticks_per_second() -> u64 {
    static HZ: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    *HZ.get_or_init(|| {
        // SAFETY: sysconf(3) takes no pointers and only reads a configuration value; a failure
        // is the -1 handled below.
        let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
        if hz > 0 {
            hz as u64
        } else {
            100
        }
    })
}

fn list_thread_files(pid: i32) -> Vec<File> {
    std::fs::read_dir(format!("/proc/{pid}/task"))
        .map(|tasks| {
            tasks
                .flatten()
                .filter_map(|t| File::open(t.path().join("schedstat")).ok())
                .collect()
        })
        .unwrap_or_default()
}

impl PidFiles {
    fn open(pid: i32) -> Option<PidFiles> {
        Some(PidFiles {
            statm: File::open(format!("/proc/{pid}/statm")).ok()?,
            usage: None,
        })
    }

    /// Resident bytes, and the usage figures when asked; `None` once the process is gone.
    fn read(&mut self, pid: i32, with_usage: bool) -> Option<Reading> {
        let mut buf = [0u8; 1024];
        let pages = parse_statm_resident(pread(&self.statm, &mut buf)?)?;
        let mut reading = Reading {
            resident: pages * page_size(),
            usage: Usage::default(),
        };
        if with_usage {
            if self.usage.is_none() {
                self.usage = Some(UsageFiles {
                    stat: File::open(format!("/proc/{pid}/stat")).ok()?,
                    io: File::open(format!("/proc/{pid}/io")).ok(),
                    threads: Vec::new(),
                });
            }
            let files = self.usage.as_mut()?;
            let stat = pread(&files.stat, &mut buf)?;
            let reaped = parse_reaped_ticks(stat).unwrap_or(0);
            let threads = parse_num_threads(stat).unwrap_or(0);
            let mut ns = reaped.saturating_mul(1_000_000_000) / clock_ticks_per_second();
            ns += files.threads_ns(pid, threads, &mut buf);
            reading.usage.cpu = Duration::from_nanos(ns);
            reading.usage.written = files
                .io
                .as_ref()
                .and_then(|f| pread(f, &mut buf).and_then(parse_write_bytes))
                .unwrap_or(0);
        }
        Some(reading)
    }
}

impl UsageFiles {
    /// The threads' summed `schedstat` time, listing them again when their number changed or
    /// one of them is gone.
    fn threads_ns(&mut self, pid: i32, count: usize, buf: &mut [u8]) -> u64 {
        for attempt in 0..2 {
            if attempt > 0 || self.threads.len() != count {
                self.threads = list_thread_files(pid);
            }
            let mut ns = 0;
            let mut all = true;
            for f in &self.threads {
                match pread(f, buf).and_then(parse_schedstat_ns) {
                    Some(n) => ns += n,
                    None => all = false,
                }
            }
            if all || attempt > 0 {
                return ns;
            }
        }
        0
    }
}

/// The kept-open files of one group's processes (see [`PidFiles`]), and the group's pid list.
///
/// Listing `cgroup.procs` is the dearest part of a pass (open, stat, read and close of a cgroup
/// file; on cgroup v1 the kernel also builds and sorts a pid list): profiled, it was 13 % of
/// fnbox's CPU on the warm invoke path, which takes three passes per invocation. The list is
/// therefore kept and taken again only when it is older than [`LIST_MAX_AGE`] (the sampler
/// thread lists it every tick, so the invoke path almost never does), or when a listed process
/// is gone. What a kept list can miss is a process that joined within the last tick, which the
/// 10 ms sampler misses the same way.
#[derive(Debug)]
pub(crate) struct GroupFiles {
    procs_path: PathBuf,
    pids: HashMap<i32, PidFiles>,
    listed: Vec<i32>,
    listed_at: Option<Instant>,
}

/// How old a kept pid list may be before a pass lists the group again: one sampler tick.
pub(crate) const LIST_MAX_AGE: Duration = crate::sampler::SAMPLE_INTERVAL;

impl GroupFiles {
    pub(crate) fn new(procs_path: PathBuf) -> Self {
        GroupFiles {
            procs_path,
            pids: HashMap::new(),
            listed: Vec::new(),
            listed_at: None,
        }
    }

    /// Lists the pids in the group now. `cgroup.procs` is opened anew each time: cgroup v1
    /// keeps an open file's pid list cached while it is read more often than once a second, so
    /// a kept file would never see a process join.
    fn relist(&mut self) {
        self.listed = std::fs::read_to_string(&self.procs_path)
            .map(|t| t.lines().filter_map(|l| l.trim().parse().ok()).collect())
            .unwrap_or_default();
        self.listed_at = Some(Instant::now());
        let listed = &self.listed;
        self.pids.retain(|pid, _| listed.contains(pid));
    }

    /// One pass over the group's processes, with the kept list when it is fresh enough. An
    /// empty list is never kept: the group's first process may have joined since.
    pub(crate) fn read(&mut self, with_usage: bool) -> Reading {
        let stale =
            self.listed.is_empty() || self.listed_at.is_none_or(|at| at.elapsed() >= LIST_MAX_AGE);
        self.pass(with_usage, stale)
    }

    /// One pass over the group's processes as listed now (the sampler's tick).
    pub(crate) fn read_listed(&mut self, with_usage: bool) -> Reading {
        self.pass(with_usage, true)
    }

    fn pass(&mut self, with_usage: bool, relist: bool) -> Reading {
        if !relist {
            // A listed process that cannot be read may have left the group: list it again.
            if let Some(total) = self.sum(with_usage, false) {
                return total;
            }
        }
        self.relist();
        self.sum(with_usage, true).unwrap_or_default()
    }

    /// The listed processes' figures summed; `None` when one of them could not be read and
    /// `skip_gone` is false. With a fresh list a failed read is a process gone, or a pid now
    /// belonging to a new process of the group: it is opened afresh once, then skipped.
    fn sum(&mut self, with_usage: bool, skip_gone: bool) -> Option<Reading> {
        let mut total = Reading::default();
        for &pid in &self.listed {
            let attempts = if skip_gone { 2 } else { 1 };
            match read_pid(&mut self.pids, pid, with_usage, attempts) {
                Some(r) => {
                    total.resident += r.resident;
                    total.usage.cpu += r.usage.cpu;
                    total.usage.written += r.usage.written;
                }
                None if skip_gone => {}
                None => return None,
            }
        }
        Some(total)
    }
}

/// Reads one process through its kept files, opening them when there are none; a file that
/// stops answering is dropped and, while `attempts` last, opened again.
fn read_pid(
    pids: &mut HashMap<i32, PidFiles>,
    pid: i32,
    with_usage: bool,
    attempts: usize,
) -> Option<Reading> {
    for _ in 0..attempts {
        let files = match pids.entry(pid) {
            std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
            std::collections::hash_map::Entry::Vacant(e) => e.insert(PidFiles::open(pid)?),
        };
        if let Some(r) = files.read(pid, with_usage) {
            return Some(r);
        }
        pids.remove(&pid);
    }
    None
}

/// The sampled resident-set peak of one cgroup's processes.
#[derive(Debug)]
pub(crate) struct ChargedSampler {
    files: Mutex<GroupFiles>,
    peak: AtomicU64,
    closed: AtomicBool,
}

impl ChargedSampler {
    pub(crate) fn new(procs: PathBuf) -> Self {
        ChargedSampler {
            files: Mutex::new(GroupFiles::new(procs)),
            peak: AtomicU64::new(0),
            closed: AtomicBool::new(false),
        }
    }

    fn files(&self) -> std::sync::MutexGuard<'_, GroupFiles> {
        self.files.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn read(&self, with_usage: bool) -> Reading {
        self.files().read(with_usage)
    }

    /// The resident bytes of the group's processes now.
    pub(crate) fn current(&self) -> u64 {
        self.read(false).resident
    }

    pub(crate) fn reset(&self) {
        self.peak.store(self.current(), Ordering::SeqCst);
    }

    /// [`ChargedSampler::reset`] and the usage figures, from one pass.
    pub(crate) fn reset_with_usage(&self) -> Usage {
        let r = self.read(true);
        self.peak.store(r.resident, Ordering::SeqCst);
        r.usage
    }

    /// The peak since the last reset, including a sample taken now.
    pub(crate) fn peak(&self) -> u64 {
        let now = self.current();
        self.peak.fetch_max(now, Ordering::SeqCst).max(now)
    }

    /// [`ChargedSampler::peak`] and the usage figures, from one pass.
    pub(crate) fn peak_with_usage(&self) -> (u64, Usage) {
        let r = self.read(true);
        let peak = self
            .peak
            .fetch_max(r.resident, Ordering::SeqCst)
            .max(r.resident);
        (peak, r.usage)
    }

    /// A process joined the group (fnbox started it): the next pass lists the group.
    pub(crate) fn joined(&self) {
        self.files().listed_at = None;
    }

    /// The usage figures now.
    pub(crate) fn usage(&self) -> Usage {
        self.read(true).usage
    }

    pub(crate) fn close(&self) {
        self.closed.store(true, Ordering::SeqCst);
    }
}

impl SampleTarget for ChargedSampler {
    fn wanted_pgids(&self, _out: &mut HashSet<i32>) {}

    fn sample(&self, _scan: &ProcScan) {
        if !self.closed.load(Ordering::SeqCst) {
            // The tick lists the group: the invoke path's passes then use its list.
            let now = self.files().read_listed(false).resident;
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
    fn a_kept_list_is_used_within_its_age_and_taken_again_when_a_process_is_gone() {
        let me = std::process::id() as i32;
        let dir = tempfile::tempdir_in(env!("CARGO_MANIFEST_DIR")).unwrap();
        let procs = dir.path().join("cgroup.procs");
        std::fs::write(&procs, format!("{me}\n")).unwrap();
        let mut child = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .unwrap();
        let kid = child.id() as i32;
        let mut files = GroupFiles::new(procs.clone());
        let alone = files.read(false).resident;
        assert!(alone > 0);
        // The child joins: a pass within the list's age keeps the old list …
        std::fs::write(&procs, format!("{me}\n{kid}\n")).unwrap();
        files.listed_at = Some(Instant::now());
        files.read(false);
        assert_eq!(
            files.listed,
            vec![me],
            "a fresh kept list is not taken again"
        );
        // … and a pass after it lists the group again.
        files.listed_at = Some(Instant::now() - LIST_MAX_AGE);
        let both = files.read(false).resident;
        assert_eq!(files.listed, vec![me, kid]);
        assert!(both > alone, "{alone} → {both}");
        // The child exits and leaves the group: the very next pass, however fresh its list,
        // finds it gone and lists the group again.
        std::fs::write(&procs, format!("{me}\n")).unwrap();
        child.kill().unwrap();
        child.wait().unwrap();
        files.listed_at = Some(Instant::now());
        files.read(false);
        assert_eq!(files.listed, vec![me]);
        assert!(!files.pids.contains_key(&kid));
        // An empty list is never kept: the first process to join is seen at once.
        std::fs::write(&procs, "").unwrap();
        files.read_listed(false);
        assert!(files.listed.is_empty());
        std::fs::write(&procs, format!("{me}\n")).unwrap();
        assert!(files.read(false).resident > 0, "an empty list was kept");
        // fnbox starting a process drops the kept list.
        let sampler = ChargedSampler::new(procs.clone());
        assert!(sampler.current() > 0);
        std::fs::write(&procs, format!("{me}\n{me}\n")).unwrap();
        sampler.joined();
        assert_eq!(sampler.files.lock().unwrap().listed, vec![me]);
        sampler.current();
        assert_eq!(
            sampler.files.lock().unwrap().listed,
            vec![me, me],
            "joined() relists"
        );
    }

    #[test]
    fn kept_open_files_follow_the_processes_threads_and_writes() {
        let me = std::process::id() as i32;
        let dir = tempfile::tempdir_in(env!("CARGO_MANIFEST_DIR")).unwrap();
        // Any file listing pids stands in for `cgroup.procs`; -5 is never a pid.
        let procs = dir.path().join("cgroup.procs");
        std::fs::write(&procs, format!("{me}\n-5\n")).unwrap();
        let mut files = GroupFiles::new(procs.clone());
        let first = files.read(true);
        assert!(first.resident > 0);
        assert_eq!(files.pids.len(), 1, "the missing pid is skipped");
        let mut x = 0u64;
        for i in 0..5_000_000u64 {
            x = std::hint::black_box(x.wrapping_add(i ^ (x >> 3)));
        }
        let second = files.read(true);
        assert!(second.usage.cpu > first.usage.cpu, "{x}");
        // A new thread's CPU time is counted (the thread count changed: relisted).
        let (spun, wait) = std::sync::mpsc::channel();
        let (done, finish) = std::sync::mpsc::channel::<()>();
        let spin = std::thread::spawn(move || {
            // 50 ms of this thread's own CPU time, however busy the machine is.
            let own_cpu = || {
                let mut t = libc::timespec {
                    tv_sec: 0,
                    tv_nsec: 0,
                };
                // SAFETY: clock_gettime writes into the timespec passed, which outlives the call.
                unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut t) };
                Duration::new(t.tv_sec as u64, t.tv_nsec as u32)
            };
            let mut x = 0u64;
            while own_cpu() < Duration::from_millis(50) {
                x = std::hint::black_box(x.wrapping_add(1));
            }
            spun.send(x).unwrap();
            finish.recv().ok();
        });
        wait.recv().unwrap();
        let third = files.read(true);
        let threads = files.pids[&me].usage.as_ref().unwrap().threads.len();
        assert!(threads >= 2, "{threads}");
        assert!(
            third.usage.cpu >= second.usage.cpu + Duration::from_millis(50),
            "{second:?} → {third:?}"
        );
        done.send(()).unwrap();
        spin.join().unwrap();
        // The crate's directory is disk-backed (tmpfs writes are not counted).
        std::fs::write(dir.path().join("w"), vec![7u8; 64 * 1024]).unwrap();
        let fourth = files.read(true);
        assert!(
            fourth.usage.written >= third.usage.written + 64 * 1024,
            "{third:?} → {fourth:?}"
        );
        // A process that left the group is forgotten once the group is listed again.
        std::fs::write(&procs, "").unwrap();
        assert_eq!(files.read_listed(true).resident, 0);
        assert!(files.pids.is_empty());
        assert_eq!(
            parse_num_threads("1 (a) b) S 1 1 1 0 -1 0 0 0 0 0 0 0 0 0 20 0 7 0"),
            Some(7)
        );
    }
}
