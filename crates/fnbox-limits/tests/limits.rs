//! Real-process tests of memory limits. The cgroup tests need root and a writable cgroup
//! memory controller; where `MemoryController::cgroup()` fails they fail, saying so (CI runs
//! as root with cgroups).
//! Group names are unique per test because tests run in parallel.

// These tests are synchronous (no tokio runtime): they wait for child processes with std time.
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

use std::io::{BufRead, BufReader, Write};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use fnbox_limits::{LimitError, MemoryController, MemoryGroup, MemoryMode};

const MIB: u64 = 1024 * 1024;
const STALE_HELPER_ENV: &str = "FNBOX_LIMITS_STALE_HELPER";

/// Spawns `program` in its own process group inside `group`, as the engine does.
fn spawn_in(group: &MemoryGroup, program: &str, args: &[&str]) -> Child {
    let mut cmd = Command::new(program);
    cmd.args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .process_group(0);
    let hook = group.pre_exec_hook();
    // SAFETY: `pre_exec` needs a closure that is async-signal-safe between fork and exec:
    // fnbox-limits' hook only calls getpid/open/write/close on a path prepared before the
    // fork, and does not allocate.
    unsafe {
        cmd.pre_exec(hook);
    }
    let child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("spawning {program}: {e}"));
    group.watch_process_group(child.id() as i32);
    child
}

fn wait_for(child: &mut Child, timeout: Duration) -> ExitStatus {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            return status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("child {} did not exit within {timeout:?}", child.id());
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// The cgroup controller, or a failure that says what to enable.
fn require_cgroup() -> MemoryController {
    MemoryController::cgroup().unwrap_or_else(|e| {
        panic!(
            "cgroup memory controller unavailable ({e}): run the tests as root on Linux with a \
             writable cgroup memory controller (cgroup v2 with `memory` enabled, or v1 `memory`)"
        )
    })
}

/// Whether `pid` is gone or a zombie.
fn is_dead(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(s) => s
            .rsplit_once(')')
            .is_some_and(|(_, rest)| rest.trim_start().starts_with(['Z', 'X'])),
        Err(_) => true,
    }
}

const ALLOC_20M: &str = "a=bytearray(20*1024*1024); import time; time.sleep(0.3)";
const GROW_TO_400M: &str = "import time\nl=[]\nfor i in range(40):\n    l.append(bytearray(10*1024*1024))\n    time.sleep(0.02)\ntime.sleep(1)\n";

#[test]
fn detect_describes_mode() {
    let c = MemoryController::detect();
    let line = c.describe();
    eprintln!("{line}");
    assert!(
        line.starts_with(&format!("memory limits: {}", c.mode())),
        "{line}"
    );
}

#[test]
fn cgroup_over_limit_is_oom_killed() {
    let c = require_cgroup();
    assert_ne!(c.mode(), MemoryMode::RssSampling);
    let g = c.create_group("t-oom-kill", 64 * MIB).unwrap();
    assert_eq!(g.limit_bytes(), 64 * MIB);
    let mut child = spawn_in(
        &g,
        "python3",
        &[
            "-c",
            "a=bytearray(200*1024*1024); import time; time.sleep(1)",
        ],
    );
    let status = wait_for(&mut child, Duration::from_secs(10));
    assert_eq!(status.signal(), Some(libc::SIGKILL), "{status:?}");
    assert_eq!(g.oom_kills(), 1);
    assert!(
        g.kernel_peak_bytes() <= 64 * MIB,
        "kernel peak {}",
        g.kernel_peak_bytes()
    );
    // memoryUsed (resident sets, capped at the limit) saw the allocation reach the limit.
    let peak = g.peak_bytes();
    assert!((32 * MIB..=64 * MIB).contains(&peak), "peak {peak}");
}

#[test]
fn cgroup_peak_is_measured_and_reset() {
    let c = require_cgroup();
    let g = c.create_group("t-peak", 128 * MIB).unwrap();
    let mut child = spawn_in(&g, "python3", &["-c", ALLOC_20M]);
    assert!(wait_for(&mut child, Duration::from_secs(10)).success());
    let peak = g.peak_bytes();
    assert!((20 * MIB..128 * MIB).contains(&peak), "peak {peak}");
    assert_eq!(g.oom_kills(), 0);

    g.reset_peak();
    let mut idle = spawn_in(&g, "sleep", &["0.2"]);
    assert!(wait_for(&mut idle, Duration::from_secs(5)).success());
    let idle_peak = g.peak_bytes();
    assert!(idle_peak < peak, "idle peak {idle_peak} vs {peak}");
    assert!(idle_peak < 20 * MIB, "idle peak {idle_peak}");
}

