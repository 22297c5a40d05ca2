//! Freeze and thaw of an idle instance (Lambda: lambda-facts §2.2, docs/design.md "Freeze").
//!
//! The environment is frozen when the runtime and every extension wait for their next event:
//! after init (the runtime asked for work, every extension called `event/next`) and at the end
//! of each invocation (which for Lambda ends exactly there). It is thawed for the next
//! invocation, for shutdown and before any kill. While frozen, telemetry deliveries wait
//! ([`fnbox_telemetry::FreezeGate`]): an invocation's last records reach the extensions at the
//! next thaw, as on Lambda.
//!
//! Modes ([`fnbox_limits::FreezeMode`]): the cgroup freezer (v2 `cgroup.freeze`, v1 `freezer`)
//! when there is one, else SIGSTOP / SIGCONT of the instance's process groups.

use std::sync::Mutex;

use fnbox_limits::{FreezeController, Freezer, MemoryGroup};
use fnbox_telemetry::FreezeGate;
use nix::sys::signal::Signal;

use super::process::Supervised;

/// One instance's freeze state.
pub(crate) struct Freeze {
    /// `None`: this instance is never frozen (dialect or `freeze: false`).
    freezer: Option<Freezer>,
    gate: FreezeGate,
    /// Serialises freeze and thaw; `true` while frozen.
    frozen: Mutex<bool>,
}

impl Freeze {
    /// An instance that is never frozen.
    pub(crate) fn off(gate: FreezeGate) -> Self {
        Freeze {
            freezer: None,
            gate,
            frozen: Mutex::new(false),
        }
    }

    /// An instance frozen when idle, in `controller`'s mode for the processes of `memory`.
    /// Falls back to signals (and says so) when its cgroup group cannot be made.
    pub(crate) fn new(
        controller: &FreezeController,
        memory: &MemoryGroup,
        gate: FreezeGate,
    ) -> Self {
        let freezer = controller.create(memory).unwrap_or_else(|e| {
            tracing::warn!(group = memory.name(), error = %e, "cannot create the freezer group; freezing with SIGSTOP/SIGCONT");
            Freezer::Signals
        });
        Freeze {
            freezer: Some(freezer),
            gate,
            frozen: Mutex::new(false),
        }
    }

    /// Whether this instance is frozen when idle.
    pub(crate) fn enabled(&self) -> bool {
        self.freezer.is_some()
    }

    /// Whether it is frozen now.
    pub(crate) fn is_frozen(&self) -> bool {
        *self.frozen.lock().expect("freeze lock")
    }

    /// Freezes the processes (the caller knows every one waits for its next event).
    pub(crate) fn freeze<'a>(&self, procs: impl Iterator<Item = &'a Supervised>) {
        let Some(freezer) = &self.freezer else {
            return;
        };
        let mut frozen = self.frozen.lock().expect("freeze lock");
        if *frozen {
            return;
        }
        // Deliveries hold first, so none starts a POST to a listener that is about to stop.
        self.gate.set_frozen(true);
        match freezer {
            Freezer::Signals => {
                for p in procs {
                    p.signal_group(Signal::SIGSTOP);
                }
            }
            cgroup => {
                if let Err(e) = cgroup.freeze() {
                    tracing::warn!(error = %e, "cannot freeze the instance; it stays thawed");
                    self.gate.set_frozen(false);
                    return;
                }
            }
        }
        *frozen = true;
    }

    /// Thaws the processes (no-op when not frozen).
    pub(crate) fn thaw<'a>(&self, procs: impl Iterator<Item = &'a Supervised>) {
        let Some(freezer) = &self.freezer else {
            return;
        };
        let mut frozen = self.frozen.lock().expect("freeze lock");
        if !*frozen {
            return;
        }
        match freezer {
            Freezer::Signals => {
                for p in procs {
                    p.signal_group(Signal::SIGCONT);
                }
            }
            cgroup => {
                if let Err(e) = cgroup.thaw() {
                    tracing::warn!(error = %e, "cannot thaw the instance");
                }
            }
        }
        *frozen = false;
        self.gate.set_frozen(false);
    }

    /// Removes the cgroup freezer group (after the processes are gone).
    pub(crate) fn remove(&self) {
        if let Some(f) = &self.freezer {
            f.remove();
        }
    }
}
