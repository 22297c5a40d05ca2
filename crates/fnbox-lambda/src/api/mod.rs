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
