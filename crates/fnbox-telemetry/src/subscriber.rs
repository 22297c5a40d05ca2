//! One subscriber: its configuration, the handle the engine feeds, and the shared counters.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use thiserror::Error;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::connector::Connector;
use crate::delivery::{Delivery, HttpTransport};
use crate::Buffering;

/// Default bound of a subscriber's queue, in bytes of encoded records: 64 MiB. A function
/// printing a burst of a million 60-byte lines produces about 130 MB of records (FunctionGraph
/// encoding); a listener that keeps up takes them off the queue while the burst goes on, so
/// the backlog stays a fraction of that and nothing is dropped. A record-count bound (10,000
/// before) dropped such bursts however fast the listener was.
pub const DEFAULT_QUEUE_BYTES: usize = 64 * 1024 * 1024;
/// Default number of POST attempts per batch (first try included).
pub const DEFAULT_MAX_ATTEMPTS: u32 = 3;
/// Default delay before the first retry; doubled for each further retry.
pub const DEFAULT_BACKOFF: Duration = Duration::from_millis(100);
/// Default time limit of one POST, response body included.
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// If `close`'s grace ran out, how long to wait for the task to account for what it abandons.
/// The task reacts to the abort at its next poll, so this only matters on a starved runtime.
const ABORT_SLACK: Duration = Duration::from_millis(500);

/// Where and how one subscriber's records are delivered.
///
/// Fields are public so callers can use struct-update syntax; a zero `max_attempts` is treated
/// as 1, and a record is always admitted into an empty queue whatever `queue_bytes` says (a
/// subscriber that could never receive anything is a bug, not a configuration).
#[derive(Clone, Debug, PartialEq)]
pub struct SubscriberConfig {
    /// The listener, an `http://` URI.
    pub uri: http::Uri,
    /// Batching limits.
    pub buffering: Buffering,
    /// Bytes of encoded records waiting for the delivery task; a record that would take the
    /// queue beyond this is dropped by `send` (reason "queue full"). Records are counted by
    /// their encoded size; the queue's own bookkeeping adds a few dozen bytes per record.
    pub queue_bytes: usize,
    /// POST attempts per batch, first try included, before the batch is given up.
    pub max_attempts: u32,
    /// Delay before the first retry, doubled before each further one.
    pub backoff: Duration,
    /// Time limit of one POST (connect, request and response), counted while the
    /// environment is thawed.
    pub request_timeout: Duration,
    /// Whether the listener's environment is frozen: batches wait for the thaw.
    pub freeze: crate::FreezeGate,
    /// The HTTP method of a delivery: POST, or PUT where a Lambda Logs API subscriber asks.
    pub method: http::Method,
}

/// A destination URI fnbox cannot deliver to.
#[derive(Clone, Debug, Error, PartialEq, Eq)]
pub enum ConfigError {
    /// Not a URI at all.
    #[error("telemetry destination `{uri}` is not a valid URI: {reason}")]
    InvalidUri {
        /// What was given.
        uri: String,
        /// The parser's complaint.
        reason: String,
    },
    /// Not `http://`: listeners are plain HTTP on loopback (Lambda allows no HTTPS either).
    #[error("telemetry destination `{uri}` must be an http:// URI, found {found}")]
    NotHttp {
        /// What was given.
        uri: String,
        /// `scheme "https"` or `no scheme`.
        found: String,
    },
    /// `http://` without a host to connect to.
    #[error("telemetry destination `{uri}` has no host")]
    MissingHost {
        /// What was given.
        uri: String,
    },
}

impl SubscriberConfig {
    /// A configuration with default buffering, queue and retry settings for `uri`, which must
    /// be an `http://` URI with a host. Whether the host is loopback is the engine's business.
    pub fn new(uri: &str) -> Result<SubscriberConfig, ConfigError> {
        let parsed: http::Uri =
            uri.parse()
                .map_err(|e: http::uri::InvalidUri| ConfigError::InvalidUri {
                    uri: uri.to_owned(),
                    reason: e.to_string(),
                })?;
        match parsed.scheme_str() {
            Some("http") => {}
            Some(other) => {
                return Err(ConfigError::NotHttp {
                    uri: uri.to_owned(),
                    found: format!("scheme \"{other}\""),
                })
            }
            None => {
                return Err(ConfigError::NotHttp {
                    uri: uri.to_owned(),
                    found: "no scheme".to_owned(),
                })
            }
        }
        if parsed.host().is_none_or(str::is_empty) {
            return Err(ConfigError::MissingHost {
                uri: uri.to_owned(),
            });
        }
        Ok(SubscriberConfig {
            uri: parsed,
            buffering: Buffering::default(),
            queue_bytes: DEFAULT_QUEUE_BYTES,
            max_attempts: DEFAULT_MAX_ATTEMPTS,
            backoff: DEFAULT_BACKOFF,
            request_timeout: DEFAULT_REQUEST_TIMEOUT,
            freeze: crate::FreezeGate::new(),
            method: http::Method::POST,
        })
    }
}

