//! SIGKILL and restart: every accepted invocation completes exactly once as recorded done.
//!
//! Runs `fnbox-async-crashtest` (src/bin) on one data dir four times: the first three runs are
//! killed with SIGKILL while invocations are queued and running (the second one while it is
//! still accepting new ones), the fourth runs until the queue is empty. Then it checks, from the
//! helper's log and from the database:
//! - none lost: every accepted id (and every id committed without its `accepted` line, the
//!   "202 lost in the kill" case) is `succeeded`;
//! - none run after it was recorded done: no `done` line of an id is later than the end of its
//!   successful attempt in the database;
//! - re-runs only for interrupted attempts: an id ran more than once only if the database holds
//!   an interrupted attempt for each extra run, and per kill at most the concurrency (2
//!   functions × 4) ran again.

// This test drives the crash helper process synchronously: std time, no tokio runtime.
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fnbox_async::{AsyncState, AsyncStore, AttemptOutcome, ListFilter};

const BIN: &str = env!("CARGO_BIN_EXE_fnbox-async-crashtest");
/// In-flight invocations across both functions of the helper (2 × its CONCURRENCY).
const MAX_IN_FLIGHT: usize = 8;

#[derive(Debug, Clone)]
struct Line {
    kind: String,
    id: String,
    run: u32,
    ms: i64,
}

fn read_log(path: &Path) -> Vec<Line> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    text.lines()
        .filter_map(|l| {
            let mut p = l.split(' ');
            Some(Line {
                kind: p.next()?.to_string(),
                id: p.next()?.to_string(),
                run: p.next()?.parse().ok()?,
                ms: p.next()?.parse().ok()?,
            })
        })
        .collect()
}

fn spawn(data: &Path, log: &Path, run: u32, count: u32, prefix: &str) -> Child {
    Command::new(BIN)
        .arg(data)
        .arg(log)
        .arg(run.to_string())
        .arg(count.to_string())
        .arg(prefix)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn the crash-test helper")
}

/// Waits until `ready(log)` holds, then SIGKILLs the child. Returns whether it was killed
/// (false: it finished all work first, which only the last runs may do).
fn kill_when(child: &mut Child, log: &Path, ready: impl Fn(&[Line]) -> bool) -> bool {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            assert!(status.success(), "helper failed: {status}");
            return false;
        }
        if ready(&read_log(log)) {
            child.kill().expect("SIGKILL"); // std sends SIGKILL on Unix
            let status = child.wait().unwrap();
            assert_eq!(
                std::os::unix::process::ExitStatusExt::signal(&status),
                Some(9),
                "killed by SIGKILL"
            );
            return true;
        }
        assert!(Instant::now() < deadline, "helper made no progress");
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn count(lines: &[Line], kind: &str) -> usize {
    lines.iter().filter(|l| l.kind == kind).count()
}

fn distinct_done(lines: &[Line]) -> usize {
    lines
        .iter()
        .filter(|l| l.kind == "done")
        .map(|l| &l.id)
        .collect::<BTreeSet<_>>()
        .len()
}

