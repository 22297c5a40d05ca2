//! The restore phase, fork mode (issue 18): a `snapshot: true` function with the built-in
//! Python runtime, FunctionGraph dialect. The first instance's init builds the template (the
//! initializer runs there, once); later instances are forks of it that run the restore hook.
//! Needs `python3` on PATH (`.ci/run` installs it).

use std::sync::Arc;
use std::time::Duration;

use fnbox_engine::contain::{Containment, Mode};
use fnbox_engine::snapshot::{RestoreMode, RESTORE_FAILED, RESTORE_TIMEOUT};
use fnbox_engine::telemetry::{Event, Phase, Status};
use fnbox_engine::{
    Engine, EngineConfig, FaultKind, Function, Instance, InvokeRequest, InvokeResult, NetworkMode,
    Observation, Pool, PoolConfig,
};
use fnbox_limits::MemoryController;
use fnbox_testkit::FixturePackage;
use serde_json::Value;

const CODE: &str = r#"
import os, random, time

COUNTER = os.environ["COUNTER_FILE"]
BEFORE = None
CONNECTED_PID = None

def init(context):
    global BEFORE, CONNECTED_PID
    with open(COUNTER, "a") as f:
        f.write("init\n")
    BEFORE = random.random()
    CONNECTED_PID = os.getpid()   # stands for a connection opened during init

def reseed(context):
    global CONNECTED_PID
    random.seed()                 # a restored instance must not share the snapshot's PRNG state
    CONNECTED_PID = os.getpid()   # reconnect

def failing_hook(context):
    raise RuntimeError("cannot reconnect to the database")

def slow_hook(context):
    time.sleep(30)

def handler(event, context):
    if event.get("sleep"):
        time.sleep(event["sleep"])
    if event.get("allocate_mb"):
        hog = bytearray(event["allocate_mb"] * 1024 * 1024)
        for i in range(0, len(hog), 4096):
            hog[i] = 1
    with open(COUNTER) as f:
        inits = f.read().count("init")
    return {"inits": inits, "before": BEFORE, "next": random.random(), "pid": os.getpid(),
            "connected_pid": CONNECTED_PID, "api": os.environ["RUNTIME_API_ADDR"],
            "user": os.environ.get("MARK")}
"#;

struct Fixture {
    function: Function,
    _pkg: FixturePackage,
    _counter: tempfile::TempDir,
}

fn fixture(extra: &str) -> Fixture {
    fixture_in(extra, NetworkMode::Host, |_| {})
}

fn fixture_in(extra: &str, network: NetworkMode, files: impl FnOnce(&FixturePackage)) -> Fixture {
    let counter = tempfile::tempdir().unwrap();
    let file = counter.path().join("inits");
    let pkg = FixturePackage::empty(&format!(
        "func_name: snap\nruntime: Python3.9\nhandler: index.handler\n\
         initializer_handler: index.init\nsnapshot: true\nmemory_size: 128\n\
         user_data:\n  COUNTER_FILE: \"{}\"\n  MARK: \"restored\"\n{extra}",
        file.display()
    ));
    pkg.write("index.py", CODE);
    files(&pkg);
    let package = Arc::new(fnbox_package::load(pkg.path()).expect("fixture package loads"));
    let mut config = EngineConfig::new(MemoryController::detect());
    config.host_path = std::env::var("PATH").ok();
    config.network = network;
    let function = Function::new(
        Engine::new(config),
        package,
        Arc::new(fnbox_fg::FunctionGraph),
    )
    .expect("python3 on PATH (apt-get install python3)");
    assert_eq!(function.restore_mode(), Some(RestoreMode::Fork));
    Fixture {
        function,
        _pkg: pkg,
        _counter: counter,
    }
}

async fn call(inst: &Instance, event: &str) -> InvokeResult {
    inst.invoke(InvokeRequest::sync(event.to_string()))
        .await
        .expect("instance ready")
        .result
}

