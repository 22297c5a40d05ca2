//! Runtime API 2018-06-01 (lambda-facts §1): `GET …/invocation/next`,
//! `POST …/invocation/{id}/response` (buffered or streamed), `POST …/invocation/{id}/error`,
//! `POST …/init/error`, and RIE's `GET /2018-06-01/ping`.
//!
//! # Design
//! Streamed responses (`Lambda-Runtime-Function-Response-Mode: streaming`) are read to their
//! end and handed to the engine as one body: the engine and the front door know one result per
//! invocation. The HTTP-integration prelude (JSON + eight NUL bytes) is removed, and an error
//! reported mid-stream — as real HTTP trailers, or as the trailer text `lambda_runtime` writes
//! into the body — turns the invocation into a function error.
//!
//! # Limitations
//! A streamed response is collected up to 20 MiB (Lambda's long-standing soft limit); the
//! caller receives it when the stream ends, not chunk by chunk. Client context and Cognito
//! identity headers are never sent: fnbox's invoke requests carry neither.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use base64::Engine as _;
use bytes::Bytes;
use fnbox_engine::http_util::{header, read_body_with_trailers, BodyError, Oversize};
use fnbox_engine::instance::channel::RuntimeReply;
use fnbox_engine::InstanceApi;
use fnbox_wire::lambda::{
    function_arn, headers as h, paths, ErrorBody, HTTP_INTEGRATION_CONTENT_TYPE, RESPONSE_MAX,
    RESPONSE_MODE_STREAMING, STREAMED_RESPONSE_MAX,
};
use http::{HeaderMap, HeaderValue, StatusCode};

use super::accepted;
use super::error::ApiError;
use crate::env::lambda_region;
use crate::trace::trace_header_for_deadline;

type Api = State<Arc<InstanceApi>>;

/// Routes of the Runtime API.
pub fn router() -> Router<Arc<InstanceApi>> {
    Router::new()
        .route(paths::NEXT, get(next))
        .route(paths::RESPONSE, post(response))
        .route(paths::ERROR, post(error))
        .route(paths::INIT_ERROR, post(init_error))
        .route(paths::RESTORE_NEXT, get(restore_next))
        .route(paths::RESTORE_ERROR, post(restore_error))
        .route(paths::PING, get(|| async { "pong" }))
}

async fn next(State(api): Api) -> Result<Response, ApiError> {
    let config = &api.package.config;
    if config.concurrent_num == 1 && api.runtime.in_flight() > 0 {
        return Err(ApiError::InvalidStateTransition {
            from: "Running",
            to: "Ready",
        });
    }
    let work = api.runtime.next().await;
    let mut headers = HeaderMap::new();
    let mut put = |name: &'static str, value: String| {
        if let Ok(v) = HeaderValue::from_str(&value) {
            headers.insert(name, v);
        }
    };
    put(h::REQUEST_ID, work.request_id.clone());
    put(h::DEADLINE_MS, work.deadline_epoch_ms.to_string());
    put(
        h::INVOKED_FUNCTION_ARN,
        function_arn(lambda_region(config), &config.func_name),
    );
    // Under a caller's `traceparent`, the X-Ray form of the invocation's W3C context; else
    // the header derived from the request id, as always.
    let trace = match work.trace {
        Some(t) if t.parent.is_some() => t.xray(),
        _ => trace_header_for_deadline(&work.request_id, work.deadline_epoch_ms, config.timeout),
    };
    put(h::TRACE_ID, trace);
    headers.insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    Ok((StatusCode::OK, headers, work.body).into_response())
}

/// A runtime's response or error body, read up to `limit` with its trailers.
async fn read_reply(
    body: Body,
    headers: &HeaderMap,
    limit: usize,
) -> Result<(Bytes, Option<HeaderMap>), BodyError> {
    read_body_with_trailers(body, headers, limit, Oversize::ReadToLimit)
        .await
        .map(|b| (b.data, b.trailers))
}

fn error_json(error_type: &str, message: impl Into<String>) -> Bytes {
    Bytes::from(serde_json::to_vec(&ErrorBody::new(error_type, message)).expect("error serializes"))
}

fn too_large() -> Bytes {
    error_json(
        "Function.ResponseSizeTooLarge",
        format!(
            "Response payload size exceeded maximum allowed payload size ({RESPONSE_MAX} bytes)."
        ),
    )
}

/// The `{id}` of a response or error path, if it names an invocation in flight. One that does
/// not decode (percent-encoded bytes that are not UTF-8, as the `instance_api_fg` fuzz target
/// found for FunctionGraph) names none either: "Invalid request ID" in the API's JSON shape,
/// rather than axum's plain-text rejection.
fn in_flight_id(
    api: &InstanceApi,
    id: Result<Path<String>, PathRejection>,
) -> Result<String, ApiError> {
    match id {
        Ok(Path(id)) if api.runtime.is_in_flight(&id) => Ok(id),
        _ => Err(ApiError::InvalidRequestId),
    }
}

