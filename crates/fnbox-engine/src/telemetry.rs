//! The telemetry bus: lifecycle and log events are produced here once, as typed values, and
//! fanned out to each subscriber through its dialect's encoder.
//!
//! # Design
//! The bus never waits: [`Bus::publish`] encodes and hands each record to the subscriber's
//! bounded delivery queue ([`fnbox_telemetry::SubscriberHandle::send`], a `try_send`). Events
//! published before the first subscription (at least the whole init phase) are kept in a bounded
//! replay buffer and delivered to the first subscriber before anything newer.
//!
//! # Limitations
//! Encoding runs on the publisher's task, under the bus lock; encoders are small pure functions.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use chrono::{DateTime, Utc};
use fnbox_telemetry::{DeliveryStats, DropNotice, Subscriber, SubscriberConfig, SubscriberHandle};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// How many events are kept for replay until a subscription arrives.
pub const REPLAY_CAPACITY: usize = 10_000;

/// Outcome of a phase, as `status` of `*RuntimeDone` and `*Report` events.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    /// The phase completed.
    Success,
    /// The function reported an error (handler error, init error).
    Error,
    /// A deadline passed.
    Timeout,
    /// The environment failed (crash, out of memory).
    Failure,
}

impl Status {
    /// The wire spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Success => "success",
            Status::Error => "error",
            Status::Timeout => "timeout",
            Status::Failure => "failure",
        }
    }
}

/// Which phase a platform event belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    /// Cold start of an instance.
    Init,
    /// One invocation.
    Invoke,
    /// Start from a snapshot (reserved for the restore phase).
    Restore,
}

/// Measured figures of a phase.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct ReportMetrics {
    /// Wall time of the phase in milliseconds.
    pub duration_ms: f64,
    /// Duration rounded up to a whole millisecond.
    pub billed_duration_ms: u64,
    /// Measured peak memory of the instance during the phase, MB.
    pub memory_used_mb: f64,
    /// Configured memory size, MB.
    pub memory_size_mb: u32,
    /// CPU the instance used during the phase, in cores: its processes' CPU time over the
    /// duration (FunctionGraph's `cpu used: …U`; see docs/design.md "Finish line figures").
    pub cpu_used: f64,
    /// Bytes the instance's processes wrote to disk-backed files during the phase, MB
    /// (FunctionGraph's `storage used: …MB`).
    pub storage_used_mb: f64,
}

impl ReportMetrics {
    /// Builds metrics from a measured duration and peak.
    pub fn new(duration: Duration, peak_bytes: u64, memory_size_mb: u32) -> Self {
        let duration_ms = duration.as_secs_f64() * 1000.0;
        Self {
            duration_ms,
            billed_duration_ms: (duration_ms.ceil() as u64).max(1),
            memory_used_mb: peak_bytes as f64 / (1024.0 * 1024.0),
            memory_size_mb,
            cpu_used: 0.0,
            storage_used_mb: 0.0,
        }
    }

    /// The figures of FunctionGraph's `Finish invoke request` line.
    pub fn finish_figures(&self) -> fnbox_wire::fg::FinishFigures {
        fnbox_wire::fg::FinishFigures {
            duration_ms: self.duration_ms,
            billing_duration_ms: self.billed_duration_ms,
            memory_used_mb: self.memory_used_mb,
            memory_size_mb: self.memory_size_mb,
            cpu_used: self.cpu_used,
            storage_used_mb: self.storage_used_mb,
        }
    }

    /// Adds the CPU time and file bytes written during the phase.
    pub fn with_usage(mut self, cpu_time: Duration, written_bytes: u64) -> Self {
        if self.duration_ms > 0.0 {
            self.cpu_used = cpu_time.as_secs_f64() * 1000.0 / self.duration_ms;
        }
        self.storage_used_mb = written_bytes as f64 / (1024.0 * 1024.0);
        self
    }
}