/// The teardown the engine awaits: leftovers are killed, and `remove` waits (asynchronously)
/// until the group can be removed. A child cgroup keeps `rmdir` failing with EBUSY until it is
/// removed a little later, so the retry path really runs.
#[tokio::test(flavor = "current_thread")]
async fn cgroup_remove_kills_leftovers_and_waits_for_the_group_to_empty() {
    let c = require_cgroup();
    let g = c.create_group("t-remove", 64 * MIB).unwrap();
    let dir = g.cgroup_path().unwrap().to_path_buf();
    assert!(dir.is_dir());
    let mut child = spawn_in(&g, "sleep", &["100"]);
    let procs = std::fs::read_to_string(dir.join("cgroup.procs")).unwrap();
    assert!(
        procs.lines().any(|l| l.trim() == child.id().to_string()),
        "{procs}"
    );
    assert!(g.current_bytes() > 0);
    let held = dir.join("held");
    std::fs::create_dir(&held).unwrap();

    let release = async {
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(
            dir.exists(),
            "removed while a child cgroup was still inside"
        );
        std::fs::remove_dir(&held).unwrap();
    };
    tokio::join!(g.remove(), release);
    assert!(!dir.exists(), "{} still exists", dir.display());
    // Idempotent, and the drop after it finds nothing left to do.
    g.remove().await;
    drop(g);
    let status = wait_for(&mut child, Duration::from_secs(5));
    assert_eq!(status.signal(), Some(libc::SIGKILL));
}

/// Dropping a group whose `rmdir` fails with EBUSY returns at once and hands the retry to the
/// runtime. On this single-threaded runtime nothing else can run during `drop`: a drop that
/// waited for the group to empty would give up (the child cgroup is still there), and then
/// nobody would remove the directory afterwards.
#[tokio::test(flavor = "current_thread")]
async fn cgroup_drop_of_a_busy_group_hands_removal_to_the_runtime() {
    let c = require_cgroup();
    let g = c.create_group("t-drop-busy", 64 * MIB).unwrap();
    let dir = g.cgroup_path().unwrap().to_path_buf();
    let mut child = spawn_in(&g, "sleep", &["100"]);
    let held = dir.join("held");
    std::fs::create_dir(&held).unwrap();

    drop(g);
    assert!(
        dir.exists(),
        "the group cannot be gone while a child cgroup is inside"
    );
    std::fs::remove_dir(&held).unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while dir.exists() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{} was not removed by the handed-off task",
            dir.display()
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let status = wait_for(&mut child, Duration::from_secs(5));
    assert_eq!(status.signal(), Some(libc::SIGKILL));
}

/// Outside a runtime the drop still kills what is left, and removes the group when it is
/// already empty; a group still busy at that moment is left for the next start's clean-up.
#[test]
fn cgroup_drop_outside_a_runtime_kills_leftovers() {
    let c = require_cgroup();
    let g = c.create_group("t-drop", 64 * MIB).unwrap();
    let dir = g.cgroup_path().unwrap().to_path_buf();
    let mut child = spawn_in(&g, "sleep", &["100"]);
    drop(g);
    let status = wait_for(&mut child, Duration::from_secs(5));
    assert_eq!(status.signal(), Some(libc::SIGKILL));
    // The one rmdir may have raced the exiting child: remove what it left so that this
    // test leaves nothing behind (the directory must be removable now that it is empty).
    if dir.exists() {
        std::fs::remove_dir(&dir).unwrap();
    }

    let empty = c.create_group("t-drop-empty", 64 * MIB).unwrap();
    let dir = empty.cgroup_path().unwrap().to_path_buf();
    drop(empty);
    assert!(!dir.exists(), "{} still exists", dir.display());
}

#[test]
fn cgroup_kill_all_and_duplicate_names() {
    let c = require_cgroup();
    let g = c.create_group("t-kill-all", 64 * MIB).unwrap();
    assert!(matches!(
        c.create_group("t-kill-all", 64 * MIB),
        Err(LimitError::Io { .. })
    ));
    let mut a = spawn_in(&g, "sleep", &["100"]);
    let mut b = spawn_in(&g, "sh", &["-c", "sleep 100 & wait"]);
    g.kill_all();
    assert_eq!(
        wait_for(&mut a, Duration::from_secs(5)).signal(),
        Some(libc::SIGKILL)
    );
    assert_eq!(
        wait_for(&mut b, Duration::from_secs(5)).signal(),
        Some(libc::SIGKILL)
    );
}