/// What a drop notice reports: records lost since the last notice that went out.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DroppedRecords {
    /// Number of records lost.
    pub records: u64,
    /// Their total size (the encoded records, without array punctuation).
    pub bytes: u64,
    /// Why, e.g. `queue full` or `listener answered 500 after 3 attempts`; several causes in
    /// one gap are joined with `; `.
    pub reason: String,
}

/// Encodes the "records were dropped" notice in the subscriber's dialect (e.g. a FunctionGraph
/// `platform.logsDropped` event). Called by the pipeline; the returned record is delivered at
/// the head of the next batch.
pub type DropNotice = Arc<dyn Fn(DroppedRecords) -> Bytes + Send + Sync>;

/// Delivery counters of one subscriber. Drop notices are not records: they count towards
/// `delivered_batches` but never towards the record counters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DeliveryStats {
    /// Records the listener acknowledged with a 2xx.
    pub delivered_records: u64,
    /// POSTs the listener acknowledged with a 2xx.
    pub delivered_batches: u64,
    /// Records lost: queue full, batch given up, or still pending at shutdown.
    pub dropped_records: u64,
    /// Their total size.
    pub dropped_bytes: u64,
    /// POST attempts that failed (connection error, timeout, non-2xx).
    pub failed_posts: u64,
    /// POST attempts that were retries.
    pub retries: u64,
}

/// Lock-free counters behind [`DeliveryStats`].
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) delivered_records: AtomicU64,
    pub(crate) delivered_batches: AtomicU64,
    pub(crate) dropped_records: AtomicU64,
    pub(crate) dropped_bytes: AtomicU64,
    pub(crate) failed_posts: AtomicU64,
    pub(crate) retries: AtomicU64,
}

impl Counters {
    pub(crate) fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    pub(crate) fn dropped(&self, records: u64, bytes: u64) {
        Self::add(&self.dropped_records, records);
        Self::add(&self.dropped_bytes, bytes);
    }

    fn snapshot(&self) -> DeliveryStats {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        DeliveryStats {
            delivered_records: get(&self.delivered_records),
            delivered_batches: get(&self.delivered_batches),
            dropped_records: get(&self.dropped_records),
            dropped_bytes: get(&self.dropped_bytes),
            failed_posts: get(&self.failed_posts),
            retries: get(&self.retries),
        }
    }
}

/// Drops not yet announced, aggregated over one gap.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct DropAccount {
    pub(crate) records: u64,
    pub(crate) bytes: u64,
    /// Distinct causes in order of first occurrence.
    pub(crate) reasons: Vec<String>,
}

impl DropAccount {
    pub(crate) fn add(&mut self, records: u64, bytes: u64, reason: &str) {
        self.records += records;
        self.bytes += bytes;
        if !self.reasons.iter().any(|r| r == reason) {
            self.reasons.push(reason.to_owned());
        }
    }

    pub(crate) fn merge(&mut self, other: DropAccount) {
        self.records += other.records;
        self.bytes += other.bytes;
        for reason in other.reasons {
            if !self.reasons.contains(&reason) {
                self.reasons.push(reason);
            }
        }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.records == 0
    }

    pub(crate) fn to_dropped(&self) -> DroppedRecords {
        DroppedRecords {
            records: self.records,
            bytes: self.bytes,
            reason: self.reasons.join("; "),
        }
    }
}

/// State shared by all clones of a handle and the delivery task.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) uri: http::Uri,
    pub(crate) counters: Counters,
    /// Queue-full drops counted by `send` that the task has not yet folded into a notice. A
    /// mutex, not atomics, so records and bytes of one drop always land in the same notice;
    /// it is only touched on the drop path and by the task once per batch.
    pub(crate) unreported: Mutex<DropAccount>,
    /// Bytes of the records in the queue (added by `send`, taken off by the delivery task).
    pub(crate) queued_bytes: AtomicUsize,
    /// The bound on `queued_bytes`.
    pub(crate) queue_bytes: usize,
    /// Set by `close`: `send` refuses from then on.
    pub(crate) closed: AtomicBool,
    /// Fired by `close`: flush everything queued, then exit.
    pub(crate) drain: CancellationToken,
    /// Child of the caller's token, also fired when `close`'s grace runs out: stop now and
    /// count whatever is still pending as dropped.
    pub(crate) abort: CancellationToken,
    /// Fired by the task when it has exited and the counters are final.
    pub(crate) finished: CancellationToken,
}

