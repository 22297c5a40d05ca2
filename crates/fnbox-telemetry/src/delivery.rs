//! The delivery task: queue → batcher → POST with retries, and drop accounting.
//!
//! One task per subscriber, one batch in flight: the task awaits each POST (and its retries)
//! before it takes the next record off the queue. That keeps records in order without
//! sequence numbers, and makes the queue the only buffer: while a slow listener holds a batch,
//! new records wait in the bounded channel and `send` drops once it is full.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http_body_util::{BodyExt, Full, Limited};
use hyper_util::client::legacy::Client;
use thiserror::Error;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::batcher::Batcher;
use crate::connector::Connector;
use crate::subscriber::{
    Counters, DropAccount, DropNotice, Shared, SubscriberConfig, REASON_SHUTDOWN,
};

/// Most of a response body read to let the connection be reused; listeners answer with
/// nothing or a short acknowledgement, anything longer is abandoned with its connection.
const MAX_RESPONSE_BODY: usize = 64 * 1024;
/// Minimum spacing of repeated delivery warnings, so a dead listener logs a line per period
/// rather than one per batch or per record.
const WARN_INTERVAL: Duration = Duration::from_secs(10);
/// Idle keep-alive connections are dropped after this.
const POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(30);

/// Why one POST failed.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub(crate) enum PostError {
    /// The listener answered, but not with a 2xx.
    #[error("listener answered {0}")]
    Status(u16),
    /// No connection could be made.
    #[error("listener unreachable: {0}")]
    Unreachable(String),
    /// Connected, but the exchange failed (reset, malformed response, …).
    #[error("request failed: {0}")]
    Request(String),
    /// No complete answer within `request_timeout`.
    #[error("listener did not answer within {0:?}")]
    Timeout(Duration),
}

/// Sends one batch body somewhere. HTTP in production; a scripted fake in unit tests, so the
/// delivery loop can run under paused time (real sockets and paused time do not mix: Tokio
/// would auto-advance past every request timeout while waiting on I/O).
pub(crate) trait Transport: Send + Sync + 'static {
    fn post(&self, body: Bytes) -> impl Future<Output = Result<(), PostError>> + Send;
}

/// hyper-util's legacy client: HTTP/1.1 with keep-alive pooling.
pub(crate) struct HttpTransport {
    client: Client<Connector, Full<Bytes>>,
    uri: http::Uri,
    method: http::Method,
}

impl HttpTransport {
    pub(crate) fn new(
        uri: http::Uri,
        connector: Connector,
        tracker: TaskTracker,
        cancel: CancellationToken,
    ) -> Self {
        let client = Client::builder(TrackedExecutor { tracker, cancel })
            .pool_idle_timeout(POOL_IDLE_TIMEOUT)
            // One batch in flight: one connection is all that is ever reused.
            .pool_max_idle_per_host(1)
            .build(connector);
        HttpTransport {
            client,
            uri,
            method: http::Method::POST,
        }
    }

    /// Delivers with `method` (Lambda's Logs API lets a subscriber ask for PUT).
    pub(crate) fn with_method(mut self, method: http::Method) -> Self {
        self.method = method;
        self
    }
}

impl Transport for HttpTransport {
    fn post(&self, body: Bytes) -> impl Future<Output = Result<(), PostError>> + Send {
        let request = http::Request::builder()
            .method(self.method.clone())
            .uri(self.uri.clone())
            .header(http::header::CONTENT_TYPE, "application/json")
            .body(Full::new(body));
        let client = self.client.clone();
        async move {
            // Only fails on invalid parts; the URI was validated and the header is static.
            let request = request.map_err(|e| PostError::Request(e.to_string()))?;
            let response = client.request(request).await.map_err(|e| {
                if e.is_connect() {
                    PostError::Unreachable(root_cause(&e))
                } else {
                    PostError::Request(root_cause(&e))
                }
            })?;
            let status = response.status();
            // Read the (short) answer so the connection goes back to the pool; its content
            // does not matter.
            let _ = Limited::new(response.into_body(), MAX_RESPONSE_BODY)
                .collect()
                .await;
            if status.is_success() {
                Ok(())
            } else {
                Err(PostError::Status(status.as_u16()))
            }
        }
    }
}

