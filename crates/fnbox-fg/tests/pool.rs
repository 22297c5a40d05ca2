//! Instance pools with real processes: parallel instances, several invocations per instance,
//! saturation, idle reclaim, reserved instances, and faulted instances replaced while others
//! keep serving.
//!
//! No assertion bounds how long something took (that flakes on a loaded machine): "at once" is
//! shown by invocations that can only finish together, through a gate directory (see
//! [`sleeper`]), and "did not wait" by what was still in flight.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use fnbox_engine::{
    Engine, EngineConfig, Function, InvokeRequest, InvokeResult, Pool, PoolConfig, PoolError,
};
use fnbox_limits::MemoryController;
use fnbox_testkit::{process_alive, wait_until, FixturePackage};
use tokio::time::Instant;

fn function(pkg: &FixturePackage) -> Arc<Function> {
    let package = Arc::new(fnbox_package::load(pkg.path()).expect("fixture package loads"));
    let mut config = EngineConfig::new(MemoryController::detect());
    config.host_path = std::env::var("PATH").ok();
    Arc::new(
        Function::new(
            Engine::new(config),
            package,
            Arc::new(fnbox_fg::FunctionGraph),
        )
        .expect("function"),
    )
}

fn pool_config(max: u32, reserved: u32, idle: Duration) -> PoolConfig {
    PoolConfig {
        max_instances: max,
        reserved_instances: reserved,
        idle_timeout: idle,
        acquire_timeout: Duration::from_millis(200),
        reserved_check: Duration::from_millis(100),
    }
}

