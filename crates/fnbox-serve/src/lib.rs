//! `fnbox serve`: the invoke front door of CONTRACT §6 over one instance pool per function.
//!
//! # Layout
//! - [`config`]: the `fnbox.yaml` config file, listen-address and token rules.
//! - [`http_limits`]: the front door's connection limits (`http:` key, `--http-*` flags).
//! - [`registry`]: the served functions: packages, overrides, unique names, fixed-port rules,
//!   one [`fnbox_engine::Pool`] each, and the lookups of both front doors.
//! - [`urn`]: FunctionGraph URNs (all short forms) and Lambda names / ARNs.
//! - [`api`]: the HTTP routes (FunctionGraph, Lambda, admin) and the one error mapping per
//!   dialect shape.
//! - [`invoke`]: one invocation through a pool, answered at the runtime's response.
//! - [`queue`]: asynchronous invocations: the pool invoker and per-function settings of the
//!   durable queue (`fnbox-async`).
//! - [`server`]: serving on a bound listener and the shutdown order.
//! - [`timeline`]: the live timeline of instances, phases and invocations behind `/ui`.
//!
//! The caller binds the listener and passes the shutdown signal in (see `fnbox-cli`'s
//! `serve.rs`), so tests run the whole front door on `127.0.0.1:0`.

pub mod api;
pub mod config;
pub mod http_limits;
pub mod invoke;
pub mod queue;
pub mod registry;
pub mod server;
pub mod timeline;
pub mod urn;

pub use api::error::FrontError;
pub use config::{FunctionSpec, Overrides, ServeFile};
pub use queue::AsyncOptions;
pub use registry::{dialect_for, Registry, RegistryError, Served, StartError};
pub use server::Server;