/// The innermost error's message: hyper-util's own Display is only `client error (Connect)`.
fn root_cause(e: &(dyn std::error::Error + 'static)) -> String {
    let mut cause = e;
    while let Some(next) = cause.source() {
        cause = next;
    }
    cause.to_string()
}

/// Spawns hyper's connection tasks onto the engine's tracker, so none is ownerless, and ends
/// them when the engine cancels. They also end by themselves once the client is dropped.
#[derive(Clone)]
struct TrackedExecutor {
    tracker: TaskTracker,
    cancel: CancellationToken,
}

impl<F> hyper::rt::Executor<F> for TrackedExecutor
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    fn execute(&self, fut: F) {
        let cancel = self.cancel.clone();
        self.tracker.spawn(async move {
            tokio::select! {
                _ = fut => {}
                () = cancel.cancelled() => {}
            }
        });
    }
}

/// Emits a warning at most once per [`WARN_INTERVAL`], counting what it held back.
#[derive(Debug, Default)]
struct WarnLimiter {
    last: Option<Instant>,
    suppressed: u64,
}

impl WarnLimiter {
    /// `Some(n)` when a warning may be logged now, `n` being how many were held back since
    /// the last one.
    fn check(&mut self, now: Instant) -> Option<u64> {
        match self.last {
            Some(last) if now.duration_since(last) < WARN_INTERVAL => {
                self.suppressed += 1;
                None
            }
            _ => {
                self.last = Some(now);
                Some(std::mem::take(&mut self.suppressed))
            }
        }
    }
}

/// How a delivery ended.
enum Outcome {
    Delivered,
    GaveUp,
    /// The abort token fired mid-delivery; the task must stop.
    Aborted,
}

/// The per-subscriber task.
pub(crate) struct Delivery<T> {
    config: SubscriberConfig,
    notice: DropNotice,
    transport: T,
    rx: mpsc::UnboundedReceiver<Bytes>,
    shared: Arc<Shared>,
    batcher: Batcher,
    /// Drops not yet announced by a delivered notice, including the counts of notices whose
    /// batch failed, so a gap is reported once and never lost.
    pending_drops: DropAccount,
    give_up_warnings: WarnLimiter,
    queue_full_warnings: WarnLimiter,
    /// Consecutive batches given up; a success after some logs a recovery line.
    failing_batches: u64,
}

impl<T: Transport> Delivery<T> {
    pub(crate) fn new(
        config: SubscriberConfig,
        notice: DropNotice,
        transport: T,
        rx: mpsc::UnboundedReceiver<Bytes>,
        shared: Arc<Shared>,
    ) -> Self {
        Delivery {
            batcher: Batcher::new(config.buffering),
            config,
            notice,
            transport,
            rx,
            shared,
            pending_drops: DropAccount::default(),
            give_up_warnings: WarnLimiter::default(),
            queue_full_warnings: WarnLimiter::default(),
            failing_batches: 0,
        }
    }

    pub(crate) async fn run(mut self) {
        // Fires even if the task panics or is dropped unpolled, so `close` never hangs.
        let finished = self.shared.finished.clone().drop_guard();
        self.deliver_loop().await;
        self.abandon_rest();
        drop(finished);
    }

    async fn deliver_loop(&mut self) {
        let mut draining = false;
        loop {
            let deadline = self.batcher.deadline();
            let ready = tokio::select! {
                biased;
                () = self.shared.abort.cancelled() => return,
                () = self.shared.drain.cancelled(), if !draining => {
                    // Refuse new records; recv() now yields what is queued, then None.
                    draining = true;
                    self.rx.close();
                    None
                }
                () = tokio::time::sleep_until(deadline.unwrap_or_else(Instant::now)),
                    if deadline.is_some() => self.batcher.take(),
                next = self.rx.recv() => match next {
                    Some(record) => self.fill(record),
                    None => {
                        // Queue closed and empty: close() or every handle dropped.
                        let rest = self.batcher.take();
                        self.collect_unreported();
                        if rest.is_some() || !self.pending_drops.is_empty() {
                            // A pending notice goes out even without records: this is the
                            // last chance to say that something was lost.
                            self.deliver(rest.unwrap_or_default()).await;
                        }
                        return;
                    }
                },
            };
            let mut next = ready;
            while let Some(batch) = next {
                if let Outcome::Aborted = self.deliver(batch).await {
                    return;
                }
                // Only after an oversized record followed a pending batch.
                next = if self.batcher.is_full() {
                    self.batcher.take()
                } else {
                    None
                };
            }
        }
    }

