//! Per-instance network isolation through the real `fnbox serve`:
//! - 4 concurrent instances of `examples/telemetry` (its recorder extension listens on the
//!   fixed 127.0.0.1:8081 and :8082), each recorder receiving only its own instance's events;
//! - the start-up line naming the mode, and the forced fallback (`FNBOX_NETWORK=host`), where
//!   such a function runs one instance;
//! - after a SIGKILL of `fnbox serve`, the instances' namespaces survive with their processes
//!   until the next `fnbox serve` starts and cleans up (cgroup memory mode), then are gone.
//!
//! Fails, saying what to enable, where network namespaces cannot be created or (for the
//! restart check) memory limits are not in cgroup mode: CI runs as root on Linux with both.

// These tests drive real processes from plain threads (no tokio runtime where std time
// is used): waiting on them with std time and sleeps is synchronous on purpose.
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

use std::collections::{BTreeSet, HashSet};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use fnbox_engine::netns::{namespace_inodes, namespace_of, probe};
use fnbox_testkit::recorder::telemetry_example;
use fnbox_testkit::serve::{processes_in, Serve};
use fnbox_testkit::{http, process_alive, FixturePackage};
use serde_json::Value;

const FNBOX: &str = env!("CARGO_BIN_EXE_fnbox");

/// Fails the test, saying what to enable, where network namespaces cannot be created.
fn require_isolation() {
    if let Err(why) = probe() {
        panic!(
            "network namespaces unavailable ({why}): run the tests as root (CAP_SYS_ADMIN) on \
             Linux with unshare(CLONE_NEWNET) allowed"
        );
    }
}

fn functions(addr: SocketAddr, rt: &tokio::runtime::Runtime) -> Value {
    let (status, body) = rt
        .block_on(http::get(addr, "/functions"))
        .unwrap()
        .status_text();
    assert_eq!(status, 200, "{body}");
    serde_json::from_str(&body).unwrap()
}

fn instances(addr: SocketAddr, rt: &tokio::runtime::Runtime) -> u64 {
    let v = functions(addr, rt);
    let list = v
        .as_array()
        .cloned()
        .or_else(|| v["functions"].as_array().cloned());
    list.unwrap()[0]["instances"].as_u64().unwrap()
}