async fn response(
    State(api): Api,
    id: Result<Path<String>, PathRejection>,
    headers: HeaderMap,
    body: Body,
) -> Result<impl IntoResponse, ApiError> {
    let id = in_flight_id(&api, id)?;
    let reply = match header(&headers, h::RESPONSE_MODE) {
        Some(mode) if mode != RESPONSE_MODE_STREAMING => {
            let _ = api.runtime.complete(
                &id,
                RuntimeReply::Error(error_json(
                    "Runtime.InvalidResponseModeHeader",
                    format!("invalid {} header value: {mode:?}", h::RESPONSE_MODE),
                )),
            );
            return Err(ApiError::InvalidResponseMode);
        }
        Some(_) => streamed_reply(
            &headers,
            read_reply(body, &headers, STREAMED_RESPONSE_MAX).await,
        ),
        None => match read_reply(body, &headers, RESPONSE_MAX).await {
            Ok((data, _)) => Ok(RuntimeReply::Response(data)),
            Err(BodyError::TooLarge { .. }) => Err((ApiError::PayloadTooLarge, too_large())),
            Err(BodyError::Read(_)) => Err((
                ApiError::Truncated,
                error_json(
                    "Runtime.TruncatedResponse",
                    "the runtime's response ended early",
                ),
            )),
        },
    };
    match reply {
        Ok(reply) => {
            api.runtime
                .complete(&id, reply)
                .map_err(|_| ApiError::InvalidRequestId)?;
            Ok(accepted())
        }
        Err((err, body)) => {
            let _ = api.runtime.complete(&id, RuntimeReply::Error(body));
            Err(err)
        }
    }
}

/// Turns a read streamed body into the invocation's reply (see the module's Design).
fn streamed_reply(
    headers: &HeaderMap,
    read: Result<(Bytes, Option<HeaderMap>), BodyError>,
) -> Result<RuntimeReply, (ApiError, Bytes)> {
    let (data, trailers) = match read {
        Ok(r) => r,
        Err(BodyError::TooLarge { .. }) => return Err((ApiError::PayloadTooLarge, too_large())),
        Err(BodyError::Read(_)) => {
            return Ok(RuntimeReply::Error(error_json(
                "Runtime.TruncatedResponse",
                "the runtime's streamed response ended early",
            )))
        }
    };
    let from_trailers = trailers.as_ref().and_then(|t| {
        header(t, h::FUNCTION_ERROR_TYPE).map(|ty| {
            (
                ty.to_string(),
                header(t, h::FUNCTION_ERROR_BODY).map(str::to_string),
            )
        })
    });
    let (data, error) = match from_trailers {
        Some(e) => (data, Some(e)),
        None => split_pseudo_trailer(data),
    };
    if let Some((error_type, encoded)) = error {
        return Ok(RuntimeReply::Error(stream_error_body(
            &error_type,
            encoded.as_deref(),
        )));
    }
    let integration = header(headers, http::header::CONTENT_TYPE.as_str())
        .is_some_and(|ct| ct.starts_with(HTTP_INTEGRATION_CONTENT_TYPE));
    Ok(RuntimeReply::Response(if integration {
        strip_prelude(data)
    } else {
        data
    }))
}

/// `lambda_runtime` writes its error trailers into the body as text: splits them off.
fn split_pseudo_trailer(data: Bytes) -> (Bytes, Option<(String, Option<String>)>) {
    let marker = format!("{}: ", h::FUNCTION_ERROR_TYPE);
    let Some(pos) = find_last(&data, marker.as_bytes()) else {
        return (data, None);
    };
    let Ok(tail) = std::str::from_utf8(&data[pos..]) else {
        return (data, None);
    };
    // Exactly the two trailer lines `lambda_runtime` writes, each ended by CRLF.
    if !tail.ends_with("\r\n") {
        return (data, None);
    }
    let mut error_type = None;
    let mut error_body = None;
    for line in tail.split("\r\n").filter(|l| !l.is_empty()) {
        match line.split_once(": ") {
            Some((k, v)) if k.eq_ignore_ascii_case(h::FUNCTION_ERROR_TYPE) => {
                error_type = Some(v.trim().to_string())
            }
            Some((k, v)) if k.eq_ignore_ascii_case(h::FUNCTION_ERROR_BODY) => {
                error_body = Some(v.trim().to_string())
            }
            _ => return (data, None),
        }
    }
    match (error_type, error_body) {
        (Some(t), Some(b)) => (data.slice(..pos), Some((t, Some(b)))),
        _ => (data, None),
    }
}

fn find_last(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).rposition(|w| w == needle)
}

