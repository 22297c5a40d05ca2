//! AWS Lambda's in-sandbox APIs (lambda-facts §1–3): Runtime API 2018-06-01, Extensions API
//! 2020-01-01, Telemetry API 2022-07-01. Paths, header names, limits and the JSON bodies
//! fnbox reads or writes, spelled once.

use serde::{Deserialize, Serialize};

/// Paths, all served on `AWS_LAMBDA_RUNTIME_API`.
pub mod paths {
    /// Long-poll for the next invocation.
    pub const NEXT: &str = "/2018-06-01/runtime/invocation/next";
    /// `POST …/{AwsRequestId}/response` (axum route syntax).
    pub const RESPONSE: &str = "/2018-06-01/runtime/invocation/{id}/response";
    /// `POST …/{AwsRequestId}/error` (axum route syntax).
    pub const ERROR: &str = "/2018-06-01/runtime/invocation/{id}/error";
    /// `POST` init failure.
    pub const INIT_ERROR: &str = "/2018-06-01/runtime/init/error";
    /// Liveness probe RIE keeps "for Hyrum's law".
    pub const PING: &str = "/2018-06-01/ping";
    /// Extension registration.
    pub const REGISTER: &str = "/2020-01-01/extension/register";
    /// Extension long-poll for INVOKE / SHUTDOWN.
    pub const EVENT_NEXT: &str = "/2020-01-01/extension/event/next";
    /// Extension init failure.
    pub const EXTENSION_INIT_ERROR: &str = "/2020-01-01/extension/init/error";
    /// Extension exit failure.
    pub const EXTENSION_EXIT_ERROR: &str = "/2020-01-01/extension/exit/error";
    /// Telemetry subscription (`PUT`).
    pub const TELEMETRY: &str = "/2022-07-01/telemetry";
    /// Legacy Logs API subscription (`PUT`), answered as not supported.
    pub const LOGS: &str = "/2020-08-15/logs";
}

/// Header names.
pub mod headers {
    /// Request id of an invocation.
    pub const REQUEST_ID: &str = "Lambda-Runtime-Aws-Request-Id";
    /// Absolute deadline, epoch milliseconds.
    pub const DEADLINE_MS: &str = "Lambda-Runtime-Deadline-Ms";
    /// ARN of the invoked function.
    pub const INVOKED_FUNCTION_ARN: &str = "Lambda-Runtime-Invoked-Function-Arn";
    /// X-Ray trace header.
    pub const TRACE_ID: &str = "Lambda-Runtime-Trace-Id";
    /// Mobile SDK client context (JSON).
    pub const CLIENT_CONTEXT: &str = "Lambda-Runtime-Client-Context";
    /// Cognito identity (JSON).
    pub const COGNITO_IDENTITY: &str = "Lambda-Runtime-Cognito-Identity";
    /// Error class sent with `…/error` and `init/error`.
    pub const FUNCTION_ERROR_TYPE: &str = "Lambda-Runtime-Function-Error-Type";
    /// Base64 error document, as a streaming trailer.
    pub const FUNCTION_ERROR_BODY: &str = "Lambda-Runtime-Function-Error-Body";
    /// `streaming` for a streamed response.
    pub const RESPONSE_MODE: &str = "Lambda-Runtime-Function-Response-Mode";
    /// X-Ray error cause (JSON), accepted and ignored.
    pub const XRAY_ERROR_CAUSE: &str = "Lambda-Runtime-Function-XRay-Error-Cause";
    /// Executable file name of a registering extension.
    pub const EXTENSION_NAME: &str = "Lambda-Extension-Name";
    /// Identifier handed out at registration.
    pub const EXTENSION_IDENTIFIER: &str = "Lambda-Extension-Identifier";
    /// Comma-separated optional features (`accountId`).
    pub const EXTENSION_ACCEPT_FEATURE: &str = "Lambda-Extension-Accept-Feature";
    /// Fresh id of every event handed to an extension.
    pub const EXTENSION_EVENT_IDENTIFIER: &str = "Lambda-Extension-Event-Identifier";
    /// Error class sent with extension `init/error` and `exit/error`.
    pub const EXTENSION_ERROR_TYPE: &str = "Lambda-Extension-Function-Error-Type";
}

