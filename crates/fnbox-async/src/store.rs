//! The durable queue: one SQLite database, `<data_dir>/async.sqlite3`.
//!
//! # Design
//! - **WAL, `synchronous=FULL`, one writer.** Every write goes through one connection behind a
//!   mutex (the single writer); reads for the status API use a second, read-only connection,
//!   which WAL lets run beside the writer. With `synchronous=FULL` a commit is on disk when
//!   `COMMIT` returns, so the front door may answer 202 right after [`AsyncStore::enqueue`].
//! - **One process per data dir.** `<data_dir>/async.lock` is held with an exclusive `flock`
//!   for the store's lifetime (the kernel drops it when the process dies, even by SIGKILL).
//!   A second fnbox on the same data dir fails at open with [`StoreError::Locked`].
//! - **Versioned schema.** `PRAGMA user_version` is the number of [`MIGRATIONS`] applied; each
//!   migration runs in its own transaction together with the version bump. A database newer
//!   than this binary is refused ([`StoreError::TooNew`]), never downgraded.
//! - **Checked at open.** `PRAGMA quick_check` runs before anything is written; a file that is
//!   not a database, or a damaged one, is refused with [`StoreError::Corrupt`] and left as is.
//! - **Crash recovery at open.** Rows left `running` are put back to `queued` in one
//!   transaction, their attempt counted as failed with [`crate::INTERRUPTED_ERROR`].
//! - **Blocking work off the runtime.** SQLite calls block (a commit is an fsync); the async
//!   methods run them on Tokio's blocking pool.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use nix::fcntl::{Flock, FlockArg};
use rusqlite::{params, Connection, ErrorCode, OpenFlags, OptionalExtension};
use serde_json::{json, Value};
use tokio::sync::Notify;

use crate::backend::{Backend, StoreFuture};
use crate::error::StoreError;
use crate::notification::Condition;

/// The database file in the data dir.
pub const DB_FILE_NAME: &str = "async.sqlite3";
/// The lock file in the data dir.
pub const LOCK_FILE_NAME: &str = "async.lock";
/// Schema version this binary writes (`PRAGMA user_version`).
pub const SCHEMA_VERSION: i64 = MIGRATIONS.len() as i64;

/// Schema migrations; entry `i` takes the database from version `i` to `i + 1`. Append only.
pub const MIGRATIONS: &[&str] = &[
    // 1: invocations, their attempts, their destination deliveries.
    r#"
    CREATE TABLE invocations (
        seq                INTEGER PRIMARY KEY AUTOINCREMENT,
        request_id         TEXT    NOT NULL UNIQUE,
        function           TEXT    NOT NULL,
        source             TEXT    NOT NULL,
        payload            BLOB    NOT NULL,
        state              TEXT    NOT NULL
                           CHECK (state IN ('queued', 'running', 'succeeded', 'failed')),
        attempts           INTEGER NOT NULL DEFAULT 0,
        throttles          INTEGER NOT NULL DEFAULT 0,
        interrupts         INTEGER NOT NULL DEFAULT 0,
        enqueued_at_ms     INTEGER NOT NULL,
        next_attempt_at_ms INTEGER NOT NULL,
        started_at_ms      INTEGER,
        finished_at_ms     INTEGER,
        condition          TEXT,
        result             BLOB,
        error              BLOB,
        last_error         TEXT
    );
    CREATE INDEX invocations_due ON invocations (state, function, next_attempt_at_ms);
    CREATE INDEX invocations_function ON invocations (function, seq);
    CREATE INDEX invocations_finished ON invocations (finished_at_ms);
    CREATE TABLE attempts (
        id            INTEGER PRIMARY KEY AUTOINCREMENT,
        request_id    TEXT    NOT NULL REFERENCES invocations (request_id) ON DELETE CASCADE,
        attempt       INTEGER NOT NULL,
        started_at_ms INTEGER NOT NULL,
        ended_at_ms   INTEGER NOT NULL,
        outcome       TEXT    NOT NULL,
        detail        TEXT
    );
    CREATE INDEX attempts_request ON attempts (request_id, id);
    CREATE TABLE deliveries (
        request_id         TEXT    PRIMARY KEY
                           REFERENCES invocations (request_id) ON DELETE CASCADE,
        kind               TEXT    NOT NULL CHECK (kind IN ('on_success', 'on_failure')),
        url                TEXT    NOT NULL,
        body               BLOB    NOT NULL,
        state              TEXT    NOT NULL CHECK (state IN ('pending', 'delivered', 'failed')),
        attempts           INTEGER NOT NULL DEFAULT 0,
        next_attempt_at_ms INTEGER NOT NULL,
        last_error         TEXT,
        delivered_at_ms    INTEGER
    );
    CREATE INDEX deliveries_due ON deliveries (state, next_attempt_at_ms);
    "#,
];

/// How long a statement waits for a lock held by another connection (only a foreign process,
/// e.g. an `sqlite3` shell, can hold one: fnbox itself has a single writer).
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);
/// Longest request id accepted (FunctionGraph documents 64; uuids are 36).
const MAX_REQUEST_ID: usize = 128;

/// Where an asynchronous invocation came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InvokeSource {
    /// `POST /v2/{project_id}/fgs/functions/{urn}/invocations-async`.
    FunctionGraph,
    /// `POST /2015-03-31/functions/{name}/invocations` with `X-Amz-Invocation-Type: Event`.
    Lambda,
    /// `fnbox invoke --async` without a front door.
    Cli,
}

impl InvokeSource {
    /// Stored spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            InvokeSource::FunctionGraph => "functiongraph",
            InvokeSource::Lambda => "lambda",
            InvokeSource::Cli => "cli",
        }
    }

    pub(crate) fn parse(s: &str) -> Self {
        match s {
            "lambda" => InvokeSource::Lambda,
            "cli" => InvokeSource::Cli,
            _ => InvokeSource::FunctionGraph,
        }
    }
}

/// Where an invocation is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AsyncState {
    /// Waiting for its first attempt or for a retry.
    Queued,
    /// An attempt is in flight.
    Running,
    /// Done: the function answered successfully.
    Succeeded,
    /// Done: failed for good.
    Failed,
}

impl AsyncState {
    /// Stored spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            AsyncState::Queued => "queued",
            AsyncState::Running => "running",
            AsyncState::Succeeded => "succeeded",
            AsyncState::Failed => "failed",
        }
    }

    /// Parses [`AsyncState::as_str`] and FunctionGraph's `WAIT|RUNNING|SUCCESS|FAIL|DISCARD`.
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "queued" | "WAIT" => AsyncState::Queued,
            "running" | "RUNNING" => AsyncState::Running,
            "succeeded" | "SUCCESS" => AsyncState::Succeeded,
            "failed" | "FAIL" | "DISCARD" => AsyncState::Failed,
            _ => return None,
        })
    }

    /// Whether the invocation is done.
    pub fn is_final(self) -> bool {
        matches!(self, AsyncState::Succeeded | AsyncState::Failed)
    }
}

