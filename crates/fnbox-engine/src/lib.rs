//! The fnbox engine: one execution-environment model shared by every dialect.
//!
//! # Layout
//! - [`engine`]: [`Engine`] (what all functions share) and [`Function`] (starts instances,
//!   retrying failed inits).
//! - [`instance`]: one execution environment: API server, processes, memory group, phases.
//! - [`pool`]: the instances of one function: reuse, cold starts, limits, reclaim.
//! - [`lifecycle`]: the instance state machine, pure.
//! - [`invocation`]: requests, results and faults.
//! - [`telemetry`]: typed events and the per-instance bus.
//! - [`launch`]: how each runtime kind is started.
//! - [`netns`]: per-instance network namespaces (loopback only) and the socket factory that
//!   reaches into them; [`NetworkMode`] and the host-network fallback.
//! - [`contain`]: containment (unprivileged uid, mount namespace with a private `/tmp` and the
//!   platforms' paths, pids and file limits).
//! - [`http_serve`]: the HTTP server loop of the front door and every instance API, with its
//!   header, body, idle and connection limits.
//! - [`dialect`]: the trait a dialect implements: every decision where the platforms differ.

pub mod contain;
pub mod dialect;
pub mod engine;
pub mod http_serve;
pub mod http_util;
pub mod instance;
pub mod invocation;
pub mod launch;
pub mod lifecycle;
pub mod netns;
pub mod observe;
pub mod pool;
pub mod snapshot;
pub mod telemetry;
pub mod trace;
mod usage;

pub use dialect::{Command, Dialect, ErrorInfo, LogLines, ShutdownOrder};
pub use engine::{Engine, EngineConfig, Function, HttpClient, LineEcho};
pub use instance::{InitError, Instance, InstanceApi, NotReady};
pub use invocation::{
    Answer, AnswerTx, Fault, FaultKind, Invocation, InvokeOutcome, InvokeRequest, InvokeResult,
    InvokeType,
};
pub use netns::NetworkMode;
pub use observe::{Observation, Observed};
pub use pool::{Factory, InstanceInfo, Pool, PoolConfig, PoolError, Pooled, SubscriberInfo};
