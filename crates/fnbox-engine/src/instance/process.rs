//! Spawning and supervising the processes of an instance: explicit environment, own process
//! group, memory group joined before `exec`, stdout/stderr read line by line.
//!
//! # Design
//! Each output pipe has its own reader task that only reads and hands complete lines to the
//! instance's sink, so a process printing fast is never throttled by anything downstream; the
//! sink must not block (the bus and the log buffer are both non-blocking).

use std::ffi::OsString;
use std::os::unix::process::ExitStatusExt;
use std::path::PathBuf;
use std::process::{ExitStatus, Stdio};
use std::sync::Arc;
use std::time::Duration;

use fnbox_limits::MemoryGroup;
use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;
use tokio::sync::{mpsc, oneshot, watch};
use tokio_util::task::TaskTracker;

/// Longest line kept whole; longer output is split into pieces of this size.
pub const MAX_LINE: usize = 256 * 1024;

/// Who a process is within its instance.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Role {
    /// The runtime (`bootstrap` or a built-in runtime).
    Runtime,
    /// An extension, by its file name.
    Extension(String),
}

/// Which pipe a line came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pipe {
    /// Standard output.
    Stdout,
    /// Standard error.
    Stderr,
}

/// One line of output.
#[derive(Clone, Debug)]
pub struct LogLine {
    /// Which process.
    pub role: Arc<Role>,
    /// Which pipe.
    pub pipe: Pipe,
    /// The line without its newline (lossy UTF-8).
    pub text: String,
}

/// Receives every output line; must not block.
pub type LineSink = Arc<dyn Fn(LogLine) + Send + Sync>;

/// What to start.
pub struct ProcessSpec {
    /// Program to run.
    pub program: PathBuf,
    /// Arguments.
    pub args: Vec<OsString>,
    /// Working directory.
    pub cwd: PathBuf,
    /// The complete environment (nothing is inherited).
    pub env: Vec<(String, String)>,
    /// Role in the instance.
    pub role: Role,
    /// The instance's network namespace fd, joined before `exec` (`None`: host network). The
    /// caller keeps it open until `spawn` returns.
    pub netns: Option<std::os::fd::RawFd>,
}

/// Failure to start a process.
#[derive(Debug, thiserror::Error)]
pub enum SpawnError {
    /// `exec` or `fork` failed.
    #[error("cannot start {program}: {source}")]
    Spawn {
        /// Program.
        program: String,
        /// OS error.
        source: std::io::Error,
    },
}

/// A running process of an instance. Clones watch the same process.
#[derive(Clone)]
pub struct Supervised {
    /// Role.
    pub role: Arc<Role>,
    /// Process id, also its process group id.
    pub pid: i32,
    exit: watch::Receiver<Option<ExitStatus>>,
    barriers: Vec<mpsc::Sender<oneshot::Sender<()>>>,
    readers_done: watch::Receiver<usize>,
}

impl Supervised {
    /// Waits until the process has exited and returns its status.
    pub async fn exited(&self) -> ExitStatus {
        let mut rx = self.exit.clone();
        loop {
            if let Some(status) = *rx.borrow_and_update() {
                return status;
            }
            if rx.changed().await.is_err() {
                // The waiter task ended without a status: treat as killed.
                return ExitStatus::from_raw(9);
            }
        }
    }

    /// The exit status if the process has exited.
    pub fn try_exit(&self) -> Option<ExitStatus> {
        *self.exit.borrow()
    }

    /// Waits until every line the process wrote before this call has been handed to the sink
    /// (at most `limit`). The runtime prints before it posts its response, but the pipe and
    /// the HTTP request race; this barrier keeps a `[Function]` line ahead of `runtimeDone`.
    pub async fn sync_output(&self, limit: Duration) {
        let acks = self.barriers.iter().filter_map(|b| {
            let (tx, rx) = oneshot::channel();
            b.try_send(tx).ok().map(|_| rx)
        });
        let all = futures::future::join_all(acks);
        let _ = tokio::time::timeout(limit, all).await;
    }