/// One telemetry event, dialect-neutral.
#[derive(Clone, Debug, PartialEq)]
pub enum Event {
    /// `platform.initStart` / `platform.start` / `platform.restoreStart`.
    Start {
        /// Phase.
        phase: Phase,
        /// When it started.
        time: DateTime<Utc>,
        /// Request id (the invocation, or the request that caused the cold start).
        trace_id: String,
        /// The invocation's W3C trace context ([`crate::trace`]); `None` for init and restore.
        trace: Option<crate::trace::TraceContext>,
    },
    /// `platform.initRuntimeDone` / `platform.runtimeDone` / `platform.restoreRuntimeDone`.
    RuntimeDone {
        /// Phase.
        phase: Phase,
        /// When the runtime finished.
        time: DateTime<Utc>,
        /// Request id.
        trace_id: String,
        /// Outcome.
        status: Status,
        /// Set when status is not success.
        error_type: Option<String>,
        /// Where the time went (Lambda's `responseLatency`, `responseDuration`,
        /// `runtimeOverhead`); empty when not measured.
        spans: Vec<Span>,
        /// Size of the response the runtime posted, when it posted one.
        produced_bytes: Option<u64>,
    },
    /// `platform.initReport` / `platform.report` / `platform.restoreReport`.
    Report {
        /// Phase.
        phase: Phase,
        /// When the phase started.
        start: DateTime<Utc>,
        /// When it ended.
        end: DateTime<Utc>,
        /// Request id.
        trace_id: String,
        /// Outcome.
        status: Status,
        /// Set when status is not success.
        error_type: Option<String>,
        /// Measured figures.
        metrics: ReportMetrics,
        /// Name of the instance.
        pod_name: String,
    },
    /// A `[Function]` line of the runtime.
    Function {
        /// When the line was read.
        time: DateTime<Utc>,
        /// The line, marker kept, without its newline.
        line: String,
    },
    /// An `[Extension]` line of an extension.
    Extension {
        /// When the line was read.
        time: DateTime<Utc>,
        /// The extension's name.
        name: String,
        /// The line, marker kept, without its newline.
        line: String,
    },
    /// An extension changed state (Lambda's `platform.extension`, emitted for every registered
    /// extension at the end of init). Dialects without such an event skip it.
    ExtensionState {
        /// When.
        time: DateTime<Utc>,
        /// The extension's name.
        name: String,
        /// e.g. `Ready`.
        state: String,
        /// Events it registered for, e.g. `INVOKE`, `SHUTDOWN`.
        events: Vec<String>,
        /// Set when the state is an error.
        error_type: Option<String>,
    },
    /// A telemetry subscription was accepted (Lambda's `platform.telemetrySubscription`).
    /// Dialects without such an event skip it.
    Subscription {
        /// When.
        time: DateTime<Utc>,
        /// The subscribing extension's name.
        name: String,
        /// e.g. `Subscribed`.
        state: String,
        /// Streams subscribed, e.g. `platform`, `function`.
        types: Vec<String>,
    },
}

/// A named stretch of a phase.
#[derive(Clone, Debug, PartialEq)]
pub struct Span {
    /// e.g. `responseLatency`.
    pub name: &'static str,
    /// When it started.
    pub start: DateTime<Utc>,
    /// How long it took, milliseconds.
    pub duration_ms: f64,
}

/// The three streams a subscriber may ask for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stream {
    /// Lifecycle events.
    Platform,
    /// `[Function]` lines.
    Function,
    /// `[Extension]` lines.
    Extension,
}

impl Event {
    /// The stream this event belongs to.
    pub fn stream(&self) -> Stream {
        match self {
            Event::Function { .. } => Stream::Function,
            Event::Extension { .. } => Stream::Extension,
            _ => Stream::Platform,
        }
    }
}

/// Turns an event into JSON records for a subscriber, handing each to the sink: usually one,
/// none to skip it (e.g. an event type the subscriber's schema does not know), sometimes more
/// (Lambda's Logs API writes `platform.end` and `platform.report` for one report).
pub type Encoder = Arc<dyn Fn(&Event, &mut dyn FnMut(Bytes)) + Send + Sync>;

/// What a dialect hands the bus when an extension subscribes.
pub struct SubscriptionRequest {
    /// Where and how to deliver.
    pub config: SubscriberConfig,
    /// Streams asked for.
    pub streams: Vec<Stream>,
    /// The dialect's encoder for this subscriber.
    pub encoder: Encoder,
    /// The dialect's encoding of "records were dropped".
    pub drop_notice: DropNotice,
}

