//! The front door of CONTRACT §6 over real processes, served in-process on 127.0.0.1:0:
//! FunctionGraph paths (URN forms, v0/v1, log tail, errors), Lambda's Invoke path, admin
//! listings, the token, saturation, timeouts, and shutdown with invocations in flight.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use fnbox_engine::{Engine, EngineConfig};
use fnbox_limits::MemoryController;
use fnbox_serve::{FunctionSpec, Registry, Server};
use fnbox_testkit::http::{self, Body};
use fnbox_testkit::{process_alive, wait_until, FixturePackage};
use serde_json::Value;

// ---------------------------------------------------------------------------------------------
// Harness

struct Running {
    addr: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl Running {
    async fn stop(mut self) -> std::io::Result<()> {
        let _ = self.stop.take().unwrap().send(());
        tokio::time::timeout(Duration::from_secs(30), self.task)
            .await
            .expect("shutdown finishes")
            .expect("server task")
    }
}

async fn serve(pkgs: &[&FixturePackage], token: Option<&str>) -> Running {
    let mut config = EngineConfig::new(MemoryController::detect());
    config.host_path = std::env::var("PATH").ok();
    let engine = Engine::new(config);
    let specs: Vec<FunctionSpec> = pkgs
        .iter()
        .map(|p| FunctionSpec::from_arg(p.path()))
        .collect();
    let registry = Registry::load(&engine, &specs).expect("registry loads");
    let server = Server::new(engine, registry, token.map(String::from));
    server.start().await.expect("pools start");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(server.run(listener, async move {
        let _ = rx.await;
    }));
    Running {
        addr,
        stop: Some(tx),
        task,
    }
}

/// A complete answer, as the assertions below read it.
#[derive(Debug)]
struct Resp {
    status: u16,
    headers: http::HeaderMap,
    body: Vec<u8>,
}

impl Resp {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text()))
    }
    fn fss(&self) -> (u16, String, String) {
        let v = self.json();
        assert_eq!(
            v.as_object().map(|o| o.len()),
            Some(2),
            "FSS error body has exactly error_code and error_msg: {v}"
        );
        (
            self.status,
            v["error_code"].as_str().unwrap().to_string(),
            v["error_msg"].as_str().unwrap().to_string(),
        )
    }
    fn decoded(&self, header: &str) -> String {
        let raw = self
            .header(header)
            .unwrap_or_else(|| panic!("no {header}: {self:?}"));
        String::from_utf8(
            base64::engine::general_purpose::STANDARD
                .decode(raw)
                .unwrap(),
        )
        .unwrap()
    }
}

/// One request over a fresh connection (testkit's client); an early answer (413) to a body the
/// server stops reading is still seen.
async fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Body,
) -> Resp {
    let r = http::request(addr, method, path, headers, body)
        .await
        .unwrap_or_else(|e| panic!("{method} {path}: {e}"));
    Resp {
        status: r.code(),
        headers: r.headers,
        body: r.body.to_vec(),
    }
}

async fn post(addr: SocketAddr, path: &str, headers: &[(&str, &str)], body: &str) -> Resp {
    request(addr, "POST", path, headers, body.into()).await
}

async fn get(addr: SocketAddr, path: &str, headers: &[(&str, &str)]) -> Resp {
    request(addr, "GET", path, headers, Body::Empty).await
}

fn fg(urn: &str) -> String {
    format!("/v2/my-project/fgs/functions/{urn}/invocations")
}

fn lambda(name: &str) -> String {
    format!("/2015-03-31/functions/{name}/invocations")
}

// ---------------------------------------------------------------------------------------------
// Fixtures

/// Echoes the event with its pid; prints a log line first. Events containing `boom` fail,
/// `crash` exits the runtime, `hang` sleeps past the timeout, `slow` takes a second, `long` four,
/// `lines`
/// prints 200 long lines.
const ECHO: &str = r#"
while next; do
  case "$BODY" in
    *boom*) echo "about to fail $REQUEST_ID"; sleep 0.1
            fail "$REQUEST_ID" '{"errorType":"ValueError","errorMessage":"boom","stackTrace":["at line 1"]}' ;;
    *crash*) echo "crashing"; exit 3 ;;
    *hang*) sleep 30 ;;
    *slow*) sleep 1; respond "$REQUEST_ID" "{\"slow\":true,\"pid\":$$}" ;;
    *long*) sleep 4; respond "$REQUEST_ID" "{\"long\":true,\"pid\":$$}" ;;
    *lines*) for i in $(seq 1 200); do echo "line-$i-xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"; done; sleep 0.2
             respond "$REQUEST_ID" '"printed"' ;;
    *) echo "handling $REQUEST_ID"; sleep 0.1
       respond "$REQUEST_ID" "{\"echo\":$BODY,\"pid\":$$}" ;;
  esac
