//! The AWS Lambda dialect: Lambda's in-sandbox APIs (lambda-facts §1–3, CONTRACT §4) as axum
//! routers over the fnbox engine, Lambda's telemetry encoding (CONTRACT §5), and every other
//! Lambda decision the engine asks its [`Dialect`] for. The engine's lifecycle, limits, logs
//! and telemetry bus are shared with FunctionGraph.
//!
//! # Layout
//! - [`api`]: one module per API surface (Runtime API 2018-06-01, Extensions API 2020-01-01,
//!   Telemetry API 2022-07-01), plus `api::error`, the one place errors become HTTP responses.
//! - [`encode`]: Lambda's telemetry JSON per subscriber schema version.
//! - [`logs`]: the legacy Logs API's JSON (2020-08-15, 2021-03-18), from the same events.
//! - [`env`]: the reserved variables of the runtime and its extensions.
//! - [`trace`]: the X-Ray trace header of an invocation, derived from its request id.

pub mod api;
pub mod encode;
pub mod env;
pub mod logs;
pub mod trace;

use std::net::SocketAddr;
use std::sync::Arc;

use fnbox_engine::launch::{Launch, LaunchError};
use fnbox_engine::{Command, Dialect, ErrorInfo, InstanceApi, LogLines};
use fnbox_package::{Package, Runtime};
use futures::future::BoxFuture;

/// The AWS Lambda dialect.
#[derive(Clone, Copy, Debug, Default)]
pub struct Lambda;

impl Dialect for Lambda {
    fn name(&self) -> &'static str {
        "lambda"
    }

    /// fnbox's built-in Python/Node runtimes speak FunctionGraph's runtime API; a Lambda
    /// function names its runtime client in its own bootstrap (`provided.*`).
    fn launch(&self, package: &Package, host_path: Option<&str>) -> Result<Launch, LaunchError> {
        match package.config.runtime {
            Runtime::Python { .. } | Runtime::Node { .. } => Err(LaunchError::NotBuiltIn {
                runtime: package.config.runtime_name.clone(),
                dialect: self.name(),
                instead: "use runtime: provided.al2023 with a bootstrap that starts a runtime client, e.g. `exec python3 -m awslambdaric \"$_HANDLER\"`".into(),
            }),
            _ => Launch::resolve(package, host_path),
        }
    }

    fn runtime_env(
        &self,
        package: &Package,
        api_addr: SocketAddr,
        env: &mut Vec<(String, String)>,
    ) {
        env::lambda_vars(package, &api_addr.to_string(), env);
    }

    fn finish_env(&self, package: &Package, env: &mut Vec<(String, String)>) {
        env::log_level_default(package, env);
    }

    fn extension_env(&self, runtime_env: &[(String, String)]) -> Vec<(String, String)> {
        env::extension_env(runtime_env)
    }

    /// Lambda extensions are executables of their own (like `/opt/extensions/*`).
    fn extension_command(&self, extension: &fnbox_package::Extension) -> Command {
        Command {
            program: extension.path.clone(),
            args: Vec::new(),
        }
    }

    /// Every output line is telemetry (`function` / `extension` records).
    fn log_lines(&self) -> LogLines {
        LogLines::Every
    }

    /// With one request at a time, the runtime's work after its response (until it asks for
    /// the next event) is still the invocation's (`runtimeOverhead`).
    fn invocation_ends_at_next(&self, concurrency: u32) -> bool {
        concurrency == 1
    }

    /// Runtime SIGTERM, final telemetry, then SHUTDOWN to the extensions (lambda-facts §2.2).
    fn shutdown_order(&self) -> fnbox_engine::ShutdownOrder {
        fnbox_engine::ShutdownOrder::RuntimeFirst
    }

    /// Lambda freezes the environment between invocations.
    fn freezes_when_idle(&self) -> bool {
        true
    }

    /// Extensions learn about an invocation from their pending `event/next`.
    fn notify_invoke(
        &self,
        api: &Arc<InstanceApi>,
        request_id: &str,
        deadline_epoch_ms: u64,
    ) -> Option<BoxFuture<'static, ()>> {
        api.extensions
            .release_invoke(request_id, deadline_epoch_ms)
            .map(|done| Box::pin(done) as BoxFuture<'static, ()>)
    }

    fn error_info(&self, body: &[u8]) -> ErrorInfo {
        let parsed: fnbox_wire::lambda::ErrorBody =
            serde_json::from_slice(body).unwrap_or_default();
        ErrorInfo::new(parsed.error_type, parsed.error_message)
    }

    fn instance_router(&self, api: Arc<InstanceApi>) -> axum::Router {
        api::router(api)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn package(yaml: &str, files: &[&str]) -> (tempfile::TempDir, Package) {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("function.yaml"), yaml).unwrap();
        for f in files {
            std::fs::write(dir.path().join(f), "").unwrap();
        }
        let pkg = fnbox_package::load(dir.path()).unwrap();
        (dir, pkg)
    }

    #[test]
    fn managed_runtimes_are_refused_with_a_way_out() {
        let (_d, pkg) = package(
            "func_name: f\ndialect: lambda\nruntime: python3.12\nhandler: app.handler\n",
            &["app.py"],
        );
        let err = Lambda.launch(&pkg, None).unwrap_err().to_string();
        assert!(
            err.contains("python3.12")
                && err.contains("dialect: lambda")
                && err.contains("provided.al2023")
                && err.contains("awslambdaric"),
            "{err}"
        );
    }

    #[test]
    fn error_bodies_and_the_shape_of_an_invocation() {
        let info = Lambda.error_info(br#"{"errorMessage":"x","errorType":"ValueError"}"#);
        assert_eq!(info.error_type.as_deref(), Some("ValueError"));
        assert_eq!(info.message.as_deref(), Some("x"));
        assert_eq!(Lambda.error_info(b"[]"), ErrorInfo::default());
        assert!(Lambda.invocation_ends_at_next(1));
        assert!(!Lambda.invocation_ends_at_next(4));
        assert_eq!(Lambda.log_lines(), LogLines::Every);
    }
}
