//! fnbox-async: durable asynchronous invocations (FunctionGraph `…/invocations-async`, Lambda
//! `X-Amz-Invocation-Type: Event`; CONTRACT §6, functiongraph-facts §5.2).
//!
//! An accepted asynchronous invocation is a row in an SQLite database in the data dir. The front
//! door answers 202 only after [`AsyncStore::enqueue`] returned, i.e. after the row was committed
//! with `synchronous=FULL`. An [`AsyncWorker`] takes due rows, runs them through an [`Invoker`]
//! (the serve crate adapts the engine's `Pool`), retries with backoff, stores every attempt and
//! the final result, and POSTs a notification to the function's destination when one is set.
//!
//! # Layout
//! - [`store`]: [`AsyncStore`] (open, schema migrations, enqueue, status, list, claim, finish),
//!   [`AsyncStatus`] and its JSON renderings, the start-up checks; the SQLite backend.
//! - [`postgres`]: the PostgreSQL backend ([`AsyncStore::connect`]): several fnbox nodes on
//!   one queue, claims with `FOR UPDATE SKIP LOCKED` and leases, `LISTEN/NOTIFY`.
//! - `backend`: the trait both backends implement.
//! - [`settings`]: per-function [`FunctionSettings`] (attempts, event age, backoff,
//!   concurrency, destinations), the FunctionGraph-shaped [`AsyncInvokeConfig`],
//!   [`WorkerSettings`].
//! - [`worker`]: [`Invoker`], [`InvokeAttempt`], [`AsyncWorker::spawn`], and the pure retry
//!   decision (`worker::decide`).
//! - [`notification`]: the destination notification in the FunctionGraph and Lambda shapes.
//! - `delivery`: one HTTP POST to a destination.
//! - [`error`]: [`StoreError`], [`SettingsError`].
//!
//! # Semantics: at least once, never after done
//! - **Accepted means committed.** `enqueue` returns only after the transaction that inserted
//!   the row is durable (WAL + `synchronous=FULL`, so it survives a crash of fnbox or of the
//!   machine). A request that got no 202 may or may not be in the queue; one that got a 202 is.
//! - **An attempt ends in the transaction that records it.** The state change (succeeded,
//!   failed, or back to queued with the next attempt time), the attempt count, the attempt's
//!   history row and the destination delivery row are written in one transaction. Once that
//!   commit returned, the invocation is never claimed again: the claim query only takes
//!   `queued` rows.
//! - **Interrupted attempts are retried, and count.** A row left `running` by a killed fnbox is
//!   put back in the queue when the store is next opened, its attempt counted as failed with
//!   the error "fnbox stopped during the attempt" (in `attempts`, the history and
//!   `approximate_invoke_count`). The same happens on a graceful stop with an attempt in
//!   flight. An interruption is fnbox's failure, not the function's, so it does not use the
//!   function's retry budget (FunctionGraph's default is no retry at all); instead
//!   `max_interrupted_attempts` (default 3) interruptions fail the invocation, so an event
//!   that brings fnbox down cannot loop forever. This is
//!   **at-least-once** delivery: an attempt interrupted by SIGKILL may have partly or even
//!   completely run before the kill, and it runs again. Functions must be idempotent, as on
//!   the real platforms. At most `max_concurrency` invocations per function are in flight, so
//!   at most that many can run twice per crash.
//! - **Destinations are at least once too.** A notification is stored with the completion and
//!   POSTed until a 2xx answer or its retries are used up; a POST in flight at a crash is sent
//!   again after the restart.
//!
//! The same semantics hold on the PostgreSQL backend ([`AsyncStore::connect`], several fnbox
//! nodes on one database): there a node's running attempts are taken over by the others when
//! its lease expires, instead of at the next open.
//!
//! # Limitations
//! - SQLite: one fnbox process owns a data dir at a time (an exclusive `flock` on `async.lock`); a
//!   second one fails at start-up with an error naming the path.
//! - Each commit is an fsync (no group commit): about 1 ms per enqueue on the development VM,
//!   plenty for local testing; a burst of concurrent enqueues is serialised by the writer.
//! - Destinations are plain `http://` URLs (fnbox has no TLS stack); FunctionGraph's OBS, SMN,
//!   DIS and function targets and Lambda's ARNs are not emulated.
//! - Times stored in the database are wall-clock milliseconds, so retry times survive a
//!   restart; a clock jump moves them.
//!
//! # Example
//! ```no_run
//! use bytes::Bytes;
//! use fnbox_async::{
//!     AsyncStore, AsyncWorker, FunctionSettings, InvokeAttempt, InvokeSource, Invoker,
//!     WorkerSettings,
//! };
//! use tokio_util::{sync::CancellationToken, task::TaskTracker};
//!
//! struct Echo;
//! impl Invoker for Echo {
//!     async fn invoke(&self, _function: &str, _id: &str, payload: Bytes) -> InvokeAttempt {
//!         InvokeAttempt::Success(payload)
//!     }
//! }
//!
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! let store = AsyncStore::open("/var/lib/fnbox")?; // start-up: fail loudly on error
//! let (tracker, cancel) = (TaskTracker::new(), CancellationToken::new());
//! let mut settings = WorkerSettings::default();
//! settings.functions.insert("hello".into(), FunctionSettings::lambda());
//! let _worker = AsyncWorker::spawn(store.clone(), Echo, settings, tracker.clone(), cancel.clone())?;
//!
//! store.enqueue("hello", "0b6f…", Bytes::from_static(b"{}"), InvokeSource::Lambda).await?;
//! // … answer 202 now; later:
//! let status = store.status("0b6f…").await?;
//!
//! cancel.cancel();
//! tracker.close();
//! tracker.wait().await;
//! # Ok(()) }
//! ```

pub mod error;
pub mod notification;
pub mod postgres;
pub mod settings;
pub mod store;
pub mod worker;

mod backend;
mod delivery;

pub use error::{SettingsError, StoreError};
pub use notification::{Condition, NotificationFormat};
pub use postgres::{redact_url, PgOptions};
pub use settings::{
    AsyncInvokeConfig, Backoff, DeliverySettings, Destinations, FunctionSettings, WorkerSettings,
};
pub use store::{
    parse_fg_time, AsyncState, AsyncStatus, AsyncStore, AttemptOutcome, AttemptRecord,
    DeliveryState, DeliveryStatus, FunctionDepth, InvokeSource, ListFilter, ListPage, StateCounts,
    DB_FILE_NAME, LOCK_FILE_NAME, SCHEMA_VERSION,
};
pub use worker::{AsyncWorker, InvokeAttempt, Invoker};

/// Largest asynchronous request body (CONTRACT §7): 256 KiB.
pub const MAX_PAYLOAD: usize = fnbox_wire::limits::ASYNC_PAYLOAD_MAX;

/// The last error of an attempt that a stop of fnbox interrupted.
pub const INTERRUPTED_ERROR: &str = "fnbox stopped during the attempt";
