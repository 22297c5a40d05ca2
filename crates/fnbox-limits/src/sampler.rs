//! The background sampler: one thread per controller, shared by all of its groups, that wakes
//! every [`SAMPLE_INTERVAL`] and lets each registered target take a sample.
//!
//! One shared thread (instead of one per group) means one `/proc` scan per tick however many
//! instances are running. The thread holds only weak references: a group that is dropped
//! disappears from the next tick, and the thread exits once no target is left (it is started
//! again by the next registration), so nothing outlives the groups.

use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::io::Read;
use std::sync::{Arc, Mutex, OnceLock, PoisonError, Weak};
use std::thread;
use std::time::Duration;

use crate::parse::parse_proc_stat;

/// How often targets are sampled.
pub(crate) const SAMPLE_INTERVAL: Duration = Duration::from_millis(10);

/// Something the sampler thread samples every tick.
pub(crate) trait SampleTarget: Send + Sync {
    /// Adds the process groups whose RSS this target needs to `out` (empty: no `/proc` scan).
    fn wanted_pgids(&self, out: &mut HashSet<i32>);
    /// Takes one sample; `scan` covers the union of all targets' wanted process groups.
    fn sample(&self, scan: &ProcScan);
}

/// Usage of one process group found by a `/proc` scan.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct PgrpUsage {
    pub rss_bytes: u64,
    pub members: u32,
}

/// The result of one `/proc` scan, restricted to the wanted process groups.
#[derive(Debug, Default)]
pub(crate) struct ProcScan {
    /// pgid → summed RSS of its members.
    pub groups: HashMap<i32, PgrpUsage>,
    /// For every wanted pgid that is also a live pid: that process's start time. Lets targets
    /// notice that a pgid number now belongs to somebody else.
    pub leaders: HashMap<i32, u64>,
}

/// The system page size in bytes.
pub(crate) fn page_size() -> u64 {
    static PAGE: OnceLock<u64> = OnceLock::new();
    *PAGE.get_or_init(|| {
        // SAFETY: sysconf(3) takes no pointers and only reads a configuration value; a
        // failure is the -1 handled below.
        let v = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
        if v > 0 {
            v as u64
        } else {
            4096
        }
    })
}

/// Reads `/proc/<pid>/stat` of every process and sums RSS per wanted process group.
/// Processes that vanish mid-scan are skipped.
pub(crate) fn scan_proc(wanted: &HashSet<i32>) -> ProcScan {
    let mut scan = ProcScan::default();
    if wanted.is_empty() {
        return scan;
    }
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return scan;
    };
    let page = page_size();
    let mut buf = Vec::with_capacity(512);
    for entry in dir.flatten() {
        let name = entry.file_name();
        let Some(pid) = name.to_str().and_then(|s| s.parse::<i32>().ok()) else {
            continue;
        };
        let mut path = [0u8; 32];
        let path = proc_stat_path(pid, &mut path);
        buf.clear();
        let Ok(mut f) = File::open(path) else {
            continue;
        };
        if f.read_to_end(&mut buf).is_err() {
            continue;
        }
        let Some(stat) = std::str::from_utf8(&buf).ok().and_then(parse_proc_stat) else {
            continue;
        };
        if wanted.contains(&pid) {
            scan.leaders.insert(pid, stat.starttime);
        }
        if wanted.contains(&stat.pgrp) {
            let u = scan.groups.entry(stat.pgrp).or_default();
            u.rss_bytes += stat.rss_pages * page;
            u.members += 1;
        }
    }
    scan
}

/// `/proc/<pid>/stat` formatted without allocating.
fn proc_stat_path(pid: i32, buf: &mut [u8; 32]) -> &str {
    let mut digits = [0u8; 24];
    let n = crate::parse::format_pid(pid, &mut digits);
    let mut len = 0;
    for part in [b"/proc/".as_slice(), &digits[..n], b"/stat"] {
        buf[len..len + part.len()].copy_from_slice(part);
        len += part.len();
    }
    std::str::from_utf8(&buf[..len]).unwrap_or("/proc/self/stat")
}

/// The shared sampler of one controller.
#[derive(Default)]
pub(crate) struct Sampler {
    state: Mutex<SamplerState>,
}

#[derive(Default)]
struct SamplerState {
    targets: Vec<Weak<dyn SampleTarget>>,
    running: bool,
}

impl std::fmt::Debug for Sampler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let st = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        f.debug_struct("Sampler")
            .field("targets", &st.targets.len())
            .field("running", &st.running)
            .finish()
    }
}

impl Sampler {
    /// Adds a target and makes sure the thread runs.
    pub(crate) fn register(self: &Arc<Self>, target: Weak<dyn SampleTarget>) {
        let mut st = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        st.targets.push(target);
        if st.running {
            return;
        }
        let me = Arc::clone(self);
        match thread::Builder::new()
            .name("fnbox-mem-sampler".into())
            .spawn(move || me.run())
        {
            Ok(_) => st.running = true,
            // Retried on the next registration; until then nothing is sampled.
            Err(e) => tracing::error!("cannot start the memory sampler thread: {e}"),
        }
    }

    fn run(self: Arc<Self>) {
        let mut wanted = HashSet::new();
        loop {
            // This is the sampler's own dedicated thread, never a tokio worker: sleeping here
            // is the whole point of the thread (a fixed sampling period), and nothing else
            // waits on it.
            #[allow(clippy::disallowed_methods)] // the sampler's own thread, see above
            thread::sleep(SAMPLE_INTERVAL);
            let targets: Vec<Arc<dyn SampleTarget>> = {
                let mut st = self.state.lock().unwrap_or_else(PoisonError::into_inner);
                st.targets.retain(|w| w.strong_count() > 0);
                if st.targets.is_empty() {
                    st.running = false;
                    return;
                }
                st.targets.iter().filter_map(Weak::upgrade).collect()
            };
            wanted.clear();
            for t in &targets {
                t.wanted_pgids(&mut wanted);
            }
            let scan = scan_proc(&wanted);
            for t in &targets {
                t.sample(&scan);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_path_format() {
        let mut b = [0u8; 32];
        assert_eq!(proc_stat_path(4194304, &mut b), "/proc/4194304/stat");
    }

    #[test]
    fn scan_finds_own_group() {
        // SAFETY: getpgrp(2) and getpid(2) take no arguments, cannot fail and touch no
        // memory of ours.
        let (pgrp, pid) = unsafe { (libc::getpgrp(), libc::getpid()) };
        let scan = scan_proc(&HashSet::from([pgrp, pid]));
        let usage = scan.groups.get(&pgrp).copied().unwrap_or_default();
        assert!(usage.members >= 1);
        assert!(usage.rss_bytes > 0);
        assert!(scan.leaders.contains_key(&pid));
        assert!(scan_proc(&HashSet::new()).groups.is_empty());
    }
}
