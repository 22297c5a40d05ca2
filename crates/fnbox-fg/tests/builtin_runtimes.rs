//! The built-in Python and Node.js event runtimes (`runtime: Python3.x` / `Node.js<ver>`) with
//! real interpreters, through the engine and the FunctionGraph dialect: results, thrown errors,
//! import and syntax errors, the context object, the logger, the initializer, async handlers.
//!
//! Every case runs for both languages (`<case>::python`, `<case>::node`). They need `python3`
//! and `node` on PATH (`.ci/run` installs them).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use fnbox_engine::instance::process::Role;
use fnbox_engine::telemetry::Status;
use fnbox_engine::{Engine, EngineConfig, Function, InitError, InvokeRequest, InvokeResult};
use fnbox_limits::MemoryController;
use fnbox_testkit::{fglog, wait_until, FixturePackage};
use serde_json::Value;
use tokio::time::Instant;

struct Lang {
    name: &'static str,
    runtime: &'static str,
    file: &'static str,
}

const PYTHON: Lang = Lang {
    name: "python",
    runtime: "Python3.9",
    file: "index.py",
};
const NODE: Lang = Lang {
    name: "node",
    runtime: "Node.js20.15",
    file: "index.js",
};

impl Lang {
    fn is_python(&self) -> bool {
        self.name == "python"
    }

    fn pick<'a>(&self, py: &'a str, js: &'a str) -> &'a str {
        if self.is_python() {
            py
        } else {
            js
        }
    }

    /// A package with `index.py` / `index.js` holding the language's source and a
    /// `function.yaml` of this language's runtime plus `extra` config lines.
    fn package(&self, extra: &str, py: &str, js: &str) -> FixturePackage {
        let pkg = FixturePackage::empty(&format!(
            "func_name: {}-fn\nruntime: {}\nhandler: index.handler\n{extra}",
            self.name, self.runtime
        ));
        pkg.write(self.file, self.pick(py, js));
        pkg
    }
}

/// A function whose instances' stdout lines are collected.
struct Harness {
    function: Function,
    stdout: Arc<Mutex<Vec<String>>>,
}

impl Harness {
    fn new(pkg: &FixturePackage) -> Self {
        let package = Arc::new(fnbox_package::load(pkg.path()).expect("fixture package loads"));
        let stdout: Arc<Mutex<Vec<String>>> = Arc::default();
        let sink = stdout.clone();
        let mut config = EngineConfig::new(MemoryController::detect());
        config.host_path = std::env::var("PATH").ok();
        config.echo = Some(Arc::new(
            move |_pod: &str, lines: &[fnbox_engine::instance::process::LogLine]| {
                for line in lines {
                    if *line.role == Role::Runtime {
                        sink.lock().unwrap().push(line.text.clone());
                    }
                }
            },
        ));
        let function = Function::new(
            Engine::new(config),
            package,
            Arc::new(fnbox_fg::FunctionGraph),
        )
        .expect("interpreter on PATH");
        Self { function, stdout }
    }

    fn lines(&self) -> Vec<String> {
        self.stdout.lock().unwrap().clone()
    }
}

fn ok_json(result: &InvokeResult) -> Value {
    match result {
        InvokeResult::Ok(b) => serde_json::from_slice(b)
            .unwrap_or_else(|e| panic!("result is not JSON ({e}): {}", String::from_utf8_lossy(b))),
        other => panic!("expected a response, got {other:?}"),
    }
}

fn handler_error(result: &InvokeResult) -> Value {
    match result {
        InvokeResult::HandlerError(b) => serde_json::from_slice(b).expect("error body is JSON"),
        other => panic!("expected a handler error, got {other:?}"),
    }
}

/// The init error's message plus the body the runtime posted (its stack trace).
fn init_error_text(err: &InitError) -> String {
    let body = err
        .body
        .as_ref()
        .map(|b| String::from_utf8_lossy(b).into_owned())
        .unwrap_or_default();
    format!("{}\n{}", err.message, body)
}

macro_rules! both_languages {
    ($($case:ident),* $(,)?) => {$(
        mod $case {
            #[tokio::test]
            async fn python() {
                super::$case(&super::PYTHON).await
            }
            #[tokio::test]
            async fn node() {
                super::$case(&super::NODE).await
            }
        }
    )*};
}

