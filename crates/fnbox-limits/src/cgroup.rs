//! cgroup v2 and v1 back-ends: finding and preparing the delegated sub-tree, creating one
//! cgroup per instance, reading its counters, killing its processes and removing it.

use std::collections::{HashMap, HashSet};
use std::ffi::CString;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::thread;
use std::time::Duration;

use crate::charged::ChargedSampler;
use crate::parse::{
    cgroup_dir, keyed_value, owner_name, parse_mountinfo, parse_owner_name, parse_proc_stat,
    single_value, v1_cgroup_path, v2_cgroup_path,
};
use crate::sampler::{ProcScan, SampleTarget, Sampler};
use crate::LimitError;

/// Name of the directory (under the delegated cgroup) that holds everything fnbox creates.
pub(crate) const BASE_NAME: &str = "fnbox";
/// cgroup v2 leaf fnbox moves itself into when its own cgroup must become an inner node.
pub(crate) const SELF_LEAF: &str = "fnbox-self";

/// How long removing a group keeps retrying `rmdir` while killed processes finish exiting.
const RMDIR_TIMEOUT: Duration = Duration::from_secs(2);
/// Pause between two `rmdir` attempts of the synchronous start-up clean-up.
const RMDIR_STEP: Duration = Duration::from_millis(10);
/// First pause between two `rmdir` attempts of the async removal; it doubles up to
/// [`RMDIR_STEP`]. Killed processes usually leave within a millisecond or two, so starting
/// small keeps an instance's teardown short without polling hard when one takes longer.
const RMDIR_FIRST_STEP: Duration = Duration::from_millis(1);
/// How often a removal that keeps finding the group busy kills its processes again (a process
/// that was forking while the list was read may have escaped the previous round).
const RE_KILL_EVERY: Duration = Duration::from_millis(200);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Version {
    V1,
    V2,
}

fn io_err<'a>(action: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> LimitError + 'a {
    move |source| LimitError::Io {
        action,
        path: path.to_path_buf(),
        source,
    }
}

pub(crate) fn read(path: &Path) -> Result<String, LimitError> {
    fs::read_to_string(path).map_err(io_err("reading", path))
}

/// Writes `value` to an existing (control) file in one `write`, without O_CREAT/O_TRUNC.
pub(crate) fn write(path: &Path, value: &str) -> Result<(), LimitError> {
    let mut f = OpenOptions::new()
        .write(true)
        .open(path)
        .map_err(io_err("opening", path))?;
    f.write_all(value.as_bytes())
        .map_err(io_err("writing", path))
}

/// Opens a cgroup file for positioned reads and writes.
fn open_rw(path: &Path) -> Result<File, LimitError> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .map_err(io_err("opening", path))
}

/// The whole (small) content of an open cgroup file: a positioned read from offset 0, which
/// makes the kernel generate it afresh.
fn read_at_start<'b>(f: &File, buf: &'b mut [u8]) -> io::Result<&'b str> {
    let n = f.read_at(buf, 0)?;
    std::str::from_utf8(&buf[..n]).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
}

fn read_value(path: &Path) -> Option<u64> {
    match fs::read_to_string(path) {
        Ok(t) => single_value(&t),
        Err(e) => {
            tracing::debug!("reading {}: {e}", path.display());
            None
        }
    }
}

/// `mkdir` that accepts an existing directory.
pub(crate) fn mkdir(path: &Path) -> Result<(), LimitError> {
    match fs::create_dir(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(LimitError::Io {
            action: "creating",
            path: path.to_path_buf(),
            source: e,
        }),
    }
}

/// Our pid and start time, which name our run directory.
pub(crate) fn self_identity() -> (i32, u64) {
    static ID: OnceLock<u64> = OnceLock::new();
    let start = *ID.get_or_init(|| {
        fs::read_to_string("/proc/self/stat")
            .ok()
            .and_then(|t| parse_proc_stat(&t))
            .map_or(0, |s| s.starttime)
    });
    (std::process::id() as i32, start)
}

/// Whether the process `pid` started at `start` is still running.
pub(crate) fn process_alive(pid: i32, start: u64) -> bool {
    match fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(t) => parse_proc_stat(&t).is_some_and(|s| s.starttime == start),
        Err(_) => false,
    }
}

