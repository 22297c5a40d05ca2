//! The one trait both queue backends implement: [`crate::store`]'s embedded SQLite file (the
//! default, needs nothing) and [`crate::postgres`]'s shared PostgreSQL database (several fnbox
//! nodes). [`crate::AsyncStore`] is the facade over it; the worker and the front door only see
//! the facade, so the semantics (202 after commit, attempts, retries, event age, destinations,
//! at-least-once for interrupted attempts) are written once, in the worker, and stored by
//! either backend in the same shape.

use std::future::Future;
use std::pin::Pin;

use bytes::Bytes;

use crate::error::StoreError;
use crate::store::{
    AsyncStatus, AttemptEnd, Claimed, DueDelivery, FunctionDepth, InvokeSource, ListFilter,
    ListPage, StateCounts,
};

/// A boxed, sendable future of a store result (the trait is used as `dyn Backend`).
pub(crate) type StoreFuture<'a, T> =
    Pin<Box<dyn Future<Output = Result<T, StoreError>> + Send + 'a>>;

/// A durable queue of asynchronous invocations. Every method is one transaction.
pub(crate) trait Backend: Send + Sync + 'static {
    /// Where the queue lives, for messages (file path, or URL without password).
    fn location(&self) -> String;
    /// Invocations put back in the queue when the backend was opened.
    fn recovered_at_open(&self) -> u64;
    /// Inserts a queued invocation; returns once committed. The caller checked the sizes.
    fn enqueue(
        &self,
        function: String,
        request_id: String,
        payload: Bytes,
        source: InvokeSource,
    ) -> StoreFuture<'_, ()>;
    /// Everything known about one invocation, with bodies and history.
    fn status(&self, request_id: String) -> StoreFuture<'_, Option<AsyncStatus>>;
    /// One page of invocations, newest first, without bodies or history.
    fn list(&self, filter: ListFilter) -> StoreFuture<'_, ListPage>;
    /// Rows per state.
    fn counts(&self) -> StoreFuture<'_, StateCounts>;
    /// Queued and running rows per function (functions with neither are left out).
    fn depth_by_function(&self) -> StoreFuture<'_, Vec<FunctionDepth>>;
    /// `(function, earliest next_attempt_at_ms)` of every function with queued work.
    fn queued_functions(&self) -> StoreFuture<'_, Vec<(String, i64)>>;
    /// Marks up to `limit` due rows of `function` `running` (owned by this process) and
    /// returns them, oldest first. Never returns a row another claim holds.
    fn claim(&self, function: String, now: i64, limit: u32) -> StoreFuture<'_, Vec<Claimed>>;
    /// Records the end of an attempt (state, counts, history, delivery) in one transaction;
    /// fails, recording nothing, when this process no longer holds the row.
    fn finish(&self, end: AttemptEnd) -> StoreFuture<'_, ()>;
    /// Notifications due for a POST (taken by this process), excluding `skip`; and the time
    /// the next one is due.
    fn due_deliveries(
        &self,
        now: i64,
        limit: usize,
        skip: Vec<String>,
    ) -> StoreFuture<'_, (Vec<DueDelivery>, Option<i64>)>;
    /// Records one POST of a notification.
    fn delivery_done(
        &self,
        request_id: String,
        attempts: u32,
        outcome: Result<(), String>,
        next_attempt_at_ms: Option<i64>,
    ) -> StoreFuture<'_, ()>;
    /// Deletes finished invocations older than `before_ms` (their notification done).
    fn prune(&self, before_ms: i64) -> StoreFuture<'_, usize>;
    /// Periodic upkeep for shared queues: extends the leases of this process's running
    /// attempts and puts attempts whose lease expired (their node died) back in the queue,
    /// counted as interrupted. Returns how many were taken over. The SQLite queue has one
    /// owner process and recovers at open instead: nothing to do.
    fn maintain(&self, now: i64) -> StoreFuture<'_, u64>;
    /// How often [`Backend::maintain`] should run; `None` when it does nothing.
    fn maintenance_interval(&self) -> Option<std::time::Duration>;
}
