//! `POST /telemetry` (CONTRACT §4): one subscriber per instance, after an extension
//! registered, a listener in 127.0.0.1:8081–8090, a non-empty subset of the three types,
//! optional Lambda-style `buffering`, optional `compat: doc`.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::State;
use axum::routing::post;
use axum::Router;
use fnbox_engine::http_util::{parse_streams, read_body, Duplicates, Oversize};
use fnbox_engine::telemetry::{Stream, SubscribeOutcome, SubscriptionRequest};
use fnbox_engine::InstanceApi;
use fnbox_telemetry::{Buffering, SubscriberConfig};
use fnbox_wire::fg::{paths, strip_trailing_commas, SubscribeRequest};
use fnbox_wire::limits::CONTROL_BODY_MAX;
use http::{HeaderMap, StatusCode};

use super::error::ApiError;
use super::extension::parse_listener_address;
use crate::encode::{self, Spelling};

/// Routes of the telemetry API.
pub fn router() -> Router<Arc<InstanceApi>> {
    Router::new().route(paths::TELEMETRY, post(subscribe))
}

fn bad(message: impl Into<String>) -> ApiError {
    ApiError::BadRequest {
        error_type: "Telemetry.InvalidRequest",
        message: message.into(),
    }
}

/// Checks a subscription body and turns it into what the bus needs.
pub(crate) fn parse(body: &[u8]) -> Result<(SubscriberConfig, Vec<Stream>, Spelling), ApiError> {
    let text = std::str::from_utf8(body).map_err(|_| bad("the body is not UTF-8 JSON"))?;
    let req: SubscribeRequest = serde_json::from_str(&strip_trailing_commas(text))
        .map_err(|e| bad(format!("invalid subscription body: {e}")))?;
    if req.subscriber.protocol != "POST" {
        return Err(bad(format!(
            "subscriber.protocol must be \"POST\", got {:?}",
            req.subscriber.protocol
        )));
    }
    let uri: http::Uri = req.subscriber.uri.parse().map_err(|_| {
        bad(format!(
            "subscriber.uri {:?} is not a URI",
            req.subscriber.uri
        ))
    })?;
    if uri.scheme_str() != Some("http") {
        return Err(bad(format!(
            "subscriber.uri {:?} must start with http://",
            req.subscriber.uri
        )));
    }
    let authority = uri.authority().map(|a| a.as_str()).unwrap_or_default();
    parse_listener_address(&authority.replace("localhost", "127.0.0.1"))
        .map_err(|m| bad(format!("subscriber.uri: {m}")))?;
    if req.types.is_empty() {
        return Err(bad(
            "types must list at least one of platform, function, extension",
        ));
    }
    let streams = parse_streams(&req.types, Duplicates::Reject).map_err(|e| bad(e.to_string()))?;
    let buffering = match &req.buffering {
        None => Buffering::default(),
        Some(b) => Buffering::from_request(b.max_items, b.max_bytes, b.timeout_ms)
            .map_err(|e| bad(e.to_string()))?,
    };
    let spelling = match req.compat.as_deref() {
        None => Spelling::Schema,
        Some("doc") => Spelling::Doc,
        Some(other) => {
            return Err(bad(format!(
                "compat {other:?} is not known; the only value is \"doc\""
            )))
        }
    };
    let mut config = SubscriberConfig::new(&req.subscriber.uri).map_err(|e| bad(e.to_string()))?;
    config.buffering = buffering;
    Ok((config, streams, spelling))
}

async fn subscribe(
    State(api): State<Arc<InstanceApi>>,
    headers: HeaderMap,
    body: Body,
) -> Result<(StatusCode, &'static str), ApiError> {
    let body = read_body(body, &headers, CONTROL_BODY_MAX, Oversize::ReadToLimit).await?;
    if !api.extensions.any_registered() {
        return Err(ApiError::BadRequest {
            error_type: "Telemetry.NotRegistered",
            message: "register an extension (POST /extension/register) before subscribing".into(),
        });
    }
    let (config, streams, spelling) = parse(&body)?;
    if let Some(existing) = api.bus.subscriber_uri() {
        if existing != config.uri {
            return Err(ApiError::BadRequest {
                error_type: "Telemetry.AlreadySubscribed",
                message: format!("this instance already has a telemetry subscriber ({existing}); only one is allowed"),
            });
        }
    }
    let outcome = api.bus.subscribe(SubscriptionRequest {
        config,
        streams,
        encoder: Arc::new(move |e, out| {
            if let Some(record) = encode::encode(e, spelling) {
                out(record);
            }
        }),
        drop_notice: Arc::new(encode::dropped),
    });
    tracing::debug!(pod = %api.pod_name, ?outcome, "telemetry subscription");
    Ok((
        StatusCode::OK,
        if outcome == SubscribeOutcome::Created {
            "OK"
        } else {
            "OK (types replaced)"
        },
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(body: &str) -> String {
        match parse(body.as_bytes()) {
            Err(e) => e.to_string(),
            Ok(_) => panic!("accepted: {body}"),
        }
    }

    #[test]
    fn the_documented_body_with_its_trailing_comma_is_accepted() {
        let (c, s, sp) = parse(br#"{"subscriber": {"protocol": "POST", "uri": "http://127.0.0.1:8082"}, "types": ["platform", "function", "extension"],}"#).unwrap();
        assert_eq!(c.uri, "http://127.0.0.1:8082/");
        assert_eq!(s.len(), 3);
        assert_eq!(sp, Spelling::Schema);
        assert_eq!(c.buffering, Buffering::default());
    }

    #[test]
    fn rules() {
        let base = |uri: &str, types: &str| {
            format!(r#"{{"subscriber":{{"protocol":"POST","uri":"{uri}"}},"types":{types}}}"#)
        };
        assert!(err(&base("http://127.0.0.1:9000", r#"["platform"]"#)).contains("8081..8090"));
        assert!(err(&base("https://127.0.0.1:8082", r#"["platform"]"#)).contains("http://"));
        assert!(err(&base("http://10.0.0.1:8082", r#"["platform"]"#)).contains("127.0.0.1"));
        assert!(err(&base("http://127.0.0.1:8082", "[]")).contains("at least one"));
        assert!(
            err(&base("http://127.0.0.1:8082", r#"["platform","logs"]"#)).contains("unknown type")
        );
        assert!(
            err(&base("http://127.0.0.1:8082", r#"["platform","platform"]"#)).contains("twice")
        );
        assert!(err(r#"{"subscriber":{"protocol":"GET","uri":"http://127.0.0.1:8082"},"types":["platform"]}"#).contains("POST"));
        assert!(err(r#"{"subscriber":{"protocol":"POST","uri":"http://127.0.0.1:8082"},"types":["platform"],"buffering":{"maxItems":5}}"#).contains("maxItems"));
        assert!(err("{not json").contains("invalid subscription body"));
        let (c, _, sp) = parse(br#"{"subscriber":{"protocol":"POST","uri":"http://localhost:8083/t"},"types":["function"],"buffering":{"timeoutMs":25},"compat":"doc"}"#).unwrap();
        assert_eq!(c.buffering.timeout, std::time::Duration::from_millis(25));
        assert_eq!(sp, Spelling::Doc);
    }
}