/// Live controllers per run directory, so the run directory is removed when the last
/// controller of this process goes away, and never while another one may create groups in it.
static LEASES: Mutex<Option<HashMap<PathBuf, usize>>> = Mutex::new(None);

/// Keeps this process's run directory (`<base>/<pid>-<starttime>`) alive.
#[derive(Debug)]
pub(crate) struct OwnerLease {
    dir: PathBuf,
}

impl OwnerLease {
    pub(crate) fn acquire(base: &Path, version: Version) -> Result<OwnerLease, LimitError> {
        let (pid, start) = self_identity();
        let dir = base.join(owner_name(pid, start));
        let mut leases = LEASES.lock().unwrap_or_else(PoisonError::into_inner);
        mkdir(&dir)?;
        if version == Version::V2 {
            enable_memory_subtree(&dir)?;
        }
        *leases
            .get_or_insert_with(HashMap::new)
            .entry(dir.clone())
            .or_insert(0) += 1;
        Ok(OwnerLease { dir })
    }
}

impl OwnerLease {
    /// `<base>/<pid>-<starttime>`.
    pub(crate) fn dir(&self) -> &Path {
        &self.dir
    }
}

/// Calls `remove_group` for every group directory of dead runs under `base` (see
/// [`CgroupSetup::cleanup_stale`]), then removes their run directories. Used by the freezer
/// hierarchy, whose groups hold no memory state.
pub(crate) fn remove_stale_runs(base: &Path, remove_group: impl Fn(&Path)) {
    let (me, my_start) = self_identity();
    let Ok(entries) = fs::read_dir(base) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some((pid, start)) = name.to_str().and_then(parse_owner_name) else {
            continue;
        };
        if (pid == me && start == my_start) || process_alive(pid, start) {
            continue;
        }
        let run_dir = entry.path();
        if let Ok(groups) = fs::read_dir(&run_dir) {
            for g in groups.flatten() {
                if g.file_type().is_ok_and(|t| t.is_dir()) {
                    remove_group(&g.path());
                }
            }
        }
        if let Err(e) = fs::remove_dir(&run_dir) {
            tracing::debug!("removing stale {}: {e}", run_dir.display());
        }
    }
}

impl Drop for OwnerLease {
    fn drop(&mut self) {
        let mut leases = LEASES.lock().unwrap_or_else(PoisonError::into_inner);
        let Some(map) = leases.as_mut() else { return };
        let Some(n) = map.get_mut(&self.dir) else {
            return;
        };
        *n -= 1;
        if *n == 0 {
            map.remove(&self.dir);
            // Fails (harmlessly) if a forgotten group is still inside; cleanup_stale of a later
            // run removes it then.
            if let Err(e) = fs::remove_dir(&self.dir) {
                tracing::debug!("removing {}: {e}", self.dir.display());
            }
        }
    }
}

/// The prepared sub-tree of a cgroup controller.
#[derive(Debug)]
pub(crate) struct CgroupSetup {
    pub version: Version,
    /// `<delegated cgroup>/fnbox`: shared by all fnbox runs.
    pub base: PathBuf,
    /// `<base>/<pid>-<starttime>`: this run's groups.
    lease: OwnerLease,
}

pub(crate) fn mounts() -> Result<Vec<crate::parse::MountInfo>, LimitError> {
    Ok(parse_mountinfo(&read(Path::new("/proc/self/mountinfo"))?))
}

fn unsupported(msg: impl Into<String>) -> LimitError {
    LimitError::Unsupported(msg.into())
}

