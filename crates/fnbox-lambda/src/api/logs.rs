//! The legacy Logs API (`PUT /2020-08-15/logs`, lambda-facts §3.6): still served by Lambda for
//! the extensions written against it, superseded by the Telemetry API.
//!
//! A subscription names its optional `schemaVersion` (`2020-08-15`, the default, or
//! `2021-03-18`, which adds `platform.runtimeDone`), its `types`, its buffering (the Telemetry
//! API's ranges and defaults: 1 000–10 000 items, 262 144–1 048 576 bytes, 25–30 000 ms) and an
//! HTTP destination inside the sandbox (`sandbox.localdomain`, `sandbox`, `localhost`,
//! `127.0.0.1`), delivered with `method` POST (default) or PUT. It joins the engine's
//! telemetry bus with a [`crate::logs::LogsEncoder`], like a Telemetry API subscription, and a
//! `platform.logsSubscription` record is published. Success is `200 "OK"`; a bad body is 400
//! `Logs.ValidationError` with the rule.
//!
//! # Limitations
//! As for the Telemetry API: only an instance's first subscription gets the events published
//! before it. Lambda refuses a second subscription through the other API from the same
//! extension; fnbox accepts it (the body of Lambda's refusal is not documented).

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
use fnbox_wire::lambda::{paths, SubscribeRequest};
use http::HeaderMap;

use super::error::ApiError;
use super::extension::identify;
use super::telemetry::{loopback_uri, DEFAULT_MAX_BYTES, DEFAULT_MAX_ITEMS, DEFAULT_TIMEOUT_MS};
use crate::logs::{self, LogsEncoder, LogsSchema, LOGS_SCHEMA_VERSIONS};

/// The Logs API route.
pub fn router() -> Router<Arc<InstanceApi>> {
    Router::new().route(paths::LOGS, put(subscribe))
}

/// A checked Logs API subscription.
#[derive(Debug)]
pub(crate) struct Parsed {
    pub schema: LogsSchema,
    pub streams: Vec<Stream>,
    pub types: Vec<String>,
    pub config: SubscriberConfig,
}

fn invalid(message: impl Into<String>) -> ApiError {
    ApiError::LogsValidation(message.into())
}

/// Checks a Logs API subscription body.
pub(crate) fn parse(body: &[u8]) -> Result<Parsed, ApiError> {
    let req: SubscribeRequest = serde_json::from_slice(body)
        .map_err(|e| invalid(format!("invalid subscription body: {e}")))?;
    let schema = match req.schema_version.as_deref() {
        None => LogsSchema::V2020_08_15,
        Some(v) => LogsSchema::parse(v).ok_or_else(|| {
            invalid(format!(
                "schemaVersion {v:?} is not supported by the Logs API; allowed: {}",
                LOGS_SCHEMA_VERSIONS.join(", ")
            ))
        })?,
    };
    let types = req.types.unwrap_or_default();
    if types.is_empty() {
        return Err(invalid(
            "types should not be empty; allowed: platform, function, extension",
        ));
    }
    let streams = parse_streams(&types, Duplicates::Ignore).map_err(|e| invalid(e.to_string()))?;
    let names = streams
        .iter()
        .map(|s| stream_name(*s).to_string())
        .collect();
    let destination = req.destination.ok_or_else(|| {
        invalid("destination is required: {\"protocol\":\"HTTP\",\"URI\":\"http://sandbox.localdomain:<port>\"}")
    })?;
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
    let method = match destination.method.as_deref() {
        None => http::Method::POST,
        Some(m) if m.eq_ignore_ascii_case("POST") => http::Method::POST,
        Some(m) if m.eq_ignore_ascii_case("PUT") => http::Method::PUT,
        Some(m) => {
            return Err(invalid(format!(
                "destination.method must be \"POST\" or \"PUT\", got {m:?}"
            )))
        }
    };
    if let Some(e) = destination.encoding.as_deref() {
        if !e.eq_ignore_ascii_case("JSON") {
            return Err(invalid(format!(
                "destination.encoding must be \"JSON\", got {e:?}"
            )));
        }
    }
    let uri = destination
        .uri
        .ok_or_else(|| invalid("destination.URI is required for protocol HTTP"))?;
    let target = loopback_uri(&uri).map_err(|e| invalid(e.to_string()))?;
    let b = req.buffering.unwrap_or_default();
    let buffering = Buffering::from_request(
        Some(b.max_items.unwrap_or(DEFAULT_MAX_ITEMS)),
        Some(b.max_bytes.unwrap_or(DEFAULT_MAX_BYTES)),
        Some(b.timeout_ms.unwrap_or(DEFAULT_TIMEOUT_MS)),
    )
    .map_err(|e| invalid(e.to_string()))?;
    let mut config = SubscriberConfig::new(&target).map_err(|e| invalid(e.to_string()))?;
    config.buffering = buffering;
    config.method = method;
    Ok(Parsed {
        schema,
        streams,
        types: names,
        config,
    })
}

