//! Telemetry API (`PUT /2022-07-01/telemetry`, lambda-facts §3.1) and the legacy Logs API.
//!
//! A subscription names its `schemaVersion` (2022-07-01, 2022-12-13 or 2025-01-29), its types,
//! its buffering (Lambda's ranges; defaults 10 000 items, 256 KiB, 1 000 ms) and an HTTP
//! destination inside the sandbox: `sandbox.localdomain`, `sandbox`, `localhost` and
//! `127.0.0.1` all mean loopback, and fnbox delivers to `127.0.0.1:<port>` with the URI's path
//! kept. The subscription joins the engine's telemetry bus with a [`crate::encode::Encoder`]
//! for its schema version, and a `platform.telemetrySubscription` event is published.
//!
//! The Logs API (`PUT /2020-08-15/logs`) is served by [`super::logs`].
//!
//! # Limitations
//! Only the first subscription of an instance receives the events published before it
//! (the bus keeps one replay buffer); a second subscriber sees events from then on.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::State;
use axum::response::Response;
use axum::routing::put;
use axum::Router;
use fnbox_engine::http_util::{parse_streams, stream_name, Duplicates};
use fnbox_engine::telemetry::{Stream, SubscriptionRequest};
use fnbox_engine::InstanceApi;
use fnbox_telemetry::{Buffering, SubscriberConfig};
use fnbox_wire::lambda::{paths, SubscribeRequest, SCHEMA_VERSIONS};
use http::HeaderMap;

use super::error::ApiError;
use super::extension::identify;
use crate::encode::{self, Encoder, EncoderContext, Schema};

/// Default `buffering.maxItems` of the Lambda Telemetry API.
pub const DEFAULT_MAX_ITEMS: u64 = 10_000;
/// Default `buffering.maxBytes`.
pub const DEFAULT_MAX_BYTES: u64 = 262_144;
/// Default `buffering.timeoutMs`.
pub const DEFAULT_TIMEOUT_MS: u64 = 1_000;

/// Hosts a destination may name; all mean 127.0.0.1.
const SANDBOX_HOSTS: &[&str] = &["sandbox.localdomain", "sandbox", "localhost", "127.0.0.1"];

/// Routes of the Telemetry API.
pub fn router() -> Router<Arc<InstanceApi>> {
    Router::new().route(paths::TELEMETRY, put(subscribe))
}

/// A checked subscription.
#[derive(Debug)]
pub(crate) struct Parsed {
    pub schema: Schema,
    pub streams: Vec<Stream>,
    pub types: Vec<String>,
    pub config: SubscriberConfig,
}

fn invalid(message: impl Into<String>) -> ApiError {
    ApiError::Validation(message.into())
}

/// Checks a subscription body.
pub(crate) fn parse(body: &[u8]) -> Result<Parsed, ApiError> {
    let req: SubscribeRequest = serde_json::from_slice(body)
        .map_err(|e| invalid(format!("invalid subscription body: {e}")))?;
    let schema = match req.schema_version.as_deref() {
        None => {
            return Err(invalid(format!(
                "schemaVersion is required; allowed: {}",
                SCHEMA_VERSIONS.join(", ")
            )))
        }
        Some(v) => Schema::parse(v).ok_or_else(|| {
            invalid(format!(
                "schemaVersion {v:?} is not supported; allowed: {}",
                SCHEMA_VERSIONS.join(", ")
            ))
        })?,
    };
    let types = req.types.unwrap_or_default();
    if types.is_empty() {
        return Err(invalid(
            "types should not be empty; allowed: platform, function, extension",
        ));
    }
    // Lambda accepts a type listed twice and keeps it once.
    let streams = parse_streams(&types, Duplicates::Ignore).map_err(|e| invalid(e.to_string()))?;
    let names = streams
        .iter()
        .map(|s| stream_name(*s).to_string())
        .collect();
    let destination = req
        .destination
        .ok_or_else(|| invalid("destination is required: {\"protocol\":\"HTTP\",\"URI\":\"http://sandbox.localdomain:<port>\"}"))?;
    match destination.protocol.as_deref() {
        Some(p) if p.eq_ignore_ascii_case("HTTP") => {}
        Some(p) if p.eq_ignore_ascii_case("TCP") => {
            return Err(invalid(
                "destination.protocol TCP is not supported by fnbox; use HTTP",
            ))
        }
        other => {
            return Err(invalid(format!(
                "destination.protocol must be \"HTTP\", got {other:?}"
            )))
        }
    }
    let uri = destination
        .uri
        .ok_or_else(|| invalid("destination.URI is required for protocol HTTP"))?;
    let target = loopback_uri(&uri)?;
    let b = req.buffering.unwrap_or_default();
    let buffering = Buffering::from_request(
        Some(b.max_items.unwrap_or(DEFAULT_MAX_ITEMS)),
        Some(b.max_bytes.unwrap_or(DEFAULT_MAX_BYTES)),
        Some(b.timeout_ms.unwrap_or(DEFAULT_TIMEOUT_MS)),
    )
    .map_err(|e| invalid(e.to_string()))?;
    let mut config = SubscriberConfig::new(&target).map_err(|e| invalid(e.to_string()))?;
    config.buffering = buffering;
    Ok(Parsed {
        schema,
        streams,
        types: names,
        config,
    })
}