/// Prepares cgroup v2: `<own>/fnbox/<run>/`, with `+memory` in every `subtree_control` on the
/// way. If our own cgroup holds processes (us), v2's "no internal processes" rule forbids
/// enabling controllers for its children, so fnbox first moves itself into `<own>/fnbox-self`.
pub(crate) fn setup_v2() -> Result<CgroupSetup, LimitError> {
    let mounts = mounts()?;
    let mount = mounts
        .iter()
        .find(|m| m.fstype == "cgroup2")
        .ok_or_else(|| unsupported("no cgroup2 mounted"))?;
    let cg = read(Path::new("/proc/self/cgroup"))?;
    let own =
        v2_cgroup_path(&cg).ok_or_else(|| unsupported("no cgroup v2 line in /proc/self/cgroup"))?;
    let own_dir = cgroup_dir(mount, own).ok_or_else(|| {
        unsupported(format!(
            "own cgroup {own} not visible under {}",
            mount.mount_point.display()
        ))
    })?;
    // After an earlier move into the leaf (same process, earlier controller), delegate from
    // the leaf's parent again instead of nesting deeper.
    let root = match own_dir.file_name() {
        Some(n) if n == SELF_LEAF => own_dir.parent().map_or(own_dir.clone(), Path::to_path_buf),
        _ => own_dir,
    };
    let controllers = read(&root.join("cgroup.controllers"))?;
    if !controllers.split_whitespace().any(|c| c == "memory") {
        return Err(unsupported(format!(
            "memory controller not available in cgroup2 {} (cgroup.controllers: {:?})",
            root.display(),
            controllers.trim()
        )));
    }
    if let Err(e) = enable_memory_subtree(&root) {
        let busy = matches!(&e, LimitError::Io { source, .. } if source.raw_os_error() == Some(libc::EBUSY));
        if !busy {
            return Err(e);
        }
        let leaf = root.join(SELF_LEAF);
        mkdir(&leaf)?;
        let pid = std::process::id().to_string();
        write(&leaf.join("cgroup.procs"), &pid)?;
        tracing::info!(
            "moved fnbox into {} (cgroup v2 no-internal-processes rule)",
            leaf.display()
        );
        if let Err(e) = enable_memory_subtree(&root) {
            // Other processes share our cgroup: undo the move, give up on v2.
            let _ = write(&root.join("cgroup.procs"), &pid);
            return Err(e);
        }
    }
    let base = root.join(BASE_NAME);
    mkdir(&base)?;
    enable_memory_subtree(&base)?;
    let lease = OwnerLease::acquire(&base, Version::V2)?;
    Ok(CgroupSetup {
        version: Version::V2,
        base,
        lease,
    })
}

fn enable_memory_subtree(dir: &Path) -> Result<(), LimitError> {
    let path = dir.join("cgroup.subtree_control");
    if read(&path)?.split_whitespace().any(|c| c == "memory") {
        return Ok(());
    }
    write(&path, "+memory")
}

/// Prepares cgroup v1: `<memory mount>/fnbox/<run>/`, or, if the hierarchy root is not
/// writable, `<own memory cgroup>/fnbox/<run>/`.
///
/// The hierarchy root comes first (like Docker's cgroupfs driver) because a child directory
/// left in our own cgroup would make its manager's `rmdir` of that cgroup fail; in a container
/// with a cgroup namespace or a sub-tree mount, the "root" is the container's cgroup anyway.
pub(crate) fn setup_v1() -> Result<CgroupSetup, LimitError> {
    let mounts = mounts()?;
    let mount = mounts
        .iter()
        .find(|m| m.fstype == "cgroup" && m.has_super_opt("memory"))
        .ok_or_else(|| unsupported("no cgroup v1 memory hierarchy mounted"))?;
    let mut candidates = vec![mount.mount_point.join(BASE_NAME)];
    if let Ok(cg) = fs::read_to_string("/proc/self/cgroup") {
        if let Some(own_dir) = v1_cgroup_path(&cg, "memory").and_then(|own| cgroup_dir(mount, own))
        {
            if own_dir != mount.mount_point {
                candidates.push(own_dir.join(BASE_NAME));
            }
        }
    }
    let mut errors = Vec::new();
    for base in candidates {
        match try_v1_base(&base) {
            Ok(setup) => return Ok(setup),
            Err(e) => errors.push(e.to_string()),
        }
    }
    Err(unsupported(errors.join("; ")))
}

fn try_v1_base(base: &Path) -> Result<CgroupSetup, LimitError> {
    mkdir(base)?;
    let lease = OwnerLease::acquire(base, Version::V1)?;
    // Probe that control files are writable (a read-only or non-delegated cgroupfs may still
    // allow mkdir for root in a user namespace): -1 is "unlimited", the default.
    write(&lease.dir.join("memory.limit_in_bytes"), "-1")?;
    Ok(CgroupSetup {
        version: Version::V1,
        base: base.to_path_buf(),
        lease,
    })
}

