//! `Extension::run` against a mock platform: the register/subscribe requests, the listeners,
//! the handlers, refusals and shutdown.

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{eventually, free_port, post, MockPlatform, Script};
use fnbox_extension::{
    Buffering, Extension, ExtensionConfig, ExtensionError, InvokePush, Stream, TelemetryEvent,
};
use serde_json::{json, Value};
use tokio::sync::oneshot;

#[derive(Default)]
struct Received {
    invokes: Vec<InvokePush>,
    batches: Vec<Vec<TelemetryEvent>>,
    shutdown: bool,
    ready: Option<String>,
}

type Shared = Arc<Mutex<Received>>;

/// A builder wired to record everything into `Received`.
fn recording(
    platform: &MockPlatform,
    rec: &Shared,
    invoke: String,
    telemetry: String,
) -> fnbox_extension::ExtensionBuilder {
    let (a, b, c, d) = (rec.clone(), rec.clone(), rec.clone(), rec.clone());
    Extension::builder("extensionTelemetry.sh")
        .config(ExtensionConfig::new(platform.addr.to_string()).unwrap())
        .allow_any_port()
        .invoke_address(invoke)
        .on_invoke(move |p| {
            let a = a.clone();
            async move { a.lock().unwrap().invokes.push(p) }
        })
        .telemetry(telemetry, &Stream::ALL, None, move |events| {
            let b = b.clone();
            async move { b.lock().unwrap().batches.push(events) }
        })
        .on_ready(move |r| c.lock().unwrap().ready = Some(r.function_name.clone()))
        .on_shutdown(move || async move { d.lock().unwrap().shutdown = true })
        .shutdown_grace(Duration::from_millis(300))
}

fn header<'a>(seen: &'a common::Seen, name: &str) -> &'a str {
    seen.headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
}

#[tokio::test]
async fn registers_subscribes_serves_and_stops() {
    let platform = MockPlatform::start(Script::default()).await;
    let rec = Shared::default();
    let (invoke_port, telemetry_port) = (free_port(), free_port());
    let (stop, stopped) = oneshot::channel::<()>();
    let ext = recording(
        &platform,
        &rec,
        format!("127.0.0.1:{invoke_port}"),
        format!("127.0.0.1:{telemetry_port}"),
    )
    .shutdown_signal(async move {
        let _ = stopped.await;
    });
    let task = tokio::spawn(ext.run());
    eventually("ready", || rec.lock().unwrap().ready.is_some()).await;
    assert_eq!(rec.lock().unwrap().ready.as_deref(), Some("telemetry-demo"));

    let seen = platform.seen();
    assert_eq!(seen.len(), 2, "{seen:?}");
    assert_eq!(seen[0].path, "/extension/register");
    assert_eq!(
        header(&seen[0], "FunctionGraph-Extension-Name"),
        "extensionTelemetry.sh"
    );
    assert_eq!(
        header(&seen[0], "FunctionGraph-Extension-Address"),
        format!("127.0.0.1:{invoke_port}")
    );
    assert_eq!(seen[1].path, "/telemetry");
    let body: Value = serde_json::from_str(&seen[1].body).unwrap();
    assert_eq!(
        body,
        json!({"subscriber":{"protocol":"POST","uri":format!("http://127.0.0.1:{telemetry_port}")},
               "types":["platform","function","extension"]})
    );

    let (status, _) = post(
        &format!("http://127.0.0.1:{invoke_port}/extension/invoke"),
        r#"{"traceId":"r1","invokedFunctionUrn":"urn:fss:local:local:function:default:telemetry-demo:latest"}"#,
        &[],
    )
    .await;
    assert_eq!(status, 200);
    // The telemetry listener accepts any path, and the document's trailing commas.
    let (status, _) = post(
        &format!("http://127.0.0.1:{telemetry_port}/some/path"),
        r#"[{"name":"platform.start","startTime":"t","traceId":"r1"},{"name":"function","startTime":"t","logs":"[Function] x",},]"#,
        &[("content-type", "application/json")],
    )
    .await;
    assert_eq!(status, 200);
    // A body that is not an event array is refused, with the documented error shape.
    let (status, text) = post(&format!("http://127.0.0.1:{telemetry_port}/"), "nope", &[]).await;
    assert_eq!(status, 400);
    assert!(serde_json::from_str::<Value>(&text).unwrap()["errorMessage"].is_string());
    // The invoke path is not served by the telemetry listener's neighbour and vice versa.
    let (status, _) = post(&format!("http://127.0.0.1:{invoke_port}/"), "[]", &[]).await;
    assert_eq!(status, 404);

    stop.send(()).unwrap();
    let result = tokio::time::timeout(Duration::from_secs(5), task)
        .await
        .unwrap()
        .unwrap();
    assert!(result.is_ok(), "{result:?}");
    let rec = rec.lock().unwrap();
    assert!(rec.shutdown);
    assert_eq!(rec.invokes.len(), 1);
    assert_eq!(rec.invokes[0].trace_id, "r1");
    assert_eq!(rec.batches.len(), 1);
    assert!(matches!(rec.batches[0][0], TelemetryEvent::Start(_)));
    assert!(matches!(&rec.batches[0][1], TelemetryEvent::Function(l) if l.logs == "[Function] x"));
}