fn ok_json(result: &InvokeResult) -> Value {
    match result {
        InvokeResult::Ok(b) => serde_json::from_slice(b).expect("JSON result"),
        other => panic!("expected a response, got {other:?}"),
    }
}

/// Phase names of the platform events seen, per instance, in order.
fn phases(events: &[(String, Arc<Event>)], pod: &str) -> Vec<String> {
    events
        .iter()
        .filter(|(p, _)| p == pod)
        .filter_map(|(_, e)| match &**e {
            Event::Start { phase, .. } => Some(format!("{phase:?}Start")),
            Event::RuntimeDone { phase, status, .. } => {
                Some(format!("{phase:?}RuntimeDone:{}", status.as_str()))
            }
            Event::Report { phase, .. } => Some(format!("{phase:?}Report")),
            _ => None,
        })
        .collect()
}

#[tokio::test]
async fn one_init_then_restores_share_the_snapshot() {
    let f = fixture("");
    let mut observed = f.function.engine().observe();
    let a = f
        .function
        .start_instance(Some("req-a".into()))
        .await
        .expect("init");
    let b = f
        .function
        .start_instance(Some("req-b".into()))
        .await
        .expect("restore b");
    let c = f
        .function
        .start_instance(Some("req-c".into()))
        .await
        .expect("restore c");
    let (ra, rb, rc) = (
        ok_json(&call(&a, "{}").await),
        ok_json(&call(&b, "{}").await),
        ok_json(&call(&c, "{}").await),
    );
    assert_eq!(
        rc["inits"], 1,
        "the initializer ran once for three instances"
    );
    assert_eq!(
        ra["before"], rb["before"],
        "the pre-snapshot state is inherited"
    );
    assert_eq!(
        rb["next"], rc["next"],
        "without a reseeding hook every restored instance continues the same PRNG state"
    );
    assert_ne!(rb["pid"], rc["pid"]);
    assert_ne!(
        rb["api"], rc["api"],
        "each fork talks to its own instance's API"
    );
    assert_eq!(rb["user"], "restored", "the instance's environment");
    assert_eq!(b.runtime_pid() as i64, rb["pid"].as_i64().unwrap());

    let mut events = Vec::new();
    while let Ok(o) = observed.try_recv() {
        if let Observation::Telemetry(e) = &o.what {
            events.push((o.pod_name.to_string(), e.clone()));
        }
    }
    let want_init = [
        "InitStart",
        "InitRuntimeDone:success",
        "InitReport",
        "InvokeStart",
        "InvokeRuntimeDone:success",
        "InvokeReport",
    ];
    let want_restore = [
        "RestoreStart",
        "RestoreRuntimeDone:success",
        "RestoreReport",
        "InvokeStart",
        "InvokeRuntimeDone:success",
        "InvokeReport",
    ];
    assert_eq!(phases(&events, a.pod_name()), want_init);
    assert_eq!(phases(&events, b.pod_name()), want_restore);
    assert_eq!(phases(&events, c.pod_name()), want_restore);
    // The restore's traceId is the request that caused it; its report has real figures.
    let report = events
        .iter()
        .find_map(|(p, e)| match &**e {
            Event::Report {
                phase: Phase::Restore,
                trace_id,
                metrics,
                ..
            } if p == b.pod_name() => Some((trace_id.clone(), *metrics)),
            _ => None,
        })
        .expect("restoreReport of b");
    assert_eq!(report.0, "req-b");
    assert!(
        report.1.duration_ms > 0.0 && report.1.memory_size_mb == 128,
        "{report:?}"
    );
    let template = f
        .function
        .snapshot()
        .and_then(|s| s.template_pid())
        .expect("template");
    let (pa, pb) = (a.runtime_pid(), b.runtime_pid());
    for i in [a, b, c] {
        i.shutdown().await;
    }
    assert!(
        !fnbox_testkit::process_alive(pb),
        "a restored runtime ends with its instance"
    );
    assert!(
        fnbox_testkit::process_alive(template),
        "the template outlives its instances"
    );
    drop(f);
    assert!(
        fnbox_testkit::wait_until(Duration::from_secs(2), || !fnbox_testkit::process_alive(
            template
        ))
        .await,
        "the template ends with its function"
    );
    assert!(!fnbox_testkit::process_alive(pa));
}