/// Prepares the cgroup v1 `pids` hierarchy: `<pids mount>/fnbox/<run>/`, or under our own
/// pids cgroup when the hierarchy root is not writable (as [`setup_v1`] does for memory).
pub(crate) fn setup_pids_v1() -> Result<CgroupSetup, LimitError> {
    let mounts = mounts()?;
    let mount = mounts
        .iter()
        .find(|m| m.fstype == "cgroup" && m.has_super_opt("pids"))
        .ok_or_else(|| unsupported("no cgroup v1 pids hierarchy mounted"))?;
    let mut candidates = vec![mount.mount_point.join(BASE_NAME)];
    if let Ok(cg) = fs::read_to_string("/proc/self/cgroup") {
        if let Some(own_dir) = v1_cgroup_path(&cg, "pids").and_then(|own| cgroup_dir(mount, own)) {
            if own_dir != mount.mount_point {
                candidates.push(own_dir.join(BASE_NAME));
            }
        }
    }
    let mut errors = Vec::new();
    for base in candidates {
        let attempt = mkdir(&base).and_then(|()| {
            let lease = OwnerLease::acquire(&base, Version::V1)?;
            write(&lease.dir.join("pids.max"), "max")?;
            Ok(CgroupSetup {
                version: Version::V1,
                base: base.clone(),
                lease,
            })
        });
        match attempt {
            Ok(setup) => return Ok(setup),
            Err(e) => errors.push(e.to_string()),
        }
    }
    Err(unsupported(errors.join("; ")))
}

/// Enables the `pids` controller for the children of every directory from `root` down to
/// `run_dir` (cgroup v2), so each instance's memory group also has `pids.max`.
pub(crate) fn enable_pids_v2(setup: &CgroupSetup) -> Result<(), LimitError> {
    let root = setup.base.parent().unwrap_or(&setup.base).to_path_buf();
    for dir in [root.as_path(), setup.base.as_path(), setup.run_dir()] {
        let path = dir.join("cgroup.subtree_control");
        if !read(&path)?.split_whitespace().any(|c| c == "pids") {
            write(&path, "+pids")?;
        }
    }
    Ok(())
}

impl CgroupSetup {
    pub(crate) fn run_dir(&self) -> &Path {
        &self.lease.dir
    }

    /// Removes the groups of dead fnbox runs (their run directory names a process that no
    /// longer exists). Groups of live runs, including our own, are left alone: they may be in
    /// use by a concurrently running fnbox.
    pub(crate) fn cleanup_stale(&self) -> usize {
        let (me, my_start) = self_identity();
        let Ok(entries) = fs::read_dir(&self.base) else {
            return 0;
        };
        let mut removed = 0;
        for entry in entries.flatten() {
            let name = entry.file_name();
            let Some((pid, start)) = name.to_str().and_then(parse_owner_name) else {
                continue;
            };
            if (pid == me && start == my_start) || process_alive(pid, start) {
                continue;
            }
            let run_dir = entry.path();
            if let Ok(groups) = fs::read_dir(&run_dir) {
                for g in groups.flatten() {
                    if !g.file_type().is_ok_and(|t| t.is_dir()) {
                        continue;
                    }
                    let dir = g.path();
                    kill_all(&dir, self.version);
                    if remove_group_dir(&dir, self.version) {
                        tracing::info!("removed stale memory group {}", dir.display());
                        removed += 1;
                    }
                }
            }
            if let Err(e) = fs::remove_dir(&run_dir) {
                tracing::warn!("removing stale {}: {e}", run_dir.display());
            }
        }
        removed
    }
}

