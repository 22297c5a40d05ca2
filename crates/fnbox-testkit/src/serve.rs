//! The real `fnbox serve` for the CLI's integration tests: started on an ephemeral port (its
//! address read from the "listening on" line), signalled and stopped, plus `fnbox invoke` and
//! the processes a fixture left behind.
//!
//! The binary is passed in (`env!("CARGO_BIN_EXE_fnbox")`): cargo only tells the tests of the
//! package that builds it where it is.

// Synchronous helpers around a spawned `fnbox` process (no tokio runtime): std time.
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

use std::ffi::OsStr;
use std::io::{BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use crate::process_alive;

/// A running `fnbox serve`, killed when dropped if it is still running.
pub struct Serve {
    /// The server process.
    pub child: Child,
    /// Where it listens.
    pub addr: SocketAddr,
    /// Its stdout lines up to and including the "listening on" line.
    pub startup: Vec<String>,
    /// The data dir when the test did not give one (the default `./.fnbox` is one serve at a
    /// time, and tests run in parallel).
    _data: Option<tempfile::TempDir>,
    stderr: Option<JoinHandle<String>>,
}

impl Serve {
    /// Starts `<fnbox> serve <args> --listen 127.0.0.1:0` and waits (up to 30 s) for its
    /// "listening on" line. Without `--data-dir` in `args`, a temporary one is used.
    pub fn start(fnbox: impl AsRef<OsStr>, args: &[&str]) -> Serve {
        Serve::start_with_env(fnbox, args, &[])
    }

    /// [`Serve::start`] with extra environment variables for the server.
    pub fn start_with_env(fnbox: impl AsRef<OsStr>, args: &[&str], env: &[(&str, &str)]) -> Serve {
        use std::os::unix::process::CommandExt;
        let mut cmd = Command::new(fnbox);
        // If the test process dies, fnbox serve gets SIGTERM and cleans up after itself.
        // SAFETY: `pre_exec` needs a closure that is async-signal-safe between fork and
        // exec: this one only makes the prctl(PR_SET_PDEATHSIG) syscall and allocates nothing.
        unsafe {
            cmd.pre_exec(|| {
                nix::sys::prctl::set_pdeathsig(Signal::SIGTERM).map_err(std::io::Error::from)
            });
        }
        let data = (!args.contains(&"--data-dir")).then(|| tempfile::tempdir().unwrap());
        cmd.arg("serve");
        if let Some(d) = &data {
            cmd.arg("--data-dir").arg(d.path());
        }
        let mut child = cmd
            .args(args)
            .args(["--listen", "127.0.0.1:0"])
            .envs(env.iter().copied())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn fnbox serve");
        let stderr = child.stderr.take().unwrap();
        let stderr = std::thread::spawn(move || {
            let mut s = String::new();
            let _ = BufReader::new(stderr).read_to_string(&mut s);
            s
        });
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut startup = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(30);
        let addr = loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(line) => {
                    let found = line
                        .split("listening on http://")
                        .nth(1)
                        .and_then(|rest| rest.split_whitespace().next())
                        .and_then(|a| a.parse::<SocketAddr>().ok());
                    startup.push(line);
                    if let Some(a) = found {
                        break a;
                    }
                }
                Err(_) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    panic!(
                        "fnbox serve did not come up; stdout: {startup:?}; stderr: {}",
                        stderr.join().unwrap_or_default()
                    );
                }
            }
        };
        Serve {
            child,
            addr,
            startup,
            _data: data,
            stderr: Some(stderr),
        }
    }

    /// `http://<addr>`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Sends `sig` to the server.
    pub fn signal(&self, sig: Signal) {
        kill(Pid::from_raw(self.child.id() as i32), sig).expect("signal fnbox serve");
    }

    /// Waits for the exit (bounded, else kills it and panics); returns the exit code (None
    /// after a signal) and stderr.
    pub fn wait(mut self, within: Duration) -> (Option<i32>, String) {
        let end = Instant::now() + within;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                let err = self.stderr.take().unwrap().join().unwrap_or_default();
                return (status.code(), err);
            }
            if Instant::now() >= end {
                let _ = self.child.kill();
                let _ = self.child.wait();
                let err = self.stderr.take().unwrap().join().unwrap_or_default();
                panic!("fnbox serve did not exit within {within:?}; stderr: {err}");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGTERM, then [`Serve::wait`]; the exit code is the caller's to check.
    pub fn terminate(self, within: Duration) -> (Option<i32>, String) {
        self.signal(Signal::SIGTERM);
        self.wait(within)
    }

    /// SIGTERM and a clean exit (code 0) within 30 s.
    pub fn stop(self) {
        let (code, err) = self.terminate(Duration::from_secs(30));
        assert_eq!(code, Some(0), "stderr: {err}");
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// `<fnbox> invoke <args> --server <serve_url>`, run to completion.
pub fn invoke(fnbox: impl AsRef<OsStr>, serve_url: &str, args: &[&str]) -> Output {
    Command::new(fnbox)
        .arg("invoke")
        .args(args)
        .args(["--server", serve_url])
        .output()
        .expect("run fnbox invoke")
}

/// Pids of live processes whose working directory is `dir` (a fixture's runtime and whatever
/// it started).
pub fn processes_in(dir: &Path) -> Vec<i32> {
    let dir = dir.canonicalize().unwrap();
    let mut out = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<i32>().ok())
        else {
            continue;
        };
        if std::fs::read_link(entry.path().join("cwd")).is_ok_and(|cwd| cwd == dir)
            && process_alive(pid)
        {
            out.push(pid);
        }
    }
    out
}