impl Shared {
    /// Reserves room for `len` bytes in the queue; false when they do not fit. An empty queue
    /// takes any record, so an oversized one is not lost for good.
    fn reserve(&self, len: usize) -> bool {
        let mut queued = self.queued_bytes.load(Ordering::Relaxed);
        loop {
            if queued != 0 && queued.saturating_add(len) > self.queue_bytes {
                return false;
            }
            match self.queued_bytes.compare_exchange_weak(
                queued,
                queued + len,
                Ordering::Relaxed,
                Ordering::Relaxed,
            ) {
                Ok(_) => return true,
                Err(now) => queued = now,
            }
        }
    }

    /// Gives back the room of a record taken off the queue.
    pub(crate) fn release(&self, len: usize) {
        self.queued_bytes.fetch_sub(len, Ordering::Relaxed);
    }

    pub(crate) fn take_unreported(&self) -> DropAccount {
        std::mem::take(&mut *self.unreported.lock().unwrap_or_else(|e| e.into_inner()))
    }
}

/// Reason recorded for records that miss the queue.
pub(crate) const REASON_QUEUE_FULL: &str = "queue full";
/// Reason recorded for records still pending when delivery stops.
pub(crate) const REASON_SHUTDOWN: &str = "shutdown";

/// Entry point: spawns per-subscriber delivery tasks.
#[derive(Debug)]
pub struct Subscriber;

impl Subscriber {
    /// Spawns the delivery task onto `tracker`; it stops when `cancel` fires (pending records
    /// are counted as dropped) or the handle is closed (pending records are flushed first).
    /// HTTP connection tasks are spawned onto `tracker` too, so nothing outlives shutdown.
    ///
    /// Must be called inside a Tokio runtime.
    pub fn spawn(
        config: SubscriberConfig,
        notice: DropNotice,
        tracker: &TaskTracker,
        cancel: CancellationToken,
    ) -> SubscriberHandle {
        Self::spawn_connected(config, notice, Connector::host(), tracker, cancel)
    }

    /// [`Subscriber::spawn`] with the listener reached through `connector` (e.g. sockets
    /// created inside the instance's network namespace).
    pub fn spawn_connected(
        config: SubscriberConfig,
        notice: DropNotice,
        connector: Connector,
        tracker: &TaskTracker,
        cancel: CancellationToken,
    ) -> SubscriberHandle {
        let transport = HttpTransport::new(
            config.uri.clone(),
            connector,
            tracker.clone(),
            cancel.clone(),
        )
        .with_method(config.method.clone());
        spawn_with(config, notice, transport, tracker, cancel)
    }
}

/// [`Subscriber::spawn`] with any transport; unit tests use a scripted one.
pub(crate) fn spawn_with<T: crate::delivery::Transport>(
    config: SubscriberConfig,
    notice: DropNotice,
    transport: T,
    tracker: &TaskTracker,
    cancel: CancellationToken,
) -> SubscriberHandle {
    // Unbounded as a channel; bounded in bytes by `Shared::reserve` before every send.
    let (tx, rx) = mpsc::unbounded_channel();
    let shared = Arc::new(Shared {
        uri: config.uri.clone(),
        queued_bytes: AtomicUsize::new(0),
        queue_bytes: config.queue_bytes,
        counters: Counters::default(),
        unreported: Mutex::new(DropAccount::default()),
        closed: AtomicBool::new(false),
        drain: CancellationToken::new(),
        abort: cancel.child_token(),
        finished: CancellationToken::new(),
    });
    let delivery = Delivery::new(config, notice, transport, rx, shared.clone());
    tracker.spawn(delivery.run());
    SubscriberHandle { tx, shared }
}

/// The engine's side of a subscriber. Cheap to clone; all clones feed the same queue.
#[derive(Clone, Debug)]
pub struct SubscriberHandle {
    tx: mpsc::UnboundedSender<Bytes>,
    shared: Arc<Shared>,
}