/// The error document of a mid-stream failure: the base64 body decoded (a JSON error as is,
/// anything else as the message).
fn stream_error_body(error_type: &str, encoded: Option<&str>) -> Bytes {
    let decoded = encoded
        .and_then(|b| {
            base64::engine::general_purpose::STANDARD
                .decode(b.trim())
                .ok()
        })
        .unwrap_or_default();
    match serde_json::from_slice::<serde_json::Value>(&decoded) {
        Ok(serde_json::Value::Object(mut o)) => {
            o.entry("errorType")
                .or_insert_with(|| serde_json::Value::String(error_type.to_string()));
            Bytes::from(serde_json::to_vec(&o).expect("object serializes"))
        }
        _ => error_json(error_type, String::from_utf8_lossy(&decoded).into_owned()),
    }
}

/// Drops the HTTP-integration prelude: everything up to and including the first 8 NUL bytes.
fn strip_prelude(data: Bytes) -> Bytes {
    match data.windows(8).position(|w| w == [0u8; 8]) {
        Some(pos) => data.slice(pos + 8..),
        None => data,
    }
}

/// The error document a runtime posted, as the caller gets it: the body unchanged when it is
/// JSON (minus an X-Ray `errorCause`), else one built from the error-type header.
fn error_document(headers: &HeaderMap, body: Bytes) -> Bytes {
    let error_type = header(headers, h::FUNCTION_ERROR_TYPE);
    let cause = header(headers, http::header::CONTENT_TYPE.as_str())
        .is_some_and(|ct| ct.starts_with("application/vnd.aws.lambda.error.cause+json"));
    match serde_json::from_slice::<serde_json::Value>(&body) {
        Ok(serde_json::Value::Object(mut o)) => {
            let missing_type = !o.get("errorType").is_some_and(|t| t.is_string());
            if !(cause || missing_type && error_type.is_some()) {
                return body;
            }
            o.remove("errorCause");
            if missing_type {
                if let Some(t) = error_type {
                    o.insert("errorType".into(), serde_json::Value::String(t.into()));
                }
            }
            Bytes::from(serde_json::to_vec(&o).expect("object serializes"))
        }
        _ => error_json(
            error_type.unwrap_or("Runtime.Unknown"),
            String::from_utf8_lossy(&body).into_owned(),
        ),
    }
}

async fn error(
    State(api): Api,
    id: Result<Path<String>, PathRejection>,
    headers: HeaderMap,
    body: Body,
) -> Result<impl IntoResponse, ApiError> {
    let id = in_flight_id(&api, id)?;
    let body = match read_reply(body, &headers, RESPONSE_MAX).await {
        Ok((data, _)) => data,
        Err(BodyError::TooLarge { .. }) => {
            let _ = api.runtime.complete(&id, RuntimeReply::Error(too_large()));
            return Err(ApiError::PayloadTooLarge);
        }
        Err(BodyError::Read(_)) => return Err(ApiError::Truncated),
    };
    api.runtime
        .complete(&id, RuntimeReply::Error(error_document(&headers, body)))
        .map_err(|_| ApiError::InvalidRequestId)?;
    Ok(accepted())
}

async fn init_error(
    State(api): Api,
    headers: HeaderMap,
    body: Body,
) -> Result<impl IntoResponse, ApiError> {
    let body = match read_reply(body, &headers, RESPONSE_MAX).await {
        Ok((data, _)) => data,
        Err(BodyError::TooLarge { .. }) => return Err(ApiError::PayloadTooLarge),
        Err(BodyError::Read(_)) => return Err(ApiError::Truncated),
    };
    let body = error_document(&headers, body);
    if api.fail_init(body) {
        Ok(accepted())
    } else {
        Err(ApiError::InvalidStateTransition {
            from: "Ready",
            to: "InitError",
        })
    }
}

/// SnapStart (`snap_start: PublishedVersions`): the runtime's init is over; answers 200 with
/// an empty body once the instance is restored (resume in place).
async fn restore_next(State(api): Api) -> Result<Response, ApiError> {
    if !api.package.config.snapshot.enabled {
        return Err(ApiError::NotSnapStart);
    }
    api.restore.next().await;
    Ok((StatusCode::OK, Body::empty()).into_response())
}

