//! The asynchronous routes of the front door (issue 7) over real processes, served in-process
//! with a durable queue in a temporary data dir: 202 only after the commit, the 256 KiB limit
//! in both dialects, the status and list routes, and the worker running the invocations.

use std::net::SocketAddr;
use std::time::Duration;

use fnbox_async::{AsyncStore, ListFilter};
use fnbox_engine::{Engine, EngineConfig};
use fnbox_limits::MemoryController;
use fnbox_serve::{AsyncOptions, FunctionSpec, Registry, Server};
use fnbox_testkit::{http, FixturePackage};
use serde_json::Value;
use tokio::time::Instant;

struct Running {
    addr: SocketAddr,
    store: AsyncStore,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
    _data: tempfile::TempDir,
}

impl Running {
    async fn stop(mut self) {
        let _ = self.stop.take().unwrap().send(());
        tokio::time::timeout(Duration::from_secs(30), self.task)
            .await
            .expect("shutdown finishes")
            .expect("server task")
            .expect("server result");
    }
}

async fn serve(pkgs: &[&FixturePackage]) -> Running {
    let mut config = EngineConfig::new(MemoryController::detect());
    config.host_path = std::env::var("PATH").ok();
    let engine = Engine::new(config);
    let specs: Vec<FunctionSpec> = pkgs
        .iter()
        .map(|p| FunctionSpec::from_arg(p.path()))
        .collect();
    let registry = Registry::load(&engine, &specs).expect("registry loads");
    let data = tempfile::tempdir().unwrap();
    let store = AsyncStore::open(data.path()).expect("store opens");
    let options = AsyncOptions {
        retry_delay: Some(Duration::from_millis(100)),
    };
    let server = Server::new(engine, registry, None)
        .with_async(store.clone(), &options)
        .expect("async settings");
    server.start().await.expect("pools start");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(server.run(listener, async move {
        let _ = rx.await;
    }));
    Running {
        addr,
        store,
        stop: Some(tx),
        task,
        _data: data,
    }
}

/// A complete answer, as the assertions below read it.
struct Resp {
    status: u16,
    headers: http::HeaderMap,
    body: String,
}

impl Resp {
    fn header(&self, name: &str) -> Option<String> {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    }
    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }
}

/// One request over a fresh connection (testkit's client); an early answer (413) to a body the
/// server stops reading is still seen.
async fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Resp {
    let r = http::request(addr, method, path, headers, body)
        .await
        .unwrap_or_else(|e| panic!("{method} {path}: {e}"));
    Resp {
        status: r.code(),
        body: r.text(),
        headers: r.headers,
    }
}

const ECHO: &str = r#"
while next; do
  case "$BODY" in
    *boom*) fail "$REQUEST_ID" '{"errorType":"ValueError","errorMessage":"boom"}' ;;
    *) respond "$REQUEST_ID" "{\"echo\":$BODY,\"type\":\"$INVOKE_TYPE\"}" ;;
  esac
done
"#;

fn echo_pkg(name: &str) -> FixturePackage {
    FixturePackage::bash(&format!("func_name: {name}\ntimeout: 3\n"), ECHO)
}

fn status_path(function: &str, id: &str) -> String {
    format!("/v2/p/fgs/functions/{function}/async-invocations/{id}")
}

