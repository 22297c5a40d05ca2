//! The request helpers every router shares: the instance APIs of both dialects and the front
//! door read bodies, headers and telemetry stream lists the same way, so each is written once
//! here and every crate maps the typed errors into its own response shape.
//!
//! # Design
//! - [`read_body`] bounds every body it reads: it never buffers more than `limit` bytes, and
//!   says whether a body was refused for its size ([`BodyError::TooLarge`]) or could not be
//!   read ([`BodyError::Read`]); the caller decides the status and body (413 `FSS.0413`,
//!   Lambda's `RequestEntityTooLarge`, …).
//! - [`Oversize`] is the one policy difference between callers: the front door refuses a
//!   declared `Content-Length` over the limit before reading anything (a client sending 50 MB
//!   learns at once); an instance API reads up to the limit first, so a runtime still writing
//!   its response gets the 413 instead of a reset connection.
//! - [`parse_streams`] turns a subscription's `types` into the bus's [`Stream`]s with one
//!   spelling of its messages for both dialects.

use axum::body::Body;
use bytes::Bytes;
use http::HeaderMap;
use http_body_util::{BodyExt, LengthLimitError, Limited};

use crate::telemetry::Stream;

/// What [`read_body`] does when `Content-Length` already says the body is over the limit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Oversize {
    /// Refuse at once, reading nothing.
    RefuseEarly,
    /// Read up to the limit and refuse then (the sender sees the answer, not a reset).
    ReadToLimit,
}

/// Why a request body was not read.
#[derive(Debug, thiserror::Error)]
pub enum BodyError {
    /// The body is (or says it is) over the limit.
    #[error("request body {} exceeds the limit of {limit} bytes", declared.map(|s| format!("of {s} bytes")).unwrap_or_default())]
    TooLarge {
        /// The limit, bytes.
        limit: usize,
        /// The declared `Content-Length`, when there was a valid one.
        declared: Option<u64>,
    },
    /// The body could not be read: the connection broke or the body ended early.
    #[error("cannot read the request body: {0}")]
    Read(#[source] axum::BoxError),
}

/// A request body read whole, with its trailers when it had any.
#[derive(Debug)]
pub struct ReadBody {
    /// The bytes.
    pub data: Bytes,
    /// Trailers (a streamed Lambda response may carry its error in them).
    pub trailers: Option<HeaderMap>,
}

/// The declared `Content-Length`, when it is a valid number.
pub fn content_length(headers: &HeaderMap) -> Option<u64> {
    headers
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
}

/// Reads a request body of at most `limit` bytes, trailers included. Reading stops as soon as
/// the limit is passed.
pub async fn read_body_with_trailers(
    body: Body,
    headers: &HeaderMap,
    limit: usize,
    oversize: Oversize,
) -> Result<ReadBody, BodyError> {
    let declared = content_length(headers);
    let too_large = BodyError::TooLarge { limit, declared };
    if oversize == Oversize::RefuseEarly && declared.is_some_and(|n| n > limit as u64) {
        return Err(too_large);
    }
    match Limited::new(body, limit).collect().await {
        Ok(collected) => {
            let trailers = collected.trailers().cloned();
            Ok(ReadBody {
                data: collected.to_bytes(),
                trailers,
            })
        }
        Err(e) if e.is::<LengthLimitError>() => Err(too_large),
        Err(e) => Err(BodyError::Read(e)),
    }
}

/// Reads a request body of at most `limit` bytes (see [`read_body_with_trailers`]).
pub async fn read_body(
    body: Body,
    headers: &HeaderMap,
    limit: usize,
    oversize: Oversize,
) -> Result<Bytes, BodyError> {
    read_body_with_trailers(body, headers, limit, oversize)
        .await
        .map(|b| b.data)
}

/// A header's value as trimmed text; `None` when absent, empty, blank or not visible ASCII.
pub fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|v| !v.is_empty())
}

/// What a dialect does with a stream listed twice.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Duplicates {
    /// Refuse the subscription (FunctionGraph, CONTRACT §4).
    Reject,
    /// Keep the first (Lambda accepts `["platform","platform"]`).
    Ignore,
}

/// Why a `types` list was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum StreamsError {
    /// A name that is not a stream.
    #[error("unknown type {0:?}; allowed: platform, function, extension")]
    Unknown(String),
    /// A stream listed twice, under [`Duplicates::Reject`].
    #[error("type {0:?} is listed twice")]
    Duplicate(String),
}