/// How one attempt ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AttemptOutcome {
    /// The function answered successfully.
    Success,
    /// The function reported an error.
    FunctionError,
    /// The environment failed (timeout, out of memory, crash, init failure).
    Fault,
    /// No instance was free; not counted as an attempt.
    Throttled,
    /// fnbox stopped (or was killed) during the attempt.
    Interrupted,
    /// The function does not exist.
    FunctionNotFound,
}

impl AttemptOutcome {
    /// Stored spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            AttemptOutcome::Success => "success",
            AttemptOutcome::FunctionError => "function_error",
            AttemptOutcome::Fault => "fault",
            AttemptOutcome::Throttled => "throttled",
            AttemptOutcome::Interrupted => "interrupted",
            AttemptOutcome::FunctionNotFound => "function_not_found",
        }
    }

    pub(crate) fn parse(s: &str) -> Self {
        match s {
            "success" => AttemptOutcome::Success,
            "function_error" => AttemptOutcome::FunctionError,
            "throttled" => AttemptOutcome::Throttled,
            "interrupted" => AttemptOutcome::Interrupted,
            "function_not_found" => AttemptOutcome::FunctionNotFound,
            _ => AttemptOutcome::Fault,
        }
    }
}

/// One row of an invocation's attempt history.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AttemptRecord {
    /// Attempt number (1-based); throttled attempts carry the number of the attempt that
    /// will be made next, since they do not consume one.
    pub attempt: u32,
    /// Start, epoch ms.
    pub started_at_ms: i64,
    /// End, epoch ms.
    pub ended_at_ms: i64,
    /// How it ended.
    pub outcome: AttemptOutcome,
    /// Error message, if any.
    pub detail: Option<String>,
}

/// Delivery state of a destination notification.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeliveryState {
    /// Not delivered yet; will be (re)tried.
    Pending,
    /// A 2xx answer was received.
    Delivered,
    /// Every POST failed.
    Failed,
}

impl DeliveryState {
    /// Stored spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryState::Pending => "pending",
            DeliveryState::Delivered => "delivered",
            DeliveryState::Failed => "failed",
        }
    }

    pub(crate) fn parse(s: &str) -> Self {
        match s {
            "delivered" => DeliveryState::Delivered,
            "failed" => DeliveryState::Failed,
            _ => DeliveryState::Pending,
        }
    }
}

/// The destination notification of an invocation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeliveryStatus {
    /// `on_success` or `on_failure`.
    pub kind: String,
    /// Target URL.
    pub url: String,
    /// State.
    pub state: DeliveryState,
    /// POSTs made.
    pub attempts: u32,
    /// Why the last POST failed.
    pub last_error: Option<String>,
    /// When it was delivered, epoch ms.
    pub delivered_at_ms: Option<i64>,
}

/// Everything known about one asynchronous invocation.
#[derive(Clone, Debug, PartialEq)]
pub struct AsyncStatus {
    /// Request id.
    pub request_id: String,
    /// Function key given at enqueue.
    pub function: String,
    /// Where it came from.
    pub source: InvokeSource,
    /// State.
    pub state: AsyncState,
    /// Attempts made (throttled ones excluded, interrupted ones included).
    pub attempts: u32,
    /// Throttled attempts.
    pub throttles: u32,
    /// Attempts interrupted by a stop of fnbox (included in `attempts`).
    pub interrupts: u32,
    /// Payload size in bytes.
    pub payload_size: usize,
    /// Accepted, epoch ms.
    pub enqueued_at_ms: i64,
    /// Start of the latest attempt, epoch ms.
    pub started_at_ms: Option<i64>,
    /// Done, epoch ms.
    pub finished_at_ms: Option<i64>,
    /// When the next attempt is due (queued only), epoch ms.
    pub next_attempt_at_ms: Option<i64>,
    /// Why it ended (done only).
    pub condition: Option<Condition>,
    /// The function's answer (succeeded only; not filled by [`AsyncStore::list`]).
    pub result: Option<Bytes>,
    /// The latest error body (function error or fault; not filled by [`AsyncStore::list`]).
    pub error: Option<Bytes>,
    /// The latest error message.
    pub last_error: Option<String>,
    /// Attempt history, oldest first (not filled by [`AsyncStore::list`]).
    pub history: Vec<AttemptRecord>,
    /// Destination notification, if one was due.
    pub destination: Option<DeliveryStatus>,
}

impl AsyncStatus {
    /// FunctionGraph's status word (`ListAsyncInvocations`): `WAIT`, `RUNNING`, `SUCCESS`,
    /// `FAIL`, or `DISCARD` for an event that got too old.
    pub fn fg_status(&self) -> &'static str {
        match self.state {
            AsyncState::Queued => "WAIT",
            AsyncState::Running => "RUNNING",
            AsyncState::Succeeded => "SUCCESS",
            AsyncState::Failed if self.condition == Some(Condition::EventAgeExceeded) => "DISCARD",
            AsyncState::Failed => "FAIL",
        }
    }

    /// The fnbox status body of `GET …/async-invocations/{request_id}`.
    pub fn to_json(&self) -> Value {
        let text = |b: &Option<Bytes>| {
            b.as_ref()
                .map(|b| Value::String(String::from_utf8_lossy(b).into_owned()))
                .unwrap_or(Value::Null)
        };
        json!({
            "request_id": self.request_id,
            "function": self.function,
            "source": self.source.as_str(),
            "state": self.state.as_str(),
            "status": self.fg_status(),
            "attempts": self.attempts,
            "throttled_attempts": self.throttles,
            "interrupted_attempts": self.interrupts,
            "payload_size": self.payload_size,
            "enqueued_at": rfc3339(self.enqueued_at_ms),
            "started_at": self.started_at_ms.map(rfc3339),
            "finished_at": self.finished_at_ms.map(rfc3339),
            "next_attempt_at": self.next_attempt_at_ms.map(rfc3339),
            "condition": self.condition.map(|c| c.as_str()),
            "result": text(&self.result),
            "error": text(&self.error),
            "last_error": self.last_error,
            "history": self.history.iter().map(|a| json!({
                "attempt": a.attempt,
                "started_at": rfc3339(a.started_at_ms),
                "ended_at": rfc3339(a.ended_at_ms),
                "outcome": a.outcome.as_str(),
                "detail": a.detail,
            })).collect::<Vec<_>>(),
            "destination": self.destination.as_ref().map(|d| json!({
                "kind": d.kind,
                "url": d.url,
                "state": d.state.as_str(),
                "attempts": d.attempts,
                "last_error": d.last_error,
                "delivered_at": d.delivered_at_ms.map(rfc3339),
            })),
        })
    }

    /// One entry of FunctionGraph's `ListAsyncInvocations` answer: `{"request_id","status",
    /// "error_message","error_code","start_time","end_time"}` (times `YYYY-MM-DDTHH:mm:ss` UTC;
    /// `error_code` 0 on success).
    pub fn to_fg_list_entry(&self) -> Value {
        let failed = self.state == AsyncState::Failed;
        let code = match (failed, self.condition) {
            (false, _) => 0,
            (true, Some(Condition::FunctionNotFound)) => 404,
            (true, _) => 500,
        };
        json!({
            "request_id": self.request_id,
            "status": self.fg_status(),
            "error_message": if failed { self.last_error.clone().unwrap_or_default() } else { String::new() },
            "error_code": code,
            "start_time": fg_time(self.started_at_ms.unwrap_or(self.enqueued_at_ms)),
            "end_time": self.finished_at_ms.map(fg_time).unwrap_or_default(),
        })
    }
}

