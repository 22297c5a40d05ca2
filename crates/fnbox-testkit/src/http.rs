//! The one HTTP/1.1 client of fnbox's tests: hyper's legacy client, one fresh connection per
//! request (nothing pooled, so a test that checks a closed listener or counts connections sees
//! exactly its own), and a bound on the whole exchange so a test never hangs on a server that
//! does not answer.
//!
//! Fixture runtimes written in bash keep speaking HTTP over `/dev/tcp` ([`crate::BASH_HTTP`]):
//! they play user code, not a test client. A test that must send malformed bytes on purpose
//! needs a raw socket, not this.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
/// Re-exported so tests need no `http` dependency of their own to read a [`Response`].
pub use http::{HeaderMap, StatusCode};
use http::{Method, Request};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::Frame;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

/// How long [`request`] waits for the whole answer, body included, unless told otherwise.
/// Generous: invocations under test may run into their own multi-second deadlines on a loaded
/// machine; the bound only turns a hung server into a failure instead of a stuck test run.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);

/// Size of the chunks a [`Body::Chunked`] body is sent in.
const CHUNK: usize = 64 * 1024;

/// Why a request got no complete answer.
#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    /// Method, URI or a header could not be made into a request.
    #[error("invalid request: {0}")]
    Invalid(#[from] http::Error),
    /// Connecting, sending or reading the response head failed.
    #[error("request failed: {0}")]
    Transport(#[from] hyper_util::client::legacy::Error),
    /// The response body broke off.
    #[error("reading the response body: {0}")]
    Body(#[from] hyper::Error),
    /// No complete answer within the bound.
    #[error("no complete answer within {0:?}")]
    Timeout(Duration),
}

/// A request body.
#[derive(Clone, Debug, Default)]
pub enum Body {
    /// No body (`Content-Length` only where the method implies one).
    #[default]
    Empty,
    /// A body of known size, sent with `Content-Length`.
    Sized(Bytes),
    /// A body sent with `Transfer-Encoding: chunked`, so the server cannot know its size in
    /// advance (the case of a streaming client).
    Chunked(Bytes),
}

impl From<&str> for Body {
    fn from(s: &str) -> Self {
        Body::Sized(Bytes::copy_from_slice(s.as_bytes()))
    }
}

impl From<String> for Body {
    fn from(s: String) -> Self {
        Body::Sized(Bytes::from(s))
    }
}

impl From<&String> for Body {
    fn from(s: &String) -> Self {
        Body::from(s.as_str())
    }
}

impl From<Vec<u8>> for Body {
    fn from(b: Vec<u8>) -> Self {
        Body::Sized(Bytes::from(b))
    }
}

impl From<&[u8]> for Body {
    fn from(b: &[u8]) -> Self {
        Body::Sized(Bytes::copy_from_slice(b))
    }
}

impl Body {
    fn into_http(self) -> BoxBody<Bytes, Infallible> {
        match self {
            Body::Empty => Full::new(Bytes::new()).boxed(),
            Body::Sized(b) => Full::new(b).boxed(),
            Body::Chunked(b) => {
                // A stream has no size hint, so hyper frames it as chunked.
                let frames: Vec<Result<Frame<Bytes>, Infallible>> = (0..b.len())
                    .step_by(CHUNK)
                    .map(|at| Ok(Frame::data(b.slice(at..b.len().min(at + CHUNK)))))
                    .collect();
                StreamBody::new(futures::stream::iter(frames)).boxed()
            }
        }
    }
}

/// A complete answer.
#[derive(Clone, Debug)]
pub struct Response {
    /// The status code.
    pub status: StatusCode,
    /// Every header (names are case-insensitive).
    pub headers: HeaderMap,
    /// The whole body, de-chunked.
    pub body: Bytes,
}

impl Response {
    /// The status code as a number.
    pub fn code(&self) -> u16 {
        self.status.as_u16()
    }

    /// A header's value as text, `None` when absent or not visible ASCII.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The body as text (lossy).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// Status code and body text, for tests that look at nothing else.
    pub fn status_text(&self) -> (u16, String) {
        (self.code(), self.text())
    }

    /// The body as JSON; panics with the text when it is not.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text()))
    }
}

/// `method url` with `headers` and `body`, bounded by `timeout`. `url` is absolute
/// (`http://127.0.0.1:8081/path`).
pub async fn send(
    method: &str,
    url: &str,
    headers: &[(&str, &str)],
    body: impl Into<Body>,
    timeout: Duration,
) -> Result<Response, HttpError> {
    let mut req = Request::builder()
        .method(Method::from_bytes(method.as_bytes()).map_err(http::Error::from)?)
        .uri(url);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let req = req.body(body.into().into_http())?;
    // A client per request with no idle connections kept: every request is on a connection
    // of its own, as the hand-written `Connection: close` clients this replaces were.
    let client: Client<_, BoxBody<Bytes, Infallible>> = Client::builder(TokioExecutor::new())
        .pool_max_idle_per_host(0)
        .build_http();
    let exchange = async {
        let resp = client.request(req).await?;
        let (parts, body) = resp.into_parts();
        let body = body.collect().await?.to_bytes();
        Ok(Response {
            status: parts.status,
            headers: parts.headers,
            body,
        })
    };
    tokio::time::timeout(timeout, exchange)
        .await
        .map_err(|_| HttpError::Timeout(timeout))?
}

/// `method http://<addr><path>` with `headers` and `body`, bounded by [`DEFAULT_TIMEOUT`].
pub async fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: impl Into<Body>,
) -> Result<Response, HttpError> {
    send(
        method,
        &format!("http://{addr}{path}"),
        headers,
        body,
        DEFAULT_TIMEOUT,
    )
    .await
}

