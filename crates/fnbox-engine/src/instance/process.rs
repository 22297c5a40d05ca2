//! Spawning and supervising the processes of an instance: explicit environment, own process
//! group, memory group joined before `exec`, output read line by line.
//!
//! # Design
//! A process's stdout and stderr are ONE pipe, as a platform's log collector sees them: lines
//! arrive in the order the process (and its children) wrote them, so a runtime's `[ERROR]` line
//! on stderr never overtakes the logger line it printed to stdout just before (two pipes read by
//! two tasks could swap them). What a process buffers itself is its own business: a runtime that
//! keeps stdout in a buffer and writes stderr at once still reorders them before fnbox sees
//! anything (the built-in runtimes flush stdout on every line).
//!
//! The pipe has its own reader task that only reads and hands complete lines to the instance's
//! sink, so a process printing fast is never throttled by anything downstream; the sink must
//! not block (the bus and the log buffer are both non-blocking).

use std::ffi::OsString;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::os::unix::process::ExitStatusExt;
use std::path::PathBuf;
use std::process::{ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
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

/// One line of output.
#[derive(Clone, Debug)]
pub struct LogLine {
    /// Which process (stdout and stderr are one stream, see the module's design notes).
    pub role: Arc<Role>,
    /// The line without its newline (lossy UTF-8).
    pub text: String,
}

/// Receives every output line, in order, as the batches one pipe read yields (a function
/// printing without pause delivers ~1,000 lines a call, so what the sink does once per call,
/// taking a lock or writing to fnbox's stderr, is not paid per line); must not block.
pub type LineSink = Arc<dyn Fn(Vec<LogLine>) + Send + Sync>;

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
    /// The instance's containment (mount namespace, ids, limits); `None`: none.
    pub sandbox: Option<Arc<crate::contain::Sandbox>>,
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
    barriers: Vec<Barrier>,
    readers_done: watch::Receiver<usize>,
}

/// How [`Supervised::sync_output`] reaches one pipe's reader.
#[derive(Clone)]
struct Barrier {
    tx: mpsc::Sender<oneshot::Sender<()>>,
    pipe: Arc<Pipe>,
}

/// One output pipe's read end, shared by its reader task (which owns the reading) and
/// [`Supervised::sync_output`] (which only asks how much is waiting). Closed when both are gone.
struct Pipe {
    fd: OwnedFd,
    /// Set while bytes the reader took out of the pipe are on their way to the sink.
    busy: AtomicBool,
}

impl Pipe {
    /// Whether every byte written to the pipe so far has reached the sink as lines (a partial
    /// last line stays with the reader, as it does through a barrier). Asks the kernel first,
    /// then the flag: bytes the reader took out before the kernel answered were taken with
    /// `busy` already set, and it is cleared only after their lines reached the sink.
    fn settled(&self) -> bool {
        matches!(rustix::io::ioctl_fionread(&self.fd), Ok(0)) && !self.busy.load(Ordering::SeqCst)
    }
}

/// The reader's handle on its [`Pipe`], for tokio's readiness registration.
struct PipeFd(Arc<Pipe>);

impl AsRawFd for PipeFd {
    fn as_raw_fd(&self) -> RawFd {
        self.0.fd.as_raw_fd()
    }
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
    /// A pipe whose reader has nothing in hand and nothing waiting is skipped: on the warm
    /// path (a runtime that printed nothing, or whose lines were read already) that is one
    /// `ioctl` instead of a round trip to the reader task and back.
    pub async fn sync_output(&self, limit: Duration) {
        let acks = self
            .barriers
            .iter()
            .filter(|b| !b.pipe.settled())
            .filter_map(|b| {
                let (tx, rx) = oneshot::channel();
                b.tx.try_send(tx).ok().map(|_| rx)
            });
        let all = futures::future::join_all(acks);
        let _ = tokio::time::timeout(limit, all).await;
    }

