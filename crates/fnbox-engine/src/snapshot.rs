//! Snapshots for the restore phase (issue 18): a function with `snapshot: true`
//! (FunctionGraph) or `snap_start: PublishedVersions` (Lambda) is initialized once; every later
//! instance starts by restoring that state instead of running init.
//!
//! # Mechanisms (chosen per function, printed at start-up)
//! - [`RestoreMode::Fork`], the built-in Python runtime (FunctionGraph dialect): a *template*
//!   process (the runtime in template mode) imports the handler and runs the initializer once;
//!   each instance's runtime is a `fork` of it. The first instance's fork is part of its init
//!   phase (the one `initStart`/`initRuntimeDone`/`initReport`); every later instance is a
//!   restore (`restoreStart` → fork → restore hook → `restoreRuntimeDone` → `restoreReport`).
//!   Copy-on-write memory and the template's PRNG state are inherited for real.
//! - [`RestoreMode::ResumeInPlace`], Lambda runtimes (what AWS's emulator does): see
//!   `instance/restore.rs`.
//!
//! # The template's control channel
//! A unix stream socket in a private directory; the template connects once (its peer pid is
//! checked). fnbox sends one fork request at a time (JSON line, with the child's stdout/stderr
//! pipe ends and the instance's network namespace as `SCM_RIGHTS`), the template answers with
//! the child's pid and later reports each child's wait status (it is the child's parent and
//! reaps it). The child joins the instance's memory group (its `cgroup.procs`; RSS mode watches
//! its process group) and network namespace, makes itself a process-group leader, sets
//! `PR_SET_PDEATHSIG`, is contained like the instance's own processes (its [`Sandbox`]: mount
//! namespace fd sent with the others, pids group, limits, uid/gid; the template answers only
//! once the child reported these steps done, so a failed step is a fork error naming it), takes
//! the instance's environment and runs the restore hook. Ownership:
//! the template is fnbox's child (`PR_SET_PDEATHSIG` too, in its own memory group), owned by
//! the [`crate::Function`]; it is killed when the function is dropped or the engine stops, and
//! its children die with it (`PR_SET_PDEATHSIG`) or with their instance's memory group.
//!
//! # Limitations
//! The template is not contained (root, host mount namespace, `RUNTIME_CODE_ROOT` at the host
//! path): it must keep the privileges to place each fork, so the initializer it runs is not
//! contained either. Memory pages the template touched stay charged to the template's group (copy-on-write: a
//! restored instance is charged for what it writes). A coroutine initializer's event-loop thread
//! does not survive the fork (restored children start a fresh loop).

use std::collections::{HashMap, VecDeque};
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::ExitStatus;
use std::sync::{Arc, Mutex};

use fnbox_limits::MemoryGroup;
use serde::Deserialize;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::sync::{oneshot, watch};

use crate::contain::Sandbox;
use crate::instance::process::{self, LineSink, ProcessSpec, Role, Supervised};
use crate::instance::InitError;
use crate::telemetry::Status;

/// `errorType` of a restore that failed (the hook raised, the runtime exited): FunctionGraph's
/// front door answers `FSS.4213` "function restore failed".
pub const RESTORE_FAILED: &str = "Runtime.RestoreError";
/// `errorType` of a restore past its deadline (`restore_hook_timeout`; Lambda's 10 s): the
/// FunctionGraph front door answers `FSS.4214` "runtime restore timed out after …", Lambda's
/// `SnapStartTimeoutException`. The spelling is Lambda's.
pub const RESTORE_TIMEOUT: &str = "Runtime.RestoreHookUserTimeout";
/// Lambda runtimes' own after-restore hook failure (`POST /runtime/restore/error`).
pub const AFTER_RESTORE_ERROR: &str = "Runtime.AfterRestoreError";

/// Whether an init failure was a failed restore (not retried: every restore of the same
/// snapshot would fail the same way).
pub fn is_restore_failure(err: &InitError) -> bool {
    err.restore
}

/// How a function's instances are restored.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RestoreMode {
    /// Fork from an initialized template process (built-in Python, FunctionGraph).
    Fork,
    /// Lambda: each instance is initialized, blocks in `restore/next`, and is restored in
    /// place (init time is not saved).
    ResumeInPlace,
}

impl RestoreMode {
    /// The start-up line, like the memory and network modes'.
    pub fn describe(self) -> &'static str {
        match self {
            RestoreMode::Fork => "fork from an initialized template process (copy-on-write memory, the template's PRNG state in every restored instance unless its restore hook reseeds)",
            RestoreMode::ResumeInPlace => "resume in place (each instance is initialized, then restored in its own process: the SnapStart protocol, hooks, deadlines and telemetry are exact, but init time is not saved; CRIU is not used)",
        }
    }
}

