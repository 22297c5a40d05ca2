//! The Lambda lifecycle through the engine with small shell programs (curl): environment,
//! init waiting for extensions, SHUTDOWN reasons on faults, extension errors. The real-client
//! checks are in `conformance.rs`.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use fnbox_engine::{Engine, EngineConfig, FaultKind, Function, InvokeRequest, InvokeResult};
use fnbox_limits::MemoryController;
use fnbox_testkit::FixturePackage;
use serde_json::Value;
use tokio::time::Instant;

/// A Lambda runtime in bash: echoes events; `sleep` sleeps past any deadline, `crash` exits,
/// `bye` answers and then exits, `env` answers with its environment.
const RUNTIME: &str = r#"#!/bin/bash
API="http://$AWS_LAMBDA_RUNTIME_API/2018-06-01/runtime"
h=$(mktemp)
while true; do
  body=$(curl -sS -D "$h" "$API/invocation/next")
  id=$(grep -i '^lambda-runtime-aws-request-id:' "$h" | cut -d' ' -f2 | tr -d '\r')
  case "$body" in
    *sleep*) sleep 30 ;;
    *crash*) exit 3 ;;
    *bye*) curl -sS -X POST "$API/invocation/$id/response" -d '"bye"' >/dev/null; exit 0 ;;
    *env*) body=$(env | sort | grep -E '^(AWS_|_HANDLER|LAMBDA_|TZ|LANG)' | sed 's/"/\\"/g' | awk 'BEGIN{printf "["} {printf "%s\"%s\"", (NR>1?",":""), $0} END{printf "]"}') ;;
  esac
  curl -sS -X POST "$API/invocation/$id/response" -d "$body" >/dev/null
done
"#;

/// A Lambda extension in bash: registers for INVOKE and SHUTDOWN, waits `$EXT_FIRST_NEXT_DELAY`
/// seconds before its first `next`, appends every event to `$OUT/<name>.events`, exits after
/// SHUTDOWN. With `$EXT_EXIT_ERROR` set it reports exit/error on its first INVOKE.
const EXTENSION: &str = r#"#!/bin/bash
API="http://$AWS_LAMBDA_RUNTIME_API/2020-01-01/extension"
name=$(basename "$0")
h=$(mktemp)
curl -sS -D "$h" -X POST "$API/register" -H "Lambda-Extension-Name: $name" -d '{"events":["INVOKE","SHUTDOWN"]}' >/dev/null
id=$(grep -i '^lambda-extension-identifier:' "$h" | cut -d' ' -f2 | tr -d '\r')
env | sort > "$OUT/$name.env"
sleep "${EXT_FIRST_NEXT_DELAY:-0}"
while true; do
  ev=$(curl -sS "$API/event/next" -H "Lambda-Extension-Identifier: $id")
  echo "$ev" >> "$OUT/$name.events"
  case "$ev" in
    *SHUTDOWN*) exit 0 ;;
    *INVOKE*) if [ -n "${EXT_EXIT_ERROR:-}" ]; then
        curl -sS -X POST "$API/exit/error" -H "Lambda-Extension-Identifier: $id" -H "Lambda-Extension-Function-Error-Type: Extension.Broken" >/dev/null
        sleep 30
      fi ;;
  esac
done
"#;

/// The fixture programs are bash + curl; without curl every test here fails saying so.
fn require_curl() {
    let ok = std::process::Command::new("curl")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        ok,
        "curl not found on PATH: these tests' fixture runtimes need it (apt-get install curl)"
    );
}

struct Setup {
    pkg: FixturePackage,
    out: tempfile::TempDir,
}