    /// Waits until the output pipe reached its end (at most `limit`).
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
    let spawn_error = |source| SpawnError::Spawn {
        program: spec.program.display().to_string(),
        source,
    };
    // One pipe for stdout and stderr (module docs: their lines keep the order they were written).
    let (output, write_end) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)
        .map_err(|e| spawn_error(std::io::Error::from(e)))?;
    let write_end_2 = write_end.try_clone().map_err(spawn_error)?;
    let mut cmd = tokio::process::Command::new(&spec.program);
    cmd.stdout(Stdio::from(write_end))
        .stderr(Stdio::from(write_end_2));
    cmd.args(&spec.args)
        .current_dir(&spec.cwd)
        .env_clear()
        .envs(spec.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .stdin(Stdio::null())
        .process_group(0)
        .kill_on_drop(true);
    let hook = memory.pre_exec_hook();
    let netns = spec.netns;
    let enter = spec.sandbox.as_ref().map(|s| s.enter_hook(&spec.cwd));
    let restrict = spec.sandbox.as_ref().map(|s| s.restrict_hook());
    let parent = nix::unistd::getpid();
    // SAFETY: the hook only performs async-signal-safe syscalls (open/write/close on
    // precomputed buffers), as `fnbox_limits::MemoryGroup::pre_exec_hook` documents; setns
    // is a single syscall on a descriptor the parent holds open; prctl and getppid are single
    // syscalls with no allocation; the sandbox hooks are async-signal-safe syscalls on data
    // prepared before the fork (`crate::contain::Sandbox`).
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
            if let Some(enter) = &enter {
                enter()?;
            }
            hook()?;
            if let Some(restrict) = &restrict {
                restrict()?;
                // Changing the uid clears the parent-death signal (prctl(2)): set it again,
                // and catch a parent that died in between.
                nix::sys::prctl::set_pdeathsig(Signal::SIGKILL)?;
                if nix::unistd::getppid() != parent {
                    return Err(std::io::Error::other(
                        "fnbox exited while starting the process",
                    ));
                }
            }
            Ok(())
        });
    }
    let spawned = cmd.spawn();
    // The parent's copies of the write end go with the command, so the reader sees the end of
    // the stream when the process (and every child holding it) is gone.
    drop(cmd);
    let mut child = spawned.map_err(spawn_error)?;
    let pid = child.id().expect("a just-spawned child has a pid") as i32;
    memory.watch_process_group(pid);
    let role = Arc::new(spec.role);
    let (barriers, readers_done) = read_output([output], &role, &sink, tracker);
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
/// template, see [`crate::snapshot`]): its pid leads its own process group, its stdout and
/// stderr are one pipe whose read end fnbox holds, and its exit status comes from whoever reaps it.
pub(crate) fn adopt(
    forked: crate::snapshot::Forked,
    role: Role,
    memory: &MemoryGroup,
    sink: LineSink,
    tracker: &TaskTracker,
) -> Supervised {
    memory.watch_process_group(forked.pid);
    let role = Arc::new(role);
    let (barriers, readers_done) = read_output([forked.output], &role, &sink, tracker);
    Supervised {
        role,
        pid: forked.pid,
        exit: forked.exit,
        barriers,
        readers_done,
    }
}

