//! What goes into an invocation and what comes out of it, dialect-neutral.

use bytes::Bytes;

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
}

impl InvokeRequest {
    /// A sync request with a fresh id.
    pub fn sync(event: impl Into<Bytes>) -> Self {
        Self {
            request_id: new_request_id(),
            event: event.into(),
            invoke_type: InvokeType::Sync,
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

    /// The fault as an error body.
    pub fn error_body(&self) -> fnbox_wire::fg::ErrorBody {
        fnbox_wire::fg::ErrorBody::new(self.error_type(), self.message.clone())
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

    /// `errorType` for telemetry: the handler's own errorType when it posted one.
    pub fn error_type(&self) -> Option<String> {
        match self {
            InvokeResult::Ok(_) => None,
            InvokeResult::HandlerError(body) => Some(
                serde_json::from_slice::<fnbox_wire::fg::ErrorBody>(body)
                    .ok()
                    .map(|b| b.error_type)
                    .filter(|t| !t.is_empty())
                    .unwrap_or_else(|| "Function.Error".to_string()),
            ),
            InvokeResult::Fault(f) => Some(f.error_type().to_string()),
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
    /// Measured duration and memory.
    pub metrics: ReportMetrics,
    /// The lines the instance printed during the invocation (bounded tail).
    pub log: Vec<String>,
}
