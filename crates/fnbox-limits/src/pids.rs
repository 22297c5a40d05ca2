//! Process-count limits (the `pids` cgroup controller), the sweep of what a killed fnbox left,
//! and the watchdog that ends an instance's processes when fnbox itself is SIGKILLed.
//!
//! # Design
//! - **cgroup v1**: a hierarchy of its own, `<pids mount>/fnbox/<pid>-<start>/<instance>`,
//!   joined before `exec` like the memory group ([`PidsGroup::pre_exec_hook`]); stale run
//!   directories are swept like the memory ones.
//! - **cgroup v2**: `+pids` is enabled along the memory groups' path and `pids.max` is written
//!   into the instance's memory group itself (one directory, nothing more to join).
//! - **Otherwise** (RSS-sampling memory mode, no `pids` controller): no process limit; the
//!   start-up line says why.
//! - **Watchdog** ([`Watchdog`]): `PR_SET_PDEATHSIG` ends the processes fnbox started when it
//!   dies, but not their children (a function's background `sleep`, a daemonised helper). A
//!   small `/bin/sh` started at start-up holds the read end of a pipe whose write end only fnbox
//!   holds; when fnbox ends, however it ends, the pipe closes and the watchdog SIGKILLs every
//!   process left in this run's groups (memory and pids) and removes the groups. It runs in its
//!   own process group (a Ctrl-C aimed at fnbox does not end it first) and outside every
//!   instance group.

use std::ffi::CString;
use std::io;
use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use crate::cgroup::{self, CgroupSetup, Version};
use crate::{LimitError, MemoryController, MemoryGroup, MemoryMode};

/// Decides how process counts are limited and creates one [`PidsGroup`] per instance.
#[derive(Debug)]
pub struct PidsController {
    setup: PidsSetup,
}

#[derive(Debug)]
enum PidsSetup {
    /// A v1 `pids` hierarchy of its own.
    V1(CgroupSetup),
    /// v2: `pids.max` in the memory group.
    V2,
    /// No limit; why.
    None(String),
}

impl PidsController {
    /// The best mode next to `memory`: v2 rides on the memory groups, v1 needs a `pids`
    /// hierarchy; never fails (records why there is no limit).
    pub fn detect(memory: &MemoryController) -> PidsController {
        let setup = match (memory.mode(), memory.inner.cgroup.as_ref()) {
            (MemoryMode::CgroupV2, Some(setup)) => match cgroup::enable_pids_v2(setup) {
                Ok(()) => PidsSetup::V2,
                Err(e) => PidsSetup::None(format!("cgroup v2 pids controller: {e}")),
            },
            (MemoryMode::RssSampling, _) => {
                PidsSetup::None("no cgroups (memory limits use RSS sampling)".into())
            }
            _ => match cgroup::setup_pids_v1() {
                Ok(s) => PidsSetup::V1(s),
                Err(e) => PidsSetup::None(e.to_string()),
            },
        };
        PidsController { setup }
    }

    /// No process limit at all (containment off), with the reason.
    pub fn disabled(reason: impl Into<String>) -> PidsController {
        PidsController {
            setup: PidsSetup::None(reason.into()),
        }
    }

    /// `Ok(where)` when limits are enforced, `Err(why not)` otherwise.
    pub fn status(&self) -> Result<String, String> {
        match &self.setup {
            PidsSetup::V1(s) => Ok(format!("cgroup v1 {}", s.base.display())),
            PidsSetup::V2 => Ok("cgroup v2, in the memory group".into()),
            PidsSetup::None(why) => Err(why.clone()),
        }
    }

