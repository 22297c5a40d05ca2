//! The two shutdown orders ([`crate::ShutdownOrder`]) up to the final SIGKILL, which
//! `Instance::terminate` sends to whatever is left.
//!
//! - **Extensions notified first** (CONTRACT §3, FunctionGraph): pull extensions get SHUTDOWN,
//!   the runtime SIGTERM; its last lines and the telemetry are flushed within the grace, then
//!   the extensions get SIGTERM.
//! - **Runtime first** (Lambda, lambda-facts §2.2 item 9, AWS "Lambda execution environment
//!   lifecycle" shutdown phase): the budget is 2,000 ms with an external extension (of which up
//!   to 300 ms, 500 ms with an internal extension too, for the runtime), 500 ms with only
//!   internal extensions, 0 ms without extensions (the runtime is SIGKILLed at once); the
//!   engine's grace caps it. The runtime gets SIGTERM, then SIGKILL when its share is spent;
//!   the platform's final telemetry (the last invocation's report, the runtime's last lines)
//!   is delivered; only then is SHUTDOWN released to each external extension that asked for it
//!   (`deadlineMs` = end of the budget), while external extensions that did not ask for it are
//!   SIGKILLed. An extension is done when it exits or asks for its next event.

use std::time::Duration;

use chrono::Utc;
use nix::sys::signal::Signal;
use tokio::time::Instant;

use super::extensions::ShutdownReason;
use super::process::{Role, Supervised};
use super::{Instance, Procs};

/// Lambda's shutdown budget with at least one external extension.
const LAMBDA_WITH_EXTERNAL: Duration = Duration::from_millis(2000);
/// Lambda's shutdown budget with internal extensions only.
const LAMBDA_INTERNAL_ONLY: Duration = Duration::from_millis(500);
/// The runtime's share when an external extension is registered.
const LAMBDA_RUNTIME_SHARE: Duration = Duration::from_millis(300);
/// The runtime's share when an internal extension is registered too.
const LAMBDA_RUNTIME_SHARE_INTERNAL: Duration = Duration::from_millis(500);
/// Longest wait for the runtime's last output lines once it is gone.
const LAST_LINES: Duration = Duration::from_millis(200);

/// Lambda's shutdown budget: (total, the runtime's share).
pub(crate) fn lambda_budget(
    grace: Duration,
    external: bool,
    internal: bool,
) -> (Duration, Duration) {
    let (total, runtime) = match (external, internal) {
        (true, false) => (LAMBDA_WITH_EXTERNAL, LAMBDA_RUNTIME_SHARE),
        (true, true) => (LAMBDA_WITH_EXTERNAL, LAMBDA_RUNTIME_SHARE_INTERNAL),
        (false, true) => (LAMBDA_INTERNAL_ONLY, LAMBDA_INTERNAL_ONLY),
        (false, false) => (Duration::ZERO, Duration::ZERO),
    };
    let total = total.min(grace);
    (total, runtime.min(total))
}

impl Instance {
    /// CONTRACT §3's order (FunctionGraph).
    pub(super) async fn stop_extensions_notified_first(
        &self,
        reason: ShutdownReason,
        procs: &Procs,
    ) {
        let deadline = Instant::now() + self.grace;
        // SHUTDOWN goes to the pull extensions that asked for it before any signal.
        let deadline_epoch_ms =
            Utc::now().timestamp_millis().max(0) as u64 + self.grace.as_millis() as u64;
        let shutdowns = self
            .api
            .extensions
            .release_shutdown(reason, deadline_epoch_ms);
        if let Some(runtime) = &procs.runtime {
            runtime.signal_group(Signal::SIGTERM);
        }
        let handled = self.shutdown_handled(shutdowns, procs);
        // What the runtime prints until it exits is still telemetry: wait for its last
        // lines (within the grace period) before the final flush.
        if let Some(runtime) = &procs.runtime {
            let _ = tokio::time::timeout_at(deadline, runtime.exited()).await;
            runtime.output_closed(LAST_LINES).await;
        }
        // The telemetry listener lives in an extension: flush before the extensions go.
        let _ = futures::join!(
            self.api.bus.close(self.grace),
            tokio::time::timeout_at(deadline, handled)
        );
        for ext in &procs.extensions {
            ext.signal_group(Signal::SIGTERM);
        }
        let all_exited = async {
            for p in procs.all() {
                p.exited().await;
            }
        };
        let floor = Instant::now() + LAST_LINES;
        if tokio::time::timeout_at(deadline.max(floor), all_exited)
            .await
            .is_err()
        {
            tracing::debug!(pod = %self.api.pod_name, "processes still running after the grace period: SIGKILL");
        }
    }

