//! Extensions API 2020-01-01 (lambda-facts §2): `register`, `event/next`, `init/error`,
//! `exit/error`. Error types and messages are the Runtime Interface Emulator's; all refusals
//! are 403.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use fnbox_engine::http_util::{header, read_body, BodyError, Oversize};
use fnbox_engine::instance::extensions::{
    PullError, PullEvent, PullEvents, RegisterError, Registered, MAX_EXTENSIONS,
};
use fnbox_engine::InstanceApi;
use fnbox_wire::lambda::{
    function_arn, headers as h, paths, ExtensionEvent, RegisterRequest, RegisterResponse, Tracing,
    ACCOUNT_ID, FUNCTION_VERSION,
};
use fnbox_wire::limits::CONTROL_BODY_MAX;
use http::{HeaderMap, HeaderValue, StatusCode};

use super::accepted;
use super::error::ApiError;
use crate::env::lambda_region;
use crate::trace::trace_header_for_deadline;

type Api = State<Arc<InstanceApi>>;

/// Routes of the Extensions API.
pub fn router() -> Router<Arc<InstanceApi>> {
    Router::new()
        .route(paths::REGISTER, post(register))
        .route(paths::EVENT_NEXT, get(next))
        .route(paths::EXTENSION_INIT_ERROR, post(init_error))
        .route(paths::EXTENSION_EXIT_ERROR, post(exit_error))
}

/// The registration behind `Lambda-Extension-Identifier` (shared with the Telemetry API).
pub(crate) fn identify(api: &InstanceApi, headers: &HeaderMap) -> Result<Registered, ApiError> {
    let id = header(headers, h::EXTENSION_IDENTIFIER).ok_or_else(|| {
        ApiError::extension(
            "Extension.MissingExtensionIdentifier",
            "Missing Lambda-Extension-Identifier header",
        )
    })?;
    if uuid::Uuid::parse_str(id).is_err() {
        return Err(ApiError::extension(
            "Extension.InvalidExtensionIdentifier",
            "Invalid Lambda-Extension-Identifier",
        ));
    }
    api.extensions.by_id(id).ok_or_else(|| {
        ApiError::extension(
            "Extension.UnknownExtensionIdentifier",
            format!("Unknown extension {id}"),
        )
    })
}

fn pull_error(e: PullError) -> ApiError {
    match e {
        PullError::UnknownId(id) => ApiError::extension(
            "Extension.UnknownExtensionIdentifier",
            format!("Unknown extension {id}"),
        ),
        PullError::Failed(name) => ApiError::extension(
            "Extension.InvalidExtensionState",
            format!("Invalid state transition: extension {name} reported an error and may make no further calls"),
        ),
    }
}

/// Parses the `events` of a registration.
fn parse_events(body: &[u8]) -> Result<PullEvents, ApiError> {
    let req: RegisterRequest = if body.iter().all(u8::is_ascii_whitespace) {
        RegisterRequest::default()
    } else {
        serde_json::from_slice(body).map_err(|e| {
            ApiError::extension(
                "InvalidRequestFormat",
                format!("invalid register body: {e}"),
            )
        })?
    };
    if req
        .configuration_keys
        .as_ref()
        .is_some_and(|k| !k.is_empty())
    {
        return Err(ApiError::extension(
            "InvalidRequestFormat",
            "configurationKeys are deprecated; use environment variables instead",
        ));
    }
    let mut events = PullEvents::default();
    for e in req.events.unwrap_or_default() {
        match e.as_str() {
            "INVOKE" => events.invoke = true,
            "SHUTDOWN" => events.shutdown = true,
            other => {
                return Err(ApiError::extension(
                    "Extension.InvalidEventType",
                    format!("Invalid event type {other:?}; allowed: INVOKE, SHUTDOWN"),
                ))
            }
        }
    }
    Ok(events)
}

async fn register(State(api): Api, headers: HeaderMap, body: Body) -> Result<Response, ApiError> {
    let body = read_body(body, &headers, CONTROL_BODY_MAX, Oversize::ReadToLimit)
        .await
        .map_err(|e| match e {
            BodyError::TooLarge { .. } => {
                ApiError::extension("InvalidRequestFormat", "register body too large")
            }
            BodyError::Read(_) => ApiError::extension("InvalidRequestFormat", e.to_string()),
        })?;
    let name = header(&headers, h::EXTENSION_NAME).ok_or_else(|| {
        ApiError::extension("Extension.InvalidExtensionName", "Empty extension name")
    })?;
    let events = parse_events(&body)?;
    let reg = api.extensions.register_pull(name, events).map_err(|e| match e {
        RegisterError::AfterInit => ApiError::extension(
            "Extension.RegistrationClosed",
            "Extension registration closed already",
        ),
        RegisterError::Duplicate(_) => ApiError::extension(
            "Extension.InvalidExtensionState",
            "Extension with this name already registered",
        ),
        RegisterError::TooMany => ApiError::extension(
            "Extension.TooManyExtensions",
            format!("Extension limit ({MAX_EXTENSIONS}) reached"),
        ),
        RegisterError::NotLaunched { name, .. } => ApiError::extension(
            "Extension.InvalidEventType",
            format!("Internal extension {name} cannot register for SHUTDOWN (only executables in extensions/ are external extensions)"),
        ),
        other => ApiError::extension("Extension.InvalidExtensionName", other.to_string()),
    })?;
    tracing::debug!(pod = %api.pod_name, extension = name, internal = reg.internal, ?events, "Lambda extension registered");
    let config = &api.package.config;
    let wants_account = header(&headers, h::EXTENSION_ACCEPT_FEATURE)
        .is_some_and(|f| f.split(',').any(|x| x.trim() == "accountId"));
    let mut response = Json(RegisterResponse {
        function_name: config.func_name.clone(),
        function_version: FUNCTION_VERSION.into(),
        handler: config.handler.clone(),
        account_id: wants_account.then(|| ACCOUNT_ID.to_string()),
    })
    .into_response();
    if let Ok(v) = HeaderValue::from_str(&reg.id) {
        response.headers_mut().insert(h::EXTENSION_IDENTIFIER, v);
    }
    Ok(response)
}

