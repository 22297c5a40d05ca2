//! What one scenario saw: the extension's API calls, the pushes it was sent, every exchange with
//! its listeners (as the recording proxy relayed it), the events the engine produced, and its
//! processes. One [`Recorder`] per run; [`Recorder::reset`] starts a scenario.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;
use tokio::time::Instant;

/// One telemetry record reduced to what the checks compare, whichever the dialect.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rec {
    /// Event name, lower case (`platform.start`, `platform.runtimedone`, `function`, …): the
    /// FunctionGraph `name` or the Lambda `type`; the document's `platform.RuntimeDone`
    /// spelling compares equal.
    pub kind: String,
    /// `traceId` (FunctionGraph) / `record.requestId` (Lambda), when the record has one.
    pub trace: Option<String>,
    /// The log line of `function` / `extension` records.
    pub line: Option<String>,
    /// `status` of `*RuntimeDone` / `*Report` records.
    pub status: Option<String>,
    /// `errorType`, when present.
    pub error_type: Option<String>,
    /// `droppedRecords` of `platform.logsDropped` (Lambda: `record.droppedRecords`).
    pub dropped: Option<u64>,
}

/// Names compared by the checks (lower case).
pub mod kind {
    /// Init start.
    pub const INIT_START: &str = "platform.initstart";
    /// Init done.
    pub const INIT_RUNTIME_DONE: &str = "platform.initruntimedone";
    /// Init report.
    pub const INIT_REPORT: &str = "platform.initreport";
    /// Invoke start.
    pub const START: &str = "platform.start";
    /// Invoke done.
    pub const RUNTIME_DONE: &str = "platform.runtimedone";
    /// Invoke report.
    pub const REPORT: &str = "platform.report";
    /// Loss notice.
    pub const LOGS_DROPPED: &str = "platform.logsdropped";
    /// A function log line.
    pub const FUNCTION: &str = "function";
    /// An extension log line.
    pub const EXTENSION: &str = "extension";
}

impl Rec {
    /// Reads one record of a batch (FunctionGraph's flat object or Lambda's
    /// `{"time","type","record"}`); `None` for what is neither.
    pub fn parse(v: &Value) -> Option<Rec> {
        let obj = v.as_object()?;
        let s = |o: &serde_json::Map<String, Value>, k: &str| {
            o.get(k).and_then(Value::as_str).map(str::to_string)
        };
        if let Some(kind) = obj.get("type").and_then(Value::as_str) {
            // Lambda.
            let record = obj.get("record");
            let (trace, status, error_type, dropped, line) = match record {
                Some(Value::Object(r)) => (
                    s(r, "requestId"),
                    s(r, "status"),
                    s(r, "errorType"),
                    r.get("droppedRecords").and_then(Value::as_u64),
                    s(r, "message"),
                ),
                Some(Value::String(line)) => (None, None, None, None, Some(line.clone())),
                _ => (None, None, None, None, None),
            };
            return Some(Rec {
                kind: kind.to_ascii_lowercase(),
                trace,
                line,
                status,
                error_type,
                dropped,
            });
        }
        let kind = obj.get("name").and_then(Value::as_str)?;
        Some(Rec {
            kind: kind.to_ascii_lowercase(),
            trace: s(obj, "traceId"),
            line: s(obj, "logs"),
            status: s(obj, "status"),
            error_type: s(obj, "errorType"),
            dropped: obj.get("droppedRecords").and_then(Value::as_u64),
        })
    }

    /// Every record of a batch body (a JSON array; one object is read as a batch of one).
    pub fn parse_batch(body: &[u8]) -> Result<Vec<Rec>, String> {
        let v: Value =
            serde_json::from_slice(body).map_err(|e| format!("batch is not JSON: {e}"))?;
        Ok(match v {
            Value::Array(items) => items.iter().filter_map(Rec::parse).collect(),
            other => Rec::parse(&other).into_iter().collect(),
        })
    }
}

/// What fnbox sent to a listener.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExchangeKind {
    /// `POST /extension/invoke` (FunctionGraph).
    Push,
    /// A telemetry batch.
    Batch,
}

/// How a listener answered one request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Answered {
    /// With this HTTP status.
    Status(u16),
    /// It closed the connection (or reset it) without a complete answer.
    Closed(String),
    /// Nothing listened at its address.
    Refused(String),
}

