//! The Lambda routers alone (no processes): status codes, bodies and headers of the Runtime,
//! Extensions and Telemetry APIs as lambda-facts §1–3 give them, with the test playing the
//! engine through `InstanceApi::detached`.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use bytes::Bytes;
use fnbox_engine::instance::channel::{RuntimeReply, Work, WorkKind};
use fnbox_engine::instance::extensions::ShutdownReason;
use fnbox_engine::telemetry::{Event, Phase};
use fnbox_engine::{InstanceApi, InvokeType};
use fnbox_testkit::{Behaviour, FixturePackage, Listener};
use http::{HeaderMap, Request, StatusCode};
use serde_json::{json, Value};
use tower::ServiceExt;

struct Fixture {
    _pkg: FixturePackage,
    api: Arc<InstanceApi>,
    init_rx: Option<tokio::sync::oneshot::Receiver<Bytes>>,
}

fn fixture(extensions: &[&str]) -> Fixture {
    let pkg = FixturePackage::bash(
        "func_name: lam\ndialect: lambda\nhandler: main.handler\ntimeout: 5\n",
        "exit 0",
    );
    for e in extensions {
        pkg.write_exec(&format!("extensions/{e}"), "#!/bin/sh\n");
    }
    let package = Arc::new(fnbox_package::load(pkg.path()).expect("package"));
    let (api, init_rx) = InstanceApi::detached(package, "lam-128-00000000");
    Fixture {
        _pkg: pkg,
        api: Arc::new(api),
        init_rx: Some(init_rx),
    }
}

struct Reply {
    status: StatusCode,
    headers: HeaderMap,
    body: Bytes,
}

impl Reply {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|_| panic!("not JSON: {:?}", self.body))
    }
    fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_else(|| panic!("no header {name} in {:?}", self.headers))
    }
}

async fn call(api: &Arc<InstanceApi>, req: Request<Body>) -> Reply {
    let router = fnbox_lambda::api::router(api.clone());
    let resp = router.oneshot(req).await.unwrap();
    let status = resp.status();
    let headers = resp.headers().clone();
    let body = axum::body::to_bytes(resp.into_body(), usize::MAX)
        .await
        .unwrap();
    Reply {
        status,
        headers,
        body,
    }
}

fn get(path: &str, headers: &[(&str, &str)]) -> Request<Body> {
    let mut b = Request::get(path);
    for (k, v) in headers {
        b = b.header(*k, *v);
    }
    b.body(Body::empty()).unwrap()
}

fn post(path: &str, headers: &[(&str, &str)], body: impl Into<Body>) -> Request<Body> {
    let mut b = Request::post(path);
    for (k, v) in headers {
        b = b.header(*k, *v);
    }
    b.body(body.into()).unwrap()
}

fn put(path: &str, headers: &[(&str, &str)], body: &str) -> Request<Body> {
    let mut b = Request::put(path);
    for (k, v) in headers {
        b = b.header(*k, *v);
    }
    b.body(Body::from(body.to_string())).unwrap()
}

fn work(id: &str, body: &'static str, deadline: u64) -> Work {
    Work {
        request_id: id.into(),
        body: Bytes::from_static(body.as_bytes()),
        kind: WorkKind::Invoke(InvokeType::Sync),
        deadline_epoch_ms: deadline,
        trace: None,
    }
}

const RID: &str = "8476a536-e9f4-11e8-9739-2dfe598c3fcd";
const ACCEPTED: &str = "{\"status\":\"OK\"}\n";

fn next_path() -> &'static str {
    "/2018-06-01/runtime/invocation/next"
}

fn response_path(id: &str) -> String {
    format!("/2018-06-01/runtime/invocation/{id}/response")
}

fn error_path(id: &str) -> String {
    format!("/2018-06-01/runtime/invocation/{id}/error")
}

