//! End-to-end delivery against a real axum listener on 127.0.0.1:0, in real time.
//!
//! No test bounds how long something took: on a loaded 2-core machine any such bound flakes.
//! "Did not wait" is shown by behaviour instead (a listener that never answers, a batch timeout
//! of an hour), with [`PATIENCE`] only turning a hang into a failure. Exact timing rules are
//! covered by the paused-time unit tests.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU16, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use axum::Router;
use bytes::Bytes;
use fnbox_telemetry::{
    Buffering, DeliveryStats, DropNotice, DroppedRecords, Subscriber, SubscriberConfig,
    SubscriberHandle,
};
use serde_json::Value;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// How long any "eventually" condition, or anything that must not hang, may take before the
/// test fails.
const PATIENCE: Duration = Duration::from_secs(20);

/// One request the listener saw.
#[derive(Clone, Debug)]
struct Seen {
    status: u16,
    content_type: Option<String>,
    body: String,
}

impl Seen {
    fn records(&self) -> Vec<Value> {
        serde_json::from_str(&self.body).expect("body is a JSON array")
    }
}

#[derive(Default)]
struct ListenerState {
    /// Status to answer with; switchable while the test runs.
    status: AtomicU16,
    /// Delay before answering.
    delay_ms: AtomicU64,
    /// Requests whose handler started (a slow answer is "in flight" from here).
    started: AtomicUsize,
    seen: Mutex<Vec<Seen>>,
}

struct Listener {
    addr: SocketAddr,
    state: Arc<ListenerState>,
}

impl Listener {
    async fn start() -> Listener {
        let tcp = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        Listener::serve(tcp)
    }

    fn serve(tcp: tokio::net::TcpListener) -> Listener {
        let state = Arc::new(ListenerState::default());
        state.status.store(200, Ordering::SeqCst);
        let app = Router::new()
            .route("/telemetry", post(receive))
            .with_state(state.clone());
        let addr = tcp.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(tcp, app).await.unwrap() });
        Listener { addr, state }
    }

    /// A port of our own where nothing listens yet: bound but not listening, so connections
    /// are refused and no other process can take the port before [`Listener::listen_on`].
    fn reserve() -> (tokio::net::TcpSocket, SocketAddr) {
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let addr = socket.local_addr().unwrap();
        (socket, addr)
    }

    /// Starts listening on a port from [`Listener::reserve`].
    fn listen_on(socket: tokio::net::TcpSocket) -> Listener {
        Listener::serve(socket.listen(1024).unwrap())
    }

    fn uri(&self) -> String {
        format!("http://{}/telemetry", self.addr)
    }

    fn answer(&self, status: u16) {
        self.state.status.store(status, Ordering::SeqCst);
    }

    fn delay(&self, delay: Duration) {
        self.state
            .delay_ms
            .store(delay.as_millis() as u64, Ordering::SeqCst);
    }

    fn seen(&self) -> Vec<Seen> {
        self.state.seen.lock().unwrap().clone()
    }

    /// Records of the batches answered with a 2xx, in arrival order.
    fn accepted(&self) -> Vec<Vec<Value>> {
        self.seen()
            .iter()
            .filter(|s| (200..300).contains(&s.status))
            .map(Seen::records)
            .collect()
    }
}

async fn receive(
    State(state): State<Arc<ListenerState>>,
    headers: HeaderMap,
    body: Bytes,
) -> StatusCode {
    state.started.fetch_add(1, Ordering::SeqCst);
    let delay = state.delay_ms.load(Ordering::SeqCst);
    if delay > 0 {
        tokio::time::sleep(Duration::from_millis(delay)).await;
    }
    let status = state.status.load(Ordering::SeqCst);
    state.seen.lock().unwrap().push(Seen {
        status,
        content_type: headers
            .get("content-type")
            .map(|v| v.to_str().unwrap().to_owned()),
        body: String::from_utf8(body.to_vec()).unwrap(),
    });
    StatusCode::from_u16(status).unwrap()
}

/// A FunctionGraph-style `platform.logsDropped` notice.
fn notice() -> DropNotice {
    Arc::new(|d: DroppedRecords| {
        Bytes::from(
            serde_json::json!({
                "name": "platform.logsDropped",
                "droppedRecords": d.records,
                "droppedBytes": d.bytes,
                "reason": d.reason,
            })
            .to_string(),
        )
    })
}

fn record(i: usize) -> Bytes {
    Bytes::from(format!(
        r#"{{"name":"function","logs":"[Function] line {i}"}}"#
    ))
}

fn index(v: &Value) -> usize {
    let logs = v["logs"].as_str().expect("a function record");
    logs.rsplit(' ').next().unwrap().parse().unwrap()
}

fn config(uri: &str, buffering: Buffering) -> SubscriberConfig {
    SubscriberConfig {
        buffering,
        backoff: Duration::from_millis(10),
        ..SubscriberConfig::new(uri).unwrap()
    }
}

fn buffering(max_items: usize, max_bytes: usize, timeout_ms: u64) -> Buffering {
    Buffering {
        max_items,
        max_bytes,
        timeout: Duration::from_millis(timeout_ms),
    }
}

