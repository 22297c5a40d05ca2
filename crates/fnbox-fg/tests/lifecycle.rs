//! Instance lifecycle through the FunctionGraph dialect, with real processes: happy path,
//! handler errors, crashes, timeouts, init failures, memory limits, payload limits.

use std::sync::Arc;
use std::time::Duration;

use fnbox_engine::{Engine, EngineConfig, FaultKind, Function, InvokeRequest, InvokeResult};
use fnbox_limits::MemoryController;
use fnbox_testkit::{process_alive, wait_until, FixturePackage};

fn function_with(pkg: &FixturePackage, memory: MemoryController) -> Function {
    let package = Arc::new(fnbox_package::load(pkg.path()).expect("fixture package loads"));
    let mut config = EngineConfig::new(memory);
    config.host_path = std::env::var("PATH").ok();
    Function::new(
        Engine::new(config),
        package,
        Arc::new(fnbox_fg::FunctionGraph),
    )
    .expect("function")
}

fn function(pkg: &FixturePackage) -> Function {
    function_with(pkg, MemoryController::detect())
}

fn ok_body(result: &InvokeResult) -> String {
    match result {
        InvokeResult::Ok(b) => String::from_utf8_lossy(b).into_owned(),
        other => panic!("expected a response, got {other:?}"),
    }
}

const ECHO: &str = r#"
while next; do respond "$REQUEST_ID" "{\"echo\":$BODY,\"pid\":$$}"; done
"#;

/// `cpu used` (the Finish line's `…U`) counts what the instance's processes ran during the
/// invocation: the runtime's own loop and a child it reaped, at every invocation of the same
/// instance (its `/proc` files are kept open between readings), and not the idle time before.
#[tokio::test]
async fn cpu_used_counts_the_invocations_own_and_reaped_childrens_cpu() {
    const BUSY: &str = r#"
burn() { local i; for ((i = 0; i < 150000; i++)); do :; done; }
while next; do
  case "$BODY" in
    *child*) out=$(burn; echo child) ;;
    *own*) burn; out=own ;;
    *) out=idle ;;
  esac
  respond "$REQUEST_ID" "\"$out\""
done
"#;
    let pkg = FixturePackage::bash("func_name: busy\n", BUSY);
    let f = function(&pkg);
    let inst = f.start_instance(None).await.expect("init");
    for body in ["\"own\"", "\"child\"", "\"own\""] {
        tokio::time::sleep(Duration::from_millis(200)).await;
        let out = inst.invoke(InvokeRequest::sync(body)).await.unwrap();
        let m = out.metrics;
        // Busy the whole time: close to one core, less when the machine is shared.
        assert!(
            m.cpu_used > 0.2 && m.cpu_used < 2.5,
            "{body}: cpu used {} over {} ms",
            m.cpu_used,
            m.duration_ms
        );
    }
    inst.shutdown().await;
}

#[tokio::test]
async fn n_invocations_in_one_instance() {
    let pkg = FixturePackage::bash("func_name: echo\n", ECHO);
    let f = function(&pkg);
    let inst = f.start_instance(None).await.expect("init");
    let pid = inst.runtime_pid();
    for i in 0..3 {
        let out = inst
            .invoke(InvokeRequest::sync(format!("{{\"n\":{i}}}")))
            .await
            .unwrap();
        assert_eq!(
            ok_body(&out.result),
            format!("{{\"echo\":{{\"n\":{i}}},\"pid\":{pid}}}")
        );
        assert!(out.metrics.duration_ms > 0.0);
        assert!(out.metrics.billed_duration_ms >= 1);
        assert!(
            out.metrics.memory_used_mb > 0.0,
            "memory used is measured: {:?}",
            out.metrics
        );
        assert_eq!(out.metrics.memory_size_mb, 128);
    }
    assert_eq!(inst.invocations(), 3);
    assert_eq!(
        inst.runtime_pid(),
        pid,
        "same instance served all invocations"
    );
    inst.shutdown().await;
    assert!(
        wait_until(Duration::from_secs(3), || !process_alive(pid)).await,
        "runtime gone after shutdown"
    );
}

#[tokio::test]
async fn handler_error_keeps_the_instance() {
    let pkg = FixturePackage::bash(
        "func_name: failer\n",
        r#"
while next; do
  case "$BODY" in
    *boom*) fail "$REQUEST_ID" '{"errorType":"ValueError","errorMessage":"boom","stackTrace":["line 1"]}' ;;
    *) respond "$REQUEST_ID" '"fine"' ;;
  esac
