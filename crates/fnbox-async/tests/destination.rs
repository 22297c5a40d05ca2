//! Destination notifications against a real HTTP listener on 127.0.0.1:0.

#[macro_use]
mod common;

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::post;
use axum::Router;
use bytes::Bytes;
use common::{fast, wait_final, wait_for, worker_settings, Fake, Queue, Running};
use fnbox_async::{AsyncStore, DeliveryState, InvokeAttempt, InvokeSource, NotificationFormat};
use serde_json::Value;

#[derive(Default)]
struct Sink {
    received: Mutex<Vec<(String, Value)>>,
    /// Answer 500 to this many POSTs first.
    fail_first: AtomicU32,
    posts: AtomicU32,
}

async fn hook(State(sink): State<Arc<Sink>>, uri: axum::http::Uri, body: Bytes) -> StatusCode {
    sink.posts.fetch_add(1, Ordering::SeqCst);
    if sink
        .fail_first
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
        .is_ok()
    {
        return StatusCode::INTERNAL_SERVER_ERROR;
    }
    let v: Value = serde_json::from_slice(&body).expect("notification is JSON");
    sink.received
        .lock()
        .unwrap()
        .push((uri.path().to_string(), v));
    StatusCode::OK
}

/// Serves the sink on 127.0.0.1:0; returns its base URL.
async fn serve(sink: Arc<Sink>) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = Router::new()
        .route("/ok", post(hook))
        .route("/ko", post(hook))
        .with_state(sink);
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("http://{addr}")
}

async fn success_and_failure_destinations_receive_the_functiongraph_notification(q: Queue) {
    let (store, _q) = q.open().await;
    let sink = Arc::new(Sink::default());
    let base = serve(sink.clone()).await;
    let fake = Fake::new();
    fake.script(
        "bad",
        [InvokeAttempt::FunctionError(Bytes::from_static(
            b"{\"errorType\":\"E\",\"errorMessage\":\"boom\"}",
        ))],
    );
    let mut s = fast(1);
    s.destinations.on_success = Some(format!("{base}/ok"));
    s.destinations.on_failure = Some(format!("{base}/ko"));
    s.function_urn = Some("urn:fss:local:proj:function:default:f:latest".into());
    let w = Running::start(&store, &fake, worker_settings(s));
    store
        .enqueue(
            "f",
            "good",
            Bytes::from_static(b"{\"k\":\"v\"}"),
            InvokeSource::FunctionGraph,
        )
        .await
        .unwrap();
    store
        .enqueue(
            "f",
            "bad",
            Bytes::from_static(b"{\"k\":2}"),
            InvokeSource::FunctionGraph,
        )
        .await
        .unwrap();
    for id in ["good", "bad"] {
        let st = wait_for(&store, id, |s| {
            s.destination.as_ref().map(|d| d.state) == Some(DeliveryState::Delivered)
        })
        .await;
        let d = st.destination.unwrap();
        assert_eq!(d.attempts, 1);
        assert!(d.delivered_at_ms.is_some());
    }
    let received = sink.received.lock().unwrap().clone();
    assert_eq!(received.len(), 2);
    let ok = &received.iter().find(|(p, _)| p == "/ok").unwrap().1;
    assert_eq!(ok["request_context"]["request_id"], "good");
    assert_eq!(
        ok["request_context"]["function_urn"],
        "urn:fss:local:proj:function:default:f:latest"
    );
    assert_eq!(ok["request_context"]["condition"], "");
    assert_eq!(ok["request_context"]["approximate_invoke_count"], 0);
    assert_eq!(ok["request_payload"], "{\"k\":\"v\"}");
    assert_eq!(ok["response_context"]["status_code"], 200);
    assert_eq!(ok["response_context"]["function_error"], "");
    assert_eq!(ok["response_payload"], "{\"k\":\"v\"}");
    let ts = ok["timestamp"].as_str().unwrap();
    assert!(chrono::DateTime::parse_from_rfc3339(ts).is_ok(), "{ts}");
    let keys: Vec<&str> = ok.as_object().unwrap().keys().map(|k| k.as_str()).collect();
    assert_eq!(
        keys.len(),
        5,
        "exactly timestamp, request_context, request_payload, response_context, response_payload: {keys:?}"
    );

    let ko = &received.iter().find(|(p, _)| p == "/ko").unwrap().1;
    assert_eq!(ko["request_context"]["request_id"], "bad");
    assert_eq!(
        ko["request_context"]["condition"],
        "UnhandledInvocationError"
    );
    assert_eq!(ko["response_context"]["status_code"], 500);
    assert_eq!(
        ko["response_payload"],
        "{\"errorType\":\"E\",\"errorMessage\":\"boom\"}"
    );
    w.stop().await;
}

async fn lambda_functions_get_lambda_shaped_records(q: Queue) {
    let (store, _q) = q.open().await;
    let sink = Arc::new(Sink::default());
    let base = serve(sink.clone()).await;
    let fake = Fake::new();
    let mut s = fast(3);
    s.notification = NotificationFormat::Lambda;
    s.destinations.on_success = Some(format!("{base}/ok"));
    s.function_urn = Some("arn:aws:lambda:local:000000000000:function:f".into());
    let w = Running::start(&store, &fake, worker_settings(s));
    store
        .enqueue(
            "f",
            "r1",
            Bytes::from_static(b"{\"a\":1}"),
            InvokeSource::Lambda,
        )
        .await
        .unwrap();
    wait_for(&store, "r1", |s| {
        s.destination.as_ref().map(|d| d.state) == Some(DeliveryState::Delivered)
    })
    .await;
    let (_, v) = sink.received.lock().unwrap()[0].clone();
    assert_eq!(v["version"], "1.0");
    assert_eq!(v["requestContext"]["requestId"], "r1");
    assert_eq!(v["requestContext"]["condition"], "Success");
    assert_eq!(v["requestContext"]["approximateInvokeCount"], 1);
    assert_eq!(v["requestPayload"], serde_json::json!({"a": 1}));
    assert_eq!(v["responseContext"]["statusCode"], 200);
    assert!(v["responseContext"].get("functionError").is_none());
    assert_eq!(v["responsePayload"], serde_json::json!({"a": 1}));
    w.stop().await;
}

