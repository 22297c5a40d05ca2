//! The AWS Lambda dialect: Lambda's in-sandbox APIs (lambda-facts §1–3, CONTRACT §4) as axum
//! routers over the fnbox engine, and Lambda's telemetry encoding (CONTRACT §5). The engine's
//! lifecycle, limits, logs and telemetry bus are shared with FunctionGraph; this crate only
//! routes and encodes.
//!
//! # Layout
//! - [`api`]: one module per API surface (Runtime API 2018-06-01, Extensions API 2020-01-01,
//!   Telemetry API 2022-07-01), plus `api::error`, the one place errors become HTTP responses.
//! - [`encode`]: Lambda's telemetry JSON per subscriber schema version.
//! - [`trace`]: the X-Ray trace header of an invocation, derived from its request id.
//!
//! # Choosing the dialect
//! [`dialect_for`] maps a package's `dialect:` to the dialect object the engine needs (this
//! crate or `fnbox_fg`).

pub mod api;
pub mod encode;
pub mod trace;

use std::sync::Arc;

use fnbox_engine::{Dialect, InstanceApi};

/// The AWS Lambda dialect.
#[derive(Clone, Copy, Debug, Default)]
pub struct Lambda;

impl Dialect for Lambda {
    fn name(&self) -> &'static str {
        "lambda"
    }

    fn instance_router(&self, api: Arc<InstanceApi>) -> axum::Router {
        api::router(api)
    }
}

/// The dialect a package asks for (`dialect:` in `function.yaml`):
/// `fnbox_lambda::dialect_for(package.config.dialect)`.
pub fn dialect_for(dialect: fnbox_package::Dialect) -> Arc<dyn Dialect> {
    match dialect {
        fnbox_package::Dialect::FunctionGraph => Arc::new(fnbox_fg::FunctionGraph),
        fnbox_package::Dialect::Lambda => Arc::new(Lambda),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_package_dialect_picks_the_routers() {
        assert_eq!(
            super::dialect_for(fnbox_package::Dialect::Lambda).name(),
            "lambda"
        );
        assert_eq!(
            super::dialect_for(fnbox_package::Dialect::FunctionGraph).name(),
            "functiongraph"
        );
    }
}