impl SubscriberHandle {
    /// Never blocks, never awaits: enqueues or, when the record does not fit in the queue's
    /// byte bound, drops and counts (reason "queue full"; announced by a notice at the head of the next batch).
    /// After [`close`](Self::close) records are discarded and counted as dropped.
    pub fn send(&self, record: Bytes) {
        if self.shared.closed.load(Ordering::Relaxed) {
            self.shared.counters.dropped(1, record.len() as u64);
            return;
        }
        let bytes = record.len();
        if !self.shared.reserve(bytes) {
            self.shared.counters.dropped(1, bytes as u64);
            self.shared
                .unreported
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .add(1, bytes as u64, REASON_QUEUE_FULL);
            return;
        }
        if let Err(mpsc::error::SendError(record)) = self.tx.send(record) {
            // The task has stopped (cancelled): nobody is left to announce it.
            self.shared.release(bytes);
            self.shared.counters.dropped(1, record.len() as u64);
        }
    }

    /// Delivery counters so far.
    pub fn stats(&self) -> DeliveryStats {
        self.shared.counters.snapshot()
    }

    /// Stops accepting (for every clone), flushes everything queued (honouring retries) and
    /// waits at most `grace`; what cannot be delivered in time is counted as dropped (reason
    /// "shutdown"). Returns the final stats.
    pub async fn close(self, grace: Duration) -> DeliveryStats {
        self.shared.closed.store(true, Ordering::Relaxed);
        self.shared.drain.cancel();
        let finished = self.shared.finished.clone();
        if tokio::time::timeout(grace, finished.cancelled())
            .await
            .is_err()
        {
            tracing::warn!(
                uri = %self.shared.uri,
                grace_ms = grace.as_millis() as u64,
                "Telemetry flush did not finish within the grace period; dropping the rest."
            );
            self.shared.abort.cancel();
            if tokio::time::timeout(ABORT_SLACK, finished.cancelled())
                .await
                .is_err()
            {
                tracing::warn!(uri = %self.shared.uri, "Telemetry delivery task did not stop in time.");
            }
        }
        self.stats()
    }

    /// The listener this handle delivers to.
    pub fn uri(&self) -> &http::Uri {
        &self.shared.uri
    }

    /// Whether the delivery task has exited (closed, cancelled, or every handle dropped).
    pub fn is_finished(&self) -> bool {
        self.shared.finished.is_cancelled()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_defaults() {
        let c = SubscriberConfig::new("http://127.0.0.1:8081/telemetry").unwrap();
        assert_eq!(c.uri, "http://127.0.0.1:8081/telemetry");
        assert_eq!(c.buffering, Buffering::default());
        assert_eq!(c.queue_bytes, 64 * 1024 * 1024);
        assert_eq!(c.max_attempts, 3);
        assert_eq!(c.backoff, Duration::from_millis(100));
        assert_eq!(c.request_timeout, Duration::from_secs(10));
    }

    #[test]
    fn config_rejects_non_http() {
        let e = SubscriberConfig::new("https://127.0.0.1:8081").unwrap_err();
        assert_eq!(
            e.to_string(),
            "telemetry destination `https://127.0.0.1:8081` must be an http:// URI, found scheme \"https\""
        );
        let e = SubscriberConfig::new("127.0.0.1:8081").unwrap_err();
        assert!(matches!(e, ConfigError::NotHttp { .. }), "{e}");
        assert!(e.to_string().contains("found no scheme"), "{e}");
        let e = SubscriberConfig::new("/telemetry").unwrap_err();
        assert!(matches!(e, ConfigError::NotHttp { .. }), "{e}");
        let e = SubscriberConfig::new("http://exa mple").unwrap_err();
        assert!(matches!(e, ConfigError::InvalidUri { .. }), "{e}");
        let e = SubscriberConfig::new("").unwrap_err();
        assert!(matches!(e, ConfigError::InvalidUri { .. }), "{e}");
    }

    #[test]
    fn drop_account_aggregates_distinct_reasons() {
        let mut a = DropAccount::default();
        assert!(a.is_empty());
        a.add(1, 10, "queue full");
        a.add(2, 20, "queue full");
        let mut b = DropAccount::default();
        b.add(3, 30, "listener answered 500 after 3 attempts");
        b.add(1, 1, "queue full");
        a.merge(b);
        assert_eq!(
            a.to_dropped(),
            DroppedRecords {
                records: 7,
                bytes: 61,
                reason: "queue full; listener answered 500 after 3 attempts".into()
            }
        );
    }
}
