//! A FunctionGraph custom runtime in Rust: long-polls `$RUNTIME_API_ADDR` for an event and
//! answers `{"hello": <event>}`. It is also the no-op runtime of fnbox's benchmarks, so it keeps
//! one pooled keep-alive connection and does nothing else.

use bytes::Bytes;
use fnbox_wire::fg::{headers, paths};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), BoxError> {
    let addr = std::env::var("RUNTIME_API_ADDR")
        .map_err(|_| "RUNTIME_API_ADDR is not set: run me under fnbox")?;
    let client: Client<_, Full<Bytes>> = Client::builder(TokioExecutor::new()).build_http();
    loop {
        let next =
            hyper::Request::get(format!("http://{addr}{}", paths::NEXT)).body(Full::default())?;
        let resp = client.request(next).await?;
        let id = resp
            .headers()
            .get(headers::REQUEST_ID)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string();
        let event = resp.into_body().collect().await?.to_bytes();
        if id.is_empty() {
            continue;
        }
        let event: serde_json::Value = serde_json::from_slice(&event)
            .unwrap_or_else(|_| String::from_utf8_lossy(&event).into_owned().into());
        let body = serde_json::to_vec(&serde_json::json!({ "hello": event }))?;
        let post = hyper::Request::post(format!("http://{addr}{}{id}", paths::RESPONSE_PREFIX))
            .body(Full::new(Bytes::from(body)))?;
        client.request(post).await?.into_body().collect().await?;
    }
}
