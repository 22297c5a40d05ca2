//! Durable asynchronous invocations in `fnbox serve` (issue 7): the [`Invoker`] over the
//! function pools, and the per-function settings the worker runs with.
//!
//! # Design
//! - The queue itself ([`fnbox_async::AsyncStore`], [`fnbox_async::AsyncWorker`]) lives in
//!   `fnbox-async`; this module only adapts the serve crate to it.
//! - [`PoolInvoker`] runs each attempt as an `InvokeType::Async` request through the same pool
//!   as synchronous invocations. The pool runs it in a task of its own, owned by the engine:
//!   when the worker abandons an attempt (shutdown), the invocation still finishes cleanly (the
//!   instance is never left busy) and the pool's shutdown waits for it; the queue records the
//!   attempt as interrupted and runs it again at the next start (at least once).
//! - Settings per function: the platform's preset by dialect, `max_concurrency =
//!   max_instances × concurrent_num` (of the pool, so exclusive functions get 1 ×
//!   concurrent_num), the full URN (ARN for Lambda) in notifications, `async_invoke_config`
//!   from function.yaml, and the `--async-retry-delay` override of the first retry delay.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use fnbox_async::{FunctionSettings, InvokeAttempt, Invoker, SettingsError, WorkerSettings};
use fnbox_engine::{InvokeRequest, InvokeResult, InvokeType, PoolError};
use fnbox_package::Dialect;

use crate::registry::{Registry, Served};
use crate::urn::lambda_arn;

/// Options of the asynchronous queue given on the command line.
#[derive(Clone, Debug, Default)]
pub struct AsyncOptions {
    /// Delay before the first retry of a failed attempt (then doubling, at most 5 min, or this
    /// delay when it is longer); `None` keeps the platform's 1 min.
    pub retry_delay: Option<Duration>,
}

/// Runs asynchronous attempts through the served functions' pools.
pub struct PoolInvoker {
    registry: Arc<Registry>,
}

impl PoolInvoker {
    /// An invoker over `registry`.
    pub fn new(registry: Arc<Registry>) -> Self {
        Self { registry }
    }
}

impl Invoker for PoolInvoker {
    async fn invoke(&self, function: &str, request_id: &str, payload: Bytes) -> InvokeAttempt {
        let Some(served) = self.registry.get(function) else {
            return InvokeAttempt::UnknownFunction;
        };
        let req = InvokeRequest {
            request_id: request_id.to_string(),
            event: payload,
            invoke_type: InvokeType::Async,
            trace_parent: None,
            // Nobody waits for an async invocation's answer.
            tail: false,
        };
        // The pool runs the attempt in a task of its own: an abandoned attempt never cancels
        // it half-way.
        match served.pool().invoke(req).await {
            Ok(outcome) => match outcome.result {
                InvokeResult::Ok(body) => InvokeAttempt::Success(body),
                InvokeResult::HandlerError(body) => InvokeAttempt::FunctionError(body),
                InvokeResult::Fault(f) => InvokeAttempt::Fault {
                    error_type: f.error_type().to_string(),
                    message: f.message,
                },
            },
            Err(PoolError::Saturated { .. } | PoolError::Closed(_)) => InvokeAttempt::Throttled,
            Err(PoolError::Init(e)) => InvokeAttempt::Fault {
                error_type: e.error_type,
                message: e.message,
            },
        }
    }
}

/// The platform preset with `--async-retry-delay` applied.
fn preset(dialect: Dialect, options: &AsyncOptions) -> FunctionSettings {
    let mut s = match dialect {
        Dialect::Lambda => FunctionSettings::lambda(),
        Dialect::FunctionGraph => FunctionSettings::functiongraph(),
    };
    if let Some(d) = options.retry_delay {
        s.retry_backoff.initial = d;
        s.retry_backoff.max = s.retry_backoff.max.max(d);
    }
    s
}

/// The settings `served`'s asynchronous invocations run with.
pub fn function_settings(
    served: &Served,
    options: &AsyncOptions,
) -> Result<FunctionSettings, SettingsError> {
    let c = &served.function().package().config;
    let mut s = preset(c.dialect, options);
    s.max_concurrency = served
        .pool()
        .config()
        .max_instances
        .saturating_mul(c.concurrent_num)
        .max(1);
    s.function_urn = Some(match c.dialect {
        Dialect::Lambda => lambda_arn(&c.func_name),
        Dialect::FunctionGraph => c.urn(),
    });
    if let Some(cfg) = &c.async_invoke_config {
        s = to_async_config(cfg).apply(s)?;
    }
    s.validate()?;
    Ok(s)
}

/// function.yaml's `async_invoke_config` in the queue's terms.
fn to_async_config(c: &fnbox_package::AsyncInvokeConfig) -> fnbox_async::AsyncInvokeConfig {
    let target = |t: &fnbox_package::AsyncDestination| fnbox_async::settings::DestinationTarget {
        destination: t.destination.clone(),
        param: serde_json::json!({ "url": t.url }),
    };
    fnbox_async::AsyncInvokeConfig {
        max_async_retry_attempts: c.max_async_retry_attempts,
        max_async_event_age_in_seconds: c.max_async_event_age_in_seconds,
        destination_config: (c.on_success.is_some() || c.on_failure.is_some()).then(|| {
            fnbox_async::settings::DestinationConfig {
                on_success: c.on_success.as_ref().map(target),
                on_failure: c.on_failure.as_ref().map(target),
            }
        }),
        enable_async_status_log: None,
    }
}

/// The worker's settings for every served function.
pub fn worker_settings(
    registry: &Registry,
    options: &AsyncOptions,
) -> Result<WorkerSettings, String> {
    let mut functions = HashMap::new();
    for served in registry.iter() {
        let s = function_settings(served, options)
            .map_err(|e| format!("function '{}': async_invoke_config: {e}", served.name()))?;
        functions.insert(served.name().to_string(), s);
    }
    let settings = WorkerSettings {
        default: preset(Dialect::FunctionGraph, options),
        functions,
        ..WorkerSettings::default()
    };
    settings.validate().map_err(|e| e.to_string())?;
    Ok(settings)
}