/// Filter and page of [`AsyncStore::list`] (FunctionGraph's `ListAsyncInvocations` query).
#[derive(Clone, Debug, Default)]
pub struct ListFilter {
    /// Only this function.
    pub function: Option<String>,
    /// Only this request id.
    pub request_id: Option<String>,
    /// Only this state.
    pub state: Option<AsyncState>,
    /// Only invocations discarded for their age (`Some(true)`, FunctionGraph's `DISCARD`), or
    /// only the others (`Some(false)`; with `state: Failed` that is `FAIL`).
    pub discarded: Option<bool>,
    /// Only invocations accepted at or after this, epoch ms.
    pub since_ms: Option<i64>,
    /// Only invocations accepted at or before this, epoch ms.
    pub until_ms: Option<i64>,
    /// Rows to skip.
    pub marker: u64,
    /// Rows to return (at most 500; 0 means 100).
    pub limit: u32,
}

impl ListFilter {
    /// Applies FunctionGraph's `status` query word (`WAIT`, `RUNNING`, `SUCCESS`, `FAIL`,
    /// `DISCARD`); `None` for any other word (answer 400).
    pub fn with_fg_status(mut self, status: &str) -> Option<Self> {
        let (state, discarded) = match status {
            "WAIT" => (AsyncState::Queued, None),
            "RUNNING" => (AsyncState::Running, None),
            "SUCCESS" => (AsyncState::Succeeded, None),
            "FAIL" => (AsyncState::Failed, Some(false)),
            "DISCARD" => (AsyncState::Failed, Some(true)),
            _ => return None,
        };
        self.state = Some(state);
        self.discarded = discarded;
        Some(self)
    }
}

/// Parses FunctionGraph's query time `YYYY-MM-DDTHH:mm:ss` (UTC) to epoch ms.
pub fn parse_fg_time(s: &str) -> Option<i64> {
    chrono::NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S")
        .ok()
        .map(|t| t.and_utc().timestamp_millis())
}

/// One page of [`AsyncStore::list`].
#[derive(Clone, Debug)]
pub struct ListPage {
    /// The invocations, newest first.
    pub items: Vec<AsyncStatus>,
    /// Rows matching the filter in all.
    pub count: u64,
    /// Marker of the next page.
    pub next_marker: u64,
}

impl ListPage {
    /// FunctionGraph's `ListAsyncInvocations` body: `{"invocations":[…],"count","next_marker"}`.
    pub fn to_fg_json(&self) -> Value {
        json!({
            "invocations": self.items.iter().map(AsyncStatus::to_fg_list_entry).collect::<Vec<_>>(),
            "count": self.count,
            "next_marker": self.next_marker,
        })
    }
}

/// Rows per state (for `fnbox serve` start-up logs and tests).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StateCounts {
    /// Queued.
    pub queued: u64,
    /// Running.
    pub running: u64,
    /// Succeeded.
    pub succeeded: u64,
    /// Failed.
    pub failed: u64,
    /// Destination notifications not delivered yet.
    pub deliveries_pending: u64,
}

/// The async queue of one function: what waits and what runs now (for the `fnbox.async.*`
/// metrics, which are per function because every function is its own OTLP service).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FunctionDepth {
    /// Function name.
    pub function: String,
    /// Queued (waiting for an attempt, including retries not due yet).
    pub queued: u64,
    /// Running (an attempt in flight on some node).
    pub running: u64,
}

impl FunctionDepth {
    /// Adds `n` rows of `state` (`queued`/`running`; other states are not queue depth) to the
    /// function's entry in `out`, which is sorted by function.
    pub(crate) fn add(out: &mut Vec<FunctionDepth>, function: &str, state: &str, n: u64) {
        let at = match out.binary_search_by(|d| d.function.as_str().cmp(function)) {
            Ok(i) => i,
            Err(i) => {
                out.insert(
                    i,
                    FunctionDepth {
                        function: function.to_string(),
                        ..Default::default()
                    },
                );
                i
            }
        };
        match AsyncState::parse(state) {
            Some(AsyncState::Queued) => out[at].queued = n,
            Some(AsyncState::Running) => out[at].running = n,
            _ => {}
        }
    }
}

/// The query both backends run for [`FunctionDepth`].
pub(crate) const DEPTH_QUERY: &str = "SELECT function, state, COUNT(*) FROM invocations \
     WHERE state IN ('queued', 'running') GROUP BY function, state";

/// A row the worker took for an attempt.
#[derive(Clone, Debug)]
pub(crate) struct Claimed {
    pub request_id: String,
    pub function: String,
    pub payload: Bytes,
    pub attempts: u32,
    pub throttles: u32,
    pub interrupts: u32,
    pub enqueued_at_ms: i64,
    pub started_at_ms: i64,
    pub last_error: Option<String>,
    pub error: Option<Bytes>,
}

/// Where an attempt leaves its invocation.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Transition {
    /// Done, successfully.
    Succeeded { result: Bytes },
    /// Done, failed for good.
    Failed { condition: Condition },
    /// Back to the queue until `next_attempt_at_ms`.
    Retry { next_attempt_at_ms: i64 },
}