    /// Lambda's documented order (see the module documentation).
    pub(super) async fn stop_runtime_first(&self, reason: ShutdownReason, procs: &Procs) {
        let registered = self.api.extensions.registered();
        let external = registered.iter().any(|r| !r.internal);
        let internal = registered.iter().any(|r| r.internal);
        let (total, runtime_share) = lambda_budget(self.grace, external, internal);
        let started = Instant::now();
        let deadline = started + total;

        // 1. The runtime: SIGTERM, SIGKILL when its share is spent (at once without budget).
        if let Some(runtime) = &procs.runtime {
            if runtime_share.is_zero() {
                runtime.signal_group(Signal::SIGKILL);
            } else {
                runtime.signal_group(Signal::SIGTERM);
                if tokio::time::timeout(runtime_share, runtime.exited())
                    .await
                    .is_err()
                {
                    tracing::debug!(pod = %self.api.pod_name, "runtime still running after its shutdown share: SIGKILL");
                    runtime.signal_group(Signal::SIGKILL);
                }
            }
            // Its last lines are still telemetry.
            runtime.output_closed(LAST_LINES).await;
        }

        // 2. The platform's final telemetry reaches the subscribers before SHUTDOWN: at most
        // half of what is left, so the extensions keep the other half for SHUTDOWN.
        let left = deadline.saturating_duration_since(Instant::now());
        let flush = (left / 2).max(LAST_LINES);
        let stats = self.api.bus.close(flush).await;
        tracing::debug!(pod = %self.api.pod_name, subscribers = stats.len(), flushed_in_ms = started.elapsed().as_millis() as u64, "final telemetry flushed before SHUTDOWN");

        // 3. SHUTDOWN to the external extensions that asked for it; the others go at once.
        let deadline = deadline.max(Instant::now() + LAST_LINES);
        let deadline_epoch_ms = Utc::now().timestamp_millis().max(0) as u64
            + deadline
                .saturating_duration_since(Instant::now())
                .as_millis() as u64;
        let shutdowns = self
            .api
            .extensions
            .release_shutdown(reason, deadline_epoch_ms);
        for ext in &procs.extensions {
            let asked =
                matches!(&*ext.role, Role::Extension(n) if shutdowns.iter().any(|(s, _)| s == n));
            if !asked {
                ext.signal_group(Signal::SIGKILL);
            }
        }
        let handled = self.shutdown_handled(shutdowns, procs);
        if tokio::time::timeout_at(deadline, handled).await.is_err() {
            tracing::debug!(pod = %self.api.pod_name, "extensions still busy with SHUTDOWN at the deadline: SIGKILL");
        }
    }

    /// Completes when every extension given SHUTDOWN asked for its next event or exited.
    fn shutdown_handled(
        &self,
        shutdowns: Vec<(String, futures::future::BoxFuture<'static, ()>)>,
        procs: &Procs,
    ) -> impl std::future::Future<Output = ()> + Send + 'static {
        let waits: Vec<_> = shutdowns
            .into_iter()
            .map(|(name, acked)| {
                let proc: Option<Supervised> = procs
                    .extensions
                    .iter()
                    .find(|p| matches!(&*p.role, Role::Extension(n) if *n == name))
                    .cloned();
                async move {
                    match proc {
                        Some(p) => {
                            tokio::select! {
                                _ = acked => {}
                                _ = p.exited() => {}
                            }
                        }
                        None => acked.await,
                    }
                }
            })
            .collect();
        async move {
            futures::future::join_all(waits).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lambda_budgets_follow_the_documented_limits() {
        let grace = Duration::from_secs(2);
        let ms = Duration::from_millis;
        assert_eq!(lambda_budget(grace, true, false), (ms(2000), ms(300)));
        assert_eq!(lambda_budget(grace, true, true), (ms(2000), ms(500)));
        assert_eq!(lambda_budget(grace, false, true), (ms(500), ms(500)));
        assert_eq!(lambda_budget(grace, false, false), (ms(0), ms(0)));
        // The engine's grace caps everything.
        assert_eq!(lambda_budget(ms(200), true, false), (ms(200), ms(200)));
    }
}
