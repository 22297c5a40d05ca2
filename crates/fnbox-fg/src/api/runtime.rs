//! The custom-runtime API: `GET …/invocation/request`, `POST …/response/{id}`,
//! `POST …/error/{id}`, `POST /v1/runtime/init/error`.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use fnbox_engine::http_util::{read_body, Oversize};
use fnbox_engine::instance::channel::{RuntimeReply, WorkKind};
use fnbox_engine::InstanceApi;
use fnbox_wire::fg::{headers, paths, INVOKE_TYPE_INITIALIZER};
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
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Result<StatusCode, ApiError> {
    complete(&api, &id, &headers, body, RuntimeReply::Response).await
}

async fn error(
    State(api): Api,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Result<StatusCode, ApiError> {
    complete(&api, &id, &headers, body, RuntimeReply::Error).await
}

/// Reads a response or error body (6 MiB at most) and hands it to the waiting invocation.
async fn complete(
    api: &InstanceApi,
    id: &str,
    headers: &HeaderMap,
    body: Body,
    reply: fn(bytes::Bytes) -> RuntimeReply,
) -> Result<StatusCode, ApiError> {
    let body = read_body(body, headers, SYNC_PAYLOAD_MAX, Oversize::ReadToLimit).await?;
    api.runtime.complete(id, reply(body))?;
    Ok(StatusCode::OK)
}

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
