//! Containment: what an instance's processes may do, as on the platforms (CONTRACT §2).
//!
//! # Modes (engine-wide, chosen once at start-up and printed like memory and network)
//! - **on** (fnbox runs as root and can make mount namespaces): every runtime and extension
//!   process runs as an unprivileged uid/gid ([`FUNCTIONGRAPH_ID`] 1003:1003, as FunctionGraph;
//!   [`LAMBDA_ID`] 993:993, standing in for Lambda's `sbx_user1051`), with no supplementary
//!   groups, `no_new_privs`, an empty capability bounding set (and so no capabilities at all
//!   after the uid change), `RLIMIT_NOFILE` [`NOFILE`] (Lambda's 1024), a `pids.max` of
//!   [`PIDS_MAX`] (cgroup `pids`, when available) and the instance's own mount namespace
//!   ([`View`]), shared by the runtime and its extensions, in which:
//!   - `/tmp` is a private tmpfs of `ephemeral_storage` MB (512 by default) that vanishes with
//!     the namespace;
//!   - the code directory is read-only, at its host path (directories of fnbox's own under
//!     `/tmp`, such as the built-in runtimes' cache, are shown read-only at the same place in
//!     the private `/tmp`; a directory on the way that others cannot search, such as `/root`,
//!     is covered by a small tmpfs holding only the way to what the instance needs);
//!   - FunctionGraph: `/opt` is a small read-only tmpfs holding the platform's paths: the code
//!     at `/opt/function/code` (`RUNTIME_CODE_ROOT`; the working directory stays the code
//!     directory at its host path, the same files) and each
//!     runtime's interpreter (`/opt/function/runtime/python3.10/rtsp/python/bin/python3`,
//!     `/opt/function/runtime/nodejs16.17/rtsp/nodejs/bin/node`, ...) as a symlink to the
//!     machine's interpreter;
//!   - Lambda: `/etc/hosts` is the instance's own, with `sandbox.localdomain` and `sandbox` on
//!     127.0.0.1 (the instance's loopback in either network mode), and the package's merged
//!     layers ([`fnbox_package::Package::opt_dir`]) are mounted read-only at `/opt`.
//! - **limited** (not root): no uid change, no mount namespace, no pids limit (each needs
//!   privileges); `no_new_privs` and `RLIMIT_NOFILE` still apply. Packages with layers are
//!   refused (they need `/opt`).
//! - **off** (`FNBOX_CONTAINMENT=off`): processes run as fnbox's own user with its limits.
//!
//! # Design
//! - The mount namespace is made on a short-lived helper thread (`unshare(CLONE_NEWNS)` is
//!   allowed per thread in a multi-threaded process), which sets `/` to slave propagation
//!   first (nothing mounted inside ever reaches the host), mounts the view and opens
//!   `/proc/thread-self/ns/mnt`. That descriptor keeps the namespace alive; processes join it
//!   before `exec` with `setns` (the forked child is single-threaded). When the instance
//!   drops the descriptor and its last process ends, the namespace and its tmpfs are gone:
//!   nothing is left on disk, even after a SIGKILL of fnbox.
//! - Everything the child does between `fork` and `exec` is an async-signal-safe syscall on
//!   data prepared before the fork ([`Sandbox::enter_hook`], [`Sandbox::restrict_hook`]).
//! - Order in the child: `setns` (network, then mount), `chdir`, join the memory and pids
//!   groups (needs root), then `RLIMIT_NOFILE`, `no_new_privs`, drop the bounding set,
//!   `setgroups`, `setgid`, `setuid` (the last step takes every remaining capability away).
//!   An unprivileged process cannot write another cgroup's `cgroup.procs` (root-owned, 0644),
//!   so it cannot leave its groups.

use std::ffi::CString;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use fnbox_limits::{MemoryController, MemoryGroup, PidsController, PidsGroup};
use fnbox_package::Package;
use nix::mount::{mount, MsFlags};

/// uid and gid of FunctionGraph functions (functiongraph-facts.md: UID/GID 1003).
pub const FUNCTIONGRAPH_ID: u32 = 1003;
/// uid and gid standing in for Lambda's `sbx_user1051` (a system-range id, unused on Debian).
pub const LAMBDA_ID: u32 = 993;
/// `pids.max` of an instance (runtime, extensions and all their children together; Lambda
/// documents 1024 processes/threads per execution environment).
pub const PIDS_MAX: u32 = 1024;
/// `RLIMIT_NOFILE` (soft and hard) of every process: Lambda's 1024.
pub const NOFILE: u64 = 1024;
/// How the opt-out is spelled (environment of fnbox).
pub const OPT_OUT: &str = "FNBOX_CONTAINMENT=off";

