//! The one place front-door errors become HTTP responses, once per dialect shape:
//! [`Fg`] renders FunctionGraph's `{"error_code":"FSS.xxxx","error_msg"}`, [`Lambda`] renders
//! Lambda's `x-amzn-ErrorType` + `{"Type","message"}` (or, for failures Lambda reports as
//! function errors, 200 with `X-Amz-Function-Error: Unhandled`).
//!
//! # Status codes
//! | error | FunctionGraph | Lambda |
//! |---|---|---|
//! | bad or missing token | 401 FSS.0401 | 403 `UnrecognizedClientException` |
//! | malformed URN / name | 400 FSS.1309 | 400 `ValidationException` |
//! | bad header value | 400 FSS.0400 | 400 `InvalidParameterValueException` |
//! | unknown function | 404 FSS.1051 | 404 `ResourceNotFoundException` |
//! | version other than latest | 404 FSS.1052 | 404 `ResourceNotFoundException` |
//! | alias | 404 FSS.1053 | 404 `ResourceNotFoundException` |
//! | body over 6 MiB | 413 FSS.0413 | 413 `RequestTooLargeException` |
//! | async body over 256 KiB | 413 FSS.1201 | 413 `RequestEntityTooLargeException` |
//! | unknown async request id | 404 FSS.0404 | 404 `ResourceNotFoundException` |
//! | every instance busy | 429 FSS.0429 | 429 `TooManyRequestsException` |
//! | init failed (3 attempts) | 500 FSS.1404 (FSS.1405 init timeout), `X-Is-Func-Err: true` | 200 `X-Amz-Function-Error: Unhandled`, the init error body |
//! | restore failed (not retried) | 500 FSS.4213 (FSS.4214 restore timeout), `X-Is-Func-Err: true` | 200 `Unhandled`, the runtime's body (e.g. `Runtime.AfterRestoreError`); timeout: 408 `SnapStartTimeoutException` |
//! | invocation timed out | 408 FSS.0408, `X-Is-Func-Err: true` | 200 `Unhandled`, `Sandbox.Timedout` |
//! | async without a store (embedding) | 501 FSS.0501 | 501 `ServiceException` |
//! | shutting down | 503 FSS.0503 | 503 `ServiceException` |
//! | async queue's database unreachable | 503 FSS.0503 | 503 `ServiceException` |
//! | internal | 500 FSS.0500 | 500 `ServiceException` |
//! | no such route | 404 FSS.0404 | — |
//!
//! Other faults (out of memory, crashes) are not errors of the front door: the invocation
//! answers 200 with `X-Is-Func-Err: true` / `X-Amz-Function-Error: Unhandled` and the fault's
//! error body, like a handler error (see `fg.rs`, `lambda.rs`).

use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use fnbox_engine::http_util::BodyError;
use fnbox_engine::telemetry::Status;
use fnbox_engine::InitError;
use fnbox_wire::fg::ErrorBody;
use fnbox_wire::front::{headers, lambda_headers, lambda_values, FssError, LambdaApiError};
use fnbox_wire::limits::SYNC_PAYLOAD_MAX;
use http::{HeaderValue, StatusCode};

