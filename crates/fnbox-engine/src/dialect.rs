//! What a dialect plugs into the engine: the HTTP surface of an instance. Lifecycle, limits,
//! logs and telemetry stay in the engine; a dialect only routes and encodes.

use std::sync::Arc;

use crate::instance::InstanceApi;

/// One platform's in-instance APIs.
pub trait Dialect: Send + Sync + 'static {
    /// Short name for logs (`functiongraph`, `lambda`).
    fn name(&self) -> &'static str;
    /// The router of one instance's API server (runtime, extension and telemetry APIs).
    fn instance_router(&self, api: Arc<InstanceApi>) -> axum::Router;
}