/// SnapStart: the runtime's after-restore hooks failed (`Lambda-Runtime-Function-Error-Type`).
async fn restore_error(
    State(api): Api,
    headers: HeaderMap,
    body: Body,
) -> Result<impl IntoResponse, ApiError> {
    if !api.package.config.snapshot.enabled {
        return Err(ApiError::NotSnapStart);
    }
    let body = match read_reply(body, &headers, RESPONSE_MAX).await {
        Ok((data, _)) => data,
        Err(BodyError::TooLarge { .. }) => return Err(ApiError::PayloadTooLarge),
        Err(BodyError::Read(_)) => return Err(ApiError::Truncated),
    };
    let error_type = header(&headers, h::FUNCTION_ERROR_TYPE)
        .unwrap_or(fnbox_engine::snapshot::AFTER_RESTORE_ERROR)
        .to_string();
    let body = error_document(&headers, body);
    if api.restore.fail(error_type, body) {
        Ok(accepted())
    } else {
        Err(ApiError::InvalidStateTransition {
            from: "Initializing",
            to: "RestoreError",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hm(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut m = HeaderMap::new();
        for (k, v) in pairs {
            m.insert(*k, HeaderValue::from_static(v));
        }
        m
    }

    fn reply_text(r: &RuntimeReply) -> (bool, String) {
        match r {
            RuntimeReply::Response(b) => (true, String::from_utf8_lossy(b).into_owned()),
            RuntimeReply::Error(b) => (false, String::from_utf8_lossy(b).into_owned()),
        }
    }

    #[test]
    fn pseudo_trailers_in_the_body_become_an_error() {
        let b64 = base64::engine::general_purpose::STANDARD.encode("boom");
        let data = Bytes::from(format!(
            "partial output\nLambda-Runtime-Function-Error-Type: Runtime.StreamError\r\nLambda-Runtime-Function-Error-Body: {b64}\r\n"
        ));
        let r = streamed_reply(&HeaderMap::new(), Ok((data, None))).unwrap();
        assert_eq!(
            reply_text(&r),
            (
                false,
                r#"{"errorMessage":"boom","errorType":"Runtime.StreamError"}"#.into()
            )
        );
        // Text that only mentions the header name is data.
        let data = Bytes::from_static(b"see Lambda-Runtime-Function-Error-Type: docs");
        let r = streamed_reply(&HeaderMap::new(), Ok((data, None))).unwrap();
        assert!(reply_text(&r).0);
    }

    #[test]
    fn real_trailers_carry_a_json_error() {
        let body = base64::engine::general_purpose::STANDARD
            .encode(r#"{"errorType":"Error","errorMessage":"mid-stream"}"#);
        let mut t = HeaderMap::new();
        t.insert(h::FUNCTION_ERROR_TYPE, HeaderValue::from_static("Error"));
        t.insert(
            h::FUNCTION_ERROR_BODY,
            HeaderValue::from_str(&body).unwrap(),
        );
        let r =
            streamed_reply(&HeaderMap::new(), Ok((Bytes::from_static(b"abc"), Some(t)))).unwrap();
        let (ok, text) = reply_text(&r);
        assert!(!ok);
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(v["errorMessage"], "mid-stream");
        assert_eq!(v["errorType"], "Error");
    }

    #[test]
    fn http_integration_prelude_is_removed() {
        let data = Bytes::from_static(b"{\"statusCode\":200}\0\0\0\0\0\0\0\0hello");
        let headers = hm(&[("content-type", HTTP_INTEGRATION_CONTENT_TYPE)]);
        let r = streamed_reply(&headers, Ok((data.clone(), None))).unwrap();
        assert_eq!(reply_text(&r), (true, "hello".into()));
        let r = streamed_reply(&HeaderMap::new(), Ok((data, None))).unwrap();
        assert!(reply_text(&r).1.starts_with("{\"statusCode\""));
    }

    #[test]
    fn error_documents() {
        let raw =
            Bytes::from_static(br#"{"errorMessage":"m","errorType":"ValueError","stackTrace":[]}"#);
        assert_eq!(
            error_document(&HeaderMap::new(), raw.clone()),
            raw,
            "JSON passes unchanged"
        );
        let built = error_document(
            &hm(&[(
                "lambda-runtime-function-error-type",
                "Runtime.NoSuchHandler",
            )]),
            Bytes::new(),
        );
        assert_eq!(
            built,
            r#"{"errorMessage":"","errorType":"Runtime.NoSuchHandler"}"#
        );
        let untyped = error_document(
            &hm(&[("lambda-runtime-function-error-type", "unhandled")]),
            Bytes::from_static(br#"{"errorMessage":"x"}"#),
        );
        let v: serde_json::Value = serde_json::from_slice(&untyped).unwrap();
        assert_eq!(v["errorType"], "unhandled");
        let cause = error_document(
            &hm(&[(
                "content-type",
                "application/vnd.aws.lambda.error.cause+json",
            )]),
            Bytes::from_static(
                br#"{"errorMessage":"x","errorType":"E","errorCause":{"paths":[]}}"#,
            ),
        );
        let v: serde_json::Value = serde_json::from_slice(&cause).unwrap();
        assert!(v.get("errorCause").is_none());
        assert_eq!(v["errorType"], "E");
        assert_eq!(
            error_document(&HeaderMap::new(), Bytes::from_static(b"plain")),
            r#"{"errorMessage":"plain","errorType":"Runtime.Unknown"}"#
        );
    }
}