fn wait_for(what: &str, within: Duration, mut ok: impl FnMut() -> bool) {
    let end = Instant::now() + within;
    while !ok() {
        assert!(Instant::now() < end, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn serve_runs_4_telemetry_instances_each_recorder_gets_only_its_own_events() {
    require_isolation();
    let out = tempfile::tempdir().unwrap();
    let pkg = telemetry_example(
        FNBOX,
        out.path(),
        "max_instances: 4\nreserved_instances: 4\n",
    );
    let s = Serve::start(FNBOX, &[pkg.path().to_str().unwrap()]);
    let startup = s.startup.join("\n");
    assert!(
        startup.contains("network: isolated (one network namespace per instance"),
        "{startup}"
    );
    assert!(!startup.contains("ONE instance at a time"), "{startup}");
    let rt = tokio::runtime::Runtime::new().unwrap();
    assert_eq!(
        instances(s.addr, &rt),
        4,
        "4 instances, all recorders on 8081/8082"
    );

    // 24 requests, 8 at a time.
    let mut sent = HashSet::new();
    for _ in 0..3 {
        let answers = rt.block_on(async {
            let tasks: Vec<_> = (0..8)
                .map(|i| {
                    let addr = s.addr;
                    tokio::spawn(async move {
                        let body = format!("{{\"n\":{i}}}");
                        http::post(
                            addr,
                            "/v2/p/fgs/functions/default:telemetry-demo/invocations",
                            body,
                        )
                        .await
                        .map(|r| r.status_text())
                    })
                })
                .collect();
            let mut out = Vec::new();
            for t in tasks {
                out.push(t.await.unwrap().unwrap());
            }
            out
        });
        for (status, body) in answers {
            assert_eq!(status, 200, "{body}");
            let v: Value = serde_json::from_str(&body).unwrap();
            sent.insert(v["requestId"].as_str().unwrap().to_string());
        }
    }
    assert_eq!(sent.len(), 24);
    s.terminate(Duration::from_secs(20));

    // One file per recorder; each holds one pod's events only.
    let mut pods = HashSet::new();
    let mut started_by_file: Vec<BTreeSet<String>> = Vec::new();
    let mut invoked_total = BTreeSet::new();
    let files: Vec<_> = std::fs::read_dir(out.path())
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .collect();
    assert_eq!(files.len(), 4, "one recorder per instance: {files:?}");
    for file in &files {
        let text = std::fs::read_to_string(file).unwrap();
        let events: Vec<Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        let file_pods: HashSet<String> = events
            .iter()
            .filter_map(|e| e["metrics"]["podName"].as_str().map(str::to_string))
            .collect();
        assert_eq!(file_pods.len(), 1, "{}: {file_pods:?}", file.display());
        pods.extend(file_pods);
        let by_name = |name: &str| -> BTreeSet<String> {
            events
                .iter()
                .filter(|e| e["name"] == name)
                .map(|e| e["traceId"].as_str().unwrap().to_string())
                .collect()
        };
        let started = by_name("platform.start");
        let pushed = by_name("extension.invoke");
        assert_eq!(
            pushed,
            started,
            "{}: the invoke pushes and the platform events are of the same (own) requests",
            file.display()
        );
        invoked_total.extend(started.iter().cloned());
        started_by_file.push(started);
    }
    assert_eq!(pods.len(), 4, "four pods: {pods:?}");
    let total: usize = started_by_file.iter().map(BTreeSet::len).sum();
    assert_eq!(total, 24, "no request recorded twice");
    assert_eq!(
        invoked_total,
        sent.into_iter().collect::<BTreeSet<_>>(),
        "every request recorded by exactly one instance's recorder"
    );
}

#[test]
fn forced_host_fallback_runs_one_instance_and_says_why() {
    let out = tempfile::tempdir().unwrap();
    let pkg = telemetry_example(FNBOX, out.path(), "max_instances: 4\n");
    let s = Serve::start_with_env(
        FNBOX,
        &[pkg.path().to_str().unwrap()],
        &[("FNBOX_NETWORK", "host")],
    );
    let startup = s.startup.join("\n");
    assert!(
        startup.contains("network: host loopback (FNBOX_NETWORK=host); functions with extensions or HTTP servers run one instance at a time"),
        "{startup}"
    );
    assert!(
        startup.contains("it runs ONE instance at a time (max_instances 4 → 1)"),
        "{startup}"
    );
    let rt = tokio::runtime::Runtime::new().unwrap();
    assert_eq!(functions(s.addr, &rt)[0]["exclusive"], true);
    s.terminate(Duration::from_secs(20));
}

#[test]
fn namespaces_are_gone_after_shutdown_and_after_sigkill_and_restart() {
    require_isolation();
    let out = tempfile::tempdir().unwrap();
    let pkg = telemetry_example(
        FNBOX,
        out.path(),
        "max_instances: 2\nreserved_instances: 2\n",
    );

    // Orderly shutdown.
    let s = Serve::start(FNBOX, &[pkg.path().to_str().unwrap()]);
    let rt = tokio::runtime::Runtime::new().unwrap();
    assert_eq!(instances(s.addr, &rt), 2);
    let ns: HashSet<u64> = processes_in(pkg.path())
        .into_iter()
        .filter_map(namespace_of)
        .collect();
    assert_eq!(ns.len(), 2, "two instance namespaces");
    s.terminate(Duration::from_secs(20));
    wait_for(
        "namespaces to end after shutdown",
        Duration::from_secs(5),
        || {
            let now = namespace_inodes();
            ns.iter().all(|n| !now.contains(n))
        },
    );

    // SIGKILL: the instances' processes keep their namespaces alive …
    let s = Serve::start(FNBOX, &[pkg.path().to_str().unwrap()]);
    let memory_line = s.startup.join("\n");
    assert_eq!(instances(s.addr, &rt), 2);
    let pids = processes_in(pkg.path());
    let ns: HashSet<u64> = pids.iter().copied().filter_map(namespace_of).collect();
    assert_eq!(ns.len(), 2);
    let mut s = s;
    s.child.kill().unwrap();
    s.child.wait().unwrap();
    drop(s);
    let survivors: Vec<i32> = pids.iter().copied().filter(|p| process_alive(*p)).collect();
    eprintln!(
        "after SIGKILL: {} of {} instance processes survive, namespaces still present: {}",
        survivors.len(),
        pids.len(),
        ns.iter().filter(|n| namespace_inodes().contains(n)).count()
    );
    if !memory_line.contains("cgroup") {
        // Leave nothing running behind the failure.
        for p in survivors {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(p),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
        panic!(
            "the restart check needs cgroup memory mode, got: {memory_line}; run the tests as \
             root with a writable cgroup memory controller"
        );
    }
    // … until the next fnbox start cleans up the dead run's processes.
    let other = FixturePackage::bash(
        "func_name: other\n",
        "while next; do respond \"$REQUEST_ID\" 1; done",
    );
    let s = Serve::start(FNBOX, &[other.path().to_str().unwrap()]);
    wait_for(
        "the dead run's processes to be killed",
        Duration::from_secs(10),
        || pids.iter().all(|p| !process_alive(*p)),
    );
    wait_for(
        "the dead run's namespaces to end",
        Duration::from_secs(10),
        || {
            let now = namespace_inodes();
            ns.iter().all(|n| !now.contains(n))
        },
    );
    s.terminate(Duration::from_secs(20));
}
