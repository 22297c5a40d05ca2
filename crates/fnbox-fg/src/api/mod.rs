//! The instance API routers.
//!
//! Handlers are thin: extract, call the engine, map the result. Every error goes through
//! [`error::ApiError`], the one place where errors become status codes and bodies.
//!
//! Bodies are read with [`fnbox_engine::http_util::read_body`] and [`Oversize::ReadToLimit`]:
//! a runtime still writing an oversized response gets the 413 rather than a reset connection.
//!
//! [`Oversize::ReadToLimit`]: fnbox_engine::http_util::Oversize::ReadToLimit

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