struct Subscription {
    streams: Vec<Stream>,
    encoder: Encoder,
    handle: SubscriberHandle,
}

struct Inner {
    replay: VecDeque<Arc<Event>>,
    replay_dropped: u64,
    subscribed_ever: bool,
    subscriptions: Vec<Subscription>,
    observers: Vec<tokio::sync::mpsc::Sender<Arc<Event>>>,
}

/// Where a bus copies its events for engine-wide observers ([`crate::Engine::observe`]).
#[derive(Clone)]
pub(crate) struct Tap {
    pub(crate) observers: crate::observe::Observers,
    pub(crate) function: Arc<str>,
    pub(crate) pod_name: Arc<str>,
}

/// Per-instance telemetry bus.
#[derive(Clone)]
pub struct Bus {
    inner: Arc<Mutex<Inner>>,
    tap: Option<Tap>,
    tracker: TaskTracker,
    cancel: CancellationToken,
    /// How listeners are reached (inside the instance's network namespace when isolated).
    connector: fnbox_telemetry::Connector,
    /// Whether the instance is frozen: deliveries wait for the thaw.
    freeze: fnbox_telemetry::FreezeGate,
    /// Every subscriber's queue bound, in bytes ([`crate::EngineConfig::telemetry_queue_bytes`]).
    queue_bytes: usize,
}

/// Result of [`Bus::subscribe`].
#[derive(Debug, PartialEq, Eq)]
pub enum SubscribeOutcome {
    /// First subscription to this URI.
    Created,
    /// Same URI again: its streams were replaced.
    Replaced,
}

impl Bus {
    /// A bus whose delivery tasks are owned by `tracker` and stop on `cancel`.
    pub fn new(tracker: TaskTracker, cancel: CancellationToken) -> Self {
        Self {
            inner: Arc::new(Mutex::new(Inner {
                replay: VecDeque::new(),
                replay_dropped: 0,
                subscribed_ever: false,
                subscriptions: Vec::new(),
                observers: Vec::new(),
            })),
            tap: None,
            tracker,
            cancel,
            connector: fnbox_telemetry::Connector::host(),
            freeze: fnbox_telemetry::FreezeGate::new(),
            queue_bytes: fnbox_telemetry::DEFAULT_QUEUE_BYTES,
        }
    }

    /// The same bus holding deliveries while `gate` says the instance is frozen; set before
    /// the first subscription (the instance does so at creation).
    pub fn with_freeze(mut self, gate: fnbox_telemetry::FreezeGate) -> Self {
        self.freeze = gate;
        self
    }

    /// The same bus bounding each subscriber's queue at `bytes` of encoded records; set before
    /// the first subscription (the instance does so at creation).
    pub fn with_queue_bytes(mut self, bytes: usize) -> Self {
        self.queue_bytes = bytes;
        self
    }

    /// The same bus copying every event to engine-wide observers.
    pub(crate) fn with_tap(mut self, tap: Tap) -> Self {
        self.tap = Some(tap);
        self
    }

    /// The same bus reaching its listeners through `connector`; set before the first
    /// subscription (the instance does so at creation).
    pub fn with_connector(mut self, connector: fnbox_telemetry::Connector) -> Self {
        self.connector = connector;
        self
    }

    /// Publishes an event; never blocks.
    pub fn publish(&self, event: Event) {
        let event = Arc::new(event);
        if let Some(tap) = &self.tap {
            tap.observers.send(
                &tap.function,
                &tap.pod_name,
                crate::observe::Observation::Telemetry(event.clone()),
            );
        }
        let mut inner = self.inner.lock().expect("bus lock");
        inner
            .observers
            .retain(|tx| match tx.try_send(event.clone()) {
                Ok(()) => true,
                Err(tokio::sync::mpsc::error::TrySendError::Full(_)) => true,
                Err(tokio::sync::mpsc::error::TrySendError::Closed(_)) => false,
            });
        if !inner.subscribed_ever {
            if inner.replay.len() >= REPLAY_CAPACITY {
                inner.replay.pop_front();
                inner.replay_dropped += 1;
            }
            inner.replay.push_back(event);
            return;
        }
        for sub in &inner.subscriptions {
            if sub.streams.contains(&event.stream()) {
                (sub.encoder)(&event, &mut |record| sub.handle.send(record));
            }
        }
    }