#[tokio::test]
async fn a_reseeding_hook_gives_each_restore_its_own_randomness() {
    let f = fixture("restore_hook_handler: index.reseed\n");
    let a = f.function.start_instance(None).await.expect("init");
    let b = f.function.start_instance(None).await.expect("restore b");
    let c = f.function.start_instance(None).await.expect("restore c");
    let (rb, rc) = (
        ok_json(&call(&b, "{}").await),
        ok_json(&call(&c, "{}").await),
    );
    assert_eq!(rb["before"], rc["before"]);
    assert_ne!(rb["next"], rc["next"], "the hook reseeded");
    assert_eq!(rb["connected_pid"], rb["pid"], "the hook reconnected");
    let ra = ok_json(&call(&a, "{}").await);
    assert_ne!(
        ra["connected_pid"], ra["pid"],
        "the first instance keeps the template's"
    );
    for i in [a, b, c] {
        i.shutdown().await;
    }
}

#[tokio::test]
async fn failing_and_slow_hooks_fail_the_restore() {
    let f = fixture("restore_hook_handler: index.failing_hook\n");
    let a = f
        .function
        .start_instance(None)
        .await
        .expect("init builds the template");
    let err = f
        .function
        .start_instance(None)
        .await
        .err()
        .expect("restore fails");
    assert_eq!(err.error_type, RESTORE_FAILED, "{err}");
    assert!(err.restore && err.attempts == 1, "{err:?}");
    assert!(
        err.message
            .starts_with("function restore failed: RuntimeError: cannot reconnect"),
        "{err}"
    );
    a.shutdown().await;

    let f = fixture("restore_hook_handler: index.slow_hook\nrestore_hook_timeout: 1\n");
    let a = f.function.start_instance(None).await.expect("init");
    let started = tokio::time::Instant::now();
    let err = f
        .function
        .start_instance(None)
        .await
        .err()
        .expect("restore times out");
    assert_eq!(err.error_type, RESTORE_TIMEOUT, "{err}");
    assert_eq!(err.status, Status::Timeout);
    assert_eq!(err.message, "runtime restore timed out after 1s");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "not retried: {:?}",
        started.elapsed()
    );
    a.shutdown().await;
}