/// SIGKILLs every process listed in `<dir>/cgroup.procs`, re-reading the list until a round
/// finds nobody new or a few rounds have passed. Never sleeps (it runs on async paths): a
/// process with a pending SIGKILL can no longer fork (the kernel refuses `fork` with a fatal
/// signal pending), so the only newcomers a re-read can find are children forked just before
/// their parent was signalled, and the next round catches those. Whatever still escapes is
/// killed again by [`remove_group_dir_async`] / [`remove_group_dir`] while they retry.
pub(crate) fn kill_all(dir: &Path, version: Version) {
    let kill_file = dir.join("cgroup.kill");
    if version == Version::V2 && kill_file.exists() && write(&kill_file, "1").is_ok() {
        return;
    }
    let procs = dir.join("cgroup.procs");
    let mut killed = HashSet::new();
    for _ in 0..5 {
        let Ok(list) = fs::read_to_string(&procs) else {
            return;
        };
        let mut new = 0;
        for pid in list.lines().filter_map(|l| l.trim().parse::<i32>().ok()) {
            if pid > 1 && killed.insert(pid) {
                new += 1;
                // SAFETY: kill(2) takes no pointers, so it cannot break memory safety. The pid
                // comes from this group's `cgroup.procs` and pids <= 1 are skipped, so we never
                // broadcast (-1) or signal init; a pid that exited meanwhile yields ESRCH.
                unsafe {
                    libc::kill(pid, libc::SIGKILL);
                }
            }
        }
        if new == 0 {
            return;
        }
    }
}

/// What one `rmdir` of a group directory achieved.
pub(crate) enum Rmdir {
    /// The directory is gone (removed now, or already).
    Gone,
    /// `EBUSY`: processes (or a child cgroup) are still inside.
    Busy,
    /// Any other error; retrying will not help.
    Failed(io::Error),
}

pub(crate) fn try_rmdir(dir: &Path) -> Rmdir {
    match fs::remove_dir(dir) {
        Ok(()) => Rmdir::Gone,
        Err(e) if e.kind() == io::ErrorKind::NotFound => Rmdir::Gone,
        Err(e) if e.raw_os_error() == Some(libc::EBUSY) => Rmdir::Busy,
        Err(e) => Rmdir::Failed(e),
    }
}

/// `rmdir` with retries while killed processes are still exiting, for the start-up clean-up
/// of dead runs ([`CgroupSetup::cleanup_stale`]). Returns whether the directory is gone.
///
/// Synchronous on purpose: it sleeps between attempts (at most [`RMDIR_TIMEOUT`]), which is
/// acceptable once at start-up but never on a tokio worker during serving; instances use
/// [`remove_group_dir_async`] instead.
fn remove_group_dir(dir: &Path, version: Version) -> bool {
    let mut waited = Duration::ZERO;
    let mut since_kill = Duration::ZERO;
    loop {
        match try_rmdir(dir) {
            Rmdir::Gone => return true,
            Rmdir::Busy if waited < RMDIR_TIMEOUT => {
                if since_kill >= RE_KILL_EVERY {
                    kill_all(dir, version);
                    since_kill = Duration::ZERO;
                }
                #[allow(clippy::disallowed_methods)] // synchronous on purpose, see above
                thread::sleep(RMDIR_STEP);
                waited += RMDIR_STEP;
                since_kill += RMDIR_STEP;
            }
            Rmdir::Busy => {
                tracing::warn!(
                    "cannot remove memory group {}: still busy after {RMDIR_TIMEOUT:?}",
                    dir.display()
                );
                return false;
            }
            Rmdir::Failed(e) => {
                tracing::warn!("cannot remove memory group {}: {e}", dir.display());
                return false;
            }
        }
    }
}

/// The async twin of [`remove_group_dir`]: the same bounded retries, but the pauses are
/// `tokio::time::sleep`s, so a tokio worker is never blocked while killed processes leave the
/// group. Returns whether the directory is gone.
pub(crate) async fn remove_group_dir_async(dir: &Path, version: Version) -> bool {
    let start = tokio::time::Instant::now();
    let deadline = start + RMDIR_TIMEOUT;
    let mut next_kill = start + RE_KILL_EVERY;
    let mut step = RMDIR_FIRST_STEP;
    loop {
        match try_rmdir(dir) {
            Rmdir::Gone => return true,
            Rmdir::Busy => {
                let now = tokio::time::Instant::now();
                if now >= deadline {
                    tracing::warn!(
                        "cannot remove memory group {}: still busy after {RMDIR_TIMEOUT:?}; \
                         the next start's stale clean-up will retry",
                        dir.display()
                    );
                    return false;
                }
                if now >= next_kill {
                    kill_all(dir, version);
                    next_kill = now + RE_KILL_EVERY;
                }
                tokio::time::sleep(step.min(deadline - now)).await;
                step = (step * 2).min(RMDIR_STEP);
            }
            Rmdir::Failed(e) => {
                tracing::warn!("cannot remove memory group {}: {e}", dir.display());
                return false;
            }
        }
    }
}

