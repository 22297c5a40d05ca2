//! HTTP functions (`runtime: http`) with a real server (Python's standard-library
//! `ThreadingHTTPServer`) through the engine and the FunctionGraph dialect: methods, query
//! strings, headers, binary bodies, non-2xx statuses, a server that never listens, oversized
//! responses, non-APIG events, malformed events, a server that dies mid-request.
//!
//! Port 8000 is fixed for HTTP functions, so the tests of this file hold [`LOCK`] for their
//! whole run and never overlap. Nothing else in the workspace's tests uses port 8000, and test
//! binaries run one after another.

// These tests drive real processes from plain threads (no tokio runtime where std time
// is used): waiting on them with std time and sleeps is synchronous on purpose.
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use fnbox_engine::telemetry::Status;
use fnbox_engine::{
    Engine, EngineConfig, FaultKind, Function, Instance, InvokeRequest, InvokeResult,
};
use fnbox_limits::MemoryController;
use fnbox_testkit::{wait_until, FixturePackage};
use serde_json::{json, Value};
use tokio::sync::{Mutex, MutexGuard};

static LOCK: Mutex<()> = Mutex::const_new(());

/// Echoes the request as JSON, except for a few special paths:
/// `/status/<n>` answers status n; `/binary` returns the request body as octet-stream;
/// `/big?size=N[&nolength]` returns N bytes (without Content-Length, close-delimited, when
/// `nolength`); `/crash` kills the server; `/sleep?ms=N` waits N ms, then echoes; `/together`
/// waits (up to 30 s) until three requests are inside it at once, then echoes with
/// `"together": true` (false when they never were).
const SERVER: &str = r#"
import json
import os
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit


TOGETHER = threading.Barrier(3, timeout=30)


class Handler(BaseHTTPRequestHandler):
    def handle_any(self):
        url = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        parts = url.path.strip("/").split("/")
        query = parse_qs(url.query, keep_blank_values=True)
        if parts[0] == "status":
            return self.reply(int(parts[1]), "text/plain", ("status " + parts[1]).encode())
        if parts[0] == "binary":
            return self.reply(200, "application/octet-stream", body)
        if parts[0] == "big":
            return self.reply(200, "text/plain", b"a" * int(query["size"][0]), "nolength" not in query)
        if parts[0] == "crash":
            os._exit(3)
        if parts[0] == "sleep":
            time.sleep(int(query["ms"][0]) / 1000.0)
        together = None
        if parts[0] == "together":
            try:
                TOGETHER.wait()
                together = True
            except threading.BrokenBarrierError:
                together = False
        echo = {
            "together": together,
            "method": self.command,
            "path": url.path,
            "rawQuery": url.query,
            "query": query,
            "headers": [[k.lower(), v] for k, v in self.headers.items()],
            "body": body.decode("utf-8", "replace"),
        }
        self.reply(200, "application/json", json.dumps(echo).encode())

    def reply(self, status, content_type, data, with_length=True):
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        if with_length:
            self.send_header("Content-Length", str(len(data)))
        self.send_header("X-Multi", "one")
        self.send_header("X-Multi", "two")
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = handle_any

    def log_message(self, fmt, *args):
        pass


print("[Function] test server listening on 127.0.0.1:8000", flush=True)
ThreadingHTTPServer(("127.0.0.1", 8000), Handler).serve_forever()
"#;

/// Holds [`LOCK`] and the function under test.
struct Http {
    _guard: MutexGuard<'static, ()>,
    _pkg: FixturePackage,
    function: Function,
}

