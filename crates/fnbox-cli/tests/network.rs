//! Per-instance network isolation through the real `fnbox serve`:
//! - 4 concurrent instances of `examples/telemetry` (its recorder extension listens on the
//!   fixed 127.0.0.1:8081 and :8082), each recorder receiving only its own instance's events;
//! - the start-up line naming the mode, and the forced fallback (`FNBOX_NETWORK=host`), where
//!   such a function runs one instance;
//! - after a SIGKILL of `fnbox serve`, the instances' namespaces survive with their processes
//!   until the next `fnbox serve` starts and cleans up (cgroup memory mode), then are gone.
//!
//! Skipped (with a message) where network namespaces cannot be created.

use std::collections::{BTreeSet, HashSet};
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use fnbox_engine::netns::{namespace_inodes, namespace_of, probe};
use fnbox_testkit::{http_request, process_alive, FixturePackage};
use serde_json::Value;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap()
}

fn isolation_available() -> bool {
    match probe() {
        Ok(()) => true,
        Err(why) => {
            eprintln!("skipped: network namespaces unavailable here ({why})");
            false
        }
    }
}

/// `fnbox-telemetry-recorder`, built once (see tests/telemetry_examples.rs).
fn recorder_bin() -> PathBuf {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT
        .get_or_init(|| {
            let dir = Path::new(env!("CARGO_BIN_EXE_fnbox")).parent().unwrap();
            let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
            let mut cmd = Command::new(cargo);
            cmd.current_dir(repo()).args([
                "build",
                "-p",
                "fnbox-extension",
                "--bin",
                "fnbox-telemetry-recorder",
            ]);
            if dir.file_name().and_then(|n| n.to_str()) == Some("release") {
                cmd.arg("--release");
            }
            let out = cmd.output().expect("run cargo build");
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
            dir.join("fnbox-telemetry-recorder")
        })
        .clone()
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

/// A copy of `examples/telemetry` whose recorders each write `<out>/events-<pid>.jsonl`
/// (through a wrapper named by `FNBOX_EXTENSION_BIN`), with `extra` config lines.
fn telemetry_example(out: &Path, extra: &str) -> tempfile::TempDir {
    use std::os::unix::fs::PermissionsExt;
    let tmp = tempfile::tempdir().unwrap();
    copy_dir(&repo().join("examples/telemetry"), tmp.path());
    let wrapper = tmp.path().join("recorder.sh");
    std::fs::write(
        &wrapper,
        format!(
            "#!/bin/sh\nFNBOX_TELEMETRY_OUT=\"{}/events-$$.jsonl\" exec \"{}\" \"$@\"\n",
            out.display(),
            recorder_bin().display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&wrapper, std::fs::Permissions::from_mode(0o755)).unwrap();
    let yaml = tmp.path().join("function.yaml");
    let mut config = std::fs::read_to_string(&yaml).unwrap();
    config.push_str(&format!(
        "\n{extra}user_data:\n  FNBOX_EXTENSION_BIN: {}\n",
        Value::from(wrapper.to_str().unwrap())
    ));
    std::fs::write(&yaml, config).unwrap();
    tmp
}

struct Serve {
    _data: tempfile::TempDir,
    child: Child,
    addr: SocketAddr,
    startup: Vec<String>,
}

impl Serve {
    fn start(args: &[&str], env: &[(&str, &str)]) -> Serve {
        let data = tempfile::tempdir().unwrap();
        let mut child = Command::new(env!("CARGO_BIN_EXE_fnbox"))
            .arg("serve")
            .arg("--data-dir")
            .arg(data.path())
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
            let _ = std::io::Read::read_to_string(&mut BufReader::new(stderr), &mut s);
            s
        });
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut startup = Vec::new();
        let addr = loop {
            match rx.recv_timeout(Duration::from_secs(30)) {
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
                    let err = stderr.join().unwrap_or_default();
                    panic!("fnbox serve did not come up; stdout: {startup:?}; stderr: {err}");
                }
            }
        };
        Serve {
            _data: data,
            child,
            addr,
            startup,
        }
    }

    fn stop(mut self) {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(self.child.id() as i32),
            nix::sys::signal::Signal::SIGTERM,
        );
        let end = Instant::now() + Duration::from_secs(20);
        while self.child.try_wait().unwrap().is_none() {
            assert!(Instant::now() < end, "fnbox serve did not stop");
            std::thread::sleep(Duration::from_millis(20));
        }
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

fn functions(addr: SocketAddr, rt: &tokio::runtime::Runtime) -> Value {
    let (status, body) = rt
        .block_on(http_request(addr, "GET", "/functions", &[], ""))
        .unwrap();
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

/// Pids of live processes whose working directory is `dir`.
fn processes_in(dir: &Path) -> Vec<i32> {
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

#[test]
fn serve_runs_4_telemetry_instances_each_recorder_gets_only_its_own_events() {
    if !isolation_available() {
        return;
    }
    let out = tempfile::tempdir().unwrap();
    let pkg = telemetry_example(out.path(), "max_instances: 4\nreserved_instances: 4\n");
    let s = Serve::start(&[pkg.path().to_str().unwrap()], &[]);
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
                        http_request(
                            addr,
                            "POST",
                            "/v2/p/fgs/functions/default:telemetry-demo/invocations",
                            &[],
                            &body,
                        )
                        .await
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
    s.stop();

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
    let pkg = telemetry_example(out.path(), "max_instances: 4\n");
    let s = Serve::start(
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
    s.stop();
}

#[test]
fn namespaces_are_gone_after_shutdown_and_after_sigkill_and_restart() {
    if !isolation_available() {
        return;
    }
    let out = tempfile::tempdir().unwrap();
    let pkg = telemetry_example(out.path(), "max_instances: 2\nreserved_instances: 2\n");

    // Orderly shutdown.
    let s = Serve::start(&[pkg.path().to_str().unwrap()], &[]);
    let rt = tokio::runtime::Runtime::new().unwrap();
    assert_eq!(instances(s.addr, &rt), 2);
    let ns: HashSet<u64> = processes_in(pkg.path())
        .into_iter()
        .filter_map(namespace_of)
        .collect();
    assert_eq!(ns.len(), 2, "two instance namespaces");
    s.stop();
    wait_for(
        "namespaces to end after shutdown",
        Duration::from_secs(5),
        || {
            let now = namespace_inodes();
            ns.iter().all(|n| !now.contains(n))
        },
    );

    // SIGKILL: the instances' processes keep their namespaces alive …
    let s = Serve::start(&[pkg.path().to_str().unwrap()], &[]);
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
        eprintln!("skipped the restart check: memory mode is not cgroup ({memory_line})");
        for p in survivors {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(p),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
        return;
    }
    // … until the next fnbox start cleans up the dead run's processes.
    let other = FixturePackage::bash(
        "func_name: other\n",
        "while next; do respond \"$REQUEST_ID\" 1; done",
    );
    let s = Serve::start(&[other.path().to_str().unwrap()], &[]);
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
    s.stop();
}