    /// Creates the limit for one instance (`name` as its memory group). `Ok(None)` when there
    /// is no pids controller.
    pub fn create_group(
        &self,
        name: &str,
        max: u32,
        memory: &MemoryGroup,
    ) -> Result<Option<PidsGroup>, LimitError> {
        match &self.setup {
            PidsSetup::None(_) => Ok(None),
            PidsSetup::V2 => {
                let Some(dir) = memory.cgroup_path() else {
                    return Ok(None);
                };
                cgroup::write(&dir.join("pids.max"), &max.to_string())?;
                Ok(Some(PidsGroup { own: None, max }))
            }
            PidsSetup::V1(setup) => {
                crate::parse::check_group_name(name).map_err(|why| LimitError::InvalidName {
                    name: name.to_string(),
                    why,
                })?;
                let dir = setup.run_dir().join(name);
                std::fs::create_dir(&dir).map_err(|source| LimitError::Io {
                    action: "creating",
                    path: dir.clone(),
                    source,
                })?;
                if let Err(e) = cgroup::write(&dir.join("pids.max"), &max.to_string()) {
                    let _ = std::fs::remove_dir(&dir);
                    return Err(e);
                }
                let procs = dir.join("cgroup.procs");
                let procs =
                    CString::new(procs.as_os_str().as_bytes()).map_err(|_| LimitError::Io {
                        action: "using",
                        path: procs.clone(),
                        source: io::Error::from(io::ErrorKind::InvalidInput),
                    })?;
                Ok(Some(PidsGroup {
                    own: Some((dir, procs)),
                    max,
                }))
            }
        }
    }

    /// Removes the pids groups of dead fnbox runs (v1), killing what is still inside. Blocking;
    /// call once at start-up (see [`MemoryController::cleanup_stale`]).
    pub fn cleanup_stale(&self) -> usize {
        match &self.setup {
            PidsSetup::V1(s) => s.cleanup_stale(),
            _ => 0,
        }
    }

    /// This run's directory of pids groups (v1 only).
    fn run_dir(&self) -> Option<&Path> {
        match &self.setup {
            PidsSetup::V1(s) => Some(s.run_dir()),
            _ => None,
        }
    }
}

/// The process-count limit of one instance.
#[derive(Debug)]
pub struct PidsGroup {
    /// v1: the group directory and its `cgroup.procs` path (v2 has none of its own).
    own: Option<(PathBuf, CString)>,
    max: u32,
}

impl PidsGroup {
    /// The limit (`pids.max`).
    pub fn max(&self) -> u32 {
        self.max
    }

    /// The group's own `cgroup.procs` (v1; `None` on v2, where the memory group carries the
    /// limit): for a process fnbox does not start itself, which joins by writing its pid there.
    pub fn procs_path(&self) -> Option<&Path> {
        self.own
            .as_ref()
            .map(|(_, procs)| Path::new(std::ffi::OsStr::from_bytes(procs.as_bytes())))
    }

    /// A `pre_exec` closure that moves the child into the group before `exec` (v1; a no-op on
    /// v2, where the memory group carries the limit). Async-signal-safe like
    /// [`MemoryGroup::pre_exec_hook`].
    pub fn pre_exec_hook(&self) -> impl Fn() -> io::Result<()> + Send + Sync + 'static {
        let procs = self.own.as_ref().map(|(_, p)| p.clone());
        move || match &procs {
            Some(p) => crate::join_cgroup(p),
            None => Ok(()),
        }
    }

    /// Removes the group once its processes have left (the memory group kills them): waits
    /// asynchronously like [`MemoryGroup::remove`].
    pub async fn remove(&self) {
        if let Some((dir, _)) = &self.own {
            cgroup::kill_all(dir, Version::V1);
            cgroup::remove_group_dir_async(dir, Version::V1).await;
        }
    }
}

impl Drop for PidsGroup {
    fn drop(&mut self) {
        let Some((dir, _)) = self.own.take() else {
            return;
        };
        cgroup::kill_all(&dir, Version::V1);
        if let cgroup::Rmdir::Busy = cgroup::try_rmdir(&dir) {
            if let Ok(rt) = tokio::runtime::Handle::try_current() {
                rt.spawn(async move {
                    cgroup::remove_group_dir_async(&dir, Version::V1).await;
                });
            }
        }
    }
}

/// `<pid>-<starttime>` of this process: the name of its run directories (cgroups, extraction
/// directories), by which a later start tells a dead run's leftovers from a live one's.
pub fn run_dir_name() -> String {
    let (pid, start) = cgroup::self_identity();
    crate::parse::owner_name(pid, start)
}