/// Where the peak of a v2 group comes from.
#[derive(Debug)]
enum PeakSource {
    /// v1: `memory.max_usage_in_bytes` (kept open), reset by writing 0.
    V1(File),
    /// v2 on kernel >= 6.12: an open `memory.peak`; writing to it resets the peak seen
    /// through that file descriptor.
    V2Fd(File),
    /// v2 without a resettable `memory.peak`: `memory.peak` since creation (if present) until
    /// the first reset, then the maximum of `memory.current` sampled every 10 ms.
    V2Sampled {
        since_creation: Option<PathBuf>,
        state: Arc<CurrentSampler>,
    },
}

/// Samples `memory.current` for v2 kernels whose `memory.peak` cannot be reset.
#[derive(Debug)]
pub(crate) struct CurrentSampler {
    current: PathBuf,
    active: AtomicBool,
    peak: AtomicU64,
    closed: AtomicBool,
}

impl SampleTarget for CurrentSampler {
    fn wanted_pgids(&self, _out: &mut HashSet<i32>) {}

    fn sample(&self, _scan: &ProcScan) {
        if self.active.load(Ordering::SeqCst) && !self.closed.load(Ordering::SeqCst) {
            if let Some(v) = read_value(&self.current) {
                self.peak.fetch_max(v, Ordering::SeqCst);
            }
        }
    }
}

/// One instance's cgroup.
#[derive(Debug)]
pub(crate) struct CgroupGroup {
    version: Version,
    dir: PathBuf,
    procs: CString,
    peak: PeakSource,
    /// The hard limit in bytes.
    limit: u64,
    /// memoryUsed: the sampled resident-set peak of the group's processes (`charged.rs`).
    charged: Arc<ChargedSampler>,
    /// Where OOM kills are counted (`memory.events`, `memory.oom_control`, or `memory.failcnt`
    /// on old v1 kernels), kept open: every invocation reads it, and a positioned read of an
    /// open cgroup file is one syscall instead of open, read, close and a path allocation.
    oom: File,
    /// v1 kernels before 4.13 have no `oom_kill` line in `memory.oom_control`.
    v1_has_oom_kill: bool,
    /// Set once the directory is gone, so a second removal (or the drop after an awaited
    /// removal) does nothing.
    removed: AtomicBool,
}

impl CgroupGroup {
    pub(crate) fn create(
        setup: &CgroupSetup,
        name: &str,
        limit: u64,
        sampler: &Arc<Sampler>,
    ) -> Result<Self, LimitError> {
        let dir = setup.run_dir().join(name);
        fs::create_dir(&dir).map_err(io_err("creating", &dir))?;
        match Self::configure(setup.version, &dir, limit, sampler) {
            Ok(g) => Ok(g),
            Err(e) => {
                let _ = fs::remove_dir(&dir);
                Err(e)
            }
        }
    }