/// Answers `{"pid": <runtime pid>, "together": <bool>}`; `loops` parallel polling loops serve
/// concurrent invocations within one instance. An event that is a JSON string names a gate
/// directory: the invocation drops a file there and waits (up to 30 s) until `$EXPECT` files
/// are there, so `together` is true only if that many invocations were in flight at once (or
/// the test added the missing files). Any other event sleeps `$SLEEP` seconds.
fn sleeper(config: &str, loops: u32) -> FixturePackage {
    FixturePackage::bash(
        &format!("func_name: sleeper\n{config}"),
        &format!(
            r#"
serve() {{
  while next; do
    together=false
    case "$BODY" in
      \"*)
        gate=${{BODY//\"/}}
        : > "$gate/$REQUEST_ID"
        for ((w = 0; w < 600; w++)); do
          n=$(ls "$gate" | wc -l)
          if [ "$n" -ge "${{EXPECT:-1}}" ]; then together=true; break; fi
          sleep 0.05
        done ;;
      *) sleep "${{SLEEP:-0}}" ;;
    esac
    respond "$REQUEST_ID" "{{\"pid\":$$,\"together\":$together}}"
  done
}}
for ((i = 0; i < {loops}; i++)); do serve & done
wait"#
        ),
    )
}

/// A fresh gate directory and the event that names it.
fn gate() -> (tempfile::TempDir, String) {
    let dir = tempfile::tempdir().unwrap();
    let event = serde_json::Value::from(dir.path().to_str().unwrap()).to_string();
    (dir, event)
}

/// The answer of [`sleeper`]: runtime pid and whether the gate saw everyone at once.
fn answer(result: &InvokeResult) -> (String, bool) {
    match result {
        InvokeResult::Ok(b) => {
            let v: serde_json::Value = serde_json::from_slice(b).expect("JSON answer");
            (v["pid"].to_string(), v["together"] == true)
        }
        other => panic!("expected a response, got {other:?}"),
    }
}

fn pid(result: &InvokeResult) -> String {
    answer(result).0
}

/// `n` invocations of `event` at once.
async fn parallel(
    pool: &Arc<Pool>,
    n: usize,
    event: &str,
) -> Vec<Result<fnbox_engine::InvokeOutcome, PoolError>> {
    let tasks: Vec<_> = (0..n)
        .map(|_| {
            let pool = pool.clone();
            let event = event.to_string();
            tokio::spawn(async move { pool.invoke(InvokeRequest::sync(event)).await })
        })
        .collect();
    let mut out = Vec::new();
    for t in tasks {
        out.push(t.await.unwrap());
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn n_parallel_requests_run_on_n_instances_at_once() {
    let pkg = sleeper("timeout: 30\nuser_data: {EXPECT: '4'}\n", 1);
    let pool = Pool::new(function(&pkg), pool_config(4, 0, Duration::from_secs(60)));
    pool.start().await.unwrap();
    let (_gate, event) = gate();
    let results = parallel(&pool, 4, &event).await;
    let answers: Vec<(String, bool)> = results
        .iter()
        .map(|r| answer(&r.as_ref().unwrap().result))
        .collect();
    assert!(
        answers.iter().all(|(_, together)| *together),
        "parallel, not serial: all four were in flight at once: {answers:?}"
    );
    let pids: HashSet<String> = answers.into_iter().map(|(pid, _)| pid).collect();
    assert_eq!(pids.len(), 4, "four instances served the four requests");
    assert_eq!(pool.instances().len(), 4);
    // Warm now: the same four instances serve the next round.
    let (_gate, event) = gate();
    let again = parallel(&pool, 4, &event).await;
    let pids2: HashSet<String> = again
        .iter()
        .map(|r| pid(&r.as_ref().unwrap().result))
        .collect();
    assert_eq!(pids, pids2);
    pool.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_num_serves_several_requests_on_one_instance() {
    let pkg = sleeper(
        "timeout: 30\nconcurrent_num: 3\nuser_data: {EXPECT: '3'}\n",
        3,
    );
    let pool = Pool::new(function(&pkg), pool_config(1, 0, Duration::from_secs(60)));
    pool.start().await.unwrap();
    let (_gate, event) = gate();
    let results = parallel(&pool, 3, &event).await;
    let answers: Vec<(String, bool)> = results
        .iter()
        .map(|r| answer(&r.as_ref().unwrap().result))
        .collect();
    assert!(
        answers.iter().all(|(_, together)| *together),
        "concurrently: all three were in flight at once: {answers:?}"
    );
    let pids: HashSet<String> = answers.into_iter().map(|(pid, _)| pid).collect();
    assert_eq!(pids.len(), 1, "one instance served all three");
    let info = pool.instances();
    assert_eq!(info.len(), 1);
    assert_eq!(info[0].invocations, 3);
    pool.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_saturated_pool_refuses_after_a_bounded_wait() {
    // The busy invocation holds the only instance until the test adds the second gate file.
    let pkg = sleeper("timeout: 30\nuser_data: {EXPECT: '2'}\n", 1);
    let pool = Pool::new(function(&pkg), pool_config(1, 0, Duration::from_secs(60)));
    pool.start().await.unwrap();
    let (gate_dir, event) = gate();
    let busy = {
        let pool = pool.clone();
        tokio::spawn(async move { pool.invoke(InvokeRequest::sync(event)).await })
    };
    assert!(
        wait_until(Duration::from_secs(5), || pool
            .instances()
            .iter()
            .any(|i| i.in_flight == 1))
        .await
    );
    let t = Instant::now();
    match pool.invoke(InvokeRequest::sync("{}")).await {
        Err(e @ PoolError::Saturated { .. }) => assert!(e.to_string().contains("busy"), "{e}"),
        other => panic!("expected saturation, got {other:?}"),
    }
    assert!(
        t.elapsed() >= Duration::from_millis(150),
        "it waited for an instance first: {:?}",
        t.elapsed()
    );
    assert!(
        !busy.is_finished(),
        "refused while the only instance was still busy, not after waiting for it"
    );
    std::fs::write(gate_dir.path().join("release"), "").unwrap();
    let released = busy
        .await
        .unwrap()
        .expect("the running invocation is unaffected");
    assert!(answer(&released.result).1, "it ran until released");
    pool.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_instances_are_reclaimed_and_reserved_ones_kept() {
    let pkg = sleeper("user_data: {SLEEP: '0'}\n", 1);
    let pool = Pool::new(
        function(&pkg),
        pool_config(3, 1, Duration::from_millis(300)),
    );
    pool.start().await.unwrap();
    let reserved = pool.instances();
    assert_eq!(
        reserved.len(),
        1,
        "the reserved instance starts with the pool"
    );
    assert!(reserved[0].reserved);
    // Two at once: the reserved one plus one on demand.
    let results = parallel(&pool, 2, "{}").await;
    assert!(results.iter().all(|r| r.is_ok()));
    let before = pool.instances().len();
    assert!(before >= 1);
    assert!(
        wait_until(Duration::from_secs(5), || {
            let i = pool.instances();
            i.len() == 1 && i[0].reserved
        })
        .await,
        "on-demand instances are reclaimed after idle_timeout; the reserved one stays: {:?}",
        pool.instances()
    );
    tokio::time::sleep(Duration::from_millis(800)).await;
    let after = pool.instances();
    assert_eq!(after.len(), 1);
    assert_eq!(
        after[0].pod_name, reserved[0].pod_name,
        "the reserved instance is never reclaimed"
    );
    pool.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crashing_instance_is_replaced_while_others_keep_serving() {
    let pkg = FixturePackage::bash(
        "func_name: crashy\n",
        r#"
while next; do
  case "$BODY" in
    *crash*) exit 1 ;;
    *) sleep 0.3; respond "$REQUEST_ID" "$$" ;;
  esac
done"#,
    );
    let pool = Pool::new(function(&pkg), pool_config(2, 1, Duration::from_secs(60)));
    pool.start().await.unwrap();
    // One request crashes its instance while another is being served.
    let ok = {
        let pool = pool.clone();
        tokio::spawn(async move { pool.invoke(InvokeRequest::sync("{}")).await })
    };
    assert!(
        wait_until(Duration::from_secs(5), || pool
            .instances()
            .iter()
            .any(|i| i.in_flight == 1))
        .await
    );
    let crashed = pool
        .invoke(InvokeRequest::sync(r#"{"crash":true}"#))
        .await
        .unwrap();
    assert!(matches!(crashed.result, InvokeResult::Fault(_)));
    assert!(
        matches!(ok.await.unwrap().unwrap().result, InvokeResult::Ok(_)),
        "the other invocation is unaffected"
    );
    // The pool keeps serving, and the reserved instance count is restored.
    for _ in 0..3 {
        assert!(matches!(
            pool.invoke(InvokeRequest::sync("{}")).await.unwrap().result,
            InvokeResult::Ok(_)
        ));
    }
    assert!(
        wait_until(Duration::from_secs(5), || pool
            .instances()
            .iter()
            .filter(|i| i.reserved)
            .count()
            == 1)
        .await
    );
    pool.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_with_invocations_in_flight_ends_cleanly() {
    let pkg = sleeper("user_data: {SLEEP: '1'}\n", 1);
    let pool = Pool::new(function(&pkg), pool_config(2, 0, Duration::from_secs(60)));
    pool.start().await.unwrap();
    let inflight: Vec<_> = (0..2)
        .map(|_| {
            let pool = pool.clone();
            tokio::spawn(async move { pool.invoke(InvokeRequest::sync("{}")).await })
        })
        .collect();
    assert!(
        wait_until(Duration::from_secs(5), || pool
            .instances()
            .iter()
            .filter(|i| i.in_flight == 1)
            .count()
            == 2)
        .await
    );
    let pids: Vec<i32> = inflight_pids(&pool);
    pool.shutdown().await;
    for t in inflight {
        assert!(
            matches!(t.await.unwrap().unwrap().result, InvokeResult::Ok(_)),
            "in-flight invocations finish"
        );
    }
    assert!(matches!(
        pool.invoke(InvokeRequest::sync("{}")).await,
        Err(PoolError::Closed(_))
    ));
    assert!(pool.instances().is_empty());
    for p in pids {
        assert!(
            wait_until(Duration::from_secs(3), || !process_alive(p)).await,
            "process {p} gone"
        );
    }
}

/// Runtime pids are the pod's process group; read them from /proc by the fixture's bootstrap.
fn inflight_pids(pool: &Pool) -> Vec<i32> {
    let root = pool.function().package().root.display().to_string();
    let mut pids = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        if let Ok(cmd) = std::fs::read_to_string(format!("/proc/{pid}/cmdline")) {
            if cmd.contains(&root) {
                pids.push(pid);
            }
        }
    }
    assert!(!pids.is_empty(), "found the runtimes of {root}");
    pids
}