done"#,
    );
    let f = function(&pkg);
    let inst = f.start_instance(None).await.unwrap();
    let out = inst
        .invoke(InvokeRequest::sync(r#"{"boom":1}"#))
        .await
        .unwrap();
    match &out.result {
        InvokeResult::HandlerError(body) => {
            let v: serde_json::Value = serde_json::from_slice(body).unwrap();
            assert_eq!(v["errorType"], "ValueError");
            assert_eq!(v["errorMessage"], "boom");
        }
        other => panic!("expected a handler error, got {other:?}"),
    }
    assert_eq!(out.error_type.as_deref(), Some("ValueError"));
    assert!(
        inst.can_accept(),
        "a handler error leaves the instance ready"
    );
    let out = inst.invoke(InvokeRequest::sync("{}")).await.unwrap();
    assert_eq!(ok_body(&out.result), "\"fine\"");
    inst.shutdown().await;
}

async fn assert_exit_fault(script: &str, expect_in_message: &str) {
    let pkg = FixturePackage::bash("func_name: crasher\n", script);
    let f = function(&pkg);
    let inst = f.start_instance(None).await.unwrap();
    let pid = inst.runtime_pid();
    let out = inst.invoke(InvokeRequest::sync("{}")).await.unwrap();
    match &out.result {
        InvokeResult::Fault(fault) => {
            assert_eq!(fault.kind, FaultKind::RuntimeExit);
            assert_eq!(fault.error_type(), "Runtime.ExitError");
            assert!(
                fault.message.contains(expect_in_message),
                "message: {}",
                fault.message
            );
        }
        other => panic!("expected a fault, got {other:?}"),
    }
    assert!(
        !inst.can_accept(),
        "a crashed instance takes no more invocations"
    );
    assert!(inst.invoke(InvokeRequest::sync("{}")).await.is_err());
    // The next invocation gets a fresh instance.
    let next = f.start_instance(None).await.unwrap();
    assert_ne!(next.runtime_pid(), pid);
    next.shutdown().await;
}

#[tokio::test]
async fn crash_mid_invoke_replaces_the_instance() {
    assert_exit_fault("next; echo 'crashing now' >&2; exit 3", "exit code 3").await;
}

#[tokio::test]
async fn exit_zero_mid_invoke_is_a_fault_too() {
    assert_exit_fault("next; exit 0", "exit code 0").await;
}

#[tokio::test]
async fn timeout_kills_the_whole_process_group() {
    let pkg = FixturePackage::bash(
        "func_name: sleeper\ntimeout: 3\n",
        r#"
next
sleep 1000 &
echo $! > "$RUNTIME_CODE_ROOT/child.pid"
wait"#,
    );
    let f = function(&pkg);
    let inst = f.start_instance(None).await.unwrap();
    let pid = inst.runtime_pid();
    let started = tokio::time::Instant::now();
    let out = inst.invoke(InvokeRequest::sync("{}")).await.unwrap();
    let elapsed = started.elapsed();
    match &out.result {
        InvokeResult::Fault(fault) => {
            assert_eq!(fault.kind, FaultKind::Timeout);
            assert_eq!(fault.message, "invocation timed out after 3s");
            assert_eq!(fault.error_type(), "Sandbox.Timedout");
        }
        other => panic!("expected a timeout, got {other:?}"),
    }
    assert!(elapsed >= Duration::from_secs(3), "took {elapsed:?}");
    let child: i32 = std::fs::read_to_string(pkg.path().join("child.pid"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert!(
        wait_until(Duration::from_secs(3), || !process_alive(pid)
            && !process_alive(child))
        .await,
        "no orphan left: runtime {pid} and child {child} are gone"
    );
}

#[tokio::test]
async fn init_failure_is_retried_three_times_then_reported() {
    let pkg = FixturePackage::bash(
        "func_name: badinit\n",
        r#"echo attempt >> "$RUNTIME_CODE_ROOT/attempts"; echo "cannot start" >&2; exit 2"#,
    );
    let f = function(&pkg);
    let err = f.start_instance(None).await.err().expect("init must fail");
    assert_eq!(err.attempts, 3);
    assert_eq!(err.error_type, "Runtime.ExitError");
    assert!(err.message.contains("exit code 2"), "{}", err.message);
    let attempts = std::fs::read_to_string(pkg.path().join("attempts")).unwrap();
    assert_eq!(
        attempts.lines().count(),
        3,
        "three fresh instances were tried"
    );
}

#[tokio::test]
async fn init_error_endpoint_fails_the_init_with_the_runtime_message() {
    let pkg = FixturePackage::bash(
        "func_name: initerr\n",
        r#"http POST /v1/runtime/init/error '{"errorType":"Runtime.ImportModuleError","errorMessage":"no module named x"}'; sleep 5"#,
    );
    let f = function(&pkg);
    let err = f.start_instance(None).await.err().expect("init must fail");
    assert_eq!(err.error_type, "Runtime.ImportModuleError");
    assert_eq!(err.message, "no module named x");
    assert_eq!(err.attempts, 3);
}

const ALLOCATE: &str = r#"
next
python3 -c "
import time
chunks = []
for i in range(60):
    chunks.append(bytearray(10 * 1024 * 1024))
    time.sleep(0.01)
"
respond "$REQUEST_ID" '"survived"'
"#;

async fn assert_oom(memory: MemoryController) {
    let pkg = FixturePackage::bash("func_name: hog\nmemory_size: 128\ntimeout: 10\n", ALLOCATE);
    let f = function_with(&pkg, memory);
    let inst = f.start_instance(None).await.unwrap();
    let out = inst.invoke(InvokeRequest::sync("{}")).await.unwrap();
    match &out.result {
        InvokeResult::Fault(fault) => {
            assert_eq!(fault.kind, FaultKind::OutOfMemory, "{fault:?}");
            assert_eq!(fault.message, "runtime memory limit exceeded");
            assert_eq!(fault.error_type(), "Runtime.OutOfMemory");
        }
        other => panic!("expected an OOM fault, got {other:?}"),
    }
    // fnbox keeps running: a new instance of the same function starts.
    let next = f
        .start_instance(None)
        .await
        .expect("a fresh instance after an OOM");
    next.shutdown().await;
}

#[tokio::test]
async fn allocation_past_the_limit_is_an_oom_in_cgroup_mode() {
    let memory = MemoryController::cgroup().unwrap_or_else(|e| {
        panic!(
            "cgroup memory controller unavailable ({e}): run the tests as root on Linux with a \
             writable cgroup memory controller"
        )
    });
    assert_oom(memory).await;
}

#[tokio::test]
async fn allocation_past_the_limit_is_an_oom_in_rss_mode() {
    assert_oom(MemoryController::rss_sampling("test")).await;
}

#[tokio::test]
async fn response_over_6_mib_is_refused_with_413_and_answered_at_once() {
    let pkg = FixturePackage::bash(
        "func_name: big\ntimeout: 30\n",
        r#"
next
id=$REQUEST_ID
big=$(head -c 6291457 /dev/zero | tr '\0' a)
respond "$id" "$big"
echo "$STATUS" > "$RUNTIME_CODE_ROOT/status"
respond "$id" '"small"'
echo "$STATUS" > "$RUNTIME_CODE_ROOT/again"
while next; do respond "$REQUEST_ID" '"next one"'; done"#,
    );
    let f = function(&pkg);
    let inst = f.start_instance(None).await.unwrap();
    let out = inst.invoke(InvokeRequest::sync("{}")).await.unwrap();
    // Answered as a function error, not after the 30 s deadline as a timeout.
    match &out.result {
        InvokeResult::HandlerError(body) => {
            let v: serde_json::Value = serde_json::from_slice(body).unwrap();
            assert_eq!(v["errorType"], "FunctionResponseTooLarge", "{v}");
            assert!(
                v["errorMessage"].as_str().unwrap().contains("6291456"),
                "{v}"
            );
        }
        other => panic!("expected the response-too-large error, got {other:?}"),
    }
    assert_eq!(out.error_type.as_deref(), Some("FunctionResponseTooLarge"));
    assert!(
        wait_until(Duration::from_secs(10), || pkg
            .path()
            .join("again")
            .exists())
        .await
    );
    let read = |f: &str| std::fs::read_to_string(pkg.path().join(f)).unwrap();
    assert_eq!(read("status").trim(), "413");
    assert_eq!(read("again").trim(), "404", "the invocation is over");
    // The runtime is healthy: the instance takes the next invocation.
    let next = inst.invoke(InvokeRequest::sync("{}")).await.unwrap();
    assert_eq!(ok_body(&next.result), "\"next one\"");
    inst.shutdown().await;
}

#[tokio::test]
async fn unknown_request_id_is_404_and_a_second_answer_too() {
    let pkg = FixturePackage::bash(
        "func_name: unknown\n",
        r#"
next
id=$REQUEST_ID
respond "not-a-request" '"x"'
echo "$STATUS" > "$RUNTIME_CODE_ROOT/unknown"
respond "%FF" '"x"'
printf '%s\n%s' "$STATUS" "$BODY" > "$RUNTIME_CODE_ROOT/undecodable"
fail "%C3%28" '{}'
printf '%s\n%s' "$STATUS" "$BODY" > "$RUNTIME_CODE_ROOT/undecodable-error"
respond "$id" '"first"'
respond "$id" '"second"'
echo "$STATUS" > "$RUNTIME_CODE_ROOT/again"
sleep 5"#,
    );
    let f = function(&pkg);
    let inst = f.start_instance(None).await.unwrap();
    let out = inst.invoke(InvokeRequest::sync("{}")).await.unwrap();
    assert_eq!(ok_body(&out.result), "\"first\"");
    assert!(wait_until(Duration::from_secs(3), || pkg.path().join("again").exists()).await);
    assert_eq!(
        std::fs::read_to_string(pkg.path().join("unknown"))
            .unwrap()
            .trim(),
        "404"
    );
    // An id that does not decode (percent-encoded bytes that are not UTF-8; found by the
    // instance_api_fg fuzz target) is an unknown id too, answered in the JSON error shape.
    for file in ["undecodable", "undecodable-error"] {
        let text = std::fs::read_to_string(pkg.path().join(file)).unwrap();
        let (status, body) = text.split_once('\n').unwrap();
        assert_eq!(status, "404", "{file}: {text}");
        let body: serde_json::Value = serde_json::from_str(body)
            .unwrap_or_else(|e| panic!("{file}: the body is not JSON ({e}): {body:?}"));
        assert_eq!(body["errorType"], "InvalidRequestID", "{file}: {body}");
    }
    assert_eq!(
        std::fs::read_to_string(pkg.path().join("again"))
            .unwrap()
            .trim(),
        "404"
    );
    inst.shutdown().await;
}

#[tokio::test]
async fn the_engine_can_be_observed_as_a_whole() {
    use fnbox_engine::lifecycle::State;
    use fnbox_engine::telemetry::{Event, Phase};
    use fnbox_engine::Observation;

    let pkg = FixturePackage::bash("func_name: watched\n", ECHO);
    let f = function(&pkg);
    let mut seen = f.engine().observe();
    let inst = f.start_instance(None).await.expect("init");
    let out = inst.invoke(InvokeRequest::sync("{}")).await.unwrap();
    inst.shutdown().await;

    let mut states = Vec::new();
    let mut events = Vec::new();
    while let Ok(o) = seen.try_recv() {
        assert_eq!(&*o.function, "watched");
        assert_eq!(&*o.pod_name, inst.pod_name());
        match &o.what {
            Observation::State(s) => states.push(*s),
            Observation::Telemetry(e) => events.push(e.clone()),
            Observation::Refused => panic!("nothing was refused"),
        }
    }
    assert_eq!(
        states,
        [
            State::Initializing,
            State::Idle,
            State::Busy(1),
            State::Idle,
            State::ShuttingDown,
            State::Dead
        ]
    );
    let report = events
        .iter()
        .find_map(|e| match &**e {
            Event::Report {
                phase: Phase::Invoke,
                trace_id,
                ..
            } => Some(trace_id.clone()),
            _ => None,
        })
        .expect("the invocation's report was observed");
    assert_eq!(report, out.request_id);
    assert!(matches!(
        &*events[0],
        Event::Start {
            phase: Phase::Init,
            ..
        }
    ));
}

/// A runtime that posts plain text to the error endpoint: the caller gets the platform's error
/// shape with that text as the message.
#[tokio::test]
async fn a_non_json_error_body_is_given_the_error_shape() {
    let pkg = FixturePackage::bash(
        "func_name: plainerr\n",
        r#"while next; do fail "$REQUEST_ID" 'something broke'; done"#,
    );
    let f = function(&pkg);
    let inst = f.start_instance(None).await.expect("init");
    let out = inst.invoke(InvokeRequest::sync("{}")).await.unwrap();
    match &out.result {
        InvokeResult::HandlerError(body) => {
            let v: serde_json::Value = serde_json::from_slice(body).expect("JSON error body");
            assert_eq!(
                v,
                serde_json::json!({"errorType": "Function.Error", "errorMessage": "something broke"})
            );
        }
        other => panic!("expected a handler error, got {other:?}"),
    }
    assert_eq!(out.error_type.as_deref(), Some("Function.Error"));
    inst.shutdown().await;
}

/// FunctionGraph's documented bash custom runtime, shipped as the samples ship it: `bootstrap`
/// without a shebang or the executable bit, using bash options (`set -euo pipefail`) and bash
/// syntax. The platform runs `/bin/bash bootstrap` in the code directory, and so does fnbox.
#[tokio::test]
async fn a_bash_bootstrap_without_shebang_or_executable_bit_runs() {
    let pkg = FixturePackage::empty("func_name: bashrt\n");
    let body = fnbox_testkit::BASH_HTTP
        .strip_prefix("#!/bin/bash\n")
        .expect("the helper starts with its shebang");
    pkg.write(
        "bootstrap",
        &format!(
            "set -euo pipefail\nwords=(from bash)\n[[ \"$PWD\" == \"$RUNTIME_CODE_ROOT\" ]]\nset +e\n{body}\nwhile next; do respond \"$REQUEST_ID\" \"\\\"${{words[*]}}\\\"\"; done\n"
        ),
    );
    let f = function(&pkg);
    let inst = f.start_instance(None).await.expect("init");
    let out = inst.invoke(InvokeRequest::sync("{}")).await.unwrap();
    assert_eq!(ok_body(&out.result), "\"from bash\"");
    inst.shutdown().await;
}