    /// Pushes `record` and then whatever else is already queued, until a batch is ready or the
    /// queue is empty: one pass of the select loop per batch, not per record, so delivery
    /// keeps up with a function printing a burst.
    fn fill(&mut self, record: Bytes) -> Option<Vec<Bytes>> {
        let now = Instant::now();
        self.shared.release(record.len());
        let mut ready = self.batcher.push(record, now);
        while ready.is_none() && !self.batcher.is_full() {
            let Ok(record) = self.rx.try_recv() else {
                break;
            };
            self.shared.release(record.len());
            ready = self.batcher.push(record, now);
        }
        ready
    }

    /// POSTs `batch` (after a drop notice, if one is owed) with retries, and accounts for
    /// the result.
    async fn deliver(&mut self, batch: Vec<Bytes>) -> Outcome {
        self.collect_unreported();
        let announced = std::mem::take(&mut self.pending_drops);
        let notice = (!announced.is_empty()).then(|| (self.notice)(announced.to_dropped()));
        let body = json_array(notice.as_ref(), &batch);
        let records = batch.len() as u64;
        let bytes: u64 = batch.iter().map(|r| r.len() as u64).sum();

        let abort = self.shared.abort.clone();
        let result = tokio::select! {
            biased;
            () = abort.cancelled() => None,
            r = async {
                // A frozen listener cannot answer: the batch waits for the next thaw.
                self.config.freeze.thawed().await;
                self.post_with_retries(body).await
            } => Some(r),
        };
        let counters = &self.shared.counters;
        match result {
            Some(Ok(())) => {
                Counters::add(&counters.delivered_records, records);
                Counters::add(&counters.delivered_batches, 1);
                if self.failing_batches > 0 {
                    tracing::info!(
                        uri = %self.config.uri,
                        failed_batches = self.failing_batches,
                        "Telemetry listener is accepting batches again."
                    );
                    self.failing_batches = 0;
                }
                Outcome::Delivered
            }
            Some(Err(reason)) => {
                counters.dropped(records, bytes);
                self.pending_drops.merge(announced);
                if records > 0 {
                    self.pending_drops.add(records, bytes, &reason);
                }
                self.failing_batches += 1;
                if let Some(suppressed) = self.give_up_warnings.check(Instant::now()) {
                    tracing::warn!(
                        uri = %self.config.uri,
                        dropped_records = records,
                        suppressed_warnings = suppressed,
                        error = %reason,
                        "Telemetry batch given up; its records are dropped."
                    );
                }
                Outcome::GaveUp
            }
            None => {
                counters.dropped(records, bytes);
                Outcome::Aborted
            }
        }
    }

    /// Up to `max_attempts` POSTs with doubling backoff. The error is the drop reason.
    async fn post_with_retries(&self, body: Bytes) -> Result<(), String> {
        let attempts = self.config.max_attempts.max(1);
        let counters = &self.shared.counters;
        let mut delay = self.config.backoff;
        let mut attempt = 1;
        loop {
            let result = match self
                .config
                .freeze
                .timeout(
                    self.config.request_timeout,
                    self.transport.post(body.clone()),
                )
                .await
            {
                Ok(result) => result,
                Err(_) => Err(PostError::Timeout(self.config.request_timeout)),
            };
            let error = match result {
                Ok(()) => return Ok(()),
                Err(error) => error,
            };
            Counters::add(&counters.failed_posts, 1);
            tracing::debug!(uri = %self.config.uri, attempt, error = %error, "Telemetry POST failed.");
            if attempt >= attempts {
                let plural = if attempts == 1 { "" } else { "s" };
                return Err(format!("{error} after {attempts} attempt{plural}"));
            }
            tokio::time::sleep(delay).await;
            self.config.freeze.thawed().await;
            delay = delay.saturating_mul(2);
            attempt += 1;
            Counters::add(&counters.retries, 1);
        }
    }