/// Everything the front door can refuse or fail with.
#[derive(Debug, thiserror::Error)]
pub enum FrontError {
    /// `--token` is set and the request's `X-Auth-Token` is missing or different.
    #[error(
        "missing or wrong {} header: this fnbox serve was started with a token",
        headers::AUTH_TOKEN
    )]
    Unauthorized,
    /// A FunctionGraph URN that cannot be parsed.
    #[error("invalid function URN '{urn}': {reason}")]
    BadUrn {
        /// As given.
        urn: String,
        /// What is wrong.
        reason: String,
    },
    /// A Lambda function name or ARN that cannot be parsed (the message is Lambda's).
    #[error("{0}")]
    BadName(String),
    /// A header or parameter with a value that is not allowed.
    #[error("{0}")]
    InvalidParameter(String),
    /// No such function.
    #[error("Not found the function: {given} (serving: {serving})")]
    UnknownFunction {
        /// URN, ARN or name as given.
        given: String,
        /// Names served, for the message.
        serving: String,
    },
    /// A version other than `latest` / `$LATEST`.
    #[error(
        "Not found the version '{version}' of function {given}: fnbox serves only version latest"
    )]
    UnknownVersion {
        /// URN or ARN as given.
        given: String,
        /// The version asked for.
        version: String,
    },
    /// An alias.
    #[error("Not found the alias '{alias}' of function {given}: fnbox serves only version latest, without aliases")]
    UnknownAlias {
        /// URN as given.
        given: String,
        /// The alias asked for.
        alias: String,
    },
    /// Body over the synchronous limit.
    #[error("request body is larger than {limit} bytes, the limit of synchronous invocations")]
    PayloadTooLarge {
        /// The limit.
        limit: usize,
    },
    /// Body over the asynchronous limit (256 KiB).
    #[error("request body is larger than {limit} bytes, the limit of asynchronous invocations")]
    AsyncPayloadTooLarge {
        /// The limit.
        limit: usize,
    },
    /// No asynchronous invocation with this id for this function.
    #[error("Not found the specified resource: asynchronous invocation '{request_id}' of function {function}")]
    UnknownAsyncRequest {
        /// The id asked for.
        request_id: String,
        /// The function asked for.
        function: String,
    },
    /// Every instance busy and no more allowed, after the bounded wait.
    #[error("{0}")]
    Saturated(String),
    /// The function could not be initialised.
    #[error("function '{function}' {error}")]
    InitFailed {
        /// Function name.
        function: String,
        /// Why (after every attempt); boxed to keep the enum small.
        error: Box<InitError>,
        /// The request that caused the cold start.
        request_id: String,
    },
    /// The invocation ran past the function's timeout.
    #[error("{message}")]
    Timeout {
        /// Request id.
        request_id: String,
        /// `invocation timed out after <N>s`.
        message: String,
        /// The function's timeout, seconds.
        timeout_secs: u32,
    },
    /// This server has no asynchronous invocation store (an embedding without a data dir).
    #[error("asynchronous invocation ({0}) is not available: this server runs without an async invocation store (fnbox serve --data-dir)")]
    AsyncNotImplemented(&'static str),
    /// fnbox is stopping.
    #[error("fnbox is shutting down: function '{0}' takes no new invocations")]
    ShuttingDown(String),
    /// The async queue's database cannot be reached now: nothing was accepted.
    #[error("{0}; nothing was accepted, retry later")]
    QueueUnavailable(String),
    /// No route for this method and path.
    #[error("Not found the specified resource: {method} {path}")]
    RouteNotFound {
        /// Method.
        method: String,
        /// Path.
        path: String,
    },
    /// A bug or an I/O failure of fnbox itself.
    #[error("internal error: {0}")]
    Internal(String),
}

impl FrontError {
    /// Whether fnbox's own log should show it as an error.
    fn is_server_fault(&self) -> bool {
        matches!(
            self,
            FrontError::Internal(_) | FrontError::QueueUnavailable(_)
        )
    }

    fn log(&self) {
        if self.is_server_fault() {
            tracing::error!(error = %self, "front door error");
        } else {
            tracing::debug!(error = %self, "front door refused a request");
        }
    }
}

/// A [`FrontError`] answered in FunctionGraph's shape.
#[derive(Debug)]
pub struct Fg(pub FrontError);

/// A synchronous invocation's body: over the limit is 413, a body that could not be read is a
/// bad request. (Asynchronous routes map the too-large case to their own limit error.)
impl From<BodyError> for FrontError {
    fn from(e: BodyError) -> Self {
        match e {
            BodyError::TooLarge { limit, .. } => FrontError::PayloadTooLarge { limit },
            BodyError::Read(_) => FrontError::InvalidParameter(e.to_string()),
        }
    }
}