/// Everything recorded when an attempt ends, in one transaction.
#[derive(Clone, Debug)]
pub(crate) struct AttemptEnd {
    pub request_id: String,
    /// `None` when no attempt was made (e.g. the event was already too old).
    pub outcome: Option<AttemptOutcome>,
    /// Attempt count after this attempt.
    pub attempts: u32,
    /// Throttle count after this attempt.
    pub throttles: u32,
    /// Interruption count after this attempt.
    pub interrupts: u32,
    pub started_at_ms: i64,
    pub ended_at_ms: i64,
    /// Error message of this attempt.
    pub last_error: Option<String>,
    /// Error body of this attempt.
    pub error: Option<Bytes>,
    pub transition: Transition,
    /// A destination notification to deliver.
    pub delivery: Option<NewDelivery>,
}

/// A notification to store with a completion.
#[derive(Clone, Debug)]
pub(crate) struct NewDelivery {
    pub kind: &'static str,
    pub url: String,
    pub body: Bytes,
}

/// A notification due for a POST.
#[derive(Clone, Debug)]
pub(crate) struct DueDelivery {
    pub request_id: String,
    pub url: String,
    pub body: Bytes,
    pub attempts: u32,
}

/// The durable queue. Cheap to clone; all clones share one backend: the embedded SQLite file
/// ([`AsyncStore::open`], the default) or a PostgreSQL database shared by several fnbox nodes
/// ([`AsyncStore::connect`]). Both give the same semantics through one internal trait
/// (`backend::Backend`).
#[derive(Clone)]
pub struct AsyncStore {
    backend: Arc<dyn Backend>,
    wake: Arc<Notify>,
}

impl std::fmt::Debug for AsyncStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AsyncStore")
            .field("location", &self.backend.location())
            .finish_non_exhaustive()
    }
}

/// The SQLite backend. Cheap to clone; all clones share one database.
#[derive(Clone)]
pub(crate) struct SqliteQueue {
    inner: Arc<Inner>,
}

pub(crate) struct Inner {
    path: PathBuf,
    writer: Mutex<Connection>,
    reader: Mutex<Connection>,
    recovered: u64,
    _lock: Flock<File>,
}

/// Milliseconds since the epoch, now.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

fn rfc3339(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .unwrap_or_default()
        .format("%Y-%m-%dT%H:%M:%S%.3fZ")
        .to_string()
}

fn fg_time(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .unwrap_or_default()
        .format("%Y-%m-%dT%H:%M:%S")
        .to_string()
}

fn unwritable(path: &Path, e: impl std::fmt::Display) -> StoreError {
    StoreError::DataDirUnwritable {
        path: path.to_path_buf(),
        reason: e.to_string(),
    }
}

/// Maps an SQLite error at open to the start-up error that explains it.
fn open_error(path: &Path, e: rusqlite::Error) -> StoreError {
    let reason = e.to_string();
    let path = path.to_path_buf();
    match e.sqlite_error_code() {
        Some(ErrorCode::NotADatabase) | Some(ErrorCode::DatabaseCorrupt) => {
            StoreError::Corrupt { path, reason }
        }
        Some(ErrorCode::DatabaseBusy) | Some(ErrorCode::DatabaseLocked) => StoreError::Locked {
            path,
            holder: format!(" (SQLite: {reason})"),
        },
        Some(ErrorCode::CannotOpen)
        | Some(ErrorCode::ReadOnly)
        | Some(ErrorCode::PermissionDenied) => StoreError::DataDirUnwritable { path, reason },
        _ => StoreError::Open { path, reason },
    }
}

impl AsyncStore {
    /// Opens (creating if needed) `<data_dir>/async.sqlite3`: takes the data dir's lock,
    /// checks the file, migrates the schema, and puts invocations a killed fnbox left
    /// `running` back in the queue. Blocking; call it at start-up.
    pub fn open(data_dir: impl AsRef<Path>) -> Result<AsyncStore, StoreError> {
        Ok(AsyncStore::with_backend(Arc::new(SqliteQueue::open(
            data_dir,
        )?)))
    }

    /// Connects to the PostgreSQL queue at `url` (`postgres://user:password@host:port/db`),
    /// checks the server, runs the schema migrations and starts listening for new work. Any
    /// number of fnbox nodes may share the database; see [`crate::postgres`]. Errors name
    /// the URL with its password redacted.
    pub async fn connect(
        url: &str,
        options: crate::postgres::PgOptions,
    ) -> Result<AsyncStore, StoreError> {
        let wake = Arc::new(Notify::new());
        let backend = crate::postgres::PgQueue::connect(url, options, wake.clone()).await?;
        Ok(AsyncStore {
            backend: Arc::new(backend),
            wake,
        })
    }

    fn with_backend(backend: Arc<dyn Backend>) -> AsyncStore {
        AsyncStore {
            backend,
            wake: Arc::new(Notify::new()),
        }
    }

    /// Where the queue lives, for messages: the database file, or the PostgreSQL URL with its
    /// password redacted.
    pub fn location(&self) -> String {
        self.backend.location()
    }

    /// Invocations found `running` at open and put back in the queue (SQLite; a PostgreSQL
    /// queue takes over a dead node's attempts when their lease expires instead).
    pub fn recovered_at_open(&self) -> u64 {
        self.backend.recovered_at_open()
    }

    /// Accepts an invocation: returns once it is committed (to disk, or by the PostgreSQL
    /// server). Answer 202 after this, and only after this.
    pub async fn enqueue(
        &self,
        function: &str,
        request_id: &str,
        payload: Bytes,
        source: InvokeSource,
    ) -> Result<(), StoreError> {
        if payload.len() > crate::MAX_PAYLOAD {
            return Err(StoreError::PayloadTooLarge {
                size: payload.len(),
                limit: crate::MAX_PAYLOAD,
            });
        }
        if request_id.is_empty() || request_id.len() > MAX_REQUEST_ID {
            return Err(StoreError::InvalidRequestId(request_id.to_string()));
        }
        self.backend
            .enqueue(
                function.to_string(),
                request_id.to_string(),
                payload,
                source,
            )
            .await?;
        self.wake.notify_one();
        Ok(())
    }

    /// Everything known about `request_id`, or `None` if it was never accepted (or pruned).
    pub async fn status(&self, request_id: &str) -> Result<Option<AsyncStatus>, StoreError> {
        self.backend.status(request_id.to_string()).await
    }

    /// Invocations matching `filter`, newest first, without bodies or history.
    pub async fn list(&self, filter: ListFilter) -> Result<ListPage, StoreError> {
        self.backend.list(filter).await
    }

    /// Rows per state.
    pub async fn counts(&self) -> Result<StateCounts, StoreError> {
        self.backend.counts().await
    }

    /// Queued and running invocations per function.
    pub async fn depth_by_function(&self) -> Result<Vec<FunctionDepth>, StoreError> {
        self.backend.depth_by_function().await
    }

    /// Wakes the worker (new work, or a slot became free).
    pub(crate) fn wake(&self) {
        self.wake.notify_one();
    }

