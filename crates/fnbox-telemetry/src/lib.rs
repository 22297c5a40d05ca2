//! fnbox-telemetry: delivers one subscriber's telemetry records to its HTTP listener.
//!
//! The engine produces events once, filters them by each subscriber's types and encodes them
//! in the subscriber's dialect (contract §5). This crate takes it from there: it moves the
//! already-encoded records (each a complete JSON value as [`bytes::Bytes`]) to the listener as
//! JSON-array batches, and accounts for every record it could not deliver. It knows nothing
//! about dialects; the drop notice is encoded by a callback the engine passes in.
//!
//! # Layout
//! - [`buffering`]: [`Buffering`] limits and their validation against Lambda's ranges.
//! - [`batcher`]: [`Batcher`], the pure batching rules (items, bytes, first-record timeout).
//! - `subscriber`: [`SubscriberConfig`], [`Subscriber::spawn`], [`SubscriberHandle`] (the
//!   engine's non-blocking `send`, `stats`, `close`), [`DeliveryStats`], drop-notice types.
//! - `delivery`: the per-subscriber task (queue → batcher → POST with retries) and the
//!   hyper-util HTTP transport.
//! - [`gate`]: [`FreezeGate`], the frozen/thawed flag of the subscriber's environment (Lambda's
//!   freeze): delivery waits for the thaw, and request timeouts count thawed time only.
//! - [`connector`]: [`Connector`], hyper's connector with a pluggable [`SocketFactory`] (sockets
//!   created inside an instance's network namespace).
//!
//! # Design
//! - **The function never waits on telemetry.** [`SubscriberHandle::send`] is a synchronous
//!   send into a queue bounded in bytes (an atomic reservation, then an unbounded channel);
//!   when the record does not fit it is dropped and counted on the spot. No lock or await sits
//!   on the happy path. Bytes, not records, because a burst of short lines is many records but
//!   little memory: a count bound dropped bursts a fast listener would have taken.
//! - **One task, one batch in flight per subscriber.** The task awaits each POST and its
//!   retries before taking more records off the queue, so records arrive in order and the
//!   queue is the only buffer. A slow listener therefore costs queue space, never memory
//!   beyond `queue_bytes` + one batch.
//! - **Drops are announced once per gap.** Queue-full drops, batches given up after
//!   `max_attempts`, and the counts of notices whose own batch failed are aggregated into one
//!   [`DroppedRecords`]; the engine's [`DropNotice`] encodes it (e.g. `platform.logsDropped`)
//!   and it is sent at the head of the next batch that goes out.
//! - **Every task is owned.** The delivery task and hyper's connection tasks run on the
//!   engine's `TaskTracker` and stop on its `CancellationToken`.
//! - **Paused time works.** All timing uses `tokio::time`; the HTTP transport sits behind a
//!   crate-private trait so the delivery loop is unit-tested with a scripted fake under
//!   `start_paused`, while integration tests use a real listener in real time.
//!
//! # Limitations
//! - A drop notice is prepended to a batch that may already be full, so such a batch can hold
//!   `max_items + 1` records and exceed `max_bytes` by the notice's size. Lambda documents
//!   payloads up to `2 * maxBytes`, and listeners do not enforce the limits.
//! - The batch timeout counts from when the task takes the first record off the queue. That
//!   is the moment of `send` except while a batch is in flight, when records wait in the
//!   queue; they then fill the next batch promptly instead of each forcing a tiny one.
//! - Records sent after [`SubscriberHandle::close`], or after the task was cancelled, are
//!   counted as dropped but not announced: there is no later batch to carry a notice.
//! - Non-2xx answers other than ≥ 400 (e.g. a 3xx) are failures too; redirects are not
//!   followed.

pub mod batcher;
pub mod buffering;
pub mod connector;
mod delivery;
pub mod gate;
mod subscriber;

pub use batcher::Batcher;
pub use buffering::{Buffering, BufferingError};
pub use connector::{Connector, Redirect, SocketFactory};
pub use gate::FreezeGate;
pub use subscriber::{
    ConfigError, DeliveryStats, DropNotice, DroppedRecords, Subscriber, SubscriberConfig,
    SubscriberHandle, DEFAULT_BACKOFF, DEFAULT_MAX_ATTEMPTS, DEFAULT_QUEUE_BYTES,
    DEFAULT_REQUEST_TIMEOUT,
};
