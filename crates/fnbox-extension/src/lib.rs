//! Write Huawei FunctionGraph extensions in Rust: register with the extension API, receive
//! invocation pushes, subscribe to telemetry and receive typed telemetry events.
//!
//! FunctionGraph's model (functiongraph-facts §1–2, CONTRACT §4–5) is push-only: an extension
//! runs its own HTTP server, registers its address with `POST /extension/register`, and the
//! platform then POSTs one `{"traceId","invokedFunctionUrn"}` per invocation to
//! `/extension/invoke`. A telemetry extension additionally runs a listener and subscribes with
//! `POST /telemetry`; the platform POSTs JSON arrays of flat events keyed by `name` to it. There is
//! no shutdown event: the platform sends SIGTERM and, after a grace period, SIGKILL.
//!
//! ```no_run
//! use fnbox_extension::{launcher_name_from_args, Extension, Stream};
//!
//! # async fn demo() -> Result<(), fnbox_extension::ExtensionError> {
//! // The launcher script does `exec my-extension "$0"`, so the platform-visible name
//! // (e.g. `extensionDemo.sh`) arrives as the first argument.
//! let name = launcher_name_from_args()?;
//! Extension::builder(name)
//!     .invoke_address("127.0.0.1:8081")
//!     .on_invoke(|push| async move { println!("[Extension] invoke {}", push.trace_id) })
//!     .telemetry("127.0.0.1:8082", &[Stream::Platform, Stream::Function], None, |events| async move {
//!         for e in events {
//!             println!("[Extension] got {}", e.name());
//!         }
//!     })
//!     .on_shutdown(|| async { /* flush whatever the handlers buffered */ })
//!     .run()
//!     .await
//! # }
//! ```
//!
//! # Layout
//! - [`config`]: [`ExtensionConfig`] (`EXTENSION_API_ADDR`) and the launcher-name helpers.
//! - [`extension`]: [`Extension::builder`], the listeners, the register/subscribe sequence and
//!   shutdown handling.
//! - [`events`]: [`TelemetryEvent`] and its payload structs, tolerant of the seed document's
//!   spellings.
//! - [`error`]: [`ExtensionError`], one variant per step that can fail.
//! - `client` (private): the two outgoing calls (register, subscribe) over hyper.
//! - `src/bin/fnbox-telemetry-recorder.rs`: a complete extension built on this crate that
//!   appends every event it receives to a JSON-lines file.
#![warn(missing_docs)]

mod client;
pub mod config;
pub mod error;
pub mod events;
pub mod extension;

pub use config::{launcher_name, launcher_name_from_args, ExtensionConfig, EXTENSION_API_ADDR_ENV};
pub use error::ExtensionError;
pub use events::{
    LogEvent, LogsDroppedEvent, ReportEvent, ReportMetrics, RuntimeDoneEvent, StartEvent,
    TelemetryEvent,
};
pub use extension::{Buffering, Extension, ExtensionBuilder, Stream};
pub use fnbox_wire::fg::{InvokePush, RegisterResponse};
