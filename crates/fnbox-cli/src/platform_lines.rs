//! The platform's own log lines `fnbox run` prints around each invocation, in the package's
//! dialect: FunctionGraph's `Start invoke request …` / `Finish invoke request …`, or Lambda's
//! `EXTENSION …` (once per registered extension, at the end of init), `START …`, `END …` and
//! `REPORT …` (with `Init Duration` on a cold start).
//!
//! The `EXTENSION` lines are read from the engine's observation seam ([`Engine::observe`]):
//! a receiver is taken just before an instance starts and drained once it is ready, so the
//! lines come from the same `platform.extension` events extensions' subscribers get.

use std::sync::Arc;

use fnbox_engine::telemetry::{Event, ReportMetrics};
use fnbox_engine::{Engine, Observation, Observed};
use fnbox_package::{Dialect, Package};
use fnbox_wire::fg::{finish_invoke_line, start_invoke_line};
use fnbox_wire::lambda::log_lines;
use tokio::sync::broadcast;

/// Which platform's lines to print.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum PlatformLines {
    FunctionGraph,
    Lambda,
}

/// Watches an instance's init for its extensions' `Ready` states (Lambda only).
pub(crate) struct InitWatch(Option<broadcast::Receiver<Arc<Observed>>>);

impl PlatformLines {
    pub(crate) fn for_package(package: &Package) -> Self {
        match package.config.dialect {
            Dialect::FunctionGraph => Self::FunctionGraph,
            Dialect::Lambda => Self::Lambda,
        }
    }

    /// Call just before starting an instance.
    pub(crate) fn watch_init(self, engine: &Engine) -> InitWatch {
        InitWatch((self == Self::Lambda).then(|| engine.observe()))
    }

    /// The line before an invocation's output.
    pub(crate) fn start(self, request_id: &str) -> String {
        match self {
            Self::FunctionGraph => {
                start_invoke_line(fnbox_wire::fg::now_secs(), request_id, "latest")
            }
            Self::Lambda => log_lines::start(request_id),
        }
    }

    /// The lines after an invocation's output.
    pub(crate) fn finish(
        self,
        request_id: &str,
        m: &ReportMetrics,
        init_duration_ms: Option<f64>,
    ) -> Vec<String> {
        match self {
            Self::FunctionGraph => vec![finish_invoke_line(
                fnbox_wire::fg::now_secs(),
                request_id,
                &m.finish_figures(),
            )],
            Self::Lambda => vec![
                log_lines::end(request_id),
                log_lines::report(
                    request_id,
                    m.duration_ms,
                    m.billed_duration_ms,
                    m.memory_size_mb,
                    (m.memory_used_mb.ceil() as u64).max(1),
                    init_duration_ms,
                ),
            ],
        }
    }
}

impl InitWatch {
    /// The `EXTENSION` lines of the init that just finished (instance `pod_name`).
    pub(crate) fn lines(self, pod_name: &str) -> Vec<String> {
        let Some(mut rx) = self.0 else {
            return Vec::new();
        };
        let mut out = Vec::new();
        loop {
            match rx.try_recv() {
                Ok(o) => {
                    if &*o.pod_name != pod_name {
                        continue;
                    }
                    if let Observation::Telemetry(event) = &o.what {
                        if let Event::ExtensionState {
                            name,
                            state,
                            events,
                            ..
                        } = &**event
                        {
                            out.push(log_lines::extension(name, state, events));
                        }
                    }
                }
                Err(broadcast::error::TryRecvError::Lagged(_)) => continue,
                Err(_) => break,
            }
        }
        out
    }
}
