//! Real Lambda clients under fnbox's Lambda dialect (lambda-facts §4.7): functions built on
//! `lambda_runtime`, extensions and a telemetry processor built on `lambda-extension`, and
//! Python handlers run by `awslambdaric`, all from `conformance/` (its own workspace).
//!
//! The programs are located through `FNBOX_CONFORMANCE_BIN` (default
//! `conformance/target/release`) and `FNBOX_CONFORMANCE_PYTHON` (default
//! `conformance/.venv/bin/python`). They are built from crates.io and PyPI by
//! `conformance/run.sh`, so every test here is `#[ignore]`d: `conformance/run.sh` builds them
//! and runs these tests with `--ignored`; run by hand without them, a test fails saying what
//! to build.
//!
//! The telemetry processor listens on the fixed port 9003 (lambda-extension's default), so the
//! tests of this file run one at a time.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use fnbox_engine::telemetry::Event;
use fnbox_engine::{Engine, EngineConfig, Function, InvokeRequest, InvokeResult};
use fnbox_limits::MemoryController;
use serde_json::Value;

static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// A built conformance program; fails, saying how to build it, when missing.
fn program(name: &str) -> PathBuf {
    let dir = std::env::var_os("FNBOX_CONFORMANCE_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join("conformance/target/release"));
    let path = dir.join(name);
    assert!(
        path.is_file(),
        "conformance program {} is missing: build it with conformance/run.sh",
        path.display()
    );
    path
}

/// A Python with awslambdaric; fails, saying how to install it, when missing.
fn python() -> PathBuf {
    let path = std::env::var_os("FNBOX_CONFORMANCE_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join("conformance/.venv/bin/python"));
    let ok = std::process::Command::new(&path)
        .args(["-c", "import awslambdaric"])
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        ok,
        "no python with awslambdaric at {}: install it with conformance/run.sh",
        path.display()
    );
    path
}

/// A package directory plus a directory the programs record into.
struct Pkg {
    dir: tempfile::TempDir,
    out: tempfile::TempDir,
}

impl Pkg {
    fn new(name: &str, extra_config: &str) -> Self {
        let dir = tempfile::Builder::new()
            .prefix("fnbox-conf-")
            .tempdir()
            .unwrap();
        let out = tempfile::Builder::new()
            .prefix("fnbox-conf-out-")
            .tempdir()
            .unwrap();
        std::fs::write(
            dir.path().join("function.yaml"),
            format!(
                "func_name: {name}\ndialect: lambda\nruntime: provided.al2023\ntimeout: 10\n{extra_config}user_data:\n  FNBOX_CONFORMANCE_OUT: {}\n",
                out.path().display()
            ),
        )
        .unwrap();
        Self { dir, out }
    }

    fn add_user_data(&self, key: &str, value: &str) {
        let file = self.dir.path().join("function.yaml");
        let mut text = std::fs::read_to_string(&file).unwrap();
        text.push_str(&format!("  {key}: \"{value}\"\n"));
        std::fs::write(file, text).unwrap();
    }

    fn copy_exec(&self, from: &Path, rel: &str) {
        use std::os::unix::fs::PermissionsExt;
        let to = self.dir.path().join(rel);
        std::fs::create_dir_all(to.parent().unwrap()).unwrap();
        std::fs::copy(from, &to).unwrap();
        std::fs::set_permissions(&to, std::fs::Permissions::from_mode(0o755)).unwrap();
    }

    fn function(&self) -> Function {
        let package = Arc::new(fnbox_package::load(self.dir.path()).expect("package loads"));
        let mut config = EngineConfig::new(MemoryController::detect());
        config.host_path = std::env::var("PATH").ok();
        Function::new(Engine::new(config), package, Arc::new(fnbox_lambda::Lambda))
            .expect("function")
    }

    fn lines(&self, file: &str) -> Vec<Value> {
        std::fs::read_to_string(self.out.path().join(file))
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{file}: {e}: {l}")))
            .collect()
    }
}

fn ok_json(result: &InvokeResult) -> Value {
    match result {
        InvokeResult::Ok(b) => serde_json::from_slice(b)
            .unwrap_or_else(|_| panic!("not JSON: {}", String::from_utf8_lossy(b))),
        other => panic!("expected a response, got {other:?}"),
    }
}

fn error_json(result: &InvokeResult) -> Value {
    match result {
        InvokeResult::HandlerError(b) => serde_json::from_slice(b).unwrap(),
        other => panic!("expected a handler error, got {other:?}"),
    }
}

/// #1 + #6 + #7: echo function, INVOKE/SHUTDOWN extension, telemetry processor.
#[tokio::test]
#[ignore = "needs the conformance programs: run conformance/run.sh"]
async fn lambda_runtime_function_with_extension_and_telemetry_processor() {
    let _serial = SERIAL.lock().await;
    let (echo, ext, tel) = (
        program("echo"),
        program("ext-events"),
        program("ext-telemetry"),
    );
    let pkg = Pkg::new("conf-echo", "");
    pkg.add_user_data("EXT_INVOKE_DELAY_MS", "300");
    pkg.copy_exec(&echo, "bootstrap");
    pkg.copy_exec(&ext, "extensions/ext-events");
    pkg.copy_exec(&tel, "extensions/ext-telemetry");
    let f = pkg.function();
    let inst = f.start_instance(None).await.expect("init");
    let mut ids = Vec::new();
    for i in 0..3 {
        let req = InvokeRequest::sync(format!("{{\"n\":{i}}}"));
        let started = tokio::time::Instant::now();
        let out = inst.invoke(req.clone()).await.unwrap();
        let v = ok_json(&out.result);
        assert_eq!(v["echo"], serde_json::json!({"n": i}));
        assert_eq!(v["requestId"], req.request_id);
        assert_eq!(
            v["invokedFunctionArn"],
            "arn:aws:lambda:us-east-1:000000000000:function:conf-echo"
        );
        assert_eq!(v["functionName"], "conf-echo");
        assert_eq!(v["memory"], 128);
        assert_eq!(v["version"], "$LATEST");
        assert_eq!(v["logGroup"], "/aws/lambda/conf-echo");
        assert!(
            v["xrayTraceId"].as_str().unwrap().starts_with("Root=1-"),
            "{v}"
        );
        assert!(v["deadlineMs"].as_u64().unwrap() > 1_600_000_000_000);
        assert!(
            started.elapsed() >= Duration::from_millis(300),
            "the invocation waits for the extension's next event/next"
        );
        ids.push(req.request_id);
    }
    inst.shutdown().await;

    let events = pkg.lines("ext-events.jsonl");
    let kinds: Vec<&str> = events
        .iter()
        .map(|e| e["event"].as_str().unwrap())
        .collect();
    assert_eq!(
        kinds,
        ["REGISTERED", "INVOKE", "INVOKE", "INVOKE", "SHUTDOWN"],
        "{events:#?}"
    );
    assert_eq!(events[0]["functionName"], "conf-echo");
    assert_eq!(events[0]["functionVersion"], "$LATEST");
    assert_eq!(events[0]["accountId"], "000000000000");
    for (e, id) in events[1..4].iter().zip(&ids) {
        assert_eq!(e["requestId"], *id);
        assert!(e["deadlineMs"].is_u64());
        assert_eq!(
            e["invokedFunctionArn"],
            "arn:aws:lambda:us-east-1:000000000000:function:conf-echo"
        );
        assert_eq!(e["tracing"]["type"], "X-Amzn-Trace-Id");
    }
    assert_eq!(events[4]["shutdownReason"], "spindown");
    assert!(events[4]["deadlineMs"].is_u64());

    // Every batch the strict processor accepted was recorded; a rejected batch would leave a
    // gap and a platform.logsDropped notice.
    let batches = pkg.lines("telemetry.jsonl");
    let all: Vec<Value> = batches
        .iter()
        .flat_map(|b| b.as_array().unwrap().clone())
        .collect();
    let types: Vec<&str> = all.iter().map(|e| e["type"].as_str().unwrap()).collect();
    assert!(!types.contains(&"platform.logsDropped"), "{types:?}");
    let platform: Vec<&str> = types
        .iter()
        .copied()
        .filter(|t| t.starts_with("platform."))
        .collect();
    let mut want = vec![
        "platform.initStart",
        "platform.telemetrySubscription",
        "platform.initRuntimeDone",
        "platform.extension",
        "platform.extension",
        "platform.initReport",
    ];
    for _ in 0..3 {
        want.extend(["platform.start", "platform.runtimeDone", "platform.report"]);
    }
    assert_eq!(platform, want, "{all:#?}");
    let reports: Vec<&Value> = all
        .iter()
        .filter(|e| e["type"] == "platform.report")
        .collect();
    for (r, id) in reports.iter().zip(&ids) {
        let m = &r["record"]["metrics"];
        assert_eq!(r["record"]["requestId"], *id);
        assert_eq!(r["record"]["status"], "success");
        assert!(
            m["billedDurationMs"].is_u64()
                && m["memorySizeMB"] == 128
                && m["maxMemoryUsedMB"].is_u64(),
            "{m}"
        );
        assert!(
            m["durationMs"].as_f64().unwrap() >= 300.0,
            "report covers the extension: {m}"
        );
    }
    assert!(reports[0]["record"]["metrics"]["initDurationMs"].is_f64());
    assert!(reports[1]["record"]["metrics"]
        .get("initDurationMs")
        .is_none());
    let function_lines: Vec<&str> = all
        .iter()
        .filter(|e| e["type"] == "function")
        .map(|e| e["record"].as_str().unwrap())
        .collect();
    for id in &ids {
        assert!(
            function_lines.contains(&format!("echo handling {id}").as_str()),
            "{function_lines:?}"
        );
    }
    let extensions: Vec<&Value> = all
        .iter()
        .filter(|e| e["type"] == "platform.extension")
        .collect();
    // Extensions register concurrently: their platform.extension events come in either order.
    let mut names: Vec<&str> = extensions
        .iter()
        .map(|e| e["record"]["name"].as_str().unwrap())
        .collect();
    names.sort();
    assert_eq!(names, ["ext-events", "ext-telemetry"]);
    let events_ext = extensions
        .iter()
        .find(|e| e["record"]["name"] == "ext-events")
        .unwrap();
    assert_eq!(
        events_ext["record"]["events"],
        serde_json::json!(["INVOKE", "SHUTDOWN"])
    );
    let shutdown = pkg.lines("telemetry-events.jsonl");
    assert_eq!(
        shutdown.first().map(|e| e["shutdownReason"].clone()),
        Some("spindown".into())
    );
}

/// #2: a handler error.
#[tokio::test]
#[ignore = "needs the conformance programs: run conformance/run.sh"]
async fn lambda_runtime_handler_error() {
    let _serial = SERIAL.lock().await;
    let bin = program("error");
    let pkg = Pkg::new("conf-error", "");
    pkg.copy_exec(&bin, "bootstrap");
    let f = pkg.function();
    let inst = f.start_instance(None).await.expect("init");
    for _ in 0..2 {
        let out = inst
            .invoke(InvokeRequest::sync(r#"{"x":1}"#))
            .await
            .unwrap();
        let v = error_json(&out.result);
        assert!(v["errorMessage"].as_str().unwrap().contains("boom"), "{v}");
        assert!(v["errorType"].is_string(), "{v}");
        assert!(inst.can_accept(), "a handler error keeps the instance");
    }
    inst.shutdown().await;
}

/// #3: streaming, with the HTTP-integration prelude and a mid-stream error.
#[tokio::test]
#[ignore = "needs the conformance programs: run conformance/run.sh"]
async fn lambda_runtime_streaming_response() {
    let _serial = SERIAL.lock().await;
    let bin = program("stream");
    let pkg = Pkg::new("conf-stream", "");
    pkg.copy_exec(&bin, "bootstrap");
    let f = pkg.function();
    let inst = f.start_instance(None).await.expect("init");
    let out = inst.invoke(InvokeRequest::sync("{}")).await.unwrap();
    match &out.result {
        InvokeResult::Ok(b) => assert_eq!(&b[..], b"hello streamed world"),
        other => panic!("{other:?}"),
    }
    let out = inst
        .invoke(InvokeRequest::sync(r#"{"fail":true}"#))
        .await
        .unwrap();
    let v = error_json(&out.result);
    assert_eq!(v["errorType"], "Runtime.StreamError");
    assert_eq!(v["errorMessage"], "stream broke");
    inst.shutdown().await;
}

fn python_pkg(name: &str, handler: &str, python: &Path) -> Pkg {
    let pkg = Pkg::new(name, &format!("handler: {handler}\n"));
    pkg.add_user_data("FNBOX_PYTHON", &python.display().to_string());
    let src = repo_root().join("conformance/python");
    for f in ["app.py", "broken.py", "snap.py"] {
        std::fs::copy(src.join(f), pkg.dir.path().join(f)).unwrap();
    }
    pkg.copy_exec(&src.join("bootstrap"), "bootstrap");
    pkg
}

/// #4 + #5: awslambdaric handler, handler error, JSON log lines.
#[tokio::test]
#[ignore = "needs the conformance programs: run conformance/run.sh"]
async fn awslambdaric_handler_error_and_json_logs() {
    let _serial = SERIAL.lock().await;
    let python = python();
    let pkg = python_pkg("conf-py", "app.handler", &python);
    pkg.add_user_data("AWS_LAMBDA_LOG_FORMAT", "JSON");
    let f = pkg.function();
    let inst = f.start_instance(None).await.expect("init");
    let mut seen = inst.api().bus.observe(1000);
    let req = InvokeRequest::sync(r#"{"hello":"py"}"#);
    let out = inst.invoke(req.clone()).await.unwrap();
    let v = ok_json(&out.result);
    assert_eq!(v["echo"], serde_json::json!({"hello": "py"}));
    assert_eq!(v["requestId"], req.request_id);
    assert_eq!(v["functionName"], "conf-py");
    assert_eq!(v["functionVersion"], "$LATEST");
    assert_eq!(v["memoryLimitInMB"], "128");
    assert_eq!(
        v["invokedFunctionArn"],
        "arn:aws:lambda:us-east-1:000000000000:function:conf-py"
    );
    assert!(v["remainingMs"].as_i64().unwrap() > 5000, "{v}");
    assert!(v["traceId"].as_str().unwrap().starts_with("Root=1-"), "{v}");

    let req2 = InvokeRequest::sync(r#"{"raise":true}"#);
    let out = inst.invoke(req2.clone()).await.unwrap();
    let e = error_json(&out.result);
    assert_eq!(e["errorType"], "ValueError");
    assert_eq!(e["errorMessage"], "asked to fail");
    assert_eq!(e["requestId"], req2.request_id);
    assert!(e["stackTrace"].is_array(), "{e}");
    assert_eq!(out.error_type.as_deref(), Some("ValueError"));

    // JSON log format: the handler's logging call is one JSON object per line.
    let mut logs = Vec::new();
    while let Ok(ev) = seen.try_recv() {
        if let Event::Function { line, .. } = &*ev {
            logs.push(line.clone());
        }
    }
    let info = logs
        .iter()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .find(|j| j["message"] == format!("handling {}", req.request_id))
        .unwrap_or_else(|| panic!("no JSON log line in {logs:#?}"));
    assert_eq!(info["level"], "INFO");
    assert_eq!(info["requestId"], req.request_id);
    inst.shutdown().await;
}

/// #4: an import error reaches `/runtime/init/error`, answered 202, and fails the init.
#[tokio::test]
#[ignore = "needs the conformance programs: run conformance/run.sh"]
async fn awslambdaric_import_error_fails_init() {
    let _serial = SERIAL.lock().await;
    let python = python();
    let pkg = python_pkg("conf-pybroken", "broken.handler", &python);
    let f = pkg.function();
    let err = match f.start_instance(None).await {
        Err(e) => e,
        Ok(_) => panic!("init must fail"),
    };
    assert_eq!(err.error_type, "Runtime.ImportModuleError", "{err}");
    assert!(err.message.contains("module_that_does_not_exist"), "{err}");
    let body: Value = serde_json::from_slice(err.body.as_deref().unwrap()).unwrap();
    assert_eq!(body["errorType"], "Runtime.ImportModuleError");
}

/// Issue 18: SnapStart functions in resume-in-place mode with the published clients' hooks.
fn snap_hooks(result: &InvokeResult) -> (Vec<String>, Value) {
    let v = ok_json(result);
    let hooks = v["hooks"]
        .as_array()
        .unwrap_or_else(|| panic!("{v}"))
        .iter()
        .map(|h| h.as_str().unwrap().to_string())
        .collect();
    (hooks, v["initType"].clone())
}

/// awslambdaric + snapshot_restore_py: `@register_before_snapshot` runs before `restore/next`,
/// `@register_after_restore` after it; a failing after-restore hook fails the restore.
#[tokio::test]
#[ignore = "needs the conformance programs: run conformance/run.sh"]
async fn awslambdaric_snapstart_hooks() {
    let _serial = SERIAL.lock().await;
    let python = python();
    let pkg = Pkg::new(
        "conf-pysnap",
        "handler: snap.handler\nsnap_start: PublishedVersions\n",
    );
    pkg.add_user_data("FNBOX_PYTHON", &python.display().to_string());
    let src = repo_root().join("conformance/python");
    std::fs::copy(src.join("snap.py"), pkg.dir.path().join("snap.py")).unwrap();
    pkg.copy_exec(&src.join("bootstrap"), "bootstrap");
    let f = pkg.function();
    let mut observed = f.engine().observe();
    let inst = f.start_instance(None).await.expect("init + restore");
    let out = inst.invoke(InvokeRequest::sync("{}")).await.unwrap();
    let (hooks, init_type) = snap_hooks(&out.result);
    assert_eq!(hooks, ["before_snapshot", "after_restore"]);
    assert_eq!(init_type, "snap-start");
    let mut phases = Vec::new();
    while let Ok(o) = observed.try_recv() {
        if let fnbox_engine::Observation::Telemetry(e) = &o.what {
            if let Event::Report { phase, status, .. } = &**e {
                phases.push(format!("{phase:?}:{}", status.as_str()));
            }
        }
    }
    assert_eq!(
        phases,
        ["Init:success", "Restore:success", "Invoke:success"]
    );
    inst.shutdown().await;

    pkg.add_user_data("SNAP_FAIL", "1");
    let err = match pkg.function().start_instance(None).await {
        Err(e) => e,
        Ok(_) => panic!("a failing after-restore hook must fail the restore"),
    };
    assert!(err.restore, "{err:?}");
    assert_eq!(err.error_type, "Runtime.AfterRestoreError", "{err}");
}

/// lambda_runtime (1.5, `SnapStartResource`): the same protocol from the Rust client.
#[tokio::test]
#[ignore = "needs the conformance programs: run conformance/run.sh"]
async fn lambda_runtime_snapstart_resource() {
    let _serial = SERIAL.lock().await;
    let pkg = Pkg::new("conf-rssnap", "snap_start: PublishedVersions\n");
    pkg.copy_exec(&program("snapstart"), "bootstrap");
    let f = pkg.function();
    let inst = f.start_instance(None).await.expect("init + restore");
    let out = inst.invoke(InvokeRequest::sync("{}")).await.unwrap();
    let (hooks, init_type) = snap_hooks(&out.result);
    assert_eq!(hooks, ["before_snapshot", "after_restore"]);
    assert_eq!(init_type, "snap-start");
    inst.shutdown().await;

    pkg.add_user_data("SNAP_FAIL", "1");
    let err = match pkg.function().start_instance(None).await {
        Err(e) => e,
        Ok(_) => panic!("a failing after_restore must fail the restore"),
    };
    assert!(err.restore, "{err:?}");
    assert_eq!(err.error_type, "Runtime.AfterRestoreError", "{err}");
}
