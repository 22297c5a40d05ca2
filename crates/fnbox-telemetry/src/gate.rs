//! [`FreezeGate`]: whether the execution environment a subscriber lives in is frozen.
//!
//! Lambda freezes the whole environment between invocations; a listener in a frozen extension
//! cannot answer. Delivery therefore waits for the next thaw before it POSTs a batch, and a
//! batch already in flight when the freeze comes is neither lost nor counted as a failure: its
//! request timeout only counts time while the environment is thawed ([`FreezeGate::timeout`]).
//! A gate nobody freezes (the default) costs one atomic load per batch.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::time::Instant;

/// Shared frozen/thawed flag of one execution environment. Cheap to clone; every clone sees
/// the same state.
#[derive(Clone, Debug)]
pub struct FreezeGate {
    state: Arc<watch::Sender<bool>>,
}

impl Default for FreezeGate {
    fn default() -> Self {
        Self::new()
    }
}

impl PartialEq for FreezeGate {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.state, &other.state)
    }
}

/// The time limit of [`FreezeGate::timeout`] passed (counting thawed time only).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Elapsed;

impl FreezeGate {
    /// A thawed gate.
    pub fn new() -> Self {
        Self {
            state: Arc::new(watch::channel(false).0),
        }
    }

    /// Marks the environment frozen (`true`) or thawed (`false`).
    pub fn set_frozen(&self, frozen: bool) {
        self.state.send_if_modified(|s| {
            let changed = *s != frozen;
            *s = frozen;
            changed
        });
    }

    /// Whether the environment is frozen now.
    pub fn is_frozen(&self) -> bool {
        *self.state.borrow()
    }

    /// Resolves at once when thawed, else at the next thaw.
    pub async fn thawed(&self) {
        let mut rx = self.state.subscribe();
        let _ = rx.wait_for(|frozen| !*frozen).await;
    }

    /// Runs `fut` with a limit of `limit` of thawed time: the clock stops while the gate is
    /// frozen and resumes at the thaw.
    pub async fn timeout<F: Future>(&self, limit: Duration, fut: F) -> Result<F::Output, Elapsed> {
        let mut rx = self.state.subscribe();
        let mut left = limit;
        tokio::pin!(fut);
        loop {
            if *rx.borrow_and_update() {
                // Frozen: only the future (or a thaw) can end the wait.
                tokio::select! {
                    out = &mut fut => return Ok(out),
                    changed = rx.changed() => {
                        if changed.is_err() {
                            return Ok(fut.await);
                        }
                    }
                }
                continue;
            }
            let since = Instant::now();
            tokio::select! {
                out = &mut fut => return Ok(out),
                () = tokio::time::sleep(left) => return Err(Elapsed),
                changed = rx.changed() => {
                    left = left.saturating_sub(since.elapsed());
                    if changed.is_err() {
                        return tokio::time::timeout(left, fut).await.map_err(|_| Elapsed);
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn the_clock_stops_while_frozen() {
        let gate = FreezeGate::new();
        let g = gate.clone();
        let work = tokio::spawn(async move {
            g.timeout(
                Duration::from_secs(1),
                tokio::time::sleep(Duration::from_secs(5)),
            )
            .await
        });
        tokio::time::sleep(Duration::from_millis(600)).await;
        gate.set_frozen(true);
        // Frozen for 4.5 s: the future completes (5 s) before 1 s of thawed time has passed.
        tokio::time::sleep(Duration::from_millis(4500)).await;
        gate.set_frozen(false);
        assert_eq!(work.await.unwrap(), Ok(()));
    }

    #[tokio::test(start_paused = true)]
    async fn thawed_time_still_runs_out() {
        let gate = FreezeGate::new();
        let g = gate.clone();
        let work = tokio::spawn(async move {
            g.timeout(Duration::from_secs(1), std::future::pending::<()>())
                .await
        });
        tokio::time::sleep(Duration::from_millis(600)).await;
        gate.set_frozen(true);
        tokio::time::sleep(Duration::from_secs(60)).await;
        assert!(!work.is_finished(), "no time passes while frozen");
        gate.set_frozen(false);
        let started = Instant::now();
        assert_eq!(work.await.unwrap(), Err(Elapsed));
        let rest = started.elapsed();
        assert!(
            rest >= Duration::from_millis(390) && rest <= Duration::from_millis(410),
            "the remaining 400 ms ran after the thaw: {rest:?}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn thawed_waits_for_the_thaw() {
        let gate = FreezeGate::new();
        gate.thawed().await;
        gate.set_frozen(true);
        assert!(gate.is_frozen());
        let g = gate.clone();
        let wait = tokio::spawn(async move { g.thawed().await });
        tokio::time::sleep(Duration::from_secs(10)).await;
        assert!(!wait.is_finished());
        gate.set_frozen(false);
        wait.await.unwrap();
    }
}
