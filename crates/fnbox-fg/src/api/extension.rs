//! `POST /extension/register` (CONTRACT §4): the launched name, an address in
//! 127.0.0.1:8081–8090, a port of its own, at most ten, once, and only during init.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::State;
use axum::routing::post;
use axum::{Json, Router};
use fnbox_engine::http_util::{header, read_body, Oversize};
use fnbox_engine::instance::extensions::{ExtensionTarget, RegisterError};
use fnbox_engine::InstanceApi;
use fnbox_wire::fg::{headers, paths, ErrorInfo, RegisterResponse, EXTENSION_PORTS};
use fnbox_wire::limits::CONTROL_BODY_MAX;
use http::HeaderMap;

use super::error::ApiError;

/// Routes of the extension API.
pub fn router() -> Router<Arc<InstanceApi>> {
    Router::new().route(paths::REGISTER, post(register))
}

/// Parses `127.0.0.1:<8081..8090>`.
pub(crate) fn parse_listener_address(value: &str) -> Result<SocketAddr, String> {
    let addr: SocketAddr = value.trim().parse().map_err(|_| {
        format!("'{value}' is not an ip:port address; use 127.0.0.1:8081 to 127.0.0.1:8090")
    })?;
    if addr.ip() != std::net::Ipv4Addr::LOCALHOST {
        return Err(format!(
            "address {addr} is not on 127.0.0.1; use 127.0.0.1:8081 to 127.0.0.1:8090"
        ));
    }
    if !EXTENSION_PORTS.contains(&addr.port()) {
        return Err(format!("port {} is outside 8081..8090", addr.port()));
    }
    Ok(addr)
}

/// The register body: empty (blank) or one JSON value, whose content is not used.
pub fn check_register_body(body: &[u8]) -> Result<(), String> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(());
    }
    serde_json::from_slice::<serde::de::IgnoredAny>(body)
        .map(|_| ())
        .map_err(|e| format!("the register body must be JSON (e.g. {{}}) or empty: {e}"))
}

async fn register(
    State(api): State<Arc<InstanceApi>>,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<RegisterResponse>, ApiError> {
    let config = &api.package.config;
    let refuse = |error_type: &'static str, message: String| ApiError::Register {
        error_type,
        message,
        function_name: config.func_name.clone(),
        handler: config.handler.clone(),
    };
    // The body is documented as not parsed (its content is ignored), but what is sent must be
    // JSON, as in the documented example (`{}`), or nothing: anything else is refused.
    let body = read_body(body, &headers, CONTROL_BODY_MAX, Oversize::ReadToLimit).await?;
    check_register_body(&body).map_err(|m| refuse("Extension.InvalidRequestFormat", m))?;
    let name = header(&headers, headers::EXTENSION_NAME).ok_or_else(|| {
        refuse(
            "Extension.MissingHeader",
            format!(
                "header {} is required: the file name of the launched extension*.sh",
                headers::EXTENSION_NAME
            ),
        )
    })?;
    let address = header(&headers, headers::EXTENSION_ADDRESS).ok_or_else(|| {
        refuse(
            "Extension.MissingHeader",
            format!(
                "header {} is required: 127.0.0.1:<port> with port 8081..8090",
                headers::EXTENSION_ADDRESS
            ),
        )
    })?;
    let addr =
        parse_listener_address(address).map_err(|m| refuse("Extension.InvalidAddress", m))?;
    api.extensions
        .register(name, ExtensionTarget::Push(addr))
        .map_err(|e| {
            let error_type = match e {
                RegisterError::NotLaunched { .. } => "Extension.InvalidName",
                RegisterError::Duplicate(_) => "Extension.AlreadyRegistered",
                RegisterError::AddressInUse { .. } => "Extension.AddressInUse",
                RegisterError::TooMany => "Extension.TooManyExtensions",
                RegisterError::AfterInit => "Extension.RegistrationClosed",
            };
            refuse(error_type, e.to_string())
        })?;
    tracing::debug!(pod = %api.pod_name, extension = name, %addr, "extension registered");
    Ok(Json(RegisterResponse {
        function_name: config.func_name.clone(),
        function_version: "latest".into(),
        handler: config.handler.clone(),
        error_info: ErrorInfo::default(),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn register_bodies_are_json_or_empty() {
        for ok in ["", "  \n", "{}", r#"{"a":1}"#, "[]", "null"] {
            assert_eq!(check_register_body(ok.as_bytes()), Ok(()), "{ok:?}");
        }
        for bad in ["not json", "{", "{}}", "\u{0}"] {
            let e = check_register_body(bad.as_bytes()).unwrap_err();
            assert!(
                e.starts_with("the register body must be JSON"),
                "{bad:?}: {e}"
            );
        }
    }

    #[test]
    fn addresses() {
        assert!(parse_listener_address("127.0.0.1:8081").is_ok());
        assert!(parse_listener_address("127.0.0.1:8090").is_ok());
        assert!(parse_listener_address("127.0.0.1:8011")
            .unwrap_err()
            .contains("8081..8090"));
        assert!(parse_listener_address("0.0.0.0:8081")
            .unwrap_err()
            .contains("127.0.0.1"));
        assert!(parse_listener_address("localhost").is_err());
    }
}
