//! Lambda's `Invoke` API: `POST /2015-03-31/functions/{FunctionName}/invocations`, so tools
//! written for Lambda (or its runtime interface emulator) work unchanged.
//!
//! `X-Amz-Invocation-Type`: `RequestResponse` (default) runs the function; `DryRun` answers 204
//! once the function is found; `Event` answers 202 once the invocation is committed to the
//! durable queue (`async_invoke.rs`; 413 `RequestEntityTooLargeException` over 256 KiB).
//! `X-Amz-Log-Type: Tail`
//! returns the last 4 KB of the log, Lambda-style (`START` / `END` / `REPORT` lines around the
//! function's own), in `X-Amz-Log-Result`. Function errors, faults and init failures answer 200
//! with `X-Amz-Function-Error: Unhandled`, as Lambda does.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use bytes::Bytes;
use fnbox_engine::http_util::{header, read_body, Oversize};
use fnbox_engine::Fault;
use fnbox_wire::fg::ErrorBody;
use fnbox_wire::front::{lambda_headers, lambda_values, paths};
use fnbox_wire::lambda::log_lines;
use fnbox_wire::limits::SYNC_PAYLOAD_MAX;
use http::{HeaderMap, HeaderValue, StatusCode};

use super::error::{json, FrontError, Lambda};
use super::render::{self, answer, insert_log, insert_text, push_log_lines, Answer};
use super::AppState;
use crate::invoke::{invoke, trace_parent, Completed};
use crate::urn::parse_lambda_name;

/// The Lambda invoke route.
pub fn router() -> Router<Arc<AppState>> {
    Router::new().route(paths::LAMBDA_INVOKE, post(invoke_function))
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum InvocationType {
    RequestResponse,
    Event,
    DryRun,
}

fn invocation_type(h: &HeaderMap) -> Result<InvocationType, FrontError> {
    match header(h, lambda_headers::INVOCATION_TYPE) {
        None => Ok(InvocationType::RequestResponse),
        Some(v) if v.eq_ignore_ascii_case(lambda_values::REQUEST_RESPONSE) => {
            Ok(InvocationType::RequestResponse)
        }
        Some(v) if v.eq_ignore_ascii_case(lambda_values::EVENT) => Ok(InvocationType::Event),
        Some(v) if v.eq_ignore_ascii_case(lambda_values::DRY_RUN) => Ok(InvocationType::DryRun),
        Some(other) => Err(FrontError::InvalidParameter(format!(
            "1 validation error detected: Value '{other}' at 'invocationType' failed to satisfy constraint: Member must satisfy enum value set: [Event, RequestResponse, DryRun]"
        ))),
    }
}

fn wants_tail(h: &HeaderMap) -> Result<bool, FrontError> {
    match header(h, lambda_headers::LOG_TYPE) {
        None => Ok(false),
        Some(v) if v.eq_ignore_ascii_case(lambda_values::LOG_NONE) => Ok(false),
        Some(v) if v.eq_ignore_ascii_case(lambda_values::LOG_TAIL) => Ok(true),
        Some(other) => Err(FrontError::InvalidParameter(format!(
            "1 validation error detected: Value '{other}' at 'logType' failed to satisfy constraint: Member must satisfy enum value set: [Tail, None]"
        ))),
    }
}

/// `?Qualifier=`.
#[derive(Debug, serde::Deserialize)]
struct InvokeQuery {
    #[serde(rename = "Qualifier")]
    qualifier: Option<String>,
}

async fn invoke_function(
    State(state): State<Arc<AppState>>,
    path: Result<Path<String>, PathRejection>,
    query: Result<Query<InvokeQuery>, QueryRejection>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, Lambda> {
    let Path(name) =
        path.map_err(|e| FrontError::InvalidParameter(format!("bad request path: {e}")))?;
    let qualifier = query
        .map_err(|e| FrontError::InvalidParameter(format!("bad query string: {e}")))?
        .0
        .qualifier;
    let r = parse_lambda_name(&name, qualifier.as_deref()).map_err(FrontError::BadName)?;
    let served = state.registry.resolve_lambda(&r)?;
    let kind = invocation_type(&headers)?;
    let want_tail = wants_tail(&headers)?;
    if kind == InvocationType::Event {
        return Ok(super::async_invoke::enqueue_lambda(&state, &served, &headers, body).await?);
    }
    let mut event = read_body(body, &headers, SYNC_PAYLOAD_MAX, Oversize::RefuseEarly)
        .await
        .map_err(FrontError::from)?;
    if kind == InvocationType::DryRun {
        let mut resp = StatusCode::NO_CONTENT.into_response();
        if let Ok(v) = HeaderValue::from_str(&fnbox_engine::invocation::new_request_id()) {
            resp.headers_mut().insert(lambda_headers::REQUEST_ID, v);
        }
        return Ok(resp);
    }
    if event.is_empty() {
        event = Bytes::from_static(b"{}");
    }
    let done = invoke(&served, event, trace_parent(&headers), want_tail).await?;
    Ok(render(&done, want_tail))
}

/// The invocation's log as Lambda shows it, last 4 KB.
fn log_tail(done: &Completed) -> String {
    let id = &done.request_id;
    let s = &done.summary;
    let mut text = log_lines::start(id) + "\n";
    push_log_lines(&mut text, done);
    text.push_str(&log_lines::end(id));
    text.push('\n');
    text.push_str(&log_lines::report(
        id,
        s.duration,
        s.billing_duration,
        s.memory_size,
        s.memory_used.ceil() as u64,
        done.init_duration_ms,
    ));
    text.push('\n');
    render::log_tail(&text)
}

fn render(done: &Completed, want_tail: bool) -> Response {
    let fault_body = |f: &Fault| {
        json(&ErrorBody::new(
            f.error_type(),
            format!("RequestId: {} Error: {}", done.request_id, f.message),
        ))
    };
    let mut resp = match answer(done, fault_body) {
        Answer::Timeout(e) => Lambda(e).into_response(),
        Answer::Body { body, func_err } => {
            let mut resp = render::ok(body, "application/json");
            let h = resp.headers_mut();
            h.insert(
                lambda_headers::EXECUTED_VERSION,
                HeaderValue::from_static(lambda_values::LATEST),
            );
            if func_err {
                h.insert(
                    lambda_headers::FUNCTION_ERROR,
                    HeaderValue::from_static(lambda_values::UNHANDLED),
                );
            }
            insert_text(h, lambda_headers::REQUEST_ID, &done.request_id);
            resp
        }
    };
    if want_tail {
        insert_log(
            resp.headers_mut(),
            lambda_headers::LOG_RESULT,
            &log_tail(done),
        );
    }
    resp
}