/// Removes the run directories (`<pid>-<starttime>`, see [`run_dir_name`]) under `parent`
/// whose fnbox is no longer running, with everything in them (e.g. extracted packages).
/// Returns how many were removed. Other entries and live runs' directories are left alone.
pub fn sweep_run_dirs(parent: &Path) -> usize {
    let (me, my_start) = cgroup::self_identity();
    let Ok(entries) = std::fs::read_dir(parent) else {
        return 0;
    };
    let mut removed = 0;
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some((pid, start)) = name.to_str().and_then(crate::parse::parse_owner_name) else {
            continue;
        };
        if (pid == me && start == my_start) || cgroup::process_alive(pid, start) {
            continue;
        }
        match std::fs::remove_dir_all(entry.path()) {
            Ok(()) => {
                tracing::info!(
                    "removed {} (left by an fnbox that died)",
                    entry.path().display()
                );
                removed += 1;
            }
            Err(e) => tracing::warn!("removing stale {}: {e}", entry.path().display()),
        }
    }
    removed
}

/// The watchdog's program: wait for the end of stdin (fnbox gone), then thaw every frozen
/// group (a frozen task does not die of SIGKILL: Lambda instances are frozen while idle), kill
/// every process in the groups under each run directory given as an argument, and remove the
/// groups. A few rounds, because a process forking while the list is read may escape one.
const WATCHDOG_SCRIPT: &str = r#"cat >/dev/null
for round in 1 2 3 4 5 6 7 8 9 10; do
  busy=
  for run in "$@"; do
    for state in "$run"/*/freezer.state; do [ -f "$state" ] && echo THAWED > "$state" 2>/dev/null; done
    for freeze in "$run"/*/cgroup.freeze; do [ -f "$freeze" ] && echo 0 > "$freeze" 2>/dev/null; done
  done
  for run in "$@"; do
    for procs in "$run"/*/cgroup.procs; do
      [ -f "$procs" ] || continue
      for pid in $(cat "$procs" 2>/dev/null); do kill -9 "$pid" 2>/dev/null; busy=1; done
    done
  done
  for run in "$@"; do
    for group in "$run"/*/; do [ -d "$group" ] && rmdir "$group" 2>/dev/null; done
    rmdir "$run" 2>/dev/null
  done
  [ -z "$busy" ] && break
  sleep 0.05
done
"#;

/// Kills what is left in this run's groups once fnbox has ended, however it ended (see the
/// module documentation). Keep it alive as long as fnbox runs; dropping it lets the watchdog
/// sweep (harmless after a clean shutdown: nothing is left).
#[derive(Debug)]
pub struct Watchdog {
    _pipe: OwnedFd,
    child: Child,
}

impl Watchdog {
    /// Starts the watchdog for `memory`'s and `pids`' run directories. `Ok(None)` when there is
    /// nothing to watch (no cgroups).
    pub fn start(memory: &MemoryController, pids: &PidsController) -> io::Result<Option<Watchdog>> {
        let dirs: Vec<PathBuf> = memory
            .inner
            .cgroup
            .as_ref()
            .map(|s| s.run_dir().to_path_buf())
            .into_iter()
            .chain(pids.run_dir().map(Path::to_path_buf))
            .collect();
        if dirs.is_empty() {
            return Ok(None);
        }
        // The v1 freezer groups (Lambda's idle instances), so frozen processes are thawed
        // before they are killed; the directory may not exist yet (made when needed).
        let dirs: Vec<PathBuf> = dirs
            .into_iter()
            .chain(crate::freezer::v1_run_dir())
            .collect();
        // Both ends close on exec: only the watchdog's stdin (a dup) stays open in it, and no
        // instance process ever inherits the write end (which would keep the watchdog waiting).
        let (read, write) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)?;
        use std::os::unix::process::CommandExt;
        let child = Command::new("/bin/sh")
            .arg("-c")
            .arg(WATCHDOG_SCRIPT)
            .arg("fnbox-watchdog")
            .args(&dirs)
            .stdin(Stdio::from(read))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()?;
        Ok(Some(Watchdog {
            _pipe: write,
            child,
        }))
    }

    /// The watchdog's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}