/// One reader task per output pipe (a process's stdout and stderr share one, so its lines keep
/// their order); returns their barriers and the count of pipes that reached their end.
fn read_output(
    fds: impl IntoIterator<Item = std::os::fd::OwnedFd>,
    role: &Arc<Role>,
    sink: &LineSink,
    tracker: &TaskTracker,
) -> (Vec<Barrier>, watch::Receiver<usize>) {
    let (done_tx, readers_done) = watch::channel(0usize);
    let done_tx = Arc::new(done_tx);
    let mut barriers = Vec::new();
    for fd in fds {
        let (btx, brx) = mpsc::channel(4);
        let pipe = Arc::new(Pipe {
            fd: nonblocking(fd),
            busy: AtomicBool::new(false),
        });
        barriers.push(Barrier {
            tx: btx,
            pipe: pipe.clone(),
        });
        let splitter = Splitter::new(role.clone(), sink.clone());
        tracker.spawn(pump(pipe, splitter, brx, done_tx.clone()));
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
    sink: LineSink,
}

impl Splitter {
    fn new(role: Arc<Role>, sink: LineSink) -> Self {
        Self {
            line: Vec::new(),
            role,
            sink,
        }
    }

    /// Cuts `chunk` into lines (joined to what the previous chunk left unfinished) and hands
    /// them to the sink in one call.
    fn feed(&mut self, mut chunk: &[u8]) {
        let mut out = Vec::new();
        let role = &self.role;
        let mut emit = |bytes: &[u8]| out.push(log_line(role, bytes));
        let mut line = std::mem::take(&mut self.line);
        while let Some(pos) = memchr(b'\n', chunk) {
            if line.is_empty() && pos <= MAX_LINE {
                emit(&chunk[..pos]);
            } else {
                append_capped(&mut line, &chunk[..pos], &mut emit);
                emit(&line);
                line.clear();
            }
            chunk = &chunk[pos + 1..];
        }
        append_capped(&mut line, chunk, &mut emit);
        self.line = line;
        if !out.is_empty() {
            (self.sink)(out);
        }
    }

    fn finish(&mut self) {
        if !self.line.is_empty() {
            let line = std::mem::take(&mut self.line);
            (self.sink)(vec![log_line(&self.role, &line)]);
        }
    }
}

/// One line from its bytes: without its `\r\n` ending's `\r`, lossy UTF-8.
fn log_line(role: &Arc<Role>, bytes: &[u8]) -> LogLine {
    let bytes = bytes.strip_suffix(b"\r").unwrap_or(bytes);
    LogLine {
        role: role.clone(),
        // Valid UTF-8 (nearly every line) is checked and copied in one pass.
        text: match std::str::from_utf8(bytes) {
            Ok(s) => s.to_owned(),
            Err(_) => String::from_utf8_lossy(bytes).into_owned(),
        },
    }
}

/// Most bytes one barrier drains, so a process printing without pause cannot hold it forever.
const BARRIER_BUDGET: usize = 4 * 1024 * 1024;

/// Reads one pipe to its end. Between reads it serves barriers: it drains what the pipe
/// already holds (non-blocking) and acknowledges, so the caller knows every earlier line has
/// reached the sink.
async fn pump(
    pipe: Arc<Pipe>,
    mut splitter: Splitter,
    mut barriers: mpsc::Receiver<oneshot::Sender<()>>,
    done: Arc<watch::Sender<usize>>,
) {
    let mut buf = vec![0u8; 64 * 1024];
    let raw = pipe.fd.as_raw_fd();
    // `busy` is set before every read and cleared once what it returned is with the sink (on
    // the pipe's end: after the last partial line), which is what `Pipe::settled` relies on.
    let read = |buf: &mut [u8]| {
        pipe.busy.store(true, Ordering::SeqCst);
        nix::unistd::read(raw, buf)
    };
    let idle = || pipe.busy.store(false, Ordering::SeqCst);
    // SAFETY: the AsyncFd holds an Arc of the Pipe that owns the descriptor, so it stays open
    // and is not reused while registered, which is what `register` requires.
    if let Ok(afd) = unsafe { tokio::io::unix::AsyncFd::register(PipeFd(pipe.clone())) } {
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
                    if eof {
                        let _ = ack.send(());
                        break 'outer;
                    }
                    // Clear before acknowledging: the lines are with the sink already.
                    idle();
                    let _ = ack.send(());
                }
                guard = afd.readable() => {
                    let Ok(mut guard) = guard else { break };
                    match guard.try_io(|_| read(&mut buf).map_err(std::io::Error::from)) {
                        Ok(Ok(0)) => break,
                        Ok(Ok(n)) => {
                            splitter.feed(&buf[..n]);
                            idle();
                            // A function printing without pause must not starve the tasks
                            // that deliver its telemetry on this worker.
                            tokio::task::yield_now().await;
                        }
                        Ok(Err(e)) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                        Ok(Err(_)) => break,
                        Err(_would_block) => idle(),
                    }
                }
            }
        }
    }
    splitter.finish();
    idle();
    // Late barriers are answered too: the pipe is closed, nothing more will come.
    barriers.close();
    while let Ok(ack) = barriers.try_recv() {
        let _ = ack.send(());
    }
    done.send_modify(|n| *n += 1);
}

