//! The harness's [`Dialect`]: the real one (FunctionGraph or Lambda) with three additions, all
//! through the engine's dialect seam:
//! - every extension is started under a small bash wrapper that records its exit code and time
//!   (`$EXTTEST_STATUS_DIR/<name>.exit`); the wrapper keeps SIGTERM's default action for the
//!   extension (a trap, not an ignore, so `exec`ed programs get the default) and only waits;
//! - invoke notices (FunctionGraph pushes, Lambda INVOKE events) can be delayed, and the time
//!   until the extension is done with each is recorded;
//! - the instance API's extension routes (register, subscribe, `event/next`) are recorded.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::Request;
use axum::middleware::Next;
use axum::response::Response;
use fnbox_engine::{Command, Dialect, ErrorInfo, InstanceApi, LogLines};
use fnbox_package::Package;
use futures::future::BoxFuture;
use tokio::time::Instant;

use crate::record::{ApiCall, Notice, Recorder};

/// Runs `"${@:3}"`, then writes `<code> <epoch ns>` to `$EXTTEST_STATUS_DIR/$1.exit`. `trap :`
/// (not `trap ''`) so the program keeps SIGTERM's default action; the wrapper itself waits
/// for the program, and dies with it on SIGKILL (then no status is written: killed).
const WRAPPER: &str = r#"trap : TERM INT
"${@:2}"
s=$?
printf '%s %s\n' "$s" "$(date +%s%N)" > "${EXTTEST_STATUS_DIR:?}/$1.exit"
exit "$s"
"#;

/// Largest request body recorded from the instance API.
const MAX_RECORDED_BODY: usize = 64 * 1024;

/// The wrapped dialect.
pub struct Probed {
    inner: Arc<dyn Dialect>,
    rec: Recorder,
}

impl Probed {
    /// Wraps `inner`, recording into `rec`.
    pub fn new(inner: Arc<dyn Dialect>, rec: Recorder) -> Self {
        Self { inner, rec }
    }
}

impl Dialect for Probed {
    fn name(&self) -> &'static str {
        self.inner.name()
    }

    fn launch(
        &self,
        package: &Package,
        host_path: Option<&str>,
    ) -> Result<fnbox_engine::launch::Launch, fnbox_engine::launch::LaunchError> {
        self.inner.launch(package, host_path)
    }

    fn runtime_env(
        &self,
        package: &Package,
        api_addr: std::net::SocketAddr,
        env: &mut Vec<(String, String)>,
    ) {
        self.inner.runtime_env(package, api_addr, env)
    }

    fn finish_env(&self, package: &Package, env: &mut Vec<(String, String)>) {
        self.inner.finish_env(package, env)
    }

    fn extension_env(&self, runtime_env: &[(String, String)]) -> Vec<(String, String)> {
        self.inner.extension_env(runtime_env)
    }

    fn extension_command(&self, extension: &fnbox_package::Extension) -> Command {
        let real = self.inner.extension_command(extension);
        let mut args: Vec<std::ffi::OsString> = vec![
            "-c".into(),
            WRAPPER.into(),
            "exttest-wrapper".into(),
            extension.name.clone().into(),
            real.program.into_os_string(),
        ];
        args.extend(real.args);
        Command {
            program: "/bin/bash".into(),
            args,
        }
    }

    fn log_lines(&self) -> LogLines {
        self.inner.log_lines()
    }

    fn invocation_ends_at_next(&self, concurrency: u32) -> bool {
        self.inner.invocation_ends_at_next(concurrency)
    }

    fn shutdown_order(&self) -> fnbox_engine::ShutdownOrder {
        self.inner.shutdown_order()
    }

    fn notify_invoke(
        &self,
        api: &Arc<InstanceApi>,
        request_id: &str,
        deadline_epoch_ms: u64,
    ) -> Option<BoxFuture<'static, ()>> {
        let delay = self.rec.delays().push;
        let rec = self.rec.clone();
        let id = request_id.to_string();
        let at = rec.now();
        let index = rec.with(|s| {
            s.notices.push(Notice {
                request_id: id.clone(),
                at,
                answered_after: None,
            });
            s.notices.len() - 1
        });
        let done =
            move |rec: &Recorder, took| rec.with(|s| s.notices[index].answered_after = Some(took));
        if delay.is_zero() {
            let fut = self
                .inner
                .notify_invoke(api, request_id, deadline_epoch_ms)?;
            let started = Instant::now();
            return Some(Box::pin(async move {
                fut.await;
                done(&rec, started.elapsed());
            }));
        }
        let inner = self.inner.clone();
        let api = api.clone();
        Some(Box::pin(async move {
            tokio::time::sleep(delay).await;
            let started = Instant::now();
            if let Some(fut) = inner.notify_invoke(&api, &id, deadline_epoch_ms) {
                fut.await;
            }
            done(&rec, started.elapsed());
        }))
    }

    fn error_info(&self, body: &[u8]) -> ErrorInfo {
        self.inner.error_info(body)
    }

    fn runtime_bridge(&self, api: Arc<InstanceApi>) -> Option<BoxFuture<'static, ()>> {
        self.inner.runtime_bridge(api)
    }

    fn instance_router(&self, api: Arc<InstanceApi>) -> axum::Router {
        let rec = self.rec.clone();
        self.inner
            .instance_router(api)
            .layer(axum::middleware::from_fn(
                move |req: Request, next: Next| record_call(rec.clone(), req, next),
            ))
    }
}

/// Extension-side routes: registration, subscription, `event/next`, error reports.
fn is_extension_route(path: &str) -> bool {
    path.contains("/extension/") || path.ends_with("/telemetry") || path.ends_with("/logs")
}

async fn record_call(rec: Recorder, req: Request, next: Next) -> Response {
    let path = req.uri().path().to_string();
    if !is_extension_route(&path) {
        return next.run(req).await;
    }
    let (parts, body) = req.into_parts();
    let body = match axum::body::to_bytes(body, MAX_RECORDED_BODY).await {
        Ok(b) => b,
        Err(_) => {
            return Response::builder()
                .status(http::StatusCode::PAYLOAD_TOO_LARGE)
                .body(Body::from("request body too large"))
                .expect("static response");
        }
    };
    let response = next
        .run(Request::from_parts(parts, Body::from(body.clone())))
        .await;
    let call = ApiCall {
        path,
        status: response.status().as_u16(),
        at: rec.now(),
        body,
    };
    rec.with(|s| s.api.push(call));
    response
}