    /// Resolves when [`AsyncStore::wake`] was called (or had been, since the last wait), or
    /// another node announced new work.
    pub(crate) async fn woken(&self) {
        self.wake.notified().await
    }

    pub(crate) fn backend(&self) -> &dyn Backend {
        &*self.backend
    }
}

impl SqliteQueue {
    /// See [`AsyncStore::open`].
    pub(crate) fn open(data_dir: impl AsRef<Path>) -> Result<SqliteQueue, StoreError> {
        let dir = data_dir.as_ref();
        if dir.exists() && !dir.is_dir() {
            return Err(unwritable(dir, "it exists and is not a directory"));
        }
        std::fs::create_dir_all(dir).map_err(|e| unwritable(dir, e))?;
        let db_path = dir.join(DB_FILE_NAME);
        let lock = take_lock(&dir.join(LOCK_FILE_NAME), &db_path)?;

        let writer = Connection::open_with_flags(
            &db_path,
            OpenFlags::SQLITE_OPEN_READ_WRITE
                | OpenFlags::SQLITE_OPEN_CREATE
                | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(|e| open_error(&db_path, e))?;
        configure(&writer).map_err(|e| open_error(&db_path, e))?;
        let mode: String = writer
            .query_row("PRAGMA journal_mode=WAL", [], |r| r.get(0))
            .map_err(|e| open_error(&db_path, e))?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(StoreError::Open {
                path: db_path,
                reason: format!(
                    "the file system does not support WAL mode (journal_mode is {mode})"
                ),
            });
        }
        writer
            .execute_batch("PRAGMA synchronous=FULL;")
            .map_err(|e| open_error(&db_path, e))?;
        check_integrity(&writer, &db_path)?;
        migrate(&writer, &db_path)?;
        let recovered = recover(&writer).map_err(|e| open_error(&db_path, e))?;
        if recovered > 0 {
            tracing::warn!(
                count = recovered,
                path = %db_path.display(),
                "async invocations interrupted by a stop of fnbox were put back in the queue"
            );
        }

        let reader = Connection::open_with_flags(
            &db_path,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(|e| open_error(&db_path, e))?;
        configure(&reader).map_err(|e| open_error(&db_path, e))?;

        Ok(SqliteQueue {
            inner: Arc::new(Inner {
                path: db_path,
                writer: Mutex::new(writer),
                reader: Mutex::new(reader),
                recovered,
                _lock: lock,
            }),
        })
    }

    /// Runs `f` on the blocking pool.
    async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Inner) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let inner = self.inner.clone();
        match tokio::task::spawn_blocking(move || f(&inner)).await {
            Ok(r) => r,
            Err(e) => Err(StoreError::Database {
                path: self.inner.path.clone(),
                reason: format!("store task failed: {e}"),
            }),
        }
    }
}

impl Backend for SqliteQueue {
    fn location(&self) -> String {
        std::path::absolute(&self.inner.path)
            .unwrap_or_else(|_| self.inner.path.clone())
            .display()
            .to_string()
    }

    fn recovered_at_open(&self) -> u64 {
        self.inner.recovered
    }

    fn enqueue(
        &self,
        function: String,
        request_id: String,
        payload: Bytes,
        source: InvokeSource,
    ) -> StoreFuture<'_, ()> {
        Box::pin(self.blocking(move |inner| {
            let now = now_ms();
            let conn = inner.writer.lock().expect("writer lock");
            let r = conn.execute(
                "INSERT INTO invocations (request_id, function, source, payload, state,
                     enqueued_at_ms, next_attempt_at_ms)
                 VALUES (?1, ?2, ?3, ?4, 'queued', ?5, ?5)",
                params![request_id, function, source.as_str(), &payload[..], now],
            );
            match r {
                Ok(_) => Ok(()),
                Err(e) if e.sqlite_error_code() == Some(ErrorCode::ConstraintViolation) => {
                    Err(StoreError::DuplicateRequestId(request_id))
                }
                Err(e) => Err(inner.db_error(e)),
            }
        }))
    }

    fn status(&self, request_id: String) -> StoreFuture<'_, Option<AsyncStatus>> {
        Box::pin(self.blocking(move |inner| {
            let mut conn = inner.reader.lock().expect("reader lock");
            let tx = conn.transaction().map_err(|e| inner.db_error(e))?;
            let status = read_status(&tx, &request_id, true).map_err(|e| inner.db_error(e))?;
            Ok(status)
        }))
    }

    fn list(&self, filter: ListFilter) -> StoreFuture<'_, ListPage> {
        Box::pin(self.blocking(move |inner| {
            let mut conn = inner.reader.lock().expect("reader lock");
            let tx = conn.transaction().map_err(|e| inner.db_error(e))?;
            list(&tx, &filter).map_err(|e| inner.db_error(e))
        }))
    }

    fn counts(&self) -> StoreFuture<'_, StateCounts> {
        Box::pin(self.blocking(move |inner| {
            let conn = inner.reader.lock().expect("reader lock");
            counts(&conn).map_err(|e| inner.db_error(e))
        }))
    }

    fn depth_by_function(&self) -> StoreFuture<'_, Vec<FunctionDepth>> {
        Box::pin(self.blocking(move |inner| {
            let conn = inner.reader.lock().expect("reader lock");
            depth_by_function(&conn).map_err(|e| inner.db_error(e))
        }))
    }

    fn queued_functions(&self) -> StoreFuture<'_, Vec<(String, i64)>> {
        Box::pin(self.blocking(|inner| {
            let conn = inner.reader.lock().expect("reader lock");
            let mut stmt = conn
                .prepare_cached(
                    "SELECT function, MIN(next_attempt_at_ms) FROM invocations
                     WHERE state = 'queued' GROUP BY function",
                )
                .map_err(|e| inner.db_error(e))?;
            let rows = stmt
                .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
                .and_then(|rows| rows.collect::<Result<Vec<_>, _>>())
                .map_err(|e| inner.db_error(e))?;
            Ok(rows)
        }))
    }

    fn claim(&self, function: String, now: i64, limit: u32) -> StoreFuture<'_, Vec<Claimed>> {
        Box::pin(self.blocking(move |inner| {
            let mut conn = inner.writer.lock().expect("writer lock");
            claim(&mut conn, &function, now, limit).map_err(|e| inner.db_error(e))
        }))
    }

    fn finish(&self, end: AttemptEnd) -> StoreFuture<'_, ()> {
        Box::pin(self.blocking(move |inner| {
            let mut conn = inner.writer.lock().expect("writer lock");
            finish(&mut conn, &end).map_err(|e| inner.db_error(e))
        }))
    }

    fn due_deliveries(
        &self,
        now: i64,
        limit: usize,
        skip: Vec<String>,
    ) -> StoreFuture<'_, (Vec<DueDelivery>, Option<i64>)> {
        Box::pin(self.blocking(move |inner| {
            let conn = inner.reader.lock().expect("reader lock");
            due_deliveries(&conn, now, limit, &skip).map_err(|e| inner.db_error(e))
        }))
    }

    fn delivery_done(
        &self,
        request_id: String,
        attempts: u32,
        outcome: Result<(), String>,
        next_attempt_at_ms: Option<i64>,
    ) -> StoreFuture<'_, ()> {
        Box::pin(self.blocking(move |inner| {
            let conn = inner.writer.lock().expect("writer lock");
            let now = now_ms();
            let r = match (&outcome, next_attempt_at_ms) {
                (Ok(()), _) => conn.execute(
                    "UPDATE deliveries SET state = 'delivered', attempts = ?2,
                         delivered_at_ms = ?3, last_error = NULL
                     WHERE request_id = ?1 AND state = 'pending'",
                    params![request_id, attempts, now],
                ),
                (Err(e), Some(next)) => conn.execute(
                    "UPDATE deliveries SET attempts = ?2, last_error = ?3, next_attempt_at_ms = ?4
                     WHERE request_id = ?1 AND state = 'pending'",
                    params![request_id, attempts, e, next],
                ),
                (Err(e), None) => conn.execute(
                    "UPDATE deliveries SET state = 'failed', attempts = ?2, last_error = ?3
                     WHERE request_id = ?1 AND state = 'pending'",
                    params![request_id, attempts, e],
                ),
            };
            r.map(|_| ()).map_err(|e| inner.db_error(e))
        }))
    }

    fn prune(&self, before_ms: i64) -> StoreFuture<'_, usize> {
        Box::pin(self.blocking(move |inner| {
            let conn = inner.writer.lock().expect("writer lock");
            conn.execute(
                "DELETE FROM invocations
                 WHERE state IN ('succeeded', 'failed') AND finished_at_ms < ?1
                   AND NOT EXISTS (SELECT 1 FROM deliveries d
                                   WHERE d.request_id = invocations.request_id
                                     AND d.state = 'pending')",
                params![before_ms],
            )
            .map_err(|e| inner.db_error(e))
        }))
    }

    fn maintain(&self, _now: i64) -> StoreFuture<'_, u64> {
        Box::pin(async { Ok(0) })
    }

    fn maintenance_interval(&self) -> Option<Duration> {
        None
    }
}

