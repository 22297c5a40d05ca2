//! A scripted stand-in for the platform's extension API, and a POST helper.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::IntoResponse;
use axum::Router;
use bytes::Bytes;

/// One request the mock received.
#[derive(Clone, Debug)]
pub struct Seen {
    pub path: String,
    pub headers: HeaderMap,
    pub body: String,
}

/// How the mock answers.
#[derive(Clone)]
pub struct Script {
    pub register: (u16, String),
    pub subscribe: (u16, String),
    /// Batch the mock POSTs to the subscriber *before* answering the subscription, as a
    /// platform that delivers buffered init events synchronously would.
    pub deliver_on_subscribe: Option<String>,
}

impl Default for Script {
    fn default() -> Self {
        Self {
            register: (
                200,
                r#"{"functionName":"telemetry-demo","functionVersion":"latest","handler":"","errorInfo":{"errorType":"","errorMessage":""}}"#.into(),
            ),
            subscribe: (200, String::new()),
            deliver_on_subscribe: None,
        }
    }
}

#[derive(Clone)]
struct MockState {
    script: Script,
    seen: Arc<Mutex<Vec<Seen>>>,
}

pub struct MockPlatform {
    pub addr: SocketAddr,
    pub seen: Arc<Mutex<Vec<Seen>>>,
}

impl MockPlatform {
    pub async fn start(script: Script) -> Self {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let state = MockState {
            script,
            seen: seen.clone(),
        };
        let app = Router::new().fallback(handle).with_state(state);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        Self { addr, seen }
    }

    pub fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }
}

async fn handle(
    State(s): State<MockState>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> impl IntoResponse {
    let body = String::from_utf8_lossy(&body).into_owned();
    let path = uri.path().to_string();
    s.seen.lock().unwrap().push(Seen {
        path: path.clone(),
        headers,
        body: body.clone(),
    });
    let (status, answer) = match path.as_str() {
        "/extension/register" => s.script.register.clone(),
        "/telemetry" => {
            if let Some(batch) = &s.script.deliver_on_subscribe {
                let v: serde_json::Value = serde_json::from_str(&body).unwrap();
                let uri = v["subscriber"]["uri"].as_str().unwrap().to_string();
                let (status, _) = post(&uri, batch, &[]).await;
                assert_eq!(status, 200, "delivery during subscribe");
            }
            s.script.subscribe.clone()
        }
        _ => (404, String::new()),
    };
    (StatusCode::from_u16(status).unwrap(), answer)
}

/// POSTs `body` to `url` with testkit's client; returns status and body text.
pub async fn post(url: &str, body: &str, headers: &[(&str, &str)]) -> (u16, String) {
    fnbox_testkit::http::send(
        "POST",
        url,
        headers,
        body,
        fnbox_testkit::http::DEFAULT_TIMEOUT,
    )
    .await
    .unwrap_or_else(|e| panic!("POST {url}: {e}"))
    .status_text()
}

/// A port that was free a moment ago.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Polls `f` until it is true or 5 s pass.
pub async fn eventually(what: &str, mut f: impl FnMut() -> bool) {
    let start = tokio::time::Instant::now();
    while !f() {
        assert!(
            start.elapsed() < std::time::Duration::from_secs(5),
            "timed out waiting for {what}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
}
