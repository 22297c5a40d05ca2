//! The custom-runtime API: `GET …/invocation/request`, `POST …/response/{id}`,
//! `POST …/error/{id}`, `POST /v1/runtime/init/error`.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use fnbox_engine::http_util::{read_body, BodyError, Oversize};
use fnbox_engine::instance::channel::{RuntimeReply, WorkKind};
use fnbox_engine::InstanceApi;
use fnbox_wire::fg::{headers, paths, ErrorBody, INVOKE_TYPE_INITIALIZER};
use fnbox_wire::limits::{CONTROL_BODY_MAX, SYNC_PAYLOAD_MAX};
use http::{HeaderMap, HeaderValue, StatusCode};

use super::error::ApiError;

type Api = State<Arc<InstanceApi>>;

/// Routes of the runtime API.
pub fn router() -> Router<Arc<InstanceApi>> {
    Router::new()
        .route(paths::NEXT, get(next))
        .route(&format!("{}{{id}}", paths::RESPONSE_PREFIX), post(response))
        .route(&format!("{}{{id}}", paths::ERROR_PREFIX), post(error))
        .route(paths::INIT_ERROR, post(init_error))
}

async fn next(State(api): Api) -> Response {
    let work = api.runtime.next().await;
    let invoke_type = match work.kind {
        WorkKind::Invoke(t) => t.as_str(),
        WorkKind::Initializer => INVOKE_TYPE_INITIALIZER,
    };
    let mut h = HeaderMap::new();
    if let Ok(v) = HeaderValue::from_str(&work.request_id) {
        h.insert(headers::REQUEST_ID, v);
    }
    h.insert(headers::INVOKE_TYPE, HeaderValue::from_static(invoke_type));
    h.insert(
        headers::DEADLINE_MS,
        HeaderValue::from(work.deadline_epoch_ms),
    );
    if let Some(trace) = &work.trace {
        // fnbox addition (CONTRACT defines no trace header for FunctionGraph): the W3C
        // `traceparent` the function runs under; its parent is the invocation's span.
        if let Ok(v) = HeaderValue::from_str(&trace.traceparent()) {
            h.insert(headers::TRACE_ID, v);
        }
    }
    for name in [
        headers::ACCESS_KEY,
        headers::SECRET_KEY,
        headers::AUTH_TOKEN,
        headers::SECURITY_TOKEN,
    ] {
        h.insert(name, HeaderValue::from_static(""));
    }
    h.insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    (StatusCode::OK, h, work.body).into_response()
}

async fn response(
    State(api): Api,
    id: Result<Path<String>, PathRejection>,
    headers: HeaderMap,
    body: Body,
) -> Result<StatusCode, ApiError> {
    let id = request_id(id)?;
    complete(&api, &id, &headers, body, RuntimeReply::Response).await
}

async fn error(
    State(api): Api,
    id: Result<Path<String>, PathRejection>,
    headers: HeaderMap,
    body: Body,
) -> Result<StatusCode, ApiError> {
    let id = request_id(id)?;
    complete(&api, &id, &headers, body, |body| {
        RuntimeReply::Error(normalise_error(body))
    })
    .await
}

/// The `{id}` of a response or error path. One that does not decode (percent-encoded bytes
/// that are not UTF-8: found by the `instance_api_fg` fuzz target) names no invocation, so it
/// is answered like any unknown id, in the API's JSON error shape (CONTRACT §4) rather than
/// with axum's plain-text rejection.
fn request_id(id: Result<Path<String>, PathRejection>) -> Result<String, ApiError> {
    id.map(|Path(id)| id)
        .map_err(|e| ApiError::UnknownRequest(format!("request id: {}", e.body_text())))
}

/// An error body that is not JSON becomes the platform's error shape, its text the message,
/// so callers and extensions always get `{"errorType","errorMessage"}`; JSON is kept as posted.
fn normalise_error(body: bytes::Bytes) -> bytes::Bytes {
    if serde_json::from_slice::<serde::de::IgnoredAny>(&body).is_ok() {
        return body;
    }
    let message = String::from_utf8_lossy(&body).trim().to_string();
    let error = ErrorBody::new(ERR_FUNCTION, message);
    serde_json::to_vec(&error)
        .expect("error body serializes")
        .into()
}

/// errorType of an error body posted without one.
pub const ERR_FUNCTION: &str = "Function.Error";

/// Reads a response or error body (6 MiB at most) and hands it to the waiting invocation.
///
/// A body over the limit answers the runtime 413 and ends the invocation at once with
/// `FunctionResponseTooLarge` (openYuanrong's name, as for HTTP functions): the caller is not
/// left waiting for the deadline, and the instance stays, as it does for a handler error — the
/// runtime itself is healthy and may answer the next invocation.
async fn complete(
    api: &InstanceApi,
    id: &str,
    headers: &HeaderMap,
    body: Body,
    reply: fn(bytes::Bytes) -> RuntimeReply,
) -> Result<StatusCode, ApiError> {
    let body = match read_body(body, headers, SYNC_PAYLOAD_MAX, Oversize::ReadToLimit).await {
        Ok(body) => body,
        Err(e @ BodyError::TooLarge { .. }) => {
            if api.runtime.is_in_flight(id) {
                let error = ErrorBody::new(
                    ERR_RESPONSE_TOO_LARGE,
                    format!("response body size exceeds the limit of {SYNC_PAYLOAD_MAX} bytes"),
                );
                let body = serde_json::to_vec(&error).expect("error body serializes");
                let _ = api.runtime.complete(id, RuntimeReply::Error(body.into()));
            }
            return Err(e.into());
        }
        Err(e) => return Err(e.into()),
    };
    api.runtime.complete(id, reply(body))?;
    Ok(StatusCode::OK)
}

/// errorType of a response over 6 MiB (openYuanrong's name).
pub const ERR_RESPONSE_TOO_LARGE: &str = crate::http_bridge::ERR_TOO_LARGE;

async fn init_error(
    State(api): Api,
    headers: HeaderMap,
    body: Body,
) -> Result<StatusCode, ApiError> {
    let body = read_body(body, &headers, CONTROL_BODY_MAX, Oversize::ReadToLimit).await?;
    if api.fail_init(body) {
        Ok(StatusCode::OK)
    } else {
        Err(ApiError::InitOver(format!(
            "instance {} finished its init; report errors per invocation",
            api.pod_name
        )))
    }
}