    /// Moves queue-full drops counted by `send` into the account the next notice reports.
    fn collect_unreported(&mut self) {
        let fresh = self.shared.take_unreported();
        if fresh.is_empty() {
            return;
        }
        if let Some(suppressed) = self.queue_full_warnings.check(Instant::now()) {
            tracing::warn!(
                uri = %self.config.uri,
                dropped_records = fresh.records,
                suppressed_warnings = suppressed,
                "Telemetry queue full; records dropped because the listener is slower than the function's output."
            );
        }
        self.pending_drops.merge(fresh);
    }

    /// Counts everything still pending as dropped: the task is stopping for good.
    fn abandon_rest(&mut self) {
        self.rx.close();
        let mut records = 0u64;
        let mut bytes = 0u64;
        let pending = self.batcher.take().into_iter().flatten();
        let shared = &self.shared;
        let rx = &mut self.rx;
        let queued = std::iter::from_fn(|| {
            let record = rx.try_recv().ok()?;
            shared.release(record.len());
            Some(record)
        });
        for record in pending.chain(queued) {
            records += 1;
            bytes += record.len() as u64;
        }
        if records > 0 {
            self.shared.counters.dropped(records, bytes);
            tracing::warn!(
                uri = %self.config.uri,
                dropped_records = records,
                reason = REASON_SHUTDOWN,
                "Telemetry delivery stopped with records pending; they are dropped."
            );
        }
    }
}

/// `[` + records joined by `,` + `]`, verbatim: records are already-encoded JSON values.
pub(crate) fn json_array(head: Option<&Bytes>, records: &[Bytes]) -> Bytes {
    let len = crate::batcher::array_len(records) + head.map_or(0, |h| h.len() + 1);
    let mut body = BytesMut::with_capacity(len);
    body.extend_from_slice(b"[");
    for (i, record) in head.into_iter().chain(records).enumerate() {
        if i > 0 {
            body.extend_from_slice(b",");
        }
        body.extend_from_slice(record);
    }
    body.extend_from_slice(b"]");
    body.freeze()
}

