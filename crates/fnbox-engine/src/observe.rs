//! Engine-wide observation: every telemetry event of every instance, every lifecycle state
//! change and every refused invocation, tagged with the function and the instance, for
//! in-process consumers that look at the whole engine (OpenTelemetry export, the browser
//! timeline, the extension test harness). Extensions keep their own per-instance delivery;
//! this is a second, in-process view of the same events.
//!
//! # Design
//! A `tokio::sync::broadcast` channel: bounded, and a consumer that falls behind loses the
//! oldest events (it sees `RecvError::Lagged(n)` and can count them) instead of slowing any
//! instance. With no consumer, publishing costs one atomic load.

use std::sync::Arc;

use tokio::sync::broadcast;

use crate::lifecycle::State;
use crate::telemetry::Event;

/// Events kept for a consumer that falls behind.
pub const OBSERVE_CAPACITY: usize = 16_384;

/// One thing that happened.
#[derive(Clone, Debug)]
pub enum Observation {
    /// A telemetry event, as the instance's bus published it (before any dialect encoding).
    Telemetry(Arc<Event>),
    /// The instance moved to this lifecycle state (`pod_name` is the instance).
    State(State),
    /// An invocation was refused because every instance was busy (FSS.0429 /
    /// `TooManyRequestsException`); `pod_name` is empty.
    Refused,
}

/// An [`Observation`] with where it happened.
#[derive(Clone, Debug)]
pub struct Observed {
    /// Function name.
    pub function: Arc<str>,
    /// The instance's `podName` (empty for function-level observations).
    pub pod_name: Arc<str>,
    /// What happened.
    pub what: Observation,
}

/// The sending side, shared by the engine's instances and pools.
#[derive(Clone, Debug)]
pub struct Observers {
    tx: broadcast::Sender<Arc<Observed>>,
}

impl Default for Observers {
    fn default() -> Self {
        Self {
            tx: broadcast::channel(OBSERVE_CAPACITY).0,
        }
    }
}

impl Observers {
    /// A new consumer; sees what is sent from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<Observed>> {
        self.tx.subscribe()
    }

    /// Whether anyone is looking.
    pub fn active(&self) -> bool {
        self.tx.receiver_count() > 0
    }

    /// Sends when anyone is looking; never blocks.
    pub fn send(&self, function: &Arc<str>, pod_name: &Arc<str>, what: Observation) {
        if self.active() {
            let _ = self.tx.send(Arc::new(Observed {
                function: function.clone(),
                pod_name: pod_name.clone(),
                what,
            }));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nothing_is_kept_without_a_consumer_and_a_slow_one_lags() {
        let o = Observers::default();
        let f: Arc<str> = "f".into();
        let p: Arc<str> = "p".into();
        o.send(&f, &p, Observation::Refused);
        let mut rx = o.subscribe();
        assert!(rx.try_recv().is_err(), "sent before anyone looked");
        for _ in 0..OBSERVE_CAPACITY + 5 {
            o.send(&f, &p, Observation::Refused);
        }
        assert!(matches!(
            rx.try_recv(),
            Err(broadcast::error::TryRecvError::Lagged(5))
        ));
    }
}
