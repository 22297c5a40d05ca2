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
//!
//! A consumer woken by every send costs the invoke path a wake-up per observation per
//! consumer: with the exporters and the timeline both looking, two tasks made runnable at
//! once make tokio unpark the other worker (an `eventfd` write and a context switch), several
//! times per invocation. Consumers therefore read through [`Paced`]: an observation that
//! arrives while the consumer is idle wakes it at once, and while observations keep coming it
//! collects them every [`PACE`] instead of being woken for each.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::broadcast;

use crate::lifecycle::State;
use crate::telemetry::Event;

/// Events kept for a consumer that falls behind.
pub const OBSERVE_CAPACITY: usize = 16_384;

/// How often a busy [`Paced`] consumer collects what arrived. A burst of a million lines a
/// second fills 2,000 of the [`OBSERVE_CAPACITY`] slots in that time.
pub const PACE: Duration = Duration::from_millis(2);

/// A broadcast receiver that is woken per observation only when idle (see the module docs).
#[derive(Debug)]
pub struct Paced<T> {
    rx: broadcast::Receiver<T>,
    pace: Duration,
    /// The last call found something: the next waits out the pace instead of a wake-up.
    busy: bool,
}

impl<T: Clone> Paced<T> {
    /// Paces `rx` at `pace`; a zero pace wakes the consumer for every observation (a
    /// consumer that must see them in step with another source).
    pub fn new(rx: broadcast::Receiver<T>, pace: Duration) -> Self {
        Self {
            rx,
            pace,
            busy: false,
        }
    }

    /// The next observation, as [`broadcast::Receiver::recv`] (same errors, cancel-safe): at
    /// once when one is waiting; after the pace when the last call found one; otherwise at
    /// the next send.
    pub async fn recv(&mut self) -> Result<T, broadcast::error::RecvError> {
        use broadcast::error::{RecvError, TryRecvError};
        if self.pace.is_zero() {
            return self.rx.recv().await;
        }
        loop {
            match self.rx.try_recv() {
                Ok(v) => {
                    self.busy = true;
                    return Ok(v);
                }
                Err(TryRecvError::Lagged(n)) => return Err(RecvError::Lagged(n)),
                Err(TryRecvError::Closed) => return Err(RecvError::Closed),
                Err(TryRecvError::Empty) => {}
            }
            if self.busy {
                // One pause, then a look: still nothing means idle (a cancelled pause too).
                self.busy = false;
                tokio::time::sleep(self.pace).await;
                continue;
            }
            let v = self.rx.recv().await;
            self.busy = v.is_ok();
            return v;
        }
    }

    /// What is waiting now, without waiting (the shutdown drain).
    pub fn try_recv(&mut self) -> Result<T, broadcast::error::TryRecvError> {
        self.rx.try_recv()
    }
}

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

    /// Sends `v` on `tx` after `delay`.
    fn send_after(
        tx: &broadcast::Sender<u32>,
        delay: Duration,
        v: u32,
    ) -> tokio::task::JoinHandle<()> {
        let tx = tx.clone();
        tokio::spawn(async move {
            tokio::time::sleep(delay).await;
            tx.send(v).unwrap();
        })
    }

    #[tokio::test(start_paused = true)]
    async fn a_paced_consumer_is_woken_at_once_when_idle_and_collects_every_pace_when_busy() {
        let (tx, rx) = broadcast::channel::<u32>(64);
        let mut rx = Paced::new(rx, PACE);
        // Idle: the first send is seen without waiting for the pace.
        let t = tokio::time::Instant::now();
        let sender = send_after(&tx, Duration::from_millis(7), 1);
        assert_eq!(rx.recv().await.unwrap(), 1);
        assert_eq!(t.elapsed(), Duration::from_millis(7));
        sender.await.unwrap();
        // Busy: what is waiting comes at once; then the next comes after one pace, not at
        // its send.
        tx.send(2).unwrap();
        assert_eq!(rx.recv().await.unwrap(), 2);
        let t = tokio::time::Instant::now();
        let sender = send_after(&tx, Duration::from_micros(500), 3);
        assert_eq!(rx.recv().await.unwrap(), 3);
        assert_eq!(t.elapsed(), PACE, "collected at the pace");
        sender.await.unwrap();
        // A pace with nothing in it makes it idle again: the next send wakes it at once.
        let t = tokio::time::Instant::now();
        let sender = send_after(&tx, Duration::from_millis(50), 4);
        assert_eq!(rx.recv().await.unwrap(), 4);
        assert_eq!(t.elapsed(), Duration::from_millis(50));
        sender.await.unwrap();
        // Lag and close are passed on.
        for i in 0..70 {
            tx.send(i).unwrap();
        }
        assert!(matches!(
            rx.recv().await,
            Err(broadcast::error::RecvError::Lagged(6))
        ));
        drop(tx);
        let mut n = 0;
        while rx.recv().await.is_ok() {
            n += 1;
        }
        assert_eq!(n, 64);
    }

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

    #[tokio::test(start_paused = true)]
    async fn a_zero_pace_is_woken_by_every_send() {
        let (tx, rx) = broadcast::channel::<u32>(8);
        let mut rx = Paced::new(rx, Duration::ZERO);
        tx.send(1).unwrap();
        assert_eq!(rx.recv().await.unwrap(), 1);
        let t = tokio::time::Instant::now();
        // tokio's timer counts whole milliseconds; PACE is two.
        let sender = send_after(&tx, Duration::from_millis(1), 2);
        assert_eq!(rx.recv().await.unwrap(), 2);
        assert_eq!(t.elapsed(), Duration::from_millis(1), "not held to a pace");
        sender.await.unwrap();
    }
}