impl Inner {
    fn db_error(&self, e: rusqlite::Error) -> StoreError {
        match e.sqlite_error_code() {
            Some(ErrorCode::NotADatabase) | Some(ErrorCode::DatabaseCorrupt) => {
                StoreError::Corrupt {
                    path: self.path.clone(),
                    reason: e.to_string(),
                }
            }
            _ => StoreError::Database {
                path: self.path.clone(),
                reason: e.to_string(),
            },
        }
    }
}

/// Takes the exclusive lock on the data dir, writing our pid into the lock file.
fn take_lock(lock_path: &Path, db_path: &Path) -> Result<Flock<File>, StoreError> {
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(lock_path)
        .map_err(|e| unwritable(lock_path, e))?;
    let mut lock = match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
        Ok(l) => l,
        Err((mut file, errno)) => {
            if errno == nix::errno::Errno::EWOULDBLOCK {
                let mut pid = String::new();
                let _ = file.read_to_string(&mut pid);
                let pid = pid.trim();
                return Err(StoreError::Locked {
                    path: db_path.to_path_buf(),
                    holder: if pid.is_empty() {
                        String::new()
                    } else {
                        format!(" (pid {pid})")
                    },
                });
            }
            return Err(unwritable(lock_path, errno));
        }
    };
    let write_pid = |f: &mut File| -> std::io::Result<()> {
        f.set_len(0)?;
        f.rewind()?;
        writeln!(f, "{}", std::process::id())?;
        f.sync_all()
    };
    write_pid(&mut lock).map_err(|e| unwritable(lock_path, e))?;
    Ok(lock)
}

fn configure(conn: &Connection) -> rusqlite::Result<()> {
    conn.busy_timeout(BUSY_TIMEOUT)?;
    conn.execute_batch("PRAGMA foreign_keys=ON;")?;
    Ok(())
}

fn check_integrity(conn: &Connection, path: &Path) -> Result<(), StoreError> {
    let mut stmt = conn
        .prepare("PRAGMA quick_check")
        .map_err(|e| open_error(path, e))?;
    let lines: Vec<String> = stmt
        .query_map([], |r| r.get(0))
        .and_then(|rows| rows.collect())
        .map_err(|e| open_error(path, e))?;
    if lines.len() == 1 && lines[0] == "ok" {
        return Ok(());
    }
    Err(StoreError::Corrupt {
        path: path.to_path_buf(),
        reason: format!("integrity check: {}", lines.join("; ")),
    })
}

fn migrate(conn: &Connection, path: &Path) -> Result<(), StoreError> {
    let version: i64 = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .map_err(|e| open_error(path, e))?;
    if version > SCHEMA_VERSION {
        return Err(StoreError::TooNew {
            path: path.to_path_buf(),
            found: version,
            supported: SCHEMA_VERSION,
        });
    }
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(version as usize) {
        let to = i as i64 + 1;
        let batch = format!("BEGIN IMMEDIATE;\n{sql}\nPRAGMA user_version = {to};\nCOMMIT;");
        if let Err(e) = conn.execute_batch(&batch) {
            let _ = conn.execute_batch("ROLLBACK;");
            return Err(match open_error(path, e) {
                StoreError::Open { path, reason } => StoreError::Open {
                    path,
                    reason: format!("schema migration to version {to} failed: {reason}"),
                },
                other => other,
            });
        }
        tracing::info!(path = %path.display(), version = to, "async store schema migrated");
    }
    Ok(())
}

/// Puts rows left `running` back in the queue, their attempt counted as interrupted.
fn recover(conn: &Connection) -> rusqlite::Result<u64> {
    let now = now_ms();
    conn.execute_batch("BEGIN IMMEDIATE;")?;
    let r = (|| {
        conn.execute(
            "INSERT INTO attempts (request_id, attempt, started_at_ms, ended_at_ms, outcome, detail)
             SELECT request_id, attempts + 1, COALESCE(started_at_ms, ?1), ?1, 'interrupted', ?2
             FROM invocations WHERE state = 'running'",
            params![now, crate::INTERRUPTED_ERROR],
        )?;
        let n = conn.execute(
            "UPDATE invocations SET state = 'queued', attempts = attempts + 1,
                 interrupts = interrupts + 1, last_error = ?2, next_attempt_at_ms = ?1
             WHERE state = 'running'",
            params![now, crate::INTERRUPTED_ERROR],
        )?;
        Ok(n as u64)
    })();
    match r {
        Ok(n) => {
            conn.execute_batch("COMMIT;")?;
            Ok(n)
        }
        Err(e) => {
            let _ = conn.execute_batch("ROLLBACK;");
            Err(e)
        }
    }
}