fn setup(user_data: &[(&str, &str)], extension: bool) -> Setup {
    let out = tempfile::tempdir().unwrap();
    let mut config = format!(
        "func_name: lam\ndialect: lambda\nhandler: app.main\ntimeout: 3\nuser_data:\n  OUT: {}\n",
        out.path().display()
    );
    for (k, v) in user_data {
        config.push_str(&format!("  {k}: \"{v}\"\n"));
    }
    let pkg = FixturePackage::empty(&config);
    pkg.write_exec("bootstrap", RUNTIME);
    if extension {
        pkg.write_exec("extensions/ext-bash", EXTENSION);
    }
    Setup { pkg, out }
}

fn function(pkg: &FixturePackage) -> Function {
    let package = Arc::new(fnbox_package::load(pkg.path()).expect("package loads"));
    let mut config = EngineConfig::new(MemoryController::detect());
    config.host_path = std::env::var("PATH").ok();
    Function::new(Engine::new(config), package, Arc::new(fnbox_lambda::Lambda)).expect("function")
}

fn events(out: &Path) -> Vec<Value> {
    std::fs::read_to_string(out.join("ext-bash.events"))
        .unwrap_or_default()
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

#[tokio::test]
async fn runtime_and_extension_environments() {
    require_curl();
    let s = setup(&[], true);
    let f = function(&s.pkg);
    let inst = f.start_instance(None).await.expect("init");
    let out = inst.invoke(InvokeRequest::sync("\"env\"")).await.unwrap();
    let vars: Vec<String> = match &out.result {
        InvokeResult::Ok(b) => serde_json::from_slice(b).unwrap(),
        other => panic!("{other:?}"),
    };
    for want in [
        "AWS_LAMBDA_FUNCTION_NAME=lam",
        "AWS_LAMBDA_FUNCTION_VERSION=$LATEST",
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE=128",
        "AWS_LAMBDA_INITIALIZATION_TYPE=on-demand",
        "AWS_LAMBDA_LOG_GROUP_NAME=/aws/lambda/lam",
        "AWS_REGION=us-east-1",
        "AWS_DEFAULT_REGION=us-east-1",
        "_HANDLER=app.main",
        "TZ=:UTC",
    ] {
        assert!(
            vars.iter().any(|v| v == want),
            "{want} missing from {vars:#?}"
        );
    }
    assert!(vars
        .iter()
        .any(|v| v.starts_with("AWS_LAMBDA_RUNTIME_API=127.0.0.1:")));
    assert!(vars.iter().any(|v| v.starts_with("LAMBDA_TASK_ROOT=/")));
    inst.shutdown().await;
    let ext_env = std::fs::read_to_string(s.out.path().join("ext-bash.env")).unwrap();
    let has = |prefix: &str| ext_env.lines().any(|l| l.starts_with(prefix));
    assert!(has("AWS_LAMBDA_FUNCTION_NAME=lam"));
    assert!(!has("_HANDLER="), "runtime-only variables are withheld");
    assert!(!has("LAMBDA_TASK_ROOT="));
    // FunctionGraph's variables (RUNTIME_*, RUNTIME_USERDATA, EXTENSION_API_ADDR) are not a
    // Lambda extension's (issue 19 item 6).
    assert!(!has("RUNTIME_"), "{ext_env}");
    assert!(!has("EXTENSION_API_ADDR="), "{ext_env}");
    assert!(has("OUT="), "user_data entries are: {ext_env}");
}

#[tokio::test]
async fn init_waits_for_every_extension_to_ask_for_an_event() {
    require_curl();
    let s = setup(&[("EXT_FIRST_NEXT_DELAY", "1")], true);
    let f = function(&s.pkg);
    let t = Instant::now();
    let inst = f.start_instance(None).await.expect("init");
    assert!(
        t.elapsed() >= Duration::from_secs(1),
        "init ended before the extension's first next"
    );
    let req = InvokeRequest::sync("{}");
    let out = inst.invoke(req.clone()).await.unwrap();
    assert!(matches!(out.result, InvokeResult::Ok(_)));
    inst.shutdown().await;
    let ev = events(s.out.path());
    assert_eq!(ev.len(), 2, "{ev:#?}");
    assert_eq!(ev[0]["eventType"], "INVOKE");
    assert_eq!(ev[0]["requestId"], req.request_id);
    assert_eq!(ev[1]["eventType"], "SHUTDOWN");
    assert_eq!(ev[1]["shutdownReason"], "spindown");
}

#[tokio::test]
async fn a_timeout_sends_shutdown_timeout() {
    require_curl();
    let s = setup(&[], true);
    let f = function(&s.pkg);
    let inst = f.start_instance(None).await.expect("init");
    let out = inst.invoke(InvokeRequest::sync("\"sleep\"")).await.unwrap();
    match &out.result {
        InvokeResult::Fault(fault) => assert_eq!(fault.kind, FaultKind::Timeout),
        other => panic!("{other:?}"),
    }
    let ev = events(s.out.path());
    let last = ev.last().expect("events");
    assert_eq!(last["eventType"], "SHUTDOWN");
    assert_eq!(last["shutdownReason"], "timeout");
    assert!(last["deadlineMs"].is_u64());
}

#[tokio::test]
async fn a_runtime_crash_sends_shutdown_failure() {
    require_curl();
    let s = setup(&[], true);
    let f = function(&s.pkg);
    let inst = f.start_instance(None).await.expect("init");
    let out = inst.invoke(InvokeRequest::sync("\"crash\"")).await.unwrap();
    match &out.result {
        InvokeResult::Fault(fault) => {
            assert_eq!(fault.kind, FaultKind::RuntimeExit);
            assert_eq!(fault.error_type(), "Runtime.ExitError");
        }
        other => panic!("{other:?}"),
    }
    let ev = events(s.out.path());
    assert_eq!(ev.last().unwrap()["shutdownReason"], "failure", "{ev:#?}");
}

#[tokio::test]
async fn an_extension_exit_error_fails_the_invocation() {
    require_curl();
    let s = setup(&[("EXT_EXIT_ERROR", "1")], true);
    let f = function(&s.pkg);
    let inst = f.start_instance(None).await.expect("init");
    let out = inst.invoke(InvokeRequest::sync("{}")).await.unwrap();
    match &out.result {
        InvokeResult::Fault(fault) => {
            assert_eq!(fault.kind, FaultKind::ExtensionCrash);
            assert!(
                fault.message.contains("Extension.ExitError"),
                "{}",
                fault.message
            );
            assert!(
                fault.message.contains("Extension.Broken"),
                "{}",
                fault.message
            );
        }
        other => panic!("{other:?}"),
    }
    assert!(!inst.can_accept(), "the instance is gone");
}

#[tokio::test]
async fn without_extensions_the_runtime_alone_serves() {
    require_curl();
    let s = setup(&[], false);
    let f = function(&s.pkg);
    let inst = f.start_instance(None).await.expect("init");
    for i in 0..3 {
        let out = inst
            .invoke(InvokeRequest::sync(format!("{{\"i\":{i}}}")))
            .await
            .unwrap();
        match &out.result {
            InvokeResult::Ok(b) => assert_eq!(&b[..], format!("{{\"i\":{i}}}").as_bytes()),
            other => panic!("{other:?}"),
        }
    }
    inst.shutdown().await;
}

#[tokio::test]
async fn a_runtime_that_exits_after_answering_has_crashed() {
    require_curl();
    let s = setup(&[], false);
    let f = function(&s.pkg);
    let inst = f.start_instance(None).await.expect("init");
    let out = inst.invoke(InvokeRequest::sync("\"bye\"")).await.unwrap();
    match &out.result {
        InvokeResult::Fault(fault) => {
            // Seen as the exit it is, not left to run into the deadline (a Timeout fault).
            assert_eq!(fault.kind, FaultKind::RuntimeExit, "{fault:?}");
            assert_eq!(fault.error_type(), "Runtime.ExitError");
        }
        other => panic!("{other:?}"),
    }
}