/// The wire name of a stream.
pub fn stream_name(stream: Stream) -> &'static str {
    match stream {
        Stream::Platform => "platform",
        Stream::Function => "function",
        Stream::Extension => "extension",
    }
}

/// Parses a subscription's `types` into streams, in the order given. An empty list is
/// returned empty: each dialect words its own "at least one" message.
pub fn parse_streams(
    types: &[String],
    duplicates: Duplicates,
) -> Result<Vec<Stream>, StreamsError> {
    let mut streams = Vec::with_capacity(types.len());
    for t in types {
        let s = match t.as_str() {
            "platform" => Stream::Platform,
            "function" => Stream::Function,
            "extension" => Stream::Extension,
            other => return Err(StreamsError::Unknown(other.to_string())),
        };
        if streams.contains(&s) {
            match duplicates {
                Duplicates::Reject => return Err(StreamsError::Duplicate(t.clone())),
                Duplicates::Ignore => continue,
            }
        }
        streams.push(s);
    }
    Ok(streams)
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn with_length(n: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(
            http::header::CONTENT_LENGTH,
            HeaderValue::from_str(n).unwrap(),
        );
        h
    }

    #[tokio::test]
    async fn bodies_within_the_limit_are_read_whole() {
        let b = read_body(
            Body::from("hello"),
            &with_length("5"),
            5,
            Oversize::RefuseEarly,
        )
        .await
        .unwrap();
        assert_eq!(&b[..], b"hello");
    }

    #[tokio::test]
    async fn over_the_limit_is_too_large_under_both_policies() {
        for oversize in [Oversize::RefuseEarly, Oversize::ReadToLimit] {
            match read_body(Body::from("hello!"), &HeaderMap::new(), 5, oversize).await {
                Err(BodyError::TooLarge {
                    limit: 5,
                    declared: None,
                }) => {}
                other => panic!("{oversize:?}: {other:?}"),
            }
        }
    }

    #[tokio::test]
    async fn a_declared_length_is_refused_early_only_when_asked() {
        // The body is small but claims to be large: only RefuseEarly trusts the claim.
        let e = read_body(
            Body::from("hi"),
            &with_length("99"),
            5,
            Oversize::RefuseEarly,
        )
        .await
        .unwrap_err();
        assert_eq!(
            e.to_string(),
            "request body of 99 bytes exceeds the limit of 5 bytes"
        );
        let b = read_body(
            Body::from("hi"),
            &with_length("99"),
            5,
            Oversize::ReadToLimit,
        )
        .await
        .unwrap();
        assert_eq!(&b[..], b"hi");
    }

    #[tokio::test]
    async fn a_failing_body_is_a_read_error() {
        let failing = Body::from_stream(futures::stream::iter([
            Ok(Bytes::from_static(b"ab")),
            Err(std::io::Error::other("connection reset")),
        ]));
        match read_body(failing, &HeaderMap::new(), 5, Oversize::ReadToLimit).await {
            Err(BodyError::Read(e)) => assert!(e.to_string().contains("connection reset")),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn headers_are_trimmed_and_blank_is_absent() {
        let mut h = HeaderMap::new();
        h.insert("x-a", HeaderValue::from_static("  v  "));
        h.insert("x-b", HeaderValue::from_static("   "));
        assert_eq!(header(&h, "x-a"), Some("v"));
        assert_eq!(header(&h, "X-A"), Some("v"));
        assert_eq!(header(&h, "x-b"), None);
        assert_eq!(header(&h, "x-c"), None);
    }

    #[test]
    fn stream_lists() {
        let list = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(
            parse_streams(&list(&["function", "platform"]), Duplicates::Reject),
            Ok(vec![Stream::Function, Stream::Platform])
        );
        assert_eq!(
            parse_streams(&list(&["platform", "platform"]), Duplicates::Ignore),
            Ok(vec![Stream::Platform])
        );
        let dup = parse_streams(&list(&["platform", "platform"]), Duplicates::Reject).unwrap_err();
        assert_eq!(dup.to_string(), "type \"platform\" is listed twice");
        let unknown = parse_streams(&list(&["logs"]), Duplicates::Ignore).unwrap_err();
        assert_eq!(
            unknown.to_string(),
            "unknown type \"logs\"; allowed: platform, function, extension"
        );
        for s in [Stream::Platform, Stream::Function, Stream::Extension] {
            assert_eq!(
                parse_streams(&list(&[stream_name(s)]), Duplicates::Reject),
                Ok(vec![s])
            );
        }
    }
}
