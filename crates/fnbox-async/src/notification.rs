//! The notification POSTed to a destination, in FunctionGraph's or Lambda's shape.
//!
//! # FunctionGraph (functiongraph-facts §5.2; OTC UMN `functiongraph_01_0390_03`; a captured
//! notification in the OTC Java runtime's test resources `asyncnotification/asyncnotification.json`)
//! ```json
//! {"timestamp": "2025-07-28T09:47:56.893440057+00:00",
//!  "request_context": {"request_id": "…", "function_urn": "urn:fss:…:latest",
//!                      "condition": "UnhandledInvocationError", "approximate_invoke_count": 0},
//!  "request_payload": "<the event, as a string>",
//!  "response_context": {"status_code": 500, "function_error": ""},
//!  "response_payload": "<the result or error body, as a string>"}
//! ```
//! - Both payloads are **strings** (the OTC Java client models them as `String`; the captured
//!   record carries the event as escaped JSON text).
//! - `condition`: `""` on success (UMN example), `UnhandledInvocationError` after a failed
//!   invocation (captured record). fnbox's own choices where nothing is documented:
//!   `EventAgeExceeded` (too old) and `FunctionNotFound` (function gone).
//! - `approximate_invoke_count`: the UMN says "greater than 1 means retried", but both the UMN
//!   success example and the captured failure show `0` after a single attempt. fnbox follows
//!   the observed data: the number of retries (attempts − 1).
//! - `status_code`: 200 success, 500 failure (captured), 404 function not found, 429 when
//!   only throttled attempts happened; `function_error`: `""` on success and on function errors
//!   (captured), the fault's `errorType` (e.g. `Sandbox.Timedout`) for environment failures.
//! - `timestamp`: RFC 3339 with nanoseconds and a numeric offset, as captured (UTC here).
//!
//! # Lambda (AWS Lambda DG "Configuring destinations for asynchronous invocation")
//! `{"version":"1.0","timestamp","requestContext":{"requestId","functionArn","condition",
//! "approximateInvokeCount"},"requestPayload","responseContext":{"statusCode","executedVersion",
//! "functionError"?},"responsePayload"}` with `condition` `Success`, `RetriesExhausted` or
//! `EventAgeExceeded`; payloads are embedded as JSON when they parse, else as strings;
//! `responseContext`/`responsePayload` are left out when the function never answered.

use bytes::Bytes;
use chrono::{DateTime, Utc};
use serde_json::{json, Value};

/// Which platform's notification shape a function's destinations receive.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum NotificationFormat {
    /// snake_case, string payloads.
    #[default]
    FunctionGraph,
    /// camelCase, `version` 1.0, JSON payloads.
    Lambda,
}

/// Why an invocation ended, as reported to destinations and in the status.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Condition {
    /// The function answered successfully.
    Success,
    /// Every allowed attempt failed.
    RetriesExhausted,
    /// The event got older than the maximum event age before it could succeed.
    EventAgeExceeded,
    /// The function does not exist (any more).
    FunctionNotFound,
}

impl Condition {
    /// fnbox's stored and reported name.
    pub fn as_str(self) -> &'static str {
        match self {
            Condition::Success => "Success",
            Condition::RetriesExhausted => "RetriesExhausted",
            Condition::EventAgeExceeded => "EventAgeExceeded",
            Condition::FunctionNotFound => "FunctionNotFound",
        }
    }

    /// Parses [`Condition::as_str`].
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "Success" => Condition::Success,
            "RetriesExhausted" => Condition::RetriesExhausted,
            "EventAgeExceeded" => Condition::EventAgeExceeded,
            "FunctionNotFound" => Condition::FunctionNotFound,
            _ => return None,
        })
    }

    fn functiongraph(self) -> &'static str {
        match self {
            Condition::Success => "",
            Condition::RetriesExhausted => "UnhandledInvocationError",
            Condition::EventAgeExceeded => "EventAgeExceeded",
            Condition::FunctionNotFound => "FunctionNotFound",
        }
    }

    fn lambda(self) -> &'static str {
        match self {
            Condition::Success => "Success",
            Condition::EventAgeExceeded => "EventAgeExceeded",
            Condition::RetriesExhausted | Condition::FunctionNotFound => "RetriesExhausted",
        }
    }
}

/// What the function answered last, for `response_context`/`response_payload`.
#[derive(Clone, Debug, PartialEq)]
pub struct Response {
    /// 200, 500, 404 or 429 (see the module docs).
    pub status_code: u16,
    /// `None` on success; the error type otherwise (`""` for function errors in the
    /// FunctionGraph shape, `Unhandled` in Lambda's).
    pub function_error: Option<String>,
    /// Result or error body.
    pub payload: Bytes,
}

/// Everything a notification says.
#[derive(Clone, Debug)]
pub struct Notification<'a> {
    /// When the invocation ended.
    pub timestamp: DateTime<Utc>,
    /// Request id.
    pub request_id: &'a str,
    /// URN or ARN.
    pub function_urn: &'a str,
    /// Why it ended.
    pub condition: Condition,
    /// Attempts made (throttled ones excluded).
    pub attempts: u32,
    /// The event.
    pub request_payload: &'a [u8],
    /// The last answer, if any.
    pub response: Option<Response>,
}