/// The FunctionGraph code directory inside the view.
pub const FG_CODE_ROOT: &str = "/opt/function/code";

/// FunctionGraph's Python runtime directories (functiongraph-facts.md and the HTTP-function
/// guide), each mapped to `python3` of the machine; `python2.7` maps to `python2` when the
/// machine has one.
const FG_PYTHON: &[&str] = &[
    "python3.6",
    "python3.7",
    "python3.8",
    "python3.9",
    "python3.10",
    "python3.11",
    "python3.12",
];
/// FunctionGraph's Node.js runtime directories, each mapped to the machine's `node`.
const FG_NODE: &[&str] = &[
    "nodejs6.10",
    "nodejs8.10",
    "nodejs10.16",
    "nodejs12.13",
    "nodejs14.18",
    "nodejs16.17",
    "nodejs18.15",
    "nodejs20.15",
];

/// Lambda's `/etc/hosts` inside an instance.
const LAMBDA_HOSTS: &str = "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n\
                            127.0.0.1\tsandbox.localdomain sandbox\n";

/// The engine-wide containment mode.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Everything (see the module documentation).
    On,
    /// What an unprivileged fnbox can do; why not more.
    Limited(String),
    /// Nothing; why.
    Off(String),
}

/// The containment settings every instance of the engine follows.
#[derive(Clone, Debug)]
pub struct Containment {
    mode: Mode,
    pids: Arc<PidsController>,
}

impl Containment {
    /// No containment (the default of `EngineConfig::new`, used by library tests).
    pub fn off(why: impl Into<String>) -> Containment {
        let why = why.into();
        Containment {
            pids: Arc::new(PidsController::disabled(why.clone())),
            mode: Mode::Off(why),
        }
    }

    /// The best mode here, unless `opt_out` names why it is off (the CLI passes
    /// [`OPT_OUT`] when set); returns it with the start-up line that says which and why.
    pub fn detect(opt_out: Option<&str>, memory: &MemoryController) -> (Containment, String) {
        if let Some(why) = opt_out {
            let c = Containment::off(why);
            let line = format!(
                "containment: off ({why}): functions run as fnbox's own user, in the host's mount namespace, with its limits"
            );
            return (c, line);
        }
        if !nix::unistd::geteuid().is_root() {
            let why = "not root".to_string();
            let line = format!(
                "containment: limited ({why}: no uid change, no mount namespace (host paths, shared /tmp, no /opt layers), no pids limit); no_new_privs and RLIMIT_NOFILE {NOFILE} apply; {OPT_OUT} turns it off"
            );
            return (
                Containment {
                    pids: Arc::new(PidsController::disabled(why.clone())),
                    mode: Mode::Limited(why),
                },
                line,
            );
        }
        if let Err(e) = probe() {
            let why = format!("no mount namespace: {e}");
            let line = format!(
                "containment: limited ({why}); no_new_privs and RLIMIT_NOFILE {NOFILE} apply; {OPT_OUT} turns it off"
            );
            return (
                Containment {
                    pids: Arc::new(PidsController::disabled(why.clone())),
                    mode: Mode::Limited(why),
                },
                line,
            );
        }
        let pids = PidsController::detect(memory);
        let pids_text = match pids.status() {
            Ok(how) => format!("pids.max {PIDS_MAX} ({how})"),
            Err(why) => format!("no process limit ({why})"),
        };
        let line = format!(
            "containment: on (uid/gid {FUNCTIONGRAPH_ID} FunctionGraph, {LAMBDA_ID} Lambda; no capabilities, no_new_privs; own mount namespace: code read-only, private /tmp tmpfs of ephemeral_storage MB (512 default); {pids_text}; RLIMIT_NOFILE {NOFILE}); {OPT_OUT} opts out"
        );
        (
            Containment {
                mode: Mode::On,
                pids: Arc::new(pids),
            },
            line,
        )
    }

    /// The mode.
    pub fn mode(&self) -> &Mode {
        &self.mode
    }

