//! What the two front doors' result renderers share. Both answer a finished invocation the
//! same way up to their shape: a timeout becomes the dialect's timeout error, anything else a
//! 200 whose body is the result or an error document, and the log tail, when asked for, goes
//! base64 into a header. The dialect modules ([`super::fg`], [`super::lambda`]) only choose
//! spellings: header names, the fault document, the log's framing lines.

use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use bytes::Bytes;
use fnbox_engine::{Fault, FaultKind, InvokeResult};
use fnbox_wire::front::LOG_TAIL_BYTES;
use http::{HeaderMap, HeaderValue, StatusCode};

use super::error::FrontError;
use crate::invoke::{tail, Completed};

/// A finished invocation as the caller is answered, before the dialect's shape.
pub(crate) enum Answer {
    /// The function ran past its timeout: the dialect's timeout error.
    Timeout(FrontError),
    /// A 200.
    Body {
        /// The result, or the error document of a handler error or fault.
        body: Bytes,
        /// The body is an error document.
        func_err: bool,
    },
}

/// Classifies `done`; `fault_body` writes the dialect's error document of a fault other than
/// a timeout.
pub(crate) fn answer(done: &Completed, fault_body: impl FnOnce(&Fault) -> Bytes) -> Answer {
    match &done.result {
        InvokeResult::Fault(f) if f.kind == FaultKind::Timeout => {
            Answer::Timeout(FrontError::Timeout {
                request_id: done.request_id.clone(),
                message: f.message.clone(),
                timeout_secs: done.timeout_secs,
            })
        }
        InvokeResult::Ok(b) => Answer::Body {
            body: b.clone(),
            func_err: false,
        },
        InvokeResult::HandlerError(b) => Answer::Body {
            body: b.clone(),
            func_err: true,
        },
        InvokeResult::Fault(f) => Answer::Body {
            body: fault_body(f),
            func_err: true,
        },
    }
}

/// A 200 with `body` and its content type.
pub(crate) fn ok(body: Bytes, content_type: &'static str) -> Response {
    let mut resp = (StatusCode::OK, body).into_response();
    resp.headers_mut().insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static(content_type),
    );
    resp
}

/// Sets `name` to a text value; a value that cannot be a header (a control character in a
/// request id) is left out rather than failing the answer.
pub(crate) fn insert_text(h: &mut HeaderMap, name: &'static str, value: &str) {
    if let Ok(v) = HeaderValue::from_str(value) {
        h.insert(name, v);
    }
}

/// Appends the invocation's log lines, each ended by a newline, to `text` (the dialect's
/// opening line).
pub(crate) fn push_log_lines(text: &mut String, done: &Completed) {
    for line in &done.log {
        text.push_str(line);
        text.push('\n');
    }
}

/// The last [`LOG_TAIL_BYTES`] of a framed log, cut at a character boundary.
pub(crate) fn log_tail(text: &str) -> String {
    tail(text, LOG_TAIL_BYTES).to_string()
}

/// Sets `name` to the log tail, base64 (both front doors carry it this way).
pub(crate) fn insert_log(h: &mut HeaderMap, name: &'static str, log: &str) {
    let encoded = base64::engine::general_purpose::STANDARD.encode(log.as_bytes());
    insert_text(h, name, &encoded);
}

#[cfg(test)]
mod tests {
    use super::*;
    use fnbox_wire::front::InvokeSummary;

    fn done(result: InvokeResult) -> Completed {
        Completed {
            request_id: "r1".into(),
            result,
            summary: InvokeSummary {
                duration: 1.0,
                billing_duration: 1,
                memory_size: 128,
                memory_used: 1.0,
            },
            metrics: Default::default(),
            log: vec!["a".into(), "b".into()],
            timeout_secs: 3,
            init_duration_ms: None,
        }
    }

    fn fault(kind: FaultKind) -> InvokeResult {
        InvokeResult::Fault(Fault {
            kind,
            message: "m".into(),
        })
    }

    #[test]
    fn results_become_answers() {
        let body = |a: Answer| match a {
            Answer::Body { body, func_err } => (body, func_err),
            Answer::Timeout(e) => panic!("timeout: {e}"),
        };
        let fb = |_: &Fault| Bytes::from_static(b"fault");
        assert_eq!(
            body(answer(
                &done(InvokeResult::Ok(Bytes::from_static(b"ok"))),
                fb
            )),
            (Bytes::from_static(b"ok"), false)
        );
        assert_eq!(
            body(answer(
                &done(InvokeResult::HandlerError(Bytes::from_static(b"err"))),
                fb
            )),
            (Bytes::from_static(b"err"), true)
        );
        assert_eq!(
            body(answer(&done(fault(FaultKind::OutOfMemory)), fb)),
            (Bytes::from_static(b"fault"), true)
        );
        match answer(&done(fault(FaultKind::Timeout)), fb) {
            Answer::Timeout(FrontError::Timeout {
                request_id,
                message,
                timeout_secs,
            }) => assert_eq!(
                (request_id.as_str(), message.as_str(), timeout_secs),
                ("r1", "m", 3)
            ),
            Answer::Timeout(e) => panic!("{e:?}"),
            Answer::Body { .. } => panic!("a timeout is not a 200"),
        }
    }

    #[test]
    fn log_lines_headers_and_tail() {
        let mut text = String::from("START\n");
        push_log_lines(&mut text, &done(InvokeResult::Ok(Bytes::new())));
        assert_eq!(text, "START\na\nb\n");
        let mut h = HeaderMap::new();
        insert_log(&mut h, "x-log", &text);
        assert_eq!(h["x-log"], "U1RBUlQKYQpiCg==");
        insert_text(&mut h, "x-id", "bad\nid");
        assert!(
            h.get("x-id").is_none(),
            "a value with a newline is left out"
        );
        let long = "é".repeat(LOG_TAIL_BYTES);
        let t = log_tail(&long);
        assert!(t.len() <= LOG_TAIL_BYTES && t.chars().all(|c| c == 'é'));
    }
}
