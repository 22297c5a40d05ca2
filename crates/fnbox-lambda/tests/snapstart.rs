//! Lambda SnapStart in resume-in-place mode (issue 18): `snap_start: PublishedVersions`, a
//! hand-written SnapStart runtime client in bash + curl (`restore/next`, `restore/error`),
//! the restore phase's telemetry per schema, the report's restore metrics, hook failures and
//! the 10 s limit. The real clients (awslambdaric, lambda_runtime) are in `conformance/`.

use std::sync::Arc;
use std::time::Duration;

use fnbox_engine::snapshot::{RestoreMode, RESTORE_TIMEOUT};
use fnbox_engine::telemetry::Status;
use fnbox_engine::{Engine, EngineConfig, Function, InvokeRequest, InvokeResult};
use fnbox_limits::MemoryController;
use fnbox_testkit::{wait_until, Behaviour, FixturePackage, Listener};
use serde_json::Value;

/// A SnapStart runtime: ends init with `restore/next` (when told snap-start), then runs its
/// "after-restore hook" per `$HOOK` (`ok`, `fail`: reports restore/error (its 202 is checked
/// in `api.rs`), `slow`: never
/// finishes, `none`: a runtime without SnapStart support), then echoes events with the
/// environment's initialization type.
const RUNTIME: &str = r#"#!/bin/bash
API="http://$AWS_LAMBDA_RUNTIME_API/2018-06-01/runtime"
if [ "$AWS_LAMBDA_INITIALIZATION_TYPE" = snap-start ] && [ "$HOOK" != none ]; then
  code=$(curl -sS -o "$OUT/restore.body" -w '%{http_code}' "$API/restore/next")
  echo "$code" > "$OUT/restore.code"
  case "$HOOK" in
    fail)
      curl -sS -o /dev/null -w '%{http_code}' -X POST "$API/restore/error" \
        -H 'Lambda-Runtime-Function-Error-Type: Runtime.AfterRestoreError' \
        -d '{"errorMessage":"cannot reconnect","errorType":"Runtime.AfterRestoreError"}' > "$OUT/restore-error.code"
      sleep 30 ;;
    slow) sleep 30 ;;
  esac
fi
h=$(mktemp)
while true; do
  curl -sS -D "$h" -o /dev/null "$API/invocation/next"
  id=$(grep -i '^lambda-runtime-aws-request-id:' "$h" | cut -d' ' -f2 | tr -d '\r')
  curl -sS -X POST "$API/invocation/$id/response" -d "\"$AWS_LAMBDA_INITIALIZATION_TYPE\"" >/dev/null
done
"#;

/// A telemetry extension: subscribes `platform` with schema `$SCHEMA_<name>` to
/// `127.0.0.1:$PORT_<name>`, then waits for events.
const EXTENSION: &str = r#"#!/bin/bash
API="http://$AWS_LAMBDA_RUNTIME_API"
name=$(basename "$0")
schema_var="SCHEMA_$name"; port_var="PORT_$name"
h=$(mktemp)
curl -sS -D "$h" -X POST "$API/2020-01-01/extension/register" -H "Lambda-Extension-Name: $name" -d '{"events":["INVOKE","SHUTDOWN"]}' >/dev/null
id=$(grep -i '^lambda-extension-identifier:' "$h" | cut -d' ' -f2 | tr -d '\r')
curl -sS -X PUT "$API/2022-07-01/telemetry" -H "Lambda-Extension-Identifier: $id" \
  -d "{\"schemaVersion\":\"${!schema_var}\",\"types\":[\"platform\"],\"buffering\":{\"timeoutMs\":25},\"destination\":{\"protocol\":\"HTTP\",\"URI\":\"http://127.0.0.1:${!port_var}/\"}}" >/dev/null
while true; do
  ev=$(curl -sS "$API/2020-01-01/extension/event/next" -H "Lambda-Extension-Identifier: $id")
  case "$ev" in *SHUTDOWN*) exit 0 ;; esac