#[test]
fn sigkill_and_restart_lose_nothing_and_never_rerun_a_recorded_invocation() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let log = tmp.path().join("log");
    let t0 = Instant::now();

    // Run 1: accept 120, killed once 30 have finished (with 8 in flight).
    let mut c = spawn(&data, &log, 1, 120, "a");
    assert!(kill_when(&mut c, &log, |l| count(l, "accepted") == 120
        && distinct_done(l) >= 30));
    // Run 2: accepts 60 more while working; killed in the middle of accepting.
    let mut c = spawn(&data, &log, 2, 60, "b");
    let killed2 = kill_when(&mut c, &log, |l| {
        l.iter()
            .filter(|x| x.kind == "accepted" && x.id.starts_with("b-"))
            .count()
            >= 20
    });
    // Run 3: killed at 100 finished.
    let mut c = spawn(&data, &log, 3, 0, "-");
    let killed3 = kill_when(&mut c, &log, |l| distinct_done(l) >= 100);
    // Run 4: to the end.
    let mut c = spawn(&data, &log, 4, 0, "-");
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(s) = c.try_wait().unwrap() {
            break s;
        }
        assert!(Instant::now() < deadline, "last run did not finish");
        std::thread::sleep(Duration::from_millis(10));
    };
    assert!(status.success(), "last run: {status}");
    let elapsed = t0.elapsed();

    let lines = read_log(&log);
    let accepted: BTreeSet<String> = lines
        .iter()
        .filter(|l| l.kind == "accepted")
        .map(|l| l.id.clone())
        .collect();
    assert!(
        accepted.len() >= 120,
        "at least 120 accepted: {}",
        accepted.len()
    );
    let mut done: BTreeMap<String, Vec<&Line>> = BTreeMap::new();
    for l in lines.iter().filter(|l| l.kind == "done") {
        done.entry(l.id.clone()).or_default().push(l);
    }

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let store = AsyncStore::open(&data).expect("reopen after the runs");
    let all = rt
        .block_on(store.list(ListFilter {
            limit: 500,
            ..Default::default()
        }))
        .unwrap();
    assert!(all.count < 500);
    let in_db: BTreeSet<String> = all.items.iter().map(|s| s.request_id.clone()).collect();

    // None lost.
    for id in &accepted {
        assert!(in_db.contains(id), "accepted {id} is not in the database");
    }
    let unacknowledged: Vec<_> = in_db.difference(&accepted).collect();
    assert!(
        unacknowledged.len() <= 1,
        "only an enqueue cut by a kill can be committed without its 202: {unacknowledged:?}"
    );

    let mut reruns_per_kill: HashMap<u32, usize> = HashMap::new();
    let mut interrupted_total = 0;
    for id in &in_db {
        let s = rt.block_on(store.status(id)).unwrap().unwrap();
        assert_eq!(s.state, AsyncState::Succeeded, "{id}: {s:?}");
        let last = s.history.last().expect("history");
        assert_eq!(last.outcome, AttemptOutcome::Success, "{id}");
        let interrupted = s
            .history
            .iter()
            .filter(|a| a.outcome == AttemptOutcome::Interrupted)
            .count();
        assert_eq!(
            interrupted + 1,
            s.history.len(),
            "{id}: only interruptions before success"
        );
        assert_eq!(s.interrupts as usize, interrupted);
        assert_eq!(s.attempts as usize, s.history.len());
        interrupted_total += interrupted;

        let runs = done.get(id).cloned().unwrap_or_default();
        assert!(!runs.is_empty(), "{id} succeeded without running");
        // Every extra run is an attempt the database recorded as interrupted.
        assert!(
            runs.len() <= s.attempts as usize,
            "{id} ran {} times but only {} attempts are recorded",
            runs.len(),
            s.attempts
        );
        // Never run after it was recorded done.
        for r in &runs {
            assert!(
                r.ms <= last.ended_at_ms,
                "{id} ran at {} (run {}), after it was recorded done at {}",
                r.ms,
                r.run,
                last.ended_at_ms
            );
        }
        // At most once per run; extra runs are charged to the kill that interrupted them.
        let mut per_run: BTreeMap<u32, usize> = BTreeMap::new();
        for r in &runs {
            *per_run.entry(r.run).or_default() += 1;
        }
        assert!(
            per_run.values().all(|&n| n == 1),
            "{id} ran twice in one run"
        );
        let last_run = *per_run.keys().last().unwrap();
        for &run in per_run.keys().filter(|&&r| r != last_run) {
            *reruns_per_kill.entry(run).or_default() += 1;
        }
    }
    for (run, n) in &reruns_per_kill {
        assert!(
            *n <= MAX_IN_FLIGHT,
            "{n} invocations finished in killed run {run} ran again (at most {MAX_IN_FLIGHT} in flight)"
        );
    }
    assert!(
        interrupted_total >= 1,
        "the kills must have interrupted attempts in flight"
    );
    let counts = rt.block_on(store.counts()).unwrap();
    assert_eq!((counts.queued, counts.running, counts.failed), (0, 0, 0));
    eprintln!(
        "crash test: {} invocations ({} accepted), kills at runs 1{}{}, {} interrupted attempts, \
         re-runs per kill {:?}, {:.1}s",
        in_db.len(),
        accepted.len(),
        if killed2 { ",2" } else { "" },
        if killed3 { ",3" } else { "" },
        interrupted_total,
        reruns_per_kill,
        elapsed.as_secs_f64()
    );
}