fn claim(
    conn: &mut Connection,
    function: &str,
    now: i64,
    limit: u32,
) -> rusqlite::Result<Vec<Claimed>> {
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    let rows = {
        let mut stmt = tx.prepare_cached(
            "SELECT request_id, function, payload, attempts, throttles, enqueued_at_ms,
                    last_error, error, interrupts
             FROM invocations
             WHERE state = 'queued' AND function = ?1 AND next_attempt_at_ms <= ?2
             ORDER BY next_attempt_at_ms, seq LIMIT ?3",
        )?;
        let rows = stmt
            .query_map(params![function, now, limit], |r| {
                Ok(Claimed {
                    request_id: r.get(0)?,
                    function: r.get(1)?,
                    payload: Bytes::from(r.get::<_, Vec<u8>>(2)?),
                    attempts: r.get(3)?,
                    throttles: r.get(4)?,
                    enqueued_at_ms: r.get(5)?,
                    started_at_ms: now,
                    last_error: r.get(6)?,
                    error: r.get::<_, Option<Vec<u8>>>(7)?.map(Bytes::from),
                    interrupts: r.get(8)?,
                })
            })?
            .collect::<Result<Vec<_>, _>>()?;
        let mut upd = tx.prepare_cached(
            "UPDATE invocations SET state = 'running', started_at_ms = ?2
             WHERE request_id = ?1 AND state = 'queued'",
        )?;
        for c in &rows {
            upd.execute(params![c.request_id, now])?;
        }
        rows
    };
    tx.commit()?;
    Ok(rows)
}

fn finish(conn: &mut Connection, end: &AttemptEnd) -> rusqlite::Result<()> {
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    if let Some(outcome) = end.outcome {
        let number = if outcome == AttemptOutcome::Throttled {
            end.attempts + 1
        } else {
            end.attempts
        };
        tx.execute(
            "INSERT INTO attempts (request_id, attempt, started_at_ms, ended_at_ms, outcome, detail)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![
                end.request_id,
                number,
                end.started_at_ms,
                end.ended_at_ms,
                outcome.as_str(),
                end.last_error
            ],
        )?;
    }
    let error = end.error.as_ref().map(|b| &b[..]);
    let changed = match &end.transition {
        Transition::Succeeded { result } => tx.execute(
            "UPDATE invocations SET state = 'succeeded', attempts = ?2, throttles = ?3,
                 interrupts = ?4, finished_at_ms = ?5, condition = 'Success', result = ?6
             WHERE request_id = ?1 AND state = 'running'",
            params![
                end.request_id,
                end.attempts,
                end.throttles,
                end.interrupts,
                end.ended_at_ms,
                &result[..]
            ],
        )?,
        Transition::Failed { condition } => tx.execute(
            "UPDATE invocations SET state = 'failed', attempts = ?2, throttles = ?3,
                 interrupts = ?8, finished_at_ms = ?4, condition = ?5,
                 error = COALESCE(?6, error), last_error = COALESCE(?7, last_error)
             WHERE request_id = ?1 AND state = 'running'",
            params![
                end.request_id,
                end.attempts,
                end.throttles,
                end.ended_at_ms,
                condition.as_str(),
                error,
                end.last_error,
                end.interrupts
            ],
        )?,
        Transition::Retry { next_attempt_at_ms } => tx.execute(
            "UPDATE invocations SET state = 'queued', attempts = ?2, throttles = ?3,
                 interrupts = ?7, next_attempt_at_ms = ?4,
                 error = COALESCE(?5, error), last_error = COALESCE(?6, last_error)
             WHERE request_id = ?1 AND state = 'running'",
            params![
                end.request_id,
                end.attempts,
                end.throttles,
                next_attempt_at_ms,
                error,
                end.last_error,
                end.interrupts
            ],
        )?,
    };
    if changed != 1 {
        // Not running: someone else ended it. Record nothing rather than run it twice.
        return Err(rusqlite::Error::SqliteFailure(
            rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_MISUSE),
            Some(format!(
                "invocation {} was not running when its attempt ended",
                end.request_id
            )),
        ));
    }
    if let Some(d) = &end.delivery {
        tx.execute(
            "INSERT INTO deliveries (request_id, kind, url, body, state, next_attempt_at_ms)
             VALUES (?1, ?2, ?3, ?4, 'pending', ?5)",
            params![end.request_id, d.kind, d.url, &d.body[..], end.ended_at_ms],
        )?;
    }
    tx.commit()
}

fn due_deliveries(
    conn: &Connection,
    now: i64,
    limit: usize,
    skip: &[String],
) -> rusqlite::Result<(Vec<DueDelivery>, Option<i64>)> {
    let mut stmt = conn.prepare_cached(
        "SELECT request_id, url, body, attempts, next_attempt_at_ms FROM deliveries
         WHERE state = 'pending' ORDER BY next_attempt_at_ms LIMIT ?1",
    )?;
    let mut due = Vec::new();
    let mut next = None;
    let rows = stmt.query_map(params![(limit + skip.len()) as i64], |r| {
        Ok((
            DueDelivery {
                request_id: r.get(0)?,
                url: r.get(1)?,
                body: Bytes::from(r.get::<_, Vec<u8>>(2)?),
                attempts: r.get(3)?,
            },
            r.get::<_, i64>(4)?,
        ))
    })?;
    for row in rows {
        let (d, at) = row?;
        if skip.contains(&d.request_id) {
            continue;
        }
        if at <= now {
            if due.len() < limit {
                due.push(d);
            }
        } else {
            next = Some(next.map_or(at, |n: i64| n.min(at)));
            break;
        }
    }
    Ok((due, next))
}