    /// Waits until both output pipes reached their end (at most `limit`).
    pub async fn output_closed(&self, limit: Duration) {
        let mut rx = self.readers_done.clone();
        let want = self.barriers.len();
        let _ = tokio::time::timeout(limit, rx.wait_for(|n| *n >= want)).await;
    }

    /// Sends `signal` to the whole process group, while its leader has not been reaped (after
    /// that the id could be reused; the memory group kills any leftovers precisely).
    pub fn signal_group(&self, signal: Signal) {
        if self.try_exit().is_none() {
            let _ = killpg(Pid::from_raw(self.pid), signal);
        }
    }
}

/// Describes an exit status for messages: `exit code 0`, `signal 9 (SIGKILL)`.
pub fn describe_exit(status: ExitStatus) -> String {
    if let Some(code) = status.code() {
        format!("exit code {code}")
    } else if let Some(sig) = status.signal() {
        match Signal::try_from(sig) {
            Ok(s) => format!("signal {sig} ({})", s.as_str()),
            Err(_) => format!("signal {sig}"),
        }
    } else {
        "unknown status".to_string()
    }
}

/// Starts a process in its own process group inside `memory`, with its output sent to `sink`.
pub fn spawn(
    spec: ProcessSpec,
    memory: &MemoryGroup,
    sink: LineSink,
    tracker: &TaskTracker,
) -> Result<Supervised, SpawnError> {
    let mut cmd = tokio::process::Command::new(&spec.program);
    cmd.args(&spec.args)
        .current_dir(&spec.cwd)
        .env_clear()
        .envs(spec.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true);
    let hook = memory.pre_exec_hook();
    let netns = spec.netns;
    let parent = nix::unistd::getpid();
    // SAFETY: the hook only performs async-signal-safe syscalls (open/write/close on
    // precomputed buffers), as `fnbox_limits::MemoryGroup::pre_exec_hook` documents; setns
    // is a single syscall on a descriptor the parent holds open; prctl and getppid are single
    // syscalls with no allocation.
    unsafe {
        cmd.pre_exec(move || {
            // Nothing outlives fnbox, even a SIGKILLed one: the kernel kills the process when
            // the thread that forked it ends. fnbox forks from the main thread or from tokio
            // workers, which live as long as fnbox. A parent that died before this line is
            // caught by the check after it.
            nix::sys::prctl::set_pdeathsig(Signal::SIGKILL)?;
            if nix::unistd::getppid() != parent {
                return Err(std::io::Error::other(
                    "fnbox exited while starting the process",
                ));
            }
            if let Some(fd) = netns {
                crate::netns::NetNs::pre_exec(fd)?;
            }
            hook()
        });
    }
    let mut child = cmd.spawn().map_err(|source| SpawnError::Spawn {
        program: spec.program.display().to_string(),
        source,
    })?;
    let pid = child.id().expect("a just-spawned child has a pid") as i32;
    memory.watch_process_group(pid);
    let role = Arc::new(spec.role);
    let fds = [
        child.stdout.take().and_then(|p| p.into_owned_fd().ok()),
        child.stderr.take().and_then(|p| p.into_owned_fd().ok()),
    ];
    let (barriers, readers_done) = read_output(fds, &role, &sink, tracker);
    let (tx, rx) = watch::channel(None);
    tracker.spawn(async move {
        let status = child
            .wait()
            .await
            .unwrap_or_else(|_| ExitStatus::from_raw(9));
        let _ = tx.send(Some(status));
    });
    Ok(Supervised {
        role,
        pid,
        exit: rx,
        barriers,
        readers_done,
    })
}

