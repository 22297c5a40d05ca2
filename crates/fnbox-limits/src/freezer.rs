//! Freezing an instance between invocations (Lambda's freeze/thaw): [`FreezeController`] picks
//! the mode once at start-up, [`Freezer`] freezes and thaws one instance.
//!
//! Modes, best first:
//! 1. **cgroup v2**: the instance's memory group is a v2 cgroup; `cgroup.freeze` in it freezes
//!    the whole tree (kernel ≥ 5.2).
//! 2. **cgroup v1 freezer**: a `freezer` hierarchy is mounted and writable. fnbox keeps a
//!    sibling group `<freezer mount>/fnbox/<pid>-<starttime>/<instance>` and, before each
//!    freeze, moves every process of the instance's memory group (v1) into it — so children
//!    forked since the last freeze are frozen too — then writes `FROZEN` to `freezer.state`.
//! 3. **signals**: no cgroup freezer (or no memory cgroup to find the processes by): the
//!    engine sends SIGSTOP / SIGCONT to the instance's process groups ([`Freezer::Signals`]
//!    leaves that to the caller, who knows the groups). Processes that left their process
//!    group (`setsid`) are not stopped.
//!
//! A frozen v1 task does not die of SIGKILL until thawed: callers thaw before killing.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use crate::cgroup::{self, OwnerLease, Version, BASE_NAME};
use crate::{LimitError, MemoryController, MemoryGroup, MemoryMode};

/// How instances are frozen on this machine.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FreezeMode {
    /// `cgroup.freeze` of the instance's cgroup v2 group.
    CgroupV2,
    /// The cgroup v1 `freezer` controller.
    CgroupV1,
    /// SIGSTOP / SIGCONT of the instance's process groups.
    Signals,
}

impl std::fmt::Display for FreezeMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            FreezeMode::CgroupV2 => "cgroup v2 (cgroup.freeze)",
            FreezeMode::CgroupV1 => "cgroup v1 freezer",
            FreezeMode::Signals => "SIGSTOP/SIGCONT of the process groups",
        })
    }
}

/// Chooses the freeze mode and creates one [`Freezer`] per instance.
#[derive(Debug)]
pub struct FreezeController {
    mode: FreezeMode,
    /// v1: this run's directory in the freezer hierarchy (removed when the controller goes).
    v1: Option<OwnerLease>,
    /// v1: an empty group kept frozen while the controller lives (see [`pin`]).
    pin: Option<PathBuf>,
    /// Why the mode is what it is (fallbacks).
    reason: String,
}

impl FreezeController {
    /// Detects the best mode for instances whose memory groups come from `memory`; never fails
    /// (falls back to signals and records why). Also thaws and removes the freezer groups of
    /// dead fnbox runs, so their processes can die.
    pub fn detect(memory: &MemoryController) -> FreezeController {
        match memory.mode() {
            MemoryMode::CgroupV2 => FreezeController {
                mode: FreezeMode::CgroupV2,
                v1: None,
                pin: None,
                reason: String::new(),
            },
            MemoryMode::CgroupV1 => match setup_v1() {
                Ok(lease) => FreezeController {
                    mode: FreezeMode::CgroupV1,
                    pin: pin(lease.dir()),
                    v1: Some(lease),
                    reason: String::new(),
                },
                Err(e) => Self::signals(format!("no cgroup v1 freezer: {e}")),
            },
            MemoryMode::RssSampling => {
                Self::signals("memory limits by RSS sampling: no cgroup to freeze")
            }
        }
    }

    /// Forces the signal fallback, with the given reason.
    pub fn signals(reason: impl Into<String>) -> FreezeController {
        FreezeController {
            mode: FreezeMode::Signals,
            v1: None,
            pin: None,
            reason: reason.into(),
        }
    }

    /// The mode in use.
    pub fn mode(&self) -> FreezeMode {
        self.mode
    }

    /// One human line for start-up output, e.g. `freeze (Lambda): cgroup v1 freezer
    /// (/sys/fs/cgroup/freezer/fnbox/…)`.
    pub fn describe(&self) -> String {
        match (&self.v1, self.mode) {
            (Some(lease), _) => {
                format!("freeze (Lambda): {} ({})", self.mode, lease.dir().display())
            }
            (None, FreezeMode::Signals) => {
                format!("freeze (Lambda): {} ({})", self.mode, self.reason)
            }
            (None, _) => format!("freeze (Lambda): {}", self.mode),
        }
    }