/// The only defined value of [`headers::RESPONSE_MODE`].
pub const RESPONSE_MODE_STREAMING: &str = "streaming";
/// Content type of a streamed response that starts with a JSON prelude and eight NUL bytes.
pub const HTTP_INTEGRATION_CONTENT_TYPE: &str =
    "application/vnd.awslambda.http-integration-response";
/// Largest buffered response fnbox reads: 6 MiB plus the 100 bytes RIE tolerates.
pub const RESPONSE_MAX: usize = 6 * 1024 * 1024 + 100;
/// Largest streamed response fnbox collects (Lambda's long-standing 20 MB soft limit).
pub const STREAMED_RESPONSE_MAX: usize = 20 * 1024 * 1024;
/// Account id of every local ARN.
pub const ACCOUNT_ID: &str = "000000000000";
/// Function version every local function has.
pub const FUNCTION_VERSION: &str = "$LATEST";
/// Region when none is configured.
pub const DEFAULT_REGION: &str = "us-east-1";

/// The Telemetry API schema versions fnbox accepts, oldest first.
pub const SCHEMA_VERSIONS: &[&str] = &["2022-07-01", "2022-12-13", "2025-01-29"];

/// Error body of every 4xx/5xx, and of function errors fnbox builds itself.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ErrorBody {
    /// Human message.
    #[serde(rename = "errorMessage", default)]
    pub error_message: String,
    /// Error class, e.g. `InvalidRequestID`.
    #[serde(rename = "errorType", default)]
    pub error_type: String,
}

impl ErrorBody {
    /// An error body.
    pub fn new(error_type: impl Into<String>, error_message: impl Into<String>) -> Self {
        Self {
            error_message: error_message.into(),
            error_type: error_type.into(),
        }
    }
}

/// `{"status":"OK"}`, the 202 body of every accepted post.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatusResponse {
    /// Always `OK`.
    pub status: String,
}

impl StatusResponse {
    /// `{"status":"OK"}`.
    pub fn ok() -> Self {
        Self {
            status: "OK".into(),
        }
    }
}

/// Body of `POST /extension/register`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
pub struct RegisterRequest {
    /// `INVOKE` and/or `SHUTDOWN`; absent or empty means none.
    #[serde(default)]
    pub events: Option<Vec<String>>,
    /// Deprecated; rejected when non-empty.
    #[serde(rename = "configurationKeys", default)]
    pub configuration_keys: Option<Vec<String>>,
}

/// Body of a successful registration.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RegisterResponse {
    /// Function name.
    #[serde(rename = "functionName")]
    pub function_name: String,
    /// Function version (`$LATEST`).
    #[serde(rename = "functionVersion")]
    pub function_version: String,
    /// Handler as configured.
    pub handler: String,
    /// Only when the `accountId` feature was asked for.
    #[serde(rename = "accountId", skip_serializing_if = "Option::is_none", default)]
    pub account_id: Option<String>,
}

/// `tracing` of an INVOKE event and of telemetry records.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tracing {
    /// Always `X-Amzn-Trace-Id`.
    #[serde(rename = "type")]
    pub kind: String,
    /// The trace header value.
    pub value: String,
}

impl Tracing {
    /// An `X-Amzn-Trace-Id` context.
    pub fn amzn(value: impl Into<String>) -> Self {
        Self {
            kind: "X-Amzn-Trace-Id".into(),
            value: value.into(),
        }
    }
}

/// One event handed to an extension by `event/next`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "eventType")]
pub enum ExtensionEvent {
    /// An invocation started.
    #[serde(rename = "INVOKE")]
    Invoke {
        /// Absolute deadline, epoch milliseconds (a JSON integer).
        #[serde(rename = "deadlineMs")]
        deadline_ms: u64,
        /// Request id.
        #[serde(rename = "requestId")]
        request_id: String,
        /// ARN of the function.
        #[serde(rename = "invokedFunctionArn")]
        invoked_function_arn: String,
        /// Trace context, when there is one.
        #[serde(skip_serializing_if = "Option::is_none", default)]
        tracing: Option<Tracing>,
    },
    /// The environment is going away.
    #[serde(rename = "SHUTDOWN")]
    Shutdown {
        /// `spindown`, `timeout` or `failure`.
        #[serde(rename = "shutdownReason")]
        shutdown_reason: String,
        /// When fnbox kills what is left, epoch milliseconds.
        #[serde(rename = "deadlineMs")]
        deadline_ms: u64,
    },
}

