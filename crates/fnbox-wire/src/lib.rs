//! Wire types of the APIs fnbox serves and calls: serde structs, header names and paths.
//!
//! Nothing here runs anything: no tokio, no I/O. Every HTTP-facing crate (the engine, the
//! dialects, the CLI, the extension library, tests) uses these constants and types, so a header
//! or path is spelled once.
//!
//! # Layout
//! - [`fg`]: FunctionGraph's runtime, extension and telemetry APIs, as served inside an instance.
//! - [`front`]: the invoke API of `fnbox serve` (FunctionGraph and Lambda front doors).
//! - [`lambda`]: AWS Lambda's Runtime, Extensions and Telemetry APIs, as served inside an instance.
//! - [`limits`]: payload limits shared by both dialects.
#![warn(missing_docs)]

pub mod fg;
pub mod front;
pub mod lambda;
pub mod limits;
