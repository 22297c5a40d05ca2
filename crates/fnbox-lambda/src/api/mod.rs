//! The Lambda instance API: every version prefix on one listener, as Lambda serves them.
//!
//! Handlers are thin: extract, call the engine, map the result. Every refusal goes through
//! [`error::ApiError`], the one place where errors become status codes and bodies. Bodies and
//! headers are read with the shared [`fnbox_engine::http_util`] helpers.

pub mod error;
pub mod extension;
pub mod logs;
pub mod runtime;
pub mod telemetry;

use std::sync::Arc;

use axum::Router;
use fnbox_engine::InstanceApi;
use fnbox_wire::lambda::StatusResponse;
use http::StatusCode;

/// The whole instance API of one Lambda instance.
pub fn router(api: Arc<InstanceApi>) -> Router {
    runtime::router()
        .merge(extension::router())
        .merge(telemetry::router())
        .merge(logs::router())
        .with_state(api)
}

/// `202 {"status":"OK"}` (with the newline Go's encoder appends).
pub(crate) fn accepted() -> (StatusCode, [(http::HeaderName, &'static str); 1], Vec<u8>) {
    let mut body = serde_json::to_vec(&StatusResponse::ok()).expect("status serializes");
    body.push(b'\n');
    (
        StatusCode::ACCEPTED,
        [(http::header::CONTENT_TYPE, "application/json")],
        body,
    )
}

/// The body of a Telemetry or Logs API subscription (at most `CONTROL_BODY_MAX`); a body too
/// large or unreadable is the API's own validation error (`invalid`).
pub(crate) async fn subscription_body(
    headers: &http::HeaderMap,
    body: axum::body::Body,
    invalid: fn(String) -> error::ApiError,
) -> Result<bytes::Bytes, error::ApiError> {
    use fnbox_engine::http_util::{read_body, BodyError, Oversize};
    read_body(
        body,
        headers,
        fnbox_wire::limits::CONTROL_BODY_MAX,
        Oversize::ReadToLimit,
    )
    .await
    .map_err(|e| match e {
        BodyError::TooLarge { .. } => invalid("subscription body too large".into()),
        BodyError::Read(_) => invalid(e.to_string()),
    })
}

/// What both subscription APIs do once the bus holds the subscriber: announce it to the
/// extension's streams (`platform.telemetrySubscription` / `platform.logsSubscription`) and
/// answer `200 "OK"`.
pub(crate) fn subscribed(
    api: &InstanceApi,
    name: String,
    types: Vec<String>,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    api.bus
        .publish(fnbox_engine::telemetry::Event::Subscription {
            time: chrono::Utc::now(),
            name,
            state: "Subscribed".into(),
            types,
        });
    (
        StatusCode::OK,
        [(http::header::CONTENT_TYPE, "application/json")],
        "\"OK\"",
    )
        .into_response()
}