#[tokio::test]
async fn buffering_is_sent_without_nulls() {
    let platform = MockPlatform::start(Script::default()).await;
    let (stop, stopped) = oneshot::channel::<()>();
    let buffering = Buffering {
        max_items: Some(1000),
        max_bytes: None,
        timeout_ms: Some(25),
    };
    let ext = Extension::builder("extensionA.sh")
        .config(ExtensionConfig::new(platform.addr.to_string()).unwrap())
        .allow_any_port()
        .invoke_address("127.0.0.1:0")
        .telemetry(
            "127.0.0.1:0",
            &[Stream::Platform],
            Some(buffering),
            |_| async {},
        )
        .shutdown_signal(async move {
            let _ = stopped.await;
        });
    let task = tokio::spawn(ext.run());
    eventually("subscription", || platform.seen().len() == 2).await;
    let seen = platform.seen();
    let body: Value = serde_json::from_str(&seen[1].body).unwrap();
    // Same address twice: one listener serves both, so the URI is the registered address.
    let address = header(&seen[0], "FunctionGraph-Extension-Address").to_string();
    assert_eq!(
        body,
        json!({"subscriber":{"protocol":"POST","uri":format!("http://{address}")},"types":["platform"],
               "buffering":{"maxItems":1000,"timeoutMs":25}})
    );
    let (status, _) = post(
        &format!("http://{address}/extension/invoke"),
        r#"{"traceId":"a","invokedFunctionUrn":"u"}"#,
        &[],
    )
    .await;
    assert_eq!(status, 200);
    let (status, _) = post(&format!("http://{address}/"), "[]", &[]).await;
    assert_eq!(status, 200);
    stop.send(()).unwrap();
    assert!(tokio::time::timeout(Duration::from_secs(5), task)
        .await
        .unwrap()
        .unwrap()
        .is_ok());
}

#[tokio::test]
async fn listener_serves_before_the_subscription_is_answered() {
    let script = Script {
        deliver_on_subscribe: Some(
            r#"[{"name":"platform.initStart","startTime":"t","traceId":"cold"}]"#.into(),
        ),
        ..Script::default()
    };
    let platform = MockPlatform::start(script).await;
    let rec = Shared::default();
    let (stop, stopped) = oneshot::channel::<()>();
    let ext = recording(
        &platform,
        &rec,
        "127.0.0.1:0".into(),
        format!("127.0.0.1:{}", free_port()),
    )
    .shutdown_signal(async move {
        let _ = stopped.await;
    });
    let task = tokio::spawn(ext.run());
    eventually("ready", || rec.lock().unwrap().ready.is_some()).await;
    assert_eq!(rec.lock().unwrap().batches[0][0].trace_id(), Some("cold"));
    stop.send(()).unwrap();
    assert!(tokio::time::timeout(Duration::from_secs(5), task)
        .await
        .unwrap()
        .unwrap()
        .is_ok());
}