    /// The freezer of one instance, whose processes live in `memory`.
    pub fn create(&self, memory: &MemoryGroup) -> Result<Freezer, LimitError> {
        match (self.mode, memory.cgroup_path(), &self.v1) {
            (FreezeMode::CgroupV2, Some(dir), _) => {
                let file = dir.join("cgroup.freeze");
                if !file.exists() {
                    // Kernels before 5.2: no cgroup.freeze.
                    return Ok(Freezer::Signals);
                }
                Ok(Freezer::V2 { file })
            }
            (FreezeMode::CgroupV1, Some(memory_dir), Some(lease)) => {
                let dir = lease.dir().join(memory.name());
                cgroup::mkdir(&dir)?;
                Ok(Freezer::V1 {
                    state: dir.join("freezer.state"),
                    procs: dir.join("cgroup.procs"),
                    members: memory_dir.join("cgroup.procs"),
                    dir,
                })
            }
            _ => Ok(Freezer::Signals),
        }
    }
}

impl Drop for FreezeController {
    fn drop(&mut self) {
        if let Some(pin) = self.pin.take() {
            let _ = cgroup::write(&pin.join("freezer.state"), "THAWED");
            let _ = fs::remove_dir(&pin);
        }
    }
}

/// An empty v1 group under `run`, kept frozen while the controller lives. The kernel enables
/// its freezer fast path (a static key) when the first group freezes and disables it when the
/// last one thaws; each flip patches kernel text, which made every freeze and every thaw of an
/// instance cost ~0.4 ms here. With one group always frozen, they cost ~15–35 µs. Named
/// `cgroup.pin-…`, which no instance group can be named (`check_group_name`). `None` (and a
/// slower freezer) when it cannot be made.
fn pin(run: &Path) -> Option<PathBuf> {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let dir = run.join(format!("cgroup.pin-{n}"));
    let made =
        cgroup::mkdir(&dir).and_then(|()| cgroup::write(&dir.join("freezer.state"), "FROZEN"));
    match made {
        Ok(()) => Some(dir),
        Err(e) => {
            tracing::debug!("no frozen pin group: {e}");
            let _ = fs::remove_dir(&dir);
            None
        }
    }
}

/// `<freezer mount>/fnbox`, if there is a cgroup v1 freezer hierarchy.
fn v1_base() -> Result<PathBuf, LimitError> {
    let mounts = cgroup::mounts()?;
    let mount = mounts
        .iter()
        .find(|m| m.fstype == "cgroup" && m.has_super_opt("freezer"))
        .ok_or_else(|| LimitError::Unsupported("no cgroup v1 freezer hierarchy mounted".into()))?;
    Ok(mount.mount_point.join(BASE_NAME))
}

/// This run's directory in the v1 freezer hierarchy (whether or not it exists yet), for the
/// [`crate::Watchdog`]: a frozen task does not die of SIGKILL, so the watchdog thaws it first.
pub(crate) fn v1_run_dir() -> Option<PathBuf> {
    let (pid, start) = cgroup::self_identity();
    v1_base()
        .ok()
        .map(|base| base.join(crate::parse::owner_name(pid, start)))
}

/// Thaws (and removes, once empty) the v1 freezer groups of dead fnbox runs: a frozen task
/// does not die of SIGKILL, so [`MemoryController::cleanup_stale`] calls this before it kills
/// a dead run's processes. Nothing to do without a v1 freezer hierarchy.
pub(crate) fn thaw_stale_runs() {
    let Ok(base) = v1_base() else { return };
    if !base.is_dir() {
        return;
    }
    cgroup::remove_stale_runs(&base, |group| {
        let _ = cgroup::write(&group.join("freezer.state"), "THAWED");
        // Fails while its (thawed, dying) processes are still in it: the next start retries.
        let _ = fs::remove_dir(group);
    });
}

/// `<freezer mount>/fnbox/<run>`, after thawing and removing the groups of dead runs.
fn setup_v1() -> Result<OwnerLease, LimitError> {
    let base = v1_base()?;
    cgroup::mkdir(&base)?;
    thaw_stale_runs();
    let lease = OwnerLease::acquire(&base, Version::V1)?;
    // Probe that control files are writable.
    cgroup::write(&lease.dir().join("freezer.state"), "THAWED")?;
    Ok(lease)
}