impl From<FrontError> for Fg {
    fn from(e: FrontError) -> Self {
        Fg(e)
    }
}

impl Fg {
    /// Status and `FSS.*` code.
    pub fn status_and_code(&self) -> (StatusCode, &'static str) {
        use FrontError as E;
        match &self.0 {
            E::Unauthorized => (StatusCode::UNAUTHORIZED, "FSS.0401"),
            E::BadUrn { .. } => (StatusCode::BAD_REQUEST, "FSS.1309"),
            E::BadName(_) | E::InvalidParameter(_) => (StatusCode::BAD_REQUEST, "FSS.0400"),
            E::UnknownFunction { .. } => (StatusCode::NOT_FOUND, "FSS.1051"),
            E::UnknownVersion { .. } => (StatusCode::NOT_FOUND, "FSS.1052"),
            E::UnknownAlias { .. } => (StatusCode::NOT_FOUND, "FSS.1053"),
            E::PayloadTooLarge { .. } => (StatusCode::PAYLOAD_TOO_LARGE, "FSS.0413"),
            E::AsyncPayloadTooLarge { .. } => (StatusCode::PAYLOAD_TOO_LARGE, "FSS.1201"),
            E::UnknownAsyncRequest { .. } => (StatusCode::NOT_FOUND, "FSS.0404"),
            E::Saturated(_) => (StatusCode::TOO_MANY_REQUESTS, "FSS.0429"),
            // A failed restore (issue 18): openYuanrong's 4214 "runtime restore timed out
            // after …" and 4213 "function restore failed".
            E::InitFailed { error, .. } if error.restore && error.status == Status::Timeout => {
                (StatusCode::INTERNAL_SERVER_ERROR, "FSS.4214")
            }
            E::InitFailed { error, .. } if error.restore => {
                (StatusCode::INTERNAL_SERVER_ERROR, "FSS.4213")
            }
            E::InitFailed { error, .. } if error.status == Status::Timeout => {
                (StatusCode::INTERNAL_SERVER_ERROR, "FSS.1405")
            }
            E::InitFailed { .. } => (StatusCode::INTERNAL_SERVER_ERROR, "FSS.1404"),
            E::Timeout { .. } => (StatusCode::REQUEST_TIMEOUT, "FSS.0408"),
            E::AsyncNotImplemented(_) => (StatusCode::NOT_IMPLEMENTED, "FSS.0501"),
            E::ShuttingDown(_) | E::QueueUnavailable(_) => {
                (StatusCode::SERVICE_UNAVAILABLE, "FSS.0503")
            }
            E::RouteNotFound { .. } => (StatusCode::NOT_FOUND, "FSS.0404"),
            E::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, "FSS.0500"),
        }
    }
}