    /// Whether instances get their own mount namespace (so `/opt` layers can be presented).
    pub fn can_mount(&self) -> bool {
        self.mode == Mode::On
    }

    /// Why instances get no mount namespace (`None` when they do).
    pub fn no_mount_reason(&self) -> Option<&str> {
        match &self.mode {
            Mode::On => None,
            Mode::Limited(why) | Mode::Off(why) => Some(why),
        }
    }

    /// Removes the pids groups a killed fnbox left (blocking; once at start-up).
    pub fn cleanup_stale(&self) -> usize {
        self.pids.cleanup_stale()
    }

    /// The pids controller (for the watchdog).
    pub fn pids(&self) -> &PidsController {
        &self.pids
    }
}

/// Whether a mount namespace with a tmpfs can be made here (`Err`: why not).
pub fn probe() -> Result<(), String> {
    let spec = ViewSpec {
        tmp_mb: 1,
        keep: Vec::new(),
        hosts: None,
        opt_dir: None,
        fg: None,
    };
    View::create(spec).map(drop).map_err(|e| e.to_string())
}

/// What an instance's mount namespace shows.
#[derive(Clone, Debug)]
pub struct ViewSpec {
    /// Size of the private `/tmp` in MB.
    pub tmp_mb: u32,
    /// Host directories and files kept visible, read-only, at their own path (code root,
    /// built-in runtime scripts).
    pub keep: Vec<PathBuf>,
    /// Content of the instance's own `/etc/hosts`, if any.
    pub hosts: Option<String>,
    /// Directory mounted read-only at `/opt` (Lambda layers).
    pub opt_dir: Option<PathBuf>,
    /// FunctionGraph's `/opt/function` tree.
    pub fg: Option<FgView>,
}

/// FunctionGraph's `/opt/function`: the code and the interpreters.
#[derive(Clone, Debug)]
pub struct FgView {
    /// Host code directory, shown at [`FG_CODE_ROOT`].
    pub code: PathBuf,
    /// `(path under /opt/function/runtime, host interpreter)` pairs, e.g.
    /// `("python3.10/rtsp/python/bin/python3", "/usr/bin/python3")`.
    pub interpreters: Vec<(PathBuf, PathBuf)>,
}

impl FgView {
    /// The interpreter links for the machine's `python3`, `python2` and `node` found on `path`.
    pub fn interpreters(path: &str) -> Vec<(PathBuf, PathBuf)> {
        let mut out = Vec::new();
        let real = |p: PathBuf| std::fs::canonicalize(&p).unwrap_or(p);
        if let Some(py) = crate::launch::which("python3", path).map(real) {
            for rt in FG_PYTHON {
                out.push((
                    PathBuf::from(format!("{rt}/rtsp/python/bin/python3")),
                    py.clone(),
                ));
                out.push((
                    PathBuf::from(format!("{rt}/rtsp/python/bin/python")),
                    py.clone(),
                ));
            }
        }
        if let Some(py2) = crate::launch::which("python2", path).map(real) {
            out.push((PathBuf::from("python2.7/rtsp/python/bin/python"), py2));
        }
        if let Some(node) = crate::launch::which("node", path).map(real) {
            for rt in FG_NODE {
                out.push((
                    PathBuf::from(format!("{rt}/rtsp/nodejs/bin/node")),
                    node.clone(),
                ));
            }
        }
        out
    }
}

/// An instance's mount namespace; it ends when this is dropped and its last process has ended.
#[derive(Debug)]
pub struct View {
    fd: OwnedFd,
}

fn with_path(e: nix::Error, what: &str, path: &Path) -> io::Error {
    io::Error::new(
        io::Error::from(e).kind(),
        format!("{what} {}: {e}", path.display()),
    )
}

impl View {
    /// Makes the namespace (blocking, a few ms: call from `spawn_blocking`).
    pub fn create(spec: ViewSpec) -> io::Result<View> {
        std::thread::Builder::new()
            .name("fnbox-mountns".into())
            .spawn(move || -> io::Result<View> {
                nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNS)
                    .map_err(|e| io::Error::other(format!("unshare(CLONE_NEWNS): {e}")))?;
                build(&spec)?;
                let file = std::fs::File::open("/proc/thread-self/ns/mnt")?;
                Ok(View {
                    fd: OwnedFd::from(file),
                })
            })?
            .join()
            .map_err(|_| io::Error::other("the mount namespace thread panicked"))?
    }

    /// The namespace descriptor.
    pub fn raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}