#[tokio::test]
async fn memory_is_limited_and_measured_per_restored_instance() {
    let f = fixture("");
    let a = f.function.start_instance(None).await.expect("init");
    let b = f.function.start_instance(None).await.expect("restore");
    let out = b
        .invoke(InvokeRequest::sync(r#"{"allocate_mb": 40}"#))
        .await
        .unwrap();
    assert!(
        matches!(out.result, InvokeResult::Ok(_)),
        "{:?}",
        out.result
    );
    let used = out.metrics.memory_used_mb;
    assert!(
        (40.0..128.0).contains(&used),
        "the restored instance's own group measured its 40 MB: {used} MB"
    );
    let out = b
        .invoke(InvokeRequest::sync(r#"{"allocate_mb": 300}"#))
        .await
        .unwrap();
    match &out.result {
        InvokeResult::Fault(f) => assert_eq!(f.kind, FaultKind::OutOfMemory, "{f:?}"),
        other => panic!("300 MB in a 128 MB instance must be killed, got {other:?}"),
    }
    // The other instances are unaffected.
    assert!(matches!(call(&a, "{}").await, InvokeResult::Ok(_)));
    let c = f
        .function
        .start_instance(None)
        .await
        .expect("restore after an OOM");
    assert!(matches!(call(&c, "{}").await, InvokeResult::Ok(_)));
    for i in [a, c] {
        i.shutdown().await;
    }
}

/// A FunctionGraph telemetry extension: registers (invoke pushes on 8081), subscribes to the
/// `platform` stream on 127.0.0.1:8082 inside its instance's network namespace, and appends
/// every event it receives to `$RUNTIME_CODE_ROOT/telemetry-<pid>.jsonl`.
const RECORDER_PY: &str = r#"
import json, os, threading, urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

OUT = os.path.join(os.environ["RUNTIME_CODE_ROOT"], "telemetry-%d.jsonl" % os.getpid())
lock = threading.Lock()

class Handler(BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if self.server.server_address[1] == 8082:
            events = json.loads(body)
            with lock, open(OUT, "a") as f:
                for e in events if isinstance(events, list) else [events]:
                    f.write(json.dumps(e) + "\n")
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass

for port in (8081, 8082):
    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
api = "http://%s" % os.environ["EXTENSION_API_ADDR"]
urllib.request.urlopen(urllib.request.Request(api + "/extension/register", data=b"", method="POST",
    headers={"FunctionGraph-Extension-Name": "extensionRec.sh",
             "FunctionGraph-Extension-Address": "127.0.0.1:8081"})).read()
sub = {"subscriber": {"protocol": "POST", "uri": "http://127.0.0.1:8082/"}, "types": ["platform"]}
urllib.request.urlopen(urllib.request.Request(api + "/telemetry", data=json.dumps(sub).encode(),
    method="POST", headers={"Content-Type": "application/json"})).read()
threading.Event().wait()
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_extension_sees_one_init_and_two_restores_for_a_pool_growing_to_three() {
    if let Err(why) = fnbox_engine::netns::probe() {
        panic!("network namespaces unavailable ({why}): run the tests as root (CAP_SYS_ADMIN)");
    }
    let f = fixture_in("max_instances: 3\n", NetworkMode::Isolated, |pkg| {
        pkg.write("rec.py", RECORDER_PY);
        pkg.write(
            "extension/extensionRec.sh",
            "exec python3 -u \"$RUNTIME_CODE_ROOT/rec.py\"\n",
        );
    });
    let root = f._pkg.path().to_path_buf();
    let pool = Pool::new(
        Arc::new(f.function),
        PoolConfig {
            max_instances: 3,
            reserved_instances: 0,
            idle_timeout: Duration::from_secs(60),
            acquire_timeout: Duration::from_secs(30),
            reserved_check: Duration::from_secs(5),
        },
    );
    let calls: Vec<_> = (0..3)
        .map(|_| {
            let pool = pool.clone();
            tokio::spawn(async move {
                let out = pool
                    .invoke(InvokeRequest::sync(r#"{"sleep": 1.5}"#))
                    .await
                    .expect("invoke");
                (out.request_id, ok_json(&out.result))
            })
        })
        .collect();
    let mut results = Vec::new();
    for c in calls {
        results.push(c.await.unwrap());
    }
    let pids: std::collections::HashSet<_> = results.iter().map(|r| r.1["pid"].clone()).collect();
    assert_eq!(pids.len(), 3, "three instances: {results:?}");
    assert!(results.iter().all(|r| r.1["inits"] == 1), "{results:?}");
    pool.shutdown().await;

    // Each instance's extension saw its own start phase, then its invocation.
    let mut sequences = Vec::new();
    for entry in std::fs::read_dir(&root).unwrap() {
        let path = entry.unwrap().path();
        if !path
            .file_name()
            .unwrap()
            .to_string_lossy()
            .starts_with("telemetry-")
        {
            continue;
        }
        let events: Vec<Value> = std::fs::read_to_string(&path)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        sequences.push(events);
    }
    assert_eq!(sequences.len(), 3, "one recorder per instance");
    let mut inits = 0;
    let mut restores = 0;
    for events in &sequences {
        let names: Vec<&str> = events.iter().map(|e| e["name"].as_str().unwrap()).collect();
        let first = names[0];
        let (kind, want): (&str, &[&str]) = if first == "platform.initStart" {
            inits += 1;
            (
                "init",
                &[
                    "platform.initStart",
                    "platform.initRuntimeDone",
                    "platform.initReport",
                ],
            )
        } else {
            restores += 1;
            (
                "restore",
                &[
                    "platform.restoreStart",
                    "platform.restoreRuntimeDone",
                    "platform.restoreReport",
                ],
            )
        };
        assert_eq!(&names[..3], want, "{kind}: {names:?}");
        assert_eq!(names[3], "platform.start", "{names:?}");
        assert!(
            names[4].eq_ignore_ascii_case("platform.runtimeDone"),
            "{names:?}"
        );
        assert_eq!(names[5], "platform.report", "{names:?}");
        // The start phase's traceId is the request that caused it, the invocation's own id.
        let caused_by = events[0]["traceId"].as_str().unwrap();
        assert_eq!(events[3]["traceId"], caused_by, "{events:?}");
        assert!(results.iter().any(|r| r.0 == caused_by));
        let metrics = &events[2]["metrics"];
        assert!(metrics["durationMs"].as_f64().unwrap() > 0.0, "{metrics}");
        assert_eq!(metrics["memorySize"], 128);
    }
    assert_eq!((inits, restores), (1, 2));
}

/// What a contained function checks, answered as one JSON object.
const CONTAINED_CODE: &str = r#"
import os, resource

INIT_UID = None

def init(context):
    global INIT_UID
    INIT_UID = os.getuid()

def attempt(f):
    try:
        f()
        return "ok"
    except OSError as e:
        return "denied: %s" % e.strerror

def handler(event, context):
    marker = "/tmp/" + event["marker"]
    def write_tmp():
        with open(marker, "w") as f:
            f.write("restored")
    def read_shadow():
        with open("/etc/shadow") as f:
            f.read()
    def write_code():
        open(os.path.join(os.environ["RUNTIME_CODE_ROOT"], "new"), "w").close()
    def write_cwd():
        open(os.path.join(os.getcwd(), "new"), "w").close()
    with open("/proc/self/status") as f:
        status = dict(l.split(":", 1) for l in f if ":" in l)
    return {
        "uid": os.getuid(), "gid": os.getgid(), "groups": os.getgroups(), "init_uid": INIT_UID,
        "shadow": attempt(read_shadow),
        "tmp_write": attempt(write_tmp), "tmp_seen": os.path.exists(marker),
        "code_root": os.environ["RUNTIME_CODE_ROOT"],
        "code_listing": sorted(os.listdir(os.environ["RUNTIME_CODE_ROOT"])),
        "code_write": attempt(write_code), "cwd_write": attempt(write_cwd),
        "cap_eff": status["CapEff"].strip(), "cap_bnd": status["CapBnd"].strip(),
        "no_new_privs": status["NoNewPrivs"].strip(),
        "nofile": list(resource.getrlimit(resource.RLIMIT_NOFILE)),
        "user": os.environ.get("MARK"),
    }
"#;

#[tokio::test]
async fn restored_instances_are_contained_like_spawned_ones() {
    assert!(
        std::os::unix::fs::MetadataExt::uid(&std::fs::metadata("/proc/self").unwrap()) == 0,
        "containment needs root (uid changes, mount namespaces): run the tests as root, as CI does"
    );
    let pkg = FixturePackage::empty(
        "func_name: snapcontain\nruntime: Python3.9\nhandler: index.handler\n\
         initializer_handler: index.init\nsnapshot: true\nmemory_size: 128\n\
         user_data:\n  MARK: \"contained\"\n",
    );
    pkg.write("index.py", CONTAINED_CODE);
    let package = Arc::new(fnbox_package::load(pkg.path()).expect("fixture package loads"));
    let mut config = EngineConfig::new(MemoryController::detect());
    let (containment, line) = Containment::detect(None, &config.memory);
    assert_eq!(containment.mode(), &Mode::On, "{line}");
    config.containment = containment;
    // As `fnbox` does when contained: only the PATH the function's uid can use (not root's
    // ~/.pyenv, whose standard library the instance's view does not show).
    config.host_path = std::env::var("PATH")
        .ok()
        .map(|p| fnbox_engine::contain::reachable_path(&p));
    let function = Function::new(
        Engine::new(config),
        package,
        Arc::new(fnbox_fg::FunctionGraph),
    )
    .expect("python3 on PATH (apt-get install python3)");
    assert_eq!(function.restore_mode(), Some(RestoreMode::Fork));
    let a = function.start_instance(None).await.expect("init");
    let b = function.start_instance(None).await.expect("restore");
    let own_ns = std::fs::read_link("/proc/self/ns/mnt").unwrap();
    let ns_of = |pid: i32| std::fs::read_link(format!("/proc/{pid}/ns/mnt")).unwrap();
    assert_ne!(ns_of(a.runtime_pid()), own_ns, "the first fork's own view");
    assert_ne!(
        ns_of(b.runtime_pid()),
        own_ns,
        "the restored fork's own view"
    );
    assert_ne!(
        ns_of(a.runtime_pid()),
        ns_of(b.runtime_pid()),
        "one view per instance"
    );
    let template = function
        .snapshot()
        .and_then(|s| s.template_pid())
        .expect("template");
    assert_eq!(
        ns_of(template),
        own_ns,
        "the template is not contained (it runs the initializer and places the forks)"
    );

    for (name, inst) in [("first", &a), ("restored", &b)] {
        let marker = format!("fnbox-forkcontain-{}-{name}", std::process::id());
        let host_marker = std::path::Path::new("/tmp").join(&marker);
        let _ = std::fs::remove_file(&host_marker);
        let r = ok_json(&call(inst, &format!(r#"{{"marker": "{marker}"}}"#)).await);
        assert_eq!(r["uid"], 1003, "{name}: {r}");
        assert_eq!(r["gid"], 1003, "{name}: {r}");
        assert_eq!(r["groups"], serde_json::json!([]), "{name}: {r}");
        assert_eq!(
            r["init_uid"], 0,
            "{name}: the initializer ran in the template: {r}"
        );
        assert!(
            r["shadow"].as_str().unwrap().starts_with("denied"),
            "{name}: {r}"
        );
        assert_eq!(r["tmp_write"], "ok", "{name}: {r}");
        assert_eq!(r["tmp_seen"], true, "{name}: {r}");
        assert!(
            !host_marker.exists(),
            "{name}: /tmp is private: {} must not be on the host",
            host_marker.display()
        );
        assert_eq!(r["code_root"], "/opt/function/code", "{name}: {r}");
        assert_eq!(
            r["code_listing"],
            serde_json::json!(["function.yaml", "index.py"]),
            "{name}: {r}"
        );
        assert!(
            r["code_write"].as_str().unwrap().starts_with("denied"),
            "{name}: the code is read-only: {r}"
        );
        assert!(
            r["cwd_write"].as_str().unwrap().starts_with("denied"),
            "{name}: the code is read-only at its host path too: {r}"
        );
        assert_eq!(r["cap_eff"], "0000000000000000", "{name}: {r}");
        assert_eq!(r["cap_bnd"], "0000000000000000", "{name}: {r}");
        assert_eq!(r["no_new_privs"], "1", "{name}: {r}");
        assert_eq!(r["nofile"], serde_json::json!([1024, 1024]), "{name}: {r}");
        assert_eq!(
            r["user"], "contained",
            "{name}: the instance's environment: {r}"
        );
    }
    assert!(!pkg.path().join("new").exists());
    for i in [a, b] {
        i.shutdown().await;
    }
}
