//! fnbox-limits: per-instance memory limits, measured peak memory and OOM detection.
//!
//! Every function instance (its runtime process, extensions and all their children) gets a
//! hard memory limit equal to the function's `memory_size` (CONTRACT §7). The mode is chosen
//! once at start-up by [`MemoryController::detect`], best first:
//!
//! 1. **cgroup v2** (unified hierarchy with the `memory` controller): the kernel enforces
//!    `memory.max` (`memory.swap.max` = 0) on the whole tree; OOM kills from `memory.events`.
//! 2. **cgroup v1** with a writable `memory` hierarchy: `memory.limit_in_bytes` (plus
//!    `memory.memsw.limit_in_bytes`, `memory.swappiness` 0); OOM kills from
//!    `memory.oom_control`.
//! 3. **RSS sampling** when no cgroup can be made (not root, read-only cgroupfs, ...): a
//!    background thread sums the RSS of the instance's process groups every 10 ms and SIGKILLs
//!    them when the sum exceeds the limit.
//!
//! # Layout
//!
//! - `lib.rs`: public API ([`MemoryController`], [`MemoryGroup`], [`MemoryMode`], [`LimitError`]).
//! - `cgroup.rs`: v2/v1 detection and preparation, per-instance cgroups, stale clean-up.
//! - `rss.rs`: the RSS-sampling enforcement.
//! - `freezer.rs`: freezing an instance between invocations ([`FreezeController`], [`Freezer`]:
//!   cgroup v2 `cgroup.freeze`, the cgroup v1 `freezer` controller, or SIGSTOP/SIGCONT).
//! - `sampler.rs`: the shared background sampler thread and the `/proc` scan.
//! - `charged.rs`: memoryUsed in every mode (the summed resident sets of the instance's
//!   processes, what a fresh pod is charged, independent of the host's page cache) and CPU time.
//!   The kernel's own peak (`memory.peak`, `memory.max_usage_in_bytes`) stays available as
//!   [`MemoryGroup::kernel_peak_bytes`].
//! - `parse.rs`: pure parsers for `/proc/self/cgroup`, mountinfo, `/proc/<pid>/stat` and
//!   keyed cgroup files.
//!
//! Cgroups live in `<delegated cgroup>/fnbox/<pid>-<starttime>/<instance name>`. The per-run
//! directory (pid plus start time of the fnbox process) lets a later run tell which groups
//! were left behind by a run that died: see [`MemoryController::cleanup_stale`].
//!
//! # Design and limitations
//!
//! - Processes join the cgroup in a `pre_exec` hook, before `exec`, so not a single page of the
//!   function escapes the limit; their children inherit the cgroup.
//! - cgroup v1: the delegated cgroup is the hierarchy root (`/sys/fs/cgroup/memory/fnbox`),
//!   falling back to our own memory cgroup, see `cgroup::setup_v1`. Kernels before 4.13 have no
//!   `oom_kill` counter: [`MemoryGroup::oom_kills`] then reports 1 once `memory.failcnt` is
//!   non-zero (the limit was hit), which callers should only trust together with a SIGKILL exit.
//! - cgroup v2: if our own cgroup contains processes, fnbox moves itself into
//!   `<own>/fnbox-self` ("no internal processes" rule) before enabling `+memory` for children.
//!   Peak: `memory.peak` is reset per file descriptor on kernels >= 6.12 (kept open per group).
//!   On older kernels it cannot be reset: until the first [`MemoryGroup::reset_peak`] the
//!   kernel's peak since creation is used; after it, the maximum of `memory.current` sampled
//!   every 10 ms (short spikes between samples can be missed). This machine type runs v1, so
//!   the v2 path is not exercised by the tests here.
//! - The kernel's OOM killer picks one victim inside the group (no `memory.oom.group`): the
//!   engine notices the runtime's SIGKILL, reads [`MemoryGroup::oom_kills`] and tears the whole
//!   instance down with [`MemoryGroup::kill_all`] / [`MemoryGroup::remove`].
//! - RSS sampling is best effort: allocations between two samples can overshoot the limit
//!   (the peak may exceed it), pages shared between processes (fork, shared libraries) are
//!   counted once per process, processes that leave their process group (`setsid`/`setpgid`)
//!   escape, and allocations made before [`MemoryGroup::watch_process_group`] are seen only at
//!   the next sample. Pgid numbers are checked against the leader's start time so that a reused
//!   number is never killed.
//! - Stale-run detection compares pid and start time through `/proc`: an fnbox in another pid
//!   namespace sharing the same cgroupfs would look dead and lose its groups.
//! - Nothing here panics on I/O errors: failures are logged with `tracing` and reported as
//!   zeros or [`LimitError`].