async fn a_failing_destination_is_retried_until_it_recovers(q: Queue) {
    let (store, _q) = q.open().await;
    let sink = Arc::new(Sink {
        fail_first: AtomicU32::new(2),
        ..Default::default()
    });
    let base = serve(sink.clone()).await;
    let fake = Fake::new();
    let mut s = fast(1);
    s.destinations.on_success = Some(format!("{base}/ok"));
    let w = Running::start(&store, &fake, worker_settings(s));
    store
        .enqueue(
            "f",
            "r1",
            Bytes::from_static(b"{}"),
            InvokeSource::FunctionGraph,
        )
        .await
        .unwrap();
    // While failing, the state is pending with the error recorded.
    let pending = wait_for(&store, "r1", |s| {
        s.destination.as_ref().is_some_and(|d| d.attempts >= 1)
    })
    .await;
    let d = pending.destination.unwrap();
    if d.state == DeliveryState::Pending {
        assert!(
            d.last_error.as_deref().unwrap_or("").contains("500"),
            "{:?}",
            d.last_error
        );
    }
    let done = wait_for(&store, "r1", |s| {
        s.destination.as_ref().map(|d| d.state) == Some(DeliveryState::Delivered)
    })
    .await;
    let d = done.destination.unwrap();
    assert_eq!(d.attempts, 3, "two 500s, then 200");
    assert_eq!(d.last_error, None);
    assert_eq!(sink.posts.load(Ordering::SeqCst), 3);
    assert_eq!(sink.received.lock().unwrap().len(), 1);
    w.stop().await;
}

async fn an_unreachable_destination_is_recorded_failed_after_its_retries(q: Queue) {
    let (store, _q) = q.open().await;
    // A port nobody listens on.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let fake = Fake::new();
    fake.always("f", InvokeAttempt::FunctionError(Bytes::from_static(b"{}")));
    let mut s = fast(1);
    s.destinations.on_failure = Some(format!("http://127.0.0.1:{port}/gone"));
    let w = Running::start(&store, &fake, worker_settings(s));
    store
        .enqueue("f", "r1", Bytes::new(), InvokeSource::FunctionGraph)
        .await
        .unwrap();
    let st = wait_for(&store, "r1", |s| {
        s.destination.as_ref().map(|d| d.state) == Some(DeliveryState::Failed)
    })
    .await;
    let d = st.destination.clone().unwrap();
    assert_eq!(d.kind, "on_failure");
    assert_eq!(d.attempts, 5, "DeliverySettings::max_attempts in the tests");
    assert!(
        d.last_error.as_deref().unwrap().contains("cannot connect"),
        "{:?}",
        d.last_error
    );
    assert_eq!(st.to_json()["destination"]["state"], "failed");
    w.stop().await;
}

#[tokio::test]
async fn pending_notifications_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    // Reserve a port, and leave it closed for the first run.
    let std_listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = std_listener.local_addr().unwrap();
    drop(std_listener);
    let url = format!("http://{addr}/ok");
    {
        let store = AsyncStore::open(dir.path()).unwrap();
        let fake = Fake::new();
        let mut s = fast(1);
        s.destinations.on_success = Some(url.clone());
        let mut ws = worker_settings(s);
        ws.delivery.backoff.initial = Duration::from_millis(100);
        ws.delivery.max_attempts = 100;
        let w = Running::start(&store, &fake, ws);
        store
            .enqueue("f", "r1", Bytes::new(), InvokeSource::FunctionGraph)
            .await
            .unwrap();
        wait_final(&store, "r1").await;
        wait_for(&store, "r1", |s| {
            s.destination.as_ref().is_some_and(|d| d.attempts >= 1)
        })
        .await;
        w.stop().await;
    }
    // The destination comes up on the same address; a new fnbox delivers.
    let sink = Arc::new(Sink::default());
    let listener = tokio::net::TcpListener::bind(addr).await.unwrap();
    let app = Router::new()
        .route("/ok", post(hook))
        .with_state(sink.clone());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let store = AsyncStore::open(dir.path()).unwrap();
    let fake = Fake::new();
    let w = Running::start(&store, &fake, worker_settings(fast(1)));
    wait_for(&store, "r1", |s| {
        s.destination.as_ref().map(|d| d.state) == Some(DeliveryState::Delivered)
    })
    .await;
    assert!(
        fake.calls().is_empty(),
        "the invocation itself is not run again"
    );
    assert_eq!(sink.received.lock().unwrap().len(), 1);
    w.stop().await;
}

both!(
    success_and_failure_destinations_receive_the_functiongraph_notification,
    lambda_functions_get_lambda_shaped_records,
    a_failing_destination_is_retried_until_it_recovers,
    an_unreachable_destination_is_recorded_failed_after_its_retries,
);
