//! FunctionGraph's invoke API (functiongraph-facts §5.1–5.3, CONTRACT §6):
//! `POST /v2/{project_id}/fgs/functions/{function_urn}/invocations`; the asynchronous routes
//! (`…/invocations-async`, `…/async-invocations[/{request_id}]`) are in `async_invoke.rs`.
//!
//! The project id in the path is not checked (fnbox serves one local project); neither are the
//! region and project of a full URN: package and name select the function.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use bytes::Bytes;
use fnbox_engine::http_util::{header, read_body, Oversize};
use fnbox_wire::front::{headers, paths, values, V1Response};
use fnbox_wire::limits::SYNC_PAYLOAD_MAX;
use http::{HeaderMap, HeaderValue, StatusCode};

use super::error::{json, Fg, FrontError};
use super::render::{self, answer, insert_log, insert_text, push_log_lines, Answer};
use super::AppState;
use crate::invoke::{invoke, trace_parent, Completed};
use crate::registry::Served;
use crate::urn::parse_fg_urn;

/// The FunctionGraph invoke routes.
pub fn router() -> Router<Arc<AppState>> {
    Router::new()
        .route(paths::FG_INVOKE, post(invoke_sync))
        .route(
            paths::FG_INVOKE_ASYNC,
            post(super::async_invoke::invoke_async),
        )
        .route(paths::FG_ASYNC_STATUS, get(super::async_invoke::status))
        .route(paths::FG_ASYNC_LIST, get(super::async_invoke::list))
}

/// `X-CFF-Request-Version`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ResponseVersion {
    /// Raw result.
    V0,
    /// `{"request_id","result","log","status"}`.
    V1,
}

impl ResponseVersion {
    fn from_headers(h: &HeaderMap) -> Result<Self, FrontError> {
        match header(h, headers::REQUEST_VERSION) {
            None => Ok(Self::V0),
            Some(v) if v.eq_ignore_ascii_case(values::VERSION_V0) => Ok(Self::V0),
            Some(v) if v.eq_ignore_ascii_case(values::VERSION_V1) => Ok(Self::V1),
            Some(other) => Err(FrontError::InvalidParameter(format!(
                "{} must be v0 or v1, not {other:?}",
                headers::REQUEST_VERSION
            ))),
        }
    }

    fn as_str(self) -> &'static str {
        match self {
            Self::V0 => values::VERSION_V0,
            Self::V1 => values::VERSION_V1,
        }
    }
}

fn wants_tail(h: &HeaderMap) -> bool {
    header(h, headers::LOG_TYPE).is_some_and(|v| v.eq_ignore_ascii_case(values::LOG_TYPE_TAIL))
}

fn resolve(
    state: &AppState,
    path: Result<Path<(String, String)>, PathRejection>,
) -> Result<Arc<Served>, FrontError> {
    let Path((_project, urn)) =
        path.map_err(|e| FrontError::InvalidParameter(format!("bad request path: {e}")))?;
    let r = parse_fg_urn(&urn).map_err(|reason| FrontError::BadUrn {
        urn: urn.clone(),
        reason,
    })?;
    state.registry.resolve_fg(&urn, &r)
}

async fn invoke_sync(
    State(state): State<Arc<AppState>>,
    path: Result<Path<(String, String)>, PathRejection>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, Fg> {
    let served = resolve(&state, path)?;
    let version = ResponseVersion::from_headers(&headers)?;
    let want_tail = wants_tail(&headers);
    let mut event = read_body(body, &headers, SYNC_PAYLOAD_MAX, Oversize::RefuseEarly)
        .await
        .map_err(FrontError::from)?;
    if event.is_empty() {
        event = Bytes::from_static(b"{}");
    }
    let done = invoke(&served, event, trace_parent(&headers), want_tail).await?;
    Ok(render(&done, version, want_tail))
}

/// The invocation's log as FunctionGraph shows it, last 4 KiB.
fn log_tail(done: &Completed) -> String {
    let now = chrono::Utc::now().timestamp();
    let m = &done.metrics;
    let start = now - (m.duration_ms / 1000.0) as i64;
    let mut text =
        fnbox_wire::fg::start_invoke_line(start, &done.request_id, values::LATEST) + "\n";
    push_log_lines(&mut text, done);
    text.push_str(&fnbox_wire::fg::finish_invoke_line(
        now,
        &done.request_id,
        &m.finish_figures(),
    ));
    text.push('\n');
    render::log_tail(&text)
}

fn content_type_of(body: &[u8]) -> &'static str {
    if serde_json::from_slice::<serde::de::IgnoredAny>(body).is_ok() {
        "application/json"
    } else {
        "text/plain; charset=utf-8"
    }
}

fn render(done: &Completed, version: ResponseVersion, want_tail: bool) -> Response {
    let log = want_tail.then(|| log_tail(done));
    let mut resp = match answer(done, |f| {
        json(&fnbox_wire::fg::ErrorBody::new(
            f.error_type(),
            f.message.clone(),
        ))
    }) {
        Answer::Timeout(e) => Fg(e).into_response(),
        Answer::Body { body, func_err } => {
            let (body, content_type) = match version {
                ResponseVersion::V0 => {
                    let ct = content_type_of(&body);
                    (body, ct)
                }
                ResponseVersion::V1 => (
                    json(&V1Response {
                        request_id: done.request_id.clone(),
                        result: String::from_utf8_lossy(&body).into_owned(),
                        log: log.clone().unwrap_or_default(),
                        status: StatusCode::OK.as_u16(),
                    }),
                    "application/json",
                ),
            };
            let mut resp = render::ok(body, content_type);
            let h = resp.headers_mut();
            h.insert(
                headers::IS_FUNC_ERR,
                HeaderValue::from_static(if func_err { "true" } else { "false" }),
            );
            if !func_err {
                h.insert(
                    headers::FUNC_ERR_CODE,
                    HeaderValue::from_static(values::FUNC_ERR_CODE_OK),
                );
            }
            resp
        }
    };
    let h = resp.headers_mut();
    insert_text(h, headers::REQUEST_ID, &done.request_id);
    if let Ok(v) = HeaderValue::from_bytes(&json(&done.summary)) {
        h.insert(headers::INVOKE_SUMMARY, v);
    }
    h.insert(
        headers::BILLING_DURATION,
        HeaderValue::from(done.summary.billing_duration),
    );
    h.insert(
        headers::RESPONSE_VERSION,
        HeaderValue::from_static(version.as_str()),
    );
    if let Some(log) = log {
        insert_log(h, headers::FUNCTION_LOG, &log);
    }
    resp
}
