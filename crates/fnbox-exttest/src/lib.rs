//! `fnbox test-extension`: runs an extension beside a function fnbox provides, through scripted
//! platform faults, each scenario on a fresh instance, and scores what the extension did.
//!
//! # Layout
//! - [`target`]: what is tested (a package's extensions, or a directory of them) and the bash
//!   function run beside them.
//! - [`probe`]: the harness's dialect: the real one, plus exit recording, delayed invoke
//!   notices and recorded extension API calls.
//! - [`proxy`]: the recording proxy in front of the extension's listeners (pushes, batches).
//! - [`procs`]: the extension's CPU time and peak RSS, from `/proc`.
//! - [`record`]: what a scenario saw.
//! - [`scenarios`]: the scenarios and their checks.
//! - [`score`]: verdicts and the scorecard.
//!
//! # Design
//! Everything goes through the engine's seams: the [`fnbox_engine::Dialect`] trait (wrapped),
//! [`fnbox_engine::Engine::observe`] for every event the engine produced, the instances'
//! delivery counters, and one engine knob, [`fnbox_engine::EngineConfig::listener_redirect`],
//! that sends fnbox's connections to the extension's listeners through the proxy. Instances
//! run on the host network (the proxy must be reachable), so the extension's fixed ports must
//! be free while the test runs.

pub mod probe;
pub mod procs;
pub mod proxy;
pub mod record;
pub mod scenarios;
pub mod score;
pub mod target;

use std::path::PathBuf;
use std::time::Duration;

pub use scenarios::{run, Options, Scenario};
pub use score::{Scorecard, Verdict};

/// Why the test could not run at all (a scenario that fails is a verdict, not an error).
#[derive(Debug, thiserror::Error)]
pub enum ExtTestError {
    /// The path given is not a package or a directory of extensions.
    #[error("{0}")]
    Target(String),
    /// The package does not load.
    #[error(transparent)]
    Package(#[from] fnbox_package::PackageError),
    /// The function cannot be launched.
    #[error(transparent)]
    Launch(#[from] fnbox_engine::launch::LaunchError),
    /// A scratch file could not be written.
    #[error("cannot write {}: {source}", .path.display())]
    Io {
        /// Which.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// `--memory-mode cgroup` without a usable cgroup.
    #[error("memory limits: {0}")]
    Memory(#[from] fnbox_limits::LimitError),
}

/// Default count of the warm scenario.
pub const WARM_INVOCATIONS: u32 = 100;
/// Default size of the burst scenario.
pub const BURST_LINES: u32 = 200_000;
/// Default delay of invoke notices in slow-platform.
pub const PUSH_DELAY: Duration = Duration::from_secs(1);
/// Default delay of batch bodies in slow-platform.
pub const BATCH_DELAY: Duration = Duration::from_secs(2);