/// `GET http://<addr><path>`, bounded by [`DEFAULT_TIMEOUT`].
pub async fn get(addr: SocketAddr, path: &str) -> Result<Response, HttpError> {
    request(addr, "GET", path, &[], Body::Empty).await
}

/// `POST http://<addr><path>` with `body`, bounded by [`DEFAULT_TIMEOUT`].
pub async fn post(
    addr: SocketAddr,
    path: &str,
    body: impl Into<Body>,
) -> Result<Response, HttpError> {
    request(addr, "POST", path, &[], body).await
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A server that echoes method, path, one header, the body and how it was framed.
    async fn echo_server() -> SocketAddr {
        let app = axum::Router::new().fallback(
            |method: http::Method, uri: http::Uri, headers: HeaderMap, body: Bytes| async move {
                let framing = if headers.contains_key("transfer-encoding") {
                    "chunked"
                } else {
                    "sized"
                };
                let h = headers
                    .get("x-test")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("")
                    .to_string();
                (
                    [("x-framing", framing)],
                    format!("{method} {} {h} {}", uri.path(), body.len()),
                )
            },
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        addr
    }

    #[tokio::test]
    async fn sends_method_path_headers_and_both_body_framings() {
        let addr = echo_server().await;
        let r = get(addr, "/a").await.unwrap();
        assert_eq!((r.code(), r.text().as_str()), (200, "GET /a  0"));
        let r = request(addr, "PUT", "/b", &[("X-Test", "yes")], "hello")
            .await
            .unwrap();
        assert_eq!(r.text(), "PUT /b yes 5");
        assert_eq!(r.header("x-framing"), Some("sized"));
        let big = Bytes::from(vec![b'x'; 3 * CHUNK + 7]);
        let r = request(addr, "POST", "/c", &[], Body::Chunked(big))
            .await
            .unwrap();
        assert_eq!(r.text(), format!("POST /c  {}", 3 * CHUNK + 7));
        assert_eq!(r.header("x-framing"), Some("chunked"));
    }

    #[tokio::test]
    async fn a_server_that_never_answers_is_a_timeout() {
        // Accepts and holds the connection without answering.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let held = tokio::spawn(async move { listener.accept().await });
        let err = send(
            "GET",
            &format!("http://{addr}/"),
            &[],
            Body::Empty,
            Duration::from_millis(200),
        )
        .await
        .unwrap_err();
        assert!(matches!(err, HttpError::Timeout(_)), "{err}");
        held.abort();
    }

    #[tokio::test]
    async fn a_closed_port_is_a_transport_error() {
        let addr = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap()
        };
        let err = get(addr, "/").await.unwrap_err();
        assert!(matches!(err, HttpError::Transport(_)), "{err}");
    }
}