fn spawn(config: SubscriberConfig) -> SubscriberHandle {
    Subscriber::spawn(
        config,
        notice(),
        &TaskTracker::new(),
        CancellationToken::new(),
    )
}

async fn eventually(what: &str, mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(start.elapsed() < PATIENCE, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn batches_by_item_count_in_order() {
    let listener = Listener::start().await;
    let h = spawn(config(&listener.uri(), buffering(1000, 1 << 20, 30_000)));
    for i in 0..2500 {
        h.send(record(i));
    }
    let stats = h.close(Duration::from_secs(10)).await;
    let batches = listener.accepted();
    let sizes: Vec<usize> = batches.iter().map(Vec::len).collect();
    assert_eq!(sizes, [1000, 1000, 500]);
    let order: Vec<usize> = batches.iter().flatten().map(index).collect();
    assert_eq!(order, (0..2500).collect::<Vec<_>>());
    assert!(listener
        .seen()
        .iter()
        .all(|s| s.content_type.as_deref() == Some("application/json")));
    assert_eq!(
        stats,
        DeliveryStats {
            delivered_records: 2500,
            delivered_batches: 3,
            ..DeliveryStats::default()
        }
    );
}

#[tokio::test]
async fn batches_by_bytes() {
    let listener = Listener::start().await;
    let h = spawn(config(&listener.uri(), buffering(10_000, 262_144, 30_000)));
    // 1000-byte records: 2 + 1000 n + (n - 1) <= 262144 holds up to n = 261.
    let big = |i: usize| Bytes::from(format!(r#"{{"i":"{i:05}","pad":"{}"}}"#, "x".repeat(978)));
    assert_eq!(big(0).len(), 1000);
    for i in 0..600 {
        h.send(big(i));
    }
    h.close(Duration::from_secs(10)).await;
    let seen = listener.seen();
    let sizes: Vec<usize> = seen.iter().map(|s| s.records().len()).collect();
    assert_eq!(sizes, [261, 261, 78]);
    assert!(seen.iter().all(|s| s.body.len() <= 262_144));
    let order: Vec<usize> = seen
        .iter()
        .flat_map(Seen::records)
        .map(|v| v["i"].as_str().unwrap().parse().unwrap())
        .collect();
    assert_eq!(order, (0..600).collect::<Vec<_>>());
}

#[tokio::test]
async fn batches_by_time() {
    let listener = Listener::start().await;
    let h = spawn(config(&listener.uri(), buffering(1000, 262_144, 25)));
    let start = Instant::now();
    h.send(record(0));
    eventually("the first batch", || listener.seen().len() == 1).await;
    assert!(start.elapsed() >= Duration::from_millis(25));
    h.send(record(1));
    h.send(record(2));
    eventually("the second batch", || listener.seen().len() == 2).await;
    let batches = listener.accepted();
    assert_eq!(batches[0].iter().map(index).collect::<Vec<_>>(), [0]);
    assert_eq!(batches[1].iter().map(index).collect::<Vec<_>>(), [1, 2]);
    assert_eq!(h.stats().delivered_batches, 2);
}

#[tokio::test]
async fn failing_listener_is_retried_then_drop_is_announced_after_recovery() {
    let listener = Listener::start().await;
    listener.answer(500);
    let h = spawn(config(&listener.uri(), buffering(1000, 262_144, 25)));
    h.send(record(0));
    h.send(record(1));
    eventually("the batch to be given up", || {
        h.stats().dropped_records == 2
    })
    .await;
    assert_eq!(listener.seen().len(), 3, "one try and two retries");
    let stats = h.stats();
    assert_eq!((stats.failed_posts, stats.retries), (3, 2));

    listener.answer(200);
    h.send(record(2));
    eventually("a delivered batch", || listener.accepted().len() == 1).await;
    let batch = &listener.accepted()[0];
    assert_eq!(batch.len(), 2, "notice at the head, then the new record");
    assert_eq!(batch[0]["name"], "platform.logsDropped");
    assert_eq!(batch[0]["droppedRecords"], 2);
    assert_eq!(
        batch[0]["droppedBytes"],
        (record(0).len() + record(1).len()) as u64
    );
    assert_eq!(batch[0]["reason"], "listener answered 500 after 3 attempts");
    assert_eq!(index(&batch[1]), 2);
    let stats = h.close(Duration::from_secs(5)).await;
    assert_eq!(stats.delivered_records, 1);
    assert_eq!(stats.dropped_records, 2);
    assert_eq!(listener.accepted().len(), 1, "the drop is announced once");
}

#[tokio::test]
async fn unreachable_listener_never_slows_the_sender() {
    // Our port, where nothing listens: every connection is refused.
    let (_reserved, addr) = Listener::reserve();
    let mut c = config(&format!("http://{addr}/"), buffering(1000, 262_144, 25));
    c.queue_bytes = (1..=1000).map(|i| record(i).len()).sum();
    let h = spawn(c);
    // `send` is synchronous and never awaits delivery, so the loop cannot wait on the refused
    // POSTs; what follows checks that every record is accounted for all the same.
    for i in 0..10_000 {
        h.send(record(i));
    }

    eventually("every record to be accounted for", || {
        h.stats().dropped_records == 10_000
    })
    .await;
    let stats = h.close(Duration::from_secs(5)).await;
    assert_eq!(stats.delivered_records, 0);
    assert_eq!(stats.dropped_records, 10_000);
    assert!(stats.failed_posts >= 3);
}

#[tokio::test]
async fn listener_that_comes_up_late_gets_the_drop_notice() {
    // Nothing listens on our port yet; later the listener comes up on the very same port.
    let (reserved, addr) = Listener::reserve();
    let h = spawn(config(
        &format!("http://{addr}/telemetry"),
        buffering(1000, 262_144, 25),
    ));
    h.send(record(0));
    eventually("the batch to be given up", || {
        h.stats().dropped_records == 1
    })
    .await;
    let listener = Listener::listen_on(reserved);
    h.send(record(1));
    eventually("a delivered batch", || listener.accepted().len() == 1).await;
    let batch = &listener.accepted()[0];
    let reason = batch[0]["reason"].as_str().unwrap();
    assert!(
        reason.starts_with("listener unreachable: ") && reason.ends_with(" after 3 attempts"),
        "{reason}"
    );
    assert!(reason.to_lowercase().contains("refused"), "{reason}");
    assert_eq!(index(&batch[1]), 1);
}

#[tokio::test]
async fn slow_listener_bounds_the_queue_and_close_respects_grace() {
    let listener = Listener::start().await;
    // Effectively never answers: whatever returns while the POST is in flight did not wait.
    listener.delay(Duration::from_secs(3600));
    let mut c = config(&listener.uri(), buffering(1000, 262_144, 25));
    c.queue_bytes = (1..=100).map(|i| record(i).len()).sum(); // records 1..=100 fit
    let h = spawn(c);
    h.send(record(0));
    eventually("the first batch in flight", || {
        listener.state.started.load(Ordering::SeqCst) == 1
    })
    .await;

    for i in 1..=10_000 {
        h.send(record(i));
    }
    // The task is stuck on the in-flight POST: exactly the queue's byte bound is kept, and the
    // sends returned although that POST is still unanswered.
    assert_eq!(h.stats().dropped_records, 10_000 - 100);
    assert!(
        listener.seen().is_empty(),
        "the first POST is still in flight"
    );

    let grace = Duration::from_secs(1);
    let start = Instant::now();
    let stats = tokio::time::timeout(PATIENCE, h.close(grace))
        .await
        .expect("close gives up on the unanswered POST after its grace");
    assert!(start.elapsed() >= grace, "close waited out its grace");
    assert!(
        listener.seen().is_empty(),
        "close returned before the listener answered"
    );
    assert_eq!(stats.delivered_records, 0);
    assert_eq!(stats.dropped_records, 10_001);
}

#[tokio::test]
async fn queue_full_drops_are_counted_and_announced() {
    let listener = Listener::start().await;
    listener.delay(Duration::from_millis(500));
    let mut c = config(&listener.uri(), buffering(1000, 262_144, 25));
    c.queue_bytes = (1..=10).map(|i| record(i).len()).sum(); // records 1..=10 fit
    let h = spawn(c);
    h.send(record(0));
    eventually("the first batch in flight", || {
        listener.state.started.load(Ordering::SeqCst) == 1
    })
    .await;
    listener.delay(Duration::ZERO);
    for i in 1..=30 {
        h.send(record(i));
    }
    assert_eq!(h.stats().dropped_records, 20);
    let stats = h.close(Duration::from_secs(10)).await;
    assert_eq!(stats.delivered_records, 11);
    assert_eq!(stats.dropped_records, 20);
    let batches = listener.accepted();
    assert_eq!(batches.len(), 2);
    let head = &batches[1][0];
    assert_eq!(head["name"], "platform.logsDropped");
    assert_eq!(head["droppedRecords"], 20);
    assert_eq!(head["reason"], "queue full");
    let order: Vec<usize> = batches[1][1..].iter().map(index).collect();
    assert_eq!(order, (1..=10).collect::<Vec<_>>());
}

#[tokio::test]
async fn close_flushes_pending_records_to_a_healthy_listener() {
    let listener = Listener::start().await;
    // A batch timeout of an hour: a close that waited for it would hang.
    let h = spawn(config(
        &listener.uri(),
        Buffering {
            timeout: Duration::from_secs(3600),
            ..Buffering::default()
        },
    ));
    let clone = h.clone();
    for i in 0..10 {
        clone.send(record(i));
    }
    let stats = tokio::time::timeout(PATIENCE, h.close(Duration::from_secs(10)))
        .await
        .expect("close flushes at once instead of waiting for the batch timeout");
    assert_eq!(stats.delivered_records, 10);
    assert_eq!(stats.dropped_records, 0);
    let batches = listener.accepted();
    assert_eq!(batches.len(), 1);
    assert_eq!(
        batches[0].iter().map(index).collect::<Vec<_>>(),
        (0..10).collect::<Vec<_>>()
    );
    clone.send(record(10));
    assert_eq!(clone.stats().dropped_records, 1, "closed for every clone");
}
