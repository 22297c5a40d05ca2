//! RSS-sampling fallback: the limit is enforced by the sampler summing the RSS of the watched
//! process groups and SIGKILLing them all when the sum exceeds the limit.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};

use crate::parse::parse_proc_stat;
use crate::sampler::{scan_proc, ProcScan, SampleTarget};

/// A watched pgid disappears from the watch list after this many consecutive scans without a
/// member, so that a later reuse of the number by an unrelated process group is never sampled
/// or killed. More than one scan because a `/proc` walk is not atomic.
const PRUNE_AFTER_EMPTY_SCANS: u32 = 3;

#[derive(Debug)]
struct Watched {
    pgid: i32,
    /// Start time of the process whose pid is `pgid`, when it was watched: a different start
    /// time later means the number was reused.
    leader_start: Option<u64>,
    empty_scans: u32,
}

/// Shared state of one group in RSS mode (the sampler holds a weak reference).
#[derive(Debug)]
pub(crate) struct RssState {
    name: String,
    limit: u64,
    watched: Mutex<Vec<Watched>>,
    current: AtomicU64,
    peak: AtomicU64,
    oom_kills: AtomicU64,
    /// Set after a kill until usage is back under the limit, so one excess counts once.
    kill_pending: AtomicBool,
    closed: AtomicBool,
}

fn start_time_of(pid: i32) -> Option<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    parse_proc_stat(&text).map(|s| s.starttime)
}

fn killpg(pgid: i32) {
    // Never signal our own group, pgid 0 (= own group) or 1/negative (broadcast semantics).
    // SAFETY: getpgrp(2) takes no arguments and cannot fail.
    if pgid <= 1 || pgid == unsafe { libc::getpgrp() } {
        return;
    }
    // SAFETY: killpg(2) takes no pointers. pgid > 1 and is not our own group (checked
    // above), so it neither broadcasts nor hits fnbox; ESRCH (group already gone) is harmless.
    unsafe {
        libc::killpg(pgid, libc::SIGKILL);
    }
}

impl RssState {
    pub(crate) fn new(name: &str, limit: u64) -> Self {
        RssState {
            name: name.to_string(),
            limit,
            watched: Mutex::new(Vec::new()),
            current: AtomicU64::new(0),
            peak: AtomicU64::new(0),
            oom_kills: AtomicU64::new(0),
            kill_pending: AtomicBool::new(false),
            closed: AtomicBool::new(false),
        }
    }

    pub(crate) fn watch(&self, pgid: i32) {
        // SAFETY: getpgrp(2) takes no arguments and cannot fail.
        let own = unsafe { libc::getpgrp() };
        if pgid <= 1 || pgid == own {
            tracing::warn!(group = %self.name, pgid, "refusing to watch this process group (would include fnbox itself)");
            return;
        }
        let mut w = self.watched.lock().unwrap_or_else(PoisonError::into_inner);
        if w.iter().any(|x| x.pgid == pgid) {
            return;
        }
        w.push(Watched {
            pgid,
            leader_start: start_time_of(pgid),
            empty_scans: 0,
        });
    }

    /// Watched pgids that still (verifiably) belong to this group.
    fn live_pgids(&self) -> Vec<i32> {
        let w = self.watched.lock().unwrap_or_else(PoisonError::into_inner);
        w.iter()
            .filter(|x| match (x.leader_start, start_time_of(x.pgid)) {
                (Some(then), Some(now)) => then == now,
                _ => true,
            })
            .map(|x| x.pgid)
            .collect()
    }

    /// Pids of the watched process groups' members now.
    pub(crate) fn pids(&self) -> Vec<i32> {
        crate::charged::pids_in_pgroups(&self.live_pgids().into_iter().collect())
    }

    pub(crate) fn kill_all(&self) {
        for pgid in self.live_pgids() {
            killpg(pgid);
        }
    }

    pub(crate) fn close(&self) {
        self.closed.store(true, Ordering::SeqCst);
    }

    /// Usage now, from a fresh `/proc` scan (the last sample may predate an exit).
    fn fresh_usage(&self) -> u64 {
        let watched: Vec<(i32, Option<u64>)> = {
            let w = self.watched.lock().unwrap_or_else(PoisonError::into_inner);
            w.iter().map(|x| (x.pgid, x.leader_start)).collect()
        };
        let scan = scan_proc(&watched.iter().map(|&(pgid, _)| pgid).collect());
        watched
            .iter()
            .filter(|(pgid, start)| match (start, scan.leaders.get(pgid)) {
                (Some(then), Some(now)) => then == now,
                _ => true,
            })
            .filter_map(|(pgid, _)| scan.groups.get(pgid))
            .map(|u| u.rss_bytes)
            .sum()
    }

    pub(crate) fn reset_peak(&self) {
        let now = self.fresh_usage();
        self.current.store(now, Ordering::SeqCst);
        self.peak.store(now, Ordering::SeqCst);
    }

