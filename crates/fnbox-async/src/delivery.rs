//! One POST of a notification to an `http://` destination.
//!
//! A fresh HTTP/1.1 connection per POST: notifications are rare, and a connection that is not
//! pooled needs no background task beyond the one driving it, which ends with the request and
//! runs on the worker's `TaskTracker`.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tokio_util::task::TaskTracker;

/// Checks that `url` is something fnbox can POST to; returns `(host:port, path)`.
pub(crate) fn parse_destination(url: &str) -> Result<(String, String, http::Uri), String> {
    let uri: http::Uri = url
        .parse()
        .map_err(|e| format!("destination {url:?} is not a URL: {e}"))?;
    match uri.scheme_str() {
        Some("http") => {}
        Some(other) => {
            return Err(format!(
                "destination {url:?}: scheme {other:?} is not supported, only http://"
            ))
        }
        None => return Err(format!("destination {url:?} needs http://")),
    }
    let host = uri
        .host()
        .ok_or_else(|| format!("destination {url:?} has no host"))?;
    let port = uri.port_u16().unwrap_or(80);
    let authority = if host.contains(':') && !host.starts_with('[') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    };
    let path = uri
        .path_and_query()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| "/".into());
    Ok((authority, path, uri))
}

/// POSTs `body` as JSON to `url`; `Ok` on any 2xx answer, else a message for `last_error`.
pub(crate) async fn post(
    url: &str,
    body: Bytes,
    timeout: Duration,
    tracker: &TaskTracker,
) -> Result<u16, String> {
    let (authority, path, uri) = parse_destination(url)?;
    let exchange = async {
        let stream = TcpStream::connect(&authority)
            .await
            .map_err(|e| format!("cannot connect to {authority}: {e}"))?;
        let _ = stream.set_nodelay(true);
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| format!("HTTP handshake with {authority} failed: {e}"))?;
        // The connection task ends when the request is done and `sender` is dropped.
        tracker.spawn(async move {
            let _ = conn.await;
        });
        let host = uri.authority().map(|a| a.as_str()).unwrap_or(&authority);
        let req = http::Request::post(path)
            .header(http::header::HOST, host)
            .header(http::header::CONTENT_TYPE, "application/json")
            .header(http::header::USER_AGENT, "fnbox-async")
            .body(Full::new(body))
            .map_err(|e| format!("cannot build request: {e}"))?;
        let resp = sender
            .send_request(req)
            .await
            .map_err(|e| format!("POST {url} failed: {e}"))?;
        let status = resp.status();
        // Read (and discard) a short answer so the exchange completes cleanly.
        let _ = http_body_util::Limited::new(resp.into_body(), 64 * 1024)
            .collect()
            .await;
        if status.is_success() {
            Ok(status.as_u16())
        } else {
            Err(format!("destination answered {status}"))
        }
    };
    match tokio::time::timeout(timeout, exchange).await {
        Ok(r) => r,
        Err(_) => Err(format!("destination did not answer within {timeout:?}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_http_urls_only() {
        let (a, p, _) = parse_destination("http://127.0.0.1:8080/hook?x=1").unwrap();
        assert_eq!(a, "127.0.0.1:8080");
        assert_eq!(p, "/hook?x=1");
        let (a, p, _) = parse_destination("http://localhost").unwrap();
        assert_eq!(a, "localhost:80");
        assert_eq!(p, "/");
        assert!(parse_destination("https://example.com/").is_err());
        assert!(parse_destination("/relative").is_err());
        assert!(parse_destination("not a url").is_err());
    }
}