/// The restore mechanism of a package, `None` unless it asks for snapshots. Package validation
/// already refused the combinations without one (FunctionGraph custom runtimes, Node.js).
pub fn mode_for(
    package: &fnbox_package::Package,
    launch: &crate::launch::Launch,
) -> Option<RestoreMode> {
    let config = &package.config;
    if !config.snapshot.enabled {
        return None;
    }
    match (config.dialect, &config.runtime) {
        (fnbox_package::Dialect::FunctionGraph, fnbox_package::Runtime::Python { .. })
            if launch.runs_initializer =>
        {
            Some(RestoreMode::Fork)
        }
        _ => Some(RestoreMode::ResumeInPlace),
    }
}

/// Per function: the mode and, in fork mode, the template once built.
pub struct Snapshot {
    mode: RestoreMode,
    template: tokio::sync::Mutex<Option<Arc<Template>>>,
}

/// What an instance starting now does.
pub(crate) enum Claim<'a> {
    /// No template yet: this instance's init builds it (holding the lock, so instances starting
    /// meanwhile wait and then restore).
    Build(tokio::sync::MutexGuard<'a, Option<Arc<Template>>>),
    /// Restore from this template.
    Restore(Arc<Template>),
}

impl Snapshot {
    pub(crate) fn new(mode: RestoreMode) -> Self {
        Self {
            mode,
            template: tokio::sync::Mutex::new(None),
        }
    }

    /// The mechanism.
    pub fn mode(&self) -> RestoreMode {
        self.mode
    }

    /// Process id of the template, when it is built and no instance is building it now.
    pub fn template_pid(&self) -> Option<i32> {
        let guard = self.template.try_lock().ok()?;
        guard.as_ref().filter(|t| t.alive()).map(|t| t.proc.pid)
    }

    /// Fork mode: build the template or restore from it.
    pub(crate) async fn claim(&self) -> Claim<'_> {
        let mut guard = self.template.lock().await;
        match guard.as_ref() {
            Some(t) if t.alive() => Claim::Restore(t.clone()),
            _ => {
                // Never built, or it died (crash, OOM): the next instance rebuilds it.
                *guard = None;
                Claim::Build(guard)
            }
        }
    }
}

#[derive(Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
enum Report {
    Ready,
    InitError { body: serde_json::Value },
    Forked { pid: i32 },
    ForkError { message: String },
    Exit { pid: i32, status: i32 },
}

/// A restored instance's runtime process, as the template forked it.
pub(crate) struct Forked {
    pub pid: i32,
    /// The read end of its output pipe (stdout and stderr).
    pub output: OwnedFd,
    pub exit: watch::Receiver<Option<ExitStatus>>,
}

type Pending = Arc<Mutex<VecDeque<oneshot::Sender<Result<Forked0, String>>>>>;

struct Forked0 {
    pid: i32,
    exit: watch::Receiver<Option<ExitStatus>>,
}

/// The initialized template process of one function.
pub struct Template {
    proc: Supervised,
    _memory: MemoryGroup,
    writer: tokio::sync::Mutex<tokio::net::unix::OwnedWriteHalf>,
    pending: Pending,
    open: Arc<std::sync::atomic::AtomicBool>,
    cancel: tokio_util::sync::CancellationToken,
    _dir: tempfile::TempDir,
}

/// Everything [`Template::build`] needs from the instance that builds it.
pub(crate) struct BuildSpec<'a> {
    pub engine: &'a crate::Engine,
    pub program: PathBuf,
    pub args: Vec<std::ffi::OsString>,
    pub cwd: PathBuf,
    pub env: Vec<(String, String)>,
    pub netns: Option<RawFd>,
    pub sink: LineSink,
    pub memory_name: String,
    pub memory_bytes: u64,
    pub request_id: String,
    pub deadline: tokio::time::Instant,
}

fn init_error(status: Status, error_type: &str, message: String) -> InitError {
    InitError {
        status,
        error_type: error_type.into(),
        message,
        attempts: 1,
        body: None,
        restore: false,
    }
}

impl Template {
    fn alive(&self) -> bool {
        self.open.load(std::sync::atomic::Ordering::Acquire) && self.proc.try_exit().is_none()
    }

