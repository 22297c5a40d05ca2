//! The real `fnbox serve` under hostile clients: with `http:` in the config file and the
//! `--http-*` flags, a slowloris head, a slow body, a silent connection and a flood past the
//! connection cap are each closed within their limit, and invocations keep being answered.

// These tests drive a real process from plain threads and a small tokio runtime for the raw
// connections; std time measures the whole.
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use fnbox_testkit::serve::{invoke, Serve};
use fnbox_testkit::FixturePackage;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const FNBOX: &str = env!("CARGO_BIN_EXE_fnbox");
const SLACK: Duration = Duration::from_millis(1500);

const ECHO: &str = r#"
while next; do respond "$REQUEST_ID" "{\"echo\":$BODY}"; done
"#;

/// Reads until the server closes; what it sent and how long it took.
async fn closed(s: &mut (impl AsyncReadExt + Unpin), within: Duration) -> (String, Duration) {
    let start = Instant::now();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    let r = tokio::time::timeout(within, async {
        loop {
            match s.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => got.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await;
    let got = String::from_utf8_lossy(&got).into_owned();
    assert!(r.is_ok(), "still open after {within:?}: {got:?}");
    (got, start.elapsed())
}

fn invoke_ok(s: &Serve) {
    let out = invoke(FNBOX, &s.url(), &["echo", "--event", r#"{"a":1}"#]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn hostile_connections_are_closed_and_invocations_go_on() {
    let pkg = FixturePackage::bash("func_name: echo\ntimeout: 5\n", ECHO);
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("fnbox.yaml");
    std::fs::write(
        &config,
        format!(
            "functions:\n  - path: {}\nhttp:\n  header_timeout: 1\n  body_timeout: 2\n  max_connections: 4\n",
            pkg.path().display()
        ),
    )
    .unwrap();
    // The flag wins over the file's header_timeout.
    let s = Serve::start(
        FNBOX,
        &[
            "--config",
            config.to_str().unwrap(),
            "--http-header-timeout",
            "700ms",
            "--http-idle-timeout",
            "1s",
        ],
    );
    let startup = s.startup.join("\n");
    assert!(
        startup.contains(
            "front door: header timeout 700ms, body timeout 2s, idle timeout 1s, at most 4 connections"
        ),
        "{startup}"
    );
    invoke_ok(&s);
    let addr: SocketAddr = s.addr;
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        // Slowloris: a head one byte every 100 ms.
        let (mut r, mut w) = TcpStream::connect(addr).await.unwrap().into_split();
        let trickle = tokio::spawn(async move {
            for b in b"POST /v2/p/fgs/functions/echo/invocations HTTP/1.1\r\nX-Slow: "
                .iter()
                .chain(b"a".repeat(500).iter())
            {
                if w.write_all(&[*b]).await.is_err() {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        });
        let (_, took) = closed(&mut r, Duration::from_millis(700) + SLACK).await;
        trickle.abort();
        assert!(took >= Duration::from_millis(600), "closed after {took:?}");

        // A slow body: answered 400 naming the timeout, then closed.
        let (mut r, mut w) = TcpStream::connect(addr).await.unwrap().into_split();
        w.write_all(
            b"POST /v2/p/fgs/functions/echo/invocations HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{",
        )
        .await
        .unwrap();
        let trickle = tokio::spawn(async move {
            for _ in 0..100 {
                if w.write_all(b" ").await.is_err() {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        });
        let (got, took) = closed(&mut r, Duration::from_secs(2) + SLACK).await;
        trickle.abort();
        assert!(got.starts_with("HTTP/1.1 400"), "{got}");
        assert!(got.contains("body read timeout"), "{got}");
        assert!(took >= Duration::from_millis(1900), "answered after {took:?}");

        // A flood of silent connections past the cap of 4: each is closed by the header
        // timeout, and a request behind them is served once slots free.
        let mut flood = Vec::new();
        for _ in 0..12 {
            flood.push(TcpStream::connect(addr).await.unwrap());
        }
        for s in &mut flood {
            closed(s, Duration::from_millis(700) * 3 + SLACK).await;
        }
    });
    invoke_ok(&s);
    s.stop();
}

#[test]
fn bad_limits_are_refused_naming_the_flag_or_key() {
    let pkg = FixturePackage::bash("func_name: echo\n", ECHO);
    let fails = |args: &[&str]| {
        let out = Command::new(FNBOX)
            .arg("serve")
            .args(args)
            .stdin(Stdio::null())
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    let p = pkg.path().to_str().unwrap();
    let err = fails(&[p, "--http-max-connections", "0"]);
    assert!(err.contains("--http-max-connections"), "{err}");
    let err = fails(&[p, "--http-header-timeout", "soon"]);
    assert!(
        err.contains("--http-header-timeout") && err.contains("not a duration"),
        "{err}"
    );
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("fnbox.yaml");
    std::fs::write(
        &config,
        format!("functions:\n  - path: {p}\nhttp:\n  idle_timeout: 0\n"),
    )
    .unwrap();
    let err = fails(&["--config", config.to_str().unwrap()]);
    assert!(
        err.contains("http.idle_timeout: 0 is out of range: allowed 1..=3600"),
        "{err}"
    );
    std::fs::write(
        &config,
        format!("functions:\n  - path: {p}\nhttp:\n  read_timeout: 5\n"),
    )
    .unwrap();
    let err = fails(&["--config", config.to_str().unwrap()]);
    assert!(err.contains("read_timeout"), "{err}");
}
