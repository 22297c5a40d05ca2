//! Extension API and telemetry API through the FunctionGraph dialect, with real processes:
//! event order and exact fields per scenario, log routing, registration and subscription rules,
//! and delivery that never slows a function down.
//!
//! The extensions here are bash scripts that register and subscribe; the test process itself
//! serves the extension's invoke listener (127.0.0.1:8081) and the telemetry listener. Those
//! ports are fixed by FunctionGraph, so the tests of this file run one at a time.

use std::sync::Arc;
use std::time::Duration;

use fnbox_engine::{Engine, EngineConfig, Function, InvokeRequest, InvokeResult};
use fnbox_limits::MemoryController;
use fnbox_testkit::{http, wait_until, Behaviour, FixturePackage, Listener};
use serde_json::Value;
use tokio::time::Instant;

static PORTS: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

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

/// An extension that registers on 8081, subscribes `types` to `uri` with `extra` JSON members,
/// prints one marked and one unmarked line, then idles.
fn extension(uri: &str, types: &str, extra: &str) -> String {
    format!(
        r#"{http}
register extensionTest.sh 127.0.0.1:8081
echo "$STATUS" > "$RUNTIME_CODE_ROOT/register.status"
subscribe '{{"subscriber":{{"protocol":"POST","uri":"{uri}"}},"types":{types}{extra}}}'
echo "$STATUS $BODY" > "$RUNTIME_CODE_ROOT/subscribe.status"
echo "[Extension] extension ready"
echo "an unmarked extension line"
while :; do sleep 0.2; done
"#,
        http = fnbox_testkit::BASH_HTTP
    )
}

const ALL: &str = r#"["platform","function","extension"]"#;

/// A package with the telemetry extension and a runtime `body`.
fn package(runtime: &str, config: &str, uri: &str, extra: &str) -> FixturePackage {
    let pkg = FixturePackage::bash(&format!("func_name: telem\n{config}"), runtime);
    pkg.write("extension/extensionTest.sh", &extension(uri, ALL, extra));
    pkg
}

const MARKED: &str = r#"
while next; do
  echo "[Function] handling $REQUEST_ID"
  echo "plain line, not telemetry"
  case "$BODY" in
    *boom*) fail "$REQUEST_ID" '{"errorType":"ValueError","errorMessage":"boom"}' ;;
    *) respond "$REQUEST_ID" '"ok"' ;;
  esac
done"#;

fn names(events: &[Value]) -> Vec<String> {
    events
        .iter()
        .map(|e| e["name"].as_str().unwrap_or_default().to_string())
        .collect()
}

fn keys(v: &Value) -> Vec<String> {
    let mut k: Vec<String> = v.as_object().unwrap().keys().cloned().collect();
    k.sort();
    k
}

fn find<'a>(events: &'a [Value], name: &str, trace: &str) -> &'a Value {
    events
        .iter()
        .find(|e| e["name"] == name && e["traceId"] == trace)
        .unwrap_or_else(|| panic!("no {name} for {trace} in {:#?}", names(events)))
}

fn is_time(v: &Value) -> bool {
    let s = v.as_str().unwrap_or_default();
    chrono_like(s)
}

/// `2023-02-01T00:03:50.000Z`
fn chrono_like(s: &str) -> bool {
    s.len() == 24 && s.ends_with('Z') && s.as_bytes()[10] == b'T' && s.as_bytes()[19] == b'.'
}

fn assert_report(report: &Value, status: &str, error_type: Option<&str>) {
    let mut want = vec![
        "endTime",
        "metrics",
        "name",
        "startTime",
        "status",
        "traceId",
    ];
    if error_type.is_some() {
        want.push("errorType");
    }
    want.sort();
    assert_eq!(keys(report), want, "{report}");
    assert_eq!(report["status"], status);
    assert_eq!(report["errorType"].as_str(), error_type);
    assert!(
        is_time(&report["startTime"]) && is_time(&report["endTime"]),
        "{report}"
    );
    let m = &report["metrics"];
    assert_eq!(
        keys(m),
        vec![
            "billingDurationMS",
            "durationMs",
            "memorySize",
            "memoryUsed",
            "podName"
        ]
    );
    assert!(m["durationMs"].as_f64().unwrap() > 0.0);
    assert!(m["billingDurationMS"].is_u64() && m["billingDurationMS"].as_u64().unwrap() >= 1);
    assert!(m["memoryUsed"].as_f64().unwrap() >= 0.0);
    assert_eq!(m["memorySize"], 128);
    let pod = m["podName"].as_str().unwrap();
    assert!(
        pod.starts_with("telem-128-") && pod.len() == "telem-128-".len() + 8,
        "{pod}"
    );
}