/// Watches a process fnbox did not fork itself (a restored instance forked by a snapshot
/// template, see [`crate::snapshot`]): its pid leads its own process group, its stdout/stderr
/// are the read ends of its output pipes, and its exit status comes from whoever reaps it.
pub(crate) fn adopt(
    forked: crate::snapshot::Forked,
    role: Role,
    memory: &MemoryGroup,
    sink: LineSink,
    tracker: &TaskTracker,
) -> Supervised {
    memory.watch_process_group(forked.pid);
    let role = Arc::new(role);
    let fds = [Some(forked.stdout), Some(forked.stderr)];
    let (barriers, readers_done) = read_output(fds, &role, &sink, tracker);
    Supervised {
        role,
        pid: forked.pid,
        exit: forked.exit,
        barriers,
        readers_done,
    }
}

/// One reader task per output pipe (stdout, stderr); returns their barriers and the count of
/// pipes that reached their end.
fn read_output(
    fds: [Option<std::os::fd::OwnedFd>; 2],
    role: &Arc<Role>,
    sink: &LineSink,
    tracker: &TaskTracker,
) -> (
    Vec<mpsc::Sender<oneshot::Sender<()>>>,
    watch::Receiver<usize>,
) {
    let (done_tx, readers_done) = watch::channel(0usize);
    let done_tx = Arc::new(done_tx);
    let mut barriers = Vec::with_capacity(2);
    for (fd, pipe) in fds.into_iter().zip([Pipe::Stdout, Pipe::Stderr]) {
        let Some(fd) = fd else { continue };
        let (btx, brx) = mpsc::channel(4);
        barriers.push(btx);
        let splitter = Splitter::new(role.clone(), pipe, sink.clone());
        tracker.spawn(pump(nonblocking(fd), splitter, brx, done_tx.clone()));
    }
    (barriers, readers_done)
}

/// Puts a pipe back in non-blocking mode (`into_owned_fd` hands it over blocking), so the
/// readiness loop and the barrier drain never block a runtime thread.
fn nonblocking(fd: std::os::fd::OwnedFd) -> std::os::fd::OwnedFd {
    use nix::fcntl::{fcntl, FcntlArg, OFlag};
    use std::os::fd::AsRawFd;
    let flags = fcntl(fd.as_raw_fd(), FcntlArg::F_GETFL)
        .map(OFlag::from_bits_truncate)
        .unwrap_or(OFlag::empty());
    let _ = fcntl(fd.as_raw_fd(), FcntlArg::F_SETFL(flags | OFlag::O_NONBLOCK));
    fd
}

/// Cuts a byte stream into lines (split at [`MAX_LINE`]) and hands them to the sink.
struct Splitter {
    line: Vec<u8>,
    role: Arc<Role>,
    pipe: Pipe,
    sink: LineSink,
}

impl Splitter {
    fn new(role: Arc<Role>, pipe: Pipe, sink: LineSink) -> Self {
        Self {
            line: Vec::new(),
            role,
            pipe,
            sink,
        }
    }

    fn emit(&self, bytes: &[u8]) {
        let bytes = bytes.strip_suffix(b"\r").unwrap_or(bytes);
        (self.sink)(LogLine {
            role: self.role.clone(),
            pipe: self.pipe,
            text: String::from_utf8_lossy(bytes).into_owned(),
        });
    }

    fn feed(&mut self, mut chunk: &[u8]) {
        let mut line = std::mem::take(&mut self.line);
        while let Some(pos) = memchr(b'\n', chunk) {
            if line.is_empty() && pos <= MAX_LINE {
                self.emit(&chunk[..pos]);
            } else {
                append_capped(&mut line, &chunk[..pos], &|b| self.emit(b));
                self.emit(&line);
                line.clear();
            }
            chunk = &chunk[pos + 1..];
        }
        append_capped(&mut line, chunk, &|b| self.emit(b));
        self.line = line;
    }

    fn finish(&mut self) {
        if !self.line.is_empty() {
            let line = std::mem::take(&mut self.line);
            self.emit(&line);
        }
    }
}

/// Most bytes one barrier drains, so a process printing without pause cannot hold it forever.
const BARRIER_BUDGET: usize = 4 * 1024 * 1024;

