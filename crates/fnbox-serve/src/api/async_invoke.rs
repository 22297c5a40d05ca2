//! Asynchronous invocations (issue 7; CONTRACT §6, functiongraph-facts §5.2):
//! - `POST /v2/{project_id}/fgs/functions/{urn}/invocations-async`: 202 `{"request_id"}` and
//!   `X-Cff-Request-Id`, sent only after the request is committed to the data dir's queue;
//! - Lambda's `X-Amz-Invocation-Type: Event` (`enqueue_lambda`, called by `lambda.rs`): 202,
//!   empty body, `x-amzn-RequestId`;
//! - `GET /v2/{project_id}/fgs/functions/{urn}/async-invocations/{request_id}` (fnbox addition):
//!   everything known about one invocation ([`fnbox_async::AsyncStatus::to_json`]); 404
//!   FSS.0404 for an unknown id or one of another function;
//! - `GET /v2/{project_id}/fgs/functions/{urn}/async-invocations`: FunctionGraph's
//!   `ListAsyncInvocations` (`request_id`, `marker`, `limit`, `status`, `query_begin_time`,
//!   `query_end_time`).
//!
//! An HTTP function (`runtime: http`) is refused with 400 FSS.0400: the platform documents that
//! HTTP functions cannot be invoked asynchronously.
//!
//! Bodies are limited to 256 KiB (413 FSS.1201 / `RequestEntityTooLargeException`); an empty
//! body is the event `{}`, as for synchronous invocations.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use fnbox_async::{AsyncStore, InvokeSource, ListFilter, StoreError};
use fnbox_engine::http_util::{read_body, BodyError, Oversize};
use fnbox_wire::front::{headers, lambda_headers};
use fnbox_wire::limits::ASYNC_PAYLOAD_MAX;
use http::{HeaderMap, HeaderValue, StatusCode};

use super::error::{Fg, FrontError};
use super::AppState;
use crate::registry::Served;
use crate::urn::parse_fg_urn;

fn store<'a>(state: &'a AppState, what: &'static str) -> Result<&'a AsyncStore, FrontError> {
    state
        .queue
        .get()
        .ok_or(FrontError::AsyncNotImplemented(what))
}

fn store_error(e: StoreError) -> FrontError {
    match e {
        StoreError::PayloadTooLarge { limit, .. } => FrontError::AsyncPayloadTooLarge { limit },
        StoreError::InvalidRequestId(_) | StoreError::DuplicateRequestId(_) => {
            FrontError::InvalidParameter(e.to_string())
        }
        StoreError::Unavailable { .. } => FrontError::QueueUnavailable(e.to_string()),
        other => FrontError::Internal(other.to_string()),
    }
}

/// Reads the body (256 KiB at most) and commits the invocation; returns its request id once the
/// commit returned.
async fn enqueue(
    state: &AppState,
    served: &Served,
    headers: &HeaderMap,
    body: Body,
    source: InvokeSource,
    what: &'static str,
) -> Result<String, FrontError> {
    let store = store(state, what)?;
    let mut event = read_body(body, headers, ASYNC_PAYLOAD_MAX, Oversize::RefuseEarly)
        .await
        .map_err(|e| match e {
            BodyError::TooLarge { limit, .. } => FrontError::AsyncPayloadTooLarge { limit },
            other => other.into(),
        })?;
    if event.is_empty() {
        event = Bytes::from_static(b"{}");
    }
    let request_id = fnbox_engine::invocation::new_request_id();
    store
        .enqueue(served.name(), &request_id, event, source)
        .await
        .map_err(store_error)?;
    Ok(request_id)
}

fn resolve(state: &AppState, project_and_urn: (String, String)) -> Result<Arc<Served>, FrontError> {
    let (_project, urn) = project_and_urn;
    let r = parse_fg_urn(&urn).map_err(|reason| FrontError::BadUrn {
        urn: urn.clone(),
        reason,
    })?;
    state.registry.resolve_fg(&urn, &r)
}

/// FunctionGraph's HTTP functions "cannot be invoked asynchronously" (functiongraph-facts §4.1):
/// 400 FSS.0400 naming the function and what to do instead, before the body is read.
fn refuse_http_function(served: &Served) -> Result<(), FrontError> {
    if served.function().package().config.runtime == fnbox_package::Runtime::Http {
        return Err(FrontError::InvalidParameter(format!(
            "function {} is an HTTP function (runtime: http), and HTTP functions cannot be \
             invoked asynchronously; invoke it synchronously (POST …/invocations)",
            served.name()
        )));
    }
    Ok(())
}

