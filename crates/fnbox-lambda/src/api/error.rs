//! The one place where the Lambda instance API's errors become HTTP responses: status codes,
//! `errorType`s and messages as the Runtime Interface Emulator renders them (lambda-facts
//! §1–3). Every body is `{"errorMessage","errorType"}`.

use axum::response::{IntoResponse, Response};
use fnbox_wire::lambda::{ErrorBody, RESPONSE_MAX};
use http::StatusCode;

/// Errors of the Lambda instance API.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ApiError {
    /// A runtime call that is not a legal transition now (e.g. `next` twice without answering).
    #[error("State transition from {from} to {to} failed for runtime. Error: State transition is not allowed")]
    InvalidStateTransition {
        /// Runtime state now.
        from: &'static str,
        /// State the call asked for.
        to: &'static str,
    },
    /// `…/{id}/response|error` for an id that is not in flight.
    #[error("Invalid request ID")]
    InvalidRequestId,
    /// `restore/next` or `restore/error` of a function without SnapStart (RIE mounts them only
    /// with init caching).
    #[error("the restore endpoints exist only for SnapStart functions (snap_start: PublishedVersions in function.yaml)")]
    NotSnapStart,
    /// `Lambda-Runtime-Function-Response-Mode` other than `streaming`.
    #[error("Invalid function response mode")]
    InvalidResponseMode,
    /// A response over the 6 MiB limit.
    #[error("Exceeded maximum allowed payload size ({RESPONSE_MAX} bytes).")]
    PayloadTooLarge,
    /// The request body ended early.
    #[error("HTTP request detected as truncated")]
    Truncated,
    /// An Extensions or Telemetry API rule (all 403 in Lambda).
    #[error("{message}")]
    Extension {
        /// e.g. `Extension.UnknownExtensionIdentifier`.
        error_type: &'static str,
        /// Which rule.
        message: String,
    },
    /// A malformed telemetry subscription.
    #[error("{0}")]
    Validation(String),
    /// A malformed Logs API subscription (`Logs.ValidationError`, as AWS's page shows).
    #[error("{0}")]
    LogsValidation(String),
}

impl ApiError {
    /// A 403 extension error.
    pub fn extension(error_type: &'static str, message: impl Into<String>) -> Self {
        ApiError::Extension {
            error_type,
            message: message.into(),
        }
    }

    /// The status code.
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::InvalidStateTransition { .. } | ApiError::Extension { .. } => {
                StatusCode::FORBIDDEN
            }
            ApiError::InvalidRequestId
            | ApiError::InvalidResponseMode
            | ApiError::Truncated
            | ApiError::Validation(_)
            | ApiError::LogsValidation(_) => StatusCode::BAD_REQUEST,
            ApiError::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::NotSnapStart => StatusCode::NOT_FOUND,
        }
    }

    /// The `errorType`.
    pub fn error_type(&self) -> &'static str {
        match self {
            ApiError::InvalidStateTransition { .. } => "InvalidStateTransition",
            ApiError::InvalidRequestId => "InvalidRequestID",
            ApiError::InvalidResponseMode => "InvalidFunctionResponseMode",
            ApiError::PayloadTooLarge => "RequestEntityTooLarge",
            ApiError::Truncated => "TruncatedHTTPRequest",
            ApiError::Extension { error_type, .. } => error_type,
            ApiError::Validation(_) => "ValidationError",
            ApiError::LogsValidation(_) => "Logs.ValidationError",
            ApiError::NotSnapStart => "NotFound",
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        tracing::debug!(error = %self, error_type = self.error_type(), "Lambda instance API refused a request");
        let mut body = serde_json::to_vec(&ErrorBody::new(self.error_type(), self.to_string()))
            .unwrap_or_default();
        // RIE renders with Go's JSON encoder, which ends every body with a newline.
        body.push(b'\n');
        (
            self.status(),
            [(http::header::CONTENT_TYPE, "application/json")],
            body,
        )
            .into_response()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn render(e: ApiError) -> (StatusCode, String) {
        let r = e.into_response();
        let status = r.status();
        let body = axum::body::to_bytes(r.into_body(), 1 << 16).await.unwrap();
        (status, String::from_utf8(body.to_vec()).unwrap())
    }

    #[tokio::test]
    async fn bodies_match_rie() {
        assert_eq!(
            render(ApiError::InvalidRequestId).await,
            (
                StatusCode::BAD_REQUEST,
                "{\"errorMessage\":\"Invalid request ID\",\"errorType\":\"InvalidRequestID\"}\n"
                    .into()
            )
        );
        assert_eq!(
            render(ApiError::PayloadTooLarge).await,
            (
                StatusCode::PAYLOAD_TOO_LARGE,
                "{\"errorMessage\":\"Exceeded maximum allowed payload size (6291556 bytes).\",\"errorType\":\"RequestEntityTooLarge\"}\n".into()
            )
        );
        let (s, b) = render(ApiError::InvalidStateTransition {
            from: "Running",
            to: "Ready",
        })
        .await;
        assert_eq!(s, StatusCode::FORBIDDEN);
        assert_eq!(b, "{\"errorMessage\":\"State transition from Running to Ready failed for runtime. Error: State transition is not allowed\",\"errorType\":\"InvalidStateTransition\"}\n");
        let (s, b) = render(ApiError::extension(
            "Extension.MissingExtensionIdentifier",
            "Missing Lambda-Extension-Identifier header",
        ))
        .await;
        assert_eq!(s, StatusCode::FORBIDDEN);
        assert!(b.contains("\"errorType\":\"Extension.MissingExtensionIdentifier\""));
        assert_eq!(
            render(ApiError::Validation("x".into())).await.0,
            StatusCode::BAD_REQUEST
        );
        assert_eq!(render(ApiError::Truncated).await.0, StatusCode::BAD_REQUEST);
        assert_eq!(
            render(ApiError::InvalidResponseMode).await.0,
            StatusCode::BAD_REQUEST
        );
    }
}