/// Mounts the view in the calling thread's (fresh) mount namespace.
fn build(spec: &ViewSpec) -> io::Result<()> {
    let none: Option<&str> = None;
    // Nothing mounted from here on propagates to the host.
    mount(none, "/", none, MsFlags::MS_REC | MsFlags::MS_SLAVE, none)
        .map_err(|e| with_path(e, "making slave", Path::new("/")))?;
    // Descriptors of what the private /tmp will cover, taken before it does.
    let open = |p: &Path| -> io::Result<OwnedFd> {
        nix::fcntl::open(
            p,
            nix::fcntl::OFlag::O_PATH | nix::fcntl::OFlag::O_CLOEXEC,
            nix::sys::stat::Mode::empty(),
        )
        .map(|fd| {
            // SAFETY: `open` just returned this descriptor; nothing else owns it.
            unsafe { <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fd) }
        })
        .map_err(|e| with_path(e, "opening", p))
    };
    let keep: Vec<(PathBuf, OwnedFd, bool)> = spec
        .keep
        .iter()
        .map(|p| Ok((p.clone(), open(p)?, p.is_dir())))
        .collect::<io::Result<_>>()?;
    let opt = spec.opt_dir.as_deref().map(open).transpose()?;
    let fg_code = spec.fg.as_ref().map(|fg| open(&fg.code)).transpose()?;

    let nosuid = MsFlags::MS_NOSUID | MsFlags::MS_NODEV;
    mount(
        Some("tmpfs"),
        "/tmp",
        Some("tmpfs"),
        nosuid,
        Some(format!("size={}m,mode=1777", spec.tmp_mb).as_str()),
    )
    .map_err(|e| with_path(e, "mounting a tmpfs on", Path::new("/tmp")))?;

    // A directory on the way to a kept path that others cannot search (say, /root) is
    // covered by a small tmpfs in which only the way to the kept paths exists: the function
    // reaches what it needs and sees nothing else there.
    let mut covers: Vec<PathBuf> = vec![PathBuf::from("/tmp")];
    for (path, _, _) in &keep {
        if covers.iter().any(|c| path.starts_with(c)) {
            continue;
        }
        if let Some(closed) = first_closed_ancestor(path) {
            covers.retain(|c| !c.starts_with(&closed));
            covers.push(closed);
        }
    }
    for cover in covers.iter().filter(|c| c.as_path() != Path::new("/tmp")) {
        mount(
            Some("tmpfs"),
            cover,
            Some("tmpfs"),
            nosuid,
            Some("size=1m,mode=0755"),
        )
        .map_err(|e| with_path(e, "mounting a tmpfs on", cover))?;
    }

    for (path, fd, is_dir) in &keep {
        if covers.iter().any(|c| path.starts_with(c)) {
            // Covered (the private /tmp, or a tmpfs over a closed directory): recreate the way
            // there (root-owned, read-only for the function) and show the original at the
            // same place.
            if let Some(parent) = path.parent() {
                std::fs::create_dir_all(parent)?;
            }
            if *is_dir {
                std::fs::create_dir_all(path)?;
            } else if !path.exists() {
                std::fs::File::create(path)?;
            }
        }
        bind_ro(fd, path)?;
    }

    if let Some(hosts) = &spec.hosts {
        let staged = Path::new("/tmp/.fnbox-hosts");
        std::fs::write(staged, hosts)?;
        let fd = open(staged)?;
        bind_ro(&fd, Path::new("/etc/hosts"))?;
        std::fs::remove_file(staged)?;
    }
    if let Some(fd) = &opt {
        bind_ro(fd, Path::new("/opt"))?;
    }
    if let (Some(fg), Some(code_fd)) = (&spec.fg, &fg_code) {
        let opt = Path::new("/opt");
        mount(
            Some("tmpfs"),
            opt,
            Some("tmpfs"),
            nosuid,
            Some("size=1m,mode=0755"),
        )
        .map_err(|e| with_path(e, "mounting a tmpfs on", opt))?;
        let code = Path::new(FG_CODE_ROOT);
        std::fs::create_dir_all(code)?;
        let runtime = Path::new("/opt/function/runtime");
        for (rel, target) in &fg.interpreters {
            let link = runtime.join(rel);
            if let Some(dir) = link.parent() {
                std::fs::create_dir_all(dir)?;
            }
            std::os::unix::fs::symlink(target, &link)?;
        }
        mount(
            none,
            opt,
            none,
            MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY | nosuid,
            none,
        )
        .map_err(|e| with_path(e, "remounting read-only", opt))?;
        bind_ro(code_fd, code)?;
    }
    Ok(())
}