/// Renders an engine event for the wire.
pub(crate) fn render(api: &InstanceApi, event: PullEvent) -> ExtensionEvent {
    let config = &api.package.config;
    match event {
        PullEvent::Invoke {
            request_id,
            deadline_epoch_ms,
        } => ExtensionEvent::Invoke {
            deadline_ms: deadline_epoch_ms,
            tracing: Some(Tracing::amzn(trace_header_for_deadline(
                &request_id,
                deadline_epoch_ms,
                config.timeout,
            ))),
            request_id,
            invoked_function_arn: function_arn(lambda_region(config), &config.func_name),
        },
        PullEvent::Shutdown {
            reason,
            deadline_epoch_ms,
        } => ExtensionEvent::Shutdown {
            shutdown_reason: reason.as_str().into(),
            deadline_ms: deadline_epoch_ms,
        },
    }
}

async fn next(State(api): Api, headers: HeaderMap) -> Result<Response, ApiError> {
    let reg = identify(&api, &headers)?;
    let event = api
        .extensions
        .next_event(&reg.id)
        .await
        .map_err(pull_error)?;
    let mut response = Json(render(&api, event)).into_response();
    if let Ok(v) = HeaderValue::from_str(&uuid::Uuid::new_v4().to_string()) {
        response
            .headers_mut()
            .insert(h::EXTENSION_EVENT_IDENTIFIER, v);
    }
    Ok(response)
}

async fn report(
    api: &InstanceApi,
    headers: &HeaderMap,
    init: bool,
) -> Result<(StatusCode, [(http::HeaderName, &'static str); 1], Vec<u8>), ApiError> {
    let reg = identify(api, headers)?;
    let error_type = header(headers, h::EXTENSION_ERROR_TYPE).ok_or_else(|| {
        ApiError::extension(
            "Extension.MissingHeader",
            "Lambda-Extension-Function-Error-Type not found",
        )
    })?;
    tracing::info!(pod = %api.pod_name, extension = %reg.name, error_type, init, "extension reported an error");
    api.extensions
        .report_failure(&reg.id, init, error_type)
        .map_err(pull_error)?;
    Ok(accepted())
}

async fn init_error(
    State(api): Api,
    headers: HeaderMap,
    body: Body,
) -> Result<impl IntoResponse, ApiError> {
    // The body is not used; it is read (bounded) so the connection stays usable.
    let _ = read_body(body, &headers, CONTROL_BODY_MAX, Oversize::ReadToLimit).await;
    report(&api, &headers, true).await
}

async fn exit_error(
    State(api): Api,
    headers: HeaderMap,
    body: Body,
) -> Result<impl IntoResponse, ApiError> {
    // The body is not used; it is read (bounded) so the connection stays usable.
    let _ = read_body(body, &headers, CONTROL_BODY_MAX, Oversize::ReadToLimit).await;
    report(&api, &headers, false).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_are_validated() {
        assert_eq!(parse_events(b"").unwrap(), PullEvents::default());
        assert_eq!(
            parse_events(br#"{"events":["INVOKE","SHUTDOWN"]}"#).unwrap(),
            PullEvents {
                invoke: true,
                shutdown: true
            }
        );
        assert_eq!(
            parse_events(br#"{"events":[]}"#).unwrap(),
            PullEvents::default()
        );
        let e = parse_events(br#"{"events":["INVOKE","RESTORE"]}"#).unwrap_err();
        assert_eq!(e.error_type(), "Extension.InvalidEventType");
        let e = parse_events(br#"{"events":["INVOKE"],"configurationKeys":["k"]}"#).unwrap_err();
        assert_eq!(
            e.to_string(),
            "configurationKeys are deprecated; use environment variables instead"
        );
        assert_eq!(
            parse_events(b"{").unwrap_err().status(),
            StatusCode::FORBIDDEN
        );
    }
}