impl IntoResponse for Fg {
    fn into_response(self) -> Response {
        self.0.log();
        let (status, code) = self.status_and_code();
        let body = FssError {
            error_code: code.to_string(),
            error_msg: self.0.to_string(),
        };
        let mut resp = (status, json(&body)).into_response();
        let h = resp.headers_mut();
        h.insert(
            http::header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        match &self.0 {
            FrontError::InitFailed { request_id, .. } | FrontError::Timeout { request_id, .. } => {
                h.insert(headers::IS_FUNC_ERR, HeaderValue::from_static("true"));
                if let Ok(v) = HeaderValue::from_str(request_id) {
                    h.insert(headers::REQUEST_ID, v);
                }
            }
            _ => {}
        }
        resp
    }
}

/// A [`FrontError`] answered in Lambda's shape.
#[derive(Debug)]
pub struct Lambda(pub FrontError);

impl From<FrontError> for Lambda {
    fn from(e: FrontError) -> Self {
        Lambda(e)
    }
}

/// What a Lambda-shaped answer is.
enum LambdaShape {
    /// An API error: status, `x-amzn-ErrorType`, `Type`, optional `Reason`.
    Api(StatusCode, &'static str, &'static str, Option<&'static str>),
    /// A function error: 200 with `X-Amz-Function-Error: Unhandled` and this body.
    Function(Bytes, String),
}

impl Lambda {
    fn shape(&self) -> LambdaShape {
        use FrontError as E;
        use LambdaShape::Api;
        match &self.0 {
            E::Unauthorized => Api(StatusCode::FORBIDDEN, "UnrecognizedClientException", "User", None),
            E::BadUrn { .. } | E::BadName(_) => {
                Api(StatusCode::BAD_REQUEST, "ValidationException", "User", None)
            }
            E::InvalidParameter(_) => Api(
                StatusCode::BAD_REQUEST,
                "InvalidParameterValueException",
                "User",
                None,
            ),
            E::UnknownFunction { .. }
            | E::UnknownVersion { .. }
            | E::UnknownAlias { .. }
            | E::UnknownAsyncRequest { .. } => Api(
                StatusCode::NOT_FOUND,
                "ResourceNotFoundException",
                "User",
                None,
            ),
            E::RouteNotFound { .. } => {
                Api(StatusCode::NOT_FOUND, "UnknownOperationException", "User", None)
            }
            E::PayloadTooLarge { .. } => Api(
                StatusCode::PAYLOAD_TOO_LARGE,
                "RequestTooLargeException",
                "User",
                None,
            ),
            E::AsyncPayloadTooLarge { .. } => Api(
                StatusCode::PAYLOAD_TOO_LARGE,
                "RequestEntityTooLargeException",
                "User",
                None,
            ),
            E::Saturated(_) => Api(
                StatusCode::TOO_MANY_REQUESTS,
                "TooManyRequestsException",
                "User",
                Some("ReservedFunctionConcurrentInvocationLimitExceeded"),
            ),
            E::InitFailed { error, .. } if error.restore && error.status == Status::Timeout => Api(
                StatusCode::REQUEST_TIMEOUT,
                "SnapStartTimeoutException",
                "User",
                None,
            ),
            E::InitFailed {
                error, request_id, ..
            } => {
                // Lambda reports init failures as function errors; pass on the runtime's own
                // error body when it posted one.
                let body = error
                    .body
                    .clone()
                    .filter(|b| serde_json::from_slice::<serde_json::Value>(b).is_ok())
                    .unwrap_or_else(|| {
                        json(&ErrorBody::new(
                            error.error_type.clone(),
                            format!("RequestId: {request_id} Error: {}", error.message),
                        ))
                    });
                LambdaShape::Function(body, request_id.clone())
            }
            E::Timeout {
                request_id,
                timeout_secs,
                ..
            } => LambdaShape::Function(
                json(&ErrorBody::new(
                    "Sandbox.Timedout",
                    format!("RequestId: {request_id} Error: Task timed out after {timeout_secs}.00 seconds"),
                )),
                request_id.clone(),
            ),
            E::AsyncNotImplemented(_) => {
                Api(StatusCode::NOT_IMPLEMENTED, "ServiceException", "Service", None)
            }
            E::ShuttingDown(_) | E::QueueUnavailable(_) => {
                Api(StatusCode::SERVICE_UNAVAILABLE, "ServiceException", "Service", None)
            }
            E::Internal(_) => Api(
                StatusCode::INTERNAL_SERVER_ERROR,
                "ServiceException",
                "Service",
                None,
            ),
        }
    }

    /// The `x-amzn-ErrorType`, or `None` when Lambda answers this as a function error.
    pub fn error_type(&self) -> Option<&'static str> {
        match self.shape() {
            LambdaShape::Api(_, t, _, _) => Some(t),
            LambdaShape::Function(..) => None,
        }
    }

