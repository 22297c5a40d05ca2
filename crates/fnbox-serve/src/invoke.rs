//! One invocation through a function's pool, as both front doors run it.
//!
//! # Design
//! The pool runs the invocation in a task of its own ([`fnbox_engine::Pool::submit`]): a
//! client that hangs up never cancels it half-way, and the engine's shutdown waits for it. The
//! pool hands back the caller's [`Answer`](fnbox_engine::Answer) as soon as the runtime
//! answered, measured by the engine at that moment (duration, the instance's memory peak so
//! far, the log so far); the rest of the invocation (extensions finishing, the report) goes on
//! without the caller. Nothing here estimates or waits for a settle window.

use std::sync::Arc;

use bytes::Bytes;
use fnbox_engine::trace::TraceParent;
use fnbox_engine::{Answer, InvokeRequest, InvokeResult, PoolError};
use fnbox_wire::front::InvokeSummary;

use crate::api::error::FrontError;
use crate::registry::Served;

/// A finished (as far as the caller is concerned) invocation.
#[derive(Clone, Debug)]
pub struct Completed {
    /// Request id.
    pub request_id: String,
    /// What the runtime (or the environment) made of it.
    pub result: InvokeResult,
    /// Duration and memory, as the engine measured them at the answer.
    pub summary: InvokeSummary,
    /// What the engine measured at the answer (the log tail's `Finish` line); CPU and storage
    /// only when the log tail was asked for.
    pub metrics: fnbox_engine::telemetry::ReportMetrics,
    /// The runtime's lines up to its answer, when the log tail was asked for.
    pub log: Vec<String>,
    /// The function's timeout, seconds.
    pub timeout_secs: u32,
    /// The init duration (ms) when this invocation cold-started its instance.
    pub init_duration_ms: Option<f64>,
}

/// Runs one synchronous invocation of `served` with `event` and returns at the caller's answer,
/// which carries the log so far and the CPU and storage figures when `tail`
/// (`X-Cff-Log-Type: tail` / `X-Amz-Log-Type: Tail`).
pub async fn invoke(
    served: &Arc<Served>,
    event: Bytes,
    trace_parent: Option<TraceParent>,
    tail: bool,
) -> Result<Completed, FrontError> {
    let mut req = InvokeRequest::sync(event);
    req.trace_parent = trace_parent;
    req.tail = tail;
    let request_id = req.request_id.clone();
    let timeout_secs = served.function().package().config.timeout;
    let invocation = served
        .pool()
        .submit(req)
        .await
        .map_err(|e| pool_error(e, served.name(), request_id))?;
    let (answer, _rest) = invocation.into_parts();
    Ok(complete(answer, timeout_secs))
}

/// The caller's valid W3C `traceparent` header, if any (an invalid one is ignored: the
/// invocation starts a new trace, as W3C Trace Context asks).
pub fn trace_parent(headers: &http::HeaderMap) -> Option<TraceParent> {
    let value = headers
        .get(fnbox_wire::front::headers::TRACEPARENT)?
        .to_str()
        .ok()?;
    match TraceParent::parse(value) {
        Ok(p) => Some(p),
        Err(e) => {
            tracing::debug!(error = %e, "ignoring the traceparent header");
            None
        }
    }
}

fn complete(a: Answer, timeout_secs: u32) -> Completed {
    let m = a.metrics;
    Completed {
        request_id: a.request_id,
        result: a.result,
        summary: InvokeSummary {
            duration: m.duration_ms,
            billing_duration: m.billed_duration_ms,
            memory_size: m.memory_size_mb,
            memory_used: m.memory_used_mb,
        },
        metrics: m,
        log: a.log,
        timeout_secs,
        init_duration_ms: a.init_duration_ms,
    }
}

pub(crate) fn pool_error(e: PoolError, function: &str, request_id: String) -> FrontError {
    match e {
        PoolError::Saturated { .. } => FrontError::Saturated(e.to_string()),
        PoolError::Init(error) => FrontError::InitFailed {
            function: function.to_string(),
            error: Box::new(error),
            request_id,
        },
        PoolError::Closed(name) => FrontError::ShuttingDown(name),
    }
}

/// The last `max` bytes of `text`, cut at a character boundary.
pub fn tail(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let mut start = text.len() - max;
    while !text.is_char_boundary(start) {
        start += 1;
    }
    &text[start..]
}

#[cfg(test)]
mod tests {
    use super::tail;

    #[test]
    fn tail_cuts_at_char_boundaries() {
        assert_eq!(tail("abc", 10), "abc");
        assert_eq!(tail("abcdef", 3), "def");
        // 'é' is two bytes: a cut inside it moves forward.
        assert_eq!(tail("aé", 1), "");
        assert_eq!(tail("aéb", 2), "b");
        assert_eq!(tail("aéb", 3), "éb");
    }
}
