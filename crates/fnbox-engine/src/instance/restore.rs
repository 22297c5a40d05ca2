//! The restore phase of an instance (issue 18): how a snapshot function's runtime process is
//! started ([`crate::snapshot`] has the template), and how restore failures read.

use std::sync::Mutex;
use std::time::Duration;

use bytes::Bytes;
use chrono::Utc;
use tokio::sync::{oneshot, watch};

use super::process::{self, Role, Supervised};
use super::{InitError, Instance};
use crate::engine::Function;
use crate::snapshot::{BuildSpec, Claim, ForkRequest, Template, RESTORE_FAILED, RESTORE_TIMEOUT};
use crate::telemetry::{Event, Phase, ReportMetrics, Status};

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
                // The template runs outside the instance's mount namespace (see
                // `snapshot::Template`): it sees the code at its host path.
                let mut template_env = env.clone();
                for (k, v) in template_env.iter_mut() {
                    if k == "RUNTIME_CODE_ROOT" {
                        *v = package.root.display().to_string();
                    }
                }
                let t = Template::build(BuildSpec {
                    engine: &function.engine,
                    program: function.launch.program.clone(),
                    args: function.launch.args.clone(),
                    cwd: package.root.clone(),
                    env: template_env,
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
                sandbox: self.sandbox.as_deref(),
            })
            .await
            .map_err(|e| InitError::new(Status::Failure, "Runtime.ExitError", e))?;
        Ok(process::adopt(
            forked,
            Role::Runtime,
            &self.memory,
            self.logs.sink(),
            &self.tracker,
        ))
    }
}

/// Lambda resume in place: the runtime's side of the restore (`GET …/runtime/restore/next`,
/// `POST …/runtime/restore/error`), as the dialect's routes call it.
pub struct RestoreGate {
    reached: watch::Sender<bool>,
    released: watch::Sender<bool>,
    failed: Mutex<Option<oneshot::Sender<(String, Bytes)>>>,
    failures: Mutex<Option<oneshot::Receiver<(String, Bytes)>>>,
}

impl Default for RestoreGate {
    fn default() -> Self {
        let (tx, rx) = oneshot::channel();
        Self {
            reached: watch::channel(false).0,
            released: watch::channel(false).0,
            failed: Mutex::new(Some(tx)),
            failures: Mutex::new(Some(rx)),
        }
    }
}

impl RestoreGate {
    /// `restore/next`: the runtime finished init (its before-snapshot hooks ran); returns once
    /// the instance is restored (the route then answers 200 with an empty body).
    pub async fn next(&self) {
        self.reached.send_replace(true);
        let mut rx = self.released.subscribe();
        let _ = rx.wait_for(|r| *r).await;
    }

    /// `restore/error`: the runtime's after-restore hooks failed; false when no restore is
    /// under way (nothing released yet, or it already ended).
    pub fn fail(&self, error_type: String, body: Bytes) -> bool {
        if !*self.released.borrow() {
            return false;
        }
        match self.failed.lock().expect("restore gate lock").take() {
            Some(tx) => tx.send((error_type, body)).is_ok(),
            None => false,
        }
    }

    /// Resolves once the runtime called `restore/next`.
    pub async fn reached(&self) {
        let mut rx = self.reached.subscribe();
        let _ = rx.wait_for(|r| *r).await;
    }

    /// The engine restored the instance: `restore/next` returns (and `restore/error` is
    /// accepted from now on). Public for tests that play the engine
    /// ([`super::InstanceApi::detached`]).
    pub fn release(&self) {
        self.released.send_replace(true);
    }
}

/// The SnapStart limit for loading the runtime and running the after-restore hooks.
pub const LAMBDA_RESTORE_TIMEOUT: Duration = Duration::from_secs(10);

impl Instance {
    /// Waits for init to end in resume-in-place mode: the runtime calls `restore/next`, or asks
    /// for an invocation without (a runtime that does not implement SnapStart).
    pub(super) async fn reached_restore_point(&self) {
        self.api.restore.reached().await
    }

    /// Lambda resume in place, right after init: `restoreStart`, `restore/next` returns, the
    /// runtime's after-restore hooks run until its first `/invocation/next`
    /// (`restoreRuntimeDone`, `restoreReport`). A runtime that never called `restore/next` gets
    /// a no-op restore reported as a success.
    pub(super) async fn resume_in_place(&self, trace_id: &str) -> Result<(), InitError> {
        let bus = &self.api.bus;
        let started = tokio::time::Instant::now();
        let start_wall = Utc::now();
        bus.publish(Event::Start {
            phase: Phase::Restore,
            time: start_wall,
            trace_id: trace_id.to_string(),
            trace: None,
        });
        self.memory.reset_peak();
        let gate = &self.api.restore;
        let result = if !*gate.reached.borrow() {
            Ok(())
        } else {
            let failures = gate.failures.lock().expect("restore gate lock").take();
            let mut polls = self.api.runtime.polls();
            let runtime = self.runtime();
            gate.release();
            let exited = async {
                match &runtime {
                    Some(r) => r.exited().await,
                    None => std::future::pending().await,
                }
            };
            let failed = async {
                match failures {
                    Some(rx) => rx.await.ok(),
                    None => None,
                }
            };
            tokio::select! {
                _ = polls.wait_for(|n| *n > 0) => Ok(()),
                Some((error_type, body)) = failed => {
                    let mut err = InitError::new(Status::Error, &error_type, format!(
                        "the runtime's after-restore hooks failed ({error_type}): {}",
                        String::from_utf8_lossy(&body)));
                    err.body = Some(body);
                    Err(err)
                }
                status = exited => Err(InitError::new(Status::Failure, "Runtime.ExitError", format!(
                    "the runtime exited during the restore ({})", process::describe_exit(status)))),
                _ = tokio::time::sleep(LAMBDA_RESTORE_TIMEOUT) => Err(InitError::new(Status::Timeout, RESTORE_TIMEOUT, format!(
                    "the restore timed out after {}s: the runtime's after-restore hooks did not finish (it never asked for an invocation)",
                    LAMBDA_RESTORE_TIMEOUT.as_secs()))),
            }
        };
        self.sync_runtime_output().await;
        let (status, error_type) = match &result {
            Ok(()) => (Status::Success, None),
            Err(e) => (e.status, Some(e.error_type.clone())),
        };
        bus.publish(Event::RuntimeDone {
            phase: Phase::Restore,
            time: Utc::now(),
            trace_id: trace_id.to_string(),
            status,
            // RIE reports a timed-out restore's runtime as `Runtime.Unknown`.
            error_type: match status {
                Status::Timeout => Some("Runtime.Unknown".into()),
                _ => error_type.clone(),
            },
            spans: Vec::new(),
            produced_bytes: None,
        });
        bus.publish(Event::Report {
            phase: Phase::Restore,
            start: start_wall,
            end: Utc::now(),
            trace_id: trace_id.to_string(),
            status,
            error_type,
            metrics: ReportMetrics::new(
                started.elapsed(),
                self.memory.peak_bytes(),
                self.memory_size_mb,
            ),
            pod_name: self.api.pod_name.clone(),
        });
        result.map_err(|mut e| {
            e.restore = true;
            e
        })
    }
}