/// The outermost proper ancestor of `path` that others cannot search (mode without o+x).
fn first_closed_ancestor(path: &Path) -> Option<PathBuf> {
    use std::os::unix::fs::MetadataExt;
    let mut ancestors: Vec<&Path> = path.ancestors().skip(1).collect();
    ancestors.reverse();
    ancestors
        .into_iter()
        .filter(|a| a.parent().is_some())
        .find(|a| std::fs::metadata(a).is_ok_and(|m| m.mode() & 0o001 == 0))
        .map(Path::to_path_buf)
}

/// Bind-mounts what `fd` refers to onto `target`, read-only.
fn bind_ro(fd: &OwnedFd, target: &Path) -> io::Result<()> {
    let none: Option<&str> = None;
    let source = PathBuf::from(format!("/proc/self/fd/{}", fd.as_raw_fd()));
    mount(
        Some(&source),
        target,
        none,
        MsFlags::MS_BIND | MsFlags::MS_REC,
        none,
    )
    .map_err(|e| with_path(e, "bind-mounting onto", target))?;
    mount(
        none,
        target,
        none,
        MsFlags::MS_REMOUNT
            | MsFlags::MS_BIND
            | MsFlags::MS_RDONLY
            | MsFlags::MS_NOSUID
            | MsFlags::MS_NODEV,
        none,
    )
    .map_err(|e| with_path(e, "remounting read-only", target))
}

/// One instance's containment: its mount namespace, pids group and identity.
#[derive(Debug)]
pub struct Sandbox {
    view: Option<View>,
    pids: Option<PidsGroup>,
    /// uid = gid to switch to.
    id: Option<u32>,
    nofile: bool,
    /// Host code root and where it is seen inside (equal without the FunctionGraph view).
    code_root: (PathBuf, PathBuf),
    last_cap: i32,
}

impl Sandbox {
    /// Sets up containment for one instance of `package` in `dialect` (`"functiongraph"` or
    /// `"lambda"`): `keep` are further host paths its processes need (the runtime's program and
    /// scripts). The mounts are made off the async workers.
    pub async fn create(
        containment: &Containment,
        package: &Package,
        dialect: &str,
        keep: Vec<PathBuf>,
        host_path: &str,
        memory: &MemoryGroup,
    ) -> io::Result<Sandbox> {
        let opted_out;
        let containment = if package.config.containment {
            containment
        } else {
            opted_out = Containment::off("containment: off in function.yaml");
            &opted_out
        };
        let root = package.root.clone();
        let mut sandbox = Sandbox {
            view: None,
            pids: None,
            id: None,
            nofile: !matches!(containment.mode, Mode::Off(_)),
            code_root: (root.clone(), root.clone()),
            last_cap: last_cap(),
        };
        if package.opt_dir.is_some() && !containment.can_mount() {
            return Err(io::Error::other(format!(
                "the package has layers, which are presented at /opt in the instance's own mount namespace, and fnbox cannot make one here ({})",
                containment.no_mount_reason().unwrap_or("containment off")
            )));
        }
        if containment.mode != Mode::On {
            return Ok(sandbox);
        }
        let lambda = dialect == "lambda";
        let id = if lambda { LAMBDA_ID } else { FUNCTIONGRAPH_ID };
        check_reachable(&root, id)?;
        let mut all_keep = vec![root.clone()];
        all_keep.extend(keep.into_iter().filter(|p| !p.starts_with(&root)));
        let spec = ViewSpec {
            tmp_mb: package.config.ephemeral_storage,
            keep: all_keep,
            hosts: lambda.then(|| LAMBDA_HOSTS.to_string()),
            opt_dir: if lambda {
                package.opt_dir.clone()
            } else {
                None
            },
            fg: (!lambda).then(|| FgView {
                code: root.clone(),
                interpreters: FgView::interpreters(host_path),
            }),
        };
        let view = tokio::task::spawn_blocking(move || View::create(spec))
            .await
            .map_err(|e| io::Error::other(e.to_string()))??;
        sandbox.view = Some(view);
        if !lambda {
            sandbox.code_root.1 = PathBuf::from(FG_CODE_ROOT);
        }
        sandbox.pids = containment
            .pids
            .create_group(memory.name(), PIDS_MAX, memory)
            .map_err(io::Error::other)?;
        sandbox.id = Some(id);
        Ok(sandbox)
    }

