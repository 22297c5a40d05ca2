//! The instance API routers.
//!
//! Handlers are thin: extract, call the engine, map the result. Every error goes through
//! [`error::ApiError`], the one place where errors become status codes and bodies.

pub mod error;
pub mod extension;
pub mod runtime;
pub mod telemetry;

use std::sync::Arc;

use axum::Router;
use fnbox_engine::InstanceApi;

/// The whole instance API of one FunctionGraph instance.
pub fn router(api: Arc<InstanceApi>) -> Router {
    runtime::router()
        .merge(extension::router())
        .merge(telemetry::router())
        .with_state(api)
}

/// Reads a request body up to `limit` bytes.
pub(crate) async fn read_body(
    body: axum::body::Body,
    headers: &http::HeaderMap,
    limit: usize,
) -> Result<bytes::Bytes, error::ApiError> {
    // The body is read (up to the limit) rather than refused on its Content-Length alone, so a
    // runtime still writing gets the 413 instead of a reset connection.
    let declared = headers
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    axum::body::to_bytes(body, limit)
        .await
        .map_err(|_| error::ApiError::PayloadTooLarge {
            limit,
            size: declared,
        })
}