fn assert_done(done: &Value, status: &str, error_type: Option<&str>) {
    let mut want = vec!["name", "startTime", "status", "traceId"];
    if error_type.is_some() {
        want.push("errorType");
    }
    want.sort();
    assert_eq!(keys(done), want, "{done}");
    assert_eq!(done["status"], status);
    assert_eq!(done["errorType"].as_str(), error_type);
}

#[tokio::test]
async fn cold_start_and_warm_invokes_produce_the_documented_events_in_order() {
    let _ports = PORTS.lock().await;
    let invokes = Listener::start(8081, Behaviour::Ok).await.unwrap();
    let telemetry = Listener::start(8082, Behaviour::Ok).await.unwrap();
    let pkg = package(
        MARKED,
        "",
        "http://127.0.0.1:8082",
        r#","buffering":{"timeoutMs":25}"#,
    );
    let f = function(&pkg);
    let cold = InvokeRequest::sync("{}");
    let cold_id = cold.request_id.clone();
    let inst = f.start_instance(Some(cold_id.clone())).await.expect("init");
    // Init ends when fnbox recorded the registration; the extension writes its status file
    // just after reading the answer.
    let registered = pkg.path().join("register.status");
    assert!(wait_until(Duration::from_secs(10), || registered.exists()).await);
    assert_eq!(std::fs::read_to_string(&registered).unwrap().trim(), "200");
    let subscribed = pkg.path().join("subscribe.status");
    assert!(
        wait_until(Duration::from_secs(5), || std::fs::read_to_string(
            &subscribed
        )
        .is_ok_and(|s| s.starts_with("200")))
        .await
    );
    let mut ids = vec![cold_id.clone()];
    inst.invoke(cold).await.unwrap();
    for _ in 0..2 {
        let req = InvokeRequest::sync("{}");
        ids.push(req.request_id.clone());
        inst.invoke(req).await.unwrap();
    }
    inst.shutdown().await;
    let events = telemetry.events();

    // Init: start, done, report, in that order, traced to the request that caused it.
    let init_start = find(&events, "platform.initStart", &cold_id);
    assert_eq!(keys(init_start), vec!["name", "startTime", "traceId"]);
    assert!(is_time(&init_start["startTime"]));
    assert_done(
        find(&events, "platform.initRuntimeDone", &cold_id),
        "success",
        None,
    );
    assert_report(
        find(&events, "platform.initReport", &cold_id),
        "success",
        None,
    );
    let pos = |name: &str, trace: &str| {
        events
            .iter()
            .position(|e| e["name"] == name && e["traceId"] == trace)
            .unwrap()
    };
    assert!(pos("platform.initStart", &cold_id) < pos("platform.initRuntimeDone", &cold_id));
    assert!(pos("platform.initRuntimeDone", &cold_id) < pos("platform.initReport", &cold_id));

    for id in &ids {
        let start = find(&events, "platform.start", id);
        assert_eq!(keys(start), vec!["name", "startTime", "traceId"]);
        assert_done(find(&events, "platform.runtimeDone", id), "success", None);
        assert_report(find(&events, "platform.report", id), "success", None);
        let log_pos = events
            .iter()
            .position(|e| {
                e["name"] == "function" && e["logs"] == format!("[Function] handling {id}")
            })
            .expect("the function line");
        assert!(pos("platform.initReport", &cold_id) < pos("platform.start", id));
        assert!(pos("platform.start", id) < log_pos && log_pos < pos("platform.runtimeDone", id));
        assert!(pos("platform.runtimeDone", id) < pos("platform.report", id));
        let f = &events[log_pos];
        assert_eq!(keys(f), vec!["logs", "name", "startTime"]);
    }
    // Routing: marked lines only, from the right process.
    assert!(events
        .iter()
        .any(|e| e["name"] == "extension" && e["logs"] == "[Extension] extension ready"));
    assert!(
        !events.iter().any(|e| e["logs"]
            .as_str()
            .is_some_and(|l| l.contains("plain line") || l.contains("unmarked"))),
        "unmarked lines are not telemetry"
    );
    // Every invocation was pushed to the extension.
    let pushes = invokes.events();
    assert_eq!(pushes.len(), 3);
    for (push, id) in pushes.iter().zip(&ids) {
        assert_eq!(push["traceId"], id.as_str());
        assert_eq!(
            push["invokedFunctionUrn"],
            "urn:fss:local:local:function:default:telem:latest"
        );
    }
}

