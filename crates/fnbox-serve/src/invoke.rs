//! One invocation through a function's pool, as both front doors run it.
//!
//! # Design
//! The pool call runs in its own task, owned by the server's invocation tracker: a client that
//! hangs up never cancels an invocation half-way (the instance would be left busy), and
//! shutdown waits for every such task. The caller is answered as soon as the runtime answered
//! (the pool's `early` result); the invocation itself (extension pushes, the report) finishes
//! afterwards.
//!
//! The early result carries no metrics and no log, so after it arrives the full outcome gets a
//! short settle window ([`SETTLE`]). Without extensions the outcome follows the early result
//! with no await in between, so it is nearly always there and the summary headers carry the
//! engine's measured duration and memory. When it is not (an extension still answering its
//! push, or a fault whose teardown is under way), the headers carry the front door's own
//! measurement (from request to answer, cold start included) and the highest memory peak of the
//! function's instances. When the log tail is asked for, the full outcome is awaited: the log
//! is only complete then.
//!
//! # Limitations
//! Estimated summaries are marked nowhere; the engine would have to put metrics and the log
//! captured so far on the early result to make them exact.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use fnbox_engine::{InvokeOutcome, InvokeRequest, InvokeResult, PoolError};
use fnbox_wire::front::InvokeSummary;
use tokio::sync::oneshot;
use tokio_util::task::TaskTracker;

use crate::api::error::FrontError;
use crate::registry::Served;

/// How long the full outcome may take after the early result before the caller is answered
/// without it.
pub const SETTLE: Duration = Duration::from_millis(50);

/// A finished (as far as the caller is concerned) invocation.
#[derive(Clone, Debug)]
pub struct Completed {
    /// Request id.
    pub request_id: String,
    /// What the runtime (or the environment) made of it.
    pub result: InvokeResult,
    /// Duration and memory.
    pub summary: InvokeSummary,
    /// The runtime's lines during the invocation; `None` when answered before the outcome.
    pub log: Option<Vec<String>>,
    /// The function's timeout, seconds.
    pub timeout_secs: u32,
}

/// Runs one synchronous invocation of `served` with `event`. `want_log` waits for the complete
/// outcome (with the log) instead of answering at the runtime's response.
pub async fn invoke(
    tracker: &TaskTracker,
    served: &Arc<Served>,
    event: Bytes,
    want_log: bool,
) -> Result<Completed, FrontError> {
    let req = InvokeRequest::sync(event);
    let request_id = req.request_id.clone();
    let (tx, rx) = oneshot::channel();
    let pool = served.pool().clone();
    let started = Instant::now();
    let mut task = tracker.spawn(async move { pool.invoke_with(req, Some(tx)).await });
    let config = &served.function().package().config;
    let timeout_secs = config.timeout;

    let early = match rx.await {
        Ok(result) => result,
        // No result was sent: the pool refused, or the task failed.
        Err(_) => {
            return match task.await {
                Ok(Ok(outcome)) => Ok(complete(outcome, timeout_secs)),
                Ok(Err(e)) => Err(pool_error(e, served.name(), request_id)),
                Err(e) => Err(FrontError::Internal(format!("invocation task failed: {e}"))),
            };
        }
    };
    let answered = started.elapsed();
    let outcome = if want_log {
        Some((&mut task).await)
    } else {
        tokio::time::timeout(SETTLE, &mut task).await.ok()
    };
    if let Some(Ok(Ok(outcome))) = outcome {
        return Ok(complete(outcome, timeout_secs));
    }
    let duration_ms = answered.as_secs_f64() * 1000.0;
    let memory_used = served
        .pool()
        .instances()
        .iter()
        .map(|i| i.peak_memory_mb)
        .fold(0.0, f64::max);
    Ok(Completed {
        request_id,
        result: early,
        summary: InvokeSummary {
            duration: duration_ms,
            billing_duration: (duration_ms.ceil() as u64).max(1),
            memory_size: config.memory_size,
            memory_used,
        },
        log: None,
        timeout_secs,
    })
}

fn complete(o: InvokeOutcome, timeout_secs: u32) -> Completed {
    let m = o.metrics;
    Completed {
        request_id: o.request_id,
        result: o.result,
        summary: InvokeSummary {
            duration: m.duration_ms,
            billing_duration: m.billed_duration_ms,
            memory_size: m.memory_size_mb,
            memory_used: m.memory_used_mb,
        },
        log: Some(o.log),
        timeout_secs,
    }
}

fn pool_error(e: PoolError, function: &str, request_id: String) -> FrontError {
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