/// Reads one pipe to its end. Between reads it serves barriers: it drains what the pipe
/// already holds (non-blocking) and acknowledges, so the caller knows every earlier line has
/// reached the sink.
async fn pump(
    fd: std::os::fd::OwnedFd,
    mut splitter: Splitter,
    mut barriers: mpsc::Receiver<oneshot::Sender<()>>,
    done: Arc<watch::Sender<usize>>,
) {
    use std::os::fd::AsRawFd;
    let mut buf = vec![0u8; 64 * 1024];
    // SAFETY: the AsyncFd owns the OwnedFd, so the descriptor stays open and is not reused
    // while registered, which is what `register` requires.
    if let Ok(afd) = unsafe { tokio::io::unix::AsyncFd::register(fd) } {
        let raw = afd.as_raw_fd();
        let read = |buf: &mut [u8]| nix::unistd::read(raw, buf);
        'outer: loop {
            tokio::select! {
                biased;
                Some(ack) = barriers.recv() => {
                    let mut budget = BARRIER_BUDGET;
                    let mut eof = false;
                    while budget > 0 {
                        match read(&mut buf) {
                            Ok(0) => { eof = true; break; }
                            Ok(n) => { splitter.feed(&buf[..n]); budget = budget.saturating_sub(n); }
                            Err(nix::errno::Errno::EINTR) => continue,
                            Err(nix::errno::Errno::EAGAIN) => break,
                            Err(_) => { eof = true; break; }
                        }
                    }
                    let _ = ack.send(());
                    if eof { break 'outer; }
                }
                guard = afd.readable() => {
                    let Ok(mut guard) = guard else { break };
                    match guard.try_io(|_| read(&mut buf).map_err(std::io::Error::from)) {
                        Ok(Ok(0)) => break,
                        Ok(Ok(n)) => {
                            splitter.feed(&buf[..n]);
                            // A function printing without pause must not starve the tasks
                            // that deliver its telemetry on this worker.
                            tokio::task::yield_now().await;
                        }
                        Ok(Err(e)) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                        Ok(Err(_)) => break,
                        Err(_would_block) => continue,
                    }
                }
            }
        }
    }
    splitter.finish();
    // Late barriers are answered too: the pipe is closed, nothing more will come.
    barriers.close();
    while let Ok(ack) = barriers.try_recv() {
        let _ = ack.send(());
    }
    done.send_modify(|n| *n += 1);
}

/// Appends `data` to `line`, emitting `MAX_LINE`-sized pieces as the line grows past it.
fn append_capped(line: &mut Vec<u8>, mut data: &[u8], emit: &impl Fn(&[u8])) {
    while line.len() + data.len() > MAX_LINE {
        let take = MAX_LINE - line.len();
        line.extend_from_slice(&data[..take]);
        emit(line);
        line.clear();
        data = &data[take..];
    }
    line.extend_from_slice(data);
}

fn memchr(needle: u8, haystack: &[u8]) -> Option<usize> {
    haystack.iter().position(|&b| b == needle)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    #[test]
    fn lines_are_split_and_long_lines_cut() {
        let long = "x".repeat(MAX_LINE + 10);
        let input = format!("a\r\nb\n{long}\ntail");
        let got = Arc::new(Mutex::new(Vec::new()));
        let g = got.clone();
        let sink: LineSink = Arc::new(move |l: LogLine| g.lock().unwrap().push(l.text));
        let mut sp = Splitter::new(Arc::new(Role::Runtime), Pipe::Stdout, sink);
        // Feed in uneven chunks, as a pipe delivers them.
        for chunk in input.as_bytes().chunks(7000) {
            sp.feed(chunk);
        }
        sp.finish();
        let got = got.lock().unwrap();
        assert_eq!(got[0], "a");
        assert_eq!(got[1], "b");
        assert_eq!(got[2].len(), MAX_LINE);
        assert_eq!(got[3], "x".repeat(10));
        assert_eq!(got[4], "tail");
    }
}