    /// Lambda's message for the error (its own wording where clients match on it).
    fn message(&self) -> String {
        match &self.0 {
            FrontError::Unauthorized => format!(
                "The security token included in the request is invalid: this fnbox serve was started with --token; send it in the {} header",
                headers::AUTH_TOKEN
            ),
            FrontError::UnknownFunction { given, .. } | FrontError::UnknownVersion { given, .. } => {
                format!("Function not found: {given}")
            }
            FrontError::PayloadTooLarge { .. } => format!(
                "Request must be smaller than {SYNC_PAYLOAD_MAX} bytes for the InvokeFunction operation"
            ),
            FrontError::AsyncPayloadTooLarge { limit } => format!(
                "Request must be smaller than {limit} bytes for the InvokeAsync operation"
            ),
            FrontError::Saturated(detail) => format!("Rate Exceeded. {detail}"),
            other => other.to_string(),
        }
    }
}

impl IntoResponse for Lambda {
    fn into_response(self) -> Response {
        self.0.log();
        let mut resp = match self.shape() {
            LambdaShape::Api(status, error_type, kind, reason) => {
                let body = LambdaApiError {
                    kind: kind.to_string(),
                    message: self.message(),
                    reason: reason.map(String::from),
                };
                let mut resp = (status, json(&body)).into_response();
                resp.headers_mut().insert(
                    lambda_headers::ERROR_TYPE,
                    HeaderValue::from_static(error_type),
                );
                if let Ok(v) = HeaderValue::from_str(&fnbox_engine::invocation::new_request_id()) {
                    resp.headers_mut().insert(lambda_headers::REQUEST_ID, v);
                }
                resp
            }
            LambdaShape::Function(body, request_id) => {
                let mut resp = (StatusCode::OK, body).into_response();
                let h = resp.headers_mut();
                h.insert(
                    lambda_headers::FUNCTION_ERROR,
                    HeaderValue::from_static(lambda_values::UNHANDLED),
                );
                h.insert(
                    lambda_headers::EXECUTED_VERSION,
                    HeaderValue::from_static(lambda_values::LATEST),
                );
                if let Ok(v) = HeaderValue::from_str(&request_id) {
                    h.insert(lambda_headers::REQUEST_ID, v);
                }
                resp
            }
        };
        resp.headers_mut().insert(
            http::header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        resp
    }
}

/// Serializes a wire type (they always serialize).
pub(crate) fn json<T: serde::Serialize>(value: &T) -> Bytes {
    Bytes::from(serde_json::to_vec(value).expect("wire types serialize"))
}

#[cfg(test)]
mod restore_tests {
    use super::*;

    fn failed(status: Status, error_type: &str, message: &str) -> FrontError {
        FrontError::InitFailed {
            function: "snap".into(),
            error: Box::new(InitError {
                status,
                error_type: error_type.into(),
                message: message.into(),
                attempts: 1,
                body: None,
                restore: true,
            }),
            request_id: "req-1".into(),
        }
    }

    #[test]
    fn failed_restores_have_their_own_codes() {
        let e = Fg(failed(
            Status::Error,
            fnbox_engine::snapshot::RESTORE_FAILED,
            "function restore failed: RuntimeError: no db",
        ));
        assert_eq!(e.status_and_code().1, "FSS.4213");
        assert!(e.0.to_string().contains("restore failed"), "{}", e.0);
        let t = failed(
            Status::Timeout,
            fnbox_engine::snapshot::RESTORE_TIMEOUT,
            "runtime restore timed out after 1s",
        );
        assert_eq!(
            Fg(failed(Status::Timeout, "x", "y")).status_and_code().1,
            "FSS.4214"
        );
        assert_eq!(Lambda(t).error_type(), Some("SnapStartTimeoutException"));
        assert_eq!(
            Lambda(failed(Status::Error, "Runtime.AfterRestoreError", "x")).error_type(),
            None,
            "a hook error is a function error"
        );
    }
}