    /// Where the code directory is seen by the instance's processes (`RUNTIME_CODE_ROOT`).
    pub fn code_root(&self) -> &Path {
        &self.code_root.1
    }

    /// The uid (= gid) processes run as, when switched.
    pub fn id(&self) -> Option<u32> {
        self.id
    }

    /// The mount namespace descriptor, when the instance has its own (kept open as long as
    /// this sandbox lives).
    pub fn mount_ns_fd(&self) -> Option<RawFd> {
        self.view.as_ref().map(View::raw_fd)
    }

    /// The pids group's own `cgroup.procs`, when it has one (cgroup v1).
    pub fn pids_procs(&self) -> Option<&Path> {
        self.pids.as_ref().and_then(PidsGroup::procs_path)
    }

    /// Whether processes get `RLIMIT_NOFILE` [`NOFILE`] and `no_new_privs`.
    pub fn nofile(&self) -> bool {
        self.nofile
    }

    /// The highest capability number dropped from the bounding set.
    pub fn last_cap(&self) -> i32 {
        self.last_cap
    }

    /// Step 1 in the child (before the cgroup joins): enter the mount namespace and `chdir` to
    /// `cwd` again (`setns` moved it to the namespace's root; the code directory is visible at
    /// its host path inside, so `/proc/<pid>/cwd` reads the same from outside). Async-signal-safe.
    pub fn enter_hook(&self, cwd: &Path) -> impl Fn() -> io::Result<()> + Send + Sync + 'static {
        let ns = self.view.as_ref().map(View::raw_fd);
        let dir = CString::new(cwd.as_os_str().as_bytes()).ok();
        move || {
            if let (Some(fd), Some(dir)) = (ns, &dir) {
                // SAFETY: setns(2) takes no pointers; `fd` is the namespace descriptor the
                // parent's `View` keeps open until `spawn` returns. The child is single-threaded.
                if unsafe { libc::setns(fd, libc::CLONE_NEWNS) } != 0 {
                    return Err(io::Error::last_os_error());
                }
                // SAFETY: `dir` is a NUL-terminated string prepared before the fork and owned
                // by this closure; chdir(2) only reads it.
                if unsafe { libc::chdir(dir.as_ptr()) } != 0 {
                    return Err(io::Error::last_os_error());
                }
            }
            Ok(())
        }
    }

    /// Step 2 in the child (after the memory group is joined): join the pids group, set
    /// `RLIMIT_NOFILE`, `no_new_privs`, drop every capability and switch to the unprivileged
    /// uid/gid. Async-signal-safe.
    pub fn restrict_hook(&self) -> impl Fn() -> io::Result<()> + Send + Sync + 'static {
        let pids = self.pids.as_ref().map(PidsGroup::pre_exec_hook);
        let id = self.id;
        let nofile = self.nofile;
        let last_cap = self.last_cap;
        move || {
            if let Some(join) = &pids {
                join()?;
            }
            let check = |rc: libc::c_int| {
                if rc != 0 {
                    Err(io::Error::last_os_error())
                } else {
                    Ok(())
                }
            };
            if nofile {
                let lim = libc::rlimit {
                    rlim_cur: NOFILE as libc::rlim_t,
                    rlim_max: NOFILE as libc::rlim_t,
                };
                // SAFETY: setrlimit(2) reads the rlimit value on this stack frame.
                check(unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &lim) })?;
                // SAFETY: prctl(2) with integer arguments only.
                check(unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) })?;
            }
            if let Some(id) = id {
                for cap in 0..=last_cap {
                    // SAFETY: prctl(2) with integer arguments only; EINVAL for a capability
                    // this kernel does not know is harmless.
                    unsafe { libc::prctl(libc::PR_CAPBSET_DROP, cap, 0, 0, 0) };
                }
                // SAFETY: integer arguments only.
                unsafe {
                    libc::prctl(
                        libc::PR_CAP_AMBIENT,
                        libc::PR_CAP_AMBIENT_CLEAR_ALL,
                        0,
                        0,
                        0,
                    )
                };
                // SAFETY: a zero-length list with a null pointer is read by no one.
                check(unsafe { libc::setgroups(0, std::ptr::null()) })?;
                // SAFETY: integer argument only.
                check(unsafe { libc::setgid(id) })?;
                // SAFETY: integer argument only; from root to another uid without
                // SECBIT_KEEP_CAPS, the kernel clears the permitted and effective sets.
                check(unsafe { libc::setuid(id) })?;
            }
            Ok(())
        }
    }

    /// Removes the pids group (waits for its processes to leave; the memory group kills them).
    pub async fn remove(&self) {
        if let Some(p) = &self.pids {
            p.remove().await;
        }
    }
}