impl Http {
    /// An HTTP function serving [`SERVER`] (or `bootstrap` when given), once port 8000 is free.
    async fn new(
        config: &str,
        bootstrap: Option<&str>,
        tweak: impl FnOnce(&mut EngineConfig),
    ) -> Self {
        let guard = LOCK.lock().await;
        assert!(
            wait_until(Duration::from_secs(5), port_8000_free).await,
            "port 8000 is in use by something else"
        );
        let pkg = FixturePackage::empty(&format!("runtime: http\n{config}"));
        pkg.write("server.py", SERVER);
        pkg.write_exec(
            "bootstrap",
            bootstrap
                .unwrap_or("#!/bin/bash\ncd \"$RUNTIME_CODE_ROOT\" && exec python3 -u server.py\n"),
        );
        let package = Arc::new(fnbox_package::load(pkg.path()).expect("fixture package loads"));
        let mut engine_config = EngineConfig::new(MemoryController::detect());
        engine_config.host_path = std::env::var("PATH").ok();
        tweak(&mut engine_config);
        let function = Function::new(
            Engine::new(engine_config),
            package,
            Arc::new(fnbox_fg::FunctionGraph),
        )
        .expect("function");
        Self {
            _guard: guard,
            _pkg: pkg,
            function,
        }
    }

    async fn echo_server(config: &str) -> (Self, Arc<Instance>) {
        let http = Self::new(config, None, |_| {}).await;
        let inst = http
            .function
            .start_instance(None)
            .await
            .expect("init: the server listens on 8000");
        (http, inst)
    }
}

fn port_8000_free() -> bool {
    std::net::TcpStream::connect_timeout(
        &"127.0.0.1:8000".parse().unwrap(),
        Duration::from_millis(200),
    )
    .is_err()
}

/// The APIG response of a successful invocation.
fn apig(result: &InvokeResult) -> Value {
    match result {
        InvokeResult::Ok(b) => serde_json::from_slice(b).expect("the bridge answers JSON"),
        other => panic!("expected a response, got {other:?}"),
    }
}

/// The echoed request inside an APIG response.
fn echoed(result: &InvokeResult) -> Value {
    let r = apig(result);
    assert_eq!(r["statusCode"], 200, "{r}");
    assert_eq!(
        r["isBase64Encoded"], false,
        "JSON bodies are passed as text: {r}"
    );
    serde_json::from_str(r["body"].as_str().expect("body is a string")).expect("echo body is JSON")
}

/// Every value of the echoed request header `name`.
fn header(echo: &Value, name: &str) -> Vec<String> {
    echo["headers"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p[0] == name)
        .map(|p| p[1].as_str().unwrap().to_string())
        .collect()
}

fn one_header(echo: &Value, name: &str) -> String {
    let values = header(echo, name);
    assert_eq!(
        values.len(),
        1,
        "exactly one {name} header: {values:?} in {echo}"
    );
    values[0].clone()
}

fn handler_error(result: &InvokeResult) -> Value {
    match result {
        InvokeResult::HandlerError(b) => serde_json::from_slice(b).expect("error body is JSON"),
        other => panic!("expected an error reply, got {other:?}"),
    }
}

