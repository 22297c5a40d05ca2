//! Payload limits (CONTRACT §7).

/// Largest synchronous request or response body: 6 MiB.
pub const SYNC_PAYLOAD_MAX: usize = 6 * 1024 * 1024;
/// Largest asynchronous request body: 256 KiB.
pub const ASYNC_PAYLOAD_MAX: usize = 256 * 1024;
/// Largest body fnbox accepts on small control endpoints (register, subscribe, init error).
pub const CONTROL_BODY_MAX: usize = 64 * 1024;