mod cgroup;
mod charged;
mod freezer;
mod parse;
mod pids;
mod rss;
mod sampler;

use std::ffi::CString;
use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

pub use charged::Usage;
pub use freezer::{FreezeController, FreezeMode, Freezer};

use cgroup::{CgroupGroup, CgroupSetup};
pub use pids::{run_dir_name, sweep_run_dirs, PidsController, PidsGroup, Watchdog};
use rss::RssState;
use sampler::{Sampler, SAMPLE_INTERVAL};

/// How memory limits are enforced on this machine.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MemoryMode {
    /// cgroup v2 unified hierarchy: kernel-enforced.
    CgroupV2,
    /// cgroup v1 memory hierarchy: kernel-enforced.
    CgroupV1,
    /// Fallback: RSS of the instance's process groups sampled and enforced by fnbox.
    RssSampling,
}

impl fmt::Display for MemoryMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            MemoryMode::CgroupV2 => "cgroup v2",
            MemoryMode::CgroupV1 => "cgroup v1",
            MemoryMode::RssSampling => "RSS sampling",
        })
    }
}

/// Why a limit could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum LimitError {
    /// No cgroup memory controller is usable; the text says why for each one tried.
    #[error("no usable cgroup memory controller: {0}")]
    Unsupported(String),
    /// An instance name that cannot be a cgroup directory name.
    #[error("invalid memory group name {name:?}: {why}")]
    InvalidName { name: String, why: &'static str },
    /// A limit of zero bytes.
    #[error("invalid memory limit: 0 bytes")]
    ZeroLimit,
    /// A file operation on a cgroup path failed.
    #[error("{action} {}: {source}", path.display())]
    Io {
        /// What was being done: "creating", "opening", "writing", "reading", ...
        action: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

#[derive(Debug)]
struct ControllerInner {
    mode: MemoryMode,
    /// Set in the cgroup modes.
    cgroup: Option<CgroupSetup>,
    /// Why RSS sampling is used (RSS mode only).
    reason: String,
    sampler: Arc<Sampler>,
}

/// Decides how memory is limited and creates one [`MemoryGroup`] per instance.
///
/// Cheap to clone; groups keep their controller alive.
#[derive(Debug, Clone)]
pub struct MemoryController {
    inner: Arc<ControllerInner>,
}

impl MemoryController {
    fn from_parts(mode: MemoryMode, cgroup: Option<CgroupSetup>, reason: String) -> Self {
        MemoryController {
            inner: Arc::new(ControllerInner {
                mode,
                cgroup,
                reason,
                sampler: Arc::default(),
            }),
        }
    }

    /// Detects the best mode; never fails (falls back to RSS sampling and records why).
    pub fn detect() -> MemoryController {
        match Self::cgroup() {
            Ok(c) => c,
            Err(e) => {
                let reason = match e {
                    LimitError::Unsupported(why) => why,
                    other => other.to_string(),
                };
                tracing::info!("no cgroup memory limits, falling back to RSS sampling: {reason}");
                Self::rss_sampling(format!("no cgroup: {reason}"))
            }
        }
    }

    /// Forces the RSS-sampling fallback (tests, `--memory-mode rss`), with the given reason.
    pub fn rss_sampling(reason: impl Into<String>) -> MemoryController {
        Self::from_parts(MemoryMode::RssSampling, None, reason.into())
    }

    /// Forces a cgroup mode (v2 preferred, then v1); error if neither is possible, so callers
    /// and tests can insist on kernel enforcement.
    pub fn cgroup() -> Result<MemoryController, LimitError> {
        let v2 = match cgroup::setup_v2() {
            Ok(setup) => {
                return Ok(Self::from_parts(
                    MemoryMode::CgroupV2,
                    Some(setup),
                    String::new(),
                ))
            }
            Err(e) => e,
        };
        tracing::debug!("cgroup v2 not usable: {v2}");
        match cgroup::setup_v1() {
            Ok(setup) => Ok(Self::from_parts(
                MemoryMode::CgroupV1,
                Some(setup),
                String::new(),
            )),
            Err(v1) => {
                let short = |e: LimitError| match e {
                    LimitError::Unsupported(s) => s,
                    other => other.to_string(),
                };
                Err(LimitError::Unsupported(format!(
                    "cgroup v2: {}; cgroup v1: {}",
                    short(v2),
                    short(v1)
                )))
            }
        }
    }

    /// The mode in use.
    pub fn mode(&self) -> MemoryMode {
        self.inner.mode
    }

    /// One human line for start-up output, e.g. `memory limits: cgroup v1
    /// (/sys/fs/cgroup/memory/fnbox)` or `memory limits: RSS sampling every 10ms (no cgroup:
    /// ...)`.
    pub fn describe(&self) -> String {
        match &self.inner.cgroup {
            Some(setup) => format!(
                "memory limits: {} ({})",
                self.inner.mode,
                setup.base.display()
            ),
            None => format!(
                "memory limits: RSS sampling every {}ms ({})",
                SAMPLE_INTERVAL.as_millis(),
                self.inner.reason
            ),
        }
    }

    /// Creates the group for one instance with a hard limit of `limit_bytes`. `name` must be
    /// unique among this controller's live groups (e.g. `hello-128-1a2b3c4d`) and usable as a
    /// directory name.
    pub fn create_group(&self, name: &str, limit_bytes: u64) -> Result<MemoryGroup, LimitError> {
        parse::check_group_name(name).map_err(|why| LimitError::InvalidName {
            name: name.to_string(),
            why,
        })?;
        if limit_bytes == 0 {
            return Err(LimitError::ZeroLimit);
        }
        let backend = match &self.inner.cgroup {
            Some(setup) => Backend::Cgroup(CgroupGroup::create(
                setup,
                name,
                limit_bytes,
                &self.inner.sampler,
            )?),
            None => {
                let state = Arc::new(RssState::new(name, limit_bytes));
                let weak: std::sync::Weak<dyn sampler::SampleTarget> = Arc::downgrade(&state) as _;
                self.inner.sampler.register(weak);
                Backend::Rss(state)
            }
        };
        tracing::debug!(group = name, limit_bytes, mode = %self.inner.mode, "memory group created");
        Ok(MemoryGroup {
            name: name.to_string(),
            limit: limit_bytes,
            backend,
            _controller: Arc::clone(&self.inner),
        })
    }

    /// Removes leftover groups of earlier fnbox runs that died without cleaning up (their
    /// processes are killed first). Returns how many groups were removed. Call once at start-up.
    ///
    /// A run counts as dead when the process named by its run directory (pid and start time)
    /// no longer exists; groups of live runs, including this process's own (even if leaked with
    /// `mem::forget`), are never touched, since another fnbox may be using them. Nothing to do
    /// in RSS mode.
    ///
    /// Blocking: after killing a dead run's processes it sleeps between `rmdir` attempts until
    /// they have left (at most 2 s per group). Meant for start-up, before anything is served;
    /// from async code call it in `tokio::task::spawn_blocking`.
    pub fn cleanup_stale(&self) -> usize {
        // A dead run's processes left frozen (Lambda's freeze) cannot die until thawed.
        freezer::thaw_stale_runs();
        self.inner
            .cgroup
            .as_ref()
            .map_or(0, CgroupSetup::cleanup_stale)
    }
}

#[derive(Debug)]
enum Backend {
    Cgroup(CgroupGroup),
    Rss(Arc<RssState>),
}

/// The memory limit of one instance.
///
/// Tear it down with [`remove`](Self::remove) (kill what is left, then wait asynchronously
/// for the cgroup to empty and remove it). Dropping it also kills every process still in the
/// group but never waits: it tries `rmdir` once and, when killed processes are still leaving,
/// hands the bounded retry to the current tokio runtime (or, outside a runtime, leaves the
/// directory to [`MemoryController::cleanup_stale`] of the next start). So dropping is safe on
/// a tokio worker, and awaiting `remove` first is how a caller knows the cgroup is gone.
#[derive(Debug)]
pub struct MemoryGroup {
    name: String,
    limit: u64,
    backend: Backend,
    _controller: Arc<ControllerInner>,
}

impl MemoryGroup {
    /// A closure for `CommandExt::pre_exec` (std or tokio) that moves the calling child into
    /// the group BEFORE `exec`, so no allocation escapes the limit. Async-signal-safe: the path
    /// is prepared here; the closure only calls `getpid`, `open`, `write`, `close`. A no-op in
    /// RSS mode.
    pub fn pre_exec_hook(&self) -> impl Fn() -> io::Result<()> + Send + Sync + 'static {
        let procs: Option<CString> = match &self.backend {
            Backend::Cgroup(g) => Some(g.procs_cstring()),
            Backend::Rss(_) => None,
        };
        move || match &procs {
            Some(path) => join_cgroup(path),
            None => Ok(()),
        }
    }

    /// Tells the group which process group belongs to it (call for the runtime and for every
    /// extension). RSS mode samples and kills these pgids; cgroup modes track processes by
    /// cgroup membership and only list the group again at the next reading (a process joined).
    pub fn watch_process_group(&self, pgid: i32) {
        match &self.backend {
            Backend::Rss(s) => s.watch(pgid),
            Backend::Cgroup(g) => g.charged().joined(),
        }
    }

    /// Starts a new measurement window (per invocation): the peak restarts from the current
    /// usage.
    pub fn reset_peak(&self) {
        match &self.backend {
            Backend::Cgroup(g) => g.reset_peak(),
            Backend::Rss(s) => s.reset_peak(),
        }
    }

    /// Peak memory in bytes since the last [`reset_peak`](Self::reset_peak) (or creation): what
    /// a fresh pod would be charged, the summed resident sets (anonymous plus mapped file pages)
    /// of the group's processes, sampled every 10 ms and at each reset and read, in every mode
    /// (see `charged.rs` for the rule and why Rss, not Pss). In RSS mode it can exceed the
    /// limit (the sample that triggered the kill).
    pub fn peak_bytes(&self) -> u64 {
        match &self.backend {
            Backend::Cgroup(g) => g.peak_bytes(),
            Backend::Rss(s) => s.peak_bytes(),
        }
    }

    /// The kernel's own peak charge of the group since the last reset (cgroup modes; the RSS
    /// peak in RSS mode). Unlike [`peak_bytes`](Self::peak_bytes) it depends on the host's page
    /// cache: a file page is charged to whoever read it first. For diagnostics.
    pub fn kernel_peak_bytes(&self) -> u64 {
        match &self.backend {
            Backend::Cgroup(g) => g.kernel_peak_bytes(),
            Backend::Rss(s) => s.peak_bytes(),
        }
    }

    /// CPU time and disk writes of the group's live processes so far (see [`Usage`]): the
    /// difference of two readings is what an invocation used, as long as no process of the
    /// group exited unreaped in between. Cgroup modes read kept-open `/proc` files (one
    /// positioned read each); RSS mode lists the watched process groups first.
    pub fn usage(&self) -> Usage {
        match &self.backend {
            Backend::Cgroup(g) => g.charged().usage(),
            Backend::Rss(s) => charged::usage_of(&s.pids()),
        }
    }

    /// [`MemoryGroup::reset_peak`] and [`MemoryGroup::usage`] from one pass over the group's
    /// processes: what an invocation's start reads.
    pub fn reset_peak_with_usage(&self) -> Usage {
        match &self.backend {
            Backend::Cgroup(g) => g.reset_peak_with_usage(),
            Backend::Rss(s) => {
                s.reset_peak();
                self.usage()
            }
        }
    }

    /// [`MemoryGroup::peak_bytes`] and [`MemoryGroup::usage`] from one pass over the group's
    /// processes: what an invocation's answer reads.
    pub fn peak_with_usage(&self) -> (u64, Usage) {
        match &self.backend {
            Backend::Cgroup(g) => g.peak_with_usage(),
            Backend::Rss(s) => (s.peak_bytes(), self.usage()),
        }
    }

    /// Current usage in bytes.
    pub fn current_bytes(&self) -> u64 {
        match &self.backend {
            Backend::Cgroup(g) => g.current_bytes(),
            Backend::Rss(s) => s.current_bytes(),
        }
    }

    /// Number of OOM kills in this group since it was created (monotonic).
    pub fn oom_kills(&self) -> u64 {
        match &self.backend {
            Backend::Cgroup(g) => g.oom_kills(),
            Backend::Rss(s) => s.oom_kills(),
        }
    }

    /// SIGKILLs every process in the group (`cgroup.procs`, or the watched process groups in
    /// RSS mode). Does not wait for them to exit.
    pub fn kill_all(&self) {
        match &self.backend {
            Backend::Cgroup(g) => g.kill_all(),
            Backend::Rss(s) => s.kill_all(),
        }
    }

    /// Kills every process left in the group and removes the cgroup, waiting (with tokio
    /// sleeps, never blocking a worker) until the killed processes have left it, at most 2 s;
    /// after that the failure is logged and the next start's
    /// [`MemoryController::cleanup_stale`] removes the directory. Idempotent: later calls and
    /// the drop do nothing once the directory is gone. In RSS mode it stops sampling and
    /// kills the watched process groups (there is no directory).
    pub async fn remove(&self) {
        let gone = match &self.backend {
            Backend::Cgroup(g) => g.remove().await,
            Backend::Rss(s) => {
                s.close();
                s.kill_all();
                true
            }
        };
        if gone {
            tracing::debug!(group = %self.name, "memory group removed");
        }
    }

    /// The limit in bytes, as requested.
    pub fn limit_bytes(&self) -> u64 {
        self.limit
    }

    /// The instance name the group was created with.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The cgroup directory (`None` in RSS mode).
    pub fn cgroup_path(&self) -> Option<&Path> {
        match &self.backend {
            Backend::Cgroup(g) => Some(g.dir()),
            Backend::Rss(_) => None,
        }
    }
}

impl Drop for MemoryGroup {
    /// Kills what is left without waiting; see [`MemoryGroup`] for where the `rmdir` retry
    /// goes when the group is still busy.
    fn drop(&mut self) {
        match &self.backend {
            Backend::Cgroup(g) => g.destroy(Arc::clone(&self._controller)),
            Backend::Rss(s) => {
                s.close();
                s.kill_all();
            }
        }
    }
}

/// Writes our pid to `procs` (a `cgroup.procs` path). Runs between fork and exec: only
/// async-signal-safe calls, no allocation.
fn join_cgroup(procs: &CString) -> io::Result<()> {
    let mut buf = [0u8; 24];
    // SAFETY: getpid(2) takes no arguments, cannot fail and is async-signal-safe.
    let len = parse::format_pid(unsafe { libc::getpid() }, &mut buf);
    // SAFETY: `procs` is a NUL-terminated C string prepared before the fork that outlives
    // the call; open(2) only reads it and is async-signal-safe.
    let fd = unsafe { libc::open(procs.as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    let res = loop {
        // SAFETY: write(2) reads `len` bytes from `buf`, which `format_pid` initialised
        // (`len <= buf.len()`); `fd` is the descriptor opened above and still open.
        let n = unsafe { libc::write(fd, buf.as_ptr().cast(), len) };
        if n >= 0 {
            break Ok(());
        }
        let err = io::Error::last_os_error();
        if err.raw_os_error() != Some(libc::EINTR) {
            break Err(err);
        }
    };
    // SAFETY: `fd` was opened above, nothing else owns it, and it is closed exactly once.
    unsafe {
        libc::close(fd);
    }
    res
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mode_display() {
        assert_eq!(MemoryMode::CgroupV2.to_string(), "cgroup v2");
        assert_eq!(MemoryMode::CgroupV1.to_string(), "cgroup v1");
        assert_eq!(MemoryMode::RssSampling.to_string(), "RSS sampling");
    }

    #[test]
    fn rss_describe_and_validation() {
        let c = MemoryController::rss_sampling("forced by --memory-mode rss");
        assert_eq!(c.mode(), MemoryMode::RssSampling);
        assert_eq!(
            c.describe(),
            "memory limits: RSS sampling every 10ms (forced by --memory-mode rss)"
        );
        assert!(matches!(
            c.create_group("a/b", 1 << 20),
            Err(LimitError::InvalidName { .. })
        ));
        assert!(matches!(
            c.create_group("ok", 0),
            Err(LimitError::ZeroLimit)
        ));
        let g = c.create_group("ok", 1 << 20).unwrap();
        assert_eq!(g.limit_bytes(), 1 << 20);
        assert!(g.cgroup_path().is_none());
        assert_eq!(c.cleanup_stale(), 0);
        // The hook is a no-op in RSS mode.
        assert!((g.pre_exec_hook())().is_ok());
    }

    #[test]
    fn group_is_send_sync() {
        fn check<T: Send + Sync>() {}
        check::<MemoryGroup>();
        check::<MemoryController>();
    }
}