fn b64(data: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in data.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |acc, (i, &b)| acc | (b as u32) << (16 - 8 * i));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[tokio::test]
async fn get_with_query_string_gets_the_cff_headers() {
    let (_http, inst) = Http::echo_server("func_name: web\nmemory_size: 256\ntimeout: 7\n").await;
    let req = InvokeRequest::sync(
        json!({
            "httpMethod": "GET",
            "path": "/items/42",
            "queryStringParameters": {"q": "a b&c", "tag": ["t1", "t2"], "empty": ""},
            "requestContext": {"apiId": "api-1", "requestId": "apig-req-1", "stage": "RELEASE", "sourceIp": "10.1.2.3"},
            "pathParameters": {"id": "42"}
        })
        .to_string(),
    );
    let id = req.request_id.clone();
    let echo = echoed(&inst.invoke(req).await.unwrap().result);
    assert_eq!(echo["method"], "GET");
    assert_eq!(echo["path"], "/items/42");
    assert_eq!(
        echo["query"],
        json!({"q": ["a b&c"], "tag": ["t1", "t2"], "empty": [""]})
    );
    assert_eq!(one_header(&echo, "x-cff-request-id"), id);
    assert_eq!(one_header(&echo, "x-cff-func-name"), "web");
    assert_eq!(one_header(&echo, "x-cff-func-version"), "latest");
    assert_eq!(one_header(&echo, "x-cff-memory"), "256");
    assert_eq!(one_header(&echo, "x-cff-timeout"), "7");
    assert_eq!(one_header(&echo, "x-cff-project-id"), "local");
    assert_eq!(one_header(&echo, "x-cff-package"), "default");
    assert_eq!(one_header(&echo, "x-cff-region"), "local");
    for agency in [
        "x-cff-auth-token",
        "x-cff-security-access-key",
        "x-cff-security-secret-key",
        "x-cff-security-token",
    ] {
        assert_eq!(
            one_header(&echo, agency),
            "",
            "{agency} is empty without an agency"
        );
    }
    assert_eq!(one_header(&echo, "x-apig-api-id"), "api-1");
    assert_eq!(one_header(&echo, "x-apig-request-id"), "apig-req-1");
    assert_eq!(one_header(&echo, "x-apig-source-stage"), "RELEASE");
    assert_eq!(one_header(&echo, "x-apig-source-ip"), "10.1.2.3");
    assert_eq!(echo["body"], "");
    inst.shutdown().await;
}