    /// Adds a subscriber, or replaces the streams of the one with the same URI. The first
    /// subscription receives the replayed events first.
    pub fn subscribe(&self, mut req: SubscriptionRequest) -> SubscribeOutcome {
        req.config.queue_bytes = self.queue_bytes;
        let mut inner = self.inner.lock().expect("bus lock");
        let uri = req.config.uri.clone();
        if let Some(existing) = inner
            .subscriptions
            .iter_mut()
            .find(|s| *s.handle.uri() == uri)
        {
            existing.streams = req.streams;
            existing.encoder = req.encoder;
            return SubscribeOutcome::Replaced;
        }
        let handle = Subscriber::spawn_connected(
            fnbox_telemetry::SubscriberConfig {
                freeze: self.freeze.clone(),
                ..req.config
            },
            req.drop_notice.clone(),
            self.connector.clone(),
            &self.tracker,
            self.cancel.clone(),
        );
        if !inner.subscribed_ever {
            inner.subscribed_ever = true;
            if inner.replay_dropped > 0 {
                let notice = (req.drop_notice)(fnbox_telemetry::DroppedRecords {
                    records: inner.replay_dropped,
                    bytes: 0,
                    reason: "replay buffer full before the first subscription".into(),
                });
                handle.send(notice);
            }
            for event in inner.replay.drain(..) {
                if req.streams.contains(&event.stream()) {
                    (req.encoder)(&event, &mut |record| handle.send(record));
                }
            }
        }
        inner.subscriptions.push(Subscription {
            streams: req.streams,
            encoder: req.encoder,
            handle,
        });
        SubscribeOutcome::Created
    }

    /// URI of the current subscriber, if any.
    pub fn subscriber_uri(&self) -> Option<http::Uri> {
        let inner = self.inner.lock().expect("bus lock");
        inner.subscriptions.first().map(|s| s.handle.uri().clone())
    }

    /// An in-process view of every event (tests, the CLI's summary, future exporters). Bounded:
    /// an observer that falls behind misses events rather than slowing the bus.
    pub fn observe(&self, capacity: usize) -> tokio::sync::mpsc::Receiver<Arc<Event>> {
        let (tx, rx) = tokio::sync::mpsc::channel(capacity);
        self.inner.lock().expect("bus lock").observers.push(tx);
        rx
    }

    /// Each subscriber's URI and delivery counters so far.
    pub fn delivery_stats(&self) -> Vec<(http::Uri, DeliveryStats)> {
        let inner = self.inner.lock().expect("bus lock");
        inner
            .subscriptions
            .iter()
            .map(|s| (s.handle.uri().clone(), s.handle.stats()))
            .collect()
    }

    /// Flushes every subscriber within `grace`; returns their final counters.
    pub async fn close(&self, grace: Duration) -> Vec<DeliveryStats> {
        let subs: Vec<SubscriberHandle> = {
            let mut inner = self.inner.lock().expect("bus lock");
            inner.subscriptions.drain(..).map(|s| s.handle).collect()
        };
        futures::future::join_all(subs.into_iter().map(|h| h.close(grace))).await
    }
}

/// RFC 3339 UTC with milliseconds and `Z`, as both dialects' events use.
pub fn rfc3339(time: DateTime<Utc>) -> String {
    time.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn billed_duration_rounds_up_to_a_millisecond() {
        let m = ReportMetrics::new(Duration::from_micros(1234), 3 * 1024 * 1024, 128);
        assert_eq!(m.billed_duration_ms, 2);
        assert!((m.duration_ms - 1.234).abs() < 1e-9);
        assert!((m.memory_used_mb - 3.0).abs() < 1e-9);
        let m = ReportMetrics::new(Duration::from_micros(10), 0, 128);
        assert_eq!(m.billed_duration_ms, 1);
    }

    #[test]
    fn times_have_milliseconds_and_z() {
        let t = DateTime::parse_from_rfc3339("2023-02-01T00:03:50Z")
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(rfc3339(t), "2023-02-01T00:03:50.000Z");
    }
}