    /// Starts the template and waits until it imported the handler and ran the initializer.
    pub(crate) async fn build(spec: BuildSpec<'_>) -> Result<Arc<Template>, InitError> {
        let failure = |e: String| init_error(Status::Failure, "Runtime.ExitError", e);
        let dir = tempfile::Builder::new()
            .prefix("fnbox-snapshot-")
            .tempdir()
            .map_err(|e| {
                failure(format!(
                    "cannot create the template's socket directory: {e}"
                ))
            })?;
        let sock = dir.path().join("ctl.sock");
        let listener = tokio::net::UnixListener::bind(&sock)
            .map_err(|e| failure(format!("cannot bind {}: {e}", sock.display())))?;
        let memory = spec
            .engine
            .config
            .memory
            .create_group(&spec.memory_name, spec.memory_bytes)
            .map_err(|e| init_error(Status::Failure, "Sandbox.LimitError", e.to_string()))?;
        let mut env = spec.env;
        env.push(("FNBOX_TEMPLATE_SOCKET".into(), sock.display().to_string()));
        env.push(("FNBOX_SNAPSHOT_REQUEST_ID".into(), spec.request_id));
        let proc = process::spawn(
            ProcessSpec {
                program: spec.program,
                args: spec.args,
                cwd: spec.cwd,
                env,
                role: Role::Runtime,
                netns: spec.netns,
                // Not contained: the template must stay able to put each fork into its
                // instance's network namespace and groups (see the module documentation).
                sandbox: None,
            },
            &memory,
            spec.sink,
            &spec.engine.tracker,
        )
        .map_err(|e| init_error(Status::Failure, "Runtime.InvalidEntrypoint", e.to_string()))?;
        let died = |status| {
            failure(format!(
                "the snapshot template exited during init ({})",
                process::describe_exit(status)
            ))
        };
        let timeout = || {
            init_error(
                Status::Timeout,
                "Sandbox.Timedout",
                "init timed out: the snapshot template did not finish importing the handler and running the initializer".into(),
            )
        };
        let stream = tokio::select! {
            r = listener.accept() => r.map_err(|e| failure(format!("template control socket: {e}")))?.0,
            status = proc.exited() => return Err(died(status)),
            _ = tokio::time::sleep_until(spec.deadline) => { proc.signal_group(nix::sys::signal::Signal::SIGKILL); return Err(timeout()) }
        };
        let peer = stream.peer_cred().ok().and_then(|c| c.pid());
        if peer != Some(proc.pid) {
            proc.signal_group(nix::sys::signal::Signal::SIGKILL);
            return Err(failure(format!(
                "the template control socket was connected by pid {peer:?}, not the template ({})",
                proc.pid
            )));
        }
        drop(listener);
        let (read, writer) = stream.into_split();
        let mut lines = BufReader::new(read).lines();
        let first = tokio::select! {
            l = lines.next_line() => l,
            status = proc.exited() => return Err(died(status)),
            _ = tokio::time::sleep_until(spec.deadline) => { proc.signal_group(nix::sys::signal::Signal::SIGKILL); return Err(timeout()) }
        };
        let report = match first {
            Ok(Some(line)) => serde_json::from_str::<Report>(&line).map_err(|e| {
                failure(format!("template said something unexpected ({e}): {line}"))
            })?,
            _ => return Err(died(proc.exited().await)),
        };
        match report {
            Report::Ready => {}
            Report::InitError { body } => {
                let field = |k: &str| body.get(k).and_then(|v| v.as_str()).map(str::to_owned);
                let mut err = init_error(
                    Status::Error,
                    field("errorType").as_deref().unwrap_or("Runtime.InitError"),
                    field("errorMessage").unwrap_or_else(|| body.to_string()),
                );
                let body = bytes::Bytes::from(body.to_string());
                err.body = Some(body);
                let _ = proc.exited().await;
                return Err(err);
            }
            _ => {
                return Err(failure(
                    "template reported a fork before it was ready".into(),
                ))
            }
        }
        let pending: Pending = Default::default();
        let open = Arc::new(std::sync::atomic::AtomicBool::new(true));
        let cancel = spec.engine.cancel.child_token();
        let template = Arc::new(Template {
            proc: proc.clone(),
            _memory: memory,
            writer: tokio::sync::Mutex::new(writer),
            pending: pending.clone(),
            open: open.clone(),
            cancel: cancel.clone(),
            _dir: dir,
        });
        spec.engine.tracker.spawn(async move {
            let mut exits: HashMap<i32, watch::Sender<Option<ExitStatus>>> = HashMap::new();
            loop {
                let line = tokio::select! {
                    l = lines.next_line() => l,
                    _ = cancel.cancelled() => break,
                };
                let Ok(Some(line)) = line else { break };
                match serde_json::from_str::<Report>(&line) {
                    Ok(Report::Forked { pid }) => {
                        let (tx, rx) = watch::channel(None);
                        exits.insert(pid, tx);
                        if let Some(p) = pending.lock().expect("pending lock").pop_front() {
                            let _ = p.send(Ok(Forked0 { pid, exit: rx }));
                        }
                    }
                    Ok(Report::ForkError { message }) => {
                        if let Some(p) = pending.lock().expect("pending lock").pop_front() {
                            let _ = p.send(Err(message));
                        }
                    }
                    Ok(Report::Exit { pid, status }) => {
                        if let Some(tx) = exits.remove(&pid) {
                            let _ = tx.send(Some(ExitStatus::from_raw(status)));
                        }
                    }
                    _ => tracing::warn!(%line, "unexpected report of the snapshot template"),
                }
            }
            open.store(false, std::sync::atomic::Ordering::Release);
            // The template is gone (or fnbox stops): its children died with it
            // (PR_SET_PDEATHSIG).
            proc.signal_group(nix::sys::signal::Signal::SIGKILL);
            for (_, tx) in exits {
                let _ = tx.send(Some(ExitStatus::from_raw(libc::SIGKILL)));
            }
            for p in pending.lock().expect("pending lock").drain(..) {
                let _ = p.send(Err("the snapshot template exited".into()));
            }
        });
        Ok(template)
    }

