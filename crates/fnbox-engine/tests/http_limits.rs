//! `http_serve::serve` against hostile clients: slowloris headers, a slow body, a silent
//! connection, an idle kept-alive connection and a connection flood are each closed within
//! their limit, while a long-poll longer than every limit is answered and normal requests keep
//! being served.

use std::net::SocketAddr;
use std::time::Duration;

use axum::body::Body;
use axum::routing::{get, post};
use axum::Router;
use fnbox_engine::http_serve::{serve, HttpLimits};
use fnbox_engine::http_util::{read_body, Oversize};
use http::{HeaderMap, StatusCode};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

const LIMITS: HttpLimits = HttpLimits {
    header_timeout: Duration::from_millis(400),
    body_timeout: Duration::from_millis(600),
    idle_timeout: Duration::from_millis(800),
    max_connections: 8,
};
/// Scheduling slack on a busy machine.
const SLACK: Duration = Duration::from_millis(700);

async fn echo(headers: HeaderMap, body: Body) -> (StatusCode, String) {
    match read_body(body, &headers, 1 << 20, Oversize::RefuseEarly).await {
        Ok(b) => (StatusCode::OK, format!("{} bytes", b.len())),
        Err(e) => (StatusCode::REQUEST_TIMEOUT, e.to_string()),
    }
}

struct Server {
    addr: SocketAddr,
    stop: CancellationToken,
    task: tokio::task::JoinHandle<()>,
}

async fn server(limits: HttpLimits) -> Server {
    let router = Router::new()
        .route("/ok", get(|| async { "ok" }))
        .route("/echo", post(echo))
        // A long-poll: answered after longer than every limit.
        .route(
            "/wait",
            get(|| async {
                tokio::time::sleep(Duration::from_millis(1500)).await;
                "waited"
            }),
        )
        // A streamed response, quiet for longer than the idle timeout between its chunks.
        .route(
            "/stream",
            get(|| async {
                let chunks = futures::stream::unfold(0, |i| async move {
                    if i == 2 {
                        return None;
                    }
                    if i == 1 {
                        tokio::time::sleep(Duration::from_millis(1200)).await;
                    }
                    Some((Ok::<_, std::io::Error>(format!("chunk{i};")), i + 1))
                });
                Body::from_stream(chunks)
            }),
        )
        // More than the socket buffers hold.
        .route("/big", get(|| async { vec![b'x'; 64 << 20] }));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let stop = CancellationToken::new();
    let task = tokio::spawn(serve(listener, router, limits, stop.clone()));
    Server { addr, stop, task }
}

impl Server {
    async fn shutdown(self) {
        self.stop.cancel();
        tokio::time::timeout(Duration::from_secs(5), self.task)
            .await
            .expect("server stops")
            .unwrap();
    }
}