async fn wait_done(addr: SocketAddr, function: &str, id: &str) -> Value {
    let end = Instant::now() + Duration::from_secs(20);
    loop {
        let r = request(addr, "GET", &status_path(function, id), &[], b"").await;
        assert_eq!(r.status, 200, "{}", r.body);
        let v = r.json();
        if v["state"] == "succeeded" || v["state"] == "failed" {
            return v;
        }
        assert!(Instant::now() < end, "not done: {v}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn fg_async_answers_202_after_the_commit_and_runs_the_invocation() {
    let pkg = echo_pkg("echo");
    let s = serve(&[&pkg]).await;
    let r = request(
        s.addr,
        "POST",
        "/v2/p/fgs/functions/urn:fss:local:local:function:default:echo:latest/invocations-async",
        &[],
        br#"{"k":"v"}"#,
    )
    .await;
    assert_eq!(r.status, 202, "{}", r.body);
    let v = r.json();
    assert_eq!(v.as_object().unwrap().len(), 1, "only request_id: {v}");
    let id = v["request_id"].as_str().unwrap().to_string();
    assert_eq!(r.header("X-Cff-Request-Id").as_deref(), Some(id.as_str()));
    // Committed before the answer: the store has it at once.
    let st = s.store.status(&id).await.unwrap().expect("committed");
    assert_eq!(st.function, "echo");
    assert_eq!(st.payload_size, 9);

    let v = wait_done(s.addr, "echo", &id).await;
    assert_eq!(v["state"], "succeeded", "{v}");
    let result: Value = serde_json::from_str(v["result"].as_str().unwrap()).unwrap();
    assert_eq!(result["echo"]["k"], "v");
    assert_eq!(
        result["type"], "async",
        "the runtime sees an async invocation"
    );

    // An empty body is the event {}; a function error is recorded (no retry by default).
    let r = request(
        s.addr,
        "POST",
        "/v2/p/fgs/functions/echo/invocations-async",
        &[],
        b"",
    )
    .await;
    assert_eq!(r.status, 202);
    let v = wait_done(s.addr, "echo", r.json()["request_id"].as_str().unwrap()).await;
    assert_eq!(v["payload_size"], 2);
    let r = request(
        s.addr,
        "POST",
        "/v2/p/fgs/functions/echo/invocations-async",
        &[],
        br#"{"boom":1}"#,
    )
    .await;
    let v = wait_done(s.addr, "echo", r.json()["request_id"].as_str().unwrap()).await;
    assert_eq!(
        (v["state"].clone(), v["attempts"].clone()),
        ("failed".into(), 1.into()),
        "{v}"
    );
    assert!(v["error"].as_str().unwrap().contains("ValueError"), "{v}");

    // The list route, filtered by FunctionGraph's status words.
    let r = request(
        s.addr,
        "GET",
        "/v2/p/fgs/functions/echo/async-invocations",
        &[],
        b"",
    )
    .await;
    assert_eq!(
        (r.status, r.json()["count"].clone()),
        (200, 3.into()),
        "{}",
        r.body
    );
    let r = request(
        s.addr,
        "GET",
        "/v2/p/fgs/functions/echo/async-invocations?status=FAIL",
        &[],
        b"",
    )
    .await;
    assert_eq!(r.json()["count"], 1, "{}", r.body);
    let r = request(
        s.addr,
        "GET",
        "/v2/p/fgs/functions/echo/async-invocations?status=NOPE",
        &[],
        b"",
    )
    .await;
    assert_eq!(
        (r.status, r.json()["error_code"].clone()),
        (400, "FSS.0400".into())
    );
    s.stop().await;
}

#[tokio::test]
async fn async_body_limit_is_256_kib_in_both_dialects() {
    let pkg = echo_pkg("echo");
    let s = serve(&[&pkg]).await;
    let limit = 256 * 1024;
    let fg = "/v2/p/fgs/functions/echo/invocations-async";
    let mut at_limit = vec![b'a'; limit];
    at_limit[0] = b'"';
    at_limit[limit - 1] = b'"';
    let r = request(s.addr, "POST", fg, &[], &at_limit).await;
    assert_eq!(r.status, 202, "exactly 256 KiB is accepted: {}", r.body);
    let r = request(s.addr, "POST", fg, &[], &vec![b'a'; limit + 1]).await;
    assert_eq!(r.status, 413);
    assert_eq!(r.json()["error_code"], "FSS.1201", "{}", r.body);
    let r = request(
        s.addr,
        "POST",
        "/2015-03-31/functions/echo/invocations",
        &[("X-Amz-Invocation-Type", "Event")],
        &vec![b'a'; limit + 1],
    )
    .await;
    assert_eq!(r.status, 413);
    assert_eq!(
        r.header("x-amzn-ErrorType").as_deref(),
        Some("RequestEntityTooLargeException")
    );
    // Nothing over the limit was queued.
    let page = s.store.list(ListFilter::default()).await.unwrap();
    assert_eq!(page.count, 1);
    s.stop().await;
}

#[tokio::test]
async fn lambda_event_is_202_with_an_empty_body_and_the_request_id() {
    let pkg = echo_pkg("echo");
    let s = serve(&[&pkg]).await;
    let r = request(
        s.addr,
        "POST",
        "/2015-03-31/functions/echo/invocations",
        &[("X-Amz-Invocation-Type", "Event")],
        br#"{"l":1}"#,
    )
    .await;
    assert_eq!(r.status, 202, "{}", r.body);
    assert!(r.body.is_empty(), "{}", r.body);
    let id = r.header("x-amzn-RequestId").expect("request id");
    let v = wait_done(s.addr, "echo", &id).await;
    assert_eq!(v["state"], "succeeded", "{v}");
    assert_eq!(v["source"], "lambda");
    let r = request(
        s.addr,
        "POST",
        "/2015-03-31/functions/nope/invocations",
        &[("X-Amz-Invocation-Type", "Event")],
        b"{}",
    )
    .await;
    assert_eq!(r.status, 404);
    s.stop().await;
}

#[tokio::test]
async fn status_is_404_for_unknown_ids_and_other_functions() {
    let a = echo_pkg("alpha");
    let b = echo_pkg("beta");
    let s = serve(&[&a, &b]).await;
    let r = request(
        s.addr,
        "POST",
        "/v2/p/fgs/functions/alpha/invocations-async",
        &[],
        b"{}",
    )
    .await;
    let id = r.json()["request_id"].as_str().unwrap().to_string();
    let r = request(s.addr, "GET", &status_path("alpha", &id), &[], b"").await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["function"], "alpha");
    let r = request(s.addr, "GET", &status_path("beta", &id), &[], b"").await;
    assert_eq!(
        (r.status, r.json()["error_code"].clone()),
        (404, "FSS.0404".into())
    );
    let r = request(s.addr, "GET", &status_path("alpha", "no-such-id"), &[], b"").await;
    assert_eq!(
        (r.status, r.json()["error_code"].clone()),
        (404, "FSS.0404".into())
    );
    let r = request(s.addr, "GET", &status_path("gamma", &id), &[], b"").await;
    assert_eq!(
        (r.status, r.json()["error_code"].clone()),
        (404, "FSS.1051".into())
    );
    s.stop().await;
}

/// FunctionGraph documents that HTTP functions cannot be invoked asynchronously: 400 FSS.0400
/// with a message saying so, and nothing is queued.
#[tokio::test]
async fn fg_async_refuses_http_functions() {
    let pkg = FixturePackage::empty("func_name: web\nruntime: http\n");
    pkg.write(
        "bootstrap",
        "exec python3 -m http.server 8000 --bind 127.0.0.1\n",
    );
    let s = serve(&[&pkg]).await;
    let r = request(
        s.addr,
        "POST",
        "/v2/p/fgs/functions/web/invocations-async",
        &[],
        b"{}",
    )
    .await;
    assert_eq!(r.status, 400, "{}", r.body);
    let v = r.json();
    assert_eq!(v["error_code"], "FSS.0400", "{v}");
    let msg = v["error_msg"].as_str().unwrap();
    assert!(
        msg.contains("web is an HTTP function") && msg.contains("cannot be invoked asynchronously"),
        "{msg}"
    );
    let page = s.store.list(ListFilter::default()).await.unwrap();
    assert_eq!(page.count, 0, "nothing queued");
    s.stop().await;
}