/// `http://sandbox.localdomain:<port>/<path>` → `http://127.0.0.1:<port>/<path>`.
pub(crate) fn loopback_uri(uri: &str) -> Result<String, ApiError> {
    let parsed: http::Uri = uri
        .parse()
        .map_err(|_| invalid(format!("destination.URI {uri:?} is not a URI")))?;
    if parsed.scheme_str() != Some("http") {
        return Err(invalid(format!(
            "destination.URI {uri:?} must start with http:// (no HTTPS inside the sandbox)"
        )));
    }
    let host = parsed.host().unwrap_or_default().to_ascii_lowercase();
    if !SANDBOX_HOSTS.contains(&host.as_str()) {
        return Err(invalid(format!(
            "Invalid destination: destination.URI host must be sandbox.localdomain, got {host:?}"
        )));
    }
    let port = parsed
        .port_u16()
        .ok_or_else(|| invalid("URI port is not provided"))?;
    let path = parsed.path_and_query().map(|p| p.as_str()).unwrap_or("/");
    Ok(format!("http://127.0.0.1:{port}{path}"))
}

async fn subscribe(
    State(api): State<Arc<InstanceApi>>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let reg = identify(&api, &headers)?;
    let body = super::subscription_body(&headers, body, invalid).await?;
    let parsed = parse(&body)?;
    let encoder = Arc::new(Encoder::new(parsed.schema, EncoderContext::of(&api)));
    let outcome = api.bus.subscribe(SubscriptionRequest {
        config: parsed.config,
        streams: parsed.streams,
        encoder: Arc::new(move |e, out| {
            if let Some(record) = encoder.encode(e) {
                out(record);
            }
        }),
        drop_notice: Arc::new(encode::dropped),
    });
    tracing::debug!(pod = %api.pod_name, extension = %reg.name, ?outcome, schema = ?parsed.schema, "telemetry subscription");
    Ok(super::subscribed(&api, reg.name, parsed.types))
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::StatusCode;
    use std::time::Duration;

    fn err(body: &str) -> String {
        match parse(body.as_bytes()) {
            Err(e) => {
                assert_eq!(e.status(), StatusCode::BAD_REQUEST);
                assert_eq!(e.error_type(), "ValidationError");
                e.to_string()
            }
            Ok(p) => panic!("accepted {body}: {p:?}"),
        }
    }

    #[test]
    fn lambda_extension_body_is_accepted_with_lambda_defaults() {
        let p = parse(br#"{"schemaVersion":"2022-07-01","types":["platform","function"],"buffering":{"timeoutMs":1000,"maxBytes":262144,"maxItems":10000},"destination":{"protocol":"HTTP","URI":"http://sandbox.localdomain:9003"}}"#).unwrap();
        assert_eq!(p.schema, Schema::V2022_07_01);
        assert_eq!(p.config.uri, "http://127.0.0.1:9003/");
        assert_eq!(p.streams, vec![Stream::Platform, Stream::Function]);
        let p = parse(br#"{"schemaVersion":"2025-01-29","types":["extension"],"destination":{"protocol":"HTTP","URI":"http://sandbox:4243/lambda/t?x=1","method":"POST","encoding":"JSON"}}"#).unwrap();
        assert_eq!(p.schema, Schema::V2025_01_29);
        assert_eq!(p.config.uri, "http://127.0.0.1:4243/lambda/t?x=1");
        assert_eq!(
            (
                p.config.buffering.max_items,
                p.config.buffering.max_bytes,
                p.config.buffering.timeout
            ),
            (10_000, 262_144, Duration::from_millis(1000))
        );
    }

    #[test]
    fn rules() {
        let dest = r#""destination":{"protocol":"HTTP","URI":"http://sandbox.localdomain:9003"}"#;
        assert!(err(&format!(r#"{{"types":["platform"],{dest}}}"#))
            .contains("schemaVersion is required"));
        assert!(err(&format!(
            r#"{{"schemaVersion":"2021-03-18","types":["platform"],{dest}}}"#
        ))
        .contains("not supported"));
        assert!(err(&format!(
            r#"{{"schemaVersion":"2022-12-13","types":[],{dest}}}"#
        ))
        .contains("types should not be empty"));
        assert!(err(&format!(
            r#"{{"schemaVersion":"2022-12-13","types":["logs"],{dest}}}"#
        ))
        .contains("unknown type"));
        assert!(
            err(r#"{"schemaVersion":"2022-12-13","types":["platform"]}"#)
                .contains("destination is required")
        );
        assert!(err(r#"{"schemaVersion":"2022-12-13","types":["platform"],"destination":{"protocol":"TCP","port":9003}}"#).contains("TCP"));
        assert!(err(r#"{"schemaVersion":"2022-12-13","types":["platform"],"destination":{"protocol":"HTTP","URI":"http://sandbox.localdomain"}}"#).contains("URI port is not provided"));
        assert!(err(r#"{"schemaVersion":"2022-12-13","types":["platform"],"destination":{"protocol":"HTTP","URI":"http://example.com:80"}}"#).contains("sandbox.localdomain"));
        assert!(err(r#"{"schemaVersion":"2022-12-13","types":["platform"],"destination":{"protocol":"HTTP","URI":"https://sandbox:80"}}"#).contains("http://"));
        assert!(err(&format!(r#"{{"schemaVersion":"2022-12-13","types":["platform"],"buffering":{{"maxItems":999}},{dest}}}"#)).contains("maxItems must be between 1000 and 10000"));
        assert!(err(&format!(r#"{{"schemaVersion":"2022-12-13","types":["platform"],"buffering":{{"timeoutMs":24}},{dest}}}"#)).contains("timeoutMs"));
        assert!(err(&format!(r#"{{"schemaVersion":"2022-12-13","types":["platform"],"buffering":{{"maxBytes":1048577}},{dest}}}"#)).contains("maxBytes"));
        assert!(err("{").contains("invalid subscription body"));
    }
}