#[tokio::test]
async fn register_refusal_carries_the_error_info() {
    let script = Script {
        register: (
            400,
            r#"{"functionName":"","functionVersion":"","handler":"","errorInfo":{"errorType":"Extension.InvalidAddress","errorMessage":"address 127.0.0.1:8011 is outside 127.0.0.1:8081..8090"}}"#.into(),
        ),
        ..Script::default()
    };
    let platform = MockPlatform::start(script).await;
    let rec = Shared::default();
    let err = recording(&platform, &rec, "127.0.0.1:0".into(), "127.0.0.1:0".into())
        .run()
        .await
        .unwrap_err();
    match &err {
        ExtensionError::RegisterRefused {
            status,
            error_type,
            message,
        } => {
            assert_eq!(*status, 400);
            assert_eq!(error_type, "Extension.InvalidAddress");
            assert!(message.contains("outside"), "{message}");
        }
        other => panic!("{other:?}"),
    }
    assert!(
        err.to_string()
            .contains("registration refused (HTTP 400): Extension.InvalidAddress: address"),
        "{err}"
    );
    assert_eq!(
        platform.seen().len(),
        1,
        "no subscription after a refused registration"
    );
    assert!(rec.lock().unwrap().ready.is_none());
}

#[tokio::test]
async fn subscribe_refusal_carries_the_error_message() {
    let script = Script {
        subscribe: (400, r#"{"errorType":"Telemetry.SubscriberExists","errorMessage":"another extension already subscribed"}"#.into()),
        ..Script::default()
    };
    let platform = MockPlatform::start(script).await;
    let rec = Shared::default();
    let err = recording(&platform, &rec, "127.0.0.1:0".into(), "127.0.0.1:0".into())
        .run()
        .await
        .unwrap_err();
    match err {
        ExtensionError::SubscribeRefused {
            status,
            error_type,
            message,
        } => {
            assert_eq!(
                (status, error_type.as_str()),
                (400, "Telemetry.SubscriberExists")
            );
            assert_eq!(message, "another extension already subscribed");
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn register_response_without_handler_is_accepted() {
    // The document's own example has no `handler`, and says `$LATEST`.
    let script = Script {
        register: (200, r#"{"functionName": "helloWorld", "functionVersion": "$LATEST", "errorInfo": {"errorType": "", "errorMessage": ""}}"#.into()),
        ..Script::default()
    };
    let platform = MockPlatform::start(script).await;
    let rec = Shared::default();
    let (stop, stopped) = oneshot::channel::<()>();
    let ext = recording(&platform, &rec, "127.0.0.1:0".into(), "127.0.0.1:0".into())
        .shutdown_signal(async move {
            let _ = stopped.await;
        });
    let task = tokio::spawn(ext.run());
    eventually("ready", || rec.lock().unwrap().ready.is_some()).await;
    assert_eq!(rec.lock().unwrap().ready.as_deref(), Some("helloWorld"));
    stop.send(()).unwrap();
    assert!(tokio::time::timeout(Duration::from_secs(5), task)
        .await
        .unwrap()
        .unwrap()
        .is_ok());
}

#[tokio::test]
async fn unreachable_platform_is_a_request_error() {
    let dead = format!("127.0.0.1:{}", free_port());
    let err = Extension::builder("extensionA.sh")
        .config(ExtensionConfig::new(dead.clone()).unwrap())
        .allow_any_port()
        .invoke_address("127.0.0.1:0")
        .run()
        .await
        .unwrap_err();
    assert!(
        matches!(&err, ExtensionError::Request { what: "register", url, .. } if url.contains(&dead)),
        "{err:?}"
    );
}

#[tokio::test]
async fn taken_port_is_a_bind_error_naming_the_address() {
    let platform = MockPlatform::start(Script::default()).await;
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let err = Extension::builder("extensionA.sh")
        .config(ExtensionConfig::new(platform.addr.to_string()).unwrap())
        .allow_any_port()
        .invoke_address(addr.clone())
        .run()
        .await
        .unwrap_err();
    match &err {
        ExtensionError::Bind {
            which: "invoke",
            addr: a,
            ..
        } => assert_eq!(a, &addr),
        other => panic!("{other:?}"),
    }
    assert!(err.to_string().contains(&addr));
    assert!(
        platform.seen().is_empty(),
        "registered although the listener could not be bound"
    );
}

#[tokio::test]
async fn out_of_range_ports_are_refused_before_anything_happens() {
    let platform = MockPlatform::start(Script::default()).await;
    let err = Extension::builder("extensionA.sh")
        .config(ExtensionConfig::new(platform.addr.to_string()).unwrap())
        .invoke_address("127.0.0.1:8011")
        .run()
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            ExtensionError::InvalidAddress {
                which: "invoke",
                ..
            }
        ),
        "{err:?}"
    );
    let err = Extension::builder("extensionA.sh")
        .config(ExtensionConfig::new(platform.addr.to_string()).unwrap())
        .telemetry("127.0.0.1:9000", &Stream::ALL, None, |_| async {})
        .run()
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            ExtensionError::InvalidAddress {
                which: "telemetry",
                ..
            }
        ),
        "{err:?}"
    );
    let err = Extension::builder("extensionA.sh")
        .config(ExtensionConfig::new(platform.addr.to_string()).unwrap())
        .telemetry("127.0.0.1:8082", &[], None, |_| async {})
        .run()
        .await
        .unwrap_err();
    assert!(
        matches!(err, ExtensionError::InvalidSubscription { .. }),
        "{err:?}"
    );
    assert!(platform.seen().is_empty());
}

#[tokio::test]
async fn a_panicking_handler_costs_one_500_not_the_listener() {
    let platform = MockPlatform::start(Script::default()).await;
    let (stop, stopped) = oneshot::channel::<()>();
    let port = free_port();
    let ext = Extension::builder("extensionA.sh")
        .config(ExtensionConfig::new(platform.addr.to_string()).unwrap())
        .allow_any_port()
        .invoke_address(format!("127.0.0.1:{port}"))
        .on_invoke(|p| async move {
            if p.trace_id == "boom" {
                panic!("handler bug");
            }
        })
        .shutdown_signal(async move {
            let _ = stopped.await;
        });
    let task = tokio::spawn(ext.run());
    eventually("register", || !platform.seen().is_empty()).await;
    let url = format!("http://127.0.0.1:{port}/extension/invoke");
    assert_eq!(
        post(&url, r#"{"traceId":"boom","invokedFunctionUrn":"u"}"#, &[])
            .await
            .0,
        500
    );
    assert_eq!(
        post(&url, r#"{"traceId":"fine","invokedFunctionUrn":"u"}"#, &[])
            .await
            .0,
        200
    );
    assert_eq!(post(&url, r#"{"traceId":1}"#, &[]).await.0, 400);
    stop.send(()).unwrap();
    assert!(tokio::time::timeout(Duration::from_secs(5), task)
        .await
        .unwrap()
        .unwrap()
        .is_ok());
}

#[tokio::test]
async fn telemetry_arriving_just_after_the_stop_signal_is_still_handled() {
    let platform = MockPlatform::start(Script::default()).await;
    let rec = Shared::default();
    let telemetry_port = free_port();
    let (stop, stopped) = oneshot::channel::<()>();
    let ext = recording(
        &platform,
        &rec,
        "127.0.0.1:0".into(),
        format!("127.0.0.1:{telemetry_port}"),
    )
    .shutdown_grace(Duration::from_secs(1))
    .shutdown_signal(async move {
        let _ = stopped.await;
    });
    let task = tokio::spawn(ext.run());
    eventually("ready", || rec.lock().unwrap().ready.is_some()).await;
    stop.send(()).unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let (status, _) = post(
        &format!("http://127.0.0.1:{telemetry_port}/"),
        r#"[{"name":"platform.report","startTime":"t","endTime":"t","traceId":"last","status":"success","metrics":{"durationMs":1.5,"billingDurationMS":2,"memoryUsed":1.0,"memorySize":128,"podName":"p"}}]"#,
        &[],
    )
    .await;
    assert_eq!(status, 200);
    assert!(tokio::time::timeout(Duration::from_secs(5), task)
        .await
        .unwrap()
        .unwrap()
        .is_ok());
    let rec = rec.lock().unwrap();
    assert!(rec.shutdown);
    assert!(
        matches!(&rec.batches[..], [b] if matches!(&b[0], TelemetryEvent::Report(r) if r.trace_id == "last"))
    );
}
