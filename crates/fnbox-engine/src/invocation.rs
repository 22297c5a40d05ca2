//! What goes into an invocation and what comes out of it, dialect-neutral.
//!
//! An invocation has two ends (CONTRACT §3 "Invoke"): the caller's [`Answer`], known as soon as
//! the runtime answered (or the environment failed), and the [`InvokeOutcome`], known when
//! every extension is done with the invocation and the report was emitted. [`Invocation`]
//! carries the first and waits for the second, so a front door answers its caller at once with
//! the engine's own measurements instead of estimating them.

use bytes::Bytes;
use tokio::sync::oneshot;

use crate::telemetry::{ReportMetrics, Status};

/// Synchronous or asynchronous, as the runtime sees it in `X-CFF-Invoke-Type`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InvokeType {
    /// The caller waits for the result.
    Sync,
    /// Queued; nobody waits.
    Async,
}

impl InvokeType {
    /// Wire spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            InvokeType::Sync => "sync",
            InvokeType::Async => "async",
        }
    }
}

/// One invocation request.
#[derive(Clone, Debug)]
pub struct InvokeRequest {
    /// Request id (a UUID unless the caller chose one).
    pub request_id: String,
    /// The event, as the caller sent it.
    pub event: Bytes,
    /// Sync or async.
    pub invoke_type: InvokeType,
    /// The caller's W3C `traceparent`, when the request carried a valid one: the invocation's
    /// span becomes its child ([`crate::trace`]).
    pub trace_parent: Option<crate::trace::TraceParent>,
    /// Whether the caller's [`crate::Answer`] must carry the invocation's log so far and its
    /// CPU and storage figures: only a log-tail request (`X-Cff-Log-Type: tail`,
    /// `X-Amz-Log-Type: Tail`) shows them. Without it the answer is taken with the memory peak
    /// and the duration alone, and the full figures are read once, for the report, after the
    /// caller has its answer (a pass over the instance's `/proc` files less on the caller's
    /// path). The report and the outcome carry everything either way.
    pub tail: bool,
}

impl InvokeRequest {
    /// A sync request with a fresh id.
    pub fn sync(event: impl Into<Bytes>) -> Self {
        Self {
            request_id: new_request_id(),
            event: event.into(),
            invoke_type: InvokeType::Sync,
            trace_parent: None,
            tail: true,
        }
    }
}

/// A fresh request id.
pub fn new_request_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// Why the environment failed an invocation (CONTRACT §3 "Faults"). Each destroys the instance.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FaultKind {
    /// The deadline passed; the process group was killed.
    Timeout,
    /// The instance's memory limit was hit.
    OutOfMemory,
    /// The runtime exited outside shutdown (even with code 0).
    RuntimeExit,
    /// An extension exited outside shutdown.
    ExtensionCrash,
}

/// An environment failure with its message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Fault {
    /// What happened.
    pub kind: FaultKind,
    /// Message for the caller, e.g. `invocation timed out after 3s`.
    pub message: String,
}

impl Fault {
    /// The `errorType` of telemetry and error bodies.
    pub fn error_type(&self) -> &'static str {
        match self.kind {
            FaultKind::Timeout => "Sandbox.Timedout",
            FaultKind::OutOfMemory => "Runtime.OutOfMemory",
            FaultKind::RuntimeExit => "Runtime.ExitError",
            FaultKind::ExtensionCrash => "Extension.Crash",
        }
    }

    /// The telemetry status.
    pub fn status(&self) -> Status {
        match self.kind {
            FaultKind::Timeout => Status::Timeout,
            _ => Status::Failure,
        }
    }
}

/// What the runtime (or the environment) made of one invocation.
#[derive(Clone, Debug, PartialEq)]
pub enum InvokeResult {
    /// The runtime posted a response: the body exactly as posted.
    Ok(Bytes),
    /// The runtime posted to the error endpoint: the body as posted.
    HandlerError(Bytes),
    /// The environment failed.
    Fault(Fault),
}

impl InvokeResult {
    /// Telemetry status of this result.
    pub fn status(&self) -> Status {
        match self {
            InvokeResult::Ok(_) => Status::Success,
            InvokeResult::HandlerError(_) => Status::Error,
            InvokeResult::Fault(f) => f.status(),
        }
    }
}

/// A finished invocation.
#[derive(Clone, Debug)]
pub struct InvokeOutcome {
    /// Request id.
    pub request_id: String,
    /// Result.
    pub result: InvokeResult,
    /// `errorType` of telemetry: the handler's own (as the dialect reads its error body,
    /// `Function.Error` when it named none) or the fault's; `None` on success.
    pub error_type: Option<String>,
    /// Measured duration and memory.
    pub metrics: ReportMetrics,
    /// The lines the instance printed during the invocation (bounded tail).
    pub log: Vec<String>,
}

/// What the caller of an invocation gets as soon as it is known: the runtime's answer (or the
/// fault), measured by the engine at that moment.
#[derive(Clone, Debug)]
pub struct Answer {
    /// Request id.
    pub request_id: String,
    /// Result.
    pub result: InvokeResult,
    /// `errorType`, as in [`InvokeOutcome::error_type`].
    pub error_type: Option<String>,
    /// Duration from `platform.start` to the answer, and the instance's memory peak so far.
    pub metrics: ReportMetrics,
    /// What the runtime printed up to its answer (bounded tail).
    pub log: Vec<String>,
    /// The instance's init duration (ms) when this invocation is the first of an instance
    /// started for it (a cold start; Lambda's `Init Duration` in the REPORT line).
    pub init_duration_ms: Option<f64>,
}

/// Where an instance delivers the caller's [`Answer`]; called at most once.
pub struct AnswerTx(Option<Box<dyn FnOnce(Answer) + Send>>);

impl AnswerTx {
    /// Delivers the answer to `f`.
    pub fn new(f: impl FnOnce(Answer) + Send + 'static) -> Self {
        Self(Some(Box::new(f)))
    }

    /// Nobody waits for the answer (the caller wants the whole outcome).
    pub fn none() -> Self {
        Self(None)
    }

    /// Whether the answer was not delivered yet.
    pub fn is_pending(&self) -> bool {
        self.0.is_some()
    }

    /// Delivers `answer` if nothing was delivered yet.
    pub fn send(&mut self, answer: Answer) {
        if let Some(f) = self.0.take() {
            f(answer);
        }
    }
}

impl std::fmt::Debug for AnswerTx {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("AnswerTx").field(&self.is_pending()).finish()
    }
}

/// A started invocation: its answer now, its completion later.
#[derive(Debug)]
pub struct Invocation {
    answer: Answer,
    done: oneshot::Receiver<InvokeOutcome>,
}

impl Invocation {
    pub(crate) fn new(answer: Answer, done: oneshot::Receiver<InvokeOutcome>) -> Self {
        Self { answer, done }
    }

    /// The caller's answer.
    pub fn answer(&self) -> &Answer {
        &self.answer
    }

    /// The answer, and a future for the end of the invocation (every extension done with it,
    /// `platform.report` emitted). Dropping the future does not cancel the invocation.
    pub fn into_parts(
        self,
    ) -> (
        Answer,
        impl std::future::Future<Output = Option<InvokeOutcome>> + Send,
    ) {
        let done = self.done;
        (self.answer, async move { done.await.ok() })
    }

    /// Waits for the end of the invocation; `None` only if the engine stopped before it ended.
    pub async fn finished(self) -> Option<InvokeOutcome> {
        self.done.await.ok()
    }
}