done
"#;

/// `extra`: more function.yaml lines (timeout 3 unless given).
fn echo_pkg(name: &str, extra: &str) -> FixturePackage {
    let timeout = if extra.contains("timeout:") {
        ""
    } else {
        "timeout: 3\n"
    };
    FixturePackage::bash(&format!("func_name: {name}\n{timeout}{extra}"), ECHO)
}

// ---------------------------------------------------------------------------------------------
// FunctionGraph

#[tokio::test]
async fn fg_every_urn_form_reaches_the_function() {
    let pkg = echo_pkg("echo", "");
    let s = serve(&[&pkg], None).await;
    for urn in [
        "echo",
        "default:echo",
        "my-project:default:echo",
        "my-project:default:echo:latest",
        "urn:fss:eu-de:my-project:function:default:echo",
        "urn:fss:local:local:function:default:echo:latest",
        "urn%3Afss%3Alocal%3Alocal%3Afunction%3Adefault%3Aecho%3Alatest",
    ] {
        let r = post(s.addr, &fg(urn), &[], r#"{"k":1}"#).await;
        assert_eq!(r.status, 200, "{urn}: {}", r.text());
        assert_eq!(r.json()["echo"], serde_json::json!({"k":1}), "{urn}");
    }
    s.stop().await.unwrap();
}

#[tokio::test]
async fn fg_unknown_function_version_alias_and_malformed_urn() {
    let pkg = echo_pkg("echo", "");
    let s = serve(&[&pkg], None).await;
    let cases = [
        ("nope", 404, "FSS.1051"),
        ("otherpkg:echo", 404, "FSS.1051"),
        (
            "urn:fss:local:local:function:default:nope:latest",
            404,
            "FSS.1051",
        ),
        ("p:default:echo:v2", 404, "FSS.1052"),
        (
            "urn:fss:local:local:function:default:echo:3",
            404,
            "FSS.1052",
        ),
        ("p:default:echo:!prod", 404, "FSS.1053"),
        ("a:b:c:d:e", 400, "FSS.1309"),
        (
            "urn:fss:local:local:function:default:echo:latest:x",
            400,
            "FSS.1309",
        ),
        ("urn:xyz:local:local:function:default:echo", 400, "FSS.1309"),
        ("1bad", 400, "FSS.1309"),
    ];
    for (urn, status, code) in cases {
        let r = post(s.addr, &fg(urn), &[], "{}").await;
        let (st, c, msg) = r.fss();
        assert_eq!((st, c.as_str()), (status, code), "{urn}: {msg}");
        assert_eq!(r.header("content-type"), Some("application/json"));
    }
    let (_, _, msg) = post(s.addr, &fg("nope"), &[], "{}").await.fss();
    assert!(
        msg.contains("nope") && msg.contains("serving: echo"),
        "{msg}"
    );
    s.stop().await.unwrap();
}

#[tokio::test]
async fn fg_v0_and_v1_bodies_and_headers() {
    let pkg = echo_pkg("echo", "");
    let s = serve(&[&pkg], None).await;

    // v0 (absent header): the raw result.
    let r = post(s.addr, &fg("echo"), &[], r#"{"a":[1,2]}"#).await;
    assert_eq!(r.status, 200);
    let v = r.json();
    assert_eq!(v["echo"], serde_json::json!({"a":[1,2]}));
    let id = r
        .header("x-cff-request-id")
        .expect("request id")
        .to_string();
    assert_eq!(id.len(), 36, "a UUID: {id}");
    assert_eq!(r.header("x-cff-response-version"), Some("v0"));
    assert_eq!(r.header("x-is-func-err"), Some("false"));
    assert_eq!(r.header("x-func-err-code"), Some("0"));
    assert_eq!(r.header("content-type"), Some("application/json"));
    assert!(
        r.header("x-cff-function-log").is_none(),
        "no tail unless asked"
    );
    let summary: Value = serde_json::from_str(r.header("x-cff-invoke-summary").unwrap()).unwrap();
    let keys: Vec<&str> = summary
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(keys.len(), 4, "{summary}");
    assert!(summary["duration"].as_f64().unwrap() > 0.0);
    assert_eq!(summary["memorySize"], 128);
    assert!(summary["memoryUsed"].as_f64().is_some());
    let billed = summary["billingDuration"].as_u64().unwrap();
    assert!(billed >= 1);
    assert_eq!(
        r.header("x-cff-billing-duration"),
        Some(billed.to_string().as_str())
    );

    // Explicit v0 is the same.
    let r = post(
        s.addr,
        &fg("echo"),
        &[("X-CFF-Request-Version", "v0")],
        "{}",
    )
    .await;
    assert_eq!(
        (r.status, r.header("x-cff-response-version")),
        (200, Some("v0"))
    );

    // v1: wrapped, result as a string.
    let r = post(
        s.addr,
        &fg("echo"),
        &[("X-CFF-Request-Version", "v1")],
        r#"{"b":true}"#,
    )
    .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.header("x-cff-response-version"), Some("v1"));
    let v = r.json();
    assert_eq!(v["request_id"], r.header("x-cff-request-id").unwrap());
    assert_eq!(v["status"], 200);
    assert_eq!(v["log"], "");
    let result: Value =
        serde_json::from_str(v["result"].as_str().expect("result is a string")).unwrap();
    assert_eq!(result["echo"], serde_json::json!({"b":true}));

    // An empty body is the event {}.
    let r = post(s.addr, &fg("echo"), &[], "").await;
    assert_eq!(r.json()["echo"], serde_json::json!({}));

    // A version header that is neither v0 nor v1.
    let r = post(
        s.addr,
        &fg("echo"),
        &[("X-CFF-Request-Version", "v9")],
        "{}",
    )
    .await;
    let (st, code, _) = r.fss();
    assert_eq!((st, code.as_str()), (400, "FSS.0400"));
    s.stop().await.unwrap();
}

#[tokio::test]
async fn fg_log_tail_is_base64_of_the_last_4_kib() {
    let pkg = echo_pkg("echo", "");
    let s = serve(&[&pkg], None).await;
    let r = post(s.addr, &fg("echo"), &[("X-Cff-Log-Type", "tail")], "{}").await;
    assert_eq!(r.status, 200);
    let id = r.header("x-cff-request-id").unwrap().to_string();
    let log = r.decoded("x-cff-function-log");
    // The documented lines, byte for byte apart from ids, times and figures.
    use fnbox_testkit::fglog::{shape, DOC_FINISH, DOC_REQUEST_ID, DOC_START};
    let lines: Vec<&str> = log.lines().collect();
    assert_eq!(
        shape(lines[0], &id),
        shape(DOC_START, DOC_REQUEST_ID),
        "{log}"
    );
    assert!(log.contains(&format!("handling {id}\n")), "{log}");
    assert_eq!(
        shape(lines[lines.len() - 1], &id),
        shape(DOC_FINISH, DOC_REQUEST_ID),
        "{log}"
    );

    // 200 lines of ~60 bytes: only the last 4 KiB come back.
    let r = post(
        s.addr,
        &fg("echo"),
        &[("X-Cff-Log-Type", "tail"), ("X-CFF-Request-Version", "v1")],
        r#"{"lines":1}"#,
    )
    .await;
    assert_eq!(r.status, 200);
    let log = r.decoded("x-cff-function-log");
    assert!(log.len() <= 4096 && log.len() > 3500, "{} bytes", log.len());
    assert!(log.contains("line-200-"), "the last line is kept");
    assert!(!log.contains("line-1-"), "the first line is cut");
    assert!(log
        .trim_end()
        .lines()
        .last()
        .unwrap()
        .contains(" Finish invoke request '"));
    assert_eq!(r.json()["log"], log.as_str(), "v1 carries the same tail");
    s.stop().await.unwrap();
}

#[tokio::test]
async fn fg_oversized_body_is_413_without_reading_it_all() {
    let pkg = echo_pkg("echo", "");
    let s = serve(&[&pkg], None).await;
    let big = vec![b'x'; 6 * 1024 * 1024 + 1];
    let r = request(s.addr, "POST", &fg("echo"), &[], big.clone().into()).await;
    let (st, code, msg) = r.fss();
    assert_eq!((st, code.as_str()), (413, "FSS.0413"), "{msg}");
    // Without Content-Length: refused once the limit is passed.
    let r = request(
        s.addr,
        "POST",
        &fg("echo"),
        &[],
        Body::Chunked(big.clone().into()),
    )
    .await;
    assert_eq!(r.fss().1, "FSS.0413");
    // A large body under the limit goes through.
    let event = format!("{{\"pad\":\"{}\"}}", "y".repeat(256 * 1024));
    let r = post(s.addr, &fg("echo"), &[], &event).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["echo"]["pad"].as_str().unwrap().len(), 256 * 1024);
    s.stop().await.unwrap();
}