#[tokio::test]
async fn faults_report_their_status_and_error_type() {
    let _ports = PORTS.lock().await;
    let _invokes = Listener::start(8081, Behaviour::Ok).await.unwrap();
    let telemetry = Listener::start(8082, Behaviour::Ok).await.unwrap();
    let extra = r#","buffering":{"timeoutMs":25}"#;

    // Handler error: status error, errorType from the runtime's body; instance survives.
    let pkg = package(MARKED, "", "http://127.0.0.1:8082", extra);
    let f = function(&pkg);
    let inst = f.start_instance(None).await.unwrap();
    let req = InvokeRequest::sync(r#"{"boom":1}"#);
    let id = req.request_id.clone();
    assert!(matches!(
        inst.invoke(req).await.unwrap().result,
        InvokeResult::HandlerError(_)
    ));
    inst.shutdown().await;
    let events = telemetry.events();
    assert_done(
        find(&events, "platform.runtimeDone", &id),
        "error",
        Some("ValueError"),
    );
    assert_report(
        find(&events, "platform.report", &id),
        "error",
        Some("ValueError"),
    );

    // Timeout, then crash: each faulted instance flushes its events before it goes.
    for (runtime, status, error_type) in [
        ("next; sleep 100", "timeout", "Sandbox.Timedout"),
        ("next; exit 1", "failure", "Runtime.ExitError"),
    ] {
        let pkg = package(runtime, "", "http://127.0.0.1:8082", extra);
        let f = function(&pkg);
        let inst = f.start_instance(None).await.unwrap();
        let req = InvokeRequest::sync("{}");
        let id = req.request_id.clone();
        inst.invoke(req).await.unwrap();
        let events = telemetry.events();
        assert_done(
            find(&events, "platform.runtimeDone", &id),
            status,
            Some(error_type),
        );
        assert_report(
            find(&events, "platform.report", &id),
            status,
            Some(error_type),
        );
    }

    // Out of memory (RSS mode works everywhere).
    let hog = r#"next; python3 -c "
import time
c = []
for i in range(60):
    c.append(bytearray(10 * 1024 * 1024)); time.sleep(0.01)
"; respond "$REQUEST_ID" '"survived"'"#;
    let pkg = package(hog, "timeout: 10\n", "http://127.0.0.1:8082", extra);
    let f = function_with(&pkg, MemoryController::rss_sampling("test"));
    let inst = f.start_instance(None).await.unwrap();
    let req = InvokeRequest::sync("{}");
    let id = req.request_id.clone();
    inst.invoke(req).await.unwrap();
    let events = telemetry.events();
    assert_done(
        find(&events, "platform.runtimeDone", &id),
        "failure",
        Some("Runtime.OutOfMemory"),
    );
    assert_report(
        find(&events, "platform.report", &id),
        "failure",
        Some("Runtime.OutOfMemory"),
    );
}

#[tokio::test]
async fn registration_rules_answer_400_with_error_info() {
    let _ports = PORTS.lock().await;
    let _invokes = Listener::start(8081, Behaviour::Ok).await.unwrap();
    // One extension tries every broken registration during init, then registers properly.
    let pkg = FixturePackage::bash(
        "func_name: rules\n",
        "while next; do respond \"$REQUEST_ID\" '\"ok\"'; done",
    );
    pkg.write(
        "extension/extensionRules.sh",
        &format!(
            r#"{http}
try() {{ echo "$1 $STATUS $BODY" >> "$RUNTIME_CODE_ROOT/rules"; }}
register other.sh 127.0.0.1:8081; try not-launched
register extensionRules.sh 127.0.0.1:8011; try port-range
register extensionRules.sh 0.0.0.0:8081; try not-loopback
EXTRA="FunctionGraph-Extension-Name: extensionRules.sh\r\n" http POST /extension/register ''; try no-address
subscribe '{{"subscriber":{{"protocol":"POST","uri":"http://127.0.0.1:8082"}},"types":["platform"]}}'; try subscribe-before-register
register extensionRules.sh 127.0.0.1:8081; try ok
register extensionRules.sh 127.0.0.1:8081; try duplicate
touch "$RUNTIME_CODE_ROOT/a.done"
while :; do sleep 0.2; done
"#,
            http = fnbox_testkit::BASH_HTTP
        ),
    );
    pkg.write(
        "extension/extensionSecond.sh",
        &format!(
            r#"{http}
while [ ! -e "$RUNTIME_CODE_ROOT/a.done" ]; do sleep 0.02; done
register extensionSecond.sh 127.0.0.1:8081; echo "same-port $STATUS $BODY" >> "$RUNTIME_CODE_ROOT/rules"
register extensionSecond.sh 127.0.0.1:8083
while :; do sleep 0.2; done
"#,
            http = fnbox_testkit::BASH_HTTP
        ),
    );
    let f = function(&pkg);
    let inst = f.start_instance(None).await.expect("init");
    let rules = std::fs::read_to_string(pkg.path().join("rules")).unwrap();
    let line = |name: &str| -> (u16, Value) {
        let l = rules
            .lines()
            .find(|l| l.starts_with(&format!("{name} ")))
            .unwrap_or_else(|| panic!("{name} in {rules}"));
        let mut parts = l.splitn(3, ' ');
        parts.next();
        let status = parts.next().unwrap().parse().unwrap();
        (
            status,
            serde_json::from_str(parts.next().unwrap_or("null")).unwrap_or(Value::Null),
        )
    };
    for (name, error_type, words) in [
        ("not-launched", "Extension.InvalidName", "other.sh"),
        ("port-range", "Extension.InvalidAddress", "8081..8090"),
        ("not-loopback", "Extension.InvalidAddress", "127.0.0.1"),
        (
            "no-address",
            "Extension.MissingHeader",
            "FunctionGraph-Extension-Address",
        ),
        (
            "duplicate",
            "Extension.AlreadyRegistered",
            "already registered",
        ),
        ("same-port", "Extension.AddressInUse", "extensionRules.sh"),
    ] {
        let (status, body) = line(name);
        assert_eq!(status, 400, "{name}: {body}");
        assert_eq!(body["errorInfo"]["errorType"], error_type, "{name}: {body}");
        assert!(
            body["errorInfo"]["errorMessage"]
                .as_str()
                .unwrap()
                .contains(words),
            "{name}: {body}"
        );
        assert_eq!(body["functionName"], "rules");
    }
    let (status, body) = line("subscribe-before-register");
    assert_eq!(status, 400);
    assert_eq!(body["errorType"], "Telemetry.NotRegistered");
    let (status, body) = line("ok");
    assert_eq!(status, 200);
    assert_eq!(
        body,
        serde_json::json!({"functionName":"rules","functionVersion":"latest","handler":"index.handler","errorInfo":{"errorType":"","errorMessage":""}})
    );

    // After init: registration is closed; subscriptions follow their rules.
    let addr = inst.api_addr();
    let (status, body) = http::request(
        addr,
        "POST",
        "/extension/register",
        &[
            ("FunctionGraph-Extension-Name", "extensionSecond.sh"),
            ("FunctionGraph-Extension-Address", "127.0.0.1:8084"),
        ],
        "",
    )
    .await
    .map(|r| r.status_text())
    .unwrap();
    assert_eq!(status, 400);
    assert!(body.contains("Extension.RegistrationClosed"), "{body}");
    // A body that is not JSON is refused first, in the register error shape.
    let (status, body) = http::request(
        addr,
        "POST",
        "/extension/register",
        &[
            ("FunctionGraph-Extension-Name", "extensionSecond.sh"),
            ("FunctionGraph-Extension-Address", "127.0.0.1:8084"),
        ],
        "name=extensionSecond.sh",
    )
    .await
    .map(|r| r.status_text())
    .unwrap();
    assert_eq!(status, 400, "{body}");
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        v["errorInfo"]["errorType"],
        "Extension.InvalidRequestFormat"
    );
    assert!(
        v["errorInfo"]["errorMessage"]
            .as_str()
            .unwrap()
            .contains("must be JSON"),
        "{body}"
    );
    let sub = |uri: &str, types: &str| {
        format!(r#"{{"subscriber":{{"protocol":"POST","uri":"{uri}"}},"types":{types}}}"#)
    };
    for (body, error) in [
        (sub("http://127.0.0.1:9999", r#"["platform"]"#), "8081..8090"),
        (sub("http://127.0.0.1:8082", "[]"), "at least one"),
        (sub("http://127.0.0.1:8082", r#"["metrics"]"#), "unknown type"),
        (r#"{"subscriber":{"protocol":"PUT","uri":"http://127.0.0.1:8082"},"types":["platform"]}"#.to_string(), "POST"),
        ("{broken".to_string(), "invalid subscription body"),
        (r#"{"subscriber":{"protocol":"POST","uri":"http://127.0.0.1:8082"},"types":["platform"],"buffering":{"maxBytes":1}}"#.to_string(), "maxBytes"),
    ] {
        let (status, resp) = http::post(addr, "/telemetry", &body).await.unwrap().status_text();
        assert_eq!(status, 400, "{body}: {resp}");
        let v: Value = serde_json::from_str(&resp).unwrap();
        assert_eq!(keys(&v), vec!["errorMessage", "errorType"]);
        assert!(v["errorMessage"].as_str().unwrap().contains(error), "{body}: {resp}");
    }
    // The documented body, trailing comma included; then the same URI again replaces; another URI is refused.
    let doc = r#"{"subscriber": {"protocol": "POST", "uri": "http://127.0.0.1:8082"}, "types": ["platform", "function", "extension"],}"#;
    assert_eq!(
        http::post(addr, "/telemetry", doc).await.unwrap().code(),
        200
    );
    assert_eq!(
        http::post(
            addr,
            "/telemetry",
            sub("http://127.0.0.1:8082", r#"["platform"]"#)
        )
        .await
        .unwrap()
        .code(),
        200
    );
    let (status, resp) = http::post(
        addr,
        "/telemetry",
        sub("http://127.0.0.1:8085", r#"["platform"]"#),
    )
    .await
    .unwrap()
    .status_text();
    assert_eq!(status, 400);
    assert!(resp.contains("Telemetry.AlreadySubscribed"), "{resp}");
    inst.shutdown().await;
}

/// p50 of `n` sequential invocations.
async fn p50(inst: &fnbox_engine::Instance, n: usize) -> Duration {
    let mut d = Vec::with_capacity(n);
    for _ in 0..n {
        let t = Instant::now();
        let out = inst.invoke(InvokeRequest::sync("{}")).await.unwrap();
        assert!(matches!(out.result, InvokeResult::Ok(_)));
        d.push(t.elapsed());
    }
    d.sort();
    d[n / 2]
}

#[tokio::test]
async fn a_slow_dead_or_failing_listener_changes_no_invocation_latency() {
    let _ports = PORTS.lock().await;
    let _invokes = Listener::start(8081, Behaviour::Ok).await.unwrap();
    let extra = r#","buffering":{"timeoutMs":25}"#;

    // Baseline: the same function without a subscriber.
    let pkg = FixturePackage::bash("func_name: telem\n", MARKED);
    let f = function(&pkg);
    let inst = f.start_instance(None).await.unwrap();
    let baseline = p50(&inst, 15).await;
    inst.shutdown().await;

    for (label, port, behaviour) in [
        (
            // Never answers within the test: an invocation that waited for it would hang.
            "stalled (an hour per batch)",
            8082u16,
            Some(Behaviour::Slow(Duration::from_secs(3600))),
        ),
        ("never up", 8083, None),
        ("answers 500", 8084, Some(Behaviour::Status(500))),
    ] {
        let listener = match behaviour {
            Some(b) => Some(Listener::start(port, b).await.unwrap()),
            None => None,
        };
        let pkg = package(MARKED, "", &format!("http://127.0.0.1:{port}"), extra);
        let f = function(&pkg);
        let inst = f.start_instance(None).await.unwrap();
        // Every invocation answers (p50 checks each one's result) while the listener stalls,
        // refuses or fails; the latencies are printed for the reader, not bounded: a bound
        // flakes on a loaded machine, and "did not wait" is what the stalled case shows.
        let with = tokio::time::timeout(Duration::from_secs(60), p50(&inst, 15))
            .await
            .unwrap_or_else(|_| panic!("{label}: invocations waited for the listener"));
        let t = Instant::now();
        tokio::time::timeout(Duration::from_secs(60), inst.shutdown())
            .await
            .unwrap_or_else(|_| panic!("{label}: shutdown waited for the listener"));
        let shutdown = t.elapsed();
        eprintln!(
            "{label}: p50 {with:?} vs {baseline:?} without a subscriber; shutdown {shutdown:?}"
        );
        if let Some(l) = listener {
            if matches!(behaviour, Some(Behaviour::Status(_))) {
                assert!(l.events().is_empty());
            }
        }
    }
}

#[tokio::test]
async fn dropped_records_are_reported_once_the_listener_recovers() {
    let _ports = PORTS.lock().await;
    let _invokes = Listener::start(8081, Behaviour::Ok).await.unwrap();
    let telemetry = Listener::start(8082, Behaviour::Status(500)).await.unwrap();
    let pkg = package(
        MARKED,
        "",
        "http://127.0.0.1:8082",
        r#","buffering":{"timeoutMs":25}"#,
    );
    let f = function(&pkg);
    let inst = f.start_instance(None).await.unwrap();
    for _ in 0..3 {
        inst.invoke(InvokeRequest::sync("{}")).await.unwrap();
    }
    // Every batch so far is retried and given up (3 attempts, 100 ms then 200 ms backoff).
    tokio::time::sleep(Duration::from_millis(1500)).await;
    telemetry.set(Behaviour::Ok);
    let req = InvokeRequest::sync("{}");
    let last = req.request_id.clone();
    inst.invoke(req).await.unwrap();
    assert!(
        wait_until(Duration::from_secs(5), || telemetry.events().iter().any(
            |e| e["name"] == "platform.report" && e["traceId"] == last.as_str()
        ))
        .await
    );
    let events = telemetry.events();
    let dropped: Vec<&Value> = events
        .iter()
        .filter(|e| e["name"] == "platform.logsDropped")
        .collect();
    assert!(
        !dropped.is_empty(),
        "a logsDropped notice arrives: {:?}",
        names(&events)
    );
    let n: u64 = dropped
        .iter()
        .map(|d| d["droppedRecords"].as_u64().unwrap())
        .sum();
    assert!(
        n >= 12,
        "at least the 3 invocations' events were lost: {dropped:?}"
    );
    assert!(
        dropped[0]["reason"].as_str().unwrap().contains("500"),
        "{dropped:?}"
    );
    assert!(is_time(&dropped[0]["startTime"]) && dropped[0]["droppedBytes"].as_u64().unwrap() > 0);
    inst.shutdown().await;
}

#[tokio::test]
async fn a_hundred_thousand_lines_are_delivered_in_order_or_counted_as_dropped() {
    let _ports = PORTS.lock().await;
    let _invokes = Listener::start(8081, Behaviour::Ok).await.unwrap();
    let telemetry = Listener::start(8082, Behaviour::Ok).await.unwrap();
    let runtime = r#"
while next; do
  for ((i = 1; i <= 100000; i++)); do echo "[Function] line $i"; done
  respond "$REQUEST_ID" '"done"'
done"#;
    let pkg = package(runtime, "timeout: 60\n", "http://127.0.0.1:8082", "");
    let f = function(&pkg);
    let inst = f.start_instance(None).await.unwrap();
    let out = inst.invoke(InvokeRequest::sync("{}")).await.unwrap();
    assert!(matches!(out.result, InvokeResult::Ok(_)));
    inst.shutdown().await;
    let events = telemetry.events();
    let lines: Vec<u64> = events
        .iter()
        .filter(|e| e["name"] == "function")
        .filter_map(|e| {
            e["logs"]
                .as_str()?
                .strip_prefix("[Function] line ")?
                .parse()
                .ok()
        })
        .collect();
    assert!(
        lines.windows(2).all(|w| w[0] < w[1]),
        "function lines arrive in order"
    );
    let dropped: u64 = events
        .iter()
        .filter(|e| e["name"] == "platform.logsDropped")
        .map(|e| e["droppedRecords"].as_u64().unwrap())
        .sum();
    eprintln!(
        "delivered {} function lines, {dropped} records reported dropped",
        lines.len()
    );
    assert!(
        lines.len() as u64 + dropped >= 100_000,
        "delivered {} + dropped {dropped} account for every line",
        lines.len()
    );
}
