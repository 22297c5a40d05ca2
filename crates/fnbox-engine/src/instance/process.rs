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

use fnbox_limits::MemoryGroup;
use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::sync::watch;
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
    // SAFETY: the hook only performs async-signal-safe syscalls (open/write/close on
    // precomputed buffers), as `fnbox_limits::MemoryGroup::pre_exec_hook` documents.
    unsafe {
        cmd.pre_exec(hook);
    }
    let mut child = cmd.spawn().map_err(|source| SpawnError::Spawn {
        program: spec.program.display().to_string(),
        source,
    })?;
    let pid = child.id().expect("a just-spawned child has a pid") as i32;
    memory.watch_process_group(pid);
    let role = Arc::new(spec.role);
    if let Some(out) = child.stdout.take() {
        tracker.spawn(read_lines(out, role.clone(), Pipe::Stdout, sink.clone()));
    }
    if let Some(err) = child.stderr.take() {
        tracker.spawn(read_lines(err, role.clone(), Pipe::Stderr, sink));
    }
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
    })
}

/// Reads `reader` to its end, calling `sink` with every line (split at [`MAX_LINE`]).
async fn read_lines(
    mut reader: impl AsyncRead + Unpin,
    role: Arc<Role>,
    pipe: Pipe,
    sink: LineSink,
) {
    let mut buf = vec![0u8; 64 * 1024];
    let mut line: Vec<u8> = Vec::new();
    let emit = |bytes: &[u8]| {
        let bytes = bytes.strip_suffix(b"\r").unwrap_or(bytes);
        sink(LogLine {
            role: role.clone(),
            pipe,
            text: String::from_utf8_lossy(bytes).into_owned(),
        });
    };
    loop {
        let n = match reader.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        let mut chunk = &buf[..n];
        while let Some(pos) = memchr(b'\n', chunk) {
            if line.is_empty() && pos <= MAX_LINE {
                emit(&chunk[..pos]);
            } else {
                append_capped(&mut line, &chunk[..pos], &emit);
                emit(&line);
                line.clear();
            }
            chunk = &chunk[pos + 1..];
        }
        append_capped(&mut line, chunk, &emit);
    }
    if !line.is_empty() {
        emit(&line);
    }
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

    #[tokio::test]
    async fn lines_are_split_and_long_lines_cut() {
        let long = "x".repeat(MAX_LINE + 10);
        let input = format!("a\r\nb\n{long}\ntail");
        let got = Arc::new(Mutex::new(Vec::new()));
        let g = got.clone();
        let sink: LineSink = Arc::new(move |l: LogLine| g.lock().unwrap().push(l.text));
        read_lines(
            input.as_bytes(),
            Arc::new(Role::Runtime),
            Pipe::Stdout,
            sink,
        )
        .await;
        let got = got.lock().unwrap();
        assert_eq!(got[0], "a");
        assert_eq!(got[1], "b");
        assert_eq!(got[2].len(), MAX_LINE);
        assert_eq!(got[3], "x".repeat(10));
        assert_eq!(got[4], "tail");
    }
}