/// The highest capability number this kernel knows.
fn last_cap() -> i32 {
    std::fs::read_to_string("/proc/sys/kernel/cap_last_cap")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(63)
}

/// The unprivileged uid must be able to read the code directory itself (the view makes the way
/// to it, see `first_closed_ancestor`).
fn check_reachable(root: &Path, id: u32) -> io::Result<()> {
    use std::os::unix::fs::MetadataExt;
    let allowed = |m: &std::fs::Metadata, bits: u32| {
        let mode = m.mode();
        if m.uid() == id {
            mode & (bits << 6) == bits << 6
        } else if m.gid() == id {
            mode & (bits << 3) == bits << 3
        } else {
            mode & bits == bits
        }
    };
    let meta = std::fs::metadata(root)?;
    if !allowed(&meta, 0o5) {
        return Err(io::Error::other(format!(
            "the code directory {} (mode {:o}) is not readable by the function's uid {id}: make it world-readable (chmod -R a+rX) or set {OPT_OUT}",
            root.display(),
            meta.mode() & 0o7777
        )));
    }
    Ok(())
}

/// The sandbox of a new instance of `function` (`None` when containment is off).
pub(crate) async fn for_instance(
    function: &crate::Function,
    memory: &MemoryGroup,
) -> io::Result<Option<Arc<Sandbox>>> {
    let engine = &function.engine.config;
    let off =
        matches!(engine.containment.mode, Mode::Off(_)) || !function.package.config.containment;
    if off && function.package.opt_dir.is_none() {
        return Ok(None);
    }
    // The runtime's program and scripts outside the code directory (interpreters in /usr,
    // the built-in runtimes' cache under $TMPDIR) must stay visible.
    let launch = &function.launch;
    let keep = std::iter::once(launch.program.as_os_str())
        .chain(launch.args.iter().map(|a| a.as_os_str()))
        .map(Path::new)
        .filter(|p| p.is_absolute() && p.exists())
        .map(Path::to_path_buf)
        .collect();
    let host_path = engine
        .host_path
        .as_deref()
        .unwrap_or("/usr/local/bin:/usr/bin:/bin");
    Sandbox::create(
        &engine.containment,
        &function.package,
        function.dialect.name(),
        keep,
        host_path,
        memory,
    )
    .await
    .map(|s| Some(Arc::new(s)))
}

/// Points `RUNTIME_CODE_ROOT` at the code directory as the instance sees it.
pub(crate) fn adjust_env(sandbox: Option<&Sandbox>, env: &mut [(String, String)]) {
    let Some(sandbox) = sandbox else { return };
    for (k, v) in env.iter_mut() {
        if k == "RUNTIME_CODE_ROOT" {
            *v = sandbox.code_root().display().to_string();
        }
    }
}

/// The entries of a `PATH`-style list that an unprivileged uid can use (the directory and each
/// of its parents searchable by others), in order: what contained instances get, so that
/// interpreters are not looked up in, say, root's `~/.pyenv/shims`.
pub fn reachable_path(path: &str) -> String {
    use std::os::unix::fs::MetadataExt;
    let searchable = |d: &Path| {
        d.ancestors()
            .all(|a| std::fs::metadata(a).is_ok_and(|m| m.is_dir() && m.mode() & 0o001 != 0))
    };
    path.split(':')
        .filter(|d| !d.is_empty() && searchable(Path::new(d)))
        .collect::<Vec<_>>()
        .join(":")
}