    fn configure(
        version: Version,
        dir: &Path,
        limit: u64,
        sampler: &Arc<Sampler>,
    ) -> Result<Self, LimitError> {
        let procs_path = dir.join("cgroup.procs");
        let procs =
            CString::new(procs_path.as_os_str().as_bytes()).map_err(|_| LimitError::Io {
                action: "using",
                path: procs_path.clone(),
                source: io::Error::from(io::ErrorKind::InvalidInput),
            })?;
        let limit_s = limit.to_string();
        let mut v1_has_oom_kill = true;
        let peak = match version {
            Version::V1 => {
                write(&dir.join("memory.limit_in_bytes"), &limit_s)?;
                // Without this, swap would let the group use more than the limit.
                let memsw = dir.join("memory.memsw.limit_in_bytes");
                if memsw.exists() {
                    if let Err(e) = write(&memsw, &limit_s) {
                        tracing::warn!("{e}: the group may swap beyond its limit");
                    }
                }
                if let Err(e) = write(&dir.join("memory.swappiness"), "0") {
                    tracing::debug!("{e}");
                }
                v1_has_oom_kill =
                    keyed_value(&read(&dir.join("memory.oom_control"))?, "oom_kill").is_some();
                if !v1_has_oom_kill {
                    tracing::warn!("memory.oom_control has no oom_kill line (kernel < 4.13): OOM kills are inferred from memory.failcnt");
                }
                PeakSource::V1(open_rw(&dir.join("memory.max_usage_in_bytes"))?)
            }
            Version::V2 => {
                write(&dir.join("memory.max"), &limit_s)?;
                let swap = dir.join("memory.swap.max");
                if swap.exists() {
                    if let Err(e) = write(&swap, "0") {
                        tracing::warn!("{e}: the group may swap beyond its limit");
                    }
                }
                v2_peak_source(dir, sampler)
            }
        };
        let oom = match version {
            Version::V1 if v1_has_oom_kill => dir.join("memory.oom_control"),
            Version::V1 => dir.join("memory.failcnt"),
            Version::V2 => dir.join("memory.events"),
        };
        let oom = File::open(&oom).map_err(io_err("opening", &oom))?;
        let charged = Arc::new(ChargedSampler::new(procs_path));
        sampler.register(Arc::downgrade(&charged) as _);
        Ok(CgroupGroup {
            version,
            dir: dir.to_path_buf(),
            procs,
            peak,
            limit,
            charged,
            oom,
            v1_has_oom_kill,
            removed: AtomicBool::new(false),
        })
    }

    pub(crate) fn dir(&self) -> &Path {
        &self.dir
    }

    pub(crate) fn procs_cstring(&self) -> CString {
        self.procs.clone()
    }

    pub(crate) fn reset_peak(&self) {
        self.charged.reset();
        self.reset_kernel_peak();
    }

    /// [`CgroupGroup::reset_peak`] with the usage figures of the same pass.
    pub(crate) fn reset_peak_with_usage(&self) -> crate::Usage {
        let usage = self.charged.reset_with_usage();
        self.reset_kernel_peak();
        usage
    }

    fn reset_kernel_peak(&self) {
        let res = match &self.peak {
            PeakSource::V1(f) => f
                .write_at(b"0", 0)
                .map(drop)
                .map_err(io_err("writing", &self.dir)),
            PeakSource::V2Fd(f) => f
                .write_at(b"reset\n", 0)
                .map(drop)
                .map_err(io_err("writing", &self.dir)),
            PeakSource::V2Sampled { state, .. } => {
                state.peak.store(self.current_bytes(), Ordering::SeqCst);
                state.active.store(true, Ordering::SeqCst);
                Ok(())
            }
        };
        if let Err(e) = res {
            tracing::warn!("resetting the memory peak: {e}");
        }
    }

    /// [`CgroupGroup::peak_bytes`] with the usage figures of the same pass.
    pub(crate) fn peak_with_usage(&self) -> (u64, crate::Usage) {
        let (peak, usage) = self.charged.peak_with_usage();
        (peak.min(self.limit), usage)
    }

    pub(crate) fn charged(&self) -> &ChargedSampler {
        &self.charged
    }

    /// memoryUsed's peak: the group's processes' resident sets (see `charged.rs`), at most the
    /// limit: file pages the host had cached are not charged to the group here, so the sum can
    /// pass a limit that a pod, charged for them, would have been held to.
    pub(crate) fn peak_bytes(&self) -> u64 {
        self.charged.peak().min(self.limit)
    }

    /// The kernel's peak charge of the group (depends on the host's page cache).
    pub(crate) fn kernel_peak_bytes(&self) -> u64 {
        match &self.peak {
            PeakSource::V1(f) | PeakSource::V2Fd(f) => {
                let mut buf = [0u8; 32];
                match read_at_start(f, &mut buf) {
                    Ok(text) => single_value(text).unwrap_or(0),
                    Err(e) => {
                        tracing::debug!("reading the memory peak of {}: {e}", self.dir.display());
                        0
                    }
                }
            }
            PeakSource::V2Sampled {
                since_creation,
                state,
            } => {
                let current = self.current_bytes();
                if !state.active.load(Ordering::SeqCst) {
                    if let Some(p) = since_creation.as_deref().and_then(read_value) {
                        return p.max(current);
                    }
                }
                state.peak.load(Ordering::SeqCst).max(current)
            }
        }
    }

