//! The extension's processes, from `/proc`: CPU time and peak RSS. An extension process is one
//! whose environment carries the scenario's `EXTTEST_RUN=<id>` (a `user_data` entry every
//! process of the instance gets) and whose process group is led by the harness's extension
//! wrapper; the runtime's group is left out. The instance's memory group holds the runtime too,
//! so per-process figures are what isolate the extension.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio_util::sync::CancellationToken;

/// How often `/proc` is read.
const SAMPLE_EVERY: Duration = Duration::from_millis(100);

/// What the extension's processes used.
#[derive(Clone, Copy, Debug, Default, serde::Serialize)]
pub struct ProcFigures {
    /// User + system CPU time, summed over its processes (last sample of each).
    pub cpu_ms: u64,
    /// Sum of its processes' peak resident sets (`VmHWM`), KiB.
    pub peak_rss_kib: u64,
    /// Processes seen.
    pub processes: usize,
}

#[derive(Default)]
struct State {
    /// pid → is it one of the extension's (decided once per pid).
    classified: HashMap<i32, bool>,
    /// pid → (cpu ticks, VmHWM KiB).
    usage: HashMap<i32, (u64, u64)>,
}

/// A running sampler; [`Sampler::stop`] returns the figures.
pub struct Sampler {
    state: Arc<Mutex<State>>,
    marker: String,
    stop: CancellationToken,
    task: tokio::task::JoinHandle<()>,
}

impl Sampler {
    /// Samples every [`SAMPLE_EVERY`] until stopped.
    pub fn start(run_id: &str) -> Sampler {
        let state = Arc::new(Mutex::new(State::default()));
        let marker = format!("EXTTEST_RUN={run_id}");
        let stop = CancellationToken::new();
        let task = tokio::spawn({
            let (state, marker, stop) = (state.clone(), marker.clone(), stop.clone());
            async move {
                let mut tick = tokio::time::interval(SAMPLE_EVERY);
                loop {
                    tokio::select! {
                        _ = stop.cancelled() => return,
                        _ = tick.tick() => {}
                    }
                    let (state, marker) = (state.clone(), marker.clone());
                    // Reading /proc is blocking file I/O.
                    let _ = tokio::task::spawn_blocking(move || sample(&state, &marker)).await;
                }
            }
        });
        Sampler {
            state,
            marker,
            stop,
            task,
        }
    }

    /// One last sample, then the figures.
    pub async fn stop(self) -> ProcFigures {
        self.stop.cancel();
        let _ = self.task.await;
        let (state, marker) = (self.state.clone(), self.marker.clone());
        let _ = tokio::task::spawn_blocking(move || sample(&state, &marker)).await;
        let state = self.state.lock().expect("sampler lock");
        let ticks = clock_ticks();
        let (cpu, rss) = state
            .usage
            .values()
            .fold((0u64, 0u64), |(c, r), (tc, hwm)| (c + tc, r + hwm));
        ProcFigures {
            cpu_ms: cpu * 1000 / ticks,
            peak_rss_kib: rss,
            processes: state.usage.len(),
        }
    }
}

fn clock_ticks() -> u64 {
    // SAFETY: sysconf only reads a system constant; no pointers are involved.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 {
        t as u64
    } else {
        100
    }
}

fn sample(state: &Mutex<State>, marker: &str) {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return;
    };
    let pids: Vec<i32> = dir
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .collect();
    let mut state = state.lock().expect("sampler lock");
    for pid in pids {
        let mine = match state.classified.get(&pid) {
            Some(m) => *m,
            None => {
                let Some(m) = classify(pid, marker) else {
                    continue;
                };
                state.classified.insert(pid, m);
                m
            }
        };
        if !mine {
            continue;
        }
        if let Some((ticks, hwm)) = usage(pid) {
            let entry = state.usage.entry(pid).or_default();
            entry.0 = entry.0.max(ticks);
            entry.1 = entry.1.max(hwm);
        }
    }
}

/// `None` when the process is gone (or unreadable) already.
fn classify(pid: i32, marker: &str) -> Option<bool> {
    let environ = std::fs::read(format!("/proc/{pid}/environ")).ok()?;
    if !environ.split(|b| *b == 0).any(|kv| kv == marker.as_bytes()) {
        return Some(false);
    }
    let pgid = stat_fields(pid)?.get(2)?.parse::<i32>().ok()?;
    let leader = std::fs::read(format!("/proc/{pgid}/cmdline")).ok()?;
    Some(
        leader
            .split(|b| *b == 0)
            .any(|arg| arg == b"exttest-wrapper"),
    )
}

/// Fields of `/proc/<pid>/stat` after the command name: index 0 is the state (field 3).
fn stat_fields(pid: i32) -> Option<Vec<String>> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &stat[stat.rfind(')')? + 1..];
    Some(rest.split_whitespace().map(str::to_string).collect())
}

/// (utime + stime ticks, VmHWM KiB).
fn usage(pid: i32) -> Option<(u64, u64)> {
    let f = stat_fields(pid)?;
    // utime and stime are fields 14 and 15: indexes 11 and 12 here.
    let ticks = f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let hwm = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0);
    Some((ticks, hwm))
}
