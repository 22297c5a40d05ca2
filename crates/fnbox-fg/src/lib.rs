//! The FunctionGraph dialect: the instance API of CONTRACT §4 (runtime, extension and telemetry
//! APIs) as axum routers over the engine, and the FunctionGraph telemetry encoding of §5.
//!
//! # Layout
//! - [`api`]: one module per API surface, plus the single place errors become HTTP responses.
//! - [`encode`]: FunctionGraph's telemetry JSON.

pub mod api;
pub mod encode;

use std::sync::Arc;

use fnbox_engine::{Dialect, InstanceApi};

/// The FunctionGraph dialect.
#[derive(Clone, Copy, Debug, Default)]
pub struct FunctionGraph;

impl Dialect for FunctionGraph {
    fn name(&self) -> &'static str {
        "functiongraph"
    }

    fn instance_router(&self, api: Arc<InstanceApi>) -> axum::Router {
        api::router(api)
    }
}
