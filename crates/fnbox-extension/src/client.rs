//! The two calls an extension makes to the platform: register and subscribe.

use std::time::Duration;

use bytes::Bytes;
use fnbox_wire::fg::{
    headers, paths, BufferingRequest, ErrorBody, ErrorInfo, RegisterResponse, SubscribeRequest,
    Subscriber,
};
use http::{header, HeaderValue, Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::{connect::HttpConnector, Client};
use hyper_util::rt::TokioExecutor;
use serde::Deserialize;
use serde_json::Value;

use crate::ExtensionError;

/// Upper bound on one call, so a wedged platform turns into an error instead of a hang.
const CALL_TIMEOUT: Duration = Duration::from_secs(10);

/// Longest body excerpt quoted in an error.
const EXCERPT: usize = 512;

pub(crate) struct PlatformClient {
    api_addr: String,
    http: Client<HttpConnector, Full<Bytes>>,
}

impl PlatformClient {
    pub(crate) fn new(api_addr: &str) -> Self {
        Self {
            api_addr: api_addr.to_string(),
            http: Client::builder(TokioExecutor::new()).build_http(),
        }
    }

    /// `POST /extension/register`. The body is not parsed by the platform; `{}` matches the
    /// documented `Content-type: application/json`.
    pub(crate) async fn register(
        &self,
        name: &HeaderValue,
        address: &str,
    ) -> Result<RegisterResponse, ExtensionError> {
        let address =
            HeaderValue::from_str(address).map_err(|e| ExtensionError::InvalidAddress {
                which: "invoke",
                addr: address.to_string(),
                reason: e.to_string(),
            })?;
        let (status, body) = self
            .post(
                "register",
                paths::REGISTER,
                &[
                    (headers::EXTENSION_NAME, name.clone()),
                    (headers::EXTENSION_ADDRESS, address),
                ],
                b"{}".to_vec(),
            )
            .await?;
        let parsed: Result<LenientRegister, _> = serde_json::from_slice(&body);
        if status != StatusCode::OK {
            let (error_type, message) = match parsed {
                Ok(LenientRegister {
                    error_info: Some(info),
                    ..
                }) if !info.is_empty() => (info.error_type, info.error_message),
                _ => error_from_body(&body),
            };
            return Err(ExtensionError::RegisterRefused {
                status: status.as_u16(),
                error_type,
                message,
            });
        }
        let r = parsed.map_err(|e| ExtensionError::BadRegisterResponse {
            message: format!("{e}; body: {}", excerpt(&body)),
        })?;
        let error_info = r.error_info.unwrap_or_default();
        if !error_info.is_empty() {
            tracing::warn!(error_type = %error_info.error_type, message = %error_info.error_message, "registration answered 200 with errorInfo set; going on");
        }
        Ok(RegisterResponse {
            function_name: r.function_name,
            function_version: r.function_version,
            handler: r.handler,
            error_info: ErrorInfo {
                error_type: error_info.error_type,
                error_message: error_info.error_message,
            },
        })
    }

    /// `POST /telemetry` with the documented body; absent options are left out rather than sent
    /// as `null`, so a strict platform sees exactly the documented shape.
    pub(crate) async fn subscribe(
        &self,
        uri: String,
        types: Vec<String>,
        buffering: Option<BufferingRequest>,
    ) -> Result<(), ExtensionError> {
        let req = SubscribeRequest {
            subscriber: Subscriber {
                protocol: "POST".into(),
                uri,
            },
            types,
            buffering,
            compat: None,
        };
        let mut body = serde_json::to_value(&req).unwrap_or(Value::Null);
        prune_nulls(&mut body);
        let (status, resp) = self
            .post(
                "subscribe",
                paths::TELEMETRY,
                &[],
                body.to_string().into_bytes(),
            )
            .await?;
        if status != StatusCode::OK {
            let (error_type, message) = error_from_body(&resp);
            return Err(ExtensionError::SubscribeRefused {
                status: status.as_u16(),
                error_type,
                message,
            });
        }
        Ok(())
    }

    async fn post(
        &self,
        what: &'static str,
        path: &str,
        extra: &[(&'static str, HeaderValue)],
        body: Vec<u8>,
    ) -> Result<(StatusCode, Bytes), ExtensionError> {
        let url = format!("http://{}{}", self.api_addr, path);
        let fail = |message: String| ExtensionError::Request {
            what,
            url: url.clone(),
            message,
        };
        let mut builder = Request::builder()
            .method(Method::POST)
            .uri(&url)
            .header(header::CONTENT_TYPE, "application/json");
        for (name, value) in extra {
            builder = builder.header(*name, value.clone());
        }
        let request = builder
            .body(Full::new(Bytes::from(body)))
            .map_err(|e| fail(e.to_string()))?;
        let call = async {
            let resp = self
                .http
                .request(request)
                .await
                .map_err(|e| fail(error_chain(&e)))?;
            let status = resp.status();
            let body = resp
                .into_body()
                .collect()
                .await
                .map_err(|e| fail(format!("reading the response body: {e}")))?
                .to_bytes();
            Ok((status, body))
        };
        tokio::time::timeout(CALL_TIMEOUT, call)
            .await
            .unwrap_or_else(|_| {
                Err(fail(format!(
                    "no answer within {}s",
                    CALL_TIMEOUT.as_secs()
                )))
            })
    }
}

/// Register body as the platform may send it: the documented example has no `handler`, and a
/// refusal may omit everything but `errorInfo`, so every field is optional here (the wire type
/// requires them all).
#[derive(Deserialize, Default)]
struct LenientRegister {
    #[serde(rename = "functionName", default)]
    function_name: String,
    #[serde(rename = "functionVersion", default)]
    function_version: String,
    #[serde(default)]
    handler: String,
    #[serde(rename = "errorInfo", default)]
    error_info: Option<LenientErrorInfo>,
}

#[derive(Deserialize, Default)]
struct LenientErrorInfo {
    #[serde(rename = "errorType", default)]
    error_type: String,
    #[serde(rename = "errorMessage", default)]
    error_message: String,
}

impl LenientErrorInfo {
    fn is_empty(&self) -> bool {
        self.error_type.is_empty() && self.error_message.is_empty()
    }
}

/// `(errorType, errorMessage)` from `{"errorType","errorMessage"}`, from `{"errorInfo":{…}}`, or
/// the body text itself when it is neither.
fn error_from_body(body: &[u8]) -> (String, String) {
    if let Ok(v) = serde_json::from_slice::<Value>(body) {
        let info = v.get("errorInfo").cloned().unwrap_or(v);
        if let Ok(e) = serde_json::from_value::<ErrorBody>(info) {
            if !e.error_type.is_empty() || !e.error_message.is_empty() {
                return (e.error_type, e.error_message);
            }
        }
    }
    (String::new(), excerpt(body))
}

fn excerpt(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let text = text.trim();
    match text.char_indices().nth(EXCERPT) {
        Some((i, _)) => format!("{}…", &text[..i]),
        None => text.to_string(),
    }
}

fn prune_nulls(v: &mut Value) {
    match v {
        Value::Object(map) => {
            map.retain(|_, v| !v.is_null());
            map.values_mut().for_each(prune_nulls);
        }
        Value::Array(items) => items.iter_mut().for_each(prune_nulls),
        _ => {}
    }
}

/// hyper's errors say "client error (Connect)" at the top; the useful part is further down.
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_messages_are_found_in_either_shape() {
        assert_eq!(
            error_from_body(br#"{"errorType":"T","errorMessage":"m"}"#),
            ("T".into(), "m".into())
        );
        assert_eq!(
            error_from_body(
                br#"{"functionName":"","errorInfo":{"errorType":"T","errorMessage":"m"}}"#
            ),
            ("T".into(), "m".into())
        );
        assert_eq!(
            error_from_body(b"  plain text\n"),
            (String::new(), "plain text".into())
        );
    }

    #[test]
    fn nulls_are_pruned_recursively() {
        let mut v = serde_json::json!({"a": null, "b": {"c": null, "d": 1}});
        prune_nulls(&mut v);
        assert_eq!(v, serde_json::json!({"b": {"d": 1}}));
    }
}