#[tokio::test]
async fn fg_handler_error_crash_and_timeout() {
    let pkg = echo_pkg("echo", "");
    let s = serve(&[&pkg], None).await;

    let r = post(s.addr, &fg("echo"), &[], r#"{"boom":1}"#).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.header("x-is-func-err"), Some("true"));
    assert!(r.header("x-func-err-code").is_none());
    assert_eq!(r.json()["errorType"], "ValueError");
    assert_eq!(r.json()["errorMessage"], "boom");

    // A handler error in v1 is wrapped like a result.
    let r = post(
        s.addr,
        &fg("echo"),
        &[("X-CFF-Request-Version", "v1")],
        r#"{"boom":1}"#,
    )
    .await;
    assert_eq!(r.header("x-is-func-err"), Some("true"));
    assert!(r.json()["result"].as_str().unwrap().contains("ValueError"));

    // A crash: 200, X-Is-Func-Err, the fault's error body; the next call gets a new instance.
    let r = post(s.addr, &fg("echo"), &[], r#"{"crash":1}"#).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("x-is-func-err"), Some("true"));
    assert_eq!(r.json()["errorType"], "Runtime.ExitError");
    let r = post(s.addr, &fg("echo"), &[], "{}").await;
    assert_eq!(r.status, 200);

    // A timeout: 408 FSS.0408, with the invocation's headers.
    let r = post(
        s.addr,
        &fg("echo"),
        &[("X-Cff-Log-Type", "tail")],
        r#"{"hang":1}"#,
    )
    .await;
    let (st, code, msg) = r.fss();
    assert_eq!((st, code.as_str()), (408, "FSS.0408"));
    assert_eq!(msg, "invocation timed out after 3s");
    assert_eq!(r.header("x-is-func-err"), Some("true"));
    assert!(r.header("x-cff-request-id").is_some());
    assert!(r.header("x-cff-invoke-summary").is_some());
    assert!(r
        .decoded("x-cff-function-log")
        .contains("Finish invoke request"));
    // And the function still works afterwards.
    assert_eq!(post(s.addr, &fg("echo"), &[], "{}").await.status, 200);
    s.stop().await.unwrap();
}

#[tokio::test]
async fn fg_saturated_is_429_with_max_instances_1() {
    let pkg = echo_pkg("single", "max_instances: 1\ntimeout: 10\n");
    let s = serve(&[&pkg], None).await;
    let addr = s.addr;
    let first = tokio::spawn(async move { post(addr, &fg("single"), &[], r#"{"long":1}"#).await });
    // Wait until the first invocation holds the only instance.
    let busy = async {
        loop {
            let v = get(addr, "/instances", &[]).await.json();
            if v.as_array().unwrap().iter().any(|i| i["state"] == "busy") {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(5), busy)
        .await
        .expect("first invocation is running");
    let r = post(addr, &fg("single"), &[], "{}").await;
    let (st, code, msg) = r.fss();
    assert_eq!((st, code.as_str()), (429, "FSS.0429"), "{msg}");
    assert!(msg.contains("single"), "{msg}");
    // Lambda's shape for the same condition.
    let r = post(addr, &lambda("single"), &[], "{}").await;
    assert_eq!(r.status, 429, "{}", r.text());
    assert_eq!(
        r.header("x-amzn-errortype"),
        Some("TooManyRequestsException")
    );
    assert_eq!(
        r.json()["Reason"],
        "ReservedFunctionConcurrentInvocationLimitExceeded"
    );
    let r = first.await.unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["long"], true);
    s.stop().await.unwrap();
}

#[tokio::test]
async fn fg_parallel_requests_run_on_parallel_instances() {
    let pkg = echo_pkg("par", "max_instances: 3\ntimeout: 10\n");
    let s = serve(&[&pkg], None).await;
    let addr = s.addr;
    // Warm three instances first so cold starts do not blur the timing.
    let warm: Vec<_> = (0..3)
        .map(|_| tokio::spawn(async move { post(addr, &fg("par"), &[], r#"{"slow":1}"#).await }))
        .collect();
    for w in warm {
        assert_eq!(w.await.unwrap().status, 200);
    }
    // Four seconds each: long enough to see all three busy at once however loaded the machine.
    let calls: Vec<_> = (0..3)
        .map(|_| tokio::spawn(async move { post(addr, &fg("par"), &[], r#"{"long":1}"#).await }))
        .collect();
    let all_busy = async {
        loop {
            let v = get(addr, "/instances", &[]).await.json();
            let busy = v
                .as_array()
                .unwrap()
                .iter()
                .filter(|i| i["state"] == "busy")
                .count();
            if busy == 3 {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(30), all_busy)
        .await
        .expect("three instances busy at once");
    let mut pids = Vec::new();
    for c in calls {
        let r = c.await.unwrap();
        assert_eq!(r.status, 200);
        pids.push(r.json()["pid"].as_i64().unwrap());
    }
    pids.sort();
    pids.dedup();
    assert_eq!(pids.len(), 3, "three instances served");
    s.stop().await.unwrap();
}

#[tokio::test]
async fn fg_init_failure_is_500_with_the_init_error() {
    let pkg = FixturePackage::bash(
        "func_name: broken\n",
        "echo 'cannot load the handler' >&2\nexit 7\n",
    );
    let s = serve(&[&pkg], None).await;
    let r = post(s.addr, &fg("broken"), &[], "{}").await;
    let (st, code, msg) = r.fss();
    assert_eq!((st, code.as_str()), (500, "FSS.1404"), "{msg}");
    assert!(msg.starts_with("function 'broken' init failed"), "{msg}");
    assert!(msg.contains("after 3 attempt(s)"), "{msg}");
    assert_eq!(r.header("x-is-func-err"), Some("true"));
    // Lambda reports init failures as function errors.
    let r = post(s.addr, &lambda("broken"), &[], "{}").await;
    assert_eq!(r.status, 200);
    assert_eq!(r.header("x-amz-function-error"), Some("Unhandled"));
    assert!(r.json()["errorType"].as_str().is_some());
    s.stop().await.unwrap();
}

#[tokio::test]
async fn token_is_required_on_every_route_but_health() {
    let pkg = echo_pkg("echo", "");
    let s = serve(&[&pkg], Some("s3cret")).await;
    let ok = [("X-Auth-Token", "s3cret")];
    let bad = [("X-Auth-Token", "guess")];
    for headers in [&[][..], &bad[..]] {
        let (st, code, _) = post(s.addr, &fg("echo"), headers, "{}").await.fss();
        assert_eq!((st, code.as_str()), (401, "FSS.0401"));
        // Probes carry no secret: /health alone answers without the token.
        assert_eq!(get(s.addr, "/health", headers).await.status, 200);
        let (st, code, _) = get(s.addr, "/functions", headers).await.fss();
        assert_eq!((st, code.as_str()), (401, "FSS.0401"));
        let (st, code, _) = get(s.addr, "/instances", headers).await.fss();
        assert_eq!((st, code.as_str()), (401, "FSS.0401"));
        let r = post(s.addr, &lambda("echo"), headers, "{}").await;
        assert_eq!(r.status, 403);
        assert_eq!(
            r.header("x-amzn-errortype"),
            Some("UnrecognizedClientException")
        );
        assert_eq!(r.json()["Type"], "User");
        // An unknown route tells a caller without the token nothing either.
        let (st, code, _) = get(s.addr, "/no/such/route", headers).await.fss();
        assert_eq!((st, code.as_str()), (401, "FSS.0401"));
    }
    // Two tokens, even if one is right: refused.
    let twice = [("X-Auth-Token", "s3cret"), ("X-Auth-Token", "guess")];
    let (st, code, _) = post(s.addr, &fg("echo"), &twice, "{}").await.fss();
    assert_eq!((st, code.as_str()), (401, "FSS.0401"));
    let twice = [("X-Auth-Token", "s3cret"), ("X-Auth-Token", "s3cret")];
    let (st, _, _) = post(s.addr, &fg("echo"), &twice, "{}").await.fss();
    assert_eq!(st, 401);
    assert_eq!(post(s.addr, &fg("echo"), &ok, "{}").await.status, 200);
    assert_eq!(post(s.addr, &lambda("echo"), &ok, "{}").await.status, 200);
    assert_eq!(get(s.addr, "/health", &ok).await.status, 200);
    let (st, code, _) = get(s.addr, "/no/such/route", &ok).await.fss();
    assert_eq!((st, code.as_str()), (404, "FSS.0404"));
    s.stop().await.unwrap();
}

#[tokio::test]
async fn async_routes_without_a_store_answer_501() {
    // An embedding without `Server::with_async` (fnbox serve always has a store: see
    // tests/async_front_door.rs).
    let pkg = echo_pkg("echo", "");
    let s = serve(&[&pkg], None).await;
    let path = "/v2/p/fgs/functions/echo/invocations-async";
    let (st, code, msg) = post(s.addr, path, &[], "{}").await.fss();
    assert_eq!((st, code.as_str()), (501, "FSS.0501"));
    assert!(msg.contains("not available"), "{msg}");
    let (st, code, _) = post(
        s.addr,
        "/v2/p/fgs/functions/nope/invocations-async",
        &[],
        "{}",
    )
    .await
    .fss();
    assert_eq!((st, code.as_str()), (404, "FSS.1051"));
    let r = post(
        s.addr,
        &lambda("echo"),
        &[("X-Amz-Invocation-Type", "Event")],
        "{}",
    )
    .await;
    assert_eq!(r.status, 501);
    assert!(r.json()["message"]
        .as_str()
        .unwrap()
        .contains("not available"));
    s.stop().await.unwrap();
}

// ---------------------------------------------------------------------------------------------
// Lambda

#[tokio::test]
async fn lambda_request_response_names_and_arns() {
    let pkg = echo_pkg("echo", "");
    let s = serve(&[&pkg], None).await;
    for name in [
        "echo",
        "echo:$LATEST",
        "arn:aws:lambda:us-east-1:012345678912:function:echo",
        "arn:aws:lambda:eu-west-1:123456789012:function:echo:$LATEST",
        "123456789012:function:echo",
        "echo?Qualifier=%24LATEST",
        // Tools written for Lambda's emulator use the literal name `function`.
        "function",
    ] {
        let (n, q) = name
            .split_once('?')
            .map(|(n, q)| (n, format!("?{q}")))
            .unwrap_or((name, String::new()));
        let r = post(s.addr, &format!("{}{q}", lambda(n)), &[], r#"{"x":1}"#).await;
        assert_eq!(r.status, 200, "{name}: {}", r.text());
        assert_eq!(r.json()["echo"]["x"], 1, "{name}");
        assert_eq!(r.header("x-amz-executed-version"), Some("$LATEST"));
        assert_eq!(r.header("content-type"), Some("application/json"));
        assert!(r.header("x-amzn-requestid").is_some());
        assert!(r.header("x-amz-function-error").is_none());
        assert!(r.header("x-amz-log-result").is_none());
    }
    // Explicit RequestResponse is the default.
    let r = post(
        s.addr,
        &lambda("echo"),
        &[("X-Amz-Invocation-Type", "RequestResponse")],
        "{}",
    )
    .await;
    assert_eq!(r.status, 200);
    s.stop().await.unwrap();
}

#[tokio::test]
async fn lambda_tail_dry_run_function_error_and_timeout() {
    let pkg = echo_pkg("echo", "");
    let s = serve(&[&pkg], None).await;

    let r = post(s.addr, &lambda("echo"), &[("X-Amz-Log-Type", "Tail")], "{}").await;
    assert_eq!(r.status, 200);
    let id = r.header("x-amzn-requestid").unwrap().to_string();
    let log = r.decoded("x-amz-log-result");
    assert!(
        log.starts_with(&format!("START RequestId: {id} Version: $LATEST\n")),
        "{log}"
    );
    assert!(log.contains(&format!("handling {id}\n")), "{log}");
    assert!(
        log.contains(&format!(
            "END RequestId: {id}\nREPORT RequestId: {id}\tDuration: "
        )),
        "{log}"
    );
    assert!(log.contains("\tMemory Size: 128 MB\t"), "{log}");
    // The cold start's REPORT line ends with Lambda's Init Duration; warm ones have none.
    let report = log.lines().last().unwrap();
    assert!(
        report.contains("\tMax Memory Used: ")
            && report.contains(" MB\tInit Duration: ")
            && report.ends_with(" ms\t"),
        "{log}"
    );

    let r = post(
        s.addr,
        &lambda("echo"),
        &[("X-Amz-Log-Type", "Tail")],
        r#"{"lines":1}"#,
    )
    .await;
    let log = r.decoded("x-amz-log-result");
    assert!(log.len() <= 4096 && log.contains("line-200-") && !log.contains("line-1-"));
    assert!(!log.contains("Init Duration"), "warm: {log}");

    let r = post(
        s.addr,
        &lambda("echo"),
        &[("X-Amz-Invocation-Type", "DryRun")],
        "{}",
    )
    .await;
    assert_eq!(r.status, 204);
    assert!(r.body.is_empty());

    let r = post(s.addr, &lambda("echo"), &[], r#"{"boom":1}"#).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.header("x-amz-function-error"), Some("Unhandled"));
    assert_eq!(r.json()["errorType"], "ValueError");
    assert_eq!(r.json()["errorMessage"], "boom");

    let r = post(s.addr, &lambda("echo"), &[], r#"{"crash":1}"#).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.header("x-amz-function-error"), Some("Unhandled"));
    assert_eq!(r.json()["errorType"], "Runtime.ExitError");

    let r = post(s.addr, &lambda("echo"), &[], r#"{"hang":1}"#).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.header("x-amz-function-error"), Some("Unhandled"));
    assert_eq!(r.json()["errorType"], "Sandbox.Timedout");
    let msg = r.json()["errorMessage"].as_str().unwrap().to_string();
    assert!(msg.ends_with("Task timed out after 3.00 seconds"), "{msg}");
    s.stop().await.unwrap();
}

#[tokio::test]
async fn lambda_errors_have_lambdas_shape() {
    let pkg = echo_pkg("echo", "");
    let s = serve(&[&pkg], None).await;
    let check = |r: &Resp, status: u16, error_type: &str| {
        assert_eq!(r.status, status, "{}", r.text());
        assert_eq!(r.header("x-amzn-errortype"), Some(error_type), "{r:?}");
        assert!(r.header("x-amzn-requestid").is_some());
        let v = r.json();
        assert!(v["Type"].is_string() && v["message"].is_string(), "{v}");
    };
    let r = post(s.addr, &lambda("nope"), &[], "{}").await;
    check(&r, 404, "ResourceNotFoundException");
    assert_eq!(
        r.json()["message"],
        "Function not found: arn:aws:lambda:us-east-1:012345678912:function:nope"
    );
    check(
        &post(s.addr, &lambda("echo:prod"), &[], "{}").await,
        404,
        "ResourceNotFoundException",
    );
    check(
        &post(
            s.addr,
            &format!("{}?Qualifier=7", lambda("echo")),
            &[],
            "{}",
        )
        .await,
        404,
        "ResourceNotFoundException",
    );
    check(
        &post(s.addr, &lambda("bad%20name"), &[], "{}").await,
        400,
        "ValidationException",
    );
    check(
        &post(
            s.addr,
            &lambda("echo"),
            &[("X-Amz-Invocation-Type", "Sometimes")],
            "{}",
        )
        .await,
        400,
        "InvalidParameterValueException",
    );
    check(
        &post(s.addr, &lambda("echo"), &[("X-Amz-Log-Type", "All")], "{}").await,
        400,
        "InvalidParameterValueException",
    );
    let big = vec![b'x'; 6 * 1024 * 1024 + 1];
    let r = request(s.addr, "POST", &lambda("echo"), &[], big.clone().into()).await;
    check(&r, 413, "RequestTooLargeException");
    assert_eq!(
        r.json()["message"],
        "Request must be smaller than 6291456 bytes for the InvokeFunction operation"
    );
    s.stop().await.unwrap();
}

// ---------------------------------------------------------------------------------------------
// Admin

#[tokio::test]
async fn admin_health_functions_and_instances() {
    let a = echo_pkg(
        "alpha",
        "max_instances: 4\nconcurrent_num: 2\nmemory_size: 256\n",
    );
    let b = echo_pkg("beta", "reserved_instances: 1\n");
    let s = serve(&[&a, &b], None).await;

    let r = get(s.addr, "/health", &[]).await;
    assert_eq!(
        (r.status, r.json()),
        (200, serde_json::json!({"status":"ok"}))
    );

    let v = get(s.addr, "/functions", &[]).await.json();
    let list = v.as_array().unwrap();
    assert_eq!(list.len(), 2);
    assert_eq!(list[0]["name"], "alpha");
    assert_eq!(
        list[0]["urn"],
        "urn:fss:local:local:function:default:alpha:latest"
    );
    assert_eq!(list[0]["runtime"], "Custom");
    assert_eq!(list[0]["dialect"], "functiongraph");
    assert_eq!(list[0]["memory_size"], 256);
    assert_eq!(list[0]["timeout"], 3);
    assert_eq!(list[0]["max_instances"], 4);
    assert_eq!(list[0]["concurrent_num"], 2);
    assert_eq!(list[0]["exclusive"], false);
    assert_eq!(list[1]["reserved_instances"], 1);
    assert_eq!(
        list[1]["instances"], 1,
        "the reserved instance is up at start"
    );

    assert_eq!(
        get(s.addr, "/functions/alpha/instances", &[]).await.json(),
        serde_json::json!([])
    );
    assert_eq!(post(s.addr, &fg("alpha"), &[], "{}").await.status, 200);
    let v = get(s.addr, "/functions/alpha/instances", &[]).await.json();
    let inst = &v.as_array().unwrap()[0];
    assert_eq!(inst["state"], "idle");
    assert_eq!(inst["invocations"], 1);
    assert_eq!(inst["reserved"], false);
    assert!(inst["pod_name"].as_str().unwrap().starts_with("alpha-256-"));
    assert!(inst["age_seconds"].as_f64().unwrap() > 0.0);
    assert!(inst["peak_memory_mb"].as_f64().is_some());

    let v = get(s.addr, "/instances", &[]).await.json();
    let mut fns: Vec<&str> = v
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["function"].as_str().unwrap())
        .collect();
    fns.sort();
    assert_eq!(fns, ["alpha", "beta"]);
    assert!(v
        .as_array()
        .unwrap()
        .iter()
        .any(|i| i["function"] == "beta" && i["reserved"] == true));

    let (st, code, _) = get(s.addr, "/functions/nope/instances", &[]).await.fss();
    assert_eq!((st, code.as_str()), (404, "FSS.1051"));
    let (st, code, msg) = get(s.addr, "/no/such/route", &[]).await.fss();
    assert_eq!((st, code.as_str()), (404, "FSS.0404"), "{msg}");
    s.stop().await.unwrap();
}

// ---------------------------------------------------------------------------------------------
// Shutdown

#[tokio::test]
async fn shutdown_lets_in_flight_invocations_finish_and_stops_every_process() {
    let a = echo_pkg("alpha", "reserved_instances: 1\n");
    let b = echo_pkg("beta", "");
    let s = serve(&[&a, &b], None).await;
    let addr = s.addr;
    let pid_b = post(addr, &fg("beta"), &[], "{}").await.json()["pid"]
        .as_i64()
        .unwrap() as i32;
    let in_flight =
        tokio::spawn(async move { post(addr, &fg("alpha"), &[], r#"{"slow":1}"#).await });
    tokio::time::sleep(Duration::from_millis(300)).await;
    s.stop().await.expect("clean shutdown");
    let r = in_flight.await.unwrap();
    assert_eq!(
        r.status,
        200,
        "the in-flight invocation finished: {}",
        r.text()
    );
    let pid_a = r.json()["pid"].as_i64().unwrap() as i32;
    for pid in [pid_a, pid_b] {
        assert!(
            wait_until(Duration::from_secs(3), || !process_alive(pid)).await,
            "runtime {pid} is gone"
        );
    }
    assert!(
        tokio::net::TcpStream::connect(addr).await.is_err(),
        "the listener is closed"
    );
}

#[tokio::test]
async fn router_is_usable_without_a_listener_and_registry_is_shared() {
    // The router can be built before serving (tests, embedding); the registry is the server's.
    let pkg = echo_pkg("echo", "");
    let engine = Engine::new(EngineConfig::new(MemoryController::detect()));
    let registry = Registry::load(&engine, &[FunctionSpec::from_arg(pkg.path())]).unwrap();
    let server = Server::new(engine, registry, None);
    let _router = server.router();
    assert!(server.registry().get("echo").is_some());
    assert_eq!(Arc::strong_count(server.registry()), 1);
    server.stop().await;
}