done
"#;

fn require_curl() {
    let ok = std::process::Command::new("curl")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        ok,
        "curl not found on PATH: these fixture runtimes need it (apt-get install curl)"
    );
}

struct Setup {
    function: Function,
    out: tempfile::TempDir,
    _pkg: FixturePackage,
}

fn setup(hook: &str, user_data: &[(&str, String)], extensions: &[&str]) -> Setup {
    require_curl();
    let out = tempfile::tempdir().unwrap();
    // freeze: false: the reports are awaited while the instance idles (a frozen instance's
    // telemetry waits for its next thaw, as on Lambda; freeze has tests of its own).
    let mut config = format!(
        "func_name: snapstart\ndialect: lambda\nhandler: app.main\nsnap_start: PublishedVersions\n\
         freeze: false\nuser_data:\n  OUT: \"{}\"\n  HOOK: \"{hook}\"\n",
        out.path().display()
    );
    for (k, v) in user_data {
        config.push_str(&format!("  {k}: \"{v}\"\n"));
    }
    let pkg = FixturePackage::empty(&config);
    pkg.write_exec("bootstrap", RUNTIME);
    for e in extensions {
        pkg.write_exec(&format!("extensions/{e}"), EXTENSION);
    }
    let package = Arc::new(fnbox_package::load(pkg.path()).expect("package loads"));
    let mut engine = EngineConfig::new(MemoryController::detect());
    engine.host_path = std::env::var("PATH").ok();
    let function =
        Function::new(Engine::new(engine), package, Arc::new(fnbox_lambda::Lambda)).unwrap();
    assert_eq!(function.restore_mode(), Some(RestoreMode::ResumeInPlace));
    Setup {
        function,
        out,
        _pkg: pkg,
    }
}

fn types(events: &[Value]) -> Vec<String> {
    events
        .iter()
        .map(|e| e["type"].as_str().unwrap_or_default().to_string())
        .collect()
}

#[tokio::test]
async fn restore_follows_init_and_reaches_new_schema_subscribers_only() {
    let (new, old) = (
        Listener::start(0, Behaviour::Ok).await.unwrap(),
        Listener::start(0, Behaviour::Ok).await.unwrap(),
    );
    let s = setup(
        "ok",
        &[
            ("SCHEMA_extnew", "2025-01-29".into()),
            ("PORT_extnew", new.addr.port().to_string()),
            ("SCHEMA_extold", "2022-07-01".into()),
            ("PORT_extold", old.addr.port().to_string()),
        ],
        &["extnew", "extold"],
    );
    let inst = s
        .function
        .start_instance(Some("cold-req".into()))
        .await
        .expect("init + restore");
    let out = inst.invoke(InvokeRequest::sync("{}")).await.unwrap();
    assert_eq!(
        out.result,
        InvokeResult::Ok(bytes::Bytes::from_static(b"\"snap-start\""))
    );
    let code = std::fs::read_to_string(s.out.path().join("restore.code")).unwrap();
    assert_eq!(
        code.trim(),
        "200",
        "restore/next answers 200 after the restore"
    );
    let body = std::fs::read(s.out.path().join("restore.body")).unwrap();
    assert!(body.is_empty(), "with an empty body");
    assert!(
        wait_until(Duration::from_secs(5), || types(&new.events())
            .contains(&"platform.report".into())
            && types(&old.events()).contains(&"platform.report".into()))
        .await
    );
    let events = new.events();
    let names = types(&events);
    let order: Vec<&str> = names
        .iter()
        .map(String::as_str)
        // initStart predates both subscriptions: it is replayed to the first subscriber only.
        .filter(|n| {
            !matches!(
                *n,
                "platform.extension" | "platform.telemetrySubscription" | "platform.initStart"
            )
        })
        .collect();
    assert_eq!(
        order,
        [
            "platform.initRuntimeDone",
            "platform.initReport",
            "platform.restoreStart",
            "platform.restoreRuntimeDone",
            "platform.restoreReport",
            "platform.start",
            "platform.runtimeDone",
            "platform.report",
        ],
        "{names:?}"
    );
    let record = |t: &str| &events.iter().find(|e| e["type"] == t).unwrap()["record"];
    let start = record("platform.restoreStart");
    // The identity fields initStart carries (runtimeVersion/runtimeVersionArn are left out for
    // provided runtimes, as in initStart).
    for field in [
        "functionName",
        "functionVersion",
        "instanceId",
        "instanceMaxMemory",
    ] {
        assert!(start.get(field).is_some(), "{field} in {start}");
    }
    assert!(start.get("requestId").is_none());
    assert_eq!(record("platform.restoreRuntimeDone")["status"], "success");
    let restore_ms = record("platform.restoreReport")["metrics"]["durationMs"]
        .as_f64()
        .unwrap();
    let metrics = &record("platform.report")["metrics"];
    assert_eq!(
        metrics["restoreDurationMs"].as_f64(),
        Some(restore_ms),
        "{metrics}"
    );
    assert_eq!(
        metrics["billedRestoreDurationMs"].as_u64(),
        Some((restore_ms.ceil() as u64).max(1))
    );
    assert!(metrics.get("initDurationMs").is_none(), "{metrics}");

    let old_names = types(&old.events());
    assert!(
        old_names.contains(&"platform.report".to_string()),
        "{old_names:?}"
    );
    assert!(
        !old_names.iter().any(|n| n.starts_with("platform.restore")),
        "{old_names:?}"
    );
    let old_report = old
        .events()
        .into_iter()
        .find(|e| e["type"] == "platform.report")
        .unwrap();
    assert!(old_report["record"]["metrics"]
        .get("restoreDurationMs")
        .is_none());
    inst.shutdown().await;
}

