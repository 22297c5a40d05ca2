//! The instance lifecycle as a pure state machine, so every transition is checked in one place
//! and unit-tested without processes.
//!
//! ```text
//! Initializing ──ready──▶ Idle ◀──finish── Busy(n)
//!      │                   │ ▲──begin──────┘ │
//!      └──fail──▶ Dead ◀───┴──shutdown/fault─┘
//! ```

/// Where an instance is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum State {
    /// Processes starting, extensions registering, runtime loading.
    Initializing,
    /// Ready, no invocation in flight.
    Idle,
    /// Serving this many invocations.
    Busy(u32),
    /// SIGTERM sent, draining.
    ShuttingDown,
    /// Gone; never used again.
    Dead,
}

/// What happens to an instance.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transition {
    /// Init finished successfully.
    Ready,
    /// An invocation starts; `limit` is the instance's `concurrent_num`.
    Begin {
        /// Most invocations at once.
        limit: u32,
    },
    /// An invocation ended normally (success or handler error).
    Finish,
    /// Init failed, a fault happened, or the processes died.
    Fail,
    /// Orderly shutdown starts.
    Shutdown,
    /// Shutdown done.
    Stopped,
}

/// A transition that is not allowed in the current state.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("instance is {state:?}: cannot {transition:?}")]
pub struct InvalidTransition {
    /// State at the time.
    pub state: State,
    /// Refused transition.
    pub transition: Transition,
}

impl State {
    /// Lower-case name for listings (`initializing`, `idle`, `busy`, `shutting_down`, `dead`).
    pub fn name(self) -> &'static str {
        match self {
            State::Initializing => "initializing",
            State::Idle => "idle",
            State::Busy(_) => "busy",
            State::ShuttingDown => "shutting_down",
            State::Dead => "dead",
        }
    }

    /// The next state, or why not.
    pub fn apply(self, t: Transition) -> Result<State, InvalidTransition> {
        use State::*;
        use Transition as T;
        let next = match (self, t) {
            (Initializing, T::Ready) => Idle,
            (Idle, T::Begin { limit }) if limit >= 1 => Busy(1),
            (Busy(n), T::Begin { limit }) if n < limit => Busy(n + 1),
            (Busy(1), T::Finish) => Idle,
            (Busy(n), T::Finish) if n > 1 => Busy(n - 1),
            (Initializing | Idle | Busy(_) | ShuttingDown, T::Fail) => Dead,
            (Initializing | Idle | Busy(_), T::Shutdown) => ShuttingDown,
            (ShuttingDown, T::Stopped) => Dead,
            (state, transition) => return Err(InvalidTransition { state, transition }),
        };
        Ok(next)
    }

    /// Whether an invocation could start now under `limit`.
    pub fn can_begin(self, limit: u32) -> bool {
        match self {
            State::Idle => limit >= 1,
            State::Busy(n) => n < limit,
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::State::*;
    use super::Transition as T;

    #[test]
    fn normal_life() {
        let s = Initializing.apply(T::Ready).unwrap();
        let s = s.apply(T::Begin { limit: 1 }).unwrap();
        assert_eq!(s, Busy(1));
        let s = s.apply(T::Finish).unwrap();
        assert_eq!(s, Idle);
        let s = s.apply(T::Shutdown).unwrap();
        assert_eq!(s.apply(T::Stopped).unwrap(), Dead);
    }

    #[test]
    fn concurrency_is_bounded() {
        let s = Idle.apply(T::Begin { limit: 2 }).unwrap();
        let s = s.apply(T::Begin { limit: 2 }).unwrap();
        assert_eq!(s, Busy(2));
        assert!(!s.can_begin(2));
        assert!(s.apply(T::Begin { limit: 2 }).is_err());
        assert_eq!(s.apply(T::Finish).unwrap(), Busy(1));
    }

    #[test]
    fn no_invocation_before_ready_or_after_death() {
        assert!(Initializing.apply(T::Begin { limit: 1 }).is_err());
        assert!(Dead.apply(T::Begin { limit: 1 }).is_err());
        assert!(ShuttingDown.apply(T::Begin { limit: 1 }).is_err());
        assert!(Dead.apply(T::Ready).is_err());
    }

    #[test]
    fn faults_end_any_live_state() {
        for s in [Initializing, Idle, Busy(3), ShuttingDown] {
            assert_eq!(s.apply(T::Fail).unwrap(), Dead);
        }
        assert!(Dead.apply(T::Fail).is_err());
    }

    #[test]
    fn finish_without_begin_is_refused() {
        assert!(Idle.apply(T::Finish).is_err());
        assert!(Initializing.apply(T::Finish).is_err());
    }
}