impl Answered {
    /// A 2xx answer.
    pub fn ok(&self) -> bool {
        matches!(self, Answered::Status(s) if (200..300).contains(s))
    }

    /// Short text for reasons.
    pub fn describe(&self) -> String {
        match self {
            Answered::Status(s) => format!("HTTP {s}"),
            Answered::Closed(why) => format!("connection closed ({why})"),
            Answered::Refused(why) => format!("connection refused ({why})"),
        }
    }
}

/// One request fnbox made to a listener, as the proxy relayed it.
#[derive(Clone, Debug)]
pub struct Exchange {
    /// Push or batch.
    pub kind: ExchangeKind,
    /// When the request reached the proxy, since the scenario started.
    pub at: Duration,
    /// From the request reaching the proxy to the listener's complete answer, minus the
    /// delay the proxy added.
    pub latency: Duration,
    /// The answer.
    pub answered: Answered,
    /// The batch's records (empty for pushes).
    pub records: Vec<Rec>,
    /// The push's traceId.
    pub trace: Option<String>,
    /// The exchange is over (answered, or the connection ended).
    pub done: bool,
}

/// A call the extension made to the instance API.
#[derive(Clone, Debug)]
pub struct ApiCall {
    /// Request path.
    pub path: String,
    /// Answer status.
    pub status: u16,
    /// Since the scenario started.
    pub at: Duration,
    /// The request body (registration and subscription bodies are small).
    pub body: bytes::Bytes,
}

/// One invoke notice (push / INVOKE) and when the extension was done with it.
#[derive(Clone, Debug)]
pub struct Notice {
    /// The invocation.
    pub request_id: String,
    /// Since the scenario started.
    pub at: Duration,
    /// Time from the notice (after any added delay) until the extension was done with it;
    /// `None` while it is not.
    pub answered_after: Option<Duration>,
}

/// An event the engine produced for the scenario's instance.
#[derive(Clone, Debug)]
pub struct Produced {
    /// Same shape as delivered records, for comparison.
    pub rec: Rec,
    /// Since the scenario started.
    pub at: Duration,
}

/// What a scenario collected.
#[derive(Default, Debug)]
pub struct Seen {
    /// Calls to the instance API.
    pub api: Vec<ApiCall>,
    /// Invoke notices.
    pub notices: Vec<Notice>,
    /// Listener exchanges.
    pub exchanges: Vec<Exchange>,
    /// Events the engine published for the scenario's instances.
    pub produced: Vec<Produced>,
    /// Engine observations lost because the harness fell behind.
    pub observe_lagged: u64,
}

/// Delays the platform adds (slow-platform).
#[derive(Clone, Copy, Debug, Default)]
pub struct Delays {
    /// Before each invoke notice.
    pub push: Duration,
    /// Between a batch's request head and its body.
    pub batch: Duration,
}

/// Shared by the wrapper dialect, the proxy and the observer task.
#[derive(Clone)]
pub struct Recorder {
    inner: Arc<Mutex<Inner>>,
}

struct Inner {
    started: Instant,
    seen: Seen,
    delays: Delays,
}

impl Default for Recorder {
    fn default() -> Self {
        Self {
            inner: Arc::new(Mutex::new(Inner {
                started: Instant::now(),
                seen: Seen::default(),
                delays: Delays::default(),
            })),
        }
    }
}

impl Recorder {
    /// Starts a scenario: clears what was seen, sets the delays.
    pub fn reset(&self, delays: Delays) {
        let mut inner = self.inner.lock().expect("recorder lock");
        inner.started = Instant::now();
        inner.seen = Seen::default();
        inner.delays = delays;
    }

    /// Takes what was seen so far.
    pub fn take(&self) -> Seen {
        std::mem::take(&mut self.inner.lock().expect("recorder lock").seen)
    }

    /// Changes the delays from now on.
    pub fn set_delays(&self, delays: Delays) {
        self.inner.lock().expect("recorder lock").delays = delays;
    }

    /// The delays in force.
    pub fn delays(&self) -> Delays {
        self.inner.lock().expect("recorder lock").delays
    }

    /// Time since the scenario started.
    pub fn now(&self) -> Duration {
        self.inner.lock().expect("recorder lock").started.elapsed()
    }

    /// Records under the lock.
    pub fn with<R>(&self, f: impl FnOnce(&mut Seen) -> R) -> R {
        f(&mut self.inner.lock().expect("recorder lock").seen)
    }
}