#[tokio::test]
async fn methods_are_kept_with_their_bodies() {
    let (_http, inst) = Http::echo_server("").await;
    for method in ["POST", "PUT", "DELETE", "PATCH", "GET"] {
        let event = json!({"httpMethod": method, "path": "/things", "body": format!("{method} body ü"),
                           "headers": {"Content-Type": "text/plain; charset=utf-8"}});
        let echo = echoed(
            &inst
                .invoke(InvokeRequest::sync(event.to_string()))
                .await
                .unwrap()
                .result,
        );
        assert_eq!(echo["method"], method);
        assert_eq!(echo["body"], format!("{method} body ü"));
        assert_eq!(
            one_header(&echo, "content-length"),
            format!("{method} body ü").len().to_string()
        );
    }
    // No method: POST (documented default).
    let echo = echoed(
        &inst
            .invoke(InvokeRequest::sync(r#"{"path":"/x"}"#))
            .await
            .unwrap()
            .result,
    );
    assert_eq!(echo["method"], "POST");
    inst.shutdown().await;
}

#[tokio::test]
async fn request_headers_are_passed_and_response_headers_returned() {
    let (_http, inst) = Http::echo_server("").await;
    let event = json!({
        "httpMethod": "GET", "path": "/h",
        "headers": {"X-Custom": "v1", "Accept": "application/json", "X-Repeated": ["a", "b"],
                    "Connection": "close", "Transfer-Encoding": "chunked",
                    "X-CFF-Request-Id": "forged", "Host": "api.example.com"}
    });
    let req = InvokeRequest::sync(event.to_string());
    let id = req.request_id.clone();
    let out = inst.invoke(req).await.unwrap();
    let echo = echoed(&out.result);
    assert_eq!(one_header(&echo, "x-custom"), "v1");
    assert_eq!(one_header(&echo, "accept"), "application/json");
    assert_eq!(header(&echo, "x-repeated"), ["a", "b"]);
    assert_eq!(one_header(&echo, "host"), "api.example.com", "Host is kept");
    assert!(
        header(&echo, "transfer-encoding").is_empty(),
        "hop-by-hop headers are dropped"
    );
    assert_eq!(
        one_header(&echo, "x-cff-request-id"),
        id,
        "fnbox's headers win"
    );
    let response = apig(&out.result);
    assert_eq!(response["headers"]["content-type"], "application/json");
    assert_eq!(
        response["headers"]["x-multi"],
        json!(["one", "two"]),
        "a repeated header becomes an array"
    );
    inst.shutdown().await;
}

#[tokio::test]
async fn binary_body_round_trip() {
    let (_http, inst) = Http::echo_server("").await;
    let data: Vec<u8> = (0..=255u8).chain((0..=255u8).rev()).collect();
    let event = json!({"httpMethod": "PUT", "path": "/binary", "isBase64Encoded": true, "body": b64(&data),
                       "headers": {"Content-Type": "application/octet-stream"}});
    let r = apig(
        &inst
            .invoke(InvokeRequest::sync(event.to_string()))
            .await
            .unwrap()
            .result,
    );
    assert_eq!(r["statusCode"], 200);
    assert_eq!(r["isBase64Encoded"], true, "{r}");
    assert_eq!(r["body"], b64(&data), "the same bytes come back");
    assert_eq!(r["headers"]["content-type"], "application/octet-stream");
    // Text in a binary content type is Base64 too.
    let event = json!({"httpMethod": "POST", "path": "/binary", "body": "plain"});
    let r = apig(
        &inst
            .invoke(InvokeRequest::sync(event.to_string()))
            .await
            .unwrap()
            .result,
    );
    assert_eq!(
        (r["isBase64Encoded"].clone(), r["body"].clone()),
        (json!(true), json!(b64(b"plain")))
    );
    inst.shutdown().await;
}

#[tokio::test]
async fn non_2xx_statuses_are_results() {
    let (_http, inst) = Http::echo_server("").await;
    for status in [404, 500, 302, 201] {
        let event = json!({"httpMethod": "GET", "path": format!("/status/{status}")});
        let out = inst
            .invoke(InvokeRequest::sync(event.to_string()))
            .await
            .unwrap();
        let r = apig(&out.result);
        assert_eq!(r["statusCode"], status);
        assert_eq!(r["body"], format!("status {status}"));
        assert_eq!(r["isBase64Encoded"], false);
    }
    assert!(inst.can_accept(), "error statuses leave the instance ready");
    inst.shutdown().await;
}

#[tokio::test]
async fn events_that_are_not_apig_are_posted_to_invoke() {
    let (_http, inst) = Http::echo_server("").await;
    let echo = echoed(
        &inst
            .invoke(InvokeRequest::sync(r#"{"order":7}"#))
            .await
            .unwrap()
            .result,
    );
    assert_eq!(echo["method"], "POST");
    assert_eq!(echo["path"], "/invoke");
    assert_eq!(echo["body"], r#"{"order":7}"#);
    assert_eq!(one_header(&echo, "content-type"), "application/json");
    inst.shutdown().await;
}

#[tokio::test]
async fn malformed_events_are_refused_by_name() {
    let (_http, inst) = Http::echo_server("").await;
    for (event, field) in [
        (r#"{"path":"/x","headers":"nope"}"#, "'headers'"),
        (
            r#"{"path":"/x","isBase64Encoded":true,"body":"%%%"}"#,
            "'body'",
        ),
        (
            r#"{"path":"/x","httpMethod":"NOT A METHOD"}"#,
            "'httpMethod'",
        ),
        (
            r#"{"path":"/x","queryStringParameters":{"a":{"b":1}}}"#,
            "queryStringParameters.a",
        ),
    ] {
        let err = handler_error(
            &inst
                .invoke(InvokeRequest::sync(event))
                .await
                .unwrap()
                .result,
        );
        assert_eq!(err["errorType"], "Runtime.InvalidHttpEvent", "{event}");
        assert!(
            err["errorMessage"].as_str().unwrap().contains(field),
            "{event}: {err}"
        );
    }
    assert!(inst.can_accept());
    let echo = echoed(
        &inst
            .invoke(InvokeRequest::sync(r#"{"path":"/ok"}"#))
            .await
            .unwrap()
            .result,
    );
    assert_eq!(echo["path"], "/ok");
    inst.shutdown().await;
}

#[tokio::test]
async fn response_over_6_mib_is_an_error() {
    let (_http, inst) = Http::echo_server("memory_size: 512\ntimeout: 10\n").await;
    const LIMIT: usize = 6 * 1024 * 1024;
    for query in ["size=6291457", "size=6291457&nolength"] {
        // A query inside `path` is kept.
        let event = json!({"httpMethod": "GET", "path": format!("/big?{query}")});
        let err = handler_error(
            &inst
                .invoke(InvokeRequest::sync(event.to_string()))
                .await
                .unwrap()
                .result,
        );
        assert_eq!(err["errorType"], "FunctionResponseTooLarge", "{query}");
        assert_eq!(
            err["errorMessage"], "response body size 6291457 exceeds the limit of 6291456",
            "{query}"
        );
    }
    // Exactly the limit passes.
    let event = json!({"httpMethod": "GET", "path": "/big", "queryStringParameters": {"size": LIMIT.to_string()}});
    let r = apig(
        &inst
            .invoke(InvokeRequest::sync(event.to_string()))
            .await
            .unwrap()
            .result,
    );
    assert_eq!(r["statusCode"], 200);
    assert_eq!(r["body"].as_str().unwrap().len(), LIMIT);
    inst.shutdown().await;
}

#[tokio::test]
async fn concurrent_requests_run_at_once_with_concurrent_num() {
    let (_http, inst) = Http::echo_server("concurrent_num: 3\n").await;
    let event = json!({"httpMethod": "GET", "path": "/together"}).to_string();
    let (a, b, c) = tokio::join!(
        inst.invoke(InvokeRequest::sync(event.clone())),
        inst.invoke(InvokeRequest::sync(event.clone())),
        inst.invoke(InvokeRequest::sync(event.clone())),
    );
    let ids: Vec<String> = [a, b, c]
        .into_iter()
        .map(|out| {
            let out = out.expect("the instance takes 3 at once");
            let echo = echoed(&out.result);
            assert_eq!(
                echo["together"], true,
                "all three were inside the server at once: {echo}"
            );
            assert_eq!(
                one_header(&echo, "x-cff-request-id"),
                out.request_id,
                "each answer goes to its own request"
            );
            out.request_id
        })
        .collect();
    assert_eq!(ids.len(), 3);
    inst.shutdown().await;
}

#[tokio::test]
async fn server_dying_mid_request_is_a_runtime_exit() {
    let (_http, inst) = Http::echo_server("").await;
    let out = inst
        .invoke(InvokeRequest::sync(r#"{"path":"/crash"}"#))
        .await
        .unwrap();
    match &out.result {
        InvokeResult::Fault(f) => {
            assert_eq!(f.kind, FaultKind::RuntimeExit, "{f:?}");
            assert!(f.message.contains("exit code 3"), "{}", f.message);
        }
        other => panic!("expected a fault, got {other:?}"),
    }
    assert!(!inst.can_accept());
}

#[tokio::test]
async fn server_that_never_listens_fails_the_init() {
    // 10 s for extensions + initializer_timeout is the init deadline; shorten the extension
    // part so the three attempts take seconds, not half a minute.
    let http = Http::new(
        "initializer_timeout: 1\n",
        Some("#!/bin/bash\necho 'not listening'\nexec sleep 60\n"),
        |c| {
            c.extension_init_timeout = Duration::from_secs(1);
        },
    )
    .await;
    let started = Instant::now();
    let err = http
        .function
        .start_instance(None)
        .await
        .err()
        .expect("init must fail");
    let elapsed = started.elapsed();
    assert_eq!(err.status, Status::Timeout, "{err}");
    assert_eq!(err.error_type, "Sandbox.Timedout");
    assert!(
        err.message.contains("127.0.0.1:8000"),
        "the message names the port: {}",
        err.message
    );
    assert_eq!(err.attempts, 3);
    assert!(
        elapsed >= Duration::from_secs(6),
        "3 × 2 s init deadline: {elapsed:?}"
    );
    assert!(port_8000_free());
}