/// Body of `PUT /2022-07-01/telemetry`. Unknown fields (e.g. OTel's `destination.method`) are
/// ignored, as Lambda does.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
pub struct SubscribeRequest {
    /// One of [`SCHEMA_VERSIONS`].
    #[serde(rename = "schemaVersion", default)]
    pub schema_version: Option<String>,
    /// `platform`, `function`, `extension`.
    #[serde(default)]
    pub types: Option<Vec<String>>,
    /// Batching limits.
    #[serde(default)]
    pub buffering: Option<BufferingRequest>,
    /// Where to deliver.
    #[serde(default)]
    pub destination: Option<Destination>,
}

/// `buffering` of a subscription.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
pub struct BufferingRequest {
    /// 1 000..=10 000, default 10 000.
    #[serde(rename = "maxItems", default)]
    pub max_items: Option<u64>,
    /// 262 144..=1 048 576, default 262 144.
    #[serde(rename = "maxBytes", default)]
    pub max_bytes: Option<u64>,
    /// 25..=30 000, default 1 000.
    #[serde(rename = "timeoutMs", default)]
    pub timeout_ms: Option<u64>,
}

/// `destination` of a subscription.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
pub struct Destination {
    /// `HTTP` (or `TCP`, refused by fnbox).
    #[serde(default)]
    pub protocol: Option<String>,
    /// `http://sandbox.localdomain:<port>[/<path>]`.
    #[serde(rename = "URI", default)]
    pub uri: Option<String>,
    /// TCP port (LMI schema).
    #[serde(default)]
    pub port: Option<u64>,
}

/// The `arn:aws:lambda:<region>:000000000000:function:<name>` of a local function.
pub fn function_arn(region: &str, function_name: &str) -> String {
    format!("arn:aws:lambda:{region}:{ACCOUNT_ID}:function:{function_name}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_have_the_wire_shape() {
        let e = ExtensionEvent::Invoke {
            deadline_ms: 1542409706888,
            request_id: "r".into(),
            invoked_function_arn: function_arn("us-east-1", "f"),
            tracing: Some(Tracing::amzn("Root=1-2-3")),
        };
        assert_eq!(
            serde_json::to_value(&e).unwrap(),
            serde_json::json!({"eventType":"INVOKE","deadlineMs":1542409706888u64,"requestId":"r",
                "invokedFunctionArn":"arn:aws:lambda:us-east-1:000000000000:function:f",
                "tracing":{"type":"X-Amzn-Trace-Id","value":"Root=1-2-3"}})
        );
        let s = ExtensionEvent::Shutdown {
            shutdown_reason: "spindown".into(),
            deadline_ms: 7,
        };
        assert_eq!(
            serde_json::to_string(&s).unwrap(),
            r#"{"eventType":"SHUTDOWN","shutdownReason":"spindown","deadlineMs":7}"#
        );
    }

    #[test]
    fn error_body_field_order_matches_rie() {
        assert_eq!(
            serde_json::to_string(&ErrorBody::new("InvalidRequestID", "Invalid request ID"))
                .unwrap(),
            r#"{"errorMessage":"Invalid request ID","errorType":"InvalidRequestID"}"#
        );
    }

    #[test]
    fn subscribe_ignores_unknown_fields() {
        let r: SubscribeRequest = serde_json::from_str(
            r#"{"schemaVersion":"2022-12-13","types":["platform"],"destination":{"protocol":"HTTP","URI":"http://sandbox.localdomain:4243/","method":"POST","encoding":"JSON"},"buffering":{"maxItems":1000}}"#,
        )
        .unwrap();
        assert_eq!(r.schema_version.as_deref(), Some("2022-12-13"));
        assert_eq!(r.buffering.unwrap().max_items, Some(1000));
        assert_eq!(
            r.destination.unwrap().uri.as_deref(),
            Some("http://sandbox.localdomain:4243/")
        );
    }
}