#[tokio::test]
async fn next_carries_every_header_and_response_is_accepted_once() {
    let f = fixture(&[]);
    let deadline = 1_700_000_005_000u64;
    let reply = f
        .api
        .runtime
        .submit(work(RID, r#"{"k":1}"#, deadline))
        .await
        .unwrap();
    let r = call(&f.api, get(next_path(), &[])).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(&r.body[..], br#"{"k":1}"#);
    assert_eq!(r.header("lambda-runtime-aws-request-id"), RID);
    assert_eq!(r.header("lambda-runtime-deadline-ms"), "1700000005000");
    assert_eq!(
        r.header("lambda-runtime-invoked-function-arn"),
        "arn:aws:lambda:us-east-1:000000000000:function:lam"
    );
    assert_eq!(
        r.header("lambda-runtime-trace-id"),
        "Root=1-6553f100-8476a536e9f411e897392dfe;Parent=97392dfe598c3fcd;Sampled=0"
    );
    assert_eq!(r.header("content-type"), "application/json");
    assert!(r.headers.get("lambda-runtime-client-context").is_none());

    // A second `next` before answering is not a legal transition.
    let r = call(&f.api, get(next_path(), &[])).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert_eq!(r.json()["errorType"], "InvalidStateTransition");

    let r = call(&f.api, post(&response_path("not-this-one"), &[], "x")).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        &r.body[..],
        b"{\"errorMessage\":\"Invalid request ID\",\"errorType\":\"InvalidRequestID\"}\n"
    );
    // An id that does not decode (percent-encoded bytes that are not UTF-8; the input the
    // instance_api_fg fuzz target found for FunctionGraph) is an invalid id, in the same shape.
    for path in [response_path("%FF"), error_path("%C3%28")] {
        let r = call(&f.api, post(&path, &[], "x")).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{path}");
        assert_eq!(
            &r.body[..],
            b"{\"errorMessage\":\"Invalid request ID\",\"errorType\":\"InvalidRequestID\"}\n",
            "{path}"
        );
    }

    let r = call(&f.api, post(&response_path(RID), &[], "\"done\"")).await;
    assert_eq!(
        (r.status, &r.body[..]),
        (StatusCode::ACCEPTED, ACCEPTED.as_bytes())
    );
    assert_eq!(r.header("content-type"), "application/json");
    assert!(matches!(reply.await.unwrap(), RuntimeReply::Response(b) if &b[..] == b"\"done\""));

    let r = call(&f.api, post(&response_path(RID), &[], "\"again\"")).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "answered already");
    assert_eq!(r.json()["errorType"], "InvalidRequestID");
}

#[tokio::test]
async fn error_posts_reach_the_caller() {
    let f = fixture(&[]);
    let reply = f.api.runtime.submit(work("e1", "{}", 1)).await.unwrap();
    call(&f.api, get(next_path(), &[])).await;
    let body = r#"{"errorType":"&str","errorMessage":"boom"}"#;
    let r = call(
        &f.api,
        post(
            &error_path("e1"),
            &[("lambda-runtime-function-error-type", "unhandled")],
            body,
        ),
    )
    .await;
    assert_eq!(
        (r.status, &r.body[..]),
        (StatusCode::ACCEPTED, ACCEPTED.as_bytes())
    );
    assert!(matches!(reply.await.unwrap(), RuntimeReply::Error(b) if b == body));

    // Header only: the document is built from the header.
    let reply = f.api.runtime.submit(work("e2", "{}", 1)).await.unwrap();
    call(&f.api, get(next_path(), &[])).await;
    let r = call(
        &f.api,
        post(
            &error_path("e2"),
            &[(
                "Lambda-Runtime-Function-Error-Type",
                "Runtime.NoSuchHandler",
            )],
            "",
        ),
    )
    .await;
    assert_eq!(r.status, StatusCode::ACCEPTED);
    match reply.await.unwrap() {
        RuntimeReply::Error(b) => {
            let v: Value = serde_json::from_slice(&b).unwrap();
            assert_eq!(v["errorType"], "Runtime.NoSuchHandler");
        }
        other => panic!("{other:?}"),
    }
    let r = call(&f.api, post(&error_path("e2"), &[], "{}")).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn responses_over_six_mib_are_413_and_fail_the_invocation() {
    let f = fixture(&[]);
    let reply = f.api.runtime.submit(work("big", "{}", 1)).await.unwrap();
    call(&f.api, get(next_path(), &[])).await;
    let big = vec![b'a'; 6 * 1024 * 1024 + 101];
    let r = call(&f.api, post(&response_path("big"), &[], big)).await;
    assert_eq!(r.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(
        r.json(),
        json!({"errorMessage":"Exceeded maximum allowed payload size (6291556 bytes).","errorType":"RequestEntityTooLarge"})
    );
    match reply.await.unwrap() {
        RuntimeReply::Error(b) => {
            let v: Value = serde_json::from_slice(&b).unwrap();
            assert_eq!(v["errorType"], "Function.ResponseSizeTooLarge");
        }
        other => panic!("{other:?}"),
    }
    // Exactly the limit is fine.
    let reply = f.api.runtime.submit(work("fits", "{}", 1)).await.unwrap();
    call(&f.api, get(next_path(), &[])).await;
    let r = call(
        &f.api,
        post(
            &response_path("fits"),
            &[],
            vec![b'a'; 6 * 1024 * 1024 + 100],
        ),
    )
    .await;
    assert_eq!(r.status, StatusCode::ACCEPTED);
    assert!(matches!(reply.await.unwrap(), RuntimeReply::Response(b) if b.len() == 6_291_556));
}

#[tokio::test]
async fn streamed_responses_with_trailers_and_bad_modes() {
    use http_body_util::StreamBody;
    let f = fixture(&[]);
    let reply = f.api.runtime.submit(work("s1", "{}", 1)).await.unwrap();
    call(&f.api, get(next_path(), &[])).await;
    let mut trailers = HeaderMap::new();
    trailers.insert(
        "lambda-runtime-function-error-type",
        "Error".parse().unwrap(),
    );
    trailers.insert(
        "lambda-runtime-function-error-body",
        "eyJlcnJvclR5cGUiOiJFcnJvciIsImVycm9yTWVzc2FnZSI6Im1pZC1zdHJlYW0ifQ=="
            .parse()
            .unwrap(),
    );
    let frames: Vec<Result<http_body::Frame<Bytes>, std::io::Error>> = vec![
        Ok(http_body::Frame::data(Bytes::from_static(b"part one "))),
        Ok(http_body::Frame::trailers(trailers)),
    ];
    let body = Body::new(StreamBody::new(futures::stream::iter(frames)));
    let r = call(
        &f.api,
        post(
            &response_path("s1"),
            &[("Lambda-Runtime-Function-Response-Mode", "streaming")],
            body,
        ),
    )
    .await;
    assert_eq!(r.status, StatusCode::ACCEPTED);
    match reply.await.unwrap() {
        RuntimeReply::Error(b) => {
            let v: Value = serde_json::from_slice(&b).unwrap();
            assert_eq!(v, json!({"errorType":"Error","errorMessage":"mid-stream"}));
        }
        other => panic!("{other:?}"),
    }

    let reply = f.api.runtime.submit(work("s2", "{}", 1)).await.unwrap();
    call(&f.api, get(next_path(), &[])).await;
    let r = call(
        &f.api,
        post(
            &response_path("s2"),
            &[
                ("Lambda-Runtime-Function-Response-Mode", "streaming"),
                (
                    "Content-Type",
                    "application/vnd.awslambda.http-integration-response",
                ),
            ],
            Bytes::from_static(b"{\"statusCode\":200}\0\0\0\0\0\0\0\0streamed"),
        ),
    )
    .await;
    assert_eq!(r.status, StatusCode::ACCEPTED);
    assert!(matches!(reply.await.unwrap(), RuntimeReply::Response(b) if &b[..] == b"streamed"));

    let reply = f.api.runtime.submit(work("s3", "{}", 1)).await.unwrap();
    call(&f.api, get(next_path(), &[])).await;
    let r = call(
        &f.api,
        post(
            &response_path("s3"),
            &[("Lambda-Runtime-Function-Response-Mode", "buffered")],
            "x",
        ),
    )
    .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        r.json(),
        json!({"errorMessage":"Invalid function response mode","errorType":"InvalidFunctionResponseMode"})
    );
    match reply.await.unwrap() {
        RuntimeReply::Error(b) => {
            assert!(String::from_utf8_lossy(&b).contains("Runtime.InvalidResponseModeHeader"))
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn init_error_is_accepted_once() {
    let mut f = fixture(&[]);
    let r = call(
        &f.api,
        post(
            "/2018-06-01/runtime/init/error",
            &[("Lambda-Runtime-Function-Error-Type", "Runtime.ImportModuleError")],
            r#"{"errorMessage":"No module named 'nope'","errorType":"Runtime.ImportModuleError","stackTrace":[]}"#,
        ),
    )
    .await;
    assert_eq!(
        (r.status, &r.body[..]),
        (StatusCode::ACCEPTED, ACCEPTED.as_bytes())
    );
    let body = f.init_rx.take().unwrap().await.unwrap();
    assert!(String::from_utf8_lossy(&body).contains("No module named"));
    let r = call(&f.api, post("/2018-06-01/runtime/init/error", &[], "{}")).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert_eq!(r.json()["errorType"], "InvalidStateTransition");
    let r = call(&f.api, get("/2018-06-01/ping", &[])).await;
    assert_eq!((r.status, &r.body[..]), (StatusCode::OK, &b"pong"[..]));
}

async fn register(api: &Arc<InstanceApi>, name: &str, body: &str) -> Reply {
    call(
        api,
        post(
            "/2020-01-01/extension/register",
            &[
                ("Lambda-Extension-Name", name),
                ("Content-Type", "application/json"),
            ],
            body.to_string(),
        ),
    )
    .await
}

#[tokio::test]
async fn register_rules() {
    let f = fixture(&["ext-a", "ext-b"]);
    let r = call(
        &f.api,
        post(
            "/2020-01-01/extension/register",
            &[
                ("Lambda-Extension-Name", "ext-a"),
                ("Lambda-Extension-Accept-Feature", "accountId"),
            ],
            r#"{"events":["INVOKE","SHUTDOWN"]}"#,
        ),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(
        r.json(),
        json!({"functionName":"lam","functionVersion":"$LATEST","handler":"main.handler","accountId":"000000000000"})
    );
    let id = r.header("lambda-extension-identifier").to_string();
    assert!(uuid::Uuid::parse_str(&id).is_ok(), "{id}");

    let r = register(&f.api, "ext-a", r#"{"events":["INVOKE"]}"#).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert_eq!(
        r.json(),
        json!({"errorMessage":"Extension with this name already registered","errorType":"Extension.InvalidExtensionState"})
    );
    let r = register(&f.api, "ext-b", r#"{"events":["BOGUS"]}"#).await;
    assert_eq!(
        (r.status, r.json()["errorType"].clone()),
        (StatusCode::FORBIDDEN, json!("Extension.InvalidEventType"))
    );
    // A body that is not JSON: refused in Lambda's error shape, naming the body.
    let r = register(&f.api, "ext-b", "events=INVOKE").await;
    assert_eq!(
        (r.status, r.json()["errorType"].clone()),
        (StatusCode::FORBIDDEN, json!("InvalidRequestFormat"))
    );
    assert!(
        r.json()["errorMessage"]
            .as_str()
            .unwrap()
            .starts_with("invalid register body"),
        "{:?}",
        r.json()
    );
    let r = call(&f.api, post("/2020-01-01/extension/register", &[], "{}")).await;
    assert_eq!(
        (r.status, r.json()),
        (
            StatusCode::FORBIDDEN,
            json!({"errorMessage":"Empty extension name","errorType":"Extension.InvalidExtensionName"})
        )
    );
    // An unknown name is an internal extension: fine without SHUTDOWN, refused with it.
    let r = register(
        &f.api,
        "_lambda-rust-runtime-no-op-graceful-shutdown-helper",
        r#"{"events":[]}"#,
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(r.json().get("accountId").is_none());
    let r = register(&f.api, "internal", r#"{"events":["SHUTDOWN"]}"#).await;
    assert_eq!(
        (r.status, r.json()["errorType"].clone()),
        (StatusCode::FORBIDDEN, json!("Extension.InvalidEventType"))
    );

    f.api.extensions.close();
    let r = register(&f.api, "ext-b", r#"{"events":["INVOKE"]}"#).await;
    assert_eq!(
        (r.status, r.json()),
        (
            StatusCode::FORBIDDEN,
            json!({"errorMessage":"Extension registration closed already","errorType":"Extension.RegistrationClosed"})
        )
    );
}

#[tokio::test]
async fn event_next_hands_out_invoke_and_shutdown() {
    let f = fixture(&["ext-a"]);
    let id = register(&f.api, "ext-a", r#"{"events":["INVOKE","SHUTDOWN"]}"#)
        .await
        .header("lambda-extension-identifier")
        .to_string();
    let next = "/2020-01-01/extension/event/next";
    let r = call(&f.api, get(next, &[])).await;
    assert_eq!(
        (r.status, r.json()),
        (
            StatusCode::FORBIDDEN,
            json!({"errorMessage":"Missing Lambda-Extension-Identifier header","errorType":"Extension.MissingExtensionIdentifier"})
        )
    );
    let r = call(
        &f.api,
        get(next, &[("Lambda-Extension-Identifier", "not-a-uuid")]),
    )
    .await;
    assert_eq!(
        r.json()["errorType"],
        "Extension.InvalidExtensionIdentifier"
    );
    let unknown = uuid::Uuid::new_v4().to_string();
    let r = call(
        &f.api,
        get(next, &[("Lambda-Extension-Identifier", &unknown)]),
    )
    .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert_eq!(
        r.json()["errorMessage"],
        format!("Unknown extension {unknown}")
    );

    let done = f
        .api
        .extensions
        .release_invoke(RID, 1_700_000_005_000)
        .unwrap();
    let r = call(&f.api, get(next, &[("Lambda-Extension-Identifier", &id)])).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.header("content-type"), "application/json");
    assert!(uuid::Uuid::parse_str(r.header("lambda-extension-event-identifier")).is_ok());
    assert_eq!(
        r.json(),
        json!({"eventType":"INVOKE","deadlineMs":1_700_000_005_000u64,"requestId":RID,
            "invokedFunctionArn":"arn:aws:lambda:us-east-1:000000000000:function:lam",
            "tracing":{"type":"X-Amzn-Trace-Id","value":"Root=1-6553f100-8476a536e9f411e897392dfe;Parent=97392dfe598c3fcd;Sampled=0"}})
    );
    // The invocation is not over for this extension until it asks again.
    let done = tokio::spawn(done);
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(!done.is_finished());
    let api = f.api.clone();
    let id2 = id.clone();
    let parked = tokio::spawn(async move {
        call(&api, get(next, &[("Lambda-Extension-Identifier", &id2)])).await
    });
    tokio::time::timeout(Duration::from_secs(2), done)
        .await
        .unwrap()
        .unwrap();
    let _ = f
        .api
        .extensions
        .release_shutdown(ShutdownReason::Spindown, 42);
    let r = tokio::time::timeout(Duration::from_secs(2), parked)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        r.json(),
        json!({"eventType":"SHUTDOWN","shutdownReason":"spindown","deadlineMs":42})
    );
}

#[tokio::test]
async fn extension_error_reports() {
    let f = fixture(&["ext-a"]);
    let id = register(&f.api, "ext-a", r#"{"events":["INVOKE"]}"#)
        .await
        .header("lambda-extension-identifier")
        .to_string();
    let r = call(
        &f.api,
        post(
            "/2020-01-01/extension/exit/error",
            &[("Lambda-Extension-Identifier", &id)],
            "",
        ),
    )
    .await;
    assert_eq!(
        (r.status, r.json()),
        (
            StatusCode::FORBIDDEN,
            json!({"errorMessage":"Lambda-Extension-Function-Error-Type not found","errorType":"Extension.MissingHeader"})
        )
    );
    let r = call(
        &f.api,
        post(
            "/2020-01-01/extension/init/error",
            &[
                ("Lambda-Extension-Identifier", &id),
                (
                    "Lambda-Extension-Function-Error-Type",
                    "Extension.ConfigInvalid",
                ),
            ],
            r#"{"errorMessage":"bad config","errorType":"Extension.ConfigInvalid"}"#,
        ),
    )
    .await;
    assert_eq!(
        (r.status, &r.body[..]),
        (StatusCode::ACCEPTED, ACCEPTED.as_bytes())
    );
    let failure = f.api.extensions.failed().await;
    assert_eq!(
        (failure.name.as_str(), failure.error_type),
        ("ext-a", "Extension.InitError")
    );
    // No further call succeeds.
    let r = call(
        &f.api,
        get(
            "/2020-01-01/extension/event/next",
            &[("Lambda-Extension-Identifier", &id)],
        ),
    )
    .await;
    assert_eq!(
        (r.status, r.json()["errorType"].clone()),
        (
            StatusCode::FORBIDDEN,
            json!("Extension.InvalidExtensionState")
        )
    );
}

#[tokio::test]
async fn telemetry_subscription_delivers_lambda_records_to_loopback() {
    let f = fixture(&["ext-a"]);
    let listener = Listener::start(0, Behaviour::Ok).await.unwrap();
    let sub = format!(
        r#"{{"schemaVersion":"2022-07-01","types":["platform","function"],"buffering":{{"timeoutMs":25}},"destination":{{"protocol":"HTTP","URI":"http://sandbox.localdomain:{}/telemetry"}}}}"#,
        listener.addr.port()
    );
    let r = call(&f.api, put("/2022-07-01/telemetry", &[], &sub)).await;
    assert_eq!(
        r.json()["errorType"],
        "Extension.MissingExtensionIdentifier"
    );
    let id = register(&f.api, "ext-a", r#"{"events":["INVOKE"]}"#)
        .await
        .header("lambda-extension-identifier")
        .to_string();
    let r = call(
        &f.api,
        put(
            "/2022-07-01/telemetry",
            &[("Lambda-Extension-Identifier", &id)],
            "{}",
        ),
    )
    .await;
    assert_eq!(
        (r.status, r.json()["errorType"].clone()),
        (StatusCode::BAD_REQUEST, json!("ValidationError"))
    );

    // Published before the subscription: replayed to it.
    f.api.bus.publish(Event::Start {
        phase: Phase::Init,
        time: chrono::Utc::now(),
        trace_id: "cold".into(),
        trace: None,
    });
    let r = call(
        &f.api,
        put(
            "/2022-07-01/telemetry",
            &[("Lambda-Extension-Identifier", &id)],
            &sub,
        ),
    )
    .await;
    assert_eq!((r.status, &r.body[..]), (StatusCode::OK, &b"\"OK\""[..]));
    f.api.bus.publish(Event::Function {
        time: chrono::Utc::now(),
        line: "a log line".into(),
    });
    assert!(
        fnbox_testkit::wait_until(Duration::from_secs(3), || listener.events().len() >= 3).await,
        "{:?}",
        listener.events()
    );
    let events = listener.events();
    let types: Vec<&str> = events.iter().map(|e| e["type"].as_str().unwrap()).collect();
    assert_eq!(
        types,
        [
            "platform.initStart",
            "platform.telemetrySubscription",
            "function"
        ]
    );
    assert_eq!(
        events[0]["record"],
        json!({"initializationType":"on-demand","phase":"init"})
    );
    assert_eq!(
        events[1]["record"],
        json!({"name":"ext-a","state":"Subscribed","types":["platform","function"]})
    );
    assert_eq!(events[2]["record"], "a log line");
}

/// The Logs API (2020-08-15 / 2021-03-18) delivers Logs API records from the same bus:
/// `platform.logsSubscription`, `platform.start`, `function`, `platform.runtimeDone`,
/// `platform.end`, `platform.report`; bad bodies are `Logs.ValidationError`.
#[tokio::test]
async fn logs_api_subscription_delivers_logs_api_records() {
    let f = fixture(&["ext-a"]);
    let listener = Listener::start(0, Behaviour::Ok).await.unwrap();
    let id = register(&f.api, "ext-a", r#"{"events":["INVOKE"]}"#)
        .await
        .header("lambda-extension-identifier")
        .to_string();
    let r = call(
        &f.api,
        put(
            "/2020-08-15/logs",
            &[("Lambda-Extension-Identifier", &id)],
            r#"{"types":["platform"]}"#,
        ),
    )
    .await;
    assert_eq!(
        (r.status, r.json()["errorType"].clone()),
        (StatusCode::BAD_REQUEST, json!("Logs.ValidationError"))
    );
    let sub = format!(
        r#"{{"schemaVersion":"2021-03-18","types":["platform","function"],"buffering":{{"timeoutMs":25,"maxItems":1000,"maxBytes":262144}},"destination":{{"protocol":"HTTP","URI":"http://sandbox:{}/logs","method":"PUT"}}}}"#,
        listener.addr.port()
    );
    let r = call(
        &f.api,
        put(
            "/2020-08-15/logs",
            &[("Lambda-Extension-Identifier", &id)],
            &sub,
        ),
    )
    .await;
    assert_eq!((r.status, &r.body[..]), (StatusCode::OK, &b"\"OK\""[..]));
    let now = chrono::Utc::now();
    let metrics = fnbox_engine::telemetry::ReportMetrics::new(
        Duration::from_millis(12),
        20 * 1024 * 1024,
        128,
    );
    for event in [
        Event::Start {
            phase: Phase::Invoke,
            time: now,
            trace_id: "r1".into(),
            trace: None,
        },
        Event::Function {
            time: now,
            line: "hello".into(),
        },
        Event::RuntimeDone {
            phase: Phase::Invoke,
            time: now,
            trace_id: "r1".into(),
            status: fnbox_engine::telemetry::Status::Success,
            error_type: None,
            spans: Vec::new(),
            produced_bytes: None,
        },
        Event::Report {
            phase: Phase::Invoke,
            start: now,
            end: now,
            trace_id: "r1".into(),
            status: fnbox_engine::telemetry::Status::Success,
            error_type: None,
            metrics,
            pod_name: "p".into(),
        },
    ] {
        f.api.bus.publish(event);
    }
    assert!(
        fnbox_testkit::wait_until(Duration::from_secs(3), || listener.events().len() >= 6).await,
        "{:?}",
        listener.events()
    );
    let events = listener.events();
    let types: Vec<&str> = events.iter().map(|e| e["type"].as_str().unwrap()).collect();
    assert_eq!(
        types,
        [
            "platform.logsSubscription",
            "platform.start",
            "function",
            "platform.runtimeDone",
            "platform.end",
            "platform.report"
        ]
    );
    assert_eq!(
        events[0]["record"],
        json!({"name":"ext-a","state":"Subscribed","types":["platform","function"]})
    );
    assert_eq!(
        events[1]["record"],
        json!({"requestId":"r1","version":"$LATEST"})
    );
    assert_eq!(events[2]["record"], "hello");
    assert_eq!(
        events[3]["record"],
        json!({"requestId":"r1","status":"success"})
    );
    assert_eq!(events[4]["record"], json!({"requestId":"r1"}));
    assert_eq!(
        events[5]["record"],
        json!({"requestId":"r1","metrics":{"durationMs":12.0,"billedDurationMs":12,"memorySizeMB":128,"maxMemoryUsedMB":20}})
    );
}

/// A `provided` function without `handler:` has none on Lambda: the register response says
/// `""` (what Lambda and its emulator pass on), not FunctionGraph's `index.handler` default.
#[tokio::test]
async fn register_response_handler_is_empty_when_none_is_configured() {
    let pkg = FixturePackage::bash("func_name: lam\ndialect: lambda\n", "exit 0");
    pkg.write_exec("extensions/ext-a", "#!/bin/sh\n");
    let package = Arc::new(fnbox_package::load(pkg.path()).expect("package"));
    let (api, _init_rx) = InstanceApi::detached(package, "lam-128-00000000");
    let r = register(&Arc::new(api), "ext-a", r#"{"events":["INVOKE"]}"#).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(
        r.json(),
        json!({"functionName":"lam","functionVersion":"$LATEST","handler":""})
    );
}

#[tokio::test]
async fn restore_endpoints_exist_for_snapstart_functions_only() {
    let f = fixture(&[]);
    let r = call(&f.api, get("/2018-06-01/runtime/restore/next", &[])).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);

    let pkg = FixturePackage::bash(
        "func_name: lam\ndialect: lambda\nhandler: main.handler\nsnap_start: PublishedVersions\n",
        "exit 0",
    );
    let package = Arc::new(fnbox_package::load(pkg.path()).expect("package"));
    let (api, _init_rx) = InstanceApi::detached(package, "lam-128-00000000");
    let api = Arc::new(api);
    let error = || {
        post(
            "/2018-06-01/runtime/restore/error",
            &[(
                "Lambda-Runtime-Function-Error-Type",
                "Runtime.AfterRestoreError",
            )],
            r#"{"errorMessage":"x","errorType":"Runtime.AfterRestoreError"}"#,
        )
    };
    let r = call(&api, error()).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "no restore under way yet");
    // restore/next blocks until the engine restores the instance, then answers 200, empty.
    let next = tokio::spawn({
        let api = api.clone();
        async move { call(&api, get("/2018-06-01/runtime/restore/next", &[])).await }
    });
    tokio::time::timeout(Duration::from_secs(5), api.restore.reached())
        .await
        .expect("restore/next reached the gate");
    assert!(!next.is_finished());
    api.restore.release();
    let r = next.await.unwrap();
    assert_eq!((r.status, r.body.len()), (StatusCode::OK, 0));
    let r = call(&api, error()).await;
    assert_eq!(
        r.status,
        StatusCode::ACCEPTED,
        "awslambdaric demands exactly 202"
    );
    let r = call(&api, error()).await;
    assert_eq!(
        r.status,
        StatusCode::FORBIDDEN,
        "one restore error per restore"
    );
}