both_languages!(
    result,
    thrown_error_keeps_the_instance,
    import_error_fails_the_init,
    syntax_error_fails_the_init,
    context_values,
    logger_lines,
    logger_levels,
    error_line_keeps_its_place,
    initializer_runs_once,
    initializer_failure_fails_the_init,
    initializer_timeout_fails_the_init,
    async_handlers,
);

async fn result(lang: &Lang) {
    let pkg = lang.package(
        "",
        r#"
def handler(event, context):
    if event.get("asString"):
        return "plain text"
    return {"echo": event, "lang": "python"}
"#,
        r#"
exports.handler = async (event, context) => {
  if (event.asString) return 'plain text';
  return { echo: event, lang: 'node' };
};
"#,
    );
    let h = Harness::new(&pkg);
    let inst = h.function.start_instance(None).await.expect("init");
    let pid = inst.runtime_pid();
    for i in 0..3 {
        let out = inst
            .invoke(InvokeRequest::sync(format!(r#"{{"n":{i},"s":"ü"}}"#)))
            .await
            .unwrap();
        assert_eq!(
            ok_json(&out.result),
            serde_json::json!({"echo": {"n": i, "s": "ü"}, "lang": lang.name})
        );
    }
    let out = inst
        .invoke(InvokeRequest::sync(r#"{"asString":true}"#))
        .await
        .unwrap();
    assert_eq!(
        out.result,
        InvokeResult::Ok(bytes::Bytes::from_static(b"plain text")),
        "strings are returned as they are"
    );
    assert_eq!(
        inst.runtime_pid(),
        pid,
        "one process served every invocation"
    );
    inst.shutdown().await;
}

async fn thrown_error_keeps_the_instance(lang: &Lang) {
    let pkg = lang.package(
        "",
        r#"
def fail(message):
    raise ValueError(message)


def handler(event, context):
    if "boom" in event:
        fail("boom: " + event["boom"])
    return "fine"
"#,
        r#"
function fail(message) {
  throw new TypeError(message);
}
exports.handler = async (event) => {
  if (event.boom) fail('boom: ' + event.boom);
  return 'fine';
};
"#,
    );
    let h = Harness::new(&pkg);
    let inst = h.function.start_instance(None).await.expect("init");
    let pid = inst.runtime_pid();
    let out = inst
        .invoke(InvokeRequest::sync(r#"{"boom":"x"}"#))
        .await
        .unwrap();
    let err = handler_error(&out.result);
    assert_eq!(
        err["errorType"],
        lang.pick("ValueError", "TypeError"),
        "{err}"
    );
    assert_eq!(err["errorMessage"], "boom: x");
    let stack: Vec<String> = err["stackTrace"]
        .as_array()
        .expect("stackTrace is an array")
        .iter()
        .map(|l| l.as_str().unwrap().to_string())
        .collect();
    assert!(
        stack.iter().any(|l| l.contains(lang.file)),
        "the user's file is in the stack: {stack:?}"
    );
    assert!(
        stack.iter().any(|l| l.contains("fail")),
        "the user's frames are in the stack: {stack:?}"
    );
    assert!(
        !stack.iter().any(|l| l.contains("fnbox_runtime")),
        "runtime frames are removed: {stack:?}"
    );
    assert_eq!(
        out.error_type.as_deref(),
        Some(lang.pick("ValueError", "TypeError"))
    );

    assert!(
        inst.can_accept(),
        "a thrown error leaves the instance ready"
    );
    let out = inst.invoke(InvokeRequest::sync("{}")).await.unwrap();
    assert_eq!(
        out.result,
        InvokeResult::Ok(bytes::Bytes::from_static(b"fine"))
    );
    assert_eq!(inst.runtime_pid(), pid, "same process after the error");
    inst.shutdown().await;
}

async fn import_error_fails_the_init(lang: &Lang) {
    let pkg = lang.package(
        "",
        "import json\nimport no_such_module_fnbox\n\n\ndef handler(event, context):\n    return 1\n",
        "'use strict';\nconst missing = require('no-such-module-fnbox');\nexports.handler = async () => missing;\n",
    );
    let h = Harness::new(&pkg);
    let err = h
        .function
        .start_instance(None)
        .await
        .err()
        .expect("init must fail");
    assert_eq!(err.error_type, "Runtime.ImportModuleError", "{err}");
    assert_eq!(err.status, Status::Error);
    assert_eq!(err.attempts, 3);
    let text = init_error_text(&err);
    assert!(
        err.message
            .contains(lang.pick("no_such_module_fnbox", "no-such-module-fnbox")),
        "the missing module is named: {}",
        err.message
    );
    assert!(text.contains(lang.file), "the user's file is shown: {text}");
}

async fn syntax_error_fails_the_init(lang: &Lang) {
    let pkg = lang.package(
        "",
        "def handler(event, context)\n    return 1\n",
        "exports.handler = async (event) => {\n  return {a: 1;\n};\n",
    );
    let h = Harness::new(&pkg);
    let err = h
        .function
        .start_instance(None)
        .await
        .err()
        .expect("init must fail");
    assert_eq!(err.error_type, "Runtime.UserCodeSyntaxError", "{err}");
    assert_eq!(err.status, Status::Error);
    let text = init_error_text(&err);
    assert!(
        err.message.to_lowercase().contains("syntax"),
        "{}",
        err.message
    );
    assert!(text.contains(lang.file), "the user's file is shown: {text}");
    if lang.is_python() {
        assert!(text.contains("line 1"), "the line is shown: {text}");
    } else {
        assert!(text.contains(":2"), "the line is shown: {text}");
    }
}

async fn context_values(lang: &Lang) {
    let pkg = lang.package(
        "memory_size: 256\ntimeout: 5\nuser_data:\n  COLOR: blue\n",
        r#"
import time


def handler(event, context):
    r1 = context.getRemainingTimeInMilliSeconds()
    time.sleep(0.3)
    r2 = context.getRemainingTimeInMilliSeconds()
    return {
        "r1": r1, "r2": r2,
        "color": context.getUserData("COLOR"),
        "missing": context.getUserData("NOPE"),
        "fallback": context.getUserData("NOPE", "dflt"),
        "memory": context.getMemorySize(),
        "cpu": context.getCPUNumber(),
        "running": context.getRunningTimeInSeconds(),
        "requestId": context.getRequestID(),
        "name": context.getFunctionName(),
        "version": context.getVersion(),
        "package": context.getPackage(),
        "project": context.getProjectID(),
        "credentials": [context.getAccessKey(), context.getSecretKey(), context.getSecurityAccessKey(),
                        context.getSecuritySecretKey(), context.getSecurityToken(), context.getToken()],
    }
"#,
        r#"
exports.handler = async (event, context) => {
  const r1 = context.getRemainingTimeInMilliSeconds();
  await new Promise((resolve) => setTimeout(resolve, 300));
  const r2 = context.getRemainingTimeInMilliSeconds();
  return {
    r1, r2,
    color: context.getUserData('COLOR'),
    missing: context.getUserData('NOPE') ?? null,
    fallback: context.getUserData('NOPE', 'dflt'),
    memory: context.getMemorySize(),
    cpu: context.getCPUNumber(),
    running: context.getRunningTimeInSeconds(),
    requestId: context.getRequestID(),
    name: context.getFunctionName(),
    version: context.getVersion(),
    package: context.getPackage(),
    project: context.getProjectID(),
    credentials: [context.getAccessKey(), context.getSecretKey(), context.getSecurityAccessKey(),
                  context.getSecuritySecretKey(), context.getSecurityToken(), context.getToken()],
  };
};
"#,
    );
    let h = Harness::new(&pkg);
    let inst = h.function.start_instance(None).await.expect("init");
    let req = InvokeRequest::sync("{}");
    let id = req.request_id.clone();
    let v = ok_json(&inst.invoke(req).await.unwrap().result);
    let (r1, r2) = (v["r1"].as_i64().unwrap(), v["r2"].as_i64().unwrap());
    assert!(
        r1 <= 5000 && r1 > 4000,
        "remaining time starts near the 5 s timeout: {r1}"
    );
    assert!(
        r2 < r1 && r1 - r2 >= 250,
        "remaining time decreases during the invocation: {r1} then {r2}"
    );
    assert_eq!(v["color"], "blue");
    assert_eq!(v["missing"], Value::Null);
    assert_eq!(v["fallback"], "dflt");
    assert_eq!(v["memory"], 256);
    assert_eq!(v["cpu"], 400, "millicores: 200 + 256/128 × 100");
    assert_eq!(v["running"], 5);
    assert_eq!(v["requestId"], id.as_str());
    assert_eq!(v["name"], format!("{}-fn", lang.name));
    assert_eq!(v["version"], "latest");
    assert_eq!(v["package"], "default");
    assert_eq!(v["project"], "local");
    assert_eq!(
        v["credentials"],
        serde_json::json!(["", "", "", "", "", ""])
    );
    inst.shutdown().await;
}

async fn logger_lines(lang: &Lang) {
    let pkg = lang.package(
        "",
        r#"
def handler(event, context):
    log = context.getLogger()
    log.info("hello %s %d", "world", 42)
    log.warn("careful")
    log.error("two\nlines")
    return "logged"
"#,
        r#"
exports.handler = async (event, context) => {
  const log = context.getLogger();
  log.info('hello %s %d', 'world', 42);
  log.warn('careful');
  log.error('two\nlines');
  return 'logged';
};
"#,
    );
    let h = Harness::new(&pkg);
    let inst = h.function.start_instance(None).await.expect("init");
    let req = InvokeRequest::sync("{}");
    let id = req.request_id.clone();
    let out = inst.invoke(req).await.unwrap();
    assert_eq!(
        out.result,
        InvokeResult::Ok(bytes::Bytes::from_static(b"logged"))
    );
    let mine = |h: &Harness| {
        h.lines()
            .into_iter()
            .filter(|l| l.contains(&id))
            .collect::<Vec<_>>()
    };
    assert!(
        wait_until(Duration::from_secs(3), || mine(&h).len() >= 3).await,
        "three logger lines: {:?}",
        h.lines()
    );
    let lines = mine(&h);
    let expected = [
        ("INFO", "hello world 42"),
        ("WARN", "careful"),
        ("ERROR", "two\rlines"),
    ];
    assert_eq!(lines.len(), 3, "{lines:?}");
    // FunctionGraph's documented logger line, byte for byte apart from id and time (second
    // precision: `2026-03-17T10:13:22Z <id> INFO …`).
    for (line, (level, message)) in lines.iter().zip(expected) {
        assert_eq!(
            fglog::shape(line, &id),
            fglog::shape(
                &fglog::doc_logger_line(level, message),
                fglog::DOC_REQUEST_ID
            ),
            "{line:?}"
        );
    }
    assert!(
        out.log.iter().any(|l| l.contains("hello world 42")),
        "logger lines are in the invocation's log tail: {:?}",
        out.log
    );
    inst.shutdown().await;
}

/// `RUNTIME_LOG_LEVEL` sets the logger's first level, `setLevel` changes it; ERROR always prints.
async fn logger_levels(lang: &Lang) {
    let pkg = lang.package(
        "user_data:\n  RUNTIME_LOG_LEVEL: warn\n",
        r#"
def handler(event, context):
    log = context.getLogger()
    log.debug("d1")
    log.info("i1")
    log.warn("w1")
    log.error("e1")
    log.setLevel("DEBUG")
    log.debug("d2")
    log.info("i2")
    log.setLevel("ERROR")
    log.warn("w3")
    log.error("e3")
    log.setLevel("nonsense")
    log.info("i4")
    return "ok"
"#,
        r#"
exports.handler = async (event, context) => {
  const log = context.getLogger();
  log.debug('d1');
  log.info('i1');
  log.warn('w1');
  log.error('e1');
  log.setLevel('DEBUG');
  log.debug('d2');
  log.info('i2');
  log.setLevel('ERROR');
  log.warn('w3');
  log.error('e3');
  log.setLevel('nonsense');
  log.info('i4');
  return 'ok';
};
"#,
    );
    let h = Harness::new(&pkg);
    let inst = h.function.start_instance(None).await.expect("init");
    let req = InvokeRequest::sync("{}");
    let id = req.request_id.clone();
    let out = inst.invoke(req).await.unwrap();
    assert_eq!(
        out.result,
        InvokeResult::Ok(bytes::Bytes::from_static(b"ok"))
    );
    let messages = |h: &Harness| {
        h.lines()
            .into_iter()
            .filter(|l| l.contains(&id))
            .map(|l| l.splitn(3, ' ').nth(2).unwrap_or_default().to_string())
            .collect::<Vec<_>>()
    };
    wait_until(Duration::from_secs(3), || messages(&h).len() >= 5).await;
    assert_eq!(
        messages(&h),
        ["WARN w1", "ERROR e1", "DEBUG d2", "INFO i2", "ERROR e3"],
        "{:?}",
        h.lines()
    );
    inst.shutdown().await;
}

/// A thrown error's `[ERROR]` line (stderr) comes after the logger line (stdout) printed before
/// it, every time: stdout and stderr are one stream.
async fn error_line_keeps_its_place(lang: &Lang) {
    let pkg = lang.package(
        "",
        r#"
def handler(event, context):
    context.getLogger().info("before the error %d", event["n"])
    raise ValueError("boom %d" % event["n"])
"#,
        r#"
exports.handler = async (event, context) => {
  context.getLogger().info('before the error %d', event.n);
  throw new Error('boom ' + event.n);
};
"#,
    );
    let h = Harness::new(&pkg);
    let inst = h.function.start_instance(None).await.expect("init");
    for n in 0..20 {
        let out = inst
            .invoke(InvokeRequest::sync(format!(r#"{{"n":{n}}}"#)))
            .await
            .unwrap();
        assert!(matches!(out.result, InvokeResult::HandlerError(_)));
        let before = out
            .log
            .iter()
            .position(|l| l.ends_with(&format!("INFO before the error {n}")));
        let error = out
            .log
            .iter()
            .position(|l| l.starts_with("[ERROR]") && l.contains(&format!("boom {n}")));
        match (before, error) {
            (Some(b), Some(e)) => assert!(b < e, "logger line first: {:?}", out.log),
            _ => panic!("both lines in the log: {:?}", out.log),
        }
    }
    inst.shutdown().await;
}

const COUNTER_PY: &str = r#"
import os
import time

COUNTER = os.path.join(os.environ["RUNTIME_CODE_ROOT"], "init_count")


def count():
    with open(COUNTER) as f:
        return len(f.read().splitlines())


def init(context):
    with open(COUNTER, "a") as f:
        f.write("%s\n" % context.getRequestID())
    mode = context.getUserData("MODE", "ok")
    if mode == "fail":
        raise RuntimeError("init broke")
    if mode == "slow":
        time.sleep(5)


def handler(event, context):
    return {"initRuns": count()}
"#;

const COUNTER_JS: &str = r#"
const fs = require('fs');
const path = require('path');
const COUNTER = path.join(process.env.RUNTIME_CODE_ROOT, 'init_count');
const count = () => fs.readFileSync(COUNTER, 'utf8').split('\n').filter((l) => l).length;

// Callback style (two parameters), as in FunctionGraph's Node.js initializer sample.
exports.init = (context, callback) => {
  fs.appendFileSync(COUNTER, context.getRequestID() + '\n');
  const mode = context.getUserData('MODE', 'ok');
  if (mode === 'fail') return callback(new Error('init broke'));
  if (mode === 'slow') return setTimeout(() => callback(null), 5000);
  callback(null);
};

exports.handler = async () => ({ initRuns: count() });
"#;

fn init_count(pkg: &FixturePackage) -> usize {
    std::fs::read_to_string(pkg.path().join("init_count"))
        .map(|s| s.lines().count())
        .unwrap_or(0)
}

async fn initializer_runs_once(lang: &Lang) {
    let pkg = lang.package(
        "initializer_handler: index.init\ninitializer_timeout: 3\n",
        COUNTER_PY,
        COUNTER_JS,
    );
    let h = Harness::new(&pkg);
    let inst = h.function.start_instance(None).await.expect("init");
    for _ in 0..3 {
        let v = ok_json(&inst.invoke(InvokeRequest::sync("{}")).await.unwrap().result);
        assert_eq!(v["initRuns"], 1, "the handler sees one initializer run");
    }
    assert_eq!(
        init_count(&pkg),
        1,
        "the initializer ran once for three invocations"
    );
    inst.shutdown().await;
}

async fn initializer_failure_fails_the_init(lang: &Lang) {
    let pkg = lang.package(
        "initializer_handler: index.init\ninitializer_timeout: 3\nuser_data:\n  MODE: fail\n",
        COUNTER_PY,
        COUNTER_JS,
    );
    let h = Harness::new(&pkg);
    let err = h
        .function
        .start_instance(None)
        .await
        .err()
        .expect("init must fail");
    assert_eq!(err.status, Status::Error, "{err}");
    assert_eq!(err.error_type, lang.pick("RuntimeError", "Error"));
    assert!(err.message.contains("init broke"), "{}", err.message);
    assert_eq!(err.attempts, 3);
    assert_eq!(
        init_count(&pkg),
        3,
        "three fresh instances tried the initializer"
    );
}

async fn initializer_timeout_fails_the_init(lang: &Lang) {
    let pkg = lang.package(
        "initializer_handler: index.init\ninitializer_timeout: 1\nuser_data:\n  MODE: slow\n",
        COUNTER_PY,
        COUNTER_JS,
    );
    let h = Harness::new(&pkg);
    let started = Instant::now();
    let err = h
        .function
        .start_instance(None)
        .await
        .err()
        .expect("init must fail");
    let elapsed = started.elapsed();
    assert_eq!(err.status, Status::Timeout, "{err}");
    assert_eq!(err.error_type, "Sandbox.Timedout");
    assert!(err.message.contains("1s"), "{}", err.message);
    assert_eq!(err.attempts, 3);
    assert_eq!(init_count(&pkg), 3);
    // The initializer's own 1 s deadline ended each attempt (the message names it), not the
    // 5 s sleep: three attempts waited at least that long each.
    assert!(elapsed >= Duration::from_secs(3), "{elapsed:?}");
}

async fn async_handlers(lang: &Lang) {
    let pkg = lang.package(
        "",
        r#"
import asyncio


async def handler(event, context):
    await asyncio.sleep(0.05)
    if event.get("fail"):
        raise LookupError("async-fail")
    return {"style": "async", "id": context.getRequestID()}


async def helper():
    return 1
"#,
        r#"
exports.handler = async (event, context) => {
  await new Promise((resolve) => setTimeout(resolve, 50));
  if (event.fail) throw new RangeError('async-fail');
  return { style: 'async', id: context.getRequestID() };
};

exports.callback = (event, context, callback) => {
  setTimeout(() => {
    if (event.fail) callback(new RangeError('callback-fail'));
    else callback(null, { style: 'callback', id: context.getRequestID() });
  }, 50);
};
"#,
    );
    let h = Harness::new(&pkg);
    let inst = h.function.start_instance(None).await.expect("init");
    let req = InvokeRequest::sync("{}");
    let id = req.request_id.clone();
    assert_eq!(
        ok_json(&inst.invoke(req).await.unwrap().result),
        serde_json::json!({"style": "async", "id": id})
    );
    let err = handler_error(
        &inst
            .invoke(InvokeRequest::sync(r#"{"fail":true}"#))
            .await
            .unwrap()
            .result,
    );
    assert_eq!(err["errorType"], lang.pick("LookupError", "RangeError"));
    assert_eq!(err["errorMessage"], "async-fail");
    assert!(inst.can_accept());
    inst.shutdown().await;

    if !lang.is_python() {
        // Callback style: `handler(event, context, callback)`.
        std::fs::write(
            pkg.path().join("function.yaml"),
            "func_name: node-fn\nruntime: Node.js20.15\nhandler: index.callback\n",
        )
        .unwrap();
        let h = Harness::new(&pkg);
        let inst = h.function.start_instance(None).await.expect("init");
        let req = InvokeRequest::sync("{}");
        let id = req.request_id.clone();
        assert_eq!(
            ok_json(&inst.invoke(req).await.unwrap().result),
            serde_json::json!({"style": "callback", "id": id})
        );
        let err = handler_error(
            &inst
                .invoke(InvokeRequest::sync(r#"{"fail":true}"#))
                .await
                .unwrap()
                .result,
        );
        assert_eq!(err["errorType"], "RangeError");
        assert_eq!(err["errorMessage"], "callback-fail");
        inst.shutdown().await;
    }
}

/// The built-in Python runtime writes no `__pycache__` into the function's code directory
/// (read-only on the platforms), even when the handler imports a module of its own.
#[tokio::test]
async fn python_leaves_no_bytecode_in_the_package() {
    let pkg = PYTHON.package(
        "",
        "import helper\n\ndef handler(event, context):\n    return helper.value()\n",
        "",
    );
    pkg.write("helper.py", "def value():\n    return {'from': 'helper'}\n");
    let h = Harness::new(&pkg);
    let inst = h.function.start_instance(None).await.expect("init");
    let out = inst.invoke(InvokeRequest::sync("{}")).await.unwrap();
    assert_eq!(ok_json(&out.result), serde_json::json!({"from": "helper"}));
    inst.shutdown().await;
    assert!(
        !pkg.path().join("__pycache__").exists(),
        "bytecode was written into the package"
    );
}
