//! The restore phase of an instance (issue 18): how a snapshot function's runtime process is
//! started ([`crate::snapshot`] has the template), and how restore failures read.

use std::time::Duration;

use super::process::{self, Role, Supervised};
use super::{InitError, Instance};
use crate::engine::Function;
use crate::snapshot::{BuildSpec, Claim, ForkRequest, Template, RESTORE_FAILED, RESTORE_TIMEOUT};
use crate::telemetry::{Phase, Status};

/// The phase an instance starting with `claim` reports.
pub(crate) fn phase_of(claim: &Option<Claim<'_>>) -> Phase {
    match claim {
        Some(Claim::Restore(_)) => Phase::Restore,
        _ => Phase::Init,
    }
}

/// A failure while restoring, as the platforms report it: FunctionGraph's 4213 "function
/// restore failed" / 4214 "runtime restore timed out after …".
pub(crate) fn restore_failure(err: InitError, timeout: Duration) -> InitError {
    let mut out = match err.status {
        Status::Timeout => InitError::new(
            Status::Timeout,
            RESTORE_TIMEOUT,
            format!("runtime restore timed out after {}s", timeout.as_secs()),
        ),
        status => InitError::new(
            status,
            RESTORE_FAILED,
            format!(
                "function restore failed: {}: {}",
                err.error_type, err.message
            ),
        ),
    };
    out.body = err.body;
    out.restore = true;
    out
}

impl Instance {
    /// Fork mode: builds the template (the first instance, inside its init phase) or forks this
    /// instance's runtime from it (running the restore hook); `env` is the instance's
    /// environment.
    pub(super) async fn start_snapshot_runtime(
        &self,
        function: &Function,
        claim: Claim<'_>,
        mut env: Vec<(String, String)>,
        trace_id: &str,
        deadline: tokio::time::Instant,
    ) -> Result<Supervised, InitError> {
        let package = &self.api.package;
        let snapshot = &package.config.snapshot;
        if let Some(hook) = &snapshot.restore_hook_handler {
            env.push(("RUNTIME_RESTORE_HOOK_HANDLER".into(), hook.clone()));
        }
        env.push((
            "RUNTIME_RESTORE_HOOK_TIMEOUT".into(),
            snapshot.restore_hook_timeout.to_string(),
        ));
        let netns = self.netns.as_ref().map(|n| n.raw_fd());
        let (template, restoring) = match claim {
            Claim::Restore(t) => (t, true),
            Claim::Build(mut guard) => {
                let t = Template::build(BuildSpec {
                    engine: &function.engine,
                    program: function.launch.program.clone(),
                    args: function.launch.args.clone(),
                    cwd: package.root.clone(),
                    env: env.clone(),
                    netns,
                    sink: self.logs.sink(),
                    memory_name: format!("{}-template", self.api.pod_name),
                    memory_bytes: package.config.memory_bytes(),
                    request_id: trace_id.to_string(),
                    deadline,
                })
                .await?;
                *guard = Some(t.clone());
                (t, false)
            }
        };
        let forked = template
            .fork(ForkRequest {
                env: &env,
                cwd: &package.root,
                memory: &self.memory,
                netns,
                request_id: trace_id,
                hook: restoring,
            })
            .await
            .map_err(|e| InitError::new(Status::Failure, "Runtime.ExitError", e))?;
        Ok(process::adopt(
            forked.pid,
            Role::Runtime,
            forked.stdout,
            forked.stderr,
            forked.exit,
            &self.memory,
            self.logs.sink(),
            &self.tracker,
        ))
    }
}