async fn subscribe(
    State(api): State<Arc<InstanceApi>>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let reg = identify(&api, &headers)?;
    let body = super::subscription_body(&headers, body, invalid).await?;
    let parsed = parse(&body)?;
    let encoder = Arc::new(LogsEncoder::new(parsed.schema, api.package.config.timeout));
    let outcome = api.bus.subscribe(SubscriptionRequest {
        config: parsed.config,
        streams: parsed.streams,
        encoder: Arc::new(move |e, out| encoder.encode(e, out)),
        drop_notice: Arc::new(logs::dropped),
    });
    tracing::debug!(pod = %api.pod_name, extension = %reg.name, ?outcome, schema = ?parsed.schema, "logs subscription");
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
                assert_eq!(e.error_type(), "Logs.ValidationError");
                e.to_string()
            }
            Ok(p) => panic!("accepted {body}: {p:?}"),
        }
    }

    #[test]
    fn the_documented_example_and_the_samples_bodies_are_accepted() {
        // AWS's example subscription (runtimes-logs-api).
        let p = parse(br#"{ "schemaVersion": "2020-08-15", "types": ["platform", "function"], "buffering": {"maxItems": 1000, "maxBytes": 262144, "timeoutMs": 100}, "destination": {"protocol": "HTTP", "URI": "http://sandbox.localdomain:8080/lambda_logs"}}"#).unwrap();
        assert_eq!(p.schema, LogsSchema::V2020_08_15);
        assert_eq!(p.config.uri, "http://127.0.0.1:8080/lambda_logs");
        assert_eq!(p.config.method, http::Method::POST);
        assert_eq!(p.streams, vec![Stream::Platform, Stream::Function]);
        assert_eq!(
            (p.config.buffering.max_items, p.config.buffering.timeout),
            (1000, Duration::from_millis(100))
        );
        // No schemaVersion (aws-samples' Python Logs API extension), host `sandbox`.
        let p = parse(br#"{"destination":{"protocol":"HTTP","URI":"http://sandbox:4243"},"types":["platform","function"],"buffering":{"timeoutMs":1000,"maxBytes":262144,"maxItems":10000}}"#).unwrap();
        assert_eq!(p.schema, LogsSchema::V2020_08_15);
        assert_eq!(p.config.uri, "http://127.0.0.1:4243/");
        // lambda-extension's logs processor: 2021-03-18, PUT.
        let p = parse(br#"{"schemaVersion":"2021-03-18","types":["function"],"destination":{"protocol":"HTTP","URI":"http://sandbox.localdomain:9002","method":"PUT","encoding":"JSON"}}"#).unwrap();
        assert_eq!(p.schema, LogsSchema::V2021_03_18);
        assert_eq!(p.config.method, http::Method::PUT);
    }

    #[test]
    fn rules() {
        let dest = r#""destination":{"protocol":"HTTP","URI":"http://sandbox.localdomain:9003"}"#;
        assert!(err(&format!(
            r#"{{"schemaVersion":"2022-07-01","types":["platform"],{dest}}}"#
        ))
        .contains("2020-08-15, 2021-03-18"));
        assert!(err(&format!(r#"{{"types":[],{dest}}}"#)).contains("types should not be empty"));
        assert!(err(r#"{"types":["platform"]}"#).contains("destination is required"));
        assert!(err(r#"{"types":["platform"],"destination":{"protocol":"HTTP","URI":"http://sandbox.localdomain"}}"#).contains("URI port is not provided"));
        assert!(err(r#"{"types":["platform"],"destination":{"protocol":"HTTP","URI":"http://sandbox:1","method":"GET"}}"#).contains("POST\" or \"PUT"));
        assert!(
            err(r#"{"types":["platform"],"destination":{"protocol":"TCP","port":9}}"#)
                .contains("TCP")
        );
        assert!(err(&format!(
            r#"{{"types":["platform"],"buffering":{{"maxItems":999}},{dest}}}"#
        ))
        .contains("maxItems"));
    }
}
