//! Invoke pushes (CONTRACT §3 "Invoke" step 2, §4): every extension registered with a listener
//! address gets `POST /extension/invoke` `{"traceId","invokedFunctionUrn"}` at the moment the
//! runtime gets the event; the invocation is over for the extensions when every push was
//! answered.
//!
//! Each push runs on the instance's tracker, so an invocation that ends by a fault (its
//! future dropped) does not cancel pushes already sent, and the instance's teardown waits for
//! them. An unreachable extension or an error status is logged and does not fail the
//! invocation; an extension that dies is the instance's business (it watches the processes).

use std::sync::Arc;

use bytes::Bytes;
use fnbox_engine::instance::extensions::ExtensionTarget;
use fnbox_engine::InstanceApi;
use futures::future::BoxFuture;
use http_body_util::{BodyExt, Full};

/// Pushes `request_id` to every push extension at once; `None` when there is none.
pub fn invoke(api: &Arc<InstanceApi>, request_id: &str) -> Option<BoxFuture<'static, ()>> {
    let targets: Vec<_> = api
        .extensions
        .registered()
        .into_iter()
        .filter_map(|r| match r.target {
            ExtensionTarget::Push(addr) => Some((r.name, addr)),
            ExtensionTarget::Pull(_) => None,
        })
        .collect();
    if targets.is_empty() {
        return None;
    }
    let body = Bytes::from(
        serde_json::to_vec(&fnbox_wire::fg::InvokePush {
            trace_id: request_id.to_string(),
            invoked_function_urn: api.urn(),
        })
        .expect("push body serializes"),
    );
    let handles: Vec<_> = targets
        .into_iter()
        .map(|(name, addr)| {
            let client = api.client.clone();
            let body = body.clone();
            let pod = api.pod_name.clone();
            api.tasks.spawn(async move {
                let req = http::Request::post(format!(
                    "http://{addr}{}",
                    fnbox_wire::fg::paths::EXTENSION_INVOKE
                ))
                .header(http::header::CONTENT_TYPE, "application/json")
                .body(Full::new(body))
                .expect("valid push request");
                match client.request(req).await {
                    Ok(resp) => {
                        let status = resp.status();
                        let _ = resp.into_body().collect().await;
                        if !status.is_success() {
                            tracing::warn!(pod = %pod, extension = %name, %status, "extension answered its invoke push with an error status");
                        }
                    }
                    Err(e) => {
                        tracing::warn!(pod = %pod, extension = %name, error = %e, "invoke push to extension failed")
                    }
                }
            })
        })
        .collect();
    Some(Box::pin(async move {
        for h in handles {
            let _ = h.await;
        }
    }))
}