    pub(crate) fn current_bytes(&self) -> u64 {
        let file = match self.version {
            Version::V1 => "memory.usage_in_bytes",
            Version::V2 => "memory.current",
        };
        read_value(&self.dir.join(file)).unwrap_or(0)
    }

    pub(crate) fn oom_kills(&self) -> u64 {
        let mut buf = [0u8; 512];
        let text = match read_at_start(&self.oom, &mut buf) {
            Ok(text) => text,
            Err(e) => {
                tracing::debug!("reading the OOM counter of {}: {e}", self.dir.display());
                return 0;
            }
        };
        if self.version == Version::V1 && !self.v1_has_oom_kill {
            // Old kernels: the limit was hit at least once. Callers confirm with a SIGKILL
            // exit status.
            return u64::from(single_value(text).unwrap_or(0) > 0);
        }
        keyed_value(text, "oom_kill").unwrap_or(0)
    }

    pub(crate) fn kill_all(&self) {
        kill_all(&self.dir, self.version);
    }

    /// Stops the sampler for this group and kills every process still in it.
    fn close_and_kill(&self) {
        self.charged.close();
        if let PeakSource::V2Sampled { state, .. } = &self.peak {
            state.closed.store(true, Ordering::SeqCst);
        }
        self.kill_all();
    }

    /// Kills what is left and removes the directory, waiting (with async sleeps, at most
    /// [`RMDIR_TIMEOUT`]) for the killed processes to leave. Idempotent. Returns whether the
    /// directory is gone (a failure is already logged).
    pub(crate) async fn remove(&self) -> bool {
        if self.removed.load(Ordering::SeqCst) {
            return true;
        }
        self.close_and_kill();
        let gone = remove_group_dir_async(&self.dir, self.version).await;
        self.removed.store(gone, Ordering::SeqCst);
        gone
    }

    /// The drop path: kills what is left and tries `rmdir` once, never sleeping. When the
    /// group is still busy (killed processes take a moment to leave), the bounded retry goes
    /// to the current tokio runtime as a task that only sleeps asynchronously, holding
    /// `keep_alive` (the controller, whose run directory must outlive the group) until it is
    /// done; without a runtime the directory is left for [`CgroupSetup::cleanup_stale`] of the
    /// next start.
    pub(crate) fn destroy<K: Send + 'static>(&self, keep_alive: K) {
        if self.removed.load(Ordering::SeqCst) {
            return;
        }
        self.close_and_kill();
        match try_rmdir(&self.dir) {
            Rmdir::Gone => {
                self.removed.store(true, Ordering::SeqCst);
            }
            Rmdir::Busy => match tokio::runtime::Handle::try_current() {
                Ok(handle) => {
                    let (dir, version) = (self.dir.clone(), self.version);
                    handle.spawn(async move {
                        remove_group_dir_async(&dir, version).await;
                        drop(keep_alive);
                    });
                }
                Err(_) => tracing::debug!(
                    "memory group {} still busy when dropped outside a tokio runtime: \
                     left for the stale clean-up of the next start",
                    self.dir.display()
                ),
            },
            Rmdir::Failed(e) => {
                tracing::warn!("cannot remove memory group {}: {e}", self.dir.display());
            }
        }
    }
}

fn v2_peak_source(dir: &Path, sampler: &Arc<Sampler>) -> PeakSource {
    let peak = dir.join("memory.peak");
    // Kernels before 6.12 have a read-only memory.peak (opening it for writing fails).
    if let Ok(f) = OpenOptions::new().read(true).write(true).open(&peak) {
        if f.write_at(b"reset\n", 0).is_ok() {
            return PeakSource::V2Fd(f);
        }
    }
    let since_creation = peak.exists().then_some(peak);
    let state = Arc::new(CurrentSampler {
        current: dir.join("memory.current"),
        // Without memory.peak at all (< 5.19) sampling is the only source, from the start.
        active: AtomicBool::new(since_creation.is_none()),
        peak: AtomicU64::new(0),
        closed: AtomicBool::new(false),
    });
    let weak = Arc::downgrade(&state);
    sampler.register(weak);
    PeakSource::V2Sampled {
        since_creation,
        state,
    }
}