/// The delivery loop under paused time, against a scripted transport.
#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use tokio::time::sleep;

    use super::*;
    use crate::subscriber::spawn_with;
    use crate::{Buffering, DeliveryStats, DroppedRecords, SubscriberHandle};

    #[derive(Clone, Copy, Debug)]
    enum Mode {
        Accept,
        Status(u16),
        Hang,
    }

    #[derive(Default)]
    struct Script {
        mode: Option<Mode>,
        /// Every attempt: when, the body, and whether it was accepted.
        attempts: Vec<(Instant, String, bool)>,
    }

    #[derive(Clone)]
    struct Fake(Arc<Mutex<Script>>);

    impl Fake {
        fn new(mode: Mode) -> Self {
            Fake(Arc::new(Mutex::new(Script {
                mode: Some(mode),
                attempts: Vec::new(),
            })))
        }
        fn set(&self, mode: Mode) {
            self.0.lock().unwrap().mode = Some(mode);
        }
        fn attempts(&self) -> Vec<(Instant, String, bool)> {
            self.0.lock().unwrap().attempts.clone()
        }
        fn accepted(&self) -> Vec<String> {
            self.attempts()
                .into_iter()
                .filter(|a| a.2)
                .map(|a| a.1)
                .collect()
        }
    }

    impl Transport for Fake {
        fn post(&self, body: Bytes) -> impl Future<Output = Result<(), PostError>> + Send {
            let script = self.0.clone();
            async move {
                let mode = {
                    let mut s = script.lock().unwrap();
                    let mode = s.mode.unwrap();
                    let body = String::from_utf8(body.to_vec()).unwrap();
                    s.attempts
                        .push((Instant::now(), body, matches!(mode, Mode::Accept)));
                    mode
                };
                match mode {
                    Mode::Accept => Ok(()),
                    Mode::Status(code) => Err(PostError::Status(code)),
                    Mode::Hang => std::future::pending().await,
                }
            }
        }
    }

    fn notice() -> DropNotice {
        Arc::new(|d: DroppedRecords| {
            Bytes::from(format!(
                r#"{{"dropped":{},"bytes":{},"reason":"{}"}}"#,
                d.records, d.bytes, d.reason
            ))
        })
    }

    fn config(timeout_ms: u64) -> SubscriberConfig {
        let mut c = SubscriberConfig::new("http://127.0.0.1:9/").unwrap();
        c.buffering = Buffering {
            max_items: 1000,
            max_bytes: 256 * 1024,
            timeout: Duration::from_millis(timeout_ms),
        };
        c
    }

    fn start(config: SubscriberConfig, fake: &Fake) -> (SubscriberHandle, CancellationToken) {
        let cancel = CancellationToken::new();
        let handle = spawn_with(
            config,
            notice(),
            fake.clone(),
            &TaskTracker::new(),
            cancel.clone(),
        );
        (handle, cancel)
    }

    fn rec(s: &str) -> Bytes {
        Bytes::from(format!("\"{s}\""))
    }

    #[tokio::test(start_paused = true)]
    async fn batch_is_due_timeout_after_its_first_record() {
        let fake = Fake::new(Mode::Accept);
        let (h, _cancel) = start(config(1000), &fake);
        let t0 = Instant::now();
        h.send(rec("a"));
        sleep(Duration::from_millis(999)).await;
        assert!(fake.attempts().is_empty(), "not due before the timeout");
        sleep(Duration::from_millis(1)).await;
        tokio::task::yield_now().await;
        let attempts = fake.attempts();
        assert_eq!(attempts.len(), 1);
        assert_eq!(attempts[0].0 - t0, Duration::from_millis(1000));
        assert_eq!(attempts[0].1, r#"["a"]"#);

        // The next batch's clock starts with its own first record.
        sleep(Duration::from_millis(500)).await;
        h.send(rec("b"));
        sleep(Duration::from_millis(1001)).await;
        let attempts = fake.attempts();
        assert_eq!(attempts.len(), 2);
        assert_eq!(attempts[1].0 - t0, Duration::from_millis(2500));
    }

    #[tokio::test(start_paused = true)]
    async fn a_trickle_does_not_postpone_the_batch() {
        let fake = Fake::new(Mode::Accept);
        let (h, _cancel) = start(config(1000), &fake);
        let t0 = Instant::now();
        for i in 0..6 {
            h.send(rec(&i.to_string()));
            sleep(Duration::from_millis(300)).await;
        }
        sleep(Duration::from_millis(2000)).await;
        let attempts = fake.attempts();
        assert_eq!(attempts.len(), 2);
        assert_eq!(attempts[0].0 - t0, Duration::from_millis(1000));
        assert_eq!(attempts[0].1, r#"["0","1","2","3"]"#);
        assert_eq!(attempts[1].0 - t0, Duration::from_millis(2200));
        assert_eq!(attempts[1].1, r#"["4","5"]"#);
    }

    #[tokio::test(start_paused = true)]
    async fn full_batches_go_out_without_waiting() {
        let fake = Fake::new(Mode::Accept);
        let mut c = config(1000);
        c.buffering.max_items = 2;
        let (h, _cancel) = start(c, &fake);
        let t0 = Instant::now();
        for s in ["a", "b", "c"] {
            h.send(rec(s));
        }
        tokio::task::yield_now().await;
        let attempts = fake.attempts();
        assert_eq!(attempts.len(), 1);
        assert_eq!(attempts[0].0, t0);
        assert_eq!(attempts[0].1, r#"["a","b"]"#);
        sleep(Duration::from_millis(1200)).await;
        assert_eq!(fake.accepted(), [r#"["a","b"]"#, r#"["c"]"#]);
    }

    #[tokio::test(start_paused = true)]
    async fn oversized_record_after_pending_batch_goes_out_alone_and_in_order() {
        let fake = Fake::new(Mode::Accept);
        let mut c = config(1000);
        c.buffering.max_bytes = 10;
        let (h, _cancel) = start(c, &fake);
        h.send(rec("a"));
        h.send(rec("a very long record"));
        h.send(rec("b"));
        sleep(Duration::from_millis(1200)).await;
        assert_eq!(
            fake.accepted(),
            [r#"["a"]"#, r#"["a very long record"]"#, r#"["b"]"#]
        );
    }

    #[tokio::test(start_paused = true)]
    async fn failed_batch_is_retried_with_backoff_then_dropped_and_announced() {
        let fake = Fake::new(Mode::Status(500));
        let (h, _cancel) = start(config(25), &fake);
        let t0 = Instant::now();
        h.send(rec("a"));
        sleep(Duration::from_millis(400)).await;
        let at: Vec<Duration> = fake.attempts().iter().map(|a| a.0 - t0).collect();
        // Due at 25 ms, then retries after 100 ms and 200 ms.
        assert_eq!(
            at,
            [25, 125, 325].map(Duration::from_millis),
            "attempt times"
        );
        assert_eq!(
            h.stats(),
            DeliveryStats {
                dropped_records: 1,
                dropped_bytes: 3,
                failed_posts: 3,
                retries: 2,
                ..DeliveryStats::default()
            }
        );

        fake.set(Mode::Accept);
        h.send(rec("b"));
        sleep(Duration::from_millis(100)).await;
        assert_eq!(
            fake.accepted(),
            [r#"[{"dropped":1,"bytes":3,"reason":"listener answered 500 after 3 attempts"},"b"]"#]
        );
        let stats = h.stats();
        assert_eq!((stats.delivered_records, stats.delivered_batches), (1, 1));
    }

    #[tokio::test(start_paused = true)]
    async fn a_failed_notice_is_folded_into_the_next_one() {
        let fake = Fake::new(Mode::Status(503));
        let mut c = config(25);
        c.max_attempts = 1;
        let (h, _cancel) = start(c, &fake);
        h.send(rec("a"));
        sleep(Duration::from_millis(100)).await;
        h.send(rec("bb"));
        sleep(Duration::from_millis(100)).await;
        let attempts = fake.attempts();
        assert_eq!(attempts.len(), 2);
        assert_eq!(
            attempts[1].1,
            r#"[{"dropped":1,"bytes":3,"reason":"listener answered 503 after 1 attempt"},"bb"]"#
        );
        fake.set(Mode::Accept);
        h.send(rec("c"));
        sleep(Duration::from_millis(100)).await;
        assert_eq!(
            fake.accepted(),
            [r#"[{"dropped":2,"bytes":7,"reason":"listener answered 503 after 1 attempt"},"c"]"#]
        );
        assert_eq!(h.stats().dropped_records, 2);
        assert_eq!(h.stats().retries, 0);
    }

    #[tokio::test(start_paused = true)]
    async fn queue_full_drops_are_counted_at_once_and_announced_after_the_stall() {
        let fake = Fake::new(Mode::Hang);
        let mut c = config(25);
        c.queue_bytes = 4 * 3; // four 3-byte records
        c.request_timeout = Duration::from_secs(10);
        let (h, _cancel) = start(c, &fake);
        let t0 = Instant::now();
        h.send(rec("first"));
        sleep(Duration::from_millis(50)).await;
        assert_eq!(fake.attempts().len(), 1, "first batch is in flight");
        fake.set(Mode::Accept);
        for i in 0..10 {
            h.send(rec(&i.to_string()));
        }
        assert_eq!(h.stats().dropped_records, 6, "4 fit in the queue");
        assert_eq!(h.stats().dropped_bytes, 18);

        // The hanging POST times out at 25 ms + 10 s; the retry 100 ms later succeeds.
        sleep(Duration::from_secs(11)).await;
        let attempts = fake.attempts();
        assert_eq!(attempts[1].0 - t0, Duration::from_millis(10_125));
        assert_eq!(
            fake.accepted(),
            [
                r#"["first"]"#,
                r#"[{"dropped":6,"bytes":18,"reason":"queue full"},"0","1","2","3"]"#
            ]
        );
        let s = h.stats();
        assert_eq!((s.failed_posts, s.retries), (1, 1));
        assert_eq!((s.delivered_records, s.dropped_records), (5, 6));
    }

    #[tokio::test(start_paused = true)]
    async fn a_frozen_environment_holds_batches_and_stops_the_request_clock() {
        let fake = Fake::new(Mode::Hang);
        let mut c = config(25);
        c.request_timeout = Duration::from_secs(1);
        let gate = c.freeze.clone();
        let (h, _cancel) = start(c, &fake);
        h.send(rec("in-flight"));
        sleep(Duration::from_millis(50)).await;
        assert_eq!(fake.attempts().len(), 1, "the batch is in flight");
        // Frozen for a minute: the hanging POST is not timed out, nothing fails.
        gate.set_frozen(true);
        sleep(Duration::from_secs(60)).await;
        assert_eq!(h.stats().failed_posts, 0, "no failure while frozen");
        // Thawed: the listener answers (its request was only held).
        fake.set(Mode::Accept);
        gate.set_frozen(false);
        sleep(Duration::from_millis(1200)).await;
        assert_eq!(
            h.stats().failed_posts,
            1,
            "thawed time ran out once: retried"
        );
        assert_eq!(h.stats().delivered_records, 1);
        // A batch due while frozen waits for the thaw instead of failing.
        gate.set_frozen(true);
        h.send(rec("while-frozen"));
        sleep(Duration::from_secs(30)).await;
        assert_eq!(fake.attempts().len(), 2, "no POST to a frozen listener");
        gate.set_frozen(false);
        sleep(Duration::from_millis(10)).await;
        assert_eq!(fake.accepted().last().unwrap(), r#"["while-frozen"]"#);
        let s = h.stats();
        assert_eq!((s.delivered_records, s.dropped_records), (2, 0));
    }

    #[tokio::test(start_paused = true)]
    async fn the_queue_is_bounded_in_bytes_not_records() {
        let fake = Fake::new(Mode::Hang);
        let mut c = config(25);
        c.queue_bytes = 20;
        let (h, _cancel) = start(c, &fake);
        h.send(rec("first"));
        sleep(Duration::from_millis(50)).await;
        assert_eq!(fake.attempts().len(), 1, "first batch is in flight");
        // Sizes 10, 3, 8 (does not fit: 21 > 20), 4, 3 (exactly 20), 3 (does not fit).
        for s in ["aaaaaaaa", "b", "cccccc", "dd", "e", "f"] {
            h.send(rec(s));
        }
        let s = h.stats();
        assert_eq!((s.dropped_records, s.dropped_bytes), (2, 8 + 3));

        // Many tiny records fit where a record count would have refused them, and an empty
        // queue takes a record larger than the whole bound.
        let mut c = config(25);
        c.queue_bytes = 300;
        let (h, _cancel) = start(c, &fake);
        h.send(rec("first"));
        sleep(Duration::from_millis(50)).await;
        for _ in 0..150 {
            h.send(rec(""));
        }
        assert_eq!(
            h.stats().dropped_records,
            0,
            "150 records of 2 bytes: 300 bytes"
        );
        h.send(rec(""));
        assert_eq!(h.stats().dropped_records, 1);
        let mut c = config(25);
        c.queue_bytes = 5;
        let (h, _cancel) = start(c, &fake);
        h.send(rec("first"));
        sleep(Duration::from_millis(50)).await;
        h.send(rec(&"x".repeat(100)));
        assert_eq!(h.stats().dropped_records, 0, "an empty queue takes it");
        h.send(rec(""));
        assert_eq!(h.stats().dropped_records, 1);
    }

    #[tokio::test(start_paused = true)]
    async fn a_burst_far_larger_than_the_queue_is_delivered_whole_when_the_listener_keeps_up() {
        // As a process reader feeds it: a pipe read's worth of lines (1,000), then a yield.
        // Delivery takes a whole batch off the queue per pass, so a queue of 3 reads' worth
        // carries a burst of 100 reads without a drop. (Taking one record per pass, the task
        // fell behind within a few reads, whatever the listener's speed.)
        let fake = Fake::new(Mode::Accept);
        let one = rec("[Function] bench line 00000000 lorem ipsum dolor sit amet");
        let mut c = config(25);
        c.queue_bytes = 3 * 1000 * one.len();
        let (h, _cancel) = start(c, &fake);
        for _ in 0..100 {
            for _ in 0..1000 {
                h.send(one.clone());
            }
            tokio::task::yield_now().await;
        }
        let stats = h.close(Duration::from_secs(5)).await;
        assert_eq!(stats.dropped_records, 0);
        assert_eq!(stats.delivered_records, 100_000);
        assert_eq!(fake.accepted().len(), 100, "full batches of max_items 1000");
    }

    #[tokio::test(start_paused = true)]
    async fn close_flushes_without_waiting_for_the_timeout() {
        let fake = Fake::new(Mode::Accept);
        let (h, _cancel) = start(config(30_000), &fake);
        let t0 = Instant::now();
        for s in ["a", "b", "c"] {
            h.send(rec(s));
        }
        let other = h.clone();
        let stats = h.close(Duration::from_secs(5)).await;
        assert_eq!(Instant::now(), t0, "no timer was waited for");
        assert_eq!(fake.accepted(), [r#"["a","b","c"]"#]);
        assert_eq!(stats.delivered_records, 3);
        assert!(other.is_finished());
        other.send(rec("late"));
        assert_eq!(other.stats().dropped_records, 1, "refused after close");
    }

    #[tokio::test(start_paused = true)]
    async fn close_announces_a_pending_drop_even_without_records() {
        let fake = Fake::new(Mode::Status(500));
        let mut c = config(25);
        c.max_attempts = 1;
        let (h, _cancel) = start(c, &fake);
        h.send(rec("a"));
        sleep(Duration::from_millis(100)).await;
        fake.set(Mode::Accept);
        let stats = h.close(Duration::from_secs(1)).await;
        assert_eq!(
            fake.accepted(),
            [r#"[{"dropped":1,"bytes":3,"reason":"listener answered 500 after 1 attempt"}]"#]
        );
        assert_eq!(stats.delivered_batches, 1);
        assert_eq!(stats.delivered_records, 0);
    }

    #[tokio::test(start_paused = true)]
    async fn close_gives_up_after_grace_and_counts_the_rest() {
        let fake = Fake::new(Mode::Hang);
        let mut c = config(25);
        c.queue_bytes = 100 * 3; // a hundred 3-byte records
        let (h, _cancel) = start(c, &fake);
        h.send(rec("x"));
        sleep(Duration::from_millis(50)).await;
        for _ in 0..150 {
            h.send(rec("x"));
        }
        let t0 = Instant::now();
        let stats = h.close(Duration::from_secs(2)).await;
        assert_eq!(Instant::now() - t0, Duration::from_secs(2));
        assert_eq!(stats.delivered_records, 0);
        assert_eq!(
            stats.dropped_records, 151,
            "in flight + queued + queue-full"
        );
        assert_eq!(stats.dropped_bytes, 151 * 3);
    }

    #[tokio::test(start_paused = true)]
    async fn cancel_stops_the_task_and_counts_pending_records() {
        let fake = Fake::new(Mode::Accept);
        let (h, cancel) = start(config(1000), &fake);
        h.send(rec("a"));
        h.send(rec("b"));
        tokio::task::yield_now().await;
        cancel.cancel();
        sleep(Duration::from_millis(1)).await;
        assert!(h.is_finished());
        assert_eq!(h.stats().dropped_records, 2);
        assert!(fake.attempts().is_empty());
        h.send(rec("c"));
        assert_eq!(h.stats().dropped_records, 3);
    }

    #[tokio::test(start_paused = true)]
    async fn dropping_every_handle_flushes_and_ends_the_task() {
        let fake = Fake::new(Mode::Accept);
        let cancel = CancellationToken::new();
        let tracker = TaskTracker::new();
        let h = spawn_with(config(30_000), notice(), fake.clone(), &tracker, cancel);
        h.send(rec("a"));
        drop(h);
        tracker.close();
        tracker.wait().await;
        assert_eq!(fake.accepted(), [r#"["a"]"#]);
    }

    #[test]
    fn json_array_joins_verbatim() {
        assert_eq!(json_array(None, &[]), "[]");
        assert_eq!(json_array(None, &[rec("a")]), r#"["a"]"#);
        assert_eq!(
            json_array(Some(&Bytes::from_static(b"{}")), &[rec("a"), rec("b")]),
            r#"[{},"a","b"]"#
        );
        assert_eq!(json_array(Some(&Bytes::from_static(b"1")), &[]), "[1]");
    }

    #[tokio::test(start_paused = true)]
    async fn warnings_are_rate_limited() {
        let mut w = WarnLimiter::default();
        assert_eq!(w.check(Instant::now()), Some(0));
        assert_eq!(w.check(Instant::now()), None);
        assert_eq!(w.check(Instant::now()), None);
        sleep(WARN_INTERVAL).await;
        assert_eq!(w.check(Instant::now()), Some(2));
    }
}