#[tokio::test]
async fn a_runtime_without_snapstart_support_gets_a_no_op_restore() {
    let s = setup("none", &[], &[]);
    let mut observed = s.function.engine().observe();
    let inst = s
        .function
        .start_instance(None)
        .await
        .expect("init + no-op restore");
    let out = inst.invoke(InvokeRequest::sync("{}")).await.unwrap();
    assert!(matches!(out.result, InvokeResult::Ok(_)));
    let mut restore_done = None;
    while let Ok(o) = observed.try_recv() {
        if let fnbox_engine::Observation::Telemetry(e) = &o.what {
            if let fnbox_engine::telemetry::Event::RuntimeDone {
                phase: fnbox_engine::telemetry::Phase::Restore,
                status,
                ..
            } = &**e
            {
                restore_done = Some(*status);
            }
        }
    }
    assert_eq!(restore_done, Some(Status::Success));
    inst.shutdown().await;
}

#[tokio::test]
async fn a_failing_after_restore_hook_fails_the_restore() {
    let s = setup("fail", &[], &[]);
    let err = s
        .function
        .start_instance(None)
        .await
        .err()
        .expect("restore fails");
    assert!(err.restore && err.attempts == 1, "{err:?}");
    assert_eq!(err.error_type, "Runtime.AfterRestoreError", "{err}");
    assert!(err.message.contains("cannot reconnect"), "{err}");
    let body = String::from_utf8_lossy(err.body.as_deref().unwrap_or_default()).into_owned();
    assert!(
        body.contains("Runtime.AfterRestoreError"),
        "the runtime's body: {body}"
    );
}

#[tokio::test]
async fn after_restore_hooks_have_ten_seconds() {
    let s = setup("slow", &[], &[]);
    let started = tokio::time::Instant::now();
    let err = s
        .function
        .start_instance(None)
        .await
        .err()
        .expect("restore times out");
    let took = started.elapsed();
    assert_eq!(err.error_type, RESTORE_TIMEOUT, "{err}");
    assert_eq!(err.status, Status::Timeout);
    assert!(
        took >= Duration::from_secs(10) && took < Duration::from_secs(14),
        "{took:?}"
    );
}