    /// Forks a restored instance's runtime process.
    pub(crate) async fn fork(&self, req: ForkRequest<'_>) -> Result<Forked, String> {
        let mut writer = self.writer.lock().await;
        if !self.alive() {
            return Err("the snapshot template exited".into());
        }
        let io = |what: &str, e: nix::Error| format!("{what}: {e}");
        // One pipe for stdout and stderr, as for every process fnbox starts: lines keep their
        // order (the template puts the write end on both).
        let (out_r, out_w) =
            nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(|e| io("pipe", e))?;
        let msg = serde_json::json!({
            "op": "fork",
            "env": req.env.iter().cloned().collect::<HashMap<_, _>>(),
            "cwd": req.cwd,
            "cgroup_procs": req.memory.cgroup_path().map(|d| d.join("cgroup.procs")),
            "netns": req.netns.is_some(),
            "request_id": req.request_id,
            "hook": req.hook,
            "contain": req.sandbox.map(|s| serde_json::json!({
                "mntns": s.mount_ns_fd().is_some(),
                "pids_procs": s.pids_procs(),
                "id": s.id(),
                "nofile": s.nofile(),
                "last_cap": s.last_cap(),
            })),
        });
        let mut bytes = msg.to_string().into_bytes();
        bytes.push(b'\n');
        let mut fds = vec![out_w.as_raw_fd(), out_w.as_raw_fd()];
        fds.extend(req.netns);
        fds.extend(req.sandbox.and_then(Sandbox::mount_ns_fd));
        let (tx, rx) = oneshot::channel();
        self.pending.lock().expect("pending lock").push_back(tx);
        let sock = writer.as_ref();
        let raw = sock.as_raw_fd();
        let sent = sock
            .async_io(tokio::io::Interest::WRITABLE, || {
                let iov = [std::io::IoSlice::new(&bytes)];
                let cmsg = [nix::sys::socket::ControlMessage::ScmRights(&fds)];
                nix::sys::socket::sendmsg::<()>(
                    raw,
                    &iov,
                    &cmsg,
                    nix::sys::socket::MsgFlags::MSG_NOSIGNAL,
                    None,
                )
                .map_err(std::io::Error::from)
            })
            .await
            .map_err(|e| format!("cannot reach the snapshot template: {e}"))?;
        if sent < bytes.len() {
            writer
                .write_all(&bytes[sent..])
                .await
                .map_err(|e| format!("cannot reach the snapshot template: {e}"))?;
        }
        drop(out_w);
        let reply = tokio::time::timeout(std::time::Duration::from_secs(10), rx)
            .await
            .map_err(|_| {
                "the snapshot template did not answer a fork request within 10 s".to_string()
            })?
            .map_err(|_| "the snapshot template exited".to_string())??;
        Ok(Forked {
            pid: reply.pid,
            output: out_r,
            exit: reply.exit,
        })
    }
}

/// One restored instance to fork.
pub(crate) struct ForkRequest<'a> {
    pub env: &'a [(String, String)],
    pub cwd: &'a Path,
    pub memory: &'a MemoryGroup,
    pub netns: Option<RawFd>,
    pub request_id: &'a str,
    /// Run the restore hook (not for the first instance, which is part of init).
    pub hook: bool,
    /// The instance's containment: the child enters its mount namespace, `chdir`s to `cwd`,
    /// joins its pids group and drops to its uid/gid and limits, as
    /// [`Sandbox::enter_hook`] and [`Sandbox::restrict_hook`] do for a process fnbox starts.
    pub sandbox: Option<&'a Sandbox>,
}

impl Drop for Template {
    fn drop(&mut self) {
        self.cancel.cancel();
        self.proc.signal_group(nix::sys::signal::Signal::SIGKILL);
    }
}