/// Freezes and thaws one instance.
#[derive(Debug)]
pub enum Freezer {
    /// `cgroup.freeze` of the instance's v2 group.
    V2 {
        /// `<group>/cgroup.freeze`.
        file: PathBuf,
    },
    /// A v1 freezer group next to the instance's memory group.
    V1 {
        /// The freezer group.
        dir: PathBuf,
        /// Its `freezer.state`.
        state: PathBuf,
        /// Its `cgroup.procs`.
        procs: PathBuf,
        /// The memory group's `cgroup.procs`: every process of the instance.
        members: PathBuf,
    },
    /// No cgroup freezer: the caller stops and continues the process groups.
    Signals,
}

impl Freezer {
    /// The mode of this freezer.
    pub fn mode(&self) -> FreezeMode {
        match self {
            Freezer::V2 { .. } => FreezeMode::CgroupV2,
            Freezer::V1 { .. } => FreezeMode::CgroupV1,
            Freezer::Signals => FreezeMode::Signals,
        }
    }

    /// Freezes every process of the instance (cgroup modes; a no-op for [`Freezer::Signals`]).
    /// Returns once the kernel took the request; the tasks stop at their next return to user
    /// space.
    pub fn freeze(&self) -> Result<(), LimitError> {
        match self {
            Freezer::V2 { file } => cgroup::write(file, "1"),
            Freezer::V1 {
                state,
                procs,
                members,
                ..
            } => {
                // Newcomers (children forked since the last freeze) join first. Only they
                // move: a cgroup migration is costly (it waits for an RCU grace period).
                let listed = cgroup::read(members)?;
                let joined = cgroup::read(procs)?;
                let joined: std::collections::HashSet<&str> = joined.split_whitespace().collect();
                for pid in listed.split_whitespace().filter(|p| !joined.contains(p)) {
                    if let Err(e) = fs::write(procs, pid) {
                        // ESRCH: it exited in between.
                        if e.raw_os_error() != Some(libc::ESRCH) {
                            return Err(LimitError::Io {
                                action: "writing",
                                path: procs.clone(),
                                source: e,
                            });
                        }
                    }
                }
                cgroup::write(state, "FROZEN")
            }
            Freezer::Signals => Ok(()),
        }
    }

    /// Thaws every process of the instance (cgroup modes; a no-op for [`Freezer::Signals`]).
    pub fn thaw(&self) -> Result<(), LimitError> {
        match self {
            Freezer::V2 { file } => cgroup::write(file, "0"),
            Freezer::V1 { state, .. } => cgroup::write(state, "THAWED"),
            Freezer::Signals => Ok(()),
        }
    }

    /// Whether the kernel reports the group completely frozen (cgroup modes; `false` for
    /// [`Freezer::Signals`]).
    pub fn is_frozen(&self) -> bool {
        match self {
            Freezer::V2 { file } => file
                .parent()
                .and_then(|d| fs::read_to_string(d.join("cgroup.events")).ok())
                .is_some_and(|e| e.lines().any(|l| l.trim() == "frozen 1")),
            Freezer::V1 { state, .. } => {
                fs::read_to_string(state).is_ok_and(|s| s.trim() == "FROZEN")
            }
            Freezer::Signals => false,
        }
    }

    /// Thaws and removes the v1 group (its processes move back out as they die); nothing to do
    /// otherwise (the v2 file belongs to the memory group).
    pub fn remove(&self) {
        if let Freezer::V1 { dir, .. } = self {
            let _ = self.thaw();
            if let Err(e) = remove_when_empty(dir) {
                tracing::debug!("removing {}: {e}", dir.display());
            }
        }
    }
}

impl Drop for Freezer {
    fn drop(&mut self) {
        self.remove();
    }
}

/// `rmdir` of a v1 freezer group: fails with EBUSY while a (dying) process is still in it, in
/// which case it is left for the next start's clean-up.
fn remove_when_empty(dir: &Path) -> io::Result<()> {
    match fs::remove_dir(dir) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn describe_names_the_mode_and_the_reason() {
        let c = FreezeController::signals("no cgroup");
        assert_eq!(c.mode(), FreezeMode::Signals);
        assert_eq!(
            c.describe(),
            "freeze (Lambda): SIGSTOP/SIGCONT of the process groups (no cgroup)"
        );
    }

    #[test]
    fn rss_memory_means_signals() {
        let memory = MemoryController::rss_sampling("test");
        let c = FreezeController::detect(&memory);
        assert_eq!(c.mode(), FreezeMode::Signals);
        let group = memory.create_group("freeze-rss", 64 << 20).unwrap();
        let f = c.create(&group).unwrap();
        assert_eq!(f.mode(), FreezeMode::Signals);
        f.freeze().unwrap();
        assert!(!f.is_frozen());
    }
}
