//! The one place where the instance API's errors become HTTP responses. Every 4xx/5xx body is
//! `{"errorType","errorMessage"}` (CONTRACT §4); registration errors use the register body
//! with `errorInfo` filled, as FunctionGraph documents.

use axum::response::{IntoResponse, Response};
use fnbox_engine::http_util::BodyError;
use fnbox_wire::fg::{ErrorBody, ErrorInfo, RegisterResponse};
use http::StatusCode;

/// Errors of the FunctionGraph instance API.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// A response or error was posted for an id that is not in flight.
    #[error("{0}")]
    UnknownRequest(String),
    /// A body over its limit, or one that could not be read: both answer 413
    /// `RequestEntityTooLarge`, as the API always has (a body cut short is usually a sender
    /// that gave up on a large write).
    #[error(transparent)]
    Body(#[from] BodyError),
    /// Init error posted after init.
    #[error("init is already over: {0}")]
    InitOver(String),
    /// A registration rule was broken; carries the register response context.
    #[error("{message}")]
    Register {
        /// Error class, e.g. `Extension.InvalidName`.
        error_type: &'static str,
        /// Which rule.
        message: String,
        /// Function name and handler for the body.
        function_name: String,
        /// Handler for the body.
        handler: String,
    },
    /// A bad request of any other kind (subscription rules, malformed JSON).
    #[error("{message}")]
    BadRequest {
        /// Error class.
        error_type: &'static str,
        /// Which rule.
        message: String,
    },
}

impl ApiError {
    fn status(&self) -> StatusCode {
        match self {
            ApiError::UnknownRequest(_) => StatusCode::NOT_FOUND,
            ApiError::Body(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::InitOver(_) => StatusCode::FORBIDDEN,
            ApiError::Register { .. } | ApiError::BadRequest { .. } => StatusCode::BAD_REQUEST,
        }
    }

    fn error_type(&self) -> &'static str {
        match self {
            ApiError::UnknownRequest(_) => "InvalidRequestID",
            ApiError::Body(_) => "RequestEntityTooLarge",
            ApiError::InitOver(_) => "InvalidStateTransition",
            ApiError::Register { error_type, .. } | ApiError::BadRequest { error_type, .. } => {
                error_type
            }
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        if status.is_server_error() {
            tracing::error!(error = %self, "instance API error");
        } else {
            tracing::debug!(error = %self, "instance API refused a request");
        }
        let body = match &self {
            ApiError::Register {
                error_type,
                message,
                function_name,
                handler,
            } => serde_json::to_vec(&RegisterResponse {
                function_name: function_name.clone(),
                function_version: "latest".into(),
                handler: handler.clone(),
                error_info: ErrorInfo {
                    error_type: (*error_type).into(),
                    error_message: message.clone(),
                },
            }),
            _ => serde_json::to_vec(&ErrorBody::new(self.error_type(), self.to_string())),
        }
        .unwrap_or_default();
        (
            status,
            [(http::header::CONTENT_TYPE, "application/json")],
            body,
        )
            .into_response()
    }
}

impl From<fnbox_engine::instance::channel::ChannelError> for ApiError {
    fn from(e: fnbox_engine::instance::channel::ChannelError) -> Self {
        ApiError::UnknownRequest(e.to_string())
    }
}