/// Waits until the server closes `s` (EOF or reset); returns what it sent before and when.
async fn closed(s: &mut (impl AsyncReadExt + Unpin), within: Duration) -> (String, Instant) {
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    let result = tokio::time::timeout(within, async {
        loop {
            match s.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => got.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await;
    assert!(
        result.is_ok(),
        "connection still open after {within:?}; got {:?}",
        String::from_utf8_lossy(&got)
    );
    (String::from_utf8_lossy(&got).into_owned(), Instant::now())
}

/// One normal request on a fresh connection; its status line and body.
async fn normal(addr: SocketAddr, path: &str) -> String {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).await.unwrap();
    out
}

#[tokio::test]
async fn slowloris_headers_are_cut_at_the_header_timeout() {
    let srv = server(LIMITS).await;
    let (mut s, mut w) = TcpStream::connect(srv.addr).await.unwrap().into_split();
    let start = Instant::now();
    // One byte every 50 ms, forever: the head never completes.
    let trickle = tokio::spawn(async move {
        for b in b"GET /ok HTTP/1.1\r\nX-Slow: "
            .iter()
            .chain(b"a".repeat(1000).iter())
        {
            if w.write_all(&[*b]).await.is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    });
    let (got, at) = closed(&mut s, LIMITS.header_timeout + SLACK).await;
    trickle.abort();
    assert!(got.is_empty() || !got.contains("200 OK"), "{got}");
    assert!(at - start >= LIMITS.header_timeout - Duration::from_millis(50));
    assert!(normal(srv.addr, "/ok").await.ends_with("ok"));
    srv.shutdown().await;
}

#[tokio::test]
async fn a_slow_body_is_cut_at_the_body_timeout() {
    let srv = server(LIMITS).await;
    let (mut s, mut w) = TcpStream::connect(srv.addr).await.unwrap().into_split();
    w.write_all(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n")
        .await
        .unwrap();
    let start = Instant::now();
    let trickle = tokio::spawn(async move {
        for _ in 0..1000 {
            if w.write_all(b"x").await.is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    });
    let (got, at) = closed(&mut s, LIMITS.body_timeout + SLACK).await;
    trickle.abort();
    assert!(got.starts_with("HTTP/1.1 408"), "{got}");
    assert!(got.contains("body read timeout"), "{got}");
    assert!(at - start >= LIMITS.body_timeout - Duration::from_millis(50));
    // A body sent at once is fine.
    let mut s = TcpStream::connect(srv.addr).await.unwrap();
    s.write_all(
        b"POST /echo HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: 3\r\n\r\nabc",
    )
    .await
    .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).await.unwrap();
    assert!(
        out.starts_with("HTTP/1.1 200") && out.ends_with("3 bytes"),
        "{out}"
    );
    srv.shutdown().await;
}

#[tokio::test]
async fn silent_and_idle_connections_are_closed() {
    let srv = server(LIMITS).await;
    // Silent from the start: the header timeout.
    let mut s = TcpStream::connect(srv.addr).await.unwrap();
    let start = Instant::now();
    let (got, at) = closed(&mut s, LIMITS.header_timeout + SLACK).await;
    assert_eq!(got, "");
    assert!(at - start >= LIMITS.header_timeout - Duration::from_millis(50));
    // One request, then silence on the kept-alive connection: the idle timeout.
    let mut s = TcpStream::connect(srv.addr).await.unwrap();
    s.write_all(b"GET /ok HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut buf = [0u8; 1024];
    let n = s.read(&mut buf).await.unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));
    let start = Instant::now();
    let (got, at) = closed(&mut s, LIMITS.idle_timeout + SLACK).await;
    assert_eq!(got, "");
    assert!(
        at - start >= LIMITS.idle_timeout - Duration::from_millis(50),
        "closed after {:?}, before the idle timeout",
        at - start
    );
    srv.shutdown().await;
}

#[tokio::test]
async fn a_long_poll_outlasts_every_limit() {
    let srv = server(LIMITS).await;
    let out = normal(srv.addr, "/wait").await;
    assert!(
        out.starts_with("HTTP/1.1 200") && out.ends_with("waited"),
        "{out}"
    );
    // Kept alive after a long-poll that outlasted the idle timeout: the connection is not
    // woken when the request ends, yet it closes one idle timeout after the answer, not
    // before and not much later.
    let mut s = TcpStream::connect(srv.addr).await.unwrap();
    s.write_all(b"GET /wait HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut answer = Vec::new();
    let mut buf = [0u8; 1024];
    while !answer.ends_with(b"waited") {
        let n = s.read(&mut buf).await.unwrap();
        assert!(n > 0, "closed before the answer");
        answer.extend_from_slice(&buf[..n]);
    }
    assert!(answer.starts_with(b"HTTP/1.1 200"));
    let start = Instant::now();
    let (got, at) = closed(&mut s, LIMITS.idle_timeout + SLACK).await;
    assert_eq!(got, "");
    assert!(
        at - start >= LIMITS.idle_timeout - Duration::from_millis(50),
        "closed after {:?}, before the idle timeout",
        at - start
    );
    srv.shutdown().await;
}

#[tokio::test]
async fn a_connection_flood_is_bounded_and_closed() {
    // Under the cap: 200 silent connections, a normal request answered at once, all 200
    // closed by the header timeout.
    let srv = server(HttpLimits {
        max_connections: 1024,
        ..LIMITS
    })
    .await;
    let mut flood = Vec::new();
    for _ in 0..200 {
        flood.push(TcpStream::connect(srv.addr).await.unwrap());
    }
    let start = Instant::now();
    assert!(normal(srv.addr, "/ok").await.ends_with("ok"));
    assert!(
        start.elapsed() < LIMITS.header_timeout,
        "{:?}",
        start.elapsed()
    );
    for s in &mut flood {
        closed(s, LIMITS.header_timeout + SLACK).await;
    }
    srv.shutdown().await;

    // At the cap: the next connection waits in the backlog until a slot frees (the silent ones
    // are closed by the header timeout), then it is served.
    let srv = server(LIMITS).await;
    let mut flood = Vec::new();
    for _ in 0..LIMITS.max_connections {
        flood.push(TcpStream::connect(srv.addr).await.unwrap());
    }
    tokio::time::sleep(Duration::from_millis(50)).await;
    let start = Instant::now();
    assert!(normal(srv.addr, "/ok").await.ends_with("ok"));
    let waited = start.elapsed();
    assert!(
        waited >= LIMITS.header_timeout - Duration::from_millis(150)
            && waited < LIMITS.header_timeout + SLACK,
        "served after {waited:?}"
    );
    for s in &mut flood {
        closed(s, SLACK).await;
    }
    srv.shutdown().await;
}

#[tokio::test]
async fn a_quiet_stream_is_served_and_an_unread_response_is_cut() {
    let srv = server(LIMITS).await;
    let out = normal(srv.addr, "/stream").await;
    assert!(out.contains("chunk0;") && out.contains("chunk1;"), "{out}");

    // A client that asks for 64 MB and reads nothing: the write stalls, the connection is
    // closed after the idle timeout.
    let mut s = TcpStream::connect(srv.addr).await.unwrap();
    s.write_all(b"GET /big HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    tokio::time::sleep(LIMITS.idle_timeout + SLACK).await;
    let mut got = 0usize;
    let mut buf = vec![0u8; 1 << 16];
    let r = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            match s.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => got += n,
            }
        }
    })
    .await;
    assert!(r.is_ok(), "still open");
    assert!(got < 64 << 20, "the whole response arrived ({got} bytes)");
    srv.shutdown().await;
}
