//! What a dialect plugs into the engine: every decision that differs between FunctionGraph and
//! Lambda. The engine runs one lifecycle (init, invoke, shutdown; restore next to init) and asks
//! its [`Dialect`] wherever the platforms differ; it never looks at the package's `dialect:`
//! itself. The dialect object is chosen once, above both dialects (`fnbox_serve::dialect_for`).
//!
//! | decision | FunctionGraph | Lambda |
//! |---|---|---|
//! | runtime launch | built-in Python/Node, bootstrap, HTTP server | bootstrap only |
//! | environment | `RUNTIME_*` | `RUNTIME_*` plus `AWS_LAMBDA_*`, `_HANDLER`, … |
//! | extension process | `/bin/bash extension*.sh` | the executable itself |
//! | invoke notice | `POST /extension/invoke` to each listener | INVOKE on `event/next` |
//! | invocation over | every push answered | every extension and the runtime asked for more |
//! | telemetry lines | `[Function]` / `[Extension]` marked only | every line |
//! | error body | `{"errorType","errorMessage"}` (FunctionGraph) | same names (Lambda) |
//! | runtime bridge | HTTP functions: APIG event ⇄ HTTP on port 8000 | none |

use std::ffi::OsString;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use fnbox_package::{Extension, Package};
use futures::future::BoxFuture;

use crate::instance::InstanceApi;
use crate::launch::{Launch, LaunchError};

/// Which output lines become `function` / `extension` telemetry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogLines {
    /// Only lines carrying the `[Function]` / `[Extension]` marker (FunctionGraph).
    Marked,
    /// Every line (Lambda).
    Every,
}

/// The `errorType` / `errorMessage` a runtime put in an error body, as the dialect reads it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ErrorInfo {
    /// `errorType`, when present and not empty.
    pub error_type: Option<String>,
    /// `errorMessage`, when present and not empty.
    pub message: Option<String>,
}

impl ErrorInfo {
    /// From a parsed body's `errorType` and `errorMessage`; an empty one counts as absent (both
    /// platforms' runtimes send `""` for what they do not know).
    pub fn new(error_type: String, message: String) -> Self {
        let given = |s: String| (!s.is_empty()).then_some(s);
        Self {
            error_type: given(error_type),
            message: given(message),
        }
    }
}

/// How to start one extension process.
#[derive(Clone, Debug)]
pub struct Command {
    /// Program.
    pub program: PathBuf,
    /// Arguments.
    pub args: Vec<OsString>,
}

/// One platform's in-instance behaviour. Implemented by `fnbox_fg::FunctionGraph` and
/// `fnbox_lambda::Lambda`; the engine holds it as `Arc<dyn Dialect>`.
pub trait Dialect: Send + Sync + 'static {
    /// Short name for logs (`functiongraph`, `lambda`).
    fn name(&self) -> &'static str;

    /// How the package's runtime starts; refuses runtimes this dialect cannot run, with a
    /// message that says what to use instead.
    fn launch(&self, package: &Package, host_path: Option<&str>) -> Result<Launch, LaunchError> {
        Launch::resolve(package, host_path)
    }

    /// Adds the dialect's own variables to the runtime's environment. `env` already holds the
    /// platform-neutral set of CONTRACT §2; the `user_data` entries are added after this, and
    /// never replace a variable already set.
    fn runtime_env(
        &self,
        _package: &Package,
        _api_addr: SocketAddr,
        _env: &mut Vec<(String, String)>,
    ) {
    }

    /// Last word on the environment, after the `user_data` entries (defaults that depend on
    /// them, e.g. Lambda's log level when the log format is JSON).
    fn finish_env(&self, _package: &Package, _env: &mut Vec<(String, String)>) {}

    /// The environment of an extension, given the runtime's.
    fn extension_env(&self, runtime_env: &[(String, String)]) -> Vec<(String, String)> {
        runtime_env.to_vec()
    }

    /// How one extension file of the package is started.
    fn extension_command(&self, extension: &Extension) -> Command;

    /// Which output lines are telemetry.
    fn log_lines(&self) -> LogLines;

    /// Whether an invocation ends only when the runtime asked for its next one after
    /// answering (Lambda with `concurrent_num` 1: the runtime's post-response work is part of
    /// the invocation).
    fn invocation_ends_at_next(&self, _concurrency: u32) -> bool {
        false
    }

    /// Whether invocations measure `cpu used` and `storage used` (FunctionGraph prints them in
    /// its `Finish invoke request` line). Lambda reports neither, so its invocations skip those
    /// readings of the instance's processes (two passes over `/proc` per invocation).
    fn reports_usage(&self) -> bool {
        false
    }

    /// The order of an instance's shutdown ([`ShutdownOrder`]).
    fn shutdown_order(&self) -> ShutdownOrder {
        ShutdownOrder::ExtensionsNotifiedFirst
    }

    /// Whether an idle instance of a package that allows it (`freeze:`) is frozen between
    /// invocations (Lambda), see `instance::freeze`.
    fn freezes_when_idle(&self) -> bool {
        false
    }

    /// Tells the instance's extensions that an invocation started, at the same moment as the
    /// runtime gets it. The future completes when every extension is done with it (FunctionGraph:
    /// answered its push; Lambda: asked for its next event); `None` when no extension listens.
    fn notify_invoke(
        &self,
        api: &Arc<InstanceApi>,
        request_id: &str,
        deadline_epoch_ms: u64,
    ) -> Option<BoxFuture<'static, ()>>;

    /// Reads a runtime's error body (handler error, init error).
    fn error_info(&self, body: &[u8]) -> ErrorInfo;

    /// For runtimes that are not runtime-API clients ([`crate::launch::RuntimeKind::HttpServer`]):
    /// the task that plays the runtime-API client on their behalf, owned by the instance.
    fn runtime_bridge(&self, _api: Arc<InstanceApi>) -> Option<BoxFuture<'static, ()>> {
        None
    }

    /// The router of one instance's API server (runtime, extension and telemetry APIs; the
    /// telemetry route brings the dialect's encoder to the bus).
    fn instance_router(&self, api: Arc<InstanceApi>) -> axum::Router;
}

/// How an instance shuts down.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ShutdownOrder {
    /// CONTRACT §3: pull extensions get SHUTDOWN, then every process SIGTERM and SIGKILL after
    /// the grace; the remaining telemetry is flushed within it (FunctionGraph).
    ExtensionsNotifiedFirst,
    /// Lambda's documented order (lambda-facts §2.2 item 9): the runtime gets SIGTERM (SIGKILL
    /// after its share of the budget), the final telemetry is delivered, then SHUTDOWN goes to
    /// each external extension, within 2 s / 500 ms / 0 ms by the extensions registered.
    RuntimeFirst,
}