/// `POST …/invocations-async`.
pub(super) async fn invoke_async(
    State(state): State<Arc<AppState>>,
    path: Result<Path<(String, String)>, PathRejection>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, Fg> {
    let Path(p) =
        path.map_err(|e| FrontError::InvalidParameter(format!("bad request path: {e}")))?;
    let served = resolve(&state, p)?;
    refuse_http_function(&served)?;
    let request_id = enqueue(
        &state,
        &served,
        &headers,
        body,
        InvokeSource::FunctionGraph,
        "POST …/invocations-async",
    )
    .await?;
    let body = serde_json::json!({ "request_id": request_id }).to_string();
    let mut resp = (StatusCode::ACCEPTED, body).into_response();
    let h = resp.headers_mut();
    h.insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    if let Ok(v) = HeaderValue::from_str(&request_id) {
        h.insert(headers::REQUEST_ID, v);
    }
    Ok(resp)
}

/// Lambda's `Event` invocation of `served`: 202, empty body, `x-amzn-RequestId`.
pub(super) async fn enqueue_lambda(
    state: &AppState,
    served: &Served,
    headers: &HeaderMap,
    body: Body,
) -> Result<Response, FrontError> {
    let request_id = enqueue(
        state,
        served,
        headers,
        body,
        InvokeSource::Lambda,
        "X-Amz-Invocation-Type: Event",
    )
    .await?;
    let mut resp = StatusCode::ACCEPTED.into_response();
    if let Ok(v) = HeaderValue::from_str(&request_id) {
        resp.headers_mut().insert(lambda_headers::REQUEST_ID, v);
    }
    Ok(resp)
}

/// `GET …/async-invocations/{request_id}`.
pub(super) async fn status(
    State(state): State<Arc<AppState>>,
    path: Result<Path<(String, String, String)>, PathRejection>,
) -> Result<Response, Fg> {
    let Path((project, urn, request_id)) =
        path.map_err(|e| FrontError::InvalidParameter(format!("bad request path: {e}")))?;
    let served = resolve(&state, (project, urn.clone()))?;
    let store = store(&state, "GET …/async-invocations/{request_id}")?;
    let status = store.status(&request_id).await.map_err(store_error)?;
    match status {
        Some(s) if s.function == served.name() => {
            let mut resp = (StatusCode::OK, s.to_json().to_string()).into_response();
            resp.headers_mut().insert(
                http::header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
            Ok(resp)
        }
        _ => Err(Fg(FrontError::UnknownAsyncRequest {
            request_id,
            function: urn,
        })),
    }
}

/// The query of `ListAsyncInvocations`.
#[derive(Debug, serde::Deserialize)]
pub(super) struct ListQuery {
    request_id: Option<String>,
    marker: Option<u64>,
    limit: Option<u32>,
    status: Option<String>,
    query_begin_time: Option<String>,
    query_end_time: Option<String>,
}

fn fg_time(field: &str, v: Option<&str>) -> Result<Option<i64>, FrontError> {
    match v {
        None => Ok(None),
        Some(s) => fnbox_async::parse_fg_time(s).map(Some).ok_or_else(|| {
            FrontError::InvalidParameter(format!(
                "{field} must be YYYY-MM-DDTHH:mm:ss (UTC), not {s:?}"
            ))
        }),
    }
}

/// `GET …/async-invocations` (FunctionGraph's `ListAsyncInvocations`).
pub(super) async fn list(
    State(state): State<Arc<AppState>>,
    path: Result<Path<(String, String)>, PathRejection>,
    query: Result<Query<ListQuery>, QueryRejection>,
) -> Result<Response, Fg> {
    let Path(p) =
        path.map_err(|e| FrontError::InvalidParameter(format!("bad request path: {e}")))?;
    let served = resolve(&state, p)?;
    let Query(q) =
        query.map_err(|e| FrontError::InvalidParameter(format!("bad query string: {e}")))?;
    let store = store(&state, "GET …/async-invocations")?;
    if q.limit.is_some_and(|l| l > 500) {
        return Err(Fg(FrontError::InvalidParameter(
            "limit must be at most 500".into(),
        )));
    }
    let mut filter = ListFilter {
        function: Some(served.name().to_string()),
        request_id: q.request_id.clone(),
        since_ms: fg_time("query_begin_time", q.query_begin_time.as_deref())?,
        until_ms: fg_time("query_end_time", q.query_end_time.as_deref())?,
        marker: q.marker.unwrap_or(0),
        limit: q.limit.unwrap_or(0),
        ..ListFilter::default()
    };
    if let Some(word) = &q.status {
        filter = filter.with_fg_status(word).ok_or_else(|| {
            FrontError::InvalidParameter(format!(
                "status must be one of WAIT, RUNNING, SUCCESS, FAIL, DISCARD, not {word:?}"
            ))
        })?;
    }
    let page = store.list(filter).await.map_err(store_error)?;
    let mut resp = (StatusCode::OK, page.to_fg_json().to_string()).into_response();
    resp.headers_mut().insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    Ok(resp)
}