impl Notification<'_> {
    /// The JSON body in `format`.
    pub fn render(&self, format: NotificationFormat) -> Vec<u8> {
        let v = match format {
            NotificationFormat::FunctionGraph => self.functiongraph(),
            NotificationFormat::Lambda => self.lambda(),
        };
        serde_json::to_vec(&v).expect("a JSON value serialises")
    }

    fn functiongraph(&self) -> Value {
        let (status_code, function_error, payload) = match &self.response {
            Some(r) => (
                r.status_code,
                r.function_error.clone().unwrap_or_default(),
                String::from_utf8_lossy(&r.payload).into_owned(),
            ),
            None => (500, String::new(), String::new()),
        };
        json!({
            "timestamp": self.timestamp.format("%Y-%m-%dT%H:%M:%S%.9f+00:00").to_string(),
            "request_context": {
                "request_id": self.request_id,
                "function_urn": self.function_urn,
                "condition": self.condition.functiongraph(),
                "approximate_invoke_count": self.attempts.saturating_sub(1),
            },
            "request_payload": String::from_utf8_lossy(self.request_payload),
            "response_context": {
                "status_code": status_code,
                "function_error": function_error,
            },
            "response_payload": payload,
        })
    }

    fn lambda(&self) -> Value {
        let mut v = json!({
            "version": "1.0",
            "timestamp": self.timestamp.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string(),
            "requestContext": {
                "requestId": self.request_id,
                "functionArn": self.function_urn,
                "condition": self.condition.lambda(),
                "approximateInvokeCount": self.attempts,
            },
            "requestPayload": json_or_string(self.request_payload),
        });
        if let Some(r) = &self.response {
            let mut ctx = json!({"statusCode": r.status_code, "executedVersion": "$LATEST"});
            if r.function_error.is_some() {
                ctx["functionError"] = json!("Unhandled");
            }
            v["responseContext"] = ctx;
            v["responsePayload"] = json_or_string(&r.payload);
        }
        v
    }
}

fn json_or_string(bytes: &[u8]) -> Value {
    serde_json::from_slice(bytes)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(bytes).into_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2025-07-28T09:47:56.893440057Z")
            .unwrap()
            .with_timezone(&Utc)
    }

    #[test]
    fn functiongraph_failure_matches_the_captured_record() {
        let n = Notification {
            timestamp: ts(),
            request_id: "c61f58df",
            function_urn: "urn:fss:eu-de:p:function:default:f:latest",
            condition: Condition::RetriesExhausted,
            attempts: 1,
            request_payload: br#"{"Records":[]}"#,
            response: Some(Response {
                status_code: 500,
                function_error: Some(String::new()),
                payload: Bytes::from_static(br#"{"errorMessage":"boom","errorType":"E"}"#),
            }),
        };
        let v: Value =
            serde_json::from_slice(&n.render(NotificationFormat::FunctionGraph)).unwrap();
        assert_eq!(
            v,
            json!({
                "timestamp": "2025-07-28T09:47:56.893440057+00:00",
                "request_context": {
                    "request_id": "c61f58df",
                    "function_urn": "urn:fss:eu-de:p:function:default:f:latest",
                    "condition": "UnhandledInvocationError",
                    "approximate_invoke_count": 0
                },
                "request_payload": "{\"Records\":[]}",
                "response_context": {"status_code": 500, "function_error": ""},
                "response_payload": "{\"errorMessage\":\"boom\",\"errorType\":\"E\"}"
            })
        );
    }

    #[test]
    fn functiongraph_success_has_an_empty_condition() {
        let n = Notification {
            timestamp: ts(),
            request_id: "r",
            function_urn: "u",
            condition: Condition::Success,
            attempts: 2,
            request_payload: b"",
            response: Some(Response {
                status_code: 200,
                function_error: None,
                payload: Bytes::from_static(b"hello world!"),
            }),
        };
        let v: Value =
            serde_json::from_slice(&n.render(NotificationFormat::FunctionGraph)).unwrap();
        assert_eq!(v["request_context"]["condition"], "");
        assert_eq!(v["request_context"]["approximate_invoke_count"], 1);
        assert_eq!(
            v["response_context"],
            json!({"status_code": 200, "function_error": ""})
        );
        assert_eq!(v["response_payload"], "hello world!");
    }

    #[test]
    fn lambda_shape_embeds_json_and_marks_errors() {
        let n = Notification {
            timestamp: ts(),
            request_id: "r",
            function_urn: "arn:aws:lambda:local:000000000000:function:f",
            condition: Condition::RetriesExhausted,
            attempts: 3,
            request_payload: br#"{"a":1}"#,
            response: Some(Response {
                status_code: 200,
                function_error: Some(String::new()),
                payload: Bytes::from_static(br#"{"errorMessage":"x"}"#),
            }),
        };
        let v: Value = serde_json::from_slice(&n.render(NotificationFormat::Lambda)).unwrap();
        assert_eq!(v["version"], "1.0");
        assert_eq!(v["timestamp"], "2025-07-28T09:47:56.893Z");
        assert_eq!(v["requestContext"]["condition"], "RetriesExhausted");
        assert_eq!(v["requestContext"]["approximateInvokeCount"], 3);
        assert_eq!(v["requestPayload"], json!({"a": 1}));
        assert_eq!(v["responseContext"]["functionError"], "Unhandled");
        assert_eq!(v["responsePayload"], json!({"errorMessage": "x"}));

        let aged = Notification {
            condition: Condition::EventAgeExceeded,
            attempts: 0,
            response: None,
            ..n
        };
        let v: Value = serde_json::from_slice(&aged.render(NotificationFormat::Lambda)).unwrap();
        assert_eq!(v["requestContext"]["condition"], "EventAgeExceeded");
        assert!(v.get("responseContext").is_none());
        assert!(v.get("responsePayload").is_none());
    }
}
