//! The FunctionGraph dialect: the instance API of CONTRACT §4 (runtime, extension and telemetry
//! APIs) as axum routers over the engine, the FunctionGraph telemetry encoding of §5, and every
//! other FunctionGraph decision the engine asks its [`Dialect`] for.
//!
//! # Layout
//! - [`api`]: one module per API surface, plus the single place errors become HTTP responses.
//! - [`encode`]: FunctionGraph's telemetry JSON.
//! - [`push`]: invoke pushes to extensions' listeners.
//! - [`http_bridge`]: HTTP functions (`runtime: http`): APIG events ⇄ real HTTP on port 8000.

pub mod api;
pub mod encode;
pub mod http_bridge;
pub mod push;

use std::sync::Arc;

use fnbox_engine::{Command, Dialect, ErrorInfo, InstanceApi, LogLines};
use futures::future::BoxFuture;

/// The FunctionGraph dialect.
#[derive(Clone, Copy, Debug, Default)]
pub struct FunctionGraph;

impl Dialect for FunctionGraph {
    fn name(&self) -> &'static str {
        "functiongraph"
    }

    /// `cpu used` and `storage used` are in every `Finish invoke request` line.
    fn reports_usage(&self) -> bool {
        true
    }

    /// Built-in runtimes as the engine resolves them; a `bootstrap` (custom runtimes and HTTP
    /// functions) is run as the platform runs it, `/bin/bash bootstrap` in the code directory
    /// (openYuanrong's launcher, functiongraph-facts §4.1), so bash scripts without a shebang or
    /// the executable bit work as published. A compiled bootstrap (an ELF file) is executed
    /// directly: bash cannot run it.
    fn launch(
        &self,
        package: &fnbox_package::Package,
        host_path: Option<&str>,
    ) -> Result<fnbox_engine::launch::Launch, fnbox_engine::launch::LaunchError> {
        let mut launch = fnbox_engine::launch::Launch::resolve(package, host_path)?;
        if package.config.runtime.needs_bootstrap() && !is_elf(&launch.program) {
            launch
                .args
                .insert(0, launch.program.clone().into_os_string());
            launch.program = "/bin/bash".into();
        }
        Ok(launch)
    }

    /// `extension*.sh` files are shell scripts run by `/bin/bash` (CONTRACT §1).
    fn extension_command(&self, extension: &fnbox_package::Extension) -> Command {
        Command {
            program: "/bin/bash".into(),
            args: vec![extension.path.clone().into()],
        }
    }

    /// Only `[Function]` / `[Extension]` lines are telemetry (CONTRACT §5).
    fn log_lines(&self) -> LogLines {
        LogLines::Marked
    }

    fn notify_invoke(
        &self,
        api: &Arc<InstanceApi>,
        request_id: &str,
        _deadline_epoch_ms: u64,
    ) -> Option<BoxFuture<'static, ()>> {
        push::invoke(api, request_id)
    }

    fn error_info(&self, body: &[u8]) -> ErrorInfo {
        let parsed: fnbox_wire::fg::ErrorBody = serde_json::from_slice(body).unwrap_or_default();
        ErrorInfo::new(parsed.error_type, parsed.error_message)
    }

    fn runtime_bridge(&self, api: Arc<InstanceApi>) -> Option<BoxFuture<'static, ()>> {
        Some(Box::pin(http_bridge::run(api)))
    }

    fn instance_router(&self, api: Arc<InstanceApi>) -> axum::Router {
        api::router(api)
    }
}

/// Whether `path` starts with the ELF magic number.
fn is_elf(path: &std::path::Path) -> bool {
    use std::io::Read;
    let mut magic = [0u8; 4];
    std::fs::File::open(path)
        .and_then(|mut f| f.read_exact(&mut magic))
        .is_ok_and(|()| magic == *b"\x7fELF")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_bodies_are_read_with_their_fallbacks() {
        let info = FunctionGraph.error_info(br#"{"errorType":"ValueError","errorMessage":"bad"}"#);
        assert_eq!(info.error_type.as_deref(), Some("ValueError"));
        assert_eq!(info.message.as_deref(), Some("bad"));
        assert_eq!(FunctionGraph.error_info(b"not json"), ErrorInfo::default());
        assert_eq!(
            FunctionGraph.error_info(br#"{"errorType":""}"#),
            ErrorInfo::default()
        );
    }
}