/// Appends `data` to `line`, emitting `MAX_LINE`-sized pieces as the line grows past it.
fn append_capped(line: &mut Vec<u8>, mut data: &[u8], emit: &mut impl FnMut(&[u8])) {
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
    memchr::memchr(needle, haystack)
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
        let sink: LineSink = Arc::new(move |batch: Vec<LogLine>| {
            g.lock().unwrap().extend(batch.into_iter().map(|l| l.text));
        });
        let mut sp = Splitter::new(Arc::new(Role::Runtime), sink);
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
        assert_eq!(got.len(), 5);
    }

    /// `sync_output` returns only once every complete line written before it is with the sink,
    /// whether it skips the reader (settled pipe) or waits for it; a skip taken too early shows
    /// as a missing last line.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sync_output_sees_every_line_written_before_it() {
        let (read_end, write_end) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).expect("pipe");
        let got = Arc::new(Mutex::new(Vec::new()));
        let g = got.clone();
        let sink: LineSink = Arc::new(move |batch: Vec<LogLine>| {
            g.lock().unwrap().extend(batch.into_iter().map(|l| l.text));
        });
        let tracker = TaskTracker::new();
        let role = Arc::new(Role::Runtime);
        let (barriers, readers_done) = read_output([read_end], &role, &sink, &tracker);
        let process = Supervised {
            role,
            pid: 0,
            exit: watch::channel(None).1,
            barriers,
            readers_done,
        };
        for i in 0..500 {
            let line = format!("line {i}");
            nix::unistd::write(&write_end, format!("{line}\n").as_bytes()).expect("write");
            process.sync_output(Duration::from_secs(10)).await;
            assert_eq!(got.lock().unwrap().last(), Some(&line), "after line {i}");
        }
        // Settles once the reader is done with its last read (a spurious readiness wake-up
        // may hold the flag for an instant).
        let mut settled = false;
        for _ in 0..1000 {
            if process.barriers[0].pipe.settled() {
                settled = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        assert!(settled, "nothing left in hand");
        nix::unistd::write(&write_end, b"partial").expect("write");
        drop(write_end);
        process.output_closed(Duration::from_secs(10)).await;
        assert_eq!(
            got.lock().unwrap().last().map(String::as_str),
            Some("partial")
        );
        tracker.close();
        tracker.wait().await;
    }

    #[test]
    fn one_sink_call_per_chunk() {
        let got = Arc::new(Mutex::new(Vec::new()));
        let g = got.clone();
        let sink: LineSink = Arc::new(move |batch: Vec<LogLine>| {
            g.lock()
                .unwrap()
                .push(batch.into_iter().map(|l| l.text).collect::<Vec<_>>());
        });
        let mut sp = Splitter::new(Arc::new(Role::Runtime), sink);
        sp.feed(b"one\ntwo\nthr");
        sp.feed(b"ee\n");
        sp.feed(b"no newline yet");
        sp.finish();
        assert_eq!(
            *got.lock().unwrap(),
            vec![
                vec!["one".to_string(), "two".into()],
                vec!["three".into()],
                vec!["no newline yet".into()],
            ]
        );
    }
}