fn row_to_status(r: &rusqlite::Row<'_>) -> rusqlite::Result<AsyncStatus> {
    let state: String = r.get("state")?;
    let state = AsyncState::parse(&state).unwrap_or(AsyncState::Queued);
    let condition: Option<String> = r.get("condition")?;
    Ok(AsyncStatus {
        request_id: r.get("request_id")?,
        function: r.get("function")?,
        source: InvokeSource::parse(&r.get::<_, String>("source")?),
        state,
        attempts: r.get("attempts")?,
        throttles: r.get("throttles")?,
        interrupts: r.get("interrupts")?,
        payload_size: r.get::<_, i64>("payload_size")? as usize,
        enqueued_at_ms: r.get("enqueued_at_ms")?,
        started_at_ms: r.get("started_at_ms")?,
        finished_at_ms: r.get("finished_at_ms")?,
        next_attempt_at_ms: if state == AsyncState::Queued {
            Some(r.get("next_attempt_at_ms")?)
        } else {
            None
        },
        condition: condition.as_deref().and_then(Condition::parse),
        result: None,
        error: None,
        last_error: r.get("last_error")?,
        history: Vec::new(),
        destination: match r.get::<_, Option<String>>("d_kind")? {
            Some(kind) => Some(DeliveryStatus {
                kind,
                url: r.get("d_url")?,
                state: DeliveryState::parse(&r.get::<_, String>("d_state")?),
                attempts: r.get("d_attempts")?,
                last_error: r.get("d_last_error")?,
                delivered_at_ms: r.get("d_delivered_at_ms")?,
            }),
            None => None,
        },
    })
}

const STATUS_COLUMNS: &str = "i.request_id, i.function, i.source, i.state, i.attempts,
    i.throttles, i.interrupts, length(i.payload) AS payload_size, i.enqueued_at_ms, i.started_at_ms,
    i.finished_at_ms, i.next_attempt_at_ms, i.condition, i.last_error,
    d.kind AS d_kind, d.url AS d_url, d.state AS d_state, d.attempts AS d_attempts,
    d.last_error AS d_last_error, d.delivered_at_ms AS d_delivered_at_ms";

fn read_status(
    conn: &Connection,
    request_id: &str,
    full: bool,
) -> rusqlite::Result<Option<AsyncStatus>> {
    let sql = format!(
        "SELECT {STATUS_COLUMNS}, i.result, i.error FROM invocations i
         LEFT JOIN deliveries d ON d.request_id = i.request_id WHERE i.request_id = ?1"
    );
    let status = conn
        .query_row(&sql, params![request_id], |r| {
            let mut s = row_to_status(r)?;
            if full {
                s.result = r.get::<_, Option<Vec<u8>>>("result")?.map(Bytes::from);
                s.error = r.get::<_, Option<Vec<u8>>>("error")?.map(Bytes::from);
            }
            Ok(s)
        })
        .optional()?;
    let Some(mut status) = status else {
        return Ok(None);
    };
    if full {
        let mut stmt = conn.prepare_cached(
            "SELECT attempt, started_at_ms, ended_at_ms, outcome, detail FROM attempts
             WHERE request_id = ?1 ORDER BY id",
        )?;
        status.history = stmt
            .query_map(params![request_id], |r| {
                Ok(AttemptRecord {
                    attempt: r.get(0)?,
                    started_at_ms: r.get(1)?,
                    ended_at_ms: r.get(2)?,
                    outcome: AttemptOutcome::parse(&r.get::<_, String>(3)?),
                    detail: r.get(4)?,
                })
            })?
            .collect::<Result<_, _>>()?;
    }
    Ok(Some(status))
}

fn list(conn: &Connection, f: &ListFilter) -> rusqlite::Result<ListPage> {
    let mut clauses = vec!["1 = 1".to_string()];
    let mut args: Vec<rusqlite::types::Value> = Vec::new();
    if let Some(func) = &f.function {
        args.push(func.clone().into());
        clauses.push(format!("i.function = ?{}", args.len()));
    }
    if let Some(id) = &f.request_id {
        args.push(id.clone().into());
        clauses.push(format!("i.request_id = ?{}", args.len()));
    }
    if let Some(state) = f.state {
        args.push(state.as_str().to_string().into());
        clauses.push(format!("i.state = ?{}", args.len()));
    }
    match f.discarded {
        Some(true) => clauses.push("i.condition = 'EventAgeExceeded'".into()),
        Some(false) => {
            clauses.push("(i.condition IS NULL OR i.condition != 'EventAgeExceeded')".into())
        }
        None => {}
    }
    if let Some(since) = f.since_ms {
        args.push(since.into());
        clauses.push(format!("i.enqueued_at_ms >= ?{}", args.len()));
    }
    if let Some(until) = f.until_ms {
        args.push(until.into());
        clauses.push(format!("i.enqueued_at_ms <= ?{}", args.len()));
    }
    let filter = clauses.join(" AND ");
    let count: i64 = conn.query_row(
        &format!("SELECT COUNT(*) FROM invocations i WHERE {filter}"),
        rusqlite::params_from_iter(args.iter()),
        |r| r.get(0),
    )?;
    let limit = match f.limit {
        0 => 100,
        n => n.min(500),
    };
    let sql = format!(
        "SELECT {STATUS_COLUMNS} FROM invocations i
         LEFT JOIN deliveries d ON d.request_id = i.request_id
         WHERE {filter} ORDER BY i.seq DESC LIMIT {limit} OFFSET {}",
        f.marker
    );
    let mut stmt = conn.prepare(&sql)?;
    let items = stmt
        .query_map(rusqlite::params_from_iter(args.iter()), row_to_status)?
        .collect::<Result<Vec<_>, _>>()?;
    let next_marker = f.marker + items.len() as u64;
    Ok(ListPage {
        items,
        count: count as u64,
        next_marker,
    })
}

fn depth_by_function(conn: &Connection) -> rusqlite::Result<Vec<FunctionDepth>> {
    let mut out = Vec::new();
    let mut stmt = conn.prepare_cached(DEPTH_QUERY)?;
    let rows = stmt.query_map([], |r| {
        Ok((
            r.get::<_, String>(0)?,
            r.get::<_, String>(1)?,
            r.get::<_, i64>(2)?,
        ))
    })?;
    for row in rows {
        let (function, state, n) = row?;
        FunctionDepth::add(&mut out, &function, &state, n as u64);
    }
    Ok(out)
}

fn counts(conn: &Connection) -> rusqlite::Result<StateCounts> {
    let mut c = StateCounts::default();
    let mut stmt = conn.prepare_cached("SELECT state, COUNT(*) FROM invocations GROUP BY state")?;
    let rows = stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))?;
    for row in rows {
        let (state, n) = row?;
        let n = n as u64;
        match AsyncState::parse(&state) {
            Some(AsyncState::Queued) => c.queued = n,
            Some(AsyncState::Running) => c.running = n,
            Some(AsyncState::Succeeded) => c.succeeded = n,
            Some(AsyncState::Failed) => c.failed = n,
            None => {}
        }
    }
    c.deliveries_pending = conn.query_row(
        "SELECT COUNT(*) FROM deliveries WHERE state = 'pending'",
        [],
        |r| r.get::<_, i64>(0),
    )? as u64;
    Ok(c)
}
