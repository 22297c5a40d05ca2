//! HTTP functions (`runtime: http`): fnbox plays the runtime-API client. It waits until the
//! function's server accepts on 127.0.0.1:8000, then takes each invocation from the runtime
//! channel, turns the APIG-style event into a real HTTP request, and posts the answer back as
//! `{"statusCode","headers","body","isBase64Encoded"}`.

use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use crate::instance::InstanceApi;

/// The fixed port of HTTP functions.
pub const HTTP_PORT: u16 = 8000;

/// Runs the bridge until `cancel` fires.
pub(crate) async fn run(api: Arc<InstanceApi>, cancel: CancellationToken) {
    let _ = (api, cancel);
    todo!("http bridge")
}