/// In a child process (this same test, run again with [`STALE_HELPER_ENV`] set): leaves a
/// group with a sleeping process behind and exits without cleaning up, like a crashed fnbox.
fn leave_a_stale_group_and_exit(name: &str) -> ! {
    let c = require_cgroup();
    let g = c.create_group(name, 64 * MIB).expect("group in helper");
    let child = spawn_in(&g, "sleep", &["100"]);
    let mut out = std::io::stdout();
    let _ = writeln!(
        out,
        "STALE {} {}",
        child.id(),
        g.cgroup_path().unwrap().display()
    );
    let _ = out.flush();
    std::mem::forget(g);
    std::mem::forget(c);
    std::process::exit(0);
}

#[test]
fn cgroup_cleanup_stale_removes_dead_runs() {
    if let Ok(name) = std::env::var(STALE_HELPER_ENV) {
        leave_a_stale_group_and_exit(&name);
    }
    let c = require_cgroup();
    let exe = std::env::current_exe().unwrap();
    let mut helper = Command::new(exe)
        .args([
            "cgroup_cleanup_stale_removes_dead_runs",
            "--exact",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(STALE_HELPER_ENV, "t-stale")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let mut found = None;
    for line in BufReader::new(helper.stdout.take().unwrap()).lines() {
        let line = line.unwrap();
        if let Some((_, rest)) = line.split_once("STALE ") {
            let (pid, path) = rest.split_once(' ').unwrap();
            found = Some((pid.parse::<u32>().unwrap(), PathBuf::from(path)));
        }
    }
    assert!(helper.wait().unwrap().success());
    let (sleep_pid, dir) = found.expect("helper reported its group");
    assert!(dir.is_dir(), "helper left {} behind", dir.display());
    assert!(!is_dead(sleep_pid));

    let removed = c.cleanup_stale();
    eprintln!("cleanup_stale removed {removed} group(s)");
    // Another fnbox process running cleanup_stale at the same moment may have removed it
    // first, so check the effect rather than the count.
    assert!(!dir.exists(), "{} still exists", dir.display());
    assert!(
        !dir.parent().unwrap().exists(),
        "stale run directory still exists"
    );
    let deadline = Instant::now() + Duration::from_secs(3);
    while !is_dead(sleep_pid) {
        assert!(
            Instant::now() < deadline,
            "stale process {sleep_pid} still alive"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn rss_over_limit_is_killed() {
    let c = MemoryController::rss_sampling("test");
    let g = c.create_group("t-rss-oom", 64 * MIB).unwrap();
    let mut child = spawn_in(&g, "python3", &["-c", GROW_TO_400M]);
    let status = wait_for(&mut child, Duration::from_secs(10));
    assert_eq!(status.signal(), Some(libc::SIGKILL), "{status:?}");
    assert_eq!(g.oom_kills(), 1);
    assert!(g.peak_bytes() > 64 * MIB, "peak {}", g.peak_bytes());
}

#[test]
fn rss_peak_is_measured_and_reset() {
    let c = MemoryController::rss_sampling("test");
    let g = c.create_group("t-rss-peak", 128 * MIB).unwrap();
    let mut child = spawn_in(&g, "python3", &["-c", ALLOC_20M]);
    assert!(wait_for(&mut child, Duration::from_secs(10)).success());
    let peak = g.peak_bytes();
    assert!((20 * MIB..128 * MIB).contains(&peak), "peak {peak}");
    assert_eq!(g.oom_kills(), 0);

    g.reset_peak();
    let mut idle = spawn_in(&g, "sleep", &["0.2"]);
    assert!(wait_for(&mut idle, Duration::from_secs(5)).success());
    assert!(
        g.peak_bytes() < peak,
        "idle peak {} vs {peak}",
        g.peak_bytes()
    );
}

#[test]
fn rss_drop_kills_process_groups() {
    let c = MemoryController::rss_sampling("test");
    let g = c.create_group("t-rss-drop", 64 * MIB).unwrap();
    let mut child = spawn_in(&g, "sh", &["-c", "sleep 100 & wait"]);
    std::thread::sleep(Duration::from_millis(50));
    assert!(g.current_bytes() > 0);
    drop(g);
    assert_eq!(
        wait_for(&mut child, Duration::from_secs(5)).signal(),
        Some(libc::SIGKILL)
    );
}