    pub(crate) fn peak_bytes(&self) -> u64 {
        self.peak.load(Ordering::SeqCst)
    }

    pub(crate) fn current_bytes(&self) -> u64 {
        let now = self.fresh_usage();
        self.current.store(now, Ordering::SeqCst);
        self.peak.fetch_max(now, Ordering::SeqCst);
        now
    }

    pub(crate) fn oom_kills(&self) -> u64 {
        self.oom_kills.load(Ordering::SeqCst)
    }
}

impl SampleTarget for RssState {
    fn wanted_pgids(&self, out: &mut HashSet<i32>) {
        if self.closed.load(Ordering::SeqCst) {
            return;
        }
        let w = self.watched.lock().unwrap_or_else(PoisonError::into_inner);
        out.extend(w.iter().map(|x| x.pgid));
    }

    fn sample(&self, scan: &ProcScan) {
        if self.closed.load(Ordering::SeqCst) {
            return;
        }
        let mut sum = 0u64;
        let pgids: Vec<i32> = {
            let mut w = self.watched.lock().unwrap_or_else(PoisonError::into_inner);
            w.retain_mut(|x| {
                if let (Some(then), Some(now)) = (x.leader_start, scan.leaders.get(&x.pgid)) {
                    if then != *now {
                        return false; // the number belongs to another process now
                    }
                }
                match scan.groups.get(&x.pgid) {
                    Some(u) => {
                        sum += u.rss_bytes;
                        x.empty_scans = 0;
                        true
                    }
                    None => {
                        x.empty_scans += 1;
                        x.empty_scans < PRUNE_AFTER_EMPTY_SCANS
                    }
                }
            });
            w.iter().map(|x| x.pgid).collect()
        };
        self.current.store(sum, Ordering::SeqCst);
        self.peak.fetch_max(sum, Ordering::SeqCst);
        if sum > self.limit {
            if !self.kill_pending.swap(true, Ordering::SeqCst) {
                self.oom_kills.fetch_add(1, Ordering::SeqCst);
                tracing::warn!(
                    group = %self.name,
                    rss_bytes = sum,
                    limit_bytes = self.limit,
                    "memory limit exceeded (RSS sampling): killing the instance's process groups"
                );
            }
            for pgid in pgids {
                killpg(pgid);
            }
        } else {
            self.kill_pending.store(false, Ordering::SeqCst);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sampler::PgrpUsage;

    fn scan(groups: &[(i32, u64)], leaders: &[(i32, u64)]) -> ProcScan {
        ProcScan {
            groups: groups
                .iter()
                .map(|&(g, b)| {
                    (
                        g,
                        PgrpUsage {
                            rss_bytes: b,
                            members: 1,
                        },
                    )
                })
                .collect(),
            leaders: leaders.iter().copied().collect(),
        }
    }

    fn state_with(pgid: i32, leader_start: Option<u64>) -> RssState {
        let s = RssState::new("t", 1000);
        s.watched.lock().unwrap().push(Watched {
            pgid,
            leader_start,
            empty_scans: 0,
        });
        s
    }

    #[test]
    fn peak_and_reset() {
        // pgid numbers far above pid_max, so the kill path can never hit a real group.
        let s = state_with(0x7fff_0001, None);
        s.sample(&scan(&[(0x7fff_0001, 600)], &[]));
        s.sample(&scan(&[(0x7fff_0001, 200)], &[]));
        assert_eq!(s.peak_bytes(), 600);
        assert_eq!(s.current.load(Ordering::SeqCst), 200);
        // The reset rescans /proc, where these pgids do not exist.
        s.reset_peak();
        assert_eq!(s.peak_bytes(), 0);
        assert_eq!(s.oom_kills(), 0);
    }

    #[test]
    fn one_excess_counts_once() {
        let s = state_with(0x7fff_0002, None);
        s.sample(&scan(&[(0x7fff_0002, 2000)], &[]));
        s.sample(&scan(&[(0x7fff_0002, 3000)], &[]));
        assert_eq!(s.oom_kills(), 1);
        s.sample(&scan(&[], &[]));
        s.sample(&scan(&[(0x7fff_0002, 5000)], &[]));
        assert_eq!(s.oom_kills(), 2);
    }

    #[test]
    fn reused_or_vanished_pgids_are_dropped() {
        let s = state_with(0x7fff_0003, Some(10));
        s.sample(&scan(&[(0x7fff_0003, 100)], &[(0x7fff_0003, 11)]));
        assert!(s.watched.lock().unwrap().is_empty());
        assert_eq!(s.current.load(Ordering::SeqCst), 0);

        let s = state_with(0x7fff_0004, None);
        for _ in 0..PRUNE_AFTER_EMPTY_SCANS {
            s.sample(&scan(&[], &[]));
        }
        assert!(s.watched.lock().unwrap().is_empty());
    }
}
